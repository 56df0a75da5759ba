//! The `DestinationRule` resource (`networking.istio.io`): policies that apply after
//! routing, and the named subsets (label selections of a host's endpoints) that routes
//! refer to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::shared_types::PolicyWorkloadSelector;
use super::traffic_policy::TrafficPolicy;

/// Istio `DestinationRule`.
///
/// ```
/// use mesh_route::config::{Config, SimpleLb};
///
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: DestinationRule
/// metadata: {name: catalog}
/// spec:
///   host: catalog
///   trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
///   subsets:
///   - {name: v2, labels: {version: v2}}
/// "#;
/// let dr = &Config::from_yaml_str(yaml).unwrap().config.destination_rules[0].spec;
/// assert_eq!(dr.host, "catalog");
/// assert_eq!(dr.traffic_policy.as_ref().unwrap().load_balancer.as_ref().unwrap().simple, Some(SimpleLb::RoundRobin));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationRule {
    /// The service the rule applies to.
    pub host: String,
    /// Policy for every subset (overridden field by field by a subset's own policy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    /// Named versions of the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<Subset>,
    /// Namespaces the rule is visible to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// Workloads the rule applies to (default: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<PolicyWorkloadSelector>,
}

/// Istio `Subset`: endpoints of the host that carry `labels`.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: DestinationRule
/// metadata: {name: catalog}
/// spec:
///   host: catalog
///   trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
///   subsets:
///   - {name: v2, labels: {version: v2}}
/// "#;
/// let dr = &Config::from_yaml_str(yaml).unwrap().config.destination_rules[0].spec;
/// let subset = &dr.subsets[0];
/// assert_eq!(subset.name, "v2");
/// assert_eq!(subset.labels["version"], "v2");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subset {
    /// Name used by `destination.subset`.
    pub name: String,
    /// Endpoint labels the subset selects.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Policy overrides for this subset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
}
