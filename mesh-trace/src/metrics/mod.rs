//! Istio's standard metrics — `istio_requests_total`, `istio_request_duration_milliseconds`,
//! `istio_request_bytes`, `istio_response_bytes`, and the `istio_tcp_*` counters of proxied
//! connections ([`TcpConnection`]) — through the [`metrics`] facade, with Istio's
//! exact label set and value rules (mesh-semantics §6), so that Grafana dashboards, Kiali and
//! Flagger queries written for Istio work unchanged.
//!
//! `istio_build` (a gauge of 1 with `component="proxy"` and the version as `tag`) is set when
//! an [`IstioMetrics`] is made.
//!
//! [`IstioMetrics`] turns one finished request (a [`RequestOutcome`]) into one counter
//! increment and three histogram samples. Label values are built once per distinct
//! destination service and outcome (peer, status, flags, gRPC status, protocol) and their
//! handles cached, so the request path neither allocates nor hashes label strings.

mod istio;
mod labels;
mod tcp;

pub use istio::{IstioMetrics, MAX_PEERS, MAX_SERVICES, MetricsRecorder, RequestOutcome};
pub(crate) use labels::grpc_status_of_http;
pub use labels::{
    BLACK_HOLE_CLUSTER, CatchAllCluster, PASSTHROUGH_CLUSTER, Reporter, RequestProtocol,
};
pub use tcp::{TcpConnection, TcpCounters};

/// `istio_requests_total`: one per HTTP or gRPC request.
pub const REQUESTS_TOTAL: &str = "istio_requests_total";
/// `istio_request_duration_milliseconds`: time from request arrival to its completion.
pub const REQUEST_DURATION: &str = "istio_request_duration_milliseconds";
/// `istio_request_bytes`: request size (headers and body).
pub const REQUEST_BYTES: &str = "istio_request_bytes";
/// `istio_response_bytes`: response size (headers and body).
pub const RESPONSE_BYTES: &str = "istio_response_bytes";

/// `istio_tcp_connections_opened_total`: TCP connections proxied.
pub const TCP_OPENED: &str = "istio_tcp_connections_opened_total";
/// `istio_tcp_connections_closed_total`: proxied TCP connections closed.
pub const TCP_CLOSED: &str = "istio_tcp_connections_closed_total";
/// `istio_tcp_received_bytes_total`: bytes from the downstream (request direction).
pub const TCP_RECEIVED_BYTES: &str = "istio_tcp_received_bytes_total";
/// `istio_tcp_sent_bytes_total`: bytes to the downstream (response direction).
pub const TCP_SENT_BYTES: &str = "istio_tcp_sent_bytes_total";

/// `istio_build`: a gauge of 1 labelled `component="proxy"` and `tag` (the version).
pub const BUILD: &str = "istio_build";

/// The bucket boundaries of every `istio_*` histogram (Envoy's defaults; Prometheus adds
/// `+Inf`).
pub const ISTIO_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];
