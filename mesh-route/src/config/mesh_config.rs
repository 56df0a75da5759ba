//! Mesh-wide settings shaped like Istio's `MeshConfig` (`mesh/v1alpha1/config.proto`),
//! read from a `mesh/v1 MeshConfig` document or the `spec.meshConfig` of an
//! `install.istio.io/v1alpha1 IstioOperator`.
//!
//! The fields this project uses are typed. Every other field Istio's MeshConfig,
//! ProxyConfig or ProxyConfig.Tracing defines is accepted into `other` (so files written
//! for istioctl load unchanged) and reported as "not supported; ignored"; names Istio does
//! not define are errors with a "did you mean" suggestion.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::duration::Duration;
use super::extension_provider::{DefaultProviders, ExtensionProvider};
use super::sidecar::OutboundMode;
use super::telemetry::ProviderRef;
use super::virtual_service::HttpRetry;

/// Istio `MeshConfig` (the parts this project reads; see the module docs).
///
/// ```
/// use mesh_route::config::{AccessLogEncoding, Config};
///
/// let yaml = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  {accessLogFile: /dev/stdout, accessLogEncoding: JSON}\n";
/// let mesh = Config::from_yaml_str(yaml).unwrap().config.mesh;
/// assert_eq!(mesh.access_log_file.as_deref(), Some("/dev/stdout"));
/// assert_eq!(mesh.access_log_encoding, Some(AccessLogEncoding::Json));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshConfig {
    /// What happens to traffic for hosts not in the registry (default `ALLOW_ANY`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<MeshOutboundTrafficPolicy>,
    /// Proxy defaults (tracing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_config: Option<ProxyConfig>,
    /// Access log destination (`/dev/stdout`); empty disables access logging.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log_file: Option<String>,
    /// Access log encoding (default `TEXT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log_encoding: Option<AccessLogEncoding>,
    /// Access log format (default: Istio's format).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log_format: Option<String>,
    /// SPIFFE trust domain (default `cluster.local`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    /// The namespace whose policies apply mesh-wide (default `istio-system`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_namespace: Option<String>,
    /// Upstream connect timeout (Istio default 10s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// Retry policy for routes without `retries`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_http_retry_policy: Option<HttpRetry>,
    /// Named telemetry backends (the Zipkin tracing one is applied).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension_providers: Vec<ExtensionProvider>,
    /// The backends used where a Telemetry names none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_providers: Option<DefaultProviders>,
    /// `false` turns tracing off: no trace header is read or written, no span is reported;
    /// `x-request-id` is still made (default `true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_tracing: Option<bool>,
    /// Other Istio MeshConfig fields, accepted and ignored.
    #[serde(flatten, skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl MeshConfig {
    /// Overlays `later` on `self`: every field `later` sets replaces the current value
    /// (`defaultConfig` is merged the same way, one level down).
    ///
    /// ```
    /// use mesh_route::config::MeshConfig;
    ///
    /// let mut mesh = MeshConfig {
    ///     trust_domain: Some("example.org".into()),
    ///     root_namespace: Some("istio-system".into()),
    ///     ..Default::default()
    /// };
    /// let later = MeshConfig { root_namespace: Some("mesh-root".into()), ..Default::default() };
    /// mesh.merge(later);
    /// assert_eq!(mesh.root_namespace(), "mesh-root"); // set in `later`: replaced
    /// assert_eq!(mesh.trust_domain.as_deref(), Some("example.org")); // unset in `later`: kept
    /// ```
    pub fn merge(&mut self, later: MeshConfig) {
        fn take<T>(slot: &mut Option<T>, value: Option<T>) {
            if value.is_some() {
                *slot = value;
            }
        }
        take(
            &mut self.outbound_traffic_policy,
            later.outbound_traffic_policy,
        );
        match (&mut self.default_config, later.default_config) {
            (Some(current), Some(later)) => current.merge(later),
            (slot, later) => take(slot, later),
        }
        take(&mut self.access_log_file, later.access_log_file);
        take(&mut self.access_log_encoding, later.access_log_encoding);
        take(&mut self.access_log_format, later.access_log_format);
        take(&mut self.trust_domain, later.trust_domain);
        take(&mut self.root_namespace, later.root_namespace);
        take(&mut self.connect_timeout, later.connect_timeout);
        take(
            &mut self.default_http_retry_policy,
            later.default_http_retry_policy,
        );
        if !later.extension_providers.is_empty() {
            self.extension_providers = later.extension_providers;
        }
        take(&mut self.default_providers, later.default_providers);
        take(&mut self.enable_tracing, later.enable_tracing);
        self.other.extend(later.other);
    }

    /// The mesh-wide outbound mode, if set.
    ///
    /// ```
    /// use mesh_route::config::{Config, MeshConfig, OutboundMode};
    ///
    /// let yaml = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n";
    /// let mesh = Config::from_yaml_str(yaml).unwrap().config.mesh;
    /// assert_eq!(mesh.outbound_mode(), Some(OutboundMode::RegistryOnly));
    /// assert_eq!(MeshConfig::default().outbound_mode(), None);
    /// ```
    pub fn outbound_mode(&self) -> Option<OutboundMode> {
        self.outbound_traffic_policy.as_ref().and_then(|p| p.mode)
    }

    /// The tracing provider in force: the one `named` by a Telemetry, else the first of
    /// `defaultProviders.tracing`; `None` when neither names one (or the name is not among
    /// `extensionProviders`, which loading reports as an error).
    ///
    /// ```
    /// use mesh_route::config::{Config, telemetry::ProviderRef};
    ///
    /// let yaml = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  extensionProviders:\n  - {name: zipkin, zipkin: {service: zipkin, port: 9411}}\n  - {name: local, zipkin: {service: localhost, port: 9411}}\n  defaultProviders: {tracing: [zipkin]}\n";
    /// let mesh = Config::from_yaml_str(yaml).unwrap().config.mesh;
    /// assert_eq!(mesh.tracing_provider(&[]).unwrap().name, "zipkin");
    /// let local = [ProviderRef { name: "local".into() }];
    /// assert_eq!(mesh.tracing_provider(&local).unwrap().name, "local");
    /// ```
    pub fn tracing_provider(&self, named: &[ProviderRef]) -> Option<&ExtensionProvider> {
        let name = match named.first() {
            Some(provider) => &provider.name,
            None => self.default_providers.as_ref()?.tracing.first()?,
        };
        self.extension_providers.iter().find(|p| p.name == *name)
    }

    /// The namespace whose security policies apply mesh-wide: `rootNamespace`, else
    /// `istio-system`.
    ///
    /// ```
    /// use mesh_route::config::MeshConfig;
    /// assert_eq!(MeshConfig::default().root_namespace(), "istio-system");
    /// ```
    pub fn root_namespace(&self) -> &str {
        self.root_namespace
            .as_deref()
            .unwrap_or(super::peer_authentication::DEFAULT_ROOT_NAMESPACE)
    }
}

/// Istio `MeshConfig.OutboundTrafficPolicy`.
///
/// ```
/// use mesh_route::config::{Config, OutboundMode};
///
/// let yaml = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  outboundTrafficPolicy: {mode: ALLOW_ANY}\n";
/// let policy = Config::from_yaml_str(yaml).unwrap().config.mesh.outbound_traffic_policy.unwrap();
/// assert_eq!(policy.mode, Some(OutboundMode::AllowAny));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshOutboundTrafficPolicy {
    /// `ALLOW_ANY`, `REGISTRY_ONLY` or `ALLOW_ANY_DYNAMIC_DNS`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<OutboundMode>,
}

/// Istio `MeshConfig.AccessLogEncoding`.
///
/// ```
/// use mesh_route::config::{AccessLogEncoding, Config};
///
/// assert_eq!(AccessLogEncoding::default(), AccessLogEncoding::Text);
/// let yaml = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  accessLogEncoding: JSON\n";
/// let mesh = Config::from_yaml_str(yaml).unwrap().config.mesh;
/// assert_eq!(mesh.access_log_encoding, Some(AccessLogEncoding::Json));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessLogEncoding {
    /// One text line per request.
    #[default]
    Text,
    /// One JSON object per request.
    Json,
}

/// The `proxyMetadata` key whose `"true"` turns the mirror's `-shadow` host suffix off (Istio's
/// switch of the same name).
///
/// ```
/// use mesh_route::config::{Config, mesh_config::DISABLE_SHADOW_HOST_SUFFIX};
///
/// let yaml = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  defaultConfig: {proxyMetadata: {DISABLE_SHADOW_HOST_SUFFIX: \"true\"}}\n";
/// let proxy = Config::from_yaml_str(yaml).unwrap().config.mesh.default_config.unwrap();
/// assert_eq!(proxy.proxy_metadata[DISABLE_SHADOW_HOST_SUFFIX], "true");
/// ```
pub const DISABLE_SHADOW_HOST_SUFFIX: &str = "DISABLE_SHADOW_HOST_SUFFIX";

/// Istio's default `terminationDrainDuration`.
///
/// ```
/// use mesh_route::config::{MeshConfig, mesh_config::DEFAULT_TERMINATION_DRAIN_DURATION};
///
/// assert_eq!(MeshConfig::default().termination_drain_duration(), DEFAULT_TERMINATION_DRAIN_DURATION);
/// ```
pub const DEFAULT_TERMINATION_DRAIN_DURATION: std::time::Duration =
    std::time::Duration::from_secs(5);

impl MeshConfig {
    /// How long open connections get to finish when the proxy stops:
    /// `defaultConfig.terminationDrainDuration`, else Istio's 5 s.
    ///
    /// ```
    /// use mesh_route::config::MeshConfig;
    /// assert_eq!(MeshConfig::default().termination_drain_duration().as_secs(), 5);
    /// ```
    pub fn termination_drain_duration(&self) -> std::time::Duration {
        self.default_config
            .as_ref()
            .and_then(|c| c.termination_drain_duration.as_ref())
            .map_or(DEFAULT_TERMINATION_DRAIN_DURATION, Duration::get)
    }
}

/// Istio `ProxyConfig` (`meshConfig.defaultConfig`).
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  defaultConfig: {terminationDrainDuration: 20s}\n";
/// let mesh = Config::from_yaml_str(yaml).unwrap().config.mesh;
/// assert_eq!(mesh.termination_drain_duration(), std::time::Duration::from_secs(20));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyConfig {
    /// Tracing settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Tracing>,
    /// Proxy environment settings; `DISABLE_SHADOW_HOST_SUFFIX` (`"true"` turns the mirror's
    /// `-shadow` host suffix off) is the one read here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub proxy_metadata: BTreeMap<String, String>,
    /// How long open connections get to finish after the proxy is told to stop (Istio's
    /// default: 5 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_drain_duration: Option<Duration>,
    /// Other Istio ProxyConfig fields, accepted and ignored.
    #[serde(flatten, skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl ProxyConfig {
    /// Overlays `later` on `self` (see [`MeshConfig::merge`]).
    ///
    /// ```
    /// use mesh_route::config::{Duration, ProxyConfig};
    ///
    /// let mut proxy = ProxyConfig::default();
    /// proxy.proxy_metadata.insert("A".into(), "1".into());
    /// let mut later = ProxyConfig { termination_drain_duration: Some(Duration::parse("9s").unwrap()), ..Default::default() };
    /// later.proxy_metadata.insert("B".into(), "2".into());
    /// proxy.merge(later);
    /// assert_eq!(proxy.proxy_metadata.len(), 2); // metadata maps are joined
    /// assert_eq!(proxy.termination_drain_duration.unwrap().get().as_secs(), 9);
    /// ```
    pub fn merge(&mut self, later: ProxyConfig) {
        if later.tracing.is_some() {
            self.tracing = later.tracing;
        }
        if later.termination_drain_duration.is_some() {
            self.termination_drain_duration = later.termination_drain_duration;
        }
        self.proxy_metadata.extend(later.proxy_metadata);
        self.other.extend(later.other);
    }
}

/// Istio `Tracing` (`meshConfig.defaultConfig.tracing`).
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  defaultConfig: {tracing: {sampling: 25, maxPathTagLength: 64}}\n";
/// let tracing = Config::from_yaml_str(yaml).unwrap().config.mesh.default_config.unwrap().tracing.unwrap();
/// assert_eq!(tracing.sampling, Some(25.0));
/// assert_eq!(tracing.max_path_tag_length, Some(64));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tracing {
    /// Percentage of requests sampled, 0–100 (Istio default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampling: Option<f64>,
    /// Zipkin collector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zipkin: Option<ZipkinTracing>,
    /// Tags added to every span.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_tags: BTreeMap<String, CustomTag>,
    /// Longest `http.url` tag (default 256).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_path_tag_length: Option<u32>,
    /// Other Istio Tracing fields (other tracers), accepted and ignored.
    #[serde(flatten, skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// Istio `Tracing.Zipkin`.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  defaultConfig: {tracing: {zipkin: {address: \"zipkin:9411\"}}}\n";
/// let tracing = Config::from_yaml_str(yaml).unwrap().config.mesh.default_config.unwrap().tracing.unwrap();
/// assert_eq!(tracing.zipkin.unwrap().address, "zipkin:9411");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ZipkinTracing {
    /// Collector `host:port`.
    pub address: String,
}

/// Istio `Tracing.CustomTag`: where a span tag's value comes from.
///
/// ```
/// use mesh_route::config::{Config, CustomTag};
///
/// let yaml = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  defaultConfig: {tracing: {customTags: {team: {literal: {value: shop}}}}}\n";
/// let tracing = Config::from_yaml_str(yaml).unwrap().config.mesh.default_config.unwrap().tracing.unwrap();
/// assert_eq!(tracing.custom_tags["team"], CustomTag::Literal { value: "shop".into() });
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum CustomTag {
    /// A fixed value.
    Literal {
        /// The value.
        value: String,
    },
    /// An environment variable of the proxy.
    Environment {
        /// Variable name.
        name: String,
        /// Value when the variable is unset (no tag when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default_value: Option<String>,
    },
    /// A request header.
    Header {
        /// Header name.
        name: String,
        /// Value when the header is missing (no tag when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default_value: Option<String>,
    },
}

/// Every field of Istio's `MeshConfig` (current and deprecated), camelCase.
///
/// ```
/// use mesh_route::config::{Config, mesh_config::MESH_CONFIG_FIELDS};
///
/// assert!(MESH_CONFIG_FIELDS.contains(&"enablePrometheusMerge"));
/// // A field Istio defines but this project does not read loads, with a warning.
/// let yaml = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  enablePrometheusMerge: true\n";
/// assert!(!Config::from_yaml_str(yaml).unwrap().warnings.is_empty());
/// ```
pub const MESH_CONFIG_FIELDS: &[&str] = &[
    "accessLogEncoding",
    "accessLogFile",
    "accessLogFormat",
    "ambientMesh",
    "authPolicy",
    "ca",
    "caCertificates",
    "certificates",
    "configSources",
    "connectTimeout",
    "defaultConfig",
    "defaultDestinationRuleExportTo",
    "defaultHttpRetryPolicy",
    "defaultProviders",
    "defaultServiceExportTo",
    "defaultTrafficPolicy",
    "defaultVirtualServiceExportTo",
    "disableEnvoyListenerLog",
    "disableMixerHttpReports",
    "disablePolicyChecks",
    "disableReportBatch",
    "discoverySelectors",
    "dnsRefreshRate",
    "enableAutoMtls",
    "enableClientSidePolicyCheck",
    "enableEnvoyAccessLogService",
    "enablePrometheusMerge",
    "enableSdsTokenMount",
    "enableTracing",
    "extensionProviders",
    "fileFlushInterval",
    "fileFlushMinSizeKb",
    "h2UpgradePolicy",
    "inboundClusterStatName",
    "inboundTrafficPolicy",
    "ingressClass",
    "ingressControllerMode",
    "ingressSelector",
    "ingressService",
    "localityLbSetting",
    "meshMTLS",
    "mixerAddress",
    "mixerCheckServer",
    "mixerReportServer",
    "outboundClusterStatName",
    "outboundTrafficPolicy",
    "pathNormalization",
    "policyCheckFailOpen",
    "protocolDetectionTimeout",
    "proxyHttpPort",
    "proxyInboundListenPort",
    "proxyListenPort",
    "rdsRefreshDelay",
    "reportBatchMaxEntries",
    "reportBatchMaxTime",
    "rootNamespace",
    "sdsRefreshDelay",
    "sdsUdsPath",
    "sdsUseK8sSaJwt",
    "serviceScopeConfigs",
    "serviceSettings",
    "sidecarToTelemetrySessionAffinity",
    "tcpKeepalive",
    "thriftConfig",
    "tlsDefaults",
    "trustDomain",
    "trustDomainAliases",
    "verifyCertificateAtClient",
    "zoneAwareLbSetting",
];

/// Every field of Istio's `ProxyConfig` (current and deprecated), camelCase.
///
/// ```
/// use mesh_route::config::{Config, mesh_config::PROXY_CONFIG_FIELDS};
///
/// assert!(PROXY_CONFIG_FIELDS.contains(&"concurrency"));
/// let yaml = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  defaultConfig: {concurrency: 2}\n";
/// let proxy = Config::from_yaml_str(yaml).unwrap().config.mesh.default_config.unwrap();
/// assert_eq!(proxy.other["concurrency"], 2);
/// ```
pub const PROXY_CONFIG_FIELDS: &[&str] = &[
    "availabilityZone",
    "binaryPath",
    "caCertificatesPem",
    "clusterName",
    "concurrency",
    "configPath",
    "connectionSettings",
    "controlPlaneAuthPolicy",
    "customConfigFile",
    "discoveryAddress",
    "discoveryRefreshDelay",
    "drainDuration",
    "envoyAccessLogService",
    "envoyMetricsService",
    "envoyMetricsServiceAddress",
    "extraStatTags",
    "fileFlushInterval",
    "fileFlushMinSizeKb",
    "gatewayTopology",
    "holdApplicationUntilProxyStarts",
    "image",
    "interceptionMode",
    "meshId",
    "parentShutdownDuration",
    "privateKeyProvider",
    "proxyAdminPort",
    "proxyBootstrapTemplatePath",
    "proxyHeaders",
    "proxyMetadata",
    "proxyStatsMatcher",
    "readinessProbe",
    "runtimeValues",
    "sds",
    "serviceCluster",
    "statNameLength",
    "statsdUdpAddress",
    "statusPort",
    "terminationDrainDuration",
    "tracing",
    "tracingServiceName",
    "zipkinAddress",
];

/// Every field of Istio's `Tracing` (in ProxyConfig), camelCase.
///
/// ```
/// use mesh_route::config::{Config, mesh_config::TRACING_FIELDS};
///
/// assert!(TRACING_FIELDS.contains(&"maxPathTagLength"));
/// // A name no Istio version defines is an error.
/// let yaml = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  defaultConfig: {tracing: {samplingRate: 5}}\n";
/// assert!(Config::from_yaml_str(yaml).is_err());
/// ```
pub const TRACING_FIELDS: &[&str] = &[
    "customTags",
    "datadog",
    "enableIstioTags",
    "lightstep",
    "maxPathTagLength",
    "openCensusAgent",
    "sampling",
    "stackdriver",
    "tlsSettings",
    "zipkin",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_overlays_set_fields() {
        let mut base = MeshConfig {
            trust_domain: Some("a".into()),
            access_log_file: Some("/dev/stdout".into()),
            ..MeshConfig::default()
        };
        base.merge(MeshConfig {
            trust_domain: Some("b".into()),
            outbound_traffic_policy: Some(MeshOutboundTrafficPolicy {
                mode: Some(OutboundMode::RegistryOnly),
            }),
            ..MeshConfig::default()
        });
        assert_eq!(base.trust_domain.as_deref(), Some("b"));
        assert_eq!(base.access_log_file.as_deref(), Some("/dev/stdout"));
        assert_eq!(base.outbound_mode(), Some(OutboundMode::RegistryOnly));
    }

    #[test]
    fn custom_tags_deserialize() {
        let tags: BTreeMap<String, CustomTag> = serde_json::from_value(serde_json::json!({
            "a": {"literal": {"value": "x"}},
            "b": {"environment": {"name": "POD", "defaultValue": "none"}},
            "c": {"header": {"name": "x-user"}},
        }))
        .unwrap_or_default();
        assert_eq!(tags.len(), 3);
        assert_eq!(
            tags.get("b"),
            Some(&CustomTag::Environment {
                name: "POD".into(),
                default_value: Some("none".into())
            })
        );
    }

    #[test]
    fn field_lists_are_sorted_and_cover_typed_fields() {
        for list in [MESH_CONFIG_FIELDS, PROXY_CONFIG_FIELDS, TRACING_FIELDS] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{list:?}");
        }
        for typed in [
            "outboundTrafficPolicy",
            "defaultConfig",
            "accessLogFile",
            "trustDomain",
        ] {
            assert!(MESH_CONFIG_FIELDS.contains(&typed));
        }
    }
}
