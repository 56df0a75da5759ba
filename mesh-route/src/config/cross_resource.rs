//! Checks that join resources: every route destination is a declared service, its port
//! is one of the service's ports and its subset is defined by a DestinationRule; no two
//! VirtualServices claim the same host; DestinationRules point at declared services and
//! their subsets select endpoints (Kiali KIA0203).
//!
//! Host names are compared in canonical form (`crate::host::canonical_host`), each
//! resolved against the namespace of the resource that names it.

use std::collections::BTreeMap;

use super::Config;
use super::canary::Canary;
use super::destination_rule::DestinationRule;
use super::diagnostic::{Diagnostic, Reporter};
use super::gateway::{Gateway, qualified_gateway_name, resolve_gateway_reference};
use super::resource::{Resource, label};
use super::service_entry::ServiceEntry;
use super::virtual_service::{Destination, VirtualService};
use crate::host::{canonical_host, host_aliases, host_matches};

/// Appends the cross-resource diagnostics of `config` to `out`.
pub(crate) fn validate_cross_resource(config: &Config, out: &mut Vec<Diagnostic>) {
    let registry = Registry::new(config);
    for vs in &config.virtual_services {
        let name = label("VirtualService", vs);
        let mut reporter = Reporter::new(&vs.origin, &name, out);
        for (at, destination) in destinations(&vs.spec) {
            registry.check_destination(destination, vs.namespace(), &at, &mut reporter);
        }
        check_gateway_references(vs, &config.gateways, &mut reporter);
    }
    check_host_conflicts(&config.virtual_services, out);
    check_gateway_host_conflicts(&config.virtual_services, out);
    for canary in &config.canaries {
        let name = label("Canary", canary);
        let mut reporter = Reporter::new(&canary.origin, &name, out);
        let ns = canary.namespace();
        registry.check_destination(
            &Canary::primary(canary),
            ns,
            "primary destination",
            &mut reporter,
        );
        registry.check_destination(
            &Canary::canary(canary),
            ns,
            "canary destination",
            &mut reporter,
        );
        check_canary_hosts(canary, config, &mut reporter);
    }
    for dr in &config.destination_rules {
        let name = label("DestinationRule", dr);
        let mut reporter = Reporter::new(&dr.origin, &name, out);
        registry.check_destination_rule(dr, &mut reporter);
    }
}

/// Two VirtualServices attaching the same host to the same Gateway is an error: Istio merges
/// them, this proxy would serve only the first.
fn check_gateway_host_conflicts(services: &[Resource<VirtualService>], out: &mut Vec<Diagnostic>) {
    let mut claimed: BTreeMap<(String, String), &Resource<VirtualService>> = BTreeMap::new();
    for vs in services {
        let name = label("VirtualService", vs);
        for gateway in vs
            .spec
            .gateways
            .iter()
            .filter_map(|g| resolve_gateway_reference(g, vs.namespace()))
        {
            for (i, host) in vs.spec.hosts.iter().enumerate() {
                let key = (gateway.clone(), canonical_host(host, vs.namespace()));
                match claimed.get(&key) {
                    Some(first) if !std::ptr::eq(*first, vs) => {
                        Reporter::new(&vs.origin, &name, out).error(
                            format!("hosts[{i}]"),
                            format!(
                                "host \"{host}\" is also attached to Gateway {gateway} by {} ({}); \
                                 put its routes in one VirtualService (merging is not supported)",
                                label("VirtualService", first),
                                first.origin
                            ),
                        );
                    }
                    _ => {
                        claimed.insert(key, vs);
                    }
                }
            }
        }
    }
}

/// Every Gateway a VirtualService names in `gateways` (its own and its matches') must exist
/// (istioctl IST0101).
fn check_gateway_references(
    vs: &Resource<VirtualService>,
    gateways: &[Resource<Gateway>],
    reporter: &mut Reporter<'_>,
) {
    let known: Vec<String> = gateways.iter().map(qualified_gateway_name).collect();
    let mut check = |at: String, reference: &str| {
        if let Some(qualified) = resolve_gateway_reference(reference, vs.namespace())
            && !known.contains(&qualified)
        {
            reporter.error(
                at,
                format!("gateway \"{reference}\" ({qualified}) is not defined by any Gateway"),
            );
        }
    };
    for (i, reference) in vs.spec.gateways.iter().enumerate() {
        check(format!("gateways[{i}]"), reference);
    }
    for (i, route) in vs.spec.http.iter().enumerate() {
        for (j, m) in route.match_.iter().enumerate() {
            for (k, reference) in m.gateways.iter().enumerate() {
                check(format!("http[{i}].match[{j}].gateways[{k}]"), reference);
            }
        }
    }
    for (i, route) in vs.spec.tls.iter().enumerate() {
        for (j, m) in route.match_.iter().enumerate() {
            for (k, reference) in m.gateways.iter().enumerate() {
                check(format!("tls[{i}].match[{j}].gateways[{k}]"), reference);
            }
        }
    }
    for (i, route) in vs.spec.tcp.iter().enumerate() {
        for (j, m) in route.match_.iter().enumerate() {
            for (k, reference) in m.gateways.iter().enumerate() {
                check(format!("tcp[{i}].match[{j}].gateways[{k}]"), reference);
            }
        }
    }
}

/// Whether the (canonical) host `pattern` covers the (canonical) host `name`: equal,
/// wildcard match, or one is a short form of the other (a resource without namespace).
fn covers(pattern: &str, name: &str) -> bool {
    host_matches(pattern, name)
        || host_aliases(pattern).iter().any(|alias| alias == name)
        || host_aliases(name).iter().any(|alias| alias == pattern)
}

/// ServiceEntries and DestinationRules indexed by canonical host.
struct Registry<'a> {
    services: Vec<(String, &'a Resource<ServiceEntry>)>,
    rules: Vec<(String, &'a Resource<DestinationRule>)>,
}

impl<'a> Registry<'a> {
    fn new(config: &'a Config) -> Self {
        let services = config
            .service_entries
            .iter()
            .flat_map(|se| {
                se.spec
                    .hosts
                    .iter()
                    .map(move |host| (canonical_host(host, se.namespace()), se))
            })
            .collect();
        let rules = config
            .destination_rules
            .iter()
            .map(|dr| (canonical_host(&dr.spec.host, dr.namespace()), dr))
            .collect();
        Self { services, rules }
    }

    /// ServiceEntries declaring the canonical `host` (each at most once).
    fn services_for(&self, host: &str) -> Vec<&'a Resource<ServiceEntry>> {
        let mut found: Vec<&Resource<ServiceEntry>> = Vec::new();
        for (pattern, se) in &self.services {
            if covers(pattern, host) && !found.iter().any(|f| std::ptr::eq(*f, *se)) {
                found.push(se);
            }
        }
        found
    }

    fn rules_for(&self, host: &str) -> impl Iterator<Item = &'a Resource<DestinationRule>> {
        self.rules
            .iter()
            .filter(move |(pattern, _)| covers(pattern, host))
            .map(|(_, dr)| *dr)
    }

    fn check_destination(
        &self,
        destination: &Destination,
        namespace: Option<&str>,
        at: &str,
        r: &mut Reporter<'_>,
    ) {
        let host = canonical_host(&destination.host, namespace);
        let services = self.services_for(&host);
        if services.is_empty() {
            r.error(
                format!("{at}.host"),
                format!(
                    "destination host \"{}\" is not declared by any ServiceEntry",
                    destination.host
                ),
            );
        } else if let Some(port) = destination.port {
            let declared: Vec<u32> = services
                .iter()
                .flat_map(|se| se.spec.ports.iter().map(|p| p.number))
                .collect();
            if !declared.contains(&port.number) {
                let list: Vec<String> = declared.iter().map(u32::to_string).collect();
                r.error(
                    format!("{at}.port.number"),
                    format!(
                        "port {} is not declared by the ServiceEntry for host \"{}\" (declared: {})",
                        port.number,
                        destination.host,
                        if list.is_empty() { "none".to_string() } else { list.join(", ") }
                    ),
                );
            }
        }
        if let Some(subset) = &destination.subset {
            let defined = self
                .rules_for(&host)
                .any(|dr| dr.spec.subsets.iter().any(|s| s.name == *subset));
            if !defined {
                r.error(
                    format!("{at}.subset"),
                    format!(
                        "\"{subset}\" is not defined by any DestinationRule for host {}",
                        destination.host
                    ),
                );
            }
        }
    }

    fn check_destination_rule(&self, dr: &Resource<DestinationRule>, r: &mut Reporter<'_>) {
        let host = canonical_host(&dr.spec.host, dr.namespace());
        let services = self.services_for(&host);
        if services.is_empty() {
            if !dr.spec.host.is_empty() {
                r.warning(
                    "host",
                    format!(
                        "host \"{}\" is not declared by any ServiceEntry",
                        dr.spec.host
                    ),
                );
            }
            return;
        }
        let with_endpoints: Vec<_> = services
            .iter()
            .filter(|se| !se.spec.endpoints.is_empty())
            .collect();
        if with_endpoints.is_empty() {
            return;
        }
        for (i, subset) in dr.spec.subsets.iter().enumerate() {
            if subset.labels.is_empty() {
                continue;
            }
            let selects = with_endpoints.iter().any(|se| {
                se.spec.endpoints.iter().any(|endpoint| {
                    subset
                        .labels
                        .iter()
                        .all(|(k, v)| endpoint.labels.get(k) == Some(v))
                })
            });
            if !selects {
                let labels: Vec<String> = subset
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let entries: Vec<String> = with_endpoints
                    .iter()
                    .map(|se| label("ServiceEntry", se))
                    .collect();
                r.warning(
                    format!("subsets[{i}].labels"),
                    format!(
                        "subset \"{}\" ({}) selects no endpoint of {} (requests to it would fail with 503)",
                        subset.name,
                        labels.join(", "),
                        entries.join(", ")
                    ),
                );
            }
        }
    }
}

/// Every destination a VirtualService sends traffic to, with its field path.
fn destinations(vs: &VirtualService) -> Vec<(String, &Destination)> {
    let mut out = Vec::new();
    for (i, route) in vs.http.iter().enumerate() {
        for (k, d) in route.route.iter().enumerate() {
            out.push((format!("http[{i}].route[{k}].destination"), &d.destination));
        }
        if let Some(mirror) = &route.mirror {
            out.push((format!("http[{i}].mirror"), mirror));
        }
        for (k, m) in route.mirrors.iter().enumerate() {
            out.push((
                format!("http[{i}].mirrors[{k}].destination"),
                &m.destination,
            ));
        }
    }
    for (i, route) in vs.tls.iter().enumerate() {
        for (k, d) in route.route.iter().enumerate() {
            out.push((format!("tls[{i}].route[{k}].destination"), &d.destination));
        }
    }
    for (i, route) in vs.tcp.iter().enumerate() {
        for (k, d) in route.route.iter().enumerate() {
            out.push((format!("tcp[{i}].route[{k}].destination"), &d.destination));
        }
    }
    out
}

/// Sidecars use one VirtualService per host: a second one claiming a host is an error
/// (istioctl IST0109).
fn check_host_conflicts(services: &[Resource<VirtualService>], out: &mut Vec<Diagnostic>) {
    let mut claimed: BTreeMap<String, &Resource<VirtualService>> = BTreeMap::new();
    for vs in services {
        let on_mesh = vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == "mesh");
        if !on_mesh {
            continue;
        }
        let name = label("VirtualService", vs);
        for (i, host) in vs.spec.hosts.iter().enumerate() {
            let canonical = canonical_host(host, vs.namespace());
            let earlier = claimed
                .iter()
                .find(|(other, first)| {
                    !std::ptr::eq(**first, vs) && covers_exactly(other, &canonical)
                })
                .map(|(_, first)| *first);
            match earlier {
                Some(first) => Reporter::new(&vs.origin, &name, out).error(
                    format!("hosts[{i}]"),
                    format!(
                        "host \"{host}\" is also claimed by {} ({}); sidecars use only one \
                         VirtualService per host",
                        label("VirtualService", first),
                        first.origin
                    ),
                ),
                None => {
                    claimed.insert(canonical, vs);
                }
            }
        }
    }
}

/// A Canary writes the routes of its hosts: no VirtualService, and no earlier Canary, may
/// claim them too.
fn check_canary_hosts(canary: &Resource<Canary>, config: &Config, r: &mut Reporter<'_>) {
    let on_mesh = |gateways: &[String]| gateways.is_empty() || gateways.iter().any(|g| g == "mesh");
    if !on_mesh(&canary.spec.service.gateways) {
        return;
    }
    for host in canary.spec.hosts() {
        let canonical = canonical_host(&host, canary.namespace());
        let claims = |hosts: &[String], ns: Option<&str>| {
            hosts
                .iter()
                .any(|h| covers_exactly(&canonical_host(h, ns), &canonical))
        };
        let routed_by = config
            .virtual_services
            .iter()
            .filter(|vs| on_mesh(&vs.spec.gateways))
            .find(|vs| claims(&vs.spec.hosts, vs.namespace()))
            .map(|vs| (label("VirtualService", vs), vs.origin.clone()));
        let earlier_canary = config
            .canaries
            .iter()
            .take_while(|other| !std::ptr::eq(*other, canary))
            .filter(|other| on_mesh(&other.spec.service.gateways))
            .find(|other| claims(&other.spec.hosts(), other.namespace()))
            .map(|other| (label("Canary", other), other.origin.clone()));
        if let Some((other, origin)) = routed_by.or(earlier_canary) {
            r.error(
                "service",
                format!(
                    "host \"{host}\" is also routed by {other} ({origin}); a Canary writes the \
                     routes of its hosts itself, so remove the other"
                ),
            );
        }
    }
}

/// Same host, allowing for a short form on one side (no wildcard expansion).
fn covers_exactly(a: &str, b: &str) -> bool {
    a == b || host_aliases(a).iter().any(|x| x == b) || host_aliases(b).iter().any(|x| x == a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_full_forms_cover_each_other() {
        assert!(covers("catalog.shop.svc.cluster.local", "catalog"));
        assert!(covers("catalog", "catalog.shop.svc.cluster.local"));
        assert!(covers("*.example.com", "api.example.com"));
        assert!(!covers(
            "catalog.a.svc.cluster.local",
            "catalog.b.svc.cluster.local"
        ));
    }
}
