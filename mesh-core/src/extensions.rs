//! Request and response extensions through which layers tell each other what they decided.
//!
//! Routing (mesh-route) and telemetry (mesh-trace) never import each other; they meet here.
//! The route layer inserts [`Routed`] (what it decided: the route's policy and the
//! [`Destination`]) into the request's extensions, for the layers below, and into the
//! response's, for the layers above; the proxy inserts where it sent the request (an
//! [`UpstreamTarget`](crate::error::UpstreamTarget), or [`UpstreamHost`], [`UpstreamCluster`]
//! and [`UpstreamWorkload`] apart) into the response's; everyone may add
//! [`ResponseFlags`](crate::ResponseFlags). All are cheap to clone (`Arc`s and integers).

use std::{net::SocketAddr, sync::Arc};

/// Which configured route handled a request (reported to the layers above in [`Routed`]).
///
/// ```
/// use mesh_core::RouteInfo;
/// let route = RouteInfo { name: "catalog.0".into(), virtual_service: "shop/catalog".into() };
/// assert_eq!(&*route.name, "catalog.0");
/// assert_eq!(&*route.virtual_service, "shop/catalog");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteInfo {
    /// The route's name for logs: the HTTPRoute `name` (joined with its match `name`), or
    /// `<virtual service>.<rule index>` when unnamed; `allow_any` for pass-through.
    pub name: Arc<str>,
    /// The `namespace/name` of the VirtualService, empty for pass-through traffic.
    pub virtual_service: Arc<str>,
}

/// Where routing decided to send a request: a service, optionally narrowed to a subset and port.
///
/// ```
/// use mesh_core::Destination;
/// let dest = Destination { cluster: 0, host: "catalog.shop.svc.cluster.local".into(), subset: Some("v2".into()), port: None };
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(dest.clone());
/// assert_eq!(request.extensions().get::<Destination>(), Some(&dest));
/// assert_eq!(dest.subset.as_deref(), Some("v2"));
/// ```
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
/// (`outbound|80|version-v1|catalog.shop.svc.cluster.local`), set on the response by the proxy
/// (on its own for tunnels and catch-all clusters; with the endpoint, in an
/// [`UpstreamTarget`](crate::error::UpstreamTarget), for a cluster's endpoints).
///
/// ```
/// use mesh_core::UpstreamCluster;
/// let mut response = http::Response::new(());
/// response.extensions_mut().insert(UpstreamCluster("outbound|80|v1|catalog.shop.svc.cluster.local".into()));
/// let cluster = response.extensions().get::<UpstreamCluster>().unwrap();
/// assert_eq!(cluster.0.split('|').nth(2), Some("v1"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamCluster(pub Arc<str>);

impl UpstreamCluster {
    /// The inbound cluster of a workload's `port`, as Istio's sidecar names it: the local
    /// application serving requests that came in on that port.
    ///
    /// ```
    /// use mesh_core::UpstreamCluster;
    /// assert_eq!(&*UpstreamCluster::inbound(8080).0, "inbound|8080||");
    /// ```
    pub fn inbound(port: u32) -> Self {
        UpstreamCluster(format!("inbound|{port}||").into())
    }
}

/// What routing decided: the route layer sets it on the request, for the layers below (the
/// route's [`RoutePolicy`](crate::policy::RoutePolicy), the [`Destination`] to forward to), and
/// on the response, for the layers outside it (telemetry); a failure below it carries it in a
/// [`RoutedError`](crate::RoutedError). One shared reference to a [`RouteChoice`], which the
/// route table makes once per route and destination: a request copies the reference, not the
/// names and policies inside. Layers read the policy and the destination through
/// [`route_policy`](crate::policy::route_policy) and [`destination`], which also find them set
/// on their own, as a standalone layer's user or a shadow request sets them.
///
/// ```
/// use mesh_core::{Destination, RouteInfo, Routed};
/// let routed = Routed::new(
///     RouteInfo { name: "r".into(), virtual_service: "shop/catalog".into() },
///     Some(Destination { cluster: 3, host: "catalog".into(), subset: None, port: Some(80) }),
/// );
/// let mut response = http::Response::new(());
/// response.extensions_mut().insert(routed.clone());
/// let seen = response.extensions().get::<Routed>().unwrap();
/// assert_eq!(seen.destination.as_ref().map(|d| d.cluster), Some(3));
/// assert_eq!(seen, &routed);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Routed(Arc<RouteChoice>);

/// What a [`Routed`] says.
///
/// ```
/// use mesh_core::{RouteChoice, RouteInfo, Routed};
/// let routed = Routed::new(RouteInfo { name: "r".into(), virtual_service: "shop/catalog".into() }, None);
/// let RouteChoice { route, destination, policy } = &*routed;
/// assert_eq!((&*route.name, destination.is_none(), policy.is_none()), ("r", true, true));
/// ```
#[derive(Debug, PartialEq)]
pub struct RouteChoice {
    /// The route that matched.
    pub route: RouteInfo,
    /// Where it sent the request (none for a redirect or a direct response).
    pub destination: Option<Destination>,
    /// The route's timeout, retry, fault and mirror policies, when it sets any.
    pub policy: Option<crate::policy::RoutePolicy>,
}

impl Routed {
    /// The decision to route by `route` to `destination` (none: a local reply).
    ///
    /// ```
    /// use mesh_core::{RouteInfo, Routed};
    /// let local_reply = Routed::new(RouteInfo { name: "redirect".into(), virtual_service: "shop/catalog".into() }, None);
    /// assert!(local_reply.destination.is_none() && local_reply.policy.is_none());
    /// ```
    pub fn new(route: RouteInfo, destination: Option<Destination>) -> Self {
        Routed::with_policy(route, destination, None)
    }

    /// The decision to route by `route`, under its `policy`, to `destination`.
    ///
    /// ```
    /// use mesh_core::{Destination, RouteInfo, Routed, policy::RoutePolicy};
    /// use std::time::Duration;
    /// let policy = RoutePolicy { timeout: Some(Duration::from_secs(2)), ..Default::default() };
    /// let routed = Routed::with_policy(
    ///     RouteInfo { name: "r".into(), virtual_service: "shop/catalog".into() },
    ///     Some(Destination { cluster: 0, host: "catalog".into(), subset: None, port: Some(80) }),
    ///     Some(policy),
    /// );
    /// assert_eq!(routed.policy.as_ref().and_then(|p| p.timeout), Some(Duration::from_secs(2)));
    /// ```
    pub fn with_policy(
        route: RouteInfo,
        destination: Option<Destination>,
        policy: Option<crate::policy::RoutePolicy>,
    ) -> Self {
        Routed(Arc::new(RouteChoice {
            route,
            destination,
            policy,
        }))
    }

    /// The same decision in allocations of its own: the choice, and what requests clone out of
    /// it (the destination's host and subset, the retry, fault and mirror policies), so that a
    /// thread cloning its copy for each request counts references no other core counts. A
    /// route's decision shared by every worker passes its cache lines between their cores at
    /// each request otherwise; the route table gives each thread copies of its own.
    ///
    /// ```
    /// use mesh_core::{Destination, RouteInfo, Routed};
    /// let route = RouteInfo { name: "r".into(), virtual_service: "vs".into() };
    /// let catalog = Destination { cluster: 3, host: "catalog".into(), subset: Some("v1".into()), port: None };
    /// let shared = Routed::new(route, Some(catalog));
    /// let mine = shared.copy_for_thread();
    /// assert_eq!(mine, shared);
    /// assert!(!std::ptr::eq(&*mine, &*shared));
    /// let host = |routed: &Routed| routed.destination.as_ref().unwrap().host.clone();
    /// assert!(!std::sync::Arc::ptr_eq(&host(&mine), &host(&shared)));
    /// ```
    pub fn copy_for_thread(&self) -> Routed {
        let destination = self.destination.as_ref().map(|d| Destination {
            host: Arc::from(&*d.host),
            subset: d.subset.as_deref().map(Arc::from),
            ..d.clone()
        });
        let policy = self.policy.as_ref().map(|p| crate::policy::RoutePolicy {
            fault: p.fault.as_deref().cloned().map(Arc::new),
            retry: p.retry.as_deref().cloned().map(Arc::new),
            mirrors: p.mirrors.as_deref().map(Arc::from),
            ..p.clone()
        });
        Routed::with_policy(self.route.clone(), destination, policy)
    }
}

/// The destination a request is to be forwarded to: the one routing chose ([`Routed`]), else
/// one set on its own.
///
/// ```
/// use mesh_core::{Destination, RouteInfo, Routed, destination};
/// let catalog = Destination { cluster: 3, host: "catalog".into(), subset: None, port: None };
/// let mut extensions = http::Extensions::new();
/// assert!(destination(&extensions).is_none());
/// extensions.insert(catalog.clone());
/// assert_eq!(destination(&extensions).map(|d| d.cluster), Some(3));
/// let route = RouteInfo { name: "r".into(), virtual_service: "vs".into() };
/// extensions.insert(Routed::new(route, Some(Destination { cluster: 4, ..catalog })));
/// assert_eq!(destination(&extensions).map(|d| d.cluster), Some(4), "routing's first");
/// ```
pub fn destination(extensions: &http::Extensions) -> Option<&Destination> {
    match extensions.get::<Routed>() {
        Some(Routed(choice)) if choice.destination.is_some() => choice.destination.as_ref(),
        _ => extensions.get::<Destination>(),
    }
}

impl std::ops::Deref for Routed {
    type Target = RouteChoice;

    fn deref(&self) -> &RouteChoice {
        &self.0
    }
}

/// The workload behind the upstream endpoint that served a request (its labels, as Istio's
/// `destination_*` metric labels report them); the proxy sets it on a response within an
/// [`UpstreamTarget`](crate::error::UpstreamTarget).
///
/// ```
/// use mesh_core::{UpstreamWorkload, workload::Workload};
/// use std::sync::Arc;
/// let labels = [("app".to_string(), "catalog".to_string())].into_iter().collect();
/// let workload = UpstreamWorkload(Arc::new(Workload::from_labels("catalog-v1", "shop", &labels)));
/// let shared = workload.clone();
/// assert!(Arc::ptr_eq(&workload.0, &shared.0), "clones share one workload");
/// assert_eq!(shared.0.canonical_service, "catalog");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamWorkload(pub Arc<crate::workload::Workload>);

/// The upstream endpoint (`address:port`) that served, or was tried for, a request.
///
/// ```
/// use mesh_core::UpstreamHost;
/// let host = UpstreamHost("10.0.0.7:8080".parse().unwrap());
/// assert_eq!(host.0.host(), "10.0.0.7");
/// assert_eq!(host.0.port_u16(), Some(8080));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamHost(pub http::uri::Authority);

/// Why the mesh answered a request itself: Envoy's `%RESPONSE_CODE_DETAILS%` for a local
/// reply (`route_not_found`, `direct_response`, `upstream_response_timeout`, …), set on the
/// reply by whoever made it. A response without one came from the upstream (`via_upstream`),
/// whatever flags it carries.
///
/// Most details are fixed words; some name what decided (an RBAC denial names its policy).
///
/// ```
/// use mesh_core::{LocalReplyDetails, MeshError};
/// let reply = MeshError::NoHealthyUpstream.to_response();
/// assert_eq!(reply.extensions().get::<LocalReplyDetails>(), Some(&LocalReplyDetails::fixed("no_healthy_upstream")));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalReplyDetails(pub std::borrow::Cow<'static, str>);

impl LocalReplyDetails {
    /// Details that are a fixed word.
    ///
    /// ```
    /// assert_eq!(mesh_core::LocalReplyDetails::fixed("direct_response").0, "direct_response");
    /// ```
    pub const fn fixed(details: &'static str) -> Self {
        LocalReplyDetails(std::borrow::Cow::Borrowed(details))
    }
}

/// The downstream connection a request arrived on.
///
/// ```
/// use mesh_core::DownstreamAddr;
/// let addr = DownstreamAddr { remote: "10.1.2.3:54321".parse().unwrap(), local: "127.0.0.1:15006".parse().unwrap() };
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(addr);
/// let seen = request.extensions().get::<DownstreamAddr>().unwrap();
/// assert_eq!(seen.remote.ip().to_string(), "10.1.2.3");
/// assert_eq!(seen.local.port(), 15006);
/// ```
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
    ///
    /// ```
    /// use mesh_core::PeerIdentity;
    /// let peer = PeerIdentity::new("spiffe://cluster.local/ns/shop/sa/web");
    /// assert_eq!(peer, PeerIdentity("spiffe://cluster.local/ns/shop/sa/web".into()));
    /// ```
    pub fn new(spiffe_id: &str) -> Self {
        PeerIdentity(Arc::from(spiffe_id))
    }

    /// The SPIFFE id.
    ///
    /// ```
    /// use mesh_core::PeerIdentity;
    /// let peer = PeerIdentity::new("spiffe://example.org/ns/default/sa/api");
    /// assert_eq!(peer.principal(), "spiffe://example.org/ns/default/sa/api");
    /// ```
    pub fn principal(&self) -> &str {
        &self.0
    }

    /// The `ns` segment of an Istio SPIFFE id.
    ///
    /// ```
    /// use mesh_core::PeerIdentity;
    /// assert_eq!(PeerIdentity::new("spiffe://td/ns/shop/sa/web").namespace(), Some("shop"));
    /// assert_eq!(PeerIdentity::new("spiffe://td/workload/x").namespace(), None);
    /// assert_eq!(PeerIdentity::new("not-a-spiffe-id").namespace(), None);
    /// ```
    pub fn namespace(&self) -> Option<&str> {
        self.segment("ns")
    }

    /// The `sa` segment of an Istio SPIFFE id.
    ///
    /// ```
    /// use mesh_core::PeerIdentity;
    /// assert_eq!(PeerIdentity::new("spiffe://td/ns/shop/sa/web").service_account(), Some("web"));
    /// assert_eq!(PeerIdentity::new("spiffe://td/ns/shop").service_account(), None);
    /// ```
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
