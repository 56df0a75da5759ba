//! [`RequestEnd`]: how far a request's body has arrived, for the timers Envoy starts only once
//! the whole downstream request has been received — the route timeout and the per-try
//! timeout — so that a slow upload under a short route timeout is not cut off for being slow
//! to send.
//!
//! The [`TimeoutLayer`](crate::timeout::TimeoutLayer), given a request whose body is still
//! streaming, puts a `RequestEnd` on it (an extension); the
//! [`RetryLayer`](crate::retry::RetryLayer), through which every body passes, makes one for its
//! per-try timeout when there is none, and [`watch`](RequestEnd::watch)es the body: each chunk
//! read from it, and its end (or failure, or abandonment), is a sign of life.
//!
//! A timer started on such a request runs its whole length from the request's last sign of
//! life: it cannot fire while the body keeps arriving, and it fires a
//! full timeout after the body's end, as Envoy's does. Unlike Envoy's, it also fires a full
//! timeout after the last chunk when the body stops arriving before its end — the client
//! stalls, or nothing below reads it (the request waits in a connection pool's queue, or the
//! upstream does not read) — so that no request waits without bound on a body. With nothing
//! watching the body, the timer runs from its start, as for a request whose body had ended.

use crate::{
    Body,
    watched_body::{BodyWatcher, WatchedBody},
};
use pin_project::pin_project;
use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::{Context, Poll, ready},
    time::Duration,
};
use tokio::time::{Instant, Sleep};

/// How far a request's body has arrived; see the [module docs](self). Clones share the one
/// record.
///
/// ```
/// use http_body_util::BodyExt;
/// use mesh_core::{body, request_end::RequestEnd};
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let end = RequestEnd::new();
/// let upload = end.watch(body::full("the whole upload"));
/// assert_eq!((end.last_sign_of_life(), end.ended()), (None, false));
/// tokio::time::advance(Duration::from_secs(2)).await;
/// upload.collect().await.unwrap();
/// assert_eq!(end.last_sign_of_life(), Some(tokio::time::Instant::now()));
/// assert!(end.ended());
/// // A 1 s timer started before the upload ended now runs until a second after its end.
/// let started = tokio::time::Instant::now() - Duration::from_secs(2);
/// let deadline = started + Duration::from_secs(1);
/// assert_eq!(end.extend(deadline, Duration::from_secs(1)), tokio::time::Instant::now() + Duration::from_secs(1));
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct RequestEnd {
    shared: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// When a chunk of the body was last read, or the body ended.
    last: Option<Instant>,
    /// The body has ended (or failed, or was dropped).
    ended: bool,
}

impl RequestEnd {
    /// A record of a body not watched yet.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let end = mesh_core::request_end::RequestEnd::new();
    /// assert_eq!((end.last_sign_of_life(), end.ended()), (None, false));
    /// # }
    /// ```
    pub fn new() -> Self {
        RequestEnd::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state whole; a panic elsewhere does not spoil it.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `body`, watched: each chunk read from it, and its end, failure or being dropped before
    /// its end, is recorded as a sign of life.
    ///
    /// ```
    /// use mesh_core::{body, request_end::RequestEnd};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let end = RequestEnd::new();
    /// drop(end.watch(body::full("never read")));
    /// assert!(end.ended(), "dropped before its end: no more to wait for");
    /// # }
    /// ```
    pub fn watch(&self, body: Body) -> Body {
        crate::body::boxed(WatchedBody::new(body, Some(Recorder(self.clone()))))
    }

    /// When the body last showed life: a chunk read, or its end. `None` before either.
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use mesh_core::{body, request_end::RequestEnd};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let end = RequestEnd::new();
    /// let mut upload = end.watch(body::full("chunk"));
    /// assert_eq!(end.last_sign_of_life(), None);
    /// upload.frame().await.unwrap().unwrap();
    /// assert_eq!(end.last_sign_of_life(), Some(tokio::time::Instant::now()));
    /// # }
    /// ```
    pub fn last_sign_of_life(&self) -> Option<Instant> {
        self.state().last
    }

    /// Whether the body has ended (or failed, or was dropped).
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use mesh_core::{body, request_end::RequestEnd};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let end = RequestEnd::new();
    /// let upload = end.watch(body::full("all of it"));
    /// assert!(!end.ended());
    /// upload.collect().await.unwrap();
    /// assert!(end.ended());
    /// # }
    /// ```
    pub fn ended(&self) -> bool {
        self.state().ended
    }

    /// `deadline`, of a timer of `duration`, put back to a whole `duration` after the body's
    /// last sign of life when that is later.
    ///
    /// ```
    /// use mesh_core::request_end::RequestEnd;
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    /// let unwatched = RequestEnd::new();
    /// assert_eq!(unwatched.extend(deadline, Duration::from_secs(1)), deadline, "no sign of life: as it was");
    /// # }
    /// ```
    pub fn extend(&self, deadline: Instant, duration: Duration) -> Instant {
        match self.last_sign_of_life() {
            Some(last) => deadline.max(last + duration),
            None => deadline,
        }
    }

    fn record(&self, ended: bool) {
        let mut state = self.state();
        if !state.ended {
            state.last = Some(Instant::now());
            state.ended = ended;
        }
    }
}

/// Records a watched body's signs of life in its [`RequestEnd`].
struct Recorder(RequestEnd);

impl BodyWatcher for Recorder {
    fn data(&mut self, _bytes: u64) {
        self.0.record(false);
    }

    fn error(&mut self) {
        self.0.record(true);
    }

    fn end(self) {
        self.0.record(true);
    }

    fn abandon(self) {
        self.0.record(true);
    }
}

/// A timer of `duration` that runs from its start or, on a request whose body is still
/// arriving, from the body's last sign of life ([`RequestEnd::extend`]).
///
/// Its tokio [`Sleep`] is made on the first poll that finds it waiting, not when it is
/// started: a request answered before it first waits (a local reply, an in-process service
/// answering at once) never makes one — no look-up of the runtime's timer, no reference to it
/// taken. The deadline is fixed at the start whenever the sleep is made. The sleep is kept in
/// place (no allocation), so a timer that does wait costs what a plain `Sleep` would.
#[pin_project]
#[derive(Debug)]
pub(crate) struct TimerAfterEnd {
    deadline: Instant,
    /// The sleep until `deadline`, once the timer has been polled.
    #[pin]
    sleep: Option<Sleep>,
    /// The body it waits out, while it may still arrive.
    body: Option<Box<(RequestEnd, Duration)>>,
}

impl TimerAfterEnd {
    /// A timer started `now`, held back by `end`'s body while it may still arrive.
    #[inline]
    pub fn new(duration: Duration, end: Option<&RequestEnd>, now: Instant) -> Self {
        let deadline = now + duration;
        match end {
            Some(end) if !end.ended() => TimerAfterEnd::held_back(deadline, end, duration),
            _ => TimerAfterEnd {
                deadline,
                sleep: None,
                body: None,
            },
        }
    }

    /// The rare case, kept out of line.
    #[cold]
    #[inline(never)]
    fn held_back(deadline: Instant, end: &RequestEnd, duration: Duration) -> Self {
        TimerAfterEnd {
            deadline,
            sleep: None,
            body: Some(Box::new((end.clone(), duration))),
        }
    }

    /// Whether its sleep has been made (it has been polled).
    #[cfg(test)]
    pub fn has_slept(&self) -> bool {
        self.sleep.is_some()
    }

    /// Ready when the timer fires.
    #[inline]
    pub fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if this.sleep.is_none() {
            this.sleep
                .set(Some(tokio::time::sleep_until(*this.deadline)));
        }
        let Some(mut sleep) = this.sleep.as_pin_mut() else {
            unreachable!("the sleep was just made");
        };
        loop {
            ready!(sleep.as_mut().poll(cx));
            let Some((end, duration)) = this.body.as_deref() else {
                return Poll::Ready(());
            };
            let deadline = end.extend(*this.deadline, *duration);
            if deadline <= *this.deadline {
                return Poll::Ready(());
            }
            *this.deadline = deadline;
            sleep.as_mut().reset(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::replay::tests::{channel, data};
    use http_body_util::BodyExt;
    use std::future::poll_fn;

    /// A body sending a chunk every `every`, `chunks` times, then ending; read as it arrives.
    fn upload_read_as_it_arrives(end: &RequestEnd, every: Duration, chunks: u32) {
        let (tx, upload) = channel();
        let mut upload = end.watch(upload);
        tokio::spawn(async move {
            for _ in 0..chunks {
                tokio::time::sleep(every).await;
                tx.send(data("chunk")).unwrap();
            }
        });
        tokio::spawn(async move { while upload.frame().await.is_some() {} });
    }

    /// Until a 1 s timer started at `start`, held back by `end`'s body, fires.
    async fn fire_one_second(end: Option<&RequestEnd>, start: Instant) {
        let timer = TimerAfterEnd::new(Duration::from_secs(1), end, start);
        let mut timer = std::pin::pin!(timer);
        poll_fn(|cx| timer.as_mut().poll(cx)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_first_polled_late_still_runs_from_its_start() {
        let start = Instant::now();
        let timer = TimerAfterEnd::new(Duration::from_secs(1), None, start);
        let mut timer = std::pin::pin!(timer);
        tokio::time::advance(Duration::from_millis(600)).await;
        poll_fn(|cx| timer.as_mut().poll(cx)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(1), "not 1.6 s");
        // First polled past its deadline: ready at once.
        let late = TimerAfterEnd::new(Duration::from_secs(1), None, Instant::now());
        let mut late = std::pin::pin!(late);
        tokio::time::advance(Duration::from_secs(2)).await;
        let polled = poll_fn(|cx| Poll::Ready(late.as_mut().poll(cx))).await;
        assert!(polled.is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_waits_out_a_body_that_keeps_arriving_then_runs_from_its_end() {
        let end = RequestEnd::new();
        let start = Instant::now();
        // Six chunks, 500 ms apart, under a 1 s timer: the body ends at 3 s.
        upload_read_as_it_arrives(&end, Duration::from_millis(500), 6);
        fire_one_second(Some(&end), start).await;
        assert!(end.ended());
        assert_eq!(start.elapsed(), Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_times_out_a_whole_timer_after_its_last_chunk() {
        let end = RequestEnd::new();
        let start = Instant::now();
        let (tx, upload) = channel();
        let mut upload = end.watch(upload);
        tx.send(data("first")).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        upload.frame().await.unwrap().unwrap();
        // The rest never comes: the timer fires 1 s after the chunk read at 300 ms.
        fire_one_second(Some(&end), start).await;
        assert_eq!(start.elapsed(), Duration::from_millis(1300));
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_nobody_reads_does_not_hold_a_timer_back() {
        let end = RequestEnd::new();
        let (_tx, upload) = channel();
        let _unread = end.watch(upload);
        let start = Instant::now();
        fire_one_second(Some(&end), start).await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_or_dropped_body_ends_too() {
        let failed = RequestEnd::new();
        let (tx, upload) = channel();
        let mut upload = failed.watch(upload);
        tx.send(Err("reset".into())).unwrap();
        assert!(upload.frame().await.unwrap().is_err());
        assert!(failed.ended());

        let dropped = RequestEnd::new();
        let (_tx, upload) = channel();
        drop(dropped.watch(upload));
        assert!(dropped.ended());
        assert_eq!(dropped.last_sign_of_life(), Some(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_on_an_ended_body_runs_from_its_start() {
        let end = RequestEnd::new();
        drop(end.watch(crate::body::full("done")));
        tokio::time::advance(Duration::from_secs(5)).await;
        let start = Instant::now();
        fire_one_second(Some(&end), start).await;
        fire_one_second(None, start).await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }
}
