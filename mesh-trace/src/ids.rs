//! [`TraceId`] and [`SpanId`]: the identifiers B3 and W3C Trace Context carry, as non-zero
//! integers, with random generation, hex parsing and hex formatting into stack buffers.
//!
//! A trace id is 128 bits. A 16-character (64-bit) B3 trace id is read as the low 64 bits, and
//! every trace id is written as 32 lower-hex characters (Zipkin treats an id padded with 16
//! leading zeros as the same 64-bit trace). Zero is not a valid id in either format, so it
//! cannot be represented: parsing `0…0` fails and generation never yields it.
//!
//! Hex is parsed and formatted 16 digits at a time in a `u128` (branch-free). Two parsers
//! are offered: [`TraceId::from_hex`] accepts both cases (B3 is lenient here; its
//! README specifies lower hex, but an upper-case id is unambiguous), and
//! [`TraceId::from_lower_hex`] accepts lower case only, as W3C `traceparent` requires.

use http::HeaderValue;
use std::{
    fmt,
    num::{NonZeroU64, NonZeroU128},
};

/// A 128-bit, non-zero trace id.
///
/// ```
/// use mesh_trace::TraceId;
/// let id = TraceId::from_hex(b"4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
/// assert_eq!(id.get(), 0x4bf92f3577b34da6a3ce929d0e0e4736);
/// assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// // A 64-bit B3 trace id is the low half, written back padded to 32 characters.
/// let short = TraceId::from_hex(b"a3ce929d0e0e4736").unwrap();
/// assert_eq!(short.header_value(), "0000000000000000a3ce929d0e0e4736");
/// assert_eq!(TraceId::new(0), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(NonZeroU128);

/// A 64-bit, non-zero span id.
///
/// ```
/// use mesh_trace::SpanId;
/// let id = SpanId::from_hex(b"00f067aa0ba902b7").unwrap();
/// assert_eq!(id.get(), 0x00f067aa0ba902b7);
/// assert_eq!(id.header_value(), "00f067aa0ba902b7");
/// assert_eq!(SpanId::from_hex(b"0000000000000000"), None);
/// assert_ne!(SpanId::random(), SpanId::random());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(NonZeroU64);

impl TraceId {
    /// The id for `value`, `None` for zero.
    ///
    /// ```
    /// use mesh_trace::TraceId;
    /// let id = TraceId::new(0x4bf92f3577b34da6a3ce929d0e0e4736).unwrap();
    /// assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// assert!(TraceId::new(0).is_none());
    /// ```
    pub const fn new(value: u128) -> Option<Self> {
        match NonZeroU128::new(value) {
            Some(v) => Some(TraceId(v)),
            None => None,
        }
    }

    /// The id as an integer (never zero).
    ///
    /// ```
    /// use mesh_trace::TraceId;
    /// let id = TraceId::from_hex(b"00000000000000000000000000000abc").unwrap();
    /// assert_eq!(id.get(), 0xabc);
    /// ```
    pub const fn get(self) -> u128 {
        self.0.get()
    }

    /// A random 128-bit id.
    ///
    /// ```
    /// use mesh_trace::TraceId;
    /// let (a, b) = (TraceId::random(), TraceId::random());
    /// assert_ne!(a, b);
    /// assert_ne!(a.get(), 0);
    /// assert_eq!(a.to_string().len(), 32);
    /// ```
    pub fn random() -> Self {
        loop {
            if let Some(id) = TraceId::new(rand::random()) {
                return id;
            }
        }
    }

    /// Parses 16 or 32 hex digits of either case (16 digits: the low 64 bits). `None` when the
    /// length or a digit is wrong, or the id is zero.
    ///
    /// ```
    /// use mesh_trace::TraceId;
    /// let upper = TraceId::from_hex(b"4BF92F3577B34DA6A3CE929D0E0E4736").unwrap(); // B3: either case
    /// assert_eq!(upper.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// assert_eq!(TraceId::from_hex(b"a3ce929d0e0e4736").unwrap().get(), 0xa3ce929d0e0e4736);
    /// assert!(TraceId::from_hex(b"a3ce929d0e0e473").is_none()); // 15 digits
    /// assert!(TraceId::from_hex(b"a3ce929d0e0e473g").is_none());
    /// ```
    pub fn from_hex(hex: &[u8]) -> Option<Self> {
        Self::parse(hex, false)
    }

    /// As [`from_hex`](Self::from_hex), but lower-case digits only (W3C).
    ///
    /// ```
    /// use mesh_trace::TraceId;
    /// assert!(TraceId::from_lower_hex(b"4bf92f3577b34da6a3ce929d0e0e4736").is_some());
    /// assert!(TraceId::from_lower_hex(b"4BF92F3577B34DA6A3CE929D0E0E4736").is_none());
    /// ```
    pub fn from_lower_hex(hex: &[u8]) -> Option<Self> {
        Self::parse(hex, true)
    }

    fn parse(hex: &[u8], lower_only: bool) -> Option<Self> {
        let value = match hex.len() {
            16 => u128::from(parse_u64(hex, lower_only)?),
            32 => {
                let (high, low) = hex.split_at(16);
                (u128::from(parse_u64(high, lower_only)?) << 64)
                    | u128::from(parse_u64(low, lower_only)?)
            }
            _ => return None,
        };
        TraceId::new(value)
    }

    /// The id as 32 lower-hex digits, on the stack.
    ///
    /// ```
    /// use mesh_trace::TraceId;
    /// let id = TraceId::new(0xabc).unwrap();
    /// assert_eq!(&id.to_hex(), b"00000000000000000000000000000abc");
    /// ```
    pub fn to_hex(self) -> [u8; 32] {
        let value = self.get();
        let mut out = [0u8; 32];
        out[..16].copy_from_slice(&hex16((value >> 64) as u64));
        out[16..].copy_from_slice(&hex16(value as u64));
        out
    }

    /// The id as a header value of 32 lower-hex digits.
    ///
    /// ```
    /// use mesh_trace::TraceId;
    /// let mut headers = http::HeaderMap::new();
    /// let id = TraceId::new(0x4bf92f3577b34da6a3ce929d0e0e4736).unwrap();
    /// headers.insert("x-b3-traceid", id.header_value());
    /// assert_eq!(headers["x-b3-traceid"], "4bf92f3577b34da6a3ce929d0e0e4736");
    /// ```
    pub fn header_value(self) -> HeaderValue {
        hex_header_value(&self.to_hex())
    }
}

impl SpanId {
    /// The id for `value`, `None` for zero.
    ///
    /// ```
    /// use mesh_trace::SpanId;
    /// let id = SpanId::new(0xe457b5a2e4d86bd1).unwrap();
    /// assert_eq!(id.to_string(), "e457b5a2e4d86bd1");
    /// assert!(SpanId::new(0).is_none());
    /// ```
    pub const fn new(value: u64) -> Option<Self> {
        match NonZeroU64::new(value) {
            Some(v) => Some(SpanId(v)),
            None => None,
        }
    }

    /// The id as an integer (never zero).
    ///
    /// ```
    /// use mesh_trace::SpanId;
    /// assert_eq!(SpanId::from_hex(b"00000000000000ff").unwrap().get(), 255);
    /// ```
    pub const fn get(self) -> u64 {
        self.0.get()
    }

    /// A random id.
    ///
    /// ```
    /// use mesh_trace::SpanId;
    /// let (a, b) = (SpanId::random(), SpanId::random());
    /// assert_ne!(a, b);
    /// assert_eq!(a.to_string().len(), 16);
    /// ```
    pub fn random() -> Self {
        loop {
            if let Some(id) = SpanId::new(rand::random()) {
                return id;
            }
        }
    }

    /// Parses exactly 16 hex digits of either case. `None` when the length or a digit is
    /// wrong, or the id is zero.
    ///
    /// ```
    /// use mesh_trace::SpanId;
    /// assert_eq!(SpanId::from_hex(b"E457B5A2E4D86BD1").unwrap().get(), 0xe457b5a2e4d86bd1);
    /// assert!(SpanId::from_hex(b"e457b5a2e4d86bd").is_none()); // 15 digits
    /// assert!(SpanId::from_hex(b"80f198ee56343ba864fe8b2a57d3eff7").is_none()); // 32 digits
    /// ```
    pub fn from_hex(hex: &[u8]) -> Option<Self> {
        Self::parse(hex, false)
    }

    /// As [`from_hex`](Self::from_hex), but lower-case digits only (W3C).
    ///
    /// ```
    /// use mesh_trace::SpanId;
    /// assert!(SpanId::from_lower_hex(b"00f067aa0ba902b7").is_some());
    /// assert!(SpanId::from_lower_hex(b"00F067AA0BA902B7").is_none());
    /// ```
    pub fn from_lower_hex(hex: &[u8]) -> Option<Self> {
        Self::parse(hex, true)
    }

    fn parse(hex: &[u8], lower_only: bool) -> Option<Self> {
        if hex.len() != 16 {
            return None;
        }
        SpanId::new(parse_u64(hex, lower_only)?)
    }

    /// The id as 16 lower-hex digits, on the stack.
    ///
    /// ```
    /// use mesh_trace::SpanId;
    /// assert_eq!(&SpanId::new(0xff).unwrap().to_hex(), b"00000000000000ff");
    /// ```
    pub fn to_hex(self) -> [u8; 16] {
        hex16(self.get())
    }

    /// The id as a header value of 16 lower-hex digits.
    ///
    /// ```
    /// use mesh_trace::SpanId;
    /// let id = SpanId::new(0x00f067aa0ba902b7).unwrap();
    /// assert_eq!(id.header_value(), "00f067aa0ba902b7");
    /// assert_eq!(id.header_value().len(), 16);
    /// ```
    pub fn header_value(self) -> HeaderValue {
        hex_header_value(&self.to_hex())
    }
}

/// `0x01` in every byte.
const ONES: u128 = u128::MAX / 0xff;
/// `0x80` in every byte.
const HIGH: u128 = ONES * 0x80;

/// `0x80` in each byte of `x` within `lo..=hi`, `0` in the others; every byte must be < 0x80
/// (so that no sum carries into the next byte).
#[inline]
const fn bytes_within(x: u128, lo: u8, hi: u8) -> u128 {
    let at_least_lo = x + ONES * (0x80 - lo as u128);
    let above_hi = x + ONES * (0x7f - hi as u128);
    at_least_lo & !above_hi & HIGH
}

/// Parses exactly 16 hex digits, all at once in a `u128`: validates every byte against the
/// digit ranges, turns each into its nibble, then packs the nibbles (no table, no branch per
/// digit).
#[inline]
fn parse_u64(hex: &[u8], lower_only: bool) -> Option<u64> {
    let x = u128::from_be_bytes(hex.try_into().ok()?);
    if x & HIGH != 0 {
        return None;
    }
    let mut digits = bytes_within(x, b'0', b'9') | bytes_within(x, b'a', b'f');
    if !lower_only {
        digits |= bytes_within(x, b'A', b'F');
    }
    if digits != HIGH {
        return None;
    }
    // `0`–`9` are 0x30–0x39, `a`–`f` 0x61–0x66 and `A`–`F` 0x41–0x46: the low nibble, plus 9
    // for letters (bit 6).
    let mut n = (x & (ONES * 0x0f)) + ((x >> 6) & ONES) * 9;
    n = (n | (n >> 4)) & 0x00ff_00ff_00ff_00ff_00ff_00ff_00ff_00ff;
    n = (n | (n >> 8)) & 0x0000_ffff_0000_ffff_0000_ffff_0000_ffff;
    n = (n | (n >> 16)) & 0x0000_0000_ffff_ffff_0000_0000_ffff_ffff;
    Some((n | (n >> 32)) as u64)
}

/// `value` as 16 lower-hex digits, computed in registers: each nibble is spread into a byte of
/// a `u128`, then offset to `0`–`9` or `a`–`f` (no table, no branch, no byte-wise stores).
#[inline]
pub(crate) fn hex16(value: u64) -> [u8; 16] {
    let mut x = u128::from(value);
    x = (x | (x << 32)) & 0x0000_0000_ffff_ffff_0000_0000_ffff_ffff;
    x = (x | (x << 16)) & 0x0000_ffff_0000_ffff_0000_ffff_0000_ffff;
    x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff_00ff_00ff_00ff_00ff;
    x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f_0f0f_0f0f_0f0f_0f0f;
    // Byte i now holds nibble i (0–15); 1 in each byte whose nibble is 10 or more.
    let letters = ((x + 0x0606_0606_0606_0606_0606_0606_0606_0606) >> 4)
        & 0x0101_0101_0101_0101_0101_0101_0101_0101;
    // `0` is 0x30; `a` is 39 past `0` + 10.
    (x + 0x3030_3030_3030_3030_3030_3030_3030_3030 + letters * 39).to_be_bytes()
}

/// A header value from bytes known to be visible ASCII.
pub(crate) fn hex_header_value(bytes: &[u8]) -> HeaderValue {
    // Hex digits and dashes are always a valid header value; the fallback is unreachable.
    mesh_core::header_value::copy(bytes).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

fn write_str(f: &mut fmt::Formatter<'_>, hex: &[u8]) -> fmt::Result {
    f.write_str(std::str::from_utf8(hex).map_err(|_| fmt::Error)?)
}

impl fmt::Display for TraceId {
    /// 32 lower-hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_str(f, &self.to_hex())
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TraceId(")?;
        write_str(f, &self.to_hex())?;
        f.write_str(")")
    }
}

impl fmt::Display for SpanId {
    /// 16 lower-hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_str(f, &self.to_hex())
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SpanId(")?;
        write_str(f, &self.to_hex())?;
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_hex() {
        for _ in 0..100 {
            let trace = TraceId::random();
            assert_eq!(TraceId::from_lower_hex(&trace.to_hex()), Some(trace));
            let span = SpanId::random();
            assert_eq!(SpanId::from_lower_hex(&span.to_hex()), Some(span));
        }
        let trace = TraceId::new(1).unwrap();
        assert_eq!(trace.to_string(), format!("{:032x}", 1));
        assert_eq!(format!("{trace:?}"), format!("TraceId({:032x})", 1));
        let span = SpanId::new(u64::MAX).unwrap();
        assert_eq!(span.to_string(), "ffffffffffffffff");
        assert_eq!(format!("{span:?}"), "SpanId(ffffffffffffffff)");
    }

    #[test]
    fn parse_u64_agrees_with_std() {
        let mut values = vec![0, 1, 9, 10, 15, 16, 0xa0, u64::MAX, 0x0123_4567_89ab_cdef];
        values.extend((0..64).map(|i| 1u64 << i));
        values.extend((0..1000).map(|_| rand::random::<u64>()));
        for value in values {
            let lower = format!("{value:016x}");
            assert_eq!(parse_u64(lower.as_bytes(), true), Some(value));
            let upper = format!("{value:016X}");
            assert_eq!(parse_u64(upper.as_bytes(), false), Some(value));
            let lower_only = parse_u64(upper.as_bytes(), true);
            assert_eq!(
                lower_only.is_some(),
                !upper.bytes().any(|b| b.is_ascii_uppercase())
            );
        }
        // Every byte value in every position: accepted exactly when it is a hex digit.
        for position in 0..16 {
            for byte in 0..=255u8 {
                let mut hex = *b"0123456789abcdef";
                hex[position] = byte;
                let expected = u64::from_str_radix(std::str::from_utf8(&hex).unwrap_or("-"), 16)
                    .ok()
                    .filter(|_| byte.is_ascii_hexdigit());
                assert_eq!(parse_u64(&hex, false), expected, "{byte:#x} at {position}");
                let expected = expected.filter(|_| !byte.is_ascii_uppercase());
                assert_eq!(parse_u64(&hex, true), expected, "{byte:#x} at {position}");
            }
        }
        assert_eq!(parse_u64(b"012345678", false), None);
    }

    #[test]
    fn hex16_matches_std_formatting() {
        let mut values = vec![0, 1, 9, 10, 15, 16, 0xa0, u64::MAX, 0x0123_4567_89ab_cdef];
        values.extend((0..64).map(|i| 1u64 << i));
        values.extend((0..1000).map(|_| rand::random::<u64>()));
        for value in values {
            assert_eq!(
                hex16(value),
                format!("{value:016x}").as_bytes(),
                "{value:x}"
            );
        }
    }

    #[test]
    fn sixty_four_bit_trace_id_is_the_low_half() {
        let id = TraceId::from_hex(b"463ac35c9f6413ad").unwrap();
        assert_eq!(id.get(), 0x463ac35c9f6413ad);
        assert_eq!(&id.to_hex(), b"0000000000000000463ac35c9f6413ad");
        // The padded form reads back as the same id.
        assert_eq!(TraceId::from_hex(&id.to_hex()), Some(id));
    }

    #[test]
    fn rejects_zero_wrong_lengths_and_non_hex() {
        assert_eq!(TraceId::from_hex(&[b'0'; 32]), None);
        assert_eq!(TraceId::from_hex(&[b'0'; 16]), None);
        assert_eq!(SpanId::from_hex(&[b'0'; 16]), None);
        for len in [0, 1, 15, 17, 24, 31, 33, 64] {
            assert_eq!(TraceId::from_hex(&vec![b'a'; len]), None, "{len}");
        }
        for len in [0, 15, 17, 32] {
            assert_eq!(SpanId::from_hex(&vec![b'a'; len]), None, "{len}");
        }
        assert_eq!(SpanId::from_hex(b"00f067aa0ba902bg"), None);
        assert_eq!(SpanId::from_hex(b"00f067aa0ba902b-"), None);
        assert_eq!(SpanId::from_hex(b"+0f067aa0ba902b7"), None);
        assert_eq!(TraceId::from_hex(b"4bf92f3577b34da6 3ce929d0e0e4736"), None);
        assert_eq!(
            TraceId::from_hex("4bf92f3577b34da6é3ce929d0e0e473".as_bytes()),
            None
        );
    }

    #[test]
    fn upper_case_is_lenient_or_strict() {
        let lower = SpanId::from_hex(b"00f067aa0ba902b7").unwrap();
        assert_eq!(SpanId::from_hex(b"00F067AA0BA902B7"), Some(lower));
        assert_eq!(SpanId::from_lower_hex(b"00F067AA0BA902B7"), None);
        let lower = TraceId::from_hex(b"4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(
            TraceId::from_hex(b"4BF92F3577B34DA6A3CE929D0E0E4736"),
            Some(lower)
        );
        assert_eq!(
            TraceId::from_lower_hex(b"4bf92f3577b34da6a3ce929d0e0e473A"),
            None
        );
    }

    #[test]
    fn random_ids_differ_and_header_values_are_lower_hex() {
        assert_ne!(TraceId::random(), TraceId::random());
        let value = TraceId::random().header_value();
        assert_eq!(value.len(), 32);
        assert!(
            value
                .as_bytes()
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        );
        assert_eq!(SpanId::random().header_value().len(), 16);
    }
}
