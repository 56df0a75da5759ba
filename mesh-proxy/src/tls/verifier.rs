//! [`SpiffeServerVerifier`]: how the client side of mesh mTLS checks a server's certificate.
//!
//! SPIFFE certificates name a workload by a URI SAN and carry no DNS names, so the usual check
//! of the certificate against the name dialled (the SNI) cannot pass. This verifier runs the
//! WebPKI chain check against the trust bundle as usual and, where that check fails only on the
//! name, accepts the certificate when one of its subject alternative names (its SPIFFE URI, or
//! a DNS name) is one of the expected ones (any, when none are expected: the trust bundle alone
//! decides, as Istio does without `subjectAltNames`).

use super::{TlsError, identity::subject_alt_names, provider};
use rustls::{
    CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use std::sync::Arc;

/// Verifies a server's chain against a trust bundle and its SPIFFE identity; see the
/// [module docs](self).
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    chain: Arc<WebPkiServerVerifier>,
    expected: Vec<String>,
}

impl SpiffeServerVerifier {
    /// A verifier trusting `roots`, accepting the SPIFFE identities `expected` (any when empty).
    pub fn new(roots: Arc<RootCertStore>, expected: Vec<String>) -> Result<Self, TlsError> {
        let chain = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| TlsError::new(format!("trust bundle: {e}")))?;
        Ok(SpiffeServerVerifier { chain, expected })
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let verified = self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        // The chain is checked before the name: a name mismatch means the chain is good.
        let name_only = matches!(
            verified,
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ))
        );
        if verified.is_err() && !name_only {
            return verified;
        }
        if self.expected.is_empty() {
            return Ok(ServerCertVerified::assertion());
        }
        let names = subject_alt_names(end_entity);
        if names.iter().any(|name| self.expected.contains(name)) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::General(format!(
                "the server's names {names:?} are not among the expected subjectAltNames {:?}",
                self.expected
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}
