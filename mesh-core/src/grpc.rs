//! Telling gRPC requests apart, as Envoy does: by `content-type` alone, which must be exactly
//! `application/grpc` or `application/grpc+` a codec (`application/grpc-web` is not gRPC).
//! Timeouts honour `grpc-timeout` only on gRPC requests; telemetry labels them `grpc`.

use http::{HeaderMap, HeaderValue, header::CONTENT_TYPE};

/// Whether a request with this `content-type` is gRPC.
///
/// ```
/// use http::HeaderValue;
/// use mesh_core::grpc::is_grpc_content_type;
/// let of = |value| is_grpc_content_type(Some(&HeaderValue::from_static(value)));
/// assert!(of("application/grpc"));
/// assert!(of("application/grpc+proto"));
/// assert!(!of("application/grpc-web+proto"));
/// assert!(!of("application/json"));
/// assert!(!is_grpc_content_type(None));
/// ```
pub fn is_grpc_content_type(content_type: Option<&HeaderValue>) -> bool {
    matches!(
        content_type.map(|value| value.as_bytes().strip_prefix(b"application/grpc")),
        Some(Some(b"" | [b'+', ..]))
    )
}

/// Whether a request with these headers is gRPC (see [`is_grpc_content_type`]).
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// assert!(!mesh_core::grpc::is_grpc(&headers));
/// headers.insert("content-type", "application/grpc".parse().unwrap());
/// assert!(mesh_core::grpc::is_grpc(&headers));
/// ```
pub fn is_grpc(headers: &HeaderMap) -> bool {
    is_grpc_content_type(headers.get(CONTENT_TYPE))
}
