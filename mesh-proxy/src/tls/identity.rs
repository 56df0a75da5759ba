//! [`TlsIdentity`]: a workload's certificate chain, private key and trust bundle (PEM files, as
//! Istio mounts them at `/etc/certs/{cert-chain.pem,key.pem,root-cert.pem}`), and the rustls
//! configurations of mesh mTLS built from them: the server side of the inbound listener (client
//! certificates verified against the bundle) and the client side of `ISTIO_MUTUAL` upstream
//! connections (our certificate presented, the server's chain verified, its SPIFFE identity
//! checked when the DestinationRule names `subjectAltNames`).

use super::verifier::SpiffeServerVerifier;
use super::{TlsError, provider};
use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use std::{path::Path, sync::Arc};

/// A workload's mTLS identity; see the [module docs](self).
#[derive(Debug)]
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Arc<RootCertStore>,
    spiffe_id: Option<String>,
}

/// Where a workload's identity is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityFiles {
    /// The certificate chain, leaf first (`cert-chain.pem`).
    pub cert_chain: std::path::PathBuf,
    /// The private key (`key.pem`).
    pub key: std::path::PathBuf,
    /// The trust bundle: the CA certificates peers must chain to (`root-cert.pem`).
    pub roots: std::path::PathBuf,
}

impl IdentityFiles {
    /// Istio's file layout in `dir`: `cert-chain.pem`, `key.pem`, `root-cert.pem`.
    pub fn in_dir(dir: &Path) -> Self {
        IdentityFiles {
            cert_chain: dir.join("cert-chain.pem"),
            key: dir.join("key.pem"),
            roots: dir.join("root-cert.pem"),
        }
    }
}

impl TlsIdentity {
    /// Reads the identity from `files`.
    pub fn load(files: &IdentityFiles) -> Result<Self, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path)
                .map_err(|e| TlsError::new(format!("cannot read {}: {e}", path.display())))
        };
        TlsIdentity::from_pem(
            &read(&files.cert_chain)?,
            &read(&files.key)?,
            &read(&files.roots)?,
        )
        .map_err(|e| TlsError::new(format!("{} ({})", e, files.cert_chain.display())))
    }

    /// The identity from PEM text: the chain (leaf first), the key, the trust bundle.
    ///
    /// ```
    /// use mesh_proxy::tls::TlsIdentity;
    /// let err = TlsIdentity::from_pem(b"", b"", b"").unwrap_err();
    /// assert!(err.to_string().contains("no certificate"), "{err}");
    /// ```
    pub fn from_pem(chain: &[u8], key: &[u8], roots: &[u8]) -> Result<Self, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::new(format!("invalid certificate chain PEM: {e}")))?;
        let Some(leaf) = chain.first() else {
            return Err(TlsError::new("no certificate in the certificate chain"));
        };
        let spiffe_id = spiffe_id(leaf);
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|e| TlsError::new(format!("invalid private key PEM: {e}")))?;
        let mut store = RootCertStore::empty();
        for root in CertificateDer::pem_slice_iter(roots) {
            let root = root.map_err(|e| TlsError::new(format!("invalid trust bundle PEM: {e}")))?;
            store
                .add(root)
                .map_err(|e| TlsError::new(format!("unusable trust bundle certificate: {e}")))?;
        }
        if store.is_empty() {
            return Err(TlsError::new("no certificate in the trust bundle"));
        }
        let identity = TlsIdentity {
            chain,
            key,
            roots: Arc::new(store),
            spiffe_id,
        };
        // A key that does not go with the certificate shows here, not at the first handshake.
        identity.server_config(true)?;
        Ok(identity)
    }

    /// The SPIFFE identity (`spiffe://trust-domain/ns/NS/sa/SA`) in the leaf certificate's URI
    /// SAN, if it has one.
    pub fn spiffe_id(&self) -> Option<&str> {
        self.spiffe_id.as_deref()
    }

    /// The server side of mesh mTLS: this identity presented, client certificates verified
    /// against the trust bundle — required, or optional (`PERMISSIVE` still accepts TLS without
    /// one) — and HTTP/2 and HTTP/1.1 offered by ALPN.
    pub fn server_config(
        &self,
        require_client_certificate: bool,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let builder = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider());
        let builder = if require_client_certificate {
            builder
        } else {
            builder.allow_unauthenticated()
        };
        let verifier = builder
            .build()
            .map_err(|e| TlsError::new(format!("trust bundle: {e}")))?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::new(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::new(format!("certificate and key do not go together: {e}")))?;
        // Istio's sidecars offer their own protocol names first; accepting them keeps the
        // handshake from failing for want of a common protocol (HTTP is told apart after it).
        config.alpn_protocols = [
            "h2",
            "http/1.1",
            "istio-h2",
            "istio-http/1.1",
            "istio-http/1.0",
            "istio-peer-exchange",
            "istio",
        ]
        .map(|p| p.as_bytes().to_vec())
        .to_vec();
        Ok(Arc::new(config))
    }

    /// The client side of mesh mTLS (`ISTIO_MUTUAL`): this identity presented, the server's
    /// chain verified against the trust bundle, and its SPIFFE identity one of
    /// `subject_alt_names` when any are given (SPIFFE certificates have no DNS names to check
    /// against the SNI).
    pub fn client_config(
        &self,
        subject_alt_names: &[String],
    ) -> Result<Arc<ClientConfig>, TlsError> {
        let verifier = SpiffeServerVerifier::new(self.roots.clone(), subject_alt_names.to_vec())?;
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::new(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::new(format!("certificate and key do not go together: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The SPIFFE identity in `certificate`'s URI SANs (`spiffe://…`), if any.
pub fn spiffe_id(certificate: &CertificateDer<'_>) -> Option<String> {
    subject_alt_names(certificate)
        .into_iter()
        .find(|name| name.starts_with("spiffe://"))
}

/// The DNS names and URIs among `certificate`'s subject alternative names.
pub fn subject_alt_names(certificate: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, parsed)) = X509Certificate::from_der(certificate.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(sans)) = parsed.subject_alternative_name() else {
        return Vec::new();
    };
    sans.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(name) | GeneralName::DNSName(name) => Some((*name).to_owned()),
            _ => None,
        })
        .collect()
}
