//! Trace context propagation.
//!
//! (a) Extract + decide + child span + inject for a request carrying B3 multi headers (target
//! ≤ 300 ns), and its parts. Each iteration gets a fresh header map built outside the measured
//! time, in batches of 64 so they are as warm in cache as a request hyper has just parsed.
//!
//! (b) The whole `TraceLayer` on a not-sampled request over a no-op service, against the no-op
//! alone and the `x-request-id` layer alone (the part of the cost that is the request id), in
//! one run: the layer's own cost is the difference.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

#[path = "support/layer_bench.rs"]
mod layer_bench;
#[path = "support/wire_request.rs"]
mod wire_request;

use http::{HeaderMap, HeaderValue, header};
use layer_bench::{bench, noop};
use mesh::trace::{
    Propagation, RequestIdLayer, Sampler, TraceLayer, context::Extracted, extract, inject,
    propagate,
};
use std::hint::black_box;
use tower::Layer;

/// A request head as a client sends it, with incoming B3 multi headers (sampled).
fn b3_request_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_static("svc"));
    headers.insert(header::USER_AGENT, HeaderValue::from_static("bench/1.0"));
    headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    headers.insert(
        "x-b3-traceid",
        HeaderValue::from_static("80f198ee56343ba864fe8b2a57d3eff7"),
    );
    headers.insert("x-b3-spanid", HeaderValue::from_static("e457b5a2e4d86bd1"));
    headers.insert(
        "x-b3-parentspanid",
        HeaderValue::from_static("05e3ac9a4f6e3b90"),
    );
    headers.insert("x-b3-sampled", HeaderValue::from_static("1"));
    headers
}

const BATCH: BatchSize = BatchSize::NumIterations(64);

fn extract_inject(c: &mut Criterion) {
    let sampler = Sampler::default();
    let propagation = Propagation::default();
    let mut group = c.benchmark_group("trace_extract_inject");

    // Extraction only reads the map: the same one every time.
    let incoming = b3_request_headers();
    group.bench_function("extract_b3_multi", |b| {
        b.iter(|| black_box(extract(black_box(&incoming))))
    });

    let Extracted::Context(parent) = extract(&incoming) else {
        panic!("the bench headers carry a context");
    };
    let decision = sampler.decide(&Extracted::Context(parent.clone()), &incoming);
    let child = parent.child(decision);
    group.bench_function("inject_over_b3_multi", |b| {
        b.iter_batched_ref(
            b3_request_headers,
            |headers| inject(headers, black_box(&child), propagation),
            BATCH,
        )
    });

    // (a): what the layer does to the trace headers.
    group.bench_function("extract_decide_child_inject_b3_multi", |b| {
        b.iter_batched_ref(
            b3_request_headers,
            |headers| black_box(propagate(headers, &sampler, propagation)),
            BATCH,
        )
    });

    // The same on one map, over and over: each time it continues the trace it wrote last time
    // (B3 multi headers and `traceparent` in, all replaced in place), with no setup at all.
    group.bench_function("propagate_steady_state_b3_multi_and_w3c", |b| {
        let mut headers = b3_request_headers();
        b.iter(|| black_box(propagate(&mut headers, &sampler, propagation)))
    });
    group.finish();
}

fn trace_layer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("trace_layer");
    bench(&mut group, &runtime, "noop_service_alone", noop());
    bench(
        &mut group,
        &runtime,
        "request_id_layer",
        RequestIdLayer.layer(noop()),
    );
    // (b): a new trace, not sampled (0 %): new ids, B3 multi headers and `traceparent`,
    // `x-request-id`, the `TraceContext` extension.
    bench(
        &mut group,
        &runtime,
        "trace_layer_not_sampled",
        TraceLayer::new(Sampler::from_percent(0.0), Propagation::default()).layer(noop()),
    );
    group.finish();
}

criterion_group!(benches, extract_inject, trace_layer);
criterion_main!(benches);
