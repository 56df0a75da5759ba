//! Shared bench fixture: a request served with the core's own caches cold.
//!
//! A bench loop sends request after request through the same code, which then stays in the
//! core's L1 and L2 caches; a server's request instead finds them full of what ran in between:
//! the kernel's network stack, the runtime's other tasks. Code that runs once per request pays
//! for each line of it (and of the data it reads) that it fetches from the shared cache. This
//! wrapper reads a buffer larger than the private caches before each request, so that a
//! layer's time over the same wrapped bare service is what it costs where it starts cold.

use std::sync::Arc;

/// Bytes read before each request: twice the largest private (per-core) L2 of today's server
/// cores (2 MiB), so that the lines they held before are gone; well under a shared L3.
const EVICTION_BYTES: usize = 4 << 20;

/// A cache line's length: one read per line is enough to take it.
const LINE: usize = 64;

/// Makes wrappers that evict the core's caches, all reading one buffer.
#[derive(Clone)]
pub struct ColdCaches {
    buffer: Arc<[u8]>,
}

impl ColdCaches {
    pub fn new() -> Self {
        // Written, so that each page is backed by memory of its own (not the shared zero page).
        let buffer = (0..EVICTION_BYTES).map(|byte| byte as u8).collect();
        ColdCaches { buffer }
    }

    /// `service`, reading the whole buffer before each request.
    pub fn before_each_request<S, R>(
        &self,
        service: S,
    ) -> tower::util::MapRequest<S, impl Fn(R) -> R + Clone + use<S, R>> {
        let buffer = self.buffer.clone();
        tower::util::MapRequest::new(service, move |request| {
            let read = buffer
                .iter()
                .step_by(LINE)
                .fold(0u8, |sum, byte| sum ^ byte);
            std::hint::black_box(read);
            request
        })
    }
}
