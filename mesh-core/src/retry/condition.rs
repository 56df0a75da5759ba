//! [`RetryOn`]: Istio's `retryOn` list (Envoy's `retry_on`), and the classification of an
//! attempt's outcome against it — which errors and responses are worth another try.
//!
//! Semantics follow current Envoy (`RetryStateImpl::wouldRetryFromReset` and
//! `wouldRetryFromHeaders`): a status code matches only a real upstream response, never a
//! reset the mesh would report as 503; overflow is never retried; the route timeout (applied
//! outside the retry layer) is never retried; a per-try timeout is retried under `5xx`,
//! `gateway-error` and `reset`. The request headers `x-envoy-retriable-status-codes` and
//! `x-envoy-retriable-header-names` extend the policy per request ([`RetryHeaders`]).

use crate::{BoxError, MeshError, ResponseFlag, ResponseFlags};
use http::{HeaderMap, HeaderName, Response};
use std::fmt;

/// Request header adding status codes to `retriable-status-codes` (consumed, not forwarded).
///
/// ```
/// use mesh_core::retry::{RetryHeaders, RetryOn, condition::RETRIABLE_STATUS_CODES};
/// let mut headers = http::HeaderMap::new();
/// headers.insert(RETRIABLE_STATUS_CODES, "418".parse().unwrap());
/// let extra = RetryHeaders::take_from(&mut headers);
/// let teapot = http::Response::builder().status(418).body(()).unwrap();
/// assert!(RetryOn::parse("retriable-status-codes").unwrap().retries_response(&teapot, &extra));
/// assert!(!headers.contains_key(RETRIABLE_STATUS_CODES));
/// ```
pub const RETRIABLE_STATUS_CODES: HeaderName =
    HeaderName::from_static("x-envoy-retriable-status-codes");
/// Request header naming response headers that make a response retriable under
/// `retriable-headers` (consumed, not forwarded).
///
/// ```
/// use mesh_core::retry::{RetryHeaders, RetryOn, condition::RETRIABLE_HEADER_NAMES};
/// let mut headers = http::HeaderMap::new();
/// headers.insert(RETRIABLE_HEADER_NAMES, "x-try-again".parse().unwrap());
/// let extra = RetryHeaders::take_from(&mut headers);
/// let on = RetryOn::parse("retriable-headers").unwrap();
/// let flagged = http::Response::builder().header("x-try-again", "1").body(()).unwrap();
/// assert!(on.retries_response(&flagged, &extra));
/// assert!(!on.retries_response(&http::Response::new(()), &extra));
/// ```
pub const RETRIABLE_HEADER_NAMES: HeaderName =
    HeaderName::from_static("x-envoy-retriable-header-names");
/// Response header of a rate-limited reply from an upstream Envoy.
///
/// ```
/// use mesh_core::retry::{RetryHeaders, RetryOn, condition::ENVOY_RATELIMITED};
/// let limited = http::Response::builder().status(503).header(ENVOY_RATELIMITED, "true").body(()).unwrap();
/// let none = RetryHeaders::default();
/// assert!(!RetryOn::parse("5xx").unwrap().retries_response(&limited, &none));
/// assert!(RetryOn::parse("envoy-ratelimited").unwrap().retries_response(&limited, &none));
/// ```
pub const ENVOY_RATELIMITED: HeaderName = HeaderName::from_static("x-envoy-ratelimited");
/// Response header of a circuit-breaker (overflow) local reply. The mesh never retries its
/// own overflow; an upstream's overloaded 503 is retried like any other, as current Envoy
/// does (older Envoy refused; retry budgets are what keep such retries in bounds).
///
/// ```
/// use mesh_core::{MeshError, retry::{RetryHeaders, RetryOn, condition::ENVOY_OVERLOADED}};
/// let five_xx = RetryOn::parse("5xx").unwrap();
/// let overflow = MeshError::Overflow.to_response();
/// assert_eq!(overflow.headers()[ENVOY_OVERLOADED], "true");
/// assert!(!five_xx.retries_response(&overflow, &RetryHeaders::default()));
/// let upstreams = http::Response::builder().status(503).header(ENVOY_OVERLOADED, "true").body(()).unwrap();
/// assert!(five_xx.retries_response(&upstreams, &RetryHeaders::default()));
/// ```
pub const ENVOY_OVERLOADED: HeaderName = HeaderName::from_static("x-envoy-overloaded");
/// gRPC status response header.
///
/// ```
/// use mesh_core::retry::{RetryHeaders, RetryOn, condition::GRPC_STATUS};
/// let exhausted = http::Response::builder().header(GRPC_STATUS, "8").body(()).unwrap();
/// let none = RetryHeaders::default();
/// assert!(RetryOn::parse("resource-exhausted").unwrap().retries_response(&exhausted, &none));
/// assert!(!RetryOn::parse("unavailable").unwrap().retries_response(&exhausted, &none));
/// ```
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

macro_rules! retry_conditions {
    ($($variant:ident = $token:literal, $doc:literal;)*) => {
        /// One `retryOn` condition (integer status codes aside).
        ///
        /// ```
        /// use mesh_core::retry::{RetryCondition, RetryOn};
        /// let on = RetryOn::of(&[RetryCondition::ConnectFailure, RetryCondition::Unavailable]);
        /// assert!(on.contains(RetryCondition::Unavailable));
        /// assert_eq!(RetryCondition::GatewayError.to_string(), "gateway-error");
        /// ```
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum RetryCondition {
            $(#[doc = $doc] $variant,)*
        }

        impl RetryCondition {
            /// Every condition, in Istio's order.
            ///
            /// ```
            /// use mesh_core::retry::{RETRY_ON_TOKENS, RetryCondition};
            /// assert_eq!(RetryCondition::ALL.first(), Some(&RetryCondition::FiveXx));
            /// assert_eq!(RetryCondition::ALL.len(), RETRY_ON_TOKENS.len());
            /// ```
            pub const ALL: &'static [RetryCondition] = &[$(RetryCondition::$variant,)*];

            /// The token as Istio and Envoy spell it (`connect-failure`, …).
            ///
            /// ```
            /// use mesh_core::retry::RetryCondition;
            /// assert_eq!(RetryCondition::ConnectFailure.token(), "connect-failure");
            /// for condition in RetryCondition::ALL {
            ///     assert_eq!(RetryCondition::from_token(condition.token()), Some(*condition));
            /// }
            /// ```
            pub const fn token(self) -> &'static str {
                match self { $(RetryCondition::$variant => $token,)* }
            }

            /// The condition a token names, if any (status codes are not conditions).
            ///
            /// ```
            /// use mesh_core::retry::RetryCondition;
            /// assert_eq!(RetryCondition::from_token("reset"), Some(RetryCondition::Reset));
            /// assert_eq!(RetryCondition::from_token("503"), None);
            /// ```
            pub fn from_token(token: &str) -> Option<RetryCondition> {
                match token { $($token => Some(RetryCondition::$variant),)* _ => None }
            }
        }

        /// Every token Istio accepts in `retryOn`, besides bare integer status codes.
        ///
        /// ```
        /// use mesh_core::retry::{RETRY_ON_TOKENS, RetryOn};
        /// assert!(RETRY_ON_TOKENS.contains(&"retriable-4xx"));
        /// let all = RetryOn::parse(&RETRY_ON_TOKENS.join(",")).unwrap();
        /// assert_eq!(all.to_string(), RETRY_ON_TOKENS.join(","));
        /// ```
        pub const RETRY_ON_TOKENS: &[&str] = &[$($token,)*];
    };
}

retry_conditions! {
    FiveXx = "5xx", "Any 5xx response, and any reset, connect failure or per-try timeout.";
    GatewayError = "gateway-error", "502, 503 and 504 responses, and the failures `5xx` retries.";
    Reset = "reset", "The upstream reset or disconnected, or a per-try timeout, with no response.";
    ResetBeforeRequest = "reset-before-request", "A reset before the request was sent (a connect failure).";
    ConnectFailure = "connect-failure", "Connecting to the upstream failed.";
    Retriable4xx = "retriable-4xx", "A 409 response.";
    RefusedStream = "refused-stream", "The upstream refused the HTTP/2 stream (`REFUSED_STREAM`).";
    RetriableStatusCodes = "retriable-status-codes", "A response status in the policy's codes or in `x-envoy-retriable-status-codes`.";
    RetriableHeaders = "retriable-headers", "A response carrying a header named in `x-envoy-retriable-header-names`.";
    EnvoyRateLimited = "envoy-ratelimited", "A response carrying `x-envoy-ratelimited`.";
    Http3PostConnectFailure = "http3-post-connect-failure", "An HTTP/3 failure after connect (never produced here: no HTTP/3).";
    Cancelled = "cancelled", "`grpc-status: 1` in the response headers.";
    DeadlineExceeded = "deadline-exceeded", "`grpc-status: 4` in the response headers.";
    Internal = "internal", "`grpc-status: 13` in the response headers.";
    ResourceExhausted = "resource-exhausted", "`grpc-status: 8` in the response headers.";
    Unavailable = "unavailable", "`grpc-status: 14` in the response headers.";
}

impl RetryCondition {
    const fn bit(self) -> u32 {
        1 << self as u8
    }

    /// The `grpc-status` code a gRPC condition matches.
    const fn grpc_code(self) -> Option<u32> {
        match self {
            RetryCondition::Cancelled => Some(1),
            RetryCondition::DeadlineExceeded => Some(4),
            RetryCondition::ResourceExhausted => Some(8),
            RetryCondition::Internal => Some(13),
            RetryCondition::Unavailable => Some(14),
            _ => None,
        }
    }
}

impl fmt::Display for RetryCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

const GRPC_CONDITIONS: [RetryCondition; 5] = [
    RetryCondition::Cancelled,
    RetryCondition::DeadlineExceeded,
    RetryCondition::ResourceExhausted,
    RetryCondition::Internal,
    RetryCondition::Unavailable,
];

/// A `retryOn` token that is neither an Istio/Envoy condition ([`RETRY_ON_TOKENS`]) nor an
/// HTTP status code; see [`RetryOn::parse`].
///
/// ```
/// use mesh_core::retry::RetryOn;
/// let error = RetryOn::parse("5xx,sometimes").unwrap_err();
/// assert_eq!(error.to_string(), r#""sometimes" is not a valid retryOn policy"#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{token:?} is not a valid retryOn policy")]
pub struct InvalidRetryOn {
    /// The token, trimmed.
    pub token: String,
}

/// A parsed `retryOn`: a set of [`RetryCondition`]s plus the retriable status codes.
///
/// Displays back as a `retryOn` string (conditions in Istio's order, then the codes).
///
/// ```
/// use mesh_core::retry::{RetryCondition, RetryOn};
/// let on = RetryOn::parse("503, reset").unwrap();
/// assert!(on.contains(RetryCondition::Reset));
/// assert!(on.contains(RetryCondition::RetriableStatusCodes));
/// assert_eq!(on.status_codes(), &[503]);
/// assert_eq!(on.to_string(), "reset,retriable-status-codes,503");
/// assert!(RetryOn::parse("5xx,teapot").unwrap_err().token == "teapot");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryOn {
    conditions: u32,
    status_codes: Vec<u16>,
}

impl RetryOn {
    /// Parses a comma-separated `retryOn` list.
    ///
    /// Every Istio token ([`RETRY_ON_TOKENS`]) is accepted, and so are bare HTTP status codes
    /// (100–599), which join the retriable status codes and imply `retriable-status-codes`.
    /// Whitespace around tokens is ignored; a blank string retries on nothing. Anything else
    /// is an error naming the offending token.
    ///
    /// ```
    /// use mesh_core::retry::{RetryCondition, RetryOn};
    /// let on = RetryOn::parse(" gateway-error , 409 ").unwrap();
    /// assert!(on.contains(RetryCondition::GatewayError));
    /// assert_eq!(on.status_codes(), &[409]);
    /// assert!(RetryOn::parse("").unwrap().is_empty());
    /// assert_eq!(RetryOn::parse("5xx,600").unwrap_err().token, "600");
    /// assert!(RetryOn::parse("+503").is_err());
    /// ```
    pub fn parse(list: &str) -> Result<RetryOn, InvalidRetryOn> {
        let mut on = RetryOn::default();
        if list.trim().is_empty() {
            return Ok(on);
        }
        for token in list.split(',').map(str::trim) {
            if let Some(condition) = RetryCondition::from_token(token) {
                on.insert(condition);
                continue;
            }
            match token.parse::<u16>() {
                Ok(code @ 100..=599) if token.bytes().all(|b| b.is_ascii_digit()) => {
                    on.add_status_code(code)
                }
                _ => {
                    return Err(InvalidRetryOn {
                        token: token.to_owned(),
                    });
                }
            }
        }
        Ok(on)
    }

    /// The set holding just these conditions.
    ///
    /// ```
    /// use mesh_core::retry::{RetryCondition, RetryOn};
    /// let on = RetryOn::of(&[RetryCondition::Reset, RetryCondition::FiveXx]);
    /// assert_eq!(on, RetryOn::parse("reset,5xx").unwrap());
    /// assert_eq!(on.to_string(), "5xx,reset");
    /// ```
    pub fn of(conditions: &[RetryCondition]) -> RetryOn {
        let mut on = RetryOn::default();
        for condition in conditions {
            on.insert(*condition);
        }
        on
    }

    /// Adds `condition`.
    ///
    /// ```
    /// use mesh_core::retry::{RetryCondition, RetryOn};
    /// let mut on = RetryOn::default();
    /// assert!(on.is_empty());
    /// on.insert(RetryCondition::Retriable4xx);
    /// assert!(on.contains(RetryCondition::Retriable4xx));
    /// assert_eq!(on.to_string(), "retriable-4xx");
    /// ```
    pub fn insert(&mut self, condition: RetryCondition) {
        self.conditions |= condition.bit();
    }

    /// Adds every condition of `other`.
    ///
    /// ```
    /// use mesh_core::retry::RetryOn;
    /// let mut on = RetryOn::parse("5xx").unwrap();
    /// on.extend(&RetryOn::parse("reset,409").unwrap());
    /// assert_eq!(on, RetryOn::parse("5xx,reset,409").unwrap());
    /// ```
    pub fn extend(&mut self, other: &RetryOn) {
        self.conditions |= other.conditions;
        for code in &other.status_codes {
            self.add_status_code(*code);
        }
    }

    /// Adds a retriable status code (and `retriable-status-codes`).
    ///
    /// ```
    /// use mesh_core::retry::{RetryCondition, RetryOn};
    /// let mut on = RetryOn::default();
    /// on.add_status_code(503);
    /// on.add_status_code(503);
    /// assert!(on.contains(RetryCondition::RetriableStatusCodes));
    /// assert_eq!(on.status_codes(), &[503], "added once");
    /// ```
    pub fn add_status_code(&mut self, code: u16) {
        self.insert(RetryCondition::RetriableStatusCodes);
        if !self.status_codes.contains(&code) {
            self.status_codes.push(code);
        }
    }

    /// Whether `condition` is in the set.
    ///
    /// ```
    /// use mesh_core::retry::{RetryCondition, RetryOn};
    /// let on = RetryOn::parse("5xx").unwrap();
    /// assert!(on.contains(RetryCondition::FiveXx));
    /// assert!(!on.contains(RetryCondition::GatewayError), "implied behaviour is not membership");
    /// ```
    pub fn contains(&self, condition: RetryCondition) -> bool {
        self.conditions & condition.bit() != 0
    }

    /// The retriable status codes configured on the policy.
    ///
    /// ```
    /// use mesh_core::retry::RetryOn;
    /// assert_eq!(RetryOn::parse("503,429,5xx").unwrap().status_codes(), &[503, 429]);
    /// assert!(RetryOn::parse("retriable-status-codes").unwrap().status_codes().is_empty());
    /// ```
    pub fn status_codes(&self) -> &[u16] {
        &self.status_codes
    }

    /// Whether nothing is retried.
    ///
    /// ```
    /// use mesh_core::retry::RetryOn;
    /// assert!(RetryOn::default().is_empty());
    /// assert!(RetryOn::parse("  ").unwrap().is_empty());
    /// assert!(!RetryOn::parse("reset").unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.conditions == 0
    }

    /// Whether a failed attempt (`Err`) is worth a retry.
    ///
    /// Connect failures match `connect-failure` and `reset-before-request`, refused streams
    /// `refused-stream`, and every reset `reset`, `5xx` and `gateway-error`. Overflow, the route
    /// timeout and the mesh's other local decisions (no healthy upstream, fault aborts, …) are
    /// never retried; errors the mesh does not know are treated as upstream resets.
    ///
    /// ```
    /// use mesh_core::{BoxError, MeshError, retry::RetryOn};
    /// let on = RetryOn::parse("connect-failure").unwrap();
    /// let refused: BoxError = MeshError::ConnectFailure("refused".into()).into();
    /// let overflow: BoxError = MeshError::Overflow.into();
    /// assert!(on.retries_error(&refused));
    /// assert!(!RetryOn::parse("5xx").unwrap().retries_error(&overflow));
    /// ```
    pub fn retries_error(&self, error: &BoxError) -> bool {
        use RetryCondition::*;
        let resets = self.any(&[Reset, FiveXx, GatewayError]);
        match MeshError::find(error) {
            Some(MeshError::ConnectFailure(_)) => {
                resets || self.any(&[ConnectFailure, ResetBeforeRequest])
            }
            Some(MeshError::RefusedStream(_)) => resets || self.contains(RefusedStream),
            Some(MeshError::UpstreamReset(_)) | None => resets,
            Some(_) => false,
        }
    }

    /// Whether an attempt cut off by the per-try timeout is worth a retry.
    ///
    /// ```
    /// use mesh_core::retry::RetryOn;
    /// assert!(RetryOn::parse("reset").unwrap().retries_per_try_timeout());
    /// assert!(RetryOn::parse("gateway-error").unwrap().retries_per_try_timeout());
    /// assert!(!RetryOn::parse("connect-failure,503").unwrap().retries_per_try_timeout());
    /// ```
    pub fn retries_per_try_timeout(&self) -> bool {
        use RetryCondition::*;
        self.any(&[FiveXx, GatewayError, Reset])
    }

    /// Whether an upstream response is worth a retry, given what the request's headers add.
    ///
    /// ```
    /// use mesh_core::retry::{RetryHeaders, RetryOn};
    /// let on = RetryOn::parse("gateway-error,unavailable").unwrap();
    /// let none = RetryHeaders::default();
    /// let reply = |status: u16| http::Response::builder().status(status).body(()).unwrap();
    /// assert!(on.retries_response(&reply(502), &none));
    /// assert!(!on.retries_response(&reply(500), &none));
    /// let grpc = http::Response::builder().header("grpc-status", "14").body(()).unwrap();
    /// assert!(on.retries_response(&grpc, &none));
    /// ```
    pub fn retries_response<B>(&self, response: &Response<B>, request: &RetryHeaders) -> bool {
        // The mesh's own circuit-breaker reply: retrying would only add to the overload.
        if response
            .extensions()
            .get::<ResponseFlags>()
            .is_some_and(|flags| flags.contains(ResponseFlag::UpstreamOverflow))
        {
            return false;
        }
        let on_rate_limit = self.contains(RetryCondition::EnvoyRateLimited);
        let by_conditions = self.retries_by_conditions(response, request);
        // Rate-limited by an upstream Envoy: retried only under `envoy-ratelimited`. (Looked
        // for only when it could change the answer: not for a response nothing retries.)
        if (by_conditions || on_rate_limit) && response.headers().contains_key(ENVOY_RATELIMITED) {
            return on_rate_limit;
        }
        by_conditions
    }

    /// Whether a condition other than `envoy-ratelimited` retries `response`.
    fn retries_by_conditions<B>(&self, response: &Response<B>, request: &RetryHeaders) -> bool {
        use RetryCondition::*;
        let headers = response.headers();
        let status = response.status();
        let code = status.as_u16();
        if self.contains(FiveXx) && status.is_server_error() {
            return true;
        }
        if self.contains(GatewayError) && matches!(code, 502..=504) {
            return true;
        }
        if self.contains(Retriable4xx) && code == 409 {
            return true;
        }
        if self.contains(RetriableStatusCodes)
            && (self.status_codes.contains(&code) || request.status_codes.contains(&code))
        {
            return true;
        }
        if self.contains(RetriableHeaders)
            && request
                .header_names
                .iter()
                .any(|name| headers.contains_key(name))
        {
            return true;
        }
        if self.any(&GRPC_CONDITIONS)
            && let Some(grpc) = headers
                .get(GRPC_STATUS)
                .and_then(|v| v.to_str().ok()?.trim().parse::<u32>().ok())
        {
            return GRPC_CONDITIONS
                .iter()
                .any(|c| self.contains(*c) && c.grpc_code() == Some(grpc));
        }
        false
    }

    fn any(&self, conditions: &[RetryCondition]) -> bool {
        conditions.iter().any(|c| self.contains(*c))
    }
}

impl fmt::Display for RetryOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut separator = "";
        for condition in RetryCondition::ALL.iter().filter(|c| self.contains(**c)) {
            write!(f, "{separator}{condition}")?;
            separator = ",";
        }
        for code in &self.status_codes {
            write!(f, "{separator}{code}")?;
            separator = ",";
        }
        Ok(())
    }
}

/// What a request's own headers add to its retry policy: the status codes of
/// `x-envoy-retriable-status-codes` and the header names of `x-envoy-retriable-header-names`.
///
/// Empty (and allocation-free) when the request carries neither header.
///
/// ```
/// use mesh_core::retry::{RetryHeaders, RetryOn};
/// let mut headers = http::HeaderMap::new();
/// headers.insert("x-envoy-retriable-status-codes", "504, 409".parse().unwrap());
/// let extra = RetryHeaders::take_from(&mut headers);
/// assert!(headers.is_empty(), "consumed");
/// let on = RetryOn::parse("retriable-status-codes").unwrap();
/// let conflict = http::Response::builder().status(409).body(()).unwrap();
/// assert!(on.retries_response(&conflict, &extra));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryHeaders {
    status_codes: Vec<u16>,
    header_names: Vec<HeaderName>,
}

impl RetryHeaders {
    /// Removes both headers from `headers` and keeps what they say (invalid entries skipped).
    ///
    /// ```
    /// use mesh_core::retry::RetryHeaders;
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("x-envoy-retriable-status-codes", "503, abc,,504".parse().unwrap());
    /// headers.insert("x-envoy-retriable-header-names", "x-retry".parse().unwrap());
    /// headers.insert("accept", "*/*".parse().unwrap());
    /// let extra = RetryHeaders::take_from(&mut headers);
    /// assert_ne!(extra, RetryHeaders::default());
    /// assert_eq!(headers.len(), 1, "only the retry headers are taken");
    /// assert_eq!(RetryHeaders::take_from(&mut headers), RetryHeaders::default());
    /// ```
    pub fn take_from(headers: &mut HeaderMap) -> RetryHeaders {
        let mut extra = RetryHeaders::default();
        if let Some(value) = headers.remove(RETRIABLE_STATUS_CODES) {
            extra.status_codes = comma_list(value.as_bytes())
                .filter_map(|t| std::str::from_utf8(t).ok()?.parse::<u16>().ok())
                .collect();
        }
        if let Some(value) = headers.remove(RETRIABLE_HEADER_NAMES) {
            extra.header_names = comma_list(value.as_bytes())
                .filter_map(|t| HeaderName::from_bytes(t).ok())
                .collect();
        }
        extra
    }
}

/// The non-empty, trimmed items of a comma-separated header value.
fn comma_list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn response(status: u16, headers: &[(&'static str, &'static str)]) -> Response<()> {
        let mut builder = Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn parses_every_istio_token_and_codes() {
        let all = RETRY_ON_TOKENS.join(",");
        let on = RetryOn::parse(&all).unwrap();
        for condition in RetryCondition::ALL {
            assert!(on.contains(*condition), "{condition}");
        }
        assert_eq!(RETRY_ON_TOKENS.len(), 16);
        let on = RetryOn::parse("503,reset, 409").unwrap();
        assert_eq!(on.status_codes(), &[503, 409]);
        assert!(on.contains(RetryCondition::RetriableStatusCodes));
        assert!(!on.contains(RetryCondition::FiveXx));
        assert_eq!(RetryOn::parse("").unwrap(), RetryOn::default());
        assert_eq!(RetryOn::parse(&on.to_string()).unwrap(), on);
    }

    #[test]
    fn rejects_unknown_tokens_naming_them() {
        for bad in ["5xx,bogus", "5XX", "5xx,,reset", "999", "+503", "-1", "50x"] {
            let error = RetryOn::parse(bad).unwrap_err();
            assert!(
                error.to_string().ends_with("is not a valid retryOn policy"),
                "{bad}: {error}"
            );
        }
        assert_eq!(RetryOn::parse("reset,bogus").unwrap_err().token, "bogus");
    }

    #[test]
    fn errors_follow_envoy_reset_rules() {
        use RetryCondition::*;
        let connect: BoxError = MeshError::ConnectFailure("x".into()).into();
        let refused: BoxError = MeshError::RefusedStream("x".into()).into();
        let reset: BoxError = MeshError::UpstreamReset("x".into()).into();
        let other: BoxError = "connection closed".into();
        let never: Vec<BoxError> = vec![
            MeshError::Overflow.into(),
            MeshError::Timeout.into(),
            MeshError::NoHealthyUpstream.into(),
        ];
        let cases: &[(RetryCondition, [bool; 4])] = &[
            // (condition, [connect, refused, reset, other])
            (ConnectFailure, [true, false, false, false]),
            (ResetBeforeRequest, [true, false, false, false]),
            (RefusedStream, [false, true, false, false]),
            (Reset, [true, true, true, true]),
            (FiveXx, [true, true, true, true]),
            (GatewayError, [true, true, true, true]),
            (RetriableStatusCodes, [false, false, false, false]),
            (Unavailable, [false, false, false, false]),
        ];
        for (condition, expected) in cases {
            let on = RetryOn::of(&[*condition]);
            let got = [&connect, &refused, &reset, &other].map(|e| on.retries_error(e));
            assert_eq!(&got, expected, "{condition}");
            for error in &never {
                assert!(!on.retries_error(error), "{condition} {error}");
            }
        }
        let all = RetryOn::of(RetryCondition::ALL);
        assert!(never.iter().all(|e| !all.retries_error(e)));
        assert!(all.retries_per_try_timeout());
        assert!(!RetryOn::of(&[ConnectFailure, RefusedStream]).retries_per_try_timeout());
        assert!(RetryOn::of(&[Reset]).retries_per_try_timeout());
    }

    #[test]
    fn status_conditions() {
        let none = RetryHeaders::default();
        let matches = |on: &str, status: u16| {
            RetryOn::parse(on)
                .unwrap()
                .retries_response(&response(status, &[]), &none)
        };
        assert!(matches("5xx", 500) && matches("5xx", 503) && matches("5xx", 599));
        assert!(!matches("5xx", 429) && !matches("5xx", 200));
        assert!(matches("gateway-error", 502) && matches("gateway-error", 504));
        assert!(!matches("gateway-error", 500));
        assert!(matches("retriable-4xx", 409) && !matches("retriable-4xx", 404));
        assert!(matches("503", 503) && !matches("503", 502));
        assert!(!matches("retriable-status-codes", 503));
        assert!(!matches("connect-failure,reset,refused-stream", 503));
        assert!(!matches("unavailable", 503));
    }

    #[test]
    fn request_headers_extend_status_codes_and_names() {
        let mut headers = HeaderMap::new();
        headers.insert(
            RETRIABLE_STATUS_CODES,
            HeaderValue::from_static("418, x,504"),
        );
        headers.insert(
            RETRIABLE_HEADER_NAMES,
            HeaderValue::from_static("X-Upstream-Retry, X-Try-Again"),
        );
        headers.insert("other", HeaderValue::from_static("kept"));
        let extra = RetryHeaders::take_from(&mut headers);
        assert_eq!(headers.len(), 1);
        let codes = RetryOn::parse("retriable-status-codes").unwrap();
        assert!(codes.retries_response(&response(418, &[]), &extra));
        assert!(!codes.retries_response(&response(418, &[]), &RetryHeaders::default()));
        assert!(!codes.retries_response(&response(503, &[]), &extra));
        // Codes from the header need the token.
        let reset = RetryOn::parse("reset").unwrap();
        assert!(!reset.retries_response(&response(418, &[]), &extra));

        let names = RetryOn::parse("retriable-headers").unwrap();
        assert!(names.retries_response(&response(200, &[("x-try-again", "1")]), &extra));
        assert!(!names.retries_response(&response(200, &[("x-other", "1")]), &extra));
        assert!(
            !names.retries_response(&response(200, &[("x-try-again", "1")]), &Default::default())
        );
    }

    #[test]
    fn grpc_conditions_read_the_response_header() {
        let none = RetryHeaders::default();
        let grpc = |code: &'static str| response(200, &[("grpc-status", code)]);
        let pairs = [
            ("cancelled", "1"),
            ("deadline-exceeded", "4"),
            ("resource-exhausted", "8"),
            ("internal", "13"),
            ("unavailable", "14"),
        ];
        for (token, code) in pairs {
            let on = RetryOn::parse(token).unwrap();
            assert!(on.retries_response(&grpc(code), &none), "{token}");
            for (_, other) in pairs.iter().filter(|(t, _)| *t != token) {
                assert!(!on.retries_response(&grpc(other), &none), "{token} {other}");
            }
            assert!(!on.retries_response(&grpc("0"), &none));
            assert!(!on.retries_response(&response(200, &[]), &none));
        }
    }

    #[test]
    fn overload_and_ratelimit_headers() {
        let none = RetryHeaders::default();
        // An upstream's overloaded reply is retried; the mesh's own overflow is not.
        let overloaded = response(503, &[("x-envoy-overloaded", "true")]);
        assert!(
            RetryOn::parse("5xx")
                .unwrap()
                .retries_response(&overloaded, &none)
        );
        let own = crate::MeshError::Overflow.to_response();
        assert!(!RetryOn::of(RetryCondition::ALL).retries_response(&own, &none));
        assert!(
            RetryOn::parse("5xx")
                .unwrap()
                .retries_response(&response(503, &[]), &none)
        );

        let limited = response(503, &[("x-envoy-ratelimited", "true")]);
        assert!(
            !RetryOn::parse("5xx,503")
                .unwrap()
                .retries_response(&limited, &none)
        );
        assert!(
            RetryOn::parse("envoy-ratelimited")
                .unwrap()
                .retries_response(&limited, &none)
        );
    }
}
