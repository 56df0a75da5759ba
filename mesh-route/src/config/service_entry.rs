//! The `ServiceEntry` resource (`networking.istio.io`): adds a service — its hosts, ports
//! and endpoints — to the registry. Outside Kubernetes this is how every upstream the
//! proxy routes to is declared.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::shared_types::WorkloadSelector;

/// Istio `ServiceEntry`.
///
/// ```
/// use mesh_route::config::{Config, Resolution};
///
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: ServiceEntry
/// metadata: {name: payments}
/// spec:
///   hosts: [payments.example.com]
///   location: MESH_EXTERNAL
///   resolution: DNS
///   ports: [{number: 443, name: https, protocol: TLS}]
///   endpoints: [{address: pay.internal, ports: {https: 8443}, labels: {zone: a}}]
/// "#;
/// let se = &Config::from_yaml_str(yaml).unwrap().config.service_entries[0].spec;
/// assert_eq!(se.hosts, ["payments.example.com"]);
/// assert_eq!(se.resolution, Some(Resolution::Dns));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceEntry {
    /// Host names of the service (wildcard prefixes allowed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Virtual IPs or CIDRs of the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Ports of the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// Inside or outside the mesh (default `MESH_EXTERNAL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// How endpoints are found (default `NONE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// The endpoints, for `STATIC` and `DNS` resolution.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<WorkloadEntry>,
    /// Select workloads instead of listing endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    /// Namespaces the service is visible to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// SANs accepted on the service's certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

impl ServiceEntry {
    /// The resolution, with Istio's default (`NONE`) when unset.
    ///
    /// ```
    /// use mesh_route::config::{Resolution, ServiceEntry};
    ///
    /// assert_eq!(ServiceEntry::default().resolution_or_default(), Resolution::None);
    /// let se = ServiceEntry { resolution: Some(Resolution::Static), ..Default::default() };
    /// assert_eq!(se.resolution_or_default(), Resolution::Static);
    /// ```
    pub fn resolution_or_default(&self) -> Resolution {
        self.resolution.unwrap_or(Resolution::None)
    }
}

/// Istio `ServicePort`.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: ServiceEntry
/// metadata: {name: payments}
/// spec:
///   hosts: [payments.example.com]
///   location: MESH_EXTERNAL
///   resolution: DNS
///   ports: [{number: 443, name: https, protocol: TLS}]
///   endpoints: [{address: pay.internal, ports: {https: 8443}, labels: {zone: a}}]
/// "#;
/// let se = &Config::from_yaml_str(yaml).unwrap().config.service_entries[0].spec;
/// let port = &se.ports[0];
/// assert_eq!((port.number, port.name.as_str(), port.protocol.as_deref()), (443, "https", Some("TLS")));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    /// Port number (1–65535).
    pub number: u32,
    /// `HTTP`, `HTTPS`, `GRPC`, `HTTP2`, `MONGO`, `TCP` or `TLS`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port name, referenced by endpoints' `ports`.
    pub name: String,
    /// Port on the endpoints (default: `number`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

/// Istio `ServiceEntry.Location`.
///
/// ```
/// use mesh_route::config::{Config, Location};
///
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: ServiceEntry
/// metadata: {name: payments}
/// spec:
///   hosts: [payments.example.com]
///   location: MESH_EXTERNAL
///   resolution: DNS
///   ports: [{number: 443, name: https, protocol: TLS}]
///   endpoints: [{address: pay.internal, ports: {https: 8443}, labels: {zone: a}}]
/// "#;
/// let se = &Config::from_yaml_str(yaml).unwrap().config.service_entries[0].spec;
/// assert_eq!(se.location, Some(Location::MeshExternal));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Location {
    /// Outside the mesh (the default).
    MeshExternal,
    /// Part of the mesh.
    MeshInternal,
}

/// Istio `ServiceEntry.Resolution`.
///
/// ```
/// use mesh_route::config::{Config, Resolution};
///
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: ServiceEntry
/// metadata: {name: payments}
/// spec:
///   hosts: [payments.example.com]
///   location: MESH_EXTERNAL
///   resolution: DNS
///   ports: [{number: 443, name: https, protocol: TLS}]
///   endpoints: [{address: pay.internal, ports: {https: 8443}, labels: {zone: a}}]
/// "#;
/// let se = &Config::from_yaml_str(yaml).unwrap().config.service_entries[0].spec;
/// assert_eq!(se.resolution_or_default(), Resolution::Dns);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Resolution {
    /// Forward to the original destination address (the default).
    None,
    /// Use the endpoints' IP addresses.
    Static,
    /// Resolve the endpoints' (or hosts') names with DNS.
    Dns,
    /// Resolve with DNS and use only the first address per connection.
    DnsRoundRobin,
    /// Resolve wildcard hosts per request.
    DynamicDns,
}

/// Istio `WorkloadEntry`, as an endpoint of a ServiceEntry.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: ServiceEntry
/// metadata: {name: payments}
/// spec:
///   hosts: [payments.example.com]
///   location: MESH_EXTERNAL
///   resolution: DNS
///   ports: [{number: 443, name: https, protocol: TLS}]
///   endpoints: [{address: pay.internal, ports: {https: 8443}, labels: {zone: a}}]
/// "#;
/// let se = &Config::from_yaml_str(yaml).unwrap().config.service_entries[0].spec;
/// let endpoint = &se.endpoints[0];
/// assert_eq!(endpoint.address, "pay.internal");
/// assert_eq!(endpoint.ports["https"], 8443);
/// assert_eq!(endpoint.labels["zone"], "a");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEntry {
    /// IP address, DNS name or `unix://` socket.
    #[serde(default)]
    pub address: String,
    /// Port name (from the ServiceEntry's ports) → port on this endpoint.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, u32>,
    /// Endpoint labels (subsets select on them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Network the endpoint is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// `region/zone/sub-zone`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// Load-balancing weight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Service account of the workload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}
