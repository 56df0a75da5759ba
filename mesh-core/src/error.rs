//! [`MeshError`]: the ways a request can fail inside the mesh.
//!
//! Each variant knows its [`ResponseFlag`]; [`crate::local_reply`] turns it into the exact
//! reply Envoy would send. Layers fail with a `MeshError` (boxed as [`BoxError`] where tower
//! requires), and the outermost layer converts whatever arrives into a local reply.

use crate::{BoxError, ResponseFlag};
use http::StatusCode;

/// A request failed inside the mesh, before or instead of an upstream response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeshError {
    /// The host is known but no rule of its route matched the request (404 NR).
    #[error("route not found")]
    RouteNotFound,
    /// The host is not in the registry and the outbound policy is `REGISTRY_ONLY` (502 NR).
    #[error("host {0:?} is not in the registry (REGISTRY_ONLY)")]
    HostNotRegistered(String),
    /// The destination has no endpoint that may take the request (503 UH).
    #[error("no healthy upstream")]
    NoHealthyUpstream,
    /// Connecting to the chosen endpoint failed (503 UF).
    #[error("upstream connect error: {0}")]
    ConnectFailure(#[source] BoxError),
    /// The upstream connection closed or reset before response headers (503 UC).
    #[error("upstream connection terminated: {0}")]
    UpstreamReset(#[source] BoxError),
    /// The upstream refused the HTTP/2 stream (`REFUSED_STREAM`) before processing it (503 UR).
    #[error("upstream refused the stream: {0}")]
    RefusedStream(#[source] BoxError),
    /// A circuit breaker limit was reached (503 UO, `x-envoy-overloaded: true`).
    #[error("upstream overflow")]
    Overflow,
    /// The route or per-try timeout expired (504 UT).
    #[error("upstream request timeout")]
    Timeout,
    /// Fault injection aborted the request with this status (FI).
    #[error("fault filter abort")]
    FaultAbort(StatusCode),
    /// The request body outgrew the replay buffer while a retry was waiting (507).
    #[error("exceeded request buffer limit while retrying upstream")]
    BufferLimitExceeded,
    /// The request cannot be routed as sent (400), e.g. it names no host.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
}

impl MeshError {
    /// The response flag Envoy logs for this failure, if any.
    pub fn flag(&self) -> Option<ResponseFlag> {
        Some(match self {
            MeshError::RouteNotFound | MeshError::HostNotRegistered(_) => {
                ResponseFlag::NoRouteFound
            }
            MeshError::NoHealthyUpstream => ResponseFlag::NoHealthyUpstream,
            MeshError::ConnectFailure(_) => ResponseFlag::UpstreamConnectionFailure,
            MeshError::UpstreamReset(_) => ResponseFlag::UpstreamConnectionTermination,
            MeshError::RefusedStream(_) => ResponseFlag::UpstreamRemoteReset,
            MeshError::Overflow => ResponseFlag::UpstreamOverflow,
            MeshError::Timeout => ResponseFlag::UpstreamRequestTimeout,
            MeshError::FaultAbort(_) => ResponseFlag::FaultInjected,
            MeshError::BufferLimitExceeded | MeshError::BadRequest(_) => return None,
        })
    }

    /// The HTTP status of the local reply for this failure.
    pub fn status(&self) -> StatusCode {
        match self {
            MeshError::RouteNotFound => StatusCode::NOT_FOUND,
            MeshError::HostNotRegistered(_) => StatusCode::BAD_GATEWAY,
            MeshError::NoHealthyUpstream
            | MeshError::ConnectFailure(_)
            | MeshError::UpstreamReset(_)
            | MeshError::RefusedStream(_)
            | MeshError::Overflow => StatusCode::SERVICE_UNAVAILABLE,
            MeshError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            MeshError::FaultAbort(status) => *status,
            MeshError::BufferLimitExceeded => StatusCode::INSUFFICIENT_STORAGE,
            MeshError::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// Finds a `MeshError` inside a boxed error (as tower layers return them).
    pub fn find(error: &BoxError) -> Option<&MeshError> {
        find_in_chain(error)
    }
}

/// A failure below the route layer, with what routing had decided: how telemetry outside the
/// route layer learns the route and destination of a request that ended in an error.
/// [`MeshError::find`] and the local reply see through it to the failure inside.
///
/// ```
/// use mesh_core::{BoxError, MeshError, RouteInfo, Routed, RoutedError};
/// let routed = Routed { route: RouteInfo { name: "r".into(), virtual_service: "vs".into() }, destination: None };
/// let error: BoxError = RoutedError::new(routed, MeshError::Timeout.into()).into();
/// assert!(matches!(MeshError::find(&error), Some(MeshError::Timeout)));
/// assert_eq!(error.downcast_ref::<RoutedError>().unwrap().routed().route.name.as_ref(), "r");
/// ```
#[derive(Debug)]
pub struct RoutedError {
    routed: Box<crate::Routed>,
    source: BoxError,
}

impl RoutedError {
    /// `source`, which happened to a request routed as `routed`.
    pub fn new(routed: crate::Routed, source: BoxError) -> Self {
        RoutedError {
            routed: Box::new(routed),
            source,
        }
    }

    /// What routing had decided.
    pub fn routed(&self) -> &crate::Routed {
        &self.routed
    }
}

impl std::fmt::Display for RoutedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for RoutedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// Where a request that failed at an upstream had been sent: its cluster, endpoint and the
/// endpoint's workload (the same facts a response carries as extensions).
#[derive(Clone, Debug)]
pub struct UpstreamTarget {
    /// The cluster, in Istio's `outbound|PORT|SUBSET|HOST` form.
    pub cluster: crate::UpstreamCluster,
    /// The endpoint tried.
    pub host: crate::UpstreamHost,
    /// The endpoint's workload.
    pub workload: crate::UpstreamWorkload,
}

/// A failure at an upstream endpoint (connect failure, reset, per-try timeout…), with where the
/// request had been sent: how telemetry learns the upstream cluster, host and workload of a
/// `UF` or `UC`, as Envoy reports them. [`MeshError::find`] and the local reply see through it
/// to the failure inside.
///
/// ```
/// use mesh_core::{BoxError, MeshError, UpstreamCluster, UpstreamHost, UpstreamWorkload};
/// use mesh_core::error::{UpstreamError, UpstreamTarget};
/// use mesh_core::workload::Workload;
/// use std::sync::Arc;
/// let target = UpstreamTarget {
///     cluster: UpstreamCluster("outbound|80|v1|catalog".into()),
///     host: UpstreamHost("10.0.0.1:3000".parse().unwrap()),
///     workload: UpstreamWorkload(Arc::new(Workload::from_labels("catalog-v1", "shop", &Default::default()))),
/// };
/// let error: BoxError = UpstreamError::new(target, MeshError::NoHealthyUpstream).into();
/// assert!(matches!(MeshError::find(&error), Some(MeshError::NoHealthyUpstream)));
/// let found = UpstreamError::find(&error).unwrap();
/// assert_eq!(found.target().host.0.as_str(), "10.0.0.1:3000");
/// ```
#[derive(Debug)]
pub struct UpstreamError {
    target: Box<UpstreamTarget>,
    source: MeshError,
}

impl UpstreamError {
    /// `source`, which happened at `target`.
    pub fn new(target: UpstreamTarget, source: MeshError) -> Self {
        UpstreamError {
            target: Box::new(target),
            source,
        }
    }

    /// Where the request had been sent.
    pub fn target(&self) -> &UpstreamTarget {
        &self.target
    }

    /// The failure.
    pub fn error(&self) -> &MeshError {
        &self.source
    }

    /// The first `UpstreamError` in `error`'s chain (through a [`RoutedError`], say).
    pub fn find(error: &BoxError) -> Option<&UpstreamError> {
        find_in_chain(error)
    }
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for UpstreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The first error of type `T` in `error`'s chain of sources, `error` itself first.
fn find_in_chain<T: std::error::Error + 'static>(error: &BoxError) -> Option<&T> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error.as_ref());
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}
