//! Finding, in one pass over a request's header names, whether it carries any of the control
//! headers the layers consume (`x-envoy-*`, `grpc-timeout`), so that the common request with
//! none skips their hashed lookups.

use crate::{
    retry::{
        condition::{RETRIABLE_HEADER_NAMES, RETRIABLE_STATUS_CODES},
        request_override::{MAX_RETRIES, RETRY_GRPC_ON, RETRY_ON},
    },
    timeout::{EXPECTED_RQ_TIMEOUT_MS, UPSTREAM_RQ_PER_TRY_TIMEOUT_MS, UPSTREAM_RQ_TIMEOUT_MS},
};
use http::{HeaderMap, HeaderName};

/// The `x-envoy-*` headers the timeout layer takes from a caller.
static TIMEOUT_HEADERS: [HeaderName; 2] = [UPSTREAM_RQ_TIMEOUT_MS, EXPECTED_RQ_TIMEOUT_MS];

/// The `x-envoy-*` headers the retry layer takes from a caller.
static RETRY_HEADERS: [HeaderName; 6] = [
    UPSTREAM_RQ_PER_TRY_TIMEOUT_MS,
    RETRY_ON,
    RETRY_GRPC_ON,
    MAX_RETRIES,
    RETRIABLE_STATUS_CODES,
    RETRIABLE_HEADER_NAMES,
];

/// Which kinds of control header a request carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ControlHeaders {
    /// `x-envoy-upstream-rq-timeout-ms`, or a caller's `x-envoy-expected-rq-timeout-ms`.
    pub timeout: bool,
    /// One of the retry layer's: `x-envoy-retry-on`, `-retry-grpc-on`, `-max-retries`,
    /// `-retriable-status-codes`, `-retriable-header-names`, `-upstream-rq-per-try-timeout-ms`.
    /// (Not the `x-envoy-expected-rq-timeout-ms` the timeout layer above it sets: that one
    /// the retry layer overwrites, so a request the mesh timed is not searched for the rest.)
    pub retry: bool,
    /// `grpc-timeout`.
    pub grpc_timeout: bool,
}

impl ControlHeaders {
    /// Scans `headers`' names.
    pub fn scan(headers: &HeaderMap) -> Self {
        let mut found = ControlHeaders::default();
        for name in headers.keys() {
            // By the text's first byte, most names are passed over with no comparison of
            // their text. (Comparing with the `GRPC_TIMEOUT` const would build and drop a
            // `HeaderName` for every name.)
            let text = name.as_str();
            match text.as_bytes().first() {
                Some(b'x') if text.starts_with("x-envoy-") => {
                    found.timeout |= TIMEOUT_HEADERS.contains(name);
                    found.retry |= RETRY_HEADERS.contains(name);
                }
                Some(b'g') => found.grpc_timeout |= text == "grpc-timeout",
                _ => {}
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_timeout_retry_and_grpc_timeout_headers_each_layer_takes() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "svc".parse().unwrap());
        headers.insert("x-envoyish", "1".parse().unwrap());
        headers.insert("x-envoy-attempt-count", "1".parse().unwrap());
        assert_eq!(ControlHeaders::scan(&headers), ControlHeaders::default());
        // Spelled out, not taken from the lists: a header missing from one fails here.
        let timeout = [
            "x-envoy-upstream-rq-timeout-ms",
            "x-envoy-expected-rq-timeout-ms",
        ];
        let retry = [
            "x-envoy-upstream-rq-per-try-timeout-ms",
            "x-envoy-retry-on",
            "x-envoy-retry-grpc-on",
            "x-envoy-max-retries",
            "x-envoy-retriable-status-codes",
            "x-envoy-retriable-header-names",
        ];
        for (name, is_timeout) in timeout
            .map(|n| (n, true))
            .into_iter()
            .chain(retry.map(|n| (n, false)))
        {
            let mut headers = headers.clone();
            headers.insert(name, "1".parse().unwrap());
            let found = ControlHeaders::scan(&headers);
            assert_eq!(
                (found.timeout, found.retry),
                (is_timeout, !is_timeout),
                "{name}"
            );
        }
        headers.insert("grpc-timeout", "1S".parse().unwrap());
        assert!(ControlHeaders::scan(&headers).grpc_timeout);
    }
}
