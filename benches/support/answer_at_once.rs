//! Shared bench fixture: a client that answers 200 at once, with the response a hyper-util
//! client hands back for an empty 200 over HTTP/1.1 (as `in_process`'s network group sends).
//!
//! Such a response is not a new `http::Response`. hyper's HTTP/1 connection keeps the header
//! map it wrote the request's headers from, emptied, and parses the response's headers into it
//! (`content-length: 0` and `date` from a hyper server), so a header added to the response
//! fits in the room the request's took. hyper-util's client puts the connection's addresses
//! (`HttpInfo`) in the response's extensions, so their map exists already. A stand-in that
//! answered with an empty map of each would charge the layers above for making both, which
//! no layer over a real client pays.

use http::{HeaderValue, Request, Response, header};
use mesh::core::{Body, body};
use std::{
    convert::Infallible,
    future::{Ready, ready},
    net::SocketAddr,
    task::{Context, Poll},
};

/// The connection a response came over, as hyper-util's `HttpInfo` records it (whose
/// constructor is private): the same two addresses, so the same size in the same map.
#[derive(Clone, Copy, Debug)]
#[expect(
    dead_code,
    reason = "only carried, as `HttpInfo` is past the layers under test"
)]
pub struct ConnectionInfo {
    pub remote: SocketAddr,
    pub local: SocketAddr,
}

/// Answers each request 200 with an empty body, as a hyper-util client's response over a
/// connection from `local` to `remote`.
#[derive(Clone, Copy, Debug)]
pub struct AnswerAtOnce(pub ConnectionInfo);

impl AnswerAtOnce {
    /// Over a loopback connection to `remote`.
    pub fn to(remote: SocketAddr) -> Self {
        let local = SocketAddr::from(([127, 0, 0, 1], 40_000));
        AnswerAtOnce(ConnectionInfo { remote, local })
    }
}

impl tower::Service<Request<Body>> for AnswerAtOnce {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let (parts, _body) = request.into_parts();
        let mut headers = parts.headers;
        headers.clear();
        headers.append(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        headers.append(
            header::DATE,
            HeaderValue::from_static("Tue, 24 Nov 2026 23:00:00 GMT"),
        );
        let mut response = Response::new(body::empty());
        *response.headers_mut() = headers;
        response.extensions_mut().insert(self.0);
        ready(Ok(response))
    }
}
