//! [`Sidecar`]: the proxy assembled from a validated [`Config`].
//!
//! The outbound listener runs [`TraceLayer`] (trace context, sampling, `x-request-id`) →
//! [`TelemetryLayer`] (Istio metrics as `reporter="source"`, access log) → [`SpanLayer`] (`CLIENT` spans, when a Zipkin collector is configured) → [`RouteLayer`] → [`MirrorLayer`] →
//! [`FaultLayer`] → [`TimeoutLayer`] → [`RetryLayer`] → [`Forward`] (shadow copies go through
//! the route timeout straight to [`Forward`]: no faults, no retries); the inbound
//! listener (only when a Sidecar declares `ingress`) runs [`TraceLayer`] → [`TelemetryLayer`]
//! (`reporter="destination"`) → [`SpanLayer`] (`SERVER` spans) and forwards to the local app;
//! the admin listener reports on both, and an optional Prometheus listener serves the metrics
//! alone. Every listener is bound before any is served, so a start that
//! fails binds nothing.

pub use crate::start_error::StartError;
use crate::{
    admin::{Admin, AdminState, LogFilterControl},
    authorization::{AuthorizationLayer, Authorizer},
    canary::CanaryBoard,
    config_updates::ConfigUpdates,
    connect::ConnectLayer,
    forward::Forward,
    gateway::{
        CERTIFICATE_POLL_INTERVAL, GatewayPort, GatewaySource, serve_gateway_port,
        watch_certificates,
    },
    inbound::Inbound,
    limits::ListenerLimits,
    listener::{
        DrainDuration, HttpService, InboundTlsSource, ServeOptions, bind, serve, serve_with,
    },
    live::LiveSidecar,
    prometheus::{PrometheusHandle, default_recorder},
    registry::Registry,
    server_layers::ServerLayers,
    shared_stack::SharedStack,
    stats::StatsSources,
    telemetry_settings::{AccessLogSettings, TelemetrySettings},
    tls::{InboundTls, TlsIdentity},
    trace_settings::TraceSettings,
    tunnel::{TunnelTasks, Tunnels},
    upstream::{DEFAULT_CONNECT_TIMEOUT, Upstream},
    workload_identity::WorkloadSettings,
};
use crate::{gateway::GatewayError, start_error::TracingError};
use mesh_core::{body::IntoBody, workload::Workload};
use mesh_core::{fault::FaultLayer, retry::RetryLayer, timeout::TimeoutLayer};
use mesh_route::{
    RouteLayer, RouteTable,
    config::{Config, WorkloadMode, gateway::served_ports},
    host::canonical_host,
    mirror::{MirrorLayer, MirrorStats, ShadowService},
    table::SourceWorkload,
};
use mesh_trace::{
    TraceLayer,
    access_log::{AccessLog, AccessLogConfig, AccessLogStats},
    identity::WorkloadIdentity,
    metrics::{IstioMetrics, MetricsRecorder, Reporter},
    reporter::{ReporterStats, SpanReporter},
    span::SpanKind,
    span_layer::{SpanLayer, SpanTags},
    telemetry_layer::TelemetryLayer,
};
use std::{net::SocketAddr, sync::Arc};
use tokio::{sync::watch, task::JoinHandle};
use tower::{Layer, ServiceBuilder, util::BoxCloneSyncService};

/// A listener's name: `outbound`, `inbound`, `admin`, `prometheus`, `gateway-PORT`.
///
/// ```
/// use mesh_proxy::sidecar::ListenerName;
/// let name: ListenerName = format!("gateway-{}", 443).into();
/// assert_eq!(name, "gateway-443");
/// assert_eq!(ListenerName::from("admin"), "admin");
/// ```
pub type ListenerName = std::borrow::Cow<'static, str>;

/// Where the sidecar listens.
///
/// Istio's ports by default; tests and embeddings listen on free ports instead:
///
/// ```
/// use mesh_proxy::SidecarOptions;
/// use std::net::SocketAddr;
/// assert_eq!(SidecarOptions::default().outbound.port(), 15001);
/// let any = SocketAddr::from(([127, 0, 0, 1], 0));
/// let options = SidecarOptions { outbound: any, inbound: any, admin: any, ..SidecarOptions::default() };
/// assert!(options.prometheus.is_none());
/// ```
#[derive(Clone, Debug)]
pub struct SidecarOptions {
    /// Outbound listener (Istio: `127.0.0.1:15001`).
    pub outbound: SocketAddr,
    /// Inbound listener (Istio: `0.0.0.0:15006`), used only when a Sidecar has `ingress`.
    pub inbound: SocketAddr,
    /// Admin listener (Istio: `127.0.0.1:15000`).
    pub admin: SocketAddr,
    /// A listener serving only the Prometheus metrics (any path), besides the admin's
    /// `/stats/prometheus`.
    pub prometheus: Option<SocketAddr>,
    /// Where Gateway server ports listen, when not on `bind:port` (`443 → 127.0.0.1:0`).
    pub gateway_listen: Vec<(u16, SocketAddr)>,
}

/// How the sidecar describes itself and where it records its metrics.
///
/// ```
/// use mesh_proxy::{Sidecar, sidecar::SidecarSettings, workload_identity::WorkloadSettings};
/// use mesh_route::config::Config;
/// let settings = SidecarSettings {
///     workload: WorkloadSettings { name: Some("catalog".into()), ..WorkloadSettings::default() },
///     disable_access_log: true,
///     ..SidecarSettings::default()
/// };
/// assert!(settings.metrics.is_none(), "a Prometheus recorder of the sidecar's own");
/// let sidecar = Sidecar::with_settings(Config::default(), settings).unwrap();
/// assert_eq!(sidecar.version(), 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct SidecarSettings {
    /// The proxy's workload identity (labels of its metrics).
    pub workload: WorkloadSettings,
    /// Where the Istio metrics are recorded; `None`: a Prometheus recorder of the sidecar's own,
    /// rendered at `/stats/prometheus`.
    pub metrics: Option<MetricsRecorder>,
    /// The handle rendering `metrics` at `/stats/prometheus`, when `metrics` is a Prometheus
    /// recorder (one kept across configurations: see [`default_recorder`]).
    pub prometheus: Option<PrometheusHandle>,
    /// Lets the admin's `/logging` change the process's log filter.
    pub log_filter: Option<LogFilterControl>,
    /// No access log, whatever the configuration asks (an embedding that logs otherwise, tests).
    pub disable_access_log: bool,
    /// The workload's mTLS identity (certificate, key, trust bundle): inbound connections are
    /// mutual TLS as PeerAuthentication says. `None`: plaintext only (`STRICT` is refused).
    pub identity: Option<Arc<TlsIdentity>>,
    /// What one client may do on the outbound and inbound listeners.
    pub limits: ListenerLimits,
    /// Where Gateway `credentialName`s are found (`NAME.crt`, `NAME.key`, `NAME-ca.crt`).
    pub gateway_credentials: Option<std::path::PathBuf>,
}

impl Default for SidecarOptions {
    fn default() -> Self {
        SidecarOptions {
            outbound: SocketAddr::from(([127, 0, 0, 1], 15001)),
            inbound: SocketAddr::from(([0, 0, 0, 0], 15006)),
            admin: SocketAddr::from(([127, 0, 0, 1], 15000)),
            prometheus: None,
            gateway_listen: Vec::new(),
        }
    }
}

/// The proxy's services, built from a configuration (not yet listening).
///
/// ```
/// use mesh_proxy::Sidecar;
/// # use mesh_proxy::sidecar::SidecarSettings;
/// use mesh_route::config::Config;
/// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
/// let sidecar = Sidecar::with_settings(Config::default(), settings).unwrap();
/// assert!(sidecar.registry().clusters().is_empty());
/// assert!(sidecar.inbound_service().is_none(), "no Sidecar declares ingress");
/// ```
#[derive(Clone, Debug)]
pub struct Sidecar {
    config: Arc<Config>,
    /// 1 for the configuration loaded at start, one more for each swap.
    version: u64,
    /// The connection pool clusters share unless they have settings of their own.
    upstream: Upstream,
    registry: Arc<Registry>,
    outbound: Arc<SharedStack>,
    inbound: Option<Arc<SharedStack>>,
    /// How the inbound listener accepts connections (PeerAuthentication).
    inbound_tls: Option<InboundTls>,
    server_layers: ServerLayers,
    mirror_stats: Arc<MirrorStats>,
    span_stats: Option<Arc<ReporterStats>>,
    /// The Zipkin collector and the reporter exporting to it, when spans are exported.
    span_reporter: Option<(String, SpanReporter)>,
    telemetry: Telemetry,
    log_filter: Option<LogFilterControl>,
    limits: ListenerLimits,
    /// The AuthorizationPolicies that apply to this workload, when any do.
    authorizer: Option<Arc<Authorizer>>,
    /// The ports of the Gateways that select this workload.
    gateways: Arc<[Arc<GatewayPort>]>,
    /// CONNECT tunnels' relays (shared with the configurations before and after this one).
    tunnel_tasks: TunnelTasks,
}

/// The metrics and access-log layers of both listeners.
#[derive(Clone)]
struct Telemetry {
    outbound: TelemetryLayer,
    /// The outbound side's metrics, for tunnels (their `istio_tcp_*` counters).
    outbound_metrics: Arc<IstioMetrics>,
    inbound: TelemetryLayer,
    prometheus: Option<PrometheusHandle>,
    access_log: Option<Arc<AccessLogStats>>,
    /// Every access log opened (flushed on shutdown).
    access_logs: Vec<AccessLog>,
    /// What each of them was opened for, so a later configuration asking the same reuses it.
    opened: Vec<(AccessLogSettings, AccessLog)>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("outbound", &self.outbound)
            .field("inbound", &self.inbound)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// The layers `config` asks for, recording into `settings.metrics` (or a Prometheus
    /// recorder of their own); access logs `previous` has open with the same settings are
    /// reused (their counters and buffered lines carry on).
    fn new(
        config: &Config,
        settings: &SidecarSettings,
        workload: &Workload,
        source: &SourceWorkload,
        previous: Option<&Telemetry>,
    ) -> Result<Self, StartError> {
        let (recorder, prometheus) = match &settings.metrics {
            Some(recorder) => (recorder.clone(), settings.prometheus.clone()),
            None => default_recorder()?,
        };
        let mut logs = TelemetrySettings::from_config(config, source);
        if settings.disable_access_log {
            logs.client_access_log = None;
            logs.server_access_log = None;
        }
        let mut opened: Vec<(AccessLogSettings, AccessLog)> = Vec::new();
        let mut open = |wanted: Option<AccessLogSettings>| -> Result<_, StartError> {
            let Some(wanted) = wanted else {
                return Ok(None);
            };
            let reusable = previous.into_iter().flat_map(|p| p.opened.iter());
            if let Some((_, log)) = opened.iter().find(|(settings, _)| *settings == wanted) {
                return Ok(Some(log.clone()));
            }
            if let Some((_, log)) = reusable
                .into_iter()
                .find(|(settings, _)| *settings == wanted)
            {
                opened.push((wanted, log.clone()));
                return Ok(Some(log.clone()));
            }
            let log = AccessLog::open(&wanted.path, wanted.encoding, AccessLogConfig::default())
                .map_err(|source| StartError::AccessLog {
                    path: wanted.path.clone(),
                    source,
                })?;
            opened.push((wanted, log.clone()));
            Ok(Some(log))
        };
        // A ServiceEntry's hosts that name no namespace report the entry's, as in Istio.
        let service_namespaces: Vec<(String, String)> =
            config
                .service_entries
                .iter()
                .filter_map(|entry| Some((entry, entry.namespace()?)))
                .flat_map(|(entry, namespace)| {
                    entry.spec.hosts.iter().map(move |host| {
                        (canonical_host(host, Some(namespace)), namespace.to_owned())
                    })
                })
                .collect();
        let side = |reporter, log: Option<AccessLog>| {
            let metrics = Arc::new(
                IstioMetrics::new(recorder.clone(), reporter, workload.clone())
                    .with_service_namespaces(service_namespaces.clone()),
            );
            let layer = TelemetryLayer::new().metrics(metrics.clone());
            let layer = match log {
                Some(log) => layer.access_log(log),
                None => layer,
            };
            (layer, metrics)
        };
        let (outbound, outbound_metrics) = side(Reporter::Source, open(logs.client_access_log)?);
        let (inbound, _) = side(Reporter::Destination, open(logs.server_access_log)?);
        // Both sides count into one set of stats when they share the log; the first is shown.
        let access_log = opened.first().map(|(_, log)| log.stats().clone());
        Ok(Telemetry {
            outbound,
            outbound_metrics,
            inbound,
            prometheus,
            access_log,
            access_logs: opened.iter().map(|(_, log)| log.clone()).collect(),
            opened,
        })
    }
}

/// The tracing layers of both listeners: per side (outbound `Client`, inbound `Server`) a
/// trace layer with that side's sampling, and a span layer, off unless that side's spans are
/// reported.
struct Tracing {
    client: SideTracing,
    server: SideTracing,
    stats: Option<Arc<ReporterStats>>,
    /// The collector spans are exported to, and the reporter doing it.
    reporter: Option<(String, SpanReporter)>,
}

/// One listener's tracing layers.
#[derive(Clone)]
struct SideTracing {
    trace: TraceLayer,
    spans: SpanLayer,
}

impl Tracing {
    /// The layers `config` asks for, for a proxy running as `workload`; spans are exported only
    /// when a collector is configured.
    ///
    /// The reporter of `previous` (the configuration this one replaces) is kept when it exports
    /// to the same collector, so its queue and counters carry on.
    fn new(
        config: &Config,
        workload: &SourceWorkload,
        previous: Option<&(String, SpanReporter)>,
    ) -> Result<Self, StartError> {
        let env = |name: &str| std::env::var(name).ok();
        let client = TraceSettings::from_config(config, WorkloadMode::Client, workload, env);
        let server = TraceSettings::from_config(config, WorkloadMode::Server, workload, env);
        let collector = client.zipkin.as_ref().or(server.zipkin.as_ref());
        let mut reporter = None;
        if let Some(collector) = collector {
            let identity = WorkloadIdentity::from_env();
            let spawned = match previous {
                Some((address, kept)) if address == collector => kept.clone(),
                _ => zipkin_reporter(collector, &identity)?,
            };
            reporter = Some((spawned, identity));
        }
        let side = |settings: &TraceSettings, kind| {
            let spans = reporter.as_ref().filter(|_| settings.zipkin.is_some());
            let trace = match settings.enabled {
                true => TraceLayer::new(settings.sampler(), settings.propagation),
                false => TraceLayer::off(),
            };
            SideTracing {
                // The inbound side's context is the application's to read; the outbound
                // side's, only its span layer's.
                trace: match (kind, spans) {
                    (SpanKind::Client, None) => trace.without_context_extension(),
                    _ => trace,
                },
                spans: spans.map_or_else(SpanLayer::off, |(reporter, identity)| {
                    let mut tags = SpanTags::new(identity, settings.custom_tags.clone())
                        .max_path_tag_length(settings.max_path_tag_length);
                    if !settings.istio_tags {
                        tags = tags.without_istio_tags();
                    }
                    SpanLayer::new(kind, reporter.clone(), tags)
                }),
            }
        };
        Ok(Tracing {
            client: side(&client, SpanKind::Client),
            server: side(&server, SpanKind::Server),
            stats: reporter.as_ref().map(|(r, _)| r.stats().clone()),
            reporter: collector.cloned().zip(reporter.map(|(r, _)| r)),
        })
    }
}

/// A span reporter exporting to the Zipkin `collector`, on the current tokio runtime.
#[cfg(feature = "zipkin")]
fn zipkin_reporter(
    collector: &str,
    identity: &WorkloadIdentity,
) -> Result<SpanReporter, StartError> {
    let exporter = mesh_trace::zipkin::exporter(collector, &identity.service_name(), None)
        .map_err(TracingError::from)?;
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(TracingError::NoRuntime.into());
    }
    Ok(SpanReporter::spawn(
        exporter,
        mesh_trace::reporter::ReporterConfig::default(),
    ))
}

/// Without the `zipkin` feature, a configured collector is an error rather than silently
/// ignored.
#[cfg(not(feature = "zipkin"))]
fn zipkin_reporter(
    collector: &str,
    _identity: &WorkloadIdentity,
) -> Result<SpanReporter, StartError> {
    Err(TracingError::NoZipkinFeature {
        collector: collector.to_owned(),
    }
    .into())
}

impl Sidecar {
    /// Builds the services for `config`, with default [`SidecarSettings`].
    ///
    /// ```
    /// use mesh_proxy::Sidecar;
    /// use mesh_route::config::Config;
    /// let sidecar = Sidecar::new(Config::default()).unwrap();
    /// assert_eq!(sidecar.version(), 1);
    /// assert!(sidecar.span_stats().is_none(), "no Zipkin collector configured");
    /// ```
    pub fn new(config: Config) -> Result<Self, StartError> {
        Sidecar::with_settings(config, SidecarSettings::default())
    }

    /// Builds the services for `config` with `settings`.
    ///
    /// With a request body limit, the listeners refuse a request announcing a larger body:
    ///
    /// ```
    /// use mesh_proxy::{Sidecar, limits::ListenerLimits, sidecar::SidecarSettings};
    /// # use mesh_proxy::SidecarOptions;
    /// use mesh_route::config::Config;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let settings = SidecarSettings {
    ///     disable_access_log: true,
    ///     limits: ListenerLimits { max_request_body_bytes: Some(1024), ..ListenerLimits::default() },
    ///     ..SidecarSettings::default()
    /// };
    /// let sidecar = Sidecar::with_settings(Config::default(), settings).unwrap();
    /// # let any = "127.0.0.1:0".parse().unwrap();
    /// # let options = SidecarOptions { outbound: any, inbound: any, admin: any, ..SidecarOptions::default() };
    /// let running = sidecar.start(&options).await.unwrap();
    /// let mut client = tokio::net::TcpStream::connect(running.addr("outbound").unwrap()).await.unwrap();
    /// client.write_all(b"POST / HTTP/1.1\r\nhost: catalog\r\ncontent-length: 2048\r\n\r\n").await.unwrap();
    /// let mut status = [0; 12];
    /// client.read_exact(&mut status).await.unwrap();
    /// assert_eq!(&status, b"HTTP/1.1 413");
    /// # running.shutdown().await;
    /// # }
    /// ```
    pub fn with_settings(config: Config, settings: SidecarSettings) -> Result<Self, StartError> {
        Sidecar::after(config, settings, None)
    }

    /// Builds the services for `config` with `settings`, keeping what `previous` (the
    /// configuration it replaces) has where nothing changed: its connection pool, and the
    /// endpoints, breakers and outlier state [`Registry::build_after`] keeps.
    pub(crate) fn after(
        config: Config,
        settings: SidecarSettings,
        previous: Option<&Sidecar>,
    ) -> Result<Self, StartError> {
        // Canaries route their services as the canary controller has them now.
        let routed = config.with_canary_routes();
        // Who this proxy is: its metrics' labels, the workload its policies select, the
        // Gateways that select it, and the source its routes' `sourceLabels` /
        // `sourceNamespace` are decided against — its configured labels over Istio's
        // (`ISTIO_METAJSON_LABELS`, from `proxyMetadata` or the environment).
        let env = |name: &str| std::env::var(name).ok();
        let workload = settings.workload.resolve(&config, env);
        let labels = settings.workload.labels(&config, env);
        let served_ports = served_ports(&routed, &labels).map_err(GatewayError::from)?;
        let source = SourceWorkload {
            labels,
            namespace: workload.namespace.clone(),
        };
        let table = Arc::new(RouteTable::compile_for(&routed, &served_ports, &source)?);
        let connect_timeout = config
            .mesh
            .connect_timeout
            .map_or(DEFAULT_CONNECT_TIMEOUT, |t| t.get());
        let upstream = match previous {
            Some(previous) if previous.upstream.connect_timeout() == connect_timeout => {
                previous.upstream.clone()
            }
            _ => Upstream::new(connect_timeout),
        };
        let upstream_kept = upstream.clone();
        let registry = Arc::new(Registry::build_after(
            &routed,
            &table,
            &upstream,
            previous.map(|p| &*p.registry),
            settings.identity.as_deref(),
        )?);
        let forward = Forward::new(registry.clone(), upstream.clone(), config.outbound_mode());
        let shadow = ShadowService::new(TimeoutLayer::default().layer(forward.clone()));
        let mirror =
            MirrorLayer::new(shadow).host_suffix(mesh_route::mirror::host_suffix_enabled(&config));
        let mirror_stats = mirror.stats().clone();
        let tracing = Tracing::new(
            &config,
            &source,
            previous.and_then(|p| p.span_reporter.as_ref()),
        )?;
        let telemetry = Telemetry::new(
            &config,
            &settings,
            &workload,
            &source,
            previous.map(|p| &p.telemetry),
        )?;
        // The layers of policies no route sets are left out: a request of the common route with
        // neither does not pass through them.
        let faults = table.any_route_policy(|policy| policy.fault.is_some());
        let mirrors = table.any_route_policy(|policy| policy.mirrors.is_some());
        // The outbound stack; gateway ports run the same one in their route scope.
        let http_stack = |route: RouteLayer, connect: Option<ConnectLayer>| {
            ServiceBuilder::new()
                .layer(tracing.client.trace)
                // A bodiless response's watchers are told at once: its body is not boxed in them.
                .map_response(|response: http::Response<_>| response.map(IntoBody::into_body))
                .layer(telemetry.outbound.clone())
                .layer(tracing.client.spans.clone())
                .option_layer(connect)
                .layer(route)
                // Faults first, as Envoy's fault filter runs before the router mirrors: an
                // aborted request is not shadowed, a delayed one is shadowed after its delay.
                .option_layer(faults.then(FaultLayer::new))
                .option_layer(mirrors.then(|| mirror.clone()))
                .layer(TimeoutLayer::default())
                // The forwarder hands each attempt's extensions back: no clone is kept.
                .layer(RetryLayer::new().extensions_handed_back())
                .service(forward.clone())
        };
        let tunnels = Tunnels::new(
            table.clone(),
            registry.clone(),
            telemetry.outbound_metrics.clone(),
        );
        let mut gateways = Vec::with_capacity(served_ports.len());
        for served in &served_ports {
            let scope = table
                .gateway_scope(served.port)
                .ok_or(GatewayError::NoRouteScope(served.port))?;
            let route = RouteLayer::new(table.clone()).in_scope(scope);
            let http = HttpService::new(http_stack(route, None));
            let port = GatewayPort::new(
                served,
                scope,
                http,
                tunnels.clone(),
                settings.gateway_credentials.as_deref(),
            )?;
            gateways.push(Arc::new(port));
        }
        drop(served_ports);
        drop(routed);
        // CONNECT tunnels are routed and counted as connections (inside telemetry, which
        // reports the CONNECT request itself).
        let tunnel_tasks = previous.map(|p| p.tunnel_tasks.clone()).unwrap_or_default();
        let connect = ConnectLayer::new(
            tunnels,
            config.outbound_mode(),
            connect_timeout,
            settings.limits.idle_timeout,
            tunnel_tasks.clone(),
        );
        let outbound = http_stack(RouteLayer::new(table), Some(connect));
        let server_layers = ServerLayers {
            trace: tracing.server.trace,
            telemetry: telemetry.inbound.clone(),
            spans: tracing.server.spans,
        };
        let ingress = config.sidecars.iter().find(|s| !s.spec.ingress.is_empty());
        let ingress_port = ingress.and_then(|s| s.spec.ingress.first().map(|i| i.port.number));
        let namespace = workload.namespace;
        // AuthorizationPolicy runs inside telemetry: denials are reported (403).
        let authorizer = Authorizer::for_workload(
            &config,
            &namespace,
            &settings.workload.labels,
            ingress_port
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(0),
        )
        .map(Arc::new);
        let inbound = match ingress {
            Some(sidecar) => {
                check_single_port_policies(
                    &config,
                    &settings,
                    &namespace,
                    &sidecar.spec,
                    authorizer.as_deref(),
                )?;
                Inbound::new(&sidecar.spec, upstream)?.map(|inbound| match &authorizer {
                    Some(authorizer) => server_layers
                        .layer(AuthorizationLayer::shared(authorizer.clone()).layer(inbound)),
                    None => server_layers.layer(inbound),
                })
            }
            None => None,
        };
        let inbound_tls = match inbound {
            Some(_) => Some(inbound_tls(&config, &settings, &namespace, ingress_port)?),
            None => None,
        };
        Ok(Sidecar {
            config: Arc::new(config),
            version: 1,
            upstream: upstream_kept,
            registry,
            outbound: Arc::new(SharedStack::new(BoxCloneSyncService::new(outbound))),
            gateways: gateways.into(),
            tunnel_tasks,
            inbound: inbound.map(|inbound| Arc::new(SharedStack::new(inbound))),
            inbound_tls,
            server_layers,
            mirror_stats,
            span_stats: tracing.stats,
            span_reporter: tracing.reporter,
            telemetry,
            log_filter: settings.log_filter,
            limits: settings.limits,
            authorizer,
        })
    }

    /// The admin service (what the admin listener serves), reporting on this sidecar.
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use mesh_proxy::Sidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// use tower::ServiceExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let sidecar = Sidecar::with_settings(Config::default(), settings).unwrap();
    /// let request = http::Request::get("/ready").body(mesh_core::body::empty()).unwrap();
    /// let response = sidecar.admin_service().oneshot(request).await.unwrap();
    /// assert_eq!(response.status(), 200);
    /// assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "LIVE\n");
    /// # }
    /// ```
    pub fn admin_service(&self) -> Admin {
        self.admin_service_with(None, None)
    }

    /// The admin service, also reporting `updates` and `canaries` (of a live sidecar).
    pub(crate) fn admin_service_with(
        &self,
        updates: Option<Arc<ConfigUpdates>>,
        canaries: Option<CanaryBoard>,
    ) -> Admin {
        Admin::new(Arc::new(AdminState {
            config: self.config.clone(),
            version: self.version,
            registry: self.registry.clone(),
            stats: StatsSources {
                registry: self.registry.clone(),
                mirror: Some(self.mirror_stats.clone()),
                spans: self.span_stats.clone(),
                access_log: self.telemetry.access_log.clone(),
                config_updates: updates,
            },
            prometheus: self.telemetry.prometheus.clone(),
            log_filter: self.log_filter.clone(),
            canaries,
        }))
    }

    /// The span reporter's counters, when spans are exported.
    ///
    /// ```
    /// use mesh_proxy::Sidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let sidecar = Sidecar::with_settings(Config::default(), settings).unwrap();
    /// // Spans are exported only to a configured Zipkin collector.
    /// assert!(sidecar.span_stats().is_none());
    /// ```
    pub fn span_stats(&self) -> Option<&Arc<ReporterStats>> {
        self.span_stats.as_ref()
    }

    /// What became of the outbound listener's shadow (mirrored) requests: those sent, and those
    /// dropped (too many in flight), skipped (a body too large or incomplete) or failed.
    ///
    /// ```
    /// use mesh_proxy::{Sidecar, sidecar::SidecarSettings};
    /// use mesh_route::config::Config;
    /// use std::sync::atomic::Ordering;
    /// use tower::ServiceExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// // `catalog`'s requests are copied to `catalog-shadow`; both point at a port where nothing
    /// // listens, so the primary fails and the copy with it, but the copy was sent.
    /// const YAML: &str = "
    /// apiVersion: networking.istio.io/v1
    /// kind: ServiceEntry
    /// metadata: {name: catalog}
    /// spec:
    ///   hosts: [catalog, catalog-shadow]
    ///   resolution: STATIC
    ///   ports: [{number: 80, name: http}]
    ///   endpoints: [{address: 127.0.0.1, ports: {http: 1}}]
    /// ---
    /// apiVersion: networking.istio.io/v1
    /// kind: VirtualService
    /// metadata: {name: catalog}
    /// spec:
    ///   hosts: [catalog]
    ///   http:
    ///   - mirror: {host: catalog-shadow}
    ///     route: [{destination: {host: catalog}}]
    /// ";
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let sidecar = Sidecar::with_settings(Config::from_yaml_str(YAML).unwrap().config, settings).unwrap();
    /// assert_eq!(sidecar.mirror_stats().sent.load(Ordering::Relaxed), 0);
    /// let request = http::Request::get("http://catalog/").body(mesh_core::body::empty()).unwrap();
    /// let failed = sidecar.outbound_service().oneshot(request).await;
    /// assert!(failed.is_err(), "a connect failure, which the listener answers with 503 UF");
    /// assert_eq!(sidecar.mirror_stats().sent.load(Ordering::Relaxed), 1);
    /// # }
    /// ```
    pub fn mirror_stats(&self) -> &Arc<MirrorStats> {
        &self.mirror_stats
    }

    /// The outbound service, for use in-process (or in benchmarks) without a listener.
    ///
    /// A route that aborts every request answers without any network:
    ///
    /// ```
    /// use mesh_proxy::Sidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// use tower::ServiceExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\n\
    ///             spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n\
    ///             ---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: catalog}\n\
    ///             spec: {hosts: [catalog], http: [{fault: {abort: {httpStatus: 418, percentage: {value: 100}}}, \
    ///             route: [{destination: {host: catalog}}]}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let sidecar = Sidecar::with_settings(config, settings).unwrap();
    /// let request = http::Request::get("http://catalog/items").body(mesh_core::body::empty()).unwrap();
    /// let response = sidecar.outbound_service().oneshot(request).await.unwrap();
    /// assert_eq!(response.status(), 418);
    /// # }
    /// ```
    pub fn outbound_service(&self) -> HttpService {
        self.outbound.service().clone()
    }

    /// The outbound stack, to call without cloning it per request (as an embedding's client
    /// and a [`LiveSidecar`]'s outbound listener do).
    ///
    /// ```
    /// use mesh_proxy::Sidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\n\
    ///             spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n\
    ///             ---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: catalog}\n\
    ///             spec: {hosts: [catalog], http: [{fault: {abort: {httpStatus: 418, percentage: {value: 100}}}, \
    ///             route: [{destination: {host: catalog}}]}]}\n";
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let sidecar = Sidecar::with_settings(Config::from_yaml_str(yaml).unwrap().config, settings).unwrap();
    /// let request = http::Request::get("http://catalog/items").body(mesh_core::body::empty()).unwrap();
    /// assert_eq!(sidecar.outbound().call(request).await.unwrap().status(), 418);
    /// # }
    /// ```
    pub fn outbound(&self) -> &SharedStack {
        &self.outbound
    }

    /// How the inbound listener accepts connections under the PeerAuthentication in force;
    /// `None` without an inbound listener.
    ///
    /// ```
    /// use mesh_proxy::Sidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::{Config, peer_authentication::MtlsMode};
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: app, namespace: shop}\n\
    ///             spec: {ingress: [{port: {number: 3000, protocol: HTTP, name: http}, defaultEndpoint: '127.0.0.1:8080'}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let sidecar = Sidecar::with_settings(config, settings).unwrap();
    /// // No PeerAuthentication: Istio's default, PERMISSIVE.
    /// assert_eq!(sidecar.inbound_tls().unwrap().mode(), MtlsMode::Permissive);
    /// ```
    pub fn inbound_tls(&self) -> Option<&InboundTls> {
        self.inbound_tls.as_ref()
    }

    /// The AuthorizationPolicies that apply to this workload (compiled), when any do: the inbound
    /// listener enforces them, and an embedding application's server layer too.
    ///
    /// ```
    /// use mesh_proxy::Sidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n\
    ///             metadata: {name: no-admin, namespace: default}\n\
    ///             spec: {action: DENY, rules: [{to: [{operation: {paths: ['/admin*']}}]}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let sidecar = Sidecar::with_settings(config, settings).unwrap();
    /// assert!(sidecar.authorizer().is_some());
    /// ```
    pub fn authorizer(&self) -> Option<&Arc<Authorizer>> {
        self.authorizer.as_ref()
    }

    /// The inbound side's layers, to put in front of an application's own service in-process
    /// (the inbound listener runs them in front of its forwarder).
    ///
    /// ```
    /// use mesh_proxy::Sidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let sidecar = Sidecar::with_settings(Config::default(), settings).unwrap();
    /// let app = service_fn(|_req| async { Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::empty())) });
    /// let served = sidecar.server_layers().layer(app);
    /// let request = http::Request::get("http://app/").body(mesh_core::body::empty()).unwrap();
    /// assert_eq!(served.oneshot(request).await.unwrap().status(), 200);
    /// # }
    /// ```
    pub fn server_layers(&self) -> &ServerLayers {
        &self.server_layers
    }

    /// The configuration the sidecar was built from.
    ///
    /// ```
    /// use mesh_proxy::Sidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\n\
    ///             spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n\
    ///             ---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: catalog}\n\
    ///             spec: {hosts: [catalog], http: [{route: [{destination: {host: catalog}}]}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let sidecar = Sidecar::with_settings(config, settings).unwrap();
    /// assert_eq!(sidecar.config().virtual_services.len(), 1);
    /// ```
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The configuration's version: 1 for the one loaded at start, one more for each swap
    /// (see [`LiveSidecar`]).
    ///
    /// ```
    /// use mesh_proxy::{LiveSidecar, Sidecar, sidecar::SidecarSettings};
    /// use mesh_route::config::Config;
    /// use std::sync::Arc;
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let sidecar = Sidecar::with_settings(Config::default(), settings.clone()).unwrap();
    /// assert_eq!(sidecar.version(), 1);
    /// // A live sidecar numbers each sidecar it swaps in.
    /// let live = LiveSidecar::new(Config::default(), settings).unwrap();
    /// live.swap(Config::default()).unwrap();
    /// let swapped: Arc<Sidecar> = live.current();
    /// assert_eq!(swapped.version(), 2);
    /// ```
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The same services, numbered `version`.
    pub(crate) fn with_version(mut self, version: u64) -> Self {
        self.version = version;
        self
    }

    /// Every access log this sidecar writes (flushed on shutdown).
    pub(crate) fn access_logs(&self) -> &[AccessLog] {
        &self.telemetry.access_logs
    }

    /// The ports of the Gateways that select this workload.
    ///
    /// ```
    /// use mesh_proxy::{Sidecar, sidecar::SidecarSettings};
    /// use mesh_route::config::Config;
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: edge, namespace: shop}\n\
    ///             spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*']}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let mut settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// settings.workload.labels.insert("istio".into(), "ingressgateway".into());
    /// let sidecar = Sidecar::with_settings(config, settings).unwrap();
    /// let ports: Vec<u16> = sidecar.gateway_ports().iter().map(|p| p.port).collect();
    /// assert_eq!(ports, [8080]);
    /// ```
    pub fn gateway_ports(&self) -> &[Arc<GatewayPort>] {
        &self.gateways
    }

    /// The relays of CONNECT tunnels.
    pub(crate) fn tunnel_tasks(&self) -> &TunnelTasks {
        &self.tunnel_tasks
    }

    /// The same, shared.
    pub(crate) fn shared_gateway_ports(&self) -> Arc<[Arc<GatewayPort>]> {
        self.gateways.clone()
    }

    /// The Gateway port `port`, when this workload serves one.
    ///
    /// ```
    /// use mesh_proxy::{Sidecar, sidecar::SidecarSettings};
    /// use mesh_route::config::Config;
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: edge, namespace: shop}\n\
    ///             spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*']}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let mut settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// settings.workload.labels.insert("istio".into(), "ingressgateway".into());
    /// let sidecar = Sidecar::with_settings(config, settings).unwrap();
    /// assert_eq!(sidecar.gateway_port(8080).unwrap().listen_addr().port(), 8080);
    /// assert!(sidecar.gateway_port(443).is_none());
    /// ```
    pub fn gateway_port(&self, port: u16) -> Option<Arc<GatewayPort>> {
        self.gateways.iter().find(|g| g.port == port).cloned()
    }

    /// The inbound service, when a Sidecar resource declares `ingress`.
    ///
    /// ```
    /// use mesh_proxy::Sidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: app, namespace: shop}\n\
    ///             spec: {ingress: [{port: {number: 3000, protocol: HTTP, name: http}, defaultEndpoint: '127.0.0.1:8080'}]}\n";
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let with_ingress = Sidecar::with_settings(Config::from_yaml_str(yaml).unwrap().config, settings.clone()).unwrap();
    /// assert!(with_ingress.inbound_service().is_some());
    /// let without = Sidecar::with_settings(Config::default(), settings).unwrap();
    /// assert!(without.inbound_service().is_none());
    /// ```
    pub fn inbound_service(&self) -> Option<HttpService> {
        self.inbound
            .as_ref()
            .map(|inbound| inbound.service().clone())
    }

    /// The inbound stack, when a Sidecar resource declares `ingress`, to call without cloning
    /// it per request (as a [`LiveSidecar`]'s inbound listener does).
    ///
    /// ```
    /// use mesh_proxy::Sidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let sidecar = Sidecar::with_settings(Config::default(), settings).unwrap();
    /// assert!(sidecar.inbound().is_none(), "no Sidecar declares ingress");
    /// ```
    pub fn inbound(&self) -> Option<&SharedStack> {
        self.inbound.as_deref()
    }

    /// The endpoint registry.
    ///
    /// ```
    /// use mesh_proxy::Sidecar;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: catalog}\n\
    ///             spec: {hosts: [catalog], resolution: STATIC, ports: [{number: 80, name: http}], \
    ///             endpoints: [{address: 127.0.0.1, ports: {http: 9001}}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let sidecar = Sidecar::with_settings(config, settings).unwrap();
    /// let cluster = &sidecar.registry().clusters()[0];
    /// assert_eq!(cluster.all_endpoints().next().unwrap().1.authority, "127.0.0.1:9001");
    /// ```
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Binds every listener, then serves them in the background.
    ///
    /// ```
    /// use mesh_proxy::{Sidecar, SidecarOptions};
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let any = "127.0.0.1:0".parse().unwrap();
    /// let options = SidecarOptions { outbound: any, inbound: any, admin: any, ..SidecarOptions::default() };
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let running = Sidecar::with_settings(Config::default(), settings).unwrap().start(&options).await.unwrap();
    /// assert_ne!(running.addr("outbound").unwrap().port(), 0);
    /// running.shutdown().await;
    /// # }
    /// ```
    pub async fn start(self, options: &SidecarOptions) -> Result<RunningSidecar, StartError> {
        let admin = self.admin_service();
        Served {
            outbound: self.outbound_service(),
            inbound: self.inbound_service(),
            inbound_tls: {
                let tls = self.inbound_tls.clone();
                Arc::new(move || tls.clone())
            },
            limits: self.limits.clone(),
            gateways: GatewaySource::of(&self),
            admin: BoxCloneSyncService::new(admin.clone()),
            metrics_only: BoxCloneSyncService::new(admin.metrics_only()),
            access_logs: self.telemetry.access_logs.clone(),
            live: None,
            tunnel_tasks: self.tunnel_tasks.clone(),
            drain: {
                let drain = self.config.mesh.termination_drain_duration();
                Arc::new(move || drain)
            },
        }
        .start(options)
        .await
    }
}

/// What the listeners serve: one sidecar's services, or a live sidecar's (which follow its
/// swaps).
pub(crate) struct Served {
    pub(crate) outbound: HttpService,
    pub(crate) inbound: Option<HttpService>,
    /// How the inbound listener accepts each connection.
    pub(crate) inbound_tls: InboundTlsSource,
    /// What one client may do, on the outbound and inbound listeners.
    pub(crate) limits: ListenerLimits,
    /// The Gateway ports to listen on, and their current state.
    pub(crate) gateways: GatewaySource,
    pub(crate) admin: HttpService,
    pub(crate) metrics_only: HttpService,
    pub(crate) access_logs: Vec<AccessLog>,
    /// The live sidecar served, whose current access logs are flushed at shutdown too.
    pub(crate) live: Option<LiveSidecar>,
    /// CONNECT tunnels' relays, closed once the listeners have drained.
    pub(crate) tunnel_tasks: TunnelTasks,
    /// How long open connections get to finish at shutdown (`terminationDrainDuration`).
    pub(crate) drain: DrainDuration,
}

impl Served {
    /// Binds every listener, then serves them in the background.
    pub(crate) async fn start(
        self,
        options: &SidecarOptions,
    ) -> Result<RunningSidecar, StartError> {
        let bind_named = |name: &'static str, addr: SocketAddr| async move {
            bind(addr)
                .await
                .map_err(|source| StartError::Bind { name, addr, source })
        };
        let mut gateway_listeners = Vec::with_capacity(self.gateways.ports.len());
        for (port, kind, default_addr) in &self.gateways.ports {
            let addr = options
                .gateway_listen
                .iter()
                .find(|(p, _)| p == port)
                .map_or(*default_addr, |(_, addr)| *addr);
            let bound = bind_named("gateway", addr).await?;
            gateway_listeners.push((*port, *kind, bound));
        }
        let (outbound_listener, outbound) = bind_named("outbound", options.outbound).await?;
        let inbound_listener = match self.inbound {
            Some(_) => Some(bind_named("inbound", options.inbound).await?),
            None => None,
        };
        let (admin_listener, admin) = bind_named("admin", options.admin).await?;
        let prometheus_listener = match options.prometheus {
            Some(addr) => Some(bind_named("prometheus", addr).await?),
            None => None,
        };

        let (stop, stopped) = watch::channel(false);
        let drain = self.drain;
        let limits = self.limits;
        let plaintext = ServeOptions {
            tls: None,
            limits: limits.clone(),
        };
        let mut tasks = vec![tokio::spawn(serve_with(
            outbound_listener,
            self.outbound,
            stopped.clone(),
            drain.clone(),
            plaintext,
        ))];
        let inbound_options = ServeOptions {
            tls: Some(self.inbound_tls.clone()),
            limits,
        };
        let mut listeners: Vec<(ListenerName, SocketAddr)> = vec![("outbound".into(), outbound)];
        let inbound_served = self.inbound.is_some();
        if let (Some((listener, addr)), Some(service)) = (inbound_listener, self.inbound) {
            tasks.push(tokio::spawn(serve_with(
                listener,
                service,
                stopped.clone(),
                drain.clone(),
                inbound_options.clone(),
            )));
            listeners.push(("inbound".into(), addr));
        }
        if let Some((listener, addr)) = prometheus_listener {
            tasks.push(tokio::spawn(serve(
                listener,
                self.metrics_only,
                stopped.clone(),
                drain.clone(),
            )));
            listeners.push(("prometheus".into(), addr));
        }
        tasks.push(tokio::spawn(serve(
            admin_listener,
            self.admin,
            stopped.clone(),
            drain.clone(),
        )));
        for (port, kind, (listener, addr)) in gateway_listeners {
            tasks.push(tokio::spawn(serve_gateway_port(
                self.gateways.clone(),
                port,
                kind,
                listener,
                stopped.clone(),
                drain.clone(),
                inbound_options.limits.clone(),
            )));
            listeners.push((format!("gateway-{port}").into(), addr));
        }
        if !self.gateways.ports.is_empty() {
            tasks.push(tokio::spawn(watch_certificates(
                self.gateways.clone(),
                CERTIFICATE_POLL_INTERVAL,
                stopped.clone(),
            )));
        }
        listeners.push(("admin".into(), admin));
        let listeners = watch::Sender::new(listeners);
        if let (Some(live), false) = (&self.live, inbound_served) {
            tasks.push(tokio::spawn(open_inbound_when_configured(
                live.clone(),
                options.inbound,
                listeners.clone(),
                stopped,
                drain.clone(),
                inbound_options,
            )));
        }
        Ok(RunningSidecar {
            listeners,
            stop,
            tasks,
            access_logs: self.access_logs,
            tunnel_tasks: self.tunnel_tasks,
            drain: TunnelDrain(drain),
            live: self.live,
        })
    }
}

/// Opens the inbound listener on `addr` once the live configuration declares a Sidecar
/// `ingress` (a swap added one), adds it to `listeners`, and serves it until `stopped`.
async fn open_inbound_when_configured(
    live: LiveSidecar,
    addr: SocketAddr,
    listeners: watch::Sender<Vec<(ListenerName, SocketAddr)>>,
    mut stopped: watch::Receiver<bool>,
    drain: DrainDuration,
    options: ServeOptions,
) {
    let mut versions = live.versions();
    loop {
        if live.peek().inbound_service().is_some() {
            match bind(addr).await {
                Ok((listener, bound)) => {
                    tracing::info!(%bound, "configuration declares ingress: inbound listener opened");
                    listeners.send_modify(|all| {
                        let at = all.len().saturating_sub(1);
                        all.insert(at, ("inbound".into(), bound));
                    });
                    serve_with(listener, live.inbound_service(), stopped, drain, options).await;
                    return;
                }
                Err(error) => tracing::error!(
                    %addr, %error,
                    "configuration declares ingress, but the inbound listener cannot bind; \
                     retried at the next configuration update"
                ),
            }
        }
        tokio::select! {
            changed = versions.changed() => if changed.is_err() { return },
            _ = stopped.changed() => return,
        }
    }
}

/// Refuses port-specific security (PeerAuthentication `portLevelMtls` that differs between the
/// ingress ports, AuthorizationPolicy rules on ports) when the Sidecar has several ingress
/// ports: one inbound listener serves them all and cannot tell them apart safely yet.
fn check_single_port_policies(
    config: &Config,
    settings: &SidecarSettings,
    namespace: &str,
    sidecar: &mesh_route::config::Sidecar,
    authorizer: Option<&Authorizer>,
) -> Result<(), StartError> {
    if sidecar.ingress.len() < 2 {
        return Ok(());
    }
    let modes: Vec<_> = sidecar
        .ingress
        .iter()
        .map(|i| config.mtls_mode(namespace, &settings.workload.labels, Some(i.port.number)))
        .collect();
    let differ = modes.windows(2).any(|pair| pair[0] != pair[1]);
    if differ || authorizer.is_some_and(Authorizer::uses_ports) {
        return Err(StartError::PortPoliciesOnSeveralIngressPorts);
    }
    Ok(())
}

/// The inbound TLS policy of this workload's ingress `port` under `config`'s PeerAuthentications.
fn inbound_tls(
    config: &Config,
    settings: &SidecarSettings,
    namespace: &str,
    port: Option<u32>,
) -> Result<InboundTls, StartError> {
    let mode = config.mtls_mode(namespace, &settings.workload.labels, port);
    Ok(InboundTls::new(mode, settings.identity.as_deref())?)
}

/// A started sidecar.
///
/// ```
/// use mesh_proxy::Sidecar;
/// # use mesh_proxy::SidecarOptions;
/// # use mesh_proxy::sidecar::SidecarSettings;
/// use mesh_route::config::Config;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # let any = "127.0.0.1:0".parse().unwrap();
/// # let options = SidecarOptions { outbound: any, inbound: any, admin: any, prometheus: Some(any), ..SidecarOptions::default() };
/// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
/// let running = Sidecar::with_settings(Config::default(), settings).unwrap().start(&options).await.unwrap();
/// assert!(running.addr("prometheus").is_some());
/// running.shutdown().await;
/// # }
/// ```
#[derive(Debug)]
pub struct RunningSidecar {
    listeners: watch::Sender<Vec<(ListenerName, SocketAddr)>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    access_logs: Vec<AccessLog>,
    live: Option<LiveSidecar>,
    tunnel_tasks: TunnelTasks,
    /// How long the tunnels get at shutdown.
    drain: TunnelDrain,
}

/// How long open CONNECT tunnels get at shutdown (`terminationDrainDuration`, asked then).
struct TunnelDrain(DrainDuration);

impl std::fmt::Debug for TunnelDrain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TunnelDrain")
    }
}

impl RunningSidecar {
    /// `(name, bound address)` of every listener: `outbound`, `inbound` (if any), `prometheus`
    /// (if asked for), `gateway-PORT` for each Gateway port served, `admin`.
    ///
    /// ```
    /// use mesh_proxy::Sidecar;
    /// # use mesh_proxy::SidecarOptions;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let any = "127.0.0.1:0".parse().unwrap();
    /// # let options = SidecarOptions { outbound: any, inbound: any, admin: any, ..SidecarOptions::default() };
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let running = Sidecar::with_settings(Config::default(), settings).unwrap().start(&options).await.unwrap();
    /// let names: Vec<String> = running.listeners().into_iter().map(|(name, _)| name.into_owned()).collect();
    /// assert_eq!(names, ["outbound", "admin"]);
    /// running.shutdown().await;
    /// # }
    /// ```
    pub fn listeners(&self) -> Vec<(ListenerName, SocketAddr)> {
        self.listeners.borrow().clone()
    }

    /// The listeners as they open: those bound at start, then the inbound listener a live
    /// sidecar opens when a configuration update first declares `ingress`.
    ///
    /// ```
    /// use mesh_proxy::Sidecar;
    /// # use mesh_proxy::SidecarOptions;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let any = "127.0.0.1:0".parse().unwrap();
    /// # let options = SidecarOptions { outbound: any, inbound: any, admin: any, ..SidecarOptions::default() };
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let running = Sidecar::with_settings(Config::default(), settings).unwrap().start(&options).await.unwrap();
    /// let updates = running.listener_updates();
    /// assert_eq!(*updates.borrow(), running.listeners());
    /// running.shutdown().await;
    /// # }
    /// ```
    pub fn listener_updates(&self) -> watch::Receiver<Vec<(ListenerName, SocketAddr)>> {
        self.listeners.subscribe()
    }

    /// The bound address of listener `name`.
    ///
    /// ```
    /// use mesh_proxy::Sidecar;
    /// # use mesh_proxy::SidecarOptions;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let any = "127.0.0.1:0".parse().unwrap();
    /// # let options = SidecarOptions { outbound: any, inbound: any, admin: any, ..SidecarOptions::default() };
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let running = Sidecar::with_settings(Config::default(), settings).unwrap().start(&options).await.unwrap();
    /// let admin = running.addr("admin").unwrap();
    /// assert!(admin.ip().is_loopback() && admin.port() != 0);
    /// assert!(running.addr("inbound").is_none(), "no Sidecar ingress");
    /// running.shutdown().await;
    /// # }
    /// ```
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners
            .borrow()
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
    }

    /// Stops accepting, lets open connections finish (bounded), waits for the listeners, closes
    /// the CONNECT tunnels still open, and writes out the access log lines still buffered.
    ///
    /// ```
    /// use mesh_proxy::Sidecar;
    /// # use mesh_proxy::SidecarOptions;
    /// # use mesh_proxy::sidecar::SidecarSettings;
    /// use mesh_route::config::Config;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let any = "127.0.0.1:0".parse().unwrap();
    /// # let options = SidecarOptions { outbound: any, inbound: any, admin: any, ..SidecarOptions::default() };
    /// # let settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// let running = Sidecar::with_settings(Config::default(), settings).unwrap().start(&options).await.unwrap();
    /// let admin = running.addr("admin").unwrap();
    /// running.shutdown().await;
    /// // The listeners are closed: nothing accepts on the admin port any more.
    /// assert!(tokio::net::TcpStream::connect(admin).await.is_err());
    /// # }
    /// ```
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        // Tunnels get the drain too, then are closed.
        self.tunnel_tasks.drain((self.drain.0)()).await;
        let mut logs = self.access_logs;
        if let Some(live) = &self.live {
            logs.extend(live.current().access_logs().iter().cloned());
        }
        for log in logs {
            let _ = tokio::task::spawn_blocking(move || log.flush()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::body;
    use tower::ServiceExt;

    /// Rule `tester` for `sourceLabels: {app: tester}` in `sourceNamespace: qa`, then `rest`.
    const ROUTES: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog, namespace: shop}
spec:
  hosts: [catalog.example.com]
  http:
  - {name: tester, match: [{sourceLabels: {app: tester}, sourceNamespace: qa}], directResponse: {status: 201}}
  - {name: rest, directResponse: {status: 200}}
"#;

    /// The status the outbound listener of a sidecar running as `workload` answers with.
    async fn status_for(workload: WorkloadSettings) -> u16 {
        status_with("", workload).await
    }

    /// [`status_for`] with the YAML documents `mesh` before the routes.
    async fn status_with(mesh: &str, workload: WorkloadSettings) -> u16 {
        let config = Config::from_yaml_str(&format!("{mesh}{ROUTES}"))
            .unwrap()
            .config;
        let settings = SidecarSettings {
            disable_access_log: true,
            workload,
            ..SidecarSettings::default()
        };
        let sidecar = Sidecar::with_settings(config, settings).unwrap();
        let request = http::Request::get("http://catalog.example.com/")
            .body(body::empty())
            .unwrap();
        let response = sidecar.outbound_service().oneshot(request).await.unwrap();
        response.status().as_u16()
    }

    #[tokio::test]
    async fn the_outbound_trace_context_joins_a_request_only_for_a_span_layer_to_read() {
        let tracing = |yaml: &str| {
            let config = Config::from_yaml_str(yaml).unwrap().config;
            let source = SourceWorkload::default();
            Tracing::new(&config, &source, None).unwrap()
        };
        let attached = |layer: TraceLayer| async move {
            let svc = layer.layer(tower::service_fn(|request: http::Request<()>| async move {
                let context = request.extensions().get::<mesh_trace::TraceContext>();
                Ok::<_, std::convert::Infallible>(context.is_some())
            }));
            svc.oneshot(http::Request::new(())).await.unwrap()
        };
        let no_spans =
            tracing("apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {}\n");
        assert!(
            !attached(no_spans.client.trace).await,
            "outbound, no spans: no one reads it"
        );
        assert!(
            attached(no_spans.server.trace).await,
            "inbound: the application may"
        );
        let spans = tracing(
            "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  defaultConfig: {tracing: {sampling: 100, zipkin: {address: 127.0.0.1:9411}}}\n",
        );
        assert!(attached(spans.client.trace).await, "outbound spans read it");
    }

    #[tokio::test]
    async fn routes_are_compiled_for_the_sidecars_own_workload() {
        let tester = |namespace: &str| WorkloadSettings {
            namespace: Some(namespace.into()),
            labels: [("app".to_string(), "tester".to_string())].into(),
            ..WorkloadSettings::default()
        };
        assert_eq!(status_for(tester("qa")).await, 201);
        assert_eq!(status_for(tester("shop")).await, 200);
        assert_eq!(status_for(WorkloadSettings::default()).await, 200);
        // Istio's labels, from `proxyMetadata`, count too.
        let mesh = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  defaultConfig:\n    proxyMetadata: {ISTIO_METAJSON_LABELS: '{\"app\":\"tester\"}'}\n---\n";
        let qa = WorkloadSettings {
            namespace: Some("qa".into()),
            ..WorkloadSettings::default()
        };
        assert_eq!(status_with(mesh, qa).await, 201);
    }
}
