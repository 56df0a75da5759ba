//! Resilience policy from VirtualService YAML, enforced by the sidecar over real sockets:
//! route timeouts and fault injection.

mod support;

use mesh::demo::Http1Client;
use std::time::{Duration, Instant};
use support::Catalog;

fn routes(policy: &str) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: catalog, namespace: istioinaction}}
spec:
  hosts: [catalog]
  http:
  - route:
    - destination: {{host: catalog, subset: version-v1}}
{policy}
"#
    )
}

#[tokio::test]
async fn route_timeout_answers_504_at_the_deadline() {
    let catalog = Catalog::with_routes(&routes("    timeout: 1s")).await;
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    let start = Instant::now();
    let response = client
        .get("http://catalog/items?delay_ms=3000", &[])
        .await
        .unwrap();
    let elapsed = start.elapsed();
    assert_eq!(response.status, 504);
    assert_eq!(response.text(), "upstream request timeout");
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_millis(2500),
        "504 after {elapsed:?}, expected about 1 s"
    );
    // Within the deadline, the upstream is told how long it has.
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    let response = client.get("http://catalog/items", &[]).await.unwrap();
    assert_eq!(response.status, 200);
    let seen = catalog.v1.last_request().unwrap();
    assert_eq!(seen.headers["x-envoy-expected-rq-timeout-ms"], "1000");
}

#[tokio::test]
async fn fault_abort_answers_locally_without_reaching_upstream() {
    let policy = "    fault:\n      abort: {httpStatus: 503, percentage: {value: 100}}";
    let catalog = Catalog::with_routes(&routes(policy)).await;
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    for _ in 0..10 {
        let response = client.get("http://catalog/items", &[]).await.unwrap();
        assert_eq!(response.status, 503);
        assert_eq!(response.text(), "fault filter abort");
    }
    assert_eq!(catalog.v1.hits(), 0);
}

#[tokio::test]
async fn fault_delay_holds_requests_then_forwards_them() {
    let policy = "    fault:\n      delay: {fixedDelay: 300ms, percentage: {value: 100}}";
    let catalog = Catalog::with_routes(&routes(policy)).await;
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    let start = Instant::now();
    let response = client.get("http://catalog/items", &[]).await.unwrap();
    assert_eq!(response.status, 200);
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(catalog.v1.hits(), 1);
}

#[tokio::test]
async fn fault_abort_share_is_respected() {
    let policy = "    fault:\n      abort: {httpStatus: 500, percentage: {value: 20}}";
    let catalog = Catalog::with_routes(&routes(policy)).await;
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    const N: u64 = 1000;
    for _ in 0..N {
        client.get("http://catalog/items", &[]).await.unwrap();
    }
    let aborted = N - catalog.v1.hits();
    let (n, p) = (N as f64, 0.2);
    assert!(
        (aborted as f64 - n * p).abs() <= 4.0 * (n * p * (1.0 - p)).sqrt(),
        "{aborted} of {N} aborted, expected about 20 %"
    );
}
