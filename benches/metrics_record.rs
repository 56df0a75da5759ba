//! Recording into one Istio-style histogram ([`BucketHistogram`]), and counting into one
//! counter, from one thread and from two at once, as every worker of a runtime records each
//! request into the same series. The figure is per sample, per thread: with shared counts the
//! two threads pass the counts' cache line between the cores. The counter is measured beside
//! a shared atomic one (what the recorder's counters were), the histogram on its own (compare
//! builds with `benches/compare.sh`). `upstream_counts` is what the forwarder counts into a
//! cluster's and an endpoint's stats and its retry budget for each request, from one thread and
//! from two.

use criterion::{Criterion, criterion_group, criterion_main};
use mesh::{
    core::retry::RetryBudget,
    proxy::{
        cluster_stats::ClusterStats,
        endpoint::{Endpoint, Protocol},
    },
    trace::prometheus::{BucketHistogram, PerThreadCounter},
};
use metrics::{CounterFn, HistogramFn};
use std::{sync::Arc, time::Duration};
use threads::together;

#[path = "support/threads.rs"]
mod threads;

/// Istio's request duration bounds (milliseconds).
const BOUNDS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// The time `threads` threads take to record `samples` samples each into one histogram,
/// started together.
fn record(threads: usize, samples: u64) -> Duration {
    let histogram = BucketHistogram::new(&BOUNDS).expect("bounds");
    let elapsed = together(
        threads,
        || (),
        |_| {
            for i in 0..samples {
                // Milliseconds as most requests take them: the low buckets.
                histogram.record((i % 8) as f64);
            }
        },
    );
    assert_eq!(
        histogram.snapshot().cumulative_counts().last().copied(),
        Some(samples * threads as u64)
    );
    elapsed
}

/// The time `threads` threads take to count `counts` times each into `counter`.
fn count(counter: &(impl CounterFn + Sync), threads: usize, counts: u64) -> Duration {
    together(
        threads,
        || (),
        |_| {
            for _ in 0..counts {
                counter.increment(1);
            }
        },
    )
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
    // What the forwarder counts for each request to one endpoint of one cluster.
    let mut group = c.benchmark_group("upstream_counts");
    for threads in [1, 2] {
        group.bench_function(format!("{threads}_threads_one_endpoint"), |b| {
            b.iter_custom(|iters| upstream_counts(threads, iters))
        });
    }
    group.finish();
}

/// The time `threads` threads take to count `requests` requests each into one cluster's and
/// one endpoint's stats, as the forwarder does: the request's deposit into the cluster's retry
/// budget, the attempt, the endpoint's request (its in-flight count up and down) and success,
/// the answer's status class and time.
fn upstream_counts(threads: usize, requests: u64) -> Duration {
    let cluster = ClusterStats::default();
    let budget = RetryBudget::default();
    let endpoint = Arc::new(Endpoint::new(
        "127.0.0.1:1".parse().expect("authority"),
        Default::default(),
        Protocol::Http1,
    ));
    let elapsed = together(
        threads,
        || (),
        |_| {
            for _ in 0..requests {
                budget.deposit();
                cluster.record_attempt(1);
                let in_flight = endpoint.start_request();
                endpoint.record_success();
                cluster.record_response(200, Duration::from_millis(3));
                drop(in_flight);
            }
        },
    );
    assert_eq!(cluster.rq_total(), requests * threads as u64);
    assert_eq!(endpoint.successes(), requests * threads as u64);
    // The deposits are there to retry on: a second's floor (10) and 20 % of the requests.
    let retries = (0..).take_while(|_| budget.withdraw()).count() as u64;
    assert!(
        retries >= 10 + (requests * threads as u64 / 5).min(90),
        "{retries}"
    );
    elapsed
}

criterion_group!(benches, metrics_record);
criterion_main!(benches);
