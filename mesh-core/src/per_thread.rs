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
//!
//! A [`ThreadLocal`] lays its threads' values side by side, so that two threads' small values
//! can share a cache line, and each thread's writes take the line from the other's core. Values
//! one thread writes often are kept [`OwnLine`]: measured with `benches/in_process.rs`
//! (`in_process_cpu_threads`, two threads sending through one mesh), a request took 4.47–4.65 µs
//! per thread with the counters, histogram shards and per-thread stacks side by side, and
//! 3.86–4.23 µs in lines of their own.

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
    cells: ThreadLocal<OwnLine<[AtomicU64; N]>>,
}

/// A value in cache lines of its own: aligned to, and a whole number of, 128 bytes (two
/// 64-byte lines, as x86's prefetcher fetches lines in pairs), so that no other value shares
/// them. For what one thread writes beside other threads' values in a [`ThreadLocal`].
///
/// ```
/// use mesh_core::per_thread::OwnLine;
/// use std::sync::atomic::AtomicU64;
/// let cells = [OwnLine(AtomicU64::new(0)), OwnLine(AtomicU64::new(0))];
/// let (first, second) = (&*cells[0] as *const AtomicU64, &*cells[1] as *const AtomicU64);
/// assert_eq!(second as usize - first as usize, 128);
/// assert_eq!(first as usize % 128, 0);
/// ```
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct OwnLine<T>(pub T);

impl<T> std::ops::Deref for OwnLine<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<const N: usize> PerThreadCounts<N> {
    /// Adds `n` to counter `index` (below `N`) in this thread's cells.
    ///
    /// ```
    /// use mesh_core::per_thread::PerThreadCounts;
    /// let counts = PerThreadCounts::<2>::default();
    /// counts.add(1, 5);
    /// counts.add(1, 2);
    /// assert_eq!(counts.totals(), [0, 7]);
    /// ```
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
            .get_or(|| OwnLine(std::array::from_fn(|_| AtomicU64::new(0))))
    }

    /// Counter `index` (below `N`) summed over the threads.
    ///
    /// ```
    /// use mesh_core::per_thread::PerThreadCounts;
    /// let counts = PerThreadCounts::<1>::default();
    /// counts.add(0, 2);
    /// std::thread::scope(|s| { s.spawn(|| counts.add(0, 3)); });
    /// assert_eq!(counts.total(0), 5, "both threads' counts");
    /// ```
    pub fn total(&self, index: usize) -> u64 {
        self.cells.iter().fold(0u64, |total, cells| {
            total.wrapping_add(cells[index].load(Relaxed))
        })
    }

    /// Every counter summed over the threads.
    ///
    /// ```
    /// use mesh_core::per_thread::PerThreadCounts;
    /// let counts = PerThreadCounts::<3>::default();
    /// counts.add(0, 1);
    /// counts.add(2, 9);
    /// assert_eq!(counts.totals(), [1, 0, 9]);
    /// ```
    pub fn totals(&self) -> [u64; N] {
        let mut totals = [0u64; N];
        for cells in self.cells.iter() {
            for (total, cell) in totals.iter_mut().zip(cells.iter()) {
                *total = total.wrapping_add(cell.load(Relaxed));
            }
        }
        totals
    }

    /// How many sets of cells there are: one per thread id that has counted (a thread that
    /// takes up an exited thread's id counts on in its cells).
    ///
    /// ```
    /// use mesh_core::per_thread::PerThreadCounts;
    /// let counts = PerThreadCounts::<1>::default();
    /// assert_eq!(counts.threads(), 0, "no thread has counted");
    /// counts.add(0, 1);
    /// assert_eq!(counts.threads(), 1);
    /// ```
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

    /// Where each of `threads` threads, all alive at once, finds the value `of` gives it.
    fn addresses_by_thread<T>(threads: usize, of: impl Fn() -> *const T + Sync) -> Vec<usize> {
        let barrier = std::sync::Barrier::new(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let address = of() as usize;
                        barrier.wait();
                        address
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn each_threads_cells_lie_in_lines_of_their_own() {
        let counts = PerThreadCounts::<3>::default();
        let addresses = addresses_by_thread(4, || counts.mine() as *const _);
        for address in &addresses {
            assert_eq!(address % 128, 0, "{addresses:x?}");
        }
        let mut lines: Vec<_> = addresses.iter().map(|a| a / 128).collect();
        lines.sort_unstable();
        lines.dedup();
        assert_eq!(lines.len(), 4);
    }

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
