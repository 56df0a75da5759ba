//! The in-process server: an axum application behind the mesh's server layer, with its Istio
//! metrics on a `/metrics` route. `cargo run --example server`
//!
//! The server layer continues the caller's trace (a new span id in the same trace), records
//! `istio_requests_total` and the other Istio metrics with `reporter="destination"`, and writes
//! the server access log, as a sidecar's inbound side would — with no sidecar.

use axum::{Router, ServiceExt, extract::Request, routing::get};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use mesh::{Mesh, core::BoxError};
use std::net::SocketAddr;
use tower::ServiceBuilder;

/// The trace context the example's caller sends.
pub const CALLER_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The application: `/items` answers with the `traceparent` it was handed, `/metrics` with the
/// mesh's Prometheus text.
pub fn app(mesh: Mesh) -> Router {
    Router::new()
        .route(
            "/items",
            get(|request: Request| async move {
                let traceparent = request.headers().get("traceparent").cloned();
                traceparent
                    .and_then(|v| v.to_str().ok().map(str::to_owned))
                    .unwrap_or_default()
            }),
        )
        .route(
            "/metrics",
            get(move || async move { mesh.render_prometheus().unwrap_or_default() }),
        )
}

/// Serves the application behind the mesh's server layer on `addr`; returns the bound address.
pub async fn serve(mesh: Mesh, addr: SocketAddr) -> Result<SocketAddr, BoxError> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let service = ServiceBuilder::new()
        // axum serves its own body type.
        .map_response(|response: http::Response<mesh::core::Body>| {
            response.map(axum::body::Body::new)
        })
        // Told its port, the layer logs requests in Istio's `inbound|PORT||` cluster.
        .layer(mesh.server_layer().port(bound.port()))
        .service(app(mesh.clone()));
    tokio::spawn(async move {
        axum::serve(listener, ServiceExt::<Request>::into_make_service(service)).await
    });
    Ok(bound)
}

/// What the example saw.
#[derive(Debug)]
pub struct Report {
    /// The `traceparent` the application was handed for the caller's request.
    pub traceparent: String,
    /// What `/metrics` served after that request.
    pub metrics: String,
}

/// Runs the example: serves on a free port, calls `/items` with a trace context, reads
/// `/metrics`.
pub async fn run() -> Result<Report, BoxError> {
    let mesh = Mesh::builder().build()?;
    let addr = serve(mesh, "127.0.0.1:0".parse()?).await?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let get = async |path: &str| -> Result<String, BoxError> {
        let request = http::Request::get(format!("http://{addr}{path}"))
            .header("traceparent", CALLER_TRACEPARENT)
            .body(Empty::new())?;
        let body = client.request(request).await?.into_body().collect().await?;
        Ok(String::from_utf8(body.to_bytes().to_vec())?)
    };
    let traceparent = get("/items").await?;
    let metrics = get("/metrics").await?;
    Ok(Report {
        traceparent,
        metrics,
    })
}

#[allow(dead_code)] // The tests share `run` and leave `main` out.
#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let report = run().await?;
    println!("caller's traceparent:      {CALLER_TRACEPARENT}");
    println!("application was handed:    {}", report.traceparent);
    println!("\n/metrics:");
    for line in report.metrics.lines() {
        if line.starts_with("istio_requests_total") {
            println!("{line}");
        }
    }
    Ok(())
}
