//! Demo and test helpers: a tiny `catalog` upstream and a raw HTTP/1.1 client.
//!
//! [`CatalogServer`] is the service of the catalog story in `examples/mesh/catalog`: it answers
//! `GET /items` with its version (v2 adds an `imageUrl` to each item), waits first when asked
//! (`?delay_ms=N`), fails on demand ([`CatalogServer::fail_next`]), counts requests, and
//! remembers recent request heads so tests can see what the proxy forwarded.
//! [`Http1Client`] keeps one connection and sends requests exactly as given — including
//! absolute-form URIs, which is how a client addresses an HTTP proxy.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};
use tokio::net::{TcpListener, TcpStream};

/// What a [`CatalogServer`] saw of one request.
///
/// ```
/// use mesh::demo::{CatalogServer, Http1Client};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let v1 = CatalogServer::start("v1", "127.0.0.1:0".parse()?).await?;
/// let mut client = Http1Client::connect(v1.addr()).await?;
/// client.get("/items?page=2", &[("x-trace", "abc")]).await?;
/// let seen = v1.last_request().unwrap();
/// assert_eq!(seen.uri, "/items?page=2");
/// assert_eq!(seen.headers["x-trace"], "abc");
/// assert!(seen.body.is_empty());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct SeenRequest {
    /// The request target as received.
    pub uri: Uri,
    /// The request headers as received.
    pub headers: HeaderMap,
    /// The request body as received.
    pub body: Bytes,
}

/// How many requests a [`CatalogServer`] remembers.
///
/// ```
/// use mesh::demo::{CatalogServer, HISTORY, Http1Client};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let v1 = CatalogServer::start("v1", "127.0.0.1:0".parse()?).await?;
/// let mut client = Http1Client::connect(v1.addr()).await?;
/// for n in 0..=HISTORY {
///     client.get(&format!("/items?n={n}"), &[]).await?;
/// }
/// let seen = v1.requests();
/// assert_eq!(seen.len(), HISTORY, "one request more than HISTORY: the oldest is evicted");
/// assert_eq!(seen[0].uri, "/items?n=1");
/// assert_eq!(seen[HISTORY - 1].uri, format!("/items?n={HISTORY}").as_str());
/// # Ok(()) }
/// ```
pub const HISTORY: usize = 4096;

#[derive(Debug, Default)]
struct CatalogState {
    hits: AtomicU64,
    connections: AtomicU64,
    fail_next: AtomicU64,
    /// Milliseconds every response is held back.
    delay_ms: AtomicU64,
    history: Mutex<std::collections::VecDeque<SeenRequest>>,
}

/// A catalog service of one version, listening on loopback.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// let v1 = mesh::demo::CatalogServer::start("v1", "127.0.0.1:0".parse().unwrap()).await?;
/// assert!(v1.addr().ip().is_loopback() && v1.addr().port() != 0, "a free loopback port");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct CatalogServer {
    addr: SocketAddr,
    version: &'static str,
    state: Arc<CatalogState>,
    task: tokio::task::JoinHandle<()>,
}

impl CatalogServer {
    /// Starts serving version `version` on `addr` (port 0 picks a free port).
    ///
    /// ```
    /// use mesh::demo::{CatalogServer, Http1Client};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let v1 = CatalogServer::start("v1", "127.0.0.1:0".parse()?).await?;
    /// let mut client = Http1Client::connect(v1.addr()).await?;
    /// let response = client.get("/items", &[]).await?;
    /// assert_eq!(response.status, 200);
    /// assert!(response.text().contains(r#""version": "v1""#));
    /// # Ok(()) }
    /// ```
    pub async fn start(version: &'static str, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(CatalogState::default());
        let task = tokio::spawn(accept_loop(listener, version, state.clone()));
        Ok(CatalogServer {
            addr,
            version,
            state,
            task,
        })
    }

    /// The bound address.
    ///
    /// ```
    /// use mesh::demo::CatalogServer;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let v1 = CatalogServer::start("v1", "127.0.0.1:0".parse()?).await?;
    /// assert!(v1.addr().ip().is_loopback());
    /// assert_ne!(v1.addr().port(), 0, "port 0 picks a free port");
    /// # Ok(()) }
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The version this server reports.
    ///
    /// ```
    /// use mesh::demo::{CatalogServer, Http1Client};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    ///
    /// let v2 = CatalogServer::start("v2", "127.0.0.1:0".parse()?).await?;
    /// assert_eq!(v2.version(), "v2");
    /// let response = Http1Client::connect(v2.addr()).await?.get("/items", &[]).await?;
    /// assert_eq!(response.headers["x-catalog-version"], "v2");
    /// assert!(response.text().contains("imageUrl"), "v2 adds an image to each item");
    /// # Ok(()) }
    /// ```
    pub fn version(&self) -> &'static str {
        self.version
    }

    /// Requests served so far.
    ///
    /// ```
    /// use mesh::demo::{CatalogServer, Http1Client};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let v1 = CatalogServer::start("v1", "127.0.0.1:0".parse()?).await?;
    /// let mut client = Http1Client::connect(v1.addr()).await?;
    /// assert_eq!(v1.hits(), 0);
    /// client.get("/items", &[]).await?;
    /// client.get("/items", &[]).await?;
    /// assert_eq!(v1.hits(), 2);
    /// # Ok(()) }
    /// ```
    pub fn hits(&self) -> u64 {
        self.state.hits.load(Ordering::Relaxed)
    }

    /// The head of the last request served.
    ///
    /// ```
    /// use mesh::demo::{CatalogServer, Http1Client};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let v1 = CatalogServer::start("v1", "127.0.0.1:0".parse()?).await?;
    /// let mut client = Http1Client::connect(v1.addr()).await?;
    /// assert!(v1.last_request().is_none());
    /// client.send(http::Request::post("/orders").body(http_body_util::Full::from("order 1"))?).await?;
    /// assert_eq!(v1.last_request().unwrap().body, "order 1");
    /// # Ok(()) }
    /// ```
    pub fn last_request(&self) -> Option<SeenRequest> {
        self.state
            .history
            .lock()
            .ok()
            .and_then(|h| h.back().cloned())
    }

    /// The heads of the last [`HISTORY`] requests served, oldest first.
    ///
    /// ```
    /// use mesh::demo::{CatalogServer, Http1Client};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let v1 = CatalogServer::start("v1", "127.0.0.1:0".parse()?).await?;
    /// let mut client = Http1Client::connect(v1.addr()).await?;
    /// client.get("/first", &[]).await?;
    /// client.get("/second", &[]).await?;
    /// let paths: Vec<_> = v1.requests().iter().map(|r| r.uri.path().to_owned()).collect();
    /// assert_eq!(paths, ["/first", "/second"]);
    /// # Ok(()) }
    /// ```
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.state
            .history
            .lock()
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Connections accepted so far.
    ///
    /// ```
    /// use mesh::demo::{CatalogServer, Http1Client};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let v1 = CatalogServer::start("v1", "127.0.0.1:0".parse()?).await?;
    /// let mut client = Http1Client::connect(v1.addr()).await?;
    /// client.get("/items", &[]).await?;
    /// client.get("/items", &[]).await?;
    /// assert_eq!((v1.hits(), v1.connections()), (2, 1), "one kept-alive connection");
    /// # Ok(()) }
    /// ```
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// Answers the next `n` requests with 503 (a failing or flapping upstream).
    ///
    /// ```
    /// use mesh::demo::{CatalogServer, Http1Client};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let v1 = CatalogServer::start("v1", "127.0.0.1:0".parse()?).await?;
    /// let mut client = Http1Client::connect(v1.addr()).await?;
    /// v1.fail_next(2);
    /// assert_eq!(client.get("/items", &[]).await?.status, 503);
    /// assert_eq!(client.get("/items", &[]).await?.status, 503);
    /// assert_eq!(client.get("/items", &[]).await?.status, 200);
    /// # Ok(()) }
    /// ```
    pub fn fail_next(&self, n: u64) {
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    /// Holds every response back by `delay` (a slow version), until set to zero.
    ///
    /// ```
    /// use mesh::demo::{CatalogServer, Http1Client};
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let v1 = CatalogServer::start("v1", "127.0.0.1:0".parse()?).await?;
    /// let mut client = Http1Client::connect(v1.addr()).await?;
    /// v1.set_delay(Duration::from_secs(5)); // paused time: no real wait
    /// let start = tokio::time::Instant::now();
    /// assert_eq!(client.get("/items", &[]).await?.status, 200);
    /// assert!(start.elapsed() >= Duration::from_secs(5));
    /// # Ok(()) }
    /// ```
    pub fn set_delay(&self, delay: std::time::Duration) {
        let ms = crate::core::clock::whole_millis(delay);
        self.state.delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Stops the server: closes the listener and every open connection, as a crash would.
    ///
    /// ```
    /// use mesh::demo::{CatalogServer, Http1Client};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let v1 = CatalogServer::start("v1", "127.0.0.1:0".parse()?).await?;
    /// let addr = v1.addr();
    /// let mut open = Http1Client::connect(addr).await?;
    /// assert_eq!(open.get("/items", &[]).await?.status, 200);
    /// v1.kill();
    /// tokio::task::yield_now().await; // let the aborted accept loop drop the listener
    /// assert!(open.get("/items", &[]).await.is_err(), "the open connection is closed");
    /// assert!(Http1Client::connect(addr).await.is_err(), "no new connections");
    /// # Ok(()) }
    /// ```
    pub fn kill(self) {
        drop(self);
    }
}

impl Drop for CatalogServer {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, version: &'static str, state: Arc<CatalogState>) {
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let mut connections = tokio::task::JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        state.connections.fetch_add(1, Ordering::Relaxed);
        let state = state.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            catalog_response(version, state.clone(), request)
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        connections.spawn(connection);
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
}

async fn catalog_response(
    version: &'static str,
    state: Arc<CatalogState>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    state.hits.fetch_add(1, Ordering::Relaxed);
    let (head, body) = request.into_parts();
    // Read the request body whole, so uploads complete and tests can see it.
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if let Ok(mut history) = state.history.lock() {
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(SeenRequest {
            uri: head.uri.clone(),
            headers: head.headers.clone(),
            body,
        });
    }
    let fail = state
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    // `?delay_ms=N` (or `set_delay`) makes this a slow upstream, for timeout demos.
    let delay_ms = head
        .uri
        .query()
        .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("delay_ms=")))
        .and_then(|ms| ms.parse::<u64>().ok())
        .unwrap_or(0)
        .max(state.delay_ms.load(Ordering::Relaxed));
    if delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
    }
    let image = if version == "v1" {
        ""
    } else {
        r#", "imageUrl": "http://lorempixel.com/640/480""#
    };
    let body = format!(
        r#"{{"version": "{version}", "items": [{{"id": 1, "color": "amethyst", "price": 10.5{image}}}]}}"#
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    if fail {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert("x-catalog-version", HeaderValue::from_static(version));
    Ok(response)
}

/// A collected response.
///
/// ```
/// use mesh::demo::{CatalogServer, Http1Client};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let v1 = CatalogServer::start("v1", "127.0.0.1:0".parse()?).await?;
/// let mut client = Http1Client::connect(v1.addr()).await?;
/// let collected = client.get("/items", &[]).await?;
/// assert_eq!(collected.status, http::StatusCode::OK);
/// assert_eq!(collected.headers["content-type"], "application/json");
/// assert!(collected.body.starts_with(b"{"));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Collected {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Whole body.
    pub body: Bytes,
}

impl Collected {
    /// The body as text (lossy).
    ///
    /// ```
    /// use mesh::demo::{CatalogServer, Http1Client};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let v1 = CatalogServer::start("v1", "127.0.0.1:0".parse()?).await?;
    /// let mut client = Http1Client::connect(v1.addr()).await?;
    /// let collected = client.get("/items", &[]).await?;
    /// assert!(collected.text().contains(r#""color": "amethyst""#));
    /// # Ok(()) }
    /// ```
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why an [`Http1Client`] call failed.
///
/// ```
/// use mesh::demo::{ClientError, Http1Client};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // Nothing listens on port 1.
/// let refused = Http1Client::connect("127.0.0.1:1".parse().unwrap()).await.unwrap_err();
/// assert!(matches!(refused, ClientError::Io(_)), "{refused}");
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection could not be made.
    #[error("connecting: {0}")]
    Io(#[from] std::io::Error),
    /// The HTTP exchange failed (the handshake, the request or the response).
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built (a bad target or header).
    #[error("building the request: {0}")]
    Request(#[from] http::Error),
}

/// An HTTP/1.1 client on one kept-alive connection, sending request targets as given.
///
/// ```
/// use mesh::demo::{CatalogServer, Http1Client};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let v1 = CatalogServer::start("v1", "127.0.0.1:0".parse()?).await?;
/// let mut client = Http1Client::connect(v1.addr()).await?;
/// // An absolute-form target, as a client of an HTTP proxy sends it, arrives as given.
/// client.get("http://catalog/items", &[]).await?;
/// assert_eq!(v1.last_request().unwrap().uri, "http://catalog/items");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Http1Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Http1Client {
    /// Connects to `addr`.
    ///
    /// ```
    /// use mesh::demo::{CatalogServer, Http1Client};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let v1 = CatalogServer::start("v1", "127.0.0.1:0".parse()?).await?;
    /// let mut client = Http1Client::connect(v1.addr()).await?;
    /// let mut second = Http1Client::connect(v1.addr()).await?;
    /// client.get("/", &[]).await?;
    /// second.get("/", &[]).await?;
    /// assert_eq!(v1.connections(), 2);
    /// # Ok(()) }
    /// ```
    pub async fn connect(addr: SocketAddr) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Http1Client { sender })
    }

    /// Sends `request` and collects the response.
    ///
    /// ```
    /// use mesh::demo::{CatalogServer, Http1Client};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let v1 = CatalogServer::start("v1", "127.0.0.1:0".parse()?).await?;
    /// let mut client = Http1Client::connect(v1.addr()).await?;
    /// let request = http::Request::put("/items/1").header("content-type", "text/plain").body(http_body_util::Full::from("blue"))?;
    /// assert_eq!(client.send(request).await?.status, 200);
    /// let seen = v1.last_request().unwrap();
    /// assert_eq!((seen.uri.path(), &seen.body[..]), ("/items/1", &b"blue"[..]));
    /// # Ok(()) }
    /// ```
    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Collected, ClientError> {
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Collected {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// `GET uri` with extra headers.
    ///
    /// ```
    /// use mesh::demo::{CatalogServer, Http1Client};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let v1 = CatalogServer::start("v1", "127.0.0.1:0".parse()?).await?;
    /// let mut client = Http1Client::connect(v1.addr()).await?;
    /// let response = client.get("/items", &[("x-user", "ana"), ("x-tier", "gold")]).await?;
    /// assert_eq!(response.status, 200);
    /// let seen = v1.last_request().unwrap();
    /// assert_eq!(seen.headers["x-user"], "ana");
    /// assert_eq!(seen.headers["x-tier"], "gold");
    /// # Ok(()) }
    /// ```
    pub async fn get(
        &mut self,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> Result<Collected, ClientError> {
        let mut builder = Request::get(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        self.send(builder.body(Full::new(Bytes::new()))?).await
    }
}

/// Rewrites the endpoint ports of `examples/mesh/catalog/00-registry.yaml` (9001 for v1, 9002
/// for v2) to `v1` and `v2`, so the shipped config can be used with servers on free ports.
///
/// ```
/// let yaml = "ports:\n  http: 9001\n---\nports:\n  http: 9002\n";
/// assert_eq!(mesh::demo::point_registry(yaml, 4001, 4002), "ports:\n  http: 4001\n---\nports:\n  http: 4002\n");
/// ```
pub fn point_registry(registry_yaml: &str, v1: u16, v2: u16) -> String {
    registry_yaml
        .replace("http: 9001", &format!("http: {v1}"))
        .replace("http: 9002", &format!("http: {v2}"))
}
