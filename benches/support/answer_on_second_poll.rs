//! Shared bench fixture: a client's answer on the second poll of its future. The first poll
//! finds no response yet (and wakes the task at once), as a real client's does while its
//! request is on the wire, so the layers above do what they do for a request that waits: a
//! timer armed, the task's waker kept, each layer's future polled again when the answer comes.
//! Over a client answering on the first poll they do none of it, and the network group's
//! figure is too noisy to show what it costs.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

/// `S`'s answers, each on its future's second poll.
#[derive(Clone, Copy, Debug)]
pub struct AnswerOnSecondPoll<S>(pub S);

impl<S, R> tower::Service<R> for AnswerOnSecondPoll<S>
where
    S: tower::Service<R>,
    S::Future: Unpin,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = SecondPoll<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        SecondPoll {
            answer: self.0.call(request),
            polled: false,
        }
    }
}

/// A future that is pending on its first poll, then `answer`'s.
pub struct SecondPoll<F> {
    answer: F,
    polled: bool,
}

impl<F: Future + Unpin> Future for SecondPoll<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if !self.polled {
            self.polled = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Pin::new(&mut self.answer).poll(cx)
    }
}
