//! Outlier detection: a DestinationRule's `outlierDetection`, ejecting misbehaving endpoints of
//! a cluster from load balancing as Envoy does (consecutive-error detection).
//!
//! One [`OutlierDetector`] exists per cluster and tracks its endpoints by index. The proxy
//! [reports](OutlierDetector::report) the [`Outcome`] of every request to an endpoint and asks
//! the detector which endpoints are [available](OutlierDetector::is_available) when it picks one.
//!
//! Semantics (Envoy's `outlier_detection_impl.cc`, with Istio's defaults):
//! - Counters. Any 5xx counts toward `consecutive_5xx`; 502, 503 and 504 also toward
//!   `consecutive_gateway_errors` (another 5xx resets that one). By default a local-origin
//!   failure (connect failure, reset, timeout) counts as a gateway error for both; with
//!   `split_external_local_origin_errors` it counts only toward `consecutive_local_origin_failures`
//!   and an upstream response resets that counter. A success resets every counter.
//! - Ejection happens inline when a counter reaches its threshold, if the share of endpoints
//!   **currently** ejected (the new one not counted) is below `max_ejection_percent` — so one of
//!   three endpoints can be ejected at 10 %. Otherwise `ejections_overflow` is counted. Either
//!   way the counter restarts; a threshold reached by an endpoint already ejected is ignored.
//! - An ejection lasts `base_ejection_time × multiplier`, capped at `max_ejection_time` (or the
//!   base if larger). The multiplier grows by one on each ejection and, while the endpoint stays
//!   in the pool, drops by one per `interval` (Envoy stops growing it once the product passes the
//!   cap, so recovery from the cap takes about `max / base` intervals).
//! - An endpoint returns to the pool exactly when its time is up (Envoy waits for the next
//!   `interval` tick); its counters restart then. [`sweep`](OutlierDetector::sweep) settles
//!   un-ejections and decay for every endpoint — for `/clusters` — but nothing depends on
//!   calling it: both are also worked out lazily.
//! - Panic mode: when `min_health_percent` > 0 and fewer than that share of endpoints are
//!   available, every endpoint is available. Istio's default 0 turns it off; with it off and
//!   every endpoint ejected the client gets 503 `no healthy upstream` (UH).
//!
//! Reporting and availability checks are lock-free (atomics); the detector takes its one short
//! lock only to eject, to un-eject, and for statistics.

use std::{
    sync::{
        Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};
use tokio::time::Instant;

/// Istio's `outlierDetection` settings; [`Default`] is what Istio generates.
///
/// | Istio field | field here | default |
/// |---|---|---|
/// | `consecutive5xxErrors` | [`consecutive_5xx`](Self::consecutive_5xx) | 5 |
/// | `consecutiveGatewayErrors` | [`consecutive_gateway_errors`](Self::consecutive_gateway_errors) | off |
/// | `consecutiveLocalOriginFailures` | [`consecutive_local_origin_failures`](Self::consecutive_local_origin_failures) | 5 |
/// | `splitExternalLocalOriginErrors` | [`split_external_local_origin_errors`](Self::split_external_local_origin_errors) | false |
/// | `interval` | [`interval`](Self::interval) | 10 s |
/// | `baseEjectionTime` | [`base_ejection_time`](Self::base_ejection_time) | 30 s |
/// | `maxEjectionPercent` | [`max_ejection_percent`](Self::max_ejection_percent) | 10 |
/// | `minHealthPercent` | [`min_health_percent`](Self::min_health_percent) | 0 (no panic mode) |
/// | (Envoy only) | [`max_ejection_time`](Self::max_ejection_time) | 300 s |
///
/// A threshold of `None` or `Some(0)` disables that kind of detection.
///
/// ```
/// use mesh_core::outlier::{OutlierConfig, OutlierDetector, Outcome};
/// use std::time::Duration;
/// let defaults = OutlierConfig::default();
/// assert_eq!(defaults.consecutive_5xx, Some(5));
/// assert_eq!(defaults.consecutive_gateway_errors, None);
/// assert_eq!(defaults.base_ejection_time, Duration::from_secs(30));
/// let now = tokio::time::Instant::now();
/// // A threshold of two: the second consecutive 5xx ejects the endpoint.
/// let detector = OutlierDetector::new(OutlierConfig { consecutive_5xx: Some(2), ..defaults.clone() }, 2);
/// detector.report(0, Outcome::Http5xx(500), now);
/// assert!(detector.is_available(0, now));
/// detector.report(0, Outcome::Http5xx(500), now);
/// assert!(!detector.is_available(0, now));
/// // `Some(0)` (like `None`) turns 5xx detection off.
/// let detector = OutlierDetector::new(OutlierConfig { consecutive_5xx: Some(0), ..defaults }, 2);
/// (0..10).for_each(|_| detector.report(0, Outcome::Http5xx(500), now));
/// assert!(detector.is_available(0, now));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutlierConfig {
    /// Consecutive 5xx (and, unless split, local-origin failures) before ejection.
    pub consecutive_5xx: Option<u32>,
    /// Consecutive 502/503/504 (and, unless split, local-origin failures) before ejection.
    pub consecutive_gateway_errors: Option<u32>,
    /// Consecutive local-origin failures before ejection; used only in split mode.
    pub consecutive_local_origin_failures: Option<u32>,
    /// Count local-origin failures apart from upstream 5xx responses.
    pub split_external_local_origin_errors: bool,
    /// Period of the ejection-multiplier decay.
    pub interval: Duration,
    /// Ejection time of a first ejection; multiplied by the ejection multiplier.
    pub base_ejection_time: Duration,
    /// Highest share of endpoints ejected at once, in percent.
    pub max_ejection_percent: u32,
    /// Below this share of available endpoints, all are used (panic mode); 0 disables it.
    pub min_health_percent: u32,
    /// Longest ejection (when smaller than `base_ejection_time`, the base is used).
    pub max_ejection_time: Duration,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_5xx: Some(5),
            consecutive_gateway_errors: None,
            consecutive_local_origin_failures: Some(5),
            split_external_local_origin_errors: false,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_percent: 10,
            min_health_percent: 0,
            max_ejection_time: Duration::from_secs(300),
        }
    }
}

impl OutlierConfig {
    /// The longest ejection: `max_ejection_time`, or `base_ejection_time` if larger.
    ///
    /// ```
    /// use mesh_core::outlier::OutlierConfig;
    /// use std::time::Duration;
    /// assert_eq!(OutlierConfig::default().effective_max_ejection_time(), Duration::from_secs(300));
    /// let config = OutlierConfig { base_ejection_time: Duration::from_secs(600), ..Default::default() };
    /// assert_eq!(config.effective_max_ejection_time(), Duration::from_secs(600));
    /// ```
    pub fn effective_max_ejection_time(&self) -> Duration {
        self.max_ejection_time.max(self.base_ejection_time)
    }
}

/// How a request to an endpoint ended.
///
/// A 503 counts toward both `consecutive_5xx` and `consecutive_gateway_errors`; a success resets
/// them:
///
/// ```
/// use mesh_core::outlier::{OutlierConfig, OutlierDetector, Outcome};
/// let detector = OutlierDetector::new(OutlierConfig::default(), 1);
/// let now = tokio::time::Instant::now();
/// detector.report(0, Outcome::Http5xx(503), now);
/// let stats = detector.endpoint_stats(0, now).unwrap();
/// assert_eq!((stats.consecutive_5xx, stats.consecutive_gateway), (1, 1));
/// detector.report(0, Outcome::Success, now);
/// assert_eq!(detector.endpoint_stats(0, now).unwrap().consecutive_5xx, 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint answered with a non-5xx status.
    Success,
    /// The endpoint answered with this 5xx status (a status outside 500–599 counts as success).
    Http5xx(u16),
    /// The request failed on our side of the endpoint: connect failure, reset or timeout.
    LocalOriginFailure,
}

impl Outcome {
    /// The outcome of a response with `status`.
    ///
    /// ```
    /// use mesh_core::outlier::Outcome;
    /// assert_eq!(Outcome::from_status(503), Outcome::Http5xx(503));
    /// assert_eq!(Outcome::from_status(404), Outcome::Success);
    /// ```
    pub fn from_status(status: u16) -> Self {
        if (500..=599).contains(&status) {
            Outcome::Http5xx(status)
        } else {
            Outcome::Success
        }
    }
}

/// Outlier state of one endpoint, as `/clusters` shows it.
///
/// ```
/// use mesh_core::outlier::{OutlierConfig, OutlierDetector, Outcome};
/// use std::time::Duration;
/// let detector = OutlierDetector::new(OutlierConfig { consecutive_5xx: Some(1), ..Default::default() }, 1);
/// let now = tokio::time::Instant::now();
/// detector.report(0, Outcome::Http5xx(500), now);
/// let stats = detector.endpoint_stats(0, now).unwrap();
/// assert_eq!(stats.ejected_until, Some(now + Duration::from_secs(30)));
/// assert_eq!((stats.times_ejected, stats.ejection_multiplier), (1, 1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointStats {
    /// When the current ejection ends; `None` when the endpoint is in the pool.
    pub ejected_until: Option<Instant>,
    /// Ejections of this endpoint since the detector was created.
    pub times_ejected: u64,
    /// The current ejection multiplier (grows per ejection, decays per healthy interval).
    pub ejection_multiplier: u32,
    /// Consecutive 5xx counted.
    pub consecutive_5xx: u32,
    /// Consecutive gateway errors counted.
    pub consecutive_gateway: u32,
    /// Consecutive local-origin failures counted (split mode).
    pub consecutive_local: u32,
}

/// The outlier detector of one cluster; see the [module docs](self).
///
/// ```
/// use mesh_core::outlier::{OutlierConfig, OutlierDetector, Outcome};
/// use std::time::Duration;
/// use tokio::time::Instant;
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let config = OutlierConfig { consecutive_5xx: Some(2), ..Default::default() };
/// let detector = OutlierDetector::new(config, 3);
/// let now = Instant::now();
/// detector.report(1, Outcome::Http5xx(500), now);
/// detector.report(1, Outcome::LocalOriginFailure, now);
/// assert!(!detector.is_available(1, now));
/// assert_eq!(detector.available(now).collect::<Vec<_>>(), [0, 2]);
/// assert!(detector.is_available(1, now + Duration::from_secs(30)));
/// # });
/// ```
#[derive(Debug)]
pub struct OutlierDetector {
    config: OutlierConfig,
    /// Times are kept as nanoseconds since `epoch`, plus one (0 means "none").
    epoch: Instant,
    endpoints: Box<[Endpoint]>,
    /// Endpoints whose `until` is set (ejected, or expired but not yet settled).
    marked: AtomicUsize,
    slow: Mutex<Vec<Backoff>>,
    ejections: AtomicU64,
    ejections_overflow: AtomicU64,
}

/// The lock-free part of an endpoint's state.
#[derive(Debug, Default)]
struct Endpoint {
    /// End of the current ejection (encoded), 0 when not ejected.
    until: AtomicU64,
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    consecutive_local: AtomicU32,
}

impl Endpoint {
    fn reset_counters(&self) {
        reset(&self.consecutive_5xx);
        reset(&self.consecutive_gateway);
        reset(&self.consecutive_local);
    }

    fn ejected_at(&self, now: u64) -> bool {
        let until = self.until.load(Relaxed);
        until != 0 && now < until
    }
}

/// The part of an endpoint's state changed only under the lock.
#[derive(Clone, Copy, Debug, Default)]
struct Backoff {
    multiplier: u32,
    times_ejected: u64,
    /// Since when (encoded) the multiplier decays; 0 while ejected or never ejected.
    decay_from: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Gateway,
    FiveXx,
    LocalOrigin,
}

fn reset(counter: &AtomicU32) {
    if counter.load(Relaxed) != 0 {
        counter.store(0, Relaxed);
    }
}

/// Adds one to `counter`; whether it just reached `threshold` (an enabled one).
fn bump(counter: &AtomicU32, threshold: Option<u32>) -> bool {
    let count = counter.fetch_add(1, Relaxed).wrapping_add(1);
    threshold.is_some_and(|t| t > 0 && count == t)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl OutlierDetector {
    /// A detector for `endpoint_count` endpoints (indices `0..endpoint_count`), none ejected.
    ///
    /// ```
    /// use mesh_core::outlier::{OutlierConfig, OutlierDetector};
    /// let detector = OutlierDetector::new(OutlierConfig::default(), 4);
    /// let now = tokio::time::Instant::now();
    /// assert_eq!(detector.endpoint_count(), 4);
    /// assert_eq!(detector.available(now).count(), 4);
    /// assert_eq!(detector.ejected(now), 0);
    /// ```
    pub fn new(config: OutlierConfig, endpoint_count: usize) -> Self {
        OutlierDetector {
            config,
            epoch: Instant::now(),
            endpoints: (0..endpoint_count).map(|_| Endpoint::default()).collect(),
            marked: AtomicUsize::new(0),
            slow: Mutex::new(vec![Backoff::default(); endpoint_count]),
            ejections: AtomicU64::new(0),
            ejections_overflow: AtomicU64::new(0),
        }
    }

    /// The configuration.
    ///
    /// ```
    /// use mesh_core::outlier::{OutlierConfig, OutlierDetector};
    /// let config = OutlierConfig { consecutive_gateway_errors: Some(3), ..Default::default() };
    /// let detector = OutlierDetector::new(config.clone(), 2);
    /// assert_eq!(detector.config(), &config);
    /// ```
    pub fn config(&self) -> &OutlierConfig {
        &self.config
    }

    /// How many endpoints are tracked.
    ///
    /// ```
    /// use mesh_core::outlier::{OutlierConfig, OutlierDetector};
    /// assert_eq!(OutlierDetector::new(OutlierConfig::default(), 3).endpoint_count(), 3);
    /// assert_eq!(OutlierDetector::new(OutlierConfig::default(), 0).endpoint_count(), 0);
    /// ```
    pub fn endpoint_count(&self) -> usize {
        self.endpoints.len()
    }

    fn encode(&self, t: Instant) -> u64 {
        nanos(t.saturating_duration_since(self.epoch)).saturating_add(1)
    }

    fn decode(&self, t: u64) -> Instant {
        let since = Duration::from_nanos(t.saturating_sub(1));
        self.epoch.checked_add(since).unwrap_or(self.epoch)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Backoff>> {
        self.slow.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records how a request to `endpoint` ended, ejecting it if a threshold is reached.
    /// Unknown endpoints are ignored.
    ///
    /// ```
    /// use mesh_core::outlier::{OutlierConfig, OutlierDetector, Outcome};
    /// let config = OutlierConfig { consecutive_5xx: Some(3), ..Default::default() };
    /// let detector = OutlierDetector::new(config, 2);
    /// let now = tokio::time::Instant::now();
    /// detector.report(0, Outcome::Http5xx(500), now);
    /// detector.report(0, Outcome::Http5xx(500), now);
    /// assert!(detector.is_available(0, now), "two of three");
    /// detector.report(0, Outcome::Http5xx(500), now);
    /// assert!(!detector.is_available(0, now));
    /// detector.report(9, Outcome::Http5xx(500), now); // unknown: ignored
    /// assert_eq!(detector.ejections(), 1);
    /// ```
    pub fn report(&self, endpoint: usize, outcome: Outcome, now: Instant) {
        let Some(ep) = self.endpoints.get(endpoint) else {
            return;
        };
        let now = self.encode(now);
        let until = ep.until.load(Relaxed);
        if until != 0 && now >= until {
            // Its ejection is over: return it to the pool (restarting its counters) first.
            self.settle(&mut self.lock(), endpoint, now);
        }
        let config = &self.config;
        let split = config.split_external_local_origin_errors;
        let mut reached = [None; 2];
        match outcome {
            Outcome::Http5xx(status) if (500..=599).contains(&status) => {
                if split {
                    reset(&ep.consecutive_local);
                }
                reached = self.count_5xx(ep, matches!(status, 502..=504));
            }
            Outcome::Success | Outcome::Http5xx(_) => ep.reset_counters(),
            Outcome::LocalOriginFailure if split => {
                if bump(
                    &ep.consecutive_local,
                    config.consecutive_local_origin_failures,
                ) {
                    reached[0] = Some(Kind::LocalOrigin);
                }
            }
            Outcome::LocalOriginFailure => reached = self.count_5xx(ep, true),
        }
        for kind in reached.into_iter().flatten() {
            self.on_threshold(endpoint, kind, now);
        }
    }

    /// Counts a 5xx (a gateway error if `gateway`); the thresholds reached, gateway first.
    fn count_5xx(&self, ep: &Endpoint, gateway: bool) -> [Option<Kind>; 2] {
        let mut reached = [None; 2];
        if gateway {
            if bump(
                &ep.consecutive_gateway,
                self.config.consecutive_gateway_errors,
            ) {
                reached[0] = Some(Kind::Gateway);
            }
        } else {
            reset(&ep.consecutive_gateway);
        }
        if bump(&ep.consecutive_5xx, self.config.consecutive_5xx) {
            reached[1] = Some(Kind::FiveXx);
        }
        reached
    }

    /// A counter of `endpoint` reached its threshold: eject it if allowed.
    fn on_threshold(&self, endpoint: usize, kind: Kind, now: u64) {
        let mut slow = self.lock();
        self.settle(&mut slow, endpoint, now);
        let (Some(ep), Some(backoff)) = (self.endpoints.get(endpoint), slow.get_mut(endpoint))
        else {
            return;
        };
        if ep.ejected_at(now) {
            return;
        }
        let total = self.endpoints.len() as u64;
        let ejected = self.ejected_count(now) as u64;
        let max_percent = u64::from(self.config.max_ejection_percent.min(100));
        if ejected * 100 < max_percent * total {
            let base = self.config.base_ejection_time;
            let max = self.config.effective_max_ejection_time();
            // As Envoy: the multiplier stops growing once base × multiplier passes the cap.
            if base.saturating_mul(backoff.multiplier) < max.saturating_add(base) {
                backoff.multiplier = backoff.multiplier.saturating_add(1);
            }
            let duration = base.saturating_mul(backoff.multiplier).min(max);
            backoff.times_ejected += 1;
            backoff.decay_from = 0;
            ep.until
                .store(now.saturating_add(nanos(duration)).max(1), Relaxed);
            self.marked.fetch_add(1, Relaxed);
            self.ejections.fetch_add(1, Relaxed);
        } else {
            self.ejections_overflow.fetch_add(1, Relaxed);
        }
        let counter = match kind {
            Kind::Gateway => &ep.consecutive_gateway,
            Kind::FiveXx => &ep.consecutive_5xx,
            Kind::LocalOrigin => &ep.consecutive_local,
        };
        reset(counter);
    }

    /// Brings `endpoint` up to date at `now` (under the lock): ends an ejection whose time is
    /// up, and decays its multiplier by one per full interval spent in the pool.
    fn settle(&self, slow: &mut [Backoff], endpoint: usize, now: u64) {
        let (Some(ep), Some(backoff)) = (self.endpoints.get(endpoint), slow.get_mut(endpoint))
        else {
            return;
        };
        let until = ep.until.load(Relaxed);
        if until != 0 {
            if now < until {
                return;
            }
            ep.until.store(0, Relaxed);
            self.marked.fetch_sub(1, Relaxed);
            ep.reset_counters();
            backoff.decay_from = until;
        }
        if backoff.multiplier == 0 || backoff.decay_from == 0 {
            return;
        }
        let interval = nanos(self.config.interval);
        if interval == 0 {
            backoff.multiplier = 0;
            return;
        }
        let intervals = now.saturating_sub(backoff.decay_from) / interval;
        let steps = u32::try_from(intervals)
            .unwrap_or(u32::MAX)
            .min(backoff.multiplier);
        backoff.multiplier -= steps;
        backoff.decay_from = backoff
            .decay_from
            .saturating_add(u64::from(steps).saturating_mul(interval));
    }

    /// Returns endpoints whose ejection is over to the pool and decays multipliers. Optional:
    /// the detector does this lazily too; call it on every `interval` to keep
    /// [`stats`](Self::stats) fresh, as Envoy's interval timer does.
    ///
    /// ```
    /// use mesh_core::outlier::{OutlierConfig, OutlierDetector, Outcome};
    /// use std::time::Duration;
    /// let detector = OutlierDetector::new(OutlierConfig { consecutive_5xx: Some(1), ..Default::default() }, 1);
    /// let now = tokio::time::Instant::now();
    /// detector.report(0, Outcome::Http5xx(500), now);
    /// let later = now + Duration::from_secs(30);
    /// detector.sweep(later);
    /// assert_eq!(detector.stats(later)[0].ejected_until, None, "back in the pool");
    /// assert_eq!(detector.ejected(later), 0);
    /// ```
    pub fn sweep(&self, now: Instant) {
        let now = self.encode(now);
        let mut slow = self.lock();
        for endpoint in 0..self.endpoints.len() {
            self.settle(&mut slow, endpoint, now);
        }
    }

    fn ejected_count(&self, now: u64) -> usize {
        if self.marked.load(Relaxed) == 0 {
            return 0;
        }
        self.endpoints.iter().filter(|e| e.ejected_at(now)).count()
    }

    /// Whether fewer than `min_health_percent` of the endpoints are available.
    fn panicking(&self, now: u64) -> bool {
        let min = u64::from(self.config.min_health_percent.min(100));
        let total = self.endpoints.len() as u64;
        if min == 0 || total == 0 {
            return false;
        }
        let marked = (self.marked.load(Relaxed) as u64).min(total);
        // At least `total - marked` are available; often that settles it without a scan.
        if (total - marked) * 100 >= min * total {
            return false;
        }
        let healthy = total - self.ejected_count(now) as u64;
        healthy * 100 < min * total
    }

    /// Whether `endpoint` may be picked at `now`: it is not ejected (or its ejection is over),
    /// or the cluster is in panic mode. Unknown endpoints are not available.
    ///
    /// ```
    /// use mesh_core::outlier::{OutlierConfig, OutlierDetector, Outcome};
    /// use std::time::Duration;
    /// let detector = OutlierDetector::new(OutlierConfig { consecutive_5xx: Some(1), ..Default::default() }, 2);
    /// let now = tokio::time::Instant::now();
    /// detector.report(0, Outcome::LocalOriginFailure, now);
    /// assert!(!detector.is_available(0, now));
    /// assert!(detector.is_available(0, now + Duration::from_secs(30)));
    /// assert!(detector.is_available(1, now));
    /// assert!(!detector.is_available(2, now), "unknown endpoint");
    /// ```
    pub fn is_available(&self, endpoint: usize, now: Instant) -> bool {
        let Some(ep) = self.endpoints.get(endpoint) else {
            return false;
        };
        let now = self.encode(now);
        !ep.ejected_at(now) || self.panicking(now)
    }

    /// The endpoints that may be picked at `now`, in index order (all of them in panic mode).
    ///
    /// In panic mode every endpoint is available, ejected or not:
    ///
    /// ```
    /// use mesh_core::outlier::{OutlierConfig, OutlierDetector, Outcome};
    /// let config = OutlierConfig {
    ///     consecutive_5xx: Some(1), max_ejection_percent: 100, min_health_percent: 50, ..Default::default()
    /// };
    /// let detector = OutlierDetector::new(config, 2);
    /// let now = tokio::time::Instant::now();
    /// detector.report(0, Outcome::Http5xx(500), now);
    /// assert_eq!(detector.available(now).collect::<Vec<_>>(), [1]);
    /// detector.report(1, Outcome::Http5xx(500), now);
    /// assert!(detector.all_ejected(now));
    /// assert_eq!(detector.available(now).collect::<Vec<_>>(), [0, 1]);
    /// ```
    pub fn available(&self, now: Instant) -> impl Iterator<Item = usize> + '_ {
        let now = self.encode(now);
        let panicking = self.panicking(now);
        self.endpoints
            .iter()
            .enumerate()
            .filter(move |(_, ep)| panicking || !ep.ejected_at(now))
            .map(|(i, _)| i)
    }

    /// Whether there are endpoints and every one of them is ejected at `now`. In panic mode
    /// they are all still [available](Self::available); otherwise the request gets 503 UH.
    ///
    /// ```
    /// use mesh_core::outlier::{OutlierConfig, OutlierDetector, Outcome};
    /// let config = OutlierConfig { consecutive_5xx: Some(1), max_ejection_percent: 100, ..Default::default() };
    /// let detector = OutlierDetector::new(config, 1);
    /// let now = tokio::time::Instant::now();
    /// assert!(!detector.all_ejected(now));
    /// detector.report(0, Outcome::Http5xx(503), now);
    /// assert!(detector.all_ejected(now));
    /// assert_eq!(detector.available(now).count(), 0, "no panic mode by default");
    /// assert!(!OutlierDetector::new(OutlierConfig::default(), 0).all_ejected(now));
    /// ```
    pub fn all_ejected(&self, now: Instant) -> bool {
        let now = self.encode(now);
        !self.endpoints.is_empty() && self.endpoints.iter().all(|ep| ep.ejected_at(now))
    }

    /// How many endpoints are ejected at `now`.
    ///
    /// ```
    /// use mesh_core::outlier::{OutlierConfig, OutlierDetector, Outcome};
    /// use std::time::Duration;
    /// let config = OutlierConfig { consecutive_5xx: Some(1), max_ejection_percent: 100, ..Default::default() };
    /// let detector = OutlierDetector::new(config, 3);
    /// let now = tokio::time::Instant::now();
    /// detector.report(0, Outcome::Http5xx(500), now);
    /// detector.report(2, Outcome::Http5xx(500), now);
    /// assert_eq!(detector.ejected(now), 2);
    /// assert_eq!(detector.ejected(now + Duration::from_secs(30)), 0);
    /// ```
    pub fn ejected(&self, now: Instant) -> usize {
        self.ejected_count(self.encode(now))
    }

    /// Ejections made so far (Envoy's `ejections_enforced_total`).
    ///
    /// ```
    /// use mesh_core::outlier::{OutlierConfig, OutlierDetector, Outcome};
    /// use std::time::Duration;
    /// let detector = OutlierDetector::new(OutlierConfig { consecutive_5xx: Some(1), ..Default::default() }, 1);
    /// let now = tokio::time::Instant::now();
    /// detector.report(0, Outcome::Http5xx(500), now);
    /// detector.report(0, Outcome::Http5xx(500), now); // already ejected: ignored
    /// assert_eq!(detector.ejections(), 1);
    /// detector.report(0, Outcome::Http5xx(500), now + Duration::from_secs(30));
    /// assert_eq!(detector.ejections(), 2);
    /// ```
    pub fn ejections(&self) -> u64 {
        self.ejections.load(Relaxed)
    }

    /// Ejections refused by `max_ejection_percent` so far (Envoy's `ejections_overflow`).
    ///
    /// With the default `max_ejection_percent` of 10, only one of three endpoints may be out:
    ///
    /// ```
    /// use mesh_core::outlier::{OutlierConfig, OutlierDetector, Outcome};
    /// let detector = OutlierDetector::new(OutlierConfig { consecutive_5xx: Some(1), ..Default::default() }, 3);
    /// let now = tokio::time::Instant::now();
    /// detector.report(0, Outcome::Http5xx(500), now);
    /// detector.report(1, Outcome::Http5xx(500), now);
    /// assert_eq!((detector.ejections(), detector.ejections_overflow()), (1, 1));
    /// assert!(detector.is_available(1, now));
    /// ```
    pub fn ejections_overflow(&self) -> u64 {
        self.ejections_overflow.load(Relaxed)
    }

    /// The state of `endpoint` at `now`, or `None` for an unknown endpoint.
    ///
    /// An endpoint ejected again as soon as it returns is ejected for twice as long:
    ///
    /// ```
    /// use mesh_core::outlier::{OutlierConfig, OutlierDetector, Outcome};
    /// use std::time::Duration;
    /// let detector = OutlierDetector::new(OutlierConfig { consecutive_5xx: Some(1), ..Default::default() }, 1);
    /// let now = tokio::time::Instant::now();
    /// detector.report(0, Outcome::Http5xx(500), now);
    /// let back = now + Duration::from_secs(30);
    /// detector.report(0, Outcome::Http5xx(500), back);
    /// let stats = detector.endpoint_stats(0, back).unwrap();
    /// assert_eq!((stats.times_ejected, stats.ejection_multiplier), (2, 2));
    /// assert_eq!(stats.ejected_until, Some(back + Duration::from_secs(60)));
    /// assert!(detector.endpoint_stats(1, back).is_none());
    /// ```
    pub fn endpoint_stats(&self, endpoint: usize, now: Instant) -> Option<EndpointStats> {
        let now = self.encode(now);
        let mut slow = self.lock();
        self.settle(&mut slow, endpoint, now);
        self.stats_of(&slow, endpoint)
    }

    /// The state of every endpoint at `now`, in index order.
    ///
    /// ```
    /// use mesh_core::outlier::{OutlierConfig, OutlierDetector, Outcome};
    /// let detector = OutlierDetector::new(OutlierConfig::default(), 2);
    /// let now = tokio::time::Instant::now();
    /// detector.report(1, Outcome::Http5xx(502), now);
    /// let stats = detector.stats(now);
    /// assert_eq!(stats.len(), 2);
    /// assert_eq!((stats[0].consecutive_5xx, stats[1].consecutive_5xx), (0, 1));
    /// ```
    pub fn stats(&self, now: Instant) -> Vec<EndpointStats> {
        let now = self.encode(now);
        let mut slow = self.lock();
        (0..self.endpoints.len())
            .filter_map(|endpoint| {
                self.settle(&mut slow, endpoint, now);
                self.stats_of(&slow, endpoint)
            })
            .collect()
    }

    fn stats_of(&self, slow: &[Backoff], endpoint: usize) -> Option<EndpointStats> {
        let ep = self.endpoints.get(endpoint)?;
        let backoff = slow.get(endpoint)?;
        let until = ep.until.load(Relaxed);
        Some(EndpointStats {
            ejected_until: (until != 0).then(|| self.decode(until)),
            times_ejected: backoff.times_ejected,
            ejection_multiplier: backoff.multiplier,
            consecutive_5xx: ep.consecutive_5xx.load(Relaxed),
            consecutive_gateway: ep.consecutive_gateway.load(Relaxed),
            consecutive_local: ep.consecutive_local.load(Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    const SECOND: Duration = Duration::from_secs(1);

    fn detector(config: OutlierConfig, endpoints: usize) -> OutlierDetector {
        OutlierDetector::new(config, endpoints)
    }

    fn five_xx(threshold: u32) -> OutlierConfig {
        OutlierConfig {
            consecutive_5xx: Some(threshold),
            ..Default::default()
        }
    }

    fn fail(d: &OutlierDetector, endpoint: usize, times: usize) {
        for _ in 0..times {
            d.report(endpoint, Outcome::Http5xx(500), Instant::now());
        }
    }

    fn available(d: &OutlierDetector) -> Vec<usize> {
        d.available(Instant::now()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_5xx_ejects_for_base_time() {
        let d = detector(five_xx(2), 3);
        fail(&d, 0, 1);
        assert!(d.is_available(0, Instant::now()));
        let start = Instant::now();
        fail(&d, 0, 1);
        assert!(!d.is_available(0, start));
        assert!(d.is_available(1, start) && d.is_available(2, start));
        assert_eq!(available(&d), [1, 2]);
        let stats = d.endpoint_stats(0, start).unwrap();
        assert_eq!(stats.ejected_until, Some(start + 30 * SECOND));
        assert_eq!((stats.times_ejected, stats.consecutive_5xx), (1, 0));
        assert_eq!((d.ejections(), d.ejected(start)), (1, 1));

        advance(30 * SECOND - Duration::from_millis(1)).await;
        assert!(!d.is_available(0, Instant::now()));
        advance(Duration::from_millis(1)).await;
        assert!(d.is_available(0, Instant::now()));
        assert_eq!(available(&d), [0, 1, 2]);
        d.sweep(Instant::now());
        assert_eq!(
            d.endpoint_stats(0, Instant::now()).unwrap().ejected_until,
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn ejection_time_grows_and_is_capped() {
        let d = detector(five_xx(2), 3);
        let mut durations = Vec::new();
        for _ in 0..12 {
            let start = Instant::now();
            fail(&d, 0, 2);
            let until = d.endpoint_stats(0, start).unwrap().ejected_until.unwrap();
            durations.push((until - start).as_secs());
            advance(until - start).await;
            assert!(d.is_available(0, Instant::now()));
        }
        assert_eq!(
            durations,
            [30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 300, 300]
        );
        assert_eq!(
            d.endpoint_stats(0, Instant::now()).unwrap().times_ejected,
            12
        );
        // The multiplier stopped growing just past the cap (Envoy: while base × m < max + base).
        assert_eq!(
            d.endpoint_stats(0, Instant::now())
                .unwrap()
                .ejection_multiplier,
            11
        );
    }

    #[tokio::test(start_paused = true)]
    async fn base_above_max_ejection_time_uses_the_base() {
        let config = OutlierConfig {
            base_ejection_time: 400 * SECOND,
            ..five_xx(1)
        };
        let d = detector(config, 1);
        let start = Instant::now();
        fail(&d, 0, 1);
        let until = d.endpoint_stats(0, start).unwrap().ejected_until.unwrap();
        assert_eq!(until - start, 400 * SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn max_ejection_percent_is_respected() {
        let d = detector(five_xx(2), 3);
        fail(&d, 0, 2);
        // 1 of 3 ejected (33 %) is not below 10 %: the second ejection is refused.
        fail(&d, 1, 2);
        assert!(d.is_available(1, Instant::now()));
        assert_eq!((d.ejections(), d.ejections_overflow()), (1, 1));
        let stats = d.endpoint_stats(1, Instant::now()).unwrap();
        assert_eq!((stats.consecutive_5xx, stats.times_ejected), (0, 0));
        // Once the first is back, the second can go.
        advance(30 * SECOND).await;
        fail(&d, 1, 2);
        assert_eq!(available(&d), [0, 2]);
        assert_eq!(d.ejections(), 2);

        // At 50 % two of four may be ejected, not three.
        let config = OutlierConfig {
            max_ejection_percent: 50,
            ..five_xx(1)
        };
        let d = detector(config, 4);
        for endpoint in 0..3 {
            fail(&d, endpoint, 1);
        }
        assert_eq!(available(&d), [2, 3]);
        assert_eq!(d.ejections_overflow(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn success_resets_the_counters() {
        let d = detector(five_xx(3), 3);
        fail(&d, 0, 2);
        d.report(0, Outcome::Success, Instant::now());
        fail(&d, 0, 2);
        d.report(0, Outcome::Http5xx(404), Instant::now());
        fail(&d, 0, 2);
        assert!(d.is_available(0, Instant::now()));
        assert_eq!(
            d.endpoint_stats(0, Instant::now()).unwrap().consecutive_5xx,
            2
        );
        fail(&d, 0, 1);
        assert!(!d.is_available(0, Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn gateway_errors_only() {
        let config = OutlierConfig {
            consecutive_5xx: None,
            consecutive_gateway_errors: Some(2),
            ..Default::default()
        };
        let d = detector(config, 3);
        let now = Instant::now();
        fail(&d, 0, 10);
        assert!(d.is_available(0, now));
        // A non-gateway 5xx between gateway errors restarts the count.
        d.report(0, Outcome::Http5xx(502), now);
        d.report(0, Outcome::Http5xx(500), now);
        d.report(0, Outcome::Http5xx(503), now);
        assert!(d.is_available(0, now));
        d.report(0, Outcome::Http5xx(504), now);
        assert!(!d.is_available(0, now));
        // Local-origin failures are gateway errors in the default mode.
        d.report(1, Outcome::LocalOriginFailure, now);
        d.report(1, Outcome::LocalOriginFailure, now);
        assert_eq!(d.endpoint_stats(1, now).unwrap().consecutive_gateway, 0);
        assert_eq!(d.ejections_overflow(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_threshold_disables() {
        let d = detector(five_xx(0), 1);
        fail(&d, 0, 100);
        assert!(d.is_available(0, Instant::now()));
        assert_eq!(d.ejections(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn local_origin_failures_count_as_5xx_unless_split() {
        let config = OutlierConfig {
            max_ejection_percent: 100,
            ..five_xx(2)
        };
        let d = detector(config.clone(), 2);
        let now = Instant::now();
        d.report(0, Outcome::LocalOriginFailure, now);
        let stats = d.endpoint_stats(0, now).unwrap();
        assert_eq!(
            (
                stats.consecutive_5xx,
                stats.consecutive_gateway,
                stats.consecutive_local
            ),
            (1, 1, 0)
        );
        d.report(0, Outcome::Http5xx(500), now);
        assert!(!d.is_available(0, now));

        let split = OutlierConfig {
            split_external_local_origin_errors: true,
            consecutive_local_origin_failures: Some(3),
            ..config
        };
        let d = detector(split, 2);
        // Local failures do not touch the 5xx counter...
        d.report(0, Outcome::LocalOriginFailure, now);
        d.report(0, Outcome::Http5xx(500), now);
        d.report(0, Outcome::LocalOriginFailure, now);
        assert!(d.is_available(0, now));
        let stats = d.endpoint_stats(0, now).unwrap();
        assert_eq!((stats.consecutive_5xx, stats.consecutive_local), (1, 1));
        // ...a response (even a 5xx) restarts the local count...
        d.report(0, Outcome::LocalOriginFailure, now);
        d.report(0, Outcome::LocalOriginFailure, now);
        assert!(!d.is_available(0, now));
        // ...and upstream 5xx eject on their own threshold.
        fail(&d, 1, 2);
        assert!(!d.is_available(1, now));
        assert!(d.all_ejected(now));
    }

    #[tokio::test(start_paused = true)]
    async fn panic_mode_makes_every_endpoint_available() {
        let config = OutlierConfig {
            max_ejection_percent: 100,
            min_health_percent: 50,
            ..five_xx(1)
        };
        let d = detector(config, 3);
        fail(&d, 0, 1);
        // 2 of 3 healthy (66 %) is not below 50 %: no panic.
        assert_eq!(available(&d), [1, 2]);
        fail(&d, 1, 1);
        // 1 of 3 (33 %): panic, everyone is used.
        assert_eq!(available(&d), [0, 1, 2]);
        assert!(d.is_available(0, Instant::now()));
        assert_eq!(d.ejected(Instant::now()), 2);
        fail(&d, 2, 1);
        assert!(d.all_ejected(Instant::now()));
        assert_eq!(available(&d), [0, 1, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn all_ejected_without_panic_mode() {
        let config = OutlierConfig {
            max_ejection_percent: 100,
            ..five_xx(1)
        };
        let d = detector(config, 2);
        fail(&d, 0, 1);
        assert!(!d.all_ejected(Instant::now()));
        fail(&d, 1, 1);
        assert!(d.all_ejected(Instant::now()));
        assert!(available(&d).is_empty());
        advance(30 * SECOND).await;
        assert!(!d.all_ejected(Instant::now()));
        assert_eq!(available(&d), [0, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn multiplier_decays_while_healthy() {
        let d = detector(five_xx(1), 1);
        fail(&d, 0, 1);
        advance(30 * SECOND).await;
        fail(&d, 0, 1);
        let stats = d.endpoint_stats(0, Instant::now()).unwrap();
        assert_eq!(stats.ejection_multiplier, 2);
        advance(60 * SECOND).await;

        // One healthy interval: 2 → 1; the next ejection is 2 × base again.
        advance(10 * SECOND).await;
        d.sweep(Instant::now());
        assert_eq!(
            d.endpoint_stats(0, Instant::now())
                .unwrap()
                .ejection_multiplier,
            1
        );
        let start = Instant::now();
        fail(&d, 0, 1);
        let until = d.endpoint_stats(0, start).unwrap().ejected_until.unwrap();
        assert_eq!(until - start, 60 * SECOND);

        // Two healthy intervals after that: 2 → 0; the next ejection is the base.
        advance(60 * SECOND + 20 * SECOND).await;
        d.sweep(Instant::now());
        d.sweep(Instant::now());
        assert_eq!(
            d.endpoint_stats(0, Instant::now())
                .unwrap()
                .ejection_multiplier,
            0
        );
        let start = Instant::now();
        fail(&d, 0, 1);
        let until = d.endpoint_stats(0, start).unwrap().ejected_until.unwrap();
        assert_eq!(until - start, 30 * SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn decay_needs_no_sweep() {
        let d = detector(five_xx(1), 1);
        for _ in 0..3 {
            let start = Instant::now();
            fail(&d, 0, 1);
            let until = d.endpoint_stats(0, start).unwrap().ejected_until.unwrap();
            advance(until - start).await;
        }
        assert_eq!(
            d.endpoint_stats(0, Instant::now())
                .unwrap()
                .ejection_multiplier,
            3
        );
        advance(10 * SECOND).await;
        let start = Instant::now();
        fail(&d, 0, 1);
        let until = d.endpoint_stats(0, start).unwrap().ejected_until.unwrap();
        assert_eq!(until - start, 90 * SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn ejected_endpoint_ignores_further_thresholds_and_restarts_counting() {
        let d = detector(five_xx(2), 3);
        fail(&d, 0, 2);
        fail(&d, 0, 5);
        assert_eq!((d.ejections(), d.ejections_overflow()), (1, 0));
        advance(30 * SECOND).await;
        // Counters restart when it returns: one failure is not enough.
        fail(&d, 0, 1);
        assert!(d.is_available(0, Instant::now()));
        fail(&d, 0, 1);
        assert!(!d.is_available(0, Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_endpoints_and_empty_clusters_do_not_panic() {
        let d = detector(OutlierConfig::default(), 0);
        d.report(3, Outcome::LocalOriginFailure, Instant::now());
        assert!(!d.is_available(3, Instant::now()));
        assert!(!d.all_ejected(Instant::now()));
        assert!(available(&d).is_empty());
        assert!(d.endpoint_stats(0, Instant::now()).is_none());
        assert!(d.stats(Instant::now()).is_empty());
        d.sweep(Instant::now());

        let d = detector(five_xx(1), 2);
        assert_eq!(d.stats(Instant::now()).len(), 2);
        assert!(d.endpoint_stats(5, Instant::now()).is_none());
    }
}
