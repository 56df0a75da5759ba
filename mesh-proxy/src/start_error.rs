//! [`StartError`]: why the sidecar could not be built or could not start, each cause with a
//! type of its own, so that a caller can tell them apart and read their sources.

use crate::{gateway::GatewayError, inbound::InboundError, tls::TlsError};
use mesh_route::table::CompileError;
use std::net::SocketAddr;

/// Why the sidecar could not start.
///
/// A listener address already in use:
///
/// ```
/// use mesh_proxy::{Sidecar, SidecarOptions, StartError};
/// # use mesh_proxy::sidecar::SidecarSettings;
/// use mesh_route::config::Config;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let any = "127.0.0.1:0".parse().unwrap();
/// let options = SidecarOptions { outbound: taken.local_addr().unwrap(), admin: any, ..SidecarOptions::default() };
/// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
/// let sidecar = Sidecar::with_settings(Config::default(), settings).unwrap();
/// let error = sidecar.start(&options).await.unwrap_err();
/// assert!(matches!(error, StartError::Bind { name: "outbound", .. }), "{error}");
/// # }
/// ```
///
/// An access log file that cannot be opened:
///
/// ```
/// use mesh_proxy::{Sidecar, StartError, sidecar::SidecarSettings};
/// use mesh_route::config::Config;
/// let yaml = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\n\
///             spec: {accessLogFile: /nonexistent/dir/access.log}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let error = Sidecar::with_settings(config, SidecarSettings::default()).unwrap_err();
/// let StartError::AccessLog { path, source } = &error else { panic!("{error}") };
/// assert_eq!((path.as_str(), source.kind()), ("/nonexistent/dir/access.log", std::io::ErrorKind::NotFound));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration could not be compiled.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// A Sidecar ingress entry cannot be served.
    #[error(transparent)]
    Inbound(#[from] InboundError),
    /// Spans cannot be exported as configured.
    #[error("tracing: {0}")]
    Tracing(#[from] TracingError),
    /// The access log file cannot be opened.
    #[error("telemetry: cannot open access log {path}: {source}")]
    AccessLog {
        /// The file, as configured (`accessLogFile`).
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The metrics recorder refused Istio's histogram buckets (a bug, should it happen).
    #[cfg(feature = "prometheus")]
    #[error("telemetry: {0}")]
    Buckets(#[from] mesh_trace::prometheus::BucketsError),
    /// Mutual TLS cannot be set up (`STRICT` without a certificate, unusable certificates).
    #[error("tls: {0}")]
    Tls(#[from] TlsError),
    /// Port-specific security policies (PeerAuthentication `portLevelMtls`, AuthorizationPolicy
    /// ports) for a workload whose Sidecar has several ingress ports: not enforced yet.
    #[error(
        "policy: port-specific PeerAuthentication (portLevelMtls) or AuthorizationPolicy \
         (ports, destination.port) with several Sidecar ingress ports is not supported yet: \
         give each port a sidecar of its own"
    )]
    PortPoliciesOnSeveralIngressPorts,
    /// A Gateway server cannot be served (conflicting ports, unusable certificates).
    #[error("gateway: {0}")]
    Gateway(#[from] GatewayError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({name}): {source}")]
    Bind {
        /// Listener name.
        name: &'static str,
        /// Address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Why spans cannot be exported as configured.
///
/// ```
/// use mesh_proxy::{StartError, sidecar::SidecarSettings, start_error::TracingError};
/// use mesh_proxy::Sidecar;
/// use mesh_route::config::Config;
/// let yaml = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\n\
///             spec: {defaultConfig: {tracing: {zipkin: {address: 'zipkin:9411'}}}}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
/// // Outside a tokio runtime, spans have nowhere to be exported from (and a build without
/// // the `zipkin` feature cannot export them at all).
/// let error = Sidecar::with_settings(config, settings).unwrap_err();
/// assert!(
///     matches!(error, StartError::Tracing(TracingError::NoRuntime | TracingError::NoZipkinFeature { .. })),
///     "{error}"
/// );
/// ```
#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    /// The Zipkin exporter cannot be made (an address that makes no URL, say).
    #[cfg(feature = "zipkin")]
    #[error(transparent)]
    Zipkin(#[from] mesh_trace::zipkin::ExporterError),
    /// Not built inside a tokio runtime, which exports the spans.
    #[error("spans are exported from a tokio runtime; build the sidecar inside one")]
    NoRuntime,
    /// A Zipkin collector is configured, in a build without the `zipkin` feature.
    #[error(
        "a Zipkin collector ({collector}) is configured, but this build has no `zipkin` feature"
    )]
    NoZipkinFeature {
        /// The collector's address.
        collector: String,
    },
}
