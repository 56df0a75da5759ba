//! [`Transport`]: an application's own HTTP client, used as the wire for one request.
//!
//! In the sidecar, [`Upstream`](crate::upstream::Upstream) sends on connections of its own. An
//! application that embeds the mesh keeps its client (a hyper-util client, a tonic channel's
//! connector, anything that is a `tower::Service` of HTTP requests): the client layer puts a
//! `Transport` in each request's extensions, and when the forwarder has chosen an endpoint the
//! request is pointed at it and sent through that client instead. Routing, retries, timeouts,
//! circuit breaking, outlier detection and load balancing stay the mesh's; only the bytes on the
//! wire are the client's, shadow (mirrored) copies included. The mesh's own extensions stay
//! in the mesh; the client gets the application's (those its request came with), on every
//! attempt ([`Transport::carrying`]). The request goes out as plain
//! `http://` to the endpoint; a cluster whose DestinationRule originates TLS is sent by the
//! mesh's own TLS client instead ([`Upstream`](crate::upstream::Upstream)), never in plaintext
//! through the application's.
//!
//! Errors are classified as the proxy classifies its own: a connect error (hyper-util's
//! `is_connect`, or a refused TCP connection) is a connect failure (retried on
//! `connect-failure`, flagged UF), an HTTP/2 `REFUSED_STREAM` is a refused stream, and anything
//! else is an upstream reset.

use bytes::Bytes;
use http::{Extensions, Request, Response};
use mesh_core::{Body, BoxError, MeshError, body};
use std::{
    error::Error as StdError,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};
use tower::{Service, ServiceExt};

type SendFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

/// Sends one request with a client of the application's.
trait SendRequest: Send + Sync + 'static {
    fn send(&self, request: Request<Body>) -> SendFuture;
}

/// A client service that sends requests to the URI they carry; see the [module docs](self).
struct ClientSender<S>(S);

impl<S, RB> SendRequest for ClientSender<S>
where
    S: Service<Request<Body>, Response = Response<RB>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    RB: http_body::Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    fn send(&self, request: Request<Body>) -> SendFuture {
        Box::pin(
            self.0
                .clone()
                .map_response(|response: Response<RB>| response.map(body::boxed_send))
                .map_err(|error: S::Error| -> BoxError { error.into() })
                .oneshot(request),
        )
    }
}

/// An application's HTTP client, carried in a request's extensions as the wire to send it on.
///
/// Cloning is cheap (a reference count).
///
/// ```
/// use hyper_util::{client::legacy::Client, rt::TokioExecutor};
/// use mesh_core::MeshError;
/// use mesh_proxy::transport::Transport;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let client = Client::builder(TokioExecutor::new()).build_http::<mesh_core::Body>();
/// let mut request = http::Request::get("http://catalog/").body(mesh_core::body::empty()).unwrap();
/// request.extensions_mut().insert(Transport::new(client));
///
/// // The forwarder finds the client there, points the request at the endpoint it chose and
/// // sends it through that client; the client's errors read as the proxy's own.
/// let transport = request.extensions().get::<Transport>().cloned().unwrap();
/// # let refusing = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
/// *request.uri_mut() = format!("http://{refusing}/").parse().unwrap(); // an endpoint that refuses
/// let error = transport.send(request).await.unwrap_err();
/// assert!(matches!(error, MeshError::ConnectFailure(_)), "{error}");
/// # }
/// ```
#[derive(Clone)]
pub struct Transport {
    client: Arc<dyn SendRequest>,
    /// The application's own extensions, for its client.
    extensions: Extensions,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Transport")
    }
}

impl Transport {
    /// Wraps `client`: a service that sends a request to the absolute URI it carries.
    ///
    /// ```
    /// use mesh_proxy::transport::Transport;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let client = tower::service_fn(|request: http::Request<mesh_core::Body>| async move {
    ///     Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::full(request.uri().to_string())))
    /// });
    /// let transport = Transport::new(client);
    /// let request = http::Request::get("http://10.0.0.7:8080/items").body(mesh_core::body::empty()).unwrap();
    /// let response = transport.send(request).await.unwrap();
    /// assert_eq!(response.status(), 200);
    /// # }
    /// ```
    pub fn new<S, RB>(client: S) -> Self
    where
        S: Service<Request<Body>, Response = Response<RB>> + Clone + Send + Sync + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
        RB: http_body::Body<Data = Bytes> + Send + 'static,
        RB::Error: Into<BoxError>,
    {
        Transport {
            client: Arc::new(ClientSender(client)),
            extensions: Extensions::new(),
        }
    }

    /// This client, sending every request with (a clone of) `extensions` added: those of the
    /// application's request, which the mesh's layers saw and its own client gets with each
    /// attempt.
    ///
    /// ```
    /// use mesh_proxy::transport::Transport;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let client = tower::service_fn(|request: http::Request<mesh_core::Body>| async move {
    ///     let tenant = request.extensions().get::<&str>().copied().unwrap_or("none");
    ///     Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::full(tenant)))
    /// });
    /// let mut extensions = http::Extensions::new();
    /// extensions.insert("acme");
    /// let transport = Transport::new(client).carrying(extensions);
    /// for _attempt in 0..2 {
    ///     let request = http::Request::get("http://10.0.0.7:8080/").body(mesh_core::body::empty()).unwrap();
    ///     let body = transport.send(request).await.unwrap().into_body();
    ///     assert_eq!(http_body_util::BodyExt::collect(body).await.unwrap().to_bytes(), "acme");
    /// }
    /// # }
    /// ```
    pub fn carrying(mut self, extensions: Extensions) -> Self {
        self.extensions = extensions;
        self
    }

    /// Sends `request` (its URI already pointed at the endpoint), classifying failures.
    ///
    /// A refused connection is a connect failure, as the proxy's own are:
    ///
    /// ```
    /// use mesh_core::MeshError;
    /// use mesh_proxy::transport::Transport;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let client = tower::service_fn(|_request: http::Request<mesh_core::Body>| async {
    ///     Err::<http::Response<mesh_core::Body>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    /// });
    /// let request = http::Request::get("http://10.0.0.7:8080/").body(mesh_core::body::empty()).unwrap();
    /// let error = Transport::new(client).send(request).await.unwrap_err();
    /// assert!(matches!(error, MeshError::ConnectFailure(_)), "{error}");
    /// # }
    /// ```
    pub fn send(&self, mut request: Request<Body>) -> TransportFuture {
        if !self.extensions.is_empty() {
            request.extensions_mut().extend(self.extensions.clone());
        }
        TransportFuture(self.client.send(request))
    }
}

/// The future of [`Transport::send`]: the client's own (boxed once), its error classified.
/// It holds nothing else, so that the futures of the forwarder, which await it, stay small.
///
/// ```
/// use mesh_proxy::transport::{Transport, TransportFuture};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let client = tower::service_fn(|_request: http::Request<mesh_core::Body>| async {
///     Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::empty()))
/// });
/// let request = http::Request::get("http://10.0.0.7:8080/").body(mesh_core::body::empty()).unwrap();
/// let sending: TransportFuture = Transport::new(client).send(request);
/// assert_eq!(size_of_val(&sending), 16, "one boxed future");
/// assert_eq!(sending.await.unwrap().status(), 200);
/// # }
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct TransportFuture(SendFuture);

impl fmt::Debug for TransportFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TransportFuture")
    }
}

impl Future for TransportFuture {
    type Output = Result<Response<Body>, MeshError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx).map_err(classify)
    }
}

/// The proxy's reading of a client's error: connect failure, refused stream or reset.
fn classify(error: BoxError) -> MeshError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(error.as_ref());
    while let Some(e) = source {
        if e.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(|e| e.is_connect())
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return MeshError::ConnectFailure(error);
        }
        source = e.source();
    }
    if refused_stream_in_chain(error.as_ref()) {
        MeshError::RefusedStream(error)
    } else {
        MeshError::UpstreamReset(error)
    }
}

/// Whether an HTTP/2 `REFUSED_STREAM` is among `error`'s causes (the upstream did not process
/// the request, so it is safe to retry).
pub(crate) fn refused_stream_in_chain(error: &(dyn StdError + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<h2::Error>()
            .is_some_and(|h2| h2.reason() == Some(h2::Reason::REFUSED_STREAM))
        {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_errors_are_connect_failures_and_others_resets() {
        let refused: BoxError =
            Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(classify(refused), MeshError::ConnectFailure(_)));
        let h2: BoxError = Box::new(h2::Error::from(h2::Reason::REFUSED_STREAM));
        assert!(matches!(classify(h2), MeshError::RefusedStream(_)));
        let other: BoxError = "connection reset".into();
        assert!(matches!(classify(other), MeshError::UpstreamReset(_)));
    }

    #[tokio::test]
    async fn a_client_that_cannot_connect_fails_with_a_connect_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Body>();
        let request = Request::get(format!("http://{addr}/"))
            .body(body::empty())
            .unwrap();
        let error = Transport::new(client).send(request).await.unwrap_err();
        assert!(matches!(error, MeshError::ConnectFailure(_)), "{error:?}");
    }
}
