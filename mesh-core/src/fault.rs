//! [`FaultLayer`]: Istio fault injection — delay and/or abort a share of requests.
//!
//! The policy comes from the request's [`RoutePolicy`](crate::policy::RoutePolicy) (set by
//! routing), or from the layer itself for in-process use: the layer's policy applies whenever the
//! request's `fault` is `None`, whether or not the request carries a `RoutePolicy`. A delay waits
//! `fixedDelay` before the request goes on and marks the response `DI`; an abort answers locally —
//! the configured HTTP status with body `fault filter abort`, or for gRPC HTTP 200 with
//! `grpc-status` — and marks it `FI`. Delay and abort are drawn independently. The layer sits
//! outside timeouts and retries: a faulted request is subject to neither, as in Istio. Requests
//! without a fault pass through with no allocation.

use crate::{
    Body, BoxError, LocalReplyDetails, MeshError, ResponseFlag, body,
    flags::{mark, mark_outcome},
    policy::{FaultAbort, FaultPolicy, route_policy},
};
use http::{HeaderValue, Request, Response, StatusCode, header};
use pin_project::pin_project;
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};
use tower::{Layer, Service};

/// Injects faults; see the [module docs](self).
///
/// ```
/// use mesh_core::{body, fault::FaultLayer, policy::{FaultAbort, FaultPolicy, Fraction}};
/// use tower::{Layer, ServiceExt, service_fn};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let abort_all = FaultPolicy {
///     abort: Some((FaultAbort::Http(http::StatusCode::SERVICE_UNAVAILABLE), Fraction::ALL)),
///     ..Default::default()
/// };
/// let svc = FaultLayer::with_policy(abort_all).layer(service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(body::empty()))
/// }));
/// let response = svc.oneshot(http::Request::new(())).await.unwrap();
/// assert_eq!(response.status(), 503);
/// # });
/// ```
#[derive(Clone, Debug, Default)]
pub struct FaultLayer {
    fallback: Option<Arc<FaultPolicy>>,
}

impl FaultLayer {
    /// Injects the fault of each request's route (no fault for requests without one: no
    /// [`RoutePolicy`](crate::policy::RoutePolicy), or one with `fault: None`).
    ///
    /// ```
    /// use mesh_core::{ResponseFlags, body, fault::FaultLayer};
    /// use mesh_core::policy::{FaultAbort, FaultPolicy, Fraction, RoutePolicy};
    /// use std::sync::Arc;
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let ok = service_fn(|_req: http::Request<()>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(body::empty()))
    /// });
    /// let svc = FaultLayer::new().layer(ok);
    /// assert_eq!(svc.clone().oneshot(http::Request::new(())).await.unwrap().status(), 200);
    /// let fault = FaultPolicy { abort: Some((FaultAbort::Http(http::StatusCode::IM_A_TEAPOT), Fraction::ALL)), ..Default::default() };
    /// let mut request = http::Request::new(());
    /// request.extensions_mut().insert(RoutePolicy { fault: Some(Arc::new(fault)), ..Default::default() });
    /// let response = svc.oneshot(request).await.unwrap();
    /// assert_eq!(response.status(), 418);
    /// assert_eq!(response.extensions().get::<ResponseFlags>().unwrap().to_string(), "FI");
    /// # }
    /// ```
    pub fn new() -> Self {
        FaultLayer::default()
    }

    /// Injects `policy` into requests whose route has no fault of its own: those with no
    /// [`RoutePolicy`](crate::policy::RoutePolicy) and those whose `RoutePolicy` has `fault: None`.
    ///
    /// A fixed delay for every request, marked `DI`:
    ///
    /// ```
    /// use mesh_core::{ResponseFlags, body, fault::FaultLayer, policy::{FaultPolicy, Fraction}};
    /// use std::time::Duration;
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let ok = service_fn(|_req: http::Request<()>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(body::empty()))
    /// });
    /// let delay = FaultPolicy { delay: Some((Duration::from_secs(2), Fraction::ALL)), ..Default::default() };
    /// let start = tokio::time::Instant::now();
    /// let response = FaultLayer::with_policy(delay).layer(ok).oneshot(http::Request::new(())).await.unwrap();
    /// assert_eq!(start.elapsed(), Duration::from_secs(2));
    /// assert_eq!(response.extensions().get::<ResponseFlags>().unwrap().to_string(), "DI");
    /// # }
    /// ```
    pub fn with_policy(policy: FaultPolicy) -> Self {
        FaultLayer {
            fallback: Some(Arc::new(policy)),
        }
    }
}

impl<S> Layer<S> for FaultLayer {
    type Service = Fault<S>;

    fn layer(&self, inner: S) -> Fault<S> {
        Fault {
            inner,
            fallback: self.fallback.clone(),
        }
    }
}

/// The service [`FaultLayer`] produces.
///
/// A gRPC abort is a trailers-only HTTP 200:
///
/// ```
/// use mesh_core::{body, fault::{Fault, FaultLayer}, policy::{FaultAbort, FaultPolicy, Fraction}};
/// use tower::{Layer, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let ok = service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(body::empty()))
/// });
/// let abort = FaultPolicy { abort: Some((FaultAbort::Grpc(14), Fraction::ALL)), ..Default::default() };
/// let svc: Fault<_> = FaultLayer::with_policy(abort).layer(ok);
/// let response = svc.oneshot(http::Request::new(())).await.unwrap();
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.headers()["grpc-status"], "14");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Fault<S> {
    inner: S,
    fallback: Option<Arc<FaultPolicy>>,
}

impl<S, B> Service<Request<B>> for Fault<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = FaultFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let policy = route_policy(request.extensions())
            .and_then(|p| p.fault.as_ref())
            .or(self.fallback.as_ref());
        let Some(policy) = policy else {
            return FaultFuture::Pass {
                future: self.inner.call(request),
            };
        };
        let delay = policy
            .delay
            .filter(|(_, share)| share.sample())
            .map(|(d, _)| d);
        if let Some((abort, _)) = policy.abort.filter(|(_, share)| share.sample()) {
            // An aborted request is still delayed first when both are drawn, as Envoy does.
            let reply = abort_reply(abort);
            return match delay {
                None => FaultFuture::Done {
                    response: Some(reply),
                },
                Some(delay) => FaultFuture::Delayed {
                    future: Box::pin(async move {
                        tokio::time::sleep(delay).await;
                        let mut reply = reply;
                        mark(&mut reply, ResponseFlag::DelayInjected);
                        Ok(reply)
                    }),
                },
            };
        }
        match delay {
            None => FaultFuture::Pass {
                future: self.inner.call(request),
            },
            Some(delay) => {
                // Take the service that was made ready; leave a fresh clone in its place.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                FaultFuture::Delayed {
                    future: Box::pin(async move {
                        tokio::time::sleep(delay).await;
                        // Delayed whatever happens next: a failure is marked too (`DI,UF`).
                        let outcome = inner.call(request).await.map_err(Into::into);
                        mark_outcome(outcome, ResponseFlag::DelayInjected)
                    }),
                }
            }
        }
    }
}

/// The local reply for an abort.
fn abort_reply(abort: FaultAbort) -> Response<Body> {
    match abort {
        FaultAbort::Http(status) => MeshError::FaultAbort(status).to_response(),
        FaultAbort::Grpc(code) => {
            let mut response = Response::new(body::empty());
            *response.status_mut() = StatusCode::OK;
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            headers.insert("grpc-status", HeaderValue::from(code));
            headers.insert(
                "grpc-message",
                HeaderValue::from_static("fault filter abort"),
            );
            mark(&mut response, ResponseFlag::FaultInjected);
            response
                .extensions_mut()
                .insert(LocalReplyDetails::fixed("fault_filter_abort"));
            response
        }
    }
}

type Boxed = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

/// Future of [`Fault`].
///
/// ```
/// use mesh_core::{body, fault::{FaultFuture, FaultLayer}, policy::{FaultAbort, FaultPolicy, Fraction}};
/// use tower::{Layer, Service, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let ok = service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(body::empty()))
/// });
/// let abort = FaultPolicy { abort: Some((FaultAbort::Http(http::StatusCode::BAD_GATEWAY), Fraction::ALL)), ..Default::default() };
/// let mut svc = FaultLayer::with_policy(abort).layer(ok);
/// let future = svc.ready().await.unwrap().call(http::Request::new(()));
/// assert!(matches!(future, FaultFuture::Done { .. }), "aborted without calling the service");
/// assert_eq!(future.await.unwrap().status(), 502);
/// # }
/// ```
#[pin_project(project = FaultFutureProj)]
pub enum FaultFuture<F> {
    /// No fault: the inner future as is.
    Pass {
        /// Inner future.
        #[pin]
        future: F,
    },
    /// Delayed (then forwarded or aborted).
    Delayed {
        /// The delay and what follows it.
        future: Boxed,
    },
    /// Aborted at once.
    Done {
        /// The reply (taken on completion).
        response: Option<Response<Body>>,
    },
}

impl<F, E> Future for FaultFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<Body>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            FaultFutureProj::Pass { future } => future.poll(cx).map_err(Into::into),
            FaultFutureProj::Delayed { future } => future.as_mut().poll(cx),
            FaultFutureProj::Done { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => panic!("FaultFuture polled after completion"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RoutePolicy;
    use crate::{ResponseFlags, policy::Fraction};
    use std::{
        convert::Infallible,
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };
    use tower::{ServiceExt, service_fn};

    type TestService = tower::util::BoxCloneSyncService<Request<()>, Response<Body>, Infallible>;

    fn counting() -> (Arc<AtomicUsize>, TestService) {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let svc = service_fn(move |_req: Request<()>| {
            seen.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(body::empty())) }
        });
        (calls, TestService::new(svc))
    }

    fn flags(response: &Response<Body>) -> String {
        response
            .extensions()
            .get::<ResponseFlags>()
            .map(|f| f.to_string())
            .unwrap_or_default()
    }

    #[tokio::test(start_paused = true)]
    async fn delay_waits_then_forwards_and_marks_di() {
        let (calls, svc) = counting();
        let policy = FaultPolicy {
            delay: Some((Duration::from_secs(2), Fraction::ALL)),
            ..Default::default()
        };
        let svc = FaultLayer::with_policy(policy).layer(svc);
        let start = tokio::time::Instant::now();
        let response = svc.oneshot(Request::new(())).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(flags(&response), "DI");
    }

    #[tokio::test(start_paused = true)]
    async fn a_delayed_request_that_then_fails_is_marked_di_too() {
        let policy = FaultPolicy {
            delay: Some((Duration::from_millis(5), Fraction::ALL)),
            ..Default::default()
        };
        let failing = service_fn(|_req: Request<()>| async {
            Err::<Response<Body>, _>(MeshError::ConnectFailure("refused".into()))
        });
        let svc = FaultLayer::with_policy(policy).layer(failing);
        let error = svc.oneshot(Request::new(())).await.unwrap_err();
        assert!(matches!(
            MeshError::find(&error),
            Some(MeshError::ConnectFailure(_))
        ));
        let reply = crate::local_reply::error_to_response(&error);
        assert_eq!(
            (reply.status().as_u16(), flags(&reply)),
            (503, "DI,UF".into())
        );
    }

    #[tokio::test]
    async fn abort_answers_locally() {
        let (calls, svc) = counting();
        let policy = FaultPolicy {
            abort: Some((FaultAbort::Http(StatusCode::IM_A_TEAPOT), Fraction::ALL)),
            ..Default::default()
        };
        let response = FaultLayer::with_policy(policy)
            .layer(svc)
            .oneshot(Request::new(()))
            .await
            .unwrap();
        assert_eq!(response.status(), 418);
        assert_eq!(flags(&response), "FI");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn grpc_abort_is_trailers_only_200() {
        let (_, svc) = counting();
        let policy = FaultPolicy {
            abort: Some((FaultAbort::Grpc(14), Fraction::ALL)),
            ..Default::default()
        };
        let response = FaultLayer::with_policy(policy)
            .layer(svc)
            .oneshot(Request::new(()))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["grpc-status"], "14");
        assert_eq!(flags(&response), "FI");
        // A local reply, as the access log must tell (not the upstream's answer).
        assert_eq!(
            response.extensions().get::<LocalReplyDetails>(),
            Some(&LocalReplyDetails::fixed("fault_filter_abort"))
        );
    }

    #[tokio::test]
    async fn route_policy_overrides_layer_and_zero_share_never_fires() {
        let (calls, svc) = counting();
        let layer = FaultLayer::with_policy(FaultPolicy {
            abort: Some((FaultAbort::Http(StatusCode::BAD_GATEWAY), Fraction::ALL)),
            ..Default::default()
        });
        let svc = layer.layer(svc);
        let mut request = Request::new(());
        request.extensions_mut().insert(RoutePolicy {
            fault: Some(Arc::new(FaultPolicy {
                abort: Some((
                    FaultAbort::Http(StatusCode::BAD_GATEWAY),
                    Fraction::from_percent(0.0),
                )),
                ..Default::default()
            })),
            ..Default::default()
        });
        for _ in 0..100 {
            let mut r = Request::new(());
            *r.extensions_mut() = request.extensions().clone();
            assert_eq!(svc.clone().oneshot(r).await.unwrap().status(), 200);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 100);
    }

    #[tokio::test]
    async fn share_is_respected() {
        let (calls, svc) = counting();
        let policy = FaultPolicy {
            abort: Some((
                FaultAbort::Http(StatusCode::SERVICE_UNAVAILABLE),
                Fraction::from_percent(25.0),
            )),
            ..Default::default()
        };
        let svc = FaultLayer::with_policy(policy).layer(svc);
        const N: usize = 4000;
        let mut aborted = 0;
        for _ in 0..N {
            if svc
                .clone()
                .oneshot(Request::new(()))
                .await
                .unwrap()
                .status()
                == 503
            {
                aborted += 1;
            }
        }
        let (n, p) = (N as f64, 0.25);
        assert!(
            (aborted as f64 - n * p).abs() <= 4.0 * (n * p * (1.0 - p)).sqrt(),
            "{aborted}"
        );
        assert_eq!(calls.load(Ordering::SeqCst) + aborted, N);
    }
}
