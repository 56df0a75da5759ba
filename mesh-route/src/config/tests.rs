//! End-to-end tests of loading: real catalog files, diagnostics for typos and broken
//! references, API versions, mesh settings, directory order and not-enforced warnings.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

const REGISTRY: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: catalog, namespace: istioinaction}
spec:
  hosts: [catalog]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 3000}
  endpoints:
  - {address: 127.0.0.1, ports: {http: 9001}, labels: {app: catalog, version: v1}}
  - {address: 127.0.0.1, ports: {http: 9002}, labels: {app: catalog, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: catalog, namespace: istioinaction}
spec:
  host: catalog
  subsets:
  - {name: version-v1, labels: {version: v1}}
  - {name: version-v2, labels: {version: v2}}
"#;

/// A VirtualService for `catalog` in `istioinaction` whose `http` list is `http`.
fn vs(name: &str, http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
         metadata: {{name: {name}, namespace: istioinaction}}\n\
         spec:\n  hosts: [catalog]\n  http:\n{http}"
    )
}

fn load(extra: &str) -> Result<Loaded, Vec<Diagnostic>> {
    Config::from_yaml_str(&format!("{REGISTRY}---\n{extra}"))
}

fn errors(extra: &str) -> Vec<Diagnostic> {
    match load(extra) {
        Ok(loaded) => panic!(
            "expected errors, got a config with warnings {:?}",
            loaded.warnings
        ),
        Err(diagnostics) => diagnostics
            .into_iter()
            .filter(Diagnostic::is_error)
            .collect(),
    }
}

fn warnings(extra: &str) -> Vec<Diagnostic> {
    match load(extra) {
        Ok(loaded) => loaded.warnings,
        Err(diagnostics) => panic!("unexpected errors: {diagnostics:#?}"),
    }
}

fn find<'a>(diagnostics: &'a [Diagnostic], field: &str) -> &'a Diagnostic {
    diagnostics
        .iter()
        .find(|d| d.field.as_deref() == Some(field))
        .unwrap_or_else(|| panic!("no diagnostic at {field}: {diagnostics:#?}"))
}

fn catalog_dirs() -> Vec<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mesh/catalog");
    let shared = PathBuf::from("/work/shared/examples/catalog");
    let dirs: Vec<PathBuf> = [repo, shared].into_iter().filter(|d| d.is_dir()).collect();
    assert!(!dirs.is_empty(), "the catalog examples are missing");
    dirs
}

#[test]
fn catalog_examples_load_without_errors_or_warnings() {
    for dir in catalog_dirs() {
        let registry = dir.join("00-registry.yaml");
        let mut routes = 0;
        for name in [
            "10-all-v1.yaml",
            "20-dark-launch.yaml",
            "30-canary-90-10.yaml",
        ] {
            let loaded = Config::load_paths(&[registry.clone(), dir.join(name)])
                .unwrap_or_else(|d| panic!("{name}: {d:#?}"));
            assert!(loaded.warnings.is_empty(), "{name}: {:#?}", loaded.warnings);
            assert_eq!(loaded.config.virtual_services.len(), 1);
            assert_eq!(loaded.config.service_entries.len(), 1);
            assert_eq!(loaded.config.destination_rules.len(), 1);
            routes += loaded.config.virtual_services[0].spec.http.len();
        }
        assert_eq!(routes, 4);
    }
}

#[test]
fn typo_in_field_suggests_the_right_name() {
    let errs = errors(&vs(
        "c",
        "  - route:\n    - destination: {host: catalog, subet: version-v1}\n",
    ));
    let d = find(&errs, "http[0].route[0].destination.subet");
    assert_eq!(
        d.message,
        "unknown field \"subet\" (did you mean \"subset\"?)"
    );
    assert_eq!(
        d.resource.as_deref(),
        Some("VirtualService istioinaction/c")
    );
    assert!(d.to_string().contains("did you mean \"subset\""));
}

#[test]
fn every_field_error_of_a_document_is_reported() {
    let errs = errors(&vs(
        "c",
        "  - rout: []\n    route:\n    - destination: {host: catalog}\n      wieght: 5\n",
    ));
    find(&errs, "http[0].rout");
    find(&errs, "http[0].route[0].wieght");
    let errs = errors(&vs(
        "c",
        "  - timeout: 5\n    mirrorPercent: half\n    route:\n    - destination: {host: catalog}\n",
    ));
    assert!(
        find(&errs, "http[0].timeout")
            .message
            .contains("duration string")
    );
    find(&errs, "http[0].mirrorPercent");
    let errs = errors(&vs("c", "  - route:\n    - destination: {host: 7}\n"));
    let host = find(&errs, "http[0].route[0].destination.host");
    assert!(host.message.starts_with("invalid type"), "{host}");
    assert_eq!(
        errs.len(),
        1,
        "a removed required field is not reported again: {errs:#?}"
    );
}

#[test]
fn unknown_enum_value_suggests_the_right_one() {
    let errs = errors(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: lb, namespace: istioinaction}\n\
         spec:\n  host: catalog\n  trafficPolicy:\n    loadBalancer: {simple: LEAST_REQEST}\n",
    );
    let d = find(&errs, "trafficPolicy.loadBalancer.simple");
    assert!(d.message.contains("did you mean \"LEAST_REQUEST\""), "{d}");
}

#[test]
fn undefined_subset_is_an_error() {
    let errs = errors(&vs(
        "catalog",
        "  - route:\n    - destination: {host: catalog, subset: version-v1}\n\
         \x20 - route:\n    - destination: {host: catalog, subset: version-v3}\n",
    ));
    let d = find(&errs, "http[1].route[0].destination.subset");
    assert_eq!(
        d.message,
        "\"version-v3\" is not defined by any DestinationRule for host catalog"
    );
    assert_eq!(
        d.to_string(),
        "error: <inline> (document 3) VirtualService istioinaction/catalog: \
         http[1].route[0].destination.subset: \"version-v3\" is not defined by any \
         DestinationRule for host catalog"
    );
}

#[test]
fn destination_without_service_entry_is_an_error() {
    let errs = errors(&vs("c", "  - route:\n    - destination: {host: reviews}\n"));
    let d = find(&errs, "http[0].route[0].destination.host");
    assert_eq!(
        d.message,
        "destination host \"reviews\" is not declared by any ServiceEntry"
    );
}

#[test]
fn fully_qualified_destination_matches_short_service_entry_host() {
    let w = warnings(&vs(
        "c",
        "  - route:\n    - destination: {host: catalog.istioinaction.svc.cluster.local, subset: version-v2}\n",
    ));
    assert!(w.is_empty(), "{w:#?}");
}

#[test]
fn undeclared_destination_port_is_an_error() {
    let errs = errors(&vs(
        "c",
        "  - route:\n    - destination: {host: catalog, port: {number: 8080}}\n",
    ));
    let d = find(&errs, "http[0].route[0].destination.port.number");
    assert!(d.message.contains("declared: 80"), "{d}");
}

#[test]
fn two_virtual_services_for_one_host_is_an_error() {
    let route = "  - route:\n    - destination: {host: catalog}\n";
    let errs = errors(&format!(
        "{}---\n{}",
        vs("catalog-a", route),
        vs("catalog-b", route)
    ));
    let d = find(&errs, "hosts[0]");
    assert_eq!(
        d.resource.as_deref(),
        Some("VirtualService istioinaction/catalog-b")
    );
    assert!(
        d.message.contains("VirtualService istioinaction/catalog-a"),
        "{d}"
    );
}

#[test]
fn total_weight_zero_is_an_error() {
    let errs = errors(&vs(
        "c",
        "  - route:\n    - destination: {host: catalog, subset: version-v1}\n      weight: 0\n\
         \x20   - destination: {host: catalog, subset: version-v2}\n      weight: 0\n",
    ));
    assert_eq!(
        find(&errs, "http[0].route").message,
        "total destination weight = 0"
    );
}

#[test]
fn bad_regex_names_field_and_regex() {
    let errs = errors(&vs(
        "c",
        "  - match:\n    - uri: {regex: \"/items/(\\\\d+\"}\n    route:\n    - destination: {host: catalog}\n",
    ));
    let d = find(&errs, "http[0].match[0].uri.regex");
    let text = d.to_string();
    assert!(text.contains("http[0].match[0].uri.regex"), "{text}");
    assert!(text.contains("/items/(\\d+"), "{text}");
    assert!(
        text.ends_with("invalid regex \"/items/(\\d+\": unclosed group"),
        "{text}"
    );
}

#[test]
fn undeclared_endpoint_port_name_is_an_error() {
    let errs = Config::from_yaml_str(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: s}\nspec:\n\
         \x20 hosts: [s]\n  resolution: STATIC\n  ports: [{number: 80, name: http}]\n\
         \x20 endpoints: [{address: 10.0.0.1, ports: {htp: 8080}}]\n",
    )
    .err()
    .unwrap_or_default();
    let d = find(&errs, "endpoints[0].ports.htp");
    assert_eq!(
        d.message,
        "port name \"htp\" is not declared by the ServiceEntry (did you mean \"http\"?)"
    );
}

#[test]
fn subset_selecting_no_endpoint_is_a_warning() {
    let w = warnings(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: v3, namespace: istioinaction}\n\
         spec:\n  host: catalog\n  subsets: [{name: version-v3, labels: {version: v3}}]\n",
    );
    let d = find(&w, "subsets[0].labels");
    assert!(d.message.contains("selects no endpoint"), "{d}");
}

#[test]
fn older_api_versions_are_accepted() {
    for version in [
        "networking.istio.io/v1alpha3",
        "networking.istio.io/v1beta1",
    ] {
        let text = vs("c", "  - route:\n    - destination: {host: catalog}\n")
            .replace("networking.istio.io/v1\n", &format!("{version}\n"));
        assert!(text.contains(version));
        let loaded = load(&text).unwrap_or_else(|d| panic!("{version}: {d:#?}"));
        assert_eq!(loaded.config.virtual_services.len(), 1);
        assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    }
}

#[test]
fn unsupported_kinds() {
    let errs =
        Config::from_yaml_str("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n")
            .err()
            .unwrap_or_default();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].message.contains("apps/v1") && errs[0].message.contains("Deployment"));
    assert!(
        errs[0].message.contains("VirtualService"),
        "lists supported kinds: {}",
        errs[0]
    );
    // A Gateway is read and validated like any other kind.
    let errs = Config::from_yaml_str(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {}\n",
    )
    .err()
    .unwrap_or_default();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].field.as_deref(), Some("servers"));
}

#[test]
fn mesh_config_document_sets_outbound_mode() {
    let loaded = Config::from_yaml_str(
        "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\n\
         spec:\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n",
    )
    .unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    assert_eq!(loaded.config.outbound_mode(), OutboundMode::RegistryOnly);
    assert_eq!(Config::default().outbound_mode(), OutboundMode::AllowAny);
}

#[test]
fn istio_operator_mesh_config_sets_outbound_mode() {
    let loaded = Config::from_yaml_str(
        "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\n\
         spec:\n  meshConfig:\n    outboundTrafficPolicy:\n      mode: REGISTRY_ONLY\n",
    )
    .unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    assert_eq!(loaded.config.outbound_mode(), OutboundMode::RegistryOnly);
}

#[test]
fn istio_operator_other_sections_are_warnings() {
    let loaded = Config::from_yaml_str(
        "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\n\
         metadata: {namespace: istio-system, name: control-plane}\n\
         spec:\n  profile: demo\n  components:\n    egressGateways:\n    - {name: istio-egressgateway, enabled: true}\n\
         \x20 meshConfig:\n    accessLogFile: /dev/stdout\n    enablePrometheusMerge: true\n",
    )
    .unwrap_or_else(|d| panic!("{d:#?}"));
    let messages: Vec<&str> = loaded.warnings.iter().map(|d| d.message.as_str()).collect();
    assert!(
        messages.contains(&"IstioOperator spec.components is ignored"),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"IstioOperator spec.profile is ignored"),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"meshConfig.enablePrometheusMerge is not supported; ignored"),
        "{messages:?}"
    );
    assert!(
        !loaded
            .warnings
            .iter()
            .any(|d| d.message.contains("accessLogFile")),
        "accessLogFile is enforced: {messages:?}"
    );
    assert_eq!(
        loaded.config.mesh.access_log_file.as_deref(),
        Some("/dev/stdout")
    );
}

#[test]
fn sidecar_overrides_mesh_outbound_mode() {
    let loaded = Config::from_yaml_str(
        "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\n\
         spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}}\n---\n\
         apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default}\n\
         spec: {outboundTrafficPolicy: {mode: ALLOW_ANY}}\n",
    )
    .unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(loaded.config.outbound_mode(), OutboundMode::AllowAny);
}

#[test]
fn mirror_settings_are_enforced_without_warnings() {
    for mirror in [
        "mirror: {host: catalog}",
        "mirror: {host: catalog}\n    mirrorPercentage: {value: 25}",
        "mirror: {host: catalog}\n    mirrorPercent: 25",
        "mirrors: [{destination: {host: catalog}, percentage: {value: 5}}]",
    ] {
        let w = warnings(&vs(
            "c",
            &format!("  - {mirror}\n    route:\n    - destination: {{host: catalog}}\n"),
        ));
        assert!(w.is_empty(), "{mirror}: {w:#?}");
    }
}

#[test]
fn shadow_host_suffix_switch_is_read_and_other_proxy_metadata_warned() {
    let mesh = |metadata: &str| {
        format!(
            "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {{name: mesh}}\nspec:\n  defaultConfig: {{proxyMetadata: {{{metadata}}}}}\n"
        )
    };
    let loaded = Config::from_yaml_str(&mesh("DISABLE_SHADOW_HOST_SUFFIX: \"true\""))
        .unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    assert!(!crate::mirror::host_suffix_enabled(&loaded.config));
    let w = warnings(&mesh("ISTIO_META_DNS_CAPTURE: \"true\""));
    assert_eq!(
        w[0].message,
        "meshConfig.defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE is not supported; ignored"
    );
    let errs = Config::from_yaml_str(&mesh("DISABLE_SHADOW_HOST_SUFFIX: \"yes\"")).unwrap_err();
    find(
        &errs,
        "defaultConfig.proxyMetadata.DISABLE_SHADOW_HOST_SUFFIX",
    );
}

#[test]
fn retries_pool_and_outlier_settings_are_enforced_without_warnings() {
    let w = warnings(&vs(
        "c",
        "  - retries: {attempts: 3, perTryTimeout: 1s, retryOn: \"5xx,reset\"}\n    route:\n    - destination: {host: catalog}\n",
    ));
    assert!(w.is_empty(), "{w:#?}");
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: pool, namespace: istioinaction}\nspec:\n  host: catalog\n  trafficPolicy:\n    connectionPool: {tcp: {maxConnections: 1, connectTimeout: 1s}, http: {http2MaxRequests: 1, http1MaxPendingRequests: 1, idleTimeout: 5s, maxRetries: 2}}\n    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 50}\n";
    let w = warnings(dr);
    assert!(w.is_empty(), "{w:#?}");
    let per_connection = dr.replace(
        "maxRetries: 2",
        "maxRetries: 2, maxRequestsPerConnection: 10",
    );
    let w = warnings(&per_connection);
    assert!(w.is_empty(), "{w:#?}");
    let budget = format!("{dr}    retryBudget: {{percent: 25, minRetryConcurrency: 2}}\n");
    let w = warnings(&budget);
    assert!(w.is_empty(), "{w:#?}");
    // Its window is not applied; a share over 100 % is an error.
    let w = warnings(&budget.replace("minRetryConcurrency: 2", "budgetInterval: 10s"));
    assert_eq!(
        find(&w, "trafficPolicy.retryBudget.budgetInterval").message,
        "budgetInterval: parsed, not enforced yet"
    );
    let errs = errors(&budget.replace("percent: 25", "percent: 250"));
    assert_eq!(
        find(&errs, "trafficPolicy.retryBudget.percent").message,
        "percent 250 is not in 0-100"
    );
}

#[test]
fn timeout_and_fault_are_enforced_without_warnings() {
    let w = warnings(&vs(
        "c",
        "  - timeout: 5s\n    fault: {delay: {fixedDelay: 1s, percentage: {value: 10}}, abort: {grpcStatus: UNAVAILABLE, percentage: {value: 1}}}\n    route:\n    - destination: {host: catalog}\n",
    ));
    assert!(w.is_empty(), "{w:#?}");
}

#[test]
fn unknown_grpc_status_is_an_error_with_suggestion() {
    let errs = errors(&vs(
        "c",
        "  - fault: {abort: {grpcStatus: UNAVAILABEL, percentage: {value: 1}}}\n    route:\n    - destination: {host: catalog}\n",
    ));
    let d = find(&errs, "http[0].fault.abort.grpcStatus");
    assert_eq!(
        d.message,
        "unknown gRPC status \"UNAVAILABEL\" (did you mean \"UNAVAILABLE\"?)"
    );
}

#[test]
fn diagnostics_from_all_files_are_collected() {
    let dir = temp_dir();
    write(
        &dir,
        "a.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hostz: [a]\n",
    );
    write(&dir, "b.yml", "kind: [broken\n");
    write(&dir, "ignored.txt", "not yaml");
    let errs = Config::load_paths(&[&dir]).err().unwrap_or_default();
    let a = errs.iter().find(|d| d.field.as_deref() == Some("hostz"));
    assert!(
        a.is_some_and(|d| d.origin == Some(Origin::new(dir.join("a.yaml"), 0))),
        "{errs:#?}"
    );
    let b = errs.iter().find(|d| d.message.starts_with("invalid YAML"));
    let b = b.unwrap_or_else(|| panic!("{errs:#?}"));
    assert_eq!(
        b.origin.as_ref().map(|o| o.file.clone()),
        Some(dir.join("b.yml"))
    );
    assert!(b.to_string().contains("b.yml"), "{b}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn directory_files_load_in_name_order() {
    let dir = temp_dir();
    for name in ["20-second.yaml", "10-first.yml", "30-third.yaml"] {
        let stem = name.split('.').next().unwrap_or(name);
        write(
            &dir,
            name,
            &format!(
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: s{stem}}}\n\
                 spec: {{hosts: [h{stem}.example.com], ports: [{{number: 80, name: http}}]}}\n"
            ),
        );
    }
    let loaded = Config::load_paths(&[&dir]).unwrap_or_else(|d| panic!("{d:#?}"));
    let names: Vec<&str> = loaded
        .config
        .service_entries
        .iter()
        .map(|s| s.meta.name.as_str())
        .collect();
    assert_eq!(names, ["s10-first", "s20-second", "s30-third"]);
    let files: Vec<PathBuf> = loaded
        .config
        .service_entries
        .iter()
        .map(|s| s.origin.file.clone())
        .collect();
    assert_eq!(files[0], dir.join("10-first.yml"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn missing_name_and_missing_file() {
    let errs =
        Config::from_yaml_str("apiVersion: networking.istio.io/v1\nkind: Sidecar\nspec: {}\n")
            .err()
            .unwrap_or_default();
    assert_eq!(
        find(&errs, "metadata.name").message,
        "metadata.name is required"
    );
    let errs = Config::load_paths(&["/nonexistent/mesh.yaml"])
        .err()
        .unwrap_or_default();
    assert!(
        errs[0].message.contains("/nonexistent/mesh.yaml"),
        "{errs:#?}"
    );
}

#[test]
fn config_serializes_for_config_dump() {
    let loaded = load(&vs(
        "catalog",
        "  - match: [{headers: {x-user: {exact: a}}}]\n    route:\n    - destination: {host: catalog, subset: version-v2}\n",
    ))
    .unwrap_or_else(|d| panic!("{d:#?}"));
    let json = serde_json::to_value(&loaded.config).unwrap_or_default();
    let route = &json["virtualServices"][0]["spec"]["http"][0];
    assert_eq!(route["match"][0]["headers"]["x-user"]["exact"], "a");
    assert_eq!(route["route"][0]["destination"]["subset"], "version-v2");
    assert!(
        route.get("timeout").is_none(),
        "absent fields are not printed: {route}"
    );
    assert_eq!(
        json["virtualServices"][0]["metadata"]["namespace"],
        "istioinaction"
    );
    assert_eq!(json["serviceEntries"][0]["spec"]["resolution"], "STATIC");
}

/// A Telemetry `name` in `istio-system` whose spec is the (indented) `spec`.
fn telemetry(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\n\
         metadata: {{name: {name}, namespace: istio-system}}\nspec:\n{spec}"
    )
}

const FULL_TELEMETRY: &str = r#"  tracing:
  - match: {mode: CLIENT}
    providers: [{name: zipkin}]
    customTags:
      cluster: {literal: {value: east}}
      pod: {environment: {name: POD_NAME, defaultValue: unknown}}
      user: {header: {name: x-user}}
    disableSpanReporting: false
    randomSamplingPercentage: 12.5
    useRequestIdForTraceSampling: false
    enableIstioTags: true
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: REQUEST_COUNT, mode: SERVER}
      disabled: false
      tagOverrides:
        request_protocol: {operation: REMOVE}
        app: {value: "filter_state['app']"}
    - match: {customMetric: my_metric}
      disabled: true
    reportingInterval: 15s
  accessLogging:
  - match: {mode: SERVER}
    providers: [{name: envoy}]
    disabled: false
    filter: {expression: "response.code >= 400"}
"#;

#[test]
fn sampling_by_the_request_id_is_what_the_proxy_does() {
    let on = telemetry(
        "mesh-default",
        "  tracing:\n  - useRequestIdForTraceSampling: true\n",
    );
    let w = warnings(&on);
    assert!(w.is_empty(), "{w:#?}");
    let w = warnings(&on.replace("true", "false"));
    assert_eq!(
        find(&w, "tracing[0].useRequestIdForTraceSampling").message,
        "useRequestIdForTraceSampling: parsed, not enforced yet"
    );
}

#[test]
fn telemetry_with_every_section_loads_with_not_enforced_warnings() {
    // The tracing provider it names.
    let providers = "apiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  extensionProviders: [{name: zipkin, zipkin: {service: zipkin, port: 9411}}]\n";
    let loaded = load(&format!(
        "{}---\n{providers}",
        telemetry("mesh-default", FULL_TELEMETRY)
    ))
    .unwrap_or_else(|d| panic!("{d:#?}"));
    let mut fields: Vec<&str> = loaded
        .warnings
        .iter()
        .filter_map(|d| d.field.as_deref())
        .collect();
    fields.sort_unstable();
    // Mesh-wide tracing settings (its provider too) and access logging on/off per side are
    // enforced; metrics and access-log providers, sampling not following the request id,
    // metric overrides and log filters are not.
    let mut expected = vec![
        "tracing[0].useRequestIdForTraceSampling",
        "metrics[0].providers",
        "metrics[0].overrides[0].match.metric",
        "metrics[0].overrides[0].match.mode",
        "metrics[0].overrides[0].disabled",
        "metrics[0].overrides[0].tagOverrides",
        "metrics[0].overrides[1].match.customMetric",
        "metrics[0].overrides[1].disabled",
        "metrics[0].reportingInterval",
        "accessLogging[0].providers",
        "accessLogging[0].filter",
    ];
    expected.sort_unstable();
    assert_eq!(fields, expected, "{:#?}", loaded.warnings);
    assert_eq!(
        loaded.warnings.len(),
        expected.len(),
        "{:#?}",
        loaded.warnings
    );
    for d in &loaded.warnings {
        assert_eq!(d.severity, Severity::Warning);
        assert_eq!(
            d.resource.as_deref(),
            Some("Telemetry istio-system/mesh-default")
        );
        assert!(d.message.ends_with(": parsed, not enforced yet"), "{d}");
    }
    let d = find(
        &loaded.warnings,
        "metrics[0].overrides[1].match.customMetric",
    );
    assert_eq!(
        d.to_string(),
        "warning: <inline> (document 3) Telemetry istio-system/mesh-default: \
         metrics[0].overrides[1].match.customMetric: customMetric: parsed, not enforced yet"
    );

    let config = &loaded.config;
    assert_eq!(config.telemetries.len(), 1);
    let spec = &config.telemetries[0].spec;
    let tracing = &spec.tracing[0];
    assert_eq!(tracing.random_sampling_percentage, Some(12.5));
    assert_eq!(
        tracing.match_.as_ref().and_then(|m| m.mode),
        Some(WorkloadMode::Client)
    );
    assert_eq!(
        tracing
            .custom_tags
            .get("pod")
            .and_then(|t| t.environment.clone()),
        Some(TracingEnvironment {
            name: "POD_NAME".into(),
            default_value: Some("unknown".into())
        })
    );
    let overrides = &spec.metrics[0].overrides;
    assert_eq!(
        overrides[0].match_.as_ref().and_then(|m| m.metric),
        Some(IstioMetric::RequestCount)
    );
    assert_eq!(
        overrides[0]
            .tag_overrides
            .get("request_protocol")
            .map(TagOverride::operation_or_default),
        Some(TagOperation::Remove)
    );
    assert_eq!(
        spec.metrics[0].reporting_interval,
        Some(Duration(std::time::Duration::from_secs(15)))
    );
    assert_eq!(
        spec.access_logging[0]
            .filter
            .as_ref()
            .map(|f| f.expression.as_str()),
        Some("response.code >= 400")
    );
    assert_eq!(config.mesh_tracing(), Some(tracing));

    let json = serde_json::to_value(config).unwrap_or_default();
    let dumped = &json["telemetries"][0]["spec"];
    assert_eq!(dumped["tracing"][0]["randomSamplingPercentage"], 12.5);
    assert_eq!(dumped["tracing"][0]["match"]["mode"], "CLIENT");
    assert_eq!(
        dumped["metrics"][0]["overrides"][0]["match"]["metric"],
        "REQUEST_COUNT"
    );
    assert_eq!(dumped["metrics"][0]["reportingInterval"], "15s");
}

#[test]
fn attached_or_later_tracing_entries_are_reported_not_enforced() {
    // Attached to a Gateway API resource, it applies to no proxy.
    let attached = telemetry(
        "t",
        "  targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: gw}\n  tracing: [{randomSamplingPercentage: 10}]\n",
    );
    let w = warnings(&attached);
    find(&w, "targetRef");
    find(&w, "tracing[0].randomSamplingPercentage");
    // Selecting workloads by label, it applies to the proxies it selects.
    let selecting = telemetry(
        "t",
        "  selector: {matchLabels: {app: catalog}}\n  tracing: [{randomSamplingPercentage: 10}]\n",
    );
    let w = warnings(&selecting);
    assert!(w.is_empty(), "{w:#?}");
    let second = telemetry(
        "t",
        "  tracing: [{randomSamplingPercentage: 10}, {customTags: {a: {literal: {value: b}}}}]\n",
    );
    let w = warnings(&second);
    assert_eq!(w.len(), 1, "{w:#?}");
    find(&w, "tracing[1].customTags");
    // One entry per side: both apply.
    let sides = telemetry(
        "t",
        "  tracing:\n  - {match: {mode: CLIENT}, randomSamplingPercentage: 10}\n  - {match: {mode: SERVER}, randomSamplingPercentage: 50}\n",
    );
    let loaded = load(&sides).unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    let shop = crate::table::SourceWorkload {
        namespace: "shop".into(),
        ..Default::default()
    };
    let server = loaded
        .config
        .tracing_for(WorkloadMode::Server, &shop)
        .unwrap();
    assert_eq!(server.random_sampling_percentage, Some(50.0));
}

#[test]
fn telemetry_api_versions_are_accepted() {
    for version in [
        "telemetry.istio.io/v1",
        "telemetry.istio.io/v1beta1",
        "telemetry.istio.io/v1alpha1",
    ] {
        let text = telemetry("t", "  tracing: [{randomSamplingPercentage: 10}]\n")
            .replace("telemetry.istio.io/v1\n", &format!("{version}\n"));
        assert!(text.contains(version));
        let loaded = Config::from_yaml_str(&text).unwrap_or_else(|d| panic!("{version}: {d:#?}"));
        assert_eq!(loaded.config.telemetries.len(), 1, "{version}");
        assert_eq!(
            loaded.warnings.len(),
            0,
            "{version}: mesh-wide sampling is enforced: {:#?}",
            loaded.warnings
        );
        assert_eq!(
            loaded
                .config
                .mesh_tracing()
                .unwrap()
                .random_sampling_percentage,
            Some(10.0)
        );
    }
    let errs = Config::from_yaml_str(
        "apiVersion: telemetry.istio.io/v2\nkind: Telemetry\nmetadata: {name: t}\nspec: {}\n",
    )
    .err()
    .unwrap_or_default();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0]
            .message
            .contains("telemetry.istio.io/v1 (or v1beta1, v1alpha1) Telemetry"),
        "{}",
        errs[0]
    );
    let errs = Config::from_yaml_str(
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetri\nmetadata: {name: t}\nspec: {}\n",
    )
    .err()
    .unwrap_or_default();
    assert!(
        errs[0].message.contains("did you mean \"Telemetry\""),
        "{}",
        errs[0]
    );
}

#[test]
fn telemetry_sampling_out_of_range_is_an_error() {
    let errs = errors(&telemetry(
        "t",
        "  tracing:\n  - randomSamplingPercentage: 120\n  - randomSamplingPercentage: -1\n",
    ));
    let d = find(&errs, "tracing[0].randomSamplingPercentage");
    assert_eq!(d.message, "randomSamplingPercentage 120 is not in 0-100");
    assert_eq!(
        d.to_string(),
        "error: <inline> (document 3) Telemetry istio-system/t: \
         tracing[0].randomSamplingPercentage: randomSamplingPercentage 120 is not in 0-100"
    );
    find(&errs, "tracing[1].randomSamplingPercentage");
    assert_eq!(errs.len(), 2, "{errs:#?}");
}

#[test]
fn telemetry_custom_tag_needs_exactly_one_named_source() {
    let errs = errors(&telemetry(
        "t",
        "  tracing:\n  - customTags:\n      empty: {}\n      both: {literal: {value: x}, header: {name: x-user}}\n\
         \x20     env: {environment: {defaultValue: none}}\n      hdr: {header: {name: \"\"}}\n\
         \x20     lit: {literal: {}}\n      ok: {header: {name: x-ok}}\n",
    ));
    assert_eq!(
        find(&errs, "tracing[0].customTags.empty").message,
        "custom tag \"empty\" needs one of literal, environment, header"
    );
    assert_eq!(
        find(&errs, "tracing[0].customTags.both").message,
        "custom tag \"both\" sets literal and header; set exactly one of literal, environment, header"
    );
    assert_eq!(
        find(&errs, "tracing[0].customTags.env.environment.name").message,
        "name is required"
    );
    assert_eq!(
        find(&errs, "tracing[0].customTags.hdr.header.name").message,
        "name is required"
    );
    assert_eq!(
        find(&errs, "tracing[0].customTags.lit.literal.value").message,
        "value is required"
    );
    assert_eq!(errs.len(), 5, "{errs:#?}");
}

#[test]
fn telemetry_upsert_tag_override_needs_a_value() {
    let errs = errors(&telemetry(
        "t",
        "  metrics:\n  - overrides:\n    - tagOverrides:\n        implicit: {}\n\
         \x20       explicit: {operation: UPSERT}\n        blank: {operation: UPSERT, value: \"\"}\n\
         \x20       removed: {operation: REMOVE, value: x}\n        fine: {operation: REMOVE}\n",
    ));
    let at = "metrics[0].overrides[0].tagOverrides";
    for name in ["implicit", "explicit", "blank"] {
        assert_eq!(
            find(&errs, &format!("{at}.{name}.value")).message,
            "value is required when operation is UPSERT (the default)"
        );
    }
    assert_eq!(
        find(&errs, &format!("{at}.removed.value")).message,
        "value is not allowed when operation is REMOVE"
    );
    assert_eq!(errs.len(), 4, "{errs:#?}");
}

#[test]
fn telemetry_unknown_enum_values_suggest_the_right_one() {
    let errs = errors(&telemetry(
        "t",
        "  tracing: [{match: {mode: CLIENT_AND_SERVR}}]\n\
         \x20 metrics: [{overrides: [{match: {metric: REQUEST_COUNTS}, tagOverrides: {a: {operation: UPSRT}}}]}]\n\
         \x20 accessLogging: [{match: {mode: SERVERS}}]\n",
    ));
    assert_eq!(
        find(&errs, "tracing[0].match.mode").message,
        "unknown value \"CLIENT_AND_SERVR\" (did you mean \"CLIENT_AND_SERVER\"?)"
    );
    assert_eq!(
        find(&errs, "metrics[0].overrides[0].match.metric").message,
        "unknown value \"REQUEST_COUNTS\" (did you mean \"REQUEST_COUNT\"?)"
    );
    assert_eq!(
        find(&errs, "metrics[0].overrides[0].tagOverrides.a.operation").message,
        "unknown value \"UPSRT\" (did you mean \"UPSERT\"?)"
    );
    assert_eq!(
        find(&errs, "accessLogging[0].match.mode").message,
        "unknown value \"SERVERS\" (did you mean \"SERVER\"?)"
    );
}

#[test]
fn telemetry_unknown_field_suggests_the_right_name() {
    let errs = errors(&telemetry(
        "t",
        "  tracing:\n  - randomSamplingPercentag: 10\n    customTags: {a: {literl: {value: x}}}\n\
         \x20 acessLogging: []\n",
    ));
    let d = find(&errs, "tracing[0].randomSamplingPercentag");
    assert_eq!(
        d.message,
        "unknown field \"randomSamplingPercentag\" (did you mean \"randomSamplingPercentage\"?)"
    );
    assert_eq!(d.resource.as_deref(), Some("Telemetry istio-system/t"));
    assert_eq!(
        find(&errs, "tracing[0].customTags.a.literl").message,
        "unknown field \"literl\" (did you mean \"literal\"?)"
    );
    assert_eq!(
        find(&errs, "acessLogging").message,
        "unknown field \"acessLogging\" (did you mean \"accessLogging\"?)"
    );
}

#[test]
fn telemetry_selector_and_target_refs_are_exclusive() {
    let errs = errors(&telemetry(
        "t",
        "  selector: {matchLabels: {app: catalog}}\n\
         \x20 targetRefs: [{kind: Service, name: catalog}, {group: \"\", kind: \"\", name: \"\"}]\n\
         \x20 metrics: [{overrides: [{match: {metric: REQUEST_COUNT, customMetric: x}}]}]\n",
    ));
    assert_eq!(
        find(&errs, "targetRefs").message,
        "only one of selector, targetRef and targetRefs may be set, found selector and targetRefs"
    );
    assert_eq!(
        find(&errs, "targetRefs[1].kind").message,
        "kind is required"
    );
    assert_eq!(
        find(&errs, "targetRefs[1].name").message,
        "name is required"
    );
    assert_eq!(
        find(&errs, "metrics[0].overrides[0].match.customMetric").message,
        "metric and customMetric cannot both be set"
    );
    let errs = errors(&telemetry("t", "  targetRef: {kind: Gateway}\n"));
    assert_eq!(
        find(&errs, "targetRef.name").message,
        "required field \"name\" is missing"
    );
}

#[test]
fn telemetry_loads_among_other_resources() {
    let text = format!(
        "{}---\n{}---\n{}---\n\
         apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: default, namespace: istioinaction}}\n\
         spec: {{outboundTrafficPolicy: {{mode: REGISTRY_ONLY}}}}\n",
        vs(
            "catalog",
            "  - route:\n    - destination: {host: catalog, subset: version-v1}\n"
        ),
        telemetry(
            "workloads",
            "  selector: {matchLabels: {app: catalog}}\n  tracing: [{randomSamplingPercentage: 100}]\n",
        ),
        telemetry(
            "mesh-default",
            "  tracing: [{randomSamplingPercentage: 1}]\n"
        ),
    );
    let loaded = load(&text).unwrap_or_else(|d| panic!("{d:#?}"));
    let config = &loaded.config;
    assert_eq!(config.service_entries.len(), 1);
    assert_eq!(config.destination_rules.len(), 1);
    assert_eq!(config.virtual_services.len(), 1);
    assert_eq!(config.sidecars.len(), 1);
    let names: Vec<&str> = config
        .telemetries
        .iter()
        .map(|t| t.meta.name.as_str())
        .collect();
    assert_eq!(names, ["workloads", "mesh-default"]);
    assert_eq!(config.telemetries[1].origin, Origin::new("<inline>", 4));
    assert_eq!(config.outbound_mode(), OutboundMode::RegistryOnly);
    // The Telemetry with a selector is not mesh-wide: it applies to the proxies it selects.
    assert_eq!(
        config
            .mesh_tracing()
            .and_then(|t| t.random_sampling_percentage),
        Some(1.0)
    );
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    let sampling = |app: &str| {
        let proxy = crate::table::SourceWorkload {
            labels: [("app".to_string(), app.to_string())].into(),
            namespace: "istio-system".into(),
        };
        config
            .tracing_for(WorkloadMode::Client, &proxy)
            .and_then(|t| t.random_sampling_percentage)
    };
    assert_eq!(
        (sampling("catalog"), sampling("web")),
        (Some(100.0), Some(1.0))
    );
    assert_eq!(Config::default().mesh_tracing(), None);
}

fn temp_dir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mesh-route-config-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("{name}: {e}"));
}

/// A Flagger Canary for `catalog` between subsets v1 (primary) and v2, with `analysis` (YAML
/// lines indented four spaces) and `extra` spec lines (indented two).
fn canary(analysis: &str, extra: &str) -> String {
    format!(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\n\
         metadata:\n  name: catalog\n  namespace: istioinaction\n  annotations:\n    \
         mesh/primary-subset: version-v1\n    mesh/canary-subset: version-v2\n\
         spec:\n  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: catalog}}\n  \
         service: {{port: 80}}\n{extra}  analysis:\n{analysis}"
    )
}

const STEPS: &str = "    interval: 10s\n    stepWeight: 10\n    maxWeight: 50\n    metrics:\n    \
     - {name: request-success-rate, thresholdRange: {min: 99}, interval: 1m}\n    \
     - {name: request-duration, thresholdRange: {max: 500}, interval: 30s}\n";

#[test]
fn a_flagger_canary_loads_and_routes_its_service_to_the_primary() {
    let loaded = load(&canary(STEPS, "")).expect("valid canary");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let config = loaded.config;
    assert_eq!(config.canaries.len(), 1);
    assert!(config.virtual_services.is_empty());
    let routed = config.with_canary_routes();
    let route = &routed.virtual_services[0].spec.http[0].route;
    assert_eq!(route[0].destination.subset.as_deref(), Some("version-v1"));
    assert_eq!(route[0].weight, Some(100));
    assert_eq!(route[1].destination.subset.as_deref(), Some("version-v2"));
    assert_eq!(route[1].weight, Some(0));
}

#[test]
fn canary_fields_the_mesh_cannot_honour_are_errors_naming_them() {
    let webhooks = "    stepWeight: 10\n    webhooks: [{name: load, url: http://x/}]\n";
    let e = errors(&canary(webhooks, ""));
    assert!(find(&e, "analysis.webhooks").message.contains("webhooks"));
    let template = "    stepWeight: 10\n    metrics: [{name: errors, templateRef: {name: t}}]\n";
    let e = errors(&canary(template, ""));
    assert!(
        find(&e, "analysis.metrics[0].templateRef")
            .message
            .contains("MetricTemplates")
    );
    assert!(
        find(&e, "analysis.metrics[0].name")
            .message
            .contains("request-success-rate")
    );
    let e = errors(&canary("    interval: 10s\n", ""));
    assert!(find(&e, "analysis").message.contains("stepWeight"));
    let e = errors(&canary(STEPS, "  skipAnalysys: true\n"));
    assert!(e[0].message.contains("skipAnalysis"), "{}", e[0]);
    let e = errors(&canary(
        "    iterations: 0\n    stepWeight: 5\n    match: [{headers: {x: {exact: y}}}]\n",
        "",
    ));
    assert!(find(&e, "analysis.match").message.contains("iterations"));
}

#[test]
fn canary_metrics_servers_and_names_are_checked() {
    let e = errors(&canary(STEPS, "  metricsServer: https://prometheus:9090\n"));
    assert!(find(&e, "metricsServer").message.contains("only http://"));
    let twice = format!("{}---\n{}", canary(STEPS, ""), canary(STEPS, ""));
    let e = errors(&twice);
    assert!(
        e.iter().any(|d| d
            .message
            .starts_with("a second Canary istioinaction/catalog")),
        "{e:#?}"
    );
    let w = warnings(&canary(
        "    iterations: 2\n    mirrorWeight: 20\n    metrics: [{name: request-success-rate, thresholdRange: {min: 99}}]\n",
        "",
    ));
    assert!(
        find(&w, "analysis.mirrorWeight")
            .message
            .contains("mirror is not on")
    );
    assert!(
        find(&w, "analysis.iterations")
            .message
            .contains("Blue/Green without mirror")
    );
}

#[test]
fn kubernetes_only_canary_fields_are_warned_about() {
    let w = warnings(&canary(STEPS, "  progressDeadlineSeconds: 60\n"));
    assert!(
        find(&w, "progressDeadlineSeconds")
            .message
            .contains("ignored")
    );
}

#[test]
fn canary_destinations_and_hosts_are_checked_against_the_registry() {
    let missing = canary(STEPS, "").replace("version-v2", "version-v3");
    let e = errors(&missing);
    let d = find(&e, "canary destination.subset");
    assert!(d.message.contains("version-v3"), "{d}");
    assert_eq!(d.resource.as_deref(), Some("Canary istioinaction/catalog"));
    let route = "  - route:\n    - destination: {host: catalog, subset: version-v1}\n";
    let both = format!("{}---\n{}", vs("catalog", route), canary(STEPS, ""));
    let e = errors(&both);
    assert!(
        find(&e, "service")
            .message
            .contains("VirtualService istioinaction/catalog")
    );
}

fn authorization_policy(spec: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n\
         metadata: {{name: p, namespace: istioinaction}}\nspec:\n{spec}"
    )
}

#[test]
fn authorization_policies_refuse_what_cannot_be_enforced() {
    let e = errors(&authorization_policy(
        "  action: CUSTOM\n  provider: {name: ext}\n",
    ));
    assert!(find(&e, "action").message.contains("CUSTOM"));
    let e = errors(&authorization_policy(
        "  rules:\n  - from: [{source: {requestPrincipals: ['*']}}]\n    \
         when: [{key: 'request.auth.claims[iss]', values: [x]}]\n",
    ));
    assert!(
        find(&e, "rules[0].from[0].source.requestPrincipals")
            .message
            .contains("JWT")
    );
    assert!(
        find(&e, "rules[0].when[0].key")
            .message
            .contains("request.headers[NAME]")
    );
    let e = errors(&authorization_policy(
        "  rules:\n  - from: [{source: {ipBlocks: [10.0.0.0/33]}}]\n",
    ));
    assert!(
        find(&e, "rules[0].from[0].source.ipBlocks[0]")
            .message
            .contains("CIDR")
    );
    let loaded = load(&authorization_policy(
        "  action: DENY\n  rules:\n  - to: [{operation: {paths: ['/admin*'], ports: ['3000']}}]\n    \
         when: [{key: 'request.headers[x-env]', notValues: [prod]}]\n",
    ))
    .expect("a valid policy");
    assert_eq!(loaded.config.authorization_policies.len(), 1);
}

#[test]
fn peer_authentication_port_levels_need_a_selector() {
    let yaml = "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\n\
                metadata: {name: default, namespace: istioinaction}\n\
                spec:\n  mtls: {mode: STRICT}\n  portLevelMtls: {8080: {mode: DISABLE}}\n";
    let e = errors(yaml);
    assert!(find(&e, "portLevelMtls").message.contains("selector"));
    let e = errors(&yaml.replace("STRICT", "STRIKT"));
    assert!(e.iter().any(|d| d.message.contains("STRICT")), "{e:#?}");
    let e = errors(&yaml.replace(", namespace: istioinaction", ""));
    assert!(
        find(&e, "metadata.namespace")
            .message
            .contains("which workloads")
    );
}

#[test]
fn destination_rule_traffic_policy_out_of_range_fails_to_load() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
                metadata: {name: catalog, namespace: shop}\nspec:\n  host: catalog\n  \
                trafficPolicy:\n    outlierDetection: {baseEjectionTime: 0s}\n";
    let errs = Config::from_yaml_str(yaml).expect_err("baseEjectionTime: 0s must be rejected");
    let d = find(&errs, "trafficPolicy.outlierDetection.baseEjectionTime");
    assert_eq!(
        d.to_string(),
        "error: <inline> (document 1) DestinationRule shop/catalog: \
         trafficPolicy.outlierDetection.baseEjectionTime: baseEjectionTime must be at least 1ms, \
         got 0s"
    );
}
