//! The host names client layers are made for, kept for the life of the process.
//!
//! Every request a [`MeshClient`](super::MeshClient) sends carries its host twice, in its URI
//! and in its `Host` header, and the layers below copy the URI's authority (telemetry, the
//! forwarder). Made of a string the layer owns, each copy would count a shared reference up
//! and each drop count it down: an atomic read-modify-write apiece, several per request. Made
//! of a `&'static str`, a copy is a pointer's. So each distinct host name is kept once, here,
//! the first time a layer is made for it: a few bytes per host the application talks to,
//! which its configuration bounds.

use std::{
    collections::BTreeSet,
    sync::{Mutex, PoisonError},
};

/// The names kept so far.
static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

/// `name`, kept for the life of the process: the same `&'static str` for every call with an
/// equal name.
pub(crate) fn kept(name: &str) -> &'static str {
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(&kept) = names.get(name) {
        return kept;
    }
    let kept: &'static str = Box::leak(name.into());
    names.insert(kept);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_equal_name_is_kept_once() {
        let first = kept(&String::from("catalog.shop:8080"));
        let again = kept(&String::from("catalog.shop:8080"));
        assert_eq!(first, "catalog.shop:8080");
        assert_eq!(first.as_ptr(), again.as_ptr(), "the same copy");
        assert_ne!(kept("reviews").as_ptr(), first.as_ptr());
    }
}
