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
///
/// ```
/// use mesh_proxy::tls::inbound::HANDSHAKE_TIMEOUT;
/// assert_eq!(HANDSHAKE_TIMEOUT, std::time::Duration::from_secs(10));
/// ```
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE: u8 = 0x16;

/// The inbound listener's TLS policy; see the [module docs](self).
///
/// ```
/// use mesh_proxy::tls::InboundTls;
/// use mesh_route::config::peer_authentication::MtlsMode;
/// // STRICT needs the workload's certificate; PERMISSIVE without one serves plaintext.
/// assert!(InboundTls::new(MtlsMode::Strict, None).is_err());
/// assert_eq!(InboundTls::new(MtlsMode::Permissive, None).unwrap().mode(), MtlsMode::Permissive);
/// ```
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
///
/// ```
/// use mesh_proxy::tls::{Accepted, InboundTls};
/// use tokio::io::AsyncWriteExt;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
/// client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
/// let (stream, _) = listener.accept().await.unwrap();
/// let accepted = InboundTls::plaintext().accept(stream).await.unwrap();
/// assert!(matches!(accepted, Accepted::Plain(_)));
/// # }
/// ```
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
    ///
    /// ```
    /// use mesh_proxy::tls::InboundTls;
    /// use mesh_route::config::peer_authentication::MtlsMode;
    /// // UNSET is Istio's default, PERMISSIVE.
    /// assert_eq!(InboundTls::new(MtlsMode::Unset, None).unwrap().mode(), MtlsMode::Permissive);
    /// let error = InboundTls::new(MtlsMode::Strict, None).unwrap_err();
    /// assert!(error.to_string().contains("STRICT"), "{error}");
    /// ```
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
    ///
    /// ```
    /// use mesh_proxy::tls::InboundTls;
    /// use mesh_route::config::peer_authentication::MtlsMode;
    /// assert_eq!(InboundTls::plaintext().mode(), MtlsMode::Disable);
    /// ```
    pub fn plaintext() -> Self {
        InboundTls {
            mode: MtlsMode::Disable,
            acceptor: None,
        }
    }

    /// The mode in force (never `UNSET`).
    ///
    /// ```
    /// use mesh_proxy::tls::InboundTls;
    /// use mesh_route::config::peer_authentication::MtlsMode;
    /// assert_eq!(InboundTls::new(MtlsMode::Disable, None).unwrap().mode(), MtlsMode::Disable);
    /// assert_ne!(InboundTls::new(MtlsMode::Unset, None).unwrap().mode(), MtlsMode::Unset);
    /// ```
    pub fn mode(&self) -> MtlsMode {
        self.mode
    }

    /// Accepts `stream` as the mode says: a handshake for mutual TLS, or plaintext; an error
    /// closes the connection (plaintext under `STRICT`, a certificate the bundle does not trust,
    /// a handshake past [`HANDSHAKE_TIMEOUT`]).
    ///
    /// `PERMISSIVE` tells plaintext from TLS by the first byte:
    ///
    /// ```
    /// use mesh_proxy::tls::{Accepted, InboundTls, TlsIdentity};
    /// use mesh_route::config::peer_authentication::MtlsMode;
    /// use tokio::io::AsyncWriteExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let certified = rcgen::generate_simple_self_signed(vec!["catalog".to_string()]).unwrap();
    /// let (cert, key) = (certified.cert.pem(), certified.signing_key.serialize_pem());
    /// let identity = TlsIdentity::from_pem(cert.as_bytes(), key.as_bytes(), cert.as_bytes()).unwrap();
    /// let permissive = InboundTls::new(MtlsMode::Permissive, Some(&identity)).unwrap();
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    /// client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    /// let (stream, _) = listener.accept().await.unwrap();
    /// assert!(matches!(permissive.accept(stream).await.unwrap(), Accepted::Plain(_)));
    /// # }
    /// ```
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
