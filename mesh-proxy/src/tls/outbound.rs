//! [`OutboundTls`]: TLS origination to a cluster's endpoints, as its DestinationRule
//! `trafficPolicy.tls` (or its subset's) says.
//!
//! - `ISTIO_MUTUAL`: the workload's own certificate presented, the server verified against the
//!   mesh trust bundle and, when `subjectAltNames` are given, by its SPIFFE identity; SNI is
//!   Istio's `outbound_.PORT_.SUBSET_.HOST` unless `sni` says otherwise.
//! - `MUTUAL`: the same with `clientCertificate`, `privateKey` and `caCertificates` files.
//! - `SIMPLE`: TLS with the server verified against `caCertificates` (its certificate must
//!   name the SNI — `sni`, else the host — or one of `subjectAltNames`), no client
//!   certificate.
//! - `DISABLE` (or no `tls`): plaintext.
//!
//! A handshake that fails (an untrusted or unexpected server) fails the connection: the
//! request is answered `503` with flag `UF`, and the reason is logged.

use super::{TlsError, TlsIdentity, provider, verifier::SpiffeServerVerifier};
use mesh_route::config::{ClientTlsMode, ClientTlsSettings};
use rustls::{
    ClientConfig, RootCertStore,
    client::WebPkiServerVerifier,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
};
use std::{io, sync::Arc};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};

/// How a cluster's connections are encrypted; see the [module docs](self).
///
/// ```
/// use mesh_proxy::tls::OutboundTls;
/// use mesh_route::config::{ClientTlsMode, ClientTlsSettings};
/// let disable = ClientTlsSettings { mode: Some(ClientTlsMode::Disable), ..ClientTlsSettings::default() };
/// assert!(OutboundTls::new(&disable, "catalog", Some(80), None, None).unwrap().is_none(), "plaintext");
/// let mutual = ClientTlsSettings { mode: Some(ClientTlsMode::IstioMutual), ..ClientTlsSettings::default() };
/// let error = OutboundTls::new(&mutual, "catalog", Some(80), None, None).unwrap_err();
/// assert!(error.to_string().contains("ISTIO_MUTUAL"), "{error}");
/// ```
#[derive(Clone)]
pub struct OutboundTls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    /// What it was built from, to tell whether a new configuration asks the same.
    settings: ClientTlsSettings,
}

impl std::fmt::Debug for OutboundTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundTls")
            .field("mode", &self.settings.mode)
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl PartialEq for OutboundTls {
    fn eq(&self, other: &Self) -> bool {
        self.settings == other.settings && self.server_name == other.server_name
    }
}

impl OutboundTls {
    /// The TLS of a cluster of `host` (port, subset) under `settings`; `None` for plaintext.
    /// `identity` is the workload's, needed by `ISTIO_MUTUAL`.
    ///
    /// ```
    /// use mesh_proxy::tls::{OutboundTls, TlsIdentity};
    /// use mesh_route::config::{ClientTlsMode, ClientTlsSettings};
    /// let certified = rcgen::generate_simple_self_signed(vec!["catalog".to_string()]).unwrap();
    /// let (cert, key) = (certified.cert.pem(), certified.signing_key.serialize_pem());
    /// let identity = TlsIdentity::from_pem(cert.as_bytes(), key.as_bytes(), cert.as_bytes()).unwrap();
    /// let settings = ClientTlsSettings { mode: Some(ClientTlsMode::IstioMutual), ..ClientTlsSettings::default() };
    /// let tls = OutboundTls::new(&settings, "catalog.shop.svc.cluster.local", Some(80), Some("v1"), Some(&identity)).unwrap();
    /// // Istio's SNI for the cluster.
    /// assert!(format!("{:?}", tls.unwrap()).contains("outbound_.80_.v1_.catalog.shop.svc.cluster.local"));
    /// ```
    pub fn new(
        settings: &ClientTlsSettings,
        host: &str,
        port: Option<u16>,
        subset: Option<&str>,
        identity: Option<&TlsIdentity>,
    ) -> Result<Option<Self>, TlsError> {
        let mode = settings.mode.unwrap_or(ClientTlsMode::Disable);
        if settings.credential_name.is_some() {
            return Err(TlsError::new(
                "tls.credentialName is not supported for upstream TLS: give clientCertificate, \
                 privateKey and caCertificates files",
            ));
        }
        let config = match mode {
            ClientTlsMode::Disable => return Ok(None),
            ClientTlsMode::IstioMutual => {
                let identity = identity.ok_or_else(|| {
                    TlsError::new(
                        "tls.mode ISTIO_MUTUAL needs a workload certificate (--certs DIR)",
                    )
                })?;
                identity.client_config(&settings.subject_alt_names)?
            }
            ClientTlsMode::Simple | ClientTlsMode::Mutual => origination(settings, mode)?,
        };
        let sni = match (&settings.sni, mode) {
            (Some(sni), _) => sni.clone(),
            (None, ClientTlsMode::IstioMutual) => format!(
                "outbound_.{}_.{}_.{host}",
                port.map(|p| p.to_string()).unwrap_or_default(),
                subset.unwrap_or_default()
            ),
            (None, _) => host.to_owned(),
        };
        let server_name = ServerName::try_from(sni.clone())
            .or_else(|_| ServerName::try_from(host.to_owned()))
            .map_err(|_| TlsError::new(format!("tls.sni: \"{sni}\" is not a valid server name")))?;
        Ok(Some(OutboundTls {
            connector: TlsConnector::from(config),
            server_name,
            settings: settings.clone(),
        }))
    }

    /// Runs the TLS handshake on `stream` to `authority` (for the log).
    ///
    /// ```
    /// use mesh_proxy::tls::{OutboundTls, TlsIdentity};
    /// use mesh_route::config::{ClientTlsMode, ClientTlsSettings};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let certified = rcgen::generate_simple_self_signed(vec!["catalog".to_string()]).unwrap();
    /// let (cert, key) = (certified.cert.pem(), certified.signing_key.serialize_pem());
    /// let identity = TlsIdentity::from_pem(cert.as_bytes(), key.as_bytes(), cert.as_bytes()).unwrap();
    /// let settings = ClientTlsSettings { mode: Some(ClientTlsMode::IstioMutual), ..ClientTlsSettings::default() };
    /// let tls = OutboundTls::new(&settings, "catalog", Some(80), None, Some(&identity)).unwrap().unwrap();
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    /// let (server, _) = listener.accept().await.unwrap();
    /// let acceptor = tokio_rustls::TlsAcceptor::from(identity.server_config(true).unwrap());
    /// let (accepted, connected) = tokio::join!(acceptor.accept(server), tls.connect(client, "catalog:80"));
    /// assert!(accepted.unwrap().get_ref().1.peer_certificates().is_some(), "mutual: the client presented ours");
    /// assert!(connected.is_ok());
    /// # }
    /// ```
    pub async fn connect(
        &self,
        stream: TcpStream,
        authority: &str,
    ) -> io::Result<TlsStream<TcpStream>> {
        self.connector
            .connect(self.server_name.clone(), stream)
            .await
            .inspect_err(|error| {
                tracing::warn!(
                    upstream = authority,
                    mode = ?self.settings.mode,
                    %error,
                    "upstream TLS handshake failed"
                );
            })
    }
}

/// The client configuration of `SIMPLE` and `MUTUAL` from the settings' files.
fn origination(
    settings: &ClientTlsSettings,
    mode: ClientTlsMode,
) -> Result<Arc<ClientConfig>, TlsError> {
    let read = |field: &str, path: &Option<String>| -> Result<Vec<u8>, TlsError> {
        let path = path.as_deref().ok_or_else(|| {
            TlsError::new(format!("tls.{field} is required for tls.mode {mode:?}"))
        })?;
        std::fs::read(path)
            .map_err(|e| TlsError::new(format!("tls.{field}: cannot read {path}: {e}")))
    };
    if settings.ca_crl.is_some() {
        return Err(TlsError::new("tls.caCrl is not supported"));
    }
    if settings.insecure_skip_verify == Some(true) {
        return Err(TlsError::new(
            "tls.insecureSkipVerify is not supported: give caCertificates",
        ));
    }
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&read("caCertificates", &settings.ca_certificates)?)
    {
        let cert = cert.map_err(|e| TlsError::new(format!("tls.caCertificates: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| TlsError::new(format!("tls.caCertificates: {e}")))?;
    }
    let roots = Arc::new(roots);
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::new(e.to_string()))?;
    let builder = if settings.subject_alt_names.is_empty() {
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| TlsError::new(format!("tls.caCertificates: {e}")))?;
        builder.with_webpki_verifier(verifier)
    } else {
        let verifier = SpiffeServerVerifier::new(roots, settings.subject_alt_names.clone())?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
    };
    let mut config = if mode == ClientTlsMode::Mutual {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(
            "clientCertificate",
            &settings.client_certificate,
        )?)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::new(format!("tls.clientCertificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(&read("privateKey", &settings.private_key)?)
            .map_err(|e| TlsError::new(format!("tls.privateKey: {e}")))?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| TlsError::new(format!("tls.clientCertificate and privateKey: {e}")))?
    } else {
        builder.with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
