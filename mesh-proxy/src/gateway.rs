//! Gateway ports: what the sidecar serves for the Gateways that select it (ingress mode).
//!
//! Each port of [`served_ports`](mesh_route::config::gateway::served_ports) becomes a
//! [`GatewayPort`]:
//! - `HTTP` servers: the outbound HTTP stack routing in the port's scope (the VirtualServices
//!   naming the Gateway, for the hosts its servers expose; other hosts get 404), with
//!   `httpsRedirect` answered `301` first;
//! - `HTTPS` / `TLS` servers: the ClientHello's SNI picks the server (exact names before
//!   wildcards); `SIMPLE` / `MUTUAL` / `OPTIONAL_MUTUAL` terminate TLS with that server's
//!   certificate (reloaded when its files change) and serve HTTP as above; `PASSTHROUGH`
//!   forwards the untouched TLS bytes along the VirtualService `tls` route matching the SNI;
//! - `TCP` servers: the VirtualService `tcp` route matching the port.
//!
//! Tunnelled connections are counted in the `istio_tcp_*` metrics (reported by the gateway as
//! `reporter="source"`, as Istio's gateways do).

use crate::{
    listener::{HttpServer, HttpService},
    tunnel::{TunnelError, Tunnels, relay},
};
use http::{Request, Response, StatusCode};
use mesh_core::{Body, BoxError, DownstreamAddr, body};
use mesh_route::{
    config::gateway::{ServedPort, ServedPortsError, ServerKind},
    host::host_matches,
    table::RouteScope,
};
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};
use tokio::net::TcpStream;
use tower::{Service, ServiceExt};

#[cfg(feature = "tls")]
use crate::tls::gateway::{GatewayCertificateFiles, ReloadingServerConfig};

/// How long a client has to send its TLS ClientHello, and to finish the handshake.
///
/// ```
/// use mesh_proxy::gateway::HANDSHAKE_TIMEOUT;
/// assert_eq!(HANDSHAKE_TIMEOUT, std::time::Duration::from_secs(10));
/// ```
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One port of the Gateways this sidecar serves; see the [module docs](self).
///
/// ```
/// use mesh_proxy::{Sidecar, sidecar::SidecarSettings};
/// use mesh_route::config::{Config, gateway::ServerKind};
/// let yaml = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: edge, namespace: shop}\n\
///             spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 9000, name: db, protocol: TCP}, hosts: ['*']}]}\n";
/// let mut settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
/// settings.workload.labels.insert("istio".into(), "ingressgateway".into());
/// let sidecar = Sidecar::with_settings(Config::from_yaml_str(yaml).unwrap().config, settings).unwrap();
/// let port = sidecar.gateway_port(9000).unwrap();
/// assert_eq!((port.port, port.kind), (9000, ServerKind::Tcp));
/// ```
#[derive(Debug)]
pub struct GatewayPort {
    /// The port (`servers[].port.number`).
    pub port: u16,
    /// The address to listen on, unless the command line maps the port elsewhere.
    pub bind: IpAddr,
    /// What the port carries.
    pub kind: ServerKind,
    /// The port's route scope.
    scope: RouteScope,
    /// HTTP requests (plaintext, or after TLS termination).
    http: HttpService,
    /// The hosts the port's plaintext HTTP servers serve.
    http_hosts: Arc<[String]>,
    /// Those of them answered with a redirect to `https://` (`httpsRedirect`).
    redirect_hosts: Arc<[String]>,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    servers: Vec<PortServer>,
    tunnels: Tunnels,
}

/// One server of a port, as connections meet it.
#[derive(Debug)]
struct PortServer {
    /// Host names (lower case, the namespace part dropped; `*` and `*.suffix` wildcards).
    hosts: Arc<[String]>,
    handling: Handling,
}

/// What a gateway connection's server allows, carried by each of its requests: the hosts it
/// serves (a request for another host gets 404, even when another server of the port serves
/// it: TLS settings chosen by SNI cannot be sidestepped with the Host header), and whether the
/// connection is TLS (`x-forwarded-proto`).
#[derive(Clone, Debug)]
pub(crate) struct GatewayConnection {
    hosts: Arc<[String]>,
    tls: bool,
}

/// What a server does with a connection.
#[derive(Debug)]
enum Handling {
    /// Plain HTTP; `true`: answered with a redirect to `https://`.
    Http { https_redirect: bool },
    /// TLS terminated with this configuration, then HTTP.
    #[cfg(feature = "tls")]
    Terminate(Arc<ReloadingServerConfig>),
    /// TLS forwarded untouched, by SNI.
    Passthrough,
    /// Opaque TCP.
    Tcp,
}

/// Why the Gateway ports a proxy serves cannot be served.
///
/// ```
/// use mesh_proxy::gateway::GatewayError;
/// let error = GatewayError::NotServable { server: "Gateway shop/edge servers[0]".into() };
/// assert_eq!(error.to_string(), "Gateway shop/edge servers[0]: not a servable server");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The servers that select this proxy cannot share their ports as configured.
    #[error(transparent)]
    Ports(#[from] ServedPortsError),
    /// A server of no kind this proxy serves.
    #[error("{server}: not a servable server")]
    NotServable {
        /// The server (`Gateway NS/NAME servers[I]`).
        server: String,
    },
    /// An `HTTPS` server, in a build without the `tls` feature.
    #[error("{server}: terminating TLS needs the `tls` feature, which this build lacks")]
    TerminationNeedsTls {
        /// The server.
        server: String,
    },
    /// A `TLS` passthrough server, in a build without the `tls` feature.
    #[error("{server}: TLS passthrough reads the ClientHello, and this build has no `tls` feature")]
    PassthroughNeedsTls {
        /// The server.
        server: String,
    },
    /// An `HTTPS` server's certificate files cannot be used.
    #[error("{server} ({origin}): {source}")]
    Certificates {
        /// The server.
        server: String,
        /// Where its Gateway was loaded from.
        origin: String,
        /// Why they cannot.
        #[source]
        source: crate::tls::TlsError,
    },
    /// A served port the route table has no scope for (a bug, should it happen).
    #[error("port {0} has no route scope")]
    NoRouteScope(u16),
    /// A reload would change the gateway listeners bound at start.
    #[error(
        "the Gateway ports served change ({before:?} to {after:?}): adding, removing or \
         rebinding a gateway port, or changing what it carries, needs a restart"
    )]
    ListenersChanged {
        /// Port and kind of each listener before.
        before: Vec<(u16, ServerKind)>,
        /// And after.
        after: Vec<(u16, ServerKind)>,
    },
}

impl GatewayPort {
    /// The port `served`, routing HTTP through `http` (the outbound stack in `scope`) and
    /// tunnels through `tunnels`; certificate files named by `credentialName` are looked up in
    /// `credentials`.
    ///
    /// ```
    /// use mesh_proxy::{gateway::GatewayPort, listener::HttpService, tunnel::Tunnels};
    /// use mesh_route::{RouteTable, config::{Config, gateway::{ServerKind, served_ports}}};
    /// # use mesh_core::workload::Workload;
    /// # use mesh_proxy::{prometheus::default_recorder, registry::Registry};
    /// # use mesh_trace::metrics::{IstioMetrics, Reporter};
    /// # use std::sync::Arc;
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: edge, namespace: shop}\n\
    ///             spec: {servers: [{port: {number: 8080, name: http, protocol: HTTP}, bind: 127.0.0.1, hosts: ['*']}, \
    ///             {port: {number: 9000, name: db, protocol: TCP}, hosts: ['*']}]}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let served = served_ports(&config, &Default::default()).unwrap();
    /// let table = Arc::new(RouteTable::compile_for(&config, &served, &Default::default()).unwrap());
    /// # let metrics = Arc::new(IstioMetrics::new(default_recorder().unwrap().0, Reporter::Source, Workload::from_labels("edge", "shop", &Default::default())));
    /// let tunnels = Tunnels::new(table.clone(), Arc::new(Registry::default()), metrics);
    /// let http = HttpService::new(tower::service_fn(|_req| async { Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::empty())) }));
    /// let port = |i: usize| {
    ///     let scope = table.gateway_scope(served[i].port).unwrap();
    ///     GatewayPort::new(&served[i], scope, http.clone(), tunnels.clone(), None).unwrap()
    /// };
    /// assert_eq!((port(0).kind, port(0).listen_addr()), (ServerKind::Http, "127.0.0.1:8080".parse().unwrap()));
    /// assert_eq!((port(1).kind, port(1).listen_addr()), (ServerKind::Tcp, "0.0.0.0:9000".parse().unwrap()));
    /// ```
    pub fn new(
        served: &ServedPort<'_>,
        scope: RouteScope,
        http: HttpService,
        tunnels: Tunnels,
        credentials: Option<&std::path::Path>,
    ) -> Result<Self, GatewayError> {
        let mut servers = Vec::with_capacity(served.servers.len());
        for server in &served.servers {
            let hosts = server
                .server
                .scoped_hosts(None)
                .map(|(_, host)| host.to_ascii_lowercase())
                .collect();
            let handling = match server.server.kind() {
                Some(ServerKind::Http) => Handling::Http {
                    https_redirect: server.server.https_redirect(),
                },
                Some(ServerKind::Tcp) => Handling::Tcp,
                Some(ServerKind::TlsPassthrough) => Handling::Passthrough,
                Some(ServerKind::Https) => terminate(server, credentials)?,
                None => {
                    return Err(GatewayError::NotServable {
                        server: server.label(),
                    });
                }
            };
            #[cfg(not(feature = "tls"))]
            if matches!(handling, Handling::Passthrough) {
                return Err(GatewayError::PassthroughNeedsTls {
                    server: server.label(),
                });
            }
            servers.push(PortServer { hosts, handling });
        }
        let hosts_of = |plain_http: fn(&Handling) -> bool| -> Arc<[String]> {
            servers
                .iter()
                .filter(|s| plain_http(&s.handling))
                .flat_map(|s| s.hosts.iter().cloned())
                .collect()
        };
        let http_hosts = hosts_of(|h| matches!(h, Handling::Http { .. }));
        let redirect_hosts = hosts_of(|h| {
            matches!(
                h,
                Handling::Http {
                    https_redirect: true
                }
            )
        });
        Ok(GatewayPort {
            port: served.port,
            bind: served.bind.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            kind: served.kind,
            scope,
            http,
            http_hosts,
            redirect_hosts,
            servers,
            tunnels,
        })
    }

    /// The address to listen on (`bind:port`).
    ///
    /// ```
    /// use mesh_proxy::{Sidecar, sidecar::SidecarSettings};
    /// use mesh_route::config::Config;
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: edge, namespace: shop}\n\
    ///             spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 8080, name: http, protocol: HTTP}, bind: 127.0.0.1, hosts: ['*']}]}\n";
    /// let mut settings = SidecarSettings { disable_access_log: true, ..SidecarSettings::default() };
    /// settings.workload.labels.insert("istio".into(), "ingressgateway".into());
    /// let sidecar = Sidecar::with_settings(Config::from_yaml_str(yaml).unwrap().config, settings).unwrap();
    /// assert_eq!(sidecar.gateway_port(8080).unwrap().listen_addr(), "127.0.0.1:8080".parse().unwrap());
    /// ```
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }

    /// The TLS configurations of the port's terminating servers (to reload when their files
    /// change).
    ///
    /// ```
    /// use mesh_proxy::{Sidecar, sidecar::SidecarSettings};
    /// use mesh_route::config::Config;
    /// let dir = std::env::temp_dir().join(format!("mesh-proxy-doc-tls-configs-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let certified = rcgen::generate_simple_self_signed(vec!["shop.example.com".to_string()]).unwrap();
    /// std::fs::write(dir.join("shop.crt"), certified.cert.pem()).unwrap();
    /// std::fs::write(dir.join("shop.key"), certified.signing_key.serialize_pem()).unwrap();
    /// let yaml = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: edge, namespace: shop}\n\
    ///             spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 443, name: https, protocol: HTTPS}, \
    ///             hosts: [shop.example.com], tls: {mode: SIMPLE, credentialName: shop}}]}\n";
    /// let mut settings = SidecarSettings { disable_access_log: true, gateway_credentials: Some(dir.clone()), ..SidecarSettings::default() };
    /// settings.workload.labels.insert("istio".into(), "ingressgateway".into());
    /// let sidecar = Sidecar::with_settings(Config::from_yaml_str(yaml).unwrap().config, settings).unwrap();
    /// assert_eq!(sidecar.gateway_port(443).unwrap().tls_configs().count(), 1);
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_configs(&self) -> impl Iterator<Item = &Arc<ReloadingServerConfig>> {
        self.servers.iter().filter_map(|s| match &s.handling {
            Handling::Terminate(config) => Some(config),
            _ => None,
        })
    }

    /// Handles one connection accepted on a TLS or TCP port (an HTTP port's connections are
    /// plain HTTP, served by the listener); `http` serves what a terminating server decrypts.
    pub(crate) async fn handle_connection(
        self: Arc<Self>,
        stream: TcpStream,
        downstream: DownstreamAddr,
        watcher: hyper_util::server::graceful::Watcher,
        http: HttpServer,
    ) {
        let remote = downstream.remote;
        if self.kind == ServerKind::Tcp {
            self.tunnel(stream, None, http.idle_timeout()).await;
            return;
        }
        #[cfg(feature = "tls")]
        {
            use crate::tls::client_hello::{ClientHello, peek_client_hello};
            let sni = match peek_client_hello(&stream, HANDSHAKE_TIMEOUT).await {
                Ok(ClientHello::Hello { server_name }) => server_name,
                Ok(ClientHello::NotTls) => {
                    tracing::debug!(%remote, port = self.port, "not TLS on a TLS gateway port: closed");
                    return;
                }
                Ok(ClientHello::Incomplete) | Err(_) => return,
            };
            let Some(server) = server_for(&self.servers, sni.as_deref()) else {
                tracing::debug!(%remote, port = self.port, sni = ?sni, "no Gateway server for this SNI: closed");
                return;
            };
            match &server.handling {
                Handling::Terminate(config) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(config.current());
                    let accepted =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    match accepted {
                        Ok(Ok(tls)) => {
                            let allowed = GatewayConnection {
                                hosts: server.hosts.clone(),
                                tls: true,
                            };
                            let served = http.serve(tls, watcher, downstream, None, Some(allowed));
                            if let Err(error) = served.await {
                                tracing::debug!(%error, %remote, "gateway connection ended with error");
                            }
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%error, %remote, sni = ?sni, "gateway TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%remote, "gateway TLS handshake timed out"),
                    }
                }
                Handling::Passthrough => {
                    self.tunnel(stream, sni.as_deref(), http.idle_timeout())
                        .await
                }
                Handling::Http { .. } | Handling::Tcp => {}
            }
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = (downstream, watcher, http, remote);
            drop(stream);
        }
    }

    /// Tunnels `stream` along the port's `tcp` route (or, with `sni`, its `tls` route), closed
    /// after `idle` without traffic.
    async fn tunnel(&self, stream: TcpStream, sni: Option<&str>, idle: Option<Duration>) {
        match self.tunnels.open(self.scope, "", self.port, sni).await {
            Ok((upstream, counters)) => relay(stream, upstream.stream, counters, idle).await,
            Err(TunnelError::Failed(error)) => {
                tracing::debug!(%error, port = self.port, "gateway tunnel: upstream unreachable");
            }
            Err(TunnelError::NoRoute | TunnelError::UnknownHost) => {
                tracing::debug!(port = self.port, sni = ?sni, "gateway tunnel: no route");
            }
        }
    }
}

/// The server of `servers` for a connection naming `sni` (`None`: no SNI): an exact host first,
/// then the longest wildcard, then `*`.
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
fn server_for<'a>(servers: &'a [PortServer], sni: Option<&str>) -> Option<&'a PortServer> {
    let specificity = |pattern: &str| match sni {
        Some(name) if pattern == name => Some(usize::MAX),
        Some(name) if pattern != "*" && host_matches(pattern, name) => Some(pattern.len()),
        _ if pattern == "*" => Some(0),
        _ => None,
    };
    // The first server wins a tie (`max_by_key` keeps the last maximum: hence `rev`).
    servers
        .iter()
        .rev()
        .filter_map(|s| Some((s.hosts.iter().filter_map(|h| specificity(h)).max()?, s)))
        .max_by_key(|(rank, _)| *rank)
        .map(|(_, s)| s)
}

/// The TLS termination of an `HTTPS` server, from its files.
#[cfg(feature = "tls")]
fn terminate(
    server: &mesh_route::config::gateway::ServedServer<'_>,
    credentials: Option<&std::path::Path>,
) -> Result<Handling, GatewayError> {
    let settings = server.server.tls.clone().unwrap_or_default();
    let at = |source: crate::tls::TlsError| GatewayError::Certificates {
        server: server.label(),
        origin: server.gateway.origin.to_string(),
        source,
    };
    let files = GatewayCertificateFiles::resolve(&settings, credentials).map_err(at)?;
    let config = ReloadingServerConfig::load(settings, files).map_err(at)?;
    Ok(Handling::Terminate(Arc::new(config)))
}

/// Without the `tls` feature, a terminating server is refused.
#[cfg(not(feature = "tls"))]
fn terminate(
    server: &mesh_route::config::gateway::ServedServer<'_>,
    _credentials: Option<&std::path::Path>,
) -> Result<Handling, GatewayError> {
    Err(GatewayError::TerminationNeedsTls {
        server: server.label(),
    })
}

/// The host a request names (lower case, without port).
fn request_host<B>(request: &Request<B>) -> Option<String> {
    let authority = mesh_route::matcher::request_authority(request)?;
    mesh_route::host::split_authority(authority).map(|(host, _)| host)
}

/// Whether a server with `hosts` serves `host`.
fn serves(hosts: &[String], host: &str) -> bool {
    hosts.iter().any(|pattern| host_matches(pattern, host))
}

/// Gives an HTTP/1.x request that arrived over TLS the `https` scheme, as Envoy sets `:scheme`
/// from the connection: hyper hands HTTP/1.1 requests over in origin form (no scheme), which
/// routing would take for `http` (`match.scheme`, a `redirect`'s default scheme). The URI
/// becomes absolute, its authority the `Host` header's when it had none; the forwarder points
/// the URI at the upstream anyway, which gets origin form and the same `Host`. HTTP/2 requests
/// keep the `:scheme` the client sent, and a `CONNECT` its authority-form target.
fn set_https_scheme<B>(request: &mut Request<B>) {
    if request.version() >= http::Version::HTTP_2
        || request.method() == http::Method::CONNECT
        || request.uri().scheme() == Some(&http::uri::Scheme::HTTPS)
    {
        return;
    }
    let authority = match request.uri().authority() {
        Some(authority) => authority.clone(),
        None => match request
            .headers()
            .get(http::header::HOST)
            .and_then(|host| http::uri::Authority::try_from(host.as_bytes()).ok())
        {
            Some(authority) => authority,
            None => return,
        },
    };
    if let Some(uri) =
        crate::upstream::absolute_uri(request.uri().clone(), http::uri::Scheme::HTTPS, authority)
    {
        *request.uri_mut() = uri;
    }
}

/// `301` to the same host and path over `https://` (`httpsRedirect`).
fn https_redirect<B>(host: &str, request: &Request<B>) -> Response<Body> {
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(value) = http::HeaderValue::try_from(format!("https://{host}{path}")) {
        response.headers_mut().insert(http::header::LOCATION, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port_with(hosts: &[&[&str]]) -> Vec<PortServer> {
        hosts
            .iter()
            .map(|hosts| PortServer {
                hosts: hosts.iter().map(|h| h.to_string()).collect(),
                handling: Handling::Passthrough,
            })
            .collect()
    }

    #[test]
    fn http1_over_tls_gets_the_https_scheme() {
        let get = |uri: &str, host: Option<&str>, version: http::Version| {
            let mut builder = Request::get(uri).version(version);
            if let Some(host) = host {
                builder = builder.header(http::header::HOST, host);
            }
            let mut request = builder.body(()).unwrap();
            set_https_scheme(&mut request);
            request
        };
        let origin = get(
            "/items?x=1",
            Some("shop.example.com:8443"),
            http::Version::HTTP_11,
        );
        assert_eq!(origin.uri(), "https://shop.example.com:8443/items?x=1");
        assert_eq!(
            origin.headers()[http::header::HOST],
            "shop.example.com:8443"
        );
        // Absolute form: the URI's authority stays, the scheme is the connection's.
        let absolute = get(
            "http://api.example.com/a",
            Some("other"),
            http::Version::HTTP_11,
        );
        assert_eq!(absolute.uri(), "https://api.example.com/a");
        let old = get("/", Some("shop.example.com"), http::Version::HTTP_10);
        assert_eq!(old.uri(), "https://shop.example.com/");
        // Without a usable host there is no authority to give: left as it is.
        assert_eq!(get("/a", None, http::Version::HTTP_11).uri(), "/a");
        assert_eq!(get("/a", Some("a b"), http::Version::HTTP_11).uri(), "/a");
        // HTTP/2 keeps the `:scheme` the client sent.
        let h2 = get("http://shop.example.com/a", None, http::Version::HTTP_2);
        assert_eq!(h2.uri(), "http://shop.example.com/a");
        let mut connect = Request::connect("db.example.com:443")
            .header(http::header::HOST, "db.example.com:443")
            .body(())
            .unwrap();
        set_https_scheme(&mut connect);
        assert_eq!(connect.uri(), "db.example.com:443");
    }

    #[test]
    fn sni_picks_the_most_specific_server() {
        let servers = port_with(&[&["*"], &["*.example.com"], &["api.example.com"]]);
        let pick = |sni: Option<&str>| {
            server_for(&servers, sni)
                .map(|s| servers.iter().position(|x| std::ptr::eq(x, s)).unwrap())
        };
        assert_eq!(pick(Some("api.example.com")), Some(2));
        assert_eq!(pick(Some("www.example.com")), Some(1));
        assert_eq!(pick(Some("other.org")), Some(0));
        assert_eq!(pick(None), Some(0));
        // Two servers for one name: the first (as Istio keeps the first).
        let twice = port_with(&[&["api.example.com"], &["api.example.com"]]);
        let first = server_for(&twice, Some("api.example.com")).unwrap();
        assert!(std::ptr::eq(first, &twice[0]));
        let named = port_with(&[&["api.example.com"]]);
        assert!(server_for(&named, Some("other.org")).is_none());
        assert!(server_for(&named, None).is_none());
    }
}

/// How often Gateway certificate files are checked for changes.
pub const CERTIFICATE_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The Gateway ports a set of listeners serves (bound at start) and where their current state
/// comes from: one sidecar's, or the configuration in force of a live one.
#[derive(Clone)]
pub(crate) struct GatewaySource {
    /// `(port, kind, address to listen on)` of each port bound at start.
    pub(crate) ports: Vec<(u16, ServerKind, SocketAddr)>,
    current: Arc<dyn Fn() -> Arc<[Arc<GatewayPort>]> + Send + Sync>,
}

impl GatewaySource {
    /// The ports of `sidecar`, which never change.
    pub(crate) fn of(sidecar: &crate::Sidecar) -> Self {
        let ports = sidecar.shared_gateway_ports();
        GatewaySource::following(&ports.clone(), move || ports.clone())
    }

    /// The ports of `live`'s configuration in force (those of `at_start` are bound).
    pub(crate) fn live(live: &crate::LiveSidecar) -> Self {
        let at_start = live.peek().shared_gateway_ports();
        let live = live.clone();
        GatewaySource::following(&at_start, move || live.peek().shared_gateway_ports())
    }

    fn following(
        at_start: &[Arc<GatewayPort>],
        current: impl Fn() -> Arc<[Arc<GatewayPort>]> + Send + Sync + 'static,
    ) -> Self {
        GatewaySource {
            ports: at_start
                .iter()
                .map(|g| (g.port, g.kind, g.listen_addr()))
                .collect(),
            current: Arc::new(current),
        }
    }

    /// Port `port` as the configuration in force has it.
    fn port(&self, port: u16) -> Option<Arc<GatewayPort>> {
        (self.current)().iter().find(|g| g.port == port).cloned()
    }
}

/// The HTTP service of gateway port `port` in the configuration in force when each request
/// arrives (`404` once a configuration no longer has the port).
#[derive(Clone)]
struct GatewayHttp {
    source: GatewaySource,
    port: u16,
}

impl Service<Request<Body>> for GatewayHttp {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response<Body>, BoxError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let Some(port) = self.source.port(self.port) else {
            return Box::pin(std::future::ready(Err(
                mesh_core::MeshError::RouteNotFound.into()
            )));
        };
        let (allowed, tls) = match request.extensions().get::<GatewayConnection>() {
            Some(connection) => (connection.hosts.clone(), connection.tls),
            None => (port.http_hosts.clone(), false),
        };
        let Some(host) = request_host(&request).filter(|host| serves(&allowed, host)) else {
            return Box::pin(std::future::ready(Err(
                mesh_core::MeshError::RouteNotFound.into()
            )));
        };
        if serves(&port.redirect_hosts, &host) {
            return Box::pin(std::future::ready(Ok(https_redirect(&host, &request))));
        }
        // The gateway is the edge: the scheme is the one the client used, whatever it claims.
        let scheme = if tls { "https" } else { "http" };
        if tls {
            set_https_scheme(&mut request);
        }
        request.headers_mut().insert(
            http::HeaderName::from_static("x-forwarded-proto"),
            http::HeaderValue::from_static(scheme),
        );
        Box::pin(port.http.clone().oneshot(request))
    }
}

/// Serves gateway port `port` on `listener` until `stopped`: plain HTTP for an `HTTP` port,
/// otherwise each connection as [`GatewayPort::handle_connection`] says.
pub(crate) async fn serve_gateway_port(
    source: GatewaySource,
    port: u16,
    kind: ServerKind,
    listener: tokio::net::TcpListener,
    stopped: tokio::sync::watch::Receiver<bool>,
    drain: crate::listener::DrainDuration,
    limits: crate::limits::ListenerLimits,
) {
    let http = HttpService::new(GatewayHttp {
        source: source.clone(),
        port,
    });
    if kind == ServerKind::Http {
        let options = crate::listener::ServeOptions { tls: None, limits };
        crate::listener::serve_with(listener, http, stopped, drain, options).await;
        return;
    }
    let server = HttpServer::new(http, &limits);
    crate::listener::accept_loop(
        listener,
        stopped,
        drain,
        move |stream, downstream, watcher| {
            let state = source.port(port);
            let server = server.clone();
            async move {
                if let Some(state) = state {
                    state
                        .handle_connection(stream, downstream, watcher, server)
                        .await;
                }
            }
        },
    )
    .await;
}

/// Every `interval` until `stopped`, reloads the certificates of the configuration in force
/// whose files changed (a broken file is logged and the previous certificate kept).
#[cfg(feature = "tls")]
pub(crate) async fn watch_certificates(
    source: GatewaySource,
    interval: Duration,
    stopped: tokio::sync::watch::Receiver<bool>,
) {
    let configs = move || {
        (source.current)()
            .iter()
            .flat_map(|port| port.tls_configs().cloned())
            .collect()
    };
    ReloadingServerConfig::watch(configs, interval, stopped).await;
}

/// Without the `tls` feature there are no certificates to reload.
#[cfg(not(feature = "tls"))]
pub(crate) async fn watch_certificates(
    _source: GatewaySource,
    _interval: Duration,
    _stopped: tokio::sync::watch::Receiver<bool>,
) {
}
