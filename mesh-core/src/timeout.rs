//! [`TimeoutLayer`]: the route timeout (VirtualService `timeout`), as Envoy's router applies it.
//!
//! The timeout comes from the request's [`RoutePolicy`](crate::policy::RoutePolicy), else from the
//! layer (off by default, as in Istio). The layer's fallback applies only to requests that carry no
//! `RoutePolicy` at all: a `RoutePolicy` whose `timeout` is `None` means no timeout, not the
//! fallback. A caller may override it with `x-envoy-upstream-rq-timeout-ms` (consumed, not
//! forwarded). A `grpc-timeout` header is honoured and capped by the route timeout (with no route
//! timeout it is honoured uncapped, as Istio configures `max_grpc_timeout`), and is rewritten to
//! the effective value on the way up. The upstream learns the deadline from
//! `x-envoy-expected-rq-timeout-ms`. As Envoy's, the clock runs from the end of the request: for a
//! body still streaming, the retry layer below watches it ([`RequestEnd`]), and the timeout fires a
//! whole timeout after its last sign of life (see that module for a body that stops arriving). On
//! expiry the request fails with [`MeshError::Timeout`] — 504 `upstream request timeout`, flag `UT`
//! — carrying the upstream cluster and endpoint the request was waiting on when the attempt in
//! flight said so as it was dropped ([`abandoned`]). Placed outside the retry layer, it covers
//! every attempt and back-off.

use crate::{
    BoxError, MeshError, abandoned,
    control_headers::ControlHeaders,
    policy::route_policy,
    request_end::{RequestEnd, TimerAfterEnd},
};
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use pin_project::pin_project;
use std::{
    cell::RefCell,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};
use tower::{Layer, Service};

/// Per-request override of the route timeout, in milliseconds (removed before forwarding).
///
/// A caller asking for a shorter timeout than the route's:
///
/// ```
/// use mesh_core::timeout::{TimeoutLayer, UPSTREAM_RQ_TIMEOUT_MS};
/// use std::time::Duration;
/// use tower::{Layer, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let echo = service_fn(|req: http::Request<String>| async move {
///     Ok::<_, std::convert::Infallible>(req.headers().clone())
/// });
/// let request = http::Request::builder().header(UPSTREAM_RQ_TIMEOUT_MS, "250").body(String::new()).unwrap();
/// let seen = TimeoutLayer::new(Some(Duration::from_secs(5))).layer(echo).oneshot(request).await.unwrap();
/// assert!(seen.get(UPSTREAM_RQ_TIMEOUT_MS).is_none(), "consumed, not forwarded");
/// assert_eq!(seen["x-envoy-expected-rq-timeout-ms"], "250");
/// # }
/// ```
pub const UPSTREAM_RQ_TIMEOUT_MS: HeaderName =
    HeaderName::from_static("x-envoy-upstream-rq-timeout-ms");
/// The deadline the upstream is told, in milliseconds.
///
/// ```
/// use mesh_core::timeout::{EXPECTED_RQ_TIMEOUT_MS, TimeoutLayer};
/// use std::time::Duration;
/// use tower::{Layer, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let echo = service_fn(|req: http::Request<String>| async move {
///     Ok::<_, std::convert::Infallible>(req.headers().clone())
/// });
/// let svc = TimeoutLayer::new(Some(Duration::from_millis(1500))).layer(echo);
/// let seen = svc.oneshot(http::Request::new(String::new())).await.unwrap();
/// assert_eq!(seen[EXPECTED_RQ_TIMEOUT_MS], "1500");
/// # }
/// ```
pub const EXPECTED_RQ_TIMEOUT_MS: HeaderName =
    HeaderName::from_static("x-envoy-expected-rq-timeout-ms");
/// Per-request override of the per-try timeout, in milliseconds (consumed by the retry layer).
///
/// ```
/// use mesh_core::{Body, MeshError, body, retry::RetryLayer, timeout::UPSTREAM_RQ_PER_TRY_TIMEOUT_MS};
/// use std::time::Duration;
/// use tower::{Layer, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let hangs = service_fn(|_req: http::Request<Body>| async {
///     tokio::time::sleep(Duration::from_secs(60)).await;
///     Ok::<_, std::convert::Infallible>(http::Response::new(body::empty()))
/// });
/// let request = http::Request::builder().header(UPSTREAM_RQ_PER_TRY_TIMEOUT_MS, "500").body(body::empty()).unwrap();
/// let start = tokio::time::Instant::now();
/// let error = RetryLayer::new().layer(hangs).oneshot(request).await.unwrap_err();
/// assert!(matches!(MeshError::find(&error), Some(MeshError::Timeout)));
/// assert_eq!(start.elapsed(), Duration::from_millis(500));
/// # }
/// ```
pub const UPSTREAM_RQ_PER_TRY_TIMEOUT_MS: HeaderName =
    HeaderName::from_static("x-envoy-upstream-rq-per-try-timeout-ms");
/// gRPC's deadline header, honoured on gRPC requests only.
///
/// A client's `grpc-timeout` longer than the route timeout, or zero (no deadline), is
/// capped at the route's, and the upstream is told the timeout in force:
///
/// ```
/// use mesh_core::timeout::{GRPC_TIMEOUT, TimeoutLayer};
/// use std::time::Duration;
/// use tower::{Layer, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let echo = service_fn(|req: http::Request<String>| async move {
///     Ok::<_, std::convert::Infallible>(req.headers().clone())
/// });
/// let layer = TimeoutLayer::new(Some(Duration::from_secs(2)));
/// for asked in ["10S", "0m"] {
///     let request = http::Request::builder()
///         .header("content-type", "application/grpc")
///         .header(GRPC_TIMEOUT, asked)
///         .body(String::new())
///         .unwrap();
///     let seen = layer.layer(echo).oneshot(request).await.unwrap();
///     assert_eq!(seen[GRPC_TIMEOUT], "2000m");
/// }
/// # }
/// ```
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The route timeout in force for a request, and when it fires: a request extension the
/// [`TimeoutLayer`] sets for the layers below it (the retry layer bounds per-try timeouts by it
/// and tells later attempts what is left).
///
/// ```
/// use mesh_core::timeout::{RouteDeadline, TimeoutLayer};
/// use std::time::Duration;
/// use tower::{Layer, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let inner = service_fn(|req: http::Request<String>| async move {
///     Ok::<_, std::convert::Infallible>(req.extensions().get::<RouteDeadline>().copied())
/// });
/// let svc = TimeoutLayer::new(Some(Duration::from_secs(3))).layer(inner);
/// let start = tokio::time::Instant::now();
/// let deadline = svc.oneshot(http::Request::new(String::new())).await.unwrap().unwrap();
/// assert_eq!(deadline.timeout, Duration::from_secs(3));
/// assert_eq!(deadline.deadline, start + Duration::from_secs(3));
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteDeadline {
    /// The effective route timeout.
    pub timeout: Duration,
    /// When it fires, unless the request's body is still arriving: for a request whose body
    /// was still streaming, [`current`](Self::current) tells.
    pub deadline: tokio::time::Instant,
    /// Whether the request is gRPC: the layers below tell each attempt's deadline in
    /// `grpc-timeout` too, without looking its `content-type` up again.
    pub grpc: bool,
}

impl RouteDeadline {
    /// When the route timeout of a request with these extensions fires, as far as is known
    /// now: `deadline`, or, for a request whose body is watched as it arrives
    /// ([`RequestEnd`]), a whole timeout after the body's last sign of life if that is later.
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use mesh_core::{request_end::RequestEnd, timeout::RouteDeadline};
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let now = tokio::time::Instant::now();
    /// let mut extensions = http::Extensions::new();
    /// let timeout = Duration::from_secs(2);
    /// extensions.insert(RouteDeadline { timeout, deadline: now + timeout, grpc: false });
    /// assert_eq!(RouteDeadline::current(&extensions), Some(now + timeout));
    /// let end = RequestEnd::new();
    /// extensions.insert(end.clone());
    /// let upload = end.watch(mesh_core::body::full("an upload"));
    /// tokio::time::advance(Duration::from_secs(3)).await;
    /// upload.collect().await.unwrap(); // it ends 3 s in
    /// let three = Duration::from_secs(3);
    /// assert_eq!(RouteDeadline::current(&extensions), Some(now + three + timeout));
    /// # }
    /// ```
    pub fn current(extensions: &http::Extensions) -> Option<tokio::time::Instant> {
        let route = extensions.get::<RouteDeadline>()?;
        Some(match extensions.get::<RequestEnd>() {
            Some(end) => end.extend(route.deadline, route.timeout),
            None => route.deadline,
        })
    }
}

/// Applies route timeouts; see the [module docs](self).
///
/// ```
/// use mesh_core::{MeshError, timeout::TimeoutLayer};
/// use std::time::Duration;
/// use tower::{Layer, ServiceExt, service_fn};
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let slow = service_fn(|_req: http::Request<String>| async {
///     tokio::time::sleep(Duration::from_secs(3)).await;
///     Ok::<_, std::convert::Infallible>(())
/// });
/// let svc = TimeoutLayer::new(Some(Duration::from_secs(1))).layer(slow);
/// let error = svc.oneshot(http::Request::new(String::new())).await.unwrap_err();
/// assert!(matches!(MeshError::find(&error), Some(MeshError::Timeout)));
/// # });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TimeoutLayer {
    fallback: Option<Duration>,
}

impl TimeoutLayer {
    /// Uses the `timeout` of each request's [`RoutePolicy`](crate::policy::RoutePolicy); `fallback`
    /// (`None`: no timeout) applies only to requests with no `RoutePolicy` extension at all.
    ///
    /// A request's [`RoutePolicy`](crate::policy::RoutePolicy) timeout takes precedence over the
    /// fallback — even when it is `None`, which disables the timeout for that request:
    ///
    /// ```
    /// use mesh_core::{MeshError, policy::RoutePolicy, timeout::TimeoutLayer};
    /// use std::time::Duration;
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let slow = service_fn(|_req: http::Request<String>| async {
    ///     tokio::time::sleep(Duration::from_secs(2)).await;
    ///     Ok::<_, std::convert::Infallible>("done")
    /// });
    /// let svc = TimeoutLayer::new(Some(Duration::from_secs(1))).layer(slow);
    /// let mut request = http::Request::new(String::new());
    /// request.extensions_mut().insert(RoutePolicy { timeout: Some(Duration::from_secs(5)), ..Default::default() });
    /// assert_eq!(svc.clone().oneshot(request).await.unwrap(), "done");
    /// // A route policy without a timeout: no timeout at all, the 1 s fallback is ignored.
    /// let mut request = http::Request::new(String::new());
    /// request.extensions_mut().insert(RoutePolicy { timeout: None, ..Default::default() });
    /// assert_eq!(svc.clone().oneshot(request).await.unwrap(), "done");
    /// // No route policy: the fallback applies.
    /// let error = svc.oneshot(http::Request::new(String::new())).await.unwrap_err();
    /// assert!(matches!(MeshError::find(&error), Some(MeshError::Timeout)));
    /// # }
    /// ```
    pub fn new(fallback: Option<Duration>) -> Self {
        TimeoutLayer { fallback }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            fallback: self.fallback,
        }
    }
}

/// The service [`TimeoutLayer`] produces.
///
/// ```
/// use mesh_core::timeout::{Timeout, TimeoutLayer};
/// use tower::{Layer, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let ok = service_fn(|_req: http::Request<String>| async { Ok::<_, std::convert::Infallible>(200) });
/// let svc: Timeout<_> = TimeoutLayer::default().layer(ok);
/// assert_eq!(svc.oneshot(http::Request::new(String::new())).await.unwrap(), 200);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Timeout<S> {
    inner: S,
    fallback: Option<Duration>,
}

impl<S, B> Service<Request<B>> for Timeout<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = TimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let route = route_policy(request.extensions()).map_or(self.fallback, |p| p.timeout);
        let timeout = effective_timeout(request.headers_mut(), route);
        // The clock runs from the end of the request: for a body still streaming, from its
        // last sign of life, if a layer below watches it (see `request_end`).
        let streaming = timeout.is_some() && !request.body().is_end_stream();
        let end = streaming.then(|| {
            let end = RequestEnd::new();
            request.extensions_mut().insert(end.clone());
            end
        });
        // Read once, for the deadline below and the timer's start.
        let now = timeout.map(|_| tokio::time::Instant::now());
        if let (Some(t), Some(now)) = (timeout, now) {
            let grpc = crate::grpc::is_grpc(request.headers());
            // Under a route timeout, a gRPC upstream is told the deadline in `grpc-timeout`
            // too (Envoy's `max_grpc_timeout`), whether or not the client sent one.
            if grpc && route.is_some_and(|r| !r.is_zero()) {
                request
                    .headers_mut()
                    .insert(GRPC_TIMEOUT, format_grpc_timeout(t));
            }
            request
                .headers_mut()
                .insert(EXPECTED_RQ_TIMEOUT_MS, millis_value(t));
            // The layers below (retries) learn the deadline from here, not from headers.
            request.extensions_mut().insert(RouteDeadline {
                timeout: t,
                deadline: now + t,
                grpc,
            });
        }
        let future = self.inner.call(request);
        TimeoutFuture {
            future: Some(future),
            timer: timeout
                .zip(now)
                .map(|(t, now)| TimerAfterEnd::new(t, end.as_ref(), now)),
        }
    }
}

/// The timeout for a request: `x-envoy-upstream-rq-timeout-ms` (consumed) wins, else a gRPC
/// request's `grpc-timeout` capped by `route` (zero: `route`, as Envoy reads it), else `route`.
/// Zero means none.
fn effective_timeout(headers: &mut HeaderMap, route: Option<Duration>) -> Option<Duration> {
    let route = route.filter(|d| !d.is_zero());
    let control = ControlHeaders::scan(headers);
    if control.timeout {
        // A caller's deadline is not ours to forward (Envoy's `respect_expected_rq_timeout`
        // is off by default); ours replaces it when there is one.
        headers.remove(EXPECTED_RQ_TIMEOUT_MS);
    }
    if control.timeout
        && let Some(override_) = headers
            .remove(UPSTREAM_RQ_TIMEOUT_MS)
            .as_ref()
            .and_then(parse_millis)
    {
        return Some(override_).filter(|d| !d.is_zero());
    }
    if !control.grpc_timeout || !crate::grpc::is_grpc(headers) {
        return route;
    }
    let Some(grpc) = headers
        .get(GRPC_TIMEOUT)
        .and_then(|v| parse_grpc_timeout(v.to_str().ok()?))
    else {
        return route;
    };
    let effective = match route {
        Some(cap) if grpc.is_zero() || grpc > cap => cap,
        _ => grpc,
    };
    Some(effective).filter(|d| !d.is_zero())
}

/// Parses a header value in whole milliseconds (`x-envoy-…-timeout-ms`).
///
/// ```
/// use http::HeaderValue;
/// use mesh_core::timeout::parse_millis;
/// use std::time::Duration;
/// assert_eq!(parse_millis(&HeaderValue::from_static("1500")), Some(Duration::from_millis(1500)));
/// assert_eq!(parse_millis(&HeaderValue::from_static(" 20 ")), Some(Duration::from_millis(20)));
/// assert_eq!(parse_millis(&HeaderValue::from_static("1.5")), None);
/// assert_eq!(parse_millis(&HeaderValue::from_static("-1")), None);
/// ```
pub fn parse_millis(value: &HeaderValue) -> Option<Duration> {
    let ms = value.to_str().ok()?.trim().parse::<u64>().ok()?;
    Some(Duration::from_millis(ms))
}

/// A duration as a header value in milliseconds, at least 1 (0 would mean "no timeout").
///
/// Routes use a handful of distinct timeouts, so each thread keeps the values it made last
/// ([`RECENT_MILLIS`] of them): a request with the same timeout as an earlier one clones a
/// shared value (a reference count) instead of formatting and allocating a new one.
pub(crate) fn millis_value(duration: Duration) -> HeaderValue {
    thread_local! {
        static RECENT: RefCell<RecentMillis> = const { RefCell::new(RecentMillis::new()) };
    }
    let ms = expected_millis(duration);
    RECENT
        .try_with(|recent| recent.borrow_mut().get_or_make(ms))
        .unwrap_or_else(|_| HeaderValue::from(ms))
}

/// The milliseconds [`millis_value`] writes for `duration`: whole ones, at least 1.
pub(crate) fn expected_millis(duration: Duration) -> u64 {
    crate::clock::whole_millis(duration).max(1)
}

/// How many millisecond values each thread keeps for [`millis_value`].
const RECENT_MILLIS: usize = 4;

/// The millisecond header values a thread made last, replaced oldest first.
struct RecentMillis {
    values: [Option<(u64, HeaderValue)>; RECENT_MILLIS],
    next: usize,
}

impl RecentMillis {
    const fn new() -> Self {
        RecentMillis {
            values: [const { None }; RECENT_MILLIS],
            next: 0,
        }
    }

    fn get_or_make(&mut self, ms: u64) -> HeaderValue {
        if let Some((_, value)) = self.values.iter().flatten().find(|(kept, _)| *kept == ms) {
            return value.clone();
        }
        // The kept copy's bytes become shared on this first clone, so later clones only
        // count references.
        let value = HeaderValue::from(ms);
        self.values[self.next] = Some((ms, value.clone()));
        self.next = (self.next + 1) % RECENT_MILLIS;
        value
    }
}

/// Parses a `grpc-timeout` value: 1–8 digits and a unit (`H M S m u n`).
///
/// ```
/// use mesh_core::timeout::parse_grpc_timeout;
/// use std::time::Duration;
/// assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
/// assert_eq!(parse_grpc_timeout("150m"), Some(Duration::from_millis(150)));
/// assert_eq!(parse_grpc_timeout("1X"), None);
/// assert_eq!(parse_grpc_timeout("123456789S"), None);
/// ```
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

pub(crate) fn format_grpc_timeout(d: Duration) -> HeaderValue {
    HeaderValue::from_str(&format!("{}m", d.as_millis().max(1)))
        .unwrap_or(HeaderValue::from_static("1m"))
}

/// Future of [`Timeout`].
///
/// ```
/// use mesh_core::timeout::{TimeoutFuture, TimeoutLayer};
/// use std::time::Duration;
/// use tower::{Layer, Service, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let ok = service_fn(|_req: http::Request<String>| async { Ok::<_, std::convert::Infallible>(7) });
/// let mut svc = TimeoutLayer::new(Some(Duration::from_secs(1))).layer(ok);
/// let future: TimeoutFuture<_> = svc.ready().await.unwrap().call(http::Request::new(String::new()));
/// assert_eq!(future.await.unwrap(), 7);
/// # }
/// ```
#[pin_project]
#[derive(Debug)]
pub struct TimeoutFuture<F> {
    /// Until it is abandoned at the deadline.
    #[pin]
    future: Option<F>,
    #[pin]
    timer: Option<TimerAfterEnd>,
}

impl<F, T, E> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            // Polled again after the timeout.
            return Poll::Ready(Err(MeshError::Timeout.into()));
        };
        if let Poll::Ready(result) = future.poll(cx) {
            return Poll::Ready(result.map_err(Into::into));
        }
        let Some(timer) = this.timer.as_mut().as_pin_mut() else {
            return Poll::Pending;
        };
        ready!(timer.poll(cx));
        // Abandoned now, so that the attempt in flight says where it was waiting.
        Poll::Ready(Err(abandoned::timed_out(this.future)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RoutePolicy;
    use std::convert::Infallible;
    use tower::{ServiceExt, service_fn};

    /// A service that answers after `delay` with the headers it was sent.
    fn slow(
        delay: Duration,
    ) -> impl Service<Request<String>, Response = HeaderMap, Error = Infallible> + Clone {
        service_fn(move |req: Request<String>| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, Infallible>(req.headers().clone())
        })
    }

    #[test]
    fn millis_values_are_made_once_per_thread_and_stay_right_past_the_cache() {
        let first = millis_value(Duration::from_millis(15_000));
        let again = millis_value(Duration::from_millis(15_000));
        assert_eq!(again, "15000");
        // The second is a clone of the kept value: the same bytes, not a new allocation.
        assert_eq!(first.as_bytes().as_ptr(), again.as_bytes().as_ptr());
        // More distinct values than are kept: each still reads right, the oldest is replaced.
        for round in 0..2 {
            for ms in 1..=(RECENT_MILLIS as u64 + 3) {
                let value = millis_value(Duration::from_millis(ms * 100));
                assert_eq!(value, (ms * 100).to_string().as_str(), "round {round}");
            }
        }
        assert_eq!(millis_value(Duration::ZERO), "1");
        assert_eq!(millis_value(Duration::from_micros(1500)), "1");
    }

    #[tokio::test(start_paused = true)]
    async fn route_timeout_fires_at_its_deadline() {
        let start = tokio::time::Instant::now();
        let mut request = Request::new(String::new());
        request.extensions_mut().insert(RoutePolicy {
            timeout: Some(Duration::from_secs(1)),
            ..Default::default()
        });
        let error = TimeoutLayer::default()
            .layer(slow(Duration::from_secs(3)))
            .oneshot(request)
            .await
            .unwrap_err();
        assert!(matches!(MeshError::find(&error), Some(MeshError::Timeout)));
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_answered_before_it_waits_never_makes_a_timer() {
        let mut service = TimeoutLayer::new(Some(Duration::from_secs(15))).layer(service_fn(
            |request: Request<String>| async move {
                // Answers at once when asked to, else never.
                if request.body().is_empty() {
                    Ok::<_, Infallible>(200)
                } else {
                    std::future::pending().await
                }
            },
        ));
        let mut at_once = std::pin::pin!(service.call(Request::new(String::new())));
        let answer = std::future::poll_fn(|cx| Poll::Ready(at_once.as_mut().poll(cx))).await;
        assert!(matches!(answer, Poll::Ready(Ok(200))));
        let timer = at_once.as_mut().project().timer.as_pin_mut().unwrap();
        assert!(
            !timer.has_slept(),
            "answered at once: no tokio timer was made"
        );
        let mut waiting = std::pin::pin!(service.call(Request::new("wait".to_string())));
        let answer = std::future::poll_fn(|cx| Poll::Ready(waiting.as_mut().poll(cx))).await;
        assert!(answer.is_pending());
        let timer = waiting.as_mut().project().timer.as_pin_mut().unwrap();
        assert!(timer.has_slept(), "waiting: the timer is armed");
        // And it fires at the deadline.
        let start = tokio::time::Instant::now();
        let error = waiting.await.unwrap_err();
        assert!(matches!(MeshError::find(&error), Some(MeshError::Timeout)));
        assert_eq!(start.elapsed(), Duration::from_secs(15));
    }

    #[tokio::test(start_paused = true)]
    async fn the_timeout_says_which_upstream_the_request_was_waiting_on() {
        use crate::{UpstreamCluster, UpstreamError, UpstreamHost, error::UpstreamTarget};
        /// An attempt in flight, which says where it waits when it is dropped (as the proxy's
        /// forwarder does).
        struct InFlight;
        impl Drop for InFlight {
            fn drop(&mut self) {
                abandoned::report_abandoned(UpstreamTarget::new(
                    UpstreamCluster("outbound|80|v1|catalog".into()),
                    Some(UpstreamHost("10.0.0.7:8080".parse().unwrap())),
                    None,
                ));
            }
        }
        let waiting = service_fn(|_req: Request<String>| async move {
            let _attempt = InFlight;
            std::future::pending::<Result<(), Infallible>>().await
        });
        let error = TimeoutLayer::new(Some(Duration::from_secs(1)))
            .layer(waiting)
            .oneshot(Request::new(String::new()))
            .await
            .unwrap_err();
        assert!(matches!(MeshError::find(&error), Some(MeshError::Timeout)));
        let target = UpstreamError::find(&error).unwrap().target();
        assert_eq!(&*target.cluster.0, "outbound|80|v1|catalog");
        assert_eq!(target.host.as_ref().unwrap().0, "10.0.0.7:8080");
    }

    #[tokio::test(start_paused = true)]
    async fn no_timeout_by_default_and_header_is_set_when_there_is_one() {
        let headers = TimeoutLayer::default()
            .layer(slow(Duration::from_secs(30)))
            .oneshot(Request::new(String::new()))
            .await
            .unwrap();
        assert!(headers.get(EXPECTED_RQ_TIMEOUT_MS).is_none());
        let headers = TimeoutLayer::new(Some(Duration::from_millis(2500)))
            .layer(slow(Duration::from_secs(1)))
            .oneshot(Request::new(String::new()))
            .await
            .unwrap();
        assert_eq!(headers[EXPECTED_RQ_TIMEOUT_MS], "2500");
    }

    /// A gRPC request with `grpc-timeout: timeout`.
    fn grpc_request(timeout: &'static str) -> Request<String> {
        Request::builder()
            .header("content-type", "application/grpc")
            .header("grpc-timeout", timeout)
            .body(String::new())
            .unwrap()
    }

    /// The headers an upstream that answers at once sees of `request`, under a 2 s route.
    async fn headers_seen_under_a_2s_route(request: Request<String>) -> http::HeaderMap {
        TimeoutLayer::new(Some(Duration::from_secs(2)))
            .layer(slow(Duration::ZERO))
            .oneshot(request)
            .await
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn grpc_timeout_is_for_grpc_requests_and_zero_means_the_routes() {
        // Zero: no deadline of the client's, so the route's.
        let start = tokio::time::Instant::now();
        TimeoutLayer::new(Some(Duration::from_secs(2)))
            .layer(slow(Duration::from_secs(5)))
            .oneshot(grpc_request("0m"))
            .await
            .unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        // Not a gRPC request: the header is not a deadline of ours.
        let json = Request::builder()
            .header("content-type", "application/json")
            .header("grpc-timeout", "100m")
            .body(String::new())
            .unwrap();
        let start = tokio::time::Instant::now();
        let headers = TimeoutLayer::new(Some(Duration::from_secs(2)))
            .layer(slow(Duration::from_secs(1)))
            .oneshot(json)
            .await
            .unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert_eq!(headers["grpc-timeout"], "100m", "forwarded as is");
        // A gRPC request without one is told the route's.
        let request = Request::builder()
            .header("content-type", "application/grpc")
            .body(String::new())
            .unwrap();
        let headers = headers_seen_under_a_2s_route(request).await;
        assert_eq!(headers["grpc-timeout"], "2000m");
    }

    #[tokio::test(start_paused = true)]
    async fn grpc_timeout_is_capped_by_the_route() {
        let request = grpc_request("10S");
        let start = tokio::time::Instant::now();
        let error = TimeoutLayer::new(Some(Duration::from_secs(2)))
            .layer(slow(Duration::from_secs(5)))
            .oneshot(request)
            .await
            .unwrap_err();
        assert!(matches!(MeshError::find(&error), Some(MeshError::Timeout)));
        assert_eq!(start.elapsed(), Duration::from_secs(2));

        // Shorter than the route: the client's deadline applies and is forwarded as is.
        let request = grpc_request("500m");
        let start = tokio::time::Instant::now();
        TimeoutLayer::new(Some(Duration::from_secs(2)))
            .layer(slow(Duration::from_secs(5)))
            .oneshot(request)
            .await
            .unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_millis(500));

        // Capped: the upstream sees the effective deadline.
        let request = grpc_request("10S");
        let headers = headers_seen_under_a_2s_route(request).await;
        assert_eq!(headers["grpc-timeout"], "2000m");
    }

    #[tokio::test(start_paused = true)]
    async fn grpc_timeout_without_route_timeout_is_uncapped() {
        let request = grpc_request("3S");
        let start = tokio::time::Instant::now();
        TimeoutLayer::default()
            .layer(slow(Duration::from_secs(10)))
            .oneshot(request)
            .await
            .unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn caller_override_header_wins_and_is_consumed() {
        let request = Request::builder()
            .header("x-envoy-upstream-rq-timeout-ms", "100")
            .body(String::new())
            .unwrap();
        let start = tokio::time::Instant::now();
        TimeoutLayer::new(Some(Duration::from_secs(5)))
            .layer(slow(Duration::from_secs(1)))
            .oneshot(request)
            .await
            .unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        let request = Request::builder()
            .header("x-envoy-upstream-rq-timeout-ms", "5000")
            .body(String::new())
            .unwrap();
        let headers = TimeoutLayer::default()
            .layer(slow(Duration::ZERO))
            .oneshot(request)
            .await
            .unwrap();
        assert!(headers.get(UPSTREAM_RQ_TIMEOUT_MS).is_none());
    }

    /// The route timeout starts once the whole request has been received, as Envoy's does:
    /// an upload slower than the timeout is not cut off for that.
    mod after_the_request {
        use super::*;
        use crate::{
            Body, body,
            retry::{
                RetryLayer, RetryOn, RetryPolicy,
                replay::tests::{channel, data},
            },
        };
        use http_body_util::BodyExt;
        use std::sync::Arc;
        use tokio::time::Instant;

        /// Reads the whole request body, then answers 200 after `then` (`None`: never).
        fn reads_the_body_then(
            then: Option<Duration>,
        ) -> impl Service<Request<Body>, Response = http::Response<Body>, Error = BoxError> + Clone
        {
            service_fn(move |request: Request<Body>| async move {
                request.into_body().collect().await?;
                match then {
                    Some(delay) => tokio::time::sleep(delay).await,
                    None => std::future::pending().await,
                }
                Ok::<_, BoxError>(http::Response::new(body::empty()))
            })
        }

        /// A request whose body arrives a chunk every 250 ms, ending `after` from now; with
        /// route timeout `timeout`.
        fn upload(after: Duration, timeout: Duration) -> Request<Body> {
            let (tx, upload) = channel();
            tokio::spawn(async move {
                let every = Duration::from_millis(250);
                for _ in 0..after.as_millis() / every.as_millis() {
                    tokio::time::sleep(every).await;
                    let _ = tx.send(data("a chunk"));
                }
            });
            let mut request = Request::new(upload);
            request.extensions_mut().insert(RoutePolicy {
                timeout: Some(timeout),
                ..Default::default()
            });
            request
        }

        fn retrying(per_try: Option<Duration>) -> RetryLayer {
            RetryLayer::with_policy(RetryPolicy {
                attempts: 2,
                retry_on: RetryOn::parse("5xx").unwrap(),
                per_try_timeout: per_try,
                ..RetryPolicy::istio_default()
            })
        }

        #[tokio::test(start_paused = true)]
        async fn a_slow_upload_is_not_timed_out_while_it_streams() {
            for retry in [RetryLayer::new(), retrying(None)] {
                let svc = TimeoutLayer::default()
                    .layer(retry.layer(reads_the_body_then(Some(Duration::from_millis(200)))));
                let start = Instant::now();
                let request = upload(Duration::from_secs(3), Duration::from_secs(1));
                let response = svc.oneshot(request).await.unwrap();
                assert_eq!(response.status(), 200);
                assert_eq!(start.elapsed(), Duration::from_millis(3200));
            }
        }

        #[tokio::test(start_paused = true)]
        async fn the_clock_runs_from_the_end_of_the_body() {
            for retry in [RetryLayer::new(), retrying(None)] {
                let svc = TimeoutLayer::default().layer(retry.layer(reads_the_body_then(None)));
                let start = Instant::now();
                let request = upload(Duration::from_secs(2), Duration::from_secs(1));
                let error = svc.oneshot(request).await.unwrap_err();
                assert!(matches!(MeshError::find(&error), Some(MeshError::Timeout)));
                assert_eq!(start.elapsed(), Duration::from_secs(3));
            }
        }

        #[tokio::test(start_paused = true)]
        async fn so_does_the_per_try_timeout() {
            // Per-try 500 ms under a 10 s route: the first attempt times out 500 ms after the
            // body's end (2 s), the second (its body replayed whole) 500 ms after it starts.
            let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
            let log = seen.clone();
            let hangs = service_fn(move |request: Request<Body>| {
                let log = log.clone();
                async move {
                    request.into_body().collect().await?;
                    log.lock().unwrap().push(Instant::now());
                    std::future::pending::<Result<http::Response<Body>, BoxError>>().await
                }
            });
            let svc = TimeoutLayer::default()
                .layer(retrying(Some(Duration::from_millis(500))).layer(hangs));
            let start = Instant::now();
            let request = upload(Duration::from_secs(2), Duration::from_secs(10));
            let response = svc.oneshot(request).await;
            let error = response.unwrap_err();
            assert!(matches!(MeshError::find(&error), Some(MeshError::Timeout)));
            let read = seen.lock().unwrap().clone();
            assert_eq!(read.len(), 3, "the first attempt and two retries");
            assert_eq!(read[0] - start, Duration::from_secs(2));
            // A retry starts after the first attempt's 500 ms and a back-off (25 ms at most).
            let between = read[1] - read[0];
            assert!(between >= Duration::from_millis(500), "{between:?}");
            assert!(between <= Duration::from_millis(525), "{between:?}");
        }

        #[tokio::test(start_paused = true)]
        async fn an_upload_nobody_reads_does_not_hold_the_clock_back() {
            // Waiting for a connection, say: the body is watched, but nothing reads it.
            let waits = service_fn(|_request: Request<Body>| {
                std::future::pending::<Result<http::Response<Body>, BoxError>>()
            });
            for retry in [RetryLayer::new(), retrying(None)] {
                let start = Instant::now();
                let request = upload(Duration::from_secs(3), Duration::from_secs(1));
                let error = TimeoutLayer::default()
                    .layer(retry.layer(waits))
                    .oneshot(request)
                    .await
                    .unwrap_err();
                assert!(matches!(MeshError::find(&error), Some(MeshError::Timeout)));
                assert_eq!(start.elapsed(), Duration::from_secs(1));
            }
        }

        #[tokio::test(start_paused = true)]
        async fn with_nobody_below_watching_the_body_the_clock_starts_at_the_call() {
            // An inner service that neither reads the body nor answers: no signal is coming.
            let hangs = service_fn(|_request: Request<Body>| {
                std::future::pending::<Result<http::Response<Body>, BoxError>>()
            });
            let start = Instant::now();
            let request = upload(Duration::from_secs(3), Duration::from_secs(1));
            let error = TimeoutLayer::default()
                .layer(hangs)
                .oneshot(request)
                .await
                .unwrap_err();
            assert!(matches!(MeshError::find(&error), Some(MeshError::Timeout)));
            assert_eq!(start.elapsed(), Duration::from_secs(1));
        }
    }
}
