//! Load balancing among a cluster's endpoints: DestinationRule `loadBalancer.simple`.
//!
//! `LEAST_REQUEST` (the default, as in Istio) is power-of-two-choices: draw two distinct
//! endpoints at random and take the one with fewer requests in flight. `ROUND_ROBIN` cycles;
//! `RANDOM` draws uniformly. `LEAST_CONN` is Istio's deprecated name for `LEAST_REQUEST`.

use crate::endpoint::Endpoint;
use mesh_core::retry::RetryContext;
use mesh_route::config::SimpleLb;
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

/// How many times a pick is redrawn to avoid a host already tried (Istio sets Envoy's
/// `host_selection_retry_max_attempts` to 5).
///
/// ```
/// use mesh_proxy::balance::HOST_SELECTION_ATTEMPTS;
/// assert_eq!(HOST_SELECTION_ATTEMPTS, 5);
/// ```
pub const HOST_SELECTION_ATTEMPTS: usize = 5;

/// A load-balancing policy with its state.
///
/// ```
/// use mesh_proxy::{balance::LoadBalancer, endpoint::{Endpoint, Protocol}};
/// use mesh_route::config::SimpleLb;
/// use std::sync::Arc;
/// let endpoints: Vec<_> = (1..=3)
///     .map(|p| Arc::new(Endpoint::new(format!("127.0.0.1:{p}").parse().unwrap(), Default::default(), Protocol::Http1)))
///     .collect();
/// let round_robin = LoadBalancer::for_policy(Some(SimpleLb::RoundRobin));
/// let picked: Vec<_> = (0..4).map(|_| round_robin.pick(&endpoints).unwrap().authority.port_u16().unwrap()).collect();
/// assert_eq!(picked, [1, 2, 3, 1]);
/// ```
#[derive(Debug)]
pub enum LoadBalancer {
    /// Power of two choices on in-flight requests.
    LeastRequest,
    /// Cycle through the endpoints.
    RoundRobin(AtomicUsize),
    /// Uniformly at random.
    Random,
}

impl LoadBalancer {
    /// The balancer for a configured `simple` policy (`None`: the default, LEAST_REQUEST).
    ///
    /// ```
    /// use mesh_proxy::balance::LoadBalancer;
    /// use mesh_route::config::SimpleLb;
    /// assert_eq!(LoadBalancer::for_policy(None).name(), "LEAST_REQUEST");
    /// assert_eq!(LoadBalancer::for_policy(Some(SimpleLb::LeastConn)).name(), "LEAST_REQUEST");
    /// assert_eq!(LoadBalancer::for_policy(Some(SimpleLb::Random)).name(), "RANDOM");
    /// ```
    pub fn for_policy(simple: Option<SimpleLb>) -> Self {
        match simple {
            Some(SimpleLb::RoundRobin) => LoadBalancer::RoundRobin(AtomicUsize::new(0)),
            Some(SimpleLb::Random) => LoadBalancer::Random,
            _ => LoadBalancer::LeastRequest,
        }
    }

    /// The policy's name, as Istio spells it.
    ///
    /// ```
    /// use mesh_proxy::balance::LoadBalancer;
    /// use mesh_route::config::SimpleLb;
    /// assert_eq!(LoadBalancer::for_policy(Some(SimpleLb::RoundRobin)).name(), "ROUND_ROBIN");
    /// assert_eq!(LoadBalancer::LeastRequest.name(), "LEAST_REQUEST");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            LoadBalancer::LeastRequest => "LEAST_REQUEST",
            LoadBalancer::RoundRobin(_) => "ROUND_ROBIN",
            LoadBalancer::Random => "RANDOM",
        }
    }

    /// Picks an endpoint, or `None` when there are none.
    ///
    /// ```
    /// use mesh_proxy::{balance::LoadBalancer, endpoint::{Endpoint, Protocol}};
    /// use std::sync::Arc;
    /// let endpoints: Vec<_> = (1..=2)
    ///     .map(|p| Arc::new(Endpoint::new(format!("127.0.0.1:{p}").parse().unwrap(), Default::default(), Protocol::Http1)))
    ///     .collect();
    /// let busy = endpoints[0].start_request();
    /// // With one request in flight on the first endpoint, least-request picks the second.
    /// let picked = LoadBalancer::LeastRequest.pick(&endpoints).unwrap();
    /// assert_eq!(picked.authority, "127.0.0.1:2");
    /// # drop(busy);
    /// ```
    pub fn pick<'a>(&self, endpoints: &'a [Arc<Endpoint>]) -> Option<&'a Arc<Endpoint>> {
        self.pick_index(endpoints).map(|i| &endpoints[i])
    }

    /// The index of the endpoint [`pick`](Self::pick) would return.
    fn pick_index(&self, endpoints: &[Arc<Endpoint>]) -> Option<usize> {
        match endpoints.len() {
            0 => None,
            1 => Some(0),
            n => Some(self.index(endpoints, n)),
        }
    }

    /// Picks an endpoint not in `previous` when one exists (Envoy's `previous_hosts` retry
    /// predicate, re-picking up to [`HOST_SELECTION_ATTEMPTS`] times as Istio configures), and
    /// records the pick's host in `previous`.
    ///
    /// ```
    /// use mesh_core::retry::RetryContext;
    /// use mesh_proxy::{balance::LoadBalancer, endpoint::{Endpoint, Protocol}};
    /// use std::sync::Arc;
    /// let endpoints: Vec<_> = (1..=2)
    ///     .map(|p| Arc::new(Endpoint::new(format!("127.0.0.1:{p}").parse().unwrap(), Default::default(), Protocol::Http1)))
    ///     .collect();
    /// let tried = RetryContext::default();
    /// let first = LoadBalancer::Random.pick_avoiding(&endpoints, Some(&tried)).unwrap().authority.clone();
    /// let second = LoadBalancer::Random.pick_avoiding(&endpoints, Some(&tried)).unwrap().authority.clone();
    /// assert_ne!(first, second);
    /// ```
    pub fn pick_avoiding<'a>(
        &self,
        endpoints: &'a [Arc<Endpoint>],
        previous: Option<&RetryContext>,
    ) -> Option<&'a Arc<Endpoint>> {
        let picked = &endpoints[self.choose(endpoints, previous, |_| true)?];
        if let Some(previous) = previous {
            previous.record_host(&picked.authority);
        }
        Some(picked)
    }

    /// The index of the endpoint to use among those `available` (outlier detection's verdict),
    /// avoiding hosts in `previous` as [`pick_avoiding`](Self::pick_avoiding) does (recording
    /// the pick is the caller's). `None` when no endpoint is available.
    ///
    /// ```
    /// use mesh_proxy::{balance::LoadBalancer, endpoint::{Endpoint, Protocol}};
    /// use std::sync::Arc;
    /// let endpoints: Vec<_> = (1..=3)
    ///     .map(|p| Arc::new(Endpoint::new(format!("127.0.0.1:{p}").parse().unwrap(), Default::default(), Protocol::Http1)))
    ///     .collect();
    /// // Only the third endpoint is available (say, the others are ejected).
    /// assert_eq!(LoadBalancer::Random.choose(&endpoints, None, |i| i == 2), Some(2));
    /// assert_eq!(LoadBalancer::Random.choose(&endpoints, None, |_| false), None);
    /// ```
    pub fn choose(
        &self,
        endpoints: &[Arc<Endpoint>],
        previous: Option<&RetryContext>,
        available: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        // Only when some endpoint is unavailable is a candidate list built, once.
        let candidates: Option<(Vec<usize>, Vec<Arc<Endpoint>>)> =
            (0..endpoints.len()).any(|i| !available(i)).then(|| {
                let indices: Vec<usize> = (0..endpoints.len()).filter(|i| available(*i)).collect();
                let subset = indices.iter().map(|i| endpoints[*i].clone()).collect();
                (indices, subset)
            });
        let draw = || -> Option<usize> {
            match &candidates {
                None => self.pick_index(endpoints),
                Some((indices, subset)) => self.pick_index(subset).map(|i| indices[i]),
            }
        };
        let mut picked = draw()?;
        if let Some(previous) = previous.filter(|p| p.hosts_tried() > 0) {
            for _ in 1..HOST_SELECTION_ATTEMPTS {
                if !previous.tried(&endpoints[picked].authority) {
                    break;
                }
                picked = draw()?;
            }
            if previous.tried(&endpoints[picked].authority)
                && let Some(fresh) = (0..endpoints.len())
                    .find(|i| available(*i) && !previous.tried(&endpoints[*i].authority))
            {
                picked = fresh;
            }
        }
        Some(picked)
    }

    fn index(&self, endpoints: &[Arc<Endpoint>], n: usize) -> usize {
        match self {
            LoadBalancer::RoundRobin(next) => next.fetch_add(1, Ordering::Relaxed) % n,
            LoadBalancer::Random => rand::random_range(0..n),
            LoadBalancer::LeastRequest => {
                let a = rand::random_range(0..n);
                let b = (a + rand::random_range(1..n)) % n;
                if endpoints[b].in_flight() < endpoints[a].in_flight() {
                    b
                } else {
                    a
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Protocol;

    fn endpoints(n: u16) -> Vec<Arc<Endpoint>> {
        (1..=n)
            .map(|p| {
                Arc::new(Endpoint::new(
                    format!("127.0.0.1:{p}").parse().unwrap(),
                    Default::default(),
                    Protocol::Http1,
                ))
            })
            .collect()
    }

    #[test]
    fn round_robin_cycles() {
        let eps = endpoints(3);
        let lb = LoadBalancer::for_policy(Some(SimpleLb::RoundRobin));
        let picks: Vec<_> = (0..6)
            .map(|_| lb.pick(&eps).unwrap().authority.port_u16().unwrap())
            .collect();
        assert_eq!(picks, [1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn least_request_avoids_the_busiest() {
        let eps = endpoints(2);
        let _busy: Vec<_> = (0..3).map(|_| eps[1].start_request()).collect();
        let lb = LoadBalancer::for_policy(None);
        for _ in 0..100 {
            assert_eq!(lb.pick(&eps).unwrap().authority.port_u16(), Some(1));
        }
    }

    #[test]
    fn random_reaches_every_endpoint() {
        let eps = endpoints(3);
        let lb = LoadBalancer::for_policy(Some(SimpleLb::Random));
        let mut seen = [false; 3];
        for _ in 0..300 {
            seen[usize::from(lb.pick(&eps).unwrap().authority.port_u16().unwrap()) - 1] = true;
        }
        assert_eq!(seen, [true; 3]);
    }

    #[test]
    fn retries_avoid_hosts_already_tried_while_others_exist() {
        let eps = endpoints(3);
        let lb = LoadBalancer::for_policy(None);
        for _ in 0..50 {
            let tried = RetryContext::default();
            let picks: Vec<_> = (0..3)
                .map(|_| {
                    lb.pick_avoiding(&eps, Some(&tried))
                        .unwrap()
                        .authority
                        .clone()
                })
                .collect();
            assert!(
                picks[0] != picks[1] && picks[1] != picks[2] && picks[0] != picks[2],
                "{picks:?}"
            );
            // Every host tried: any may be picked again.
            assert!(lb.pick_avoiding(&eps, Some(&tried)).is_some());
        }
    }

    #[test]
    fn unavailable_endpoints_are_never_chosen() {
        let eps = endpoints(3);
        for lb in [
            LoadBalancer::for_policy(None),
            LoadBalancer::Random,
            LoadBalancer::RoundRobin(AtomicUsize::new(0)),
        ] {
            for _ in 0..100 {
                assert_ne!(lb.choose(&eps, None, |i| i != 1), Some(1));
            }
            assert_eq!(lb.choose(&eps, None, |_| false), None);
        }
    }

    #[test]
    fn empty_gives_none() {
        assert!(LoadBalancer::LeastRequest.pick(&[]).is_none());
    }
}
