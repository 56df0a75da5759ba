//! An in-process call through the mesh against the same call with the bare hyper client.
//!
//! Both send `GET /items` over one hyper-util client to a loopback server (its own thread and
//! runtime) that answers 200 at once. `hyper_client` points the URI at the server and sends;
//! `mesh_client` sends through [`Mesh::client_layer`]: trace context (W3C and B3 headers,
//! `x-request-id`, sampling), Istio metrics into a Prometheus recorder, routing to a subset, a 15 s
//! timeout, retries (`5xx,connect-failure`, 2 attempts, with the body-replay template) and endpoint
//! selection, then the same hyper client. The difference is what the mesh adds per request.
//! `hyper_client_sending_the_meshs_headers` is the bare call with the headers the mesh adds: the
//! part of that difference spent on the wire and in the upstream's parser, which the mesh's own
//! code does not touch. `mesh_client_without_a_route_timeout` and `mesh_client_routing_alone`
//! are the mesh with its route timeout left out, and with every policy left out (no timeout,
//! retries, tracing or metrics): what of the round trip the policies add, and what the stack
//! every request runs through costs by itself. A second group, `in_process_cpu`, isolates the mesh's CPU cost: the same
//! two over a client that answers 200 at once, with no network (with the response hyper-util's
//! client hands back: see `support::answer_at_once`), and the mesh again with one
//! policy left out at a time (no route timeout, no retries, no tracing, a no-op metrics recorder)
//! and with all four left out: what each policy adds, and what routing to an endpoint costs alone.
//! `in_process_cpu_waiting` sends the bare call, the full mesh, the mesh without its route
//! timeout and the mesh routing alone over that client with each answer held back to its
//! future's second poll (`support::answer_on_second_poll`), as a request over the network waits
//! for its answer: what waiting costs the mesh besides (its timer armed, each layer polled again).
//! `LAYER_BENCH_ROUNDS=N` runs each group's variants interleaved, each against the first (see
//! `support::layer_bench`). `in_process_cpu_threads` times the bare and the full mesh over the
//! answering client from one thread and from two at once (each with a runtime of its own, one
//! client between them), per request and thread: what the threads' cores pass between them. It
//! also gives each thread a mesh of its own, which shares nothing with the other's: the cost of
//! the first's sharing is the difference. `in_process_cold` sends the bare call, the full mesh
//! and the mesh routing alone over the answering client with the core's private caches evicted
//! before each request (see `support::cold_caches`): what the mesh costs where a request finds
//! its code and data gone, as one does after the kernel's network stack ran.

use criterion::{Criterion, criterion_group, criterion_main};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use mesh::{
    Mesh,
    core::{Body, BoxError},
};
use std::{convert::Infallible, net::SocketAddr};
use tower::{Layer, service_fn};

#[path = "support/answer_at_once.rs"]
mod answer_at_once;
#[path = "support/answer_on_second_poll.rs"]
mod answer_on_second_poll;
#[path = "support/cold_caches.rs"]
mod cold_caches;
#[path = "support/layer_bench.rs"]
mod layer_bench;
#[path = "support/loopback_upstream.rs"]
mod loopback_upstream;
#[path = "support/threads.rs"]
mod threads;
#[path = "support/wire_request.rs"]
mod wire_request;

use answer_at_once::AnswerAtOnce;
use answer_on_second_poll::AnswerOnSecondPoll;
use layer_bench::Variants;

/// The hyper-util client both variants send with.
type HyperClient = Client<hyper_util::client::legacy::connect::HttpConnector, Body>;

/// The route's policies in the bench's configuration.
const TIMEOUT: &str = "timeout: 15s";
const RETRIES: &str = r#"retries: {attempts: 2, retryOn: "5xx,connect-failure"}"#;
/// What each is replaced with to leave it out: no route timeout (Istio's default), and
/// `attempts: 0` (no `retries` at all would be Istio's default policy, two retries).
const NO_TIMEOUT: &str = "timeout: 0s";
const NO_RETRIES: &str = "retries: {attempts: 0}";

/// `catalog` at `upstream`, routed to subset v1 with a timeout and retries.
fn config(upstream: SocketAddr) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: catalog, namespace: bench}}
spec:
  hosts: [catalog]
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints: [{{address: {ip}, ports: {{http: {port}}}, labels: {{version: v1}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: catalog, namespace: bench}}
spec:
  host: catalog
  subsets: [{{name: v1, labels: {{version: v1}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: catalog, namespace: bench}}
spec:
  hosts: [catalog]
  http:
  - route: [{{destination: {{host: catalog, subset: v1}}}}]
    {TIMEOUT}
    {RETRIES}
"#,
        ip = upstream.ip(),
        port = upstream.port()
    )
}

fn in_process(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let upstream = loopback_upstream::upstream();
    let _guard = runtime.enter();
    let mesh = mesh_builder(config(upstream))
        .build()
        .expect("valid config");
    let http = Client::builder(TokioExecutor::new()).build_http::<Body>();
    // The mesh without its route timeout, and routing alone (every policy left out).
    let untimed = runtime.block_on(mesh_without(upstream, &[Policy::Timeout]));
    let untimed = untimed.client_layer("catalog").expect("host");
    let routing_alone = runtime.block_on(mesh_without(upstream, &Policy::ALL));
    let routing_alone = routing_alone.client_layer("catalog").expect("host");

    let mut network = Variants::default();
    // Every bench request is `GET /items`; the URI is made once, as a client would keep it.
    let items: http::Uri = format!("http://{upstream}/items").parse().expect("uri");
    network.add(
        "hyper_client",
        None,
        bare(http.clone(), items.clone(), None),
    );
    // The bare client again, sending the headers the mesh adds (trace context, request id,
    // attempt count, timeout, forwarded proto; one request's, copied): what the wire and the
    // upstream's parser cost for them, which no in-process client can save.
    let meshs_headers = runtime.block_on(headers_the_mesh_sends(&mesh));
    network.add(
        "hyper_client_sending_the_meshs_headers",
        None,
        bare(http.clone(), items, Some(meshs_headers)),
    );
    let through_mesh = mesh
        .client_layer("catalog")
        .expect("host")
        .layer(http.clone());
    network.add("mesh_client", None, through_mesh);
    network.add(
        "mesh_client_without_a_route_timeout",
        None,
        untimed.layer(http.clone()),
    );
    network.add("mesh_client_routing_alone", None, routing_alone.layer(http));
    network.run(c, "in_process", &runtime);
    // The mesh's own CPU cost, with no network: over a client that answers 200 at once, with
    // the response hyper-util's client would hand back from `upstream`.
    let mut at_once = Variants::default();
    let answer_at_once = AnswerAtOnce::to(upstream);
    at_once.add("client_answering_at_once", None, answer_at_once);
    let over_answer_at_once = mesh
        .client_layer("catalog")
        .expect("host")
        .layer(answer_at_once);
    at_once.add(
        "mesh_over_client_answering_at_once",
        None,
        over_answer_at_once.clone(),
    );
    at_once.add(
        "mesh_without_a_route_timeout",
        None,
        untimed.layer(answer_at_once),
    );
    for (name, leaving_out) in [
        ("mesh_without_retries", Policy::Retries),
        ("mesh_without_tracing", Policy::Tracing),
        ("mesh_with_a_noop_metrics_recorder", Policy::Metrics),
    ] {
        let lean = runtime.block_on(mesh_without(upstream, &[leaving_out]));
        let client = lean.client_layer("catalog").expect("host");
        at_once.add(name, None, client.layer(answer_at_once));
    }
    at_once.add(
        "mesh_routing_alone",
        None,
        routing_alone.layer(answer_at_once),
    );
    at_once.run(c, "in_process_cpu", &runtime);
    // The same over a client answering on its future's second poll: what a request that waits
    // for its answer costs the mesh besides (the route timeout's timer armed, each layer
    // polled again), as every request over the network waits.
    let mut waiting = Variants::default();
    let answer_later = AnswerOnSecondPoll(answer_at_once);
    waiting.add("client_answering_on_second_poll", None, answer_later);
    let over_answer_later = mesh.client_layer("catalog").expect("host");
    waiting.add(
        "mesh_over_client_answering_on_second_poll",
        None,
        over_answer_later.layer(answer_later),
    );
    waiting.add(
        "mesh_without_a_route_timeout",
        None,
        untimed.layer(answer_later),
    );
    waiting.add(
        "mesh_routing_alone",
        None,
        routing_alone.layer(answer_later),
    );
    waiting.run(c, "in_process_cpu_waiting", &runtime);
    // The same with cold caches: what the mesh's code and data cost to fetch again.
    let mut cold = Variants::default();
    let caches = cold_caches::ColdCaches::new();
    cold.add(
        "client_answering_at_once",
        None,
        caches.before_each_request(answer_at_once),
    );
    cold.add(
        "mesh_over_client_answering_at_once",
        None,
        caches.before_each_request(over_answer_at_once),
    );
    cold.add(
        "mesh_routing_alone",
        None,
        caches.before_each_request(routing_alone.layer(answer_at_once)),
    );
    cold.run(c, "in_process_cold", &runtime);
    if layer_bench::interleaved_rounds().is_none() {
        let shared = mesh.client_layer("catalog").expect("host");
        let shared = shared.layer(answer_at_once);
        let own = || {
            let mesh = mesh_builder(config(upstream))
                .build()
                .expect("valid config");
            mesh.client_layer("catalog")
                .expect("host")
                .layer(answer_at_once)
        };
        on_threads(c, || answer_at_once, || shared.clone(), own);
    }
    // For `benches/cpu_per_request.sh`, which divides the process's CPU time by it.
    if std::env::var_os("IN_PROCESS_REPORT_SERVED").is_some() {
        eprintln!("requests served: {}", loopback_upstream::served());
    }
}

/// `in_process_cpu_threads`: each thread sending through the service `bare`, `mesh` or
/// `own_mesh` makes it, from one thread and from two.
fn on_threads<B, M>(
    c: &mut Criterion,
    bare: impl Fn() -> B + Sync,
    mesh: impl Fn() -> M + Sync,
    own_mesh: impl Fn() -> M + Sync,
) where
    B: tower::Service<http::Request<Body>, Error = Infallible> + Clone,
    M: tower::Service<http::Request<Body>, Error = Infallible> + Clone,
{
    let mut group = c.benchmark_group("in_process_cpu_threads");
    for threads in [1, 2] {
        group.bench_function(format!("client_answering_at_once/{threads}_threads"), |b| {
            b.iter_custom(|requests| each_thread_sends(threads, requests, &bare))
        });
        group.bench_function(
            format!("mesh_over_client_answering_at_once/{threads}_threads"),
            |b| b.iter_custom(|requests| each_thread_sends(threads, requests, &mesh)),
        );
        group.bench_function(
            format!("a_mesh_of_its_own_over_client_answering_at_once/{threads}_threads"),
            |b| b.iter_custom(|requests| each_thread_sends(threads, requests, &own_mesh)),
        );
    }
    group.finish();
}

/// The time the slowest of `threads` threads takes to send `requests` requests each, through
/// clones of the service `service` makes for it, on a current-thread runtime of its own.
fn each_thread_sends<S>(
    threads: usize,
    requests: u64,
    service: &(impl Fn() -> S + Sync),
) -> std::time::Duration
where
    S: tower::Service<http::Request<Body>, Error = Infallible> + Clone,
{
    use tower::ServiceExt;
    let runtime = || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        (runtime, wire_request::WireBuffer::new(), service())
    };
    threads::together(threads, runtime, |(runtime, wire, service)| {
        runtime.block_on(async {
            for _ in 0..requests {
                let answered = service.clone().oneshot(wire.request()).await;
                std::hint::black_box(answered.is_ok());
            }
        })
    })
}

/// The bench's mesh from `yaml`, with no access log (the bare client writes none).
fn mesh_builder(yaml: String) -> mesh::MeshBuilder {
    Mesh::builder().yaml(yaml).access_log(false)
}

/// A policy of the bench's mesh that a variant leaves out.
#[derive(Clone, Copy, PartialEq)]
enum Policy {
    Timeout,
    Retries,
    Tracing,
    Metrics,
}

impl Policy {
    const ALL: [Policy; 4] = [
        Policy::Timeout,
        Policy::Retries,
        Policy::Tracing,
        Policy::Metrics,
    ];
}

/// The bench's mesh with the `left_out` policies off, checked to have them off: the route
/// says `attempts: 0`, the headers it sends have no timeout or trace context, and a no-op
/// recorder renders no metrics.
async fn mesh_without(upstream: SocketAddr, left_out: &[Policy]) -> Mesh {
    let off = |policy| left_out.contains(&policy);
    let mut yaml = config(upstream);
    if off(Policy::Timeout) {
        yaml = yaml.replace(TIMEOUT, NO_TIMEOUT);
    }
    if off(Policy::Retries) {
        yaml = yaml.replace(RETRIES, NO_RETRIES);
        assert!(yaml.contains(NO_RETRIES));
    }
    let mut builder = mesh_builder(yaml);
    if off(Policy::Tracing) {
        let tracing_off = mesh::config::MeshConfig {
            enable_tracing: Some(false),
            ..Default::default()
        };
        builder = builder.mesh_config(tracing_off);
    }
    if off(Policy::Metrics) {
        let noop = std::sync::Arc::new(metrics::NoopRecorder);
        builder = builder.metrics(mesh::trace::metrics::MetricsRecorder::Owned(noop));
    }
    let mesh = builder.build().expect("valid config");
    let sent = headers_the_mesh_sends(&mesh).await;
    let has = |name: &str| sent.contains_key(name);
    assert_eq!(has("x-envoy-expected-rq-timeout-ms"), !off(Policy::Timeout));
    assert_eq!(has("traceparent"), !off(Policy::Tracing));
    assert_eq!(mesh.render_prometheus().is_some(), !off(Policy::Metrics));
    mesh
}

/// The bare hyper client sending each request to `uri`, with `headers` instead of its own if
/// given.
fn bare(
    http: HyperClient,
    uri: http::Uri,
    headers: Option<http::HeaderMap>,
) -> impl tower::Service<
    http::Request<Body>,
    Response = http::Response<Body>,
    Error = BoxError,
    Future = impl Future<Output = Result<http::Response<Body>, BoxError>>,
> + Clone {
    service_fn(move |mut request: http::Request<Body>| {
        *request.uri_mut() = uri.clone();
        if let Some(headers) = &headers {
            *request.headers_mut() = headers.clone();
        }
        let response = http.request(request);
        // Boxed as the harness needs one response type (the mesh boxes its bodies too).
        async move { Ok::<_, BoxError>(response.await?.map(mesh::core::body::boxed)) }
    })
}

/// The headers of a bench request as the mesh hands it to its client.
async fn headers_the_mesh_sends(mesh: &Mesh) -> http::HeaderMap {
    use tower::{Service, ServiceExt};
    let sent = std::sync::Arc::new(std::sync::Mutex::new(None));
    let keep = sent.clone();
    let capture = service_fn(move |request: http::Request<Body>| {
        *keep.lock().expect("unpoisoned") = Some(request.headers().clone());
        async { Ok::<_, Infallible>(http::Response::new(mesh::core::body::empty())) }
    });
    let mut client = mesh.client_layer("catalog").expect("host").layer(capture);
    let request = wire_request::WireBuffer::new().request();
    // Not `oneshot`: `benches/instructions.sh` counts the requests by their `Oneshot` polls.
    let ready = ServiceExt::<http::Request<Body>>::ready(&mut client).await;
    ready.expect("ready").call(request).await.expect("answered");
    let headers = sent.lock().expect("unpoisoned").take();
    headers.expect("the mesh sent the request on")
}

criterion_group!(benches, in_process);
criterion_main!(benches);
