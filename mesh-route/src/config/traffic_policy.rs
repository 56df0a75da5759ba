//! Istio's `TrafficPolicy` (from `destination_rule.proto`): load balancing, connection
//! pool limits, outlier detection, client TLS, per-port overrides, tunnelling, PROXY
//! protocol and retry budgets. Used by DestinationRules, their subsets, and (for
//! connection pools) Sidecars.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::duration::Duration;
use super::shared_types::PortSelector;

/// Istio `TrafficPolicy`.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: DestinationRule
/// metadata: {name: catalog}
/// spec:
///   host: catalog
///   trafficPolicy:
///     loadBalancer:
///       simple: LEAST_REQUEST
///       localityLbSetting:
///         distribute: [{from: us-east/*, to: {"us-east/*": 80, "us-west/*": 20}}]
///         failover: [{from: us-east, to: us-west}]
///       warmup: {duration: 30s, minimumPercent: 10}
///     connectionPool:
///       tcp: {maxConnections: 100, connectTimeout: 2s, tcpKeepalive: {probes: 3, time: 60s}}
///       http: {http1MaxPendingRequests: 10, maxRetries: 3, h2UpgradePolicy: UPGRADE, http2KeepAlive: {interval: 10s}}
///     outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}
///     tls: {mode: SIMPLE, sni: catalog.example.com}
///     portLevelSettings:
///     - port: {number: 8443}
///       loadBalancer: {simple: ROUND_ROBIN}
///     tunnel: {protocol: CONNECT, targetHost: catalog.internal, targetPort: 8080}
///     proxyProtocol: {version: V2}
///     retryBudget: {percent: 20, minRetryConcurrency: 3}
/// "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let policy = config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// assert!(policy.outlier_detection.is_some());
/// assert_eq!(policy.port_level_settings.len(), 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficPolicy {
    /// Load-balancing algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection and request limits (circuit breaking).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Passive health checking: eject misbehaving endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS towards the upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
    /// Per-port overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_level_settings: Vec<PortTrafficPolicy>,
    /// Tunnel the connection through a proxy (HTTP CONNECT).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelSettings>,
    /// Send a PROXY protocol header upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Limit concurrent retries to a share of active requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudget>,
}

/// Istio `TrafficPolicy.PortTrafficPolicy`: overrides for one port. Parsed, not enforced yet: loading warns.
///
/// ```
/// use mesh_route::config::{Config, SimpleLb};
///
/// let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// spec:
///   host: catalog
///   trafficPolicy:
///     portLevelSettings:
///     - port: {number: 8443}
///       loadBalancer: {simple: ROUND_ROBIN}
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let policy = loaded.config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// let port = &policy.port_level_settings[0];
/// assert_eq!(port.port.unwrap().number, 8443);
/// assert_eq!(port.load_balancer.as_ref().unwrap().simple, Some(SimpleLb::RoundRobin));
/// assert!(loaded.warnings.iter().any(|w| w.message == "portLevelSettings: parsed, not enforced yet"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortTrafficPolicy {
    /// The port the overrides apply to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
    /// Load-balancing algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection and request limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Passive health checking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS towards the upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
}

/// Istio `LoadBalancerSettings`.
///
/// ```
/// use mesh_route::config::{Config, SimpleLb};
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// # spec:
/// #   host: catalog
/// #   trafficPolicy:
/// #     loadBalancer:
/// #       simple: LEAST_REQUEST
/// #       localityLbSetting:
/// #         distribute: [{from: us-east/*, to: {"us-east/*": 80, "us-west/*": 20}}]
/// #         failover: [{from: us-east, to: us-west}]
/// #       warmup: {duration: 30s, minimumPercent: 10}
/// #     connectionPool:
/// #       tcp: {maxConnections: 100, connectTimeout: 2s, tcpKeepalive: {probes: 3, time: 60s}}
/// #       http: {http1MaxPendingRequests: 10, maxRetries: 3, h2UpgradePolicy: UPGRADE, http2KeepAlive: {interval: 10s}}
/// #     outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}
/// #     tls: {mode: SIMPLE, sni: catalog.example.com}
/// #     portLevelSettings:
/// #     - port: {number: 8443}
/// #       loadBalancer: {simple: ROUND_ROBIN}
/// #     tunnel: {protocol: CONNECT, targetHost: catalog.internal, targetPort: 8080}
/// #     proxyProtocol: {version: V2}
/// #     retryBudget: {percent: 20, minRetryConcurrency: 3}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let policy = config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// let lb = policy.load_balancer.as_ref().unwrap();
/// assert_eq!(lb.simple, Some(SimpleLb::LeastRequest));
/// assert!(lb.consistent_hash.is_none());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerSettings {
    /// A simple algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simple: Option<SimpleLb>,
    /// Session affinity by consistent hashing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistent_hash: Option<ConsistentHashLb>,
    /// Locality weights and failover.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality_lb_setting: Option<LocalityLoadBalancerSetting>,
    /// Deprecated slow-start window (use `warmup`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_duration_secs: Option<Duration>,
    /// Slow start for new endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup: Option<WarmupConfiguration>,
    /// Envoy zone-aware routing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_aware_lb_setting: Option<ZoneAwareLoadBalancerSetting>,
}

/// Istio `LoadBalancerSettings.SimpleLB`.
///
/// ```
/// use mesh_route::config::{Config, SimpleLb};
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// # spec:
/// #   host: catalog
/// #   trafficPolicy:
/// #     loadBalancer:
/// #       simple: LEAST_REQUEST
/// #       localityLbSetting:
/// #         distribute: [{from: us-east/*, to: {"us-east/*": 80, "us-west/*": 20}}]
/// #         failover: [{from: us-east, to: us-west}]
/// #       warmup: {duration: 30s, minimumPercent: 10}
/// #     connectionPool:
/// #       tcp: {maxConnections: 100, connectTimeout: 2s, tcpKeepalive: {probes: 3, time: 60s}}
/// #       http: {http1MaxPendingRequests: 10, maxRetries: 3, h2UpgradePolicy: UPGRADE, http2KeepAlive: {interval: 10s}}
/// #     outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}
/// #     tls: {mode: SIMPLE, sni: catalog.example.com}
/// #     portLevelSettings:
/// #     - port: {number: 8443}
/// #       loadBalancer: {simple: ROUND_ROBIN}
/// #     tunnel: {protocol: CONNECT, targetHost: catalog.internal, targetPort: 8080}
/// #     proxyProtocol: {version: V2}
/// #     retryBudget: {percent: 20, minRetryConcurrency: 3}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let policy = config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// assert_eq!(policy.load_balancer.as_ref().unwrap().simple, Some(SimpleLb::LeastRequest));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SimpleLb {
    /// The proxy's default (least request).
    Unspecified,
    /// Deprecated alias of `LEAST_REQUEST`.
    LeastConn,
    /// Random endpoint.
    Random,
    /// Forward to the original destination address.
    Passthrough,
    /// Round robin.
    RoundRobin,
    /// Power of two choices, fewest active requests.
    LeastRequest,
}

/// Istio `LoadBalancerSettings.ConsistentHashLB`. Parsed, not enforced yet: loading warns.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// spec:
///   host: catalog
///   trafficPolicy:
///     loadBalancer:
///       consistentHash:
///         httpCookie: {name: session, ttl: 3600s, attributes: [{name: SameSite, value: Strict}]}
///         ringHash: {minimumRingSize: 1024}
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let policy = loaded.config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// let hash = policy.load_balancer.as_ref().unwrap().consistent_hash.as_ref().unwrap();
/// assert_eq!(hash.http_cookie.as_ref().unwrap().name, "session");
/// assert!(hash.http_header_name.is_none());
/// assert!(loaded.warnings.iter().any(|w| w.message == "consistentHash: parsed, not enforced yet"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsistentHashLb {
    /// Hash a request header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_header_name: Option<String>,
    /// Hash a cookie (generated when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_cookie: Option<HttpCookie>,
    /// Hash the source IP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_source_ip: Option<bool>,
    /// Hash a query parameter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_query_parameter_name: Option<String>,
    /// Ring hash algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring_hash: Option<RingHash>,
    /// Maglev algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maglev: Option<MagLev>,
    /// Deprecated ring size (use `ringHash.minimumRingSize`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<u64>,
}

/// Istio `ConsistentHashLB.HTTPCookie`. Parsed, not enforced yet: loading warns.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// spec:
///   host: catalog
///   trafficPolicy:
///     loadBalancer:
///       consistentHash:
///         httpCookie: {name: session, ttl: 3600s}
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let policy = loaded.config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// let hash = policy.load_balancer.as_ref().unwrap().consistent_hash.as_ref().unwrap();
/// let cookie = hash.http_cookie.as_ref().unwrap();
/// assert_eq!(cookie.ttl.unwrap().get().as_secs(), 3600);
/// assert!(loaded.warnings.iter().any(|w| w.message == "consistentHash: parsed, not enforced yet"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCookie {
    /// Cookie name.
    pub name: String,
    /// Cookie path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Lifetime of a generated cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
    /// Extra cookie attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<HttpCookieAttribute>,
}

/// Istio `ConsistentHashLB.HTTPCookie.Attribute`. Parsed, not enforced yet: loading warns.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// spec:
///   host: catalog
///   trafficPolicy:
///     loadBalancer:
///       consistentHash:
///         httpCookie: {name: session, attributes: [{name: SameSite, value: Strict}]}
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let policy = loaded.config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// let hash = policy.load_balancer.as_ref().unwrap().consistent_hash.as_ref().unwrap();
/// let attribute = &hash.http_cookie.as_ref().unwrap().attributes[0];
/// assert_eq!((attribute.name.as_str(), attribute.value.as_deref()), ("SameSite", Some("Strict")));
/// assert!(loaded.warnings.iter().any(|w| w.message == "consistentHash: parsed, not enforced yet"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCookieAttribute {
    /// Attribute name.
    pub name: String,
    /// Attribute value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Istio `ConsistentHashLB.RingHash`. Parsed, not enforced yet: loading warns.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// spec:
///   host: catalog
///   trafficPolicy:
///     loadBalancer:
///       consistentHash: {httpHeaderName: x-user, ringHash: {minimumRingSize: 1024}}
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let policy = loaded.config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// let hash = policy.load_balancer.as_ref().unwrap().consistent_hash.as_ref().unwrap();
/// assert_eq!(hash.ring_hash.as_ref().unwrap().minimum_ring_size, Some(1024));
/// assert!(loaded.warnings.iter().any(|w| w.message == "consistentHash: parsed, not enforced yet"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RingHash {
    /// Minimum number of virtual nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<u64>,
}

/// Istio `ConsistentHashLB.MagLev`. Parsed, not enforced yet: loading warns.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// spec:
///   host: catalog
///   trafficPolicy:
///     loadBalancer:
///       consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 65537}}
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let policy = loaded.config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// let hash = policy.load_balancer.as_ref().unwrap().consistent_hash.as_ref().unwrap();
/// assert_eq!(hash.maglev.as_ref().unwrap().table_size, Some(65537));
/// assert!(loaded.warnings.iter().any(|w| w.message == "consistentHash: parsed, not enforced yet"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MagLev {
    /// Lookup table size (a prime).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_size: Option<u64>,
}

/// Istio `LocalityLoadBalancerSetting`. Parsed, not enforced yet: loading warns.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// spec:
///   host: catalog
///   trafficPolicy:
///     loadBalancer:
///       localityLbSetting:
///         distribute: [{from: us-east/*, to: {"us-east/*": 80, "us-west/*": 20}}]
///         failover: [{from: us-east, to: us-west}]
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let policy = loaded.config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// let lb = policy.load_balancer.as_ref().unwrap();
/// let locality = lb.locality_lb_setting.as_ref().unwrap();
/// assert_eq!((locality.distribute.len(), locality.failover.len()), (1, 1));
/// assert!(loaded.warnings.iter().any(|w| w.message == "localityLbSetting: parsed, not enforced yet"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalityLoadBalancerSetting {
    /// Weighted distribution between localities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distribute: Vec<LocalityDistribute>,
    /// Region failover order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<LocalityFailover>,
    /// Label-based failover priority.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover_priority: Vec<String>,
    /// Enable or disable locality load balancing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Istio `LocalityLoadBalancerSetting.Distribute`. Parsed, not enforced yet: loading warns.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// spec:
///   host: catalog
///   trafficPolicy:
///     loadBalancer:
///       localityLbSetting:
///         distribute: [{from: us-east/*, to: {"us-east/*": 80, "us-west/*": 20}}]
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let policy = loaded.config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// let lb = policy.load_balancer.as_ref().unwrap();
/// let distribute = &lb.locality_lb_setting.as_ref().unwrap().distribute[0];
/// assert_eq!(distribute.from, "us-east/*");
/// assert_eq!(distribute.to["us-west/*"], 20);
/// assert!(loaded.warnings.iter().any(|w| w.message == "localityLbSetting: parsed, not enforced yet"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalityDistribute {
    /// Originating locality (`region/zone/sub-zone`, wildcards allowed).
    #[serde(default)]
    pub from: String,
    /// Destination localities and their weights.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub to: BTreeMap<String, u32>,
}

/// Istio `LocalityLoadBalancerSetting.Failover`. Parsed, not enforced yet: loading warns.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// spec:
///   host: catalog
///   trafficPolicy:
///     loadBalancer:
///       localityLbSetting:
///         failover: [{from: us-east, to: us-west}]
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let policy = loaded.config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// let lb = policy.load_balancer.as_ref().unwrap();
/// let failover = &lb.locality_lb_setting.as_ref().unwrap().failover[0];
/// assert_eq!((failover.from.as_str(), failover.to.as_str()), ("us-east", "us-west"));
/// assert!(loaded.warnings.iter().any(|w| w.message == "localityLbSetting: parsed, not enforced yet"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalityFailover {
    /// Originating region.
    #[serde(default)]
    pub from: String,
    /// Region to fail over to.
    #[serde(default)]
    pub to: String,
}

/// Istio `WarmupConfiguration`: slow start for new endpoints. Parsed, not enforced yet: loading warns.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// spec:
///   host: catalog
///   trafficPolicy:
///     loadBalancer:
///       warmup: {duration: 30s, minimumPercent: 10}
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let policy = loaded.config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// let lb = policy.load_balancer.as_ref().unwrap();
/// let warmup = lb.warmup.as_ref().unwrap();
/// assert_eq!(warmup.duration.unwrap().get().as_secs(), 30);
/// assert_eq!(warmup.minimum_percent, Some(10.0));
/// assert!(loaded.warnings.iter().any(|w| w.message == "warmup: parsed, not enforced yet"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WarmupConfiguration {
    /// Length of the warm-up window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    /// Minimum share of traffic at the start of the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_percent: Option<f64>,
    /// Curve of the traffic increase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggression: Option<f64>,
}

/// Istio `ZoneAwareLoadBalancerSetting`.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: cart}\nspec: {host: cart, trafficPolicy: {loadBalancer: {zoneAwareLbSetting: {enabled: true, minClusterSize: 3}}}}\n";
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let lb = loaded.config.destination_rules[0].spec.traffic_policy.as_ref().unwrap().load_balancer.as_ref().unwrap();
/// assert_eq!(lb.zone_aware_lb_setting.as_ref().unwrap().min_cluster_size, Some(3));
/// assert!(!loaded.warnings.is_empty()); // parsed, not enforced yet
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ZoneAwareLoadBalancerSetting {
    /// Enable zone-aware routing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Region failover order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<LocalityFailover>,
    /// Label-based failover priority.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover_priority: Vec<String>,
    /// Minimum hosts in the local region (default 6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_cluster_size: Option<u32>,
}

/// Istio `ConnectionPoolSettings`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// # spec:
/// #   host: catalog
/// #   trafficPolicy:
/// #     loadBalancer:
/// #       simple: LEAST_REQUEST
/// #       localityLbSetting:
/// #         distribute: [{from: us-east/*, to: {"us-east/*": 80, "us-west/*": 20}}]
/// #         failover: [{from: us-east, to: us-west}]
/// #       warmup: {duration: 30s, minimumPercent: 10}
/// #     connectionPool:
/// #       tcp: {maxConnections: 100, connectTimeout: 2s, tcpKeepalive: {probes: 3, time: 60s}}
/// #       http: {http1MaxPendingRequests: 10, maxRetries: 3, h2UpgradePolicy: UPGRADE, http2KeepAlive: {interval: 10s}}
/// #     outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}
/// #     tls: {mode: SIMPLE, sni: catalog.example.com}
/// #     portLevelSettings:
/// #     - port: {number: 8443}
/// #       loadBalancer: {simple: ROUND_ROBIN}
/// #     tunnel: {protocol: CONNECT, targetHost: catalog.internal, targetPort: 8080}
/// #     proxyProtocol: {version: V2}
/// #     retryBudget: {percent: 20, minRetryConcurrency: 3}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let policy = config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// let pool = policy.connection_pool.as_ref().unwrap();
/// assert!(pool.tcp.is_some() && pool.http.is_some());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionPoolSettings {
    /// TCP-level limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpSettings>,
    /// HTTP-level limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSettings>,
}

/// Istio `ConnectionPoolSettings.TCPSettings`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// # spec:
/// #   host: catalog
/// #   trafficPolicy:
/// #     loadBalancer:
/// #       simple: LEAST_REQUEST
/// #       localityLbSetting:
/// #         distribute: [{from: us-east/*, to: {"us-east/*": 80, "us-west/*": 20}}]
/// #         failover: [{from: us-east, to: us-west}]
/// #       warmup: {duration: 30s, minimumPercent: 10}
/// #     connectionPool:
/// #       tcp: {maxConnections: 100, connectTimeout: 2s, tcpKeepalive: {probes: 3, time: 60s}}
/// #       http: {http1MaxPendingRequests: 10, maxRetries: 3, h2UpgradePolicy: UPGRADE, http2KeepAlive: {interval: 10s}}
/// #     outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}
/// #     tls: {mode: SIMPLE, sni: catalog.example.com}
/// #     portLevelSettings:
/// #     - port: {number: 8443}
/// #       loadBalancer: {simple: ROUND_ROBIN}
/// #     tunnel: {protocol: CONNECT, targetHost: catalog.internal, targetPort: 8080}
/// #     proxyProtocol: {version: V2}
/// #     retryBudget: {percent: 20, minRetryConcurrency: 3}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let policy = config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// let pool = policy.connection_pool.as_ref().unwrap();
/// let tcp = pool.tcp.as_ref().unwrap();
/// assert_eq!(tcp.max_connections, Some(100));
/// assert_eq!(tcp.connect_timeout.unwrap().get().as_secs(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpSettings {
    /// Maximum connections to the destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i32>,
    /// TCP connect timeout (Istio default 10s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// TCP keepalive probes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Maximum connection lifetime.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connection_duration: Option<Duration>,
    /// Idle timeout (default 1h).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
}

/// Istio `ConnectionPoolSettings.TCPSettings.TcpKeepalive`. Parsed, not enforced yet: loading warns.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// spec:
///   host: catalog
///   trafficPolicy:
///     connectionPool:
///       tcp: {tcpKeepalive: {probes: 3, time: 60s}}
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let policy = loaded.config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// let keepalive = policy.connection_pool.as_ref().unwrap().tcp.as_ref().unwrap().tcp_keepalive.as_ref().unwrap();
/// assert_eq!(keepalive.probes, Some(3));
/// assert_eq!(keepalive.time.unwrap().get().as_secs(), 60);
/// assert!(loaded.warnings.iter().any(|w| w.message == "tcpKeepalive: parsed, not enforced yet"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpKeepalive {
    /// Unanswered probes before the connection is dead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probes: Option<u32>,
    /// Idle time before probes start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<Duration>,
    /// Interval between probes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
}

/// Istio `ConnectionPoolSettings.HTTPSettings`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// # spec:
/// #   host: catalog
/// #   trafficPolicy:
/// #     loadBalancer:
/// #       simple: LEAST_REQUEST
/// #       localityLbSetting:
/// #         distribute: [{from: us-east/*, to: {"us-east/*": 80, "us-west/*": 20}}]
/// #         failover: [{from: us-east, to: us-west}]
/// #       warmup: {duration: 30s, minimumPercent: 10}
/// #     connectionPool:
/// #       tcp: {maxConnections: 100, connectTimeout: 2s, tcpKeepalive: {probes: 3, time: 60s}}
/// #       http: {http1MaxPendingRequests: 10, maxRetries: 3, h2UpgradePolicy: UPGRADE, http2KeepAlive: {interval: 10s}}
/// #     outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}
/// #     tls: {mode: SIMPLE, sni: catalog.example.com}
/// #     portLevelSettings:
/// #     - port: {number: 8443}
/// #       loadBalancer: {simple: ROUND_ROBIN}
/// #     tunnel: {protocol: CONNECT, targetHost: catalog.internal, targetPort: 8080}
/// #     proxyProtocol: {version: V2}
/// #     retryBudget: {percent: 20, minRetryConcurrency: 3}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let policy = config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// let pool = policy.connection_pool.as_ref().unwrap();
/// let http = pool.http.as_ref().unwrap();
/// assert_eq!((http.http1_max_pending_requests, http.max_retries), (Some(10), Some(3)));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSettings {
    /// Maximum requests waiting for a connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http1_max_pending_requests: Option<i32>,
    /// Maximum concurrent requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http2_max_requests: Option<i32>,
    /// Requests per connection (1 disables keep-alive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<i32>,
    /// Maximum concurrent retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i32>,
    /// Idle timeout of upstream connections (default 1h).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
    /// Upgrade HTTP/1.1 connections to HTTP/2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h2_upgrade_policy: Option<H2UpgradePolicy>,
    /// Use the downstream's protocol upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_client_protocol: Option<bool>,
    /// Maximum concurrent HTTP/2 streams per connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<i32>,
    /// HTTP/2 PING keepalive on upstream connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http2_keep_alive: Option<ConnectionKeepalive>,
}

/// Istio `ConnectionPoolSettings.HTTPSettings.ConnectionKeepalive` (HTTP/2 PING). Parsed, not enforced yet: loading warns.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// spec:
///   host: catalog
///   trafficPolicy:
///     connectionPool:
///       http: {http2KeepAlive: {interval: 10s}}
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let policy = loaded.config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// let keepalive = policy.connection_pool.as_ref().unwrap().http.as_ref().unwrap().http2_keep_alive.as_ref().unwrap();
/// assert_eq!(keepalive.interval.unwrap().get().as_secs(), 10);
/// assert!(keepalive.timeout.is_none());
/// assert!(loaded.warnings.iter().any(|w| w.message == "http2KeepAlive: parsed, not enforced yet"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionKeepalive {
    /// Interval between PINGs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Time to wait for a PING answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// Istio `ConnectionPoolSettings.HTTPSettings.H2UpgradePolicy`. Parsed, not enforced yet: loading warns.
///
/// ```
/// use mesh_route::config::{Config, H2UpgradePolicy};
///
/// let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// spec:
///   host: catalog
///   trafficPolicy:
///     connectionPool:
///       http: {h2UpgradePolicy: UPGRADE}
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let policy = loaded.config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// let pool = policy.connection_pool.as_ref().unwrap();
/// assert_eq!(pool.http.as_ref().unwrap().h2_upgrade_policy, Some(H2UpgradePolicy::Upgrade));
/// assert!(loaded.warnings.iter().any(|w| w.message == "h2UpgradePolicy: parsed, not enforced yet"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum H2UpgradePolicy {
    /// The mesh-wide default.
    Default,
    /// Keep HTTP/1.1.
    DoNotUpgrade,
    /// Upgrade to HTTP/2.
    Upgrade,
}

/// Istio `OutlierDetection`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// # spec:
/// #   host: catalog
/// #   trafficPolicy:
/// #     loadBalancer:
/// #       simple: LEAST_REQUEST
/// #       localityLbSetting:
/// #         distribute: [{from: us-east/*, to: {"us-east/*": 80, "us-west/*": 20}}]
/// #         failover: [{from: us-east, to: us-west}]
/// #       warmup: {duration: 30s, minimumPercent: 10}
/// #     connectionPool:
/// #       tcp: {maxConnections: 100, connectTimeout: 2s, tcpKeepalive: {probes: 3, time: 60s}}
/// #       http: {http1MaxPendingRequests: 10, maxRetries: 3, h2UpgradePolicy: UPGRADE, http2KeepAlive: {interval: 10s}}
/// #     outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}
/// #     tls: {mode: SIMPLE, sni: catalog.example.com}
/// #     portLevelSettings:
/// #     - port: {number: 8443}
/// #       loadBalancer: {simple: ROUND_ROBIN}
/// #     tunnel: {protocol: CONNECT, targetHost: catalog.internal, targetPort: 8080}
/// #     proxyProtocol: {version: V2}
/// #     retryBudget: {percent: 20, minRetryConcurrency: 3}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let policy = config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// let outlier = policy.outlier_detection.as_ref().unwrap();
/// assert_eq!(outlier.consecutive_5xx_errors, Some(5));
/// assert_eq!(outlier.base_ejection_time.unwrap().get().as_secs(), 30);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlierDetection {
    /// Deprecated: use `consecutive5xxErrors` / `consecutiveGatewayErrors`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_errors: Option<i32>,
    /// Count local-origin failures separately.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_external_local_origin_errors: Option<bool>,
    /// Local-origin failures before ejection (split mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_local_origin_failures: Option<u32>,
    /// 502/503/504 responses before ejection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_errors: Option<u32>,
    /// 5xx responses before ejection (default 5; 0 disables).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx_errors: Option<u32>,
    /// Sweep interval (default 10s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Base ejection time (default 30s), multiplied by the ejection count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<Duration>,
    /// Maximum share of endpoints ejected (default 10%).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<i32>,
    /// Panic threshold (default 0: panic mode off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_health_percent: Option<i32>,
}

/// Istio `ClientTLSSettings`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// # spec:
/// #   host: catalog
/// #   trafficPolicy:
/// #     loadBalancer:
/// #       simple: LEAST_REQUEST
/// #       localityLbSetting:
/// #         distribute: [{from: us-east/*, to: {"us-east/*": 80, "us-west/*": 20}}]
/// #         failover: [{from: us-east, to: us-west}]
/// #       warmup: {duration: 30s, minimumPercent: 10}
/// #     connectionPool:
/// #       tcp: {maxConnections: 100, connectTimeout: 2s, tcpKeepalive: {probes: 3, time: 60s}}
/// #       http: {http1MaxPendingRequests: 10, maxRetries: 3, h2UpgradePolicy: UPGRADE, http2KeepAlive: {interval: 10s}}
/// #     outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}
/// #     tls: {mode: SIMPLE, sni: catalog.example.com}
/// #     portLevelSettings:
/// #     - port: {number: 8443}
/// #       loadBalancer: {simple: ROUND_ROBIN}
/// #     tunnel: {protocol: CONNECT, targetHost: catalog.internal, targetPort: 8080}
/// #     proxyProtocol: {version: V2}
/// #     retryBudget: {percent: 20, minRetryConcurrency: 3}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let policy = config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// let tls = policy.tls.as_ref().unwrap();
/// assert_eq!(tls.sni.as_deref(), Some("catalog.example.com"));
/// assert!(tls.client_certificate.is_none());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientTlsSettings {
    /// TLS mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<ClientTlsMode>,
    /// Client certificate file (MUTUAL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// Client private key file (MUTUAL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// CA bundle to verify the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    /// Secret holding the certificates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// Accepted server SANs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// SNI to send.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Skip server certificate verification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// Certificate revocation list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_crl: Option<String>,
}

/// Istio `ClientTLSSettings.TLSmode`.
///
/// ```
/// use mesh_route::config::{ClientTlsMode, Config};
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// # spec:
/// #   host: catalog
/// #   trafficPolicy:
/// #     loadBalancer:
/// #       simple: LEAST_REQUEST
/// #       localityLbSetting:
/// #         distribute: [{from: us-east/*, to: {"us-east/*": 80, "us-west/*": 20}}]
/// #         failover: [{from: us-east, to: us-west}]
/// #       warmup: {duration: 30s, minimumPercent: 10}
/// #     connectionPool:
/// #       tcp: {maxConnections: 100, connectTimeout: 2s, tcpKeepalive: {probes: 3, time: 60s}}
/// #       http: {http1MaxPendingRequests: 10, maxRetries: 3, h2UpgradePolicy: UPGRADE, http2KeepAlive: {interval: 10s}}
/// #     outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}
/// #     tls: {mode: SIMPLE, sni: catalog.example.com}
/// #     portLevelSettings:
/// #     - port: {number: 8443}
/// #       loadBalancer: {simple: ROUND_ROBIN}
/// #     tunnel: {protocol: CONNECT, targetHost: catalog.internal, targetPort: 8080}
/// #     proxyProtocol: {version: V2}
/// #     retryBudget: {percent: 20, minRetryConcurrency: 3}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let policy = config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// assert_eq!(policy.tls.as_ref().unwrap().mode, Some(ClientTlsMode::Simple));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientTlsMode {
    /// Plain text.
    Disable,
    /// TLS, server verified.
    Simple,
    /// Mutual TLS with given certificates.
    Mutual,
    /// Mutual TLS with mesh certificates.
    IstioMutual,
}

/// Istio `TrafficPolicy.TunnelSettings`. Parsed, not enforced yet: loading warns.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// spec:
///   host: catalog
///   trafficPolicy:
///     tunnel: {protocol: CONNECT, targetHost: catalog.internal, targetPort: 8080}
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let policy = loaded.config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// let tunnel = policy.tunnel.as_ref().unwrap();
/// assert_eq!((tunnel.protocol.as_deref(), tunnel.target_host.as_str(), tunnel.target_port), (Some("CONNECT"), "catalog.internal", 8080));
/// assert!(loaded.warnings.iter().any(|w| w.message == "tunnel: parsed, not enforced yet"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TunnelSettings {
    /// `CONNECT` (default) or `POST`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Host to tunnel to.
    #[serde(default)]
    pub target_host: String,
    /// Port to tunnel to.
    #[serde(default)]
    pub target_port: u32,
}

/// Istio `TrafficPolicy.ProxyProtocol`. Parsed, not enforced yet: loading warns.
///
/// ```
/// use mesh_route::config::{Config, ProxyProtocolVersion};
///
/// let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// spec:
///   host: catalog
///   trafficPolicy:
///     proxyProtocol: {version: V2}
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let policy = loaded.config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// assert_eq!(policy.proxy_protocol.as_ref().unwrap().version, Some(ProxyProtocolVersion::V2));
/// assert!(loaded.warnings.iter().any(|w| w.message == "proxyProtocol: parsed, not enforced yet"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyProtocol {
    /// PROXY protocol version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<ProxyProtocolVersion>,
}

/// Istio `TrafficPolicy.ProxyProtocol.VERSION`. Parsed, not enforced yet: loading warns.
///
/// ```
/// use mesh_route::config::{Config, ProxyProtocolVersion};
///
/// let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// spec:
///   host: catalog
///   trafficPolicy:
///     proxyProtocol: {version: V2}
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let policy = loaded.config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// assert_eq!(policy.proxy_protocol.as_ref().unwrap().version, Some(ProxyProtocolVersion::V2));
/// assert!(loaded.warnings.iter().any(|w| w.message == "proxyProtocol: parsed, not enforced yet"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProxyProtocolVersion {
    /// Text header.
    V1,
    /// Binary header.
    V2,
}

/// Istio `TrafficPolicy.RetryBudget`: concurrent retries limited to `percent` of the cluster's
/// outstanding requests, at least `minRetryConcurrency`, as Envoy's retry budget (it replaces
/// `connectionPool.http.maxRetries`). `budgetInterval` is parsed, not enforced yet: loading warns.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: DestinationRule
/// # metadata: {name: catalog}
/// spec:
///   host: catalog
///   trafficPolicy:
///     retryBudget: {percent: 20, minRetryConcurrency: 3}
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let policy = loaded.config.destination_rules[0].spec.traffic_policy.as_ref().unwrap();
/// let budget = policy.retry_budget.as_ref().unwrap();
/// assert_eq!((budget.percent, budget.min_retry_concurrency), (Some(20.0), Some(3)));
/// assert!(loaded.warnings.iter().all(|w| !w.message.contains("retryBudget")), "{:?}", loaded.warnings);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBudget {
    /// Share of active requests that may be retries (default 20%).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// Retries always allowed (default 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_retry_concurrency: Option<u32>,
    /// Window over which requests are counted (default 0: only active requests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_interval: Option<Duration>,
}
