//! Shared bench fixture: timing a tower layer over a no-op service with requests built as
//! hyper builds them ([`WireBuffer`]), every variant in one criterion group, so that a layer's
//! cost is its difference from `noop()` alone in the same run.

use super::wire_request::WireBuffer;
use mesh::core::{Body, body};
use std::{convert::Infallible, hint::black_box};
use tower::{Service, ServiceExt, service_fn};

/// The inner service every variant wraps (boxed, so its future is known to be `Send`).
pub type Inner =
    tower::util::BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Infallible>;

/// A service answering 200 with an empty body at once.
#[allow(dead_code)] // a bench whose inner service answers otherwise does not use it
pub fn noop() -> Inner {
    Inner::new(service_fn(|_request: http::Request<Body>| async {
        Ok::<_, Infallible>(http::Response::new(body::empty()))
    }))
}

/// Benches `service` as `name`: one request per iteration, built inside the loop (the same
/// cost for every variant) with the headers a client sends, so no layer is charged for the
/// header map's first allocation.
pub fn bench<S>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    service: S,
) where
    S: Service<http::Request<Body>> + Clone,
{
    let wire = WireBuffer::new();
    group.bench_function(name, |b| {
        b.to_async(runtime).iter(|| {
            let service = service.clone();
            let request = wire.request();
            async move { black_box(service.oneshot(request).await.is_ok()) }
        })
    });
}
