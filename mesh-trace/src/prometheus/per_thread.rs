//! Counting per thread: each thread that counts has a cell of its own, which only it writes,
//! so that a count is a load and a store rather than an atomic read-modify-write (some 7 ns
//! on an idle core, and the counter's cache line passed between cores when every worker counts
//! each request into the same series). A reading sums the threads' cells. The cells are
//! atomics only so that a scrape on another thread can read them; a thread that takes up an
//! exited one's id carries its cell on ([`ThreadLocal`]).

use metrics::CounterFn;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use thread_local::ThreadLocal;

/// Adds `n` to `cell`, which only this thread writes: a load and a store, which no other
/// writer can come between.
pub(super) fn add_alone(cell: &AtomicU64, n: u64) {
    cell.store(cell.load(Relaxed).wrapping_add(n), Relaxed);
}

/// A Prometheus counter each thread counts into a cell of its own: a load and a store, not an
/// atomic read-modify-write, and no cache line shared between the cores that count. Reading it
/// sums the cells.
///
/// ```
/// use mesh_trace::prometheus::PerThreadCounter;
/// use metrics::CounterFn;
/// let requests = PerThreadCounter::default();
/// requests.increment(2);
/// std::thread::scope(|scope| { scope.spawn(|| requests.increment(3)); });
/// assert_eq!(requests.total(), 5);
/// requests.absolute(9);
/// assert_eq!(requests.total(), 9);
/// requests.absolute(4);
/// assert_eq!(requests.total(), 9, "a counter never goes down");
/// ```
#[derive(Debug, Default)]
pub struct PerThreadCounter {
    cells: ThreadLocal<AtomicU64>,
}

impl PerThreadCounter {
    /// The count of every thread.
    pub fn total(&self) -> u64 {
        self.cells
            .iter()
            .fold(0u64, |total, cell| total.wrapping_add(cell.load(Relaxed)))
    }
}

impl CounterFn for PerThreadCounter {
    fn increment(&self, value: u64) {
        add_alone(self.cells.get_or_default(), value);
    }

    /// Raises the total to `value` when it is below it (this thread's cell takes the
    /// difference); as read now, while other threads may be counting.
    fn absolute(&self, value: u64) {
        let total = self.total();
        if value > total {
            add_alone(self.cells.get_or_default(), value - total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up_each_in_its_own_cell() {
        let counter = PerThreadCounter::default();
        let together = std::sync::Barrier::new(4);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let (counter, together) = (&counter, &together);
                scope.spawn(move || {
                    for _ in 0..10_000 {
                        counter.increment(1);
                    }
                    together.wait();
                });
            }
        });
        assert_eq!(counter.total(), 40_000);
        assert_eq!(
            counter.cells.iter().count(),
            4,
            "one cell per thread alive at once"
        );
    }
}
