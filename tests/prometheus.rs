//! The sidecar's Istio metrics as a real Prometheus server sees them: Prometheus scrapes the
//! admin's `/stats/prometheus` every second while known traffic goes through the sidecar, and
//! the counts and latency histogram are checked through Prometheus's query API.
//!
//! Needs the `prometheus` binary (Debian's `prometheus` package; `PROMETHEUS_BIN` overrides).

mod support;

use mesh::demo::Http1Client;
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};
use support::{
    Catalog,
    prometheus::{PrometheusServer, Sample, samples, scalar},
};

/// v2 for `x-istio-cohort: internal`, a 503 fault abort for `x-fail: abort`, else v1.
const ROUTES: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog, namespace: istioinaction}
spec:
  hosts: [catalog]
  http:
  - match:
    - headers:
        x-fail: {exact: abort}
    fault:
      abort: {httpStatus: 503, percentage: {value: 100}}
    route:
    - destination: {host: catalog, subset: version-v1}
  - match:
    - headers:
        x-istio-cohort: {exact: internal}
    route:
    - destination: {host: catalog, subset: version-v2}
  - route:
    - destination: {host: catalog, subset: version-v1}
"#;

const TO_V1: u64 = 300;
const TO_V2: u64 = 100;
const ABORTED: u64 = 50;
const TOTAL: u64 = TO_V1 + TO_V2 + ABORTED;

/// `count` requests with `headers`, each answered with `status` by catalog `version` (`None`:
/// answered by the sidecar itself).
struct Traffic {
    count: u64,
    headers: &'static [(&'static str, &'static str)],
    status: u16,
    version: Option<&'static str>,
}

/// `samples` keyed by the values of `labels`, in that order.
fn by(samples: &[Sample], labels: &[&str]) -> BTreeMap<Vec<String>, f64> {
    samples
        .iter()
        .map(|s| {
            let key = labels
                .iter()
                .map(|l| s.labels.get(*l).cloned().unwrap_or_default())
                .collect();
            (key, s.value)
        })
        .collect()
}

fn expected(rows: &[(&[&str], u64)]) -> BTreeMap<Vec<String>, f64> {
    rows.iter()
        .map(|(key, n)| (key.iter().map(|s| s.to_string()).collect(), *n as f64))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_istio_request_metrics_from_the_sidecar() {
    let started = Instant::now();
    let catalog = Catalog::with_routes(ROUTES).await;
    let admin = catalog.sidecar.addr("admin").unwrap();
    let prometheus = PrometheusServer::start(admin, "/stats/prometheus").await;
    let job = prometheus.job.clone();

    // The target is scraped and healthy before any count is trusted.
    let up = format!("up{{job=\"{job}\"}}");
    prometheus
        .wait_for(&up, |a| scalar(a) == Some(1.0), Duration::from_secs(20))
        .await;

    // Known traffic, sequentially on one kept-alive connection.
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    let kinds = [
        Traffic {
            count: TO_V1,
            headers: &[("host", "catalog")],
            status: 200,
            version: Some("v1"),
        },
        Traffic {
            count: TO_V2,
            headers: &[("host", "catalog"), ("x-istio-cohort", "internal")],
            status: 200,
            version: Some("v2"),
        },
        Traffic {
            count: ABORTED,
            headers: &[("host", "catalog"), ("x-fail", "abort")],
            status: 503,
            version: None,
        },
    ];
    for Traffic {
        count,
        headers,
        status,
        version,
    } in kinds
    {
        for i in 0..count {
            let response = client.get("/items", headers).await.unwrap();
            assert_eq!(response.status, status, "request {i} with {headers:?}");
            assert_eq!(
                response
                    .headers
                    .get("x-catalog-version")
                    .and_then(|v| v.to_str().ok()),
                version,
                "request {i} with {headers:?}"
            );
        }
    }
    assert_eq!(catalog.v1.hits(), TO_V1, "aborted requests never reach v1");
    assert_eq!(catalog.v2.hits(), TO_V2);

    // Prometheus's latest sample shows every request.
    let total = "sum(istio_requests_total)";
    prometheus
        .wait_for(
            total,
            |a| scalar(a) == Some(TOTAL as f64),
            Duration::from_secs(20),
        )
        .await;

    let per_version = prometheus
        .query("sum by (destination_version, response_code) (istio_requests_total)")
        .await;
    assert_eq!(
        by(
            &samples(&per_version),
            &["destination_version", "response_code"]
        ),
        expected(&[
            (&["v1", "200"], TO_V1),
            (&["v2", "200"], TO_V2),
            // A fault abort picks no endpoint: the destination workload is unknown.
            (&["unknown", "503"], ABORTED),
        ]),
        "{per_version}"
    );

    let per_flags = prometheus
        .query("sum by (response_flags, response_code) (istio_requests_total)")
        .await;
    assert_eq!(
        by(&samples(&per_flags), &["response_flags", "response_code"]),
        expected(&[(&["-", "200"], TO_V1 + TO_V2), (&["FI", "503"], ABORTED)]),
        "{per_flags}"
    );

    let per_reporter = prometheus
        .query("sum by (reporter, destination_service_name, request_protocol, job) (istio_requests_total)")
        .await;
    assert_eq!(
        by(
            &samples(&per_reporter),
            &[
                "reporter",
                "destination_service_name",
                "request_protocol",
                "job"
            ]
        ),
        expected(&[(&["source", "catalog", "http", job.as_str()], TOTAL)]),
        "{per_reporter}"
    );

    // The latency histogram holds every request, and its 99th percentile is a number.
    let durations = prometheus
        .wait_for(
            "sum(istio_request_duration_milliseconds_count)",
            |a| scalar(a) == Some(TOTAL as f64),
            Duration::from_secs(10),
        )
        .await;
    let inf_bucket = prometheus
        .query("sum(istio_request_duration_milliseconds_bucket{le=\"+Inf\"})")
        .await;
    assert_eq!(scalar(&inf_bucket), Some(TOTAL as f64), "{inf_bucket}");
    let p99 = prometheus
        .query("histogram_quantile(0.99, sum by (le) (istio_request_duration_milliseconds_bucket))")
        .await;
    let value = scalar(&p99).unwrap_or_else(|| panic!("no p99: {p99}"));
    assert!(
        value.is_finite() && value >= 0.0,
        "p99 latency {value} ms: {p99} (count: {durations})"
    );

    let elapsed = started.elapsed();
    eprintln!("p99 latency {value} ms; test took {elapsed:?}");
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
}

/// A canary judged through Prometheus, as a fleet would be: v2 runs behind a sidecar of its own
/// (workload `catalog-v2`) whose `reporter="destination"` metrics Prometheus scrapes; the
/// routing sidecar's canary controller asks Prometheus Flagger's queries each pass, steps v2 up
/// to 50% and promotes it.
#[tokio::test]
async fn a_canary_judged_through_prometheus_is_promoted() {
    use mesh::proxy::{
        LiveSidecar,
        canary::{CanaryController, CanaryOptions},
        workload_identity::WorkloadSettings,
    };
    let (v1, v2, _) = support::catalog_upstreams().await;
    let v2_sidecar = support::sidecar_with(
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: Sidecar\n\
             metadata: {{name: catalog-v2, namespace: istioinaction}}\nspec:\n  ingress:\n  \
             - port: {{number: 3000, protocol: HTTP, name: http}}\n    \
             defaultEndpoint: 127.0.0.1:{}\n",
            v2.addr().port()
        ),
        mesh::proxy::sidecar::SidecarSettings {
            workload: WorkloadSettings {
                name: Some("catalog-v2".into()),
                namespace: Some("istioinaction".into()),
                ..WorkloadSettings::default()
            },
            ..support::quiet()
        },
    )
    .await;
    let prometheus =
        PrometheusServer::start(v2_sidecar.addr("admin").unwrap(), "/stats/prometheus").await;

    let registry = std::fs::read_to_string(support::example("catalog/00-registry.yaml")).unwrap();
    let registry = mesh::demo::point_registry(
        &registry,
        v1.addr().port(),
        v2_sidecar.addr("inbound").unwrap().port(),
    );
    let canary = format!(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\n\
         metadata:\n  name: catalog\n  namespace: istioinaction\n  annotations:\n    \
         mesh/primary-subset: version-v1\n    mesh/canary-subset: version-v2\n    \
         mesh/canary-workload: catalog-v2\n\
         spec:\n  metricsServer: http://{}\n  \
         targetRef: {{apiVersion: apps/v1, kind: Deployment, name: catalog}}\n  \
         service: {{port: 80}}\n  analysis:\n    interval: 2s\n    threshold: 10\n    \
         stepWeight: 50\n    maxWeight: 50\n    metrics:\n    \
         - {{name: request-success-rate, thresholdRange: {{min: 99}}, interval: 30s}}\n    \
         - {{name: request-duration, thresholdRange: {{max: 500}}, interval: 30s}}\n",
        prometheus.addr
    );
    let config = mesh::config::Config::from_yaml_str(&format!("{registry}\n---\n{canary}"))
        .unwrap()
        .config;
    let live = LiveSidecar::new(config, support::quiet()).unwrap();
    let running = live.start(&support::ephemeral()).await.unwrap();
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(CanaryController::new(live.clone(), CanaryOptions::default()).run(stopped));

    let mut client = Http1Client::connect(running.addr("outbound").unwrap())
        .await
        .unwrap();
    let admin = running.addr("admin").unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        let response = client.get("/items", &[("host", "catalog")]).await.unwrap();
        assert_eq!(response.status.as_u16(), 200);
        let mut admin_client = Http1Client::connect(admin).await.unwrap();
        let canaries = admin_client
            .get("/canaries", &[("host", "admin")])
            .await
            .unwrap()
            .text();
        let canaries: serde_json::Value = serde_json::from_str(&canaries).unwrap();
        let phase = canaries[0]["phase"].as_str().unwrap().to_owned();
        if phase == "Succeeded" || phase == "Failed" {
            break canaries[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "still {phase}: {canaries}\nPrometheus log: {}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status["phase"], "Succeeded", "{status}");
    // Prometheus answered the controller's queries: two checks per judged pass (this test
    // asks none before this one).
    let asked = prometheus.queries_answered().await;
    assert!(asked >= 2, "Prometheus answered {asked} queries");
    assert_eq!(
        status["metricsSource"],
        format!("http://{}", prometheus.addr)
    );
    // The promoting pass was judged on Prometheus's answers: v2's success rate and p99.
    let checks = status["checks"].as_array().unwrap();
    assert_eq!(checks[0]["value"], 100.0, "{status}");
    assert!(
        checks[1]["value"].as_f64().is_some_and(|p99| p99 <= 500.0),
        "{status}"
    );
    assert!(v2.hits() > 0);
    running.shutdown().await;
}
