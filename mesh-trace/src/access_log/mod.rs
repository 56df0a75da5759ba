//! Istio's default access log: one line per finished request, in Envoy's text format or as
//! JSON, written off the request path.
//!
//! - [`AccessLogEntry`]: what is known of one request, as a caller of [`AccessLog::log`] fills
//!   it in. The telemetry layer fills in an `EntryDraft` instead: the same fields, its texts
//!   copied into one buffer as they become known, holding none of the request's buffers.
//! - [`format_entry`]: one entry as one line, either [`Encoding::Text`] (Istio's default
//!   `%START_TIME%`… format, character for character) or [`Encoding::Json`] (Istio's JSON
//!   keys).
//! - [`AccessLog`]: a cheap-to-clone handle whose [`log`](AccessLog::log) only copies the entry
//!   into a bounded buffer (full: drop and count in [`AccessLogStats`]); a background thread
//!   formats and writes the buffered entries every [`AccessLogConfig::flush_interval`] to a
//!   file, `/dev/stdout` or any [`std::io::Write`].

mod draft;
mod entry;
mod format;
mod queue;
mod view;
mod writer;

pub(crate) use draft::EntryDraft;
pub use entry::AccessLogEntry;
pub use format::{Encoding, format_entry};
pub(crate) use view::{printed_authority, printed_path};
pub use writer::{AccessLog, AccessLogConfig, AccessLogStats};
