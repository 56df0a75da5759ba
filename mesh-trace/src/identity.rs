//! [`WorkloadIdentity`]: who this proxy is, for span tags (`node_id`,
//! `istio.canonical_service`) — read from the environment variables Istio's injector sets on
//! its proxy container, with Istio's fallbacks when they are absent.

/// The proxy's workload.
///
/// ```
/// use mesh_trace::identity::WorkloadIdentity;
/// // Istio's fallbacks, in an empty environment (an empty value counts as missing).
/// let id = WorkloadIdentity::from_lookup(|name| (name == "POD_NAMESPACE").then(String::new));
/// assert_eq!(id, WorkloadIdentity {
///     pod_name: "unknown".into(),
///     namespace: "default".into(),
///     instance_ip: "127.0.0.1".into(),
///     canonical_service: "unknown".into(),
///     canonical_revision: "latest".into(),
/// });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadIdentity {
    /// Pod (or host) name: `POD_NAME`, else `HOSTNAME`, else `unknown`.
    pub pod_name: String,
    /// Namespace: `POD_NAMESPACE`, else `default`.
    pub namespace: String,
    /// Instance IP: `INSTANCE_IP`, else `127.0.0.1`.
    pub instance_ip: String,
    /// Canonical service: `CANONICAL_SERVICE`, else `unknown`.
    pub canonical_service: String,
    /// Canonical revision: `CANONICAL_REVISION`, else `latest`.
    pub canonical_revision: String,
}

impl WorkloadIdentity {
    /// Reads the identity from the process environment.
    ///
    /// ```
    /// use mesh_trace::identity::WorkloadIdentity;
    /// let id = WorkloadIdentity::from_env();
    /// assert_eq!(id, WorkloadIdentity::from_lookup(|name| std::env::var(name).ok()));
    /// assert!(!id.namespace.is_empty()); // `default` when `POD_NAMESPACE` is not set
    /// ```
    pub fn from_env() -> Self {
        WorkloadIdentity::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the identity through `lookup` (an environment).
    ///
    /// ```
    /// use mesh_trace::identity::WorkloadIdentity;
    /// let id = WorkloadIdentity::from_lookup(|name| match name {
    ///     "POD_NAME" => Some("catalog-7d9f".into()),
    ///     "POD_NAMESPACE" => Some("shop".into()),
    ///     "INSTANCE_IP" => Some("10.1.2.3".into()),
    ///     _ => None,
    /// });
    /// assert_eq!(id.node_id(), "sidecar~10.1.2.3~catalog-7d9f.shop~shop.svc.cluster.local");
    /// assert_eq!((id.canonical_service.as_str(), id.canonical_revision.as_str()), ("unknown", "latest"));
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |names: &[&str], default: &str| {
            names
                .iter()
                .find_map(|name| lookup(name).filter(|value| !value.is_empty()))
                .unwrap_or_else(|| default.to_owned())
        };
        WorkloadIdentity {
            pod_name: get(&["POD_NAME", "HOSTNAME"], "unknown"),
            namespace: get(&["POD_NAMESPACE"], "default"),
            instance_ip: get(&["INSTANCE_IP"], "127.0.0.1"),
            canonical_service: get(&["CANONICAL_SERVICE"], "unknown"),
            canonical_revision: get(&["CANONICAL_REVISION"], "latest"),
        }
    }

    /// Envoy's node id, as Istio forms it: `sidecar~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local`.
    ///
    /// ```
    /// use mesh_trace::identity::WorkloadIdentity;
    /// let id = WorkloadIdentity::from_lookup(|name| match name {
    ///     "HOSTNAME" => Some("catalog-7d9f".into()), // when `POD_NAME` is not set
    ///     "POD_NAMESPACE" => Some("shop".into()),
    ///     _ => None,
    /// });
    /// assert_eq!(id.node_id(), "sidecar~127.0.0.1~catalog-7d9f.shop~shop.svc.cluster.local");
    /// ```
    pub fn node_id(&self) -> String {
        format!(
            "sidecar~{}~{}.{}~{}.svc.cluster.local",
            self.instance_ip, self.pod_name, self.namespace, self.namespace
        )
    }

    /// The Zipkin service name Istio reports: `CANONICAL_SERVICE.NAMESPACE`.
    ///
    /// ```
    /// use mesh_trace::identity::WorkloadIdentity;
    /// let id = WorkloadIdentity::from_lookup(|name| match name {
    ///     "CANONICAL_SERVICE" => Some("catalog".into()),
    ///     "POD_NAMESPACE" => Some("shop".into()),
    ///     _ => None,
    /// });
    /// assert_eq!(id.service_name(), "catalog.shop");
    /// ```
    pub fn service_name(&self) -> String {
        format!("{}.{}", self.canonical_service, self.namespace)
    }
}
