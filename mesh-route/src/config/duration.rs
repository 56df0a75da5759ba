//! Durations as Istio writes them in YAML.
//!
//! Istio's `google.protobuf.Duration` fields accept the protobuf JSON form (`"1.5s"`) and, in
//! practice, Go's `time.ParseDuration` form (`"500ms"`, `"1m"`, `"1h2m3.5s"`, `"10us"`). This
//! module parses both into a [`std::time::Duration`] and prints them back as seconds
//! (`"1.5s"`), the protobuf JSON form, for `/config_dump`.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration read from a string such as `"5s"`, `"0.5s"`, `"500ms"`, `"1m"` or `"1h2m3.5s"`.
///
/// ```
/// use mesh_route::config::Duration;
///
/// let d = Duration::parse("1.5s").unwrap();
/// assert_eq!(d.get(), std::time::Duration::from_millis(1500));
/// assert_eq!(Duration::parse("1m").unwrap().to_string(), "60s");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// The duration as a [`std::time::Duration`].
    ///
    /// ```
    /// use mesh_route::config::Duration;
    ///
    /// assert_eq!(Duration::parse("250ms").unwrap().get(), std::time::Duration::from_millis(250));
    /// ```
    pub fn get(&self) -> std::time::Duration {
        self.0
    }

    /// Parses a protobuf (`"1.5s"`) or Go (`"1h2m3.5s"`, `"10us"`) duration string.
    ///
    /// ```
    /// use mesh_route::config::Duration;
    /// assert_eq!(Duration::parse("1m30s").unwrap().get().as_secs(), 90);
    /// let error = Duration::parse("5").unwrap_err();
    /// assert_eq!(error.to_string(), r#"invalid duration "5": missing unit (use ns, us, ms, s, m or h)"#);
    /// ```
    pub fn parse(text: &str) -> Result<Self, InvalidDuration> {
        parse_nanos(text.trim())
            .map(|nanos| {
                let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
                // The remainder of a division by 10^9 always fits in u32.
                let subsec = u32::try_from(nanos % NANOS_PER_SEC).unwrap_or(0);
                Duration(std::time::Duration::new(secs, subsec))
            })
            .map_err(|reason| InvalidDuration {
                text: text.to_owned(),
                reason,
            })
    }
}

/// A string [`Duration::parse`] does not read as a duration.
///
/// ```
/// use mesh_route::config::{Duration, InvalidDuration};
/// let error: InvalidDuration = Duration::parse("5").unwrap_err();
/// assert_eq!(error.text, "5");
/// assert_eq!(error.reason, "missing unit (use ns, us, ms, s, m or h)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {reason}")]
pub struct InvalidDuration {
    /// The string.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

impl From<std::time::Duration> for Duration {
    fn from(value: std::time::Duration) -> Self {
        Duration(value)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        if nanos == 0 {
            write!(f, "{secs}s")
        } else {
            let fraction = format!("{nanos:09}");
            write!(f, "{secs}.{}s", fraction.trim_end_matches('0'))
        }
    }
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Unit suffixes Go accepts, longest first so `ms` wins over `m`.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", NANOS_PER_SEC),
    ("m", 60 * NANOS_PER_SEC),
    ("h", 3_600 * NANOS_PER_SEC),
];

/// Upper bound that keeps every intermediate value far from `u128` overflow
/// (about 5.8 × 10^11 years, well beyond `std::time::Duration`'s range in seconds).
const MAX_NANOS: u128 = (u64::MAX as u128) * NANOS_PER_SEC;

fn parse_nanos(text: &str) -> Result<u128, String> {
    if text.is_empty() {
        return Err("empty string".to_string());
    }
    if text.starts_with('-') {
        return Err("negative durations are not allowed".to_string());
    }
    let text = text.strip_prefix('+').unwrap_or(text);
    if text == "0" {
        return Ok(0);
    }
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number == "." {
            return Err("expected a number such as \"5s\" or \"100ms\"".to_string());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, remaining) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err("missing unit (use ns, us, ms, s, m or h)".to_string());
        }
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| format!("unknown unit \"{unit}\" (use ns, us, ms, s, m or h)"))?;
        total = total
            .checked_add(component_nanos(number, scale)?)
            .filter(|t| *t <= MAX_NANOS)
            .ok_or_else(|| "duration is too large".to_string())?;
        rest = remaining;
    }
    Ok(total)
}

/// `number` (digits with at most one `.`) times `scale` nanoseconds.
fn component_nanos(number: &str, scale: u128) -> Result<u128, String> {
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    if fraction.contains('.') {
        return Err(format!("malformed number \"{number}\""));
    }
    let mut value: u128 = 0;
    for digit in whole.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u128::from(digit - b'0')))
            .filter(|v| *v <= MAX_NANOS)
            .ok_or_else(|| "duration is too large".to_string())?;
    }
    let mut nanos = value
        .checked_mul(scale)
        .filter(|v| *v <= MAX_NANOS)
        .ok_or_else(|| "duration is too large".to_string())?;
    let mut place = scale;
    for digit in fraction.bytes() {
        place /= 10;
        if place == 0 {
            break;
        }
        nanos += u128::from(digit - b'0') * place;
    }
    Ok(nanos)
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(DurationVisitor)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration string such as \"5s\", \"0.5s\" or \"100ms\"")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Duration, E> {
        Duration::parse(value).map_err(E::custom)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as Std;

    #[test]
    fn parses_proto_and_go_forms() {
        let table: &[(&str, Std)] = &[
            ("1s", Std::from_secs(1)),
            ("0.5s", Std::from_millis(500)),
            ("500ms", Std::from_millis(500)),
            ("1m", Std::from_secs(60)),
            ("1h", Std::from_secs(3600)),
            ("1h2m3.5s", Std::from_millis(3_723_500)),
            ("10us", Std::from_micros(10)),
            ("10µs", Std::from_micros(10)),
            ("7ns", Std::from_nanos(7)),
            ("1.5s", Std::from_millis(1500)),
            (".25s", Std::from_millis(250)),
            ("0", Std::ZERO),
            ("0s", Std::ZERO),
            ("1.000000000001s", Std::from_secs(1)),
        ];
        for (text, expected) in table {
            assert_eq!(
                Duration::parse(text).map(|d| d.get()),
                Ok(*expected),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_malformed() {
        for text in [
            "",
            "5",
            "s",
            "5x",
            "-1s",
            "1..5s",
            "1.5.2s",
            "ms5",
            "99999999999999999999999h",
        ] {
            assert!(Duration::parse(text).is_err(), "{text} should be rejected");
        }
        let err = Duration::parse("5x").unwrap_err();
        assert!(err.reason.starts_with("unknown unit \"x\""), "{err}");
    }

    #[test]
    fn prints_seconds() {
        let table: &[(Std, &str)] = &[
            (Std::from_millis(1500), "1.5s"),
            (Std::from_secs(3600), "3600s"),
            (Std::from_micros(10), "0.00001s"),
            (Std::ZERO, "0s"),
        ];
        for (value, text) in table {
            assert_eq!(Duration(*value).to_string(), *text);
            assert_eq!(
                serde_json::to_value(Duration(*value)).ok(),
                Some(serde_json::json!(text))
            );
        }
    }

    #[test]
    fn deserializes_from_strings_only() {
        let d: Result<Duration, _> = serde_json::from_value(serde_json::json!("250ms"));
        assert_eq!(d.ok(), Some(Duration(Std::from_millis(250))));
        let err = serde_json::from_value::<Duration>(serde_json::json!(5)).unwrap_err();
        assert!(err.to_string().contains("duration string"), "{err}");
    }
}
