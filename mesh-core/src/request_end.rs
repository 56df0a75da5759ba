//! [`RequestEnd`]: when a request's body ended, for the timers Envoy starts only once the whole
//! downstream request has been received — the route timeout and the per-try timeout. A slow
//! upload under a short route timeout is not cut off for being slow to send.
//!
//! The [`TimeoutLayer`](crate::timeout::TimeoutLayer), given a request whose body is still
//! streaming, puts a `RequestEnd` on it (an extension). A layer below that holds the body —
//! the [`RetryLayer`](crate::retry::RetryLayer), through which every body it may replay passes,
//! and which makes a `RequestEnd` of its own for its per-try timeout when there is none —
//! [`watch`](RequestEnd::watch)es it, so that the body's end, its failure or its abandonment
//! starts the clock. When nothing below watches the body, the clock starts as the inner
//! service's `call` returns, as it does for a request whose body has already ended: a timer
//! never waits on a signal nobody will send.

use crate::{
    Body,
    watched_body::{BodyWatcher, WatchedBody},
};
use pin_project::pin_project;
use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::{Context, Poll, Waker},
    time::Duration,
};
use tokio::time::{Instant, Sleep};

/// When a request's body ended; see the [module docs](self). Clones share the one signal.
///
/// ```
/// use http_body_util::BodyExt;
/// use mesh_core::{body, request_end::RequestEnd};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let end = RequestEnd::new();
/// let upload = end.watch(body::full("the whole upload"));
/// assert!(end.is_watched() && end.ended_at().is_none());
/// upload.collect().await.unwrap();
/// assert_eq!(end.ended_at(), Some(tokio::time::Instant::now()));
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct RequestEnd {
    shared: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// A layer below has taken on telling the end.
    watched: bool,
    /// When the body ended.
    ended: Option<Instant>,
    /// The timers waiting for the end.
    waiting: Vec<Waker>,
}

impl RequestEnd {
    /// A signal not yet given, for a request whose body is streaming.
    pub fn new() -> Self {
        RequestEnd::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state whole; a panic elsewhere does not spoil it.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `body`, watched: its end, its failure or its being dropped before its end gives the
    /// signal. The caller takes on telling the end ([`is_watched`](Self::is_watched)).
    pub fn watch(&self, body: Body) -> Body {
        self.state().watched = true;
        crate::body::boxed(WatchedBody::new(body, Some(Ender(self.clone()))))
    }

    /// Whether a layer has taken on telling the end.
    pub fn is_watched(&self) -> bool {
        self.state().watched
    }

    /// Gives the signal, now, unless it was given before.
    pub fn end_now(&self) {
        let waiting = {
            let mut state = self.state();
            if state.ended.is_some() {
                return;
            }
            state.ended = Some(Instant::now());
            std::mem::take(&mut state.waiting)
        };
        waiting.into_iter().for_each(Waker::wake);
    }

    /// Whether the signal is to come: watched, and not given yet.
    fn is_pending(&self) -> bool {
        let state = self.state();
        state.watched && state.ended.is_none()
    }

    /// When the body ended, if it has.
    pub fn ended_at(&self) -> Option<Instant> {
        self.state().ended
    }

    /// When the body ended, once it has; until then, `cx` is woken at the end.
    pub fn poll_ended(&self, cx: &mut Context<'_>) -> Poll<Instant> {
        let mut state = self.state();
        if let Some(at) = state.ended {
            return Poll::Ready(at);
        }
        if !state.waiting.iter().any(|w| w.will_wake(cx.waker())) {
            state.waiting.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Gives a [`RequestEnd`]'s signal when the watched body ends, fails or is dropped.
struct Ender(RequestEnd);

impl BodyWatcher for Ender {
    fn error(&mut self) {
        self.0.end_now();
    }

    fn end(self) {
        self.0.end_now();
    }

    fn abandon(self) {
        self.0.end_now();
    }
}

/// A timer of `duration` that starts at the end of a request, or at once.
///
/// Its sleep is made when it starts: at once when `end` is `None`, unwatched or already given
/// (from now), else at the signal (from the moment the body ended). A timer that starts at
/// once is its sleep and a null pointer.
#[pin_project]
#[derive(Debug)]
pub(crate) struct TimerAfterEnd {
    #[pin]
    sleep: Option<Sleep>,
    /// Until the timer starts, when it waits for the end.
    pending: Option<Box<(RequestEnd, Duration)>>,
}

impl TimerAfterEnd {
    /// Starts `now`, or at `end` when it is still to come: watched and not given yet.
    #[inline]
    pub fn new(duration: Duration, end: Option<&RequestEnd>, now: Instant) -> Self {
        if let Some(end) = end
            && end.is_pending()
        {
            return TimerAfterEnd::waiting(end, duration);
        }
        TimerAfterEnd {
            sleep: Some(tokio::time::sleep_until(now + duration)),
            pending: None,
        }
    }

    /// A timer that starts at `end`: the rare case, kept out of line.
    #[cold]
    #[inline(never)]
    fn waiting(end: &RequestEnd, duration: Duration) -> Self {
        TimerAfterEnd {
            sleep: None,
            pending: Some(Box::new((end.clone(), duration))),
        }
    }

    /// Ready when the timer fires.
    #[inline]
    pub fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if let Some(pending) = this.pending.as_deref() {
            let (end, duration) = pending;
            let ended = std::task::ready!(end.poll_ended(cx));
            this.sleep
                .set(Some(tokio::time::sleep_until(ended + *duration)));
            *this.pending = None;
        }
        match this.sleep.as_pin_mut() {
            Some(sleep) => sleep.poll(cx),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::replay::tests::{channel, data};
    use http_body_util::BodyExt;
    use std::future::poll_fn;

    fn is_pending(timer: Pin<&mut TimerAfterEnd>) -> bool {
        let waker = std::task::Waker::noop();
        timer.poll(&mut Context::from_waker(waker)).is_pending()
    }

    #[tokio::test(start_paused = true)]
    async fn the_end_of_a_watched_body_starts_the_timer() {
        let end = RequestEnd::new();
        let (tx, upload) = channel();
        let mut upload = end.watch(upload);
        assert!(end.is_watched());
        let mut timer = std::pin::pin!(TimerAfterEnd::new(
            Duration::from_secs(1),
            Some(&end),
            Instant::now()
        ));
        let start = Instant::now();
        // The body takes 3 s, and the timer does not start before its end.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(is_pending(timer.as_mut()));
        tx.send(data("all")).unwrap();
        drop(tx);
        assert_eq!(
            upload.frame().await.unwrap().unwrap().into_data().unwrap(),
            "all"
        );
        assert!(upload.frame().await.is_none());
        assert_eq!(end.ended_at(), Some(start + Duration::from_secs(3)));
        poll_fn(|cx| timer.as_mut().poll(cx)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_waiting_for_the_end_is_woken_by_it() {
        let end = RequestEnd::new();
        let (tx, upload) = channel();
        let upload = end.watch(upload);
        let mut timer = std::pin::pin!(TimerAfterEnd::new(
            Duration::from_millis(500),
            Some(&end),
            Instant::now()
        ));
        let start = Instant::now();
        let reader = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            tx.send(data("late")).unwrap();
            drop(tx);
            upload.collect().await.unwrap();
        });
        poll_fn(|cx| timer.as_mut().poll(cx)).await;
        assert_eq!(start.elapsed(), Duration::from_millis(2500));
        reader.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_or_dropped_body_gives_the_signal_too() {
        let failed = RequestEnd::new();
        let (tx, upload) = channel();
        let mut upload = failed.watch(upload);
        tx.send(Err("reset".into())).unwrap();
        assert!(upload.frame().await.unwrap().is_err());
        assert!(failed.ended_at().is_some());

        let dropped = RequestEnd::new();
        let (_tx, upload) = channel();
        drop(dropped.watch(upload));
        assert!(dropped.ended_at().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_pending_end_the_timer_starts_at_once() {
        let start = Instant::now();
        let mut unwatched = std::pin::pin!(TimerAfterEnd::new(
            Duration::from_secs(1),
            None,
            Instant::now()
        ));
        poll_fn(|cx| unwatched.as_mut().poll(cx)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        // An end already given: from now, not from then.
        let end = RequestEnd::new();
        end.end_now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let mut after = std::pin::pin!(TimerAfterEnd::new(
            Duration::from_secs(1),
            Some(&end),
            Instant::now()
        ));
        poll_fn(|cx| after.as_mut().poll(cx)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(7));
    }
}
