//! The admin server (Envoy's port 15000): `/ready`, `/config_dump`, `/clusters`.
//!
//! `/config_dump` is the active configuration as JSON with its version; `/clusters` lists every
//! cluster's endpoints with Envoy's `cluster::host::stat::value` lines (`rq_active`,
//! `rq_total`, `rq_error`, `health_flags`, and the cluster's `lb_policy`).

use crate::registry::Registry;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use mesh_core::{Body, BoxError, body};
use mesh_route::config::Config;
use std::{
    fmt::Write,
    future::Ready,
    sync::Arc,
    task::{Context, Poll},
};
use tower::Service;

/// What the admin server reports on.
#[derive(Debug)]
pub struct AdminState {
    /// The active configuration.
    pub config: Arc<Config>,
    /// Its version (1 for the configuration loaded at start).
    pub version: u64,
    /// The endpoints in use.
    pub registry: Arc<Registry>,
}

/// The admin HTTP service.
#[derive(Clone, Debug)]
pub struct Admin {
    state: Arc<AdminState>,
}

impl Admin {
    /// An admin service reporting on `state`.
    pub fn new(state: Arc<AdminState>) -> Self {
        Admin { state }
    }

    fn respond(&self, request: &Request<Body>) -> Response<Body> {
        if request.method() != Method::GET {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed\n".into(),
            );
        }
        match request.uri().path() {
            "/ready" => text(StatusCode::OK, "LIVE\n".into()),
            "/config_dump" => self.config_dump(),
            "/clusters" => text(StatusCode::OK, self.clusters()),
            _ => text(
                StatusCode::NOT_FOUND,
                "admin endpoints: /ready /config_dump /clusters\n".into(),
            ),
        }
    }

    fn config_dump(&self) -> Response<Body> {
        let dump = serde_json::json!({
            "version": self.state.version,
            "config": &*self.state.config,
        });
        match serde_json::to_string_pretty(&dump) {
            Ok(json) => {
                let mut response = Response::new(body::full(json));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
            Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")),
        }
    }

    fn clusters(&self) -> String {
        let mut out = String::new();
        for cluster in self.state.registry.clusters() {
            let name = &cluster.name;
            let _ = writeln!(out, "{name}::lb_policy::{}", cluster.balancer.name());
            for (_, endpoint) in cluster.all_endpoints() {
                let host = &endpoint.authority;
                let _ = writeln!(out, "{name}::{host}::rq_active::{}", endpoint.in_flight());
                let _ = writeln!(out, "{name}::{host}::rq_total::{}", endpoint.requests());
                let _ = writeln!(out, "{name}::{host}::rq_error::{}", endpoint.failures());
                let _ = writeln!(out, "{name}::{host}::health_flags::healthy");
                let labels: Vec<String> = endpoint
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let _ = writeln!(out, "{name}::{host}::labels::{}", labels.join(","));
            }
        }
        out
    }
}

fn text(status: StatusCode, body_text: String) -> Response<Body> {
    let mut response = Response::new(body::full(body_text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

impl Service<Request<Body>> for Admin {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Ready<Result<Response<Body>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        std::future::ready(Ok(self.respond(&request)))
    }
}
