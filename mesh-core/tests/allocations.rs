//! The heap blocks paths that promise to allocate nothing allocate, counted by dhat's heap
//! profiler in its testing mode (the test binary's global allocator). Its counts are
//! process-wide: this binary holds one test, so that no other test allocates meanwhile.

use http_body::Body as _;
use mesh_core::{
    Body,
    body::{self, IntoBody},
    watched_body::{BodyWatcher, WatchedBody, watch_response},
};

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

/// The heap blocks `make` allocates, and what it made.
fn blocks_allocated<T>(make: impl FnOnce() -> T) -> (u64, T) {
    let before = dhat::HeapStats::get().total_blocks;
    let made = make();
    (dhat::HeapStats::get().total_blocks - before, made)
}

/// A watcher that keeps nothing: what it is told is not this test's business.
struct Quiet;

impl BodyWatcher for Quiet {
    fn end(self) {}
    fn abandon(self) {}
}

#[test]
fn paths_that_promise_no_allocation_make_none() {
    let _profiler = dhat::Profiler::builder().testing().build();

    // A bodiless response through the telemetry and span layers' watching: both watchers are
    // told of the end on arrival, and its body becomes a `Body` without a box around them.
    let bodiless = http::Response::new(body::empty());
    let (blocks, response) = blocks_allocated(|| {
        let spans = watch_response(bodiless, Some(Quiet), false);
        watch_response(spans, Some(Quiet), false).map(IntoBody::into_body)
    });
    dhat::assert_eq!(blocks, 0, "a bodiless response's watched body is not boxed");
    dhat::assert!(response.body().is_end_stream());

    // A body still to come is watched, so it is boxed with its watchers: one block.
    let streaming = http::Response::new(body::full("hello"));
    let (blocks, response) =
        blocks_allocated(|| watch_response(streaming, Some(Quiet), false).map(IntoBody::into_body));
    dhat::assert_eq!(blocks, 1, "the watched body, boxed");
    dhat::assert_eq!(response.body().size_hint().exact(), Some(5));

    // A watched body whose inner body is a `Body` and whose watcher is gone is that `Body`.
    let inner: Body = body::full("hello");
    let (blocks, unwatched) =
        blocks_allocated(|| WatchedBody::new(inner, None::<Quiet>).into_body());
    dhat::assert_eq!(blocks, 0);
    dhat::assert_eq!(unwatched.size_hint().exact(), Some(5));
}
