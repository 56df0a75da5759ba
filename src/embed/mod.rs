//! The in-process API: a [`Mesh`] built from Istio configuration, giving tower layers for an
//! application's clients ([`ClientLayer`]) and servers ([`ServerLayer`]).

mod builder;
mod client;
mod error;
mod host_names;
mod mesh;
mod server;

pub use builder::MeshBuilder;
pub use client::{ClientLayer, MeshClient, ResponseFuture};
pub use error::{Diagnostics, Error};
pub use mesh::Mesh;
pub use server::{MeshServer, ServerLayer};
