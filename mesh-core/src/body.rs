//! The body type every `mesh` layer speaks.
//!
//! Layers that create responses themselves (local replies, direct responses) and layers that
//! pass upstream bodies through need one common type: a boxed [`http_body::Body`] of [`Bytes`]
//! whose errors are boxed too. Boxing costs one allocation per message, never a copy.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};

/// A type-erased error, as tower and hyper use.
///
/// ```
/// use mesh_core::{BoxError, MeshError};
/// let error: BoxError = MeshError::Timeout.into();
/// assert_eq!(error.to_string(), "upstream request timeout");
/// let text: BoxError = "plain message".into();
/// assert!(text.downcast_ref::<MeshError>().is_none());
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The boxed, streaming body used throughout `mesh`.
///
/// ```
/// use http_body_util::BodyExt;
/// use mesh_core::Body;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let body: Body = mesh_core::body::full("hello");
/// let bytes = body.collect().await.unwrap().to_bytes();
/// assert_eq!(bytes, "hello");
/// # }
/// ```
pub type Body = BoxBody<Bytes, BoxError>;

/// A body holding `data` in full.
///
/// ```
/// use http_body::Body as _;
/// use http_body_util::BodyExt;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let body = mesh_core::body::full("hello");
/// assert_eq!(body.size_hint().exact(), Some(5));
/// assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
/// # }
/// ```
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A body with no data.
///
/// ```
/// use http_body::Body as _;
/// let body = mesh_core::body::empty();
/// assert!(body.is_end_stream());
/// assert_eq!(body.size_hint().exact(), Some(0));
/// ```
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Boxes any body whose data is [`Bytes`] into a [`Body`]. A [`Body`] already is returned as
/// it is, not boxed a second time (the check is on the type, settled when this is compiled).
///
/// ```
/// use http_body::Body as _;
/// use http_body_util::{BodyExt, Full};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let body = mesh_core::body::boxed(Full::new(bytes::Bytes::from_static(b"x")));
/// assert_eq!(body.size_hint().exact(), Some(1));
/// let again = mesh_core::body::boxed(body);
/// assert_eq!(again.collect().await.unwrap().to_bytes(), "x");
/// # }
/// ```
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    already_a_body(body).unwrap_or_else(|other| other.map_err(Into::into).boxed())
}

/// A body that becomes a [`Body`] with no more boxing than it needs: a [`Body`] is one
/// already, and a [`WatchedBody`](crate::watched_body::WatchedBody) that nothing watches any
/// more becomes its inner body. For the layers that wrap a response's body to watch it, whose
/// watchers a bodiless response tells of its end at once: their wrappers are not boxed for it.
///
/// ```
/// use mesh_core::body::{self, IntoBody};
/// let body: mesh_core::Body = body::full("hello").into_body(); // itself
/// assert_eq!(http_body::Body::size_hint(&body).exact(), Some(5));
/// ```
pub trait IntoBody {
    /// This body as a [`Body`].
    ///
    /// ```
    /// use mesh_core::body::{self, IntoBody};
    /// let response = http::Response::new(body::full("ok"));
    /// let response: http::Response<mesh_core::Body> = response.map(IntoBody::into_body);
    /// assert_eq!(http_body::Body::size_hint(response.body()).exact(), Some(2));
    /// ```
    fn into_body(self) -> Body;
}

impl IntoBody for Body {
    fn into_body(self) -> Body {
        self
    }
}

/// Boxes a body that is `Send` but not `Sync` (axum's and tonic's bodies) into a [`Body`].
///
/// The body is polled through a [`SyncWrapper`](sync_wrapper::SyncWrapper), which is `Sync`
/// because it is only reached through `&mut`. Its `&self` methods are asked while it is
/// polled, so [`is_end_stream`](http_body::Body::is_end_stream) and
/// [`size_hint`](http_body::Body::size_hint) report what the body said after its last frame.
/// A [`Body`] already (which is `Sync`) is returned as it is, not boxed a second time.
///
/// ```
/// use http_body_util::{BodyExt, Full};
/// let body = mesh_core::body::boxed_send(Full::new(bytes::Bytes::from_static(b"x")));
/// assert_eq!(http_body::Body::size_hint(&body).exact(), Some(1));
/// ```
pub fn boxed_send<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    match already_a_body(body) {
        Ok(body) => body,
        Err(other) => SendBody {
            hint: other.size_hint(),
            ended: other.is_end_stream(),
            inner: sync_wrapper::SyncWrapper::new(other),
        }
        .boxed(),
    }
}

/// `body` itself if it is a [`Body`], else given back.
fn already_a_body<B: 'static>(body: B) -> Result<Body, B> {
    let mut slot = Some(body);
    let taken = (&mut slot as &mut dyn std::any::Any)
        .downcast_mut::<Option<Body>>()
        .and_then(Option::take);
    match (taken, slot) {
        (Some(body), _) => Ok(body),
        (None, Some(other)) => Err(other),
        (None, None) => unreachable!("the slot is emptied only when it holds a Body"),
    }
}

/// A `Send` body made `Sync`; see [`boxed_send`].
#[pin_project::pin_project]
struct SendBody<B> {
    #[pin]
    inner: sync_wrapper::SyncWrapper<B>,
    /// What the body said of itself after its last frame.
    hint: http_body::SizeHint,
    ended: bool,
}

impl<B> http_body::Body for SendBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let mut inner = this.inner.get_pin_mut();
        let polled = std::task::ready!(inner.as_mut().poll_frame(cx));
        // Trailers are a body's last frame, whatever the body says.
        let trailers = matches!(&polled, Some(Ok(frame)) if frame.is_trailers());
        *this.ended = polled.is_none() || trailers || inner.is_end_stream();
        *this.hint = inner.size_hint();
        std::task::Poll::Ready(polled.map(|frame| frame.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.hint
    }
}

/// Whether `body` has ended with the frame it has just yielded, `polled`: with no more frames,
/// an error, its trailers (a body's last frame), or as it says itself — a server may drop a
/// body that says it has ended without polling it again, so a layer that acts at a body's end
/// must act then.
///
/// ```
/// use http_body_util::Full;
/// use mesh_core::body::ended_with;
/// let frame = |f| Some(Ok::<_, std::convert::Infallible>(f));
/// let data = || http_body::Frame::data(bytes::Bytes::from_static(b"x"));
/// let unfinished = Full::new(bytes::Bytes::from_static(b"rest"));
/// assert!(!ended_with(&frame(data()), &unfinished));
/// assert!(ended_with(&frame(http_body::Frame::trailers(http::HeaderMap::new())), &unfinished));
/// assert!(ended_with(&None::<Result<http_body::Frame<bytes::Bytes>, ()>>, &unfinished));
/// assert!(ended_with(&frame(data()), &http_body_util::Empty::<bytes::Bytes>::new()));
/// ```
pub fn ended_with<D, E>(
    polled: &Option<Result<http_body::Frame<D>, E>>,
    body: &impl http_body::Body,
) -> bool {
    match polled {
        None | Some(Err(_)) => true,
        Some(Ok(frame)) => frame.is_trailers() || body.is_end_stream(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    /// A body with no data that ends when told to, polled or not.
    struct EndsWhenTold(Arc<AtomicBool>);

    impl http_body::Body for EndsWhenTold {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
            std::task::Poll::Ready(None)
        }

        fn is_end_stream(&self) -> bool {
            self.0.load(Ordering::Relaxed)
        }
    }

    #[test]
    fn a_body_is_passed_through_as_it_is_and_any_other_boxed() {
        let told = Arc::new(AtomicBool::new(false));
        let body = boxed_send(boxed(EndsWhenTold(told.clone())));
        let other = boxed_send(EndsWhenTold(told.clone()));
        told.store(true, Ordering::Relaxed);
        // Boxed again, it would answer what it said when boxed, until polled.
        assert!(body.is_end_stream(), "the body itself answers");
        assert!(
            !other.is_end_stream(),
            "boxed, it answers what it said then"
        );
    }

    #[tokio::test]
    async fn a_send_body_ends_when_its_declared_length_is_read() {
        let mut body = boxed_send(Full::new(Bytes::from_static(b"hello")));
        assert!(!body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(5));
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "hello");
        assert!(body.is_end_stream(), "a full body ends with its last byte");
        assert_eq!(body.size_hint().exact(), Some(0));
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_send_body_of_unknown_length_ends_when_it_ends() {
        let stream = http_body_util::StreamBody::new(futures_like::Once(Some(Ok::<_, BoxError>(
            http_body::Frame::data(Bytes::from_static(b"x")),
        ))));
        let mut body = boxed_send(stream);
        assert!(!body.is_end_stream());
        body.frame().await.unwrap().unwrap();
        assert!(!body.is_end_stream(), "the length was never declared");
        assert!(body.frame().await.is_none());
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn trailers_after_a_declared_length_are_not_lost() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let inner =
            Full::new(Bytes::from_static(b"hello")).with_trailers(async { Some(Ok(trailers)) });
        let mut body = boxed_send(inner);
        body.frame().await.unwrap().unwrap();
        assert!(!body.is_end_stream(), "the trailers are still to come");
        assert!(body.frame().await.unwrap().unwrap().is_trailers());
        assert!(body.frame().await.is_none());
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn a_send_body_ends_with_its_trailers() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let stream = http_body_util::StreamBody::new(futures_like::Once(Some(Ok::<_, BoxError>(
            http_body::Frame::trailers(trailers),
        ))));
        let mut body = boxed_send(stream);
        assert!(body.frame().await.unwrap().unwrap().is_trailers());
        assert!(body.is_end_stream());
    }

    /// A one-item stream, without a futures dependency.
    mod futures_like {
        pub struct Once<T>(pub Option<T>);
        impl<T: Unpin> futures_core::Stream for Once<T> {
            type Item = T;
            fn poll_next(
                mut self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<T>> {
                std::task::Poll::Ready(self.0.take())
            }
        }
    }
}
