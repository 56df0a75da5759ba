//! Request and response extensions through which layers tell each other what they decided.
//!
//! Routing (mesh-route) and telemetry (mesh-trace) never import each other; they meet here.
//! The route layer inserts [`RouteInfo`] and [`Destination`] into the request's extensions;
//! the proxy inserts [`UpstreamHost`], [`UpstreamCluster`] and [`UpstreamWorkload`] into the
//! response's, and the route layer [`Routed`] (what it decided, for the layers above it); everyone may add
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

/// The upstream cluster that served a request, in Istio's form
/// (`outbound|80|version-v1|catalog.shop.svc.cluster.local`), set on the response by the proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamCluster(pub Arc<str>);

/// What routing decided, for the layers *outside* the route layer (telemetry): the route layer
/// sets it on the response, and a failure below it carries it in a
/// [`RoutedError`](crate::RoutedError).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routed {
    /// The route that matched.
    pub route: RouteInfo,
    /// Where it sent the request (none for a redirect or a direct response).
    pub destination: Option<Destination>,
}

/// The workload behind the upstream endpoint that served a request (its labels, as Istio's
/// `destination_*` metric labels report them), set on the response by the proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamWorkload(pub Arc<crate::workload::Workload>);

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

/// The verified identity of the peer of a mutual-TLS connection: the caller a request came
/// from, as its certificate's SPIFFE URI SAN names it. The listener sets it on every request of
/// such a connection; telemetry reports it as `source_principal` with
/// `connection_security_policy="mutual_tls"`.
///
/// ```
/// use mesh_core::PeerIdentity;
/// let peer = PeerIdentity::new("spiffe://cluster.local/ns/shop/sa/web");
/// assert_eq!(peer.namespace(), Some("shop"));
/// assert_eq!(peer.service_account(), Some("web"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerIdentity(pub Arc<str>);

impl PeerIdentity {
    /// The identity `spiffe_id` (`spiffe://trust-domain/ns/NS/sa/SA`).
    pub fn new(spiffe_id: &str) -> Self {
        PeerIdentity(Arc::from(spiffe_id))
    }

    /// The SPIFFE id.
    pub fn principal(&self) -> &str {
        &self.0
    }

    /// The `ns` segment of an Istio SPIFFE id.
    pub fn namespace(&self) -> Option<&str> {
        self.segment("ns")
    }

    /// The `sa` segment of an Istio SPIFFE id.
    pub fn service_account(&self) -> Option<&str> {
        self.segment("sa")
    }

    fn segment(&self, name: &str) -> Option<&str> {
        let path = self.0.strip_prefix("spiffe://")?.split_once('/')?.1;
        let mut parts = path.split('/');
        while let Some(key) = parts.next() {
            let value = parts.next()?;
            if key == name {
                return Some(value);
            }
        }
        None
    }
}
