//! The sidecar as an ingress gateway, end to end, with certificates made in the test: a SIMPLE
//! HTTPS port serves each host's own certificate by SNI and routes to the catalog; a MUTUAL
//! port refuses clients without a certificate or with one of another CA; `httpsRedirect`
//! answers 301; a TCP port carries an echo service and counts it in `istio_tcp_*`; a TLS
//! PASSTHROUGH port forwards the untouched TLS by SNI; certificates reload when their files
//! change. Through the outbound listener, CONNECT tunnels to registered TCP services, and
//! `REGISTRY_ONLY` refuses unknown TCP and HTTP destinations (BlackHoleCluster).

mod support;

#[path = "../examples/certs.rs"]
#[allow(dead_code)]
mod certs;

use certs::{MeshCa, WorkloadPem};
use mesh::demo::CatalogServer;
use mesh::proxy::{RunningSidecar, Sidecar, sidecar::SidecarSettings};
use mesh::route::config::Config;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};
use support::metrics::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A scratch directory for certificate files, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mesh-gateway-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Writes `NAME.crt`, `NAME.key` and `NAME-ca.crt` (a credential) and returns the paths.
    fn credential(&self, name: &str, pem: &WorkloadPem) {
        std::fs::write(self.0.join(format!("{name}.crt")), &pem.cert_chain).unwrap();
        std::fs::write(self.0.join(format!("{name}.key")), &pem.key).unwrap();
        std::fs::write(self.0.join(format!("{name}-ca.crt")), &pem.root).unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A TCP service that answers every read with `prefix` and the bytes read.
async fn echo(prefix: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let mut reply = prefix.to_vec();
                    reply.extend_from_slice(&buf[..n]);
                    if stream.write_all(&reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// The gateway sidecar (`istio: ingressgateway`) with `yaml`, its ports mapped to free
/// loopback ports, credentials read from `scratch`.
async fn gateway(yaml: &str, ports: &[u16], scratch: &Scratch) -> (RunningSidecar, Metrics) {
    gateway_with(yaml, ports, scratch, support::quiet()).await
}

/// [`gateway`], with `settings`.
async fn gateway_with(
    yaml: &str,
    ports: &[u16],
    scratch: &Scratch,
    settings: SidecarSettings,
) -> (RunningSidecar, Metrics) {
    let config = match Config::from_yaml_str(yaml) {
        Ok(loaded) => loaded.config,
        Err(problems) => panic!("test config invalid: {problems:#?}"),
    };
    let (recorder, metrics) = Metrics::recorder();
    let mut settings = SidecarSettings {
        metrics: Some(recorder),
        gateway_credentials: Some(scratch.0.clone()),
        ..settings
    };
    settings
        .workload
        .labels
        .insert("istio".into(), "ingressgateway".into());
    let mut options = support::ephemeral();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    options.gateway_listen = ports.iter().map(|p| (*p, any)).collect();
    let running = Sidecar::with_settings(config, settings)
        .unwrap()
        .start(&options)
        .await
        .unwrap();
    (running, metrics)
}

fn port(running: &RunningSidecar, port: u16) -> SocketAddr {
    running
        .addr(&format!("gateway-{port}"))
        .unwrap_or_else(|| panic!("gateway-{port} listens: {:?}", running.listeners()))
}

/// A TLS client trusting `ca`, presenting `client` when given.
fn client_config(ca: &MeshCa, client: Option<&WorkloadPem>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some(pem) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(pem.cert_chain.as_bytes()).unwrap()],
                rustls::pki_types::PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Opens TLS to `addr` with `sni`, sends one HTTP/1.1 GET for `path`, and returns the
/// certificate the server showed and the response text.
async fn https_get(
    addr: SocketAddr,
    sni: &str,
    path: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<(CertificateDer<'static>, String)> {
    https_get_host(addr, sni, sni, path, config).await
}

/// [`https_get`] with `Host: host`.
async fn https_get_host(
    addr: SocketAddr,
    sni: &str,
    host: &str,
    path: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<(CertificateDer<'static>, String)> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let mut tls = connector
        .connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp)
        .await?;
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await?;
    Ok((leaf, String::from_utf8_lossy(&response).into_owned()))
}

fn leaf_of(pem: &WorkloadPem) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.cert_chain.as_bytes()).unwrap()
}

/// The catalog as `shop.example.com` and `api.example.com`, behind a Gateway `edge`.
fn shop(catalog: SocketAddr, servers: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: catalog, namespace: shop}}\n\
         spec:\n  hosts: [catalog.shop.svc.cluster.local]\n  resolution: STATIC\n  \
         ports: [{{number: 80, name: http}}]\n  endpoints: [{{address: {ip}, ports: {{http: {port}}}}}]\n\
         ---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: edge, namespace: shop}}\n\
         spec:\n  selector: {{istio: ingressgateway}}\n  servers:\n{servers}\
         ---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: shop, namespace: shop}}\n\
         spec:\n  hosts: [shop.example.com, api.example.com]\n  gateways: [edge]\n  \
         http: [{{route: [{{destination: {{host: catalog.shop.svc.cluster.local}}}}]}}]\n",
        ip = catalog.ip(),
        port = catalog.port(),
    )
}

#[tokio::test]
async fn simple_tls_serves_each_hosts_certificate_by_sni_and_routes() {
    let scratch = Scratch::new("sni");
    let ca = MeshCa::new("edge-ca").unwrap();
    let shop_cert = ca.server(&["shop.example.com"]).unwrap();
    let api_cert = ca.server(&["api.example.com"]).unwrap();
    scratch.credential("shop", &shop_cert);
    // The second host names its files directly.
    std::fs::write(scratch.0.join("api.pem"), &api_cert.cert_chain).unwrap();
    std::fs::write(scratch.0.join("api-key.pem"), &api_cert.key).unwrap();
    let catalog = CatalogServer::start("v1", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let servers = format!(
        "  - port: {{number: 443, name: https-shop, protocol: HTTPS}}\n    hosts: [shop.example.com]\n    \
         tls: {{mode: SIMPLE, credentialName: shop}}\n\
         \x20 - port: {{number: 443, name: https-api, protocol: HTTPS}}\n    hosts: [api.example.com]\n    \
         tls: {{mode: SIMPLE, serverCertificate: {dir}/api.pem, privateKey: {dir}/api-key.pem, minProtocolVersion: TLSV1_2}}\n",
        dir = scratch.0.display()
    );
    let (running, metrics) = gateway(&shop(catalog.addr(), &servers), &[443], &scratch).await;
    let addr = port(&running, 443);
    let config = client_config(&ca, None);

    let (leaf, response) = https_get(addr, "shop.example.com", "/items", config.clone())
        .await
        .unwrap();
    assert_eq!(
        leaf,
        leaf_of(&shop_cert),
        "shop.example.com gets its own certificate"
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("v1"), "routed to the catalog: {response}");

    let (leaf, response) = https_get(addr, "api.example.com", "/items", config.clone())
        .await
        .unwrap();
    assert_eq!(
        leaf,
        leaf_of(&api_cert),
        "api.example.com gets its own certificate"
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // The Host must be one of the server the SNI chose: another server's host is not served
    // through this connection's TLS settings.
    let (_, response) = https_get_host(
        addr,
        "api.example.com",
        "shop.example.com",
        "/items",
        config.clone(),
    )
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");

    // A name no server has: the connection is closed without a handshake.
    assert!(
        https_get(addr, "other.example.com", "/", config)
            .await
            .is_err()
    );

    let series = metrics.wait_for_requests(2).await;
    assert!(
        series
            .iter()
            .any(|(labels, _)| labels["reporter"] == "source"
                && labels["destination_service"] == "catalog.shop.svc.cluster.local"
                && labels["response_code"] == "200"),
        "gateway requests are reported: {series:#?}"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_refuses_clients_without_a_certificate_of_its_ca() {
    let scratch = Scratch::new("mutual");
    let ca = MeshCa::new("edge-ca").unwrap();
    let server = ca.server(&["shop.example.com"]).unwrap();
    scratch.credential("shop", &server);
    let catalog = CatalogServer::start("v1", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let servers = "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [shop.example.com]\n    \
                   tls: {mode: MUTUAL, credentialName: shop}\n";
    let (running, _) = gateway(&shop(catalog.addr(), servers), &[443], &scratch).await;
    let addr = port(&running, 443);

    let client = ca.server(&["client.example.com"]).unwrap();
    let (_, response) = https_get(
        addr,
        "shop.example.com",
        "/items",
        client_config(&ca, Some(&client)),
    )
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    let anonymous = https_get(addr, "shop.example.com", "/items", client_config(&ca, None)).await;
    assert!(
        anonymous.is_err(),
        "a client without a certificate is refused: {anonymous:?}"
    );

    let stranger_ca = MeshCa::new("stranger").unwrap();
    let stranger = stranger_ca.server(&["client.example.com"]).unwrap();
    let foreign = https_get(
        addr,
        "shop.example.com",
        "/items",
        client_config(&ca, Some(&stranger)),
    )
    .await;
    assert!(
        foreign.is_err(),
        "a client of another CA is refused: {foreign:?}"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn https_redirect_answers_301_on_the_plaintext_port() {
    let scratch = Scratch::new("redirect");
    let catalog = CatalogServer::start("v1", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let servers = "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [shop.example.com]\n    \
                   tls: {httpsRedirect: true}\n\
                   \x20 - port: {number: 8080, name: http-plain, protocol: HTTP}\n    hosts: [api.example.com]\n";
    let (running, _) = gateway(&shop(catalog.addr(), servers), &[80, 8080], &scratch).await;
    let client = reqwest_like_get(port(&running, 80), "shop.example.com", "/items?x=1").await;
    assert!(client.starts_with("HTTP/1.1 301"), "{client}");
    assert!(
        client
            .to_ascii_lowercase()
            .contains("location: https://shop.example.com/items?x=1"),
        "{client}"
    );
    // The other HTTP port has no redirect: it routes.
    let plain = reqwest_like_get(port(&running, 8080), "api.example.com", "/items").await;
    assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
    // A host the port's servers do not expose is not routed there.
    let unknown = reqwest_like_get(port(&running, 8080), "shop.example.com", "/items").await;
    assert!(unknown.starts_with("HTTP/1.1 404"), "{unknown}");
    running.shutdown().await;
}

/// One plaintext HTTP/1.1 GET, the whole response as text.
async fn reqwest_like_get(addr: SocketAddr, host: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

/// An echo service as `echo.shop.svc.cluster.local:9000`, a Gateway with `servers`, and a
/// VirtualService with `routes` attached to it.
fn tcp_config(echo: SocketAddr, servers: &str, routes: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: echo, namespace: shop}}\n\
         spec:\n  hosts: [echo.shop.svc.cluster.local]\n  resolution: STATIC\n  \
         ports: [{{number: 9000, name: tcp, protocol: TCP}}]\n  endpoints: [{{address: {ip}, ports: {{tcp: {port}}}}}]\n\
         ---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: edge, namespace: shop}}\n\
         spec:\n  selector: {{istio: ingressgateway}}\n  servers:\n{servers}\
         ---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: echo, namespace: shop}}\n\
         spec:\n  hosts: [\"*\"]\n  gateways: [edge]\n{routes}",
        ip = echo.ip(),
        port = echo.port(),
    )
}

#[tokio::test]
async fn a_tcp_echo_service_works_through_the_gateway_and_is_counted() {
    let scratch = Scratch::new("tcp");
    let echo_addr = echo(b"echo:").await;
    let servers = "  - port: {number: 9000, name: tcp, protocol: TCP}\n    hosts: [\"*\"]\n";
    let routes = "  tcp:\n  - match: [{port: 9000}]\n    route: [{destination: {host: echo.shop.svc.cluster.local, port: {number: 9000}}}]\n";
    let (running, metrics) =
        gateway(&tcp_config(echo_addr, servers, routes), &[9000], &scratch).await;
    let mut stream = TcpStream::connect(port(&running, 9000)).await.unwrap();
    stream.write_all(b"hello").await.unwrap();
    let mut reply = [0u8; 10];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"echo:hello");
    drop(stream);
    let counted = wait_for_counter(&metrics, "istio_tcp_connections_closed_total", 1).await;
    let labels = &counted[0].0;
    assert_eq!(labels["request_protocol"], "tcp");
    assert_eq!(labels["destination_service"], "echo.shop.svc.cluster.local");
    assert_eq!(labels["destination_service_name"], "echo");
    assert_eq!(labels["destination_service_namespace"], "shop");
    assert!(!labels.contains_key("response_code"), "{labels:?}");
    assert_eq!(counter(&metrics, "istio_tcp_received_bytes_total"), 5);
    assert_eq!(counter(&metrics, "istio_tcp_sent_bytes_total"), 10);
    assert_eq!(counter(&metrics, "istio_tcp_connections_opened_total"), 1);
    running.shutdown().await;
}

#[tokio::test]
async fn an_idle_tunnel_is_closed_and_a_busy_one_is_not() {
    let scratch = Scratch::new("idle");
    let echo_addr = echo(b"echo:").await;
    let servers = "  - port: {number: 9000, name: tcp, protocol: TCP}\n    hosts: [\"*\"]\n";
    let routes = "  tcp:\n  - route: [{destination: {host: echo.shop.svc.cluster.local, port: {number: 9000}}}]\n";
    let idle = Duration::from_millis(500);
    let settings = SidecarSettings {
        limits: mesh::proxy::limits::ListenerLimits {
            idle_timeout: Some(idle),
            ..Default::default()
        },
        ..support::quiet()
    };
    let config = tcp_config(echo_addr, servers, routes);
    let (running, _) = gateway_with(&config, &[9000], &scratch, settings).await;
    let addr = port(&running, 9000);
    let mut busy = TcpStream::connect(addr).await.unwrap();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    silent.write_all(b"hi").await.unwrap();
    let mut reply = [0u8; 7];
    silent.read_exact(&mut reply).await.unwrap();
    // The busy one talks every 100 ms for 2 s (four idle timeouts) and stays open.
    for _ in 0..20 {
        busy.write_all(b"x").await.unwrap();
        let mut echoed = [0u8; 6];
        busy.read_exact(&mut echoed).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The silent one was closed within two timeouts of its last byte.
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(1), silent.read_to_end(&mut rest)).await;
    assert!(
        matches!(ended, Ok(Ok(0))),
        "the idle tunnel is closed: {ended:?}"
    );
    running.shutdown().await;
}

/// Every series of counter `name`, with its count, once their sum reaches `n` (3 s at most).
async fn wait_for_counter(
    metrics: &Metrics,
    name: &str,
    n: u64,
) -> Vec<(support::metrics::Labels, u64)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let series = metrics.counters(name);
        if series.iter().map(|(_, c)| c).sum::<u64>() >= n || std::time::Instant::now() > deadline {
            return series;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The sum of counter `name` over its series.
fn counter(metrics: &Metrics, name: &str) -> u64 {
    metrics.counters(name).iter().map(|(_, c)| c).sum()
}

#[tokio::test]
async fn tls_passthrough_forwards_the_untouched_tls_by_sni() {
    let scratch = Scratch::new("passthrough");
    let ca = MeshCa::new("db-ca").unwrap();
    let db_cert = ca.server(&["db.example.com"]).unwrap();
    // The upstream terminates TLS itself, with its own certificate, and echoes.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_of(&db_cert)],
            rustls::pki_types::PrivateKeyDer::from_pem_slice(db_cert.key.as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut buf = [0u8; 64];
                if let Ok(n) = tls.read(&mut buf).await {
                    let _ = tls.write_all(&[b"db:", &buf[..n]].concat()).await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    let servers = "  - port: {number: 443, name: tls, protocol: TLS}\n    hosts: [db.example.com]\n    \
                   tls: {mode: PASSTHROUGH}\n";
    let routes = "  tls:\n  - match: [{port: 443, sniHosts: [db.example.com]}]\n    \
                  route: [{destination: {host: echo.shop.svc.cluster.local, port: {number: 9000}}}]\n";
    let (running, metrics) =
        gateway(&tcp_config(upstream, servers, routes), &[443], &scratch).await;

    let tcp = TcpStream::connect(port(&running, 443)).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_config(&ca, None));
    let mut tls = connector
        .connect(ServerName::try_from("db.example.com").unwrap(), tcp)
        .await
        .expect("the handshake reaches the upstream");
    assert_eq!(
        tls.get_ref().1.peer_certificates().unwrap()[0],
        leaf_of(&db_cert),
        "the client sees the upstream's own certificate: the gateway did not terminate"
    );
    tls.write_all(b"ping").await.unwrap();
    let mut reply = Vec::new();
    tls.read_to_end(&mut reply).await.unwrap();
    assert_eq!(reply, b"db:ping");
    drop(tls);
    assert!(
        !wait_for_counter(&metrics, "istio_tcp_connections_closed_total", 1)
            .await
            .is_empty()
    );
    running.shutdown().await;
}

#[tokio::test]
async fn certificates_reload_when_their_files_change() {
    let scratch = Scratch::new("reload");
    let ca = MeshCa::new("edge-ca").unwrap();
    let first = ca.server(&["shop.example.com"]).unwrap();
    scratch.credential("shop", &first);
    let catalog = CatalogServer::start("v1", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let servers = "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [shop.example.com]\n    \
                   tls: {mode: SIMPLE, credentialName: shop}\n";
    let (running, _) = gateway(&shop(catalog.addr(), servers), &[443], &scratch).await;
    let addr = port(&running, 443);
    let config = client_config(&ca, None);
    let (leaf, _) = https_get(addr, "shop.example.com", "/items", config.clone())
        .await
        .unwrap();
    assert_eq!(leaf, leaf_of(&first));

    let second = ca.server(&["shop.example.com"]).unwrap();
    scratch.credential("shop", &second);
    // Make the change visible even where file times are coarse.
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    for file in ["shop.crt", "shop.key"] {
        std::fs::File::options()
            .append(true)
            .open(scratch.0.join(file))
            .unwrap()
            .set_modified(later)
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (leaf, _) = https_get(addr, "shop.example.com", "/items", config.clone())
            .await
            .unwrap();
        if leaf == leaf_of(&second) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate is served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.shutdown().await;
}

/// An echo service as `echo.shop.svc.cluster.local:9000` for an outbound sidecar, under
/// outbound traffic policy `mode`.
async fn outbound_with_echo(mode: &str) -> (RunningSidecar, Metrics, SocketAddr) {
    outbound_with_echo_and(&format!("outboundTrafficPolicy: {{mode: {mode}}}")).await
}

/// [`outbound_with_echo`], with `mesh` as the MeshConfig's `spec` fields.
async fn outbound_with_echo_and(mesh: &str) -> (RunningSidecar, Metrics, SocketAddr) {
    let echo_addr = echo(b"echo:").await;
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: echo, namespace: shop}}\n\
         spec:\n  hosts: [echo.shop.svc.cluster.local]\n  resolution: STATIC\n  \
         ports: [{{number: 9000, name: tcp, protocol: TCP}}]\n  endpoints: [{{address: {ip}, ports: {{tcp: {port}}}}}]\n\
         ---\napiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {{name: mesh}}\n\
         spec: {{{mesh}}}\n",
        ip = echo_addr.ip(),
        port = echo_addr.port(),
    );
    let (recorder, metrics) = Metrics::recorder();
    let settings = SidecarSettings {
        metrics: Some(recorder),
        ..support::quiet()
    };
    let config = Config::from_yaml_str(&yaml).unwrap().config;
    let running = Sidecar::with_settings(config, settings)
        .unwrap()
        .start(&support::ephemeral())
        .await
        .unwrap();
    (running, metrics, echo_addr)
}

/// Sends `CONNECT target` to the outbound listener; returns the stream and the response head.
async fn connect(running: &RunningSidecar, target: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(running.addr("outbound").unwrap())
        .await
        .unwrap();
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await.unwrap() {
            0 => break,
            _ => head.push(byte[0]),
        }
    }
    (stream, String::from_utf8_lossy(&head).into_owned())
}

#[tokio::test]
async fn connect_tunnels_to_a_registered_tcp_service() {
    let (running, metrics, _) = outbound_with_echo("REGISTRY_ONLY").await;
    let (mut stream, head) = connect(&running, "echo.shop.svc.cluster.local:9000").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    stream.write_all(b"abc").await.unwrap();
    let mut reply = [0u8; 8];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"echo:abc");
    drop(stream);
    let closed = wait_for_counter(&metrics, "istio_tcp_connections_closed_total", 1).await;
    assert_eq!(closed[0].0["destination_service_name"], "echo");
    assert_eq!(counter(&metrics, "istio_tcp_received_bytes_total"), 3);
    running.shutdown().await;
}

#[tokio::test]
async fn registry_only_blocks_unknown_tcp_and_http_destinations() {
    let (running, metrics, _) = outbound_with_echo("REGISTRY_ONLY").await;
    // An unregistered TCP destination that is listening: it must never see a connection.
    let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_addr = target.local_addr().unwrap();
    let (mut stream, head) = connect(&running, &target_addr.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(_))),
        "the connection is closed after the refusal"
    );
    let dialled = tokio::time::timeout(Duration::from_millis(200), target.accept()).await;
    assert!(dialled.is_err(), "the unknown destination was not dialled");
    let blocked = wait_for_counter(&metrics, "istio_tcp_connections_closed_total", 1).await;
    assert_eq!(blocked[0].0["destination_service_name"], "BlackHoleCluster");
    assert_eq!(blocked[0].0["response_flags"], "NR");
    // The CONNECT itself is reported (and logged) like any request.
    let requests = metrics.wait_for_requests(1).await;
    assert!(
        requests.iter().any(
            |(labels, _)| labels["destination_service_name"] == "BlackHoleCluster"
                && labels["response_code"] == "502"
                && labels["response_flags"] == "NR"
        ),
        "{requests:#?}"
    );

    // Plain HTTP to an unknown host: 502 as well.
    let http = reqwest_like_get(
        running.addr("outbound").unwrap(),
        &target_addr.to_string(),
        "/",
    )
    .await;
    assert!(http.starts_with("HTTP/1.1 502"), "{http}");
    running.shutdown().await;
}

#[tokio::test]
async fn allow_any_passes_unknown_tcp_destinations_through() {
    let (running, metrics, _) = outbound_with_echo("ALLOW_ANY").await;
    let other = echo(b"other:").await;
    let (mut stream, head) = connect(&running, &other.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    stream.write_all(b"x").await.unwrap();
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"other:x");
    drop(stream);
    let closed = wait_for_counter(&metrics, "istio_tcp_connections_closed_total", 1).await;
    assert_eq!(
        closed[0].0["destination_service_name"],
        "PassthroughCluster"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn unusable_tls_settings_stop_the_start_with_the_server_named() {
    let scratch = Scratch::new("ciphers");
    let ca = MeshCa::new("edge-ca").unwrap();
    scratch.credential("shop", &ca.server(&["shop.example.com"]).unwrap());
    let servers = "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [shop.example.com]\n    \
                   tls: {mode: SIMPLE, credentialName: shop, cipherSuites: [RC4-MD5]}\n";
    let yaml = shop("127.0.0.1:1".parse().unwrap(), servers);
    let config = Config::from_yaml_str(&yaml).unwrap().config;
    let mut settings = SidecarSettings {
        gateway_credentials: Some(scratch.0.clone()),
        ..support::quiet()
    };
    settings
        .workload
        .labels
        .insert("istio".into(), "ingressgateway".into());
    let error = Sidecar::with_settings(config, settings)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("Gateway shop/edge servers[0]")
            && error.contains("cipherSuites")
            && error.contains("RC4-MD5"),
        "{error}"
    );
}

/// An HTTP/1.1 server answering each request with its own head as the body.
async fn head_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    head.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = stream.write_all(&head).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn the_backend_learns_the_scheme_the_client_used() {
    let scratch = Scratch::new("xfp");
    let ca = MeshCa::new("edge-ca").unwrap();
    scratch.credential("shop", &ca.server(&["shop.example.com"]).unwrap());
    let backend = head_echo().await;
    let servers = "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [shop.example.com]\n    \
                   tls: {mode: SIMPLE, credentialName: shop}\n\
                   \x20 - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [shop.example.com]\n";
    let (running, _) = gateway(&shop(backend, servers), &[443, 80], &scratch).await;
    let (_, response) = https_get(
        port(&running, 443),
        "shop.example.com",
        "/",
        client_config(&ca, None),
    )
    .await
    .unwrap();
    assert!(
        response
            .to_ascii_lowercase()
            .contains("x-forwarded-proto: https"),
        "{response}"
    );
    // A client's own claim is overwritten at the edge.
    let mut stream = TcpStream::connect(port(&running, 80)).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: shop.example.com\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut plain = Vec::new();
    stream.read_to_end(&mut plain).await.unwrap();
    let plain = String::from_utf8_lossy(&plain).to_ascii_lowercase();
    assert!(plain.contains("x-forwarded-proto: http\r\n"), "{plain}");
    assert!(!plain.contains("x-forwarded-proto: https"), "{plain}");
    running.shutdown().await;
}

#[tokio::test]
async fn a_reload_that_changes_the_gateway_ports_is_refused() {
    let servers = |port: u16| {
        format!(
            "  - port: {{number: {port}, name: http, protocol: HTTP}}\n    hosts: [shop.example.com]\n"
        )
    };
    let load = |yaml: &str| Config::from_yaml_str(yaml).unwrap().config;
    let catalog: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut settings = support::quiet();
    settings
        .workload
        .labels
        .insert("istio".into(), "ingressgateway".into());
    let live = mesh::proxy::LiveSidecar::new(load(&shop(catalog, &servers(80))), settings).unwrap();
    let error = live
        .swap(load(&shop(catalog, &servers(8080))))
        .unwrap_err()
        .to_string();
    assert!(error.contains("needs a restart"), "{error}");
    assert_eq!(
        live.current().version(),
        1,
        "the configuration in force stays"
    );
    assert_eq!(live.swap(load(&shop(catalog, &servers(80)))).unwrap(), 2);
}

#[tokio::test]
async fn shutdown_gives_connect_tunnels_the_drain_then_closes_them() {
    let (running, _, _) = outbound_with_echo_and(
        "outboundTrafficPolicy: {mode: REGISTRY_ONLY}, defaultConfig: {terminationDrainDuration: 300ms}",
    )
    .await;
    let (mut stream, head) = connect(&running, "echo.shop.svc.cluster.local:9000").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    stream.write_all(b"a").await.unwrap();
    let mut reply = [0u8; 6];
    stream.read_exact(&mut reply).await.unwrap();
    // The client keeps its tunnel open; shutdown waits the drain, then closes it.
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(5), running.shutdown())
        .await
        .expect("shutdown ends");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the tunnel is closed: {closed:?}"
    );
}

mod scheme {
    //! The scheme of requests at an ingress gateway, end to end: HTTP/1.1 over a SIMPLE TLS port
    //! is `https` to routing (as Envoy sets `:scheme` from the connection), so a `redirect` keeps
    //! `https://` and a `match: [{scheme: {exact: https}}]` is taken, while the plaintext port of
    //! the same Gateway stays `http`; the upstream still gets an origin-form request with the
    //! client's `Host`. HTTP/2 over TLS keeps the `:scheme` the client sent.

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// The edge: `shop.example.com` on a SIMPLE TLS port 443 and a plaintext port 8080 of one
    /// Gateway; `/old` redirects to `/new`, `https` requests go to `secure`, the rest to `plain`.
    struct Edge {
        running: RunningSidecar,
        plain: CatalogServer,
        secure: CatalogServer,
        ca: MeshCa,
        _scratch: Scratch,
    }

    impl Edge {
        async fn start(test: &str) -> Self {
            let scratch = Scratch::new(test);
            let ca = MeshCa::new("edge-ca").unwrap();
            scratch.credential("shop", &ca.server(&["shop.example.com"]).unwrap());
            let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let plain = CatalogServer::start("v1", any).await.unwrap();
            let secure = CatalogServer::start("v2", any).await.unwrap();
            let entry = |name: &str, addr: SocketAddr| {
                format!(
                    "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: shop}}\n\
                     spec:\n  hosts: [{name}.shop.svc.cluster.local]\n  resolution: STATIC\n  \
                     ports: [{{number: 80, name: http}}]\n  endpoints: [{{address: {ip}, ports: {{http: {port}}}}}]\n---\n",
                    ip = addr.ip(),
                    port = addr.port(),
                )
            };
            let yaml = format!(
                "{plain}{secure}\
                 apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: edge, namespace: shop}}\n\
                 spec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  \
                 - port: {{number: 443, name: https, protocol: HTTPS}}\n    hosts: [shop.example.com]\n    \
                 tls: {{mode: SIMPLE, credentialName: shop}}\n  \
                 - port: {{number: 8080, name: http, protocol: HTTP}}\n    hosts: [shop.example.com]\n\
                 ---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: shop, namespace: shop}}\n\
                 spec:\n  hosts: [shop.example.com]\n  gateways: [edge]\n  http:\n  \
                 - match: [{{uri: {{exact: /old}}}}]\n    redirect: {{uri: /new}}\n  \
                 - match: [{{scheme: {{exact: https}}}}]\n    route: [{{destination: {{host: secure.shop.svc.cluster.local}}}}]\n  \
                 - route: [{{destination: {{host: plain.shop.svc.cluster.local}}}}]\n",
                plain = entry("plain", plain.addr()),
                secure = entry("secure", secure.addr()),
            );
            let config = match Config::from_yaml_str(&yaml) {
                Ok(loaded) => loaded.config,
                Err(problems) => panic!("test config invalid: {problems:#?}"),
            };
            let mut settings = support::quiet();
            settings.gateway_credentials = Some(scratch.0.clone());
            settings
                .workload
                .labels
                .insert("istio".into(), "ingressgateway".into());
            let mut options = support::ephemeral();
            options.gateway_listen = vec![(443, any), (8080, any)];
            let running = Sidecar::with_settings(config, settings)
                .unwrap()
                .start(&options)
                .await
                .unwrap();
            Edge {
                running,
                plain,
                secure,
                ca,
                _scratch: scratch,
            }
        }

        fn port(&self, port: u16) -> SocketAddr {
            self.running
                .addr(&format!("gateway-{port}"))
                .unwrap_or_else(|| panic!("gateway-{port} listens: {:?}", self.running.listeners()))
        }

        /// A TLS client trusting the edge's CA, offering `alpn`.
        fn client_config(&self, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(self.ca.pem().as_bytes()).unwrap())
                .unwrap();
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![alpn.to_vec()];
            Arc::new(config)
        }

        /// One HTTP/1.1 request with `target` and `Host: host` over TLS (SNI `shop.example.com`),
        /// the whole response as text.
        async fn https(&self, target: &str, host: &str) -> String {
            let tcp = TcpStream::connect(self.port(443)).await.unwrap();
            let connector = tokio_rustls::TlsConnector::from(self.client_config(b"http/1.1"));
            let mut tls = connector
                .connect(ServerName::try_from("shop.example.com").unwrap(), tcp)
                .await
                .unwrap();
            tls.write_all(request(target, host).as_bytes())
                .await
                .unwrap();
            let mut response = Vec::new();
            tls.read_to_end(&mut response).await.unwrap();
            String::from_utf8_lossy(&response).into_owned()
        }

        /// One HTTP/1.1 request with `target` and `Host: host` to the plaintext port.
        async fn http(&self, target: &str, host: &str) -> String {
            let mut stream = TcpStream::connect(self.port(8080)).await.unwrap();
            stream
                .write_all(request(target, host).as_bytes())
                .await
                .unwrap();
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await.unwrap();
            String::from_utf8_lossy(&response).into_owned()
        }
    }

    fn request(target: &str, host: &str) -> String {
        format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
    }

    /// The value of header `name` in a raw response.
    fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
        response
            .split("\r\n\r\n")
            .next()?
            .lines()
            .skip(1)
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.eq_ignore_ascii_case(name).then(|| value.trim())
            })
    }

    #[tokio::test]
    async fn a_redirect_over_https_keeps_the_https_scheme() {
        let edge = Edge::start("redirect").await;
        let response = edge.https("/old", "shop.example.com").await;
        assert!(response.starts_with("HTTP/1.1 301"), "{response}");
        assert_eq!(
            header(&response, "location"),
            Some("https://shop.example.com/new"),
            "{response}"
        );
        // The plaintext port of the same Gateway stays `http`.
        let response = edge.http("/old", "shop.example.com").await;
        assert!(response.starts_with("HTTP/1.1 301"), "{response}");
        assert_eq!(
            header(&response, "location"),
            Some("http://shop.example.com/new"),
            "{response}"
        );
        edge.running.shutdown().await;
    }

    #[tokio::test]
    async fn a_scheme_match_is_taken_over_https_and_not_over_plaintext() {
        let edge = Edge::start("match").await;
        let response = edge.https("/items", "shop.example.com").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert_eq!(
            (edge.secure.hits(), edge.plain.hits()),
            (1, 0),
            "the https route over TLS: {response}"
        );
        let response = edge.http("/items", "shop.example.com").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert_eq!(
            (edge.secure.hits(), edge.plain.hits()),
            (1, 1),
            "the catch-all over plaintext: {response}"
        );
        // An absolute-form request over TLS is `https` too, whatever scheme it names.
        let response = edge
            .https("http://shop.example.com/items", "shop.example.com")
            .await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert_eq!(
            (edge.secure.hits(), edge.plain.hits()),
            (2, 1),
            "{response}"
        );
        edge.running.shutdown().await;
    }

    #[tokio::test]
    async fn the_upstream_still_gets_an_origin_form_request_with_the_clients_host() {
        let edge = Edge::start("upstream").await;
        let response = edge.https("/items?page=2", "shop.example.com").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let seen = edge
            .secure
            .last_request()
            .expect("the upstream was reached");
        assert_eq!(seen.uri, "/items?page=2", "origin form");
        assert!(seen.uri.scheme().is_none() && seen.uri.authority().is_none());
        assert_eq!(seen.headers["host"], "shop.example.com");
        assert_eq!(seen.headers["x-forwarded-proto"], "https");
        // A Host with a port is passed on as the client sent it.
        let response = edge.https("/items", "shop.example.com:443").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let seen = edge.secure.last_request().unwrap();
        assert_eq!(seen.uri, "/items");
        assert_eq!(seen.headers["host"], "shop.example.com:443");
        // And over plaintext as before.
        let response = edge.http("/items", "shop.example.com").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let seen = edge.plain.last_request().unwrap();
        assert_eq!(seen.uri, "/items");
        assert_eq!(seen.headers["host"], "shop.example.com");
        assert_eq!(seen.headers["x-forwarded-proto"], "http");
        edge.running.shutdown().await;
    }

    #[tokio::test]
    async fn http2_over_tls_keeps_its_scheme() {
        let edge = Edge::start("h2").await;
        let tcp = TcpStream::connect(edge.port(443)).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(edge.client_config(b"h2"));
        let tls = connector
            .connect(ServerName::try_from("shop.example.com").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        let get = |target: &'static str| {
            http::Request::get(target)
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap()
        };
        let response = sender
            .send_request(get("https://shop.example.com/items"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!((edge.secure.hits(), edge.plain.hits()), (1, 0));
        let seen = edge.secure.last_request().unwrap();
        assert_eq!(seen.uri, "/items");
        assert_eq!(seen.headers["host"], "shop.example.com");
        let response = sender
            .send_request(get("https://shop.example.com/old"))
            .await
            .unwrap();
        assert_eq!(response.status(), 301);
        assert_eq!(
            response.headers()["location"],
            "https://shop.example.com/new"
        );
        edge.running.shutdown().await;
    }
}
