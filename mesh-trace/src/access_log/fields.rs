//! [`Fields`]: the values one access log line prints, borrowed — from an [`AccessLogEntry`]
//! or from a [`Batch`], the byte buffer entries wait in for the writer thread.
//!
//! An entry is packed into the batch on the request path: its values are copied (a couple of
//! hundred bytes), and the entry, with its reference-counted URI, header values and names, is
//! dropped there. The writer thread reads the bytes back as `Fields`, so it never touches a
//! request's reference counts, and handing an entry over costs no allocation once the batch
//! buffer has grown: measured on the telemetry bench, handing over the entries themselves cost
//! the request path about as much again as everything else the access log does.

use super::AccessLogEntry;
use http::Version;
use mesh_core::ResponseFlags;
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// What one line prints, each value as it is printed (bytes that may need replacing, numbers,
/// addresses); `None` prints `-` in text and `null` in JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Fields<'a> {
    pub start_time: SystemTime,
    pub method: &'a [u8],
    /// `%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%`.
    pub path: Option<&'a [u8]>,
    pub protocol: Option<&'static str>,
    pub response_code: u16,
    pub response_flags: ResponseFlags,
    pub response_code_details: &'a [u8],
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// `%DURATION%`, in whole milliseconds.
    pub duration_ms: u64,
    pub upstream_service_time: Option<&'a [u8]>,
    pub x_forwarded_for: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    pub request_id: Option<&'a [u8]>,
    /// `%REQ(:AUTHORITY)%`.
    pub authority: Option<&'a [u8]>,
    pub upstream_host: Option<&'a [u8]>,
    pub upstream_cluster: Option<&'a [u8]>,
    pub upstream_local_address: Option<SocketAddr>,
    pub downstream_local_address: Option<SocketAddr>,
    pub downstream_remote_address: Option<SocketAddr>,
    pub requested_server_name: Option<&'a [u8]>,
    pub route_name: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    /// The values `entry` prints. A path or `Host` that is not visible ASCII still prints
    /// (lossily), unlike [`AccessLogEntry::path`] and [`AccessLogEntry::authority`].
    pub fn of(entry: &'a AccessLogEntry) -> Self {
        let header = |value: &'a Option<http::HeaderValue>| value.as_ref().map(|v| v.as_bytes());
        let shared = |value: &'a Option<std::sync::Arc<str>>| value.as_deref().map(str::as_bytes);
        Fields {
            start_time: entry.start_time,
            method: entry.method.as_str().as_bytes(),
            path: match &entry.original_path {
                Some(original) => Some(original.as_bytes()),
                None => entry.uri.path_and_query().map(|p| p.as_str().as_bytes()),
            },
            protocol: protocol(entry.protocol),
            response_code: entry.response_code,
            response_flags: entry.response_flags,
            response_code_details: entry.response_code_details.as_bytes(),
            bytes_received: entry.bytes_received,
            bytes_sent: entry.bytes_sent,
            duration_ms: u64::try_from(entry.duration.as_millis()).unwrap_or(u64::MAX),
            upstream_service_time: header(&entry.upstream_service_time),
            x_forwarded_for: header(&entry.x_forwarded_for),
            user_agent: header(&entry.user_agent),
            request_id: header(&entry.request_id),
            authority: match entry.uri.authority() {
                Some(authority) => Some(authority.as_str().as_bytes()),
                None => header(&entry.host),
            },
            upstream_host: entry.upstream_host.as_ref().map(|h| h.as_str().as_bytes()),
            upstream_cluster: shared(&entry.upstream_cluster),
            upstream_local_address: entry.upstream_local_address,
            downstream_local_address: entry.downstream_local_address,
            downstream_remote_address: entry.downstream_remote_address,
            requested_server_name: shared(&entry.requested_server_name),
            route_name: shared(&entry.route_name),
        }
    }
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

/// The protocols [`protocol`] names, by their index in a [`Batch`] (0: none).
const PROTOCOLS: [&str; 4] = ["HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/3"];

/// Entries packed one after another into a byte buffer, read back in order as [`Fields`].
#[derive(Debug, Default)]
pub(super) struct Batch {
    bytes: Vec<u8>,
    len: usize,
}

/// The length written for a missing value.
const NONE: u32 = u32::MAX;

impl Batch {
    /// Entries packed so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Packs `entry`'s values after the others.
    pub fn push(&mut self, entry: &AccessLogEntry) {
        let f = Fields::of(entry);
        // Before the epoch (a clock set wrong): how long before, marked.
        let (before, from_epoch) = match f.start_time.duration_since(UNIX_EPOCH) {
            Ok(after) => (0, after),
            Err(before) => (1, before.duration()),
        };
        self.bytes.push(before);
        self.u64(from_epoch.as_secs());
        self.u32(from_epoch.subsec_nanos());
        self.bytes(Some(f.method));
        self.bytes(f.path);
        let protocol = f
            .protocol
            .and_then(|p| PROTOCOLS.iter().position(|known| *known == p));
        self.bytes.push(protocol.map_or(0, |i| i as u8 + 1));
        self.bytes.extend_from_slice(&f.response_code.to_le_bytes());
        self.u32(f.response_flags.bits());
        self.bytes(Some(f.response_code_details));
        self.u64(f.bytes_received);
        self.u64(f.bytes_sent);
        self.u64(f.duration_ms);
        for value in [
            f.upstream_service_time,
            f.x_forwarded_for,
            f.user_agent,
            f.request_id,
            f.authority,
            f.upstream_host,
            f.upstream_cluster,
        ] {
            self.bytes(value);
        }
        for address in [
            f.upstream_local_address,
            f.downstream_local_address,
            f.downstream_remote_address,
        ] {
            self.address(address);
        }
        self.bytes(f.requested_server_name);
        self.bytes(f.route_name);
        self.len += 1;
    }

    /// The entries' fields, in the order they were pushed.
    pub fn iter(&self) -> impl Iterator<Item = Fields<'_>> {
        let mut reader = Reader(&self.bytes);
        std::iter::from_fn(move || {
            let fields = reader.fields();
            // Only what `push` wrote is read: a short read would be a bug of this file.
            debug_assert!(fields.is_some() || reader.0.is_empty(), "a corrupt batch");
            fields
        })
    }

    /// Empties the batch, keeping its buffer.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.len = 0;
    }

    fn u32(&mut self, value: u32) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    fn u64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    /// A length (or [`NONE`]) and the bytes; values longer than 4 GiB - 2 are cut short.
    fn bytes(&mut self, value: Option<&[u8]>) {
        match value {
            Some(value) => {
                let value = &value[..value.len().min(NONE as usize - 1)];
                self.u32(value.len() as u32);
                self.bytes.extend_from_slice(value);
            }
            None => self.u32(NONE),
        }
    }

    /// A tag (0: none, 4 or 6), the address, the port (and a v6 address's scope).
    fn address(&mut self, address: Option<SocketAddr>) {
        match address {
            None => self.bytes.push(0),
            Some(SocketAddr::V4(v4)) => {
                self.bytes.push(4);
                self.bytes.extend_from_slice(&v4.ip().octets());
                self.bytes.extend_from_slice(&v4.port().to_le_bytes());
            }
            Some(SocketAddr::V6(v6)) => {
                self.bytes.push(6);
                self.bytes.extend_from_slice(&v6.ip().octets());
                self.bytes.extend_from_slice(&v6.port().to_le_bytes());
                self.u32(v6.scope_id());
            }
        }
    }
}

/// Reads what [`Batch::push`] wrote, from the front.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn fields(&mut self) -> Option<Fields<'a>> {
        let before = self.take::<1>()?[0] == 1;
        let from_epoch = Duration::new(self.u64()?, self.u32()?);
        let start_time = match before {
            false => UNIX_EPOCH + from_epoch,
            true => UNIX_EPOCH - from_epoch,
        };
        let method = self.bytes()??;
        let path = self.bytes()?;
        let protocol = match self.take::<1>()?[0] {
            0 => None,
            i => Some(*PROTOCOLS.get(usize::from(i) - 1)?),
        };
        let response_code = u16::from_le_bytes(self.take()?);
        let response_flags = ResponseFlags::from_bits(self.u32()?);
        let response_code_details = self.bytes()??;
        let (bytes_received, bytes_sent, duration_ms) = (self.u64()?, self.u64()?, self.u64()?);
        Some(Fields {
            start_time,
            method,
            path,
            protocol,
            response_code,
            response_flags,
            response_code_details,
            bytes_received,
            bytes_sent,
            duration_ms,
            upstream_service_time: self.bytes()?,
            x_forwarded_for: self.bytes()?,
            user_agent: self.bytes()?,
            request_id: self.bytes()?,
            authority: self.bytes()?,
            upstream_host: self.bytes()?,
            upstream_cluster: self.bytes()?,
            upstream_local_address: self.address()?,
            downstream_local_address: self.address()?,
            downstream_remote_address: self.address()?,
            requested_server_name: self.bytes()?,
            route_name: self.bytes()?,
        })
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }

    /// `None` when the batch ends; `Some(None)` for a missing value.
    fn bytes(&mut self) -> Option<Option<&'a [u8]>> {
        let len = self.u32()?;
        if len == NONE {
            return Some(None);
        }
        let (value, rest) = self.0.split_at_checked(len as usize)?;
        self.0 = rest;
        Some(Some(value))
    }

    /// `None` when the batch ends; `Some(None)` for a missing address.
    fn address(&mut self) -> Option<Option<SocketAddr>> {
        let address = match self.take::<1>()?[0] {
            0 => return Some(None),
            4 => {
                let ip = Ipv4Addr::from(self.take::<4>()?);
                SocketAddr::new(IpAddr::V4(ip), u16::from_le_bytes(self.take()?))
            }
            _ => {
                let ip = Ipv6Addr::from(self.take::<16>()?);
                let port = u16::from_le_bytes(self.take()?);
                SocketAddr::V6(SocketAddrV6::new(ip, port, 0, self.u32()?))
            }
        };
        Some(Some(address))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::format::tests::full_entry;
    use http::{HeaderValue, Uri};

    #[test]
    fn entries_read_back_from_a_batch_print_what_the_entries_print() {
        let full = full_entry();
        let sparse = AccessLogEntry {
            uri: Uri::from_static("http://catalog:8080/items?page=2"),
            host: None,
            original_path: None,
            protocol: Version::HTTP_09,
            user_agent: Some(HeaderValue::from_bytes(b"caf\xc3\xa9 \"x\"").unwrap()),
            request_id: None,
            upstream_host: None,
            upstream_cluster: None,
            upstream_local_address: None,
            downstream_local_address: Some("[fe80::1%3]:443".parse().unwrap()),
            downstream_remote_address: Some("10.1.2.3:5000".parse().unwrap()),
            requested_server_name: None,
            route_name: None,
            ..full_entry()
        };
        let before_epoch = AccessLogEntry {
            start_time: UNIX_EPOCH - Duration::from_millis(1_500),
            ..full_entry()
        };
        let mut batch = Batch::default();
        for entry in [&full, &sparse, &before_epoch] {
            batch.push(entry);
        }
        assert_eq!(batch.len(), 3);
        let read: Vec<Fields<'_>> = batch.iter().collect();
        let expected = [&full, &sparse, &before_epoch].map(Fields::of);
        assert_eq!(read, expected);
        batch.clear();
        assert!(batch.is_empty());
        assert_eq!(batch.iter().count(), 0);
    }
}
