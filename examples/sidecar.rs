//! The `mesh` sidecar: an Istio-compatible proxy configured by Istio YAML, without Kubernetes.
//!
//! ```text
//! sidecar [--config PATH]... [--check] [--outbound ADDR] [--inbound ADDR] [--admin ADDR]
//!         [--prometheus ADDR] [--workload-name NAME] [--namespace NS] [--label KEY=VALUE]...
//!         [--service-account SA] [--cluster-id ID] [--metrics-server URL] [--certs DIR]
//!         [--max-request-headers-kb KIB] [--max-request-headers N]
//!         [--request-headers-timeout DURATION] [--max-request-body-kb KIB]
//!         [--idle-timeout DURATION] [--credentials DIR] [--gateway-listen PORT=ADDR]...
//! ```
//! With no `--config` it serves as an ALLOW_ANY pass-through proxy with metrics and access
//! logs. `--check` validates, prints every problem and exits 0 (valid) or 1 (invalid). On
//! start it prints one `listening NAME=ADDR` line per listener. The identity flags label the
//! metrics (`source_*` outbound, `destination_*` inbound); unset, they come from the mesh
//! config's `proxyMetadata` or the environment (`ISTIO_META_WORKLOAD_NAME`, `POD_NAMESPACE`,
//! `ISTIO_METAJSON_LABELS`, `SERVICE_ACCOUNT`, `ISTIO_META_CLUSTER_ID`). The log filter
//! starts from `RUST_LOG` (default `info`) and changes at run time through the admin's
//! `/logging?level=…`. The `--config` paths are reloaded when they change (checked every
//! second) and on `SIGHUP`; an invalid configuration is refused whole, logged and counted, and
//! the previous one keeps serving. Flagger `Canary` resources are analysed by the built-in
//! canary controller (status and actions at the admin's `/canaries`), judged by the sidecar's own
//! counters or, with `--metrics-server` (Flagger's `-metrics-server`), by that Prometheus server.
//!
//! Gateways whose `selector` matches the `--label`s (an empty selector matches any) are served
//! on their server ports (`bind:number`, or where `--gateway-listen PORT=ADDR` maps them; each
//! prints `listening gateway-PORT=ADDR`); `credentialName: NAME` is read from `--credentials
//! DIR` as `NAME.crt`, `NAME.key`, `NAME-ca.crt`. Certificates reload when their files change.
//! The outbound listener also takes `CONNECT host:port`: a tunnel routed by the host's `tcp`
//! routes or registry entry (`REGISTRY_ONLY` refuses unknown hosts with 502).

use clap::Parser;
use mesh::proxy::{
    LiveSidecar, SidecarOptions,
    admin::LogFilterControl,
    canary::{CanaryController, CanaryOptions},
    limits::ListenerLimits,
    reload::{ConfigFiles, DEFAULT_POLL_INTERVAL, Reloader},
    sidecar::SidecarSettings,
    tls::{IdentityFiles, TlsIdentity},
    workload_identity::WorkloadSettings,
};
use mesh::route::config::{Config, Diagnostic, Loaded, Severity};
use std::{io::Write, net::SocketAddr, path::PathBuf, process::ExitCode};
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, reload, util::SubscriberInitExt};

/// Command line of the sidecar (DESIGN.md §3).
#[derive(Debug, Parser)]
#[command(
    name = "sidecar",
    about = "An Istio-compatible sidecar proxy built on mesh"
)]
struct Args {
    /// A YAML file (multi-document) or a directory of them; repeatable.
    #[arg(long = "config", value_name = "PATH")]
    config: Vec<PathBuf>,
    /// Validate the configuration, print every problem, and exit 0 (valid) or 1 (invalid).
    #[arg(long)]
    check: bool,
    /// Outbound listener address (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:15001")]
    outbound: SocketAddr,
    /// Inbound listener address, used when a Sidecar resource declares `ingress`.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:15006")]
    inbound: SocketAddr,
    /// Admin listener address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:15000")]
    admin: SocketAddr,
    /// A listener serving only the Prometheus metrics (also at the admin's /stats/prometheus).
    #[arg(long, value_name = "ADDR")]
    prometheus: Option<SocketAddr>,
    /// This workload's name (metric label source_workload / destination_workload).
    #[arg(long, value_name = "NAME")]
    workload_name: Option<String>,
    /// This workload's namespace.
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// A label of this workload (`app=web`, `version=v1`); repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// This workload's service account (its principal: spiffe://TRUST_DOMAIN/ns/NS/sa/SA).
    #[arg(long, value_name = "SA")]
    service_account: Option<String>,
    /// The cluster this workload runs in (default `Kubernetes`).
    #[arg(long, value_name = "ID")]
    cluster_id: Option<String>,
    /// A directory with this workload's mTLS identity in Istio's layout (`cert-chain.pem`,
    /// `key.pem`, `root-cert.pem`; `certs` makes them): inbound connections are then mutual TLS
    /// as PeerAuthentication says.
    #[arg(long, value_name = "DIR")]
    certs: Option<PathBuf>,
    /// Largest request head (request line and headers) in KiB; larger ones get 431.
    #[arg(long, value_name = "KIB", default_value_t = 60)]
    max_request_headers_kb: usize,
    /// Most request headers; more get 431.
    #[arg(long, value_name = "N", default_value_t = 100)]
    max_request_headers: usize,
    /// Time a client has to send its request headers (`10s`, `500ms`; `0s`: no limit).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    request_headers_timeout: std::time::Duration,
    /// Time a connection (or tunnel) may carry no byte either way before it is closed (`0s`:
    /// no limit).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    idle_timeout: std::time::Duration,
    /// Largest request body in KiB (413 when announced larger; a streamed one is cut).
    #[arg(long, value_name = "KIB")]
    max_request_body_kb: Option<u64>,
    /// Where Gateway `credentialName`s are found: `NAME.crt`, `NAME.key`, `NAME-ca.crt`.
    #[arg(long, value_name = "DIR")]
    credentials: Option<PathBuf>,
    /// Listen for Gateway server port PORT on ADDR instead of `bind:PORT`; repeatable.
    #[arg(long = "gateway-listen", value_name = "PORT=ADDR", value_parser = parse_port_addr)]
    gateway_listen: Vec<(u16, SocketAddr)>,
    /// The Prometheus server (`http://host:port`) judging canaries that name none in
    /// `spec.metricsServer`; without it, the sidecar's own counters judge them.
    #[arg(long, value_name = "URL")]
    metrics_server: Option<String>,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, mesh::route::config::InvalidDuration> {
    mesh::route::config::Duration::parse(text).map(|d| d.get())
}

fn parse_port_addr(text: &str) -> Result<(u16, SocketAddr), String> {
    let (port, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("expected PORT=ADDR, got {text:?}"))?;
    let port = port
        .parse()
        .map_err(|_| format!("{port:?} is not a port number"))?;
    let addr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an address (IP:PORT)"))?;
    Ok((port, addr))
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let log_filter = init_logging();

    let (files, loaded) = if args.config.is_empty() {
        let empty = Loaded {
            config: Config::default(),
            warnings: Vec::new(),
        };
        (None, Ok(empty))
    } else {
        let (files, loaded) = ConfigFiles::load(args.config.clone());
        (Some(files), loaded)
    };
    let (config, warnings) = match loaded {
        Ok(Loaded { config, warnings }) => (config, warnings),
        Err(problems) => {
            report(&problems);
            let errors = problems
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            eprintln!("configuration is invalid: {errors} error(s)");
            return ExitCode::FAILURE;
        }
    };
    report(&warnings);
    if args.check {
        println!(
            "configuration is valid: {} VirtualService(s), {} DestinationRule(s), {} ServiceEntry(s), {} Sidecar(s), {} Gateway(s), {} Canary(s), {} warning(s)",
            config.virtual_services.len(),
            config.destination_rules.len(),
            config.service_entries.len(),
            config.sidecars.len(),
            config.gateways.len(),
            config.canaries.len(),
            warnings.len()
        );
        return ExitCode::SUCCESS;
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config, files, args, log_filter))
}

/// Logs to stderr with the `RUST_LOG` filter (default `info`), changeable at run time.
fn init_logging() -> LogFilterControl {
    let initial = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    let filter = EnvFilter::try_new(&initial).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
    let current = std::sync::Mutex::new(initial);
    LogFilterControl::new(move |wanted| {
        let mut current = current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(wanted) = wanted {
            let filter = EnvFilter::try_new(wanted)
                .map_err(|e| format!("invalid log filter {wanted:?}: {e}"))?;
            handle
                .reload(filter)
                .map_err(|e| format!("cannot change the log filter: {e}"))?;
            *current = wanted.to_owned();
        }
        Ok(current.clone())
    })
}

async fn run(
    config: Config,
    files: Option<ConfigFiles>,
    args: Args,
    log_filter: LogFilterControl,
) -> ExitCode {
    let options = SidecarOptions {
        outbound: args.outbound,
        inbound: args.inbound,
        admin: args.admin,
        prometheus: args.prometheus,
        gateway_listen: args.gateway_listen,
    };
    let identity = match &args.certs {
        Some(dir) => match TlsIdentity::load(&IdentityFiles::in_dir(dir)) {
            Ok(identity) => Some(std::sync::Arc::new(identity)),
            Err(error) => {
                eprintln!("error: --certs: {error}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let settings = SidecarSettings {
        workload: WorkloadSettings {
            name: args.workload_name,
            namespace: args.namespace,
            labels: args.labels.into_iter().collect(),
            service_account: args.service_account,
            cluster_id: args.cluster_id,
        },
        log_filter: Some(log_filter),
        identity,
        gateway_credentials: args.credentials,
        limits: ListenerLimits {
            max_request_headers_bytes: args.max_request_headers_kb.saturating_mul(1024),
            max_request_headers: args.max_request_headers,
            header_read_timeout: Some(args.request_headers_timeout).filter(|t| !t.is_zero()),
            max_request_body_bytes: args.max_request_body_kb.map(|kb| kb.saturating_mul(1024)),
            idle_timeout: Some(args.idle_timeout).filter(|t| !t.is_zero()),
            ..ListenerLimits::default()
        },
        ..SidecarSettings::default()
    };
    if let Some(server) = &args.metrics_server
        && let Err(error) = mesh::proxy::canary::PrometheusMetrics::new(server)
    {
        eprintln!("error: --metrics-server: {error}");
        return ExitCode::FAILURE;
    }
    // Served live: a configuration reloaded later applies from the next request on.
    let live = match LiveSidecar::new(config, settings) {
        Ok(live) => live,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let running = match live.start(&options).await {
        Ok(running) => running,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let (stop_reloading, stopped) = tokio::sync::watch::channel(false);
    let canaries = CanaryOptions {
        metrics_server: args.metrics_server,
        ..CanaryOptions::default()
    };
    tokio::spawn(CanaryController::new(live.clone(), canaries).run(stopped.clone()));
    if let Some(files) = files {
        let reloader = Reloader::new(live.clone(), files);
        tokio::spawn(reloader.run(DEFAULT_POLL_INTERVAL, stopped));
    }
    let mut stdout = std::io::stdout().lock();
    for (name, addr) in running.listeners() {
        let _ = writeln!(stdout, "listening {name}={addr}");
    }
    let _ = stdout.flush();
    drop(stdout);
    // An inbound listener opened later (an update declaring `ingress`) is announced the same way.
    let mut updates = running.listener_updates();
    let mut announced = running.listeners();
    tokio::spawn(async move {
        while updates.changed().await.is_ok() {
            let now = updates.borrow_and_update().clone();
            for (name, addr) in now.iter().filter(|entry| !announced.contains(entry)) {
                println!("listening {name}={addr}");
            }
            announced = now;
        }
    });
    wait_for_signal().await;
    let _ = stop_reloading.send(true);
    running.shutdown().await;
    ExitCode::SUCCESS
}

fn report(diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        eprintln!("{diagnostic}");
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
