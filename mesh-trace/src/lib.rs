//! Telemetry for `mesh`.
//!
//! For now: [`request_id`], Envoy's `x-request-id` handling. Trace context propagation,
//! Zipkin export, Istio metrics and access logs grow here.

pub mod request_id;

pub use request_id::{RequestIdLayer, X_REQUEST_ID};
