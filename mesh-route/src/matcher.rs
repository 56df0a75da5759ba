//! Pre-compiled request matchers: Istio `StringMatch` and `HTTPMatchRequest`, compiled once per
//! config so that matching a request allocates nothing.
//!
//! Semantics follow Envoy as Istio configures it: regexes match the whole string (RE2-style,
//! anchored), `ignoreUriCase` applies to URI `exact`/`prefix` only, header keys are matched by
//! pre-parsed [`HeaderName`], several values of one header are joined with `,`, a
//! `withoutHeaders` condition treats a missing header as empty (so it is satisfied), and an
//! empty match (`{}`) means "present". `port` is the port the request addressed (see
//! [`addressed_port`]); `sourceLabels`, `sourceNamespace` and `gateways` are config-time
//! selectors the route table decides when it is compiled, not request conditions.

use crate::config::{self, StringMatch};
use http::{HeaderMap, HeaderName, Request};
use regex::Regex;
use std::borrow::Cow;

/// Why a match could not be compiled. Validation reports these first, with file and field.
///
/// ```
/// use mesh_route::{config::StringMatch, matcher::{MatchError, StringMatcher}};
///
/// let both = StringMatch { exact: Some("a".into()), prefix: Some("b".into()), regex: None };
/// let error = StringMatcher::compile(&both, false, "http[0].match[0].uri").unwrap_err();
/// assert!(matches!(error, MatchError::Shape { .. }));
/// assert_eq!(error.to_string(), "http[0].match[0].uri: exactly one of exact, prefix or regex must be set");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    /// A regex did not compile.
    #[error("{field}: invalid regex {pattern:?}: {}", regex_reason(source))]
    Regex {
        /// Field path of the regex.
        field: String,
        /// The regex as written.
        pattern: String,
        /// The regex crate's explanation.
        source: regex::Error,
    },
    /// A header name is not a valid HTTP header name.
    #[error("{field}: invalid header name {name:?}")]
    HeaderName {
        /// Field path of the header.
        field: String,
        /// The name as written.
        name: String,
    },
    /// A `StringMatch` sets more than one of exact/prefix/regex, or none where one is needed.
    #[error("{field}: exactly one of exact, prefix or regex must be set")]
    Shape {
        /// Field path of the match.
        field: String,
    },
    /// A `port` is not a port number.
    #[error("{field}: port {port} is not in 1-65535")]
    Port {
        /// Field path of the port.
        field: String,
        /// The port as written.
        port: u32,
    },
}

/// One compiled `StringMatch`.
///
/// ```
/// use mesh_route::{config::StringMatch, matcher::StringMatcher};
///
/// let m = StringMatch { prefix: Some("/api/".into()), ..Default::default() };
/// let matcher = StringMatcher::compile(&m, false, "uri").unwrap();
/// assert!(matches!(matcher, StringMatcher::Prefix(_)));
/// assert!(matcher.matches("/api/items", false));
/// ```
#[derive(Clone, Debug)]
pub enum StringMatcher {
    /// The whole value equals this.
    Exact(Box<str>),
    /// The value starts with this.
    Prefix(Box<str>),
    /// The regex matches the whole value.
    Regex(Regex),
    /// Any value matches (presence check).
    Present,
}

impl StringMatcher {
    /// Compiles `m`; an empty match means presence. `ignore_case` lower-cases exact/prefix.
    ///
    /// ```
    /// use mesh_route::{config::StringMatch, matcher::StringMatcher};
    ///
    /// let exact = StringMatch { exact: Some("/Items".into()), ..Default::default() };
    /// assert!(matches!(StringMatcher::compile(&exact, true, "uri").unwrap(), StringMatcher::Exact(e) if &*e == "/items"));
    /// let empty = StringMatch::default();
    /// assert!(matches!(StringMatcher::compile(&empty, false, "headers.x-a").unwrap(), StringMatcher::Present));
    /// ```
    pub fn compile(m: &StringMatch, ignore_case: bool, field: &str) -> Result<Self, MatchError> {
        let shape = || MatchError::Shape {
            field: field.to_string(),
        };
        let fold = |s: &str| -> Box<str> {
            if ignore_case {
                s.to_ascii_lowercase().into()
            } else {
                s.into()
            }
        };
        match (&m.exact, &m.prefix, &m.regex) {
            (Some(exact), None, None) => Ok(StringMatcher::Exact(fold(exact))),
            (None, Some(prefix), None) => Ok(StringMatcher::Prefix(fold(prefix))),
            (None, None, Some(re)) => compile_regex(re, field).map(StringMatcher::Regex),
            (None, None, None) => Ok(StringMatcher::Present),
            _ => Err(shape()),
        }
    }

    /// Like [`compile`](Self::compile), but an empty match is an error (uri, method, …).
    ///
    /// ```
    /// use mesh_route::{config::StringMatch, matcher::StringMatcher};
    ///
    /// assert!(StringMatcher::compile_required(&StringMatch::default(), false, "method").is_err());
    /// let get = StringMatch { exact: Some("GET".into()), ..Default::default() };
    /// assert!(StringMatcher::compile_required(&get, false, "method").unwrap().matches("GET", false));
    /// ```
    pub fn compile_required(
        m: &StringMatch,
        ignore_case: bool,
        field: &str,
    ) -> Result<Self, MatchError> {
        match Self::compile(m, ignore_case, field)? {
            StringMatcher::Present => Err(MatchError::Shape {
                field: field.to_string(),
            }),
            matcher => Ok(matcher),
        }
    }

    /// Whether `value` matches. `ignore_case` compares exact/prefix case-insensitively
    /// (the pattern was lower-cased at compile time).
    ///
    /// ```
    /// use mesh_route::{config::StringMatch, matcher::StringMatcher};
    ///
    /// let m = StringMatch { regex: Some(r"v\d+".into()), ..Default::default() };
    /// let regex = StringMatcher::compile(&m, false, "headers.x-version").unwrap();
    /// assert!(regex.matches("v12", false));
    /// assert!(!regex.matches("v12-beta", false)); // anchored: the whole value must match
    /// let prefix = StringMatcher::Prefix("/api".into());
    /// assert!(prefix.matches("/API/items", true));
    /// assert!(!prefix.matches("/API/items", false));
    /// ```
    pub fn matches(&self, value: &str, ignore_case: bool) -> bool {
        match self {
            StringMatcher::Exact(exact) if ignore_case => value.eq_ignore_ascii_case(exact),
            StringMatcher::Exact(exact) => value == &**exact,
            StringMatcher::Prefix(prefix) if ignore_case => {
                value.len() >= prefix.len()
                    && value.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
            }
            StringMatcher::Prefix(prefix) => value.starts_with(&**prefix),
            StringMatcher::Regex(re) => re.is_match(value),
            StringMatcher::Present => true,
        }
    }

    /// The literal prefix, when this is a prefix match (used by `rewrite.uri`).
    ///
    /// ```
    /// use mesh_route::matcher::StringMatcher;
    ///
    /// assert_eq!(StringMatcher::Prefix("/api/".into()).prefix(), Some("/api/"));
    /// assert_eq!(StringMatcher::Exact("/api/".into()).prefix(), None);
    /// ```
    pub fn prefix(&self) -> Option<&str> {
        match self {
            StringMatcher::Prefix(prefix) => Some(prefix),
            _ => None,
        }
    }
}

/// The regex crate's explanation in one line (its last), without the pattern echo.
///
/// ```
/// use mesh_route::matcher::regex_reason;
///
/// let error = regex::Regex::new("a(b").unwrap_err();
/// let reason = regex_reason(&error);
/// assert!(!reason.contains('\n') && !reason.starts_with("error: "));
/// assert!(reason.contains("unclosed group"), "{reason}");
/// ```
pub fn regex_reason(error: &regex::Error) -> String {
    let text = error.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(&text);
    last.trim().trim_start_matches("error: ").to_string()
}

/// Compiles `pattern` anchored at both ends, as Envoy's `safe_regex` matches.
///
/// ```
/// use mesh_route::matcher::compile_regex;
///
/// let re = compile_regex("cat|dog", "uri.regex").unwrap();
/// assert!(re.is_match("dog"));
/// assert!(!re.is_match("hotdog"));
/// let error = compile_regex("(", "uri.regex").unwrap_err();
/// assert!(error.to_string().starts_with("uri.regex: invalid regex \"(\""), "{error}");
/// ```
pub fn compile_regex(pattern: &str, field: &str) -> Result<Regex, MatchError> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|source| MatchError::Regex {
        field: field.to_string(),
        pattern: pattern.to_string(),
        source,
    })
}

/// A header condition: name plus matcher.
#[derive(Clone, Debug)]
struct HeaderCondition {
    name: HeaderName,
    matcher: StringMatcher,
}

impl HeaderCondition {
    fn compile(name: &str, m: &StringMatch, field: &str) -> Result<Self, MatchError> {
        let header =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| MatchError::HeaderName {
                field: field.to_string(),
                name: name.to_string(),
            })?;
        // Istio quirk: `regex: "*"` is a presence check, not an RE2 pattern.
        let matcher = if m.regex.as_deref() == Some("*") && m.exact.is_none() && m.prefix.is_none()
        {
            StringMatcher::Present
        } else {
            StringMatcher::compile(m, false, &format!("{field}.{name}"))?
        };
        Ok(HeaderCondition {
            name: header,
            matcher,
        })
    }

    /// The header's value as Envoy sees it: several values joined with `,`.
    fn value<'a>(&self, headers: &'a HeaderMap) -> Option<Cow<'a, str>> {
        let mut values = headers.get_all(&self.name).iter();
        let first = values.next()?.to_str().unwrap_or("");
        match values.next() {
            None => Some(Cow::Borrowed(first)),
            Some(second) => {
                let mut joined = format!("{first},{}", second.to_str().unwrap_or(""));
                for more in values {
                    joined.push(',');
                    joined.push_str(more.to_str().unwrap_or(""));
                }
                Some(Cow::Owned(joined))
            }
        }
    }

    fn matches(&self, headers: &HeaderMap) -> bool {
        self.value(headers)
            .is_some_and(|v| self.matcher.matches(&v, false))
    }

    /// `withoutHeaders`: inverted, and a missing header counts as empty unless this is a
    /// presence check.
    fn matches_inverted(&self, headers: &HeaderMap) -> bool {
        match (self.value(headers), &self.matcher) {
            (None, _) => true,
            (Some(_), StringMatcher::Present) => false,
            (Some(v), matcher) => !matcher.matches(&v, false),
        }
    }
}

/// One compiled `HTTPMatchRequest`: every condition must hold.
///
/// ```
/// use mesh_route::{config::HttpMatchRequest, matcher::RequestMatch};
///
/// let mut spec = HttpMatchRequest::default();
/// spec.query_params.insert("debug".into(), Default::default()); // present
/// let m = RequestMatch::compile(&spec, "http[0].match[0]").unwrap();
/// let request = |uri: &str| http::Request::get(uri).body(()).unwrap();
/// assert!(m.matches(&request("/items?debug=%31"), "api", 80));
/// assert!(!m.matches(&request("/items"), "api", 80));
/// ```
#[derive(Clone, Debug, Default)]
pub struct RequestMatch {
    uri: Option<StringMatcher>,
    ignore_uri_case: bool,
    scheme: Option<StringMatcher>,
    method: Option<StringMatcher>,
    authority: Option<StringMatcher>,
    headers: Vec<HeaderCondition>,
    without_headers: Vec<HeaderCondition>,
    query: Vec<(Box<str>, StringMatcher)>,
    /// The port the request must have addressed.
    port: Option<u16>,
    /// The match block's `name`, joined to the route name in logs.
    pub name: Option<Box<str>>,
}

impl RequestMatch {
    /// Compiles an `HTTPMatchRequest`; `field` is its path (e.g. `http[0].match[1]`).
    ///
    /// ```
    /// use mesh_route::{config::{Config, HttpMatchRequest, StringMatch}, matcher::RequestMatch};
    ///
    /// let yaml = r#"
    /// apiVersion: networking.istio.io/v1
    /// kind: VirtualService
    /// metadata: {name: api}
    /// spec:
    ///   hosts: [api.example.com]
    ///   http:
    ///   - match: [{uri: {prefix: /v1/}, method: {exact: POST}, headers: {x-beta: {}}}]
    ///     directResponse: {status: 200}
    /// "#;
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let spec = &config.virtual_services[0].spec.http[0].match_[0];
    /// assert!(RequestMatch::compile(spec, "http[0].match[0]").is_ok());
    /// let mut bad = HttpMatchRequest::default();
    /// bad.headers.insert("bad header".into(), StringMatch::default());
    /// assert!(RequestMatch::compile(&bad, "m").unwrap_err().to_string().contains("invalid header name"));
    /// ```
    pub fn compile(m: &config::HttpMatchRequest, field: &str) -> Result<Self, MatchError> {
        let required = |s: &Option<StringMatch>, name: &str, fold: bool| {
            s.as_ref()
                .map(|s| StringMatcher::compile_required(s, fold, &format!("{field}.{name}")))
                .transpose()
        };
        let headers = |map: &std::collections::BTreeMap<String, StringMatch>, name: &str| {
            map.iter()
                .filter(|(key, _)| {
                    !matches!(key.as_str(), "uri" | "scheme" | "method" | "authority")
                })
                .map(|(key, m)| HeaderCondition::compile(key, m, &format!("{field}.{name}")))
                .collect::<Result<Vec<_>, _>>()
        };
        let query = m
            .query_params
            .iter()
            .map(|(key, q)| {
                StringMatcher::compile(q, false, &format!("{field}.queryParams.{key}"))
                    .map(|matcher| (Box::from(key.as_str()), matcher))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RequestMatch {
            uri: required(&m.uri, "uri", m.ignore_uri_case)?,
            ignore_uri_case: m.ignore_uri_case,
            scheme: required(&m.scheme, "scheme", false)?,
            method: required(&m.method, "method", false)?,
            authority: required(&m.authority, "authority", false)?,
            headers: headers(&m.headers, "headers")?,
            without_headers: headers(&m.without_headers, "withoutHeaders")?,
            query,
            port: compile_port(m.port, field)?,
            name: m.name.as_deref().map(Box::from),
        })
    }

    /// The URI prefix this block matches on (what `rewrite.uri` and `redirect.prefixRewrite`
    /// replace): its `uri.prefix`, or `/` when it has no `uri` condition — Istio gives Envoy
    /// such a block as a `prefix: "/"` match. `None` for an exact or regex URI match.
    ///
    /// ```
    /// use mesh_route::{config::{HttpMatchRequest, StringMatch}, matcher::RequestMatch};
    ///
    /// let uri = |m: StringMatch| HttpMatchRequest { uri: Some(m), ..Default::default() };
    /// let prefix = uri(StringMatch { prefix: Some("/v1/".into()), ..Default::default() });
    /// assert_eq!(RequestMatch::compile(&prefix, "m").unwrap().uri_prefix(), Some("/v1/"));
    /// let exact = uri(StringMatch { exact: Some("/v1".into()), ..Default::default() });
    /// assert_eq!(RequestMatch::compile(&exact, "m").unwrap().uri_prefix(), None);
    /// assert_eq!(RequestMatch::default().uri_prefix(), Some("/"));
    /// ```
    pub fn uri_prefix(&self) -> Option<&str> {
        match &self.uri {
            Some(uri) => uri.prefix(),
            None => Some("/"),
        }
    }

    /// Whether the block has a URI condition at all.
    ///
    /// ```
    /// use mesh_route::{config::{HttpMatchRequest, StringMatch}, matcher::RequestMatch};
    ///
    /// let spec = HttpMatchRequest { uri: Some(StringMatch { exact: Some("/".into()), ..Default::default() }), ..Default::default() };
    /// assert!(RequestMatch::compile(&spec, "m").unwrap().has_uri());
    /// assert!(!RequestMatch::default().has_uri());
    /// ```
    pub fn has_uri(&self) -> bool {
        self.uri.is_some()
    }

    /// Whether `request` — addressed to `authority` and `port` (the listener's, or
    /// [`addressed_port`]) — satisfies every condition.
    ///
    /// ```
    /// use mesh_route::{config::Config, matcher::RequestMatch};
    ///
    /// let yaml = r#"
    /// apiVersion: networking.istio.io/v1
    /// kind: VirtualService
    /// metadata: {name: api}
    /// spec:
    ///   hosts: [api.example.com]
    ///   http:
    ///   - match: [{uri: {prefix: /v1/}, method: {exact: POST}, headers: {x-beta: {}}}]
    ///     directResponse: {status: 200}
    /// "#;
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let spec = &config.virtual_services[0].spec.http[0].match_[0];
    /// let m = RequestMatch::compile(spec, "http[0].match[0]").unwrap();
    /// let post = http::Request::post("/v1/orders").header("x-beta", "yes").body(()).unwrap();
    /// assert!(m.matches(&post, "api.example.com", 80));
    /// let get = http::Request::get("/v1/orders").header("x-beta", "yes").body(()).unwrap();
    /// assert!(!m.matches(&get, "api.example.com", 80));
    /// ```
    pub fn matches<B>(&self, request: &Request<B>, authority: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        let uri = request.uri();
        if let Some(m) = &self.uri
            && !m.matches(uri.path(), self.ignore_uri_case)
        {
            return false;
        }
        if let Some(m) = &self.method
            && !m.matches(request.method().as_str(), false)
        {
            return false;
        }
        if let Some(m) = &self.authority
            && !m.matches(authority, false)
        {
            return false;
        }
        if let Some(m) = &self.scheme
            && !m.matches(uri.scheme_str().unwrap_or("http"), false)
        {
            return false;
        }
        let headers = request.headers();
        self.headers.iter().all(|h| h.matches(headers))
            && self
                .without_headers
                .iter()
                .all(|h| h.matches_inverted(headers))
            && self
                .query
                .iter()
                .all(|(key, m)| query_matches(uri.query(), key, m))
    }
}

/// A match block's `port`: unset or `0` (Istio's unset) is any port.
fn compile_port(port: Option<u32>, field: &str) -> Result<Option<u16>, MatchError> {
    match port {
        None | Some(0) => Ok(None),
        Some(p) => u16::try_from(p).map(Some).map_err(|_| MatchError::Port {
            field: format!("{field}.port"),
            port: p,
        }),
    }
}

/// The port `request` addressed on its host: the one in `authority` (the absolute-form URI's,
/// else `Host`'s; see [`request_authority`]), else the default port of its scheme — 443 for
/// `https`, 80 otherwise. This is the port a sidecar's outbound match blocks compare their
/// `port` with; on a gateway, the port is the listener's.
///
/// ```
/// use mesh_route::matcher::addressed_port;
///
/// let port = |uri: &str, host: &str| {
///     let request = http::Request::get(uri).header("host", host).body(()).unwrap();
///     addressed_port(&request, mesh_route::matcher::request_authority(&request).unwrap())
/// };
/// assert_eq!(port("http://catalog:9080/", "ignored"), 9080);
/// assert_eq!(port("/items", "catalog:9080"), 9080);
/// assert_eq!(port("/items", "catalog"), 80);
/// assert_eq!(port("https://catalog/", "catalog"), 443);
/// assert_eq!(port("/items", "[::1]:8443"), 8443);
/// ```
pub fn addressed_port<B>(request: &Request<B>, authority: &str) -> u16 {
    split_port(authority)
        .1
        .and_then(|p| p.parse().ok())
        .unwrap_or(match request.uri().scheme_str() {
            Some(scheme) if scheme.eq_ignore_ascii_case("https") => 443,
            _ => 80,
        })
}

pub(crate) use mesh_core::authority::split_port;

fn query_matches(query: Option<&str>, key: &str, matcher: &StringMatcher) -> bool {
    let Some(query) = query else { return false };
    query.split('&').any(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        percent_decode(k) == key && matcher.matches(&percent_decode(v), false)
    })
}

/// Decodes `%XX` escapes and `+` (as a space), borrowing when there is nothing to decode.
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex(*hi).zip(hex(*lo)).map(|(hi, lo)| hi << 4 | lo),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

pub use mesh_core::authority::request_authority;

#[cfg(test)]
mod tests {
    use super::*;

    fn sm(exact: Option<&str>, prefix: Option<&str>, regex: Option<&str>) -> StringMatch {
        StringMatch {
            exact: exact.map(Into::into),
            prefix: prefix.map(Into::into),
            regex: regex.map(Into::into),
        }
    }

    #[test]
    fn regex_is_anchored() {
        let m = StringMatcher::compile(&sm(None, None, Some(r"\d+")), false, "f").unwrap();
        assert!(m.matches("123", false));
        assert!(!m.matches("a123", false));
        assert!(!m.matches("123a", false));
    }

    #[test]
    fn ignore_case_applies_to_exact_and_prefix() {
        let m = StringMatcher::compile(&sm(None, Some("/Items"), None), true, "f").unwrap();
        assert!(m.matches("/ITEMS/1", true));
        let m = StringMatcher::compile(&sm(Some("/Items"), None, None), false, "f").unwrap();
        assert!(!m.matches("/items", false));
    }

    #[test]
    fn two_kinds_is_an_error() {
        assert!(StringMatcher::compile(&sm(Some("a"), Some("b"), None), false, "f").is_err());
        assert!(StringMatcher::compile_required(&sm(None, None, None), false, "f").is_err());
    }

    #[test]
    fn splits_ports() {
        assert_eq!(split_port("catalog:80"), ("catalog", Some("80")));
        assert_eq!(split_port("catalog"), ("catalog", None));
        assert_eq!(split_port("[::1]:8080"), ("[::1]", Some("8080")));
        assert_eq!(split_port("[::1]"), ("[::1]", None));
        assert_eq!(split_port("odd:port"), ("odd:port", None));
    }

    #[test]
    fn port_is_the_addressed_port() {
        let spec = config::HttpMatchRequest {
            port: Some(9080),
            ..Default::default()
        };
        let m = RequestMatch::compile(&spec, "m").unwrap();
        let request = Request::get("/").body(()).unwrap();
        assert!(m.matches(&request, "catalog:9080", 9080));
        assert!(!m.matches(&request, "catalog", 80));
        // `port: 0` is Istio's unset; beyond 65535 is an error.
        let any = config::HttpMatchRequest {
            port: Some(0),
            ..Default::default()
        };
        assert!(
            RequestMatch::compile(&any, "m")
                .unwrap()
                .matches(&request, "c", 1)
        );
        let bad = config::HttpMatchRequest {
            port: Some(70000),
            ..Default::default()
        };
        let error = RequestMatch::compile(&bad, "m").unwrap_err().to_string();
        assert_eq!(error, "m.port: port 70000 is not in 1-65535");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
        assert_eq!(percent_decode("end%"), "end%");
    }
}
