//! Counting per thread: [`PerThreadCounts`] gives each thread that counts cells of its own,
//! which only it writes, so that a count is a load and a store rather than an atomic
//! read-modify-write (some 7 ns on an idle core, and the cache line passed between cores when
//! every worker counts each request into the same cluster's or endpoint's counters). A reading
//! sums the threads' cells. The cells are atomics only so that a reader on another thread (a
//! scrape, the admin server, the canary controller) can read them; a thread that takes up an
//! exited one's id carries its cells on ([`ThreadLocal`]).
//!
//! What is counted this way must only ever go up: a reading taken while threads count is a sum
//! of cells read one after another, and there is no atomic "take and reset".

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use thread_local::ThreadLocal;

/// Adds `n` to `cell`, which only this thread writes: a load and a store, which no other
/// writer can come between.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
/// let cell = AtomicU64::new(2);
/// mesh_core::per_thread::add_alone(&cell, 3);
/// assert_eq!(cell.load(Relaxed), 5);
/// ```
pub fn add_alone(cell: &AtomicU64, n: u64) {
    cell.store(cell.load(Relaxed).wrapping_add(n), Relaxed);
}

/// `N` counters, each thread counting into cells of its own; see the [module docs](self).
///
/// ```
/// use mesh_core::per_thread::PerThreadCounts;
/// let counts = PerThreadCounts::<2>::default();
/// counts.add(0, 2);
/// std::thread::scope(|scope| { scope.spawn(|| counts.add(0, 3)); });
/// counts.add(1, 1);
/// assert_eq!(counts.totals(), [5, 1]);
/// assert_eq!(counts.total(0), 5);
/// ```
pub struct PerThreadCounts<const N: usize> {
    cells: ThreadLocal<[AtomicU64; N]>,
}

impl<const N: usize> PerThreadCounts<N> {
    /// Adds `n` to counter `index` (below `N`) in this thread's cells.
    pub fn add(&self, index: usize, n: u64) {
        add_alone(&self.mine()[index], n);
    }

    /// This thread's cells, made at its first count: for counting into several of them with
    /// one lookup, each with [`add_alone`] (only this thread may write them).
    ///
    /// ```
    /// use mesh_core::per_thread::{PerThreadCounts, add_alone};
    /// let counts = PerThreadCounts::<2>::default();
    /// let mine = counts.mine();
    /// add_alone(&mine[0], 1);
    /// add_alone(&mine[1], 4);
    /// assert_eq!((counts.totals(), counts.threads()), ([1, 4], 1));
    /// ```
    pub fn mine(&self) -> &[AtomicU64; N] {
        self.cells
            .get_or(|| std::array::from_fn(|_| AtomicU64::new(0)))
    }

    /// Counter `index` (below `N`) summed over the threads.
    pub fn total(&self, index: usize) -> u64 {
        self.cells.iter().fold(0u64, |total, cells| {
            total.wrapping_add(cells[index].load(Relaxed))
        })
    }

    /// Every counter summed over the threads.
    pub fn totals(&self) -> [u64; N] {
        let mut totals = [0u64; N];
        for cells in self.cells.iter() {
            for (total, cell) in totals.iter_mut().zip(cells) {
                *total = total.wrapping_add(cell.load(Relaxed));
            }
        }
        totals
    }

    /// How many sets of cells there are: one per thread id that has counted (a thread that
    /// takes up an exited thread's id counts on in its cells).
    pub fn threads(&self) -> usize {
        self.cells.iter().count()
    }
}

impl<const N: usize> Default for PerThreadCounts<N> {
    fn default() -> Self {
        PerThreadCounts {
            cells: ThreadLocal::new(),
        }
    }
}

impl<const N: usize> std::fmt::Debug for PerThreadCounts<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerThreadCounts")
            .field("totals", &self.totals())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up_each_thread_in_cells_of_its_own() {
        let counts = PerThreadCounts::<3>::default();
        let together = std::sync::Barrier::new(4);
        std::thread::scope(|scope| {
            for thread in 0..4u64 {
                let (counts, together) = (&counts, &together);
                scope.spawn(move || {
                    for _ in 0..10_000 {
                        counts.add(0, 1);
                        counts.add(2, thread);
                    }
                    together.wait();
                });
            }
        });
        assert_eq!(counts.totals(), [40_000, 0, 60_000]);
        assert_eq!(counts.total(2), 60_000);
        assert_eq!(
            counts.threads(),
            4,
            "one set of cells per thread alive at once"
        );
    }
}
