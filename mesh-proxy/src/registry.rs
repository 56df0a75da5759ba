//! The endpoint registry: for every cluster of the route table, the endpoints it may use.
//!
//! Endpoints come from ServiceEntries: `resolution: STATIC` lists IP endpoints with labels and
//! per-port-name port numbers; `DNS` lists DNS names (or, without endpoints, uses the hosts);
//! `NONE` and `DYNAMIC_DNS` forward to the requested authority itself. A cluster's subset
//! selects endpoints by label; its DestinationRule picks the load balancer (a subset's own
//! `trafficPolicy` overrides the rule's).

use crate::{
    balance::LoadBalancer,
    cluster_policy::ClusterPolicy,
    endpoint::{Endpoint, Protocol},
};
use http::uri::Authority;
use mesh_route::{
    config::{Config, Resolution, Resource, ServiceEntry},
    host::{canonical_host, host_matches},
    table::{Cluster, RouteTable},
};
use std::{collections::HashMap, sync::Arc};

/// The endpoints of one service port within a cluster.
#[derive(Debug)]
pub struct PortEndpoints {
    /// The service port number.
    pub number: u16,
    /// Endpoints selected for this port.
    pub endpoints: Vec<Arc<Endpoint>>,
    /// Protocol of the port.
    pub protocol: Protocol,
}

/// A cluster's endpoints and balancer.
#[derive(Debug)]
pub struct ClusterEndpoints {
    /// What the route table says this cluster is.
    pub cluster: Cluster,
    /// Envoy-style name: `outbound|PORT|SUBSET|HOST`.
    pub name: String,
    /// The load-balancing policy.
    pub balancer: LoadBalancer,
    /// Per service port.
    pub ports: Vec<PortEndpoints>,
    /// Forward to the requested authority instead of to endpoints (`resolution: NONE`).
    pub passthrough: bool,
}

impl ClusterEndpoints {
    /// The port a request on `request_port` uses: the route's port if it named one, else the
    /// port the client addressed, else the first declared port.
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
    pub fn all_endpoints(&self) -> impl Iterator<Item = (u16, &Arc<Endpoint>)> {
        self.ports
            .iter()
            .flat_map(|p| p.endpoints.iter().map(move |e| (p.number, e)))
    }
}

/// All clusters' endpoints, indexed like [`RouteTable::clusters`].
#[derive(Debug, Default)]
pub struct Registry {
    clusters: Vec<ClusterEndpoints>,
}

impl Registry {
    /// Builds the registry for `table`'s clusters from `config`'s ServiceEntries and
    /// DestinationRules.
    pub fn build(config: &Config, table: &RouteTable) -> Self {
        let mut shared = EndpointCache::default();
        let clusters = table
            .clusters()
            .iter()
            .map(|cluster| build_cluster(config, cluster, &mut shared))
            .collect();
        Registry { clusters }
    }

    /// The cluster with index `index`.
    pub fn cluster(&self, index: usize) -> Option<&ClusterEndpoints> {
        self.clusters.get(index)
    }

    /// Every cluster.
    pub fn clusters(&self) -> &[ClusterEndpoints] {
        &self.clusters
    }
}

/// Shares one [`Endpoint`] among all clusters that select it, keyed by
/// (ServiceEntry, endpoint, port).
#[derive(Default)]
struct EndpointCache(HashMap<(usize, usize, u16), Arc<Endpoint>>);

fn build_cluster(
    config: &Config,
    cluster: &Cluster,
    cache: &mut EndpointCache,
) -> ClusterEndpoints {
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
                }),
            }
        }
    }
    let balancer =
        LoadBalancer::for_policy(ClusterPolicy::for_cluster(config, cluster).load_balancer);
    let name = format!(
        "outbound|{}|{}|{}",
        cluster.port.map(|p| p.to_string()).unwrap_or_default(),
        cluster.subset.as_deref().unwrap_or(""),
        cluster.host
    );
    ClusterEndpoints {
        cluster: cluster.clone(),
        name,
        balancer,
        ports,
        passthrough,
    }
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
                                Arc::new(Endpoint::new(authority, Default::default(), protocol))
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
        let endpoint = cache
            .0
            .entry((se_index, i, number))
            .or_insert_with(|| Arc::new(Endpoint::new(authority, we.labels.clone(), protocol)));
        out.push(endpoint.clone());
    }
    out
}
