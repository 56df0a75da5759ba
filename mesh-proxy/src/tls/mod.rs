//! Mesh mTLS with SPIFFE identities (rustls, `ring` provider only).
//!
//! - [`TlsIdentity`]: the workload's certificate, key and trust bundle, and the rustls server and
//!   client configurations built from them.
//! - [`SpiffeServerVerifier`]: the client side's check of a server certificate (chain, then
//!   SPIFFE identity).
//! - [`OutboundTls`]: TLS origination to a cluster (DestinationRule `tls`: `ISTIO_MUTUAL`,
//!   `MUTUAL`, `SIMPLE`).
//! - [`InboundTls`]: how the inbound listener treats a connection under PeerAuthentication:
//!   `STRICT` (mTLS only), `PERMISSIVE` (mTLS and plaintext on one port, told apart by the first
//!   byte) or `DISABLE`; the verified caller's identity becomes a
//!   [`PeerIdentity`](mesh_core::PeerIdentity) on each request.
//!
//! Every configuration names the `ring` provider explicitly, so a second provider elsewhere in
//! the dependency graph cannot make rustls panic for lack of a process default.

pub mod identity;
pub mod inbound;
pub mod outbound;
pub mod verifier;

pub use identity::{IdentityFiles, TlsIdentity, spiffe_id};
pub use inbound::{Accepted, InboundTls};
pub use outbound::OutboundTls;
pub use verifier::SpiffeServerVerifier;

use std::sync::Arc;

/// The crypto provider every configuration uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why TLS could not be set up: the message names the file or setting.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

impl TlsError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        TlsError(message.into())
    }
}
