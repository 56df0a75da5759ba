//! The endpoint registry: for every cluster of the route table, the endpoints it may use.
//!
//! Endpoints come from ServiceEntries: `resolution: STATIC` lists IP endpoints with labels and
//! per-port-name port numbers; `DNS` lists DNS names (or, without endpoints, uses the hosts);
//! `NONE` and `DYNAMIC_DNS` forward to the requested authority itself. A cluster's subset
//! selects endpoints by label; its DestinationRule picks the load balancer, the circuit
//! breaker (`connectionPool`) and outlier detection (a subset's own `trafficPolicy` overrides
//! the rule's).

use crate::{
    balance::LoadBalancer,
    cluster_policy::ClusterPolicy,
    cluster_stats::ClusterStats,
    endpoint::{Endpoint, Protocol},
    tls::{OutboundTls, TlsError, TlsIdentity},
    upstream::{DEFAULT_IDLE_TIMEOUT, Upstream},
};
use http::uri::Authority;
use mesh_core::{
    UpstreamCluster, UpstreamHost, UpstreamWorkload, circuit_breaker::CircuitBreaker,
    error::UpstreamTarget, outlier::OutlierDetector, retry::RetryBudget, workload::Workload,
};
use mesh_route::{
    config::{Config, Resolution, Resource, ServiceEntry},
    host::{canonical_host, host_matches},
    table::{Cluster, RouteTable},
};
use std::{collections::HashMap, sync::Arc};

/// The endpoints of one service port within a cluster.
///
/// ```
/// use mesh_proxy::{endpoint::Protocol, registry::Registry, upstream::Upstream};
/// use mesh_route::{config::Config, table::RouteTable};
/// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\n\
///             spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: grpc-api}], \
///             endpoints: [{address: 127.0.0.1, ports: {grpc-api: 9001}}]}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let registry = Registry::build(&config, &RouteTable::compile(&config).unwrap(), &Upstream::default()).unwrap();
/// let port = &registry.clusters()[0].ports[0];
/// assert_eq!((port.number, port.protocol), (80, Protocol::Http2));
/// assert_eq!(port.endpoints[0].authority, "127.0.0.1:9001");
/// assert!(port.outlier.is_none(), "no outlierDetection");
/// ```
#[derive(Debug)]
pub struct PortEndpoints {
    /// The service port number.
    pub number: u16,
    /// Endpoints selected for this port.
    pub endpoints: Vec<Arc<Endpoint>>,
    /// Protocol of the port.
    pub protocol: Protocol,
    /// Outlier detection over `endpoints` (by index), when configured.
    pub outlier: Option<Arc<OutlierDetector>>,
    /// Where a request sent to each endpoint (by index) went, as the retry layer and
    /// telemetry report it: made once, with the cluster, so that a request copies one
    /// reference rather than the cluster's, host's and workload's.
    pub targets: Vec<UpstreamTarget>,
}

/// A cluster's endpoints and balancer.
///
/// ```
/// use mesh_proxy::{registry::Registry, upstream::Upstream};
/// use mesh_route::{config::Config, table::RouteTable};
/// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\n\
///             spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n\
///             ---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: catalog}\n\
///             spec: {host: catalog, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}, connectionPool: {http: {http2MaxRequests: 10}}}}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let registry = Registry::build(&config, &RouteTable::compile(&config).unwrap(), &Upstream::default()).unwrap();
/// let cluster = &registry.clusters()[0];
/// assert_eq!(cluster.balancer.name(), "ROUND_ROBIN");
/// assert_eq!(cluster.breaker.as_ref().unwrap().limits().max_requests, 10);
/// assert!(!cluster.passthrough);
/// ```
#[derive(Debug)]
pub struct ClusterEndpoints {
    /// What the route table says this cluster is.
    pub cluster: Cluster,
    /// Envoy-style name: `outbound|PORT|SUBSET|HOST`.
    pub name: Arc<str>,
    /// The load-balancing policy.
    pub balancer: LoadBalancer,
    /// Per service port.
    pub ports: Vec<PortEndpoints>,
    /// Forward to the requested authority instead of to endpoints (`resolution: NONE`).
    pub passthrough: bool,
    /// The upstream client (its own when the cluster sets `connectTimeout` or `idleTimeout`).
    pub upstream: Upstream,
    /// The cluster's circuit breaker, when its DestinationRule sets a `connectionPool`.
    pub breaker: Option<Arc<CircuitBreaker>>,
    /// The cluster's retry budget (kept across configurations for a cluster of the same name).
    pub retry_budget: RetryBudget,
    /// Request counters (kept across configurations for a cluster of the same name).
    pub stats: Arc<ClusterStats>,
}

impl ClusterEndpoints {
    /// The endpoint of `ports` for the next request or connection, by index: one outlier
    /// detection has not ejected and out of connect backoff, chosen by the balancer (avoiding
    /// what `previous` attempts tried); when every healthy endpoint is in connect backoff, one
    /// of them anyway rather than none. `None`: every endpoint is ejected (UH).
    ///
    /// ```
    /// use mesh_proxy::{registry::Registry, upstream::Upstream};
    /// use mesh_route::{config::Config, table::RouteTable};
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\n\
    ///             spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], \
    ///             endpoints: [{address: 127.0.0.1}, {address: 127.0.0.2}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let registry = Registry::build(&config, &RouteTable::compile(&config).unwrap(), &Upstream::default()).unwrap();
    /// let cluster = &registry.clusters()[0];
    /// let port = cluster.port_for(80).unwrap();
    /// let now = tokio::time::Instant::now();
    /// port.endpoints[0].record_connect_failure(now);
    /// // The first endpoint is in connect backoff: the second is chosen every time.
    /// assert!((0..10).all(|_| cluster.choose_endpoint(port, None, now) == Some(1)));
    /// ```
    pub fn choose_endpoint(
        &self,
        ports: &PortEndpoints,
        previous: Option<&mesh_core::retry::RetryContext>,
        now: tokio::time::Instant,
    ) -> Option<usize> {
        let healthy = |i: usize| {
            ports
                .outlier
                .as_ref()
                .is_none_or(|o| o.is_available(i, now))
        };
        let reachable = |i: usize| !ports.endpoints[i].is_unreachable(now);
        let chosen = self
            .balancer
            .choose(&ports.endpoints, previous, |i| healthy(i) && reachable(i))
            .or_else(|| self.balancer.choose(&ports.endpoints, previous, healthy))?;
        if let Some(previous) = previous {
            previous.record_target(&ports.targets[chosen]);
        }
        Some(chosen)
    }

    /// The port a request on `request_port` uses: the route's port if it named one, else the
    /// port the client addressed, else the first declared port.
    ///
    /// ```
    /// use mesh_proxy::{registry::Registry, upstream::Upstream};
    /// use mesh_route::{config::Config, table::RouteTable};
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\n\
    ///             spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}, {number: 9090, name: http-admin}], \
    ///             endpoints: [{address: 127.0.0.1}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let registry = Registry::build(&config, &RouteTable::compile(&config).unwrap(), &Upstream::default()).unwrap();
    /// let cluster = &registry.clusters()[0];
    /// assert_eq!(cluster.port_for(9090).unwrap().number, 9090);
    /// // A port the service does not declare: the first declared one.
    /// assert_eq!(cluster.port_for(8080).unwrap().number, 80);
    /// ```
    pub fn port_for(&self, request_port: u16) -> Option<&PortEndpoints> {
        let wanted = self.cluster.port.unwrap_or(request_port);
        self.ports.iter().find(|p| p.number == wanted).or_else(|| {
            self.cluster
                .port
                .is_none()
                .then(|| self.ports.first())
                .flatten()
        })
    }

    /// Every endpoint of the cluster, each once.
    ///
    /// ```
    /// use mesh_proxy::{registry::Registry, upstream::Upstream};
    /// use mesh_route::{config::Config, table::RouteTable};
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\n\
    ///             spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], \
    ///             endpoints: [{address: 127.0.0.1, ports: {http: 9001}}, {address: 127.0.0.2, ports: {http: 9002}}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let registry = Registry::build(&config, &RouteTable::compile(&config).unwrap(), &Upstream::default()).unwrap();
    /// let all: Vec<String> = registry.clusters()[0].all_endpoints().map(|(port, e)| format!("{port}->{}", e.authority)).collect();
    /// assert_eq!(all, ["80->127.0.0.1:9001", "80->127.0.0.2:9002"]);
    /// ```
    pub fn all_endpoints(&self) -> impl Iterator<Item = (u16, &Arc<Endpoint>)> {
        self.ports
            .iter()
            .flat_map(|p| p.endpoints.iter().map(move |e| (p.number, e)))
    }
}

/// The trust domain of a mesh config that names none (Istio's default).
///
/// ```
/// use mesh_proxy::registry::TRUST_DOMAIN;
/// use mesh_route::config::Config;
/// assert_eq!(TRUST_DOMAIN, "cluster.local");
/// assert!(Config::default().mesh.trust_domain.is_none(), "so this one applies");
/// ```
pub const TRUST_DOMAIN: &str = "cluster.local";

/// All clusters' endpoints, indexed like [`RouteTable::clusters`].
///
/// ```
/// use mesh_proxy::{registry::Registry, upstream::Upstream};
/// use mesh_route::{config::Config, table::RouteTable};
/// let registry = Registry::default();
/// assert!(registry.clusters().is_empty() && registry.cluster(0).is_none());
/// let config = Config::default();
/// let built = Registry::build(&config, &RouteTable::compile(&config).unwrap(), &Upstream::default()).unwrap();
/// assert!(built.clusters().is_empty(), "no ServiceEntry, no cluster");
/// ```
#[derive(Debug, Default)]
pub struct Registry {
    clusters: Vec<ClusterEndpoints>,
}

impl Registry {
    /// Builds the registry for `table`'s clusters from `config`'s ServiceEntries and
    /// DestinationRules; clusters without their own connection timeouts share `upstream`.
    ///
    /// ```
    /// use mesh_proxy::{registry::Registry, upstream::Upstream};
    /// use mesh_route::{config::Config, table::RouteTable};
    /// use std::time::Duration;
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\n\
    ///             spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let table = RouteTable::compile(&config).unwrap();
    /// let registry = Registry::build(&config, &table, &Upstream::new(Duration::from_secs(3))).unwrap();
    /// assert_eq!(registry.clusters().len(), table.clusters().len());
    /// // No DestinationRule sets a connectTimeout: the shared pool's applies.
    /// assert_eq!(registry.clusters()[0].upstream.connect_timeout(), Duration::from_secs(3));
    /// ```
    pub fn build(
        config: &Config,
        table: &RouteTable,
        upstream: &Upstream,
    ) -> Result<Self, TlsError> {
        Registry::build_after(config, table, upstream, None, None)
    }

    /// [`build`](Self::build), keeping `previous`'s state where nothing changed, as Envoy does
    /// on a configuration update: an endpoint with the same address, labels, protocol and
    /// workload keeps its counters, connect backoff and HTTP/2 connection; a cluster of the
    /// same name keeps its request counters, its own upstream pool when its connection
    /// settings are the same, its circuit breaker when its limits are, and each port's outlier
    /// detection (ejections included) when its endpoints and outlier settings are.
    ///
    /// `identity` is the workload's certificate, which clusters with `tls.mode: ISTIO_MUTUAL`
    /// present; a cluster whose TLS cannot be set up is an error.
    ///
    /// ```
    /// use mesh_proxy::{registry::Registry, upstream::Upstream};
    /// use mesh_route::{config::Config, table::RouteTable};
    /// use std::sync::Arc;
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\n\
    ///             spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let table = RouteTable::compile(&config).unwrap();
    /// let upstream = Upstream::default();
    /// let first = Registry::build(&config, &table, &upstream).unwrap();
    /// first.clusters()[0].stats.record_attempt(1);
    /// let second = Registry::build_after(&config, &table, &upstream, Some(&first), None).unwrap();
    /// let endpoint = |r: &Registry| r.clusters()[0].ports[0].endpoints[0].clone();
    /// assert!(Arc::ptr_eq(&endpoint(&first), &endpoint(&second)), "the same endpoint carries over");
    /// assert_eq!(second.clusters()[0].stats.rq_total(), 1, "and so do the counters");
    /// ```
    pub fn build_after(
        config: &Config,
        table: &RouteTable,
        upstream: &Upstream,
        previous: Option<&Registry>,
        identity: Option<&TlsIdentity>,
    ) -> Result<Self, TlsError> {
        let trust_domain = config.mesh.trust_domain.as_deref().unwrap_or(TRUST_DOMAIN);
        let reusable = Reusable::new(
            previous
                .into_iter()
                .flat_map(|r| r.clusters.iter())
                .flat_map(|c| c.all_endpoints().map(|(_, e)| e.clone())),
        );
        let mut shared = EndpointCache(HashMap::new(), trust_domain.to_owned(), reusable);
        let clusters = table
            .clusters()
            .iter()
            .map(|cluster| {
                build_cluster(config, cluster, &mut shared, upstream, previous, identity)
            })
            .collect::<Result<_, _>>()?;
        Ok(Registry { clusters })
    }

    /// The cluster with index `index`.
    ///
    /// ```
    /// use mesh_proxy::{registry::Registry, upstream::Upstream};
    /// use mesh_route::{config::Config, table::RouteTable};
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\n\
    ///             spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let table = RouteTable::compile(&config).unwrap();
    /// let registry = Registry::build(&config, &table, &Upstream::default()).unwrap();
    /// // Indexed like the route table's clusters.
    /// assert_eq!(registry.cluster(0).unwrap().cluster.host, table.clusters()[0].host);
    /// assert!(registry.cluster(table.clusters().len()).is_none());
    /// ```
    pub fn cluster(&self, index: usize) -> Option<&ClusterEndpoints> {
        self.clusters.get(index)
    }

    /// Every cluster.
    ///
    /// ```
    /// use mesh_proxy::{registry::Registry, upstream::Upstream};
    /// use mesh_route::{config::Config, table::RouteTable};
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\n\
    ///             spec: {hosts: [a], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n\
    ///             ---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: b}\n\
    ///             spec: {hosts: [b], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.2}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let registry = Registry::build(&config, &RouteTable::compile(&config).unwrap(), &Upstream::default()).unwrap();
    /// let names: Vec<&str> = registry.clusters().iter().map(|c| &*c.name).collect();
    /// assert_eq!(names.len(), 2);
    /// assert!(names.iter().all(|n| n.starts_with("outbound|80|")), "{names:?}");
    /// ```
    pub fn clusters(&self) -> &[ClusterEndpoints] {
        &self.clusters
    }
}

/// Shares one [`Endpoint`] among all clusters that select it, keyed by
/// (ServiceEntry, endpoint, port); `.1` is the mesh's trust domain, for endpoint identities;
/// `.2` the previous configuration's endpoints not yet reused.
#[derive(Default)]
struct EndpointCache(
    HashMap<(usize, usize, u16), Arc<Endpoint>>,
    String,
    Reusable,
);

/// The previous configuration's endpoints by address, each to be reused at most once (as a
/// fresh build makes one endpoint per entry).
#[derive(Default)]
struct Reusable(HashMap<Authority, Vec<Arc<Endpoint>>>);

impl Reusable {
    fn new(previous: impl Iterator<Item = Arc<Endpoint>>) -> Self {
        let mut by_address: HashMap<Authority, Vec<Arc<Endpoint>>> = HashMap::new();
        for endpoint in previous {
            let same_address = by_address.entry(endpoint.authority.clone()).or_default();
            // Clusters share endpoints: each one once.
            if !same_address.iter().any(|e| Arc::ptr_eq(e, &endpoint)) {
                same_address.push(endpoint);
            }
        }
        Reusable(by_address)
    }
}

/// `endpoint`, or the previous configuration's endpoint that is the same.
fn reuse(previous: &mut Reusable, endpoint: Endpoint) -> Arc<Endpoint> {
    let Some(same_address) = previous.0.get_mut(&endpoint.authority) else {
        return Arc::new(endpoint);
    };
    match same_address.iter().position(|e| e.same_as(&endpoint)) {
        Some(index) => same_address.swap_remove(index),
        None => Arc::new(endpoint),
    }
}

fn build_cluster(
    config: &Config,
    cluster: &Cluster,
    cache: &mut EndpointCache,
    shared: &Upstream,
    previous: Option<&Registry>,
    identity: Option<&TlsIdentity>,
) -> Result<ClusterEndpoints, TlsError> {
    let entries: Vec<(usize, &Resource<ServiceEntry>)> = config
        .service_entries
        .iter()
        .enumerate()
        .filter(|(_, se)| {
            let ns = se.meta.namespace.as_deref();
            se.spec
                .hosts
                .iter()
                .any(|h| host_matches(&canonical_host(h, ns), &cluster.host))
        })
        .collect();
    let mut ports: Vec<PortEndpoints> = Vec::new();
    let mut passthrough = false;
    for (se_index, se) in &entries {
        let resolution = se.spec.resolution.unwrap_or(Resolution::None);
        if matches!(resolution, Resolution::None | Resolution::DynamicDns)
            && se.spec.endpoints.is_empty()
        {
            passthrough = true;
        }
        for port in &se.spec.ports {
            let Ok(number) = u16::try_from(port.number) else {
                continue;
            };
            if cluster.port.is_some_and(|p| p != number) {
                continue;
            }
            let protocol = Protocol::of_port(port.protocol.as_deref(), &port.name);
            let target = port
                .target_port
                .and_then(|t| u16::try_from(t).ok())
                .unwrap_or(number);
            let endpoints =
                endpoints_of(se, *se_index, &port.name, number, target, protocol, cache)
                    .into_iter()
                    .filter(|e| e.selected_by(&cluster.labels))
                    .collect::<Vec<_>>();
            match ports.iter_mut().find(|p| p.number == number) {
                Some(existing) => existing.endpoints.extend(endpoints),
                None => ports.push(PortEndpoints {
                    number,
                    endpoints,
                    protocol,
                    outlier: None,
                    targets: Vec::new(),
                }),
            }
        }
    }
    // Istio's name; a route without a port names the service's port when it has just one.
    let port = match (cluster.port, ports.as_slice()) {
        (Some(port), _) => Some(port),
        (None, [only]) => Some(only.number),
        (None, _) => None,
    };
    let name: Arc<str> = format!(
        "outbound|{}|{}|{}",
        port.map(|p| p.to_string()).unwrap_or_default(),
        cluster.subset.as_deref().unwrap_or(""),
        cluster.host
    )
    .into();
    for port in &mut ports {
        port.targets = port
            .endpoints
            .iter()
            .map(|endpoint| {
                let host = UpstreamHost(endpoint.authority.clone());
                let workload = UpstreamWorkload(endpoint.workload.clone());
                UpstreamTarget::new(UpstreamCluster(name.clone()), Some(host), Some(workload))
            })
            .collect();
    }
    let before = previous
        .into_iter()
        .flat_map(|r| r.clusters.iter())
        .find(|c| c.name == name);
    let policy = ClusterPolicy::for_cluster(config, cluster);
    let balancer = LoadBalancer::for_policy(policy.load_balancer);
    let tls = match &policy.tls {
        Some(settings) => OutboundTls::new(
            settings,
            &cluster.host,
            port,
            cluster.subset.as_deref(),
            identity,
        )
        .map_err(|e| TlsError::new(format!("cluster {name}: {e}")))?
        .map(Arc::new),
        None => None,
    };
    let upstream = match (cluster_upstream(&policy, shared, tls), before) {
        (new, Some(before)) if new.same_settings(&before.upstream) => before.upstream.clone(),
        (new, _) => new,
    };
    let breaker = policy.pool_limits().map(|limits| {
        before
            .and_then(|b| b.breaker.clone())
            .filter(|b| *b.limits() == limits)
            .unwrap_or_else(|| Arc::new(CircuitBreaker::new(limits)))
    });
    if let Some(outlier) = policy.outlier_config() {
        for port in &mut ports {
            let kept = before
                .and_then(|b| b.ports.iter().find(|p| p.number == port.number))
                .filter(|p| same_endpoints(&p.endpoints, &port.endpoints))
                .and_then(|p| p.outlier.clone())
                .filter(|o| *o.config() == outlier);
            port.outlier = Some(kept.unwrap_or_else(|| {
                Arc::new(OutlierDetector::new(outlier.clone(), port.endpoints.len()))
            }));
        }
    }
    Ok(ClusterEndpoints {
        cluster: cluster.clone(),
        name,
        balancer,
        ports,
        passthrough,
        upstream,
        breaker,
        retry_budget: before.map_or_else(RetryBudget::default, |b| b.retry_budget.clone()),
        stats: before.map_or_else(Arc::default, |b| b.stats.clone()),
    })
}

/// Whether two endpoint lists hold the very same endpoints in the same order.
fn same_endpoints(a: &[Arc<Endpoint>], b: &[Arc<Endpoint>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| Arc::ptr_eq(a, b))
}

/// The cluster's own upstream client when its `connectionPool` sets `tcp.connectTimeout`, an
/// `idleTimeout` (`http.idleTimeout`, else `tcp.idleTimeout`; 0 disables) or
/// `http.maxRequestsPerConnection`, else `shared`.
fn cluster_upstream(
    policy: &ClusterPolicy,
    shared: &Upstream,
    tls: Option<Arc<OutboundTls>>,
) -> Upstream {
    let pool = policy.connection_pool.as_ref();
    let tcp = pool.and_then(|p| p.tcp.as_ref());
    let connect = tcp.and_then(|t| t.connect_timeout).map(|d| d.get());
    let idle = pool
        .and_then(|p| p.http.as_ref())
        .and_then(|h| h.idle_timeout)
        .or_else(|| tcp.and_then(|t| t.idle_timeout))
        .map(|d| d.get());
    let max_requests_per_connection = policy
        .pool_limits()
        .map_or(0, |limits| limits.max_requests_per_connection);
    if connect.is_none() && idle.is_none() && max_requests_per_connection == 0 && tls.is_none() {
        return shared.clone();
    }
    Upstream::with_timeouts(
        connect.unwrap_or(shared.connect_timeout()),
        match idle {
            Some(idle) if idle.is_zero() => None,
            Some(idle) => Some(idle),
            None => Some(DEFAULT_IDLE_TIMEOUT),
        },
    )
    .with_tls(tls)
    .with_max_requests_per_connection(max_requests_per_connection)
}

fn endpoints_of(
    se: &Resource<ServiceEntry>,
    se_index: usize,
    port_name: &str,
    number: u16,
    target: u16,
    protocol: Protocol,
    cache: &mut EndpointCache,
) -> Vec<Arc<Endpoint>> {
    let resolution = se.spec.resolution.unwrap_or(Resolution::None);
    let mut out = Vec::new();
    if se.spec.endpoints.is_empty() {
        if matches!(resolution, Resolution::Dns | Resolution::DnsRoundRobin) {
            for (i, host) in se
                .spec
                .hosts
                .iter()
                .enumerate()
                .filter(|(_, h)| !h.starts_with('*'))
            {
                if let Ok(authority) = Authority::try_from(format!("{host}:{target}")) {
                    let key = (se_index, usize::MAX - i, number);
                    out.push(
                        cache
                            .0
                            .entry(key)
                            .or_insert_with(|| {
                                reuse(
                                    &mut cache.2,
                                    Endpoint::new(authority, Default::default(), protocol),
                                )
                            })
                            .clone(),
                    );
                }
            }
        }
        return out;
    }
    for (i, we) in se.spec.endpoints.iter().enumerate() {
        let port = we
            .ports
            .get(port_name)
            .and_then(|p| u16::try_from(*p).ok())
            .unwrap_or(target);
        let address = if we.address.contains(':') && !we.address.starts_with('[') {
            format!("[{}]:{port}", we.address)
        } else {
            format!("{}:{port}", we.address)
        };
        let Ok(authority) = Authority::try_from(address) else {
            continue;
        };
        let trust_domain = &cache.1;
        let endpoint = cache.0.entry((se_index, i, number)).or_insert_with(|| {
            let namespace = se.meta.namespace.as_deref().unwrap_or("");
            let mut workload = Workload::from_labels("", namespace, &we.labels);
            if let Some(account) = &we.service_account {
                workload = workload.with_service_account(trust_domain, account);
            }
            reuse(
                &mut cache.2,
                Endpoint::new(authority, we.labels.clone(), protocol)
                    .with_workload(Arc::new(workload)),
            )
        });
        out.push(endpoint.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn clusters_get_their_own_connect_timeout() {
        let yaml = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a}
spec: {hosts: [a], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b}
spec: {hosts: [b], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a}
spec:
  host: a
  trafficPolicy: {connectionPool: {tcp: {connectTimeout: 1500ms}}}
"#;
        let config = Config::from_yaml_str(yaml).unwrap().config;
        let table = RouteTable::compile(&config).unwrap();
        let registry =
            Registry::build(&config, &table, &Upstream::new(Duration::from_secs(10))).unwrap();
        let timeout_of = |host: &str| {
            registry
                .clusters()
                .iter()
                .find(|c| &*c.cluster.host == host)
                .map(|c| c.upstream.connect_timeout())
        };
        assert_eq!(timeout_of("a"), Some(Duration::from_millis(1500)));
        assert_eq!(timeout_of("b"), Some(Duration::from_secs(10)));
    }

    /// `catalog` with two endpoints (the second on `second_port`), a connection pool with
    /// limits of its own, and outlier detection.
    fn catalog(second_port: u16) -> Config {
        let yaml = format!(
            r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: catalog}}
spec:
  hosts: [catalog]
  resolution: STATIC
  ports: [{{number: 80, name: http}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: 9001}}}}, {{address: 127.0.0.2, ports: {{http: {second_port}}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: catalog}}
spec:
  host: catalog
  trafficPolicy:
    connectionPool: {{http: {{http2MaxRequests: 10, idleTimeout: 30s}}}}
    outlierDetection: {{consecutive5xxErrors: 1, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 100}}
"#
        );
        Config::from_yaml_str(&yaml).unwrap().config
    }

    #[test]
    fn a_rebuild_keeps_what_did_not_change() {
        use mesh_core::outlier::Outcome;
        let upstream = Upstream::default();
        let build = |config: &Config, previous: Option<&Registry>| {
            let table = RouteTable::compile(config).unwrap();
            Registry::build_after(config, &table, &upstream, previous, None).unwrap()
        };
        let first = build(&catalog(9002), None);
        fn ports(registry: &Registry) -> &PortEndpoints {
            &registry.clusters()[0].ports[0]
        }
        let now = tokio::time::Instant::now();
        let outlier = ports(&first).outlier.as_ref().unwrap();
        outlier.report(0, Outcome::Http5xx(503), now);
        assert!(!outlier.is_available(0, now), "ejected");
        first.clusters()[0].stats.record_attempt(1);

        // The same configuration again: everything carries over, the ejection included.
        let second = build(&catalog(9002), Some(&first));
        for (a, b) in ports(&first)
            .endpoints
            .iter()
            .zip(&ports(&second).endpoints)
        {
            assert!(Arc::ptr_eq(a, b), "the same endpoint");
        }
        let (a, b) = (&first.clusters()[0], &second.clusters()[0]);
        assert!(Arc::ptr_eq(
            a.breaker.as_ref().unwrap(),
            b.breaker.as_ref().unwrap()
        ));
        assert!(a.upstream.same_settings(&b.upstream));
        let kept = ports(&second).outlier.as_ref().unwrap();
        assert!(Arc::ptr_eq(outlier, kept));
        assert!(!kept.is_available(0, now), "still ejected");
        assert_eq!(
            second.clusters()[0].stats.rq_total(),
            1,
            "counters carry on"
        );

        // One endpoint changes: the other carries over; outlier detection starts again.
        let third = build(&catalog(9003), Some(&second));
        let (before, after) = (&ports(&second).endpoints, &ports(&third).endpoints);
        assert!(Arc::ptr_eq(&before[0], &after[0]));
        assert!(!Arc::ptr_eq(&before[1], &after[1]));
        assert_eq!(after[1].authority.as_str(), "127.0.0.2:9003");
        let fresh = ports(&third).outlier.as_ref().unwrap();
        assert!(!Arc::ptr_eq(kept, fresh));
        assert!(fresh.is_available(0, now));
    }
}
