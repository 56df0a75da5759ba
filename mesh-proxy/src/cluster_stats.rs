//! [`ClusterStats`]: a cluster's request counters as Envoy keeps them (`upstream_rq_total`,
//! `upstream_rq_retry`, `upstream_rq_timeout`, and the answers by status class and time in a
//! [`ResponseTally`]), counted by the forwarder and read by the admin server's `/stats`,
//! `/stats/prometheus` and `/clusters`, and by the canary controller.

use crate::response_tally::ResponseTally;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One cluster's request counters.
#[derive(Debug, Default)]
pub struct ClusterStats {
    rq_total: AtomicU64,
    rq_retry: AtomicU64,
    rq_timeout: AtomicU64,
    responses: ResponseTally,
}

impl ClusterStats {
    /// Counts an attempt sent to one of the cluster's endpoints (`attempt` counts from 1; later
    /// attempts are retries).
    pub fn record_attempt(&self, attempt: u32) {
        self.rq_total.fetch_add(1, Ordering::Relaxed);
        if attempt > 1 {
            self.rq_retry.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an attempt abandoned at its timeout.
    pub fn record_timeout(&self) {
        self.rq_timeout.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an attempt's answer: its status (the local reply's for an attempt that failed or
    /// timed out) and how long it took to come.
    pub fn record_response(&self, status: u16, elapsed: Duration) {
        self.responses.record(status, elapsed);
    }

    /// The attempts' answers by status class and time.
    pub fn responses(&self) -> &ResponseTally {
        &self.responses
    }

    /// `upstream_rq_total`: attempts sent, retries included.
    pub fn rq_total(&self) -> u64 {
        self.rq_total.load(Ordering::Relaxed)
    }

    /// `upstream_rq_retry`: attempts that were retries.
    pub fn rq_retry(&self) -> u64 {
        self.rq_retry.load(Ordering::Relaxed)
    }

    /// `upstream_rq_timeout`: attempts abandoned at their timeout.
    pub fn rq_timeout(&self) -> u64 {
        self.rq_timeout.load(Ordering::Relaxed)
    }
}
