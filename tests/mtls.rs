//! Mesh mTLS on the inbound side, with certificates made in the test (`examples/certs.rs`):
//! PeerAuthentication STRICT refuses plaintext, clients without a certificate and clients of
//! another CA; PERMISSIVE serves plaintext and mutual TLS on one port; the caller's SPIFFE id
//! becomes `source_principal` with `connection_security_policy="mutual_tls"`.

mod support;

#[path = "../examples/certs.rs"]
#[allow(dead_code)]
mod certs;

use bytes::Bytes;
use certs::MeshCa;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use mesh::demo::CatalogServer;
use mesh::proxy::{
    RunningSidecar, Sidecar, StartError,
    sidecar::SidecarSettings,
    tls::{SpiffeServerVerifier, TlsIdentity},
    workload_identity::WorkloadSettings,
};
use mesh::route::config::Config;
use std::{net::SocketAddr, sync::Arc};
use support::metrics::Metrics;

const WEB: &str = "spiffe://cluster.local/ns/shop/sa/web";
const CATALOG: &str = "spiffe://cluster.local/ns/shop/sa/catalog";

fn identity(ca: &MeshCa, id: &str) -> Arc<TlsIdentity> {
    let pem = ca.workload(id).unwrap();
    Arc::new(
        TlsIdentity::from_pem(
            pem.cert_chain.as_bytes(),
            pem.key.as_bytes(),
            pem.root.as_bytes(),
        )
        .unwrap(),
    )
}

/// The catalog app behind an inbound sidecar of workload `catalog` in `shop`, with
/// PeerAuthentication `mode` for the namespace.
fn config(app: SocketAddr, mode: &str) -> Config {
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\n\
         metadata: {{name: catalog, namespace: shop}}\nspec:\n  ingress:\n  \
         - port: {{number: 3000, protocol: HTTP, name: http}}\n    defaultEndpoint: {app}\n\
         ---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
         metadata: {{name: default, namespace: shop}}\nspec:\n  mtls: {{mode: {mode}}}\n"
    );
    Config::from_yaml_str(&yaml).unwrap().config
}

async fn inbound(
    mode: &str,
    identity: Option<Arc<TlsIdentity>>,
) -> (RunningSidecar, CatalogServer, Metrics) {
    inbound_with(mode, identity, "").await
}

/// [`inbound`], with more resources (`extra` YAML documents) in its configuration.
async fn inbound_with(
    mode: &str,
    identity: Option<Arc<TlsIdentity>>,
    extra: &str,
) -> (RunningSidecar, CatalogServer, Metrics) {
    let app = CatalogServer::start("v1", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (recorder, metrics) = Metrics::recorder();
    let settings = SidecarSettings {
        workload: WorkloadSettings {
            name: Some("catalog".into()),
            namespace: Some("shop".into()),
            ..WorkloadSettings::default()
        },
        metrics: Some(recorder),
        identity,
        ..support::quiet()
    };
    let mut config = config(app.addr(), mode);
    if !extra.is_empty() {
        let more = Config::from_yaml_str(extra).unwrap().config;
        config
            .authorization_policies
            .extend(more.authorization_policies);
    }
    let sidecar = Sidecar::with_settings(config, settings)
        .unwrap()
        .start(&support::ephemeral())
        .await
        .unwrap();
    (sidecar, app, metrics)
}

/// `GET /items` over mutual TLS as `client`; the status, or why it failed.
async fn mtls_get(addr: SocketAddr, client: &TlsIdentity) -> Result<u16, String> {
    send(addr, client.client_config(&[]).unwrap()).await
}

/// A client that verifies the server against `ca` as the mesh does, but has no certificate.
fn without_certificate(ca: &MeshCa) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let verifier = SpiffeServerVerifier::new(Arc::new(roots), Vec::new()).unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(mesh::proxy::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth(),
    )
}

async fn send(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Result<u16, String> {
    send_to(addr, config, "/items").await
}

async fn send_to(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    path: &str,
) -> Result<u16, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = rustls::pki_types::ServerName::try_from("catalog.shop.svc.cluster.local").unwrap();
    let tls = connector
        .connect(name, stream)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    plain_http_to(TokioIo::new(tls), path).await
}

async fn plain_http<I>(io: I) -> Result<u16, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    plain_http_to(io, "/items").await
}

async fn plain_http_to<I>(io: I, path: &str) -> Result<u16, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("http handshake: {e}"))?;
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header("host", "catalog")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    Ok(status)
}

async fn plaintext_get(addr: SocketAddr) -> Result<u16, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    plain_http(TokioIo::new(stream)).await
}

fn label<'a>(labels: &'a support::metrics::Labels, key: &str) -> &'a str {
    labels.get(key).map_or("", String::as_str)
}

#[tokio::test]
async fn strict_serves_mutual_tls_only_and_reports_the_callers_identity() {
    let ca = MeshCa::new("test CA").unwrap();
    let (sidecar, app, metrics) = inbound("STRICT", Some(identity(&ca, CATALOG))).await;
    let addr = sidecar.addr("inbound").unwrap();

    assert!(plaintext_get(addr).await.is_err(), "plaintext is refused");
    let web = identity(&ca, WEB);
    assert_eq!(mtls_get(addr, &web).await, Ok(200));
    assert_eq!(app.hits(), 1, "only the mutual-TLS request reached the app");

    assert!(
        send(addr, without_certificate(&ca)).await.is_err(),
        "a client without a certificate is refused"
    );
    // A certificate of another CA (the client itself trusts ours, so only the server can say no).
    let other_ca = MeshCa::new("another CA").unwrap();
    let pem = other_ca.workload(WEB).unwrap();
    let stranger = TlsIdentity::from_pem(
        pem.cert_chain.as_bytes(),
        pem.key.as_bytes(),
        ca.pem().as_bytes(),
    )
    .unwrap();
    assert!(
        mtls_get(addr, &stranger).await.is_err(),
        "a certificate of another CA is refused"
    );
    assert_eq!(app.hits(), 1);

    let series = metrics.wait_for_requests(1).await;
    let (labels, count) = &series[0];
    assert_eq!(*count, 1, "{series:?}");
    assert_eq!(label(labels, "reporter"), "destination");
    assert_eq!(label(labels, "source_principal"), WEB);
    assert_eq!(label(labels, "source_workload_namespace"), "shop");
    assert_eq!(label(labels, "connection_security_policy"), "mutual_tls");
    sidecar.shutdown().await;
}

#[tokio::test]
async fn permissive_serves_plaintext_and_mutual_tls_on_one_port() {
    let ca = MeshCa::new("test CA").unwrap();
    let (sidecar, app, metrics) = inbound("PERMISSIVE", Some(identity(&ca, CATALOG))).await;
    let addr = sidecar.addr("inbound").unwrap();
    assert_eq!(plaintext_get(addr).await, Ok(200));
    let web = identity(&ca, WEB);
    assert_eq!(mtls_get(addr, &web).await, Ok(200));
    assert_eq!(app.hits(), 2);
    let series = metrics.wait_for_requests(2).await;
    let mut policies: Vec<(String, String)> = series
        .iter()
        .map(|(labels, _)| {
            (
                label(labels, "connection_security_policy").to_owned(),
                label(labels, "source_principal").to_owned(),
            )
        })
        .collect();
    policies.sort();
    assert_eq!(
        policies,
        [
            ("mutual_tls".to_owned(), WEB.to_owned()),
            ("none".to_owned(), "unknown".to_owned())
        ]
    );
    sidecar.shutdown().await;
}

#[tokio::test]
async fn strict_without_a_certificate_does_not_start() {
    let app: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let settings = SidecarSettings {
        workload: WorkloadSettings {
            namespace: Some("shop".into()),
            ..WorkloadSettings::default()
        },
        ..support::quiet()
    };
    let error = Sidecar::with_settings(config(app, "STRICT"), settings).unwrap_err();
    assert!(matches!(error, StartError::Tls(_)), "{error}");
    assert!(
        error
            .to_string()
            .contains("STRICT needs a workload certificate"),
        "{error}"
    );
}

/// A sidecar for workload `web` whose `catalog` is the inbound listener at `catalog`, with
/// DestinationRule `tls` (YAML flow mapping).
async fn outbound(catalog: SocketAddr, tls: &str, identity: Arc<TlsIdentity>) -> RunningSidecar {
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
         metadata: {{name: catalog, namespace: shop}}\nspec:\n  hosts: [catalog]\n  \
         resolution: STATIC\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  \
         endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]\n---\n\
         apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
         metadata: {{name: catalog, namespace: shop}}\nspec:\n  host: catalog\n  \
         trafficPolicy: {{tls: {tls}}}\n",
        catalog.port()
    );
    let settings = SidecarSettings {
        workload: WorkloadSettings {
            name: Some("web".into()),
            namespace: Some("shop".into()),
            ..WorkloadSettings::default()
        },
        identity: Some(identity),
        ..support::quiet()
    };
    Sidecar::with_settings(Config::from_yaml_str(&yaml).unwrap().config, settings)
        .unwrap()
        .start(&support::ephemeral())
        .await
        .unwrap()
}

async fn through(sidecar: &RunningSidecar) -> mesh::demo::Collected {
    let mut client = mesh::demo::Http1Client::connect(sidecar.addr("outbound").unwrap())
        .await
        .unwrap();
    client.get("/items", &[("host", "catalog")]).await.unwrap()
}

#[tokio::test]
async fn two_sidecars_talk_istio_mutual_and_the_receiver_records_the_senders_identity() {
    let ca = MeshCa::new("test CA").unwrap();
    let (receiver, app, metrics) = inbound("STRICT", Some(identity(&ca, CATALOG))).await;
    let inbound_addr = receiver.addr("inbound").unwrap();
    let sender = outbound(inbound_addr, "{mode: ISTIO_MUTUAL}", identity(&ca, WEB)).await;
    let response = through(&sender).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(app.hits(), 1);
    let series = metrics.wait_for_requests(1).await;
    assert_eq!(label(&series[0].0, "source_principal"), WEB);
    assert_eq!(
        label(&series[0].0, "connection_security_policy"),
        "mutual_tls"
    );

    // The expected identity is checked when the DestinationRule names one.
    let pinned = format!("{{mode: ISTIO_MUTUAL, subjectAltNames: ['{CATALOG}']}}");
    let sender = outbound(inbound_addr, &pinned, identity(&ca, WEB)).await;
    assert_eq!(through(&sender).await.status, 200);
    let wrong = format!("{{mode: ISTIO_MUTUAL, subjectAltNames: ['{WEB}']}}");
    let sender = outbound(inbound_addr, &wrong, identity(&ca, WEB)).await;
    let refused = through(&sender).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(app.hits(), 2);
}

#[tokio::test]
async fn istio_mutual_to_an_untrusted_peer_fails_with_uf() {
    let ca = MeshCa::new("test CA").unwrap();
    let other = MeshCa::new("another CA").unwrap();
    // The receiver trusts both CAs, so only the sender's check of the receiver can fail: the
    // sender trusts the other CA alone, and the receiver's certificate is from the first.
    let pem = ca.workload(CATALOG).unwrap();
    let both = format!("{}{}", ca.pem(), other.pem());
    let receiver_identity = Arc::new(
        TlsIdentity::from_pem(
            pem.cert_chain.as_bytes(),
            pem.key.as_bytes(),
            both.as_bytes(),
        )
        .unwrap(),
    );
    let (receiver, app, _metrics) = inbound("STRICT", Some(receiver_identity)).await;
    let sender = outbound(
        receiver.addr("inbound").unwrap(),
        "{mode: ISTIO_MUTUAL}",
        identity(&other, WEB),
    )
    .await;
    let response = through(&sender).await;
    assert_eq!(response.status, 503);
    assert!(
        response.text().contains("upstream connect error"),
        "{}",
        response.text()
    );
    assert_eq!(app.hits(), 0);
}

#[tokio::test]
async fn istio_mutual_without_a_certificate_does_not_start() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
                metadata: {name: catalog}\nspec: {hosts: [catalog], resolution: STATIC, \
                ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n---\n\
                apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
                metadata: {name: catalog}\nspec: {host: catalog, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}\n";
    let config = Config::from_yaml_str(yaml).unwrap().config;
    let error = Sidecar::with_settings(config, support::quiet()).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("ISTIO_MUTUAL needs a workload certificate"),
        "{error}"
    );
}

#[tokio::test]
async fn authorization_policies_deny_by_principal_and_by_path_with_403() {
    let policies = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n\
        metadata: {name: web-only, namespace: shop}\n\
        spec:\n  rules:\n  - from: [{source: {principals: ['cluster.local/ns/shop/sa/web']}}]\n\
        ---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n\
        metadata: {name: no-admin, namespace: shop}\n\
        spec:\n  action: DENY\n  rules:\n  - to: [{operation: {paths: ['/admin*']}}]\n";
    let ca = MeshCa::new("test CA").unwrap();
    let (sidecar, app, metrics) =
        inbound_with("STRICT", Some(identity(&ca, CATALOG)), policies).await;
    let addr = sidecar.addr("inbound").unwrap();
    let web = identity(&ca, WEB).client_config(&[]).unwrap();
    let batch = identity(&ca, "spiffe://cluster.local/ns/shop/sa/batch")
        .client_config(&[])
        .unwrap();
    assert_eq!(send_to(addr, web.clone(), "/items").await, Ok(200));
    assert_eq!(
        send_to(addr, web, "/admin/users").await,
        Ok(403),
        "denied by path"
    );
    assert_eq!(
        send_to(addr, batch, "/items").await,
        Ok(403),
        "denied by principal"
    );
    assert_eq!(app.hits(), 1, "denied requests never reach the app");
    // Denials are reported like any answer.
    let series = metrics.wait_for_requests(3).await;
    let denied: u64 = series
        .iter()
        .filter(|(labels, _)| label(labels, "response_code") == "403")
        .map(|(_, count)| count)
        .sum();
    assert_eq!(denied, 2, "{series:?}");
}
