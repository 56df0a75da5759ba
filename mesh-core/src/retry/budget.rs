//! [`RetryBudget`]: a cap on retries relative to traffic, so that a failing upstream is not hit
//! by a retry storm. The sidecar and the in-process client keep one per cluster, as Envoy does
//! (the proxy records the cluster's in the request's [`RetryContext`](super::RetryContext));
//! a [`RetryLayer`](super::RetryLayer) over any other service shares its own among its
//! requests.
//!
//! A token bucket: every original request that may be retried adds `percent` % of a token,
//! time adds `min_per_sec` tokens per second (the floor that lets quiet clients retry), and a
//! retry takes one whole token — a retry without one is not attempted (the last result is
//! returned as is). The bucket starts with one second of the floor and holds at most one
//! window's worth of it, so from start-up, `retries ≤ percent % × requests + min_per_sec ×
//! (seconds + 1)`, even when a total outage starts the moment the proxy does.
//!
//! A deposit is made for every request and a withdrawal only for a retry, so deposits are
//! counted by each thread in cells of its own ([`PerThreadCounts`]): the workers of a runtime
//! sending to one cluster do not pass one cache line between their cores for every request. A
//! withdrawal takes in the deposits made since the one before, which is when the bucket's
//! share is added and clamped in any case.
//!
//! (tower's `TpsBudget` was the first choice, but its floor is a constant reserve that renews
//! as its window slides, so a 10 s outage could see the floor twice.)

use crate::per_thread::PerThreadCounts;
use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};
use tokio::time::Instant;

/// One token in the bucket's fixed-point unit.
const TOKEN: i64 = 1_000_000;

/// Why [`RetryBudget::new`] refused its settings.
///
/// ```
/// use mesh_core::retry::{RetryBudget, RetryBudgetError};
/// let error = RetryBudget::new(std::time::Duration::from_secs(10), 2_000_000, 20.0).unwrap_err();
/// assert_eq!(error, RetryBudgetError::Floor(2_000_000));
/// assert_eq!(error.to_string(), "retry budget floor 2000000/s must be at most 1000000");
/// ```
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RetryBudgetError {
    /// The window is shorter than 1 s or longer than 1 h.
    #[error("retry budget window {0:?} must be between 1 s and 1 h")]
    Window(Duration),
    /// The percent is not within 0..=1000.
    #[error("retry budget percent {0} must be between 0 and 1000")]
    Percent(f32),
    /// The floor is above 1,000,000 retries a second.
    #[error("retry budget floor {0}/s must be at most 1000000")]
    Floor(u32),
}

/// A retry budget; clones share the bucket.
///
/// ```
/// use mesh_core::retry::RetryBudget;
/// use std::time::Duration;
/// let budget = RetryBudget::new(Duration::from_secs(10), 0, 20.0).unwrap(); // no floor
/// for _ in 0..10 {
///     budget.deposit(); // ten requests…
/// }
/// assert!(budget.withdraw() && budget.withdraw()); // …pay for two retries (20 %)
/// assert!(!budget.withdraw());
/// ```
#[derive(Clone, Debug)]
pub struct RetryBudget(Arc<Bucket>);

#[derive(Debug)]
struct Bucket {
    /// The original requests recorded, counted per thread.
    deposits: PerThreadCounts<1>,
    /// What withdrawals change.
    account: Mutex<Account>,
    per_request: i64,
    per_second: i64,
    cap: i64,
}

/// The bucket's tokens as of the last withdrawal.
#[derive(Debug)]
struct Account {
    /// Tokens × [`TOKEN`], at most `cap`.
    tokens: i64,
    /// When the floor was last added.
    refilled: Instant,
    /// How many deposits `tokens` has taken in.
    deposits_taken: u64,
}

impl RetryBudget {
    /// Default window: the bucket holds at most this long a stretch of the floor.
    ///
    /// However long the default budget sits unused, it saves up only 10 s × 10/s = 100 retries:
    ///
    /// ```
    /// use mesh_core::retry::RetryBudget;
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// assert_eq!(RetryBudget::DEFAULT_WINDOW, Duration::from_secs(10));
    /// let budget = RetryBudget::default();
    /// tokio::time::advance(Duration::from_secs(60)).await;
    /// let saved = (0..1000).filter(|_| budget.withdraw()).count();
    /// let window = RetryBudget::DEFAULT_WINDOW.as_secs() as usize;
    /// assert_eq!(saved, window * RetryBudget::DEFAULT_MIN_PER_SEC as usize);
    /// # }
    /// ```
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
    /// Default floor: retries allowed per second whatever the traffic.
    ///
    /// The default budget starts with one second of the floor, and earns it again each second:
    ///
    /// ```
    /// use mesh_core::retry::RetryBudget;
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let budget = RetryBudget::default();
    /// let granted = (0..100).filter(|_| budget.withdraw()).count();
    /// assert_eq!(granted, RetryBudget::DEFAULT_MIN_PER_SEC as usize);
    /// tokio::time::advance(Duration::from_secs(1)).await;
    /// assert_eq!((0..100).filter(|_| budget.withdraw()).count(), 10);
    /// # }
    /// ```
    pub const DEFAULT_MIN_PER_SEC: u32 = 10;
    /// Default share: retries may add this many percent to requests.
    ///
    /// ```
    /// use mesh_core::retry::RetryBudget;
    /// use std::time::Duration;
    /// let budget = RetryBudget::new(Duration::from_secs(10), 0, RetryBudget::DEFAULT_PERCENT).unwrap();
    /// (0..50).for_each(|_| budget.deposit());
    /// assert_eq!((0..50).filter(|_| budget.withdraw()).count(), 10, "20 % of 50 requests");
    /// ```
    pub const DEFAULT_PERCENT: f32 = 20.0;

    /// A budget allowing `percent` % of requests as retries plus `min_per_sec` retries per
    /// second, saving up at most `window` of the floor (and at least 10 tokens).
    ///
    /// ```
    /// use mesh_core::retry::RetryBudget;
    /// use std::time::Duration;
    /// use mesh_core::retry::RetryBudgetError;
    /// let short = Duration::from_millis(500);
    /// assert_eq!(RetryBudget::new(short, 10, 20.0).unwrap_err(), RetryBudgetError::Window(short));
    /// assert_eq!(RetryBudget::new(Duration::from_secs(10), 10, 2000.0).unwrap_err(), RetryBudgetError::Percent(2000.0));
    /// // With no floor the bucket still holds 10 tokens at most.
    /// let budget = RetryBudget::new(Duration::from_secs(10), 0, 100.0).unwrap();
    /// (0..50).for_each(|_| budget.deposit());
    /// assert_eq!((0..50).filter(|_| budget.withdraw()).count(), 10);
    /// ```
    pub fn new(window: Duration, min_per_sec: u32, percent: f32) -> Result<Self, RetryBudgetError> {
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&window) {
            return Err(RetryBudgetError::Window(window));
        }
        if !(0.0..=1000.0).contains(&percent) {
            return Err(RetryBudgetError::Percent(percent));
        }
        if min_per_sec > 1_000_000 {
            return Err(RetryBudgetError::Floor(min_per_sec));
        }
        let per_second = i64::from(min_per_sec) * TOKEN;
        let cap = (per_second.saturating_mul(window.as_secs() as i64)).max(10 * TOKEN);
        Ok(RetryBudget(Arc::new(Bucket::new(percent, per_second, cap))))
    }

    /// Records an original request (one that may later be retried).
    ///
    /// ```
    /// use mesh_core::retry::RetryBudget;
    /// use std::time::Duration;
    /// let budget = RetryBudget::new(Duration::from_secs(1), 0, 50.0).unwrap();
    /// assert!(!budget.withdraw());
    /// budget.deposit();
    /// budget.clone().deposit(); // clones share the bucket
    /// assert!(budget.withdraw());
    /// ```
    pub fn deposit(&self) {
        self.0.deposits.add(0, 1);
    }

    /// Takes one retry's worth of budget; `false` when there is none.
    ///
    /// ```
    /// use mesh_core::retry::RetryBudget;
    /// use std::time::Duration;
    /// let budget = RetryBudget::new(Duration::from_secs(10), 0, 100.0).unwrap();
    /// budget.deposit();
    /// assert!(budget.withdraw());
    /// assert!(!budget.withdraw(), "one request pays for one retry at 100 %");
    /// ```
    pub fn withdraw(&self) -> bool {
        let bucket = &self.0;
        // Nothing panics while the account is held.
        let mut account = bucket
            .account
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(account.refilled);
        account.refilled = now;
        let floor = (bucket.per_second as i128 * elapsed.as_nanos() as i128 / 1_000_000_000) as i64;
        // Each thread's count only grows, and withdrawals read them one after another (under
        // the lock), so a reading is never below the one before.
        let deposits = bucket.deposits.total(0);
        let fresh = deposits.saturating_sub(account.deposits_taken);
        account.deposits_taken = deposits;
        let earned = i64::try_from(fresh)
            .unwrap_or(i64::MAX)
            .saturating_mul(bucket.per_request);
        let available = account
            .tokens
            .saturating_add(floor)
            .saturating_add(earned)
            .min(bucket.cap);
        let granted = available >= TOKEN;
        account.tokens = if granted {
            available - TOKEN
        } else {
            available
        };
        granted
    }
}

impl Bucket {
    /// A bucket holding one second of the floor.
    fn new(percent: f32, per_second: i64, cap: i64) -> Self {
        Bucket {
            deposits: PerThreadCounts::default(),
            account: Mutex::new(Account {
                tokens: per_second.min(cap),
                refilled: Instant::now(),
                deposits_taken: 0,
            }),
            per_request: (f64::from(percent) / 100.0 * TOKEN as f64) as i64,
            per_second,
            cap,
        }
    }
}

impl Default for RetryBudget {
    fn default() -> Self {
        let per_second = i64::from(Self::DEFAULT_MIN_PER_SEC) * TOKEN;
        let cap = per_second * Self::DEFAULT_WINDOW.as_secs() as i64;
        RetryBudget(Arc::new(Bucket::new(
            Self::DEFAULT_PERCENT,
            per_second,
            cap,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(budget: &RetryBudget) -> u32 {
        let mut granted = 0;
        while budget.withdraw() {
            granted += 1;
        }
        granted
    }

    #[test]
    fn rejects_out_of_range_settings() {
        for (window, floor, percent) in [
            (Duration::from_millis(999), 10, 20.0),
            (Duration::from_secs(3601), 10, 20.0),
            (Duration::from_secs(10), 10, -1.0),
            (Duration::from_secs(10), 10, f32::NAN),
            (Duration::from_secs(10), 10, 1000.5),
            (Duration::from_secs(10), u32::MAX, 20.0),
        ] {
            assert!(RetryBudget::new(window, floor, percent).is_err());
        }
        assert!(RetryBudget::new(Duration::from_secs(60), 0, 0.0).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn starts_with_one_second_of_floor_and_accrues_share_and_floor() {
        let budget = RetryBudget::default();
        assert_eq!(drain(&budget), 10, "one second of the floor at start");
        for _ in 0..10 {
            budget.deposit();
        }
        assert_eq!(drain(&budget), 2, "20 % of 10 requests");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(drain(&budget), 10, "the floor: 10 per second");
        // Clones share the bucket.
        budget.deposit();
        for _ in 0..4 {
            budget.clone().deposit();
        }
        assert_eq!(drain(&budget), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn savings_are_capped_at_one_window_of_floor() {
        let budget = RetryBudget::default();
        tokio::time::advance(Duration::from_secs(3600)).await;
        for _ in 0..10_000 {
            budget.deposit();
        }
        assert_eq!(drain(&budget), 100, "10/s over the 10 s window");
    }

    #[test]
    fn each_thread_deposits_in_cells_of_its_own_and_a_withdrawal_takes_them_all_in() {
        const THREADS: usize = 4;
        let budget = RetryBudget::new(Duration::from_secs(10), 0, 20.0).unwrap();
        // All alive at once, so that none takes up another's cells.
        let barrier = std::sync::Barrier::new(THREADS);
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| {
                    (0..10).for_each(|_| budget.deposit());
                    barrier.wait();
                });
            }
        });
        assert_eq!(budget.0.deposits.threads(), THREADS);
        // 20 % of 40 requests, whichever thread made them; none taken in twice.
        assert_eq!(drain(&budget), 8);
        (0..5).for_each(|_| budget.deposit());
        assert_eq!(drain(&budget), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_outage_gets_at_most_share_plus_floor() {
        // 100 failing requests a second for 10 s, each wanting 3 retries.
        let budget = RetryBudget::default();
        let (mut requests, mut retries) = (0u32, 0u32);
        for _ in 0..1000 {
            tokio::time::advance(Duration::from_millis(10)).await;
            budget.deposit();
            requests += 1;
            for _ in 0..3 {
                if budget.withdraw() {
                    retries += 1;
                }
            }
        }
        assert!(
            retries <= requests / 5 + 110,
            "{retries} retries for {requests} requests"
        );
        assert!(
            retries >= requests / 5 + 100,
            "the budget is used: {retries}"
        );
    }
}
