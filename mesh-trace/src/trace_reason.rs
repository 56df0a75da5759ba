//! Envoy's trace reason in `x-request-id`, and sampling computed from the id, so that every
//! proxy on a request's path makes the same tracing decision even when the application
//! between them forwards `x-request-id` but no B3 or W3C headers (mesh-semantics §7.3).
//!
//! The reason is [`TraceReason`], in character 14 of the id (from `mesh_core`, as the mirror
//! clears it on a shadow). Random sampling draws from the id itself: the first eight hex digits
//! as a number, modulo 10 000, against the sampling rate in ten-thousandths — the same draw at
//! every hop.

pub use mesh_core::trace_reason::TraceReason;

/// What the sampler reads of a request's `x-request-id`: the reason it records and the point
/// a random draw takes from it.
///
/// ```
/// use mesh_trace::trace_reason::{RequestIdTrace, TraceReason};
/// let facts = RequestIdTrace::of(b"00001387-0000-4000-8000-000000000000");
/// assert_eq!(facts.reason, TraceReason::NotTraceable);
/// assert_eq!(facts.point, Some(4_999)); // 0x1387
/// assert_eq!(RequestIdTrace::of(b"zz").point, None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestIdTrace {
    /// The reason the id records.
    pub reason: TraceReason,
    /// The id's first eight hex digits, modulo 10 000 (Envoy's `getInteger`); `None` when they
    /// are not hex.
    pub point: Option<u16>,
}

impl RequestIdTrace {
    /// The facts of `id`.
    pub fn of(id: &[u8]) -> Self {
        let point = id
            .get(..8)
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u64::from_str_radix(digits, 16).ok())
            .map(|value| (value % 10_000) as u16);
        RequestIdTrace {
            reason: TraceReason::of(id),
            point,
        }
    }
}
