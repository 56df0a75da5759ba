//! [`RetryPolicy`]: a route's retry settings (Istio `HTTPRetry`, Envoy `RetryPolicy`).
//!
//! Routing attaches one to the request's [`RoutePolicy`](crate::policy::RoutePolicy); the
//! [`RetryLayer`](super::RetryLayer) enforces it, or its own fallback policy when the request
//! carries none.

use super::RetryOn;
use super::condition::RetryCondition;
use std::time::Duration;

/// How a route retries failed requests.
///
/// Each try bounded by `per_try_timeout`, retried under `5xx`:
///
/// ```
/// use mesh_core::{Body, MeshError, retry::{RetryLayer, RetryOn, RetryPolicy}};
/// use std::time::Duration;
/// use tower::{Layer, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let hangs = service_fn(|_req: http::Request<Body>| async {
///     tokio::time::sleep(Duration::from_secs(60)).await;
///     Ok::<_, std::convert::Infallible>(http::Response::new(mesh_core::body::empty()))
/// });
/// let policy = RetryPolicy {
///     attempts: 1, per_try_timeout: Some(Duration::from_secs(1)),
///     retry_on: RetryOn::parse("5xx").unwrap(), backoff_base: Duration::ZERO,
/// };
/// let start = tokio::time::Instant::now();
/// let error = RetryLayer::with_policy(policy).layer(hangs).oneshot(http::Request::new(mesh_core::body::empty())).await.unwrap_err();
/// assert!(matches!(MeshError::find(&error), Some(MeshError::Timeout)));
/// assert_eq!(start.elapsed(), Duration::from_secs(2), "two tries of one second");
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first try (Istio `attempts`, Envoy `num_retries`): at most
    /// `1 + attempts` requests are sent. 0 disables retries.
    pub attempts: u32,
    /// Bound on each try (Istio `perTryTimeout`). `None`, or not shorter than the route
    /// timeout: each try is bounded only by the route timeout.
    pub per_try_timeout: Option<Duration>,
    /// Which failures are retried (Istio `retryOn`).
    pub retry_on: RetryOn,
    /// Base interval of the jittered exponential back-off (Istio `backoff`); the longest
    /// back-off is ten times this.
    pub backoff_base: Duration,
}

impl RetryPolicy {
    /// Envoy's and Istio's default back-off base interval: 25 ms.
    ///
    /// ```
    /// use mesh_core::retry::RetryPolicy;
    /// use std::time::Duration;
    /// assert_eq!(RetryPolicy::DEFAULT_BACKOFF_BASE, Duration::from_millis(25));
    /// assert_eq!(RetryPolicy::istio_default().backoff_base, RetryPolicy::DEFAULT_BACKOFF_BASE);
    /// ```
    pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(25);

    /// The policy istiod generates when a route sets no `retries`: 2 retries on
    /// `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes` (the
    /// last with no codes of its own, so only `x-envoy-retriable-status-codes` feeds it),
    /// 25 ms back-off, no per-try timeout.
    ///
    /// ```
    /// let policy = mesh_core::retry::RetryPolicy::istio_default();
    /// assert_eq!(policy.attempts, 2);
    /// assert_eq!(
    ///     policy.retry_on.to_string(),
    ///     "connect-failure,refused-stream,retriable-status-codes,cancelled,unavailable",
    /// );
    /// ```
    pub fn istio_default() -> Self {
        RetryPolicy {
            attempts: 2,
            per_try_timeout: None,
            retry_on: RetryOn::of(&[
                RetryCondition::ConnectFailure,
                RetryCondition::RefusedStream,
                RetryCondition::Unavailable,
                RetryCondition::Cancelled,
                RetryCondition::RetriableStatusCodes,
            ]),
            backoff_base: Self::DEFAULT_BACKOFF_BASE,
        }
    }

    /// The longest back-off: ten times [`backoff_base`](Self::backoff_base).
    ///
    /// ```
    /// use mesh_core::retry::RetryPolicy;
    /// use std::time::Duration;
    /// assert_eq!(RetryPolicy::istio_default().backoff_max(), Duration::from_millis(250));
    /// let policy = RetryPolicy { backoff_base: Duration::from_secs(1), ..RetryPolicy::istio_default() };
    /// assert_eq!(policy.backoff_max(), Duration::from_secs(10));
    /// ```
    pub fn backoff_max(&self) -> Duration {
        self.backoff_base.saturating_mul(10)
    }
}

/// The per-try timeout that applies under a route timeout of `route` (`None` or zero: no route
/// timeout): a per-try timeout not shorter than the route timeout is ignored, as Envoy does.
///
/// ```
/// use mesh_core::retry::effective_per_try_timeout;
/// use std::time::Duration;
/// let two = Some(Duration::from_secs(2));
/// assert_eq!(effective_per_try_timeout(two, None), two);
/// assert_eq!(effective_per_try_timeout(two, Some(Duration::from_secs(5))), two);
/// assert_eq!(effective_per_try_timeout(two, two), None);
/// ```
pub fn effective_per_try_timeout(
    per_try: Option<Duration>,
    route: Option<Duration>,
) -> Option<Duration> {
    let per_try = per_try.filter(|d| !d.is_zero())?;
    match route.filter(|d| !d.is_zero()) {
        Some(route) if per_try >= route => None,
        _ => Some(per_try),
    }
}
