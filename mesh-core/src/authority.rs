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
    match uri.authority() {
        Some(authority) => Some(authority.as_str()),
        None => host.and_then(|h| h.to_str().ok()),
    }
}

/// The authority `request` is addressed to (see [`addressed_authority`]).
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
    addressed_authority(request.uri(), request.headers().get(HOST))
}
