//! [`IstioMetrics`]: records finished requests as Istio's standard metrics, with a cache of
//! metric handles so the request path does one lookup and four atomic updates.

use super::{
    BUILD, REQUEST_BYTES, REQUEST_DURATION, REQUESTS_TOTAL, RESPONSE_BYTES,
    labels::{CatchAllCluster, Reporter, RequestProtocol, SeriesLabels},
};
use arc_swap::ArcSwap;
use mesh_core::{PeerIdentity, ResponseFlags, fnv::FnvBuildHasher, workload::Workload};
use metrics::{Counter, Histogram, Key, Level, Metadata, Recorder, Unit};
use std::{
    collections::{HashMap, HashSet},
    fmt,
    hash::{BuildHasherDefault, Hasher},
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

/// Where metric handles are registered.
///
/// ```
/// use mesh_core::workload::Workload;
/// use mesh_trace::metrics::{BUILD, IstioMetrics, MetricsRecorder, Reporter};
/// use metrics_util::debugging::DebuggingRecorder;
/// use std::sync::Arc;
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
/// let recorder = DebuggingRecorder::new();
/// let snapshotter = recorder.snapshotter();
/// let owned = MetricsRecorder::Owned(Arc::new(recorder));
/// assert_eq!(format!("{owned:?}"), "Owned");
/// let _metrics = IstioMetrics::new(owned, Reporter::Source, Workload::default());
/// assert_eq!(series(&snapshotter, BUILD).len(), 1); // registered in the owned recorder
/// ```
#[derive(Clone)]
pub enum MetricsRecorder {
    /// The process's global recorder (`metrics::set_global_recorder`), as the `metrics` macros
    /// use.
    Global,
    /// A recorder of one's own (a Prometheus recorder per proxy, a debugging recorder in tests).
    Owned(Arc<dyn Recorder + Send + Sync>),
}

impl fmt::Debug for MetricsRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetricsRecorder::Global => "Global",
            MetricsRecorder::Owned(_) => "Owned",
        })
    }
}

impl MetricsRecorder {
    pub(super) fn with<T>(&self, f: impl FnOnce(&dyn Recorder) -> T) -> T {
        match self {
            MetricsRecorder::Global => metrics::with_recorder(f),
            MetricsRecorder::Owned(recorder) => f(recorder.as_ref()),
        }
    }
}

/// One finished request, as the standard metrics see it.
///
/// ```
/// use mesh_core::{ResponseFlag, ResponseFlags};
/// use mesh_trace::metrics::{REQUESTS_TOTAL, Reporter, RequestOutcome, RequestProtocol};
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
/// metrics.record(&RequestOutcome {
///     status: 503,
///     flags: ResponseFlags::of(ResponseFlag::NoHealthyUpstream),
///     grpc_status: Some(14),
///     protocol: RequestProtocol::Grpc,
///     ..ok("catalog.shop.svc.cluster.local") // the rest as for a 200 (`ok` builds one)
/// });
/// let (labels, _) = &series(&snapshotter, REQUESTS_TOTAL)[0];
/// assert_eq!((labels["response_code"].as_str(), labels["response_flags"].as_str()), ("503", "UH"));
/// assert_eq!((labels["request_protocol"].as_str(), labels["grpc_response_status"].as_str()), ("grpc", "14"));
/// assert_eq!(labels["destination_service_namespace"], "shop");
/// ```
#[derive(Clone, Debug)]
pub struct RequestOutcome<'a> {
    /// `destination_service`: the service host (`catalog.shop.svc.cluster.local`), else the
    /// request's host.
    pub destination_service: &'a str,
    /// The catch-all cluster of a request for a host the registry does not know.
    pub catch_all: Option<CatchAllCluster>,
    /// The workload at the other end: the upstream's on the source side, the caller's on the
    /// destination side; `None` when not known (its labels are then `unknown`).
    pub peer: Option<&'a Arc<Workload>>,
    /// `response_code` (0: no response was sent).
    pub status: u16,
    /// `response_flags`.
    pub flags: ResponseFlags,
    /// `grpc_response_status` of a gRPC request (from `grpc-status`, else from the HTTP status).
    pub grpc_status: Option<u16>,
    /// `request_protocol`.
    pub protocol: RequestProtocol,
    /// From arrival to the last byte of the response.
    pub duration: Duration,
    /// Request size in bytes (headers and body).
    pub request_bytes: u64,
    /// Response size in bytes (headers and body).
    pub response_bytes: u64,
}

/// The handles of one series (one combination of label values).
#[derive(Clone)]
struct Series {
    requests: Counter,
    duration: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
    /// Keeps the peer alive, so its address (part of the key) is not reused while cached.
    _peer: Option<Arc<Workload>>,
}

/// What a series depends on besides its destination service. The peer is known by address:
/// peers are shared `Arc`s, built once per endpoint.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct OutcomeKey {
    peer: usize,
    status: u16,
    flags: u32,
    grpc_status: Option<u16>,
    protocol: RequestProtocol,
    catch_all: Option<CatchAllCluster>,
}

/// The cached series whose (destination service, outcome) hash to one value: almost always
/// one.
type Bucket = Vec<(Box<str>, OutcomeKey, Series)>;

/// Keyed by [`series_hash`], a hash already: the map uses it as it is.
type SeriesMap = HashMap<u64, Bucket, BuildHasherDefault<Prehashed>>;

/// The hasher of keys that are hashes: a `u64` hashes to itself.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64`s are hashed with it; anything else still hashes (FNV-1a), only slower.
        let mut fnv = mesh_core::fnv::FnvHasher::default();
        fnv.write_u64(self.0);
        fnv.write(bytes);
        self.0 = fnv.finish();
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Records requests as Istio's standard metrics; see the [module docs](super).
///
/// ```
/// use mesh_core::{ResponseFlags, workload::Workload};
/// use mesh_trace::metrics::{IstioMetrics, MetricsRecorder, Reporter, RequestOutcome, RequestProtocol};
/// use metrics_util::debugging::DebuggingRecorder;
/// use std::{sync::Arc, time::Duration};
///
/// let recorder = DebuggingRecorder::new();
/// let snapshotter = recorder.snapshotter();
/// let local = Workload::from_labels("web", "shop", &Default::default());
/// let metrics = IstioMetrics::new(MetricsRecorder::Owned(Arc::new(recorder)), Reporter::Source, local);
/// metrics.record(&RequestOutcome {
///     destination_service: "catalog.shop.svc.cluster.local",
///     catch_all: None,
///     peer: None,
///     status: 200,
///     flags: ResponseFlags::default(),
///     grpc_status: None,
///     protocol: RequestProtocol::Http,
///     duration: Duration::from_millis(3),
///     request_bytes: 120,
///     response_bytes: 480,
/// });
/// let snapshot = snapshotter.snapshot().into_vec();
/// let total = snapshot.iter().find(|(key, ..)| key.key().name() == "istio_requests_total").unwrap();
/// assert!(total.0.key().labels().any(|l| l.key() == "destination_service_name" && l.value() == "catalog"));
/// ```
pub struct IstioMetrics {
    pub(super) recorder: MetricsRecorder,
    reporter: Reporter,
    local: Arc<Workload>,
    unknown: Workload,
    /// Series by the hash of their destination service and outcome: one lookup per request,
    /// without building a key.
    /// Read without locking (a request never waits on, or writes to, a lock word shared by all
    /// cores); replaced whole, under `services`' lock, when a series is added.
    series: ArcSwap<SeriesMap>,
    /// The destination services that have series (to cap them at [`MAX_SERVICES`]).
    services: Mutex<HashSet<Box<str>, FnvBuildHasher>>,
    /// Whether [`MAX_SERVICES`] services have series.
    full: AtomicBool,
    max_services: usize,
    /// The workloads of mutual-TLS callers by SPIFFE id, one shared `Arc` each (series are
    /// cached by peer address).
    peers: RwLock<HashMap<Arc<str>, Arc<Workload>, FnvBuildHasher>>,
    /// The namespaces of services whose host names none, by host.
    service_namespaces: HashMap<Box<str>, Box<str>, FnvBuildHasher>,
}

/// How many distinct mutual-TLS callers get a workload of their own; past this, callers are
/// `unknown`, so that no caller can grow the metrics without bound.
///
/// ```
/// use mesh_core::PeerIdentity;
/// use mesh_trace::metrics::{MAX_PEERS, Reporter};
/// # /// Metrics of workload `web.shop` reported by `reporter`, on a debugging recorder.
/// # fn metrics(reporter: mesh_trace::metrics::Reporter) -> (mesh_trace::metrics::IstioMetrics, metrics_util::debugging::Snapshotter) {
/// #     let recorder = metrics_util::debugging::DebuggingRecorder::new();
/// #     let snapshotter = recorder.snapshotter();
/// #     let local = mesh_core::workload::Workload::from_labels("web", "shop", &Default::default());
/// #     let recorder = mesh_trace::metrics::MetricsRecorder::Owned(std::sync::Arc::new(recorder));
/// #     (mesh_trace::metrics::IstioMetrics::new(recorder, reporter, local), snapshotter)
/// # }
/// let (metrics, _) = metrics(Reporter::Destination);
/// for n in 0..MAX_PEERS {
///     let peer = PeerIdentity::new(&format!("spiffe://cluster.local/ns/shop/sa/client-{n}"));
///     assert!(metrics.peer_workload(&peer).is_some());
/// }
/// let one_more = PeerIdentity::new("spiffe://cluster.local/ns/shop/sa/one-more");
/// assert!(metrics.peer_workload(&one_more).is_none()); // reported as `unknown`
/// ```
pub const MAX_PEERS: usize = 1024;

impl fmt::Debug for IstioMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IstioMetrics")
            .field("recorder", &self.recorder)
            .field("reporter", &self.reporter)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// How many distinct destination services get series of their own; past this (pass-through
/// traffic to many hosts, or callers naming hosts at will), requests are recorded under
/// `destination_service="unknown"`, so that no caller can grow the metrics without bound.
///
/// ```
/// use mesh_trace::metrics::{MAX_SERVICES, REQUESTS_TOTAL, Reporter};
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
/// for n in 0..=MAX_SERVICES {
///     metrics.record(&ok(&format!("host-{n}.example.com")));
/// }
/// let all = series(&snapshotter, REQUESTS_TOTAL);
/// assert_eq!(all.len(), MAX_SERVICES + 1);
/// let last = all.iter().find(|(labels, _)| labels["destination_service"] == "unknown");
/// assert!(last.is_some()); // the service past the cap
/// ```
pub const MAX_SERVICES: usize = 1024;

impl IstioMetrics {
    /// Metrics reported by `reporter` for a proxy of workload `local`, registered in
    /// `recorder`.
    ///
    /// ```
    /// use mesh_core::workload::Workload;
    /// use mesh_trace::metrics::{BUILD, IstioMetrics, MetricsRecorder, Reporter};
    /// use metrics_util::debugging::DebuggingRecorder;
    /// use std::sync::Arc;
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
    /// let recorder = DebuggingRecorder::new();
    /// let snapshotter = recorder.snapshotter();
    /// let local = Workload::from_labels("web", "shop", &Default::default());
    /// let _metrics = IstioMetrics::new(MetricsRecorder::Owned(Arc::new(recorder)), Reporter::Source, local);
    /// let (labels, value) = &series(&snapshotter, BUILD)[0];
    /// assert_eq!(*value, 1.0);
    /// assert_eq!(labels["component"], "proxy");
    /// assert_eq!(labels["tag"], env!("CARGO_PKG_VERSION")); // this crate's version
    /// ```
    pub fn new(recorder: MetricsRecorder, reporter: Reporter, local: Workload) -> Self {
        recorder.with(|r| {
            r.describe_counter(
                REQUESTS_TOTAL.into(),
                None,
                "Requests, by source, destination and outcome.".into(),
            );
            r.describe_histogram(
                REQUEST_DURATION.into(),
                Some(Unit::Milliseconds),
                "Request duration, from arrival to the last response byte.".into(),
            );
            r.describe_histogram(
                REQUEST_BYTES.into(),
                Some(Unit::Bytes),
                "Request size, headers and body.".into(),
            );
            r.describe_histogram(
                RESPONSE_BYTES.into(),
                Some(Unit::Bytes),
                "Response size, headers and body.".into(),
            );
            r.describe_gauge(
                BUILD.into(),
                None,
                "The proxy's build: 1, labelled with its component and version.".into(),
            );
            let labels = vec![
                metrics::Label::new("component", "proxy"),
                metrics::Label::new("tag", env!("CARGO_PKG_VERSION")),
            ];
            let metadata = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));
            r.register_gauge(&Key::from_parts(BUILD, labels), &metadata)
                .set(1.0);
        });
        IstioMetrics {
            recorder,
            reporter,
            local: Arc::new(local),
            unknown: Workload::default(),
            series: ArcSwap::default(),
            services: Mutex::default(),
            full: AtomicBool::new(false),
            max_services: MAX_SERVICES,
            peers: RwLock::default(),
            service_namespaces: HashMap::default(),
        }
    }

    /// Names the namespace of each service (by host) whose host does not name one — a
    /// ServiceEntry's `api.example.com` — so that its series report
    /// `destination_service_namespace` as the declaring resource's, as Istio does, rather than
    /// `unknown`. (`NAME.NAMESPACE.svc…` hosts name theirs.)
    ///
    /// ```
    /// use mesh_core::workload::Workload;
    /// use mesh_trace::metrics::{IstioMetrics, MetricsRecorder, Reporter};
    /// let metrics = IstioMetrics::new(MetricsRecorder::Global, Reporter::Source, Workload::default())
    ///     .with_service_namespaces([("api.example.com".to_owned(), "shop".to_owned())]);
    /// # let _ = metrics;
    /// ```
    pub fn with_service_namespaces(
        mut self,
        namespaces: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        self.service_namespaces = namespaces
            .into_iter()
            .map(|(host, namespace)| (host.into(), namespace.into()))
            .collect();
        self
    }

    /// The namespace [`with_service_namespaces`](Self::with_service_namespaces) named for
    /// `service`.
    pub(super) fn service_namespace(&self, service: &str) -> Option<&str> {
        self.service_namespaces.get(service).map(|n| &**n)
    }

    /// The workload of the mutual-TLS caller `peer`, as Istio labels it from the certificate
    /// alone: its principal and (from an Istio SPIFFE id) namespace; the rest `unknown`.
    /// `None` past [`MAX_PEERS`] callers.
    ///
    /// ```
    /// use mesh_core::{PeerIdentity, workload::Workload};
    /// use mesh_trace::metrics::{IstioMetrics, MetricsRecorder, Reporter};
    /// let metrics = IstioMetrics::new(MetricsRecorder::Global, Reporter::Destination, Workload::default());
    /// let peer = metrics.peer_workload(&PeerIdentity::new("spiffe://cluster.local/ns/shop/sa/web")).unwrap();
    /// assert_eq!((peer.namespace.as_str(), peer.principal.as_str()), ("shop", "spiffe://cluster.local/ns/shop/sa/web"));
    /// ```
    pub fn peer_workload(&self, peer: &PeerIdentity) -> Option<Arc<Workload>> {
        // Callers are few and come back: a shared read almost always finds them.
        let known = self.peers.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = known.get(&peer.0) {
            return Some(known.clone());
        }
        drop(known);
        let mut peers = self.peers.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = peers.get(&peer.0) {
            return Some(known.clone());
        }
        if peers.len() >= MAX_PEERS {
            return None;
        }
        let workload = Arc::new(Workload {
            namespace: peer
                .namespace()
                .unwrap_or(mesh_core::workload::UNKNOWN)
                .to_owned(),
            principal: peer.principal().to_owned(),
            ..Workload::default()
        });
        peers.insert(peer.0.clone(), workload.clone());
        Some(workload)
    }

    /// Who reports.
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
    /// let (metrics, snapshotter) = metrics(Reporter::Destination);
    /// assert_eq!(metrics.reporter(), Reporter::Destination);
    /// metrics.record(&ok("web.shop.svc.cluster.local"));
    /// assert_eq!(series(&snapshotter, REQUESTS_TOTAL)[0].0["reporter"], "destination");
    /// ```
    pub fn reporter(&self) -> Reporter {
        self.reporter
    }

    /// The proxy's own workload.
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
    /// let (metrics, snapshotter) = metrics(Reporter::Source); // the proxy of `web` in `shop`
    /// assert_eq!((metrics.local().name.as_str(), metrics.local().namespace.as_str()), ("web", "shop"));
    /// metrics.record(&ok("catalog.shop.svc.cluster.local"));
    /// let (labels, _) = &series(&snapshotter, REQUESTS_TOTAL)[0];
    /// assert_eq!(labels["source_workload"], "web"); // the source, as it reports
    /// assert_eq!(labels["destination_workload"], "unknown");
    /// ```
    pub fn local(&self) -> &Arc<Workload> {
        &self.local
    }

    /// Records one finished request.
    ///
    /// ```
    /// use mesh_trace::metrics::{REQUEST_DURATION, REQUESTS_TOTAL, Reporter};
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
    /// let outcome = ok("catalog.shop.svc.cluster.local"); // a 200 in 3 ms
    /// metrics.record(&outcome);
    /// metrics.record(&outcome); // the same series
    /// assert_eq!(values(&snapshotter, &[REQUESTS_TOTAL, REQUEST_DURATION]), [2.0, 3.0]);
    /// ```
    pub fn record(&self, outcome: &RequestOutcome<'_>) {
        let key = OutcomeKey {
            peer: outcome.peer.map_or(0, |p| Arc::as_ptr(p) as usize),
            status: outcome.status,
            flags: outcome.flags.bits(),
            grpc_status: outcome.grpc_status,
            protocol: outcome.protocol,
            catch_all: outcome.catch_all,
        };
        if self.record_cached(outcome.destination_service, &key, outcome) {
            return;
        }
        // Once the cap is reached, a service without series of its own goes straight to
        // `unknown`'s, without taking the lock.
        if self.full.load(Ordering::Relaxed)
            && self.record_cached(mesh_core::workload::UNKNOWN, &key, outcome)
        {
            return;
        }
        // First of its kind: register its handles (the only path that allocates). Past the
        // cap on services, it is recorded (and cached) as the `unknown` service's.
        let service = self.admit(outcome.destination_service);
        if service != outcome.destination_service && self.record_cached(service, &key, outcome) {
            return;
        }
        let hash = series_hash(service, &key);
        let series = self.register(outcome, service);
        series.record(outcome);
        // Writers take turns under the services lock; readers keep using the old map meanwhile.
        let _writers = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all = SeriesMap::clone(&self.series.load());
        let bucket = all.entry(hash).or_default();
        if !bucket.iter().any(|(s, k, _)| **s == *service && *k == key) {
            bucket.push((service.into(), key, series));
            self.series.store(Arc::new(all));
        }
    }

    /// Records `outcome` in the cached series of (`service`, `key`), if there is one.
    fn record_cached(&self, service: &str, key: &OutcomeKey, outcome: &RequestOutcome<'_>) -> bool {
        let series = self.series.load();
        let found = series
            .get(&series_hash(service, key))
            .and_then(|bucket| bucket.iter().find(|(s, k, _)| **s == *service && k == key));
        if let Some((_, _, series)) = found {
            series.record(outcome);
        }
        found.is_some()
    }

    /// The `destination_service` label a new series for `service` gets: its own, or `unknown`
    /// once [`MAX_SERVICES`] services have series.
    pub(super) fn admit<'a>(&self, service: &'a str) -> &'a str {
        let mut services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        if services.contains(service) {
            return service;
        }
        if services.len() >= self.max_services {
            self.full.store(true, Ordering::Relaxed);
            return mesh_core::workload::UNKNOWN;
        }
        services.insert(service.into());
        service
    }

    /// The series' source and destination workloads: this proxy's and `peer`'s (`unknown`
    /// when not known), in the reporter's order.
    pub(super) fn source_and_destination<'a>(
        &'a self,
        peer: Option<&'a Arc<Workload>>,
    ) -> (&'a Workload, &'a Workload) {
        let peer = peer.map_or(&self.unknown, |p| p.as_ref());
        match self.reporter {
            Reporter::Source => (self.local.as_ref(), peer),
            Reporter::Destination => (peer, self.local.as_ref()),
        }
    }

    fn register(&self, outcome: &RequestOutcome<'_>, destination_service: &str) -> Series {
        let (source, destination) = self.source_and_destination(outcome.peer);
        let labels = SeriesLabels {
            reporter: self.reporter,
            source,
            destination,
            destination_service,
            service_namespace: self.service_namespace(destination_service),
            catch_all: outcome.catch_all,
            protocol: outcome.protocol,
            flags: outcome.flags,
            status: outcome.status,
            grpc_status: outcome.grpc_status,
        }
        .to_labels();
        let metadata = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));
        self.recorder.with(|r| {
            let key = |name: &'static str| Key::from_parts(name, labels.clone());
            Series {
                requests: r.register_counter(&key(REQUESTS_TOTAL), &metadata),
                duration: r.register_histogram(&key(REQUEST_DURATION), &metadata),
                request_bytes: r.register_histogram(&key(REQUEST_BYTES), &metadata),
                response_bytes: r.register_histogram(&key(RESPONSE_BYTES), &metadata),
                _peer: outcome.peer.cloned(),
            }
        })
    }
}

/// The cache key of a series, hashed in one pass: the service name eight bytes at a time,
/// then the outcome's fields, each mixed in by a multiply-rotate (no per-byte loop: this runs
/// on every request).
fn series_hash(service: &str, key: &OutcomeKey) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mix = |hash: u64, word: u64| (hash ^ word).wrapping_mul(K).rotate_left(29);
    let bytes = service.as_bytes();
    let mut hash = mix(0, bytes.len() as u64);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        hash = mix(hash, u64::from_le_bytes(word));
    }
    // The last (up to) eight bytes: of a name of eight or more, the last eight read at once,
    // overlapping the chunks (its length, mixed in first, tells such names apart); copying the
    // remainder alone would call `memcpy`.
    let tail = match bytes.len().checked_sub(8) {
        Some(start) => bytes[start..].try_into().unwrap_or([0; 8]),
        None => {
            let mut tail = [0; 8];
            for (slot, byte) in tail.iter_mut().zip(bytes) {
                *slot = *byte;
            }
            tail
        }
    };
    hash = mix(hash, u64::from_le_bytes(tail));
    hash = mix(hash, key.peer as u64);
    let grpc = key.grpc_status.map_or(0, |g| u64::from(g) + 1);
    let packed = u64::from(key.status)
        | u64::from(key.flags) << 16
        | grpc << 48
        | (key.catch_all.map_or(0, |c| c as u64 + 1)) << 60
        | (key.protocol as u64) << 62;
    mix(hash, packed)
}

impl Series {
    fn record(&self, outcome: &RequestOutcome<'_>) {
        self.requests.increment(1);
        // Whole milliseconds, truncated, as Istio's stats filter records them (a 0.7 ms request
        // is 0 ms, under the first bucket's 0.5), so that buckets and sums match its.
        self.duration
            .record(mesh_core::clock::whole_millis(outcome.duration) as f64);
        self.request_bytes.record(outcome.request_bytes as f64);
        self.response_bytes.record(outcome.response_bytes as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    fn outcome(service: &str) -> RequestOutcome<'_> {
        RequestOutcome {
            destination_service: service,
            catch_all: Some(CatchAllCluster::Passthrough),
            peer: None,
            status: 200,
            flags: ResponseFlags::default(),
            grpc_status: None,
            protocol: RequestProtocol::Http,
            duration: Duration::from_millis(1),
            request_bytes: 1,
            response_bytes: 1,
        }
    }

    /// Client-side metrics of an unknown workload, into a debugging recorder.
    fn debugging_metrics() -> (IstioMetrics, metrics_util::debugging::Snapshotter) {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let metrics = IstioMetrics::new(
            MetricsRecorder::Owned(Arc::new(recorder)),
            Reporter::Source,
            Workload::default(),
        );
        (metrics, snapshotter)
    }

    #[test]
    fn a_service_entry_host_reports_its_declaring_namespace() {
        let (metrics, snapshotter) = debugging_metrics();
        let metrics = metrics.with_service_namespaces([
            ("api.example.com".to_owned(), "shop".to_owned()),
            (
                "catalog.shop.svc.cluster.local".to_owned(),
                "other".to_owned(),
            ),
        ]);
        for service in [
            "api.example.com",
            "catalog.shop.svc.cluster.local",
            "elsewhere.example.com",
        ] {
            metrics.record(&RequestOutcome {
                catch_all: None,
                ..outcome(service)
            });
        }
        let mut namespaces: Vec<(String, String)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == REQUESTS_TOTAL)
            .map(|(key, ..)| {
                let label = |name: &str| {
                    key.key()
                        .labels()
                        .find(|l| l.key() == name)
                        .unwrap()
                        .value()
                        .to_owned()
                };
                (
                    label("destination_service"),
                    label("destination_service_namespace"),
                )
            })
            .collect();
        namespaces.sort();
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            namespaces,
            [
                pair("api.example.com", "shop"),
                // A Kubernetes-style host names its own namespace.
                pair("catalog.shop.svc.cluster.local", "shop"),
                pair("elsewhere.example.com", "unknown"),
            ]
        );
    }

    #[test]
    fn durations_are_recorded_in_whole_milliseconds() {
        let (metrics, snapshotter) = debugging_metrics();
        for micros in [10_400, 700, 25_999, 2_500_400] {
            metrics.record(&RequestOutcome {
                duration: Duration::from_micros(micros),
                ..outcome("catalog")
            });
        }
        let samples: Vec<f64> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .find(|(key, ..)| key.key().name() == "istio_request_duration_milliseconds")
            .map(|(.., value)| match value {
                DebugValue::Histogram(samples) => samples.iter().map(|s| s.into_inner()).collect(),
                _ => panic!("a histogram"),
            })
            .unwrap();
        assert_eq!(samples, [10.0, 0.0, 25.0, 2_500.0]);
    }

    #[test]
    fn services_past_the_cap_share_the_unknown_series() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let mut metrics = IstioMetrics::new(
            MetricsRecorder::Owned(Arc::new(recorder)),
            Reporter::Source,
            Workload::default(),
        );
        metrics.max_services = 2;
        for host in ["a", "b", "c", "d", "a", "c"] {
            metrics.record(&outcome(host));
        }
        let counts: HashMap<String, u64> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == REQUESTS_TOTAL)
            .map(|(key, _, _, value)| {
                let service = key
                    .key()
                    .labels()
                    .find(|l| l.key() == "destination_service")
                    .unwrap()
                    .value()
                    .to_owned();
                let DebugValue::Counter(n) = value else {
                    panic!("counter")
                };
                (service, n)
            })
            .collect();
        let expected: HashMap<String, u64> =
            [("a".into(), 2), ("b".into(), 1), ("unknown".into(), 3)].into();
        assert_eq!(counts, expected);
        let cached = metrics.series.load().values().map(Vec::len).sum::<usize>();
        assert_eq!(
            cached, 3,
            "overflowing services are cached as `unknown` once"
        );
    }
}
