//! The shared vocabulary of `mesh`.
//!
//! Every other crate speaks in these types: the boxed [`Body`] that flows through
//! the layers, the [`MeshError`] a layer fails with and the Envoy-style
//! [`ResponseFlag`]s it leaves behind, the [local reply](local_reply)
//! a client sees when the mesh answers by itself, and the request/response
//! [`extensions`] through which routing tells the layers below what it decided.
//!
//! And the resilience layers, each usable alone around any tower service of HTTP requests and
//! each reading its per-route settings from the [`RoutePolicy`](policy::RoutePolicy) extension:
//! [`fault::FaultLayer`] (delay/abort), [`timeout::TimeoutLayer`] (route timeout),
//! [`retry::RetryLayer`] (retries with budget, backoff and body replay) and
//! [`circuit_breaker::CircuitBreakerLayer`] (connection-pool limits), plus
//! [`outlier::OutlierDetector`] (per-endpoint ejection) for load balancers.

pub mod abandoned;
pub mod authority;
pub mod body;
pub mod body_count;
pub mod circuit_breaker;
pub mod clock;
mod control_headers;
pub mod error;
pub mod extensions;
pub mod fault;
pub mod flags;
pub mod fnv;
pub mod grpc;
pub mod header_value;
pub mod local_reply;
pub mod outlier;
pub mod per_thread;
pub mod policy;
pub mod request_end;
pub mod retry;
pub mod spare_extensions;
pub mod timeout;
pub mod trace_reason;
pub mod watched_body;
pub mod workload;

pub use body::{Body, BoxError};
pub use error::{MeshError, RoutedError, UpstreamError};
pub use extensions::{
    Destination, DownstreamAddr, LocalReplyDetails, PeerIdentity, RouteChoice, RouteInfo, Routed,
    UpstreamCluster, UpstreamHost, UpstreamWorkload, destination,
};
pub use flags::{ResponseFlag, ResponseFlags};
