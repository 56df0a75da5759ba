//! Bodies for the unit tests.

use bytes::Bytes;
use http_body::{Body, Frame};
use mesh_core::BoxError;
use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
};

/// A body of ready frames, with no size hint: a streamed body.
pub(crate) struct Frames(pub VecDeque<Frame<Bytes>>);

impl Body for Frames {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
}
