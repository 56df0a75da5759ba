//! [`PerThreadCounter`]: a Prometheus counter counted per thread, on
//! [`mesh_core::per_thread`]'s cells (see there why).

use mesh_core::per_thread::PerThreadCounts;
use metrics::CounterFn;

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
    cells: PerThreadCounts<1>,
}

impl PerThreadCounter {
    /// The count of every thread.
    pub fn total(&self) -> u64 {
        self.cells.total(0)
    }
}

impl CounterFn for PerThreadCounter {
    fn increment(&self, value: u64) {
        self.cells.add(0, value);
    }

    /// Raises the total to `value` when it is below it (this thread's cell takes the
    /// difference); as read now, while other threads may be counting.
    fn absolute(&self, value: u64) {
        let total = self.total();
        if value > total {
            self.cells.add(0, value - total);
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
            counter.cells.threads(),
            4,
            "one cell per thread alive at once"
        );
    }
}
