//! [`EntryDraft`]: an access-log entry filled in on the request path, its texts copied into
//! one buffer as they become known.
//!
//! The request's texts are slices of hyper's read buffer and the route's are shared strings:
//! keeping them until the response ends would take a reference count on each, and give it back
//! after. Copying the few bytes each holds, as the request arrives and as its response does,
//! into one buffer (made with room for [`INITIAL_TEXT`] bytes, more than a typical request
//! has, so that it does not grow) costs less than those atomic operations, and leaves nothing
//! of the request's buffers in the entry. [`AccessLog::log_draft`](super::AccessLog::log_draft)
//! then queues the entry with one copy of the buffer.

use super::{
    AccessLogEntry,
    view::{EntryView, Fields, Span},
};
use http::{Method, Version};
use mesh_core::{ResponseFlags, clock::Stamp};
use std::time::{Duration, SystemTime};

/// Bytes of text an entry has room for before its buffer grows.
pub(crate) const INITIAL_TEXT: usize = 384;

/// An entry being filled in; see the [module docs](self). Its fields are set directly, each
/// text through [`copy`](Self::copy).
#[derive(Debug)]
pub(crate) struct EntryDraft {
    pub fields: Fields<Span>,
    /// When the request arrived, by the mesh's clock, when it is known so: the writer thread
    /// then finds its wall-clock time (`fields.start_time`), sparing the request path that.
    pub arrived: Option<Stamp>,
    text: Vec<u8>,
}

impl EntryDraft {
    /// A draft of a request over `protocol`, to be [`begin`](Self::begin)-ed: made of values
    /// known when compiling (and the one given), so that it is made where it is to be kept
    /// rather than made and then copied there (a draft is some 300 bytes).
    pub fn blank(protocol: Version) -> Self {
        EntryDraft::blank_at(SystemTime::UNIX_EPOCH, protocol)
    }

    /// Begins a [`blank`](Self::blank) draft of a `method` request that `arrived`: no response
    /// yet (status 0), and no other text.
    pub fn begin(&mut self, arrived: Stamp, method: &Method) {
        self.arrived = Some(arrived);
        // Made anew rather than grown: growing an empty `Vec` takes its slow path.
        self.text = Vec::with_capacity(INITIAL_TEXT);
        self.fields.method = self.copy(method.as_str().as_bytes());
    }

    /// A draft holding what `entry` holds.
    pub fn of(entry: &AccessLogEntry) -> Self {
        let mut draft = EntryDraft::blank_at(entry.start_time, entry.protocol);
        draft.text = Vec::with_capacity(INITIAL_TEXT);
        draft.fields = EntryView::of(entry).map(|text| draft.copy(text));
        draft
    }

    /// A draft of a request that arrived at `start_time` over `protocol`, with no text yet (and
    /// no room for any: nothing here but values known when compiling, and the two given).
    fn blank_at(start_time: SystemTime, protocol: Version) -> Self {
        EntryDraft {
            fields: Fields {
                start_time,
                method: Span::EMPTY,
                path: None,
                protocol,
                response_code: 0,
                response_flags: ResponseFlags::default(),
                response_code_details: Span::EMPTY,
                bytes_received: 0,
                bytes_sent: 0,
                duration: Duration::ZERO,
                upstream_service_time: None,
                x_forwarded_for: None,
                user_agent: None,
                request_id: None,
                authority: None,
                upstream_host: None,
                upstream_cluster: None,
                upstream_local_address: None,
                downstream_local_address: None,
                downstream_remote_address: None,
                requested_server_name: None,
                route_name: None,
            },
            arrived: None,
            text: Vec::new(),
        }
    }

    /// Copies `bytes` in, for a field: where they lie. Past 4 GiB of text in one entry (which
    /// no request head reaches: hyper's limit is 400 KiB), the field is left empty.
    #[inline]
    pub fn copy(&mut self, bytes: &[u8]) -> Span {
        match Span::new(self.text.len(), bytes.len()) {
            Some(span) => {
                self.text.extend_from_slice(bytes);
                span
            }
            None => Span::EMPTY,
        }
    }

    /// [`copy`](Self::copy) of an optional text.
    #[inline]
    pub fn copy_some(&mut self, bytes: Option<&[u8]>) -> Option<Span> {
        bytes.map(|bytes| self.copy(bytes))
    }

    /// The bytes of a field's `span`.
    pub fn get(&self, span: Span) -> &[u8] {
        span.of(&self.text)
    }

    /// All the texts, back to back, as the fields' spans address them.
    pub fn texts(&self) -> &[u8] {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::format::tests::full_entry;

    #[test]
    fn a_draft_of_an_entry_reads_back_as_the_entry() {
        let entry = full_entry();
        let draft = EntryDraft::of(&entry);
        let read = draft.fields.map(|span| draft.get(span));
        let expected = EntryView::of(&entry);
        assert_eq!(format!("{read:?}"), format!("{expected:?}"));
        assert!(
            draft.text.len() <= INITIAL_TEXT,
            "an entry with every text, as Envoy's documentation shows one, fits in the room a \
             draft starts with: {} bytes",
            draft.text.len()
        );
    }

    #[test]
    fn texts_are_copied_in_and_read_back_by_span() {
        let mut draft = EntryDraft::blank(Version::HTTP_2);
        draft.begin(Stamp::now(), &Method::PATCH);
        let agent = draft.copy(b"curl/8.5.0");
        let empty = draft.copy(b"");
        let long = vec![b'x'; 2 * INITIAL_TEXT];
        let path = draft.copy_some(Some(&long)).unwrap();
        assert_eq!(draft.copy_some(None), None);
        assert_eq!(draft.get(draft.fields.method), b"PATCH");
        assert_eq!(draft.get(agent), b"curl/8.5.0");
        assert_eq!(draft.get(empty), b"");
        assert_eq!(draft.get(path), &long[..]);
        assert_eq!(draft.texts().len(), 5 + 10 + 2 * INITIAL_TEXT);
    }
}
