//! A real Prometheus server for end-to-end tests: Debian's `prometheus` binary, started on a
//! free loopback port with a generated config scraping one target every second, queried
//! through its HTTP API (`/api/v1/query`).
//!
//! The binary is `$PROMETHEUS_BIN`, else `prometheus` on `PATH`; when neither exists the test
//! panics (CI installs Debian's `prometheus` package) rather than skipping.

#![allow(dead_code)]

use serde_json::Value;
use std::{
    collections::BTreeMap,
    fs::File,
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// How long Prometheus may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often `wait_for` asks again.
const POLL: Duration = Duration::from_millis(500);

/// A running Prometheus scraping one target; killed (and its directory removed) on drop.
pub struct PrometheusServer {
    /// The HTTP API's address.
    pub addr: SocketAddr,
    /// The scrape job's name.
    pub job: String,
    dir: PathBuf,
    child: Child,
}

/// One element of an instant vector: its labels and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The Prometheus binary: `$PROMETHEUS_BIN`, else `prometheus` on `PATH`. Panics when missing.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PROMETHEUS_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "PROMETHEUS_BIN={} is not a file. This test needs a real Prometheus server \
             (CI installs Debian's `prometheus` package: `apt-get install -y prometheus`).",
            path.display()
        );
        return path;
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("prometheus"))
            .find(|candidate| candidate.is_file())
    });
    match found {
        Some(path) => path,
        None => panic!(
            "the `prometheus` binary was not found on PATH and PROMETHEUS_BIN is not set. \
             This test runs a real Prometheus server; CI installs Debian's `prometheus` package. \
             Install it with `apt-get install -y prometheus` (as root), or point PROMETHEUS_BIN \
             at a Prometheus 2.x binary."
        ),
    }
}

/// A fresh, unique directory under the system temp dir.
fn fresh_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!(
        "mesh-prometheus-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `text` percent-encoded for a URL query value (everything but RFC 3986's unreserved
/// characters).
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The samples of an instant-vector query response (`data.resultType == "vector"`); panics on
/// any other shape.
pub fn samples(response: &Value) -> Vec<Sample> {
    assert_eq!(
        response["status"], "success",
        "Prometheus query failed: {response}"
    );
    assert_eq!(
        response["data"]["resultType"], "vector",
        "not an instant vector: {response}"
    );
    response["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("no result array: {response}"))
        .iter()
        .map(|element| {
            let labels = element["metric"]
                .as_object()
                .unwrap_or_else(|| panic!("no metric labels: {element}"))
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            // Values are `[timestamp, "string"]`; "NaN", "+Inf" and "-Inf" parse as f64 too.
            let text = element["value"][1]
                .as_str()
                .unwrap_or_else(|| panic!("no sample value: {element}"));
            let value = match text {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                other => other
                    .parse()
                    .unwrap_or_else(|_| panic!("bad sample value {other:?}: {element}")),
            };
            Sample { labels, value }
        })
        .collect()
}

/// The single value of a one-element instant vector, `None` when the vector is empty.
pub fn scalar(response: &Value) -> Option<f64> {
    let found = samples(response);
    assert!(found.len() <= 1, "expected at most one sample: {response}");
    found.first().map(|s| s.value)
}

impl PrometheusServer {
    /// Starts Prometheus scraping `target`'s `metrics_path` every second, and waits (at most
    /// 30 s) until it is ready.
    pub async fn start(target: SocketAddr, metrics_path: &str) -> Self {
        let binary = binary();
        let job = "mesh-sidecar".to_owned();
        // The port is picked by binding and releasing it; another process may take it in
        // between, so a start that fails to listen is retried on another port.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let dir = fresh_dir();
            let port = free_port();
            let config = dir.join("prometheus.yml");
            std::fs::write(
                &config,
                format!(
                    "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                     scrape_configs:\n  - job_name: {job}\n    metrics_path: {metrics_path}\n    \
                     static_configs:\n      - targets: ['{target}']\n"
                ),
            )
            .unwrap();
            let log = File::create(dir.join("prometheus.log")).unwrap();
            let child = Command::new(&binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
            let mut server = PrometheusServer {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                job: job.clone(),
                dir,
                child,
            };
            match server.wait_ready().await {
                Ok(()) => return server,
                Err(why) => {
                    if attempt < 3 && server.log().contains("address already in use") {
                        continue; // dropping `server` kills it and removes its directory
                    }
                    // Dropping `server` while panicking prints its log.
                    panic!(
                        "Prometheus ({}) did not become ready: {why}",
                        binary.display()
                    );
                }
            }
        }
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("it exited ({status})"));
            }
            if let Ok((200, _)) = self.get("/-/ready").await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("not ready after {READY_TIMEOUT:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The server's log (its standard output and error) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// The server's directory (config, log, TSDB).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `GET path` on the server: status and body.
    async fn get(&self, path: &str) -> Result<(u16, String), String> {
        let mut client = mesh::demo::Http1Client::connect(self.addr)
            .await
            .map_err(|e| e.to_string())?;
        let host = self.addr.to_string();
        let response = tokio::time::timeout(
            Duration::from_secs(10),
            client.get(path, &[("host", host.as_str())]),
        )
        .await
        .map_err(|_| format!("GET {path}: no answer within 10 s"))?
        .map_err(|e| e.to_string())?;
        Ok((response.status.as_u16(), response.text()))
    }

    /// The JSON answer of instant query `promql` (evaluated now). Panics when Prometheus cannot
    /// be reached or its answer is not JSON; a PromQL error comes back as `status: "error"`.
    pub async fn query(&self, promql: &str) -> Value {
        let path = format!("/api/v1/query?query={}", url_encode(promql));
        let (status, body) = self
            .get(&path)
            .await
            .unwrap_or_else(|e| panic!("query {promql:?}: {e}"));
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("query {promql:?}: HTTP {status}, not JSON ({e}): {body}"))
    }

    /// How many instant queries (`/api/v1/query`) the server has answered with 200, from its own
    /// `/metrics`.
    pub async fn queries_answered(&self) -> u64 {
        let (_, text) = self.get("/metrics").await.unwrap_or_default();
        text.lines()
            .filter(|line| {
                line.starts_with("prometheus_http_requests_total{")
                    && line.contains("handler=\"/api/v1/query\"")
                    && line.contains("code=\"200\"")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// The scrape targets' state (`/api/v1/targets`: health, last error, last scrape), as
    /// JSON, or why it could not be fetched.
    pub async fn targets(&self) -> Value {
        match self.get("/api/v1/targets").await {
            Ok((_, body)) => serde_json::from_str(&body).unwrap_or(Value::String(body)),
            Err(error) => Value::String(error),
        }
    }

    /// Polls `promql` every 500 ms until `predicate` accepts its answer; returns that answer.
    /// Panics after `timeout` with the last answer.
    pub async fn wait_for(
        &self,
        promql: &str,
        predicate: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let answer = self.query(promql).await;
            if predicate(&answer) {
                return answer;
            }
            if Instant::now() >= deadline {
                let targets = self.targets().await;
                panic!(
                    "after {timeout:?}, Prometheus still answers {promql:?} with {answer}\n\
                     scrape targets: {targets}"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- prometheus log ({}) ---\n{}--- end of prometheus log ---",
                self.dir.display(),
                self.log()
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
