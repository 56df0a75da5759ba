//! [`RetryOverride`]: what a request's own `x-envoy-retry-on`, `x-envoy-retry-grpc-on` and
//! `x-envoy-max-retries` headers change in its route's retry policy. Envoy's router honours
//! them on every request (§2.3 of its router docs): the conditions are ORed into the route's,
//! the count replaces the route's `num_retries`, and the headers are not forwarded.

use super::{RetryCondition, RetryOn, RetryPolicy};
use http::{HeaderMap, HeaderName};
use std::sync::Arc;

/// `x-envoy-retry-on`: retry conditions to add, as `retryOn` names them (`5xx,reset`).
pub const RETRY_ON: HeaderName = HeaderName::from_static("x-envoy-retry-on");
/// `x-envoy-retry-grpc-on`: gRPC retry conditions to add (`unavailable,cancelled`).
pub const RETRY_GRPC_ON: HeaderName = HeaderName::from_static("x-envoy-retry-grpc-on");
/// `x-envoy-max-retries`: the number of retries, over the route's.
pub const MAX_RETRIES: HeaderName = HeaderName::from_static("x-envoy-max-retries");

/// The retry headers of one request. Empty (and allocation-free) when it carries none.
///
/// ```
/// use mesh_core::retry::{RetryCondition, RetryPolicy, request_override::RetryOverride};
/// use std::sync::Arc;
/// let mut headers = http::HeaderMap::new();
/// headers.insert("x-envoy-retry-on", "5xx".parse().unwrap());
/// headers.insert("x-envoy-max-retries", "4".parse().unwrap());
/// let by_request = RetryOverride::take_from(&mut headers);
/// assert!(headers.is_empty(), "consumed, not forwarded");
/// let route = Arc::new(RetryPolicy::istio_default());
/// let policy = by_request.apply(Some(&route)).unwrap();
/// assert_eq!(policy.attempts, 4);
/// assert!(policy.retry_on.contains(RetryCondition::FiveXx));
/// assert!(policy.retry_on.contains(RetryCondition::ConnectFailure), "ORed into the route's");
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RetryOverride {
    retry_on: RetryOn,
    max_retries: Option<u32>,
}

impl RetryOverride {
    /// Removes the three headers from `headers` and keeps what they say. As Envoy does, an
    /// unknown condition is skipped, and a count that is not a number is ignored.
    ///
    /// ```
    /// use mesh_core::retry::request_override::RetryOverride;
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("x-envoy-retry-grpc-on", "unavailable, no-such-thing".parse().unwrap());
    /// headers.insert("x-envoy-max-retries", "many".parse().unwrap());
    /// headers.insert("accept", "*/*".parse().unwrap());
    /// let by_request = RetryOverride::take_from(&mut headers);
    /// assert!(!by_request.is_empty());
    /// assert_eq!(headers.len(), 1, "only the retry headers are taken");
    /// assert!(RetryOverride::take_from(&mut headers).is_empty());
    /// ```
    pub fn take_from(headers: &mut HeaderMap) -> RetryOverride {
        let mut by_request = RetryOverride::default();
        for name in [RETRY_ON, RETRY_GRPC_ON] {
            if let Some(value) = headers.remove(name) {
                let tokens = value.to_str().unwrap_or_default().split(',');
                tokens
                    .filter_map(|token| RetryCondition::from_token(token.trim()))
                    .for_each(|condition| by_request.retry_on.insert(condition));
            }
        }
        by_request.max_retries = headers
            .remove(MAX_RETRIES)
            .and_then(|value| value.to_str().ok()?.trim().parse().ok());
        by_request
    }

    /// Whether the request asked for nothing.
    ///
    /// ```
    /// use mesh_core::retry::request_override::RetryOverride;
    /// assert!(RetryOverride::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.retry_on.is_empty() && self.max_retries.is_none()
    }

    /// The policy the request retries by, given its route's (`None`, or no attempts: the route
    /// does not retry). Conditions from the request enable retries even on such a route, one
    /// retry by default (Envoy's `num_retries` default); `x-envoy-max-retries` sets the count
    /// whenever some condition is active.
    ///
    /// ```
    /// use mesh_core::retry::{RetryPolicy, request_override::RetryOverride};
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("x-envoy-retry-on", "connect-failure".parse().unwrap());
    /// let by_request = RetryOverride::take_from(&mut headers);
    /// assert_eq!(by_request.apply(None).unwrap().attempts, 1);
    ///
    /// headers.insert("x-envoy-max-retries", "0".parse().unwrap());
    /// let none = RetryOverride::take_from(&mut headers);
    /// let route = std::sync::Arc::new(RetryPolicy::istio_default());
    /// assert_eq!(none.apply(Some(&route)).unwrap().attempts, 0, "retries turned off");
    /// assert!(none.apply(None).is_none(), "a count alone enables nothing");
    /// ```
    pub fn apply(&self, route: Option<&Arc<RetryPolicy>>) -> Option<Arc<RetryPolicy>> {
        if self.is_empty() {
            // As if the request had none of the headers (its per-try timeout included).
            return route.cloned();
        }
        let mut policy = match route.filter(|p| p.attempts > 0 && !p.retry_on.is_empty()) {
            Some(route) => RetryPolicy::clone(route),
            None if self.retry_on.is_empty() => return None,
            None => RetryPolicy {
                attempts: 1,
                retry_on: RetryOn::default(),
                ..RetryPolicy::istio_default()
            },
        };
        policy.retry_on.extend(&self.retry_on);
        if let Some(max_retries) = self.max_retries {
            policy.attempts = max_retries;
        }
        Some(Arc::new(policy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn without_retry_headers_the_route_policy_is_kept_as_it_is() {
        // No retries, but a per-try timeout: what the layer does with it must not depend on
        // whether the request happens to carry some other `x-envoy-*` header.
        let route = Arc::new(RetryPolicy {
            attempts: 0,
            per_try_timeout: Some(Duration::from_millis(100)),
            ..RetryPolicy::istio_default()
        });
        let kept = RetryOverride::default().apply(Some(&route)).unwrap();
        assert!(Arc::ptr_eq(&kept, &route));
    }
}
