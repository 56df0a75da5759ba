//! Header hygiene for a proxy hop: hop-by-hop headers removed (RFC 9110 §7.6.1), and
//! `x-forwarded-for` / `x-forwarded-proto` appended as Envoy does.

use http::{HeaderMap, HeaderName, HeaderValue, header};
use std::net::SocketAddr;

/// Headers that describe one connection and must not be forwarded (`te` aside: see
/// [`remove_hop_by_hop`]), by name: checking a request's names against these is a few
/// length comparisons each.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// `x-forwarded-for`.
///
/// ```
/// use mesh_proxy::proxy_headers::{X_FORWARDED_FOR, append_forwarded};
/// let mut headers = http::HeaderMap::new();
/// append_forwarded(&mut headers, Some("10.1.2.3:5555".parse().unwrap()), "http");
/// assert_eq!(headers[X_FORWARDED_FOR], "10.1.2.3");
/// ```
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `x-forwarded-proto`.
///
/// ```
/// use mesh_proxy::proxy_headers::{X_FORWARDED_PROTO, append_forwarded};
/// let mut headers = http::HeaderMap::new();
/// headers.insert(X_FORWARDED_PROTO, "https".parse().unwrap());
/// append_forwarded(&mut headers, None, "http");
/// assert_eq!(headers[X_FORWARDED_PROTO], "https", "an existing value is kept");
/// ```
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Removes hop-by-hop headers, including any named in `Connection`. `te: trailers` is kept when
/// `keep_te_trailers` (HTTP/2 and gRPC need it); any other `te` is removed. Returns whether a
/// `te` was kept, so that a hop sending on over HTTP/1.1, which takes none, need not look again.
///
/// ```
/// use http::{HeaderMap, header};
/// use mesh_proxy::proxy_headers::remove_hop_by_hop;
/// let mut headers = HeaderMap::new();
/// headers.insert(header::CONNECTION, "keep-alive, x-private".parse().unwrap());
/// headers.insert("x-private", "1".parse().unwrap());
/// headers.insert(header::TE, "trailers".parse().unwrap());
/// headers.insert("x-request-id", "abc".parse().unwrap());
/// assert!(remove_hop_by_hop(&mut headers, true), "te: trailers kept");
/// assert!(headers.get(header::CONNECTION).is_none() && headers.get("x-private").is_none());
/// assert_eq!(headers[header::TE], "trailers", "kept for HTTP/2 and gRPC");
/// assert_eq!(headers["x-request-id"], "abc");
/// ```
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_te_trailers: bool) -> bool {
    // Most messages have none: one pass over the names, no lookups.
    if !headers
        .keys()
        .any(|name| name == header::TE || HOP_BY_HOP.contains(&name.as_str()))
    {
        return false;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().map(HeaderName::as_str).chain(HOP_BY_HOP) {
        headers.remove(name);
    }
    let te_is_trailers = headers
        .get(header::TE)
        .is_some_and(|te| te.as_bytes().eq_ignore_ascii_case(b"trailers"));
    let kept = keep_te_trailers && te_is_trailers;
    if !kept {
        headers.remove(header::TE);
    }
    kept
}

/// Appends the client's address to `x-forwarded-for` and sets `x-forwarded-proto` (`http` or
/// `https`) when absent.
///
/// ```
/// use mesh_proxy::proxy_headers::{X_FORWARDED_FOR, X_FORWARDED_PROTO, append_forwarded};
/// let mut headers = http::HeaderMap::new();
/// headers.insert(X_FORWARDED_FOR, "203.0.113.7".parse().unwrap());
/// append_forwarded(&mut headers, Some("127.0.0.1:40000".parse().unwrap()), "https");
/// assert_eq!(headers[X_FORWARDED_FOR], "203.0.113.7, 127.0.0.1");
/// assert_eq!(headers[X_FORWARDED_PROTO], "https");
/// ```
pub fn append_forwarded(headers: &mut HeaderMap, client: Option<SocketAddr>, scheme: &'static str) {
    if let Some(client) = client {
        let ip = client.ip().to_string();
        let value = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(existing) => format!("{existing}, {ip}"),
            None => ip,
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(X_FORWARDED_FOR, value);
        }
    }
    // One lookup (the name hashed once), not a look and then an insert.
    headers
        .entry(X_FORWARDED_PROTO)
        .or_insert_with(|| HeaderValue::from_static(scheme));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_without_hop_by_hop_headers_is_left_as_it_is() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "catalog".parse().unwrap());
        h.insert("x-request-id", "1".parse().unwrap());
        let before = h.clone();
        assert!(!remove_hop_by_hop(&mut h, false));
        assert_eq!(h, before);
        h.insert(header::TE, "gzip".parse().unwrap());
        assert!(!remove_hop_by_hop(&mut h, true), "none kept");
        assert_eq!(h, before, "te other than trailers goes");
    }

    #[test]
    fn strips_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, x-private".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert(header::TE, "trailers".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        assert!(
            remove_hop_by_hop(&mut h, true),
            "te: trailers kept, and said so"
        );
        assert!(h.get("x-private").is_none() && h.get("keep-alive").is_none());
        assert_eq!(h[header::TE], "trailers");
        assert_eq!(h["x-kept"], "1");
        assert!(!remove_hop_by_hop(&mut h, false));
        assert!(h.get(header::TE).is_none());
    }

    #[test]
    fn appends_forwarded_for() {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, "10.0.0.1".parse().unwrap());
        append_forwarded(&mut h, Some("127.0.0.1:5000".parse().unwrap()), "http");
        assert_eq!(h[X_FORWARDED_FOR], "10.0.0.1, 127.0.0.1");
        assert_eq!(h[X_FORWARDED_PROTO], "http");
    }
}
