//! [`TraceContext`] and [`extract`]: reading the caller's trace context from B3 and W3C Trace
//! Context headers, as Envoy's Zipkin tracer does with `USE_B3_WITH_W3C_PROPAGATION`.
//!
//! Precedence, first match wins:
//! 1. B3 single header `b3: {trace}-{span}[-{state}[-{parent}]]` or a decision alone
//!    (`b3: 0`, `1` or `d`);
//! 2. B3 multi headers `x-b3-traceid` + `x-b3-spanid` (+ `x-b3-parentspanid`), with
//!    `x-b3-sampled` (`1`/`0`, leniently `true`/`false`) and `x-b3-flags: 1` (debug);
//! 3. W3C `traceparent`, and `tracestate` only when `traceparent` parsed.
//!
//! A B3 form that carries only a sampling decision (`b3: 0`, `x-b3-sampled: 0` alone) does not
//! stop the search for ids: a valid `traceparent` then supplies them and the B3 decision
//! overrides its sampled flag (the decision and the ids are read separately, B3 first, as
//! Envoy's Zipkin extractor reads them).
//!
//! Only the first value of each header counts. Malformed values (an empty value, `-`, a wrong
//! length, a non-hex digit, an all-zero id) are ignored and never panic. A malformed `b3` falls
//! back to the multi headers; malformed multi ids (a bad parent included) leave only their
//! sampling decision. B3 ids are accepted in either case (the B3 README says lower hex; an
//! upper-case id is unambiguous, so this parser is lenient), W3C ids in lower case only, as its
//! ABNF requires. A `traceparent` of version `00` must be exactly 55 characters; a higher
//! version is parsed leniently (its first four fields, then the end or a `-`); `ff` is invalid.
//! An invalid `tracestate` (more than 32 members, a bad or repeated key, a bad value) is dropped
//! as a whole; multiple `tracestate` fields are joined with `,`.

use crate::{
    ids::{SpanId, TraceId},
    sampling::Decision,
    trace_reason::RequestIdTrace,
};
use http::{HeaderMap, HeaderName, HeaderValue};

/// B3 single header.
///
/// ```
/// use mesh_trace::context::{B3, Extracted, extract};
/// let mut headers = http::HeaderMap::new();
/// headers.insert(B3, "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d".parse().unwrap());
/// let Extracted::Context(context) = extract(&headers) else { panic!() };
/// assert_eq!((context.sampled, context.debug), (Some(true), true));
/// ```
pub const B3: HeaderName = HeaderName::from_static("b3");
/// B3 trace id (16 or 32 hex digits).
///
/// ```
/// use mesh_trace::{TraceId, context::{X_B3_SPAN_ID, X_B3_TRACE_ID, extract}};
/// let mut headers = http::HeaderMap::new();
/// headers.insert(X_B3_TRACE_ID, "a3ce929d0e0e4736".parse().unwrap()); // 64-bit: the low half
/// headers.insert(X_B3_SPAN_ID, "e457b5a2e4d86bd1".parse().unwrap());
/// let context = extract(&headers).context().cloned().unwrap();
/// assert_eq!(context.trace_id, TraceId::new(0xa3ce929d0e0e4736).unwrap());
/// assert_eq!(context.sampled, None); // deferred
/// ```
pub const X_B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
/// B3 span id (16 hex digits).
///
/// ```
/// use mesh_trace::context::{X_B3_SPAN_ID, X_B3_TRACE_ID, extract};
/// let mut headers = http::HeaderMap::new();
/// headers.insert(X_B3_TRACE_ID, "80f198ee56343ba864fe8b2a57d3eff7".parse().unwrap());
/// headers.insert(X_B3_SPAN_ID, "e457b5a2e4d86bd1".parse().unwrap());
/// let context = extract(&headers).context().cloned().unwrap();
/// assert_eq!(context.span_id.to_string(), "e457b5a2e4d86bd1");
/// headers.insert(X_B3_SPAN_ID, "e457".parse().unwrap()); // wrong length: ignored
/// assert!(extract(&headers).context().is_none());
/// ```
pub const X_B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
/// B3 parent span id (16 hex digits), absent on a root span.
///
/// ```
/// use mesh_trace::{Decision, Propagation, TraceContext, context::X_B3_PARENT_SPAN_ID, inject};
/// let root = TraceContext::root(Decision::default());
/// let mut headers = http::HeaderMap::new();
/// inject(&mut headers, &root, Propagation::default());
/// assert!(!headers.contains_key(X_B3_PARENT_SPAN_ID)); // a root span has no parent
/// inject(&mut headers, &root.clone().child(Decision::default()), Propagation::default());
/// assert_eq!(headers[X_B3_PARENT_SPAN_ID], root.span_id.header_value());
/// ```
pub const X_B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
/// B3 sampling decision: `1` accept, `0` deny, absent defer.
///
/// ```
/// use mesh_trace::context::{Extracted, X_B3_SAMPLED, extract};
/// let mut headers = http::HeaderMap::new();
/// headers.insert(X_B3_SAMPLED, "true".parse().unwrap()); // leniently, as `1`
/// assert_eq!(extract(&headers), Extracted::Decision { sampled: true, debug: false });
/// headers.insert(X_B3_SAMPLED, "0".parse().unwrap());
/// assert_eq!(extract(&headers).sampled(), Some(false));
/// ```
pub const X_B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
/// B3 flags: `1` is debug (implies accept).
///
/// ```
/// use mesh_trace::context::{Extracted, X_B3_FLAGS, extract};
/// let mut headers = http::HeaderMap::new();
/// headers.insert(X_B3_FLAGS, "1".parse().unwrap());
/// assert_eq!(extract(&headers), Extracted::Decision { sampled: true, debug: true });
/// ```
pub const X_B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");
/// W3C `traceparent`.
///
/// ```
/// use mesh_trace::{Decision, Propagation, TraceContext, context::TRACEPARENT, inject};
/// let context = TraceContext::root(Decision { sampled: true, forced: false, debug: false });
/// let mut headers = http::HeaderMap::new();
/// let w3c_only = Propagation { b3_multi: false, b3_single: false, w3c: true };
/// inject(&mut headers, &context, w3c_only);
/// let expected = format!("00-{}-{}-01", context.trace_id, context.span_id);
/// assert_eq!(headers[TRACEPARENT], expected.as_str());
/// assert_eq!(headers.len(), 1);
/// ```
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// W3C `tracestate`.
///
/// ```
/// use mesh_trace::context::{Extracted, TRACEPARENT, TRACESTATE, extract};
/// let mut headers = http::HeaderMap::new();
/// headers.insert(TRACESTATE, "congo=t61rcWkgMzE".parse().unwrap());
/// assert_eq!(extract(&headers), Extracted::Empty); // only read with a `traceparent`
/// let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// headers.insert(TRACEPARENT, parent.parse().unwrap());
/// let context = extract(&headers).context().cloned().unwrap();
/// assert_eq!(context.tracestate.unwrap(), "congo=t61rcWkgMzE");
/// ```
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// One span's position in a trace, as carried between services.
///
/// Extracted from a request, `span_id` is the caller's span; for the span a proxy starts,
/// `parent_id` is the caller's span. `sampled: None` means the decision is deferred.
///
/// ```
/// use mesh_trace::{SpanId, TraceContext, TraceId, context::{Extracted, extract}};
/// let mut headers = http::HeaderMap::new();
/// headers.insert("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1".parse().unwrap());
/// let Extracted::Context(context) = extract(&headers) else { panic!() };
/// assert_eq!(context, TraceContext {
///     trace_id: TraceId::new(0x80f198ee56343ba864fe8b2a57d3eff7).unwrap(),
///     span_id: SpanId::new(0xe457b5a2e4d86bd1).unwrap(),
///     parent_id: None,
///     sampled: Some(true),
///     debug: false,
///     tracestate: None,
/// });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace.
    pub trace_id: TraceId,
    /// This span.
    pub span_id: SpanId,
    /// The span that caused this one; `None` on a root span.
    pub parent_id: Option<SpanId>,
    /// Whether the trace is recorded: `Some(true)` accept, `Some(false)` deny, `None` defer.
    pub sampled: Option<bool>,
    /// Debug (B3 `x-b3-flags: 1` or `b3: …-d`): recorded whatever the sampler says.
    pub debug: bool,
    /// The caller's W3C `tracestate`, kept only while its `traceparent`'s trace is continued.
    pub tracestate: Option<HeaderValue>,
}

impl TraceContext {
    /// A new trace: random 128-bit trace id and span id, no parent, the decision's sampling.
    ///
    /// ```
    /// use mesh_trace::{Decision, TraceContext};
    /// let root = TraceContext::root(Decision { sampled: true, forced: false, debug: false });
    /// assert_eq!((root.parent_id, root.sampled), (None, Some(true)));
    /// ```
    pub fn root(decision: Decision) -> Self {
        TraceContext {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            parent_id: None,
            sampled: Some(decision.sampled),
            debug: decision.debug,
            tracestate: None,
        }
    }

    /// The next span of this trace: same trace id (and `tracestate`), a random span id, this
    /// span as its parent, the decision's sampling.
    ///
    /// ```
    /// use mesh_trace::{Decision, TraceContext};
    /// let root = TraceContext::root(Decision::default());
    /// let child = root.clone().child(Decision::default());
    /// assert_eq!(child.trace_id, root.trace_id);
    /// assert_eq!(child.parent_id, Some(root.span_id));
    /// ```
    pub fn child(self, decision: Decision) -> Self {
        TraceContext {
            trace_id: self.trace_id,
            span_id: SpanId::random(),
            parent_id: Some(self.span_id),
            sampled: Some(decision.sampled),
            debug: decision.debug,
            tracestate: self.tracestate,
        }
    }
}

/// What a request's trace headers carried; see the [module docs](self).
///
/// ```
/// use mesh_trace::context::{Extracted, extract};
/// let mut headers = http::HeaderMap::new();
/// assert_eq!(extract(&headers), Extracted::Empty);
/// headers.insert("b3", "0".parse().unwrap());
/// assert_eq!(extract(&headers), Extracted::Decision { sampled: false, debug: false });
/// assert_eq!(extract(&headers).sampled(), Some(false));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Extracted {
    /// No usable trace header.
    #[default]
    Empty,
    /// A sampling decision without ids (`b3: 0`, `x-b3-sampled: 1` alone, `x-b3-flags: 1`).
    /// `debug` implies `sampled`.
    Decision {
        /// Accept (`true`) or deny.
        sampled: bool,
        /// Debug.
        debug: bool,
    },
    /// The caller's span.
    Context(TraceContext),
}

impl Extracted {
    /// The caller's sampling decision, `None` when deferred.
    ///
    /// ```
    /// use mesh_trace::context::extract;
    /// let mut headers = http::HeaderMap::new();
    /// assert_eq!(extract(&headers).sampled(), None); // deferred
    /// headers.insert("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7".parse().unwrap());
    /// headers.insert("x-b3-spanid", "e457b5a2e4d86bd1".parse().unwrap());
    /// headers.insert("x-b3-sampled", "1".parse().unwrap());
    /// assert_eq!(extract(&headers).sampled(), Some(true));
    /// ```
    pub fn sampled(&self) -> Option<bool> {
        match self {
            Extracted::Empty => None,
            Extracted::Decision { sampled, .. } => Some(*sampled),
            Extracted::Context(context) => context.sampled,
        }
    }

    /// Whether the caller asked for debug.
    ///
    /// ```
    /// use mesh_trace::context::extract;
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("b3", "1".parse().unwrap());
    /// assert!(!extract(&headers).debug());
    /// headers.insert("b3", "d".parse().unwrap());
    /// assert!(extract(&headers).debug());
    /// ```
    pub fn debug(&self) -> bool {
        match self {
            Extracted::Empty => false,
            Extracted::Decision { debug, .. } => *debug,
            Extracted::Context(context) => context.debug,
        }
    }

    /// The caller's span, if ids came with the request.
    ///
    /// ```
    /// use mesh_trace::context::extract;
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("b3", "1".parse().unwrap());
    /// assert!(extract(&headers).context().is_none()); // a decision, no ids
    /// headers.insert("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1".parse().unwrap());
    /// let context = extract(&headers).context().cloned().unwrap();
    /// assert_eq!(context.trace_id.to_string(), "80f198ee56343ba864fe8b2a57d3eff7");
    /// ```
    pub fn context(&self) -> Option<&TraceContext> {
        match self {
            Extracted::Context(context) => Some(context),
            _ => None,
        }
    }

    /// The span to propagate: a [child](TraceContext::child) of the caller's span, else a
    /// [new trace](TraceContext::root).
    ///
    /// ```
    /// use mesh_trace::{Decision, context::Extracted};
    /// let next = Extracted::Empty.next_span(Decision::default());
    /// assert_eq!((next.parent_id, next.sampled), (None, Some(false)));
    /// ```
    pub fn next_span(self, decision: Decision) -> TraceContext {
        match self {
            Extracted::Context(context) => context.child(decision),
            _ => TraceContext::root(decision),
        }
    }
}

/// Reads the caller's trace context from `headers`; see the [module docs](self).
///
/// ```
/// use mesh_trace::context::extract;
/// let mut headers = http::HeaderMap::new();
/// headers.insert(
///     "traceparent",
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap(),
/// );
/// headers.insert("tracestate", "congo=t61rcWkgMzE".parse().unwrap());
/// let context = extract(&headers).context().cloned().unwrap();
/// assert_eq!(context.span_id.to_string(), "00f067aa0ba902b7");
/// assert_eq!(context.sampled, Some(true));
/// assert_eq!(context.tracestate.unwrap(), "congo=t61rcWkgMzE");
/// ```
pub fn extract(headers: &HeaderMap) -> Extracted {
    Scan::new(headers).extract()
}

/// The trace headers, as indices of [`Scan`]'s values and bits of [`Found`]'s masks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    B3,
    TraceId,
    SpanId,
    ParentSpanId,
    Sampled,
    Flags,
    Traceparent,
    Tracestate,
}

impl Slot {
    /// Every slot.
    pub const ALL: [Slot; 8] = [
        Slot::B3,
        Slot::TraceId,
        Slot::SpanId,
        Slot::ParentSpanId,
        Slot::Sampled,
        Slot::Flags,
        Slot::Traceparent,
        Slot::Tracestate,
    ];

    /// This slot's bit in a mask.
    pub const fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The header.
    pub const fn name(self) -> HeaderName {
        match self {
            Slot::B3 => B3,
            Slot::TraceId => X_B3_TRACE_ID,
            Slot::SpanId => X_B3_SPAN_ID,
            Slot::ParentSpanId => X_B3_PARENT_SPAN_ID,
            Slot::Sampled => X_B3_SAMPLED,
            Slot::Flags => X_B3_FLAGS,
            Slot::Traceparent => TRACEPARENT,
            Slot::Tracestate => TRACESTATE,
        }
    }
}

/// A header name this crate reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Known {
    Trace(Slot),
    ForceTrace,
    ClientTraceId,
    RequestId,
}

impl Known {
    /// Classifies a (lower-case) header name.
    ///
    /// Dispatches on the length and first byte, so most names are turned away without reading
    /// them and the rest are compared once, with a fixed-length compare.
    pub fn of(name: &str) -> Option<Known> {
        let name = name.as_bytes();
        let slot = match (name.len(), *name.first()?) {
            (2, b'b') if name == b"b3" => Slot::B3,
            (10, b't') if name == b"tracestate" => Slot::Tracestate,
            (10, b'x') if name == b"x-b3-flags" => Slot::Flags,
            (11, b't') if name == b"traceparent" => Slot::Traceparent,
            (11, b'x') if name == b"x-b3-spanid" => Slot::SpanId,
            (12, b'x') => match name {
                b"x-b3-traceid" => Slot::TraceId,
                b"x-b3-sampled" => Slot::Sampled,
                b"x-request-id" => return Some(Known::RequestId),
                _ => return None,
            },
            (17, b'x') => match name {
                b"x-b3-parentspanid" => Slot::ParentSpanId,
                b"x-client-trace-id" => return Some(Known::ClientTraceId),
                _ => return None,
            },
            (19, b'x') if name == b"x-envoy-force-trace" => return Some(Known::ForceTrace),
            _ => return None,
        };
        Some(Known::Trace(slot))
    }
}

/// Which trace-related headers a request carries (not their values), for replacing them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Found {
    /// [`Slot`] bits of the trace headers present.
    pub present: u8,
    /// [`Slot`] bits of the trace headers present more than once.
    pub repeated: u8,
    /// `x-envoy-force-trace`.
    pub force_trace: bool,
    /// `x-client-trace-id`.
    pub client_trace_id: bool,
    /// `x-request-id`: what the sampler reads of it (its first value).
    pub request_id: Option<RequestIdTrace>,
}

impl Found {
    /// Whether `slot`'s header is present.
    pub fn has(self, slot: Slot) -> bool {
        self.present & slot.bit() != 0
    }
}

/// The first value of each trace header, found in one pass over the request's headers so that
/// reading them costs no hashed lookup.
///
/// `V` is `&HeaderValue` for reading ([`Scan::new`]) or `&mut HeaderValue` for reading and then
/// rewriting the same values in place ([`Scan::new_mut`]), so that propagating a trace walks the
/// headers once.
#[derive(Debug)]
pub(crate) struct Scan<V> {
    /// By [`Slot`].
    values: [Option<V>; 8],
    /// Which headers are present.
    pub found: Found,
    /// Every `tracestate` field joined with `,`, when there is more than one.
    joined_tracestate: Option<Vec<u8>>,
}

impl<'a> Scan<&'a HeaderValue> {
    /// Scans `headers`.
    pub fn new(headers: &'a HeaderMap) -> Self {
        Scan::of(headers.iter())
    }
}

impl<'a> Scan<&'a mut HeaderValue> {
    /// Scans `headers`, keeping each trace header's first value writable.
    pub fn new_mut(headers: &'a mut HeaderMap) -> Self {
        Scan::of(headers.iter_mut())
    }

    /// The first values, by [`Slot`], to rewrite.
    pub fn into_values(self) -> [Option<&'a mut HeaderValue>; 8] {
        self.values
    }
}

impl<V: std::ops::Deref<Target = HeaderValue>> Scan<V> {
    fn of<'n>(headers: impl Iterator<Item = (&'n HeaderName, V)>) -> Self {
        let mut scan: Scan<V> = Scan {
            values: Default::default(),
            found: Found::default(),
            joined_tracestate: None,
        };
        for (name, value) in headers {
            match Known::of(name.as_str()) {
                Some(Known::Trace(slot)) => {
                    match &scan.values[slot as usize] {
                        Some(first) => {
                            scan.found.repeated |= slot.bit();
                            if slot == Slot::Tracestate {
                                let joined = scan
                                    .joined_tracestate
                                    .get_or_insert_with(|| first.as_bytes().to_vec());
                                joined.push(b',');
                                joined.extend_from_slice(value.as_bytes());
                            }
                        }
                        None => scan.values[slot as usize] = Some(value),
                    }
                    scan.found.present |= slot.bit();
                }
                Some(Known::ForceTrace) => scan.found.force_trace = true,
                Some(Known::ClientTraceId) => scan.found.client_trace_id = true,
                Some(Known::RequestId) => {
                    let id = RequestIdTrace::of(value.as_bytes());
                    scan.found.request_id.get_or_insert(id);
                }
                None => {}
            }
        }
        scan
    }

    /// The first value of `slot`'s header.
    fn get(&self, slot: Slot) -> Option<&HeaderValue> {
        self.values[slot as usize].as_deref()
    }

    /// [`extract`] from the scanned values.
    pub fn extract(&self) -> Extracted {
        const B3_MULTI: u8 = Slot::TraceId.bit()
            | Slot::SpanId.bit()
            | Slot::ParentSpanId.bit()
            | Slot::Sampled.bit()
            | Slot::Flags.bit();
        let b3 = match self
            .get(Slot::B3)
            .and_then(|v| parse_b3_single(v.as_bytes()))
        {
            Some(b3) => b3,
            None if self.found.present & B3_MULTI != 0 => self.extract_b3_multi(),
            None => Extracted::Empty,
        };
        if matches!(b3, Extracted::Context(_)) {
            return b3;
        }
        let Some((trace_id, span_id, flag)) = self
            .get(Slot::Traceparent)
            .and_then(|v| parse_traceparent(v.as_bytes()))
        else {
            return b3;
        };
        let (sampled, debug) = match b3 {
            Extracted::Decision { sampled, debug } => (sampled, debug),
            _ => (flag, false),
        };
        Extracted::Context(TraceContext {
            trace_id,
            span_id,
            parent_id: None,
            sampled: Some(sampled),
            debug,
            tracestate: self.tracestate(),
        })
    }

    /// The B3 multi headers.
    fn extract_b3_multi(&self) -> Extracted {
        let debug = self.get(Slot::Flags).is_some_and(|v| v == "1");
        let sampled = if debug {
            Some(true)
        } else {
            self.get(Slot::Sampled).and_then(|v| match v.as_bytes() {
                b"1" | b"true" => Some(true),
                b"0" | b"false" => Some(false),
                _ => None,
            })
        };
        let ids = || {
            let trace_id = TraceId::from_hex(self.get(Slot::TraceId)?.as_bytes())?;
            let span_id = SpanId::from_hex(self.get(Slot::SpanId)?.as_bytes())?;
            let parent_id = match self.get(Slot::ParentSpanId) {
                Some(parent) => Some(SpanId::from_hex(parent.as_bytes())?),
                None => None,
            };
            Some((trace_id, span_id, parent_id))
        };
        match (ids(), sampled) {
            (Some((trace_id, span_id, parent_id)), sampled) => Extracted::Context(TraceContext {
                trace_id,
                span_id,
                parent_id,
                sampled,
                debug,
                tracestate: None,
            }),
            (None, Some(sampled)) => Extracted::Decision { sampled, debug },
            (None, None) => Extracted::Empty,
        }
    }

    /// The `tracestate` fields joined into one value, `None` when absent or invalid.
    fn tracestate(&self) -> Option<HeaderValue> {
        let first = self.get(Slot::Tracestate)?;
        let value = match &self.joined_tracestate {
            Some(joined) => HeaderValue::from_bytes(joined).ok()?,
            None => first.clone(),
        };
        valid_tracestate(value.as_bytes()).then_some(value)
    }
}

/// A B3 sampling state character: (sampled, debug).
fn sampling_state(state: &[u8]) -> Option<(bool, bool)> {
    match state {
        b"0" => Some((false, false)),
        b"1" => Some((true, false)),
        b"d" => Some((true, true)),
        _ => None,
    }
}

/// `b3: {trace}-{span}[-{state}[-{parent}]]` or `b3: {state}`; `None` when malformed.
fn parse_b3_single(value: &[u8]) -> Option<Extracted> {
    if value.len() == 1 {
        let (sampled, debug) = sampling_state(value)?;
        return Some(Extracted::Decision { sampled, debug });
    }
    let mut fields = value.split(|&b| b == b'-');
    let trace_id = TraceId::from_hex(fields.next()?)?;
    let span_id = SpanId::from_hex(fields.next()?)?;
    let (sampled, debug) = match fields.next() {
        Some(state) => {
            let (sampled, debug) = sampling_state(state)?;
            (Some(sampled), debug)
        }
        None => (None, false),
    };
    let parent_id = match fields.next() {
        Some(parent) => Some(SpanId::from_hex(parent)?),
        None => None,
    };
    if fields.next().is_some() {
        return None;
    }
    Some(Extracted::Context(TraceContext {
        trace_id,
        span_id,
        parent_id,
        sampled,
        debug,
        tracestate: None,
    }))
}

/// Two lower-hex digits.
fn lower_hex_byte(hex: &[u8]) -> Option<u8> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    match hex {
        [high, low] => Some((digit(*high)? << 4) | digit(*low)?),
        _ => None,
    }
}

/// `traceparent`: (trace id, caller's span id, sampled flag); `None` when invalid.
fn parse_traceparent(value: &[u8]) -> Option<(TraceId, SpanId, bool)> {
    if value.len() < 55 {
        return None;
    }
    let version = lower_hex_byte(&value[..2])?;
    let length_ok = match version {
        0xff => false,
        0 => value.len() == 55,
        _ => value.len() == 55 || value[55] == b'-',
    };
    if !length_ok || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let trace_id = TraceId::from_lower_hex(&value[3..35])?;
    let span_id = SpanId::from_lower_hex(&value[36..52])?;
    let flags = lower_hex_byte(&value[53..55])?;
    Some((trace_id, span_id, flags & 0x01 == 0x01))
}

/// At most 32 members, each `key=value` (or empty), with no repeated key.
fn valid_tracestate(value: &[u8]) -> bool {
    let mut keys: [&[u8]; 32] = [&[]; 32];
    let mut count = 0;
    for member in value.split(|&b| b == b',') {
        // Only spaces and tabs can be whitespace in a header value.
        let member = member.trim_ascii();
        if member.is_empty() {
            continue;
        }
        let Some(eq) = member.iter().position(|&b| b == b'=') else {
            return false;
        };
        let (key, value) = (&member[..eq], &member[eq + 1..]);
        if count == 32 || !valid_key(key) || !valid_value(value) || keys[..count].contains(&key) {
            return false;
        }
        keys[count] = key;
        count += 1;
    }
    true
}

/// A `tracestate` key: a lower-case letter or digit, then up to 255 of those and `_-*/@`.
fn valid_key(key: &[u8]) -> bool {
    match key.split_first() {
        Some((first, rest)) => {
            key.len() <= 256
                && (first.is_ascii_lowercase() || first.is_ascii_digit())
                && rest.iter().all(|b| {
                    b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || matches!(b, b'_' | b'-' | b'*' | b'/' | b'@')
                })
        }
        None => false,
    }
}

/// A `tracestate` value: 1–256 printable ASCII characters but `,` and `=`, not ending in a
/// space (trailing spaces were trimmed as whitespace around the member).
fn valid_value(value: &[u8]) -> bool {
    (1..=256).contains(&value.len())
        && value
            .iter()
            .all(|&b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace_reason::TraceReason;

    const TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const SPAN: &str = "e457b5a2e4d86bd1";
    const PARENT: &str = "05e3ac9a4f6e3b90";
    const W3C_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const W3C_SPAN: &str = "00f067aa0ba902b7";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn context(pairs: &[(&str, &str)]) -> TraceContext {
        match extract(&headers(pairs)) {
            Extracted::Context(context) => context,
            other => panic!("no context in {pairs:?}: {other:?}"),
        }
    }

    fn trace(hex: &str) -> TraceId {
        TraceId::from_hex(hex.as_bytes()).unwrap()
    }

    fn span(hex: &str) -> SpanId {
        SpanId::from_hex(hex.as_bytes()).unwrap()
    }

    #[test]
    fn b3_multi_headers() {
        let c = context(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-parentspanid", PARENT),
            ("x-b3-sampled", "1"),
        ]);
        assert_eq!(
            c,
            TraceContext {
                trace_id: trace(TRACE),
                span_id: span(SPAN),
                parent_id: Some(span(PARENT)),
                sampled: Some(true),
                debug: false,
                tracestate: None,
            }
        );
        // Deferred, lenient booleans, debug.
        let ids = [("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN)];
        assert_eq!(context(&ids).sampled, None);
        for (value, sampled) in [("true", Some(true)), ("false", Some(false)), ("yes", None)] {
            let c = context(&[ids[0], ids[1], ("x-b3-sampled", value)]);
            assert_eq!(c.sampled, sampled, "{value}");
        }
        let c = context(&[ids[0], ids[1], ("x-b3-flags", "1"), ("x-b3-sampled", "0")]);
        assert!(c.debug);
        assert_eq!(c.sampled, Some(true));
        let c = context(&[ids[0], ids[1], ("x-b3-flags", "0")]);
        assert!(!c.debug);
    }

    #[test]
    fn b3_single_wins_over_multi() {
        let single = format!("{TRACE}-{SPAN}-0-{PARENT}");
        let c = context(&[
            ("x-b3-traceid", W3C_TRACE),
            ("x-b3-spanid", W3C_SPAN),
            ("x-b3-sampled", "1"),
            ("b3", &single),
        ]);
        assert_eq!(c.trace_id, trace(TRACE));
        assert_eq!(c.span_id, span(SPAN));
        assert_eq!(c.parent_id, Some(span(PARENT)));
        assert_eq!(c.sampled, Some(false));
        // A decision-only `b3` also wins over the multi headers' decision.
        let e = extract(&headers(&[("x-b3-sampled", "1"), ("b3", "0")]));
        assert_eq!(e.sampled(), Some(false));
        // A malformed `b3` falls back to the multi headers.
        let c = context(&[
            ("b3", "-"),
            ("x-b3-traceid", W3C_TRACE),
            ("x-b3-spanid", W3C_SPAN),
        ]);
        assert_eq!(c.trace_id, trace(W3C_TRACE));
    }

    #[test]
    fn b3_single_forms() {
        let c = context(&[("b3", &format!("{TRACE}-{SPAN}"))]);
        assert_eq!((c.sampled, c.debug, c.parent_id), (None, false, None));
        let c = context(&[("b3", &format!("{TRACE}-{SPAN}-d"))]);
        assert_eq!((c.sampled, c.debug), (Some(true), true));
        let c = context(&[("b3", &format!("{TRACE}-{SPAN}-1"))]);
        assert_eq!((c.sampled, c.debug), (Some(true), false));
        for malformed in [
            String::new(),
            "-".into(),
            "2".into(),
            "true".into(),
            TRACE.to_string(),
            format!("{TRACE}-"),
            format!("{TRACE}-{SPAN}-"),
            format!("{TRACE}-{SPAN}-x"),
            format!("{TRACE}-{SPAN}-10"),
            format!("{TRACE}-{SPAN}-1-"),
            format!("{TRACE}-{SPAN}-1-{PARENT}-"),
            format!("{TRACE}-{SPAN}-1-{PARENT}-1"),
            format!("{TRACE}-{PARENT}{SPAN}"),
            format!("{}-{SPAN}", "0".repeat(32)),
            format!("{TRACE}-{}", "0".repeat(16)),
        ] {
            assert_eq!(
                extract(&headers(&[("b3", &malformed)])),
                Extracted::Empty,
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn sixty_four_bit_trace_ids() {
        let c = context(&[("b3", &format!("{}-{SPAN}-1", &TRACE[16..]))]);
        assert_eq!(
            c.trace_id.get(),
            0xa864fe8b2a57d3eff7 & u128::from(u64::MAX)
        );
        let c = context(&[("x-b3-traceid", &TRACE[16..]), ("x-b3-spanid", SPAN)]);
        assert_eq!(c.trace_id.to_string(), format!("{:0>32}", &TRACE[16..]));
        // Neither 16 nor 32.
        let e = extract(&headers(&[
            ("x-b3-traceid", &TRACE[8..]),
            ("x-b3-spanid", SPAN),
        ]));
        assert_eq!(e, Extracted::Empty);
    }

    #[test]
    fn b3_accepts_upper_case_ids() {
        let c = context(&[
            ("x-b3-traceid", &TRACE.to_uppercase()),
            ("x-b3-spanid", &SPAN.to_uppercase()),
        ]);
        assert_eq!((c.trace_id, c.span_id), (trace(TRACE), span(SPAN)));
    }

    #[test]
    fn decision_only_headers() {
        let decision = |pairs: &[(&str, &str)]| extract(&headers(pairs));
        assert_eq!(
            decision(&[("b3", "0")]),
            Extracted::Decision {
                sampled: false,
                debug: false
            }
        );
        assert_eq!(
            decision(&[("b3", "1")]),
            Extracted::Decision {
                sampled: true,
                debug: false
            }
        );
        assert_eq!(
            decision(&[("b3", "d")]),
            Extracted::Decision {
                sampled: true,
                debug: true
            }
        );
        assert_eq!(
            decision(&[("x-b3-sampled", "0")]),
            Extracted::Decision {
                sampled: false,
                debug: false
            }
        );
        assert_eq!(
            decision(&[("x-b3-flags", "1")]),
            Extracted::Decision {
                sampled: true,
                debug: true
            }
        );
        // Ids that do not parse leave the decision.
        assert_eq!(
            decision(&[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-parentspanid", "-"),
                ("x-b3-sampled", "0"),
            ]),
            Extracted::Decision {
                sampled: false,
                debug: false
            }
        );
        assert_eq!(
            decision(&[("x-b3-spanid", SPAN), ("x-b3-sampled", "1")]).sampled(),
            Some(true)
        );
        assert_eq!(decision(&[("x-b3-sampled", "")]), Extracted::Empty);
        assert_eq!(decision(&[("x-b3-traceid", TRACE)]), Extracted::Empty);
    }

    #[test]
    fn first_value_wins() {
        let c = context(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-traceid", W3C_TRACE),
            ("x-b3-spanid", SPAN),
        ]);
        assert_eq!(c.trace_id, trace(TRACE));
        // A bad first value is not rescued by a good second one.
        let e = extract(&headers(&[
            ("x-b3-traceid", ""),
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
        ]));
        assert_eq!(e, Extracted::Empty);
    }

    fn traceparent(value: &str) -> Extracted {
        extract(&headers(&[
            ("traceparent", value),
            ("tracestate", "congo=t61rcWkgMzE"),
        ]))
    }

    #[test]
    fn w3c_traceparent() {
        let c = context(&[("traceparent", &format!("00-{W3C_TRACE}-{W3C_SPAN}-01"))]);
        assert_eq!(
            c,
            TraceContext {
                trace_id: trace(W3C_TRACE),
                span_id: span(W3C_SPAN),
                parent_id: None,
                sampled: Some(true),
                debug: false,
                tracestate: None,
            }
        );
        // Flags are tested bit by bit.
        for (flags, sampled) in [("00", false), ("09", true), ("08", false), ("ff", true)] {
            let e = traceparent(&format!("00-{W3C_TRACE}-{W3C_SPAN}-{flags}"));
            assert_eq!(e.sampled(), Some(sampled), "{flags}");
        }
        // A higher version: the first four fields, then the end or a dash.
        let e = traceparent(&format!(
            "cc-{W3C_TRACE}-{W3C_SPAN}-01-what-the-future-holds"
        ));
        assert_eq!(e.context().unwrap().trace_id, trace(W3C_TRACE));
        assert!(
            traceparent(&format!("01-{W3C_TRACE}-{W3C_SPAN}-00"))
                .context()
                .is_some()
        );
    }

    #[test]
    fn invalid_traceparents_are_ignored_with_their_tracestate() {
        let zero_trace = "0".repeat(32);
        let zero_span = "0".repeat(16);
        for invalid in [
            format!("ff-{W3C_TRACE}-{W3C_SPAN}-01"),
            format!("00-{zero_trace}-{W3C_SPAN}-01"),
            format!("00-{W3C_TRACE}-{zero_span}-01"),
            format!("00-{W3C_TRACE}-{W3C_SPAN}-01-"),
            format!("00-{W3C_TRACE}-{W3C_SPAN}-1"),
            format!("00-{W3C_TRACE}-{W3C_SPAN}-001"),
            format!("00-{}-{W3C_SPAN}-01", &W3C_TRACE[16..]),
            format!("00-{W3C_TRACE}0-{W3C_SPAN}-01"),
            format!("00-{W3C_TRACE}-{W3C_SPAN}0-01"),
            format!("00-{}-{W3C_SPAN}-01", W3C_TRACE.to_uppercase()),
            format!("00-{W3C_TRACE}-{}-01", W3C_SPAN.to_uppercase()),
            format!("0A-{W3C_TRACE}-{W3C_SPAN}-01"),
            format!("00-{W3C_TRACE}-{W3C_SPAN}-0A"),
            format!("00_{W3C_TRACE}-{W3C_SPAN}-01"),
            format!("00-{W3C_TRACE}_{W3C_SPAN}-01"),
            format!("00-{W3C_TRACE}-{W3C_SPAN}_01"),
            format!("0-{W3C_TRACE}-{W3C_SPAN}-01"),
            format!("cc-{W3C_TRACE}-{W3C_SPAN}-01.what"),
            format!("cc-{W3C_TRACE}-{W3C_SPAN}-0"),
            format!(" 00-{W3C_TRACE}-{W3C_SPAN}-01"),
            format!("00-{W3C_TRACE}-{W3C_SPAN}-0x"),
            String::new(),
        ] {
            assert_eq!(traceparent(&invalid), Extracted::Empty, "{invalid:?}");
        }
    }

    #[test]
    fn tracestate_follows_its_traceparent() {
        let parent = format!("00-{W3C_TRACE}-{W3C_SPAN}-01");
        let c = context(&[
            ("traceparent", &parent),
            ("tracestate", "rojo=00f067aa0ba902b7"),
        ]);
        assert_eq!(c.tracestate.unwrap(), "rojo=00f067aa0ba902b7");
        // Several fields are joined.
        let c = context(&[
            ("traceparent", &parent),
            ("tracestate", "rojo=1"),
            ("tracestate", "congo=2"),
            ("tracestate", ""),
        ]);
        assert_eq!(c.tracestate.unwrap(), "rojo=1,congo=2,");
        // Not when B3 supplied the ids: that tracestate belongs to another parent.
        let c = context(&[
            ("b3", &format!("{TRACE}-{SPAN}")),
            ("traceparent", &parent),
            ("tracestate", "rojo=1"),
        ]);
        assert_eq!((c.trace_id, c.tracestate), (trace(TRACE), None));
        // Not without a traceparent.
        assert_eq!(
            extract(&headers(&[("tracestate", "rojo=1")])),
            Extracted::Empty
        );
    }

    #[test]
    fn invalid_tracestate_is_dropped_but_traceparent_kept() {
        let parent = format!("00-{W3C_TRACE}-{W3C_SPAN}-01");
        let state = |value: &str| context(&[("traceparent", &parent), ("tracestate", value)]);
        let members = |n: usize| {
            (0..n)
                .map(|i| format!("k{i}=v"))
                .collect::<Vec<_>>()
                .join(",")
        };
        for kept in [
            "foo=1".to_string(),
            "\t foo=1 \t".into(),
            "foo=1 ,, bar=2".into(),
            "1abc=1".into(),
            "a_-*/@b=x y".into(),
            "foo= 1".into(),
            format!("foo={}", "x".repeat(256)),
            format!("{}=1", "k".repeat(256)),
            members(32) + ",",
            String::new(),
        ] {
            assert!(state(&kept).tracestate.is_some(), "{kept:?}");
        }
        for dropped in [
            "foo =1".to_string(),
            "FOO=1".into(),
            "foo.bar=1".into(),
            "@foo=1".into(),
            "=1".into(),
            "foo".into(),
            "foo=".into(),
            "foo=bar=baz".into(),
            "foo=1,bar=2,foo=3".into(),
            "foo=a\tb".into(),
            format!("foo={}", "x".repeat(257)),
            format!("{}=1", "k".repeat(257)),
            members(33),
        ] {
            let c = state(&dropped);
            assert_eq!(c.tracestate, None, "{dropped:?}");
            assert_eq!(c.trace_id, trace(W3C_TRACE));
        }
        // Non-ASCII bytes.
        let mut headers = headers(&[("traceparent", &parent)]);
        headers.insert(
            TRACESTATE,
            HeaderValue::from_bytes("foo=é".as_bytes()).unwrap(),
        );
        assert_eq!(extract(&headers).context().unwrap().tracestate, None);
    }

    #[test]
    fn b3_decision_with_w3c_ids() {
        let c = context(&[
            ("b3", "0"),
            ("traceparent", &format!("00-{W3C_TRACE}-{W3C_SPAN}-01")),
            ("tracestate", "rojo=1"),
        ]);
        assert_eq!(c.trace_id, trace(W3C_TRACE));
        assert_eq!(c.sampled, Some(false));
        assert_eq!(c.tracestate.unwrap(), "rojo=1");
        // B3 ids win over the traceparent.
        let c = context(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("traceparent", &format!("00-{W3C_TRACE}-{W3C_SPAN}-01")),
        ]);
        assert_eq!((c.trace_id, c.sampled), (trace(TRACE), None));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let valid = format!("00-{W3C_TRACE}-{W3C_SPAN}-01");
        let single = format!("{TRACE}-{SPAN}-1-{PARENT}");
        let names = [
            "b3",
            "traceparent",
            "x-b3-traceid",
            "x-b3-spanid",
            "tracestate",
        ];
        for source in [valid.as_bytes(), single.as_bytes()] {
            for len in 0..=source.len() {
                for garbage in [b'-', b'0', b'\t', 0x80, b'z', b'F'] {
                    let mut value = source[..len].to_vec();
                    value.push(garbage);
                    value.extend_from_slice(&source[len..]);
                    for name in names {
                        let mut headers = HeaderMap::new();
                        if let Ok(value) = HeaderValue::from_bytes(&value) {
                            headers.insert(name, value.clone());
                            headers.insert("x-b3-spanid", value);
                            let _ = extract(&headers);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn scan_finds_the_names() {
        let headers = headers(&[
            ("host", "a"),
            ("b3", "0"),
            ("x-b3-whatever", "1"),
            ("x-b3-sampled", "1"),
            ("tracestate", "a=1"),
            ("tracestate", "b=1"),
            ("x-envoy-force-trace", ""),
            ("x-client-trace-id", "c-1"),
            ("x-request-id", "1"),
        ]);
        let scan = Scan::new(&headers);
        assert_eq!(
            scan.found,
            Found {
                present: Slot::B3.bit() | Slot::Sampled.bit() | Slot::Tracestate.bit(),
                repeated: Slot::Tracestate.bit(),
                force_trace: true,
                client_trace_id: true,
                // Shorter than the eight hex digits a draw takes.
                request_id: Some(RequestIdTrace {
                    reason: TraceReason::NotTraceable,
                    point: None,
                }),
            }
        );
        assert!(scan.found.has(Slot::B3) && !scan.found.has(Slot::Traceparent));
        assert_eq!(scan.get(Slot::Tracestate).unwrap(), "a=1");
        let others = [
            ("bb3", ""),
            ("x-b3", ""),
            ("traceparents", ""),
            ("x-b3-", ""),
            ("x-client-trace-ix", ""),
        ];
        assert_eq!(
            Scan::new(&super::tests::headers(&others)).found,
            Found::default()
        );
        for slot in Slot::ALL {
            assert_eq!(Known::of(slot.name().as_str()), Some(Known::Trace(slot)));
        }
    }
}
