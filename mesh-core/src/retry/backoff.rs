//! [`Backoff`]: the wait before each retry — Envoy's jittered exponential back-off.
//!
//! Envoy's current `JitteredExponentialBackOffStrategy` keeps an interval `I` that starts at
//! the base; each retry waits a uniformly random time in `[0, I)` ("full jitter"), then `I`
//! doubles while it is below half the maximum, else becomes the maximum. With the default
//! 25 ms base (maximum 250 ms) the successive bounds are 25, 50, 100, 200, 250, 250… ms.

use std::time::Duration;

/// The back-off state of one request; see the [module docs](self).
///
/// ```
/// use mesh_core::retry::Backoff;
/// use std::time::Duration;
/// let mut backoff = Backoff::new(Duration::from_millis(25));
/// let bounds: Vec<_> = (0..6)
///     .map(|_| {
///         let bound = backoff.bound();
///         assert!(backoff.next_delay() < bound);
///         bound.as_millis()
///     })
///     .collect();
/// assert_eq!(bounds, [25, 50, 100, 200, 250, 250]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    interval: Duration,
    max: Duration,
}

impl Backoff {
    /// Back-off starting at `base`, with a maximum of ten times `base`.
    ///
    /// ```
    /// use mesh_core::retry::Backoff;
    /// use std::time::Duration;
    /// let mut backoff = Backoff::new(Duration::from_millis(100));
    /// assert_eq!(backoff.bound(), Duration::from_millis(100));
    /// for _ in 0..10 {
    ///     backoff.next_delay();
    /// }
    /// assert_eq!(backoff.bound(), Duration::from_secs(1), "capped at ten times the base");
    /// ```
    pub fn new(base: Duration) -> Self {
        Backoff {
            interval: base,
            max: base.saturating_mul(10),
        }
    }

    /// The exclusive upper bound of the next delay.
    ///
    /// ```
    /// use mesh_core::retry::Backoff;
    /// use std::time::Duration;
    /// let mut backoff = Backoff::new(Duration::from_millis(10));
    /// backoff.next_delay();
    /// assert_eq!(backoff.bound(), Duration::from_millis(20));
    /// ```
    pub fn bound(&self) -> Duration {
        self.interval
    }

    /// Draws the next delay (zero when the base is zero) and advances the interval.
    ///
    /// ```
    /// use mesh_core::retry::Backoff;
    /// use std::time::Duration;
    /// let mut backoff = Backoff::new(Duration::from_millis(25));
    /// assert!(backoff.next_delay() < Duration::from_millis(25));
    /// assert!(backoff.next_delay() < Duration::from_millis(50));
    /// assert_eq!(Backoff::new(Duration::ZERO).next_delay(), Duration::ZERO);
    /// ```
    pub fn next_delay(&mut self) -> Duration {
        let bound = u64::try_from(self.interval.as_nanos()).unwrap_or(u64::MAX);
        let delay = match bound {
            0 => Duration::ZERO,
            bound => Duration::from_nanos(rand::random_range(0..bound)),
        };
        self.interval = if self.interval < self.max / 2 {
            self.interval.saturating_mul(2)
        } else {
            self.max
        };
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_double_then_cap_at_ten_times_base() {
        let mut backoff = Backoff::new(Duration::from_millis(25));
        let mut bounds = Vec::new();
        for _ in 0..6 {
            bounds.push(backoff.bound().as_millis());
            backoff.next_delay();
        }
        assert_eq!(bounds, [25, 50, 100, 200, 250, 250]);
    }

    #[test]
    fn samples_stay_in_range_and_spread() {
        for _ in 0..200 {
            let mut backoff = Backoff::new(Duration::from_millis(25));
            for bound in [25, 50, 100, 200, 250, 250] {
                assert!(backoff.next_delay() < Duration::from_millis(bound));
            }
        }
        // Full jitter: draws cover the whole range, not just its top or bottom.
        let draws: Vec<_> = (0..1000)
            .map(|_| Backoff::new(Duration::from_millis(100)).next_delay())
            .collect();
        assert!(draws.iter().any(|d| *d < Duration::from_millis(20)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(80)));
    }

    #[test]
    fn zero_and_huge_bases_do_not_panic() {
        let mut zero = Backoff::new(Duration::ZERO);
        assert_eq!(zero.next_delay(), Duration::ZERO);
        let mut huge = Backoff::new(Duration::MAX);
        huge.next_delay();
        huge.next_delay();
        assert_eq!(huge.bound(), Duration::MAX);
    }
}
