//! [`Queue`]: access-log entries waiting for the writer thread, kept as plain bytes.
//!
//! An entry is queued as a copy of its [`EntryDraft`]: its fields as they are, its texts
//! appended to one byte buffer (its spans read from where its texts start there). Nothing the
//! writer thread reads or frees is the request path's: were entries to hold the request's own
//! buffers (slices of hyper's read buffer, shared route names), the writer thread would give
//! back their reference counts on the other core while the request path takes the same counts
//! for the next requests, and the counts' cache lines would move between the cores with every
//! entry. Queueing allocates nothing once the buffers have grown to a batch's size (they are
//! swapped and reused).

use super::{
    draft::EntryDraft,
    view::{EntryView, Fields, Span},
};
use mesh_core::clock::Stamp;

/// Entries queued; see the [module docs](self).
#[derive(Debug, Default)]
pub(super) struct Queue {
    /// Each entry's fields, where its texts start in `text`, and when it arrived if it is known
    /// by the mesh's clock (see [`EntryDraft::arrived`]).
    entries: Vec<(u32, Option<Stamp>, Fields<Span>)>,
    /// The entries' texts, back to back.
    text: Vec<u8>,
}

impl Queue {
    /// How many entries are queued.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Queues a copy of `draft`; `false`, queueing nothing, when the texts already queued pass
    /// 4 GiB (the most an entry's start in them can be).
    #[inline]
    pub fn push(&mut self, draft: &EntryDraft) -> bool {
        let Ok(base) = u32::try_from(self.text.len()) else {
            return false;
        };
        self.entries.push((base, draft.arrived, draft.fields));
        self.text.extend_from_slice(draft.texts());
        true
    }

    /// The queued entries, in the order they were pushed: each arrival known by the mesh's
    /// clock placed on the wall clock here, on the writer thread.
    pub fn iter(&self) -> impl Iterator<Item = EntryView<'_>> {
        self.entries.iter().map(|(base, arrived, fields)| {
            let texts = &self.text[*base as usize..];
            let mut view = fields.map(|span| span.of(texts));
            if let Some(arrived) = arrived {
                view.start_time = arrived.system_time();
            }
            view
        })
    }

    /// Empties the queue, keeping its room.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.text.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::{
        AccessLogEntry, Encoding,
        format::{format_view, tests::full_entry},
        format_entry,
    };

    /// An entry's line, formatted straight from it.
    fn line(entry: &AccessLogEntry, encoding: Encoding) -> Vec<u8> {
        let mut out = Vec::new();
        format_entry(entry, encoding, &mut out);
        out
    }

    #[test]
    fn an_arrival_by_the_mesh_clock_is_placed_on_the_wall_clock_when_read() {
        let slack = std::time::Duration::from_millis(100);
        let before = std::time::SystemTime::now() - slack;
        let mut draft = EntryDraft::blank(http::Version::HTTP_11);
        draft.begin(Stamp::now(), &http::Method::GET);
        let mut queue = Queue::default();
        assert!(queue.push(&draft));
        let read = queue.iter().next().unwrap().start_time;
        assert!(before <= read && read <= std::time::SystemTime::now() + slack);
    }

    #[test]
    fn queued_entries_read_back_as_they_were_in_order() {
        let full = full_entry();
        let sparse = AccessLogEntry {
            host: None,
            user_agent: None,
            route_name: None,
            upstream_cluster: None,
            downstream_remote_address: None,
            ..full_entry()
        };
        let mut queue = Queue::default();
        for _ in 0..2 {
            assert!(queue.push(&EntryDraft::of(&full)));
            assert!(queue.push(&EntryDraft::of(&sparse)));
            assert_eq!(queue.len(), 2);
            for encoding in [Encoding::Text, Encoding::Json] {
                let lines: Vec<Vec<u8>> = queue
                    .iter()
                    .map(|view| {
                        let mut out = Vec::new();
                        format_view(&view, encoding, &mut out);
                        out
                    })
                    .collect();
                assert_eq!(lines, [line(&full, encoding), line(&sparse, encoding)]);
            }
            // Emptied, it is reused from its start.
            queue.clear();
            assert!(queue.is_empty() && queue.iter().next().is_none());
        }
    }
}
