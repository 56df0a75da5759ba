//! Small Istio messages shared by several resources: [`StringMatch`], [`Percent`],
//! [`PortSelector`], the two workload selector shapes and [`PolicyTargetReference`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Istio `StringMatch`: at most one of `exact`, `prefix`, `regex` (RE2, whole string).
///
/// All three unset means "present" — valid only in `headers`, `withoutHeaders` and
/// `queryParams`; validation rejects it elsewhere and rejects more than one being set.
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
    pub fn kinds_set(&self) -> usize {
        [&self.exact, &self.prefix, &self.regex]
            .iter()
            .filter(|v| v.is_some())
            .count()
    }

    /// Whether none is set (a presence check).
    pub fn is_presence(&self) -> bool {
        self.kinds_set() == 0
    }
}

/// Istio `Percent`: a percentage in `[0, 100]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Percent {
    /// The percentage, 0–100.
    #[serde(default)]
    pub value: f64,
}

/// Istio `PortSelector`: a port by number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSelector {
    /// Port number.
    pub number: u32,
}

/// `networking.istio.io` `WorkloadSelector` (Sidecar, ServiceEntry): pod labels to select.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    /// Labels a workload must carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `istio.type.v1beta1.WorkloadSelector` (DestinationRule): labels under `matchLabels`.
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
    pub fn narrowing(selector: Option<&Self>) -> Option<&Self> {
        selector.filter(|s| !s.match_labels.is_empty())
    }

    /// Whether a workload with `labels` carries every label of this selector.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// `istio.type.v1beta1.PolicyTargetReference` (Telemetry and other policies): the
/// resource a policy attaches to, such as a Gateway API `Gateway` or a `Service`.
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
