//! The admin server (Envoy's port 15000): `/ready`, `/stats`, `/stats/prometheus`,
//! `/config_dump`, `/clusters`, `/logging`.
//!
//! - `/stats`: Envoy-style counters, one `name: value` per line ([`StatsSources`]).
//! - `/stats/prometheus`: Istio's standard metrics (rendered by the mesh's own recorder)
//!   followed by the same Envoy-style stats, in Prometheus text format.
//! - `/config_dump`: the active configuration as JSON with its version.
//! - `/clusters`: every cluster's endpoints with Envoy's `cluster::host::stat::value` lines
//!   (`cx_active`, `rq_active`, `rq_total`, `rq_success`, `rq_error`, `rq_timeout`,
//!   `health_flags` — `/failed_outlier_check` while ejected — and the outlier counters), and
//!   per cluster its `lb_policy`, circuit-breaker limits and counters.
//! - `/logging?level=LEVEL` (GET or POST): sets the log filter at run time (any
//!   `tracing-subscriber` filter: `debug`, `mesh_proxy=trace,info`, …); without `level`, shows
//!   it.
//! - `/canaries`: every Canary's analysis as JSON (phase, weights, failed checks, last checks,
//!   events), when a [`CanaryController`](crate::canary::CanaryController) runs; `POST
//!   /canaries/NAME/ACTION` (NAME is `namespace/name` or a unique name; ACTION `pause`,
//!   `resume`, `promote` or `abort`) acts on one and answers its status.

use crate::canary::{CanaryAction, CanaryBoard};
use crate::prometheus::PrometheusHandle;
use crate::{registry::Registry, stats::StatsSources};
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
///
/// ```
/// use mesh_proxy::{admin::{Admin, AdminState}, registry::Registry, stats::StatsSources};
/// use mesh_route::config::Config;
/// use std::sync::Arc;
/// let state = AdminState {
///     config: Arc::new(Config::default()),
///     version: 3,
///     registry: Arc::new(Registry::default()),
///     stats: StatsSources::default(),
///     prometheus: None,
///     log_filter: None,
///     canaries: None,
/// };
/// assert_eq!(format!("{:?}", Admin::new(Arc::new(state))), "Admin { version: 3, metrics_only: false, .. }");
/// ```
pub struct AdminState {
    /// The active configuration.
    pub config: Arc<Config>,
    /// Its version (1 for the configuration loaded at start).
    pub version: u64,
    /// The endpoints in use.
    pub registry: Arc<Registry>,
    /// Where the Envoy-style stats come from.
    pub stats: StatsSources,
    /// Renders Istio's standard metrics, when they are recorded in a Prometheus recorder.
    pub prometheus: Option<PrometheusHandle>,
    /// Changes the log filter, when the process lets it be changed.
    pub log_filter: Option<LogFilterControl>,
    /// The canaries under analysis, when a canary controller runs.
    pub canaries: Option<CanaryBoard>,
}

/// Sets the process's log filter from a filter string (`debug`, `mesh_proxy=trace,info`; `None`
/// only asks) and returns the filter now in force, or why the new one was refused.
///
/// ```
/// use mesh_proxy::admin::LogFilterControl;
/// let control = LogFilterControl::new(|wanted| Ok(wanted.unwrap_or("info").to_owned()));
/// assert_eq!(control.apply(Some("debug")).unwrap(), "debug");
/// ```
#[derive(Clone)]
pub struct LogFilterControl(Arc<SetLogFilter>);

/// What a [`LogFilterControl`] calls.
type SetLogFilter = dyn Fn(Option<&str>) -> Result<String, String> + Send + Sync;

impl LogFilterControl {
    /// A control calling `set`.
    ///
    /// ```
    /// use mesh_proxy::admin::LogFilterControl;
    /// use std::sync::{Arc, Mutex};
    /// let current = Arc::new(Mutex::new("info".to_string()));
    /// let filter = current.clone();
    /// let control = LogFilterControl::new(move |wanted| {
    ///     let mut filter = filter.lock().unwrap();
    ///     if let Some(wanted) = wanted { *filter = wanted.to_owned(); }
    ///     Ok(filter.clone())
    /// });
    /// control.apply(Some("mesh_proxy=debug")).unwrap();
    /// assert_eq!(*current.lock().unwrap(), "mesh_proxy=debug");
    /// ```
    pub fn new(
        set: impl Fn(Option<&str>) -> Result<String, String> + Send + Sync + 'static,
    ) -> Self {
        LogFilterControl(Arc::new(set))
    }

    /// Sets the filter to `wanted` (or only reports it, for `None`).
    ///
    /// ```
    /// use mesh_proxy::admin::LogFilterControl;
    /// let control = LogFilterControl::new(|wanted| match wanted {
    ///     Some("nonsense=") => Err("invalid filter".to_owned()),
    ///     wanted => Ok(wanted.unwrap_or("info").to_owned()),
    /// });
    /// assert_eq!(control.apply(None).unwrap(), "info", "only asks");
    /// assert!(control.apply(Some("nonsense=")).is_err());
    /// ```
    pub fn apply(&self, wanted: Option<&str>) -> Result<String, String> {
        (self.0)(wanted)
    }
}

impl std::fmt::Debug for LogFilterControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogFilterControl")
    }
}

/// The admin HTTP service.
///
/// ```
/// use http_body_util::BodyExt;
/// use mesh_proxy::Sidecar;
/// # use mesh_proxy::sidecar::SidecarSettings;
/// use mesh_route::config::Config;
/// use tower::ServiceExt;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
/// let admin = Sidecar::with_settings(Config::default(), settings).unwrap().admin_service();
/// let request = http::Request::get("/nowhere").body(mesh_core::body::empty()).unwrap();
/// let response = admin.clone().oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 404);
/// let text = response.into_body().collect().await.unwrap().to_bytes();
/// assert!(String::from_utf8_lossy(&text).contains("/config_dump"), "lists the admin endpoints");
/// # }
/// ```
#[derive(Clone)]
pub struct Admin {
    state: Arc<AdminState>,
    metrics_only: bool,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("version", &self.state.version)
            .field("metrics_only", &self.metrics_only)
            .finish_non_exhaustive()
    }
}

impl Admin {
    /// An admin service reporting on `state`.
    ///
    /// ```
    /// use mesh_proxy::{admin::{Admin, AdminState}, registry::Registry, stats::StatsSources};
    /// use mesh_route::config::Config;
    /// use std::sync::Arc;
    /// use tower::ServiceExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let state = AdminState {
    ///     config: Arc::new(Config::default()), version: 1, registry: Arc::new(Registry::default()),
    ///     stats: StatsSources::default(), prometheus: None, log_filter: None, canaries: None,
    /// };
    /// let admin = Admin::new(Arc::new(state));
    /// // No log filter control: `/logging` cannot change the level.
    /// let request = http::Request::get("/logging?level=debug").body(mesh_core::body::empty()).unwrap();
    /// assert_eq!(admin.oneshot(request).await.unwrap().status(), 501);
    /// # }
    /// ```
    ///
    /// With a log filter control, `/logging` sets the level:
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use mesh_proxy::{admin::{Admin, AdminState, LogFilterControl}, registry::Registry, stats::StatsSources};
    /// use mesh_route::config::Config;
    /// use std::sync::Arc;
    /// use tower::ServiceExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let control = LogFilterControl::new(|wanted| Ok(wanted.unwrap_or("info").to_owned()));
    /// let state = AdminState {
    ///     config: Arc::new(Config::default()), version: 1, registry: Arc::new(Registry::default()),
    ///     stats: StatsSources::default(), prometheus: None, log_filter: Some(control), canaries: None,
    /// };
    /// let admin = Admin::new(Arc::new(state));
    /// let request = http::Request::get("/logging?level=debug").body(mesh_core::body::empty()).unwrap();
    /// let response = admin.oneshot(request).await.unwrap();
    /// assert_eq!(response.status(), 200);
    /// let body = response.into_body().collect().await.unwrap().to_bytes();
    /// assert!(String::from_utf8_lossy(&body).contains("debug"));
    /// # }
    /// ```
    pub fn new(state: Arc<AdminState>) -> Self {
        Admin {
            state,
            metrics_only: false,
        }
    }

    /// This service answering every GET with the Prometheus metrics (a dedicated metrics
    /// listener).
    ///
    /// ```
    /// use mesh_proxy::Sidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// use tower::ServiceExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let metrics = Sidecar::with_settings(Config::default(), settings).unwrap().admin_service().metrics_only();
    /// let get = |path| http::Request::get(path).body(mesh_core::body::empty()).unwrap();
    /// let response = metrics.clone().oneshot(get("/ready")).await.unwrap();
    /// assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    /// let post = http::Request::post("/").body(mesh_core::body::empty()).unwrap();
    /// assert_eq!(metrics.oneshot(post).await.unwrap().status(), 405);
    /// # }
    /// ```
    pub fn metrics_only(mut self) -> Self {
        self.metrics_only = true;
        self
    }

    fn respond(&self, request: &Request<Body>) -> Response<Body> {
        let path = request.uri().path();
        let mutating = path == "/logging" || path.starts_with("/canaries/");
        if request.method() != Method::GET && !(mutating && request.method() == Method::POST) {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed\n".into(),
            );
        }
        if self.metrics_only {
            return self.prometheus();
        }
        match path {
            "/ready" => text(StatusCode::OK, "LIVE\n".into()),
            "/stats" => text(StatusCode::OK, self.state.stats.render_plain()),
            "/stats/prometheus" => self.prometheus(),
            "/config_dump" => self.config_dump(),
            "/clusters" => text(StatusCode::OK, self.clusters()),
            "/logging" => self.logging(request.uri().query()),
            "/canaries" => self.canaries(),
            _ if path.starts_with("/canaries/") && request.method() == Method::POST => {
                self.canary_action(&path["/canaries/".len()..])
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "admin endpoints: /ready /stats /stats/prometheus /config_dump /clusters /logging \
                 /canaries\n"
                    .into(),
            ),
        }
    }

    /// `/stats/prometheus`.
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use mesh_proxy::Sidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\n\
    ///             spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n";
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let sidecar = Sidecar::with_settings(Config::from_yaml_str(yaml).unwrap().config, settings).unwrap();
    /// let body = sidecar.admin_service().prometheus().into_body().collect().await.unwrap().to_bytes();
    /// let text = String::from_utf8(body.to_vec()).unwrap();
    /// assert!(text.contains("# TYPE envoy_cluster_upstream_rq_total counter"), "{text}");
    /// # }
    /// ```
    pub fn prometheus(&self) -> Response<Body> {
        let mut out = self
            .state
            .prometheus
            .as_ref()
            .map(PrometheusHandle::render)
            .unwrap_or_default();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        self.state.stats.render_prometheus(&mut out);
        let mut response = text(StatusCode::OK, out);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        response
    }

    fn logging(&self, query: Option<&str>) -> Response<Body> {
        let Some(control) = &self.state.log_filter else {
            return text(
                StatusCode::NOT_IMPLEMENTED,
                "this process does not let its log level be changed\n".into(),
            );
        };
        let level = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|pair| pair.strip_prefix("level="));
        match control.apply(level) {
            Ok(filter) => text(StatusCode::OK, format!("active log filter: {filter}\n")),
            Err(error) => text(StatusCode::BAD_REQUEST, format!("{error}\n")),
        }
    }

    /// `/canaries`.
    fn canaries(&self) -> Response<Body> {
        match &self.state.canaries {
            Some(board) => json(&board.statuses()),
            None => json(&serde_json::json!([])),
        }
    }

    /// `POST /canaries/NAME/ACTION`.
    fn canary_action(&self, rest: &str) -> Response<Body> {
        let Some(board) = &self.state.canaries else {
            return text(StatusCode::NOT_FOUND, "no canary controller runs\n".into());
        };
        let action = rest
            .rsplit_once('/')
            .and_then(|(name, action)| Some((name, CanaryAction::parse(action)?)));
        let Some((name, action)) = action else {
            return text(
                StatusCode::BAD_REQUEST,
                "use POST /canaries/NAME/ACTION, ACTION one of pause, resume, promote, abort\n"
                    .into(),
            );
        };
        match board.act(name, action) {
            Ok(status) => json(&status),
            Err(error) => text(StatusCode::NOT_FOUND, format!("{error}\n")),
        }
    }

    fn config_dump(&self) -> Response<Body> {
        let mut dump = serde_json::json!({
            "version": self.state.version,
            "config": &*self.state.config,
        });
        if let Some(updates) = &self.state.stats.config_updates {
            dump["updates"] = serde_json::json!({
                "success": updates.success(),
                "rejected": updates.rejections(),
                "last_error": updates.last_error(),
            });
        }
        json(&dump)
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
                    let _ = writeln!(
                        out,
                        "{name}::{host}::cx_active::{}",
                        cluster.upstream.active_connections(host)
                    );
                    let _ = writeln!(out, "{name}::{host}::rq_active::{}", endpoint.in_flight());
                    let _ = writeln!(out, "{name}::{host}::rq_total::{}", endpoint.requests());
                    let _ = writeln!(out, "{name}::{host}::rq_success::{}", endpoint.successes());
                    let _ = writeln!(out, "{name}::{host}::rq_error::{}", endpoint.failures());
                    let _ = writeln!(out, "{name}::{host}::rq_timeout::{}", endpoint.timeouts());
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

/// `value` as pretty JSON.
fn json(value: &impl serde::Serialize) -> Response<Body> {
    match serde_json::to_string_pretty(value) {
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
