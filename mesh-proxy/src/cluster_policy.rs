//! The traffic policy in force for one cluster: its DestinationRule's `trafficPolicy`, with
//! the subset's own `trafficPolicy` taking over field by field (`loadBalancer`,
//! `connectionPool`, `outlierDetection`), as Istio merges them. The first DestinationRule for the
//! host wins, as in Istio.

use mesh_route::{
    config::{
        Config, ConnectionPoolSettings, DestinationRule, OutlierDetection, Resource, SimpleLb,
        TrafficPolicy,
    },
    host::canonical_host,
    table::Cluster,
};

/// The effective traffic policy of a cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterPolicy {
    /// `loadBalancer.simple`.
    pub load_balancer: Option<SimpleLb>,
    /// `connectionPool`.
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// `outlierDetection`.
    pub outlier_detection: Option<OutlierDetection>,
}

impl ClusterPolicy {
    /// The policy for `cluster` under `config`.
    pub fn for_cluster(config: &Config, cluster: &Cluster) -> Self {
        let Some(rule) = destination_rule(config, &cluster.host) else {
            return ClusterPolicy::default();
        };
        let top = rule.spec.traffic_policy.as_ref();
        let subset = cluster
            .subset
            .as_deref()
            .and_then(|name| rule.spec.subsets.iter().find(|s| s.name == name))
            .and_then(|s| s.traffic_policy.as_ref());
        let pick = |field: fn(&TrafficPolicy) -> bool| subset.filter(|p| field(p)).or(top);
        ClusterPolicy {
            load_balancer: pick(|p| {
                p.load_balancer
                    .as_ref()
                    .is_some_and(|lb| lb.simple.is_some())
            })
            .and_then(|p| p.load_balancer.as_ref())
            .and_then(|lb| lb.simple),
            connection_pool: pick(|p| p.connection_pool.is_some())
                .and_then(|p| p.connection_pool.clone()),
            outlier_detection: pick(|p| p.outlier_detection.is_some())
                .and_then(|p| p.outlier_detection.clone()),
        }
    }
}

/// The first DestinationRule whose host is `host`.
fn destination_rule<'c>(config: &'c Config, host: &str) -> Option<&'c Resource<DestinationRule>> {
    config
        .destination_rules
        .iter()
        .find(|dr| canonical_host(&dr.spec.host, dr.meta.namespace.as_deref()) == host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_route::table::RouteTable;

    #[test]
    fn subset_policy_overrides_field_by_field() {
        let yaml = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: s, namespace: ns}
spec:
  hosts: [s]
  resolution: STATIC
  ports: [{number: 80, name: http}]
  endpoints: [{address: 127.0.0.1, labels: {v: "1"}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: s, namespace: ns}
spec:
  host: s
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    connectionPool: {http: {http2MaxRequests: 7}}
  subsets:
  - name: one
    labels: {v: "1"}
    trafficPolicy:
      loadBalancer: {simple: ROUND_ROBIN}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: s, namespace: ns}
spec:
  hosts: [s]
  http:
  - route: [{destination: {host: s, subset: one}}]
"#;
        let config = Config::from_yaml_str(yaml).unwrap().config;
        let table = RouteTable::compile(&config).unwrap();
        let policy = ClusterPolicy::for_cluster(&config, &table.clusters()[0]);
        assert_eq!(policy.load_balancer, Some(SimpleLb::RoundRobin));
        let pool = policy.connection_pool.unwrap();
        assert_eq!(pool.http.unwrap().http2_max_requests, Some(7));
    }
}
