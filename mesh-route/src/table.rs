//! The compiled, immutable [`RouteTable`]: host → ordered rules → weighted destinations.
//!
//! Built once per configuration from VirtualServices (their rules, in order), ServiceEntries
//! (a default route for every registered host that no VirtualService claims, with the default
//! retries, as Istio generates) and DestinationRules (subsets resolved to label selectors).
//! Every distinct (host, subset, port) destination becomes a [`Cluster`] with a dense index,
//! so the layers below find endpoints by index rather than by name.
//!
//! A table is compiled for one proxy, its [`SourceWorkload`]: match blocks whose config-time
//! selectors (`sourceLabels`, `sourceNamespace`, `gateways`) do not select that proxy are
//! dropped, as Istio leaves them out of the proxy's configuration.
//!
//! Lookup is allocation-free: an authority with upper-case letters is lower-cased into a stack
//! buffer (any other is used as it is), hosts are found by hash (exact names and all their
//! short/namespaced aliases), then by wildcard suffix.

use crate::{
    config::{
        Config, Destination as DestinationSpec, HttpMatchRequest, HttpRoute, L4MatchAttributes,
        Resource, RouteDestination, TlsMatchAttributes, VirtualService, gateway::ServedPort,
    },
    header_ops::HeaderOps,
    host::{canonical_host, host_aliases},
    matcher::{RequestMatch, addressed_port, split_port},
    policy::mirror_share,
    redirect::{DirectResponse, Redirect},
    rewrite::Rewrite,
    stream_route::{StreamDecision, StreamMatch, StreamRule, first_match},
    weights,
};
use http::Request;
use mesh_core::{
    Destination, RouteInfo, Routed,
    policy::{MirrorTarget, RoutePolicy},
};
use mesh_core::{fnv::FnvBuildHasher, per_thread::OwnLine};
use std::cell::OnceCell;
use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
    sync::Arc,
};
use thread_local::ThreadLocal;

/// Why a configuration could not be compiled into a route table.
///
/// Validation reports these (with file and document) before compilation; this error exists
/// so that compiling an unvalidated config fails cleanly instead of panicking.
///
/// ```
/// use mesh_route::{RouteTable, config::{Config, Destination, HttpRoute, HttpRouteDestination, Resource, VirtualService}};
///
/// // Built in Rust and not validated: a route to a subset no DestinationRule defines.
/// let mut route = HttpRoute::default();
/// route.route.push(HttpRouteDestination {
///     destination: Destination { host: "catalog".into(), subset: Some("v9".into()), port: None },
///     ..Default::default()
/// });
/// let mut vs = VirtualService { hosts: vec!["catalog".into()], ..Default::default() };
/// vs.http.push(route);
/// let mut config = Config::default();
/// config.virtual_services.push(Resource::new("catalog", vs));
/// let error = RouteTable::compile(&config).unwrap_err();
/// assert!(error.to_string().starts_with("VirtualService catalog: "), "{error}");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("VirtualService {resource}: {message}")]
pub struct CompileError {
    resource: String,
    message: String,
}

/// A distinct upstream destination: a service host, optionally narrowed to a subset and port.
///
/// ```
/// use mesh_route::{RouteTable, config::Config};
///
/// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog, namespace: shop}\nspec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n";
/// let table = RouteTable::compile(&Config::from_yaml_str(yaml).unwrap().config).unwrap();
/// let cluster = &table.clusters()[0];
/// assert_eq!(&*cluster.host, "catalog.shop.svc.cluster.local");
/// assert_eq!((cluster.subset.clone(), cluster.port), (None, None));
/// assert!(cluster.labels.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// Canonical service host.
    pub host: Arc<str>,
    /// Subset name, if any.
    pub subset: Option<Arc<str>>,
    /// Service port number, if the route names one.
    pub port: Option<u16>,
    /// The subset's label selector (empty: every endpoint of the host).
    pub labels: BTreeMap<String, String>,
}

/// One weighted destination of a rule.
#[derive(Debug)]
pub(crate) struct WeightedDestination {
    pub(crate) destination: Destination,
    /// Upper bound (exclusive) of this destination's slice of `[0, total)`.
    upto: u32,
    pub(crate) request_ops: HeaderOps,
    pub(crate) response_ops: Option<Arc<HeaderOps>>,
    /// The rule's `rewrite`, with this destination's `host` header operation as its authority
    /// when the rule sets none (see [`Rewrite::for_destination`]).
    pub(crate) rewrite: Rewrite,
}

/// What a rule does with a matching request.
#[derive(Debug)]
pub(crate) enum Action {
    Route {
        destinations: Vec<WeightedDestination>,
        total: u32,
    },
    Redirect(Redirect),
    Direct(DirectResponse),
}

/// One compiled `HTTPRoute`, as [`Decision::Matched`] returns it.
///
/// ```
/// use mesh_route::{RouteTable, config::Config, table::Decision};
///
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: VirtualService
/// metadata: {name: old-api}
/// spec:
///   hosts: [api.example.com]
///   http:
///   - name: moved
///     redirect: {authority: new.example.com}
/// "#;
/// let table = RouteTable::compile(&Config::from_yaml_str(yaml).unwrap().config).unwrap();
/// let request = http::Request::get("http://api.example.com/v1").body(()).unwrap();
/// let Decision::Matched { rule, info, .. } = table.route(&request) else { panic!("no rule") };
/// assert_eq!(&*info.name, "moved");
/// assert!(format!("{rule:?}").contains("Redirect"));
/// ```
#[derive(Debug)]
pub struct Rule {
    /// One entry per `match` block (OR-ed), with what to report when it matches.
    matches: Vec<(RequestMatch, Reported)>,
    /// What to report when the rule has no `match` (it matches everything).
    reported: Reported,
    pub(crate) action: Action,
    pub(crate) request_ops: HeaderOps,
    pub(crate) response_ops: Option<Arc<HeaderOps>>,
}

impl Rule {
    fn new(
        matches: Vec<(RequestMatch, RouteInfo)>,
        info: RouteInfo,
        action: Action,
        (request_ops, response_ops): (HeaderOps, Option<Arc<HeaderOps>>),
        policy: Option<RoutePolicy>,
    ) -> Self {
        let matches = matches
            .into_iter()
            .map(|(m, info)| (m, Reported::new(info, &action, policy.as_ref())))
            .collect();
        Rule {
            matches,
            reported: Reported::new(info, &action, policy.as_ref()),
            action,
            request_ops,
            response_ops,
        }
    }

    /// What this rule reports for `request` (addressed to `authority` and `port`) and the
    /// match block's URI prefix, if the rule matches it (a rule without match blocks matches
    /// everything).
    fn matching<B>(
        &self,
        request: &Request<B>,
        authority: &str,
        port: u16,
    ) -> Option<(&Reported, Option<&RequestMatch>)> {
        if self.matches.is_empty() {
            return Some((&self.reported, None));
        }
        self.matches
            .iter()
            .find(|(m, _)| m.matches(request, authority, port))
            .map(|(m, reported)| (reported, Some(m)))
    }

    /// Picks a destination by weight (no randomness for a single destination), with its
    /// position among them.
    pub(crate) fn pick(
        destinations: &[WeightedDestination],
        total: u32,
    ) -> (usize, &WeightedDestination) {
        let index = weights::pick_index(destinations, total, |d| d.upto);
        (index, &destinations[index])
    }
}

/// A route name to report, with the [`Routed`] of every outcome under it, made when the table
/// is compiled: a request then copies one shared reference, not the route's and destination's
/// names.
#[derive(Debug)]
struct Reported {
    info: RouteInfo,
    /// One per destination of the rule, in order; for a redirect or a direct response, one
    /// with no destination.
    routed: Box<[Routed]>,
    /// Its place among the table's, where each thread keeps copies of `routed` (none before
    /// the table numbers it).
    id: Option<usize>,
}

impl Reported {
    fn new(info: RouteInfo, action: &Action, policy: Option<&RoutePolicy>) -> Self {
        let routed = match action {
            Action::Route { destinations, .. } => destinations
                .iter()
                .map(|d| {
                    let destination = Some(d.destination.clone());
                    Routed::with_policy(info.clone(), destination, policy.cloned())
                })
                .collect(),
            Action::Redirect(_) | Action::Direct(_) => [Routed::new(info.clone(), None)].into(),
        };
        Reported {
            info,
            routed,
            id: None,
        }
    }
}

/// The virtual host for one VirtualService (or one registry host's default route).
#[derive(Debug, Default)]
struct VirtualHost {
    rules: Vec<Rule>,
    /// `tcp` routes, for tunnels (CONNECT) to the host.
    tcp: Vec<StreamRule>,
    /// `tls` routes, for tunnels to the host carrying TLS.
    tls: Vec<StreamRule>,
}

/// Which routes a lookup uses: the mesh's (sidecar outbound), or those VirtualServices attach
/// to the Gateway servers of one port.
///
/// ```
/// use mesh_route::table::RouteScope;
///
/// assert_eq!(RouteScope::default(), RouteScope::MESH);
/// assert!(!RouteScope::MESH.is_gateway());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteScope(u16);

impl RouteScope {
    /// The mesh's routes (`gateways: [mesh]`, the default).
    ///
    /// ```
    /// use mesh_route::{RouteTable, table::{Decision, RouteScope}};
    ///
    /// // An empty table knows no host in the mesh scope.
    /// let request = http::Request::get("http://catalog/").body(()).unwrap();
    /// let table = RouteTable::default();
    /// assert!(matches!(table.route_in(RouteScope::MESH, &request), Decision::UnknownHost));
    /// ```
    pub const MESH: RouteScope = RouteScope(0);

    /// Whether this is a gateway port's scope.
    ///
    /// ```
    /// use mesh_route::{RouteTable, config::{Config, gateway::served_ports}, table::RouteScope};
    ///
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: edge}\nspec: {servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*']}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let ports = served_ports(&config, &Default::default()).unwrap();
    /// let table = RouteTable::compile_for(&config, &ports, &Default::default()).unwrap();
    /// assert!(table.gateway_scope(8080).unwrap().is_gateway());
    /// assert!(!RouteScope::MESH.is_gateway());
    /// ```
    pub fn is_gateway(self) -> bool {
        self.0 != 0
    }
}

/// Hosts → virtual hosts, for one scope.
#[derive(Debug, Default)]
struct HostIndex {
    exact: HashMap<Box<str>, usize, FnvBuildHasher>,
    /// `(".suffix", vhost)` for `*.suffix` hosts, longest suffix first.
    wildcards: Vec<(Box<str>, usize)>,
    catch_all: Option<usize>,
}

/// The routes VirtualServices attach to the Gateway servers of one port.
#[derive(Debug)]
struct GatewayRoutes {
    port: u16,
    hosts: HostIndex,
    /// `tcp` routes of the attached VirtualServices, in order.
    tcp: Vec<StreamRule>,
    /// `tls` routes of the attached VirtualServices, in order.
    tls: Vec<StreamRule>,
}

/// The outcome of looking a request up in the [`RouteTable`].
///
/// ```
/// use mesh_route::{RouteTable, config::Config, table::Decision};
///
/// let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api}\nspec: {hosts: [api.example.com], http: [{match: [{uri: {prefix: /v1}}], directResponse: {status: 200}}]}\n";
/// let table = RouteTable::compile(&Config::from_yaml_str(yaml).unwrap().config).unwrap();
/// let get = |uri: &str| http::Request::get(uri).body(()).unwrap();
/// assert!(matches!(table.route(&get("http://api.example.com/v1/x")), Decision::Matched { matched_prefix: Some("/v1"), .. }));
/// assert!(matches!(table.route(&get("http://api.example.com/v2")), Decision::NoRule));
/// assert!(matches!(table.route(&get("http://elsewhere.example.com/")), Decision::UnknownHost));
/// ```
#[derive(Debug)]
pub enum Decision<'a> {
    /// No VirtualService or ServiceEntry claims the request's host.
    UnknownHost,
    /// The host is known, but none of its rules matched (404 NR).
    NoRule,
    /// A rule matched.
    Matched {
        /// The rule.
        rule: &'a Rule,
        /// The route name to log (the rule's, joined with the match block's).
        info: &'a RouteInfo,
        /// What to report of the decision: one [`Routed`] per destination of the rule, in
        /// order (for a redirect or a direct response, one with no destination).
        routed: &'a [Routed],
        /// The URI prefix the matching block used, for `rewrite.uri`: `/` when the block (or
        /// the rule) has no `uri` condition, `None` for an exact or regex URI match.
        matched_prefix: Option<&'a str>,
    },
}

/// The workload a proxy runs as: the source of the requests it routes. Match blocks' config-time
/// selectors `sourceLabels` and `sourceNamespace` are decided against it when the table is
/// compiled — a sidecar's own workload for its outbound routes, a gateway's own workload for its
/// gateway ports.
///
/// [`Default`] is a proxy nothing is known about: no labels, in the `default` namespace (what
/// the sidecar assumes without `POD_NAMESPACE`). [`RouteTable::compile`] compiles for it.
///
/// ```
/// use mesh_route::table::SourceWorkload;
///
/// let tester = SourceWorkload {
///     labels: [("app".to_string(), "tester".to_string())].into(),
///     namespace: "qa".into(),
/// };
/// assert_eq!(SourceWorkload::default().namespace, "default");
/// assert!(SourceWorkload::default().labels.is_empty());
/// assert_ne!(tester, SourceWorkload::default());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceWorkload {
    /// The proxy's workload labels.
    pub labels: BTreeMap<String, String>,
    /// The proxy's namespace.
    pub namespace: String,
}

impl Default for SourceWorkload {
    fn default() -> Self {
        SourceWorkload {
            labels: BTreeMap::new(),
            namespace: "default".into(),
        }
    }
}

impl SourceWorkload {
    /// Whether a match block with these `sourceLabels` and `sourceNamespace` applies to this
    /// workload: every label is among its labels, and the namespace, when set, is its own.
    ///
    /// ```
    /// use mesh_route::table::SourceWorkload;
    /// use std::collections::BTreeMap;
    ///
    /// let label = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
    /// let tester = SourceWorkload { labels: label("app", "tester"), namespace: "qa".into() };
    /// assert!(tester.selected_by(&BTreeMap::new(), None));
    /// assert!(tester.selected_by(&label("app", "tester"), Some("qa")));
    /// assert!(!tester.selected_by(&label("app", "web"), None));
    /// assert!(!tester.selected_by(&BTreeMap::new(), Some("shop")));
    /// assert!(!SourceWorkload::default().selected_by(&label("app", "tester"), None));
    /// ```
    pub fn selected_by(
        &self,
        source_labels: &BTreeMap<String, String>,
        source_namespace: Option<&str>,
    ) -> bool {
        source_labels
            .iter()
            .all(|(key, value)| self.labels.get(key) == Some(value))
            && source_namespace.is_none_or(|ns| ns == self.namespace)
    }
}

/// A compiled, immutable route table.
///
/// ```
/// use mesh_route::{RouteTable, config::Config, table::Decision};
///
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: VirtualService
/// metadata: {name: catalog, namespace: shop}
/// spec:
///   hosts: [catalog]
///   http:
///   - {name: beta, match: [{headers: {x-beta: {exact: "1"}}}], directResponse: {status: 204}}
///   - {name: rest, directResponse: {status: 200}}
/// "#;
/// let table = RouteTable::compile(&Config::from_yaml_str(yaml).unwrap().config).unwrap();
/// // Any alias of the service reaches its rules, in order.
/// let request = http::Request::get("http://catalog.shop.svc/").header("x-beta", "1").body(()).unwrap();
/// let Decision::Matched { info, .. } = table.route(&request) else { panic!() };
/// assert_eq!(&*info.name, "beta");
/// ```
#[derive(Debug, Default)]
pub struct RouteTable {
    /// The mesh scope's hosts.
    mesh: HostIndex,
    /// Gateway ports' scopes: `RouteScope(i + 1)` is `gateways[i]`.
    gateways: Vec<GatewayRoutes>,
    hosts: Vec<VirtualHost>,
    clusters: Vec<Cluster>,
    /// How many rules' outcomes ([`Reported`]) the table numbered.
    reported: usize,
    /// Each thread's copies of the decisions it has reported, by the outcome's number: a
    /// request clones its thread's copy ([`Routed::copy_for_thread`]), so that workers routing
    /// by one rule do not pass its reference counts between their cores. Made on a thread's
    /// first request by the rule, so a thread holds copies of the routes it serves only.
    by_thread: ThreadLocal<OwnLine<ThreadCopies>>,
}

/// One thread's copies of a table's decisions, by outcome number, each made at its first use.
type ThreadCopies = Box<[OnceCell<Box<[Routed]>>]>;

/// Longest host name a lookup considers (DNS limit).
const MAX_HOST_LEN: usize = 255;

impl RouteTable {
    /// Compiles `config` into a route table.
    ///
    /// ```
    /// use mesh_route::{config::Config, table::{Decision, RouteTable}};
    /// let yaml = r#"
    /// apiVersion: networking.istio.io/v1
    /// kind: ServiceEntry
    /// metadata: {name: catalog, namespace: shop}
    /// spec:
    ///   hosts: [catalog]
    ///   resolution: STATIC
    ///   ports: [{number: 80, name: http, protocol: HTTP}]
    ///   endpoints: [{address: 127.0.0.1, labels: {version: v1}}]
    /// "#;
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let table = RouteTable::compile(&config).unwrap();
    /// let request = http::Request::get("http://catalog/items").body(()).unwrap();
    /// assert!(matches!(table.route(&request), Decision::Matched { .. }));
    /// ```
    pub fn compile(config: &Config) -> Result<Self, CompileError> {
        RouteTable::compile_for(config, &[], &SourceWorkload::default())
    }

    /// Compiles `config` into the route table of the proxy running as `source`, with a scope for
    /// each port of the Gateways it serves, `gateway_ports` (see
    /// [`served_ports`](crate::config::gateway::served_ports)): the VirtualServices naming one
    /// of the port's Gateways, for the hosts its servers expose. Match blocks whose
    /// `sourceLabels` or `sourceNamespace` do not select `source` never match (see
    /// [`SourceWorkload::selected_by`]).
    ///
    /// ```
    /// use mesh_route::{RouteTable, config::{Config, gateway::served_ports}, table::Decision};
    ///
    /// let yaml = r#"
    /// apiVersion: networking.istio.io/v1
    /// kind: Gateway
    /// metadata: {name: edge, namespace: shop}
    /// spec: {servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: [shop.example.com]}]}
    /// ---
    /// apiVersion: networking.istio.io/v1
    /// kind: VirtualService
    /// metadata: {name: shop, namespace: shop}
    /// spec: {hosts: ["*"], gateways: [edge], http: [{directResponse: {status: 200}}]}
    /// "#;
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let table = RouteTable::compile_for(&config, &served_ports(&config, &Default::default()).unwrap(), &Default::default()).unwrap();
    /// let scope = table.gateway_scope(8080).unwrap();
    /// let get = |uri: &str| http::Request::get(uri).body(()).unwrap();
    /// assert!(matches!(table.route_in(scope, &get("http://shop.example.com/")), Decision::Matched { .. }));
    /// // The server exposes only shop.example.com; the VirtualService is not on the mesh.
    /// assert!(matches!(table.route_in(scope, &get("http://other.example.com/")), Decision::NoRule));
    /// assert!(matches!(table.route(&get("http://shop.example.com/")), Decision::UnknownHost));
    /// ```
    ///
    /// The same configuration routes differently for different source workloads:
    ///
    /// ```
    /// use mesh_route::{RouteTable, config::Config, table::{Decision, SourceWorkload}};
    ///
    /// let yaml = r#"
    /// apiVersion: networking.istio.io/v1
    /// kind: VirtualService
    /// metadata: {name: api}
    /// spec:
    ///   hosts: [api.example.com]
    ///   http:
    ///   - {name: tester, match: [{sourceLabels: {app: tester}}], directResponse: {status: 201}}
    ///   - {name: rest, directResponse: {status: 200}}
    /// "#;
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let request = http::Request::get("http://api.example.com/").body(()).unwrap();
    /// let routed_to = |source: &SourceWorkload| {
    ///     let table = RouteTable::compile_for(&config, &[], source).unwrap();
    ///     let Decision::Matched { info, .. } = table.route(&request) else { panic!() };
    ///     info.name.to_string()
    /// };
    /// let tester = SourceWorkload { labels: [("app".into(), "tester".into())].into(), ..Default::default() };
    /// assert_eq!(routed_to(&tester), "tester");
    /// assert_eq!(routed_to(&SourceWorkload::default()), "rest");
    /// ```
    pub fn compile_for(
        config: &Config,
        gateway_ports: &[ServedPort<'_>],
        source: &SourceWorkload,
    ) -> Result<Self, CompileError> {
        let mut builder = Builder::new(config, source);
        for vs in &config.virtual_services {
            if on_mesh(&vs.spec.gateways) {
                builder.add_virtual_service(vs)?;
            }
        }
        for se in &config.service_entries {
            let ns = se.meta.namespace.as_deref();
            for host in &se.spec.hosts {
                let host = canonical_host(host, ns);
                builder.add_default_route(&host)?;
            }
        }
        for served in gateway_ports {
            builder.add_gateway_port(served)?;
        }
        builder.table.mesh.sort_wildcards();
        for gateway in &mut builder.table.gateways {
            gateway.hosts.sort_wildcards();
        }
        builder.table.number_outcomes();
        Ok(builder.table)
    }

    /// Numbers every rule's outcomes, for the threads' copies of them.
    fn number_outcomes(&mut self) {
        let mut next = 0;
        for rule in self.hosts.iter_mut().flat_map(|host| &mut host.rules) {
            let each_block = rule.matches.iter_mut().map(|(_, reported)| reported);
            for reported in each_block.chain([&mut rule.reported]) {
                reported.id = Some(next);
                next += 1;
            }
        }
        self.reported = next;
    }

    /// This thread's copies of what `reported` reports (the shared ones if it has no number).
    fn routed_here<'a>(&'a self, reported: &'a Reported) -> &'a [Routed] {
        let Some(id) = reported.id else {
            return &reported.routed;
        };
        let mine = self
            .by_thread
            .get_or(|| OwnLine((0..self.reported).map(|_| OnceCell::new()).collect()));
        match mine.get(id) {
            Some(copies) => copies.get_or_init(|| {
                reported
                    .routed
                    .iter()
                    .map(Routed::copy_for_thread)
                    .collect()
            }),
            None => &reported.routed,
        }
    }

    /// Whether any route of the table, in any scope, has a policy `wanted` accepts: a stack
    /// built for the table leaves out the layers of policies no route sets (as Envoy adds a
    /// filter only where it is configured).
    ///
    /// ```
    /// use mesh_route::{RouteTable, config::Config};
    ///
    /// let yaml = r#"
    /// apiVersion: networking.istio.io/v1
    /// kind: ServiceEntry
    /// metadata: {name: catalog}
    /// spec: {hosts: [catalog], resolution: DNS, ports: [{number: 80, name: http}]}
    /// ---
    /// apiVersion: networking.istio.io/v1
    /// kind: VirtualService
    /// metadata: {name: catalog}
    /// spec:
    ///   hosts: [catalog]
    ///   http:
    ///   - route: [{destination: {host: catalog}}]
    ///     fault: {abort: {httpStatus: 503, percentage: {value: 10}}}
    /// "#;
    /// let table = RouteTable::compile(&Config::from_yaml_str(yaml).unwrap().config).unwrap();
    /// assert!(table.any_route_policy(|policy| policy.fault.is_some()));
    /// assert!(!table.any_route_policy(|policy| policy.mirrors.is_some()));
    /// ```
    pub fn any_route_policy(&self, wanted: impl Fn(&RoutePolicy) -> bool) -> bool {
        self.hosts
            .iter()
            .flat_map(|host| &host.rules)
            // Every match block of a rule reports the rule's policy: its `reported` has it too.
            .flat_map(|rule| rule.reported.routed.iter())
            .any(|routed| routed.policy.as_ref().is_some_and(&wanted))
    }

    /// The scope of gateway port `port`, if this table has one.
    ///
    /// ```
    /// use mesh_route::{RouteTable, config::{Config, gateway::served_ports}};
    ///
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: edge}\nspec: {servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*']}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let table = RouteTable::compile_for(&config, &served_ports(&config, &Default::default()).unwrap(), &Default::default()).unwrap();
    /// assert!(table.gateway_scope(8080).is_some());
    /// assert!(table.gateway_scope(9090).is_none());
    /// // Compiled without gateway ports, a table has no gateway scope.
    /// assert!(RouteTable::compile(&config).unwrap().gateway_scope(8080).is_none());
    /// ```
    pub fn gateway_scope(&self, port: u16) -> Option<RouteScope> {
        self.gateways
            .iter()
            .position(|g| g.port == port)
            .and_then(|i| u16::try_from(i + 1).ok())
            .map(RouteScope)
    }

    /// The one port whose listener serves `scope`'s routes: a gateway server's port; `None`
    /// for the mesh, whose outbound listener takes every service's port.
    ///
    /// ```
    /// use mesh_route::{RouteTable, config::{Config, gateway::served_ports}, table::RouteScope};
    ///
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: edge}\nspec: {servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*']}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let ports = served_ports(&config, &Default::default()).unwrap();
    /// let table = RouteTable::compile_for(&config, &ports, &Default::default()).unwrap();
    /// assert_eq!(table.listener_port(table.gateway_scope(8080).unwrap()), Some(8080));
    /// assert_eq!(table.listener_port(RouteScope::MESH), None);
    /// ```
    pub fn listener_port(&self, scope: RouteScope) -> Option<u16> {
        let index = usize::from(scope.0).checked_sub(1)?;
        self.gateways.get(index).map(|gateway| gateway.port)
    }

    /// Where a connection goes: a tunnel to `host` (mesh scope: CONNECT through the outbound
    /// listener) or a connection to a gateway port (its `tcp` routes, or with `sni` its `tls`
    /// routes); `port` is the host's port or the gateway's.
    ///
    /// ```
    /// use mesh_route::{RouteTable, config::Config, stream_route::StreamDecision, table::RouteScope};
    ///
    /// let yaml = r#"
    /// apiVersion: networking.istio.io/v1
    /// kind: ServiceEntry
    /// metadata: {name: db}
    /// spec: {hosts: [db], resolution: STATIC, ports: [{number: 5432, name: pg, protocol: TCP}], endpoints: [{address: 127.0.0.1}]}
    /// ---
    /// apiVersion: networking.istio.io/v1
    /// kind: VirtualService
    /// metadata: {name: db}
    /// spec: {hosts: [db], tcp: [{match: [{port: 5432}], route: [{destination: {host: db}}]}]}
    /// "#;
    /// let table = RouteTable::compile(&Config::from_yaml_str(yaml).unwrap().config).unwrap();
    /// let StreamDecision::Matched(rule) = table.route_stream(RouteScope::MESH, "db", 5432, None) else { panic!() };
    /// assert_eq!(&*rule.pick().host, "db");
    /// assert!(matches!(table.route_stream(RouteScope::MESH, "db", 5433, None), StreamDecision::NoRule));
    /// assert!(matches!(table.route_stream(RouteScope::MESH, "cache", 6379, None), StreamDecision::UnknownHost));
    /// ```
    pub fn route_stream(
        &self,
        scope: RouteScope,
        host: &str,
        port: u16,
        sni: Option<&str>,
    ) -> StreamDecision<'_> {
        let (tcp, tls) = match self.scope(scope) {
            Some(gateway) => (&gateway.tcp, &gateway.tls),
            None => match self.mesh.find(host) {
                Some(vhost) => (&self.hosts[vhost].tcp, &self.hosts[vhost].tls),
                None => return StreamDecision::UnknownHost,
            },
        };
        match sni {
            Some(sni) if !tls.is_empty() => first_match(tls, port, Some(sni)),
            _ => first_match(tcp, port, None),
        }
    }

    fn scope(&self, scope: RouteScope) -> Option<&GatewayRoutes> {
        usize::from(scope.0)
            .checked_sub(1)
            .and_then(|i| self.gateways.get(i))
    }

    /// Every distinct destination, indexed by [`Destination::cluster`].
    ///
    /// ```
    /// use mesh_route::{RouteTable, config::Config, table::Decision};
    ///
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\nspec: {hosts: [catalog, reviews], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n";
    /// let table = RouteTable::compile(&Config::from_yaml_str(yaml).unwrap().config).unwrap();
    /// let hosts: Vec<&str> = table.clusters().iter().map(|c| &*c.host).collect();
    /// assert_eq!(hosts, ["catalog", "reviews"]);
    /// ```
    pub fn clusters(&self) -> &[Cluster] {
        &self.clusters
    }

    /// Looks `request` up: host (from the absolute-form URI, else `Host`), then rules in order.
    ///
    /// ```
    /// use mesh_route::{RouteTable, config::Config, table::Decision};
    ///
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api}\nspec: {hosts: [api.example.com], http: [{directResponse: {status: 200}}]}\n";
    /// let table = RouteTable::compile(&Config::from_yaml_str(yaml).unwrap().config).unwrap();
    /// // Origin-form request: the host comes from the `Host` header (port and case ignored).
    /// let request = http::Request::get("/items").header("host", "API.example.com:80").body(()).unwrap();
    /// let Decision::Matched { info, .. } = table.route(&request) else { panic!() };
    /// assert_eq!(&*info.virtual_service, "api");
    /// ```
    pub fn route<B>(&self, request: &Request<B>) -> Decision<'_> {
        self.route_in(RouteScope::MESH, request)
    }

    /// Looks `request` up among the routes of `scope`. A host no gateway route claims is
    /// [`Decision::NoRule`] there (404): a gateway never passes unknown hosts through. Match
    /// blocks' `port` is the gateway's port in a gateway scope (Istio's per-listener routes),
    /// and the port the request addressed in the mesh scope (see
    /// [`addressed_port`]).
    ///
    /// ```
    /// use mesh_route::{RouteTable, config::{Config, gateway::served_ports}, table::{Decision, RouteScope}};
    ///
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: edge}\nspec: {servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*']}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let table = RouteTable::compile_for(&config, &served_ports(&config, &Default::default()).unwrap(), &Default::default()).unwrap();
    /// let request = http::Request::get("http://unknown.example.com/").body(()).unwrap();
    /// let gateway = table.gateway_scope(8080).unwrap();
    /// assert!(matches!(table.route_in(gateway, &request), Decision::NoRule));
    /// assert!(matches!(table.route_in(RouteScope::MESH, &request), Decision::UnknownHost));
    /// ```
    pub fn route_in<B>(&self, scope: RouteScope, request: &Request<B>) -> Decision<'_> {
        let gateway = self.scope(scope);
        let (hosts, unknown) = match gateway {
            Some(gateway) => (&gateway.hosts, Decision::NoRule),
            None => (&self.mesh, Decision::UnknownHost),
        };
        let Some(authority) = crate::matcher::request_authority(request) else {
            return unknown;
        };
        let Some(vhost) = hosts.find(authority) else {
            return unknown;
        };
        let port = gateway.map_or_else(|| addressed_port(request, authority), |g| g.port);
        for rule in &self.hosts[vhost].rules {
            match rule.matching(request, authority, port) {
                None => continue,
                Some((reported, matched)) => {
                    return Decision::Matched {
                        rule,
                        info: &reported.info,
                        routed: self.routed_here(reported),
                        // A rule without match blocks is a `prefix: "/"` match, like a
                        // block without a `uri` condition.
                        matched_prefix: matched.map_or(Some("/"), RequestMatch::uri_prefix),
                    };
                }
            }
        }
        Decision::NoRule
    }
}

impl HostIndex {
    fn sort_wildcards(&mut self) {
        self.wildcards
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
    }

    /// Claims `host` (and its aliases) for `vhost`; the first claim wins.
    fn claim(&mut self, host: &str, vhost: usize) {
        if host == "*" {
            self.catch_all.get_or_insert(vhost);
        } else if let Some(suffix) = host.strip_prefix('*') {
            if !self.wildcards.iter().any(|(s, _)| &**s == suffix) {
                self.wildcards.push((suffix.into(), vhost));
            }
        } else {
            for alias in host_aliases(host) {
                self.exact.entry(alias.into()).or_insert(vhost);
            }
        }
    }

    fn is_claimed(&self, host: &str) -> bool {
        if host == "*" {
            return self.catch_all.is_some();
        }
        if let Some(suffix) = host.strip_prefix('*') {
            return self.wildcards.iter().any(|(s, _)| &**s == suffix);
        }
        self.exact.contains_key(host)
    }

    fn find(&self, authority: &str) -> Option<usize> {
        let host = strip_port(authority);
        if host.len() > MAX_HOST_LEN {
            return None;
        }
        // Nearly every host is lower case already: looked up as it is, with no copy.
        if !host.bytes().any(|b| b.is_ascii_uppercase()) {
            return self.find_lowercase(host);
        }
        let mut buf = [0u8; MAX_HOST_LEN];
        let lower = &mut buf[..host.len()];
        lower.copy_from_slice(host.as_bytes());
        lower.make_ascii_lowercase();
        self.find_lowercase(std::str::from_utf8(lower).ok()?)
    }

    /// [`find`](Self::find) for a host with no port and no upper-case letter.
    fn find_lowercase(&self, host: &str) -> Option<usize> {
        if let Some(&index) = self.exact.get(host) {
            return Some(index);
        }
        self.wildcards
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(&**suffix))
            .map(|(_, index)| *index)
            .or(self.catch_all)
    }
}

/// Whether `gateways` (of a VirtualService or a match block) includes the mesh: empty, or
/// naming `mesh`.
fn on_mesh(gateways: &[String]) -> bool {
    gateways.is_empty() || gateways.iter().any(|g| g == "mesh")
}

/// The host part of an authority (`host`, `host:port`, `[v6]:port`).
fn strip_port(authority: &str) -> &str {
    split_port(authority).0
}

/// A match block's config-time selectors: the Gateways it names, and the source workload it
/// is for (`HTTPMatchRequest`, `L4MatchAttributes`, `TLSMatchAttributes` alike).
trait Selectors {
    fn gateways(&self) -> &[String];
    fn source_labels(&self) -> &BTreeMap<String, String>;
    fn source_namespace(&self) -> Option<&str>;

    /// Whether the block applies on the proxy running as `source`, in a scope whose
    /// Gateways `attached` accepts. As Istio decides it (`sourceMatchHTTP`): a block naming
    /// `gateways` applies where one of them is attached, whatever its source selectors;
    /// another applies where its `sourceLabels` / `sourceNamespace` select `source`.
    fn applies(&self, source: &SourceWorkload, attached: &dyn Fn(&[String]) -> bool) -> bool {
        match self.gateways() {
            [] => source.selected_by(self.source_labels(), self.source_namespace()),
            gateways => attached(gateways),
        }
    }
}

/// Implements [`Selectors`] for match types with `gateways`, `source_labels` and
/// `source_namespace` fields.
macro_rules! selectors {
    ($($ty:ty),*) => {$(
        impl Selectors for $ty {
            fn gateways(&self) -> &[String] {
                &self.gateways
            }
            fn source_labels(&self) -> &BTreeMap<String, String> {
                &self.source_labels
            }
            fn source_namespace(&self) -> Option<&str> {
                self.source_namespace.as_deref()
            }
        }
    )*};
}

selectors!(HttpMatchRequest, L4MatchAttributes, TlsMatchAttributes);

/// `route` with only the match blocks that `applies` keeps, or `None` when it has match
/// blocks and none is kept: the rule never matches on this proxy (it must not become a
/// catch-all).
fn applicable_blocks<'r>(
    route: &'r HttpRoute,
    applies: impl Fn(&HttpMatchRequest) -> bool,
) -> Option<Cow<'r, HttpRoute>> {
    if route.match_.iter().all(&applies) {
        return Some(Cow::Borrowed(route));
    }
    let mut kept = route.clone();
    kept.match_.retain(applies);
    (!kept.match_.is_empty()).then_some(Cow::Owned(kept))
}

/// (host, subset, port): what makes a cluster distinct.
type ClusterKey = (Arc<str>, Option<Arc<str>>, Option<u16>);

/// Accumulates virtual hosts and clusters while compiling.
struct Builder<'c> {
    config: &'c Config,
    /// The proxy the table is for.
    source: &'c SourceWorkload,
    table: RouteTable,
    cluster_index: HashMap<ClusterKey, usize>,
}

impl<'c> Builder<'c> {
    fn new(config: &'c Config, source: &'c SourceWorkload) -> Self {
        Builder {
            config,
            source,
            table: RouteTable::default(),
            cluster_index: HashMap::new(),
        }
    }

    /// Compiles `vs` into a new virtual host — its match blocks kept only when they apply on
    /// this proxy (see [`Selectors::applies`]) — and returns it with its stream rules. The
    /// caller claims hosts.
    fn compile_virtual_service(
        &mut self,
        vs: &Resource<VirtualService>,
        attached: &dyn Fn(&[String]) -> bool,
        port: Option<u16>,
    ) -> Result<VirtualHost, CompileError> {
        let ns = vs.meta.namespace.as_deref();
        let vs_name: Arc<str> = match ns {
            Some(ns) => format!("{ns}/{}", vs.meta.name).into(),
            None => vs.meta.name.clone().into(),
        };
        let err = |message: String| CompileError {
            resource: vs_name.to_string(),
            message,
        };
        let source = self.source;
        let mut rules = Vec::with_capacity(vs.spec.http.len());
        for (index, route) in vs.spec.http.iter().enumerate() {
            let field = format!("http[{index}]");
            let Some(route) = applicable_blocks(route, |m| m.applies(source, attached)) else {
                continue;
            };
            rules.push(
                self.compile_rule(&route, &field, ns, &vs_name, index)
                    .map_err(err)?,
            );
        }
        let mut tcp = Vec::with_capacity(vs.spec.tcp.len());
        for (i, route) in vs.spec.tcp.iter().enumerate() {
            let matches = route
                .match_
                .iter()
                .map(|m| (m.port, m.applies(source, attached), &[][..]));
            if let Some(rule) = self
                .compile_stream_rule(matches, &route.route, &format!("tcp[{i}]"), ns, port)
                .map_err(err)?
            {
                tcp.push(rule);
            }
        }
        let mut tls = Vec::with_capacity(vs.spec.tls.len());
        for (i, route) in vs.spec.tls.iter().enumerate() {
            let matches = route
                .match_
                .iter()
                .map(|m| (m.port, m.applies(source, attached), &m.sni_hosts[..]));
            if let Some(rule) = self
                .compile_stream_rule(matches, &route.route, &format!("tls[{i}]"), ns, port)
                .map_err(err)?
            {
                tls.push(rule);
            }
        }
        Ok(VirtualHost { rules, tcp, tls })
    }

    /// A mesh VirtualService: its hosts claimed in the mesh scope. Without `tcp` or `tls`
    /// routes, a tunnel (CONNECT) to one of its hosts reaches that host's registry endpoints.
    fn add_virtual_service(&mut self, vs: &Resource<VirtualService>) -> Result<(), CompileError> {
        let mut vhost =
            self.compile_virtual_service(vs, &|references| on_mesh(references), None)?;
        if vhost.tcp.is_empty() && vhost.tls.is_empty() {
            let ns = vs.meta.namespace.as_deref();
            let registered = vs
                .spec
                .hosts
                .iter()
                .map(|h| canonical_host(h, ns))
                .find(|host| {
                    self.config.service_entries.iter().any(|se| {
                        se.spec
                            .hosts
                            .iter()
                            .any(|h| canonical_host(h, se.meta.namespace.as_deref()) == *host)
                    })
                });
            if let Some(host) = registered {
                let spec = DestinationSpec {
                    host,
                    subset: None,
                    port: None,
                };
                let destination =
                    self.destination(&spec, None)
                        .map_err(|message| CompileError {
                            resource: vs.meta.name.clone(),
                            message,
                        })?;
                vhost.tcp.push(StreamRule {
                    matches: Vec::new(),
                    destinations: vec![(destination, 1)],
                    total: 1,
                });
            }
        }
        let index = self.table.hosts.len();
        self.table.hosts.push(vhost);
        for host in &vs.spec.hosts {
            self.table
                .mesh
                .claim(&canonical_host(host, vs.meta.namespace.as_deref()), index);
        }
        Ok(())
    }

    /// The scope of one gateway port: every VirtualService attached to one of its servers'
    /// Gateways, for the hosts those servers expose.
    fn add_gateway_port(&mut self, served: &ServedPort<'_>) -> Result<(), CompileError> {
        let mut routes = GatewayRoutes {
            port: served.port,
            hosts: HostIndex::default(),
            tcp: Vec::new(),
            tls: Vec::new(),
        };
        for vs in &self.config.virtual_services {
            let ns = vs.meta.namespace.as_deref();
            let servers: Vec<_> = served
                .servers
                .iter()
                .filter(|s| s.attached_by(&vs.spec.gateways, ns))
                .collect();
            if servers.is_empty() {
                continue;
            }
            let attached =
                |references: &[String]| servers.iter().any(|s| s.attached_by(references, ns));
            // Each VirtualService host is served as far as a server exposes it: the narrower
            // of the two names (`*` in the VirtualService, `shop.example.com` on the server:
            // `shop.example.com`).
            let exposed: Vec<String> = vs
                .spec
                .hosts
                .iter()
                .flat_map(|host| {
                    let host = canonical_host(host, ns);
                    servers
                        .iter()
                        .flat_map(|s| s.exposed_hosts(&host, ns))
                        .collect::<Vec<_>>()
                })
                .collect();
            if exposed.is_empty() {
                continue;
            }
            let mut vhost = self.compile_virtual_service(vs, &attached, Some(served.port))?;
            routes.tcp.append(&mut vhost.tcp);
            routes.tls.append(&mut vhost.tls);
            let index = self.table.hosts.len();
            self.table.hosts.push(vhost);
            for host in &exposed {
                routes.hosts.claim(host, index);
            }
        }
        self.table.gateways.push(routes);
        Ok(())
    }

    /// One `tcp` / `tls` route. Match blocks are `(port, applies, sniHosts)`, `applies` telling
    /// whether the block applies on this proxy (see [`Selectors::applies`]); those that do not,
    /// or (on a gateway port) name another port, are dropped, and a route left without any is
    /// skipped (`None`).
    fn compile_stream_rule<'m>(
        &mut self,
        matches: impl Iterator<Item = (Option<u32>, bool, &'m [String])>,
        route: &[RouteDestination],
        field: &str,
        ns: Option<&str>,
        gateway_port: Option<u16>,
    ) -> Result<Option<StreamRule>, String> {
        let mut compiled = Vec::new();
        let mut any = false;
        for (port, applies, sni_hosts) in matches {
            any = true;
            if !applies {
                continue;
            }
            let port = match port {
                Some(p) => Some(
                    u16::try_from(p).map_err(|_| format!("{field}: port {p} is out of range"))?,
                ),
                None => None,
            };
            if gateway_port.is_some() && port.is_some() && port != gateway_port {
                continue;
            }
            compiled.push(StreamMatch {
                port,
                sni_hosts: sni_hosts
                    .iter()
                    .map(|h| h.to_ascii_lowercase().into())
                    .collect(),
            });
        }
        if any && compiled.is_empty() {
            return Ok(None);
        }
        let (slices, total) = weights::slices(route.iter().map(|d| d.weight), field)?;
        let mut destinations = Vec::with_capacity(slices.len());
        for (i, upto) in slices {
            destinations.push((self.destination(&route[i].destination, ns)?, upto));
        }
        Ok(Some(StreamRule {
            matches: compiled,
            destinations,
            total,
        }))
    }

    /// Istio's default route for a registry host no VirtualService claims: all endpoints, with
    /// the default retries of a route without `retries`.
    fn add_default_route(&mut self, host: &str) -> Result<(), CompileError> {
        if self.table.mesh.is_claimed(host) {
            return Ok(());
        }
        let err = |message| CompileError {
            resource: host.to_string(),
            message,
        };
        let destination = self
            .destination(
                &DestinationSpec {
                    host: host.to_string(),
                    subset: None,
                    port: None,
                },
                None,
            )
            .map_err(err)?;
        let policy =
            crate::policy::default_route(self.config.mesh.default_http_retry_policy.as_ref())
                .map_err(err)?;
        let info = RouteInfo {
            name: "default".into(),
            virtual_service: "".into(),
        };
        let tunnel_destination = destination.clone();
        let action = Action::Route {
            destinations: vec![WeightedDestination {
                destination,
                upto: 1,
                request_ops: HeaderOps::default(),
                response_ops: None,
                rewrite: Rewrite::default(),
            }],
            total: 1,
        };
        let rule = Rule::new(Vec::new(), info, action, Default::default(), policy);
        // A tunnel (CONNECT) to the host reaches the same endpoints.
        let tunnel = StreamRule {
            matches: Vec::new(),
            destinations: vec![(tunnel_destination, 1)],
            total: 1,
        };
        let vhost = self.table.hosts.len();
        self.table.hosts.push(VirtualHost {
            rules: vec![rule],
            tcp: vec![tunnel],
            tls: Vec::new(),
        });
        self.table.mesh.claim(host, vhost);
        Ok(())
    }

    fn compile_rule(
        &mut self,
        route: &HttpRoute,
        field: &str,
        ns: Option<&str>,
        vs_name: &Arc<str>,
        index: usize,
    ) -> Result<Rule, String> {
        let route_name: Arc<str> = route
            .name
            .clone()
            .unwrap_or_else(|| format!("{vs_name}.{index}"))
            .into();
        let info = RouteInfo {
            name: route_name.clone(),
            virtual_service: vs_name.clone(),
        };
        let mut matches = Vec::with_capacity(route.match_.len());
        for (i, m) in route.match_.iter().enumerate() {
            let compiled = RequestMatch::compile(m, &format!("{field}.match[{i}]"))
                .map_err(|e| e.to_string())?;
            let name: Arc<str> = match (&route.name, &m.name) {
                (Some(r), Some(n)) => format!("{r}.{n}").into(),
                (None, Some(n)) => n.as_str().into(),
                _ => route_name.clone(),
            };
            matches.push((
                compiled,
                RouteInfo {
                    name,
                    virtual_service: vs_name.clone(),
                },
            ));
        }
        let (request_ops, host_rewrite, response_ops) =
            compile_headers(route.headers.as_ref(), &format!("{field}.headers"))?;
        let action = if let Some(redirect) = &route.redirect {
            Action::Redirect(
                Redirect::compile(redirect, &format!("{field}.redirect"))
                    .map_err(|e| e.to_string())?,
            )
        } else if let Some(direct) = &route.direct_response {
            Action::Direct(
                DirectResponse::compile(direct, &format!("{field}.directResponse"))
                    .map_err(|e| e.to_string())?,
            )
        } else {
            self.compile_destinations(route, field, ns, host_rewrite)?
        };
        let mut policy = crate::policy::compile(
            route,
            field,
            self.config.mesh.default_http_retry_policy.as_ref(),
        )?;
        if matches!(action, Action::Route { .. }) {
            let mirrors = self.compile_mirrors(route, ns)?;
            if !mirrors.is_empty() {
                policy.get_or_insert_with(RoutePolicy::default).mirrors = Some(mirrors.into());
            }
        }
        Ok(Rule::new(
            matches,
            info,
            action,
            (request_ops, response_ops),
            policy,
        ))
    }

    fn compile_destinations(
        &mut self,
        route: &HttpRoute,
        field: &str,
        ns: Option<&str>,
        host_rewrite: Option<http::HeaderValue>,
    ) -> Result<Action, String> {
        let rewrite = Rewrite::compile(
            route.rewrite.as_ref(),
            host_rewrite,
            &format!("{field}.rewrite"),
        )
        .map_err(|e| e.to_string())?;
        let (slices, total) = weights::slices(route.route.iter().map(|d| d.weight), field)?;
        let mut destinations = Vec::with_capacity(slices.len());
        for (i, upto) in slices {
            let d = &route.route[i];
            let field = format!("{field}.route[{i}]");
            let (request_ops, host_rewrite, response_ops) =
                compile_headers(d.headers.as_ref(), &format!("{field}.headers"))?;
            destinations.push(WeightedDestination {
                destination: self.destination(&d.destination, ns)?,
                upto,
                request_ops,
                response_ops,
                rewrite: rewrite.for_destination(host_rewrite),
            });
        }
        Ok(Action::Route {
            destinations,
            total,
        })
    }

    /// The route's mirror targets: `mirror` (with `mirrorPercentage`), then each of `mirrors`.
    fn compile_mirrors(
        &mut self,
        route: &HttpRoute,
        ns: Option<&str>,
    ) -> Result<Vec<MirrorTarget>, String> {
        let mut targets = Vec::new();
        if let Some(mirror) = &route.mirror {
            targets.push(MirrorTarget {
                destination: self.destination(mirror, ns)?,
                fraction: mirror_share(route.mirror_percentage.as_ref(), route.mirror_percent),
            });
        }
        for mirror in &route.mirrors {
            targets.push(MirrorTarget {
                destination: self.destination(&mirror.destination, ns)?,
                fraction: mirror_share(mirror.percentage.as_ref(), None),
            });
        }
        // An explicit 0 % mirrors nothing.
        targets.retain(|t| t.fraction.per_million() > 0);
        Ok(targets)
    }

    /// Resolves a destination to its cluster, creating the cluster on first use.
    fn destination(
        &mut self,
        spec: &DestinationSpec,
        ns: Option<&str>,
    ) -> Result<Destination, String> {
        let host: Arc<str> = canonical_host(&spec.host, ns).into();
        let subset: Option<Arc<str>> = spec.subset.as_deref().map(Arc::from);
        let port = match spec.port.as_ref().map(|p| p.number) {
            Some(n) => Some(
                u16::try_from(n).map_err(|_| format!("destination port {n} is out of range"))?,
            ),
            None => None,
        };
        let key = (host.clone(), subset.clone(), port);
        let cluster = match self.cluster_index.get(&key) {
            Some(&index) => index,
            None => {
                let labels = match &subset {
                    Some(name) => self.subset_labels(&host, name)?,
                    None => BTreeMap::new(),
                };
                let index = self.table.clusters.len();
                self.table.clusters.push(Cluster {
                    host: host.clone(),
                    subset: subset.clone(),
                    port,
                    labels,
                });
                self.cluster_index.insert(key, index);
                index
            }
        };
        Ok(Destination {
            cluster,
            host,
            subset,
            port,
        })
    }

    /// The labels of subset `name` of `host`: the first DestinationRule defining it wins.
    fn subset_labels(&self, host: &str, name: &str) -> Result<BTreeMap<String, String>, String> {
        self.config
            .destination_rules
            .iter()
            .filter(|dr| canonical_host(&dr.spec.host, dr.meta.namespace.as_deref()) == host)
            .flat_map(|dr| dr.spec.subsets.iter())
            .find(|s| s.name == name)
            .map(|s| s.labels.clone())
            .ok_or_else(|| {
                format!("subset {name:?} is not defined by any DestinationRule for host {host}")
            })
    }
}

/// Request ops, an authority rewrite from `host` header operations, and response ops.
type CompiledHeaders = (HeaderOps, Option<http::HeaderValue>, Option<Arc<HeaderOps>>);

fn compile_headers(
    headers: Option<&crate::config::Headers>,
    field: &str,
) -> Result<CompiledHeaders, String> {
    let Some(headers) = headers else {
        return Ok((HeaderOps::default(), None, None));
    };
    let (request, authority) = match &headers.request {
        Some(ops) => {
            HeaderOps::compile(ops, &format!("{field}.request")).map_err(|e| e.to_string())?
        }
        None => (HeaderOps::default(), None),
    };
    let response = match &headers.response {
        Some(ops) => Some(
            HeaderOps::compile(ops, &format!("{field}.response"))
                .map_err(|e| e.to_string())?
                .0,
        ),
        None => None,
    };
    Ok((
        request,
        authority,
        response.filter(|ops| !ops.is_empty()).map(Arc::new),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_found_in_any_case_exact_or_by_wildcard() {
        let mut index = HostIndex::default();
        index.claim("catalog.shop.svc.cluster.local", 0);
        index.claim("*.example.com", 1);
        for (authority, found) in [
            ("catalog.shop.svc.cluster.local:80", Some(0)),
            ("Catalog.SHOP.svc.cluster.local", Some(0)),
            ("api.example.com", Some(1)),
            ("API.Example.COM:8080", Some(1)),
            ("example.com", None),
            ("Other.Example.org", None),
        ] {
            assert_eq!(index.find(authority), found, "{authority}");
        }
    }

    /// The policy of the rule `table` routes `http://catalog/` to.
    fn catalog_policy(table: &RouteTable) -> Option<&RoutePolicy> {
        let request = Request::get("http://catalog/").body(()).unwrap();
        let Decision::Matched { routed, .. } = table.route(&request) else {
            panic!("catalog is not routed");
        };
        routed[0].policy.as_ref()
    }

    #[test]
    fn default_routes_get_the_default_retry_policy() {
        let service = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\nspec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n";
        let mesh = "---\napiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  defaultHttpRetryPolicy: {attempts: 1, retryOn: gateway-error}\n";
        for yaml in [service.to_string(), format!("{service}{mesh}")] {
            let config = Config::from_yaml_str(&yaml).unwrap().config;
            let table = RouteTable::compile(&config).unwrap();
            // The same policy as a VirtualService route without `retries`.
            let expected = crate::policy::compile(
                &HttpRoute::default(),
                "http[0]",
                config.mesh.default_http_retry_policy.as_ref(),
            )
            .unwrap();
            assert!(expected.as_ref().is_some_and(|p| p.retry.is_some()));
            assert_eq!(catalog_policy(&table), expected.as_ref(), "{yaml}");
        }
    }

    #[test]
    fn default_routes_report_a_bad_mesh_retry_policy() {
        let mut config = Config::from_yaml_str("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\nspec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n").unwrap().config;
        config.mesh.default_http_retry_policy = Some(crate::config::HttpRetry {
            attempts: Some(1),
            retry_on: Some("bogus".into()),
            ..Default::default()
        });
        let error = RouteTable::compile(&config).unwrap_err().to_string();
        assert!(
            error.contains("catalog: defaultHttpRetryPolicy.retryOn: \"bogus\""),
            "{error}"
        );
    }

    const CATALOG: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: catalog, namespace: shop}
spec:
  hosts: [catalog]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 9080, name: http-alt, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, labels: {version: v1}}, {address: 127.0.0.2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: catalog, namespace: shop}
spec:
  host: catalog
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"#;

    /// The last rule of [`catalog_rules`]: everything else to subset v1.
    const V1_RULE: &str = "{name: v1, route: [{destination: {host: catalog, subset: v1}}]}";

    /// `CATALOG` with a VirtualService: rule `v2` with match blocks `blocks`, then rule `v1`.
    fn catalog_rules(blocks: &str) -> Config {
        catalog_rules_and(blocks, V1_RULE, "")
    }

    /// `CATALOG` with a VirtualService: rule `v2` with match blocks `blocks`, then `last`; and
    /// then the documents `more`.
    fn catalog_rules_and(blocks: &str, last: &str, more: &str) -> Config {
        let routes = format!(
            "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n\
             metadata: {{name: catalog, namespace: shop}}\n\
             spec:\n  hosts: [catalog]\n  http:\n\
             \x20 - {{name: v2, match: {blocks}, route: [{{destination: {{host: catalog, subset: v2}}}}]}}\n\
             \x20 - {last}\n{more}"
        );
        let loaded = Config::from_yaml_str(&format!("{CATALOG}{routes}")).unwrap();
        loaded.config
    }

    #[test]
    fn any_route_policy_looks_at_every_rule_and_match_block_of_every_host() {
        let table_with = |rule: &str, extra: &str| {
            let config = catalog_rules_and("[{headers: {x-beta: {}}}]", rule, extra);
            RouteTable::compile(&config).unwrap()
        };
        let faults = |table: &RouteTable| table.any_route_policy(|p| p.fault.is_some());
        let mirrors = |table: &RouteTable| table.any_route_policy(|p| p.mirrors.is_some());
        let plain = table_with(V1_RULE, "");
        assert!(!faults(&plain) && !mirrors(&plain));
        // The last rule of the host, without a match block.
        let aborting = "{name: v1, route: [{destination: {host: catalog, subset: v1}}], \
                        fault: {abort: {httpStatus: 503, percentage: {value: 1}}}}";
        let table = table_with(aborting, "");
        assert!(faults(&table) && !mirrors(&table));
        // A rule with match blocks.
        let matched = "{name: v1, match: [{uri: {prefix: /a}}, {uri: {prefix: /b}}], \
                       route: [{destination: {host: catalog, subset: v1}}], \
                       mirror: {host: catalog, subset: v2}}";
        let table = table_with(matched, "");
        assert!(mirrors(&table) && !faults(&table));
        // Another host's rule.
        let other = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n\
                     metadata: {name: reviews, namespace: shop}\n\
                     spec: {hosts: [reviews], http: [{route: [{destination: {host: catalog}}], \
                     fault: {delay: {fixedDelay: 1s, percentage: {value: 1}}}}]}\n";
        let table = table_with(V1_RULE, other);
        assert!(faults(&table) && !mirrors(&table));
    }

    #[test]
    fn each_thread_reports_copies_of_its_own_the_same_for_each_request() {
        let table =
            RouteTable::compile(&catalog_rules("[{headers: {x-beta: {exact: '1'}}}]")).unwrap();
        // Where this thread's decision for a beta and for another request lies.
        let decisions = || {
            ["1", "0"].map(|beta| {
                let request = Request::get("http://catalog/").header("x-beta", beta);
                let Decision::Matched { routed, .. } = table.route(&request.body(()).unwrap())
                else {
                    panic!("catalog is routed");
                };
                (
                    routed[0].clone(),
                    std::ptr::from_ref::<mesh_core::RouteChoice>(&routed[0]).addr(),
                )
            })
        };
        let [(beta, here), (other, there)] = decisions();
        assert_ne!(beta, other, "two rules");
        assert_eq!(
            decisions().map(|(_, at)| at),
            [here, there],
            "the same copies again"
        );
        let elsewhere = std::thread::scope(|scope| scope.spawn(decisions).join().unwrap());
        assert_eq!(
            elsewhere.clone().map(|(routed, _)| routed),
            [beta.clone(), other]
        );
        let [(_, beta_elsewhere), (_, other_elsewhere)] = elsewhere;
        assert!(
            beta_elsewhere != here && other_elsewhere != there,
            "copies of its own"
        );
        // Not the table's own either: those stay for a table that has not numbered them.
        let Decision::Matched { rule, .. } =
            table.route(&Request::get("http://catalog/").body(()).unwrap())
        else {
            panic!("catalog is routed");
        };
        let shared = std::ptr::from_ref::<mesh_core::RouteChoice>(&rule.reported.routed[0]).addr();
        assert_ne!(shared, there);
    }

    /// The name of the rule `table` routes a GET of `uri` (with `host`, if any) to.
    fn routed_to(table: &RouteTable, uri: &str, host: Option<&str>) -> String {
        let mut request = Request::get(uri);
        if let Some(host) = host {
            request = request.header("host", host);
        }
        match table.route(&request.body(()).unwrap()) {
            Decision::Matched { rule, .. } => rule.reported.info.name.to_string(),
            other => format!("{other:?}"),
        }
    }

    fn workload(labels: &[(&str, &str)], namespace: &str) -> SourceWorkload {
        SourceWorkload {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            namespace: namespace.into(),
        }
    }

    #[test]
    fn mirrors_compile_to_their_subset_port_and_share() {
        let shape = |mirror: &str| {
            let routes = format!(
                "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n\
                 metadata: {{name: catalog, namespace: shop}}\n\
                 spec:\n  hosts: [catalog]\n  http:\n\
                 \x20 - route: [{{destination: {{host: catalog, subset: v1}}}}]\n\
                 \x20   {mirror}\n"
            );
            let config = Config::from_yaml_str(&format!("{CATALOG}{routes}"))
                .unwrap_or_else(|d| panic!("{d:#?}"))
                .config;
            let table = RouteTable::compile(&config).unwrap();
            let mirrors = catalog_policy(&table)
                .and_then(|p| p.mirrors.as_deref())
                .expect("mirrors compiled");
            mirrors
                .iter()
                .map(|m| {
                    let d = &m.destination;
                    assert_eq!(&*d.host, "catalog.shop.svc.cluster.local");
                    (
                        d.subset.as_deref().map(str::to_owned),
                        d.port,
                        m.fraction.per_million(),
                    )
                })
                .collect::<Vec<_>>()
        };
        // No `mirrorPercentage`: every request is mirrored, as in Istio.
        assert_eq!(
            shape("mirror: {host: catalog, subset: v2, port: {number: 9080}}"),
            [(Some("v2".to_owned()), Some(9080), 1_000_000)]
        );
        assert_eq!(
            shape("mirror: {host: catalog}\n    mirrorPercentage: {value: 12.5}"),
            [(None, None, 125_000)]
        );
        assert_eq!(
            shape(
                "mirrors: [{destination: {host: catalog, subset: v2}}, {destination: {host: catalog, port: {number: 80}}, percentage: {value: 1}}]"
            ),
            [
                (Some("v2".to_owned()), None, 1_000_000),
                (None, Some(80), 10_000)
            ]
        );
    }

    #[test]
    fn source_labels_select_the_proxy_the_table_is_for() {
        let config = catalog_rules("[{sourceLabels: {app: tester}}]");
        let tester = workload(&[("app", "tester"), ("version", "v1")], "shop");
        let table = RouteTable::compile_for(&config, &[], &tester).unwrap();
        assert_eq!(routed_to(&table, "http://catalog/", None), "v2");
        for other in [
            SourceWorkload::default(),
            workload(&[("app", "web")], "shop"),
        ] {
            let table = RouteTable::compile_for(&config, &[], &other).unwrap();
            assert_eq!(
                routed_to(&table, "http://catalog/", None),
                "v1",
                "{other:?}"
            );
        }
        assert_eq!(
            routed_to(
                &RouteTable::compile(&config).unwrap(),
                "http://catalog/",
                None
            ),
            "v1"
        );
    }

    #[test]
    fn source_namespace_selects_the_proxy_the_table_is_for() {
        let config = catalog_rules("[{sourceNamespace: qa}]");
        let qa = workload(&[], "qa");
        let table = RouteTable::compile_for(&config, &[], &qa).unwrap();
        assert_eq!(routed_to(&table, "http://catalog/", None), "v2");
        let table = RouteTable::compile_for(&config, &[], &workload(&[], "shop")).unwrap();
        assert_eq!(routed_to(&table, "http://catalog/", None), "v1");
        // Both selectors must hold.
        let config = catalog_rules("[{sourceNamespace: qa, sourceLabels: {app: tester}}]");
        let table = RouteTable::compile_for(&config, &[], &qa).unwrap();
        assert_eq!(routed_to(&table, "http://catalog/", None), "v1");
    }

    #[test]
    fn a_dropped_block_leaves_the_others_and_a_rule_without_any_never_matches() {
        let config = catalog_rules("[{sourceLabels: {app: tester}}, {headers: {x-beta: {}}}]");
        let table = RouteTable::compile(&config).unwrap();
        assert_eq!(routed_to(&table, "http://catalog/", None), "v1");
        let beta = Request::get("http://catalog/")
            .header("x-beta", "1")
            .body(())
            .unwrap();
        assert!(
            matches!(table.route(&beta), Decision::Matched { rule, .. } if &*rule.reported.info.name == "v2")
        );
    }

    #[test]
    fn port_matches_the_port_the_request_addressed() {
        let config = catalog_rules("[{port: 9080}]");
        let table = RouteTable::compile(&config).unwrap();
        assert_eq!(routed_to(&table, "http://catalog:9080/", None), "v2");
        assert_eq!(routed_to(&table, "/items", Some("catalog:9080")), "v2");
        assert_eq!(routed_to(&table, "http://catalog/", None), "v1");
        assert_eq!(routed_to(&table, "/items", Some("catalog")), "v1");
        assert_eq!(routed_to(&table, "http://catalog:8080/", None), "v1");
        // Without a port in the authority, the scheme's default port.
        let config = catalog_rules("[{port: 443}]");
        let table = RouteTable::compile(&config).unwrap();
        assert_eq!(routed_to(&table, "https://catalog/", None), "v2");
        assert_eq!(routed_to(&table, "http://catalog/", None), "v1");
        let config = catalog_rules("[{port: 80}]");
        let table = RouteTable::compile(&config).unwrap();
        assert_eq!(routed_to(&table, "http://catalog/", None), "v2");
        assert_eq!(routed_to(&table, "/", Some("catalog")), "v2");
    }

    #[test]
    fn an_out_of_range_port_is_a_compile_error() {
        let config = catalog_rules("[{port: 70000}]");
        let error = RouteTable::compile(&config).unwrap_err().to_string();
        assert!(error.contains("http[0].match[0].port"), "{error}");
    }

    #[test]
    fn gateway_ports_match_port_and_source_against_the_gateway() {
        let gateway = "---\napiVersion: networking.istio.io/v1\nkind: Gateway\n\
             metadata: {name: edge, namespace: shop}\n\
             spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*']}]}\n";
        let labels = [("istio", "ingressgateway")];
        let edge = workload(&labels, "istio-system");
        let route = |blocks: &str| {
            let mut config = catalog_rules(blocks);
            let extra = Config::from_yaml_str(gateway).unwrap().config;
            config.gateways.extend(extra.gateways);
            for vs in &mut config.virtual_services {
                vs.spec.gateways = vec!["edge".into()];
            }
            let ports = crate::config::gateway::served_ports(&config, &edge.labels).unwrap();
            let table = RouteTable::compile_for(&config, &ports, &edge).unwrap();
            let scope = table.gateway_scope(8080).unwrap();
            let request = Request::get("http://catalog/").body(()).unwrap();
            match table.route_in(scope, &request) {
                Decision::Matched { rule, .. } => rule.reported.info.name.to_string(),
                other => format!("{other:?}"),
            }
        };
        // The gateway port is the port addressed, whatever the Host says.
        assert_eq!(route("[{port: 8080}]"), "v2");
        assert_eq!(route("[{port: 80}]"), "v1");
        // The gateway's own workload is the source.
        assert_eq!(route("[{sourceLabels: {istio: ingressgateway}}]"), "v2");
        assert_eq!(route("[{sourceNamespace: istio-system}]"), "v2");
        assert_eq!(route("[{sourceLabels: {app: tester}}]"), "v1");
    }

    #[test]
    fn stream_routes_drop_blocks_for_other_sources() {
        let routes = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n\
             metadata: {name: catalog, namespace: shop}\n\
             spec:\n  hosts: [catalog]\n  tcp:\n\
             \x20 - {match: [{sourceLabels: {app: tester}}], route: [{destination: {host: catalog, subset: v2}}]}\n\
             \x20 - {match: [{sourceNamespace: qa}], route: [{destination: {host: catalog, subset: v2}}]}\n\
             \x20 - {route: [{destination: {host: catalog, subset: v1}}]}\n";
        let config = Config::from_yaml_str(&format!("{CATALOG}{routes}"))
            .unwrap()
            .config;
        let subset = |source: &SourceWorkload| {
            let table = RouteTable::compile_for(&config, &[], source).unwrap();
            let StreamDecision::Matched(rule) =
                table.route_stream(RouteScope::MESH, "catalog", 80, None)
            else {
                panic!("catalog is not routed");
            };
            rule.pick().subset.as_deref().map(str::to_string)
        };
        assert_eq!(
            subset(&workload(&[("app", "tester")], "shop")).as_deref(),
            Some("v2")
        );
        assert_eq!(subset(&workload(&[], "qa")).as_deref(), Some("v2"));
        assert_eq!(subset(&SourceWorkload::default()).as_deref(), Some("v1"));
    }

    #[test]
    fn strips_ports() {
        assert_eq!(strip_port("catalog:80"), "catalog");
        assert_eq!(strip_port("catalog"), "catalog");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
    }
}
