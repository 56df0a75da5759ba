//! Request and response extensions through which layers tell each other what they decided.
//!
//! Routing (mesh-route) and telemetry (mesh-trace) never import each other; they meet here.
//! The route layer inserts [`RouteInfo`] and [`Destination`] into the request's extensions;
//! the proxy inserts [`UpstreamHost`] into the response's; everyone may add
//! [`ResponseFlags`](crate::ResponseFlags). All are cheap to clone (`Arc`s and integers).

use std::{net::SocketAddr, sync::Arc};

/// Which configured route handled a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteInfo {
    /// The route's name for logs: the HTTPRoute `name` (joined with its match `name`), or
    /// `<virtual service>.<rule index>` when unnamed; `allow_any` for pass-through.
    pub name: Arc<str>,
    /// The `namespace/name` of the VirtualService, empty for pass-through traffic.
    pub virtual_service: Arc<str>,
}

/// Where routing decided to send a request: a service, optionally narrowed to a subset and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// Dense index of this (host, subset, port) among the route table's destinations, so the
    /// proxy can find the endpoint set without hashing.
    pub cluster: usize,
    /// Canonical service host (e.g. `catalog.shop.svc.cluster.local`).
    pub host: Arc<str>,
    /// DestinationRule subset name, if the route names one.
    pub subset: Option<Arc<str>>,
    /// Service port number, if the route names one.
    pub port: Option<u16>,
}

/// The upstream endpoint (`address:port`) that served, or was tried for, a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamHost(pub http::uri::Authority);

/// The downstream connection a request arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DownstreamAddr {
    /// The client's address.
    pub remote: SocketAddr,
    /// The local (listener) address.
    pub local: SocketAddr,
}

/// The upstream hosts already tried for a request, shared between the retry layer (which
/// creates it before the first attempt) and the load balancer (which avoids these hosts when
/// another is available, and records each pick) — Envoy's `previous_hosts` retry predicate.
#[derive(Clone, Debug, Default)]
pub struct PreviousHosts(std::sync::Arc<std::sync::Mutex<Vec<http::uri::Authority>>>);

impl PreviousHosts {
    /// Records that `host` was tried.
    pub fn record(&self, host: &http::uri::Authority) {
        if let Ok(mut hosts) = self.0.lock() {
            hosts.push(host.clone());
        }
    }

    /// Whether `host` was tried already.
    pub fn contains(&self, host: &http::uri::Authority) -> bool {
        self.0
            .lock()
            .map(|hosts| hosts.contains(host))
            .unwrap_or(false)
    }

    /// How many hosts were tried.
    pub fn len(&self) -> usize {
        self.0.lock().map(|hosts| hosts.len()).unwrap_or(0)
    }

    /// Whether no host was tried yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
