//! Per-route policy carried on the request: what the route layer decided the layers below
//! should enforce for this request (its timeout, its fault injection, …).
//!
//! The route layer inserts one [`RoutePolicy`] extension, only for routes that configure any
//! policy; each resilience layer reads its part, so the same layers work in-process without
//! routing. What counts as "none" differs between layers:
//!
//! - [`TimeoutLayer`](crate::timeout::TimeoutLayer) uses its own fallback only when the request
//!   carries no [`RoutePolicy`] at all; a `RoutePolicy` with `timeout: None` means no timeout,
//!   whatever the layer's fallback.
//! - [`RetryLayer`](crate::retry::RetryLayer) and [`FaultLayer`](crate::fault::FaultLayer) use
//!   their own fallback policy whenever the request's `retry` (or `fault`) is `None`, whether
//!   or not a `RoutePolicy` is present.

use std::{sync::Arc, time::Duration};

/// The policies of the route a request matched.
///
/// Set as a request extension, it overrides each layer's own default:
///
/// ```
/// use mesh_core::{MeshError, policy::RoutePolicy, timeout::TimeoutLayer};
/// use std::time::Duration;
/// use tower::{Layer, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let slow = service_fn(|_req: http::Request<String>| async {
///     tokio::time::sleep(Duration::from_secs(2)).await;
///     Ok::<_, std::convert::Infallible>(())
/// });
/// let mut request = http::Request::new(String::new());
/// request.extensions_mut().insert(RoutePolicy { timeout: Some(Duration::from_secs(1)), ..Default::default() });
/// let error = TimeoutLayer::default().layer(slow).oneshot(request).await.unwrap_err();
/// assert!(matches!(MeshError::find(&error), Some(MeshError::Timeout)));
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoutePolicy {
    /// VirtualService `timeout`: covers every attempt and back-off. `None`: no timeout — the
    /// [`TimeoutLayer`](crate::timeout::TimeoutLayer)'s fallback is *not* used for a request
    /// that carries a `RoutePolicy`, only for one that carries none.
    pub timeout: Option<Duration>,
    /// VirtualService `fault`. `None`: the [`FaultLayer`](crate::fault::FaultLayer)'s own
    /// fallback policy applies (no fault if the layer has none).
    pub fault: Option<Arc<FaultPolicy>>,
    /// VirtualService `retries`. `None`: the [`RetryLayer`](crate::retry::RetryLayer)'s own
    /// fallback policy applies (no retries if the layer has none, as with
    /// [`RetryLayer::new`](crate::retry::RetryLayer::new)).
    pub retry: Option<std::sync::Arc<crate::retry::RetryPolicy>>,
    /// VirtualService `mirror`/`mirrors`: where shadow copies go; `None`: no mirroring.
    pub mirrors: Option<Arc<[MirrorTarget]>>,
}

/// The policy of the route a request matched: the one routing chose
/// ([`Routed`](crate::Routed)), else one set on its own (a standalone layer's user's).
///
/// ```
/// use mesh_core::{RouteInfo, Routed, policy::{RoutePolicy, route_policy}};
/// use std::time::Duration;
/// let mut extensions = http::Extensions::new();
/// assert!(route_policy(&extensions).is_none());
/// let second = RoutePolicy { timeout: Some(Duration::from_secs(1)), ..Default::default() };
/// extensions.insert(second);
/// assert_eq!(route_policy(&extensions).unwrap().timeout, Some(Duration::from_secs(1)));
/// let route = RouteInfo { name: "r".into(), virtual_service: "vs".into() };
/// let policy = RoutePolicy { timeout: Some(Duration::from_secs(2)), ..Default::default() };
/// extensions.insert(Routed::with_policy(route, None, Some(policy)));
/// assert_eq!(route_policy(&extensions).unwrap().timeout, Some(Duration::from_secs(2)), "routing's first");
/// ```
pub fn route_policy(extensions: &http::Extensions) -> Option<&RoutePolicy> {
    match extensions.get::<crate::Routed>() {
        Some(routed) if routed.policy.is_some() => routed.policy.as_ref(),
        _ => extensions.get::<RoutePolicy>(),
    }
}

/// One mirror target of a route: a share of its requests is copied there, fire-and-forget.
///
/// ```
/// use mesh_core::{Destination, policy::{Fraction, MirrorTarget, RoutePolicy}};
/// let target = MirrorTarget {
///     destination: Destination { cluster: 1, host: "catalog-shadow".into(), subset: None, port: None },
///     fraction: Fraction::from_percent(10.0),
/// };
/// let policy = RoutePolicy { mirrors: Some(vec![target].into()), ..Default::default() };
/// let mirrors = policy.mirrors.as_deref().unwrap();
/// assert_eq!(mirrors[0].fraction.per_million(), 100_000);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorTarget {
    /// Where the shadow copy goes.
    pub destination: crate::Destination,
    /// Which share of requests is mirrored (`mirrorPercentage`; all when unset).
    pub fraction: Fraction,
}

/// A share of requests, kept in parts per million as Envoy's runtime fractions are.
///
/// ```
/// use mesh_core::policy::Fraction;
/// assert_eq!(Fraction::default().per_million(), 0);
/// assert!(!Fraction::default().sample(), "an empty share never samples");
/// assert_eq!(Fraction::from_percent(0.0001).per_million(), 1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fraction(u32);

impl Fraction {
    /// All requests.
    ///
    /// ```
    /// use mesh_core::policy::Fraction;
    /// assert_eq!(Fraction::ALL.per_million(), 1_000_000);
    /// assert_eq!(Fraction::from_percent(100.0), Fraction::ALL);
    /// assert!((0..100).all(|_| Fraction::ALL.sample()));
    /// ```
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
    ///
    /// ```
    /// use mesh_core::policy::Fraction;
    /// assert_eq!(Fraction::from_percent(50.0).per_million(), 500_000);
    /// assert_eq!(Fraction::from_percent(-3.0).per_million(), 0);
    /// ```
    pub fn per_million(self) -> u32 {
        self.0
    }

    /// Draws whether this request is in the fraction.
    ///
    /// ```
    /// use mesh_core::policy::Fraction;
    /// assert!(Fraction::ALL.sample());
    /// assert!(!Fraction::from_percent(0.0).sample());
    /// let hits = (0..10_000).filter(|_| Fraction::from_percent(50.0).sample()).count();
    /// assert!((4_000..6_000).contains(&hits));
    /// ```
    pub fn sample(self) -> bool {
        match self.0 {
            0 => false,
            1_000_000.. => true,
            n => rand::random_range(0..1_000_000) < n,
        }
    }
}

/// VirtualService `fault`: delay and/or abort a share of requests.
///
/// ```
/// use mesh_core::policy::{FaultAbort, FaultPolicy, Fraction};
/// use std::time::Duration;
/// let fault = FaultPolicy {
///     delay: Some((Duration::from_millis(500), Fraction::from_percent(10.0))),
///     abort: Some((FaultAbort::Http(http::StatusCode::SERVICE_UNAVAILABLE), Fraction::from_percent(1.0))),
/// };
/// assert_eq!(fault.delay.unwrap().1.per_million(), 100_000);
/// assert_ne!(fault, FaultPolicy::default());
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultPolicy {
    /// Delay `fixedDelay` for a share of requests.
    pub delay: Option<(Duration, Fraction)>,
    /// Abort a share of requests.
    pub abort: Option<(FaultAbort, Fraction)>,
}

/// How an aborted request is answered.
///
/// ```
/// use mesh_core::policy::{FaultAbort, grpc_status_code};
/// let abort = FaultAbort::Grpc(grpc_status_code("UNAVAILABLE").unwrap());
/// assert_eq!(abort, FaultAbort::Grpc(14));
/// assert_ne!(abort, FaultAbort::Http(http::StatusCode::SERVICE_UNAVAILABLE));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAbort {
    /// With this HTTP status.
    Http(http::StatusCode),
    /// With HTTP 200 and this `grpc-status` (a trailers-only gRPC response).
    Grpc(u32),
}

/// gRPC status names as Istio's `grpcStatus` spells them, in code order (0–16).
///
/// ```
/// use mesh_core::policy::GRPC_STATUS_NAMES;
/// assert_eq!(GRPC_STATUS_NAMES[0], "OK");
/// assert_eq!(GRPC_STATUS_NAMES[14], "UNAVAILABLE");
/// assert_eq!(GRPC_STATUS_NAMES[16], "UNAUTHENTICATED");
/// ```
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
