//! [`CanaryController`]: runs the analysis of every Canary in a [`LiveSidecar`]'s
//! configuration, one pass per `interval`, moving its traffic with
//! [`LiveSidecar::set_canary_routing`]; and [`CanaryBoard`], its state as the admin API shows
//! and changes it (`/canaries`, pause, resume, promote, abort).
//!
//! A Canary that appears in the configuration starts `Initialized`; one whose spec (or
//! annotations) changes starts over with everything on the primary, as a new revision does in
//! Flagger; one that disappears is dropped with its routes. Time is tokio's, so tests run a
//! whole analysis with paused time.

use super::MeasureError;
use super::metrics::{CanaryMetrics, MetricQuery, OwnMetrics};
use super::prometheus_query::PrometheusMetrics;
use super::run::{CanaryRun, CheckResult, Event, PassOutcome, Phase};
use crate::LiveSidecar;
use mesh_route::config::{Canary, CanaryRouting, Resource};
use serde::Serialize;
use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex},
};
use tokio::{
    sync::{Notify, watch},
    time::Instant,
};

/// Events kept per canary for `/canaries`.
const EVENTS_KEPT: usize = 32;

/// How the controller judges canaries.
///
/// ```
/// use mesh_proxy::{LiveSidecar, canary::{CanaryController, CanaryOptions}};
/// # use mesh_proxy::sidecar::SidecarSettings;
/// use mesh_route::config::Config;
/// let options = CanaryOptions { metrics_server: Some("http://prometheus:9090".into()), ..CanaryOptions::default() };
/// assert!(options.metrics.is_none());
/// assert!(format!("{options:?}").contains("prometheus:9090"));
/// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
/// let controller = CanaryController::new(LiveSidecar::new(Config::default(), settings).unwrap(), options);
/// assert!(controller.board().statuses().is_empty());
/// ```
#[derive(Clone, Default)]
pub struct CanaryOptions {
    /// The Prometheus server judging canaries that name none (`spec.metricsServer` wins), as
    /// Flagger's `-metrics-server` flag; `None`: the sidecar's own counters.
    pub metrics_server: Option<String>,
    /// A source answering every check instead (tests, or an application's own).
    pub metrics: Option<Arc<dyn CanaryMetrics>>,
}

impl std::fmt::Debug for CanaryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CanaryOptions")
            .field("metrics_server", &self.metrics_server)
            .field("metrics", &self.metrics.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// Runs the canaries of a live sidecar; see the [module docs](self).
///
/// ```
/// use http_body_util::BodyExt;
/// use mesh_proxy::{LiveSidecar, canary::{CanaryController, CanaryOptions}, sidecar::SidecarSettings};
/// use mesh_route::config::Config;
/// use tower::ServiceExt;
/// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
/// # let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog, namespace: shop}\n\
/// #     spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], \
/// #     endpoints: [{address: 127.0.0.1, labels: {version: v1}}, {address: 127.0.0.2, labels: {version: v2}}]}\n---\n\
/// #     apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: catalog, namespace: shop}\n\
/// #     spec: {host: catalog, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}\n---\n\
/// #     apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: catalog, namespace: shop, \
/// #     annotations: {mesh/primary-subset: v1, mesh/canary-subset: v2}}\nspec: {targetRef: {apiVersion: apps/v1, \
/// #     kind: Deployment, name: catalog}, service: {port: 80}, analysis: {interval: 10s, stepWeight: 20}}\n";
/// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
/// // A configuration with a Canary `shop/catalog` (and its ServiceEntry and DestinationRule).
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let live = LiveSidecar::new(config, settings).unwrap();
/// let controller = CanaryController::new(live.clone(), CanaryOptions::default());
/// // Keep the stop sender: dropping it stops the controller.
/// let (stop, stopped) = tokio::sync::watch::channel(false);
/// let running = tokio::spawn(controller.run(stopped));
/// live.versions().changed().await.unwrap(); // the first pass moved traffic
///
/// // While it runs, `live.admin_service()` answers /canaries.
/// let request = http::Request::get("/canaries").body(mesh_core::body::empty()).unwrap();
/// let response = live.admin_service().oneshot(request).await.unwrap();
/// let body = response.into_body().collect().await.unwrap().to_bytes();
/// let canaries: serde_json::Value = serde_json::from_slice(&body).unwrap();
/// assert_eq!(canaries[0]["name"], "catalog");
/// assert_eq!(canaries[0]["canaryWeight"], 20);
///
/// // Stop it cleanly.
/// stop.send(true).unwrap();
/// running.await.unwrap();
/// # });
/// ```
#[derive(Debug)]
pub struct CanaryController {
    board: CanaryBoard,
}

/// The canaries' state, shared by the controller and the admin API.
///
/// ```
/// use mesh_proxy::{LiveSidecar, canary::{CanaryAction, CanaryController, CanaryOptions}};
/// # use mesh_proxy::sidecar::SidecarSettings;
/// use mesh_route::config::Config;
/// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
/// let live = LiveSidecar::new(Config::default(), settings).unwrap();
/// let board = CanaryController::new(live, CanaryOptions::default()).board().clone();
/// assert!(board.statuses().is_empty());
/// assert!(board.act("shop/catalog", CanaryAction::Pause).is_err(), "no such canary");
/// ```
#[derive(Clone, Debug)]
pub struct CanaryBoard {
    shared: Arc<Shared>,
}

struct Shared {
    live: LiveSidecar,
    options: CanaryOptions,
    own: Arc<OwnMetrics>,
    servers: Mutex<HashMap<String, Arc<PrometheusMetrics>>>,
    runs: Mutex<BTreeMap<String, Tracked>>,
    /// Wakes the controller when an admin action changed the schedule.
    wake: Notify,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CanaryBoard")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// One Canary under analysis.
struct Tracked {
    canary: Resource<Canary>,
    run: CanaryRun,
    next_pass: Instant,
    paused: bool,
    /// Bumped whenever the run changes outside a pass, so a pass measured meanwhile is dropped.
    generation: u64,
    events: VecDeque<Event>,
    source: String,
}

/// An admin action on a canary.
///
/// ```
/// use mesh_proxy::canary::CanaryAction;
/// // As `POST /canaries/NAME/ACTION` names them.
/// let actions: Vec<_> = ["pause", "resume", "promote", "abort"].into_iter().filter_map(CanaryAction::parse).collect();
/// assert_eq!(actions, [CanaryAction::Pause, CanaryAction::Resume, CanaryAction::Promote, CanaryAction::Abort]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CanaryAction {
    /// Hold the analysis where it is.
    Pause,
    /// Go on from where it was held.
    Resume,
    /// Promote now.
    Promote,
    /// Roll back now.
    Abort,
}

impl CanaryAction {
    /// The action named `name` (`pause`, `resume`, `promote`, `abort`).
    ///
    /// ```
    /// use mesh_proxy::canary::CanaryAction;
    /// assert_eq!(CanaryAction::parse("promote"), Some(CanaryAction::Promote));
    /// assert_eq!(CanaryAction::parse("Promote"), None);
    /// ```
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "pause" => Some(CanaryAction::Pause),
            "resume" => Some(CanaryAction::Resume),
            "promote" => Some(CanaryAction::Promote),
            "abort" => Some(CanaryAction::Abort),
            _ => None,
        }
    }
}

/// What `/canaries` shows of one canary.
///
/// ```
/// use mesh_proxy::{LiveSidecar, canary::{CanaryController, CanaryOptions, Phase}};
/// # use mesh_proxy::sidecar::SidecarSettings;
/// use mesh_route::config::Config;
/// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
/// # let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog, namespace: shop}\n\
/// #     spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], \
/// #     endpoints: [{address: 127.0.0.1, labels: {version: v1}}, {address: 127.0.0.2, labels: {version: v2}}]}\n---\n\
/// #     apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: catalog, namespace: shop}\n\
/// #     spec: {host: catalog, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}\n---\n\
/// #     apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: catalog, namespace: shop, \
/// #     annotations: {mesh/primary-subset: v1, mesh/canary-subset: v2}}\nspec: {targetRef: {apiVersion: apps/v1, \
/// #     kind: Deployment, name: catalog}, service: {port: 80}, analysis: {interval: 10s, stepWeight: 20}}\n";
/// // The Canary `shop/catalog` (primary subset v1, canary subset v2), 20% more traffic each 10 s pass.
/// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
/// let live = LiveSidecar::new(Config::from_yaml_str(yaml).unwrap().config, settings).unwrap();
/// let controller = CanaryController::new(live.clone(), CanaryOptions::default());
/// let board = controller.board().clone();
/// let (stop, stopped) = tokio::sync::watch::channel(false);
/// let running = tokio::spawn(controller.run(stopped));
/// live.versions().changed().await.unwrap(); // the first pass moved traffic
/// let status = &board.statuses()[0];
/// assert_eq!((status.phase, status.canary_weight, status.primary_weight), (Phase::Progressing, 20, 80));
/// assert_eq!(status.metrics_source, "sidecar");
/// stop.send(true).unwrap();
/// running.await.unwrap();
/// # });
/// ```
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The phase.
    pub phase: Phase,
    /// Percentage of requests to the canary.
    pub canary_weight: u32,
    /// Percentage of requests to the primary.
    pub primary_weight: u32,
    /// Whether requests are mirrored to the canary.
    pub mirror: bool,
    /// Whether requests matching `analysis.match` go to the canary.
    pub matched_to_canary: bool,
    /// Checks failed so far.
    pub failed_checks: u32,
    /// A/B or Blue/Green passes so far.
    pub iterations: u32,
    /// Held by `pause` or `spec.suspend`.
    pub paused: bool,
    /// Where the checks' values come from: `sidecar`, or the Prometheus server's address.
    pub metrics_source: String,
    /// The last pass's checks.
    pub checks: Vec<CheckResult>,
    /// Recent events, oldest first.
    pub events: Vec<Event>,
}

impl CanaryController {
    /// A controller of `live`'s canaries; the live sidecar's admin API shows them from now on.
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use mesh_proxy::{LiveSidecar, canary::{CanaryController, CanaryOptions}};
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// use tower::ServiceExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let live = LiveSidecar::new(Config::default(), settings).unwrap();
    /// let _controller = CanaryController::new(live.clone(), CanaryOptions::default());
    /// // From now on the admin API answers `/canaries`.
    /// let request = http::Request::get("/canaries").body(mesh_core::body::empty()).unwrap();
    /// let body = live.admin_service().oneshot(request).await.unwrap().into_body().collect().await.unwrap();
    /// assert_eq!(body.to_bytes(), "[]");
    /// # }
    /// ```
    pub fn new(live: LiveSidecar, options: CanaryOptions) -> Self {
        let board = CanaryBoard {
            shared: Arc::new(Shared {
                own: Arc::new(OwnMetrics::new(live.clone())),
                live: live.clone(),
                options,
                servers: Mutex::default(),
                runs: Mutex::default(),
                wake: Notify::new(),
            }),
        };
        live.attach_canaries(board.clone());
        CanaryController { board }
    }

    /// The state the admin API shows.
    ///
    /// ```
    /// use mesh_proxy::{LiveSidecar, canary::{CanaryController, CanaryOptions}};
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let controller = CanaryController::new(LiveSidecar::new(Config::default(), settings).unwrap(), CanaryOptions::default());
    /// // The board outlives `run`, which consumes the controller.
    /// let board = controller.board().clone();
    /// drop(controller);
    /// assert!(board.statuses().is_empty());
    /// ```
    pub fn board(&self) -> &CanaryBoard {
        &self.board
    }

    /// Runs every Canary's passes until a value is sent on `stop` (such as `true`) or its
    /// sender is dropped, so keep the sender for as long as the controller should run.
    ///
    /// With paused time, a whole analysis runs at once:
    ///
    /// ```
    /// use mesh_proxy::{LiveSidecar, canary::{CanaryController, CanaryOptions, Phase}};
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog, namespace: shop}\n\
    ///     spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], \
    ///     endpoints: [{address: 127.0.0.1, labels: {version: v1}}, {address: 127.0.0.2, labels: {version: v2}}]}\n---\n\
    ///     apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: catalog, namespace: shop}\n\
    ///     spec: {host: catalog, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}\n---\n\
    ///     apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: catalog, namespace: shop, \
    ///     annotations: {mesh/primary-subset: v1, mesh/canary-subset: v2}}\nspec: {targetRef: {apiVersion: apps/v1, \
    ///     kind: Deployment, name: catalog}, service: {port: 80}, skipAnalysis: true, analysis: {interval: 10s}}\n";
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let live = LiveSidecar::new(Config::from_yaml_str(yaml).unwrap().config, settings).unwrap();
    /// let controller = CanaryController::new(live.clone(), CanaryOptions::default());
    /// let board = controller.board().clone();
    /// let (stop, stopped) = tokio::sync::watch::channel(false);
    /// let running = tokio::spawn(controller.run(stopped));
    /// let mut versions = live.versions();
    /// while live.current().config().canary_routes.get("shop/catalog").map(|r| r.canary_weight) != Some(100) {
    ///     versions.changed().await.unwrap();
    /// }
    /// stop.send(true).unwrap();
    /// running.await.unwrap();
    /// assert_eq!(board.statuses()[0].phase, Phase::Finalising);
    /// # });
    /// ```
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let board = self.board;
        let mut versions = board.shared.live.versions();
        let mut reconcile = true;
        loop {
            if std::mem::take(&mut reconcile) {
                board.reconcile();
            }
            let now = Instant::now();
            let passes = async {
                for name in board.due(now) {
                    board.pass(&name, now).await;
                }
            };
            // A slow metrics server does not hold up stopping.
            tokio::select! {
                () = passes => {}
                _ = stop.changed() => return,
            }
            let next = board.next_pass();
            tokio::select! {
                _ = sleep_until(next) => {}
                changed = versions.changed() => match changed {
                    Ok(()) => reconcile = true,
                    Err(_) => return,
                },
                _ = board.shared.wake.notified() => {}
                _ = stop.changed() => return,
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl CanaryBoard {
    fn runs(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Tracked>> {
        self.shared.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every canary's status, by `namespace/name`.
    ///
    /// ```
    /// use mesh_proxy::{LiveSidecar, canary::{CanaryController, CanaryOptions}};
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let controller = CanaryController::new(LiveSidecar::new(Config::default(), settings).unwrap(), CanaryOptions::default());
    /// // Canaries appear once the controller runs and finds them in the configuration.
    /// assert_eq!(serde_json::to_string(&controller.board().statuses()).unwrap(), "[]");
    /// ```
    pub fn statuses(&self) -> Vec<CanaryStatus> {
        self.runs().values().map(Tracked::status).collect()
    }

    /// Applies `action` to the canary named `name` (`namespace/name`, or a name only one
    /// canary has); returns its status, or why nothing was done.
    ///
    /// ```
    /// use mesh_proxy::{LiveSidecar, canary::{CanaryAction, CanaryController, CanaryOptions}};
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
    /// # let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog, namespace: shop}\n\
    /// #     spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], \
    /// #     endpoints: [{address: 127.0.0.1, labels: {version: v1}}, {address: 127.0.0.2, labels: {version: v2}}]}\n---\n\
    /// #     apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: catalog, namespace: shop}\n\
    /// #     spec: {host: catalog, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}\n---\n\
    /// #     apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: catalog, namespace: shop, \
    /// #     annotations: {mesh/primary-subset: v1, mesh/canary-subset: v2}}\nspec: {targetRef: {apiVersion: apps/v1, \
    /// #     kind: Deployment, name: catalog}, service: {port: 80}, analysis: {interval: 10s, stepWeight: 10}}\n";
    /// // The Canary `shop/catalog` (primary subset v1, canary subset v2), 10% more traffic each 10 s pass.
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let live = LiveSidecar::new(Config::from_yaml_str(yaml).unwrap().config, settings).unwrap();
    /// let controller = CanaryController::new(live.clone(), CanaryOptions::default());
    /// let board = controller.board().clone();
    /// let (stop, stopped) = tokio::sync::watch::channel(false);
    /// let running = tokio::spawn(controller.run(stopped));
    /// live.versions().changed().await.unwrap(); // the analysis started
    /// let status = board.act("catalog", CanaryAction::Pause).unwrap(); // a name only one canary has
    /// assert!(status.paused);
    /// assert!(board.act("shop/cart", CanaryAction::Pause).is_err());
    /// stop.send(true).unwrap();
    /// running.await.unwrap();
    /// # });
    /// ```
    pub fn act(&self, name: &str, action: CanaryAction) -> Result<CanaryStatus, CanaryLookupError> {
        let now = Instant::now();
        let mut runs = self.runs();
        let key = find(&runs, name)?;
        let tracked = runs
            .get_mut(&key)
            .ok_or_else(|| CanaryLookupError::NotFound(name.to_owned()))?;
        let outcome = match action {
            CanaryAction::Pause => {
                tracked.paused = true;
                tracked.record(vec![Event::normal(format!("{} paused", tracked.label()))]);
                PassOutcome::default()
            }
            CanaryAction::Resume => {
                if tracked.paused {
                    tracked.paused = false;
                    tracked.next_pass = now + tracked.canary.spec.interval();
                    tracked.record(vec![Event::normal(format!("{} resumed", tracked.label()))]);
                }
                PassOutcome::default()
            }
            CanaryAction::Promote => {
                tracked.paused = false;
                tracked.next_pass = now;
                tracked.run.promote()
            }
            CanaryAction::Abort => {
                tracked.paused = false;
                tracked.run.abort()
            }
        };
        tracked.generation += 1;
        self.apply(&key, tracked, outcome);
        let status = tracked.status();
        drop(runs);
        self.shared.wake.notify_one();
        Ok(status)
    }

    /// Starts, restarts and drops runs to match the configuration in force.
    fn reconcile(&self) {
        let config = self.shared.live.current().config().clone();
        let now = Instant::now();
        let mut runs = self.runs();
        runs.retain(|name, tracked| {
            let kept = config
                .canaries
                .iter()
                .any(|c| c.meta.qualified_name() == *name);
            if !kept {
                self.source(&tracked.canary).forget(&tracked.canary);
                tracing::info!(canary = %name, "canary removed from the configuration");
            }
            kept
        });
        for canary in &config.canaries {
            let name = canary.meta.qualified_name();
            if let Some(tracked) = runs.get_mut(&name)
                && Canary::same_revision(&tracked.canary, canary)
            {
                // `suspend` holds or releases the analysis where it is.
                if tracked.canary.spec.suspend != canary.spec.suspend {
                    tracked.paused = canary.spec.suspend;
                    tracked.next_pass = now + canary.spec.interval();
                    tracked.canary = canary.clone();
                }
                continue;
            }
            let restarted = runs.remove(&name);
            let source = self.source(canary);
            source.forget(canary);
            source.sample(canary, now);
            let label = flagger_name(canary);
            let mut tracked = Tracked {
                canary: canary.clone(),
                run: CanaryRun::new(label.clone()),
                next_pass: now + canary.spec.interval(),
                paused: canary.spec.suspend,
                generation: restarted.as_ref().map_or(0, |t| t.generation + 1),
                events: restarted.map(|t| t.events).unwrap_or_default(),
                source: self.source_name(canary),
            };
            let message = if tracked.events.is_empty() {
                format!("{label} initialized")
            } else {
                format!("New revision detected! Restarting analysis for {label}")
            };
            tracked.record(vec![Event::normal(message)]);
            // Traffic starts on the primary, whatever an earlier configuration had.
            if config.canary_routes.get(&name).copied().unwrap_or_default()
                != CanaryRouting::default()
            {
                let outcome = PassOutcome {
                    routing: Some(CanaryRouting::default()),
                    events: Vec::new(),
                };
                self.apply(&name, &mut tracked, outcome);
            }
            runs.insert(name, tracked);
        }
    }

    /// Canaries whose pass is due at `now`.
    fn due(&self, now: Instant) -> Vec<String> {
        self.runs()
            .iter()
            .filter(|(_, t)| t.active() && t.next_pass <= now)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// When the next pass is due, if any is.
    fn next_pass(&self) -> Option<Instant> {
        self.runs()
            .values()
            .filter(|t| t.active())
            .map(|t| t.next_pass)
            .min()
    }

    /// One pass of canary `name`: its checks when due, then its next step.
    async fn pass(&self, name: &str, now: Instant) {
        let (canary, needs_checks, generation) = {
            let mut runs = self.runs();
            let Some(tracked) = runs.get_mut(name) else {
                return;
            };
            tracked.next_pass = now + tracked.canary.spec.interval();
            (
                tracked.canary.clone(),
                tracked.run.needs_checks(&tracked.canary.spec),
                tracked.generation,
            )
        };
        let source = self.source(&canary);
        let checks = if needs_checks {
            check(&*source, &canary, now).await
        } else {
            Vec::new()
        };
        source.sample(&canary, now);
        // A configuration swapped in while the checks ran may have changed the Canary: the
        // restart that follows drops this pass.
        let still_configured = self
            .shared
            .live
            .peek()
            .config()
            .canaries
            .iter()
            .any(|c| Canary::same_revision(c, &canary));
        let mut runs = self.runs();
        let Some(tracked) = runs.get_mut(name) else {
            return;
        };
        if tracked.generation != generation || !still_configured {
            return;
        }
        let outcome = tracked.run.pass(&canary.spec, checks);
        self.apply(name, tracked, outcome);
    }

    /// Puts a pass's routing in force and records its events. The configuration is compiled
    /// with the runs locked (a few milliseconds), so that routings go in force in the order the
    /// runs chose them.
    fn apply(&self, name: &str, tracked: &mut Tracked, outcome: PassOutcome) {
        let mut events = outcome.events;
        if let Some(routing) = outcome.routing
            && let Err(error) = self.shared.live.set_canary_routing(name, routing)
        {
            // The run goes on from the routing actually in force.
            tracked.run.routing = self
                .shared
                .live
                .peek()
                .config()
                .canary_routes
                .get(name)
                .copied()
                .unwrap_or_default();
            events.push(Event::warning(format!(
                "{}: the new routing could not be put in force: {error}",
                tracked.label()
            )));
        }
        tracked.record(events);
    }

    /// The metrics source of `canary`.
    fn source(&self, canary: &Resource<Canary>) -> Arc<dyn CanaryMetrics> {
        if let Some(metrics) = &self.shared.options.metrics {
            return metrics.clone();
        }
        let server = canary.spec.metrics_server.as_ref().or(self
            .shared
            .options
            .metrics_server
            .as_ref());
        let Some(server) = server else {
            return self.shared.own.clone();
        };
        let mut servers = self
            .shared
            .servers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(client) = servers.get(server) {
            return client.clone();
        }
        match PrometheusMetrics::new(server) {
            Ok(client) => {
                let client = Arc::new(client);
                servers.insert(server.clone(), client.clone());
                client
            }
            Err(error) => Arc::new(Unusable(MeasureError::Unavailable(error.to_string()))),
        }
    }

    fn source_name(&self, canary: &Resource<Canary>) -> String {
        if self.shared.options.metrics.is_some() {
            return "custom".to_owned();
        }
        canary
            .spec
            .metrics_server
            .clone()
            .or_else(|| self.shared.options.metrics_server.clone())
            .unwrap_or_else(|| "sidecar".to_owned())
    }
}

/// `name.namespace`, as Flagger names a canary in its events.
fn flagger_name(canary: &Resource<Canary>) -> String {
    format!(
        "{}.{}",
        canary.meta.name,
        canary.namespace().unwrap_or("default")
    )
}

/// The key of the canary `name` names: itself, or the one canary with that name.
fn find(runs: &BTreeMap<String, Tracked>, name: &str) -> Result<String, CanaryLookupError> {
    if runs.contains_key(name) {
        return Ok(name.to_owned());
    }
    let named: Vec<&String> = runs
        .iter()
        .filter(|(_, t)| t.canary.meta.name == name)
        .map(|(key, _)| key)
        .collect();
    match named.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(CanaryLookupError::NotFound(name.to_owned())),
        _ => Err(CanaryLookupError::Ambiguous(name.to_owned())),
    }
}

/// Why [`CanaryBoard::act`] found no canary to act on.
///
/// ```
/// use mesh_proxy::canary::CanaryLookupError;
/// assert_eq!(CanaryLookupError::NotFound("cart".into()).to_string(), "no canary named cart");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CanaryLookupError {
    /// No canary has this name (`namespace/name`, or a name alone).
    #[error("no canary named {0}")]
    NotFound(String),
    /// Canaries of several namespaces have this name.
    #[error("several canaries are named {0}; give namespace/name")]
    Ambiguous(String),
}

/// Runs every check of `canary` (none: the pass passes, as in Flagger).
async fn check(
    source: &dyn CanaryMetrics,
    canary: &Resource<Canary>,
    now: Instant,
) -> Vec<CheckResult> {
    let mut results = Vec::new();
    for metric in &canary.spec.analysis.metrics {
        let query = MetricQuery {
            canary,
            metric: &metric.name,
            window: metric.window(),
        };
        let range = metric.range();
        let result = match source.measure(query, now).await {
            Ok(value) if range.admits(value) => CheckResult {
                name: metric.name.clone(),
                value: Some(value),
                passed: true,
                reason: None,
            },
            Ok(value) => CheckResult {
                name: metric.name.clone(),
                value: Some(value),
                passed: false,
                reason: Some(format!(
                    "{value:.2} is outside the threshold range{}{}",
                    range.min.map(|m| format!(" min {m}")).unwrap_or_default(),
                    range.max.map(|m| format!(" max {m}")).unwrap_or_default()
                )),
            },
            Err(error) => CheckResult {
                name: metric.name.clone(),
                value: None,
                passed: false,
                reason: Some(error.to_string()),
            },
        };
        results.push(result);
    }
    results
}

/// A source that cannot answer (an unusable metrics server address): every check fails.
struct Unusable(MeasureError);

impl CanaryMetrics for Unusable {
    fn measure<'a>(&'a self, _: MetricQuery<'a>, _: Instant) -> super::metrics::MeasureFuture<'a> {
        Box::pin(std::future::ready(Err(self.0.clone())))
    }
}

impl Tracked {
    fn label(&self) -> String {
        flagger_name(&self.canary)
    }

    /// Whether passes are due: not held and not over.
    fn active(&self) -> bool {
        !self.paused && !self.run.phase.is_final()
    }

    /// Logs `events` and keeps the latest.
    fn record(&mut self, events: Vec<Event>) {
        for event in events {
            let canary = self.canary.meta.qualified_name();
            if event.kind == "Warning" {
                tracing::warn!(%canary, phase = ?self.run.phase, "{}", event.message);
            } else {
                tracing::info!(%canary, phase = ?self.run.phase, "{}", event.message);
            }
            if self.events.len() == EVENTS_KEPT {
                self.events.pop_front();
            }
            self.events.push_back(event);
        }
    }

    fn status(&self) -> CanaryStatus {
        let routing = self.run.routing;
        CanaryStatus {
            name: self.canary.meta.name.clone(),
            namespace: self.canary.meta.namespace.clone(),
            phase: self.run.phase,
            canary_weight: routing.canary_weight,
            primary_weight: 100 - routing.canary_weight.min(100),
            mirror: routing.mirror,
            matched_to_canary: routing.matched_to_canary,
            failed_checks: self.run.failed_checks,
            iterations: self.run.iterations,
            paused: self.paused,
            metrics_source: self.source.clone(),
            checks: self.run.checks.clone(),
            events: self.events.iter().cloned().collect(),
        }
    }
}
