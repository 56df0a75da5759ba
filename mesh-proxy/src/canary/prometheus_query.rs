//! [`PrometheusMetrics`]: a canary's checks answered by a Prometheus server, with the PromQL
//! Flagger's Istio provider sends, so that every sidecar reporting the canary workload is
//! judged together.
//!
//! The queries select the canary's workload as its own sidecars report it
//! (`reporter="destination"`, `destination_workload_namespace` the Canary's namespace,
//! `destination_workload` the `mesh/canary-workload` annotation or `targetRef.name`):
//!
//! ```text
//! request-success-rate:
//!   sum(rate(istio_requests_total{…,response_code!~"5.*"}[W])) / sum(rate(istio_requests_total{…}[W])) * 100
//! request-duration:
//!   histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{…}[W])) by (le))
//! ```
//! An empty answer or `NaN` is "no values found": a failed check, as in Flagger.

use super::MeasureError;
use super::metrics::{CanaryMetrics, MeasureFuture, Measurement, MetricQuery};
use crate::upstream::Upstream;
use http::{Request, Uri, uri::Authority};
use http_body_util::BodyExt;
use mesh_core::body;
use mesh_route::config::{
    Canary, Resource,
    canary::{
        CANARY_WORKLOAD, MetricsServerError, REQUEST_DURATION, REQUEST_SUCCESS_RATE,
        check_metrics_server,
    },
};
use std::time::Duration;
use tokio::time::Instant;

/// How long a query may take before it counts as failed.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// A Prometheus server answering canary checks; see the [module docs](self).
///
/// ```
/// use mesh_proxy::canary::PrometheusMetrics;
/// // A path prefix is kept; `https` is refused (no TLS to Prometheus).
/// assert!(PrometheusMetrics::new("http://monitoring.example.com/prometheus").is_ok());
/// let error = PrometheusMetrics::new("https://prometheus:9090").unwrap_err();
/// assert!(error.to_string().contains("https"), "{error}");
/// ```
#[derive(Clone, Debug)]
pub struct PrometheusMetrics {
    authority: Authority,
    /// The server's path prefix (`/prometheus` for `http://host/prometheus`), without the
    /// trailing slash.
    prefix: String,
    upstream: Upstream,
}

impl PrometheusMetrics {
    /// A client of the Prometheus server at `address` (`http://host:port`, maybe with a path).
    ///
    /// ```
    /// use mesh_proxy::canary::PrometheusMetrics;
    /// assert!(PrometheusMetrics::new("http://127.0.0.1:9090").is_ok());
    /// assert!(PrometheusMetrics::new("https://prometheus:9090").is_err());
    /// ```
    pub fn new(address: &str) -> Result<Self, MetricsServerError> {
        check_metrics_server(address)?;
        let invalid = |source| MetricsServerError::Invalid {
            address: address.to_owned(),
            source,
        };
        let uri: Uri = address.parse().map_err(invalid)?;
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| MetricsServerError::NoHost(address.to_owned()))?;
        let authority = match authority.port_u16() {
            Some(_) => authority,
            None => format!("{}:80", authority.host())
                .parse()
                .map_err(invalid)?,
        };
        Ok(PrometheusMetrics {
            authority,
            prefix: uri.path().trim_end_matches('/').to_owned(),
            upstream: Upstream::new(Duration::from_secs(5)),
        })
    }

    async fn query(&self, promql: String) -> Measurement {
        let path = format!(
            "{}/api/v1/query?query={}",
            self.prefix,
            encode_component(&promql)
        );
        let request = Request::get(path)
            .header(http::header::ACCEPT, "application/json")
            .body(body::empty())
            .map_err(|e| MeasureError::Unavailable(format!("the query could not be sent: {e}")))?;
        let answer = tokio::time::timeout(QUERY_TIMEOUT, async {
            let response = self
                .upstream
                .send_to_authority(request, &self.authority)
                .await
                .map_err(|e| {
                    MeasureError::Unavailable(format!(
                        "Prometheus at {} unreachable: {e}",
                        self.authority
                    ))
                })?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| {
                    MeasureError::Unavailable(format!("Prometheus answer cut short: {e}"))
                })?
                .to_bytes();
            Ok::<_, MeasureError>((status, bytes))
        })
        .await
        .map_err(|_| {
            MeasureError::Unavailable(format!(
                "Prometheus did not answer within {QUERY_TIMEOUT:?}"
            ))
        })??;
        parse_answer(answer.0.as_u16(), &answer.1, &promql)
    }
}

impl CanaryMetrics for PrometheusMetrics {
    fn measure<'a>(&'a self, query: MetricQuery<'a>, _now: Instant) -> MeasureFuture<'a> {
        Box::pin(async move {
            let promql = flagger_query(query)?;
            self.query(promql).await
        })
    }
}

/// The PromQL Flagger's Istio provider sends for `query`.
///
/// ```
/// use mesh_proxy::canary::{MetricQuery, flagger_query};
/// use mesh_route::config::{ObjectMeta, Origin, Resource, canary::Canary};
/// use std::time::Duration;
/// let mut spec = Canary::default();
/// spec.target_ref.name = "catalog".into();
/// let meta = ObjectMeta { name: "catalog".into(), namespace: Some("shop".into()), ..ObjectMeta::default() };
/// let canary = Resource { meta, origin: Origin::new("canary.yaml", 0), spec };
/// let query = |metric| MetricQuery { canary: &canary, metric, window: Duration::from_secs(30) };
/// let p99 = flagger_query(query("request-duration")).unwrap();
/// assert!(p99.starts_with("histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{"), "{p99}");
/// assert!(p99.contains(r#"destination_workload_namespace="shop""#), "{p99}");
/// assert_eq!(flagger_query(query("error-budget")).unwrap_err().0, "error-budget");
/// ```
pub fn flagger_query(query: MetricQuery<'_>) -> Result<String, UnknownMetric> {
    let canary = query.canary;
    let selector = format!(
        "reporter=\"destination\",destination_workload_namespace=\"{}\",destination_workload=~\"{}\"",
        canary.namespace().unwrap_or("default"),
        canary_workload(canary)
    );
    let window = prometheus_duration(query.window);
    match query.metric {
        REQUEST_SUCCESS_RATE => Ok(format!(
            "sum(rate(istio_requests_total{{{selector},response_code!~\"5.*\"}}[{window}])) / \
             sum(rate(istio_requests_total{{{selector}}}[{window}])) * 100"
        )),
        REQUEST_DURATION => Ok(format!(
            "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket\
             {{{selector}}}[{window}])) by (le))"
        )),
        other => Err(UnknownMetric(other.to_owned())),
    }
}

/// A canary metric [`flagger_query`] has no query for: only Flagger's built-in
/// `request-success-rate` and `request-duration` are known (custom MetricTemplates are not).
///
/// ```
/// use mesh_proxy::canary::{MetricQuery, UnknownMetric, flagger_query};
/// use mesh_route::config::{ObjectMeta, Origin, Resource, canary::Canary};
/// let mut spec = Canary::default();
/// spec.target_ref.name = "catalog".into();
/// let meta = ObjectMeta { name: "catalog".into(), namespace: Some("shop".into()), ..ObjectMeta::default() };
/// let canary = Resource { meta, origin: Origin::new("canary.yaml", 0), spec };
/// let query = MetricQuery { canary: &canary, metric: "error-budget", window: std::time::Duration::from_secs(60) };
/// let error: UnknownMetric = flagger_query(query).unwrap_err();
/// assert_eq!(error, UnknownMetric("error-budget".into()));
/// assert_eq!(error.to_string(), "unknown metric error-budget");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric {0}")]
pub struct UnknownMetric(pub String);

/// The canary's workload name in Istio's labels.
fn canary_workload(canary: &Resource<Canary>) -> &str {
    canary
        .meta
        .annotations
        .get(CANARY_WORKLOAD)
        .map_or(canary.spec.target_ref.name.as_str(), String::as_str)
}

/// `window` as a PromQL range: whole seconds, or milliseconds.
fn prometheus_duration(window: Duration) -> String {
    if window.subsec_millis() == 0 {
        format!("{}s", window.as_secs().max(1))
    } else {
        format!("{}ms", window.as_millis())
    }
}

/// The value of a Prometheus instant-query answer: the first sample of a vector, or a scalar.
fn parse_answer(status: u16, body: &[u8], promql: &str) -> Measurement {
    let answer: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        MeasureError::BadAnswer(format!("Prometheus answered HTTP {status}, not JSON: {e}"))
    })?;
    if answer["status"] != "success" {
        return Err(MeasureError::BadAnswer(format!(
            "Prometheus refused the query ({}): {}",
            answer["errorType"].as_str().unwrap_or("error"),
            answer["error"].as_str().unwrap_or("no reason given")
        )));
    }
    let data = &answer["data"];
    let sample = match data["resultType"].as_str() {
        Some("scalar") => &data["result"],
        _ => &data["result"][0]["value"],
    };
    sample[1]
        .as_str()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .ok_or_else(|| MeasureError::NoValues(format!("query {promql}")))
}

/// Percent-encodes a URL query component (RFC 3986 unreserved characters stay).
fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary() -> Resource<Canary> {
        let mut spec = Canary::default();
        spec.target_ref.name = "catalog".into();
        Resource::new("catalog", spec).in_namespace("shop")
    }

    #[test]
    fn queries_are_flaggers() {
        let canary = canary();
        let query = |metric| MetricQuery {
            canary: &canary,
            metric,
            window: Duration::from_secs(60),
        };
        let rate = flagger_query(query(REQUEST_SUCCESS_RATE)).unwrap();
        assert_eq!(
            rate,
            "sum(rate(istio_requests_total{reporter=\"destination\",destination_workload_namespace=\"shop\",destination_workload=~\"catalog\",response_code!~\"5.*\"}[60s])) / sum(rate(istio_requests_total{reporter=\"destination\",destination_workload_namespace=\"shop\",destination_workload=~\"catalog\"}[60s])) * 100"
        );
        let p99 = flagger_query(query(REQUEST_DURATION)).unwrap();
        assert!(
            p99.starts_with(
                "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{"
            ),
            "{p99}"
        );
        assert!(p99.ends_with("[60s])) by (le))"), "{p99}");
        assert_eq!(prometheus_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn answers_without_values_are_no_data() {
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.5,"99.5"]}]}}"#;
        assert_eq!(parse_answer(200, vector, "q"), Ok(99.5));
        let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(
            parse_answer(200, empty, "q"),
            Err(MeasureError::NoValues("query q".into()))
        );
        let nan = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#;
        assert!(parse_answer(200, nan, "q").is_err());
        let refused = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        let refusal = parse_answer(400, refused, "q").unwrap_err();
        assert!(matches!(refusal, MeasureError::BadAnswer(_)), "{refusal:?}");
        assert!(refusal.to_string().contains("parse error"), "{refusal}");
        assert_eq!(encode_component("a b{\"}"), "a%20b%7B%22%7D");
    }
}
