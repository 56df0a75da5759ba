//! Prometheus's text exposition format (version 0.0.4), written by
//! `metrics-exporter-prometheus`'s own
//! [`formatting`](metrics_exporter_prometheus::formatting) helpers, so that names, labels, escapes
//! and suffixes come out as that exporter writes them: one `# HELP` (when described) and one
//! `# TYPE` line per metric name, then its series, sorted by name and then by labels so that
//! two scrapes of the same series list them alike.

use super::{HistogramSnapshot, Series};
use indexmap::IndexMap;
use metrics::Key;
use metrics_exporter_prometheus::{
    LabelSet,
    formatting::{sanitize_metric_name, write_help_line, write_metric_line, write_type_line},
};
use std::sync::atomic::Ordering::Relaxed;

/// What `# TYPE` says of a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One series, ready to print: its sanitized name, its labels, and its value.
struct Line<'a> {
    name: String,
    /// The labels as given, to sort by.
    order: Vec<(&'a str, &'a str)>,
    labels: LabelSet,
    value: Value<'a>,
}

enum Value<'a> {
    Counter(u64),
    Gauge(f64),
    Histogram(HistogramSnapshot<'a>),
}

impl Value<'_> {
    fn kind(&self) -> Kind {
        match self {
            Value::Counter(_) => Kind::Counter,
            Value::Gauge(_) => Kind::Gauge,
            Value::Histogram(_) => Kind::Histogram,
        }
    }
}

/// Renders every series of `series`.
pub(super) fn render(series: &Series) -> String {
    let no_global_labels = IndexMap::new();
    let mut lines: Vec<Line<'_>> = Vec::new();
    let mut push = |key, value| {
        lines.push(Line {
            name: metric_name(Key::name(key)),
            order: key.labels().map(|l| (l.key(), l.value())).collect(),
            labels: LabelSet::from_key_and_global(key, &no_global_labels),
            value,
        })
    };
    for (key, counter) in &series.counters {
        push(key, Value::Counter(counter.total()));
    }
    for (key, gauge) in &series.gauges {
        push(key, Value::Gauge(f64::from_bits(gauge.load(Relaxed))));
    }
    for (key, histogram) in &series.histograms {
        push(key, Value::Histogram(histogram.snapshot()));
    }
    lines.sort_by(|a, b| (&a.name, &a.order).cmp(&(&b.name, &b.order)));

    let mut out = String::new();
    let mut current: Option<(&str, Kind)> = None;
    for line in &lines {
        let kind = line.value.kind();
        if current != Some((&line.name, kind)) {
            current = Some((&line.name, kind));
            if let Some(help) = series.help.get(line.name.as_str()) {
                write_help_line(&mut out, &line.name, None, None, help);
            }
            write_type_line(&mut out, &line.name, None, None, kind.as_str());
        }
        write_series(&mut out, line);
    }
    out
}

/// No extra label (`le`) on a line.
const NO_LABEL: Option<(&str, Float)> = None;

fn write_series(out: &mut String, line: &Line<'_>) {
    let (name, labels) = (line.name.as_str(), &line.labels);
    match &line.value {
        Value::Counter(value) => write_metric_line(out, name, None, labels, NO_LABEL, value, None),
        Value::Gauge(value) => {
            write_metric_line(out, name, None, labels, NO_LABEL, Float(*value), None)
        }
        Value::Histogram(snapshot) => {
            let cumulative = snapshot.cumulative_counts();
            // The last bucket's bound is `+Inf`, which `Float` writes as Prometheus does.
            let les = snapshot.bounds.iter().copied().chain([f64::INFINITY]);
            // The suffixes are added here: the exporter's own would be left off a name that
            // already ends in them (`retry_count`).
            let bucket = format!("{name}_bucket");
            for (le, count) in les.zip(&cumulative) {
                let le = Some(("le", Float(le)));
                write_metric_line(out, &bucket, None, labels, le, count, None);
            }
            let total = cumulative.last().copied().unwrap_or(0);
            let sum = Float(snapshot.sum);
            write_metric_line(
                out,
                &format!("{name}_sum"),
                None,
                labels,
                NO_LABEL,
                sum,
                None,
            );
            let count = format!("{name}_count");
            write_metric_line(out, &count, None, labels, NO_LABEL, total, None);
        }
    }
}

/// A metric name as Prometheus accepts it (`[a-zA-Z_:][a-zA-Z0-9_:]*`): any other character
/// becomes `_`, and a name starting with a digit gets a `_` in front, as OpenTelemetry's
/// Prometheus exporter does, so that `2xx` and `3xx` stay apart (`_2xx`, `_3xx`) rather than
/// both becoming `_xx`.
pub(super) fn metric_name(name: &str) -> String {
    match name.as_bytes().first() {
        Some(first) if first.is_ascii_digit() => sanitize_metric_name(&format!("_{name}")),
        _ => sanitize_metric_name(name),
    }
}

/// A sample value as Prometheus writes it: `+Inf`, `-Inf`, `NaN`, or the shortest decimal
/// that reads back the same (`1`, `0.5`, `3600000`).
struct Float(f64);

impl std::fmt::Display for Float {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            v if v.is_nan() => f.write_str("NaN"),
            v if v == f64::INFINITY => f.write_str("+Inf"),
            v if v == f64::NEG_INFINITY => f.write_str("-Inf"),
            v => write!(f, "{v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_label_names_are_made_valid_and_values_escaped() {
        assert_eq!(
            metric_name("envoy.cluster:rq-total"),
            "envoy_cluster:rq_total"
        );
        assert_eq!(metric_name("2xx"), "_2xx");
        assert_eq!(
            metric_name("3xx"),
            "_3xx",
            "names differing in a leading digit stay apart"
        );
        assert_eq!(metric_name("rq_2xx"), "rq_2xx");
        assert_eq!(metric_name("9-lives"), "_9_lives");
        let recorder = super::super::PrometheusRecorder::new();
        let labels = vec![
            metrics::Label::new("path", "a\"b\\c\nd"),
            metrics::Label::new("x-y:z", "1"),
        ];
        let metadata = metrics::Metadata::new("test", metrics::Level::INFO, None);
        metrics::Recorder::register_counter(&recorder, &Key::from_parts("m-1", labels), &metadata)
            .increment(1);
        assert_eq!(
            recorder.handle().render(),
            "# TYPE m_1 counter\nm_1{path=\"a\\\"b\\\\c\\nd\",x_y_z=\"1\"} 1\n"
        );
    }

    #[test]
    fn special_values_are_written_as_prometheus_reads_them() {
        let written: Vec<String> = [1.0, 0.5, 3_600_000.0, f64::INFINITY, f64::NEG_INFINITY]
            .into_iter()
            .chain([f64::NAN])
            .map(|v| Float(v).to_string())
            .collect();
        assert_eq!(written, ["1", "0.5", "3600000", "+Inf", "-Inf", "NaN"]);
    }
}
