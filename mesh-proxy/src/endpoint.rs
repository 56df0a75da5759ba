//! [`Endpoint`]: one upstream address with its labels, protocol, load and counters.
//!
//! Endpoints come from ServiceEntry `endpoints` (or, for `resolution: DNS` without endpoints,
//! from the hosts themselves). One `Endpoint` is shared by every cluster that selects it, so its
//! in-flight count — which the least-request balancer reads — counts all traffic it serves.

use http::uri::Authority;
use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

/// The application protocol spoken to an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 with prior knowledge (h2c), as for `HTTP2` and `GRPC` ports.
    Http2,
}

impl Protocol {
    /// The protocol of a ServiceEntry port: its `protocol`, else the prefix of its name
    /// (`grpc-…`, `http2-…`), as Istio selects protocols.
    pub fn of_port(protocol: Option<&str>, name: &str) -> Protocol {
        let declared = protocol.unwrap_or_else(|| name.split('-').next().unwrap_or(""));
        match declared.to_ascii_uppercase().as_str() {
            "HTTP2" | "GRPC" | "GRPC-WEB" => Protocol::Http2,
            _ => Protocol::Http1,
        }
    }
}

/// One upstream endpoint.
#[derive(Debug)]
pub struct Endpoint {
    /// `address:port` to connect to (an IP, or a DNS name resolved at connect time).
    pub authority: Authority,
    /// The workload's labels (what subsets select on).
    pub labels: BTreeMap<String, String>,
    /// How to speak to it.
    pub protocol: Protocol,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    failures: AtomicU64,
    pub(crate) h2: crate::upstream::Http2Connection,
}

impl Endpoint {
    /// A new endpoint with zero counters.
    pub fn new(authority: Authority, labels: BTreeMap<String, String>, protocol: Protocol) -> Self {
        Endpoint {
            authority,
            labels,
            protocol,
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            h2: Default::default(),
        }
    }

    /// Requests currently in flight to this endpoint.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests sent to this endpoint so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Requests that failed to connect or got a 5xx.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Marks a request as started; the guard marks it finished when dropped.
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Counts a failed request (connect failure, reset, 5xx).
    pub fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether every label of `selector` is on this endpoint.
    pub fn selected_by(&self, selector: &BTreeMap<String, String>) -> bool {
        selector.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }
}

/// Decrements an endpoint's in-flight count when dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Endpoint>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_from_port() {
        assert_eq!(Protocol::of_port(Some("GRPC"), "x"), Protocol::Http2);
        assert_eq!(Protocol::of_port(None, "grpc-api"), Protocol::Http2);
        assert_eq!(Protocol::of_port(Some("HTTP"), "grpc"), Protocol::Http1);
        assert_eq!(Protocol::of_port(None, "web"), Protocol::Http1);
    }

    #[test]
    fn in_flight_guard() {
        let e = Arc::new(Endpoint::new(
            "127.0.0.1:1".parse().unwrap(),
            BTreeMap::new(),
            Protocol::Http1,
        ));
        {
            let _a = e.start_request();
            let _b = e.start_request();
            assert_eq!(e.in_flight(), 2);
        }
        assert_eq!(e.in_flight(), 0);
        assert_eq!(e.requests(), 2);
    }
}
