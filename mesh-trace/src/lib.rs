//! Telemetry for `mesh`: trace context propagation and `x-request-id`, as Envoy does them
//! under Istio.
//!
//! - [`TraceLayer`] (module [`layer`]): for each request, reads the caller's trace context,
//!   decides whether to sample, starts the next span, writes it into the request headers and the
//!   request extensions (a [`TraceContext`]), and makes sure the request has an `x-request-id`.
//!   The same steps as plain functions, for clients: [`propagate`], or [`extract`],
//!   [`Sampler::decide`], [`Extracted::next_span`] and [`inject`].
//! - [`context`]: [`TraceContext`] and [`extract`] — B3 single header, then B3 multi headers,
//!   then W3C `traceparent`/`tracestate`.
//! - [`sampling`]: [`Sampler`] — `x-client-trace-id`, `x-envoy-force-trace` and the caller's
//!   sampled or debug decision force a trace, the caller's not-sampled decision is honoured, anything else is
//!   sampled at a percentage (Istio's default 1 %).
//! - [`propagation`]: [`inject`] — replaces stale trace headers with B3 multi headers and
//!   `traceparent` by default (Istio's Zipkin provider with `USE_B3_WITH_W3C_PROPAGATION`), or
//!   the `b3` single header.
//! - [`ids`]: [`TraceId`] (128-bit) and [`SpanId`] (64-bit), non-zero, hex without allocating.
//! - [`request_id`]: [`RequestIdLayer`], Envoy's `x-request-id` on its own;
//!   [`trace_reason`]: the trace reason Envoy keeps in it, and the random draw taken from it,
//!   so that every hop decides alike.
//! - [`span_layer`]: [`SpanLayer`](span_layer::SpanLayer) — one `CLIENT` or `SERVER` span per
//!   sampled request with Envoy's and Istio's tags ([`identity`], [`custom_tags`]), as a
//!   [`span::FinishedSpan`];
//! - [`reporter`]: [`SpanReporter`](reporter::SpanReporter) — a bounded queue (full: drop and
//!   count) and a batching export task, off the request path;
//! - `zipkin` (feature `zipkin`, on by default): export through `opentelemetry-zipkin` (Zipkin
//!   v2 JSON to `/api/v2/spans`); with feature `otlp`, `otlp`: OTLP/HTTP (protobuf to
//!   `/v1/traces`) through `opentelemetry-otlp`; both over `collector_client::CollectorClient`.
//! - [`access_log`]: [`AccessLog`](access_log::AccessLog) — Istio's default access log, text
//!   or JSON, one line per request, buffered on the request path and written by a background
//!   thread (full buffer: drop and count).
//! - [`metrics`]: Istio's standard metrics ([`IstioMetrics`](metrics::IstioMetrics)) through
//!   the `metrics` facade; `prometheus` (feature `prometheus`, on by default): a recorder
//!   for them, with fixed-bucket histograms that cost two atomic adds a sample, rendered in
//!   Prometheus's text format by `metrics-exporter-prometheus`.
//!
//! ```
//! use mesh_trace::{Propagation, Sampler, TraceContext, TraceLayer};
//! use tower::{Layer, ServiceExt, service_fn};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let svc = TraceLayer::new(Sampler::default(), Propagation::default()).layer(service_fn(
//!     |req: http::Request<()>| async move {
//!         let context = req.extensions().get::<TraceContext>().unwrap();
//!         Ok::<_, std::convert::Infallible>((context.parent_id, req.headers().clone()))
//!     },
//! ));
//! let request = http::Request::builder()
//!     .header("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7")
//!     .header("x-b3-spanid", "e457b5a2e4d86bd1")
//!     .header("x-b3-sampled", "1")
//!     .body(())
//!     .unwrap();
//! let (parent, headers) = svc.oneshot(request).await.unwrap();
//! assert_eq!(parent.unwrap().to_string(), "e457b5a2e4d86bd1");
//! assert_eq!(headers["x-b3-traceid"], "80f198ee56343ba864fe8b2a57d3eff7");
//! assert_eq!(headers["x-b3-parentspanid"], "e457b5a2e4d86bd1");
//! assert!(headers["traceparent"].to_str().unwrap().ends_with("-01"));
//! assert_eq!(headers["x-request-id"].len(), 36);
//! # });
//! ```

pub mod access_log;
#[cfg(any(feature = "zipkin", feature = "otlp"))]
pub mod collector_client;
pub mod context;
pub mod custom_tags;
pub mod identity;
pub mod ids;
pub mod layer;
pub mod metrics;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "prometheus")]
pub mod prometheus;
pub mod propagation;
pub mod reporter;
pub mod request_id;
pub mod sampling;
pub mod span;
pub mod span_layer;
pub mod telemetry_layer;
#[cfg(test)]
mod test_bodies;
pub mod trace_reason;
#[cfg(feature = "zipkin")]
pub mod zipkin;

pub use context::{Extracted, TraceContext, extract};
pub use ids::{SpanId, TraceId};
pub use layer::{Trace, TraceLayer, propagate};
pub use propagation::{Propagation, inject};
pub use request_id::{RequestIdLayer, X_REQUEST_ID, ensure_request_id};
pub use sampling::{Decision, Sampler, X_CLIENT_TRACE_ID, X_ENVOY_FORCE_TRACE};
