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
//! - [`client_hello`]: the server name (SNI) of a TLS ClientHello, read without consuming it,
//!   so a connection can then be terminated or forwarded untouched.
//! - [`gateway`]: TLS termination on a Gateway server (`SIMPLE`, `MUTUAL`, `OPTIONAL_MUTUAL`)
//!   from its `tls` settings, reloaded when the certificate files change.
//!
//! Every configuration names the `ring` provider explicitly, so a second provider elsewhere in
//! the dependency graph cannot make rustls panic for lack of a process default.
//!
//! # Feature `tls`
//!
//! All of it is the `tls` feature (on by default). Without it the listeners serve plaintext and
//! configuration asking for TLS (`STRICT`, a DestinationRule `tls` mode other than `DISABLE`)
//! is refused when it is compiled.
//!
// Without `tls`, the links above to what it gates point at the paragraph on the feature.
#![cfg_attr(not(feature = "tls"), doc = "[`SpiffeServerVerifier`]: #feature-tls")]
#![cfg_attr(not(feature = "tls"), doc = "[`client_hello`]: #feature-tls")]
#![cfg_attr(not(feature = "tls"), doc = "[`gateway`]: #feature-tls")]

#[cfg(feature = "tls")]
pub mod client_hello;
#[cfg(not(feature = "tls"))]
mod disabled;
#[cfg(feature = "tls")]
pub mod gateway;
#[cfg(feature = "tls")]
pub mod identity;
#[cfg(feature = "tls")]
pub mod inbound;
#[cfg(feature = "tls")]
pub mod outbound;
#[cfg(feature = "tls")]
pub mod verifier;

#[cfg(not(feature = "tls"))]
pub use disabled::{Accepted, InboundTls, OutboundTls, TlsIdentity};
#[cfg(feature = "tls")]
pub use identity::{IdentityFiles, TlsIdentity, spiffe_id};
#[cfg(feature = "tls")]
pub use inbound::{Accepted, InboundTls};
#[cfg(feature = "tls")]
pub use outbound::OutboundTls;
#[cfg(feature = "tls")]
pub use verifier::SpiffeServerVerifier;

/// The crypto provider every configuration uses.
///
/// ```
/// use mesh_proxy::tls::provider;
/// let provider = provider();
/// assert!(!provider.cipher_suites.is_empty());
/// // Every configuration is built with it, never with a process-wide default.
/// let config = rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions();
/// assert!(config.is_ok());
/// ```
#[cfg(feature = "tls")]
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// Why TLS could not be set up: the message names the file or setting.
///
/// ```
/// use mesh_proxy::tls::TlsIdentity;
/// let error = TlsIdentity::from_pem(b"", b"", b"").unwrap_err();
/// assert_eq!(error.to_string(), "no certificate in the certificate chain");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

impl TlsError {
    /// An error saying `message`.
    ///
    /// ```
    /// use mesh_proxy::tls::TlsError;
    /// let error = TlsError::new(format!("cannot read {}", "/etc/certs/key.pem"));
    /// assert_eq!(error.to_string(), "cannot read /etc/certs/key.pem");
    /// assert_eq!(error, TlsError::new("cannot read /etc/certs/key.pem"));
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        TlsError(message.into())
    }
}
