//! [`SharedStack`]: one configuration's HTTP stack, called by every thread through a clone of
//! its own.
//!
//! Calling a tower service takes `&mut self`, so a stack shared by every request was cloned
//! for each one: an allocation for the boxed clone, then a reference count taken on each
//! layer's shared state and given back when the request's clone was dropped — some twenty
//! atomic read-modify-writes per request for the outbound stack. A `SharedStack` keeps one clone
//! per thread that calls it instead, for as long as the stack itself lives: they go with the
//! configuration they belong to, so none outlives a swap. Memory is one clone for each thread
//! that has called the stack (a thread that exits leaves its clone to the next thread given
//! its id), so at most the peak number of threads: a runtime's workers, and its blocking
//! threads if they send requests.

use crate::listener::HttpService;
use http::{Request, Response};
use mesh_core::{Body, BoxError, per_thread::OwnLine};
use std::{cell::RefCell, fmt, future::Future, pin::Pin};
use thread_local::ThreadLocal;
use tower::Service;

/// The future of a call through a [`SharedStack`].
pub type StackFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

/// An HTTP stack every thread calls through a clone of its own; see the [module docs](self).
///
/// The stack is called without `poll_ready`: it must be always ready, as the proxy's stacks
/// are (their limits answer with local replies, not backpressure).
///
/// ```
/// use mesh_proxy::{listener::HttpService, shared_stack::SharedStack};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let hello = tower::service_fn(|_request: http::Request<mesh_core::Body>| async {
///     Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::full("hello")))
/// });
/// let stack = SharedStack::new(HttpService::new(hello));
/// let request = http::Request::get("/").body(mesh_core::body::empty()).unwrap();
/// // `&self`: no clone of the stack per call.
/// let response = stack.call(request).await.unwrap();
/// assert_eq!(response.status(), 200);
/// # }
/// ```
pub struct SharedStack {
    service: HttpService,
    by_thread: ThreadLocal<OwnLine<RefCell<HttpService>>>,
}

impl SharedStack {
    /// `service`, to be called through per-thread clones.
    ///
    /// ```
    /// use mesh_proxy::{listener::HttpService, shared_stack::SharedStack};
    /// use std::sync::{Arc, atomic::{AtomicUsize, Ordering::Relaxed}};
    /// /// Counts its clones.
    /// struct Clones(Arc<AtomicUsize>);
    /// impl Clone for Clones {
    ///     fn clone(&self) -> Self { self.0.fetch_add(1, Relaxed); Clones(self.0.clone()) }
    /// }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let clones = Clones(Arc::new(AtomicUsize::new(0)));
    /// let counted = clones.0.clone();
    /// let stack = SharedStack::new(HttpService::new(tower::service_fn(move |_req| {
    ///     let _counter = &clones; // cloned with the service
    ///     async { Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::empty())) }
    /// })));
    /// for _ in 0..5 {
    ///     stack.call(http::Request::new(mesh_core::body::empty())).await.unwrap();
    /// }
    /// assert_eq!(counted.load(Relaxed), 1, "one clone for this thread, not one per request");
    /// # }
    /// ```
    pub fn new(service: HttpService) -> Self {
        SharedStack {
            service,
            by_thread: ThreadLocal::new(),
        }
    }

    /// The stack itself (a clone of it is a service of its own).
    ///
    /// ```
    /// use mesh_proxy::{listener::HttpService, shared_stack::SharedStack};
    /// use http_body_util::BodyExt;
    /// use tower::ServiceExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let hello = tower::service_fn(|_req| async { Ok::<_, mesh_core::BoxError>(http::Response::new(mesh_core::body::full("hello"))) });
    /// let stack = SharedStack::new(HttpService::new(hello));
    /// // A tower service of its own, for APIs that take one by value.
    /// let service: HttpService = stack.service().clone();
    /// let response = service.oneshot(http::Request::new(mesh_core::body::empty())).await.unwrap();
    /// assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "hello");
    /// # }
    /// ```
    pub fn service(&self) -> &HttpService {
        &self.service
    }

    /// Calls the stack with `request`, through this thread's clone of it.
    ///
    /// ```
    /// use mesh_proxy::{listener::HttpService, shared_stack::SharedStack};
    /// use std::sync::Arc;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let echo = tower::service_fn(|req: http::Request<mesh_core::Body>| async move {
    ///     Ok::<_, mesh_core::BoxError>(http::Response::builder().header("x-path", req.uri().path()).body(mesh_core::body::empty()).unwrap())
    /// });
    /// let stack = Arc::new(SharedStack::new(HttpService::new(echo)));
    /// let get = |path| http::Request::get(path).body(mesh_core::body::empty()).unwrap();
    /// // By shared reference: calls in flight together, and from other threads.
    /// let (a, b) = tokio::join!(stack.call(get("/a")), stack.call(get("/b")));
    /// assert_eq!(a.unwrap().headers()["x-path"], "/a");
    /// assert_eq!(b.unwrap().headers()["x-path"], "/b");
    /// let other = stack.clone();
    /// let c = std::thread::spawn(move || other.call(get("/c"))).join().unwrap();
    /// assert_eq!(c.await.unwrap().headers()["x-path"], "/c");
    /// # }
    /// ```
    pub fn call(&self, request: Request<Body>) -> StackFuture {
        // In lines of its own: the borrow flag is written for each call.
        let mine = self
            .by_thread
            .get_or(|| OwnLine(RefCell::new(self.service.clone())));
        match mine.try_borrow_mut() {
            Ok(mut service) => service.call(request),
            // Called again while this thread's call is under way (a layer below calling back
            // into the stack as it is called): a clone for this one call.
            Err(_) => self.service.clone().call(request),
        }
    }
}

impl fmt::Debug for SharedStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedStack")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    use std::task::{Context, Poll};

    /// A service that counts how often it is cloned.
    struct Counted(Arc<AtomicUsize>);

    impl Clone for Counted {
        fn clone(&self) -> Self {
            self.0.fetch_add(1, Ordering::Relaxed);
            Counted(self.0.clone())
        }
    }

    impl Service<Request<Body>> for Counted {
        type Response = Response<Body>;
        type Error = BoxError;
        type Future = std::future::Ready<Result<Response<Body>, BoxError>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _request: Request<Body>) -> Self::Future {
            std::future::ready(Ok(Response::new(mesh_core::body::empty())))
        }
    }

    fn get() -> Request<Body> {
        Request::get("/").body(mesh_core::body::empty()).unwrap()
    }

    #[tokio::test]
    async fn each_thread_clones_the_stack_once_not_each_request() {
        let clones = Arc::new(AtomicUsize::new(0));
        let stack = Arc::new(SharedStack::new(HttpService::new(Counted(clones.clone()))));
        for _ in 0..10 {
            assert_eq!(stack.call(get()).await.unwrap().status(), 200);
        }
        assert_eq!(
            clones.load(Ordering::Relaxed),
            1,
            "one clone for this thread"
        );
        let other = stack.clone();
        std::thread::spawn(move || {
            for _ in 0..10 {
                drop(other.call(get()));
            }
        })
        .join()
        .unwrap();
        assert_eq!(
            clones.load(Ordering::Relaxed),
            2,
            "and one for the other thread"
        );
    }

    #[tokio::test]
    async fn each_threads_clone_lies_in_lines_of_its_own() {
        // Eight stacks, so that a clone that merely happens to start a line is no proof.
        for _ in 0..8 {
            let stack = SharedStack::new(HttpService::new(Counted(Arc::default())));
            stack.call(get()).await.unwrap();
            let mine = stack.by_thread.get().expect("this thread's clone");
            assert_eq!(std::ptr::from_ref(mine).addr() % 128, 0);
        }
    }

    #[tokio::test]
    async fn the_clones_go_with_the_stack() {
        let counter = Arc::new(AtomicUsize::new(0));
        let stack = SharedStack::new(HttpService::new(Counted(counter.clone())));
        stack.call(get()).await.unwrap();
        assert_eq!(
            Arc::strong_count(&counter),
            3,
            "ours, the stack's, this thread's clone"
        );
        drop(stack);
        assert_eq!(
            Arc::strong_count(&counter),
            1,
            "nothing of it outlives the stack"
        );
    }

    #[test]
    fn a_call_made_during_a_call_on_the_same_thread_gets_a_clone_of_its_own() {
        let clones = Arc::new(AtomicUsize::new(0));
        let stack = SharedStack::new(HttpService::new(Counted(clones.clone())));
        drop(stack.call(get()));
        let mine = stack.by_thread.get().unwrap();
        let _held = mine.borrow_mut();
        drop(stack.call(get()));
        assert_eq!(clones.load(Ordering::Relaxed), 2);
    }
}
