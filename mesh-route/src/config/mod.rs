//! The Istio configuration the mesh runs on: a serde model of VirtualService,
//! DestinationRule, ServiceEntry, Sidecar, Gateway, Telemetry, Flagger's Canary and mesh-wide settings,
//! a loader for
//! multi-document YAML files and directories, and validation with precise diagnostics.
//!
//! ```
//! use mesh_route::config::{Config, OutboundMode};
//!
//! let yaml = r#"
//! apiVersion: networking.istio.io/v1
//! kind: ServiceEntry
//! metadata: {name: catalog, namespace: shop}
//! spec:
//!   hosts: [catalog]
//!   resolution: STATIC
//!   ports: [{number: 80, name: http, protocol: HTTP}]
//!   endpoints: [{address: 127.0.0.1, ports: {http: 9001}}]
//! "#;
//! let loaded = Config::from_yaml_str(yaml).expect("valid config");
//! assert!(loaded.warnings.is_empty());
//! assert_eq!(loaded.config.outbound_mode(), OutboundMode::AllowAny);
//! ```
//!
//! Loading collects every problem of every file ([`Diagnostic`]: file, document,
//! resource, field path, message) instead of stopping at the first; fields that are
//! parsed but not enforced by the data plane yet are reported as warnings (see
//! [`enforcement`]).

pub mod authorization_policy;
pub mod canary;
mod checks;
mod cross_resource;
pub mod destination_rule;
pub mod diagnostic;
pub mod duration;
pub mod enforcement;
pub mod extension_provider;
pub mod gateway;
#[cfg(feature = "yaml")]
mod loader;
#[cfg(feature = "yaml")]
pub use loader::{Loader, yaml_files};
pub mod mesh_config;
pub mod peer_authentication;
pub mod resource;
mod resource_rules;
mod route_rules;
pub mod service_entry;
pub mod shared_types;
pub mod sidecar;
pub mod suggest;
pub mod telemetry;
pub mod traffic_policy;
mod traffic_policy_rules;
mod validate;
pub mod virtual_service;

#[cfg(feature = "yaml")]
use std::path::Path;

use std::borrow::Cow;

use crate::table::SourceWorkload;

use serde::Serialize;

pub use authorization_policy::{AuthorizationAction, AuthorizationPolicy};
pub use canary::{Canary, CanaryRouting};
pub use destination_rule::{DestinationRule, Subset};
pub use diagnostic::{Diagnostic, Origin, Severity};
pub use duration::{Duration, InvalidDuration};
pub use extension_provider::{
    DefaultProviders, ExtensionProvider, TraceContextOption, ZipkinProvider,
};
pub use gateway::{Gateway, GatewayPort, GatewayServer, ServerKind};
pub use mesh_config::{
    AccessLogEncoding, CustomTag, MeshConfig, MeshOutboundTrafficPolicy, ProxyConfig, Tracing,
    ZipkinTracing,
};
pub use peer_authentication::{MtlsMode, PeerAuthentication};
pub use resource::{ObjectMeta, Resource};
pub use route_rules::RETRY_ON_TOKENS;
pub use service_entry::{Location, Resolution, ServiceEntry, ServicePort, WorkloadEntry};
pub use shared_types::{
    Percent, PolicyTargetReference, PolicyWorkloadSelector, PortSelector, StringMatch,
    WorkloadSelector,
};
pub use sidecar::{
    CaptureMode, IstioEgressListener, IstioIngressListener, OutboundMode, OutboundTrafficPolicy,
    ServerTlsMode, ServerTlsSettings, Sidecar, SidecarPort, TlsCertificate, TlsProtocol,
};
pub use telemetry::{
    AccessLogFilter, AccessLogging, IstioMetric, LogSelector, MetricSelector, Metrics,
    MetricsOverrides, ProviderRef, TagOperation, TagOverride, Telemetry, TelemetryCustomTag,
    TelemetryTracing, TracingEnvironment, TracingLiteral, TracingRequestHeader, TracingSelector,
    WorkloadMode,
};
pub use traffic_policy::{
    ClientTlsMode, ClientTlsSettings, ConnectionKeepalive, ConnectionPoolSettings,
    ConsistentHashLb, H2UpgradePolicy, HttpCookie, HttpCookieAttribute, HttpSettings,
    LoadBalancerSettings, LocalityDistribute, LocalityFailover, LocalityLoadBalancerSetting,
    MagLev, OutlierDetection, PortTrafficPolicy, ProxyProtocol, ProxyProtocolVersion, RetryBudget,
    RingHash, SimpleLb, TcpKeepalive, TcpSettings, TrafficPolicy, TunnelSettings,
    WarmupConfiguration, ZoneAwareLoadBalancerSetting,
};
pub use virtual_service::{
    CorsPolicy, Delegate, Destination, FaultAbort, FaultDelay, HeaderOperations, Headers, HttpBody,
    HttpDirectResponse, HttpFaultInjection, HttpMatchRequest, HttpMirrorPolicy, HttpRedirect,
    HttpRetry, HttpRewrite, HttpRoute, HttpRouteDestination, L4MatchAttributes,
    RedirectPortSelection, RegexRewrite, RouteDestination, TcpRoute, TlsMatchAttributes, TlsRoute,
    UnmatchedPreflights, VirtualService,
};

/// Every resource loaded, and the merged mesh-wide settings.
///
/// ```
/// use mesh_route::config::{Config, Resource, ServiceEntry};
///
/// let mut config = Config::default();
/// let catalog = ServiceEntry { hosts: vec!["catalog.example.com".into()], ..Default::default() };
/// config.service_entries.push(Resource::new("catalog", catalog));
/// // A configuration built in Rust is checked like a loaded one.
/// let config = config.validate().unwrap().config;
/// assert_eq!(config.service_entries[0].meta.name, "catalog");
///
/// // A ServiceEntry without hosts is rejected.
/// let mut invalid = Config::default();
/// invalid.service_entries.push(Resource::new("empty", ServiceEntry::default()));
/// assert!(invalid.validate().is_err());
/// ```
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// VirtualServices, in load order.
    pub virtual_services: Vec<Resource<VirtualService>>,
    /// DestinationRules, in load order.
    pub destination_rules: Vec<Resource<DestinationRule>>,
    /// ServiceEntries, in load order.
    pub service_entries: Vec<Resource<ServiceEntry>>,
    /// Sidecars, in load order.
    pub sidecars: Vec<Resource<Sidecar>>,
    /// Telemetries (`telemetry.istio.io`), in load order.
    pub telemetries: Vec<Resource<Telemetry>>,
    /// Gateways, in load order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<Resource<Gateway>>,
    /// AuthorizationPolicies (`security.istio.io`), in load order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authorization_policies: Vec<Resource<AuthorizationPolicy>>,
    /// PeerAuthentications (`security.istio.io`), in load order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peer_authentications: Vec<Resource<PeerAuthentication>>,
    /// Canaries (`flagger.app`), in load order: each writes the routes of its service.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub canaries: Vec<Resource<Canary>>,
    /// How each Canary's traffic is split now, by `namespace/name`, as the canary controller
    /// set it; a Canary without an entry sends everything to its primary.
    #[serde(skip_serializing_if = "canary::CanaryRoutes::is_empty")]
    pub canary_routes: canary::CanaryRoutes,
    /// Mesh settings merged from `MeshConfig` / `IstioOperator` documents (later
    /// documents override earlier ones field by field); default when there are none.
    pub mesh: MeshConfig,
}

/// A valid configuration and the warnings found while loading it.
///
/// ```
/// use mesh_route::config::Config;
///
/// let loaded = Config::from_yaml_str("apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {}\n").unwrap();
/// assert!(loaded.warnings.iter().all(|w| !w.is_error()));
/// assert!(loaded.config.virtual_services.is_empty());
/// ```
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Warnings (no errors: with errors, loading returns `Err`).
    pub warnings: Vec<Diagnostic>,
}

impl Config {
    /// Loads multi-document YAML text (diagnostics name the file `<inline>`). Feature `yaml`.
    ///
    /// Returns every error and warning when there is at least one error.
    ///
    /// ```
    /// use mesh_route::config::Config;
    ///
    /// let ok = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\nspec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n";
    /// assert_eq!(Config::from_yaml_str(ok).unwrap().config.service_entries.len(), 1);
    /// // Errors name the file `<inline>`.
    /// let errors = Config::from_yaml_str("kind: [").unwrap_err();
    /// assert!(errors[0].is_error());
    /// assert_eq!(errors[0].origin.as_ref().unwrap().file.to_str(), Some("<inline>"));
    /// ```
    #[cfg(feature = "yaml")]
    pub fn from_yaml_str(text: &str) -> Result<Loaded, Vec<Diagnostic>> {
        let mut loader = Loader::new();
        loader.add_text(text);
        loader.finish()
    }

    /// Loads files and directories: a directory contributes its `*.yaml` and `*.yml`
    /// files, sorted by name (not recursively). All paths are validated together.
    ///
    /// Returns every error and warning when there is at least one error.
    ///
    /// ```
    /// use mesh_route::config::Config;
    ///
    /// let dir = std::env::temp_dir().join(format!("mesh-route-load-paths-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// std::fs::write(dir.join("catalog.yaml"), "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\nspec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n").unwrap();
    /// std::fs::write(dir.join("notes.txt"), "not YAML, not read").unwrap();
    /// let loaded = Config::load_paths(&[&dir]);
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// assert_eq!(loaded.unwrap().config.service_entries[0].meta.name, "catalog");
    /// ```
    #[cfg(feature = "yaml")]
    pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> Result<Loaded, Vec<Diagnostic>> {
        let mut loader = Loader::new();
        for path in paths {
            loader.add_path(path.as_ref());
        }
        loader.finish()
    }

    /// Adds the resources of `other` after this configuration's, and overlays its mesh settings
    /// ([`MeshConfig::merge`]).
    ///
    /// ```
    /// use mesh_route::config::{Config, MeshConfig, Resource, ServiceEntry};
    ///
    /// let mut config = Config::default();
    /// config.service_entries.push(Resource::new("a", ServiceEntry::default()));
    /// let mut other = Config::default();
    /// other.service_entries.push(Resource::new("b", ServiceEntry::default()));
    /// other.mesh = MeshConfig { trust_domain: Some("example.org".into()), ..Default::default() };
    /// config.merge(other);
    /// let names: Vec<_> = config.service_entries.iter().map(|e| e.meta.name.as_str()).collect();
    /// assert_eq!(names, ["a", "b"]);
    /// assert_eq!(config.mesh.trust_domain.as_deref(), Some("example.org"));
    /// ```
    pub fn merge(&mut self, other: Config) {
        // Destructured in full, so that a resource kind added to `Config` cannot be forgotten
        // here.
        let Config {
            virtual_services,
            destination_rules,
            service_entries,
            sidecars,
            telemetries,
            gateways,
            authorization_policies,
            peer_authentications,
            canaries,
            canary_routes,
            mesh,
        } = other;
        self.virtual_services.extend(virtual_services);
        self.destination_rules.extend(destination_rules);
        self.service_entries.extend(service_entries);
        self.sidecars.extend(sidecars);
        self.telemetries.extend(telemetries);
        self.gateways.extend(gateways);
        self.authorization_policies.extend(authorization_policies);
        self.peer_authentications.extend(peer_authentications);
        self.canaries.extend(canaries);
        self.canary_routes.extend(canary_routes);
        self.mesh.merge(mesh);
    }

    /// Validates a configuration built in Rust (or changed after loading) as loading does: every
    /// resource, its mesh settings, and the references between them.
    ///
    /// Returns every error and warning when there is at least one error.
    ///
    /// ```
    /// use mesh_route::config::{Config, Resource, VirtualService};
    ///
    /// let mut config = Config::default();
    /// // A VirtualService must name at least one host.
    /// config.virtual_services.push(Resource::new("catalog", VirtualService::default()));
    /// let errors = config.validate().unwrap_err();
    /// assert!(errors[0].to_string().contains("hosts"), "{}", errors[0]);
    /// ```
    pub fn validate(self) -> Result<Loaded, Vec<Diagnostic>> {
        let mut diagnostics = Vec::new();
        let mesh = [validate::MeshDocument::built(self.mesh.clone())];
        validate::validate_all(&self, &mesh, &mut diagnostics);
        if diagnostics.iter().any(Diagnostic::is_error) {
            Err(diagnostics)
        } else {
            Ok(Loaded {
                config: self,
                warnings: diagnostics,
            })
        }
    }

    /// The configuration as the data plane runs it: with the VirtualService of each Canary
    /// (see [`Canary::virtual_service`]) added, its traffic split as
    /// [`canary_routes`](Self::canary_routes) says. Borrowed when there are no Canaries.
    ///
    /// ```
    /// use mesh_route::config::{Canary, CanaryRouting, Config, Resource};
    ///
    /// let mut spec = Canary::default();
    /// spec.target_ref.name = "catalog".into();
    /// spec.service.port = 80;
    /// let mut config = Config::default();
    /// config.canaries.push(Resource::new("catalog", spec));
    /// config.canary_routes.insert("catalog".into(), CanaryRouting { canary_weight: 30, ..Default::default() });
    /// let routed = config.with_canary_routes();
    /// assert_eq!(routed.virtual_services[0].spec.http[0].route[1].weight, Some(30));
    /// ```
    pub fn with_canary_routes(&self) -> Cow<'_, Config> {
        if self.canaries.is_empty() {
            return Cow::Borrowed(self);
        }
        let mut routed = self.clone();
        for canary in &self.canaries {
            let routing = self
                .canary_routes
                .get(&canary.meta.qualified_name())
                .copied()
                .unwrap_or_default();
            routed.virtual_services.push(Resource {
                meta: canary.meta.clone(),
                origin: canary.origin.clone(),
                spec: Canary::virtual_service(canary, routing),
            });
        }
        Cow::Owned(routed)
    }

    /// The PeerAuthentication mode of `port` (any, for `None`) of the workload with `labels` in
    /// `namespace` (see [`peer_authentication::mode_for`]).
    ///
    /// ```
    /// use mesh_route::config::{Config, MtlsMode};
    /// use std::collections::BTreeMap;
    ///
    /// let yaml = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\nspec: {mtls: {mode: STRICT}}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// assert_eq!(config.mtls_mode("shop", &BTreeMap::new(), None), MtlsMode::Strict);
    /// assert_eq!(config.mtls_mode("other", &BTreeMap::new(), None), MtlsMode::Permissive);
    /// ```
    pub fn mtls_mode(
        &self,
        namespace: &str,
        labels: &std::collections::BTreeMap<String, String>,
        port: Option<u32>,
    ) -> MtlsMode {
        peer_authentication::mode_for(
            &self.peer_authentications,
            self.mesh.root_namespace(),
            namespace,
            labels,
            port,
        )
    }

    /// What happens to traffic for hosts not in the registry: the `outboundTrafficPolicy`
    /// of the first Sidecar without `workloadSelector`, else the mesh config's, else
    /// `ALLOW_ANY`.
    ///
    /// ```
    /// use mesh_route::config::{Config, OutboundMode};
    ///
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default}\nspec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// assert_eq!(config.outbound_mode(), OutboundMode::RegistryOnly);
    /// assert_eq!(Config::default().outbound_mode(), OutboundMode::AllowAny);
    /// ```
    pub fn outbound_mode(&self) -> OutboundMode {
        self.sidecars
            .iter()
            .find(|s| s.spec.workload_selector.is_none())
            .and_then(|s| s.spec.outbound_traffic_policy.as_ref())
            .and_then(|p| p.mode)
            .or_else(|| self.mesh.outbound_mode())
            .unwrap_or_default()
    }

    /// The mesh-wide tracing settings: `tracing[0]` of the first mesh-wide Telemetry (in load
    /// order) with a `tracing` section; `None` when there is none. A Telemetry is mesh-wide
    /// when it applies to every workload — no `selector`, `targetRef` or `targetRefs`
    /// ([`Telemetry::selects_all`]) — and belongs to the root namespace
    /// ([`MeshConfig::root_namespace`], `istio-system` by default) or to none.
    ///
    /// ```
    /// use mesh_route::config::Config;
    ///
    /// let yaml = "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh-default, namespace: istio-system}\nspec: {tracing: [{randomSamplingPercentage: 10}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// assert_eq!(config.mesh_tracing().unwrap().random_sampling_percentage, Some(10.0));
    /// assert!(Config::default().mesh_tracing().is_none());
    /// ```
    pub fn mesh_tracing(&self) -> Option<&TelemetryTracing> {
        self.telemetry_levels(None)
            .find(|t| !t.tracing.is_empty())?
            .tracing
            .first()
    }

    /// The tracing entry for one side (`Client`: outbound, `Server`: inbound) of `workload`, as
    /// Istio layers Telemetries: from the most specific one with an entry for that side
    /// ([`Telemetry::tracing_for`]) — one of the workload's namespace whose `selector` selects
    /// its labels, then a selector-less one of its namespace, then a mesh-wide one (see
    /// [`mesh_tracing`](Self::mesh_tracing)). Telemetries of other namespaces do not apply.
    ///
    /// ```
    /// use mesh_route::{config::{Config, WorkloadMode}, table::SourceWorkload};
    ///
    /// let yaml = r#"
    /// apiVersion: telemetry.istio.io/v1
    /// kind: Telemetry
    /// metadata: {name: mesh-default, namespace: istio-system}
    /// spec:
    ///   tracing:
    ///   - {match: {mode: SERVER}, randomSamplingPercentage: 100}
    /// ---
    /// apiVersion: telemetry.istio.io/v1
    /// kind: Telemetry
    /// metadata: {name: shop, namespace: shop}
    /// spec:
    ///   tracing:
    ///   - {randomSamplingPercentage: 5}
    /// ---
    /// apiVersion: telemetry.istio.io/v1
    /// kind: Telemetry
    /// metadata: {name: checkout, namespace: shop}
    /// spec:
    ///   selector: {matchLabels: {app: checkout}}
    ///   tracing:
    ///   - {randomSamplingPercentage: 50}
    /// "#;
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let workload = |namespace: &str, app: &str| SourceWorkload {
    ///     labels: [("app".to_string(), app.to_string())].into(),
    ///     namespace: namespace.into(),
    /// };
    /// let sampling = |side, workload: &SourceWorkload| {
    ///     config.tracing_for(side, workload).and_then(|t| t.random_sampling_percentage)
    /// };
    /// let (web, catalog, checkout) = (workload("web", "web"), workload("shop", "catalog"), workload("shop", "checkout"));
    /// assert_eq!(sampling(WorkloadMode::Server, &web), Some(100.0)); // mesh-wide
    /// assert_eq!(sampling(WorkloadMode::Client, &web), None);
    /// assert_eq!(sampling(WorkloadMode::Server, &catalog), Some(5.0)); // the namespace's own
    /// assert_eq!(sampling(WorkloadMode::Client, &catalog), Some(5.0));
    /// assert_eq!(sampling(WorkloadMode::Client, &checkout), Some(50.0)); // the workload's own
    /// ```
    pub fn tracing_for<'a>(
        &'a self,
        side: WorkloadMode,
        workload: &'a SourceWorkload,
    ) -> Option<&'a TelemetryTracing> {
        self.telemetry_levels(Some(workload))
            .find_map(|t| t.tracing_for(side))
            .map(|(_, entry)| entry)
    }

    /// The `accessLogging` entry for one side of `workload`, chosen among Telemetries as
    /// [`tracing_for`](Self::tracing_for) chooses.
    ///
    /// ```
    /// use mesh_route::{config::{Config, WorkloadMode}, table::SourceWorkload};
    ///
    /// let yaml = r#"
    /// apiVersion: telemetry.istio.io/v1
    /// kind: Telemetry
    /// metadata: {name: mesh-default, namespace: istio-system}
    /// spec:
    ///   accessLogging:
    ///   - {match: {mode: CLIENT}, disabled: true}
    /// ---
    /// apiVersion: telemetry.istio.io/v1
    /// kind: Telemetry
    /// metadata: {name: quiet, namespace: batch}
    /// spec:
    ///   accessLogging:
    ///   - {disabled: true}
    /// "#;
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let disabled = |side, namespace: &str| {
    ///     let workload = SourceWorkload { namespace: namespace.into(), ..Default::default() };
    ///     config.access_logging_for(side, &workload).and_then(|l| l.disabled)
    /// };
    /// assert_eq!(disabled(WorkloadMode::Client, "shop"), Some(true));
    /// assert_eq!(disabled(WorkloadMode::Server, "shop"), None);
    /// assert_eq!(disabled(WorkloadMode::Server, "batch"), Some(true));
    /// ```
    pub fn access_logging_for<'a>(
        &'a self,
        side: WorkloadMode,
        workload: &'a SourceWorkload,
    ) -> Option<&'a AccessLogging> {
        self.telemetry_levels(Some(workload))
            .find_map(|t| t.access_logging_for(side))
            .map(|(_, entry)| entry)
    }

    /// The Telemetries that apply to `workload` (`None`: to every workload), the most specific
    /// first: those of its namespace whose `selector` selects it, those of its namespace with
    /// none (unless it is the root namespace), then the mesh-wide ones; each level in load
    /// order. A Telemetry with a `targetRef` applies to none (this proxy is no Gateway API
    /// resource); loading says so.
    fn telemetry_levels<'a>(
        &'a self,
        workload: Option<&'a SourceWorkload>,
    ) -> impl Iterator<Item = &'a Telemetry> + 'a {
        let root = self.mesh.root_namespace();
        let untargeted = self
            .telemetries
            .iter()
            .filter(|t| t.spec.applies_to_proxies());
        let of_workload_namespace = move |t: &Resource<Telemetry>| {
            workload.is_some_and(|w| t.namespace() == Some(w.namespace.as_str()))
        };
        let selecting = untargeted.clone().filter(move |t| {
            of_workload_namespace(t)
                && PolicyWorkloadSelector::narrowing(t.spec.selector.as_ref())
                    .zip(workload)
                    .is_some_and(|(selector, w)| selector.selects(&w.labels))
        });
        let applying = untargeted.filter(|t| t.spec.selects_all());
        let own = applying
            .clone()
            .filter(move |t| of_workload_namespace(t) && t.namespace() != Some(root));
        let mesh_wide = applying.filter(move |t| t.namespace().is_none_or(|ns| ns == root));
        selecting.chain(own).chain(mesh_wide).map(|t| &t.spec)
    }
}

#[cfg(test)]
mod tests;
