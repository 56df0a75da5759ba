//! `mesh`: an embeddable service mesh for Rust.
//!
//! Istio/Envoy traffic policy and telemetry as tower layers: header and weighted routing to
//! labelled subsets, mirroring, fault injection, retries with budgets, timeouts, circuit
//! breaking, outlier detection, B3/W3C trace propagation with Zipkin export, Istio's standard
//! Prometheus metrics and Envoy-style access logs. Configure them with the Istio YAML you
//! already write (VirtualService, DestinationRule, ServiceEntry, Sidecar, Telemetry, mesh
//! config), or build the same configuration in Rust, and run them in one of two ways.
//!
//! # In-process
//!
//! A [`Mesh`] holds one configuration. Wrap your HTTP client in
//! [`mesh.client_layer("catalog")`][client_layer] and every request it sends goes through
//! the outbound stack a sidecar would run — trace context, Istio metrics
//! (`reporter="source"`), the access log, routing, mirroring, faults, timeouts, retries,
//! circuit breaking, outlier detection, load balancing — and then out over *your* client to the
//! endpoint chosen. Put [`mesh.server_layer()`][server_layer] in front of your service
//! (an axum `Router`, a tonic server) for the inbound side: trace context, Istio metrics
//! (`reporter="destination"`), the access log and server spans; tell it the port you serve on
//! (`.port(8080)`) and its access log names Istio's `inbound|8080||` cluster. No extra hop, no
//! second process.
//!
//! ```
//! use tower::{ServiceBuilder, ServiceExt};
//! use hyper_util::{client::legacy::Client, rt::TokioExecutor};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), mesh::core::BoxError> {
//! let mesh = mesh::Mesh::from_yaml(r#"
//! apiVersion: networking.istio.io/v1
//! kind: ServiceEntry
//! metadata: {name: catalog, namespace: shop}
//! spec:
//!   hosts: [catalog]
//!   resolution: STATIC
//!   ports: [{number: 80, name: http, protocol: HTTP}]
//!   endpoints: [{address: 127.0.0.1, ports: {http: 1}, labels: {version: v1}}]
//! ---
//! apiVersion: networking.istio.io/v1
//! kind: VirtualService
//! metadata: {name: catalog, namespace: shop}
//! spec:
//!   hosts: [catalog]
//!   http: [{route: [{destination: {host: catalog}}], timeout: 2s, retries: {attempts: 1, retryOn: connect-failure}}]
//! "#)?;
//! let http = Client::builder(TokioExecutor::new()).build_http::<mesh::core::Body>();
//! let catalog = ServiceBuilder::new().layer(mesh.client_layer("catalog")?).service(http);
//!
//! // Nothing listens on port 1: the mesh answers as Envoy would, 503 with flag UF.
//! let request = http::Request::get("/items").body(http_body_util::Empty::<bytes::Bytes>::new())?;
//! let response = catalog.oneshot(request).await?;
//! assert_eq!(response.status(), 503);
//! # Ok(()) }
//! ```
//!
//! - Configuration: [`Mesh::from_yaml`], or [`Mesh::builder`] for YAML files and resources
//!   written in Rust ([`config::Resource::new`]), the workload's identity and where metrics go.
//!   Errors are typed ([`Error`]); a configuration error lists every problem with its file,
//!   document, resource and field.
//! - Run-time changes: [`Mesh::swap`] validates a new configuration and swaps it in
//!   atomically; requests already started finish under the old one. An invalid one is refused
//!   whole and the current one keeps serving.
//! - Metrics: recorded into the mesh's own Prometheus recorder ([`Mesh::render_prometheus`],
//!   e.g. on a `/metrics` route), or any `metrics` recorder ([`MeshBuilder::metrics`]). The
//!   sidecar's admin API is available too ([`Mesh::admin_service`]).
//! - Every layer also works alone on any `tower::Service<http::Request<B>>`: see
//!   [`core`] (timeouts, retries, circuit breaking, outlier detection, faults), [`route`]
//!   (routing, mirroring) and [`trace`] (propagation, spans, metrics, access logs).
//! - Runnable examples: `examples/client.rs` (hyper-util), `examples/server.rs` (axum with a
//!   `/metrics` route), `examples/grpc.rs` (tonic client and server: retries on
//!   `UNAVAILABLE`, `grpc-timeout` deadlines, trailer-aware gRPC status metrics).
//!
//! # Sidecar
//!
//! The same stacks behind listeners: `cargo run --release --example sidecar -- --config DIR`
//! serves the outbound listener (`127.0.0.1:15001`, as an HTTP proxy or by `Host`), the
//! inbound listener for a Sidecar resource's `ingress`, and the admin API (`127.0.0.1:15000`:
//! `/stats/prometheus`, `/clusters`, `/config_dump`, `/logging`, `/ready`). With no
//! `--config` it is an observing pass-through proxy. [`proxy::Sidecar`][sidecar] builds it in Rust;
//! `examples/mesh/` has the catalog demo's configuration.
//!
//! For the same configuration, the in-process client and the sidecar make the same routing
//! decisions and report the same metric labels (`tests/embedding.rs` checks it).
//!
//! # Crates and features
//!
//! This crate re-exports the workspace:
//! - [`core`]: shared vocabulary (body, errors, response flags, local replies) and the
//!   resilience layers;
//! - [`route`]: Istio config model, validation, route table, [`RouteLayer`](route::RouteLayer)
//!   and mirroring;
//! - [`trace`]: trace context (B3, W3C), sampling, `x-request-id`, spans and their export,
//!   Istio metrics and access logs;
//! - [`proxy`]: listeners, endpoints, load balancing, admin, the [`Sidecar`][sidecar].
//!
//! Cargo features (default: `proxy`, `yaml`, `zipkin`, `prometheus`, `tls`): `proxy` (the
//! in-process `Mesh` and the sidecar), `yaml` (Istio YAML), `zipkin` / `otlp` (span export),
//! `prometheus` (the mesh's own recorder), `tls` (mesh mTLS and TLS origination with rustls; without
//! it, configuration asking for TLS is refused). `--no-default-features` leaves the core layers.
//!
#![cfg_attr(feature = "proxy", doc = "[client_layer]: Mesh::client_layer")]
#![cfg_attr(feature = "proxy", doc = "[server_layer]: Mesh::server_layer")]
#![cfg_attr(feature = "proxy", doc = "[sidecar]: proxy::Sidecar")]
// Without `proxy`, the guide's links to what it gates point at the paragraph on features.
#![cfg_attr(not(feature = "proxy"), doc = "[client_layer]: #crates-and-features")]
#![cfg_attr(not(feature = "proxy"), doc = "[server_layer]: #crates-and-features")]
#![cfg_attr(not(feature = "proxy"), doc = "[sidecar]: #crates-and-features")]
#![cfg_attr(not(feature = "proxy"), doc = "[`Mesh`]: #crates-and-features")]
#![cfg_attr(
    not(feature = "proxy"),
    doc = "[`Mesh::from_yaml`]: #crates-and-features"
)]
#![cfg_attr(
    not(feature = "proxy"),
    doc = "[`Mesh::builder`]: #crates-and-features"
)]
#![cfg_attr(not(feature = "proxy"), doc = "[`Error`]: #crates-and-features")]
#![cfg_attr(not(feature = "proxy"), doc = "[`Mesh::swap`]: #crates-and-features")]
#![cfg_attr(
    not(feature = "proxy"),
    doc = "[`Mesh::render_prometheus`]: #crates-and-features"
)]
#![cfg_attr(
    not(feature = "proxy"),
    doc = "[`MeshBuilder::metrics`]: #crates-and-features"
)]
#![cfg_attr(
    not(feature = "proxy"),
    doc = "[`Mesh::admin_service`]: #crates-and-features"
)]
#![cfg_attr(not(feature = "proxy"), doc = "[`proxy`]: #crates-and-features")]
#![cfg_attr(
    not(feature = "proxy"),
    doc = "[`proxy::Sidecar`]: #crates-and-features"
)]

#[cfg(feature = "proxy")]
pub mod demo;
#[cfg(feature = "proxy")]
mod embed;

#[cfg(feature = "proxy")]
pub use embed::{
    ClientLayer, Diagnostics, Error, Mesh, MeshBuilder, MeshClient, MeshServer, ResponseFuture,
    ServerLayer,
};
pub use mesh_route::config;

pub use mesh_core as core;
#[cfg(feature = "proxy")]
pub use mesh_proxy as proxy;
pub use mesh_route as route;
pub use mesh_trace as trace;
