//! The traffic policy in force for one cluster: its DestinationRule's `trafficPolicy`, with
//! the subset's own `trafficPolicy` taking over field by field (`loadBalancer`,
//! `connectionPool`, `outlierDetection`, `tls`, `retryBudget`), as Istio merges them. The first DestinationRule for the
//! host wins, as in Istio.

use mesh_core::{
    circuit_breaker::{ConnectionPoolLimits, RetryConcurrencyBudget},
    outlier::OutlierConfig,
    policy::Fraction,
};
use mesh_route::{
    config::{
        ClientTlsSettings, Config, ConnectionPoolSettings, DestinationRule, OutlierDetection,
        Resource, RetryBudget, SimpleLb, TrafficPolicy,
    },
    host::canonical_host,
    table::Cluster,
};

/// The effective traffic policy of a cluster.
///
/// ```
/// use mesh_proxy::cluster_policy::ClusterPolicy;
/// let policy = ClusterPolicy::default();
/// // No DestinationRule: Istio's defaults, no circuit breaker, no outlier detection.
/// assert!(policy.load_balancer.is_none());
/// assert!(policy.pool_limits().is_none() && policy.outlier_config().is_none());
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterPolicy {
    /// `loadBalancer.simple`.
    pub load_balancer: Option<SimpleLb>,
    /// `connectionPool`.
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// `outlierDetection`.
    pub outlier_detection: Option<OutlierDetection>,
    /// `tls`.
    pub tls: Option<ClientTlsSettings>,
    /// `retryBudget`.
    pub retry_budget: Option<RetryBudget>,
}

impl ClusterPolicy {
    /// The policy for `cluster` under `config`.
    ///
    /// ```
    /// use mesh_proxy::cluster_policy::ClusterPolicy;
    /// use mesh_route::{config::{Config, SimpleLb}, table::RouteTable};
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: s}\n\
    ///             spec: {hosts: [s], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1, labels: {v: '1'}}]}\n\
    ///             ---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: s}\n\
    ///             spec: {host: s, trafficPolicy: {loadBalancer: {simple: RANDOM}}, \
    ///             subsets: [{name: one, labels: {v: '1'}, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}]}\n\
    ///             ---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: s}\n\
    ///             spec: {hosts: [s], http: [{route: [{destination: {host: s, subset: one}}]}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let table = RouteTable::compile(&config).unwrap();
    /// let policy = ClusterPolicy::for_cluster(&config, &table.clusters()[0]);
    /// assert_eq!(policy.load_balancer, Some(SimpleLb::RoundRobin), "the subset's own policy wins");
    /// ```
    pub fn for_cluster(config: &Config, cluster: &Cluster) -> Self {
        let Some(rule) = destination_rule(config, &cluster.host) else {
            return ClusterPolicy::default();
        };
        let top = rule.spec.traffic_policy.as_ref();
        // The first definition of the subset among the host's rules wins, as for its labels.
        let subset = cluster
            .subset
            .as_deref()
            .and_then(|name| {
                rules_for(config, &cluster.host)
                    .flat_map(|dr| dr.spec.subsets.iter())
                    .find(|s| s.name == name)
            })
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
            tls: pick(|p| p.tls.is_some()).and_then(|p| p.tls.clone()),
            retry_budget: pick(|p| p.retry_budget.is_some()).and_then(|p| p.retry_budget.clone()),
        }
    }
}

impl ClusterPolicy {
    /// The circuit-breaker limits of `connectionPool` and `retryBudget`, or `None` without
    /// either. As in Istio, a pool limit applies only when set above 0; otherwise the default
    /// (2^32 − 1) stays. A `retryBudget` limits concurrent retries to its `percent` (default
    /// 20) of the outstanding requests, at least `minRetryConcurrency` (default 3), in place of
    /// `maxRetries`, as Envoy's retry budget does.
    ///
    /// ```
    /// use mesh_proxy::cluster_policy::ClusterPolicy;
    /// use mesh_route::{config::Config, table::RouteTable};
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: s}\n\
    ///             spec: {hosts: [s], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n\
    ///             ---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: s}\n\
    ///             spec: {host: s, trafficPolicy: {connectionPool: {http: {http2MaxRequests: 7, maxRetries: 0}}}}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let policy = ClusterPolicy::for_cluster(&config, &RouteTable::compile(&config).unwrap().clusters()[0]);
    /// let limits = policy.pool_limits().unwrap();
    /// assert_eq!(limits.max_requests, 7);
    /// assert_eq!(limits.max_retries, u32::MAX, "0 means unset: Istio's default stays");
    /// assert!(limits.retry_budget.is_none());
    /// ```
    pub fn pool_limits(&self) -> Option<ConnectionPoolLimits> {
        if self.connection_pool.is_none() && self.retry_budget.is_none() {
            return None;
        }
        let mut limits = ConnectionPoolLimits {
            retry_budget: self.retry_budget.as_ref().map(|budget| {
                let default = RetryConcurrencyBudget::default();
                RetryConcurrencyBudget {
                    share: budget.percent.map_or(default.share, Fraction::from_percent),
                    min_retry_concurrency: budget
                        .min_retry_concurrency
                        .unwrap_or(default.min_retry_concurrency),
                }
            }),
            ..ConnectionPoolLimits::default()
        };
        let Some(pool) = &self.connection_pool else {
            return Some(limits);
        };
        let set = |target: &mut u32, value: Option<i32>| {
            if let Some(v) = value.filter(|v| *v > 0) {
                *target = v as u32;
            }
        };
        if let Some(tcp) = &pool.tcp {
            set(&mut limits.max_connections, tcp.max_connections);
        }
        if let Some(http) = &pool.http {
            set(
                &mut limits.max_pending_requests,
                http.http1_max_pending_requests,
            );
            set(&mut limits.max_requests, http.http2_max_requests);
            set(&mut limits.max_retries, http.max_retries);
            set(
                &mut limits.max_requests_per_connection,
                http.max_requests_per_connection,
            );
        }
        Some(limits)
    }

    /// The outlier-detection settings, with Istio's defaults for what is unset; `None` without
    /// `outlierDetection`. The deprecated `consecutiveErrors` counts gateway errors only, as
    /// Istio maps it (the 5xx detector is then off unless `consecutive5xxErrors` is set).
    ///
    /// ```
    /// use mesh_proxy::cluster_policy::ClusterPolicy;
    /// use mesh_route::{config::Config, table::RouteTable};
    /// use std::time::Duration;
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: s}\n\
    ///             spec: {hosts: [s], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n\
    ///             ---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: s}\n\
    ///             spec: {host: s, trafficPolicy: {outlierDetection: {consecutive5xxErrors: 3, baseEjectionTime: 1m}}}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let policy = ClusterPolicy::for_cluster(&config, &RouteTable::compile(&config).unwrap().clusters()[0]);
    /// let outlier = policy.outlier_config().unwrap();
    /// assert_eq!(outlier.consecutive_5xx, Some(3));
    /// assert_eq!(outlier.base_ejection_time, Duration::from_secs(60));
    /// assert_eq!(outlier.max_ejection_percent, mesh_core::outlier::OutlierConfig::default().max_ejection_percent);
    /// ```
    pub fn outlier_config(&self) -> Option<OutlierConfig> {
        let od = self.outlier_detection.as_ref()?;
        let defaults = OutlierConfig::default();
        let percent =
            |value: Option<i32>, default: u32| value.map_or(default, |v| v.clamp(0, 100) as u32);
        // The deprecated `consecutiveErrors` counts gateway errors only: Istio turns the 5xx
        // detector off for it, unless `consecutive5xxErrors` is set too.
        let legacy = od.consecutive_errors.filter(|n| *n > 0).map(|n| n as u32);
        let default_5xx = if legacy.is_some() {
            None
        } else {
            defaults.consecutive_5xx
        };
        Some(OutlierConfig {
            consecutive_5xx: od.consecutive_5xx_errors.or(default_5xx),
            consecutive_gateway_errors: od.consecutive_gateway_errors.or(legacy),
            consecutive_local_origin_failures: od
                .consecutive_local_origin_failures
                .or(defaults.consecutive_local_origin_failures),
            split_external_local_origin_errors: od
                .split_external_local_origin_errors
                .unwrap_or(false),
            interval: od.interval.map_or(defaults.interval, |d| d.get()),
            base_ejection_time: od
                .base_ejection_time
                .map_or(defaults.base_ejection_time, |d| d.get()),
            max_ejection_percent: percent(od.max_ejection_percent, defaults.max_ejection_percent),
            min_health_percent: percent(od.min_health_percent, defaults.min_health_percent),
            max_ejection_time: defaults.max_ejection_time,
        })
    }
}

/// The DestinationRules whose host is `host`, in load order.
fn rules_for<'c>(
    config: &'c Config,
    host: &'c str,
) -> impl Iterator<Item = &'c Resource<DestinationRule>> {
    config
        .destination_rules
        .iter()
        .filter(move |dr| canonical_host(&dr.spec.host, dr.meta.namespace.as_deref()) == host)
}

/// The first DestinationRule whose host is `host` (its top-level policy is the one used).
fn destination_rule<'c>(
    config: &'c Config,
    host: &'c str,
) -> Option<&'c Resource<DestinationRule>> {
    rules_for(config, host).next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_route::table::RouteTable;

    /// The policy of the first cluster the routes of `yaml` send to.
    fn policy_of_first_cluster(yaml: &str) -> ClusterPolicy {
        let config = match Config::from_yaml_str(yaml) {
            Ok(loaded) => loaded.config,
            Err(problems) => panic!("{problems:#?}"),
        };
        let table = RouteTable::compile(&config).unwrap();
        ClusterPolicy::for_cluster(&config, &table.clusters()[0])
    }

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
    connectionPool: {http: {http2MaxRequests: 7, maxRetries: 2}}
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
        let policy = policy_of_first_cluster(yaml);
        assert_eq!(policy.load_balancer, Some(SimpleLb::RoundRobin));
        let limits = policy.pool_limits().unwrap();
        assert_eq!(limits.max_requests, 7);
        assert_eq!(limits.max_retries, 2);
        assert_eq!(
            limits.max_connections,
            ConnectionPoolLimits::default().max_connections
        );
        assert!(policy.outlier_config().is_none());
    }

    #[test]
    fn subset_defined_in_a_later_rule_keeps_its_policy() {
        let yaml = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: s, namespace: ns}
spec:
  hosts: [s]
  resolution: STATIC
  ports: [{number: 80, name: http}]
  endpoints: [{address: 127.0.0.1, labels: {v: "2"}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: s-main, namespace: ns}
spec:
  host: s
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: s-two, namespace: ns}
spec:
  host: s
  subsets:
  - name: two
    labels: {v: "2"}
    trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: s, namespace: ns}
spec:
  hosts: [s]
  http:
  - route: [{destination: {host: s, subset: two}}]
"#;
        let policy = policy_of_first_cluster(yaml);
        assert_eq!(policy.load_balancer, Some(SimpleLb::RoundRobin));
    }

    #[test]
    fn a_retry_budget_becomes_the_breakers_with_istios_defaults_and_subset_override() {
        let yaml = |top: &str, subset: &str| {
            format!(
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: s, namespace: ns}}\n\
                 spec: {{hosts: [s], resolution: STATIC, ports: [{{number: 80, name: http}}], endpoints: [{{address: 127.0.0.1, labels: {{v: '1'}}}}]}}\n\
                 ---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: s, namespace: ns}}\n\
                 spec: {{host: s, trafficPolicy: {{{top}}}, subsets: [{{name: one, labels: {{v: '1'}}, trafficPolicy: {{{subset}}}}}]}}\n\
                 ---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: s, namespace: ns}}\n\
                 spec: {{hosts: [s], http: [{{route: [{{destination: {{host: s, subset: one}}}}]}}]}}\n"
            )
        };
        let budget = |top: &str, subset: &str| {
            policy_of_first_cluster(&yaml(top, subset))
                .pool_limits()
                .and_then(|limits| limits.retry_budget)
        };
        // Unset fields take Envoy's defaults (20 %, 3); no pool needed beside it.
        assert_eq!(
            budget("retryBudget: {}", ""),
            Some(RetryConcurrencyBudget::default())
        );
        assert_eq!(
            budget(
                "retryBudget: {percent: 50}",
                "retryBudget: {minRetryConcurrency: 1}"
            ),
            Some(RetryConcurrencyBudget {
                share: Fraction::from_percent(20.0),
                min_retry_concurrency: 1,
            }),
            "the subset's budget replaces the host's whole"
        );
        assert_eq!(
            budget(
                "retryBudget: {percent: 50, minRetryConcurrency: 5}",
                "loadBalancer: {simple: RANDOM}"
            ),
            Some(RetryConcurrencyBudget {
                share: Fraction::from_percent(50.0),
                min_retry_concurrency: 5,
            })
        );
        assert_eq!(budget("loadBalancer: {simple: RANDOM}", ""), None);
    }

    #[test]
    fn the_deprecated_consecutive_errors_counts_gateway_errors_only() {
        let outlier = |detection: &str| {
            let yaml = format!(
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: s}}\n\
                 spec: {{hosts: [s], resolution: STATIC, ports: [{{number: 80, name: http}}], endpoints: [{{address: 127.0.0.1}}]}}\n\
                 ---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: s}}\n\
                 spec: {{host: s, trafficPolicy: {{outlierDetection: {{{detection}}}}}}}\n"
            );
            let config = policy_of_first_cluster(&yaml).outlier_config().unwrap();
            (config.consecutive_5xx, config.consecutive_gateway_errors)
        };
        assert_eq!(outlier("consecutiveErrors: 4"), (None, Some(4)));
        assert_eq!(
            outlier("consecutiveErrors: 4, consecutive5xxErrors: 2"),
            (Some(2), Some(4))
        );
        assert_eq!(
            outlier("consecutiveErrors: 4, consecutiveGatewayErrors: 1"),
            (None, Some(1))
        );
        assert_eq!(outlier("interval: 5s"), (Some(5), None), "Istio's defaults");
    }
}
