//! [`LentExtensions`]: a request's extensions, taken by the service that sends the request and
//! handed back to the retry layer when that service is done with them.
//!
//! A retry is made of the request's head and its extensions, while the first attempt consumes
//! the request. Keeping a clone of the extensions costs an allocation for the map and one for
//! every value in it, on every request that may be retried, to serve the few that are. The
//! service at the bottom of the stack, which reads the mesh's extensions (destination, retry
//! context, transport) but sends the request on with none of them, can instead lend them back:
//! it takes them out of the request when it starts, and when it is done — answered, failed,
//! refused before sending, or dropped at a timeout — hands them to the request's
//! [`RetryContext`], from which the retry layer makes the next attempt. Only when the retry
//! layer asked for them ([`RetryContext::expect_extensions_back`]); otherwise they are cleared
//! and kept for the thread's next request ([`spare_extensions`]), as
//! they are when the retry layer is done with them.
//!
//! The context itself is taken out before they are kept in it, or it would hold itself.

use super::RetryContext;
use crate::spare_extensions;
use http::{Extensions, Request};
use std::ops::Deref;

/// A request's extensions, handed back to its retry context when dropped; see the
/// [module docs](self).
///
/// ```
/// use mesh_core::retry::{LentExtensions, RetryContext};
/// let context = RetryContext::default();
/// context.expect_extensions_back(); // the retry layer, before the first attempt
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(context.clone());
/// request.extensions_mut().insert("catalog");
///
/// // The service that sends the request: it reads them, and sends the request without them.
/// let extensions = LentExtensions::take(&mut request);
/// assert_eq!(extensions.get::<&str>(), Some(&"catalog"));
/// assert!(request.extensions().is_empty());
/// drop(extensions); // done: handed back
///
/// assert_eq!(context.take_handed_back().unwrap().get::<&str>(), Some(&"catalog"));
/// ```
#[derive(Debug, Default)]
pub struct LentExtensions(Extensions);

impl LentExtensions {
    /// Takes `request`'s extensions, leaving it none.
    ///
    /// ```
    /// use mesh_core::retry::LentExtensions;
    /// let mut request = http::Request::new(());
    /// request.extensions_mut().insert(7u8);
    /// let lent = LentExtensions::take(&mut request);
    /// assert_eq!((lent.get::<u8>(), request.extensions().is_empty()), (Some(&7), true));
    /// ```
    pub fn take<B>(request: &mut Request<B>) -> Self {
        LentExtensions(std::mem::take(request.extensions_mut()))
    }
}

impl Deref for LentExtensions {
    type Target = Extensions;

    fn deref(&self) -> &Extensions {
        &self.0
    }
}

impl Drop for LentExtensions {
    fn drop(&mut self) {
        let mut extensions = std::mem::take(&mut self.0);
        match extensions.remove::<RetryContext>() {
            Some(context) if context.expects_extensions_back() => {
                context.keep_handed_back(extensions);
            }
            // Not wanted: cleared, for the next request to use.
            _ => spare_extensions::give_back(extensions),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn handed_back_only_when_asked_for_and_never_holding_their_context() {
        let context = RetryContext::default();
        let lend = |context: &RetryContext| {
            let mut request = Request::new(());
            request.extensions_mut().insert(context.clone());
            request.extensions_mut().insert(Arc::new(7u8));
            drop(LentExtensions::take(&mut request));
        };
        lend(&context);
        assert!(
            context.take_handed_back().is_none(),
            "not asked for: dropped"
        );

        context.expect_extensions_back();
        lend(&context);
        let back = context.take_handed_back().expect("asked for: handed back");
        assert_eq!(back.get::<Arc<u8>>().map(|v| **v), Some(7));
        assert!(back.get::<RetryContext>().is_none());

        // What is kept holds no clone of the context, so dropping the last one frees both.
        lend(&context);
        let alive = context.liveness_probe();
        drop(context);
        assert!(!alive(), "no cycle through the kept extensions");
    }

    #[test]
    fn extensions_without_a_context_are_dropped() {
        let value = Arc::new(1u8);
        let mut request = Request::new(());
        request.extensions_mut().insert(value.clone());
        drop(LentExtensions::take(&mut request));
        assert_eq!(Arc::strong_count(&value), 1);
    }
}
