//! [`TeeBody`]: the primary request body, streamed on unchanged while a copy (shared `Bytes`,
//! not copied) is kept up to a limit; when the body ends within the limit, the copy goes to a
//! callback — the shadow requests are sent then. Past the limit the copy is dropped.

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use mesh_core::{Body, BoxError};
use pin_project::pin_project;
use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

/// What happens to the copy once the body is over.
pub(crate) enum TeeOutcome {
    /// The whole body, within the limit.
    Complete(Bytes),
    /// The body outgrew the limit.
    TooLarge,
    /// The body failed, or was dropped before its end.
    Incomplete,
}

type OnEnd = Box<dyn FnOnce(TeeOutcome) + Send + Sync>;

/// The primary body with a bounded copy; see the [module docs](self).
#[pin_project(PinnedDrop)]
pub(crate) struct TeeBody {
    #[pin]
    inner: Body,
    chunks: Vec<Bytes>,
    size: usize,
    limit: usize,
    on_end: Option<OnEnd>,
}

impl TeeBody {
    pub(crate) fn new(inner: Body, limit: usize, on_end: OnEnd) -> Self {
        TeeBody {
            inner,
            chunks: Vec::new(),
            size: 0,
            limit,
            on_end: Some(on_end),
        }
    }
}

fn finish(on_end: &mut Option<OnEnd>, outcome: impl FnOnce() -> TeeOutcome) {
    if let Some(on_end) = on_end.take() {
        on_end(outcome());
    }
}

/// Hands the whole copy over (once).
fn complete(on_end: &mut Option<OnEnd>, chunks: &mut Vec<Bytes>) {
    finish(on_end, || TeeOutcome::Complete(concat(chunks)));
}

fn concat(chunks: &mut Vec<Bytes>) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut all = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
            chunks.drain(..).for_each(|c| all.extend_from_slice(&c));
            all.freeze()
        }
    }
}

impl HttpBody for TeeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let polled = ready!(this.inner.as_mut().poll_frame(cx));
        match &polled {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref()
                    && this.on_end.is_some()
                {
                    *this.size += data.len();
                    if *this.size > *this.limit {
                        this.chunks.clear();
                        finish(this.on_end, || TeeOutcome::TooLarge);
                    } else {
                        this.chunks.push(data.clone());
                    }
                }
                // A body that knows it is over (Content-Length, END_STREAM) may never be polled
                // again — a retry layer keeps it until the response: the copy is whole now.
                if this.inner.is_end_stream() {
                    complete(this.on_end, this.chunks);
                }
            }
            Some(Err(_)) => finish(this.on_end, || TeeOutcome::Incomplete),
            None => complete(this.on_end, this.chunks),
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[pin_project::pinned_drop]
impl PinnedDrop for TeeBody {
    fn drop(self: Pin<&mut Self>) {
        // A body read to its end has handed its copy over with its last frame; one dropped
        // before that was abandoned.
        finish(self.project().on_end, || TeeOutcome::Incomplete);
    }
}

/// A body yielding `chunks` one frame each, with no size hint (for tests).
#[cfg(test)]
pub(crate) fn chunked(chunks: &[&'static str]) -> Body {
    struct Chunks(std::collections::VecDeque<&'static str>);
    impl HttpBody for Chunks {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(
                self.0
                    .pop_front()
                    .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes())))),
            )
        }
    }
    mesh_core::body::boxed(Chunks(chunks.iter().copied().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::{Arc, Mutex};

    fn tee(body: Body, limit: usize) -> (TeeBody, Arc<Mutex<Option<String>>>) {
        let seen = Arc::new(Mutex::new(None));
        let record = seen.clone();
        let tee = TeeBody::new(
            body,
            limit,
            Box::new(move |outcome| {
                *record.lock().unwrap() = Some(match outcome {
                    TeeOutcome::Complete(bytes) => String::from_utf8(bytes.to_vec()).unwrap(),
                    TeeOutcome::TooLarge => "too large".into(),
                    TeeOutcome::Incomplete => "incomplete".into(),
                });
            }),
        );
        (tee, seen)
    }

    #[tokio::test]
    async fn primary_gets_every_byte_and_the_copy_is_whole_within_the_limit() {
        let (body, seen) = tee(chunked(&["ab", "cd", "e"]), 5);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abcde");
        assert_eq!(seen.lock().unwrap().as_deref(), Some("abcde"));
    }

    #[tokio::test]
    async fn past_the_limit_the_copy_is_dropped_not_the_body() {
        let (body, seen) = tee(chunked(&["ab", "cd", "e"]), 4);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abcde");
        assert_eq!(seen.lock().unwrap().as_deref(), Some("too large"));
    }

    #[tokio::test]
    async fn a_body_that_knows_its_end_sends_the_copy_with_its_last_frame() {
        let (mut body, seen) = tee(mesh_core::body::full("order"), 10);
        body.frame().await.unwrap().unwrap();
        // Not polled again, not dropped (a retry layer may hold it until the response).
        assert_eq!(seen.lock().unwrap().as_deref(), Some("order"));
        drop(body);
        assert_eq!(seen.lock().unwrap().as_deref(), Some("order"));
    }

    #[tokio::test]
    async fn a_body_dropped_midway_sends_no_copy() {
        let (mut body, seen) = tee(chunked(&["ab", "cd"]), 10);
        body.frame().await.unwrap().unwrap();
        drop(body);
        assert_eq!(seen.lock().unwrap().as_deref(), Some("incomplete"));
    }
}
