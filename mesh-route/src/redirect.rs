//! `HTTPRedirect` and `HTTPDirectResponse`: routes the mesh answers by itself.
//!
//! A redirect keeps what it does not replace (scheme, authority, path, query) and answers with
//! `redirectCode` (default 301) and a `location` header; a direct response answers with its
//! status and body (`string`, or base64 `bytes`).

use crate::config::{HttpDirectResponse, HttpRedirect, RedirectPortSelection};
use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use mesh_core::{Body, body};

/// Why a redirect or direct response could not be compiled.
///
/// ```
/// use mesh_route::{config::HttpRedirect, redirect::Redirect};
///
/// let spec = HttpRedirect { redirect_code: Some(200), ..Default::default() };
/// let error = Redirect::compile(&spec, "http[0].redirect").unwrap_err();
/// assert_eq!(error.to_string(), "http[0].redirect.redirectCode: 200 is not a redirect status (300-399)");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct LocalRouteError {
    field: String,
    message: String,
}

/// A compiled `redirect`.
///
/// ```
/// use mesh_route::{config::HttpRedirect, redirect::Redirect};
///
/// let spec = HttpRedirect { scheme: Some("https".into()), redirect_code: Some(308), ..Default::default() };
/// let redirect = Redirect::compile(&spec, "redirect").unwrap();
/// let request = http::Request::get("/cart?id=7").body(()).unwrap();
/// let response = redirect.respond(&request, "shop.example.com", None, None);
/// assert_eq!(response.status(), 308);
/// assert_eq!(response.headers()["location"], "https://shop.example.com/cart?id=7");
/// ```
#[derive(Clone, Debug)]
pub struct Redirect {
    status: StatusCode,
    scheme: Option<Box<str>>,
    authority: Option<Box<str>>,
    path: Option<Box<str>>,
    prefix_rewrite: Option<Box<str>>,
    port: PortChoice,
}

/// Which port the `location` names.
#[derive(Clone, Copy, Debug)]
enum PortChoice {
    /// Neither `port` nor `derivePort`: the redirect authority's port if it has one, else the
    /// request's.
    Keep,
    /// `port`.
    Fixed(u32),
    /// `derivePort: FROM_PROTOCOL_DEFAULT`: none, so the scheme's default applies.
    ProtocolDefault,
    /// `derivePort: FROM_REQUEST_PORT`: the request's port, even when the redirect sets
    /// `authority`; with none in the request, the port of the listener it came in on when
    /// there is one (Istio sets Envoy's `port_redirect` to the listener port), else none.
    FromRequest,
}

impl Redirect {
    /// Compiles `redirect`; `field` is its path for errors.
    ///
    /// ```
    /// use mesh_route::{config::HttpRedirect, redirect::Redirect};
    ///
    /// // Without `redirectCode`, the redirect is a 301.
    /// let redirect = Redirect::compile(&HttpRedirect::default(), "redirect").unwrap();
    /// let request = http::Request::get("/").body(()).unwrap();
    /// assert_eq!(redirect.respond(&request, "a.example.com", None, None).status(), 301);
    /// let bad = HttpRedirect { redirect_code: Some(404), ..Default::default() };
    /// assert!(Redirect::compile(&bad, "redirect").is_err());
    /// ```
    pub fn compile(redirect: &HttpRedirect, field: &str) -> Result<Self, LocalRouteError> {
        let code = redirect.redirect_code.unwrap_or(301);
        let status = u16::try_from(code)
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .filter(StatusCode::is_redirection)
            .ok_or_else(|| LocalRouteError {
                field: format!("{field}.redirectCode"),
                message: format!("{code} is not a redirect status (300-399)"),
            })?;
        let port = match (redirect.port, redirect.derive_port) {
            (Some(port), _) => PortChoice::Fixed(port),
            (None, Some(RedirectPortSelection::FromProtocolDefault)) => PortChoice::ProtocolDefault,
            (None, Some(RedirectPortSelection::FromRequestPort)) => PortChoice::FromRequest,
            (None, None) => PortChoice::Keep,
        };
        Ok(Redirect {
            status,
            scheme: redirect.scheme.as_deref().map(Box::from),
            authority: redirect.authority.as_deref().map(Box::from),
            path: redirect.uri.as_deref().map(Box::from),
            prefix_rewrite: redirect.prefix_rewrite.as_deref().map(Box::from),
            port,
        })
    }

    /// The redirect reply for `request`, addressed to `authority`; `matched_prefix` is the URI
    /// prefix the matching block used (for `prefixRewrite`), `listener_port` the port the
    /// request came in on, where one listener port serves the route (a gateway server's), for
    /// `derivePort: FROM_REQUEST_PORT` when `authority` has no port.
    ///
    /// ```
    /// use mesh_route::{config::{HttpRedirect, RedirectPortSelection}, redirect::Redirect};
    ///
    /// let spec = HttpRedirect {
    ///     authority: Some("new.example.com".into()),
    ///     prefix_rewrite: Some("/v2/".into()),
    ///     derive_port: Some(RedirectPortSelection::FromProtocolDefault),
    ///     ..Default::default()
    /// };
    /// let redirect = Redirect::compile(&spec, "redirect").unwrap();
    /// let request = http::Request::get("/v1/items").body(()).unwrap();
    /// let response = redirect.respond(&request, "old.example.com:8080", Some("/v1/"), None);
    /// assert_eq!(response.headers()["location"], "http://new.example.com/v2/items");
    /// ```
    pub fn respond<B>(
        &self,
        request: &Request<B>,
        authority: &str,
        matched_prefix: Option<&str>,
        listener_port: Option<u16>,
    ) -> Response<Body> {
        let uri = request.uri();
        let scheme = self
            .scheme
            .as_deref()
            .or(uri.scheme_str())
            .unwrap_or("http");
        let original = crate::host::split_authority(authority);
        let (host, authority_port) = match (&self.authority, &original) {
            (Some(a), _) => match crate::host::split_authority(a) {
                Some((h, p)) => (h, p),
                None => (a.to_string(), None),
            },
            (None, Some((h, p))) => (h.clone(), *p),
            (None, None) => (String::new(), None),
        };
        let port = match self.port {
            PortChoice::Fixed(p) => Some(p),
            PortChoice::ProtocolDefault => None,
            PortChoice::Keep => authority_port.map(u32::from),
            PortChoice::FromRequest => original
                .as_ref()
                .and_then(|(_, p)| *p)
                .or(listener_port)
                .map(u32::from),
        };
        let rewritten;
        let path = match (&self.path, &self.prefix_rewrite, matched_prefix) {
            (Some(path), _, _) => &**path,
            (None, Some(replacement), Some(prefix)) if uri.path().len() >= prefix.len() => {
                rewritten = format!("{replacement}{}", &uri.path()[prefix.len()..]);
                &rewritten
            }
            _ => uri.path(),
        };
        let mut location = format!("{scheme}://{host}");
        if let Some(port) = port {
            location.push_str(&format!(":{port}"));
        }
        location.push_str(path);
        if !path.contains('?')
            && let Some(query) = uri.query()
        {
            location.push('?');
            location.push_str(query);
        }
        let mut response = Response::new(body::empty());
        *response.status_mut() = self.status;
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        response
    }
}

/// A compiled `directResponse`.
///
/// ```
/// use mesh_route::{config::{HttpBody, HttpDirectResponse}, redirect::DirectResponse};
///
/// let spec = HttpDirectResponse { status: 503, body: Some(HttpBody { string: Some("down for maintenance".into()), bytes: None }) };
/// let response = DirectResponse::compile(&spec, "directResponse").unwrap().respond();
/// assert_eq!(response.status(), 503);
/// assert_eq!(response.headers()["content-length"], "20");
/// ```
#[derive(Clone, Debug)]
pub struct DirectResponse {
    status: StatusCode,
    body: Bytes,
}

impl DirectResponse {
    /// Compiles `direct`; `field` is its path for errors.
    ///
    /// ```
    /// use mesh_route::{config::{HttpBody, HttpDirectResponse}, redirect::DirectResponse};
    ///
    /// let bytes = HttpDirectResponse { status: 200, body: Some(HttpBody { string: None, bytes: Some("aGk=".into()) }) };
    /// let response = DirectResponse::compile(&bytes, "directResponse").unwrap().respond();
    /// assert_eq!(response.headers()["content-length"], "2"); // base64 "hi"
    /// let bad = HttpDirectResponse { status: 99, body: None };
    /// assert!(DirectResponse::compile(&bad, "directResponse").unwrap_err().to_string().contains("directResponse.status"));
    /// ```
    pub fn compile(direct: &HttpDirectResponse, field: &str) -> Result<Self, LocalRouteError> {
        let status = u16::try_from(direct.status)
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .filter(|s| (200..600).contains(&s.as_u16()))
            .ok_or_else(|| LocalRouteError {
                field: format!("{field}.status"),
                message: format!("{} is not an HTTP status (200-599)", direct.status),
            })?;
        let body = match direct.body.as_ref() {
            None => Bytes::new(),
            Some(b) => match (&b.string, &b.bytes) {
                (Some(s), _) => Bytes::from(s.clone()),
                (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map(Bytes::from)
                    .map_err(|e| LocalRouteError {
                        field: format!("{field}.body.bytes"),
                        message: format!("not valid base64: {e}"),
                    })?,
                (None, None) => Bytes::new(),
            },
        };
        Ok(DirectResponse { status, body })
    }

    /// The reply.
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use mesh_route::{config::{HttpBody, HttpDirectResponse}, redirect::DirectResponse};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let spec = HttpDirectResponse { status: 200, body: Some(HttpBody { string: Some("ok".into()), bytes: None }) };
    /// let response = DirectResponse::compile(&spec, "directResponse").unwrap().respond();
    /// assert_eq!(response.headers()["content-type"], "text/plain");
    /// let body = response.into_body().collect().await.unwrap().to_bytes();
    /// assert_eq!(body, "ok");
    /// # }
    /// ```
    pub fn respond(&self) -> Response<Body> {
        let mut response = Response::new(body::full(self.body.clone()));
        *response.status_mut() = self.status;
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        if !self.body.is_empty() {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_keeps_query_and_port() {
        let r = HttpRedirect {
            uri: Some("/new".into()),
            ..Default::default()
        };
        let r = Redirect::compile(&r, "r").unwrap();
        let req = Request::builder().uri("/old?a=1").body(()).unwrap();
        let resp = r.respond(&req, "catalog:8080", None, None);
        assert_eq!(resp.status(), 301);
        assert_eq!(
            resp.headers()[header::LOCATION],
            "http://catalog:8080/new?a=1"
        );
    }

    #[test]
    fn prefix_rewrite_replaces_the_matched_prefix() {
        let r = HttpRedirect {
            prefix_rewrite: Some("/v2/".into()),
            scheme: Some("https".into()),
            ..Default::default()
        };
        let r = Redirect::compile(&r, "r").unwrap();
        let req = Request::builder().uri("/v1/items").body(()).unwrap();
        let resp = r.respond(&req, "catalog", Some("/v1/"), None);
        assert_eq!(resp.headers()[header::LOCATION], "https://catalog/v2/items");
    }

    #[test]
    fn derive_port_from_request_keeps_the_request_port() {
        let r = HttpRedirect {
            authority: Some("new.example.com".into()),
            derive_port: Some(RedirectPortSelection::FromRequestPort),
            ..Default::default()
        };
        let r = Redirect::compile(&r, "r").unwrap();
        let req = Request::builder().uri("/items?a=1").body(()).unwrap();
        let resp = r.respond(&req, "old.example.com:8080", None, Some(80));
        assert_eq!(
            resp.headers()[header::LOCATION],
            "http://new.example.com:8080/items?a=1"
        );
        // No port on the request: the listener's, on a gateway server's port ...
        let resp = r.respond(&req, "old.example.com", None, Some(8443));
        assert_eq!(
            resp.headers()[header::LOCATION],
            "http://new.example.com:8443/items?a=1"
        );
        // ... and none where no one listener port serves the route.
        let resp = r.respond(&req, "old.example.com", None, None);
        assert_eq!(
            resp.headers()[header::LOCATION],
            "http://new.example.com/items?a=1"
        );
    }

    #[test]
    fn redirect_code_must_be_3xx() {
        let r = HttpRedirect {
            redirect_code: Some(200),
            ..Default::default()
        };
        assert!(Redirect::compile(&r, "r").is_err());
    }
}
