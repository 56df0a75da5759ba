//! [`AccessLog`]: entries leave the request path through a bounded buffer; a background thread
//! formats and writes them.
//!
//! [`AccessLog::log`] takes a mutex just long enough to copy the entry into a [`Queue`] — no
//! formatting, no system call, no wakeup. Every `flush_interval` the `mesh-access-log` thread
//! swaps that queue for an empty one (the two are reused, so neither reallocates once warm),
//! formats the entries, where they lie, into one reused byte buffer and writes and flushes it,
//! all outside the mutex: a slow or blocked destination backs entries up in the buffer, and once
//! `max_buffered` are waiting new ones are dropped and counted, never waited for. A failed
//! write is counted and its entries lost. The thread writes what is left and ends when the
//! last [`AccessLog`] clone is dropped.

use super::{AccessLogEntry, Encoding, EntryDraft, format::format_view, queue::Queue};
use std::{
    fmt,
    fs::OpenOptions,
    io::{self, Write},
    mem,
    sync::{
        Arc, Condvar, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    thread,
    time::{Duration, Instant},
};

/// The name of the writer thread.
const THREAD_NAME: &str = "mesh-access-log";

/// A shorter `flush_interval` is raised to this (a zero interval would spin).
const MIN_FLUSH_INTERVAL: Duration = Duration::from_millis(1);

/// Formatted bytes written at once at most (so a large batch does not need a large buffer).
const WRITE_CHUNK: usize = 64 * 1024;

/// Buffer size and write interval of an [`AccessLog`].
///
/// ```
/// use mesh_trace::access_log::{AccessLog, AccessLogConfig, Encoding};
/// use std::{sync::atomic::Ordering, time::Duration};
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
/// let memory = Memory::default(); // an in-memory `Write`
/// let config = AccessLogConfig { max_buffered: 1, flush_interval: Duration::from_secs(3600) };
/// let log = AccessLog::new(memory.clone(), Encoding::Text, config);
/// log.log(&entry());
/// log.log(&entry()); // one is already waiting: dropped
/// log.flush();
/// assert_eq!(log.stats().dropped.load(Ordering::Relaxed), 1);
/// assert_eq!(memory.text().lines().count(), 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessLogConfig {
    /// Entries waiting to be written at most; more are dropped (and counted in
    /// [`AccessLogStats::dropped`]). Default 16 384.
    pub max_buffered: usize,
    /// How often the writer thread writes the buffered entries (at least 1 ms). Default
    /// 100 ms.
    pub flush_interval: Duration,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        AccessLogConfig {
            max_buffered: 16_384,
            flush_interval: Duration::from_millis(100),
        }
    }
}

/// Counters of an [`AccessLog`], in entries.
///
/// ```
/// use mesh_trace::access_log::{AccessLog, AccessLogConfig, Encoding};
/// use std::{io, sync::atomic::Ordering};
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
/// /// A destination that is gone.
/// struct Broken;
/// impl io::Write for Broken {
///     fn write(&mut self, _: &[u8]) -> io::Result<usize> { Err(io::ErrorKind::BrokenPipe.into()) }
///     fn flush(&mut self) -> io::Result<()> { Ok(()) }
/// }
/// let log = AccessLog::new(Broken, Encoding::Text, AccessLogConfig::default());
/// log.log(&entry());
/// log.flush();
/// let stats = log.stats();
/// assert_eq!(stats.write_failures.load(Ordering::Relaxed), 1);
/// assert_eq!(stats.written.load(Ordering::Relaxed), 0);
/// ```
#[derive(Debug, Default)]
pub struct AccessLogStats {
    /// Entries written (and flushed) to the destination.
    pub written: AtomicU64,
    /// Entries dropped because `max_buffered` were already waiting (or the writer thread is
    /// gone).
    pub dropped: AtomicU64,
    /// Entries lost to a failed write or flush.
    pub write_failures: AtomicU64,
}

/// Istio's access log: buffers [`AccessLogEntry`]s on the request path and writes them, one
/// line each, from a background thread; cheap to clone.
///
/// ```
/// use mesh_trace::access_log::{AccessLog, AccessLogConfig, AccessLogEntry, Encoding};
/// use std::{io::Write, sync::{Arc, Mutex, atomic::Ordering}};
/// # use http::{Method, Uri, Version};
/// # use std::time::{Duration, UNIX_EPOCH};
///
/// /// An in-memory destination; in production, `AccessLog::open("/dev/stdout", …)`.
/// #[derive(Clone, Default)]
/// struct Memory(Arc<Mutex<Vec<u8>>>);
/// impl Write for Memory {
///     fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
///         self.0.lock().unwrap().write(bytes)
///     }
///     fn flush(&mut self) -> std::io::Result<()> {
///         Ok(())
///     }
/// }
///
/// # let entry = AccessLogEntry {
/// #     start_time: UNIX_EPOCH + Duration::from_millis(1_460_751_420_310),
/// #     method: Method::GET,
/// #     uri: Uri::from_static("/ready"),
/// #     host: None,
/// #     original_path: None,
/// #     protocol: Version::HTTP_11,
/// #     response_code: 200,
/// #     response_flags: Default::default(),
/// #     response_code_details: "via_upstream".into(),
/// #     bytes_received: 0,
/// #     bytes_sent: 2,
/// #     duration: Duration::from_millis(1),
/// #     upstream_service_time: None,
/// #     x_forwarded_for: None,
/// #     user_agent: None,
/// #     request_id: None,
/// #     upstream_host: None,
/// #     upstream_cluster: None,
/// #     upstream_local_address: None,
/// #     downstream_local_address: None,
/// #     downstream_remote_address: None,
/// #     requested_server_name: None,
/// #     route_name: None,
/// # };
/// let memory = Memory::default();
/// let log = AccessLog::new(memory.clone(), Encoding::Text, AccessLogConfig::default());
/// log.clone().log(&entry); // on the request path: buffered, not written
/// log.flush(); // waits until the writer thread has written it
/// let text = String::from_utf8(memory.0.lock().unwrap().clone()).unwrap();
/// assert!(text.starts_with("[2016-04-15T20:17:00.310Z] \"GET /ready HTTP/1.1\" 200 - "));
/// assert_eq!(log.stats().written.load(Ordering::Relaxed), 1);
/// ```
#[derive(Clone)]
pub struct AccessLog {
    handle: Arc<Handle>,
}

/// Shared by the clones of one [`AccessLog`]; dropping it (the last clone) stops the thread.
struct Handle {
    shared: Arc<Shared>,
    encoding: Encoding,
    config: AccessLogConfig,
}

/// Shared by the handles and the writer thread.
struct Shared {
    state: Mutex<State>,
    /// Wakes the writer thread early: a flush is requested or the log is closed.
    wake: Condvar,
    /// Signalled by the writer thread after each batch and when it ends.
    flushed: Condvar,
    stats: Arc<AccessLogStats>,
    max_buffered: usize,
}

struct State {
    /// Entries waiting for the writer thread.
    entries: Queue,
    /// Batches the writer thread has taken from `entries` (batch `n` is the `n`-th swap).
    taken: u64,
    /// The last batch written (or failed); `done <= taken`.
    done: u64,
    /// The batch [`AccessLog::flush`] waits for: the thread takes it without waiting for the
    /// interval to end.
    requested: u64,
    /// The last [`AccessLog`] is gone: write what is left and end.
    closed: bool,
    /// The writer thread is alive (false once it ends or panics, or if it never started).
    running: bool,
}

impl Shared {
    /// Locks the state; a poisoned lock is still usable (every update leaves it consistent).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AccessLog {
    /// An access log writing `encoding` lines to `writer` from a new background thread named
    /// `mesh-access-log`.
    ///
    /// Should the thread fail to start (the process is out of threads), the failure is logged
    /// and every entry is dropped (and counted).
    ///
    /// ```
    /// use mesh_trace::access_log::{AccessLog, AccessLogConfig, Encoding};
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
    /// let memory = Memory::default(); // an in-memory `Write`
    /// let log = AccessLog::new(memory.clone(), Encoding::Json, AccessLogConfig::default());
    /// log.log(&entry()); // a GET of `/ready` answered 200
    /// log.log(&entry());
    /// log.flush();
    /// for line in memory.text().lines() {
    ///     let json: serde_json::Value = serde_json::from_str(line).unwrap();
    ///     assert_eq!(json["method"], "GET");
    /// }
    /// assert_eq!(memory.text().lines().count(), 2);
    /// ```
    pub fn new(
        writer: impl Write + Send + 'static,
        encoding: Encoding,
        config: AccessLogConfig,
    ) -> AccessLog {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                entries: Queue::default(),
                taken: 0,
                done: 0,
                requested: 0,
                closed: false,
                running: true,
            }),
            wake: Condvar::new(),
            flushed: Condvar::new(),
            stats: Arc::default(),
            max_buffered: config.max_buffered,
        });
        let interval = config.flush_interval.max(MIN_FLUSH_INTERVAL);
        let thread_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || run(&thread_shared, writer, encoding, interval));
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the access log thread: entries will be dropped");
            shared.lock().running = false;
        }
        AccessLog {
            handle: Arc::new(Handle {
                shared,
                encoding,
                config,
            }),
        }
    }

    /// An access log writing to the file at `path`, opened for appending (created if
    /// missing); `/dev/stdout` and `/dev/stderr` are the process's standard output and error.
    ///
    /// # Errors
    ///
    /// The file cannot be opened.
    ///
    /// ```
    /// use mesh_trace::access_log::{AccessLog, AccessLogConfig, Encoding};
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
    /// let path = std::env::temp_dir().join(format!("mesh-access-{}.log", std::process::id()));
    /// let log = AccessLog::open(path.to_str().unwrap(), Encoding::Text, AccessLogConfig::default()).unwrap();
    /// log.log(&entry()); // a GET of `/ready` answered 200
    /// log.flush();
    /// let text = std::fs::read_to_string(&path).unwrap();
    /// assert!(text.contains("\"GET /ready HTTP/1.1\" 200"));
    /// std::fs::remove_file(&path).unwrap();
    /// let missing = std::env::temp_dir().join("mesh-no-such-dir/access.log");
    /// assert!(AccessLog::open(missing.to_str().unwrap(), Encoding::Text, AccessLogConfig::default()).is_err());
    /// ```
    pub fn open(path: &str, encoding: Encoding, config: AccessLogConfig) -> io::Result<AccessLog> {
        Ok(match Destination::of(path) {
            Destination::Stdout => AccessLog::new(io::stdout(), encoding, config),
            Destination::Stderr => AccessLog::new(io::stderr(), encoding, config),
            Destination::File(path) => {
                let file = OpenOptions::new().create(true).append(true).open(path)?;
                AccessLog::new(file, encoding, config)
            }
        })
    }

    /// Buffers `entry` for the writer thread, or drops it (counted in
    /// [`AccessLogStats::dropped`]) when `max_buffered` entries are already waiting.
    ///
    /// Never formats, writes or wakes anything: it copies the entry into the buffer under a
    /// mutex that the writer thread holds just long enough to swap two buffers.
    ///
    /// ```
    /// use mesh_trace::access_log::{AccessLog, AccessLogConfig, Encoding};
    /// use std::{sync::atomic::Ordering, time::Duration};
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
    /// let memory = Memory::default(); // an in-memory `Write`
    /// let config = AccessLogConfig { flush_interval: Duration::from_secs(3600), ..Default::default() };
    /// let log = AccessLog::new(memory.clone(), Encoding::Text, config);
    /// log.log(&entry()); // buffered only
    /// assert!(memory.text().is_empty());
    /// log.flush();
    /// assert_eq!(log.stats().written.load(Ordering::Relaxed), 1);
    /// ```
    pub fn log(&self, entry: &AccessLogEntry) {
        self.log_draft(&EntryDraft::of(entry));
    }

    /// [`log`](Self::log)s an entry filled in as a draft (the telemetry layer's): its texts are
    /// queued with one copy.
    pub(crate) fn log_draft(&self, draft: &EntryDraft) {
        let shared = &*self.handle.shared;
        let mut state = shared.lock();
        if state.running && state.entries.len() < shared.max_buffered && state.entries.push(draft) {
            return;
        }
        drop(state);
        shared.stats.dropped.fetch_add(1, Relaxed);
    }

    /// The counters of this log (shared by its clones).
    ///
    /// ```
    /// use mesh_trace::access_log::{AccessLog, AccessLogConfig, Encoding};
    /// use std::sync::{Arc, atomic::Ordering};
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
    /// let log = AccessLog::new(Memory::default(), Encoding::Text, AccessLogConfig::default());
    /// let clone = log.clone();
    /// clone.log(&entry());
    /// clone.flush();
    /// assert!(Arc::ptr_eq(log.stats(), clone.stats())); // shared by the clones
    /// assert_eq!(log.stats().written.load(Ordering::Relaxed), 1);
    /// ```
    pub fn stats(&self) -> &Arc<AccessLogStats> {
        &self.handle.shared.stats
    }

    /// Blocks until every entry logged before the call has been written (or failed to be), by
    /// waking the writer thread; returns at once if that thread is gone.
    ///
    /// For tests and shutdown: it blocks the calling thread (do not call it from an async
    /// task's hot path).
    ///
    /// ```
    /// use mesh_trace::access_log::{AccessLog, AccessLogConfig, Encoding};
    /// use std::time::Duration;
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
    /// let memory = Memory::default(); // an in-memory `Write`
    /// let config = AccessLogConfig { flush_interval: Duration::from_secs(3600), ..Default::default() };
    /// let log = AccessLog::new(memory.clone(), Encoding::Text, config);
    /// log.flush(); // nothing buffered: returns at once
    /// for _ in 0..3 {
    ///     log.log(&entry());
    /// }
    /// log.flush(); // without waiting for the hour-long interval
    /// assert_eq!(memory.text().lines().count(), 3);
    /// ```
    pub fn flush(&self) {
        let shared = &*self.handle.shared;
        let mut state = shared.lock();
        // The buffered entries will be the next batch; with none, the batch being written.
        let target = if state.entries.is_empty() {
            state.taken
        } else {
            state.taken + 1
        };
        if state.done >= target || !state.running {
            return;
        }
        state.requested = state.requested.max(target);
        shared.wake.notify_one();
        while state.running && state.done < target {
            state = shared
                .flushed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessLog")
            .field("encoding", &self.handle.encoding)
            .field("config", &self.handle.config)
            .field("stats", self.stats())
            .finish()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

/// Where [`AccessLog::open`] writes.
#[derive(Debug, PartialEq, Eq)]
enum Destination<'a> {
    Stdout,
    Stderr,
    File(&'a str),
}

impl Destination<'_> {
    fn of(path: &str) -> Destination<'_> {
        match path {
            "/dev/stdout" => Destination::Stdout,
            "/dev/stderr" => Destination::Stderr,
            path => Destination::File(path),
        }
    }
}

/// Marks the writer thread as gone when it ends, even by panicking, so that
/// [`AccessLog::flush`] stops waiting and [`AccessLog::log`] stops buffering.
struct Running<'a>(&'a Shared);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.lock().running = false;
        self.0.flushed.notify_all();
    }
}

/// The writer thread: every `interval` (or when woken), swaps the buffered entries out and
/// writes them; ends after writing what is left once the log is closed.
fn run(shared: &Shared, mut writer: impl Write, encoding: Encoding, interval: Duration) {
    let _running = Running(shared);
    let mut batch = Queue::default();
    let mut buf = Vec::new();
    let mut healthy = true;
    loop {
        let (generation, closed) = {
            let mut state = shared.lock();
            let deadline = Instant::now().checked_add(interval);
            while !state.closed && state.requested <= state.taken {
                state = match deadline.map(|d| d.saturating_duration_since(Instant::now())) {
                    Some(Duration::ZERO) => break,
                    Some(left) => {
                        shared
                            .wake
                            .wait_timeout(state, left)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0
                    }
                    None => shared
                        .wake
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner),
                };
            }
            mem::swap(&mut state.entries, &mut batch);
            state.taken += 1;
            (state.taken, state.closed)
        };
        if !batch.is_empty() {
            match write_batch(&mut writer, &mut batch, encoding, &mut buf, &shared.stats) {
                Ok(()) => healthy = true,
                Err(error) => {
                    if healthy {
                        tracing::warn!(%error, "cannot write the access log: entries are lost");
                    }
                    healthy = false;
                }
            }
        }
        shared.lock().done = generation;
        shared.flushed.notify_all();
        if closed {
            return;
        }
    }
}

/// Formats and writes `batch` (leaving it empty, its capacity kept) through `buf`, in chunks of
/// about [`WRITE_CHUNK`] bytes, then flushes; counts the entries written or lost.
fn write_batch(
    writer: &mut impl Write,
    batch: &mut Queue,
    encoding: Encoding,
    buf: &mut Vec<u8>,
    stats: &AccessLogStats,
) -> io::Result<()> {
    let mut outcome = Outcome::default();
    let mut lines = 0;
    for entry in batch.iter() {
        format_view(&entry, encoding, buf);
        lines += 1;
        if buf.len() >= WRITE_CHUNK {
            outcome.write(writer, buf, lines);
            lines = 0;
        }
    }
    if lines > 0 {
        outcome.write(writer, buf, lines);
    }
    batch.clear();
    if let Err(error) = writer.flush() {
        // Written but maybe still buffered in `writer`: count them as lost.
        outcome.failed += mem::take(&mut outcome.written);
        outcome.error.get_or_insert(error);
    }
    stats.written.fetch_add(outcome.written, Relaxed);
    stats.write_failures.fetch_add(outcome.failed, Relaxed);
    outcome.error.map_or(Ok(()), Err)
}

/// What became of a batch's entries.
#[derive(Default)]
struct Outcome {
    written: u64,
    failed: u64,
    /// The first error.
    error: Option<io::Error>,
}

impl Outcome {
    /// Writes `buf` (`lines` entries) and clears it.
    fn write(&mut self, writer: &mut impl Write, buf: &mut Vec<u8>, lines: u64) {
        match writer.write_all(buf) {
            Ok(()) => self.written += lines,
            Err(error) => {
                self.failed += lines;
                self.error.get_or_insert(error);
            }
        }
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::format::tests::full_entry;
    use crate::access_log::format_entry;
    use http::HeaderValue;
    use serde_json::Value;
    use std::{
        sync::mpsc::{self, RecvTimeoutError},
        time::SystemTime,
    };

    /// Long enough that only `flush` or closing makes the thread write.
    const NEVER: Duration = Duration::from_secs(3600);
    /// Bounds every wait for the thread, so a broken feature fails instead of hanging.
    const PATIENCE: Duration = Duration::from_secs(10);

    fn config(max_buffered: usize, flush_interval: Duration) -> AccessLogConfig {
        AccessLogConfig {
            max_buffered,
            flush_interval,
        }
    }

    fn entry(id: usize) -> AccessLogEntry {
        AccessLogEntry {
            request_id: Some(HeaderValue::from(id)),
            ..full_entry()
        }
    }

    fn stat(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    /// An in-memory destination that records the threads writing to it.
    #[derive(Clone, Default)]
    struct Memory {
        bytes: Arc<Mutex<Vec<u8>>>,
        threads: Arc<Mutex<Vec<Option<String>>>>,
    }

    impl Memory {
        fn text(&self) -> String {
            String::from_utf8(self.bytes.lock().unwrap().clone()).unwrap()
        }

        fn request_ids(&self) -> Vec<String> {
            self.text()
                .lines()
                .map(|line| {
                    let json: Value = serde_json::from_str(line).unwrap();
                    json["request_id"].as_str().unwrap().to_owned()
                })
                .collect()
        }
    }

    impl Write for Memory {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let name = thread::current().name().map(str::to_owned);
            self.threads.lock().unwrap().push(name);
            self.bytes.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Reports its drop (the writer thread ending) on a channel.
    struct DropSignal {
        memory: Memory,
        dropped: mpsc::Sender<()>,
    }

    impl Write for DropSignal {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.memory.write(bytes)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Drop for DropSignal {
        fn drop(&mut self) {
            let _ = self.dropped.send(());
        }
    }

    /// Blocks every write until released (the releasing sender is dropped).
    struct Gate {
        memory: Memory,
        entered: mpsc::Sender<()>,
        release: mpsc::Receiver<()>,
    }

    impl Write for Gate {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let _ = self.entered.send(());
            let _ = self.release.recv();
            self.memory.write(bytes)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Fails every write.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk on fire"))
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Panics on write: the writer thread dies.
    struct Panicking;

    impl Write for Panicking {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            panic!("writer panicked on purpose");
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Runs `f` on another thread and fails if it does not return within [`PATIENCE`].
    fn within_patience(f: impl FnOnce() + Send + 'static) {
        let (done, finished) = mpsc::channel();
        thread::spawn(move || {
            f();
            let _ = done.send(());
        });
        assert_eq!(finished.recv_timeout(PATIENCE), Ok(()), "timed out");
    }

    /// `log.flush()`, failing instead of hanging should it never return.
    fn flush(log: &AccessLog) {
        let log = log.clone();
        within_patience(move || log.flush());
    }

    #[test]
    fn config_defaults() {
        let config = AccessLogConfig::default();
        assert_eq!(config.max_buffered, 16_384);
        assert_eq!(config.flush_interval, Duration::from_millis(100));
    }

    #[test]
    fn lines_arrive_in_order_after_flush() {
        let memory = Memory::default();
        let log = AccessLog::new(memory.clone(), Encoding::Json, config(10_000, NEVER));
        for id in 0..1_000 {
            log.log(&entry(id));
        }
        assert_eq!(memory.text(), "", "log() writes nothing by itself");
        flush(&log);
        let expected: Vec<String> = (0..1_000).map(|id| id.to_string()).collect();
        assert_eq!(memory.request_ids(), expected);
        assert_eq!(stat(&log.stats().written), 1_000);

        for id in 1_000..1_010 {
            log.log(&entry(id));
        }
        flush(&log);
        assert_eq!(memory.request_ids().len(), 1_010);
        assert_eq!(memory.request_ids()[1_009], "1009");
        flush(&log); // nothing buffered: returns at once
        assert_eq!(stat(&log.stats().written), 1_010);
    }

    #[test]
    fn entries_are_written_every_flush_interval() {
        let memory = Memory::default();
        let log = AccessLog::new(
            memory.clone(),
            Encoding::Json,
            config(100, Duration::from_millis(5)),
        );
        log.log(&entry(7));
        let start = Instant::now();
        while memory.text().is_empty() {
            assert!(start.elapsed() < PATIENCE, "never written without flush()");
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(memory.request_ids(), ["7"]);
    }

    #[test]
    fn writes_happen_on_the_mesh_access_log_thread() {
        let memory = Memory::default();
        let log = AccessLog::new(memory.clone(), Encoding::Text, config(100, NEVER));
        log.log(&entry(1));
        flush(&log);
        let threads = memory.threads.lock().unwrap().clone();
        assert!(!threads.is_empty());
        assert!(
            threads
                .iter()
                .all(|t| t.as_deref() == Some("mesh-access-log")),
            "{threads:?}"
        );
    }

    #[test]
    fn writer_uses_the_configured_encoding() {
        for encoding in [Encoding::Text, Encoding::Json] {
            let memory = Memory::default();
            let log = AccessLog::new(memory.clone(), encoding, config(100, NEVER));
            log.log(&entry(1));
            log.log(&entry(2));
            flush(&log);
            let mut expected = Vec::new();
            format_entry(&entry(1), encoding, &mut expected);
            format_entry(&entry(2), encoding, &mut expected);
            assert_eq!(memory.text().as_bytes(), expected, "{encoding:?}");
        }
    }

    #[test]
    fn dropping_the_last_clone_writes_what_was_buffered_and_stops_the_thread() {
        let memory = Memory::default();
        let (dropped, writer_dropped) = mpsc::channel();
        let writer = DropSignal {
            memory: memory.clone(),
            dropped,
        };
        let log = AccessLog::new(writer, Encoding::Json, config(100, NEVER));
        let clone = log.clone();
        log.log(&entry(1));
        clone.log(&entry(2));
        drop(log);
        clone.log(&entry(3));
        assert_eq!(
            writer_dropped.recv_timeout(Duration::from_millis(200)),
            Err(RecvTimeoutError::Timeout),
            "a clone is still alive: the thread keeps running"
        );
        assert_eq!(memory.text(), "");
        let stats = Arc::clone(clone.stats());
        drop(clone);
        assert_eq!(writer_dropped.recv_timeout(PATIENCE), Ok(()));
        assert_eq!(memory.request_ids(), ["1", "2", "3"]);
        assert_eq!(stat(&stats.written), 3);
    }

    #[test]
    fn full_buffer_drops_and_counts() {
        let memory = Memory::default();
        let log = AccessLog::new(memory.clone(), Encoding::Json, config(5, NEVER));
        for id in 0..8 {
            log.log(&entry(id));
        }
        assert_eq!(stat(&log.stats().dropped), 3);
        flush(&log);
        assert_eq!(memory.request_ids(), ["0", "1", "2", "3", "4"]);
        // Written entries free their room.
        for id in 8..13 {
            log.log(&entry(id));
        }
        flush(&log);
        assert_eq!(stat(&log.stats().dropped), 3);
        assert_eq!(stat(&log.stats().written), 10);
    }

    #[test]
    fn slow_writer_never_slows_log() {
        const MAX: usize = 100;
        let memory = Memory::default();
        let (entered, writer_entered) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let writer = Gate {
            memory: memory.clone(),
            entered,
            release: released,
        };
        let log = AccessLog::new(
            writer,
            Encoding::Text,
            config(MAX, Duration::from_millis(1)),
        );
        log.log(&entry(0));
        // The thread is now stuck writing entry 0.
        assert_eq!(writer_entered.recv_timeout(PATIENCE), Ok(()));

        // Should log() ever wait for the writer, the watchdog releases it after 2 s (and the
        // time check below fails) instead of the test hanging.
        let (loop_done, watchdog_wait) = mpsc::channel::<()>();
        let watchdog = thread::spawn(move || {
            let _ = watchdog_wait.recv_timeout(Duration::from_secs(2));
            drop(release);
        });
        let start = Instant::now();
        for id in 1..=MAX + 10 {
            log.log(&entry(id));
        }
        let elapsed = start.elapsed();
        drop(loop_done);
        watchdog.join().unwrap();

        assert!(elapsed < Duration::from_secs(1), "log() took {elapsed:?}");
        assert_eq!(stat(&log.stats().dropped), 10);
        flush(&log);
        assert_eq!(stat(&log.stats().written), 1 + MAX as u64);
        assert_eq!(memory.text().lines().count(), 1 + MAX);
    }

    #[test]
    fn write_failures_are_counted() {
        let log = AccessLog::new(Broken, Encoding::Text, config(100, NEVER));
        for id in 0..3 {
            log.log(&entry(id));
        }
        flush(&log);
        assert_eq!(stat(&log.stats().write_failures), 3);
        assert_eq!(stat(&log.stats().written), 0);
        // The thread carries on.
        log.log(&entry(3));
        flush(&log);
        assert_eq!(stat(&log.stats().write_failures), 4);
    }

    #[test]
    fn flush_returns_when_the_writer_thread_died() {
        let log = AccessLog::new(Panicking, Encoding::Text, config(100, NEVER));
        let stats = Arc::clone(log.stats());
        within_patience(move || {
            log.log(&entry(1));
            log.flush(); // the thread panics while writing
            log.log(&entry(2));
            log.flush();
        });
        assert_eq!(stat(&stats.written), 0);
        assert_eq!(
            stat(&stats.dropped),
            1,
            "no buffering once the thread is gone"
        );
    }

    #[test]
    fn poisoned_lock_does_not_panic() {
        let memory = Memory::default();
        let log = AccessLog::new(memory.clone(), Encoding::Json, config(100, NEVER));
        let shared = Arc::clone(&log.handle.shared);
        let poisoner = thread::spawn(move || {
            let _state = shared.state.lock().unwrap();
            panic!("poisoning the access log's lock on purpose");
        });
        assert!(poisoner.join().is_err());
        assert!(log.handle.shared.state.is_poisoned());
        log.log(&entry(1));
        flush(&log);
        assert_eq!(memory.request_ids(), ["1"]);
    }

    #[test]
    fn open_maps_dev_stdout_and_dev_stderr() {
        assert_eq!(Destination::of("/dev/stdout"), Destination::Stdout);
        assert_eq!(Destination::of("/dev/stderr"), Destination::Stderr);
        assert_eq!(
            Destination::of("/var/log/mesh.log"),
            Destination::File("/var/log/mesh.log")
        );
    }

    #[test]
    fn open_dev_stdout_writes() {
        let log = AccessLog::open("/dev/stdout", Encoding::Text, config(100, NEVER)).unwrap();
        log.log(&entry(1));
        flush(&log);
        assert_eq!(stat(&log.stats().written), 1);
        assert_eq!(stat(&log.stats().write_failures), 0);
    }

    /// A path in the temporary directory no other test (or run) uses.
    fn temp_path(name: &str) -> std::path::PathBuf {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        std::env::temp_dir().join(format!(
            "mesh-access-log-{name}-{}-{nanos}.log",
            std::process::id()
        ))
    }

    #[test]
    fn open_appends_to_a_file() {
        let path = temp_path("append");
        std::fs::write(&path, "existing line\n").unwrap();
        let path_str = path.to_str().unwrap();
        for id in [1, 2] {
            let log = AccessLog::open(path_str, Encoding::Json, config(100, NEVER)).unwrap();
            log.log(&entry(id));
            flush(&log);
            assert_eq!(stat(&log.stats().written), 1);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], "existing line");
        for (line, id) in lines[1..].iter().zip(["1", "2"]) {
            let json: Value = serde_json::from_str(line).unwrap();
            assert_eq!(json["request_id"], id);
        }
    }

    #[test]
    fn open_creates_a_missing_file() {
        let path = temp_path("create");
        let log = AccessLog::open(path.to_str().unwrap(), Encoding::Text, config(100, NEVER));
        let log = log.unwrap();
        log.log(&entry(1));
        flush(&log);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let mut expected = Vec::new();
        format_entry(&entry(1), Encoding::Text, &mut expected);
        assert_eq!(text.as_bytes(), expected);
    }

    #[test]
    fn open_reports_errors() {
        let missing_dir = temp_path("no-such-dir").join("access.log");
        let error = AccessLog::open(
            missing_dir.to_str().unwrap(),
            Encoding::Text,
            config(1, NEVER),
        );
        assert_eq!(error.unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn debug_shows_encoding_config_and_stats() {
        let log = AccessLog::new(io::sink(), Encoding::Json, config(7, NEVER));
        let debug = format!("{log:?}");
        assert!(debug.starts_with("AccessLog {"), "{debug}");
        assert!(debug.contains("encoding: Json"), "{debug}");
        assert!(debug.contains("max_buffered: 7"), "{debug}");
        assert!(debug.contains("dropped: 0"), "{debug}");
    }
}
