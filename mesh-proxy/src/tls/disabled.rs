//! TLS without the `tls` feature: plaintext only. No workload identity can be loaded, and a
//! configuration that asks for TLS is refused with an error saying the feature is missing,
//! rather than served in plaintext.

use super::TlsError;
use mesh_route::config::{ClientTlsMode, ClientTlsSettings, peer_authentication::MtlsMode};
use tokio::net::TcpStream;

/// A workload identity: none can exist in this build.
#[derive(Debug)]
pub enum TlsIdentity {}

/// TLS origination: none can exist in this build.
#[derive(Debug, PartialEq)]
pub enum OutboundTls {}

impl OutboundTls {
    /// `None` for plaintext; an error for any other mode.
    pub fn new(
        settings: &ClientTlsSettings,
        _host: &str,
        _port: Option<u16>,
        _subset: Option<&str>,
        _identity: Option<&TlsIdentity>,
    ) -> Result<Option<Self>, TlsError> {
        match settings.mode {
            None | Some(ClientTlsMode::Disable) => Ok(None),
            Some(mode) => Err(TlsError::new(format!(
                "tls.mode {mode:?} needs TLS, and this build has no `tls` feature"
            ))),
        }
    }
}

/// The inbound listener's TLS policy: plaintext.
#[derive(Clone, Debug)]
pub struct InboundTls {
    mode: MtlsMode,
}

/// A connection as the policy accepted it: plaintext.
pub enum Accepted {
    /// Plaintext.
    Plain(TcpStream),
}

impl InboundTls {
    /// Plaintext for `DISABLE`, `PERMISSIVE` and `UNSET`; an error for `STRICT`.
    pub fn new(mode: MtlsMode, _identity: Option<&TlsIdentity>) -> Result<Self, TlsError> {
        match mode {
            MtlsMode::Strict => Err(TlsError::new(
                "PeerAuthentication STRICT needs TLS, and this build has no `tls` feature",
            )),
            MtlsMode::Unset => Ok(InboundTls {
                mode: MtlsMode::Permissive,
            }),
            other => Ok(InboundTls { mode: other }),
        }
    }

    /// The mode in force (never `UNSET`).
    pub fn mode(&self) -> MtlsMode {
        self.mode
    }

    /// Accepts `stream` as plaintext.
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<Accepted> {
        Ok(Accepted::Plain(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_asking_for_tls_is_refused() {
        let error = InboundTls::new(MtlsMode::Strict, None).unwrap_err();
        assert!(error.to_string().contains("no `tls` feature"), "{error}");
        assert_eq!(
            InboundTls::new(MtlsMode::Unset, None).unwrap().mode(),
            MtlsMode::Permissive
        );
        let mutual = ClientTlsSettings {
            mode: Some(ClientTlsMode::IstioMutual),
            ..ClientTlsSettings::default()
        };
        assert!(OutboundTls::new(&mutual, "catalog", None, None, None).is_err());
        assert!(
            OutboundTls::new(&ClientTlsSettings::default(), "catalog", None, None, None)
                .unwrap()
                .is_none()
        );
    }
}
