//! TLS termination on a gateway server: the `tls` settings of an Istio Gateway server
//! (`ServerTLSSettings`) as rustls server configurations, reloaded when their files change.
//!
//! - [`GatewayCertificateFiles`]: where the server certificate, its key and the client CA bundle
//!   are read from — the `serverCertificate`, `privateKey` and `caCertificates` files, or the
//!   files `NAME.crt`, `NAME.key` and `NAME-ca.crt` of `credentialName: NAME` in the credentials
//!   directory (the sidecar's `--credentials DIR`, standing in for Kubernetes secrets).
//! - [`gateway_server_config`]: the rustls configuration of the modes that terminate TLS:
//!   `SIMPLE` (no client certificate), `MUTUAL` (a client certificate chaining to the CA bundle
//!   is required) and `OPTIONAL_MUTUAL` (verified when presented); `subjectAltNames`, the
//!   protocol versions and the TLS 1.2 cipher suites as Envoy reads them.
//! - [`ReloadingServerConfig`]: the current configuration of one server, rebuilt when one of its
//!   files changes (certificate rotation), so each new handshake uses the newest certificate
//!   while established connections keep theirs.

use super::{TlsError, identity::subject_alt_names, provider};
use arc_swap::ArcSwap;
use mesh_route::config::{ServerTlsMode, ServerTlsSettings, TlsProtocol, gateway::mode_name};
use rustls::{
    CertificateError, CipherSuite, DigitallySignedStruct, DistinguishedName, Error, RootCertStore,
    ServerConfig, SignatureScheme, SupportedProtocolVersion,
    client::danger::HandshakeSignatureValid,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, UnixTime, pem::PemObject},
    server::{
        WebPkiClientVerifier,
        danger::{ClientCertVerified, ClientCertVerifier},
    },
};
use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

/// The files of a gateway server's TLS; see the [module docs](self).
///
/// ```
/// use mesh_proxy::tls::gateway::GatewayCertificateFiles;
/// use mesh_route::config::ServerTlsSettings;
/// use std::path::Path;
/// let settings = ServerTlsSettings { credential_name: Some("shop".into()), ..ServerTlsSettings::default() };
/// let files = GatewayCertificateFiles::resolve(&settings, Some(Path::new("/etc/credentials"))).unwrap();
/// assert_eq!(files.certificate, Path::new("/etc/credentials/shop.crt"));
/// assert_eq!(files.private_key, Path::new("/etc/credentials/shop.key"));
/// assert_eq!(files.ca_certificates, None, "SIMPLE needs no CA bundle");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayCertificateFiles {
    /// The server certificate chain, leaf first (PEM).
    pub certificate: PathBuf,
    /// The server certificate's private key (PEM).
    pub private_key: PathBuf,
    /// The CA certificates client certificates must chain to (PEM); needed by `MUTUAL` and
    /// `OPTIONAL_MUTUAL`, unused by `SIMPLE`.
    pub ca_certificates: Option<PathBuf>,
}

impl GatewayCertificateFiles {
    /// Where `settings` say the files are.
    ///
    /// Either `serverCertificate` and `privateKey` (and `caCertificates`) as given, or
    /// `credentialName: NAME`, which names `NAME.crt`, `NAME.key` and, if that file exists,
    /// `NAME-ca.crt` in `credentials_dir`; the two ways cannot be mixed. `MUTUAL` and
    /// `OPTIONAL_MUTUAL` need a CA bundle. Errors name the setting at fault; a mode that does
    /// not terminate TLS (`PASSTHROUGH`, `AUTO_PASSTHROUGH`, `ISTIO_MUTUAL`) is one. Only
    /// `NAME-ca.crt` is looked for on disk here: the other files are read by
    /// [`gateway_server_config`].
    ///
    /// ```
    /// use mesh_proxy::tls::gateway::GatewayCertificateFiles;
    /// use mesh_route::config::{ServerTlsMode, ServerTlsSettings};
    /// let mutual = ServerTlsSettings {
    ///     mode: Some(ServerTlsMode::Mutual),
    ///     server_certificate: Some("/certs/tls.crt".into()),
    ///     private_key: Some("/certs/tls.key".into()),
    ///     ..ServerTlsSettings::default()
    /// };
    /// let error = GatewayCertificateFiles::resolve(&mutual, None).unwrap_err();
    /// assert!(error.to_string().contains("caCertificates"), "{error}");
    /// let passthrough = ServerTlsSettings { mode: Some(ServerTlsMode::Passthrough), ..ServerTlsSettings::default() };
    /// assert!(GatewayCertificateFiles::resolve(&passthrough, None).is_err(), "does not terminate TLS");
    /// ```
    pub fn resolve(
        settings: &ServerTlsSettings,
        credentials_dir: Option<&Path>,
    ) -> Result<Self, TlsError> {
        let mode = terminating_mode(settings)?;
        let needs_ca = mode != ServerTlsMode::Simple;
        let Some(name) = &settings.credential_name else {
            let required = |field: &str, value: &Option<String>| {
                value.as_deref().map(PathBuf::from).ok_or_else(|| {
                    TlsError::new(format!(
                        "tls.{field} is required with mode {}",
                        mode_name(mode)
                    ))
                })
            };
            let certificate = required("serverCertificate", &settings.server_certificate)?;
            let private_key = required("privateKey", &settings.private_key)?;
            let ca_certificates = if needs_ca {
                Some(required("caCertificates", &settings.ca_certificates)?)
            } else {
                settings.ca_certificates.as_deref().map(PathBuf::from)
            };
            return Ok(GatewayCertificateFiles {
                certificate,
                private_key,
                ca_certificates,
            });
        };
        if settings.server_certificate.is_some()
            || settings.private_key.is_some()
            || settings.ca_certificates.is_some()
        {
            return Err(TlsError::new(format!(
                "tls.credentialName \"{name}\" cannot be combined with serverCertificate, \
                 privateKey or caCertificates"
            )));
        }
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\']) {
            return Err(TlsError::new(format!(
                "tls.credentialName \"{name}\": not a plain name"
            )));
        }
        let Some(dir) = credentials_dir else {
            return Err(TlsError::new(format!(
                "tls.credentialName \"{name}\": no --credentials directory is set"
            )));
        };
        let ca = dir.join(format!("{name}-ca.crt"));
        let ca_certificates = if ca.exists() {
            Some(ca)
        } else if needs_ca {
            return Err(TlsError::new(format!(
                "tls.caCertificates (or {}) is required with mode {}",
                ca.display(),
                mode_name(mode)
            )));
        } else {
            None
        };
        Ok(GatewayCertificateFiles {
            certificate: dir.join(format!("{name}.crt")),
            private_key: dir.join(format!("{name}.key")),
            ca_certificates,
        })
    }

    /// The files, certificate first.
    fn paths(&self) -> impl Iterator<Item = &Path> {
        [Some(&self.certificate), Some(&self.private_key)]
            .into_iter()
            .chain([self.ca_certificates.as_ref()])
            .flatten()
            .map(PathBuf::as_path)
    }
}

/// The rustls server configuration of a gateway server's `tls` settings, reading `files`.
///
/// - `mode`: `SIMPLE` (or absent) asks for no client certificate; `MUTUAL` requires one that
///   chains to the CA bundle; `OPTIONAL_MUTUAL` verifies one when presented and accepts
///   connections without. Other modes do not terminate TLS here and are an error.
/// - `subjectAltNames` (with `MUTUAL` and `OPTIONAL_MUTUAL`; `SIMPLE` verifies no client and
///   ignores them): the verified client certificate must carry one of them, exactly, as a URI
///   or DNS subject alternative name.
/// - `minProtocolVersion` (default TLS 1.2) and `maxProtocolVersion` (default TLS 1.3):
///   `TLSV1_2` or `TLSV1_3`; `TLSV1_0` and `TLSV1_1` are errors (rustls has neither).
/// - `cipherSuites`: Envoy's (BoringSSL) names of the TLS 1.2 suites allowed (rustls picks
///   among them by the client's preference) — `ECDHE-ECDSA-AES128-GCM-SHA256`,
///   `ECDHE-RSA-AES128-GCM-SHA256`, `ECDHE-ECDSA-AES256-GCM-SHA384`,
///   `ECDHE-RSA-AES256-GCM-SHA384`, `ECDHE-ECDSA-CHACHA20-POLY1305`,
///   `ECDHE-RSA-CHACHA20-POLY1305`; as in Envoy the list does not restrict TLS 1.3, whose
///   suites all stay. Another name is an error.
///
/// ALPN offers `h2` then `http/1.1`. Errors name the setting or the file at fault.
///
/// ```
/// use mesh_proxy::tls::gateway::{GatewayCertificateFiles, gateway_server_config};
/// use mesh_route::config::ServerTlsSettings;
/// let dir = std::env::temp_dir().join(format!("mesh-proxy-doc-gateway-config-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let certified = rcgen::generate_simple_self_signed(vec!["shop.example.com".to_string()]).unwrap();
/// std::fs::write(dir.join("shop.crt"), certified.cert.pem()).unwrap();
/// std::fs::write(dir.join("shop.key"), certified.signing_key.serialize_pem()).unwrap();
/// let settings = ServerTlsSettings { credential_name: Some("shop".into()), ..ServerTlsSettings::default() };
/// let files = GatewayCertificateFiles::resolve(&settings, Some(&dir)).unwrap();
/// let config = gateway_server_config(&settings, &files).unwrap();
/// assert_eq!(config.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn gateway_server_config(
    settings: &ServerTlsSettings,
    files: &GatewayCertificateFiles,
) -> Result<ServerConfig, TlsError> {
    let mode = terminating_mode(settings)?;
    let versions = protocol_versions(settings)?;
    let crypto = Arc::new(crypto_provider(&settings.cipher_suites)?);
    let chain = read_certificates(&files.certificate)?;
    if chain.is_empty() {
        return Err(TlsError::new(format!(
            "{}: no certificate in the file",
            files.certificate.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&files.private_key)?).map_err(|e| {
        TlsError::new(format!(
            "{}: invalid private key PEM: {e}",
            files.private_key.display()
        ))
    })?;
    let builder = ServerConfig::builder_with_provider(crypto)
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::new(format!("tls protocol versions and cipherSuites: {e}")))?;
    let builder = match mode {
        ServerTlsMode::Simple => builder.with_no_client_auth(),
        _ => builder.with_client_cert_verifier(client_verifier(settings, mode, files)?),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        TlsError::new(format!(
            "{} and {} do not go together: {e}",
            files.certificate.display(),
            files.private_key.display()
        ))
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The mode of `settings` if it is one that terminates TLS here (absent means `SIMPLE`).
fn terminating_mode(settings: &ServerTlsSettings) -> Result<ServerTlsMode, TlsError> {
    match settings.mode.unwrap_or(ServerTlsMode::Simple) {
        mode @ (ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual) => {
            Ok(mode)
        }
        mode => Err(TlsError::new(format!(
            "tls.mode {} does not terminate TLS with the server's certificate \
             (SIMPLE, MUTUAL or OPTIONAL_MUTUAL do)",
            mode_name(mode)
        ))),
    }
}

/// A protocol version as Istio spells it.
fn protocol_name(protocol: TlsProtocol) -> &'static str {
    match protocol {
        TlsProtocol::TlsAuto => "TLS_AUTO",
        TlsProtocol::TlsV10 => "TLSV1_0",
        TlsProtocol::TlsV11 => "TLSV1_1",
        TlsProtocol::TlsV12 => "TLSV1_2",
        TlsProtocol::TlsV13 => "TLSV1_3",
    }
}

/// The rustls protocol versions `minProtocolVersion` and `maxProtocolVersion` allow.
fn protocol_versions(
    settings: &ServerTlsSettings,
) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
    // 2 for TLS 1.2, 3 for TLS 1.3.
    let minor = |field: &str, value: Option<TlsProtocol>, auto: u8| match value {
        None | Some(TlsProtocol::TlsAuto) => Ok(auto),
        Some(TlsProtocol::TlsV12) => Ok(2),
        Some(TlsProtocol::TlsV13) => Ok(3),
        Some(old @ (TlsProtocol::TlsV10 | TlsProtocol::TlsV11)) => Err(TlsError::new(format!(
            "tls.{field} {}: rustls serves TLS 1.2 and 1.3 only",
            protocol_name(old)
        ))),
    };
    let min = minor("minProtocolVersion", settings.min_protocol_version, 2)?;
    let max = minor("maxProtocolVersion", settings.max_protocol_version, 3)?;
    if min > max {
        return Err(TlsError::new(format!(
            "tls.minProtocolVersion TLSV1_{min} is above tls.maxProtocolVersion TLSV1_{max}"
        )));
    }
    let mut versions = Vec::new();
    if max >= 3 {
        versions.push(&rustls::version::TLS13);
    }
    if min <= 2 {
        versions.push(&rustls::version::TLS12);
    }
    Ok(versions)
}

/// Envoy's names of the TLS 1.2 cipher suites rustls offers.
const CIPHER_SUITES: [(&str, CipherSuite); 6] = [
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// The crypto provider with the TLS 1.2 suites `names` (all when empty), in their order, after
/// every TLS 1.3 suite.
fn crypto_provider(names: &[String]) -> Result<CryptoProvider, TlsError> {
    let mut crypto = Arc::unwrap_or_clone(provider());
    if names.is_empty() {
        return Ok(crypto);
    }
    let mut wanted = Vec::new();
    for name in names {
        let Some((_, suite)) = CIPHER_SUITES.iter().find(|(known, _)| known == name) else {
            let supported: Vec<&str> = CIPHER_SUITES.iter().map(|(known, _)| *known).collect();
            return Err(TlsError::new(format!(
                "tls.cipherSuites: unsupported cipher suite \"{name}\" (supported: {})",
                supported.join(", ")
            )));
        };
        if !wanted.contains(suite) {
            wanted.push(*suite);
        }
    }
    let all = std::mem::take(&mut crypto.cipher_suites);
    let tls13 = all
        .iter()
        .filter(|suite| suite.version() == &rustls::version::TLS13);
    let tls12 = wanted
        .iter()
        .filter_map(|wanted| all.iter().find(|suite| suite.suite() == *wanted));
    crypto.cipher_suites = tls13.chain(tls12).copied().collect();
    Ok(crypto)
}

/// The client certificate verifier of `MUTUAL` (`OPTIONAL_MUTUAL`: clients without a
/// certificate allowed), checking `subjectAltNames` when there are any.
fn client_verifier(
    settings: &ServerTlsSettings,
    mode: ServerTlsMode,
    files: &GatewayCertificateFiles,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let Some(path) = &files.ca_certificates else {
        return Err(TlsError::new(format!(
            "tls.caCertificates is required with mode {}",
            mode_name(mode)
        )));
    };
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(path)? {
        roots.add(certificate).map_err(|e| {
            TlsError::new(format!("{}: unusable CA certificate: {e}", path.display()))
        })?;
    }
    if roots.is_empty() {
        return Err(TlsError::new(format!(
            "{}: no CA certificate in the file",
            path.display()
        )));
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
    let builder = if mode == ServerTlsMode::OptionalMutual {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    let verifier = builder
        .build()
        .map_err(|e| TlsError::new(format!("{}: {e}", path.display())))?;
    if settings.subject_alt_names.is_empty() {
        return Ok(verifier);
    }
    Ok(Arc::new(SubjectAltNameVerifier {
        inner: verifier,
        accepted: settings.subject_alt_names.clone(),
    }))
}

/// A client certificate verifier that, after `inner` accepted the chain, also requires the
/// leaf to carry one of the `accepted` names as a URI or DNS subject alternative name.
#[derive(Debug)]
struct SubjectAltNameVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    accepted: Vec<String>,
}

/// The error of a client certificate that names none of `tls.subjectAltNames`. It reaches the
/// client as a `bad_certificate` alert; rustls shows a certificate error's cause with `Debug`,
/// which therefore says the same as `Display`.
#[derive(thiserror::Error)]
#[error(
    "the client certificate's names {presented:?} are not among tls.subjectAltNames {accepted:?}"
)]
struct UnexpectedClientName {
    presented: Vec<String>,
    accepted: Vec<String>,
}

impl std::fmt::Debug for UnexpectedClientName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl ClientCertVerifier for SubjectAltNameVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let presented = subject_alt_names(end_entity);
        if presented.iter().any(|name| self.accepted.contains(name)) {
            Ok(verified)
        } else {
            Err(Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(UnexpectedClientName {
                    presented,
                    accepted: self.accepted.clone(),
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}

/// The contents of `path`, or an error naming it.
fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::new(format!("cannot read {}: {e}", path.display())))
}

/// The PEM certificates in `path`.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::new(format!("{}: invalid certificate PEM: {e}", path.display())))
}

/// What tells a file changed: its modification time and length, `None` when it cannot be
/// read.
type FileStamp = Option<(SystemTime, u64)>;

/// The stamps of `files`, in [`GatewayCertificateFiles::paths`] order.
fn stamps(files: &GatewayCertificateFiles) -> Vec<FileStamp> {
    files
        .paths()
        .map(|path| {
            let metadata = std::fs::metadata(path).ok()?;
            let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            Some((modified, metadata.len()))
        })
        .collect()
}

/// A gateway server's TLS configuration, rebuilt when its files change; see the
/// [module docs](self).
///
/// A change is a file's modification time or length differing from when it was last read
/// (symbolic links are followed, so a Kubernetes-style swap of a secret's `..data` link is
/// one).
///
/// ```
/// use mesh_proxy::tls::gateway::{GatewayCertificateFiles, ReloadingServerConfig};
/// use mesh_route::config::ServerTlsSettings;
/// let dir = std::env::temp_dir().join(format!("mesh-proxy-doc-gateway-reloading-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let certified = rcgen::generate_simple_self_signed(vec!["shop.example.com".to_string()]).unwrap();
/// std::fs::write(dir.join("shop.crt"), certified.cert.pem()).unwrap();
/// std::fs::write(dir.join("shop.key"), certified.signing_key.serialize_pem()).unwrap();
/// let settings = ServerTlsSettings { credential_name: Some("shop".into()), ..ServerTlsSettings::default() };
/// let files = GatewayCertificateFiles::resolve(&settings, Some(&dir)).unwrap();
/// let reloading = ReloadingServerConfig::load(settings, files).unwrap();
/// assert_eq!(reloading.reload_if_changed(), Ok(false), "nothing changed");
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug)]
pub struct ReloadingServerConfig {
    config: ArcSwap<ServerConfig>,
    settings: ServerTlsSettings,
    files: GatewayCertificateFiles,
    /// The stamps of the files when they were last read, in [`GatewayCertificateFiles::paths`]
    /// order; the lock also keeps two reloads from running at once.
    stamps: Mutex<Vec<FileStamp>>,
}

impl ReloadingServerConfig {
    /// Builds the configuration of `settings` from `files` (see [`gateway_server_config`]).
    ///
    /// ```
    /// use mesh_proxy::tls::gateway::{GatewayCertificateFiles, ReloadingServerConfig};
    /// use mesh_route::config::ServerTlsSettings;
    /// let dir = std::env::temp_dir().join(format!("mesh-proxy-doc-gateway-load-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// std::fs::write(dir.join("shop.crt"), "not a certificate").unwrap();
    /// std::fs::write(dir.join("shop.key"), "not a key").unwrap();
    /// let settings = ServerTlsSettings { credential_name: Some("shop".into()), ..ServerTlsSettings::default() };
    /// let files = GatewayCertificateFiles::resolve(&settings, Some(&dir)).unwrap();
    /// let error = ReloadingServerConfig::load(settings, files).unwrap_err();
    /// assert!(error.to_string().contains("shop.crt"), "{error}");
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn load(
        settings: ServerTlsSettings,
        files: GatewayCertificateFiles,
    ) -> Result<Self, TlsError> {
        // Stamped before reading, so a change made while reading shows at the next check.
        let stamps = stamps(&files);
        let config = gateway_server_config(&settings, &files)?;
        Ok(ReloadingServerConfig {
            config: ArcSwap::from_pointee(config),
            settings,
            files,
            stamps: Mutex::new(stamps),
        })
    }

    /// The configuration to use for a new handshake (a pointer copy).
    ///
    /// ```
    /// use mesh_proxy::tls::gateway::{GatewayCertificateFiles, ReloadingServerConfig};
    /// use mesh_route::config::ServerTlsSettings;
    /// use std::sync::Arc;
    /// let dir = std::env::temp_dir().join(format!("mesh-proxy-doc-gateway-current-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let certified = rcgen::generate_simple_self_signed(vec!["shop.example.com".to_string()]).unwrap();
    /// std::fs::write(dir.join("shop.crt"), certified.cert.pem()).unwrap();
    /// std::fs::write(dir.join("shop.key"), certified.signing_key.serialize_pem()).unwrap();
    /// let settings = ServerTlsSettings { credential_name: Some("shop".into()), ..ServerTlsSettings::default() };
    /// let reloading = ReloadingServerConfig::load(settings.clone(), GatewayCertificateFiles::resolve(&settings, Some(&dir)).unwrap()).unwrap();
    /// // Until a file changes, every handshake gets the same configuration.
    /// assert!(Arc::ptr_eq(&reloading.current(), &reloading.current()));
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn current(&self) -> Arc<ServerConfig> {
        self.config.load_full()
    }

    /// Rebuilds the configuration if a file changed since it was last read: `Ok(true)` when the
    /// new one is in use, `Ok(false)` when nothing changed. When the files changed but cannot
    /// be built from (a half-written or broken certificate or key), the previous configuration
    /// stays in use and the error is returned — once: the next call is `Ok(false)` until the
    /// files change again.
    ///
    /// ```
    /// use mesh_proxy::tls::gateway::{GatewayCertificateFiles, ReloadingServerConfig};
    /// use mesh_route::config::ServerTlsSettings;
    /// let dir = std::env::temp_dir().join(format!("mesh-proxy-doc-gateway-reload-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let write = |names: Vec<String>| {
    ///     let certified = rcgen::generate_simple_self_signed(names).unwrap();
    ///     std::fs::write(dir.join("shop.crt"), certified.cert.pem()).unwrap();
    ///     std::fs::write(dir.join("shop.key"), certified.signing_key.serialize_pem()).unwrap();
    /// };
    /// write(vec!["shop.example.com".into()]);
    /// let settings = ServerTlsSettings { credential_name: Some("shop".into()), ..ServerTlsSettings::default() };
    /// let reloading = ReloadingServerConfig::load(settings.clone(), GatewayCertificateFiles::resolve(&settings, Some(&dir)).unwrap()).unwrap();
    /// write(vec!["shop.example.com".into(), "www.shop.example.com".into()]); // a longer file: a change
    /// assert_eq!(reloading.reload_if_changed(), Ok(true));
    /// assert_eq!(reloading.reload_if_changed(), Ok(false));
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let mut last = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
        let now = stamps(&self.files);
        if *last == now {
            return Ok(false);
        }
        *last = now;
        let config = gateway_server_config(&self.settings, &self.files)?;
        self.config.store(Arc::new(config));
        Ok(true)
    }

    /// Checks the configurations `configs()` returns (asked at each check, so they can follow
    /// configuration swaps) for changed files every `interval` until `stopped` changes (or its
    /// sender is dropped); a reload is logged at `info`, a failed one at `warn` (the previous
    /// certificate is still served).
    ///
    /// ```
    /// use mesh_proxy::tls::gateway::ReloadingServerConfig;
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (stop, stopped) = tokio::sync::watch::channel(false);
    /// let watcher = tokio::spawn(ReloadingServerConfig::watch(Vec::new, Duration::from_secs(5), stopped));
    /// stop.send(true).unwrap();
    /// watcher.await.unwrap(); // returns once told to stop
    /// # }
    /// ```
    pub async fn watch(
        configs: impl Fn() -> Vec<Arc<ReloadingServerConfig>>,
        interval: Duration,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = stopped.changed() => return,
                () = tokio::time::sleep(interval) => {}
            }
            for config in &configs() {
                let certificate = config.files.certificate.display();
                match config.reload_if_changed() {
                    Ok(false) => {}
                    Ok(true) => {
                        tracing::info!(%certificate, "gateway TLS certificate reloaded");
                    }
                    Err(error) => tracing::warn!(
                        %certificate,
                        %error,
                        "gateway TLS certificate not reloaded; the previous one is still served"
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose, SanType,
    };
    use rustls::{ClientConfig, ClientConnection, Connection, ProtocolVersion, ServerConnection};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A directory of its own under the system's temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(test: &str) -> Self {
            static COUNT: AtomicUsize = AtomicUsize::new(0);
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let path = std::env::temp_dir().join(format!(
                "mesh-proxy-gateway-{test}-{}-{nanos}-{}",
                std::process::id(),
                COUNT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }

        fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, contents).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    type Ca = CertifiedIssuer<'static, KeyPair>;

    fn ca(name: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    }

    /// A certificate for `key` signed by `ca`, with `names` (URIs when they contain `://`, DNS
    /// names otherwise) and the extended key usage `usage`; its PEM.
    fn leaf(ca: &Ca, key: &KeyPair, names: &[&str], usage: ExtendedKeyUsagePurpose) -> String {
        let mut params = CertificateParams::default();
        params.subject_alt_names = names
            .iter()
            .map(|name| {
                if name.contains("://") {
                    SanType::URI((*name).try_into().unwrap())
                } else {
                    SanType::DnsName((*name).try_into().unwrap())
                }
            })
            .collect();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.signed_by(key, ca).unwrap().pem()
    }

    /// A client identity: certificate and key PEM.
    struct Client {
        cert: String,
        key: String,
    }

    fn client_of(ca: &Ca, names: &[&str]) -> Client {
        let key = KeyPair::generate().unwrap();
        Client {
            cert: leaf(ca, &key, names, ExtendedKeyUsagePurpose::ClientAuth),
            key: key.serialize_pem(),
        }
    }

    const SERVER_NAME: &str = "gateway.example.com";

    /// A gateway's files in a temporary directory: `gw.crt`, `gw.key`, `gw-ca.crt`.
    struct Fixture {
        dir: TempDir,
        ca: Ca,
        server_key: KeyPair,
        files: GatewayCertificateFiles,
    }

    impl Fixture {
        fn new(test: &str) -> Self {
            let dir = TempDir::new(test);
            let ca = ca("gateway test CA");
            let server_key = KeyPair::generate().unwrap();
            let files = GatewayCertificateFiles {
                certificate: dir.write(
                    "gw.crt",
                    leaf(
                        &ca,
                        &server_key,
                        &[SERVER_NAME],
                        ExtendedKeyUsagePurpose::ServerAuth,
                    ),
                ),
                private_key: dir.write("gw.key", server_key.serialize_pem()),
                ca_certificates: Some(dir.write("gw-ca.crt", ca.pem())),
            };
            Fixture {
                dir,
                ca,
                server_key,
                files,
            }
        }

        fn config(&self, settings: &ServerTlsSettings) -> Arc<ServerConfig> {
            Arc::new(gateway_server_config(settings, &self.files).unwrap())
        }

        /// A client trusting the fixture's CA, offering `h2`.
        fn client(&self, identity: Option<&Client>) -> Arc<ClientConfig> {
            client_config(
                &self.ca,
                identity,
                provider(),
                &[&rustls::version::TLS13, &rustls::version::TLS12],
            )
        }
    }

    fn client_config(
        ca: &Ca,
        identity: Option<&Client>,
        crypto: Arc<CryptoProvider>,
        versions: &[&'static SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let builder = ClientConfig::builder_with_provider(crypto)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some(client) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_slice_iter(client.cert.as_bytes())
                        .collect::<Result<_, _>>()
                        .unwrap(),
                    PrivateKeyDer::from_pem_slice(client.key.as_bytes()).unwrap(),
                )
                .unwrap(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(config)
    }

    /// Moves what `from` has to send into `to`; whether there was anything.
    fn transfer(from: &mut Connection, to: &mut Connection) -> Result<bool, Error> {
        let mut bytes = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut bytes).unwrap();
        }
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            to.read_tls(&mut rest).unwrap();
            to.process_new_packets()?;
        }
        Ok(!bytes.is_empty())
    }

    /// A handshake between `client` and `server` over memory: both connections once it is
    /// done, or the first error either side met.
    fn handshake(
        server: Arc<ServerConfig>,
        client: Arc<ClientConfig>,
    ) -> Result<(Connection, Connection), Error> {
        let name = SERVER_NAME.try_into().unwrap();
        let mut client = Connection::Client(ClientConnection::new(client, name)?);
        let mut server = Connection::Server(ServerConnection::new(server)?);
        loop {
            let sent = transfer(&mut client, &mut server)?;
            let answered = transfer(&mut server, &mut client)?;
            if !client.is_handshaking() && !server.is_handshaking() {
                // The server's last words (TLS 1.3 tickets) reach the client too.
                transfer(&mut server, &mut client)?;
                return Ok((client, server));
            }
            assert!(sent || answered, "the handshake stalled");
        }
    }

    fn mode(mode: ServerTlsMode) -> ServerTlsSettings {
        ServerTlsSettings {
            mode: Some(mode),
            ..ServerTlsSettings::default()
        }
    }

    fn error_of(result: Result<impl std::fmt::Debug, TlsError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn resolves_credential_names_in_the_credentials_directory() {
        let fixture = Fixture::new("resolve");
        let dir = fixture.dir.0.as_path();
        let settings = ServerTlsSettings {
            credential_name: Some("gw".to_owned()),
            ..mode(ServerTlsMode::Mutual)
        };
        assert_eq!(
            GatewayCertificateFiles::resolve(&settings, Some(dir)).unwrap(),
            fixture.files
        );
        let error = error_of(GatewayCertificateFiles::resolve(&settings, None));
        assert!(error.contains("tls.credentialName \"gw\""), "{error}");
        assert!(error.contains("no --credentials directory"), "{error}");

        // Without NAME-ca.crt: fine for SIMPLE, an error for MUTUAL.
        std::fs::remove_file(fixture.files.ca_certificates.as_ref().unwrap()).unwrap();
        let error = error_of(GatewayCertificateFiles::resolve(&settings, Some(dir)));
        assert!(error.contains("tls.caCertificates"), "{error}");
        assert!(error.contains("gw-ca.crt"), "{error}");
        assert!(error.contains("MUTUAL"), "{error}");
        let simple = ServerTlsSettings {
            credential_name: Some("gw".to_owned()),
            ..ServerTlsSettings::default()
        };
        let files = GatewayCertificateFiles::resolve(&simple, Some(dir)).unwrap();
        assert_eq!(files.certificate, dir.join("gw.crt"));
        assert_eq!(files.private_key, dir.join("gw.key"));
        assert_eq!(files.ca_certificates, None);

        let traversal = ServerTlsSettings {
            credential_name: Some("../gw".to_owned()),
            ..ServerTlsSettings::default()
        };
        let error = error_of(GatewayCertificateFiles::resolve(&traversal, Some(dir)));
        assert!(error.contains("tls.credentialName"), "{error}");
        let mixed = ServerTlsSettings {
            server_certificate: Some("/x.crt".to_owned()),
            ..simple
        };
        let error = error_of(GatewayCertificateFiles::resolve(&mixed, Some(dir)));
        assert!(error.contains("cannot be combined"), "{error}");
    }

    #[test]
    fn resolves_file_settings_and_names_missing_fields() {
        let files = ServerTlsSettings {
            server_certificate: Some("/etc/gw/tls.crt".to_owned()),
            private_key: Some("/etc/gw/tls.key".to_owned()),
            ..ServerTlsSettings::default()
        };
        assert_eq!(
            GatewayCertificateFiles::resolve(&files, None).unwrap(),
            GatewayCertificateFiles {
                certificate: "/etc/gw/tls.crt".into(),
                private_key: "/etc/gw/tls.key".into(),
                ca_certificates: None,
            }
        );
        let no_certificate = ServerTlsSettings {
            server_certificate: None,
            ..files.clone()
        };
        assert_eq!(
            error_of(GatewayCertificateFiles::resolve(&no_certificate, None)),
            "tls.serverCertificate is required with mode SIMPLE"
        );
        let no_key = ServerTlsSettings {
            private_key: None,
            ..files.clone()
        };
        assert_eq!(
            error_of(GatewayCertificateFiles::resolve(&no_key, None)),
            "tls.privateKey is required with mode SIMPLE"
        );
        let mutual = ServerTlsSettings {
            mode: Some(ServerTlsMode::Mutual),
            ..files.clone()
        };
        assert_eq!(
            error_of(GatewayCertificateFiles::resolve(&mutual, None)),
            "tls.caCertificates is required with mode MUTUAL"
        );
        let passthrough = ServerTlsSettings {
            mode: Some(ServerTlsMode::Passthrough),
            ..files
        };
        let error = error_of(GatewayCertificateFiles::resolve(&passthrough, None));
        assert!(error.contains("tls.mode PASSTHROUGH"), "{error}");
    }

    #[test]
    fn missing_and_broken_files_are_named() {
        let fixture = Fixture::new("files");
        let missing = GatewayCertificateFiles {
            certificate: fixture.dir.0.join("absent.crt"),
            ..fixture.files.clone()
        };
        let error = error_of(gateway_server_config(
            &mode(ServerTlsMode::Simple),
            &missing,
        ));
        assert!(error.contains("absent.crt"), "{error}");
        let garbage = GatewayCertificateFiles {
            private_key: fixture.dir.write("garbage.key", "not a key"),
            ..fixture.files.clone()
        };
        let error = error_of(gateway_server_config(
            &mode(ServerTlsMode::Simple),
            &garbage,
        ));
        assert!(error.contains("garbage.key"), "{error}");
        // MUTUAL without a CA bundle.
        let no_ca = GatewayCertificateFiles {
            ca_certificates: None,
            ..fixture.files.clone()
        };
        let error = error_of(gateway_server_config(&mode(ServerTlsMode::Mutual), &no_ca));
        assert!(error.contains("tls.caCertificates"), "{error}");
        let error = error_of(gateway_server_config(
            &mode(ServerTlsMode::IstioMutual),
            &fixture.files,
        ));
        assert!(error.contains("ISTIO_MUTUAL"), "{error}");
    }

    #[test]
    fn simple_serves_the_certificate_with_alpn() {
        let fixture = Fixture::new("simple");
        let server = fixture.config(&ServerTlsSettings::default());
        let (client, _) = handshake(server, fixture.client(None)).unwrap();
        assert_eq!(client.alpn_protocol(), Some(&b"h2"[..]));
        assert_eq!(client.protocol_version(), Some(ProtocolVersion::TLSv1_3));
        let leaf = &client.peer_certificates().unwrap()[0];
        let served = read_certificates(&fixture.files.certificate).unwrap();
        assert_eq!(leaf, &served[0]);
    }

    #[test]
    fn mutual_requires_a_client_certificate_from_the_ca() {
        let fixture = Fixture::new("mutual");
        let server = fixture.config(&mode(ServerTlsMode::Mutual));
        let error = handshake(server.clone(), fixture.client(None)).unwrap_err();
        assert_eq!(error, Error::NoCertificatesPresented);

        let stranger = client_of(&ca("another CA"), &["spiffe://other/ns/a/sa/b"]);
        let error = handshake(server.clone(), fixture.client(Some(&stranger))).unwrap_err();
        assert!(
            matches!(
                error,
                Error::InvalidCertificate(CertificateError::UnknownIssuer)
            ),
            "{error:?}"
        );

        let known = client_of(&fixture.ca, &["spiffe://cluster.local/ns/a/sa/b"]);
        let (_, server) = handshake(server, fixture.client(Some(&known))).unwrap();
        assert!(server.peer_certificates().is_some());
    }

    #[test]
    fn optional_mutual_allows_no_certificate_but_verifies_one() {
        let fixture = Fixture::new("optional");
        let server = fixture.config(&mode(ServerTlsMode::OptionalMutual));
        let (_, anonymous) = handshake(server.clone(), fixture.client(None)).unwrap();
        assert!(anonymous.peer_certificates().is_none());

        let stranger = client_of(&ca("another CA"), &["client.example.com"]);
        assert!(handshake(server.clone(), fixture.client(Some(&stranger))).is_err());

        let known = client_of(&fixture.ca, &["client.example.com"]);
        let (_, server) = handshake(server, fixture.client(Some(&known))).unwrap();
        assert!(server.peer_certificates().is_some());
    }

    #[test]
    fn subject_alt_names_restrict_client_certificates() {
        let fixture = Fixture::new("sans");
        for tls_mode in [ServerTlsMode::Mutual, ServerTlsMode::OptionalMutual] {
            let server = fixture.config(&ServerTlsSettings {
                subject_alt_names: vec![
                    "spiffe://cluster.local/ns/shop/sa/frontend".to_owned(),
                    "partner.example.com".to_owned(),
                ],
                ..mode(tls_mode)
            });
            let unlisted = client_of(&fixture.ca, &["spiffe://cluster.local/ns/shop/sa/other"]);
            let error = handshake(server.clone(), fixture.client(Some(&unlisted))).unwrap_err();
            assert!(error.to_string().contains("tls.subjectAltNames"), "{error}");
            assert!(
                error
                    .to_string()
                    .contains("spiffe://cluster.local/ns/shop/sa/other"),
                "{error}"
            );

            let by_uri = client_of(&fixture.ca, &["spiffe://cluster.local/ns/shop/sa/frontend"]);
            handshake(server.clone(), fixture.client(Some(&by_uri))).unwrap();
            let by_dns = client_of(&fixture.ca, &["partner.example.com"]);
            handshake(server, fixture.client(Some(&by_dns))).unwrap();
        }
    }

    #[test]
    fn protocol_versions_restrict_the_handshake() {
        let fixture = Fixture::new("versions");
        let version = |settings: ServerTlsSettings| {
            let (client, server) =
                handshake(fixture.config(&settings), fixture.client(None)).unwrap();
            assert_eq!(client.protocol_version(), server.protocol_version());
            client.protocol_version().unwrap()
        };
        assert_eq!(
            version(ServerTlsSettings {
                max_protocol_version: Some(TlsProtocol::TlsV12),
                ..ServerTlsSettings::default()
            }),
            ProtocolVersion::TLSv1_2
        );
        assert_eq!(
            version(ServerTlsSettings {
                min_protocol_version: Some(TlsProtocol::TlsV13),
                max_protocol_version: Some(TlsProtocol::TlsAuto),
                ..ServerTlsSettings::default()
            }),
            ProtocolVersion::TLSv1_3
        );
        // TLS 1.3 only refuses a TLS 1.2 client; the default (TLS_AUTO) accepts it.
        let tls12_client = client_config(&fixture.ca, None, provider(), &[&rustls::version::TLS12]);
        let tls13_only = fixture.config(&ServerTlsSettings {
            min_protocol_version: Some(TlsProtocol::TlsV13),
            ..ServerTlsSettings::default()
        });
        assert!(handshake(tls13_only, tls12_client.clone()).is_err());
        let auto = fixture.config(&ServerTlsSettings {
            min_protocol_version: Some(TlsProtocol::TlsAuto),
            ..ServerTlsSettings::default()
        });
        let (client, _) = handshake(auto, tls12_client).unwrap();
        assert_eq!(client.protocol_version(), Some(ProtocolVersion::TLSv1_2));

        let error = error_of(gateway_server_config(
            &ServerTlsSettings {
                min_protocol_version: Some(TlsProtocol::TlsV10),
                ..ServerTlsSettings::default()
            },
            &fixture.files,
        ));
        assert_eq!(
            error,
            "tls.minProtocolVersion TLSV1_0: rustls serves TLS 1.2 and 1.3 only"
        );
        let error = error_of(gateway_server_config(
            &ServerTlsSettings {
                max_protocol_version: Some(TlsProtocol::TlsV11),
                ..ServerTlsSettings::default()
            },
            &fixture.files,
        ));
        assert_eq!(
            error,
            "tls.maxProtocolVersion TLSV1_1: rustls serves TLS 1.2 and 1.3 only"
        );
        let error = error_of(gateway_server_config(
            &ServerTlsSettings {
                min_protocol_version: Some(TlsProtocol::TlsV13),
                max_protocol_version: Some(TlsProtocol::TlsV12),
                ..ServerTlsSettings::default()
            },
            &fixture.files,
        ));
        assert!(error.contains("tls.minProtocolVersion TLSV1_3"), "{error}");
        assert!(error.contains("tls.maxProtocolVersion TLSV1_2"), "{error}");
    }

    #[test]
    fn cipher_suites_restrict_tls12() {
        let fixture = Fixture::new("ciphers");
        let aes128 = ServerTlsSettings {
            cipher_suites: vec!["ECDHE-ECDSA-AES128-GCM-SHA256".to_owned()],
            ..ServerTlsSettings::default()
        };
        let tls12 = ServerTlsSettings {
            max_protocol_version: Some(TlsProtocol::TlsV12),
            ..aes128.clone()
        };
        let (client, server) = handshake(fixture.config(&tls12), fixture.client(None)).unwrap();
        assert_eq!(client.protocol_version(), Some(ProtocolVersion::TLSv1_2));
        assert_eq!(
            server.negotiated_cipher_suite().unwrap().suite(),
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        );
        // A client offering only another TLS 1.2 suite finds none in common.
        let mut aes256_only = Arc::unwrap_or_clone(provider());
        aes256_only
            .cipher_suites
            .retain(|s| s.suite() == CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384);
        let client = client_config(
            &fixture.ca,
            None,
            Arc::new(aes256_only),
            &[&rustls::version::TLS12],
        );
        assert!(handshake(fixture.config(&tls12), client).is_err());
        // TLS 1.3 suites are not restricted by the list.
        let (client, _) = handshake(fixture.config(&aes128), fixture.client(None)).unwrap();
        assert_eq!(client.protocol_version(), Some(ProtocolVersion::TLSv1_3));

        let error = error_of(gateway_server_config(
            &ServerTlsSettings {
                cipher_suites: vec!["AES128-SHA".to_owned()],
                ..ServerTlsSettings::default()
            },
            &fixture.files,
        ));
        assert!(error.contains("tls.cipherSuites"), "{error}");
        assert!(error.contains("\"AES128-SHA\""), "{error}");
        assert!(error.contains("ECDHE-RSA-CHACHA20-POLY1305"), "{error}");
    }

    /// Sets `path`'s modification time to `seconds` after the epoch, so a rewrite shows even
    /// within the file system's timestamp granularity.
    fn touch(path: &Path, seconds: u64) {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
            .unwrap();
    }

    /// A new server certificate for the fixture's key, naming `extra` too.
    fn rotate(fixture: &Fixture, extra: &str, seconds: u64) -> CertificateDer<'static> {
        let pem = leaf(
            &fixture.ca,
            &fixture.server_key,
            &[SERVER_NAME, extra],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        std::fs::write(&fixture.files.certificate, &pem).unwrap();
        touch(&fixture.files.certificate, seconds);
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    fn served_leaf(fixture: &Fixture, config: Arc<ServerConfig>) -> CertificateDer<'static> {
        let (client, _) = handshake(config, fixture.client(None)).unwrap();
        client.peer_certificates().unwrap()[0].clone()
    }

    #[test]
    fn reloads_changed_files_and_keeps_the_last_good_config() {
        let fixture = Fixture::new("reload");
        let reloading =
            ReloadingServerConfig::load(ServerTlsSettings::default(), fixture.files.clone())
                .unwrap();
        let first = reloading.current();
        assert!(Arc::ptr_eq(&first, &reloading.current()));
        assert_eq!(reloading.reload_if_changed(), Ok(false));
        assert!(Arc::ptr_eq(&first, &reloading.current()));

        let rotated = rotate(&fixture, "v2.example.com", 1_000_000);
        assert_eq!(reloading.reload_if_changed(), Ok(true));
        let second = reloading.current();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(served_leaf(&fixture, second.clone()), rotated);
        assert_eq!(reloading.reload_if_changed(), Ok(false));

        // A broken key: the error once, the previous configuration kept.
        std::fs::write(&fixture.files.private_key, "garbage").unwrap();
        touch(&fixture.files.private_key, 2_000_000);
        let error = reloading.reload_if_changed().unwrap_err().to_string();
        assert!(error.contains("gw.key"), "{error}");
        assert!(Arc::ptr_eq(&second, &reloading.current()));
        assert_eq!(reloading.reload_if_changed(), Ok(false));
        assert_eq!(served_leaf(&fixture, reloading.current()), rotated);

        // Repaired: served again.
        std::fs::write(
            &fixture.files.private_key,
            fixture.server_key.serialize_pem(),
        )
        .unwrap();
        touch(&fixture.files.private_key, 3_000_000);
        assert_eq!(reloading.reload_if_changed(), Ok(true));
        assert!(!Arc::ptr_eq(&second, &reloading.current()));
    }

    #[tokio::test]
    async fn watch_reloads_until_stopped() {
        let fixture = Fixture::new("watch");
        let reloading = Arc::new(
            ReloadingServerConfig::load(ServerTlsSettings::default(), fixture.files.clone())
                .unwrap(),
        );
        let first = reloading.current();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let watcher = tokio::spawn(ReloadingServerConfig::watch(
            {
                let reloading = reloading.clone();
                move || vec![reloading.clone()]
            },
            Duration::from_millis(10),
            stopped,
        ));
        let rotated = rotate(&fixture, "v2.example.com", 1_000_000);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while Arc::ptr_eq(&first, &reloading.current()) {
            assert!(tokio::time::Instant::now() < deadline, "not reloaded");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(served_leaf(&fixture, reloading.current()), rotated);
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), watcher)
            .await
            .expect("watch returns when stopped")
            .unwrap();
    }
}
