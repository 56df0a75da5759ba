//! A running sidecar's configuration replaced while it serves ([`LiveSidecar`]): new requests
//! follow the new routes, requests in flight finish under the old ones, `/config_dump` shows
//! the version, and a configuration that cannot run is refused with the old one still serving.

mod support;

use mesh::demo::Http1Client;
use mesh::proxy::{
    LiveSidecar, RunningSidecar,
    reload::{ConfigFiles, Reloader},
};
use mesh::route::config::{Config, HttpMatchRequest, StringMatch};
use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::sync::watch;

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
    support::wait_for_hits(&v1, 2, Duration::from_secs(5)).await;
    assert!(
        v1.hits() >= 2,
        "the slow request reached v1 before the swap"
    );
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

/// A fresh directory for one test's configuration files.
fn config_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mesh-live-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Replaces `dir/name` at once (written beside it, then renamed), as config tools do.
fn write_atomically(dir: &Path, name: &str, text: &str) {
    let staging = dir.join(format!(".{name}.staging"));
    std::fs::write(&staging, text).unwrap();
    std::fs::rename(&staging, dir.join(name)).unwrap();
}

/// Waits up to 5 s for `done`.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A live sidecar on the files of `dir`, reloaded every 10 ms until the returned sender is
/// dropped or set.
async fn reloading(dir: &Path) -> (LiveSidecar, RunningSidecar, watch::Sender<bool>) {
    let (files, loaded) = ConfigFiles::load(vec![dir.to_path_buf()]);
    let live = LiveSidecar::new(loaded.unwrap().config, support::quiet()).unwrap();
    let running = live.start(&support::ephemeral()).await.unwrap();
    let (stop, stopped) = watch::channel(false);
    let reloader = Reloader::new(live.clone(), files);
    tokio::spawn(reloader.run(Duration::from_millis(10), stopped));
    (live, running, stop)
}

#[tokio::test]
async fn changed_files_are_reloaded_and_an_invalid_change_is_refused_whole() {
    let (_v1, _v2, registry) = support::catalog_upstreams().await;
    let dir = config_dir("reload");
    std::fs::write(dir.join("00-registry.yaml"), &registry).unwrap();
    write_atomically(&dir, "10-routes.yaml", &support::all_to("", "version-v1"));
    let (live, running, _stop) = reloading(&dir).await;
    let mut client = Http1Client::connect(running.addr("outbound").unwrap())
        .await
        .unwrap();
    assert_eq!(
        version(&client.get("http://catalog/items", &[]).await.unwrap()),
        "v1"
    );

    write_atomically(&dir, "10-routes.yaml", &support::all_to("", "version-v2"));
    eventually("the change to apply", || live.current().version() == 2).await;
    assert_eq!(
        version(&client.get("http://catalog/items", &[]).await.unwrap()),
        "v2"
    );

    write_atomically(&dir, "10-routes.yaml", &support::all_to("", "version-v9"));
    eventually("the rejection", || live.updates().rejections() == 1).await;
    assert_eq!(
        live.current().version(),
        2,
        "the previous config keeps serving"
    );
    assert_eq!(
        version(&client.get("http://catalog/items", &[]).await.unwrap()),
        "v2"
    );
    let dump: serde_json::Value =
        serde_json::from_str(&support::admin_text(&running, "/config_dump").await).unwrap();
    assert_eq!(dump["version"], 2);
    assert_eq!(dump["updates"]["success"], 1);
    let last_error = dump["updates"]["last_error"].as_str().unwrap();
    assert!(last_error.contains("version-v9"), "{last_error}");
    assert!(last_error.contains("10-routes.yaml"), "{last_error}");
    let stats = support::admin_text(&running, "/stats").await;
    assert!(stats.contains("config.update_rejected: 1"), "{stats}");
    assert!(stats.contains("config.update_success: 1"), "{stats}");
    running.shutdown().await;
}

/// The `i`th configuration of the load test: weights, a header match, v2's endpoint removed
/// (everything to v1), an invalid file, or an even split.
fn rewrite(i: usize, v1_port: u16, v2_port: u16) -> (String, bool) {
    let registry = |with_v2: bool| {
        let v2 = if with_v2 {
            format!(
                "\n  - {{address: 127.0.0.1, ports: {{http: {v2_port}}}, labels: {{app: catalog, version: v2}}}}"
            )
        } else {
            String::new()
        };
        format!(
            r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: catalog, namespace: istioinaction}}
spec:
  hosts: [catalog]
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {v1_port}}}, labels: {{app: catalog, version: v1}}}}{v2}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: catalog, namespace: istioinaction}}
spec:
  host: catalog
  subsets: [{{name: version-v1, labels: {{version: v1}}}}, {{name: version-v2, labels: {{version: v2}}}}]
"#
        )
    };
    let routes = |http: &str| {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: catalog, namespace: istioinaction}}\nspec:\n  hosts: [catalog]\n  http:\n{http}"
        )
    };
    let split = |v1: u32, v2: u32| {
        format!(
            "  - route:\n    - {{destination: {{host: catalog, subset: version-v1}}, weight: {v1}}}\n    - {{destination: {{host: catalog, subset: version-v2}}, weight: {v2}}}\n"
        )
    };
    match i % 5 {
        0 => (registry(true) + &routes(&split(80, 20)), true),
        1 => (
            registry(true)
                + &routes(
                    "  - match: [{headers: {x-cohort: {exact: beta}}}]\n    route: [{destination: {host: catalog, subset: version-v2}}]\n  - route: [{destination: {host: catalog, subset: version-v1}}]\n",
                ),
            true,
        ),
        2 => (registry(false) + &routes(&split(100, 0)), true),
        3 => (
            registry(true) + &routes(&split(50, 40)) + "    retries: {attempts: -1}\n",
            false,
        ),
        _ => (registry(true) + &routes(&split(50, 50)), true),
    }
}

#[tokio::test]
async fn steady_traffic_through_fifty_rewrites_loses_no_request() {
    let (v1, v2, _) = support::catalog_upstreams().await;
    let (v1_port, v2_port) = (v1.addr().port(), v2.addr().port());
    let dir = config_dir("load");
    write_atomically(&dir, "catalog.yaml", &rewrite(0, v1_port, v2_port).0);
    let (live, running, _stop) = reloading(&dir).await;
    let proxy = running.addr("outbound").unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for n in 0..4 {
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let mut client = Http1Client::connect(proxy).await.unwrap();
            let (mut sent, mut failed) = (0u64, Vec::new());
            let cohort = if n % 2 == 0 { "beta" } else { "stable" };
            while !stop.load(Ordering::Relaxed) {
                let response = client
                    .get("http://catalog/items", &[("x-cohort", cohort)])
                    .await
                    .unwrap();
                sent += 1;
                if response.status != 200 {
                    failed.push((response.status, response.text()));
                }
            }
            (sent, failed)
        }));
    }

    let mut invalid = 0;
    for i in 1..=50 {
        let (text, valid) = rewrite(i, v1_port, v2_port);
        let (version, rejections) = (live.current().version(), live.updates().rejections());
        write_atomically(&dir, "catalog.yaml", &text);
        if valid {
            let what = format!(
                "rewrite {i} to apply (last error: {:?})",
                live.updates().last_error()
            );
            eventually(&what, || live.current().version() > version).await;
        } else {
            invalid += 1;
            eventually("a rewrite to be refused", || {
                live.updates().rejections() > rejections
            })
            .await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for client in clients {
        let (sent, failed) = client.await.unwrap();
        assert!(failed.is_empty(), "failed requests: {failed:?}");
        total += sent;
    }
    assert!(total > 50, "traffic kept flowing: {total} requests");
    assert_eq!(live.updates().rejections(), invalid);
    assert_eq!(live.updates().success(), 50 - invalid);
    // The last rewrite (the 80/20 split) is the one in force.
    let current = live.current();
    let weights: Vec<_> = current.config().virtual_services[0].spec.http[0]
        .route
        .iter()
        .map(|d| d.weight)
        .collect();
    assert_eq!(weights, [Some(80), Some(20)]);
    running.shutdown().await;
}

#[tokio::test]
async fn connections_to_unchanged_endpoints_survive_a_swap() {
    let (v1, _v2, registry) = support::catalog_upstreams().await;
    let live = LiveSidecar::new(all_to(&registry, "version-v1"), support::quiet()).unwrap();
    let running = live.start(&support::ephemeral()).await.unwrap();
    let mut client = Http1Client::connect(running.addr("outbound").unwrap())
        .await
        .unwrap();
    client.get("http://catalog/items", &[]).await.unwrap();
    assert_eq!(v1.connections(), 1);
    // Another service added, catalog unchanged: the pooled connection serves on.
    let with_other = support::all_to(&registry, "version-v1")
        + "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: other}\n\
           spec: {hosts: [other.example.com], ports: [{number: 80, name: http, protocol: HTTP}]}\n";
    live.swap(Config::from_yaml_str(&with_other).unwrap().config)
        .unwrap();
    for _ in 0..3 {
        let response = client.get("http://catalog/items", &[]).await.unwrap();
        assert_eq!(version(&response), "v1");
    }
    assert_eq!(v1.connections(), 1, "no new connection after the swap");
    running.shutdown().await;
}

#[tokio::test]
async fn the_drain_duration_in_force_at_shutdown_applies() {
    let (_v1, _v2, registry) = support::catalog_upstreams().await;
    let with_drain = |drain: &str| {
        let yaml = format!(
            "{}\n---\napiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {{name: mesh}}\nspec: {{defaultConfig: {{terminationDrainDuration: {drain}}}}}\n",
            support::all_to(&registry, "version-v1")
        );
        Config::from_yaml_str(&yaml).unwrap().config
    };
    let live = LiveSidecar::new(with_drain("30s"), support::quiet()).unwrap();
    let running = live.start(&support::ephemeral()).await.unwrap();
    live.swap(with_drain("100ms")).unwrap();
    let proxy = running.addr("outbound").unwrap();
    let slow = tokio::spawn(async move {
        let mut client = Http1Client::connect(proxy).await.unwrap();
        client.get("http://catalog/items?delay_ms=5000", &[]).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    running.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the reloaded 100ms drain applied, not the 30s one: {:?}",
        started.elapsed()
    );
    assert!(slow.await.unwrap().is_err(), "the slow request was cut");
}

#[tokio::test]
async fn access_log_and_cluster_counters_carry_on_across_a_swap() {
    let (_v1, _v2, registry) = support::catalog_upstreams().await;
    let log = std::env::temp_dir().join(format!("mesh-live-{}-access.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let yaml = format!(
        "{}\n---\napiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {{name: mesh}}\nspec: {{accessLogFile: {}}}\n",
        support::all_to(&registry, "version-v1"),
        log.display()
    );
    let config = || Config::from_yaml_str(&yaml).unwrap().config;
    let live = LiveSidecar::new(config(), Default::default()).unwrap();
    let running = live.start(&support::ephemeral()).await.unwrap();
    let mut client = Http1Client::connect(running.addr("outbound").unwrap())
        .await
        .unwrap();
    for _ in 0..2 {
        client.get("http://catalog/items", &[]).await.unwrap();
    }
    live.swap(config()).unwrap();
    client.get("http://catalog/items", &[]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let stats = loop {
        let stats = support::admin_text(&running, "/stats").await;
        if stats.contains("access_log.written: 3") || Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(stats.contains("access_log.written: 3"), "{stats}");
    assert!(
        stats.contains(
            "outbound|80|version-v1|catalog.istioinaction.svc.cluster.local.upstream_rq_total: 3"
        ),
        "{stats}"
    );
    running.shutdown().await;
    let lines = std::fs::read_to_string(&log).unwrap().lines().count();
    assert_eq!(lines, 3, "every line of both configurations written");
    let _ = std::fs::remove_file(&log);
}

#[tokio::test]
async fn span_export_carries_on_across_a_swap_to_the_same_collector() {
    let tracing_to = |collector: &str| {
        let yaml = format!(
            "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {{name: mesh}}\nspec: {{defaultConfig: {{tracing: {{sampling: 100, zipkin: {{address: \"{collector}\"}}}}}}}}\n"
        );
        Config::from_yaml_str(&yaml).unwrap().config
    };
    let live = LiveSidecar::new(tracing_to("127.0.0.1:9"), support::quiet()).unwrap();
    let before = live.current().span_stats().cloned().unwrap();
    live.swap(tracing_to("127.0.0.1:9")).unwrap();
    let same = live.current().span_stats().cloned().unwrap();
    assert!(
        Arc::ptr_eq(&before, &same),
        "the same reporter, its counters carry on"
    );
    live.swap(tracing_to("127.0.0.1:10")).unwrap();
    let other = live.current().span_stats().cloned().unwrap();
    assert!(
        !Arc::ptr_eq(&before, &other),
        "a new collector, a new reporter"
    );
}

#[tokio::test]
async fn every_file_loading_reads_is_watched_whatever_the_case_of_its_extension() {
    let (_v1, _v2, registry) = support::catalog_upstreams().await;
    let dir = config_dir("case");
    std::fs::write(dir.join("00-registry.yaml"), &registry).unwrap();
    write_atomically(&dir, "10-routes.YML", &support::all_to("", "version-v1"));
    let (live, running, _stop) = reloading(&dir).await;
    assert_eq!(live.current().config().virtual_services.len(), 1, "loaded");
    write_atomically(&dir, "10-routes.YML", &support::all_to("", "version-v2"));
    eventually("the change to apply", || live.current().version() == 2).await;
    running.shutdown().await;
}

/// A swap that declares a Sidecar `ingress` where there was none opens the inbound listener,
/// announced through `listener_updates`, and it serves the local application.
#[tokio::test]
async fn a_swap_that_adds_an_ingress_opens_the_inbound_listener() {
    let (v1, _v2, registry) = support::catalog_upstreams().await;
    let live = LiveSidecar::new(all_to(&registry, "version-v1"), support::quiet()).unwrap();
    let running = live.start(&support::ephemeral()).await.unwrap();
    assert_eq!(
        running.addr("inbound"),
        None,
        "no ingress, no inbound listener"
    );
    let mut updates = running.listener_updates();

    let ingress = format!(
        "{}\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\n\
         metadata: {{name: catalog, namespace: istioinaction}}\nspec:\n  ingress:\n  \
         - port: {{number: 3000, protocol: HTTP, name: http}}\n    defaultEndpoint: {}\n",
        support::all_to(&registry, "version-v1"),
        v1.addr()
    );
    live.swap(Config::from_yaml_str(&ingress).unwrap().config)
        .unwrap();
    let inbound = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            updates.changed().await.unwrap();
            let found = updates
                .borrow_and_update()
                .iter()
                .find(|(n, _)| *n == "inbound")
                .map(|(_, a)| *a);
            if let Some(addr) = found {
                return addr;
            }
        }
    })
    .await
    .expect("the inbound listener opens");
    assert_eq!(running.addr("inbound"), Some(inbound));
    let mut client = Http1Client::connect(inbound).await.unwrap();
    let response = client.get("/items", &[("host", "catalog")]).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(v1.hits(), 1);
    running.shutdown().await;
}
