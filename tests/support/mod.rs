//! Shared helpers for the end-to-end tests: catalog upstreams plus a sidecar built from the
//! shipped example configs, all on free loopback ports.

#![allow(dead_code)]

pub mod log_file;
pub mod metrics;

use mesh::demo::{CatalogServer, point_registry};
use mesh::proxy::{RunningSidecar, Sidecar, SidecarOptions, sidecar::SidecarSettings};
use mesh::route::config::Config;
use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

/// `examples/mesh/…` in this checkout.
pub fn example(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/mesh")
        .join(path)
}

/// Every listener on a free loopback port.
pub fn ephemeral() -> SidecarOptions {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    SidecarOptions {
        outbound: any,
        inbound: any,
        admin: any,
        prometheus: None,
        gateway_listen: Vec::new(),
    }
}

/// Sidecar settings for tests: no access log on the test's standard output.
pub fn quiet() -> SidecarSettings {
    SidecarSettings {
        disable_access_log: true,
        ..SidecarSettings::default()
    }
}

/// Starts a sidecar configured by `yaml`.
pub async fn sidecar(yaml: &str) -> RunningSidecar {
    sidecar_with(yaml, quiet()).await
}

/// Starts a sidecar configured by `yaml`, with `settings`.
pub async fn sidecar_with(yaml: &str, settings: SidecarSettings) -> RunningSidecar {
    let config = match Config::from_yaml_str(yaml) {
        Ok(loaded) => loaded.config,
        Err(problems) => panic!("test config invalid: {problems:#?}"),
    };
    Sidecar::with_settings(config, settings)
        .unwrap()
        .start(&ephemeral())
        .await
        .unwrap()
}

/// Catalog v1 and v2 and a sidecar configured with the shipped registry plus `routes_file`.
pub struct Catalog {
    pub v1: CatalogServer,
    pub v2: CatalogServer,
    pub sidecar: RunningSidecar,
}

impl Catalog {
    pub async fn start(routes_file: &str) -> Self {
        let routes = std::fs::read_to_string(example(routes_file)).unwrap();
        Self::with_routes(&routes).await
    }

    pub async fn with_routes(routes_yaml: &str) -> Self {
        Self::with_routes_and_settings(routes_yaml, quiet()).await
    }

    /// Catalog v1 and v2 behind a sidecar with `settings` (e.g. a debugging metrics recorder).
    pub async fn with_routes_and_settings(routes_yaml: &str, settings: SidecarSettings) -> Self {
        let (v1, v2, registry) = catalog_upstreams().await;
        let sidecar = sidecar_with(&format!("{registry}\n---\n{routes_yaml}"), settings).await;
        Catalog { v1, v2, sidecar }
    }

    pub fn proxy(&self) -> SocketAddr {
        self.sidecar.addr("outbound").unwrap()
    }
}

/// Catalog v1 and v2 on free ports, and the shipped registry pointed at them.
pub async fn catalog_upstreams() -> (CatalogServer, CatalogServer, String) {
    let v1 = CatalogServer::start("v1", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let v2 = CatalogServer::start("v2", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let registry = std::fs::read_to_string(example("catalog/00-registry.yaml")).unwrap();
    let registry = point_registry(&registry, v1.addr().port(), v2.addr().port());
    (v1, v2, registry)
}

/// Waits until `server` has seen `n` requests, or `within` has passed (the caller asserts):
/// for fire-and-forget requests, such as mirrors' shadows.
pub async fn wait_for_hits(server: &CatalogServer, n: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while server.hits() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `registry` and a VirtualService sending all of `catalog` to `subset`.
pub fn all_to(registry: &str, subset: &str) -> String {
    format!(
        r#"{registry}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: catalog, namespace: istioinaction}}
spec:
  hosts: [catalog]
  http: [{{route: [{{destination: {{host: catalog, subset: {subset}}}}}]}}]
"#
    )
}

/// Routes `catalog` to a subset (`version-v3`) that selects no endpoint: 503 UH.
pub const NO_ENDPOINT_ROUTES: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: catalog-v3, namespace: istioinaction}
spec:
  host: catalog
  subsets:
  - name: version-v3
    labels: {version: v3}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog, namespace: istioinaction}
spec:
  hosts: [catalog]
  http:
  - route:
    - destination: {host: catalog, subset: version-v3}
"#;

/// A VirtualService sending `catalog` to subset `version-v1`, with `policy` (YAML lines of the
/// HTTP route, indented four spaces).
pub fn v1_routes(policy: &str) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: catalog, namespace: istioinaction}}
spec:
  hosts: [catalog]
  http:
  - route:
    - destination: {{host: catalog, subset: version-v1}}
{policy}
"#
    )
}

/// The text of admin endpoint `path` (e.g. `/clusters`) of `sidecar`.
pub async fn admin_text(sidecar: &RunningSidecar, path: &str) -> String {
    let mut admin = mesh::demo::Http1Client::connect(sidecar.addr("admin").unwrap())
        .await
        .unwrap();
    admin.get(path, &[("host", "admin")]).await.unwrap().text()
}

/// Serves one HTTP/2 (prior knowledge) connection with `service` — a gRPC-style upstream — at a
/// new loopback port; returns the port.
pub async fn h2_upstream<S, B>(service: S) -> u16
where
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = upstream.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (stream, _) = upstream.accept().await.unwrap();
        let io = hyper_util::rt::TokioIo::new(stream);
        let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .serve_connection(io, service)
            .await;
    });
    port
}

/// An HTTP/2 (prior knowledge) connection to `addr`, as a gRPC client opens one, sending
/// bodies of type `B`.
pub async fn h2_client<B>(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<B>
where
    B: http_body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (sender, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

pub mod prometheus;
