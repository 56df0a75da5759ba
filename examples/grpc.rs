//! gRPC in-process: a tonic client and a tonic server, both wrapped by the mesh.
//! `cargo run --example grpc`
//!
//! The server (tonic services behind the mesh's server layer) answers the unary
//! `catalog.Catalog/GetItem`, which fails with `UNAVAILABLE` when told to, answers `NOT_FOUND`
//! for an unknown item (a trailers-only response: the status in its headers) and reports the
//! `grpc-timeout` it was handed; and the server-streaming `catalog.Catalog/ListItems`, which
//! streams the items asked for and ends with `NOT_FOUND` at the first unknown one (a status in
//! trailers, after a message, on an HTTP 200). The client (tonic over a hyper-util HTTP/2
//! client wrapped in the mesh's client layer) calls it through a route with
//! `retryOn: unavailable` and a 2 s timeout, so:
//! - an `UNAVAILABLE` answer is retried and the caller sees `OK`;
//! - the caller's deadline reaches the server as `grpc-timeout`: a 10 s one capped at the
//!   route's 2 s, a 500 ms one as it is;
//! - `istio_requests_total` counts both `NOT_FOUND` calls, trailers-only and in trailers, with
//!   `grpc_response_status="5"`, and the calls that succeeded (their `OK` in trailers) with
//!   `grpc_response_status="0"`.
//!
//! The messages are protobuf (prost), written by hand rather than generated, so the example
//! needs no `protoc`.

use axum::Router;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use mesh::{Mesh, core::BoxError};
use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};
use tonic::{Code, Status};
use tonic_prost::ProstCodec;
use tower::ServiceBuilder;

/// `catalog.ItemRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ItemRequest {
    /// The item asked for.
    #[prost(int32, tag = "1")]
    pub id: i32,
}

/// `catalog.ItemReply`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ItemReply {
    /// The item's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The `grpc-timeout` the server was handed.
    #[prost(string, tag = "2")]
    pub grpc_timeout: String,
}

/// `catalog.ItemsRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ItemsRequest {
    /// The items asked for, in order.
    #[prost(int32, repeated, tag = "1")]
    pub ids: Vec<i32>,
}

/// The unary method's path.
pub const GET_ITEM: &str = "/catalog.Catalog/GetItem";
/// The server-streaming method's path.
pub const LIST_ITEMS: &str = "/catalog.Catalog/ListItems";

/// The server's state: how many of the next calls fail with `UNAVAILABLE`, and calls seen.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    fail_next: Arc<AtomicU32>,
    calls: Arc<AtomicU32>,
}

impl Catalog {
    /// Makes the next `n` calls fail with `UNAVAILABLE`.
    pub fn fail_next(&self, n: u32) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// Calls received.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    fn get_item(&self, request: tonic::Request<ItemRequest>) -> Result<ItemReply, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(Status::unavailable("warming up"));
        }
        let grpc_timeout = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        Catalog::item(request.into_inner().id, grpc_timeout)
    }

    /// The item `id`, or `NOT_FOUND`.
    fn item(id: i32, grpc_timeout: String) -> Result<ItemReply, Status> {
        match id {
            1 => Ok(ItemReply {
                name: "amethyst".into(),
                grpc_timeout,
            }),
            _ => Err(Status::not_found("no such item")),
        }
    }
}

/// The unary method, as tonic's generated server code would write it.
impl tonic::server::UnaryService<ItemRequest> for Catalog {
    type Response = ItemReply;
    type Future = std::future::Ready<Result<tonic::Response<ItemReply>, Status>>;

    fn call(&mut self, request: tonic::Request<ItemRequest>) -> Self::Future {
        std::future::ready(self.get_item(request).map(tonic::Response::new))
    }
}

/// The server-streaming method, as tonic's generated server code would write it: each item
/// asked for, up to the first unknown one, which ends the stream with `NOT_FOUND`.
#[derive(Clone, Copy, Debug)]
struct ListItems;

impl tonic::server::ServerStreamingService<ItemsRequest> for ListItems {
    type Response = ItemReply;
    type ResponseStream = tokio_stream::Iter<std::vec::IntoIter<Result<ItemReply, Status>>>;
    type Future = std::future::Ready<Result<tonic::Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: tonic::Request<ItemsRequest>) -> Self::Future {
        let mut items = Vec::new();
        for id in request.into_inner().ids {
            let item = Catalog::item(id, String::new());
            let last = item.is_err();
            items.push(item);
            if last {
                break;
            }
        }
        let stream = tokio_stream::iter(items);
        std::future::ready(Ok(tonic::Response::new(stream)))
    }
}

/// Serves `catalog` over HTTP/2 behind the mesh's server layer; returns the bound address.
pub async fn serve(mesh: &Mesh, catalog: Catalog) -> Result<SocketAddr, BoxError> {
    let get_item = tower::service_fn(move |request: http::Request<axum::body::Body>| {
        let catalog = catalog.clone();
        async move {
            let mut grpc =
                tonic::server::Grpc::new(ProstCodec::<ItemReply, ItemRequest>::default());
            Ok::<_, Infallible>(grpc.unary(catalog, request).await)
        }
    });
    let list_items = tower::service_fn(|request: http::Request<axum::body::Body>| async move {
        let mut grpc = tonic::server::Grpc::new(ProstCodec::<ItemReply, ItemsRequest>::default());
        Ok::<_, Infallible>(grpc.server_streaming(ListItems, request).await)
    });
    let routes = Router::new()
        .route_service(GET_ITEM, get_item)
        .route_service(LIST_ITEMS, list_items);
    let service = ServiceBuilder::new()
        .map_response(|response: http::Response<mesh::core::Body>| {
            response.map(axum::body::Body::new)
        })
        .layer(mesh.server_layer())
        .service(routes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let make = axum::ServiceExt::<http::Request<axum::body::Body>>::into_make_service(service);
    tokio::spawn(async move { axum::serve(listener, make).await });
    Ok(addr)
}

/// The client side's configuration: `catalog`'s gRPC port at `addr`, retried on
/// `unavailable`, with a 2 s timeout.
pub fn client_config(addr: SocketAddr) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: catalog, namespace: istioinaction}}
spec:
  hosts: [catalog]
  resolution: STATIC
  ports: [{{number: 9090, name: grpc, protocol: GRPC}}]
  endpoints: [{{address: {ip}, ports: {{grpc: {port}}}, labels: {{app: catalog, version: v1}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: catalog, namespace: istioinaction}}
spec:
  hosts: [catalog]
  http:
  - route: [{{destination: {{host: catalog, port: {{number: 9090}}}}}}]
    timeout: 2s
    retries: {{attempts: 2, retryOn: unavailable}}
"#,
        ip = addr.ip(),
        port = addr.port()
    )
}

/// What the example saw.
#[derive(Debug)]
pub struct Report {
    /// What the client's calls came to.
    pub calls: Calls,
    /// The client side's Prometheus text.
    pub client_metrics: String,
    /// The server side's Prometheus text.
    pub server_metrics: String,
}

/// What the example's calls came to (see [`make_the_calls`]).
#[derive(Debug, PartialEq)]
pub struct Calls {
    /// Status of the call whose first attempt failed with `UNAVAILABLE`.
    pub retried: Code,
    /// Attempts the server received for it.
    pub retried_attempts: u32,
    /// The `grpc-timeout` the server was handed for a call with a 10 s deadline.
    pub grpc_timeout: String,
    /// The `grpc-timeout` the server was handed for a call with a 500 ms deadline.
    pub grpc_timeout_within_route: String,
    /// Status of a call for an unknown item.
    pub not_found: Code,
    /// Items streamed for a list of a known then an unknown item, and the stream's status.
    pub listed: (usize, Code),
}

/// Runs the example.
pub async fn run() -> Result<Report, BoxError> {
    let catalog = Catalog::default();
    let server_mesh = Mesh::builder().access_log(false).build()?;
    let addr = serve(&server_mesh, catalog.clone()).await?;

    let client_mesh = Mesh::builder()
        .yaml(client_config(addr))
        .access_log(false)
        .build()?;
    let channel = in_process_channel(&client_mesh)?;
    let calls = make_the_calls(&mut tonic::client::Grpc::new(channel), &catalog).await;
    Ok(Report {
        calls,
        client_metrics: client_mesh.render_prometheus().unwrap_or_default(),
        server_metrics: server_mesh.render_prometheus().unwrap_or_default(),
    })
}

/// The client's channel to `catalog:9090`: a hyper-util HTTP/2 client in `mesh`'s client layer.
pub fn in_process_channel(mesh: &Mesh) -> Result<mesh::MeshClient, mesh::Error> {
    let http2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<mesh::core::Body>();
    Ok(ServiceBuilder::new()
        .layer(mesh.client_layer("catalog:9090")?)
        .service(http2))
}

/// A channel tonic's client can call through: the mesh's client layer over an HTTP/2 client,
/// or a connection to the sidecar.
pub trait Channel:
    tonic::client::GrpcService<
        tonic::body::Body,
        Error: Into<BoxError>,
        ResponseBody: http_body::Body<Data = bytes::Bytes, Error: Into<BoxError> + Send>
                          + Send
                          + 'static,
    >
{
}

impl<S> Channel for S where
    S: tonic::client::GrpcService<
            tonic::body::Body,
            Error: Into<BoxError>,
            ResponseBody: http_body::Body<Data = bytes::Bytes, Error: Into<BoxError> + Send>
                              + Send
                              + 'static,
        >
{
}

/// The example's calls, through `grpc` to the server of `catalog`: `GetItem` failing once with
/// `UNAVAILABLE`, with a 10 s and a 500 ms deadline, and for an unknown item; `ListItems` of a
/// known then an unknown item.
pub async fn make_the_calls<S: Channel>(
    grpc: &mut tonic::client::Grpc<S>,
    catalog: &Catalog,
) -> Calls {
    catalog.fail_next(1);
    let before = catalog.calls();
    let retried = get_item(grpc, 1, None).await;
    let retried_attempts = catalog.calls() - before;
    let handed_timeout = async |grpc: &mut tonic::client::Grpc<S>, deadline| {
        get_item(grpc, 1, Some(deadline))
            .await
            .map(|reply| reply.grpc_timeout)
            .unwrap_or_default()
    };
    let grpc_timeout = handed_timeout(grpc, Duration::from_secs(10)).await;
    let grpc_timeout_within_route = handed_timeout(grpc, Duration::from_millis(500)).await;
    let not_found = get_item(grpc, 7, None).await;
    let listed = list_items(grpc, vec![1, 7]).await;
    Calls {
        retried: retried.map_or_else(|status| status.code(), |_| Code::Ok),
        retried_attempts,
        grpc_timeout,
        grpc_timeout_within_route,
        not_found: not_found.map_or_else(|status| status.code(), |_| Code::Ok),
        listed,
    }
}

/// Calls `GetItem` for `id`, with `deadline` if there is one.
async fn get_item<S: Channel>(
    grpc: &mut tonic::client::Grpc<S>,
    id: i32,
    deadline: Option<Duration>,
) -> Result<ItemReply, Status> {
    let mut request = tonic::Request::new(ItemRequest { id });
    if let Some(deadline) = deadline {
        request.set_timeout(deadline);
    }
    grpc.ready()
        .await
        .map_err(|error| Status::unknown(error.into().to_string()))?;
    let codec = ProstCodec::<ItemRequest, ItemReply>::default();
    let path = http::uri::PathAndQuery::from_static(GET_ITEM);
    grpc.unary(request, path, codec)
        .await
        .map(tonic::Response::into_inner)
}

/// Calls `ListItems` for `ids` and reads the stream to its end: the items received, and the
/// status it ended with.
async fn list_items<S: Channel>(grpc: &mut tonic::client::Grpc<S>, ids: Vec<i32>) -> (usize, Code) {
    if let Err(error) = grpc.ready().await {
        return (0, Status::unknown(error.into().to_string()).code());
    }
    let codec = ProstCodec::<ItemsRequest, ItemReply>::default();
    let path = http::uri::PathAndQuery::from_static(LIST_ITEMS);
    let request = tonic::Request::new(ItemsRequest { ids });
    let mut stream = match grpc.server_streaming(request, path, codec).await {
        Ok(response) => response.into_inner(),
        Err(status) => return (0, status.code()),
    };
    let mut received = 0;
    loop {
        match stream.message().await {
            Ok(Some(_)) => received += 1,
            Ok(None) => return (received, Code::Ok),
            Err(status) => return (received, status.code()),
        }
    }
}

#[allow(dead_code)] // The tests share `run` and leave `main` out.
#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let report = run().await?;
    let calls = &report.calls;
    println!(
        "UNAVAILABLE once, retried: {:?} after {} attempts",
        calls.retried, calls.retried_attempts
    );
    println!(
        "10 s deadline reached the server as grpc-timeout {}, 500 ms as {}",
        calls.grpc_timeout, calls.grpc_timeout_within_route
    );
    println!("unknown item: {:?}", calls.not_found);
    println!(
        "list of a known and an unknown item: {} streamed, then {:?}",
        calls.listed.0, calls.listed.1
    );
    for (side, text) in [
        ("client", &report.client_metrics),
        ("server", &report.server_metrics),
    ] {
        println!("\n{side} istio_requests_total:");
        for line in text.lines() {
            if line.starts_with("istio_requests_total") {
                println!("{line}");
            }
        }
    }
    Ok(())
}
