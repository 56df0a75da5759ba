//! [`ClusterStats`]: a cluster's request counters as Envoy keeps them (`upstream_rq_total`,
//! `upstream_rq_retry`, `upstream_rq_timeout`, and the answers by status class and time in a
//! [`ResponseTally`]), counted by the forwarder and read by the admin server's `/stats`,
//! `/stats/prometheus` and `/clusters`, and by the canary controller.

use crate::response_tally::ResponseTally;
use mesh_core::per_thread::{PerThreadCounts, add_alone};
use std::time::Duration;

/// One cluster's request counters.
///
/// ```
/// use mesh_proxy::cluster_stats::ClusterStats;
/// use std::time::Duration;
/// let stats = ClusterStats::default();
/// stats.record_attempt(1);
/// stats.record_response(503, Duration::from_millis(4));
/// stats.record_attempt(2);
/// stats.record_response(200, Duration::from_millis(2));
/// assert_eq!((stats.rq_total(), stats.rq_retry()), (2, 1));
/// assert_eq!(stats.responses().snapshot().success_rate(), Some(50.0));
/// ```
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// `rq_total`, `rq_retry` and `rq_timeout` ([`RQ_TOTAL`]…), counted per thread: every
    /// worker counts each of the cluster's requests.
    counts: PerThreadCounts<3>,
    responses: ResponseTally,
}

/// Where in [`ClusterStats::counts`] each counter is.
const RQ_TOTAL: usize = 0;
const RQ_RETRY: usize = 1;
const RQ_TIMEOUT: usize = 2;

impl ClusterStats {
    /// Counts an attempt sent to one of the cluster's endpoints (`attempt` counts from 1; later
    /// attempts are retries).
    ///
    /// ```
    /// use mesh_proxy::cluster_stats::ClusterStats;
    /// let stats = ClusterStats::default();
    /// for attempt in 1..=3 {
    ///     stats.record_attempt(attempt);
    /// }
    /// assert_eq!(stats.rq_total(), 3);
    /// assert_eq!(stats.rq_retry(), 2, "attempts after the first are retries");
    /// ```
    pub fn record_attempt(&self, attempt: u32) {
        let mine = self.counts.mine();
        add_alone(&mine[RQ_TOTAL], 1);
        if attempt > 1 {
            add_alone(&mine[RQ_RETRY], 1);
        }
    }

    /// Counts an attempt abandoned at its timeout.
    ///
    /// ```
    /// use mesh_proxy::cluster_stats::ClusterStats;
    /// let stats = ClusterStats::default();
    /// stats.record_attempt(1);
    /// stats.record_timeout();
    /// assert_eq!((stats.rq_total(), stats.rq_timeout()), (1, 1));
    /// ```
    pub fn record_timeout(&self) {
        self.counts.add(RQ_TIMEOUT, 1);
    }

    /// Counts an attempt's answer: its status (the local reply's for an attempt that failed or
    /// timed out) and how long it took to come.
    ///
    /// ```
    /// use mesh_proxy::cluster_stats::ClusterStats;
    /// use std::time::Duration;
    /// let stats = ClusterStats::default();
    /// stats.record_response(404, Duration::from_millis(3));
    /// stats.record_response(504, Duration::from_secs(15));
    /// assert_eq!((stats.responses().class(4), stats.responses().class(5)), (1, 1));
    /// ```
    pub fn record_response(&self, status: u16, elapsed: Duration) {
        self.responses.record(status, elapsed);
    }

    /// The attempts' answers by status class and time.
    ///
    /// ```
    /// use mesh_proxy::cluster_stats::ClusterStats;
    /// use std::time::Duration;
    /// let stats = ClusterStats::default();
    /// stats.record_response(200, Duration::from_millis(7));
    /// let snapshot = stats.responses().snapshot();
    /// assert_eq!((snapshot.total(), snapshot.errors()), (1, 0));
    /// ```
    pub fn responses(&self) -> &ResponseTally {
        &self.responses
    }

    /// `upstream_rq_total`: attempts sent, retries included.
    ///
    /// ```
    /// use mesh_proxy::cluster_stats::ClusterStats;
    /// let stats = ClusterStats::default();
    /// assert_eq!(stats.rq_total(), 0);
    /// stats.record_attempt(1);
    /// stats.record_attempt(2);
    /// assert_eq!(stats.rq_total(), 2, "retries included");
    /// ```
    pub fn rq_total(&self) -> u64 {
        self.counts.total(RQ_TOTAL)
    }

    /// `upstream_rq_retry`: attempts that were retries.
    ///
    /// ```
    /// use mesh_proxy::cluster_stats::ClusterStats;
    /// let stats = ClusterStats::default();
    /// stats.record_attempt(1);
    /// assert_eq!(stats.rq_retry(), 0);
    /// stats.record_attempt(2);
    /// assert_eq!(stats.rq_retry(), 1);
    /// ```
    pub fn rq_retry(&self) -> u64 {
        self.counts.total(RQ_RETRY)
    }

    /// `upstream_rq_timeout`: attempts abandoned at their timeout.
    ///
    /// ```
    /// use mesh_proxy::cluster_stats::ClusterStats;
    /// let stats = ClusterStats::default();
    /// assert_eq!(stats.rq_timeout(), 0);
    /// stats.record_timeout();
    /// assert_eq!(stats.rq_timeout(), 1);
    /// ```
    pub fn rq_timeout(&self) -> u64 {
        self.counts.total(RQ_TIMEOUT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_counts_in_cells_of_its_own_and_the_readings_sum_them() {
        let stats = ClusterStats::default();
        // Both alive at once, so that neither takes up the other's thread id and cells.
        let together = std::sync::Barrier::new(2);
        std::thread::scope(|scope| {
            for attempt in [1, 2] {
                let (stats, together) = (&stats, &together);
                scope.spawn(move || {
                    for _ in 0..1_000 {
                        stats.record_attempt(attempt);
                        stats.record_timeout();
                    }
                    together.wait();
                });
            }
        });
        assert_eq!(
            (stats.rq_total(), stats.rq_retry(), stats.rq_timeout()),
            (2_000, 1_000, 2_000)
        );
        assert_eq!(stats.counts.threads(), 2);
    }
}
