//! Istio's standard metrics end to end: requests through the real sidecar, recorded into a
//! debugging recorder, checked series by series — `istio_requests_total` and its labels for
//! each outcome (served, no healthy upstream, timeout, overflow, retried, fault-injected,
//! mirrored, passed through), and the three histograms.

mod support;

use mesh::demo::{Collected, Http1Client};
use mesh::proxy::{sidecar::SidecarSettings, workload_identity::WorkloadSettings};
use std::time::Duration;
use support::{
    Catalog,
    metrics::{Labels, Metrics, total},
    v1_routes as routes,
};

const DURATION: &str = "istio_request_duration_milliseconds";
const REQUEST_BYTES: &str = "istio_request_bytes";
const RESPONSE_BYTES: &str = "istio_response_bytes";

/// The canonical host of the registry's `catalog` ServiceEntry (namespace `istioinaction`).
const CATALOG: &str = "catalog.istioinaction.svc.cluster.local";

/// What every series this sidecar reports carries: the reporter, its own workload (from the
/// [`WorkloadSettings`] of [`start`]), and the request's plain-HTTP facts.
const FROM_WEB: &[(&str, &str)] = &[
    ("reporter", "source"),
    ("source_workload", "web"),
    ("source_workload_namespace", "shop"),
    ("source_app", "web"),
    ("source_version", "v1"),
    ("source_canonical_service", "web"),
    ("source_canonical_revision", "v1"),
    ("request_protocol", "http"),
    ("grpc_response_status", ""),
    ("connection_security_policy", "unknown"),
];

/// The destination labels of a request a catalog v1 endpoint served.
const TO_CATALOG_V1: &[(&str, &str)] = &[
    ("destination_service", CATALOG),
    ("destination_service_name", "catalog"),
    ("destination_service_namespace", "istioinaction"),
    ("destination_app", "catalog"),
    ("destination_version", "v1"),
    ("destination_canonical_service", "catalog"),
    ("destination_canonical_revision", "v1"),
    ("destination_workload_namespace", "istioinaction"),
];

/// The destination labels of a request routed to the catalog service that no endpoint
/// answered: the service is known, the workload is not.
const TO_CATALOG_NO_ENDPOINT: &[(&str, &str)] = &[
    ("destination_service", CATALOG),
    ("destination_service_name", "catalog"),
    ("destination_service_namespace", "istioinaction"),
    ("destination_workload", "unknown"),
    ("destination_app", "unknown"),
    ("destination_version", "unknown"),
    ("destination_canonical_service", "unknown"),
];

/// The one series of `series` with `response_code` `code`.
#[track_caller]
fn series_with_code(series: &[(Labels, u64)], code: u16) -> (Labels, u64) {
    let code = code.to_string();
    let found: Vec<_> = series
        .iter()
        .filter(|(labels, _)| labels["response_code"] == code)
        .collect();
    assert_eq!(found.len(), 1, "one series with code {code}: {series:#?}");
    found[0].clone()
}

/// Checks that `labels` has every `expected` value, and Istio's full set of 25 labels.
#[track_caller]
fn assert_labels(labels: &Labels, expected: &[(&str, &str)]) {
    assert_eq!(labels.len(), 25, "Istio's label set: {labels:#?}");
    for (key, value) in expected {
        assert_eq!(
            labels.get(*key).map(String::as_str),
            Some(*value),
            "label {key} of {labels:#?}"
        );
    }
}

/// Sidecar settings for workload `name` in `namespace` with `labels`, recording its metrics
/// into a debugging recorder read through the returned [`Metrics`].
fn recording(name: &str, namespace: &str, labels: &[(&str, &str)]) -> (SidecarSettings, Metrics) {
    let (recorder, metrics) = Metrics::recorder();
    let settings = SidecarSettings {
        workload: WorkloadSettings {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..WorkloadSettings::default()
        },
        metrics: Some(recorder),
        ..support::quiet()
    };
    (settings, metrics)
}

/// Catalog v1 and v2 behind a sidecar of workload `web` in `shop` (labels `app: web`,
/// `version: v1`) with `routes_yaml`, recording its metrics into a debugging recorder.
async fn start(routes_yaml: &str) -> (Catalog, Metrics) {
    let (settings, metrics) = recording("web", "shop", &[("app", "web"), ("version", "v1")]);
    let catalog = Catalog::with_routes_and_settings(routes_yaml, settings).await;
    (catalog, metrics)
}

/// `GET /items` to the catalog, as an application behind the sidecar sends it.
async fn get_items(client: &mut Http1Client) -> Collected {
    client.get("/items", &[("host", "catalog")]).await.unwrap()
}

#[tokio::test]
async fn served_request_is_counted_with_its_destination_and_sizes() {
    const N: u64 = 3;
    let (catalog, metrics) = start(&routes("")).await;
    let delay = Duration::from_millis(50);
    catalog.v1.set_delay(delay);
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    let mut body_len = 0;
    for _ in 0..N {
        let response = get_items(&mut client).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.headers["x-catalog-version"], "v1");
        body_len = response.body.len();
    }
    assert!(body_len > 0);
    // Recorded by the time the client has the whole response.
    assert_eq!(
        total(&metrics.requests()),
        N,
        "recorded before the client returns"
    );
    let series = metrics.wait_for_requests(N).await;
    assert_eq!(series.len(), 1, "{series:#?}");
    let (labels, count) = &series[0];
    assert_eq!(*count, N);
    assert_labels(labels, FROM_WEB);
    assert_labels(labels, TO_CATALOG_V1);
    assert_labels(labels, &[("response_code", "200"), ("response_flags", "-")]);

    let durations = metrics.samples(DURATION, labels);
    assert_eq!(durations.len(), N as usize, "one duration per request");
    for ms in durations {
        assert!(
            ms >= delay.as_millis() as f64 && ms < 2000.0,
            "duration {ms} ms, upstream took {delay:?}"
        );
    }
    // At least `GET /items HTTP/1.1`, `host: catalog` and the trace headers the sidecar added.
    let request_bytes = metrics.samples(REQUEST_BYTES, labels);
    assert_eq!(
        request_bytes.len(),
        N as usize,
        "one request size per request"
    );
    for bytes in request_bytes {
        assert!(bytes > 40.0, "request of {bytes} bytes");
    }
    let response_bytes = metrics.samples(RESPONSE_BYTES, labels);
    assert_eq!(
        response_bytes.len(),
        N as usize,
        "one response size per request"
    );
    for bytes in response_bytes {
        assert!(
            bytes > body_len as f64 + "content-type: application/json".len() as f64,
            "response of {bytes} bytes for a body of {body_len} bytes plus headers"
        );
    }
}

#[tokio::test]
async fn no_healthy_upstream_is_503_uh_to_the_catalog_service() {
    let routes = support::NO_ENDPOINT_ROUTES;
    let (catalog, metrics) = start(routes).await;
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    for _ in 0..2 {
        let response = get_items(&mut client).await;
        assert_eq!(response.status, 503);
        assert_eq!(response.text(), "no healthy upstream");
    }
    let series = metrics.wait_for_requests(2).await;
    assert_eq!(series.len(), 1, "{series:#?}");
    let (labels, count) = &series[0];
    assert_eq!(*count, 2);
    assert_labels(labels, FROM_WEB);
    assert_labels(labels, TO_CATALOG_NO_ENDPOINT);
    assert_labels(
        labels,
        &[("response_code", "503"), ("response_flags", "UH")],
    );
    assert_eq!(catalog.v1.hits() + catalog.v2.hits(), 0);
}

#[tokio::test]
async fn route_timeout_is_504_ut_to_the_catalog_service() {
    let (catalog, metrics) = start(&routes("    timeout: 200ms")).await;
    catalog.v1.set_delay(Duration::from_secs(1));
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    let response = get_items(&mut client).await;
    assert_eq!(response.status, 504);
    assert_eq!(response.text(), "upstream request timeout");
    let series = metrics.wait_for_requests(1).await;
    assert_eq!(series.len(), 1, "{series:#?}");
    let (labels, count) = &series[0];
    assert_eq!(*count, 1);
    assert_labels(labels, FROM_WEB);
    // Known only from the routing decision the timeout error carries out of the route layer.
    assert_labels(
        labels,
        &[
            ("destination_service", CATALOG),
            ("destination_service_name", "catalog"),
            ("destination_service_namespace", "istioinaction"),
            ("response_code", "504"),
            ("response_flags", "UT"),
        ],
    );
    let durations = metrics.samples(DURATION, labels);
    assert_eq!(durations.len(), 1);
    assert!(
        (190.0..1000.0).contains(&durations[0]),
        "a 200 ms timeout took {} ms",
        durations[0]
    );
}

#[tokio::test]
async fn connect_failure_is_503_uf_to_the_endpoint_tried() {
    let (catalog, metrics) = start(&routes("    retries: {attempts: 0}")).await;
    let proxy = catalog.proxy();
    catalog.v1.kill();
    let mut client = Http1Client::connect(proxy).await.unwrap();
    let response = get_items(&mut client).await;
    assert_eq!(response.status, 503);
    let series = metrics.wait_for_requests(1).await;
    assert_eq!(series.len(), 1, "{series:#?}");
    let (labels, count) = &series[0];
    assert_eq!(*count, 1);
    assert_labels(labels, FROM_WEB);
    // The endpoint's workload, known from the failure the forwarder returns: Envoy reports
    // the upstream host of a connect failure too.
    assert_labels(labels, TO_CATALOG_V1);
    assert_labels(
        labels,
        &[("response_code", "503"), ("response_flags", "UF")],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_overflow_is_503_uo_beside_the_served_request() {
    const N: usize = 6;
    let routes = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: catalog-limited, namespace: istioinaction}
spec:
  host: catalog
  subsets:
  - name: v1-limited
    labels: {version: v1}
    trafficPolicy:
      connectionPool: {http: {http2MaxRequests: 1}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog, namespace: istioinaction}
spec:
  hosts: [catalog]
  http:
  - route:
    - destination: {host: catalog, subset: v1-limited}
    retries: {attempts: 0}
"#;
    let (catalog, metrics) = start(routes).await;
    catalog.v1.set_delay(Duration::from_secs(1));
    let proxy = catalog.proxy();
    let mut clients = Vec::new();
    for _ in 0..N {
        clients.push(Http1Client::connect(proxy).await.unwrap());
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| tokio::spawn(async move { get_items(&mut client).await }))
        .collect();
    let (mut ok, mut overflowed) = (0, 0);
    for task in tasks {
        let response = task.await.unwrap();
        match response.status.as_u16() {
            200 => ok += 1,
            503 => {
                assert_eq!(response.headers["x-envoy-overloaded"], "true");
                overflowed += 1;
            }
            other => panic!("unexpected {other}: {}", response.text()),
        }
    }
    assert!(
        ok >= 1 && overflowed >= 1,
        "{ok} served, {overflowed} overflowed"
    );
    let series = metrics.wait_for_requests(N as u64).await;
    assert_eq!(total(&series), N as u64, "{series:#?}");
    assert_eq!(series.len(), 2, "{series:#?}");
    let (served, served_count) = series_with_code(&series, 200);
    assert_eq!(served_count, ok);
    assert_labels(&served, FROM_WEB);
    assert_labels(&served, TO_CATALOG_V1);
    assert_labels(&served, &[("response_flags", "-")]);
    let (overflow, overflow_count) = series_with_code(&series, 503);
    assert_eq!(overflow_count, overflowed);
    assert_labels(&overflow, FROM_WEB);
    assert_labels(&overflow, TO_CATALOG_NO_ENDPOINT);
    assert_labels(&overflow, &[("response_flags", "UO")]);
}

#[tokio::test]
async fn retried_request_is_counted_once_as_the_client_saw_it() {
    let (catalog, metrics) = start(&routes("    retries: {attempts: 3, retryOn: 5xx}")).await;
    catalog.v1.fail_next(2);
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    let response = get_items(&mut client).await;
    assert_eq!(response.status, 200);
    assert_eq!(catalog.v1.hits(), 3, "two failed tries, then success");
    let series = metrics.wait_for_requests(1).await;
    assert_eq!(
        series.len(),
        1,
        "the failed tries are no series: {series:#?}"
    );
    let (labels, count) = &series[0];
    assert_eq!(*count, 1, "one client request, however many tries");
    assert_labels(labels, FROM_WEB);
    assert_labels(labels, TO_CATALOG_V1);
    assert_labels(labels, &[("response_code", "200"), ("response_flags", "-")]);
    for histogram in [DURATION, REQUEST_BYTES, RESPONSE_BYTES] {
        assert_eq!(metrics.samples(histogram, labels).len(), 1, "{histogram}");
    }
}

#[tokio::test]
async fn fault_abort_is_counted_with_its_status_and_fi() {
    const N: u64 = 3;
    let policy = "    fault:\n      abort: {httpStatus: 418, percentage: {value: 100}}";
    let (catalog, metrics) = start(&routes(policy)).await;
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    for _ in 0..N {
        let response = get_items(&mut client).await;
        assert_eq!(response.status, 418);
        assert_eq!(response.text(), "fault filter abort");
    }
    assert_eq!(catalog.v1.hits(), 0);
    let series = metrics.wait_for_requests(N).await;
    assert_eq!(series.len(), 1, "{series:#?}");
    let (labels, count) = &series[0];
    assert_eq!(*count, N);
    assert_labels(labels, FROM_WEB);
    assert_labels(labels, TO_CATALOG_NO_ENDPOINT);
    assert_labels(
        labels,
        &[("response_code", "418"), ("response_flags", "FI")],
    );
}

#[tokio::test]
async fn mirrored_request_counts_the_primary_only() {
    const N: u64 = 5;
    let routes = std::fs::read_to_string(support::example("catalog/40-mirror-v2.yaml")).unwrap();
    let (catalog, metrics) = start(&routes).await;
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    for _ in 0..N {
        let response = get_items(&mut client).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.headers["x-catalog-version"], "v1");
    }
    // Every shadow has landed on v2 before the metrics are read.
    support::wait_for_hits(&catalog.v2, N, Duration::from_secs(3)).await;
    assert_eq!(catalog.v2.hits(), N, "v2 got the copies");
    let series = metrics.wait_for_requests(N).await;
    assert!(
        series
            .iter()
            .all(|(labels, _)| labels["destination_version"] != "v2"),
        "shadows are not this reporter's requests: {series:#?}"
    );
    assert_eq!(series.len(), 1, "{series:#?}");
    let (labels, count) = &series[0];
    assert_eq!(*count, N);
    assert_labels(labels, FROM_WEB);
    assert_labels(labels, TO_CATALOG_V1);
    assert_labels(labels, &[("response_code", "200"), ("response_flags", "-")]);
}

#[tokio::test]
async fn a_service_entry_host_is_counted_in_the_entrys_namespace() {
    let upstream = mesh::demo::CatalogServer::start("v1", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: api, namespace: partners}}\n\
         spec: {{hosts: [api.example.com], resolution: STATIC, ports: [{{number: 80, name: http}}], \
         endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]}}\n",
        upstream.addr().port()
    );
    let (settings, metrics) = recording("web", "shop", &[("app", "web"), ("version", "v1")]);
    let sidecar = support::sidecar_with(&yaml, settings).await;
    let mut client = Http1Client::connect(sidecar.addr("outbound").unwrap())
        .await
        .unwrap();
    let response = client
        .get("http://api.example.com/items", &[])
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    let series = metrics.wait_for_requests(1).await;
    assert_labels(
        &series[0].0,
        &[
            ("destination_service", "api.example.com"),
            ("destination_service_name", "api.example.com"),
            ("destination_service_namespace", "partners"),
        ],
    );
}

#[tokio::test]
async fn unknown_host_is_counted_as_passthrough_cluster() {
    let (catalog, metrics) = start(&routes("")).await;
    let host = format!("127.0.0.1:{}", catalog.v1.addr().port());
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    let response = client.get("/items", &[("host", &host)]).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["x-catalog-version"], "v1");
    let series = metrics.wait_for_requests(1).await;
    assert_eq!(series.len(), 1, "{series:#?}");
    let (labels, count) = &series[0];
    assert_eq!(*count, 1);
    assert_labels(labels, FROM_WEB);
    assert_labels(
        labels,
        &[
            ("destination_service", "127.0.0.1"),
            ("destination_service_name", "PassthroughCluster"),
            ("destination_service_namespace", "unknown"),
            ("destination_workload", "unknown"),
            ("destination_version", "unknown"),
            ("response_code", "200"),
            ("response_flags", "-"),
        ],
    );
}

#[tokio::test]
async fn inbound_requests_are_reported_by_the_destination() {
    let app = mesh::demo::CatalogServer::start("v2", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\n\
         metadata: {{name: default, namespace: shop}}\n\
         spec:\n  ingress:\n  - port: {{number: 3000, protocol: HTTP, name: http}}\n    \
         defaultEndpoint: 127.0.0.1:{}\n",
        app.addr().port()
    );
    let (settings, metrics) = recording(
        "catalog-v2",
        "shop",
        &[("app", "catalog"), ("version", "v2")],
    );
    let sidecar = support::sidecar_with(&yaml, settings).await;
    let mut client = Http1Client::connect(sidecar.addr("inbound").unwrap())
        .await
        .unwrap();
    let response = client
        .get("/items", &[("host", "catalog.shop.svc.cluster.local:3000")])
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    let series = metrics.wait_for_requests(1).await;
    assert_eq!(total(&series), 1, "{series:#?}");
    assert_labels(
        &series[0].0,
        &[
            ("reporter", "destination"),
            ("destination_workload", "catalog-v2"),
            ("destination_workload_namespace", "shop"),
            ("destination_app", "catalog"),
            ("destination_version", "v2"),
            ("destination_service", "catalog.shop.svc.cluster.local"),
            ("destination_service_name", "catalog"),
            ("destination_service_namespace", "shop"),
            ("source_workload", "unknown"),
            ("connection_security_policy", "none"),
            ("response_code", "200"),
        ],
    );
}
