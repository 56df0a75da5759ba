//! CONNECT through the outbound listener: an HTTP proxy's way to reach a TCP (or TLS) service,
//! as `curl -x http://127.0.0.1:15001 https://api.example.com` and any HTTPS-proxy-aware client
//! do. `CONNECT host:port` is routed like a connection, not a request: the host's VirtualService
//! `tcp` routes (by port), else its registry entry's endpoints; a host the registry does not know
//! is passed through under `ALLOW_ANY` (`PassthroughCluster`) and refused under `REGISTRY_ONLY`
//! (`BlackHoleCluster`: 502 and the connection closed, nothing is dialled). Once the upstream
//! connection is up the client gets `200` and the bytes flow through [`relay`], counted in the
//! `istio_tcp_*` metrics. The layer runs inside the telemetry layer, so the CONNECT request
//! itself is reported and logged like any request (`BlackHoleCluster` with `NR` when refused).

use crate::tunnel::{TunnelError, TunnelTasks, Tunnels, connect, relay};
use http::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use mesh_core::{Body, BoxError, DownstreamAddr, MeshError, ResponseFlag, UpstreamCluster, body};
use mesh_route::{config::OutboundMode, table::RouteScope};
use mesh_trace::metrics::{BLACK_HOLE_CLUSTER, CatchAllCluster, PASSTHROUGH_CLUSTER};
use pin_project::pin_project;
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};
use tokio::net::TcpStream;
use tower::{Layer, Service};

/// Handles `CONNECT` requests in front of the outbound HTTP stack; see the [module docs](self).
///
/// ```
/// use mesh_core::workload::Workload;
/// use mesh_proxy::{connect::ConnectLayer, prometheus::default_recorder, registry::Registry, tunnel::{TunnelTasks, Tunnels}};
/// use mesh_route::{RouteTable, config::OutboundMode};
/// use mesh_trace::metrics::{IstioMetrics, Reporter};
/// use std::{sync::Arc, time::Duration};
/// use tower::{Layer, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let metrics = Arc::new(IstioMetrics::new(default_recorder().unwrap().0, Reporter::Source, Workload::from_labels("app", "shop", &Default::default())));
/// let tunnels = Tunnels::new(Arc::new(RouteTable::default()), Arc::new(Registry::default()), metrics);
/// let layer = ConnectLayer::new(tunnels, OutboundMode::RegistryOnly, Duration::from_secs(1), None, TunnelTasks::default());
/// let http = service_fn(|_req| async { Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::empty())) });
/// let connect = http::Request::connect("api.example.com:443").body(mesh_core::body::empty()).unwrap();
/// // Outside the registry under REGISTRY_ONLY: refused, nothing dialled.
/// assert_eq!(layer.layer(http).oneshot(connect).await.unwrap().status(), 502);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ConnectLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    tunnels: Tunnels,
    mode: OutboundMode,
    /// For pass-through tunnels (clusters have their own).
    connect_timeout: Duration,
    /// How long a tunnel may carry no byte before it is closed.
    idle_timeout: Option<Duration>,
    /// Where the relays run (closed at shutdown).
    relays: TunnelTasks,
}

impl ConnectLayer {
    /// CONNECT tunnels opened by `tunnels`, unknown hosts as `mode` says (pass-through ones
    /// dialled within `connect_timeout`), closed after `idle_timeout` without traffic; their
    /// relays run in `relays`.
    ///
    /// ```
    /// use mesh_core::workload::Workload;
    /// use mesh_proxy::{connect::ConnectLayer, prometheus::default_recorder, registry::Registry, tunnel::{TunnelTasks, Tunnels}};
    /// use mesh_route::{RouteTable, config::OutboundMode};
    /// use mesh_trace::metrics::{IstioMetrics, Reporter};
    /// use std::{sync::Arc, time::Duration};
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let metrics = Arc::new(IstioMetrics::new(default_recorder().unwrap().0, Reporter::Source, Workload::from_labels("app", "shop", &Default::default())));
    /// let tunnels = Tunnels::new(Arc::new(RouteTable::default()), Arc::new(Registry::default()), metrics);
    /// let layer = ConnectLayer::new(tunnels, OutboundMode::AllowAny, Duration::from_secs(1), Some(Duration::from_secs(3600)), TunnelTasks::default());
    /// let http = service_fn(|_req| async { Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::empty())) });
    /// // A CONNECT without a port is refused at once.
    /// let connect = http::Request::connect("api.example.com").body(mesh_core::body::empty()).unwrap();
    /// assert_eq!(layer.layer(http).oneshot(connect).await.unwrap().status(), 400);
    /// # }
    /// ```
    pub fn new(
        tunnels: Tunnels,
        mode: OutboundMode,
        connect_timeout: Duration,
        idle_timeout: Option<Duration>,
        relays: TunnelTasks,
    ) -> Self {
        ConnectLayer {
            shared: Arc::new(Shared {
                tunnels,
                mode,
                connect_timeout,
                idle_timeout,
                relays,
            }),
        }
    }
}

impl<S> Layer<S> for ConnectLayer {
    type Service = Connect<S>;

    fn layer(&self, inner: S) -> Connect<S> {
        Connect {
            shared: self.shared.clone(),
            inner,
        }
    }
}

/// The service [`ConnectLayer`] produces.
///
/// ```
/// use mesh_core::workload::Workload;
/// use mesh_proxy::{connect::ConnectLayer, prometheus::default_recorder, registry::Registry, tunnel::{TunnelTasks, Tunnels}};
/// use mesh_route::{RouteTable, config::OutboundMode};
/// use mesh_trace::metrics::{IstioMetrics, Reporter};
/// use std::{sync::Arc, time::Duration};
/// use tower::{Layer, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let metrics = Arc::new(IstioMetrics::new(default_recorder().unwrap().0, Reporter::Source, Workload::from_labels("app", "shop", &Default::default())));
/// let tunnels = Tunnels::new(Arc::new(RouteTable::default()), Arc::new(Registry::default()), metrics);
/// let layer = ConnectLayer::new(tunnels, OutboundMode::RegistryOnly, Duration::from_secs(1), None, TunnelTasks::default());
/// let teapot = service_fn(|_req| async {
///     Ok::<_, mesh_core::BoxError>(http::Response::builder().status(418).body(mesh_core::body::empty()).unwrap())
/// });
/// // Anything but CONNECT goes to the inner service.
/// let get = http::Request::get("http://catalog/").body(mesh_core::body::empty()).unwrap();
/// assert_eq!(layer.layer(teapot).oneshot(get).await.unwrap().status(), 418);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Connect<S> {
    shared: Arc<Shared>,
    inner: S,
}

/// The answer to a CONNECT (the tunnel runs on after it, in its own task).
type TunnelFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// [`Connect`]'s future: the inner service's, or a CONNECT's answer.
///
/// ```
/// use mesh_core::workload::Workload;
/// use mesh_proxy::{connect::{ConnectFuture, ConnectLayer}, prometheus::default_recorder, registry::Registry, tunnel::{TunnelTasks, Tunnels}};
/// use mesh_route::{RouteTable, config::OutboundMode};
/// use mesh_trace::metrics::{IstioMetrics, Reporter};
/// use std::{sync::Arc, time::Duration};
/// use tower::{Layer, Service, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let metrics = Arc::new(IstioMetrics::new(default_recorder().unwrap().0, Reporter::Source, Workload::from_labels("app", "shop", &Default::default())));
/// let tunnels = Tunnels::new(Arc::new(RouteTable::default()), Arc::new(Registry::default()), metrics);
/// let layer = ConnectLayer::new(tunnels, OutboundMode::RegistryOnly, Duration::from_secs(1), None, TunnelTasks::default());
/// let http = service_fn(|_req| async { Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::empty())) });
/// let mut service = layer.layer(http);
/// let get = http::Request::get("http://catalog/").body(mesh_core::body::empty()).unwrap();
/// service.ready().await.unwrap();
/// assert!(matches!(service.call(get), ConnectFuture::Inner { .. }));
/// let connect = http::Request::connect("db:5432").body(mesh_core::body::empty()).unwrap();
/// service.ready().await.unwrap();
/// assert!(matches!(service.call(connect), ConnectFuture::Tunnel { .. }));
/// # }
/// ```
#[pin_project(project = ConnectFutureProj)]
pub enum ConnectFuture<F> {
    /// Any request but CONNECT.
    Inner {
        /// The inner service's future.
        #[pin]
        inner: F,
    },
    /// A CONNECT.
    Tunnel {
        /// Its answer.
        tunnel: TunnelFuture,
    },
}

impl<F, E> Future for ConnectFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<Body>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ConnectFutureProj::Inner { inner } => inner.poll(cx).map_err(Into::into),
            ConnectFutureProj::Tunnel { tunnel } => tunnel.as_mut().poll(cx).map(Ok),
        }
    }
}

impl<S> Service<Request<Body>> for Connect<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = ConnectFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if request.method() != Method::CONNECT {
            return ConnectFuture::Inner {
                inner: self.inner.call(request),
            };
        }
        let shared = self.shared.clone();
        ConnectFuture::Tunnel {
            tunnel: Box::pin(async move { shared.tunnel(request).await }),
        }
    }
}

impl Shared {
    async fn tunnel(&self, mut request: Request<Body>) -> Response<Body> {
        let Some((host, port)) = request
            .uri()
            .authority()
            .and_then(|a| Some((a.host().to_ascii_lowercase(), a.port_u16()?)))
        else {
            return reply(StatusCode::BAD_REQUEST, "CONNECT needs host:port");
        };
        let (upstream, counters, cluster): (TcpStream, _, Arc<str>) = match self
            .tunnels
            // A tunnel to a TLS service: the host is the name its `tls` routes match.
            .open(RouteScope::MESH, &host, port, Some(&host))
            .await
        {
            Ok((upstream, counters)) => (upstream.stream, counters, upstream.cluster),
            Err(TunnelError::NoRoute) => return MeshError::RouteNotFound.to_response(),
            Err(TunnelError::Failed(error)) => return error.to_response(),
            Err(TunnelError::UnknownHost) if self.mode == OutboundMode::RegistryOnly => {
                let black_hole = Some(CatchAllCluster::BlackHole);
                self.tunnels
                    .count_refused(&host, black_hole, ResponseFlag::NoRouteFound);
                tracing::debug!(%host, port, "CONNECT to a host outside the registry refused (REGISTRY_ONLY)");
                let mut response = MeshError::HostNotRegistered(host).to_response();
                response.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
                response
                    .extensions_mut()
                    .insert(UpstreamCluster(Arc::from(BLACK_HOLE_CLUSTER)));
                return response;
            }
            Err(TunnelError::UnknownHost) => {
                let passthrough = Some(CatchAllCluster::Passthrough);
                let target = format!("{host}:{port}");
                let local = request
                    .extensions()
                    .get::<DownstreamAddr>()
                    .map(|d| d.local);
                if local.is_some_and(|local| loops_back(&host, port, local)) {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        "CONNECT would loop back to the proxy",
                    );
                }
                match connect(&target, self.connect_timeout).await {
                    Ok(stream) => (
                        stream,
                        self.tunnels.opened(&host, passthrough, None),
                        Arc::from(PASSTHROUGH_CLUSTER),
                    ),
                    Err(error) => {
                        self.tunnels.count_refused(
                            &host,
                            passthrough,
                            ResponseFlag::UpstreamConnectionFailure,
                        );
                        let mut response = error.to_response();
                        response
                            .extensions_mut()
                            .insert(UpstreamCluster(Arc::from(PASSTHROUGH_CLUSTER)));
                        return response;
                    }
                }
            }
        };
        let upgrade = hyper::upgrade::on(&mut request);
        let idle = self.idle_timeout;
        self.relays.spawn(async move {
            match upgrade.await {
                Ok(upgraded) => relay(TokioIo::new(upgraded), upstream, counters, idle).await,
                Err(error) => {
                    tracing::debug!(%error, "CONNECT upgrade failed");
                    counters.close();
                }
            }
        });
        // Telemetry reports the CONNECT itself too: its answer and where the tunnel goes.
        let mut response = Response::new(body::empty());
        response.extensions_mut().insert(UpstreamCluster(cluster));
        response
    }
}

/// Whether `host:port` is the listener at `local` itself: its port on its own address, on a
/// loopback address, or (when it listens on every address) on any address of this machine's
/// that the name spells directly.
fn loops_back(host: &str, port: u16, local: std::net::SocketAddr) -> bool {
    if port != local.port() {
        return false;
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => {
            ip == local.ip()
                || ip.is_loopback()
                || ip.is_unspecified()
                || local.ip().is_unspecified()
        }
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

fn reply(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(body::full(text));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::loops_back;

    #[test]
    fn a_tunnel_to_the_listener_itself_is_recognised() {
        let bound: std::net::SocketAddr = "127.0.0.1:15001".parse().unwrap();
        let any: std::net::SocketAddr = "0.0.0.0:15001".parse().unwrap();
        assert!(loops_back("127.0.0.1", 15001, bound));
        assert!(loops_back("localhost", 15001, bound));
        assert!(loops_back("127.0.0.2", 15001, bound));
        assert!(loops_back("10.1.2.3", 15001, any));
        assert!(!loops_back("10.1.2.3", 15001, bound));
        assert!(!loops_back("127.0.0.1", 8080, bound));
        assert!(!loops_back("example.com", 15001, bound));
    }
}
