//! [`SpanLayer`]: records one span per sampled request — `CLIENT` on the outbound side,
//! `SERVER` on the inbound side — with Envoy's and Istio's tags, and hands it to a
//! [`SpanReporter`].
//!
//! It reads the [`TraceContext`] the [`TraceLayer`](crate::TraceLayer) put on the request
//! (place it inside that layer); requests without one, or not sampled, pass through at the
//! cost of one extension lookup. The span runs from the request's arrival to the end of its
//! response body, as Envoy's does (to its headers when the response has no body: `HEAD`, `204`,
//! `304`, an empty body; to the error when there is no response). Tags: `http.method`,
//! `http.url` (cut to 256 characters), `http.protocol`, `user_agent`, `guid:x-request-id`,
//! `guid:x-client-trace-id` (when the client sent one), `component: proxy`, `node_id`,
//! `istio.canonical_service`, `istio.canonical_revision`, `istio.namespace`,
//! `http.status_code`, `response_flags` (`-` when none), `upstream_cluster`, the custom tags,
//! `grpc.status_code` (from the response trailers, or the headers of a trailers-only reply),
//! and `error: true` on a 5xx, a non-OK gRPC status or a local error. A request its client
//! abandons is still reported: status `0`, flag `DC` — or, abandoned while its response body
//! was being sent, its status with `DC` added.
//!
//! [`SpanLayer::off`] records nothing but wraps response bodies all the same, so that a stack
//! has one type whether its spans are reported or not.

use crate::{
    TraceContext,
    custom_tags::CustomTag,
    identity::WorkloadIdentity,
    reporter::SpanReporter,
    span::{FinishedSpan, SpanKind},
};
use http::{HeaderMap, Method, Request, Response};
use http_body::Body as HttpBody;
use mesh_core::{
    BoxError, ResponseFlag, ResponseFlags, UpstreamCluster, UpstreamError,
    authority::request_authority,
    clock::Stamp,
    error::UpstreamTarget,
    local_reply::error_to_response,
    watched_body::{BodyWatcher, WatchedBody, watch_response},
};
use pin_project::pin_project;
use std::{
    borrow::Cow,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};
use tower::{Layer, Service};

/// Envoy's default `max_path_tag_length`.
///
/// ```
/// use mesh_trace::{identity::WorkloadIdentity, span_layer::{MAX_PATH_TAG_LENGTH, SpanTags}};
/// # use mesh_trace::{Decision, TraceContext, reporter::{ReporterConfig, SpanReporter}, span::SpanKind, span_layer::SpanLayer};
/// # use opentelemetry_sdk::trace::InMemorySpanExporter;
/// # use tower::{Layer, ServiceExt, service_fn};
/// # /// Sends one sampled request for `uri` through a span layer tagged with `tags`; returns
/// # /// the value of its span's tag `key`.
/// # async fn tag(tags: SpanTags, uri: &str, key: &str) -> Option<String> {
/// #     let exporter = InMemorySpanExporter::default();
/// #     let reporter = SpanReporter::spawn(exporter.clone(), ReporterConfig::default());
/// #     let svc = SpanLayer::new(SpanKind::Client, reporter, tags).layer(service_fn(|_req: http::Request<()>| async {
/// #         Ok::<_, std::convert::Infallible>(http::Response::new(mesh_core::body::empty()))
/// #     }));
/// #     let mut request = http::Request::get(uri).header("x-user", "ann").body(()).unwrap();
/// #     request.extensions_mut().insert(TraceContext::root(Decision { sampled: true, forced: false, debug: false }));
/// #     svc.oneshot(request).await.unwrap(); // the last reporter handle goes: the span is exported
/// #     while exporter.get_finished_spans().unwrap().is_empty() { tokio::task::yield_now().await; }
/// #     let span = exporter.get_finished_spans().unwrap().remove(0);
/// #     span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
/// # }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let tags = SpanTags::new(&WorkloadIdentity::from_lookup(|_| None), vec![]);
/// let long = format!("http://catalog/{}", "a".repeat(300));
/// let url = tag(tags, &long, "http.url").await.unwrap();
/// assert_eq!(url.len(), MAX_PATH_TAG_LENGTH);
/// assert_eq!(MAX_PATH_TAG_LENGTH, 256);
/// # });
/// ```
pub const MAX_PATH_TAG_LENGTH: usize = 256;

/// What every span of a layer is tagged with.
///
/// ```
/// use mesh_trace::{custom_tags::{CustomTag, TagSource}, identity::WorkloadIdentity, span_layer::SpanTags};
/// # use mesh_trace::{Decision, TraceContext, reporter::{ReporterConfig, SpanReporter}, span::SpanKind, span_layer::SpanLayer};
/// # use opentelemetry_sdk::trace::InMemorySpanExporter;
/// # use tower::{Layer, ServiceExt, service_fn};
/// # /// Sends one sampled request for `uri` through a span layer tagged with `tags`; returns
/// # /// the value of its span's tag `key`.
/// # async fn tag(tags: SpanTags, uri: &str, key: &str) -> Option<String> {
/// #     let exporter = InMemorySpanExporter::default();
/// #     let reporter = SpanReporter::spawn(exporter.clone(), ReporterConfig::default());
/// #     let svc = SpanLayer::new(SpanKind::Client, reporter, tags).layer(service_fn(|_req: http::Request<()>| async {
/// #         Ok::<_, std::convert::Infallible>(http::Response::new(mesh_core::body::empty()))
/// #     }));
/// #     let mut request = http::Request::get(uri).header("x-user", "ann").body(()).unwrap();
/// #     request.extensions_mut().insert(TraceContext::root(Decision { sampled: true, forced: false, debug: false }));
/// #     svc.oneshot(request).await.unwrap(); // the last reporter handle goes: the span is exported
/// #     while exporter.get_finished_spans().unwrap().is_empty() { tokio::task::yield_now().await; }
/// #     let span = exporter.get_finished_spans().unwrap().remove(0);
/// #     span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
/// # }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let user = CustomTag {
///     name: "user".into(),
///     source: TagSource::Header { name: "x-user".parse().unwrap(), default: None },
/// };
/// let tags = SpanTags::new(&WorkloadIdentity::from_lookup(|_| None), vec![user]);
/// assert_eq!(tag(tags.clone(), "http://catalog/", "user").await.as_deref(), Some("ann"));
/// assert_eq!(tag(tags, "http://catalog/", "component").await.as_deref(), Some("proxy"));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct SpanTags {
    /// Fixed tags: node id and Istio's workload tags.
    fixed: Vec<(Cow<'static, str>, String)>,
    /// Configured custom tags.
    custom: Vec<CustomTag>,
    /// `http.url` is cut to this many characters.
    max_path_tag_length: usize,
}

impl SpanTags {
    /// The tags for a proxy of `identity`, with `custom` tags.
    ///
    /// ```
    /// use mesh_trace::{identity::WorkloadIdentity, span_layer::SpanTags};
    /// # use mesh_trace::{Decision, TraceContext, reporter::{ReporterConfig, SpanReporter}, span::SpanKind, span_layer::SpanLayer};
    /// # use opentelemetry_sdk::trace::InMemorySpanExporter;
    /// # use tower::{Layer, ServiceExt, service_fn};
    /// # /// Sends one sampled request for `uri` through a span layer tagged with `tags`; returns
    /// # /// the value of its span's tag `key`.
    /// # async fn tag(tags: SpanTags, uri: &str, key: &str) -> Option<String> {
    /// #     let exporter = InMemorySpanExporter::default();
    /// #     let reporter = SpanReporter::spawn(exporter.clone(), ReporterConfig::default());
    /// #     let svc = SpanLayer::new(SpanKind::Client, reporter, tags).layer(service_fn(|_req: http::Request<()>| async {
    /// #         Ok::<_, std::convert::Infallible>(http::Response::new(mesh_core::body::empty()))
    /// #     }));
    /// #     let mut request = http::Request::get(uri).header("x-user", "ann").body(()).unwrap();
    /// #     request.extensions_mut().insert(TraceContext::root(Decision { sampled: true, forced: false, debug: false }));
    /// #     svc.oneshot(request).await.unwrap(); // the last reporter handle goes: the span is exported
    /// #     while exporter.get_finished_spans().unwrap().is_empty() { tokio::task::yield_now().await; }
    /// #     let span = exporter.get_finished_spans().unwrap().remove(0);
    /// #     span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let identity = WorkloadIdentity::from_lookup(|name| match name {
    ///     "POD_NAME" => Some("web-1".into()),
    ///     "POD_NAMESPACE" => Some("shop".into()),
    ///     "CANONICAL_SERVICE" => Some("web".into()),
    ///     _ => None,
    /// });
    /// let tags = SpanTags::new(&identity, vec![]);
    /// let node_id = tag(tags.clone(), "http://catalog/", "node_id").await;
    /// assert_eq!(node_id.as_deref(), Some("sidecar~127.0.0.1~web-1.shop~shop.svc.cluster.local"));
    /// assert_eq!(tag(tags, "http://catalog/", "istio.canonical_service").await.as_deref(), Some("web"));
    /// # });
    /// ```
    pub fn new(identity: &WorkloadIdentity, custom: Vec<CustomTag>) -> Self {
        SpanTags {
            fixed: vec![
                ("component".into(), "proxy".into()),
                ("node_id".into(), identity.node_id()),
                (
                    "istio.canonical_service".into(),
                    identity.canonical_service.clone(),
                ),
                (
                    "istio.canonical_revision".into(),
                    identity.canonical_revision.clone(),
                ),
                ("istio.namespace".into(), identity.namespace.clone()),
            ],
            custom,
            max_path_tag_length: MAX_PATH_TAG_LENGTH,
        }
    }

    /// Leaves Istio's workload tags (`istio.*`) out (Telemetry `enableIstioTags: false`).
    ///
    /// ```
    /// use mesh_trace::{identity::WorkloadIdentity, span_layer::SpanTags};
    /// # use mesh_trace::{Decision, TraceContext, reporter::{ReporterConfig, SpanReporter}, span::SpanKind, span_layer::SpanLayer};
    /// # use opentelemetry_sdk::trace::InMemorySpanExporter;
    /// # use tower::{Layer, ServiceExt, service_fn};
    /// # /// Sends one sampled request for `uri` through a span layer tagged with `tags`; returns
    /// # /// the value of its span's tag `key`.
    /// # async fn tag(tags: SpanTags, uri: &str, key: &str) -> Option<String> {
    /// #     let exporter = InMemorySpanExporter::default();
    /// #     let reporter = SpanReporter::spawn(exporter.clone(), ReporterConfig::default());
    /// #     let svc = SpanLayer::new(SpanKind::Client, reporter, tags).layer(service_fn(|_req: http::Request<()>| async {
    /// #         Ok::<_, std::convert::Infallible>(http::Response::new(mesh_core::body::empty()))
    /// #     }));
    /// #     let mut request = http::Request::get(uri).header("x-user", "ann").body(()).unwrap();
    /// #     request.extensions_mut().insert(TraceContext::root(Decision { sampled: true, forced: false, debug: false }));
    /// #     svc.oneshot(request).await.unwrap(); // the last reporter handle goes: the span is exported
    /// #     while exporter.get_finished_spans().unwrap().is_empty() { tokio::task::yield_now().await; }
    /// #     let span = exporter.get_finished_spans().unwrap().remove(0);
    /// #     span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let tags = SpanTags::new(&WorkloadIdentity::from_lookup(|_| None), vec![]).without_istio_tags();
    /// assert_eq!(tag(tags.clone(), "http://catalog/", "istio.namespace").await, None);
    /// assert!(tag(tags, "http://catalog/", "node_id").await.is_some()); // not an `istio.*` tag
    /// # });
    /// ```
    pub fn without_istio_tags(mut self) -> Self {
        self.fixed.retain(|(name, _)| !name.starts_with("istio."));
        self
    }

    /// Cuts `http.url` to `length` characters (Istio `maxPathTagLength`).
    ///
    /// ```
    /// use mesh_trace::{identity::WorkloadIdentity, span_layer::SpanTags};
    /// # use mesh_trace::{Decision, TraceContext, reporter::{ReporterConfig, SpanReporter}, span::SpanKind, span_layer::SpanLayer};
    /// # use opentelemetry_sdk::trace::InMemorySpanExporter;
    /// # use tower::{Layer, ServiceExt, service_fn};
    /// # /// Sends one sampled request for `uri` through a span layer tagged with `tags`; returns
    /// # /// the value of its span's tag `key`.
    /// # async fn tag(tags: SpanTags, uri: &str, key: &str) -> Option<String> {
    /// #     let exporter = InMemorySpanExporter::default();
    /// #     let reporter = SpanReporter::spawn(exporter.clone(), ReporterConfig::default());
    /// #     let svc = SpanLayer::new(SpanKind::Client, reporter, tags).layer(service_fn(|_req: http::Request<()>| async {
    /// #         Ok::<_, std::convert::Infallible>(http::Response::new(mesh_core::body::empty()))
    /// #     }));
    /// #     let mut request = http::Request::get(uri).header("x-user", "ann").body(()).unwrap();
    /// #     request.extensions_mut().insert(TraceContext::root(Decision { sampled: true, forced: false, debug: false }));
    /// #     svc.oneshot(request).await.unwrap(); // the last reporter handle goes: the span is exported
    /// #     while exporter.get_finished_spans().unwrap().is_empty() { tokio::task::yield_now().await; }
    /// #     let span = exporter.get_finished_spans().unwrap().remove(0);
    /// #     span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let tags = SpanTags::new(&WorkloadIdentity::from_lookup(|_| None), vec![]).max_path_tag_length(20);
    /// let url = tag(tags, "http://catalog/items?page=2", "http.url").await;
    /// assert_eq!(url.as_deref(), Some("http://catalog/items"));
    /// # });
    /// ```
    pub fn max_path_tag_length(mut self, length: usize) -> Self {
        self.max_path_tag_length = length;
        self
    }
}

/// Records spans; see the [module docs](self).
///
/// ```
/// use mesh_trace::{Decision, TraceContext, identity::WorkloadIdentity,
///     reporter::{ReporterConfig, SpanReporter}, span::SpanKind, span_layer::{SpanLayer, SpanTags}};
/// use opentelemetry_sdk::trace::InMemorySpanExporter;
/// use std::sync::atomic::Ordering;
/// use tower::{Layer, ServiceExt, service_fn};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let exporter = InMemorySpanExporter::default();
/// let reporter = SpanReporter::spawn(exporter.clone(), ReporterConfig::default());
/// let tags = SpanTags::new(&WorkloadIdentity::from_lookup(|_| None), vec![]);
/// let svc = SpanLayer::new(SpanKind::Client, reporter.clone(), tags).layer(service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(mesh_core::body::empty()))
/// }));
/// let mut request = http::Request::get("http://catalog/items").body(()).unwrap();
/// request.extensions_mut().insert(TraceContext::root(Decision { sampled: true, forced: false, debug: false }));
/// svc.oneshot(request).await.unwrap();
/// assert_eq!(reporter.stats().reported.load(Ordering::Relaxed), 1);
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct SpanLayer {
    /// `None`: [`SpanLayer::off`].
    recorder: Option<Arc<Recorder>>,
}

/// What a recording [`SpanLayer`] records with.
#[derive(Debug)]
struct Recorder {
    kind: SpanKind,
    reporter: SpanReporter,
    tags: SpanTags,
}

impl SpanLayer {
    /// Records `kind` spans tagged with `tags` into `reporter`.
    ///
    /// ```
    /// use mesh_trace::{Decision, TraceContext, identity::WorkloadIdentity,
    ///     reporter::{ReporterConfig, SpanReporter}, span::SpanKind, span_layer::{SpanLayer, SpanTags}};
    /// # use opentelemetry_sdk::trace::InMemorySpanExporter;
    /// # use tower::{Layer, ServiceExt, service_fn};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let exporter = InMemorySpanExporter::default();
    /// let reporter = SpanReporter::spawn(exporter.clone(), ReporterConfig::default());
    /// let tags = SpanTags::new(&WorkloadIdentity::from_lookup(|_| None), vec![]);
    /// let svc = SpanLayer::new(SpanKind::Server, reporter, tags).layer(service_fn(|_req: http::Request<()>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(mesh_core::body::empty()))
    /// }));
    /// let mut request = http::Request::get("http://Catalog.shop:8080/items").body(()).unwrap();
    /// request.extensions_mut().insert(TraceContext::root(Decision { sampled: true, forced: false, debug: false }));
    /// svc.oneshot(request).await.unwrap(); // the last reporter handle goes: the span is exported
    /// # while exporter.get_finished_spans().unwrap().is_empty() { tokio::task::yield_now().await; }
    /// let span = &exporter.get_finished_spans().unwrap()[0];
    /// assert_eq!(span.span_kind, opentelemetry::trace::SpanKind::Server);
    /// assert_eq!(span.name, "catalog.shop:8080/*");
    /// # });
    /// ```
    pub fn new(kind: SpanKind, reporter: SpanReporter, tags: SpanTags) -> Self {
        mesh_core::clock::calibrate();
        SpanLayer {
            recorder: Some(Arc::new(Recorder {
                kind,
                reporter,
                tags,
            })),
        }
    }

    /// A layer that records no span, for a stack whose spans are off: its service has the
    /// same type as a recording one's.
    ///
    /// ```
    /// use mesh_trace::{Decision, TraceContext, span_layer::SpanLayer};
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let svc = SpanLayer::off().layer(service_fn(|_req: http::Request<()>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(mesh_core::body::full("ok")))
    /// }));
    /// let mut request = http::Request::get("http://catalog/").body(()).unwrap();
    /// request.extensions_mut().insert(TraceContext::root(Decision { sampled: true, forced: false, debug: false }));
    /// let response = svc.oneshot(request).await.unwrap();
    /// assert_eq!(http_body::Body::size_hint(response.body()).exact(), Some(2));
    /// # }
    /// ```
    pub fn off() -> Self {
        SpanLayer { recorder: None }
    }

    /// Whether the layer records spans (it is not [`off`](SpanLayer::off)).
    ///
    /// ```
    /// assert!(!mesh_trace::span_layer::SpanLayer::off().records());
    /// ```
    pub fn records(&self) -> bool {
        self.recorder.is_some()
    }
}

impl<S> Layer<S> for SpanLayer {
    type Service = Span<S>;

    fn layer(&self, inner: S) -> Span<S> {
        Span {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`SpanLayer`] produces.
///
/// ```
/// use mesh_trace::{Decision, TraceContext, identity::WorkloadIdentity,
///     reporter::{ReporterConfig, SpanReporter}, span::SpanKind, span_layer::{Span, SpanLayer, SpanTags}};
/// # use opentelemetry_sdk::trace::InMemorySpanExporter;
/// # use std::sync::atomic::Ordering;
/// # use tower::{Layer, Service, ServiceExt, service_fn};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let reporter = SpanReporter::spawn(InMemorySpanExporter::default(), ReporterConfig::default());
/// let tags = SpanTags::new(&WorkloadIdentity::from_lookup(|_| None), vec![]);
/// let mut svc: Span<_> = SpanLayer::new(SpanKind::Client, reporter.clone(), tags).layer(service_fn(
///     |_req: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(mesh_core::body::empty())) },
/// ));
/// let request = |sampled| {
///     let mut request = http::Request::get("http://catalog/").body(()).unwrap();
///     request.extensions_mut().insert(TraceContext::root(Decision { sampled, forced: false, debug: false }));
///     request
/// };
/// svc.ready().await.unwrap().call(request(false)).await.unwrap(); // not sampled: no span
/// svc.ready().await.unwrap().call(request(true)).await.unwrap();
/// assert_eq!(reporter.stats().reported.load(Ordering::Relaxed), 1);
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct Span<S> {
    inner: S,
    layer: SpanLayer,
}

impl<S, B, RB> Service<Request<B>> for Span<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    RB: HttpBody,
{
    type Response = Response<SpanBody<RB>>;
    type Error = BoxError;
    type Future = SpanFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> SpanFuture<S::Future> {
        let open = self.layer.recorder.as_ref().and_then(|recorder| {
            let context = request.extensions().get::<TraceContext>()?;
            (context.sampled == Some(true))
                .then(|| Box::new(recorder.open(context.clone(), &request)))
        });
        SpanFuture {
            future: self.inner.call(request),
            open,
        }
    }
}

/// A span being recorded.
#[derive(Debug)]
struct OpenSpan {
    span: FinishedSpan,
    started: Stamp,
    reporter: SpanReporter,
    /// A `HEAD` request: its response has no body, whatever its headers say.
    head: bool,
    /// What the response said, once it has come (`0` before).
    status: u16,
    flags: ResponseFlags,
    grpc_status: Option<String>,
}

impl Recorder {
    fn open<B>(&self, context: TraceContext, request: &Request<B>) -> OpenSpan {
        let tags = &self.tags;
        let headers = request.headers();
        let authority = request_authority(request).unwrap_or("unknown");
        let (host, port) = match mesh_core::authority::split_port(authority) {
            (host, Some(port)) => (host, port),
            (host, None) => (host, "80"),
        };
        let name = format!("{host}:{port}/*").to_ascii_lowercase();
        let mut url = format!(
            "http://{authority}{}",
            request.uri().path_and_query().map_or("/", |p| p.as_str())
        );
        if url.len() > tags.max_path_tag_length {
            let mut cut = tags.max_path_tag_length;
            while !url.is_char_boundary(cut) {
                cut -= 1;
            }
            url.truncate(cut);
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let mut span_tags: Vec<(Cow<'static, str>, String)> = tags.fixed.clone();
        span_tags.push(("http.method".into(), request.method().to_string()));
        span_tags.push(("http.url".into(), url));
        span_tags.push(("http.protocol".into(), protocol(request.version()).into()));
        if let Some(agent) = header("user-agent") {
            span_tags.push(("user_agent".into(), agent.to_owned()));
        }
        if let Some(id) = header("x-request-id") {
            span_tags.push(("guid:x-request-id".into(), id.to_owned()));
        }
        if let Some(id) = header("x-client-trace-id") {
            span_tags.push(("guid:x-client-trace-id".into(), id.to_owned()));
        }
        for tag in &tags.custom {
            if let Some(value) = tag.value(headers) {
                span_tags.push((tag.name.clone(), value));
            }
        }
        let started = Stamp::now();
        OpenSpan {
            span: FinishedSpan {
                context,
                kind: self.kind,
                name,
                start: started.system_time(),
                duration: Default::default(),
                tags: span_tags,
                error: false,
            },
            started,
            reporter: self.reporter.clone(),
            head: request.method() == Method::HEAD,
            status: 0,
            flags: ResponseFlags::default(),
            grpc_status: None,
        }
    }
}

impl OpenSpan {
    /// Takes the response's status, flags, cluster and gRPC status (a trailers-only reply's).
    fn response(
        &mut self,
        status: u16,
        flags: Option<&ResponseFlags>,
        cluster: Option<&UpstreamCluster>,
        headers: Option<&HeaderMap>,
    ) {
        self.status = status;
        if let Some(flags) = flags {
            self.flags = *flags;
        }
        if let Some(cluster) = cluster {
            self.span
                .tags
                .push(("upstream_cluster".into(), cluster.0.to_string()));
        }
        if let Some(headers) = headers {
            self.grpc(headers);
        }
    }

    /// Takes the gRPC status in `headers` (trailers, or a trailers-only reply's headers).
    fn grpc(&mut self, headers: &HeaderMap) {
        if let Some(status) = headers.get("grpc-status").and_then(|v| v.to_str().ok()) {
            self.grpc_status = Some(status.to_owned());
        }
    }

    /// Ends the span and reports it.
    fn close(mut self) {
        let span = &mut self.span;
        span.duration = self.started.elapsed();
        span.tags
            .push(("http.status_code".into(), self.status.to_string()));
        let flags = match self.flags.is_empty() {
            true => "-".to_owned(),
            false => self.flags.to_string(),
        };
        span.tags.push(("response_flags".into(), flags));
        span.error = self.status >= 500 || self.grpc_status.as_deref().is_some_and(|g| g != "0");
        if let Some(grpc) = self.grpc_status {
            span.tags.push(("grpc.status_code".into(), grpc));
        }
        self.reporter.report(self.span);
    }

    /// Ends the span of a request its client went away from (flag `DC`).
    fn abandon(mut self) {
        self.flags
            .insert(ResponseFlag::DownstreamConnectionTermination);
        self.close();
    }
}

/// The protocol as Envoy tags it.
fn protocol(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// Future of [`Span`]. Dropped before its response (the client went away), it still reports
/// its span: status `0`, flag `DC`, as Envoy does.
///
/// ```
/// use mesh_trace::{Decision, TraceContext, identity::WorkloadIdentity,
///     reporter::{ReporterConfig, SpanReporter}, span::SpanKind, span_layer::{SpanFuture, SpanLayer, SpanTags}};
/// # use opentelemetry_sdk::trace::InMemorySpanExporter;
/// # use std::{future::Future, task::{Context, Waker}};
/// # use tower::{Layer, Service, ServiceExt, service_fn};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let exporter = InMemorySpanExporter::default();
/// let reporter = SpanReporter::spawn(exporter.clone(), ReporterConfig::default());
/// let tags = SpanTags::new(&WorkloadIdentity::from_lookup(|_| None), vec![]);
/// let mut svc = SpanLayer::new(SpanKind::Server, reporter, tags).layer(service_fn(|_req: http::Request<()>| {
///     std::future::pending::<Result<http::Response<mesh_core::Body>, std::convert::Infallible>>() // never answers
/// }));
/// let mut request = http::Request::get("http://catalog/").body(()).unwrap();
/// request.extensions_mut().insert(TraceContext::root(Decision { sampled: true, forced: false, debug: false }));
/// svc.ready().await.unwrap(); // tower: wait for readiness before `call`
/// let mut future: std::pin::Pin<Box<SpanFuture<_>>> = Box::pin(svc.call(request));
/// assert!(future.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
/// drop((future, svc)); // the client goes away
/// # while exporter.get_finished_spans().unwrap().is_empty() { tokio::task::yield_now().await; }
/// let span = &exporter.get_finished_spans().unwrap()[0];
/// let tag = |key: &str| span.attributes.iter().find(|kv| kv.key.as_str() == key).unwrap().value.to_string();
/// assert_eq!((tag("http.status_code").as_str(), tag("response_flags").as_str()), ("0", "DC"));
/// # });
/// ```
#[pin_project(PinnedDrop)]
pub struct SpanFuture<F> {
    #[pin]
    future: F,
    open: Option<Box<OpenSpan>>,
}

impl<F, RB, E> Future for SpanFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
    RB: HttpBody,
{
    type Output = Result<Response<SpanBody<RB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.future.poll(cx)).map_err(Into::into);
        let mut open = this.open.take();
        Poll::Ready(match result {
            Ok(response) => {
                if let Some(open) = open.as_mut() {
                    open.response(
                        response.status().as_u16(),
                        response.extensions().get::<ResponseFlags>(),
                        UpstreamTarget::of_response(response.extensions()).cluster,
                        Some(response.headers()),
                    );
                }
                let head = open.as_ref().is_some_and(|open| open.head);
                Ok(watch_response(response, open.map(PendingSpan), head))
            }
            Err(error) => {
                if let Some(mut open) = open {
                    // The local reply the client will get.
                    let reply = error_to_response(&error);
                    let flags = reply.extensions().get::<ResponseFlags>();
                    // A failure at an upstream says which cluster it was.
                    let cluster = UpstreamError::find(&error).map(|e| &e.target().cluster);
                    open.response(reply.status().as_u16(), flags, cluster, None);
                    open.close();
                }
                Err(error)
            }
        })
    }
}

#[pin_project::pinned_drop]
impl<F> PinnedDrop for SpanFuture<F> {
    fn drop(self: Pin<&mut Self>) {
        if let Some(open) = self.project().open.take() {
            open.abandon();
        }
    }
}

/// The response body of a [`Span`]: the span ends with it — at its last frame (a gRPC
/// status in its trailers is tagged), at an error, or when it is dropped unfinished (flag `DC`).
///
/// ```
/// use mesh_trace::{Decision, TraceContext, identity::WorkloadIdentity,
///     reporter::{ReporterConfig, SpanReporter}, span::SpanKind, span_layer::{SpanLayer, SpanTags}};
/// use http_body_util::BodyExt;
/// # use opentelemetry_sdk::trace::InMemorySpanExporter;
/// # use std::sync::atomic::Ordering;
/// # use tower::{Layer, ServiceExt, service_fn};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let reporter = SpanReporter::spawn(InMemorySpanExporter::default(), ReporterConfig::default());
/// let tags = SpanTags::new(&WorkloadIdentity::from_lookup(|_| None), vec![]);
/// let svc = SpanLayer::new(SpanKind::Client, reporter.clone(), tags).layer(service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(mesh_core::body::full("items")))
/// }));
/// let mut request = http::Request::get("http://catalog/items").body(()).unwrap();
/// request.extensions_mut().insert(TraceContext::root(Decision { sampled: true, forced: false, debug: false }));
/// let response = svc.oneshot(request).await.unwrap();
/// assert_eq!(reporter.stats().reported.load(Ordering::Relaxed), 0, "the body is still to come");
/// response.into_body().collect().await.unwrap();
/// assert_eq!(reporter.stats().reported.load(Ordering::Relaxed), 1);
/// # });
/// ```
pub type SpanBody<B> = WatchedBody<B, PendingSpan>;

/// A span whose response body is still being sent: takes a gRPC status from the trailers, and
/// is reported when the body ends ([`SpanBody`]).
///
/// ```
/// use mesh_trace::{Decision, TraceContext, identity::WorkloadIdentity,
///     reporter::{ReporterConfig, SpanReporter}, span::SpanKind, span_layer::{SpanLayer, SpanTags}};
/// use http_body_util::{BodyExt, Full};
/// # use opentelemetry_sdk::trace::InMemorySpanExporter;
/// # use tower::{Layer, ServiceExt, service_fn};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let exporter = InMemorySpanExporter::default();
/// let reporter = SpanReporter::spawn(exporter.clone(), ReporterConfig::default());
/// let tags = SpanTags::new(&WorkloadIdentity::from_lookup(|_| None), vec![]);
/// let svc = SpanLayer::new(SpanKind::Client, reporter, tags).layer(service_fn(|_req: http::Request<()>| async {
///     let trailers = http::HeaderMap::from_iter([(http::header::HeaderName::from_static("grpc-status"), "14".parse().unwrap())]);
///     let body = Full::new(bytes::Bytes::from("reply")).with_trailers(async move { Some(Ok(trailers)) });
///     Ok::<_, std::convert::Infallible>(http::Response::new(body))
/// }));
/// let mut request = http::Request::post("http://catalog/shop.Catalog/List").body(()).unwrap();
/// request.extensions_mut().insert(TraceContext::root(Decision { sampled: true, forced: false, debug: false }));
/// let response = svc.oneshot(request).await.unwrap(); // a `PendingSpan` watches the body
/// response.into_body().collect().await.unwrap(); // reported at the end, trailers read
/// # while exporter.get_finished_spans().unwrap().is_empty() { tokio::task::yield_now().await; }
/// let span = exporter.get_finished_spans().unwrap().remove(0);
/// let grpc = span.attributes.iter().find(|kv| kv.key.as_str() == "grpc.status_code");
/// assert_eq!(grpc.map(|kv| kv.value.to_string()).as_deref(), Some("14"));
/// # });
/// ```
#[derive(Debug)]
pub struct PendingSpan(Box<OpenSpan>);

impl BodyWatcher for PendingSpan {
    fn trailers(&mut self, trailers: &HeaderMap) {
        self.0.grpc(trailers);
    }

    fn error(&mut self) {
        self.0
            .flags
            .insert(ResponseFlag::UpstreamConnectionTermination);
    }

    fn end(self) {
        self.0.close();
    }

    fn abandon(self) {
        self.0.abandon();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_bodies::Frames;
    use crate::{Decision, custom_tags::TagSource, reporter::ReporterConfig};
    use bytes::Bytes;
    use http_body::Frame;
    use http_body_util::{BodyExt, Empty};
    use mesh_core::{MeshError, ResponseFlag, flags::mark};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
    use std::time::Duration;
    use tower::{ServiceExt, service_fn};

    fn identity() -> WorkloadIdentity {
        WorkloadIdentity::from_lookup(|name| match name {
            "POD_NAME" => Some("frontend-1".into()),
            "POD_NAMESPACE" => Some("shop".into()),
            "CANONICAL_SERVICE" => Some("frontend".into()),
            _ => None,
        })
    }

    fn sampled(sampled: bool) -> TraceContext {
        TraceContext::root(Decision {
            sampled,
            forced: false,
            debug: false,
        })
    }

    /// Sends one request with `context` through a span layer over `reply`; returns the spans.
    async fn record(
        context: Option<TraceContext>,
        tags: SpanTags,
        reply: Result<Response<()>, MeshError>,
    ) -> Vec<SpanData> {
        let exporter = InMemorySpanExporter::default();
        let reporter = SpanReporter::spawn(exporter.clone(), ReporterConfig::default());
        let svc = SpanLayer::new(SpanKind::Client, reporter, tags).layer(service_fn(
            move |_req: Request<()>| {
                let reply = match &reply {
                    Ok(response) => {
                        let mut copy = Response::new(Empty::<Bytes>::new());
                        *copy.status_mut() = response.status();
                        *copy.extensions_mut() = response.extensions().clone();
                        *copy.headers_mut() = response.headers().clone();
                        Ok(copy)
                    }
                    Err(_) => Err(MeshError::Timeout),
                };
                async move { reply }
            },
        ));
        let mut request = Request::get("http://catalog.shop:8080/items?id=1")
            .header("x-request-id", "r-1")
            .header("x-client-trace-id", "checkout-42")
            .header("x-user", "ann")
            .body(())
            .unwrap();
        if let Some(context) = context {
            request.extensions_mut().insert(context);
        }
        let _ = svc.oneshot(request).await;
        exported(&exporter).await
    }

    /// The spans `exporter` holds once the reporter has flushed (paused time).
    async fn exported(exporter: &InMemorySpanExporter) -> Vec<SpanData> {
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        exporter.get_finished_spans().unwrap()
    }

    fn tag(span: &SpanData, key: &str) -> Option<String> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    }

    #[tokio::test(start_paused = true)]
    async fn a_sampled_request_gets_a_span_with_envoy_and_custom_tags() {
        let custom = vec![CustomTag {
            name: "user".into(),
            source: TagSource::Header {
                name: "x-user".parse().unwrap(),
                default: None,
            },
        }];
        let mut ok = Response::new(());
        ok.extensions_mut()
            .insert(UpstreamCluster("outbound|8080||catalog.shop".into()));
        let context = sampled(true);
        let spans = record(
            Some(context.clone()),
            SpanTags::new(&identity(), custom),
            Ok(ok),
        )
        .await;
        assert_eq!(spans.len(), 1);
        let span = &spans[0];
        assert_eq!(span.name, "catalog.shop:8080/*");
        assert_eq!(
            span.span_context.span_id().to_string(),
            context.span_id.to_string()
        );
        for (key, value) in [
            ("http.method", "GET"),
            ("http.url", "http://catalog.shop:8080/items?id=1"),
            ("http.status_code", "200"),
            ("response_flags", "-"),
            ("upstream_cluster", "outbound|8080||catalog.shop"),
            ("guid:x-request-id", "r-1"),
            ("guid:x-client-trace-id", "checkout-42"),
            ("http.protocol", "HTTP/1.1"),
            ("user", "ann"),
            ("istio.canonical_service", "frontend"),
            (
                "node_id",
                "sidecar~127.0.0.1~frontend-1.shop~shop.svc.cluster.local",
            ),
        ] {
            assert_eq!(tag(span, key).as_deref(), Some(value), "{key}");
        }
        assert_eq!(span.status, opentelemetry::trace::Status::Unset);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_and_5xx_are_tagged_with_the_local_reply() {
        let spans = record(
            Some(sampled(true)),
            SpanTags::new(&identity(), vec![]).without_istio_tags(),
            Err(MeshError::Timeout),
        )
        .await;
        assert_eq!(tag(&spans[0], "http.status_code").as_deref(), Some("504"));
        assert_eq!(tag(&spans[0], "response_flags").as_deref(), Some("UT"));
        assert!(tag(&spans[0], "istio.canonical_service").is_none());
        assert_eq!(spans[0].status, opentelemetry::trace::Status::error("true"));

        let mut overflow = Response::new(());
        *overflow.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        mark(&mut overflow, ResponseFlag::UpstreamOverflow);
        let spans = record(
            Some(sampled(true)),
            SpanTags::new(&identity(), vec![]),
            Ok(overflow),
        )
        .await;
        assert_eq!(tag(&spans[0], "response_flags").as_deref(), Some("UO"));
        assert_eq!(spans[0].status, opentelemetry::trace::Status::error("true"));

        // A gRPC failure in a 200 (trailers-only reply) is an error too.
        let mut unavailable = Response::new(());
        unavailable
            .headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static("14"));
        let spans = record(
            Some(sampled(true)),
            SpanTags::new(&identity(), vec![]),
            Ok(unavailable),
        )
        .await;
        assert_eq!(tag(&spans[0], "grpc.status_code").as_deref(), Some("14"));
        assert_eq!(spans[0].status, opentelemetry::trace::Status::error("true"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_cancelled_by_its_client_still_reports_a_dc_span() {
        let exporter = InMemorySpanExporter::default();
        let reporter = SpanReporter::spawn(exporter.clone(), ReporterConfig::default());
        let svc = SpanLayer::new(
            SpanKind::Server,
            reporter,
            SpanTags::new(&identity(), vec![]),
        )
        .layer(service_fn(|_req: Request<()>| {
            std::future::pending::<Result<Response<Empty<Bytes>>, MeshError>>()
        }));
        let mut request = Request::get("http://catalog/items").body(()).unwrap();
        request.extensions_mut().insert(sampled(true));
        let call = svc.oneshot(request);
        assert!(
            tokio::time::timeout(Duration::from_millis(10), call)
                .await
                .is_err(),
            "the client gives up"
        );
        let spans = exported(&exporter).await;
        assert_eq!(spans.len(), 1);
        assert_eq!(tag(&spans[0], "response_flags").as_deref(), Some("DC"));
        assert_eq!(tag(&spans[0], "http.status_code").as_deref(), Some("0"));
    }

    /// A span layer over a service answering 200 with `frames`; and its reporter.
    fn streaming(
        frames: Vec<Frame<Bytes>>,
    ) -> (
        impl Service<Request<()>, Response = Response<SpanBody<Frames>>, Error = BoxError>,
        SpanReporter,
        InMemorySpanExporter,
    ) {
        let exporter = InMemorySpanExporter::default();
        let reporter = SpanReporter::spawn(exporter.clone(), ReporterConfig::default());
        let tags = SpanTags::new(&identity(), vec![]);
        let frames = std::sync::Mutex::new(Some(frames));
        let svc = SpanLayer::new(SpanKind::Client, reporter.clone(), tags).layer(service_fn(
            move |_req: Request<()>| {
                let frames = frames.lock().unwrap().take().unwrap_or_default();
                async move { Ok::<_, MeshError>(Response::new(Frames(frames.into()))) }
            },
        ));
        (svc, reporter, exporter)
    }

    fn traced() -> Request<()> {
        let mut request = Request::get("http://catalog/items").body(()).unwrap();
        request.extensions_mut().insert(sampled(true));
        request
    }

    #[tokio::test(start_paused = true)]
    async fn the_span_ends_with_the_body_and_tags_the_grpc_status_of_its_trailers() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "14".parse().unwrap());
        let frames = vec![
            Frame::data(Bytes::from_static(b"\0\0\0\0\x01x")),
            Frame::trailers(trailers),
        ];
        let (svc, reporter, exporter) = streaming(frames);
        let response = svc.oneshot(traced()).await.unwrap();
        let reported = || {
            reporter
                .stats()
                .reported
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        assert_eq!(reported(), 0, "the body is still to come");
        let mut body = response.into_body();
        body.frame().await.unwrap().unwrap();
        assert_eq!(reported(), 0, "the trailers are still to come");
        body.frame().await.unwrap().unwrap();
        assert_eq!(reported(), 1, "ended by its trailers");
        drop((body, reporter));
        let spans = exported(&exporter).await;
        assert_eq!(spans.len(), 1);
        assert_eq!(tag(&spans[0], "grpc.status_code").as_deref(), Some("14"));
        assert_eq!(tag(&spans[0], "http.status_code").as_deref(), Some("200"));
        assert_eq!(spans[0].status, opentelemetry::trace::Status::error("true"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_dropped_unfinished_ends_the_span_with_its_status_and_dc() {
        let chunk = || Frame::data(Bytes::from_static(b"chunk"));
        let (svc, reporter, exporter) = streaming(vec![chunk(), chunk()]);
        let mut body = svc.oneshot(traced()).await.unwrap().into_body();
        body.frame().await.unwrap().unwrap();
        drop((body, reporter));
        let spans = exported(&exporter).await;
        assert_eq!(spans.len(), 1);
        assert_eq!(tag(&spans[0], "http.status_code").as_deref(), Some("200"));
        assert_eq!(tag(&spans[0], "response_flags").as_deref(), Some("DC"));
    }

    #[tokio::test(start_paused = true)]
    async fn unsampled_or_untraced_requests_get_no_span() {
        let tags = || SpanTags::new(&identity(), vec![]);
        assert!(
            record(Some(sampled(false)), tags(), Ok(Response::new(())))
                .await
                .is_empty()
        );
        assert!(record(None, tags(), Ok(Response::new(()))).await.is_empty());
    }

    #[tokio::test]
    async fn long_urls_are_cut() {
        let reporter =
            SpanReporter::spawn(InMemorySpanExporter::default(), ReporterConfig::default());
        let layer = SpanLayer::new(
            SpanKind::Client,
            reporter,
            SpanTags::new(&identity(), vec![]).max_path_tag_length(20),
        );
        let request = Request::get(format!("http://catalog/{}", "a".repeat(300)))
            .body(())
            .unwrap();
        let open = layer
            .recorder
            .as_ref()
            .unwrap()
            .open(sampled(true), &request);
        let url = &open
            .span
            .tags
            .iter()
            .find(|(k, _)| k == "http.url")
            .unwrap()
            .1;
        assert_eq!(url, "http://catalog/aaaaa");
    }
}
