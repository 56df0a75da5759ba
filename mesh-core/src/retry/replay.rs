//! Replaying a request body for retries: [`ReplayBuffer`] and the [`ReplayBody`] each attempt
//! sends.
//!
//! The first attempt streams the original body as it arrives — it is never buffered whole
//! before sending — while every chunk (and the trailers) is also kept in a shared buffer, up to
//! a byte limit. A retry's body first replays the buffer, then goes on reading the original
//! body where the earlier attempts stopped. Chunks are [`Bytes`], so keeping and replaying
//! them copies nothing.
//!
//! When the body outgrows the limit, the buffer is dropped: the attempt in flight keeps
//! streaming, but the request can no longer be retried ([`ReplayBuffer::body`] returns
//! `None`). While a retry waits out its back-off, the retry layer keeps reading the original
//! body into the buffer ([`ReplayBuffer::poll_read_ahead`]); crossing the limit then is
//! Envoy's 507 case.
//!
//! Each new body supersedes the earlier ones: an abandoned attempt's body fails with
//! [`ReplayError::Superseded`] if its connection still polls it, so only one attempt reads the
//! original body at a time.

use crate::{Body, BoxError};
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use std::{
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::{Context, Poll},
};

/// Why a [`ReplayBody`] or a read-ahead cannot go on.
///
/// An abandoned attempt's body fails once a retry takes over:
///
/// ```
/// use http_body_util::BodyExt;
/// use mesh_core::{body, retry::{ReplayBuffer, ReplayError}};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let buffer = ReplayBuffer::new(body::full("hello"), 1024);
/// let first = buffer.body().unwrap();
/// let retry = buffer.body().unwrap();
/// let error = first.collect().await.unwrap_err();
/// assert!(matches!(error.downcast_ref::<ReplayError>(), Some(ReplayError::Superseded)));
/// assert_eq!(retry.collect().await.unwrap().to_bytes(), "hello");
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The body outgrew the replay buffer, which was dropped.
    #[error("request body exceeded the retry buffer limit")]
    Capped,
    /// A later attempt took over the body; this attempt was abandoned.
    #[error("request body was handed to a retry")]
    Superseded,
    /// Reading the original body failed earlier (that error went to the attempt reading it).
    #[error("request body failed")]
    Failed,
    /// Reading the original body failed now.
    #[error("request body failed: {0}")]
    Body(#[source] BoxError),
}

/// The shared state behind one request's bodies; see the [module docs](self).
///
/// ```
/// use http_body_util::BodyExt;
/// use mesh_core::{body, retry::ReplayBuffer};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let buffer = ReplayBuffer::new(body::full("hello"), 1024);
/// let first = buffer.body().unwrap().collect().await.unwrap().to_bytes();
/// let retry = buffer.body().unwrap().collect().await.unwrap().to_bytes();
/// assert_eq!((&first[..], &retry[..]), (&b"hello"[..], &b"hello"[..]));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct ReplayBuffer {
    shared: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    /// The original body; `None` once it has ended or failed.
    original: Option<Body>,
    /// Every chunk read from the original so far (emptied once capped).
    chunks: Vec<Bytes>,
    /// How many chunks were read from the original (`chunks.len()` unless capped).
    read: usize,
    /// Bytes kept in `chunks`.
    buffered: usize,
    /// The original's trailers, once read (unless capped).
    trailers: Option<HeaderMap>,
    /// The byte limit of the buffer.
    limit: usize,
    /// The buffer was dropped for outgrowing `limit`.
    capped: bool,
    /// Reading the original failed.
    failed: bool,
    /// The generation of the newest body; older ones are superseded.
    generation: u64,
}

impl ReplayBuffer {
    /// Wraps `body`, keeping at most `limit` bytes of it for replay.
    ///
    /// A body whose size hint already exceeds `limit` starts out capped: its first body
    /// streams, and there is none after it.
    ///
    /// ```
    /// use mesh_core::{body, retry::ReplayBuffer};
    /// let fits = ReplayBuffer::new(body::full("hello"), 5);
    /// assert!(!fits.is_capped());
    /// let too_big = ReplayBuffer::new(body::full("hello!"), 5);
    /// assert!(too_big.is_capped());
    /// assert!(too_big.body().is_some(), "the first body is always given");
    /// assert!(too_big.body().is_none());
    /// ```
    pub fn new(body: Body, limit: usize) -> Self {
        let capped = http_body::Body::size_hint(&body).lower() > limit as u64;
        ReplayBuffer {
            shared: Arc::new(Mutex::new(State {
                original: Some(body),
                chunks: Vec::new(),
                read: 0,
                buffered: 0,
                trailers: None,
                limit,
                capped,
                failed: false,
                generation: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.shared)
    }

    /// A body for the next attempt: the buffer, then the rest of the original. It supersedes
    /// every earlier body. `None` when the request cannot be replayed (the buffer was capped,
    /// or reading the original failed) — except for the very first body, which is always given.
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use mesh_core::{body, retry::ReplayBuffer};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let buffer = ReplayBuffer::new(body::full("payload"), 1024);
    /// buffer.body().unwrap().collect().await.unwrap(); // the first attempt reads it all
    /// let retry = buffer.body().unwrap().collect().await.unwrap().to_bytes();
    /// assert_eq!(retry, "payload");
    /// # }
    /// ```
    pub fn body(&self) -> Option<ReplayBody> {
        let mut state = self.lock();
        let first = state.generation == 0;
        if !first && (state.capped || state.failed) {
            return None;
        }
        state.generation += 1;
        Some(ReplayBody {
            shared: self.shared.clone(),
            generation: state.generation,
            position: 0,
            trailers_sent: false,
        })
    }

    /// Whether the buffer outgrew its limit (so no further body can be made).
    ///
    /// A body of unknown length is capped as it is read past the limit:
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use mesh_core::{body, retry::ReplayBuffer};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// // `map_frame` hides the length: the buffer cannot tell up front.
    /// let streamed = body::boxed(body::full("0123456789").map_frame(|frame| frame));
    /// let buffer = ReplayBuffer::new(streamed, 4);
    /// assert!(!buffer.is_capped());
    /// buffer.body().unwrap().collect().await.unwrap();
    /// assert!(buffer.is_capped());
    /// # }
    /// ```
    pub fn is_capped(&self) -> bool {
        self.lock().capped
    }

    /// Whether [`body`](Self::body) can make another body: not capped, and the original has
    /// not failed.
    ///
    /// ```
    /// use mesh_core::{body, retry::ReplayBuffer};
    /// assert!(ReplayBuffer::new(body::full("abc"), 16).is_replayable());
    /// assert!(!ReplayBuffer::new(body::full("abc"), 2).is_replayable());
    /// ```
    pub fn is_replayable(&self) -> bool {
        let state = self.lock();
        !state.capped && !state.failed
    }

    /// Reads the original body into the buffer while no attempt is in flight (during a
    /// back-off). Ready with `Ok` once the original has ended, with
    /// [`ReplayError::Capped`] if the buffer outgrew its limit (now or earlier), with
    /// [`ReplayError::Body`] or [`ReplayError::Failed`] if reading failed; pending while the
    /// original has nothing more yet.
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use mesh_core::{body, retry::{ReplayBuffer, ReplayError}};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let buffer = ReplayBuffer::new(body::full("ahead"), 1024);
    /// let _first = buffer.body().unwrap(); // sent by an attempt that failed without reading it
    /// std::future::poll_fn(|cx| buffer.poll_read_ahead(cx)).await.unwrap();
    /// assert_eq!(buffer.body().unwrap().collect().await.unwrap().to_bytes(), "ahead");
    /// let capped = ReplayBuffer::new(body::full("ahead"), 1);
    /// let result = std::future::poll_fn(|cx| capped.poll_read_ahead(cx)).await;
    /// assert!(matches!(result, Err(ReplayError::Capped)));
    /// # }
    /// ```
    pub fn poll_read_ahead(&self, cx: &mut Context<'_>) -> Poll<Result<(), ReplayError>> {
        let mut state = self.lock();
        loop {
            if state.capped {
                return Poll::Ready(Err(ReplayError::Capped));
            }
            if state.failed {
                return Poll::Ready(Err(ReplayError::Failed));
            }
            match state.poll_original(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(ReplayError::Body(error))),
                Poll::Ready(Some(Ok(_))) => {}
            }
        }
    }
}

fn lock(shared: &Mutex<State>) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    /// Reads the next frame of the original, keeping a copy while under the limit.
    fn poll_original(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(original) = self.original.as_mut() else {
            return Poll::Ready(None);
        };
        if http_body::Body::is_end_stream(original) {
            self.original = None;
            return Poll::Ready(None);
        }
        let frame = match http_body::Body::poll_frame(Pin::new(original), cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {
                self.original = None;
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(error))) => {
                self.original = None;
                self.failed = true;
                self.chunks = Vec::new();
                return Poll::Ready(Some(Err(error)));
            }
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        if let Some(data) = frame.data_ref() {
            self.read += 1;
            if !self.capped {
                self.buffered = self.buffered.saturating_add(data.len());
                if self.buffered > self.limit {
                    self.capped = true;
                    self.chunks = Vec::new();
                    self.trailers = None;
                } else {
                    self.chunks.push(data.clone());
                }
            }
        } else if let Some(trailers) = frame.trailers_ref()
            && !self.capped
        {
            self.trailers = Some(trailers.clone());
        }
        Poll::Ready(Some(Ok(frame)))
    }

    /// Whether nothing more is left of the original.
    fn original_ended(&self) -> bool {
        self.original
            .as_ref()
            .is_none_or(http_body::Body::is_end_stream)
    }
}

/// The body one attempt sends: the buffered chunks, then the rest of the original.
///
/// ```
/// use http_body::Body as _;
/// use http_body_util::BodyExt;
/// use mesh_core::{body, retry::ReplayBuffer};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let buffer = ReplayBuffer::new(body::full("abc"), 1024);
/// let first = buffer.body().unwrap();
/// assert_eq!(first.size_hint().exact(), Some(3));
/// assert_eq!(first.collect().await.unwrap().to_bytes(), "abc");
/// assert!(buffer.body().unwrap().size_hint().exact() == Some(3), "replayed from the buffer");
/// # }
/// ```
#[derive(Debug)]
pub struct ReplayBody {
    shared: Arc<Mutex<State>>,
    generation: u64,
    /// How many of the original's chunks this body has yielded.
    position: usize,
    /// Whether this body has yielded the trailers.
    trailers_sent: bool,
}

impl http_body::Body for ReplayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let mut state = lock(&this.shared);
        if state.generation != this.generation {
            return Poll::Ready(Some(Err(ReplayError::Superseded.into())));
        }
        if this.position < state.read {
            // Replay what an earlier attempt (or the read-ahead) already took from the original.
            if state.capped {
                return Poll::Ready(Some(Err(ReplayError::Capped.into())));
            }
            if state.failed {
                return Poll::Ready(Some(Err(ReplayError::Failed.into())));
            }
            let chunk = state.chunks[this.position].clone();
            this.position += 1;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if state.failed {
            return Poll::Ready(Some(Err(ReplayError::Failed.into())));
        }
        if state.original.is_none() {
            // The original has ended: replay its trailers, if any, once.
            if this.trailers_sent {
                return Poll::Ready(None);
            }
            this.trailers_sent = true;
            return Poll::Ready(state.trailers.clone().map(|t| Ok(Frame::trailers(t))));
        }
        match state.poll_original(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if frame.is_data() {
                    this.position += 1;
                } else {
                    this.trailers_sent = true;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.trailers_sent = true;
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        let state = lock(&self.shared);
        state.generation == self.generation
            && self.position >= state.read
            && !state.failed
            && state.original_ended()
            && (self.trailers_sent || state.trailers.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        let state = lock(&self.shared);
        if state.generation != self.generation || state.capped && self.position < state.read {
            return SizeHint::default();
        }
        let replay: u64 = state
            .chunks
            .get(self.position..)
            .unwrap_or_default()
            .iter()
            .map(|c| c.len() as u64)
            .sum();
        match &state.original {
            None => SizeHint::with_exact(replay),
            Some(original) => {
                let rest = original.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(replay.saturating_add(rest.lower()));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(replay.saturating_add(upper));
                }
                hint
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::body;
    use http_body::Body as _;
    use http_body_util::BodyExt;
    use std::future::poll_fn;
    use tokio::sync::mpsc;

    /// Sends the frames of a [`channel`] body.
    pub(crate) type Sender = mpsc::UnboundedSender<Result<Frame<Bytes>, BoxError>>;

    /// A streaming body fed through a channel, as a client upload arrives.
    pub(crate) fn channel() -> (Sender, Body) {
        struct Channel(mpsc::UnboundedReceiver<Result<Frame<Bytes>, BoxError>>);
        impl http_body::Body for Channel {
            type Data = Bytes;
            type Error = BoxError;
            fn poll_frame(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
                self.0.poll_recv(cx)
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, body::boxed(Channel(rx)))
    }

    pub(crate) fn data(text: &'static str) -> Result<Frame<Bytes>, BoxError> {
        Ok(Frame::data(Bytes::from_static(text.as_bytes())))
    }

    async fn next_data(body: &mut ReplayBody) -> Option<Bytes> {
        let frame = body.frame().await?.unwrap();
        Some(frame.into_data().unwrap())
    }

    #[tokio::test]
    async fn replays_buffer_then_continues_the_original() {
        let (tx, original) = channel();
        let buffer = ReplayBuffer::new(original, 1024);
        let mut first = buffer.body().unwrap();
        tx.send(data("ab")).unwrap();
        tx.send(data("cd")).unwrap();
        assert_eq!(next_data(&mut first).await.unwrap(), "ab");
        // The first attempt fails after one chunk; the retry replays it, then reads on.
        let mut second = buffer.body().unwrap();
        assert_eq!(next_data(&mut second).await.unwrap(), "ab");
        assert_eq!(next_data(&mut second).await.unwrap(), "cd");
        // The abandoned attempt cannot read on.
        let error = first.frame().await.unwrap().unwrap_err();
        assert!(matches!(
            error.downcast_ref(),
            Some(ReplayError::Superseded)
        ));
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        tx.send(Ok(Frame::trailers(trailers.clone()))).unwrap();
        drop(tx);
        let frame = second.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_trailers().unwrap(), trailers);
        assert!(second.frame().await.is_none());
        assert!(second.is_end_stream());
        // A third attempt replays everything, trailers included, with an exact size.
        let third = buffer.body().unwrap();
        assert_eq!(third.size_hint().exact(), Some(4));
        let collected = third.collect().await.unwrap();
        assert_eq!(collected.trailers(), Some(&trailers));
        assert_eq!(collected.to_bytes(), "abcd");
    }

    #[tokio::test]
    async fn past_the_limit_the_live_body_streams_on_but_none_follows() {
        let (tx, original) = channel();
        let buffer = ReplayBuffer::new(original, 4);
        let mut first = buffer.body().unwrap();
        for chunk in ["abc", "def", "ghi"] {
            tx.send(data(chunk)).unwrap();
        }
        drop(tx);
        assert_eq!(next_data(&mut first).await.unwrap(), "abc");
        assert!(!buffer.is_capped());
        assert_eq!(next_data(&mut first).await.unwrap(), "def");
        assert!(buffer.is_capped());
        assert_eq!(next_data(&mut first).await.unwrap(), "ghi");
        assert!(first.frame().await.is_none());
        assert!(buffer.body().is_none());
    }

    #[tokio::test]
    async fn exactly_the_limit_is_kept() {
        let buffer = ReplayBuffer::new(body::full("abcd"), 4);
        let first = buffer.body().unwrap().collect().await.unwrap().to_bytes();
        let second = buffer.body().unwrap().collect().await.unwrap().to_bytes();
        assert_eq!((first, second), (Bytes::from("abcd"), Bytes::from("abcd")));
        // A known-larger body is capped from the start, yet its first body streams whole.
        let buffer = ReplayBuffer::new(body::full("abcde"), 4);
        assert!(buffer.is_capped());
        let first = buffer.body().unwrap().collect().await.unwrap().to_bytes();
        assert_eq!(first, "abcde");
        assert!(buffer.body().is_none());
    }

    #[tokio::test]
    async fn read_ahead_buffers_until_end_or_limit() {
        let (tx, original) = channel();
        let buffer = ReplayBuffer::new(original, 8);
        drop(buffer.body());
        tx.send(data("1234")).unwrap();
        let pending = poll_fn(|cx| Poll::Ready(buffer.poll_read_ahead(cx))).await;
        assert!(pending.is_pending());
        tx.send(data("5678")).unwrap();
        drop(tx);
        poll_fn(|cx| buffer.poll_read_ahead(cx)).await.unwrap();
        let replay = buffer.body().unwrap().collect().await.unwrap().to_bytes();
        assert_eq!(replay, "12345678");

        let (tx, original) = channel();
        let buffer = ReplayBuffer::new(original, 8);
        drop(buffer.body());
        tx.send(data("12345")).unwrap();
        tx.send(data("6789")).unwrap();
        let result = poll_fn(|cx| buffer.poll_read_ahead(cx)).await;
        assert!(matches!(result, Err(ReplayError::Capped)));
        assert!(buffer.body().is_none());
    }

    #[tokio::test]
    async fn original_error_reaches_the_reader_and_stops_replays() {
        let (tx, original) = channel();
        let buffer = ReplayBuffer::new(original, 64);
        let mut first = buffer.body().unwrap();
        tx.send(Err("client went away".into())).unwrap();
        let error = first.frame().await.unwrap().unwrap_err();
        assert_eq!(error.to_string(), "client went away");
        assert!(buffer.body().is_none());
    }
}
