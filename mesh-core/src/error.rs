//! [`MeshError`]: the ways a request can fail inside the mesh.
//!
//! Each variant knows its [`ResponseFlag`]; [`crate::local_reply`] turns it into the exact
//! reply Envoy would send. Layers fail with a `MeshError` (boxed as [`BoxError`] where tower
//! requires), and the outermost layer converts whatever arrives into a local reply.

use crate::{BoxError, ResponseFlag, ResponseFlags};
use http::StatusCode;
use std::sync::Arc;

/// A request failed inside the mesh, before or instead of an upstream response.
///
/// ```
/// use mesh_core::{BoxError, MeshError, ResponseFlag};
/// let error = MeshError::FaultAbort(http::StatusCode::IM_A_TEAPOT);
/// assert_eq!(error.status(), 418);
/// assert_eq!(error.flag(), Some(ResponseFlag::FaultInjected));
/// assert_eq!(error.to_string(), "fault filter abort");
/// let boxed: BoxError = error.into();
/// assert!(matches!(MeshError::find(&boxed), Some(MeshError::FaultAbort(_))));
/// ```
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
    ///
    /// ```
    /// use mesh_core::{MeshError, ResponseFlag};
    /// assert_eq!(MeshError::Overflow.flag(), Some(ResponseFlag::UpstreamOverflow));
    /// assert_eq!(MeshError::HostNotRegistered("x".into()).flag(), Some(ResponseFlag::NoRouteFound));
    /// assert_eq!(MeshError::BadRequest("no host").flag(), None);
    /// ```
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

    /// Envoy's `%RESPONSE_CODE_DETAILS%` for the local reply this failure becomes.
    ///
    /// ```
    /// use mesh_core::MeshError;
    /// assert_eq!(MeshError::Timeout.details(), "upstream_response_timeout");
    /// assert_eq!(MeshError::BufferLimitExceeded.details(), "request_payload_exceeded_retry_buffer_limit");
    /// ```
    pub fn details(&self) -> &'static str {
        match self {
            MeshError::RouteNotFound | MeshError::HostNotRegistered(_) => "route_not_found",
            MeshError::NoHealthyUpstream => "no_healthy_upstream",
            MeshError::ConnectFailure(_) => {
                "upstream_reset_before_response_started{connection_failure}"
            }
            MeshError::UpstreamReset(_) => {
                "upstream_reset_before_response_started{connection_termination}"
            }
            MeshError::RefusedStream(_) => "upstream_reset_before_response_started{remote_reset}",
            MeshError::Overflow => "upstream_reset_before_response_started{overflow}",
            MeshError::Timeout => "upstream_response_timeout",
            MeshError::FaultAbort(_) => "fault_filter_abort",
            MeshError::BufferLimitExceeded => "request_payload_exceeded_retry_buffer_limit",
            MeshError::BadRequest(_) => "invalid_request",
        }
    }

    /// The HTTP status of the local reply for this failure.
    ///
    /// ```
    /// use mesh_core::MeshError;
    /// assert_eq!(MeshError::RouteNotFound.status(), 404);
    /// assert_eq!(MeshError::HostNotRegistered("x".into()).status(), 502);
    /// assert_eq!(MeshError::Timeout.status(), 504);
    /// assert_eq!(MeshError::BufferLimitExceeded.status(), 507);
    /// ```
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
    ///
    /// ```
    /// use mesh_core::{BoxError, MeshError};
    /// let error: BoxError = MeshError::NoHealthyUpstream.into();
    /// assert!(matches!(MeshError::find(&error), Some(MeshError::NoHealthyUpstream)));
    /// let other: BoxError = "something else".into();
    /// assert!(MeshError::find(&other).is_none());
    /// ```
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
/// let routed = Routed::new(RouteInfo { name: "r".into(), virtual_service: "vs".into() }, None);
/// let error: BoxError = RoutedError::new(routed, MeshError::Timeout.into()).into();
/// assert!(matches!(MeshError::find(&error), Some(MeshError::Timeout)));
/// assert_eq!(error.downcast_ref::<RoutedError>().unwrap().routed().route.name.as_ref(), "r");
/// ```
#[derive(Debug)]
pub struct RoutedError {
    routed: crate::Routed,
    source: BoxError,
}

impl RoutedError {
    /// `source`, which happened to a request routed as `routed`.
    ///
    /// ```
    /// use mesh_core::{BoxError, MeshError, RouteInfo, Routed, RoutedError};
    /// let routed = Routed::new(RouteInfo { name: "default".into(), virtual_service: "catalog".into() }, None);
    /// let error = RoutedError::new(routed, MeshError::Overflow.into());
    /// assert_eq!(error.to_string(), "upstream overflow", "displays as its source");
    /// let boxed: BoxError = error.into();
    /// assert!(matches!(MeshError::find(&boxed), Some(MeshError::Overflow)));
    /// ```
    pub fn new(routed: crate::Routed, source: BoxError) -> Self {
        RoutedError { routed, source }
    }

    /// What routing had decided.
    ///
    /// ```
    /// use mesh_core::{MeshError, RouteInfo, Routed, RoutedError};
    /// let routed = Routed::new(RouteInfo { name: "r1".into(), virtual_service: "catalog".into() }, None);
    /// let error = RoutedError::new(routed, MeshError::Timeout.into());
    /// assert_eq!(error.routed().route.virtual_service.as_ref(), "catalog");
    /// assert!(error.routed().destination.is_none());
    /// ```
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

/// A failure that layers added response flags to on its way out: a retry layer's `URX` when
/// attempts ran out on an error, a fault layer's `DI` on a delayed request that then failed.
/// The local reply the failure becomes carries them besides its own ([`error_to_response`]),
/// as Envoy logs `UF,URX`; [`MeshError::find`] sees through it to the failure inside.
///
/// [`error_to_response`]: crate::local_reply::error_to_response
///
/// ```
/// use mesh_core::{BoxError, MeshError, ResponseFlag, error::FlaggedError, local_reply::error_to_response};
/// let failed: BoxError = MeshError::ConnectFailure("refused".into()).into();
/// let exhausted = FlaggedError::mark(failed, ResponseFlag::UpstreamRetryLimitExceeded);
/// assert!(matches!(MeshError::find(&exhausted), Some(MeshError::ConnectFailure(_))));
/// let reply = error_to_response(&exhausted);
/// assert_eq!(reply.status(), 503);
/// let flags = reply.extensions().get::<mesh_core::ResponseFlags>().unwrap();
/// assert_eq!(flags.to_string(), "UF,URX");
/// ```
#[derive(Debug)]
pub struct FlaggedError {
    flags: ResponseFlags,
    source: BoxError,
}

impl FlaggedError {
    /// `error` with `flag` added: to the flags it carries when it is already a
    /// `FlaggedError`, else in a new one around it.
    ///
    /// ```
    /// use mesh_core::{BoxError, MeshError, ResponseFlag, error::FlaggedError};
    /// let error: BoxError = MeshError::Timeout.into();
    /// let error = FlaggedError::mark(error, ResponseFlag::UpstreamRetryLimitExceeded);
    /// let error = FlaggedError::mark(error, ResponseFlag::DelayInjected);
    /// assert_eq!(FlaggedError::flags_of(&error).to_string(), "DI,URX");
    /// ```
    pub fn mark(error: BoxError, flag: ResponseFlag) -> BoxError {
        match error.downcast::<FlaggedError>() {
            Ok(mut flagged) => {
                flagged.flags.insert(flag);
                flagged
            }
            Err(error) => Box::new(FlaggedError {
                flags: flag.into(),
                source: error,
            }),
        }
    }

    /// Every flag the errors in `error`'s chain were marked with (none: empty).
    ///
    /// ```
    /// use mesh_core::{BoxError, MeshError, error::FlaggedError};
    /// let plain: BoxError = MeshError::Timeout.into();
    /// assert!(FlaggedError::flags_of(&plain).is_empty());
    /// ```
    pub fn flags_of(error: &BoxError) -> ResponseFlags {
        let mut flags = ResponseFlags::default();
        chain(error)
            .filter_map(|e| e.downcast_ref::<FlaggedError>())
            .for_each(|flagged| flags.insert_all(flagged.flags));
        flags
    }
}

impl std::fmt::Display for FlaggedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for FlaggedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// Where a request had been sent: its cluster, and the endpoint and the endpoint's workload when
/// one had been picked. The proxy puts it on a response its endpoint served (one extension for
/// the three facts), and in the error of a request that failed there. A request refused before
/// an endpoint was picked (no healthy endpoint, the cluster's circuit breaker) has only its
/// cluster, as Envoy logs `UH` and `UO` with the cluster and host `-`.
///
///
/// One shared reference to what it says ([`SentTo`]): the proxy makes the target of each of a
/// cluster's endpoints once, when it builds the cluster, and a request copies the reference
/// rather than the names inside.
///
/// ```
/// use mesh_core::{UpstreamCluster, UpstreamHost, UpstreamWorkload, error::UpstreamTarget, workload::Workload};
/// use std::sync::Arc;
/// let target = UpstreamTarget::new(
///     UpstreamCluster("outbound|80||catalog".into()),
///     Some(UpstreamHost("10.0.0.1:8080".parse().unwrap())),
///     Some(UpstreamWorkload(Arc::new(Workload::default()))),
/// );
/// assert_eq!(target.host.as_ref().unwrap().0.port_u16(), Some(8080));
/// let refused = UpstreamTarget::cluster_only(UpstreamCluster("outbound|80||catalog".into()));
/// assert!(refused.host.is_none() && refused.workload.is_none());
/// ```
#[derive(Clone, Debug)]
pub struct UpstreamTarget(Arc<SentTo>);

/// What an [`UpstreamTarget`] says.
///
/// ```
/// use mesh_core::{UpstreamCluster, error::{SentTo, UpstreamTarget}};
/// let target = UpstreamTarget::cluster_only(UpstreamCluster("outbound|80||catalog".into()));
/// let SentTo { cluster, host, .. } = &*target;
/// assert_eq!((&*cluster.0, host.is_none()), ("outbound|80||catalog", true));
/// ```
#[derive(Debug)]
pub struct SentTo {
    /// The cluster, in Istio's `outbound|PORT|SUBSET|HOST` form.
    pub cluster: crate::UpstreamCluster,
    /// The endpoint tried, if one was.
    pub host: Option<crate::UpstreamHost>,
    /// The endpoint's workload, if one was tried.
    pub workload: Option<crate::UpstreamWorkload>,
}

impl std::ops::Deref for UpstreamTarget {
    type Target = SentTo;

    fn deref(&self) -> &SentTo {
        &self.0
    }
}

impl UpstreamTarget {
    /// A request sent to `cluster`, to the endpoint `host` of `workload` when one was picked.
    ///
    /// ```
    /// use mesh_core::{UpstreamCluster, UpstreamHost, error::UpstreamTarget};
    /// let host = UpstreamHost("10.0.0.1:8080".parse().unwrap());
    /// let target = UpstreamTarget::new(UpstreamCluster("outbound|80||catalog".into()), Some(host), None);
    /// assert_eq!(target.host.as_ref().map(|h| h.0.as_str()), Some("10.0.0.1:8080"));
    /// ```
    pub fn new(
        cluster: crate::UpstreamCluster,
        host: Option<crate::UpstreamHost>,
        workload: Option<crate::UpstreamWorkload>,
    ) -> Self {
        UpstreamTarget(Arc::new(SentTo {
            cluster,
            host,
            workload,
        }))
    }

    /// A request refused at `cluster` before any endpoint was tried.
    ///
    /// ```
    /// use mesh_core::{UpstreamCluster, error::UpstreamTarget};
    /// let target = UpstreamTarget::cluster_only(UpstreamCluster("outbound|80|v1|catalog".into()));
    /// assert_eq!(&*target.cluster.0, "outbound|80|v1|catalog");
    /// ```
    pub fn cluster_only(cluster: crate::UpstreamCluster) -> Self {
        UpstreamTarget::new(cluster, None, None)
    }

    /// Where a response says it was served: its `UpstreamTarget` (the proxy's forwarder sets
    /// one), else each fact set apart (tunnels, catch-all clusters, an embedder's service).
    ///
    /// ```
    /// use mesh_core::{UpstreamCluster, UpstreamHost, error::UpstreamTarget};
    /// let mut served = http::Extensions::new();
    /// served.insert(UpstreamTarget::cluster_only(UpstreamCluster("outbound|80||catalog".into())));
    /// assert_eq!(&*UpstreamTarget::of_response(&served).cluster.unwrap().0, "outbound|80||catalog");
    /// let mut apart = http::Extensions::new();
    /// apart.insert(UpstreamHost("10.0.0.1:80".parse().unwrap()));
    /// let facts = UpstreamTarget::of_response(&apart);
    /// assert!(facts.cluster.is_none() && facts.host.is_some());
    /// ```
    pub fn of_response(extensions: &http::Extensions) -> ServedBy<'_> {
        match extensions.get::<UpstreamTarget>() {
            Some(target) => ServedBy::from(target),
            None => ServedBy {
                cluster: extensions.get(),
                host: extensions.get(),
                workload: extensions.get(),
            },
        }
    }
}

/// The facts of where a request went, borrowed: from an [`UpstreamTarget`], or from a
/// response's extensions ([`UpstreamTarget::of_response`]).
///
/// ```
/// use mesh_core::{UpstreamCluster, error::{ServedBy, UpstreamTarget}};
/// let target = UpstreamTarget::cluster_only(UpstreamCluster("outbound|80||catalog".into()));
/// let facts = ServedBy::from(&target);
/// assert!(facts.cluster.is_some() && facts.host.is_none() && facts.workload.is_none());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ServedBy<'a> {
    /// The cluster.
    pub cluster: Option<&'a crate::UpstreamCluster>,
    /// The endpoint.
    pub host: Option<&'a crate::UpstreamHost>,
    /// The endpoint's workload.
    pub workload: Option<&'a crate::UpstreamWorkload>,
}

impl<'a> From<&'a UpstreamTarget> for ServedBy<'a> {
    fn from(target: &'a UpstreamTarget) -> Self {
        ServedBy {
            cluster: Some(&target.cluster),
            host: target.host.as_ref(),
            workload: target.workload.as_ref(),
        }
    }
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
/// let target = UpstreamTarget::new(
///     UpstreamCluster("outbound|80|v1|catalog".into()),
///     Some(UpstreamHost("10.0.0.1:3000".parse().unwrap())),
///     Some(UpstreamWorkload(Arc::new(Workload::from_labels("catalog-v1", "shop", &Default::default())))),
/// );
/// let error: BoxError = UpstreamError::new(target, MeshError::NoHealthyUpstream).into();
/// assert!(matches!(MeshError::find(&error), Some(MeshError::NoHealthyUpstream)));
/// let found = UpstreamError::find(&error).unwrap();
/// assert_eq!(found.target().host.as_ref().unwrap().0.as_str(), "10.0.0.1:3000");
/// ```
#[derive(Debug)]
pub struct UpstreamError {
    target: Box<UpstreamTarget>,
    source: MeshError,
}

impl UpstreamError {
    /// `source`, which happened at `target`.
    ///
    /// ```
    /// use mesh_core::{MeshError, UpstreamCluster, UpstreamHost, UpstreamWorkload, error::{UpstreamError, UpstreamTarget}};
    /// let target = UpstreamTarget::new(
    ///     UpstreamCluster("outbound|80||catalog".into()),
    ///     Some(UpstreamHost("10.0.0.1:80".parse().unwrap())),
    ///     Some(UpstreamWorkload(Default::default())),
    /// );
    /// let error = UpstreamError::new(target, MeshError::ConnectFailure("refused".into()));
    /// assert_eq!(error.to_string(), "upstream connect error: refused");
    /// assert_eq!(error.error().status(), 503);
    /// ```
    pub fn new(target: UpstreamTarget, source: MeshError) -> Self {
        UpstreamError {
            target: Box::new(target),
            source,
        }
    }

    /// `source`, at `target` when it is known (else `source` alone).
    ///
    /// ```
    /// use mesh_core::{MeshError, UpstreamCluster, UpstreamError, error::UpstreamTarget};
    /// assert!(UpstreamError::find(&UpstreamError::at(None, MeshError::Timeout)).is_none());
    /// let target = UpstreamTarget::cluster_only(UpstreamCluster("outbound|80||catalog".into()));
    /// let error = UpstreamError::at(Some(target), MeshError::Timeout);
    /// assert_eq!(&*UpstreamError::find(&error).unwrap().target().cluster.0, "outbound|80||catalog");
    /// assert!(matches!(MeshError::find(&error), Some(MeshError::Timeout)));
    /// ```
    pub fn at(target: Option<UpstreamTarget>, source: MeshError) -> BoxError {
        match target {
            Some(target) => UpstreamError::new(target, source).into(),
            None => source.into(),
        }
    }

    /// Where the request had been sent.
    ///
    /// ```
    /// use mesh_core::{MeshError, UpstreamCluster, UpstreamHost, UpstreamWorkload, error::{UpstreamError, UpstreamTarget}};
    /// let target = UpstreamTarget::new(
    ///     UpstreamCluster("outbound|80|v2|catalog".into()),
    ///     Some(UpstreamHost("10.0.0.2:80".parse().unwrap())),
    ///     Some(UpstreamWorkload(Default::default())),
    /// );
    /// let error = UpstreamError::new(target, MeshError::Timeout);
    /// assert_eq!(&*error.target().cluster.0, "outbound|80|v2|catalog");
    /// ```
    pub fn target(&self) -> &UpstreamTarget {
        &self.target
    }

    /// The failure.
    ///
    /// ```
    /// use mesh_core::{MeshError, ResponseFlag, UpstreamCluster, UpstreamHost, UpstreamWorkload, error::{UpstreamError, UpstreamTarget}};
    /// let target = UpstreamTarget::new(
    ///     UpstreamCluster("outbound|80||catalog".into()),
    ///     Some(UpstreamHost("10.0.0.1:80".parse().unwrap())),
    ///     Some(UpstreamWorkload(Default::default())),
    /// );
    /// let error = UpstreamError::new(target, MeshError::UpstreamReset("reset".into()));
    /// assert_eq!(error.error().flag(), Some(ResponseFlag::UpstreamConnectionTermination));
    /// ```
    pub fn error(&self) -> &MeshError {
        &self.source
    }

    /// The first `UpstreamError` in `error`'s chain (through a [`RoutedError`], say).
    ///
    /// Found through a [`RoutedError`] wrapping it:
    ///
    /// ```
    /// use mesh_core::{BoxError, MeshError, RouteInfo, Routed, RoutedError, UpstreamCluster, UpstreamHost, UpstreamWorkload};
    /// use mesh_core::error::{UpstreamError, UpstreamTarget};
    /// let target = UpstreamTarget::new(
    ///     UpstreamCluster("outbound|80||catalog".into()),
    ///     Some(UpstreamHost("10.0.0.1:80".parse().unwrap())),
    ///     Some(UpstreamWorkload(Default::default())),
    /// );
    /// let routed = Routed::new(RouteInfo { name: "r".into(), virtual_service: "vs".into() }, None);
    /// let error: BoxError = RoutedError::new(routed, UpstreamError::new(target, MeshError::Timeout).into()).into();
    /// assert_eq!(UpstreamError::find(&error).unwrap().target().host.as_ref().unwrap().0.as_str(), "10.0.0.1:80");
    /// assert!(UpstreamError::find(&BoxError::from("other")).is_none());
    /// ```
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

/// `error` and its chain of sources, `error` itself first.
fn chain(error: &BoxError) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(
        Some(error.as_ref() as &(dyn std::error::Error + 'static)),
        |e| e.source(),
    )
}

/// The first error of type `T` in `error`'s chain of sources, `error` itself first.
fn find_in_chain<T: std::error::Error + 'static>(error: &BoxError) -> Option<&T> {
    chain(error).find_map(|e| e.downcast_ref::<T>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marking_a_flagged_error_again_adds_to_its_flags_instead_of_nesting() {
        let error = FlaggedError::mark(MeshError::Timeout.into(), ResponseFlag::DelayInjected);
        let error = FlaggedError::mark(error, ResponseFlag::UpstreamRetryLimitExceeded);
        let flagged = error.downcast_ref::<FlaggedError>().unwrap();
        assert!(!flagged.source.is::<FlaggedError>());
        assert_eq!(FlaggedError::flags_of(&error).to_string(), "DI,URX");
    }
}
