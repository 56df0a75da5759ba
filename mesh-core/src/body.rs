//! The body type every `mesh` layer speaks.
//!
//! Layers that create responses themselves (local replies, direct responses) and layers that
//! pass upstream bodies through need one common type: a boxed [`http_body::Body`] of [`Bytes`]
//! whose errors are boxed too. Boxing costs one allocation per message, never a copy.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};

/// A type-erased error, as tower and hyper use.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The boxed, streaming body used throughout `mesh`.
pub type Body = BoxBody<Bytes, BoxError>;

/// A body holding `data` in full.
///
/// ```
/// let body = mesh_core::body::full("hello");
/// # let _ = body;
/// ```
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A body with no data.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Boxes any body whose data is [`Bytes`] into a [`Body`].
///
/// ```
/// use http_body_util::Full;
/// let body = mesh_core::body::boxed(Full::new(bytes::Bytes::from_static(b"x")));
/// # let _ = body;
/// ```
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed()
}
