//! [`CollectorClient`]: the HTTP client span exporters (Zipkin, OTLP) post through.
//!
//! It runs on the tokio runtime of the [`SpanReporter`](crate::reporter::SpanReporter) task —
//! not on the SDK's batch thread, where a hyper client finds no reactor — bounds each POST by
//! a timeout, and sends `b3: 0` so that proxies on the way do not trace the export itself. For
//! Zipkin it completes what `opentelemetry-zipkin` leaves out of the v2 model: it names the
//! local service (`localEndpoint.serviceName`), omits a root span's `parentId` rather than
//! sending sixteen zeros, and sets `debug: true` on the spans of a debug trace (those marked
//! with the [`DEBUG_ATTRIBUTE`] tag, which it removes).

use crate::span::DEBUG_ATTRIBUTE;
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use opentelemetry_http::{HttpClient, HttpError};
use serde_json::{Map, Value};
use std::time::Duration;

/// Envoy's collector timeout.
///
/// ```
/// use mesh_trace::collector_client::DEFAULT_TIMEOUT;
/// assert_eq!(DEFAULT_TIMEOUT, std::time::Duration::from_secs(5));
/// ```
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The URL to post spans to: `collector` itself when it is a URL, else
/// `http://{collector}{path}` (a `host:port`, as Istio's provider addresses are written).
/// Errors name `kind` (`zipkin`, `otlp`) and the address.
///
/// ```
/// use mesh_trace::collector_client::collector_endpoint;
/// assert_eq!(collector_endpoint("zipkin", "z:9411", "/api/v2/spans").unwrap(), "http://z:9411/api/v2/spans");
/// assert_eq!(collector_endpoint("otlp", "http://o/v1/traces", "/v1/traces").unwrap(), "http://o/v1/traces");
/// let error = collector_endpoint("zipkin", "bad host:x:y", "/api/v2/spans").unwrap_err();
/// assert_eq!(error.collector, "bad host:x:y");
/// assert!(error.to_string().starts_with(r#"zipkin address "bad host:x:y": "#), "{error}");
/// ```
pub fn collector_endpoint(
    kind: &'static str,
    collector: &str,
    path: &str,
) -> Result<String, CollectorAddressError> {
    let endpoint = if collector.contains("://") {
        collector.to_owned()
    } else {
        format!("http://{collector}{path}")
    };
    match endpoint.parse::<http::Uri>() {
        Ok(_) => Ok(endpoint),
        Err(source) => Err(CollectorAddressError {
            kind,
            collector: collector.to_owned(),
            source,
        }),
    }
}

/// A collector address that makes no URL to post spans to ([`collector_endpoint`]).
///
/// ```
/// use mesh_trace::collector_client::{CollectorAddressError, collector_endpoint};
/// let error: CollectorAddressError = collector_endpoint("otlp", "otel collector:4318", "/v1/traces").unwrap_err();
/// assert_eq!((error.kind, error.collector.as_str()), ("otlp", "otel collector:4318"));
/// assert!(std::error::Error::source(&error).is_some());
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{kind} address {collector:?}: {source}")]
pub struct CollectorAddressError {
    /// The kind of collector (`zipkin`, `otlp`).
    pub kind: &'static str,
    /// The address as configured.
    pub collector: String,
    /// Why the URL made of it is not one.
    #[source]
    pub source: http::uri::InvalidUri,
}

/// Why an exporter (Zipkin's, OTLP's) could not be made: its address, or the exporter's own
/// refusal, `E`. Each exporter module names its own (`zipkin::ExporterError`,
/// `otlp::ExporterError`).
///
/// ```
/// use mesh_trace::collector_client::{ExporterError, collector_endpoint};
/// let address = collector_endpoint("zipkin", "bad host:x:y", "/api/v2/spans").unwrap_err();
/// let error: ExporterError<std::io::Error> = address.into();
/// assert!(error.to_string().starts_with(r#"zipkin address "bad host:x:y": "#), "{error}");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ExporterError<E> {
    /// The collector's address makes no URL.
    #[error(transparent)]
    Address(#[from] CollectorAddressError),
    /// The exporter refused its settings.
    #[error("{kind} address {collector:?}: {source}")]
    Build {
        /// The kind of collector (`zipkin`, `otlp`).
        kind: &'static str,
        /// The address as configured.
        collector: String,
        /// What the exporter said.
        #[source]
        source: E,
    },
}

/// An exporter's HTTP client; see the [module docs](self).
///
/// ```
/// use mesh_trace::collector_client::CollectorClient;
/// use opentelemetry_http::HttpClient;
/// use std::time::Duration;
/// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
/// // A collector that accepts connections but never answers.
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let url = format!("http://{}/api/v2/spans", listener.local_addr().unwrap());
/// let client = CollectorClient::for_zipkin("catalog.shop", Duration::from_secs(5));
/// let request = http::Request::post(&url).body("[]".into()).unwrap();
/// let error = client.send_bytes(request).await.unwrap_err(); // after 5 s (of paused time)
/// assert_eq!(error.to_string(), format!("trace collector {url} timed out after 5s"));
/// # drop(listener);
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct CollectorClient {
    client: Client<HttpConnector, Full<Bytes>>,
    /// For Zipkin: the local service name (lowercased) to complete spans with.
    zipkin_service: Option<String>,
    timeout: Duration,
}

impl CollectorClient {
    /// A client that posts bodies as they are (OTLP).
    ///
    /// ```
    /// use mesh_trace::collector_client::CollectorClient;
    /// use opentelemetry_http::HttpClient;
    /// use std::time::Duration;
    /// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # /// Accepts one HTTP/1.1 request, answers `202 Accepted`, and returns the request as text.
    /// # async fn serve_one(listener: tokio::net::TcpListener) -> String {
    /// #     let (mut stream, _) = listener.accept().await.unwrap();
    /// #     let mut bytes = Vec::new();
    /// #     let mut buffer = [0u8; 8192];
    /// #     loop {
    /// #         let n = stream.read(&mut buffer).await.unwrap();
    /// #         assert!(n > 0, "connection closed early");
    /// #         bytes.extend_from_slice(&buffer[..n]);
    /// #         let text = String::from_utf8_lossy(&bytes).into_owned();
    /// #         let Some(end) = text.find("\r\n\r\n") else { continue };
    /// #         let length: usize = text[..end].to_ascii_lowercase().lines()
    /// #             .find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
    /// #         if bytes.len() >= end + 4 + length {
    /// #             stream.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n").await.unwrap();
    /// #             return text;
    /// #         }
    /// #     }
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    /// let server = tokio::spawn(serve_one(listener)); // a one-request collector
    /// let client = CollectorClient::plain(Duration::from_secs(5));
    /// let request = http::Request::post(url).body(bytes::Bytes::from_static(b"\x0a\x00")).unwrap();
    /// assert_eq!(client.send_bytes(request).await.unwrap().status(), 202);
    /// let received = server.await.unwrap();
    /// assert!(received.starts_with("POST /v1/traces HTTP/1.1\r\n"));
    /// assert!(received.ends_with("\n\0")); // the body as it was
    /// # });
    /// ```
    pub fn plain(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        CollectorClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
            zipkin_service: None,
            timeout,
        }
    }

    /// A client for Zipkin v2 JSON, naming the local service `service_name` (lowercased, as
    /// Zipkin wants).
    ///
    /// ```
    /// use mesh_trace::collector_client::CollectorClient;
    /// use opentelemetry_http::HttpClient;
    /// use std::time::Duration;
    /// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # /// Accepts one HTTP/1.1 request, answers `202 Accepted`, and returns the request as text.
    /// # async fn serve_one(listener: tokio::net::TcpListener) -> String {
    /// #     let (mut stream, _) = listener.accept().await.unwrap();
    /// #     let mut bytes = Vec::new();
    /// #     let mut buffer = [0u8; 8192];
    /// #     loop {
    /// #         let n = stream.read(&mut buffer).await.unwrap();
    /// #         assert!(n > 0, "connection closed early");
    /// #         bytes.extend_from_slice(&buffer[..n]);
    /// #         let text = String::from_utf8_lossy(&bytes).into_owned();
    /// #         let Some(end) = text.find("\r\n\r\n") else { continue };
    /// #         let length: usize = text[..end].to_ascii_lowercase().lines()
    /// #             .find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
    /// #         if bytes.len() >= end + 4 + length {
    /// #             stream.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n").await.unwrap();
    /// #             return text;
    /// #         }
    /// #     }
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let url = format!("http://{}/api/v2/spans", listener.local_addr().unwrap());
    /// let server = tokio::spawn(serve_one(listener)); // a one-request collector
    /// let client = CollectorClient::for_zipkin("Catalog.Shop", Duration::from_secs(5));
    /// let spans = r#"[{"id":"b","parentId":"0000000000000000"}]"#;
    /// let response = client.send_bytes(http::Request::post(url).body(spans.into()).unwrap()).await.unwrap();
    /// assert_eq!(response.status(), 202);
    /// let received = server.await.unwrap();
    /// assert!(received.to_ascii_lowercase().contains("\r\nb3: 0\r\n")); // the export is not traced
    /// assert!(received.ends_with(r#"[{"id":"b","localEndpoint":{"serviceName":"catalog.shop"}}]"#));
    /// # });
    /// ```
    pub fn for_zipkin(service_name: &str, timeout: Duration) -> Self {
        CollectorClient {
            zipkin_service: Some(service_name.to_ascii_lowercase()),
            ..CollectorClient::plain(timeout)
        }
    }

    async fn post(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (mut head, body) = request.into_parts();
        head.headers.insert("b3", HeaderValue::from_static("0"));
        let body = match &self.zipkin_service {
            Some(service) => complete_spans(&body, service).unwrap_or(body),
            None => body,
        };
        let uri = head.uri.clone();
        let request = Request::from_parts(head, Full::new(body));
        let exchange = async {
            let response = self.client.request(request).await?;
            let (head, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, HttpError>(Response::from_parts(head, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                let timeout = self.timeout;
                HttpError::from(format!("trace collector {uri} timed out after {timeout:?}"))
            })?
    }
}

#[async_trait::async_trait]
impl HttpClient for CollectorClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        self.post(request).await
    }
}

/// Adds `localEndpoint.serviceName`, drops all-zero `parentId`s and turns the
/// [`DEBUG_ATTRIBUTE`] tag into `debug: true` in a JSON span list; `None` if `json` is not one.
fn complete_spans(json: &[u8], service_name: &str) -> Option<Bytes> {
    let mut spans: Vec<Value> = serde_json::from_slice(json).ok()?;
    for span in &mut spans {
        let span = span.as_object_mut()?;
        mark_debug(span);
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

/// Sets `debug: true` on a span tagged [`DEBUG_ATTRIBUTE`], and removes that tag.
fn mark_debug(span: &mut Map<String, Value>) {
    let tagged = span
        .get_mut("tags")
        .and_then(Value::as_object_mut)
        .and_then(|tags| tags.remove(DEBUG_ATTRIBUTE))
        .is_some();
    if tagged {
        span.insert("debug".into(), Value::Bool(true));
    }
}

/// An in-test collector, for the exporters' end-to-end tests.
#[cfg(test)]
pub(crate) mod test_collector {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    /// Accepts one HTTP/1.1 request, answers 200, and returns its head (lowercased) and body.
    pub(crate) async fn receive_one(listener: TcpListener) -> (String, Vec<u8>) {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut bytes = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            let n = stream.read(&mut buffer).await.unwrap();
            bytes.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&bytes);
            if let Some(end) = text.find("\r\n\r\n") {
                let head = text[..end].to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if bytes.len() >= end + 4 + length {
                    stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .unwrap();
                    return (head, bytes[end + 4..end + 4 + length].to_vec());
                }
            }
            assert!(n > 0, "connection closed early");
        }
    }
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

    #[test]
    fn the_debug_tag_becomes_zipkin_debug() {
        let json = br#"[{"id":"b","debug":false,"tags":{"mesh.debug":"true","a":"b"}},{"id":"c","debug":false,"tags":{"a":"b"}}]"#;
        let out: Vec<Value> =
            serde_json::from_slice(&complete_spans(json, "catalog").unwrap()).unwrap();
        assert_eq!(out[0]["debug"], true);
        assert_eq!(out[0]["tags"], serde_json::json!({"a": "b"}));
        assert_eq!(out[1]["debug"], false);
    }
}
