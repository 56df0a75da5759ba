//! Istio's admission rules for a `TrafficPolicy` (`validateOutlierDetection` and
//! `validateConnectionPool` in `pkg/config/validation`): timeouts, intervals and ejection
//! times of at least 1ms, percentages in 0-100, and limits and counts that are not
//! negative. The top-level policy of a DestinationRule, each subset's policy and every
//! `portLevelSettings` entry of either are checked alike.

use super::checks::{at_least_1ms, not_negative, percent_0_100};
use super::diagnostic::{Reporter, join_path};
use super::traffic_policy::{
    ConnectionPoolSettings, HttpSettings, OutlierDetection, TcpSettings, TrafficPolicy,
};

/// Checks `policy`, found at `at` (`trafficPolicy`, `subsets[1].trafficPolicy`), and each
/// of its `portLevelSettings`.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: DestinationRule
/// metadata: {name: catalog, namespace: shop}
/// spec:
///   host: catalog
///   subsets:
///   - name: v2
///     labels: {version: v2}
///     trafficPolicy: {outlierDetection: {baseEjectionTime: 0s}}
/// "#;
/// // An ejected endpoint would never come back: loading fails.
/// let errors = Config::from_yaml_str(yaml).unwrap_err();
/// let error = errors.iter().find(|d| d.is_error()).unwrap();
/// assert_eq!(
///     error.to_string(),
///     "error: <inline> (document 1) DestinationRule shop/catalog: \
///      subsets[0].trafficPolicy.outlierDetection.baseEjectionTime: \
///      baseEjectionTime must be at least 1ms, got 0s",
/// );
/// ```
pub(crate) fn validate_traffic_policy(policy: &TrafficPolicy, at: &str, r: &mut Reporter<'_>) {
    let (outlier, pool) = (&policy.outlier_detection, &policy.connection_pool);
    validate_limits(outlier.as_ref(), pool.as_ref(), at, r);
    if let Some(budget) = &policy.retry_budget {
        percent_0_100(budget.percent, &join_path(at, "retryBudget"), "percent", r);
    }
    for (i, port) in policy.port_level_settings.iter().enumerate() {
        let (outlier, pool) = (&port.outlier_detection, &port.connection_pool);
        let at = format!("{at}.portLevelSettings[{i}]");
        validate_limits(outlier.as_ref(), pool.as_ref(), &at, r);
    }
}

/// The outlier detection and connection pool of a policy, or of one of its ports.
fn validate_limits(
    outlier: Option<&OutlierDetection>,
    pool: Option<&ConnectionPoolSettings>,
    at: &str,
    r: &mut Reporter<'_>,
) {
    if let Some(outlier) = outlier {
        validate_outlier_detection(outlier, &join_path(at, "outlierDetection"), r);
    }
    if let Some(pool) = pool {
        let at = join_path(at, "connectionPool");
        if let Some(tcp) = &pool.tcp {
            validate_tcp(tcp, &join_path(&at, "tcp"), r);
        }
        if let Some(http) = &pool.http {
            validate_http(http, &join_path(&at, "http"), r);
        }
    }
}

/// A zero `interval` or `baseEjectionTime` would sweep constantly or never bring an
/// ejected endpoint back; percentages outside 0-100 mean nothing.
fn validate_outlier_detection(outlier: &OutlierDetection, at: &str, r: &mut Reporter<'_>) {
    // The only count that is signed (the deprecated `consecutiveErrors`).
    not_negative(outlier.consecutive_errors, at, "consecutiveErrors", r);
    at_least_1ms(outlier.interval, at, "interval", r);
    at_least_1ms(outlier.base_ejection_time, at, "baseEjectionTime", r);
    percent_0_100(outlier.max_ejection_percent, at, "maxEjectionPercent", r);
    percent_0_100(outlier.min_health_percent, at, "minHealthPercent", r);
}

/// A zero `connectTimeout` fails every connection at once. `idleTimeout: 0s` is valid
/// here: it turns the TCP idle timeout off (Istio skips values under 1ms).
fn validate_tcp(tcp: &TcpSettings, at: &str, r: &mut Reporter<'_>) {
    not_negative(tcp.max_connections, at, "maxConnections", r);
    at_least_1ms(tcp.connect_timeout, at, "connectTimeout", r);
    at_least_1ms(tcp.max_connection_duration, at, "maxConnectionDuration", r);
    if let Some(keepalive) = &tcp.tcp_keepalive {
        let at = join_path(at, "tcpKeepalive");
        at_least_1ms(keepalive.time, &at, "time", r);
        at_least_1ms(keepalive.interval, &at, "interval", r);
    }
}

/// Request limits are signed in Istio's API; only `idleTimeout` is a duration checked here.
fn validate_http(http: &HttpSettings, at: &str, r: &mut Reporter<'_>) {
    let limits = [
        ("http1MaxPendingRequests", http.http1_max_pending_requests),
        ("http2MaxRequests", http.http2_max_requests),
        ("maxRequestsPerConnection", http.max_requests_per_connection),
        ("maxRetries", http.max_retries),
        ("maxConcurrentStreams", http.max_concurrent_streams),
    ];
    for (name, value) in limits {
        not_negative(value, at, name, r);
    }
    at_least_1ms(http.idle_timeout, at, "idleTimeout", r);
}
