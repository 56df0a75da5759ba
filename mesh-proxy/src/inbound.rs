//! The inbound side: a Sidecar's `ingress` listeners forward to the local application.
//!
//! Every `ingress` entry names a service port and the app's `defaultEndpoint`
//! (`127.0.0.1:8080`, `0.0.0.0:8080` meaning loopback, `[::1]:8080`). A request is matched to an
//! entry by the port of its authority; with a single entry, that entry takes everything.

use crate::{
    endpoint::{Endpoint, Protocol},
    proxy_headers::{append_forwarded, remove_hop_by_hop},
    upstream::Upstream,
};
use http::{Request, Response, uri::Authority};
use mesh_core::{
    Body, BoxError, DownstreamAddr, MeshError, UpstreamCluster, UpstreamHost, error::UpstreamTarget,
};
use mesh_route::config::{IstioIngressListener, Sidecar};
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};
use tower::Service;

/// Why the ingress configuration cannot be served.
///
/// ```
/// use mesh_proxy::{inbound::Inbound, upstream::Upstream};
/// use mesh_route::config::Config;
/// let yaml = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: app, namespace: shop}\n\
///             spec: {ingress: [{port: {number: 3000, protocol: HTTP, name: http}, defaultEndpoint: 'unix:///var/run/app.sock'}]}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let error = Inbound::new(&config.sidecars[0].spec, Upstream::default()).unwrap_err();
/// assert_eq!(error.to_string(), "Sidecar ingress[0].defaultEndpoint \"unix:///var/run/app.sock\": unix domain sockets are not supported");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("Sidecar ingress[{index}].defaultEndpoint {endpoint:?}: {why}")]
pub struct InboundError {
    index: usize,
    endpoint: String,
    why: &'static str,
}

#[derive(Debug)]
struct Ingress {
    port: u32,
    app: Arc<Endpoint>,
    /// Where its requests are served, as telemetry names it: Istio's `inbound|PORT||` cluster
    /// and the application's address.
    served: UpstreamTarget,
}

/// Forwards inbound requests to the local application.
///
/// Requests go to the ingress entry's `defaultEndpoint` (here through an application client
/// that answers itself, see [`Transport`](crate::transport::Transport)):
///
/// ```
/// use mesh_proxy::{inbound::Inbound, transport::Transport, upstream::Upstream};
/// use mesh_route::config::Config;
/// use tower::ServiceExt;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let yaml = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: app, namespace: shop}\n\
///             spec: {ingress: [{port: {number: 3000, protocol: HTTP, name: http}, defaultEndpoint: '0.0.0.0:8080'}]}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let inbound = Inbound::new(&config.sidecars[0].spec, Upstream::default()).unwrap().unwrap();
/// let client = tower::service_fn(|request: http::Request<mesh_core::Body>| async move {
///     Ok::<_, mesh_core::BoxError>(http::Response::builder().header("x-uri", request.uri().to_string()).body(mesh_core::body::empty()).unwrap())
/// });
/// let mut request = http::Request::get("http://catalog:3000/items").body(mesh_core::body::empty()).unwrap();
/// request.extensions_mut().insert(Transport::new(client));
/// let response = inbound.oneshot(request).await.unwrap();
/// assert_eq!(response.headers()["x-uri"], "http://127.0.0.1:8080/items", "0.0.0.0 means loopback");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Inbound {
    ingress: Arc<[Ingress]>,
    upstream: Upstream,
}

impl Inbound {
    /// The inbound service for `sidecar`'s ingress entries, or `None` when it has none.
    ///
    /// ```
    /// use mesh_proxy::{inbound::Inbound, upstream::Upstream};
    /// use mesh_route::config::Sidecar;
    /// assert!(Inbound::new(&Sidecar::default(), Upstream::default()).unwrap().is_none(), "no ingress");
    /// ```
    pub fn new(sidecar: &Sidecar, upstream: Upstream) -> Result<Option<Self>, InboundError> {
        if sidecar.ingress.is_empty() {
            return Ok(None);
        }
        let ingress = sidecar
            .ingress
            .iter()
            .enumerate()
            .map(|(index, listener)| ingress_entry(index, listener))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Inbound {
            ingress: ingress.into(),
            upstream,
        }))
    }

    fn entry_for(&self, port: Option<u16>) -> Option<&Ingress> {
        match (&*self.ingress, port) {
            ([only], _) => Some(only),
            (entries, Some(port)) => entries.iter().find(|e| e.port == u32::from(port)),
            (_, None) => None,
        }
    }
}

fn ingress_entry(index: usize, listener: &IstioIngressListener) -> Result<Ingress, InboundError> {
    let port = listener.port.number;
    let target = listener.port.target_port.unwrap_or(port);
    let endpoint = listener
        .default_endpoint
        .clone()
        .unwrap_or_else(|| format!("127.0.0.1:{target}"));
    let error = |why| InboundError {
        index,
        endpoint: endpoint.clone(),
        why,
    };
    if endpoint.starts_with("unix://") {
        return Err(error("unix domain sockets are not supported"));
    }
    let loopback = endpoint
        .strip_prefix("0.0.0.0:")
        .map(|port| format!("127.0.0.1:{port}"))
        .unwrap_or_else(|| endpoint.clone());
    let authority: Authority = loopback.parse().map_err(|_| error("expected HOST:PORT"))?;
    if authority.port_u16().is_none() {
        return Err(error("expected HOST:PORT"));
    }
    let protocol = Protocol::of_port(
        listener.port.protocol.as_deref(),
        listener.port.name.as_deref().unwrap_or(""),
    );
    let served = UpstreamTarget::new(
        UpstreamCluster::inbound(port),
        Some(UpstreamHost(authority.clone())),
        None,
    );
    Ok(Ingress {
        port,
        app: Arc::new(Endpoint::new(authority, Default::default(), protocol)),
        served,
    })
}

impl Service<Request<Body>> for Inbound {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let authority: Authority = mesh_route::matcher::request_authority(&request)
                .and_then(|a| a.parse().ok())
                .ok_or(MeshError::BadRequest("request has no host"))?;
            let entry = this
                .entry_for(authority.port_u16())
                .ok_or(MeshError::RouteNotFound)?;
            let downstream = request.extensions().get::<DownstreamAddr>().copied();
            remove_hop_by_hop(request.headers_mut(), entry.app.protocol == Protocol::Http2);
            append_forwarded(request.headers_mut(), downstream.map(|d| d.remote), "http");
            let mut response = this
                .upstream
                .send_to_endpoint(&entry.app, request, &authority, None)
                .await?;
            // The application is the upstream (`%UPSTREAM_HOST%`), in the entry's inbound
            // cluster (`%UPSTREAM_CLUSTER%`).
            response.extensions_mut().insert(entry.served.clone());
            Ok(response)
        })
    }
}
