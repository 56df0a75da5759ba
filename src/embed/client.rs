//! [`ClientLayer`]: the outbound stack around an application's HTTP client.

use super::Mesh;
use bytes::Bytes;
use http::{
    HeaderValue, Request, Response,
    header::HOST,
    uri::{Authority, Scheme},
};
use mesh_core::local_reply::LocalReplyFuture;
use mesh_core::{Body, BoxError, body_count::count_streamed_into_body};
use mesh_proxy::{transport::Transport, upstream::absolute_uri};
use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};
use tower::{Layer, Service};

/// Wraps an HTTP client (anything that is a `tower::Service` sending a request to the absolute
/// URI it carries: hyper-util's legacy client, a client with TLS, a test double) so every
/// request goes through the mesh's outbound stack to the host the layer was made for.
///
/// The request's own scheme and authority are replaced by that host (its path and query are kept),
/// so routing sees what a sidecar would: `Host: catalog`. When routing has chosen a cluster and the
/// load balancer an endpoint, the request is pointed at that endpoint and sent through the wrapped
/// client; retries go through it again, to another endpoint where there is one; shadow (mirrored)
/// copies go through it too. It gets the request's own extensions (those the application set) with
/// every attempt, and none of the mesh's. Requests are addressed `http://` (plaintext) to the
/// endpoint; a cluster whose DestinationRule originates TLS (`ISTIO_MUTUAL`, `SIMPLE`, `MUTUAL`) is
/// sent by the mesh's own TLS client instead, never in plaintext through this one. Responses and
/// errors are the sidecar's: a failure is the local reply a sidecar would send (`503` with `UO`,
/// `504` with `UT`, …), so the service never returns an error.
///
/// ```
/// use hyper_util::{client::legacy::Client, rt::TokioExecutor};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// // The demo's catalog service on a loopback port, and the configuration that names it.
/// let v1 = mesh::demo::CatalogServer::start("v1", "127.0.0.1:0".parse()?).await?;
/// let yaml = format!(r#"
/// apiVersion: networking.istio.io/v1
/// kind: ServiceEntry
/// metadata: {{name: catalog}}
/// spec:
///   hosts: [catalog]
///   resolution: STATIC
///   ports: [{{number: 80, name: http}}]
///   endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]
/// "#, port = v1.addr().port());
/// let mesh = mesh::Mesh::builder().yaml(yaml).access_log(false).build()?;
/// let http = Client::builder(TokioExecutor::new()).build_http::<mesh::core::Body>();
/// let catalog = ServiceBuilder::new()
///     .layer(mesh.client_layer("catalog")?)
///     .service(http);
/// let request = http::Request::get("/items").body(http_body_util::Empty::<bytes::Bytes>::new())?;
/// let response = catalog.oneshot(request).await?;
/// assert_eq!(response.status(), 200);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ClientLayer {
    mesh: Mesh,
    authority: Authority,
    host: HeaderValue,
}

impl ClientLayer {
    pub(crate) fn new(mesh: Mesh, authority: Authority) -> Self {
        // Static, so that copying it per request counts no shared reference.
        let name = super::host_names::kept(authority.as_str());
        let authority = Authority::from_static(name);
        // An authority's characters are all visible ASCII, as a header value's must be.
        let host = HeaderValue::from_static(name);
        ClientLayer {
            mesh,
            authority,
            host,
        }
    }
}

impl<S, RB> Layer<S> for ClientLayer
where
    S: Service<Request<Body>, Response = Response<RB>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    RB: http_body::Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Service = MeshClient;

    fn layer(&self, client: S) -> MeshClient {
        MeshClient(Arc::new(ClientParts {
            layer: self.clone(),
            transport: Transport::new(client),
        }))
    }
}

/// A client wrapped by a [`ClientLayer`]: a `tower::Service` of HTTP requests with any body,
/// answering with [`Body`](mesh_core::Body) responses and never an error (failures are local
/// replies). Cloning is cheap.
///
/// ```
/// use tower::{Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), mesh::Error> {
/// // No ServiceEntry knows `catalog` and REGISTRY_ONLY forbids the rest: 502 NR.
/// let mesh = mesh::Mesh::builder()
///     .yaml(r#"
/// apiVersion: mesh/v1
/// kind: MeshConfig
/// metadata: {name: mesh}
/// spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}}
/// "#)
///     .access_log(false)
///     .build()?;
/// let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
///     .build_http::<mesh::core::Body>();
/// let client: mesh::MeshClient = mesh.client_layer("catalog")?.layer(http);
/// let request = http::Request::get("/").body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap();
/// let response = client.oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 502);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct MeshClient(Arc<ClientParts>);

/// What a [`MeshClient`] is made of, behind one reference count: a tower client is cloned for
/// each request it sends, and each of these parts would cost a count of its own.
#[derive(Debug)]
struct ClientParts {
    layer: ClientLayer,
    transport: Transport,
}

/// The future of a [`MeshClient`] or [`MeshServer`](crate::MeshServer) call: never an error,
/// since failures are the local replies (`503`, `504`, …) the sidecar would send.
///
/// ```
/// use tower::{Layer, Service, ServiceExt};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), mesh::core::BoxError> {
/// let mesh = mesh::Mesh::builder()
///     .yaml("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\nspec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n")
///     .access_log(false)
///     .build()?;
/// let refusing = tower::service_fn(|_req: http::Request<mesh::core::Body>| async {
///     Err::<http::Response<mesh::core::Body>, _>(mesh::core::MeshError::ConnectFailure("refused".into()))
/// });
/// let mut client = mesh.client_layer("catalog")?.layer(refusing);
/// let ready = ServiceExt::<http::Request<mesh::core::Body>>::ready(&mut client).await?;
/// let future: mesh::ResponseFuture = ready.call(http::Request::new(mesh::core::body::empty()));
/// let response = future.await.unwrap(); // never an error: a local reply
/// assert_eq!(response.status(), 503);
/// # Ok(()) }
/// ```
pub type ResponseFuture =
    LocalReplyFuture<Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>>;

impl<B> Service<Request<B>> for MeshClient
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The outbound stack is always ready: limits answer with local replies, not
        // backpressure.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ResponseFuture {
        let client = &*self.0;
        let (mut parts, body) = request.into_parts();
        // The request's own URI is taken apart, not copied: only its path is kept.
        let uri = std::mem::take(&mut parts.uri);
        parts.uri = absolute_uri(uri, Scheme::HTTP, client.layer.authority.clone())
            .expect("scheme, authority and path make a URI");
        // Room for what the stack adds, as the sidecar's listener makes it: one growth of the
        // header map, not one per layer.
        parts
            .headers
            .reserve(1 + mesh_proxy::listener::ADDED_HEADERS);
        parts.headers.insert(HOST, client.layer.host.clone());
        // The application's own extensions stay for the mesh's layers, and go with each
        // attempt to its client, which gets none of the mesh's.
        let transport = match parts.extensions.is_empty() {
            // A map an earlier request left, its storage grown for what the mesh adds.
            true => {
                parts.extensions = mesh_core::spare_extensions::take();
                client.transport.clone()
            }
            false => client.transport.clone().carrying(parts.extensions.clone()),
        };
        parts.extensions.insert(transport);
        let request = count_streamed_into_body(Request::from_parts(parts, body));
        // The stack of the configuration in force now (this thread's copy of it, kept by that
        // configuration): a client kept idle across a swap holds none of the old one's
        // resources (its access log, say).
        LocalReplyFuture::new(client.layer.mesh.current().outbound().call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_for_one_host_share_its_name_so_requests_copy_no_counted_reference() {
        let mesh = Mesh::builder().access_log(false).build().unwrap();
        let layer = |host: &str| ClientLayer::new(mesh.clone(), host.parse().unwrap());
        let (a, b) = (layer("catalog:8080"), layer("catalog:8080"));
        assert_eq!(a.authority, "catalog:8080");
        assert_eq!(a.host, "catalog:8080");
        let name = a.authority.as_str().as_ptr();
        assert_eq!(b.authority.as_str().as_ptr(), name, "one kept name");
        assert_eq!(a.host.as_bytes().as_ptr(), name, "the Host header's too");
    }
}
