//! The canary controller (Flagger's `Canary`): paused-time analyses with scripted check values
//! (healthy canaries promoted step by step, 5xx and p99 breaches and missing data rolled back,
//! admin actions, restarts on a new revision), then real traffic through a sidecar judged by its
//! own counters.

mod support;

use mesh::proxy::{
    LiveSidecar,
    canary::{
        CanaryController, CanaryMetrics, CanaryOptions, MeasureError, MeasureFuture, Measurement,
        MetricQuery,
    },
};
use mesh::route::config::{CanaryRouting, Config};
use serde_json::Value;
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};
use support::{catalog_upstreams, ephemeral, quiet};

const INTERVAL: Duration = Duration::from_secs(10);

/// A Canary of `catalog` from subset v1 (primary) to v2, with `analysis` lines (indented four
/// spaces) after `interval: 10s`.
fn canary(analysis: &str) -> String {
    format!(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\n\
         metadata:\n  name: catalog\n  namespace: istioinaction\n  annotations:\n    \
         mesh/primary-subset: version-v1\n    mesh/canary-subset: version-v2\n\
         spec:\n  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: catalog}}\n  \
         service: {{port: 80}}\n  analysis:\n    interval: 10s\n{analysis}"
    )
}

const HEALTHY_CHECKS: &str = "    metrics:\n    \
     - {name: request-success-rate, thresholdRange: {min: 99}, interval: 1m}\n    \
     - {name: request-duration, thresholdRange: {max: 500}, interval: 30s}\n";

/// The registry of the catalog example (endpoints on unused ports: no traffic is sent).
fn registry() -> String {
    let registry = std::fs::read_to_string(support::example("catalog/00-registry.yaml")).unwrap();
    mesh::demo::point_registry(&registry, 1, 2)
}

fn load(yaml: &str) -> Config {
    match Config::from_yaml_str(&format!("{}\n---\n{yaml}", registry())) {
        Ok(loaded) => loaded.config,
        Err(problems) => panic!("test config invalid: {problems:#?}"),
    }
}

/// Check values the test sets: success rate and p99, or why there is none.
#[derive(Default)]
struct Scripted {
    success_rate: Mutex<Option<Measurement>>,
    p99: Mutex<Option<Measurement>>,
    asked: Mutex<Vec<(String, Duration)>>,
}

impl Scripted {
    fn healthy() -> Arc<Self> {
        let scripted = Scripted::default();
        scripted.set(Ok(100.0), Ok(20.0));
        Arc::new(scripted)
    }

    fn set(&self, success_rate: Measurement, p99: Measurement) {
        *self.success_rate.lock().unwrap() = Some(success_rate);
        *self.p99.lock().unwrap() = Some(p99);
    }
}

impl CanaryMetrics for Scripted {
    fn measure<'a>(
        &'a self,
        query: MetricQuery<'a>,
        _now: tokio::time::Instant,
    ) -> MeasureFuture<'a> {
        self.asked
            .lock()
            .unwrap()
            .push((query.metric.to_owned(), query.window));
        let slot = match query.metric {
            "request-success-rate" => &self.success_rate,
            _ => &self.p99,
        };
        let value = slot.lock().unwrap().clone().expect("scripted value");
        Box::pin(std::future::ready(value))
    }
}

/// A live sidecar running `yaml` with a canary controller judging by `metrics`.
fn controlled(
    yaml: &str,
    metrics: Arc<Scripted>,
) -> (LiveSidecar, tokio::sync::watch::Sender<bool>) {
    let live = LiveSidecar::new(load(yaml), quiet()).unwrap();
    let options = CanaryOptions {
        metrics: Some(metrics),
        ..CanaryOptions::default()
    };
    let controller = CanaryController::new(live.clone(), options);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(controller.run(stopped));
    (live, stop)
}

fn routing(live: &LiveSidecar) -> CanaryRouting {
    live.current()
        .config()
        .canary_routes
        .get("istioinaction/catalog")
        .copied()
        .unwrap_or_default()
}

/// Weights of the route the sidecar compiled for `catalog`: (v1, v2).
fn compiled_weights(live: &LiveSidecar) -> (i32, i32) {
    let config = live.current().config().clone();
    let routed = config.with_canary_routes();
    let vs = routed
        .virtual_services
        .iter()
        .find(|vs| vs.spec.hosts.contains(&"catalog".to_owned()))
        .expect("the canary's routes");
    let route = &vs.spec.http.last().unwrap().route;
    (route[0].weight.unwrap(), route[1].weight.unwrap())
}

/// Lets the controller's pass due at the current instant run.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// Advances to the next pass and lets it run.
async fn next_pass() {
    tokio::time::sleep(INTERVAL).await;
    settle().await;
}

async fn admin(live: &LiveSidecar, method: &str, path: &str) -> (u16, Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .body(mesh::core::body::empty())
        .unwrap();
    let response = live.admin_service().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

async fn status(live: &LiveSidecar) -> Value {
    let (code, canaries) = admin(live, "GET", "/canaries").await;
    assert_eq!(code, 200, "{canaries}");
    canaries[0].clone()
}

#[tokio::test(start_paused = true)]
async fn a_healthy_canary_steps_up_by_ten_to_fifty_and_is_promoted() {
    let scripted = Scripted::healthy();
    let yaml = canary(&format!(
        "    threshold: 2\n    stepWeight: 10\n    maxWeight: 50\n{HEALTHY_CHECKS}"
    ));
    let (live, _stop) = controlled(&yaml, scripted.clone());
    settle().await;
    assert_eq!(status(&live).await["phase"], "Initialized");
    assert_eq!(compiled_weights(&live), (100, 0));

    let mut weights = Vec::new();
    for _ in 0..5 {
        next_pass().await;
        weights.push(routing(&live).canary_weight);
        assert_eq!(status(&live).await["phase"], "Progressing");
    }
    assert_eq!(weights, [10, 20, 30, 40, 50]);
    assert_eq!(compiled_weights(&live), (50, 50));
    // The checks ran at every pass after the first, each over its own window.
    let asked = scripted.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 8, "{asked:?}");
    assert!(asked.contains(&("request-duration".into(), Duration::from_secs(30))));

    next_pass().await;
    assert_eq!(status(&live).await["phase"], "Promoting");
    next_pass().await;
    assert_eq!(routing(&live), CanaryRouting::PROMOTED);
    assert_eq!(compiled_weights(&live), (0, 100));
    next_pass().await;
    let done = status(&live).await;
    assert_eq!(done["phase"], "Succeeded", "{done}");
    let events: Vec<&str> = done["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        events.contains(&"Advance catalog.istioinaction canary weight 50"),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e.starts_with("Promotion completed!")),
        "{events:?}"
    );

    // Over: no more passes, the traffic stays on the canary.
    next_pass().await;
    assert_eq!(routing(&live), CanaryRouting::PROMOTED);
}

/// Runs a canary (stepWeight 10, `threshold`) whose checks give `success_rate` and `p99` from
/// the second pass on; returns its status after `passes` passes.
async fn judged(
    threshold: u32,
    success_rate: Measurement,
    p99: Measurement,
    passes: usize,
) -> (LiveSidecar, Value) {
    let scripted = Scripted::healthy();
    let yaml = canary(&format!(
        "    threshold: {threshold}\n    stepWeight: 10\n{HEALTHY_CHECKS}"
    ));
    let (live, stop) = controlled(&yaml, scripted.clone());
    settle().await;
    next_pass().await;
    assert_eq!(routing(&live).canary_weight, 10);
    scripted.set(success_rate, p99);
    for _ in 1..passes {
        next_pass().await;
    }
    let status = status(&live).await;
    drop(stop);
    (live, status)
}

#[tokio::test(start_paused = true)]
async fn a_canary_answering_5xx_is_rolled_back_after_threshold_failed_checks() {
    // The first failed check halts the weight at 10; the second reaches the threshold.
    let (live, halted) = judged(2, Ok(80.0), Ok(20.0), 2).await;
    assert_eq!(halted["phase"], "Progressing");
    assert_eq!(
        (
            halted["failedChecks"].as_u64(),
            halted["canaryWeight"].as_u64()
        ),
        (Some(1), Some(10))
    );
    assert_eq!(halted["checks"][0]["value"], 80.0);
    assert_eq!(halted["checks"][0]["passed"], false);
    drop(live);

    let (live, failed) = judged(2, Ok(80.0), Ok(20.0), 3).await;
    assert_eq!(failed["phase"], "Failed", "{failed}");
    assert_eq!(failed["failedChecks"], 2);
    assert_eq!(routing(&live), CanaryRouting::default());
    assert_eq!(
        compiled_weights(&live),
        (100, 0),
        "traffic is back on the primary"
    );
}

#[tokio::test(start_paused = true)]
async fn a_p99_breach_rolls_back() {
    let (live, failed) = judged(1, Ok(100.0), Ok(900.0), 2).await;
    assert_eq!(failed["phase"], "Failed", "{failed}");
    let p99 = &failed["checks"][1];
    assert_eq!(
        (p99["name"].as_str(), p99["passed"].as_bool()),
        (Some("request-duration"), Some(false))
    );
    assert!(p99["reason"].as_str().unwrap().contains("max 500"), "{p99}");
    assert_eq!(compiled_weights(&live), (100, 0));
}

#[tokio::test(start_paused = true)]
async fn no_data_counts_as_a_failed_check() {
    let none = || {
        Err(MeasureError::NoValues(
            "request-success-rate over the last 1m".into(),
        ))
    };
    let (live, failed) = judged(1, none(), none(), 2).await;
    assert_eq!(failed["phase"], "Failed", "{failed}");
    assert_eq!(failed["checks"][0]["value"], Value::Null);
    assert_eq!(
        failed["checks"][0]["reason"], "no values found for request-success-rate over the last 1m",
        "the error's text is the check's reason"
    );
    assert_eq!(routing(&live), CanaryRouting::default());
}

#[tokio::test(start_paused = true)]
async fn admin_pauses_resumes_promotes_and_aborts() {
    let yaml = canary(&format!("    stepWeight: 10\n{HEALTHY_CHECKS}"));
    let (live, _stop) = controlled(&yaml, Scripted::healthy());
    settle().await;
    next_pass().await;
    let (code, paused) = admin(&live, "POST", "/canaries/istioinaction/catalog/pause").await;
    assert_eq!(
        (code, &paused["paused"]),
        (200, &Value::Bool(true)),
        "{paused}"
    );
    for _ in 0..3 {
        next_pass().await;
    }
    assert_eq!(
        routing(&live).canary_weight,
        10,
        "a paused canary holds its weight"
    );
    admin(&live, "POST", "/canaries/catalog/resume").await;
    next_pass().await;
    assert_eq!(routing(&live).canary_weight, 20);

    let (_, promoting) = admin(&live, "POST", "/canaries/catalog/promote").await;
    assert_eq!(promoting["phase"], "Promoting");
    settle().await;
    assert_eq!(
        routing(&live),
        CanaryRouting::PROMOTED,
        "promotion runs at once"
    );

    let (code, unknown) = admin(&live, "POST", "/canaries/nosuch/abort").await;
    assert_eq!(code, 404, "{unknown}");
    let (code, _) = admin(&live, "POST", "/canaries/catalog/explode").await;
    assert_eq!(code, 400);
}

/// A healthy canary (stepWeight 10) two passes in: at weight 20. Returns its YAML too.
async fn healthy_at_twenty() -> (String, LiveSidecar, tokio::sync::watch::Sender<bool>) {
    let yaml = canary(&format!("    stepWeight: 10\n{HEALTHY_CHECKS}"));
    let (live, stop) = controlled(&yaml, Scripted::healthy());
    settle().await;
    next_pass().await;
    next_pass().await;
    assert_eq!(routing(&live).canary_weight, 20);
    (yaml, live, stop)
}

#[tokio::test(start_paused = true)]
async fn abort_rolls_back_at_once_and_a_new_revision_restarts() {
    let (_, live, _stop) = healthy_at_twenty().await;
    let (_, aborted) = admin(&live, "POST", "/canaries/catalog/abort").await;
    assert_eq!(aborted["phase"], "Failed");
    assert_eq!(compiled_weights(&live), (100, 0));

    // A changed Canary is a new revision: its analysis starts over.
    let changed = canary(&format!("    stepWeight: 25\n{HEALTHY_CHECKS}"));
    live.swap(load(&changed)).unwrap();
    settle().await;
    assert_eq!(status(&live).await["phase"], "Initialized");
    next_pass().await;
    assert_eq!(routing(&live).canary_weight, 25);

    // A reload of the same Canary keeps its place.
    live.swap(load(&changed)).unwrap();
    settle().await;
    assert_eq!(routing(&live).canary_weight, 25);
    assert_eq!(status(&live).await["phase"], "Progressing");
}

#[tokio::test(start_paused = true)]
async fn ab_testing_sends_the_matching_requests_to_the_canary() {
    let yaml = canary(&format!(
        "    iterations: 2\n    match:\n    - headers: {{x-canary: {{exact: insider}}}}\n{HEALTHY_CHECKS}"
    ));
    let (live, _stop) = controlled(&yaml, Scripted::healthy());
    settle().await;
    next_pass().await;
    assert!(routing(&live).matched_to_canary);
    assert_eq!(
        compiled_weights(&live),
        (100, 0),
        "the rest stays on the primary"
    );
    next_pass().await;
    next_pass().await;
    assert_eq!(status(&live).await["phase"], "Promoting");
}

/// Real traffic through a sidecar, judged by the sidecar's own counters (wall-clock time: real
/// sockets): a healthy v2 is promoted and then answers everything; a v2 answering 500 is
/// rolled back and v1 answers everything.
#[tokio::test]
async fn the_sidecars_own_counters_promote_a_healthy_canary_and_roll_back_a_failing_one() {
    for healthy in [true, false] {
        let (v1, v2, registry) = catalog_upstreams().await;
        if !healthy {
            v2.fail_next(u64::MAX / 2);
        }
        let analysis = "    interval: 300ms\n    threshold: 1\n    stepWeight: 50\n    maxWeight: 50\n    metrics:\n    - {name: request-success-rate, thresholdRange: {min: 99}, interval: 1m}\n";
        let yaml = canary("").replace("    interval: 10s\n", analysis);
        let config = Config::from_yaml_str(&format!("{registry}\n---\n{yaml}"))
            .unwrap()
            .config;
        let live = LiveSidecar::new(config, quiet()).unwrap();
        let running = live.start(&ephemeral()).await.unwrap();
        let controller = CanaryController::new(live.clone(), CanaryOptions::default());
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(controller.run(stopped));
        let proxy = running.addr("outbound").unwrap();
        let mut client = mesh::demo::Http1Client::connect(proxy).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let final_phase = loop {
            let response = client.get("/items", &[("host", "catalog")]).await.unwrap();
            let _ = response.status;
            let phase = status(&live).await["phase"].as_str().unwrap().to_owned();
            if phase == "Succeeded" || phase == "Failed" {
                break phase;
            }
            assert!(tokio::time::Instant::now() < deadline, "still {phase}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let (v1_before, v2_before) = (v1.hits(), v2.hits());
        for _ in 0..20 {
            client.get("/items", &[("host", "catalog")]).await.unwrap();
        }
        let status = status(&live).await;
        if healthy {
            assert_eq!(final_phase, "Succeeded", "{status}");
            assert_eq!((v1.hits() - v1_before, v2.hits() - v2_before), (0, 20));
        } else {
            assert_eq!(final_phase, "Failed", "{status}");
            // Every one of v2's answers was a 503: judged on v2's answers alone.
            assert_eq!(status["checks"][0]["value"], 0.0, "{status}");
            assert_eq!((v1.hits() - v1_before, v2.hits() - v2_before), (20, 0));
        }
        running.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn suspend_holds_the_analysis_without_restarting_it() {
    let (yaml, live, _stop) = healthy_at_twenty().await;
    let suspended = yaml.replace("  analysis:\n", "  suspend: true\n  analysis:\n");
    live.swap(load(&suspended)).unwrap();
    settle().await;
    for _ in 0..3 {
        next_pass().await;
    }
    let held = status(&live).await;
    assert_eq!(
        (held["paused"].as_bool(), held["canaryWeight"].as_u64()),
        (Some(true), Some(20)),
        "{held}"
    );
    assert_eq!(
        held["phase"], "Progressing",
        "suspending is not a new revision"
    );
    live.swap(load(&yaml)).unwrap();
    settle().await;
    next_pass().await;
    assert_eq!(routing(&live).canary_weight, 30);
}
