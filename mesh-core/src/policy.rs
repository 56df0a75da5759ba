//! Per-route policy carried on the request: what the route layer decided the layers below
//! should enforce for this request (its timeout, its fault injection, …).
//!
//! The route layer inserts one [`RoutePolicy`] extension, only for routes that configure any
//! policy; each resilience layer reads its part and falls back to its own default when the
//! request has none, so the same layers work in-process without routing.

use std::{sync::Arc, time::Duration};

/// The policies of the route a request matched.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoutePolicy {
    /// VirtualService `timeout`: covers every attempt and back-off. `None`: no timeout.
    pub timeout: Option<Duration>,
    /// VirtualService `fault`.
    pub fault: Option<Arc<FaultPolicy>>,
    /// VirtualService `retries`; `None`: no retries.
    pub retry: Option<std::sync::Arc<crate::retry::RetryPolicy>>,
    /// VirtualService `mirror`/`mirrors`: where shadow copies go; `None`: no mirroring.
    pub mirrors: Option<Arc<[MirrorTarget]>>,
}

/// One mirror target of a route: a share of its requests is copied there, fire-and-forget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorTarget {
    /// Where the shadow copy goes.
    pub destination: crate::Destination,
    /// Which share of requests is mirrored (`mirrorPercentage`; all when unset).
    pub fraction: Fraction,
}

/// A share of requests, kept in parts per million as Envoy's runtime fractions are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fraction(u32);

impl Fraction {
    /// All requests.
    pub const ALL: Fraction = Fraction(1_000_000);

    /// The fraction for a percentage (clamped to 0–100; 0.0001 % resolution).
    ///
    /// ```
    /// use mesh_core::policy::Fraction;
    /// assert_eq!(Fraction::from_percent(12.5).per_million(), 125_000);
    /// assert_eq!(Fraction::from_percent(250.0), Fraction::ALL);
    /// ```
    pub fn from_percent(percent: f64) -> Self {
        let clamped = if percent.is_nan() {
            0.0
        } else {
            percent.clamp(0.0, 100.0)
        };
        Fraction((clamped * 10_000.0).round() as u32)
    }

    /// Parts per million.
    pub fn per_million(self) -> u32 {
        self.0
    }

    /// Draws whether this request is in the fraction.
    pub fn sample(self) -> bool {
        match self.0 {
            0 => false,
            1_000_000.. => true,
            n => rand::random_range(0..1_000_000) < n,
        }
    }
}

/// VirtualService `fault`: delay and/or abort a share of requests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultPolicy {
    /// Delay `fixedDelay` for a share of requests.
    pub delay: Option<(Duration, Fraction)>,
    /// Abort a share of requests.
    pub abort: Option<(FaultAbort, Fraction)>,
}

/// How an aborted request is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAbort {
    /// With this HTTP status.
    Http(http::StatusCode),
    /// With HTTP 200 and this `grpc-status` (a trailers-only gRPC response).
    Grpc(u32),
}

/// gRPC status names as Istio's `grpcStatus` spells them, in code order (0–16).
pub const GRPC_STATUS_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The numeric code of a gRPC status name.
///
/// ```
/// assert_eq!(mesh_core::policy::grpc_status_code("UNAVAILABLE"), Some(14));
/// assert_eq!(mesh_core::policy::grpc_status_code("unavailable"), None);
/// ```
pub fn grpc_status_code(name: &str) -> Option<u32> {
    GRPC_STATUS_NAMES
        .iter()
        .position(|n| *n == name)
        .map(|i| i as u32)
}
