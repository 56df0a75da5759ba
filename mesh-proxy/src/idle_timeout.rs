//! [`IdleTimeout`]: a downstream connection that ends when no byte has moved either way for a
//! while — Envoy's connection `idle_timeout` (1 h by default, for HTTP connections and TCP
//! tunnels alike), so a client that goes silent cannot hold a connection and its task forever.
//!
//! The timer is not reset on every read or write (nor is the clock read): activity only sets a
//! flag, and the timer, when it fires, starts over if the flag is set, or ends the connection if
//! not. A connection therefore ends between one and two timeouts after its last byte.

use pin_project::pin_project;
use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

/// `inner`, failing with [`io::ErrorKind::TimedOut`] once idle for `timeout`; see the
/// [module docs](self).
///
/// Read it and write it from one task (as hyper and [`tokio::io::copy_bidirectional`] do): its
/// one timer wakes only the task that last polled it pending, so halves split across tasks could
/// miss the timeout on one side.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
/// use mesh_proxy::idle_timeout::IdleTimeout;
/// use std::time::Duration;
/// use tokio::io::AsyncReadExt;
///
/// let (client, _server) = tokio::io::duplex(64);
/// let mut idle = IdleTimeout::new(client, Duration::from_secs(60));
/// let error = idle.read(&mut [0; 8]).await.unwrap_err();
/// assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
/// # });
/// ```
#[pin_project]
#[derive(Debug)]
pub struct IdleTimeout<S> {
    #[pin]
    inner: S,
    timeout: Duration,
    /// Whether a byte moved since the timer last fired.
    active: bool,
    /// Boxed, so the stream is `Unpin` when `inner` is (one allocation per connection).
    timer: Pin<Box<Sleep>>,
}

impl<S> IdleTimeout<S> {
    /// `inner`, ended after `timeout` without traffic.
    ///
    /// Traffic keeps the connection open:
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
    /// use mesh_proxy::idle_timeout::IdleTimeout;
    /// use std::time::Duration;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// let (client, mut server) = tokio::io::duplex(64);
    /// let mut idle = IdleTimeout::new(client, Duration::from_secs(60));
    /// server.write_all(b"ping").await.unwrap();
    /// let mut buf = [0; 4];
    /// idle.read_exact(&mut buf).await.unwrap();
    /// assert_eq!(&buf, b"ping");
    /// # });
    /// ```
    pub fn new(inner: S, timeout: Duration) -> Self {
        IdleTimeout {
            inner,
            timeout,
            active: false,
            timer: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl<S> IdleTimeout<S> {
    /// Polls the inner stream with `operation`: a ready result is activity; a pending one
    /// leaves it to the timer (see [`poll_idle`](Self::poll_idle)).
    fn observe<T>(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        operation: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let this = self.as_mut().project();
        match operation(this.inner, cx) {
            Poll::Ready(result) => {
                *this.active = true;
                Poll::Ready(result)
            }
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }

    /// With the inner side pending: `Ready(error)` when no byte moved during a whole timeout,
    /// else `Pending` (the timer started over if it fired).
    fn poll_idle(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Error> {
        let this = self.project();
        loop {
            ready!(this.timer.as_mut().poll(cx));
            if !*this.active {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle timeout",
                ));
            }
            *this.active = false;
            this.timer.as_mut().reset(Instant::now() + *this.timeout);
        }
    }
}

impl<S: AsyncRead> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.observe(cx, |inner, cx| inner.poll_read(cx, buf))
    }
}

impl<S: AsyncWrite> AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.observe(cx, |inner, cx| inner.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.observe(cx, |inner, cx| inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn traffic_keeps_the_connection_and_silence_ends_it() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut idle = IdleTimeout::new(client, Duration::from_secs(10));
        let started = Instant::now();
        // A byte every 6 s: never 10 s of silence, so 30 s pass without a timeout.
        let writer = tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(6)).await;
                server.write_all(b"x").await.unwrap();
            }
            server
        });
        let mut byte = [0u8; 1];
        for _ in 0..5 {
            idle.read_exact(&mut byte).await.unwrap();
        }
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        let _server = writer.await.unwrap();
        // Then silence: the read fails 10 to 20 s after the last byte.
        let error = idle.read(&mut byte).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        let elapsed = started.elapsed();
        assert!(
            (Duration::from_secs(40)..=Duration::from_secs(50)).contains(&elapsed),
            "{elapsed:?}"
        );
    }
}
