//! [`TraceSettings`]: the tracing the configuration asks for, for one side of the proxy
//! (`Client`: outbound, `Server`: inbound), resolved with Istio's precedence — the Telemetry
//! `tracing` entry for that side of the proxy's workload, else of its namespace, else the
//! mesh-wide one ([`Config::tracing_for`]), over
//! `meshConfig.defaultConfig.tracing` over Istio's defaults (1 % sampling, no custom tags,
//! 256-character `http.url`).
//!
//! - sampling: Telemetry `randomSamplingPercentage`, else `defaultConfig.tracing.sampling`,
//!   else 1;
//! - custom tags: Telemetry `customTags` when it sets any (they replace the inherited ones),
//!   else `defaultConfig.tracing.customTags`; environment tags are read once, here;
//! - the tracing provider: the Telemetry's `providers`, else `defaultProviders.tracing`, names
//!   one of `extensionProviders`; a Zipkin one sets where spans go (`service`, `port`, `path`),
//!   the headers written upstream (`traceContextOption`: B3 only by default, or B3 and W3C) and
//!   the `http.url` tag's length (`maxTagLength`);
//! - without one, spans go to `defaultConfig.tracing.zipkin.address`, and both B3 and W3C
//!   headers are written; without an address, trace headers still propagate;
//! - no export under Telemetry `disableSpanReporting`;
//! - no tracing at all under MeshConfig `enableTracing: false` (trace headers pass untouched;
//!   `x-request-id` is still made);
//! - Istio's workload tags unless Telemetry `enableIstioTags: false`.

use mesh_route::{
    config::{Config, CustomTag as MeshCustomTag, TelemetryCustomTag, WorkloadMode},
    table::SourceWorkload,
};
use mesh_trace::{
    Propagation, Sampler,
    custom_tags::{CustomTag, TagSource},
    span_layer::MAX_PATH_TAG_LENGTH,
};

/// Istio's default sampling percentage.
///
/// ```
/// use mesh_proxy::trace_settings::{DEFAULT_SAMPLING, TraceSettings};
/// use mesh_route::{config::{Config, WorkloadMode}, table::SourceWorkload};
/// let settings = TraceSettings::from_config(&Config::default(), WorkloadMode::Client, &SourceWorkload::default(), |_| None);
/// assert_eq!(settings.sampling, DEFAULT_SAMPLING);
/// assert_eq!(DEFAULT_SAMPLING, 1.0);
/// ```
pub const DEFAULT_SAMPLING: f64 = 1.0;

/// Resolved tracing settings; see the [module docs](self).
///
/// ```
/// use mesh_proxy::trace_settings::TraceSettings;
/// use mesh_route::{config::{Config, WorkloadMode}, table::SourceWorkload};
/// let settings = TraceSettings::from_config(&Config::default(), WorkloadMode::Server, &SourceWorkload::default(), |_| None);
/// assert!(settings.zipkin.is_none(), "no collector: headers propagate, no span is exported");
/// assert!(settings.custom_tags.is_empty() && settings.istio_tags);
/// assert_eq!(settings.max_path_tag_length, 256);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TraceSettings {
    /// Percentage of requests sampled when the caller did not decide.
    pub sampling: f64,
    /// Tags added to every span.
    pub custom_tags: Vec<CustomTag>,
    /// Zipkin collector (`host:port`, or the URL of a provider's), when spans are reported.
    pub zipkin: Option<String>,
    /// The trace headers written upstream.
    pub propagation: Propagation,
    /// `false` (MeshConfig `enableTracing: false`): no trace headers are read or written and
    /// nothing is exported.
    pub enabled: bool,
    /// `http.url` is cut to this many characters.
    pub max_path_tag_length: usize,
    /// Add Istio's workload tags.
    pub istio_tags: bool,
}

impl TraceSettings {
    /// The settings of `config` for `side` (`Client` or `Server`) of a proxy running as
    /// `workload`, reading environment tags through `env`.
    ///
    /// ```
    /// use mesh_proxy::trace_settings::TraceSettings;
    /// use mesh_route::{config::{Config, WorkloadMode}, table::SourceWorkload};
    /// let yaml = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  defaultConfig: {tracing: {sampling: 100, zipkin: {address: 127.0.0.1:9411}}}\n";
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let settings = TraceSettings::from_config(&config, WorkloadMode::Client, &SourceWorkload::default(), |_| None);
    /// assert_eq!(settings.sampling, 100.0);
    /// assert_eq!(settings.zipkin.as_deref(), Some("127.0.0.1:9411"));
    /// let default = TraceSettings::from_config(&Config::default(), WorkloadMode::Server, &SourceWorkload::default(), |_| None);
    /// assert_eq!(default.sampling, 1.0);
    /// ```
    pub fn from_config(
        config: &Config,
        side: WorkloadMode,
        workload: &SourceWorkload,
        env: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let mesh = config
            .mesh
            .default_config
            .as_ref()
            .and_then(|proxy| proxy.tracing.as_ref());
        let telemetry = config.tracing_for(side, workload);
        let sampling = telemetry
            .and_then(|t| t.random_sampling_percentage)
            .or(mesh.and_then(|m| m.sampling))
            .unwrap_or(DEFAULT_SAMPLING);
        let custom_tags = match telemetry.filter(|t| !t.custom_tags.is_empty()) {
            Some(telemetry) => telemetry
                .custom_tags
                .iter()
                .filter_map(|(name, tag)| telemetry_tag(name, tag, &env))
                .collect(),
            None => mesh
                .into_iter()
                .flat_map(|m| &m.custom_tags)
                .filter_map(|(name, tag)| mesh_tag(name, tag, &env))
                .collect(),
        };
        let reporting = telemetry.is_none_or(|t| t.disable_span_reporting != Some(true));
        let named = telemetry.map_or(&[][..], |t| &t.providers);
        let (zipkin, propagation, max_tag_length) = match config.mesh.tracing_provider(named) {
            // Another kind of provider exports nothing (loading warned).
            Some(provider) => match &provider.zipkin {
                Some(zipkin) => (
                    Some(zipkin.collector()),
                    Propagation {
                        b3_multi: true,
                        b3_single: false,
                        w3c: zipkin.trace_context_option.unwrap_or_default().w3c(),
                    },
                    zipkin.max_tag_length,
                ),
                None => (None, Propagation::default(), None),
            },
            None => (
                mesh.and_then(|m| m.zipkin.as_ref())
                    .map(|z| z.address.clone()),
                Propagation::default(),
                mesh.and_then(|m| m.max_path_tag_length),
            ),
        };
        let enabled = config.mesh.enable_tracing != Some(false);
        TraceSettings {
            sampling,
            custom_tags,
            zipkin: zipkin.filter(|_| reporting && enabled),
            enabled,
            propagation,
            // 0 means unset, as in Istio.
            max_path_tag_length: max_tag_length
                .filter(|n| *n > 0)
                .map_or(MAX_PATH_TAG_LENGTH, |n| n as usize),
            istio_tags: telemetry.and_then(|t| t.enable_istio_tags) != Some(false),
        }
    }

    /// The sampler for these settings.
    ///
    /// ```
    /// use mesh_core::policy::Fraction;
    /// use mesh_proxy::trace_settings::TraceSettings;
    /// use mesh_route::{config::{Config, WorkloadMode}, table::SourceWorkload};
    /// let mut settings = TraceSettings::from_config(&Config::default(), WorkloadMode::Client, &SourceWorkload::default(), |_| None);
    /// settings.sampling = 12.5;
    /// assert_eq!(settings.sampler().random_fraction(), Fraction::from_percent(12.5));
    /// ```
    pub fn sampler(&self) -> Sampler {
        Sampler::from_percent(self.sampling)
    }
}

/// A tag from `source`: a literal, an environment variable (read now) or a request header.
fn tag(
    name: &str,
    literal: Option<&str>,
    environment: Option<(&str, Option<&String>)>,
    header: Option<(&str, Option<&String>)>,
    env: &impl Fn(&str) -> Option<String>,
) -> Option<CustomTag> {
    let name = name.to_owned();
    if let Some(value) = literal {
        return Some(CustomTag {
            name: name.into(),
            source: TagSource::Literal(value.to_owned()),
        });
    }
    if let Some((variable, default)) = environment {
        return CustomTag::environment(name, variable, default.cloned(), env);
    }
    let (header, default) = header?;
    Some(CustomTag {
        name: name.into(),
        source: TagSource::Header {
            name: header.parse().ok()?,
            default: default.cloned(),
        },
    })
}

fn mesh_tag(
    name: &str,
    custom: &MeshCustomTag,
    env: &impl Fn(&str) -> Option<String>,
) -> Option<CustomTag> {
    match custom {
        MeshCustomTag::Literal { value } => tag(name, Some(value), None, None, env),
        MeshCustomTag::Environment {
            name: variable,
            default_value,
        } => tag(
            name,
            None,
            Some((variable, default_value.as_ref())),
            None,
            env,
        ),
        MeshCustomTag::Header {
            name: header,
            default_value,
        } => tag(
            name,
            None,
            None,
            Some((header, default_value.as_ref())),
            env,
        ),
    }
}

fn telemetry_tag(
    name: &str,
    custom: &TelemetryCustomTag,
    env: &impl Fn(&str) -> Option<String>,
) -> Option<CustomTag> {
    tag(
        name,
        custom.literal.as_ref().map(|l| l.value.as_str()),
        custom
            .environment
            .as_ref()
            .map(|e| (e.name.as_str(), e.default_value.as_ref())),
        custom
            .header
            .as_ref()
            .map(|h| (h.name.as_str(), h.default_value.as_ref())),
        env,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str, env: impl Fn(&str) -> Option<String>) -> TraceSettings {
        side(yaml, WorkloadMode::Client, env)
    }

    fn side(yaml: &str, side: WorkloadMode, env: impl Fn(&str) -> Option<String>) -> TraceSettings {
        let loaded = Config::from_yaml_str(yaml).unwrap_or_else(|d| panic!("{d:#?}"));
        TraceSettings::from_config(&loaded.config, side, &SourceWorkload::default(), env)
    }

    const MESH: &str = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  defaultConfig:\n    tracing:\n      sampling: 10\n      zipkin: {address: zipkin:9411}\n      maxPathTagLength: 64\n      customTags:\n        cluster: {environment: {name: CLUSTER, defaultValue: west}}\n        user: {header: {name: x-user}}\n        team: {literal: {value: shop}}\n";

    #[test]
    fn mesh_config_tracing() {
        let s = settings(MESH, |name| (name == "CLUSTER").then(|| "east".into()));
        assert_eq!(s.sampling, 10.0);
        assert_eq!(s.zipkin.as_deref(), Some("zipkin:9411"));
        assert_eq!(s.max_path_tag_length, 64);
        let tags: Vec<_> = s
            .custom_tags
            .iter()
            .map(|t| (t.name.to_string(), t.source.clone()))
            .collect();
        assert_eq!(
            tags[0],
            ("cluster".into(), TagSource::Literal("east".into()))
        );
        assert_eq!(tags[1], ("team".into(), TagSource::Literal("shop".into())));
        assert!(
            matches!(&tags[2].1, TagSource::Header { name, default: None } if name == "x-user")
        );
        // The environment default when the variable is unset.
        let s = settings(MESH, |_| None);
        assert_eq!(s.custom_tags[0].source, TagSource::Literal("west".into()));
        assert!(s.istio_tags);
    }

    /// Two Zipkin providers, the first the default, after the legacy settings of [`MESH`].
    const PROVIDERS: &str = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: providers}\nspec:\n  extensionProviders:\n  - {name: zipkin, zipkin: {service: zipkin.istio-system, port: 9411, maxTagLength: 32}}\n  - {name: dual, zipkin: {service: collector, port: 9412, path: /v2/spans, traceContextOption: USE_B3_WITH_W3C_PROPAGATION}}\n  - {name: otel, opentelemetry: {service: otel, port: 4317}}\n  defaultProviders: {tracing: [zipkin]}\n";

    #[test]
    fn a_zipkin_provider_sets_the_collector_the_headers_and_the_tag_length() {
        const B3_ONLY: Propagation = Propagation {
            b3_multi: true,
            b3_single: false,
            w3c: false,
        };
        // The default provider over the legacy address: B3 headers only, as Istio's default.
        let yaml = format!("{MESH}---\n{PROVIDERS}");
        let s = settings(&yaml, |_| None);
        assert_eq!(
            s.zipkin.as_deref(),
            Some("http://zipkin.istio-system:9411/api/v2/spans")
        );
        assert_eq!(s.propagation, B3_ONLY);
        assert_eq!(s.max_path_tag_length, 32);
        assert_eq!(s.sampling, 10.0, "sampling still comes from defaultConfig");
        // A Telemetry names another: its path, and W3C headers too.
        let telemetry = "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh-default, namespace: istio-system}\nspec:\n  tracing:\n  - providers: [{name: dual}]\n";
        let s = settings(&format!("{yaml}---\n{telemetry}"), |_| None);
        assert_eq!(s.zipkin.as_deref(), Some("http://collector:9412/v2/spans"));
        assert_eq!(s.propagation, Propagation::default());
        assert_eq!(s.max_path_tag_length, MAX_PATH_TAG_LENGTH);
        // Another kind of provider exports nothing.
        let otel = telemetry.replace("dual", "otel");
        assert_eq!(
            settings(&format!("{yaml}---\n{otel}"), |_| None).zipkin,
            None
        );
        // No reporting: headers as the provider says, no export.
        let silent = format!("{telemetry}    disableSpanReporting: true\n");
        let s = settings(&format!("{yaml}---\n{silent}"), |_| None);
        assert_eq!((s.zipkin, s.propagation), (None, Propagation::default()));
        // Without a provider, the legacy address, with B3 and W3C headers.
        let s = settings(MESH, |_| None);
        assert_eq!(s.propagation, Propagation::default());
        assert!(s.enabled);
        // Tracing off: nothing exported.
        let off = format!(
            "{yaml}---\napiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {{name: no-tracing}}\nspec: {{enableTracing: false}}\n"
        );
        let s = settings(&off, |_| None);
        assert_eq!((s.enabled, s.zipkin), (false, None));
    }

    #[test]
    fn telemetry_overrides_sampling_and_replaces_tags() {
        let telemetry = "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh-default, namespace: istio-system}\nspec:\n  tracing:\n  - randomSamplingPercentage: 0\n    match: {mode: CLIENT}\n    enableIstioTags: false\n    customTags:\n      release: {literal: {value: canary}}\n";
        let yaml = format!("{MESH}---\n{telemetry}");
        let s = side(&yaml, WorkloadMode::Client, |_| None);
        assert_eq!(s.sampling, 0.0);
        assert_eq!(s.custom_tags.len(), 1);
        assert_eq!(s.custom_tags[0].name, "release");
        assert!(!s.istio_tags);
        assert_eq!(s.zipkin.as_deref(), Some("zipkin:9411"));
        // The entry is for the client side: the server side keeps the mesh config's settings.
        let server = side(&yaml, WorkloadMode::Server, |_| None);
        assert_eq!(server.sampling, 10.0);
        assert_eq!(server.custom_tags.len(), 3);
        assert!(server.istio_tags);
        let silent = telemetry.replace("enableIstioTags: false", "disableSpanReporting: true");
        let yaml = format!("{MESH}---\n{silent}");
        assert_eq!(side(&yaml, WorkloadMode::Client, |_| None).zipkin, None);
        assert!(side(&yaml, WorkloadMode::Server, |_| None).zipkin.is_some());
        // A second entry, for the server side, applies there.
        let both =
            format!("{telemetry}  - match: {{mode: SERVER}}\n    randomSamplingPercentage: 50\n");
        let yaml = format!("{MESH}---\n{both}");
        assert_eq!(side(&yaml, WorkloadMode::Server, |_| None).sampling, 50.0);
        assert_eq!(side(&yaml, WorkloadMode::Client, |_| None).sampling, 0.0);
    }
}
