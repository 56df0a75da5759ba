//! [`Mesh`]: one configuration's traffic policy and telemetry, in-process, swappable at run time.

use super::{ClientLayer, Error, MeshBuilder, ServerLayer};
use arc_swap::ArcSwap;
use http::uri::Authority;
use mesh_proxy::{
    LiveSidecar, Sidecar, admin::Admin, prometheus::PrometheusHandle, sidecar::SidecarSettings,
};
use mesh_route::config::{Config, Diagnostic, Loaded};
use std::sync::Arc;

/// Istio traffic policy and telemetry for an application's own clients and servers.
///
/// A `Mesh` is built from the same configuration the sidecar reads ([`Mesh::from_yaml`],
/// [`Mesh::builder`]). [`client_layer`](Mesh::client_layer) wraps an HTTP client in the
/// outbound stack: trace context, Istio metrics (`reporter="source"`), the access log, routing,
/// mirroring, fault injection, timeouts, retries, circuit breaking, outlier detection and load
/// balancing. [`server_layer`](Mesh::server_layer) wraps a service in the inbound one: trace
/// context, Istio metrics (`reporter="destination"`), the access log and server spans.
///
/// [`swap`](Mesh::swap) replaces the configuration atomically, as the sidecar's
/// [`LiveSidecar`] does (it is one): requests already started finish under the configuration
/// they started with, and every layer built from this mesh (and every clone of it) uses the
/// new one for the next request. Cloning is cheap.
///
/// Building a `Mesh` does not need a tokio runtime (the examples that only build and inspect
/// one run in a plain `fn main`), but an application should build it inside the runtime that
/// serves its traffic: span export is spawned on the runtime current at build time, and built
/// outside one, a configured Zipkin collector is an error ([`Error::Start`]).
///
/// The access log is on by default: unless the configuration says otherwise (the mesh
/// config's `accessLogFile`, a Telemetry's `accessLogging`), both the client and the server
/// side log every request to `/dev/stdout` — unlike Istio, whose default is no access log.
/// [`MeshBuilder::access_log(false)`](MeshBuilder::access_log) turns it off whatever the
/// configuration says, as the examples here do; [`Mesh::from_yaml`] has no such setting (its
/// YAML can still turn the log off).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), mesh::Error> {
/// let mesh = mesh::Mesh::builder().yaml(r#"
/// apiVersion: networking.istio.io/v1
/// kind: ServiceEntry
/// metadata: {name: catalog}
/// spec:
///   hosts: [catalog]
///   resolution: STATIC
///   ports: [{number: 80, name: http, protocol: HTTP}]
///   endpoints: [{address: 127.0.0.1, ports: {http: 9001}}]
/// ---
/// apiVersion: networking.istio.io/v1
/// kind: VirtualService
/// metadata: {name: catalog}
/// spec:
///   hosts: [catalog]
///   http: [{route: [{destination: {host: catalog}}], timeout: 2s}]
/// "#).access_log(false).build()?;
/// assert_eq!(mesh.version(), 1);
/// let _client = mesh.client_layer("catalog")?;
/// let _server = mesh.server_layer();
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Mesh {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The compiled configuration, swapped as the sidecar swaps its own.
    live: LiveSidecar,
    /// The warnings of the configuration in force.
    warnings: ArcSwap<Vec<Diagnostic>>,
    /// Held while a swap replaces the configuration and then its warnings, so that concurrent
    /// swaps leave the warnings of the configuration in force.
    swapping: std::sync::Mutex<()>,
}

impl Mesh {
    /// A mesh configured by multi-document Istio YAML, with default settings — including the
    /// access log to `/dev/stdout` unless the YAML turns it off (see [`Mesh`]); for other
    /// settings use `Mesh::builder().yaml(text)` ([`Mesh::builder`]). Feature `yaml`.
    ///
    /// A fault injected by the route answers without calling the wrapped client (the
    /// `MeshConfig` document turns the access log off, as Istio's `accessLogFile: ""` does):
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), mesh::core::BoxError> {
    /// let mesh = mesh::Mesh::from_yaml(r#"
    /// apiVersion: mesh/v1
    /// kind: MeshConfig
    /// metadata: {name: mesh}
    /// spec: {accessLogFile: ""}
    /// ---
    /// apiVersion: networking.istio.io/v1
    /// kind: ServiceEntry
    /// metadata: {name: catalog}
    /// spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
    /// ---
    /// apiVersion: networking.istio.io/v1
    /// kind: VirtualService
    /// metadata: {name: catalog}
    /// spec:
    ///   hosts: [catalog]
    ///   http: [{fault: {abort: {httpStatus: 418, percentage: {value: 100}}}, route: [{destination: {host: catalog}}]}]
    /// "#)?;
    /// let unreachable = tower::service_fn(|_req: http::Request<mesh::core::Body>| async {
    ///     Err::<http::Response<mesh::core::Body>, _>(std::io::Error::other("not called"))
    /// });
    /// let client = mesh.client_layer("catalog")?.layer(unreachable);
    /// assert_eq!(client.oneshot(http::Request::new(mesh::core::body::empty())).await?.status(), 418);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "yaml")]
    pub fn from_yaml(text: &str) -> Result<Mesh, Error> {
        Mesh::builder().yaml(text).build()
    }

    /// A builder: configuration from YAML, files and Rust values, plus settings.
    ///
    /// ```
    /// # fn main() -> Result<(), mesh::Error> {
    /// let mesh = mesh::Mesh::builder().access_log(false).build()?;
    /// assert_eq!(mesh.version(), 1);
    /// assert!(mesh.config().virtual_services.is_empty());
    /// assert!(mesh.warnings().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn builder() -> MeshBuilder {
        MeshBuilder::default()
    }

    /// Starts a mesh on a validated configuration.
    pub(crate) fn start(loaded: Loaded, settings: SidecarSettings) -> Result<Mesh, Error> {
        let live = LiveSidecar::new(loaded.config, settings)?;
        Ok(Mesh {
            shared: Arc::new(Shared {
                live,
                warnings: ArcSwap::from_pointee(loaded.warnings),
                swapping: std::sync::Mutex::new(()),
            }),
        })
    }

    /// A layer that sends every request to `host` (`catalog`, `catalog:8080`) through the
    /// outbound stack, over the client it wraps; see [`ClientLayer`].
    ///
    /// Requests go to the endpoint the load balancer chose, whatever URI they were sent with:
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), mesh::core::BoxError> {
    /// let mesh = mesh::Mesh::builder().yaml("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\n\
    ///     spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1, ports: {http: 9001}}]}")
    ///     .access_log(false)
    ///     .build()?;
    /// let echo_uri = tower::service_fn(|req: http::Request<mesh::core::Body>| async move {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(mesh::core::body::full(req.uri().to_string())))
    /// });
    /// let client = mesh.client_layer("catalog")?.layer(echo_uri);
    /// let request = http::Request::get("http://elsewhere/items?page=2").body(mesh::core::body::empty())?;
    /// let body = http_body_util::BodyExt::collect(client.oneshot(request).await?.into_body()).await?;
    /// assert_eq!(body.to_bytes(), "http://127.0.0.1:9001/items?page=2");
    /// assert!(matches!(mesh.client_layer("user@catalog"), Err(mesh::Error::InvalidHost(_))));
    /// # Ok(()) }
    /// ```
    pub fn client_layer(&self, host: &str) -> Result<ClientLayer, Error> {
        let authority: Authority = host
            .parse()
            .map_err(|_| Error::InvalidHost(host.to_string()))?;
        if authority.as_str().contains('@') {
            return Err(Error::InvalidHost(host.to_string()));
        }
        Ok(ClientLayer::new(self.clone(), authority))
    }

    /// A layer that puts the inbound stack in front of a service; see [`ServerLayer`].
    ///
    /// The service sees each request with trace context, such as an `x-request-id`:
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), mesh::core::BoxError> {
    /// let mesh = mesh::Mesh::builder().access_log(false).build()?;
    /// let app = tower::service_fn(|req: http::Request<mesh::core::Body>| async move {
    ///     let id = req.headers().contains_key("x-request-id");
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(mesh::core::body::full(id.to_string())))
    /// });
    /// let response = mesh.server_layer().layer(app).oneshot(http::Request::new(mesh::core::body::empty())).await?;
    /// let body = http_body_util::BodyExt::collect(response.into_body()).await?;
    /// assert_eq!(body.to_bytes(), "true");
    /// # Ok(()) }
    /// ```
    pub fn server_layer(&self) -> ServerLayer {
        ServerLayer::new(self.clone())
    }

    /// Validates `config` and, when it is valid and can run, makes it the configuration of every
    /// layer of this mesh from the next request on; returns its warnings. When it is not, the
    /// current configuration stays and the error says why.
    ///
    /// ```
    /// use mesh::config::{Config, Resource, VirtualService};
    ///
    /// # fn main() -> Result<(), mesh::Error> {
    /// let mesh = mesh::Mesh::builder().access_log(false).build()?;
    /// let mut config = (*mesh.config()).clone();
    /// // A VirtualService without hosts is refused whole: version 1 stays in force.
    /// config.virtual_services.push(Resource::new("catalog", VirtualService::default()));
    /// assert!(matches!(mesh.swap(config), Err(mesh::Error::Config(_))));
    /// assert_eq!(mesh.version(), 1);
    /// // A valid one is swapped in.
    /// mesh.swap(mesh::config::Config::default())?;
    /// assert_eq!(mesh.version(), 2);
    /// # Ok(()) }
    /// ```
    pub fn swap(&self, config: Config) -> Result<Vec<Diagnostic>, Error> {
        self.swap_loaded(config.validate()?)
    }

    /// [`swap`](Mesh::swap) to multi-document Istio YAML. Feature `yaml`.
    ///
    /// ```
    /// # fn main() -> Result<(), mesh::Error> {
    /// let mesh = mesh::Mesh::builder().access_log(false).build()?;
    /// mesh.swap_yaml("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: catalog}\nspec: {host: catalog}\n")?;
    /// assert_eq!((mesh.version(), mesh.config().destination_rules.len()), (2, 1));
    /// // Invalid YAML is refused whole: the current configuration stays.
    /// assert!(matches!(mesh.swap_yaml("kind: ["), Err(mesh::Error::Config(_))));
    /// assert_eq!(mesh.version(), 2);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "yaml")]
    pub fn swap_yaml(&self, text: &str) -> Result<Vec<Diagnostic>, Error> {
        self.swap_loaded(Config::from_yaml_str(text)?)
    }

    fn swap_loaded(&self, loaded: Loaded) -> Result<Vec<Diagnostic>, Error> {
        let _one_at_a_time = self
            .shared
            .swapping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.shared.live.swap(loaded.config)?;
        self.shared
            .warnings
            .store(Arc::new(loaded.warnings.clone()));
        Ok(loaded.warnings)
    }

    /// The configuration in force: 1 for the first, one more for each successful swap.
    ///
    /// ```
    /// # fn main() -> Result<(), mesh::Error> {
    /// let mesh = mesh::Mesh::builder().access_log(false).build()?;
    /// let clone = mesh.clone();
    /// assert_eq!(clone.version(), 1);
    /// mesh.swap(mesh::config::Config::default())?;
    /// assert_eq!(clone.version(), 2, "clones share the configuration");
    /// # Ok(()) }
    /// ```
    pub fn version(&self) -> u64 {
        self.shared.live.peek().version()
    }

    /// The configuration in force.
    ///
    /// ```
    /// # fn main() -> Result<(), mesh::Error> {
    /// let mesh = mesh::Mesh::builder().yaml("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog, namespace: shop}\nspec: {hosts: [catalog], ports: [{number: 80, name: http}]}\n").access_log(false).build()?;
    /// let config = mesh.config();
    /// assert_eq!(config.service_entries[0].meta.qualified_name(), "shop/catalog");
    /// assert_eq!(config.service_entries[0].spec.hosts, ["catalog"]);
    /// # Ok(()) }
    /// ```
    pub fn config(&self) -> Arc<Config> {
        self.shared.live.peek().config().clone()
    }

    /// The warnings of the configuration in force (fields parsed but not enforced, …).
    ///
    /// ```
    /// # fn main() -> Result<(), mesh::Error> {
    /// let mesh = mesh::Mesh::builder().yaml("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: catalog}\nspec: {hosts: [catalog], exportTo: ['.']}\n").access_log(false).build()?;
    /// let warnings = mesh.warnings();
    /// assert!(warnings.iter().all(|w| !w.is_error()));
    /// assert!(warnings.iter().any(|w| w.message.contains("not enforced")), "{warnings:?}");
    /// mesh.swap(mesh::config::Config::default())?;
    /// assert!(mesh.warnings().is_empty(), "the warnings of the configuration in force");
    /// # Ok(()) }
    /// ```
    pub fn warnings(&self) -> Vec<Diagnostic> {
        self.shared.warnings.load().to_vec()
    }

    /// The Istio metrics in Prometheus text format, when the mesh records them itself (the
    /// default; not when [`MeshBuilder::metrics`] sent them elsewhere, nor in a build without
    /// the `prometheus` feature, where they go to the global `metrics` recorder).
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), mesh::core::BoxError> {
    /// let mesh = mesh::Mesh::builder().access_log(false).build()?;
    /// let teapot = tower::service_fn(|_req: http::Request<mesh::core::Body>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::builder().status(418).body(mesh::core::body::empty()).unwrap())
    /// });
    /// let response = mesh.server_layer().layer(teapot).oneshot(http::Request::new(mesh::core::body::empty())).await?;
    /// http_body_util::BodyExt::collect(response.into_body()).await?;
    /// let text = mesh.render_prometheus().unwrap();
    /// assert!(text.lines().any(|l| l.starts_with("istio_requests_total{") && l.contains("response_code=\"418\"")), "{text}");
    /// # Ok(()) }
    /// ```
    pub fn render_prometheus(&self) -> Option<String> {
        self.shared.live.prometheus().map(PrometheusHandle::render)
    }

    /// The sidecar's admin API (`/stats/prometheus`, `/clusters`, `/config_dump`, …) for the
    /// configuration in force, to serve wherever the application likes.
    ///
    /// ```
    /// use tower::ServiceExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), mesh::core::BoxError> {
    /// let mesh = mesh::Mesh::builder().yaml("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: catalog}\nspec: {host: catalog}\n").access_log(false).build()?;
    /// let admin = mesh.admin_service();
    /// let ready = admin.clone().oneshot(http::Request::get("/ready").body(mesh::core::body::empty())?).await?;
    /// assert_eq!(ready.status(), 200);
    /// let dump = admin.oneshot(http::Request::get("/config_dump").body(mesh::core::body::empty())?).await?;
    /// let text = http_body_util::BodyExt::collect(dump.into_body()).await?.to_bytes();
    /// assert!(String::from_utf8_lossy(&text).contains("catalog"));
    /// # Ok(()) }
    /// ```
    pub fn admin_service(&self) -> Admin {
        self.shared.live.current().admin_service()
    }

    /// The configuration in force, compiled.
    pub(crate) fn current(&self) -> arc_swap::Guard<Arc<Sidecar>> {
        self.shared.live.peek()
    }
}
