//! [`RetryContext`]: what the retry layer shares, across a request's attempts, with the layers
//! below it.
//!
//! The retry layer inserts one before the first attempt of a request it may retry (or takes up
//! one a layer above provided), and marks it so ([`RetryContext::may_retry`]). Every attempt
//! carries the same one (clones share it). Below, the load balancer reads and records
//! the hosts tried (Envoy's `previous_hosts` retry predicate), and the proxy, which picks the
//! cluster, records the cluster's [`CircuitBreaker`] so that the retry layer can hold retries
//! to its `max_retries` (Istio `http.maxRetries`), and the cluster's [`RetryBudget`], so that
//! retries are budgeted per cluster, as Envoy budgets them: one failing service cannot spend
//! the retries of the others. The proxy records the cluster too, and the load balancer each
//! endpoint's workload with its host, so that when the attempts run out at their per-try
//! timeout the retry layer can say where the last one was waiting
//! ([`RetryContext::last_target`]): Envoy logs a `UT` with its upstream cluster and host.
//! The retry layer announces each attempt in it too ([`RetryContext::begin_attempt`]): its
//! number and the timeout its upstream is told, which the proxy counts in its cluster's
//! stats without parsing back the headers the retry layer wrote.
//!
//! The service that sends the attempts may also lend the retry layer each attempt's extensions
//! back ([`LentExtensions`](super::LentExtensions)), so that the layer need not keep a clone of
//! them for the retries most requests never make; a layer built to rely on that
//! ([`RetryLayer::extensions_handed_back`](super::RetryLayer::extensions_handed_back)) says so
//! here ([`RetryContext::expect_extensions_back`]).
//!
//! One extension with one allocation, rather than one per concern: every extension a retry
//! carries costs an allocation.

use super::RetryBudget;
use crate::timeout::expected_millis;
use crate::{
    UpstreamCluster, UpstreamHost, circuit_breaker::CircuitBreaker, error::UpstreamTarget,
};
use http::{Extensions, uri::Authority};
use std::{
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

/// The state shared by a request's attempts; see the [module docs](self).
///
/// ```
/// use mesh_core::{UpstreamCluster, circuit_breaker::CircuitBreaker, retry::{ClusterRecord, RetryContext}};
/// use std::sync::Arc;
/// let context = RetryContext::default();
/// let host: http::uri::Authority = "10.0.0.1:80".parse().unwrap();
/// context.clone().record_host(&host); // the load balancer, on the first attempt
/// assert!(context.tried(&host));
/// // The proxy, naming the cluster and its circuit breaker.
/// context.clone().set_cluster(|| ClusterRecord {
///     breaker: Some(Arc::new(CircuitBreaker::default())),
///     ..ClusterRecord::new(UpstreamCluster("outbound|80||catalog".into()))
/// });
/// assert!(context.breaker().is_some());
/// ```
#[derive(Clone, Debug, Default)]
pub struct RetryContext(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    /// The hosts tried, in order, with their workloads when known.
    hosts: Mutex<TriedHosts>,
    /// Whether `hosts` has any (read without the lock).
    any_tried: AtomicBool,
    /// What the proxy recorded of the request's cluster (one cell: each costs a lock to set).
    cluster: OnceLock<ClusterRecord>,
    /// Set by the retry layer: the request may be retried.
    may_retry: AtomicBool,
    /// The attempt under way, numbered from 1 (0: the retry layer has not said).
    attempt: AtomicU32,
    /// The whole milliseconds of the timeout the attempt's upstream was told in
    /// `x-envoy-expected-rq-timeout-ms` by the retry layer (0: it wrote none).
    expected_timeout_ms: AtomicU64,
    /// Set by the retry layer: it keeps no clone of the extensions, and makes a retry from those
    /// the attempt before hands back.
    extensions_back: AtomicBool,
    /// The extensions the latest attempt handed back, until a retry takes them.
    handed_back: Mutex<Option<Extensions>>,
}

impl Drop for Shared {
    /// The extensions the last attempt handed back, cleared for the thread's next request.
    fn drop(&mut self) {
        let handed_back = self.handed_back.get_mut().ok().and_then(Option::take);
        if let Some(extensions) = handed_back {
            crate::spare_extensions::give_back(extensions);
        }
    }
}

/// What the retry layer tells the layers below of the attempt under way: what it also writes
/// in `x-envoy-attempt-count` and `x-envoy-expected-rq-timeout-ms`, read here without parsing
/// the headers back.
///
/// ```
/// use mesh_core::retry::{Attempt, RetryContext};
/// use std::time::Duration;
/// let context = RetryContext::default();
/// assert_eq!(context.attempt(), None, "no attempt announced");
/// context.begin_attempt(2, Some(Duration::from_millis(250)));
/// assert_eq!(context.attempt(), Some(Attempt { number: 2, expected_timeout: Some(Duration::from_millis(250)) }));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The attempt's number, from 1 (`x-envoy-attempt-count`).
    pub number: u32,
    /// The timeout written in `x-envoy-expected-rq-timeout-ms` for this attempt by the retry
    /// layer (its per-try timeout, or on a retry what is left of the route's), in whole
    /// milliseconds as written; `None` when it wrote none and the route's stands.
    pub expected_timeout: Option<Duration>,
}

/// What the proxy records of the cluster a request is sent to, on its first attempt
/// ([`RetryContext::set_cluster`]).
///
/// ```
/// use mesh_core::{UpstreamCluster, retry::ClusterRecord};
/// let record = ClusterRecord::new(UpstreamCluster("outbound|80||catalog".into()));
/// assert!(record.budget.is_none() && record.breaker.is_none());
/// ```
#[derive(Clone, Debug)]
pub struct ClusterRecord {
    /// The cluster, which the retry layer names when the attempts run out at their per-try
    /// timeout ([`RetryContext::last_target`]).
    pub cluster: UpstreamCluster,
    /// The cluster's retry budget, for a request that may be retried: the proxy counted the
    /// request into it, and its retries draw from it.
    pub budget: Option<RetryBudget>,
    /// The cluster's circuit breaker, whose `max_retries` holds the retries back.
    pub breaker: Option<Arc<CircuitBreaker>>,
}

impl ClusterRecord {
    /// `cluster`, with neither a retry budget nor a circuit breaker.
    ///
    /// ```
    /// use mesh_core::{UpstreamCluster, retry::ClusterRecord};
    /// let record = ClusterRecord::new(UpstreamCluster("PassthroughCluster".into()));
    /// assert!(record.budget.is_none() && record.breaker.is_none());
    /// ```
    pub fn new(cluster: UpstreamCluster) -> Self {
        ClusterRecord {
            cluster,
            budget: None,
            breaker: None,
        }
    }
}

impl RetryContext {
    /// Marks the request as one that may be retried (the retry layer, which has a policy for
    /// it): the proxy counts it into its cluster's retry budget.
    ///
    /// ```
    /// use mesh_core::retry::RetryContext;
    /// let context = RetryContext::default();
    /// assert!(!context.may_retry(), "one a layer above made, say");
    /// context.clone().allow_retries();
    /// assert!(context.may_retry());
    /// ```
    pub fn allow_retries(&self) {
        self.0.may_retry.store(true, Ordering::Relaxed);
    }

    /// Whether the retry layer may retry the request ([`allow_retries`](Self::allow_retries)).
    ///
    /// ```
    /// let context = mesh_core::retry::RetryContext::default();
    /// assert!(!context.may_retry(), "until the retry layer allows it");
    /// ```
    pub fn may_retry(&self) -> bool {
        self.0.may_retry.load(Ordering::Relaxed)
    }

    /// Announces attempt `number` (the retry layer, before it sends each one), with the timeout
    /// it wrote in `x-envoy-expected-rq-timeout-ms` for it, if any (kept in whole milliseconds,
    /// at least 1, as the header says it).
    ///
    /// ```
    /// use mesh_core::retry::RetryContext;
    /// use std::time::Duration;
    /// let context = RetryContext::default();
    /// context.clone().begin_attempt(1, None);
    /// let first = context.attempt().unwrap();
    /// assert_eq!((first.number, first.expected_timeout), (1, None));
    /// context.begin_attempt(2, Some(Duration::from_micros(1_500)));
    /// assert_eq!(context.attempt().unwrap().expected_timeout, Some(Duration::from_millis(1)));
    /// ```
    pub fn begin_attempt(&self, number: u32, expected_timeout: Option<Duration>) {
        let ms = expected_timeout.map_or(0, expected_millis);
        self.0.expected_timeout_ms.store(ms, Ordering::Relaxed);
        self.0.attempt.store(number, Ordering::Relaxed);
    }

    /// The attempt under way, once the retry layer has announced one
    /// ([`begin_attempt`](Self::begin_attempt)).
    ///
    /// ```
    /// use mesh_core::retry::RetryContext;
    /// let context = RetryContext::default();
    /// assert!(context.attempt().is_none(), "none announced");
    /// context.begin_attempt(3, None);
    /// assert_eq!(context.attempt().map(|a| a.number), Some(3));
    /// ```
    pub fn attempt(&self) -> Option<Attempt> {
        let number = self.0.attempt.load(Ordering::Relaxed);
        let ms = self.0.expected_timeout_ms.load(Ordering::Relaxed);
        (number > 0).then(|| Attempt {
            number,
            expected_timeout: (ms > 0).then(|| Duration::from_millis(ms)),
        })
    }

    /// Asks the service below to hand each attempt's extensions back (the retry layer, which
    /// then keeps no clone of its own): see [`LentExtensions`](super::LentExtensions).
    ///
    /// ```
    /// let context = mesh_core::retry::RetryContext::default();
    /// context.expect_extensions_back();
    /// assert!(context.expects_extensions_back());
    /// ```
    pub fn expect_extensions_back(&self) {
        self.0.extensions_back.store(true, Ordering::Relaxed);
    }

    /// Whether the retry layer asked for the extensions back
    /// ([`expect_extensions_back`](Self::expect_extensions_back)).
    ///
    /// ```
    /// let context = mesh_core::retry::RetryContext::default();
    /// assert!(!context.expects_extensions_back(), "not unless asked");
    /// ```
    pub fn expects_extensions_back(&self) -> bool {
        self.0.extensions_back.load(Ordering::Relaxed)
    }

    /// Keeps `extensions`, an attempt's, for the retry layer to make its next attempt from
    /// (replacing any an earlier attempt handed back). They must not hold this context: it
    /// would hold itself.
    pub(crate) fn keep_handed_back(&self, extensions: Extensions) {
        if let Ok(mut slot) = self.0.handed_back.lock() {
            *slot = Some(extensions);
        }
    }

    /// The extensions the latest attempt handed back, taken (the retry layer, for a retry).
    ///
    /// ```
    /// use mesh_core::retry::{LentExtensions, RetryContext};
    /// let context = RetryContext::default();
    /// context.expect_extensions_back();
    /// let mut attempt = http::Request::new(());
    /// attempt.extensions_mut().insert(context.clone());
    /// attempt.extensions_mut().insert(7u32);
    /// drop(LentExtensions::take(&mut attempt)); // the service that sent it, done
    /// let back = context.take_handed_back().unwrap();
    /// assert_eq!(back.get::<u32>(), Some(&7));
    /// assert!(back.get::<RetryContext>().is_none(), "the context itself is not kept in it");
    /// assert!(context.take_handed_back().is_none(), "taken");
    /// ```
    pub fn take_handed_back(&self) -> Option<Extensions> {
        self.0.handed_back.lock().ok()?.take()
    }

    /// Whether this context is still alive, asked after its clones are gone.
    #[cfg(test)]
    pub(crate) fn liveness_probe(&self) -> impl Fn() -> bool + use<> {
        let weak = Arc::downgrade(&self.0);
        move || weak.upgrade().is_some()
    }

    /// Records that `host` was tried (of the cluster recorded, if any).
    ///
    /// ```
    /// use mesh_core::retry::RetryContext;
    /// let context = RetryContext::default();
    /// let attempt = context.clone();
    /// attempt.record_host(&"10.0.0.1:80".parse().unwrap());
    /// assert_eq!(context.hosts_tried(), 1, "clones share what they record");
    /// ```
    pub fn record_host(&self, host: &Authority) {
        let cluster = self.0.cluster.get().map(|record| record.cluster.clone());
        let cluster = cluster.unwrap_or_else(|| UpstreamCluster(Arc::from("")));
        let host = Some(UpstreamHost(host.clone()));
        self.record_target(&UpstreamTarget::new(cluster, host, None));
    }

    /// Records that `target`'s endpoint was tried (the proxy, which made the target of each
    /// endpoint once: recording it copies one reference).
    ///
    /// ```
    /// use mesh_core::{UpstreamCluster, UpstreamHost, UpstreamWorkload, error::UpstreamTarget, retry::{ClusterRecord, RetryContext}, workload::Workload};
    /// use std::sync::Arc;
    /// let context = RetryContext::default();
    /// let cluster = UpstreamCluster("outbound|80||catalog".into());
    /// context.set_cluster(|| ClusterRecord::new(cluster.clone()));
    /// let host = Some(UpstreamHost("10.0.0.1:80".parse().unwrap()));
    /// let workload = Some(UpstreamWorkload(Arc::new(Workload::default())));
    /// context.record_target(&UpstreamTarget::new(cluster, host, workload));
    /// let target = context.last_target().unwrap();
    /// assert_eq!(target.host.as_ref().unwrap().0, "10.0.0.1:80");
    /// assert!(target.workload.is_some());
    /// ```
    pub fn record_target(&self, target: &UpstreamTarget) {
        if let Ok(mut hosts) = self.0.hosts.lock() {
            hosts.push(target.clone());
        }
        self.0.any_tried.store(true, Ordering::Relaxed);
    }

    /// Whether `host` was tried already.
    ///
    /// ```
    /// use mesh_core::retry::RetryContext;
    /// let context = RetryContext::default();
    /// let a: http::uri::Authority = "10.0.0.1:80".parse().unwrap();
    /// let b: http::uri::Authority = "10.0.0.2:80".parse().unwrap();
    /// context.record_host(&a);
    /// assert!(context.tried(&a));
    /// assert!(!context.tried(&b));
    /// ```
    pub fn tried(&self, host: &Authority) -> bool {
        self.0.any_tried.load(Ordering::Relaxed)
            && self
                .0
                .hosts
                .lock()
                .map(|hosts| hosts.iter().any(|tried| tried_host(tried) == Some(host)))
                .unwrap_or(false)
    }

    /// How many hosts were tried.
    ///
    /// ```
    /// use mesh_core::retry::RetryContext;
    /// let context = RetryContext::default();
    /// assert_eq!(context.hosts_tried(), 0);
    /// let host = "10.0.0.1:80".parse().unwrap();
    /// context.record_host(&host);
    /// context.record_host(&host);
    /// assert_eq!(context.hosts_tried(), 2, "every attempt counts");
    /// ```
    pub fn hosts_tried(&self) -> usize {
        // Nearly every request asks before its first attempt: no lock then.
        if !self.0.any_tried.load(Ordering::Relaxed) {
            return 0;
        }
        self.0.hosts.lock().map(|hosts| hosts.len()).unwrap_or(0)
    }

    /// Records the request's cluster, as `record` makes it, on the first call only (the first
    /// attempt's; later ones keep it, and do not call `record`): `true` that first time, when
    /// the proxy counts the request into the cluster's retry budget.
    ///
    /// ```
    /// use mesh_core::{UpstreamCluster, retry::{ClusterRecord, RetryBudget, RetryContext}};
    /// let context = RetryContext::default();
    /// assert!(context.last_target().is_none(), "no cluster yet");
    /// let record = || ClusterRecord {
    ///     budget: Some(RetryBudget::default()),
    ///     ..ClusterRecord::new(UpstreamCluster("outbound|80|v1|catalog".into()))
    /// };
    /// assert!(context.set_cluster(record), "the first attempt");
    /// assert!(!context.set_cluster(|| unreachable!("a retry's")));
    /// let target = context.last_target().unwrap();
    /// assert_eq!(&*target.cluster.0, "outbound|80|v1|catalog");
    /// assert!(target.host.is_none(), "no endpoint tried yet");
    /// assert!(context.budget().is_some());
    /// ```
    pub fn set_cluster(&self, record: impl FnOnce() -> ClusterRecord) -> bool {
        self.0.cluster.get().is_none() && self.0.cluster.set(record()).is_ok()
    }

    /// The cluster's circuit breaker, once the proxy has recorded it.
    ///
    /// ```
    /// use mesh_core::{UpstreamCluster, circuit_breaker::{CircuitBreaker, ConnectionPoolLimits}, retry::{ClusterRecord, RetryContext}};
    /// use std::sync::Arc;
    /// let context = RetryContext::default();
    /// assert!(context.breaker().is_none());
    /// context.set_cluster(|| ClusterRecord {
    ///     breaker: Some(Arc::new(CircuitBreaker::new(ConnectionPoolLimits::ENVOY))),
    ///     ..ClusterRecord::new(UpstreamCluster("outbound|80||catalog".into()))
    /// });
    /// assert_eq!(context.breaker().unwrap().limits().max_retries, 3);
    /// ```
    pub fn breaker(&self) -> Option<&Arc<CircuitBreaker>> {
        self.0.cluster.get()?.breaker.as_ref()
    }

    /// The retry budget of the request's cluster, once the proxy has recorded it.
    ///
    /// ```
    /// use mesh_core::retry::RetryContext;
    /// assert!(RetryContext::default().budget().is_none());
    /// ```
    pub fn budget(&self) -> Option<&RetryBudget> {
        self.0.cluster.get()?.budget.as_ref()
    }

    /// Where the latest attempt went: the cluster, and the endpoint tried last, if any; `None`
    /// before the proxy has recorded the cluster.
    ///
    /// ```
    /// use mesh_core::{UpstreamCluster, retry::{ClusterRecord, RetryContext}};
    /// let context = RetryContext::default();
    /// context.set_cluster(|| ClusterRecord::new(UpstreamCluster("outbound|80||catalog".into())));
    /// context.record_host(&"10.0.0.1:80".parse().unwrap());
    /// context.record_host(&"10.0.0.2:80".parse().unwrap());
    /// assert_eq!(context.last_target().unwrap().host.as_ref().unwrap().0, "10.0.0.2:80");
    /// ```
    pub fn last_target(&self) -> Option<UpstreamTarget> {
        let cluster = &self.0.cluster.get()?.cluster;
        let last = self.0.hosts.lock().ok()?.last().cloned();
        Some(match last {
            Some(tried) if tried.cluster == *cluster => tried,
            // Recorded before the cluster was.
            Some(tried) => {
                UpstreamTarget::new(cluster.clone(), tried.host.clone(), tried.workload.clone())
            }
            None => UpstreamTarget::cluster_only(cluster.clone()),
        })
    }
}

/// Where a request was sent, an endpoint having been picked.
type Tried = UpstreamTarget;

/// The host of an endpoint tried.
fn tried_host(tried: &Tried) -> Option<&Authority> {
    tried.host.as_ref().map(|host| &host.0)
}

/// The hosts a request was sent to, in order. The first is kept in place: nearly every request
/// is sent once, and a `Vec` would allocate for it (per request, with retries on, as Istio's
/// default policy has them).
#[derive(Debug, Default)]
struct TriedHosts {
    first: Option<Tried>,
    retries: Vec<Tried>,
}

impl TriedHosts {
    fn push(&mut self, tried: Tried) {
        match self.first {
            None => self.first = Some(tried),
            Some(_) => self.retries.push(tried),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Tried> {
        self.first.iter().chain(&self.retries)
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.retries.len()
    }

    fn last(&self) -> Option<&Tried> {
        self.retries.last().or(self.first.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_host_tried_is_kept_without_allocating_and_the_order_holds() {
        let tried = |last: u8| -> Tried {
            let host: Authority = format!("10.0.0.{last}:80").parse().unwrap();
            UpstreamTarget::new(UpstreamCluster("c".into()), Some(UpstreamHost(host)), None)
        };
        let host = |tried: Option<&Tried>| tried.and_then(tried_host).cloned();
        let mut hosts = TriedHosts::default();
        hosts.push(tried(1));
        assert_eq!(hosts.retries.capacity(), 0, "one attempt, no allocation");
        assert_eq!(
            (hosts.len(), host(hosts.last())),
            (1, host(Some(&tried(1))))
        );
        hosts.push(tried(2));
        hosts.push(tried(3));
        let order: Vec<_> = hosts.iter().map(|t| host(Some(t))).collect();
        let expected: Vec<_> = (1..=3).map(|n| host(Some(&tried(n)))).collect();
        assert_eq!(order, expected);
        assert_eq!(
            (hosts.len(), host(hosts.last())),
            (3, host(Some(&tried(3))))
        );
    }

    #[test]
    fn a_host_recorded_before_its_cluster_is_reported_with_it() {
        let context = RetryContext::default();
        context.record_host(&"10.0.0.1:80".parse().unwrap());
        assert!(context.last_target().is_none(), "no cluster yet");
        context.set_cluster(|| ClusterRecord::new(UpstreamCluster("PassthroughCluster".into())));
        let target = context.last_target().unwrap();
        assert_eq!(&*target.cluster.0, "PassthroughCluster");
        assert_eq!(target.host.as_ref().unwrap().0, "10.0.0.1:80");
    }
}
