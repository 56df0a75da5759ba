//! The `mesh` sidecar: an Istio-compatible proxy configured by Istio YAML, without Kubernetes.
//!
//! ```text
//! sidecar [--config PATH]... [--check] [--outbound ADDR] [--inbound ADDR] [--admin ADDR]
//! ```
//! With no `--config` it serves as an ALLOW_ANY pass-through proxy. `--check` validates,
//! prints every problem and exits 0 (valid) or 1 (invalid). On start it prints one
//! `listening NAME=ADDR` line per listener.

use clap::Parser;
use mesh::proxy::{Sidecar, SidecarOptions};
use mesh::route::config::{Config, Diagnostic, Loaded, Severity};
use std::{io::Write, net::SocketAddr, path::PathBuf, process::ExitCode};

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
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let loaded = if args.config.is_empty() {
        Ok(Loaded {
            config: Config::default(),
            warnings: Vec::new(),
        })
    } else {
        Config::load_paths(&args.config)
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
            "configuration is valid: {} VirtualService(s), {} DestinationRule(s), {} ServiceEntry(s), {} Sidecar(s), {} warning(s)",
            config.virtual_services.len(),
            config.destination_rules.len(),
            config.service_entries.len(),
            config.sidecars.len(),
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
    runtime.block_on(run(config, args))
}

async fn run(config: Config, args: Args) -> ExitCode {
    let options = SidecarOptions {
        outbound: args.outbound,
        inbound: args.inbound,
        admin: args.admin,
    };
    let running = match Sidecar::new(config) {
        Ok(sidecar) => sidecar.start(&options).await,
        Err(error) => Err(error),
    };
    let running = match running {
        Ok(running) => running,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    for (name, addr) in running.listeners() {
        let _ = writeln!(stdout, "listening {name}={addr}");
    }
    let _ = stdout.flush();
    drop(stdout);
    wait_for_signal().await;
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
