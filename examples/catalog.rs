//! A catalog upstream for the catalog demo: `cargo run --example catalog -- --version v1 --listen 127.0.0.1:9001`.

use clap::Parser;
use mesh::demo::CatalogServer;
use std::net::SocketAddr;

/// Serve the catalog of one version.
#[derive(Debug, Parser)]
struct Args {
    /// `v1` or `v2` (v2 adds `imageUrl` to each item).
    #[arg(long, default_value = "v1", value_parser = ["v1", "v2"])]
    version: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let version = if args.version == "v2" { "v2" } else { "v1" };
    let server = CatalogServer::start(version, args.listen).await?;
    println!(
        "catalog {} listening on {}",
        server.version(),
        server.addr()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
