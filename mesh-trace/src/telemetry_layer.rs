//! [`TelemetryLayer`]: reports every request — as Istio's standard metrics and as an access-log
//! line — once its response has been sent in full.
//!
//! On the way in it notes the arrival time and, with an access log, starts the request's entry
//! (a copy of the header values it prints, in one buffer). On the way out it
//! reads what the layers inside decided from the response extensions ([`Routed`], where it was
//! served ([`UpstreamTarget::of_response`]), [`ResponseFlags`]) — or from a [`RoutedError`]
//! and the local reply an error becomes — and wraps the response body to count its bytes. When
//! the body ends (or is dropped: flag `DC`), it records the metrics and hands the entry to the
//! [`AccessLog`], whose writer formats it off the request path. A request whose client goes away
//! before the response is reported with status `0` and `DC`, as Envoy does.
//!
//! Sizes are the header bytes (names, values and separators as HTTP/1.1 would send them) plus
//! the body bytes. A request body is counted by its exact size hint (its `content-length`), or,
//! when it is streamed, by the [`BodyBytesRead`] that [`count_streamed_body`] put on the
//! request where it entered the mesh (the sidecar's listeners and `mesh`'s in-process client
//! and server do), read when the exchange ends. Without one, a streamed request body counts as
//! the least its size hint promises.
//!
//! [`count_streamed_body`]: mesh_core::body_count::count_streamed_body

use crate::{
    access_log::{AccessLog, EntryDraft, printed_authority, printed_path},
    metrics::{
        BLACK_HOLE_CLUSTER, CatchAllCluster, IstioMetrics, Reporter, RequestOutcome,
        RequestProtocol,
    },
};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, header, uri::Authority,
};
use http_body::Body as HttpBody;
use mesh_core::{
    BoxError, DownstreamAddr, LocalReplyDetails, MeshError, PeerIdentity, ResponseFlag,
    ResponseFlags, Routed, RoutedError, UpstreamError,
    body_count::BodyBytesRead,
    clock::Stamp,
    error::{ServedBy, UpstreamTarget},
    local_reply::error_to_response,
    watched_body::{BodyWatcher, WatchedBody, watch_response},
    workload::Workload,
};
use pin_project::{pin_project, pinned_drop};
use std::{
    borrow::Cow,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};
use tower::{Layer, Service};

const X_ENVOY_UPSTREAM_SERVICE_TIME: HeaderName =
    HeaderName::from_static("x-envoy-upstream-service-time");
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_ENVOY_ORIGINAL_PATH: HeaderName = HeaderName::from_static("x-envoy-original-path");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Reports requests as metrics and access-log lines; see the [module docs](self).
///
/// ```
/// use mesh_core::workload::Workload;
/// use mesh_trace::{metrics::{IstioMetrics, MetricsRecorder, Reporter}, telemetry_layer::TelemetryLayer};
/// use metrics_util::debugging::DebuggingRecorder;
/// use http_body_util::{BodyExt, Empty, Full};
/// use std::sync::Arc;
/// use tower::{Layer, ServiceExt, service_fn};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let recorder = DebuggingRecorder::new();
/// let snapshotter = recorder.snapshotter();
/// let metrics = IstioMetrics::new(MetricsRecorder::Owned(Arc::new(recorder)), Reporter::Source, Workload::default());
/// let svc = TelemetryLayer::new().metrics(metrics).layer(service_fn(|_req: http::Request<Empty<bytes::Bytes>>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(bytes::Bytes::from("hello"))))
/// }));
/// let request = http::Request::get("http://catalog/").body(Empty::new()).unwrap();
/// let response = svc.oneshot(request).await.unwrap();
/// response.into_body().collect().await.unwrap(); // recorded when the body ends
/// let snapshot = snapshotter.snapshot().into_vec();
/// assert!(snapshot.iter().any(|(key, ..)| key.key().name() == "istio_requests_total"));
/// # });
/// ```
#[derive(Clone, Debug, Default)]
pub struct TelemetryLayer {
    shared: Shared,
}

#[derive(Clone, Debug, Default)]
struct Shared {
    metrics: Option<Arc<IstioMetrics>>,
    access_log: Option<AccessLog>,
}

impl TelemetryLayer {
    /// A layer that reports nothing yet; add [`metrics`](Self::metrics) and/or an
    /// [`access_log`](Self::access_log).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::{BodyExt, Full};
    /// use mesh_trace::telemetry_layer::TelemetryLayer;
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let layer = TelemetryLayer::new();
    /// assert!(!layer.is_enabled());
    /// let svc = layer.layer(service_fn(|_req: http::Request<Full<Bytes>>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("hello"))))
    /// }));
    /// let response = svc.oneshot(http::Request::new(Full::default())).await.unwrap();
    /// assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "hello");
    /// # });
    /// ```
    pub fn new() -> Self {
        TelemetryLayer::default()
    }

    /// Records Istio's standard metrics with `metrics`.
    ///
    /// ```
    /// use mesh_trace::telemetry_layer::TelemetryLayer;
    /// # use bytes::Bytes;
    /// # use http_body_util::{BodyExt, Empty};
    /// # use tower::{Layer, ServiceExt, service_fn};
    /// # use mesh_core::workload::Workload;
    /// # use mesh_trace::metrics::{IstioMetrics, MetricsRecorder, Reporter};
    /// # use metrics_util::debugging::{DebuggingRecorder, Snapshotter};
    /// # use std::sync::Arc;
    /// # /// Metrics recording into a debugging recorder, and its snapshotter.
    /// # fn metrics() -> (IstioMetrics, Snapshotter) {
    /// #     let recorder = DebuggingRecorder::new();
    /// #     let snapshotter = recorder.snapshotter();
    /// #     let metrics = IstioMetrics::new(MetricsRecorder::Owned(Arc::new(recorder)), Reporter::Source, Workload::default());
    /// #     (metrics, snapshotter)
    /// # }
    /// # /// Label `name` of the first `istio_requests_total` series, if there is one.
    /// # fn label(snapshotter: &Snapshotter, name: &str) -> Option<String> {
    /// #     let snapshot = snapshotter.snapshot().into_vec();
    /// #     let (key, ..) = snapshot.iter().find(|(key, ..)| key.key().name() == "istio_requests_total")?;
    /// #     key.key().labels().find(|l| l.key() == name).map(|l| l.value().to_owned())
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let (metrics, snapshotter) = metrics(); // an `IstioMetrics` on a debugging recorder
    /// let svc = TelemetryLayer::new().metrics(metrics).layer(service_fn(|_req: http::Request<Empty<Bytes>>| async {
    ///     let mut response = http::Response::new(Empty::<Bytes>::new());
    ///     *response.status_mut() = http::StatusCode::NOT_FOUND;
    ///     Ok::<_, std::convert::Infallible>(response)
    /// }));
    /// let request = http::Request::get("http://catalog/items").body(Empty::new()).unwrap();
    /// svc.oneshot(request).await.unwrap().into_body().collect().await.unwrap();
    /// assert_eq!(label(&snapshotter, "response_code").as_deref(), Some("404"));
    /// assert_eq!(label(&snapshotter, "destination_service").as_deref(), Some("catalog"));
    /// # });
    /// ```
    pub fn metrics(mut self, metrics: impl Into<Arc<IstioMetrics>>) -> Self {
        mesh_core::clock::calibrate();
        self.shared.metrics = Some(metrics.into());
        self
    }

    /// Writes an access-log line per request to `log`.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::{BodyExt, Empty, Full};
    /// use mesh_trace::{access_log::{AccessLog, AccessLogConfig, Encoding}, telemetry_layer::TelemetryLayer};
    /// use std::{io::Write, sync::{Arc, Mutex}};
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # #[derive(Clone, Default)]
    /// # struct Memory(Arc<Mutex<Vec<u8>>>);
    /// # impl Write for Memory {
    /// #     fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().write(bytes) }
    /// #     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let memory = Memory::default(); // an in-memory `Write`
    /// let log = AccessLog::new(memory.clone(), Encoding::Json, AccessLogConfig::default());
    /// let svc = TelemetryLayer::new().access_log(log.clone()).layer(service_fn(|_req: http::Request<Empty<Bytes>>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("hello"))))
    /// }));
    /// let request = http::Request::get("http://catalog/items").body(Empty::new()).unwrap();
    /// svc.oneshot(request).await.unwrap().into_body().collect().await.unwrap();
    /// log.flush();
    /// let line: serde_json::Value = serde_json::from_slice(&memory.0.lock().unwrap()).unwrap();
    /// assert_eq!((line["path"].as_str(), line["bytes_sent"].as_u64()), (Some("/items"), Some(5)));
    /// # });
    /// ```
    pub fn access_log(mut self, log: AccessLog) -> Self {
        mesh_core::clock::calibrate();
        self.shared.access_log = Some(log);
        self
    }

    /// Whether the layer reports anything.
    ///
    /// ```
    /// use mesh_core::workload::Workload;
    /// use mesh_trace::{metrics::{IstioMetrics, MetricsRecorder, Reporter}, telemetry_layer::TelemetryLayer};
    /// assert!(!TelemetryLayer::new().is_enabled());
    /// let metrics = IstioMetrics::new(MetricsRecorder::Global, Reporter::Source, Workload::default());
    /// assert!(TelemetryLayer::new().metrics(metrics).is_enabled());
    /// ```
    pub fn is_enabled(&self) -> bool {
        self.shared.metrics.is_some() || self.shared.access_log.is_some()
    }
}

impl<S> Layer<S> for TelemetryLayer {
    type Service = Telemetry<S>;

    fn layer(&self, inner: S) -> Telemetry<S> {
        Telemetry {
            inner,
            shared: self.is_enabled().then(|| Arc::new(self.shared.clone())),
        }
    }
}

/// The service [`TelemetryLayer`] produces.
///
/// ```
/// use mesh_trace::telemetry_layer::{Telemetry, TelemetryLayer};
/// # use bytes::Bytes;
/// # use http_body_util::Empty;
/// # use mesh_core::{BoxError, MeshError};
/// # use tower::{Layer, ServiceExt, service_fn};
/// # use mesh_core::workload::Workload;
/// # use mesh_trace::metrics::{IstioMetrics, MetricsRecorder, Reporter};
/// # use metrics_util::debugging::{DebuggingRecorder, Snapshotter};
/// # use std::sync::Arc;
/// # /// Metrics recording into a debugging recorder, and its snapshotter.
/// # fn metrics() -> (IstioMetrics, Snapshotter) {
/// #     let recorder = DebuggingRecorder::new();
/// #     let snapshotter = recorder.snapshotter();
/// #     let metrics = IstioMetrics::new(MetricsRecorder::Owned(Arc::new(recorder)), Reporter::Source, Workload::default());
/// #     (metrics, snapshotter)
/// # }
/// # /// Label `name` of the first `istio_requests_total` series, if there is one.
/// # fn label(snapshotter: &Snapshotter, name: &str) -> Option<String> {
/// #     let snapshot = snapshotter.snapshot().into_vec();
/// #     let (key, ..) = snapshot.iter().find(|(key, ..)| key.key().name() == "istio_requests_total")?;
/// #     key.key().labels().find(|l| l.key() == name).map(|l| l.value().to_owned())
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (metrics, snapshotter) = metrics(); // an `IstioMetrics` on a debugging recorder
/// let svc: Telemetry<_> = TelemetryLayer::new().metrics(metrics).layer(service_fn(
///     |_req: http::Request<Empty<Bytes>>| async {
///         Err::<http::Response<Empty<Bytes>>, BoxError>(MeshError::Timeout.into())
///     },
/// ));
/// let request = http::Request::get("http://catalog/items").body(Empty::new()).unwrap();
/// assert!(svc.oneshot(request).await.is_err());
/// // An error is reported as the local reply it becomes.
/// assert_eq!(label(&snapshotter, "response_code").as_deref(), Some("504"));
/// assert_eq!(label(&snapshotter, "response_flags").as_deref(), Some("UT"));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct Telemetry<S> {
    inner: S,
    shared: Option<Arc<Shared>>,
}

impl<S, B, RB> Service<Request<B>> for Telemetry<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    B: HttpBody,
    RB: HttpBody,
{
    type Response = Response<TelemetryBody<RB>>;
    type Error = BoxError;
    type Future = TelemetryFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let recording = self
            .shared
            .as_ref()
            .map(|shared| Recording::start(shared, &request));
        TelemetryFuture {
            future: self.inner.call(request),
            recording,
        }
    }
}

/// One request being reported: allocated once on arrival, completed by the response.
#[derive(Debug)]
struct Recording {
    shared: Arc<Shared>,
    started: Stamp,
    protocol: RequestProtocol,
    /// A HEAD request: its response has no body, whatever its headers say.
    head: bool,
    /// Request headers and body (the metric); of which the body (the access log), as its size
    /// hint announced it.
    request_bytes: u64,
    request_body: u64,
    /// The count of a streamed request body, read when the exchange ends.
    request_body_read: Option<BodyBytesRead>,
    /// The access-log entry, filled in as the exchange goes (only with an access log): kept in
    /// the recording's own box, made there in place (see [`Recording::start`]).
    entry: Option<EntryDraft>,
    /// The authority the request was addressed to, `destination_service` when routing named
    /// none; kept apart only without an access log (whose entry holds it).
    addressed: Option<Addressed>,
    status: u16,
    flags: ResponseFlags,
    /// Why the mesh answered by itself, when it did (`%RESPONSE_CODE_DETAILS%`).
    local_reply: Option<Cow<'static, str>>,
    /// The destination service routing chose (`destination_service`).
    service: Option<Arc<str>>,
    /// The upstream cluster, when it is one of Istio's catch-all clusters (a metric label).
    catch_all: Option<CatchAllCluster>,
    peer: Option<Arc<Workload>>,
    grpc_status: Option<u16>,
    /// Response headers and body (the metric); of which the body (the access log).
    response_bytes: u64,
    response_body: u64,
}

/// Bytes a header block takes on an HTTP/1.1 wire: `name: value\r\n` per header.
fn header_bytes(headers: &HeaderMap) -> u64 {
    headers
        .iter()
        .map(|(name, value)| header_line_bytes(name.as_str(), value))
        .sum()
}

/// Bytes one header takes on an HTTP/1.1 wire: `name: value\r\n`.
fn header_line_bytes(name: &str, value: &HeaderValue) -> u64 {
    (name.len() + value.len() + 4) as u64
}

/// What telemetry reads of a request's headers, gathered in one pass over them (each a
/// header's first value, as [`HeaderMap::get`] would find it).
#[derive(Default)]
struct RequestHeaders<'h> {
    /// The block's size, as [`header_bytes`] counts it.
    bytes: u64,
    host: Option<&'h HeaderValue>,
    content_type: Option<&'h HeaderValue>,
    user_agent: Option<&'h HeaderValue>,
    x_forwarded_for: Option<&'h HeaderValue>,
    original_path: Option<&'h HeaderValue>,
    request_id: Option<&'h HeaderValue>,
}

impl<'h> RequestHeaders<'h> {
    fn of(headers: &'h HeaderMap) -> Self {
        let mut seen = RequestHeaders::default();
        for (name, value) in headers {
            seen.bytes += header_line_bytes(name.as_str(), value);
            // Names compared as names: one of `http`'s standard headers against another is
            // a byte compared, any against one of the custom three a length at most.
            let slot = if name == header::HOST {
                &mut seen.host
            } else if name == header::CONTENT_TYPE {
                &mut seen.content_type
            } else if name == header::USER_AGENT {
                &mut seen.user_agent
            } else if name == X_FORWARDED_FOR {
                &mut seen.x_forwarded_for
            } else if name == X_ENVOY_ORIGINAL_PATH {
                &mut seen.original_path
            } else if name == X_REQUEST_ID {
                &mut seen.request_id
            } else {
                continue;
            };
            slot.get_or_insert(value);
        }
        seen
    }

    /// The request's protocol label, as [`RequestProtocol::of`] tells it.
    fn protocol(&self) -> RequestProtocol {
        RequestProtocol::of_content_type(self.content_type)
    }
}

/// The authority a request was addressed to: its URI's (absolute form) or its `Host`.
#[derive(Debug)]
enum Addressed {
    Uri(Authority),
    Host(HeaderValue),
}

impl Addressed {
    fn of(uri: &Uri, host: Option<&HeaderValue>) -> Option<Self> {
        match uri.authority() {
            Some(authority) => Some(Addressed::Uri(authority.clone())),
            None => host.cloned().map(Addressed::Host),
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Addressed::Uri(authority) => Some(authority.as_str()),
            Addressed::Host(host) => host.to_str().ok(),
        }
    }
}

impl Recording {
    /// A recording of `request`, made in its box: nothing is made first and copied there (a
    /// recording with an access-log draft is some 500 bytes).
    fn start<B: HttpBody>(shared: &Arc<Shared>, request: &Request<B>) -> Box<Self> {
        let (shared_clone, started) = (shared.clone(), Stamp::now());
        // Allocated, then filled in: `Box::new` of the value would make it first and copy it.
        let mut recording = Box::write(Box::new_uninit(), Recording::blank(shared_clone, started));
        let headers = RequestHeaders::of(request.headers());
        let path = request
            .uri()
            .path_and_query()
            .map_or(1, |p| p.as_str().len());
        let hint = request.body().size_hint();
        let body = hint.exact().unwrap_or(hint.lower());
        recording.request_bytes =
            (request.method().as_str().len() + path + 12) as u64 + headers.bytes + body;
        recording.request_body = body;
        recording.protocol = headers.protocol();
        recording.head = request.method() == Method::HEAD;
        recording.request_body_read = request.extensions().get::<BodyBytesRead>().cloned();
        if shared.access_log.is_some() {
            let uri = request.uri();
            let draft = recording.entry.insert(EntryDraft::blank(request.version()));
            draft.begin(recording.started, request.method());
            draft.fields.path = draft.copy_some(printed_path(uri, headers.original_path));
            draft.fields.authority = draft.copy_some(printed_authority(uri, headers.host));
            draft.fields.x_forwarded_for =
                draft.copy_some(headers.x_forwarded_for.map(HeaderValue::as_bytes));
            draft.fields.user_agent =
                draft.copy_some(headers.user_agent.map(HeaderValue::as_bytes));
            draft.fields.request_id =
                draft.copy_some(headers.request_id.map(HeaderValue::as_bytes));
            if let Some(downstream) = request.extensions().get::<DownstreamAddr>() {
                draft.fields.downstream_local_address = Some(downstream.local);
                draft.fields.downstream_remote_address = Some(downstream.remote);
            }
        } else {
            recording.addressed = Addressed::of(request.uri(), headers.host);
        }
        // Inbound, the peer is the caller: known when it proved who it is (mutual TLS).
        // (The outbound side never looks for one.)
        recording.peer = shared
            .metrics
            .as_ref()
            .filter(|metrics| metrics.reporter() == Reporter::Destination)
            .and_then(|metrics| metrics.peer_workload(request.extensions().get::<PeerIdentity>()?));
        recording
    }

    /// A recording of a request that arrived `started`, with nothing else known yet.
    fn blank(shared: Arc<Shared>, started: Stamp) -> Self {
        Recording {
            shared,
            started,
            protocol: RequestProtocol::Http,
            head: false,
            request_bytes: 0,
            request_body: 0,
            request_body_read: None,
            entry: None,
            addressed: None,
            status: 0,
            flags: ResponseFlags::default(),
            local_reply: None,
            service: None,
            catch_all: None,
            peer: None,
            grpc_status: None,
            response_bytes: 0,
            response_body: 0,
        }
    }

    /// Takes what the response says about how the request was handled.
    fn response<RB>(&mut self, response: &Response<RB>) {
        self.status = response.status().as_u16();
        let extensions = response.extensions();
        if let Some(flags) = extensions.get::<ResponseFlags>() {
            self.flags = *flags;
        }
        self.local_reply = extensions.get::<LocalReplyDetails>().map(|d| d.0.clone());
        self.routed(extensions.get::<Routed>());
        self.upstream(UpstreamTarget::of_response(extensions));
        let headers = response.headers();
        if let Some(entry) = &mut self.entry {
            let time = headers.get(X_ENVOY_UPSTREAM_SERVICE_TIME);
            entry.fields.upstream_service_time = entry.copy_some(time.map(HeaderValue::as_bytes));
        }
        if self.protocol == RequestProtocol::Grpc {
            self.grpc_status = grpc_status(headers);
        }
        self.response_bytes = 15 + header_bytes(headers);
    }

    /// Takes where the request was sent upstream.
    fn upstream(&mut self, served: ServedBy<'_>) {
        let ServedBy {
            cluster,
            host,
            workload,
        } = served;
        self.catch_all = cluster.and_then(|c| CatchAllCluster::of(&c.0));
        if let Some(entry) = &mut self.entry {
            entry.fields.upstream_cluster = entry.copy_some(cluster.map(|c| c.0.as_bytes()));
            entry.fields.upstream_host = entry.copy_some(host.map(|h| h.0.as_str().as_bytes()));
        }
        // The upstream is the peer of the client side only; the server side's peer is its caller
        // (its upstream is the local app: itself).
        if self
            .shared
            .metrics
            .as_ref()
            .is_some_and(|m| m.reporter() == Reporter::Source)
        {
            self.peer = workload.map(|w| w.0.clone());
        }
    }

    /// Takes what routing decided.
    fn routed(&mut self, routed: Option<&Routed>) {
        if let Some(routed) = routed {
            self.service = routed.destination.as_ref().map(|d| d.host.clone());
            if let Some(entry) = &mut self.entry {
                entry.fields.route_name = Some(entry.copy(routed.route.name.as_bytes()));
            }
        }
    }

    /// Takes the local reply an error becomes.
    fn error(&mut self, error: &BoxError) {
        let reply = error_to_response(error);
        self.response(&reply);
        self.routed(error.downcast_ref::<RoutedError>().map(RoutedError::routed));
        if let Some(failed) = UpstreamError::find(error) {
            self.upstream(ServedBy::from(failed.target()));
        }
        let hint = HttpBody::size_hint(reply.body());
        self.count_response_body(hint.exact().unwrap_or(hint.lower()));
        if matches!(
            MeshError::find(error),
            Some(MeshError::HostNotRegistered(_))
        ) {
            self.catch_all = Some(CatchAllCluster::BlackHole);
            if let Some(entry) = &mut self.entry {
                entry.fields.upstream_cluster = Some(entry.copy(BLACK_HOLE_CLUSTER.as_bytes()));
            }
        }
    }

    /// The authority the request was addressed to: the URI's, else `Host`'s when it is visible
    /// ASCII (as [`mesh_core::authority::addressed_authority`] finds it).
    fn addressed_authority(&self) -> Option<&str> {
        match &self.entry {
            Some(entry) => visible_ascii(entry.get(entry.fields.authority?)),
            None => self.addressed.as_ref().and_then(Addressed::as_str),
        }
    }

    fn count_response_body(&mut self, bytes: u64) {
        self.response_body += bytes;
        self.response_bytes += bytes;
    }

    /// Reports a request its client went away from (flag `DC`).
    fn abandon(mut self: Box<Self>) {
        self.flags
            .insert(ResponseFlag::DownstreamConnectionTermination);
        self.finish();
    }

    /// Records the metrics and queues the access-log entry.
    #[allow(
        clippy::boxed_local,
        reason = "taking the recording as it is kept ends it: a request is reported once \
                  (the lint fires or not as the recording's size crosses clippy's threshold)"
    )]
    fn finish(mut self: Box<Self>) {
        let duration = self.started.elapsed();
        if let Some(read) = &self.request_body_read {
            let announced = std::mem::replace(&mut self.request_body, read.get());
            self.request_bytes = self.request_bytes - announced + self.request_body;
        }
        if self.protocol == RequestProtocol::Grpc && self.grpc_status.is_none() {
            self.grpc_status = crate::metrics::grpc_status_of_http(self.status);
        }
        if let Some(metrics) = &self.shared.metrics {
            let destination_service = match &self.service {
                Some(service) => &**service,
                None => self
                    .addressed_authority()
                    .map_or(mesh_core::workload::UNKNOWN, host_of),
            };
            metrics.record(&RequestOutcome {
                destination_service,
                catch_all: self.catch_all,
                peer: self.peer.as_ref(),
                status: self.status,
                flags: self.flags,
                grpc_status: self.grpc_status,
                protocol: self.protocol,
                duration,
                request_bytes: self.request_bytes,
                response_bytes: self.response_bytes,
            });
        }
        if let (Some(log), Some(entry)) = (&self.shared.access_log, &mut self.entry) {
            let details = code_details(self.status, self.flags, self.local_reply.take());
            entry.fields.response_code_details = entry.copy(details.as_bytes());
            let fields = &mut entry.fields;
            fields.response_code = self.status;
            fields.response_flags = self.flags;
            fields.bytes_received = self.request_body;
            fields.bytes_sent = self.response_body;
            fields.duration = duration;
            log.log_draft(entry);
        }
    }
}

/// `bytes` as text, if they are visible ASCII (as [`HeaderValue::to_str`] requires).
fn visible_ascii(bytes: &[u8]) -> Option<&str> {
    if bytes
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        std::str::from_utf8(bytes).ok()
    } else {
        None
    }
}

/// The host of an authority (`catalog:8080` → `catalog`, `[::1]:80` → `[::1]`).
fn host_of(authority: &str) -> &str {
    match mesh_core::authority::split_port(authority) {
        (host, Some(_)) if !host.is_empty() => host,
        _ => authority,
    }
}

/// A `grpc-status` header or trailer.
fn grpc_status(headers: &HeaderMap) -> Option<u16> {
    headers.get(GRPC_STATUS)?.to_str().ok()?.parse().ok()
}

/// `%RESPONSE_CODE_DETAILS%`: `downstream_remote_disconnect` when the client went away, else
/// what the local reply says of itself ([`LocalReplyDetails`]), else `via_upstream` for an
/// upstream's answer (whatever flags it carries: a 503 whose retry was refused is `UO` yet
/// came from the upstream).
fn code_details(
    status: u16,
    flags: ResponseFlags,
    local: Option<Cow<'static, str>>,
) -> Cow<'static, str> {
    if flags.contains(ResponseFlag::DownstreamConnectionTermination) {
        return Cow::Borrowed("downstream_remote_disconnect");
    }
    match local {
        Some(details) => details,
        None if status == 0 => Cow::Borrowed("-"),
        None => Cow::Borrowed("via_upstream"),
    }
}

/// Future of [`Telemetry`]. Dropped before its response (the client went away), it still
/// reports the request: status `0`, flag `DC`.
///
/// ```
/// use mesh_trace::telemetry_layer::{TelemetryFuture, TelemetryLayer};
/// # use bytes::Bytes;
/// # use http_body_util::Empty;
/// # use std::{future::Future, task::{Context, Waker}};
/// # use tower::{Layer, Service, ServiceExt, service_fn};
/// # use mesh_core::workload::Workload;
/// # use mesh_trace::metrics::{IstioMetrics, MetricsRecorder, Reporter};
/// # use metrics_util::debugging::{DebuggingRecorder, Snapshotter};
/// # use std::sync::Arc;
/// # /// Metrics recording into a debugging recorder, and its snapshotter.
/// # fn metrics() -> (IstioMetrics, Snapshotter) {
/// #     let recorder = DebuggingRecorder::new();
/// #     let snapshotter = recorder.snapshotter();
/// #     let metrics = IstioMetrics::new(MetricsRecorder::Owned(Arc::new(recorder)), Reporter::Source, Workload::default());
/// #     (metrics, snapshotter)
/// # }
/// # /// Label `name` of the first `istio_requests_total` series, if there is one.
/// # fn label(snapshotter: &Snapshotter, name: &str) -> Option<String> {
/// #     let snapshot = snapshotter.snapshot().into_vec();
/// #     let (key, ..) = snapshot.iter().find(|(key, ..)| key.key().name() == "istio_requests_total")?;
/// #     key.key().labels().find(|l| l.key() == name).map(|l| l.value().to_owned())
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (metrics, snapshotter) = metrics(); // an `IstioMetrics` on a debugging recorder
/// let mut svc = TelemetryLayer::new().metrics(metrics).layer(service_fn(|_req: http::Request<Empty<Bytes>>| {
///     std::future::pending::<Result<http::Response<Empty<Bytes>>, std::convert::Infallible>>()
/// }));
/// let request = http::Request::get("http://catalog/items").body(Empty::new()).unwrap();
/// svc.ready().await.unwrap(); // tower: wait for readiness before `call`
/// let mut future: std::pin::Pin<Box<TelemetryFuture<_>>> = Box::pin(svc.call(request));
/// assert!(future.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
/// drop(future); // the client goes away before the response
/// assert_eq!(label(&snapshotter, "response_code").as_deref(), Some("0"));
/// assert_eq!(label(&snapshotter, "response_flags").as_deref(), Some("DC"));
/// # });
/// ```
#[pin_project(PinnedDrop)]
pub struct TelemetryFuture<F> {
    #[pin]
    future: F,
    recording: Option<Box<Recording>>,
}

impl<F, RB, E> Future for TelemetryFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
    RB: HttpBody,
{
    type Output = Result<Response<TelemetryBody<RB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.future.poll(cx)).map_err(Into::into);
        let mut recording = this.recording.take();
        Poll::Ready(match result {
            Ok(response) => {
                if let Some(recording) = &mut recording {
                    recording.response(&response);
                }
                let head = recording.as_ref().is_some_and(|r| r.head);
                Ok(watch_response(response, recording.map(PendingReport), head))
            }
            Err(error) => {
                if let Some(mut recording) = recording {
                    recording.error(&error);
                    recording.finish();
                }
                Err(error)
            }
        })
    }
}

#[pinned_drop]
impl<F> PinnedDrop for TelemetryFuture<F> {
    fn drop(self: Pin<&mut Self>) {
        if let Some(recording) = self.project().recording.take() {
            recording.abandon();
        }
    }
}

/// A response body that counts its bytes and reports the request when it ends. Dropped before
/// its end (the client went away), it reports flag `DC`.
///
/// ```
/// use mesh_trace::telemetry_layer::{TelemetryBody, TelemetryLayer};
/// # use bytes::Bytes;
/// # use http_body_util::{Empty, Full};
/// # use tower::{Layer, ServiceExt, service_fn};
/// # use mesh_core::workload::Workload;
/// # use mesh_trace::metrics::{IstioMetrics, MetricsRecorder, Reporter};
/// # use metrics_util::debugging::{DebuggingRecorder, Snapshotter};
/// # use std::sync::Arc;
/// # /// Metrics recording into a debugging recorder, and its snapshotter.
/// # fn metrics() -> (IstioMetrics, Snapshotter) {
/// #     let recorder = DebuggingRecorder::new();
/// #     let snapshotter = recorder.snapshotter();
/// #     let metrics = IstioMetrics::new(MetricsRecorder::Owned(Arc::new(recorder)), Reporter::Source, Workload::default());
/// #     (metrics, snapshotter)
/// # }
/// # /// Label `name` of the first `istio_requests_total` series, if there is one.
/// # fn label(snapshotter: &Snapshotter, name: &str) -> Option<String> {
/// #     let snapshot = snapshotter.snapshot().into_vec();
/// #     let (key, ..) = snapshot.iter().find(|(key, ..)| key.key().name() == "istio_requests_total")?;
/// #     key.key().labels().find(|l| l.key() == name).map(|l| l.value().to_owned())
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (metrics, snapshotter) = metrics(); // an `IstioMetrics` on a debugging recorder
/// let svc = TelemetryLayer::new().metrics(metrics).layer(service_fn(|_req: http::Request<Empty<Bytes>>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("hello"))))
/// }));
/// let request = http::Request::get("http://catalog/items").body(Empty::new()).unwrap();
/// let body: TelemetryBody<Full<Bytes>> = svc.oneshot(request).await.unwrap().into_body();
/// assert_eq!(label(&snapshotter, "response_code"), None); // not reported before the body ends
/// drop(body); // the client goes away mid-body
/// assert_eq!(label(&snapshotter, "response_code").as_deref(), Some("200"));
/// assert_eq!(label(&snapshotter, "response_flags").as_deref(), Some("DC"));
/// # });
/// ```
pub type TelemetryBody<B> = WatchedBody<B, PendingReport>;

/// The report of an exchange whose response body is still being sent: counts the body and
/// its trailers (a gRPC status), and is recorded when the body ends ([`TelemetryBody`]).
///
/// ```
/// use mesh_trace::telemetry_layer::TelemetryLayer;
/// # use bytes::Bytes;
/// # use http_body_util::{BodyExt, Empty, Full};
/// # use tower::{Layer, ServiceExt, service_fn};
/// # use mesh_core::workload::Workload;
/// # use mesh_trace::metrics::{IstioMetrics, MetricsRecorder, Reporter};
/// # use metrics_util::debugging::{DebuggingRecorder, Snapshotter};
/// # use std::sync::Arc;
/// # /// Metrics recording into a debugging recorder, and its snapshotter.
/// # fn metrics() -> (IstioMetrics, Snapshotter) {
/// #     let recorder = DebuggingRecorder::new();
/// #     let snapshotter = recorder.snapshotter();
/// #     let metrics = IstioMetrics::new(MetricsRecorder::Owned(Arc::new(recorder)), Reporter::Source, Workload::default());
/// #     (metrics, snapshotter)
/// # }
/// # /// Label `name` of the first `istio_requests_total` series, if there is one.
/// # fn label(snapshotter: &Snapshotter, name: &str) -> Option<String> {
/// #     let snapshot = snapshotter.snapshot().into_vec();
/// #     let (key, ..) = snapshot.iter().find(|(key, ..)| key.key().name() == "istio_requests_total")?;
/// #     key.key().labels().find(|l| l.key() == name).map(|l| l.value().to_owned())
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (metrics, snapshotter) = metrics(); // an `IstioMetrics` on a debugging recorder
/// let svc = TelemetryLayer::new().metrics(metrics).layer(service_fn(|_req: http::Request<Empty<Bytes>>| async {
///     let trailers = http::HeaderMap::from_iter([(http::header::HeaderName::from_static("grpc-status"), "14".parse().unwrap())]);
///     let body = Full::new(Bytes::from("reply")).with_trailers(async move { Some(Ok(trailers)) });
///     Ok::<_, std::convert::Infallible>(http::Response::new(body))
/// }));
/// let request = http::Request::post("http://catalog/shop.Catalog/List")
///     .header("content-type", "application/grpc").body(Empty::new()).unwrap();
/// let body = svc.oneshot(request).await.unwrap().into_body(); // a `PendingReport` watches it
/// assert_eq!(label(&snapshotter, "grpc_response_status"), None);
/// body.collect().await.unwrap(); // recorded at its end, with the status of its trailers
/// assert_eq!(label(&snapshotter, "grpc_response_status").as_deref(), Some("14"));
/// # });
/// ```
#[derive(Debug)]
pub struct PendingReport(Box<Recording>);

impl BodyWatcher for PendingReport {
    fn data(&mut self, bytes: u64) {
        self.0.count_response_body(bytes);
    }

    fn trailers(&mut self, trailers: &HeaderMap) {
        let recording = &mut self.0;
        recording.response_bytes += header_bytes(trailers);
        if recording.protocol == RequestProtocol::Grpc {
            recording.grpc_status = grpc_status(trailers).or(recording.grpc_status);
        }
    }

    fn error(&mut self) {
        self.0
            .flags
            .insert(ResponseFlag::UpstreamConnectionTermination);
    }

    fn end(self) {
        self.0.finish();
    }

    fn abandon(self) {
        self.0.abandon();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_bodies::Frames;
    use crate::{
        access_log::{AccessLogConfig, Encoding},
        metrics::MetricsRecorder,
    };
    use bytes::Bytes;
    use http_body::Frame;
    use http_body_util::{BodyExt, Empty, Full};
    use mesh_core::{
        Destination, RouteInfo,
        body_count::{CountedBody, count_streamed_body},
    };
    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
    use std::{collections::HashMap, io::Write, sync::Mutex};
    use tower::{ServiceExt, service_fn};

    /// A layer recording into a debugging recorder.
    fn layer() -> (TelemetryLayer, Snapshotter) {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let metrics = IstioMetrics::new(
            MetricsRecorder::Owned(Arc::new(recorder)),
            Reporter::Source,
            Workload::default(),
        );
        (TelemetryLayer::new().metrics(metrics), snapshotter)
    }

    /// Every `istio_requests_total` series: its labels and count.
    fn requests(snapshotter: &Snapshotter) -> Vec<(HashMap<String, String>, u64)> {
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == "istio_requests_total")
            .map(|(key, _, _, value)| {
                let labels = key
                    .key()
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                let DebugValue::Counter(count) = value else {
                    panic!("a counter")
                };
                (labels, count)
            })
            .collect()
    }

    /// The first sample of histogram `name` in `snapshot` (taking a snapshot drains them).
    fn first_sample(
        snapshot: &[(
            metrics_util::CompositeKey,
            Option<metrics::Unit>,
            Option<metrics::SharedString>,
            DebugValue,
        )],
        name: &str,
    ) -> f64 {
        snapshot
            .iter()
            .find(|(key, ..)| key.key().name() == name)
            .map(|(.., value)| match value {
                DebugValue::Histogram(samples) => samples[0].into_inner(),
                _ => panic!("a histogram"),
            })
            .unwrap()
    }

    fn get() -> Request<Empty<Bytes>> {
        Request::get("http://catalog/items")
            .body(Empty::new())
            .unwrap()
    }

    #[tokio::test]
    async fn a_client_that_goes_away_is_reported_with_status_0_and_dc() {
        let (layer, snapshotter) = layer();
        let svc = layer.layer(service_fn(|_req: Request<Empty<Bytes>>| {
            std::future::pending::<Result<Response<Empty<Bytes>>, BoxError>>()
        }));
        let mut call = Box::pin(svc.oneshot(get()));
        let waker = std::task::Waker::noop();
        assert!(
            call.as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending()
        );
        drop(call);
        let series = requests(&snapshotter);
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].0["response_code"], "0");
        assert_eq!(series[0].0["response_flags"], "DC");
    }

    #[tokio::test]
    async fn head_responses_end_with_their_headers() {
        let (layer, snapshotter) = layer();
        let svc = layer.layer(service_fn(|_req: Request<Empty<Bytes>>| async {
            // A body the server will drop unread, as it must for HEAD.
            Ok::<_, BoxError>(Response::new(Full::new(Bytes::from("route not found"))))
        }));
        let request = Request::head("http://catalog/items")
            .body(Empty::new())
            .unwrap();
        let response = svc.oneshot(request).await.unwrap();
        drop(response);
        let series = requests(&snapshotter);
        assert_eq!(series[0].0["response_flags"], "-", "not a disconnect");
        assert_eq!(series[0].1, 1);
    }

    #[tokio::test]
    async fn grpc_status_comes_from_the_trailers() {
        let (layer, snapshotter) = layer();
        let svc = layer.layer(service_fn(|_req: Request<Empty<Bytes>>| async {
            Ok::<_, BoxError>(grpc_response("14"))
        }));
        let request = grpc_request();
        let response = svc.oneshot(request).await.unwrap();
        response.into_body().collect().await.unwrap();
        let series = requests(&snapshotter);
        assert_eq!(series[0].0["request_protocol"], "grpc");
        assert_eq!(series[0].0["grpc_response_status"], "14");
    }

    #[tokio::test]
    async fn a_response_ends_with_its_trailers_even_if_never_polled_past_them() {
        let (layer, snapshotter) = layer();
        let svc = layer.layer(service_fn(|_req: Request<Empty<Bytes>>| async {
            Ok::<_, BoxError>(grpc_response("0"))
        }));
        let request = grpc_request();
        let mut body = svc.oneshot(request).await.unwrap().into_body();
        body.frame().await.unwrap().unwrap();
        assert!(body.frame().await.unwrap().unwrap().is_trailers());
        // As an HTTP/2 server does: the trailers are sent, the body dropped.
        drop(body);
        let series = requests(&snapshotter);
        assert_eq!(series[0].0["response_flags"], "-", "not a disconnect");
        assert_eq!(series[0].0["grpc_response_status"], "0");
    }

    /// A gRPC response: one empty message, then trailers with `grpc-status: status`.
    fn grpc_response(status: &'static str) -> Response<Frames> {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static(status));
        let frames = [
            Frame::data(Bytes::from_static(b"\0\0\0\0\0")),
            Frame::trailers(trailers),
        ];
        Response::new(Frames(frames.into()))
    }

    /// A gRPC request.
    fn grpc_request() -> Request<Empty<Bytes>> {
        Request::post("http://catalog/pkg.Svc/Call")
            .header("content-type", "application/grpc")
            .body(Empty::new())
            .unwrap()
    }

    #[tokio::test]
    async fn errors_are_reported_as_their_local_reply_with_the_routed_service() {
        let (layer, snapshotter) = layer();
        let svc = layer.layer(service_fn(|_req: Request<Empty<Bytes>>| async {
            let routed = Routed::new(
                RouteInfo {
                    name: Arc::from("r"),
                    virtual_service: Arc::from("shop/catalog"),
                },
                Some(Destination {
                    cluster: 0,
                    host: Arc::from("catalog.shop.svc.cluster.local"),
                    subset: None,
                    port: None,
                }),
            );
            Err::<Response<Empty<Bytes>>, BoxError>(
                RoutedError::new(routed, MeshError::Timeout.into()).into(),
            )
        }));
        assert!(svc.oneshot(get()).await.is_err());
        let series = requests(&snapshotter);
        let labels = &series[0].0;
        assert_eq!(labels["response_code"], "504");
        assert_eq!(labels["response_flags"], "UT");
        assert_eq!(
            labels["destination_service"],
            "catalog.shop.svc.cluster.local"
        );
        assert_eq!(labels["destination_service_name"], "catalog");
    }

    #[tokio::test]
    async fn registry_only_refusals_go_to_the_black_hole_cluster() {
        let (layer, snapshotter, log, out) = logged_layer();
        let svc = layer.layer(service_fn(|_req: Request<Empty<Bytes>>| async {
            Err::<Response<Empty<Bytes>>, BoxError>(
                MeshError::HostNotRegistered("example.com".into()).into(),
            )
        }));
        let request = Request::get("http://example.com/")
            .body(Empty::new())
            .unwrap();
        assert!(svc.oneshot(request).await.is_err());
        let labels = &requests(&snapshotter)[0].0;
        assert_eq!(labels["response_code"], "502");
        assert_eq!(labels["destination_service"], "example.com");
        assert_eq!(labels["destination_service_name"], "BlackHoleCluster");
        let line = only_line(&log, &out);
        assert_eq!(line["response_code"], 502);
        assert_eq!(line["upstream_cluster"], "BlackHoleCluster");
    }

    /// A writer into shared memory.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// [`layer`] with a JSON access log too, writing to the returned memory.
    fn logged_layer() -> (TelemetryLayer, Snapshotter, AccessLog, Shared) {
        let out = Shared::default();
        let log = AccessLog::new(out.clone(), Encoding::Json, AccessLogConfig::default());
        let (layer, snapshotter) = layer();
        (layer.access_log(log.clone()), snapshotter, log, out)
    }

    /// The one line `log` has written to `out`, as JSON.
    fn only_line(log: &AccessLog, out: &Shared) -> serde_json::Value {
        log.flush();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        serde_json::from_str(text.trim()).unwrap()
    }

    /// The bytes of a buffer that says when it is freed.
    struct Wire(Arc<std::sync::atomic::AtomicBool>, &'static [u8]);

    impl AsRef<[u8]> for Wire {
        fn as_ref(&self) -> &[u8] {
            self.1
        }
    }

    impl Drop for Wire {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn the_entry_keeps_none_of_the_requests_buffers() {
        // As hyper parses them: the URI and header values are slices of one read buffer.
        let freed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let wire = Bytes::from_owner(Wire(freed.clone(), b"/itemscurl/8.5catalog"));
        let value = |range| HeaderValue::from_maybe_shared(wire.slice(range)).unwrap();
        let mut request = Request::new(Empty::<Bytes>::new());
        *request.uri_mut() = Uri::from_maybe_shared(wire.slice(0..6)).unwrap();
        request.headers_mut().insert("user-agent", value(6..14));
        request.headers_mut().insert("host", value(14..21));
        drop(wire);
        // The route's name, shared by its requests.
        let route: Arc<str> = Arc::from("items");
        let routed = Routed::new(
            RouteInfo {
                name: route.clone(),
                virtual_service: Arc::from("shop/catalog"),
            },
            None,
        );
        let (layer, _, log, out) = logged_layer();
        let svc = layer.layer(service_fn(move |_req: Request<Empty<Bytes>>| {
            let mut response = Response::new(Full::new(Bytes::from("0123")));
            response.extensions_mut().insert(routed.clone());
            async { Ok::<_, BoxError>(response) }
        }));
        let body = svc.oneshot(request).await.unwrap().into_body();
        // The exchange goes on (the body is unread) without the request's buffer, and
        // without a count on the route's name.
        assert!(freed.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(
            Arc::strong_count(&route),
            1,
            "ours alone (the service is gone)"
        );
        body.collect().await.unwrap();
        let line = only_line(&log, &out);
        assert_eq!(
            [&line["path"], &line["user_agent"], &line["authority"]],
            ["/items", "curl/8.5", "catalog"]
        );
        assert_eq!(line["route_name"], "items");
    }

    #[tokio::test]
    async fn a_host_that_is_not_visible_ascii_is_logged_but_names_no_service() {
        let (layer, snapshotter, log, out) = logged_layer();
        let svc = layer.layer(service_fn(|_req: Request<Empty<Bytes>>| async {
            Ok::<_, BoxError>(Response::new(Empty::<Bytes>::new()))
        }));
        let request = Request::get("/items")
            .header("host", HeaderValue::from_bytes(b"caf\xe9").unwrap())
            .body(Empty::new())
            .unwrap();
        svc.oneshot(request).await.unwrap();
        // As `HeaderValue::to_str` reads it: not a name.
        assert_eq!(
            requests(&snapshotter)[0].0["destination_service"],
            "unknown"
        );
        assert_eq!(only_line(&log, &out)["authority"], "caf\u{fffd}");
    }

    #[tokio::test]
    async fn a_streamed_request_body_is_counted_as_it_was_read() {
        let (layer, snapshotter, log, out) = logged_layer();
        let svc = layer.layer(service_fn(|request: Request<_>| async move {
            let body: CountedBody<Frames> = request.into_body();
            body.collect().await.unwrap();
            Ok::<_, BoxError>(Response::new(Empty::<Bytes>::new()))
        }));
        let chunks = [&b"0123456789"[..], b"abcdefghij", b"xyz"].map(Bytes::from_static);
        let request = Request::post("http://catalog/upload")
            .header("content-type", "application/grpc")
            .body(Frames(chunks.into_iter().map(Frame::data).collect()))
            .unwrap();
        let response = svc.oneshot(count_streamed_body(request)).await.unwrap();
        response.into_body().collect().await.unwrap();
        assert_eq!(only_line(&log, &out)["bytes_received"], 23);
        let snapshot = snapshotter.snapshot().into_vec();
        let request_bytes = first_sample(&snapshot, "istio_request_bytes");
        let head = "POST /upload HTTP/1.1\r\ncontent-type: application/grpc\r\n".len();
        assert_eq!(request_bytes, (head + 23) as f64);
    }

    #[tokio::test]
    async fn the_access_log_counts_body_bytes_and_the_metrics_wire_bytes() {
        let (layer, snapshotter, log, out) = logged_layer();
        let svc = layer.layer(service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, BoxError>(Response::new(Full::new(Bytes::from("0123456789"))))
        }));
        let request = Request::post("http://catalog/items")
            .body(Full::new(Bytes::from("abc")))
            .unwrap();
        let response = svc.oneshot(request).await.unwrap();
        response.into_body().collect().await.unwrap();
        let line = only_line(&log, &out);
        assert_eq!(line["bytes_received"], 3);
        assert_eq!(line["bytes_sent"], 10);
        // One snapshot: taking one drains the histograms.
        let snapshot = snapshotter.snapshot().into_vec();
        let histogram = |name: &str| first_sample(&snapshot, name);
        assert!(histogram("istio_request_bytes") > 3.0, "headers count too");
        assert!(
            histogram("istio_response_bytes") > 10.0,
            "headers count too"
        );
    }

    #[tokio::test]
    async fn the_request_headers_read_are_each_ones_first_value() {
        let (layer, snapshotter, log, out) = logged_layer();
        let svc = layer.layer(service_fn(|_req: Request<Empty<Bytes>>| async {
            Ok::<_, BoxError>(Response::new(Empty::<Bytes>::new()))
        }));
        let request = Request::get("/items")
            .header("host", "catalog.shop:8080")
            .header("host", "ignored")
            .header("user-agent", "first/1")
            .header("user-agent", "second/2")
            .header("x-forwarded-for", "10.0.0.1")
            .header("x-request-id", "abc")
            .header("x-envoy-original-path", "/original")
            .header("content-type", "application/grpc+proto")
            .body(Empty::new())
            .unwrap();
        svc.oneshot(request).await.unwrap();
        let line = only_line(&log, &out);
        assert_eq!(line["authority"], "catalog.shop:8080");
        assert_eq!(line["user_agent"], "first/1");
        assert_eq!(line["x_forwarded_for"], "10.0.0.1");
        assert_eq!(line["request_id"], "abc");
        assert_eq!(line["path"], "/original");
        let [(labels, 1)] = &requests(&snapshotter)[..] else {
            panic!("one request, in one series")
        };
        // Unrouted: the service is the addressed host, without its port.
        assert_eq!(
            (
                &*labels["destination_service"],
                &*labels["request_protocol"]
            ),
            ("catalog.shop", "grpc")
        );
    }

    #[tokio::test]
    async fn without_an_access_log_an_unrouted_request_is_still_named_by_its_authority() {
        let (layer, snapshotter) = layer();
        let svc = layer.layer(service_fn(|_req: Request<Empty<Bytes>>| async {
            Ok::<_, BoxError>(Response::new(Empty::<Bytes>::new()))
        }));
        // Origin form: the `Host` header names it.
        let origin = Request::get("/items")
            .header("host", "reviews:9080")
            .body(Empty::new())
            .unwrap();
        svc.clone().oneshot(origin).await.unwrap();
        // Absolute form: the URI's authority does, over `Host`.
        let absolute = Request::get("http://ratings:9080/r")
            .header("host", "ignored")
            .body(Empty::new())
            .unwrap();
        svc.oneshot(absolute).await.unwrap();
        let mut services: Vec<String> = requests(&snapshotter)
            .into_iter()
            .map(|(labels, _)| labels["destination_service"].clone())
            .collect();
        services.sort();
        assert_eq!(services, ["ratings", "reviews"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_its_client_left_is_logged_with_status_0_and_dc() {
        let (layer, _, log, out) = logged_layer();
        let svc = layer.layer(service_fn(|_req: Request<Empty<Bytes>>| {
            std::future::pending::<Result<Response<Empty<Bytes>>, BoxError>>()
        }));
        let waited =
            tokio::time::timeout(std::time::Duration::from_secs(1), svc.oneshot(get())).await;
        assert!(waited.is_err(), "the upstream never answers");
        let line = only_line(&log, &out);
        assert_eq!(line["response_code"], 0);
        assert_eq!(line["response_flags"], "DC");
        assert_eq!(
            line["response_code_details"],
            "downstream_remote_disconnect"
        );
        assert!(line["upstream_cluster"].is_null() && line["route_name"].is_null());
    }

    #[tokio::test]
    async fn response_code_details_say_who_answered() {
        let answered = |reply: fn() -> Result<Response<Empty<Bytes>>, BoxError>| async move {
            let (layer, _, log, out) = logged_layer();
            let svc = layer.layer(service_fn(move |_req: Request<Empty<Bytes>>| async move {
                reply()
            }));
            let _ = svc.oneshot(get()).await;
            only_line(&log, &out)["response_code_details"].clone()
        };
        // An upstream's 503 whose retry was refused: flagged UO, yet the upstream's answer.
        let refused = || {
            let mut response = Response::new(Empty::new());
            *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            mesh_core::flags::mark(&mut response, ResponseFlag::UpstreamOverflow);
            Ok(response)
        };
        assert_eq!(answered(refused).await, "via_upstream");
        let direct = || {
            let mut response = Response::new(Empty::new());
            response
                .extensions_mut()
                .insert(LocalReplyDetails::fixed("direct_response"));
            Ok(response)
        };
        assert_eq!(answered(direct).await, "direct_response");
        let timed_out = || Err(MeshError::Timeout.into());
        assert_eq!(answered(timed_out).await, "upstream_response_timeout");
    }
}
