//! Small Istio messages shared by several resources: [`StringMatch`], [`Percent`],
//! [`PortSelector`], the two workload selector shapes and [`PolicyTargetReference`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Istio `StringMatch`: at most one of `exact`, `prefix`, `regex` (RE2, whole string).
///
/// All three unset means "present" — valid only in `headers`, `withoutHeaders` and
/// `queryParams`; validation rejects it elsewhere and rejects more than one being set.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api}\nspec: {hosts: [api.example.com], http: [{match: [{uri: {prefix: /v1}}], directResponse: {status: 200}}]}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let uri = config.virtual_services[0].spec.http[0].match_[0].uri.as_ref().unwrap();
/// assert_eq!(uri.prefix.as_deref(), Some("/v1"));
/// assert_eq!(uri.kinds_set(), 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringMatch {
    /// Exact string match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// Prefix match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// RE2 regular expression matched against the whole value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

impl StringMatch {
    /// How many of `exact`, `prefix`, `regex` are set.
    ///
    /// ```
    /// use mesh_route::config::StringMatch;
    ///
    /// let m = StringMatch { exact: Some("a".into()), regex: Some("a+".into()), prefix: None };
    /// assert_eq!(m.kinds_set(), 2); // validation rejects this
    /// ```
    pub fn kinds_set(&self) -> usize {
        [&self.exact, &self.prefix, &self.regex]
            .iter()
            .filter(|v| v.is_some())
            .count()
    }

    /// Whether none is set (a presence check).
    ///
    /// ```
    /// use mesh_route::config::StringMatch;
    ///
    /// assert!(StringMatch::default().is_presence());
    /// assert!(!StringMatch { prefix: Some("/".into()), ..Default::default() }.is_presence());
    /// ```
    pub fn is_presence(&self) -> bool {
        self.kinds_set() == 0
    }
}

/// Istio `Percent`: a percentage in `[0, 100]`.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: api}\nspec: {hosts: [api.example.com], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api}\nspec: {hosts: [api.example.com], http: [{fault: {abort: {httpStatus: 503, percentage: {value: 12.5}}}, route: [{destination: {host: api.example.com}}]}]}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let abort = config.virtual_services[0].spec.http[0].fault.as_ref().unwrap().abort.as_ref().unwrap();
/// assert_eq!(abort.percentage.unwrap().value, 12.5);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Percent {
    /// The percentage, 0–100.
    #[serde(default)]
    pub value: f64,
}

/// Istio `PortSelector`: a port by number.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\nspec: {hosts: [catalog], resolution: STATIC, ports: [{number: 8080, name: http}], endpoints: [{address: 127.0.0.1}]}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: catalog}\nspec: {hosts: [catalog], http: [{route: [{destination: {host: catalog, port: {number: 8080}}}]}]}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let port = config.virtual_services[0].spec.http[0].route[0].destination.port.unwrap();
/// assert_eq!(port.number, 8080);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSelector {
    /// Port number.
    pub number: u32,
}

/// `networking.istio.io` `WorkloadSelector` (Sidecar, ServiceEntry): pod labels to select.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: catalog}\nspec: {workloadSelector: {labels: {app: catalog}}}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let selector = config.sidecars[0].spec.workload_selector.as_ref().unwrap();
/// assert_eq!(selector.labels["app"], "catalog");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    /// Labels a workload must carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `istio.type.v1beta1.WorkloadSelector` (DestinationRule): labels under `matchLabels`.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: db, namespace: shop}\nspec: {selector: {matchLabels: {app: db}}, mtls: {mode: STRICT}}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let selector = config.peer_authentications[0].spec.selector.as_ref().unwrap();
/// assert_eq!(selector.match_labels["app"], "db");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyWorkloadSelector {
    /// Labels a workload must carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

impl PolicyWorkloadSelector {
    /// The selector of a security policy that narrows it to some workloads: `None` when it has
    /// none or an empty one (both cover the whole namespace, as in Istio).
    ///
    /// ```
    /// use mesh_route::config::PolicyWorkloadSelector;
    ///
    /// let empty = PolicyWorkloadSelector::default();
    /// assert!(PolicyWorkloadSelector::narrowing(Some(&empty)).is_none());
    /// let db = PolicyWorkloadSelector { match_labels: [("app".into(), "db".into())].into() };
    /// assert!(PolicyWorkloadSelector::narrowing(Some(&db)).is_some());
    /// ```
    pub fn narrowing(selector: Option<&Self>) -> Option<&Self> {
        selector.filter(|s| !s.match_labels.is_empty())
    }

    /// Whether a workload with `labels` carries every label of this selector.
    ///
    /// ```
    /// use mesh_route::config::PolicyWorkloadSelector;
    ///
    /// let selector = PolicyWorkloadSelector { match_labels: [("app".into(), "db".into())].into() };
    /// assert!(selector.selects(&[("app".into(), "db".into()), ("version".into(), "v2".into())].into()));
    /// assert!(!selector.selects(&[("app".into(), "web".into())].into()));
    /// ```
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// `istio.type.v1beta1.PolicyTargetReference` (Telemetry and other policies): the
/// resource a policy attaches to, such as a Gateway API `Gateway` or a `Service`.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: edge, namespace: shop}\nspec: {targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: edge}, tracing: [{randomSamplingPercentage: 1}]}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let target = config.telemetries[0].spec.target_ref.as_ref().unwrap();
/// assert_eq!((target.kind.as_str(), target.name.as_str()), ("Gateway", "edge"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyTargetReference {
    /// API group of the target (`gateway.networking.k8s.io`; empty for core kinds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the target (`Gateway`, `Service`, `ServiceEntry`, …).
    pub kind: String,
    /// Name of the target.
    pub name: String,
    /// Namespace of the target (default: the policy's namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `skip_serializing_if` helper for `bool` fields that default to `false`.
pub(crate) fn is_false(value: &bool) -> bool {
    !*value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_match_kinds() {
        let m = StringMatch {
            exact: Some("a".into()),
            prefix: Some("b".into()),
            regex: None,
        };
        assert_eq!(m.kinds_set(), 2);
        assert!(StringMatch::default().is_presence());
    }
}
