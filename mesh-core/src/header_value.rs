//! Header values the hot path writes often, made without allocating where it can.
//!
//! [`copy`] carves each value out of a per-thread chunk ([`CHUNK_SIZE`] bytes), as hyper carves
//! parsed header values out of its read buffer: a trace id, span id or `traceparent` written per
//! request costs a copy and a reference count, not a `malloc` and a `free`; and so does each
//! clone of it (the mirror layer copies the request head), where a value allocated on
//! its own is moved to shared storage, another allocation, on its first clone. A chunk is freed
//! when the last value carved from it is dropped, so a value kept for long keeps its chunk
//! alive.

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, header::InvalidHeaderValue};
use std::cell::RefCell;

/// The size of the per-thread chunks [`copy`] carves values from.
pub const CHUNK_SIZE: usize = 4096;

/// Values longer than this are allocated on their own rather than carved from a chunk, so that
/// one long value does not waste most of a chunk.
const MAX_CARVED: usize = 256;

thread_local! {
    /// The rest of this thread's current chunk: empty, with the unused capacity.
    static CHUNK: RefCell<Option<BytesMut>> = const { RefCell::new(None) };
}

/// `bytes` as a header value, copied into this thread's current chunk (a new chunk when it is
/// full); fails as [`HeaderValue::from_bytes`] does, on a byte a header value cannot hold.
///
/// ```
/// use mesh_core::header_value::copy;
/// let span = copy(b"00f067aa0ba902b7").unwrap();
/// let parent = copy(b"e457b5a2e4d86bd1").unwrap();
/// assert_eq!(span, "00f067aa0ba902b7");
/// assert_eq!(parent, "e457b5a2e4d86bd1");
/// assert!(copy(b"line\nbreak").is_err());
/// ```
pub fn copy(bytes: &[u8]) -> Result<HeaderValue, InvalidHeaderValue> {
    HeaderValue::from_maybe_shared(carve(bytes))
}

/// `bytes`, copied into this thread's current chunk as [`copy`] copies a header value (one
/// longer than a chunk's share is allocated on its own). Several header values can then be
/// slices of one carved copy, each a reference count more rather than a copy of its own.
///
/// ```
/// use mesh_core::header_value::carve;
/// let ids = carve(b"4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7");
/// let span = http::HeaderValue::from_maybe_shared(ids.slice(33..)).unwrap();
/// assert_eq!(span, "00f067aa0ba902b7");
/// ```
pub fn carve(bytes: &[u8]) -> Bytes {
    if bytes.is_empty() || bytes.len() > MAX_CARVED {
        return Bytes::copy_from_slice(bytes);
    }
    CHUNK.with_borrow_mut(|chunk| {
        let chunk = match chunk {
            Some(chunk) if chunk.capacity() >= bytes.len() => chunk,
            _ => chunk.insert(BytesMut::with_capacity(CHUNK_SIZE)),
        };
        chunk.extend_from_slice(bytes);
        chunk.split().freeze()
    })
}

/// `n` in decimal as a header value; single digits (attempt counts, most service times) are
/// static and cost no allocation.
///
/// ```
/// assert_eq!(mesh_core::header_value::decimal(7), "7");
/// assert_eq!(mesh_core::header_value::decimal(1234), "1234");
/// ```
pub fn decimal(n: u64) -> HeaderValue {
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match usize::try_from(n).ok().and_then(|i| DIGITS.get(i)) {
        Some(digit) => HeaderValue::from_static(digit),
        None => HeaderValue::from(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carved_from_one_chunk_stay_apart_and_outlive_it() {
        let values: Vec<HeaderValue> = (0..CHUNK_SIZE)
            .map(|i| copy(format!("value-{i}").as_bytes()).unwrap())
            .collect();
        for (i, value) in values.iter().enumerate() {
            assert_eq!(value, format!("value-{i}").as_str());
        }
        // A value written after thousands of others, and one too long to carve, read back whole.
        let long = "x".repeat(MAX_CARVED + 1);
        assert_eq!(copy(long.as_bytes()).unwrap(), long.as_str());
        assert_eq!(copy(b"").unwrap(), "");
    }

    #[test]
    fn consecutive_values_share_a_chunk_rather_than_each_allocating() {
        let first = copy(b"00f067aa0ba902b7").unwrap();
        let second = copy(b"e457b5a2e4d86bd1").unwrap();
        let third = copy(b"05e3ac9a4f6e3b90").unwrap();
        let adjacent = |a: &HeaderValue, b: &HeaderValue| {
            a.as_bytes().as_ptr_range().end == b.as_bytes().as_ptr()
        };
        // Unless the first filled its chunk, the second starts where the first ends.
        assert!(
            adjacent(&first, &second) || adjacent(&second, &third),
            "each value was allocated on its own"
        );
    }

    #[test]
    fn values_carved_on_one_thread_live_on_after_it_ends() {
        let value = std::thread::spawn(|| copy(b"80f198ee56343ba864fe8b2a57d3eff7").unwrap())
            .join()
            .unwrap();
        assert_eq!(value, "80f198ee56343ba864fe8b2a57d3eff7");
    }

    #[test]
    fn invalid_bytes_are_refused_as_from_bytes_refuses_them() {
        for bytes in [&b"a\rb"[..], b"\x7f", b"nul\0"] {
            assert!(copy(bytes).is_err());
            assert!(HeaderValue::from_bytes(bytes).is_err());
        }
        assert_eq!(copy(b"ok after refusals").unwrap(), "ok after refusals");
    }

    #[test]
    fn every_value_is_written_in_decimal() {
        for n in [0, 7, 9, 10, 12_345, u64::MAX] {
            assert_eq!(decimal(n), n.to_string().as_str());
        }
    }
}
