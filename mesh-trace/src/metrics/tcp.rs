//! Istio's TCP metrics for proxied connections: `istio_tcp_connections_opened_total` and
//! `istio_tcp_connections_closed_total` once each, and `istio_tcp_received_bytes_total`
//! (request direction) and `istio_tcp_sent_bytes_total` (response direction) as the bytes flow,
//! so a long connection shows its traffic before it ends. The labels are those of
//! `istio_requests_total` without `response_code` and `grpc_response_status`, with
//! `request_protocol="tcp"`.

use super::{
    IstioMetrics, TCP_CLOSED, TCP_OPENED, TCP_RECEIVED_BYTES, TCP_SENT_BYTES,
    labels::{CatchAllCluster, RequestProtocol, SeriesLabels},
};
use mesh_core::{ResponseFlags, workload::Workload};
use metrics::{Counter, Key, Level, Metadata};
use std::sync::Arc;

/// One proxied TCP connection, as the TCP metrics label it.
///
/// ```
/// use mesh_core::{ResponseFlag, ResponseFlags};
/// use mesh_trace::metrics::{Reporter, TCP_OPENED, TcpConnection};
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
/// let (metrics, snapshotter) = metrics(Reporter::Source);
/// let _counters = metrics.tcp_opened(&TcpConnection {
///     destination_service: "db.shop.svc.cluster.local",
///     catch_all: None,
///     peer: None,
///     flags: ResponseFlags::of(ResponseFlag::UpstreamConnectionFailure),
/// });
/// let (labels, _) = &series(&snapshotter, TCP_OPENED)[0];
/// assert_eq!((labels["destination_service_name"].as_str(), labels["response_flags"].as_str()), ("db", "UF"));
/// assert!(!labels.contains_key("response_code")); // TCP series have none
/// ```
#[derive(Clone, Debug)]
pub struct TcpConnection<'a> {
    /// `destination_service`: the service host the connection goes to, else its host.
    pub destination_service: &'a str,
    /// The catch-all cluster of a connection to a host the registry does not know.
    pub catch_all: Option<CatchAllCluster>,
    /// The workload at the other end, when known.
    pub peer: Option<&'a Arc<Workload>>,
    /// `response_flags` (`UF` when the upstream could not be reached, `NR` without a route).
    pub flags: ResponseFlags,
}

/// The counters of one open connection; [`close`](Self::close) counts it closed.
///
/// ```
/// use mesh_trace::metrics::{Reporter, TCP_RECEIVED_BYTES, TCP_SENT_BYTES, TcpCounters};
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
/// # /// The value of the first series of each metric in `names`, from one snapshot.
/// # fn values(snapshotter: &metrics_util::debugging::Snapshotter, names: &[&str]) -> Vec<f64> {
/// #     use metrics_util::debugging::DebugValue;
/// #     let snapshot = snapshotter.snapshot().into_vec(); // (taking one resets the values)
/// #     names.iter().map(|name| match &snapshot.iter().find(|(key, ..)| key.key().name() == *name).unwrap().3 {
/// #         DebugValue::Counter(n) => *n as f64,
/// #         DebugValue::Gauge(v) => v.into_inner(),
/// #         DebugValue::Histogram(samples) => samples[0].into_inner(),
/// #     }).collect()
/// # }
/// let (metrics, snapshotter) = metrics(Reporter::Source);
/// let counters: TcpCounters = metrics.tcp_opened(&tcp("db.shop.svc.cluster.local"));
/// counters.clone().received(10); // clones count into the same series
/// counters.sent(20);
/// assert_eq!(values(&snapshotter, &[TCP_RECEIVED_BYTES, TCP_SENT_BYTES]), [10.0, 20.0]);
/// ```
#[derive(Clone, Debug)]
pub struct TcpCounters {
    received: Counter,
    sent: Counter,
    closed: Counter,
}

impl TcpCounters {
    /// `n` more bytes came from the downstream (request direction).
    ///
    /// ```
    /// use mesh_trace::metrics::{Reporter, TCP_RECEIVED_BYTES, TCP_SENT_BYTES};
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
    /// # /// The value of the first series of each metric in `names`, from one snapshot.
    /// # fn values(snapshotter: &metrics_util::debugging::Snapshotter, names: &[&str]) -> Vec<f64> {
    /// #     use metrics_util::debugging::DebugValue;
    /// #     let snapshot = snapshotter.snapshot().into_vec(); // (taking one resets the values)
    /// #     names.iter().map(|name| match &snapshot.iter().find(|(key, ..)| key.key().name() == *name).unwrap().3 {
    /// #         DebugValue::Counter(n) => *n as f64,
    /// #         DebugValue::Gauge(v) => v.into_inner(),
    /// #         DebugValue::Histogram(samples) => samples[0].into_inner(),
    /// #     }).collect()
    /// # }
    /// let (metrics, snapshotter) = metrics(Reporter::Source);
    /// let counters = metrics.tcp_opened(&tcp("db.shop.svc.cluster.local"));
    /// counters.received(64); // request direction only
    /// assert_eq!(values(&snapshotter, &[TCP_RECEIVED_BYTES, TCP_SENT_BYTES]), [64.0, 0.0]);
    /// ```
    pub fn received(&self, n: u64) {
        self.received.increment(n);
    }

    /// `n` more bytes went to the downstream (response direction).
    ///
    /// ```
    /// use mesh_trace::metrics::{Reporter, TCP_RECEIVED_BYTES, TCP_SENT_BYTES};
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
    /// # /// The value of the first series of each metric in `names`, from one snapshot.
    /// # fn values(snapshotter: &metrics_util::debugging::Snapshotter, names: &[&str]) -> Vec<f64> {
    /// #     use metrics_util::debugging::DebugValue;
    /// #     let snapshot = snapshotter.snapshot().into_vec(); // (taking one resets the values)
    /// #     names.iter().map(|name| match &snapshot.iter().find(|(key, ..)| key.key().name() == *name).unwrap().3 {
    /// #         DebugValue::Counter(n) => *n as f64,
    /// #         DebugValue::Gauge(v) => v.into_inner(),
    /// #         DebugValue::Histogram(samples) => samples[0].into_inner(),
    /// #     }).collect()
    /// # }
    /// let (metrics, snapshotter) = metrics(Reporter::Source);
    /// let counters = metrics.tcp_opened(&tcp("db.shop.svc.cluster.local"));
    /// counters.sent(64); // response direction only
    /// assert_eq!(values(&snapshotter, &[TCP_SENT_BYTES, TCP_RECEIVED_BYTES]), [64.0, 0.0]);
    /// ```
    pub fn sent(&self, n: u64) {
        self.sent.increment(n);
    }

    /// The connection is closed.
    ///
    /// ```
    /// use mesh_trace::metrics::{Reporter, TCP_CLOSED, TCP_OPENED};
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
    /// # /// The value of the first series of each metric in `names`, from one snapshot.
    /// # fn values(snapshotter: &metrics_util::debugging::Snapshotter, names: &[&str]) -> Vec<f64> {
    /// #     use metrics_util::debugging::DebugValue;
    /// #     let snapshot = snapshotter.snapshot().into_vec(); // (taking one resets the values)
    /// #     names.iter().map(|name| match &snapshot.iter().find(|(key, ..)| key.key().name() == *name).unwrap().3 {
    /// #         DebugValue::Counter(n) => *n as f64,
    /// #         DebugValue::Gauge(v) => v.into_inner(),
    /// #         DebugValue::Histogram(samples) => samples[0].into_inner(),
    /// #     }).collect()
    /// # }
    /// let (metrics, snapshotter) = metrics(Reporter::Source);
    /// let counters = metrics.tcp_opened(&tcp("db.shop.svc.cluster.local"));
    /// counters.close(); // consumes the counters: a connection closes once
    /// assert_eq!(values(&snapshotter, &[TCP_OPENED, TCP_CLOSED]), [1.0, 1.0]);
    /// ```
    pub fn close(self) {
        self.closed.increment(1);
    }
}

impl IstioMetrics {
    /// Counts `connection` opened and returns its counters.
    ///
    /// ```
    /// use mesh_core::{ResponseFlags, workload::Workload};
    /// use mesh_trace::metrics::{IstioMetrics, MetricsRecorder, Reporter, TcpConnection};
    /// use metrics_util::debugging::DebuggingRecorder;
    /// use std::sync::Arc;
    ///
    /// let recorder = DebuggingRecorder::new();
    /// let snapshotter = recorder.snapshotter();
    /// let metrics = IstioMetrics::new(MetricsRecorder::Owned(Arc::new(recorder)), Reporter::Source, Workload::default());
    /// let counters = metrics.tcp_opened(&TcpConnection {
    ///     destination_service: "echo.shop.svc.cluster.local",
    ///     catch_all: None,
    ///     peer: None,
    ///     flags: ResponseFlags::default(),
    /// });
    /// counters.received(5);
    /// counters.close();
    /// let snapshot = snapshotter.snapshot().into_vec();
    /// assert!(snapshot.iter().any(|(key, ..)| key.key().name() == "istio_tcp_received_bytes_total"));
    /// ```
    pub fn tcp_opened(&self, connection: &TcpConnection<'_>) -> TcpCounters {
        let (source, destination) = self.source_and_destination(connection.peer);
        // Capped like request series: hosts come from clients (CONNECT, SNI).
        let service = self.admit(connection.destination_service);
        let labels = SeriesLabels {
            reporter: self.reporter(),
            source,
            destination,
            destination_service: service,
            service_namespace: self.service_namespace(service),
            catch_all: connection.catch_all,
            protocol: RequestProtocol::Tcp,
            flags: connection.flags,
            status: 0,
            grpc_status: None,
        }
        .to_labels();
        let metadata = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));
        self.recorder.with(|r| {
            let key = |name: &'static str| Key::from_parts(name, labels.clone());
            r.register_counter(&key(TCP_OPENED), &metadata).increment(1);
            TcpCounters {
                received: r.register_counter(&key(TCP_RECEIVED_BYTES), &metadata),
                sent: r.register_counter(&key(TCP_SENT_BYTES), &metadata),
                closed: r.register_counter(&key(TCP_CLOSED), &metadata),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Reporter;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    #[test]
    fn a_connection_counts_once_each_way_and_has_no_response_code() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let metrics = IstioMetrics::new(
            super::super::MetricsRecorder::Owned(Arc::new(recorder)),
            Reporter::Source,
            Workload::default(),
        );
        let counters = metrics.tcp_opened(&TcpConnection {
            destination_service: "unknown.example.org",
            catch_all: Some(CatchAllCluster::BlackHole),
            peer: None,
            flags: ResponseFlags::default(),
        });
        counters.received(3);
        counters.received(4);
        counters.sent(10);
        counters.close();
        let snapshot = snapshotter.snapshot().into_vec();
        let value = |name: &str| {
            snapshot
                .iter()
                .find(|(key, ..)| key.key().name() == name)
                .map(|(key, _, _, value)| (key.key().clone(), value))
                .unwrap_or_else(|| panic!("{name} is recorded"))
        };
        assert_eq!(value(TCP_OPENED).1, &DebugValue::Counter(1));
        assert_eq!(value(TCP_CLOSED).1, &DebugValue::Counter(1));
        assert_eq!(value(TCP_RECEIVED_BYTES).1, &DebugValue::Counter(7));
        let (key, sent) = value(TCP_SENT_BYTES);
        assert_eq!(sent, &DebugValue::Counter(10));
        let label = |name: &str| {
            key.labels()
                .find(|l| l.key() == name)
                .map(|l| l.value().to_owned())
        };
        assert_eq!(label("request_protocol").as_deref(), Some("tcp"));
        assert_eq!(
            label("destination_service_name").as_deref(),
            Some("BlackHoleCluster")
        );
        assert_eq!(label("response_code"), None);
        assert_eq!(label("grpc_response_status"), None);
    }
}
