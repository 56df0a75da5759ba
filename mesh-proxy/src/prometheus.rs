//! The sidecar's own Prometheus recorder, when built with feature `prometheus` (the default).
//!
//! Without the feature, [`PrometheusHandle`] is a type with no values, so every
//! `Option<PrometheusHandle>` is `None`: the Istio metrics go to the process's global `metrics`
//! recorder, and admin `/stats/prometheus` shows the Envoy-style stats alone.

use crate::StartError;
use mesh_trace::metrics::MetricsRecorder;

#[cfg(feature = "prometheus")]
pub use mesh_trace::prometheus::PrometheusHandle;

/// Stands in for `mesh_trace::prometheus::PrometheusHandle` in a build without the
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
}

/// The recorder metrics go to when nobody chose one: a `mesh_trace::prometheus::PrometheusRecorder`
/// with Istio's histogram buckets for `istio_*` metrics and the handle that renders it; without the `prometheus`
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
        let recorder = mesh_trace::prometheus::PrometheusRecorder::new()
            .with_buckets_for_prefix("istio_", &mesh_trace::metrics::ISTIO_BUCKETS)?;
        let handle = recorder.handle();
        Ok((
            MetricsRecorder::Owned(std::sync::Arc::new(recorder)),
            Some(handle),
        ))
    }
    #[cfg(not(feature = "prometheus"))]
    Ok((MetricsRecorder::Global, None))
}
