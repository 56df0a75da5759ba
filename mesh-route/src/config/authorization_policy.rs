//! The `AuthorizationPolicy` resource (`security.istio.io`): who may call a workload, as Istio
//! defines it.
//!
//! A policy applies to a workload when it sits in the root namespace without `selector` (the
//! whole mesh), in the workload's namespace without `selector`, or in its namespace with a
//! `selector` matching its labels. For each request: if a `DENY` policy matches, the request is
//! denied; otherwise, if no `ALLOW` policy applies to the workload, it is allowed; otherwise it
//! is allowed only when an `ALLOW` policy matches. `AUDIT` policies decide nothing. A policy
//! matches when one of its `rules` does; a rule matches when its `from`, `to` and `when` all
//! do (each a list of alternatives); so an `ALLOW` policy without rules allows nothing (deny
//! by default) and one with an empty rule (`rules: [{}]`) allows everything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::diagnostic::Reporter;
use super::resource::Resource;
use super::shared_types::PolicyWorkloadSelector;

/// Istio `AuthorizationPolicy`; see the [module docs](self).
///
/// ```
/// use mesh_route::config::{AuthorizationAction, Config};
///
/// let yaml = r#"
/// apiVersion: security.istio.io/v1
/// kind: AuthorizationPolicy
/// metadata: {name: orders, namespace: shop}
/// spec:
///   selector: {matchLabels: {app: orders}}
///   action: ALLOW
///   rules:
///   - from: [{source: {principals: [cluster.local/ns/shop/sa/web], ipBlocks: [10.0.0.0/8]}}]
///     to: [{operation: {methods: [GET, POST], paths: [/orders*], ports: ["8080"]}}]
///     when: [{key: "request.headers[x-tenant]", values: [acme]}]
/// "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let policy = &config.authorization_policies[0].spec;
/// assert_eq!(policy.action, AuthorizationAction::Allow);
/// assert_eq!(policy.selector.as_ref().unwrap().match_labels["app"], "orders");
/// assert_eq!(policy.rules.len(), 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationPolicy {
    /// The workloads covered (absent: the namespace, or the mesh in the root namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<PolicyWorkloadSelector>,
    /// `ALLOW` (default), `DENY` or `AUDIT`.
    #[serde(default)]
    pub action: AuthorizationAction,
    /// The rules; the policy matches when one does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// Refused: external authorizers (`CUSTOM`) are not supported.
    #[serde(skip_serializing)]
    pub provider: Option<serde_json::Value>,
    /// Refused: Gateway API attachment is not supported (use `selector`).
    #[serde(skip_serializing)]
    pub target_ref: Option<serde_json::Value>,
    /// Refused: Gateway API attachment is not supported (use `selector`).
    #[serde(skip_serializing)]
    pub target_refs: Option<serde_json::Value>,
}

/// What a matching policy does.
///
/// ```
/// use mesh_route::config::{AuthorizationAction, Config};
///
/// assert_eq!(AuthorizationAction::default(), AuthorizationAction::Allow);
/// // `CUSTOM` (an external authorizer) parses, but loading refuses it.
/// let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ext, namespace: shop}\nspec: {action: CUSTOM}\n";
/// assert!(Config::from_yaml_str(yaml).unwrap_err()[0].to_string().contains("CUSTOM"));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthorizationAction {
    /// Allow the request.
    #[default]
    Allow,
    /// Deny the request (403 `RBAC: access denied`).
    Deny,
    /// Decide nothing (Istio logs it).
    Audit,
    /// Refused: an external authorizer.
    Custom,
}

/// One rule: `from`, `to` and `when` must all match (an empty one matches anything).
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: security.istio.io/v1
/// # kind: AuthorizationPolicy
/// # metadata: {name: orders, namespace: shop}
/// # spec:
/// #   selector: {matchLabels: {app: orders}}
/// #   action: ALLOW
/// #   rules:
/// #   - from: [{source: {principals: [cluster.local/ns/shop/sa/web], ipBlocks: [10.0.0.0/8]}}]
/// #     to: [{operation: {methods: [GET, POST], paths: [/orders*], ports: ["8080"]}}]
/// #     when: [{key: "request.headers[x-tenant]", values: [acme]}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let policy = &config.authorization_policies[0].spec;
/// let rule = &policy.rules[0];
/// assert_eq!((rule.from.len(), rule.to.len(), rule.when.len()), (1, 1, 1));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Who calls (any one of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<From>,
    /// What is called (any one of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<To>,
    /// Further conditions (all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Condition>,
}

/// `from`: a source.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: security.istio.io/v1
/// # kind: AuthorizationPolicy
/// # metadata: {name: orders, namespace: shop}
/// # spec:
/// #   selector: {matchLabels: {app: orders}}
/// #   action: ALLOW
/// #   rules:
/// #   - from: [{source: {principals: [cluster.local/ns/shop/sa/web], ipBlocks: [10.0.0.0/8]}}]
/// #     to: [{operation: {methods: [GET, POST], paths: [/orders*], ports: ["8080"]}}]
/// #     when: [{key: "request.headers[x-tenant]", values: [acme]}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let policy = &config.authorization_policies[0].spec;
/// let source = &policy.rules[0].from[0].source;
/// assert_eq!(source.principals, ["cluster.local/ns/shop/sa/web"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct From {
    /// The source's attributes (all must match).
    pub source: Source,
}

/// A request's source. Principals and namespaces come from the caller's mutual-TLS
/// certificate: a plaintext caller has neither.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: security.istio.io/v1
/// # kind: AuthorizationPolicy
/// # metadata: {name: orders, namespace: shop}
/// # spec:
/// #   selector: {matchLabels: {app: orders}}
/// #   action: ALLOW
/// #   rules:
/// #   - from: [{source: {principals: [cluster.local/ns/shop/sa/web], ipBlocks: [10.0.0.0/8]}}]
/// #     to: [{operation: {methods: [GET, POST], paths: [/orders*], ports: ["8080"]}}]
/// #     when: [{key: "request.headers[x-tenant]", values: [acme]}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let policy = &config.authorization_policies[0].spec;
/// let source = &policy.rules[0].from[0].source;
/// assert_eq!(source.ip_blocks, ["10.0.0.0/8"]);
/// assert!(source.namespaces.is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    /// Caller identities (`cluster.local/ns/shop/sa/web`; `*` prefix/suffix wildcards).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// Identities that must not be the caller's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_principals: Vec<String>,
    /// Caller namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespaces that must not be the caller's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_namespaces: Vec<String>,
    /// Caller addresses (`10.0.0.1`, `10.0.0.0/8`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_blocks: Vec<String>,
    /// Addresses that must not be the caller's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ip_blocks: Vec<String>,
    /// Refused: JWT request principals are not supported.
    #[serde(skip_serializing)]
    pub request_principals: Option<serde_json::Value>,
    /// Refused: JWT request principals are not supported.
    #[serde(skip_serializing)]
    pub not_request_principals: Option<serde_json::Value>,
    /// Refused: the original client address is not known here (use ipBlocks).
    #[serde(skip_serializing)]
    pub remote_ip_blocks: Option<serde_json::Value>,
    /// Refused: the original client address is not known here (use notIpBlocks).
    #[serde(skip_serializing)]
    pub not_remote_ip_blocks: Option<serde_json::Value>,
}

/// `to`: an operation.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: security.istio.io/v1
/// # kind: AuthorizationPolicy
/// # metadata: {name: orders, namespace: shop}
/// # spec:
/// #   selector: {matchLabels: {app: orders}}
/// #   action: ALLOW
/// #   rules:
/// #   - from: [{source: {principals: [cluster.local/ns/shop/sa/web], ipBlocks: [10.0.0.0/8]}}]
/// #     to: [{operation: {methods: [GET, POST], paths: [/orders*], ports: ["8080"]}}]
/// #     when: [{key: "request.headers[x-tenant]", values: [acme]}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let policy = &config.authorization_policies[0].spec;
/// assert_eq!(policy.rules[0].to[0].operation.methods, ["GET", "POST"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct To {
    /// The operation's attributes (all must match).
    pub operation: Operation,
}

/// A request's operation.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: security.istio.io/v1
/// # kind: AuthorizationPolicy
/// # metadata: {name: orders, namespace: shop}
/// # spec:
/// #   selector: {matchLabels: {app: orders}}
/// #   action: ALLOW
/// #   rules:
/// #   - from: [{source: {principals: [cluster.local/ns/shop/sa/web], ipBlocks: [10.0.0.0/8]}}]
/// #     to: [{operation: {methods: [GET, POST], paths: [/orders*], ports: ["8080"]}}]
/// #     when: [{key: "request.headers[x-tenant]", values: [acme]}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let policy = &config.authorization_policies[0].spec;
/// let operation = &policy.rules[0].to[0].operation;
/// assert_eq!(operation.paths, ["/orders*"]);
/// assert_eq!(operation.ports, ["8080"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    /// `Host` values (case-insensitive; wildcards).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Hosts that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_hosts: Vec<String>,
    /// Workload ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// Ports that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<String>,
    /// Methods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Methods that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_methods: Vec<String>,
    /// Paths, without the query (wildcards).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Paths that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_paths: Vec<String>,
}

/// `when`: a condition on one attribute.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: security.istio.io/v1
/// # kind: AuthorizationPolicy
/// # metadata: {name: orders, namespace: shop}
/// # spec:
/// #   selector: {matchLabels: {app: orders}}
/// #   action: ALLOW
/// #   rules:
/// #   - from: [{source: {principals: [cluster.local/ns/shop/sa/web], ipBlocks: [10.0.0.0/8]}}]
/// #     to: [{operation: {methods: [GET, POST], paths: [/orders*], ports: ["8080"]}}]
/// #     when: [{key: "request.headers[x-tenant]", values: [acme]}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let policy = &config.authorization_policies[0].spec;
/// let condition = &policy.rules[0].when[0];
/// assert_eq!(condition.header(), Some("x-tenant"));
/// assert_eq!(condition.values, ["acme"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// `request.headers[NAME]`, `source.ip`, `source.namespace`, `source.principal`,
    /// `destination.port`.
    pub key: String,
    /// Values, one of which must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Values none of which may match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_values: Vec<String>,
}

/// The `when` keys supported.
///
/// ```
/// use mesh_route::config::{Config, authorization_policy::CONDITION_KEYS};
///
/// assert!(CONDITION_KEYS.contains(&"source.namespace"));
/// let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop}\nspec: {rules: [{when: [{key: 'request.auth.claims[iss]', values: [x]}]}]}\n";
/// assert!(Config::from_yaml_str(yaml).unwrap_err()[0].message.contains("unsupported key"));
/// ```
pub const CONDITION_KEYS: &[&str] = &[
    "request.headers[NAME]",
    "source.ip",
    "source.namespace",
    "source.principal",
    "destination.port",
];

impl Condition {
    /// The header a `request.headers[NAME]` key names.
    ///
    /// ```
    /// use mesh_route::config::authorization_policy::Condition;
    ///
    /// let condition = Condition { key: "request.headers[x-user]".into(), ..Default::default() };
    /// assert_eq!(condition.header(), Some("x-user"));
    /// assert_eq!(Condition { key: "source.ip".into(), ..Default::default() }.header(), None);
    /// ```
    pub fn header(&self) -> Option<&str> {
        self.key.strip_prefix("request.headers[")?.strip_suffix(']')
    }
}

/// The policies that apply to the workload with `labels` in `namespace`, with `root_namespace`
/// holding the mesh-wide ones.
///
/// ```
/// use mesh_route::config::{Config, authorization_policy::policies_for};
///
/// # let yaml = r#"
/// # apiVersion: security.istio.io/v1
/// # kind: AuthorizationPolicy
/// # metadata: {name: orders, namespace: shop}
/// # spec:
/// #   selector: {matchLabels: {app: orders}}
/// #   action: ALLOW
/// #   rules:
/// #   - from: [{source: {principals: [cluster.local/ns/shop/sa/web], ipBlocks: [10.0.0.0/8]}}]
/// #     to: [{operation: {methods: [GET, POST], paths: [/orders*], ports: ["8080"]}}]
/// #     when: [{key: "request.headers[x-tenant]", values: [acme]}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let policy = &config.authorization_policies[0].spec;
/// let orders = [("app".to_owned(), "orders".to_owned())].into();
/// assert_eq!(policies_for(&config.authorization_policies, "istio-system", "shop", &orders).count(), 1);
/// assert_eq!(policies_for(&config.authorization_policies, "istio-system", "shop", &Default::default()).count(), 0);
/// ```
pub fn policies_for<'a>(
    policies: &'a [Resource<AuthorizationPolicy>],
    root_namespace: &'a str,
    namespace: &'a str,
    labels: &'a BTreeMap<String, String>,
) -> impl Iterator<Item = &'a Resource<AuthorizationPolicy>> + 'a {
    policies.iter().filter(move |p| {
        let Some(ns) = p.namespace() else {
            // Validation requires a namespace.
            return false;
        };
        match PolicyWorkloadSelector::narrowing(p.spec.selector.as_ref()) {
            None => ns == root_namespace || ns == namespace,
            Some(selector) => ns == namespace && selector.selects(labels),
        }
    })
}

/// Checks one AuthorizationPolicy: everything it says must be enforceable.
pub(crate) fn validate_authorization_policy(policy: &AuthorizationPolicy, r: &mut Reporter<'_>) {
    if policy.action == AuthorizationAction::Custom || policy.provider.is_some() {
        r.error(
            "action",
            "CUSTOM (an external authorizer) is not supported: use ALLOW, DENY or AUDIT",
        );
    }
    if policy.target_ref.is_some() || policy.target_refs.is_some() {
        r.error("targetRef", "not supported: select workloads with selector");
    }
    for (i, rule) in policy.rules.iter().enumerate() {
        for (j, from) in rule.from.iter().enumerate() {
            let at = format!("rules[{i}].from[{j}].source");
            let source = &from.source;
            let refused = [
                ("requestPrincipals", source.request_principals.is_some()),
                (
                    "notRequestPrincipals",
                    source.not_request_principals.is_some(),
                ),
                ("remoteIpBlocks", source.remote_ip_blocks.is_some()),
                ("notRemoteIpBlocks", source.not_remote_ip_blocks.is_some()),
            ];
            for (field, present) in refused {
                if present {
                    r.error(
                        format!("{at}.{field}"),
                        "not supported (no JWT authentication nor original client address here)",
                    );
                }
            }
            for (k, block) in source
                .ip_blocks
                .iter()
                .chain(&source.not_ip_blocks)
                .enumerate()
            {
                if parse_ip_block(block).is_none() {
                    r.error(
                        format!("{at}.ipBlocks[{k}]"),
                        format!("\"{block}\" is not an address or CIDR block"),
                    );
                }
            }
        }
        for (j, to) in rule.to.iter().enumerate() {
            for port in to.operation.ports.iter().chain(&to.operation.not_ports) {
                if port.parse::<u16>().is_err() {
                    r.error(
                        format!("rules[{i}].to[{j}].operation.ports"),
                        format!("\"{port}\" is not a port number"),
                    );
                }
            }
        }
        for (j, to) in rule.to.iter().enumerate() {
            let op = &to.operation;
            for path in op.paths.iter().chain(&op.not_paths) {
                if path.contains('{') {
                    r.error(
                        format!("rules[{i}].to[{j}].operation.paths"),
                        format!(
                            "path templates are not supported: \"{path}\" (use prefix* or *suffix)"
                        ),
                    );
                }
            }
        }
        for (j, condition) in rule.when.iter().enumerate() {
            let known = condition
                .header()
                .is_some_and(|h| http::HeaderName::from_bytes(h.as_bytes()).is_ok())
                || CONDITION_KEYS[1..].contains(&condition.key.as_str());
            if !known {
                r.error(
                    format!("rules[{i}].when[{j}].key"),
                    format!(
                        "unsupported key \"{}\"; supported: {}",
                        condition.key,
                        CONDITION_KEYS.join(", ")
                    ),
                );
            }
            if condition.key == "source.ip" {
                for value in condition.values.iter().chain(&condition.not_values) {
                    if parse_ip_block(value).is_none() {
                        r.error(
                            format!("rules[{i}].when[{j}].values"),
                            format!("\"{value}\" is not an address or CIDR block"),
                        );
                    }
                }
            }
            if condition.values.is_empty() && condition.not_values.is_empty() {
                r.error(
                    format!("rules[{i}].when[{j}]"),
                    "a condition needs values or notValues",
                );
            }
        }
    }
}

/// An address or CIDR block: the address as written and its prefix length (`10.1.2.3/8` gives
/// `10.1.2.3` and 8; callers mask both sides before comparing). A bare address has the full
/// length, 32 or 128.
///
/// ```
/// use mesh_route::config::authorization_policy::parse_ip_block;
/// use std::net::IpAddr;
///
/// assert_eq!(parse_ip_block("10.0.0.0/8"), Some(("10.0.0.0".parse::<IpAddr>().unwrap(), 8)));
/// assert_eq!(parse_ip_block("::1"), Some(("::1".parse::<IpAddr>().unwrap(), 128)));
/// assert_eq!(parse_ip_block("10.0.0.0/33"), None);
/// assert_eq!(parse_ip_block("10.1.2.3/8"), Some(("10.1.2.3".parse::<IpAddr>().unwrap(), 8)));
/// ```
pub fn parse_ip_block(block: &str) -> Option<(std::net::IpAddr, u8)> {
    let (address, prefix) = match block.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix.parse::<u8>().ok()?)),
        None => (block, None),
    };
    let address: std::net::IpAddr = address.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    (prefix <= max).then_some((address, prefix))
}
