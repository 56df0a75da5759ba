//! Counting a streamed request body's bytes as they are read, for the byte metrics and the
//! access log.
//!
//! A body whose size is announced (`content-length`, or a body built whole) is counted from its
//! size hint. A streamed one (chunked HTTP/1.1, HTTP/2 without `content-length`, every gRPC
//! request) is not known until it has been read, so [`count_streamed_body`], where a request
//! enters the mesh, wraps such a body in a [`CountedBody`] and puts the count, a
//! [`BodyBytesRead`], on the request's extensions, where the telemetry layer reads it when the
//! exchange ends. A body of announced size gets no count and costs nothing more. The counting
//! body is a [`WatchedBody`] whose watcher is the count.

use crate::{
    Body, BoxError, body,
    watched_body::{BodyWatcher, WatchedBody},
};
use bytes::Bytes;
use http::Request;
use http_body::Body as HttpBody;
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

/// The data bytes a streamed request body has delivered so far; on the request's extensions.
///
/// ```
/// use http_body_util::{BodyExt, StreamBody};
/// use mesh_core::body_count::{BodyBytesRead, count_streamed_body};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let chunks = [b"hello ".as_slice(), b"world"]
///     .map(|chunk| Ok::<_, std::convert::Infallible>(http_body::Frame::data(bytes::Bytes::from(chunk))));
/// let request = http::Request::new(StreamBody::new(futures_util::stream::iter(chunks)));
/// let request = count_streamed_body(request);
/// let read = request.extensions().get::<BodyBytesRead>().cloned().unwrap();
/// assert_eq!(read.get(), 0);
/// request.into_body().collect().await.unwrap();
/// assert_eq!(read.get(), 11);
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct BodyBytesRead(Arc<AtomicU64>);

impl BodyBytesRead {
    /// The data bytes read so far.
    ///
    /// ```
    /// assert_eq!(mesh_core::body_count::BodyBytesRead::default().get(), 0, "none yet");
    /// ```
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// [`count_streamed_body`] with the body boxed into a [`Body`] ([`body::boxed_send`]), where a
/// request enters the mesh: a body of known size is not wrapped for counting, so one that is a
/// `Body` already passes through as it is.
///
/// ```
/// use mesh_core::body_count::{BodyBytesRead, count_streamed_into_body};
/// let request = http::Request::new(mesh_core::body::full("sized"));
/// let request: http::Request<mesh_core::Body> = count_streamed_into_body(request);
/// assert!(request.extensions().get::<BodyBytesRead>().is_none());
/// ```
pub fn count_streamed_into_body<B>(request: Request<B>) -> Request<Body>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if request.body().size_hint().exact().is_none() {
        return count_streamed_body(request).map(body::boxed_send);
    }
    let (mut parts, known) = request.into_parts();
    parts.extensions.remove::<BodyBytesRead>();
    Request::from_parts(parts, body::boxed_send(known))
}

/// Wraps `request`'s body in a [`CountedBody`], counting into a [`BodyBytesRead`] on its
/// extensions when the body's size is not known up front; a body of known size passes through
/// uncounted, with no extension (a count the parts carried from another request is dropped).
///
/// ```
/// use mesh_core::body_count::{BodyBytesRead, count_streamed_body};
/// let request = count_streamed_body(http::Request::new(http_body_util::Full::new(bytes::Bytes::from("sized"))));
/// assert!(request.extensions().get::<BodyBytesRead>().is_none());
/// ```
pub fn count_streamed_body<B: HttpBody>(request: Request<B>) -> Request<CountedBody<B>> {
    let (mut parts, body) = request.into_parts();
    let read = match body.size_hint().exact() {
        Some(_) => {
            parts.extensions.remove::<BodyBytesRead>();
            None
        }
        None => {
            let read = BodyBytesRead::default();
            parts.extensions.insert(read.clone());
            Some(read)
        }
    };
    Request::from_parts(parts, WatchedBody::new(body, read))
}

/// A body that counts its data bytes into a [`BodyBytesRead`], when it has one; see
/// [`count_streamed_body`].
pub type CountedBody<B> = WatchedBody<B, BodyBytesRead>;

/// The count watches its body's data frames; how the body ends is not its business.
impl BodyWatcher for BodyBytesRead {
    fn data(&mut self, bytes: u64) {
        self.0.fetch_add(bytes, Ordering::Relaxed);
    }

    fn end(self) {}

    fn abandon(self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body::Frame;
    use http_body_util::{BodyExt, Empty, Full, StreamBody};
    use std::convert::Infallible;

    fn streamed(
        chunks: &[&'static [u8]],
        trailers: bool,
    ) -> Request<impl HttpBody<Data = Bytes, Error = Infallible>> {
        let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = chunks
            .iter()
            .map(|chunk| Ok(Frame::data(Bytes::from_static(chunk))))
            .collect();
        if trailers {
            frames.push(Ok(Frame::trailers(http::HeaderMap::new())));
        }
        Request::new(StreamBody::new(futures_util::stream::iter(frames)))
    }

    #[tokio::test]
    async fn a_streamed_body_is_counted_as_it_is_read_trailers_aside() {
        let request = count_streamed_body(streamed(&[b"abc", b"", b"defgh"], true));
        let read = request
            .extensions()
            .get::<BodyBytesRead>()
            .cloned()
            .unwrap();
        let mut body = request.into_body();
        body.frame().await.unwrap().unwrap();
        assert_eq!(read.get(), 3, "counted frame by frame");
        let rest = body.collect().await.unwrap();
        assert!(rest.trailers().is_some());
        assert_eq!(read.get(), 8);
    }

    #[tokio::test]
    async fn bodies_of_known_size_pass_through_uncounted() {
        // Parts reused from a counted request do not bring its count along.
        let counted = count_streamed_body(streamed(&[b"abc"], false));
        let (reused, _) = counted.into_parts();
        for request in [
            Request::new(Full::new(Bytes::from_static(b"whole")).boxed()),
            Request::new(Empty::new().boxed()),
            Request::from_parts(reused, Full::new(Bytes::from_static(b"x")).boxed()),
        ] {
            let request = count_streamed_body(request);
            assert!(request.extensions().get::<BodyBytesRead>().is_none());
            let body = request.into_body();
            assert_eq!(body.size_hint().exact(), Some(body.size_hint().lower()));
            body.collect().await.unwrap();
        }
    }

    #[tokio::test]
    async fn made_a_body_a_streamed_one_is_counted_and_one_of_known_size_is_not() {
        let counted = count_streamed_into_body(streamed(&[b"abc", b"de"], false));
        let read = counted.extensions().get::<BodyBytesRead>().cloned();
        counted.into_body().collect().await.unwrap();
        assert_eq!(read.map(|read| read.get()), Some(5));
        let counted = count_streamed_body(streamed(&[b"abc"], false));
        let (reused, _) = counted.into_parts();
        for (request, sent) in [
            (Request::new(body::full("whole")), "whole"),
            (Request::from_parts(reused, body::full("x")), "x"),
        ] {
            let request = count_streamed_into_body(request);
            assert!(request.extensions().get::<BodyBytesRead>().is_none());
            let read = request.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(read, sent);
        }
    }
}
