//! [`Endpoint`]: one upstream address with its labels, protocol, load and counters.
//!
//! Endpoints come from ServiceEntry `endpoints` (or, for `resolution: DNS` without endpoints,
//! from the hosts themselves). One `Endpoint` is shared by every cluster that selects it, so its
//! in-flight count — which the least-request balancer reads — counts all traffic it serves.

use http::uri::Authority;
use mesh_core::{per_thread::PerThreadCounts, workload::Workload};
use std::{
    collections::BTreeMap,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
};
use tokio::time::Instant;

/// The application protocol spoken to an endpoint.
///
/// ```
/// use mesh_proxy::endpoint::Protocol;
/// // A ServiceEntry port named `grpc-api` with no `protocol` speaks HTTP/2.
/// assert_eq!(Protocol::of_port(None, "grpc-api"), Protocol::Http2);
/// assert_eq!(Protocol::of_port(Some("HTTP"), "web"), Protocol::Http1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 with prior knowledge (h2c), as for `HTTP2` and `GRPC` ports.
    Http2,
}

impl Protocol {
    /// The protocol of a ServiceEntry port: its `protocol`, else the prefix of its name
    /// (`grpc-…`, `http2-…`), as Istio selects protocols.
    ///
    /// ```
    /// use mesh_proxy::endpoint::Protocol;
    /// assert_eq!(Protocol::of_port(Some("GRPC"), "x"), Protocol::Http2);
    /// assert_eq!(Protocol::of_port(None, "http2-internal"), Protocol::Http2);
    /// // A declared protocol wins over the name.
    /// assert_eq!(Protocol::of_port(Some("HTTP"), "grpc"), Protocol::Http1);
    /// assert_eq!(Protocol::of_port(None, "web"), Protocol::Http1);
    /// ```
    pub fn of_port(protocol: Option<&str>, name: &str) -> Protocol {
        let declared = protocol.unwrap_or_else(|| name.split('-').next().unwrap_or(""));
        match declared.to_ascii_uppercase().as_str() {
            "HTTP2" | "GRPC" | "GRPC-WEB" => Protocol::Http2,
            _ => Protocol::Http1,
        }
    }
}

/// Where in [`Endpoint::counts`] each counter is.
const REQUESTS: usize = 0;
const FAILURES: usize = 1;
const SUCCESSES: usize = 2;
const TIMEOUTS: usize = 3;

/// One upstream endpoint.
///
/// ```
/// use mesh_proxy::endpoint::{Endpoint, Protocol};
/// use std::sync::Arc;
/// let labels = [("version".to_string(), "v2".to_string())].into();
/// let endpoint = Arc::new(Endpoint::new("10.0.0.7:8080".parse().unwrap(), labels, Protocol::Http1));
/// let guard = endpoint.start_request();
/// assert_eq!((endpoint.in_flight(), endpoint.requests()), (1, 1));
/// endpoint.record_success();
/// drop(guard);
/// assert_eq!((endpoint.in_flight(), endpoint.successes()), (0, 1));
/// assert_eq!(endpoint.workload.canonical_revision, "v2");
/// ```
#[derive(Debug)]
pub struct Endpoint {
    /// `address:port` to connect to (an IP, or a DNS name resolved at connect time).
    pub authority: Authority,
    /// The workload's labels (what subsets select on).
    pub labels: BTreeMap<String, String>,
    /// How to speak to it.
    pub protocol: Protocol,
    /// Its workload, as the `destination_*` metric labels report it.
    pub workload: Arc<Workload>,
    /// Shared by the threads, as the balancer reads it for each request.
    in_flight: AtomicUsize,
    /// `requests`, `failures`, `successes`, `timeouts` ([`REQUESTS`]…), counted per thread:
    /// every worker counts each request to the endpoint.
    counts: PerThreadCounts<4>,
    unreachable: ConnectBackoff,
    pub(crate) h2: crate::upstream::Http2Connection,
}

impl Endpoint {
    /// Whether `other` is the same endpoint: address, labels, protocol and workload (so its
    /// state — counters, connect backoff, HTTP/2 connection — can carry over to a new
    /// configuration).
    ///
    /// ```
    /// use mesh_proxy::endpoint::{Endpoint, Protocol};
    /// let at = |authority: &str, protocol| Endpoint::new(authority.parse().unwrap(), Default::default(), protocol);
    /// let a = at("127.0.0.1:80", Protocol::Http1);
    /// a.record_failure(); // counters do not matter
    /// assert!(a.same_as(&at("127.0.0.1:80", Protocol::Http1)));
    /// assert!(!a.same_as(&at("127.0.0.1:80", Protocol::Http2)));
    /// assert!(!a.same_as(&at("127.0.0.1:81", Protocol::Http1)));
    /// ```
    pub fn same_as(&self, other: &Endpoint) -> bool {
        self.authority == other.authority
            && self.protocol == other.protocol
            && self.labels == other.labels
            && self.workload == other.workload
    }

    /// A new endpoint at `authority` with `labels`, spoken to in `protocol`, with zero
    /// counters, its workload described by its labels alone.
    ///
    /// ```
    /// use mesh_proxy::endpoint::{Endpoint, Protocol};
    /// let labels = [("app".to_string(), "catalog".to_string())].into();
    /// let endpoint = Endpoint::new("127.0.0.1:9001".parse().unwrap(), labels, Protocol::Http2);
    /// assert_eq!(endpoint.authority.port_u16(), Some(9001));
    /// assert_eq!(endpoint.workload.app, "catalog");
    /// assert_eq!((endpoint.requests(), endpoint.failures()), (0, 0));
    /// ```
    pub fn new(authority: Authority, labels: BTreeMap<String, String>, protocol: Protocol) -> Self {
        Endpoint {
            workload: Arc::new(Workload::from_labels("", "", &labels)),
            authority,
            labels,
            protocol,
            in_flight: AtomicUsize::new(0),
            counts: PerThreadCounts::default(),
            unreachable: ConnectBackoff::default(),
            h2: Default::default(),
        }
    }

    /// Sets the endpoint's workload.
    ///
    /// ```
    /// use mesh_core::workload::Workload;
    /// use mesh_proxy::endpoint::{Endpoint, Protocol};
    /// use std::sync::Arc;
    /// let workload = Arc::new(Workload::from_labels("catalog-v1", "shop", &Default::default()));
    /// let endpoint = Endpoint::new("127.0.0.1:9001".parse().unwrap(), Default::default(), Protocol::Http1)
    ///     .with_workload(workload.clone());
    /// assert_eq!(endpoint.workload, workload);
    /// ```
    pub fn with_workload(mut self, workload: Arc<Workload>) -> Self {
        self.workload = workload;
        self
    }

    /// Requests currently in flight to this endpoint.
    ///
    /// ```
    /// use mesh_proxy::endpoint::{Endpoint, Protocol};
    /// use std::sync::Arc;
    /// let endpoint = Arc::new(Endpoint::new("127.0.0.1:1".parse().unwrap(), Default::default(), Protocol::Http1));
    /// let (a, b) = (endpoint.start_request(), endpoint.start_request());
    /// assert_eq!(endpoint.in_flight(), 2);
    /// drop((a, b));
    /// assert_eq!(endpoint.in_flight(), 0);
    /// ```
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests sent to this endpoint so far.
    ///
    /// ```
    /// use mesh_proxy::endpoint::{Endpoint, Protocol};
    /// use std::sync::Arc;
    /// let endpoint = Arc::new(Endpoint::new("127.0.0.1:1".parse().unwrap(), Default::default(), Protocol::Http1));
    /// drop(endpoint.start_request());
    /// drop(endpoint.start_request());
    /// assert_eq!(endpoint.requests(), 2, "finished requests still count");
    /// ```
    pub fn requests(&self) -> u64 {
        self.counts.total(REQUESTS)
    }

    /// Requests that failed to connect or got a 5xx.
    ///
    /// ```
    /// use mesh_proxy::endpoint::{Endpoint, Protocol};
    /// let endpoint = Endpoint::new("127.0.0.1:1".parse().unwrap(), Default::default(), Protocol::Http1);
    /// endpoint.record_failure();
    /// assert_eq!((endpoint.failures(), endpoint.successes()), (1, 0));
    /// ```
    pub fn failures(&self) -> u64 {
        self.counts.total(FAILURES)
    }

    /// Requests answered with a status below 500.
    ///
    /// ```
    /// use mesh_proxy::endpoint::{Endpoint, Protocol};
    /// let endpoint = Endpoint::new("127.0.0.1:1".parse().unwrap(), Default::default(), Protocol::Http1);
    /// endpoint.record_success();
    /// endpoint.record_success();
    /// assert_eq!((endpoint.successes(), endpoint.failures()), (2, 0));
    /// ```
    pub fn successes(&self) -> u64 {
        self.counts.total(SUCCESSES)
    }

    /// Requests abandoned at their (route or per-try) timeout.
    ///
    /// ```
    /// use mesh_proxy::endpoint::{Endpoint, Protocol};
    /// let endpoint = Endpoint::new("127.0.0.1:1".parse().unwrap(), Default::default(), Protocol::Http1);
    /// assert_eq!(endpoint.timeouts(), 0);
    /// endpoint.record_timeout();
    /// assert_eq!(endpoint.timeouts(), 1);
    /// ```
    pub fn timeouts(&self) -> u64 {
        self.counts.total(TIMEOUTS)
    }

    /// Counts a request answered with a status below 500.
    ///
    /// ```
    /// use mesh_proxy::endpoint::{Endpoint, Protocol};
    /// let endpoint = Endpoint::new("127.0.0.1:1".parse().unwrap(), Default::default(), Protocol::Http1);
    /// endpoint.record_success();
    /// assert_eq!(endpoint.successes(), 1);
    /// ```
    pub fn record_success(&self) {
        self.counts.add(SUCCESSES, 1);
    }

    /// Counts a request abandoned at its timeout.
    ///
    /// ```
    /// use mesh_proxy::endpoint::{Endpoint, Protocol};
    /// let endpoint = Endpoint::new("127.0.0.1:1".parse().unwrap(), Default::default(), Protocol::Http1);
    /// endpoint.record_timeout();
    /// assert_eq!((endpoint.timeouts(), endpoint.failures()), (1, 0));
    /// ```
    pub fn record_timeout(&self) {
        self.counts.add(TIMEOUTS, 1);
    }

    /// Marks a request as started; the guard marks it finished when dropped.
    ///
    /// ```
    /// use mesh_proxy::endpoint::{Endpoint, Protocol};
    /// use std::sync::Arc;
    /// let endpoint = Arc::new(Endpoint::new("127.0.0.1:1".parse().unwrap(), Default::default(), Protocol::Http1));
    /// {
    ///     let _in_flight = endpoint.start_request();
    ///     assert_eq!(endpoint.in_flight(), 1);
    /// }
    /// assert_eq!((endpoint.in_flight(), endpoint.requests()), (0, 1));
    /// ```
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.counts.add(REQUESTS, 1);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Counts a failed request (connect failure, reset, 5xx).
    ///
    /// ```
    /// use mesh_proxy::endpoint::{Endpoint, Protocol};
    /// let endpoint = Endpoint::new("127.0.0.1:1".parse().unwrap(), Default::default(), Protocol::Http1);
    /// endpoint.record_failure();
    /// endpoint.record_failure();
    /// assert_eq!(endpoint.failures(), 2);
    /// ```
    pub fn record_failure(&self) {
        self.counts.add(FAILURES, 1);
    }

    /// Records that connecting failed: the endpoint is passed over for a while (1 s, doubling
    /// with each consecutive failure up to 30 s) when another endpoint can take the request.
    ///
    /// ```
    /// use mesh_proxy::endpoint::{Endpoint, Protocol};
    /// use std::time::Duration;
    /// let endpoint = Endpoint::new("127.0.0.1:1".parse().unwrap(), Default::default(), Protocol::Http1);
    /// let now = tokio::time::Instant::now();
    /// endpoint.record_connect_failure(now);
    /// assert!(endpoint.is_unreachable(now + Duration::from_millis(900)));
    /// assert!(!endpoint.is_unreachable(now + Duration::from_millis(1100)), "1 s after one failure");
    /// ```
    pub fn record_connect_failure(&self, now: Instant) {
        self.unreachable.fail(now);
    }

    /// Records a request that reached the endpoint, ending any connect backoff.
    ///
    /// ```
    /// use mesh_proxy::endpoint::{Endpoint, Protocol};
    /// let endpoint = Endpoint::new("127.0.0.1:1".parse().unwrap(), Default::default(), Protocol::Http1);
    /// let now = tokio::time::Instant::now();
    /// endpoint.record_connect_failure(now);
    /// assert!(endpoint.is_unreachable(now));
    /// endpoint.record_reachable();
    /// assert!(!endpoint.is_unreachable(now));
    /// ```
    pub fn record_reachable(&self) {
        self.unreachable.clear();
    }

    /// Whether the endpoint is in connect backoff at `now`.
    ///
    /// ```
    /// use mesh_proxy::endpoint::{Endpoint, Protocol};
    /// use std::time::Duration;
    /// let endpoint = Endpoint::new("127.0.0.1:1".parse().unwrap(), Default::default(), Protocol::Http1);
    /// let now = tokio::time::Instant::now();
    /// assert!(!endpoint.is_unreachable(now));
    /// endpoint.record_connect_failure(now);
    /// endpoint.record_connect_failure(now);
    /// // Two consecutive failures: 2 s of backoff.
    /// assert!(endpoint.is_unreachable(now + Duration::from_millis(1900)));
    /// assert!(!endpoint.is_unreachable(now + Duration::from_millis(2100)));
    /// ```
    pub fn is_unreachable(&self, now: Instant) -> bool {
        self.unreachable.active(now)
    }

    /// Whether every label of `selector` is on this endpoint.
    ///
    /// ```
    /// use mesh_proxy::endpoint::{Endpoint, Protocol};
    /// use std::collections::BTreeMap;
    /// let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
    ///     pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    /// };
    /// let endpoint = Endpoint::new("127.0.0.1:1".parse().unwrap(), map(&[("app", "catalog"), ("version", "v1")]), Protocol::Http1);
    /// assert!(endpoint.selected_by(&map(&[("version", "v1")])));
    /// assert!(endpoint.selected_by(&BTreeMap::new()), "an empty selector selects everything");
    /// assert!(!endpoint.selected_by(&map(&[("version", "v2")])));
    /// ```
    pub fn selected_by(&self, selector: &BTreeMap<String, String>) -> bool {
        selector.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }
}

/// After a connect failure, how long an endpoint is passed over: 1 s doubling per consecutive
/// failure up to 30 s. A killed or unreachable endpoint costs one failed connect (and one retry)
/// per backoff period instead of one per request — which a retry budget could not pay for.
#[derive(Debug, Default)]
struct ConnectBackoff {
    /// Consecutive connect failures.
    failures: AtomicU32,
    /// Milliseconds after [`epoch`] until which the endpoint is passed over (0: not at all).
    until_ms: AtomicU64,
}

const CONNECT_BACKOFF_BASE_MS: u64 = 1000;
const CONNECT_BACKOFF_MAX_MS: u64 = 30_000;

/// A fixed point in time to measure backoff deadlines from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn millis_since_epoch(now: Instant) -> u64 {
    now.saturating_duration_since(epoch()).as_millis() as u64
}

impl ConnectBackoff {
    fn fail(&self, now: Instant) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed).min(16);
        let backoff = (CONNECT_BACKOFF_BASE_MS << failures).min(CONNECT_BACKOFF_MAX_MS);
        // `+ 1` keeps a deadline distinct from "none" even at the epoch itself.
        self.until_ms
            .store(millis_since_epoch(now) + backoff + 1, Ordering::Relaxed);
    }

    fn clear(&self) {
        if self.until_ms.load(Ordering::Relaxed) != 0 {
            self.until_ms.store(0, Ordering::Relaxed);
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    fn active(&self, now: Instant) -> bool {
        let until = self.until_ms.load(Ordering::Relaxed);
        until != 0 && millis_since_epoch(now) + 1 < until
    }
}

/// Decrements an endpoint's in-flight count when dropped.
///
/// ```
/// use mesh_proxy::endpoint::{Endpoint, Protocol};
/// use std::sync::Arc;
/// let endpoint = Arc::new(Endpoint::new("127.0.0.1:1".parse().unwrap(), Default::default(), Protocol::Http1));
/// let in_flight = endpoint.start_request();
/// assert_eq!(endpoint.in_flight(), 1);
/// drop(in_flight);
/// assert_eq!(endpoint.in_flight(), 0);
/// ```
#[derive(Debug)]
pub struct InFlight(Arc<Endpoint>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_counts_in_cells_of_its_own_and_the_in_flight_count_is_shared() {
        let endpoint = Arc::new(Endpoint::new(
            "127.0.0.1:1".parse().unwrap(),
            Default::default(),
            Protocol::Http1,
        ));
        let started = std::sync::Barrier::new(2);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                let (endpoint, started) = (&endpoint, &started);
                scope.spawn(move || {
                    let guard = endpoint.start_request();
                    endpoint.record_success();
                    started.wait();
                    // Both threads' requests are in flight at once: one count both see.
                    assert_eq!(endpoint.in_flight(), 2);
                    started.wait();
                    drop(guard);
                });
            }
        });
        assert_eq!((endpoint.requests(), endpoint.successes()), (2, 2));
        assert_eq!(endpoint.in_flight(), 0);
        assert_eq!(endpoint.counts.threads(), 2);
    }

    #[test]
    fn protocol_from_port() {
        assert_eq!(Protocol::of_port(Some("GRPC"), "x"), Protocol::Http2);
        assert_eq!(Protocol::of_port(None, "grpc-api"), Protocol::Http2);
        assert_eq!(Protocol::of_port(Some("HTTP"), "grpc"), Protocol::Http1);
        assert_eq!(Protocol::of_port(None, "web"), Protocol::Http1);
    }

    #[tokio::test(start_paused = true)]
    async fn connect_backoff_doubles_and_clears() {
        let e = Endpoint::new(
            "127.0.0.1:1".parse().unwrap(),
            BTreeMap::new(),
            Protocol::Http1,
        );
        let start = Instant::now();
        assert!(!e.is_unreachable(start));
        e.record_connect_failure(start);
        assert!(e.is_unreachable(start + std::time::Duration::from_millis(999)));
        assert!(!e.is_unreachable(start + std::time::Duration::from_millis(1001)));
        e.record_connect_failure(start);
        assert!(e.is_unreachable(start + std::time::Duration::from_millis(1999)));
        e.record_reachable();
        assert!(!e.is_unreachable(start));
    }

    #[test]
    fn in_flight_guard() {
        let e = Arc::new(Endpoint::new(
            "127.0.0.1:1".parse().unwrap(),
            BTreeMap::new(),
            Protocol::Http1,
        ));
        {
            let _a = e.start_request();
            let _b = e.start_request();
            assert_eq!(e.in_flight(), 2);
        }
        assert_eq!(e.in_flight(), 0);
        assert_eq!(e.requests(), 2);
    }
}
