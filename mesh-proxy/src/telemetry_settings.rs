//! [`TelemetrySettings`]: what the sidecar reports, from its configuration — where each side's
//! access log goes and in which encoding, and the proxy's own workload for the metrics.
//!
//! Access logging follows the mesh config's `accessLogFile` (empty: off) and
//! `accessLogEncoding` (`TEXT` or `JSON`), and per side (outbound `CLIENT`, inbound `SERVER`)
//! the `accessLogging` entry of a Telemetry of the proxy's workload, else of its namespace, else
//! of a mesh-wide one ([`Config::access_logging_for`]): `disabled: true` turns that side off,
//! `disabled: false` turns it on (to `/dev/stdout` when no file is set). Unlike Istio, whose
//! default is no access log, an unset `accessLogFile` logs to `/dev/stdout`: the sidecar with
//! no configuration is an observing proxy (DESIGN.md §3).

use mesh_route::{
    config::{AccessLogEncoding, Config, WorkloadMode},
    table::SourceWorkload,
};
use mesh_trace::access_log::Encoding;

/// Where the access log goes when the mesh config names no file.
///
/// ```
/// use mesh_proxy::telemetry_settings::{DEFAULT_ACCESS_LOG_FILE, TelemetrySettings};
/// use mesh_route::{config::Config, table::SourceWorkload};
/// let settings = TelemetrySettings::from_config(&Config::default(), &SourceWorkload::default());
/// assert_eq!(settings.server_access_log.unwrap().path, DEFAULT_ACCESS_LOG_FILE);
/// assert_eq!(DEFAULT_ACCESS_LOG_FILE, "/dev/stdout");
/// ```
pub const DEFAULT_ACCESS_LOG_FILE: &str = "/dev/stdout";

/// One side's access log.
///
/// ```
/// use mesh_proxy::telemetry_settings::{AccessLogSettings, TelemetrySettings};
/// use mesh_route::{config::Config, table::SourceWorkload};
/// use mesh_trace::access_log::Encoding;
/// let yaml = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\n\
///             spec: {accessLogFile: /dev/stderr, accessLogEncoding: JSON}\n";
/// let settings = TelemetrySettings::from_config(&Config::from_yaml_str(yaml).unwrap().config, &SourceWorkload::default());
/// let expected = AccessLogSettings { path: "/dev/stderr".into(), encoding: Encoding::Json };
/// assert_eq!(settings.client_access_log, Some(expected));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLogSettings {
    /// The file (`/dev/stdout`, `/dev/stderr` or a path).
    pub path: String,
    /// Text or JSON.
    pub encoding: Encoding,
}

/// The sidecar's telemetry settings per side.
///
/// An empty `accessLogFile` turns access logging off on both sides:
///
/// ```
/// use mesh_proxy::telemetry_settings::TelemetrySettings;
/// use mesh_route::{config::Config, table::SourceWorkload};
/// let yaml = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {accessLogFile: ''}\n";
/// let settings = TelemetrySettings::from_config(&Config::from_yaml_str(yaml).unwrap().config, &SourceWorkload::default());
/// assert_eq!(settings, TelemetrySettings { client_access_log: None, server_access_log: None });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelemetrySettings {
    /// Outbound (client-side) access log.
    pub client_access_log: Option<AccessLogSettings>,
    /// Inbound (server-side) access log.
    pub server_access_log: Option<AccessLogSettings>,
}

impl TelemetrySettings {
    /// The settings `config` asks for, for a proxy running as `workload`.
    ///
    /// ```
    /// use mesh_proxy::telemetry_settings::TelemetrySettings;
    /// use mesh_route::{config::Config, table::SourceWorkload};
    /// let settings = TelemetrySettings::from_config(&Config::default(), &SourceWorkload::default());
    /// assert_eq!(settings.client_access_log.unwrap().path, "/dev/stdout");
    /// ```
    pub fn from_config(config: &Config, workload: &SourceWorkload) -> Self {
        TelemetrySettings {
            client_access_log: access_log_for(config, WorkloadMode::Client, workload),
            server_access_log: access_log_for(config, WorkloadMode::Server, workload),
        }
    }
}

fn access_log_for(
    config: &Config,
    side: WorkloadMode,
    workload: &SourceWorkload,
) -> Option<AccessLogSettings> {
    let telemetry = config
        .access_logging_for(side, workload)
        .and_then(|entry| entry.disabled);
    let path = match (config.mesh.access_log_file.as_deref(), telemetry) {
        (_, Some(true)) => return None,
        (Some(""), Some(false)) | (None, _) => DEFAULT_ACCESS_LOG_FILE,
        (Some(""), None) => return None,
        (Some(path), _) => path,
    };
    Some(AccessLogSettings {
        path: path.to_owned(),
        encoding: match config.mesh.access_log_encoding.unwrap_or_default() {
            AccessLogEncoding::Text => Encoding::Text,
            AccessLogEncoding::Json => Encoding::Json,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Config {
        Config::from_yaml_str(yaml)
            .unwrap_or_else(|d| panic!("{d:#?}"))
            .config
    }

    const MESH: &str = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\n";

    #[test]
    fn mesh_config_sets_file_and_encoding() {
        let config = load(&format!(
            "{MESH}spec: {{accessLogFile: /tmp/access.log, accessLogEncoding: JSON}}\n"
        ));
        let expected = Some(AccessLogSettings {
            path: "/tmp/access.log".into(),
            encoding: Encoding::Json,
        });
        let settings = TelemetrySettings::from_config(&config, &SourceWorkload::default());
        assert_eq!(settings.client_access_log, expected);
        assert_eq!(settings.server_access_log, expected);
        let off = load(&format!("{MESH}spec: {{accessLogFile: \"\"}}\n"));
        assert_eq!(
            TelemetrySettings::from_config(&off, &SourceWorkload::default()).client_access_log,
            None
        );
    }

    #[test]
    fn telemetry_turns_one_side_off_or_on() {
        let config = load(&format!(
            "{MESH}spec: {{accessLogFile: \"\"}}\n---\n\
             apiVersion: telemetry.istio.io/v1\nkind: Telemetry\n\
             metadata: {{name: mesh-default, namespace: istio-system}}\n\
             spec:\n  accessLogging:\n  - match: {{mode: SERVER}}\n    disabled: false\n"
        ));
        let settings = TelemetrySettings::from_config(&config, &SourceWorkload::default());
        assert_eq!(settings.client_access_log, None);
        assert_eq!(
            settings.server_access_log.map(|s| s.path).as_deref(),
            Some(DEFAULT_ACCESS_LOG_FILE)
        );
        let client_off = load(
            "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\n\
             metadata: {name: mesh-default, namespace: istio-system}\n\
             spec:\n  accessLogging:\n  - match: {mode: CLIENT}\n    disabled: true\n",
        );
        let settings = TelemetrySettings::from_config(&client_off, &SourceWorkload::default());
        assert_eq!(settings.client_access_log, None);
        assert!(settings.server_access_log.is_some());
    }

    #[test]
    fn telemetries_apply_by_workload_then_namespace_then_mesh_wide() {
        let telemetry = |name: &str, namespace: &str, scope: &str, disabled: bool| {
            format!(
                "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\n\
                 metadata: {{name: {name}, namespace: {namespace}}}\n\
                 spec:\n{scope}  accessLogging:\n  - disabled: {disabled}\n"
            )
        };
        let proxy = |namespace: &str, app: &str| SourceWorkload {
            labels: [("app".to_string(), app.to_string())].into(),
            namespace: namespace.into(),
        };
        // Off mesh-wide, on again in `shop` but off for its `checkout` workloads; `batch` turns
        // off only its own.
        let selector = "  selector: {matchLabels: {app: checkout}}\n";
        let config = load(&format!(
            "{}---\n{}---\n{}---\n{}",
            telemetry("batch-quiet", "batch", "", true),
            telemetry("mesh-default", "istio-system", "", true),
            telemetry("shop-logs", "shop", "", false),
            telemetry("checkout-quiet", "shop", selector, true),
        ));
        let logged = |workload: SourceWorkload| {
            let settings = TelemetrySettings::from_config(&config, &workload);
            (
                settings.client_access_log.is_some(),
                settings.server_access_log.is_some(),
            )
        };
        assert_eq!(logged(proxy("shop", "catalog")), (true, true));
        assert_eq!(logged(proxy("shop", "checkout")), (false, false));
        assert_eq!(logged(proxy("web", "checkout")), (false, false));
        assert_eq!(logged(proxy("batch", "job")), (false, false));
        // An empty selector, as none, covers its whole namespace.
        let without_mesh_wide = load(&format!(
            "{}---\n{}",
            telemetry("batch-quiet", "batch", "", true),
            telemetry("web-quiet", "web", "  selector: {}\n", true),
        ));
        let on = |workload: SourceWorkload| {
            TelemetrySettings::from_config(&without_mesh_wide, &workload)
                .server_access_log
                .is_some()
        };
        assert!(
            on(proxy("shop", "catalog")),
            "a Telemetry of another namespace does not apply"
        );
        assert!(!on(proxy("batch", "job")));
        assert!(!on(proxy("web", "checkout")));
    }
}
