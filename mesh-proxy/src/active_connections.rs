//! [`ActiveConnections`]: how many upstream connections are open to each endpoint, for
//! `/clusters` (`cx_active`) and the `upstream_cx_active` stat. A connection counts from its
//! connect until it is dropped; the map is touched on connect and close, never per request.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
};

/// Open connections per endpoint (`address:port`); cheap to clone (clones share the counts).
///
/// ```
/// use mesh_proxy::active_connections::ActiveConnections;
/// let connections = ActiveConnections::default();
/// let open = connections.open("10.0.0.1:80");
/// assert_eq!(connections.count("10.0.0.1:80"), 1);
/// drop(open);
/// assert_eq!(connections.count("10.0.0.1:80"), 0);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ActiveConnections(Arc<Mutex<HashMap<String, Arc<AtomicUsize>>>>);

impl ActiveConnections {
    /// Counts a connection to `authority` as open until the returned guard is dropped.
    pub fn open(&self, authority: &str) -> OpenConnection {
        let counter = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(authority.to_owned())
            .or_default()
            .clone();
        counter.fetch_add(1, Ordering::Relaxed);
        OpenConnection(counter)
    }

    /// Connections open to `authority` now.
    pub fn count(&self, authority: &str) -> usize {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(authority)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// One open connection; dropping it counts the connection closed.
#[derive(Debug)]
pub struct OpenConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
