//! Each resilience layer on the success path over a no-op service, against the no-op alone, in
//! one run (targets: each layer ≤ 200 ns over the inner service; the whole stack — fault,
//! timeout, retry with Istio's default policy, circuit breaker — ≤ 1 µs).
//!
//! Requests carry their route's policy as the sidecar's route layer leaves it on them, and
//! each layer reads its policy from there. Every variant, the no-op alone included, is called
//! through one box, so the box's cost cancels out. `LAYER_BENCH_ROUNDS=N` runs the variants
//! interleaved instead (see `support/layer_bench.rs`).

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "support/layer_bench.rs"]
mod layer_bench;
#[path = "support/wire_request.rs"]
mod wire_request;

use layer_bench::{Variants, noop};
use mesh::core::{
    Body,
    circuit_breaker::{CircuitBreaker, CircuitBreakerLayer, ConnectionPoolLimits},
    fault::FaultLayer,
    policy::{FaultAbort, FaultPolicy, Fraction, RoutePolicy},
    retry::{RetryLayer, RetryPolicy},
    timeout::TimeoutLayer,
};
use std::{hint::black_box, sync::Arc, time::Duration};
use tower::{Layer, Service};

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
    // Each layer takes its policy from the route, as in the sidecar.
    let none = RoutePolicy::default();
    let fault = RoutePolicy {
        fault: Some(Arc::new(never)),
        ..RoutePolicy::default()
    };
    let timeout = RoutePolicy {
        timeout: Some(Duration::from_secs(15)),
        ..RoutePolicy::default()
    };
    let retry = RoutePolicy {
        retry: Some(Arc::new(RetryPolicy::istio_default())),
        ..RoutePolicy::default()
    };
    let every = RoutePolicy {
        timeout: timeout.timeout,
        retry: retry.retry.clone(),
        ..RoutePolicy::default()
    };
    let breaker = || CircuitBreakerLayer::new(Arc::new(CircuitBreaker::default()));
    let mut variants = Variants::default();
    variants.add("noop_service_alone", Some(&none), noop());
    variants.add(
        "fault_no_policy",
        Some(&none),
        FaultLayer::new().layer(noop()),
    );
    variants.add(
        "fault_policy_not_drawn",
        Some(&fault),
        FaultLayer::new().layer(noop()),
    );
    variants.add(
        "timeout_off",
        Some(&none),
        TimeoutLayer::default().layer(noop()),
    );
    variants.add(
        "timeout_15s",
        Some(&timeout),
        TimeoutLayer::default().layer(noop()),
    );
    variants.add(
        "retry_no_policy",
        Some(&none),
        RetryLayer::new().layer(noop()),
    );
    variants.add(
        "retry_istio_default",
        Some(&retry),
        RetryLayer::new().layer(noop()),
    );
    variants.add("circuit_breaker", Some(&none), breaker().layer(noop()));
    // With limits set (Envoy's defaults), admission goes through the semaphore.
    let envoy_limits = Arc::new(CircuitBreaker::new(ConnectionPoolLimits::ENVOY));
    variants.add(
        "circuit_breaker_with_limits",
        Some(&none),
        CircuitBreakerLayer::new(envoy_limits).layer(noop()),
    );
    // Keeping a clone of the request head while the attempt runs, as tower's own `Retry` does
    // through its policy's `clone_request`: the retry layer keeps its copy in one buffer
    // instead, for less (see `mesh_core::retry`'s kept head).
    let head_copy = tower::service_fn(move |request: http::Request<Body>| {
        let (parts, body) = request.into_parts();
        let kept = parts.clone();
        let mut inner = noop();
        let attempt = inner.call(http::Request::from_parts(parts, body));
        async move {
            let response = attempt.await;
            drop(black_box(kept));
            response
        }
    });
    variants.add("floor_keep_request_head", Some(&none), head_copy);
    let stack = tower::ServiceBuilder::new()
        .layer(FaultLayer::new())
        .layer(TimeoutLayer::default())
        .layer(RetryLayer::new())
        .layer(breaker())
        .service(noop());
    variants.add("whole_resilience_stack", Some(&every), stack);
    variants.run(c, "resilience_layers", &runtime);
}

criterion_group!(benches, resilience_layers);
criterion_main!(benches);
