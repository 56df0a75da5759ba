//! Shared bench fixture: the same work on several threads at once, as the workers of a runtime
//! serve requests side by side, so that what their cores pass between them (a counter, a
//! reference count) shows as time.

use std::{
    sync::Barrier,
    time::{Duration, Instant},
};

/// The time the slowest of `threads` threads takes to run `work` on what `setup` made for it:
/// each thread runs `setup` on its own first (a runtime, say), then all start `work` together.
pub fn together<S>(
    threads: usize,
    setup: impl Fn() -> S + Sync,
    work: impl Fn(&mut S) + Sync,
) -> Duration {
    let start = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (setup, work, start) = (&setup, &work, &start);
                scope.spawn(move || {
                    let mut state = setup();
                    start.wait();
                    let began = Instant::now();
                    work(&mut state);
                    began.elapsed()
                })
            })
            .collect();
        let times = handles.into_iter().map(|h| h.join().expect("thread"));
        times.max().unwrap_or_default()
    })
}
