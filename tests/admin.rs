//! The admin API end to end (DESIGN.md §3): `/stats`, `/stats/prometheus`, `/clusters`
//! counters, `/logging`, and the dedicated Prometheus listener.

mod support;

use mesh::demo::Http1Client;
use mesh::proxy::{Sidecar, admin::LogFilterControl, sidecar::SidecarSettings};
use mesh::route::config::Config;
use std::sync::{Arc, Mutex};
use support::{Catalog, admin_text, v1_routes};

const V1: &str = "outbound|80|version-v1|catalog.istioinaction.svc.cluster.local";

#[tokio::test]
async fn stats_count_requests_retries_and_connections_per_cluster() {
    let catalog =
        Catalog::with_routes(&v1_routes("    retries: {attempts: 2, retryOn: 5xx}")).await;
    catalog.v1.fail_next(1);
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    for _ in 0..3 {
        let response = client.get("/items", &[("host", "catalog")]).await.unwrap();
        assert_eq!(response.status, 200);
    }
    // 3 requests, the first retried once: 4 attempts, 1 retry.
    let stats = admin_text(&catalog.sidecar, "/stats").await;
    assert!(
        stats.contains(&format!("cluster.{V1}.upstream_rq_total: 4\n")),
        "{stats}"
    );
    assert!(
        stats.contains(&format!("cluster.{V1}.upstream_rq_retry: 1\n")),
        "{stats}"
    );
    assert!(
        stats.contains(&format!("cluster.{V1}.upstream_rq_timeout: 0\n")),
        "{stats}"
    );
    assert!(
        stats.contains(&format!("cluster.{V1}.upstream_cx_active: 1\n")),
        "{stats}"
    );
    assert!(stats.contains("mirror.sent: 0\n"), "{stats}");

    let prometheus = admin_text(&catalog.sidecar, "/stats/prometheus").await;
    assert!(
        prometheus.contains(&format!(
            "envoy_cluster_upstream_rq_total{{cluster_name=\"{V1}\"}} 4\n"
        )),
        "{prometheus}"
    );
    assert!(
        prometheus.contains("# TYPE istio_requests_total counter"),
        "{prometheus}"
    );
    let requests = prometheus
        .lines()
        .find(|l| l.starts_with("istio_requests_total{") && l.contains("response_code=\"200\""))
        .unwrap_or_else(|| panic!("{prometheus}"));
    assert!(requests.ends_with(" 3"), "{requests}");
    assert!(
        prometheus.contains("istio_request_duration_milliseconds_bucket{"),
        "Istio's buckets, not a summary: {prometheus}"
    );
    // Istio's bounds (0.5 ms to an hour), not the recorder's default ones.
    let mut bounds: Vec<f64> = prometheus
        .lines()
        .filter(|l| l.starts_with("istio_request_duration_milliseconds_bucket{"))
        .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next())
        .filter(|le| *le != "+Inf")
        .map(|le| le.parse().unwrap())
        .collect();
    bounds.sort_by(f64::total_cmp);
    bounds.dedup();
    assert_eq!(bounds, mesh::trace::metrics::ISTIO_BUCKETS, "{prometheus}");
    assert!(
        prometheus.contains("istio_build{component=\"proxy\",tag=\""),
        "{prometheus}"
    );

    let clusters = admin_text(&catalog.sidecar, "/clusters").await;
    let v1 = catalog.v1.addr();
    for line in [
        format!("{V1}::{v1}::rq_total::4"),
        format!("{V1}::{v1}::rq_success::3"),
        format!("{V1}::{v1}::rq_error::1"),
        format!("{V1}::{v1}::rq_timeout::0"),
        format!("{V1}::{v1}::cx_active::1"),
    ] {
        assert!(clusters.contains(&line), "missing {line}:\n{clusters}");
    }
}

#[tokio::test]
async fn route_timeouts_count_as_upstream_rq_timeout() {
    let catalog = Catalog::with_routes(&v1_routes("    timeout: 100ms")).await;
    catalog.v1.set_delay(std::time::Duration::from_millis(500));
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    let response = client.get("/items", &[("host", "catalog")]).await.unwrap();
    assert_eq!(response.status, 504);
    let stats = admin_text(&catalog.sidecar, "/stats").await;
    assert!(
        stats.contains(&format!("cluster.{V1}.upstream_rq_timeout: 1\n")),
        "{stats}"
    );
    let clusters = admin_text(&catalog.sidecar, "/clusters").await;
    let line = format!("{V1}::{}::rq_timeout::1", catalog.v1.addr());
    assert!(clusters.contains(&line), "missing {line}:\n{clusters}");
}

#[tokio::test]
async fn logging_changes_the_filter_through_the_control() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let recorded = seen.clone();
    let control = LogFilterControl::new(move |wanted| match wanted {
        Some("bogus=") => Err("invalid log filter".into()),
        Some(level) => {
            recorded.lock().unwrap().push(level.to_owned());
            Ok(level.to_owned())
        }
        None => Ok("info".into()),
    });
    let settings = SidecarSettings {
        log_filter: Some(control),
        disable_access_log: true,
        ..SidecarSettings::default()
    };
    let sidecar = Sidecar::with_settings(Config::default(), settings)
        .unwrap()
        .start(&support::ephemeral())
        .await
        .unwrap();
    assert_eq!(
        admin_text(&sidecar, "/logging?level=debug").await,
        "active log filter: debug\n"
    );
    assert_eq!(
        admin_text(&sidecar, "/logging").await,
        "active log filter: info\n"
    );
    assert_eq!(
        admin_text(&sidecar, "/logging?level=bogus=").await,
        "invalid log filter\n"
    );
    assert_eq!(*seen.lock().unwrap(), vec!["debug".to_owned()]);

    // Without a control the endpoint says so.
    let plain = support::sidecar("").await;
    assert!(
        admin_text(&plain, "/logging?level=debug")
            .await
            .contains("does not let")
    );
}

#[tokio::test]
async fn prometheus_listener_serves_the_metrics_alone() {
    let mut options = support::ephemeral();
    options.prometheus = Some("127.0.0.1:0".parse().unwrap());
    let upstream = mesh::demo::CatalogServer::start("v1", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let sidecar = Sidecar::with_settings(Config::default(), support::quiet())
        .unwrap()
        .start(&options)
        .await
        .unwrap();
    let mut client = Http1Client::connect(sidecar.addr("outbound").unwrap())
        .await
        .unwrap();
    let url = format!("http://{}/items", upstream.addr());
    assert_eq!(client.get(&url, &[]).await.unwrap().status, 200);
    let metrics_addr = sidecar.addr("prometheus").expect("prometheus listener");
    let mut scraper = Http1Client::connect(metrics_addr).await.unwrap();
    let text = scraper
        .get("/metrics", &[("host", "x")])
        .await
        .unwrap()
        .text();
    let passthrough = text
        .lines()
        .find(|l| l.starts_with("istio_requests_total{"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        passthrough.contains("destination_service_name=\"PassthroughCluster\""),
        "{passthrough}"
    );
}
