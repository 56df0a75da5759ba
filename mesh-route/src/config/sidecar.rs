//! The `Sidecar` resource (`networking.istio.io`): the proxy's own listeners — inbound
//! (ingress) ports forwarded to the local application, outbound (egress) scoping — and
//! the outbound traffic policy (`ALLOW_ANY` / `REGISTRY_ONLY`).

use serde::{Deserialize, Serialize};

use super::shared_types::WorkloadSelector;
use super::traffic_policy::ConnectionPoolSettings;
use super::virtual_service::Destination;

/// Istio `Sidecar`.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: Sidecar
/// metadata: {name: default}
/// spec:
///   ingress:
///   - port: {number: 9080, protocol: HTTP, name: http}
///     defaultEndpoint: 127.0.0.1:8080
///     captureMode: NONE
///   egress:
///   - hosts: ["./*"]
///   outboundTrafficPolicy: {mode: REGISTRY_ONLY}
/// "#;
/// let sidecar = &Config::from_yaml_str(yaml).unwrap().config.sidecars[0].spec;
/// assert!(sidecar.workload_selector.is_none()); // no selector: the namespace default
/// assert_eq!(sidecar.ingress.len(), 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sidecar {
    /// Workloads this Sidecar applies to (absent: the namespace default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    /// Inbound listeners, forwarding to the local application.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IstioIngressListener>,
    /// Outbound listeners and the hosts they can reach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<IstioEgressListener>,
    /// Outbound traffic to hosts not in the registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
    /// Connection pool towards the local application.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbound_connection_pool: Option<ConnectionPoolSettings>,
}

/// Istio `IstioIngressListener`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: Sidecar
/// # metadata: {name: default}
/// # spec:
/// #   ingress:
/// #   - port: {number: 9080, protocol: HTTP, name: http}
/// #     defaultEndpoint: 127.0.0.1:8080
/// #     captureMode: NONE
/// #   egress:
/// #   - hosts: ["./*"]
/// #   outboundTrafficPolicy: {mode: REGISTRY_ONLY}
/// # "#;
/// let sidecar = &Config::from_yaml_str(yaml).unwrap().config.sidecars[0].spec;
/// let ingress = &sidecar.ingress[0];
/// assert_eq!(ingress.default_endpoint.as_deref(), Some("127.0.0.1:8080"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstioIngressListener {
    /// The port the proxy listens on.
    pub port: SidecarPort,
    /// Address to bind (default: all addresses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// Traffic capture mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_mode: Option<CaptureMode>,
    /// Where to forward: `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT` or `unix://path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
    /// TLS termination on this listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// Connection pool towards the application for this port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
}

/// Istio `IstioEgressListener`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: Sidecar
/// # metadata: {name: default}
/// # spec:
/// #   ingress:
/// #   - port: {number: 9080, protocol: HTTP, name: http}
/// #     defaultEndpoint: 127.0.0.1:8080
/// #     captureMode: NONE
/// #   egress:
/// #   - hosts: ["./*"]
/// #   outboundTrafficPolicy: {mode: REGISTRY_ONLY}
/// # "#;
/// let sidecar = &Config::from_yaml_str(yaml).unwrap().config.sidecars[0].spec;
/// assert_eq!(sidecar.egress[0].hosts, ["./*"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstioEgressListener {
    /// The port (absent: all ports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<SidecarPort>,
    /// Address to bind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// Traffic capture mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_mode: Option<CaptureMode>,
    /// `namespace/host` entries the listener can reach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// Istio `SidecarPort`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: Sidecar
/// # metadata: {name: default}
/// # spec:
/// #   ingress:
/// #   - port: {number: 9080, protocol: HTTP, name: http}
/// #     defaultEndpoint: 127.0.0.1:8080
/// #     captureMode: NONE
/// #   egress:
/// #   - hosts: ["./*"]
/// #   outboundTrafficPolicy: {mode: REGISTRY_ONLY}
/// # "#;
/// let sidecar = &Config::from_yaml_str(yaml).unwrap().config.sidecars[0].spec;
/// let port = &sidecar.ingress[0].port;
/// assert_eq!((port.number, port.protocol.as_deref()), (9080, Some("HTTP")));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SidecarPort {
    /// Port number.
    pub number: u32,
    /// Protocol (`HTTP`, `HTTP2`, `GRPC`, `TCP`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port on the application.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

/// Istio `CaptureMode`.
///
/// ```
/// use mesh_route::config::{CaptureMode, Config};
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: Sidecar
/// # metadata: {name: default}
/// # spec:
/// #   ingress:
/// #   - port: {number: 9080, protocol: HTTP, name: http}
/// #     defaultEndpoint: 127.0.0.1:8080
/// #     captureMode: NONE
/// #   egress:
/// #   - hosts: ["./*"]
/// #   outboundTrafficPolicy: {mode: REGISTRY_ONLY}
/// # "#;
/// let sidecar = &Config::from_yaml_str(yaml).unwrap().config.sidecars[0].spec;
/// assert_eq!(sidecar.ingress[0].capture_mode, Some(CaptureMode::None));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptureMode {
    /// The environment's default.
    Default,
    /// iptables redirection.
    Iptables,
    /// No capture: the application addresses the proxy explicitly.
    None,
}

/// Istio `OutboundTrafficPolicy` (Sidecar form).
///
/// ```
/// use mesh_route::config::{Config, OutboundMode};
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: Sidecar
/// # metadata: {name: default}
/// # spec:
/// #   ingress:
/// #   - port: {number: 9080, protocol: HTTP, name: http}
/// #     defaultEndpoint: 127.0.0.1:8080
/// #     captureMode: NONE
/// #   egress:
/// #   - hosts: ["./*"]
/// #   outboundTrafficPolicy: {mode: REGISTRY_ONLY}
/// # "#;
/// let sidecar = &Config::from_yaml_str(yaml).unwrap().config.sidecars[0].spec;
/// let policy = sidecar.outbound_traffic_policy.as_ref().unwrap();
/// assert_eq!(policy.mode, Some(OutboundMode::RegistryOnly));
/// assert!(policy.egress_proxy.is_none());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboundTrafficPolicy {
    /// `ALLOW_ANY` or `REGISTRY_ONLY`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<OutboundMode>,
    /// Send unknown traffic to this destination instead of passing it through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress_proxy: Option<Destination>,
}

/// What happens to traffic for hosts that are not in the registry.
///
/// ```
/// use mesh_route::config::{Config, OutboundMode};
///
/// assert_eq!(OutboundMode::default(), OutboundMode::AllowAny);
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: Sidecar
/// # metadata: {name: default}
/// # spec:
/// #   ingress:
/// #   - port: {number: 9080, protocol: HTTP, name: http}
/// #     defaultEndpoint: 127.0.0.1:8080
/// #     captureMode: NONE
/// #   egress:
/// #   - hosts: ["./*"]
/// #   outboundTrafficPolicy: {mode: REGISTRY_ONLY}
/// # "#;
/// let sidecar = &Config::from_yaml_str(yaml).unwrap().config.sidecars[0].spec;
/// assert_eq!(sidecar.outbound_traffic_policy.as_ref().unwrap().mode, Some(OutboundMode::RegistryOnly));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OutboundMode {
    /// Unknown hosts get a 502 (`BlackHoleCluster` / `block_all`).
    #[serde(rename = "REGISTRY_ONLY")]
    RegistryOnly,
    /// Unknown hosts are passed through (`PassthroughCluster`) — Istio's default.
    #[default]
    #[serde(rename = "ALLOW_ANY")]
    AllowAny,
    /// Unknown hosts are resolved per request (mesh-wide only).
    #[serde(rename = "ALLOW_ANY_DYNAMIC_DNS")]
    AllowAnyDynamicDns,
}

/// Istio `ServerTLSSettings` (from `gateway.proto`): Gateway `servers[].tls`, as in the
/// example, and Sidecar `ingress[].tls`. On a Sidecar it is parsed, not enforced yet:
/// loading warns.
///
/// ```
/// use mesh_route::config::{Config, ServerTlsMode};
///
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: Gateway
/// metadata: {name: edge, namespace: shop}
/// spec:
///   selector: {istio: ingressgateway}
///   servers:
///   - port: {number: 80, name: http, protocol: HTTP}
///     hosts: ["*"]
///     tls: {httpsRedirect: true}
///   - port: {number: 443, name: https, protocol: HTTPS}
///     hosts: [shop/shop.example.com]
///     tls: {mode: SIMPLE, serverCertificate: /certs/shop.pem, privateKey: /certs/shop.key, minProtocolVersion: TLSV1_2}
/// "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let gateway = &config.gateways[0];
/// let tls = gateway.spec.servers[1].tls.as_ref().unwrap();
/// assert_eq!(tls.mode, Some(ServerTlsMode::Simple));
/// assert_eq!(tls.server_certificate.as_deref(), Some("/certs/shop.pem"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerTlsSettings {
    /// Redirect plain HTTP to HTTPS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https_redirect: Option<bool>,
    /// TLS mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<ServerTlsMode>,
    /// Server certificate file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<String>,
    /// Server private key file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// CA bundle to verify clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    /// Certificate revocation list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_crl: Option<String>,
    /// Secret holding the certificates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// Several secrets (e.g. RSA and ECDSA).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credential_names: Vec<String>,
    /// Secret holding the client CA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert_credential_name: Option<String>,
    /// Several certificate/key pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_certificates: Vec<TlsCertificate>,
    /// Accepted client SANs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// Accepted client certificate SPKI hashes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_spki: Vec<String>,
    /// Accepted client certificate hashes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_hash: Vec<String>,
    /// Minimum TLS version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_protocol_version: Option<TlsProtocol>,
    /// Maximum TLS version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_protocol_version: Option<TlsProtocol>,
    /// Allowed cipher suites.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
}

/// Istio `ServerTLSSettings.TLSCertificate`.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: Gateway
/// metadata: {name: edge}
/// spec:
///   servers:
///   - port: {number: 443, name: https, protocol: HTTPS}
///     hosts: [a.example.com]
///     tls: {mode: SIMPLE, tlsCertificates: [{serverCertificate: /a.pem, privateKey: /a.key}]}
/// "#;
/// // Parsed, but a Gateway refuses several certificates: give one pair instead.
/// let errors = Config::from_yaml_str(yaml).unwrap_err();
/// assert!(errors.iter().any(|d| d.to_string().contains("tlsCertificates is not supported")), "{errors:?}");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsCertificate {
    /// Certificate file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<String>,
    /// Private key file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// CA bundle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
}

/// Istio `ServerTLSSettings.TLSmode`.
///
/// ```
/// use mesh_route::config::{Config, ServerTlsMode};
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: Gateway
/// # metadata: {name: edge, namespace: shop}
/// # spec:
/// #   selector: {istio: ingressgateway}
/// #   servers:
/// #   - port: {number: 80, name: http, protocol: HTTP}
/// #     hosts: ["*"]
/// #     tls: {httpsRedirect: true}
/// #   - port: {number: 443, name: https, protocol: HTTPS}
/// #     hosts: [shop/shop.example.com]
/// #     tls: {mode: SIMPLE, serverCertificate: /certs/shop.pem, privateKey: /certs/shop.key, minProtocolVersion: TLSV1_2}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let gateway = &config.gateways[0];
/// assert_eq!(gateway.spec.servers[1].tls.as_ref().unwrap().mode, Some(ServerTlsMode::Simple));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerTlsMode {
    /// Forward TLS untouched, routed by SNI.
    Passthrough,
    /// Terminate TLS.
    Simple,
    /// Terminate TLS and require client certificates.
    Mutual,
    /// Passthrough with SNI-based cluster selection.
    AutoPassthrough,
    /// Mutual TLS with mesh certificates.
    IstioMutual,
    /// Request but do not require client certificates.
    OptionalMutual,
}

/// Istio `ServerTLSSettings.TLSProtocol`.
///
/// ```
/// use mesh_route::config::{Config, TlsProtocol};
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: Gateway
/// # metadata: {name: edge, namespace: shop}
/// # spec:
/// #   selector: {istio: ingressgateway}
/// #   servers:
/// #   - port: {number: 80, name: http, protocol: HTTP}
/// #     hosts: ["*"]
/// #     tls: {httpsRedirect: true}
/// #   - port: {number: 443, name: https, protocol: HTTPS}
/// #     hosts: [shop/shop.example.com]
/// #     tls: {mode: SIMPLE, serverCertificate: /certs/shop.pem, privateKey: /certs/shop.key, minProtocolVersion: TLSV1_2}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let gateway = &config.gateways[0];
/// assert_eq!(gateway.spec.servers[1].tls.as_ref().unwrap().min_protocol_version, Some(TlsProtocol::TlsV12));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsProtocol {
    /// The proxy's default.
    #[serde(rename = "TLS_AUTO")]
    TlsAuto,
    /// TLS 1.0.
    #[serde(rename = "TLSV1_0")]
    TlsV10,
    /// TLS 1.1.
    #[serde(rename = "TLSV1_1")]
    TlsV11,
    /// TLS 1.2.
    #[serde(rename = "TLSV1_2")]
    TlsV12,
    /// TLS 1.3.
    #[serde(rename = "TLSV1_3")]
    TlsV13,
}
