//! Progressive delivery: a built-in controller for Flagger's `Canary` resource.
//!
//! A [`CanaryController`] runs each Canary of a [`LiveSidecar`](crate::LiveSidecar)'s
//! configuration through Flagger's analysis ([`run`]): traffic moves to the canary step by step
//! while its checks — the built-in `request-success-rate` and `request-duration` — pass each
//! `interval`; failed checks reaching `threshold` roll it back to the primary, and reaching
//! `maxWeight` (or the last iteration) promotes it. The checks read the sidecar's own counters
//! ([`OwnMetrics`]) or, to judge a fleet of sidecars together, a Prometheus server with
//! Flagger's queries ([`PrometheusMetrics`]). The admin API shows each canary at `/canaries`
//! and takes `POST /canaries/NAME/{pause,resume,promote,abort}`.

pub mod controller;
pub mod measure_error;
pub mod metrics;
pub mod prometheus_query;
pub mod run;

pub use controller::{
    CanaryAction, CanaryBoard, CanaryController, CanaryLookupError, CanaryOptions, CanaryStatus,
};
pub use measure_error::MeasureError;
pub use metrics::{CanaryMetrics, MeasureFuture, Measurement, MetricQuery, OwnMetrics};
pub use prometheus_query::{PrometheusMetrics, UnknownMetric, flagger_query};
pub use run::{CanaryRun, CheckResult, Event, Phase};
