//! [`MeasureError`]: why a canary's metric could not be measured.

use super::prometheus_query::UnknownMetric;

/// Why a metric check could not be measured. The check fails, as Flagger fails a check that
/// has no value, and the Canary's status gives this error's text as the reason.
///
/// ```
/// use mesh_proxy::canary::{MeasureError, UnknownMetric};
/// let unknown: MeasureError = UnknownMetric("error-budget".into()).into();
/// assert_eq!(unknown.to_string(), "unknown metric error-budget");
/// let idle = MeasureError::NoValues("query sum(rate(...))".into());
/// assert_eq!(idle.to_string(), "no values found for query sum(rate(...))");
/// ```
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MeasureError {
    /// The source has no such metric: Flagger's built-in checks are `request-success-rate` and
    /// `request-duration`.
    #[error(transparent)]
    UnknownMetric(#[from] UnknownMetric),
    /// The window held no value (what was measured, over what): nothing reached the canary,
    /// or the query matched no series.
    #[error("no values found for {0}")]
    NoValues(String),
    /// The metrics server could not be asked: its address is unusable, it was unreachable or
    /// too slow, or its answer was cut short.
    #[error("{0}")]
    Unavailable(String),
    /// The metrics server answered without a value: it refused the query, or the answer was
    /// not Prometheus's JSON.
    #[error("{0}")]
    BadAnswer(String),
    /// A failure of a source of another kind (a [`CanaryMetrics`](super::CanaryMetrics)
    /// written for another backend), in its own words.
    #[error("{0}")]
    Source(String),
}
