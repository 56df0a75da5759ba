//! Prometheus's text exposition format (version 0.0.4): one `# HELP` (when described) and one
//! `# TYPE` line per metric name, then its series, sorted by name and then by labels so that
//! two scrapes of the same series list them alike.

use super::{HistogramSnapshot, Series};
use metrics::Key;
use std::{fmt::Write, sync::atomic::Ordering::Relaxed};

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

/// One series, ready to print: its sanitized name, its labels as `k="v",…` (escaped), and its
/// value.
struct Line<'a> {
    name: String,
    labels: String,
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
    let mut lines: Vec<Line<'_>> = Vec::new();
    let mut push = |key: &Key, value| {
        lines.push(Line {
            name: metric_name(key.name()),
            labels: labels(key),
            value,
        })
    };
    for (key, counter) in &series.counters {
        push(key, Value::Counter(counter.load(Relaxed)));
    }
    for (key, gauge) in &series.gauges {
        push(key, Value::Gauge(f64::from_bits(gauge.load(Relaxed))));
    }
    for (key, histogram) in &series.histograms {
        push(key, Value::Histogram(histogram.snapshot()));
    }
    lines.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));

    let mut out = String::new();
    let mut current: Option<(&str, Kind)> = None;
    for line in &lines {
        let kind = line.value.kind();
        if current != Some((&line.name, kind)) {
            current = Some((&line.name, kind));
            if let Some(help) = series.help.get(line.name.as_str()) {
                let _ = writeln!(out, "# HELP {} {}", line.name, escape_help(help));
            }
            let _ = writeln!(out, "# TYPE {} {}", line.name, kind.as_str());
        }
        write_series(&mut out, line);
    }
    out
}

fn write_series(out: &mut String, line: &Line<'_>) {
    let (name, labels) = (&line.name, &line.labels);
    match &line.value {
        Value::Counter(value) => {
            let _ = writeln!(out, "{name}{} {value}", braced(labels));
        }
        Value::Gauge(value) => {
            let _ = writeln!(out, "{name}{} {}", braced(labels), Float(*value));
        }
        Value::Histogram(snapshot) => {
            let separator = if labels.is_empty() { "" } else { "," };
            let cumulative = snapshot.cumulative_counts();
            // The last bucket's bound is `+Inf`, which `Float` writes as Prometheus does.
            let les = snapshot.bounds.iter().copied().chain([f64::INFINITY]);
            for (le, count) in les.zip(&cumulative) {
                let le = Float(le);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{{labels}{separator}le=\"{le}\"}} {count}"
                );
            }
            let total = cumulative.last().copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_sum{} {}", braced(labels), Float(snapshot.sum));
            let _ = writeln!(out, "{name}_count{} {total}", braced(labels));
        }
    }
}

/// `{labels}`, or nothing for a series without labels.
fn braced(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

/// `key`'s labels as `name="value",…`, in the order they were given, names sanitized and
/// values escaped.
fn labels(key: &Key) -> String {
    let mut out = String::new();
    for (i, label) in key.labels().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&sanitize(label.key(), false));
        out.push_str("=\"");
        for c in label.value().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

/// A metric name as Prometheus accepts it.
pub(super) fn metric_name(name: &str) -> String {
    sanitize(name, true)
}

/// `name` with every character Prometheus does not allow in a metric name (`[a-zA-Z_:]` then
/// `[a-zA-Z0-9_:]`; no `:` in a label name) replaced by `_`, and a leading digit prefixed
/// with one.
fn sanitize(name: &str, colons: bool) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':');
    let mut out = String::with_capacity(name.len() + 1);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    out.extend(name.chars().map(|c| if allowed(c) { c } else { '_' }));
    out
}

/// Help text with `\` and line breaks escaped, as the format requires.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
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
        assert_eq!(sanitize("a:b", false), "a_b");
        let key = Key::from_parts(
            "m",
            vec![
                metrics::Label::new("path", "a\"b\\c\nd"),
                metrics::Label::new("x-y", "1"),
            ],
        );
        assert_eq!(labels(&key), r#"path="a\"b\\c\nd",x_y="1""#);
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
