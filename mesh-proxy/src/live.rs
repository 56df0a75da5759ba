//! [`LiveSidecar`]: a sidecar whose configuration is replaced while it serves.
//!
//! A new configuration is compiled in full beside the one serving, then swapped in atomically
//! ([`ArcSwap`]): a request takes the services of the configuration in force when it arrives
//! and keeps them to the end, so requests in flight finish under the configuration they
//! started with and new requests see the new one. A configuration that fails to compile is
//! refused whole and the current one keeps serving. Metrics go to one recorder for every
//! configuration, so counters carry on across swaps. The in-process
//! [`Mesh`](../../mesh/struct.Mesh.html) swaps the same way.
//!
//! What did not change carries over, as in Envoy: the connection pool, and each endpoint's
//! state, each cluster's circuit breaker and each port's outlier detection (ejections
//! included) where their settings are the same (see
//! [`Registry::build_after`](crate::registry::Registry::build_after)), per-cluster request
//! counters, and access logs opened with the same settings. The listeners bound at start
//! stay; a swap that adds a Sidecar `ingress` where there was none opens the inbound listener
//! then (see [`RunningSidecar::listener_updates`](crate::RunningSidecar::listener_updates)).

use crate::{
    Sidecar, StartError,
    admin::Admin,
    canary::CanaryBoard,
    config_updates::ConfigUpdates,
    gateway::GatewayError,
    listener::HttpService,
    prometheus::{PrometheusHandle, default_recorder},
    shared_stack::SharedStack,
    sidecar::{RunningSidecar, Served, SidecarOptions, SidecarSettings},
};
use arc_swap::ArcSwap;
use http::{Request, Response};
use mesh_core::{Body, BoxError, MeshError};
use mesh_route::config::{Canary, Config};
use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, OnceLock},
    task::{Context, Poll},
};
use tokio::sync::watch;
use tower::Service;

/// A sidecar whose configuration can be swapped while it serves; see the [module docs](self).
/// Cloning is cheap and every clone sees the same configuration.
///
/// ```
/// use mesh_proxy::live::LiveSidecar;
/// # use mesh_proxy::sidecar::SidecarSettings;
/// use mesh_route::config::Config;
///
/// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
/// let live = LiveSidecar::new(Config::default(), settings).unwrap();
/// assert_eq!(live.current().version(), 1);
/// assert_eq!(live.swap(Config::default()).unwrap(), 2);
/// assert_eq!(live.current().version(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct LiveSidecar {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    current: ArcSwap<Sidecar>,
    settings: SidecarSettings,
    /// Swaps one at a time, so versions follow the order configurations took effect.
    swapping: Mutex<()>,
    /// Updates applied and rejected.
    updates: Arc<ConfigUpdates>,
    /// The version in force, for whoever follows changes (the canary controller).
    versions: watch::Sender<u64>,
    /// The canary controller's state, once one runs, for the admin API.
    canaries: OnceLock<CanaryBoard>,
}

impl LiveSidecar {
    /// Builds the services for `config` (version 1). Unless `settings` names a metrics
    /// recorder, one is made here and kept for every later configuration.
    ///
    /// ```
    /// use mesh_proxy::LiveSidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let live = LiveSidecar::new(Config::default(), settings).unwrap();
    /// assert_eq!(live.current().version(), 1);
    /// assert!(live.prometheus().is_some(), "a recorder of its own, kept across swaps");
    /// ```
    pub fn new(config: Config, mut settings: SidecarSettings) -> Result<Self, StartError> {
        if settings.metrics.is_none() {
            let (recorder, handle) = default_recorder()?;
            settings.metrics = Some(recorder);
            settings.prometheus = handle;
        }
        let sidecar = Sidecar::with_settings(config, settings.clone())?;
        Ok(LiveSidecar {
            shared: Arc::new(Shared {
                current: ArcSwap::from_pointee(sidecar),
                settings,
                swapping: Mutex::new(()),
                updates: Arc::default(),
                versions: watch::Sender::new(1),
                canaries: OnceLock::new(),
            }),
        })
    }

    /// The configuration in force, compiled.
    ///
    /// ```
    /// use mesh_proxy::LiveSidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let live = LiveSidecar::new(Config::default(), settings).unwrap();
    /// let before = live.current();
    /// live.swap(Config::default()).unwrap();
    /// // The sidecar taken before the swap stays as it was.
    /// assert_eq!((before.version(), live.current().version()), (1, 2));
    /// ```
    pub fn current(&self) -> Arc<Sidecar> {
        self.shared.current.load_full()
    }

    /// The configuration in force, for a short look (no reference count taken).
    ///
    /// ```
    /// use mesh_proxy::LiveSidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let live = LiveSidecar::new(Config::default(), settings).unwrap();
    /// assert!(live.peek().config().virtual_services.is_empty());
    /// assert_eq!(live.peek().version(), 1);
    /// ```
    pub fn peek(&self) -> arc_swap::Guard<Arc<Sidecar>> {
        self.shared.current.load()
    }

    /// Compiles `config` and makes it the configuration in force; returns its version. When it
    /// does not compile, the current configuration stays and the error says why.
    ///
    /// Canaries that did not change keep the routing the canary controller gave them
    /// (`config`'s own [`canary_routes`](Config::canary_routes) win): a reloaded file does not
    /// send a canary's traffic back to its primary. A changed Canary is a new revision and
    /// starts on its primary.
    ///
    /// A configuration that does not compile is refused, and the one in force keeps serving:
    ///
    /// ```
    /// use mesh_proxy::{LiveSidecar, sidecar::SidecarSettings};
    /// use mesh_route::config::Config;
    /// let mut settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// settings.workload.namespace = Some("shop".into());
    /// let live = LiveSidecar::new(Config::default(), settings).unwrap();
    /// let strict = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: app, namespace: shop}\n\
    ///               spec: {ingress: [{port: {number: 3000, protocol: HTTP, name: http}, defaultEndpoint: '127.0.0.1:8080'}]}\n\
    ///               ---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\n\
    ///               spec: {mtls: {mode: STRICT}}\n";
    /// let error = live.swap(Config::from_yaml_str(strict).unwrap().config).unwrap_err();
    /// assert!(error.to_string().contains("STRICT"), "{error}");
    /// assert_eq!(live.current().version(), 1);
    /// assert_eq!(live.updates().rejections(), 1);
    /// ```
    pub fn swap(&self, mut config: Config) -> Result<u64, StartError> {
        self.swap_with(move |current| {
            for canary in &config.canaries {
                let name = canary.meta.qualified_name();
                let same = current
                    .canaries
                    .iter()
                    .any(|before| Canary::same_revision(before, canary));
                if same && let Some(routing) = current.canary_routes.get(&name) {
                    config.canary_routes.entry(name).or_insert(*routing);
                }
            }
            config
        })
    }

    /// Makes the configuration in force route the Canary `namespace/name` as `routing` says;
    /// returns the new version. This is the canary controller's hook: it alone moves canary
    /// traffic this way, and a configuration's own routing is otherwise kept across swaps (see
    /// [`swap`](Self::swap)).
    ///
    /// The name is not checked: routing for a name no Canary in force has is stored but routes
    /// nothing, and the next [`swap`](Self::swap) drops it.
    ///
    /// ```
    /// use mesh_proxy::{LiveSidecar, sidecar::SidecarSettings};
    /// use mesh_route::config::{CanaryRouting, Config};
    /// # let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog, namespace: shop}\n\
    /// #     spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], \
    /// #     endpoints: [{address: 127.0.0.1, labels: {version: v1}}, {address: 127.0.0.2, labels: {version: v2}}]}\n---\n\
    /// #     apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: catalog, namespace: shop}\n\
    /// #     spec: {host: catalog, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}\n---\n\
    /// #     apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: catalog, namespace: shop, \
    /// #     annotations: {mesh/primary-subset: v1, mesh/canary-subset: v2}}\nspec: {targetRef: {apiVersion: apps/v1, \
    /// #     kind: Deployment, name: catalog}, service: {port: 80}, analysis: {interval: 10s, stepWeight: 10}}\n";
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// // A configuration with the Canary `shop/catalog` (primary subset v1, canary subset v2).
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// assert_eq!(config.canaries.len(), 1);
    /// let live = LiveSidecar::new(config, settings).unwrap();
    ///
    /// // What the controller does at each step of the analysis: 30% to the canary.
    /// let routing = CanaryRouting { canary_weight: 30, matched_to_canary: false, mirror: false };
    /// assert_eq!(live.set_canary_routing("shop/catalog", routing).unwrap(), 2);
    /// let in_force = live.current();
    /// assert_eq!(in_force.version(), 2);
    /// let routed = &in_force.config().canary_routes["shop/catalog"];
    /// assert_eq!((routed.canary_weight, routed.mirror), (30, false));
    /// // The Canary's route as the data plane runs it: 70% to the primary, 30% to the canary.
    /// let routes = &in_force.config().with_canary_routes().virtual_services[0].spec.http[0].route;
    /// assert_eq!((routes[0].weight, routes[1].weight), (Some(70), Some(30)));
    /// ```
    pub fn set_canary_routing(
        &self,
        canary: &str,
        routing: mesh_route::config::CanaryRouting,
    ) -> Result<u64, StartError> {
        self.swap_with(|current| {
            let mut config = current.clone();
            config.canary_routes.insert(canary.to_owned(), routing);
            config
        })
    }

    /// Shows `board` at the admin API's `/canaries` (the first controller's; later ones are
    /// not shown).
    pub(crate) fn attach_canaries(&self, board: CanaryBoard) {
        let _ = self.shared.canaries.set(board);
    }

    /// The versions as they come into force: the current one at once, then each swap's.
    ///
    /// ```
    /// use mesh_proxy::LiveSidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let live = LiveSidecar::new(Config::default(), settings).unwrap();
    /// let mut versions = live.versions();
    /// assert_eq!(*versions.borrow_and_update(), 1);
    /// live.swap(Config::default()).unwrap();
    /// assert!(versions.has_changed().unwrap());
    /// assert_eq!(*versions.borrow_and_update(), 2);
    /// ```
    pub fn versions(&self) -> watch::Receiver<u64> {
        self.shared.versions.subscribe()
    }

    /// Swaps in the configuration `next` makes of the one in force, one swap at a time.
    fn swap_with(&self, next: impl FnOnce(&Config) -> Config) -> Result<u64, StartError> {
        let _one_at_a_time = self
            .shared
            .swapping
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let previous = self.shared.current.load_full();
        let config = next(previous.config());
        let built = Sidecar::after(config, self.shared.settings.clone(), Some(&previous))
            .and_then(|sidecar| same_gateway_listeners(&previous, sidecar));
        let sidecar = match built {
            Ok(sidecar) => sidecar.with_version(previous.version() + 1),
            Err(error) => {
                self.shared.updates.rejected(error.to_string());
                return Err(error);
            }
        };
        let version = sidecar.version();
        self.shared.current.store(Arc::new(sidecar));
        self.shared.updates.applied();
        self.shared.versions.send_replace(version);
        Ok(version)
    }

    /// Counts an update refused before it could be swapped in (a file that does not parse or
    /// validate), for `reason`; `/stats` and `/config_dump` report it.
    ///
    /// ```
    /// use mesh_proxy::LiveSidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let live = LiveSidecar::new(Config::default(), settings).unwrap();
    /// live.reject("mesh.yaml: not YAML".to_owned());
    /// assert_eq!(live.updates().rejections(), 1);
    /// assert_eq!(live.updates().last_error().as_deref(), Some("mesh.yaml: not YAML"));
    /// assert_eq!(live.current().version(), 1);
    /// ```
    pub fn reject(&self, reason: String) {
        self.shared.updates.rejected(reason);
    }

    /// How updates went so far.
    ///
    /// ```
    /// use mesh_proxy::LiveSidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let live = LiveSidecar::new(Config::default(), settings).unwrap();
    /// live.swap(Config::default()).unwrap();
    /// assert_eq!((live.updates().success(), live.updates().rejections()), (1, 0));
    /// ```
    pub fn updates(&self) -> &Arc<ConfigUpdates> {
        &self.shared.updates
    }

    /// The outbound service of whichever configuration is in force when a request arrives.
    ///
    /// Requests follow the swaps, through one service:
    ///
    /// ```
    /// use mesh_proxy::LiveSidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// use tower::ServiceExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// // `catalog`, whose every request is aborted with STATUS.
    /// const YAML: &str = "
    /// apiVersion: networking.istio.io/v1
    /// kind: ServiceEntry
    /// metadata: {name: catalog}
    /// spec:
    ///   hosts: [catalog]
    ///   resolution: STATIC
    ///   ports: [{number: 80, name: http}]
    ///   endpoints: [{address: 127.0.0.1}]
    /// ---
    /// apiVersion: networking.istio.io/v1
    /// kind: VirtualService
    /// metadata: {name: catalog}
    /// spec:
    ///   hosts: [catalog]
    ///   http:
    ///   - fault: {abort: {httpStatus: STATUS, percentage: {value: 100}}}
    ///     route: [{destination: {host: catalog}}]
    /// ";
    /// let config = |status: u16| Config::from_yaml_str(&YAML.replace("STATUS", &status.to_string())).unwrap().config;
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let live = LiveSidecar::new(config(418), settings).unwrap();
    /// let outbound = live.outbound_service();
    /// let get = || http::Request::get("http://catalog/").body(mesh_core::body::empty()).unwrap();
    /// assert_eq!(outbound.clone().oneshot(get()).await.unwrap().status(), 418);
    /// live.swap(config(429)).unwrap();
    /// assert_eq!(outbound.oneshot(get()).await.unwrap().status(), 429);
    /// # }
    /// ```
    pub fn outbound_service(&self) -> HttpService {
        self.following(|sidecar| Some(sidecar.outbound()))
    }

    /// The inbound service of whichever configuration is in force when a request arrives.
    /// While that configuration has no Sidecar `ingress` it fails with
    /// [`MeshError::RouteNotFound`], which the inbound listener answers as `404 route not found`.
    ///
    /// ```
    /// use mesh_proxy::LiveSidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// use tower::ServiceExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let live = LiveSidecar::new(Config::default(), settings).unwrap();
    /// let request = http::Request::get("http://app/").body(mesh_core::body::empty()).unwrap();
    /// // No Sidecar `ingress` in force yet: the listener answers this error with its 404.
    /// let error = live.inbound_service().oneshot(request).await.unwrap_err();
    /// let error = error.downcast_ref::<mesh_core::MeshError>().unwrap();
    /// assert!(matches!(error, mesh_core::MeshError::RouteNotFound));
    /// assert_eq!(error.status(), 404);
    /// # }
    /// ```
    pub fn inbound_service(&self) -> HttpService {
        self.following(Sidecar::inbound)
    }

    /// The admin API, reporting on whichever configuration is in force and on the updates.
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use mesh_proxy::LiveSidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// use tower::ServiceExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let live = LiveSidecar::new(Config::default(), settings).unwrap();
    /// live.swap(Config::default()).unwrap();
    /// let request = http::Request::get("/config_dump").body(mesh_core::body::empty()).unwrap();
    /// let body = live.admin_service().oneshot(request).await.unwrap().into_body().collect().await.unwrap();
    /// let dump: serde_json::Value = serde_json::from_slice(&body.to_bytes()).unwrap();
    /// assert_eq!(dump["version"], 2);
    /// # }
    /// ```
    pub fn admin_service(&self) -> HttpService {
        HttpService::new(LiveAdmin {
            live: self.clone(),
            metrics_only: false,
        })
    }

    /// The Prometheus text alone (what `--prometheus` serves), for the configuration in force.
    ///
    /// ```
    /// use mesh_proxy::LiveSidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// use tower::ServiceExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let live = LiveSidecar::new(Config::default(), settings).unwrap();
    /// // Any path answers with the metrics.
    /// let request = http::Request::get("/anything").body(mesh_core::body::empty()).unwrap();
    /// let response = live.metrics_only_service().oneshot(request).await.unwrap();
    /// assert_eq!(response.status(), 200);
    /// assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    /// # }
    /// ```
    pub fn metrics_only_service(&self) -> HttpService {
        HttpService::new(LiveAdmin {
            live: self.clone(),
            metrics_only: true,
        })
    }

    fn following(&self, pick: fn(&Sidecar) -> Option<&SharedStack>) -> HttpService {
        HttpService::new(Following {
            live: self.clone(),
            pick,
        })
    }

    /// Binds every listener (the inbound one when the configuration in force declares
    /// `ingress`), then serves them in the background, each request with the configuration in
    /// force when it arrives.
    ///
    /// ```
    /// use mesh_proxy::{LiveSidecar, SidecarOptions};
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let live = LiveSidecar::new(Config::default(), settings).unwrap();
    /// let any = "127.0.0.1:0".parse().unwrap();
    /// let options = SidecarOptions { outbound: any, inbound: any, admin: any, ..SidecarOptions::default() };
    /// let running = live.start(&options).await.unwrap();
    /// assert!(running.addr("outbound").is_some() && running.addr("admin").is_some());
    /// running.shutdown().await;
    /// # }
    /// ```
    pub async fn start(&self, options: &SidecarOptions) -> Result<RunningSidecar, StartError> {
        let current = self.current();
        Served {
            outbound: self.outbound_service(),
            inbound: current.inbound_service().map(|_| self.inbound_service()),
            inbound_tls: {
                let live = self.clone();
                Arc::new(move || live.peek().inbound_tls().cloned())
            },
            limits: self.shared.settings.limits.clone(),
            gateways: crate::gateway::GatewaySource::live(self),
            admin: self.admin_service(),
            metrics_only: self.metrics_only_service(),
            access_logs: current.access_logs().to_vec(),
            live: Some(self.clone()),
            tunnel_tasks: current.tunnel_tasks().clone(),
            drain: {
                let live = self.clone();
                Arc::new(move || live.peek().config().mesh.termination_drain_duration())
            },
        }
        .start(options)
        .await
    }

    /// The handle rendering the Prometheus recorder every configuration records into, when
    /// it is the sidecar's own.
    ///
    /// ```
    /// use mesh_proxy::LiveSidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// use tower::ServiceExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\n\
    ///             spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n\
    ///             ---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: catalog}\n\
    ///             spec: {hosts: [catalog], http: [{fault: {abort: {httpStatus: 418, percentage: {value: 100}}}, \
    ///             route: [{destination: {host: catalog}}]}]}\n";
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let live = LiveSidecar::new(Config::from_yaml_str(yaml).unwrap().config, settings).unwrap();
    /// let request = http::Request::get("http://catalog/").body(mesh_core::body::empty()).unwrap();
    /// live.outbound_service().oneshot(request).await.unwrap();
    /// let text = live.prometheus().unwrap().render();
    /// assert!(text.lines().any(|l| l.starts_with("istio_requests_total{") && l.contains(r#"response_code="418""#)), "{text}");
    /// # }
    /// ```
    pub fn prometheus(&self) -> Option<&PrometheusHandle> {
        self.shared.settings.prometheus.as_ref()
    }
}

/// `next`, when it listens for Gateways where `previous` does (the listeners bound at start
/// stay): the same ports, kinds and addresses.
fn same_gateway_listeners(previous: &Sidecar, next: Sidecar) -> Result<Sidecar, StartError> {
    let listeners = |sidecar: &Sidecar| -> Vec<_> {
        sidecar
            .gateway_ports()
            .iter()
            .map(|g| (g.port, g.kind, g.listen_addr()))
            .collect()
    };
    if listeners(previous) != listeners(&next) {
        let kinds = |sidecar: &Sidecar| {
            listeners(sidecar)
                .into_iter()
                .map(|(port, kind, _)| (port, kind))
                .collect()
        };
        return Err(GatewayError::ListenersChanged {
            before: kinds(previous),
            after: kinds(&next),
        }
        .into());
    }
    Ok(next)
}

/// The admin API of the configuration in force, with the live sidecar's update counts.
#[derive(Clone)]
struct LiveAdmin {
    live: LiveSidecar,
    metrics_only: bool,
}

impl Service<Request<Body>> for LiveAdmin {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = <Admin as Service<Request<Body>>>::Future;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let updates = Some(self.live.updates().clone());
        let canaries = self.live.shared.canaries.get().cloned();
        let mut admin = self.live.peek().admin_service_with(updates, canaries);
        if self.metrics_only {
            admin = admin.metrics_only();
        }
        admin.call(request)
    }
}

/// A service that hands each request to one service of the configuration in force.
#[derive(Clone)]
struct Following {
    live: LiveSidecar,
    pick: fn(&Sidecar) -> Option<&SharedStack>,
}

type FollowingFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

impl Service<Request<Body>> for Following {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = FollowingFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> FollowingFuture {
        match (self.pick)(&self.live.peek()) {
            // The stacks are always ready (limits answer with local replies, not backpressure).
            Some(stack) => stack.call(request),
            None => Box::pin(std::future::ready(Err(MeshError::RouteNotFound.into()))),
        }
    }
}
