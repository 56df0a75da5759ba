//! Recording into one Istio-style histogram ([`BucketHistogram`]) from one thread and from two
//! at once, as every worker of a runtime records each request's duration and sizes into the
//! same series. The figure is per sample, per thread: with shared counters the two threads'
//! samples pass the counters' cache line between the cores.

use criterion::{Criterion, criterion_group, criterion_main};
use mesh::trace::prometheus::BucketHistogram;
use metrics::HistogramFn;
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
    let start = Barrier::new(threads);
    let elapsed = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (histogram, start) = (&histogram, &start);
                scope.spawn(move || {
                    start.wait();
                    let began = Instant::now();
                    for i in 0..samples {
                        // Milliseconds as most requests take them: the low buckets.
                        histogram.record((i % 8) as f64);
                    }
                    began.elapsed()
                })
            })
            .collect();
        let times: Vec<Duration> = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect();
        times.into_iter().max().unwrap_or_default()
    });
    assert_eq!(
        histogram.snapshot().cumulative_counts().last().copied(),
        Some(samples * threads as u64)
    );
    elapsed
}

fn histogram(c: &mut Criterion) {
    let mut group = c.benchmark_group("histogram_record");
    group.bench_function("one_thread", |b| b.iter_custom(|iters| record(1, iters)));
    group.bench_function("two_threads_one_histogram", |b| {
        b.iter_custom(|iters| record(2, iters))
    });
    group.finish();
}

criterion_group!(benches, histogram);
criterion_main!(benches);
