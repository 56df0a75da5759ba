//! The authority a request is addressed to — the absolute-form URI's, else the `Host` header —
//! as routing matches it and telemetry reports it.

use http::{HeaderValue, Request, Uri, header::HOST};

/// The authority of a request with `uri` and `host` header: the URI's when it has one
/// (absolute form), else `Host`'s (when it is visible ASCII).
///
/// ```
/// use http::{HeaderValue, Uri};
/// use mesh_core::authority::addressed_authority;
/// let host = HeaderValue::from_static("catalog");
/// assert_eq!(addressed_authority(&Uri::from_static("/items"), Some(&host)), Some("catalog"));
/// let absolute = Uri::from_static("http://reviews:9080/r");
/// assert_eq!(addressed_authority(&absolute, Some(&host)), Some("reviews:9080"));
/// ```
pub fn addressed_authority<'a>(uri: &'a Uri, host: Option<&'a HeaderValue>) -> Option<&'a str> {
    uri_authority_or_host(uri, || host)
}

/// [`addressed_authority`], with `host` asked only when the URI has no authority.
fn uri_authority_or_host<'a>(
    uri: &'a Uri,
    host: impl FnOnce() -> Option<&'a HeaderValue>,
) -> Option<&'a str> {
    match uri.authority() {
        Some(authority) => Some(authority.as_str()),
        None => host().and_then(|h| h.to_str().ok()),
    }
}

/// The authority `request` is addressed to (see [`addressed_authority`]). `Host` is looked up
/// only for a request in origin form: an absolute-form URI (every in-process client's request)
/// costs no header lookup.
///
/// ```
/// use mesh_core::authority::request_authority;
/// let origin_form = http::Request::get("/items").header("host", "catalog:80").body(()).unwrap();
/// assert_eq!(request_authority(&origin_form), Some("catalog:80"));
/// let proxied = http::Request::get("http://reviews/r").header("host", "ignored").body(()).unwrap();
/// assert_eq!(request_authority(&proxied), Some("reviews"));
/// assert_eq!(request_authority(&http::Request::new(())), None);
/// ```
pub fn request_authority<B>(request: &Request<B>) -> Option<&str> {
    uri_authority_or_host(request.uri(), || request.headers().get(HOST))
}

/// The host and port parts of an authority (`host`, `host:port`, `[v6]:port`): the port is
/// the digits after the last colon; without digits there, or without that colon, it all is
/// the host. Read from the end, byte by byte: an authority is short, and this runs several
/// times a request.
///
/// ```
/// use mesh_core::authority::split_port;
/// assert_eq!(split_port("catalog:80"), ("catalog", Some("80")));
/// assert_eq!(split_port("catalog"), ("catalog", None));
/// assert_eq!(split_port("[::1]:8080"), ("[::1]", Some("8080")));
/// assert_eq!(split_port("[::1]"), ("[::1]", None));
/// assert_eq!(split_port("odd:port"), ("odd:port", None));
/// ```
pub fn split_port(authority: &str) -> (&str, Option<&str>) {
    let bytes = authority.as_bytes();
    let digits = bytes
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let port_at = bytes.len() - digits;
    match port_at.checked_sub(1) {
        Some(colon) if bytes[colon] == b':' => (&authority[..colon], Some(&authority[port_at..])),
        _ => (authority, None),
    }
}
