//! The `Gateway` resource (`networking.istio.io`): the servers an ingress proxy opens — a port
//! and protocol (`HTTP`, `HTTPS`, `HTTP2`, `GRPC`, `TCP`, `TLS`), the hosts it exposes, and how
//! TLS is terminated (`SIMPLE`, `MUTUAL`, `OPTIONAL_MUTUAL`) or passed through by SNI
//! (`PASSTHROUGH`). VirtualServices attach their routes to a Gateway by naming it in
//! `gateways:`.
//!
//! A sidecar serves the Gateways whose `selector` matches its own labels (an empty selector
//! matches every workload), so one process is the ingress gateway when started with the labels
//! the Gateway selects (`--label istio=ingressgateway`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::diagnostic::Reporter;
use super::resource::Resource;
use super::sidecar::{ServerTlsMode, ServerTlsSettings, TlsProtocol};

/// Istio `Gateway`.
///
/// ```
/// use mesh_route::config::Config;
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
/// assert_eq!(gateway.spec.selector["istio"], "ingressgateway");
/// assert_eq!(gateway.spec.servers.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gateway {
    /// Labels of the proxies that serve this Gateway (empty: every proxy).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    /// The servers (port, protocol, hosts, TLS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<GatewayServer>,
}

/// Istio `Server`: one port of a Gateway.
///
/// ```
/// use mesh_route::config::{Config, ServerKind};
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
/// let server = &gateway.spec.servers[1];
/// assert_eq!(server.hosts, ["shop/shop.example.com"]);
/// assert_eq!(server.kind(), Some(ServerKind::Https));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayServer {
    /// Port, protocol and name.
    pub port: GatewayPort,
    /// Address to bind (default: every address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// Hosts exposed, as `[namespace/]host` (`*/`, `./` and a namespace narrow which
    /// VirtualServices may attach).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// TLS termination or passthrough; with `HTTP`, only `httpsRedirect`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// Refused: sidecar-only Gateways are not supported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
    /// Server name (for statistics).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Istio `Port` of a Gateway server.
///
/// ```
/// use mesh_route::config::Config;
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
/// let port = &gateway.spec.servers[0].port;
/// assert_eq!((port.number, port.protocol.as_str(), port.name.as_deref()), (80, "HTTP", Some("http")));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayPort {
    /// Port number.
    pub number: u32,
    /// `HTTP`, `HTTPS`, `HTTP2`, `GRPC`, `TCP` or `TLS`.
    pub protocol: String,
    /// Port name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Refused: deprecated in Istio; the server listens on `number`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

/// What a Gateway server carries, from its protocol and TLS mode.
///
/// ```
/// use mesh_route::config::{Config, ServerKind};
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
/// let kinds: Vec<_> = gateway.spec.servers.iter().map(|s| s.kind()).collect();
/// assert_eq!(kinds, [Some(ServerKind::Http), Some(ServerKind::Https)]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// Plaintext HTTP/1.1 and HTTP/2 (`HTTP`, `HTTP2`, `GRPC`).
    Http,
    /// TLS terminated here, then HTTP (`HTTPS`, or `TLS`, with `SIMPLE` / `MUTUAL` /
    /// `OPTIONAL_MUTUAL`).
    Https,
    /// TLS forwarded untouched, routed by SNI through VirtualService `tls` routes.
    TlsPassthrough,
    /// Opaque TCP, routed through VirtualService `tcp` routes.
    Tcp,
}

impl GatewayServer {
    /// What the server carries; `None` for a protocol or TLS mode that is not supported (the
    /// validation reports it).
    ///
    /// ```
    /// use mesh_route::config::{GatewayPort, GatewayServer, ServerKind};
    ///
    /// let server = |protocol: &str| GatewayServer { port: GatewayPort { number: 9000, protocol: protocol.into(), ..Default::default() }, ..Default::default() };
    /// assert_eq!(server("grpc").kind(), Some(ServerKind::Http));
    /// assert_eq!(server("TCP").kind(), Some(ServerKind::Tcp));
    /// assert_eq!(server("HTTPS").kind(), None); // no TLS mode
    /// assert_eq!(server("MONGO").kind(), None);
    /// ```
    pub fn kind(&self) -> Option<ServerKind> {
        let mode = self.tls.as_ref().and_then(|t| t.mode);
        match self.port.protocol.to_ascii_uppercase().as_str() {
            "HTTP" | "HTTP2" | "GRPC" => Some(ServerKind::Http),
            "TCP" => Some(ServerKind::Tcp),
            "HTTPS" | "TLS" => match mode {
                Some(ServerTlsMode::Passthrough) => Some(ServerKind::TlsPassthrough),
                Some(
                    ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual,
                ) => Some(ServerKind::Https),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether plain HTTP requests get a `301` to `https://` (`tls.httpsRedirect`).
    ///
    /// ```
    /// use mesh_route::config::Config;
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
    /// assert!(gateway.spec.servers[0].https_redirect());
    /// assert!(!gateway.spec.servers[1].https_redirect());
    /// ```
    pub fn https_redirect(&self) -> bool {
        self.tls
            .as_ref()
            .and_then(|t| t.https_redirect)
            .unwrap_or(false)
    }

    /// The server's hosts split into (namespace part, host part): `ns/host` → `(Some("ns"),
    /// "host")`, `*/host` and `host` → `(None, "host")`; `./host` → the Gateway's namespace.
    ///
    /// ```
    /// use mesh_route::config::GatewayServer;
    ///
    /// let server = GatewayServer {
    ///     hosts: vec!["shop/a.example.com".into(), "*/b.example.com".into(), "./c.example.com".into(), "d.example.com".into()],
    ///     ..Default::default()
    /// };
    /// let hosts: Vec<_> = server.scoped_hosts(Some("edge")).collect();
    /// assert_eq!(hosts, [(Some("shop"), "a.example.com"), (None, "b.example.com"), (Some("edge"), "c.example.com"), (None, "d.example.com")]);
    /// ```
    pub fn scoped_hosts<'a>(
        &'a self,
        gateway_namespace: Option<&'a str>,
    ) -> impl Iterator<Item = (Option<&'a str>, &'a str)> + 'a {
        self.hosts
            .iter()
            .map(move |host| match host.split_once('/') {
                Some(("*", host)) => (None, host),
                Some((".", host)) => (Some(gateway_namespace.unwrap_or("default")), host),
                Some((namespace, host)) => (Some(namespace), host),
                None => (None, host.as_str()),
            })
    }
}

impl Gateway {
    /// Whether a proxy with `labels` serves this Gateway.
    ///
    /// ```
    /// use mesh_route::config::Gateway;
    ///
    /// let gateway = Gateway { selector: [("istio".into(), "ingressgateway".into())].into(), ..Default::default() };
    /// assert!(gateway.selects(&[("istio".into(), "ingressgateway".into()), ("zone".into(), "a".into())].into()));
    /// assert!(!gateway.selects(&Default::default()));
    /// assert!(Gateway::default().selects(&Default::default())); // empty selector: every proxy
    /// ```
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// `namespace/name` of a Gateway, as VirtualServices name it.
///
/// ```
/// use mesh_route::config::{Gateway, Resource, gateway::qualified_gateway_name};
///
/// assert_eq!(qualified_gateway_name(&Resource::new("edge", Gateway::default()).in_namespace("shop")), "shop/edge");
/// assert_eq!(qualified_gateway_name(&Resource::new("edge", Gateway::default())), "default/edge");
/// ```
pub fn qualified_gateway_name(gateway: &Resource<Gateway>) -> String {
    format!(
        "{}/{}",
        gateway.meta.namespace.as_deref().unwrap_or("default"),
        gateway.meta.name
    )
}

/// The Gateway a VirtualService in `vs_namespace` means by `reference` (`name`,
/// `namespace/name`, or Istio's older `name.namespace.svc.cluster.local`), qualified; `None`
/// for `mesh`.
///
/// ```
/// use mesh_route::config::gateway::resolve_gateway_reference;
///
/// assert_eq!(resolve_gateway_reference("edge", Some("shop")).as_deref(), Some("shop/edge"));
/// assert_eq!(resolve_gateway_reference("infra/edge", Some("shop")).as_deref(), Some("infra/edge"));
/// assert_eq!(resolve_gateway_reference("edge.infra.svc.cluster.local", None).as_deref(), Some("infra/edge"));
/// assert_eq!(resolve_gateway_reference("mesh", Some("shop")), None);
/// ```
pub fn resolve_gateway_reference(reference: &str, vs_namespace: Option<&str>) -> Option<String> {
    if reference == "mesh" {
        return None;
    }
    Some(match reference.split_once('/') {
        Some(_) => reference.to_owned(),
        None => match reference.split_once('.') {
            Some((name, rest)) => format!("{}/{name}", rest.split('.').next().unwrap_or(rest)),
            None => format!("{}/{reference}", vs_namespace.unwrap_or("default")),
        },
    })
}

/// Checks one Gateway.
pub(crate) fn validate_gateway(gateway: &Gateway, r: &mut Reporter<'_>) {
    if gateway.servers.is_empty() {
        r.error("servers", "at least one server is required");
    }
    for (i, server) in gateway.servers.iter().enumerate() {
        validate_server(server, &format!("servers[{i}]"), r);
    }
    // Servers sharing a port must be able to share one listener.
    for (i, server) in gateway.servers.iter().enumerate() {
        let Some(kind) = server.kind() else { continue };
        let earlier = gateway.servers[..i]
            .iter()
            .enumerate()
            .filter(|(_, other)| other.port.number == server.port.number);
        for (j, other) in earlier {
            let Some(other_kind) = other.kind() else {
                continue;
            };
            if let Some(problem) = port_conflict(kind, other_kind) {
                r.error(
                    format!("servers[{i}].port.number"),
                    format!(
                        "port {} is also servers[{j}]'s: {problem}",
                        server.port.number
                    ),
                );
            }
        }
    }
}

/// Why two servers of these kinds cannot share one port, if they cannot.
///
/// ```
/// use mesh_route::config::{ServerKind, gateway::port_conflict};
///
/// assert_eq!(port_conflict(ServerKind::Https, ServerKind::TlsPassthrough), None); // shared by SNI
/// assert_eq!(port_conflict(ServerKind::Http, ServerKind::Https), Some("plaintext HTTP and TLS cannot share a port"));
/// assert!(port_conflict(ServerKind::Tcp, ServerKind::Tcp).is_some());
/// ```
pub fn port_conflict(a: ServerKind, b: ServerKind) -> Option<&'static str> {
    use ServerKind::*;
    match (a, b) {
        (Http, Http) | (Https | TlsPassthrough, Https | TlsPassthrough) => None,
        (Tcp, _) | (_, Tcp) => Some("a TCP server needs its port to itself"),
        _ => Some("plaintext HTTP and TLS cannot share a port"),
    }
}

fn validate_server(server: &GatewayServer, path: &str, r: &mut Reporter<'_>) {
    if !(1..=65535).contains(&server.port.number) {
        r.error(
            format!("{path}.port.number"),
            format!("{} is not a port number (1-65535)", server.port.number),
        );
    }
    if server.port.target_port.is_some() {
        r.error(
            format!("{path}.port.targetPort"),
            "targetPort is not supported: the server listens on port.number (map it with \
             --gateway-listen PORT=ADDR)",
        );
    }
    if server.default_endpoint.is_some() {
        r.error(
            format!("{path}.defaultEndpoint"),
            "defaultEndpoint (sidecar-only Gateways) is not supported",
        );
    }
    if let Some(bind) = &server.bind
        && bind.parse::<std::net::IpAddr>().is_err()
    {
        r.error(
            format!("{path}.bind"),
            format!("{bind:?} is not an IP address (unix sockets are not supported)"),
        );
    }
    if server.hosts.is_empty() {
        r.error(format!("{path}.hosts"), "at least one host is required");
    }
    for (i, host) in server.hosts.iter().enumerate() {
        let bare = host.rsplit('/').next().unwrap_or(host);
        if bare.is_empty() || host.starts_with('/') || host.matches('/').count() > 1 {
            r.error(
                format!("{path}.hosts[{i}]"),
                format!("{host:?} is not [namespace/]host"),
            );
        }
    }
    let protocol = server.port.protocol.to_ascii_uppercase();
    let tls_path = format!("{path}.tls");
    match protocol.as_str() {
        "HTTP" | "HTTP2" | "GRPC" => {
            if let Some(tls) = &server.tls
                && (tls.mode.is_some() || *tls != redirect_only(tls))
            {
                r.error(
                    tls_path,
                    format!("a {protocol} server takes only tls.httpsRedirect; use HTTPS to terminate TLS"),
                );
            }
        }
        "TCP" => {
            if server.tls.is_some() {
                r.error(
                    tls_path,
                    "a TCP server takes no tls; use TLS to pass TLS through by SNI",
                );
            }
        }
        "HTTPS" | "TLS" => match &server.tls {
            None => r.error(tls_path, format!("a {protocol} server needs tls.mode")),
            Some(tls) => {
                validate_server_tls(tls, &tls_path, r);
                let terminates = !matches!(tls.mode, Some(ServerTlsMode::Passthrough) | None);
                if protocol == "TLS" && terminates {
                    r.error(
                        format!("{tls_path}.mode"),
                        "terminating TLS on a TLS server (then tcp routes) is not supported: \
                         use protocol HTTPS to terminate and route HTTP, or PASSTHROUGH",
                    );
                }
            }
        },
        _ => r.error(
            format!("{path}.port.protocol"),
            format!(
                "protocol {:?} is not supported (HTTP, HTTPS, HTTP2, GRPC, TCP, TLS)",
                server.port.protocol
            ),
        ),
    }
}

/// `tls` with only `httpsRedirect` kept.
fn redirect_only(tls: &ServerTlsSettings) -> ServerTlsSettings {
    ServerTlsSettings {
        https_redirect: tls.https_redirect,
        ..ServerTlsSettings::default()
    }
}

fn validate_server_tls(tls: &ServerTlsSettings, path: &str, r: &mut Reporter<'_>) {
    let unsupported: [(&str, bool); 6] = [
        ("caCrl", tls.ca_crl.is_some()),
        ("credentialNames", !tls.credential_names.is_empty()),
        (
            "caCertCredentialName",
            tls.ca_cert_credential_name.is_some(),
        ),
        ("tlsCertificates", !tls.tls_certificates.is_empty()),
        (
            "verifyCertificateSpki",
            !tls.verify_certificate_spki.is_empty(),
        ),
        (
            "verifyCertificateHash",
            !tls.verify_certificate_hash.is_empty(),
        ),
    ];
    for (field, present) in unsupported {
        if present {
            r.error(
                format!("{path}.{field}"),
                format!(
                    "{field} is not supported: give serverCertificate, privateKey and \
                     caCertificates, or one credentialName"
                ),
            );
        }
    }
    if tls.https_redirect == Some(true) {
        r.error(
            format!("{path}.httpsRedirect"),
            "httpsRedirect belongs on the plaintext HTTP server",
        );
    }
    for (field, version) in [
        ("minProtocolVersion", tls.min_protocol_version),
        ("maxProtocolVersion", tls.max_protocol_version),
    ] {
        if matches!(version, Some(TlsProtocol::TlsV10 | TlsProtocol::TlsV11)) {
            r.error(
                format!("{path}.{field}"),
                "TLS 1.0 and 1.1 are not served (rustls serves TLS 1.2 and 1.3)",
            );
        }
    }
    match tls.mode {
        None => r.error(format!("{path}.mode"), "mode is required (SIMPLE, MUTUAL, OPTIONAL_MUTUAL, PASSTHROUGH)"),
        Some(ServerTlsMode::Passthrough) => {
            let terminating = tls.server_certificate.is_some()
                || tls.private_key.is_some()
                || tls.credential_name.is_some();
            if terminating {
                r.error(
                    format!("{path}.mode"),
                    "PASSTHROUGH forwards TLS untouched: it takes no certificate",
                );
            }
        }
        Some(mode @ (ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual)) => {
            let files = tls.server_certificate.is_some() || tls.private_key.is_some();
            match (files || tls.ca_certificates.is_some(), &tls.credential_name) {
                (true, Some(_)) => r.error(
                    format!("{path}.credentialName"),
                    "give credentialName (with NAME-ca.crt beside it) or \
                     serverCertificate/privateKey/caCertificates, not both",
                ),
                (true, None) => {
                    if tls.server_certificate.is_none() {
                        r.error(format!("{path}.serverCertificate"), "serverCertificate is required with privateKey");
                    }
                    if tls.private_key.is_none() {
                        r.error(format!("{path}.privateKey"), "privateKey is required with serverCertificate");
                    }
                    let verifies = matches!(mode, ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual);
                    if verifies && tls.ca_certificates.is_none() {
                        r.error(
                            format!("{path}.caCertificates"),
                            format!("caCertificates is required with mode {}", mode_name(mode)),
                        );
                    }
                }
                (false, None) => r.error(
                    format!("{path}.serverCertificate"),
                    format!("mode {} needs serverCertificate and privateKey, or credentialName", mode_name(mode)),
                ),
                (false, Some(_)) => {}
            }
        }
        Some(mode) => r.error(
            format!("{path}.mode"),
            format!("mode {} is not supported on a Gateway (SIMPLE, MUTUAL, OPTIONAL_MUTUAL, PASSTHROUGH)", mode_name(mode)),
        ),
    }
}

/// Istio's name of a TLS mode.
///
/// ```
/// use mesh_route::config::{ServerTlsMode, gateway::mode_name};
///
/// assert_eq!(mode_name(ServerTlsMode::OptionalMutual), "OPTIONAL_MUTUAL");
/// assert_eq!(mode_name(ServerTlsMode::Passthrough), "PASSTHROUGH");
/// ```
pub fn mode_name(mode: ServerTlsMode) -> &'static str {
    match mode {
        ServerTlsMode::Passthrough => "PASSTHROUGH",
        ServerTlsMode::Simple => "SIMPLE",
        ServerTlsMode::Mutual => "MUTUAL",
        ServerTlsMode::AutoPassthrough => "AUTO_PASSTHROUGH",
        ServerTlsMode::IstioMutual => "ISTIO_MUTUAL",
        ServerTlsMode::OptionalMutual => "OPTIONAL_MUTUAL",
    }
}

/// One port a proxy listens on for the Gateways it serves, with the servers that share it.
///
/// ```
/// use mesh_route::config::{Config, ServerKind, gateway::served_ports};
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
/// let labels = [("istio".to_owned(), "ingressgateway".to_owned())].into();
/// let ports = served_ports(&config, &labels).unwrap();
/// let summary: Vec<_> = ports.iter().map(|p| (p.port, p.kind, p.servers.len())).collect();
/// assert_eq!(summary, [(80, ServerKind::Http, 1), (443, ServerKind::Https, 1)]);
/// ```
#[derive(Clone, Debug)]
pub struct ServedPort<'c> {
    /// The port (`servers[].port.number`).
    pub port: u16,
    /// The address the servers bind (`bind`), if they name one.
    pub bind: Option<std::net::IpAddr>,
    /// What the port carries (every server on it is of a compatible kind).
    pub kind: ServerKind,
    /// The servers, in configuration order.
    pub servers: Vec<ServedServer<'c>>,
}

/// One Gateway server on a [`ServedPort`].
///
/// ```
/// use mesh_route::config::{Config, gateway::served_ports};
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
/// let labels = [("istio".to_owned(), "ingressgateway".to_owned())].into();
/// let ports = served_ports(&config, &labels).unwrap();
/// let server = &ports[1].servers[0];
/// assert_eq!((server.qualified.as_str(), server.index), ("shop/edge", 1));
/// ```
#[derive(Clone, Debug)]
pub struct ServedServer<'c> {
    /// The Gateway.
    pub gateway: &'c Resource<Gateway>,
    /// `namespace/name` of the Gateway.
    pub qualified: String,
    /// The server's index in `servers`.
    pub index: usize,
    /// The server.
    pub server: &'c GatewayServer,
}

impl ServedServer<'_> {
    /// `Gateway ns/name servers[i]`, for messages.
    ///
    /// ```
    /// use mesh_route::config::{Config, gateway::served_ports};
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
    /// let labels = [("istio".to_owned(), "ingressgateway".to_owned())].into();
    /// let ports = served_ports(&config, &labels).unwrap();
    /// assert_eq!(ports[1].servers[0].label(), "Gateway shop/edge servers[1]");
    /// ```
    pub fn label(&self) -> String {
        format!("Gateway {} servers[{}]", self.qualified, self.index)
    }

    /// The names under which this server exposes `host` (canonical) of a VirtualService in
    /// `vs_namespace`: for each server host whose namespace admits the VirtualService, the
    /// narrower of the two when one covers the other.
    ///
    /// ```
    /// use mesh_route::config::{Config, gateway::served_ports};
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
    /// let labels = [("istio".to_owned(), "ingressgateway".to_owned())].into();
    /// let ports = served_ports(&config, &labels).unwrap();
    /// let https = &ports[1].servers[0]; // hosts: [shop/shop.example.com]
    /// assert_eq!(https.exposed_hosts("*.example.com", Some("shop")), ["shop.example.com"]);
    /// assert!(https.exposed_hosts("shop.example.com", Some("other")).is_empty()); // namespace not admitted
    /// ```
    pub fn exposed_hosts(&self, host: &str, vs_namespace: Option<&str>) -> Vec<String> {
        let namespace_of_vs = vs_namespace.unwrap_or("default");
        self.server
            .scoped_hosts(self.gateway.meta.namespace.as_deref())
            .filter(|(namespace, _)| namespace.is_none_or(|n| n == namespace_of_vs))
            .filter_map(|(_, pattern)| {
                let pattern = crate::host::canonical_host(pattern, vs_namespace);
                if crate::host::host_matches(&pattern, host) {
                    Some(host.to_owned())
                } else if crate::host::host_matches(host, &pattern) {
                    Some(pattern)
                } else {
                    None
                }
            })
            .collect()
    }

    /// Whether a VirtualService (or one of its matches) naming `references` attaches to this
    /// server's Gateway.
    ///
    /// ```
    /// use mesh_route::config::{Config, gateway::served_ports};
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
    /// let labels = [("istio".to_owned(), "ingressgateway".to_owned())].into();
    /// let ports = served_ports(&config, &labels).unwrap();
    /// let server = &ports[0].servers[0];
    /// assert!(server.attached_by(&["edge".into()], Some("shop")));
    /// assert!(server.attached_by(&["shop/edge".into()], Some("other")));
    /// assert!(!server.attached_by(&["mesh".into()], Some("shop")));
    /// ```
    pub fn attached_by(&self, references: &[String], vs_namespace: Option<&str>) -> bool {
        references.iter().any(|reference| {
            resolve_gateway_reference(reference, vs_namespace).as_deref()
                == Some(self.qualified.as_str())
        })
    }
}

/// Why the Gateway servers that select a proxy cannot be served together ([`served_ports`]).
///
/// ```
/// use mesh_route::config::gateway::ServedPortsError;
/// let error = ServedPortsError::DifferentBinds {
///     first: "Gateway shop/edge servers[0]".into(),
///     second: "Gateway shop/other servers[0]".into(),
///     port: 80,
/// };
/// assert_eq!(
///     error.to_string(),
///     "Gateway shop/edge servers[0] and Gateway shop/other servers[0] share port 80 with different `bind` addresses"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServedPortsError {
    /// A server whose protocol, or port number, no listener serves.
    #[error("{server}: not a servable port")]
    NotServable {
        /// The server (`Gateway NS/NAME servers[I]`).
        server: String,
    },
    /// Two servers on one port that cannot share it.
    #[error("{first} and {second} share port {port}: {problem}")]
    Conflict {
        /// The server that took the port first.
        first: String,
        /// The server that came second.
        second: String,
        /// The port.
        port: u16,
        /// Why they cannot share it.
        problem: &'static str,
    },
    /// Two servers on one port with different `bind` addresses.
    #[error("{first} and {second} share port {port} with different `bind` addresses")]
    DifferentBinds {
        /// The server that took the port first.
        first: String,
        /// The server that came second.
        second: String,
        /// The port.
        port: u16,
    },
}

/// The ports a proxy with `labels` serves for the Gateways selecting it, sorted by port.
/// Servers of different Gateways on one port share it when their kinds allow (see
/// [`port_conflict`]); otherwise the error names both.
///
/// ```
/// use mesh_route::config::{Config, gateway::served_ports};
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
/// // The Gateway selects `istio: ingressgateway`: other proxies serve none of its ports.
/// assert!(served_ports(&config, &Default::default()).unwrap().is_empty());
/// let labels = [("istio".to_owned(), "ingressgateway".to_owned())].into();
/// let ports: Vec<u16> = served_ports(&config, &labels).unwrap().iter().map(|p| p.port).collect();
/// assert_eq!(ports, [80, 443]);
/// ```
pub fn served_ports<'c>(
    config: &'c super::Config,
    labels: &BTreeMap<String, String>,
) -> Result<Vec<ServedPort<'c>>, ServedPortsError> {
    let mut ports: Vec<ServedPort<'c>> = Vec::new();
    for gateway in config.gateways.iter().filter(|g| g.spec.selects(labels)) {
        for (index, server) in gateway.spec.servers.iter().enumerate() {
            let served = ServedServer {
                gateway,
                qualified: qualified_gateway_name(gateway),
                index,
                server,
            };
            let (Some(kind), Ok(port)) = (server.kind(), u16::try_from(server.port.number)) else {
                return Err(ServedPortsError::NotServable {
                    server: served.label(),
                });
            };
            let bind = server.bind.as_deref().and_then(|b| b.parse().ok());
            match ports.iter_mut().find(|p| p.port == port) {
                Some(existing) => {
                    if let Some(problem) = port_conflict(existing.kind, kind) {
                        return Err(ServedPortsError::Conflict {
                            first: existing.servers[0].label(),
                            second: served.label(),
                            port,
                            problem,
                        });
                    }
                    if existing.bind != bind {
                        return Err(ServedPortsError::DifferentBinds {
                            first: existing.servers[0].label(),
                            second: served.label(),
                            port,
                        });
                    }
                    if kind == ServerKind::Https {
                        existing.kind = kind;
                    }
                    existing.servers.push(served);
                }
                None => ports.push(ServedPort {
                    port,
                    bind,
                    kind,
                    servers: vec![served],
                }),
            }
        }
    }
    ports.sort_by_key(|p| p.port);
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::stream_route::StreamDecision;
    use crate::table::{Decision, RouteScope, RouteTable};

    const REGISTRY: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shop, namespace: shop}
spec:
  hosts: [shop.example.com]
  resolution: STATIC
  ports: [{number: 80, name: http}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: shop}
spec:
  hosts: [echo.shop.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.0.1}]
"#;

    fn load(extra: &str) -> Result<Config, Vec<crate::config::Diagnostic>> {
        Config::from_yaml_str(&format!("{REGISTRY}---\n{extra}")).map(|l| l.config)
    }

    fn errors(extra: &str) -> Vec<String> {
        load(extra)
            .err()
            .unwrap_or_default()
            .iter()
            .map(|d| format!("{}: {}", d.field.as_deref().unwrap_or(""), d.message))
            .collect()
    }

    /// Asserts that `errs` has an error at `field` saying `text`.
    fn assert_error(errs: &[String], field: &str, text: &str) {
        assert!(
            errs.iter()
                .any(|e| e.starts_with(field) && e.contains(text)),
            "{field} / {text}: {errs:#?}"
        );
    }

    const GATEWAY: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
    tls: {httpsRedirect: true}
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [shop/shop.example.com]
    tls: {mode: SIMPLE, credentialName: shop}
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: [db.example.com]
    tls: {mode: PASSTHROUGH}
  - port: {number: 9000, name: tcp, protocol: TCP}
    hosts: ["*"]
"#;

    #[test]
    fn servers_are_validated_with_field_paths() {
        let bad = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bad, namespace: shop}
spec:
  servers:
  - port: {number: 0, name: x, protocol: MONGO}
    hosts: []
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem, caCrl: /crl.pem, minProtocolVersion: TLSV1_0}
  - port: {number: 443, name: plain, protocol: HTTP}
    hosts: [b.example.com]
  - port: {number: 8443, name: https2, protocol: HTTPS}
    hosts: [c.example.com]
    tls: {mode: ISTIO_MUTUAL}
"#;
        let errs = errors(bad);
        let has = |field: &str, text: &str| assert_error(&errs, field, text);
        has("servers[0].port.number", "not a port number");
        has("servers[0].port.protocol", "\"MONGO\" is not supported");
        has("servers[0].hosts", "at least one host");
        has("servers[1].tls.caCertificates", "required with mode MUTUAL");
        has("servers[1].tls.caCrl", "not supported");
        has("servers[1].tls.minProtocolVersion", "TLS 1.0 and 1.1");
        has(
            "servers[2].port.number",
            "plaintext HTTP and TLS cannot share a port",
        );
        has("servers[3].tls.mode", "ISTIO_MUTUAL is not supported");
    }

    #[test]
    fn a_virtual_service_naming_an_unknown_gateway_is_an_error() {
        let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: shop}
spec:
  hosts: [shop.example.com]
  gateways: [edge]
  http: [{route: [{destination: {host: shop.example.com}}]}]
"#;
        let errs = errors(vs);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("gateways[0]") && e.contains("shop/edge")),
            "{errs:#?}"
        );
        assert!(load(&format!("{GATEWAY}---\n{vs}")).is_ok());
    }

    #[test]
    fn gateway_routes_are_scoped_to_their_ports_and_hosts() {
        let routes = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: shop}
spec:
  hosts: [shop.example.com]
  gateways: [edge]
  http:
  - match: [{uri: {prefix: /admin}, gateways: [mesh]}]
    route: [{destination: {host: shop.example.com}}]
  - match: [{uri: {prefix: /}}]
    route: [{destination: {host: shop.example.com}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: shop}
spec:
  hosts: ["*"]
  gateways: [shop/edge]
  tcp:
  - match: [{port: 9000}]
    route: [{destination: {host: echo.shop.svc.cluster.local, port: {number: 9000}}}]
  tls:
  - match: [{port: 443, sniHosts: [db.example.com]}]
    route: [{destination: {host: echo.shop.svc.cluster.local, port: {number: 9000}}}]
"#;
        let config = load(&format!("{GATEWAY}---\n{routes}")).unwrap();
        let labels = BTreeMap::from([("istio".to_owned(), "ingressgateway".to_owned())]);
        let ports = served_ports(&config, &labels).unwrap();
        assert_eq!(
            ports.iter().map(|p| (p.port, p.kind)).collect::<Vec<_>>(),
            [
                (80, ServerKind::Http),
                (443, ServerKind::Https),
                (9000, ServerKind::Tcp)
            ]
        );
        // A proxy without the selected labels serves none of it.
        assert!(served_ports(&config, &BTreeMap::new()).unwrap().is_empty());

        let table = RouteTable::compile_for(&config, &ports, &Default::default()).unwrap();
        let get = |uri: &str| http::Request::get(uri).body(()).unwrap();
        // The mesh does not see gateway-only routes: the host falls back to its default route.
        assert!(matches!(
            table.route(&get("http://shop.example.com/admin")),
            Decision::Matched { info, .. } if &*info.name == "default"
        ));
        let https = table.gateway_scope(443).unwrap();
        assert!(https.is_gateway());
        // The `/admin` match is for the mesh only; the gateway uses the second rule.
        match table.route_in(https, &get("https://shop.example.com/admin")) {
            Decision::Matched { info, .. } => assert_eq!(&*info.name, "shop/shop.1"),
            other => panic!("{other:?}"),
        }
        // Port 80's server exposes `*`: the same routes. An unknown host is 404, never
        // passed through.
        let http80 = table.gateway_scope(80).unwrap();
        assert!(matches!(
            table.route_in(http80, &get("http://shop.example.com/")),
            Decision::Matched { .. }
        ));
        assert!(matches!(
            table.route_in(https, &get("https://other.example.com/")),
            Decision::NoRule
        ));
        // TCP by port, TLS passthrough by SNI.
        let tcp = table.gateway_scope(9000).unwrap();
        let StreamDecision::Matched(rule) = table.route_stream(tcp, "", 9000, None) else {
            panic!("the tcp route matches port 9000");
        };
        assert_eq!(rule.pick().port, Some(9000));
        assert!(matches!(
            table.route_stream(https, "", 443, Some("db.example.com")),
            StreamDecision::Matched(_)
        ));
        assert!(matches!(
            table.route_stream(https, "", 443, Some("x.example.com")),
            StreamDecision::NoRule
        ));
        // A tunnel through the mesh to a registry host reaches its endpoints.
        assert!(matches!(
            table.route_stream(RouteScope::MESH, "echo.shop.svc.cluster.local", 9000, None),
            StreamDecision::Matched(_)
        ));
        assert!(matches!(
            table.route_stream(RouteScope::MESH, "unknown.example.org", 9000, None),
            StreamDecision::UnknownHost
        ));
    }

    #[test]
    fn conflicting_servers_of_two_gateways_are_refused() {
        let second = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: other, namespace: shop}
spec:
  servers:
  - port: {number: 9000, name: tcp2, protocol: TCP}
    hosts: ["*"]
"#;
        let config = load(&format!("{GATEWAY}---\n{second}")).unwrap();
        let labels = BTreeMap::from([("istio".to_owned(), "ingressgateway".to_owned())]);
        let error = served_ports(&config, &labels).unwrap_err().to_string();
        assert!(
            error.contains("Gateway shop/edge servers[3]")
                && error.contains("Gateway shop/other servers[0]"),
            "{error}"
        );
    }

    #[test]
    fn a_wildcard_virtual_service_is_served_only_for_the_hosts_the_server_exposes() {
        let routes = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: any, namespace: shop}
spec:
  hosts: ["*"]
  gateways: [edge.shop.svc.cluster.local]
  http: [{route: [{destination: {host: shop.example.com}}]}]
"#;
        let config = load(&format!("{GATEWAY}---\n{routes}")).unwrap();
        let labels = BTreeMap::from([("istio".to_owned(), "ingressgateway".to_owned())]);
        let ports = served_ports(&config, &labels).unwrap();
        let table = RouteTable::compile_for(&config, &ports, &Default::default()).unwrap();
        let https = table.gateway_scope(443).unwrap();
        let get = |uri: &str| http::Request::get(uri).body(()).unwrap();
        assert!(matches!(
            table.route_in(https, &get("https://shop.example.com/")),
            Decision::Matched { .. }
        ));
        assert!(matches!(
            table.route_in(https, &get("https://elsewhere.example.org/")),
            Decision::NoRule
        ));
        // Port 80's server exposes `*`: everything.
        let http80 = table.gateway_scope(80).unwrap();
        assert!(matches!(
            table.route_in(http80, &get("http://elsewhere.example.org/")),
            Decision::Matched { .. }
        ));
    }

    #[test]
    fn gateway_configurations_this_proxy_cannot_serve_as_istio_does_are_errors() {
        let duplicate = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: shop}
spec:
  hosts: [shop.example.com]
  gateways: [edge]
  http: [{route: [{destination: {host: shop.example.com}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b, namespace: shop}
spec:
  hosts: [shop.example.com]
  gateways: [shop/edge]
  http: [{route: [{destination: {host: shop.example.com}}]}]
"#;
        let errs = errors(&format!("{GATEWAY}---\n{duplicate}"));
        assert!(
            errs.iter()
                .any(|e| e.starts_with("hosts[0]")
                    && e.contains("also attached to Gateway shop/edge")),
            "{errs:#?}"
        );
        let tls_terminated = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: t, namespace: shop}
spec:
  servers:
  - port: {number: 5432, name: pg, protocol: TLS}
    hosts: [db.example.com]
    tls: {mode: OPTIONAL_MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: SIMPLE, credentialName: a, caCertificates: /ca.pem}
  - port: {number: 8443, name: https2, protocol: HTTPS}
    hosts: [/b.example.com]
    tls: {mode: PASSTHROUGH}
"#;
        let errs = errors(tls_terminated);
        let has = |field: &str, text: &str| assert_error(&errs, field, text);
        has("servers[0].tls.mode", "terminating TLS on a TLS server");
        has(
            "servers[0].tls.caCertificates",
            "required with mode OPTIONAL_MUTUAL",
        );
        has("servers[1].tls.credentialName", "not both");
        has("servers[2].hosts[0]", "not [namespace/]host");
    }

    #[test]
    fn a_tunnel_to_a_host_with_only_http_routes_reaches_its_registry_endpoints() {
        let routes = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: shop}
spec:
  hosts: [echo]
  http: [{route: [{destination: {host: echo}}]}]
"#;
        let config = load(routes).unwrap();
        let table = RouteTable::compile(&config).unwrap();
        assert!(matches!(
            table.route_stream(RouteScope::MESH, "echo.shop.svc.cluster.local", 9000, None),
            StreamDecision::Matched(_)
        ));
    }
}
