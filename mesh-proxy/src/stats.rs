//! Envoy-style stats of the proxy — per-cluster request, retry, timeout, overflow and outlier
//! counters, and the counters of the mirror, span export and access log — read from the
//! atomics the proxy keeps anyway, at the moment they are asked for (nothing on the request
//! path), and rendered for the admin server: plain `name: value` lines for `/stats` and
//! Prometheus text for `/stats/prometheus`.

use crate::{config_updates::ConfigUpdates, registry::Registry};
use mesh_route::mirror::MirrorStats;
use mesh_trace::{access_log::AccessLogStats, reporter::ReporterStats};
use std::{
    fmt::Write,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

/// Whether a stat only grows or goes up and down.
///
/// ```
/// use mesh_proxy::{config_updates::ConfigUpdates, stats::{StatKind, StatsSources}};
/// use std::sync::Arc;
/// let sources = StatsSources { config_updates: Some(Arc::new(ConfigUpdates::default())), ..StatsSources::default() };
/// assert!(sources.collect().iter().all(|s| s.kind == StatKind::Counter));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatKind {
    /// Only grows.
    Counter,
    /// Goes up and down.
    Gauge,
}

/// One stat: `cluster.<cluster>.<name>` for a cluster stat, `<name>` otherwise.
///
/// ```
/// use mesh_proxy::{config_updates::ConfigUpdates, stats::{Stat, StatKind, StatsSources}};
/// use std::sync::Arc;
/// let updates = Arc::new(ConfigUpdates::default());
/// updates.applied();
/// let sources = StatsSources { config_updates: Some(updates), ..StatsSources::default() };
/// let expected = Stat { name: "config.update_success", cluster: None, kind: StatKind::Counter, value: 1 };
/// assert_eq!(sources.collect()[0], expected);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    /// The stat's name within its scope (`upstream_rq_total`, `tracing.zipkin.spans_sent`).
    pub name: &'static str,
    /// The cluster, for a cluster stat.
    pub cluster: Option<Arc<str>>,
    /// Counter or gauge.
    pub kind: StatKind,
    /// Its value now.
    pub value: u64,
}

/// Where the stats come from.
///
/// ```
/// use mesh_proxy::{config_updates::ConfigUpdates, stats::StatsSources};
/// use std::sync::Arc;
/// let updates = Arc::new(ConfigUpdates::default());
/// updates.rejected("bad YAML".into());
/// let sources = StatsSources { config_updates: Some(updates), ..StatsSources::default() };
/// assert_eq!(sources.render_plain(), "config.update_success: 0\nconfig.update_rejected: 1\n");
/// ```
#[derive(Clone, Debug, Default)]
pub struct StatsSources {
    /// The clusters and their endpoints.
    pub registry: Arc<Registry>,
    /// The outbound mirror's counters.
    pub mirror: Option<Arc<MirrorStats>>,
    /// The span reporter's counters, when spans are exported.
    pub spans: Option<Arc<ReporterStats>>,
    /// The access log's counters, when access logging is on.
    pub access_log: Option<Arc<AccessLogStats>>,
    /// Configuration updates, when the proxy takes them while it runs.
    pub config_updates: Option<Arc<ConfigUpdates>>,
}

/// Envoy's per-class answer counters of a cluster.
const RESPONSE_CLASSES: [(u16, &str); 4] = [
    (2, "upstream_rq_2xx"),
    (3, "upstream_rq_3xx"),
    (4, "upstream_rq_4xx"),
    (5, "upstream_rq_5xx"),
];

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl StatsSources {
    /// Every stat, clusters first (in registry order), then the proxy-wide ones.
    ///
    /// ```
    /// use mesh_proxy::{registry::Registry, stats::StatsSources, upstream::Upstream};
    /// use mesh_route::{config::Config, table::RouteTable};
    /// use std::sync::Arc;
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\n\
    ///             spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let registry = Arc::new(Registry::build(&config, &RouteTable::compile(&config).unwrap(), &Upstream::default()).unwrap());
    /// registry.clusters()[0].stats.record_attempt(1);
    /// let stats = StatsSources { registry, ..StatsSources::default() }.collect();
    /// let total = stats.iter().find(|s| s.name == "upstream_rq_total").unwrap();
    /// assert_eq!(total.value, 1);
    /// assert!(total.cluster.as_deref().unwrap().contains("catalog"));
    /// ```
    pub fn collect(&self) -> Vec<Stat> {
        let mut stats = Vec::new();
        let now = tokio::time::Instant::now();
        for cluster in self.registry.clusters() {
            let mut push = |name, kind, value| {
                stats.push(Stat {
                    name,
                    cluster: Some(cluster.name.clone()),
                    kind,
                    value,
                });
            };
            push(
                "upstream_rq_total",
                StatKind::Counter,
                cluster.stats.rq_total(),
            );
            push(
                "upstream_rq_retry",
                StatKind::Counter,
                cluster.stats.rq_retry(),
            );
            push(
                "upstream_rq_timeout",
                StatKind::Counter,
                cluster.stats.rq_timeout(),
            );
            for (class, name) in RESPONSE_CLASSES {
                push(
                    name,
                    StatKind::Counter,
                    cluster.stats.responses().class(class),
                );
            }
            push(
                "upstream_cx_active",
                StatKind::Gauge,
                cluster
                    .all_endpoints()
                    .map(|(_, e)| cluster.upstream.active_connections(&e.authority) as u64)
                    .sum(),
            );
            if let Some(breaker) = &cluster.breaker {
                push(
                    "upstream_rq_pending_overflow",
                    StatKind::Counter,
                    breaker.overflows(),
                );
                push(
                    "upstream_rq_retry_overflow",
                    StatKind::Counter,
                    breaker.retry_overflows(),
                );
            }
            let outliers = || cluster.ports.iter().filter_map(|p| p.outlier.as_ref());
            if outliers().next().is_some() {
                push(
                    "outlier_detection.ejections_active",
                    StatKind::Gauge,
                    outliers().map(|o| o.ejected(now) as u64).sum(),
                );
                push(
                    "outlier_detection.ejections_enforced_total",
                    StatKind::Counter,
                    outliers().map(|o| o.ejections()).sum(),
                );
                push(
                    "outlier_detection.ejections_overflow",
                    StatKind::Counter,
                    outliers().map(|o| o.ejections_overflow()).sum(),
                );
            }
        }
        let mut push = |name, value| {
            stats.push(Stat {
                name,
                cluster: None,
                kind: StatKind::Counter,
                value,
            });
        };
        if let Some(mirror) = &self.mirror {
            push("mirror.sent", load(&mirror.sent));
            push("mirror.dropped_overflow", load(&mirror.dropped_overflow));
            push(
                "mirror.skipped_body_too_large",
                load(&mirror.skipped_body_too_large),
            );
            push(
                "mirror.skipped_body_incomplete",
                load(&mirror.skipped_body_incomplete),
            );
            push("mirror.failed", load(&mirror.failed));
        }
        if let Some(spans) = &self.spans {
            push("tracing.zipkin.spans_reported", load(&spans.reported));
            push("tracing.zipkin.spans_dropped", load(&spans.dropped));
            push("tracing.zipkin.spans_sent", load(&spans.exported));
            push("tracing.zipkin.spans_failed", load(&spans.export_failed));
        }
        if let Some(updates) = &self.config_updates {
            push("config.update_success", updates.success());
            push("config.update_rejected", updates.rejections());
        }
        if let Some(log) = &self.access_log {
            push("access_log.written", load(&log.written));
            push("access_log.dropped", load(&log.dropped));
            push("access_log.write_failures", load(&log.write_failures));
        }
        stats
    }

    /// `/stats`: one `name: value` line per stat, cluster stats as Envoy names them
    /// (`cluster.outbound|80||catalog.default.svc.cluster.local.upstream_rq_total: 3`).
    ///
    /// ```
    /// use mesh_proxy::stats::StatsSources;
    /// assert_eq!(StatsSources::default().render_plain(), "");
    /// ```
    pub fn render_plain(&self) -> String {
        let mut out = String::new();
        for stat in self.collect() {
            let _ = match &stat.cluster {
                Some(cluster) => writeln!(out, "cluster.{cluster}.{}: {}", stat.name, stat.value),
                None => writeln!(out, "{}: {}", stat.name, stat.value),
            };
        }
        out
    }

    /// Appends the stats in Prometheus text format: cluster stats as
    /// `envoy_cluster_<name>{cluster_name="…"}`, proxy-wide ones as `envoy_<name>` (dots become
    /// underscores), each name with one `# TYPE` line.
    ///
    /// ```
    /// use mesh_proxy::{config_updates::ConfigUpdates, stats::StatsSources};
    /// use std::sync::Arc;
    /// let updates = Arc::new(ConfigUpdates::default());
    /// updates.applied();
    /// let sources = StatsSources { config_updates: Some(updates), ..StatsSources::default() };
    /// let mut out = String::new();
    /// sources.render_prometheus(&mut out);
    /// assert!(out.contains("# TYPE envoy_config_update_success counter\nenvoy_config_update_success 1\n"), "{out}");
    /// ```
    pub fn render_prometheus(&self, out: &mut String) {
        let mut stats = self.collect();
        // Group each name's samples under its one `# TYPE` line.
        stats.sort_by_key(|s| (s.cluster.is_none(), s.name));
        let mut last: Option<(&'static str, bool)> = None;
        for stat in &stats {
            let scope = if stat.cluster.is_some() {
                "envoy_cluster_"
            } else {
                "envoy_"
            };
            let name = stat.name.replace('.', "_");
            if last != Some((stat.name, stat.cluster.is_some())) {
                let kind = match stat.kind {
                    StatKind::Counter => "counter",
                    StatKind::Gauge => "gauge",
                };
                let _ = writeln!(out, "# TYPE {scope}{name} {kind}");
                last = Some((stat.name, stat.cluster.is_some()));
            }
            let _ = match &stat.cluster {
                Some(cluster) => writeln!(
                    out,
                    "{scope}{name}{{cluster_name=\"{}\"}} {}",
                    escape_label(cluster),
                    stat.value
                ),
                None => writeln!(out, "{scope}{name} {}", stat.value),
            };
        }
    }
}

/// Escapes a Prometheus label value (`\`, `"` and newlines).
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_wide_stats_render_in_both_formats() {
        let mirror = Arc::new(MirrorStats::default());
        mirror.sent.store(7, Ordering::Relaxed);
        mirror.dropped_overflow.store(2, Ordering::Relaxed);
        let sources = StatsSources {
            mirror: Some(mirror),
            ..Default::default()
        };
        let plain = sources.render_plain();
        assert!(plain.contains("mirror.sent: 7\n"), "{plain}");
        assert!(plain.contains("mirror.dropped_overflow: 2\n"), "{plain}");
        let mut text = String::new();
        sources.render_prometheus(&mut text);
        assert!(
            text.contains("# TYPE envoy_mirror_sent counter\nenvoy_mirror_sent 7\n"),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE").count(), 5, "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
