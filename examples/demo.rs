//! The catalog release story in one command: `cargo run --example demo`.
//!
//! Starts catalog v1 and v2 upstreams and a sidecar in-process, then for each stage of
//! `examples/mesh/catalog` (all-v1, dark launch, 90/10 canary) sends traffic through the
//! sidecar and prints what each version received.

use bytes::Bytes;
use http_body_util::Full;
use mesh::demo::{CatalogServer, Http1Client};
use mesh::proxy::{Sidecar, SidecarOptions, sidecar::SidecarSettings};
use mesh::route::config::Config;
use std::path::Path;

type Error = Box<dyn std::error::Error + Send + Sync>;

const REQUESTS: u64 = 1000;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/mesh/catalog");
    // The registry names 127.0.0.1:9001/9002; point it at free ports instead.
    let registry = std::fs::read_to_string(dir.join("00-registry.yaml"))?;
    for (stage, file) in [
        ("all traffic to v1", "10-all-v1.yaml"),
        (
            "dark launch: x-istio-cohort=internal to v2",
            "20-dark-launch.yaml",
        ),
        ("canary: 90% v1, 10% v2", "30-canary-90-10.yaml"),
    ] {
        let v1 = CatalogServer::start("v1", "127.0.0.1:0".parse()?).await?;
        let v2 = CatalogServer::start("v2", "127.0.0.1:0".parse()?).await?;
        let registry = mesh::demo::point_registry(&registry, v1.addr().port(), v2.addr().port());
        let routes = std::fs::read_to_string(dir.join(file))?;
        let config = Config::from_yaml_str(&format!("{registry}\n---\n{routes}"))
            .map_err(|problems| format!("{problems:?}"))?
            .config;
        let options = SidecarOptions {
            outbound: "127.0.0.1:0".parse()?,
            inbound: "127.0.0.1:0".parse()?,
            admin: "127.0.0.1:0".parse()?,
            prometheus: None,
            gateway_listen: Vec::new(),
        };
        // The demo prints its own summary; the access log would drown it.
        let settings = SidecarSettings {
            disable_access_log: true,
            ..SidecarSettings::default()
        };
        let sidecar = Sidecar::with_settings(config, settings)?
            .start(&options)
            .await?;
        let proxy = sidecar.addr("outbound").ok_or("no outbound listener")?;
        let mut client = Http1Client::connect(proxy).await?;
        let mut internal = 0;
        for i in 0..REQUESTS {
            let mut request = http::Request::get("http://catalog/items");
            if i % 4 == 0 {
                request = request.header("x-istio-cohort", "internal");
                internal += 1;
            }
            let response = client.send(request.body(Full::new(Bytes::new()))?).await?;
            if !response.status.is_success() {
                return Err(format!("{file}: {} {}", response.status, response.text()).into());
            }
        }
        println!("{stage} ({file}): {REQUESTS} requests, {internal} with x-istio-cohort=internal");
        println!(
            "  v1 received {:>5}   v2 received {:>5}",
            v1.hits(),
            v2.hits()
        );
        sidecar.shutdown().await;
    }
    Ok(())
}
