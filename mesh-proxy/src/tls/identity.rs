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
///
/// ```
/// use mesh_proxy::tls::TlsIdentity;
/// let spiffe = "spiffe://cluster.local/ns/shop/sa/catalog";
/// let key = rcgen::KeyPair::generate().unwrap();
/// let mut params = rcgen::CertificateParams::default();
/// params.subject_alt_names = vec![rcgen::SanType::URI(spiffe.try_into().unwrap())];
/// let cert = params.self_signed(&key).unwrap().pem();
/// // A self-signed certificate, its own trust bundle.
/// let identity = TlsIdentity::from_pem(cert.as_bytes(), key.serialize_pem().as_bytes(), cert.as_bytes()).unwrap();
/// assert_eq!(identity.spiffe_id(), Some(spiffe));
/// ```
#[derive(Debug)]
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Arc<RootCertStore>,
    spiffe_id: Option<String>,
}

/// Where a workload's identity is read from.
///
/// ```
/// use mesh_proxy::tls::IdentityFiles;
/// use std::path::Path;
/// let files = IdentityFiles::in_dir(Path::new("/etc/certs"));
/// assert_eq!(files.key, Path::new("/etc/certs/key.pem"));
/// assert_eq!(files.roots, Path::new("/etc/certs/root-cert.pem"));
/// ```
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
    ///
    /// ```
    /// use mesh_proxy::tls::IdentityFiles;
    /// use std::path::Path;
    /// let files = IdentityFiles::in_dir(Path::new("/var/run/mesh"));
    /// assert_eq!(files.cert_chain, Path::new("/var/run/mesh/cert-chain.pem"));
    /// ```
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
    ///
    /// ```
    /// use mesh_proxy::tls::{IdentityFiles, TlsIdentity};
    /// let dir = std::env::temp_dir().join(format!("mesh-proxy-doc-identity-load-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let certified = rcgen::generate_simple_self_signed(vec!["catalog.shop".to_string()]).unwrap();
    /// std::fs::write(dir.join("cert-chain.pem"), certified.cert.pem()).unwrap();
    /// std::fs::write(dir.join("root-cert.pem"), certified.cert.pem()).unwrap();
    /// std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
    /// let identity = TlsIdentity::load(&IdentityFiles::in_dir(&dir)).unwrap();
    /// assert_eq!(identity.spiffe_id(), None, "a DNS name is no SPIFFE identity");
    /// std::fs::remove_file(dir.join("key.pem")).unwrap();
    /// let error = TlsIdentity::load(&IdentityFiles::in_dir(&dir)).unwrap_err();
    /// assert!(error.to_string().contains("key.pem"), "{error}");
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
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
    ///
    /// ```
    /// use mesh_proxy::tls::TlsIdentity;
    /// let key = rcgen::KeyPair::generate().unwrap();
    /// let mut params = rcgen::CertificateParams::default();
    /// params.subject_alt_names = vec![rcgen::SanType::URI("spiffe://example.org/ns/a/sa/b".try_into().unwrap())];
    /// let cert = params.self_signed(&key).unwrap().pem();
    /// let identity = TlsIdentity::from_pem(cert.as_bytes(), key.serialize_pem().as_bytes(), cert.as_bytes()).unwrap();
    /// assert_eq!(identity.spiffe_id(), Some("spiffe://example.org/ns/a/sa/b"));
    /// ```
    pub fn spiffe_id(&self) -> Option<&str> {
        self.spiffe_id.as_deref()
    }

    /// The server side of mesh mTLS: this identity presented, client certificates verified
    /// against the trust bundle — required, or optional (`PERMISSIVE` still accepts TLS without
    /// one) — and HTTP/2 and HTTP/1.1 offered by ALPN.
    ///
    /// ```
    /// use mesh_proxy::tls::TlsIdentity;
    /// let certified = rcgen::generate_simple_self_signed(vec!["catalog".to_string()]).unwrap();
    /// let (cert, key) = (certified.cert.pem(), certified.signing_key.serialize_pem());
    /// let identity = TlsIdentity::from_pem(cert.as_bytes(), key.as_bytes(), cert.as_bytes()).unwrap();
    /// let config = identity.server_config(false).unwrap();
    /// assert_eq!(&config.alpn_protocols[..2], [b"h2".to_vec(), b"http/1.1".to_vec()]);
    /// ```
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
    ///
    /// ```
    /// use mesh_proxy::tls::TlsIdentity;
    /// let certified = rcgen::generate_simple_self_signed(vec!["catalog".to_string()]).unwrap();
    /// let (cert, key) = (certified.cert.pem(), certified.signing_key.serialize_pem());
    /// let identity = TlsIdentity::from_pem(cert.as_bytes(), key.as_bytes(), cert.as_bytes()).unwrap();
    /// let config = identity.client_config(&["spiffe://cluster.local/ns/shop/sa/catalog".into()]).unwrap();
    /// assert!(config.client_auth_cert_resolver.has_certs(), "our certificate is presented");
    /// assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
    /// ```
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
///
/// ```
/// use mesh_proxy::tls::spiffe_id;
/// let key = rcgen::KeyPair::generate().unwrap();
/// let mut params = rcgen::CertificateParams::new(vec!["catalog.shop".to_string()]).unwrap();
/// params.subject_alt_names.push(rcgen::SanType::URI("spiffe://cluster.local/ns/shop/sa/catalog".try_into().unwrap()));
/// let cert = params.self_signed(&key).unwrap();
/// assert_eq!(spiffe_id(cert.der()).as_deref(), Some("spiffe://cluster.local/ns/shop/sa/catalog"));
/// ```
pub fn spiffe_id(certificate: &CertificateDer<'_>) -> Option<String> {
    subject_alt_names(certificate)
        .into_iter()
        .find(|name| name.starts_with("spiffe://"))
}

/// The DNS names and URIs among `certificate`'s subject alternative names.
///
/// ```
/// use mesh_proxy::tls::identity::subject_alt_names;
/// let certified = rcgen::generate_simple_self_signed(vec!["shop.example.com".to_string(), "api.example.com".to_string()]).unwrap();
/// assert_eq!(subject_alt_names(certified.cert.der()), ["shop.example.com", "api.example.com"]);
/// // Bytes that are no certificate have none.
/// assert!(subject_alt_names(&rustls::pki_types::CertificateDer::from(vec![1, 2, 3])).is_empty());
/// ```
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
