//! The proxy's own workload — the `source_*` labels of what it reports outbound and the
//! `destination_*` labels inbound — from, in order of precedence: explicit settings (the
//! sidecar's command-line flags), the mesh config's `defaultConfig.proxyMetadata`, and the
//! process environment, under the names Istio's injector uses:
//!
//! | field | setting | proxyMetadata / environment | default |
//! |---|---|---|---|
//! | workload name | `name` (`--workload-name`) | `ISTIO_META_WORKLOAD_NAME` | `unknown` |
//! | namespace | `namespace` (`--namespace`) | `POD_NAMESPACE` | `default` |
//! | labels (`app`, `version`, canonical name/revision) | `labels` (`--label K=V`) | `ISTIO_METAJSON_LABELS` (a JSON object), `CANONICAL_SERVICE`, `CANONICAL_REVISION` | none |
//! | principal | `service_account` (`--service-account`) | `SERVICE_ACCOUNT` | `unknown` |
//! | cluster | `cluster_id` (`--cluster-id`) | `ISTIO_META_CLUSTER_ID` | `Kubernetes` |
//!
//! The principal is `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/ACCOUNT`, with the mesh config's
//! `trustDomain` (default `cluster.local`).

use crate::registry::TRUST_DOMAIN;
use mesh_core::workload::Workload;
use mesh_route::config::Config;
use std::collections::BTreeMap;

/// Explicit settings of the proxy's workload identity; unset fields come from the mesh config's
/// `proxyMetadata` or the environment (see the [module docs](self)).
///
/// ```
/// use mesh_proxy::workload_identity::WorkloadSettings;
/// use mesh_route::config::Config;
/// let settings = WorkloadSettings {
///     name: Some("catalog-v2".into()),
///     namespace: Some("shop".into()),
///     labels: [("app".to_string(), "catalog".to_string()), ("version".to_string(), "v2".to_string())].into(),
///     service_account: Some("catalog".into()),
///     cluster_id: None,
/// };
/// // Explicit settings win over the environment.
/// let workload = settings.resolve(&Config::default(), |_| Some("from-env".into()));
/// assert_eq!((workload.namespace.as_str(), workload.version.as_str()), ("shop", "v2"));
/// assert_eq!(workload.principal, "spiffe://cluster.local/ns/shop/sa/catalog");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadSettings {
    /// Workload name.
    pub name: Option<String>,
    /// Namespace.
    pub namespace: Option<String>,
    /// Workload labels; these win over labels from the environment.
    pub labels: BTreeMap<String, String>,
    /// Service account (the principal's last segment).
    pub service_account: Option<String>,
    /// The cluster the workload runs in.
    pub cluster_id: Option<String>,
}

/// Istio's default `CLUSTER_ID`.
///
/// ```
/// use mesh_proxy::workload_identity::{DEFAULT_CLUSTER_ID, WorkloadSettings};
/// use mesh_route::config::Config;
/// let workload = WorkloadSettings::default().resolve(&Config::default(), |_| None);
/// assert_eq!(workload.cluster, DEFAULT_CLUSTER_ID);
/// assert_eq!(DEFAULT_CLUSTER_ID, "Kubernetes");
/// ```
pub const DEFAULT_CLUSTER_ID: &str = "Kubernetes";

/// `key` from the mesh config's `proxyMetadata`, else from `env`; empty values are unset.
fn lookup(config: &Config, env: &impl Fn(&str) -> Option<String>, key: &str) -> Option<String> {
    config
        .mesh
        .default_config
        .as_ref()
        .and_then(|c| c.proxy_metadata.get(key).cloned())
        .or_else(|| env(key))
        .filter(|value| !value.is_empty())
}

impl WorkloadSettings {
    /// The proxy's labels under `config`, with `env` as the process environment: Istio's
    /// `ISTIO_METAJSON_LABELS` and canonical service/revision (from `proxyMetadata`, else the
    /// environment), then the configured `labels`, which win. What its
    /// metrics' labels, the Gateways that select it and its routes' `sourceLabels` see.
    ///
    /// ```
    /// use mesh_proxy::workload_identity::WorkloadSettings;
    /// use mesh_route::config::Config;
    /// let settings = WorkloadSettings { labels: [("version".into(), "v2".into())].into(), ..Default::default() };
    /// let labels = settings.labels(&Config::default(), |name| {
    ///     (name == "ISTIO_METAJSON_LABELS").then(|| r#"{"app":"web","version":"v1"}"#.to_string())
    /// });
    /// assert_eq!(labels["app"], "web");
    /// assert_eq!(labels["version"], "v2", "the configured label wins");
    /// ```
    pub fn labels(
        &self,
        config: &Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> BTreeMap<String, String> {
        let mut labels: BTreeMap<String, String> = lookup(config, &env, "ISTIO_METAJSON_LABELS")
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default();
        for (key, label) in [
            ("CANONICAL_SERVICE", "service.istio.io/canonical-name"),
            ("CANONICAL_REVISION", "service.istio.io/canonical-revision"),
        ] {
            if let Some(value) = lookup(config, &env, key) {
                labels.entry(label.to_owned()).or_insert(value);
            }
        }
        labels.extend(self.labels.clone());
        labels
    }

    /// The proxy's workload under `config`, with `env` as the process environment.
    ///
    /// ```
    /// use mesh_proxy::workload_identity::WorkloadSettings;
    /// use mesh_route::config::Config;
    /// let settings = WorkloadSettings { name: Some("web".into()), ..Default::default() };
    /// let workload = settings.resolve(&Config::default(), |name| match name {
    ///     "POD_NAMESPACE" => Some("shop".into()),
    ///     "ISTIO_METAJSON_LABELS" => Some(r#"{"app":"web","version":"v1"}"#.into()),
    ///     "SERVICE_ACCOUNT" => Some("web-sa".into()),
    ///     _ => None,
    /// });
    /// assert_eq!((workload.name.as_str(), workload.namespace.as_str()), ("web", "shop"));
    /// assert_eq!((workload.app.as_str(), workload.version.as_str()), ("web", "v1"));
    /// assert_eq!(workload.principal, "spiffe://cluster.local/ns/shop/sa/web-sa");
    /// assert_eq!(workload.cluster, "Kubernetes");
    /// ```
    pub fn resolve(&self, config: &Config, env: impl Fn(&str) -> Option<String>) -> Workload {
        let lookup = |key: &str| lookup(config, &env, key);
        let labels = self.labels(config, &env);
        let name = self
            .name
            .clone()
            .or_else(|| lookup("ISTIO_META_WORKLOAD_NAME"))
            .unwrap_or_default();
        let namespace = self
            .namespace
            .clone()
            .or_else(|| lookup("POD_NAMESPACE"))
            .unwrap_or_else(|| "default".to_owned());
        let cluster = self
            .cluster_id
            .clone()
            .or_else(|| lookup("ISTIO_META_CLUSTER_ID"))
            .unwrap_or_else(|| DEFAULT_CLUSTER_ID.to_owned());
        let mut workload = Workload::from_labels(&name, &namespace, &labels).with_cluster(&cluster);
        if let Some(account) = self
            .service_account
            .clone()
            .or_else(|| lookup("SERVICE_ACCOUNT"))
        {
            let trust_domain = config.mesh.trust_domain.as_deref().unwrap_or(TRUST_DOMAIN);
            workload = workload.with_service_account(trust_domain, &account);
        }
        workload
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_win_over_proxy_metadata_which_wins_over_the_environment() {
        let config = Config::from_yaml_str(
            "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\n\
             spec:\n  trustDomain: example.org\n  defaultConfig:\n    proxyMetadata:\n      \
             ISTIO_META_WORKLOAD_NAME: from-metadata\n      POD_NAMESPACE: meta-ns\n",
        )
        .unwrap()
        .config;
        let env = |key: &str| match key {
            "ISTIO_META_WORKLOAD_NAME" => Some("from-env".to_owned()),
            "POD_NAMESPACE" => Some("env-ns".to_owned()),
            "ISTIO_METAJSON_LABELS" => Some(r#"{"app":"env-app","version":"v9"}"#.to_owned()),
            _ => None,
        };
        let defaults = WorkloadSettings::default().resolve(&config, env);
        assert_eq!(defaults.name, "from-metadata");
        assert_eq!(defaults.namespace, "meta-ns");
        assert_eq!(defaults.app, "env-app");
        assert_eq!(defaults.principal, "unknown");
        let explicit = WorkloadSettings {
            name: Some("flag".into()),
            labels: [("version".to_owned(), "v2".to_owned())].into(),
            service_account: Some("sa".into()),
            cluster_id: Some("east".into()),
            ..Default::default()
        }
        .resolve(&config, env);
        assert_eq!(explicit.name, "flag");
        assert_eq!(explicit.version, "v2");
        assert_eq!(explicit.canonical_revision, "v2");
        assert_eq!(explicit.principal, "spiffe://example.org/ns/meta-ns/sa/sa");
        assert_eq!(explicit.cluster, "east");
    }

    #[test]
    fn nothing_known_gives_istio_defaults() {
        let w = WorkloadSettings::default().resolve(&Config::default(), |_| None);
        assert_eq!(w.name, "unknown");
        assert_eq!(w.namespace, "default");
        assert_eq!(w.canonical_revision, "latest");
        assert_eq!(w.cluster, DEFAULT_CLUSTER_ID);
    }
}
