//! [`SpiffeServerVerifier`]: how the client side of mesh mTLS checks a server's certificate.
//!
//! SPIFFE certificates name a workload by a URI SAN and carry no DNS names, so the usual check
//! of the certificate against the name dialled (the SNI) cannot pass. This verifier runs
//! rustls' WebPKI chain check against the trust bundle (signatures, validity dates, key usage)
//! and then, instead of the name check, accepts the certificate when one of its subject
//! alternative names (its SPIFFE URI, or a DNS name) is one of the expected ones (any, when none
//! are expected: the trust bundle alone decides, as Istio does without `subjectAltNames`).

use super::{TlsError, identity::subject_alt_names, provider};
use rustls::{
    DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
    client::{
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        verify_server_cert_signed_by_trust_anchor,
    },
    crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime},
    server::ParsedCertificate,
};
use std::sync::Arc;

/// Verifies a server's chain against a trust bundle and its SPIFFE identity; see the
/// [module docs](self).
///
/// ```
/// use mesh_proxy::tls::SpiffeServerVerifier;
/// use rustls::RootCertStore;
/// use std::sync::Arc;
/// let certified = rcgen::generate_simple_self_signed(vec!["mesh-ca".to_string()]).unwrap();
/// let mut roots = RootCertStore::empty();
/// roots.add(certified.cert.der().clone()).unwrap();
/// let expected = vec!["spiffe://cluster.local/ns/shop/sa/catalog".to_string()];
/// assert!(SpiffeServerVerifier::new(Arc::new(roots), expected).is_ok());
/// ```
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
    expected: Vec<String>,
}

impl SpiffeServerVerifier {
    /// A verifier trusting `roots`, accepting the names `expected` (any when empty).
    ///
    /// ```
    /// use mesh_proxy::tls::SpiffeServerVerifier;
    /// use rustls::RootCertStore;
    /// use std::sync::Arc;
    /// let error = SpiffeServerVerifier::new(Arc::new(RootCertStore::empty()), Vec::new()).unwrap_err();
    /// assert_eq!(error.to_string(), "trust bundle: no certificate");
    /// ```
    pub fn new(roots: Arc<RootCertStore>, expected: Vec<String>) -> Result<Self, TlsError> {
        if roots.is_empty() {
            return Err(TlsError::new("trust bundle: no certificate"));
        }
        Ok(SpiffeServerVerifier {
            roots,
            algorithms: provider().signature_verification_algorithms,
            expected,
        })
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        // The chain (signatures, validity, usage) first, exactly as WebPKI checks it; the name
        // dialled is not checked: SPIFFE certificates carry none.
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
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
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
