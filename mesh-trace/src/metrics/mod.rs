//! Istio's standard metrics — `istio_requests_total`, `istio_request_duration_milliseconds`,
//! `istio_request_bytes`, `istio_response_bytes`, and the `istio_tcp_*` counters of proxied
//! connections ([`TcpConnection`]) — through the [`metrics`] facade, with Istio's
//! exact label set and value rules (mesh-semantics §6), so that Grafana dashboards, Kiali and
//! Flagger queries written for Istio work unchanged.
//!
//! `istio_build` (a gauge of 1 with `component="proxy"` and the version as `tag`) is set when
//! an [`IstioMetrics`] is made.
//!
//! [`IstioMetrics`] turns one finished request (a [`RequestOutcome`]) into one counter
//! increment and three histogram samples. Label values are built once per distinct
//! destination service and outcome (peer, status, flags, gRPC status, protocol) and their
//! handles cached, so the request path neither allocates nor hashes label strings.

mod istio;
mod labels;
mod tcp;

pub use istio::{IstioMetrics, MAX_PEERS, MAX_SERVICES, MetricsRecorder, RequestOutcome};
pub(crate) use labels::grpc_status_of_http;
pub use labels::{
    BLACK_HOLE_CLUSTER, CatchAllCluster, PASSTHROUGH_CLUSTER, Reporter, RequestProtocol,
};
pub use tcp::{TcpConnection, TcpCounters};

/// `istio_requests_total`: one per HTTP or gRPC request.
///
/// ```
/// use mesh_trace::metrics::{REQUESTS_TOTAL, Reporter};
/// # /// Metrics of workload `web.shop` reported by `reporter`, on a debugging recorder.
/// # fn metrics(reporter: mesh_trace::metrics::Reporter) -> (mesh_trace::metrics::IstioMetrics, metrics_util::debugging::Snapshotter) {
/// #     let recorder = metrics_util::debugging::DebuggingRecorder::new();
/// #     let snapshotter = recorder.snapshotter();
/// #     let local = mesh_core::workload::Workload::from_labels("web", "shop", &Default::default());
/// #     let recorder = mesh_trace::metrics::MetricsRecorder::Owned(std::sync::Arc::new(recorder));
/// #     (mesh_trace::metrics::IstioMetrics::new(recorder, reporter, local), snapshotter)
/// # }
/// # /// A 200 from `service` in 3 ms, 100 bytes in and 200 out.
/// # fn ok(service: &str) -> mesh_trace::metrics::RequestOutcome<'_> {
/// #     mesh_trace::metrics::RequestOutcome {
/// #         destination_service: service,
/// #         catch_all: None,
/// #         peer: None,
/// #         status: 200,
/// #         flags: mesh_core::ResponseFlags::default(),
/// #         grpc_status: None,
/// #         protocol: mesh_trace::metrics::RequestProtocol::Http,
/// #         duration: std::time::Duration::from_millis(3),
/// #         request_bytes: 100,
/// #         response_bytes: 200,
/// #     }
/// # }
/// # /// Every series of metric `name`: its labels and its value (a counter's count, a gauge's
/// # /// value, a histogram's first sample).
/// # fn series(snapshotter: &metrics_util::debugging::Snapshotter, name: &str) -> Vec<(std::collections::BTreeMap<String, String>, f64)> {
/// #     use metrics_util::debugging::DebugValue;
/// #     snapshotter.snapshot().into_vec().into_iter().filter(|(key, ..)| key.key().name() == name).map(|(key, _, _, value)| {
/// #         let labels = key.key().labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
/// #         let value = match value {
/// #             DebugValue::Counter(n) => n as f64,
/// #             DebugValue::Gauge(v) => v.into_inner(),
/// #             DebugValue::Histogram(samples) => samples[0].into_inner(),
/// #         };
/// #         (labels, value)
/// #     }).collect()
/// # }
/// let (metrics, snapshotter) = metrics(Reporter::Source);
/// metrics.record(&ok("catalog.shop.svc.cluster.local"));
/// let requests = series(&snapshotter, REQUESTS_TOTAL);
/// assert_eq!(requests[0].1, 1.0);
/// assert_eq!(requests[0].0.len(), 25); // Istio's label set
/// ```
pub const REQUESTS_TOTAL: &str = "istio_requests_total";
/// `istio_request_duration_milliseconds`: time from request arrival to its completion.
///
/// ```
/// use mesh_trace::metrics::{REQUEST_DURATION, Reporter};
/// # /// Metrics of workload `web.shop` reported by `reporter`, on a debugging recorder.
/// # fn metrics(reporter: mesh_trace::metrics::Reporter) -> (mesh_trace::metrics::IstioMetrics, metrics_util::debugging::Snapshotter) {
/// #     let recorder = metrics_util::debugging::DebuggingRecorder::new();
/// #     let snapshotter = recorder.snapshotter();
/// #     let local = mesh_core::workload::Workload::from_labels("web", "shop", &Default::default());
/// #     let recorder = mesh_trace::metrics::MetricsRecorder::Owned(std::sync::Arc::new(recorder));
/// #     (mesh_trace::metrics::IstioMetrics::new(recorder, reporter, local), snapshotter)
/// # }
/// # /// A 200 from `service` in 3 ms, 100 bytes in and 200 out.
/// # fn ok(service: &str) -> mesh_trace::metrics::RequestOutcome<'_> {
/// #     mesh_trace::metrics::RequestOutcome {
/// #         destination_service: service,
/// #         catch_all: None,
/// #         peer: None,
/// #         status: 200,
/// #         flags: mesh_core::ResponseFlags::default(),
/// #         grpc_status: None,
/// #         protocol: mesh_trace::metrics::RequestProtocol::Http,
/// #         duration: std::time::Duration::from_millis(3),
/// #         request_bytes: 100,
/// #         response_bytes: 200,
/// #     }
/// # }
/// # /// Every series of metric `name`: its labels and its value (a counter's count, a gauge's
/// # /// value, a histogram's first sample).
/// # fn series(snapshotter: &metrics_util::debugging::Snapshotter, name: &str) -> Vec<(std::collections::BTreeMap<String, String>, f64)> {
/// #     use metrics_util::debugging::DebugValue;
/// #     snapshotter.snapshot().into_vec().into_iter().filter(|(key, ..)| key.key().name() == name).map(|(key, _, _, value)| {
/// #         let labels = key.key().labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
/// #         let value = match value {
/// #             DebugValue::Counter(n) => n as f64,
/// #             DebugValue::Gauge(v) => v.into_inner(),
/// #             DebugValue::Histogram(samples) => samples[0].into_inner(),
/// #         };
/// #         (labels, value)
/// #     }).collect()
/// # }
/// let (metrics, snapshotter) = metrics(Reporter::Source);
/// metrics.record(&ok("catalog.shop.svc.cluster.local")); // took 3 ms
/// assert_eq!(series(&snapshotter, REQUEST_DURATION)[0].1, 3.0);
/// ```
pub const REQUEST_DURATION: &str = "istio_request_duration_milliseconds";
/// `istio_request_bytes`: request size (headers and body).
///
/// ```
/// use mesh_trace::metrics::{REQUEST_BYTES, Reporter};
/// # /// Metrics of workload `web.shop` reported by `reporter`, on a debugging recorder.
/// # fn metrics(reporter: mesh_trace::metrics::Reporter) -> (mesh_trace::metrics::IstioMetrics, metrics_util::debugging::Snapshotter) {
/// #     let recorder = metrics_util::debugging::DebuggingRecorder::new();
/// #     let snapshotter = recorder.snapshotter();
/// #     let local = mesh_core::workload::Workload::from_labels("web", "shop", &Default::default());
/// #     let recorder = mesh_trace::metrics::MetricsRecorder::Owned(std::sync::Arc::new(recorder));
/// #     (mesh_trace::metrics::IstioMetrics::new(recorder, reporter, local), snapshotter)
/// # }
/// # /// A 200 from `service` in 3 ms, 100 bytes in and 200 out.
/// # fn ok(service: &str) -> mesh_trace::metrics::RequestOutcome<'_> {
/// #     mesh_trace::metrics::RequestOutcome {
/// #         destination_service: service,
/// #         catch_all: None,
/// #         peer: None,
/// #         status: 200,
/// #         flags: mesh_core::ResponseFlags::default(),
/// #         grpc_status: None,
/// #         protocol: mesh_trace::metrics::RequestProtocol::Http,
/// #         duration: std::time::Duration::from_millis(3),
/// #         request_bytes: 100,
/// #         response_bytes: 200,
/// #     }
/// # }
/// # /// Every series of metric `name`: its labels and its value (a counter's count, a gauge's
/// # /// value, a histogram's first sample).
/// # fn series(snapshotter: &metrics_util::debugging::Snapshotter, name: &str) -> Vec<(std::collections::BTreeMap<String, String>, f64)> {
/// #     use metrics_util::debugging::DebugValue;
/// #     snapshotter.snapshot().into_vec().into_iter().filter(|(key, ..)| key.key().name() == name).map(|(key, _, _, value)| {
/// #         let labels = key.key().labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
/// #         let value = match value {
/// #             DebugValue::Counter(n) => n as f64,
/// #             DebugValue::Gauge(v) => v.into_inner(),
/// #             DebugValue::Histogram(samples) => samples[0].into_inner(),
/// #         };
/// #         (labels, value)
/// #     }).collect()
/// # }
/// let (metrics, snapshotter) = metrics(Reporter::Source);
/// metrics.record(&ok("catalog.shop.svc.cluster.local")); // 100 bytes in
/// assert_eq!(series(&snapshotter, REQUEST_BYTES)[0].1, 100.0);
/// ```
pub const REQUEST_BYTES: &str = "istio_request_bytes";
/// `istio_response_bytes`: response size (headers and body).
///
/// ```
/// use mesh_trace::metrics::{RESPONSE_BYTES, Reporter};
/// # /// Metrics of workload `web.shop` reported by `reporter`, on a debugging recorder.
/// # fn metrics(reporter: mesh_trace::metrics::Reporter) -> (mesh_trace::metrics::IstioMetrics, metrics_util::debugging::Snapshotter) {
/// #     let recorder = metrics_util::debugging::DebuggingRecorder::new();
/// #     let snapshotter = recorder.snapshotter();
/// #     let local = mesh_core::workload::Workload::from_labels("web", "shop", &Default::default());
/// #     let recorder = mesh_trace::metrics::MetricsRecorder::Owned(std::sync::Arc::new(recorder));
/// #     (mesh_trace::metrics::IstioMetrics::new(recorder, reporter, local), snapshotter)
/// # }
/// # /// A 200 from `service` in 3 ms, 100 bytes in and 200 out.
/// # fn ok(service: &str) -> mesh_trace::metrics::RequestOutcome<'_> {
/// #     mesh_trace::metrics::RequestOutcome {
/// #         destination_service: service,
/// #         catch_all: None,
/// #         peer: None,
/// #         status: 200,
/// #         flags: mesh_core::ResponseFlags::default(),
/// #         grpc_status: None,
/// #         protocol: mesh_trace::metrics::RequestProtocol::Http,
/// #         duration: std::time::Duration::from_millis(3),
/// #         request_bytes: 100,
/// #         response_bytes: 200,
/// #     }
/// # }
/// # /// Every series of metric `name`: its labels and its value (a counter's count, a gauge's
/// # /// value, a histogram's first sample).
/// # fn series(snapshotter: &metrics_util::debugging::Snapshotter, name: &str) -> Vec<(std::collections::BTreeMap<String, String>, f64)> {
/// #     use metrics_util::debugging::DebugValue;
/// #     snapshotter.snapshot().into_vec().into_iter().filter(|(key, ..)| key.key().name() == name).map(|(key, _, _, value)| {
/// #         let labels = key.key().labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
/// #         let value = match value {
/// #             DebugValue::Counter(n) => n as f64,
/// #             DebugValue::Gauge(v) => v.into_inner(),
/// #             DebugValue::Histogram(samples) => samples[0].into_inner(),
/// #         };
/// #         (labels, value)
/// #     }).collect()
/// # }
/// let (metrics, snapshotter) = metrics(Reporter::Source);
/// metrics.record(&ok("catalog.shop.svc.cluster.local")); // 200 bytes out
/// assert_eq!(series(&snapshotter, RESPONSE_BYTES)[0].1, 200.0);
/// ```
pub const RESPONSE_BYTES: &str = "istio_response_bytes";

/// `istio_tcp_connections_opened_total`: TCP connections proxied.
///
/// ```
/// use mesh_trace::metrics::{Reporter, TCP_OPENED};
/// # /// Metrics of workload `web.shop` reported by `reporter`, on a debugging recorder.
/// # fn metrics(reporter: mesh_trace::metrics::Reporter) -> (mesh_trace::metrics::IstioMetrics, metrics_util::debugging::Snapshotter) {
/// #     let recorder = metrics_util::debugging::DebuggingRecorder::new();
/// #     let snapshotter = recorder.snapshotter();
/// #     let local = mesh_core::workload::Workload::from_labels("web", "shop", &Default::default());
/// #     let recorder = mesh_trace::metrics::MetricsRecorder::Owned(std::sync::Arc::new(recorder));
/// #     (mesh_trace::metrics::IstioMetrics::new(recorder, reporter, local), snapshotter)
/// # }
/// # /// A TCP connection to `service`.
/// # fn tcp(service: &str) -> mesh_trace::metrics::TcpConnection<'_> {
/// #     mesh_trace::metrics::TcpConnection { destination_service: service, catch_all: None, peer: None, flags: Default::default() }
/// # }
/// # /// Every series of metric `name`: its labels and its value (a counter's count, a gauge's
/// # /// value, a histogram's first sample).
/// # fn series(snapshotter: &metrics_util::debugging::Snapshotter, name: &str) -> Vec<(std::collections::BTreeMap<String, String>, f64)> {
/// #     use metrics_util::debugging::DebugValue;
/// #     snapshotter.snapshot().into_vec().into_iter().filter(|(key, ..)| key.key().name() == name).map(|(key, _, _, value)| {
/// #         let labels = key.key().labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
/// #         let value = match value {
/// #             DebugValue::Counter(n) => n as f64,
/// #             DebugValue::Gauge(v) => v.into_inner(),
/// #             DebugValue::Histogram(samples) => samples[0].into_inner(),
/// #         };
/// #         (labels, value)
/// #     }).collect()
/// # }
/// let (metrics, snapshotter) = metrics(Reporter::Source);
/// let _first = metrics.tcp_opened(&tcp("db.shop.svc.cluster.local"));
/// let _second = metrics.tcp_opened(&tcp("db.shop.svc.cluster.local"));
/// let opened = series(&snapshotter, TCP_OPENED);
/// assert_eq!(opened[0].1, 2.0);
/// assert_eq!(opened[0].0["request_protocol"], "tcp");
/// ```
pub const TCP_OPENED: &str = "istio_tcp_connections_opened_total";
/// `istio_tcp_connections_closed_total`: proxied TCP connections closed.
///
/// ```
/// use mesh_trace::metrics::{Reporter, TCP_CLOSED};
/// # /// Metrics of workload `web.shop` reported by `reporter`, on a debugging recorder.
/// # fn metrics(reporter: mesh_trace::metrics::Reporter) -> (mesh_trace::metrics::IstioMetrics, metrics_util::debugging::Snapshotter) {
/// #     let recorder = metrics_util::debugging::DebuggingRecorder::new();
/// #     let snapshotter = recorder.snapshotter();
/// #     let local = mesh_core::workload::Workload::from_labels("web", "shop", &Default::default());
/// #     let recorder = mesh_trace::metrics::MetricsRecorder::Owned(std::sync::Arc::new(recorder));
/// #     (mesh_trace::metrics::IstioMetrics::new(recorder, reporter, local), snapshotter)
/// # }
/// # /// A TCP connection to `service`.
/// # fn tcp(service: &str) -> mesh_trace::metrics::TcpConnection<'_> {
/// #     mesh_trace::metrics::TcpConnection { destination_service: service, catch_all: None, peer: None, flags: Default::default() }
/// # }
/// # /// Every series of metric `name`: its labels and its value (a counter's count, a gauge's
/// # /// value, a histogram's first sample).
/// # fn series(snapshotter: &metrics_util::debugging::Snapshotter, name: &str) -> Vec<(std::collections::BTreeMap<String, String>, f64)> {
/// #     use metrics_util::debugging::DebugValue;
/// #     snapshotter.snapshot().into_vec().into_iter().filter(|(key, ..)| key.key().name() == name).map(|(key, _, _, value)| {
/// #         let labels = key.key().labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
/// #         let value = match value {
/// #             DebugValue::Counter(n) => n as f64,
/// #             DebugValue::Gauge(v) => v.into_inner(),
/// #             DebugValue::Histogram(samples) => samples[0].into_inner(),
/// #         };
/// #         (labels, value)
/// #     }).collect()
/// # }
/// let (metrics, snapshotter) = metrics(Reporter::Source);
/// let counters = metrics.tcp_opened(&tcp("db.shop.svc.cluster.local"));
/// assert_eq!(series(&snapshotter, TCP_CLOSED)[0].1, 0.0);
/// counters.close();
/// assert_eq!(series(&snapshotter, TCP_CLOSED)[0].1, 1.0);
/// ```
pub const TCP_CLOSED: &str = "istio_tcp_connections_closed_total";
/// `istio_tcp_received_bytes_total`: bytes from the downstream (request direction).
///
/// ```
/// use mesh_trace::metrics::{Reporter, TCP_RECEIVED_BYTES};
/// # /// Metrics of workload `web.shop` reported by `reporter`, on a debugging recorder.
/// # fn metrics(reporter: mesh_trace::metrics::Reporter) -> (mesh_trace::metrics::IstioMetrics, metrics_util::debugging::Snapshotter) {
/// #     let recorder = metrics_util::debugging::DebuggingRecorder::new();
/// #     let snapshotter = recorder.snapshotter();
/// #     let local = mesh_core::workload::Workload::from_labels("web", "shop", &Default::default());
/// #     let recorder = mesh_trace::metrics::MetricsRecorder::Owned(std::sync::Arc::new(recorder));
/// #     (mesh_trace::metrics::IstioMetrics::new(recorder, reporter, local), snapshotter)
/// # }
/// # /// A TCP connection to `service`.
/// # fn tcp(service: &str) -> mesh_trace::metrics::TcpConnection<'_> {
/// #     mesh_trace::metrics::TcpConnection { destination_service: service, catch_all: None, peer: None, flags: Default::default() }
/// # }
/// # /// Every series of metric `name`: its labels and its value (a counter's count, a gauge's
/// # /// value, a histogram's first sample).
/// # fn series(snapshotter: &metrics_util::debugging::Snapshotter, name: &str) -> Vec<(std::collections::BTreeMap<String, String>, f64)> {
/// #     use metrics_util::debugging::DebugValue;
/// #     snapshotter.snapshot().into_vec().into_iter().filter(|(key, ..)| key.key().name() == name).map(|(key, _, _, value)| {
/// #         let labels = key.key().labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
/// #         let value = match value {
/// #             DebugValue::Counter(n) => n as f64,
/// #             DebugValue::Gauge(v) => v.into_inner(),
/// #             DebugValue::Histogram(samples) => samples[0].into_inner(),
/// #         };
/// #         (labels, value)
/// #     }).collect()
/// # }
/// let (metrics, snapshotter) = metrics(Reporter::Source);
/// let counters = metrics.tcp_opened(&tcp("db.shop.svc.cluster.local"));
/// counters.received(5);
/// counters.received(7); // counted as the bytes flow
/// assert_eq!(series(&snapshotter, TCP_RECEIVED_BYTES)[0].1, 12.0);
/// ```
pub const TCP_RECEIVED_BYTES: &str = "istio_tcp_received_bytes_total";
/// `istio_tcp_sent_bytes_total`: bytes to the downstream (response direction).
///
/// ```
/// use mesh_trace::metrics::{Reporter, TCP_SENT_BYTES};
/// # /// Metrics of workload `web.shop` reported by `reporter`, on a debugging recorder.
/// # fn metrics(reporter: mesh_trace::metrics::Reporter) -> (mesh_trace::metrics::IstioMetrics, metrics_util::debugging::Snapshotter) {
/// #     let recorder = metrics_util::debugging::DebuggingRecorder::new();
/// #     let snapshotter = recorder.snapshotter();
/// #     let local = mesh_core::workload::Workload::from_labels("web", "shop", &Default::default());
/// #     let recorder = mesh_trace::metrics::MetricsRecorder::Owned(std::sync::Arc::new(recorder));
/// #     (mesh_trace::metrics::IstioMetrics::new(recorder, reporter, local), snapshotter)
/// # }
/// # /// A TCP connection to `service`.
/// # fn tcp(service: &str) -> mesh_trace::metrics::TcpConnection<'_> {
/// #     mesh_trace::metrics::TcpConnection { destination_service: service, catch_all: None, peer: None, flags: Default::default() }
/// # }
/// # /// Every series of metric `name`: its labels and its value (a counter's count, a gauge's
/// # /// value, a histogram's first sample).
/// # fn series(snapshotter: &metrics_util::debugging::Snapshotter, name: &str) -> Vec<(std::collections::BTreeMap<String, String>, f64)> {
/// #     use metrics_util::debugging::DebugValue;
/// #     snapshotter.snapshot().into_vec().into_iter().filter(|(key, ..)| key.key().name() == name).map(|(key, _, _, value)| {
/// #         let labels = key.key().labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
/// #         let value = match value {
/// #             DebugValue::Counter(n) => n as f64,
/// #             DebugValue::Gauge(v) => v.into_inner(),
/// #             DebugValue::Histogram(samples) => samples[0].into_inner(),
/// #         };
/// #         (labels, value)
/// #     }).collect()
/// # }
/// let (metrics, snapshotter) = metrics(Reporter::Source);
/// let counters = metrics.tcp_opened(&tcp("db.shop.svc.cluster.local"));
/// counters.sent(1500);
/// assert_eq!(series(&snapshotter, TCP_SENT_BYTES)[0].1, 1500.0);
/// ```
pub const TCP_SENT_BYTES: &str = "istio_tcp_sent_bytes_total";

/// `istio_build`: a gauge of 1 labelled `component="proxy"` and `tag` (the version).
///
/// ```
/// use mesh_trace::metrics::{BUILD, Reporter};
/// # /// Metrics of workload `web.shop` reported by `reporter`, on a debugging recorder.
/// # fn metrics(reporter: mesh_trace::metrics::Reporter) -> (mesh_trace::metrics::IstioMetrics, metrics_util::debugging::Snapshotter) {
/// #     let recorder = metrics_util::debugging::DebuggingRecorder::new();
/// #     let snapshotter = recorder.snapshotter();
/// #     let local = mesh_core::workload::Workload::from_labels("web", "shop", &Default::default());
/// #     let recorder = mesh_trace::metrics::MetricsRecorder::Owned(std::sync::Arc::new(recorder));
/// #     (mesh_trace::metrics::IstioMetrics::new(recorder, reporter, local), snapshotter)
/// # }
/// # /// Every series of metric `name`: its labels and its value (a counter's count, a gauge's
/// # /// value, a histogram's first sample).
/// # fn series(snapshotter: &metrics_util::debugging::Snapshotter, name: &str) -> Vec<(std::collections::BTreeMap<String, String>, f64)> {
/// #     use metrics_util::debugging::DebugValue;
/// #     snapshotter.snapshot().into_vec().into_iter().filter(|(key, ..)| key.key().name() == name).map(|(key, _, _, value)| {
/// #         let labels = key.key().labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
/// #         let value = match value {
/// #             DebugValue::Counter(n) => n as f64,
/// #             DebugValue::Gauge(v) => v.into_inner(),
/// #             DebugValue::Histogram(samples) => samples[0].into_inner(),
/// #         };
/// #         (labels, value)
/// #     }).collect()
/// # }
/// let (_metrics, snapshotter) = metrics(Reporter::Source); // set when the metrics are made
/// let build = series(&snapshotter, BUILD);
/// assert_eq!(build[0].1, 1.0);
/// assert_eq!(build[0].0["component"], "proxy");
/// ```
pub const BUILD: &str = "istio_build";

/// The bucket boundaries of every `istio_*` histogram (Envoy's defaults; Prometheus adds
/// `+Inf`).
///
/// ```
/// use mesh_trace::metrics::ISTIO_BUCKETS;
/// assert!(ISTIO_BUCKETS.windows(2).all(|pair| pair[0] < pair[1]));
/// assert_eq!((ISTIO_BUCKETS[0], ISTIO_BUCKETS[18]), (0.5, 3_600_000.0)); // 0.5 ms to 1 hour
/// ```
pub const ISTIO_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];
