//! The `mesh` proxy: listeners, upstream connections, endpoints and load balancing, the admin
//! API, and the [`Sidecar`] that assembles them from Istio configuration.
//!
//! - [`listener`]: hyper server (HTTP/1.1 + HTTP/2 prior knowledge on one port).
//! - [`registry`], [`endpoint`], [`balance`]: ServiceEntry endpoints, subsets, load balancing.
//! - [`upstream`], [`forward`], [`proxy_headers`]: sending requests on, with header hygiene;
//!   [`transport`]: an embedding application's own client as the wire.
//! - [`inbound`]: Sidecar `ingress` → the local application; [`server_layers`]: what runs in
//!   front of it (or of an embedding application's service).
//! - [`admin`]: `/ready`, `/config_dump`, `/clusters`.

pub mod active_connections;
pub mod admin;
pub mod authorization;
pub mod balance;
pub mod canary;
pub mod cluster_policy;
pub mod cluster_stats;
pub mod config_updates;
pub mod connect;
pub mod connection_uses;
pub mod endpoint;
pub mod forward;
pub mod gateway;
pub mod idle_timeout;
pub mod inbound;
pub mod limits;
pub mod listener;
pub mod live;
pub mod prometheus;
pub mod proxy_headers;
pub mod registry;
#[cfg(feature = "yaml")]
pub mod reload;
pub mod response_tally;
pub mod server_layers;
pub mod shared_stack;
pub mod sidecar;
pub mod start_error;
pub mod stats;
pub mod telemetry_settings;
pub mod tls;
pub mod trace_settings;
pub mod transport;
pub mod tunnel;
pub mod upstream;
pub mod workload_identity;

pub use live::LiveSidecar;
pub use sidecar::{RunningSidecar, Sidecar, SidecarOptions};
pub use start_error::StartError;
