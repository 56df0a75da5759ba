//! `x-request-id`: Envoy gives every request without one a random UUIDv4, so that logs and
//! traces of one request can be joined across hops; an id the client sent is kept.

use http::{HeaderName, HeaderValue, Request};
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// The request id header.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Adds a UUIDv4 `x-request-id` to requests that have none.
///
/// ```
/// use mesh_trace::{RequestIdLayer, X_REQUEST_ID};
/// use tower::{Layer, Service, ServiceExt, service_fn};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let svc = RequestIdLayer.layer(service_fn(|req: http::Request<()>| async move {
///     Ok::<_, std::convert::Infallible>(req.headers()[X_REQUEST_ID].len())
/// }));
/// assert_eq!(svc.oneshot(http::Request::new(())).await.unwrap(), 36);
/// # });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestId<S>;

    fn layer(&self, inner: S) -> RequestId<S> {
        RequestId { inner }
    }
}

/// The service [`RequestIdLayer`] produces.
#[derive(Clone, Debug)]
pub struct RequestId<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for RequestId<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        if !request.headers().contains_key(&X_REQUEST_ID) {
            request.headers_mut().insert(X_REQUEST_ID, uuid_v4());
        }
        self.inner.call(request)
    }
}

/// A random (version 4, RFC 9562 variant) UUID as a header value, without allocating.
pub fn uuid_v4() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut out = [0u8; 36];
    let mut j = 0;
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[j] = b'-';
            j += 1;
        }
        out[j] = HEX[usize::from(byte >> 4)];
        out[j + 1] = HEX[usize::from(byte & 0x0f)];
        j += 2;
    }
    // Lower-case hex digits and dashes are always a valid header value.
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{ServiceExt, service_fn};

    #[test]
    fn uuid_shape() {
        let id = uuid_v4();
        let s = id.to_str().unwrap();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert!(matches!(&s[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(uuid_v4(), id);
    }

    #[tokio::test]
    async fn keeps_existing_id() {
        let svc = RequestIdLayer.layer(service_fn(|req: Request<()>| async move {
            Ok::<_, std::convert::Infallible>(req.headers()[X_REQUEST_ID].clone())
        }));
        let req = Request::builder()
            .header("x-request-id", "abc")
            .body(())
            .unwrap();
        assert_eq!(svc.oneshot(req).await.unwrap(), "abc");
    }
}
