//! [`ResponseTally`]: how a cluster's attempts were answered — counts by status class (Envoy's
//! `upstream_rq_2xx` … `upstream_rq_5xx`) and a histogram of their times (`upstream_rq_time`,
//! with Istio's bucket boundaries) — and [`TallySnapshot`], a reading of it that can be
//! subtracted from a later one to judge a window of traffic, as Prometheus' `rate` does.
//!
//! The canary controller judges a canary from these snapshots when no Prometheus server is
//! configured: the success rate is the share of answers that are not 5xx, and the latency is the
//! p99 interpolated within the histogram's buckets exactly as PromQL's `histogram_quantile`
//! does.
//!
//! ```
//! use mesh_proxy::response_tally::ResponseTally;
//! use std::time::Duration;
//!
//! let tally = ResponseTally::default();
//! let before = tally.snapshot();
//! for _ in 0..99 {
//!     tally.record(200, Duration::from_millis(3));
//! }
//! tally.record(503, Duration::from_millis(700));
//! let window = tally.snapshot().since(&before);
//! assert_eq!(window.total(), 100);
//! assert_eq!(window.success_rate(), Some(99.0));
//! // The 99th of 100 answers lies in the (1, 5] ms bucket.
//! assert!(window.quantile(0.99).unwrap() <= 5.0);
//! ```

use mesh_core::per_thread::{PerThreadCounts, add_alone};
use mesh_trace::metrics::ISTIO_BUCKETS;
use std::time::Duration;

/// Number of histogram buckets: Istio's boundaries plus `+Inf`.
const BUCKETS: usize = ISTIO_BUCKETS.len() + 1;

/// Status classes counted: 1xx to 5xx.
const CLASSES: usize = 5;

/// Answers of a cluster's attempts, by status class and by time; see the [module docs](self).
///
/// ```
/// use mesh_proxy::response_tally::ResponseTally;
/// use std::time::Duration;
/// let tally = ResponseTally::default();
/// tally.record(200, Duration::from_millis(2));
/// tally.record(503, Duration::from_millis(40));
/// assert_eq!((tally.class(2), tally.class(5)), (1, 1));
/// assert_eq!(tally.snapshot().total(), 2);
/// ```
#[derive(Debug, Default)]
pub struct ResponseTally {
    /// The counts by class, then by bucket, per thread: every worker counts each of the
    /// cluster's answers.
    counts: PerThreadCounts<{ CLASSES + BUCKETS }>,
}

impl ResponseTally {
    /// Counts an answer with `status` (a local reply's status for an attempt that failed or
    /// timed out) that took `elapsed`.
    ///
    /// ```
    /// use mesh_proxy::response_tally::ResponseTally;
    /// use std::time::Duration;
    /// let tally = ResponseTally::default();
    /// tally.record(302, Duration::from_millis(1));
    /// tally.record(999, Duration::from_millis(1)); // no status class, but still an answer
    /// assert_eq!(tally.class(3), 1);
    /// assert_eq!(tally.snapshot().total(), 2);
    /// ```
    pub fn record(&self, status: u16, elapsed: Duration) {
        let mine = self.counts.mine();
        if let Some(class) = (status / 100).checked_sub(1).map(usize::from)
            && class < CLASSES
        {
            add_alone(&mine[class], 1);
        }
        let millis = elapsed.as_secs_f64() * 1000.0;
        let bucket = ISTIO_BUCKETS.partition_point(|&bound| bound < millis);
        add_alone(&mine[CLASSES + bucket], 1);
    }

    /// Attempts answered with a status of `class` (1 to 5: 1xx to 5xx).
    ///
    /// ```
    /// use mesh_proxy::response_tally::ResponseTally;
    /// use std::time::Duration;
    /// let tally = ResponseTally::default();
    /// tally.record(404, Duration::ZERO);
    /// tally.record(429, Duration::ZERO);
    /// assert_eq!(tally.class(4), 2);
    /// assert_eq!((tally.class(0), tally.class(6)), (0, 0), "no such class");
    /// ```
    pub fn class(&self, class: u16) -> u64 {
        match usize::from(class).checked_sub(1) {
            Some(i) if i < CLASSES => self.counts.total(i),
            _ => 0,
        }
    }

    /// The counts now.
    ///
    /// ```
    /// use mesh_proxy::response_tally::ResponseTally;
    /// use std::time::Duration;
    /// let tally = ResponseTally::default();
    /// let before = tally.snapshot();
    /// tally.record(500, Duration::from_millis(3));
    /// assert_eq!(before.total(), 0, "a snapshot does not move");
    /// assert_eq!(tally.snapshot().errors(), 1);
    /// ```
    pub fn snapshot(&self) -> TallySnapshot {
        let counts = self.counts.totals();
        TallySnapshot {
            classes: std::array::from_fn(|i| counts[i]),
            buckets: std::array::from_fn(|i| counts[CLASSES + i]),
        }
    }
}

/// A reading of one or more [`ResponseTally`]s, or the difference of two readings.
///
/// ```
/// use mesh_proxy::response_tally::{ResponseTally, TallySnapshot};
/// use std::time::Duration;
/// assert_eq!(TallySnapshot::default().success_rate(), None);
/// let tally = ResponseTally::default();
/// tally.record(200, Duration::from_millis(3));
/// assert_eq!(tally.snapshot().since(&TallySnapshot::default()), tally.snapshot());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TallySnapshot {
    classes: [u64; CLASSES],
    /// Answers per bucket (not cumulative); the last is `+Inf`.
    buckets: [u64; BUCKETS],
}

impl TallySnapshot {
    /// What was counted after `earlier` was taken. A count below its earlier value means the
    /// tally was replaced (a new cluster): the count is taken whole, as Prometheus treats a
    /// counter reset.
    ///
    /// ```
    /// use mesh_proxy::response_tally::ResponseTally;
    /// use std::time::Duration;
    /// let old = ResponseTally::default();
    /// for _ in 0..5 { old.record(200, Duration::from_millis(1)); }
    /// let earlier = old.snapshot();
    /// old.record(503, Duration::from_millis(1));
    /// assert_eq!(old.snapshot().since(&earlier).total(), 1);
    /// // A new cluster's tally is below the earlier reading: a reset, taken whole.
    /// let new = ResponseTally::default();
    /// new.record(200, Duration::from_millis(1));
    /// assert_eq!(new.snapshot().since(&earlier).total(), 1);
    /// ```
    pub fn since(&self, earlier: &TallySnapshot) -> TallySnapshot {
        let reset = self
            .classes
            .iter()
            .chain(&self.buckets)
            .zip(earlier.classes.iter().chain(&earlier.buckets))
            .any(|(now, then)| now < then);
        if reset {
            return *self;
        }
        TallySnapshot {
            classes: std::array::from_fn(|i| self.classes[i] - earlier.classes[i]),
            buckets: std::array::from_fn(|i| self.buckets[i] - earlier.buckets[i]),
        }
    }

    /// The sum of two readings (of different clusters).
    ///
    /// ```
    /// use mesh_proxy::response_tally::ResponseTally;
    /// use std::time::Duration;
    /// let (v1, v2) = (ResponseTally::default(), ResponseTally::default());
    /// v1.record(200, Duration::from_millis(1));
    /// v2.record(503, Duration::from_millis(1));
    /// let both = v1.snapshot().plus(&v2.snapshot());
    /// assert_eq!((both.total(), both.errors()), (2, 1));
    /// ```
    pub fn plus(&self, other: &TallySnapshot) -> TallySnapshot {
        TallySnapshot {
            classes: std::array::from_fn(|i| self.classes[i] + other.classes[i]),
            buckets: std::array::from_fn(|i| self.buckets[i] + other.buckets[i]),
        }
    }

    /// Answers counted.
    ///
    /// ```
    /// use mesh_proxy::response_tally::ResponseTally;
    /// use std::time::Duration;
    /// let tally = ResponseTally::default();
    /// tally.record(200, Duration::from_millis(1));
    /// tally.record(200, Duration::from_secs(7200)); // past every finite bucket
    /// assert_eq!(tally.snapshot().total(), 2);
    /// ```
    pub fn total(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Answers with a 5xx status.
    ///
    /// ```
    /// use mesh_proxy::response_tally::ResponseTally;
    /// use std::time::Duration;
    /// let tally = ResponseTally::default();
    /// tally.record(404, Duration::ZERO);
    /// tally.record(503, Duration::ZERO);
    /// assert_eq!(tally.snapshot().errors(), 1, "only 5xx");
    /// ```
    pub fn errors(&self) -> u64 {
        self.classes[4]
    }

    /// The percentage of answers that are not 5xx (Flagger's `request-success-rate`); `None`
    /// without answers.
    ///
    /// ```
    /// use mesh_proxy::response_tally::ResponseTally;
    /// use std::time::Duration;
    /// let tally = ResponseTally::default();
    /// assert_eq!(tally.snapshot().success_rate(), None);
    /// for status in [200, 404, 503, 200] {
    ///     tally.record(status, Duration::ZERO);
    /// }
    /// assert_eq!(tally.snapshot().success_rate(), Some(75.0), "a 404 is a success");
    /// ```
    pub fn success_rate(&self) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| (total - self.errors()) as f64 * 100.0 / total as f64)
    }

    /// The `q` quantile (0 to 1) of the answer times in milliseconds, interpolated linearly
    /// within its bucket as PromQL's `histogram_quantile` does (a quantile in the `+Inf`
    /// bucket is the highest finite boundary); `None` without answers.
    ///
    /// ```
    /// use mesh_proxy::response_tally::ResponseTally;
    /// use std::time::Duration;
    /// let tally = ResponseTally::default();
    /// for _ in 0..10 {
    ///     tally.record(200, Duration::from_millis(7)); // the (5, 10] ms bucket
    /// }
    /// // The median is interpolated halfway through the bucket.
    /// assert_eq!(tally.snapshot().quantile(0.5), Some(7.5));
    /// ```
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, &count) in self.buckets.iter().enumerate() {
            let upto = below + count;
            if count > 0 && upto as f64 >= rank {
                let Some(&upper) = ISTIO_BUCKETS.get(i) else {
                    return ISTIO_BUCKETS.last().copied();
                };
                let lower = if i == 0 { 0.0 } else { ISTIO_BUCKETS[i - 1] };
                let within = (rank - below as f64) / count as f64;
                return Some(lower + (upper - lower) * within);
            }
            below = upto;
        }
        ISTIO_BUCKETS.last().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn each_thread_counts_in_cells_of_its_own_and_a_snapshot_sums_them() {
        let tally = ResponseTally::default();
        // Both alive at once, so that neither takes up the other's thread id and cells.
        let together = std::sync::Barrier::new(2);
        std::thread::scope(|scope| {
            for status in [200, 503] {
                let (tally, together) = (&tally, &together);
                scope.spawn(move || {
                    (0..1_000).for_each(|_| tally.record(status, ms(3)));
                    together.wait();
                });
            }
        });
        let snapshot = tally.snapshot();
        assert_eq!((snapshot.total(), snapshot.errors()), (2_000, 1_000));
        assert_eq!((tally.class(2), tally.class(5)), (1_000, 1_000));
        assert_eq!(tally.counts.threads(), 2);
    }

    #[test]
    fn counts_status_classes_and_ignores_nonsense_statuses() {
        let tally = ResponseTally::default();
        tally.record(204, ms(1));
        tally.record(404, ms(1));
        tally.record(503, ms(1));
        tally.record(504, ms(1));
        tally.record(99, ms(1));
        tally.record(700, ms(1));
        assert_eq!(
            (1..=5).map(|c| tally.class(c)).collect::<Vec<_>>(),
            [0, 1, 0, 1, 2]
        );
        let snapshot = tally.snapshot();
        assert_eq!(snapshot.total(), 6, "every answer has a time");
        assert_eq!(snapshot.errors(), 2);
    }

    #[test]
    fn boundaries_belong_to_the_bucket_they_close() {
        let tally = ResponseTally::default();
        // `le="5"` counts 5 ms answers, as Prometheus buckets do.
        tally.record(200, ms(5));
        let snapshot = tally.snapshot();
        assert_eq!(snapshot.buckets[2], 1, "{snapshot:?}");
        tally.record(200, Duration::from_secs(7200));
        assert_eq!(tally.snapshot().buckets[BUCKETS - 1], 1);
    }

    #[test]
    fn quantiles_interpolate_like_histogram_quantile() {
        let tally = ResponseTally::default();
        // 50 answers in (50, 100] and 50 in (250, 500].
        for _ in 0..50 {
            tally.record(200, ms(80));
            tally.record(200, ms(300));
        }
        let snapshot = tally.snapshot();
        // rank 25 of the 50 in (50, 100]: halfway.
        assert_eq!(snapshot.quantile(0.25), Some(75.0));
        // rank 99: 49 of 50 into (250, 500].
        assert_eq!(snapshot.quantile(0.99), Some(250.0 + 250.0 * 49.0 / 50.0));
        assert_eq!(TallySnapshot::default().quantile(0.99), None);
        tally.record(200, Duration::from_secs(7200));
        assert_eq!(tally.snapshot().quantile(1.0), Some(3_600_000.0));
    }

    #[test]
    fn windows_subtract_and_survive_a_reset() {
        let tally = ResponseTally::default();
        tally.record(500, ms(1));
        let before = tally.snapshot();
        tally.record(200, ms(1));
        let window = tally.snapshot().since(&before);
        assert_eq!((window.total(), window.success_rate()), (1, Some(100.0)));
        assert_eq!(
            before.since(&tally.snapshot()),
            before,
            "a reset counts whole"
        );
        assert_eq!(TallySnapshot::default().success_rate(), None);
        assert_eq!(window.plus(&before).total(), 2);
    }
}
