//! Each resilience layer on the success path over a no-op service, against the no-op alone, in
//! one run (targets: each layer ≤ 200 ns over the inner service; the whole stack — fault,
//! timeout, retry with Istio's default policy, circuit breaker — ≤ 1 µs).

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "support/layer_bench.rs"]
mod layer_bench;
#[path = "support/wire_request.rs"]
mod wire_request;

use layer_bench::{bench, noop};
use mesh::core::{
    Body,
    circuit_breaker::{CircuitBreaker, CircuitBreakerLayer},
    fault::FaultLayer,
    policy::{FaultAbort, FaultPolicy, Fraction},
    retry::{RetryLayer, RetryPolicy},
    timeout::TimeoutLayer,
};
use std::{hint::black_box, sync::Arc, time::Duration};
use tower::{Layer, ServiceExt};

fn resilience_layers(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    // A fault that never fires: the layer draws, then passes through.
    let never = FaultPolicy {
        delay: Some((Duration::from_secs(1), Fraction::from_percent(0.0))),
        abort: Some((
            FaultAbort::Http(http::StatusCode::SERVICE_UNAVAILABLE),
            Fraction::from_percent(0.0),
        )),
    };
    let mut group = c.benchmark_group("resilience_layers");
    bench(&mut group, &runtime, "noop_service_alone", noop());
    bench(
        &mut group,
        &runtime,
        "fault_no_policy",
        FaultLayer::new().layer(noop()),
    );
    bench(
        &mut group,
        &runtime,
        "fault_policy_not_drawn",
        FaultLayer::with_policy(never).layer(noop()),
    );
    bench(
        &mut group,
        &runtime,
        "timeout_off",
        TimeoutLayer::default().layer(noop()),
    );
    bench(
        &mut group,
        &runtime,
        "retry_no_policy",
        RetryLayer::new().layer(noop()),
    );
    bench(
        &mut group,
        &runtime,
        "retry_istio_default",
        RetryLayer::with_policy(RetryPolicy::istio_default()).layer(noop()),
    );
    bench(
        &mut group,
        &runtime,
        "circuit_breaker",
        CircuitBreakerLayer::new(Arc::new(CircuitBreaker::default())).layer(noop()),
    );
    // The floor under any retry layer: keeping a copy of the request head while the attempt
    // runs (what tower's own `Retry` does through its policy's `clone_request`).
    let inner = noop();
    let head_copy = tower::service_fn(move |request: http::Request<Body>| {
        let (parts, body) = request.into_parts();
        let kept = parts.clone();
        let attempt = inner
            .clone()
            .oneshot(http::Request::from_parts(parts, body));
        async move {
            let response = attempt.await;
            drop(black_box(kept));
            response
        }
    });
    bench(&mut group, &runtime, "floor_keep_request_head", head_copy);
    let stack = tower::ServiceBuilder::new()
        .layer(FaultLayer::new())
        .layer(TimeoutLayer::new(Some(Duration::from_secs(15))))
        .layer(RetryLayer::with_policy(RetryPolicy::istio_default()))
        .layer(CircuitBreakerLayer::new(
            Arc::new(CircuitBreaker::default()),
        ))
        .service(noop());
    bench(&mut group, &runtime, "whole_resilience_stack", stack);
    bench(
        &mut group,
        &runtime,
        "timeout_15s",
        TimeoutLayer::new(Some(Duration::from_secs(15))).layer(noop()),
    );
    group.finish();
}

criterion_group!(benches, resilience_layers);
criterion_main!(benches);
