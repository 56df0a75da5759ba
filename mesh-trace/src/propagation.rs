//! [`inject`]: writing a [`TraceContext`] into a request's headers for the next hop.
//!
//! Every trace header the request arrived with is stale once a new span is started, so all of
//! them go first — the B3 multi headers, `b3`, `traceparent` — and `tracestate` too unless the
//! context continues the `traceparent`'s trace (W3C: a restarted trace drops it). Then, per
//! [`Propagation`]:
//! - B3 multi: `x-b3-traceid` (32 lower-hex digits), `x-b3-spanid` (16), `x-b3-parentspanid`
//!   when there is a parent, and `x-b3-sampled: 1`/`0` — or `x-b3-flags: 1` when debug, which
//!   implies sampled (then no `x-b3-sampled`); nothing when the decision is deferred;
//! - B3 single: `b3: {trace}-{span}-{1|0|d}-{parent}` (the parent only with a parent; with a
//!   deferred decision just `{trace}-{span}`, as the parent may not follow a missing state);
//! - W3C: `traceparent: 00-{trace}-{span}-{01|00}` (version and flags downgraded to what this
//!   library knows), and the context's `tracestate`.
//!
//! Values are formatted on the stack. The ids are copied off it once, in `traceparent`'s
//! layout, and each id header written (`traceparent`, `x-b3-traceid`, `x-b3-spanid`,
//! `x-b3-parentspanid`) is a slice of that one copy; `b3` is a copy of its own. A header
//! that already holds the value to write (a continued trace's `x-b3-traceid`, `x-b3-sampled`)
//! is left as it is.

use crate::{
    context::{Found, Scan, Slot, TraceContext},
    ids::{SpanId, hex_header_value},
};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use std::{cell::OnceCell, ops::Range};

/// Which formats [`inject`] writes.
///
/// The default is B3 multi headers and W3C `traceparent`, as Istio's Zipkin provider writes with
/// `USE_B3_WITH_W3C_PROPAGATION`. All `false` strips every trace header.
///
/// ```
/// use mesh_trace::Propagation;
/// assert_eq!(
///     Propagation::default(),
///     Propagation { b3_multi: true, b3_single: false, w3c: true }
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Propagation {
    /// `x-b3-traceid`, `x-b3-spanid`, `x-b3-parentspanid`, `x-b3-sampled` / `x-b3-flags`.
    pub b3_multi: bool,
    /// `b3`.
    pub b3_single: bool,
    /// `traceparent` and `tracestate`.
    pub w3c: bool,
}

impl Default for Propagation {
    fn default() -> Self {
        Propagation {
            b3_multi: true,
            b3_single: false,
            w3c: true,
        }
    }
}

/// Replaces the trace headers in `headers` with `context`'s; see the [module docs](self).
///
/// ```
/// use mesh_trace::{Propagation, SpanId, TraceContext, TraceId, inject};
/// let context = TraceContext {
///     trace_id: TraceId::new(0x4bf92f3577b34da6a3ce929d0e0e4736).unwrap(),
///     span_id: SpanId::new(0x00f067aa0ba902b7).unwrap(),
///     parent_id: None,
///     sampled: Some(true),
///     debug: false,
///     tracestate: None,
/// };
/// let mut headers = http::HeaderMap::new();
/// headers.insert("x-b3-parentspanid", "e457b5a2e4d86bd1".parse().unwrap());
/// inject(&mut headers, &context, Propagation::default());
/// assert_eq!(headers["x-b3-traceid"], "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(headers["x-b3-spanid"], "00f067aa0ba902b7");
/// assert_eq!(headers["x-b3-sampled"], "1");
/// assert_eq!(headers["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// assert!(!headers.contains_key("x-b3-parentspanid")); // stale
/// ```
pub fn inject(headers: &mut HeaderMap, context: &TraceContext, propagation: Propagation) {
    let injection = Injection::new(context, propagation);
    let rewritten = injection.rewrite(Scan::new_mut(headers));
    injection.finish(headers, rewritten);
}

/// [`inject`] in two steps around a [`Scan`] the caller has already read: [`rewrite`] the
/// headers present once in place, through the scan's values (no hashed lookup, and nothing at
/// all when a header already holds the bytes to write), then [`finish`]: insert the missing
/// ones and remove the stale ones. On a continued B3 trace the caller's `x-b3-spanid` value
/// becomes `x-b3-parentspanid` as it is, rather than being formatted and copied again.
///
/// [`rewrite`]: Injection::rewrite
/// [`finish`]: Injection::finish
pub(crate) struct Injection<'c> {
    out: Formatted<'c>,
}

/// What [`Injection::rewrite`] did, for [`Injection::finish`].
pub(crate) struct Rewritten {
    /// The trace headers the request came with.
    found: Found,
    /// [`Slot`] bits of the headers written (or kept) in place.
    done: u8,
    /// The caller's span id value, to become the parent span id.
    parent: Option<HeaderValue>,
}

impl<'c> Injection<'c> {
    /// `context`'s headers, formatted.
    pub fn new(context: &'c TraceContext, propagation: Propagation) -> Self {
        Injection {
            out: Formatted::new(context, propagation),
        }
    }

    /// Writes the headers `scan` found once, in place.
    pub fn rewrite(&self, scan: Scan<&mut HeaderValue>) -> Rewritten {
        let once = scan.found.present & !scan.found.repeated;
        let mut rewritten = Rewritten {
            found: scan.found,
            done: 0,
            parent: None,
        };
        if once == 0 {
            return rewritten;
        }
        let mut present = scan.into_values();
        if once & Slot::SpanId.bit() != 0
            && let (Some(span), Some(parent @ Want::Id(..)), Some(new_span)) = (
                present[Slot::SpanId as usize].as_deref_mut(),
                self.out.get(Slot::ParentSpanId),
                self.out.get(Slot::SpanId),
            )
            && span.as_bytes() == parent.bytes()
        {
            rewritten.parent = Some(std::mem::replace(span, new_span.value()));
            rewritten.done |= Slot::SpanId.bit();
        }
        for slot in Slot::ALL {
            if (once & !rewritten.done) & slot.bit() == 0 {
                continue;
            }
            let (Some(value), Some(want)) =
                (present[slot as usize].as_deref_mut(), self.out.get(slot))
            else {
                continue;
            };
            if value.as_bytes() != want.bytes() {
                *value = value_for(slot, &want, &mut rewritten.parent);
            }
            rewritten.done |= slot.bit();
        }
        rewritten
    }

    /// Inserts the headers not written in place and removes the stale ones.
    pub fn finish(&self, headers: &mut HeaderMap, mut rewritten: Rewritten) {
        for slot in Slot::ALL {
            if rewritten.done & slot.bit() != 0 {
                continue;
            }
            match self.out.get(slot) {
                Some(want) => {
                    headers.insert(slot.name(), value_for(slot, &want, &mut rewritten.parent));
                }
                None if rewritten.found.has(slot) => {
                    headers.remove(slot.name());
                }
                None => {}
            }
        }
    }
}

/// The value to write for `slot`: the caller's span id value kept for the parent, if any, else
/// a new one.
fn value_for(slot: Slot, want: &Want<'_>, parent: &mut Option<HeaderValue>) -> HeaderValue {
    match parent.take_if(|_| slot == Slot::ParentSpanId) {
        Some(parent) => parent,
        None => want.value(),
    }
}

/// The header values to write, formatted on the stack.
struct Formatted<'a> {
    context: &'a TraceContext,
    propagation: Propagation,
    /// `traceparent`'s value, then the parent span id ([`PARENT`]): the trace and span ids at
    /// their offsets in the first ([`TRACE`], [`SPAN`]) serve B3 too, so that every id header
    /// written is a slice of one copy ([`carved`](Self::carved)).
    ids: [u8; IDS_LEN],
    has_parent: bool,
    /// `b3`: `{trace 32}-{span 16}-{state 1}-{parent 16}`, the first `b3_len` bytes.
    b3: [u8; 68],
    b3_len: usize,
    /// `ids` (the parent's part only with a parent), copied once, when the first header value
    /// is made of them.
    carved: OnceCell<Bytes>,
}

/// Where in [`Formatted::ids`] each value lies.
const TRACEPARENT: Range<usize> = 0..55;
const TRACE: Range<usize> = 3..35;
const SPAN: Range<usize> = 36..52;
const PARENT: Range<usize> = 55..71;
const IDS_LEN: usize = 71;

/// One header value to write.
enum Want<'a> {
    Static(&'static str),
    /// Copied on its own.
    Formatted(&'a [u8]),
    /// A slice of [`Formatted::ids`].
    Id(&'a Formatted<'a>, Range<usize>),
    Value(&'a HeaderValue),
}

impl Want<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Want::Static(s) => s.as_bytes(),
            Want::Formatted(bytes) => bytes,
            Want::Id(formatted, range) => &formatted.ids[range.clone()],
            Want::Value(value) => value.as_bytes(),
        }
    }

    fn value(&self) -> HeaderValue {
        match self {
            Want::Static(s) => HeaderValue::from_static(s),
            Want::Formatted(bytes) => hex_header_value(bytes),
            Want::Id(formatted, range) => formatted.id_value(range.clone()),
            Want::Value(value) => (*value).clone(),
        }
    }
}

impl<'a> Formatted<'a> {
    fn new(context: &'a TraceContext, propagation: Propagation) -> Self {
        let trace_id = context.trace_id.to_hex();
        let span_id = context.span_id.to_hex();
        let parent_id = context.parent_id.map(SpanId::to_hex);
        let mut out = Formatted {
            context,
            propagation,
            ids: *b"00-________________________________-________________-00________________",
            has_parent: parent_id.is_some(),
            b3: [0; 68],
            b3_len: 0,
            carved: OnceCell::new(),
        };
        out.ids[TRACE].copy_from_slice(&trace_id);
        out.ids[SPAN].copy_from_slice(&span_id);
        if let Some(parent) = parent_id {
            out.ids[PARENT].copy_from_slice(&parent);
        }
        if propagation.b3_single {
            out.b3[..32].copy_from_slice(&trace_id);
            out.b3[32] = b'-';
            out.b3[33..49].copy_from_slice(&span_id);
            out.b3_len = 49;
            let state = match (context.debug, context.sampled) {
                (true, _) => Some(b'd'),
                (false, Some(true)) => Some(b'1'),
                (false, Some(false)) => Some(b'0'),
                (false, None) => None,
            };
            if let Some(state) = state {
                out.b3[49] = b'-';
                out.b3[50] = state;
                out.b3_len = 51;
                if let Some(parent) = parent_id {
                    out.b3[51] = b'-';
                    out.b3[52..].copy_from_slice(&parent);
                    out.b3_len = 68;
                }
            }
        }
        if propagation.w3c && (context.debug || context.sampled == Some(true)) {
            out.ids[TRACEPARENT.end - 1] = b'1';
        }
        out
    }

    /// The header value of `ids[range]`: a slice of their one copy.
    fn id_value(&self, range: Range<usize>) -> HeaderValue {
        let len = if self.has_parent {
            IDS_LEN
        } else {
            PARENT.start
        };
        let carved = self
            .carved
            .get_or_init(|| mesh_core::header_value::carve(&self.ids[..len]));
        // Lower-hex digits and dashes are always a valid header value.
        HeaderValue::from_maybe_shared(carved.slice(range))
            .unwrap_or_else(|_| HeaderValue::from_static("0"))
    }

    /// What `slot`'s header should hold; `None`: it should be absent.
    fn get(&self, slot: Slot) -> Option<Want<'_>> {
        let Propagation {
            b3_multi,
            b3_single,
            w3c,
        } = self.propagation;
        let debug = self.context.debug;
        match slot {
            Slot::TraceId if b3_multi => Some(Want::Id(self, TRACE)),
            Slot::SpanId if b3_multi => Some(Want::Id(self, SPAN)),
            Slot::ParentSpanId if b3_multi && self.has_parent => Some(Want::Id(self, PARENT)),
            Slot::Sampled if b3_multi && !debug => self
                .context
                .sampled
                .map(|sampled| Want::Static(if sampled { "1" } else { "0" })),
            Slot::Flags if b3_multi && debug => Some(Want::Static("1")),
            Slot::B3 if b3_single => Some(Want::Formatted(&self.b3[..self.b3_len])),
            Slot::Traceparent if w3c => Some(Want::Id(self, TRACEPARENT)),
            Slot::Tracestate if w3c => self.context.tracestate.as_ref().map(Want::Value),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        context::{
            B3, Extracted, Known, TRACEPARENT, X_B3_PARENT_SPAN_ID, X_B3_SAMPLED, X_B3_SPAN_ID,
            X_B3_TRACE_ID, extract,
        },
        ids::TraceId,
    };
    use http::HeaderName;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";
    const PARENT: &str = "e457b5a2e4d86bd1";

    fn context(sampled: Option<bool>, debug: bool, parent: bool) -> TraceContext {
        TraceContext {
            trace_id: TraceId::from_hex(TRACE.as_bytes()).unwrap(),
            span_id: SpanId::from_hex(SPAN.as_bytes()).unwrap(),
            parent_id: parent.then(|| SpanId::from_hex(PARENT.as_bytes()).unwrap()),
            sampled,
            debug,
            tracestate: None,
        }
    }

    const ALL: Propagation = Propagation {
        b3_multi: true,
        b3_single: true,
        w3c: true,
    };

    /// The headers as sorted `name: value` lines.
    fn injected(
        context: &TraceContext,
        propagation: Propagation,
        stale: &[(&str, &str)],
    ) -> Vec<String> {
        let mut headers = HeaderMap::new();
        for (name, value) in stale {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        inject(&mut headers, context, propagation);
        let mut lines: Vec<_> = headers
            .iter()
            .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap()))
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn every_id_header_is_a_slice_of_one_copy() {
        let mut headers = HeaderMap::new();
        inject(&mut headers, &context(Some(true), false, true), ALL);
        let start = |name: &str| headers[name].as_bytes().as_ptr() as usize;
        let traceparent = start("traceparent");
        assert_eq!(start("x-b3-traceid"), traceparent + 3);
        assert_eq!(start("x-b3-spanid"), traceparent + 36);
        assert_eq!(start("x-b3-parentspanid"), traceparent + 55);
        // Without W3C the B3 ids are still one copy.
        let b3_only = Propagation {
            w3c: false,
            ..Propagation::default()
        };
        let mut headers = HeaderMap::new();
        inject(&mut headers, &context(Some(true), false, false), b3_only);
        let trace = headers["x-b3-traceid"].as_bytes().as_ptr() as usize;
        assert_eq!(
            headers["x-b3-spanid"].as_bytes().as_ptr() as usize,
            trace + 33
        );
    }

    #[test]
    fn exact_output_sampled_child() {
        assert_eq!(
            injected(&context(Some(true), false, true), ALL, &[]),
            [
                format!("b3: {TRACE}-{SPAN}-1-{PARENT}"),
                format!("traceparent: 00-{TRACE}-{SPAN}-01"),
                format!("x-b3-parentspanid: {PARENT}"),
                "x-b3-sampled: 1".into(),
                format!("x-b3-spanid: {SPAN}"),
                format!("x-b3-traceid: {TRACE}"),
            ]
        );
    }

    #[test]
    fn exact_output_not_sampled_root() {
        assert_eq!(
            injected(&context(Some(false), false, false), ALL, &[]),
            [
                format!("b3: {TRACE}-{SPAN}-0"),
                format!("traceparent: 00-{TRACE}-{SPAN}-00"),
                "x-b3-sampled: 0".into(),
                format!("x-b3-spanid: {SPAN}"),
                format!("x-b3-traceid: {TRACE}"),
            ]
        );
    }

    #[test]
    fn debug_sends_flags_not_sampled() {
        assert_eq!(
            injected(
                &context(Some(false), true, true),
                ALL,
                &[("x-b3-sampled", "0")]
            ),
            [
                format!("b3: {TRACE}-{SPAN}-d-{PARENT}"),
                format!("traceparent: 00-{TRACE}-{SPAN}-01"),
                "x-b3-flags: 1".into(),
                format!("x-b3-parentspanid: {PARENT}"),
                format!("x-b3-spanid: {SPAN}"),
                format!("x-b3-traceid: {TRACE}"),
            ]
        );
    }

    #[test]
    fn deferred_decision() {
        assert_eq!(
            injected(&context(None, false, true), ALL, &[("x-b3-flags", "1")]),
            [
                format!("b3: {TRACE}-{SPAN}"),
                format!("traceparent: 00-{TRACE}-{SPAN}-00"),
                format!("x-b3-parentspanid: {PARENT}"),
                format!("x-b3-spanid: {SPAN}"),
                format!("x-b3-traceid: {TRACE}"),
            ]
        );
    }

    #[test]
    fn default_is_b3_multi_and_w3c_and_stale_headers_go() {
        let stale = [
            ("x-b3-traceid", "1111111111111111"),
            ("x-b3-spanid", "2222222222222222"),
            ("x-b3-spanid", "3333333333333333"),
            ("x-b3-parentspanid", "4444444444444444"),
            ("x-b3-sampled", "1"),
            ("x-b3-flags", "1"),
            ("b3", "0"),
            (
                "traceparent",
                "00-11111111111111111111111111111111-2222222222222222-01",
            ),
            ("tracestate", "rojo=1"),
            ("x-request-id", "kept"),
        ];
        assert_eq!(
            injected(
                &context(Some(false), false, false),
                Propagation::default(),
                &stale
            ),
            [
                format!("traceparent: 00-{TRACE}-{SPAN}-00"),
                "x-b3-sampled: 0".into(),
                format!("x-b3-spanid: {SPAN}"),
                format!("x-b3-traceid: {TRACE}"),
                "x-request-id: kept".into(),
            ]
        );
        let none = Propagation {
            b3_multi: false,
            b3_single: false,
            w3c: false,
        };
        assert_eq!(
            injected(&context(Some(true), false, true), none, &stale),
            ["x-request-id: kept"]
        );
        // Only the single header.
        let single = Propagation {
            b3_multi: false,
            b3_single: true,
            w3c: false,
        };
        assert_eq!(
            injected(&context(Some(true), false, false), single, &stale),
            [format!("b3: {TRACE}-{SPAN}-1"), "x-request-id: kept".into()]
        );
    }

    #[test]
    fn tracestate_only_with_the_continued_traceparent() {
        let mut continued = context(Some(true), false, true);
        continued.tracestate = Some(HeaderValue::from_static("rojo=1,congo=2"));
        let stale = [("tracestate", "rojo=1"), ("tracestate", "congo=2")];
        let lines = injected(&continued, Propagation::default(), &stale);
        assert!(lines.contains(&"tracestate: rojo=1,congo=2".to_string()));
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("tracestate")).count(),
            1
        );
        // Without W3C propagation there is no traceparent for it to go with.
        let b3_only = Propagation {
            w3c: false,
            ..Propagation::default()
        };
        let lines = injected(&continued, b3_only, &stale);
        assert!(!lines.iter().any(|l| l.starts_with("tracestate")));
        // A restarted trace has none.
        let lines = injected(
            &context(Some(true), false, false),
            Propagation::default(),
            &stale,
        );
        assert!(!lines.iter().any(|l| l.starts_with("tracestate")));
    }

    #[test]
    fn traceparent_ids_equal_b3_ids_and_read_back() {
        for _ in 0..20 {
            let original = TraceContext {
                trace_id: TraceId::random(),
                span_id: SpanId::random(),
                parent_id: Some(SpanId::random()),
                sampled: Some(true),
                debug: false,
                tracestate: None,
            };
            let mut headers = HeaderMap::new();
            inject(&mut headers, &original, ALL);
            let traceparent = headers["traceparent"].to_str().unwrap();
            assert_eq!(&traceparent[3..35], headers["x-b3-traceid"]);
            assert_eq!(&traceparent[36..52], headers["x-b3-spanid"]);
            assert_eq!(extract(&headers), Extracted::Context(original.clone()));
            headers.remove(B3);
            assert_eq!(extract(&headers), Extracted::Context(original.clone()));
            for name in [
                X_B3_TRACE_ID,
                X_B3_SPAN_ID,
                X_B3_PARENT_SPAN_ID,
                X_B3_SAMPLED,
            ] {
                headers.remove(name);
            }
            let from_w3c = extract(&headers);
            let from_w3c = from_w3c.context().unwrap();
            assert_eq!(
                (from_w3c.trace_id, from_w3c.span_id),
                (original.trace_id, original.span_id)
            );
        }
    }

    #[test]
    fn sixty_four_bit_trace_ids_are_padded() {
        let mut short = context(Some(true), false, false);
        short.trace_id = TraceId::from_hex(b"a3ce929d0e0e4736").unwrap();
        let mut headers = HeaderMap::new();
        inject(&mut headers, &short, ALL);
        assert_eq!(headers[X_B3_TRACE_ID], "0000000000000000a3ce929d0e0e4736");
        assert_eq!(
            headers[TRACEPARENT],
            format!("00-0000000000000000a3ce929d0e0e4736-{SPAN}-01")
        );
    }

    #[test]
    fn replacing_in_place_equals_writing_afresh() {
        let stale_sets: [&[(&str, &str)]; 7] = [
            // The caller's span id, which is the parent: moved, then inserted.
            &[("x-b3-spanid", PARENT), ("x-b3-traceid", TRACE)],
            // Moved over a stale parent listed first.
            &[
                ("x-b3-parentspanid", "1111111111111111"),
                ("x-b3-spanid", PARENT),
            ],
            &[],
            // Each trace header once (replaced in place), among others.
            &[
                ("host", "svc"),
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", PARENT),
                ("x-b3-parentspanid", "1111111111111111"),
                ("x-b3-sampled", "1"),
                ("x-b3-flags", "1"),
                ("b3", "1"),
                (
                    "traceparent",
                    "00-11111111111111111111111111111111-2222222222222222-01",
                ),
                ("tracestate", "rojo=1"),
                ("accept", "*/*"),
            ],
            // Some repeated (replaced by insertion), some once.
            &[
                ("x-b3-spanid", "1"),
                ("x-b3-spanid", "2"),
                ("x-b3-sampled", "0"),
                ("tracestate", "a=1"),
                ("tracestate", "b=2"),
                ("host", "svc"),
            ],
            // Only some, with the same values already there.
            &[("x-b3-traceid", TRACE), ("x-b3-sampled", "1"), ("b3", "0")],
            &[("x-b3-whatever", "kept"), ("traceparent", "")],
        ];
        for b3_multi in [false, true] {
            for b3_single in [false, true] {
                for w3c in [false, true] {
                    let propagation = Propagation {
                        b3_multi,
                        b3_single,
                        w3c,
                    };
                    for (sampled, debug) in
                        [(None, false), (Some(true), false), (Some(false), true)]
                    {
                        for parent in [false, true] {
                            let mut context = context(sampled, debug, parent);
                            for tracestate in [None, Some(HeaderValue::from_static("rojo=1"))] {
                                context.tracestate = tracestate;
                                for stale in stale_sets {
                                    let others: Vec<_> = stale
                                        .iter()
                                        .copied()
                                        .filter(|(name, _)| {
                                            Known::of(name)
                                                .is_none_or(|k| !matches!(k, Known::Trace(_)))
                                        })
                                        .collect();
                                    assert_eq!(
                                        injected(&context, propagation, stale),
                                        injected(&context, propagation, &others),
                                        "{propagation:?} {context:?} {stale:?}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_callers_span_id_value_is_moved_to_the_parent() {
        for stale in [
            &[("x-b3-traceid", TRACE), ("x-b3-spanid", PARENT)][..],
            &[
                ("x-b3-parentspanid", "1111111111111111"),
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", PARENT),
                ("x-b3-sampled", "1"),
            ],
        ] {
            let mut headers = HeaderMap::new();
            for (name, value) in stale {
                headers.insert(*name, HeaderValue::from_static(value));
            }
            let incoming_span = headers[X_B3_SPAN_ID].as_bytes().as_ptr();
            let incoming_trace = headers[X_B3_TRACE_ID].as_bytes().as_ptr();
            inject(&mut headers, &context(Some(true), false, true), ALL);
            assert_eq!(headers[X_B3_PARENT_SPAN_ID], PARENT);
            assert_eq!(
                headers[X_B3_PARENT_SPAN_ID].as_bytes().as_ptr(),
                incoming_span
            );
            // Equal bytes are left in place.
            assert_eq!(headers[X_B3_TRACE_ID].as_bytes().as_ptr(), incoming_trace);
            assert_eq!(headers[X_B3_SPAN_ID], SPAN);
        }
    }
}
