//! Zipkin export: `opentelemetry-zipkin`'s exporter (Zipkin v2 JSON, `POST …/api/v2/spans`)
//! over our [`CollectorClient`], which also completes what that exporter leaves out of the
//! v2 model (the local service name; no all-zero `parentId` on a root span; `debug` on the
//! spans of a debug trace).

#![allow(deprecated)] // opentelemetry-zipkin is deprecated upstream in favour of OTLP.

use crate::collector_client::{self, CollectorClient, DEFAULT_TIMEOUT, collector_endpoint};
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
/// let error = mesh_trace::zipkin::exporter("bad host:x:y", "catalog", None).unwrap_err();
/// assert!(matches!(error, mesh_trace::zipkin::ExporterError::Address(_)), "{error}");
/// ```
pub fn exporter(
    collector: &str,
    service_name: &str,
    service_address: Option<SocketAddr>,
) -> Result<ZipkinExporter, ExporterError> {
    let endpoint = collector_endpoint(KIND, collector, SPANS_PATH)?;
    let mut builder = ZipkinExporter::builder()
        .with_collector_endpoint(endpoint)
        .with_http_client(CollectorClient::for_zipkin(service_name, DEFAULT_TIMEOUT));
    if let Some(address) = service_address {
        builder = builder.with_service_address(address);
    }
    builder.build().map_err(|source| ExporterError::Build {
        kind: KIND,
        collector: collector.to_owned(),
        source,
    })
}

/// How errors name this kind of collector.
const KIND: &str = "zipkin";

/// Why [`exporter`] could not make an exporter.
pub type ExporterError = collector_client::ExporterError<opentelemetry_zipkin::ExporterBuildError>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Decision, TraceContext,
        collector_client::test_collector::receive_one,
        reporter::{ReporterConfig, SpanReporter},
        span::{FinishedSpan, SpanKind},
    };
    use serde_json::Value;
    use std::time::{Duration, SystemTime};

    /// A span of a new sampled trace, a debug one (`x-b3-flags: 1`) if `debug`.
    fn span(debug: bool) -> FinishedSpan {
        FinishedSpan {
            context: TraceContext::root(Decision {
                sampled: true,
                forced: false,
                debug,
            }),
            kind: SpanKind::Server,
            name: "catalog:80/*".into(),
            start: SystemTime::now(),
            duration: Duration::from_millis(2),
            tags: vec![("http.method".into(), "GET".into())],
            error: false,
        }
    }

    #[tokio::test]
    async fn spans_of_a_debug_trace_are_posted_with_debug_true() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(receive_one(listener));
        let reporter = SpanReporter::spawn(
            exporter(&addr.to_string(), "catalog.shop", None).unwrap(),
            ReporterConfig {
                batch_size: 2, // both spans in one POST
                ..ReporterConfig::default()
            },
        );
        let (debug, plain) = (span(true), span(false));
        let ids = [&debug, &plain].map(|s| s.context.span_id.to_string());
        reporter.report(debug);
        reporter.report(plain);
        let (head, body) = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the spans were posted")
            .unwrap();
        assert!(head.starts_with("post /api/v2/spans http/1.1"), "{head}");
        let spans: Vec<Value> = serde_json::from_slice(&body).unwrap();
        let posted = |id: &str| spans.iter().find(|s| s["id"] == id).unwrap().clone();
        let (debug, plain) = (posted(&ids[0]), posted(&ids[1]));
        assert_eq!(debug["debug"], true, "{debug}");
        assert_ne!(plain["debug"], true, "{plain}");
        assert_eq!(debug["tags"], plain["tags"], "the marker tag is gone");
        assert_eq!(debug["tags"]["http.method"], "GET");
    }
}
