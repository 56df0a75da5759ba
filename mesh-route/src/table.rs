//! The compiled, immutable [`RouteTable`]: host → ordered rules → weighted destinations.
//!
//! Built once per configuration from VirtualServices (their rules, in order), ServiceEntries
//! (a default route for every registered host that no VirtualService claims, as Istio
//! generates) and DestinationRules (subsets resolved to label selectors). Every distinct
//! (host, subset, port) destination becomes a [`Cluster`] with a dense index, so the layers
//! below find endpoints by index rather than by name.
//!
//! Lookup is allocation-free: the authority is lower-cased into a stack buffer, hosts are found
//! by hash (exact names and all their short/namespaced aliases), then by wildcard suffix.

use crate::{
    config::{Config, Destination as DestinationSpec, HttpRoute, Resource, VirtualService},
    header_ops::HeaderOps,
    host::{canonical_host, host_aliases},
    matcher::RequestMatch,
    policy::mirror_share,
    redirect::{DirectResponse, Redirect},
    rewrite::Rewrite,
};
use http::Request;
use mesh_core::fnv::FnvBuildHasher;
use mesh_core::{
    Destination, RouteInfo,
    policy::{MirrorTarget, RoutePolicy},
};
use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

/// Why a configuration could not be compiled into a route table.
///
/// Validation reports these (with file and document) before compilation; this error exists
/// so that compiling an unvalidated config fails cleanly instead of panicking.
#[derive(Debug, thiserror::Error)]
#[error("VirtualService {resource}: {message}")]
pub struct CompileError {
    resource: String,
    message: String,
}

/// A distinct upstream destination: a service host, optionally narrowed to a subset and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// Canonical service host.
    pub host: Arc<str>,
    /// Subset name, if any.
    pub subset: Option<Arc<str>>,
    /// Service port number, if the route names one.
    pub port: Option<u16>,
    /// The subset's label selector (empty: every endpoint of the host).
    pub labels: BTreeMap<String, String>,
}

/// One weighted destination of a rule.
#[derive(Debug)]
pub(crate) struct WeightedDestination {
    pub(crate) destination: Destination,
    /// Upper bound (exclusive) of this destination's slice of `[0, total)`.
    upto: u32,
    pub(crate) request_ops: HeaderOps,
    pub(crate) response_ops: Option<Arc<HeaderOps>>,
}

/// What a rule does with a matching request.
#[derive(Debug)]
pub(crate) enum Action {
    Route {
        destinations: Vec<WeightedDestination>,
        total: u32,
        rewrite: Rewrite,
    },
    Redirect(Redirect),
    Direct(DirectResponse),
}

/// One compiled `HTTPRoute`.
#[derive(Debug)]
pub struct Rule {
    /// One entry per `match` block (OR-ed), with the route name to log when it matches.
    matches: Vec<(RequestMatch, RouteInfo)>,
    /// Route info when the rule has no `match` (it matches everything).
    info: RouteInfo,
    pub(crate) action: Action,
    pub(crate) request_ops: HeaderOps,
    pub(crate) response_ops: Option<Arc<HeaderOps>>,
    /// Timeout and fault policy for the layers below, when the route sets any.
    pub(crate) policy: Option<RoutePolicy>,
}

impl Rule {
    /// Which match block of this rule `request` satisfies, if any (`None` inside `Some` for a
    /// rule without match blocks).
    fn matching<B>(&self, request: &Request<B>, authority: &str) -> Option<Option<&RequestMatch>> {
        if self.matches.is_empty() {
            return Some(None);
        }
        self.matches
            .iter()
            .find(|(m, _)| m.matches(request, authority))
            .map(|(m, _)| Some(m))
    }

    /// Picks a destination by weight (no randomness for a single destination).
    pub(crate) fn pick(destinations: &[WeightedDestination], total: u32) -> &WeightedDestination {
        if destinations.len() == 1 {
            return &destinations[0];
        }
        let draw = rand::random_range(0..total);
        destinations
            .iter()
            .find(|d| draw < d.upto)
            .unwrap_or(&destinations[destinations.len() - 1])
    }
}

/// The virtual host for one VirtualService (or one registry host's default route).
#[derive(Debug)]
struct VirtualHost {
    rules: Vec<Rule>,
}

/// The outcome of looking a request up in the [`RouteTable`].
#[derive(Debug)]
pub enum Decision<'a> {
    /// No VirtualService or ServiceEntry claims the request's host.
    UnknownHost,
    /// The host is known, but none of its rules matched (404 NR).
    NoRule,
    /// A rule matched.
    Matched {
        /// The rule.
        rule: &'a Rule,
        /// The route name to log (the rule's, joined with the match block's).
        info: &'a RouteInfo,
        /// The URI prefix the matching block used, for `rewrite.uri`.
        matched_prefix: Option<&'a str>,
    },
}

/// A compiled, immutable route table.
#[derive(Debug, Default)]
pub struct RouteTable {
    exact: HashMap<Box<str>, usize, FnvBuildHasher>,
    /// `(".suffix", vhost)` for `*.suffix` hosts, longest suffix first.
    wildcards: Vec<(Box<str>, usize)>,
    catch_all: Option<usize>,
    hosts: Vec<VirtualHost>,
    clusters: Vec<Cluster>,
}

/// Longest host name a lookup considers (DNS limit).
const MAX_HOST_LEN: usize = 255;

impl RouteTable {
    /// Compiles `config` into a route table.
    ///
    /// ```
    /// use mesh_route::{config::Config, table::{Decision, RouteTable}};
    /// let yaml = r#"
    /// apiVersion: networking.istio.io/v1
    /// kind: ServiceEntry
    /// metadata: {name: catalog, namespace: shop}
    /// spec:
    ///   hosts: [catalog]
    ///   resolution: STATIC
    ///   ports: [{number: 80, name: http, protocol: HTTP}]
    ///   endpoints: [{address: 127.0.0.1, labels: {version: v1}}]
    /// "#;
    /// let config = Config::from_yaml_str(yaml).unwrap().config;
    /// let table = RouteTable::compile(&config).unwrap();
    /// let request = http::Request::get("http://catalog/items").body(()).unwrap();
    /// assert!(matches!(table.route(&request), Decision::Matched { .. }));
    /// ```
    pub fn compile(config: &Config) -> Result<Self, CompileError> {
        let mut builder = Builder::new(config);
        for vs in &config.virtual_services {
            builder.add_virtual_service(vs)?;
        }
        for se in &config.service_entries {
            let ns = se.meta.namespace.as_deref();
            for host in &se.spec.hosts {
                let host = canonical_host(host, ns);
                builder.add_default_route(&host)?;
            }
        }
        builder
            .table
            .wildcards
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        Ok(builder.table)
    }

    /// Every distinct destination, indexed by [`Destination::cluster`].
    pub fn clusters(&self) -> &[Cluster] {
        &self.clusters
    }

    /// Looks `request` up: host (from the absolute-form URI, else `Host`), then rules in order.
    pub fn route<B>(&self, request: &Request<B>) -> Decision<'_> {
        let Some(authority) = crate::matcher::request_authority(request) else {
            return Decision::UnknownHost;
        };
        let Some(vhost) = self.find_host(authority) else {
            return Decision::UnknownHost;
        };
        for rule in &self.hosts[vhost].rules {
            match rule.matching(request, authority) {
                None => continue,
                Some(matched) => {
                    let info = matched
                        .and_then(|m| rule.matches.iter().find(|(x, _)| std::ptr::eq(x, m)))
                        .map_or(&rule.info, |(_, info)| info);
                    return Decision::Matched {
                        rule,
                        info,
                        matched_prefix: match matched {
                            Some(m) => m.uri_prefix(),
                            None => Some("/"),
                        },
                    };
                }
            }
        }
        Decision::NoRule
    }

    fn find_host(&self, authority: &str) -> Option<usize> {
        let host = strip_port(authority);
        if host.len() > MAX_HOST_LEN {
            return None;
        }
        let mut buf = [0u8; MAX_HOST_LEN];
        let lower = &mut buf[..host.len()];
        lower.copy_from_slice(host.as_bytes());
        lower.make_ascii_lowercase();
        let host = std::str::from_utf8(lower).ok()?;
        if let Some(&index) = self.exact.get(host) {
            return Some(index);
        }
        self.wildcards
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(&**suffix))
            .map(|(_, index)| *index)
            .or(self.catch_all)
    }
}

/// The host part of an authority (`host`, `host:port`, `[v6]:port`).
fn strip_port(authority: &str) -> &str {
    if let Some(end) = authority
        .strip_prefix('[')
        .and_then(|_| authority.find(']'))
    {
        return &authority[..=end];
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// (host, subset, port): what makes a cluster distinct.
type ClusterKey = (Arc<str>, Option<Arc<str>>, Option<u16>);

/// Accumulates virtual hosts and clusters while compiling.
struct Builder<'c> {
    config: &'c Config,
    table: RouteTable,
    cluster_index: HashMap<ClusterKey, usize>,
}

impl<'c> Builder<'c> {
    fn new(config: &'c Config) -> Self {
        Builder {
            config,
            table: RouteTable::default(),
            cluster_index: HashMap::new(),
        }
    }

    /// Claims `host` (and its aliases) for `vhost`; the first claim wins.
    fn claim(&mut self, host: &str, vhost: usize) {
        if host == "*" {
            self.table.catch_all.get_or_insert(vhost);
        } else if let Some(suffix) = host.strip_prefix('*') {
            if !self.table.wildcards.iter().any(|(s, _)| &**s == suffix) {
                self.table.wildcards.push((suffix.into(), vhost));
            }
        } else {
            for alias in host_aliases(host) {
                self.table.exact.entry(alias.into()).or_insert(vhost);
            }
        }
    }

    fn is_claimed(&self, host: &str) -> bool {
        if host == "*" {
            return self.table.catch_all.is_some();
        }
        if let Some(suffix) = host.strip_prefix('*') {
            return self.table.wildcards.iter().any(|(s, _)| &**s == suffix);
        }
        self.table.exact.contains_key(host)
    }

    fn add_virtual_service(&mut self, vs: &Resource<VirtualService>) -> Result<(), CompileError> {
        let ns = vs.meta.namespace.as_deref();
        let vs_name: Arc<str> = match ns {
            Some(ns) => format!("{ns}/{}", vs.meta.name).into(),
            None => vs.meta.name.clone().into(),
        };
        let err = |message: String| CompileError {
            resource: vs_name.to_string(),
            message,
        };
        let mut rules = Vec::with_capacity(vs.spec.http.len());
        for (index, route) in vs.spec.http.iter().enumerate() {
            let field = format!("http[{index}]");
            rules.push(
                self.compile_rule(route, &field, ns, &vs_name, index)
                    .map_err(err)?,
            );
        }
        let vhost = self.table.hosts.len();
        self.table.hosts.push(VirtualHost { rules });
        for host in &vs.spec.hosts {
            self.claim(&canonical_host(host, ns), vhost);
        }
        Ok(())
    }

    /// Istio's default route for a registry host no VirtualService claims: all endpoints.
    fn add_default_route(&mut self, host: &str) -> Result<(), CompileError> {
        if self.is_claimed(host) {
            return Ok(());
        }
        let destination = self
            .destination(
                &DestinationSpec {
                    host: host.to_string(),
                    subset: None,
                    port: None,
                },
                None,
            )
            .map_err(|message| CompileError {
                resource: host.to_string(),
                message,
            })?;
        let info = RouteInfo {
            name: "default".into(),
            virtual_service: "".into(),
        };
        let rule = Rule {
            matches: Vec::new(),
            info,
            action: Action::Route {
                destinations: vec![WeightedDestination {
                    destination,
                    upto: 1,
                    request_ops: HeaderOps::default(),
                    response_ops: None,
                }],
                total: 1,
                rewrite: Rewrite::default(),
            },
            request_ops: HeaderOps::default(),
            response_ops: None,
            policy: None,
        };
        let vhost = self.table.hosts.len();
        self.table.hosts.push(VirtualHost { rules: vec![rule] });
        self.claim(host, vhost);
        Ok(())
    }

    fn compile_rule(
        &mut self,
        route: &HttpRoute,
        field: &str,
        ns: Option<&str>,
        vs_name: &Arc<str>,
        index: usize,
    ) -> Result<Rule, String> {
        let route_name: Arc<str> = route
            .name
            .clone()
            .unwrap_or_else(|| format!("{vs_name}.{index}"))
            .into();
        let info = RouteInfo {
            name: route_name.clone(),
            virtual_service: vs_name.clone(),
        };
        let mut matches = Vec::with_capacity(route.match_.len());
        for (i, m) in route.match_.iter().enumerate() {
            let compiled = RequestMatch::compile(m, &format!("{field}.match[{i}]"))
                .map_err(|e| e.to_string())?;
            let name: Arc<str> = match (&route.name, &m.name) {
                (Some(r), Some(n)) => format!("{r}.{n}").into(),
                (None, Some(n)) => n.as_str().into(),
                _ => route_name.clone(),
            };
            matches.push((
                compiled,
                RouteInfo {
                    name,
                    virtual_service: vs_name.clone(),
                },
            ));
        }
        let (request_ops, host_rewrite, response_ops) =
            compile_headers(route.headers.as_ref(), &format!("{field}.headers"))?;
        let action = if let Some(redirect) = &route.redirect {
            Action::Redirect(
                Redirect::compile(redirect, &format!("{field}.redirect"))
                    .map_err(|e| e.to_string())?,
            )
        } else if let Some(direct) = &route.direct_response {
            Action::Direct(
                DirectResponse::compile(direct, &format!("{field}.directResponse"))
                    .map_err(|e| e.to_string())?,
            )
        } else {
            self.compile_destinations(route, field, ns, host_rewrite)?
        };
        let mut policy = crate::policy::compile(
            route,
            field,
            self.config.mesh.default_http_retry_policy.as_ref(),
        )?;
        if matches!(action, Action::Route { .. }) {
            let mirrors = self.compile_mirrors(route, ns)?;
            if !mirrors.is_empty() {
                policy.get_or_insert_with(RoutePolicy::default).mirrors = Some(mirrors.into());
            }
        }
        Ok(Rule {
            matches,
            info,
            action,
            request_ops,
            response_ops,
            policy,
        })
    }

    fn compile_destinations(
        &mut self,
        route: &HttpRoute,
        field: &str,
        ns: Option<&str>,
        host_rewrite: Option<http::HeaderValue>,
    ) -> Result<Action, String> {
        let single = route.route.len() == 1;
        let mut destinations = Vec::with_capacity(route.route.len());
        let mut total: u32 = 0;
        for (i, d) in route.route.iter().enumerate() {
            let field = format!("{field}.route[{i}]");
            let weight = match d.weight {
                _ if single => 1,
                Some(w) if w < 0 => return Err(format!("{field}.weight: {w} is negative")),
                Some(w) => w as u32,
                None => 0,
            };
            if weight == 0 {
                continue;
            }
            total = total
                .checked_add(weight)
                .ok_or_else(|| format!("{field}.weight: total weight overflows"))?;
            let (request_ops, _, response_ops) =
                compile_headers(d.headers.as_ref(), &format!("{field}.headers"))?;
            destinations.push(WeightedDestination {
                destination: self.destination(&d.destination, ns)?,
                upto: total,
                request_ops,
                response_ops,
            });
        }
        if destinations.is_empty() {
            return Err(format!("{field}.route: total destination weight = 0"));
        }
        let rewrite = Rewrite::compile(
            route.rewrite.as_ref(),
            host_rewrite,
            &format!("{field}.rewrite"),
        )
        .map_err(|e| e.to_string())?;
        Ok(Action::Route {
            destinations,
            total,
            rewrite,
        })
    }

    /// The route's mirror targets: `mirror` (with `mirrorPercentage`), then each of `mirrors`.
    fn compile_mirrors(
        &mut self,
        route: &HttpRoute,
        ns: Option<&str>,
    ) -> Result<Vec<MirrorTarget>, String> {
        let mut targets = Vec::new();
        if let Some(mirror) = &route.mirror {
            targets.push(MirrorTarget {
                destination: self.destination(mirror, ns)?,
                fraction: mirror_share(route.mirror_percentage.as_ref(), route.mirror_percent),
            });
        }
        for mirror in &route.mirrors {
            targets.push(MirrorTarget {
                destination: self.destination(&mirror.destination, ns)?,
                fraction: mirror_share(mirror.percentage.as_ref(), None),
            });
        }
        // An explicit 0 % mirrors nothing.
        targets.retain(|t| t.fraction.per_million() > 0);
        Ok(targets)
    }

    /// Resolves a destination to its cluster, creating the cluster on first use.
    fn destination(
        &mut self,
        spec: &DestinationSpec,
        ns: Option<&str>,
    ) -> Result<Destination, String> {
        let host: Arc<str> = canonical_host(&spec.host, ns).into();
        let subset: Option<Arc<str>> = spec.subset.as_deref().map(Arc::from);
        let port = match spec.port.as_ref().map(|p| p.number) {
            Some(n) => Some(
                u16::try_from(n).map_err(|_| format!("destination port {n} is out of range"))?,
            ),
            None => None,
        };
        let key = (host.clone(), subset.clone(), port);
        let cluster = match self.cluster_index.get(&key) {
            Some(&index) => index,
            None => {
                let labels = match &subset {
                    Some(name) => self.subset_labels(&host, name)?,
                    None => BTreeMap::new(),
                };
                let index = self.table.clusters.len();
                self.table.clusters.push(Cluster {
                    host: host.clone(),
                    subset: subset.clone(),
                    port,
                    labels,
                });
                self.cluster_index.insert(key, index);
                index
            }
        };
        Ok(Destination {
            cluster,
            host,
            subset,
            port,
        })
    }

    /// The labels of subset `name` of `host`: the first DestinationRule defining it wins.
    fn subset_labels(&self, host: &str, name: &str) -> Result<BTreeMap<String, String>, String> {
        self.config
            .destination_rules
            .iter()
            .filter(|dr| canonical_host(&dr.spec.host, dr.meta.namespace.as_deref()) == host)
            .flat_map(|dr| dr.spec.subsets.iter())
            .find(|s| s.name == name)
            .map(|s| s.labels.clone())
            .ok_or_else(|| {
                format!("subset {name:?} is not defined by any DestinationRule for host {host}")
            })
    }
}

/// Request ops, an authority rewrite from `host` header operations, and response ops.
type CompiledHeaders = (HeaderOps, Option<http::HeaderValue>, Option<Arc<HeaderOps>>);

fn compile_headers(
    headers: Option<&crate::config::Headers>,
    field: &str,
) -> Result<CompiledHeaders, String> {
    let Some(headers) = headers else {
        return Ok((HeaderOps::default(), None, None));
    };
    let (request, authority) = match &headers.request {
        Some(ops) => {
            HeaderOps::compile(ops, &format!("{field}.request")).map_err(|e| e.to_string())?
        }
        None => (HeaderOps::default(), None),
    };
    let response = match &headers.response {
        Some(ops) => Some(
            HeaderOps::compile(ops, &format!("{field}.response"))
                .map_err(|e| e.to_string())?
                .0,
        ),
        None => None,
    };
    Ok((
        request,
        authority,
        response.filter(|ops| !ops.is_empty()).map(Arc::new),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ports() {
        assert_eq!(strip_port("catalog:80"), "catalog");
        assert_eq!(strip_port("catalog"), "catalog");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
    }
}
