//! [`PrometheusRecorder`]: a [`metrics`] recorder that keeps every series in memory and renders
//! them in Prometheus's text format ([`PrometheusHandle::render`]), for the admin server's
//! `/stats/prometheus` and `mesh::Mesh::render_prometheus`. The text is written by
//! `metrics-exporter-prometheus`'s [`formatting`](metrics_exporter_prometheus::formatting)
//! functions, so a scrape reads as one of that exporter's own recorders would write it.
//!
//! It is built for the request path. A counter counts into the counting thread's own cell
//! ([`PerThreadCounter`]), a gauge is one atomic, and a histogram sample is a search of its bucket
//! bounds and two additions into the recording thread's own counts ([`BucketHistogram`]), into
//! buckets fixed when the series is registered. Nothing is timestamped, buffered or allocated per
//! sample, so no upkeep task has to drain samples and memory does not grow with traffic between
//! scrapes. (`metrics-exporter-prometheus` keeps each histogram sample with a timestamp until its
//! upkeep runs: per Istio request, three clock reads and three pushes onto a lock-free list.)
//! Series are registered under a mutex, once per distinct key; callers keep the handles, as
//! [`IstioMetrics`](crate::metrics::IstioMetrics) does.
//!
//! Histograms take their bounds from the first rule whose name prefix matches
//! ([`with_buckets_for_prefix`](PrometheusRecorder::with_buckets_for_prefix)), else
//! [`DEFAULT_BUCKETS`]; every histogram renders as a Prometheus histogram.

mod histogram;
mod per_thread;
mod text;

pub use histogram::{BucketHistogram, BucketsError, HistogramSnapshot};
pub use per_thread::PerThreadCounter;

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    atomics::AtomicU64,
};
use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

/// The bounds of a histogram no rule names: the Prometheus client libraries' defaults.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Records into memory for [`PrometheusHandle::render`].
///
/// ```
/// use mesh_trace::prometheus::PrometheusRecorder;
/// use metrics::{Key, Label, Recorder};
/// let recorder = PrometheusRecorder::new()
///     .with_buckets_for_prefix("istio_", &[1.0, 10.0])
///     .unwrap();
/// let handle = recorder.handle();
/// let metadata = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
/// let labels = vec![Label::new("response_code", "200")];
/// let requests = Key::from_parts("istio_requests_total", labels.clone());
/// recorder.register_counter(&requests, &metadata).increment(2);
/// let duration = Key::from_parts("istio_request_duration_milliseconds", labels);
/// recorder.register_histogram(&duration, &metadata).record(4.0);
/// let text = handle.render();
/// assert!(text.contains("# TYPE istio_requests_total counter\nistio_requests_total{response_code=\"200\"} 2\n"));
/// assert!(text.contains("istio_request_duration_milliseconds_bucket{response_code=\"200\",le=\"10\"} 1\n"));
/// assert!(text.contains("istio_request_duration_milliseconds_sum{response_code=\"200\"} 4\n"));
/// ```
#[derive(Clone, Default)]
pub struct PrometheusRecorder {
    registry: Arc<Registry>,
}

/// Renders what a [`PrometheusRecorder`] holds; cheap to clone.
///
/// ```
/// use mesh_trace::prometheus::PrometheusRecorder;
/// let handle = PrometheusRecorder::new().handle();
/// assert_eq!(handle.render(), "", "nothing recorded yet");
/// ```
#[derive(Clone)]
pub struct PrometheusHandle {
    registry: Arc<Registry>,
}

#[derive(Default)]
struct Registry {
    series: Mutex<Series>,
}

/// Every series registered, their help texts, and the bucket rules.
#[derive(Default)]
struct Series {
    counters: HashMap<Key, Arc<PerThreadCounter>>,
    gauges: HashMap<Key, Arc<AtomicU64>>,
    histograms: HashMap<Key, Arc<BucketHistogram>>,
    /// Descriptions by metric name (as rendered).
    help: HashMap<String, SharedString>,
    /// Histogram bounds by metric name prefix, first match wins.
    buckets: Vec<(String, Arc<[f64]>)>,
}

impl Registry {
    fn series(&self) -> MutexGuard<'_, Series> {
        // A panic elsewhere while holding the lock leaves the maps whole.
        self.series.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl PrometheusRecorder {
    /// A recorder with no series and [`DEFAULT_BUCKETS`] for every histogram.
    ///
    /// ```
    /// use mesh_trace::prometheus::PrometheusRecorder;
    /// use metrics::{Key, Recorder};
    /// let recorder = PrometheusRecorder::new();
    /// assert_eq!(recorder.handle().render(), "");
    /// let metadata = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
    /// recorder.register_histogram(&Key::from_name("latency_seconds"), &metadata).record(0.003);
    /// let text = recorder.handle().render();
    /// assert!(text.contains("latency_seconds_bucket{le=\"0.005\"} 1\n"), "{text}");
    /// assert!(text.contains("latency_seconds_bucket{le=\"10\"} 1\n"), "{text}");
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Histograms whose name starts with `prefix` and that no earlier rule took get `bounds`
    /// (finite, rising; `+Inf` is added); applies to histograms registered afterwards.
    ///
    /// ```
    /// use mesh_trace::prometheus::{BucketsError, PrometheusRecorder};
    /// assert!(PrometheusRecorder::new().with_buckets_for_prefix("istio_", &[0.5, 1.0]).is_ok());
    /// let error = PrometheusRecorder::new().with_buckets_for_prefix("istio_", &[]).unwrap_err();
    /// assert_eq!(error, BucketsError::Empty);
    /// ```
    pub fn with_buckets_for_prefix(
        self,
        prefix: impl Into<String>,
        bounds: &[f64],
    ) -> Result<Self, BucketsError> {
        let bounds = histogram::check_bounds(bounds)?;
        self.registry.series().buckets.push((prefix.into(), bounds));
        Ok(self)
    }

    /// The handle that renders this recorder's series.
    ///
    /// ```
    /// use mesh_trace::prometheus::PrometheusRecorder;
    /// use metrics::{Key, Recorder};
    /// let recorder = PrometheusRecorder::new();
    /// let handle = recorder.handle(); // sees series registered after it was taken
    /// let metadata = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
    /// recorder.register_gauge(&Key::from_name("upstream_cx_active"), &metadata).set(3.0);
    /// assert!(handle.render().contains("upstream_cx_active 3\n"));
    /// ```
    pub fn handle(&self) -> PrometheusHandle {
        PrometheusHandle {
            registry: self.registry.clone(),
        }
    }

    fn describe(&self, key: KeyName, description: SharedString) {
        let name = text::metric_name(key.as_str());
        self.registry.series().help.insert(name, description);
    }
}

impl Recorder for PrometheusRecorder {
    fn describe_counter(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(key, description);
    }

    fn describe_gauge(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(key, description);
    }

    fn describe_histogram(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(key, description);
    }

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        let mut series = self.registry.series();
        let counter = series.counters.entry(key.clone()).or_default();
        Counter::from_arc(counter.clone())
    }

    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        let mut series = self.registry.series();
        let gauge = series.gauges.entry(key.clone()).or_default();
        Gauge::from_arc(gauge.clone())
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        let mut series = self.registry.series();
        if let Some(histogram) = series.histograms.get(key) {
            return Histogram::from_arc(histogram.clone());
        }
        let bounds = series
            .buckets
            .iter()
            .find(|(prefix, _)| key.name().starts_with(prefix.as_str()))
            .map_or_else(
                || DEFAULT_BUCKETS.as_slice().into(),
                |(_, bounds)| bounds.clone(),
            );
        let histogram = Arc::new(BucketHistogram::with_bounds(bounds));
        series.histograms.insert(key.clone(), histogram.clone());
        Histogram::from_arc(histogram)
    }
}

impl PrometheusHandle {
    /// Every series in Prometheus's text exposition format (version 0.0.4), sorted by name
    /// and labels; empty when nothing was registered.
    ///
    /// ```
    /// use mesh_trace::prometheus::PrometheusRecorder;
    /// use metrics::{Key, Recorder};
    /// let recorder = PrometheusRecorder::new();
    /// let metadata = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
    /// recorder.describe_counter("b_total".into(), None, "Bees.".into());
    /// recorder.register_counter(&Key::from_name("b_total"), &metadata).increment(2);
    /// recorder.register_counter(&Key::from_name("a_total"), &metadata).increment(1);
    /// assert_eq!(
    ///     recorder.handle().render(),
    ///     "# TYPE a_total counter\na_total 1\n# HELP b_total Bees.\n# TYPE b_total counter\nb_total 2\n"
    /// );
    /// ```
    pub fn render(&self) -> String {
        text::render(&self.registry.series())
    }
}

impl fmt::Debug for PrometheusRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusRecorder").finish_non_exhaustive()
    }
}

impl fmt::Debug for PrometheusHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusHandle").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics::{Label, Level};

    const METADATA: Metadata<'static> = Metadata::new("test", Level::INFO, None);

    fn key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Key {
        let labels: Vec<Label> = labels.iter().map(|(k, v)| Label::new(*k, *v)).collect();
        Key::from_parts(name, labels)
    }

    #[test]
    fn one_series_per_key_whoever_registers_it() {
        let recorder = PrometheusRecorder::new();
        let ok = key("requests_total", &[("code", "200")]);
        recorder.register_counter(&ok, &METADATA).increment(1);
        recorder.register_counter(&ok, &METADATA).increment(2);
        let failed = key("requests_total", &[("code", "503")]);
        recorder.register_counter(&failed, &METADATA).increment(1);
        recorder
            .register_gauge(&key("build", &[]), &METADATA)
            .set(1.0);
        assert_eq!(
            recorder.handle().render(),
            "# TYPE build gauge\nbuild 1\n\
             # TYPE requests_total counter\n\
             requests_total{code=\"200\"} 3\nrequests_total{code=\"503\"} 1\n"
        );
    }

    #[test]
    fn histograms_take_the_first_matching_rule_and_render_cumulative_buckets() {
        let recorder = PrometheusRecorder::new()
            .with_buckets_for_prefix("istio_request", &[1.0, 10.0])
            .unwrap()
            .with_buckets_for_prefix("istio_", &[100.0])
            .unwrap();
        let duration = key("istio_request_duration_milliseconds", &[("code", "200")]);
        let histogram = recorder.register_histogram(&duration, &METADATA);
        for sample in [0.5, 3.0, 30.0] {
            histogram.record(sample);
        }
        recorder
            .register_histogram(&key("istio_other", &[]), &METADATA)
            .record(1.0);
        recorder
            .register_histogram(&key("latency_seconds", &[]), &METADATA)
            .record(0.2);
        // A name that ends in a suffix still gets each of them.
        recorder
            .register_histogram(&key("retry_count", &[]), &METADATA)
            .record(1.0);
        recorder.describe_histogram(
            "istio_request_duration_milliseconds".into(),
            None,
            "Request duration.\nIn ms.".into(),
        );
        let text = recorder.handle().render();
        let expected = "\
# HELP istio_request_duration_milliseconds Request duration.\\nIn ms.
# TYPE istio_request_duration_milliseconds histogram
istio_request_duration_milliseconds_bucket{code=\"200\",le=\"1\"} 1
istio_request_duration_milliseconds_bucket{code=\"200\",le=\"10\"} 2
istio_request_duration_milliseconds_bucket{code=\"200\",le=\"+Inf\"} 3
istio_request_duration_milliseconds_sum{code=\"200\"} 33.5
istio_request_duration_milliseconds_count{code=\"200\"} 3
";
        assert!(text.contains(expected), "{text}");
        assert!(
            text.contains("istio_other_bucket{le=\"100\"} 1\nistio_other_bucket{le=\"+Inf\"} 1\n"),
            "{text}"
        );
        // No rule: the client libraries' default buckets.
        assert!(
            text.contains("latency_seconds_bucket{le=\"0.25\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("latency_seconds_bucket{le=\"0.1\"} 0\n"),
            "{text}"
        );
        for line in [
            "retry_count_bucket{le=\"1\"} 1\n",
            "retry_count_sum 1\n",
            "retry_count_count 1\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn a_metric_registered_as_two_kinds_gets_a_type_line_for_each() {
        let recorder = PrometheusRecorder::new();
        recorder
            .register_counter(&key("m", &[]), &METADATA)
            .increment(1);
        recorder
            .register_gauge(&key("m", &[("a", "b")]), &METADATA)
            .set(2.5);
        let text = recorder.handle().render();
        assert_eq!(text.matches("# TYPE m ").count(), 2, "{text}");
    }
}
