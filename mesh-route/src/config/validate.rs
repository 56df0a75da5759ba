//! Runs every validation pass over a loaded [`Config`]: the per-resource rules
//! (VirtualService routes, DestinationRules, ServiceEntries, Sidecars, Telemetries, mesh
//! settings), the cross-resource checks, and the "parsed, not enforced yet" warnings.

use super::Config;
use super::authorization_policy::validate_authorization_policy;
use super::canary::{Canary, CanaryRouting, validate_canary};
use super::cross_resource::validate_cross_resource;
use super::diagnostic::{Diagnostic, Origin, Reporter};
use super::enforcement::{Finder, NOT_ENFORCED, not_enforced_message};
use super::extension_provider::check_tracing_references;
use super::gateway::validate_gateway;
use super::mesh_config::MeshConfig;
use super::peer_authentication::validate_peer_authentication;
use super::resource::RUST_ORIGIN;
use super::resource::label;
use super::resource_rules::{
    validate_destination_rule, validate_mesh_config, validate_service_entry, validate_sidecar,
    validate_sidecar_set, validate_telemetry,
};
use super::route_rules::validate_virtual_service;

/// One mesh-settings document (`MeshConfig` or an IstioOperator's `spec.meshConfig`, or the
/// settings of a configuration built in Rust), kept apart until validation so its diagnostics
/// can point at it.
pub(crate) struct MeshDocument {
    /// Where it was read from.
    pub(crate) origin: Origin,
    /// `Kind ns/name` of the document.
    pub(crate) label: String,
    /// Field-path prefix (`meshConfig` inside an IstioOperator).
    pub(crate) prefix: &'static str,
    /// The parsed settings.
    pub(crate) mesh: MeshConfig,
}

impl MeshDocument {
    /// The mesh settings of a configuration built in Rust.
    pub(crate) fn built(mesh: MeshConfig) -> Self {
        MeshDocument {
            origin: Origin::new(RUST_ORIGIN, 0),
            label: "MeshConfig (built in Rust)".into(),
            prefix: "",
            mesh,
        }
    }
}

/// Runs every pass and appends the diagnostics to `out`.
pub(crate) fn validate_all(config: &Config, mesh: &[MeshDocument], out: &mut Vec<Diagnostic>) {
    for vs in &config.virtual_services {
        let name = label("VirtualService", vs);
        let delegated_to = config.virtual_services.iter().any(|other| {
            other.spec.http.iter().any(|route| {
                route.delegate.as_ref().is_some_and(|d| {
                    d.name == vs.meta.name
                        && d.namespace.as_deref().or(other.namespace()) == vs.namespace()
                })
            })
        });
        validate_virtual_service(
            &vs.spec,
            delegated_to,
            &mut Reporter::new(&vs.origin, &name, out),
        );
    }
    for dr in &config.destination_rules {
        let name = label("DestinationRule", dr);
        validate_destination_rule(&dr.spec, &mut Reporter::new(&dr.origin, &name, out));
    }
    for se in &config.service_entries {
        let name = label("ServiceEntry", se);
        validate_service_entry(&se.spec, &mut Reporter::new(&se.origin, &name, out));
    }
    for sidecar in &config.sidecars {
        let name = label("Sidecar", sidecar);
        validate_sidecar(
            &sidecar.spec,
            &mut Reporter::new(&sidecar.origin, &name, out),
        );
    }
    validate_sidecar_set(&config.sidecars, out);
    for gateway in &config.gateways {
        let name = label("Gateway", gateway);
        validate_gateway(
            &gateway.spec,
            &mut Reporter::new(&gateway.origin, &name, out),
        );
    }
    // The providers in force: the last mesh document's that defines any (as merged).
    let providers = mesh
        .iter()
        .rev()
        .map(|document| document.mesh.extension_providers.as_slice())
        .find(|providers| !providers.is_empty())
        .unwrap_or_default();
    for telemetry in &config.telemetries {
        let name = label("Telemetry", telemetry);
        let mut reporter = Reporter::new(&telemetry.origin, &name, out);
        validate_telemetry(&telemetry.spec, &mut reporter);
        for (i, tracing) in telemetry.spec.tracing.iter().enumerate() {
            let names: Vec<&str> = tracing.providers.iter().map(|p| p.name.as_str()).collect();
            let at = format!("tracing[{i}].providers");
            check_tracing_references(&names, &at, providers, &mut reporter);
        }
    }
    for (i, canary) in config.canaries.iter().enumerate() {
        let name = label("Canary", canary);
        let mut reporter = Reporter::new(&canary.origin, &name, out);
        let qualified = canary.meta.qualified_name();
        if let Some(first) = config.canaries[..i]
            .iter()
            .find(|c| c.meta.qualified_name() == qualified)
        {
            reporter.error(
                "",
                format!(
                    "a second Canary {qualified} (the first is at {})",
                    first.origin
                ),
            );
        }
        validate_canary(&canary.spec, &mut reporter);
        // The routes it writes, checked as any VirtualService's.
        let routes = Canary::virtual_service(canary, CanaryRouting::default());
        let name = format!("{name} (its routes)");
        validate_virtual_service(
            &routes,
            false,
            &mut Reporter::new(&canary.origin, &name, out),
        );
    }
    // A security policy's namespace decides what it covers: it cannot be left to a default.
    let require_namespace = |namespace: Option<&str>, reporter: &mut Reporter<'_>| {
        if namespace.is_none() {
            reporter.error(
                "metadata.namespace",
                "metadata.namespace is required: it decides which workloads the policy covers \
                 (the root namespace, istio-system by default, for the whole mesh)",
            );
        }
    };
    for policy in &config.authorization_policies {
        let name = label("AuthorizationPolicy", policy);
        let mut reporter = Reporter::new(&policy.origin, &name, out);
        require_namespace(policy.namespace(), &mut reporter);
        validate_authorization_policy(&policy.spec, &mut reporter);
    }
    for policy in &config.peer_authentications {
        let name = label("PeerAuthentication", policy);
        let mut reporter = Reporter::new(&policy.origin, &name, out);
        require_namespace(policy.namespace(), &mut reporter);
        validate_peer_authentication(&policy.spec, &mut reporter);
    }
    for document in mesh {
        let mut reporter =
            Reporter::new(&document.origin, &document.label, out).with_prefix(document.prefix);
        validate_mesh_config(&document.mesh, &mut reporter);
        if let Some(defaults) = &document.mesh.default_providers {
            let names: Vec<&str> = defaults.tracing.iter().map(String::as_str).collect();
            check_tracing_references(&names, "defaultProviders.tracing", providers, &mut reporter);
        }
    }
    validate_cross_resource(config, out);
    report_not_enforced(config, mesh, out);
}

/// One warning per present field that the data plane does not enforce yet.
fn report_not_enforced(config: &Config, mesh: &[MeshDocument], out: &mut Vec<Diagnostic>) {
    for row in NOT_ENFORCED {
        let message = not_enforced_message(row.field);
        match row.find {
            Finder::VirtualService(find) => {
                for r in &config.virtual_services {
                    let name = label("VirtualService", r);
                    let mut reporter = Reporter::new(&r.origin, &name, out);
                    find(&r.spec)
                        .iter()
                        .for_each(|f| reporter.warning(f, &message));
                }
            }
            Finder::DestinationRule(find) => {
                for r in &config.destination_rules {
                    let name = label("DestinationRule", r);
                    let mut reporter = Reporter::new(&r.origin, &name, out);
                    find(&r.spec)
                        .iter()
                        .for_each(|f| reporter.warning(f, &message));
                }
            }
            Finder::ServiceEntry(find) => {
                for r in &config.service_entries {
                    let name = label("ServiceEntry", r);
                    let mut reporter = Reporter::new(&r.origin, &name, out);
                    find(&r.spec)
                        .iter()
                        .for_each(|f| reporter.warning(f, &message));
                }
            }
            Finder::Sidecar(find) => {
                for r in &config.sidecars {
                    let name = label("Sidecar", r);
                    let mut reporter = Reporter::new(&r.origin, &name, out);
                    find(&r.spec)
                        .iter()
                        .for_each(|f| reporter.warning(f, &message));
                }
            }
            Finder::Telemetry(find) => {
                for r in &config.telemetries {
                    let name = label("Telemetry", r);
                    let mut reporter = Reporter::new(&r.origin, &name, out);
                    find(&r.spec)
                        .iter()
                        .for_each(|f| reporter.warning(f, &message));
                }
            }
            Finder::Mesh(find) => {
                for document in mesh {
                    let mut reporter = Reporter::new(&document.origin, &document.label, out)
                        .with_prefix(document.prefix);
                    find(&document.mesh)
                        .iter()
                        .for_each(|f| reporter.warning(f, &message));
                }
            }
        }
    }
}
