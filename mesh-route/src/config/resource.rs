//! A loaded resource: its Kubernetes-style metadata, where it was read from, and its
//! typed `spec`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::diagnostic::Origin;

/// The `metadata` of a resource (only the fields the mesh uses; others are ignored).
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: catalog, namespace: shop, labels: {team: a}}\nspec: {host: catalog}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let meta = &config.destination_rules[0].meta;
/// assert_eq!(meta.labels["team"], "a");
/// assert_eq!(meta.qualified_name(), "shop/catalog");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Resource name (required).
    pub name: String,
    /// Namespace; short host names in the resource resolve against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ObjectMeta {
    /// `namespace/name`, or just `name` without a namespace.
    ///
    /// ```
    /// use mesh_route::config::ObjectMeta;
    ///
    /// let mut meta = ObjectMeta { name: "catalog".into(), ..Default::default() };
    /// assert_eq!(meta.qualified_name(), "catalog");
    /// meta.namespace = Some("shop".into());
    /// assert_eq!(meta.qualified_name(), "shop/catalog");
    /// ```
    pub fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// One resource of kind `T` with its metadata and origin.
///
/// ```
/// use mesh_route::config::{Config, Origin};
///
/// let yaml = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: catalog}\nspec: {host: catalog}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let dr = &config.destination_rules[0];
/// assert_eq!(dr.spec.host, "catalog");
/// assert_eq!(dr.origin, Origin::new("<inline>", 0));
/// ```
#[derive(Clone, Debug, Serialize)]
pub struct Resource<T> {
    /// Kubernetes-style metadata.
    #[serde(rename = "metadata")]
    pub meta: ObjectMeta,
    /// File and document it was read from.
    #[serde(skip)]
    pub origin: Origin,
    /// The typed `spec`.
    pub spec: T,
}

/// The file name diagnostics give resources built in Rust.
///
/// ```
/// use mesh_route::config::{Resource, VirtualService, resource::RUST_ORIGIN};
///
/// let vs = Resource::new("catalog", VirtualService::default());
/// assert_eq!(vs.origin.file.to_str(), Some(RUST_ORIGIN));
/// ```
pub const RUST_ORIGIN: &str = "<rust>";

impl<T> Resource<T> {
    /// A resource built in Rust, named `name`, without a namespace; diagnostics name its origin
    /// [`RUST_ORIGIN`].
    ///
    /// ```
    /// use mesh_route::config::{Resource, VirtualService};
    /// let vs = Resource::new("catalog", VirtualService::default()).in_namespace("shop");
    /// assert_eq!(vs.meta.qualified_name(), "shop/catalog");
    /// ```
    pub fn new(name: impl Into<String>, spec: T) -> Self {
        Resource {
            meta: ObjectMeta {
                name: name.into(),
                ..ObjectMeta::default()
            },
            origin: Origin::new(RUST_ORIGIN, 0),
            spec,
        }
    }

    /// The same resource in namespace `namespace`.
    ///
    /// ```
    /// use mesh_route::config::{DestinationRule, Resource};
    ///
    /// let dr = Resource::new("catalog", DestinationRule::default()).in_namespace("shop");
    /// assert_eq!(dr.meta.namespace.as_deref(), Some("shop"));
    /// ```
    pub fn in_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.meta.namespace = Some(namespace.into());
        self
    }

    /// The namespace, if any.
    ///
    /// ```
    /// use mesh_route::config::{DestinationRule, Resource};
    ///
    /// let dr = Resource::new("catalog", DestinationRule::default());
    /// assert_eq!(dr.namespace(), None);
    /// assert_eq!(dr.in_namespace("shop").namespace(), Some("shop"));
    /// ```
    pub fn namespace(&self) -> Option<&str> {
        self.meta.namespace.as_deref()
    }
}

/// `Kind namespace/name`, the way diagnostics name a resource.
pub(crate) struct ResourceLabel<'a> {
    pub(crate) kind: &'a str,
    pub(crate) meta: &'a ObjectMeta,
}

impl fmt::Display for ResourceLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.meta.name.is_empty() {
            f.write_str(self.kind)
        } else {
            write!(f, "{} {}", self.kind, self.meta.qualified_name())
        }
    }
}

/// Diagnostics label of `resource` of kind `kind`.
pub(crate) fn label<T>(kind: &str, resource: &Resource<T>) -> String {
    ResourceLabel {
        kind,
        meta: &resource.meta,
    }
    .to_string()
}
