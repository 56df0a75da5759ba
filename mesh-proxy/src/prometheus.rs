//! The sidecar's own Prometheus recorder, when built with feature `prometheus` (the default).
//!
//! Without the feature, [`PrometheusHandle`] is a type with no values, so every
//! `Option<PrometheusHandle>` is `None`: the Istio metrics go to the process's global `metrics`
//! recorder, and admin `/stats/prometheus` shows the Envoy-style stats alone.

use crate::StartError;
use mesh_trace::metrics::MetricsRecorder;

#[cfg(feature = "prometheus")]
pub use metrics_exporter_prometheus::PrometheusHandle;

/// Stands in for `metrics_exporter_prometheus::PrometheusHandle` in a build without the
/// `prometheus` feature; it has no values.
#[cfg(not(feature = "prometheus"))]
#[derive(Clone, Debug)]
pub enum PrometheusHandle {}

#[cfg(not(feature = "prometheus"))]
impl PrometheusHandle {
    /// Never called: there is no handle.
    pub fn render(&self) -> String {
        match *self {}
    }

    /// Never called: there is no handle.
    pub fn run_upkeep(&self) {
        match *self {}
    }
}

/// The recorder metrics go to when nobody chose one: a Prometheus recorder with Istio's
/// histogram buckets for `istio_*` metrics and the handle that renders it (its upkeep must run
/// on a timer: see [`run_upkeep`](crate::sidecar::run_upkeep)); without the `prometheus`
/// feature, the global recorder and no handle.
///
/// ```
/// use mesh_proxy::prometheus::default_recorder;
/// use mesh_trace::metrics::MetricsRecorder;
/// let (recorder, handle) = default_recorder().unwrap();
/// // With the `prometheus` feature (the default): a recorder of its own and its handle.
/// assert!(matches!(recorder, MetricsRecorder::Owned(_)));
/// assert_eq!(handle.unwrap().render(), "", "nothing recorded yet");
/// ```
pub fn default_recorder() -> Result<(MetricsRecorder, Option<PrometheusHandle>), StartError> {
    #[cfg(feature = "prometheus")]
    {
        use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Prefix("istio_".into()),
                &mesh_trace::metrics::ISTIO_BUCKETS,
            )
            .map_err(|e| StartError::Telemetry(e.to_string()))?
            .build_recorder();
        let handle = recorder.handle();
        Ok((
            MetricsRecorder::Owned(std::sync::Arc::new(recorder)),
            Some(handle),
        ))
    }
    #[cfg(not(feature = "prometheus"))]
    Ok((MetricsRecorder::Global, None))
}
