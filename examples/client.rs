//! The in-process client: a hyper-util client wrapped in the mesh's client layer, with no
//! sidecar in between. `cargo run --example client`
//!
//! The example starts catalog v1 and v2 on free loopback ports, configures the mesh with the
//! catalog story's Istio YAML (internal users to v2, everyone else 90/10, a 1 s timeout, two
//! retries on 5xx, a circuit breaker and outlier detection), and sends requests through it:
//! routing by header and weight, a failure of v1 that the retry hides, trace context on every
//! upstream request, a slow v2 cut off at the route's timeout, a burst past the connection
//! pool's limit answered 503 at once, v1 ejected by outlier detection after five 5xx in a row,
//! and the Istio metrics that result.

use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use mesh::{Mesh, core::BoxError, demo::CatalogServer};
use tower::{Service, ServiceBuilder, ServiceExt};

/// The catalog story's configuration, with the endpoints on `v1` and `v2`.
pub fn catalog_config(v1: u16, v2: u16) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: catalog, namespace: istioinaction}}
spec:
  hosts: [catalog]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {v1}}}, labels: {{app: catalog, version: v1}}}}
  - {{address: 127.0.0.1, ports: {{http: {v2}}}, labels: {{app: catalog, version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: catalog, namespace: istioinaction}}
spec:
  host: catalog
  trafficPolicy:
    # A small pool, so that a burst shows it overflow.
    connectionPool:
      http: {{http1MaxPendingRequests: 64, http2MaxRequests: {POOL}}}
    outlierDetection: {{consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}}
  subsets:
  - {{name: version-v1, labels: {{version: v1}}}}
  - {{name: version-v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: catalog, namespace: istioinaction}}
spec:
  hosts: [catalog]
  http:
  - match: [{{headers: {{x-istio-cohort: {{exact: internal}}}}}}]
    route: [{{destination: {{host: catalog, subset: version-v2}}}}]
    timeout: 1s
  - route:
    - {{destination: {{host: catalog, subset: version-v1}}, weight: 90}}
    - {{destination: {{host: catalog, subset: version-v2}}, weight: 10}}
    timeout: 1s
    retries: {{attempts: 2, retryOn: 5xx, perTryTimeout: 500ms}}
"#
    )
}

/// Concurrent requests the catalog's connection pool admits (`http2MaxRequests`).
pub const POOL: usize = 4;

/// What the example saw.
#[derive(Debug, Default)]
pub struct Report {
    /// Versions that answered the internal cohort's requests.
    pub internal: Vec<String>,
    /// Versions that answered everyone else's requests.
    pub everyone: Vec<String>,
    /// Status of the request whose first attempt v1 failed with 503.
    pub retried_status: u16,
    /// `x-envoy-attempt-count` of the attempt that succeeded.
    pub retried_attempts: String,
    /// Whether every request v1 and v2 received carried a W3C `traceparent`.
    pub traced: bool,
    /// Status of an internal request while v2 took longer than the route's 1 s timeout, and
    /// how long the client waited for it.
    pub timed_out: (u16, std::time::Duration),
    /// Of a burst of `2 × POOL` internal requests while v2 was slow: how many were served,
    /// and how many the connection pool refused at once (503, `x-envoy-overloaded: true`).
    pub burst: (usize, usize),
    /// Whether outlier detection ejected v1 (its endpoint's `/clusters` health flags) after it
    /// answered 503 five times in a row, and how many requests that took.
    pub v1_ejected: (bool, usize),
    /// The mesh's Prometheus text.
    pub prometheus: String,
}

/// Runs the example: `requests` requests from everyone and 10 from the internal cohort.
pub async fn run(requests: usize) -> Result<Report, BoxError> {
    let v1 = CatalogServer::start("v1", "127.0.0.1:0".parse()?).await?;
    let v2 = CatalogServer::start("v2", "127.0.0.1:0".parse()?).await?;
    let mesh = Mesh::builder()
        .yaml(catalog_config(v1.addr().port(), v2.addr().port()))
        .access_log(false)
        .build()?;

    // The application's own client, wrapped: every request goes to `catalog`.
    let http = Client::builder(TokioExecutor::new()).build_http::<mesh::core::Body>();
    let mut catalog = ServiceBuilder::new()
        .layer(mesh.client_layer("catalog")?)
        .service(http);
    // Clones for concurrent requests (cloning a client is cheap).
    let burst_client = catalog.clone();

    let mut report = Report::default();
    let mut get = async |cohort: Option<&str>| -> Result<(u16, String), BoxError> {
        let mut request = Request::get("/items");
        if let Some(cohort) = cohort {
            request = request.header("x-istio-cohort", cohort);
        }
        let request = request.body(Empty::<bytes::Bytes>::new())?;
        let response = ServiceExt::<Request<Empty<bytes::Bytes>>>::ready(&mut catalog)
            .await?
            .call(request)
            .await?;
        let status = response.status().as_u16();
        let version = response
            .headers()
            .get("x-catalog-version")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string();
        response.into_body().collect().await?;
        Ok((status, version))
    };
    for _ in 0..10 {
        report.internal.push(get(Some("internal")).await?.1);
    }
    for _ in 0..requests {
        report.everyone.push(get(None).await?.1);
    }
    // v1 fails the next request once; the route's retry policy sends it again.
    v1.fail_next(1);
    v2.fail_next(1);
    let before = v1.hits() + v2.hits();
    report.retried_status = get(None).await?.0;
    let last = [v1.last_request(), v2.last_request()]
        .into_iter()
        .flatten()
        .filter_map(|seen| seen.headers.get("x-envoy-attempt-count").cloned())
        .max();
    report.retried_attempts = match last {
        Some(count) if v1.hits() + v2.hits() > before + 1 => count.to_str()?.to_string(),
        _ => "1".into(),
    };
    report.traced = v1
        .requests()
        .iter()
        .chain(v2.requests().iter())
        .all(|seen| seen.headers.contains_key("traceparent"));
    // v2 turns slow: the internal cohort's route gives up at its 1 s timeout.
    v2.set_delay(std::time::Duration::from_secs(3));
    let started = std::time::Instant::now();
    let status = get(Some("internal")).await?.0;
    report.timed_out = (status, started.elapsed());
    // A burst twice the pool's size while v2 is slow: the pool admits `POOL`, refuses the
    // rest at once.
    v2.set_delay(std::time::Duration::from_millis(300));
    let burst: Vec<_> = (0..2 * POOL)
        .map(|_| {
            let client = burst_client.clone();
            tokio::spawn(async move {
                let request = Request::get("/items")
                    .header("x-istio-cohort", "internal")
                    .body(Empty::<bytes::Bytes>::new())?;
                client.oneshot(request).await.map_err(BoxError::from)
            })
        })
        .collect();
    for sent in burst {
        let response = sent.await??;
        let overloaded = response.headers().contains_key("x-envoy-overloaded");
        match (response.status().as_u16(), overloaded) {
            (200, false) => report.burst.0 += 1,
            (503, true) => report.burst.1 += 1,
            other => return Err(format!("burst: unexpected {other:?}").into()),
        }
    }
    v2.set_delay(std::time::Duration::ZERO);
    // v1 answers 503 from now on: after five in a row (`consecutive5xxErrors: 5`, retries
    // included) outlier detection ejects it, as the admin API's `/clusters` shows.
    v1.fail_next(u64::MAX);
    let ejected = format!(
        "127.0.0.1:{}::health_flags::/failed_outlier_check",
        v1.addr().port()
    );
    while !report.v1_ejected.0 && report.v1_ejected.1 < 50 {
        get(None).await?;
        report.v1_ejected.1 += 1;
        let clusters = mesh
            .admin_service()
            .oneshot(Request::get("/clusters").body(mesh::core::body::empty())?)
            .await?;
        let text = clusters.into_body().collect().await?.to_bytes();
        report.v1_ejected.0 = String::from_utf8_lossy(&text).contains(&ejected);
    }
    v1.fail_next(0);
    report.prometheus = mesh.render_prometheus().unwrap_or_default();
    Ok(report)
}

#[allow(dead_code)] // The tests share `run` and leave `main` out.
#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let report = run(100).await?;
    let count = |versions: &[String], v: &str| versions.iter().filter(|x| *x == v).count();
    println!(
        "internal cohort: {} of 10 to v2",
        count(&report.internal, "v2")
    );
    println!(
        "everyone else:   {} to v1, {} to v2 (90/10)",
        count(&report.everyone, "v1"),
        count(&report.everyone, "v2")
    );
    println!(
        "a 503 from the upstream, retried: status {} after {} attempts",
        report.retried_status, report.retried_attempts
    );
    println!("trace context on every upstream request: {}", report.traced);
    println!(
        "v2 slower than the 1 s timeout: status {} after {:?}",
        report.timed_out.0, report.timed_out.1
    );
    println!(
        "a burst of {} while v2 is slow: {} served, {} refused by the pool (503 UO)",
        2 * POOL,
        report.burst.0,
        report.burst.1
    );
    println!(
        "v1 answering 503: ejected by outlier detection: {} (after {} requests)",
        report.v1_ejected.0, report.v1_ejected.1
    );
    println!("\nIstio metrics:");
    for line in report.prometheus.lines() {
        if line.starts_with("istio_requests_total") {
            println!("{line}");
        }
    }
    Ok(())
}
