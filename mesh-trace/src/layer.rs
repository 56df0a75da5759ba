//! [`TraceLayer`]: trace context propagation for each request, as Envoy's tracer does it at a
//! sidecar.
//!
//! For each request: [extract](crate::extract) the caller's context, [decide](Sampler::decide)
//! whether to sample, make the next span — a child of the caller's span (same trace id, a new
//! random span id, the caller's span as parent) or the root of a new trace (random 128-bit trace
//! id, no parent) — [inject](crate::inject) it into the request headers, make sure the request
//! has an `x-request-id` (a UUIDv4 unless it brought one) recording the trace reason as
//! Envoy's does ([`trace_reason`](crate::trace_reason)), and insert the new span's
//! [`TraceContext`] (with `sampled: Some(decision)`) into the request extensions for span
//! recording and logs further in.
//!
//! The same steps are plain functions for a client that sends requests itself: [`propagate`]
//! (or its pieces) and [`ensure_request_id`].
//!
//! Cost: one pass over the headers finds the trace headers' values, so reading them costs no
//! hashed lookup; a second rewrites the ones present in place; values are formatted on the
//! stack. Nothing is recorded here, so the not-sampled path does what the sampled one does. It
//! allocates the new header values only — for a new trace `x-b3-traceid`, `x-b3-spanid`,
//! `traceparent` and `x-request-id`; for a continued B3 trace just `x-b3-spanid` and
//! `traceparent` (the trace id is kept, the caller's span id value moves to
//! `x-b3-parentspanid`) — plus the request extension.

use crate::{
    context::{Found, Scan, TraceContext},
    ids::hex_header_value,
    propagation::{Injection, Propagation},
    request_id::{X_REQUEST_ID, ensure_request_id, uuid_v4_bytes},
    sampling::{Forcing, Sampler},
    trace_reason::{RequestIdTrace, TraceReason},
};
use http::{HeaderMap, Request};
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Propagates trace context on every request; see the [module docs](self).
///
/// ```
/// use mesh_trace::{Propagation, Sampler, TraceContext, TraceLayer};
/// use tower::{Layer, ServiceExt, service_fn};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let svc = TraceLayer::new(Sampler::from_percent(100.0), Propagation::default()).layer(
///     service_fn(|req: http::Request<()>| async move {
///         let context = req.extensions().get::<TraceContext>().cloned().unwrap();
///         assert_eq!(req.headers()["x-b3-traceid"], context.trace_id.header_value());
///         Ok::<_, std::convert::Infallible>(context)
///     }),
/// );
/// let request = http::Request::builder()
///     .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
///     .body(())
///     .unwrap();
/// let context = svc.oneshot(request).await.unwrap();
/// assert_eq!(context.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(context.parent_id.unwrap().to_string(), "00f067aa0ba902b7");
/// assert_eq!(context.sampled, Some(false)); // the caller's decision is honoured
/// # });
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TraceLayer {
    sampler: Sampler,
    propagation: Propagation,
    /// `false`: tracing is off (see [`TraceLayer::off`]).
    enabled: bool,
    /// Whether the request's [`TraceContext`] joins its extensions (see
    /// [`without_context_extension`](TraceLayer::without_context_extension)).
    context_extension: bool,
}

impl Default for TraceLayer {
    fn default() -> Self {
        TraceLayer::new(Sampler::default(), Propagation::default())
    }
}

impl TraceLayer {
    /// Samples with `sampler` and writes the formats `propagation` selects.
    ///
    /// ```
    /// use mesh_trace::{Propagation, Sampler, TraceLayer};
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let b3_only = Propagation { b3_multi: false, b3_single: true, w3c: false };
    /// let svc = TraceLayer::new(Sampler::from_percent(0.0), b3_only).layer(service_fn(
    ///     |req: http::Request<()>| async move { Ok::<_, std::convert::Infallible>(req.headers().clone()) },
    /// ));
    /// let headers = svc.oneshot(http::Request::new(())).await.unwrap();
    /// // A new trace, not sampled at 0 %, written as the `b3` single header only.
    /// assert!(headers["b3"].to_str().unwrap().ends_with("-0"));
    /// assert!(!headers.contains_key("traceparent") && !headers.contains_key("x-b3-traceid"));
    /// # });
    /// ```
    pub fn new(sampler: Sampler, propagation: Propagation) -> Self {
        TraceLayer {
            sampler,
            propagation,
            enabled: true,
            context_extension: true,
        }
    }

    /// Propagates as before, but leaves the request's [`TraceContext`] out of its extensions:
    /// for a stack in which nothing below reads it (the sidecar's outbound stack when it makes
    /// no spans), where it would cost an allocation per request for no one.
    ///
    /// ```
    /// use mesh_trace::{TraceContext, TraceLayer};
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let svc = TraceLayer::default().without_context_extension().layer(service_fn(
    ///     |req: http::Request<()>| async move { Ok::<_, std::convert::Infallible>(req) },
    /// ));
    /// let request = svc.oneshot(http::Request::new(())).await.unwrap();
    /// assert!(request.headers().contains_key("traceparent"), "propagated");
    /// assert!(request.extensions().get::<TraceContext>().is_none());
    /// # });
    /// ```
    pub fn without_context_extension(mut self) -> Self {
        self.context_extension = false;
        self
    }

    /// Tracing turned off (Istio's `meshConfig.enableTracing: false`): the trace headers a
    /// request carries pass as they are, nothing is decided or sampled, and no
    /// [`TraceContext`] is attached (so no span is made); `x-request-id` is still made when
    /// absent, as Envoy's request-id extension does.
    ///
    /// ```
    /// use mesh_trace::{TraceContext, TraceLayer};
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let svc = TraceLayer::off().layer(service_fn(|req: http::Request<()>| async move {
    ///     let traced = req.extensions().get::<TraceContext>().is_some();
    ///     Ok::<_, std::convert::Infallible>((traced, req.headers().clone()))
    /// }));
    /// let request = http::Request::builder().header("x-b3-sampled", "1").body(()).unwrap();
    /// let (traced, headers) = svc.oneshot(request).await.unwrap();
    /// assert!(!traced);
    /// assert_eq!(headers["x-b3-sampled"], "1", "passed on as it came");
    /// assert!(!headers.contains_key("x-b3-traceid") && !headers.contains_key("traceparent"));
    /// assert_eq!(headers["x-request-id"].len(), 36);
    /// # });
    /// ```
    pub fn off() -> Self {
        TraceLayer {
            enabled: false,
            ..TraceLayer::default()
        }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Trace<S> {
        Trace {
            inner,
            sampler: self.sampler,
            propagation: self.propagation,
            enabled: self.enabled,
            context_extension: self.context_extension,
        }
    }
}

/// The service [`TraceLayer`] produces.
///
/// ```
/// use mesh_trace::{Trace, TraceContext, TraceLayer};
/// use tower::{Layer, Service, ServiceExt, service_fn};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut svc: Trace<_> = TraceLayer::default().layer(service_fn(|req: http::Request<()>| async move {
///     let sampled = req.extensions().get::<TraceContext>().unwrap().sampled;
///     Ok::<_, std::convert::Infallible>((sampled, req.headers()["x-request-id"].clone()))
/// }));
/// let request = http::Request::builder().header("x-request-id", "abc").body(()).unwrap();
/// let (sampled, id) = svc.ready().await.unwrap().call(request).await.unwrap();
/// assert!(sampled.is_some()); // always decided
/// assert_eq!(id, "abc"); // the client's id is kept
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct Trace<S> {
    inner: S,
    sampler: Sampler,
    propagation: Propagation,
    enabled: bool,
    context_extension: bool,
}

impl<S, B> Service<Request<B>> for Trace<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        let headers = request.headers_mut();
        if !self.enabled {
            ensure_request_id(headers);
            return self.inner.call(request);
        }
        // Room for what may be added (trace id, span id, parent, sampled, traceparent and
        // request id): one growth of the map at most, not one per insert.
        headers.reserve(6);
        let context = propagate_with_request_id(headers, &self.sampler, self.propagation);
        if self.context_extension {
            request.extensions_mut().insert(context);
        }
        self.inner.call(request)
    }
}

/// Extracts, decides, starts the next span and injects it into `headers`; returns the new
/// span's context. What [`TraceLayer`] does to each request, but the `x-request-id`.
///
/// ```
/// use mesh_trace::{Propagation, Sampler, propagate};
/// let mut headers = http::HeaderMap::new();
/// headers.insert("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1".parse().unwrap());
/// let context = propagate(&mut headers, &Sampler::default(), Propagation::default());
/// assert_eq!(context.sampled, Some(true));
/// assert_eq!(context.parent_id.unwrap().to_string(), "e457b5a2e4d86bd1");
/// assert_eq!(headers["x-b3-traceid"], "80f198ee56343ba864fe8b2a57d3eff7");
/// assert_eq!(headers["x-b3-parentspanid"], "e457b5a2e4d86bd1");
/// assert!(!headers.contains_key("b3"));
/// ```
pub fn propagate(
    headers: &mut HeaderMap,
    sampler: &Sampler,
    propagation: Propagation,
) -> TraceContext {
    propagate_found(headers, sampler, propagation, false).0
}

/// [`propagate`], and the request's `x-request-id`: one is made (a UUIDv4) when there is
/// none, and it records the trace reason, as Envoy's UUID request-id extension keeps it
/// ([`trace_reason`](crate::trace_reason)). A new id is made before the decision, so that the
/// random draw is taken from it, as the next proxies will take theirs.
fn propagate_with_request_id(
    headers: &mut HeaderMap,
    sampler: &Sampler,
    propagation: Propagation,
) -> TraceContext {
    let (context, found, reason, new_id) = propagate_found(headers, sampler, propagation, true);
    match (found.request_id, new_id) {
        (_, Some(mut new_id)) => {
            reason.mark(&mut new_id);
            headers.insert(X_REQUEST_ID, hex_header_value(&new_id));
        }
        (Some(id), None) if id.reason != reason => {
            let marked = headers.get(X_REQUEST_ID).and_then(|id| reason.marked(id));
            if let Some(marked) = marked {
                headers.insert(X_REQUEST_ID, marked);
            }
        }
        _ => {}
    }
    context
}

/// [`propagate`], also returning which headers the request came with, the trace reason for
/// its `x-request-id`, and, with `make_id`, the text of a new id for a request without one
/// (made before the decision, which is drawn from it).
fn propagate_found(
    headers: &mut HeaderMap,
    sampler: &Sampler,
    propagation: Propagation,
    make_id: bool,
) -> (TraceContext, Found, TraceReason, Option<[u8; 36]>) {
    let scan = Scan::new_mut(headers);
    let found = scan.found;
    let new_id = (make_id && found.request_id.is_none()).then(uuid_v4_bytes);
    let extracted = scan.extract();
    let request_id = found
        .request_id
        .or(new_id.as_ref().map(|id| RequestIdTrace::of(id)));
    let forcing = Forcing {
        client: found.client_trace_id,
        service: found.force_trace,
    };
    let (decision, reason) = sampler.decide_with(&extracted, forcing, request_id);
    let context = extracted.next_span(decision);
    let injection = Injection::new(&context, propagation);
    let rewritten = injection.rewrite(scan);
    injection.finish(headers, rewritten);
    (context, found, reason, new_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{SpanId, TraceId};
    use std::convert::Infallible;
    use tower::{ServiceExt, service_fn};

    const TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const SPAN: &str = "e457b5a2e4d86bd1";

    /// Sends a request with these headers through the layer; returns what the inner service
    /// received.
    async fn through(
        layer: TraceLayer,
        pairs: &[(&'static str, &str)],
    ) -> (HeaderMap, TraceContext) {
        let svc = layer.layer(service_fn(|req: Request<()>| async move {
            let context = req.extensions().get::<TraceContext>().cloned().unwrap();
            Ok::<_, Infallible>((req.headers().clone(), context))
        }));
        let mut request = Request::new(());
        for (name, value) in pairs {
            request.headers_mut().append(*name, value.parse().unwrap());
        }
        svc.oneshot(request).await.unwrap()
    }

    fn is_lower_hex(s: &str, len: usize) -> bool {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    #[tokio::test]
    async fn child_of_incoming_keeps_trace_id_and_sets_parent() {
        let layer = TraceLayer::new(Sampler::from_percent(0.0), Propagation::default());
        let (headers, context) = through(
            layer,
            &[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
                ("x-b3-sampled", "1"),
            ],
        )
        .await;
        assert_eq!(headers["x-b3-traceid"], TRACE);
        assert_eq!(headers["x-b3-parentspanid"], SPAN);
        let span = headers["x-b3-spanid"].to_str().unwrap();
        assert!(is_lower_hex(span, 16));
        assert_ne!(span, SPAN);
        assert_eq!(headers["x-b3-sampled"], "1");
        assert_eq!(
            headers["traceparent"],
            format!("00-{TRACE}-{span}-01").as_str()
        );
        assert_eq!(
            context,
            TraceContext {
                trace_id: TraceId::from_hex(TRACE.as_bytes()).unwrap(),
                span_id: SpanId::from_hex(span.as_bytes()).unwrap(),
                parent_id: Some(SpanId::from_hex(SPAN.as_bytes()).unwrap()),
                sampled: Some(true),
                debug: false,
                tracestate: None,
            }
        );
    }

    #[tokio::test]
    async fn root_gets_a_new_128_bit_trace() {
        let (headers, context) = through(TraceLayer::default(), &[("b3", "0")]).await;
        let trace = headers["x-b3-traceid"].to_str().unwrap();
        assert!(is_lower_hex(trace, 32));
        assert!(is_lower_hex(headers["x-b3-spanid"].to_str().unwrap(), 16));
        assert!(!headers.contains_key("x-b3-parentspanid"));
        assert!(!headers.contains_key("b3"));
        assert_eq!(headers["x-b3-sampled"], "0");
        assert_eq!(context.trace_id.to_string(), trace);
        assert_eq!((context.parent_id, context.sampled), (None, Some(false)));
        // Two roots are two traces.
        let (other, _) = through(TraceLayer::default(), &[]).await;
        assert_ne!(other["x-b3-traceid"], trace);
    }

    #[tokio::test]
    async fn w3c_child_keeps_tracestate_and_forced_sampling() {
        let layer = TraceLayer::new(Sampler::from_percent(0.0), Propagation::default());
        let (headers, context) = through(
            layer,
            &[
                ("traceparent", &format!("00-{TRACE}-{SPAN}-00")),
                ("tracestate", "rojo=00f067aa0ba902b7"),
                ("x-envoy-force-trace", "1"),
            ],
        )
        .await;
        assert_eq!(headers["x-b3-traceid"], TRACE);
        assert_eq!(headers["x-b3-parentspanid"], SPAN);
        assert_eq!(headers["x-b3-sampled"], "1");
        let traceparent = headers["traceparent"].to_str().unwrap();
        assert!(traceparent.starts_with(&format!("00-{TRACE}-")));
        assert!(traceparent.ends_with("-01"));
        assert_eq!(headers["tracestate"], "rojo=00f067aa0ba902b7");
        assert_eq!(context.tracestate.unwrap(), "rojo=00f067aa0ba902b7");
    }

    /// A request id that sampling at `percent` draws in (`0000_0000`: point 0) or out
    /// (`0000_270f`: point 9 999), recording `reason` (its version digit).
    fn request_id(drawn_in: bool, reason: char) -> String {
        let first = if drawn_in { "00000000" } else { "0000270f" };
        format!("{first}-5634-{reason}ba8-a4fe-8b2a57d3eff7")
    }

    #[tokio::test]
    async fn the_request_id_records_the_trace_reason_and_every_hop_draws_from_it() {
        let at = |percent| TraceLayer::new(Sampler::from_percent(percent), Propagation::default());
        let reason_of = |headers: &HeaderMap| headers["x-request-id"].as_bytes()[14] as char;
        // A new id: sampled at 100 % records `9`, and the decision is in the context.
        let (headers, context) = through(at(100.0), &[]).await;
        assert_eq!((reason_of(&headers), context.sampled), ('9', Some(true)));
        // Forced by `x-envoy-force-trace`: `a`.
        let (headers, _) = through(at(0.0), &[("x-envoy-force-trace", "true")]).await;
        assert_eq!(reason_of(&headers), 'a');
        // A client's trace id: `b`, on a new id or on one not traced yet, and ahead of
        // `x-envoy-force-trace`, whose `a` it replaces.
        let client = ("x-client-trace-id", "checkout-42");
        let (headers, context) = through(at(0.0), &[client]).await;
        assert_eq!((reason_of(&headers), context.sampled), ('b', Some(true)));
        let id = request_id(false, '4');
        let (headers, _) = through(at(0.0), &[client, ("x-request-id", &id)]).await;
        assert_eq!(headers["x-request-id"], request_id(false, 'b').as_str());
        let both = [client, ("x-envoy-force-trace", "1")];
        assert_eq!(reason_of(&through(at(0.0), &both).await.0), 'b');
        assert_eq!(
            through(at(0.0), &both).await.0["x-client-trace-id"],
            "checkout-42"
        );
        // The next hop, with only `x-request-id` forwarded and sampling 0 %, keeps the trace:
        // the id says it is sampled (`9`) or forced (`a`, `b`).
        for reason in ['9', 'a', 'b'] {
            let id = request_id(false, reason);
            let (headers, context) = through(at(0.0), &[("x-request-id", &id)]).await;
            assert_eq!(context.sampled, Some(true), "{reason}");
            assert_eq!(headers["x-request-id"], id.as_str(), "kept as it came");
        }
        // Not traced yet: the draw is the id's, so every proxy at 50 % agrees.
        let (headers, context) =
            through(at(50.0), &[("x-request-id", &request_id(true, '4'))]).await;
        assert_eq!(context.sampled, Some(true));
        assert_eq!(headers["x-request-id"], request_id(true, '9').as_str());
        for _ in 0..20 {
            let id = request_id(false, '4');
            let (headers, context) = through(at(50.0), &[("x-request-id", &id)]).await;
            assert_eq!(context.sampled, Some(false));
            assert_eq!(headers["x-request-id"], id.as_str());
        }
        // A caller's explicit B3 decision still wins, and the id records Envoy's own reason.
        let id = request_id(true, '4');
        let pairs = [("x-request-id", id.as_str()), ("x-b3-sampled", "0")];
        let (headers, context) = through(at(50.0), &pairs).await;
        assert_eq!(context.sampled, Some(false));
        assert_eq!(reason_of(&headers), '9');
        // An id that is not a UUID is kept as it is; the draw is random then.
        let (headers, _) = through(at(100.0), &[("x-request-id", "abc")]).await;
        assert_eq!(headers["x-request-id"], "abc");
    }

    #[tokio::test]
    async fn request_id_generated_or_kept() {
        let never = TraceLayer::new(Sampler::from_percent(0.0), Propagation::default());
        let (headers, _) = through(never, &[]).await;
        let id = headers["x-request-id"].to_str().unwrap();
        assert_eq!((id.len(), &id[14..15]), (36, "4"));
        let (headers, _) = through(TraceLayer::default(), &[("x-request-id", "abc")]).await;
        assert_eq!(headers.get_all("x-request-id").iter().count(), 1);
        assert_eq!(headers["x-request-id"], "abc");
    }

    #[tokio::test]
    async fn propagation_formats_follow_the_layer() {
        let layer = TraceLayer::new(
            Sampler::from_percent(100.0),
            Propagation {
                b3_multi: false,
                b3_single: true,
                w3c: false,
            },
        );
        let (headers, context) = through(
            layer,
            &[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("traceparent", &format!("00-{TRACE}-{SPAN}-01")),
            ],
        )
        .await;
        let expected = format!("{TRACE}-{}-1-{SPAN}", context.span_id);
        assert_eq!(headers["b3"], expected.as_str());
        assert_eq!(headers.len(), 2, "{headers:?}"); // b3 and x-request-id
    }

    #[test]
    fn propagate_is_usable_on_a_client() {
        let mut headers = HeaderMap::new();
        let first = propagate(&mut headers, &Sampler::default(), Propagation::default());
        assert_eq!(first.parent_id, None);
        // Propagating again continues the same trace one level down.
        let second = propagate(&mut headers, &Sampler::default(), Propagation::default());
        assert_eq!(second.trace_id, first.trace_id);
        assert_eq!(second.parent_id, Some(first.span_id));
        assert_eq!(second.sampled, first.sampled);
    }
}
