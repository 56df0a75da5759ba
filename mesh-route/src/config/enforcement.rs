//! Which configuration fields are parsed but not enforced by the data plane yet.
//!
//! [`NOT_ENFORCED`] is the one table of such fields. Each row names a field (as a path
//! pattern) and a finder that lists where the field is present in a resource; loading
//! reports one warning `X: parsed, not enforced yet` per occurrence. When a field becomes
//! enforced, delete its row.

use super::destination_rule::DestinationRule;
use super::extension_provider::{DefaultProviders, EXTENSION_PROVIDER_KINDS, ZipkinProvider};
use super::mesh_config::MeshConfig;
use super::service_entry::{Resolution, ServiceEntry};
use super::sidecar::Sidecar;
use super::telemetry::{
    AccessLogging, Metrics, MetricsOverrides, Telemetry, TelemetryTracing, WorkloadMode,
};
use super::traffic_policy::{LoadBalancerSettings, TrafficPolicy};
use super::virtual_service::{HttpMatchRequest, HttpRoute, VirtualService};

/// Lists the concrete field paths (e.g. `http[0].timeout`) where a field is present.
///
/// ```
/// use mesh_route::config::{VirtualService, enforcement::{Finder, NOT_ENFORCED}};
///
/// let row = NOT_ENFORCED.iter().find(|row| row.field == "exportTo" && matches!(row.find, Finder::VirtualService(_))).unwrap();
/// let Finder::VirtualService(find) = row.find else { unreachable!() };
/// let vs = VirtualService { export_to: vec![".".into()], ..Default::default() };
/// assert_eq!(find(&vs), ["exportTo"]);
/// ```
#[derive(Clone, Copy)]
pub enum Finder {
    /// A VirtualService field.
    VirtualService(fn(&VirtualService) -> Vec<String>),
    /// A DestinationRule field.
    DestinationRule(fn(&DestinationRule) -> Vec<String>),
    /// A ServiceEntry field.
    ServiceEntry(fn(&ServiceEntry) -> Vec<String>),
    /// A Sidecar field.
    Sidecar(fn(&Sidecar) -> Vec<String>),
    /// A Telemetry field.
    Telemetry(fn(&Telemetry) -> Vec<String>),
    /// A mesh-settings field (paths relative to the mesh config).
    Mesh(fn(&MeshConfig) -> Vec<String>),
}

/// One field that is parsed but not enforced yet.
///
/// ```
/// use mesh_route::config::enforcement::{Finder, NOT_ENFORCED};
///
/// let cors = NOT_ENFORCED.iter().find(|row| row.field == "http[].corsPolicy").unwrap();
/// // The row belongs to VirtualService, so its finder takes a VirtualService.
/// assert!(matches!(cors.find, Finder::VirtualService(_)));
/// ```
#[derive(Clone, Copy)]
pub struct NotEnforced {
    /// Path pattern of the field (`[]` stands for any index).
    pub field: &'static str,
    /// Where the field is present.
    pub find: Finder,
}

/// `"corsPolicy: parsed, not enforced yet"` for the pattern `http[].corsPolicy`.
///
/// ```
/// use mesh_route::config::enforcement::not_enforced_message;
///
/// assert_eq!(not_enforced_message("http[].corsPolicy"), "corsPolicy: parsed, not enforced yet");
/// assert_eq!(not_enforced_message("sidecar.egress[]"), "egress: parsed, not enforced yet");
/// ```
pub fn not_enforced_message(field: &str) -> String {
    let leaf = field
        .rsplit('.')
        .next()
        .unwrap_or(field)
        .trim_end_matches("[]");
    format!("{leaf}: parsed, not enforced yet")
}

const fn vs(field: &'static str, find: fn(&VirtualService) -> Vec<String>) -> NotEnforced {
    NotEnforced {
        field,
        find: Finder::VirtualService(find),
    }
}

const fn dr(field: &'static str, find: fn(&DestinationRule) -> Vec<String>) -> NotEnforced {
    NotEnforced {
        field,
        find: Finder::DestinationRule(find),
    }
}

const fn se(field: &'static str, find: fn(&ServiceEntry) -> Vec<String>) -> NotEnforced {
    NotEnforced {
        field,
        find: Finder::ServiceEntry(find),
    }
}

const fn sidecar(field: &'static str, find: fn(&Sidecar) -> Vec<String>) -> NotEnforced {
    NotEnforced {
        field,
        find: Finder::Sidecar(find),
    }
}

const fn telemetry(field: &'static str, find: fn(&Telemetry) -> Vec<String>) -> NotEnforced {
    NotEnforced {
        field,
        find: Finder::Telemetry(find),
    }
}

const fn mesh(field: &'static str, find: fn(&MeshConfig) -> Vec<String>) -> NotEnforced {
    NotEnforced {
        field,
        find: Finder::Mesh(find),
    }
}

/// The fields the data plane does not enforce yet. Enforced today: VirtualService
/// `hosts`, `http[].name` (route names in RouteInfo and access logs), `http[].match`
/// (with `port`, and the config-time selectors `sourceLabels`, `sourceNamespace` and
/// `gateways`; not `statPrefix`), `route`,
/// `redirect`, `directResponse`, `rewrite`, `headers`; DestinationRule `host`,
/// `subsets[].name/labels`, `trafficPolicy.loadBalancer.simple`; ServiceEntry `hosts`,
/// `ports`, `resolution` STATIC/DNS, `endpoints[].address/ports/labels`, `location`,
/// `addresses`; Sidecar `ingress[].port/defaultEndpoint/bind`, `outboundTrafficPolicy.mode`;
/// mesh `outboundTrafficPolicy`; Telemetry mesh-wide tracing and access logging (the
/// `tracing[]` and `accessLogging[]` entries a Telemetry without `selector` or `targetRef`
/// applies to a side). Telemetry `selector`/`targetRef`, workload-scoped tracing and access
/// logging, tracing and access-logging `providers`, `accessLogging[].filter` and every
/// `metrics[]` field are listed below.
///
/// ```
/// use mesh_route::config::{Config, enforcement::NOT_ENFORCED};
///
/// assert!(NOT_ENFORCED.iter().any(|row| row.field == "http[].corsPolicy"));
/// // Loading warns about each occurrence.
/// let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api}\nspec: {hosts: [api.example.com], http: [{corsPolicy: {allowOrigins: [{exact: \"*\"}]}, directResponse: {status: 200}}]}\n";
/// let warnings = Config::from_yaml_str(yaml).unwrap().warnings;
/// assert!(warnings.iter().any(|w| w.message == "corsPolicy: parsed, not enforced yet"), "{warnings:?}");
/// ```
pub const NOT_ENFORCED: &[NotEnforced] = &[
    // VirtualService. `gateways` (mesh and Gateways), `tcp[]` and `tls[]` routes with their
    // `match[].port`, `match[].gateways` and `match[].sniHosts`, and the match blocks'
    // `sourceLabels` and `sourceNamespace` (decided against the proxy's own workload when its
    // route table is compiled) are enforced.
    vs("exportTo", |v| flag(!v.export_to.is_empty(), "exportTo")),
    vs("tcp[].match[].destinationSubnets", |v| {
        l4(
            v.tcp.iter().map(|r| {
                r.match_
                    .iter()
                    .map(|m| !m.destination_subnets.is_empty())
                    .collect()
            }),
            "tcp",
            "destinationSubnets",
        )
    }),
    vs("tcp[].match[].sourceSubnet", |v| {
        l4(
            v.tcp
                .iter()
                .map(|r| r.match_.iter().map(|m| m.source_subnet.is_some()).collect()),
            "tcp",
            "sourceSubnet",
        )
    }),
    vs("tls[].match[].destinationSubnets", |v| {
        l4(
            v.tls.iter().map(|r| {
                r.match_
                    .iter()
                    .map(|m| !m.destination_subnets.is_empty())
                    .collect()
            }),
            "tls",
            "destinationSubnets",
        )
    }),
    vs("http[].delegate", |v| {
        http(v, "delegate", |r| r.delegate.is_some())
    }),
    vs("http[].fault.delay.exponentialDelay", |v| {
        http(v, "fault.delay.exponentialDelay", |r| {
            r.fault
                .as_ref()
                .and_then(|f| f.delay.as_ref())
                .is_some_and(|d| d.exponential_delay.is_some())
        })
    }),
    vs("http[].retries.retryRemoteLocalities", |v| {
        http(v, "retries.retryRemoteLocalities", |r| {
            r.retries
                .as_ref()
                .is_some_and(|x| x.retry_remote_localities.is_some())
        })
    }),
    vs("http[].retries.retryIgnorePreviousHosts", |v| {
        // `true` is the default and what the balancer does; only `false` is not honoured.
        http(v, "retries.retryIgnorePreviousHosts", |r| {
            r.retries
                .as_ref()
                .is_some_and(|x| x.retry_ignore_previous_hosts == Some(false))
        })
    }),
    vs("http[].corsPolicy", |v| {
        http(v, "corsPolicy", |r| r.cors_policy.is_some())
    }),
    vs("http[].match[].statPrefix", |v| {
        matches(v, "statPrefix", |m| m.stat_prefix.is_some())
    }),
    // DestinationRule.
    dr("exportTo", |d| flag(!d.export_to.is_empty(), "exportTo")),
    dr("workloadSelector", |d| {
        flag(d.workload_selector.is_some(), "workloadSelector")
    }),
    dr("trafficPolicy.connectionPool.tcp.tcpKeepalive", |d| {
        policy(d, "connectionPool.tcp.tcpKeepalive", |p| {
            pool_tcp(p, |t| t.tcp_keepalive.is_some())
        })
    }),
    dr(
        "trafficPolicy.connectionPool.tcp.maxConnectionDuration",
        |d| {
            policy(d, "connectionPool.tcp.maxConnectionDuration", |p| {
                pool_tcp(p, |t| t.max_connection_duration.is_some())
            })
        },
    ),
    dr("trafficPolicy.connectionPool.http.h2UpgradePolicy", |d| {
        policy(d, "connectionPool.http.h2UpgradePolicy", |p| {
            pool_http(p, |h| h.h2_upgrade_policy.is_some())
        })
    }),
    dr("trafficPolicy.connectionPool.http.useClientProtocol", |d| {
        policy(d, "connectionPool.http.useClientProtocol", |p| {
            pool_http(p, |h| h.use_client_protocol.is_some())
        })
    }),
    dr(
        "trafficPolicy.connectionPool.http.maxConcurrentStreams",
        |d| {
            policy(d, "connectionPool.http.maxConcurrentStreams", |p| {
                pool_http(p, |h| h.max_concurrent_streams.is_some())
            })
        },
    ),
    dr("trafficPolicy.connectionPool.http.http2KeepAlive", |d| {
        policy(d, "connectionPool.http.http2KeepAlive", |p| {
            pool_http(p, |h| h.http2_keep_alive.is_some())
        })
    }),
    dr("trafficPolicy.portLevelSettings", |d| {
        policy(d, "portLevelSettings", |p| {
            !p.port_level_settings.is_empty()
        })
    }),
    dr("trafficPolicy.tunnel", |d| {
        policy(d, "tunnel", |p| p.tunnel.is_some())
    }),
    dr("trafficPolicy.proxyProtocol", |d| {
        policy(d, "proxyProtocol", |p| p.proxy_protocol.is_some())
    }),
    dr("trafficPolicy.retryBudget.budgetInterval", |d| {
        policy(d, "retryBudget.budgetInterval", |p| {
            p.retry_budget
                .as_ref()
                .is_some_and(|b| b.budget_interval.is_some())
        })
    }),
    dr("trafficPolicy.loadBalancer.consistentHash", |d| {
        balancer(d, "consistentHash", |lb| lb.consistent_hash.is_some())
    }),
    dr("trafficPolicy.loadBalancer.localityLbSetting", |d| {
        balancer(d, "localityLbSetting", |lb| {
            lb.locality_lb_setting.is_some()
        })
    }),
    dr("trafficPolicy.loadBalancer.warmupDurationSecs", |d| {
        balancer(d, "warmupDurationSecs", |lb| {
            lb.warmup_duration_secs.is_some()
        })
    }),
    dr("trafficPolicy.loadBalancer.warmup", |d| {
        balancer(d, "warmup", |lb| lb.warmup.is_some())
    }),
    dr("trafficPolicy.loadBalancer.zoneAwareLbSetting", |d| {
        balancer(d, "zoneAwareLbSetting", |lb| {
            lb.zone_aware_lb_setting.is_some()
        })
    }),
    // ServiceEntry.
    se("resolution", |s| {
        let other = matches!(
            s.resolution,
            Some(Resolution::None | Resolution::DnsRoundRobin | Resolution::DynamicDns)
        );
        flag(other, "resolution")
    }),
    se("workloadSelector", |s| {
        flag(s.workload_selector.is_some(), "workloadSelector")
    }),
    se("exportTo", |s| flag(!s.export_to.is_empty(), "exportTo")),
    se("subjectAltNames", |s| {
        flag(!s.subject_alt_names.is_empty(), "subjectAltNames")
    }),
    se("endpoints[].network", |s| {
        present_at(s.endpoints.iter().map(|e| e.network.is_some()), |i| {
            format!("endpoints[{i}].network")
        })
    }),
    se("endpoints[].locality", |s| {
        present_at(s.endpoints.iter().map(|e| e.locality.is_some()), |i| {
            format!("endpoints[{i}].locality")
        })
    }),
    se("endpoints[].weight", |s| {
        present_at(s.endpoints.iter().map(|e| e.weight.is_some()), |i| {
            format!("endpoints[{i}].weight")
        })
    }),
    se("endpoints[].serviceAccount", |s| {
        present_at(
            s.endpoints.iter().map(|e| e.service_account.is_some()),
            |i| format!("endpoints[{i}].serviceAccount"),
        )
    }),
    // Sidecar.
    sidecar("workloadSelector", |s| {
        flag(s.workload_selector.is_some(), "workloadSelector")
    }),
    sidecar("egress[]", |s| indexed("egress", s.egress.len())),
    sidecar("inboundConnectionPool", |s| {
        flag(s.inbound_connection_pool.is_some(), "inboundConnectionPool")
    }),
    sidecar("ingress[].captureMode", |s| {
        present_at(s.ingress.iter().map(|l| l.capture_mode.is_some()), |i| {
            format!("ingress[{i}].captureMode")
        })
    }),
    sidecar("ingress[].tls", |s| {
        present_at(s.ingress.iter().map(|l| l.tls.is_some()), |i| {
            format!("ingress[{i}].tls")
        })
    }),
    sidecar("ingress[].connectionPool", |s| {
        present_at(s.ingress.iter().map(|l| l.connection_pool.is_some()), |i| {
            format!("ingress[{i}].connectionPool")
        })
    }),
    sidecar("outboundTrafficPolicy.egressProxy", |s| {
        let present = s
            .outbound_traffic_policy
            .as_ref()
            .is_some_and(|p| p.egress_proxy.is_some());
        flag(present, "outboundTrafficPolicy.egressProxy")
    }),
    // Telemetry.
    telemetry("targetRef", |t| flag(t.target_ref.is_some(), "targetRef")),
    telemetry("targetRefs[]", |t| {
        indexed("targetRefs", t.target_refs.len())
    }),
    // Tracing of a Telemetry without targetRef (mesh-wide, of a namespace, or selecting
    // workloads by label) is enforced for the proxies it applies to; one attached to a
    // resource by targetRef applies to none.
    telemetry("tracing[].match.mode", |t| {
        scoped_tracing(t, "match.mode", |x| {
            x.match_.as_ref().is_some_and(|m| m.mode.is_some())
        })
    }),
    telemetry("tracing[].providers", |t| {
        scoped_tracing(t, "providers", |x| !x.providers.is_empty())
    }),
    telemetry("tracing[].customTags", |t| {
        scoped_tracing(t, "customTags", |x| !x.custom_tags.is_empty())
    }),
    telemetry("tracing[].disableSpanReporting", |t| {
        scoped_tracing(t, "disableSpanReporting", |x| {
            x.disable_span_reporting.is_some()
        })
    }),
    telemetry("tracing[].randomSamplingPercentage", |t| {
        scoped_tracing(t, "randomSamplingPercentage", |x| {
            x.random_sampling_percentage.is_some()
        })
    }),
    // Sampling always follows the request id (Istio's default, `true`); `false` is not applied.
    telemetry("tracing[].useRequestIdForTraceSampling", |t| {
        telemetry_tracing(t, "useRequestIdForTraceSampling", |x| {
            x.use_request_id_for_trace_sampling == Some(false)
        })
    }),
    telemetry("tracing[].enableIstioTags", |t| {
        scoped_tracing(t, "enableIstioTags", |x| x.enable_istio_tags.is_some())
    }),
    telemetry("metrics[].providers", |t| {
        telemetry_metrics(t, "providers", |m| !m.providers.is_empty())
    }),
    telemetry("metrics[].overrides[].match.metric", |t| {
        metric_overrides(t, "match.metric", |o| {
            o.match_.as_ref().is_some_and(|m| m.metric.is_some())
        })
    }),
    telemetry("metrics[].overrides[].match.customMetric", |t| {
        metric_overrides(t, "match.customMetric", |o| {
            o.match_.as_ref().is_some_and(|m| m.custom_metric.is_some())
        })
    }),
    telemetry("metrics[].overrides[].match.mode", |t| {
        metric_overrides(t, "match.mode", |o| {
            o.match_.as_ref().is_some_and(|m| m.mode.is_some())
        })
    }),
    telemetry("metrics[].overrides[].disabled", |t| {
        metric_overrides(t, "disabled", |o| o.disabled.is_some())
    }),
    telemetry("metrics[].overrides[].tagOverrides", |t| {
        metric_overrides(t, "tagOverrides", |o| !o.tag_overrides.is_empty())
    }),
    telemetry("metrics[].reportingInterval", |t| {
        telemetry_metrics(t, "reportingInterval", |m| m.reporting_interval.is_some())
    }),
    telemetry("accessLogging[].match.mode", |t| {
        scoped_access_logging(t, "match.mode", |l| {
            l.match_.as_ref().is_some_and(|m| m.mode.is_some())
        })
    }),
    telemetry("accessLogging[].providers", |t| {
        access_logging(t, "providers", |l| !l.providers.is_empty())
    }),
    telemetry("accessLogging[].disabled", |t| {
        scoped_access_logging(t, "disabled", |l| l.disabled.is_some())
    }),
    telemetry("accessLogging[].filter", |t| {
        access_logging(t, "filter", |l| l.filter.is_some())
    }),
    // Mesh settings.
    mesh("accessLogFormat", |m| {
        flag(m.access_log_format.is_some(), "accessLogFormat")
    }),
    mesh("trustDomain", |m| {
        flag(m.trust_domain.is_some(), "trustDomain")
    }),
    // Any kind of provider but Zipkin.
    mesh("extensionProviders[].provider", |m| {
        let mut found = Vec::new();
        for (i, provider) in m.extension_providers.iter().enumerate() {
            for kind in provider.other.keys() {
                if EXTENSION_PROVIDER_KINDS.contains(&kind.as_str()) {
                    found.push(format!("extensionProviders[{i}].{kind}"));
                }
            }
        }
        found
    }),
    mesh("extensionProviders[].zipkin.enable64bitTraceId", |m| {
        zipkin_providers(m, "enable64bitTraceId", |z| {
            z.enable_64bit_trace_id == Some(true)
        })
    }),
    mesh("extensionProviders[].zipkin.timeout", |m| {
        zipkin_providers(m, "timeout", |z| z.timeout.is_some())
    }),
    mesh("extensionProviders[].zipkin.headers", |m| {
        zipkin_providers(m, "headers", |z| !z.headers.is_empty())
    }),
    mesh("defaultProviders.metrics", |m| {
        default_providers(m, "metrics", |d| &d.metrics)
    }),
    mesh("defaultProviders.accessLogging", |m| {
        default_providers(m, "accessLogging", |d| &d.access_logging)
    }),
    mesh("defaultHttpRetryPolicy.retryRemoteLocalities", |m| {
        let present = m
            .default_http_retry_policy
            .as_ref()
            .is_some_and(|r| r.retry_remote_localities.is_some());
        flag(present, "defaultHttpRetryPolicy.retryRemoteLocalities")
    }),
];

fn pool_tcp(p: &TrafficPolicy, present: impl Fn(&crate::config::TcpSettings) -> bool) -> bool {
    p.connection_pool
        .as_ref()
        .and_then(|c| c.tcp.as_ref())
        .is_some_and(present)
}

fn pool_http(p: &TrafficPolicy, present: impl Fn(&crate::config::HttpSettings) -> bool) -> bool {
    p.connection_pool
        .as_ref()
        .and_then(|c| c.http.as_ref())
        .is_some_and(present)
}

fn flag(present: bool, path: &str) -> Vec<String> {
    if present {
        vec![path.to_string()]
    } else {
        Vec::new()
    }
}

fn default_providers(
    m: &MeshConfig,
    leaf: &str,
    names: impl Fn(&DefaultProviders) -> &Vec<String>,
) -> Vec<String> {
    let present = m
        .default_providers
        .as_ref()
        .is_some_and(|d| !names(d).is_empty());
    flag(present, &format!("defaultProviders.{leaf}"))
}

fn zipkin_providers(
    m: &MeshConfig,
    leaf: &str,
    present: impl Fn(&ZipkinProvider) -> bool,
) -> Vec<String> {
    present_at(
        m.extension_providers
            .iter()
            .map(|p| p.zipkin.as_ref().is_some_and(&present)),
        |i| format!("extensionProviders[{i}].zipkin.{leaf}"),
    )
}

fn indexed(list: &str, len: usize) -> Vec<String> {
    (0..len).map(|i| format!("{list}[{i}]")).collect()
}

fn present_at(present: impl Iterator<Item = bool>, path: impl Fn(usize) -> String) -> Vec<String> {
    present
        .enumerate()
        .filter(|(_, p)| *p)
        .map(|(i, _)| path(i))
        .collect()
}

/// `LIST[i].match[j].LEAF` for each match block where `present[i][j]`.
fn l4(present: impl Iterator<Item = Vec<bool>>, list: &str, leaf: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, route) in present.enumerate() {
        for (j, _) in route.iter().enumerate().filter(|(_, p)| **p) {
            out.push(format!("{list}[{i}].match[{j}].{leaf}"));
        }
    }
    out
}

fn http(v: &VirtualService, leaf: &str, present: impl Fn(&HttpRoute) -> bool) -> Vec<String> {
    present_at(v.http.iter().map(present), |i| format!("http[{i}].{leaf}"))
}

fn matches(
    v: &VirtualService,
    leaf: &str,
    present: impl Fn(&HttpMatchRequest) -> bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for (i, route) in v.http.iter().enumerate() {
        for (j, m) in route.match_.iter().enumerate() {
            if present(m) {
                out.push(format!("http[{i}].match[{j}].{leaf}"));
            }
        }
    }
    out
}

/// Where `present` holds: the rule's `trafficPolicy` and each subset's.
fn policy(
    d: &DestinationRule,
    leaf: &str,
    present: impl Fn(&TrafficPolicy) -> bool,
) -> Vec<String> {
    let mut found = flag(
        d.traffic_policy.as_ref().is_some_and(&present),
        &format!("trafficPolicy.{leaf}"),
    );
    for (i, subset) in d.subsets.iter().enumerate() {
        if subset.traffic_policy.as_ref().is_some_and(&present) {
            found.push(format!("subsets[{i}].trafficPolicy.{leaf}"));
        }
    }
    found
}

fn balancer(
    d: &DestinationRule,
    leaf: &str,
    present: impl Fn(&LoadBalancerSettings) -> bool,
) -> Vec<String> {
    let present = d
        .traffic_policy
        .as_ref()
        .and_then(|p| p.load_balancer.as_ref())
        .is_some_and(present);
    flag(present, &format!("trafficPolicy.loadBalancer.{leaf}"))
}

fn telemetry_tracing(
    t: &Telemetry,
    leaf: &str,
    present: impl Fn(&TelemetryTracing) -> bool,
) -> Vec<String> {
    present_at(t.tracing.iter().map(present), |i| {
        format!("tracing[{i}].{leaf}")
    })
}

/// Like [`telemetry_tracing`], for fields the proxy applies from a Telemetry's entry for each
/// side ([`Telemetry::tracing_for`]): reported only where they are not applied (a Telemetry
/// attached by `targetRef`, or an entry no side uses).
fn scoped_tracing(
    t: &Telemetry,
    leaf: &str,
    present: impl Fn(&TelemetryTracing) -> bool,
) -> Vec<String> {
    let applied = |i: usize| {
        t.applies_to_proxies()
            && [WorkloadMode::Client, WorkloadMode::Server]
                .into_iter()
                .any(|side| t.tracing_for(side).is_some_and(|(j, _)| j == i))
    };
    present_at(
        t.tracing
            .iter()
            .enumerate()
            .map(|(i, x)| !applied(i) && present(x)),
        |i| format!("tracing[{i}].{leaf}"),
    )
}

/// Like [`scoped_tracing`], for `accessLogging` entries: only the entries a Telemetry applies
/// to a side are enforced.
fn scoped_access_logging(
    t: &Telemetry,
    leaf: &str,
    present: impl Fn(&AccessLogging) -> bool,
) -> Vec<String> {
    let applied = |i: usize| {
        t.applies_to_proxies()
            && [WorkloadMode::Client, WorkloadMode::Server]
                .into_iter()
                .any(|side| t.access_logging_for(side).is_some_and(|(j, _)| j == i))
    };
    present_at(
        t.access_logging
            .iter()
            .enumerate()
            .map(|(i, x)| !applied(i) && present(x)),
        |i| format!("accessLogging[{i}].{leaf}"),
    )
}

fn telemetry_metrics(t: &Telemetry, leaf: &str, present: impl Fn(&Metrics) -> bool) -> Vec<String> {
    present_at(t.metrics.iter().map(present), |i| {
        format!("metrics[{i}].{leaf}")
    })
}

fn metric_overrides(
    t: &Telemetry,
    leaf: &str,
    present: impl Fn(&MetricsOverrides) -> bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for (i, metrics) in t.metrics.iter().enumerate() {
        for (j, over) in metrics.overrides.iter().enumerate() {
            if present(over) {
                out.push(format!("metrics[{i}].overrides[{j}].{leaf}"));
            }
        }
    }
    out
}

fn access_logging(
    t: &Telemetry,
    leaf: &str,
    present: impl Fn(&AccessLogging) -> bool,
) -> Vec<String> {
    present_at(t.access_logging.iter().map(present), |i| {
        format!("accessLogging[{i}].{leaf}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_the_leaf() {
        assert_eq!(
            not_enforced_message("http[].timeout"),
            "timeout: parsed, not enforced yet"
        );
        assert_eq!(
            not_enforced_message("tls[].match[].destinationSubnets"),
            "destinationSubnets: parsed, not enforced yet"
        );
        assert_eq!(
            not_enforced_message("exportTo"),
            "exportTo: parsed, not enforced yet"
        );
    }

    #[test]
    fn source_selectors_and_the_http_port_are_enforced() {
        let yaml = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: catalog}
spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog}
spec:
  hosts: [catalog]
  http:
  - match: [{sourceLabels: {app: tester}, sourceNamespace: qa, port: 9080, statPrefix: beta}]
    directResponse: {status: 200}
  tcp:
  - match: [{sourceLabels: {app: tester}, sourceNamespace: qa, sourceSubnet: 10.0.0.0/8}]
    route: [{destination: {host: catalog}}]
  tls:
  - match: [{sniHosts: [catalog], sourceLabels: {app: tester}, sourceNamespace: qa}]
    route: [{destination: {host: catalog}}]
"#;
        let warnings = crate::config::Config::from_yaml_str(yaml).unwrap().warnings;
        let messages: Vec<&str> = warnings.iter().map(|w| w.message.as_str()).collect();
        for enforced in ["sourceLabels", "sourceNamespace", "port"] {
            assert!(
                !messages.contains(&not_enforced_message(enforced).as_str()),
                "{messages:?}"
            );
        }
        // The fields still not enforced keep their warning.
        for pending in ["statPrefix", "sourceSubnet"] {
            assert!(
                messages.contains(&not_enforced_message(pending).as_str()),
                "{messages:?}"
            );
        }
    }

    #[test]
    fn finds_each_occurrence() {
        let mut v = VirtualService::default();
        v.http.push(HttpRoute::default());
        v.http.push(HttpRoute {
            cors_policy: Some(Default::default()),
            ..HttpRoute::default()
        });
        let row = NOT_ENFORCED.iter().find(|r| r.field == "http[].corsPolicy");
        let Some(NotEnforced {
            find: Finder::VirtualService(find),
            ..
        }) = row
        else {
            panic!("the http[].corsPolicy row must exist");
        };
        assert_eq!(find(&v), vec!["http[1].corsPolicy".to_string()]);
    }
}
