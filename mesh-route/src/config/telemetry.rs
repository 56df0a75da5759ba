//! The `Telemetry` resource (`telemetry.istio.io`): tracing, metrics and access-logging
//! settings for the workloads it applies to — the whole mesh (root namespace, no
//! selector), a namespace (no selector), selected workloads (`selector`) or policy
//! targets (`targetRef` / `targetRefs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::duration::Duration;
use super::shared_types::{PolicyTargetReference, PolicyWorkloadSelector};

/// Istio `Telemetry`.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// apiVersion: telemetry.istio.io/v1
/// kind: Telemetry
/// metadata: {name: mesh-default, namespace: istio-system}
/// spec:
///   tracing:
///   - match: {mode: SERVER}
///     providers: [{name: zipkin}]
///     randomSamplingPercentage: 5
///     customTags:
///       team: {literal: {value: shop}}
///       pod: {environment: {name: POD_NAME, defaultValue: unknown}}
///       user: {header: {name: x-user}}
///   metrics:
///   - providers: [{name: prometheus}]
///     overrides:
///     - match: {metric: REQUEST_COUNT, mode: CLIENT}
///       tagOverrides: {request_protocol: {operation: REMOVE}}
///   accessLogging:
///   - providers: [{name: envoy}]
///     filter: {expression: "response.code >= 400"}
/// # ---
/// # apiVersion: mesh/v1
/// # kind: MeshConfig
/// # metadata: {name: mesh}
/// # spec: {extensionProviders: [{name: zipkin, zipkin: {service: zipkin, port: 9411}}]}
/// "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let telemetry = &config.telemetries[0].spec;
/// assert!(telemetry.selects_all());
/// assert_eq!((telemetry.tracing.len(), telemetry.metrics.len(), telemetry.access_logging.len()), (1, 1, 1));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Telemetry {
    /// Workloads this Telemetry applies to (absent: every workload of the namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<PolicyWorkloadSelector>,
    /// The resource this Telemetry applies to, instead of `selector`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// The resources this Telemetry applies to, instead of `selector`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Tracing settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracing: Vec<TelemetryTracing>,
    /// Metrics settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metrics>,
    /// Access-logging settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_logging: Vec<AccessLogging>,
}

impl Telemetry {
    /// Whether the Telemetry applies to every workload of its namespace (in the root
    /// namespace: to the whole mesh): its `selector` is absent or empty, as in Istio, and it
    /// has no `targetRef` or `targetRefs`.
    ///
    /// ```
    /// use mesh_route::config::{PolicyWorkloadSelector, Telemetry};
    ///
    /// assert!(Telemetry::default().selects_all());
    /// let empty = Telemetry { selector: Some(PolicyWorkloadSelector::default()), ..Default::default() };
    /// assert!(empty.selects_all());
    /// let db = PolicyWorkloadSelector { match_labels: [("app".into(), "db".into())].into() };
    /// let scoped = Telemetry { selector: Some(db), ..Default::default() };
    /// assert!(!scoped.selects_all());
    /// ```
    pub fn selects_all(&self) -> bool {
        PolicyWorkloadSelector::narrowing(self.selector.as_ref()).is_none()
            && self.applies_to_proxies()
    }

    /// Whether it may apply to a proxy: it is attached to no resource by `targetRef` (a
    /// `selector`, if any, chooses among the proxies of its namespace by their labels).
    ///
    /// ```
    /// use mesh_route::config::{PolicyTargetReference, PolicyWorkloadSelector, Telemetry};
    ///
    /// let selecting = Telemetry { selector: Some(PolicyWorkloadSelector::default()), ..Default::default() };
    /// assert!(selecting.applies_to_proxies());
    /// let attached = Telemetry { target_ref: Some(PolicyTargetReference::default()), ..Default::default() };
    /// assert!(!attached.applies_to_proxies());
    /// ```
    pub fn applies_to_proxies(&self) -> bool {
        self.target_ref.is_none() && self.target_refs.is_empty()
    }

    /// The `tracing` entry (and its index) that applies to `side` (`Client` or `Server`): the
    /// first whose `match.mode` is unset, `CLIENT_AND_SERVER`, or that side.
    ///
    /// ```
    /// use mesh_route::config::{Config, WorkloadMode};
    ///
    /// # let yaml = r#"
    /// # apiVersion: telemetry.istio.io/v1
    /// # kind: Telemetry
    /// # metadata: {name: mesh-default, namespace: istio-system}
    /// # spec:
    /// #   tracing:
    /// #   - match: {mode: SERVER}
    /// #     providers: [{name: zipkin}]
    /// #     randomSamplingPercentage: 5
    /// #     customTags:
    /// #       team: {literal: {value: shop}}
    /// #       pod: {environment: {name: POD_NAME, defaultValue: unknown}}
    /// #       user: {header: {name: x-user}}
    /// #   metrics:
    /// #   - providers: [{name: prometheus}]
    /// #     overrides:
    /// #     - match: {metric: REQUEST_COUNT, mode: CLIENT}
    /// #       tagOverrides: {request_protocol: {operation: REMOVE}}
    /// #   accessLogging:
    /// #   - providers: [{name: envoy}]
    /// #     filter: {expression: "response.code >= 400"}
    /// # ---
    /// # apiVersion: mesh/v1
    /// # kind: MeshConfig
    /// # metadata: {name: mesh}
    /// # spec: {extensionProviders: [{name: zipkin, zipkin: {service: zipkin, port: 9411}}]}
    /// # "#;
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let telemetry = &config.telemetries[0].spec;
    /// let (index, entry) = telemetry.tracing_for(WorkloadMode::Server).unwrap();
    /// assert_eq!((index, entry.random_sampling_percentage), (0, Some(5.0)));
    /// assert!(telemetry.tracing_for(WorkloadMode::Client).is_none()); // the entry is SERVER only
    /// ```
    pub fn tracing_for(&self, side: WorkloadMode) -> Option<(usize, &TelemetryTracing)> {
        self.tracing
            .iter()
            .enumerate()
            .find(|(_, entry)| covers(entry.match_.as_ref().and_then(|m| m.mode), side))
    }

    /// The `accessLogging` entry (and its index) that applies to `side`, chosen as
    /// [`tracing_for`](Self::tracing_for) chooses.
    ///
    /// ```
    /// use mesh_route::config::{Config, WorkloadMode};
    ///
    /// # let yaml = r#"
    /// # apiVersion: telemetry.istio.io/v1
    /// # kind: Telemetry
    /// # metadata: {name: mesh-default, namespace: istio-system}
    /// # spec:
    /// #   tracing:
    /// #   - match: {mode: SERVER}
    /// #     providers: [{name: zipkin}]
    /// #     randomSamplingPercentage: 5
    /// #     customTags:
    /// #       team: {literal: {value: shop}}
    /// #       pod: {environment: {name: POD_NAME, defaultValue: unknown}}
    /// #       user: {header: {name: x-user}}
    /// #   metrics:
    /// #   - providers: [{name: prometheus}]
    /// #     overrides:
    /// #     - match: {metric: REQUEST_COUNT, mode: CLIENT}
    /// #       tagOverrides: {request_protocol: {operation: REMOVE}}
    /// #   accessLogging:
    /// #   - providers: [{name: envoy}]
    /// #     filter: {expression: "response.code >= 400"}
    /// # ---
    /// # apiVersion: mesh/v1
    /// # kind: MeshConfig
    /// # metadata: {name: mesh}
    /// # spec: {extensionProviders: [{name: zipkin, zipkin: {service: zipkin, port: 9411}}]}
    /// # "#;
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let telemetry = &config.telemetries[0].spec;
    /// // No `match`: the entry applies to both sides.
    /// assert_eq!(telemetry.access_logging_for(WorkloadMode::Client).unwrap().0, 0);
    /// assert_eq!(telemetry.access_logging_for(WorkloadMode::Server).unwrap().0, 0);
    /// ```
    pub fn access_logging_for(&self, side: WorkloadMode) -> Option<(usize, &AccessLogging)> {
        self.access_logging
            .iter()
            .enumerate()
            .find(|(_, entry)| covers(entry.match_.as_ref().and_then(|m| m.mode), side))
    }
}

/// Whether an entry for `mode` (unset: both sides) applies to `side`.
fn covers(mode: Option<WorkloadMode>, side: WorkloadMode) -> bool {
    match mode {
        None | Some(WorkloadMode::ClientAndServer) => true,
        Some(mode) => mode == side,
    }
}

/// Istio `Tracing` (Telemetry form; the mesh-config form is
/// [`Tracing`](super::mesh_config::Tracing)).
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: telemetry.istio.io/v1
/// # kind: Telemetry
/// # metadata: {name: mesh-default, namespace: istio-system}
/// # spec:
/// #   tracing:
/// #   - match: {mode: SERVER}
/// #     providers: [{name: zipkin}]
/// #     randomSamplingPercentage: 5
/// #     customTags:
/// #       team: {literal: {value: shop}}
/// #       pod: {environment: {name: POD_NAME, defaultValue: unknown}}
/// #       user: {header: {name: x-user}}
/// #   metrics:
/// #   - providers: [{name: prometheus}]
/// #     overrides:
/// #     - match: {metric: REQUEST_COUNT, mode: CLIENT}
/// #       tagOverrides: {request_protocol: {operation: REMOVE}}
/// #   accessLogging:
/// #   - providers: [{name: envoy}]
/// #     filter: {expression: "response.code >= 400"}
/// # ---
/// # apiVersion: mesh/v1
/// # kind: MeshConfig
/// # metadata: {name: mesh}
/// # spec: {extensionProviders: [{name: zipkin, zipkin: {service: zipkin, port: 9411}}]}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let telemetry = &config.telemetries[0].spec;
/// let tracing = &telemetry.tracing[0];
/// assert_eq!(tracing.providers[0].name, "zipkin");
/// assert_eq!(tracing.custom_tags.len(), 3);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TelemetryTracing {
    /// Which traffic the settings apply to (default: client and server).
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<TracingSelector>,
    /// Tracing providers (from the mesh config's `extensionProviders`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// Tags added to every span, by tag name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_tags: BTreeMap<String, TelemetryCustomTag>,
    /// Do not report spans to the providers (tracing headers are still propagated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_span_reporting: Option<bool>,
    /// Percentage of requests sampled, 0–100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub random_sampling_percentage: Option<f64>,
    /// Sample on the `x-request-id` header rather than at random.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_request_id_for_trace_sampling: Option<bool>,
    /// Add Istio's own tags (`istio.canonical_service`, …) to spans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_istio_tags: Option<bool>,
}

/// Istio `Tracing.TracingSelector`.
///
/// ```
/// use mesh_route::config::{Config, WorkloadMode};
///
/// # let yaml = r#"
/// # apiVersion: telemetry.istio.io/v1
/// # kind: Telemetry
/// # metadata: {name: mesh-default, namespace: istio-system}
/// # spec:
/// #   tracing:
/// #   - match: {mode: SERVER}
/// #     providers: [{name: zipkin}]
/// #     randomSamplingPercentage: 5
/// #     customTags:
/// #       team: {literal: {value: shop}}
/// #       pod: {environment: {name: POD_NAME, defaultValue: unknown}}
/// #       user: {header: {name: x-user}}
/// #   metrics:
/// #   - providers: [{name: prometheus}]
/// #     overrides:
/// #     - match: {metric: REQUEST_COUNT, mode: CLIENT}
/// #       tagOverrides: {request_protocol: {operation: REMOVE}}
/// #   accessLogging:
/// #   - providers: [{name: envoy}]
/// #     filter: {expression: "response.code >= 400"}
/// # ---
/// # apiVersion: mesh/v1
/// # kind: MeshConfig
/// # metadata: {name: mesh}
/// # spec: {extensionProviders: [{name: zipkin, zipkin: {service: zipkin, port: 9411}}]}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let telemetry = &config.telemetries[0].spec;
/// assert_eq!(telemetry.tracing[0].match_.as_ref().unwrap().mode, Some(WorkloadMode::Server));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TracingSelector {
    /// Client side, server side or both (default `CLIENT_AND_SERVER`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<WorkloadMode>,
}

/// Istio `Tracing.CustomTag`: where a span tag's value comes from — exactly one of
/// `literal`, `environment`, `header` (validation rejects none or several).
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: telemetry.istio.io/v1
/// # kind: Telemetry
/// # metadata: {name: mesh-default, namespace: istio-system}
/// # spec:
/// #   tracing:
/// #   - match: {mode: SERVER}
/// #     providers: [{name: zipkin}]
/// #     randomSamplingPercentage: 5
/// #     customTags:
/// #       team: {literal: {value: shop}}
/// #       pod: {environment: {name: POD_NAME, defaultValue: unknown}}
/// #       user: {header: {name: x-user}}
/// #   metrics:
/// #   - providers: [{name: prometheus}]
/// #     overrides:
/// #     - match: {metric: REQUEST_COUNT, mode: CLIENT}
/// #       tagOverrides: {request_protocol: {operation: REMOVE}}
/// #   accessLogging:
/// #   - providers: [{name: envoy}]
/// #     filter: {expression: "response.code >= 400"}
/// # ---
/// # apiVersion: mesh/v1
/// # kind: MeshConfig
/// # metadata: {name: mesh}
/// # spec: {extensionProviders: [{name: zipkin, zipkin: {service: zipkin, port: 9411}}]}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let telemetry = &config.telemetries[0].spec;
/// let team = &telemetry.tracing[0].custom_tags["team"];
/// assert_eq!(team.literal.as_ref().unwrap().value, "shop");
/// assert_eq!(team.kinds_set(), ["literal"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TelemetryCustomTag {
    /// A fixed value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub literal: Option<TracingLiteral>,
    /// An environment variable of the proxy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<TracingEnvironment>,
    /// A request header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<TracingRequestHeader>,
}

impl TelemetryCustomTag {
    /// The names of the sources that are set, among `literal`, `environment`, `header`.
    ///
    /// ```
    /// use mesh_route::config::{TelemetryCustomTag, TracingEnvironment, TracingLiteral};
    ///
    /// let both = TelemetryCustomTag {
    ///     literal: Some(TracingLiteral { value: "x".into() }),
    ///     environment: Some(TracingEnvironment { name: "POD".into(), default_value: None }),
    ///     header: None,
    /// };
    /// assert_eq!(both.kinds_set(), ["literal", "environment"]); // validation rejects two sources
    /// ```
    pub fn kinds_set(&self) -> Vec<&'static str> {
        [
            ("literal", self.literal.is_some()),
            ("environment", self.environment.is_some()),
            ("header", self.header.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

/// Istio `Tracing.Literal`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: telemetry.istio.io/v1
/// # kind: Telemetry
/// # metadata: {name: mesh-default, namespace: istio-system}
/// # spec:
/// #   tracing:
/// #   - match: {mode: SERVER}
/// #     providers: [{name: zipkin}]
/// #     randomSamplingPercentage: 5
/// #     customTags:
/// #       team: {literal: {value: shop}}
/// #       pod: {environment: {name: POD_NAME, defaultValue: unknown}}
/// #       user: {header: {name: x-user}}
/// #   metrics:
/// #   - providers: [{name: prometheus}]
/// #     overrides:
/// #     - match: {metric: REQUEST_COUNT, mode: CLIENT}
/// #       tagOverrides: {request_protocol: {operation: REMOVE}}
/// #   accessLogging:
/// #   - providers: [{name: envoy}]
/// #     filter: {expression: "response.code >= 400"}
/// # ---
/// # apiVersion: mesh/v1
/// # kind: MeshConfig
/// # metadata: {name: mesh}
/// # spec: {extensionProviders: [{name: zipkin, zipkin: {service: zipkin, port: 9411}}]}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let telemetry = &config.telemetries[0].spec;
/// assert_eq!(telemetry.tracing[0].custom_tags["team"].literal.as_ref().unwrap().value, "shop");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TracingLiteral {
    /// The value.
    #[serde(default)]
    pub value: String,
}

/// Istio `Tracing.Environment`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: telemetry.istio.io/v1
/// # kind: Telemetry
/// # metadata: {name: mesh-default, namespace: istio-system}
/// # spec:
/// #   tracing:
/// #   - match: {mode: SERVER}
/// #     providers: [{name: zipkin}]
/// #     randomSamplingPercentage: 5
/// #     customTags:
/// #       team: {literal: {value: shop}}
/// #       pod: {environment: {name: POD_NAME, defaultValue: unknown}}
/// #       user: {header: {name: x-user}}
/// #   metrics:
/// #   - providers: [{name: prometheus}]
/// #     overrides:
/// #     - match: {metric: REQUEST_COUNT, mode: CLIENT}
/// #       tagOverrides: {request_protocol: {operation: REMOVE}}
/// #   accessLogging:
/// #   - providers: [{name: envoy}]
/// #     filter: {expression: "response.code >= 400"}
/// # ---
/// # apiVersion: mesh/v1
/// # kind: MeshConfig
/// # metadata: {name: mesh}
/// # spec: {extensionProviders: [{name: zipkin, zipkin: {service: zipkin, port: 9411}}]}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let telemetry = &config.telemetries[0].spec;
/// let pod = telemetry.tracing[0].custom_tags["pod"].environment.as_ref().unwrap();
/// assert_eq!((pod.name.as_str(), pod.default_value.as_deref()), ("POD_NAME", Some("unknown")));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TracingEnvironment {
    /// Variable name (required).
    #[serde(default)]
    pub name: String,
    /// Value when the variable is unset (no tag when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_value: Option<String>,
}

/// Istio `Tracing.RequestHeader`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: telemetry.istio.io/v1
/// # kind: Telemetry
/// # metadata: {name: mesh-default, namespace: istio-system}
/// # spec:
/// #   tracing:
/// #   - match: {mode: SERVER}
/// #     providers: [{name: zipkin}]
/// #     randomSamplingPercentage: 5
/// #     customTags:
/// #       team: {literal: {value: shop}}
/// #       pod: {environment: {name: POD_NAME, defaultValue: unknown}}
/// #       user: {header: {name: x-user}}
/// #   metrics:
/// #   - providers: [{name: prometheus}]
/// #     overrides:
/// #     - match: {metric: REQUEST_COUNT, mode: CLIENT}
/// #       tagOverrides: {request_protocol: {operation: REMOVE}}
/// #   accessLogging:
/// #   - providers: [{name: envoy}]
/// #     filter: {expression: "response.code >= 400"}
/// # ---
/// # apiVersion: mesh/v1
/// # kind: MeshConfig
/// # metadata: {name: mesh}
/// # spec: {extensionProviders: [{name: zipkin, zipkin: {service: zipkin, port: 9411}}]}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let telemetry = &config.telemetries[0].spec;
/// let user = telemetry.tracing[0].custom_tags["user"].header.as_ref().unwrap();
/// assert_eq!((user.name.as_str(), user.default_value.as_deref()), ("x-user", None));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TracingRequestHeader {
    /// Header name (required).
    #[serde(default)]
    pub name: String,
    /// Value when the header is missing (no tag when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_value: Option<String>,
}

/// Istio `ProviderRef`: a provider of the mesh config's `extensionProviders`, by name. The
/// tracing provider of a mesh-wide Telemetry is applied (loading fails on a name no provider
/// has); metrics and access-logging providers are parsed, not enforced yet: loading warns.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// # apiVersion: telemetry.istio.io/v1
/// # kind: Telemetry
/// # metadata: {name: mesh-default, namespace: istio-system}
/// spec:
///   metrics:
///   - providers: [{name: prometheus}]
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let telemetry = &loaded.config.telemetries[0].spec;
/// assert_eq!(telemetry.metrics[0].providers[0].name, "prometheus");
/// assert!(loaded.warnings.iter().any(|w| w.message == "providers: parsed, not enforced yet"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderRef {
    /// Provider name.
    pub name: String,
}

/// Istio `WorkloadMode`: which side of the traffic telemetry settings apply to.
///
/// ```
/// use mesh_route::config::{Config, WorkloadMode};
///
/// assert_eq!(WorkloadMode::default(), WorkloadMode::ClientAndServer);
/// # let yaml = r#"
/// # apiVersion: telemetry.istio.io/v1
/// # kind: Telemetry
/// # metadata: {name: mesh-default, namespace: istio-system}
/// # spec:
/// #   tracing:
/// #   - match: {mode: SERVER}
/// #     providers: [{name: zipkin}]
/// #     randomSamplingPercentage: 5
/// #     customTags:
/// #       team: {literal: {value: shop}}
/// #       pod: {environment: {name: POD_NAME, defaultValue: unknown}}
/// #       user: {header: {name: x-user}}
/// #   metrics:
/// #   - providers: [{name: prometheus}]
/// #     overrides:
/// #     - match: {metric: REQUEST_COUNT, mode: CLIENT}
/// #       tagOverrides: {request_protocol: {operation: REMOVE}}
/// #   accessLogging:
/// #   - providers: [{name: envoy}]
/// #     filter: {expression: "response.code >= 400"}
/// # ---
/// # apiVersion: mesh/v1
/// # kind: MeshConfig
/// # metadata: {name: mesh}
/// # spec: {extensionProviders: [{name: zipkin, zipkin: {service: zipkin, port: 9411}}]}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let telemetry = &config.telemetries[0].spec;
/// let selector = telemetry.metrics[0].overrides[0].match_.as_ref().unwrap();
/// assert_eq!(selector.mode, Some(WorkloadMode::Client));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkloadMode {
    /// Both sides (the default).
    #[default]
    ClientAndServer,
    /// Outbound traffic only.
    Client,
    /// Inbound traffic only.
    Server,
}

/// Istio `Metrics`. Parsed, not enforced yet: loading warns about each of `providers`,
/// `overrides` and `reportingInterval` that is set.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// # apiVersion: telemetry.istio.io/v1
/// # kind: Telemetry
/// # metadata: {name: mesh-default, namespace: istio-system}
/// spec:
///   metrics:
///   - reportingInterval: 15s
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let telemetry = &loaded.config.telemetries[0].spec;
/// let metrics = &telemetry.metrics[0];
/// assert_eq!(metrics.reporting_interval.unwrap().get().as_secs(), 15);
/// assert!(loaded.warnings.iter().any(|w| w.message == "reportingInterval: parsed, not enforced yet"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metrics {
    /// Metrics providers (e.g. `prometheus`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// Changes to the generated metrics, applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<MetricsOverrides>,
    /// How often metrics are reported (push-based providers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporting_interval: Option<Duration>,
}

/// Istio `MetricsOverrides`. Parsed, not enforced yet: loading warns.
///
/// ```
/// use mesh_route::config::{Config, TagOperation};
///
/// let yaml = r#"
/// # apiVersion: telemetry.istio.io/v1
/// # kind: Telemetry
/// # metadata: {name: mesh-default, namespace: istio-system}
/// spec:
///   metrics:
///   - overrides:
///     - match: {metric: REQUEST_COUNT, mode: CLIENT}
///       tagOverrides: {request_protocol: {operation: REMOVE}}
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let telemetry = &loaded.config.telemetries[0].spec;
/// let over = &telemetry.metrics[0].overrides[0];
/// assert_eq!(over.disabled, None);
/// assert_eq!(over.tag_overrides["request_protocol"].operation, Some(TagOperation::Remove));
/// assert!(loaded.warnings.iter().any(|w| w.message == "tagOverrides: parsed, not enforced yet"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsOverrides {
    /// The metrics the override applies to (default: all, both sides).
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<MetricSelector>,
    /// Do not generate the matched metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Tags (dimensions) to add, change or remove, by tag name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tag_overrides: BTreeMap<String, TagOverride>,
}

/// Istio `MetricSelector`: at most one of `metric` and `customMetric`. Parsed, not enforced
/// yet: loading warns.
///
/// ```
/// use mesh_route::config::{Config, IstioMetric};
///
/// let yaml = r#"
/// # apiVersion: telemetry.istio.io/v1
/// # kind: Telemetry
/// # metadata: {name: mesh-default, namespace: istio-system}
/// spec:
///   metrics:
///   - overrides: [{match: {metric: REQUEST_COUNT}}]
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let telemetry = &loaded.config.telemetries[0].spec;
/// let selector = telemetry.metrics[0].overrides[0].match_.as_ref().unwrap();
/// assert_eq!((selector.metric, selector.custom_metric.as_deref()), (Some(IstioMetric::RequestCount), None));
/// assert!(loaded.warnings.iter().any(|w| w.message == "metric: parsed, not enforced yet"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricSelector {
    /// One of Istio's standard metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<IstioMetric>,
    /// A metric by name (`istio_` prefix removed), for metrics Istio does not list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_metric: Option<String>,
    /// Client side, server side or both (default `CLIENT_AND_SERVER`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<WorkloadMode>,
}

/// Istio `MetricSelector.IstioMetric`.
///
/// ```
/// use mesh_route::config::{Config, IstioMetric};
///
/// assert_eq!(IstioMetric::default(), IstioMetric::AllMetrics);
/// # let yaml = r#"
/// # apiVersion: telemetry.istio.io/v1
/// # kind: Telemetry
/// # metadata: {name: mesh-default, namespace: istio-system}
/// # spec:
/// #   tracing:
/// #   - match: {mode: SERVER}
/// #     providers: [{name: zipkin}]
/// #     randomSamplingPercentage: 5
/// #     customTags:
/// #       team: {literal: {value: shop}}
/// #       pod: {environment: {name: POD_NAME, defaultValue: unknown}}
/// #       user: {header: {name: x-user}}
/// #   metrics:
/// #   - providers: [{name: prometheus}]
/// #     overrides:
/// #     - match: {metric: REQUEST_COUNT, mode: CLIENT}
/// #       tagOverrides: {request_protocol: {operation: REMOVE}}
/// #   accessLogging:
/// #   - providers: [{name: envoy}]
/// #     filter: {expression: "response.code >= 400"}
/// # ---
/// # apiVersion: mesh/v1
/// # kind: MeshConfig
/// # metadata: {name: mesh}
/// # spec: {extensionProviders: [{name: zipkin, zipkin: {service: zipkin, port: 9411}}]}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let telemetry = &config.telemetries[0].spec;
/// assert_eq!(telemetry.metrics[0].overrides[0].match_.as_ref().unwrap().metric, Some(IstioMetric::RequestCount));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IstioMetric {
    /// Every metric (the default).
    #[default]
    AllMetrics,
    /// `istio_requests_total`.
    RequestCount,
    /// `istio_request_duration_milliseconds`.
    RequestDuration,
    /// `istio_request_bytes`.
    RequestSize,
    /// `istio_response_bytes`.
    ResponseSize,
    /// `istio_tcp_connections_opened_total`.
    TcpOpenedConnections,
    /// `istio_tcp_connections_closed_total`.
    TcpClosedConnections,
    /// `istio_tcp_sent_bytes_total`.
    TcpSentBytes,
    /// `istio_tcp_received_bytes_total`.
    TcpReceivedBytes,
    /// `istio_request_messages_total` (gRPC).
    GrpcRequestMessages,
    /// `istio_response_messages_total` (gRPC).
    GrpcResponseMessages,
}

/// Istio `MetricsOverrides.TagOverride`. Parsed, not enforced yet: loading warns.
///
/// ```
/// use mesh_route::config::{Config, TagOperation};
///
/// let yaml = r#"
/// # apiVersion: telemetry.istio.io/v1
/// # kind: Telemetry
/// # metadata: {name: mesh-default, namespace: istio-system}
/// spec:
///   metrics:
///   - overrides: [{tagOverrides: {request_protocol: {operation: REMOVE}}}]
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let telemetry = &loaded.config.telemetries[0].spec;
/// let tag = &telemetry.metrics[0].overrides[0].tag_overrides["request_protocol"];
/// assert_eq!((tag.operation_or_default(), tag.value.as_deref()), (TagOperation::Remove, None));
/// assert!(loaded.warnings.iter().any(|w| w.message == "tagOverrides: parsed, not enforced yet"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TagOverride {
    /// Add/replace or remove the tag (default `UPSERT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<TagOperation>,
    /// The tag's value (a CEL expression); required for `UPSERT`, not allowed for `REMOVE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl TagOverride {
    /// The operation, with Istio's default (`UPSERT`) when unset.
    ///
    /// ```
    /// use mesh_route::config::{TagOperation, TagOverride};
    ///
    /// let tag = TagOverride { operation: None, value: Some("request.host".into()) };
    /// assert_eq!(tag.operation_or_default(), TagOperation::Upsert);
    /// ```
    pub fn operation_or_default(&self) -> TagOperation {
        self.operation.unwrap_or_default()
    }
}

/// Istio `MetricsOverrides.TagOverride.Operation`.
///
/// ```
/// use mesh_route::config::{Config, TagOperation};
///
/// assert_eq!(TagOperation::default(), TagOperation::Upsert);
/// # let yaml = r#"
/// # apiVersion: telemetry.istio.io/v1
/// # kind: Telemetry
/// # metadata: {name: mesh-default, namespace: istio-system}
/// # spec:
/// #   tracing:
/// #   - match: {mode: SERVER}
/// #     providers: [{name: zipkin}]
/// #     randomSamplingPercentage: 5
/// #     customTags:
/// #       team: {literal: {value: shop}}
/// #       pod: {environment: {name: POD_NAME, defaultValue: unknown}}
/// #       user: {header: {name: x-user}}
/// #   metrics:
/// #   - providers: [{name: prometheus}]
/// #     overrides:
/// #     - match: {metric: REQUEST_COUNT, mode: CLIENT}
/// #       tagOverrides: {request_protocol: {operation: REMOVE}}
/// #   accessLogging:
/// #   - providers: [{name: envoy}]
/// #     filter: {expression: "response.code >= 400"}
/// # ---
/// # apiVersion: mesh/v1
/// # kind: MeshConfig
/// # metadata: {name: mesh}
/// # spec: {extensionProviders: [{name: zipkin, zipkin: {service: zipkin, port: 9411}}]}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let telemetry = &config.telemetries[0].spec;
/// assert_eq!(telemetry.metrics[0].overrides[0].tag_overrides["request_protocol"].operation_or_default(), TagOperation::Remove);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TagOperation {
    /// Add the tag, or replace its value (the default).
    #[default]
    Upsert,
    /// Remove the tag.
    Remove,
}

/// Istio `AccessLogging`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: telemetry.istio.io/v1
/// # kind: Telemetry
/// # metadata: {name: mesh-default, namespace: istio-system}
/// # spec:
/// #   tracing:
/// #   - match: {mode: SERVER}
/// #     providers: [{name: zipkin}]
/// #     randomSamplingPercentage: 5
/// #     customTags:
/// #       team: {literal: {value: shop}}
/// #       pod: {environment: {name: POD_NAME, defaultValue: unknown}}
/// #       user: {header: {name: x-user}}
/// #   metrics:
/// #   - providers: [{name: prometheus}]
/// #     overrides:
/// #     - match: {metric: REQUEST_COUNT, mode: CLIENT}
/// #       tagOverrides: {request_protocol: {operation: REMOVE}}
/// #   accessLogging:
/// #   - providers: [{name: envoy}]
/// #     filter: {expression: "response.code >= 400"}
/// # ---
/// # apiVersion: mesh/v1
/// # kind: MeshConfig
/// # metadata: {name: mesh}
/// # spec: {extensionProviders: [{name: zipkin, zipkin: {service: zipkin, port: 9411}}]}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let telemetry = &config.telemetries[0].spec;
/// let logging = &telemetry.access_logging[0];
/// assert_eq!(logging.providers[0].name, "envoy");
/// assert_eq!(logging.disabled, None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessLogging {
    /// Which traffic the settings apply to (default: client and server).
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<LogSelector>,
    /// Access-log providers (from the mesh config's `extensionProviders`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// Turn access logging off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Log only the requests this filter selects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<AccessLogFilter>,
}

/// Istio `AccessLogging.LogSelector`.
///
/// ```
/// use mesh_route::config::{Config, WorkloadMode};
///
/// let yaml = "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: t, namespace: shop}\nspec: {accessLogging: [{match: {mode: SERVER}, disabled: true}]}\n";
/// let telemetry = &Config::from_yaml_str(yaml).unwrap().config.telemetries[0].spec;
/// assert_eq!(telemetry.access_logging[0].match_.as_ref().unwrap().mode, Some(WorkloadMode::Server));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogSelector {
    /// Client side, server side or both (default `CLIENT_AND_SERVER`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<WorkloadMode>,
}

/// Istio `AccessLogging.Filter`. Parsed, not enforced yet: loading warns.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// # apiVersion: telemetry.istio.io/v1
/// # kind: Telemetry
/// # metadata: {name: mesh-default, namespace: istio-system}
/// spec:
///   accessLogging:
///   - filter: {expression: "response.code >= 400"}
/// "#;
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let telemetry = &loaded.config.telemetries[0].spec;
/// assert_eq!(telemetry.access_logging[0].filter.as_ref().unwrap().expression, "response.code >= 400");
/// assert!(loaded.warnings.iter().any(|w| w.message == "filter: parsed, not enforced yet"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessLogFilter {
    /// CEL expression selecting the requests to log (e.g. `response.code >= 400`).
    #[serde(default)]
    pub expression: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_tag_kinds() {
        let tag = TelemetryCustomTag {
            literal: Some(TracingLiteral { value: "x".into() }),
            header: Some(TracingRequestHeader::default()),
            ..TelemetryCustomTag::default()
        };
        assert_eq!(tag.kinds_set(), ["literal", "header"]);
        assert!(TelemetryCustomTag::default().kinds_set().is_empty());
    }

    #[test]
    fn enums_use_istio_names() {
        let metric: IstioMetric =
            serde_json::from_value(serde_json::json!("TCP_OPENED_CONNECTIONS")).unwrap_or_default();
        assert_eq!(metric, IstioMetric::TcpOpenedConnections);
        let mode: WorkloadMode =
            serde_json::from_value(serde_json::json!("SERVER")).unwrap_or_default();
        assert_eq!(mode, WorkloadMode::Server);
        assert_eq!(
            TagOverride::default().operation_or_default(),
            TagOperation::Upsert
        );
    }
}
