//! End-to-end mirroring through the sidecar over real sockets: v1 serves every client while
//! v2 receives fire-and-forget copies.

mod support;

use http::Request;
use http_body_util::Full;
use mesh::demo::Http1Client;
use std::time::{Duration, Instant};
use support::{Catalog, wait_for_hits};

/// How long a test waits for v2's shadows to land.
const SHADOWS_LAND_WITHIN: Duration = Duration::from_secs(10);

#[tokio::test]
async fn slow_v2_gets_copies_while_clients_get_v1_at_v1_speed() {
    const N: u64 = 20;
    let catalog = Catalog::start("catalog/40-mirror-v2.yaml").await;
    catalog.v2.set_delay(Duration::from_secs(2));
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    let start = Instant::now();
    for i in 0..N {
        let sent = Instant::now();
        let request = Request::post("http://catalog/items")
            .header("host", "catalog")
            .body(Full::from(format!("order-{i}")))
            .unwrap();
        let response = client.send(request).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.headers["x-catalog-version"], "v1");
        assert!(
            sent.elapsed() < Duration::from_millis(500),
            "{:?}",
            sent.elapsed()
        );
    }
    // Twenty requests took less than one v2 response: nobody waited for v2.
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(catalog.v1.hits(), N);
    wait_for_hits(&catalog.v2, N, SHADOWS_LAND_WITHIN).await;
    assert_eq!(catalog.v2.hits(), N);
    let copies = catalog.v2.requests();
    for copy in &copies {
        assert_eq!(copy.headers["host"], "catalog-shadow");
        assert_eq!(copy.uri.path(), "/items");
    }
    let mut bodies: Vec<String> = copies
        .iter()
        .map(|c| String::from_utf8(c.body.to_vec()).unwrap())
        .collect();
    bodies.sort();
    let mut expected: Vec<String> = (0..N).map(|i| format!("order-{i}")).collect();
    expected.sort();
    assert_eq!(bodies, expected, "each copy carries its request's body");
}

#[tokio::test]
async fn mirror_percentage_25_mirrors_about_a_quarter() {
    const N: u64 = 400;
    let routes = std::fs::read_to_string(support::example("catalog/40-mirror-v2.yaml"))
        .unwrap()
        .replace("value: 100", "value: 25");
    let catalog = Catalog::with_routes(&routes).await;
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    for _ in 0..N {
        let response = client.get("http://catalog/items", &[]).await.unwrap();
        assert_eq!(response.headers["x-catalog-version"], "v1");
    }
    // Let the last copies land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mirrored = catalog.v2.hits();
    // 100 expected; 5 standard deviations (σ ≈ 8.7) either side.
    assert!((57..=143).contains(&mirrored), "{mirrored} of {N} mirrored");
}

#[tokio::test]
async fn suffix_off_by_mesh_config() {
    let routes = std::fs::read_to_string(support::example("catalog/40-mirror-v2.yaml")).unwrap();
    let mesh = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  defaultConfig: {proxyMetadata: {DISABLE_SHADOW_HOST_SUFFIX: \"true\"}}\n";
    let catalog = Catalog::with_routes(&format!("{routes}\n---\n{mesh}")).await;
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    client.get("http://catalog/items", &[]).await.unwrap();
    wait_for_hits(&catalog.v2, 1, SHADOWS_LAND_WITHIN).await;
    assert_eq!(
        catalog.v2.last_request().unwrap().headers["host"],
        "catalog"
    );
}

#[tokio::test]
async fn a_shadow_carries_its_originals_trace_but_is_not_traced_even_when_forced() {
    let catalog = Catalog::start("catalog/40-mirror-v2.yaml").await;
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    let response = client
        .get("http://catalog/items", &[("x-envoy-force-trace", "true")])
        .await
        .unwrap();
    assert_eq!(response.headers["x-catalog-version"], "v1");
    wait_for_hits(&catalog.v2, 1, SHADOWS_LAND_WITHIN).await;
    let primary = catalog.v1.last_request().unwrap().headers;
    let shadow = catalog.v2.last_request().unwrap().headers;
    // One trace: the shadow continues the primary's.
    assert_eq!(shadow["x-b3-traceid"], primary["x-b3-traceid"]);
    assert_eq!(primary["x-b3-sampled"], "1");
    assert_eq!(shadow["x-b3-sampled"], "0");
    assert!(shadow["traceparent"].to_str().unwrap().ends_with("-00"));
    // Nothing left that would force the shadow's trace at the next hop: the request id is the
    // same but for its trace reason, forced (`a`) on the primary, none (`4`) on the shadow.
    assert!(!shadow.contains_key("x-envoy-force-trace"));
    let (primary_id, shadow_id) = (
        primary["x-request-id"].to_str().unwrap(),
        shadow["x-request-id"].to_str().unwrap(),
    );
    assert_eq!(&primary_id[14..15], "a", "{primary_id}");
    assert_eq!(&shadow_id[14..15], "4", "{shadow_id}");
    assert_eq!(
        (&primary_id[..14], &primary_id[15..]),
        (&shadow_id[..14], &shadow_id[15..])
    );
}

#[tokio::test]
async fn an_aborted_request_is_not_mirrored() {
    let routes = std::fs::read_to_string(support::example("catalog/40-mirror-v2.yaml"))
        .unwrap()
        .replace(
            "    mirror:\n",
            "    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}\n    mirror:\n",
        );
    let catalog = Catalog::with_routes(&routes).await;
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    for _ in 0..5 {
        let response = client.get("http://catalog/items", &[]).await.unwrap();
        assert_eq!(response.status, 503);
    }
    // Let any copy land: none should, as in Envoy, whose fault filter runs before the router.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((catalog.v1.hits(), catalog.v2.hits()), (0, 0));
}
