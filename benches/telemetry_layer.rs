//! The per-request cost of telemetry — Istio's standard metrics into the mesh's Prometheus
//! recorder, and the access log (buffered for its writer thread, which formats and writes to a
//! sink on the side) — against the no-op service alone, in one run. Every variant's inner
//! service answers as the proxy's forwarder does: with the routing decision, upstream cluster,
//! host and workload on the response, so the baseline pays for those too.
//! `metrics_noop_recorder` records into `metrics::NoopRecorder`: the layer's own cost, without
//! the recorder's; `metrics_exporter_prometheus` records into that crate's recorder instead of
//! ours, for comparison. `LAYER_BENCH_ROUNDS=N` runs the variants interleaved instead (see
//! `support/layer_bench.rs`), and nothing else. Give it 21 rounds or more: an access log's
//! queue keeps growing, batch after batch, for the first few hundred milliseconds of the run
//! (some 60 ms a round), and five rounds' medians still count that growth (measured on one
//! build: +848 ns for metrics and access log over five rounds, +571 to +604 ns over 41).
//!
//! `access_log_format` times `format_entry`: formatting one entry, as the access log's writer
//! thread does per entry off the request path (it formats the entry's copy in its queue).

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "support/layer_bench.rs"]
mod layer_bench;
#[path = "support/wire_request.rs"]
mod wire_request;

use layer_bench::{Inner, Variants};
use mesh::core::{
    Body, Destination, RouteInfo, Routed, UpstreamCluster, UpstreamHost, UpstreamWorkload, body,
    error::UpstreamTarget, workload::Workload,
};
use mesh::trace::{
    access_log::{AccessLog, AccessLogConfig, AccessLogEntry, Encoding, format_entry},
    metrics::{ISTIO_BUCKETS, IstioMetrics, MetricsRecorder, Reporter},
    prometheus::PrometheusRecorder,
    telemetry_layer::TelemetryLayer,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use std::{
    convert::Infallible,
    sync::{Arc, atomic::Ordering},
};
use tower::{Layer, service_fn};

/// Answers 200 with what the forwarder puts on a response.
fn forwarded() -> Inner {
    let routed = Routed::new(
        RouteInfo {
            name: Arc::from("items"),
            virtual_service: Arc::from("shop/catalog"),
        },
        Some(Destination {
            cluster: 0,
            host: Arc::from("catalog.shop.svc.cluster.local"),
            subset: Some(Arc::from("v1")),
            port: None,
        }),
    );
    let cluster = UpstreamCluster(Arc::from("outbound|80|v1|catalog.shop.svc.cluster.local"));
    let host = Some(UpstreamHost("10.0.0.1:8080".parse().unwrap()));
    let labels = [("app", "catalog"), ("version", "v1")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let workload = Some(UpstreamWorkload(Arc::new(Workload::from_labels(
        "catalog-v1",
        "shop",
        &labels,
    ))));
    let target = UpstreamTarget::new(cluster, host, workload);
    Inner::new(service_fn(move |_request: http::Request<Body>| {
        let mut response = http::Response::new(body::empty());
        let extensions = response.extensions_mut();
        extensions.insert(routed.clone());
        extensions.insert(target.clone());
        async move { Ok::<_, Infallible>(response) }
    }))
}

/// Istio metrics of workload `web.shop` into `recorder`.
fn istio_metrics(recorder: MetricsRecorder) -> IstioMetrics {
    let local = Workload::from_labels("web", "shop", &Default::default());
    IstioMetrics::new(recorder, Reporter::Source, local)
}

/// Into the mesh's Prometheus recorder, as the sidecar records them.
fn metrics() -> IstioMetrics {
    let recorder = PrometheusRecorder::new()
        .with_buckets_for_prefix("istio_", &ISTIO_BUCKETS)
        .expect("buckets");
    istio_metrics(MetricsRecorder::Owned(Arc::new(recorder)))
}

/// Into `metrics-exporter-prometheus`'s recorder, with the same buckets.
fn exporter_metrics() -> IstioMetrics {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Prefix("istio_".into()), &ISTIO_BUCKETS)
        .expect("buckets")
        .build_recorder();
    istio_metrics(MetricsRecorder::Owned(Arc::new(recorder)))
}

/// An access log writing to a sink, kept in `logs` too, to report after the run.
///
/// Written at the default interval (100 ms), with room for the 5 000 requests of an
/// interleaved run many times over, so that entries are buffered, not dropped; every variant
/// exists for the whole run, and writer threads waking every millisecond would disturb the
/// others. The report after the run says whether any entry was dropped all the same (the
/// writer falling behind a bench's requests), in which case the drop path was measured too.
fn access_log(logs: &mut Vec<(&'static str, AccessLog)>, name: &'static str) -> AccessLog {
    let config = AccessLogConfig {
        max_buffered: 1 << 18,
        ..AccessLogConfig::default()
    };
    let log = AccessLog::new(std::io::sink(), Encoding::Text, config);
    logs.push((name, log.clone()));
    log
}

fn telemetry_layer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let noop_metrics = istio_metrics(MetricsRecorder::Owned(Arc::new(metrics::NoopRecorder)));
    let mut logs = Vec::new();
    let variants = [
        ("metrics", TelemetryLayer::new().metrics(metrics())),
        (
            "metrics_exporter_prometheus",
            TelemetryLayer::new().metrics(exporter_metrics()),
        ),
        (
            "metrics_noop_recorder",
            TelemetryLayer::new().metrics(noop_metrics),
        ),
        (
            "access_log",
            TelemetryLayer::new().access_log(access_log(&mut logs, "access_log")),
        ),
        (
            "metrics_and_access_log",
            TelemetryLayer::new()
                .metrics(metrics())
                .access_log(access_log(&mut logs, "metrics_and_access_log")),
        ),
    ];
    let mut group = Variants::default();
    group.add("noop", None, forwarded());
    for (name, layer) in variants {
        group.add(name, None, layer.layer(forwarded()));
    }
    group.run(c, "telemetry_layer", &runtime);
    // Whether the access-log variants measured buffering or, their buffer full, dropping.
    for (name, log) in logs {
        log.flush();
        let stats = log.stats();
        let count = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        println!(
            "telemetry_layer/{name}: access log entries written {}, dropped {}",
            count(&stats.written),
            count(&stats.dropped),
        );
    }
}

/// What the access-log writer thread does per entry: one line of each encoding, for an entry
/// as the sidecar fills it in (every field the bench's requests set, and the addresses).
fn access_log_format(c: &mut Criterion) {
    if layer_bench::interleaved_rounds().is_some() {
        return;
    }
    let entry = AccessLogEntry {
        start_time: std::time::SystemTime::now(),
        method: http::Method::GET,
        uri: http::Uri::from_static("/items?page=2"),
        host: Some(http::HeaderValue::from_static("catalog.shop:8080")),
        original_path: None,
        protocol: http::Version::HTTP_11,
        response_code: 200,
        response_flags: Default::default(),
        response_code_details: "via_upstream".into(),
        bytes_received: 0,
        bytes_sent: 1_024,
        duration: std::time::Duration::from_micros(3_250),
        upstream_service_time: Some(http::HeaderValue::from_static("2")),
        x_forwarded_for: None,
        user_agent: Some(http::HeaderValue::from_static("bench/1.0")),
        request_id: Some(http::HeaderValue::from_static(
            "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2",
        )),
        upstream_host: Some("10.0.0.1:8080".parse().unwrap()),
        upstream_cluster: Some("outbound|80|v1|catalog.shop.svc.cluster.local".into()),
        upstream_local_address: None,
        downstream_local_address: Some("10.0.1.5:15001".parse().unwrap()),
        downstream_remote_address: Some("10.0.1.7:40000".parse().unwrap()),
        requested_server_name: None,
        route_name: Some("items".into()),
    };
    let mut group = c.benchmark_group("access_log_format");
    for (name, encoding) in [("text", Encoding::Text), ("json", Encoding::Json)] {
        let mut out = Vec::with_capacity(1024);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                format_entry(std::hint::black_box(&entry), encoding, &mut out);
                std::hint::black_box(&out);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, telemetry_layer, access_log_format);
criterion_main!(benches);
