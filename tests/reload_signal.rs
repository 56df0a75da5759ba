//! `SIGHUP` reloads the configuration files at once (its own test binary: the signal reaches
//! the whole process).

#![cfg(unix)]

mod support;

use mesh::proxy::{
    LiveSidecar,
    reload::{ConfigFiles, Reloader},
};
use std::time::{Duration, Instant};

#[tokio::test]
async fn sighup_reloads_without_waiting_for_the_next_poll() {
    let (_v1, _v2, registry) = support::catalog_upstreams().await;
    let dir = std::env::temp_dir().join(format!("mesh-sighup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let routes = dir.join("catalog.yaml");
    std::fs::write(&routes, support::all_to(&registry, "version-v1")).unwrap();
    let (files, loaded) = ConfigFiles::load(vec![dir.clone()]);
    let live = LiveSidecar::new(loaded.unwrap().config, support::quiet()).unwrap();
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    // Polling once an hour: only the signal can make it reload within the test.
    let reloader = Reloader::new(live.clone(), files);
    tokio::spawn(reloader.run(Duration::from_secs(3600), stopped));
    // Let the reloader take its first (immediate) look and install its signal handler.
    tokio::time::sleep(Duration::from_millis(200)).await;

    std::fs::write(&routes, support::all_to(&registry, "version-v2")).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while live.current().version() < 2 {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let current = live.current();
    let route = &current.config().virtual_services[0].spec.http[0].route[0];
    assert_eq!(route.destination.subset.as_deref(), Some("version-v2"));
}
