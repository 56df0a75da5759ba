//! [`MeshBuilder`]: a [`Mesh`](crate::Mesh) from Istio YAML, from configuration written in
//! Rust, or both, with the workload's identity and where metrics go.

use super::{Error, Mesh};
use mesh_proxy::{sidecar::SidecarSettings, workload_identity::WorkloadSettings};
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

    /// Loads every source and validates them together.
    fn load(&self) -> Result<Loaded, Error> {
        let (mut config, warnings) = self.load_yaml()?;
        merge(&mut config, self.rust.clone());
        if let Some(mesh) = &self.mesh_config {
            config.mesh = mesh.clone();
        }
        // Cross-resource rules (a subset a route names, a host a DestinationRule names) can only
        // be checked once every source is in.
        let mut validated = config.validate()?;
        for warning in warnings {
            if !validated.warnings.contains(&warning) {
                validated.warnings.push(warning);
            }
        }
        Ok(validated)
    }
}

impl MeshBuilder {
    /// Loads the YAML sources, each validated alone (references between them are checked
    /// once everything is in).
    #[cfg(feature = "yaml")]
    fn load_yaml(&self) -> Result<(Config, Vec<Diagnostic>), Error> {
        let mut warnings = Vec::new();
        let mut config = Config::default();
        let mut add = |loaded: Result<Loaded, Vec<Diagnostic>>| -> Result<(), Error> {
            let loaded = loaded?;
            warnings.extend(loaded.warnings);
            merge(&mut config, loaded.config);
            Ok(())
        };
        if !self.paths.is_empty() {
            add(Config::load_paths(&self.paths))?;
        }
        for text in &self.yaml {
            add(Config::from_yaml_str(text))?;
        }
        Ok((config, warnings))
    }

    /// Without the `yaml` feature there are no YAML sources.
    #[cfg(not(feature = "yaml"))]
    fn load_yaml(&self) -> Result<(Config, Vec<Diagnostic>), Error> {
        Ok((Config::default(), Vec::new()))
    }
}

/// Appends `more`'s resources to `config`; `more`'s mesh settings win when it has any.
fn merge(config: &mut Config, more: Config) {
    config.virtual_services.extend(more.virtual_services);
    config.destination_rules.extend(more.destination_rules);
    config.service_entries.extend(more.service_entries);
    config.sidecars.extend(more.sidecars);
    config.telemetries.extend(more.telemetries);
    config.mesh.merge(more.mesh);
}
