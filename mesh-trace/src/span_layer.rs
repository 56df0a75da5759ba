//! [`SpanLayer`]: records one span per sampled request — `CLIENT` on the outbound side,
//! `SERVER` on the inbound side — with Envoy's and Istio's tags, and hands it to a
//! [`SpanReporter`].
//!
//! It reads the [`TraceContext`] the [`TraceLayer`](crate::TraceLayer) put on the request
//! (place it inside that layer); requests without one, or not sampled, pass through at the
//! cost of one extension lookup. The span runs from the request's arrival to its response
//! headers (or error). Tags: `http.method`, `http.url` (cut to 256 characters),
//! `http.protocol`, `user_agent`, `guid:x-request-id`, `component: proxy`, `node_id`,
//! `istio.canonical_service`, `istio.canonical_revision`, `istio.namespace`,
//! `http.status_code`, `response_flags` (`-` when none), `upstream_cluster`, the custom tags,
//! `grpc.status_code` (from a trailers-only gRPC reply), and `error: true` on a 5xx, a
//! non-OK gRPC status or a local error. A request its client abandons is still reported:
//! status `0`, flag `DC`.

use crate::{
    TraceContext,
    custom_tags::CustomTag,
    identity::WorkloadIdentity,
    reporter::SpanReporter,
    span::{FinishedSpan, SpanKind},
};
use http::{Request, Response};
use mesh_core::{
    BoxError, ResponseFlag, ResponseFlags, UpstreamCluster, authority::request_authority,
    local_reply::error_to_response,
};
use pin_project::pin_project;
use std::{
    borrow::Cow,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::{Instant, SystemTime},
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
/// #         Ok::<_, std::convert::Infallible>(http::Response::new(()))
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
/// #         Ok::<_, std::convert::Infallible>(http::Response::new(()))
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
    /// #         Ok::<_, std::convert::Infallible>(http::Response::new(()))
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
    /// #         Ok::<_, std::convert::Infallible>(http::Response::new(()))
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
    /// #         Ok::<_, std::convert::Infallible>(http::Response::new(()))
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
///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
/// }));
/// let mut request = http::Request::get("http://catalog/items").body(()).unwrap();
/// request.extensions_mut().insert(TraceContext::root(Decision { sampled: true, forced: false, debug: false }));
/// svc.oneshot(request).await.unwrap();
/// assert_eq!(reporter.stats().reported.load(Ordering::Relaxed), 1);
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct SpanLayer {
    kind: SpanKind,
    reporter: SpanReporter,
    tags: Arc<SpanTags>,
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
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
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
        SpanLayer {
            kind,
            reporter,
            tags: Arc::new(tags),
        }
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
///     |_req: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) },
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
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = SpanFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> SpanFuture<S::Future> {
        let open = request
            .extensions()
            .get::<TraceContext>()
            .filter(|context| context.sampled == Some(true))
            .map(|context| Box::new(self.layer.open(context.clone(), &request)));
        SpanFuture {
            future: self.inner.call(request),
            open,
        }
    }
}

/// A span being recorded.
struct OpenSpan {
    span: FinishedSpan,
    started: Instant,
    reporter: SpanReporter,
}

impl SpanLayer {
    fn open<B>(&self, context: TraceContext, request: &Request<B>) -> OpenSpan {
        let tags = &self.tags;
        let headers = request.headers();
        let authority = request_authority(request).unwrap_or("unknown");
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => (host, port),
            _ => (authority, "80"),
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
        for tag in &tags.custom {
            if let Some(value) = tag.value(headers) {
                span_tags.push((tag.name.clone(), value));
            }
        }
        OpenSpan {
            span: FinishedSpan {
                context,
                kind: self.kind,
                name,
                start: SystemTime::now(),
                duration: Default::default(),
                tags: span_tags,
                error: false,
            },
            started: Instant::now(),
            reporter: self.reporter.clone(),
        }
    }
}

impl OpenSpan {
    /// Ends the span with the response's status, flags and cluster, and reports it.
    fn close(
        mut self,
        status: u16,
        flags: Option<&ResponseFlags>,
        cluster: Option<&UpstreamCluster>,
        grpc_status: Option<&str>,
    ) {
        let span = &mut self.span;
        span.duration = self.started.elapsed();
        span.tags
            .push(("http.status_code".into(), status.to_string()));
        span.tags.push((
            "response_flags".into(),
            flags
                .filter(|f| !f.is_empty())
                .map_or_else(|| "-".to_owned(), ToString::to_string),
        ));
        if let Some(cluster) = cluster {
            span.tags
                .push(("upstream_cluster".into(), cluster.0.to_string()));
        }
        // gRPC's status, when the response carries it in its headers (trailers-only replies).
        if let Some(grpc) = grpc_status {
            span.tags.push(("grpc.status_code".into(), grpc.to_owned()));
        }
        span.error = status >= 500 || grpc_status.is_some_and(|g| g != "0");
        self.reporter.report(self.span);
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
///     std::future::pending::<Result<http::Response<()>, std::convert::Infallible>>() // never answers
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
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.future.poll(cx)).map_err(Into::into);
        if let Some(open) = this.open.take() {
            match &result {
                Ok(response) => open.close(
                    response.status().as_u16(),
                    response.extensions().get::<ResponseFlags>(),
                    response.extensions().get::<UpstreamCluster>(),
                    response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok()),
                ),
                Err(error) => {
                    // The local reply the client will get.
                    let reply = error_to_response(error);
                    open.close(
                        reply.status().as_u16(),
                        reply.extensions().get::<ResponseFlags>(),
                        None,
                        None,
                    );
                }
            }
        }
        Poll::Ready(result)
    }
}

#[pin_project::pinned_drop]
impl<F> PinnedDrop for SpanFuture<F> {
    fn drop(self: Pin<&mut Self>) {
        if let Some(open) = self.project().open.take() {
            let cancelled = ResponseFlags::from(ResponseFlag::DownstreamConnectionTermination);
            open.close(0, Some(&cancelled), None, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Decision, custom_tags::TagSource, reporter::ReporterConfig};
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
                        let mut copy = Response::new(());
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
            std::future::pending::<Result<Response<()>, MeshError>>()
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
        let open = layer.open(sampled(true), &request);
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
