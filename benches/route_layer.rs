//! One request through the in-process `RouteLayer` over a no-op service, against the no-op
//! service alone, so the layer's own cost is the difference (compare the two in one run).

use criterion::{Criterion, criterion_group, criterion_main};
use mesh::core::{Body, body};
use mesh::route::{RouteLayer, config::Config};
use std::{convert::Infallible, hint::black_box};
use tower::{Layer, Service, ServiceExt, service_fn};

mod support;

fn noop()
-> impl Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible> + Clone {
    service_fn(|_request: http::Request<Body>| async {
        Ok::<_, Infallible>(http::Response::new(body::empty()))
    })
}

fn route_layer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let config = Config::from_yaml_str(&support::synthetic_mesh(100, 10))
        .expect("synthetic mesh is valid")
        .config;
    let layer = RouteLayer::from_config(&config).expect("compiles");
    let routed = layer.layer(noop());
    let bare = noop();
    let request = || {
        http::Request::get("http://svc-57/api/v3/items")
            .header("x-user", "user-3")
            .body(body::empty())
            .expect("request")
    };

    let mut group = c.benchmark_group("route_layer");
    group.bench_function("noop_service_alone", |b| {
        b.to_async(&runtime).iter(|| {
            let service = bare.clone();
            async move { black_box(service.oneshot(request()).await) }
        })
    });
    group.bench_function("route_layer_over_noop", |b| {
        b.to_async(&runtime).iter(|| {
            let service = routed.clone();
            async move { black_box(service.oneshot(request()).await) }
        })
    });
    group.finish();
}

criterion_group!(benches, route_layer);
criterion_main!(benches);
