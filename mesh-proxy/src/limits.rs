//! [`ListenerLimits`]: what a listener lets one client do, against slow or abusive clients.
//!
//! The defaults follow Envoy's: request headers up to 60 KiB (`max_request_headers_kb`) and 100
//! of them (`max_headers_count`), both answered `431 Request Header Fields Too Large`; a client
//! must send its request headers within 10 s (a slow-loris client is cut off: the connection is
//! closed); a connection that carries no byte either way for an hour is closed (Envoy's
//! `idle_timeout`, for HTTP connections and tunnels alike); HTTP/2 connections carry at most
//! 1024 concurrent streams, and a client that makes
//! the server reset streams in a flood (CVE-2023-44487 "rapid reset") loses its connection.
//! Request bodies are streamed, so their size is unlimited unless set; past the limit a request
//! announcing its length gets `413 Payload Too Large` and a streamed one is cut.

use std::time::Duration;

/// A listener's limits; see the [module docs](self).
///
/// ```
/// use mesh_proxy::limits::ListenerLimits;
/// // Request bodies are unlimited unless set.
/// assert_eq!(ListenerLimits::default().max_request_body_bytes, None);
/// let limits = ListenerLimits { max_request_body_bytes: Some(1 << 20), ..ListenerLimits::default() };
/// assert_eq!(limits.max_request_body_bytes, Some(1_048_576));
/// // The rest keep Envoy's defaults.
/// assert_eq!((limits.max_request_headers, limits.max_request_headers_bytes), (100, 60 * 1024));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Bytes of the request line and headers (431 beyond).
    pub max_request_headers_bytes: usize,
    /// Request headers (431 beyond).
    pub max_request_headers: usize,
    /// Time to send the request headers, from the connection's start or the previous response
    /// (the connection is closed past it); `None`: no limit.
    pub header_read_timeout: Option<Duration>,
    /// Request body bytes (413 for a request announcing more; a streamed body is cut);
    /// `None`: no limit.
    pub max_request_body_bytes: Option<u64>,
    /// Time a connection (HTTP, or a tunnel's downstream side) may carry no byte either way
    /// before it is closed; `None`: no limit.
    pub idle_timeout: Option<Duration>,
    /// Concurrent streams of an HTTP/2 connection.
    pub http2_max_concurrent_streams: u32,
    /// Streams an HTTP/2 client may open and reset before they are accepted, at once, before
    /// the connection is closed.
    pub http2_max_pending_accept_reset_streams: usize,
    /// Streams the server may reset for a client's protocol errors before the connection is
    /// closed.
    pub http2_max_local_error_reset_streams: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            max_request_headers_bytes: 60 * 1024,
            max_request_headers: HYPER_MAX_HEADERS,
            header_read_timeout: Some(Duration::from_secs(10)),
            max_request_body_bytes: None,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            http2_max_concurrent_streams: 1024,
            http2_max_pending_accept_reset_streams: 20,
            http2_max_local_error_reset_streams: 1024,
        }
    }
}

/// Envoy's connection `idle_timeout` (HTTP connection manager and TCP proxy): one hour.
///
/// ```
/// use mesh_proxy::limits::{DEFAULT_IDLE_TIMEOUT, ListenerLimits};
/// assert_eq!(DEFAULT_IDLE_TIMEOUT.as_secs(), 3600);
/// assert_eq!(ListenerLimits::default().idle_timeout, Some(DEFAULT_IDLE_TIMEOUT));
/// ```
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// The smallest read buffer hyper accepts.
pub(crate) const MIN_BUFFER: usize = 8192;

/// How many headers hyper parses without a limit of its own (on the stack).
pub(crate) const HYPER_MAX_HEADERS: usize = 100;
