//! A loopback HTTP server for benches: answers every request 200 with an empty body, on a
//! thread and runtime of its own (so it does not share the bench's).

use hyper_util::rt::TokioExecutor;
use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::atomic::{AtomicU64, Ordering},
};

/// Requests the upstreams of this process have answered.
static SERVED: AtomicU64 = AtomicU64::new(0);

/// How many requests the upstreams of this process have answered.
#[allow(dead_code, reason = "only in_process reports it")]
pub fn served() -> u64 {
    SERVED.load(Ordering::Relaxed)
}

/// Serves 200 with an empty body on a loopback port, on a thread of its own.
pub fn upstream() -> SocketAddr {
    let (bound, addr) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            bound
                .send(listener.local_addr().expect("addr"))
                .expect("send");
            let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let _ = stream.set_nodelay(true);
                let http = http.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|_request| async {
                        SERVED.fetch_add(1, Ordering::Relaxed);
                        Ok::<_, Infallible>(http::Response::new(mesh::core::body::empty()))
                    });
                    let _ = http
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    addr.recv().expect("upstream address")
}
