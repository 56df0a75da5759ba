//! Local replies: the response a client gets when the mesh answers by itself.
//!
//! Status, body text and headers match Envoy's router (DESIGN.md §4), so clients, dashboards and
//! runbooks written for Istio read them the same way. The reply carries its
//! [`ResponseFlags`] as an extension for telemetry.

use crate::{
    Body, BoxError, LocalReplyDetails, MeshError, ResponseFlags, body, error::FlaggedError,
};
use http::{HeaderValue, Response, header};

/// Envoy's local-reply body prefix for failures before response headers.
const RESET_BEFORE_HEADERS: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: ";

impl MeshError {
    /// The body text Envoy sends for this failure (empty for a blocked host).
    ///
    /// ```
    /// use mesh_core::MeshError;
    /// assert_eq!(MeshError::Timeout.reply_body(), "upstream request timeout");
    /// assert_eq!(
    ///     MeshError::Overflow.reply_body(),
    ///     "upstream connect error or disconnect/reset before headers. reset reason: overflow",
    /// );
    /// assert_eq!(MeshError::HostNotRegistered("x.example".into()).reply_body(), "");
    /// ```
    pub fn reply_body(&self) -> String {
        match self {
            MeshError::RouteNotFound => "route not found".into(),
            MeshError::HostNotRegistered(_) => String::new(),
            MeshError::NoHealthyUpstream => "no healthy upstream".into(),
            MeshError::ConnectFailure(_) => format!("{RESET_BEFORE_HEADERS}connection failure"),
            MeshError::UpstreamReset(_) => format!("{RESET_BEFORE_HEADERS}connection termination"),
            MeshError::RefusedStream(_) => {
                format!("{RESET_BEFORE_HEADERS}remote refused stream reset")
            }
            MeshError::Overflow => format!("{RESET_BEFORE_HEADERS}overflow"),
            MeshError::Timeout => "upstream request timeout".into(),
            MeshError::FaultAbort(_) => "fault filter abort".into(),
            MeshError::BufferLimitExceeded => {
                "exceeded request buffer limit while retrying upstream".into()
            }
            MeshError::BadRequest(why) => (*why).into(),
        }
    }

    /// The local reply for this failure: status, body, headers and response flags.
    ///
    /// ```
    /// use mesh_core::{MeshError, ResponseFlags, ResponseFlag};
    /// let reply = MeshError::NoHealthyUpstream.to_response();
    /// assert_eq!(reply.status(), 503);
    /// assert_eq!(
    ///     reply.extensions().get::<ResponseFlags>(),
    ///     Some(&ResponseFlags::of(ResponseFlag::NoHealthyUpstream)),
    /// );
    /// ```
    pub fn to_response(&self) -> Response<Body> {
        let text = self.reply_body();
        let mut response = Response::new(if text.is_empty() {
            body::empty()
        } else {
            body::full(text.clone())
        });
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        if !text.is_empty() {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        }
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
        if matches!(self, MeshError::Overflow) {
            headers.insert("x-envoy-overloaded", HeaderValue::from_static("true"));
        }
        if let Some(flag) = self.flag() {
            response.extensions_mut().insert(ResponseFlags::of(flag));
        }
        response
            .extensions_mut()
            .insert(LocalReplyDetails::fixed(self.details()));
        response
    }
}

/// A response future whose errors become the local replies a client should see
/// ([`error_to_response`]), so it never fails: what a listener, or a client or server wrapped
/// in-process, hands back.
///
/// ```
/// use mesh_core::{BoxError, MeshError, local_reply::LocalReplyFuture};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let failed = async { Err::<http::Response<mesh_core::Body>, BoxError>(MeshError::NoHealthyUpstream.into()) };
/// let response = LocalReplyFuture::new(failed).await.unwrap();
/// assert_eq!(response.status(), 503);
/// # }
/// ```
#[pin_project::pin_project]
#[derive(Debug)]
pub struct LocalReplyFuture<F> {
    #[pin]
    inner: F,
}

impl<F> LocalReplyFuture<F> {
    /// Wraps `inner`.
    ///
    /// ```
    /// use mesh_core::{BoxError, body, local_reply::LocalReplyFuture};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let ok = async { Ok::<_, BoxError>(http::Response::new(body::full("hi"))) };
    /// let response = LocalReplyFuture::new(ok).await.unwrap();
    /// assert_eq!(response.status(), 200);
    /// # }
    /// ```
    pub fn new(inner: F) -> Self {
        LocalReplyFuture { inner }
    }
}

impl<F> std::future::Future for LocalReplyFuture<F>
where
    F: std::future::Future<Output = Result<Response<Body>, BoxError>>,
{
    type Output = Result<Response<Body>, std::convert::Infallible>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let result = std::task::ready!(self.project().inner.poll(cx));
        std::task::Poll::Ready(Ok(result.unwrap_or_else(|error| error_to_response(&error))))
    }
}

/// Turns any error a layer returned into the reply the client should see.
///
/// A [`MeshError`] anywhere in the chain gives its own reply; anything else is treated as the
/// upstream connection terminating before headers (503 UC), as Envoy does.
///
/// ```
/// use mesh_core::{BoxError, MeshError, ResponseFlag, ResponseFlags, local_reply::error_to_response};
/// let error: BoxError = MeshError::Overflow.into();
/// let reply = error_to_response(&error);
/// assert_eq!(reply.status(), 503);
/// assert_eq!(reply.headers()["x-envoy-overloaded"], "true");
/// // Any other error reads as the connection terminating: 503 UC.
/// let reply = error_to_response(&BoxError::from("connection reset by peer"));
/// assert_eq!(reply.status(), 503);
/// assert!(reply.extensions().get::<ResponseFlags>().unwrap().contains(ResponseFlag::UpstreamConnectionTermination));
/// ```
pub fn error_to_response(error: &BoxError) -> Response<Body> {
    let mut reply = match MeshError::find(error) {
        Some(mesh) => mesh.to_response(),
        None => MeshError::UpstreamReset(error.to_string().into()).to_response(),
    };
    let marked = FlaggedError::flags_of(error);
    if !marked.is_empty() {
        let flags = reply
            .extensions_mut()
            .get_or_insert_default::<ResponseFlags>();
        flags.insert_all(marked);
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ResponseFlag;
    use http::StatusCode;
    use http_body_util::BodyExt;

    async fn text(response: Response<Body>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn replies_match_design_table() {
        let cases: Vec<(MeshError, u16, Option<&str>, &str)> = vec![
            (MeshError::RouteNotFound, 404, Some("NR"), "route not found"),
            (
                MeshError::HostNotRegistered("x".into()),
                502,
                Some("NR"),
                "",
            ),
            (
                MeshError::NoHealthyUpstream,
                503,
                Some("UH"),
                "no healthy upstream",
            ),
            (
                MeshError::ConnectFailure("refused".into()),
                503,
                Some("UF"),
                "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
            ),
            (
                MeshError::Timeout,
                504,
                Some("UT"),
                "upstream request timeout",
            ),
            (
                MeshError::FaultAbort(StatusCode::IM_A_TEAPOT),
                418,
                Some("FI"),
                "fault filter abort",
            ),
            (
                MeshError::BufferLimitExceeded,
                507,
                None,
                "exceeded request buffer limit while retrying upstream",
            ),
        ];
        for (error, status, flag, body) in cases {
            let reply = error.to_response();
            assert_eq!(reply.status(), status, "{error}");
            let flags = reply.extensions().get::<ResponseFlags>().copied();
            assert_eq!(
                flags.map(|f| f.to_string()),
                flag.map(String::from),
                "{error}"
            );
            assert_eq!(text(reply).await, body);
        }
    }

    #[test]
    fn overflow_sets_overloaded_header() {
        let reply = MeshError::Overflow.to_response();
        assert_eq!(reply.headers()["x-envoy-overloaded"], "true");
        assert_eq!(
            reply.extensions().get::<ResponseFlags>(),
            Some(&ResponseFlags::of(ResponseFlag::UpstreamOverflow))
        );
    }

    #[test]
    fn finds_mesh_error_in_box() {
        let boxed: BoxError = Box::new(MeshError::Timeout);
        assert_eq!(error_to_response(&boxed).status(), 504);
        let other: BoxError = "boom".into();
        assert_eq!(error_to_response(&other).status(), 503);
    }
}
