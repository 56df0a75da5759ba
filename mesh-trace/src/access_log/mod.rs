//! Istio's default access log: one line per finished request, in Envoy's text format or as
//! JSON, written off the request path.
//!
//! - [`AccessLogEntry`]: what is known of one request, captured on the request path without
//!   formatting anything.
//! - [`format_entry`]: one entry as one line, either [`Encoding::Text`] (Istio's default
//!   `%START_TIME%`… format, character for character) or [`Encoding::Json`] (Istio's JSON
//!   keys).
//! - [`AccessLog`]: a cheap-to-clone handle whose [`log`](AccessLog::log) only pushes the entry
//!   into a bounded buffer (full: drop and count in [`AccessLogStats`]); a background thread
//!   formats and writes the buffered entries every [`AccessLogConfig::flush_interval`] to a
//!   file, `/dev/stdout` or any [`std::io::Write`].

mod entry;
mod format;
mod writer;

pub use entry::AccessLogEntry;
pub use format::{Encoding, format_entry};
pub use writer::{AccessLog, AccessLogConfig, AccessLogStats};
