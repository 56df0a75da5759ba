//! [`Fields`]: the fields an access-log line prints, each text as bytes — borrowed
//! ([`EntryView`], what the formatter reads), or as a [`Span`] of a buffer of texts (what an
//! [`EntryDraft`](super::draft::EntryDraft) and the writer's queue keep).
//!
//! One struct for all three, so that a draft and the queue keep exactly what a line prints,
//! and a field added to one is added to the others.

use super::AccessLogEntry;
use http::{HeaderValue, Uri, Version};
use mesh_core::ResponseFlags;
use std::{
    net::SocketAddr,
    num::NonZeroU32,
    time::{Duration, SystemTime},
};

/// The fields of one access-log line, each text a `T`; see the [module docs](self).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fields<T> {
    pub start_time: SystemTime,
    pub method: T,
    /// `%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%`.
    pub path: Option<T>,
    pub protocol: Version,
    pub response_code: u16,
    pub response_flags: ResponseFlags,
    pub response_code_details: T,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub duration: Duration,
    pub upstream_service_time: Option<T>,
    pub x_forwarded_for: Option<T>,
    pub user_agent: Option<T>,
    pub request_id: Option<T>,
    /// `%REQ(:AUTHORITY)%`.
    pub authority: Option<T>,
    pub upstream_host: Option<T>,
    pub upstream_cluster: Option<T>,
    pub upstream_local_address: Option<SocketAddr>,
    pub downstream_local_address: Option<SocketAddr>,
    pub downstream_remote_address: Option<SocketAddr>,
    pub requested_server_name: Option<T>,
    pub route_name: Option<T>,
}

/// An entry as the formatter reads it: its texts borrowed.
pub(crate) type EntryView<'a> = Fields<&'a [u8]>;

impl<'a> EntryView<'a> {
    /// The fields `entry` prints. A path or authority from a header that is not visible ASCII
    /// is kept as its bytes, for the formatter to print lossily.
    pub fn of(entry: &'a AccessLogEntry) -> Self {
        let header = |value: &'a Option<HeaderValue>| value.as_ref().map(HeaderValue::as_bytes);
        let text = |value: &'a Option<std::sync::Arc<str>>| value.as_deref().map(str::as_bytes);
        Fields {
            start_time: entry.start_time,
            method: entry.method.as_str().as_bytes(),
            path: printed_path(&entry.uri, entry.original_path.as_ref()),
            protocol: entry.protocol,
            response_code: entry.response_code,
            response_flags: entry.response_flags,
            response_code_details: entry.response_code_details.as_bytes(),
            bytes_received: entry.bytes_received,
            bytes_sent: entry.bytes_sent,
            duration: entry.duration,
            upstream_service_time: header(&entry.upstream_service_time),
            x_forwarded_for: header(&entry.x_forwarded_for),
            user_agent: header(&entry.user_agent),
            request_id: header(&entry.request_id),
            authority: printed_authority(&entry.uri, entry.host.as_ref()),
            upstream_host: entry.upstream_host.as_ref().map(|h| h.as_str().as_bytes()),
            upstream_cluster: text(&entry.upstream_cluster),
            upstream_local_address: entry.upstream_local_address,
            downstream_local_address: entry.downstream_local_address,
            downstream_remote_address: entry.downstream_remote_address,
            requested_server_name: text(&entry.requested_server_name),
            route_name: text(&entry.route_name),
        }
    }
}

/// `%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%` of a request for `uri` with `original_path`: kept as
/// bytes, so that a header that is not visible ASCII still prints (lossily).
pub(crate) fn printed_path<'a>(
    uri: &'a Uri,
    original_path: Option<&'a HeaderValue>,
) -> Option<&'a [u8]> {
    match original_path {
        Some(original) => Some(original.as_bytes()),
        None => uri.path_and_query().map(|p| p.as_str().as_bytes()),
    }
}

/// `%REQ(:AUTHORITY)%` of a request for `uri` with `host`: the URI's authority, else `Host`'s
/// bytes (see [`printed_path`]).
pub(crate) fn printed_authority<'a>(
    uri: &'a Uri,
    host: Option<&'a HeaderValue>,
) -> Option<&'a [u8]> {
    match uri.authority() {
        Some(authority) => Some(authority.as_str().as_bytes()),
        None => host.map(HeaderValue::as_bytes),
    }
}

/// Where a text lies in a buffer of texts: its start, and one past its end, in bytes.
///
/// The end is kept one further on, never zero, so that an `Option<Span>` takes no more room
/// than a `Span`: an entry has eleven optional texts, and its fields are copied once per
/// request into the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    end_after: NonZeroU32,
}

impl Span {
    /// No text.
    pub const EMPTY: Span = Span {
        start: 0,
        end_after: NonZeroU32::MIN,
    };

    /// The text of `len` bytes at `start`, if its end is below `u32::MAX`.
    pub fn new(start: usize, len: usize) -> Option<Self> {
        let end_after = u32::try_from(start + len + 1).ok()?;
        Some(Span {
            start: start as u32,
            end_after: NonZeroU32::new(end_after)?,
        })
    }

    /// Its bytes in `texts`, the buffer it was made for (none, should it lie outside them: the
    /// writer thread must not panic).
    pub fn of(self, texts: &[u8]) -> &[u8] {
        let (start, end) = (self.start as usize, self.end_after.get() as usize - 1);
        texts.get(start..end).unwrap_or_default()
    }
}

impl<T> Fields<T> {
    /// The same fields with each text made a `U` by `text`.
    #[inline]
    pub fn map<U>(self, mut text: impl FnMut(T) -> U) -> Fields<U> {
        let method = text(self.method);
        let path = self.path.map(&mut text);
        let response_code_details = text(self.response_code_details);
        let upstream_service_time = self.upstream_service_time.map(&mut text);
        let x_forwarded_for = self.x_forwarded_for.map(&mut text);
        let user_agent = self.user_agent.map(&mut text);
        let request_id = self.request_id.map(&mut text);
        let authority = self.authority.map(&mut text);
        let upstream_host = self.upstream_host.map(&mut text);
        let upstream_cluster = self.upstream_cluster.map(&mut text);
        let requested_server_name = self.requested_server_name.map(&mut text);
        let route_name = self.route_name.map(&mut text);
        Fields {
            start_time: self.start_time,
            method,
            path,
            protocol: self.protocol,
            response_code: self.response_code,
            response_flags: self.response_flags,
            response_code_details,
            bytes_received: self.bytes_received,
            bytes_sent: self.bytes_sent,
            duration: self.duration,
            upstream_service_time,
            x_forwarded_for,
            user_agent,
            request_id,
            authority,
            upstream_host,
            upstream_cluster,
            upstream_local_address: self.upstream_local_address,
            downstream_local_address: self.downstream_local_address,
            downstream_remote_address: self.downstream_remote_address,
            requested_server_name,
            route_name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_optional_span_takes_the_room_of_a_span() {
        assert_eq!(size_of::<Option<Span>>(), size_of::<Span>());
    }

    #[test]
    fn spans_read_their_bytes_and_nothing_outside_their_buffer() {
        let texts = b"GET/items";
        let path = Span::new(3, 6).unwrap();
        assert_eq!(path.of(texts), b"/items");
        assert_eq!(Span::EMPTY.of(texts), b"");
        assert_eq!(Span::new(9, 0).unwrap().of(texts), b"");
        // Made for a longer buffer: none, not a panic.
        assert_eq!(path.of(b"GET"), b"");
        // An end one short of `u32::MAX` is the last a span can have.
        let last = u32::MAX as usize - 1;
        assert!(Span::new(last, 0).is_some());
        assert_eq!(Span::new(last, 1), None);
        assert_eq!(Span::new(last + 1, 0), None);
    }
}
