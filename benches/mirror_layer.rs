//! The mirror layer's cost on the primary path, against the no-op service alone, in one run:
//! a request whose route mirrors nothing, one whose mirror is not drawn (0 %), and one mirrored
//! (100 %, to a no-op shadow — the shadow's own task runs on the same thread and is counted).
//! Every policy variant and its baseline attach the route policy through the same shim.

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "support/layer_bench.rs"]
mod layer_bench;
#[path = "support/wire_request.rs"]
mod wire_request;

use layer_bench::{bench, noop};
use mesh::core::{
    Body, BoxError, Destination, body,
    policy::{Fraction, MirrorTarget, RoutePolicy},
};
use mesh::route::mirror::{MirrorLayer, ShadowService};
use std::sync::Arc;
use tower::{Layer, service_fn};

/// Attaches `policy` to each request, as the route layer does.
fn with_policy<S>(policy: RoutePolicy, inner: S) -> impl tower::Service<http::Request<Body>> + Clone
where
    S: tower::Service<http::Request<Body>> + Clone,
{
    tower::util::MapRequestLayer::new(move |mut request: http::Request<Body>| {
        request.extensions_mut().insert(policy.clone());
        request
    })
    .layer(inner)
}

fn mirror(percent: f64) -> RoutePolicy {
    RoutePolicy {
        mirrors: Some(Arc::from([MirrorTarget {
            destination: Destination {
                cluster: 1,
                host: Arc::from("svc"),
                subset: Some(Arc::from("v2")),
                port: None,
            },
            fraction: Fraction::from_percent(percent),
        }])),
        ..Default::default()
    }
}

fn shadow() -> ShadowService {
    ShadowService::new(service_fn(|_request: http::Request<Body>| async {
        Ok::<_, BoxError>(http::Response::new(body::empty()))
    }))
}

fn mirror_layer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let layer = MirrorLayer::new(shadow());
    let mut group = c.benchmark_group("mirror_layer");
    bench(&mut group, &runtime, "noop_service_alone", noop());
    bench(&mut group, &runtime, "no_route_policy", layer.layer(noop()));
    bench(
        &mut group,
        &runtime,
        "policy_attached_no_mirror_layer",
        with_policy(mirror(0.0), noop()),
    );
    bench(
        &mut group,
        &runtime,
        "mirror_not_drawn",
        with_policy(mirror(0.0), layer.layer(noop())),
    );
    bench(
        &mut group,
        &runtime,
        "mirror_100_percent",
        with_policy(mirror(100.0), layer.layer(noop())),
    );
    group.finish();
}

criterion_group!(benches, mirror_layer);
criterion_main!(benches);
