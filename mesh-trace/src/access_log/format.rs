//! [`format_entry`]: an [`AccessLogEntry`] as one line of Istio's default text format
//! ([`Encoding::Text`]) or of Istio's JSON format ([`Encoding::Json`]).
//!
//! Everything is appended to a caller's byte buffer by hand, so that the writer thread can
//! reuse one buffer for a whole batch and keep up with the request path: no `core::fmt` for
//! numbers, IPv4 addresses or the time (whose date and time of day are formatted once a second
//! per thread), no UTF-8 validation of values already checked to be printable ASCII, and no
//! JSON value tree.

use super::{AccessLogEntry, view::EntryView};
use http::Version;
use mesh_core::{ResponseFlags, clock::whole_millis};
use std::{
    cell::Cell,
    io::Write as _,
    net::SocketAddr,
    time::{SystemTime, UNIX_EPOCH},
};

/// How [`format_entry`] prints an entry.
///
/// ```
/// use mesh_trace::access_log::{Encoding, format_entry};
/// # /// A request for `/ready` that got a 200.
/// # fn entry() -> mesh_trace::access_log::AccessLogEntry {
/// #     mesh_trace::access_log::AccessLogEntry {
/// #         start_time: std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_460_751_420_310),
/// #         method: http::Method::GET,
/// #         uri: http::Uri::from_static("/ready"),
/// #         host: None,
/// #         original_path: None,
/// #         protocol: http::Version::HTTP_11,
/// #         response_code: 200,
/// #         response_flags: Default::default(),
/// #         response_code_details: "via_upstream".into(),
/// #         bytes_received: 0,
/// #         bytes_sent: 2,
/// #         duration: std::time::Duration::from_millis(1),
/// #         upstream_service_time: None,
/// #         x_forwarded_for: None,
/// #         user_agent: None,
/// #         request_id: None,
/// #         upstream_host: None,
/// #         upstream_cluster: None,
/// #         upstream_local_address: None,
/// #         downstream_local_address: None,
/// #         downstream_remote_address: None,
/// #         requested_server_name: None,
/// #         route_name: None,
/// #     }
/// # }
/// # /// An in-memory destination.
/// # #[derive(Clone, Default)]
/// # struct Memory(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
/// # impl std::io::Write for Memory {
/// #     fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().write(bytes) }
/// #     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
/// # }
/// # impl Memory {
/// #     fn text(&self) -> String { String::from_utf8(self.0.lock().unwrap().clone()).unwrap() }
/// # }
/// let (mut text, mut json) = (Vec::new(), Vec::new());
/// format_entry(&entry(), Encoding::default(), &mut text); // a GET of `/ready` answered 200
/// format_entry(&entry(), Encoding::Json, &mut json);
/// assert!(text.starts_with(br#"[2016-04-15T20:17:00.310Z] "GET /ready HTTP/1.1" 200 - via_upstream"#));
/// let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
/// assert_eq!((json["path"].as_str(), json["response_flags"].as_str()), (Some("/ready"), Some("-")));
/// assert_eq!(json["response_code"], 200); // a number
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Encoding {
    /// Istio's default text format (Envoy command operators), missing values as `-`:
    ///
    /// ```text
    /// [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%
    /// ```
    ///
    /// Envoy escapes nothing; so that a line stays one line with balanced quotes, a value's
    /// control characters (and bytes that are not UTF-8) print as `U+FFFD` and its `"` as `'`.
    #[default]
    Text,
    /// One JSON object per line with Istio's keys (`start_time`, `route_name`, `method`,
    /// `path`, `protocol`, `response_code`, `response_flags`, `response_code_details`,
    /// `connection_termination_details`, `bytes_received`, `bytes_sent`, `duration`,
    /// `upstream_service_time`, `x_forwarded_for`, `user_agent`, `request_id`, `authority`,
    /// `upstream_host`, `upstream_cluster`, `upstream_local_address`,
    /// `downstream_local_address`, `downstream_remote_address`, `requested_server_name`,
    /// `upstream_transport_failure_reason`).
    ///
    /// `response_code`, `bytes_received`, `bytes_sent` and `duration` are numbers, the rest
    /// strings, a missing (or empty) value `null`; `response_flags` is `"-"` when there are
    /// none, as Envoy prints it. Bytes that are not UTF-8 print as `U+FFFD`.
    Json,
}

/// Appends `entry` to `out` as one line (ending in `\n`) in `encoding`; what it appends is
/// always UTF-8.
///
/// `%START_TIME%` is UTC with milliseconds, `%DURATION%` whole milliseconds, and
/// `%CONNECTION_TERMINATION_DETAILS%` and `%UPSTREAM_TRANSPORT_FAILURE_REASON%` are always
/// missing (`-`, `null`): the mesh has no such data.
///
/// ```
/// use http::{HeaderValue, Method, Uri, Version};
/// use mesh_core::{ResponseFlag, ResponseFlags};
/// use mesh_trace::access_log::{AccessLogEntry, Encoding, format_entry};
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let entry = AccessLogEntry {
///     start_time: UNIX_EPOCH + Duration::from_millis(1_460_751_420_310),
///     method: Method::GET,
///     uri: Uri::from_static("/items?page=2"),
///     host: Some(HeaderValue::from_static("catalog")),
///     original_path: None,
///     protocol: Version::HTTP_11,
///     response_code: 503,
///     response_flags: ResponseFlags::of(ResponseFlag::UpstreamConnectionFailure),
///     response_code_details: "upstream_reset_before_response_started{connection_failure}".into(),
///     bytes_received: 0,
///     bytes_sent: 91,
///     duration: Duration::from_millis(12),
///     upstream_service_time: None,
///     x_forwarded_for: None,
///     user_agent: Some(HeaderValue::from_static("curl/8.5.0")),
///     request_id: None,
///     upstream_host: Some("10.0.2.1:8080".parse().unwrap()),
///     upstream_cluster: Some("outbound|80||catalog.shop.svc.cluster.local".into()),
///     upstream_local_address: None,
///     downstream_local_address: Some("10.0.1.5:15001".parse().unwrap()),
///     downstream_remote_address: Some("10.0.1.5:40000".parse().unwrap()),
///     requested_server_name: None,
///     route_name: Some("default".into()),
/// };
///
/// let mut out = Vec::new();
/// format_entry(&entry, Encoding::Text, &mut out);
/// assert_eq!(
///     String::from_utf8(out).unwrap(),
///     concat!(
///         r#"[2016-04-15T20:17:00.310Z] "GET /items?page=2 HTTP/1.1" 503 UF "#,
///         r#"upstream_reset_before_response_started{connection_failure} - "-" 0 91 12 - "#,
///         r#""-" "curl/8.5.0" "-" "catalog" "10.0.2.1:8080" "#,
///         r#"outbound|80||catalog.shop.svc.cluster.local - 10.0.1.5:15001 10.0.1.5:40000 - "#,
///         "default\n",
///     )
/// );
///
/// let mut out = Vec::new();
/// format_entry(&entry, Encoding::Json, &mut out); // one JSON object per line
/// let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
/// assert_eq!(json["response_code"], 503);
/// assert_eq!(json["response_flags"], "UF");
/// assert_eq!(json["request_id"], serde_json::Value::Null);
/// ```
pub fn format_entry(entry: &AccessLogEntry, encoding: Encoding, out: &mut Vec<u8>) {
    format_view(&EntryView::of(entry), encoding, out);
}

/// [`format_entry`] of an entry's fields (as the writer thread reads them from its queue).
pub(super) fn format_view(entry: &EntryView<'_>, encoding: Encoding, out: &mut Vec<u8>) {
    match encoding {
        Encoding::Text => text(entry, out),
        Encoding::Json => json(entry, out),
    }
}

/// Istio's default text format; see [`Encoding::Text`].
fn text(e: &EntryView<'_>, out: &mut Vec<u8>) {
    out.push(b'[');
    push_start_time(out, e.start_time);
    out.extend_from_slice(b"] \"");
    text_value(out, Some(e.method));
    out.push(b' ');
    text_value(out, e.path);
    out.push(b' ');
    out.extend_from_slice(protocol(e.protocol).unwrap_or("-").as_bytes());
    out.extend_from_slice(b"\" ");
    push_u64(out, e.response_code.into());
    out.push(b' ');
    // %RESPONSE_FLAGS% prints `-` by itself when there are none.
    push_flags(out, e.response_flags);
    out.push(b' ');
    text_value(out, Some(e.response_code_details));
    // %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%": never known.
    out.extend_from_slice(b" - \"-\" ");
    push_u64(out, e.bytes_received);
    out.push(b' ');
    push_u64(out, e.bytes_sent);
    out.push(b' ');
    push_u64(out, whole_millis(e.duration));
    out.push(b' ');
    text_value(out, e.upstream_service_time);
    out.extend_from_slice(b" \"");
    text_value(out, e.x_forwarded_for);
    out.extend_from_slice(b"\" \"");
    text_value(out, e.user_agent);
    out.extend_from_slice(b"\" \"");
    text_value(out, e.request_id);
    out.extend_from_slice(b"\" \"");
    text_value(out, e.authority);
    out.extend_from_slice(b"\" \"");
    text_value(out, e.upstream_host);
    out.extend_from_slice(b"\" ");
    text_value(out, e.upstream_cluster);
    out.push(b' ');
    text_address(out, e.upstream_local_address);
    out.push(b' ');
    text_address(out, e.downstream_local_address);
    out.push(b' ');
    text_address(out, e.downstream_remote_address);
    out.push(b' ');
    text_value(out, e.requested_server_name);
    out.push(b' ');
    text_value(out, e.route_name);
    out.push(b'\n');
}

/// Istio's JSON format; see [`Encoding::Json`].
fn json(e: &EntryView<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"start_time\":\"");
    push_start_time(out, e.start_time);
    out.push(b'"');
    json_key(out, "route_name");
    json_string(out, e.route_name);
    json_key(out, "method");
    json_string(out, Some(e.method));
    json_key(out, "path");
    json_string(out, e.path);
    json_key(out, "protocol");
    json_string(out, protocol(e.protocol).map(str::as_bytes));
    json_key(out, "response_code");
    push_u64(out, e.response_code.into());
    json_key(out, "response_flags");
    // Short flag codes, `,` and `-` only: nothing to escape.
    out.push(b'"');
    push_flags(out, e.response_flags);
    out.push(b'"');
    json_key(out, "response_code_details");
    json_string(out, Some(e.response_code_details));
    json_key(out, "connection_termination_details");
    out.extend_from_slice(b"null");
    json_key(out, "bytes_received");
    push_u64(out, e.bytes_received);
    json_key(out, "bytes_sent");
    push_u64(out, e.bytes_sent);
    json_key(out, "duration");
    push_u64(out, whole_millis(e.duration));
    json_key(out, "upstream_service_time");
    json_string(out, e.upstream_service_time);
    json_key(out, "x_forwarded_for");
    json_string(out, e.x_forwarded_for);
    json_key(out, "user_agent");
    json_string(out, e.user_agent);
    json_key(out, "request_id");
    json_string(out, e.request_id);
    json_key(out, "authority");
    json_string(out, e.authority);
    json_key(out, "upstream_host");
    json_string(out, e.upstream_host);
    json_key(out, "upstream_cluster");
    json_string(out, e.upstream_cluster);
    json_key(out, "upstream_local_address");
    json_address(out, e.upstream_local_address);
    json_key(out, "downstream_local_address");
    json_address(out, e.downstream_local_address);
    json_key(out, "downstream_remote_address");
    json_address(out, e.downstream_remote_address);
    json_key(out, "requested_server_name");
    json_string(out, e.requested_server_name);
    json_key(out, "upstream_transport_failure_reason");
    out.extend_from_slice(b"null}\n");
}

/// `%PROTOCOL%`; `None` for versions Envoy does not speak (HTTP/0.9).
fn protocol(version: Version) -> Option<&'static str> {
    match version {
        Version::HTTP_10 => Some("HTTP/1.0"),
        Version::HTTP_11 => Some("HTTP/1.1"),
        Version::HTTP_2 => Some("HTTP/2"),
        Version::HTTP_3 => Some("HTTP/3"),
        _ => None,
    }
}

/// `00` to `99`, back to back.
const PAIRS: [u8; 200] = {
    let mut pairs = [0; 200];
    let mut n = 0;
    while n < 100 {
        pairs[2 * n] = b'0' + (n / 10) as u8;
        pairs[2 * n + 1] = b'0' + (n % 10) as u8;
        n += 1;
    }
    pairs
};

/// `n` in decimal, two digits at a time.
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        start -= 2;
        digits[start..start + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        start -= 2;
        digits[start..start + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        start -= 1;
        digits[start] = b'0' + n as u8;
    }
    out.extend_from_slice(&digits[start..]);
}

/// `n` (below 100) in two digits.
fn push_two_digits(out: &mut Vec<u8>, n: u32) {
    let pair = n as usize * 2;
    out.extend_from_slice(&PAIRS[pair..pair + 2]);
}

/// `%RESPONSE_FLAGS%`: the short codes joined by `,`, `-` when there are none.
fn push_flags(out: &mut Vec<u8>, flags: ResponseFlags) {
    for piece in flags.printed() {
        out.extend_from_slice(piece.as_bytes());
    }
}

/// An address as `Display` prints it (`10.0.1.5:15001`, `[::1]:80`); IPv4 by hand.
fn push_address(out: &mut Vec<u8>, address: SocketAddr) {
    match address {
        SocketAddr::V4(v4) => {
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_u64(out, octet.into());
            }
            out.push(b':');
            push_u64(out, v4.port().into());
        }
        // Writing to a `Vec` cannot fail.
        SocketAddr::V6(_) => {
            let _ = write!(out, "{address}");
        }
    }
}

/// Whether `bytes` is visible ASCII and spaces without a `"` (nor, for JSON, a backslash): a
/// value the encoding prints as it is (nearly every value).
///
/// Every byte is tested, without stopping at the first that fails (nearly none does), so that
/// the compiler tests them many at a time.
fn prints_as_is(bytes: &[u8], json: bool) -> bool {
    // Without JSON, the backslash test repeats the quote's.
    let backslash = if json { b'\\' } else { b'"' };
    bytes.iter().fold(true, |plain, &b| {
        plain & (b' '..=b'~').contains(&b) & (b != b'"') & (b != backslash)
    })
}

/// A text value, `-` when missing or empty; see [`Encoding::Text`] for what is replaced.
fn text_value(out: &mut Vec<u8>, value: Option<&[u8]>) {
    let bytes = match value {
        Some(bytes) if !bytes.is_empty() => bytes,
        _ => {
            out.push(b'-');
            return;
        }
    };
    if prints_as_is(bytes, false) {
        out.extend_from_slice(bytes);
        return;
    }
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(
                out,
                match c {
                    '"' => '\'',
                    c if c.is_control() => char::REPLACEMENT_CHARACTER,
                    c => c,
                },
            );
        }
        if !chunk.invalid().is_empty() {
            push_char(out, char::REPLACEMENT_CHARACTER);
        }
    }
}

/// `c` in UTF-8.
fn push_char(out: &mut Vec<u8>, c: char) {
    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
}

/// A text address, `-` when missing.
fn text_address(out: &mut Vec<u8>, address: Option<SocketAddr>) {
    match address {
        Some(address) => push_address(out, address),
        None => out.push(b'-'),
    }
}

/// `,"key":` (every key but the first, `start_time`, which opens the object).
fn json_key(out: &mut Vec<u8>, key: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// A JSON string, `null` when missing or empty.
fn json_string(out: &mut Vec<u8>, value: Option<&[u8]>) {
    let bytes = match value {
        Some(bytes) if !bytes.is_empty() => bytes,
        _ => {
            out.extend_from_slice(b"null");
            return;
        }
    };
    out.push(b'"');
    if prints_as_is(bytes, true) {
        out.extend_from_slice(bytes);
    } else {
        for chunk in bytes.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '"' => out.extend_from_slice(b"\\\""),
                    '\\' => out.extend_from_slice(b"\\\\"),
                    // Writing to a `Vec` cannot fail.
                    c if c.is_control() => {
                        let _ = write!(out, "\\u{:04x}", u32::from(c));
                    }
                    c => push_char(out, c),
                }
            }
            if !chunk.invalid().is_empty() {
                push_char(out, char::REPLACEMENT_CHARACTER);
            }
        }
    }
    out.push(b'"');
}

/// A JSON address, `null` when missing (nothing in an address to escape).
fn json_address(out: &mut Vec<u8>, address: Option<SocketAddr>) {
    match address {
        Some(address) => {
            out.push(b'"');
            push_address(out, address);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

thread_local! {
    /// The second last formatted on this thread, and its `YYYY-MM-DDTHH:MM:SS`: a batch's
    /// entries are requests of the same moment, so most share the second of the one before.
    static LAST_SECOND: Cell<Option<(i128, [u8; 19])>> = const { Cell::new(None) };
}

/// `%START_TIME%`: ISO 8601 in UTC with milliseconds (`2016-04-15T20:17:00.310Z`), the
/// sub-millisecond part truncated (towards the past).
fn push_start_time(out: &mut Vec<u8>, time: SystemTime) {
    // Durations fit in i128 milliseconds many times over.
    let millis = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_millis() as i128,
        Err(before) => -(before.duration().as_nanos().div_ceil(1_000_000) as i128),
    };
    let (second, milli) = (millis.div_euclid(1000), millis.rem_euclid(1000) as u32);
    match LAST_SECOND.get() {
        Some((last, text)) if last == second => out.extend_from_slice(&text),
        _ => {
            let start = out.len();
            push_date_and_time(out, second);
            if let Ok(text) = <[u8; 19]>::try_from(&out[start..]) {
                LAST_SECOND.set(Some((second, text)));
            }
        }
    }
    out.push(b'.');
    push_two_digits(out, milli / 10);
    out.push(b'0' + (milli % 10) as u8);
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS` of `second` since the epoch (a year outside 0–9999 in as many digits
/// as it takes, with its sign).
fn push_date_and_time(out: &mut Vec<u8>, second: i128) {
    // |second| < 2^64, so the days fit in i64.
    let (year, month, day) = civil_from_days(second.div_euclid(86_400) as i64);
    let of_day = second.rem_euclid(86_400) as u32;
    match u32::try_from(year) {
        Ok(year) if year <= 9999 => {
            push_two_digits(out, year / 100);
            push_two_digits(out, year % 100);
        }
        // Writing to a `Vec` cannot fail.
        _ => {
            let _ = write!(out, "{year:04}");
        }
    }
    out.push(b'-');
    push_two_digits(out, month);
    out.push(b'-');
    push_two_digits(out, day);
    out.push(b'T');
    push_two_digits(out, of_day / 3600);
    out.push(b':');
    push_two_digits(out, of_day / 60 % 60);
    out.push(b':');
    push_two_digits(out, of_day % 60);
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`: 400-year eras starting on March 1st, so the leap day ends a year).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097); // [0, 146096]
    // [0, 399]
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    // [0, 365]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153; // [0, 11]
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32; // [1, 31]
    let month = (if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    }) as u32; // [1, 12]
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use http::{HeaderValue, Method, Uri, uri::Authority};
    use mesh_core::{ResponseFlag, ResponseFlags};
    use serde_json::Value;
    use std::{collections::BTreeMap, time::Duration};

    /// 2016-04-15T20:17:00.310Z, the date of Envoy's documentation example.
    const ENVOY_EXAMPLE_MILLIS: u64 = 1_460_751_420_310;

    /// An entry with every field set, flags `UF,URX`.
    pub(in crate::access_log) fn full_entry() -> AccessLogEntry {
        let mut flags = ResponseFlags::default();
        flags.insert(ResponseFlag::UpstreamRetryLimitExceeded);
        flags.insert(ResponseFlag::UpstreamConnectionFailure);
        AccessLogEntry {
            start_time: UNIX_EPOCH + Duration::from_millis(ENVOY_EXAMPLE_MILLIS),
            method: Method::POST,
            uri: Uri::from_static("/api/v1/locations?zone=eu"),
            host: Some(HeaderValue::from_static("locations")),
            original_path: None,
            protocol: Version::HTTP_2,
            response_code: 503,
            response_flags: flags,
            response_code_details: "upstream_reset_before_response_started{connection_failure}"
                .into(),
            bytes_received: 154,
            bytes_sent: 91,
            duration: Duration::from_micros(226_900),
            upstream_service_time: Some(HeaderValue::from_static("100")),
            x_forwarded_for: Some(HeaderValue::from_static("10.0.35.28, 10.0.0.1")),
            user_agent: Some(HeaderValue::from_static("Mozilla/5.0 (X11; Linux x86_64)")),
            request_id: Some(HeaderValue::from_static(
                "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2",
            )),
            upstream_host: Some(Authority::from_static("10.0.2.1:80")),
            upstream_cluster: Some("outbound|80||locations.default.svc.cluster.local".into()),
            upstream_local_address: Some("10.0.1.5:40000".parse().unwrap()),
            downstream_local_address: Some("10.0.1.5:15001".parse().unwrap()),
            downstream_remote_address: Some("[2001:db8::1]:51234".parse().unwrap()),
            requested_server_name: Some(
                "outbound_.80_._.locations.default.svc.cluster.local".into(),
            ),
            route_name: Some("default".into()),
        }
    }

    /// What [`full_entry`] prints, by JSON key (`None`: missing).
    fn full_expected() -> Vec<(&'static str, Option<&'static str>)> {
        vec![
            ("start_time", Some("2016-04-15T20:17:00.310Z")),
            ("route_name", Some("default")),
            ("method", Some("POST")),
            ("path", Some("/api/v1/locations?zone=eu")),
            ("protocol", Some("HTTP/2")),
            ("response_code", Some("503")),
            ("response_flags", Some("UF,URX")),
            (
                "response_code_details",
                Some("upstream_reset_before_response_started{connection_failure}"),
            ),
            ("connection_termination_details", None),
            ("bytes_received", Some("154")),
            ("bytes_sent", Some("91")),
            ("duration", Some("226")),
            ("upstream_service_time", Some("100")),
            ("x_forwarded_for", Some("10.0.35.28, 10.0.0.1")),
            ("user_agent", Some("Mozilla/5.0 (X11; Linux x86_64)")),
            ("request_id", Some("cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2")),
            ("authority", Some("locations")),
            ("upstream_host", Some("10.0.2.1:80")),
            (
                "upstream_cluster",
                Some("outbound|80||locations.default.svc.cluster.local"),
            ),
            ("upstream_local_address", Some("10.0.1.5:40000")),
            ("downstream_local_address", Some("10.0.1.5:15001")),
            ("downstream_remote_address", Some("[2001:db8::1]:51234")),
            (
                "requested_server_name",
                Some("outbound_.80_._.locations.default.svc.cluster.local"),
            ),
            ("upstream_transport_failure_reason", None),
        ]
    }

    /// An entry with every `Option` `None`, no status (0), no flags and empty details.
    fn empty_entry() -> AccessLogEntry {
        AccessLogEntry {
            start_time: UNIX_EPOCH,
            method: Method::GET,
            uri: Uri::from_static("/"),
            host: None,
            original_path: None,
            protocol: Version::HTTP_11,
            response_code: 0,
            response_flags: ResponseFlags::default(),
            response_code_details: "".into(),
            bytes_received: 0,
            bytes_sent: 0,
            duration: Duration::ZERO,
            upstream_service_time: None,
            x_forwarded_for: None,
            user_agent: None,
            request_id: None,
            upstream_host: None,
            upstream_cluster: None,
            upstream_local_address: None,
            downstream_local_address: None,
            downstream_remote_address: None,
            requested_server_name: None,
            route_name: None,
        }
    }

    fn empty_expected() -> Vec<(&'static str, Option<&'static str>)> {
        let present = [
            ("start_time", "1970-01-01T00:00:00.000Z"),
            ("method", "GET"),
            ("path", "/"),
            ("protocol", "HTTP/1.1"),
            ("response_code", "0"),
            ("response_flags", "-"),
            ("bytes_received", "0"),
            ("bytes_sent", "0"),
            ("duration", "0"),
        ];
        JSON_KEYS
            .iter()
            .map(|&key| {
                let value = present.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
                (key, value)
            })
            .collect()
    }

    const JSON_KEYS: [&str; 24] = [
        "start_time",
        "route_name",
        "method",
        "path",
        "protocol",
        "response_code",
        "response_flags",
        "response_code_details",
        "connection_termination_details",
        "bytes_received",
        "bytes_sent",
        "duration",
        "upstream_service_time",
        "x_forwarded_for",
        "user_agent",
        "request_id",
        "authority",
        "upstream_host",
        "upstream_cluster",
        "upstream_local_address",
        "downstream_local_address",
        "downstream_remote_address",
        "requested_server_name",
        "upstream_transport_failure_reason",
    ];

    const JSON_NUMBERS: [&str; 4] = ["response_code", "bytes_received", "bytes_sent", "duration"];

    /// The text format's fields in order, with how each is delimited: `[`…`]`, `"`…`"` or
    /// bare (` `). `request` is `"%REQ(:METHOD)% %REQ(…PATH)% %PROTOCOL%"`.
    const TEXT_LAYOUT: [(&str, char); 22] = [
        ("start_time", '['),
        ("request", '"'),
        ("response_code", ' '),
        ("response_flags", ' '),
        ("response_code_details", ' '),
        ("connection_termination_details", ' '),
        ("upstream_transport_failure_reason", '"'),
        ("bytes_received", ' '),
        ("bytes_sent", ' '),
        ("duration", ' '),
        ("upstream_service_time", ' '),
        ("x_forwarded_for", '"'),
        ("user_agent", '"'),
        ("request_id", '"'),
        ("authority", '"'),
        ("upstream_host", '"'),
        ("upstream_cluster", ' '),
        ("upstream_local_address", ' '),
        ("downstream_local_address", ' '),
        ("downstream_remote_address", ' '),
        ("requested_server_name", ' '),
        ("route_name", ' '),
    ];

    /// Parses a text line back into its fields, by JSON key, checking that it is one line,
    /// that its fields are separated by single spaces, that each is delimited as
    /// [`TEXT_LAYOUT`] says and that no quote is left over.
    fn parse_text(line: &str) -> BTreeMap<&'static str, String> {
        let body = line.strip_suffix('\n').expect("a line ends in \\n");
        assert!(!body.contains(['\n', '\r']), "one line: {line:?}");
        let mut fields = BTreeMap::new();
        let mut rest = body;
        for (i, &(name, kind)) in TEXT_LAYOUT.iter().enumerate() {
            if i > 0 {
                rest = rest
                    .strip_prefix(' ')
                    .unwrap_or_else(|| panic!("one space before {name}: {rest:?} in {line:?}"));
            }
            let (value, after) = match kind {
                '[' | '"' => {
                    let close = if kind == '[' { ']' } else { '"' };
                    let inner = rest
                        .strip_prefix(kind)
                        .unwrap_or_else(|| panic!("{name} opens with {kind}: {line:?}"));
                    let end = inner
                        .find(close)
                        .unwrap_or_else(|| panic!("{name} closes with {close}: {line:?}"));
                    (&inner[..end], &inner[end + 1..])
                }
                _ => {
                    let end = rest.find(' ').unwrap_or(rest.len());
                    (&rest[..end], &rest[end..])
                }
            };
            assert!(!value.contains('"'), "{name} holds a quote: {line:?}");
            rest = after;
            if name == "request" {
                let parts: Vec<&str> = value.split(' ').collect();
                assert_eq!(parts.len(), 3, "{value:?}");
                fields.insert("method", parts[0].to_owned());
                fields.insert("path", parts[1].to_owned());
                fields.insert("protocol", parts[2].to_owned());
            } else {
                fields.insert(name, value.to_owned());
            }
        }
        assert_eq!(rest, "", "nothing after the route name: {line:?}");
        fields
    }

    /// `entry` formatted, checked to be UTF-8.
    fn format(entry: &AccessLogEntry, encoding: Encoding) -> String {
        let mut out = Vec::new();
        format_entry(entry, encoding, &mut out);
        String::from_utf8(out).expect("UTF-8")
    }

    fn check_text(entry: &AccessLogEntry, expected: &[(&str, Option<&str>)]) {
        let line = format(entry, Encoding::Text);
        let fields = parse_text(&line);
        assert_eq!(fields.len(), JSON_KEYS.len(), "{fields:?}");
        for &(key, value) in expected {
            assert_eq!(fields[key], value.unwrap_or("-"), "{key} in {line:?}");
        }
    }

    fn check_json(entry: &AccessLogEntry, expected: &[(&str, Option<&str>)]) {
        let line = format(entry, Encoding::Json);
        assert!(
            line.ends_with('\n') && line.matches('\n').count() == 1,
            "{line:?}"
        );
        let json: Value = serde_json::from_str(&line).unwrap();
        let object = json.as_object().expect("an object");
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        let mut want: Vec<&str> = JSON_KEYS.to_vec();
        keys.sort_unstable();
        want.sort_unstable();
        assert_eq!(keys, want);
        for &(key, value) in expected {
            let got = &object[key];
            match value {
                None => assert!(got.is_null(), "{key}: {got}"),
                Some(value) if JSON_NUMBERS.contains(&key) => {
                    assert_eq!(got.as_u64(), Some(value.parse().unwrap()), "{key}: {got}")
                }
                Some(value) => assert_eq!(got.as_str(), Some(value), "{key}: {got}"),
            }
        }
    }

    #[test]
    fn encoding_defaults_to_text() {
        assert_eq!(Encoding::default(), Encoding::Text);
    }

    #[test]
    fn text_matches_istio_documentation_example() {
        let entry = AccessLogEntry {
            uri: Uri::from_static("/api/v1/locations"),
            response_code: 204,
            response_flags: ResponseFlags::default(),
            response_code_details: "via_upstream".into(),
            bytes_sent: 0,
            duration: Duration::from_millis(226),
            x_forwarded_for: Some(HeaderValue::from_static("10.0.35.28")),
            user_agent: Some(HeaderValue::from_static("nsq2http")),
            downstream_remote_address: Some("10.0.35.28:51234".parse().unwrap()),
            requested_server_name: None,
            ..full_entry()
        };
        assert_eq!(
            format(&entry, Encoding::Text),
            concat!(
                r#"[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - "#,
                r#"via_upstream - "-" 154 0 226 100 "10.0.35.28" "nsq2http" "#,
                r#""cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "10.0.2.1:80" "#,
                r#"outbound|80||locations.default.svc.cluster.local "#,
                "10.0.1.5:40000 10.0.1.5:15001 10.0.35.28:51234 - default\n",
            )
        );
    }

    #[test]
    fn text_full_entry_parses_back() {
        check_text(&full_entry(), &full_expected());
    }

    #[test]
    fn text_missing_values_print_dash() {
        let line = format(&empty_entry(), Encoding::Text);
        assert_eq!(
            line,
            "[1970-01-01T00:00:00.000Z] \"GET / HTTP/1.1\" 0 - - - \"-\" 0 0 0 - \"-\" \"-\" \"-\" \
             \"-\" \"-\" - - - - - -\n"
        );
        check_text(&empty_entry(), &empty_expected());
    }

    #[test]
    fn text_empty_values_print_dash() {
        let entry = AccessLogEntry {
            user_agent: Some(HeaderValue::from_static("")),
            route_name: Some("".into()),
            ..full_entry()
        };
        let fields = parse_text(&format(&entry, Encoding::Text));
        assert_eq!(fields["user_agent"], "-");
        assert_eq!(fields["route_name"], "-");
    }

    #[test]
    fn path_prefers_x_envoy_original_path_and_authority_the_uri() {
        let entry = AccessLogEntry {
            uri: Uri::from_static("http://catalog.shop:8080/items?page=2"),
            host: Some(HeaderValue::from_static("ignored")),
            ..full_entry()
        };
        let fields = parse_text(&format(&entry, Encoding::Text));
        assert_eq!(fields["path"], "/items?page=2");
        assert_eq!(fields["authority"], "catalog.shop:8080");

        let rewritten = AccessLogEntry {
            original_path: Some(HeaderValue::from_static("/original?q=1")),
            ..entry
        };
        let fields = parse_text(&format(&rewritten, Encoding::Text));
        assert_eq!(fields["path"], "/original?q=1");
        let json: Value = serde_json::from_str(&format(&rewritten, Encoding::Json)).unwrap();
        assert_eq!(json["path"], "/original?q=1");
        assert_eq!(json["authority"], "catalog.shop:8080");
    }

    #[test]
    fn protocols_print_as_envoy_names_them() {
        for (version, name) in [
            (Version::HTTP_10, "HTTP/1.0"),
            (Version::HTTP_11, "HTTP/1.1"),
            (Version::HTTP_2, "HTTP/2"),
            (Version::HTTP_3, "HTTP/3"),
            (Version::HTTP_09, "-"),
        ] {
            let entry = AccessLogEntry {
                protocol: version,
                ..full_entry()
            };
            assert_eq!(
                parse_text(&format(&entry, Encoding::Text))["protocol"],
                name
            );
        }
    }

    #[test]
    fn duration_is_whole_milliseconds() {
        for (duration, millis) in [
            (Duration::from_micros(999), "0"),
            (Duration::from_micros(226_999), "226"),
            (Duration::from_secs(61), "61000"),
        ] {
            let entry = AccessLogEntry {
                duration,
                ..full_entry()
            };
            assert_eq!(
                parse_text(&format(&entry, Encoding::Text))["duration"],
                millis
            );
        }
    }

    #[test]
    fn text_unsafe_values_keep_one_line_and_balanced_quotes() {
        let entry = AccessLogEntry {
            user_agent: Some(HeaderValue::from_bytes(b"say \"hi\"\tnow \xff!").unwrap()),
            host: Some(HeaderValue::from_bytes(b"caf\xc3\xa9.example").unwrap()),
            original_path: Some(HeaderValue::from_bytes(b"/a\"b").unwrap()),
            route_name: Some("evil\r\n\"route\u{7f}".into()),
            upstream_cluster: Some("a\"b".into()),
            ..full_entry()
        };
        let line = format(&entry, Encoding::Text);
        let fields = parse_text(&line);
        assert_eq!(fields["user_agent"], "say 'hi'\u{fffd}now \u{fffd}!");
        assert_eq!(fields["authority"], "café.example");
        assert_eq!(fields["path"], "/a'b");
        assert_eq!(fields["route_name"], "evil\u{fffd}\u{fffd}'route\u{fffd}");
        assert_eq!(fields["upstream_cluster"], "a'b");
        assert_eq!(line.matches('"').count(), 2 * 7, "{line:?}");
    }

    #[test]
    fn json_full_entry_parses_back() {
        check_json(&full_entry(), &full_expected());
    }

    #[test]
    fn json_missing_values_are_null() {
        check_json(&empty_entry(), &empty_expected());
        let json: Value = serde_json::from_str(&format(&empty_entry(), Encoding::Json)).unwrap();
        assert_eq!(json["response_flags"], "-");
        assert_eq!(json["response_code"], 0);
        assert!(json["route_name"].is_null());
        assert!(json["response_code_details"].is_null());
    }

    #[test]
    fn json_escapes_quotes_backslashes_and_control_characters() {
        let user_agent = "say \"hi\" \\ back\\slash\t";
        let route = "line\nbreak\r\u{1}\u{7f}\u{9f}";
        let entry = AccessLogEntry {
            user_agent: Some(HeaderValue::from_str(user_agent).unwrap()),
            route_name: Some(route.into()),
            request_id: Some(HeaderValue::from_bytes(b"id-\xff").unwrap()),
            host: Some(HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap()),
            uri: Uri::from_static("/"),
            ..full_entry()
        };
        let line = format(&entry, Encoding::Json);
        assert_eq!(line.matches('\n').count(), 1, "{line:?}");
        assert!(!line.contains('\r') && !line.contains('\u{1}'), "{line:?}");
        assert!(line.contains(r#""route_name":"line\u000abreak\u000d\u0001\u007f\u009f""#));
        let json: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["user_agent"], user_agent);
        assert_eq!(json["route_name"], route);
        assert_eq!(json["request_id"], "id-\u{fffd}");
        assert_eq!(json["authority"], "café");
    }

    #[test]
    fn format_entry_appends_one_line() {
        let mut out = b"previous\n".to_vec();
        format_entry(&full_entry(), Encoding::Text, &mut out);
        format_entry(&full_entry(), Encoding::Json, &mut out);
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.split_inclusive('\n').collect();
        assert_eq!(lines.len(), 3, "{out:?}");
        assert_eq!(lines[0], "previous\n");
        assert_eq!(lines[1], format(&full_entry(), Encoding::Text));
        assert_eq!(lines[2], format(&full_entry(), Encoding::Json));
    }

    fn start_time(time: SystemTime) -> String {
        let mut out = Vec::new();
        push_start_time(&mut out, time);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn start_time_is_utc_with_milliseconds() {
        let at = |millis: u64| UNIX_EPOCH + Duration::from_millis(millis);
        for (time, expected) in [
            (UNIX_EPOCH, "1970-01-01T00:00:00.000Z"),
            (at(ENVOY_EXAMPLE_MILLIS), "2016-04-15T20:17:00.310Z"),
            (
                at(ENVOY_EXAMPLE_MILLIS) + Duration::from_micros(999),
                "2016-04-15T20:17:00.310Z",
            ),
            (at(1_709_251_199_999), "2024-02-29T23:59:59.999Z"),
            (at(1_709_251_200_000), "2024-03-01T00:00:00.000Z"),
            (at(1_709_164_800_000), "2024-02-29T00:00:00.000Z"),
            (at(951_782_400_000), "2000-02-29T00:00:00.000Z"),
            (at(4_107_456_000_000), "2100-02-28T00:00:00.000Z"),
            (at(4_107_542_400_000), "2100-03-01T00:00:00.000Z"),
            (at(946_684_799_000), "1999-12-31T23:59:59.000Z"),
            (at(253_402_300_799_999), "9999-12-31T23:59:59.999Z"),
            (
                UNIX_EPOCH - Duration::from_millis(1),
                "1969-12-31T23:59:59.999Z",
            ),
            (
                UNIX_EPOCH - Duration::from_nanos(1),
                "1969-12-31T23:59:59.999Z",
            ),
            (
                UNIX_EPOCH - Duration::from_secs(2_208_988_800),
                "1900-01-01T00:00:00.000Z",
            ),
            // Years of other than four digits, in as many as they take.
            (at(253_402_300_800_000), "10000-01-01T00:00:00.000Z"),
            (
                UNIX_EPOCH - Duration::from_secs(62_167_219_200 + 86_400),
                "-001-12-31T00:00:00.000Z",
            ),
        ] {
            assert_eq!(start_time(time), expected, "{time:?}");
        }
        let json: Value = serde_json::from_str(&format(&full_entry(), Encoding::Json)).unwrap();
        assert_eq!(json["start_time"], "2016-04-15T20:17:00.310Z");
    }

    #[test]
    fn a_second_formatted_before_is_reused_only_within_that_second() {
        let at = |millis: u64| UNIX_EPOCH + Duration::from_millis(millis);
        for (millis, expected) in [
            (ENVOY_EXAMPLE_MILLIS, "2016-04-15T20:17:00.310Z"),
            (ENVOY_EXAMPLE_MILLIS + 689, "2016-04-15T20:17:00.999Z"),
            (ENVOY_EXAMPLE_MILLIS + 690, "2016-04-15T20:17:01.000Z"),
            (ENVOY_EXAMPLE_MILLIS, "2016-04-15T20:17:00.310Z"),
            (
                ENVOY_EXAMPLE_MILLIS + 86_400_000,
                "2016-04-16T20:17:00.310Z",
            ),
            (
                ENVOY_EXAMPLE_MILLIS + 86_400_007,
                "2016-04-16T20:17:00.317Z",
            ),
        ] {
            assert_eq!(start_time(at(millis)), expected);
        }
    }

    #[test]
    fn addresses_print_as_display_prints_them() {
        for address in [
            "10.0.1.5:15001",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "[::1]:80",
            "[2001:db8::7]:15006",
        ] {
            let address: SocketAddr = address.parse().unwrap();
            let mut out = Vec::new();
            push_address(&mut out, address);
            assert_eq!(String::from_utf8(out).unwrap(), address.to_string());
        }
    }

    #[test]
    fn numbers_print_in_decimal() {
        for n in [0, 7, 10, 204, 65_535, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    #[test]
    fn numbers_print_as_display_prints_them() {
        for n in [
            0,
            7,
            9,
            10,
            42,
            99,
            100,
            101,
            503,
            999,
            1_000,
            65_535,
            123_456_789,
        ]
        .into_iter()
        .chain([u64::MAX - 1, u64::MAX])
        {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
        for n in 0..100 {
            let mut out = Vec::new();
            push_two_digits(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), format!("{n:02}"));
        }
    }

    #[test]
    fn the_bytes_printed_as_they_are_are_exactly_the_plain_ones() {
        for json in [false, true] {
            for b in 0..=u8::MAX {
                let plain = (b' '..=b'~').contains(&b) && b != b'"' && !(json && b == b'\\');
                assert_eq!(prints_as_is(&[b], json), plain, "{b:#04x}, json {json}");
                // Anywhere in a longer value.
                let value = [b"catalog.shop:8080 ".as_slice(), &[b], b" curl/8.5"].concat();
                assert_eq!(
                    prints_as_is(&value, json),
                    plain,
                    "{b:#04x} inside, json {json}"
                );
            }
        }
    }

    #[test]
    fn civil_date_matches_a_day_by_day_calendar() {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let (mut year, mut month, mut day) = (1970_i64, 1_u32, 1_u32);
        for days in 0..(500 * 366) {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            let month_length = match month {
                2 if leap(year) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            day += 1;
            if day > month_length {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }
}
