//! Where an abandoned attempt was waiting, for the layer that abandoned it.
//!
//! When the route timeout fires, the [timeout layer](crate::timeout) drops the request's
//! future, and with it the attempt in flight at an upstream. The attempt's own drop knows where
//! it was waiting and says so ([`report_abandoned`]); the timeout layer, which dropped it on
//! this thread a moment before, takes that up ([`drop_and_take`]) and fails with a `UT` that
//! names the upstream cluster and endpoint, as Envoy logs it. A request cut short between
//! attempts (backing off before a retry) names where its last attempt went, which the
//! [retry layer](crate::retry) reports. Nothing is shared or allocated
//! until an attempt is abandoned: the message goes through a per-thread slot, written and read
//! within one synchronous drop.

use crate::{BoxError, MeshError, UpstreamError, error::UpstreamTarget};
use std::{cell::RefCell, pin::Pin};

thread_local! {
    /// What the attempt dropped last on this thread reported.
    static ABANDONED: RefCell<Option<UpstreamTarget>> = const { RefCell::new(None) };
}

/// Says where an attempt being dropped unfinished was waiting; for the `Drop` of an attempt
/// (the proxy's forwarder calls it). Heard only by a [`drop_and_take`] that is dropping the
/// attempt, so an attempt dropped for another reason (its client went away) is heard by no one.
///
/// ```
/// use mesh_core::{UpstreamCluster, abandoned::{drop_and_take, report_abandoned}, error::UpstreamTarget};
/// struct Attempt;
/// impl Drop for Attempt {
///     fn drop(&mut self) {
///         report_abandoned(UpstreamTarget::cluster_only(UpstreamCluster("outbound|80||catalog".into())));
///     }
/// }
/// let mut future = Box::pin(Some(Attempt));
/// let target = drop_and_take(future.as_mut()).unwrap();
/// assert_eq!(&*target.cluster.0, "outbound|80||catalog");
/// assert!(future.is_none());
/// ```
pub fn report_abandoned(target: UpstreamTarget) {
    ABANDONED.with_borrow_mut(|slot| *slot = Some(target));
}

/// Reports where a wait is, should it be dropped before [`disarm`](ReportOnDrop::disarm): for
/// the waits of a request that a timeout may cut short (a connection-pool queue, a send). The
/// target is made only if it is reported.
///
/// ```
/// use mesh_core::{UpstreamCluster, abandoned::{ReportOnDrop, drop_and_take}, error::UpstreamTarget};
/// let cluster = || UpstreamTarget::cluster_only(UpstreamCluster("outbound|80||catalog".into()));
/// let mut waiting = Box::pin(Some(ReportOnDrop::new(cluster)));
/// assert!(drop_and_take(waiting.as_mut()).is_some(), "cut short: reported");
/// let mut done = Box::pin(Some(ReportOnDrop::new(cluster)));
/// done.as_mut().as_pin_mut().map(|guard| guard.get_mut().disarm());
/// assert!(drop_and_take(done.as_mut()).is_none(), "finished: not reported");
/// ```
pub struct ReportOnDrop<F: FnOnce() -> UpstreamTarget> {
    target: Option<F>,
}

impl<F: FnOnce() -> UpstreamTarget> ReportOnDrop<F> {
    /// A wait at the target `target` makes.
    ///
    /// ```
    /// use mesh_core::{UpstreamCluster, abandoned::{ReportOnDrop, drop_and_take}, error::UpstreamTarget};
    /// let queued = ReportOnDrop::new(|| UpstreamTarget::cluster_only(UpstreamCluster("outbound|80||catalog".into())));
    /// let target = drop_and_take(Box::pin(Some(queued)).as_mut()).expect("reported as dropped");
    /// assert_eq!(&*target.cluster.0, "outbound|80||catalog");
    /// ```
    pub fn new(target: F) -> Self {
        ReportOnDrop {
            target: Some(target),
        }
    }

    /// The wait is over: nothing to report.
    ///
    /// ```
    /// use mesh_core::{UpstreamCluster, abandoned::{ReportOnDrop, drop_and_take}, error::UpstreamTarget};
    /// let mut sent = ReportOnDrop::new(|| UpstreamTarget::cluster_only(UpstreamCluster("outbound|80||catalog".into())));
    /// sent.disarm();
    /// assert!(drop_and_take(Box::pin(Some(sent)).as_mut()).is_none(), "nothing to report");
    /// ```
    pub fn disarm(&mut self) {
        self.target = None;
    }
}

impl<F: FnOnce() -> UpstreamTarget> Drop for ReportOnDrop<F> {
    fn drop(&mut self) {
        if let Some(target) = self.target.take() {
            report_abandoned(target());
        }
    }
}

/// Drops `future` (if it is still there) and returns where the attempt it held was waiting,
/// if one reported it as it was dropped.
///
/// ```
/// use mesh_core::abandoned::drop_and_take;
/// let mut quiet = Box::pin(Some(std::future::pending::<()>()));
/// assert!(drop_and_take(quiet.as_mut()).is_none(), "nothing reported");
/// assert!(quiet.is_none(), "dropped all the same");
/// ```
pub fn drop_and_take<F>(mut future: Pin<&mut Option<F>>) -> Option<UpstreamTarget> {
    // A report no layer took up (an attempt dropped at its per-try timeout, say) is not ours.
    ABANDONED.with_borrow_mut(Option::take);
    future.set(None);
    ABANDONED.with_borrow_mut(Option::take)
}

/// Abandons `future` at its deadline: drops it, and returns the timeout error (`UT`), naming
/// where the attempt was waiting when it said so.
///
/// ```
/// use mesh_core::{MeshError, UpstreamError, abandoned::timed_out};
/// let mut future = Box::pin(Some(std::future::pending::<()>()));
/// let error = timed_out(future.as_mut());
/// assert!(matches!(MeshError::find(&error), Some(MeshError::Timeout)));
/// assert!(UpstreamError::find(&error).is_none(), "no attempt said where it was");
/// ```
pub fn timed_out<F>(future: Pin<&mut Option<F>>) -> BoxError {
    UpstreamError::at(drop_and_take(future), MeshError::Timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UpstreamCluster;

    fn target(name: &str) -> UpstreamTarget {
        UpstreamTarget::cluster_only(UpstreamCluster(name.into()))
    }

    struct Reports(&'static str);

    impl Drop for Reports {
        fn drop(&mut self) {
            report_abandoned(target(self.0));
        }
    }

    #[test]
    fn a_stale_report_is_not_taken_for_the_attempt_dropped_now() {
        report_abandoned(target("stale"));
        let mut quiet = Box::pin(Some(()));
        assert!(drop_and_take(quiet.as_mut()).is_none());
        let mut attempt = Box::pin(Some(Reports("fresh")));
        assert_eq!(
            &*drop_and_take(attempt.as_mut()).unwrap().cluster.0,
            "fresh"
        );
        assert!(
            drop_and_take(attempt.as_mut()).is_none(),
            "taken once, and the future is gone"
        );
    }
}
