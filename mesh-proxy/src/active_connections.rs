//! [`ActiveConnections`]: how many upstream connections are open to each endpoint, for
//! `/clusters` (`cx_active`) and the `upstream_cx_active` stat. A connection counts from its
//! connect until it is dropped; the map is touched on connect and close, never per request,
//! and forgets an endpoint when its last connection closes (pass-through traffic names
//! endpoints at will).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
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
/// assert_eq!(connections.endpoints(), 0, "forgotten with its last connection");
/// ```
#[derive(Clone, Debug, Default)]
pub struct ActiveConnections(Arc<Mutex<HashMap<String, usize>>>);

impl ActiveConnections {
    /// Counts a connection to `authority` as open until the returned guard is dropped.
    ///
    /// ```
    /// use mesh_proxy::active_connections::ActiveConnections;
    /// let connections = ActiveConnections::default();
    /// let (a, b) = (connections.open("10.0.0.1:80"), connections.open("10.0.0.1:80"));
    /// assert_eq!(connections.count("10.0.0.1:80"), 2);
    /// drop(a);
    /// assert_eq!(connections.count("10.0.0.1:80"), 1);
    /// # drop(b);
    /// ```
    pub fn open(&self, authority: &str) -> OpenConnection {
        *self.lock().entry(authority.to_owned()).or_default() += 1;
        OpenConnection {
            connections: self.clone(),
            authority: authority.to_owned(),
        }
    }

    /// Connections open to `authority` now.
    ///
    /// ```
    /// use mesh_proxy::active_connections::ActiveConnections;
    /// let connections = ActiveConnections::default();
    /// let shared = connections.clone();
    /// let _open = shared.open("10.0.0.2:8080");
    /// assert_eq!(connections.count("10.0.0.2:8080"), 1, "clones share the counts");
    /// assert_eq!(connections.count("10.0.0.3:8080"), 0);
    /// ```
    pub fn count(&self, authority: &str) -> usize {
        self.lock().get(authority).copied().unwrap_or(0)
    }

    /// Endpoints with open connections.
    ///
    /// ```
    /// use mesh_proxy::active_connections::ActiveConnections;
    /// let connections = ActiveConnections::default();
    /// let _a = connections.open("10.0.0.1:80");
    /// let _b = connections.open("10.0.0.1:80");
    /// let _c = connections.open("10.0.0.2:80");
    /// assert_eq!(connections.endpoints(), 2);
    /// ```
    pub fn endpoints(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One open connection; dropping it counts the connection closed.
///
/// ```
/// use mesh_proxy::active_connections::ActiveConnections;
/// let connections = ActiveConnections::default();
/// let open = connections.open("api.example.com:443");
/// assert_eq!(connections.endpoints(), 1);
/// drop(open); // counts the connection closed
/// assert_eq!(connections.endpoints(), 0);
/// ```
#[derive(Debug)]
pub struct OpenConnection {
    connections: ActiveConnections,
    authority: String,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let mut counts = self.connections.lock();
        if let Some(count) = counts.get_mut(&self.authority) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.authority);
            }
        }
    }
}
