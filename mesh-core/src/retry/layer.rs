//! [`RetryLayer`]: Envoy/Istio retries for any `tower` HTTP service.
//!
//! The policy comes from the request's [`RoutePolicy`](crate::policy::RoutePolicy) (`retry`), else
//! from the layer (none by default): the layer's policy applies whenever the request's `retry` is
//! `None`, whether or not the request carries a `RoutePolicy`. Each attempt's outcome is classified
//! by the policy's [`RetryOn`](super::RetryOn); a retriable failure is retried after a jittered
//! back-off ([`Backoff`]) while attempts remain, the layer's [`RetryBudget`] has a token and the
//! body can be replayed ([`ReplayBuffer`]). When the attempts run out, a final response gets flag
//! `URX`; a final error is returned as is, for the outer edge to turn into a local reply. An
//! optional per-try timeout bounds each attempt (failing it with [`MeshError::Timeout`]: 504 `UT`
//! if no retry is left); the route timeout belongs outside this layer and covers every attempt.
//! Under a route timeout or a per-try timeout, a request body still streaming is watched here
//! ([`RequestEnd`]): the route's clock and the per-try timers run from its end, as Envoy's do, or
//! from its last chunk when it stops arriving.
//!
//! Every attempt carries `x-envoy-attempt-count` (1, 2, 3…); the request headers
//! `x-envoy-retriable-status-codes` and `x-envoy-retriable-header-names` are consumed. A
//! request that may be retried carries a [`RetryContext`] extension, the same one on every
//! attempt, so that the load balancer can avoid hosts already tried and the proxy can tell the
//! layer its cluster's `max_retries`.
//!
//! Requests without a policy are forwarded with no allocation by this layer; a retriable
//! request with an empty body buffers nothing. The head of a retriable request is kept for its
//! retries as bytes in one buffer, not as a clone of its header map, and read back only when a
//! retry is made: most requests succeed at once. Its extensions are cloned for the retries, or,
//! over a service that hands each attempt's back ([`RetryLayer::extensions_handed_back`]), not
//! kept at all.

use super::{
    Backoff, ReplayBuffer, RetryBudget, RetryContext, RetryHeaders, RetryPolicy,
    effective_per_try_timeout, head::KeptHead, replay::ReplayError,
    request_override::RetryOverride,
};
use crate::{
    Body, BoxError, MeshError, ResponseFlag, UpstreamError, abandoned, body,
    circuit_breaker::RetryPermit,
    control_headers::ControlHeaders,
    flags::mark_outcome,
    policy::route_policy,
    request_end::{RequestEnd, TimerAfterEnd},
    timeout::{
        EXPECTED_RQ_TIMEOUT_MS, GRPC_TIMEOUT, RouteDeadline, UPSTREAM_RQ_PER_TRY_TIMEOUT_MS,
        format_grpc_timeout, millis_value, parse_millis,
    },
};
use http::{Extensions, HeaderName, HeaderValue, Request, Response};
use http_body::Body as _;
use http_body_util::BodyExt;
use pin_project::pin_project;
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};
use tokio::time::Sleep;
use tower::{Layer, Service};

/// The attempt number sent upstream on every attempt (1 for the first try).
///
/// ```
/// use mesh_core::{Body, body, retry::{ATTEMPT_COUNT, RetryLayer, RetryOn, RetryPolicy}};
/// use std::sync::{Arc, Mutex};
/// use tower::{Layer, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = seen.clone();
/// let failing = service_fn(move |req: http::Request<Body>| {
///     log.lock().unwrap().push(req.headers()[ATTEMPT_COUNT].clone());
///     async { Ok::<_, std::convert::Infallible>(http::Response::builder().status(503).body(body::empty()).unwrap()) }
/// });
/// let policy = RetryPolicy { retry_on: RetryOn::parse("503").unwrap(), ..RetryPolicy::istio_default() };
/// let svc = RetryLayer::with_policy(policy).layer(failing);
/// assert_eq!(svc.oneshot(http::Request::new(body::empty())).await.unwrap().status(), 503);
/// assert_eq!(*seen.lock().unwrap(), ["1", "2", "3"]);
/// # }
/// ```
pub const ATTEMPT_COUNT: HeaderName = HeaderName::from_static("x-envoy-attempt-count");

/// The default replay buffer limit: 1 MiB, Envoy's per-connection buffer limit.
///
/// A body known to be larger than the buffer is sent once, never retried:
///
/// ```
/// use mesh_core::{Body, body, retry::{DEFAULT_BUFFER_LIMIT, RetryLayer, RetryOn, RetryPolicy}};
/// use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
/// use tower::{Layer, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let calls = Arc::new(AtomicU32::new(0));
/// let counter = calls.clone();
/// let failing = service_fn(move |_req: http::Request<Body>| {
///     counter.fetch_add(1, Ordering::SeqCst);
///     async { Ok::<_, std::convert::Infallible>(http::Response::builder().status(503).body(body::empty()).unwrap()) }
/// });
/// let policy = RetryPolicy { retry_on: RetryOn::parse("5xx").unwrap(), ..RetryPolicy::istio_default() };
/// let svc = RetryLayer::with_policy(policy).layer(failing);
/// svc.oneshot(http::Request::new(body::full(vec![0u8; DEFAULT_BUFFER_LIMIT + 1]))).await.unwrap();
/// assert_eq!(calls.load(Ordering::SeqCst), 1);
/// # }
/// ```
pub const DEFAULT_BUFFER_LIMIT: usize = 1024 * 1024;

/// Retries failed requests; see the [module docs](self).
///
/// ```
/// use mesh_core::{body, retry::{RetryLayer, RetryOn, RetryPolicy}};
/// use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
/// use tower::{Layer, ServiceExt, service_fn};
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// // An upstream that answers 503 once, then 200.
/// let calls = Arc::new(AtomicU32::new(0));
/// let seen = calls.clone();
/// let upstream = service_fn(move |_req: http::Request<mesh_core::Body>| {
///     let status = if seen.fetch_add(1, Ordering::SeqCst) == 0 { 503 } else { 200 };
///     async move {
///         let mut response = http::Response::new(body::empty());
///         *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
///         Ok::<_, std::convert::Infallible>(response)
///     }
/// });
/// let policy = RetryPolicy {
///     retry_on: RetryOn::parse("5xx").unwrap(),
///     ..RetryPolicy::istio_default()
/// };
/// let svc = RetryLayer::with_policy(policy).layer(upstream);
/// let response = svc.oneshot(http::Request::new(body::full("order"))).await.unwrap();
/// assert_eq!(response.status(), 200);
/// assert_eq!(calls.load(Ordering::SeqCst), 2);
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct RetryLayer {
    fallback: Option<Arc<RetryPolicy>>,
    budget: RetryBudget,
    buffer_limit: usize,
    extensions_handed_back: bool,
}

impl RetryLayer {
    /// Retries by each request's route policy; requests without one (no
    /// [`RoutePolicy`](crate::policy::RoutePolicy), or one with `retry: None`) are not retried.
    /// Uses the default [`RetryBudget`] and a 1 MiB replay buffer.
    ///
    /// The policy comes from the request's route; the final response of a retried request that
    /// ran out of attempts is marked `URX`:
    ///
    /// ```
    /// use mesh_core::{Body, ResponseFlag, ResponseFlags, body, policy::RoutePolicy, retry::{RetryLayer, RetryOn, RetryPolicy}};
    /// use std::sync::Arc;
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let failing = service_fn(|_req: http::Request<Body>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::builder().status(502).body(body::empty()).unwrap())
    /// });
    /// let svc = RetryLayer::new().layer(failing);
    /// let retry = RetryPolicy { retry_on: RetryOn::parse("gateway-error").unwrap(), ..RetryPolicy::istio_default() };
    /// let mut request = http::Request::new(body::empty());
    /// request.extensions_mut().insert(RoutePolicy { retry: Some(Arc::new(retry)), ..Default::default() });
    /// let response = svc.clone().oneshot(request).await.unwrap();
    /// assert!(response.extensions().get::<ResponseFlags>().unwrap().contains(ResponseFlag::UpstreamRetryLimitExceeded));
    /// let plain = svc.oneshot(http::Request::new(body::empty())).await.unwrap();
    /// assert!(plain.extensions().get::<ResponseFlags>().is_none(), "no policy: not retried");
    /// # }
    /// ```
    pub fn new() -> Self {
        RetryLayer {
            fallback: None,
            budget: RetryBudget::default(),
            buffer_limit: DEFAULT_BUFFER_LIMIT,
            extensions_handed_back: false,
        }
    }

    /// Retries by `policy` the requests whose route has no retry policy of its own: those with no
    /// [`RoutePolicy`](crate::policy::RoutePolicy) and those whose `RoutePolicy` has `retry: None`
    /// (unlike [`TimeoutLayer`](crate::timeout::TimeoutLayer), a present `RoutePolicy` does not
    /// disable the fallback).
    ///
    /// Retries a connect failure, then succeeds:
    ///
    /// ```
    /// use mesh_core::{Body, MeshError, body, retry::{RetryLayer, RetryPolicy}};
    /// use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let counter = calls.clone();
    /// let flaky = service_fn(move |_req: http::Request<Body>| {
    ///     let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
    ///     async move {
    ///         if first { return Err(MeshError::ConnectFailure("refused".into())); }
    ///         Ok(http::Response::new(body::empty()))
    ///     }
    /// });
    /// let svc = RetryLayer::with_policy(RetryPolicy::istio_default()).layer(flaky);
    /// assert_eq!(svc.oneshot(http::Request::new(body::empty())).await.unwrap().status(), 200);
    /// assert_eq!(calls.load(Ordering::SeqCst), 2);
    /// # }
    /// ```
    pub fn with_policy(policy: RetryPolicy) -> Self {
        RetryLayer {
            fallback: Some(Arc::new(policy)),
            ..RetryLayer::new()
        }
    }

    /// Uses `budget` (shared with its clones) instead of a default budget of its own.
    ///
    /// An empty budget makes no retries:
    ///
    /// ```
    /// use mesh_core::{Body, body, retry::{RetryBudget, RetryLayer, RetryOn, RetryPolicy}};
    /// use std::{sync::{Arc, atomic::{AtomicU32, Ordering}}, time::Duration};
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let counter = calls.clone();
    /// let failing = service_fn(move |_req: http::Request<Body>| {
    ///     counter.fetch_add(1, Ordering::SeqCst);
    ///     async { Ok::<_, std::convert::Infallible>(http::Response::builder().status(503).body(body::empty()).unwrap()) }
    /// });
    /// let policy = RetryPolicy { retry_on: RetryOn::parse("5xx").unwrap(), ..RetryPolicy::istio_default() };
    /// let empty = RetryBudget::new(Duration::from_secs(1), 0, 0.0).unwrap();
    /// let svc = RetryLayer::with_policy(policy).budget(empty).layer(failing);
    /// assert_eq!(svc.oneshot(http::Request::new(body::empty())).await.unwrap().status(), 503);
    /// assert_eq!(calls.load(Ordering::SeqCst), 1);
    /// # }
    /// ```
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = budget;
        self
    }

    /// Keeps at most `bytes` of each request body for replay (default 1 MiB); larger bodies
    /// are not retried.
    ///
    /// ```
    /// use mesh_core::{Body, body, retry::{RetryLayer, RetryOn, RetryPolicy}};
    /// use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let counter = calls.clone();
    /// let failing = service_fn(move |_req: http::Request<Body>| {
    ///     counter.fetch_add(1, Ordering::SeqCst);
    ///     async { Ok::<_, std::convert::Infallible>(http::Response::builder().status(503).body(body::empty()).unwrap()) }
    /// });
    /// let policy = RetryPolicy { attempts: 1, retry_on: RetryOn::parse("5xx").unwrap(), ..RetryPolicy::istio_default() };
    /// let svc = RetryLayer::with_policy(policy).buffer_limit(4).layer(failing);
    /// svc.clone().oneshot(http::Request::new(body::full("tiny"))).await.unwrap();
    /// assert_eq!(calls.swap(0, Ordering::SeqCst), 2, "4 bytes fit: retried");
    /// svc.oneshot(http::Request::new(body::full("too large"))).await.unwrap();
    /// assert_eq!(calls.load(Ordering::SeqCst), 1, "9 bytes do not: sent once");
    /// # }
    /// ```
    pub fn buffer_limit(mut self, bytes: usize) -> Self {
        self.buffer_limit = bytes;
        self
    }

    /// Keeps no clone of a request's extensions for its retries: the service below hands each
    /// attempt's back through the request's [`RetryContext`]
    /// ([`LentExtensions`](super::LentExtensions)), and a retry
    /// is made from those. For a service that does so on every attempt, as the mesh's
    /// forwarder does (`mesh_proxy::forward::Forward`); a retry whose attempt handed nothing
    /// back is not made, and that attempt's answer stands.
    ///
    /// ```
    /// use mesh_core::{Body, body, retry::{LentExtensions, RetryLayer, RetryOn, RetryPolicy}};
    /// use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let counter = calls.clone();
    /// let flaky = service_fn(move |mut req: http::Request<Body>| {
    ///     let extensions = LentExtensions::take(&mut req); // handed back when dropped
    ///     let tenant = extensions.get::<&str>().copied();
    ///     let status = if counter.fetch_add(1, Ordering::SeqCst) == 0 { 503 } else { 200 };
    ///     async move {
    ///         let response = http::Response::builder().status(status).header("x-tenant", tenant.unwrap_or("none"));
    ///         Ok::<_, std::convert::Infallible>(response.body(body::empty()).unwrap())
    ///     }
    /// });
    /// let policy = RetryPolicy { retry_on: RetryOn::parse("5xx").unwrap(), ..RetryPolicy::istio_default() };
    /// let svc = RetryLayer::with_policy(policy).extensions_handed_back().layer(flaky);
    /// let mut request = http::Request::new(body::empty());
    /// request.extensions_mut().insert("acme");
    /// let response = svc.oneshot(request).await.unwrap();
    /// assert_eq!((response.status().as_u16(), calls.load(Ordering::SeqCst)), (200, 2));
    /// assert_eq!(response.headers()["x-tenant"], "acme", "the retry carried them");
    /// # }
    /// ```
    pub fn extensions_handed_back(mut self) -> Self {
        self.extensions_handed_back = true;
        self
    }
}

impl Default for RetryLayer {
    fn default() -> Self {
        RetryLayer::new()
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner,
            fallback: self.fallback.clone(),
            budget: self.budget.clone(),
            buffer_limit: self.buffer_limit,
            extensions_handed_back: self.extensions_handed_back,
        }
    }
}

/// The service [`RetryLayer`] produces.
///
/// ```
/// use mesh_core::{Body, body, retry::{Retry, RetryLayer, RetryOn, RetryPolicy}};
/// use tower::{Layer, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let ok = service_fn(|req: http::Request<Body>| async move {
///     Ok::<_, std::convert::Infallible>(http::Response::new(req.into_body()))
/// });
/// let policy = RetryPolicy { retry_on: RetryOn::parse("5xx").unwrap(), ..RetryPolicy::istio_default() };
/// let svc: Retry<_> = RetryLayer::with_policy(policy).layer(ok);
/// let response = svc.oneshot(http::Request::new(body::full("echo"))).await.unwrap();
/// let text = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
/// assert_eq!(text, "echo", "the first attempt streams the body through");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Retry<S> {
    inner: S,
    fallback: Option<Arc<RetryPolicy>>,
    budget: RetryBudget,
    buffer_limit: usize,
    extensions_handed_back: bool,
}

impl<S> Service<Request<Body>> for Retry<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = RetryFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, mut request: Request<Body>) -> RetryFuture<S> {
        let retry_headers = ControlHeaders::scan(request.headers()).retry;
        let per_try_override = if retry_headers {
            request
                .headers_mut()
                .remove(UPSTREAM_RQ_PER_TRY_TIMEOUT_MS)
                .as_ref()
                .and_then(parse_millis)
        } else {
            None
        };
        // The request's own `x-envoy-retry-on` / `-grpc-on` / `max-retries`.
        let by_request = retry_headers.then(|| RetryOverride::take_from(request.headers_mut()));
        let (policy, per_try, global) = {
            let route = route_policy(request.extensions());
            let policy = route
                .and_then(|p| p.retry.as_ref())
                .or(self.fallback.as_ref());
            let policy = match &by_request {
                Some(by_request) => by_request.apply(policy),
                None => policy.cloned(),
            };
            // The overall timeout, as the timeout layer above enforces it (none without one).
            let global = request.extensions().get::<RouteDeadline>().copied();
            let configured = per_try_override.or(policy.as_ref().and_then(|p| p.per_try_timeout));
            let per_try = effective_per_try_timeout(configured, global.map(|g| g.timeout));
            // A body known to outgrow the buffer could not be replayed: no retries.
            let fits = request.body().size_hint().lower() <= self.buffer_limit as u64;
            let policy = policy.filter(|p| p.attempts > 0 && !p.retry_on.is_empty() && fits);
            (policy, per_try, global)
        };
        let extra = if retry_headers {
            RetryHeaders::take_from(request.headers_mut())
        } else {
            RetryHeaders::default()
        };
        let headers = request.headers_mut();
        headers.insert(ATTEMPT_COUNT, attempt_count(1));
        // Under a route timeout, a gRPC upstream is told its attempt's deadline in
        // `grpc-timeout` too, as Envoy rewrites it (the timeout layer wrote the route's).
        let grpc_deadline = global.is_some_and(|g| g.grpc);
        // The upstream is told the deadline of its attempt.
        if let Some(per_try) = per_try {
            headers.insert(EXPECTED_RQ_TIMEOUT_MS, millis_value(per_try));
            if grpc_deadline {
                headers.insert(GRPC_TIMEOUT, format_grpc_timeout(per_try));
            }
        }
        // A body still streaming holds the timers back while it arrives — the route timeout's
        // (the timeout layer above asks, with a `RequestEnd`) and the per-try ones — and it
        // passes through here whether retried or not.
        let end = match request.extensions().get::<RequestEnd>() {
            _ if request.body().is_end_stream() => None,
            Some(end) => Some(end.clone()),
            None if per_try.is_some() => {
                let end = RequestEnd::new();
                request.extensions_mut().insert(end.clone());
                Some(end)
            }
            None => None,
        };
        if let Some(end) = &end {
            request = request.map(|body| end.watch(body));
        }
        let timeout = per_try.map(|d| {
            let now = tokio::time::Instant::now();
            Box::pin(TimerAfterEnd::new(d, end.as_ref(), now))
        });
        let Some(policy) = policy else {
            return RetryFuture {
                kind: Kind::Once {
                    future: Some(self.inner.call(request)),
                    timeout,
                },
            };
        };

        let (mut parts, body) = request.into_parts();
        // One a layer above provided is taken up, and kept out of the template.
        let outer_context = parts.extensions.remove::<RetryContext>();
        let (replay, first_body) = if body.is_end_stream() {
            (Replay::Empty, body)
        } else {
            let buffer = ReplayBuffer::new(body, self.buffer_limit);
            let first = buffer.body().map_or_else(body::empty, BodyExt::boxed);
            (Replay::Buffered(buffer), first)
        };
        // The head is kept before the context joins the first attempt's extensions, so that
        // keeping it does not clone the context too; each retry adds it back.
        let context = outer_context.unwrap_or_default();
        context.allow_retries();
        let extensions = if self.extensions_handed_back {
            context.expect_extensions_back();
            KeptExtensions::HandedBack
        } else {
            KeptExtensions::Cloned(parts.extensions.clone())
        };
        // Made in its box, and the head kept there, where it lies: the head is large, and
        // moving it would cost more than writing it.
        let clone = self.inner.clone();
        let mut retry = Box::write(
            Box::new_uninit(),
            RetryState {
                backoff: Backoff::new(policy.backoff_base),
                policy,
                // The service that was made ready is kept (to ready again) for the retries.
                service: std::mem::replace(&mut self.inner, clone),
                head: KeptHead::empty(),
                extensions,
                replay,
                next_body: None,
                extra,
                budget: self.budget.clone(),
                attempt: 1,
                per_try,
                grpc_deadline,
                context,
                retry_permit: None,
                last: None,
            },
        );
        retry.head.keep_from(&parts);
        retry.context.begin_attempt(1, per_try);
        parts.extensions.insert(retry.context.clone());
        let future = retry.service.call(Request::from_parts(parts, first_body));
        RetryFuture {
            kind: Kind::Retrying {
                retry,
                phase: Phase::Attempt { future, timeout },
            },
        }
    }
}

/// The `x-envoy-attempt-count` value for attempt `n`, without allocating for small `n`.
fn attempt_count(n: u32) -> HeaderValue {
    crate::header_value::decimal(u64::from(n))
}

/// Where retries take the request's extensions from.
enum KeptExtensions {
    /// A clone kept when the request came in, cloned again for each retry.
    Cloned(Extensions),
    /// The request's [`RetryContext`], to which the service below hands back each attempt's
    /// ([`RetryLayer::extensions_handed_back`]).
    HandedBack,
}

impl KeptExtensions {
    /// The extensions of the next attempt; `None` when the last attempt handed none back.
    fn for_retry(&self, context: &RetryContext) -> Option<Extensions> {
        match self {
            KeptExtensions::Cloned(extensions) => Some(extensions.clone()),
            KeptExtensions::HandedBack => context.take_handed_back(),
        }
    }
}

/// Where retries take their body from.
enum Replay {
    /// The request had no body: retries send none.
    Empty,
    /// The request body, buffered as it is read.
    Buffered(ReplayBuffer),
}

impl Replay {
    fn is_replayable(&self) -> bool {
        match self {
            Replay::Empty => true,
            Replay::Buffered(buffer) => buffer.is_replayable(),
        }
    }

    fn next_body(&self) -> Option<Body> {
        match self {
            Replay::Empty => Some(body::empty()),
            Replay::Buffered(buffer) => buffer.body().map(BodyExt::boxed),
        }
    }
}

/// What a request being retried keeps between attempts.
struct RetryState<S> {
    policy: Arc<RetryPolicy>,
    /// The service, to be made ready before each retry.
    service: S,
    /// The request head every retry is made from.
    head: KeptHead,
    /// Where every retry's extensions come from.
    extensions: KeptExtensions,
    replay: Replay,
    /// The body of the next attempt, taken when its back-off starts.
    next_body: Option<Body>,
    extra: RetryHeaders,
    budget: RetryBudget,
    backoff: Backoff,
    /// The attempt in flight or just finished, from 1.
    attempt: u32,
    per_try: Option<Duration>,
    /// Whether a retry's upstream is told its deadline in `grpc-timeout` too.
    grpc_deadline: bool,
    /// Shared with the layers below: the hosts tried, the cluster's breaker (`max_retries`).
    context: RetryContext,
    /// The breaker's admission for the retry in flight.
    retry_permit: Option<RetryPermit>,
    /// Between attempts (backing off, then waiting for the service): the last attempt's
    /// result, answered if the retry cannot be made. Kept here rather than in
    /// [`Phase::Backoff`] so that every request's future stays small.
    last: Option<Result<Response<Body>, BoxError>>,
}

impl<S> Drop for RetryState<S> {
    /// Cut short between attempts (a route timeout during the back-off, say), the request
    /// names where its last attempt went, as Envoy's access log does: the layer that dropped
    /// it takes that up through [`abandoned`].
    fn drop(&mut self) {
        if self.last.is_some()
            && let Some(target) = self.context.last_target()
        {
            abandoned::report_abandoned(target);
        }
    }
}

impl<S> RetryState<S> {
    /// The answer of the last attempt, for a retry that cannot be made; `why` as the error
    /// when there is none to give.
    fn last_answer_or(&mut self, why: &'static str) -> Result<Response<Body>, BoxError> {
        self.last
            .take()
            .unwrap_or_else(|| Err(MeshError::BadRequest(why).into()))
    }

    /// The timeout a retry's upstream is told (`x-envoy-expected-rq-timeout-ms`, and
    /// `grpc-timeout` for gRPC under a route timeout): the per-try timeout, reduced to what is
    /// left of the overall one (at least 1 ms), as Envoy does; the timeout told, if any.
    fn tell_expected_timeout(
        &self,
        headers: &mut http::HeaderMap,
        extensions: &Extensions,
    ) -> Option<Duration> {
        // The route's deadline, held back by a request body still arriving.
        let left = RouteDeadline::current(extensions)
            .map(|deadline| deadline.saturating_duration_since(tokio::time::Instant::now()));
        let expected = match (self.per_try, left) {
            (Some(per_try), Some(left)) => per_try.min(left),
            (per_try, left) => per_try.or(left)?,
        };
        headers.insert(EXPECTED_RQ_TIMEOUT_MS, millis_value(expected));
        if self.grpc_deadline {
            let expected = expected.max(Duration::from_millis(1));
            headers.insert(GRPC_TIMEOUT, format_grpc_timeout(expected));
        }
        Some(expected)
    }
}

/// Future of [`Retry`].
///
/// ```
/// use mesh_core::{Body, body, retry::{RetryFuture, RetryLayer}};
/// use tower::{Layer, Service, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let ok = service_fn(|_req: http::Request<Body>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(body::empty()))
/// });
/// let mut svc = RetryLayer::new().layer(ok);
/// let future: RetryFuture<_> = svc.ready().await.unwrap().call(http::Request::new(body::empty()));
/// assert_eq!(future.await.unwrap().status(), 200);
/// # }
/// ```
#[pin_project]
pub struct RetryFuture<S>
where
    S: Service<Request<Body>>,
{
    #[pin]
    kind: Kind<S>,
}

// The retry state is boxed: one allocation costs less than moving a future four times its
// size through every layer above (measured in the resilience_layers bench).
#[pin_project(project = KindProj)]
enum Kind<S>
where
    S: Service<Request<Body>>,
{
    /// No retries: the one attempt, under its per-try timeout if any (abandoned at it).
    Once {
        #[pin]
        future: Option<S::Future>,
        timeout: Option<Pin<Box<TimerAfterEnd>>>,
    },
    /// Retries possible.
    Retrying {
        retry: Box<RetryState<S>>,
        #[pin]
        phase: Phase<S::Future>,
    },
}

#[pin_project(project = PhaseProj)]
enum Phase<F> {
    /// An attempt is in flight.
    Attempt {
        #[pin]
        future: F,
        timeout: Option<Pin<Box<TimerAfterEnd>>>,
    },
    /// Waiting before the next attempt (the last result is in [`RetryState::last`]).
    Backoff { sleep: Pin<Box<Sleep>> },
    /// Waiting for the service to be ready for the next attempt.
    Ready,
}

/// How one attempt ended.
enum Outcome {
    Done(Result<Response<Body>, BoxError>),
    PerTryTimeout,
}

impl Outcome {
    /// The attempt's result; a timeout carries where the attempt went, as `context` knows.
    fn into_result(self, context: &RetryContext) -> Result<Response<Body>, BoxError> {
        match self {
            Outcome::Done(result) => result,
            Outcome::PerTryTimeout => {
                Err(UpstreamError::at(context.last_target(), MeshError::Timeout))
            }
        }
    }
}

fn poll_attempt<F, E>(
    future: Pin<&mut F>,
    timeout: &mut Option<Pin<Box<TimerAfterEnd>>>,
    cx: &mut Context<'_>,
) -> Poll<Outcome>
where
    F: Future<Output = Result<Response<Body>, E>>,
    E: Into<BoxError>,
{
    if let Poll::Ready(result) = future.poll(cx) {
        return Poll::Ready(Outcome::Done(result.map_err(Into::into)));
    }
    match timeout {
        Some(timer) => timer.as_mut().poll(cx).map(|()| Outcome::PerTryTimeout),
        None => Poll::Pending,
    }
}

impl<S> Future for RetryFuture<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (retry, mut phase) = match self.project().kind.project() {
            KindProj::Once {
                mut future,
                timeout,
            } => {
                let Some(attempt) = future.as_mut().as_pin_mut() else {
                    // Polled again after the timeout.
                    return Poll::Ready(Err(MeshError::Timeout.into()));
                };
                return Poll::Ready(match ready!(poll_attempt(attempt, timeout, cx)) {
                    Outcome::Done(result) => result,
                    // Abandoned now, so that the attempt says where it was waiting.
                    Outcome::PerTryTimeout => Err(abandoned::timed_out(future)),
                });
            }
            KindProj::Retrying { retry, phase } => (retry, phase),
        };
        loop {
            match phase.as_mut().project() {
                PhaseProj::Attempt { future, timeout } => {
                    let outcome = ready!(poll_attempt(future, timeout, cx));
                    // The request counts into the layer's budget only when no cluster's was
                    // named below (the proxy names one, and counts the request into it): this
                    // one is shared by every request of the layer, on every thread.
                    if retry.attempt == 1 && retry.context.budget().is_none() {
                        retry.budget.deposit();
                    }
                    let on = &retry.policy.retry_on;
                    let retriable = match &outcome {
                        Outcome::PerTryTimeout => on.retries_per_try_timeout(),
                        Outcome::Done(Ok(response)) => on.retries_response(response, &retry.extra),
                        Outcome::Done(Err(error)) => on.retries_error(error),
                    };
                    let result = outcome.into_result(&retry.context);
                    if !retriable {
                        return Poll::Ready(result);
                    }
                    if retry.attempt > retry.policy.attempts {
                        return Poll::Ready(mark_outcome(
                            result,
                            ResponseFlag::UpstreamRetryLimitExceeded,
                        ));
                    }
                    if !retry.replay.is_replayable() {
                        return Poll::Ready(result);
                    }
                    // `max_retries` of the cluster, then the retry budget: a retry over either
                    // is not made, and the request is marked overflowed (`UO`), as Envoy does.
                    retry.retry_permit = None;
                    if let Some(breaker) = retry.context.breaker() {
                        match breaker.try_acquire_retry() {
                            Some(permit) => retry.retry_permit = Some(permit),
                            None => {
                                return Poll::Ready(mark_outcome(
                                    result,
                                    ResponseFlag::UpstreamOverflow,
                                ));
                            }
                        }
                    }
                    // The cluster's budget when the proxy below named one, else the layer's.
                    let budget = retry.context.budget().unwrap_or(&retry.budget);
                    if !budget.withdraw() {
                        return Poll::Ready(mark_outcome(result, ResponseFlag::UpstreamOverflow));
                    }
                    let Some(body) = retry.replay.next_body() else {
                        return Poll::Ready(result);
                    };
                    retry.next_body = Some(body);
                    let delay = retry.backoff.next_delay();
                    retry.last = Some(result);
                    phase.set(Phase::Backoff {
                        sleep: Box::pin(tokio::time::sleep(delay)),
                    });
                }
                PhaseProj::Backoff { sleep } => {
                    if let Replay::Buffered(buffer) = &retry.replay {
                        match buffer.poll_read_ahead(cx) {
                            Poll::Ready(Err(ReplayError::Capped)) => {
                                retry.last = None;
                                return Poll::Ready(Ok(
                                    MeshError::BufferLimitExceeded.to_response()
                                ));
                            }
                            // The client's body failed: no retry can succeed.
                            Poll::Ready(Err(_)) => {
                                if let Some(result) = retry.last.take() {
                                    return Poll::Ready(result);
                                }
                            }
                            Poll::Ready(Ok(())) | Poll::Pending => {}
                        }
                    }
                    ready!(sleep.as_mut().poll(cx));
                    phase.set(Phase::Ready);
                }
                PhaseProj::Ready => {
                    if let Err(error) = ready!(retry.service.poll_ready(cx)) {
                        retry.last = None;
                        return Poll::Ready(Err(error.into()));
                    }
                    // What the attempt before handed back, or what was kept; without them no
                    // retry is made, and the last answer stands.
                    let Some(extensions) = retry.extensions.for_retry(&retry.context) else {
                        let why = "the request's extensions were not handed back for a retry";
                        return Poll::Ready(retry.last_answer_or(why));
                    };
                    retry.attempt += 1;
                    // The headers a retry adds: the attempt count and the expected timeouts.
                    let Ok(mut parts) = retry.head.make(3) else {
                        // Only a header value made unchecked out of bytes `http` refuses does
                        // not read back: the request is not retried, its last answer stands.
                        let why = "the request head cannot be read back for a retry";
                        return Poll::Ready(retry.last_answer_or(why));
                    };
                    parts
                        .headers
                        .insert(ATTEMPT_COUNT, attempt_count(retry.attempt));
                    let expected = retry.tell_expected_timeout(&mut parts.headers, &extensions);
                    retry.context.begin_attempt(retry.attempt, expected);
                    let timeout = retry.per_try.map(|d| {
                        let end = extensions.get::<RequestEnd>();
                        let now = tokio::time::Instant::now();
                        Box::pin(TimerAfterEnd::new(d, end, now))
                    });
                    parts.extensions = extensions;
                    parts.extensions.insert(retry.context.clone());
                    let body = retry.next_body.take().unwrap_or_else(body::empty);
                    retry.last = None;
                    let future = retry.service.call(Request::from_parts(parts, body));
                    phase.set(Phase::Attempt { future, timeout });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RoutePolicy;
    use crate::{
        ResponseFlags,
        local_reply::error_to_response,
        retry::{ClusterRecord, RetryOn, replay::tests::channel},
    };
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode, uri::Authority};
    use http_body::Frame;
    use std::{collections::VecDeque, sync::Mutex, time::Duration};
    use tokio::time::Instant;
    use tower::ServiceExt;

    /// What the scripted upstream does with one attempt.
    #[derive(Clone, Debug)]
    enum Reply {
        Status(u16),
        WithHeader(u16, &'static str, &'static str),
        Fail(fn() -> MeshError),
        /// Reads one body chunk, then the connection resets.
        ResetAfterFirstChunk,
        /// Never answers.
        Hang,
    }

    /// What the upstream saw of one attempt.
    #[derive(Clone, Debug)]
    struct Seen {
        headers: HeaderMap,
        body: Bytes,
        trailers: Option<HeaderMap>,
        /// Hosts in the request's `RetryContext` when it arrived (`None`: no extension).
        hosts_before: Option<usize>,
        /// The attempt its `RetryContext` announced.
        announced: Option<crate::retry::Attempt>,
        /// The request's [`Tenant`] extension.
        tenant: Option<&'static str>,
    }

    /// An extension of the caller's, for the attempts to carry.
    #[derive(Clone, Debug)]
    struct Tenant(&'static str);

    /// An upstream answering from a script (then 200s), recording every attempt.
    #[derive(Clone)]
    struct Upstream {
        script: Arc<Mutex<VecDeque<Reply>>>,
        seen: Arc<Mutex<Vec<Seen>>>,
        read_body: bool,
        /// Takes each attempt's extensions and hands them back when done, as the mesh's
        /// forwarder does ([`LentExtensions`](crate::retry::LentExtensions)).
        lend_extensions: bool,
    }

    impl Upstream {
        fn new(replies: impl IntoIterator<Item = Reply>) -> Self {
            Upstream {
                script: Arc::new(Mutex::new(replies.into_iter().collect())),
                seen: Arc::default(),
                read_body: true,
                lend_extensions: false,
            }
        }

        fn lending_extensions(mut self) -> Self {
            self.lend_extensions = true;
            self
        }

        fn without_reading_bodies(mut self) -> Self {
            self.read_body = false;
            self
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }

        fn calls(&self) -> usize {
            self.seen.lock().unwrap().len()
        }
    }

    impl Service<Request<Body>> for Upstream {
        type Response = Response<Body>;
        type Error = BoxError;
        type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, mut request: Request<Body>) -> Self::Future {
            let lent = self
                .lend_extensions
                .then(|| crate::retry::LentExtensions::take(&mut request));
            let reply = self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Reply::Status(200));
            let this = self.clone();
            Box::pin(async move {
                let (parts, mut body) = request.into_parts();
                let extensions = lent.as_deref().unwrap_or(&parts.extensions);
                let tenant = extensions.get::<Tenant>().map(|tenant| tenant.0);
                let hosts = extensions.get::<RetryContext>().cloned();
                let hosts_before = hosts.as_ref().map(RetryContext::hosts_tried);
                let announced = hosts.as_ref().and_then(RetryContext::attempt);
                if let Some(hosts) = &hosts {
                    let scripted = crate::UpstreamCluster("outbound|80||scripted".into());
                    hosts.set_cluster(|| ClusterRecord::new(scripted));
                    let host = format!("10.0.0.{}:80", hosts.hosts_tried() + 1);
                    hosts.record_host(&Authority::try_from(host.as_str()).unwrap());
                }
                let (data, trailers) = match reply {
                    Reply::ResetAfterFirstChunk => {
                        let first = body.frame().await.unwrap()?.into_data().unwrap();
                        (first, None)
                    }
                    _ if this.read_body => {
                        let collected = body.collect().await?;
                        let trailers = collected.trailers().cloned();
                        (collected.to_bytes(), trailers)
                    }
                    _ => (Bytes::new(), None),
                };
                this.seen.lock().unwrap().push(Seen {
                    headers: parts.headers,
                    body: data,
                    trailers,
                    hosts_before,
                    announced,
                    tenant,
                });
                let status = |code: u16| {
                    let mut response = Response::new(body::empty());
                    *response.status_mut() = StatusCode::from_u16(code).unwrap();
                    response
                };
                match reply {
                    Reply::Status(code) => Ok(status(code)),
                    Reply::WithHeader(code, name, value) => {
                        let mut response = status(code);
                        response
                            .headers_mut()
                            .insert(name, HeaderValue::from_static(value));
                        Ok(response)
                    }
                    Reply::Fail(error) => Err(error().into()),
                    Reply::ResetAfterFirstChunk => {
                        Err(MeshError::UpstreamReset("reset".into()).into())
                    }
                    Reply::Hang => std::future::pending().await,
                }
            })
        }
    }

    fn on(retry_on: &str, attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            retry_on: RetryOn::parse(retry_on).unwrap(),
            ..RetryPolicy::istio_default()
        }
    }

    fn get() -> Request<Body> {
        Request::new(body::empty())
    }

    fn flags(response: &Response<Body>) -> String {
        response
            .extensions()
            .get::<ResponseFlags>()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    fn attempts(upstream: &Upstream) -> Vec<String> {
        upstream
            .seen()
            .iter()
            .map(|s| s.headers[&ATTEMPT_COUNT].to_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn retries_count_attempts_and_share_previous_hosts() {
        let upstream = Upstream::new([Reply::Status(503), Reply::Status(503)]);
        let svc = RetryLayer::with_policy(on("5xx", 2)).layer(upstream.clone());
        let response = svc.oneshot(get()).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(flags(&response), "");
        assert_eq!(attempts(&upstream), ["1", "2", "3"]);
        // One RetryContext for the request: each attempt sees the hosts of those before.
        let hosts: Vec<_> = upstream.seen().iter().map(|s| s.hosts_before).collect();
        assert_eq!(hosts, [Some(0), Some(1), Some(2)]);
        // Each attempt announced in it, with no timeout told (there is none).
        let announced: Vec<_> = upstream.seen().iter().map(|s| s.announced).collect();
        let attempt = |number| {
            Some(crate::retry::Attempt {
                number,
                expected_timeout: None,
            })
        };
        assert_eq!(announced, [attempt(1), attempt(2), attempt(3)]);
        // An extension set upstream of the layer is kept and shared.
        let upstream = Upstream::new([Reply::Status(503)]);
        let svc = RetryLayer::with_policy(on("5xx", 2)).layer(upstream.clone());
        let mut request = get();
        let tried = RetryContext::default();
        request.extensions_mut().insert(tried.clone());
        svc.oneshot(request).await.unwrap();
        assert_eq!(tried.hosts_tried(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn handed_back_extensions_make_every_retry_even_one_after_a_per_try_timeout() {
        let policy = RetryPolicy {
            per_try_timeout: Some(Duration::from_millis(100)),
            ..on("5xx,connect-failure", 3)
        };
        // A 503, a connect failure, an attempt abandoned at its per-try timeout (its
        // extensions handed back as it is dropped), then a 200.
        let upstream = Upstream::new([
            Reply::Status(503),
            Reply::Fail(|| MeshError::ConnectFailure("refused".into())),
            Reply::Hang,
        ])
        .lending_extensions();
        let svc = RetryLayer::with_policy(policy)
            .extensions_handed_back()
            .layer(upstream.clone());
        let mut request = get();
        request.extensions_mut().insert(Tenant("acme"));
        let response = bounded(svc.oneshot(request)).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(attempts(&upstream), ["1", "2", "3", "4"]);
        let seen = upstream.seen();
        let tenants: Vec<_> = seen.iter().map(|s| s.tenant).collect();
        assert_eq!(tenants, [Some("acme"); 4], "every attempt carried them");
        let hosts: Vec<_> = seen.iter().map(|s| s.hosts_before).collect();
        assert_eq!(
            hosts,
            [Some(0), Some(1), Some(2), Some(3)],
            "one context throughout"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn expecting_extensions_back_none_handed_back_means_no_retry() {
        // The upstream keeps them (it lends nothing): the 503 stands.
        let upstream = Upstream::new([Reply::Status(503)]);
        let svc = RetryLayer::with_policy(on("5xx", 2))
            .extensions_handed_back()
            .layer(upstream.clone());
        let response = bounded(svc.oneshot(get())).await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(attempts(&upstream), ["1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn extensions_are_cloned_for_the_retries_unless_they_are_handed_back() {
        /// Counts its clones.
        #[derive(Debug)]
        struct Counted(Arc<std::sync::atomic::AtomicUsize>);
        impl Clone for Counted {
            fn clone(&self) -> Self {
                self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Counted(self.0.clone())
            }
        }
        let clones = |layer: RetryLayer, upstream: Upstream, replies: usize| async move {
            let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let mut request = get();
            request.extensions_mut().insert(Counted(count.clone()));
            let svc = layer.layer(upstream.clone());
            assert_eq!(bounded(svc.oneshot(request)).await.unwrap().status(), 200);
            assert_eq!(upstream.calls(), replies);
            count.load(std::sync::atomic::Ordering::Relaxed)
        };
        let layer = || RetryLayer::with_policy(on("5xx", 2));
        let answered = || Upstream::new([]).lending_extensions();
        let retried = || Upstream::new([Reply::Status(503)]).lending_extensions();
        assert!(clones(layer(), answered(), 1).await > 0, "kept for retries");
        assert!(clones(layer(), retried(), 2).await > 0);
        let handed_back = || layer().extensions_handed_back();
        assert_eq!(clones(handed_back(), answered(), 1).await, 0);
        assert_eq!(
            clones(handed_back(), retried(), 2).await,
            0,
            "moved back, not cloned"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_counts_into_the_cluster_budget_named_below_not_into_the_layers() {
        // Budgets with no floor: a retry needs a request's deposit.
        let budget = || RetryBudget::new(Duration::from_secs(10), 0, 100.0).unwrap();
        let (layer_budget, cluster_budget) = (budget(), budget());
        let naming = {
            let cluster_budget = cluster_budget.clone();
            tower::service_fn(move |request: Request<Body>| {
                // What the proxy does on a request's first attempt.
                let context = request.extensions().get::<RetryContext>().unwrap();
                let named = || ClusterRecord {
                    budget: Some(cluster_budget.clone()),
                    ..ClusterRecord::new(crate::UpstreamCluster("outbound|80||named".into()))
                };
                if context.set_cluster(named) {
                    cluster_budget.deposit();
                }
                async { Ok::<_, std::convert::Infallible>(Response::new(body::empty())) }
            })
        };
        let svc = RetryLayer::with_policy(on("5xx", 2))
            .budget(layer_budget.clone())
            .layer(naming);
        svc.oneshot(get()).await.unwrap();
        assert!(cluster_budget.withdraw(), "the cluster's was paid into");
        assert!(!layer_budget.withdraw(), "the layer's was not");
        // With no cluster named below, the layer's is.
        let svc = RetryLayer::with_policy(on("5xx", 2))
            .budget(layer_budget.clone())
            .layer(Upstream::new([]));
        svc.oneshot(get()).await.unwrap();
        assert!(layer_budget.withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn zero_attempts_or_no_policy_means_one_try() {
        let upstream = Upstream::new([Reply::Status(503)]);
        let svc = RetryLayer::with_policy(on("5xx", 0)).layer(upstream.clone());
        assert_eq!(svc.oneshot(get()).await.unwrap().status(), 503);
        assert_eq!(attempts(&upstream), ["1"]);

        let upstream = Upstream::new([Reply::Status(503)]);
        let svc = RetryLayer::new().layer(upstream.clone());
        let request = Request::builder()
            .header("x-envoy-retriable-status-codes", "503")
            .body(body::empty())
            .unwrap();
        assert_eq!(svc.oneshot(request).await.unwrap().status(), 503);
        assert_eq!(attempts(&upstream), ["1"]);
        let seen = &upstream.seen()[0];
        assert_eq!(seen.hosts_before, None);
        assert!(!seen.headers.contains_key("x-envoy-retriable-status-codes"));
    }

    #[tokio::test(start_paused = true)]
    async fn route_policy_overrides_the_layer() {
        let upstream = Upstream::new([Reply::Status(503), Reply::Status(503)]);
        let svc = RetryLayer::with_policy(on("5xx", 0)).layer(upstream.clone());
        let mut request = get();
        request.extensions_mut().insert(RoutePolicy {
            retry: Some(Arc::new(on("503", 1))),
            ..Default::default()
        });
        let response = svc.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(flags(&response), "URX");
        assert_eq!(upstream.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn exhaustion_marks_urx_on_responses_and_errors() {
        let upstream = Upstream::new(vec![Reply::Status(502); 3]);
        let svc = RetryLayer::with_policy(on("gateway-error", 2)).layer(upstream.clone());
        let response = svc.oneshot(get()).await.unwrap();
        assert_eq!(response.status(), 502);
        assert_eq!(flags(&response), "URX");
        assert_eq!(upstream.calls(), 3);

        let connect = || MeshError::ConnectFailure("refused".into());
        let upstream = Upstream::new(vec![Reply::Fail(connect); 3]);
        let svc = RetryLayer::with_policy(on("connect-failure", 2)).layer(upstream.clone());
        let error = svc.oneshot(get()).await.unwrap_err();
        assert!(matches!(
            MeshError::find(&error),
            Some(MeshError::ConnectFailure(_))
        ));
        // The error is still the failure; its local reply is Envoy's `UF,URX`.
        assert_eq!(flags(&error_to_response(&error)), "UF,URX");
        assert_eq!(upstream.calls(), 3);

        // Not retriable at all: returned as is, without URX.
        let upstream = Upstream::new([Reply::Status(500)]);
        let svc = RetryLayer::with_policy(on("gateway-error", 2)).layer(upstream.clone());
        let response = svc.oneshot(get()).await.unwrap();
        assert_eq!(
            (response.status().as_u16(), flags(&response)),
            (500, "".into())
        );
        assert_eq!(upstream.calls(), 1);
    }

    /// `get()` carrying `headers`.
    fn get_with(headers: &[(&'static str, &'static str)]) -> Request<Body> {
        let mut request = get();
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(*name, HeaderValue::from_static(value));
        }
        request
    }

    #[tokio::test(start_paused = true)]
    async fn the_requests_own_retry_headers_change_the_policy_and_are_not_forwarded() {
        let consumed = [
            "x-envoy-retry-on",
            "x-envoy-retry-grpc-on",
            "x-envoy-max-retries",
        ];
        let forwarded_none = |upstream: &Upstream| {
            upstream
                .seen()
                .iter()
                .all(|seen| consumed.iter().all(|h| !seen.headers.contains_key(*h)))
        };
        // `x-envoy-max-retries: 0` turns the route's retries off.
        let upstream = Upstream::new(vec![Reply::Status(503); 4]);
        let svc = RetryLayer::with_policy(on("5xx", 3)).layer(upstream.clone());
        let request = get_with(&[("x-envoy-max-retries", "0")]);
        assert_eq!(svc.oneshot(request).await.unwrap().status(), 503);
        assert_eq!(upstream.calls(), 1);
        assert!(forwarded_none(&upstream));

        // On a route without retries, `x-envoy-retry-on` enables one.
        let upstream = Upstream::new([Reply::Status(503), Reply::Status(503)]);
        let svc = RetryLayer::new().layer(upstream.clone());
        let request = get_with(&[("x-envoy-retry-on", "gateway-error")]);
        let response = svc.oneshot(request).await.unwrap();
        assert_eq!(
            (response.status().as_u16(), flags(&response)),
            (503, "URX".into())
        );
        assert_eq!(attempts(&upstream), ["1", "2"]);
        assert!(forwarded_none(&upstream));

        // ORed into the route's conditions, with the count raised.
        let unavailable = Reply::WithHeader(200, "grpc-status", "14");
        let upstream = Upstream::new([unavailable.clone(), unavailable.clone(), unavailable]);
        let svc = RetryLayer::with_policy(on("connect-failure", 1)).layer(upstream.clone());
        let request = get_with(&[
            ("x-envoy-retry-grpc-on", "unavailable"),
            ("x-envoy-max-retries", "3"),
        ]);
        assert_eq!(svc.oneshot(request).await.unwrap().status(), 200);
        assert_eq!(attempts(&upstream), ["1", "2", "3", "4"]);
        assert!(forwarded_none(&upstream));
    }

    #[tokio::test(start_paused = true)]
    async fn overflow_is_never_retried() {
        let everything = RETRY_ON_ALL;
        let upstream = Upstream::new([Reply::Fail(|| MeshError::Overflow)]);
        let svc = RetryLayer::with_policy(on(everything, 2)).layer(upstream.clone());
        let error = svc.oneshot(get()).await.unwrap_err();
        assert!(matches!(MeshError::find(&error), Some(MeshError::Overflow)));
        assert_eq!(upstream.calls(), 1);

        // An upstream's overloaded 503 (another proxy's breaker) is retried, as current Envoy
        // does.
        let upstream = Upstream::new([Reply::WithHeader(503, "x-envoy-overloaded", "true")]);
        let svc = RetryLayer::with_policy(on(everything, 2)).layer(upstream.clone());
        assert_eq!(svc.oneshot(get()).await.unwrap().status(), 200);
        assert_eq!(upstream.calls(), 2);
    }

    const RETRY_ON_ALL: &str = "5xx,gateway-error,reset,connect-failure,retriable-4xx,\
        refused-stream,retriable-status-codes,envoy-ratelimited,cancelled,deadline-exceeded,\
        internal,resource-exhausted,unavailable,503";

    /// `future`, failing the test instead of hanging if it never completes.
    async fn bounded<T>(future: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(60), future)
            .await
            .expect("never completed")
    }

    #[tokio::test(start_paused = true)]
    async fn a_context_from_above_is_taken_up_for_every_attempt_and_marked_retriable() {
        let outer = RetryContext::default();
        let upstream = Upstream::new([Reply::Status(503), Reply::Status(200)]);
        let svc = RetryLayer::with_policy(on("5xx", 2)).layer(upstream.clone());
        let mut request = get();
        request.extensions_mut().insert(outer.clone());
        assert_eq!(bounded(svc.oneshot(request)).await.unwrap().status(), 200);
        assert!(
            outer.may_retry(),
            "the proxy counts it into the cluster's budget"
        );
        assert_eq!(outer.hosts_tried(), 2, "both attempts recorded in it");
    }

    #[tokio::test(start_paused = true)]
    async fn a_per_try_timeout_runs_from_the_end_of_a_streaming_body_without_a_route_timeout() {
        // Istio's usual shape: `perTryTimeout` and no route timeout. A 2 s upload (a chunk every
        // 250 ms), an upstream that reads it and then hangs: the attempt times out 500 ms after
        // the body's end.
        let reads_then_hangs = tower::service_fn(|request: Request<Body>| async move {
            request.into_body().collect().await?;
            std::future::pending::<Result<Response<Body>, BoxError>>().await
        });
        let per_try = RetryPolicy {
            per_try_timeout: Some(Duration::from_millis(500)),
            ..on("5xx", 1)
        };
        // Without retries (the per-try timeout from the caller's header): 2.5 s. With one retry
        // (the body replayed whole at once): its own 500 ms after a back-off of 25 ms at most.
        let ms = Duration::from_millis;
        for (layer, earliest, latest) in [
            (RetryLayer::new(), ms(2500), ms(2500)),
            (RetryLayer::with_policy(per_try), ms(3000), ms(3025)),
        ] {
            let (tx, upload) = channel();
            tokio::spawn(async move {
                for _ in 0..8 {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let _ = tx.send(crate::retry::replay::tests::data("chunk"));
                }
            });
            let request = Request::builder()
                .header(crate::timeout::UPSTREAM_RQ_PER_TRY_TIMEOUT_MS, "500")
                .body(upload)
                .unwrap();
            let start = Instant::now();
            let error = layer
                .layer(reads_then_hangs)
                .oneshot(request)
                .await
                .unwrap_err();
            assert!(matches!(MeshError::find(&error), Some(MeshError::Timeout)));
            let elapsed = start.elapsed();
            assert!(earliest <= elapsed && elapsed <= latest, "{elapsed:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn per_try_timeout_is_retried_and_504_when_every_try_times_out() {
        let policy = RetryPolicy {
            per_try_timeout: Some(Duration::from_millis(100)),
            ..on("5xx", 2)
        };
        let upstream = Upstream::new([Reply::Hang]);
        let svc = RetryLayer::with_policy(policy.clone()).layer(upstream.clone());
        let start = Instant::now();
        assert_eq!(bounded(svc.oneshot(get())).await.unwrap().status(), 200);
        assert!(start.elapsed() >= Duration::from_millis(100));
        // Backoff is below 25 ms, but the timer rounds up to whole milliseconds.
        assert!(start.elapsed() <= Duration::from_millis(125));
        assert_eq!(attempts(&upstream), ["1", "2"]);

        let upstream = Upstream::new(vec![Reply::Hang; 3]);
        let svc = RetryLayer::with_policy(policy.clone()).layer(upstream.clone());
        let start = Instant::now();
        let error = bounded(svc.oneshot(get())).await.unwrap_err();
        let reply = error_to_response(&error);
        assert_eq!(
            (reply.status().as_u16(), flags(&reply)),
            (504, "UT,URX".into())
        );
        // Where the last try was waiting, for the access log and the metrics.
        let target = crate::UpstreamError::find(&error).unwrap().target();
        assert_eq!(&*target.cluster.0, "outbound|80||scripted");
        assert_eq!(target.host.as_ref().unwrap().0, "10.0.0.3:80");
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
        assert!(
            elapsed <= Duration::from_millis(300 + 25 + 50),
            "{elapsed:?}"
        );

        // Not retried when the policy does not cover timeouts.
        let narrow = RetryPolicy {
            retry_on: RetryOn::parse("connect-failure").unwrap(),
            ..policy.clone()
        };
        let upstream = Upstream::new([Reply::Hang, Reply::Hang]);
        let script = upstream.script.clone();
        let svc = RetryLayer::with_policy(narrow).layer(upstream);
        let start = Instant::now();
        let error = bounded(svc.oneshot(get())).await.unwrap_err();
        assert_eq!(
            flags(&error_to_response(&error)),
            "UT",
            "not retried: no URX"
        );
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        assert_eq!(script.lock().unwrap().len(), 1, "one attempt");

        // Ignored when not shorter than the route timeout the timeout layer enforces: the
        // upstream is told the route's deadline, and the only attempt ends with the route.
        let long = RetryPolicy {
            per_try_timeout: Some(Duration::from_millis(2000)),
            ..policy
        };
        let upstream = Upstream::new([Reply::Hang]);
        let svc = crate::timeout::TimeoutLayer::new(Some(Duration::from_millis(1000)))
            .layer(RetryLayer::with_policy(long.clone()).layer(upstream.clone()));
        let start = Instant::now();
        bounded(svc.oneshot(get())).await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_millis(1000));
        assert_eq!(expected_timeouts(&upstream), [1000]);

        // A caller's `x-envoy-expected-rq-timeout-ms` is no route timeout: with none set, the
        // per-try timeout applies and replaces it; an override of 0 disables the route timeout.
        for (name, value) in [
            (EXPECTED_RQ_TIMEOUT_MS, "1000"),
            (crate::timeout::UPSTREAM_RQ_TIMEOUT_MS, "0"),
        ] {
            let upstream = Upstream::new([Reply::Hang, Reply::Status(200)]);
            let route = if value == "0" {
                Some(Duration::from_millis(1500))
            } else {
                None
            };
            let svc = crate::timeout::TimeoutLayer::new(route)
                .layer(RetryLayer::with_policy(long.clone()).layer(upstream.clone()));
            let mut request = get();
            request
                .headers_mut()
                .insert(name.clone(), HeaderValue::from_static(value));
            let start = Instant::now();
            let response = bounded(svc.oneshot(request)).await.unwrap();
            assert_eq!(response.status(), 200, "{name}");
            assert!(start.elapsed() >= Duration::from_millis(2000), "{name}");
            assert_eq!(expected_timeouts(&upstream), [2000, 2000], "{name}");
        }
    }

    fn expected_timeouts(upstream: &Upstream) -> Vec<u64> {
        upstream
            .seen()
            .iter()
            .map(|s| {
                s.headers[&EXPECTED_RQ_TIMEOUT_MS]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn upstream_is_told_its_attempt_deadline_shrinking_to_what_is_left() {
        // Overall 1 s (outside, the timeout layer), per-try 400 ms, an upstream that hangs.
        let policy = RetryPolicy {
            per_try_timeout: Some(Duration::from_millis(400)),
            ..on("5xx", 3)
        };
        let upstream = Upstream::new(vec![Reply::Hang; 4]);
        let svc = crate::timeout::TimeoutLayer::new(Some(Duration::from_secs(1)))
            .layer(RetryLayer::with_policy(policy).layer(upstream.clone()));
        // A gRPC request: told in `grpc-timeout` too, over the client's own 10 s.
        let mut request = get();
        let headers = request.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        headers.insert(GRPC_TIMEOUT, HeaderValue::from_static("10S"));
        bounded(svc.oneshot(request)).await.unwrap_err();
        let expected = expected_timeouts(&upstream);
        assert_eq!(expected.len(), 3, "{expected:?}");
        assert_eq!(expected[..2], [400, 400]);
        // The third attempt starts 800–875 ms in (back-offs below 25 and 50 ms): what is left.
        assert!((124..=200).contains(&expected[2]), "{expected:?}");
        // The context announces each attempt with the timeout its header told.
        let announced: Vec<_> = upstream
            .seen()
            .iter()
            .map(|seen| seen.announced.unwrap())
            .map(|a| (a.number, a.expected_timeout.map(|t| t.as_millis() as u64)))
            .collect();
        let told: Vec<_> = (1..).zip(expected.iter().map(|&ms| Some(ms))).collect();
        assert_eq!(announced, told);
        let grpc: Vec<String> = upstream
            .seen()
            .iter()
            .map(|seen| seen.headers[&GRPC_TIMEOUT].to_str().unwrap().to_owned())
            .collect();
        let as_grpc: Vec<String> = expected.iter().map(|ms| format!("{ms}m")).collect();
        assert_eq!(grpc, as_grpc);
    }

    #[tokio::test(start_paused = true)]
    async fn an_untried_per_try_timeout_names_the_upstream_its_attempt_waited_on() {
        use crate::{UpstreamCluster, abandoned::ReportOnDrop, error::UpstreamTarget};
        // No policy: the one attempt, under the caller's per-try timeout; the attempt says
        // where it waits when dropped, as the proxy's forwarder does.
        let waiting = tower::service_fn(|_request: Request<Body>| async {
            let _waiting = ReportOnDrop::new(|| {
                UpstreamTarget::cluster_only(UpstreamCluster("outbound|80||catalog".into()))
            });
            std::future::pending::<Result<Response<Body>, BoxError>>().await
        });
        let mut request = get();
        request.headers_mut().insert(
            UPSTREAM_RQ_PER_TRY_TIMEOUT_MS,
            HeaderValue::from_static("150"),
        );
        let error = bounded(RetryLayer::new().layer(waiting).oneshot(request))
            .await
            .unwrap_err();
        assert!(matches!(MeshError::find(&error), Some(MeshError::Timeout)));
        let target = crate::UpstreamError::find(&error).unwrap().target();
        assert_eq!(&*target.cluster.0, "outbound|80||catalog");
    }

    #[tokio::test(start_paused = true)]
    async fn a_route_timeout_between_attempts_names_the_upstream_the_last_attempt_went_to() {
        /// `upstream`, ready for its first call only: a retry waits for it for ever.
        #[derive(Clone)]
        struct ReadyOnce {
            upstream: Upstream,
            called: bool,
        }
        impl Service<Request<Body>> for ReadyOnce {
            type Response = Response<Body>;
            type Error = BoxError;
            type Future = <Upstream as Service<Request<Body>>>::Future;
            fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
                if self.called {
                    Poll::Pending
                } else {
                    Poll::Ready(Ok(()))
                }
            }
            fn call(&mut self, request: Request<Body>) -> Self::Future {
                self.called = true;
                self.upstream.call(request)
            }
        }
        let route_timeout = |retry: RetryLayer, inner| {
            crate::timeout::TimeoutLayer::new(Some(Duration::from_millis(1)))
                .layer(retry.layer(inner))
        };
        // During the back-off (its first draw is below 100 s: a 1 ms timeout fires within it
        // but once in 100 000 runs), and while waiting for the service to be ready for the
        // retry.
        let backing_off = RetryLayer::with_policy(RetryPolicy {
            backoff_base: Duration::from_secs(100),
            ..on("5xx", 2)
        });
        let upstream = Upstream::new([Reply::Status(503)]);
        let waiting = ReadyOnce {
            upstream: Upstream::new([Reply::Status(503)]),
            called: false,
        };
        let cases = [
            (
                "backing off",
                route_timeout(backing_off, upstream.clone().boxed_clone()),
            ),
            (
                "waiting to be ready",
                route_timeout(RetryLayer::with_policy(on("5xx", 2)), waiting.boxed_clone()),
            ),
        ];
        for (between, svc) in cases {
            let error = bounded(svc.oneshot(get())).await.unwrap_err();
            assert!(
                matches!(MeshError::find(&error), Some(MeshError::Timeout)),
                "{between}"
            );
            let target = crate::UpstreamError::find(&error)
                .unwrap_or_else(|| panic!("{between}: no upstream named"))
                .target();
            assert_eq!(&*target.cluster.0, "outbound|80||scripted", "{between}");
            assert_eq!(target.host.as_ref().unwrap().0, "10.0.0.1:80", "{between}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn per_try_timeout_header_overrides_and_is_consumed() {
        let upstream = Upstream::new([Reply::Hang]);
        let svc = RetryLayer::new().layer(upstream.clone());
        let mut request = get();
        request.headers_mut().insert(
            UPSTREAM_RQ_PER_TRY_TIMEOUT_MS,
            HeaderValue::from_static("150"),
        );
        let start = Instant::now();
        let error = bounded(svc.oneshot(request)).await.unwrap_err();
        assert!(matches!(MeshError::find(&error), Some(MeshError::Timeout)));
        assert_eq!(start.elapsed(), Duration::from_millis(150));
        assert_eq!(expected_timeouts(&upstream), [150]);
        assert!(
            !upstream.seen()[0]
                .headers
                .contains_key(UPSTREAM_RQ_PER_TRY_TIMEOUT_MS)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn status_code_and_grpc_conditions() {
        let upstream = Upstream::new([Reply::Status(503), Reply::Status(502)]);
        let svc = RetryLayer::with_policy(on("503", 2)).layer(upstream.clone());
        assert_eq!(svc.oneshot(get()).await.unwrap().status(), 502);
        assert_eq!(upstream.calls(), 2);

        let upstream = Upstream::new([Reply::WithHeader(200, "grpc-status", "14")]);
        let svc = RetryLayer::with_policy(RetryPolicy::istio_default()).layer(upstream.clone());
        let response = svc.oneshot(get()).await.unwrap();
        assert!(!response.headers().contains_key("grpc-status"));
        assert_eq!(upstream.calls(), 2);

        let upstream = Upstream::new([Reply::WithHeader(200, "grpc-status", "13")]);
        let svc = RetryLayer::with_policy(RetryPolicy::istio_default()).layer(upstream.clone());
        svc.oneshot(get()).await.unwrap();
        assert_eq!(upstream.calls(), 1, "internal is not in the default policy");

        // Istio's default retries codes the request names, and consumes the header.
        let upstream = Upstream::new([Reply::Status(418), Reply::Status(418)]);
        let svc = RetryLayer::with_policy(RetryPolicy::istio_default()).layer(upstream.clone());
        let request = Request::builder()
            .header("x-envoy-retriable-status-codes", "418")
            .body(body::empty())
            .unwrap();
        assert_eq!(svc.oneshot(request).await.unwrap().status(), 200);
        assert_eq!(upstream.calls(), 3);
        assert!(
            upstream
                .seen()
                .iter()
                .all(|s| !s.headers.contains_key("x-envoy-retriable-status-codes"))
        );
    }

    /// A request whose body arrives in chunks, with trailers.
    fn streaming_request(chunks: &[&'static str], trailers: Option<HeaderMap>) -> Request<Body> {
        let (tx, body) = channel();
        for chunk in chunks {
            tx.send(Ok(Frame::data(Bytes::from_static(chunk.as_bytes()))))
                .unwrap();
        }
        if let Some(trailers) = trailers {
            tx.send(Ok(Frame::trailers(trailers))).unwrap();
        }
        Request::new(body)
    }

    #[tokio::test(start_paused = true)]
    async fn body_is_replayed_identically() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", HeaderValue::from_static("abc"));
        let chunks = ["first,", "second,", "third"];
        let upstream = Upstream::new([Reply::ResetAfterFirstChunk, Reply::Status(503)]);
        let svc = RetryLayer::with_policy(on("5xx", 2)).layer(upstream.clone());
        let response = svc
            .oneshot(streaming_request(&chunks, Some(trailers.clone())))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let seen = upstream.seen();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].body, "first,");
        for retry in &seen[1..] {
            assert_eq!(retry.body, "first,second,third");
            assert_eq!(retry.trailers.as_ref(), Some(&trailers));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn body_over_the_limit_is_not_retried() {
        let upstream = Upstream::new([Reply::Status(503)]);
        let svc = RetryLayer::with_policy(on("5xx", 2))
            .buffer_limit(8)
            .layer(upstream.clone());
        let response = svc
            .oneshot(streaming_request(&["12345", "67890"], None))
            .await
            .unwrap();
        assert_eq!(
            (response.status().as_u16(), flags(&response)),
            (503, "".into())
        );
        assert_eq!(upstream.calls(), 1);
        assert_eq!(upstream.seen()[0].body, "1234567890", "streamed whole");

        // Within the limit, the same request is retried.
        let upstream = Upstream::new([Reply::Status(503)]);
        let svc = RetryLayer::with_policy(on("5xx", 2))
            .buffer_limit(10)
            .layer(upstream.clone());
        let response = svc
            .oneshot(streaming_request(&["12345", "67890"], None))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(upstream.seen()[1].body, "1234567890");
    }

    #[tokio::test(start_paused = true)]
    async fn crossing_the_limit_during_backoff_is_507() {
        // The upstream fails without reading the body; the layer reads it during the back-off.
        let upstream = Upstream::new([Reply::Status(503)]).without_reading_bodies();
        let svc = RetryLayer::with_policy(on("5xx", 2))
            .buffer_limit(8)
            .layer(upstream.clone());
        let response = svc
            .oneshot(streaming_request(&["12345", "67890"], None))
            .await
            .unwrap();
        assert_eq!(response.status(), 507);
        let text = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            text,
            "exceeded request buffer limit while retrying upstream"
        );
        assert_eq!(upstream.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn cluster_max_retries_holds_retries_back() {
        use crate::circuit_breaker::{CircuitBreaker, ConnectionPoolLimits};
        let limited = |max_retries| {
            let limit = RetryContext::default();
            let breaker = CircuitBreaker::new(ConnectionPoolLimits {
                max_retries,
                ..Default::default()
            });
            limit.set_cluster(|| ClusterRecord {
                breaker: Some(std::sync::Arc::new(breaker)),
                ..ClusterRecord::new(crate::UpstreamCluster("outbound|80||limited".into()))
            });
            let mut request = get();
            request.extensions_mut().insert(limit);
            request
        };
        let upstream = Upstream::new([Reply::Status(503)]);
        let svc = RetryLayer::with_policy(on("5xx", 2)).layer(upstream.clone());
        let refused = svc.oneshot(limited(0)).await.unwrap();
        // A retry refused by the limit marks the request overflowed, as Envoy does.
        assert_eq!(
            (refused.status().as_u16(), flags(&refused)),
            (503, "UO".into())
        );
        assert_eq!(upstream.calls(), 1, "no retry over max_retries");

        let upstream = Upstream::new([Reply::Status(503)]);
        let svc = RetryLayer::with_policy(on("5xx", 2)).layer(upstream.clone());
        assert_eq!(svc.oneshot(limited(1)).await.unwrap().status(), 200);
        assert_eq!(upstream.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn budget_caps_retries() {
        let upstream = Upstream::new(vec![Reply::Status(503); 10_000]);
        let policy = RetryPolicy {
            backoff_base: Duration::from_micros(1),
            ..on("5xx", 2)
        };
        let svc = RetryLayer::with_policy(policy).layer(upstream.clone());
        let start = tokio::time::Instant::now();
        let mut overflowed = 0;
        for _ in 0..1000 {
            let response = svc.clone().oneshot(get()).await.unwrap();
            overflowed += usize::from(flags(&response) == "UO");
        }
        let retries = upstream.calls() - 1000;
        // Each request the budget refused a retry is marked overflowed.
        assert!(overflowed >= 1000 - retries, "{overflowed} marked UO");
        // 20 % of 1000 requests, plus the floor of 10/s over the time that passed (and the
        // second's worth the budget starts with).
        let floor = 10.0 * (start.elapsed().as_secs_f64() + 1.0);
        assert!(retries >= 200, "the budget is used: {retries}");
        assert!(
            retries as f64 <= 200.0 + floor + 1.0,
            "{retries} retries, floor {floor:.1}"
        );
    }
}
