//! The admin server (Envoy's port 15000): `/ready`, `/config_dump`, `/clusters`.
//!
//! `/config_dump` is the active configuration as JSON with its version; `/clusters` lists every
//! cluster's endpoints with Envoy's `cluster::host::stat::value` lines (`rq_active`,
//! `rq_total`, `rq_error`, `health_flags` — `/failed_outlier_check` while ejected — and the
//! outlier counters), and per cluster its `lb_policy`, circuit-breaker limits and counters.

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
        let now = tokio::time::Instant::now();
        for cluster in self.state.registry.clusters() {
            let name = &cluster.name;
            let _ = writeln!(out, "{name}::lb_policy::{}", cluster.balancer.name());
            if let Some(breaker) = &cluster.breaker {
                let limits = breaker.limits();
                let _ = writeln!(
                    out,
                    "{name}::circuit_breakers::max_connections::{}",
                    limits.max_connections
                );
                let _ = writeln!(
                    out,
                    "{name}::circuit_breakers::max_pending_requests::{}",
                    limits.max_pending_requests
                );
                let _ = writeln!(
                    out,
                    "{name}::circuit_breakers::max_requests::{}",
                    limits.max_requests
                );
                let _ = writeln!(
                    out,
                    "{name}::circuit_breakers::rq_active::{}",
                    breaker.active()
                );
                let _ = writeln!(
                    out,
                    "{name}::circuit_breakers::rq_pending::{}",
                    breaker.pending()
                );
                let _ = writeln!(
                    out,
                    "{name}::circuit_breakers::overflows::{}",
                    breaker.overflows()
                );
            }
            for port in &cluster.ports {
                if let Some(outlier) = &port.outlier {
                    let _ = writeln!(out, "{name}::outlier::ejections::{}", outlier.ejections());
                    let _ = writeln!(
                        out,
                        "{name}::outlier::ejections_overflow::{}",
                        outlier.ejections_overflow()
                    );
                }
                for (index, endpoint) in port.endpoints.iter().enumerate() {
                    let host = &endpoint.authority;
                    let stats = port
                        .outlier
                        .as_ref()
                        .and_then(|o| o.endpoint_stats(index, now));
                    let ejected = stats
                        .as_ref()
                        .is_some_and(|s| s.ejected_until.is_some_and(|t| t > now));
                    let health = if ejected {
                        "/failed_outlier_check"
                    } else {
                        "healthy"
                    };
                    let _ = writeln!(out, "{name}::{host}::rq_active::{}", endpoint.in_flight());
                    let _ = writeln!(out, "{name}::{host}::rq_total::{}", endpoint.requests());
                    let _ = writeln!(out, "{name}::{host}::rq_error::{}", endpoint.failures());
                    let _ = writeln!(out, "{name}::{host}::health_flags::{health}");
                    if let Some(stats) = stats {
                        let remaining = stats
                            .ejected_until
                            .map_or(0, |t| t.saturating_duration_since(now).as_millis());
                        let _ =
                            writeln!(out, "{name}::{host}::outlier::ejected_for_ms::{remaining}");
                        let _ = writeln!(
                            out,
                            "{name}::{host}::outlier::times_ejected::{}",
                            stats.times_ejected
                        );
                        let _ = writeln!(
                            out,
                            "{name}::{host}::outlier::consecutive_5xx::{}",
                            stats.consecutive_5xx
                        );
                        let _ = writeln!(
                            out,
                            "{name}::{host}::outlier::consecutive_gateway::{}",
                            stats.consecutive_gateway
                        );
                        let _ = writeln!(
                            out,
                            "{name}::{host}::outlier::consecutive_local_origin::{}",
                            stats.consecutive_local
                        );
                    }
                    let labels: Vec<String> = endpoint
                        .labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    let _ = writeln!(out, "{name}::{host}::labels::{}", labels.join(","));
                }
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
