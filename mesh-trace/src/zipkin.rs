//! Zipkin export: `opentelemetry-zipkin`'s exporter (Zipkin v2 JSON, `POST …/api/v2/spans`)
//! over [`CollectorClient`], our HTTP client for it.
//!
//! The client runs on the tokio runtime of the [`SpanReporter`](crate::reporter::SpanReporter)
//! task (not the SDK's batch thread, where a hyper client finds no reactor), bounds each POST
//! by a timeout, sends `b3: 0` so that proxies on the way do not trace the export itself, and
//! completes what the exporter leaves out of the v2 model: it names the local service
//! (`localEndpoint.serviceName`) and omits a root span's `parentId` rather than sending
//! sixteen zeros.

#![allow(deprecated)] // opentelemetry-zipkin is deprecated upstream in favour of OTLP.

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_zipkin::ZipkinExporter;
use serde_json::Value;
use std::{net::SocketAddr, time::Duration};

/// The collector path of Zipkin's v2 API.
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
    let endpoint = if collector.contains("://") {
        collector.to_owned()
    } else {
        format!("http://{collector}{SPANS_PATH}")
    };
    endpoint
        .parse::<http::Uri>()
        .map_err(|e| format!("zipkin address {collector:?}: {e}"))?;
    let mut builder = ZipkinExporter::builder()
        .with_collector_endpoint(endpoint)
        .with_http_client(CollectorClient::new(service_name, DEFAULT_TIMEOUT));
    if let Some(address) = service_address {
        builder = builder.with_service_address(address);
    }
    builder
        .build()
        .map_err(|e| format!("zipkin address {collector:?}: {e}"))
}

/// Envoy's Zipkin collector timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The exporter's HTTP client; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct CollectorClient {
    client: Client<HttpConnector, Full<Bytes>>,
    service_name: String,
    timeout: Duration,
}

impl CollectorClient {
    /// A client naming the local service `service_name` (lowercased, as Zipkin wants).
    pub fn new(service_name: &str, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        CollectorClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
            service_name: service_name.to_ascii_lowercase(),
            timeout,
        }
    }

    async fn post(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (mut head, body) = request.into_parts();
        head.headers.insert("b3", HeaderValue::from_static("0"));
        let body = complete_spans(&body, &self.service_name).unwrap_or(body);
        let request = Request::from_parts(head, Full::new(body));
        let exchange = async {
            let response = self.client.request(request).await?;
            let (head, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, HttpError>(Response::from_parts(head, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| HttpError::from("zipkin collector timed out"))?
    }
}

#[async_trait::async_trait]
impl HttpClient for CollectorClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        self.post(request).await
    }
}

/// Adds `localEndpoint.serviceName` and drops all-zero `parentId`s in a JSON span list;
/// `None` if `json` is not one.
fn complete_spans(json: &[u8], service_name: &str) -> Option<Bytes> {
    let mut spans: Vec<Value> = serde_json::from_slice(json).ok()?;
    for span in &mut spans {
        let span = span.as_object_mut()?;
        if span
            .get("parentId")
            .and_then(Value::as_str)
            .is_some_and(|id| id.bytes().all(|b| b == b'0'))
        {
            span.remove("parentId");
        }
        let local = span
            .entry("localEndpoint")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(local) = local.as_object_mut() {
            local.insert("serviceName".into(), Value::from(service_name));
        }
    }
    serde_json::to_vec(&spans).ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_get_a_service_name_and_roots_lose_their_zero_parent() {
        let json = br#"[{"traceId":"a","id":"b","parentId":"0000000000000000","localEndpoint":{"ipv4":"10.0.0.1"}},{"traceId":"a","id":"c","parentId":"00000000000000bb"}]"#;
        let out: Vec<Value> =
            serde_json::from_slice(&complete_spans(json, "catalog").unwrap()).unwrap();
        assert!(out[0].get("parentId").is_none());
        assert_eq!(out[0]["localEndpoint"]["serviceName"], "catalog");
        assert_eq!(out[0]["localEndpoint"]["ipv4"], "10.0.0.1");
        assert_eq!(out[1]["parentId"], "00000000000000bb");
        assert_eq!(out[1]["localEndpoint"]["serviceName"], "catalog");
        assert!(complete_spans(b"not json", "catalog").is_none());
    }
}
