//! A running sidecar's configuration replaced while it serves ([`LiveSidecar`]): new requests
//! follow the new routes, requests in flight finish under the old ones, `/config_dump` shows
//! the version, and a configuration that cannot run is refused with the old one still serving.

mod support;

use mesh::demo::Http1Client;
use mesh::proxy::LiveSidecar;
use mesh::route::config::{Config, HttpMatchRequest, StringMatch};
use std::time::Duration;

/// `registry` with every request for `catalog` routed to `subset`.
fn all_to(registry: &str, subset: &str) -> Config {
    Config::from_yaml_str(&support::all_to(registry, subset))
        .unwrap()
        .config
}

fn version(response: &mesh::demo::Collected) -> String {
    response.headers["x-catalog-version"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_running_sidecar_follows_a_swap_and_lets_started_requests_finish() {
    let (v1, _v2, registry) = support::catalog_upstreams().await;
    let live = LiveSidecar::new(all_to(&registry, "version-v1"), support::quiet()).unwrap();
    let running = live.start(&support::ephemeral()).await.unwrap();
    let proxy = running.addr("outbound").unwrap();
    let mut client = Http1Client::connect(proxy).await.unwrap();
    assert_eq!(
        version(&client.get("http://catalog/items", &[]).await.unwrap()),
        "v1"
    );

    // A slow request starts under version 1 on its own connection.
    let started = tokio::spawn(async move {
        let mut slow = Http1Client::connect(proxy).await.unwrap();
        slow.get("http://catalog/items?delay_ms=300", &[])
            .await
            .unwrap()
    });
    while v1.hits() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(live.swap(all_to(&registry, "version-v2")).unwrap(), 2);

    // The kept-alive connection's next request follows the new routes.
    assert_eq!(
        version(&client.get("http://catalog/items", &[]).await.unwrap()),
        "v2"
    );
    assert_eq!(version(&started.await.unwrap()), "v1");
    let dump = support::admin_text(&running, "/config_dump").await;
    let dump: serde_json::Value = serde_json::from_str(&dump).unwrap();
    assert_eq!(dump["version"], 2, "{dump}");

    // A configuration that cannot run (a regex that does not compile, which loading would
    // have refused) is refused whole; version 2 keeps serving.
    let mut unrunnable = all_to(&registry, "version-v1");
    unrunnable.virtual_services[0].spec.http[0].match_ = vec![HttpMatchRequest {
        uri: Some(StringMatch {
            regex: Some("(".into()),
            ..StringMatch::default()
        }),
        ..HttpMatchRequest::default()
    }];
    assert!(live.swap(unrunnable).is_err());
    assert_eq!(live.current().version(), 2);
    assert_eq!(
        version(&client.get("http://catalog/items", &[]).await.unwrap()),
        "v2"
    );
    running.shutdown().await;
}
