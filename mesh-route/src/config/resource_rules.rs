//! Rules for a single DestinationRule, ServiceEntry, Sidecar, Telemetry or mesh-settings
//! document: required fields, port numbers and names, endpoint addresses against the
//! resolution, duplicate subsets, traffic policies (see `traffic_policy_rules`), listener
//! endpoints, Telemetry selectors, sampling, custom tags and tag overrides, and unknown
//! mesh-config fields.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::Resource;
use super::checks::{at_least_1ms, percent_0_100};
use super::destination_rule::DestinationRule;
use super::diagnostic::{Diagnostic, Reporter};
use super::extension_provider::validate_extension_providers;
use super::mesh_config::{
    DISABLE_SHADOW_HOST_SUFFIX, MESH_CONFIG_FIELDS, MeshConfig, PROXY_CONFIG_FIELDS, TRACING_FIELDS,
};
use super::resource::label;
use super::service_entry::{Resolution, ServiceEntry};
use super::shared_types::PolicyTargetReference;
use super::sidecar::{OutboundMode, Sidecar};
use super::suggest::did_you_mean;
use super::telemetry::{ProviderRef, TagOperation, Telemetry, TelemetryCustomTag};
use super::traffic_policy_rules::validate_traffic_policy;

/// Checks one DestinationRule: its host, its subsets, and the traffic policy of the rule
/// and of each subset.
pub(crate) fn validate_destination_rule(dr: &DestinationRule, r: &mut Reporter<'_>) {
    if dr.host.is_empty() {
        r.error("host", "host is required");
    }
    if let Some(policy) = &dr.traffic_policy {
        validate_traffic_policy(policy, "trafficPolicy", r);
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, subset) in dr.subsets.iter().enumerate() {
        if let Some(policy) = &subset.traffic_policy {
            validate_traffic_policy(policy, &format!("subsets[{i}].trafficPolicy"), r);
        }
        if subset.name.is_empty() {
            r.error(format!("subsets[{i}].name"), "subset name is required");
            continue;
        }
        if let Some(first) = seen.insert(&subset.name, i) {
            r.error(
                format!("subsets[{i}].name"),
                format!(
                    "subset \"{}\" is already defined by subsets[{first}]",
                    subset.name
                ),
            );
        }
    }
}

/// Checks one ServiceEntry.
pub(crate) fn validate_service_entry(se: &ServiceEntry, r: &mut Reporter<'_>) {
    if se.hosts.is_empty() {
        r.error("hosts", "at least one host is required");
    }
    for (i, host) in se.hosts.iter().enumerate() {
        if host.is_empty() || host == "*" {
            r.error(
                format!("hosts[{i}]"),
                format!("invalid host \"{host}\": a ServiceEntry host must be a name"),
            );
        }
    }
    validate_ports(se, r);
    let resolution = se.resolution_or_default();
    match resolution {
        Resolution::None if !se.endpoints.is_empty() => r.error(
            "endpoints",
            "endpoints are not allowed with resolution NONE (the default); use STATIC or DNS",
        ),
        Resolution::Static if se.endpoints.is_empty() && se.workload_selector.is_none() => {
            r.warning(
                "endpoints",
                "resolution STATIC without endpoints: the service has no endpoints",
            );
        }
        Resolution::Dns if se.endpoints.is_empty() => {
            for (i, host) in se.hosts.iter().enumerate() {
                if host.starts_with('*') {
                    r.error(
                        format!("hosts[{i}]"),
                        "wildcard hosts cannot be resolved with DNS; add endpoints or use NONE",
                    );
                }
            }
        }
        Resolution::DnsRoundRobin if se.endpoints.len() > 1 => {
            r.error(
                "endpoints",
                "resolution DNS_ROUND_ROBIN allows at most one endpoint",
            );
        }
        _ => {}
    }
    if se.workload_selector.is_some() && !se.endpoints.is_empty() {
        r.error(
            "workloadSelector",
            "workloadSelector and endpoints cannot both be set",
        );
    }
    let port_names: Vec<&str> = se.ports.iter().map(|p| p.name.as_str()).collect();
    for (i, endpoint) in se.endpoints.iter().enumerate() {
        let at = format!("endpoints[{i}]");
        let address = endpoint.address.as_str();
        if address.is_empty() {
            if endpoint.network.is_none() {
                r.error(format!("{at}.address"), "address is required");
            }
        } else if resolution == Resolution::Static
            && address.parse::<IpAddr>().is_err()
            && !address.starts_with("unix://")
        {
            r.error(
                format!("{at}.address"),
                format!("\"{address}\" is not an IP address, as resolution STATIC requires (use DNS for names)"),
            );
        }
        for (name, port) in &endpoint.ports {
            if !port_names.contains(&name.as_str()) {
                r.error(
                    format!("{at}.ports.{name}"),
                    format!(
                        "port name \"{name}\" is not declared by the ServiceEntry{}",
                        did_you_mean(name, port_names.iter().copied())
                    ),
                );
            }
            if !(1..=65535).contains(port) {
                r.error(
                    format!("{at}.ports.{name}"),
                    format!("port {port} is not in 1-65535"),
                );
            }
        }
    }
}

fn validate_ports(se: &ServiceEntry, r: &mut Reporter<'_>) {
    let mut numbers = BTreeMap::new();
    let mut names = BTreeMap::new();
    for (i, port) in se.ports.iter().enumerate() {
        let at = format!("ports[{i}]");
        if !(1..=65535).contains(&port.number) {
            r.error(
                format!("{at}.number"),
                format!("port {} is not in 1-65535", port.number),
            );
        } else if let Some(first) = numbers.insert(port.number, i) {
            r.error(
                format!("{at}.number"),
                format!("port {} is already declared by ports[{first}]", port.number),
            );
        }
        if port.name.is_empty() {
            r.error(format!("{at}.name"), "port name is required");
        } else if let Some(first) = names.insert(port.name.as_str(), i) {
            r.error(
                format!("{at}.name"),
                format!(
                    "port name \"{}\" is already used by ports[{first}]",
                    port.name
                ),
            );
        }
        if let Some(target) = port.target_port
            && !(1..=65535).contains(&target)
        {
            r.error(
                format!("{at}.targetPort"),
                format!("port {target} is not in 1-65535"),
            );
        }
    }
}

/// Checks one Sidecar.
pub(crate) fn validate_sidecar(sidecar: &Sidecar, r: &mut Reporter<'_>) {
    let mut ports = BTreeMap::new();
    for (i, listener) in sidecar.ingress.iter().enumerate() {
        let at = format!("ingress[{i}]");
        let number = listener.port.number;
        if !(1..=65535).contains(&number) {
            r.error(
                format!("{at}.port.number"),
                format!("port {number} is not in 1-65535"),
            );
        } else if let Some(first) = ports.insert(number, i) {
            r.error(
                format!("{at}.port.number"),
                format!("port {number} is already used by ingress[{first}]"),
            );
        }
        if let Some(endpoint) = &listener.default_endpoint
            && !valid_default_endpoint(endpoint)
        {
            r.error(
                format!("{at}.defaultEndpoint"),
                format!(
                    "invalid defaultEndpoint \"{endpoint}\": use 127.0.0.1:PORT, 0.0.0.0:PORT, \
                     [::1]:PORT, [::]:PORT or unix://PATH"
                ),
            );
        }
        if let Some(bind) = &listener.bind
            && bind.parse::<IpAddr>().is_err()
            && !bind.starts_with("unix://")
        {
            r.error(
                format!("{at}.bind"),
                format!("bind \"{bind}\" is not an IP address"),
            );
        }
    }
    let mode = sidecar
        .outbound_traffic_policy
        .as_ref()
        .and_then(|p| p.mode);
    if mode == Some(OutboundMode::AllowAnyDynamicDns) {
        r.error(
            "outboundTrafficPolicy.mode",
            "ALLOW_ANY_DYNAMIC_DNS is only allowed in the mesh config, not on a Sidecar",
        );
    }
}

fn valid_default_endpoint(endpoint: &str) -> bool {
    if let Some(path) = endpoint.strip_prefix("unix://") {
        return !path.is_empty();
    }
    endpoint.parse::<SocketAddr>().is_ok_and(|addr| {
        addr.port() != 0 && (addr.ip().is_loopback() || addr.ip().is_unspecified())
    })
}

/// At most one Sidecar without `workloadSelector` per namespace.
pub(crate) fn validate_sidecar_set(sidecars: &[Resource<Sidecar>], out: &mut Vec<Diagnostic>) {
    let mut defaults: BTreeMap<Option<&str>, &Resource<Sidecar>> = BTreeMap::new();
    for sidecar in sidecars
        .iter()
        .filter(|s| s.spec.workload_selector.is_none())
    {
        if let Some(first) = defaults.insert(sidecar.namespace(), sidecar) {
            let name = label("Sidecar", sidecar);
            Reporter::new(&sidecar.origin, &name, out).error(
                "",
                format!(
                    "more than one Sidecar without workloadSelector in the namespace: {} ({}) \
                     is the other",
                    label("Sidecar", first),
                    first.origin
                ),
            );
        }
    }
}

/// Checks one Telemetry.
pub(crate) fn validate_telemetry(telemetry: &Telemetry, r: &mut Reporter<'_>) {
    let scopes: Vec<&str> = [
        ("selector", telemetry.selector.is_some()),
        ("targetRef", telemetry.target_ref.is_some()),
        ("targetRefs", !telemetry.target_refs.is_empty()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if let [_, second, ..] = scopes.as_slice() {
        r.error(
            second,
            format!(
                "only one of selector, targetRef and targetRefs may be set, found {}",
                scopes.join(" and ")
            ),
        );
    }
    if let Some(target) = &telemetry.target_ref {
        validate_target_ref(target, "targetRef", r);
    }
    for (i, target) in telemetry.target_refs.iter().enumerate() {
        validate_target_ref(target, &format!("targetRefs[{i}]"), r);
    }
    for (i, tracing) in telemetry.tracing.iter().enumerate() {
        let at = format!("tracing[{i}]");
        validate_providers(&tracing.providers, &at, r);
        let sampling = tracing.random_sampling_percentage;
        percent_0_100(sampling, &at, "randomSamplingPercentage", r);
        for (name, tag) in &tracing.custom_tags {
            validate_custom_tag(name, tag, &format!("{at}.customTags"), r);
        }
    }
    for (i, metrics) in telemetry.metrics.iter().enumerate() {
        let at = format!("metrics[{i}]");
        validate_providers(&metrics.providers, &at, r);
        for (j, over) in metrics.overrides.iter().enumerate() {
            let at = format!("{at}.overrides[{j}]");
            if let Some(selector) = &over.match_
                && selector.metric.is_some()
                && selector.custom_metric.is_some()
            {
                r.error(
                    format!("{at}.match.customMetric"),
                    "metric and customMetric cannot both be set",
                );
            }
            for (name, tag) in &over.tag_overrides {
                let at = format!("{at}.tagOverrides.{name}");
                if name.is_empty() {
                    r.error(&at, "tag name is required");
                }
                let has_value = tag.value.as_deref().is_some_and(|v| !v.is_empty());
                match tag.operation_or_default() {
                    TagOperation::Upsert if !has_value => r.error(
                        format!("{at}.value"),
                        "value is required when operation is UPSERT (the default)",
                    ),
                    TagOperation::Remove if has_value => r.error(
                        format!("{at}.value"),
                        "value is not allowed when operation is REMOVE",
                    ),
                    _ => {}
                }
            }
        }
    }
    for (i, logging) in telemetry.access_logging.iter().enumerate() {
        validate_providers(&logging.providers, &format!("accessLogging[{i}]"), r);
    }
}

fn validate_target_ref(target: &PolicyTargetReference, at: &str, r: &mut Reporter<'_>) {
    if target.kind.is_empty() {
        r.error(format!("{at}.kind"), "kind is required");
    }
    if target.name.is_empty() {
        r.error(format!("{at}.name"), "name is required");
    }
}

fn validate_providers(providers: &[ProviderRef], at: &str, r: &mut Reporter<'_>) {
    for (i, provider) in providers.iter().enumerate() {
        if provider.name.is_empty() {
            r.error(
                format!("{at}.providers[{i}].name"),
                "provider name is required",
            );
        }
    }
}

/// A custom tag sets exactly one source, and that source names what it reads.
fn validate_custom_tag(name: &str, tag: &TelemetryCustomTag, at: &str, r: &mut Reporter<'_>) {
    let at = format!("{at}.{name}");
    if name.is_empty() {
        r.error(&at, "tag name is required");
    }
    match tag.kinds_set().as_slice() {
        [] => r.error(
            &at,
            format!("custom tag \"{name}\" needs one of literal, environment, header"),
        ),
        [_] => {}
        several => r.error(
            &at,
            format!(
                "custom tag \"{name}\" sets {}; set exactly one of literal, environment, header",
                several.join(" and ")
            ),
        ),
    }
    if let Some(literal) = &tag.literal
        && literal.value.is_empty()
    {
        r.error(format!("{at}.literal.value"), "value is required");
    }
    if let Some(environment) = &tag.environment
        && environment.name.is_empty()
    {
        r.error(format!("{at}.environment.name"), "name is required");
    }
    if let Some(header) = &tag.header
        && header.name.is_empty()
    {
        r.error(format!("{at}.header.name"), "name is required");
    }
}

/// Checks one mesh-settings document: unknown fields, and values out of range.
pub(crate) fn validate_mesh_config(mesh: &MeshConfig, r: &mut Reporter<'_>) {
    const MESH_TYPED: &[&str] = &[
        "outboundTrafficPolicy",
        "defaultConfig",
        "accessLogFile",
        "accessLogEncoding",
        "accessLogFormat",
        "trustDomain",
        "connectTimeout",
        "defaultHttpRetryPolicy",
        "extensionProviders",
        "defaultProviders",
        "enableTracing",
    ];
    report_other_fields(&mesh.other, "", MESH_CONFIG_FIELDS, MESH_TYPED, r);
    validate_extension_providers(mesh, r);
    if let Some(proxy) = &mesh.default_config {
        report_other_fields(
            &proxy.other,
            "defaultConfig",
            PROXY_CONFIG_FIELDS,
            &["tracing", "proxyMetadata"],
            r,
        );
        for (key, value) in &proxy.proxy_metadata {
            let path = format!("defaultConfig.proxyMetadata.{key}");
            if key != DISABLE_SHADOW_HOST_SUFFIX {
                r.warning(
                    &path,
                    format!("meshConfig.{path} is not supported; ignored"),
                );
            } else if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") {
                r.error(
                    &path,
                    format!("must be \"true\" or \"false\", got {value:?}"),
                );
            }
        }
        if let Some(tracing) = &proxy.tracing {
            let typed = &["sampling", "zipkin", "customTags", "maxPathTagLength"];
            report_other_fields(
                &tracing.other,
                "defaultConfig.tracing",
                TRACING_FIELDS,
                typed,
                r,
            );
            percent_0_100(tracing.sampling, "defaultConfig.tracing", "sampling", r);
            if let Some(zipkin) = &tracing.zipkin
                && zipkin.address.is_empty()
            {
                r.error(
                    "defaultConfig.tracing.zipkin.address",
                    "address is required",
                );
            }
        }
    }
    at_least_1ms(mesh.connect_timeout, "", "connectTimeout", r);
}

/// Known Istio fields of `other` → "not supported; ignored" warnings; others → errors.
fn report_other_fields(
    other: &BTreeMap<String, serde_json::Value>,
    at: &str,
    known: &[&str],
    typed: &[&str],
    r: &mut Reporter<'_>,
) {
    for key in other.keys() {
        let path = if at.is_empty() {
            key.clone()
        } else {
            format!("{at}.{key}")
        };
        if known.contains(&key.as_str()) {
            r.warning(
                &path,
                format!("meshConfig.{path} is not supported; ignored"),
            );
        } else {
            let candidates = known.iter().chain(typed).copied();
            r.error(
                &path,
                format!("unknown field \"{key}\"{}", did_you_mean(key, candidates)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::diagnostic::Origin;

    fn run<T: serde::de::DeserializeOwned + Default>(
        yaml: serde_json::Value,
        f: fn(&T, &mut Reporter<'_>),
    ) -> Vec<Diagnostic> {
        let spec: T = serde_json::from_value(yaml).unwrap_or_default();
        let origin = Origin::new("t.yaml", 0);
        let mut out = Vec::new();
        f(&spec, &mut Reporter::new(&origin, "R t", &mut out));
        out
    }

    #[test]
    fn duplicate_subsets() {
        let out = run::<DestinationRule>(
            serde_json::json!({"host": "a", "subsets": [{"name": "v1"}, {"name": "v1"}]}),
            validate_destination_rule,
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].field.as_deref(), Some("subsets[1].name"));
    }

    /// Every error of a DestinationRule `shop/catalog`, as displayed.
    fn dr_errors(yaml: serde_json::Value) -> Vec<String> {
        let dr: DestinationRule = serde_json::from_value(yaml).expect("a DestinationRule");
        let origin = Origin::new("dr.yaml", 0);
        let mut out = Vec::new();
        validate_destination_rule(
            &dr,
            &mut Reporter::new(&origin, "DestinationRule shop/catalog", &mut out),
        );
        out.iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect()
    }

    /// `error: dr.yaml (document 1) DestinationRule shop/catalog: FIELD: MESSAGE`.
    fn dr_error(field: &str, message: &str) -> String {
        format!("error: dr.yaml (document 1) DestinationRule shop/catalog: {field}: {message}")
    }

    #[test]
    fn outlier_durations_are_at_least_1ms() {
        let out = dr_errors(serde_json::json!({"host": "catalog", "trafficPolicy": {
            "outlierDetection": {"interval": "0s", "baseEjectionTime": "500us"}}}));
        let at = "trafficPolicy.outlierDetection";
        assert_eq!(
            out,
            [
                dr_error(
                    &format!("{at}.interval"),
                    "interval must be at least 1ms, got 0s"
                ),
                dr_error(
                    &format!("{at}.baseEjectionTime"),
                    "baseEjectionTime must be at least 1ms, got 0.0005s"
                ),
            ]
        );
        let out = dr_errors(serde_json::json!({"host": "catalog", "trafficPolicy": {
            "outlierDetection": {"interval": "1ms", "baseEjectionTime": "30s"}}}));
        assert!(out.is_empty(), "{out:#?}");
    }

    #[test]
    fn outlier_percentages_are_in_0_100_and_counts_not_negative() {
        let out = dr_errors(serde_json::json!({"host": "catalog", "trafficPolicy": {
            "outlierDetection": {"maxEjectionPercent": 101, "minHealthPercent": -1,
                "consecutiveErrors": -2}}}));
        let at = "trafficPolicy.outlierDetection";
        assert_eq!(
            out,
            [
                dr_error(
                    &format!("{at}.consecutiveErrors"),
                    "consecutiveErrors must not be negative, got -2"
                ),
                dr_error(
                    &format!("{at}.maxEjectionPercent"),
                    "maxEjectionPercent 101 is not in 0-100"
                ),
                dr_error(
                    &format!("{at}.minHealthPercent"),
                    "minHealthPercent -1 is not in 0-100"
                ),
            ]
        );
        let out = dr_errors(serde_json::json!({"host": "catalog", "trafficPolicy": {
            "outlierDetection": {"maxEjectionPercent": 100, "minHealthPercent": 0,
                "consecutiveErrors": 0}}}));
        assert!(out.is_empty(), "{out:#?}");
    }

    #[test]
    fn connection_pool_durations_are_at_least_1ms_and_limits_not_negative() {
        let out = dr_errors(serde_json::json!({"host": "catalog", "trafficPolicy": {
            "connectionPool": {
                "tcp": {"maxConnections": -1, "connectTimeout": "0s", "idleTimeout": "0s"},
                "http": {"http1MaxPendingRequests": -1, "http2MaxRequests": -1,
                    "maxRequestsPerConnection": -1, "maxRetries": -1, "idleTimeout": "0s"}}}}));
        let tcp = "trafficPolicy.connectionPool.tcp";
        let http = "trafficPolicy.connectionPool.http";
        let negative = |field: &str| {
            dr_error(
                &format!("{http}.{field}"),
                &format!("{field} must not be negative, got -1"),
            )
        };
        assert_eq!(
            out,
            [
                dr_error(
                    &format!("{tcp}.maxConnections"),
                    "maxConnections must not be negative, got -1"
                ),
                dr_error(
                    &format!("{tcp}.connectTimeout"),
                    "connectTimeout must be at least 1ms, got 0s"
                ),
                negative("http1MaxPendingRequests"),
                negative("http2MaxRequests"),
                negative("maxRequestsPerConnection"),
                negative("maxRetries"),
                dr_error(
                    &format!("{http}.idleTimeout"),
                    "idleTimeout must be at least 1ms, got 0s"
                ),
            ]
        );
        // `tcp.idleTimeout: 0s` turns the idle timeout off; zero limits are valid too.
        let out = dr_errors(serde_json::json!({"host": "catalog", "trafficPolicy": {
            "connectionPool": {
                "tcp": {"maxConnections": 0, "connectTimeout": "1ms", "idleTimeout": "0s"},
                "http": {"maxRetries": 0, "idleTimeout": "1s"}}}}));
        assert!(out.is_empty(), "{out:#?}");
    }

    #[test]
    fn subset_and_port_level_policies_are_checked() {
        let out = dr_errors(serde_json::json!({"host": "catalog",
            "trafficPolicy": {"portLevelSettings": [{"port": {"number": 80},
                "connectionPool": {"tcp": {"connectTimeout": "0s"}}}]},
            "subsets": [{"name": "v1"}, {"name": "v2", "trafficPolicy": {
                "outlierDetection": {"baseEjectionTime": "0s"},
                "portLevelSettings": [{"port": {"number": 80},
                    "outlierDetection": {"maxEjectionPercent": 200}}]}}]}));
        assert_eq!(
            out,
            [
                dr_error(
                    "trafficPolicy.portLevelSettings[0].connectionPool.tcp.connectTimeout",
                    "connectTimeout must be at least 1ms, got 0s"
                ),
                dr_error(
                    "subsets[1].trafficPolicy.outlierDetection.baseEjectionTime",
                    "baseEjectionTime must be at least 1ms, got 0s"
                ),
                dr_error(
                    "subsets[1].trafficPolicy.portLevelSettings[0].outlierDetection.maxEjectionPercent",
                    "maxEjectionPercent 200 is not in 0-100"
                ),
            ]
        );
    }

    #[test]
    fn endpoint_port_names_and_addresses() {
        let out = run::<ServiceEntry>(
            serde_json::json!({"hosts": ["a"], "resolution": "STATIC",
                "ports": [{"number": 80, "name": "http"}],
                "endpoints": [{"address": "catalog.local", "ports": {"htp": 9000}}]}),
            validate_service_entry,
        );
        assert!(
            out.iter().any(|d| d.field.as_deref() == Some("endpoints[0].ports.htp")
                && d.message == "port name \"htp\" is not declared by the ServiceEntry (did you mean \"http\"?)"),
            "{out:?}"
        );
        assert!(
            out.iter()
                .any(|d| d.field.as_deref() == Some("endpoints[0].address")),
            "{out:?}"
        );
    }

    #[test]
    fn resolution_rules() {
        let out = run::<ServiceEntry>(
            serde_json::json!({"hosts": ["a"], "ports": [{"number": 80, "name": "http"}],
                "endpoints": [{"address": "10.0.0.1"}]}),
            validate_service_entry,
        );
        assert!(
            out.iter()
                .any(|d| d.is_error() && d.message.contains("resolution NONE")),
            "{out:?}"
        );
        let out = run::<ServiceEntry>(
            serde_json::json!({"hosts": ["a"], "resolution": "STATIC", "ports": [{"number": 80, "name": "http"}]}),
            validate_service_entry,
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(!out[0].is_error());
    }

    #[test]
    fn sidecar_listeners() {
        let out = run::<Sidecar>(
            serde_json::json!({"ingress": [
                {"port": {"number": 9080}, "defaultEndpoint": "127.0.0.1:8080"},
                {"port": {"number": 9081}, "defaultEndpoint": "10.1.1.1:8080"},
            ], "outboundTrafficPolicy": {"mode": "ALLOW_ANY_DYNAMIC_DNS"}}),
            validate_sidecar,
        );
        let fields: Vec<_> = out.iter().filter_map(|d| d.field.as_deref()).collect();
        assert_eq!(
            fields,
            ["ingress[1].defaultEndpoint", "outboundTrafficPolicy.mode"],
            "{out:?}"
        );
    }

    #[test]
    fn mesh_fields() {
        let out = run::<MeshConfig>(
            serde_json::json!({"enablePrometheusMerge": true, "trustDomian": "x",
                "defaultConfig": {"holdApplicationUntilProxyStarts": true, "tracing": {"sampling": 120.0}}}),
            validate_mesh_config,
        );
        let by_field = |f: &str| out.iter().find(|d| d.field.as_deref() == Some(f)).cloned();
        let merge = by_field("enablePrometheusMerge");
        assert!(
            merge.as_ref().is_some_and(|d| !d.is_error()
                && d.message == "meshConfig.enablePrometheusMerge is not supported; ignored"),
            "{out:?}"
        );
        let typo = by_field("trustDomian");
        assert!(typo.is_some_and(|d| d.is_error() && d.message.contains("did you mean \"trustDomain\"")), "{out:?}");
        assert!(
            by_field("defaultConfig.holdApplicationUntilProxyStarts")
                .is_some_and(|d| !d.is_error())
        );
        assert!(by_field("defaultConfig.tracing.sampling").is_some_and(|d| d.is_error()));
    }
}
