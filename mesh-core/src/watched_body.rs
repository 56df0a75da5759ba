//! [`WatchedBody`]: a body that tells a [`BodyWatcher`] what passes through it and how it
//! ends, for the layers that report an exchange only once its response body is over
//! (telemetry, spans), and for counting a streamed request body
//! ([`body_count`](crate::body_count)).
//!
//! A body ends with its last frame, at an error, with its trailers (a body's last frame), or
//! when it says it has ended ([`ended_with`](crate::body::ended_with)) — a server may drop such
//! a body without polling it again, so the watcher hears of the end then. A body dropped
//! before its end was abandoned (the client went away): the watcher hears that instead.

use crate::{
    BoxError,
    body::{self, Body, IntoBody},
};
use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project::pin_project;
use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

/// What a [`WatchedBody`] tells of its body; each body has one watcher, told of the end or
/// the abandonment exactly once.
///
/// ```
/// use http_body_util::BodyExt;
/// use mesh_core::{body, watched_body::{BodyWatcher, WatchedBody}};
/// use std::sync::{Arc, atomic::{AtomicU64, Ordering::Relaxed}};
/// /// Counts a body's bytes into a shared total at its end, whole or not.
/// struct Total { bytes: u64, into: Arc<AtomicU64> }
/// impl BodyWatcher for Total {
///     fn data(&mut self, bytes: u64) { self.bytes += bytes }
///     fn end(self) { self.into.fetch_add(self.bytes, Relaxed); }
///     fn abandon(self) { self.into.fetch_add(self.bytes, Relaxed); }
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let total = Arc::new(AtomicU64::new(0));
/// for text in ["one", "three"] {
///     let watcher = Total { bytes: 0, into: total.clone() };
///     WatchedBody::new(body::full(text), Some(watcher)).collect().await.unwrap();
/// }
/// assert_eq!(total.load(Relaxed), 8);
/// # }
/// ```
pub trait BodyWatcher {
    /// A data frame of `bytes` bytes went through.
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use mesh_core::watched_body::{BodyWatcher, WatchedBody};
    /// use std::sync::{Arc, Mutex};
    /// struct Log(Arc<Mutex<Vec<String>>>);
    /// impl BodyWatcher for Log {
    ///     fn data(&mut self, bytes: u64) { self.0.lock().unwrap().push(format!("{bytes} bytes")) }
    ///     fn end(self) { self.0.lock().unwrap().push("end".into()) }
    ///     fn abandon(self) { self.0.lock().unwrap().push("abandoned".into()) }
    /// }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let heard = Arc::new(Mutex::new(Vec::new()));
    /// let body = WatchedBody::new(mesh_core::body::full("twelve bytes"), Some(Log(heard.clone())));
    /// body.collect().await.unwrap();
    /// assert_eq!(*heard.lock().unwrap(), ["12 bytes", "end"]);
    /// # }
    /// ```
    fn data(&mut self, bytes: u64) {
        let _ = bytes;
    }

    /// The trailers went through.
    ///
    /// ```
    /// use http_body_util::{BodyExt, Full};
    /// use mesh_core::watched_body::{BodyWatcher, WatchedBody};
    /// use std::sync::{Arc, Mutex};
    /// struct Log(Arc<Mutex<Vec<String>>>);
    /// impl BodyWatcher for Log {
    ///     fn trailers(&mut self, t: &http::HeaderMap) { self.0.lock().unwrap().push(format!("grpc-status {:?}", t["grpc-status"])) }
    ///     fn end(self) { self.0.lock().unwrap().push("end".into()) }
    ///     fn abandon(self) { self.0.lock().unwrap().push("abandoned".into()) }
    /// }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let heard = Arc::new(Mutex::new(Vec::new()));
    /// let mut trailers = http::HeaderMap::new();
    /// trailers.insert("grpc-status", http::HeaderValue::from_static("5"));
    /// let grpc = Full::new(bytes::Bytes::new()).with_trailers(async { Some(Ok(trailers)) });
    /// WatchedBody::new(grpc, Some(Log(heard.clone()))).collect().await.unwrap();
    /// assert_eq!(*heard.lock().unwrap(), [r#"grpc-status "5""#, "end"]);
    /// # }
    /// ```
    fn trailers(&mut self, trailers: &HeaderMap) {
        let _ = trailers;
    }

    /// The body failed (it ends with that).
    ///
    /// ```
    /// use http_body::{Body, Frame};
    /// use http_body_util::BodyExt;
    /// use std::{pin::Pin, task::{Context, Poll}};
    /// use mesh_core::watched_body::{BodyWatcher, WatchedBody};
    /// use std::sync::{Arc, Mutex};
    /// struct Log(Arc<Mutex<Vec<String>>>);
    /// impl BodyWatcher for Log {
    ///     fn error(&mut self) { self.0.lock().unwrap().push("error".into()) }
    ///     fn end(self) { self.0.lock().unwrap().push("end".into()) }
    ///     fn abandon(self) { self.0.lock().unwrap().push("abandoned".into()) }
    /// }
    /// /// A body whose connection was reset.
    /// struct Reset;
    /// impl Body for Reset {
    ///     type Data = bytes::Bytes;
    ///     type Error = std::io::Error;
    ///     fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<bytes::Bytes>, std::io::Error>>> {
    ///         Poll::Ready(Some(Err(std::io::Error::other("reset"))))
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let heard = Arc::new(Mutex::new(Vec::new()));
    /// assert!(WatchedBody::new(Reset, Some(Log(heard.clone()))).collect().await.is_err());
    /// assert_eq!(*heard.lock().unwrap(), ["error", "end"]);
    /// # }
    /// ```
    fn error(&mut self) {}

    /// The body has ended.
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use mesh_core::watched_body::{BodyWatcher, WatchedBody};
    /// use std::sync::{Arc, Mutex};
    /// struct Log(Arc<Mutex<Vec<String>>>);
    /// impl BodyWatcher for Log {
    ///     fn end(self) { self.0.lock().unwrap().push("end".into()) }
    ///     fn abandon(self) { self.0.lock().unwrap().push("abandoned".into()) }
    /// }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let heard = Arc::new(Mutex::new(Vec::new()));
    /// WatchedBody::new(mesh_core::body::full("all"), Some(Log(heard.clone()))).collect().await.unwrap();
    /// assert_eq!(*heard.lock().unwrap(), ["end"]);
    /// # }
    /// ```
    fn end(self);

    /// The body was dropped before its end.
    ///
    /// ```
    /// use mesh_core::watched_body::{BodyWatcher, WatchedBody};
    /// use std::sync::{Arc, Mutex};
    /// struct Log(Arc<Mutex<Vec<String>>>);
    /// impl BodyWatcher for Log {
    ///     fn end(self) { self.0.lock().unwrap().push("end".into()) }
    ///     fn abandon(self) { self.0.lock().unwrap().push("abandoned".into()) }
    /// }
    /// let heard = Arc::new(Mutex::new(Vec::new()));
    /// drop(WatchedBody::new(mesh_core::body::full("unread"), Some(Log(heard.clone()))));
    /// assert_eq!(*heard.lock().unwrap(), ["abandoned"]);
    /// ```
    fn abandon(self);
}

/// A body whose frames and end a [`BodyWatcher`] hears of; see the [module docs](self).
///
/// ```
/// use http_body_util::{BodyExt, Full};
/// use mesh_core::watched_body::{BodyWatcher, WatchedBody};
/// use std::sync::{Arc, Mutex};
///
/// struct Log(Arc<Mutex<Vec<String>>>);
/// impl BodyWatcher for Log {
///     fn data(&mut self, bytes: u64) { self.0.lock().unwrap().push(format!("{bytes} bytes")) }
///     fn end(self) { self.0.lock().unwrap().push("end".into()) }
///     fn abandon(self) { self.0.lock().unwrap().push("abandoned".into()) }
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let heard = Arc::new(Mutex::new(Vec::new()));
/// let body = WatchedBody::new(Full::new(bytes::Bytes::from("hello")), Some(Log(heard.clone())));
/// body.collect().await.unwrap();
/// assert_eq!(*heard.lock().unwrap(), ["5 bytes", "end"]);
/// # }
/// ```
#[pin_project]
#[derive(Debug)]
pub struct WatchedBody<B, W: BodyWatcher> {
    /// Until the end (or the abandonment) is told. Declared first, so that a body dropped
    /// before its end tells its watcher before its inner body goes.
    watcher: Untold<W>,
    #[pin]
    inner: B,
}

impl<B, W: BodyWatcher> WatchedBody<B, W> {
    /// `inner`, watched by `watcher` (`None`: by nobody).
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use mesh_core::watched_body::{BodyWatcher, WatchedBody};
    /// use std::sync::{Arc, Mutex};
    /// struct Log(Arc<Mutex<Vec<String>>>);
    /// impl BodyWatcher for Log {
    ///     fn end(self) { self.0.lock().unwrap().push("end".into()) }
    ///     fn abandon(self) { self.0.lock().unwrap().push("abandoned".into()) }
    /// }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let unwatched = WatchedBody::<_, Log>::new(mesh_core::body::full("as it is"), None);
    /// assert_eq!(unwatched.collect().await.unwrap().to_bytes(), "as it is");
    /// # }
    /// ```
    pub fn new(inner: B, watcher: Option<W>) -> Self {
        WatchedBody {
            watcher: Untold(watcher),
            inner,
        }
    }
}

/// A watcher not yet told of the end: dropped so, it is told of the abandonment. Kept in a
/// field of its own, rather than in a `Drop` of the [`WatchedBody`], so that a body whose
/// watcher is gone can be taken apart ([`IntoBody`]).
#[derive(Debug)]
struct Untold<W: BodyWatcher>(Option<W>);

impl<W: BodyWatcher> Drop for Untold<W> {
    fn drop(&mut self) {
        if let Some(watcher) = self.0.take() {
            watcher.abandon();
        }
    }
}

/// A watched body becomes a [`Body`] as its inner body does once no watcher is left to tell
/// (a bodiless response's was told of the end when it arrived): no box is made around a body
/// that nothing watches any more. One still watched is boxed whole.
///
/// ```
/// use http_body_util::BodyExt;
/// use mesh_core::{body::{self, IntoBody}, watched_body::{BodyWatcher, WatchedBody}};
/// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
///
/// struct Bytes(Arc<AtomicU64>);
/// impl BodyWatcher for Bytes {
///     fn data(&mut self, bytes: u64) { self.0.fetch_add(bytes, Ordering::Relaxed); }
///     fn end(self) {}
///     fn abandon(self) {}
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let heard = Arc::new(AtomicU64::new(0));
/// // Unwatched at both levels: the inner body itself.
/// let unwatched = WatchedBody::new(WatchedBody::new(body::full("hello"), None::<Bytes>), None::<Bytes>);
/// assert_eq!(unwatched.into_body().collect().await.unwrap().to_bytes(), "hello");
/// // Watched: boxed whole, and its watcher still hears the frames.
/// let watched = WatchedBody::new(body::full("hello"), Some(Bytes(heard.clone())));
/// assert_eq!(watched.into_body().collect().await.unwrap().to_bytes(), "hello");
/// assert_eq!(heard.load(Ordering::Relaxed), 5);
/// # }
/// ```
impl<B, W> IntoBody for WatchedBody<B, W>
where
    B: IntoBody + HttpBody<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
    W: BodyWatcher + Send + Sync + 'static,
{
    fn into_body(self) -> Body {
        match self.watcher.0 {
            None => self.inner.into_body(),
            Some(_) => body::boxed(self),
        }
    }
}

/// `response` with its body watched by `watcher` — or, when the response ends with its headers,
/// `watcher` told of the end at once: a response to `HEAD` (`head`), a 204 or a 304, whatever
/// their headers say, or a body that says it has ended, all of which a server drops unpolled.
///
/// ```
/// use mesh_core::watched_body::{BodyWatcher, watch_response};
/// use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
///
/// struct Ended(Arc<AtomicBool>);
/// impl BodyWatcher for Ended {
///     fn end(self) { self.0.store(true, Ordering::Relaxed) }
///     fn abandon(self) {}
/// }
/// let ended = Arc::new(AtomicBool::new(false));
/// let response = http::Response::new(http_body_util::Full::new(bytes::Bytes::from("body")));
/// let response = watch_response(response, Some(Ended(ended.clone())), true);
/// assert!(ended.load(Ordering::Relaxed), "a response to HEAD ends with its headers");
/// # drop(response);
/// ```
pub fn watch_response<B: HttpBody, W: BodyWatcher>(
    response: http::Response<B>,
    watcher: Option<W>,
    head: bool,
) -> http::Response<WatchedBody<B, W>> {
    let bodiless =
        head || matches!(response.status().as_u16(), 204 | 304) || response.body().is_end_stream();
    let watcher = match watcher {
        Some(watcher) if bodiless => {
            watcher.end();
            None
        }
        watcher => watcher,
    };
    response.map(|inner| WatchedBody::new(inner, watcher))
}

impl<B, W> HttpBody for WatchedBody<B, W>
where
    B: HttpBody,
    W: BodyWatcher,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let polled = ready!(this.inner.as_mut().poll_frame(cx));
        if let Some(watcher) = this.watcher.0.as_mut() {
            match &polled {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        watcher.data(data.remaining() as u64);
                    } else if let Some(trailers) = frame.trailers_ref() {
                        watcher.trailers(trailers);
                    }
                }
                Some(Err(_)) => watcher.error(),
                None => {}
            }
        }
        if crate::body::ended_with(&polled, &*this.inner)
            && let Some(watcher) = this.watcher.0.take()
        {
            watcher.end();
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Heard(Arc<Mutex<Vec<String>>>);

    impl Heard {
        fn said(&self, what: impl Into<String>) {
            self.0.lock().unwrap().push(what.into());
        }

        fn all(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    impl BodyWatcher for Heard {
        fn data(&mut self, bytes: u64) {
            self.said(format!("data {bytes}"));
        }
        fn trailers(&mut self, trailers: &HeaderMap) {
            self.said(format!("trailers {}", trailers.len()));
        }
        fn error(&mut self) {
            self.said("error");
        }
        fn end(self) {
            self.said("end");
        }
        fn abandon(self) {
            self.said("abandon");
        }
    }

    #[test]
    fn responses_that_end_with_their_headers_are_told_so_at_once() {
        let response = |status: u16, body: &'static [u8]| {
            let mut response = http::Response::new(Full::new(Bytes::from_static(body)));
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
            response
        };
        for (status, body, head, ends_now) in [
            (200, &b"body"[..], false, false),
            (200, b"body", true, true),
            (204, b"", false, true),
            (304, b"stale", false, true),
            (200, b"", false, true),
        ] {
            let heard = Heard::default();
            let watched = watch_response(response(status, body), Some(heard.clone()), head);
            let told = heard.all() == ["end"];
            assert_eq!(told, ends_now, "{status} {body:?} head={head}");
            drop(watched);
            assert_eq!(heard.all().len(), 1, "told once: {:?}", heard.all());
        }
    }

    #[tokio::test]
    async fn trailers_end_the_body_and_are_told_before_the_end() {
        let heard = Heard::default();
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let inner =
            Full::new(Bytes::from_static(b"abc")).with_trailers(async { Some(Ok(trailers)) });
        let body = WatchedBody::new(inner, Some(heard.clone()));
        body.collect().await.unwrap();
        assert_eq!(heard.all(), ["data 3", "trailers 1", "end"]);
    }

    #[tokio::test]
    async fn an_error_ends_the_body() {
        let heard = Heard::default();
        let inner = Full::new(Bytes::from_static(b"abc")).map_err(|never| match never {});
        let failing = inner.with_trailers(async { Some(Err::<HeaderMap, &str>("reset")) });
        let body = WatchedBody::new(failing, Some(heard.clone()));
        assert!(body.collect().await.is_err());
        assert_eq!(heard.all(), ["data 3", "error", "end"]);
    }

    #[tokio::test]
    async fn dropped_before_its_end_the_body_is_abandoned_and_told_once() {
        let heard = Heard::default();
        let inner = Full::new(Bytes::from_static(b"abc"))
            .with_trailers(async { Some(Ok(HeaderMap::new())) });
        let mut body = Box::pin(WatchedBody::new(inner, Some(heard.clone())));
        body.frame().await.unwrap().unwrap();
        drop(body);
        assert_eq!(heard.all(), ["data 3", "abandon"]);
        let ended = Heard::default();
        WatchedBody::new(Full::new(Bytes::from_static(b"x")), Some(ended.clone()))
            .collect()
            .await
            .unwrap();
        assert_eq!(
            ended.all(),
            ["data 1", "end"],
            "ended: not abandoned on drop"
        );
    }
}
