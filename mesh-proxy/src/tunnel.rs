//! Tunnels: proxying a connection's bytes, not its requests. A CONNECT through the outbound
//! listener, a Gateway `TCP` server and a `TLS` `PASSTHROUGH` server all end here: the route
//! table's stream rules pick a cluster ([`StreamDecision`]), [`Tunnels::open`] picks one of
//! its endpoints as the HTTP forwarder would (load balancer, outlier ejection, connect backoff)
//! and connects, and [`relay`] copies both ways, counting the bytes into the `istio_tcp_*`
//! metrics as they flow.

use crate::{endpoint::Endpoint, idle_timeout::IdleTimeout, registry::Registry};
use mesh_core::{Destination, MeshError, ResponseFlag, ResponseFlags, outlier::Outcome};
use mesh_route::{RouteTable, stream_route::StreamDecision, table::RouteScope};
use mesh_trace::metrics::{CatchAllCluster, IstioMetrics, TcpConnection, TcpCounters};
use pin_project::pin_project;
use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::Instant,
};

/// An upstream connection of a tunnel, and where it goes.
///
/// ```
/// use mesh_core::workload::Workload;
/// use mesh_proxy::{prometheus::default_recorder, registry::Registry, tunnel::Tunnels, upstream::Upstream};
/// use mesh_route::{RouteTable, config::Config, table::RouteScope};
/// use mesh_trace::metrics::{IstioMetrics, Reporter};
/// use std::sync::Arc;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let yaml = format!("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: echo}}\n\
///     spec: {{hosts: [echo], resolution: STATIC, ports: [{{number: 9000, name: tcp, protocol: TCP}}], \
///     endpoints: [{{address: 127.0.0.1, ports: {{tcp: {}}}}}]}}\n", echo.local_addr().unwrap().port());
/// let config = Config::from_yaml_str(&yaml).unwrap().config;
/// let table = Arc::new(RouteTable::compile(&config).unwrap());
/// let registry = Arc::new(Registry::build(&config, &table, &Upstream::default()).unwrap());
/// let metrics = Arc::new(IstioMetrics::new(default_recorder().unwrap().0, Reporter::Source, Workload::from_labels("app", "shop", &Default::default())));
/// let (upstream, counters) = Tunnels::new(table, registry, metrics).open(RouteScope::MESH, "echo", 9000, None).await.unwrap();
/// assert!(upstream.cluster.contains("echo"), "{}", upstream.cluster);
/// assert_eq!(upstream.endpoint.unwrap().authority.port_u16(), Some(echo.local_addr().unwrap().port()));
/// counters.close();
/// # }
/// ```
#[derive(Debug)]
pub struct TunnelUpstream {
    /// The connection.
    pub stream: TcpStream,
    /// The cluster's Envoy-style name (`outbound|PORT|SUBSET|HOST`).
    pub cluster: Arc<str>,
    /// The endpoint connected to, when the cluster has endpoints (not `resolution: NONE`).
    pub endpoint: Option<Arc<Endpoint>>,
}

/// The relays of CONNECT tunnels. They outlive the HTTP connection that opened them (its
/// socket is handed over to the tunnel), so the sidecar keeps them here, across configuration
/// swaps, to close them at shutdown once its listeners have drained.
///
/// ```
/// use mesh_proxy::{connect::ConnectLayer, listener::{HttpService, bind, serve}, tunnel::TunnelTasks};
/// # use mesh_core::workload::Workload;
/// # use mesh_proxy::{prometheus::default_recorder, registry::Registry, tunnel::Tunnels};
/// # use mesh_route::{RouteTable, config::OutboundMode};
/// # use mesh_trace::metrics::{IstioMetrics, Reporter};
/// # use std::{sync::Arc, time::Duration};
/// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// # use tower::{Layer, service_fn};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # let metrics = Arc::new(IstioMetrics::new(default_recorder().unwrap().0, Reporter::Source, Workload::from_labels("app", "shop", &Default::default())));
/// # let tunnels = Tunnels::new(Arc::new(RouteTable::default()), Arc::new(Registry::default()), metrics);
/// # let (echo, echo_addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
/// # tokio::spawn(async move { // an echo server
/// #     let (mut socket, _) = echo.accept().await.unwrap();
/// #     let (mut read, mut write) = socket.split();
/// #     tokio::io::copy(&mut read, &mut write).await.ok();
/// # });
/// # let app = service_fn(|_req| async { Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::empty())) });
/// let relays = TunnelTasks::default();
/// let connect = ConnectLayer::new(tunnels, OutboundMode::AllowAny, Duration::from_secs(1), None, relays.clone());
/// let (listener, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
/// let (stop, stopped) = tokio::sync::watch::channel(false);
/// let server = tokio::spawn(serve(listener, HttpService::new(connect.layer(app)), stopped, Arc::new(|| Duration::from_secs(1))));
/// let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
/// client.write_all(format!("CONNECT {echo_addr} HTTP/1.1\r\nhost: {echo_addr}\r\n\r\n").as_bytes()).await.unwrap();
/// # let mut head = Vec::new();
/// # while !head.ends_with(b"\r\n\r\n") { head.push(client.read_u8().await.unwrap()); }
/// # assert!(head.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head));
/// stop.send(true).unwrap();
/// server.await.unwrap(); // the listener is gone; the tunnel, kept in `relays`, is not
/// client.write_all(b"ping").await.unwrap();
/// let mut echoed = [0; 4];
/// client.read_exact(&mut echoed).await.unwrap();
/// assert_eq!(&echoed, b"ping");
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct TunnelTasks(Arc<std::sync::Mutex<tokio::task::JoinSet<()>>>);

impl TunnelTasks {
    /// Runs `relay` on its own task, kept here.
    pub(crate) fn spawn(&self, relay: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Reap finished tunnels so the set does not grow without bound.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(relay);
    }

    /// Gives the open tunnels up to `within` to end, then closes those still open.
    pub(crate) async fn drain(&self, within: Duration) {
        let mut open = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        let _ =
            tokio::time::timeout(within, async { while open.join_next().await.is_some() {} }).await;
        open.abort_all();
        // And any opened meanwhile.
        self.0.lock().unwrap_or_else(|e| e.into_inner()).abort_all();
    }
}

/// Routes, connects and counts tunnels for one configuration.
///
/// ```
/// use mesh_core::workload::Workload;
/// use mesh_proxy::{prometheus::default_recorder, registry::Registry, tunnel::{TunnelError, Tunnels}};
/// use mesh_route::{RouteTable, table::RouteScope};
/// use mesh_trace::metrics::{IstioMetrics, Reporter};
/// use std::sync::Arc;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (recorder, _) = default_recorder().unwrap();
/// let metrics = Arc::new(IstioMetrics::new(recorder, Reporter::Source, Workload::from_labels("app", "shop", &Default::default())));
/// let tunnels = Tunnels::new(Arc::new(RouteTable::default()), Arc::new(Registry::default()), metrics);
/// let refused = tunnels.open(RouteScope::MESH, "db.example.com", 5432, None).await;
/// assert!(matches!(refused, Err(TunnelError::UnknownHost)), "the outbound policy decides");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Tunnels {
    table: Arc<RouteTable>,
    registry: Arc<Registry>,
    metrics: Arc<IstioMetrics>,
}

/// Why a tunnel was not opened.
///
/// ```
/// use mesh_core::workload::Workload;
/// use mesh_proxy::{prometheus::default_recorder, registry::Registry, tunnel::{TunnelError, Tunnels}};
/// use mesh_route::{RouteTable, table::RouteScope};
/// use mesh_trace::metrics::{IstioMetrics, Reporter};
/// use std::sync::Arc;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (recorder, _) = default_recorder().unwrap();
/// let metrics = Arc::new(IstioMetrics::new(recorder, Reporter::Source, Workload::from_labels("app", "shop", &Default::default())));
/// let tunnels = Tunnels::new(Arc::new(RouteTable::default()), Arc::new(Registry::default()), metrics);
/// match tunnels.open(RouteScope::MESH, "unknown", 443, Some("unknown")).await {
///     Err(TunnelError::UnknownHost) => {}
///     other => panic!("{other:?}"),
/// }
/// # }
/// ```
#[derive(Debug)]
pub enum TunnelError {
    /// No VirtualService or ServiceEntry knows the host (mesh scope only; not counted yet: the
    /// outbound traffic policy decides).
    UnknownHost,
    /// No stream rule matches (`NR`, counted).
    NoRoute,
    /// The upstream could not be reached (`UH` or `UF`, counted).
    Failed(MeshError),
}

impl Tunnels {
    /// Tunnels routed by `table` to `registry`'s endpoints, counted in `metrics`.
    ///
    /// ```
    /// use mesh_core::workload::Workload;
    /// use mesh_proxy::{prometheus::default_recorder, registry::Registry, tunnel::Tunnels};
    /// use mesh_route::RouteTable;
    /// use mesh_trace::metrics::{IstioMetrics, Reporter};
    /// use std::sync::Arc;
    /// let (recorder, handle) = default_recorder().unwrap();
    /// let metrics = Arc::new(IstioMetrics::new(recorder, Reporter::Source, Workload::from_labels("app", "shop", &Default::default())));
    /// let tunnels = Tunnels::new(Arc::new(RouteTable::default()), Arc::new(Registry::default()), metrics);
    /// tunnels.opened("db.shop.svc.cluster.local", None, None).close();
    /// assert!(handle.unwrap().render().contains("istio_tcp_connections_closed_total"));
    /// ```
    pub fn new(
        table: Arc<RouteTable>,
        registry: Arc<Registry>,
        metrics: Arc<IstioMetrics>,
    ) -> Self {
        Tunnels {
            table,
            registry,
            metrics,
        }
    }

    /// Routes a connection (to `host:port` in the mesh scope, or to a gateway port's `scope`,
    /// with its `sni` when it carries TLS), connects to an endpoint of the chosen cluster, and
    /// counts it opened. A failure other than an unknown host is counted (opened and closed,
    /// with its flag).
    ///
    /// A host the route table does not know is left to the caller's outbound traffic policy:
    ///
    /// ```
    /// use mesh_core::workload::Workload;
    /// use mesh_proxy::{prometheus::default_recorder, registry::Registry, tunnel::{TunnelError, Tunnels}};
    /// use mesh_route::{RouteTable, table::RouteScope};
    /// use mesh_trace::metrics::{IstioMetrics, Reporter};
    /// use std::sync::Arc;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (recorder, handle) = default_recorder().unwrap();
    /// let metrics = Arc::new(IstioMetrics::new(recorder, Reporter::Source, Workload::from_labels("app", "shop", &Default::default())));
    /// let tunnels = Tunnels::new(Arc::new(RouteTable::default()), Arc::new(Registry::default()), metrics);
    /// let opened = tunnels.open(RouteScope::MESH, "api.example.com", 443, Some("api.example.com")).await;
    /// assert!(matches!(opened, Err(TunnelError::UnknownHost)));
    /// assert!(!handle.unwrap().render().contains("istio_tcp_connections_opened_total"), "not counted");
    /// # }
    /// ```
    pub async fn open(
        &self,
        scope: RouteScope,
        host: &str,
        port: u16,
        sni: Option<&str>,
    ) -> Result<(TunnelUpstream, TcpCounters), TunnelError> {
        let destination = match self.table.route_stream(scope, host, port, sni) {
            StreamDecision::Matched(rule) => rule.pick().clone(),
            StreamDecision::UnknownHost => return Err(TunnelError::UnknownHost),
            StreamDecision::NoRule => {
                let named = sni.unwrap_or(host);
                let service = if named.is_empty() {
                    mesh_core::workload::UNKNOWN
                } else {
                    named
                };
                self.count_refused(service, None, ResponseFlag::NoRouteFound);
                return Err(TunnelError::NoRoute);
            }
        };
        let service = &*destination.host;
        match connect_to_cluster(&self.registry, &destination, host, port).await {
            Ok(upstream) => {
                let counters = self.opened(
                    service,
                    None,
                    upstream.endpoint.as_ref().map(|e| &e.workload),
                );
                Ok((upstream, counters))
            }
            Err(error) => {
                let flag = error.flag();
                self.count_refused(
                    service,
                    None,
                    flag.unwrap_or(ResponseFlag::UpstreamConnectionFailure),
                );
                Err(TunnelError::Failed(error))
            }
        }
    }

    /// Counts a tunnel to `service` opened, and returns its counters.
    ///
    /// ```
    /// use mesh_core::workload::Workload;
    /// use mesh_proxy::{prometheus::default_recorder, registry::Registry, tunnel::Tunnels};
    /// use mesh_route::RouteTable;
    /// use mesh_trace::metrics::{IstioMetrics, Reporter};
    /// use std::sync::Arc;
    /// let (recorder, handle) = default_recorder().unwrap();
    /// let metrics = Arc::new(IstioMetrics::new(recorder, Reporter::Source, Workload::from_labels("app", "shop", &Default::default())));
    /// let tunnels = Tunnels::new(Arc::new(RouteTable::default()), Arc::new(Registry::default()), metrics);
    /// let counters = tunnels.opened("db.shop.svc.cluster.local", None, None);
    /// counters.received(42);
    /// counters.close();
    /// let text = handle.unwrap().render();
    /// let received = text.lines().find(|l| l.starts_with("istio_tcp_received_bytes_total{")).unwrap();
    /// assert!(received.ends_with(" 42"), "{received}");
    /// ```
    pub fn opened(
        &self,
        service: &str,
        catch_all: Option<CatchAllCluster>,
        peer: Option<&Arc<mesh_core::workload::Workload>>,
    ) -> TcpCounters {
        self.metrics.tcp_opened(&TcpConnection {
            destination_service: service,
            catch_all,
            peer,
            flags: ResponseFlags::default(),
        })
    }

    /// Counts a tunnel to `service` that was refused or failed with `flag` (opened and closed).
    ///
    /// ```
    /// use mesh_core::{ResponseFlag, workload::Workload};
    /// use mesh_proxy::{prometheus::default_recorder, registry::Registry, tunnel::Tunnels};
    /// use mesh_route::RouteTable;
    /// use mesh_trace::metrics::{CatchAllCluster, IstioMetrics, Reporter};
    /// use std::sync::Arc;
    /// let (recorder, handle) = default_recorder().unwrap();
    /// let metrics = Arc::new(IstioMetrics::new(recorder, Reporter::Source, Workload::from_labels("app", "shop", &Default::default())));
    /// let tunnels = Tunnels::new(Arc::new(RouteTable::default()), Arc::new(Registry::default()), metrics);
    /// tunnels.count_refused("api.example.com", Some(CatchAllCluster::BlackHole), ResponseFlag::NoRouteFound);
    /// let text = handle.unwrap().render();
    /// let closed = text.lines().find(|l| l.starts_with("istio_tcp_connections_closed_total{")).unwrap();
    /// assert!(closed.contains(r#"response_flags="NR""#), "{closed}");
    /// ```
    pub fn count_refused(
        &self,
        service: &str,
        catch_all: Option<CatchAllCluster>,
        flag: ResponseFlag,
    ) {
        self.metrics
            .tcp_opened(&TcpConnection {
                destination_service: service,
                catch_all,
                peer: None,
                flags: ResponseFlags::from(flag),
            })
            .close();
    }
}

/// Connects to an endpoint of `destination`'s cluster on `port` (the destination's port, else
/// the one the client asked for): one outlier detection has not ejected, out of connect backoff
/// when one is, chosen by the cluster's balancer. A `resolution: NONE` cluster connects to
/// `host:port` itself.
async fn connect_to_cluster(
    registry: &Registry,
    destination: &Destination,
    host: &str,
    port: u16,
) -> Result<TunnelUpstream, MeshError> {
    let cluster = registry
        .cluster(destination.cluster)
        .ok_or(MeshError::NoHealthyUpstream)?;
    if cluster.upstream.originates_tls() {
        // Sending the tunnel's bytes in plaintext would break what the DestinationRule asks.
        tracing::warn!(
            cluster = %cluster.name,
            "a tunnel to a cluster whose DestinationRule originates TLS is refused: tunnels do \
             not originate TLS yet"
        );
        return Err(MeshError::ConnectFailure(
            "tunnels do not originate TLS (DestinationRule tls)".into(),
        ));
    }
    let timeout = cluster.upstream.connect_timeout();
    let port = destination.port.unwrap_or(port);
    if cluster.passthrough {
        // A gateway port's tunnel names no host: the route's.
        let host = if host.is_empty() {
            &*destination.host
        } else {
            host
        };
        let stream = connect(&format!("{host}:{port}"), timeout).await?;
        return Ok(TunnelUpstream {
            stream,
            cluster: cluster.name.clone(),
            endpoint: None,
        });
    }
    let ports = cluster.port_for(port).ok_or(MeshError::NoHealthyUpstream)?;
    let now = Instant::now();
    let index = cluster
        .choose_endpoint(ports, None, now)
        .ok_or(MeshError::NoHealthyUpstream)?;
    let endpoint = &ports.endpoints[index];
    match connect(endpoint.authority.as_str(), timeout).await {
        Ok(stream) => {
            endpoint.record_reachable();
            Ok(TunnelUpstream {
                stream,
                cluster: cluster.name.clone(),
                endpoint: Some(endpoint.clone()),
            })
        }
        Err(error) => {
            let failed = Instant::now();
            endpoint.record_connect_failure(failed);
            if let Some(outlier) = &ports.outlier {
                outlier.report(index, Outcome::LocalOriginFailure, failed);
            }
            Err(error)
        }
    }
}

/// Connects to `authority` within `timeout` (`UF` either way it fails).
pub(crate) async fn connect(
    authority: &str,
    timeout: std::time::Duration,
) -> Result<TcpStream, MeshError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(authority))
        .await
        .map_err(|_| MeshError::ConnectFailure("connect timeout".into()))?
        .map_err(|error| {
            tracing::debug!(%authority, %error, "tunnel connect failed");
            MeshError::ConnectFailure(error.into())
        })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Copies between `downstream` and `upstream` until both directions end, or no byte has
/// moved for `idle` (see [`IdleTimeout`]), counting the bytes into `counters` as they pass
/// (`received`: from the downstream; `sent`: to it), then counts the connection closed.
///
/// ```
/// use mesh_core::workload::Workload;
/// use mesh_proxy::{prometheus::default_recorder, registry::Registry, tunnel::{Tunnels, relay}};
/// use mesh_route::RouteTable;
/// use mesh_trace::metrics::{IstioMetrics, Reporter};
/// use std::{sync::Arc, time::Duration};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (recorder, handle) = default_recorder().unwrap();
/// let metrics = Arc::new(IstioMetrics::new(recorder, Reporter::Source, Workload::from_labels("app", "shop", &Default::default())));
/// let tunnels = Tunnels::new(Arc::new(RouteTable::default()), Arc::new(Registry::default()), metrics);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let upstream = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
/// let (mut server, _) = listener.accept().await.unwrap();
/// let (mut client, downstream) = tokio::io::duplex(64);
/// let relayed = tokio::spawn(relay(downstream, upstream, tunnels.opened("echo", None, None), Some(Duration::from_secs(60))));
/// client.write_all(b"ping").await.unwrap();
/// let mut buf = [0; 4];
/// server.read_exact(&mut buf).await.unwrap();
/// server.write_all(b"pong!").await.unwrap();
/// drop(server);
/// let mut reply = Vec::new();
/// client.read_to_end(&mut reply).await.unwrap(); // until the upstream closed
/// assert_eq!((&buf, reply.as_slice()), (b"ping", b"pong!".as_slice()));
/// drop(client);
/// relayed.await.unwrap();
/// let text = handle.unwrap().render();
/// assert!(text.lines().any(|l| l.starts_with("istio_tcp_sent_bytes_total{") && l.ends_with(" 5")), "{text}");
/// # }
/// ```
pub async fn relay<D>(
    downstream: D,
    upstream: TcpStream,
    counters: TcpCounters,
    idle: Option<Duration>,
) where
    D: AsyncRead + AsyncWrite + Unpin,
{
    let copied = match idle {
        // Both sides watched: a half-closed tunnel waits on the upstream alone.
        Some(timeout) => {
            let mut counted = Counted {
                inner: IdleTimeout::new(downstream, timeout),
                counters: &counters,
            };
            let mut upstream = IdleTimeout::new(upstream, timeout);
            tokio::io::copy_bidirectional(&mut counted, &mut upstream).await
        }
        None => {
            let mut counted = Counted {
                inner: downstream,
                counters: &counters,
            };
            let mut upstream = upstream;
            tokio::io::copy_bidirectional(&mut counted, &mut upstream).await
        }
    };
    if let Err(error) = copied {
        tracing::debug!(%error, "tunnel ended with an error");
    }
    counters.close();
}

/// The downstream side of a tunnel, counting what is read from and written to it.
#[pin_project]
struct Counted<'a, S> {
    #[pin]
    inner: S,
    counters: &'a TcpCounters,
}

impl<S: AsyncRead> AsyncRead for Counted<'_, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            this.counters.received(read as u64);
        }
        polled
    }
}

impl<S: AsyncWrite> AsyncWrite for Counted<'_, S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = &polled {
            this.counters.sent(*written as u64);
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
