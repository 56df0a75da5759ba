//! Reading a `metrics-util` debugging recorder: the series a sidecar or an in-process mesh
//! recorded, summed over snapshots.

use mesh::trace::metrics::MetricsRecorder;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// The request counter's name.
pub const REQUESTS_TOTAL: &str = "istio_requests_total";

/// The labels of one series.
pub type Labels = BTreeMap<String, String>;

/// Everything the debugging recorder has reported so far, summed over snapshots (a snapshot
/// resets counters and drains histograms).
pub struct Metrics {
    snapshotter: Snapshotter,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    counters: BTreeMap<(String, Labels), u64>,
    histograms: BTreeMap<(String, Labels), Vec<f64>>,
}

impl Metrics {
    /// A debugging recorder, and the `Metrics` that reads it.
    pub fn recorder() -> (MetricsRecorder, Metrics) {
        let recorder = DebuggingRecorder::new();
        let metrics = Metrics {
            snapshotter: recorder.snapshotter(),
            seen: Mutex::default(),
        };
        (MetricsRecorder::Owned(Arc::new(recorder)), metrics)
    }

    /// Takes a snapshot and adds it to what was seen before.
    pub fn collect(&self) {
        let mut seen = self.seen.lock().unwrap();
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let name = key.key().name().to_owned();
            let labels: Labels = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            match value {
                DebugValue::Counter(n) => *seen.counters.entry((name, labels)).or_default() += n,
                DebugValue::Histogram(samples) => seen
                    .histograms
                    .entry((name, labels))
                    .or_default()
                    .extend(samples.into_iter().map(|s| s.0)),
                DebugValue::Gauge(_) => {}
            }
        }
    }

    /// Every `istio_requests_total` series counted so far, with its count.
    pub fn requests(&self) -> Vec<(Labels, u64)> {
        self.counters(REQUESTS_TOTAL)
    }

    /// Every series of counter `name` counted so far, with its count.
    pub fn counters(&self, name: &str) -> Vec<(Labels, u64)> {
        self.collect();
        let seen = self.seen.lock().unwrap();
        seen.counters
            .iter()
            .filter(|((counter, _), n)| counter == name && **n > 0)
            .map(|((_, labels), n)| (labels.clone(), *n))
            .collect()
    }

    /// The `istio_requests_total` series once at least `n` requests are counted (a request is
    /// recorded when its response body ends: by the time the client has read it), after a
    /// moment more in which any extra recording would show up.
    pub async fn wait_for_requests(&self, n: u64) -> Vec<(Labels, u64)> {
        let deadline = Instant::now() + Duration::from_secs(3);
        while total(&self.requests()) < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.requests()
    }

    /// The samples of histogram `name` in the series with `labels`.
    pub fn samples(&self, name: &str, labels: &Labels) -> Vec<f64> {
        self.collect();
        let seen = self.seen.lock().unwrap();
        seen.histograms
            .get(&(name.to_owned(), labels.clone()))
            .cloned()
            .unwrap_or_default()
    }
}

/// Requests counted over all `series`.
pub fn total(series: &[(Labels, u64)]) -> u64 {
    series.iter().map(|(_, n)| n).sum()
}
