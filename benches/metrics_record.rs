//! Recording into one Istio-style histogram ([`BucketHistogram`]), and counting into one
//! counter, from one thread and from two at once, as every worker of a runtime records each
//! request into the same series. The figure is per sample, per thread: with shared counts the
//! two threads pass the counts' cache line between the cores. The counter is measured beside
//! a shared atomic one (what the recorder's counters were), the histogram on its own (compare
//! builds with `benches/compare.sh`).

use criterion::{Criterion, criterion_group, criterion_main};
use mesh::trace::prometheus::{BucketHistogram, PerThreadCounter};
use metrics::{CounterFn, HistogramFn};
use std::{
    sync::Barrier,
    time::{Duration, Instant},
};

/// Istio's request duration bounds (milliseconds).
const BOUNDS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// The time `threads` threads take to record `samples` samples each into one histogram,
/// started together.
fn record(threads: usize, samples: u64) -> Duration {
    let histogram = BucketHistogram::new(&BOUNDS).expect("bounds");
    let elapsed = together(threads, |_| {
        for i in 0..samples {
            // Milliseconds as most requests take them: the low buckets.
            histogram.record((i % 8) as f64);
        }
    });
    assert_eq!(
        histogram.snapshot().cumulative_counts().last().copied(),
        Some(samples * threads as u64)
    );
    elapsed
}

/// The time `threads` threads take to count `counts` times each into `counter`.
fn count(counter: &(impl CounterFn + Sync), threads: usize, counts: u64) -> Duration {
    together(threads, |_| {
        for _ in 0..counts {
            counter.increment(1);
        }
    })
}

/// The time the slowest of `threads` threads, started together, takes to run `work`.
fn together(threads: usize, work: impl Fn(usize) + Sync) -> Duration {
    let start = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let (work, start) = (&work, &start);
                scope.spawn(move || {
                    start.wait();
                    let began = Instant::now();
                    work(thread);
                    began.elapsed()
                })
            })
            .collect();
        let times: Vec<Duration> = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect();
        times.into_iter().max().unwrap_or_default()
    })
}

fn metrics_record(c: &mut Criterion) {
    let mut group = c.benchmark_group("histogram_record");
    group.bench_function("one_thread", |b| b.iter_custom(|iters| record(1, iters)));
    group.bench_function("two_threads_one_histogram", |b| {
        b.iter_custom(|iters| record(2, iters))
    });
    group.finish();
    let mut group = c.benchmark_group("counter_increment");
    for threads in [1, 2] {
        group.bench_function(format!("shared_atomic_{threads}_threads"), |b| {
            b.iter_custom(|iters| count(&metrics::atomics::AtomicU64::new(0), threads, iters))
        });
        group.bench_function(format!("per_thread_{threads}_threads"), |b| {
            b.iter_custom(|iters| count(&PerThreadCounter::default(), threads, iters))
        });
    }
    group.finish();
}

criterion_group!(benches, metrics_record);
criterion_main!(benches);
