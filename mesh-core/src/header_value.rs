//! Header values the hot path writes often, made without allocating where it can.

use http::HeaderValue;

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
    fn every_value_is_written_in_decimal() {
        for n in [0, 7, 9, 10, 12_345, u64::MAX] {
            assert_eq!(decimal(n), n.to_string().as_str());
        }
    }
}
