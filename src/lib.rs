//! `mesh`: an embeddable service mesh for Rust.
//!
//! Istio/Envoy traffic policy as tower layers — header and weighted routing to labelled
//! subsets today, with resilience and telemetry layers growing beside it — usable in-process
//! around any hyper/tonic/axum service, or as the example sidecar proxy that reads the Istio YAML
//! you already have (`cargo run --release --example sidecar -- --config examples/mesh`).
//!
//! This crate re-exports the workspace:
//! - [`core`]: shared vocabulary (body, errors, response flags, local replies, extensions);
//! - [`route`]: Istio config model, validation, route table and [`RouteLayer`](route::RouteLayer);
//! - [`trace`]: trace context (B3, W3C), sampling, `x-request-id`, spans and Zipkin export;
//! - [`proxy`]: listeners, endpoints, load balancing, admin, the [`Sidecar`](proxy::Sidecar).

pub mod demo;
mod embed;

pub use embed::{
    ClientLayer, Diagnostics, Error, Mesh, MeshBuilder, MeshClient, MeshServer, ResponseFuture,
    ServerLayer,
};
pub use mesh_route::config;

pub use mesh_core as core;
pub use mesh_proxy as proxy;
pub use mesh_route as route;
pub use mesh_trace as trace;
