//! Serving a tower service on a TCP listener: HTTP/1.1 and HTTP/2 (prior knowledge) on the same
//! port, TCP_NODELAY on every accepted socket, and errors turned into Envoy-style local replies
//! at this outermost edge (hyper would otherwise close the connection).

use crate::gateway::GatewayConnection;
use crate::idle_timeout::IdleTimeout;
use crate::limits::{HYPER_MAX_HEADERS, ListenerLimits, MIN_BUFFER};
use crate::tls::{Accepted, InboundTls};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{
        conn::auto,
        graceful::{GracefulShutdown, Watcher},
    },
};
use mesh_core::{
    Body, BoxError, DownstreamAddr, PeerIdentity, body, body_count::count_streamed_body,
    local_reply::LocalReplyFuture,
};
use std::{convert::Infallible, future::Future, net::SocketAddr, pin::Pin, time::Duration};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tower::{ServiceExt, util::BoxCloneSyncService};

/// The boxed request → response service a listener serves.
///
/// ```
/// use mesh_proxy::listener::HttpService;
/// use tower::{ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let service = HttpService::new(service_fn(|_req| async {
///     Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::full("hello")))
/// }));
/// let request = http::Request::get("/").body(mesh_core::body::empty()).unwrap();
/// assert_eq!(service.clone().oneshot(request).await.unwrap().status(), 200);
/// # }
/// ```
pub type HttpService = BoxCloneSyncService<Request<Body>, Response<Body>, BoxError>;

/// How long open connections get to finish at shutdown, asked when shutdown comes (so a
/// reloaded `terminationDrainDuration` counts).
///
/// ```
/// use mesh_proxy::listener::DrainDuration;
/// use std::{sync::Arc, time::Duration};
/// let drain: DrainDuration = Arc::new(|| Duration::from_secs(5));
/// assert_eq!(drain(), Duration::from_secs(5));
/// ```
pub type DrainDuration = std::sync::Arc<dyn Fn() -> Duration + Send + Sync>;

/// The TLS policy of each new connection, asked as it is accepted (so a reloaded
/// PeerAuthentication applies to the connections that follow); `None`: plaintext.
///
/// ```
/// use mesh_proxy::{listener::InboundTlsSource, tls::InboundTls};
/// use mesh_route::config::peer_authentication::MtlsMode;
/// use std::sync::Arc;
/// let source: InboundTlsSource = Arc::new(|| Some(InboundTls::plaintext()));
/// assert_eq!(source().unwrap().mode(), MtlsMode::Disable);
/// ```
pub type InboundTlsSource = std::sync::Arc<dyn Fn() -> Option<InboundTls> + Send + Sync>;

/// Serves `service` on `listener` until `shutdown` turns true; then stops accepting (the
/// listening socket closes), closes idle keep-alive connections, gives the others up to
/// `drain()` to finish their requests, and closes those still open.
///
/// ```
/// use mesh_proxy::listener::{HttpService, bind, serve};
/// use std::{sync::Arc, time::Duration};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use tower::service_fn;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (listener, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
/// let hello = HttpService::new(service_fn(|_req| async { Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::full("hello"))) }));
/// let (stop, stopped) = tokio::sync::watch::channel(false);
/// let server = tokio::spawn(serve(listener, hello, stopped, Arc::new(|| Duration::from_secs(1))));
/// let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
/// client.write_all(b"GET / HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n").await.unwrap();
/// let mut response = String::new();
/// client.read_to_string(&mut response).await.unwrap();
/// assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("hello"), "{response}");
/// stop.send(true).unwrap();
/// server.await.unwrap();
/// # }
/// ```
pub async fn serve(
    listener: TcpListener,
    service: HttpService,
    shutdown: watch::Receiver<bool>,
    drain: DrainDuration,
) {
    serve_with(listener, service, shutdown, drain, ServeOptions::default()).await;
}

/// How a listener treats its connections beyond [`serve`]'s defaults.
///
/// ```
/// use mesh_proxy::{limits::ListenerLimits, listener::ServeOptions};
/// let options = ServeOptions {
///     tls: None, // plaintext
///     limits: ListenerLimits { max_request_headers: 50, ..ListenerLimits::default() },
/// };
/// assert_eq!(options.limits.max_request_headers, 50);
/// assert!(ServeOptions::default().tls.is_none());
/// ```
#[derive(Clone, Default)]
pub struct ServeOptions {
    /// Each connection accepted as this says when it is accepted (mutual TLS, plaintext, or
    /// either: see [`InboundTls`]); a mutual-TLS connection's requests carry the caller's
    /// [`PeerIdentity`]. `None`: plaintext.
    pub tls: Option<InboundTlsSource>,
    /// What one client may do.
    pub limits: ListenerLimits,
}

/// [`serve`], with `options`.
///
/// A request announcing a body over the limit is answered `413`:
///
/// ```
/// use mesh_proxy::{limits::ListenerLimits, listener::{HttpService, ServeOptions, bind, serve_with}};
/// use std::{sync::Arc, time::Duration};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (listener, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
/// let app = HttpService::new(tower::service_fn(|_req| async { Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::empty())) }));
/// let options = ServeOptions { tls: None, limits: ListenerLimits { max_request_body_bytes: Some(4), ..ListenerLimits::default() } };
/// let (stop, stopped) = tokio::sync::watch::channel(false);
/// let server = tokio::spawn(serve_with(listener, app, stopped, Arc::new(|| Duration::from_secs(1)), options));
/// let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
/// client.write_all(b"POST / HTTP/1.1\r\nhost: app\r\ncontent-length: 10\r\nconnection: close\r\n\r\n0123456789").await.unwrap();
/// let mut response = String::new();
/// client.read_to_string(&mut response).await.unwrap();
/// assert!(response.starts_with("HTTP/1.1 413"), "{response}");
/// stop.send(true).unwrap();
/// server.await.unwrap();
/// # }
/// ```
pub async fn serve_with(
    listener: TcpListener,
    service: HttpService,
    shutdown: watch::Receiver<bool>,
    drain: DrainDuration,
    options: ServeOptions,
) {
    let ServeOptions { tls, limits } = options;
    let server = HttpServer::new(service, &limits);
    accept_loop(listener, shutdown, drain, move |stream, downstream, watcher| {
        let server = server.clone();
        let policy = tls.as_ref().and_then(|source| source());
        async move {
            let remote = downstream.remote;
            let accepted = match policy {
                Some(policy) => match policy.accept(stream).await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::debug!(%error, %remote, mode = ?policy.mode(), "connection refused by the inbound TLS policy");
                        return;
                    }
                },
                None => Accepted::Plain(stream),
            };
            let served = match accepted {
                Accepted::Plain(stream) => {
                    server.serve(stream, watcher, downstream, None, None).await
                }
                #[cfg(feature = "tls")]
                Accepted::Mutual(stream, peer) => {
                    server.serve(stream, watcher, downstream, peer, None).await
                }
            };
            if let Err(error) = served {
                tracing::debug!(%error, %remote, "connection ended with error");
            }
        }
    })
    .await;
}

/// Accepts connections on `listener` until `shutdown` turns true, each handled by its own task
/// (`handle` gets the socket, its addresses, and a watcher for graceful shutdown); then stops
/// accepting (the listening socket closes), gives the connections up to `drain()` to finish,
/// and closes those still open.
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    drain: DrainDuration,
    mut handle: F,
) where
    F: FnMut(TcpStream, DownstreamAddr, Watcher) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let Ok(local) = listener.local_addr() else {
        return;
    };
    let mut connections = tokio::task::JoinSet::new();
    loop {
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let downstream = DownstreamAddr { remote, local };
        connections.spawn(handle(stream, downstream, graceful.watcher()));
    }
    drop(listener);
    let _ = tokio::time::timeout(drain(), graceful.shutdown()).await;
    // Connections still open past the drain are closed.
    connections.abort_all();
}

/// The HTTP side of a listener: hyper's HTTP/1.1 and HTTP/2 server with a listener's limits,
/// serving an [`HttpService`] on connections accepted (and perhaps TLS-terminated) elsewhere.
#[derive(Clone)]
pub(crate) struct HttpServer {
    builder: auto::Builder<TokioExecutor>,
    service: HttpService,
    /// Request body bytes allowed.
    max_body: Option<u64>,
    /// How long a connection may be idle.
    idle_timeout: Option<Duration>,
}

impl HttpServer {
    /// Serves `service` within `limits`.
    pub(crate) fn new(service: HttpService, limits: &ListenerLimits) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .keep_alive(true)
            .max_buf_size(limits.max_request_headers_bytes.max(MIN_BUFFER))
            .header_read_timeout(limits.header_read_timeout);
        // hyper parses up to 100 headers on the stack; any other limit costs a heap allocation
        // per request.
        if limits.max_request_headers != HYPER_MAX_HEADERS {
            builder.http1().max_headers(limits.max_request_headers);
        }
        builder
            .http2()
            .timer(TokioTimer::new())
            .adaptive_window(true)
            .max_concurrent_streams(limits.http2_max_concurrent_streams)
            .max_pending_accept_reset_streams(limits.http2_max_pending_accept_reset_streams)
            .max_local_error_reset_streams(limits.http2_max_local_error_reset_streams)
            .max_header_list_size(
                u32::try_from(limits.max_request_headers_bytes).unwrap_or(u32::MAX),
            );
        HttpServer {
            builder,
            service,
            max_body: limits.max_request_body_bytes,
            idle_timeout: limits.idle_timeout,
        }
    }

    /// How long a connection may carry no byte before it is closed.
    pub(crate) fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// Serves one accepted connection, plaintext or TLS, until it ends or the drain closes it;
    /// `peer` is the caller's verified identity, on a mutual-TLS connection; `gateway`, on a
    /// gateway port, what the connection's server allows.
    pub(crate) async fn serve<I>(
        &self,
        io: I,
        watcher: Watcher,
        downstream: DownstreamAddr,
        peer: Option<PeerIdentity>,
        gateway: Option<GatewayConnection>,
    ) -> Result<(), BoxError>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let service = ConnectionService {
            service: self.service.clone(),
            downstream,
            peer,
            gateway,
            max_body: self.max_body,
        };
        match self.idle_timeout {
            Some(timeout) => {
                let io = TokioIo::new(IdleTimeout::new(io, timeout));
                let connection = self.builder.serve_connection_with_upgrades(io, service);
                watcher.watch(connection).await
            }
            None => {
                let connection = self
                    .builder
                    .serve_connection_with_upgrades(TokioIo::new(io), service);
                watcher.watch(connection).await
            }
        }
    }
}

/// How many headers the layers may add to a request on its way through the proxy (trace
/// context, request id, attempt count, expected timeout, forwarding headers): a request given
/// room for them up front grows its header map once, not once per layer.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.reserve(mesh_proxy::listener::ADDED_HEADERS);
/// assert!(headers.capacity() >= mesh_proxy::listener::ADDED_HEADERS);
/// ```
pub const ADDED_HEADERS: usize = 12;

/// Adapts an [`HttpService`] to one hyper connection: boxes the body, records the
/// connection's addresses, and turns errors into local replies.
#[derive(Clone)]
struct ConnectionService {
    service: HttpService,
    downstream: DownstreamAddr,
    /// The caller's verified identity, on a mutual-TLS connection.
    peer: Option<PeerIdentity>,
    /// On a gateway port, what the connection's server allows.
    gateway: Option<GatewayConnection>,
    /// Request body bytes allowed.
    max_body: Option<u64>,
}

type ResponseFuture =
    LocalReplyFuture<Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>>;

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<Incoming>) -> ResponseFuture {
        let mut request = match self.max_body {
            None => count_streamed_body(request).map(body::boxed),
            Some(max) => {
                let announced = request
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                if announced.is_some_and(|length| length > max) {
                    return LocalReplyFuture::new(Box::pin(std::future::ready(Ok(
                        payload_too_large(),
                    ))));
                }
                let limit = usize::try_from(max).unwrap_or(usize::MAX);
                let limited = request.map(|incoming| http_body_util::Limited::new(incoming, limit));
                count_streamed_body(limited).map(body::boxed)
            }
        };
        // Room for the headers the layers add (trace context, request id, attempt count,
        // expected timeout, forwarding headers): one growth of the map, not one per layer.
        request.headers_mut().reserve(ADDED_HEADERS);
        request.extensions_mut().insert(self.downstream);
        // Only the listener says who the peer is (never a header).
        if let Some(peer) = &self.peer {
            request.extensions_mut().insert(peer.clone());
        }
        if let Some(gateway) = &self.gateway {
            request.extensions_mut().insert(gateway.clone());
        }
        LocalReplyFuture::new(Box::pin(self.service.clone().oneshot(request)))
    }
}

/// `413 Payload Too Large`, for a request announcing a body over the limit.
fn payload_too_large() -> Response<Body> {
    let mut response = Response::new(body::full("request body too large"));
    *response.status_mut() = http::StatusCode::PAYLOAD_TOO_LARGE;
    response
}

/// Binds `addr` (port 0 picks a free port) and returns the listener with its bound address.
///
/// ```
/// use mesh_proxy::listener::bind;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (listener, bound) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
/// assert_ne!(bound.port(), 0, "port 0 picks a free port");
/// assert_eq!(listener.local_addr().unwrap(), bound);
/// # }
/// ```
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}
