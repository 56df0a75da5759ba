//! Shared helpers for the end-to-end tests: catalog upstreams plus a sidecar built from the
//! shipped example configs, all on free loopback ports.

#![allow(dead_code)]

use mesh::demo::{CatalogServer, point_registry};
use mesh::proxy::{RunningSidecar, Sidecar, SidecarOptions};
use mesh::route::config::Config;
use std::{net::SocketAddr, path::PathBuf};

/// `examples/mesh/…` in this checkout.
pub fn example(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/mesh")
        .join(path)
}

/// Every listener on a free loopback port.
pub fn ephemeral() -> SidecarOptions {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    SidecarOptions {
        outbound: any,
        inbound: any,
        admin: any,
    }
}

/// Starts a sidecar configured by `yaml`.
pub async fn sidecar(yaml: &str) -> RunningSidecar {
    let config = match Config::from_yaml_str(yaml) {
        Ok(loaded) => loaded.config,
        Err(problems) => panic!("test config invalid: {problems:#?}"),
    };
    Sidecar::new(config)
        .unwrap()
        .start(&ephemeral())
        .await
        .unwrap()
}

/// Catalog v1 and v2 and a sidecar configured with the shipped registry plus `routes_file`.
pub struct Catalog {
    pub v1: CatalogServer,
    pub v2: CatalogServer,
    pub sidecar: RunningSidecar,
}

impl Catalog {
    pub async fn start(routes_file: &str) -> Self {
        let routes = std::fs::read_to_string(example(routes_file)).unwrap();
        Self::with_routes(&routes).await
    }

    pub async fn with_routes(routes_yaml: &str) -> Self {
        let v1 = CatalogServer::start("v1", "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let v2 = CatalogServer::start("v2", "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let registry = std::fs::read_to_string(example("catalog/00-registry.yaml")).unwrap();
        let registry = point_registry(&registry, v1.addr().port(), v2.addr().port());
        let sidecar = sidecar(&format!("{registry}\n---\n{routes_yaml}")).await;
        Catalog { v1, v2, sidecar }
    }

    pub fn proxy(&self) -> SocketAddr {
        self.sidecar.addr("outbound").unwrap()
    }
}

/// The text of admin endpoint `path` (e.g. `/clusters`) of `sidecar`.
pub async fn admin_text(sidecar: &RunningSidecar, path: &str) -> String {
    let mut admin = mesh::demo::Http1Client::connect(sidecar.addr("admin").unwrap())
        .await
        .unwrap();
    admin.get(path, &[("host", "admin")]).await.unwrap().text()
}
