//! End-to-end tracing through sidecars over real sockets: B3/W3C headers upstream, one trace
//! across two hops with correct parent links, spans exported to a test Zipkin collector and
//! valid against Zipkin's v2 schema, forced traces, custom tags, and a dead collector that
//! does not slow requests.

mod support;
#[path = "support/zipkin.rs"]
mod zipkin;

use http::{HeaderMap, Request, Response};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh::demo::{CatalogServer, Collected, Http1Client};
use serde_json::Value;
use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};
use support::sidecar;
use zipkin::{Collector, violations, zipkin_definitions};

/// The catalog registry pointed at `upstream`, plus mesh tracing settings.
fn config(upstream: &CatalogServer, tracing: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: catalog}}\nspec:\n  hosts: [catalog]\n  resolution: STATIC\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]\n---\napiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {{name: mesh}}\nspec:\n  defaultConfig:\n    tracing:\n{tracing}",
        upstream.addr().port()
    )
}

fn zipkin_at(collector: SocketAddr, sampling: u32) -> String {
    format!("      sampling: {sampling}\n      zipkin: {{address: {collector}}}\n")
}

async fn upstream() -> CatalogServer {
    CatalogServer::start("v1", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn hex(value: &str, len: usize) -> bool {
    value.len() == len
        && value
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The spans of `trace_id` among `spans`.
fn of_trace<'a>(spans: &'a [Value], trace_id: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["traceId"] == trace_id).collect()
}

#[tokio::test]
async fn upstream_sees_b3_and_w3c_headers_and_a_request_id() {
    let catalog = upstream().await;
    let proxy = sidecar(&config(&catalog, "      sampling: 100\n")).await;
    let mut client = Http1Client::connect(proxy.addr("outbound").unwrap())
        .await
        .unwrap();
    assert_eq!(
        client
            .get("http://catalog/items", &[])
            .await
            .unwrap()
            .status,
        200
    );
    let seen = catalog.last_request().unwrap().headers;
    let trace_id = seen["x-b3-traceid"].to_str().unwrap();
    let span_id = seen["x-b3-spanid"].to_str().unwrap();
    assert!(hex(trace_id, 32), "{trace_id}");
    assert!(hex(span_id, 16), "{span_id}");
    assert_eq!(seen["x-b3-sampled"], "1");
    assert!(
        !seen.contains_key("x-b3-parentspanid"),
        "a new trace has no parent"
    );
    assert_eq!(
        seen["traceparent"].to_str().unwrap(),
        format!("00-{trace_id}-{span_id}-01")
    );
    assert_eq!(seen["x-request-id"].len(), 36);
    // A caller's trace is continued: same trace, the caller's span as parent.
    client
        .get(
            "http://catalog/items",
            &[
                ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
                ("x-b3-spanid", "e457b5a2e4d86bd1"),
                ("x-b3-sampled", "0"),
                ("x-request-id", "keep-me"),
            ],
        )
        .await
        .unwrap();
    let seen = catalog.last_request().unwrap().headers;
    assert_eq!(seen["x-b3-traceid"], "80f198ee56343ba864fe8b2a57d3eff7");
    assert_eq!(seen["x-b3-parentspanid"], "e457b5a2e4d86bd1");
    assert_ne!(seen["x-b3-spanid"], "e457b5a2e4d86bd1");
    assert_eq!(seen["x-b3-sampled"], "0", "the caller's decision is kept");
    assert_eq!(seen["x-request-id"], "keep-me");
}

/// The trace headers Istio asks applications to pass on.
const TRACE_HEADERS: &[&str] = &[
    "x-request-id",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "traceparent",
];

/// An app between two sidecars: it calls `next` (the second sidecar) for `catalog`, passing on
/// the headers named in `propagated` that it received.
async fn forwarding_app(next: SocketAddr, propagated: &'static [&'static str]) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: Request<hyper::body::Incoming>| async move {
                        let incoming: &HeaderMap = request.headers();
                        let headers: Vec<(String, String)> = propagated
                            .iter()
                            .filter_map(|name| {
                                Some((
                                    name.to_string(),
                                    incoming.get(*name)?.to_str().ok()?.to_owned(),
                                ))
                            })
                            .collect();
                        let pairs: Vec<(&str, &str)> = headers
                            .iter()
                            .map(|(n, v)| (n.as_str(), v.as_str()))
                            .collect();
                        let mut client = Http1Client::connect(next).await.unwrap();
                        let reply = client.get("http://catalog/items", &pairs).await.unwrap();
                        Ok::<_, hyper::Error>(Response::new(Full::new(reply.body)))
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// Sends `GET http://frontend/items` through a first sidecar (tracing as `tracing` says) that
/// knows `frontend` as `app`; returns the 200 it answers.
async fn through_first_hop(catalog: &CatalogServer, tracing: &str, app: SocketAddr) -> Collected {
    let first_config = format!(
        "{}\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: frontend}}\nspec:\n  hosts: [frontend]\n  resolution: STATIC\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]\n",
        config(catalog, tracing),
        app.port()
    );
    let first = sidecar(&first_config).await;
    let mut client = Http1Client::connect(first.addr("outbound").unwrap())
        .await
        .unwrap();
    let response = client.get("http://frontend/items", &[]).await.unwrap();
    assert_eq!(response.status, 200);
    response
}

#[tokio::test]
async fn two_hops_keep_one_trace_with_parent_links_and_valid_spans() {
    let collector = Collector::start().await;
    let catalog = upstream().await;
    let tracing = zipkin_at(collector.addr, 100);
    // Second hop: the app's sidecar, sending to the catalog.
    let second = sidecar(&config(&catalog, &tracing)).await;
    let app = forwarding_app(second.addr("outbound").unwrap(), TRACE_HEADERS).await;
    // First hop: the client's sidecar, sending to the app (registered as `frontend`).
    let response = through_first_hop(&catalog, &tracing, app).await;
    assert!(response.text().contains("\"version\": \"v1\""));

    let seen = catalog.last_request().unwrap().headers;
    let trace_id = seen["x-b3-traceid"].to_str().unwrap().to_owned();
    let spans = collector.wait_for(2).await;
    let trace = of_trace(&spans, &trace_id);
    assert_eq!(trace.len(), 2, "one client span per hop: {spans:#?}");
    let root = trace
        .iter()
        .find(|s| s.get("parentId").is_none())
        .expect("a root span");
    let child = trace
        .iter()
        .find(|s| s.get("parentId").is_some())
        .expect("a child span");
    assert_eq!(
        child["parentId"], root["id"],
        "the second hop's parent is the first"
    );
    assert_eq!(seen["x-b3-spanid"], child["id"].as_str().unwrap());
    assert_eq!(seen["x-b3-parentspanid"], root["id"].as_str().unwrap());
    for span in &trace {
        assert_eq!(span["kind"], "CLIENT");
        assert_eq!(span["tags"]["http.method"], "GET");
        assert_eq!(span["tags"]["http.status_code"], "200");
        assert_eq!(span["tags"]["response_flags"], "-");
        assert!(
            span["tags"]["node_id"]
                .as_str()
                .unwrap()
                .starts_with("sidecar~")
        );
        assert!(span["tags"].get("istio.canonical_service").is_some());
        assert!(span["localEndpoint"]["serviceName"].is_string());
    }
    let cluster = child["tags"]["upstream_cluster"].as_str().unwrap();
    assert!(cluster == "outbound|80||catalog", "{cluster}");
    assert_eq!(root["tags"]["http.url"], "http://frontend/items");
    let definitions = zipkin_definitions();
    for span in &spans {
        let problems = violations(&definitions, "Span", span);
        assert!(problems.is_empty(), "{problems:#?}\n{span:#}");
    }
}

#[tokio::test]
async fn an_app_that_passes_on_only_the_request_id_keeps_the_next_hop_sampled() {
    let collector = Collector::start().await;
    let catalog = upstream().await;
    // Second hop: sampling 0, behind an app that passes on `x-request-id` alone.
    let second = sidecar(&config(&catalog, &zipkin_at(collector.addr, 0))).await;
    let app = forwarding_app(second.addr("outbound").unwrap(), &["x-request-id"]).await;
    // First hop: sampling 100, so its new request id records the sampled trace (`9`).
    through_first_hop(&catalog, &zipkin_at(collector.addr, 100), app).await;

    let seen = catalog.last_request().unwrap().headers;
    let id = seen["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!((id.len(), &id[14..15]), (36, "9"), "{id}");
    // Both hops report a span for this request id, though the second samples nothing of its
    // own and was given no B3 or W3C context (so its span starts a trace of its own).
    let spans = collector.wait_for(2).await;
    let of_request: Vec<_> = spans
        .iter()
        .filter(|span| span["tags"]["guid:x-request-id"] == id.as_str())
        .collect();
    assert_eq!(of_request.len(), 2, "{spans:#?}");
    assert_ne!(of_request[0]["traceId"], of_request[1]["traceId"]);
}

#[tokio::test]
async fn sampling_zero_still_traces_forced_requests_and_tags_custom_values() {
    let collector = Collector::start().await;
    let catalog = upstream().await;
    let tracing = format!(
        "{}      customTags:\n        team: {{literal: {{value: shop}}}}\n        user: {{header: {{name: x-user, defaultValue: anonymous}}}}\n        home: {{environment: {{name: HOME}}}}\n        nothing: {{environment: {{name: MESH_TEST_UNSET_VARIABLE}}}}\n",
        zipkin_at(collector.addr, 0)
    );
    let proxy = sidecar(&config(&catalog, &tracing)).await;
    let mut client = Http1Client::connect(proxy.addr("outbound").unwrap())
        .await
        .unwrap();
    for _ in 0..20 {
        client.get("http://catalog/items", &[]).await.unwrap();
    }
    assert_eq!(catalog.last_request().unwrap().headers["x-b3-sampled"], "0");
    client
        .get(
            "http://catalog/items",
            &[("x-envoy-force-trace", "true"), ("x-user", "ann")],
        )
        .await
        .unwrap();
    client
        .get("http://catalog/items", &[("x-b3-sampled", "1")])
        .await
        .unwrap();
    let spans = collector.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spans = if spans.len() > 2 {
        spans
    } else {
        collector.spans()
    };
    assert_eq!(spans.len(), 2, "only the forced requests: {spans:#?}");
    let forced = &spans[0]["tags"];
    assert_eq!(forced["team"], "shop");
    assert_eq!(forced["user"], "ann");
    assert_eq!(
        forced["home"],
        std::env::var("HOME").unwrap_or_default().as_str()
    );
    assert!(
        forced.get("nothing").is_none(),
        "no value, no default: no tag"
    );
    assert_eq!(spans[1]["tags"]["user"], "anonymous");
}

#[tokio::test]
async fn a_dead_collector_does_not_slow_requests() {
    // A collector that accepts connections and never answers, and one that is not there.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let closed = {
        let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        probe.local_addr().unwrap()
    };
    for dead in [silent_addr, closed] {
        let catalog = upstream().await;
        let proxy = sidecar(&config(&catalog, &zipkin_at(dead, 100))).await;
        let mut client = Http1Client::connect(proxy.addr("outbound").unwrap())
            .await
            .unwrap();
        let start = Instant::now();
        let mut slowest = Duration::ZERO;
        for _ in 0..300 {
            let sent = Instant::now();
            assert_eq!(
                client
                    .get("http://catalog/items", &[])
                    .await
                    .unwrap()
                    .status,
                200
            );
            slowest = slowest.max(sent.elapsed());
        }
        assert!(
            slowest < Duration::from_millis(250),
            "{dead}: slowest {slowest:?}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{dead}: {:?}",
            start.elapsed()
        );
        if dead == closed {
            // What could not be exported is counted.
            let failed = || async {
                let stats = support::admin_text(&proxy, "/stats").await;
                stats
                    .lines()
                    .find_map(|l| l.strip_prefix("tracing.zipkin.spans_failed: "))
                    .map(|n| n.parse::<u64>().unwrap())
                    .unwrap_or_else(|| panic!("{stats}"))
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while failed().await == 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                failed().await > 0,
                "spans lost to a closed collector are counted"
            );
        }
    }
    hold.abort();
}

#[tokio::test]
async fn inbound_requests_get_a_server_span_continuing_the_callers_trace() {
    let collector = Collector::start().await;
    let app = upstream().await;
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: default, namespace: shop}}\nspec:\n  ingress:\n  - port: {{number: 3000, protocol: HTTP, name: http}}\n    defaultEndpoint: 127.0.0.1:{}\n---\napiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {{name: mesh}}\nspec:\n  defaultConfig:\n    tracing:\n{}",
        app.addr().port(),
        zipkin_at(collector.addr, 0)
    );
    let proxy = sidecar(&yaml).await;
    let mut client = Http1Client::connect(proxy.addr("inbound").unwrap())
        .await
        .unwrap();
    // The calling sidecar's client span, sampled: the decision is honoured at sampling 0.
    let response = client
        .get(
            "/items",
            &[
                ("host", "catalog:3000"),
                ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
                ("x-b3-spanid", "e457b5a2e4d86bd1"),
                ("x-b3-sampled", "1"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    let seen = app.last_request().unwrap().headers;
    let spans = collector.wait_for(1).await;
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let server = &spans[0];
    assert_eq!(server["kind"], "SERVER");
    assert_eq!(server["traceId"], "80f198ee56343ba864fe8b2a57d3eff7");
    assert_eq!(server["parentId"], "e457b5a2e4d86bd1");
    // The app sees the server span as its parent, to pass on.
    assert_eq!(seen["x-b3-spanid"], server["id"].as_str().unwrap());
    assert_eq!(server["name"], "catalog:3000/*");
    let problems = violations(&zipkin_definitions(), "Span", server);
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A gRPC call that fails in its trailers (`grpc-status: 14` after a 200 and a message): the
/// client span the sidecar exports ends with the body and carries that status, as an error.
#[tokio::test]
async fn a_grpc_status_in_the_trailers_reaches_the_span() {
    use http_body_util::BodyExt;
    use hyper::body::Incoming;

    let upstream_port = support::h2_upstream(hyper::service::service_fn(
        |request: Request<Incoming>| async move {
            request.into_body().collect().await.unwrap();
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", "14".parse().unwrap());
            let message = bytes::Bytes::from_static(b"\x00\x00\x00\x00\x01x");
            let body = Full::new(message).with_trailers(async move { Some(Ok(trailers)) });
            let response = Response::builder()
                .header("content-type", "application/grpc")
                .body(body)
                .unwrap();
            Ok::<_, std::convert::Infallible>(response)
        },
    ))
    .await;
    let collector = Collector::start().await;
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: echo, namespace: grpc}}\n\
         spec:\n  hosts: [echo]\n  resolution: STATIC\n  ports: [{{number: 50051, name: grpc, protocol: GRPC}}]\n  \
         endpoints: [{{address: 127.0.0.1, ports: {{grpc: {upstream_port}}}}}]\n---\n\
         apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {{name: mesh}}\nspec:\n  defaultConfig:\n    tracing:\n{}",
        zipkin_at(collector.addr, 100)
    );
    let proxy = sidecar(&yaml).await;
    let mut sender = support::h2_client(proxy.addr("outbound").unwrap()).await;
    let request = Request::post("http://echo:50051/echo.Echo/Say")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(bytes::Bytes::from_static(
            b"\x00\x00\x00\x00\x01y",
        )))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let trailers = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .trailers()
        .cloned();
    assert_eq!(trailers.unwrap()["grpc-status"], "14");
    let spans = collector.wait_for(1).await;
    let tags = &spans[0]["tags"];
    assert_eq!(tags["http.status_code"], "200");
    assert_eq!(tags["grpc.status_code"], "14", "{tags:#}");
    assert!(
        tags.get("error").is_some(),
        "a failed call is an error: {tags:#}"
    );
    assert_eq!(
        violations(&zipkin_definitions(), "Span", &spans[0]),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn an_extension_provider_chooses_the_collector_and_the_headers_written() {
    let catalog = upstream().await;
    let collector = Collector::start().await;
    for (option, w3c) in [("USE_B3", false), ("USE_B3_WITH_W3C_PROPAGATION", true)] {
        // Istio's way: a named Zipkin provider, the default for tracing.
        let provider = format!(
            "      sampling: 100\n  extensionProviders:\n  - name: zipkin\n    zipkin: {{service: {}, port: {}, traceContextOption: {option}}}\n  defaultProviders: {{tracing: [zipkin]}}\n",
            collector.addr.ip(),
            collector.addr.port()
        );
        let proxy = sidecar(&config(&catalog, &provider)).await;
        let mut client = Http1Client::connect(proxy.addr("outbound").unwrap())
            .await
            .unwrap();
        let response = client.get("http://catalog/items", &[]).await.unwrap();
        assert_eq!(response.status, 200);
        let seen = catalog.last_request().unwrap().headers;
        let trace_id = seen["x-b3-traceid"].to_str().unwrap().to_owned();
        assert_eq!(seen["x-b3-sampled"], "1", "{option}");
        assert_eq!(seen.contains_key("traceparent"), w3c, "{option}: {seen:?}");
        // The span reaches the provider's collector.
        let deadline = Instant::now() + Duration::from_secs(10);
        while of_trace(&collector.spans(), &trace_id).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(of_trace(&collector.spans(), &trace_id).len(), 1, "{option}");
    }
}

#[tokio::test]
async fn with_tracing_off_trace_headers_pass_untouched_and_nothing_is_exported() {
    let catalog = upstream().await;
    let collector = Collector::start().await;
    let off = format!("{}  enableTracing: false\n", zipkin_at(collector.addr, 100));
    let proxy = sidecar(&config(&catalog, &off)).await;
    let mut client = Http1Client::connect(proxy.addr("outbound").unwrap())
        .await
        .unwrap();
    let caller = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1";
    for headers in [
        &[][..],
        &[("b3", caller), ("x-envoy-force-trace", "true")][..],
    ] {
        let response = client.get("http://catalog/items", headers).await.unwrap();
        assert_eq!(response.status, 200);
        let seen = catalog.last_request().unwrap().headers;
        assert!(
            !seen.contains_key("x-b3-traceid") && !seen.contains_key("traceparent"),
            "{seen:?}"
        );
        assert_eq!(seen["x-request-id"].len(), 36, "still made");
        if !headers.is_empty() {
            assert_eq!(seen["b3"], caller, "the caller's context passes as it came");
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(collector.spans().is_empty(), "{:?}", collector.spans());
}
