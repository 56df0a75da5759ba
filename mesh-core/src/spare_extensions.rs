//! Request extension maps kept for reuse, per thread.
//!
//! The mesh's layers tell each other what they decided through a request's extensions, some
//! five values per request. An `http::Extensions` that starts empty allocates a box for its
//! map, then a table for three values, then, at the fourth, a table twice as large, moving the
//! three over and freeing the first: three allocations, two frees and a rehash per request
//! before any value is counted. A map the mesh is done with — the forwarder hands each
//! request's back ([`LentExtensions`](crate::retry::LentExtensions)) — is cleared instead and
//! kept here, its box and its grown table with it, for the next request made on the thread
//! ([`take`]).
//!
//! Only maps that held values are kept (an unused one holds no allocation), at most
//! [`KEPT`] per thread: a thread that takes fewer than it gives back (a task finishing on
//! another worker than it started) stops keeping them.

use http::Extensions;
use std::cell::RefCell;

/// How many spare maps each thread keeps at most.
pub const KEPT: usize = 16;

thread_local! {
    static SPARE: RefCell<Vec<Extensions>> = const { RefCell::new(Vec::new()) };
}

/// An empty map for a request's extensions: one this thread kept, with its storage, else a
/// new one.
///
/// ```
/// use mesh_core::spare_extensions::{give_back, take};
/// let mut extensions = http::Extensions::new();
/// extensions.insert(7u32);
/// give_back(extensions);
/// let reused = take();
/// assert!(reused.is_empty(), "cleared");
/// ```
pub fn take() -> Extensions {
    SPARE
        .try_with(|spare| spare.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Keeps `extensions`, cleared (its values dropped now), for [`take`]; drops it when it never
/// held a value or the thread keeps [`KEPT`] already.
///
/// ```
/// use mesh_core::spare_extensions::give_back;
/// use std::sync::Arc;
/// let value = Arc::new("a request's");
/// let mut extensions = http::Extensions::new();
/// extensions.insert(value.clone());
/// give_back(extensions);
/// assert_eq!(Arc::strong_count(&value), 1, "its values are dropped at once");
/// ```
pub fn give_back(mut extensions: Extensions) {
    if extensions.is_empty() {
        return;
    }
    // Its values are dropped before this thread's spares are borrowed: dropping one may give
    // back a map of its own.
    extensions.clear();
    let _ = SPARE.try_with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < KEPT {
            spare.push(extensions);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn spares() -> usize {
        SPARE.with(|spare| spare.borrow().len())
    }

    #[test]
    fn a_map_given_back_is_taken_again_cleared() {
        let value = Arc::new(1u8);
        let mut extensions = Extensions::new();
        extensions.insert(value.clone());
        let before = spares();
        give_back(extensions);
        assert_eq!(
            Arc::strong_count(&value),
            1,
            "its values are dropped at once"
        );
        assert_eq!(spares(), before + 1);
        let reused = take();
        assert!(reused.is_empty());
        assert_eq!(spares(), before, "the kept one, not a new one");
    }

    #[test]
    fn unused_maps_are_not_kept_and_at_most_kept_are() {
        give_back(Extensions::new());
        for n in 0..KEPT as u32 + 4 {
            let mut extensions = Extensions::new();
            extensions.insert(n);
            give_back(extensions);
        }
        assert_eq!(spares(), KEPT);
    }
}
