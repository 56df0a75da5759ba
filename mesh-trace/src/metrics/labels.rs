//! The label set of Istio's standard metrics, in the order Istio produces it, and the rules for
//! its values (mesh-semantics §6.2).

use mesh_core::{ResponseFlags, workload::Workload};
use metrics::Label;

/// Which proxy reports a request: the client's (`source`) or the server's (`destination`).
///
/// ```
/// use mesh_core::PeerIdentity;
/// use mesh_trace::metrics::{REQUESTS_TOTAL, Reporter, RequestOutcome};
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
/// // The server side knows a mutual-TLS caller from its certificate.
/// let (metrics, snapshotter) = metrics(Reporter::Destination);
/// let caller = metrics.peer_workload(&PeerIdentity::new("spiffe://cluster.local/ns/shop/sa/web"));
/// metrics.record(&RequestOutcome { peer: caller.as_ref(), ..ok("catalog.shop.svc.cluster.local") });
/// let (labels, _) = &series(&snapshotter, REQUESTS_TOTAL)[0];
/// assert_eq!(labels["source_principal"], "spiffe://cluster.local/ns/shop/sa/web");
/// assert_eq!(labels["connection_security_policy"], "mutual_tls");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reporter {
    /// The client side: an outbound sidecar or a gateway.
    Source,
    /// The server side: an inbound sidecar.
    Destination,
}

impl Reporter {
    /// The `reporter` label value.
    ///
    /// ```
    /// use mesh_trace::metrics::Reporter;
    /// assert_eq!(Reporter::Source.as_str(), "source");
    /// assert_eq!(Reporter::Destination.as_str(), "destination");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
        }
    }
}

/// The `request_protocol` label.
///
/// ```
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
/// // A plain HTTP request has an empty `grpc_response_status`, whatever it is given.
/// let http = RequestOutcome { protocol: RequestProtocol::Http, grpc_status: Some(0), ..ok("catalog") };
/// metrics.record(&http);
/// let (labels, _) = &series(&snapshotter, REQUESTS_TOTAL)[0];
/// assert_eq!((labels["request_protocol"].as_str(), labels["grpc_response_status"].as_str()), ("http", ""));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestProtocol {
    /// Plain HTTP.
    Http,
    /// gRPC (`content-type: application/grpc`, or `application/grpc+…`).
    Grpc,
    /// A TCP connection (the `istio_tcp_*` metrics).
    Tcp,
}

impl RequestProtocol {
    /// The protocol of a request with these headers.
    ///
    /// ```
    /// use mesh_trace::metrics::RequestProtocol;
    /// let mut headers = http::HeaderMap::new();
    /// assert_eq!(RequestProtocol::of(&headers), RequestProtocol::Http);
    /// headers.insert("content-type", "application/grpc+proto".parse().unwrap());
    /// assert_eq!(RequestProtocol::of(&headers), RequestProtocol::Grpc);
    /// ```
    pub fn of(headers: &http::HeaderMap) -> Self {
        RequestProtocol::of_content_type(headers.get(http::header::CONTENT_TYPE))
    }

    /// The protocol of a request with this `content-type`: gRPC when it is exactly
    /// `application/grpc` or `application/grpc+` a codec, as Envoy tells gRPC apart (so
    /// `application/grpc-web` is HTTP).
    ///
    /// ```
    /// use http::HeaderValue;
    /// use mesh_trace::metrics::RequestProtocol;
    /// let of = |value| RequestProtocol::of_content_type(Some(&HeaderValue::from_static(value)));
    /// assert_eq!(of("application/grpc"), RequestProtocol::Grpc);
    /// assert_eq!(of("application/grpc+json"), RequestProtocol::Grpc);
    /// assert_eq!(of("application/grpc-web+proto"), RequestProtocol::Http);
    /// assert_eq!(RequestProtocol::of_content_type(None), RequestProtocol::Http);
    /// ```
    pub fn of_content_type(content_type: Option<&http::HeaderValue>) -> Self {
        if mesh_core::grpc::is_grpc_content_type(content_type) {
            RequestProtocol::Grpc
        } else {
            RequestProtocol::Http
        }
    }

    /// The label value.
    ///
    /// ```
    /// use mesh_trace::metrics::RequestProtocol;
    /// let labels = [RequestProtocol::Http, RequestProtocol::Grpc, RequestProtocol::Tcp].map(RequestProtocol::as_str);
    /// assert_eq!(labels, ["http", "grpc", "tcp"]);
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            RequestProtocol::Http => "http",
            RequestProtocol::Grpc => "grpc",
            RequestProtocol::Tcp => "tcp",
        }
    }
}

/// The catch-all clusters Istio names in `destination_service_name`: traffic to hosts the
/// registry does not know, let through (`ALLOW_ANY`) or blocked (`REGISTRY_ONLY`).
///
/// ```
/// use mesh_trace::metrics::{CatchAllCluster, REQUESTS_TOTAL, Reporter, RequestOutcome};
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
/// let outcome = RequestOutcome { catch_all: Some(CatchAllCluster::Passthrough), ..ok("api.example.com") };
/// metrics.record(&outcome);
/// let (labels, _) = &series(&snapshotter, REQUESTS_TOTAL)[0];
/// assert_eq!(labels["destination_service"], "api.example.com");
/// assert_eq!(labels["destination_service_name"], "PassthroughCluster");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CatchAllCluster {
    /// `PassthroughCluster`.
    Passthrough,
    /// `BlackHoleCluster`.
    BlackHole,
}

impl CatchAllCluster {
    /// The cluster's name.
    ///
    /// ```
    /// use mesh_trace::metrics::CatchAllCluster;
    /// assert_eq!(CatchAllCluster::Passthrough.name(), "PassthroughCluster");
    /// assert_eq!(CatchAllCluster::BlackHole.name(), "BlackHoleCluster");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            CatchAllCluster::Passthrough => PASSTHROUGH_CLUSTER,
            CatchAllCluster::BlackHole => BLACK_HOLE_CLUSTER,
        }
    }

    /// The catch-all cluster called `name`, if it is one.
    ///
    /// ```
    /// use mesh_trace::metrics::CatchAllCluster;
    /// assert_eq!(CatchAllCluster::of("BlackHoleCluster"), Some(CatchAllCluster::BlackHole));
    /// assert_eq!(CatchAllCluster::of(CatchAllCluster::Passthrough.name()), Some(CatchAllCluster::Passthrough));
    /// assert_eq!(CatchAllCluster::of("outbound|80||catalog.shop.svc.cluster.local"), None);
    /// ```
    pub fn of(name: &str) -> Option<Self> {
        match name {
            PASSTHROUGH_CLUSTER => Some(CatchAllCluster::Passthrough),
            BLACK_HOLE_CLUSTER => Some(CatchAllCluster::BlackHole),
            _ => None,
        }
    }
}

/// Everything the labels of one series depend on.
pub(crate) struct SeriesLabels<'a> {
    pub reporter: Reporter,
    pub source: &'a Workload,
    pub destination: &'a Workload,
    pub destination_service: &'a str,
    /// The namespace of the resource declaring `destination_service`, for a host that does
    /// not name one (a ServiceEntry's `api.example.com`).
    pub service_namespace: Option<&'a str>,
    /// Traffic of a catch-all cluster: the service name is the cluster's.
    pub catch_all: Option<CatchAllCluster>,
    pub protocol: RequestProtocol,
    pub flags: ResponseFlags,
    pub status: u16,
    pub grpc_status: Option<u16>,
}

/// The `destination_service_name` of pass-through traffic, as Istio reports it.
///
/// ```
/// use mesh_trace::metrics::{CatchAllCluster, PASSTHROUGH_CLUSTER};
/// assert_eq!(PASSTHROUGH_CLUSTER, "PassthroughCluster");
/// assert_eq!(CatchAllCluster::of(PASSTHROUGH_CLUSTER), Some(CatchAllCluster::Passthrough));
/// ```
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";

/// The `destination_service_name` of traffic `REGISTRY_ONLY` blocks, as Istio reports it.
///
/// ```
/// use mesh_trace::metrics::{BLACK_HOLE_CLUSTER, CatchAllCluster};
/// assert_eq!(BLACK_HOLE_CLUSTER, "BlackHoleCluster");
/// assert_eq!(CatchAllCluster::BlackHole.name(), BLACK_HOLE_CLUSTER);
/// ```
pub const BLACK_HOLE_CLUSTER: &str = "BlackHoleCluster";

impl SeriesLabels<'_> {
    /// The labels, in Istio's order.
    pub(crate) fn to_labels(&self) -> Vec<Label> {
        let (service_name, mut service_namespace) = service_parts(self.destination_service);
        if let Some(namespace) = self.service_namespace
            && service_namespace == mesh_core::workload::UNKNOWN
        {
            namespace.clone_into(&mut service_namespace);
        }
        let service_name = match self.catch_all {
            Some(cluster) => cluster.name().to_owned(),
            None => service_name,
        };
        let (src, dst) = (self.source, self.destination);
        // Inbound, a caller's principal is known from its verified certificate only.
        let security = match self.reporter {
            Reporter::Source => "unknown",
            Reporter::Destination if src.principal != mesh_core::workload::UNKNOWN => "mutual_tls",
            Reporter::Destination => "none",
        };
        let pairs: [(&'static str, String); 25] = [
            ("reporter", self.reporter.as_str().into()),
            ("source_workload", src.name.clone()),
            ("source_workload_namespace", src.namespace.clone()),
            ("source_principal", src.principal.clone()),
            ("source_app", src.app.clone()),
            ("source_version", src.version.clone()),
            ("source_canonical_service", src.canonical_service.clone()),
            ("source_canonical_revision", src.canonical_revision.clone()),
            ("source_cluster", src.cluster.clone()),
            ("destination_workload", dst.name.clone()),
            ("destination_workload_namespace", dst.namespace.clone()),
            // Inbound, this proxy presents its identity only over mutual TLS.
            (
                "destination_principal",
                if self.reporter == Reporter::Destination && security == "none" {
                    mesh_core::workload::UNKNOWN.to_owned()
                } else {
                    dst.principal.clone()
                },
            ),
            ("destination_app", dst.app.clone()),
            ("destination_version", dst.version.clone()),
            ("destination_service", self.destination_service.into()),
            ("destination_service_name", service_name),
            ("destination_service_namespace", service_namespace),
            (
                "destination_canonical_service",
                dst.canonical_service.clone(),
            ),
            (
                "destination_canonical_revision",
                dst.canonical_revision.clone(),
            ),
            ("destination_cluster", dst.cluster.clone()),
            ("request_protocol", self.protocol.as_str().into()),
            ("response_flags", self.flags.to_string()),
            ("connection_security_policy", security.into()),
            ("response_code", self.status.to_string()),
            (
                "grpc_response_status",
                match (self.protocol, self.grpc_status) {
                    (RequestProtocol::Grpc, Some(code)) => code.to_string(),
                    _ => String::new(),
                },
            ),
        ];
        // TCP series have no response code or gRPC status.
        let kept = match self.protocol {
            RequestProtocol::Tcp => pairs.len() - 2,
            _ => pairs.len(),
        };
        pairs
            .into_iter()
            .take(kept)
            .map(|(key, value)| Label::new(key, value))
            .collect()
    }
}

/// `destination_service_name` and `destination_service_namespace` of a service host:
/// `NAME.NAMESPACE.svc…` splits, anything else is its own name in an `unknown` namespace
/// (unless the series knows its declaring resource's namespace).
fn service_parts(host: &str) -> (String, String) {
    let mut parts = host.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(name), Some(namespace), Some(rest)) if rest == "svc" || rest.starts_with("svc.") => {
            (name.to_owned(), namespace.to_owned())
        }
        _ => (host.to_owned(), mesh_core::workload::UNKNOWN.to_owned()),
    }
}

/// The gRPC status Envoy reports for a gRPC response that carried none, from its HTTP status
/// (gRPC's "HTTP to gRPC status code mapping"): a 200 without one is `Unknown` (2), as is a
/// stream cut before its trailers; a request that got no response at all (status 0) has none.
pub(crate) fn grpc_status_of_http(status: u16) -> Option<u16> {
    Some(match status {
        0 => return None,
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grpc_response_without_a_status_reports_envoys() {
        let reported = [0, 200, 400, 404, 503, 500].map(grpc_status_of_http);
        assert_eq!(
            reported,
            [None, Some(2), Some(13), Some(12), Some(14), Some(2)]
        );
    }

    #[test]
    fn service_names_split_kubernetes_hosts_only() {
        assert_eq!(
            service_parts("catalog.shop.svc.cluster.local"),
            ("catalog".into(), "shop".into())
        );
        assert_eq!(
            service_parts("catalog.shop.svc"),
            ("catalog".into(), "shop".into())
        );
        assert_eq!(
            service_parts("api.example.com"),
            ("api.example.com".into(), "unknown".into())
        );
        assert_eq!(
            service_parts("catalog"),
            ("catalog".into(), "unknown".into())
        );
    }

    /// The value of label `key` among `labels`.
    fn value(labels: &[Label], key: &str) -> String {
        labels
            .iter()
            .find(|l| l.key() == key)
            .unwrap()
            .value()
            .to_owned()
    }

    #[test]
    fn labels_follow_istio_order_and_defaults() {
        let local = Workload::from_labels("web", "shop", &Default::default());
        let unknown = Workload::default();
        let labels = SeriesLabels {
            reporter: Reporter::Source,
            source: &local,
            destination: &unknown,
            destination_service: "catalog.shop.svc.cluster.local",
            service_namespace: None,
            catch_all: None,
            protocol: RequestProtocol::Http,
            flags: ResponseFlags::default(),
            status: 200,
            grpc_status: Some(0),
        }
        .to_labels();
        let keys: Vec<&str> = labels.iter().map(|l| l.key()).collect();
        assert_eq!(keys.len(), 25);
        assert_eq!(keys[0], "reporter");
        assert_eq!(keys[24], "grpc_response_status");
        let get = |k: &str| value(&labels, k);
        assert_eq!(get("destination_canonical_revision"), "latest");
        assert_eq!(get("destination_workload"), "unknown");
        assert_eq!(get("response_flags"), "-");
        assert_eq!(get("connection_security_policy"), "unknown");
        assert_eq!(get("grpc_response_status"), "", "empty for plain HTTP");
        assert_eq!(get("destination_service_name"), "catalog");
    }

    #[test]
    fn inbound_the_proxys_principal_is_reported_over_mutual_tls_only() {
        let mut local = Workload::from_labels("catalog", "shop", &Default::default());
        local.principal = "spiffe://cluster.local/ns/shop/sa/catalog".into();
        let mut caller = Workload::default();
        let principal = |source: &Workload| {
            let labels = SeriesLabels {
                reporter: Reporter::Destination,
                source,
                destination: &local,
                destination_service: "catalog.shop.svc.cluster.local",
                service_namespace: None,
                catch_all: None,
                protocol: RequestProtocol::Http,
                flags: ResponseFlags::default(),
                status: 200,
                grpc_status: None,
            }
            .to_labels();
            (
                value(&labels, "connection_security_policy"),
                value(&labels, "destination_principal"),
            )
        };
        assert_eq!(principal(&caller), ("none".into(), "unknown".into()));
        caller.principal = "spiffe://cluster.local/ns/shop/sa/web".into();
        assert_eq!(
            principal(&caller),
            (
                "mutual_tls".into(),
                "spiffe://cluster.local/ns/shop/sa/catalog".into()
            )
        );
    }
}
