//! OTLP/HTTP export (feature `otlp`): spans as OTLP protobuf `POST`ed to a collector's
//! `/v1/traces` through `opentelemetry-otlp`, over our [`CollectorClient`] — for collectors and
//! backends that speak OTLP (Zipkin itself accepts OTLP since 3.5).

use crate::collector_client::{self, CollectorClient, DEFAULT_TIMEOUT, collector_endpoint};
use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{Resource, trace::SpanExporter as _};

/// The OTLP/HTTP traces path.
///
/// ```
/// use mesh_trace::{collector_client::collector_endpoint, otlp::TRACES_PATH};
/// // Where `exporter` posts for a `host:port` address.
/// let url = collector_endpoint("otlp", "otel-collector.observability:4318", TRACES_PATH).unwrap();
/// assert_eq!(url, "http://otel-collector.observability:4318/v1/traces");
/// ```
pub const TRACES_PATH: &str = "/v1/traces";

/// An exporter POSTing to `collector` (`host:port`, or a full `http://…/v1/traces` URL), with
/// `service.name` = `service_name`.
///
/// ```
/// let exporter = mesh_trace::otlp::exporter("127.0.0.1:4318", "catalog.shop");
/// assert!(exporter.is_ok());
/// ```
pub fn exporter(collector: &str, service_name: &str) -> Result<SpanExporter, ExporterError> {
    let endpoint = collector_endpoint(KIND, collector, TRACES_PATH)?;
    let mut exporter = SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .with_timeout(DEFAULT_TIMEOUT)
        .with_http_client(CollectorClient::plain(DEFAULT_TIMEOUT))
        .build()
        .map_err(|source| ExporterError::Build {
            kind: KIND,
            collector: collector.to_owned(),
            source,
        })?;
    exporter.set_resource(
        &Resource::builder_empty()
            .with_service_name(service_name.to_owned())
            .build(),
    );
    Ok(exporter)
}

/// Why [`exporter`] could not make an exporter.
///
/// ```
/// let error = mesh_trace::otlp::exporter("bad host:x:y", "catalog").unwrap_err();
/// assert!(matches!(error, mesh_trace::otlp::ExporterError::Address(_)), "{error}");
/// ```
pub type ExporterError = collector_client::ExporterError<opentelemetry_otlp::ExporterBuildError>;

/// How errors name this kind of collector.
const KIND: &str = "otlp";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Decision, TraceContext,
        collector_client::test_collector::receive_one,
        reporter::{ReporterConfig, SpanReporter},
        span::{FinishedSpan, SpanKind},
    };
    use std::{
        sync::{Arc, Mutex},
        time::{Duration, SystemTime},
    };

    #[tokio::test]
    async fn spans_reach_an_otlp_collector_as_protobuf() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(None));
        let keep = received.clone();
        let server = tokio::spawn(async move {
            *keep.lock().unwrap() = Some(receive_one(listener).await);
        });
        let reporter = SpanReporter::spawn(
            exporter(&addr.to_string(), "catalog.shop").unwrap(),
            ReporterConfig {
                flush_interval: Duration::from_millis(50),
                ..ReporterConfig::default()
            },
        );
        let context = TraceContext::root(Decision {
            sampled: true,
            forced: false,
            debug: false,
        });
        reporter.report(FinishedSpan {
            context: context.clone(),
            kind: SpanKind::Client,
            name: "catalog:80/*".into(),
            start: SystemTime::now(),
            duration: Duration::from_millis(2),
            tags: vec![("http.method".into(), "GET".into())],
            error: false,
        });
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the span was posted")
            .unwrap();
        let (head, body) = received.lock().unwrap().take().unwrap();
        assert!(head.starts_with("post /v1/traces http/1.1"), "{head}");
        assert!(
            head.contains("content-type: application/x-protobuf"),
            "{head}"
        );
        // The protobuf carries the trace id's raw bytes, the name and the service name.
        let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
        assert!(contains(&context.trace_id.get().to_be_bytes()));
        assert!(contains(b"catalog:80/*"));
        assert!(contains(b"catalog.shop"));
    }
}
