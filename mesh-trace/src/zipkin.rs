//! Zipkin export: `opentelemetry-zipkin`'s exporter (Zipkin v2 JSON, `POST …/api/v2/spans`)
//! over our [`CollectorClient`], which also completes what that exporter leaves out of the
//! v2 model (the local service name; no all-zero `parentId` on a root span).

#![allow(deprecated)] // opentelemetry-zipkin is deprecated upstream in favour of OTLP.

use crate::collector_client::{CollectorClient, DEFAULT_TIMEOUT, collector_endpoint};
use opentelemetry_zipkin::ZipkinExporter;
use std::net::SocketAddr;

/// The collector path of Zipkin's v2 API.
///
/// ```
/// use mesh_trace::{collector_client::collector_endpoint, zipkin::SPANS_PATH};
/// // Where `exporter` posts for a `host:port` address.
/// let url = collector_endpoint("zipkin", "zipkin.istio-system:9411", SPANS_PATH).unwrap();
/// assert_eq!(url, "http://zipkin.istio-system:9411/api/v2/spans");
/// ```
pub const SPANS_PATH: &str = "/api/v2/spans";

/// A Zipkin exporter POSTing to `collector` (`host:port`, as Istio's
/// `defaultConfig.tracing.zipkin.address`, or a full `http://…` URL), naming the local
/// service `service_name` at `service_address`.
///
/// ```
/// let exporter = mesh_trace::zipkin::exporter("127.0.0.1:9411", "catalog.shop", None);
/// assert!(exporter.is_ok());
/// assert!(mesh_trace::zipkin::exporter("bad host:x:y", "catalog", None).is_err());
/// ```
pub fn exporter(
    collector: &str,
    service_name: &str,
    service_address: Option<SocketAddr>,
) -> Result<ZipkinExporter, String> {
    let endpoint = collector_endpoint("zipkin", collector, SPANS_PATH)?;
    let mut builder = ZipkinExporter::builder()
        .with_collector_endpoint(endpoint)
        .with_http_client(CollectorClient::for_zipkin(service_name, DEFAULT_TIMEOUT));
    if let Some(address) = service_address {
        builder = builder.with_service_address(address);
    }
    builder
        .build()
        .map_err(|e| format!("zipkin address {collector:?}: {e}"))
}
