//! Shared bench fixture: a request built the way hyper's server builds one.
//!
//! hyper parses a request into slices of its shared read buffer, so cloning its URI or a header
//! value bumps a reference count rather than copying. Benches that clone request heads (the
//! retry layer keeps one per request) measure that, not the first-clone promotion of values
//! copied out of a `&str`.

use bytes::Bytes;
use http::{HeaderValue, Request, Uri, header};
use mesh::core::{Body, body};

/// The bytes a client sent, as hyper's read buffer holds them (shared).
pub struct WireBuffer(Bytes);

const PATH: std::ops::Range<usize> = 0..6;
const HOST: std::ops::Range<usize> = 6..9;
const USER_AGENT: std::ops::Range<usize> = 9..18;
const ACCEPT: std::ops::Range<usize> = 18..21;

impl WireBuffer {
    pub fn new() -> Self {
        let buffer = Bytes::from(b"/itemssvcbench/1.0*/*".to_vec());
        // The first clone turns the buffer into a shared one, as hyper's is.
        let _shared = buffer.clone();
        WireBuffer(buffer)
    }

    /// `GET /items` with `host`, `user-agent` and `accept`, each a slice of the buffer.
    pub fn request(&self) -> Request<Body> {
        let value =
            |range| HeaderValue::from_maybe_shared(self.0.slice(range)).expect("header value");
        let mut request = Request::new(body::empty());
        *request.uri_mut() = Uri::from_maybe_shared(self.0.slice(PATH)).expect("uri");
        let headers = request.headers_mut();
        headers.insert(header::HOST, value(HOST));
        headers.insert(header::USER_AGENT, value(USER_AGENT));
        headers.insert(header::ACCEPT, value(ACCEPT));
        request
    }
}
