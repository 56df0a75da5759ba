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
    #[cfg(feature = "yaml")]
    pub fn yaml(mut self, text: impl Into<String>) -> Self {
        self.yaml.push(text.into());
        self
    }

    /// Adds YAML files, or directories of `*.yaml`/`*.yml` files, as the sidecar's `--config`.
    /// Feature `yaml`.
    #[cfg(feature = "yaml")]
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.paths.push(path.into());
        self
    }

    /// Adds a VirtualService written in Rust.
    pub fn virtual_service(mut self, resource: Resource<VirtualService>) -> Self {
        self.rust.virtual_services.push(resource);
        self
    }

    /// Adds a DestinationRule written in Rust.
    pub fn destination_rule(mut self, resource: Resource<DestinationRule>) -> Self {
        self.rust.destination_rules.push(resource);
        self
    }

    /// Adds a ServiceEntry written in Rust.
    pub fn service_entry(mut self, resource: Resource<ServiceEntry>) -> Self {
        self.rust.service_entries.push(resource);
        self
    }

    /// Adds a Telemetry written in Rust.
    pub fn telemetry(mut self, resource: Resource<Telemetry>) -> Self {
        self.rust.telemetries.push(resource);
        self
    }

    /// Sets the mesh-wide settings (replacing any merged from YAML `MeshConfig` documents).
    pub fn mesh_config(mut self, mesh: MeshConfig) -> Self {
        self.mesh_config = Some(mesh);
        self
    }

    /// The workload this process is: the source labels of its client metrics and the
    /// destination labels of its server metrics (defaults: Istio's `ISTIO_META_*`/`POD_*`
    /// environment variables, then `unknown`).
    pub fn workload(mut self, workload: WorkloadSettings) -> Self {
        self.settings.workload = workload;
        self
    }

    /// Records the Istio metrics with `recorder` instead of the mesh's own Prometheus recorder
    /// ([`Mesh::render_prometheus`] then renders nothing).
    pub fn metrics(mut self, recorder: MetricsRecorder) -> Self {
        self.settings.metrics = Some(recorder);
        self
    }

    /// Turns the access log off (`false`) whatever the configuration asks, or leaves it to the
    /// configuration (`true`, the default).
    pub fn access_log(mut self, enabled: bool) -> Self {
        self.settings.disable_access_log = !enabled;
        self
    }

    /// Validates the configuration and builds the mesh. Spans are exported only when a
    /// collector is configured, and that needs a tokio runtime.
    pub fn build(self) -> Result<Mesh, Error> {
        let loaded = self.load()?;
        Mesh::start(loaded, self.settings)
    }

    /// Loads every source and validates them together, so that a resource may refer to one
    /// from another source.
    fn load(&self) -> Result<Loaded, Error> {
        let mut loaded = self.validated()?;
        if let Some(mesh) = &self.mesh_config {
            loaded.config.mesh = mesh.clone();
        }
        Ok(loaded)
    }

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
        loader.finish()
    }

    /// Without the `yaml` feature the resources are Rust's alone.
    #[cfg(not(feature = "yaml"))]
    fn validated(&self) -> Result<Loaded, Vec<Diagnostic>> {
        self.rust.clone().validate()
    }
}
