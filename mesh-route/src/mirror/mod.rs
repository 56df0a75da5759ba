//! [`MirrorLayer`]: VirtualService `mirror`/`mirrors` — fire-and-forget shadow copies.
//!
//! For a request whose [`RoutePolicy`](mesh_core::policy::RoutePolicy) names mirror targets, each
//! target draws its share (`mirrorPercentage`, all by default) and, if drawn, gets a copy of the
//! request: the same head pointed at the target's [`Destination`](mesh_core::Destination), with
//! `-shadow` appended to the host before the port (`catalog:80` → `catalog-shadow:80`; switchable
//! off) and its trace context kept but marked not sampled. The copy is sent through the layer's
//! shadow service on a task of its own; its response is read and discarded. The primary request
//! never waits for it and never sees its errors or latency: the primary future is the inner
//! service's own.
//!
//! The body is copied (shared `Bytes`, not duplicated) as the primary streams it; the shadows
//! are sent once the body has ended. A body past the buffer limit (1 MiB by default, as for
//! retries) is not mirrored. At most `max_in_flight` shadows run at once: beyond that a shadow
//! is dropped, not queued; a shadow still running after its deadline (30 s) is given up. The
//! shadow response is read to its end and discarded. Every outcome is counted in
//! [`MirrorStats`].

mod shadow_head;
mod tee;

use bytes::Bytes;
use http::{Request, Response, request::Parts};
use http_body::Body as _;
use http_body_util::BodyExt;
use mesh_core::{Body, BoxError, body, policy::route_policy, retry::DEFAULT_BUFFER_LIMIT};
use shadow_head::shadow_head;
use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    task::{Context, Poll},
    time::Duration,
};
use tee::{TeeBody, TeeOutcome};
use tokio::sync::Semaphore;
use tower::{Layer, Service, util::BoxCloneSyncService};

/// The service shadow copies are sent through.
///
/// ```
/// use mesh_core::{Body, BoxError, body};
/// use mesh_route::mirror::ShadowService;
/// use tower::{ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let shadow = ShadowService::new(service_fn(|_: http::Request<Body>| async {
///     Ok::<_, BoxError>(http::Response::builder().status(202).body(body::empty()).unwrap())
/// }));
/// let request = http::Request::get("http://catalog-shadow/").body(body::empty()).unwrap();
/// let response = shadow.oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 202);
/// # }
/// ```
pub type ShadowService = BoxCloneSyncService<Request<Body>, Response<Body>, BoxError>;

/// The default bound on shadow requests in flight ([`MirrorLayer::max_in_flight`] changes it).
///
/// ```
/// assert_eq!(mesh_route::mirror::DEFAULT_MAX_IN_FLIGHT, 1024);
/// ```
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// Whether the mesh config keeps the `-shadow` host suffix: on, unless
/// `defaultConfig.proxyMetadata.DISABLE_SHADOW_HOST_SUFFIX` is `"true"` (Istio's switch of the
/// same name).
///
/// ```
/// use mesh_route::{config::Config, mirror::host_suffix_enabled};
/// let off = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  defaultConfig: {proxyMetadata: {DISABLE_SHADOW_HOST_SUFFIX: \"true\"}}\n";
/// assert!(!host_suffix_enabled(&Config::from_yaml_str(off).unwrap().config));
/// assert!(host_suffix_enabled(&Config::default()));
/// ```
pub fn host_suffix_enabled(config: &crate::config::Config) -> bool {
    use crate::config::mesh_config::DISABLE_SHADOW_HOST_SUFFIX;
    let disabled = config
        .mesh
        .default_config
        .as_ref()
        .and_then(|proxy| proxy.proxy_metadata.get(DISABLE_SHADOW_HOST_SUFFIX))
        .is_some_and(|value| value.eq_ignore_ascii_case("true"));
    !disabled
}

/// What became of the shadow copies; shared by a layer and its services.
///
/// ```
/// use mesh_core::{Body, BoxError, Destination, body, policy::{Fraction, MirrorTarget, RoutePolicy}};
/// use mesh_route::mirror::{MirrorLayer, ShadowService};
/// use std::sync::{Arc, atomic::Ordering::Relaxed};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ok = || service_fn(|_: http::Request<Body>| async { Ok::<_, BoxError>(http::Response::new(body::empty())) });
/// let mirrored = |body: Body| {
///     let target = MirrorTarget { destination: Destination { cluster: 0, host: "catalog".into(), subset: None, port: None }, fraction: Fraction::ALL };
///     let mut request = http::Request::post("http://catalog/").body(body).unwrap();
///     request.extensions_mut().insert(RoutePolicy { mirrors: Some(Arc::from([target])), ..Default::default() });
///     request
/// };
/// let layer = MirrorLayer::new(ShadowService::new(ok())).buffer_limit(4);
/// layer.layer(ok()).oneshot(mirrored(body::full("more than four bytes"))).await.unwrap();
/// let stats = layer.stats();
/// assert_eq!(stats.skipped_body_too_large.load(Relaxed), 1);
/// assert_eq!(stats.sent.load(Relaxed), 0);
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MirrorStats {
    /// Shadows sent.
    pub sent: AtomicU64,
    /// Shadows dropped because `max_in_flight` were already running.
    pub dropped_overflow: AtomicU64,
    /// Shadows skipped because the request body outgrew the buffer limit.
    pub skipped_body_too_large: AtomicU64,
    /// Shadows skipped because the request body failed or was abandoned before its end.
    pub skipped_body_incomplete: AtomicU64,
    /// Shadows whose send failed (the shadow's own error; the primary never sees it).
    pub failed: AtomicU64,
}

/// Mirrors requests to their route's mirror targets; see the [module docs](self).
///
/// ```
/// use mesh_core::{Body, BoxError, Destination, body, policy::{Fraction, MirrorTarget, RoutePolicy}};
/// use mesh_route::mirror::{MirrorLayer, ShadowService};
/// use std::sync::{Arc, atomic::Ordering};
/// use tower::{Layer, ServiceExt, service_fn};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let (seen, mut shadows) = tokio::sync::mpsc::unbounded_channel();
/// let shadow = ShadowService::new(service_fn(move |req: http::Request<Body>| {
///     let _ = seen.send(req.headers()["host"].clone());
///     async { Ok::<_, BoxError>(http::Response::new(body::empty())) }
/// }));
/// let layer = MirrorLayer::new(shadow);
/// let primary = layer.layer(service_fn(|_req: http::Request<Body>| async {
///     Ok::<_, BoxError>(http::Response::new(body::full("primary")))
/// }));
/// let v2 = Destination { cluster: 1, host: Arc::from("catalog"), subset: Some(Arc::from("v2")), port: None };
/// let mut request = http::Request::get("http://catalog/items").header("host", "catalog").body(body::empty()).unwrap();
/// request.extensions_mut().insert(RoutePolicy {
///     mirrors: Some(Arc::from([MirrorTarget { destination: v2, fraction: Fraction::ALL }])),
///     ..Default::default()
/// });
/// assert_eq!(primary.oneshot(request).await.unwrap().status(), 200);
/// assert_eq!(shadows.recv().await.unwrap(), "catalog-shadow");
/// assert_eq!(layer.stats().sent.load(Ordering::Relaxed), 1);
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct MirrorLayer {
    sender: ShadowSender,
}

/// Sends shadows, bounded, and counts what happens to them.
#[derive(Clone, Debug)]
struct ShadowSender {
    service: ShadowService,
    in_flight: Arc<Semaphore>,
    stats: Arc<MirrorStats>,
    buffer_limit: usize,
    host_suffix: bool,
    /// How long a shadow may take, response body included.
    deadline: Duration,
}

/// The default bound on a shadow's whole exchange ([`MirrorLayer::shadow_deadline`] changes it).
///
/// ```
/// assert_eq!(mesh_route::mirror::DEFAULT_SHADOW_DEADLINE, std::time::Duration::from_secs(30));
/// ```
pub const DEFAULT_SHADOW_DEADLINE: Duration = Duration::from_secs(30);

impl MirrorLayer {
    /// Sends shadow copies through `shadow` (which routes by the [`Destination`]
    /// extension), with the `-shadow` host suffix, a 1 MiB body limit and at most
    /// [`DEFAULT_MAX_IN_FLIGHT`] shadows at once.
    ///
    /// [`Destination`]: mesh_core::Destination
    ///
    /// ```
    /// use mesh_core::{Body, BoxError, body};
    /// use mesh_route::mirror::{MirrorLayer, ShadowService};
    /// use tower::service_fn;
    ///
    /// let shadow = ShadowService::new(service_fn(|_: http::Request<Body>| async {
    ///     Ok::<_, BoxError>(http::Response::new(body::empty()))
    /// }));
    /// let layer = MirrorLayer::new(shadow);
    /// assert_eq!(layer.stats().sent.load(std::sync::atomic::Ordering::Relaxed), 0);
    /// ```
    pub fn new(shadow: ShadowService) -> Self {
        MirrorLayer {
            sender: ShadowSender {
                service: shadow,
                in_flight: Arc::new(Semaphore::new(DEFAULT_MAX_IN_FLIGHT)),
                stats: Arc::default(),
                buffer_limit: DEFAULT_BUFFER_LIMIT,
                host_suffix: true,
                deadline: DEFAULT_SHADOW_DEADLINE,
            },
        }
    }

    /// Runs at most `max` shadows at once; more are dropped and counted.
    ///
    /// ```
    /// use mesh_core::{Body, BoxError, Destination, body, policy::{Fraction, MirrorTarget, RoutePolicy}};
    /// use mesh_route::mirror::{MirrorLayer, ShadowService};
    /// use std::sync::{Arc, atomic::Ordering::Relaxed};
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let ok = || service_fn(|_: http::Request<Body>| async { Ok::<_, BoxError>(http::Response::new(body::empty())) });
    /// # let mirrored = |body: Body| {
    /// #     let target = MirrorTarget { destination: Destination { cluster: 0, host: "catalog".into(), subset: None, port: None }, fraction: Fraction::ALL };
    /// #     let mut request = http::Request::post("http://catalog/").body(body).unwrap();
    /// #     request.extensions_mut().insert(RoutePolicy { mirrors: Some(Arc::from([target])), ..Default::default() });
    /// #     request
    /// # };
    /// let layer = MirrorLayer::new(ShadowService::new(ok())).max_in_flight(0);
    /// layer.layer(ok()).oneshot(mirrored(body::empty())).await.unwrap();
    /// assert_eq!(layer.stats().dropped_overflow.load(Relaxed), 1);
    /// # }
    /// ```
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.sender.in_flight = Arc::new(Semaphore::new(max));
        self
    }

    /// Mirrors bodies of at most `bytes`; larger ones are not mirrored.
    ///
    /// ```
    /// use mesh_core::{Body, BoxError, Destination, body, policy::{Fraction, MirrorTarget, RoutePolicy}};
    /// use mesh_route::mirror::{MirrorLayer, ShadowService};
    /// use std::sync::{Arc, atomic::Ordering::Relaxed};
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let ok = || service_fn(|_: http::Request<Body>| async { Ok::<_, BoxError>(http::Response::new(body::empty())) });
    /// # let mirrored = |body: Body| {
    /// #     let target = MirrorTarget { destination: Destination { cluster: 0, host: "catalog".into(), subset: None, port: None }, fraction: Fraction::ALL };
    /// #     let mut request = http::Request::post("http://catalog/").body(body).unwrap();
    /// #     request.extensions_mut().insert(RoutePolicy { mirrors: Some(Arc::from([target])), ..Default::default() });
    /// #     request
    /// # };
    /// let layer = MirrorLayer::new(ShadowService::new(ok())).buffer_limit(8);
    /// layer.layer(ok()).oneshot(mirrored(body::full("0123456789"))).await.unwrap();
    /// assert_eq!(layer.stats().skipped_body_too_large.load(Relaxed), 1);
    /// # }
    /// ```
    pub fn buffer_limit(mut self, bytes: usize) -> Self {
        self.sender.buffer_limit = bytes;
        self
    }

    /// Gives up on a shadow (counted as failed) after `deadline`, response body included
    /// (default 30 s), so that hung or endless shadows do not hold their slots.
    ///
    /// ```
    /// use mesh_core::{Body, BoxError, Destination, body, policy::{Fraction, MirrorTarget, RoutePolicy}};
    /// use mesh_route::mirror::{MirrorLayer, ShadowService};
    /// use std::sync::{Arc, atomic::Ordering::Relaxed};
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// # let ok = || service_fn(|_: http::Request<Body>| async { Ok::<_, BoxError>(http::Response::new(body::empty())) });
    /// # let mirrored = |body: Body| {
    /// #     let target = MirrorTarget { destination: Destination { cluster: 0, host: "catalog".into(), subset: None, port: None }, fraction: Fraction::ALL };
    /// #     let mut request = http::Request::post("http://catalog/").body(body).unwrap();
    /// #     request.extensions_mut().insert(RoutePolicy { mirrors: Some(Arc::from([target])), ..Default::default() });
    /// #     request
    /// # };
    /// // A shadow upstream that never answers.
    /// let hung = ShadowService::new(service_fn(|_: http::Request<Body>| std::future::pending::<Result<http::Response<Body>, BoxError>>()));
    /// let layer = MirrorLayer::new(hung).shadow_deadline(std::time::Duration::from_secs(1));
    /// // A paused clock: the runtime jumps to the deadline instead of waiting for it.
    /// tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    ///     layer.layer(ok()).oneshot(mirrored(body::empty())).await.unwrap();
    ///     tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    /// });
    /// assert_eq!(layer.stats().failed.load(Relaxed), 1);
    /// ```
    pub fn shadow_deadline(mut self, deadline: Duration) -> Self {
        self.sender.deadline = deadline;
        self
    }

    /// Whether to append `-shadow` to the shadow's host (on by default, as in Envoy and
    /// Istio up to 1.27; Istio 1.28 turns it off by default).
    ///
    /// ```
    /// use mesh_core::{Body, BoxError, Destination, body, policy::{Fraction, MirrorTarget, RoutePolicy}};
    /// use mesh_route::mirror::{MirrorLayer, ShadowService};
    /// use std::sync::{Arc, atomic::Ordering::Relaxed};
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let ok = || service_fn(|_: http::Request<Body>| async { Ok::<_, BoxError>(http::Response::new(body::empty())) });
    /// # let mirrored = |body: Body| {
    /// #     let target = MirrorTarget { destination: Destination { cluster: 0, host: "catalog".into(), subset: None, port: None }, fraction: Fraction::ALL };
    /// #     let mut request = http::Request::post("http://catalog/").body(body).unwrap();
    /// #     request.extensions_mut().insert(RoutePolicy { mirrors: Some(Arc::from([target])), ..Default::default() });
    /// #     request
    /// # };
    /// let (seen, mut hosts) = tokio::sync::mpsc::unbounded_channel();
    /// let shadow = ShadowService::new(service_fn(move |req: http::Request<Body>| {
    ///     let _ = seen.send(req.uri().host().unwrap().to_owned());
    ///     async { Ok::<_, BoxError>(http::Response::new(body::empty())) }
    /// }));
    /// let layer = MirrorLayer::new(shadow).host_suffix(false);
    /// layer.layer(ok()).oneshot(mirrored(body::empty())).await.unwrap();
    /// assert_eq!(hosts.recv().await.unwrap(), "catalog");
    /// # }
    /// ```
    pub fn host_suffix(mut self, on: bool) -> Self {
        self.sender.host_suffix = on;
        self
    }

    /// What became of the shadows so far.
    ///
    /// ```
    /// use mesh_core::{Body, BoxError, Destination, body, policy::{Fraction, MirrorTarget, RoutePolicy}};
    /// use mesh_route::mirror::{MirrorLayer, ShadowService};
    /// use std::sync::{Arc, atomic::Ordering::Relaxed};
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let ok = || service_fn(|_: http::Request<Body>| async { Ok::<_, BoxError>(http::Response::new(body::empty())) });
    /// # let mirrored = |body: Body| {
    /// #     let target = MirrorTarget { destination: Destination { cluster: 0, host: "catalog".into(), subset: None, port: None }, fraction: Fraction::ALL };
    /// #     let mut request = http::Request::post("http://catalog/").body(body).unwrap();
    /// #     request.extensions_mut().insert(RoutePolicy { mirrors: Some(Arc::from([target])), ..Default::default() });
    /// #     request
    /// # };
    /// let layer = MirrorLayer::new(ShadowService::new(ok()));
    /// layer.layer(ok()).oneshot(mirrored(body::empty())).await.unwrap();
    /// assert_eq!(layer.stats().sent.load(Relaxed), 1);
    /// assert_eq!(layer.stats().failed.load(Relaxed), 0);
    /// # }
    /// ```
    pub fn stats(&self) -> &Arc<MirrorStats> {
        &self.sender.stats
    }
}

impl<S> Layer<S> for MirrorLayer {
    type Service = Mirror<S>;

    fn layer(&self, inner: S) -> Mirror<S> {
        Mirror {
            inner,
            sender: Arc::new(self.sender.clone()),
        }
    }
}

/// The service [`MirrorLayer`] produces.
///
/// ```
/// use mesh_core::{Body, BoxError, Destination, body, policy::{Fraction, MirrorTarget, RoutePolicy}};
/// use mesh_route::mirror::{MirrorLayer, ShadowService};
/// use std::sync::{Arc, atomic::Ordering::Relaxed};
/// use tower::{Layer, Service, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let ok = || service_fn(|_: http::Request<Body>| async { Ok::<_, BoxError>(http::Response::new(body::empty())) });
/// # let mirrored = |body: Body| {
/// #     let target = MirrorTarget { destination: Destination { cluster: 0, host: "catalog".into(), subset: None, port: None }, fraction: Fraction::ALL };
/// #     let mut request = http::Request::post("http://catalog/").body(body).unwrap();
/// #     request.extensions_mut().insert(RoutePolicy { mirrors: Some(Arc::from([target])), ..Default::default() });
/// #     request
/// # };
/// let layer = MirrorLayer::new(ShadowService::new(ok()));
/// let mut svc: mesh_route::mirror::Mirror<_> = layer.layer(ok());
/// // A request whose route names no mirror target goes to the inner service alone.
/// let plain = http::Request::get("http://catalog/").body(body::empty()).unwrap();
/// svc.ready().await.unwrap().call(plain).await.unwrap();
/// assert_eq!(layer.stats().sent.load(Relaxed), 0);
/// // One whose route names a mirror target is also copied to the shadow.
/// svc.ready().await.unwrap().call(mirrored(body::empty())).await.unwrap();
/// assert_eq!(layer.stats().sent.load(Relaxed), 1);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Mirror<S> {
    inner: S,
    /// Shared, so that cloning the service (per request, in servers) is one reference count.
    sender: Arc<ShadowSender>,
}

impl<S> Service<Request<Body>> for Mirror<S>
where
    S: Service<Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> S::Future {
        let Some(mirrors) = route_policy(request.extensions()).and_then(|p| p.mirrors.clone())
        else {
            return self.inner.call(request);
        };
        let (parts, body) = request.into_parts();
        let sender = &self.sender;
        let heads: Vec<Parts> = mirrors
            .iter()
            .filter(|m| m.fraction.sample())
            .map(|m| shadow_head(&parts, &m.destination, sender.host_suffix))
            .collect();
        if heads.is_empty() {
            return self.inner.call(Request::from_parts(parts, body));
        }
        let body = if body.is_end_stream() {
            sender.send_all(heads, TeeOutcome::Complete(Bytes::new()));
            body
        } else if body.size_hint().lower() > sender.buffer_limit as u64 {
            sender.send_all(heads, TeeOutcome::TooLarge);
            body
        } else {
            let sender = sender.clone();
            body::boxed(TeeBody::new(
                body,
                sender.buffer_limit,
                Box::new(move |outcome| sender.send_all(heads, outcome)),
            ))
        };
        self.inner.call(Request::from_parts(parts, body))
    }
}

impl ShadowSender {
    /// Sends one shadow per head once the body's fate is known.
    fn send_all(&self, heads: Vec<Parts>, outcome: TeeOutcome) {
        let count = heads.len() as u64;
        let body = match outcome {
            TeeOutcome::Complete(body) => body,
            TeeOutcome::TooLarge => {
                self.stats.skipped_body_too_large.fetch_add(count, Relaxed);
                return;
            }
            TeeOutcome::Incomplete => {
                self.stats.skipped_body_incomplete.fetch_add(count, Relaxed);
                return;
            }
        };
        for head in heads {
            self.send(Request::from_parts(head, body::full(body.clone())));
        }
    }

    /// Sends one shadow on a task of its own, unless `max_in_flight` are running.
    fn send(&self, request: Request<Body>) {
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            self.stats.dropped_overflow.fetch_add(1, Relaxed);
            return;
        };
        // Outside a runtime there is nowhere to run it.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.stats.failed.fetch_add(1, Relaxed);
            return;
        };
        self.stats.sent.fetch_add(1, Relaxed);
        runtime.spawn(deliver(
            self.service.clone(),
            request,
            self.stats.clone(),
            permit,
            self.deadline,
        ));
    }
}

/// Sends one shadow and discards its response (read to its end, so the connection can be
/// reused), holding its in-flight permit until done.
fn deliver(
    mut service: ShadowService,
    request: Request<Body>,
    stats: Arc<MirrorStats>,
    permit: tokio::sync::OwnedSemaphorePermit,
    deadline: Duration,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let _permit = permit;
        let exchange = async {
            std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
            let response = service.call(request).await?;
            // Read the response to its end, keeping nothing, so the connection can be reused.
            let mut body = response.into_body();
            while let Some(frame) = body.frame().await {
                frame?;
            }
            Ok::<_, BoxError>(())
        };
        // A shadow that never ends (a hung or streaming upstream) would hold its slot forever.
        match tokio::time::timeout(deadline, exchange).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => {
                stats.failed.fetch_add(1, Relaxed);
            }
        }
    })
}

#[cfg(test)]
mod tests;
