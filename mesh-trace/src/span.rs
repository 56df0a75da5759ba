//! [`FinishedSpan`]: one proxy hop as recorded — the span the sidecar reports for a request it
//! sent (`CLIENT`, outbound) or received (`SERVER`, inbound) — and its OpenTelemetry form.

use crate::{SpanId, TraceContext};
use opentelemetry::{
    InstrumentationScope, KeyValue,
    trace::{SpanContext, SpanKind as OtelKind, Status, TraceFlags, TraceState},
};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use std::{
    borrow::Cow,
    time::{Duration, SystemTime},
};

/// The attribute that marks a span of a debug trace ([`TraceContext::debug`]: B3
/// `x-b3-flags: 1` or `b3: …-d`), which the OpenTelemetry span model has no field for. The
/// Zipkin `collector_client::CollectorClient` (features `zipkin`, `otlp`) turns it into the v2
/// span's `debug: true`; other exporters show it as an ordinary attribute.
///
/// ```
/// use mesh_trace::{Decision, TraceContext, span::{DEBUG_ATTRIBUTE, FinishedSpan, SpanKind}};
/// use std::time::{Duration, SystemTime};
/// let span = |debug| FinishedSpan {
///     context: TraceContext::root(Decision { sampled: true, forced: false, debug }),
///     kind: SpanKind::Server,
///     name: "catalog:80/*".into(),
///     start: SystemTime::now(),
///     duration: Duration::from_millis(2),
///     tags: vec![],
///     error: false,
/// };
/// let marked = |debug| span(debug).into_span_data().attributes.iter().any(|kv| kv.key.as_str() == DEBUG_ATTRIBUTE);
/// assert!(marked(true));
/// assert!(!marked(false));
/// ```
pub const DEBUG_ATTRIBUTE: &str = "mesh.debug";

/// Which side of a hop a span records.
///
/// ```
/// use mesh_trace::{Decision, TraceContext, span::{FinishedSpan, SpanKind}};
/// use std::time::{Duration, SystemTime};
/// let span = FinishedSpan {
///     context: TraceContext::root(Decision { sampled: true, forced: false, debug: false }),
///     kind: SpanKind::Server,
///     name: "catalog:80/*".into(),
///     start: SystemTime::now(),
///     duration: Duration::from_millis(2),
///     tags: vec![],
///     error: false,
/// };
/// assert_eq!(span.into_span_data().span_kind, opentelemetry::trace::SpanKind::Server);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    /// A request the proxy sent upstream (outbound).
    Client,
    /// A request the proxy received for its workload (inbound).
    Server,
}

/// A span ready to export.
///
/// ```
/// use mesh_trace::{Decision, TraceContext, span::{FinishedSpan, SpanKind}};
/// use opentelemetry::trace::Status;
/// # use std::time::{Duration, SystemTime};
/// let parent = TraceContext::root(Decision { sampled: true, forced: false, debug: false });
/// let span = FinishedSpan {
///     context: parent.clone().child(Decision { sampled: true, forced: false, debug: false }),
///     kind: SpanKind::Client,
///     name: "catalog:80/*".into(),
///     start: SystemTime::now(),
///     duration: Duration::from_millis(2),
///     tags: vec![("http.status_code".into(), "503".into())],
///     error: true, // a 5xx
/// };
/// let data = span.into_span_data();
/// assert_eq!(data.parent_span_id.to_string(), parent.span_id.to_string());
/// assert_eq!(data.status, Status::error("true"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct FinishedSpan {
    /// The span's trace, id and parent.
    pub context: TraceContext,
    /// Client or server side.
    pub kind: SpanKind,
    /// Operation name (lowercase; Istio's `host:port/*`).
    pub name: String,
    /// When the request arrived.
    pub start: SystemTime,
    /// How long until the response (at least 1 µs, as Zipkin requires).
    pub duration: Duration,
    /// Tags (Envoy's and custom ones); a debug trace adds [`DEBUG_ATTRIBUTE`] on export.
    pub tags: Vec<(Cow<'static, str>, String)>,
    /// Whether the span failed (5xx or a local error): Envoy's `error: true`.
    pub error: bool,
}

impl FinishedSpan {
    /// The OpenTelemetry span data the Zipkin exporter takes.
    ///
    /// ```
    /// use mesh_trace::{Decision, TraceContext, span::{FinishedSpan, SpanKind}};
    /// use std::time::{Duration, SystemTime};
    /// let span = FinishedSpan {
    ///     context: TraceContext::root(Decision { sampled: true, forced: false, debug: false }),
    ///     kind: SpanKind::Client,
    ///     name: "catalog:80/*".into(),
    ///     start: SystemTime::now(),
    ///     duration: Duration::ZERO,
    ///     tags: vec![("http.method".into(), "GET".into())],
    ///     error: false,
    /// };
    /// let data = span.into_span_data();
    /// assert_eq!(data.end_time.duration_since(data.start_time).unwrap(), Duration::from_micros(1));
    /// ```
    pub fn into_span_data(self) -> SpanData {
        let context = &self.context;
        let flags = if context.sampled == Some(false) {
            TraceFlags::default()
        } else {
            TraceFlags::SAMPLED
        };
        let span_context = SpanContext::new(
            opentelemetry::trace::TraceId::from_bytes(context.trace_id.get().to_be_bytes()),
            opentelemetry::trace::SpanId::from_bytes(context.span_id.get().to_be_bytes()),
            flags,
            false,
            TraceState::default(),
        );
        let parent = context
            .parent_id
            .map_or(opentelemetry::trace::SpanId::INVALID, |p: SpanId| {
                opentelemetry::trace::SpanId::from_bytes(p.get().to_be_bytes())
            });
        SpanData {
            span_context,
            parent_span_id: parent,
            parent_span_is_remote: true,
            span_kind: match self.kind {
                SpanKind::Client => OtelKind::Client,
                SpanKind::Server => OtelKind::Server,
            },
            name: Cow::Owned(self.name),
            start_time: self.start,
            end_time: self.start + self.duration.max(Duration::from_micros(1)),
            attributes: self
                .tags
                .into_iter()
                .map(|(key, value)| KeyValue::new(key, value))
                .chain(context.debug.then(|| KeyValue::new(DEBUG_ATTRIBUTE, true)))
                .collect(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: if self.error {
                Status::error("true")
            } else {
                Status::Unset
            },
            instrumentation_scope: InstrumentationScope::builder("mesh").build(),
        }
    }
}
