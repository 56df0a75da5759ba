//! [`AccessLogEntry`]: what is known of one finished request, captured on the request path
//! without formatting (cheap clones of the request's own buffers) and formatted later, off the
//! request path, by the access log's writer.

use http::{HeaderValue, Method, Uri, Version, uri::Authority};
use mesh_core::ResponseFlags;
use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

/// One request, as the access log reports it (Istio's default format's fields).
///
/// A field that is `None` prints as `-` in text and `null` in JSON.
#[derive(Clone, Debug)]
pub struct AccessLogEntry {
    /// When the request arrived (`%START_TIME%`, printed in UTC with milliseconds).
    pub start_time: SystemTime,
    /// `%REQ(:METHOD)%`.
    pub method: Method,
    /// The request URI as received: `:path` is its path and query, `:authority` its authority
    /// when it has one (absolute form).
    pub uri: Uri,
    /// The `Host` header, `:authority`'s source for an origin-form URI.
    pub host: Option<HeaderValue>,
    /// `x-envoy-original-path`, which `%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%` prefers to `:path`.
    pub original_path: Option<HeaderValue>,
    /// `%PROTOCOL%` (`HTTP/1.1`, `HTTP/2`, …).
    pub protocol: Version,
    /// `%RESPONSE_CODE%`: the status sent, 0 when none was (the client went away first).
    pub response_code: u16,
    /// `%RESPONSE_FLAGS%`.
    pub response_flags: ResponseFlags,
    /// `%RESPONSE_CODE_DETAILS%` (`via_upstream`, `route_not_found`, …).
    pub response_code_details: &'static str,
    /// `%BYTES_RECEIVED%`: request body bytes.
    pub bytes_received: u64,
    /// `%BYTES_SENT%`: response body bytes.
    pub bytes_sent: u64,
    /// `%DURATION%`: from arrival to the last response byte (printed in whole milliseconds).
    pub duration: Duration,
    /// `%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%`.
    pub upstream_service_time: Option<HeaderValue>,
    /// `%REQ(X-FORWARDED-FOR)%`.
    pub x_forwarded_for: Option<HeaderValue>,
    /// `%REQ(USER-AGENT)%`.
    pub user_agent: Option<HeaderValue>,
    /// `%REQ(X-REQUEST-ID)%`.
    pub request_id: Option<HeaderValue>,
    /// `%UPSTREAM_HOST%`: the endpoint that served (or was last tried).
    pub upstream_host: Option<Authority>,
    /// `%UPSTREAM_CLUSTER_RAW%`, in Istio's `outbound|80|v1|catalog.shop.svc.cluster.local` form.
    pub upstream_cluster: Option<Arc<str>>,
    /// `%UPSTREAM_LOCAL_ADDRESS%`.
    pub upstream_local_address: Option<SocketAddr>,
    /// `%DOWNSTREAM_LOCAL_ADDRESS%`.
    pub downstream_local_address: Option<SocketAddr>,
    /// `%DOWNSTREAM_REMOTE_ADDRESS%`.
    pub downstream_remote_address: Option<SocketAddr>,
    /// `%REQUESTED_SERVER_NAME%` (TLS SNI).
    pub requested_server_name: Option<Arc<str>>,
    /// `%ROUTE_NAME%`.
    pub route_name: Option<Arc<str>>,
}

impl AccessLogEntry {
    /// `%REQ(:AUTHORITY)%`: the URI's authority, else the `Host` header.
    pub fn authority(&self) -> Option<&str> {
        mesh_core::authority::addressed_authority(&self.uri, self.host.as_ref())
    }

    /// `%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%`.
    pub fn path(&self) -> Option<&str> {
        match &self.original_path {
            Some(original) => original.to_str().ok(),
            None => self.uri.path_and_query().map(|p| p.as_str()),
        }
    }
}
