//! Envoy's trace reason, as a request's `x-request-id` records it: why the request is traced,
//! so that every proxy on its path takes the same decision (mesh-semantics §7.3).
//!
//! Envoy's UUID request-id extension keeps the reason in character 14, the UUID's version
//! digit: `9` sampled, `a` forced by `x-envoy-force-trace`, `b` forced by the client, `4` (or
//! `7` in a UUIDv7) not traced. The tracing layer (`mesh_trace`) reads and writes it; the
//! mirror clears it on a shadow, which must not be traced on its own.

use crate::header_value;
use http::HeaderValue;

/// Why a request is traced, as its `x-request-id` records it.
///
/// ```
/// use mesh_core::trace_reason::TraceReason;
/// assert_eq!(TraceReason::of(b"a1b2c3d4-0000-9000-8000-000000000000"), TraceReason::Sampling);
/// assert_eq!(TraceReason::of(b"a1b2c3d4-0000-4000-8000-000000000000"), TraceReason::NotTraceable);
/// assert_eq!(TraceReason::of(b"not-a-uuid"), TraceReason::NotTraceable);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TraceReason {
    /// Not traced (a plain UUID).
    #[default]
    NotTraceable,
    /// Traced by random sampling (`9`).
    Sampling,
    /// Traced because `x-envoy-force-trace` asked (`a`).
    ServiceForced,
    /// Traced because the client asked, `x-client-trace-id` (`b`).
    ClientForced,
}

/// Where the reason is kept: the UUID's version digit.
const POSITION: usize = 14;

impl TraceReason {
    /// The reason `id` records; [`NotTraceable`](Self::NotTraceable) for an id that is not a
    /// UUID.
    ///
    /// ```
    /// use mesh_core::trace_reason::TraceReason;
    /// assert_eq!(TraceReason::of(b"1c2b3a4d-5e6f-9a0b-8c1d-2e3f4a5b6c7d"), TraceReason::Sampling);
    /// assert_eq!(TraceReason::of(b"1c2b3a4d-5e6f-4a0b-8c1d-2e3f4a5b6c7d"), TraceReason::NotTraceable);
    /// assert_eq!(TraceReason::of(b"req-1"), TraceReason::NotTraceable, "not a UUID");
    /// ```
    #[inline]
    pub fn of(id: &[u8]) -> Self {
        if !is_uuid(id) {
            return TraceReason::NotTraceable;
        }
        match id[POSITION] {
            b'9' => TraceReason::Sampling,
            b'a' => TraceReason::ServiceForced,
            b'b' => TraceReason::ClientForced,
            _ => TraceReason::NotTraceable,
        }
    }

    /// Whether the request is traced for this reason.
    ///
    /// ```
    /// use mesh_core::trace_reason::TraceReason;
    /// assert!(TraceReason::ClientForced.traced());
    /// assert!(!TraceReason::NotTraceable.traced());
    /// ```
    #[inline]
    pub fn traced(self) -> bool {
        self != TraceReason::NotTraceable
    }

    /// Records this reason in the UUID text `id` (left alone if it is not one). Not traced
    /// is `4`, but a UUIDv7's `7` stays.
    ///
    /// ```
    /// use mesh_core::trace_reason::TraceReason;
    /// let mut id = *b"80f198ee-5634-4ba8-a4fe-8b2a57d3eff7";
    /// TraceReason::ServiceForced.mark(&mut id);
    /// assert_eq!(&id, b"80f198ee-5634-aba8-a4fe-8b2a57d3eff7");
    /// ```
    #[inline]
    pub fn mark(self, id: &mut [u8]) {
        if !is_uuid(id) {
            return;
        }
        id[POSITION] = match self {
            TraceReason::Sampling => b'9',
            TraceReason::ServiceForced => b'a',
            TraceReason::ClientForced => b'b',
            TraceReason::NotTraceable if id[POSITION] == b'7' => b'7',
            TraceReason::NotTraceable => b'4',
        };
    }

    /// `id` with this reason recorded, or `None` when it already records it or is not a
    /// UUID (then it is kept as it is, as Envoy keeps it).
    ///
    /// ```
    /// use mesh_core::trace_reason::TraceReason;
    /// let id = http::HeaderValue::from_static("a1b2c3d4-0000-4000-8000-000000000000");
    /// let sampled = TraceReason::Sampling.marked(&id).unwrap();
    /// assert_eq!(sampled, "a1b2c3d4-0000-9000-8000-000000000000");
    /// assert_eq!(TraceReason::Sampling.marked(&sampled), None);
    /// assert_eq!(TraceReason::Sampling.marked(&http::HeaderValue::from_static("abc")), None);
    /// ```
    pub fn marked(self, id: &HeaderValue) -> Option<HeaderValue> {
        let mut bytes: [u8; 36] = id.as_bytes().try_into().ok()?;
        self.mark(&mut bytes);
        (bytes != id.as_bytes())
            .then(|| header_value::copy(&bytes).ok())
            .flatten()
    }
}

/// Whether `id` has a UUID's shape: 36 characters with dashes at 8, 13, 18 and 23.
#[inline]
fn is_uuid(id: &[u8]) -> bool {
    id.len() == 36 && [8, 13, 18, 23].iter().all(|&i| id[i] == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_read_back_as_marked() {
        for reason in [
            TraceReason::NotTraceable,
            TraceReason::Sampling,
            TraceReason::ServiceForced,
            TraceReason::ClientForced,
        ] {
            let mut id = *b"80f198ee-5634-4ba8-a4fe-8b2a57d3eff7";
            reason.mark(&mut id);
            assert_eq!(TraceReason::of(&id), reason);
            assert_eq!(reason.traced(), reason != TraceReason::NotTraceable);
        }
        // A UUIDv7 keeps its version digit when not traced.
        let mut v7 = *b"0190b8a2-1c2d-7e3f-8a4b-5c6d7e8f9a0b";
        TraceReason::NotTraceable.mark(&mut v7);
        assert_eq!(v7[POSITION], b'7');
        // Not a UUID: left alone.
        let mut other = *b"request-1";
        TraceReason::Sampling.mark(&mut other);
        assert_eq!(&other, b"request-1");
    }
}
