//! Circuit breaking: a DestinationRule's `connectionPool` limits, enforced per cluster as
//! Envoy's circuit breakers are.
//!
//! One [`CircuitBreaker`] exists per cluster and is shared (through an `Arc`) by everything that
//! sends requests to it. With `max_requests` requests outstanding (active or pending), a new
//! one fails at once. Otherwise it is admitted while fewer than `max_connections` requests are
//! active (an HTTP/1.1 request occupies its connection for its whole life), or waits in the
//! cluster's pending queue — first come, first served — if that queue holds fewer than
//! `max_pending_requests`; otherwise it fails at once with [`MeshError::Overflow`], which
//! the [local reply](crate::local_reply) turns into 503 with flag `UO` and
//! `x-envoy-overloaded: true`. Retries are limited separately by `max_retries` (concurrent
//! retries across the cluster), or by a retry budget that scales with the outstanding
//! requests ([`RetryConcurrencyBudget`]); a retry over the limit is simply not made.
//!
//! [`CircuitBreakerLayer`] applies a breaker to any tower service; the proxy may also call
//! [`CircuitBreaker::acquire`] itself around its connection pool. Both are lock-free on the fast
//! path: atomics plus a FIFO [`tokio::sync::Semaphore`] for the queue.
//!
//! One simplification against Envoy, invisible with Istio's defaults: `max_connections` counts
//! active requests rather than sockets.

use crate::{BoxError, MeshError, policy::Fraction};
use http::Request;
use pin_project::pin_project;
use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    task::{Context, Poll, ready},
};
use tokio::sync::Semaphore;
use tower::{Layer, Service};

/// The limits of one cluster: Istio's `connectionPool` as Envoy's circuit-breaker thresholds.
///
/// | Istio field | field here | Envoy threshold |
/// |---|---|---|
/// | `tcp.maxConnections` | [`max_connections`](Self::max_connections) | `max_connections` |
/// | `http.http1MaxPendingRequests` | [`max_pending_requests`](Self::max_pending_requests) | `max_pending_requests` |
/// | `http.http2MaxRequests` | [`max_requests`](Self::max_requests) | `max_requests` |
/// | `http.maxRetries` | [`max_retries`](Self::max_retries) | `max_retries` |
/// | `http.maxRequestsPerConnection` | [`max_requests_per_connection`](Self::max_requests_per_connection) | `max_requests_per_connection` |
/// | `retryBudget` (beside `connectionPool`) | [`retry_budget`](Self::retry_budget) | `retry_budget` |
///
/// [`Default`] is what Istio installs on every cluster: 2^32−1 for the four limits and no
/// per-connection limit. Istio overrides a default only with a value > 0, so `maxRetries: 0`
/// does not disable retries; whoever maps the config should keep that rule. A limit set to 0
/// here is taken literally (e.g. `max_pending_requests: 0` means no queue).
///
/// ```
/// use mesh_core::circuit_breaker::ConnectionPoolLimits;
/// let limits = ConnectionPoolLimits { max_connections: 100, ..Default::default() };
/// assert_eq!(limits.max_requests, u32::MAX);
/// assert_eq!(ConnectionPoolLimits::ENVOY.max_retries, 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionPoolLimits {
    /// Connections to all hosts of the cluster (`tcp.maxConnections`).
    pub max_connections: u32,
    /// Requests queued while waiting for a connection (`http.http1MaxPendingRequests`).
    pub max_pending_requests: u32,
    /// Concurrent requests (`http.http2MaxRequests`).
    pub max_requests: u32,
    /// Concurrent retries across the cluster (`http.maxRetries`).
    pub max_retries: u32,
    /// Requests per upstream connection, 0 for unlimited (`http.maxRequestsPerConnection`).
    /// Enforced by the connection pool, not by [`CircuitBreaker`].
    pub max_requests_per_connection: u32,
    /// Concurrent retries as a share of the outstanding requests (`retryBudget`); when set, it
    /// replaces `max_retries`, as in Envoy.
    pub retry_budget: Option<RetryConcurrencyBudget>,
}

/// Envoy's retry budget (Istio's `trafficPolicy.retryBudget`): the retries in flight in a
/// cluster are limited to a share of its outstanding requests (active and pending), and never
/// below a floor, so that retries grow with the traffic they serve instead of being one fixed
/// number.
///
/// ```
/// use mesh_core::{circuit_breaker::RetryConcurrencyBudget, policy::Fraction};
/// let budget = RetryConcurrencyBudget::default();
/// assert_eq!((budget.share, budget.min_retry_concurrency), (Fraction::from_percent(20.0), 3));
/// assert_eq!(budget.limit(100), 20, "20 % of 100 outstanding requests");
/// assert_eq!(budget.limit(4), 3, "never below the floor");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryConcurrencyBudget {
    /// The share of outstanding requests that may be retries (`percent`; Envoy's 20 % default).
    pub share: Fraction,
    /// Retries allowed whatever the traffic (`minRetryConcurrency`; default 3).
    pub min_retry_concurrency: u32,
}

impl RetryConcurrencyBudget {
    /// How many retries may be in flight while `outstanding` requests are (rounded down, as
    /// Envoy does, and at least the floor).
    ///
    /// ```
    /// use mesh_core::circuit_breaker::RetryConcurrencyBudget;
    /// let budget = RetryConcurrencyBudget::default(); // 20 %, at least 3
    /// assert_eq!(budget.limit(100), 20);
    /// assert_eq!(budget.limit(19), 3, "3.8 rounds down, below the floor");
    /// ```
    pub fn limit(self, outstanding: usize) -> usize {
        let outstanding = u64::try_from(outstanding).unwrap_or(u64::MAX);
        let share = outstanding.saturating_mul(u64::from(self.share.per_million())) / 1_000_000;
        let share = usize::try_from(share).unwrap_or(usize::MAX);
        share.max(self.min_retry_concurrency as usize)
    }
}

impl Default for RetryConcurrencyBudget {
    fn default() -> Self {
        RetryConcurrencyBudget {
            share: Fraction::from_percent(20.0),
            min_retry_concurrency: 3,
        }
    }
}

impl ConnectionPoolLimits {
    /// Istio's limits (the [`Default`]): 2^32−1 for the four limits, unlimited per connection.
    ///
    /// ```
    /// use mesh_core::circuit_breaker::ConnectionPoolLimits;
    /// assert_eq!(ConnectionPoolLimits::ISTIO, ConnectionPoolLimits::default());
    /// assert_eq!(ConnectionPoolLimits::ISTIO.max_pending_requests, u32::MAX);
    /// assert_eq!(ConnectionPoolLimits::ISTIO.max_requests_per_connection, 0);
    /// ```
    pub const ISTIO: ConnectionPoolLimits = ConnectionPoolLimits {
        max_connections: u32::MAX,
        max_pending_requests: u32::MAX,
        max_requests: u32::MAX,
        max_retries: u32::MAX,
        max_requests_per_connection: 0,
        retry_budget: None,
    };

    /// Envoy's own defaults, for parity with a plain Envoy: 1024, 1024, 1024 and 3 retries.
    ///
    /// ```
    /// use mesh_core::circuit_breaker::ConnectionPoolLimits;
    /// let envoy = ConnectionPoolLimits::ENVOY;
    /// assert_eq!((envoy.max_connections, envoy.max_pending_requests, envoy.max_requests), (1024, 1024, 1024));
    /// assert_eq!(envoy.max_retries, 3);
    /// ```
    pub const ENVOY: ConnectionPoolLimits = ConnectionPoolLimits {
        max_connections: 1024,
        max_pending_requests: 1024,
        max_requests: 1024,
        max_retries: 3,
        max_requests_per_connection: 0,
        retry_budget: None,
    };

    /// How many requests may be active at once: `min(max_requests, max_connections)`.
    ///
    /// ```
    /// use mesh_core::circuit_breaker::ConnectionPoolLimits;
    /// let limits = ConnectionPoolLimits { max_connections: 10, max_requests: 50, ..Default::default() };
    /// assert_eq!(limits.max_active(), 10);
    /// let limits = ConnectionPoolLimits { max_connections: 100, max_requests: 50, ..Default::default() };
    /// assert_eq!(limits.max_active(), 50);
    /// ```
    pub fn max_active(&self) -> u32 {
        self.max_requests.min(self.max_connections)
    }
}

impl Default for ConnectionPoolLimits {
    fn default() -> Self {
        ConnectionPoolLimits::ISTIO
    }
}

/// The circuit breaker of one cluster; see the [module docs](self).
///
/// ```
/// use mesh_core::{MeshError, circuit_breaker::{CircuitBreaker, ConnectionPoolLimits}};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let breaker = CircuitBreaker::new(ConnectionPoolLimits {
///     max_connections: 1,
///     max_pending_requests: 0,
///     ..Default::default()
/// });
/// let permit = breaker.acquire().await.unwrap();
/// assert_eq!(breaker.active(), 1);
/// assert!(matches!(breaker.acquire().await, Err(MeshError::Overflow)));
/// assert_eq!(breaker.overflows(), 1);
/// drop(permit);
/// assert!(breaker.acquire().await.is_ok());
/// # });
/// ```
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

struct Shared {
    limits: ConnectionPoolLimits,
    /// One permit per request that may be active; waiters are served in FIFO order. `None`
    /// when the limits are Istio's unlimited 2^32−1: no request can ever wait, and admitting
    /// one is a counter increment.
    semaphore: Option<Semaphore>,
    active: AtomicUsize,
    pending: AtomicUsize,
    /// Requests admitted or queued, reserved in one atomic step so that `max_requests` holds
    /// when requests arrive at the same instant on several threads (counted only when
    /// `max_requests` is set).
    outstanding: AtomicUsize,
    retries: AtomicUsize,
    overflows: AtomicU64,
    retry_overflows: AtomicU64,
}

impl Shared {
    /// Whether `max_requests` is set, so that admissions reserve a place in `outstanding`.
    fn counts_outstanding(&self) -> bool {
        self.limits.max_requests != u32::MAX
    }

    /// Gives back a place reserved in `outstanding`.
    fn release_outstanding(&self) {
        if self.counts_outstanding() {
            self.outstanding.fetch_sub(1, Relaxed);
        }
    }
}

/// What [`CircuitBreaker::admit`] decided, synchronously.
enum Admission {
    Now(RequestPermit),
    Queued(Queued),
    Overflow,
}

impl CircuitBreaker {
    /// A breaker enforcing `limits`.
    ///
    /// ```
    /// use mesh_core::circuit_breaker::{CircuitBreaker, ConnectionPoolLimits};
    /// let breaker = CircuitBreaker::new(ConnectionPoolLimits::ENVOY);
    /// assert_eq!(breaker.limits().max_retries, 3);
    /// assert_eq!((breaker.active(), breaker.pending(), breaker.overflows()), (0, 0, 0));
    /// ```
    pub fn new(limits: ConnectionPoolLimits) -> Self {
        let permits = usize::try_from(limits.max_active())
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        let semaphore = (limits.max_active() < u32::MAX).then(|| Semaphore::new(permits));
        CircuitBreaker {
            shared: Arc::new(Shared {
                limits,
                semaphore,
                active: AtomicUsize::new(0),
                pending: AtomicUsize::new(0),
                outstanding: AtomicUsize::new(0),
                retries: AtomicUsize::new(0),
                overflows: AtomicU64::new(0),
                retry_overflows: AtomicU64::new(0),
            }),
        }
    }

    /// The limits this breaker enforces.
    ///
    /// ```
    /// use mesh_core::circuit_breaker::{CircuitBreaker, ConnectionPoolLimits};
    /// let limits = ConnectionPoolLimits { max_connections: 5, ..Default::default() };
    /// let breaker = CircuitBreaker::new(limits);
    /// assert_eq!(breaker.limits(), &limits);
    /// assert_eq!(CircuitBreaker::default().limits(), &ConnectionPoolLimits::ISTIO);
    /// ```
    pub fn limits(&self) -> &ConnectionPoolLimits {
        &self.shared.limits
    }

    /// Admits one request: [`MeshError::Overflow`] at once when `max_requests` are outstanding;
    /// else at once if a connection is free (under `max_connections`), after waiting in the
    /// pending queue (FIFO) if there is room in it, else overflow without waiting.
    ///
    /// The request counts as active until the returned permit is dropped. Dropping this future
    /// while it waits leaves the queue.
    ///
    /// A request over `max_connections` waits in the queue until a permit is dropped:
    ///
    /// ```
    /// use mesh_core::circuit_breaker::{CircuitBreaker, ConnectionPoolLimits};
    /// use std::sync::Arc;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let limits = ConnectionPoolLimits { max_connections: 1, max_pending_requests: 1, ..Default::default() };
    /// let breaker = Arc::new(CircuitBreaker::new(limits));
    /// let first = breaker.acquire().await.unwrap();
    /// let b = breaker.clone();
    /// let waiter = tokio::spawn(async move { b.acquire().await.map(drop) });
    /// tokio::task::yield_now().await;
    /// assert_eq!((breaker.active(), breaker.pending()), (1, 1));
    /// drop(first);
    /// waiter.await.unwrap().unwrap();
    /// assert_eq!((breaker.active(), breaker.pending(), breaker.overflows()), (0, 0, 0));
    /// # }
    /// ```
    pub async fn acquire(&self) -> Result<RequestPermit, MeshError> {
        match self.admit() {
            Admission::Now(permit) => Ok(permit),
            Admission::Queued(queued) => queued.wait().await,
            Admission::Overflow => Err(MeshError::Overflow),
        }
    }

    /// Admits now, or reserves a place in the queue, or counts an overflow.
    fn admit(&self) -> Admission {
        let shared = &self.shared;
        // Envoy: over `max_requests` a request overflows at once; only a full connection pool
        // (`max_connections`) makes it wait among the pending requests.
        if shared.counts_outstanding() {
            let max_requests = shared.limits.max_requests as usize;
            let reserved = shared
                .outstanding
                .fetch_update(Relaxed, Relaxed, |n| (n < max_requests).then_some(n + 1))
                .is_ok();
            if !reserved {
                shared.overflows.fetch_add(1, Relaxed);
                return Admission::Overflow;
            }
        }
        let Some(semaphore) = &shared.semaphore else {
            return Admission::Now(RequestPermit::new(self.shared.clone()));
        };
        if let Ok(permit) = semaphore.try_acquire() {
            permit.forget();
            return Admission::Now(RequestPermit::new(self.shared.clone()));
        }
        let max_pending = usize::try_from(shared.limits.max_pending_requests).unwrap_or(usize::MAX);
        let reserved = shared
            .pending
            .fetch_update(Relaxed, Relaxed, |n| (n < max_pending).then_some(n + 1))
            .is_ok();
        if reserved {
            Admission::Queued(Queued {
                shared: self.shared.clone(),
                admitted: false,
            })
        } else {
            shared.release_outstanding();
            shared.overflows.fetch_add(1, Relaxed);
            Admission::Overflow
        }
    }

    /// Reserves one retry if fewer than `max_retries` retries are in flight (or, with a
    /// [`retry_budget`](ConnectionPoolLimits::retry_budget), fewer than it allows for the
    /// requests outstanding now); otherwise counts a retry overflow and returns `None` (the
    /// retry is not made). Hold the permit for the duration of the retry attempt.
    ///
    /// ```
    /// use mesh_core::circuit_breaker::{CircuitBreaker, ConnectionPoolLimits};
    /// let breaker = CircuitBreaker::new(ConnectionPoolLimits { max_retries: 1, ..Default::default() });
    /// let retry = breaker.try_acquire_retry().unwrap();
    /// assert!(breaker.try_acquire_retry().is_none(), "one retry in flight already");
    /// assert_eq!(breaker.retry_overflows(), 1);
    /// drop(retry);
    /// assert!(breaker.try_acquire_retry().is_some());
    /// ```
    pub fn try_acquire_retry(&self) -> Option<RetryPermit> {
        let max = match self.shared.limits.retry_budget {
            Some(budget) => budget.limit(self.active() + self.pending()),
            None => usize::try_from(self.shared.limits.max_retries).unwrap_or(usize::MAX),
        };
        match self
            .shared
            .retries
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
        {
            Ok(_) => Some(RetryPermit {
                shared: self.shared.clone(),
            }),
            Err(_) => {
                self.shared.retry_overflows.fetch_add(1, Relaxed);
                None
            }
        }
    }

    /// Requests admitted and not yet finished.
    ///
    /// ```
    /// use mesh_core::circuit_breaker::CircuitBreaker;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let breaker = CircuitBreaker::default();
    /// let a = breaker.acquire().await.unwrap();
    /// let b = breaker.acquire().await.unwrap();
    /// assert_eq!(breaker.active(), 2);
    /// drop((a, b));
    /// assert_eq!(breaker.active(), 0);
    /// # }
    /// ```
    pub fn active(&self) -> usize {
        self.shared.active.load(Relaxed)
    }

    /// Requests waiting in the pending queue.
    ///
    /// ```
    /// use mesh_core::circuit_breaker::{CircuitBreaker, ConnectionPoolLimits};
    /// use std::sync::Arc;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let breaker = Arc::new(CircuitBreaker::new(ConnectionPoolLimits { max_connections: 1, ..Default::default() }));
    /// let held = breaker.acquire().await.unwrap();
    /// let b = breaker.clone();
    /// let queued = tokio::spawn(async move { b.acquire().await.is_ok() });
    /// tokio::task::yield_now().await;
    /// assert_eq!(breaker.pending(), 1);
    /// drop(held);
    /// assert!(queued.await.unwrap());
    /// assert_eq!(breaker.pending(), 0);
    /// # }
    /// ```
    pub fn pending(&self) -> usize {
        self.shared.pending.load(Relaxed)
    }

    /// Retries in flight.
    ///
    /// ```
    /// use mesh_core::circuit_breaker::CircuitBreaker;
    /// let breaker = CircuitBreaker::default();
    /// let permit = breaker.try_acquire_retry();
    /// assert_eq!(breaker.active_retries(), 1);
    /// drop(permit);
    /// assert_eq!(breaker.active_retries(), 0);
    /// ```
    pub fn active_retries(&self) -> usize {
        self.shared.retries.load(Relaxed)
    }

    /// Requests rejected with [`MeshError::Overflow`] so far (Envoy's
    /// `upstream_rq_pending_overflow`).
    ///
    /// `max_requests` outstanding: a new request overflows at once, without queueing.
    ///
    /// ```
    /// use mesh_core::{MeshError, circuit_breaker::{CircuitBreaker, ConnectionPoolLimits}};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let breaker = CircuitBreaker::new(ConnectionPoolLimits { max_requests: 1, ..Default::default() });
    /// let _held = breaker.acquire().await.unwrap();
    /// assert!(matches!(breaker.acquire().await, Err(MeshError::Overflow)));
    /// assert!(matches!(breaker.acquire().await, Err(MeshError::Overflow)));
    /// assert_eq!((breaker.overflows(), breaker.pending()), (2, 0));
    /// # }
    /// ```
    pub fn overflows(&self) -> u64 {
        self.shared.overflows.load(Relaxed)
    }

    /// Retries refused by `max_retries` so far (Envoy's `upstream_rq_retry_overflow`).
    ///
    /// ```
    /// use mesh_core::circuit_breaker::{CircuitBreaker, ConnectionPoolLimits};
    /// let breaker = CircuitBreaker::new(ConnectionPoolLimits { max_retries: 0, ..Default::default() });
    /// assert!(breaker.try_acquire_retry().is_none());
    /// assert_eq!(breaker.retry_overflows(), 1);
    /// assert_eq!(breaker.overflows(), 0, "retry overflows are counted apart");
    /// ```
    pub fn retry_overflows(&self) -> u64 {
        self.shared.retry_overflows.load(Relaxed)
    }
}

impl Default for CircuitBreaker {
    /// A breaker with Istio's (effectively unlimited) limits.
    fn default() -> Self {
        CircuitBreaker::new(ConnectionPoolLimits::default())
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("limits", &self.shared.limits)
            .field("active", &self.active())
            .field("pending", &self.pending())
            .field("active_retries", &self.active_retries())
            .field("overflows", &self.overflows())
            .field("retry_overflows", &self.retry_overflows())
            .finish()
    }
}

/// A place in the pending queue; leaving it (by admission or cancellation) frees the place.
struct Queued {
    shared: Arc<Shared>,
    /// Whether it became a [`RequestPermit`], which then holds its place in `outstanding`.
    admitted: bool,
}

impl Queued {
    async fn wait(mut self) -> Result<RequestPermit, MeshError> {
        if let Some(semaphore) = &self.shared.semaphore {
            match semaphore.acquire().await {
                Ok(permit) => permit.forget(),
                // The semaphore is never closed.
                Err(_) => return Err(MeshError::Overflow),
            }
        }
        self.admitted = true;
        Ok(RequestPermit::new(self.shared.clone()))
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.shared.pending.fetch_sub(1, Relaxed);
        if !self.admitted {
            self.shared.release_outstanding();
        }
    }
}

/// An admitted request; dropping it frees its place for the next one.
///
/// ```
/// use mesh_core::{MeshError, circuit_breaker::{CircuitBreaker, ConnectionPoolLimits}};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let breaker = CircuitBreaker::new(ConnectionPoolLimits { max_requests: 1, ..Default::default() });
/// let permit = breaker.acquire().await.unwrap();
/// assert!(matches!(breaker.acquire().await, Err(MeshError::Overflow)));
/// drop(permit);
/// assert!(breaker.acquire().await.is_ok());
/// # }
/// ```
pub struct RequestPermit {
    shared: Arc<Shared>,
}

impl RequestPermit {
    fn new(shared: Arc<Shared>) -> Self {
        shared.active.fetch_add(1, Relaxed);
        RequestPermit { shared }
    }
}

impl Drop for RequestPermit {
    fn drop(&mut self) {
        self.shared.active.fetch_sub(1, Relaxed);
        self.shared.release_outstanding();
        if let Some(semaphore) = &self.shared.semaphore {
            semaphore.add_permits(1);
        }
    }
}

impl fmt::Debug for RequestPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestPermit")
    }
}

/// A retry in flight; dropping it frees its place under `max_retries`.
///
/// ```
/// use mesh_core::circuit_breaker::{CircuitBreaker, ConnectionPoolLimits};
/// let breaker = CircuitBreaker::new(ConnectionPoolLimits { max_retries: 2, ..Default::default() });
/// let permits: Vec<_> = (0..3).filter_map(|_| breaker.try_acquire_retry()).collect();
/// assert_eq!(permits.len(), 2);
/// drop(permits);
/// assert_eq!(breaker.active_retries(), 0);
/// ```
pub struct RetryPermit {
    shared: Arc<Shared>,
}

impl Drop for RetryPermit {
    fn drop(&mut self) {
        self.shared.retries.fetch_sub(1, Relaxed);
    }
}

impl fmt::Debug for RetryPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RetryPermit")
    }
}

/// Applies a [`CircuitBreaker`] to a service; see the [module docs](self).
///
/// Each call takes a permit, holding it until the response future completes (or is dropped).
/// A call that must queue waits inside its response future, so a route timeout placed above
/// covers the time spent pending. On overflow the response future fails at once with
/// [`MeshError::Overflow`] and the inner service is not called. The inner service must be
/// `Clone` so a queued request can take the ready service with it.
///
/// ```
/// use mesh_core::{MeshError, circuit_breaker::{CircuitBreaker, CircuitBreakerLayer, ConnectionPoolLimits}};
/// use std::{sync::Arc, time::Duration};
/// use tower::{Layer, ServiceExt, service_fn};
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let breaker = Arc::new(CircuitBreaker::new(ConnectionPoolLimits {
///     max_requests: 1,
///     max_pending_requests: 0,
///     ..Default::default()
/// }));
/// let slow = service_fn(|_req: http::Request<()>| async {
///     tokio::time::sleep(Duration::from_secs(1)).await;
///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
/// });
/// let svc = CircuitBreakerLayer::new(breaker.clone()).layer(slow);
/// let first = svc.clone().oneshot(http::Request::new(()));
/// let second = svc.oneshot(http::Request::new(()));
/// let (first, second) = tokio::join!(first, second);
/// assert!(first.is_ok());
/// let error = second.unwrap_err();
/// assert!(matches!(MeshError::find(&error), Some(MeshError::Overflow)));
/// assert_eq!((breaker.active(), breaker.overflows()), (0, 1));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer {
    breaker: Arc<CircuitBreaker>,
}

impl CircuitBreakerLayer {
    /// Enforces `breaker` on every request of the wrapped service.
    ///
    /// One breaker shared by two services counts their requests together:
    ///
    /// ```
    /// use mesh_core::circuit_breaker::{CircuitBreaker, CircuitBreakerLayer};
    /// use std::sync::Arc;
    /// use tokio::sync::Barrier;
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let breaker = Arc::new(CircuitBreaker::default());
    /// let layer = CircuitBreakerLayer::new(breaker.clone());
    /// // Each handler waits at the barrier twice: once in flight, once to be released.
    /// let barrier = Arc::new(Barrier::new(3));
    /// let handler = |barrier: Arc<Barrier>| {
    ///     service_fn(move |_req: http::Request<()>| {
    ///         let barrier = barrier.clone();
    ///         async move {
    ///             barrier.wait().await;
    ///             barrier.wait().await;
    ///             Ok::<_, std::convert::Infallible>(())
    ///         }
    ///     })
    /// };
    /// let orders = layer.layer(handler(barrier.clone()));
    /// let payments = layer.layer(handler(barrier.clone()));
    /// let (orders, payments, ()) = tokio::join!(
    ///     orders.oneshot(http::Request::new(())),
    ///     payments.oneshot(http::Request::new(())),
    ///     async {
    ///         barrier.wait().await;
    ///         assert_eq!(breaker.active(), 2, "both services' requests are counted");
    ///         barrier.wait().await;
    ///     },
    /// );
    /// assert!(orders.is_ok() && payments.is_ok());
    /// assert_eq!(breaker.active(), 0, "the permits are released with the responses");
    /// # }
    /// ```
    pub fn new(breaker: Arc<CircuitBreaker>) -> Self {
        CircuitBreakerLayer { breaker }
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreakerService<S>;

    fn layer(&self, inner: S) -> CircuitBreakerService<S> {
        CircuitBreakerService {
            inner,
            breaker: self.breaker.clone(),
        }
    }
}

/// The service [`CircuitBreakerLayer`] produces.
///
/// ```
/// use mesh_core::circuit_breaker::{CircuitBreaker, CircuitBreakerLayer, CircuitBreakerService};
/// use std::sync::Arc;
/// use tower::{Layer, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let ok = service_fn(|_req: http::Request<()>| async { Ok::<_, std::convert::Infallible>("ok") });
/// let svc: CircuitBreakerService<_> = CircuitBreakerLayer::new(Arc::new(CircuitBreaker::default())).layer(ok);
/// assert_eq!(svc.oneshot(http::Request::new(())).await.unwrap(), "ok");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct CircuitBreakerService<S> {
    inner: S,
    breaker: Arc<CircuitBreaker>,
}

impl<S> CircuitBreakerService<S> {
    /// The breaker this service enforces.
    ///
    /// ```
    /// use mesh_core::circuit_breaker::{CircuitBreaker, CircuitBreakerLayer};
    /// use std::sync::Arc;
    /// use tower::{Layer, service_fn};
    /// let breaker = Arc::new(CircuitBreaker::default());
    /// let ok = service_fn(|_req: http::Request<()>| async { Ok::<_, std::convert::Infallible>(()) });
    /// let svc = CircuitBreakerLayer::new(breaker.clone()).layer(ok);
    /// assert!(Arc::ptr_eq(svc.breaker(), &breaker));
    /// ```
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }
}

impl<S, B> Service<Request<B>> for CircuitBreakerService<S>
where
    S: Service<Request<B>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = CircuitBreakerFuture<S, Request<B>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let state = match self.breaker.admit() {
            Admission::Now(permit) => State::Running {
                future: self.inner.call(request),
                permit: Some(permit),
            },
            Admission::Queued(queued) => {
                // The ready service goes with the request; `self` keeps a fresh clone.
                let clone = self.inner.clone();
                let service = std::mem::replace(&mut self.inner, clone);
                State::Queued {
                    wait: Box::pin(queued.wait()),
                    waiting: Some(Box::new((service, request))),
                }
            }
            Admission::Overflow => State::Overflow,
        };
        CircuitBreakerFuture { state }
    }
}

type WaitFuture = Pin<Box<dyn Future<Output = Result<RequestPermit, MeshError>> + Send>>;

/// Future of [`CircuitBreakerService`].
///
/// On overflow the future fails without calling the inner service:
///
/// ```
/// use mesh_core::{MeshError, circuit_breaker::{CircuitBreaker, CircuitBreakerLayer, ConnectionPoolLimits}};
/// use std::sync::Arc;
/// use tower::{Layer, Service, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let breaker = Arc::new(CircuitBreaker::new(ConnectionPoolLimits { max_requests: 0, ..Default::default() }));
/// let inner = service_fn(|_req: http::Request<()>| async { Ok::<_, std::convert::Infallible>(()) });
/// let mut svc = CircuitBreakerLayer::new(breaker.clone()).layer(inner);
/// let future = svc.ready().await.unwrap().call(http::Request::new(()));
/// let error = future.await.unwrap_err();
/// assert!(matches!(MeshError::find(&error), Some(MeshError::Overflow)));
/// assert_eq!(breaker.overflows(), 1);
/// # }
/// ```
#[pin_project]
pub struct CircuitBreakerFuture<S, Req>
where
    S: Service<Req>,
{
    #[pin]
    state: State<S, Req>,
}

#[pin_project(project = StateProj)]
enum State<S, Req>
where
    S: Service<Req>,
{
    /// Waiting in the pending queue.
    /// Waiting for a place; the service and request are boxed so that this rare state does not
    /// make every request's future larger.
    Queued {
        wait: WaitFuture,
        waiting: Option<Box<(S, Req)>>,
    },
    /// Admitted: the inner call runs while the permit is held.
    Running {
        #[pin]
        future: S::Future,
        permit: Option<RequestPermit>,
    },
    /// Rejected; fails on first poll.
    Overflow,
    /// Finished.
    Done,
}

impl<S, Req> Future for CircuitBreakerFuture<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Queued { wait, waiting } => {
                    let admitted = ready!(wait.as_mut().poll(cx));
                    let (Ok(permit), Some(waiting)) = (admitted, waiting.take()) else {
                        state.set(State::Done);
                        return Poll::Ready(Err(MeshError::Overflow.into()));
                    };
                    let (mut service, request) = *waiting;
                    let future = service.call(request);
                    state.set(State::Running {
                        future,
                        permit: Some(permit),
                    });
                }
                StateProj::Running { future, permit } => {
                    let output = ready!(future.poll(cx));
                    // Free the place as soon as the response is here.
                    drop(permit.take());
                    return Poll::Ready(output.map_err(Into::into));
                }
                StateProj::Overflow => {
                    state.set(State::Done);
                    return Poll::Ready(Err(MeshError::Overflow.into()));
                }
                StateProj::Done => {
                    return Poll::Ready(Err(
                        "circuit breaker future polled after completion".into()
                    ));
                }
            }
        }
    }
}

impl<S, Req> fmt::Debug for CircuitBreakerFuture<S, Req>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Queued { .. } => "Queued",
            State::Running { .. } => "Running",
            State::Overflow => "Overflow",
            State::Done => "Done",
        };
        f.debug_struct("CircuitBreakerFuture")
            .field("state", &state)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{convert::Infallible, time::Duration};
    use tokio::{task::JoinSet, time::Instant};
    use tower::{ServiceExt, service_fn};

    #[tokio::test]
    async fn unlimited_limits_admit_by_counting_and_still_cap_max_requests() {
        let unlimited = CircuitBreaker::default();
        assert!(unlimited.shared.semaphore.is_none());
        let permits: Vec<_> = (0..1000).map(|_| unlimited.admit()).collect();
        assert!(permits.iter().all(|a| matches!(a, Admission::Now(_))));
        assert_eq!(unlimited.active(), 1000);
        drop(permits);
        assert_eq!(unlimited.active(), 0);
        // Only `max_requests` bounded: no queue either, and overflow past it.
        let capped = CircuitBreaker::new(ConnectionPoolLimits {
            max_requests: 2,
            max_connections: u32::MAX,
            ..Default::default()
        });
        assert!(capped.shared.semaphore.is_some(), "max_active is bounded");
        let held = [
            capped.acquire().await.unwrap(),
            capped.acquire().await.unwrap(),
        ];
        assert!(matches!(capped.acquire().await, Err(MeshError::Overflow)));
        drop(held);
        assert!(capped.acquire().await.is_ok());
    }

    /// Limits with `max_connections` connections and a pending queue of `max_pending_requests`.
    fn limits(max_connections: u32, max_pending_requests: u32) -> ConnectionPoolLimits {
        ConnectionPoolLimits {
            max_connections,
            max_pending_requests,
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn max_requests_overflows_at_once_even_with_room_to_queue() {
        let breaker = Arc::new(CircuitBreaker::new(ConnectionPoolLimits {
            max_requests: 1,
            max_pending_requests: 100,
            ..Default::default()
        }));
        let done = burst(&breaker).await;
        assert_eq!(done.iter().filter(|d| d.1).count(), 1);
        let failed: Vec<_> = done.iter().filter(|d| !d.1).collect();
        assert_eq!(failed.len(), 19);
        assert!(failed.iter().all(|d| d.2 == Duration::ZERO));
    }

    /// A service that answers after one second.
    fn slow()
    -> impl Service<Request<usize>, Response = usize, Error = Infallible, Future: Send> + Clone
    {
        service_fn(|req: Request<usize>| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, Infallible>(*req.body())
        })
    }

    /// Sends 20 concurrent requests; returns (request id, ok, finish time) in completion order.
    async fn burst(breaker: &Arc<CircuitBreaker>) -> Vec<(usize, bool, Duration)> {
        let start = Instant::now();
        let svc = CircuitBreakerLayer::new(breaker.clone()).layer(slow());
        let mut set = JoinSet::new();
        for id in 0..20 {
            let svc = svc.clone();
            set.spawn(async move {
                let result = svc.oneshot(Request::new(id)).await;
                if let Err(error) = &result {
                    assert!(matches!(MeshError::find(error), Some(MeshError::Overflow)));
                }
                (id, result.is_ok(), start.elapsed())
            });
        }
        let mut done = Vec::new();
        while let Some(result) = set.join_next().await {
            done.push(result.unwrap());
        }
        done
    }

    #[tokio::test(start_paused = true)]
    async fn one_proceeds_and_the_rest_overflow_at_once() {
        let breaker = Arc::new(CircuitBreaker::new(limits(1, 0)));
        let done = burst(&breaker).await;
        let ok: Vec<_> = done.iter().filter(|d| d.1).collect();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].2, Duration::from_secs(1));
        let failed: Vec<_> = done.iter().filter(|d| !d.1).collect();
        assert_eq!(failed.len(), 19);
        assert!(failed.iter().all(|d| d.2 == Duration::ZERO));
        assert_eq!(breaker.overflows(), 19);
        assert_eq!((breaker.active(), breaker.pending()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn max_connections_also_limits_active_requests() {
        let breaker = Arc::new(CircuitBreaker::new(ConnectionPoolLimits {
            max_connections: 1,
            max_pending_requests: 0,
            ..Default::default()
        }));
        let done = burst(&breaker).await;
        assert_eq!(done.iter().filter(|d| d.1).count(), 1);
        assert_eq!(breaker.overflows(), 19);
    }

    #[tokio::test(start_paused = true)]
    async fn pending_requests_queue_and_proceed_in_order() {
        let breaker = Arc::new(CircuitBreaker::new(limits(1, 2)));
        let done = burst(&breaker).await;
        let ok: Vec<_> = done.iter().filter(|d| d.1).map(|d| (d.0, d.2)).collect();
        assert_eq!(ok.len(), 3);
        // One at a time, in arrival order.
        assert_eq!(
            ok.iter().map(|d| d.1).collect::<Vec<_>>(),
            [1, 2, 3].map(Duration::from_secs)
        );
        assert!(ok.windows(2).all(|w| w[0].0 < w[1].0));
        let failed: Vec<_> = done.iter().filter(|d| !d.1).collect();
        assert_eq!(failed.len(), 17);
        assert!(failed.iter().all(|d| d.2 == Duration::ZERO));
        assert_eq!(breaker.overflows(), 17);
        assert_eq!((breaker.active(), breaker.pending()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn queue_is_fifo_and_counts_are_live() {
        let breaker = Arc::new(CircuitBreaker::new(limits(1, 2)));
        let first = breaker.acquire().await.unwrap();
        let (b1, b2) = (breaker.clone(), breaker.clone());
        let second = tokio::spawn(async move { b1.acquire().await });
        tokio::task::yield_now().await;
        let third = tokio::spawn(async move { b2.acquire().await });
        tokio::task::yield_now().await;
        assert_eq!((breaker.active(), breaker.pending()), (1, 2));
        assert!(matches!(breaker.acquire().await, Err(MeshError::Overflow)));
        assert_eq!(breaker.overflows(), 1);

        drop(first);
        let second = second.await.unwrap().unwrap();
        tokio::task::yield_now().await;
        assert!(!third.is_finished());
        assert_eq!((breaker.active(), breaker.pending()), (1, 1));
        drop(second);
        let third = third.await.unwrap().unwrap();
        assert_eq!((breaker.active(), breaker.pending()), (1, 0));
        drop(third);
        assert_eq!(breaker.active(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_futures_release_their_places() {
        let breaker = Arc::new(CircuitBreaker::new(limits(1, 1)));
        let svc = CircuitBreakerLayer::new(breaker.clone()).layer(slow());

        // A running call dropped half-way frees its permit.
        let running = tokio::time::timeout(
            Duration::from_millis(500),
            svc.clone().oneshot(Request::new(0)),
        );
        assert!(running.await.is_err());
        assert_eq!(breaker.active(), 0);

        // A queued acquire dropped while waiting leaves the queue.
        let held = breaker.acquire().await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(500), breaker.acquire());
        assert!(waiting.await.is_err());
        assert_eq!((breaker.active(), breaker.pending()), (1, 0));

        // A queued layer call dropped while waiting too, and the next request is not starved.
        let queued = tokio::time::timeout(
            Duration::from_millis(500),
            svc.clone().oneshot(Request::new(1)),
        );
        assert!(queued.await.is_err());
        assert_eq!(breaker.pending(), 0);
        drop(held);
        assert_eq!(svc.oneshot(Request::new(2)).await.unwrap(), 2);
        assert_eq!((breaker.active(), breaker.pending()), (0, 0));
        assert_eq!(breaker.overflows(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn permit_is_held_until_the_response_future_completes() {
        let breaker = Arc::new(CircuitBreaker::new(limits(1, 0)));
        let svc = CircuitBreakerLayer::new(breaker.clone()).layer(slow());
        let call = tokio::spawn(svc.clone().oneshot(Request::new(7)));
        tokio::time::sleep(Duration::from_millis(999)).await;
        assert_eq!(breaker.active(), 1);
        assert_eq!(call.await.unwrap().unwrap(), 7);
        assert_eq!(breaker.active(), 0);
        assert_eq!(svc.oneshot(Request::new(8)).await.unwrap(), 8);
    }

    #[test]
    fn retry_limit_is_enforced_and_released() {
        let breaker = CircuitBreaker::new(ConnectionPoolLimits {
            max_retries: 2,
            ..Default::default()
        });
        let a = breaker.try_acquire_retry().unwrap();
        let b = breaker.try_acquire_retry().unwrap();
        assert_eq!(breaker.active_retries(), 2);
        assert!(breaker.try_acquire_retry().is_none());
        assert!(breaker.try_acquire_retry().is_none());
        assert_eq!(breaker.retry_overflows(), 2);
        drop(a);
        let c = breaker.try_acquire_retry().unwrap();
        drop((b, c));
        assert_eq!(breaker.active_retries(), 0);
        assert_eq!(breaker.retry_overflows(), 2);
        assert_eq!(breaker.overflows(), 0);
    }

    #[test]
    fn defaults_are_istio_and_unlimited() {
        let limits = ConnectionPoolLimits::default();
        assert_eq!(limits, ConnectionPoolLimits::ISTIO);
        assert_eq!(limits.max_active(), 4_294_967_295);
        assert_eq!(limits.max_requests_per_connection, 0);
        let breaker = CircuitBreaker::default();
        let permits: Vec<_> = (0..1000)
            .map(|_| breaker.try_acquire_retry().unwrap())
            .collect();
        assert_eq!(breaker.active_retries(), permits.len());
    }

    #[tokio::test]
    async fn zero_limit_with_no_queue_always_overflows() {
        let breaker = CircuitBreaker::new(limits(0, 0));
        assert!(matches!(breaker.acquire().await, Err(MeshError::Overflow)));
        assert!(format!("{breaker:?}").contains("overflows: 1"));
    }

    #[tokio::test]
    async fn a_retry_budget_scales_retries_with_the_outstanding_requests() {
        let budget = RetryConcurrencyBudget {
            share: Fraction::from_percent(25.0),
            min_retry_concurrency: 1,
        };
        // `max_retries: 0` would refuse every retry: the budget replaces it.
        let breaker = CircuitBreaker::new(ConnectionPoolLimits {
            max_retries: 0,
            retry_budget: Some(budget),
            ..Default::default()
        });
        let first = breaker.try_acquire_retry().expect("the floor");
        assert!(breaker.try_acquire_retry().is_none(), "floor reached");
        // Twelve requests outstanding: a quarter, 3, may be retries.
        let mut held = Vec::new();
        for _ in 0..12 {
            held.push(breaker.acquire().await.unwrap());
        }
        let more: Vec<_> = (0..2).map_while(|_| breaker.try_acquire_retry()).collect();
        assert_eq!(more.len(), 2);
        assert!(breaker.try_acquire_retry().is_none());
        assert_eq!(
            (breaker.active_retries(), breaker.retry_overflows()),
            (3, 2)
        );
        // As the traffic goes, so does the room for retries.
        held.clear();
        drop(first);
        assert!(
            breaker.try_acquire_retry().is_none(),
            "2 in flight, floor 1"
        );
    }

    #[test]
    fn max_requests_holds_when_requests_arrive_at_the_same_instant() {
        // One request at a time and room to queue: any request admitted or queued beside the
        // first one would have slipped past `max_requests`.
        let limits = ConnectionPoolLimits {
            max_requests: 1,
            max_connections: 1,
            ..Default::default()
        };
        for _ in 0..3_000 {
            let breaker = CircuitBreaker::new(limits);
            let start = std::sync::Barrier::new(4);
            let admitted: Vec<Admission> = std::thread::scope(|scope| {
                let threads: Vec<_> = (0..4)
                    .map(|_| {
                        scope.spawn(|| {
                            start.wait();
                            breaker.admit()
                        })
                    })
                    .collect();
                threads.into_iter().map(|t| t.join().unwrap()).collect()
            });
            let kinds = admitted.iter().fold((0, 0), |(now, queued), a| match a {
                Admission::Now(_) => (now + 1, queued),
                Admission::Queued(_) => (now, queued + 1),
                Admission::Overflow => (now, queued),
            });
            assert_eq!(
                kinds,
                (1, 0),
                "one admitted, none queued, the rest overflowed"
            );
            drop(admitted);
            assert_eq!((breaker.active(), breaker.pending()), (0, 0));
        }
    }
}
