//! Where a canary's checks get their values: [`CanaryMetrics`], with [`OwnMetrics`] (the
//! sidecar's own counters, the default) and [`PrometheusMetrics`](super::PrometheusMetrics)
//! (Flagger's queries against a Prometheus server, to judge a fleet of sidecars together).
//!
//! The sidecar's own view of a canary is what it sent there: the answers of every attempt to
//! the canary destination's clusters ([`ResponseTally`](crate::response_tally::ResponseTally)),
//! mirrored copies included. A reading is taken at each pass; a metric over a window of `W` is
//! the difference between now and the latest reading at least `W` old (or the oldest there is),
//! as Prometheus' `rate` over `[W]` would see it.

use super::{MeasureError, UnknownMetric};
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
/// use mesh_proxy::canary::{CanaryMetrics, MeasureError, Measurement, MetricQuery, OwnMetrics};
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
/// assert!(matches!(measured, Err(MeasureError::NoValues(_))), "no traffic reached the canary");
/// # }
/// ```
pub type Measurement = Result<f64, MeasureError>;

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
    /// Notes the state of `canary`'s traffic now; called when the analysis starts and at the
    /// end of each pass, after its checks, so that the next pass's checks measure the traffic
    /// since. Sources that keep no history ignore it.
    ///
    /// ```
    /// use mesh_proxy::{LiveSidecar, canary::{CanaryController, CanaryMetrics, CanaryOptions, MeasureFuture, MetricQuery}};
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::{Canary, Config, Resource};
    /// use std::{sync::{Arc, Mutex}, time::Duration};
    /// use tokio::time::Instant;
    /// /// Notes what the controller asks of it; every canary is healthy.
    /// #[derive(Default)]
    /// struct Log(Mutex<Vec<String>>);
    /// impl CanaryMetrics for Log {
    ///     fn sample(&self, canary: &Resource<Canary>, _now: Instant) {
    ///         self.0.lock().unwrap().push(format!("sample {}", canary.meta.name));
    ///     }
    ///     fn measure<'a>(&'a self, query: MetricQuery<'a>, _now: Instant) -> MeasureFuture<'a> {
    ///         self.0.lock().unwrap().push(format!("measure {}", query.metric));
    ///         Box::pin(std::future::ready(Ok(100.0)))
    ///     }
    /// }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
    /// # let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog, namespace: shop}\n\
    /// #     spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], \
    /// #     endpoints: [{address: 127.0.0.1, labels: {version: v1}}, {address: 127.0.0.2, labels: {version: v2}}]}\n---\n\
    /// #     apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: catalog, namespace: shop}\n\
    /// #     spec: {host: catalog, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}\n---\n\
    /// #     apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: catalog, namespace: shop, \
    /// #     annotations: {mesh/primary-subset: v1, mesh/canary-subset: v2}}\nspec: {targetRef: {apiVersion: apps/v1, \
    /// #     kind: Deployment, name: catalog}, service: {port: 80}, analysis: {interval: 10s, stepWeight: 20, \
    /// #     metrics: [{name: request-success-rate, thresholdRange: {min: 99}, interval: 1m}]}}\n";
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// // A configuration with a Canary `shop/catalog` checking `request-success-rate` every 10 s.
    /// let live = LiveSidecar::new(Config::from_yaml_str(yaml).unwrap().config, settings).unwrap();
    /// let log = Arc::new(Log::default());
    /// let options = CanaryOptions { metrics: Some(log.clone()), ..CanaryOptions::default() };
    /// let (_stop, stopped) = tokio::sync::watch::channel(false);
    /// tokio::spawn(CanaryController::new(live, options).run(stopped));
    /// // The start, then two passes: the first moves traffic, the second checks it too.
    /// tokio::time::sleep(Duration::from_secs(25)).await;
    /// let noted = log.0.lock().unwrap().clone();
    /// assert_eq!(noted, ["sample catalog", "sample catalog", "measure request-success-rate", "sample catalog"]);
    /// # });
    /// ```
    fn sample(&self, canary: &Resource<Canary>, now: Instant) {
        let _ = (canary, now);
    }

    /// Forgets what was noted of `canary` (its analysis restarts or ends).
    ///
    /// ```
    /// use mesh_proxy::{LiveSidecar, canary::{CanaryController, CanaryMetrics, CanaryOptions, MeasureFuture, MetricQuery}};
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::{Canary, Config, Resource};
    /// use std::{sync::{Arc, Mutex}, time::Duration};
    /// use tokio::time::Instant;
    /// /// Notes the canaries it is told to forget; every canary is healthy.
    /// #[derive(Default)]
    /// struct Forgotten(Mutex<Vec<String>>);
    /// impl CanaryMetrics for Forgotten {
    ///     fn forget(&self, canary: &Resource<Canary>) {
    ///         self.0.lock().unwrap().push(canary.meta.qualified_name());
    ///     }
    ///     fn measure<'a>(&'a self, _query: MetricQuery<'a>, _now: Instant) -> MeasureFuture<'a> {
    ///         Box::pin(std::future::ready(Ok(100.0)))
    ///     }
    /// }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
    /// # let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog, namespace: shop}\n\
    /// #     spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], \
    /// #     endpoints: [{address: 127.0.0.1, labels: {version: v1}}, {address: 127.0.0.2, labels: {version: v2}}]}\n---\n\
    /// #     apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: catalog, namespace: shop}\n\
    /// #     spec: {host: catalog, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}\n---\n\
    /// #     apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: catalog, namespace: shop, \
    /// #     annotations: {mesh/primary-subset: v1, mesh/canary-subset: v2}}\nspec: {targetRef: {apiVersion: apps/v1, \
    /// #     kind: Deployment, name: catalog}, service: {port: 80}, analysis: {interval: 10s, stepWeight: 20, \
    /// #     metrics: [{name: request-success-rate, thresholdRange: {min: 99}, interval: 1m}]}}\n";
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// // A configuration with a Canary `shop/catalog` checking `request-success-rate` every 10 s.
    /// let live = LiveSidecar::new(Config::from_yaml_str(yaml).unwrap().config, settings).unwrap();
    /// let forgotten = Arc::new(Forgotten::default());
    /// let options = CanaryOptions { metrics: Some(forgotten.clone()), ..CanaryOptions::default() };
    /// let (_stop, stopped) = tokio::sync::watch::channel(false);
    /// tokio::spawn(CanaryController::new(live.clone(), options).run(stopped));
    /// tokio::time::sleep(Duration::from_secs(1)).await;
    /// assert_eq!(*forgotten.0.lock().unwrap(), ["shop/catalog"], "the analysis starts afresh");
    /// live.swap(Config::default()).unwrap(); // the Canary is removed: its analysis ends
    /// tokio::time::sleep(Duration::from_secs(1)).await;
    /// assert_eq!(*forgotten.0.lock().unwrap(), ["shop/catalog", "shop/catalog"]);
    /// # });
    /// ```
    fn forget(&self, canary: &Resource<Canary>) {
        let _ = canary;
    }

    /// The value of `query` now.
    ///
    /// ```
    /// use mesh_proxy::canary::{CanaryMetrics, MetricQuery, PrometheusMetrics};
    /// use mesh_route::config::{ObjectMeta, Origin, Resource, canary::Canary};
    /// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// # let address = format!("http://{}", listener.local_addr().unwrap());
    /// # tokio::spawn(async move { // a Prometheus server answering one query: 99.5
    /// #     let (mut socket, _) = listener.accept().await.unwrap();
    /// #     let mut request = Vec::new();
    /// #     while !request.ends_with(b"\r\n\r\n") { request.push(socket.read_u8().await.unwrap()); }
    /// #     let answer = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"99.5"]}]}}"#;
    /// #     let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", answer.len());
    /// #     socket.write_all(format!("{head}{answer}").as_bytes()).await.unwrap();
    /// # });
    /// let mut spec = Canary::default();
    /// spec.target_ref.name = "catalog".into();
    /// let meta = ObjectMeta { name: "catalog".into(), namespace: Some("shop".into()), ..ObjectMeta::default() };
    /// let canary = Resource { meta, origin: Origin::new("canary.yaml", 0), spec };
    /// let prometheus = PrometheusMetrics::new(&address).unwrap(); // a loopback server answering 99.5
    /// let query = MetricQuery { canary: &canary, metric: "request-success-rate", window: std::time::Duration::from_secs(60) };
    /// assert_eq!(prometheus.measure(query, tokio::time::Instant::now()).await, Ok(99.5));
    /// let unknown = MetricQuery { metric: "request-count", ..query };
    /// let refused = prometheus.measure(unknown, tokio::time::Instant::now()).await.unwrap_err();
    /// assert_eq!(refused.to_string(), "unknown metric request-count");
    /// # }
    /// ```
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
/// let refused = own.measure(query, tokio::time::Instant::now()).await.unwrap_err();
/// assert_eq!(refused, mesh_proxy::canary::UnknownMetric("request-count".into()).into());
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
            other => {
                let unknown = UnknownMetric(other.to_owned()).into();
                return Box::pin(std::future::ready(Err(unknown)));
            }
        };
        let measured = value.ok_or_else(|| {
            MeasureError::NoValues(format!(
                "{} over the last {:?}: the canary is probably not receiving traffic",
                query.metric, query.window
            ))
        });
        Box::pin(std::future::ready(measured))
    }
}
