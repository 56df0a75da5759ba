//! `x-request-id`: Envoy gives every request without one a random UUIDv4, so that logs and
//! traces of one request can be joined across hops; an id the client sent is kept.

use crate::ids::{hex_header_value, hex16};
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// The request id header.
///
/// ```
/// use mesh_trace::{X_REQUEST_ID, ensure_request_id};
/// assert_eq!(X_REQUEST_ID.as_str(), "x-request-id");
/// let mut headers = http::HeaderMap::new();
/// headers.insert(X_REQUEST_ID, "abc".parse().unwrap());
/// assert_eq!(ensure_request_id(&mut headers), "abc");
/// ```
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
///
/// ```
/// use mesh_trace::{RequestIdLayer, request_id::RequestId};
/// use tower::{Layer, ServiceExt, service_fn};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let svc: RequestId<_> = RequestIdLayer.layer(service_fn(|req: http::Request<()>| async move {
///     Ok::<_, std::convert::Infallible>(req.headers()["x-request-id"].clone())
/// }));
/// let request = http::Request::builder().header("x-request-id", "abc").body(()).unwrap();
/// assert_eq!(svc.oneshot(request).await.unwrap(), "abc");
/// # });
/// ```
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
        ensure_request_id(request.headers_mut());
        self.inner.call(request)
    }
}

/// Gives `headers` a UUIDv4 `x-request-id` unless they have one; returns the request's id.
///
/// ```
/// use mesh_trace::request_id::ensure_request_id;
/// let mut headers = http::HeaderMap::new();
/// let generated = ensure_request_id(&mut headers).clone();
/// assert_eq!(generated.len(), 36);
/// assert_eq!(ensure_request_id(&mut headers), generated);
/// ```
pub fn ensure_request_id(headers: &mut HeaderMap) -> &HeaderValue {
    headers.entry(X_REQUEST_ID).or_insert_with(uuid_v4)
}

/// A random (version 4, RFC 9562 variant) UUID as a header value, formatted on the stack.
///
/// ```
/// use mesh_trace::request_id::uuid_v4;
/// let id = uuid_v4();
/// let id = id.to_str().unwrap();
/// assert_eq!(id.len(), 36);
/// assert_eq!(id.matches('-').count(), 4);
/// assert_eq!(&id[14..15], "4"); // version 4
/// assert!(matches!(&id[19..20], "8" | "9" | "a" | "b")); // RFC 9562 variant
/// assert_ne!(uuid_v4(), uuid_v4());
/// ```
pub fn uuid_v4() -> HeaderValue {
    hex_header_value(&uuid_v4_bytes())
}

/// The text of a random UUIDv4, before it becomes a header value (the trace layer marks its
/// trace reason in it first).
pub(crate) fn uuid_v4_bytes() -> [u8; 36] {
    let mut bits: u128 = rand::random();
    // Version 4 in the high nibble of byte 6, variant `10` in the top bits of byte 8.
    bits = (bits & !(0xf << 76)) | (0x4 << 76);
    bits = (bits & !(0x3 << 62)) | (0x2 << 62);
    let (high, low) = (hex16((bits >> 64) as u64), hex16(bits as u64));
    let mut out = [b'-'; 36];
    out[..8].copy_from_slice(&high[..8]);
    out[9..13].copy_from_slice(&high[8..12]);
    out[14..18].copy_from_slice(&high[12..]);
    out[19..23].copy_from_slice(&low[..4]);
    out[24..].copy_from_slice(&low[4..]);
    out
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
        for _ in 0..1000 {
            let id = uuid_v4();
            let s = id.to_str().unwrap();
            for (i, c) in s.char_indices() {
                match i {
                    8 | 13 | 18 | 23 => assert_eq!(c, '-', "{s}"),
                    14 => assert_eq!(c, '4', "{s}"),
                    19 => assert!(matches!(c, '8' | '9' | 'a' | 'b'), "{s}"),
                    _ => assert!(matches!(c, '0'..='9' | 'a'..='f'), "{s}"),
                }
            }
        }
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
