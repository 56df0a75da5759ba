//! [`MeshBuilder`]: a [`Mesh`](crate::Mesh) from Istio YAML, from configuration written in
//! Rust, or both, with the workload's identity and where metrics go.

use super::{Error, Mesh};
use mesh_proxy::{sidecar::SidecarSettings, workload_identity::WorkloadSettings};
#[cfg(feature = "yaml")]
use mesh_route::config::Loader;
use mesh_route::config::{
    Config, DestinationRule, Diagnostic, Loaded, MeshConfig, Resource, ServiceEntry, Telemetry,
    VirtualService,
};
use mesh_trace::metrics::MetricsRecorder;
#[cfg(feature = "yaml")]
use std::path::PathBuf;

/// Builds a [`Mesh`](crate::Mesh): configuration from YAML text, files and Rust values
/// (validated together, as the sidecar validates its `--config`), plus settings.
///
/// ```
/// use mesh::{Mesh, config::{Resource, VirtualService}};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), mesh::Error> {
/// let mesh = Mesh::builder()
///     .yaml(r#"
/// apiVersion: networking.istio.io/v1
/// kind: ServiceEntry
/// metadata: {name: catalog}
/// spec:
///   hosts: [catalog]
///   resolution: STATIC
///   ports: [{number: 80, name: http, protocol: HTTP}]
///   endpoints: [{address: 127.0.0.1, ports: {http: 9001}, labels: {version: v1}}]
/// "#)
///     .virtual_service(Resource::new("catalog", VirtualService {
///         hosts: vec!["catalog".into()],
///         ..Default::default()
///     }))
///     .access_log(false)
///     .build()?;
/// assert_eq!(mesh.config().virtual_services.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct MeshBuilder {
    #[cfg(feature = "yaml")]
    yaml: Vec<String>,
    #[cfg(feature = "yaml")]
    paths: Vec<PathBuf>,
    rust: Config,
    mesh_config: Option<MeshConfig>,
    settings: SidecarSettings,
}

impl MeshBuilder {
    /// Adds multi-document Istio YAML (diagnostics name it `<inline>`). Feature `yaml`.
    ///
    /// Each call adds one source; all are validated together:
    ///
    /// ```
    /// # fn main() -> Result<(), mesh::Error> {
    /// let mesh = mesh::Mesh::builder()
    ///     .yaml("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec: {hosts: [a.example], ports: [{number: 80, name: http}]}\n")
    ///     .yaml("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\nspec: {host: a.example}\n")
    ///     .access_log(false)
    ///     .build()?;
    /// assert_eq!(mesh.config().service_entries.len(), 1);
    /// assert_eq!(mesh.config().destination_rules[0].spec.host, "a.example");
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "yaml")]
    pub fn yaml(mut self, text: impl Into<String>) -> Self {
        self.yaml.push(text.into());
        self
    }

    /// Adds YAML files, or directories of `*.yaml`/`*.yml` files, as the sidecar's `--config`.
    /// Feature `yaml`.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("mesh-doc-builder-path-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// std::fs::write(dir.join("catalog.yaml"), "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: catalog}\nspec: {host: catalog}\n")?;
    /// let mesh = mesh::Mesh::builder().path(&dir).access_log(false).build()?;
    /// assert_eq!(mesh.config().destination_rules[0].spec.host, "catalog");
    /// std::fs::remove_dir_all(&dir)?;
    /// let missing = mesh::Mesh::builder().path(dir.join("nowhere")).build();
    /// assert!(matches!(missing, Err(mesh::Error::Config(_))));
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "yaml")]
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.paths.push(path.into());
        self
    }

    /// Adds a VirtualService written in Rust.
    ///
    /// ```
    /// use mesh::config::{Resource, VirtualService};
    /// # fn main() -> Result<(), mesh::Error> {
    /// let routes = VirtualService { hosts: vec!["catalog".into()], ..Default::default() };
    /// let mesh = mesh::Mesh::builder().virtual_service(Resource::new("catalog", routes)).access_log(false).build()?;
    /// assert_eq!(mesh.config().virtual_services[0].meta.name, "catalog");
    /// // Validated like YAML: a VirtualService without hosts is refused.
    /// let invalid = mesh::Mesh::builder().virtual_service(Resource::new("none", VirtualService::default())).build();
    /// assert!(matches!(invalid, Err(mesh::Error::Config(_))));
    /// # Ok(()) }
    /// ```
    pub fn virtual_service(mut self, resource: Resource<VirtualService>) -> Self {
        self.rust.virtual_services.push(resource);
        self
    }

    /// Adds a DestinationRule written in Rust.
    ///
    /// ```
    /// use mesh::config::{DestinationRule, Resource};
    /// # fn main() -> Result<(), mesh::Error> {
    /// let rule = DestinationRule { host: "catalog".into(), ..Default::default() };
    /// let mesh = mesh::Mesh::builder()
    ///     .destination_rule(Resource::new("catalog", rule).in_namespace("shop"))
    ///     .access_log(false)
    ///     .build()?;
    /// let rules = &mesh.config().destination_rules;
    /// assert_eq!((rules[0].spec.host.as_str(), rules[0].namespace()), ("catalog", Some("shop")));
    /// # Ok(()) }
    /// ```
    pub fn destination_rule(mut self, resource: Resource<DestinationRule>) -> Self {
        self.rust.destination_rules.push(resource);
        self
    }

    /// Adds a ServiceEntry written in Rust.
    ///
    /// The wrapped client is sent each request addressed to the endpoint the mesh chose:
    ///
    /// ```
    /// use mesh::config::{Resolution, Resource, ServiceEntry, ServicePort, WorkloadEntry};
    /// use tower::{Layer, ServiceExt};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), mesh::core::BoxError> {
    /// let catalog = ServiceEntry {
    ///     hosts: vec!["catalog".into()],
    ///     resolution: Some(Resolution::Static),
    ///     ports: vec![ServicePort { number: 80, name: "http".into(), ..Default::default() }],
    ///     endpoints: vec![WorkloadEntry { address: "127.0.0.1".into(), ports: [("http".into(), 9001)].into(), ..Default::default() }],
    ///     ..Default::default()
    /// };
    /// let mesh = mesh::Mesh::builder().service_entry(Resource::new("catalog", catalog)).access_log(false).build()?;
    /// let echo_uri = tower::service_fn(|req: http::Request<mesh::core::Body>| async move {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(mesh::core::body::full(req.uri().to_string())))
    /// });
    /// let response = mesh.client_layer("catalog")?.layer(echo_uri).oneshot(http::Request::get("/items").body(mesh::core::body::empty())?).await?;
    /// assert_eq!(http_body_util::BodyExt::collect(response.into_body()).await?.to_bytes(), "http://127.0.0.1:9001/items");
    /// # Ok(()) }
    /// ```
    pub fn service_entry(mut self, resource: Resource<ServiceEntry>) -> Self {
        self.rust.service_entries.push(resource);
        self
    }

    /// Adds a Telemetry written in Rust.
    ///
    /// A mesh-wide Telemetry (root namespace `istio-system`) that disables access logging
    /// stops the mesh from opening the log file at all — here one that cannot be opened:
    ///
    /// ```
    /// use mesh::config::{AccessLogging, MeshConfig, Resource, Telemetry};
    /// # fn main() -> Result<(), mesh::Error> {
    /// let file = std::env::temp_dir().join("mesh-doc-no-such-dir").join("access.log");
    /// let config = MeshConfig { access_log_file: Some(file.display().to_string()), ..Default::default() };
    /// let logging = mesh::Mesh::builder().mesh_config(config.clone()).build();
    /// assert!(matches!(logging, Err(mesh::Error::Start(_))), "the file cannot be opened");
    /// let quiet = Telemetry {
    ///     access_logging: vec![AccessLogging { disabled: Some(true), ..Default::default() }],
    ///     ..Default::default()
    /// };
    /// let mesh = mesh::Mesh::builder()
    ///     .mesh_config(config)
    ///     .telemetry(Resource::new("mesh-default", quiet).in_namespace("istio-system"))
    ///     .build()?; // no access log: the file is never opened
    /// assert_eq!(mesh.config().telemetries[0].spec.access_logging[0].disabled, Some(true));
    /// # Ok(()) }
    /// ```
    pub fn telemetry(mut self, resource: Resource<Telemetry>) -> Self {
        self.rust.telemetries.push(resource);
        self
    }

    /// Adds a whole configuration written in Rust — resources of every kind (Sidecars,
    /// Gateways, AuthorizationPolicies, PeerAuthentications, Canaries, …) — and overlays its
    /// mesh settings on those of the YAML.
    ///
    /// ```
    /// use mesh::config::{Config, PeerAuthentication, Resource};
    /// # fn main() -> Result<(), mesh::Error> {
    /// let mut config = Config::default();
    /// config.peer_authentications.push(Resource::new("default", PeerAuthentication::default()).in_namespace("istio-system"));
    /// let mesh = mesh::Mesh::builder().config(config).access_log(false).build()?;
    /// assert_eq!(mesh.config().peer_authentications.len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn config(mut self, config: Config) -> Self {
        self.rust.merge(config);
        self
    }

    /// Sets the mesh-wide settings (replacing any merged from YAML `MeshConfig` documents).
    ///
    /// With `REGISTRY_ONLY`, a host no ServiceEntry knows gets 502 without reaching the client:
    ///
    /// ```
    /// use mesh::config::{MeshConfig, MeshOutboundTrafficPolicy, OutboundMode};
    /// use tower::{Layer, ServiceExt};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), mesh::core::BoxError> {
    /// let registry_only = MeshConfig {
    ///     outbound_traffic_policy: Some(MeshOutboundTrafficPolicy { mode: Some(OutboundMode::RegistryOnly) }),
    ///     ..Default::default()
    /// };
    /// let mesh = mesh::Mesh::builder().mesh_config(registry_only).access_log(false).build()?;
    /// let never = tower::service_fn(|_req: http::Request<mesh::core::Body>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(mesh::core::body::empty()))
    /// });
    /// let client = mesh.client_layer("unknown.example")?.layer(never);
    /// assert_eq!(client.oneshot(http::Request::new(mesh::core::body::empty())).await?.status(), 502);
    /// # Ok(()) }
    /// ```
    pub fn mesh_config(mut self, mesh: MeshConfig) -> Self {
        self.mesh_config = Some(mesh);
        self
    }

    /// The workload this process is: the source labels of its client metrics and the
    /// destination labels of its server metrics (defaults: Istio's `ISTIO_META_*`/`POD_*`
    /// environment variables, then `unknown`).
    ///
    /// ```
    /// use mesh::proxy::workload_identity::WorkloadSettings;
    /// use tower::{Layer, ServiceExt};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), mesh::core::BoxError> {
    /// let me = WorkloadSettings { name: Some("web".into()), namespace: Some("shop".into()), ..Default::default() };
    /// let mesh = mesh::Mesh::builder().workload(me).access_log(false).build()?;
    /// let app = tower::service_fn(|_req: http::Request<mesh::core::Body>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(mesh::core::body::empty()))
    /// });
    /// let response = mesh.server_layer().layer(app).oneshot(http::Request::new(mesh::core::body::empty())).await?;
    /// http_body_util::BodyExt::collect(response.into_body()).await?;
    /// let metrics = mesh.render_prometheus().unwrap();
    /// assert!(metrics.contains("destination_workload=\"web\""), "{metrics}");
    /// assert!(metrics.contains("destination_workload_namespace=\"shop\""), "{metrics}");
    /// # Ok(()) }
    /// ```
    pub fn workload(mut self, workload: WorkloadSettings) -> Self {
        self.settings.workload = workload;
        self
    }

    /// Records the Istio metrics with `recorder` instead of the mesh's own Prometheus recorder
    /// ([`Mesh::render_prometheus`] then renders nothing).
    ///
    /// ```
    /// use metrics_util::debugging::DebuggingRecorder;
    /// use std::sync::Arc;
    /// use tower::{Layer, ServiceExt};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), mesh::core::BoxError> {
    /// let recorder = DebuggingRecorder::new();
    /// let snapshotter = recorder.snapshotter();
    /// let owned = mesh::trace::metrics::MetricsRecorder::Owned(Arc::new(recorder));
    /// let mesh = mesh::Mesh::builder().metrics(owned).access_log(false).build()?;
    /// assert!(mesh.render_prometheus().is_none());
    /// let app = tower::service_fn(|_req: http::Request<mesh::core::Body>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(mesh::core::body::empty()))
    /// });
    /// let response = mesh.server_layer().layer(app).oneshot(http::Request::new(mesh::core::body::empty())).await?;
    /// http_body_util::BodyExt::collect(response.into_body()).await?;
    /// let names: Vec<_> = snapshotter.snapshot().into_vec().into_iter().map(|(key, ..)| key.key().name().to_owned()).collect();
    /// assert!(names.iter().any(|n| n == "istio_requests_total"), "{names:?}");
    /// # Ok(()) }
    /// ```
    pub fn metrics(mut self, recorder: MetricsRecorder) -> Self {
        self.settings.metrics = Some(recorder);
        self
    }

    /// Turns the access log off (`false`) whatever the configuration asks, or leaves it to the
    /// configuration (`true`, the default).
    ///
    /// With the access log off, a log file the configuration names is never opened:
    ///
    /// ```
    /// use mesh::config::MeshConfig;
    /// let file = std::env::temp_dir().join("mesh-doc-no-such-dir").join("access.log");
    /// let config = MeshConfig { access_log_file: Some(file.display().to_string()), ..Default::default() };
    /// let logging = mesh::Mesh::builder().mesh_config(config.clone()).build();
    /// assert!(matches!(logging, Err(mesh::Error::Start(_))), "the file cannot be opened");
    /// let quiet = mesh::Mesh::builder().mesh_config(config).access_log(false).build();
    /// assert!(quiet.is_ok());
    /// ```
    pub fn access_log(mut self, enabled: bool) -> Self {
        self.settings.disable_access_log = !enabled;
        self
    }

    /// Validates the configuration and builds the mesh. Spans are exported only when a
    /// collector is configured, and that needs a tokio runtime.
    ///
    /// ```
    /// # fn main() -> Result<(), mesh::Error> {
    /// let mesh = mesh::Mesh::builder().access_log(false).build()?;
    /// assert_eq!(mesh.version(), 1);
    /// let typo = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: catalog}\nspec: {hostz: [catalog]}\n";
    /// match mesh::Mesh::builder().yaml(typo).build() {
    ///     Err(mesh::Error::Config(problems)) => assert!(problems.to_string().contains("hostz")),
    ///     other => panic!("expected a configuration error, got {other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn build(self) -> Result<Mesh, Error> {
        let loaded = self.load()?;
        Mesh::start(loaded, self.settings)
    }

    /// Loads every source and validates them together, so that a resource may refer to one
    /// from another source.
    fn load(&self) -> Result<Loaded, Error> {
        Ok(self.validated()?)
    }

    /// The mesh settings given with [`mesh_config`](Self::mesh_config) replace the others
    /// before validation, so that they are checked, and resources may refer to them (a
    /// Telemetry to their tracing provider).
    #[cfg(feature = "yaml")]
    fn validated(&self) -> Result<Loaded, Vec<Diagnostic>> {
        let mut loader = Loader::new();
        for path in &self.paths {
            loader.add_path(path);
        }
        for text in &self.yaml {
            loader.add_text(text);
        }
        loader.add_config(self.rust.clone());
        if let Some(mesh) = &self.mesh_config {
            loader.replace_mesh(mesh.clone());
        }
        loader.finish()
    }

    /// Without the `yaml` feature the resources are Rust's alone.
    #[cfg(not(feature = "yaml"))]
    fn validated(&self) -> Result<Loaded, Vec<Diagnostic>> {
        let mut config = self.rust.clone();
        if let Some(mesh) = &self.mesh_config {
            config.mesh = mesh.clone();
        }
        config.validate()
    }
}
