//! [`AccessLogEntry`]: what is known of one finished request, handed to
//! [`AccessLog::log`](super::AccessLog::log), which copies it for the access log's writer to
//! format off the request path.

use http::{HeaderValue, Method, Uri, Version, uri::Authority};
use mesh_core::ResponseFlags;
use std::{
    borrow::Cow,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

/// One request, as the access log reports it (Istio's default format's fields).
///
/// A field that is `None` prints as `-` in text and `null` in JSON.
///
/// ```
/// use http::HeaderValue;
/// use mesh_trace::access_log::{AccessLogEntry, Encoding, format_entry};
/// # /// A request for `/ready` that got a 200.
/// # fn entry() -> mesh_trace::access_log::AccessLogEntry {
/// #     mesh_trace::access_log::AccessLogEntry {
/// #         start_time: std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_460_751_420_310),
/// #         method: http::Method::GET,
/// #         uri: http::Uri::from_static("/ready"),
/// #         host: None,
/// #         original_path: None,
/// #         protocol: http::Version::HTTP_11,
/// #         response_code: 200,
/// #         response_flags: Default::default(),
/// #         response_code_details: "via_upstream".into(),
/// #         bytes_received: 0,
/// #         bytes_sent: 2,
/// #         duration: std::time::Duration::from_millis(1),
/// #         upstream_service_time: None,
/// #         x_forwarded_for: None,
/// #         user_agent: None,
/// #         request_id: None,
/// #         upstream_host: None,
/// #         upstream_cluster: None,
/// #         upstream_local_address: None,
/// #         downstream_local_address: None,
/// #         downstream_remote_address: None,
/// #         requested_server_name: None,
/// #         route_name: None,
/// #     }
/// # }
/// # /// An in-memory destination.
/// # #[derive(Clone, Default)]
/// # struct Memory(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
/// # impl std::io::Write for Memory {
/// #     fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().write(bytes) }
/// #     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
/// # }
/// # impl Memory {
/// #     fn text(&self) -> String { String::from_utf8(self.0.lock().unwrap().clone()).unwrap() }
/// # }
/// let entry = AccessLogEntry {
///     user_agent: Some(HeaderValue::from_static("curl/8.5.0")),
///     request_id: None, // missing: `-` in text, `null` in JSON
///     ..entry() // a GET of `/ready` answered 200
/// };
/// let mut out = Vec::new();
/// format_entry(&entry, Encoding::Json, &mut out);
/// let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
/// assert_eq!(json["user_agent"], "curl/8.5.0");
/// assert_eq!(json["request_id"], serde_json::Value::Null);
/// ```
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
    pub response_code_details: Cow<'static, str>,
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
    ///
    /// ```
    /// use http::{HeaderValue, Uri};
    /// use mesh_trace::access_log::AccessLogEntry;
    /// # /// A request for `/ready` that got a 200.
    /// # fn entry() -> mesh_trace::access_log::AccessLogEntry {
    /// #     mesh_trace::access_log::AccessLogEntry {
    /// #         start_time: std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_460_751_420_310),
    /// #         method: http::Method::GET,
    /// #         uri: http::Uri::from_static("/ready"),
    /// #         host: None,
    /// #         original_path: None,
    /// #         protocol: http::Version::HTTP_11,
    /// #         response_code: 200,
    /// #         response_flags: Default::default(),
    /// #         response_code_details: "via_upstream".into(),
    /// #         bytes_received: 0,
    /// #         bytes_sent: 2,
    /// #         duration: std::time::Duration::from_millis(1),
    /// #         upstream_service_time: None,
    /// #         x_forwarded_for: None,
    /// #         user_agent: None,
    /// #         request_id: None,
    /// #         upstream_host: None,
    /// #         upstream_cluster: None,
    /// #         upstream_local_address: None,
    /// #         downstream_local_address: None,
    /// #         downstream_remote_address: None,
    /// #         requested_server_name: None,
    /// #         route_name: None,
    /// #     }
    /// # }
    /// # /// An in-memory destination.
    /// # #[derive(Clone, Default)]
    /// # struct Memory(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    /// # impl std::io::Write for Memory {
    /// #     fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().write(bytes) }
    /// #     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
    /// # }
    /// # impl Memory {
    /// #     fn text(&self) -> String { String::from_utf8(self.0.lock().unwrap().clone()).unwrap() }
    /// # }
    /// let origin_form = AccessLogEntry { host: Some(HeaderValue::from_static("catalog")), ..entry() };
    /// assert_eq!(origin_form.authority(), Some("catalog"));
    /// let absolute = AccessLogEntry { uri: Uri::from_static("http://catalog.shop:8080/items"), ..origin_form };
    /// assert_eq!(absolute.authority(), Some("catalog.shop:8080")); // the URI's wins
    /// assert_eq!(entry().authority(), None); // neither
    /// ```
    pub fn authority(&self) -> Option<&str> {
        mesh_core::authority::addressed_authority(&self.uri, self.host.as_ref())
    }

    /// `%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%`.
    ///
    /// ```
    /// use http::{HeaderValue, Uri};
    /// use mesh_trace::access_log::AccessLogEntry;
    /// # /// A request for `/ready` that got a 200.
    /// # fn entry() -> mesh_trace::access_log::AccessLogEntry {
    /// #     mesh_trace::access_log::AccessLogEntry {
    /// #         start_time: std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_460_751_420_310),
    /// #         method: http::Method::GET,
    /// #         uri: http::Uri::from_static("/ready"),
    /// #         host: None,
    /// #         original_path: None,
    /// #         protocol: http::Version::HTTP_11,
    /// #         response_code: 200,
    /// #         response_flags: Default::default(),
    /// #         response_code_details: "via_upstream".into(),
    /// #         bytes_received: 0,
    /// #         bytes_sent: 2,
    /// #         duration: std::time::Duration::from_millis(1),
    /// #         upstream_service_time: None,
    /// #         x_forwarded_for: None,
    /// #         user_agent: None,
    /// #         request_id: None,
    /// #         upstream_host: None,
    /// #         upstream_cluster: None,
    /// #         upstream_local_address: None,
    /// #         downstream_local_address: None,
    /// #         downstream_remote_address: None,
    /// #         requested_server_name: None,
    /// #         route_name: None,
    /// #     }
    /// # }
    /// # /// An in-memory destination.
    /// # #[derive(Clone, Default)]
    /// # struct Memory(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    /// # impl std::io::Write for Memory {
    /// #     fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().write(bytes) }
    /// #     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
    /// # }
    /// # impl Memory {
    /// #     fn text(&self) -> String { String::from_utf8(self.0.lock().unwrap().clone()).unwrap() }
    /// # }
    /// let entry = AccessLogEntry { uri: Uri::from_static("/v2/items?page=2"), ..entry() };
    /// assert_eq!(entry.path(), Some("/v2/items?page=2"));
    /// // A rewritten request: the path the client sent is reported.
    /// let rewritten = AccessLogEntry { original_path: Some(HeaderValue::from_static("/items?page=2")), ..entry };
    /// assert_eq!(rewritten.path(), Some("/items?page=2"));
    /// ```
    pub fn path(&self) -> Option<&str> {
        match &self.original_path {
            Some(original) => original.to_str().ok(),
            None => self.uri.path_and_query().map(|p| p.as_str()),
        }
    }
}
