//! `HTTPRewrite`: rewriting the path and authority of a routed request before it goes upstream.
//!
//! `uri` is Envoy's `prefix_rewrite` (the matched prefix is replaced — `/` for a match
//! without a `uri` condition; with an exact or regex match the whole path is),
//! `uriRegexRewrite` is `regex_rewrite` (every match substituted, `\1` capture references
//! allowed), `authority` is `host_rewrite_literal`. The original path is kept in
//! `x-envoy-original-path`, as Envoy does.

use crate::{config::HttpRewrite, matcher::MatchError};
use http::{
    HeaderValue, Request, Uri,
    header::HOST,
    uri::{Authority, PathAndQuery},
};
use regex::Regex;

/// Header carrying the path before a rewrite.
///
/// ```
/// use mesh_route::{config::HttpRewrite, rewrite::{ORIGINAL_PATH, Rewrite}};
///
/// let spec = HttpRewrite { uri: Some("/".into()), ..Default::default() };
/// let mut request = http::Request::get("/legacy/items").body(()).unwrap();
/// Rewrite::compile(Some(&spec), None, "rewrite").unwrap().apply(&mut request, Some("/legacy/"));
/// assert_eq!(request.headers()[ORIGINAL_PATH], "/legacy/items");
/// ```
pub const ORIGINAL_PATH: &str = "x-envoy-original-path";

/// A compiled `rewrite` block (plus any authority set through header operations).
///
/// ```
/// use mesh_route::{config::{HttpRewrite, RegexRewrite}, rewrite::Rewrite};
///
/// let spec = HttpRewrite {
///     uri_regex_rewrite: Some(RegexRewrite { match_: "^/users/([0-9]+)$".into(), rewrite: "/v2/user/\\1".into() }),
///     ..Default::default()
/// };
/// let rewrite = Rewrite::compile(Some(&spec), None, "rewrite").unwrap();
/// let mut request = http::Request::get("/users/42?full=1").body(()).unwrap();
/// rewrite.apply(&mut request, None);
/// assert_eq!(request.uri(), "/v2/user/42?full=1");
/// ```
#[derive(Clone, Debug, Default)]
pub struct Rewrite {
    uri: Option<Box<str>>,
    uri_regex: Option<(Regex, String)>,
    authority: Option<HeaderValue>,
}

impl Rewrite {
    /// Compiles `rewrite`; `authority` (from a `host` header operation) is used when the block
    /// has none of its own.
    ///
    /// ```
    /// use http::{HeaderValue, header::HOST};
    /// use mesh_route::{config::HttpRewrite, rewrite::Rewrite};
    ///
    /// // No block of its own: the authority from the `host` header operation applies.
    /// let rewrite = Rewrite::compile(None, Some(HeaderValue::from_static("b.example.com")), "rewrite").unwrap();
    /// let mut request = http::Request::get("/").header(HOST, "a.example.com").body(()).unwrap();
    /// rewrite.apply(&mut request, None);
    /// assert_eq!(request.headers()[HOST], "b.example.com");
    /// // An invalid regex is an error naming the field.
    /// let bad = HttpRewrite { uri_regex_rewrite: Some(mesh_route::config::RegexRewrite { match_: "(".into(), rewrite: "/".into() }), ..Default::default() };
    /// assert!(Rewrite::compile(Some(&bad), None, "rewrite").unwrap_err().to_string().starts_with("rewrite.uriRegexRewrite.match"));
    /// ```
    pub fn compile(
        rewrite: Option<&HttpRewrite>,
        authority: Option<HeaderValue>,
        field: &str,
    ) -> Result<Self, MatchError> {
        let Some(rewrite) = rewrite else {
            return Ok(Rewrite {
                authority,
                ..Rewrite::default()
            });
        };
        let uri_regex = match &rewrite.uri_regex_rewrite {
            Some(r) => {
                // Regex rewrites are substring substitutions, so the pattern is not anchored.
                let re = Regex::new(&r.match_).map_err(|source| MatchError::Regex {
                    field: format!("{field}.uriRegexRewrite.match"),
                    pattern: r.match_.clone(),
                    source,
                })?;
                Some((re, to_regex_replacement(&r.rewrite)))
            }
            None => None,
        };
        let own_authority = match &rewrite.authority {
            Some(a) => Some(
                HeaderValue::from_str(a).map_err(|_| MatchError::HeaderName {
                    field: format!("{field}.authority"),
                    name: a.clone(),
                })?,
            ),
            None => None,
        };
        Ok(Rewrite {
            uri: rewrite.uri.as_deref().map(Box::from),
            uri_regex,
            authority: own_authority.or(authority),
        })
    }

    /// This rewrite for requests sent to one destination, whose own `headers.request` set (or
    /// add) `host` to `authority`.
    ///
    /// The route's authority (`rewrite.authority`, else its own `host` header operation) wins:
    /// Envoy applies a weighted cluster's `host_rewrite_literal` before the route's, which
    /// then overwrites it, and Istio keeps that precedence when it folds a single destination
    /// into the route. The destination's applies when the route sets none.
    ///
    /// ```
    /// use http::{HeaderValue, header::HOST};
    /// use mesh_route::{config::HttpRewrite, rewrite::Rewrite};
    ///
    /// let destination = Some(HeaderValue::from_static("dest.example.com"));
    /// let plain = Rewrite::compile(None, None, "rewrite").unwrap().for_destination(destination.clone());
    /// let mut request = http::Request::get("/").header(HOST, "a.example.com").body(()).unwrap();
    /// plain.apply(&mut request, None);
    /// assert_eq!(request.headers()[HOST], "dest.example.com");
    /// // A route-level authority takes precedence.
    /// let spec = HttpRewrite { authority: Some("route.example.com".into()), ..Default::default() };
    /// let route = Rewrite::compile(Some(&spec), None, "rewrite").unwrap().for_destination(destination);
    /// route.apply(&mut request, None);
    /// assert_eq!(request.headers()[HOST], "route.example.com");
    /// ```
    pub fn for_destination(&self, authority: Option<HeaderValue>) -> Rewrite {
        Rewrite {
            authority: self.authority.clone().or(authority),
            ..self.clone()
        }
    }

    /// Whether the rewrite changes nothing.
    ///
    /// ```
    /// use mesh_route::{config::HttpRewrite, rewrite::Rewrite};
    ///
    /// assert!(Rewrite::compile(None, None, "rewrite").unwrap().is_empty());
    /// let spec = HttpRewrite { authority: Some("b.example.com".into()), ..Default::default() };
    /// assert!(!Rewrite::compile(Some(&spec), None, "rewrite").unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.uri.is_none() && self.uri_regex.is_none() && self.authority.is_none()
    }

    /// Rewrites `request`. `matched_prefix` is the URI prefix the matching block used, if any.
    ///
    /// ```
    /// use mesh_route::{config::HttpRewrite, rewrite::Rewrite};
    ///
    /// let spec = HttpRewrite { uri: Some("/v2/".into()), ..Default::default() };
    /// let rewrite = Rewrite::compile(Some(&spec), None, "rewrite").unwrap();
    /// let mut request = http::Request::get("/api/items").body(()).unwrap();
    /// rewrite.apply(&mut request, Some("/api/"));
    /// assert_eq!(request.uri(), "/v2/items");
    /// // Without a matched prefix (exact or regex match), the whole path is replaced.
    /// let mut request = http::Request::get("/api/items").body(()).unwrap();
    /// rewrite.apply(&mut request, None);
    /// assert_eq!(request.uri(), "/v2/");
    /// ```
    pub fn apply<B>(&self, request: &mut Request<B>, matched_prefix: Option<&str>) {
        if let Some(authority) = &self.authority {
            request.headers_mut().insert(HOST, authority.clone());
            if request.uri().authority().is_some()
                && let Ok(parsed) = Authority::try_from(authority.as_bytes())
            {
                let mut parts = request.uri().clone().into_parts();
                parts.authority = Some(parsed);
                if let Ok(uri) = Uri::from_parts(parts) {
                    *request.uri_mut() = uri;
                }
            }
        }
        let path = request.uri().path();
        let new_path = if let Some(prefix_rewrite) = &self.uri {
            let rest = match matched_prefix {
                Some(prefix) if path.len() >= prefix.len() => &path[prefix.len()..],
                _ => "",
            };
            Some(format!("{prefix_rewrite}{rest}"))
        } else {
            self.uri_regex
                .as_ref()
                .map(|(re, replacement)| re.replace_all(path, replacement.as_str()).into_owned())
        };
        let Some(new_path) = new_path else { return };
        if let Ok(original) = HeaderValue::from_str(path) {
            request.headers_mut().insert(ORIGINAL_PATH, original);
        }
        let with_query = match request.uri().query() {
            Some(query) => format!("{new_path}?{query}"),
            None => new_path,
        };
        let mut parts = request.uri().clone().into_parts();
        if let Ok(pq) = PathAndQuery::try_from(with_query) {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
}

/// Turns RE2/Envoy-style `\1` references into the regex crate's `${1}`.
fn to_regex_replacement(rewrite: &str) -> String {
    let mut out = String::with_capacity(rewrite.len());
    let mut chars = rewrite.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(d)) if d.is_ascii_digit() => {
                out.push_str("${");
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    out.push(*d);
                    chars.next();
                }
                out.push('}');
            }
            ('$', _) => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RegexRewrite;

    fn request(uri: &str) -> Request<()> {
        Request::builder().uri(uri).body(()).unwrap()
    }

    #[test]
    fn prefix_rewrite_replaces_matched_prefix() {
        let rw = HttpRewrite {
            uri: Some("/v2/".into()),
            ..Default::default()
        };
        let rw = Rewrite::compile(Some(&rw), None, "r").unwrap();
        let mut req = request("/api/items?x=1");
        rw.apply(&mut req, Some("/api/"));
        assert_eq!(req.uri(), "/v2/items?x=1");
        assert_eq!(req.headers()[ORIGINAL_PATH], "/api/items");
    }

    #[test]
    fn regex_rewrite_with_captures() {
        let rw = HttpRewrite {
            uri_regex_rewrite: Some(RegexRewrite {
                match_: "^/service/([^/]+)(/.*)$".into(),
                rewrite: "\\2/instance/\\1".into(),
            }),
            ..Default::default()
        };
        let rw = Rewrite::compile(Some(&rw), None, "r").unwrap();
        let mut req = request("/service/foo/v1/api");
        rw.apply(&mut req, None);
        assert_eq!(req.uri(), "/v1/api/instance/foo");
    }

    #[test]
    fn authority_rewrite_sets_host_and_absolute_uri() {
        let rw = HttpRewrite {
            authority: Some("new.example".into()),
            ..Default::default()
        };
        let rw = Rewrite::compile(Some(&rw), None, "r").unwrap();
        let mut req = request("http://old.example/x");
        rw.apply(&mut req, None);
        assert_eq!(req.uri(), "http://new.example/x");
        assert_eq!(req.headers()[HOST], "new.example");
    }
}
