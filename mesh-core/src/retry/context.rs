//! [`RetryContext`]: what the retry layer shares, across a request's attempts, with the layers
//! below it.
//!
//! The retry layer inserts one before the first attempt of a request it may retry; every
//! attempt carries the same one (clones share it). Below, the load balancer reads and records
//! the hosts tried (Envoy's `previous_hosts` retry predicate), and the proxy, which picks the
//! cluster, records the cluster's [`CircuitBreaker`] so that the retry layer can hold retries
//! to its `max_retries` (Istio `http.maxRetries`), and the cluster's [`RetryBudget`], so that
//! retries are budgeted per cluster, as Envoy budgets them: one failing service cannot spend
//! the retries of the others.
//!
//! One extension with one allocation, rather than one per concern: the retry layer clones the
//! request head for every attempt, and each extension costs a clone.

use super::RetryBudget;
use crate::circuit_breaker::CircuitBreaker;
use http::uri::Authority;
use std::sync::{Arc, Mutex, OnceLock};

/// The state shared by a request's attempts; see the [module docs](self).
///
/// ```
/// use mesh_core::{circuit_breaker::CircuitBreaker, retry::RetryContext};
/// use std::sync::Arc;
/// let context = RetryContext::default();
/// let host: http::uri::Authority = "10.0.0.1:80".parse().unwrap();
/// context.clone().record_host(&host); // the load balancer, on the first attempt
/// assert!(context.tried(&host));
/// context.clone().set_breaker(Arc::new(CircuitBreaker::default())); // the proxy
/// assert!(context.breaker().is_some());
/// ```
#[derive(Clone, Debug, Default)]
pub struct RetryContext(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    hosts: Mutex<Vec<Authority>>,
    breaker: OnceLock<Arc<CircuitBreaker>>,
    budget: OnceLock<RetryBudget>,
}

impl RetryContext {
    /// Records that `host` was tried.
    ///
    /// ```
    /// use mesh_core::retry::RetryContext;
    /// let context = RetryContext::default();
    /// let attempt = context.clone();
    /// attempt.record_host(&"10.0.0.1:80".parse().unwrap());
    /// assert_eq!(context.hosts_tried(), 1, "clones share what they record");
    /// ```
    pub fn record_host(&self, host: &Authority) {
        if let Ok(mut hosts) = self.0.hosts.lock() {
            hosts.push(host.clone());
        }
    }

    /// Whether `host` was tried already.
    ///
    /// ```
    /// use mesh_core::retry::RetryContext;
    /// let context = RetryContext::default();
    /// let a: http::uri::Authority = "10.0.0.1:80".parse().unwrap();
    /// let b: http::uri::Authority = "10.0.0.2:80".parse().unwrap();
    /// context.record_host(&a);
    /// assert!(context.tried(&a));
    /// assert!(!context.tried(&b));
    /// ```
    pub fn tried(&self, host: &Authority) -> bool {
        self.0
            .hosts
            .lock()
            .map(|hosts| hosts.contains(host))
            .unwrap_or(false)
    }

    /// How many hosts were tried.
    ///
    /// ```
    /// use mesh_core::retry::RetryContext;
    /// let context = RetryContext::default();
    /// assert_eq!(context.hosts_tried(), 0);
    /// let host = "10.0.0.1:80".parse().unwrap();
    /// context.record_host(&host);
    /// context.record_host(&host);
    /// assert_eq!(context.hosts_tried(), 2, "every attempt counts");
    /// ```
    pub fn hosts_tried(&self) -> usize {
        self.0.hosts.lock().map(|hosts| hosts.len()).unwrap_or(0)
    }

    /// Records the cluster's circuit breaker (the first one recorded stays).
    ///
    /// ```
    /// use mesh_core::{circuit_breaker::{CircuitBreaker, ConnectionPoolLimits}, retry::RetryContext};
    /// use std::sync::Arc;
    /// let context = RetryContext::default();
    /// context.set_breaker(Arc::new(CircuitBreaker::new(ConnectionPoolLimits::ENVOY)));
    /// context.set_breaker(Arc::new(CircuitBreaker::default()));
    /// assert_eq!(context.breaker().unwrap().limits().max_retries, 3, "the first one stays");
    /// ```
    pub fn set_breaker(&self, breaker: Arc<CircuitBreaker>) {
        let _ = self.0.breaker.set(breaker);
    }

    /// The cluster's circuit breaker, once recorded.
    ///
    /// ```
    /// use mesh_core::{circuit_breaker::CircuitBreaker, retry::RetryContext};
    /// use std::sync::Arc;
    /// let context = RetryContext::default();
    /// assert!(context.breaker().is_none());
    /// let breaker = Arc::new(CircuitBreaker::default());
    /// context.set_breaker(breaker.clone());
    /// assert!(Arc::ptr_eq(context.breaker().unwrap(), &breaker));
    /// ```
    pub fn breaker(&self) -> Option<&Arc<CircuitBreaker>> {
        self.0.breaker.get()
    }

    /// Records the retry budget of the request's cluster; `true` the first time only (the
    /// first attempt), when the proxy counts the request into that budget.
    ///
    /// ```
    /// use mesh_core::retry::{RetryBudget, RetryContext};
    /// let context = RetryContext::default();
    /// let cluster = RetryBudget::default();
    /// assert!(context.budget().is_none());
    /// assert!(context.set_budget(&cluster), "the first attempt");
    /// assert!(!context.set_budget(&cluster), "a retry");
    /// assert!(context.budget().is_some());
    /// ```
    pub fn set_budget(&self, budget: &RetryBudget) -> bool {
        self.0.budget.set(budget.clone()).is_ok()
    }

    /// The retry budget of the request's cluster, once the proxy has recorded it.
    ///
    /// ```
    /// use mesh_core::retry::RetryContext;
    /// assert!(RetryContext::default().budget().is_none());
    /// ```
    pub fn budget(&self) -> Option<&RetryBudget> {
        self.0.budget.get()
    }
}
