//! The `PeerAuthentication` resource (`security.istio.io`): which inbound connections must be
//! mutual TLS, and how a workload's mode is resolved from the policies that apply to it.
//!
//! As in Istio: a policy in the root namespace (`rootNamespace`, default `istio-system`)
//! without `selector` is mesh-wide; one without `selector` in a namespace covers that
//! namespace; one whose `selector.matchLabels` match the workload covers the workload, and its
//! `portLevelMtls` the ports it names. The most specific mode that is not `UNSET` wins; with
//! none, the mode is `PERMISSIVE`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::diagnostic::Reporter;
use super::resource::Resource;
use super::shared_types::PolicyWorkloadSelector;

/// Istio's root namespace when the mesh config names none: its policies are mesh-wide.
///
/// ```
/// use mesh_route::config::{Config, MtlsMode, peer_authentication::DEFAULT_ROOT_NAMESPACE};
///
/// let yaml = format!("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: default, namespace: {DEFAULT_ROOT_NAMESPACE}}}\nspec: {{mtls: {{mode: STRICT}}}}\n");
/// let config = Config::from_yaml_str(&yaml).unwrap().config;
/// // A policy without selector in the root namespace covers every namespace.
/// assert_eq!(config.mtls_mode("shop", &Default::default(), None), MtlsMode::Strict);
/// ```
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";

/// Istio `PeerAuthentication`; see the [module docs](self).
///
/// ```
/// use mesh_route::config::{Config, MtlsMode};
///
/// let yaml = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: db, namespace: shop}\nspec: {selector: {matchLabels: {app: db}}, mtls: {mode: STRICT}, portLevelMtls: {9000: {mode: DISABLE}}}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let labels = [("app".to_owned(), "db".to_owned())].into();
/// assert_eq!(config.mtls_mode("shop", &labels, Some(9000)), MtlsMode::Disable); // portLevelMtls
/// assert_eq!(config.mtls_mode("shop", &labels, Some(5432)), MtlsMode::Strict);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerAuthentication {
    /// The workloads covered (absent: the namespace, or the mesh in the root namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<PolicyWorkloadSelector>,
    /// The mode for every port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtls: Option<PeerMtls>,
    /// Modes of single ports (with `selector` only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub port_level_mtls: BTreeMap<u32, PeerMtls>,
}

/// `mtls`: the mode.
///
/// ```
/// use mesh_route::config::{Config, MtlsMode};
///
/// let yaml = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\nspec: {mtls: {mode: PERMISSIVE}}\n";
/// let policy = &Config::from_yaml_str(yaml).unwrap().config.peer_authentications[0];
/// assert_eq!(policy.spec.mtls.unwrap().mode, MtlsMode::Permissive);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerMtls {
    /// The mode (`UNSET` inherits).
    #[serde(default)]
    pub mode: MtlsMode,
}

/// Whether inbound connections are mutual TLS.
///
/// ```
/// use mesh_route::config::{Config, MtlsMode};
///
/// // `UNSET` inherits; with nothing above, the mode is `PERMISSIVE`.
/// let yaml = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\nspec: {mtls: {mode: UNSET}}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// assert_eq!(config.peer_authentications[0].spec.mtls.unwrap().mode, MtlsMode::Unset);
/// assert_eq!(config.mtls_mode("shop", &Default::default(), None), MtlsMode::Permissive);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MtlsMode {
    /// Inherit from the policy above (none above: `PERMISSIVE`).
    #[default]
    Unset,
    /// Plaintext only.
    Disable,
    /// Mutual TLS and plaintext.
    Permissive,
    /// Mutual TLS only.
    Strict,
}

/// The mode of `port` (any, for `None`) of the workload with `labels` in `namespace`, under
/// `policies`, with `root_namespace` holding the mesh-wide ones.
///
/// ```
/// use mesh_route::config::{Config, peer_authentication::{MtlsMode, mode_for}};
/// let yaml = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
///             metadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let mode = mode_for(&config.peer_authentications, "istio-system", "shop", &Default::default(), None);
/// assert_eq!(mode, MtlsMode::Strict);
/// ```
pub fn mode_for(
    policies: &[Resource<PeerAuthentication>],
    root_namespace: &str,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    port: Option<u32>,
) -> MtlsMode {
    fn in_namespace<'a>(
        policies: &'a [Resource<PeerAuthentication>],
        ns: &'a str,
    ) -> impl Iterator<Item = &'a Resource<PeerAuthentication>> {
        // Validation requires a namespace.
        policies.iter().filter(move |p| p.namespace() == Some(ns))
    }
    let in_namespace = |ns| in_namespace(policies, ns);
    let narrowed = |p: &Resource<PeerAuthentication>| {
        PolicyWorkloadSelector::narrowing(p.spec.selector.as_ref()).is_some()
    };
    let workload = in_namespace(namespace).find(|p| {
        PolicyWorkloadSelector::narrowing(p.spec.selector.as_ref())
            .is_some_and(|s| s.selects(labels))
    });
    let namespace_wide = in_namespace(namespace).find(|p| !narrowed(p));
    let mesh_wide = in_namespace(root_namespace).find(|p| !narrowed(p));
    let port_mode = workload
        .zip(port)
        .and_then(|(p, port)| p.spec.port_level_mtls.get(&port))
        .map(|m| m.mode);
    let modes = [
        port_mode,
        workload.and_then(|p| p.spec.mtls).map(|m| m.mode),
        namespace_wide.and_then(|p| p.spec.mtls).map(|m| m.mode),
        mesh_wide.and_then(|p| p.spec.mtls).map(|m| m.mode),
    ];
    modes
        .into_iter()
        .flatten()
        .find(|m| *m != MtlsMode::Unset)
        .unwrap_or(MtlsMode::Permissive)
}

/// Checks one PeerAuthentication.
pub(crate) fn validate_peer_authentication(policy: &PeerAuthentication, r: &mut Reporter<'_>) {
    if !policy.port_level_mtls.is_empty() && policy.selector.is_none() {
        r.error(
            "portLevelMtls",
            "portLevelMtls needs a selector (a policy for the whole namespace or mesh cannot name ports)",
        );
    }
    for port in policy.port_level_mtls.keys() {
        if *port == 0 || *port > 65535 {
            r.error(
                format!("portLevelMtls.{port}"),
                format!("port must be 1-65535, got {port}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(
        ns: &str,
        selector: Option<&str>,
        mode: MtlsMode,
        ports: &[(u32, MtlsMode)],
    ) -> Resource<PeerAuthentication> {
        Resource::new(
            "p",
            PeerAuthentication {
                selector: selector.map(|app| PolicyWorkloadSelector {
                    match_labels: [("app".to_owned(), app.to_owned())].into(),
                }),
                mtls: Some(PeerMtls { mode }),
                port_level_mtls: ports
                    .iter()
                    .map(|(p, m)| (*p, PeerMtls { mode: *m }))
                    .collect(),
            },
        )
        .in_namespace(ns)
    }

    #[test]
    fn the_most_specific_set_mode_wins() {
        let labels: BTreeMap<String, String> = [("app".to_owned(), "catalog".to_owned())].into();
        let mode = |policies: &[Resource<PeerAuthentication>], port| {
            mode_for(policies, DEFAULT_ROOT_NAMESPACE, "shop", &labels, port)
        };
        assert_eq!(mode(&[], None), MtlsMode::Permissive);
        let mesh = policy("istio-system", None, MtlsMode::Strict, &[]);
        assert_eq!(mode(std::slice::from_ref(&mesh), None), MtlsMode::Strict);
        let namespace = policy("shop", None, MtlsMode::Disable, &[]);
        assert_eq!(
            mode(&[mesh.clone(), namespace.clone()], None),
            MtlsMode::Disable
        );
        let workload = policy(
            "shop",
            Some("catalog"),
            MtlsMode::Unset,
            &[(8080, MtlsMode::Permissive)],
        );
        let all = [mesh, namespace, workload];
        assert_eq!(mode(&all, None), MtlsMode::Disable, "UNSET inherits");
        assert_eq!(mode(&all, Some(8080)), MtlsMode::Permissive);
        let other_app = policy("shop", Some("web"), MtlsMode::Strict, &[]);
        assert_eq!(mode(&[other_app], None), MtlsMode::Permissive);
    }
}
