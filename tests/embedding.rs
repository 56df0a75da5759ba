//! The in-process API: the shipped examples run, the in-process client decides and reports as
//! the sidecar does for the same configuration, and configuration swaps apply at run time.

mod support;

#[path = "../examples/client.rs"]
mod client_example;
#[path = "../examples/grpc.rs"]
mod grpc_example;
#[path = "../examples/server.rs"]
mod server_example;

use http_body_util::{BodyExt, Empty};
use mesh::{Error, Mesh, core::Body, demo::Http1Client, proxy::sidecar::SidecarSettings};
use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};
use support::{
    log_file::{LogFile, logging_to},
    metrics::Metrics,
};
use tower::{Layer, Service, ServiceExt};

#[tokio::test]
async fn the_client_example_routes_retries_traces_and_counts() {
    let report = client_example::run(200).await.unwrap();
    assert!(report.internal.iter().all(|v| v == "v2"), "{report:?}");
    let v1 = report.everyone.iter().filter(|v| *v == "v1").count();
    let v2 = report.everyone.iter().filter(|v| *v == "v2").count();
    assert_eq!(v1 + v2, 200);
    // 90/10 over 200 requests: v2's share is 20 ± 4.3 σ.
    assert!((3..=45).contains(&v2), "v1 {v1}, v2 {v2}");
    assert_eq!(report.retried_status, 200);
    assert_eq!(report.retried_attempts, "2");
    assert!(report.traced);
    let (status, waited) = report.timed_out;
    assert_eq!(status, 504, "the route's 1 s timeout");
    assert!(
        waited >= std::time::Duration::from_millis(900)
            && waited < std::time::Duration::from_secs(2),
        "{waited:?}"
    );
    // The connection pool admits `POOL` of a burst twice its size and refuses the rest at once.
    assert_eq!(
        report.burst,
        (client_example::POOL, client_example::POOL),
        "served, refused"
    );
    // Outlier detection ejects v1 once it has answered 503 five times in a row: with two
    // retries a request, within the few requests that reach it.
    let (ejected, requests) = report.v1_ejected;
    assert!(ejected, "v1 not ejected after {requests} requests");
    let v1_series = report
        .prometheus
        .lines()
        .find(|l| {
            l.starts_with("istio_requests_total{")
                && l.contains(r#"destination_version="v1""#)
                && l.contains(r#"response_code="200""#)
        })
        .unwrap_or_else(|| panic!("{}", report.prometheus));
    assert!(v1_series.contains(r#"reporter="source""#), "{v1_series}");
    assert!(
        v1_series.contains(r#"destination_service="catalog.istioinaction.svc.cluster.local""#),
        "{v1_series}"
    );
}

#[tokio::test]
async fn the_server_example_continues_the_trace_and_serves_its_metrics() {
    let report = server_example::run().await.unwrap();
    let caller: Vec<&str> = server_example::CALLER_TRACEPARENT.split('-').collect();
    let handed: Vec<&str> = report.traceparent.split('-').collect();
    assert_eq!(handed.len(), 4, "{}", report.traceparent);
    assert_eq!(handed[1], caller[1], "same trace");
    assert_ne!(handed[2], caller[2], "a span of the server's own");
    let items = report
        .metrics
        .lines()
        .find(|l| l.starts_with("istio_requests_total{") && l.contains(r#"response_code="200""#))
        .unwrap_or_else(|| panic!("{}", report.metrics));
    assert!(items.contains(r#"reporter="destination""#), "{items}");
    assert!(items.contains(r#"response_flags="-""#), "{items}");
}

#[tokio::test]
async fn the_grpc_example_retries_unavailable_caps_the_deadline_and_reads_trailers() {
    let report = grpc_example::run().await.unwrap();
    let calls = &report.calls;
    assert_eq!(calls.retried, tonic::Code::Ok);
    assert_eq!(calls.retried_attempts, 2);
    // A 10 s deadline, capped by the route's 2 s timeout; a 500 ms one, the caller's own.
    assert_eq!(calls.grpc_timeout, "2000m");
    assert_eq!(calls.grpc_timeout_within_route, "500m");
    assert_eq!(calls.not_found, tonic::Code::NotFound);
    assert_eq!(calls.listed, (1, tonic::Code::NotFound));
    for (reporter, text) in [
        ("source", &report.client_metrics),
        ("destination", &report.server_metrics),
    ] {
        let series = |status: &str| {
            let label = format!(r#"grpc_response_status="{status}""#);
            let line = text
                .lines()
                .find(|l| l.starts_with("istio_requests_total{") && l.contains(&label))
                .unwrap_or_else(|| panic!("no {label} in\n{text}"));
            assert!(
                line.contains(&format!(r#"reporter="{reporter}""#)),
                "{line}"
            );
            assert!(line.contains(r#"response_code="200""#), "{line}");
            assert!(line.contains(r#"request_protocol="grpc""#), "{line}");
            assert!(line.contains(r#"response_flags="-""#), "{line}");
            let count = line.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok());
            count.unwrap_or_else(|| panic!("{line}"))
        };
        // Both `NOT_FOUND`s: the unary call's, trailers-only (in the headers), and the
        // stream's, in its trailers after a message. Read from headers alone, the stream would
        // count as HTTP 200's `grpc_response_status`, not 5.
        assert_eq!(series("5"), 2.0, "{reporter}");
        // The calls that succeeded (after the retry, both deadlines): `OK` in their trailers.
        assert_eq!(series("0"), 3.0, "{reporter}");
    }
}

/// Routes that exercise each kind of decision: header match, fault, a subset with no
/// endpoint, a timeout, and the default route.
const DECISIONS: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: catalog-v3, namespace: istioinaction}
spec:
  host: catalog
  subsets: [{name: version-v3, labels: {version: v3}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog, namespace: istioinaction}
spec:
  hosts: [catalog]
  http:
  - match: [{headers: {x-istio-cohort: {exact: internal}}}]
    route: [{destination: {host: catalog, subset: version-v2}}]
  - match: [{uri: {prefix: /broken}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    route: [{destination: {host: catalog, subset: version-v1}}]
  - match: [{uri: {prefix: /nowhere}}]
    route: [{destination: {host: catalog, subset: version-v3}}]
  - match: [{headers: {x-slow: {exact: "yes"}}}]
    route: [{destination: {host: catalog, subset: version-v1}}]
    timeout: 100ms
  - match: [{headers: {x-flaky: {regex: "[0-9]+"}}}]
    route: [{destination: {host: catalog, subset: version-v1}}]
    retries: {attempts: 2, retryOn: 5xx}
  - route: [{destination: {host: catalog, subset: version-v2}, weight: 100}]
"#;

/// `(path, headers)` of each request the comparison sends; v1 fails as many times as
/// `x-flaky` says before it (retried twice: once, then beyond the retries).
const REQUESTS: &[(&str, &[(&str, &str)])] = &[
    ("/items", &[]),
    ("/items", &[("x-istio-cohort", "internal")]),
    ("/broken", &[]),
    ("/nowhere", &[]),
    ("/items?delay_ms=400", &[("x-slow", "yes")]),
    ("/items", &[("x-istio-cohort", "external")]),
    ("/items", &[("x-flaky", "1")]),
    ("/items", &[("x-flaky", "3")]),
];

/// A mesh configured by `yaml`, without an access log.
fn quiet_mesh(yaml: &str) -> Mesh {
    Mesh::builder()
        .yaml(yaml)
        .access_log(false)
        .build()
        .unwrap()
}

/// The in-process client for `catalog` over a plain hyper-util client.
fn catalog_client(mesh: &Mesh) -> mesh::MeshClient {
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Body>();
    mesh.client_layer("catalog").unwrap().layer(http)
}

/// What a response says of the decision: status, flags, and the version that answered.
fn decision<B>(response: &http::Response<B>) -> (u16, String, String) {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string()
    };
    (
        response.status().as_u16(),
        header("x-catalog-version"),
        header("x-envoy-overloaded"),
    )
}

/// The same configuration served two ways, each reporting into a recorder of its own: an
/// in-process client for `catalog`, and a client of the sidecar's outbound listener.
struct SideBySide {
    /// The in-process mesh, and its client for `catalog`.
    mesh: Mesh,
    in_process: mesh::MeshClient,
    /// An HTTP/1.1 client of the sidecar's outbound listener.
    proxied: Http1Client,
    mesh_metrics: Metrics,
    sidecar_metrics: Metrics,
    sidecar: mesh::proxy::RunningSidecar,
}

async fn side_by_side(config: &str) -> SideBySide {
    let (sidecar_recorder, sidecar_metrics) = Metrics::recorder();
    let settings = SidecarSettings {
        metrics: Some(sidecar_recorder),
        disable_access_log: true,
        ..SidecarSettings::default()
    };
    let sidecar = support::sidecar_with(config, settings).await;
    let (mesh_recorder, mesh_metrics) = Metrics::recorder();
    let mesh = Mesh::builder()
        .yaml(config)
        .metrics(mesh_recorder)
        .access_log(false)
        .build()
        .unwrap();
    let proxied = Http1Client::connect(sidecar.addr("outbound").unwrap())
        .await
        .unwrap();
    SideBySide {
        in_process: catalog_client(&mesh),
        mesh,
        proxied,
        mesh_metrics,
        sidecar_metrics,
        sidecar,
    }
}

#[tokio::test]
async fn the_in_process_client_decides_and_reports_as_the_sidecar_does() {
    let (v1, _v2, registry) = support::catalog_upstreams().await;
    let config = format!("{registry}\n---\n{DECISIONS}");
    let mut sides = side_by_side(&config).await;

    let failures = |headers: &[(&str, &str)]| {
        let flaky = headers.iter().find(|(name, _)| *name == "x-flaky");
        flaky.map_or(0, |(_, n)| n.parse().unwrap())
    };
    for (path, headers) in REQUESTS {
        v1.fail_next(failures(headers));
        let through_sidecar = sides
            .proxied
            .get(&format!("http://catalog{path}"), headers)
            .await
            .unwrap();
        let mut request = http::Request::get(*path);
        for (name, value) in *headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Empty::<bytes::Bytes>::new()).unwrap();
        v1.fail_next(failures(headers));
        let response = sides.in_process.clone().oneshot(request).await.unwrap();
        let in_process_decision = decision(&response);
        let in_process_body = response.into_body().collect().await.unwrap().to_bytes();
        let sidecar_decision = (
            through_sidecar.status.as_u16(),
            through_sidecar
                .headers
                .get("x-catalog-version")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string(),
            through_sidecar
                .headers
                .get("x-envoy-overloaded")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string(),
        );
        assert_eq!(in_process_decision, sidecar_decision, "{path} {headers:?}");
        assert_eq!(in_process_body, through_sidecar.body, "{path} {headers:?}");
    }

    let sidecar_series = sides
        .sidecar_metrics
        .wait_for_requests(REQUESTS.len() as u64)
        .await;
    let mesh_series = sides
        .mesh_metrics
        .wait_for_requests(REQUESTS.len() as u64)
        .await;
    // Each kind of outcome is there: 200 from each version, 503 FI, 503 UH, 504 UT, and 503 URX
    // when the retries ran out.
    let flags: std::collections::BTreeSet<_> = mesh_series
        .iter()
        .map(|(labels, _)| {
            (
                labels["response_code"].clone(),
                labels["response_flags"].clone(),
            )
        })
        .collect();
    for expected in [
        ("200", "-"),
        ("503", "FI"),
        ("503", "UH"),
        ("504", "UT"),
        ("503", "URX"),
    ] {
        assert!(
            flags.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{expected:?} in {flags:?}"
        );
    }
    assert_eq!(mesh_series, sidecar_series);
}

#[tokio::test]
async fn a_weighted_split_is_drawn_and_reported_alike_in_process_and_by_the_sidecar() {
    const REQUESTS: u64 = 200;
    let (_v1, _v2, registry) = support::catalog_upstreams().await;
    let split = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog, namespace: istioinaction}
spec:
  hosts: [catalog]
  http:
  - route:
    - {destination: {host: catalog, subset: version-v1}, weight: 50}
    - {destination: {host: catalog, subset: version-v2}, weight: 50}
"#;
    let config = format!("{registry}\n---\n{split}");
    let mut sides = side_by_side(&config).await;
    for _ in 0..REQUESTS {
        let through_sidecar = sides
            .proxied
            .get("http://catalog/items", &[])
            .await
            .unwrap();
        assert_eq!(through_sidecar.status, 200);
        let request = http::Request::get("/items").body(Empty::<bytes::Bytes>::new());
        let response = sides
            .in_process
            .clone()
            .oneshot(request.unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        // Read to its end, as the sidecar's client reads its copy: a body dropped unread would
        // be reported as the downstream going away (`DC`).
        response.into_body().collect().await.unwrap();
    }
    // Per version: how many requests each side sent there, by its metrics.
    let by_version = |series: &[(support::metrics::Labels, u64)]| {
        let mut counts = std::collections::BTreeMap::new();
        for (labels, count) in series {
            *counts
                .entry(labels["destination_version"].clone())
                .or_insert(0) += count;
        }
        counts
    };
    let sidecar_series = sides.sidecar_metrics.wait_for_requests(REQUESTS).await;
    let mesh_series = sides.mesh_metrics.wait_for_requests(REQUESTS).await;
    let label_sets = |series: &[(support::metrics::Labels, u64)]| {
        series
            .iter()
            .map(|(labels, _)| labels.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(label_sets(&mesh_series), label_sets(&sidecar_series));
    for (side, counts) in [
        ("in-process", by_version(&mesh_series)),
        ("sidecar", by_version(&sidecar_series)),
    ] {
        assert_eq!(counts.values().sum::<u64>(), REQUESTS, "{side}: {counts:?}");
        // 50/50 over 200 requests: 100 ± 7.1 (one σ) each; 60..=140 is beyond 5.6 σ.
        for version in ["v1", "v2"] {
            let sent = counts.get(version).copied().unwrap_or(0);
            assert!((60..=140).contains(&sent), "{side}: {counts:?}");
        }
    }
}

#[tokio::test]
async fn grpc_calls_are_retried_timed_and_reported_alike_in_process_and_by_the_sidecar() {
    let catalog = grpc_example::Catalog::default();
    let server_mesh = quiet_mesh("");
    let upstream = grpc_example::serve(&server_mesh, catalog.clone())
        .await
        .unwrap();
    let sides = side_by_side(&grpc_example::client_config(upstream)).await;

    // In-process: tonic over an HTTP/2 hyper-util client in the mesh's client layer.
    let channel = grpc_example::in_process_channel(&sides.mesh).unwrap();
    let mut in_process = tonic::client::Grpc::new(channel);
    let in_process_calls = grpc_example::make_the_calls(&mut in_process, &catalog).await;

    // Through the sidecar: tonic over an HTTP/2 connection to its outbound listener, with
    // `catalog:9090` as each request's `:authority`.
    let sender = support::h2_client(sides.sidecar.addr("outbound").unwrap()).await;
    let channel = tower::service_fn(move |request: http::Request<tonic::body::Body>| {
        let mut sender = sender.clone();
        async move { sender.send_request(request).await }
    });
    let origin = http::Uri::from_static("http://catalog:9090");
    let mut proxied = tonic::client::Grpc::with_origin(channel, origin);
    let sidecar_calls = grpc_example::make_the_calls(&mut proxied, &catalog).await;

    // The same decisions: the retry on UNAVAILABLE, the deadline handed on (capped by the
    // route's timeout), the statuses, in headers and in trailers.
    assert_eq!(in_process_calls, sidecar_calls);
    assert_eq!(in_process_calls.retried_attempts, 2);
    assert_eq!(in_process_calls.grpc_timeout, "2000m");
    // The same series: one request per call (its retry included), `request_protocol="grpc"`,
    // and `grpc_response_status` 0 and 5 read from where each call's status was.
    const CALLS: u64 = 5;
    let sidecar_series = sides.sidecar_metrics.wait_for_requests(CALLS).await;
    let mesh_series = sides.mesh_metrics.wait_for_requests(CALLS).await;
    let statuses: Vec<_> = mesh_series
        .iter()
        .map(|(labels, count)| {
            assert_eq!(labels["request_protocol"], "grpc", "{labels:?}");
            (labels["grpc_response_status"].as_str(), *count)
        })
        .collect();
    assert_eq!(statuses, [("0", 3), ("5", 2)], "{mesh_series:?}");
    assert_eq!(mesh_series, sidecar_series);
}

#[tokio::test]
async fn a_swap_applies_to_new_requests_while_started_ones_finish_under_the_old_config() {
    let (v1, _v2, registry) = support::catalog_upstreams().await;
    let mesh = quiet_mesh(&support::all_to(&registry, "version-v1"));
    let client = catalog_client(&mesh);
    let version_of = |path: &'static str| {
        let client = client.clone();
        async move {
            let request = http::Request::get(path)
                .body(Empty::<bytes::Bytes>::new())
                .unwrap();
            let response = client.oneshot(request).await.unwrap();
            decision(&response).1
        }
    };

    // One client kept across the swap follows it too.
    let mut kept = client.clone();
    let mut send_kept = async move || {
        let request = http::Request::get("/items")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let ready = ServiceExt::<http::Request<Empty<bytes::Bytes>>>::ready(&mut kept);
        let response = ready.await.unwrap().call(request).await.unwrap();
        decision(&response).1
    };
    assert_eq!(send_kept().await, "v1");

    let started = tokio::spawn(version_of("/items?delay_ms=300"));
    support::wait_for_hits(&v1, 2, Duration::from_secs(5)).await;
    assert!(
        v1.hits() >= 2,
        "the slow request reached v1 before the swap"
    );
    mesh.swap_yaml(&support::all_to(&registry, "version-v2"))
        .unwrap();
    assert_eq!(mesh.version(), 2);
    assert_eq!(
        version_of("/items").await,
        "v2",
        "new requests see the new config"
    );
    assert_eq!(send_kept().await, "v2", "a kept client sees it too");
    assert_eq!(
        started.await.unwrap(),
        "v1",
        "the started one finishes under the old"
    );

    // An invalid config is refused whole, naming what is wrong; the current one keeps serving.
    let invalid = support::all_to(&registry, "version-v9");
    let Err(Error::Config(problems)) = mesh.swap_yaml(&invalid) else {
        panic!("an unknown subset is an error")
    };
    assert!(problems.to_string().contains("version-v9"), "{problems}");
    assert_eq!(mesh.version(), 2);
    assert_eq!(version_of("/items").await, "v2");
}

/// The stack leaves out the fault and mirror layers while no route sets either: a swap that
/// adds them applies them, to a client kept across it too.
#[tokio::test]
async fn a_swap_that_adds_a_mirror_or_a_fault_applies_it() {
    let (v1, v2, registry) = support::catalog_upstreams().await;
    let mesh = quiet_mesh(&support::all_to(&registry, "version-v1"));
    let client = catalog_client(&mesh);
    let send = || {
        let request = http::Request::get("/items")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        client.clone().oneshot(request)
    };
    assert_eq!(decision(&send().await.unwrap()).1, "v1");
    let with_rule = |extra: &str| {
        support::all_to(&registry, "version-v1").replace(
            "subset: version-v1}}]}]",
            &format!("subset: version-v1}}}}], {extra}}}]"),
        )
    };

    let mirrored = with_rule("mirror: {host: catalog, subset: version-v2}");
    assert_ne!(mirrored, support::all_to(&registry, "version-v1"));
    mesh.swap_yaml(&mirrored).unwrap();
    assert_eq!(decision(&send().await.unwrap()).1, "v1");
    support::wait_for_hits(&v2, 1, Duration::from_secs(5)).await;
    assert_eq!(
        v2.hits(),
        1,
        "the swapped-in mirror shadows the request to v2"
    );

    let aborted = with_rule("fault: {abort: {httpStatus: 418, percentage: {value: 100}}}");
    mesh.swap_yaml(&aborted).unwrap();
    let hits = v1.hits();
    assert_eq!(send().await.unwrap().status(), 418);
    assert_eq!(v1.hits(), hits, "the aborted request does not reach v1");
}

#[tokio::test]
async fn the_server_layer_follows_a_swap() {
    let unsampled = r#"
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing: [{randomSamplingPercentage: 0}]
"#;
    let mesh = Mesh::builder()
        .yaml(unsampled)
        .access_log(false)
        .build()
        .unwrap();
    let app = tower::service_fn(|request: http::Request<Body>| async move {
        let traceparent = request.headers()["traceparent"]
            .to_str()
            .unwrap()
            .to_owned();
        Ok::<_, std::convert::Infallible>(http::Response::new(mesh::core::body::full(traceparent)))
    });
    let server = mesh.server_layer().layer(app);
    let sampled_flag = async || {
        let request = http::Request::new(Empty::<bytes::Bytes>::new());
        let response = server.clone().oneshot(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec())
            .unwrap()
            .rsplit('-')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(sampled_flag().await, "00");
    mesh.swap_yaml(&unsampled.replace(
        "randomSamplingPercentage: 0",
        "randomSamplingPercentage: 100",
    ))
    .unwrap();
    assert_eq!(sampled_flag().await, "01");
}

#[tokio::test]
async fn bad_input_is_a_typed_error_naming_what_is_wrong() {
    let bad = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog}
spec:
  hosts: [catalog]
  http: [{route: [{destination: {host: catalog}}], timeout: soon}]
"#;
    let Err(Error::Config(problems)) = Mesh::from_yaml(bad) else {
        panic!("a bad duration is an error")
    };
    let text = problems.to_string();
    assert!(text.contains("VirtualService"), "{text}");
    assert!(text.contains("timeout"), "{text}");

    let mesh = Mesh::builder().access_log(false).build().unwrap();
    assert!(matches!(
        mesh.client_layer("not a host"),
        Err(Error::InvalidHost(_))
    ));
}

#[tokio::test]
async fn mesh_settings_given_in_rust_are_validated_and_can_be_referred_to() {
    use mesh::config::{ExtensionProvider, MeshConfig, ZipkinProvider};
    let tracing = "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh-default, namespace: istio-system}\nspec: {tracing: [{providers: [{name: zipkin}]}]}\n";
    let with_port = |port| MeshConfig {
        extension_providers: vec![ExtensionProvider {
            name: "zipkin".into(),
            zipkin: Some(ZipkinProvider {
                service: "127.0.0.1".into(),
                port,
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    // The Telemetry names a provider the Rust settings define.
    let mesh = Mesh::builder()
        .yaml(tracing)
        .mesh_config(with_port(9411))
        .access_log(false)
        .build()
        .unwrap();
    // And a configuration taken from the mesh swaps back in.
    mesh.swap((*mesh.config()).clone()).unwrap();
    let Err(Error::Config(problems)) = Mesh::builder()
        .mesh_config(with_port(0))
        .access_log(false)
        .build()
    else {
        panic!("a port of 0 is an error")
    };
    assert!(
        problems
            .to_string()
            .contains("extensionProviders[0].zipkin.port"),
        "{problems}"
    );
}

/// A service whose first `poll_ready` fails, counting its calls.
#[derive(Clone, Default)]
struct FailsReadinessOnce {
    polled: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

impl tower::Service<http::Request<Body>> for FailsReadinessOnce {
    type Response = http::Response<Body>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<http::Response<Body>, std::io::Error>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), std::io::Error>> {
        std::task::Poll::Ready(match self.polled.fetch_add(1, Ordering::SeqCst) {
            0 => Err(std::io::Error::other("not ready")),
            _ => Ok(()),
        })
    }

    fn call(&mut self, _request: http::Request<Body>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(http::Response::new(mesh::core::body::empty())))
    }
}

#[tokio::test]
async fn a_server_whose_service_fails_readiness_answers_without_calling_it() {
    let mesh = Mesh::builder().access_log(false).build().unwrap();
    let app = FailsReadinessOnce::default();
    let mut server = mesh.server_layer().layer(app.clone());
    let request = || http::Request::new(Empty::<bytes::Bytes>::new());
    let response = ServiceExt::<http::Request<Empty<bytes::Bytes>>>::ready(&mut server)
        .await
        .unwrap()
        .call(request())
        .await
        .unwrap();
    assert_eq!(response.status(), 503, "the local reply for its error");
    assert_eq!(app.calls.load(Ordering::SeqCst), 0, "never called unready");
    let response = ServiceExt::<http::Request<Empty<bytes::Bytes>>>::ready(&mut server)
        .await
        .unwrap()
        .call(request())
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "ready again, it serves");
    assert_eq!(app.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_http2_request_reaches_an_http1_endpoint_over_an_http1_client() {
    let (_v1, _v2, registry) = support::catalog_upstreams().await;
    let mesh = quiet_mesh(&support::all_to(&registry, "version-v1"));
    // As tonic builds its requests: version HTTP/2.
    let request = http::Request::get("/items")
        .version(http::Version::HTTP_2)
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = catalog_client(&mesh).oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(decision(&response).1, "v1");
}

#[tokio::test]
async fn sources_are_validated_together_so_they_may_refer_to_each_other() {
    let (_v1, _v2, registry) = support::catalog_upstreams().await;
    // The routes alone name a host and subsets only the registry declares.
    let mesh = Mesh::builder()
        .yaml(registry)
        .yaml(support::all_to("", "version-v2"))
        .access_log(false)
        .build()
        .unwrap();
    let request = http::Request::get("/items")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = catalog_client(&mesh).oneshot(request).await.unwrap();
    assert_eq!(decision(&response).1, "v2");
}

#[tokio::test]
async fn the_server_layer_enforces_authorization_policies_in_process() {
    let policy = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n\
                  metadata: {name: no-admin, namespace: shop}\n\
                  spec: {action: DENY, rules: [{to: [{operation: {paths: ['/admin*']}}]}]}\n";
    let mesh = Mesh::builder()
        .yaml(policy)
        .workload(mesh::proxy::workload_identity::WorkloadSettings {
            namespace: Some("shop".into()),
            ..Default::default()
        })
        .access_log(false)
        .build()
        .unwrap();
    let app = tower::service_fn(|_request: http::Request<Body>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(mesh::core::body::empty()))
    });
    let server = mesh.server_layer().layer(app);
    let get = |path: &'static str| {
        let server = server.clone();
        async move {
            let request = http::Request::get(path)
                .body(Empty::<bytes::Bytes>::new())
                .unwrap();
            let response = server.oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    assert_eq!(get("/items").await.0, 200);
    assert_eq!(
        get("/admin/users").await,
        (403, "RBAC: access denied".to_owned())
    );
}

#[tokio::test]
async fn the_clients_request_gets_room_for_the_mesh_headers_up_front() {
    // The caller's request and the one its client is handed: the mesh reserves room for what
    // it adds once, as the sidecar's listener does, rather than growing the map per layer.
    let mesh = quiet_mesh(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\n\
         spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], \
         endpoints: [{address: 127.0.0.1}]}\n",
    );
    let seen = Arc::new(std::sync::Mutex::new((0, 0)));
    let recorded = seen.clone();
    let client = tower::service_fn(move |request: http::Request<Body>| {
        *recorded.lock().unwrap() = (request.headers().len(), request.headers().capacity());
        async { Ok::<_, Error>(http::Response::new(mesh::core::body::empty())) }
    });
    let request = http::Request::get("/items")
        .header("accept", "*/*")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = mesh
        .client_layer("catalog")
        .unwrap()
        .layer(client)
        .oneshot(request)
        .await;
    assert_eq!(response.unwrap().status(), 200);
    let (len, capacity) = *seen.lock().unwrap();
    assert!(
        len > 5,
        "trace context, request id and the rest were added: {len}"
    );
    assert!(
        capacity >= 1 + 1 + mesh::proxy::listener::ADDED_HEADERS,
        "the caller's header, then host and what the layers add: {capacity}"
    );
}

#[tokio::test]
async fn the_applications_extensions_reach_its_client_on_every_attempt_and_the_meshs_do_not() {
    /// An extension the application sets on its request.
    #[derive(Clone, Debug, PartialEq)]
    struct Tenant(&'static str);
    let mesh = quiet_mesh(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\n\
         spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], \
         endpoints: [{address: 127.0.0.1}]}\n---\n\
         apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: catalog}\n\
         spec: {hosts: [catalog], http: [{route: [{destination: {host: catalog}}], \
         retries: {attempts: 2, retryOn: 5xx}}]}\n",
    );
    // What each attempt's request carried: the tenant, and whether any mesh extension.
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = seen.clone();
    let client = tower::service_fn(move |request: http::Request<Body>| {
        let extensions = request.extensions();
        let mesh_own = extensions.get::<mesh::core::Destination>().is_some()
            || extensions
                .get::<mesh::core::retry::RetryContext>()
                .is_some()
            || extensions
                .get::<mesh::proxy::transport::Transport>()
                .is_some();
        let tenant = extensions.get::<Tenant>().cloned();
        let mut attempts = recorded.lock().unwrap();
        attempts.push((tenant, mesh_own));
        let status = if attempts.len() < 3 { 503 } else { 200 };
        async move {
            let response = http::Response::builder().status(status);
            Ok::<_, Error>(response.body(mesh::core::body::empty()).unwrap())
        }
    });
    let client = mesh.client_layer("catalog").unwrap().layer(client);
    let mut request = http::Request::get("/items")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    request.extensions_mut().insert(Tenant("acme"));
    let response = client.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200, "the third attempt answered");
    let tenant = Some(Tenant("acme"));
    assert_eq!(*seen.lock().unwrap(), vec![(tenant, false); 3]);

    // A request with no extensions of its own: its client gets none.
    seen.lock().unwrap().clear();
    let request = http::Request::get("/items")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(client.oneshot(request).await.unwrap().status(), 200);
    assert_eq!(*seen.lock().unwrap(), vec![(None, false); 3]);
}

#[tokio::test]
async fn the_client_and_server_layers_write_the_access_log() {
    let file = LogFile::new("in-process");
    // `Mesh::from_yaml` keeps the access log on; the mesh config sends it to `file`.
    let mesh = Mesh::from_yaml(&format!(
        r#"{logging}
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: catalog, namespace: istioinaction}}
spec: {{hosts: [catalog], resolution: STATIC, ports: [{{number: 80, name: http}}], endpoints: [{{address: 127.0.0.1}}]}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: catalog, namespace: istioinaction}}
spec:
  hosts: [catalog]
  http: [{{name: items, route: [{{destination: {{host: catalog}}}}]}}]
"#,
        logging = logging_to(&file, "JSON")
    ))
    .unwrap();
    // The application behind the server layer, and the client under the client layer (which
    // answers for the endpoint): each answers 200.
    let answer = tower::service_fn(|_request: http::Request<Body>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(mesh::core::body::empty()))
    });
    let request = |id: &str| {
        http::Request::get("/items")
            .header("host", "catalog")
            .header("x-request-id", id)
            .body(mesh::core::body::empty())
            .unwrap()
    };
    let server = mesh.server_layer().layer(answer);
    let served = server.oneshot(request("served-in")).await.unwrap();
    assert_eq!(served.status(), 200);
    let on_its_port = mesh.server_layer().port(8080).layer(answer);
    let served = on_its_port
        .oneshot(request("served-on-8080"))
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    let client = mesh.client_layer("catalog").unwrap().layer(answer);
    let sent = client.oneshot(request("sent-out")).await.unwrap();
    assert_eq!(sent.status(), 200);
    // Written off the request path: waited for.
    let lines: Vec<serde_json::Value> = file
        .lines(3)
        .await
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let line = |id: &str| {
        lines
            .iter()
            .find(|line| line["request_id"] == id)
            .unwrap_or_else(|| panic!("no line for {id} in {lines:#?}"))
    };
    for id in ["served-in", "served-on-8080", "sent-out"] {
        let line = line(id);
        assert_eq!(line["method"], "GET", "{line}");
        assert_eq!(line["path"], "/items", "{line}");
        assert_eq!(line["authority"], "catalog", "{line}");
        assert_eq!(line["response_code"], 200, "{line}");
        assert_eq!(line["response_flags"], "-", "{line}");
    }
    // The client side names the catalog's outbound cluster and the route it took; the server
    // side's upstream is the application in the same process, which no cluster names until the
    // layer is told the port it serves on: then it is Istio's inbound cluster for that port.
    let served = line("served-in");
    assert!(served["upstream_cluster"].is_null(), "{served}");
    let served = line("served-on-8080");
    assert_eq!(served["upstream_cluster"], "inbound|8080||", "{served}");
    let sent = line("sent-out");
    assert_eq!(
        sent["upstream_cluster"], "outbound|80||catalog.istioinaction.svc.cluster.local",
        "{sent}"
    );
    assert_eq!(sent["route_name"], "items", "{sent}");
}
