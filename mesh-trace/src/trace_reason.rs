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
    ///
    /// ```
    /// use mesh_trace::trace_reason::{RequestIdTrace, TraceReason};
    /// let forced = RequestIdTrace::of(b"0000ffff-0000-b000-8000-000000000000");
    /// assert_eq!(forced.reason, TraceReason::ClientForced); // character 14 is `b`
    /// assert_eq!(forced.point, Some(5_535)); // 0xffff % 10 000
    /// let short = RequestIdTrace::of(b"+0002710");
    /// assert_eq!((short.reason, short.point), (TraceReason::NotTraceable, Some(0)));
    /// ```
    pub fn of(id: &[u8]) -> Self {
        let point = id
            .get(..8)
            .and_then(|digits| hex_digits(digits).or_else(|| parsed(digits)))
            .map(|value| (value % 10_000) as u16);
        RequestIdTrace {
            reason: TraceReason::of(id),
            point,
        }
    }
}

/// The value of `digits` when every one is a hex digit, as nearly every id's are: read in place.
fn hex_digits(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |value, &digit| {
        let nibble = char::from(digit).to_digit(16)?;
        Some(value << 4 | u64::from(nibble))
    })
}

/// The value of `digits` as `u64::from_str_radix` reads them in base 16 (a leading `+`, say).
fn parsed(digits: &[u8]) -> Option<u64> {
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_point_is_what_from_str_radix_reads_of_the_first_eight_characters() {
        let reference = |id: &str| {
            let digits = id.get(..8)?;
            Some((u64::from_str_radix(digits, 16).ok()? % 10_000) as u16)
        };
        for prefix in [
            "00001387", "ffffffff", "FFFFFFFF", "0aBcDeF9", "+1234567", "-1234567", "0x123456",
            "1234567g", " 1234567", "1234",
        ] {
            let id = format!("{prefix}-0000-4000-8000-000000000000");
            assert_eq!(
                RequestIdTrace::of(id.as_bytes()).point,
                reference(&id),
                "{id}"
            );
        }
        for _ in 0..1000 {
            let id = crate::request_id::uuid_v4();
            let id = id.to_str().unwrap();
            assert_eq!(
                RequestIdTrace::of(id.as_bytes()).point,
                reference(id),
                "{id}"
            );
        }
    }
}
