//! [`InboundTls`]: what the inbound listener does with a new connection under the
//! PeerAuthentication mode in force.
//!
//! - `STRICT`: the connection must be mutual TLS with a client certificate that chains to the
//!   trust bundle; anything else (plaintext included) fails the handshake and is closed.
//! - `PERMISSIVE` (Istio's default): a connection whose first byte opens a TLS handshake
//!   (`0x16`) is served as mutual TLS, any other as plaintext — both on one port.
//! - `DISABLE`: plaintext only.
//!
//! A mutual-TLS connection's requests carry the caller's verified SPIFFE identity as a
//! [`PeerIdentity`].

use super::{TlsError, TlsIdentity, identity::spiffe_id};
use mesh_core::PeerIdentity;
use mesh_route::config::peer_authentication::MtlsMode;
use std::{io, time::Duration};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// How long a TLS handshake may take before the connection is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE: u8 = 0x16;

/// The inbound listener's TLS policy; see the [module docs](self).
#[derive(Clone)]
pub struct InboundTls {
    mode: MtlsMode,
    acceptor: Option<TlsAcceptor>,
}

impl std::fmt::Debug for InboundTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundTls")
            .field("mode", &self.mode)
            .finish()
    }
}

/// A connection as the policy accepted it.
pub enum Accepted {
    /// Plaintext.
    Plain(TcpStream),
    /// Mutual TLS, with the caller's identity when its certificate names one.
    Mutual(Box<TlsStream<TcpStream>>, Option<PeerIdentity>),
}

impl InboundTls {
    /// The policy for `mode` (`UNSET` is Istio's default, `PERMISSIVE`), serving `identity`'s
    /// certificate. `STRICT` without an identity is an error; `PERMISSIVE` without one serves
    /// plaintext only.
    pub fn new(mode: MtlsMode, identity: Option<&TlsIdentity>) -> Result<Self, TlsError> {
        let mode = match mode {
            MtlsMode::Unset => MtlsMode::Permissive,
            other => other,
        };
        let acceptor = match (mode, identity) {
            (MtlsMode::Disable, _) => None,
            (MtlsMode::Strict, None) => {
                return Err(TlsError::new(
                    "PeerAuthentication STRICT needs a workload certificate (--certs DIR)",
                ));
            }
            (_, None) => None,
            (_, Some(identity)) => Some(TlsAcceptor::from(identity.server_config(true)?)),
        };
        Ok(InboundTls { mode, acceptor })
    }

    /// Plaintext only (`DISABLE`).
    pub fn plaintext() -> Self {
        InboundTls {
            mode: MtlsMode::Disable,
            acceptor: None,
        }
    }

    /// The mode in force (never `UNSET`).
    pub fn mode(&self) -> MtlsMode {
        self.mode
    }

    /// Accepts `stream` as the mode says: a handshake for mutual TLS, or plaintext; an error
    /// closes the connection (plaintext under `STRICT`, a certificate the bundle does not trust,
    /// a handshake past [`HANDSHAKE_TIMEOUT`]).
    pub async fn accept(&self, stream: TcpStream) -> io::Result<Accepted> {
        let Some(acceptor) = &self.acceptor else {
            return Ok(Accepted::Plain(stream));
        };
        if self.mode == MtlsMode::Permissive {
            let mut first = [0u8; 1];
            let peeked = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "nothing sent"))??;
            if peeked == 0 || first[0] != TLS_HANDSHAKE {
                return Ok(Accepted::Plain(stream));
            }
        }
        let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(spiffe_id)
            .map(|id| PeerIdentity::new(&id));
        Ok(Accepted::Mutual(Box::new(tls), peer))
    }
}

impl From<TlsError> for io::Error {
    fn from(error: TlsError) -> Self {
        io::Error::other(error.to_string())
    }
}
