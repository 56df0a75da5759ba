//! Resilience policy from VirtualService YAML, enforced by the sidecar over real sockets:
//! route timeouts (from the end of the request) and fault injection.

mod support;

use mesh::demo::Http1Client;
use std::time::{Duration, Instant};
use support::{Catalog, v1_routes as routes};

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
async fn the_route_timeout_runs_from_the_end_of_a_slow_upload() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A 1 s route timeout, and an upload that takes 1.8 s to send (2 bytes every 300 ms):
    // Envoy starts the clock at the end of the request, so the upstream's answer 200 ms later
    // gets through.
    let catalog = Catalog::with_routes(&routes("    timeout: 1s")).await;
    let mut client = tokio::net::TcpStream::connect(catalog.proxy())
        .await
        .unwrap();
    let start = Instant::now();
    let head = "POST /items?delay_ms=200 HTTP/1.1\r\nhost: catalog\r\ncontent-length: 12\r\n\r\n";
    client.write_all(head.as_bytes()).await.unwrap();
    for piece in ["up", "lo", "ad", "ed", "sl", "ow"] {
        tokio::time::sleep(Duration::from_millis(300)).await;
        client.write_all(piece.as_bytes()).await.unwrap();
    }
    let mut response = vec![0; 4096];
    let read = client.read(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response[..read]);
    let elapsed = start.elapsed();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(catalog.v1.last_request().unwrap().body, "uploadedslow");
    assert!(elapsed >= Duration::from_millis(2000), "{elapsed:?}");

    // A client that stops sending mid-upload is not waited for without bound: the timeout
    // fires a whole timeout after the last part arrived.
    let mut client = tokio::net::TcpStream::connect(catalog.proxy())
        .await
        .unwrap();
    let start = Instant::now();
    client.write_all(head.as_bytes()).await.unwrap();
    client.write_all(b"stalled").await.unwrap();
    let mut response = vec![0; 4096];
    let read = client.read(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response[..read]);
    let elapsed = start.elapsed();
    assert!(response.starts_with("HTTP/1.1 504"), "{response}");
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_millis(2500),
        "{elapsed:?}"
    );
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

/// Retry-related end-to-end checks: routes to v1 with a retry policy.
fn retry_routes(retries: &str) -> String {
    routes(&format!("    retries: {retries}"))
}

#[tokio::test]
async fn retries_recover_and_count_attempts() {
    let catalog = Catalog::with_routes(&retry_routes("{attempts: 3, retryOn: 5xx}")).await;
    catalog.v1.fail_next(2);
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    let response = client.get("http://catalog/items", &[]).await.unwrap();
    assert_eq!(response.status, 200);
    let attempts: Vec<String> = catalog
        .v1
        .requests()
        .iter()
        .map(|r| {
            r.headers["x-envoy-attempt-count"]
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
}

#[tokio::test]
async fn exhausted_retries_return_the_last_answer() {
    let catalog = Catalog::with_routes(&retry_routes("{attempts: 2, retryOn: 5xx}")).await;
    catalog.v1.fail_next(10);
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    let response = client.get("http://catalog/items", &[]).await.unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(catalog.v1.hits(), 3, "one try and two retries");
}

#[tokio::test]
async fn zero_attempts_disable_retries() {
    let catalog = Catalog::with_routes(&retry_routes("{attempts: 0}")).await;
    catalog.v1.fail_next(1);
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    assert_eq!(
        client
            .get("http://catalog/items", &[])
            .await
            .unwrap()
            .status,
        503
    );
    assert_eq!(catalog.v1.hits(), 1);
}

/// A ServiceEntry `pool.example.com` over `servers`, with a DestinationRule carrying
/// `traffic_policy` (YAML, indented for `trafficPolicy:`), and a VirtualService with `retries`.
fn pool_config(
    servers: &[&mesh::demo::CatalogServer],
    traffic_policy: &str,
    retries: &str,
) -> String {
    let endpoints: String = servers
        .iter()
        .map(|s| {
            format!(
                "  - {{address: 127.0.0.1, ports: {{http: {}}}}}\n",
                s.addr().port()
            )
        })
        .collect();
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: pool}}
spec:
  hosts: [pool.example.com]
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints:
{endpoints}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: pool}}
spec:
  host: pool.example.com
  trafficPolicy:
{traffic_policy}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: pool}}
spec:
  hosts: [pool.example.com]
  http:
  - route: [{{destination: {{host: pool.example.com}}}}]
    retries: {retries}
"#
    )
}

async fn upstreams(n: usize) -> Vec<mesh::demo::CatalogServer> {
    let mut servers = Vec::new();
    for _ in 0..n {
        servers.push(
            mesh::demo::CatalogServer::start("v1", "127.0.0.1:0".parse().unwrap())
                .await
                .unwrap(),
        );
    }
    servers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_limit_overflows_at_once_with_uo() {
    let servers = upstreams(1).await;
    let yaml = pool_config(
        &[&servers[0]],
        "    connectionPool: {http: {http2MaxRequests: 1}}",
        "{attempts: 0}",
    );
    let sidecar = support::sidecar(&yaml).await;
    let proxy = sidecar.addr("outbound").unwrap();
    // Every client connects first, then all send at once: the one request admitted holds the
    // pool for 2 s, far longer than the others take to arrive, however slow the machine.
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(Http1Client::connect(proxy).await.unwrap());
    }
    let mut tasks = Vec::new();
    for mut client in clients {
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            let response = client
                .get("http://pool.example.com/items?delay_ms=2000", &[])
                .await
                .unwrap();
            (response, start.elapsed())
        }));
    }
    let mut ok = 0;
    for task in tasks {
        let (response, elapsed) = task.await.unwrap();
        match response.status.as_u16() {
            200 => ok += 1,
            503 => {
                assert_eq!(response.headers["x-envoy-overloaded"], "true");
                assert!(
                    elapsed < Duration::from_millis(500),
                    "overflow must be immediate: {elapsed:?}"
                );
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1, "one request fits the pool");
    assert_eq!(servers[0].hits(), 1);
    let clusters = support::admin_text(&sidecar, "/clusters").await;
    assert!(
        clusters.contains("outbound|80||pool.example.com::circuit_breakers::max_requests::1"),
        "{clusters}"
    );
    assert!(
        clusters.contains("outbound|80||pool.example.com::circuit_breakers::overflows::19"),
        "{clusters}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_endpoint_is_ejected_until_its_time_passes() {
    let servers = upstreams(3).await;
    servers[0].fail_next(u64::MAX);
    let policy = "    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 2s, maxEjectionPercent: 100}";
    let yaml = pool_config(&servers.iter().collect::<Vec<_>>(), policy, "{attempts: 0}");
    let sidecar = support::sidecar(&yaml).await;
    let mut client = Http1Client::connect(sidecar.addr("outbound").unwrap())
        .await
        .unwrap();
    for _ in 0..60 {
        client
            .get("http://pool.example.com/items", &[])
            .await
            .unwrap();
    }
    assert_eq!(servers[0].hits(), 2, "ejected after two consecutive 5xx");
    let ejected_at = Instant::now();
    for _ in 0..60 {
        assert_eq!(
            client
                .get("http://pool.example.com/items", &[])
                .await
                .unwrap()
                .status,
            200
        );
    }
    assert_eq!(
        servers[0].hits(),
        2,
        "no request reaches an ejected endpoint"
    );
    tokio::time::sleep(Duration::from_millis(2100).saturating_sub(ejected_at.elapsed())).await;
    for _ in 0..60 {
        client
            .get("http://pool.example.com/items", &[])
            .await
            .unwrap();
    }
    assert!(
        servers[0].hits() > 2,
        "back in the pool after its ejection time"
    );
}

#[tokio::test]
async fn a_destination_rules_retry_budget_holds_retries_back() {
    let servers = upstreams(1).await;
    servers[0].fail_next(u64::MAX);
    let retries = "{attempts: 2, retryOn: 5xx}";
    // A budget that leaves no room, and one with a floor of one concurrent retry.
    for (budget, hits) in [
        ("{percent: 0, minRetryConcurrency: 0}", 1),
        ("{percent: 0, minRetryConcurrency: 1}", 3),
    ] {
        let policy = format!("    retryBudget: {budget}");
        let yaml = pool_config(&servers.iter().collect::<Vec<_>>(), &policy, retries);
        let sidecar = support::sidecar(&yaml).await;
        let mut client = Http1Client::connect(sidecar.addr("outbound").unwrap())
            .await
            .unwrap();
        let before = servers[0].hits();
        let response = client
            .get("http://pool.example.com/items", &[])
            .await
            .unwrap();
        assert_eq!(response.status, 503, "{budget}");
        assert_eq!(servers[0].hits() - before, hits, "{budget}");
    }
}

#[tokio::test]
async fn with_every_endpoint_ejected_requests_fail_fast_with_uh_and_clusters_shows_why() {
    let servers = upstreams(1).await;
    servers[0].fail_next(u64::MAX);
    let policy = "    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}";
    let yaml = pool_config(&servers.iter().collect::<Vec<_>>(), policy, "{attempts: 0}");
    let sidecar = support::sidecar(&yaml).await;
    let mut client = Http1Client::connect(sidecar.addr("outbound").unwrap())
        .await
        .unwrap();
    let first = client
        .get("http://pool.example.com/items", &[])
        .await
        .unwrap();
    // The upstream's own 503, which ejects it.
    assert_eq!(servers[0].hits(), 1);
    assert_eq!(first.status, 503);
    assert_ne!(first.text(), "no healthy upstream");
    for _ in 0..5 {
        let sent = Instant::now();
        let response = client
            .get("http://pool.example.com/items", &[])
            .await
            .unwrap();
        assert_eq!(
            (response.status.as_u16(), response.text().as_str()),
            (503, "no healthy upstream")
        );
        assert!(
            sent.elapsed() < Duration::from_millis(500),
            "{:?}",
            sent.elapsed()
        );
    }
    assert_eq!(servers[0].hits(), 1, "nothing reaches the ejected endpoint");
    let clusters = support::admin_text(&sidecar, "/clusters").await;
    let host = servers[0].addr().to_string();
    let stat = |name: &str| {
        clusters
            .lines()
            .find(|l| l.contains(&format!("::{host}::{name}::")))
            .and_then(|l| l.rsplit("::").next())
            .unwrap_or_else(|| panic!("no {name} for {host}: {clusters}"))
            .to_owned()
    };
    assert_eq!(stat("health_flags"), "/failed_outlier_check");
    assert_eq!(stat("outlier::times_ejected"), "1");
    let left: u64 = stat("outlier::ejected_for_ms").parse().unwrap();
    assert!((25_000..=30_000).contains(&left), "{left}");
    assert!(clusters.contains("::outlier::ejections::1\n"), "{clusters}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_never_answers_is_ejected_by_its_timeouts() {
    let servers = upstreams(2).await;
    servers[0].set_delay(Duration::from_secs(30));
    let policy = "    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}";
    // Each attempt is abandoned at the route's timeout: a local-origin failure of its host.
    let retries = "{attempts: 0}\n    timeout: 200ms";
    let yaml = pool_config(&servers.iter().collect::<Vec<_>>(), policy, retries);
    let sidecar = support::sidecar(&yaml).await;
    let mut client = Http1Client::connect(sidecar.addr("outbound").unwrap())
        .await
        .unwrap();
    let mut timeouts = 0;
    for _ in 0..30 {
        let response = client
            .get("http://pool.example.com/items", &[])
            .await
            .unwrap();
        timeouts += u32::from(response.status == 504);
    }
    assert_eq!(timeouts, 2, "ejected after two timeouts");
    assert_eq!(servers[0].hits(), 2);
    for _ in 0..30 {
        let response = client
            .get("http://pool.example.com/items", &[])
            .await
            .unwrap();
        assert_eq!(response.status, 200);
    }
    assert_eq!(servers[0].hits(), 2, "no request reaches the ejected host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_budget_bounds_attempts_during_an_outage() {
    const SECONDS: u64 = 10;
    const RATE: u64 = 100;
    let servers = upstreams(1).await;
    servers[0].fail_next(u64::MAX);
    let yaml = pool_config(
        &[&servers[0]],
        "    loadBalancer: {simple: ROUND_ROBIN}",
        "{attempts: 3, retryOn: 5xx}",
    );
    let started = Instant::now();
    let sidecar = support::sidecar(&yaml).await;
    let mut client = Http1Client::connect(sidecar.addr("outbound").unwrap())
        .await
        .unwrap();
    let mut ticker = tokio::time::interval(Duration::from_millis(1000 / RATE));
    let mut requests = 0u64;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(SECONDS) {
        ticker.tick().await;
        assert_eq!(
            client
                .get("http://pool.example.com/items", &[])
                .await
                .unwrap()
                .status,
            503
        );
        requests += 1;
    }
    let attempts = servers[0].hits();
    // The budget's floor: 10 retries/s since the sidecar started, plus the second's worth it
    // starts with.
    let floor = 10.0 * (started.elapsed().as_secs_f64() + 1.0);
    assert!(
        attempts as f64 <= 1.2 * requests as f64 + floor,
        "{attempts} upstream attempts for {requests} requests (budget: 20 % + {floor:.0})"
    );
    assert!(attempts > requests, "some retries were made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_service_in_an_outage_does_not_spend_the_retries_of_another() {
    let servers = upstreams(2).await;
    servers[0].fail_next(u64::MAX);
    let service = |name: &str, server: &mesh::demo::CatalogServer| {
        let port = server.addr().port();
        format!(
            r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}}}
spec:
  hosts: [{name}.example.com]
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}}}
spec:
  hosts: [{name}.example.com]
  http:
  - route: [{{destination: {{host: {name}.example.com}}}}]
    retries: {{attempts: 3, retryOn: 5xx}}
---"#
        )
    };
    let yaml = service("down", &servers[0]) + &service("flaky", &servers[1]);
    let sidecar = support::sidecar(&yaml).await;
    let mut client = Http1Client::connect(sidecar.addr("outbound").unwrap())
        .await
        .unwrap();
    // The outage spends its service's budget: 200 requests may retry 20 % + the floor.
    for _ in 0..200 {
        let response = client.get("http://down.example.com/", &[]).await.unwrap();
        assert_eq!(response.status, 503);
    }
    assert!(
        servers[0].hits() < 2 * 200,
        "the outage's retries are budgeted"
    );
    // Another service's failures are still retried, from a budget of its own.
    for _ in 0..5 {
        servers[1].fail_next(1);
        let response = client.get("http://flaky.example.com/", &[]).await.unwrap();
        assert_eq!(response.status, 200);
    }
    assert_eq!(servers[1].hits(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_an_endpoint_mid_load_is_invisible_to_clients() {
    let mut servers = upstreams(2).await;
    let yaml = pool_config(
        &servers.iter().collect::<Vec<_>>(),
        "    loadBalancer: {simple: ROUND_ROBIN}",
        "{attempts: 3, retryOn: \"connect-failure,reset\"}",
    );
    let sidecar = support::sidecar(&yaml).await;
    let proxy = sidecar.addr("outbound").unwrap();
    let mut workers = Vec::new();
    for _ in 0..4 {
        workers.push(tokio::spawn(async move {
            let mut client = Http1Client::connect(proxy).await.unwrap();
            let mut errors = 0;
            for _ in 0..300 {
                if client
                    .get("http://pool.example.com/items", &[])
                    .await
                    .unwrap()
                    .status
                    != 200
                {
                    errors += 1;
                }
            }
            errors
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    servers.remove(0).kill();
    let mut errors = 0;
    for worker in workers {
        errors += worker.await.unwrap();
    }
    assert_eq!(
        errors, 0,
        "client-visible errors after killing one of two endpoints"
    );
    assert!(
        servers[0].hits() > 600,
        "the survivor took over: {}",
        servers[0].hits()
    );
}

/// Sends `n` sequential requests to one upstream through a sidecar whose DestinationRule has
/// `traffic_policy`, waiting `pause` before the last, and returns how many connections the
/// upstream accepted.
async fn upstream_connections(traffic_policy: &str, n: usize, pause: Duration) -> u64 {
    upstream_connections_over("HTTP", traffic_policy, n, pause).await
}

/// [`upstream_connections`] with the upstream port's `protocol` (`HTTP` or `HTTP2`).
async fn upstream_connections_over(
    protocol: &str,
    traffic_policy: &str,
    n: usize,
    pause: Duration,
) -> u64 {
    let servers = upstreams(1).await;
    let config = pool_config(&[&servers[0]], traffic_policy, "{attempts: 0}")
        .replace("protocol: HTTP}", &format!("protocol: {protocol}}}"));
    let sidecar = support::sidecar(&config).await;
    let mut client = Http1Client::connect(sidecar.addr("outbound").unwrap())
        .await
        .unwrap();
    for i in 0..n {
        if i + 1 == n {
            tokio::time::sleep(pause).await;
        }
        let response = client
            .get("http://pool.example.com/items", &[])
            .await
            .unwrap();
        assert_eq!(response.status, 200);
    }
    servers[0].connections()
}

#[tokio::test]
async fn connection_pool_keep_alive_settings() {
    // Defaults: one pooled connection serves sequential requests.
    let pooled =
        upstream_connections("    loadBalancer: {simple: RANDOM}", 5, Duration::ZERO).await;
    assert_eq!(pooled, 1);
    // maxRequestsPerConnection: 1 turns keep-alive off.
    let policy = "    connectionPool: {http: {maxRequestsPerConnection: 1}}";
    assert_eq!(upstream_connections(policy, 5, Duration::ZERO).await, 5);
    // A larger limit retires each connection after that many requests, over HTTP/1.1 and
    // HTTP/2 alike.
    let policy = "    connectionPool: {http: {maxRequestsPerConnection: 3}}";
    for protocol in ["HTTP", "HTTP2"] {
        let pooled = upstream_connections_over(protocol, "", 9, Duration::ZERO).await;
        assert_eq!(pooled, 1, "{protocol} without a limit");
        let limited = upstream_connections_over(protocol, policy, 9, Duration::ZERO).await;
        assert_eq!(limited, 3, "{protocol}");
    }
    // idleTimeout closes pooled connections that sit idle longer.
    let policy = "    connectionPool: {http: {idleTimeout: 200ms}}";
    assert_eq!(
        upstream_connections(policy, 3, Duration::from_millis(600)).await,
        2
    );
    assert_eq!(
        upstream_connections(
            "    connectionPool: {http: {idleTimeout: 5s}}",
            3,
            Duration::from_millis(600)
        )
        .await,
        1,
        "within the idle timeout the connection is reused"
    );
}
