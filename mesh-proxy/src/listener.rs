//! Serving a tower service on a TCP listener: HTTP/1.1 and HTTP/2 (prior knowledge) on the same
//! port, TCP_NODELAY on every accepted socket, and errors turned into Envoy-style local replies
//! at this outermost edge (hyper would otherwise close the connection).

use crate::tls::{Accepted, InboundTls};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use mesh_core::{
    Body, BoxError, DownstreamAddr, PeerIdentity, body, local_reply::LocalReplyFuture,
};
use std::{convert::Infallible, future::Future, net::SocketAddr, pin::Pin, time::Duration};
use tokio::{net::TcpListener, sync::watch};
use tower::{ServiceExt, util::BoxCloneSyncService};

/// The boxed request → response service a listener serves.
pub type HttpService = BoxCloneSyncService<Request<Body>, Response<Body>, BoxError>;

/// How long open connections get to finish at shutdown, asked when shutdown comes (so a
/// reloaded `terminationDrainDuration` counts).
pub type DrainDuration = std::sync::Arc<dyn Fn() -> Duration + Send + Sync>;

/// The TLS policy of each new connection, asked as it is accepted (so a reloaded
/// PeerAuthentication applies to the connections that follow); `None`: plaintext.
pub type InboundTlsSource = std::sync::Arc<dyn Fn() -> Option<InboundTls> + Send + Sync>;

/// Serves `service` on `listener` until `shutdown` turns true; then stops accepting (the
/// listening socket closes), closes idle keep-alive connections, gives the others up to
/// `drain()` to finish their requests, and closes those still open.
pub async fn serve(
    listener: TcpListener,
    service: HttpService,
    shutdown: watch::Receiver<bool>,
    drain: DrainDuration,
) {
    serve_with_tls(listener, service, shutdown, drain, None).await;
}

/// [`serve`], each connection accepted as `tls` says when it is accepted (mutual TLS,
/// plaintext, or either: see [`InboundTls`]); a mutual-TLS connection's requests carry the
/// caller's [`PeerIdentity`].
pub async fn serve_with_tls(
    listener: TcpListener,
    service: HttpService,
    mut shutdown: watch::Receiver<bool>,
    drain: DrainDuration,
    tls: Option<InboundTlsSource>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .adaptive_window(true);
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
        let service = service.clone();
        let downstream = DownstreamAddr { remote, local };
        let mut hyper_service = ConnectionService {
            service,
            downstream,
            peer: None,
        };
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let policy = tls.as_ref().and_then(|source| source());
        connections.spawn(async move {
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
                    watcher
                        .watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), hyper_service))
                        .await
                }
                Accepted::Mutual(stream, peer) => {
                    hyper_service.peer = peer;
                    watcher
                        .watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), hyper_service))
                        .await
                }
            };
            if let Err(error) = served {
                tracing::debug!(%error, %remote, "connection ended with error");
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(drain(), graceful.shutdown()).await;
    // Connections still open past the drain are closed.
    connections.abort_all();
}

/// How many headers the layers may add to a request on its way through the proxy.
const ADDED_HEADERS: usize = 12;

/// Adapts an [`HttpService`] to one hyper connection: boxes the body, records the
/// connection's addresses, and turns errors into local replies.
#[derive(Clone)]
struct ConnectionService {
    service: HttpService,
    downstream: DownstreamAddr,
    /// The caller's verified identity, on a mutual-TLS connection.
    peer: Option<PeerIdentity>,
}

type ResponseFuture =
    LocalReplyFuture<Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>>;

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<Incoming>) -> ResponseFuture {
        let mut request = request.map(body::boxed);
        // Room for the headers the layers add (trace context, request id, attempt count,
        // expected timeout, forwarding headers): one growth of the map, not one per layer.
        request.headers_mut().reserve(ADDED_HEADERS);
        request.extensions_mut().insert(self.downstream);
        // Only the listener says who the peer is (never a header).
        if let Some(peer) = &self.peer {
            request.extensions_mut().insert(peer.clone());
        }
        LocalReplyFuture::new(Box::pin(self.service.clone().oneshot(request)))
    }
}

/// Binds `addr` (port 0 picks a free port) and returns the listener with its bound address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}
