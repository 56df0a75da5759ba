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
    retry::{ATTEMPT_COUNT, RetryLayer, RetryPolicy},
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
    // What any retry layer on `http` 1.x must do for a request it may retry, with nothing else:
    // keep a clone of the request's extensions (one entry here, the route policy) for the
    // retries, hand the attempt a state shared with the layers below as one more extension,
    // and tell the upstream its attempt count. `floor_keep_extensions` is the first alone.
    variants.add(
        "floor_keep_extensions",
        Some(&retry),
        floor(|request| request.extensions().clone()),
    );
    variants.add(
        "floor_retry_essentials",
        Some(&retry),
        floor(|request| {
            let kept = request.extensions().clone();
            let shared = Arc::new(std::sync::atomic::AtomicU32::new(1));
            request.extensions_mut().insert(shared.clone());
            request
                .headers_mut()
                .insert(ATTEMPT_COUNT, http::HeaderValue::from_static("1"));
            (kept, shared)
        }),
    );
    let stack = tower::ServiceBuilder::new()
        .layer(FaultLayer::new())
        .layer(TimeoutLayer::default())
        .layer(RetryLayer::new())
        .layer(breaker())
        .service(noop());
    variants.add("whole_resilience_stack", Some(&every), stack);
    variants.run(c, "resilience_layers", &runtime);
}

/// A service that runs `keep` on each request, holds what it returns while the no-op answers,
/// then drops it: a retry layer's unavoidable work on the success path, priced alone.
fn floor<K: 'static>(
    keep: fn(&mut http::Request<Body>) -> K,
) -> impl Service<http::Request<Body>, Response = http::Response<Body>, Error = std::convert::Infallible>
+ Clone {
    tower::service_fn(move |mut request: http::Request<Body>| {
        let kept = keep(&mut request);
        let attempt = noop().call(request);
        async move {
            let response = attempt.await;
            drop(black_box(kept));
            response
        }
    })
}

criterion_group!(benches, resilience_layers);
criterion_main!(benches);
