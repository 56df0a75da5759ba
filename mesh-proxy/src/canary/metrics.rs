//! Where a canary's checks get their values: [`CanaryMetrics`], with [`OwnMetrics`] (the
//! sidecar's own counters, the default) and [`PrometheusMetrics`](super::PrometheusMetrics)
//! (Flagger's queries against a Prometheus server, to judge a fleet of sidecars together).
//!
//! The sidecar's own view of a canary is what it sent there: the answers of every attempt to
//! the canary destination's clusters ([`ResponseTally`](crate::response_tally::ResponseTally)),
//! mirrored copies included. A reading is taken at each pass; a metric over a window of `W` is
//! the difference between now and the latest reading at least `W` old (or the oldest there is),
//! as Prometheus' `rate` over `[W]` would see it.

use crate::{LiveSidecar, response_tally::TallySnapshot};
use mesh_route::{
    config::{
        Canary, Resource,
        canary::{REQUEST_DURATION, REQUEST_SUCCESS_RATE},
    },
    host::canonical_host,
};
use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    pin::Pin,
    sync::Mutex,
    time::Duration,
};
use tokio::time::Instant;

/// A metric's value, or why there is none (no data, a failed query): a failed check either way.
///
/// ```
/// use mesh_proxy::canary::{CanaryMetrics, Measurement, MetricQuery, OwnMetrics};
/// use mesh_proxy::LiveSidecar;
/// # use mesh_proxy::sidecar::SidecarSettings;
/// use mesh_route::config::{Config, ObjectMeta, Origin, Resource, canary::Canary};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut spec = Canary::default();
/// spec.target_ref.name = "catalog".into();
/// let meta = ObjectMeta { name: "catalog".into(), namespace: Some("shop".into()), ..ObjectMeta::default() };
/// let canary = Resource { meta, origin: Origin::new("canary.yaml", 0), spec };
/// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
/// let own = OwnMetrics::new(LiveSidecar::new(Config::default(), settings).unwrap());
/// let query = MetricQuery { canary: &canary, metric: "request-success-rate", window: std::time::Duration::from_secs(60) };
/// let measured: Measurement = own.measure(query, tokio::time::Instant::now()).await;
/// assert!(measured.unwrap_err().starts_with("no values found"), "no traffic reached the canary");
/// # }
/// ```
pub type Measurement = Result<f64, String>;

/// A boxed measurement in progress.
///
/// ```
/// use mesh_proxy::canary::{CanaryMetrics, MeasureFuture, MetricQuery};
/// use mesh_route::config::{ObjectMeta, Origin, Resource, canary::Canary};
/// struct Always(f64);
/// impl CanaryMetrics for Always {
///     fn measure<'a>(&'a self, _query: MetricQuery<'a>, _now: tokio::time::Instant) -> MeasureFuture<'a> {
///         Box::pin(std::future::ready(Ok(self.0)))
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut spec = Canary::default();
/// spec.target_ref.name = "catalog".into();
/// let meta = ObjectMeta { name: "catalog".into(), namespace: Some("shop".into()), ..ObjectMeta::default() };
/// let canary = Resource { meta, origin: Origin::new("canary.yaml", 0), spec };
/// let query = MetricQuery { canary: &canary, metric: "request-duration", window: std::time::Duration::from_secs(30) };
/// assert_eq!(Always(42.0).measure(query, tokio::time::Instant::now()).await, Ok(42.0));
/// # }
/// ```
pub type MeasureFuture<'a> = Pin<Box<dyn Future<Output = Measurement> + Send + 'a>>;

/// What a check asks: one built-in metric of one Canary over a window.
///
/// ```
/// use mesh_proxy::canary::{MetricQuery, flagger_query};
/// use mesh_route::config::{ObjectMeta, Origin, Resource, canary::Canary};
/// use std::time::Duration;
/// let mut spec = Canary::default();
/// spec.target_ref.name = "catalog".into();
/// let meta = ObjectMeta { name: "catalog".into(), namespace: Some("shop".into()), ..ObjectMeta::default() };
/// let canary = Resource { meta, origin: Origin::new("canary.yaml", 0), spec };
/// let query = MetricQuery { canary: &canary, metric: "request-success-rate", window: Duration::from_secs(60) };
/// let promql = flagger_query(query).unwrap();
/// assert!(promql.contains(r#"destination_workload=~"catalog""#), "{promql}");
/// assert!(promql.contains("[60s]"), "{promql}");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct MetricQuery<'a> {
    /// The Canary judged.
    pub canary: &'a Resource<Canary>,
    /// `request-success-rate` or `request-duration`.
    pub metric: &'a str,
    /// The window (the metric's `interval`).
    pub window: Duration,
}

/// A source of canary metrics.
///
/// A source judging every canary healthy (as a test might use), given to the controller:
///
/// ```
/// use mesh_proxy::{LiveSidecar, canary::{CanaryController, CanaryMetrics, CanaryOptions, MeasureFuture, MetricQuery}};
/// # use mesh_proxy::sidecar::SidecarSettings;
/// use mesh_route::config::Config;
/// use std::sync::Arc;
/// struct Healthy;
/// impl CanaryMetrics for Healthy {
///     fn measure<'a>(&'a self, query: MetricQuery<'a>, _now: tokio::time::Instant) -> MeasureFuture<'a> {
///         let value = if query.metric == "request-success-rate" { 100.0 } else { 1.0 };
///         Box::pin(std::future::ready(Ok(value)))
///     }
/// }
/// let options = CanaryOptions { metrics: Some(Arc::new(Healthy)), ..CanaryOptions::default() };
/// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
/// let controller = CanaryController::new(LiveSidecar::new(Config::default(), settings).unwrap(), options);
/// assert!(controller.board().statuses().is_empty());
/// ```
pub trait CanaryMetrics: Send + Sync {
    /// Notes the state of `canary`'s traffic now; called at each pass before the checks, and
    /// when the analysis starts. Sources that keep no history ignore it.
    fn sample(&self, canary: &Resource<Canary>, now: Instant) {
        let _ = (canary, now);
    }

    /// Forgets what was noted of `canary` (its analysis restarts or ends).
    fn forget(&self, canary: &Resource<Canary>) {
        let _ = canary;
    }

    /// The value of `query` now.
    fn measure<'a>(&'a self, query: MetricQuery<'a>, now: Instant) -> MeasureFuture<'a>;
}

/// The sidecar's own counters of the canary destination; see the [module docs](self).
///
/// ```
/// use mesh_proxy::canary::{CanaryMetrics, MetricQuery, OwnMetrics};
/// use mesh_proxy::LiveSidecar;
/// # use mesh_proxy::sidecar::SidecarSettings;
/// use mesh_route::config::{Config, ObjectMeta, Origin, Resource, canary::Canary};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut spec = Canary::default();
/// spec.target_ref.name = "catalog".into();
/// let meta = ObjectMeta { name: "catalog".into(), namespace: Some("shop".into()), ..ObjectMeta::default() };
/// let canary = Resource { meta, origin: Origin::new("canary.yaml", 0), spec };
/// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
/// let own = OwnMetrics::new(LiveSidecar::new(Config::default(), settings).unwrap());
/// let query = MetricQuery { canary: &canary, metric: "request-count", window: std::time::Duration::from_secs(60) };
/// assert_eq!(own.measure(query, tokio::time::Instant::now()).await, Err("unknown metric request-count".to_owned()));
/// # }
/// ```
#[derive(Debug)]
pub struct OwnMetrics {
    live: LiveSidecar,
    readings: Mutex<HashMap<String, VecDeque<(Instant, TallySnapshot)>>>,
}

/// Readings kept per canary: enough for any window of up to this many passes.
const READINGS_KEPT: usize = 64;

impl OwnMetrics {
    /// Counters of the clusters `live` sends to.
    ///
    /// ```
    /// use mesh_proxy::canary::{CanaryMetrics, MetricQuery, OwnMetrics};
    /// use mesh_proxy::LiveSidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::{Config, ObjectMeta, Origin, Resource, canary::Canary};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut spec = Canary::default();
    /// spec.target_ref.name = "catalog".into();
    /// let meta = ObjectMeta { name: "catalog".into(), namespace: Some("shop".into()), ..ObjectMeta::default() };
    /// let canary = Resource { meta, origin: Origin::new("canary.yaml", 0), spec };
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let own = OwnMetrics::new(LiveSidecar::new(Config::default(), settings).unwrap());
    /// own.sample(&canary, tokio::time::Instant::now()); // a reading to measure windows from
    /// let query = MetricQuery { canary: &canary, metric: "request-duration", window: std::time::Duration::from_secs(30) };
    /// assert!(own.measure(query, tokio::time::Instant::now()).await.is_err(), "no traffic yet");
    /// # }
    /// ```
    pub fn new(live: LiveSidecar) -> Self {
        OwnMetrics {
            live,
            readings: Mutex::default(),
        }
    }

    /// The answers of every attempt sent to `canary`'s canary destination so far.
    fn reading(&self, canary: &Resource<Canary>) -> TallySnapshot {
        let destination = Canary::canary(canary);
        let host = canonical_host(&destination.host, canary.namespace());
        let sidecar = self.live.peek();
        sidecar
            .registry()
            .clusters()
            .iter()
            .filter(|c| {
                *c.cluster.host == *host
                    && c.cluster.subset.as_deref() == destination.subset.as_deref()
            })
            .fold(TallySnapshot::default(), |sum, c| {
                sum.plus(&c.stats.responses().snapshot())
            })
    }

    /// The traffic of `canary` over the last `window`.
    fn window(&self, canary: &Resource<Canary>, window: Duration, now: Instant) -> TallySnapshot {
        let current = self.reading(canary);
        let readings = self.readings.lock().unwrap_or_else(|e| e.into_inner());
        let kept = readings.get(&canary.meta.qualified_name());
        let baseline = kept.and_then(|kept| {
            kept.iter()
                .rev()
                .find(|(at, _)| now.saturating_duration_since(*at) >= window)
                .or_else(|| kept.front())
        });
        match baseline {
            Some((_, earlier)) => current.since(earlier),
            None => current,
        }
    }
}

impl CanaryMetrics for OwnMetrics {
    fn sample(&self, canary: &Resource<Canary>, now: Instant) {
        let reading = self.reading(canary);
        let mut readings = self.readings.lock().unwrap_or_else(|e| e.into_inner());
        let kept = readings.entry(canary.meta.qualified_name()).or_default();
        if kept.len() == READINGS_KEPT {
            kept.pop_front();
        }
        kept.push_back((now, reading));
    }

    fn forget(&self, canary: &Resource<Canary>) {
        let mut readings = self.readings.lock().unwrap_or_else(|e| e.into_inner());
        readings.remove(&canary.meta.qualified_name());
    }

    fn measure<'a>(&'a self, query: MetricQuery<'a>, now: Instant) -> MeasureFuture<'a> {
        let traffic = self.window(query.canary, query.window, now);
        let value = match query.metric {
            REQUEST_SUCCESS_RATE => traffic.success_rate(),
            REQUEST_DURATION => traffic.quantile(0.99),
            other => return Box::pin(std::future::ready(Err(format!("unknown metric {other}")))),
        };
        let measured = value.ok_or_else(|| {
            format!(
                "no values found for {} over the last {:?}: the canary is probably not \
                 receiving traffic",
                query.metric, query.window
            )
        });
        Box::pin(std::future::ready(measured))
    }
}
