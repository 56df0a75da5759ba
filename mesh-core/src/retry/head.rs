//! [`KeptHead`]: the request head a retry is made from, kept in one buffer.
//!
//! A retry needs the method, URI, version and headers of the request (and its extensions, which the
//! retry layer keeps apart), while the first attempt takes the request itself. Cloning [`Parts`]
//! would allocate a header map's two tables and bump a shared reference count for every header
//! value and URI part — hyper parses a head into slices of its read buffer, so each is an atomic
//! read-modify-write — then undo it all when the attempt succeeds, as nearly every one does. So the
//! URI's authority and path and the headers are copied, back to back, into one buffer, and only a
//! retry reads a head out of it again.
//!
//! The buffer is kept in place, inside the retry state that is allocated anyway, when the head
//! fits in [`IN_PLACE`] bytes, as nearly every request's does; a larger one goes to the heap.
//! It is written in one pass, each record straight into its place; the headers are measured
//! first only for a head that does not fit.
//!
//! Measured in the `resilience_layers` bench (`floor_keep_request_head`, a head of three
//! headers): cloning `Parts` costs about twice what keeping the head this way does.

use bytes::{Buf, Bytes};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version,
    request::Parts,
    uri::{self, Authority, PathAndQuery, Scheme},
};

/// A copy of a request head, kept for the retries; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct KeptHead {
    method: Method,
    version: Version,
    scheme: Option<Scheme>,
    /// The authority and the path and query (their lengths in `authority` and `path`), then
    /// each header value as a record ([`RECORD_HEADER`]).
    bytes: HeadBytes,
    /// `None`: the URI has no authority.
    authority: Option<u32>,
    /// `None`: the URI has no path (an authority-form URI).
    path: Option<u32>,
    /// How many header values the records hold.
    values: usize,
}

/// Each header value in [`KeptHead::bytes`] is a record: a byte of flags ([`SENSITIVE`]), the
/// name's length (2 bytes, little-endian: a name is at most 64 KiB), the value's (4 bytes), then
/// the name and the value. This is the size of the first three.
const RECORD_HEADER: usize = 7;

/// The value is sensitive ([`HeaderValue::is_sensitive`]).
const SENSITIVE: u8 = 1;

/// The largest head kept in place. The benches' requests fit: a head of three headers, and an
/// in-process call's with the trace and timeout headers the stack adds (no allocation of its
/// own under `valgrind --tool=dhat`).
pub(crate) const IN_PLACE: usize = 512;

/// A kept head's bytes; see the [module docs](self).
#[derive(Debug)]
struct HeadBytes {
    /// The bytes, when they fit here: the first `len`.
    in_place: [u8; IN_PLACE],
    len: u16,
    /// The bytes, when they do not fit in place.
    heap: Option<Box<[u8]>>,
}

impl HeadBytes {
    /// No bytes, with room for [`IN_PLACE`].
    fn new() -> Self {
        HeadBytes {
            in_place: [0; IN_PLACE],
            len: 0,
            heap: None,
        }
    }

    /// Makes these the bytes `write` writes: in place when they fit, without moving the
    /// buffer; else into a heap buffer of `len()` bytes, which they must fit.
    fn write(&mut self, write: impl Fn(&mut [u8]) -> Option<usize>, len: impl FnOnce() -> usize) {
        if let Some(written) = write(&mut self.in_place) {
            // At most `IN_PLACE` bytes.
            self.len = written as u16;
            self.heap = None;
            return;
        }
        let mut bytes = vec![0; len()];
        let written = write(&mut bytes).unwrap_or(0);
        bytes.truncate(written);
        self.heap = Some(bytes.into_boxed_slice());
    }

    fn as_slice(&self) -> &[u8] {
        match &self.heap {
            Some(bytes) => bytes,
            None => &self.in_place[..usize::from(self.len)],
        }
    }
}

/// Writes `bytes` at the start of `out` and returns the rest of it; `None` if they do not fit.
///
/// Most of a head's pieces are a few bytes long (`accept`, `*/*`): up to 16 are copied with at
/// most two overlapping moves of a fixed size, each a single load and store, rather than
/// through a call to `memcpy`.
fn put<'a>(out: &'a mut [u8], bytes: &[u8]) -> Option<&'a mut [u8]> {
    let n = bytes.len();
    let (here, rest) = out.split_at_mut_checked(n)?;
    match n {
        0 => {}
        1..=3 => {
            here[0] = bytes[0];
            here[n / 2] = bytes[n / 2];
            here[n - 1] = bytes[n - 1];
        }
        4..=7 => {
            here[..4].copy_from_slice(&bytes[..4]);
            here[n - 4..].copy_from_slice(&bytes[n - 4..]);
        }
        8..=16 => {
            here[..8].copy_from_slice(&bytes[..8]);
            here[n - 8..].copy_from_slice(&bytes[n - 8..]);
        }
        _ => here.copy_from_slice(bytes),
    }
    Some(rest)
}

/// Writes the authority, the path and a record of each header value into `out`, as
/// [`KeptHead::bytes`] holds them; the length written, or `None` if they do not fit.
fn write_head(out: &mut [u8], authority: &[u8], path: &[u8], headers: &HeaderMap) -> Option<usize> {
    let room = out.len();
    let mut out = put(put(out, authority)?, path)?;
    for (name, value) in headers {
        let name = name.as_str().as_bytes();
        let value_bytes = value.as_bytes();
        let mut record = [0; RECORD_HEADER];
        record[0] = if value.is_sensitive() { SENSITIVE } else { 0 };
        // A header name is at most 64 KiB (`HeaderName`'s own limit).
        record[1..3].copy_from_slice(&(name.len() as u16).to_le_bytes());
        record[3..].copy_from_slice(&length(value_bytes.len()).to_le_bytes());
        out = put(put(put(out, &record)?, name)?, value_bytes)?;
    }
    Some(room - out.len())
}

impl KeptHead {
    /// Keeps a copy of `parts`.
    #[cfg(test)]
    pub fn keep(parts: &Parts) -> Self {
        let mut head = KeptHead::empty();
        head.keep_from(parts);
        head
    }

    /// A head of nothing, with room in place, to [`keep_from`](Self::keep_from) a request's
    /// where it lies (the head is large: moving it costs more than writing it).
    pub fn empty() -> Self {
        KeptHead {
            method: Method::GET,
            version: Version::HTTP_11,
            scheme: None,
            bytes: HeadBytes::new(),
            authority: None,
            path: None,
            values: 0,
        }
    }

    /// Keeps a copy of `parts` in place of what this head held.
    pub fn keep_from(&mut self, parts: &Parts) {
        let authority = parts.uri.authority().map(Authority::as_str);
        let path = parts.uri.path_and_query().map(PathAndQuery::as_str);
        let authority_bytes = authority.unwrap_or_default().as_bytes();
        let path_bytes = path.unwrap_or_default().as_bytes();
        // Written in one pass where it fits, as nearly every head does; measured first
        // only when it does not.
        self.bytes.write(
            |out| write_head(out, authority_bytes, path_bytes, &parts.headers),
            || {
                let records: usize = parts
                    .headers
                    .iter()
                    .map(|(name, value)| RECORD_HEADER + name.as_str().len() + value.len())
                    .sum();
                authority_bytes.len() + path_bytes.len() + records
            },
        );
        self.method = parts.method.clone();
        self.version = parts.version;
        self.scheme = parts.uri.scheme().cloned();
        self.authority = authority.map(|a| length(a.len()));
        self.path = path.map(|p| length(p.len()));
        self.values = parts.headers.len();
    }

    /// A head equal to the one kept (with no extensions), with room in its header map for
    /// `more` headers.
    ///
    /// Fails only if a header value was made with `HeaderValue::from_maybe_shared_unchecked`
    /// out of bytes that `http` refuses, or the URI's parts out of ones it refuses.
    pub fn make(&self, more: usize) -> Result<Parts, http::Error> {
        let mut rest = Bytes::copy_from_slice(self.bytes.as_slice());
        let mut uri = uri::Parts::default();
        uri.scheme = self.scheme.clone();
        uri.authority = self
            .authority
            .map(|len| Authority::from_maybe_shared(rest.split_to(len as usize)))
            .transpose()?;
        uri.path_and_query = self
            .path
            .map(|len| PathAndQuery::from_maybe_shared(rest.split_to(len as usize)))
            .transpose()?;
        let mut headers = HeaderMap::with_capacity(self.values + more);
        while rest.has_remaining() {
            let flags = rest.get_u8();
            let name_len = usize::from(rest.get_u16_le());
            let value_len = rest.get_u32_le() as usize;
            let name = HeaderName::from_bytes(&rest.split_to(name_len))?;
            let mut value = HeaderValue::from_maybe_shared(rest.split_to(value_len))?;
            value.set_sensitive(flags & SENSITIVE != 0);
            headers.append(name, value);
        }
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.method = self.method.clone();
        parts.uri = Uri::from_parts(uri)?;
        parts.version = self.version;
        parts.headers = headers;
        Ok(parts)
    }
}

/// A length as kept: a request head is far smaller than 4 GiB (hyper's limit is 400 KiB).
fn length(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    fn head(uri: &str) -> Parts {
        let mut request = Request::builder()
            .method(Method::PATCH)
            .uri(uri)
            .version(Version::HTTP_2)
            .body(())
            .unwrap();
        let headers = request.headers_mut();
        headers.insert(header::HOST, HeaderValue::from_static("catalog"));
        headers.append("x-custom", HeaderValue::from_static("one"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        headers.append("x-custom", HeaderValue::from_static("two"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static(""));
        let mut secret = HeaderValue::from_bytes(b"Bearer \xfftoken").unwrap();
        secret.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, secret);
        request.into_parts().0
    }

    fn assert_same(made: &Parts, kept: &Parts) {
        assert_eq!(made.method, kept.method);
        assert_eq!(made.uri, kept.uri);
        assert_eq!(made.uri.to_string(), kept.uri.to_string());
        assert_eq!(made.version, kept.version);
        assert_eq!(made.headers, kept.headers);
        let order = |parts: &Parts| {
            parts
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), value.clone(), value.is_sensitive()))
                .collect::<Vec<_>>()
        };
        assert_eq!(order(made), order(kept));
    }

    #[test]
    fn every_form_of_uri_and_every_header_read_back_as_kept() {
        for uri in [
            "/items?page=2&sort=name",
            "/",
            "http://catalog.shop:8080/items/1?x=%20",
            "https://catalog/",
            "http://catalog",
            "catalog.shop:443",
            "*",
        ] {
            let kept = head(uri);
            let copy = KeptHead::keep(&kept);
            assert_same(&copy.make(0).unwrap(), &kept);
            // Each retry reads it again.
            assert_same(&copy.make(2).unwrap(), &kept);
        }
    }

    #[test]
    fn every_length_is_put_byte_for_byte() {
        let source: Vec<u8> = (1..=40).collect();
        for n in 0..=source.len() {
            let mut out = [0u8; 48];
            let rest = put(&mut out, &source[..n]).unwrap();
            assert_eq!(rest.len(), 48 - n);
            assert_eq!(&out[..n], &source[..n], "{n} bytes");
            assert!(out[n..].iter().all(|&b| b == 0), "nothing past {n} bytes");
        }
    }

    #[test]
    fn a_head_too_large_to_keep_in_place_is_kept_on_the_heap_and_reads_back() {
        let mut kept = head("/items");
        let long = "x".repeat(IN_PLACE);
        kept.headers
            .insert("x-long", HeaderValue::from_str(&long).unwrap());
        let copy = KeptHead::keep(&kept);
        assert!(copy.bytes.heap.is_some(), "over {IN_PLACE} bytes");
        assert_same(&copy.make(0).unwrap(), &kept);
        let small = KeptHead::keep(&head("/items"));
        assert!(small.bytes.heap.is_none(), "an ordinary head");
        assert_same(&small.make(0).unwrap(), &head("/items"));
    }

    #[test]
    fn a_head_with_no_headers_and_an_extension_method() {
        let mut kept = head("/");
        kept.headers.clear();
        kept.method = Method::from_bytes(b"PURGE").unwrap();
        let copy = KeptHead::keep(&kept);
        assert_same(&copy.make(0).unwrap(), &kept);
    }

    #[test]
    fn the_made_head_is_a_copy_changes_to_the_original_do_not_reach() {
        let mut kept = head("/items");
        let copy = KeptHead::keep(&kept);
        kept.headers.insert("x-late", HeaderValue::from_static("1"));
        let made = copy.make(1).unwrap();
        assert!(!made.headers.contains_key("x-late"));
    }
}
