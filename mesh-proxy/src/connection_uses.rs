//! Retiring upstream HTTP/1.1 connections after `maxRequestsPerConnection` requests, and
//! counting them while open ([`ActiveConnections`]).
//!
//! hyper-util's pool picks the connection for a request; it does not count requests. So the
//! connector wraps each new connection with a shared counter ([`ConnectionUses`]) that
//! hyper-util copies into every response received on that connection. The sender counts each
//! response against the cluster's limit and, on reaching it, poisons the connection through
//! hyper-util's `capture_connection`: the pool does not hand it out again, and it closes once
//! the response in flight is done — Envoy's `max_requests_per_connection`.
//!
//! One race remains: a response with an empty body hands its connection back to the pool
//! before the sender counts it, so under concurrency a waiting request may take the
//! connection first — one request over the limit, at most. Sequential traffic gets exactly the
//! limit.

use crate::active_connections::{ActiveConnections, OpenConnection};
use crate::tls::OutboundTls;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::{
    client::legacy::connect::{Connected, Connection, HttpConnector},
    rt::TokioIo,
};
use mesh_core::BoxError;
use pin_project::pin_project;
use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    task::{Context, Poll},
};
use tokio::net::TcpStream;
#[cfg(feature = "tls")]
use tokio_rustls::client::TlsStream;

/// How many responses a connection has carried; found in each response's extensions.
///
/// ```
/// use mesh_proxy::connection_uses::ConnectionUses;
/// let uses = ConnectionUses::default();
/// let seen_by_pool = uses.clone(); // copied into every response of the connection
/// uses.count_one();
/// assert_eq!(seen_by_pool.count_one(), 2);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ConnectionUses(Arc<AtomicU32>);

impl ConnectionUses {
    /// Counts one more response; returns the count including it.
    ///
    /// ```
    /// use mesh_proxy::connection_uses::ConnectionUses;
    /// let uses = ConnectionUses::default();
    /// assert_eq!(uses.count_one(), 1);
    /// assert_eq!(uses.count_one(), 2);
    /// ```
    pub fn count_one(&self) -> u32 {
        self.0.fetch_add(1, Ordering::Relaxed).saturating_add(1)
    }
}

/// [`HttpConnector`] whose connections carry a [`ConnectionUses`] when `counting` (without a
/// limit to enforce, responses are spared the extension).
///
/// ```
/// use hyper_util::client::legacy::connect::HttpConnector;
/// use mesh_proxy::{active_connections::ActiveConnections, connection_uses::CountingConnector};
/// use std::time::Duration;
/// use tower::ServiceExt;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let addr = listener.local_addr().unwrap();
/// let active = ActiveConnections::default();
/// let connector = CountingConnector { connector: HttpConnector::new(), counting: true, active: active.clone(), tls: None, handshake_timeout: Duration::from_secs(1) };
/// let stream = connector.oneshot(format!("http://{addr}").parse().unwrap()).await.unwrap();
/// assert_eq!(active.count(&addr.to_string()), 1);
/// drop(stream);
/// assert_eq!(active.count(&addr.to_string()), 0);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct CountingConnector {
    /// The TCP connector.
    pub connector: HttpConnector,
    /// Whether connections count their responses.
    pub counting: bool,
    /// Where open connections are counted per endpoint.
    pub active: ActiveConnections,
    /// TLS origination, when the cluster's connections are encrypted.
    pub tls: Option<Arc<OutboundTls>>,
    /// How long a TLS handshake may take (the connect timeout).
    pub handshake_timeout: std::time::Duration,
}

impl tower::Service<http::Uri> for CountingConnector {
    type Response = CountedStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<CountedStream, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.connector.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let authority = uri.authority().map(|a| a.as_str().to_owned());
        let connecting = self.connector.call(uri);
        let counting = self.counting;
        let active = self.active.clone();
        let tls = self.tls.clone();
        #[cfg(feature = "tls")]
        let handshake_timeout = self.handshake_timeout;
        Box::pin(async move {
            let tcp = connecting.await?;
            let inner = match tls {
                None => Wire::Plain(tcp),
                #[cfg(not(feature = "tls"))]
                Some(tls) => match *tls {},
                #[cfg(feature = "tls")]
                Some(tls) => {
                    let stream = tcp.into_inner();
                    let upstream = authority.as_deref().unwrap_or_default();
                    // The connect timeout covers the handshake, as Envoy's does.
                    let encrypted =
                        tokio::time::timeout(handshake_timeout, tls.connect(stream, upstream))
                            .await
                            .map_err(|_| format!("TLS handshake with {upstream} timed out"))??;
                    Wire::Tls(Box::new(TokioIo::new(encrypted)))
                }
            };
            Ok(CountedStream {
                inner,
                uses: counting.then(ConnectionUses::default),
                _open: authority.map(|a| active.open(&a)),
            })
        })
    }
}

/// A connection's bytes: plaintext, or TLS.
#[pin_project(project = WireProjection)]
#[derive(Debug)]
enum Wire {
    Plain(#[pin] TokioIo<TcpStream>),
    #[cfg(feature = "tls")]
    Tls(#[pin] Box<TokioIo<TlsStream<TcpStream>>>),
}

/// A TCP connection with its [`ConnectionUses`].
///
/// ```
/// use hyper_util::client::legacy::connect::{Connection, HttpConnector};
/// use mesh_proxy::{active_connections::ActiveConnections, connection_uses::{ConnectionUses, CountingConnector}};
/// use std::time::Duration;
/// use tower::ServiceExt;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let uri = format!("http://{}", listener.local_addr().unwrap()).parse().unwrap();
/// let connector = CountingConnector { connector: HttpConnector::new(), counting: true, active: ActiveConnections::default(), tls: None, handshake_timeout: Duration::from_secs(1) };
/// let stream = connector.oneshot(uri).await.unwrap();
/// // The pool copies the connection's extras into each of its responses.
/// let mut extensions = http::Extensions::new();
/// stream.connected().get_extras(&mut extensions);
/// assert!(extensions.get::<ConnectionUses>().is_some());
/// # }
/// ```
#[pin_project]
#[derive(Debug)]
pub struct CountedStream {
    #[pin]
    inner: Wire,
    uses: Option<ConnectionUses>,
    _open: Option<OpenConnection>,
}

impl Connection for CountedStream {
    fn connected(&self) -> Connected {
        let connected = match &self.inner {
            Wire::Plain(tcp) => tcp.connected(),
            #[cfg(feature = "tls")]
            Wire::Tls(_) => Connected::new(),
        };
        match &self.uses {
            Some(uses) => connected.extra(uses.clone()),
            None => connected,
        }
    }
}

impl Read for CountedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.project().inner.project() {
            WireProjection::Plain(io) => io.poll_read(cx, buf),
            #[cfg(feature = "tls")]
            WireProjection::Tls(io) => io.poll_read(cx, buf),
        }
    }
}

impl Write for CountedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.project().inner.project() {
            WireProjection::Plain(io) => io.poll_write(cx, buf),
            #[cfg(feature = "tls")]
            WireProjection::Tls(io) => io.poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.project().inner.project() {
            WireProjection::Plain(io) => io.poll_flush(cx),
            #[cfg(feature = "tls")]
            WireProjection::Tls(io) => io.poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.project().inner.project() {
            WireProjection::Plain(io) => io.poll_shutdown(cx),
            #[cfg(feature = "tls")]
            WireProjection::Tls(io) => io.poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Wire::Plain(io) => io.is_write_vectored(),
            #[cfg(feature = "tls")]
            Wire::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.project().inner.project() {
            WireProjection::Plain(io) => io.poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            WireProjection::Tls(io) => io.poll_write_vectored(cx, bufs),
        }
    }
}
