//! Tests that run the real `sidecar` example binary: its `--check` contract, its zero-config
//! pass-through mode, and large bodies streaming through it with bounded memory.

mod support;

#[path = "../examples/certs.rs"]
#[allow(dead_code)]
mod certs;

use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    pin::Pin,
    process::{Child, Command, Stdio},
    task::{Context, Poll},
};

/// The `sidecar` example binary `cargo test` built next to this test (built on demand if not:
/// a `cargo test --test sidecar_process` alone does not build examples, and may find a stale
/// one — run `cargo build --example sidecar` first).
fn sidecar_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let binary = profile_dir.join("examples").join("sidecar");
    if !binary.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", "sidecar"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    binary
}

fn check(configs: &[&Path]) -> (i32, String) {
    let mut command = Command::new(sidecar_binary());
    command.arg("--check");
    for config in configs {
        command.arg("--config").arg(config);
    }
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

fn write_config(dir: &tempdir::TempDir, name: &str, yaml: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn check_accepts_every_shipped_example() {
    let registry = support::example("catalog/00-registry.yaml");
    for routes in [
        "catalog/10-all-v1.yaml",
        "catalog/20-dark-launch.yaml",
        "catalog/30-canary-90-10.yaml",
        "catalog/40-mirror-v2.yaml",
        "catalog/50-flagger-canary.yaml",
        "catalog/60-ingress-gateway.yaml",
        "tracing.yaml",
    ] {
        let (code, text) = check(&[&registry, &support::example(routes)]);
        assert_eq!(code, 0, "{routes}: {text}");
        assert!(text.contains("configuration is valid"), "{text}");
        assert!(
            text.contains(" 0 warning(s)") && !text.contains("warning:"),
            "{routes} should load without warnings: {text}"
        );
    }
    let (code, text) = check(&[&registry, &support::example("registry-only.yaml")]);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn check_names_the_field_of_each_problem() {
    let dir = tempdir::TempDir::new();
    let registry = support::example("catalog/00-registry.yaml");
    let cases = [
        (
            "typo.yaml",
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: catalog, namespace: istioinaction}\nspec:\n  hosts: [catalog]\n  http:\n  - route:\n    - destination: {host: catalog, subet: version-v1}\n",
            &[
                "typo.yaml",
                "VirtualService",
                "subet",
                "did you mean \"subset\"",
                "http[0].route[0].destination",
            ][..],
        ),
        (
            "subset.yaml",
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: catalog, namespace: istioinaction}\nspec:\n  hosts: [catalog]\n  http:\n  - route:\n    - destination: {host: catalog, subset: version-v3}\n",
            &[
                "subset.yaml",
                "http[0].route[0].destination.subset",
                "version-v3",
            ][..],
        ),
        (
            "regex.yaml",
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: catalog, namespace: istioinaction}\nspec:\n  hosts: [catalog]\n  http:\n  - match:\n    - uri: {regex: \"/items/(\"}\n    route:\n    - destination: {host: catalog, subset: version-v1}\n",
            &["regex.yaml", "http[0].match[0].uri", "/items/("][..],
        ),
    ];
    for (name, yaml, expected) in cases {
        let path = write_config(&dir, name, yaml);
        let (code, text) = check(&[&registry, &path]);
        assert_eq!(code, 1, "{name} must be rejected: {text}");
        for needle in expected {
            assert!(
                text.contains(needle),
                "{name}: expected {needle:?} in:\n{text}"
            );
        }
    }
}

#[test]
fn invalid_config_on_start_exits_1_without_listening() {
    let dir = tempdir::TempDir::new();
    let bad = write_config(
        &dir,
        "bad.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec:\n  hostz: [x]\n",
    );
    let output = Command::new(sidecar_binary())
        .args([
            "--outbound",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&bad)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        !stdout.contains("listening"),
        "nothing may be bound: {stdout}"
    );
    assert!(
        stderr.contains("unknown field \"hostz\" (did you mean \"hosts\"?)"),
        "{stderr}"
    );
}

/// A running sidecar process; killed on drop.
struct SidecarProcess {
    child: Child,
    outbound: SocketAddr,
    admin: SocketAddr,
    /// Every `listening NAME=ADDR` line printed at start.
    listening: Vec<(String, SocketAddr)>,
    /// The rest of its standard output (the access log, by default).
    stdout: std::sync::mpsc::Receiver<String>,
}

impl SidecarProcess {
    fn spawn(configs: &[&Path]) -> Self {
        SidecarProcess::spawn_with(configs, &[])
    }

    /// [`spawn`](Self::spawn), with more command-line `args`.
    fn spawn_with(configs: &[&Path], args: &[&str]) -> Self {
        let mut command = Command::new(sidecar_binary());
        command.args(args);
        command.args([
            "--outbound",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--inbound",
            "127.0.0.1:0",
        ]);
        for config in configs {
            command.arg("--config").arg(config);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut outbound = None;
        let mut admin = None;
        let mut listening = Vec::new();
        while let Some(Ok(line)) = lines.next() {
            if let Some((name, addr)) = line
                .strip_prefix("listening ")
                .and_then(|l| l.split_once('='))
            {
                listening.push((name.to_owned(), addr.parse().unwrap()));
            }
            if let Some(addr) = line.strip_prefix("listening outbound=") {
                outbound = Some(addr.parse().unwrap());
            }
            if let Some(addr) = line.strip_prefix("listening admin=") {
                admin = Some(addr.parse().unwrap());
            }
            if outbound.is_some() && admin.is_some() {
                break;
            }
        }
        // Keep reading its output (so it never blocks on a full pipe), line by line.
        let (lines_tx, stdout) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        SidecarProcess {
            child,
            outbound: outbound.expect("sidecar printed its outbound address"),
            admin: admin.expect("sidecar printed its admin address"),
            listening,
            stdout,
        }
    }

    /// Peak resident set size so far, from /proc.
    fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }
}

impl Drop for SidecarProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn zero_config_sidecar_passes_traffic_through() {
    let upstream = mesh::demo::CatalogServer::start("v1", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let sidecar = SidecarProcess::spawn(&[]);
    let mut client = mesh::demo::Http1Client::connect(sidecar.outbound)
        .await
        .unwrap();
    let response = client
        .get(&format!("http://{}/items", upstream.addr()), &[])
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(upstream.hits(), 1);
    // With no configuration the access log goes to standard output, in Istio's text format.
    let line = sidecar
        .stdout
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("an access log line on stdout");
    assert!(
        line.contains("\"GET /items HTTP/1.1\" 200 - via_upstream"),
        "{line}"
    );
    assert!(line.contains(" PassthroughCluster "), "{line}");
}

const SIZE: u64 = 64 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;
static ZEROS: [u8; CHUNK] = [0; CHUNK];

/// A body of `remaining` zero bytes produced chunk by chunk, never held whole.
struct Zeros {
    remaining: u64,
}

impl Body for Zeros {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(CHUNK as u64) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&ZEROS[..n])))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Counts a body's bytes frame by frame.
async fn count_bytes(mut body: Incoming) -> u64 {
    let mut total = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            total += data.len() as u64;
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_with_bounded_memory() {
    // Upstream: POST counts what it receives; GET sends 64 MiB.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_port = upstream.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (stream, _) = upstream.accept().await.unwrap();
            let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
                let body = if request.method() == http::Method::POST {
                    let received = count_bytes(request.into_body()).await;
                    http_body_util::Either::Left(http_body_util::Full::new(Bytes::from(
                        received.to_string(),
                    )))
                } else {
                    http_body_util::Either::Right(Zeros { remaining: SIZE })
                };
                Ok::<_, std::convert::Infallible>(http::Response::new(body))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    let dir = tempdir::TempDir::new();
    let config = write_config(
        &dir,
        "bulk.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: bulk}}\nspec:\n  hosts: [bulk]\n  resolution: STATIC\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {upstream_port}}}}}]\n"
        ),
    );
    let sidecar = SidecarProcess::spawn(&[&config]);
    let stream = tokio::net::TcpStream::connect(sidecar.outbound)
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);

    let upload = Request::post("http://bulk/upload")
        .header("host", "bulk")
        .body(Zeros { remaining: SIZE })
        .unwrap();
    let response = sender.send_request(upload).await.unwrap();
    assert_eq!(response.status(), 200);
    let echoed = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        echoed,
        SIZE.to_string(),
        "upstream received the whole upload"
    );

    sender.ready().await.unwrap();
    let download = Request::get("http://bulk/download")
        .header("host", "bulk")
        .body(Zeros { remaining: 0 })
        .unwrap();
    let response = sender.send_request(download).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(count_bytes(response.into_body()).await, SIZE);

    let peak = sidecar.peak_rss_bytes();
    eprintln!(
        "streamed {} MiB up and down; sidecar peak RSS {} KiB",
        SIZE >> 20,
        peak >> 10
    );
    assert!(
        peak < SIZE,
        "sidecar peak RSS {} MiB must stay under 64 MiB",
        peak / (1024 * 1024)
    );
}

/// A temporary directory removed on drop (no extra dependency).
mod tempdir {
    use std::path::{Path, PathBuf};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new() -> Self {
            let path = std::env::temp_dir().join(format!(
                "mesh-test-{}-{}",
                std::process::id(),
                rand_suffix()
            ));
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn rand_suffix() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    }
}

/// Starts a sidecar routing `catalog` to v1 with `terminationDrainDuration: drain`, sends
/// [`IN_FLIGHT`] concurrent requests that v1 answers after `delay_ms`, and sends SIGTERM once
/// v1 has them all. Returns each request's outcome, whether a new connection was refused
/// meanwhile, and how long after the signal the process exited, with its status.
async fn sigterm_during_request(
    drain: &str,
    delay_ms: u64,
) -> (
    Vec<Option<u16>>,
    bool,
    std::time::Duration,
    std::process::ExitStatus,
) {
    let (v1, _v2, registry) = support::catalog_upstreams().await;
    let dir = tempdir::TempDir::new();
    let mesh_config = format!(
        "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {{name: mesh}}\nspec: {{defaultConfig: {{terminationDrainDuration: {drain}}}}}\n"
    );
    let config = write_config(
        &dir,
        "catalog.yaml",
        &format!(
            "{}\n---\n{mesh_config}",
            support::all_to(&registry, "version-v1")
        ),
    );
    let mut sidecar = SidecarProcess::spawn(&[&config]);
    let outbound = sidecar.outbound;
    let in_flight: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            tokio::spawn(async move {
                let mut client = mesh::demo::Http1Client::connect(outbound).await.unwrap();
                client
                    .get(&format!("http://catalog/items?delay_ms={delay_ms}"), &[])
                    .await
                    .ok()
                    .map(|response| response.status.as_u16())
            })
        })
        .collect();
    support::wait_for_hits(&v1, IN_FLIGHT as u64, std::time::Duration::from_secs(5)).await;
    assert!(v1.hits() >= IN_FLIGHT as u64, "the request reached v1");
    let signalled = std::time::Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &sidecar.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The listening socket closes at once.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let refused = tokio::net::TcpStream::connect(outbound).await.is_err();
    let mut outcome = Vec::new();
    for request in in_flight {
        outcome.push(request.await.unwrap());
    }
    let exit = loop {
        if let Some(exit) = sidecar.child.try_wait().unwrap() {
            break exit;
        }
        assert!(signalled.elapsed().as_secs() < 15, "the sidecar exited");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    (outcome, refused, signalled.elapsed(), exit)
}

/// How many requests are in flight when the sidecar is told to stop.
const IN_FLIGHT: usize = 8;

#[tokio::test]
async fn sigterm_drains_requests_in_flight_refuses_new_connections_and_exits_0() {
    let (outcome, refused, _, exit) = sigterm_during_request("10s", 1000).await;
    assert_eq!(
        outcome,
        [Some(200); IN_FLIGHT],
        "every request in flight finished"
    );
    assert!(refused, "a new connection was accepted while draining");
    assert!(exit.success(), "exit status {exit:?}");
}

#[tokio::test]
async fn the_drain_ends_at_termination_drain_duration() {
    let (outcome, _, exited_after, exit) = sigterm_during_request("300ms", 5000).await;
    assert_eq!(
        outcome, [None; IN_FLIGHT],
        "the requests outlived the drain and were cut"
    );
    assert!(
        exited_after < std::time::Duration::from_secs(3),
        "exited {exited_after:?} after SIGTERM"
    );
    assert!(exit.success(), "exit status {exit:?}");
}

/// The binary runs the canary controller: a Canary that skips its analysis is promoted within a
/// few of its (short) intervals, `/canaries` says so, and v2 then answers.
#[tokio::test]
async fn the_sidecar_runs_canaries_and_shows_them_at_the_admin_api() {
    let (_v1, v2, registry) = support::catalog_upstreams().await;
    let dir = tempdir::TempDir::new();
    let registry = write_config(&dir, "registry.yaml", &registry);
    let shipped =
        std::fs::read_to_string(support::example("catalog/50-flagger-canary.yaml")).unwrap();
    let quick = shipped
        .replace(
            "interval: 1m\n    threshold",
            "interval: 200ms\n    threshold",
        )
        .replace("  analysis:\n", "  skipAnalysis: true\n  analysis:\n");
    assert_ne!(quick, shipped);
    let canary = write_config(&dir, "canary.yaml", &quick);
    let sidecar = SidecarProcess::spawn(&[&registry, &canary]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let mut admin = mesh::demo::Http1Client::connect(sidecar.admin)
            .await
            .unwrap();
        let text = admin
            .get("/canaries", &[("host", "admin")])
            .await
            .unwrap()
            .text();
        let canaries: serde_json::Value = serde_json::from_str(&text).unwrap();
        if canaries[0]["phase"] == "Succeeded" {
            assert_eq!(canaries[0]["canaryWeight"], 100, "{text}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut client = mesh::demo::Http1Client::connect(sidecar.outbound)
        .await
        .unwrap();
    let response = client.get("/items", &[("host", "catalog")]).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(v2.hits(), 1, "the promoted canary answers");
}

#[tokio::test]
async fn the_sidecar_serves_the_shipped_ingress_gateway() {
    let (v1, _v2, registry) = support::catalog_upstreams().await;
    let dir = tempdir::TempDir::new();
    let registry = write_config(&dir, "registry.yaml", &registry);
    let gateway = support::example("catalog/60-ingress-gateway.yaml");
    let ca = certs::MeshCa::new("edge").unwrap();
    let pem = ca.server(&["catalog.istioinaction.io"]).unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::create_dir_all(&credentials).unwrap();
    std::fs::write(credentials.join("catalog-credential.crt"), &pem.cert_chain).unwrap();
    std::fs::write(credentials.join("catalog-credential.key"), &pem.key).unwrap();
    let sidecar = SidecarProcess::spawn_with(
        &[&registry, &gateway],
        &[
            "--label",
            "istio=ingressgateway",
            "--gateway-listen",
            "80=127.0.0.1:0",
            "--gateway-listen",
            "443=127.0.0.1:0",
            "--credentials",
            credentials.to_str().unwrap(),
        ],
    );
    let addr = |name: &str| {
        sidecar
            .listening
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("{name} in {:?}", sidecar.listening))
    };
    // Port 80 redirects to HTTPS.
    let mut plain = mesh::demo::Http1Client::connect(addr("gateway-80"))
        .await
        .unwrap();
    let response = plain
        .get("/items", &[("host", "catalog.istioinaction.io")])
        .await
        .unwrap();
    assert_eq!(response.status, 301);
    // Port 443 terminates TLS with the credential and routes to catalog v1.
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr("gateway-443"))
        .await
        .unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect("catalog.istioinaction.io".try_into().unwrap(), tcp)
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(
        b"GET /items HTTP/1.1\r\nHost: catalog.istioinaction.io\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut text = String::new();
    tls.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(v1.hits(), 1, "catalog v1 answered");
}
