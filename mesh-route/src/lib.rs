//! Istio configuration and routing for `mesh`.
//!
//! - [`config`]: the serde model of VirtualService, DestinationRule, ServiceEntry, Sidecar, Gateway and
//!   mesh-wide settings, loaded from multi-document YAML and validated with precise diagnostics.
//! - [`host`]: Istio's host-name forms (short, namespaced, FQDN, wildcard).
//! - [`table`]: the compiled [`RouteTable`] (host → ordered rules → weighted
//!   destinations), built from [`matcher`], [`header_ops`], [`rewrite`] and [`redirect`].
//! - [`stream_route`]: compiled `tcp` / `tls` routes, for tunnels and gateway TCP/TLS ports.
//! - [`layer`]: [`RouteLayer`], routing as a tower layer (in the mesh scope or a gateway port's).
//! - [`mirror`]: [`MirrorLayer`](mirror::MirrorLayer), fire-and-forget shadow copies.

pub mod config;
pub mod header_ops;
pub mod host;
pub mod layer;
pub mod matcher;
pub mod mirror;
pub mod policy;
pub mod redirect;
pub mod rewrite;
pub mod stream_route;
pub mod table;
mod weights;

pub use layer::RouteLayer;
pub use table::RouteTable;
