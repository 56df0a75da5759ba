//! [`BucketHistogram`]: a Prometheus histogram whose buckets are fixed when it is made, so a
//! sample is counted where it falls at once — a search of the bounds and two additions — and
//! never kept.
//!
//! Each thread counts into counts of its own ([`Shard`]), which only it writes: an addition is
//! a load and a store, not an atomic read-modify-write (some 7 ns each on an idle core, and a
//! cache line passed between every core that records when they all do, as every request on
//! every worker does). A scrape sums the threads' counts.

use mesh_core::per_thread::{OwnLine, add_alone};
use metrics::HistogramFn;
use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};
use thread_local::ThreadLocal;

/// Bucket bounds a [`BucketHistogram`] cannot have.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BucketsError {
    /// No bounds at all.
    #[error("a histogram needs at least one bucket bound")]
    Empty,
    /// A bound that is NaN or infinite (`+Inf` is always the last bucket).
    #[error("bucket bound {0} is not a finite number")]
    NotFinite(f64),
    /// A bound not above the one before it.
    #[error("bucket bounds must rise: {0} follows {1}")]
    NotRising(f64, f64),
}

/// A histogram of cumulative buckets, as Prometheus reads them: a sample is counted in the
/// first bucket whose upper bound (`le`) it does not exceed, or in `+Inf`; the sum of the
/// samples is kept beside. Recording costs the same whatever came before: nothing is
/// buffered or timestamped, and nothing needs draining.
///
/// ```
/// use mesh_trace::prometheus::BucketHistogram;
/// use metrics::HistogramFn;
/// let histogram = BucketHistogram::new(&[1.0, 5.0, 10.0]).unwrap();
/// for sample in [0.5, 1.0, 3.0, 7.0, 11.0] {
///     histogram.record(sample);
/// }
/// let snapshot = histogram.snapshot();
/// // Cumulative, as Prometheus's `le` buckets are: ≤ 1, ≤ 5, ≤ 10, +Inf.
/// assert_eq!(snapshot.cumulative_counts(), [2, 3, 4, 5]);
/// assert_eq!(snapshot.sum, 22.5);
/// assert!(BucketHistogram::new(&[5.0, 1.0]).is_err());
/// ```
pub struct BucketHistogram {
    bounds: Arc<[f64]>,
    /// What each thread that recorded counted, in lines of its own (`sum` is written per sample).
    shards: ThreadLocal<OwnLine<Shard>>,
}

/// One thread's counts of a [`BucketHistogram`], written by that thread alone (a thread that
/// takes up an exited one's id carries them on); atomics only so that a scrape can read them.
struct Shard {
    /// One count per bound, then `+Inf`'s; not cumulative.
    counts: Box<[AtomicU64]>,
    /// The sum of the samples, as `f64` bits.
    sum: AtomicU64,
}

impl Shard {
    fn new(buckets: usize) -> Self {
        Shard {
            counts: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }
}

impl BucketHistogram {
    /// A histogram with the upper bounds `bounds` (finite, rising), and `+Inf` after them.
    pub fn new(bounds: &[f64]) -> Result<Self, BucketsError> {
        Ok(Self::with_bounds(check_bounds(bounds)?))
    }

    /// A histogram with bounds already checked (shared by every series of one metric).
    pub(super) fn with_bounds(bounds: Arc<[f64]>) -> Self {
        BucketHistogram {
            bounds,
            shards: ThreadLocal::new(),
        }
    }

    /// The counts and sum as they are now. Taken bucket by bucket while samples may still
    /// arrive, so a scrape during traffic may see a sample in its bucket and not yet in the
    /// sum, as with any Prometheus client.
    pub fn snapshot(&self) -> HistogramSnapshot<'_> {
        let mut counts = vec![0u64; self.bounds.len() + 1];
        let mut sum = 0.0;
        for shard in &self.shards {
            for (total, count) in counts.iter_mut().zip(&shard.counts) {
                *total = total.wrapping_add(count.load(Relaxed));
            }
            sum += f64::from_bits(shard.sum.load(Relaxed));
        }
        HistogramSnapshot {
            bounds: &self.bounds,
            counts,
            sum,
        }
    }

    fn add(&self, value: f64, count: u64) {
        if value.is_nan() {
            return;
        }
        // From the lowest bound up: Istio's samples fall in the low buckets (a request's
        // milliseconds, a message's bytes), which a search from the middle would reach last.
        let bucket = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        let shard = self
            .shards
            .get_or(|| OwnLine(Shard::new(self.bounds.len() + 1)));
        add_alone(&shard.counts[bucket], count);
        let sum = f64::from_bits(shard.sum.load(Relaxed)) + value * count as f64;
        shard.sum.store(sum.to_bits(), Relaxed);
    }
}

impl HistogramFn for BucketHistogram {
    /// Counts `value` in its bucket and adds it to the sum; a NaN is not counted.
    fn record(&self, value: f64) {
        self.add(value, 1);
    }

    fn record_many(&self, value: f64, count: usize) {
        self.add(value, count as u64);
    }
}

impl fmt::Debug for BucketHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BucketHistogram")
            .field("bounds", &self.bounds)
            .finish_non_exhaustive()
    }
}

/// A [`BucketHistogram`]'s counts at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot<'a> {
    /// The upper bounds, without `+Inf`.
    pub bounds: &'a [f64],
    /// The samples in each bucket (the last is `+Inf`'s), not cumulative.
    pub counts: Vec<u64>,
    /// The sum of the samples.
    pub sum: f64,
}

impl HistogramSnapshot<'_> {
    /// The count of each `le` bucket, as Prometheus reads them: every sample at or below its
    /// bound, the last (`+Inf`) being the count of all samples.
    pub fn cumulative_counts(&self) -> Vec<u64> {
        self.counts
            .iter()
            .scan(0u64, |total, count| {
                *total = total.saturating_add(*count);
                Some(*total)
            })
            .collect()
    }
}

/// `bounds`, checked: at least one, finite, each above the one before.
pub(super) fn check_bounds(bounds: &[f64]) -> Result<Arc<[f64]>, BucketsError> {
    if bounds.is_empty() {
        return Err(BucketsError::Empty);
    }
    if let Some(bad) = bounds.iter().find(|bound| !bound.is_finite()) {
        return Err(BucketsError::NotFinite(*bad));
    }
    if let Some(pair) = bounds.windows(2).find(|pair| pair[1] <= pair[0]) {
        return Err(BucketsError::NotRising(pair[1], pair[0]));
    }
    Ok(bounds.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_threads_shard_lies_in_lines_of_its_own() {
        // Eight histograms, so that a shard that merely happens to start a line is no proof.
        for _ in 0..8 {
            let histogram = BucketHistogram::new(&[1.0]).unwrap();
            histogram.record(0.5);
            let shard = histogram.shards.get().expect("this thread's shard");
            assert_eq!(std::ptr::from_ref(shard).addr() % 128, 0);
        }
    }

    #[test]
    fn a_sample_on_a_bound_counts_in_that_bucket_as_le_says() {
        let histogram = BucketHistogram::new(&[0.5, 1.0, 5.0]).unwrap();
        for sample in [0.5, 1.0, 1.0000001, 5.0, 5.5, -3.0] {
            histogram.record(sample);
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.counts, [2, 1, 2, 1]);
        assert_eq!(snapshot.cumulative_counts(), [2, 3, 5, 6]);
    }

    #[test]
    fn the_sum_adds_every_sample_and_record_many_counts_each_time() {
        let histogram = BucketHistogram::new(&[10.0]).unwrap();
        histogram.record(2.5);
        histogram.record_many(4.0, 3);
        histogram.record(f64::NAN);
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.sum, 14.5);
        assert_eq!(snapshot.cumulative_counts(), [4, 4]);
    }

    #[test]
    fn samples_from_many_threads_are_all_counted() {
        let histogram = Arc::new(BucketHistogram::new(&[1.0, 2.0]).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let histogram = histogram.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000 {
                        histogram.record(f64::from(i % 3));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.cumulative_counts()[2], 40_000);
        // 0, 1 and 2 in turn: 3333 × 3 + one extra 0 per thread.
        assert_eq!(snapshot.sum, 4.0 * (3333.0 * 3.0));
    }

    #[test]
    fn each_thread_counts_into_its_own_shard_and_a_snapshot_adds_them_up() {
        let histogram = Arc::new(BucketHistogram::new(&[1.0]).unwrap());
        histogram.record(0.5);
        // Both alive at once, so that neither takes up the other's id (and shard) on exiting.
        let together = std::sync::Barrier::new(2);
        std::thread::scope(|scope| {
            for sample in [0.25, 2.0] {
                let (histogram, together) = (&histogram, &together);
                scope.spawn(move || {
                    histogram.record(sample);
                    together.wait();
                });
            }
        });
        histogram.record(4.0);
        assert_eq!(
            histogram.shards.iter().count(),
            3,
            "this thread's and two more"
        );
        let mine = histogram.shards.get().unwrap();
        let counts: Vec<u64> = mine.counts.iter().map(|c| c.load(Relaxed)).collect();
        assert_eq!(counts, [1, 1], "only this thread's samples");
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.counts, [2, 2]);
        assert_eq!(snapshot.sum, 6.75);
    }

    #[test]
    fn bounds_must_be_finite_and_rising() {
        assert_eq!(BucketHistogram::new(&[]).unwrap_err(), BucketsError::Empty);
        assert_eq!(
            BucketHistogram::new(&[1.0, f64::INFINITY]).unwrap_err(),
            BucketsError::NotFinite(f64::INFINITY)
        );
        assert_eq!(
            BucketHistogram::new(&[1.0, 1.0]).unwrap_err(),
            BucketsError::NotRising(1.0, 1.0)
        );
    }
}
