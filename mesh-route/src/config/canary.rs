//! The `Canary` resource (`flagger.app/v1beta1`): Flagger's progressive-delivery spec, read as
//! Flagger writes it, and the VirtualService it stands for.
//!
//! A Canary names a service (`spec.service.name`, else `spec.targetRef.name`) whose traffic is
//! split between a *primary* and a *canary* destination. As in Flagger these are the hosts
//! `<service>-primary` and `<service>-canary`; outside Kubernetes they are more often two subsets
//! of one service, named by annotations (Flagger ignores annotations it does not know):
//!
//! | annotation | meaning |
//! |---|---|
//! | `mesh/primary-subset`, `mesh/canary-subset` | subsets of the service host (a DestinationRule's) |
//! | `mesh/primary-host`, `mesh/canary-host` | hosts, instead of `<service>-primary` / `-canary` |
//! | `mesh/canary-workload` | the canary's `destination_workload` in Prometheus queries (default: `targetRef.name`, as Flagger's) |
//!
//! The Canary writes the routes of its hosts itself, as Flagger writes its VirtualService: no
//! other VirtualService may claim them. [`Canary::virtual_service`] builds those routes for a
//! [`CanaryRouting`], which the canary controller moves step by step; the sidecar compiles the
//! configuration with the routing each Canary has ([`Config::with_canary_routes`]).
//!
//! [`Config::with_canary_routes`]: super::Config::with_canary_routes

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::diagnostic::Reporter;
use super::duration::Duration;
use super::resource::Resource;
use super::shared_types::{Percent, PortSelector};
use super::virtual_service::{
    CorsPolicy, Destination, Headers, HttpMatchRequest, HttpRetry, HttpRewrite, HttpRoute,
    HttpRouteDestination, VirtualService,
};

/// The built-in metric of the share of non-5xx answers, in percent.
///
/// ```
/// use mesh_route::config::{Config, canary::REQUEST_SUCCESS_RATE};
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: catalog, namespace: shop}
/// # spec: {hosts: [catalog-primary, catalog-canary], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: flagger.app/v1beta1
/// # kind: Canary
/// # metadata: {name: catalog, namespace: shop}
/// # spec:
/// #   targetRef: {apiVersion: apps/v1, kind: Deployment, name: catalog}
/// #   service: {port: 80, hosts: [catalog.example.com]}
/// #   analysis:
/// #     interval: 30s
/// #     threshold: 3
/// #     stepWeight: 20
/// #     maxWeight: 60
/// #     metrics:
/// #     - {name: request-success-rate, thresholdRange: {min: 99}, interval: 2m}
/// #     - {name: request-duration, threshold: 500}
/// # "#;
/// # let config = Config::from_yaml_str(yaml).unwrap().config;
/// let canary = &config.canaries[0];
/// assert_eq!(canary.spec.analysis.metrics[0].name, REQUEST_SUCCESS_RATE);
/// ```
pub const REQUEST_SUCCESS_RATE: &str = "request-success-rate";
/// The built-in metric of the p99 request duration, in milliseconds.
///
/// ```
/// use mesh_route::config::{Config, canary::REQUEST_DURATION};
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: catalog, namespace: shop}
/// # spec: {hosts: [catalog-primary, catalog-canary], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: flagger.app/v1beta1
/// # kind: Canary
/// # metadata: {name: catalog, namespace: shop}
/// # spec:
/// #   targetRef: {apiVersion: apps/v1, kind: Deployment, name: catalog}
/// #   service: {port: 80, hosts: [catalog.example.com]}
/// #   analysis:
/// #     interval: 30s
/// #     threshold: 3
/// #     stepWeight: 20
/// #     maxWeight: 60
/// #     metrics:
/// #     - {name: request-success-rate, thresholdRange: {min: 99}, interval: 2m}
/// #     - {name: request-duration, threshold: 500}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let canary = &config.canaries[0];
/// assert_eq!(canary.spec.analysis.metrics[1].name, REQUEST_DURATION);
/// ```
pub const REQUEST_DURATION: &str = "request-duration";

/// Annotation naming the primary's subset of the service host.
///
/// ```
/// use mesh_route::config::{Canary, Resource, canary::PRIMARY_SUBSET};
///
/// let mut canary = Resource::new("catalog", Canary::default());
/// canary.spec.target_ref.name = "catalog".into();
/// canary.spec.service.port = 80;
/// canary.meta.annotations.insert(PRIMARY_SUBSET.into(), "v1".into());
/// let primary = Canary::primary(&canary);
/// assert_eq!((primary.host.as_str(), primary.subset.as_deref()), ("catalog", Some("v1")));
/// ```
pub const PRIMARY_SUBSET: &str = "mesh/primary-subset";
/// Annotation naming the canary's subset of the service host.
///
/// ```
/// use mesh_route::config::{Canary, Resource, canary::CANARY_SUBSET};
///
/// let mut canary = Resource::new("catalog", Canary::default());
/// canary.spec.target_ref.name = "catalog".into();
/// canary.spec.service.port = 80;
/// canary.meta.annotations.insert(CANARY_SUBSET.into(), "v2".into());
/// let destination = Canary::canary(&canary);
/// assert_eq!((destination.host.as_str(), destination.subset.as_deref()), ("catalog", Some("v2")));
/// ```
pub const CANARY_SUBSET: &str = "mesh/canary-subset";
/// Annotation naming the primary's host.
///
/// ```
/// use mesh_route::config::{Canary, Resource, canary::PRIMARY_HOST};
///
/// let mut canary = Resource::new("catalog", Canary::default());
/// canary.spec.target_ref.name = "catalog".into();
/// canary.spec.service.port = 80;
/// canary.meta.annotations.insert(PRIMARY_HOST.into(), "catalog-stable".into());
/// assert_eq!(Canary::primary(&canary).host, "catalog-stable");
/// ```
pub const PRIMARY_HOST: &str = "mesh/primary-host";
/// Annotation naming the canary's host.
///
/// ```
/// use mesh_route::config::{Canary, Resource, canary::CANARY_HOST};
///
/// let mut canary = Resource::new("catalog", Canary::default());
/// canary.spec.target_ref.name = "catalog".into();
/// canary.spec.service.port = 80;
/// canary.meta.annotations.insert(CANARY_HOST.into(), "catalog-next".into());
/// assert_eq!(Canary::canary(&canary).host, "catalog-next");
/// assert_eq!(Canary::primary(&canary).host, "catalog-primary"); // Flagger's default
/// ```
pub const CANARY_HOST: &str = "mesh/canary-host";
/// Annotation naming the canary's workload in Prometheus queries.
///
/// ```
/// use mesh_route::config::{Config, canary::CANARY_WORKLOAD};
///
/// let yaml = format!(r#"
/// apiVersion: networking.istio.io/v1
/// kind: ServiceEntry
/// metadata: {{name: catalog}}
/// spec: {{hosts: [catalog-primary, catalog-canary], resolution: STATIC, ports: [{{number: 80, name: http}}], endpoints: [{{address: 127.0.0.1}}]}}
/// ---
/// apiVersion: flagger.app/v1beta1
/// kind: Canary
/// metadata: {{name: catalog, annotations: {{{CANARY_WORKLOAD}: catalog-v2}}}}
/// spec: {{targetRef: {{name: catalog}}, service: {{port: 80}}, analysis: {{stepWeight: 10}}}}
/// "#);
/// let config = Config::from_yaml_str(&yaml).unwrap().config;
/// assert_eq!(config.canaries[0].meta.annotations[CANARY_WORKLOAD], "catalog-v2");
/// ```
pub const CANARY_WORKLOAD: &str = "mesh/canary-workload";

/// Flagger's analysis interval when none is given.
///
/// ```
/// use mesh_route::config::{Canary, canary::DEFAULT_INTERVAL};
///
/// assert_eq!(Canary::default().interval(), DEFAULT_INTERVAL);
/// ```
pub const DEFAULT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);
/// Flagger's metric window when none is given.
///
/// ```
/// use mesh_route::config::canary::{CanaryMetric, DEFAULT_METRIC_INTERVAL};
///
/// assert_eq!(CanaryMetric::default().window(), DEFAULT_METRIC_INTERVAL);
/// ```
pub const DEFAULT_METRIC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Flagger `Canary` spec; see the [module docs](self).
///
/// ```
/// use mesh_route::config::{Config, canary::Strategy};
///
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: ServiceEntry
/// metadata: {name: catalog, namespace: shop}
/// spec: {hosts: [catalog-primary, catalog-canary], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
/// ---
/// apiVersion: flagger.app/v1beta1
/// kind: Canary
/// metadata: {name: catalog, namespace: shop}
/// spec:
///   targetRef: {apiVersion: apps/v1, kind: Deployment, name: catalog}
///   service: {port: 80, hosts: [catalog.example.com]}
///   analysis:
///     interval: 30s
///     threshold: 3
///     stepWeight: 20
///     maxWeight: 60
///     metrics:
///     - {name: request-success-rate, thresholdRange: {min: 99}, interval: 2m}
///     - {name: request-duration, threshold: 500}
/// "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let canary = &config.canaries[0];
/// assert_eq!(canary.spec.service_name(), "catalog");
/// assert_eq!(canary.spec.strategy(), Strategy::Canary);
/// assert_eq!(config.with_canary_routes().virtual_services[0].spec.hosts, ["catalog", "catalog.example.com"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Canary {
    /// Mesh provider; only `istio` (the default) is meaningful here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Prometheus server judging this canary (`http://host:port`); without one, the sidecar's
    /// own counters do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_server: Option<String>,
    /// The workload released; its name is the default service name.
    pub target_ref: TargetRef,
    /// The service whose routes the Canary writes.
    pub service: CanaryService,
    /// How the canary is judged and how traffic moves (`canaryAnalysis` is Flagger's old name).
    #[serde(alias = "canaryAnalysis")]
    pub analysis: CanaryAnalysis,
    /// Promote without analysing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_analysis: bool,
    /// Hold the analysis where it is (as the admin's `pause` does).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// Kubernetes-only: no deployment to wait for here (warned, ignored).
    #[serde(skip_serializing)]
    pub progress_deadline_seconds: Option<serde_json::Value>,
    /// Kubernetes-only (warned, ignored).
    #[serde(skip_serializing)]
    pub autoscaler_ref: Option<serde_json::Value>,
    /// Kubernetes-only (warned, ignored).
    #[serde(skip_serializing)]
    pub revert_on_deletion: Option<serde_json::Value>,
}

/// `spec.targetRef`: the workload released.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: catalog, namespace: shop}
/// # spec: {hosts: [catalog-primary, catalog-canary], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: flagger.app/v1beta1
/// # kind: Canary
/// # metadata: {name: catalog, namespace: shop}
/// # spec:
/// #   targetRef: {apiVersion: apps/v1, kind: Deployment, name: catalog}
/// #   service: {port: 80, hosts: [catalog.example.com]}
/// #   analysis:
/// #     interval: 30s
/// #     threshold: 3
/// #     stepWeight: 20
/// #     maxWeight: 60
/// #     metrics:
/// #     - {name: request-success-rate, thresholdRange: {min: 99}, interval: 2m}
/// #     - {name: request-duration, threshold: 500}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let canary = &config.canaries[0];
/// let target = &canary.spec.target_ref;
/// assert_eq!((target.kind.as_deref(), target.name.as_str()), (Some("Deployment"), "catalog"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetRef {
    /// API version of the workload (`apps/v1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the workload (`Deployment`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the workload.
    pub name: String,
}

/// `spec.service`: the service and the settings of the routes the Canary writes.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: catalog, namespace: shop}
/// # spec: {hosts: [catalog-primary, catalog-canary], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: flagger.app/v1beta1
/// # kind: Canary
/// # metadata: {name: catalog, namespace: shop}
/// # spec:
/// #   targetRef: {apiVersion: apps/v1, kind: Deployment, name: catalog}
/// #   service: {port: 80, hosts: [catalog.example.com]}
/// #   analysis:
/// #     interval: 30s
/// #     threshold: 3
/// #     stepWeight: 20
/// #     maxWeight: 60
/// #     metrics:
/// #     - {name: request-success-rate, thresholdRange: {min: 99}, interval: 2m}
/// #     - {name: request-duration, threshold: 500}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let canary = &config.canaries[0];
/// let service = &canary.spec.service;
/// assert_eq!((service.name.as_deref(), service.port), (None, 80));
/// assert_eq!(service.hosts, ["catalog.example.com"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryService {
    /// Service name (default: `targetRef.name`); always among the routed hosts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Service port: the port of both destinations.
    pub port: u32,
    /// More hosts routed the same way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Gateways of the routes (empty: `mesh`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Requests the routes apply to (empty: all).
    #[serde(rename = "match", default, skip_serializing_if = "Vec::is_empty")]
    pub match_: Vec<HttpMatchRequest>,
    /// Route timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Route retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
    /// Route header operations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
    /// Route rewrite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpRewrite>,
    /// Route CORS policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors_policy: Option<CorsPolicy>,
    /// Kubernetes Service detail (warned, ignored).
    #[serde(skip_serializing)]
    pub port_name: Option<serde_json::Value>,
    /// Kubernetes Service detail (warned, ignored).
    #[serde(skip_serializing)]
    pub target_port: Option<serde_json::Value>,
    /// Kubernetes Service detail (warned, ignored).
    #[serde(skip_serializing)]
    pub port_discovery: Option<serde_json::Value>,
    /// Kubernetes Service detail (warned, ignored).
    #[serde(skip_serializing)]
    pub app_protocol: Option<serde_json::Value>,
    /// Flagger writes a DestinationRule from this; here it is refused (write the DestinationRule).
    #[serde(skip_serializing)]
    pub traffic_policy: Option<serde_json::Value>,
}

/// `spec.analysis`: how the canary is judged and how traffic moves.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: catalog, namespace: shop}
/// # spec: {hosts: [catalog-primary, catalog-canary], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: flagger.app/v1beta1
/// # kind: Canary
/// # metadata: {name: catalog, namespace: shop}
/// # spec:
/// #   targetRef: {apiVersion: apps/v1, kind: Deployment, name: catalog}
/// #   service: {port: 80, hosts: [catalog.example.com]}
/// #   analysis:
/// #     interval: 30s
/// #     threshold: 3
/// #     stepWeight: 20
/// #     maxWeight: 60
/// #     metrics:
/// #     - {name: request-success-rate, thresholdRange: {min: 99}, interval: 2m}
/// #     - {name: request-duration, threshold: 500}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let canary = &config.canaries[0];
/// let analysis = &canary.spec.analysis;
/// assert_eq!((analysis.step_weight, analysis.max_weight), (Some(20), Some(60)));
/// assert_eq!(analysis.metrics.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryAnalysis {
    /// Time between two passes (default 60 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Failed checks before rollback (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<i64>,
    /// Canary weight at which it is promoted (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_weight: Option<u32>,
    /// Canary weight added each pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_weight: Option<u32>,
    /// Canary weights to walk through (the last acts as `maxWeight`); `stepWeight` wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_weights: Vec<u32>,
    /// Weight moved to the promoted version each pass while promoting (default: all at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_weight_promotion: Option<u32>,
    /// Checks to pass for A/B testing (with `match`) or Blue/Green (without).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u32>,
    /// A/B testing: requests matching these go to the canary.
    #[serde(rename = "match", default, skip_serializing_if = "Vec::is_empty")]
    pub match_: Vec<HttpMatchRequest>,
    /// Mirror traffic to the canary (one mirrored pass before shifting; every Blue/Green pass).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mirror: bool,
    /// Percentage mirrored (0 or absent: 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror_weight: Option<u32>,
    /// Checks run each pass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<CanaryMetric>,
    /// Refused: the mesh calls no webhooks.
    #[serde(skip_serializing)]
    pub webhooks: Option<serde_json::Value>,
    /// Refused: not supported.
    #[serde(skip_serializing)]
    pub session_affinity: Option<serde_json::Value>,
    /// Warned, ignored: phases are logged and shown at `/canaries` instead.
    #[serde(skip_serializing)]
    pub alerts: Option<serde_json::Value>,
    /// Kubernetes-only (warned, ignored).
    #[serde(skip_serializing)]
    pub primary_ready_threshold: Option<serde_json::Value>,
    /// Kubernetes-only (warned, ignored).
    #[serde(skip_serializing)]
    pub canary_ready_threshold: Option<serde_json::Value>,
}

/// One check of `spec.analysis.metrics`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: catalog, namespace: shop}
/// # spec: {hosts: [catalog-primary, catalog-canary], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: flagger.app/v1beta1
/// # kind: Canary
/// # metadata: {name: catalog, namespace: shop}
/// # spec:
/// #   targetRef: {apiVersion: apps/v1, kind: Deployment, name: catalog}
/// #   service: {port: 80, hosts: [catalog.example.com]}
/// #   analysis:
/// #     interval: 30s
/// #     threshold: 3
/// #     stepWeight: 20
/// #     maxWeight: 60
/// #     metrics:
/// #     - {name: request-success-rate, thresholdRange: {min: 99}, interval: 2m}
/// #     - {name: request-duration, threshold: 500}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let canary = &config.canaries[0];
/// let success = &canary.spec.analysis.metrics[0];
/// assert_eq!(success.window(), std::time::Duration::from_secs(120));
/// assert!(success.range().admits(99.5));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryMetric {
    /// `request-success-rate` or `request-duration`.
    pub name: String,
    /// The window the metric is computed over (default 1 m).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Bounds the value must lie within (bounds included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_range: Option<ThresholdRange>,
    /// Flagger's deprecated form of `thresholdRange`: its `min` for `request-success-rate`, its
    /// `max` for `request-duration`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Refused: only the built-in metrics are supported.
    #[serde(skip_serializing)]
    pub template_ref: Option<serde_json::Value>,
    /// Refused with `templateRef`.
    #[serde(skip_serializing)]
    pub template_variables: Option<serde_json::Value>,
    /// Refused: only the built-in metrics are supported.
    #[serde(skip_serializing)]
    pub query: Option<serde_json::Value>,
}

/// `thresholdRange`: a check fails when the value is below `min` or above `max`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: catalog, namespace: shop}
/// # spec: {hosts: [catalog-primary, catalog-canary], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: flagger.app/v1beta1
/// # kind: Canary
/// # metadata: {name: catalog, namespace: shop}
/// # spec:
/// #   targetRef: {apiVersion: apps/v1, kind: Deployment, name: catalog}
/// #   service: {port: 80, hosts: [catalog.example.com]}
/// #   analysis:
/// #     interval: 30s
/// #     threshold: 3
/// #     stepWeight: 20
/// #     maxWeight: 60
/// #     metrics:
/// #     - {name: request-success-rate, thresholdRange: {min: 99}, interval: 2m}
/// #     - {name: request-duration, threshold: 500}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let canary = &config.canaries[0];
/// let range = canary.spec.analysis.metrics[0].threshold_range.unwrap();
/// assert_eq!((range.min, range.max), (Some(99.0), None));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThresholdRange {
    /// Lowest passing value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest passing value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// How a Canary's traffic is split now; the default sends everything to the primary.
///
/// ```
/// use mesh_route::config::{Canary, CanaryRouting, Resource};
///
/// let mut spec = Canary::default();
/// spec.target_ref.name = "catalog".into();
/// spec.service.port = 80;
/// let routing = CanaryRouting { canary_weight: 10, mirror: true, ..Default::default() };
/// let vs = Canary::virtual_service(&Resource::new("catalog", spec), routing);
/// assert_eq!(vs.http[0].route[1].weight, Some(10));
/// assert_eq!(vs.http[0].mirror.as_ref().unwrap().host, "catalog-canary");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryRouting {
    /// Percentage (0–100) of the service's requests sent to the canary.
    pub canary_weight: u32,
    /// Whether requests matching `analysis.match` (A/B testing) go to the canary.
    #[serde(default)]
    pub matched_to_canary: bool,
    /// Whether requests are mirrored to the canary.
    #[serde(default)]
    pub mirror: bool,
}

impl CanaryRouting {
    /// Everything to the canary: a promoted Canary.
    ///
    /// ```
    /// use mesh_route::config::{Canary, CanaryRouting, Resource};
    ///
    /// let mut spec = Canary::default();
    /// spec.target_ref.name = "catalog".into();
    /// spec.service.port = 80;
    /// let vs = Canary::virtual_service(&Resource::new("catalog", spec), CanaryRouting::PROMOTED);
    /// let weights: Vec<_> = vs.http[0].route.iter().map(|d| d.weight).collect();
    /// assert_eq!(weights, [Some(0), Some(100)]);
    /// ```
    pub const PROMOTED: CanaryRouting = CanaryRouting {
        canary_weight: 100,
        matched_to_canary: true,
        mirror: false,
    };
}

/// The strategy a Canary's analysis follows (Flagger's selection rules).
///
/// ```
/// use mesh_route::config::{Canary, HttpMatchRequest, canary::Strategy};
///
/// let mut canary = Canary::default();
/// assert_eq!(canary.strategy(), Strategy::Canary);
/// canary.analysis.iterations = Some(5);
/// assert_eq!(canary.strategy(), Strategy::BlueGreen);
/// canary.analysis.match_.push(HttpMatchRequest::default());
/// assert_eq!(canary.strategy(), Strategy::AbTesting);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Weights move step by step (`stepWeight` / `stepWeights`).
    Canary,
    /// Requests matching `analysis.match` go to the canary for `iterations` passes.
    AbTesting,
    /// The canary is checked for `iterations` passes (fed by mirroring, or by traffic sent to it
    /// directly), then gets everything.
    BlueGreen,
}

impl Canary {
    /// Whether `a` and `b` are the same revision of a Canary: the same metadata and spec, but
    /// for `suspend` (holding an analysis does not start a new one).
    ///
    /// ```
    /// use mesh_route::config::{Canary, Resource};
    ///
    /// let a = Resource::new("catalog", Canary::default());
    /// let mut b = a.clone();
    /// b.spec.suspend = true;
    /// assert!(Canary::same_revision(&a, &b)); // suspending is not a new revision
    /// b.spec.analysis.step_weight = Some(5);
    /// assert!(!Canary::same_revision(&a, &b));
    /// ```
    pub fn same_revision(a: &Resource<Canary>, b: &Resource<Canary>) -> bool {
        let unsuspended = |c: &Canary| Canary {
            suspend: false,
            ..c.clone()
        };
        a.meta == b.meta && unsuspended(&a.spec) == unsuspended(&b.spec)
    }

    /// The service name: `spec.service.name`, else `spec.targetRef.name`.
    ///
    /// ```
    /// use mesh_route::config::Canary;
    ///
    /// let mut canary = Canary::default();
    /// canary.target_ref.name = "catalog".into();
    /// assert_eq!(canary.service_name(), "catalog");
    /// canary.service.name = Some("catalog-svc".into());
    /// assert_eq!(canary.service_name(), "catalog-svc");
    /// ```
    pub fn service_name(&self) -> &str {
        self.service
            .name
            .as_deref()
            .unwrap_or(&self.target_ref.name)
    }

    /// The strategy: `match` and `iterations` → A/B testing; `iterations` alone → Blue/Green;
    /// otherwise the weighted canary.
    ///
    /// ```
    /// use mesh_route::config::{Config, canary::Strategy};
    ///
    /// # let yaml = r#"
    /// # apiVersion: networking.istio.io/v1
    /// # kind: ServiceEntry
    /// # metadata: {name: catalog, namespace: shop}
    /// # spec: {hosts: [catalog-primary, catalog-canary], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
    /// # ---
    /// # apiVersion: flagger.app/v1beta1
    /// # kind: Canary
    /// # metadata: {name: catalog, namespace: shop}
    /// # spec:
    /// #   targetRef: {apiVersion: apps/v1, kind: Deployment, name: catalog}
    /// #   service: {port: 80, hosts: [catalog.example.com]}
    /// #   analysis:
    /// #     interval: 30s
    /// #     threshold: 3
    /// #     stepWeight: 20
    /// #     maxWeight: 60
    /// #     metrics:
    /// #     - {name: request-success-rate, thresholdRange: {min: 99}, interval: 2m}
    /// #     - {name: request-duration, threshold: 500}
    /// # "#;
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let canary = &config.canaries[0];
    /// assert_eq!(canary.spec.strategy(), Strategy::Canary); // stepWeight, no iterations
    /// ```
    pub fn strategy(&self) -> Strategy {
        match (self.analysis.iterations, self.analysis.match_.is_empty()) {
            (Some(n), false) if n > 0 => Strategy::AbTesting,
            (Some(n), true) if n > 0 => Strategy::BlueGreen,
            _ => Strategy::Canary,
        }
    }

    /// The analysis interval (default 60 s).
    ///
    /// ```
    /// use mesh_route::config::Config;
    ///
    /// # let yaml = r#"
    /// # apiVersion: networking.istio.io/v1
    /// # kind: ServiceEntry
    /// # metadata: {name: catalog, namespace: shop}
    /// # spec: {hosts: [catalog-primary, catalog-canary], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
    /// # ---
    /// # apiVersion: flagger.app/v1beta1
    /// # kind: Canary
    /// # metadata: {name: catalog, namespace: shop}
    /// # spec:
    /// #   targetRef: {apiVersion: apps/v1, kind: Deployment, name: catalog}
    /// #   service: {port: 80, hosts: [catalog.example.com]}
    /// #   analysis:
    /// #     interval: 30s
    /// #     threshold: 3
    /// #     stepWeight: 20
    /// #     maxWeight: 60
    /// #     metrics:
    /// #     - {name: request-success-rate, thresholdRange: {min: 99}, interval: 2m}
    /// #     - {name: request-duration, threshold: 500}
    /// # "#;
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let canary = &config.canaries[0];
    /// assert_eq!(canary.spec.interval(), std::time::Duration::from_secs(30));
    /// ```
    pub fn interval(&self) -> std::time::Duration {
        self.analysis.interval.map_or(DEFAULT_INTERVAL, |d| d.get())
    }

    /// Failed checks that roll the canary back (Flagger: 1 when not positive).
    ///
    /// ```
    /// use mesh_route::config::Canary;
    ///
    /// let mut canary = Canary::default();
    /// assert_eq!(canary.threshold(), 1);
    /// canary.analysis.threshold = Some(-2);
    /// assert_eq!(canary.threshold(), 1); // not positive: Flagger's 1
    /// canary.analysis.threshold = Some(5);
    /// assert_eq!(canary.threshold(), 5);
    /// ```
    pub fn threshold(&self) -> u32 {
        self.analysis
            .threshold
            .filter(|t| *t > 0)
            .map_or(1, |t| u32::try_from(t).unwrap_or(u32::MAX))
    }

    /// The canary weight at which the canary is promoted: `maxWeight` (default 100), or the
    /// last of `stepWeights` when those are walked.
    ///
    /// ```
    /// use mesh_route::config::Canary;
    ///
    /// let mut canary = Canary::default();
    /// assert_eq!(canary.max_weight(), 100);
    /// canary.analysis.step_weights = vec![5, 10, 40];
    /// assert_eq!(canary.max_weight(), 40);
    /// ```
    pub fn max_weight(&self) -> u32 {
        match (self.analysis.step_weight, self.analysis.step_weights.last()) {
            (None | Some(0), Some(&last)) => last,
            _ => self.analysis.max_weight.unwrap_or(100),
        }
    }

    /// The canary weight after `current` on the way to promotion.
    ///
    /// ```
    /// use mesh_route::config::Canary;
    ///
    /// let mut canary = Canary::default();
    /// canary.analysis.step_weight = Some(30);
    /// assert_eq!((canary.next_weight(0), canary.next_weight(90)), (30, 100));
    /// canary.analysis.step_weight = None;
    /// canary.analysis.step_weights = vec![5, 25, 50];
    /// assert_eq!((canary.next_weight(5), canary.next_weight(50)), (25, 100));
    /// ```
    pub fn next_weight(&self, current: u32) -> u32 {
        match self.analysis.step_weight {
            Some(step) if step > 0 => (current + step).min(100),
            _ => self
                .analysis
                .step_weights
                .iter()
                .copied()
                .find(|&w| w > current)
                .unwrap_or(100),
        }
    }

    fn destination(&self, meta: &Resource<Canary>, which: Side) -> Destination {
        let (host_key, subset_key, suffix) = match which {
            Side::Primary => (PRIMARY_HOST, PRIMARY_SUBSET, "-primary"),
            Side::Canary => (CANARY_HOST, CANARY_SUBSET, "-canary"),
        };
        let annotations = &meta.meta.annotations;
        let subset = annotations.get(subset_key).cloned();
        let host = match (annotations.get(host_key), &subset) {
            (Some(host), _) => host.clone(),
            (None, Some(_)) => self.service_name().to_owned(),
            (None, None) => format!("{}{suffix}", self.service_name()),
        };
        Destination {
            host,
            subset,
            port: Some(PortSelector {
                number: self.service.port,
            }),
        }
    }

    /// The primary destination of `canary` (whose annotations may name it).
    ///
    /// ```
    /// use mesh_route::config::Config;
    /// use mesh_route::config::Canary;
    ///
    /// # let yaml = r#"
    /// # apiVersion: networking.istio.io/v1
    /// # kind: ServiceEntry
    /// # metadata: {name: catalog, namespace: shop}
    /// # spec: {hosts: [catalog-primary, catalog-canary], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
    /// # ---
    /// # apiVersion: flagger.app/v1beta1
    /// # kind: Canary
    /// # metadata: {name: catalog, namespace: shop}
    /// # spec:
    /// #   targetRef: {apiVersion: apps/v1, kind: Deployment, name: catalog}
    /// #   service: {port: 80, hosts: [catalog.example.com]}
    /// #   analysis:
    /// #     interval: 30s
    /// #     threshold: 3
    /// #     stepWeight: 20
    /// #     maxWeight: 60
    /// #     metrics:
    /// #     - {name: request-success-rate, thresholdRange: {min: 99}, interval: 2m}
    /// #     - {name: request-duration, threshold: 500}
    /// # "#;
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let canary = &config.canaries[0];
    /// let primary = Canary::primary(canary);
    /// assert_eq!((primary.host.as_str(), primary.port.unwrap().number), ("catalog-primary", 80));
    /// ```
    pub fn primary(canary: &Resource<Canary>) -> Destination {
        canary.spec.destination(canary, Side::Primary)
    }

    /// The canary destination of `canary` (whose annotations may name it).
    ///
    /// ```
    /// use mesh_route::config::{Canary, Config};
    ///
    /// # let yaml = r#"
    /// # apiVersion: networking.istio.io/v1
    /// # kind: ServiceEntry
    /// # metadata: {name: catalog, namespace: shop}
    /// # spec: {hosts: [catalog-primary, catalog-canary], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
    /// # ---
    /// # apiVersion: flagger.app/v1beta1
    /// # kind: Canary
    /// # metadata: {name: catalog, namespace: shop}
    /// # spec:
    /// #   targetRef: {apiVersion: apps/v1, kind: Deployment, name: catalog}
    /// #   service: {port: 80, hosts: [catalog.example.com]}
    /// #   analysis:
    /// #     interval: 30s
    /// #     threshold: 3
    /// #     stepWeight: 20
    /// #     maxWeight: 60
    /// #     metrics:
    /// #     - {name: request-success-rate, thresholdRange: {min: 99}, interval: 2m}
    /// #     - {name: request-duration, threshold: 500}
    /// # "#;
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let canary = &config.canaries[0];
    /// let destination = Canary::canary(canary);
    /// assert_eq!((destination.host.as_str(), destination.subset), ("catalog-canary", None));
    /// ```
    pub fn canary(canary: &Resource<Canary>) -> Destination {
        canary.spec.destination(canary, Side::Canary)
    }

    /// The hosts the Canary routes: the service name, then `service.hosts`.
    ///
    /// ```
    /// use mesh_route::config::Config;
    ///
    /// # let yaml = r#"
    /// # apiVersion: networking.istio.io/v1
    /// # kind: ServiceEntry
    /// # metadata: {name: catalog, namespace: shop}
    /// # spec: {hosts: [catalog-primary, catalog-canary], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
    /// # ---
    /// # apiVersion: flagger.app/v1beta1
    /// # kind: Canary
    /// # metadata: {name: catalog, namespace: shop}
    /// # spec:
    /// #   targetRef: {apiVersion: apps/v1, kind: Deployment, name: catalog}
    /// #   service: {port: 80, hosts: [catalog.example.com]}
    /// #   analysis:
    /// #     interval: 30s
    /// #     threshold: 3
    /// #     stepWeight: 20
    /// #     maxWeight: 60
    /// #     metrics:
    /// #     - {name: request-success-rate, thresholdRange: {min: 99}, interval: 2m}
    /// #     - {name: request-duration, threshold: 500}
    /// # "#;
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let canary = &config.canaries[0];
    /// assert_eq!(canary.spec.hosts(), ["catalog", "catalog.example.com"]);
    /// ```
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts = vec![self.service_name().to_owned()];
        for host in &self.service.hosts {
            if !hosts.contains(host) {
                hosts.push(host.clone());
            }
        }
        hosts
    }

    /// The routes of `canary` with its traffic split as `routing` says, as Flagger writes them:
    /// for A/B testing a first route for requests matching `analysis.match` (crossed with
    /// `service.match`), then the route of every other request, weighted between primary and
    /// canary and mirroring to the canary when `routing.mirror`.
    ///
    /// ```
    /// use mesh_route::config::Resource;
    /// use mesh_route::config::canary::{Canary, CanaryRouting};
    ///
    /// let mut spec = Canary::default();
    /// spec.target_ref.name = "catalog".into();
    /// spec.service.port = 80;
    /// let canary = Resource::new("catalog", spec);
    /// let routing = CanaryRouting { canary_weight: 20, ..CanaryRouting::default() };
    /// let vs = Canary::virtual_service(&canary, routing);
    /// assert_eq!(vs.hosts, ["catalog"]);
    /// let route = &vs.http[0].route;
    /// assert_eq!((route[0].destination.host.as_str(), route[0].weight), ("catalog-primary", Some(80)));
    /// assert_eq!((route[1].destination.host.as_str(), route[1].weight), ("catalog-canary", Some(20)));
    /// ```
    pub fn virtual_service(canary: &Resource<Canary>, routing: CanaryRouting) -> VirtualService {
        let spec = &canary.spec;
        let primary = Canary::primary(canary);
        let canary_destination = Canary::canary(canary);
        let weighted = |canary_weight: u32| {
            let canary_weight = canary_weight.min(100);
            vec![
                HttpRouteDestination {
                    destination: primary.clone(),
                    weight: Some(weight(100 - canary_weight)),
                    headers: None,
                },
                HttpRouteDestination {
                    destination: canary_destination.clone(),
                    weight: Some(weight(canary_weight)),
                    headers: None,
                },
            ]
        };
        let route = |match_: Vec<HttpMatchRequest>, canary_weight: u32| HttpRoute {
            match_,
            route: weighted(canary_weight),
            timeout: spec.service.timeout,
            retries: spec.service.retries.clone(),
            headers: spec.service.headers.clone(),
            rewrite: spec.service.rewrite.clone(),
            cors_policy: spec.service.cors_policy.clone(),
            ..HttpRoute::default()
        };
        let mut http = Vec::new();
        if !spec.analysis.match_.is_empty() {
            let matched = if routing.matched_to_canary || routing.canary_weight == 100 {
                100
            } else {
                0
            };
            http.push(route(cross_matches(spec), matched));
        }
        let mut main = route(spec.service.match_.clone(), routing.canary_weight);
        if routing.mirror {
            main.mirror = Some(canary_destination.clone());
            main.mirror_percentage =
                spec.analysis
                    .mirror_weight
                    .filter(|w| *w > 0)
                    .map(|w| Percent {
                        value: f64::from(w),
                    });
        }
        http.push(main);
        VirtualService {
            hosts: spec.hosts(),
            gateways: spec.service.gateways.clone(),
            http,
            ..VirtualService::default()
        }
    }
}

#[derive(Clone, Copy)]
enum Side {
    Primary,
    Canary,
}

fn weight(w: u32) -> i32 {
    i32::try_from(w).unwrap_or(i32::MAX)
}

/// `analysis.match` × `service.match`: every pair merged (the analysis condition added to the
/// service's), as Flagger merges them.
fn cross_matches(spec: &Canary) -> Vec<HttpMatchRequest> {
    if spec.service.match_.is_empty() {
        return spec.analysis.match_.clone();
    }
    let mut crossed = Vec::new();
    for analysis in &spec.analysis.match_ {
        for service in &spec.service.match_ {
            let mut merged = service.clone();
            merged.headers.extend(analysis.headers.clone());
            merged.query_params.extend(analysis.query_params.clone());
            merged
                .without_headers
                .extend(analysis.without_headers.clone());
            merged.uri = analysis.uri.clone().or(merged.uri);
            merged.method = analysis.method.clone().or(merged.method);
            merged.authority = analysis.authority.clone().or(merged.authority);
            merged.scheme = analysis.scheme.clone().or(merged.scheme);
            merged.source_labels.extend(analysis.source_labels.clone());
            crossed.push(merged);
        }
    }
    crossed
}

/// Checks the fields of one Canary.
pub(crate) fn validate_canary(canary: &Canary, r: &mut Reporter<'_>) {
    if let Some(provider) = &canary.provider
        && provider != "istio"
    {
        r.error(
            "provider",
            format!("provider \"{provider}\" is not supported; the mesh routes as Istio does (provider: istio)"),
        );
    }
    if let Some(server) = &canary.metrics_server
        && let Err(why) = check_metrics_server(server)
    {
        r.error("metricsServer", why.to_string());
    }
    if canary.target_ref.name.is_empty() {
        r.error("targetRef.name", "targetRef.name is required");
    }
    if canary.service.port == 0 || canary.service.port > 65535 {
        r.error(
            "service.port",
            format!("service.port must be 1-65535, got {}", canary.service.port),
        );
    }
    if canary.service.traffic_policy.is_some() {
        r.error(
            "service.trafficPolicy",
            "not supported: write a DestinationRule for the primary and canary hosts instead",
        );
    }
    let ignored = [
        (
            "progressDeadlineSeconds",
            canary.progress_deadline_seconds.is_some(),
        ),
        ("autoscalerRef", canary.autoscaler_ref.is_some()),
        ("revertOnDeletion", canary.revert_on_deletion.is_some()),
        ("service.portName", canary.service.port_name.is_some()),
        ("service.targetPort", canary.service.target_port.is_some()),
        (
            "service.portDiscovery",
            canary.service.port_discovery.is_some(),
        ),
        ("service.appProtocol", canary.service.app_protocol.is_some()),
        ("analysis.alerts", canary.analysis.alerts.is_some()),
        (
            "analysis.primaryReadyThreshold",
            canary.analysis.primary_ready_threshold.is_some(),
        ),
        (
            "analysis.canaryReadyThreshold",
            canary.analysis.canary_ready_threshold.is_some(),
        ),
    ];
    for (field, present) in ignored {
        if present {
            r.warning(
                field,
                "ignored: it concerns Kubernetes objects, which the mesh does not manage",
            );
        }
    }
    validate_analysis(canary, r);
}

/// Checks a Prometheus server address: `http://host[:port][/path]` (the query client speaks
/// plain HTTP only).
///
/// ```
/// use mesh_route::config::canary::check_metrics_server;
/// assert!(check_metrics_server("http://prometheus:9090").is_ok());
/// use mesh_route::config::canary::MetricsServerError;
/// let https = check_metrics_server("https://prometheus:9090").unwrap_err();
/// assert!(matches!(https, MetricsServerError::NotHttp(address) if address == "https://prometheus:9090"));
/// ```
pub fn check_metrics_server(address: &str) -> Result<(), MetricsServerError> {
    let uri: http::Uri = address
        .parse()
        .map_err(|source| MetricsServerError::Invalid {
            address: address.to_owned(),
            source,
        })?;
    if uri.scheme_str() != Some("http") {
        return Err(MetricsServerError::NotHttp(address.to_owned()));
    }
    match uri.host() {
        Some(host) if !host.is_empty() => Ok(()),
        _ => Err(MetricsServerError::NoHost(address.to_owned())),
    }
}

/// A Prometheus server address the canary analysis cannot query ([`check_metrics_server`]).
///
/// ```
/// use mesh_route::config::canary::{MetricsServerError, check_metrics_server};
/// let error = check_metrics_server("prometheus server:9090").unwrap_err();
/// assert!(matches!(&error, MetricsServerError::Invalid { address, .. } if address == "prometheus server:9090"));
/// let error = check_metrics_server("https://prometheus:9090").unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     r#"metrics server "https://prometheus:9090": only http:// Prometheus servers are supported"#
/// );
/// ```
#[derive(Debug, thiserror::Error)]
pub enum MetricsServerError {
    /// Not a URL.
    #[error("invalid metrics server address \"{address}\": {source}")]
    Invalid {
        /// The address.
        address: String,
        /// Why it is not one.
        #[source]
        source: http::uri::InvalidUri,
    },
    /// Not `http://` (the query client speaks plain HTTP only).
    #[error("metrics server \"{0}\": only http:// Prometheus servers are supported")]
    NotHttp(String),
    /// No host to ask.
    #[error("metrics server \"{0}\" has no host")]
    NoHost(String),
}

fn validate_analysis(canary: &Canary, r: &mut Reporter<'_>) {
    let analysis = &canary.analysis;
    if analysis.webhooks.is_some() {
        r.error(
            "analysis.webhooks",
            "not supported: the mesh calls no webhooks (run load tests and gates outside it)",
        );
    }
    if analysis.session_affinity.is_some() {
        r.error("analysis.sessionAffinity", "not supported");
    }
    if analysis.interval.is_some_and(|i| i.get().is_zero()) {
        r.error("analysis.interval", "interval must be more than 0s");
    }
    if let Some(max) = analysis.max_weight
        && !(1..=100).contains(&max)
    {
        r.error(
            "analysis.maxWeight",
            format!("maxWeight must be 1-100, got {max}"),
        );
    }
    if let Some(step) = analysis.step_weight
        && step > 100
    {
        r.error(
            "analysis.stepWeight",
            format!("stepWeight must be 0-100, got {step}"),
        );
    }
    if let Some(step) = analysis.step_weight_promotion
        && step > 100
    {
        r.error(
            "analysis.stepWeightPromotion",
            format!("stepWeightPromotion must be 0-100, got {step}"),
        );
    }
    let mut previous = 0;
    for (i, &w) in analysis.step_weights.iter().enumerate() {
        if w <= previous || w > 100 {
            r.error(
                format!("analysis.stepWeights[{i}]"),
                format!("stepWeights must rise within 1-100, got {w} after {previous}"),
            );
        }
        previous = w;
    }
    if analysis.step_weight.is_some_and(|s| s > 0) && !analysis.step_weights.is_empty() {
        r.warning(
            "analysis.stepWeights",
            "ignored: stepWeight is set and takes precedence, as in Flagger",
        );
    }
    if let Some(w) = analysis.mirror_weight
        && w > 100
    {
        r.error(
            "analysis.mirrorWeight",
            format!("mirrorWeight must be 0-100, got {w}"),
        );
    }
    if analysis.mirror_weight.is_some() && !analysis.mirror {
        r.warning("analysis.mirrorWeight", "ignored: mirror is not on");
    }
    match canary.strategy() {
        Strategy::AbTesting if analysis.mirror => r.warning(
            "analysis.mirror",
            "ignored with A/B testing (match with iterations), as in Flagger",
        ),
        Strategy::BlueGreen if !analysis.mirror && !analysis.metrics.is_empty() => r.warning(
            "analysis.iterations",
            "Blue/Green without mirror routes no live traffic to the canary: its checks only see \
             requests sent to it directly, and a check without data fails",
        ),
        _ => {}
    }
    let stepped = analysis.step_weight.is_some_and(|s| s > 0) || !analysis.step_weights.is_empty();
    match canary.strategy() {
        Strategy::Canary if !analysis.match_.is_empty() => r.error(
            "analysis.match",
            "match needs iterations (A/B testing: requests that match go to the canary for that many passes)",
        ),
        Strategy::Canary if !stepped && !canary.skip_analysis => r.error(
            "analysis",
            "set stepWeight or stepWeights (weighted canary), or iterations (A/B testing with match, Blue/Green without)",
        ),
        _ => {}
    }
    for (i, metric) in analysis.metrics.iter().enumerate() {
        validate_metric(metric, &format!("analysis.metrics[{i}]"), r);
    }
}

fn validate_metric(metric: &CanaryMetric, at: &str, r: &mut Reporter<'_>) {
    if metric.template_ref.is_some() || metric.template_variables.is_some() {
        r.error(
            format!("{at}.templateRef"),
            "MetricTemplates are not supported: use the built-in request-success-rate and request-duration",
        );
    }
    if metric.query.is_some() {
        r.error(
            format!("{at}.query"),
            "custom queries are not supported: use the built-in request-success-rate and request-duration",
        );
    }
    if metric.name != REQUEST_SUCCESS_RATE && metric.name != REQUEST_DURATION {
        r.error(
            format!("{at}.name"),
            format!(
                "unknown metric \"{}\"; the built-in metrics are {REQUEST_SUCCESS_RATE} and {REQUEST_DURATION}",
                metric.name
            ),
        );
    }
    if metric.interval.is_some_and(|i| i.get().is_zero()) {
        r.error(format!("{at}.interval"), "interval must be more than 0s");
    }
    let range = metric.range();
    if range.min.is_none() && range.max.is_none() {
        r.error(
            format!("{at}.thresholdRange"),
            "thresholdRange needs min and/or max",
        );
    }
    if let (Some(min), Some(max)) = (range.min, range.max)
        && min > max
    {
        r.error(
            format!("{at}.thresholdRange"),
            format!("min {min} is above max {max}"),
        );
    }
}

impl CanaryMetric {
    /// The window the metric is computed over (default 1 m).
    ///
    /// ```
    /// use mesh_route::config::Config;
    ///
    /// # let yaml = r#"
    /// # apiVersion: networking.istio.io/v1
    /// # kind: ServiceEntry
    /// # metadata: {name: catalog, namespace: shop}
    /// # spec: {hosts: [catalog-primary, catalog-canary], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
    /// # ---
    /// # apiVersion: flagger.app/v1beta1
    /// # kind: Canary
    /// # metadata: {name: catalog, namespace: shop}
    /// # spec:
    /// #   targetRef: {apiVersion: apps/v1, kind: Deployment, name: catalog}
    /// #   service: {port: 80, hosts: [catalog.example.com]}
    /// #   analysis:
    /// #     interval: 30s
    /// #     threshold: 3
    /// #     stepWeight: 20
    /// #     maxWeight: 60
    /// #     metrics:
    /// #     - {name: request-success-rate, thresholdRange: {min: 99}, interval: 2m}
    /// #     - {name: request-duration, threshold: 500}
    /// # "#;
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let canary = &config.canaries[0];
    /// let metrics = &canary.spec.analysis.metrics;
    /// assert_eq!(metrics[0].window().as_secs(), 120);
    /// assert_eq!(metrics[1].window().as_secs(), 60); // default 1 m
    /// ```
    pub fn window(&self) -> std::time::Duration {
        self.interval.map_or(DEFAULT_METRIC_INTERVAL, |d| d.get())
    }

    /// The passing range: `thresholdRange`, or the deprecated `threshold` read as Flagger reads
    /// it: the minimum of `request-success-rate` (a percentage), the maximum of
    /// `request-duration` (milliseconds).
    ///
    /// ```
    /// use mesh_route::config::Config;
    ///
    /// # let yaml = r#"
    /// # apiVersion: networking.istio.io/v1
    /// # kind: ServiceEntry
    /// # metadata: {name: catalog, namespace: shop}
    /// # spec: {hosts: [catalog-primary, catalog-canary], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
    /// # ---
    /// # apiVersion: flagger.app/v1beta1
    /// # kind: Canary
    /// # metadata: {name: catalog, namespace: shop}
    /// # spec:
    /// #   targetRef: {apiVersion: apps/v1, kind: Deployment, name: catalog}
    /// #   service: {port: 80, hosts: [catalog.example.com]}
    /// #   analysis:
    /// #     interval: 30s
    /// #     threshold: 3
    /// #     stepWeight: 20
    /// #     maxWeight: 60
    /// #     metrics:
    /// #     - {name: request-success-rate, thresholdRange: {min: 99}, interval: 2m}
    /// #     - {name: request-duration, threshold: 500}
    /// # "#;
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let canary = &config.canaries[0];
    /// // `threshold: 500` is the deprecated form of `thresholdRange: {max: 500}`.
    /// let range = canary.spec.analysis.metrics[1].range();
    /// assert_eq!((range.min, range.max), (None, Some(500.0)));
    /// ```
    pub fn range(&self) -> ThresholdRange {
        match (self.threshold_range, self.name.as_str()) {
            (Some(range), _) => range,
            (None, REQUEST_DURATION) => ThresholdRange {
                min: None,
                max: self.threshold,
            },
            (None, _) => ThresholdRange {
                min: self.threshold,
                max: None,
            },
        }
    }
}

impl ThresholdRange {
    /// Whether `value` passes: not below `min`, not above `max` (bounds pass).
    ///
    /// ```
    /// use mesh_route::config::canary::ThresholdRange;
    ///
    /// let range = ThresholdRange { min: Some(99.0), max: Some(100.0) };
    /// assert!(range.admits(99.0) && range.admits(100.0)); // bounds pass
    /// assert!(!range.admits(98.9));
    /// assert!(ThresholdRange::default().admits(-1.0));
    /// ```
    pub fn admits(&self, value: f64) -> bool {
        self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value <= max)
    }
}

/// Canaries' routings by `namespace/name` (see [`ObjectMeta::qualified_name`]).
///
/// [`ObjectMeta::qualified_name`]: super::ObjectMeta::qualified_name
///
/// ```
/// use mesh_route::config::{CanaryRouting, Config};
///
/// let mut config = Config::default();
/// config.canary_routes.insert("shop/catalog".into(), CanaryRouting { canary_weight: 40, ..Default::default() });
/// assert_eq!(config.canary_routes["shop/catalog"].canary_weight, 40);
/// ```
pub type CanaryRoutes = BTreeMap<String, CanaryRouting>;

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(analysis: &str, annotations: &[(&str, &str)]) -> Resource<Canary> {
        let spec: Canary = serde_json::from_value(serde_json::json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "catalog"},
            "service": {"port": 80},
            "analysis": serde_json::from_str::<serde_json::Value>(analysis).unwrap(),
        }))
        .unwrap();
        let mut resource = Resource::new("catalog", spec).in_namespace("shop");
        for (k, v) in annotations {
            resource.meta.annotations.insert((*k).into(), (*v).into());
        }
        resource
    }

    #[test]
    fn flagger_defaults_and_strategies() {
        let c = canary(r#"{"stepWeight": 20, "maxWeight": 50}"#, &[]);
        assert_eq!(c.spec.interval(), DEFAULT_INTERVAL);
        assert_eq!(c.spec.threshold(), 1);
        assert_eq!(c.spec.strategy(), Strategy::Canary);
        // 20 → 40 → 60: the last step may overshoot maxWeight, as in Flagger.
        assert_eq!(c.spec.next_weight(40), 60);
        let walked = canary(r#"{"stepWeights": [1, 10, 80]}"#, &[]);
        assert_eq!(walked.spec.max_weight(), 80);
        assert_eq!(walked.spec.next_weight(1), 10);
        let ab = canary(
            r#"{"iterations": 3, "match": [{"headers": {"x-canary": {"exact": "1"}}}]}"#,
            &[],
        );
        assert_eq!(ab.spec.strategy(), Strategy::AbTesting);
        assert_eq!(
            canary(r#"{"iterations": 3}"#, &[]).spec.strategy(),
            Strategy::BlueGreen
        );
    }

    #[test]
    fn destinations_follow_flagger_names_or_annotations() {
        let c = canary(r#"{"stepWeight": 10}"#, &[]);
        assert_eq!(Canary::primary(&c).host, "catalog-primary");
        assert_eq!(Canary::canary(&c).host, "catalog-canary");
        let subsets = canary(
            r#"{"stepWeight": 10}"#,
            &[
                (PRIMARY_SUBSET, "version-v1"),
                (CANARY_SUBSET, "version-v2"),
            ],
        );
        let primary = Canary::primary(&subsets);
        assert_eq!(
            (primary.host.as_str(), primary.subset.as_deref()),
            ("catalog", Some("version-v1"))
        );
        assert_eq!(primary.port, Some(PortSelector { number: 80 }));
    }

    #[test]
    fn ab_routes_send_matching_requests_to_the_canary() {
        let c = canary(
            r#"{"iterations": 2, "match": [{"headers": {"x-canary": {"exact": "insider"}}}]}"#,
            &[],
        );
        let routing = CanaryRouting {
            matched_to_canary: true,
            ..CanaryRouting::default()
        };
        let vs = Canary::virtual_service(&c, routing);
        assert_eq!(vs.http.len(), 2);
        assert!(vs.http[0].match_[0].headers.contains_key("x-canary"));
        assert_eq!(vs.http[0].route[1].weight, Some(100));
        assert_eq!(
            vs.http[1].route[0].weight,
            Some(100),
            "the rest stays on the primary"
        );
        let back = Canary::virtual_service(&c, CanaryRouting::default());
        assert_eq!(back.http[0].route[0].weight, Some(100));
    }

    #[test]
    fn mirroring_uses_mirror_weight() {
        let c = canary(
            r#"{"stepWeight": 10, "mirror": true, "mirrorWeight": 30}"#,
            &[],
        );
        let routing = CanaryRouting {
            mirror: true,
            ..CanaryRouting::default()
        };
        let vs = Canary::virtual_service(&c, routing);
        assert_eq!(vs.http[0].mirror.as_ref().unwrap().host, "catalog-canary");
        assert_eq!(vs.http[0].mirror_percentage, Some(Percent { value: 30.0 }));
    }

    #[test]
    fn thresholds_include_their_bounds() {
        let range = ThresholdRange {
            min: Some(99.0),
            max: Some(100.0),
        };
        assert!(range.admits(99.0) && range.admits(100.0));
        assert!(!range.admits(98.9));
        let deprecated = CanaryMetric {
            name: REQUEST_SUCCESS_RATE.into(),
            threshold: Some(95.0),
            ..CanaryMetric::default()
        };
        assert_eq!(deprecated.range().min, Some(95.0));
        // A duration's deprecated threshold is its ceiling, as in Flagger.
        let duration = CanaryMetric {
            name: REQUEST_DURATION.into(),
            threshold: Some(500.0),
            ..CanaryMetric::default()
        };
        assert_eq!(
            (duration.range().min, duration.range().max),
            (None, Some(500.0))
        );
        assert!(duration.range().admits(120.0) && !duration.range().admits(501.0));
    }
}
