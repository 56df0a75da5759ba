//! [`KeptHead`]: the request head a retry is made from, kept in one buffer.
//!
//! A retry needs the method, URI, version, headers and extensions of the request, while the
//! first attempt takes the request itself. Cloning [`Parts`] would allocate a header map's two
//! tables and bump a shared reference count for every header value and URI part — hyper parses
//! a head into slices of its read buffer, so each is an atomic read-modify-write — then undo it
//! all when the attempt succeeds, as nearly every one does. So the URI's authority and path and
//! the headers are copied, back to back, into one buffer, and only a retry reads a head out of it
//! again. The extensions are typed values and are cloned as they are.
//!
//! Measured in the `resilience_layers` bench (`floor_keep_request_head`, a head of three
//! headers): cloning `Parts` costs about twice what keeping the head this way does.

use bytes::{Buf, BufMut, Bytes};
use http::{
    Extensions, HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version,
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
    bytes: Vec<u8>,
    /// `None`: the URI has no authority.
    authority: Option<u32>,
    /// `None`: the URI has no path (an authority-form URI).
    path: Option<u32>,
    /// How many header values the records hold.
    values: usize,
    extensions: Extensions,
}

/// Each header value in [`KeptHead::bytes`] is a record: a byte of flags ([`SENSITIVE`]), the
/// name's length (2 bytes, little-endian: a name is at most 64 KiB), the value's (4 bytes), then
/// the name and the value. This is the size of the first three.
const RECORD_HEADER: usize = 7;

/// The value is sensitive ([`HeaderValue::is_sensitive`]).
const SENSITIVE: u8 = 1;

impl KeptHead {
    /// Keeps a copy of `parts`.
    pub fn keep(parts: &Parts) -> Self {
        let authority = parts.uri.authority().map(Authority::as_str);
        let path = parts.uri.path_and_query().map(PathAndQuery::as_str);
        let records: usize = parts
            .headers
            .iter()
            .map(|(name, value)| RECORD_HEADER + name.as_str().len() + value.len())
            .sum();
        let uri_len = authority.map_or(0, str::len) + path.map_or(0, str::len);
        let mut bytes = Vec::with_capacity(uri_len + records);
        bytes.extend_from_slice(authority.unwrap_or_default().as_bytes());
        bytes.extend_from_slice(path.unwrap_or_default().as_bytes());
        for (name, value) in &parts.headers {
            let name = name.as_str().as_bytes();
            let value_bytes = value.as_bytes();
            bytes.put_u8(if value.is_sensitive() { SENSITIVE } else { 0 });
            // A header name is at most 64 KiB (`HeaderName`'s own limit).
            bytes.put_u16_le(name.len() as u16);
            bytes.put_u32_le(length(value_bytes.len()));
            bytes.extend_from_slice(name);
            bytes.extend_from_slice(value_bytes);
        }
        KeptHead {
            method: parts.method.clone(),
            version: parts.version,
            scheme: parts.uri.scheme().cloned(),
            bytes,
            authority: authority.map(|a| length(a.len())),
            path: path.map(|p| length(p.len())),
            values: parts.headers.len(),
            extensions: parts.extensions.clone(),
        }
    }

    /// The kept request's extensions.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// A head equal to the one kept, with room in its header map for `more` headers.
    ///
    /// Fails only if a header value was made with `HeaderValue::from_maybe_shared_unchecked`
    /// out of bytes that `http` refuses, or the URI's parts out of ones it refuses.
    pub fn make(&self, more: usize) -> Result<Parts, http::Error> {
        let mut rest = Bytes::copy_from_slice(&self.bytes);
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
        parts.extensions = self.extensions.clone();
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
        request.extensions_mut().insert(7u32);
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
        assert_eq!(made.extensions.get::<u32>(), kept.extensions.get::<u32>());
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
    fn a_head_with_no_headers_and_an_extension_method() {
        let mut kept = head("/");
        kept.headers.clear();
        kept.method = Method::from_bytes(b"PURGE").unwrap();
        let copy = KeptHead::keep(&kept);
        assert_same(&copy.make(0).unwrap(), &kept);
        assert_eq!(copy.extensions().get::<u32>(), Some(&7));
    }

    #[test]
    fn the_made_head_is_a_copy_changes_to_the_original_do_not_reach() {
        let mut kept = head("/items");
        let copy = KeptHead::keep(&kept);
        kept.headers.insert("x-late", HeaderValue::from_static("1"));
        kept.extensions.insert(8u32);
        let made = copy.make(1).unwrap();
        assert!(!made.headers.contains_key("x-late"));
        assert_eq!(made.extensions.get::<u32>(), Some(&7));
    }
}
