//! [`ServerLayer`]: the inbound stack in front of an application's own service.

use super::Mesh;
use bytes::Bytes;
use http::{Request, Response};
use mesh_core::{
    Body, BoxError, UpstreamCluster, body, body_count::count_streamed_into_body,
    error::UpstreamTarget, local_reply::LocalReplyFuture,
};
use mesh_proxy::listener::HttpService;
use std::{
    convert::Infallible,
    task::{Context, Poll},
};
use tower::{Layer, Service, ServiceExt};

use super::client::ResponseFuture;

/// Puts the mesh's inbound stack in front of a service (an axum `Router`, a tonic server, any
/// `tower::Service` of HTTP requests): trace context is extracted and continued, Istio metrics
/// are recorded with `reporter="destination"`, the server access log is written, and `SERVER`
/// spans are exported when a collector is configured — as the sidecar does on its inbound side.
///
/// ```
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), mesh::core::BoxError> {
/// let mesh = mesh::Mesh::builder().access_log(false).build()?;
/// let app = tower::service_fn(|_request: http::Request<mesh::core::Body>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(mesh::core::body::full("hello")))
/// });
/// let server = ServiceBuilder::new().layer(mesh.server_layer()).service(app);
/// let request = http::Request::new(http_body_util::Empty::<bytes::Bytes>::new());
/// let response = server.oneshot(request).await?;
/// assert_eq!(response.status(), 200);
/// // The request is counted when its response has been read to the end.
/// http_body_util::BodyExt::collect(response.into_body()).await?;
/// assert!(mesh.render_prometheus().unwrap().contains("reporter=\"destination\""));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ServerLayer {
    mesh: Mesh,
    /// The cluster the application's responses are served in, once told its port.
    served: Option<UpstreamCluster>,
}

impl ServerLayer {
    pub(crate) fn new(mesh: Mesh) -> Self {
        ServerLayer { mesh, served: None }
    }

    /// The port the application serves on: its responses are then reported in Istio's inbound
    /// cluster for that port, `inbound|PORT||`, as a sidecar in front of it reports them (the
    /// access log's `upstream_cluster`). Without it they name no cluster, since the layer
    /// cannot tell which listener a request came in on. A response that names its own cluster
    /// (an [`UpstreamCluster`] or `UpstreamTarget` extension) keeps it; the service's errors
    /// (their local replies) name none.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), mesh::core::BoxError> {
    /// let mesh = mesh::Mesh::builder().access_log(false).build()?;
    /// let app = tower::service_fn(|_request: http::Request<mesh::core::Body>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(mesh::core::body::empty()))
    /// });
    /// let server = mesh.server_layer().port(8080).layer(app);
    /// let response = server.oneshot(http::Request::new(mesh::core::body::empty())).await?;
    /// let served = mesh::core::error::UpstreamTarget::of_response(response.extensions());
    /// assert_eq!(&*served.cluster.unwrap().0, "inbound|8080||");
    /// # Ok(()) }
    /// ```
    pub fn port(mut self, port: u16) -> Self {
        self.served = Some(UpstreamCluster::inbound(port.into()));
        self
    }
}

impl<S> Layer<S> for ServerLayer {
    type Service = MeshServer<S>;

    fn layer(&self, inner: S) -> MeshServer<S> {
        MeshServer {
            mesh: self.mesh.clone(),
            inner,
            served: self.served.clone(),
            stack: None,
            unready: None,
        }
    }
}

/// A service wrapped by a [`ServerLayer`]: it accepts requests with any body, answers with
/// [`Body`](mesh_core::Body) responses and never an error (the service's errors become the
/// local replies a sidecar would send). Each clone keeps the inbound stack it built, and
/// rebuilds it after a [`Mesh::swap`](crate::Mesh::swap).
///
/// ```
/// use tower::{Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), mesh::Error> {
/// let mesh = mesh::Mesh::builder().access_log(false).build()?;
/// let failing = tower::service_fn(|_request: http::Request<mesh::core::Body>| async {
///     Err::<http::Response<mesh::core::Body>, _>(std::io::Error::other("connection reset"))
/// });
/// let server: mesh::MeshServer<_> = mesh.server_layer().layer(failing);
/// let response = server.oneshot(http::Request::new(mesh::core::body::empty())).await.unwrap();
/// assert_eq!(response.status(), 503);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MeshServer<S> {
    mesh: Mesh,
    inner: S,
    /// The cluster `inner`'s responses are served in ([`ServerLayer::port`]).
    served: Option<UpstreamCluster>,
    /// The inbound stack around `inner`, and the configuration version it was built for.
    stack: Option<(u64, HttpService)>,
    /// Why the stack last failed to become ready, answered to the next call.
    unready: Option<BoxError>,
}

impl<S: Clone> Clone for MeshServer<S> {
    fn clone(&self) -> Self {
        MeshServer {
            mesh: self.mesh.clone(),
            inner: self.inner.clone(),
            served: self.served.clone(),
            stack: self.stack.clone(),
            // A clone has not been polled: it learns its readiness itself.
            unready: None,
        }
    }
}

impl<S, B, RB> Service<Request<B>> for MeshServer<S>
where
    S: Service<Request<Body>, Response = Response<RB>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    RB: http_body::Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // A service that fails to become ready must not be called: the next call gets the
        // local reply for its error, and the stack is built anew for the call after.
        if self.unready.is_none()
            && let Err(error) = std::task::ready!(self.current_stack().poll_ready(cx))
        {
            self.stack = None;
            self.unready = Some(error);
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ResponseFuture {
        if let Some(error) = self.unready.take() {
            return LocalReplyFuture::new(Box::pin(std::future::ready(Err(error))));
        }
        let stack = match self.stack {
            Some((_, ref mut stack)) => stack,
            // Called without `poll_ready`.
            None => self.current_stack(),
        };
        LocalReplyFuture::new(stack.call(count_streamed_into_body(request)))
    }
}

impl<S, RB> MeshServer<S>
where
    S: Service<Request<Body>, Response = Response<RB>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    RB: http_body::Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    /// The inbound stack of the configuration in force, rebuilt around `inner` after a swap.
    fn current_stack(&mut self) -> &mut HttpService {
        let sidecar = self.mesh.current();
        let current = match self.stack.take() {
            Some((version, stack)) if version == sidecar.version() => (version, stack),
            _ => {
                let served = self.served.clone();
                let inner = self
                    .inner
                    .clone()
                    .map_response(move |response: Response<RB>| {
                        let mut response = response.map(body::boxed_send);
                        let extensions = response.extensions_mut();
                        if let Some(served) = &served
                            && UpstreamTarget::of_response(extensions).cluster.is_none()
                        {
                            extensions.insert(served.clone());
                        }
                        response
                    });
                let layers = sidecar.server_layers();
                let stack = match sidecar.authorizer() {
                    // AuthorizationPolicies hold in-process too (without mutual TLS, rules on
                    // principals and namespaces never match a caller).
                    Some(authorizer) => layers.layer(
                        mesh_proxy::authorization::AuthorizationLayer::shared(authorizer.clone())
                            .layer(inner),
                    ),
                    None => layers.layer(inner),
                };
                (sidecar.version(), stack)
            }
        };
        &mut self.stack.insert(current).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_response_that_names_its_own_cluster_keeps_it() {
        let mesh = Mesh::builder().access_log(false).build().unwrap();
        let own = UpstreamCluster("outbound|80||elsewhere".into());
        let named = own.clone();
        let app = tower::service_fn(move |_request: Request<Body>| {
            let mut response = Response::new(body::empty());
            response.extensions_mut().insert(named.clone());
            std::future::ready(Ok::<_, Infallible>(response))
        });
        let server = mesh.server_layer().port(8080).layer(app);
        let response = server.oneshot(Request::new(body::empty())).await.unwrap();
        let served = UpstreamTarget::of_response(response.extensions());
        assert_eq!(served.cluster, Some(&own));
    }
}
