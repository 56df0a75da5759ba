//! The wall-clock time of a monotonic instant, without reading the system clock per request.
//!
//! Telemetry needs both clocks per request: a monotonic [`Instant`] for the duration and the
//! wall-clock [`SystemTime`] of the start (`%START_TIME%`, a span's timestamp). Reading the
//! system clock costs as much as reading the monotonic one (about 50–70 ns on a VM), so
//! [`system_time_at`] derives it from the instant already taken, through a per-thread anchor (a
//! pair of readings of both clocks) renewed every [`ANCHOR_LIFETIME`] so that the derived time
//! follows the system clock's adjustments within that lag, as Envoy's cached per-thread time
//! does.

use std::{
    cell::Cell,
    time::{Duration, Instant, SystemTime},
};

/// How long a thread's anchor is used before both clocks are read again.
pub const ANCHOR_LIFETIME: Duration = Duration::from_secs(1);

/// Readings of both clocks taken together.
#[derive(Clone, Copy, Debug)]
struct Anchor {
    instant: Instant,
    system: SystemTime,
}

impl Anchor {
    fn now() -> Self {
        Anchor {
            instant: Instant::now(),
            system: SystemTime::now(),
        }
    }

    /// The wall-clock time of `instant` by this anchor, and how far apart the two instants
    /// are (either way): the anchor speaks for instants less than [`ANCHOR_LIFETIME`] apart.
    fn place(self, instant: Instant) -> (SystemTime, Duration) {
        let (placed, apart) = match instant.checked_duration_since(self.instant) {
            Some(after) => (self.system.checked_add(after), after),
            None => {
                let before = self.instant.duration_since(instant);
                (self.system.checked_sub(before), before)
            }
        };
        (placed.unwrap_or(self.system), apart)
    }
}

thread_local! {
    static ANCHOR: Cell<Option<Anchor>> = const { Cell::new(None) };
}

/// The wall-clock time of `instant` (taken a moment ago on any thread), from this thread's
/// anchor; the system clock is read only to renew the anchor.
///
/// ```
/// use mesh_core::wall_clock::system_time_at;
/// use std::time::{Duration, Instant, SystemTime};
/// let started = Instant::now();
/// let derived = system_time_at(started);
/// let read = SystemTime::now();
/// let apart = read.duration_since(derived).unwrap_or_else(|e| e.duration());
/// assert!(apart < Duration::from_millis(100), "{apart:?}");
/// ```
pub fn system_time_at(instant: Instant) -> SystemTime {
    ANCHOR.with(|anchor| {
        if let Some((placed, apart)) = anchor.get().map(|current| current.place(instant))
            && apart < ANCHOR_LIFETIME
        {
            return placed;
        }
        let renewed = Anchor::now();
        anchor.set(Some(renewed));
        renewed.place(instant).0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anchor_places_instants_either_side_and_speaks_for_its_lifetime_only() {
        let anchor = Anchor::now();
        let fits = |instant| anchor.place(instant).1 < ANCHOR_LIFETIME;
        let later = anchor.instant + Duration::from_millis(250);
        assert!(fits(later));
        assert_eq!(
            anchor.place(later).0,
            anchor.system + Duration::from_millis(250)
        );
        assert!(!fits(anchor.instant + ANCHOR_LIFETIME));
        if let Some(earlier) = anchor.instant.checked_sub(Duration::from_millis(1)) {
            assert!(fits(earlier));
            assert_eq!(
                anchor.place(earlier).0,
                anchor.system - Duration::from_millis(1)
            );
        }
        if let Some(long_before) = anchor.instant.checked_sub(ANCHOR_LIFETIME) {
            assert!(!fits(long_before));
        }
    }

    #[test]
    fn derived_times_follow_the_instants_and_stay_near_the_system_clock() {
        let first = Instant::now();
        let second = first + Duration::from_millis(3);
        let (a, b) = (system_time_at(first), system_time_at(second));
        assert_eq!(b.duration_since(a).unwrap(), Duration::from_millis(3));
        // An instant long before the anchor renews it, and is placed from the new one.
        if let Some(old) = first.checked_sub(Duration::from_secs(5)) {
            let gap = a.duration_since(system_time_at(old)).unwrap();
            assert!(gap >= Duration::from_millis(4_900) && gap <= Duration::from_millis(5_100));
        }
        let apart = SystemTime::now()
            .duration_since(system_time_at(Instant::now()))
            .unwrap_or_else(|e| e.duration());
        assert!(apart < Duration::from_millis(100), "{apart:?}");
    }
}
