//! The per-request cost of telemetry — Istio's standard metrics into a Prometheus recorder, and
//! the access log (buffered for its writer thread, which formats and writes to a sink on the
//! side) — against the no-op service alone, in one run. Every variant's inner service answers
//! as the proxy's forwarder does: with the routing decision, upstream cluster, host and
//! workload on the response, so the baseline pays for those too. `metrics_noop_recorder`
//! records into `metrics::NoopRecorder`: the layer's own cost, without the exporter's.

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "support/layer_bench.rs"]
mod layer_bench;
#[path = "support/wire_request.rs"]
mod wire_request;

use layer_bench::{Inner, bench};
use mesh::core::{
    Body, Destination, RouteInfo, Routed, UpstreamCluster, UpstreamHost, UpstreamWorkload, body,
    error::UpstreamTarget, workload::Workload,
};
use mesh::trace::{
    access_log::{AccessLog, AccessLogConfig, Encoding},
    metrics::{ISTIO_BUCKETS, IstioMetrics, MetricsRecorder, Reporter},
    telemetry_layer::TelemetryLayer,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use std::{convert::Infallible, sync::Arc, time::Duration};
use tower::{Layer, service_fn};

/// Answers 200 with what the forwarder puts on a response.
fn forwarded() -> Inner {
    let routed = Routed {
        route: RouteInfo {
            name: Arc::from("items"),
            virtual_service: Arc::from("shop/catalog"),
        },
        destination: Some(Destination {
            cluster: 0,
            host: Arc::from("catalog.shop.svc.cluster.local"),
            subset: Some(Arc::from("v1")),
            port: None,
        }),
    };
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
    let target = UpstreamTarget {
        cluster,
        host,
        workload,
    };
    Inner::new(service_fn(move |_request: http::Request<Body>| {
        let mut response = http::Response::new(body::empty());
        let extensions = response.extensions_mut();
        extensions.insert(routed.clone());
        extensions.insert(target.clone());
        async move { Ok::<_, Infallible>(response) }
    }))
}

fn metrics() -> IstioMetrics {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Prefix("istio_".into()), &ISTIO_BUCKETS)
        .expect("buckets")
        .build_recorder();
    let local = Workload::from_labels("web", "shop", &Default::default());
    IstioMetrics::new(
        MetricsRecorder::Owned(Arc::new(recorder)),
        Reporter::Source,
        local,
    )
}

fn access_log() -> AccessLog {
    // Written every millisecond, so the buffer never fills at bench rates: entries are
    // buffered, not dropped.
    let config = AccessLogConfig {
        max_buffered: 1 << 16,
        flush_interval: Duration::from_millis(1),
    };
    AccessLog::new(std::io::sink(), Encoding::Text, config)
}

fn telemetry_layer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("telemetry_layer");
    bench(&mut group, &runtime, "noop", forwarded());
    let metrics_only = TelemetryLayer::new().metrics(metrics());
    bench(
        &mut group,
        &runtime,
        "metrics",
        metrics_only.layer(forwarded()),
    );
    let noop_metrics = IstioMetrics::new(
        MetricsRecorder::Owned(Arc::new(metrics::NoopRecorder)),
        Reporter::Source,
        Workload::default(),
    );
    bench(
        &mut group,
        &runtime,
        "metrics_noop_recorder",
        TelemetryLayer::new()
            .metrics(noop_metrics)
            .layer(forwarded()),
    );
    let log_only = TelemetryLayer::new().access_log(access_log());
    bench(
        &mut group,
        &runtime,
        "access_log",
        log_only.layer(forwarded()),
    );
    let both = TelemetryLayer::new()
        .metrics(metrics())
        .access_log(access_log());
    bench(
        &mut group,
        &runtime,
        "metrics_and_access_log",
        both.layer(forwarded()),
    );
    group.finish();
}

criterion_group!(benches, telemetry_layer);
criterion_main!(benches);
