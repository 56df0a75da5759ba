//! The sidecar's other listeners: inbound (Sidecar `ingress` → the local app) and admin
//! (`/ready`, `/config_dump`, `/clusters`).

mod support;

use mesh::demo::{CatalogServer, Http1Client};
use support::{Catalog, sidecar};

#[tokio::test]
async fn sidecar_ingress_forwards_to_the_local_app() {
    let app = CatalogServer::start("v2", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let yaml = format!(
        r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default, namespace: istioinaction}}
spec:
  ingress:
  - port: {{number: 3000, protocol: HTTP, name: http}}
    defaultEndpoint: 127.0.0.1:{}
"#,
        app.addr().port()
    );
    let sidecar = sidecar(&yaml).await;
    let inbound = sidecar
        .addr("inbound")
        .expect("an ingress starts the inbound listener");
    let mut client = Http1Client::connect(inbound).await.unwrap();
    let response = client
        .get("/items", &[("host", "catalog:3000")])
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["x-catalog-version"], "v2");
    let seen = app.last_request().unwrap();
    assert_eq!(seen.headers["host"], "catalog:3000");
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
}

#[tokio::test]
async fn no_ingress_means_no_inbound_listener() {
    let sidecar = sidecar("").await;
    assert!(sidecar.addr("inbound").is_none());
    assert!(sidecar.addr("outbound").is_some() && sidecar.addr("admin").is_some());
}

#[tokio::test]
async fn admin_reports_readiness_config_and_clusters() {
    let catalog = Catalog::start("catalog/30-canary-90-10.yaml").await;
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    for _ in 0..20 {
        assert_eq!(
            client
                .get("http://catalog/items", &[])
                .await
                .unwrap()
                .status,
            200
        );
    }
    let mut admin = Http1Client::connect(catalog.sidecar.addr("admin").unwrap())
        .await
        .unwrap();

    let ready = admin.get("/ready", &[("host", "admin")]).await.unwrap();
    assert_eq!(
        (ready.status.as_u16(), ready.text().as_str()),
        (200, "LIVE\n")
    );

    let dump = admin
        .get("/config_dump", &[("host", "admin")])
        .await
        .unwrap();
    assert_eq!(dump.status, 200);
    let dump: serde_json::Value = serde_json::from_slice(&dump.body).unwrap();
    assert_eq!(dump["version"], 1);
    let vs = &dump["config"]["virtualServices"][0];
    assert_eq!(vs["spec"]["http"][0]["route"][0]["weight"], 90);
    assert_eq!(
        dump["config"]["serviceEntries"][0]["spec"]["hosts"][0],
        "catalog"
    );

    let clusters = support::admin_text(&catalog.sidecar, "/clusters").await;
    let v1 = format!(
        "outbound|80|version-v1|catalog.istioinaction.svc.cluster.local::127.0.0.1:{}",
        catalog.v1.addr().port()
    );
    let v2 = format!(
        "outbound|80|version-v2|catalog.istioinaction.svc.cluster.local::127.0.0.1:{}",
        catalog.v2.addr().port()
    );
    let total = |prefix: &str| -> u64 {
        let line = clusters
            .lines()
            .find(|l| l.starts_with(prefix) && l.contains("::rq_total::"))
            .unwrap_or_else(|| panic!("no rq_total for {prefix} in:\n{clusters}"));
        line.rsplit("::").next().unwrap().parse().unwrap()
    };
    assert_eq!(total(&v1) + total(&v2), 20, "{clusters}");
    assert_eq!(total(&v1), catalog.v1.hits());
    assert!(
        clusters.contains(&format!("{v2}::labels::app=catalog,version=v2")),
        "{clusters}"
    );
    assert!(clusters.contains(
        "outbound|80|version-v1|catalog.istioinaction.svc.cluster.local::lb_policy::LEAST_REQUEST"
    ));

    let missing = admin.get("/nope", &[("host", "admin")]).await.unwrap();
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn shutdown_closes_connections_still_open_after_the_drain() {
    let (_v1, _v2, registry) = support::catalog_upstreams().await;
    let yaml = format!(
        "{}\n---\napiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {{name: mesh}}\nspec: {{defaultConfig: {{terminationDrainDuration: 100ms}}}}\n",
        support::all_to(&registry, "version-v1")
    );
    let running = sidecar(&yaml).await;
    let proxy = running.addr("outbound").unwrap();
    let slow = tokio::spawn(async move {
        let mut client = Http1Client::connect(proxy).await.unwrap();
        client
            .get("http://catalog/items?delay_ms=3000", &[])
            .await
            .map(|r| r.status)
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    running.shutdown().await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "shutdown waited {:?}",
        started.elapsed()
    );
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(1), slow)
        .await
        .expect("the connection was closed, not left to run")
        .unwrap();
    assert!(
        outcome.is_err(),
        "the request outlived the drain: {outcome:?}"
    );
}
