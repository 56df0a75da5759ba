//! [`Forward`]: the innermost service of the proxy, sending each request where routing said.
//!
//! A request with a [`Destination`](mesh_core::Destination) (routing's, in its
//! [`Routed`](mesh_core::Routed), else one set on its own) goes to an endpoint of that cluster:
//! through the cluster's circuit breaker (503 UO on overflow), chosen by its load balancer among
//! the endpoints outlier detection has not ejected (503 UH when none is left), avoiding hosts a
//! retry already tried; the outcome is reported back to outlier detection. A request without one is
//! for a host no VirtualService or ServiceEntry knows: under `ALLOW_ANY` it is passed through to
//! the authority it names, under `REGISTRY_ONLY` it gets 502 NR. Hop-by-hop headers are removed and
//! `x-forwarded-for`/`x-forwarded-proto` appended on the way.
//!
//! The request's extensions are the mesh's (its destination, retry context, transport), read
//! here and sent on with none of them; when the forwarder is done with a request — answered,
//! refused, or dropped at a timeout — it hands them back to a retry layer that asked for them
//! ([`LentExtensions`]), which makes its next attempt from them instead of keeping a clone.

use crate::{
    endpoint::{Endpoint, Protocol},
    proxy_headers::{append_forwarded, remove_hop_by_hop},
    registry::{ClusterEndpoints, Registry},
    transport::Transport,
    upstream::{Upstream, set_service_time},
};
use http::{
    Extensions, HeaderMap, Request, Response,
    uri::{Authority, Scheme},
};
use mesh_core::authority::split_port;
use mesh_core::{
    Body, BoxError, DownstreamAddr, MeshError, UpstreamCluster, UpstreamError, UpstreamHost,
    abandoned::{ReportOnDrop, report_abandoned},
    error::UpstreamTarget,
    outlier::{Outcome, OutlierDetector},
    request_end::RequestEnd,
    retry::{ATTEMPT_COUNT, Attempt, ClusterRecord, LentExtensions, RetryContext},
    timeout::{EXPECTED_RQ_TIMEOUT_MS, RouteDeadline, parse_millis},
};
use mesh_route::{config::OutboundMode, matcher::request_authority};
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};
use tokio::time::Instant;
use tower::Service;

/// The upstream cluster name of pass-through traffic, as Envoy's.
///
/// ```
/// use mesh_proxy::forward::PASSTHROUGH_CLUSTER;
/// assert_eq!(PASSTHROUGH_CLUSTER, "PassthroughCluster");
/// ```
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";

/// Forwards routed requests to endpoints and unrouted ones per the outbound traffic policy.
///
/// Under `REGISTRY_ONLY`, a host the registry does not know is refused:
///
/// ```
/// use mesh_core::MeshError;
/// use mesh_proxy::{forward::Forward, registry::Registry, upstream::Upstream};
/// use mesh_route::config::OutboundMode;
/// use std::sync::Arc;
/// use tower::ServiceExt;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let forward = Forward::new(Arc::new(Registry::default()), Upstream::default(), OutboundMode::RegistryOnly);
/// let request = http::Request::get("http://unknown.example/").body(mesh_core::body::empty()).unwrap();
/// let error = forward.oneshot(request).await.unwrap_err();
/// let error = error.downcast_ref::<MeshError>().unwrap();
/// assert!(matches!(error, MeshError::HostNotRegistered(host) if host == "unknown.example"));
/// assert_eq!(error.status(), 502);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Forward {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    registry: Arc<Registry>,
    upstream: Upstream,
    mode: OutboundMode,
}

impl Forward {
    /// A forwarder over `registry`, sending with `upstream`, applying `mode` to unknown hosts.
    ///
    /// ```
    /// use mesh_proxy::{forward::Forward, registry::Registry, upstream::Upstream};
    /// use mesh_route::config::OutboundMode;
    /// use std::sync::Arc;
    /// use tower::ServiceExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let forward = Forward::new(Arc::new(Registry::default()), Upstream::default(), OutboundMode::AllowAny);
    /// // A request without a host cannot be forwarded anywhere.
    /// let request = http::Request::get("/").body(mesh_core::body::empty()).unwrap();
    /// let error = forward.oneshot(request).await.unwrap_err();
    /// assert!(error.to_string().contains("no host"), "{error}");
    /// # }
    /// ```
    pub fn new(registry: Arc<Registry>, upstream: Upstream, mode: OutboundMode) -> Self {
        Forward {
            shared: Arc::new(Shared {
                registry,
                upstream,
                mode,
            }),
        }
    }
}

impl Service<Request<Body>> for Forward {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        Box::pin(self.shared.clone().forward(request))
    }
}

/// The authority `request` is addressed to ([`request_authority`]), as its own value: the
/// URI's is shared (an in-process client's requests carry one), a `Host` header's is parsed.
fn owned_authority(request: &Request<Body>) -> Result<Authority, MeshError> {
    if let Some(authority) = request.uri().authority() {
        return Ok(authority.clone());
    }
    request_authority(request)
        .ok_or(MeshError::BadRequest("request has no host"))?
        .parse()
        .map_err(|_| MeshError::BadRequest("invalid host"))
}

// The futures here are `async move` blocks over their arguments, not `async fn`s: an
// `async fn` keeps each argument twice (as it was passed, and as its body's local), and a
// request is 240 bytes at each of three levels. Kept once, the forwarding future fits the
// allocator's per-thread cache (at most 1 KiB) instead of going to its arena.
impl Shared {
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` would keep the request twice (see above)"
    )]
    fn forward(
        self: Arc<Self>,
        mut request: Request<Body>,
    ) -> impl Future<Output = Result<Response<Body>, BoxError>> + Send + 'static {
        // Taken now, so that the future hands them back even if dropped before it is polled.
        let extensions = LentExtensions::take(&mut request);
        async move {
            let authority = owned_authority(&request)?;
            let downstream = extensions.get::<DownstreamAddr>().copied();
            // Only the destination's index is needed (cloning it would count its names).
            let destination = mesh_core::destination(&extensions).map(|d| d.cluster);
            let scheme = match request.uri().scheme() {
                Some(scheme) if *scheme == Scheme::HTTPS => "https",
                _ => "http",
            };
            let te_kept = remove_hop_by_hop(request.headers_mut(), true);
            append_forwarded(request.headers_mut(), downstream.map(|d| d.remote), scheme);

            let port = split_port(authority.as_str())
                .1
                .and_then(|port| port.parse().ok())
                .unwrap_or(80);
            // The cluster to send to, or none for a pass-through.
            let cluster = match destination {
                Some(destination) => {
                    let cluster = self
                        .registry
                        .cluster(destination)
                        .ok_or(MeshError::NoHealthyUpstream)?;
                    Some(cluster).filter(|cluster| !cluster.passthrough)
                }
                None if matches!(self.mode, OutboundMode::RegistryOnly) => {
                    return Err(MeshError::HostNotRegistered(authority.host().to_string()).into());
                }
                None => None,
            };
            let mut response = match cluster {
                Some(cluster) => {
                    self.to_endpoint(cluster, request, &extensions, &authority, port, te_kept)
                        .await?
                }
                None => {
                    // Boxed: a pass-through's own connection makes a far larger future.
                    let passed =
                        self.pass_through(request, &extensions, &authority, port, downstream);
                    Box::pin(passed).await?
                }
            };
            remove_hop_by_hop(response.headers_mut(), false);
            Ok(response)
        }
    }

    /// Sends to an endpoint of `cluster`: through its circuit breaker (503 UO on overflow), to
    /// an endpoint outlier detection has not ejected (503 UH when none is left), reporting the
    /// outcome back to outlier detection. `te_kept`: the request still has a `te` header.
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` would keep the request twice (see above)"
    )]
    fn to_endpoint<'a>(
        &'a self,
        cluster: &'a ClusterEndpoints,
        mut request: Request<Body>,
        extensions: &'a Extensions,
        authority: &'a Authority,
        port: u16,
        te_kept: bool,
    ) -> impl Future<Output = Result<Response<Body>, BoxError>> + Send + 'a {
        async move {
            // On its first attempt, the request's context learns its cluster (for the retry layer
            // to name it, should the per-try timeouts run out); and a request that may be retried
            // is counted into that cluster's retry budget, which its retries draw from.
            // Its circuit breaker is recorded with it, for the retry layer to hold the retries to
            // its `max_retries`.
            let context = extensions.get::<RetryContext>();
            if let Some(context) = context {
                let may_retry = context.may_retry();
                let first = context.set_cluster(|| ClusterRecord {
                    cluster: UpstreamCluster(cluster.name.clone()),
                    budget: may_retry.then(|| cluster.retry_budget.clone()),
                    breaker: cluster.breaker.clone(),
                });
                if first && may_retry {
                    cluster.retry_budget.deposit();
                }
            }
            // Refused before an endpoint is tried (UO, UH): telemetry still learns the cluster.
            let refused = |error: MeshError| -> BoxError {
                UpstreamError::new(refused_at(cluster), error).into()
            };
            let permit = match &cluster.breaker {
                Some(breaker) => {
                    // Queued for the pool, a request a timeout cuts short names its cluster.
                    let mut queued = ReportOnDrop::new(|| refused_at(cluster));
                    let admitted = breaker.acquire().await.map_err(refused)?;
                    queued.disarm();
                    Some(admitted)
                }
                None => None,
            };
            let ports = cluster
                .port_for(port)
                .ok_or_else(|| refused(MeshError::NoHealthyUpstream))?;
            let now = Instant::now();
            let index = cluster
                .choose_endpoint(ports, context, now)
                .ok_or_else(|| refused(MeshError::NoHealthyUpstream))?;
            let announced = context.and_then(RetryContext::attempt);
            // HTTP/1.1 takes no `te` upstream (the `trailers` kept for HTTP/2 included).
            if te_kept && ports.protocol == Protocol::Http1 {
                request.headers_mut().remove(http::header::TE);
            }
            let endpoint = &ports.endpoints[index];
            let outlier = ports.outlier.as_deref().map(|outlier| (outlier, index));
            let target = &ports.targets[index];
            let attempt = AttemptTimeoutWatch::new(
                (request.headers(), extensions),
                announced,
                cluster,
                (endpoint, target),
                outlier,
                now,
            );
            let transport = extensions.get::<Transport>();
            let mut result = cluster
                .upstream
                .send_to_endpoint_on(endpoint, request, transport, authority, permit)
                .await;
            let answered = Instant::now();
            // Timed by the clock read for the stats anyway.
            if let Ok(response) = &mut result {
                set_service_time(response, answered - now);
            }
            let status = match &result {
                Ok(response) => response.status(),
                Err(error) => error.status(),
            };
            attempt.finished(status.as_u16(), answered);
            if let Some(outlier) = &ports.outlier {
                let outcome = match &result {
                    Ok(response) => Outcome::from_status(response.status().as_u16()),
                    Err(MeshError::Overflow) => return result.map_err(Into::into),
                    Err(_) => Outcome::LocalOriginFailure,
                };
                outlier.report(index, outcome, answered);
            }
            // Telemetry learns where it was served, or where it failed.
            let served = target.clone();
            match result {
                Ok(mut response) => {
                    response.extensions_mut().insert(served);
                    Ok(response)
                }
                Err(error) => Err(UpstreamError::new(served, error).into()),
            }
        }
    }

    /// Sends to the authority the client named (ALLOW_ANY, or `resolution: NONE`).
    async fn pass_through(
        &self,
        mut request: Request<Body>,
        extensions: &Extensions,
        authority: &Authority,
        port: u16,
        downstream: Option<DownstreamAddr>,
    ) -> Result<Response<Body>, MeshError> {
        let target: Authority = format!("{}:{port}", authority.host())
            .parse()
            .map_err(|_| MeshError::BadRequest("invalid host"))?;
        if let Some(downstream) = downstream
            && target.as_str() == downstream.local.to_string()
        {
            return Err(MeshError::BadRequest(
                "request would loop back to the proxy",
            ));
        }
        request.headers_mut().remove(http::header::TE);
        let passthrough = UpstreamCluster(Arc::from(PASSTHROUGH_CLUSTER));
        if let Some(context) = extensions.get::<RetryContext>() {
            context.set_cluster(|| ClusterRecord::new(passthrough.clone()));
            context.record_host(&target);
        }
        // Cut short by a timeout, the request names where it was waiting.
        let mut sending = ReportOnDrop::new(|| {
            UpstreamTarget::new(
                passthrough.clone(),
                Some(UpstreamHost(target.clone())),
                None,
            )
        });
        let transport = extensions.get::<Transport>();
        let sent = self
            .upstream
            .send_to_authority_on(request, transport, &target)
            .await;
        sending.disarm();
        let mut response = sent?;
        response.extensions_mut().insert(passthrough.clone());
        Ok(response)
    }
}

/// Where a request refused at `cluster` before an endpoint was picked went.
fn refused_at(cluster: &ClusterEndpoints) -> UpstreamTarget {
    UpstreamTarget::cluster_only(UpstreamCluster(cluster.name.clone()))
}

/// Counts an attempt in its cluster's stats, and its answer when it comes; when the attempt is
/// abandoned at its deadline instead (the layers above drop it when the route or per-try
/// timeout fires), counts a timeout for the cluster and the endpoint: Envoy's
/// `upstream_rq_timeout`, answered 504, and for outlier detection a local-origin failure of
/// the endpoint (as Envoy reports a timeout), so that a host that never answers is ejected;
/// and it tells the layer dropping it where it was waiting ([`report_abandoned`]).
struct AttemptTimeoutWatch<'a> {
    cluster: &'a ClusterEndpoints,
    endpoint: &'a Endpoint,
    /// Where the attempt went.
    target: &'a UpstreamTarget,
    /// The cluster's outlier detection, and the endpoint's index in it.
    outlier: Option<(&'a OutlierDetector, usize)>,
    started: Instant,
    /// When the attempt times out, with the timeout: the route's, and the per-try timeout the
    /// retry layer announced in `x-envoy-expected-rq-timeout-ms`; the earlier counts.
    deadlines: [Option<(Instant, Duration)>; 2],
    /// A request body still arriving, which holds both back ([`RequestEnd::extend`]).
    body: Option<RequestEnd>,
    finished: bool,
}

/// How early a dropped attempt still counts as timed out: the expected-timeout header is whole
/// milliseconds, read a little after it was written.
const DEADLINE_SLACK: Duration = Duration::from_millis(5);

impl<'a> AttemptTimeoutWatch<'a> {
    /// Watches `request`'s attempt, started at `started`. Its number and per-try timeout are
    /// those the retry layer `announced` in its context (what it also wrote in the headers),
    /// else those `x-envoy-attempt-count` and `x-envoy-expected-rq-timeout-ms` say.
    fn new(
        (headers, extensions): (&HeaderMap, &Extensions),
        announced: Option<Attempt>,
        cluster: &'a ClusterEndpoints,
        (endpoint, target): (&'a Endpoint, &'a UpstreamTarget),
        outlier: Option<(&'a OutlierDetector, usize)>,
        started: Instant,
    ) -> Self {
        let (attempt, per_try) = match announced {
            Some(announced) => (announced.number, announced.expected_timeout),
            None => {
                let number = headers
                    .get(ATTEMPT_COUNT)
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or(1);
                (
                    number,
                    headers.get(EXPECTED_RQ_TIMEOUT_MS).and_then(parse_millis),
                )
            }
        };
        cluster.stats.record_attempt(attempt);
        let route = extensions
            .get::<RouteDeadline>()
            .map(|route| (route.deadline, route.timeout));
        let per_try = per_try.map(|timeout| (started + timeout, timeout));
        AttemptTimeoutWatch {
            cluster,
            endpoint,
            target,
            outlier,
            started,
            deadlines: [route, per_try],
            body: extensions.get::<RequestEnd>().cloned(),
            finished: false,
        }
    }

    fn finished(mut self, status: u16, answered: Instant) {
        self.finished = true;
        let stats = &self.cluster.stats;
        stats.record_response(status, answered - self.started);
    }
}

impl Drop for AttemptTimeoutWatch<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let now = Instant::now();
        // Where the request body held the timers back, as the layers above saw it.
        let held_back = |&(deadline, timeout): &(Instant, Duration)| match &self.body {
            Some(body) => body.extend(deadline, timeout),
            None => deadline,
        };
        let deadline = self.deadlines.iter().flatten().map(held_back).min();
        if deadline.is_some_and(|deadline| now + DEADLINE_SLACK >= deadline) {
            let stats = &self.cluster.stats;
            stats.record_timeout();
            stats.record_response(
                http::StatusCode::GATEWAY_TIMEOUT.as_u16(),
                now - self.started,
            );
            self.endpoint.record_timeout();
            if let Some((outlier, index)) = self.outlier {
                outlier.report(index, Outcome::LocalOriginFailure, now);
            }
        }
        // For a timeout layer dropping the attempt: where it was waiting (whatever deadline it
        // cut short; heard by no one when the attempt is dropped for another reason).
        report_abandoned(self.target.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{transport::Transport, upstream::Upstream};
    use mesh_core::Destination;
    use mesh_route::{config::Config, table::RouteTable};
    use tower::ServiceExt;

    /// A forwarder over one cluster (`catalog`), the registry to read its stats from, and a
    /// request to it sent through a client that answers 200 at once.
    fn catalog() -> (Forward, Arc<Registry>, impl Fn() -> Request<Body>) {
        let (forward, registry) = catalog_on("{number: 80, name: http}");
        let answering = tower::service_fn(|_request: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(Response::new(mesh_core::body::empty()))
        });
        let request = with_client(answering);
        (forward, registry, request)
    }

    /// A forwarder over one cluster (`catalog`, with the ServiceEntry port `port`), and the
    /// registry to read its stats from.
    fn catalog_on(port: &str) -> (Forward, Arc<Registry>) {
        let yaml = format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: catalog}}\n\
             spec: {{hosts: [catalog], resolution: STATIC, ports: [{port}], \
             endpoints: [{{address: 127.0.0.1}}]}}\n"
        );
        let config = Config::from_yaml_str(&yaml).unwrap().config;
        let table = RouteTable::compile(&config).unwrap();
        let registry = Arc::new(Registry::build(&config, &table, &Upstream::default()).unwrap());
        let forward = Forward::new(
            registry.clone(),
            Upstream::default(),
            OutboundMode::RegistryOnly,
        );
        (forward, registry)
    }

    /// Requests to `catalog` sent through `client`.
    fn with_client<S>(client: S) -> impl Fn() -> Request<Body>
    where
        S: tower::Service<Request<Body>, Response = Response<Body>> + Clone + Send + Sync + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
    {
        let transport = Transport::new(client);
        move || {
            let mut request = Request::get("http://catalog/")
                .body(mesh_core::body::empty())
                .unwrap();
            request.extensions_mut().insert(transport.clone());
            request.extensions_mut().insert(Destination {
                cluster: 0,
                host: "catalog".into(),
                subset: None,
                port: None,
            });
            request
        }
    }

    #[tokio::test]
    async fn where_a_request_went_is_the_target_the_registry_made_for_its_endpoint() {
        let (forward, registry, request) = catalog();
        let made = &registry.clusters()[0].ports[0].targets[0];
        assert_eq!(made.host.as_ref().unwrap().0, "127.0.0.1:80");
        assert_eq!(&*made.cluster.0, "outbound|80||catalog");
        let same =
            |target: &UpstreamTarget| std::ptr::eq::<mesh_core::error::SentTo>(&**target, &**made);
        for _ in 0..2 {
            let context = RetryContext::default();
            let mut attempt = request();
            attempt.extensions_mut().insert(context.clone());
            let response = forward.clone().oneshot(attempt).await.unwrap();
            let served = response.extensions().get::<UpstreamTarget>().unwrap();
            assert!(same(served), "the response names it");
            assert!(
                same(&context.last_target().unwrap()),
                "so does the retry context"
            );
        }
    }

    #[tokio::test]
    async fn te_trailers_goes_on_to_an_http2_upstream_and_never_to_an_http1_one() {
        // What `te` the client saw, per port protocol of the cluster.
        let te_seen = |protocol: &'static str| async move {
            let (forward, _registry) =
                catalog_on(&format!("{{number: 80, name: p, protocol: {protocol}}}"));
            let echo_te = tower::service_fn(|request: Request<Body>| async move {
                let mut response = Response::new(mesh_core::body::empty());
                if let Some(te) = request.headers().get(http::header::TE) {
                    response.headers_mut().insert("x-saw-te", te.clone());
                }
                Ok::<_, std::convert::Infallible>(response)
            });
            let mut request = with_client(echo_te)();
            let te = http::HeaderValue::from_static("trailers");
            request.headers_mut().insert(http::header::TE, te);
            let response = forward.oneshot(request).await.unwrap();
            response.headers().get("x-saw-te").cloned()
        };
        assert_eq!(te_seen("HTTP2").await.unwrap(), "trailers");
        assert_eq!(te_seen("GRPC").await.unwrap(), "trailers");
        assert_eq!(te_seen("HTTP").await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_upstream_service_time_is_the_wait_for_the_endpoints_answer() {
        let (forward, _registry, _) = catalog();
        let request = with_client(tower::service_fn(|_request: Request<Body>| async {
            tokio::time::sleep(Duration::from_millis(250)).await;
            Ok::<_, std::convert::Infallible>(Response::new(mesh_core::body::empty()))
        }));
        let response = forward.oneshot(request()).await.unwrap();
        let header = crate::upstream::X_ENVOY_UPSTREAM_SERVICE_TIME;
        assert_eq!(response.headers()[header], "250");
    }

    #[tokio::test]
    async fn an_endpoint_counts_a_request_in_flight_until_its_response_body_ends() {
        let (forward, registry) = catalog_on("{number: 80, name: http}");
        let endpoint = &registry.clusters()[0].ports[0].endpoints[0];
        let answering = |text: &'static str| {
            let body = http_body_util::Full::new(bytes::Bytes::from_static(text.as_bytes()));
            let response = Response::new(mesh_core::body::boxed(body));
            let answer = Arc::new(std::sync::Mutex::new(Some(response)));
            let client = tower::service_fn(move |_request: Request<Body>| {
                let response = answer.lock().unwrap().take().unwrap();
                async { Ok::<_, std::convert::Infallible>(response) }
            });
            with_client(client)()
        };
        // A body still to be read holds the count up until it is read to its end.
        let streaming = forward.clone().oneshot(answering("items")).await.unwrap();
        assert_eq!(endpoint.in_flight(), 1);
        let read = http_body_util::BodyExt::collect(streaming.into_body());
        assert_eq!(read.await.unwrap().to_bytes(), "items");
        assert_eq!(endpoint.in_flight(), 0);
        // An empty one has ended when it arrives: the request is over then.
        let empty = forward.oneshot(answering("")).await.unwrap();
        assert_eq!(endpoint.in_flight(), 0, "nothing left to wait for");
        drop(empty);
    }

    #[tokio::test]
    async fn every_way_a_request_leaves_the_forwarder_hands_its_extensions_back() {
        let (forward, _registry, request) = catalog();
        // `request` as an attempt of a retry layer that keeps no clone of its extensions.
        let lent = |mut request: Request<Body>| {
            let context = RetryContext::default();
            context.expect_extensions_back();
            request.extensions_mut().insert(context.clone());
            (request, context)
        };
        let handed_back = |context: &RetryContext| {
            let back = context.take_handed_back()?;
            let destination = back.get::<Destination>()?.cluster;
            Some((destination, back.get::<Transport>().is_some()))
        };
        // Answered.
        let (answered, context) = lent(request());
        assert_eq!(
            forward.clone().oneshot(answered).await.unwrap().status(),
            200
        );
        assert_eq!(handed_back(&context), Some((0, true)));
        // Refused before an endpoint is tried: a cluster the registry does not have.
        let (mut refused, context) = lent(request());
        refused
            .extensions_mut()
            .get_mut::<Destination>()
            .unwrap()
            .cluster = 7;
        assert!(forward.clone().oneshot(refused).await.is_err());
        assert_eq!(handed_back(&context), Some((7, true)));
        // Refused as a host the registry does not know (no destination).
        let (mut unknown, context) = lent(request());
        unknown.extensions_mut().remove::<Destination>();
        assert!(forward.clone().oneshot(unknown).await.is_err());
        assert!(
            context
                .take_handed_back()
                .unwrap()
                .get::<Transport>()
                .is_some()
        );
        // Dropped while its client has not answered (at a timeout, say), and before it was
        // ever polled.
        let waiting = with_client(tower::service_fn(|_request: Request<Body>| {
            std::future::pending::<Result<Response<Body>, std::convert::Infallible>>()
        }));
        let (dropped, context) = lent(waiting());
        {
            let mut attempt = std::pin::pin!(forward.clone().oneshot(dropped));
            let polled = std::future::poll_fn(|cx| Poll::Ready(attempt.as_mut().poll(cx)));
            assert!(polled.await.is_pending());
        }
        assert_eq!(handed_back(&context), Some((0, true)));
        let (unpolled, context) = lent(waiting());
        drop(forward.clone().call(unpolled));
        assert_eq!(handed_back(&context), Some((0, true)));
        // Not asked for: not kept.
        let mut unasked = request();
        let context = RetryContext::default();
        unasked.extensions_mut().insert(context.clone());
        forward.oneshot(unasked).await.unwrap();
        assert_eq!(handed_back(&context), None);
    }

    #[tokio::test]
    async fn an_attempt_is_counted_as_the_retry_layer_announced_it_else_as_its_header_says() {
        let (forward, registry, request) = catalog();
        let stats = || {
            let stats = &registry.clusters()[0].stats;
            (stats.rq_total(), stats.rq_retry())
        };
        // The retry layer's context says this is a retry; the header (not rewritten by it,
        // say) says otherwise: the context is what the retry layer decided.
        let context = RetryContext::default();
        context.begin_attempt(2, None);
        let mut retried = request();
        retried
            .headers_mut()
            .insert(ATTEMPT_COUNT, "1".parse().unwrap());
        retried.extensions_mut().insert(context);
        let response = forward.clone().oneshot(retried).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(stats(), (1, 1));
        // Without one, the header is read.
        let mut by_header = request();
        by_header
            .headers_mut()
            .insert(ATTEMPT_COUNT, "3".parse().unwrap());
        forward.clone().oneshot(by_header).await.unwrap();
        assert_eq!(stats(), (2, 2));
        // A context the retry layer never announced an attempt in (one a layer above made)
        // leaves the header in charge.
        let mut unannounced = request();
        unannounced.extensions_mut().insert(RetryContext::default());
        forward.oneshot(unannounced).await.unwrap();
        assert_eq!(stats(), (3, 2), "no header: a first attempt");
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_dropped_at_the_per_try_timeout_the_retry_layer_announced_counts_as_timed_out()
     {
        let (forward, registry, _) = catalog();
        let request = with_client(tower::service_fn(|_request: Request<Body>| {
            std::future::pending::<Result<Response<Body>, std::convert::Infallible>>()
        }));
        let timeouts = || registry.clusters()[0].stats.rq_timeout();
        let abandoned_after = |request: Request<Body>, waited: Duration| {
            let forward = forward.clone();
            async move {
                let mut attempt = std::pin::pin!(forward.oneshot(request));
                let polled = std::future::poll_fn(|cx| Poll::Ready(attempt.as_mut().poll(cx)));
                assert!(polled.await.is_pending());
                tokio::time::advance(waited).await;
            }
        };
        // A first attempt the retry layer announced with `timeout`.
        let announcing = |timeout: Option<Duration>| {
            let context = RetryContext::default();
            context.begin_attempt(1, timeout);
            let mut announced = request();
            announced.extensions_mut().insert(context);
            announced
        };
        // Announced in the context, the header aside: 100 ms, reached.
        let announced = announcing(Some(Duration::from_millis(100)));
        abandoned_after(announced, Duration::from_millis(100)).await;
        assert_eq!(timeouts(), 1);
        // Announced with no timeout: a header left by another layer does not count.
        let mut none = announcing(None);
        none.headers_mut()
            .insert(EXPECTED_RQ_TIMEOUT_MS, "100".parse().unwrap());
        abandoned_after(none, Duration::from_millis(100)).await;
        assert_eq!(timeouts(), 1);
        // Without a context, the header is read.
        let mut by_header = request();
        by_header
            .headers_mut()
            .insert(EXPECTED_RQ_TIMEOUT_MS, "100".parse().unwrap());
        abandoned_after(by_header, Duration::from_millis(100)).await;
        assert_eq!(timeouts(), 2);
        // Dropped well before its timeout: not a timeout.
        let early = announcing(Some(Duration::from_secs(1)));
        abandoned_after(early, Duration::from_millis(100)).await;
        assert_eq!(timeouts(), 2);
    }

    #[test]
    fn the_forwarding_future_fits_the_allocators_thread_cache() {
        let forward = Forward::new(
            Arc::new(Registry::default()),
            Upstream::default(),
            OutboundMode::RegistryOnly,
        );
        let request = Request::get("http://catalog/")
            .body(mesh_core::body::empty())
            .unwrap();
        let future = forward.shared.clone().forward(request);
        // glibc's per-thread cache takes blocks up to 1032 bytes; larger ones go to the arena,
        // slower, and every request boxes this future. As `async fn`s keeping each argument
        // twice, it was 2,672 bytes.
        assert!(
            size_of_val(&future) <= 1024,
            "{} bytes",
            size_of_val(&future)
        );
    }
}
