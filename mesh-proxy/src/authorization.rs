//! [`AuthorizationLayer`]: Istio's AuthorizationPolicy enforced in front of a workload (the
//! inbound side): a denied request gets `403 RBAC: access denied` without reaching it.
//!
//! The policies that apply to the workload are compiled once per configuration into an
//! [`Authorizer`] (string patterns and CIDR blocks parsed up front); each request is then
//! checked against them in Istio's order — any matching `DENY` denies; with no `ALLOW` policy
//! everything else is allowed; with some, one must match. The caller's principal and namespace
//! come from its mutual-TLS certificate ([`PeerIdentity`]); a plaintext caller has neither, so
//! rules on them never match it.
//!
//! ```
//! use mesh_proxy::authorization::{Authorizer, AuthorizationLayer};
//! use mesh_route::config::Config;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n\
//!             metadata: {name: no-admin, namespace: shop}\n\
//!             spec: {action: DENY, rules: [{to: [{operation: {paths: ['/admin*']}}]}]}\n";
//! let config = Config::from_yaml_str(yaml).unwrap().config;
//! let authorizer = Authorizer::for_workload(&config, "shop", &Default::default(), 8080).unwrap();
//! let app = service_fn(|_req| async { Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::empty())) });
//! let guarded = AuthorizationLayer::new(authorizer).layer(app);
//! let request = http::Request::get("/admin/users").body(mesh_core::body::empty()).unwrap();
//! assert_eq!(guarded.oneshot(request).await.unwrap().status(), 403);
//! # }
//! ```

use http::{HeaderValue, Request, Response, StatusCode, header};
use mesh_core::{
    Body, BoxError, DownstreamAddr, LocalReplyDetails, PeerIdentity, authority::request_authority,
    body,
};
use mesh_route::config::{
    AuthorizationAction, Config,
    authorization_policy::{Condition, Operation, Source, parse_ip_block, policies_for},
};
use pin_project::pin_project;
use std::{
    borrow::Cow,
    collections::BTreeMap,
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};
use tower::{Layer, Service};

/// The body of a denied request, as Envoy's RBAC filter answers.
///
/// ```
/// use http_body_util::BodyExt;
/// use mesh_proxy::authorization::{ACCESS_DENIED, AuthorizationLayer, Authorizer};
/// use mesh_route::config::Config;
/// use tower::{Layer, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: nobody, namespace: shop}\n\
///             spec: {action: ALLOW, rules: [{to: [{operation: {methods: [GET]}}]}]}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let authorizer = Authorizer::for_workload(&config, "shop", &Default::default(), 8080).unwrap();
/// let app = service_fn(|_req| async { Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::empty())) });
/// let delete = http::Request::delete("/items/1").body(mesh_core::body::empty()).unwrap();
/// let response = AuthorizationLayer::new(authorizer).layer(app).oneshot(delete).await.unwrap();
/// assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), ACCESS_DENIED);
/// # }
/// ```
pub const ACCESS_DENIED: &str = "RBAC: access denied";

/// The compiled policies of one workload; see the [module docs](self).
///
/// ```
/// use mesh_proxy::authorization::Authorizer;
/// use mesh_route::config::Config;
/// let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: reads, namespace: shop}\n\
///             spec: {action: ALLOW, rules: [{to: [{operation: {methods: [GET, HEAD]}}]}]}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let authorizer = Authorizer::for_workload(&config, "shop", &Default::default(), 8080).unwrap();
/// let request = |method: &str| http::Request::builder().method(method).uri("/").body(mesh_core::body::empty()).unwrap();
/// assert!(authorizer.check(&request("GET")).is_ok());
/// // With an ALLOW policy, what no rule allows is denied.
/// assert!(authorizer.check(&request("POST")).is_err());
/// ```
#[derive(Debug)]
pub struct Authorizer {
    deny: Vec<CompiledPolicy>,
    allow: Vec<CompiledPolicy>,
    /// The workload port the rules' `ports` are compared with.
    port: u16,
    /// Whether a rule depends on the port.
    uses_ports: bool,
}

#[derive(Debug)]
struct CompiledPolicy {
    /// As Istio names the policy to Envoy's RBAC filter: `ns[NAMESPACE]-policy[NAME]`.
    envoy_name: String,
    rules: Vec<CompiledRule>,
}

#[derive(Debug, Default)]
struct CompiledRule {
    from: Vec<CompiledSource>,
    to: Vec<CompiledOperation>,
    when: Vec<CompiledCondition>,
}

#[derive(Debug, Default)]
struct CompiledSource {
    principals: Field<Pattern>,
    namespaces: Field<Pattern>,
    ip_blocks: Field<(IpAddr, u8)>,
}

#[derive(Debug, Default)]
struct CompiledOperation {
    hosts: Field<Pattern>,
    ports: Field<u16>,
    methods: Field<Pattern>,
    paths: Field<Pattern>,
}

#[derive(Debug)]
struct CompiledCondition {
    attribute: Attribute,
    values: Field<Pattern>,
}

#[derive(Debug)]
enum Attribute {
    Header(http::HeaderName),
    /// Addresses or CIDR blocks (`values` / `notValues`).
    SourceIp(Field<(IpAddr, u8)>),
    SourceNamespace,
    SourcePrincipal,
    DestinationPort,
    /// A condition that cannot hold.
    Never,
}

/// Values a field must match (one of them, when any) and must not match (none of them).
#[derive(Debug)]
struct Field<T> {
    any_of: Vec<T>,
    none_of: Vec<T>,
}

impl<T> Default for Field<T> {
    fn default() -> Self {
        Field {
            any_of: Vec::new(),
            none_of: Vec::new(),
        }
    }
}

impl<T> Field<T> {
    /// Whether `value` passes: with no value (an unknown attribute) a field that asks for
    /// values fails, and one that only excludes passes.
    fn admits<V: Copy>(&self, value: Option<V>, matches: impl Fn(&T, V) -> bool) -> bool {
        let Some(value) = value else {
            return self.any_of.is_empty();
        };
        (self.any_of.is_empty() || self.any_of.iter().any(|p| matches(p, value)))
            && !self.none_of.iter().any(|p| matches(p, value))
    }
}

/// Istio's string match: exact, `prefix*`, `*suffix`, or `*` (any non-empty value).
#[derive(Debug)]
enum Pattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Any,
}

impl Pattern {
    fn new(text: &str) -> Self {
        if text == "*" {
            Pattern::Any
        } else if let Some(prefix) = text.strip_suffix('*') {
            Pattern::Prefix(prefix.to_owned())
        } else if let Some(suffix) = text.strip_prefix('*') {
            Pattern::Suffix(suffix.to_owned())
        } else {
            Pattern::Exact(text.to_owned())
        }
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Exact(exact) => value == exact,
            Pattern::Prefix(prefix) => value.starts_with(prefix.as_str()),
            Pattern::Suffix(suffix) => value.ends_with(suffix.as_str()),
            Pattern::Any => !value.is_empty(),
        }
    }

    fn matches_ignoring_case(&self, value: &str) -> bool {
        self.matches(&value.to_ascii_lowercase())
    }
}

fn patterns(values: &[String], lowercase: bool) -> Vec<Pattern> {
    values
        .iter()
        .map(|v| {
            Pattern::new(&if lowercase {
                v.to_ascii_lowercase()
            } else {
                v.clone()
            })
        })
        .collect()
}

fn field(any_of: &[String], none_of: &[String], lowercase: bool) -> Field<Pattern> {
    Field {
        any_of: patterns(any_of, lowercase),
        none_of: patterns(none_of, lowercase),
    }
}

fn in_block(block: &(IpAddr, u8), ip: IpAddr) -> bool {
    let (network, prefix) = *block;
    match (network, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// What a request offers to the rules.
struct Facts<'a> {
    principal: Option<&'a str>,
    namespace: Option<&'a str>,
    ip: Option<IpAddr>,
    host: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    request: &'a Request<Body>,
}

/// Why [`Authorizer::check`] denied a request: the rule that matched, as Envoy's RBAC filter
/// names it in `%RESPONSE_CODE_DETAILS%` (`rbac_access_denied_matched_policy[…]`), or none
/// (ALLOW policies apply and none allowed it).
///
/// ```
/// use mesh_proxy::authorization::Denied;
/// let by_rule = Denied { rule: Some("ns[shop]-policy[no-admin]-rule[0]".into()) };
/// assert_eq!(by_rule.to_string(), "rbac_access_denied_matched_policy[ns[shop]-policy[no-admin]-rule[0]]");
/// assert_eq!(Denied { rule: None }.to_string(), "rbac_access_denied_matched_policy[none]");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rbac_access_denied_matched_policy[{}]", rule.as_deref().unwrap_or("none"))]
pub struct Denied {
    /// The DENY rule that matched (`ns[NS]-policy[NAME]-rule[N]`); `None`: no ALLOW rule did.
    pub rule: Option<String>,
}

impl Authorizer {
    /// The policies of `config` that apply to the workload with `labels` in `namespace`,
    /// serving `port`; `None` when none do (nothing to check).
    ///
    /// ```
    /// use mesh_proxy::authorization::Authorizer;
    /// use mesh_route::config::Config;
    /// let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: catalog, namespace: shop}\n\
    ///             spec: {selector: {matchLabels: {app: catalog}}, action: DENY, rules: [{to: [{operation: {paths: ['/admin']}}]}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let labels = |app: &str| [("app".to_string(), app.to_string())].into();
    /// assert!(Authorizer::for_workload(&config, "shop", &labels("catalog"), 8080).is_some());
    /// assert!(Authorizer::for_workload(&config, "shop", &labels("cart"), 8080).is_none(), "not selected");
    /// assert!(Authorizer::for_workload(&config, "other", &labels("catalog"), 8080).is_none(), "another namespace");
    /// ```
    pub fn for_workload(
        config: &Config,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        port: u16,
    ) -> Option<Self> {
        let root = config.mesh.root_namespace();
        let mut authorizer = Authorizer {
            deny: Vec::new(),
            allow: Vec::new(),
            port,
            uses_ports: false,
        };
        let mut any = false;
        for policy in policies_for(&config.authorization_policies, root, namespace, labels) {
            any = true;
            authorizer.uses_ports |= policy.spec.rules.iter().any(|rule| {
                rule.to
                    .iter()
                    .any(|t| !t.operation.ports.is_empty() || !t.operation.not_ports.is_empty())
                    || rule.when.iter().any(|c| c.key == "destination.port")
            });
            let compiled = CompiledPolicy {
                envoy_name: format!(
                    "ns[{}]-policy[{}]",
                    policy.namespace().unwrap_or(namespace),
                    policy.meta.name
                ),
                rules: policy.spec.rules.iter().map(compile_rule).collect(),
            };
            match policy.spec.action {
                AuthorizationAction::Deny => authorizer.deny.push(compiled),
                AuthorizationAction::Allow => authorizer.allow.push(compiled),
                // AUDIT decides nothing; CUSTOM is refused by validation.
                AuthorizationAction::Audit | AuthorizationAction::Custom => {}
            }
        }
        any.then_some(authorizer)
    }

    /// Whether a rule depends on the port the request came to.
    ///
    /// ```
    /// use mesh_proxy::authorization::Authorizer;
    /// use mesh_route::config::Config;
    /// let policy = |operation: &str| format!("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n\
    ///     metadata: {{name: p, namespace: shop}}\nspec: {{action: DENY, rules: [{{to: [{{operation: {operation}}}]}}]}}\n");
    /// let authorizer = |yaml: String| Authorizer::for_workload(&Config::from_yaml_str(&yaml).unwrap().config, "shop", &Default::default(), 8080).unwrap();
    /// assert!(authorizer(policy("{ports: ['9090']}")).uses_ports());
    /// assert!(!authorizer(policy("{paths: ['/admin']}")).uses_ports());
    /// ```
    pub fn uses_ports(&self) -> bool {
        self.uses_ports
    }

    /// Whether `request` may pass; when not, why, as Envoy's RBAC filter says it in
    /// `%RESPONSE_CODE_DETAILS%`: `rbac_access_denied_matched_policy[…]` with the DENY rule that
    /// matched (`ns[NAMESPACE]-policy[NAME]-rule[INDEX]`), or `none` when no ALLOW rule did.
    ///
    /// ```
    /// use mesh_proxy::authorization::Authorizer;
    /// use mesh_route::config::Config;
    /// let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: no-admin, namespace: shop}\n\
    ///             spec: {action: DENY, rules: [{to: [{operation: {paths: ['/admin']}}]}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let authorizer = Authorizer::for_workload(&config, "shop", &Default::default(), 8080).unwrap();
    /// let get = |path: &str| http::Request::get(path).body(mesh_core::body::empty()).unwrap();
    /// assert_eq!(
    ///     authorizer.check(&get("/admin")).unwrap_err().to_string(),
    ///     "rbac_access_denied_matched_policy[ns[shop]-policy[no-admin]-rule[0]]"
    /// );
    /// // Paths are normalized first: dot segments cannot sidestep the rule.
    /// assert!(authorizer.check(&get("/items/../admin")).is_err());
    /// assert!(authorizer.check(&get("/items")).is_ok());
    /// ```
    pub fn check(&self, request: &Request<Body>) -> Result<(), Denied> {
        let peer = request.extensions().get::<PeerIdentity>();
        let facts = Facts {
            principal: peer.map(|p| p.principal().trim_start_matches("spiffe://")),
            namespace: peer.and_then(PeerIdentity::namespace),
            ip: request
                .extensions()
                .get::<DownstreamAddr>()
                .map(|d| d.remote.ip()),
            // The authority routing and forwarding use, not another one.
            host: request_authority(request),
            method: request.method().as_str(),
            path: &normalized_path(request.uri().path()),
            request,
        };
        // Envoy names the first matching rule in the order of the rules' names (Istio makes
        // each rule a policy of Envoy's, `ns[…]-policy[…]-rule[N]`).
        let denied_by = self
            .deny
            .iter()
            .flat_map(|policy| {
                let matching = policy.rules.iter().enumerate();
                matching
                    .filter(|(_, rule)| self.rule_matches(rule, &facts))
                    .map(|(index, _)| format!("{}-rule[{index}]", policy.envoy_name))
            })
            .min();
        if let Some(rule) = denied_by {
            return Err(Denied { rule: Some(rule) });
        }
        let allowed = |p: &CompiledPolicy| p.rules.iter().any(|r| self.rule_matches(r, &facts));
        if self.allow.is_empty() || self.allow.iter().any(allowed) {
            Ok(())
        } else {
            Err(Denied { rule: None })
        }
    }

    /// Whether the request matches `rule`.
    fn rule_matches(&self, rule: &CompiledRule, facts: &Facts<'_>) -> bool {
        (rule.from.is_empty() || rule.from.iter().any(|s| self.source(s, facts)))
            && (rule.to.is_empty() || rule.to.iter().any(|o| self.operation(o, facts)))
            && rule.when.iter().all(|c| self.condition(c, facts))
    }

    fn source(&self, source: &CompiledSource, facts: &Facts<'_>) -> bool {
        source.principals.admits(facts.principal, Pattern::matches)
            && source.namespaces.admits(facts.namespace, Pattern::matches)
            && source.ip_blocks.admits(facts.ip, in_block)
    }

    fn operation(&self, operation: &CompiledOperation, facts: &Facts<'_>) -> bool {
        let port = self.port;
        operation
            .hosts
            .admits(facts.host, Pattern::matches_ignoring_case)
            && operation.ports.admits(Some(port), |p, port| *p == port)
            && operation
                .methods
                .admits(Some(facts.method), Pattern::matches)
            && operation.paths.admits(Some(facts.path), Pattern::matches)
    }

    fn condition(&self, condition: &CompiledCondition, facts: &Facts<'_>) -> bool {
        match &condition.attribute {
            Attribute::SourceIp(blocks) => blocks.admits(facts.ip, in_block),
            Attribute::Header(name) => {
                // Every value of a repeated header, joined as Envoy joins them.
                let values: Vec<&str> = facts
                    .request
                    .headers()
                    .get_all(name)
                    .iter()
                    .filter_map(|v: &HeaderValue| v.to_str().ok())
                    .collect();
                let joined = (!values.is_empty()).then(|| values.join(","));
                condition.values.admits(joined.as_deref(), Pattern::matches)
            }
            Attribute::SourceNamespace => {
                condition.values.admits(facts.namespace, Pattern::matches)
            }
            Attribute::SourcePrincipal => {
                condition.values.admits(facts.principal, Pattern::matches)
            }
            Attribute::DestinationPort => {
                let port = self.port.to_string();
                condition
                    .values
                    .admits(Some(port.as_str()), Pattern::matches)
            }
            Attribute::Never => false,
        }
    }
}

fn compile_rule(rule: &mesh_route::config::authorization_policy::Rule) -> CompiledRule {
    CompiledRule {
        from: rule
            .from
            .iter()
            .map(|f| compile_source(&f.source))
            .collect(),
        to: rule
            .to
            .iter()
            .map(|t| compile_operation(&t.operation))
            .collect(),
        when: rule.when.iter().map(compile_condition).collect(),
    }
}

fn compile_source(source: &Source) -> CompiledSource {
    let blocks = |values: &[String]| values.iter().filter_map(|b| parse_ip_block(b)).collect();
    CompiledSource {
        principals: field(&source.principals, &source.not_principals, false),
        namespaces: field(&source.namespaces, &source.not_namespaces, false),
        ip_blocks: Field {
            any_of: blocks(&source.ip_blocks),
            none_of: blocks(&source.not_ip_blocks),
        },
    }
}

fn compile_operation(operation: &Operation) -> CompiledOperation {
    let ports = |values: &[String]| values.iter().filter_map(|p| p.parse().ok()).collect();
    CompiledOperation {
        hosts: field(&operation.hosts, &operation.not_hosts, true),
        ports: Field {
            any_of: ports(&operation.ports),
            none_of: ports(&operation.not_ports),
        },
        methods: field(&operation.methods, &operation.not_methods, false),
        paths: field(&operation.paths, &operation.not_paths, false),
    }
}

fn compile_condition(condition: &Condition) -> CompiledCondition {
    let blocks = |values: &[String]| values.iter().filter_map(|b| parse_ip_block(b)).collect();
    let attribute = match (condition.header(), condition.key.as_str()) {
        (Some(name), _) => match name.parse() {
            Ok(name) => Attribute::Header(name),
            // Validation refuses invalid names; should one get here, nothing matches it.
            Err(_) => Attribute::Never,
        },
        (None, "source.ip") => Attribute::SourceIp(Field {
            any_of: blocks(&condition.values),
            none_of: blocks(&condition.not_values),
        }),
        (None, "source.namespace") => Attribute::SourceNamespace,
        (None, "source.principal") => Attribute::SourcePrincipal,
        // Validation refuses other keys.
        _ => Attribute::DestinationPort,
    };
    CompiledCondition {
        attribute,
        values: field(&condition.values, &condition.not_values, false),
    }
}

/// `path` with its dot segments removed (`.`, `..`, and their `%2e` spellings) and repeated
/// slashes merged, as Istio's default path normalization does, so that `/x/../admin` is
/// judged as `/admin`. A path with nothing to normalize is returned as it is.
///
/// ```
/// use mesh_proxy::authorization::normalized_path;
/// use std::borrow::Cow;
/// assert_eq!(normalized_path("/x/../admin"), "/admin");
/// assert_eq!(normalized_path("/a//b/./c/"), "/a/b/c/");
/// assert_eq!(normalized_path("/%2e%2e/etc"), "/etc");
/// assert!(matches!(normalized_path("/items/1"), Cow::Borrowed(_)), "nothing to normalize");
/// ```
pub fn normalized_path(path: &str) -> Cow<'_, str> {
    let clean = path.starts_with('/')
        && !path.contains("//")
        && !path.contains("/.")
        && !path.contains("/%");
    if clean {
        return Cow::Borrowed(path);
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match dots(segment) {
            Some(0 | 1) => {}
            Some(2) => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    let mut normalized = String::with_capacity(path.len());
    for segment in &segments {
        normalized.push('/');
        normalized.push_str(segment);
    }
    if normalized.is_empty() || (path.ends_with('/') && !segments.is_empty()) {
        normalized.push('/');
    }
    Cow::Owned(normalized)
}

/// How many dots `segment` is made of (each `.`, `%2e` or `%2E`); `None` when it holds anything
/// else.
fn dots(mut segment: &str) -> Option<usize> {
    let mut count = 0;
    while !segment.is_empty() {
        segment = segment
            .strip_prefix('.')
            .or_else(|| segment.strip_prefix("%2e"))
            .or_else(|| segment.strip_prefix("%2E"))?;
        count += 1;
    }
    Some(count)
}

/// Checks each request against an [`Authorizer`]; see the [module docs](self).
///
/// ```
/// use mesh_proxy::authorization::{AuthorizationLayer, Authorizer};
/// use mesh_route::config::Config;
/// use tower::{Layer, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: no-admin, namespace: shop}\n\
///             spec: {action: DENY, rules: [{to: [{operation: {paths: ['/admin*']}}]}]}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let layer = AuthorizationLayer::new(Authorizer::for_workload(&config, "shop", &Default::default(), 8080).unwrap());
/// let app = service_fn(|_req| async { Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::empty())) });
/// let items = http::Request::get("/items").body(mesh_core::body::empty()).unwrap();
/// assert_eq!(layer.layer(app).oneshot(items).await.unwrap().status(), 200);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct AuthorizationLayer {
    authorizer: Arc<Authorizer>,
}

impl AuthorizationLayer {
    /// A layer enforcing `authorizer`.
    ///
    /// ```
    /// use mesh_proxy::authorization::{AuthorizationLayer, Authorizer};
    /// use mesh_route::config::Config;
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: read-only, namespace: shop}\n\
    ///             spec: {action: DENY, rules: [{to: [{operation: {notMethods: [GET]}}]}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let layer = AuthorizationLayer::new(Authorizer::for_workload(&config, "shop", &Default::default(), 8080).unwrap());
    /// let app = service_fn(|_req| async { Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::empty())) });
    /// let post = http::Request::post("/items").body(mesh_core::body::empty()).unwrap();
    /// assert_eq!(layer.layer(app).oneshot(post).await.unwrap().status(), 403);
    /// # }
    /// ```
    pub fn new(authorizer: Authorizer) -> Self {
        AuthorizationLayer::shared(Arc::new(authorizer))
    }

    /// A layer enforcing a shared `authorizer`.
    ///
    /// ```
    /// use mesh_proxy::authorization::{AuthorizationLayer, Authorizer};
    /// use mesh_route::config::Config;
    /// use std::sync::Arc;
    /// let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: no-admin, namespace: shop}\n\
    ///             spec: {action: DENY, rules: [{to: [{operation: {paths: ['/admin']}}]}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let authorizer = Arc::new(Authorizer::for_workload(&config, "shop", &Default::default(), 8080).unwrap());
    /// // One compiled authorizer for several listeners.
    /// let (_inbound, _embedded) = (AuthorizationLayer::shared(authorizer.clone()), AuthorizationLayer::shared(authorizer.clone()));
    /// assert_eq!(Arc::strong_count(&authorizer), 3);
    /// ```
    pub fn shared(authorizer: Arc<Authorizer>) -> Self {
        AuthorizationLayer { authorizer }
    }
}

impl<S> Layer<S> for AuthorizationLayer {
    type Service = Authorization<S>;

    fn layer(&self, inner: S) -> Authorization<S> {
        Authorization {
            inner,
            authorizer: self.authorizer.clone(),
        }
    }
}

/// The service [`AuthorizationLayer`] makes.
///
/// ```
/// use mesh_proxy::authorization::{AuthorizationLayer, Authorizer};
/// use mesh_route::config::Config;
/// use tower::{Layer, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: no-admin, namespace: shop}\n\
///             spec: {action: DENY, rules: [{to: [{operation: {paths: ['/admin']}}]}]}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let layer = AuthorizationLayer::new(Authorizer::for_workload(&config, "shop", &Default::default(), 8080).unwrap());
/// let app = service_fn(|_req| async { Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::empty())) });
/// let guarded = layer.layer(app);
/// let denied = guarded.oneshot(http::Request::get("/admin").body(mesh_core::body::empty()).unwrap()).await.unwrap();
/// assert_eq!(denied.status(), 403);
/// assert_eq!(denied.headers()["content-type"], "text/plain");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Authorization<S> {
    inner: S,
    authorizer: Arc<Authorizer>,
}

impl<S> Service<Request<Body>> for Authorization<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = AuthorizationFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        match self.authorizer.check(&request) {
            Ok(()) => AuthorizationFuture::Allowed(self.inner.call(request)),
            Err(details) => {
                tracing::debug!(path = request.uri().path(), %details, "request denied");
                let mut denied = Response::new(body::full(ACCESS_DENIED));
                *denied.status_mut() = StatusCode::FORBIDDEN;
                denied
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                denied
                    .extensions_mut()
                    .insert(LocalReplyDetails(details.to_string().into()));
                AuthorizationFuture::Denied(Some(denied))
            }
        }
    }
}

/// The future of [`Authorization`]: the inner service's, or the denial.
///
/// ```
/// use mesh_proxy::authorization::{AuthorizationFuture, AuthorizationLayer, Authorizer};
/// use mesh_route::config::Config;
/// use tower::{Layer, Service, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: no-admin, namespace: shop}\n\
///             spec: {action: DENY, rules: [{to: [{operation: {paths: ['/admin']}}]}]}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let layer = AuthorizationLayer::new(Authorizer::for_workload(&config, "shop", &Default::default(), 8080).unwrap());
/// let app = service_fn(|_req| async { Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::empty())) });
/// let mut guarded = layer.layer(app);
/// let get = |path: &str| http::Request::get(path).body(mesh_core::body::empty()).unwrap();
/// guarded.ready().await.unwrap();
/// assert!(matches!(guarded.call(get("/admin")), AuthorizationFuture::Denied(Some(_))));
/// guarded.ready().await.unwrap();
/// assert!(matches!(guarded.call(get("/items")), AuthorizationFuture::Allowed(_)));
/// # }
/// ```
#[pin_project(project = AuthorizationProjection)]
pub enum AuthorizationFuture<F> {
    /// Passed on.
    Allowed(#[pin] F),
    /// Answered `403`.
    Denied(Option<Response<Body>>),
}

impl<F, E> Future for AuthorizationFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<Body>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AuthorizationProjection::Allowed(future) => future.poll(cx).map_err(Into::into),
            AuthorizationProjection::Denied(denied) => {
                Poll::Ready(Ok(denied.take().expect("polled after completion")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authorizer(yaml_spec: &str) -> Authorizer {
        let yaml = format!(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n\
             metadata: {{name: p, namespace: shop}}\nspec: {yaml_spec}\n"
        );
        let config = Config::from_yaml_str(&yaml).unwrap().config;
        Authorizer::for_workload(&config, "shop", &BTreeMap::new(), 8080).unwrap()
    }

    fn request(path: &str, peer: Option<&str>) -> Request<Body> {
        let mut request = Request::get(path)
            .header("host", "catalog")
            .body(body::empty())
            .unwrap();
        if let Some(peer) = peer {
            request.extensions_mut().insert(PeerIdentity::new(peer));
        }
        request
    }

    const WEB: &str = "spiffe://cluster.local/ns/shop/sa/web";

    #[tokio::test]
    async fn a_denial_says_which_rule_denied_or_that_none_allowed() {
        let deny = authorizer(
            "{action: DENY, rules: [{to: [{operation: {paths: ['/admin']}}]}, \
             {to: [{operation: {paths: ['/secret']}}]}]}",
        );
        assert_eq!(
            deny.check(&request("/secret", None))
                .unwrap_err()
                .to_string(),
            "rbac_access_denied_matched_policy[ns[shop]-policy[p]-rule[1]]"
        );
        // Of several matching rules, the first by name, as Envoy orders its policies.
        let rules: Vec<&str> = (0..=10)
            .map(|i| match i {
                1 | 10 => "{to: [{operation: {paths: ['/secret']}}]}",
                _ => "{to: [{operation: {paths: ['/never']}}]}",
            })
            .collect();
        let many = authorizer(&format!("{{action: DENY, rules: [{}]}}", rules.join(", ")));
        assert_eq!(
            many.check(&request("/secret", None))
                .unwrap_err()
                .to_string(),
            "rbac_access_denied_matched_policy[ns[shop]-policy[p]-rule[10]]"
        );
        let allow = authorizer("{rules: [{to: [{operation: {paths: ['/items']}}]}]}");
        assert_eq!(
            allow
                .check(&request("/admin", None))
                .unwrap_err()
                .to_string(),
            "rbac_access_denied_matched_policy[none]"
        );
        // The 403 carries them for `%RESPONSE_CODE_DETAILS%`.
        let app = tower::service_fn(|_request: Request<Body>| async {
            Ok::<_, BoxError>(Response::new(body::empty()))
        });
        let guarded = tower::Layer::layer(&AuthorizationLayer::new(deny), app);
        let denied = tower::ServiceExt::oneshot(guarded, request("/admin", None))
            .await
            .unwrap();
        assert_eq!(denied.status(), 403);
        assert_eq!(
            denied.extensions().get::<LocalReplyDetails>().unwrap().0,
            "rbac_access_denied_matched_policy[ns[shop]-policy[p]-rule[0]]"
        );
    }

    #[test]
    fn allow_policies_deny_by_default_and_empty_rules_allow_everything() {
        assert!(
            authorizer("{}").check(&request("/", None)).is_err(),
            "ALLOW without rules"
        );
        assert!(
            authorizer("{rules: [{}]}")
                .check(&request("/", None))
                .is_ok()
        );
        assert!(
            authorizer("{action: DENY}")
                .check(&request("/", None))
                .is_ok(),
            "DENY without rules"
        );
        assert!(
            authorizer("{action: AUDIT, rules: [{}]}")
                .check(&request("/", None))
                .is_ok()
        );
    }

    #[test]
    fn principals_come_from_mutual_tls_only() {
        let allow_web = authorizer(
            "{rules: [{from: [{source: {principals: ['cluster.local/ns/shop/sa/web']}}]}]}",
        );
        assert!(allow_web.check(&request("/", Some(WEB))).is_ok());
        assert!(allow_web.check(&request("/", None)).is_err());
        let other = "spiffe://cluster.local/ns/shop/sa/batch";
        assert!(allow_web.check(&request("/", Some(other))).is_err());
        let not_web =
            authorizer("{action: DENY, rules: [{from: [{source: {notNamespaces: ['shop']}}]}]}");
        assert!(not_web.check(&request("/", Some(WEB))).is_ok());
        assert!(
            not_web
                .check(&request("/", Some("spiffe://cluster.local/ns/ops/sa/x")))
                .is_err()
        );
    }

    #[test]
    fn operations_and_conditions_match_as_istio_does() {
        let deny = authorizer(
            "{action: DENY, rules: [{to: [{operation: {methods: [POST], paths: ['/admin*']}}], \
             when: [{key: 'request.headers[x-env]', notValues: [prod]}]}]}",
        );
        let post = |path: &str, env: &str| {
            Request::post(path)
                .header("x-env", env)
                .body(body::empty())
                .unwrap()
        };
        assert!(deny.check(&post("/admin/x", "dev")).is_err());
        assert!(deny.check(&post("/admin/x", "prod")).is_ok(), "notValues");
        assert!(deny.check(&post("/items", "dev")).is_ok(), "path");
        assert!(deny.check(&request("/admin/x", None)).is_ok(), "method");
        let ports =
            authorizer("{rules: [{to: [{operation: {ports: ['9090'], hosts: ['*.shop']}}]}]}");
        assert!(
            ports.check(&request("/", None)).is_err(),
            "port 8080 is not 9090"
        );
        let blocks = authorizer("{rules: [{from: [{source: {ipBlocks: ['10.0.0.0/8']}}]}]}");
        let mut inside = request("/", None);
        inside.extensions_mut().insert(DownstreamAddr {
            remote: "10.1.2.3:5000".parse().unwrap(),
            local: "127.0.0.1:15006".parse().unwrap(),
        });
        assert!(blocks.check(&inside).is_ok());
        assert!(blocks.check(&request("/", None)).is_err(), "no address");
        let cidr = authorizer(
            "{action: DENY, rules: [{when: [{key: source.ip, values: ['10.0.0.0/8']}]}]}",
        );
        assert!(cidr.check(&inside).is_err(), "source.ip takes CIDR blocks");
    }

    #[test]
    fn paths_are_judged_normalized() {
        let deny = authorizer("{action: DENY, rules: [{to: [{operation: {paths: ['/admin*']}}]}]}");
        for sneaky in ["/x/../admin", "/./admin", "/x/%2e%2e/admin", "//admin"] {
            assert!(deny.check(&request(sneaky, None)).is_err(), "{sneaky}");
        }
        assert_eq!(normalized_path("/a/b/../c/"), "/a/c/");
        assert_eq!(normalized_path("/.."), "/");
        assert!(matches!(normalized_path("/items/1"), Cow::Borrowed(_)));
        assert_eq!(normalized_path("/a/...b/%2E%2e/c"), "/a/c");
    }
}
