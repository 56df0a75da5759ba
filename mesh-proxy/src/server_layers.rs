//! [`ServerLayers`]: what the inbound side runs in front of an application.
//!
//! Trace context extraction and sampling ([`TraceLayer`]), Istio metrics reported as
//! `reporter="destination"` and the server access log ([`TelemetryLayer`]), and `SERVER` spans
//! when a collector is configured ([`SpanLayer`]). The sidecar puts them in front of its
//! inbound forwarder; an application that embeds the mesh puts them in front of its own service.

use crate::listener::HttpService;
use mesh_core::{Body, BoxError, body::IntoBody};
use mesh_trace::{TraceLayer, span_layer::SpanLayer, telemetry_layer::TelemetryLayer};
use tower::{Layer, Service, ServiceBuilder, util::BoxCloneSyncService};

/// The inbound layers of one configuration; see the [module docs](self).
///
/// ```
/// use mesh_proxy::{Sidecar, sidecar::SidecarSettings};
/// use mesh_route::config::Config;
/// use tower::{Layer, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
/// let sidecar = Sidecar::with_settings(Config::default(), settings).unwrap();
/// let app = service_fn(|request: http::Request<mesh_core::Body>| async move {
///     // The trace layer gives each request an id before the application sees it.
///     let status = if request.headers().contains_key("x-request-id") { 200 } else { 500 };
///     Ok::<_, mesh_core::BoxError>(http::Response::builder().status(status).body(mesh_core::body::empty()).unwrap())
/// });
/// let request = http::Request::get("http://app/").body(mesh_core::body::empty()).unwrap();
/// let response = sidecar.server_layers().layer(app).oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 200);
/// # }
/// ```
#[derive(Clone)]
pub struct ServerLayers {
    pub(crate) trace: TraceLayer,
    pub(crate) telemetry: TelemetryLayer,
    pub(crate) spans: SpanLayer,
}

impl std::fmt::Debug for ServerLayers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerLayers")
            .field("telemetry", &self.telemetry)
            .field("spans", &self.spans.records())
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for ServerLayers
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Service = HttpService;

    fn layer(&self, inner: S) -> HttpService {
        BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(self.trace)
                // A bodiless response's watchers are told at once: its body is not boxed in them.
                .map_response(|response: http::Response<_>| response.map(IntoBody::into_body))
                .layer(self.telemetry.clone())
                .layer(self.spans.clone())
                .map_err(|error: S::Error| -> BoxError { error.into() })
                .service(inner),
        )
    }
}
