//! [`Workload`]: who is at one end of a request, in the terms of Istio's metric labels
//! (`*_workload`, `*_workload_namespace`, `*_principal`, `*_app`, `*_version`,
//! `*_canonical_service`, `*_canonical_revision`, `*_cluster`).
//!
//! The proxy describes itself with one (the `source_*` labels on the outbound side, the
//! `destination_*` labels inbound) and each upstream endpoint with another, built once from the
//! endpoint's labels and shared by every response it serves as an
//! [`UpstreamWorkload`](crate::extensions::UpstreamWorkload).

use std::collections::BTreeMap;

/// What Istio reports for a peer it knows nothing about.
///
/// ```
/// use mesh_core::workload::{UNKNOWN, Workload};
/// let w = Workload::from_labels("", "shop", &Default::default());
/// assert_eq!(w.name, UNKNOWN);
/// assert_eq!(w.app, UNKNOWN);
/// ```
pub const UNKNOWN: &str = "unknown";

/// What Istio reports as the canonical revision of a workload that names none.
///
/// ```
/// use mesh_core::workload::{LATEST, Workload};
/// let w = Workload::from_labels("catalog", "shop", &Default::default());
/// assert_eq!(w.canonical_revision, LATEST);
/// ```
pub const LATEST: &str = "latest";

/// One end of a request, as Istio's standard metrics label it.
///
/// ```
/// use mesh_core::workload::Workload;
/// let peer = Workload::default();
/// assert_eq!((peer.name.as_str(), peer.canonical_revision.as_str()), ("unknown", "latest"));
/// let me = Workload::from_labels("web", "shop", &Default::default()).with_cluster("east");
/// assert_eq!((me.canonical_service.as_str(), me.cluster.as_str()), ("web", "east"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Workload {
    /// Workload name (a Deployment's name in Kubernetes); `unknown` when not known.
    pub name: String,
    /// Its namespace; `unknown` when not known.
    pub namespace: String,
    /// Its SPIFFE identity (`spiffe://cluster.local/ns/shop/sa/catalog`); `unknown` when not known.
    pub principal: String,
    /// Its `app` label; `unknown` when absent.
    pub app: String,
    /// Its `version` label; `unknown` when absent.
    pub version: String,
    /// Canonical service (see [`Workload::from_labels`]).
    pub canonical_service: String,
    /// Canonical revision (see [`Workload::from_labels`]); `latest` when not known.
    pub canonical_revision: String,
    /// The cluster it runs in (Istio's `CLUSTER_ID`); `unknown` when not known.
    pub cluster: String,
}

impl Default for Workload {
    /// A peer nothing is known about: every field `unknown`, the revision `latest`.
    fn default() -> Self {
        Workload {
            name: UNKNOWN.into(),
            namespace: UNKNOWN.into(),
            principal: UNKNOWN.into(),
            app: UNKNOWN.into(),
            version: UNKNOWN.into(),
            canonical_service: UNKNOWN.into(),
            canonical_revision: LATEST.into(),
            cluster: UNKNOWN.into(),
        }
    }
}

impl Workload {
    /// A workload named `name` in `namespace`, described by its pod (or WorkloadEntry) labels,
    /// with Istio's rules: `app` and `version` from the labels of those names; the canonical
    /// service from `service.istio.io/canonical-name`, else `app.kubernetes.io/name`, else
    /// `app`, else the workload name; the canonical revision from
    /// `service.istio.io/canonical-revision`, else `app.kubernetes.io/version`, else
    /// `version`, else `latest`. Empty `name` or `namespace` become `unknown`; the principal
    /// and cluster start `unknown`.
    ///
    /// ```
    /// use mesh_core::workload::Workload;
    /// let labels = [("app", "catalog"), ("version", "v2")]
    ///     .into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    /// let w = Workload::from_labels("catalog-v2", "shop", &labels);
    /// assert_eq!((w.app.as_str(), w.version.as_str()), ("catalog", "v2"));
    /// assert_eq!((w.canonical_service.as_str(), w.canonical_revision.as_str()), ("catalog", "v2"));
    /// assert_eq!(w.principal, "unknown");
    /// ```
    pub fn from_labels(name: &str, namespace: &str, labels: &BTreeMap<String, String>) -> Self {
        let known = |value: &str| {
            if value.is_empty() {
                UNKNOWN.to_owned()
            } else {
                value.to_owned()
            }
        };
        let label = |keys: &[&str]| {
            keys.iter()
                .find_map(|key| labels.get(*key).filter(|v| !v.is_empty()))
                .cloned()
        };
        let name = known(name);
        Workload {
            canonical_service: label(&[
                "service.istio.io/canonical-name",
                "app.kubernetes.io/name",
                "app",
            ])
            .unwrap_or_else(|| name.clone()),
            canonical_revision: label(&[
                "service.istio.io/canonical-revision",
                "app.kubernetes.io/version",
                "version",
            ])
            .unwrap_or_else(|| LATEST.to_owned()),
            app: label(&["app"]).unwrap_or_else(|| UNKNOWN.to_owned()),
            version: label(&["version"]).unwrap_or_else(|| UNKNOWN.to_owned()),
            name,
            namespace: known(namespace),
            principal: UNKNOWN.to_owned(),
            cluster: UNKNOWN.to_owned(),
        }
    }

    /// Sets the principal to the SPIFFE identity of `service_account` in this workload's
    /// namespace under `trust_domain` (`spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/ACCOUNT`).
    ///
    /// ```
    /// use mesh_core::workload::Workload;
    /// let w = Workload::from_labels("web-7f9", "shop", &Default::default())
    ///     .with_service_account("cluster.local", "web");
    /// assert_eq!(w.principal, "spiffe://cluster.local/ns/shop/sa/web");
    /// ```
    pub fn with_service_account(mut self, trust_domain: &str, service_account: &str) -> Self {
        self.principal = format!(
            "spiffe://{trust_domain}/ns/{}/sa/{service_account}",
            self.namespace
        );
        self
    }

    /// Sets the cluster.
    ///
    /// ```
    /// use mesh_core::workload::Workload;
    /// let w = Workload::default().with_cluster("Kubernetes");
    /// assert_eq!(w.cluster, "Kubernetes");
    /// assert_eq!(w.name, "unknown");
    /// ```
    pub fn with_cluster(mut self, cluster: &str) -> Self {
        self.cluster = cluster.to_owned();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn canonical_labels_take_precedence_over_app_and_version() {
        let w = Workload::from_labels(
            "reviews-v3",
            "bookinfo",
            &labels(&[
                ("app", "reviews"),
                ("version", "v3"),
                ("service.istio.io/canonical-name", "reviews-canonical"),
                ("app.kubernetes.io/version", "3.0"),
            ]),
        );
        assert_eq!(w.canonical_service, "reviews-canonical");
        assert_eq!(w.canonical_revision, "3.0");
        assert_eq!((w.app.as_str(), w.version.as_str()), ("reviews", "v3"));
    }

    #[test]
    fn without_labels_falls_back_to_the_name_latest_and_unknown() {
        let w = Workload::from_labels("", "", &BTreeMap::new());
        assert_eq!(w, Workload::default());
        let named = Workload::from_labels("ratings", "shop", &BTreeMap::new())
            .with_service_account("cluster.local", "ratings-sa")
            .with_cluster("Kubernetes");
        assert_eq!(named.canonical_service, "ratings");
        assert_eq!(named.canonical_revision, "latest");
        assert_eq!(
            named.principal,
            "spiffe://cluster.local/ns/shop/sa/ratings-sa"
        );
        assert_eq!(named.cluster, "Kubernetes");
    }
}
