//! Compiled VirtualService `tcp` and `tls` routes: rules for connections rather than requests.
//!
//! A [`StreamRule`] matches a connection by the port it arrived on (`match[].port`) and, for
//! `tls` routes, by the SNI of its ClientHello (`match[].sniHosts`, wildcards allowed), then
//! picks one of its weighted destinations. The route table keeps them per host (a CONNECT
//! tunnel through the outbound listener names its host) and per gateway port (a Gateway `TCP`
//! or `TLS` `PASSTHROUGH` server).

use crate::host::host_matches;
use mesh_core::Destination;

/// One match block of a stream rule.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamMatch {
    /// The connection's port must be this one.
    pub(crate) port: Option<u16>,
    /// The SNI must match one of these (lower case; `*.example.com` wildcards); empty: any.
    pub(crate) sni_hosts: Vec<Box<str>>,
}

impl StreamMatch {
    fn matches(&self, port: u16, sni: Option<&str>) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        if self.sni_hosts.is_empty() {
            return true;
        }
        let Some(sni) = sni else { return false };
        self.sni_hosts
            .iter()
            .any(|pattern| host_matches(pattern, sni))
    }
}

/// A compiled `tcp` or `tls` route.
///
/// ```
/// use mesh_route::{RouteTable, config::Config, stream_route::StreamDecision, table::RouteScope};
///
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: ServiceEntry
/// metadata: {name: db}
/// spec: {hosts: [db.example.com, db-replica.example.com], resolution: STATIC, ports: [{number: 5432, name: pg, protocol: TCP}], endpoints: [{address: 127.0.0.1}]}
/// ---
/// apiVersion: networking.istio.io/v1
/// kind: VirtualService
/// metadata: {name: db}
/// spec:
///   hosts: [db.example.com]
///   tcp:
///   - route: [{destination: {host: db.example.com, port: {number: 5432}}, weight: 90}, {destination: {host: db-replica.example.com}, weight: 10}]
/// "#;
/// let table = RouteTable::compile(&Config::from_yaml_str(yaml).unwrap().config).unwrap();
/// let StreamDecision::Matched(rule) = table.route_stream(RouteScope::MESH, "db.example.com", 5432, None) else { panic!() };
/// assert_eq!(rule.destinations().count(), 2);
/// ```
#[derive(Debug)]
pub struct StreamRule {
    /// Match blocks, ORed; empty matches every connection.
    pub(crate) matches: Vec<StreamMatch>,
    /// `(destination, upper bound of its weight slice)`, in order.
    pub(crate) destinations: Vec<(Destination, u32)>,
    /// Sum of the weights.
    pub(crate) total: u32,
}

impl StreamRule {
    /// Whether a connection on `port` with `sni` matches.
    pub(crate) fn matches(&self, port: u16, sni: Option<&str>) -> bool {
        self.matches.is_empty() || self.matches.iter().any(|m| m.matches(port, sni))
    }

    /// One destination, by weight.
    ///
    /// ```
    /// use mesh_route::{RouteTable, config::Config, stream_route::StreamDecision, table::RouteScope};
    ///
    /// let yaml = r#"
    /// apiVersion: networking.istio.io/v1
    /// kind: ServiceEntry
    /// metadata: {name: db}
    /// spec: {hosts: [db.example.com, db-replica.example.com], resolution: STATIC, ports: [{number: 5432, name: pg, protocol: TCP}], endpoints: [{address: 127.0.0.1}]}
    /// ---
    /// apiVersion: networking.istio.io/v1
    /// kind: VirtualService
    /// metadata: {name: db}
    /// spec:
    ///   hosts: [db.example.com]
    ///   tcp:
    ///   - route: [{destination: {host: db.example.com, port: {number: 5432}}, weight: 90}, {destination: {host: db-replica.example.com}, weight: 10}]
    /// "#;
    /// let table = RouteTable::compile(&Config::from_yaml_str(yaml).unwrap().config).unwrap();
    /// let StreamDecision::Matched(rule) = table.route_stream(RouteScope::MESH, "db.example.com", 5432, None) else { panic!() };
    /// let primary = (0..1000).filter(|_| &*rule.pick().host == "db.example.com").count();
    /// assert!((800..1000).contains(&primary), "{primary}"); // about 900
    /// ```
    pub fn pick(&self) -> &Destination {
        &crate::weights::pick(&self.destinations, self.total, |(_, upto)| *upto).0
    }

    /// Every destination, for inspection.
    ///
    /// ```
    /// use mesh_route::{RouteTable, config::Config, stream_route::StreamDecision, table::RouteScope};
    ///
    /// let yaml = r#"
    /// apiVersion: networking.istio.io/v1
    /// kind: ServiceEntry
    /// metadata: {name: db}
    /// spec: {hosts: [db.example.com, db-replica.example.com], resolution: STATIC, ports: [{number: 5432, name: pg, protocol: TCP}], endpoints: [{address: 127.0.0.1}]}
    /// ---
    /// apiVersion: networking.istio.io/v1
    /// kind: VirtualService
    /// metadata: {name: db}
    /// spec:
    ///   hosts: [db.example.com]
    ///   tcp:
    ///   - route: [{destination: {host: db.example.com, port: {number: 5432}}, weight: 90}, {destination: {host: db-replica.example.com}, weight: 10}]
    /// "#;
    /// let table = RouteTable::compile(&Config::from_yaml_str(yaml).unwrap().config).unwrap();
    /// let StreamDecision::Matched(rule) = table.route_stream(RouteScope::MESH, "db.example.com", 5432, None) else { panic!() };
    /// let ports: Vec<_> = rule.destinations().map(|d| (&*d.host, d.port)).collect();
    /// assert_eq!(ports, [("db.example.com", Some(5432)), ("db-replica.example.com", None)]);
    /// ```
    pub fn destinations(&self) -> impl Iterator<Item = &Destination> {
        self.destinations.iter().map(|(d, _)| d)
    }
}

/// Where a connection goes, as the route table decides.
///
/// ```
/// use mesh_route::{RouteTable, config::Config, stream_route::StreamDecision, table::RouteScope};
///
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: ServiceEntry
/// metadata: {name: db}
/// spec: {hosts: [db.example.com], resolution: STATIC, ports: [{number: 443, name: tls, protocol: TLS}], endpoints: [{address: 127.0.0.1}]}
/// ---
/// apiVersion: networking.istio.io/v1
/// kind: VirtualService
/// metadata: {name: db}
/// spec:
///   hosts: [db.example.com]
///   tls:
///   - match: [{port: 443, sniHosts: [db.example.com]}]
///     route: [{destination: {host: db.example.com}}]
/// "#;
/// let table = RouteTable::compile(&Config::from_yaml_str(yaml).unwrap().config).unwrap();
/// let decide = |sni| table.route_stream(RouteScope::MESH, "db.example.com", 443, sni);
/// assert!(matches!(decide(Some("db.example.com")), StreamDecision::Matched(_)));
/// assert!(matches!(decide(Some("other.example.com")), StreamDecision::NoRule));
/// ```
#[derive(Debug)]
pub enum StreamDecision<'a> {
    /// No VirtualService or ServiceEntry claims the host (outbound: pass through or refuse,
    /// as `outboundTrafficPolicy` says).
    UnknownHost,
    /// The host (or gateway port) is known, but no stream rule matches.
    NoRule,
    /// A rule matched.
    Matched(&'a StreamRule),
}

/// The first of `rules` matching a connection on `port` with `sni`.
pub(crate) fn first_match<'a>(
    rules: &'a [StreamRule],
    port: u16,
    sni: Option<&str>,
) -> StreamDecision<'a> {
    rules
        .iter()
        .find(|rule| rule.matches(port, sni))
        .map_or(StreamDecision::NoRule, StreamDecision::Matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination(cluster: usize) -> Destination {
        Destination {
            cluster,
            host: "echo".into(),
            subset: None,
            port: None,
        }
    }

    #[test]
    fn destinations_are_picked_by_weight() {
        // Weights 25 and 75.
        let rule = StreamRule {
            matches: Vec::new(),
            destinations: vec![(destination(0), 25), (destination(1), 100)],
            total: 100,
        };
        let draws = 4000;
        let first = (0..draws).filter(|_| rule.pick().cluster == 0).count();
        // Expected 1000, standard deviation about 27.
        assert!((850..=1150).contains(&first), "{first} of {draws}");
    }

    #[test]
    fn matches_take_the_port_and_the_sni() {
        let rule = StreamRule {
            matches: vec![StreamMatch {
                port: Some(443),
                sni_hosts: vec!["*.example.com".into()],
            }],
            destinations: vec![(destination(0), 1)],
            total: 1,
        };
        assert!(rule.matches(443, Some("db.example.com")));
        assert!(!rule.matches(8443, Some("db.example.com")));
        assert!(!rule.matches(443, Some("db.example.org")));
        assert!(!rule.matches(443, None));
    }
}
