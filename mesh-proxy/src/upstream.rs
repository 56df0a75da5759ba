//! Sending a request to an upstream endpoint.
//!
//! HTTP/1.1 endpoints share one pooled hyper-util client (TCP_NODELAY, Istio's 10 s connect
//! timeout); the URI is pointed at the endpoint while `Host` keeps the service name. HTTP/2
//! endpoints (`HTTP2`/`GRPC` ports) get one multiplexed prior-knowledge connection each, kept on
//! the [`Endpoint`], so `:authority` stays the service name as Envoy sends it and trailers pass
//! through for gRPC. Bodies stream both ways; the endpoint's in-flight count is held until the
//! response body ends. With `maxRequestsPerConnection` a connection is retired after that many
//! requests (1: keep-alive off, `connection: close`); see
//! [`connection_uses`](crate::connection_uses).

use crate::{
    active_connections::ActiveConnections,
    connection_uses::{ConnectionUses, CountingConnector},
    endpoint::{Endpoint, InFlight, Protocol},
    tls::OutboundTls,
    transport::{Transport, TransportFuture, refused_stream_in_chain},
};
use bytes::Bytes;
use http::{
    Request, Response, Uri, Version,
    header::{HOST, HeaderName},
    uri::{Authority, PathAndQuery, Scheme},
};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{
        Client,
        connect::{HttpConnector, capture_connection},
    },
    rt::{TokioExecutor, TokioIo, TokioTimer},
};
use mesh_core::{
    Body, BoxError, MeshError, UpstreamHost, body, circuit_breaker::RequestPermit, clock::Stamp,
    header_value::decimal,
};
use pin_project::pin_project;
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};
use tokio::{net::TcpStream, sync::Mutex};

/// Istio's default upstream connect timeout (`MeshConfig.connectTimeout`).
///
/// ```
/// use mesh_proxy::upstream::{DEFAULT_CONNECT_TIMEOUT, Upstream};
/// assert_eq!(DEFAULT_CONNECT_TIMEOUT, std::time::Duration::from_secs(10));
/// assert_eq!(Upstream::default().connect_timeout(), DEFAULT_CONNECT_TIMEOUT);
/// ```
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A cached HTTP/2 connection to one endpoint, with the number of requests it has carried.
///
/// ```
/// use mesh_proxy::{endpoint::{Endpoint, Protocol}, upstream::Upstream};
/// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
/// # use hyper_util::rt::{TokioExecutor, TokioIo};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// # let addr = listener.local_addr().unwrap();
/// # let accepted = Arc::new(AtomicUsize::new(0));
/// # let counted = accepted.clone();
/// # tokio::spawn(async move { // an HTTP/2 (prior knowledge) server counting its connections
/// #     loop {
/// #         let (stream, _) = listener.accept().await.unwrap();
/// #         counted.fetch_add(1, Ordering::Relaxed);
/// #         let ok = hyper::service::service_fn(|_req| async {
/// #             Ok::<_, std::convert::Infallible>(http::Response::new(mesh_core::body::empty()))
/// #         });
/// #         tokio::spawn(hyper::server::conn::http2::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), ok));
/// #     }
/// # });
/// // An HTTP/2 endpoint keeps one connection, retired here after two requests.
/// let endpoint = Arc::new(Endpoint::new(addr.to_string().parse().unwrap(), Default::default(), Protocol::Http2));
/// let upstream = Upstream::default().with_max_requests_per_connection(2);
/// for _ in 0..4 {
///     let request = http::Request::get("http://catalog/").body(mesh_core::body::empty()).unwrap();
///     let response = upstream.send_to_endpoint(&endpoint, request, &"catalog".parse().unwrap(), None).await.unwrap();
///     assert_eq!(response.version(), http::Version::HTTP_2);
/// }
/// assert_eq!(accepted.load(Ordering::Relaxed), 2, "four requests, two connections");
/// # }
/// ```
#[derive(Debug, Default)]
pub struct Http2Connection(Mutex<Option<(hyper::client::conn::http2::SendRequest<Body>, u32)>>);

/// Sends requests upstream; cheap to clone.
///
/// With a [`Transport`] in the request, the application's client is
/// the wire (here one that answers itself), except to a cluster that originates TLS, which the
/// mesh's own TLS client always sends:
///
/// ```
/// use mesh_proxy::{endpoint::{Endpoint, Protocol}, transport::Transport, upstream::Upstream};
/// use std::sync::Arc;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let client = tower::service_fn(|request: http::Request<mesh_core::Body>| async move {
///     let uri = request.uri().to_string();
///     Ok::<_, mesh_core::BoxError>(http::Response::builder().header("x-uri", uri).body(mesh_core::body::empty()).unwrap())
/// });
/// let endpoint = Arc::new(Endpoint::new("10.0.0.7:8080".parse().unwrap(), Default::default(), Protocol::Http1));
/// let mut request = http::Request::get("http://catalog/items").body(mesh_core::body::empty()).unwrap();
/// request.extensions_mut().insert(Transport::new(client));
/// let response = Upstream::default().send_to_endpoint(&endpoint, request, &"catalog".parse().unwrap(), None).await.unwrap();
/// assert_eq!(response.headers()["x-uri"], "http://10.0.0.7:8080/items");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Upstream {
    http1: Client<CountingConnector, Body>,
    connect_timeout: Duration,
    idle_timeout: Option<Duration>,
    /// Requests per connection before it is retired; 0: unlimited.
    max_requests_per_connection: u32,
    /// Open connections per endpoint.
    connections: ActiveConnections,
    /// TLS origination (DestinationRule `tls`), when the cluster's connections are encrypted.
    tls: Option<Arc<OutboundTls>>,
}

/// The pooled HTTP/1.1 client (TCP_NODELAY); its connections count responses when `counting`.
fn http1_client(
    connect_timeout: Duration,
    idle_timeout: Option<Duration>,
    counting: bool,
    active: ActiveConnections,
    tls: Option<Arc<OutboundTls>>,
) -> Client<CountingConnector, Body> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(idle_timeout)
        .build(CountingConnector {
            connector,
            counting,
            active,
            tls,
            handshake_timeout: connect_timeout,
        })
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream::new(DEFAULT_CONNECT_TIMEOUT)
    }
}

/// Istio's default idle timeout for upstream HTTP connections (`connectionPool.http.idleTimeout`).
///
/// ```
/// use mesh_proxy::upstream::{DEFAULT_IDLE_TIMEOUT, Upstream};
/// use std::time::Duration;
/// assert_eq!(DEFAULT_IDLE_TIMEOUT, Duration::from_secs(3600));
/// let default = Upstream::new(Duration::from_secs(10));
/// assert!(default.same_settings(&Upstream::with_timeouts(Duration::from_secs(10), Some(DEFAULT_IDLE_TIMEOUT))));
/// ```
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

impl Upstream {
    /// A sender with the given connect timeout and Istio's 1 h idle timeout.
    ///
    /// ```
    /// use mesh_proxy::upstream::Upstream;
    /// use std::time::Duration;
    /// let upstream = Upstream::new(Duration::from_millis(1500));
    /// assert_eq!(upstream.connect_timeout(), Duration::from_millis(1500));
    /// assert!(!upstream.originates_tls());
    /// ```
    pub fn new(connect_timeout: Duration) -> Self {
        Upstream::with_timeouts(connect_timeout, Some(DEFAULT_IDLE_TIMEOUT))
    }

    /// A sender with the given connect timeout and idle timeout for pooled HTTP/1.1
    /// connections (`None`: idle connections are never closed for idleness).
    ///
    /// ```
    /// use mesh_proxy::upstream::Upstream;
    /// use std::time::Duration;
    /// let never_idle = Upstream::with_timeouts(Duration::from_secs(1), None);
    /// assert_eq!(never_idle.connect_timeout(), Duration::from_secs(1));
    /// assert!(!never_idle.same_settings(&Upstream::new(Duration::from_secs(1))), "the idle timeouts differ");
    /// ```
    pub fn with_timeouts(connect_timeout: Duration, idle_timeout: Option<Duration>) -> Self {
        // Responses are timed (`x-envoy-upstream-service-time`) by the mesh's clock.
        mesh_core::clock::calibrate();
        let connections = ActiveConnections::default();
        Upstream {
            http1: http1_client(
                connect_timeout,
                idle_timeout,
                false,
                connections.clone(),
                None,
            ),
            connect_timeout,
            idle_timeout,
            max_requests_per_connection: 0,
            connections,
            tls: None,
        }
    }

    /// Whether connections are encrypted (DestinationRule `tls`).
    ///
    /// ```
    /// use mesh_proxy::upstream::Upstream;
    /// assert!(!Upstream::default().originates_tls());
    /// assert!(!Upstream::default().with_tls(None).originates_tls(), "None is plaintext");
    /// ```
    pub fn originates_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Encrypts every connection as `tls` says (`None`: plaintext).
    ///
    /// ```
    /// use mesh_proxy::{tls::{OutboundTls, TlsIdentity}, upstream::Upstream};
    /// use mesh_route::config::{ClientTlsMode, ClientTlsSettings};
    /// use std::sync::Arc;
    /// let certified = rcgen::generate_simple_self_signed(vec!["catalog".to_string()]).unwrap();
    /// let (cert, key) = (certified.cert.pem(), certified.signing_key.serialize_pem());
    /// let identity = TlsIdentity::from_pem(cert.as_bytes(), key.as_bytes(), cert.as_bytes()).unwrap();
    /// let settings = ClientTlsSettings { mode: Some(ClientTlsMode::IstioMutual), ..ClientTlsSettings::default() };
    /// let tls = OutboundTls::new(&settings, "catalog", Some(80), None, Some(&identity)).unwrap().map(Arc::new);
    /// let upstream = Upstream::default().with_tls(tls);
    /// assert!(upstream.originates_tls());
    /// assert!(!upstream.same_settings(&Upstream::default()));
    /// ```
    pub fn with_tls(mut self, tls: Option<Arc<OutboundTls>>) -> Self {
        self.tls = tls;
        self.http1 = self.new_http1_client();
        self
    }

    fn new_http1_client(&self) -> Client<CountingConnector, Body> {
        http1_client(
            self.connect_timeout,
            self.idle_timeout,
            self.max_requests_per_connection > 1,
            self.connections.clone(),
            self.tls.clone(),
        )
    }

    /// Retires each connection after `max` requests
    /// (`connectionPool.http.maxRequestsPerConnection`; 0: unlimited, 1: keep-alive off).
    ///
    /// ```
    /// use mesh_proxy::upstream::Upstream;
    /// let keep_alive_off = Upstream::default().with_max_requests_per_connection(1);
    /// assert!(!keep_alive_off.same_settings(&Upstream::default()));
    /// // 0 is unlimited, the default.
    /// assert!(Upstream::default().with_max_requests_per_connection(0).same_settings(&Upstream::default()));
    /// ```
    pub fn with_max_requests_per_connection(mut self, max: u32) -> Self {
        self.max_requests_per_connection = max;
        // Only a limit above 1 needs connections that count their responses.
        if max > 1 {
            self.http1 = self.new_http1_client();
        }
        self
    }

    /// Connections open to the endpoint at `authority` now.
    ///
    /// ```
    /// use mesh_proxy::upstream::Upstream;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let authority: http::uri::Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
    /// let server = tokio::spawn(async move {
    ///     let (mut stream, _) = listener.accept().await.unwrap();
    ///     let _ = stream.read(&mut [0; 1024]).await.unwrap();
    ///     stream.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await.unwrap();
    ///     stream // kept open
    /// });
    /// let upstream = Upstream::default();
    /// assert_eq!(upstream.active_connections(&authority), 0);
    /// let request = http::Request::get("/").body(mesh_core::body::empty()).unwrap();
    /// upstream.send_to_authority(request, &authority).await.unwrap();
    /// let _open = server.await.unwrap();
    /// assert_eq!(upstream.active_connections(&authority), 1, "pooled for the next request");
    /// # }
    /// ```
    pub fn active_connections(&self, authority: &Authority) -> usize {
        self.connections.count(authority.as_str())
    }

    /// The connect timeout.
    ///
    /// ```
    /// use mesh_proxy::upstream::Upstream;
    /// use std::time::Duration;
    /// assert_eq!(Upstream::with_timeouts(Duration::from_secs(2), None).connect_timeout(), Duration::from_secs(2));
    /// ```
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Whether `other` was made with the same timeouts and connection limits (so its pooled
    /// connections can serve in this one's place).
    ///
    /// ```
    /// use mesh_proxy::upstream::Upstream;
    /// use std::time::Duration;
    /// assert!(Upstream::new(Duration::from_secs(10)).same_settings(&Upstream::default()));
    /// assert!(!Upstream::new(Duration::from_secs(1)).same_settings(&Upstream::default()));
    /// ```
    pub fn same_settings(&self, other: &Upstream) -> bool {
        self.connect_timeout == other.connect_timeout
            && self.idle_timeout == other.idle_timeout
            && self.max_requests_per_connection == other.max_requests_per_connection
            && self.tls == other.tls
    }

    /// Sends `request` to `endpoint`. `authority` is the service name the client addressed,
    /// kept as `Host`/`:authority`; `permit` (the cluster's circuit-breaker admission) is held
    /// until the response body ends. The response says nothing of where it was served: the
    /// caller, which knows the cluster too, says it (the forwarder, with an `UpstreamTarget`).
    ///
    /// The request is counted on the endpoint (`requests`, `in_flight`) and its sending made
    /// when this is called, not when the future is first polled: await it at once.
    ///
    /// ```
    /// use mesh_proxy::{endpoint::{Endpoint, Protocol}, transport::Transport, upstream::Upstream};
    /// use std::sync::Arc;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let client = tower::service_fn(|request: http::Request<mesh_core::Body>| async move {
    ///     let host = request.headers()["host"].clone();
    ///     Ok::<_, mesh_core::BoxError>(http::Response::builder().status(503).header("x-host", host).body(mesh_core::body::empty()).unwrap())
    /// });
    /// let endpoint = Arc::new(Endpoint::new("10.0.0.7:8080".parse().unwrap(), Default::default(), Protocol::Http1));
    /// let mut request = http::Request::get("http://catalog/").body(mesh_core::body::empty()).unwrap();
    /// request.extensions_mut().insert(Transport::new(client));
    /// let response = Upstream::default().send_to_endpoint(&endpoint, request, &"catalog".parse().unwrap(), None).await.unwrap();
    /// assert_eq!(response.headers()["x-host"], "catalog", "the service name the client addressed");
    /// assert_eq!((endpoint.requests(), endpoint.failures()), (1, 1), "a 5xx counts as a failure");
    /// # }
    /// ```
    pub fn send_to_endpoint<'a>(
        &'a self,
        endpoint: &'a Arc<Endpoint>,
        mut request: Request<Body>,
        authority: &Authority,
        permit: Option<RequestPermit>,
    ) -> impl Future<Output = Result<Response<Body>, MeshError>> + Send + use<'a> {
        let transport = request.extensions_mut().remove::<Transport>();
        let sent = Stamp::now();
        let sending =
            self.send_to_endpoint_on(endpoint, request, transport.as_ref(), authority, permit);
        async move {
            let mut response = sending.await?;
            set_service_time(&mut response, sent.elapsed());
            Ok(response)
        }
    }

    /// [`send_to_endpoint`](Self::send_to_endpoint), on `transport` (the application's client)
    /// when there is one, whatever the request's extensions hold; the caller, which reads the
    /// clock around it anyway, sets `x-envoy-upstream-service-time` ([`set_service_time`]).
    pub(crate) fn send_to_endpoint_on<'a>(
        &'a self,
        endpoint: &'a Arc<Endpoint>,
        mut request: Request<Body>,
        transport: Option<&Transport>,
        authority: &Authority,
        permit: Option<RequestPermit>,
    ) -> impl Future<Output = Result<Response<Body>, MeshError>> + Send + use<'a> {
        let guard = (endpoint.start_request(), permit);
        // A cluster whose DestinationRule originates TLS is sent by the mesh's own TLS client,
        // never by the application's, which would send it in plaintext.
        let transport = transport.filter(|_| !self.originates_tls());
        // The request goes into the sending future here, not across an await: the future
        // returned holds it once, in the sending, rather than once more of its own.
        let sending = match (transport, endpoint.protocol) {
            // The application's client connects to the URI's authority, whatever the protocol.
            (Some(transport), protocol) => {
                point_uri(&mut request, &endpoint.authority).map(|()| {
                    set_host(&mut request, authority);
                    // An HTTP/1.1 endpoint gets HTTP/1.1, whatever the downstream spoke; for an
                    // HTTP/2 one the application's client chooses.
                    if protocol == Protocol::Http1 {
                        *request.version_mut() = Version::HTTP_11;
                    }
                    Sending::Transport(transport.send(request))
                })
            }
            // The mesh's own connections: boxed, as their futures are far larger.
            (None, Protocol::Http1) => point_uri(&mut request, &endpoint.authority).map(|()| {
                set_host(&mut request, authority);
                Sending::Own(Box::pin(self.send_http1(request)))
            }),
            (None, Protocol::Http2) => point_uri(&mut request, authority).map(|()| {
                request.headers_mut().remove(HOST);
                Sending::Own(Box::pin(self.send_http2(endpoint, request)))
            }),
        };
        async move {
            let result = match sending? {
                Sending::Transport(future) => future
                    .await
                    .map(|response| GuardedBody::around(response, guard)),
                Sending::Own(future) => future
                    .await
                    .map(|response| GuardedBody::around(response, guard)),
            };
            match result {
                Ok(response) => {
                    endpoint.record_reachable();
                    if response.status().is_server_error() {
                        endpoint.record_failure();
                    } else {
                        endpoint.record_success();
                    }
                    Ok(response)
                }
                Err(error) => {
                    endpoint.record_failure();
                    if matches!(error, MeshError::ConnectFailure(_)) {
                        endpoint.record_connect_failure(tokio::time::Instant::now());
                    }
                    Err(error)
                }
            }
        }
    }

    /// Sends `request` over HTTP/1.1 to `authority` itself (pass-through traffic).
    ///
    /// ```
    /// use mesh_proxy::{transport::Transport, upstream::Upstream};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let client = tower::service_fn(|request: http::Request<mesh_core::Body>| async move {
    ///     let uri = request.uri().to_string();
    ///     Ok::<_, mesh_core::BoxError>(http::Response::builder().header("x-uri", uri).body(mesh_core::body::empty()).unwrap())
    /// });
    /// let mut request = http::Request::get("/search?q=mesh").body(mesh_core::body::empty()).unwrap();
    /// request.extensions_mut().insert(Transport::new(client));
    /// let response = Upstream::default().send_to_authority(request, &"api.example.com:8080".parse().unwrap()).await.unwrap();
    /// assert_eq!(response.headers()["x-uri"], "http://api.example.com:8080/search?q=mesh");
    /// # }
    /// ```
    pub async fn send_to_authority(
        &self,
        mut request: Request<Body>,
        authority: &Authority,
    ) -> Result<Response<Body>, MeshError> {
        let transport = request.extensions_mut().remove::<Transport>();
        self.send_to_authority_on(request, transport.as_ref(), authority)
            .await
    }

    /// [`send_to_authority`](Self::send_to_authority), on `transport` (the application's
    /// client) when there is one, whatever the request's extensions hold.
    pub(crate) async fn send_to_authority_on(
        &self,
        mut request: Request<Body>,
        transport: Option<&Transport>,
        authority: &Authority,
    ) -> Result<Response<Body>, MeshError> {
        point_uri(&mut request, authority)?;
        set_host(&mut request, authority);
        let sent = Stamp::now();
        let mut response = match transport {
            Some(transport) => transport.send(request).await?,
            None => self.send_http1(request).await?.map(body::boxed),
        };
        set_service_time(&mut response, sent.elapsed());
        response
            .extensions_mut()
            .insert(UpstreamHost(authority.clone()));
        Ok(response)
    }

    async fn send_http1(
        &self,
        mut request: Request<Body>,
    ) -> Result<Response<Incoming>, MeshError> {
        *request.version_mut() = Version::HTTP_11;
        let capture = match self.max_requests_per_connection {
            0 => None,
            // One request per connection: keep-alive off, as in Envoy.
            1 => {
                request.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
                None
            }
            _ => Some(capture_connection(&mut request)),
        };
        let response = self.http1.request(request).await.map_err(|e| {
            if e.is_connect() {
                MeshError::ConnectFailure(Box::new(e))
            } else {
                MeshError::UpstreamReset(Box::new(e))
            }
        })?;
        if let Some(capture) = capture
            && let Some(uses) = response.extensions().get::<ConnectionUses>()
            && uses.count_one() >= self.max_requests_per_connection
            && let Some(connection) = capture.connection_metadata().as_ref()
        {
            connection.poison();
        }
        Ok(response)
    }

    async fn send_http2(
        &self,
        endpoint: &Endpoint,
        mut request: Request<Body>,
    ) -> Result<Response<Incoming>, MeshError> {
        *request.version_mut() = Version::HTTP_2;
        let mut sender = self.http2_sender(endpoint).await?;
        sender
            .ready()
            .await
            .map_err(|e| MeshError::UpstreamReset(Box::new(e)))?;
        sender
            .send_request(request)
            .await
            .map_err(classify_http2_error)
    }

    /// The endpoint's HTTP/2 connection, connecting when there is none or it has closed.
    async fn http2_sender(
        &self,
        endpoint: &Endpoint,
    ) -> Result<hyper::client::conn::http2::SendRequest<Body>, MeshError> {
        // Connecting (once a connection) is boxed: inline, its ~1.2 KB handshake state would
        // be part of every HTTP/2 request's sending future, which is boxed per request.
        let connect = || Box::pin(self.connect_http2(endpoint));
        // One request per connection: nothing is shared, so no lock is held while connecting.
        if self.max_requests_per_connection == 1 {
            return connect().await;
        }
        let mut cached = endpoint.h2.0.lock().await;
        if let Some((sender, uses)) = cached.as_mut().filter(|(s, _)| !s.is_closed()) {
            let sender = sender.clone();
            *uses += 1;
            // The connection's last request: later ones open a new connection, and this one
            // closes once its streams are done (its sender clones are dropped).
            if self.max_requests_per_connection > 0 && *uses >= self.max_requests_per_connection {
                *cached = None;
            }
            return Ok(sender);
        }
        let sender = connect().await?;
        *cached = Some((sender.clone(), 1));
        Ok(sender)
    }

    /// A new HTTP/2 connection to `endpoint`, its task spawned.
    async fn connect_http2(
        &self,
        endpoint: &Endpoint,
    ) -> Result<hyper::client::conn::http2::SendRequest<Body>, MeshError> {
        if self.tls.is_some() {
            return Err(MeshError::ConnectFailure(
                "TLS origination to HTTP/2 (HTTP2/GRPC port) endpoints is not supported yet".into(),
            ));
        }
        let connect = TcpStream::connect(endpoint.authority.as_str());
        let stream = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(MeshError::ConnectFailure(Box::new(e))),
            Err(_) => return Err(MeshError::ConnectFailure("connect timeout".into())),
        };
        let _ = stream.set_nodelay(true);
        let open = self.connections.open(endpoint.authority.as_str());
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .adaptive_window(true)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| MeshError::ConnectFailure(Box::new(e)))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "upstream HTTP/2 connection ended");
            }
            drop(open);
        });
        Ok(sender)
    }
}

/// An HTTP/2 stream error: `REFUSED_STREAM` (the upstream did not process the request, so it
/// is safe to retry) or any other reset.
fn classify_http2_error(error: hyper::Error) -> MeshError {
    if refused_stream_in_chain(&error) {
        MeshError::RefusedStream(Box::new(error))
    } else {
        MeshError::UpstreamReset(Box::new(error))
    }
}

/// Points the request URI at `authority` (absolute form, keeping path and query).
fn point_uri(request: &mut Request<Body>, authority: &Authority) -> Result<(), MeshError> {
    // Taken, not copied: only its path and query are kept.
    let uri = std::mem::take(request.uri_mut());
    *request.uri_mut() = absolute_uri(uri, Scheme::HTTP, authority.clone())
        .ok_or(MeshError::BadRequest("invalid request URI"))?;
    Ok(())
}

/// `uri` in absolute form with `scheme` and `authority`, keeping its path and query (`/` when
/// it has none); `None` if they do not make a URI. `uri` is taken apart, not copied: its path
/// is moved, not counted once more.
///
/// ```
/// use http::{Uri, uri::{Authority, Scheme}};
/// use mesh_proxy::upstream::absolute_uri;
/// let endpoint = Authority::from_static("10.0.0.7:8080");
/// let uri = absolute_uri(Uri::from_static("/items?page=2"), Scheme::HTTP, endpoint.clone());
/// assert_eq!(uri.unwrap(), "http://10.0.0.7:8080/items?page=2");
/// let authority_form = absolute_uri(Uri::from_static("catalog:80"), Scheme::HTTP, endpoint);
/// assert_eq!(authority_form.unwrap(), "http://10.0.0.7:8080/");
/// ```
pub fn absolute_uri(uri: Uri, scheme: Scheme, authority: Authority) -> Option<Uri> {
    let mut parts = uri.into_parts();
    parts.scheme = Some(scheme);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    Uri::from_parts(parts).ok()
}

/// Sets `Host` to the authority the client addressed, unless the request already has one.
fn set_host(request: &mut Request<Body>, authority: &Authority) {
    if !request.headers().contains_key(HOST)
        && let Ok(value) = http::HeaderValue::from_str(authority.as_str())
    {
        request.headers_mut().insert(HOST, value);
    }
}

/// An upstream response body that keeps the endpoint's in-flight count, and the cluster's
/// circuit-breaker permit, until it ends.
#[pin_project]
struct GuardedBody<B> {
    #[pin]
    inner: B,
    guard: Option<(InFlight, Option<RequestPermit>)>,
}

impl<B> GuardedBody<B>
where
    B: HttpBody<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    /// `response` with its body holding `guard` until it ends. A body that has ended already
    /// (an empty one) holds nothing: the request is over, and the guard is let go now, with
    /// no wrapper for it to ride in.
    fn around(response: Response<B>, guard: (InFlight, Option<RequestPermit>)) -> Response<Body> {
        response.map(|inner| match inner.is_end_stream() {
            true => body::boxed(inner),
            false => body::boxed(GuardedBody {
                inner,
                guard: Some(guard),
            }),
        })
    }
}

impl<B> HttpBody for GuardedBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let polled = std::task::ready!(this.inner.poll_frame(cx));
        if polled.is_none() {
            this.guard.take();
        }
        Poll::Ready(polled.map(|frame| frame.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `x-envoy-upstream-service-time`: the milliseconds from sending the request to the
/// upstream's response headers (`elapsed`), as Envoy's router adds it (replacing any the
/// upstream sent).
pub(crate) fn set_service_time<B>(response: &mut Response<B>, elapsed: Duration) {
    let millis = mesh_core::clock::whole_millis(elapsed);
    response
        .headers_mut()
        .insert(X_ENVOY_UPSTREAM_SERVICE_TIME, decimal(millis));
}

/// The response header through which the router reports the upstream's time.
///
/// ```
/// use mesh_proxy::{transport::Transport, upstream::{Upstream, X_ENVOY_UPSTREAM_SERVICE_TIME}};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let client = tower::service_fn(|_request: http::Request<mesh_core::Body>| async {
///     Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::empty()))
/// });
/// let mut request = http::Request::get("/").body(mesh_core::body::empty()).unwrap();
/// request.extensions_mut().insert(Transport::new(client));
/// let response = Upstream::default().send_to_authority(request, &"app:80".parse().unwrap()).await.unwrap();
/// let millis: u64 = response.headers()[X_ENVOY_UPSTREAM_SERVICE_TIME].to_str().unwrap().parse().unwrap();
/// assert!(millis < 60_000);
/// # }
/// ```
pub const X_ENVOY_UPSTREAM_SERVICE_TIME: HeaderName =
    HeaderName::from_static("x-envoy-upstream-service-time");

/// How a request to an endpoint is being sent: through the application's client, or on the
/// mesh's own connections.
enum Sending<'a> {
    Transport(TransportFuture),
    Own(Pin<Box<dyn Future<Output = Result<Response<Incoming>, MeshError>> + Send + 'a>>),
}

#[cfg(all(test, feature = "tls"))]
mod tests {
    use super::*;
    use crate::tls::TlsIdentity;
    use mesh_route::config::{ClientTlsMode, ClientTlsSettings};
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn a_cluster_originating_tls_is_never_sent_by_the_applications_client() {
        let certified = rcgen::generate_simple_self_signed(vec!["catalog".to_string()]).unwrap();
        let (cert, key) = (certified.cert.pem(), certified.signing_key.serialize_pem());
        let identity =
            TlsIdentity::from_pem(cert.as_bytes(), key.as_bytes(), cert.as_bytes()).unwrap();
        let settings = ClientTlsSettings {
            mode: Some(ClientTlsMode::IstioMutual),
            ..ClientTlsSettings::default()
        };
        let tls = OutboundTls::new(&settings, "catalog", Some(80), None, Some(&identity))
            .unwrap()
            .map(Arc::new);
        // Nothing listens there: the mesh's TLS client fails to connect.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = closed.local_addr().unwrap();
        drop(closed);
        let endpoint = Arc::new(Endpoint::new(
            address.to_string().parse().unwrap(),
            Default::default(),
            Protocol::Http1,
        ));
        let used = Arc::new(AtomicBool::new(false));
        let send = |upstream: Upstream| {
            let (used, endpoint) = (used.clone(), endpoint.clone());
            async move {
                let client = tower::service_fn(move |_request: Request<Body>| {
                    used.store(true, Ordering::SeqCst);
                    async { Ok::<_, mesh_core::BoxError>(Response::new(mesh_core::body::empty())) }
                });
                let mut request = Request::get("http://catalog/").body(body::empty()).unwrap();
                request.extensions_mut().insert(Transport::new(client));
                upstream
                    .send_to_endpoint(&endpoint, request, &"catalog".parse().unwrap(), None)
                    .await
            }
        };
        // Plaintext clusters go over the application's client, ...
        assert!(send(Upstream::default()).await.is_ok());
        assert!(used.swap(false, Ordering::SeqCst));
        // ... a TLS cluster never: its request is the mesh's to encrypt.
        let error = send(Upstream::default().with_tls(tls)).await.unwrap_err();
        assert!(!used.load(Ordering::SeqCst));
        assert!(matches!(error, MeshError::ConnectFailure(_)), "{error:?}");
    }
}
