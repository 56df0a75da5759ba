//! Istio's `MeshConfig.extensionProviders` and `defaultProviders`: named telemetry backends,
//! which Telemetry resources select by name (`tracing[].providers`), and the ones used when a
//! Telemetry names none.
//!
//! The Zipkin tracing provider is applied: its collector (`service`, `port`, `path`), the
//! headers it propagates (`traceContextOption`) and `maxTagLength`. Every other provider kind
//! Istio defines loads with a "not enforced" warning; a kind Istio does not define is an error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::diagnostic::Reporter;
use super::duration::Duration;
use super::mesh_config::MeshConfig;
use super::suggest::did_you_mean;

/// Istio `MeshConfig.ExtensionProvider`: one named backend.
///
/// ```
/// use mesh_route::config::{Config, TraceContextOption};
///
/// let yaml = r#"
/// apiVersion: mesh/v1
/// kind: MeshConfig
/// metadata: {name: mesh}
/// spec:
///   extensionProviders:
///   - name: zipkin
///     zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411, traceContextOption: USE_B3_WITH_W3C_PROPAGATION}
///   defaultProviders: {tracing: [zipkin]}
/// "#;
/// let mesh = Config::from_yaml_str(yaml).unwrap().config.mesh;
/// let zipkin = mesh.extension_providers[0].zipkin.as_ref().unwrap();
/// assert_eq!((zipkin.service.as_str(), zipkin.port), ("zipkin.istio-system.svc.cluster.local", 9411));
/// assert_eq!(zipkin.trace_context_option, Some(TraceContextOption::UseB3WithW3cPropagation));
/// assert_eq!(mesh.default_providers.unwrap().tracing, ["zipkin"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionProvider {
    /// The name Telemetry resources and `defaultProviders` refer to it by.
    pub name: String,
    /// A Zipkin tracing backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zipkin: Option<ZipkinProvider>,
    /// The other kinds ([`EXTENSION_PROVIDER_KINDS`]), parsed and not enforced; others are
    /// errors.
    #[serde(flatten, skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// Every provider kind of Istio's `ExtensionProvider` (`zipkin` is the one applied).
///
/// ```
/// use mesh_route::config::extension_provider::EXTENSION_PROVIDER_KINDS;
/// assert!(EXTENSION_PROVIDER_KINDS.contains(&"opentelemetry"));
/// ```
pub const EXTENSION_PROVIDER_KINDS: &[&str] = &[
    "envoyExtAuthzHttp",
    "envoyExtAuthzGrpc",
    "zipkin",
    "lightstep",
    "datadog",
    "stackdriver",
    "opencensus",
    "skywalking",
    "opentelemetry",
    "prometheus",
    "envoyFileAccessLog",
    "envoyHttpAls",
    "envoyTcpAls",
    "envoyOtelAls",
    "sds",
];

/// Istio `ExtensionProvider.ZipkinTracingProvider`.
///
/// ```
/// use mesh_route::config::extension_provider::ZipkinProvider;
///
/// let zipkin = ZipkinProvider { service: "zipkin".into(), port: 9411, ..Default::default() };
/// assert_eq!(zipkin.collector(), "http://zipkin:9411/api/v2/spans");
/// let custom = ZipkinProvider { path: Some("/spans".into()), ..zipkin };
/// assert_eq!(custom.collector(), "http://zipkin:9411/spans");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ZipkinProvider {
    /// The collector's host name.
    pub service: String,
    /// The collector's port.
    pub port: u32,
    /// Longest `http.url` span tag (Envoy's `max_path_tag_length`; 0 or unset: 256).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tag_length: Option<u32>,
    /// 64-bit trace ids instead of 128-bit ones; parsed, not enforced (ids are 128-bit).
    #[serde(rename = "enable64bitTraceId", skip_serializing_if = "Option::is_none")]
    pub enable_64bit_trace_id: Option<bool>,
    /// The collector's path (default `/api/v2/spans`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Which headers carry the trace to the upstream (default `USE_B3`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_context_option: Option<TraceContextOption>,
    /// Export timeout; parsed, not enforced (5 s, Envoy's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Headers sent to the collector; parsed, not enforced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<serde_json::Value>,
}

/// Zipkin's default collector path.
const DEFAULT_ZIPKIN_PATH: &str = "/api/v2/spans";

impl ZipkinProvider {
    /// The URL spans are posted to.
    ///
    /// ```
    /// use mesh_route::config::extension_provider::ZipkinProvider;
    /// let zipkin = ZipkinProvider { service: "zipkin.istio-system".into(), port: 9411, ..Default::default() };
    /// assert_eq!(zipkin.collector(), "http://zipkin.istio-system:9411/api/v2/spans");
    /// let custom = ZipkinProvider { path: Some("/v2/spans".into()), ..zipkin };
    /// assert_eq!(custom.collector(), "http://zipkin.istio-system:9411/v2/spans");
    /// ```
    pub fn collector(&self) -> String {
        let path = self.path.as_deref().unwrap_or(DEFAULT_ZIPKIN_PATH);
        format!("http://{}:{}{path}", self.service, self.port)
    }
}

/// Istio `ZipkinTracingProvider.TraceContextOption`: the trace headers written upstream.
/// Every format is read from a request whichever is chosen.
///
/// ```
/// use mesh_route::config::TraceContextOption;
/// let option: TraceContextOption = serde_json::from_str("\"USE_B3_WITH_W3C_PROPAGATION\"").unwrap();
/// assert!(option.w3c());
/// assert!(!TraceContextOption::default().w3c());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TraceContextOption {
    /// B3 multi headers only (Istio's default).
    #[default]
    UseB3,
    /// B3 multi headers and W3C `traceparent`.
    UseB3WithW3cPropagation,
}

impl TraceContextOption {
    /// Whether W3C `traceparent` (and `tracestate`) is written too.
    ///
    /// ```
    /// use mesh_route::config::TraceContextOption;
    /// assert!(TraceContextOption::UseB3WithW3cPropagation.w3c());
    /// assert!(!TraceContextOption::UseB3.w3c());
    /// ```
    pub fn w3c(self) -> bool {
        self == TraceContextOption::UseB3WithW3cPropagation
    }
}

/// Istio `MeshConfig.DefaultProviders`: the providers used where a Telemetry names none.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  extensionProviders: [{name: zipkin, zipkin: {service: zipkin, port: 9411}}]\n  defaultProviders: {tracing: [zipkin]}\n";
/// let mesh = Config::from_yaml_str(yaml).unwrap().config.mesh;
/// assert_eq!(mesh.tracing_provider(&[]).unwrap().name, "zipkin");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DefaultProviders {
    /// Tracing providers, by name (one at most).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracing: Vec<String>,
    /// Metrics providers; parsed, not enforced (metrics are always served for Prometheus).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<String>,
    /// Access-log providers; parsed, not enforced (see `accessLogFile`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_logging: Vec<String>,
}

/// Checks the providers of one mesh-settings document: each named, once, with one kind Istio
/// defines; Zipkin collectors complete. (`defaultProviders` is checked against the providers
/// of every document, by [`check_tracing_references`].)
pub(crate) fn validate_extension_providers(mesh: &MeshConfig, r: &mut Reporter<'_>) {
    for (i, provider) in mesh.extension_providers.iter().enumerate() {
        let at = format!("extensionProviders[{i}]");
        if provider.name.is_empty() {
            r.error(format!("{at}.name"), "name is required");
        } else if mesh.extension_providers[..i]
            .iter()
            .any(|p| p.name == provider.name)
        {
            r.error(
                format!("{at}.name"),
                format!("provider \"{}\" is defined twice", provider.name),
            );
        }
        for kind in provider.other.keys() {
            if !EXTENSION_PROVIDER_KINDS.contains(&kind.as_str()) {
                let known = EXTENSION_PROVIDER_KINDS.iter().copied().chain(["name"]);
                r.error(
                    format!("{at}.{kind}"),
                    format!("unknown field \"{kind}\"{}", did_you_mean(kind, known)),
                );
            }
        }
        let kinds = usize::from(provider.zipkin.is_some()) + provider.other.len();
        if kinds != 1 {
            r.error(
                &at,
                format!(
                    "a provider has exactly one kind (zipkin, opentelemetry, …), found {kinds}"
                ),
            );
        }
        if let Some(zipkin) = &provider.zipkin {
            if zipkin.service.is_empty() {
                r.error(format!("{at}.zipkin.service"), "service is required");
            }
            if !(1..=65_535).contains(&zipkin.port) {
                r.error(
                    format!("{at}.zipkin.port"),
                    format!("must be 1–65535, got {}", zipkin.port),
                );
            }
            if let Some(path) = &zipkin.path
                && !path.starts_with('/')
            {
                r.error(
                    format!("{at}.zipkin.path"),
                    format!("must start with \"/\", got {path:?}"),
                );
            }
        }
    }
}

/// Checks a list of tracing provider names (`at`: its field path) against `providers`: one at
/// most, as Istio applies one; each defined. A provider of a kind other than Zipkin is reported
/// as not exporting spans.
pub(crate) fn check_tracing_references(
    names: &[&str],
    at: &str,
    providers: &[ExtensionProvider],
    r: &mut Reporter<'_>,
) {
    if names.len() > 1 {
        r.error(
            at,
            format!(
                "one tracing provider at most (Istio applies one), got {}",
                names.len()
            ),
        );
    }
    let Some(name) = names.first() else {
        return;
    };
    match providers.iter().find(|p| p.name == *name) {
        None => {
            let known = providers.iter().map(|p| p.name.as_str());
            r.error(
                format!("{at}[0]"),
                format!(
                    "no meshConfig.extensionProviders entry is named \"{name}\"{}",
                    did_you_mean(name, known)
                ),
            );
        }
        Some(provider) if provider.zipkin.is_none() => {
            let kind = provider
                .other
                .keys()
                .next()
                .map_or("unknown", String::as_str);
            r.warning(
                format!("{at}[0]"),
                format!(
                    "provider \"{name}\" is an {kind} provider, which is not enforced: spans are not exported"
                ),
            );
        }
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Diagnostic, Severity, telemetry::ProviderRef};

    const ZIPKIN: &str = "  - name: zipkin\n    zipkin: {service: zipkin.istio-system, port: 9411, path: /spans, maxTagLength: 64, traceContextOption: USE_B3_WITH_W3C_PROPAGATION}\n";

    fn mesh(spec: &str) -> String {
        format!("apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {{name: mesh}}\nspec:\n{spec}")
    }

    fn telemetry(tracing: &str) -> String {
        format!(
            "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\n\
             metadata: {{name: mesh-default, namespace: istio-system}}\nspec:\n  tracing:\n{tracing}"
        )
    }

    fn diagnostics(yaml: &str) -> Vec<Diagnostic> {
        match Config::from_yaml_str(yaml) {
            Ok(loaded) => loaded.warnings,
            Err(diagnostics) => diagnostics,
        }
    }

    /// `(severity, field, message)` of each diagnostic, for comparing.
    fn summary(yaml: &str) -> Vec<(Severity, String, String)> {
        diagnostics(yaml)
            .into_iter()
            .map(|d| (d.severity, d.field.unwrap_or_default(), d.message))
            .collect()
    }

    #[test]
    fn a_zipkin_provider_loads_without_warnings_and_is_found_by_name() {
        let yaml = format!(
            "{}---\n{}",
            mesh(&format!(
                "  extensionProviders:\n{ZIPKIN}  defaultProviders: {{tracing: [zipkin]}}\n"
            )),
            telemetry("  - providers: [{name: zipkin}]\n")
        );
        let loaded = Config::from_yaml_str(&yaml).unwrap_or_else(|d| panic!("{d:#?}"));
        assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
        let provider = loaded.config.mesh.tracing_provider(&[]).unwrap();
        let zipkin = provider.zipkin.as_ref().unwrap();
        assert_eq!(zipkin.collector(), "http://zipkin.istio-system:9411/spans");
        assert_eq!(zipkin.max_tag_length, Some(64));
        assert!(zipkin.trace_context_option.unwrap().w3c());
        let unknown = [ProviderRef {
            name: "other".into(),
        }];
        assert!(loaded.config.mesh.tracing_provider(&unknown).is_none());
    }

    #[test]
    fn bad_providers_are_errors_naming_the_field() {
        let yaml = mesh(
            "  extensionProviders:\n  - {name: zipkin, zipkin: {service: '', port: 0, path: spans}}\n  - {name: zipkin, opentelemetry: {service: otel, port: 4317}}\n  - {name: '', zipkinn: {service: z, port: 1}}\n  - {name: both, zipkin: {service: z, port: 1}, datadog: {service: d, port: 2}}\n",
        );
        let errors: Vec<(String, String)> = summary(&yaml)
            .into_iter()
            .filter(|(severity, ..)| *severity == Severity::Error)
            .map(|(_, field, message)| (field, message))
            .collect();
        let expect = |field: &str, message: &str| (field.to_string(), message.to_string());
        assert_eq!(
            errors,
            [
                expect(
                    "extensionProviders[0].zipkin.service",
                    "service is required"
                ),
                expect(
                    "extensionProviders[0].zipkin.port",
                    "must be 1–65535, got 0"
                ),
                expect(
                    "extensionProviders[0].zipkin.path",
                    "must start with \"/\", got \"spans\""
                ),
                expect(
                    "extensionProviders[1].name",
                    "provider \"zipkin\" is defined twice"
                ),
                expect("extensionProviders[2].name", "name is required"),
                expect(
                    "extensionProviders[2].zipkinn",
                    "unknown field \"zipkinn\" (did you mean \"zipkin\"?)"
                ),
                expect(
                    "extensionProviders[3]",
                    "a provider has exactly one kind (zipkin, opentelemetry, …), found 2"
                ),
            ]
        );
        // The message names the file and the resource too.
        let first = &diagnostics(&yaml)[0];
        assert!(
            first.to_string().starts_with(
                "error: <inline> (document 1) MeshConfig mesh: extensionProviders[0].zipkin.service"
            ),
            "{first}"
        );
    }

    #[test]
    fn a_tracing_reference_names_one_defined_provider() {
        let providers = format!(
            "  extensionProviders:\n{ZIPKIN}  - {{name: otel, opentelemetry: {{service: otel, port: 4317}}}}\n"
        );
        let unknown = format!(
            "{}---\n{}",
            mesh(&format!(
                "{providers}  defaultProviders: {{tracing: [zipkn]}}\n"
            )),
            telemetry("  - providers: [{name: jaeger}]\n")
        );
        let errors: Vec<(String, String)> = summary(&unknown)
            .into_iter()
            .filter(|(severity, ..)| *severity == Severity::Error)
            .map(|(_, field, message)| (field, message))
            .collect();
        assert_eq!(
            errors,
            [
                (
                    "defaultProviders.tracing[0]".to_string(),
                    "no meshConfig.extensionProviders entry is named \"zipkn\" (did you mean \"zipkin\"?)".to_string()
                ),
                (
                    "tracing[0].providers[0]".to_string(),
                    "no meshConfig.extensionProviders entry is named \"jaeger\"".to_string()
                ),
            ]
        );
        let two = format!(
            "{}---\n{}",
            mesh(&providers),
            telemetry("  - providers: [{name: zipkin}, {name: otel}]\n")
        );
        let all = diagnostics(&two);
        let d = all.iter().find(|d| d.is_error()).unwrap();
        assert_eq!(
            (d.severity, d.field.as_deref(), d.message.as_str()),
            (
                Severity::Error,
                Some("tracing[0].providers"),
                "one tracing provider at most (Istio applies one), got 2"
            )
        );
        // A provider of another kind loads, with what it means said.
        let otel = format!(
            "{}---\n{}",
            mesh(&providers),
            telemetry("  - providers: [{name: otel}]\n")
        );
        let warnings = summary(&otel);
        assert!(
            warnings.contains(&(
                Severity::Warning,
                "tracing[0].providers[0]".into(),
                "provider \"otel\" is an opentelemetry provider, which is not enforced: spans are not exported".into()
            )),
            "{warnings:#?}"
        );
    }

    #[test]
    fn what_is_not_applied_warns() {
        let yaml = mesh(
            "  extensionProviders:\n  - name: zipkin\n    zipkin: {service: z, port: 9411, enable64bitTraceId: true, timeout: 2s, headers: [{name: x-token, value: t}]}\n  - {name: otel, opentelemetry: {service: otel, port: 4317}}\n  - {name: log, envoyFileAccessLog: {path: /dev/stdout}}\n  defaultProviders: {tracing: [zipkin], metrics: [prometheus], accessLogging: [log]}\n",
        );
        let mut fields: Vec<String> = summary(&yaml)
            .into_iter()
            .map(|(severity, field, message)| {
                assert_eq!(severity, Severity::Warning, "{field}: {message}");
                assert!(message.ends_with("parsed, not enforced yet"), "{message}");
                field
            })
            .collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                "defaultProviders.accessLogging",
                "defaultProviders.metrics",
                "extensionProviders[0].zipkin.enable64bitTraceId",
                "extensionProviders[0].zipkin.headers",
                "extensionProviders[0].zipkin.timeout",
                "extensionProviders[1].opentelemetry",
                "extensionProviders[2].envoyFileAccessLog",
            ]
        );
    }

    #[test]
    fn a_loaded_config_validates_again_with_its_providers_and_its_mesh_checked() {
        let yaml = format!(
            "{}---\n{}",
            mesh(&format!("  extensionProviders:\n{ZIPKIN}")),
            telemetry("  - providers: [{name: zipkin}]\n")
        );
        let loaded = Config::from_yaml_str(&yaml).unwrap_or_else(|d| panic!("{d:#?}"));
        // As `Mesh::swap` does with a configuration it was handed.
        let again = loaded.config.clone().validate();
        assert!(again.is_ok(), "{again:#?}");
        // The mesh settings of a configuration built in Rust are checked too.
        let mut config = loaded.config;
        config.mesh.extension_providers[0]
            .zipkin
            .as_mut()
            .unwrap()
            .port = 0;
        let errors = config.validate().unwrap_err();
        let d = errors.iter().find(|d| d.is_error()).unwrap();
        assert_eq!(
            d.to_string(),
            "error: <rust> (document 1) MeshConfig (built in Rust): extensionProviders[0].zipkin.port: must be 1–65535, got 0"
        );
    }
}
