//! Mesh mTLS on the inbound side against plaintext, through the same sidecar: one inbound
//! listener under PeerAuthentication `PERMISSIVE` serves both, in front of a loopback app.
//!
//! - `plaintext_request` / `mtls_request`: one `GET` on a kept-alive connection, as a caller
//!   with a connection pool sends it (throughput over mTLS as a ratio of plaintext);
//! - `plaintext_new_connection` / `mtls_new_connection`: connect (and for mTLS, the TLS 1.3
//!   handshake with client certificates both ways verified), one `GET`, close — the inverse is
//!   handshakes per second.

use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use mesh::proxy::{
    Sidecar, sidecar::SidecarSettings, tls::TlsIdentity, workload_identity::WorkloadSettings,
};
use mesh::route::config::Config;
use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

#[path = "../examples/certs.rs"]
#[allow(dead_code)]
mod certs;
#[path = "support/loopback_upstream.rs"]
mod loopback_upstream;

type Sender = SendRequest<Empty<bytes::Bytes>>;

fn identity(ca: &certs::MeshCa, id: &str) -> Arc<TlsIdentity> {
    let pem = ca.workload(id).expect("certificate");
    Arc::new(
        TlsIdentity::from_pem(
            pem.cert_chain.as_bytes(),
            pem.key.as_bytes(),
            pem.root.as_bytes(),
        )
        .expect("identity"),
    )
}

/// Opens an HTTP/1.1 connection to `addr`, over mutual TLS with `tls`.
async fn connect(addr: SocketAddr, tls: Option<&Arc<rustls::ClientConfig>>) -> Sender {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = stream.set_nodelay(true);
    match tls {
        None => handshake(TokioIo::new(stream)).await,
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from("catalog").expect("name");
            let tls = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, stream)
                .await
                .expect("TLS handshake");
            handshake(TokioIo::new(tls)).await
        }
    }
}

async fn handshake<I>(io: I) -> Sender
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(io).await.expect("HTTP handshake");
    tokio::spawn(connection);
    sender
}

async fn get(sender: &mut Sender) {
    sender.ready().await.expect("ready");
    let request = http::Request::get("/items")
        .header("host", "catalog")
        .body(Empty::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), 200);
    let _ = response.into_body().collect().await;
}

fn mtls(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let app = loopback_upstream::upstream();
    let ca = certs::MeshCa::new("bench CA").expect("CA");
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\n\
         metadata: {{name: catalog, namespace: shop}}\nspec:\n  ingress:\n  \
         - port: {{number: 3000, protocol: HTTP, name: http}}\n    defaultEndpoint: {app}\n\
         ---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
         metadata: {{name: default, namespace: shop}}\nspec: {{mtls: {{mode: PERMISSIVE}}}}\n"
    );
    let config = Config::from_yaml_str(&yaml).expect("config").config;
    let settings = SidecarSettings {
        workload: WorkloadSettings {
            namespace: Some("shop".into()),
            ..WorkloadSettings::default()
        },
        identity: Some(identity(&ca, "spiffe://cluster.local/ns/shop/sa/catalog")),
        disable_access_log: true,
        ..SidecarSettings::default()
    };
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let options = mesh::proxy::SidecarOptions {
        outbound: any,
        inbound: any,
        admin: any,
        prometheus: None,
        gateway_listen: Vec::new(),
    };
    let sidecar = runtime.block_on(async {
        Sidecar::with_settings(config, settings)
            .expect("sidecar")
            .start(&options)
            .await
            .expect("listening")
    });
    let inbound = sidecar.addr("inbound").expect("inbound");
    let client = identity(&ca, "spiffe://cluster.local/ns/shop/sa/web")
        .client_config(&[])
        .expect("client config");

    let mut group = c.benchmark_group("mtls");
    group.measurement_time(Duration::from_secs(5));
    for (name, tls) in [("plaintext", None), ("mtls", Some(&client))] {
        group.bench_function(format!("{name}_request"), |b| {
            b.to_async(&runtime).iter_custom(|iters| async move {
                let mut sender = connect(inbound, tls).await;
                let started = Instant::now();
                for _ in 0..iters {
                    get(&mut sender).await;
                }
                started.elapsed()
            })
        });
        group.bench_function(format!("{name}_new_connection"), |b| {
            b.to_async(&runtime).iter(|| async move {
                let mut sender = connect(inbound, tls).await;
                get(&mut sender).await;
            })
        });
    }
    group.finish();
    runtime.block_on(sidecar.shutdown());
}

criterion_group!(benches, mtls);
criterion_main!(benches);
