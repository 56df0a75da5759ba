//! Finding, in one pass over a request's header names, whether it carries any of the control
//! headers the layers consume (`x-envoy-*`, `grpc-timeout`), so that the common request with
//! none skips their hashed lookups.

use http::HeaderMap;

/// Which kinds of control header a request carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ControlHeaders {
    /// Some `x-envoy-*` header.
    pub envoy: bool,
    /// `grpc-timeout`.
    pub grpc_timeout: bool,
}

impl ControlHeaders {
    /// Scans `headers`' names.
    pub fn scan(headers: &HeaderMap) -> Self {
        let mut found = ControlHeaders::default();
        for name in headers.keys() {
            let name = name.as_str();
            found.envoy |= name.starts_with("x-envoy-");
            found.grpc_timeout |= name == "grpc-timeout";
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_envoy_and_grpc_timeout_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "svc".parse().unwrap());
        headers.insert("x-envoyish", "1".parse().unwrap());
        assert_eq!(ControlHeaders::scan(&headers), ControlHeaders::default());
        headers.insert("x-envoy-max-retries", "1".parse().unwrap());
        headers.insert("grpc-timeout", "1S".parse().unwrap());
        let found = ControlHeaders::scan(&headers);
        assert!(found.envoy && found.grpc_timeout);
    }
}
