//! The `VirtualService` resource (`networking.istio.io`), field for field as Istio's
//! `virtual_service.proto` defines it: ordered HTTP/TLS/TCP routes, matches, weighted
//! destinations, header operations, rewrites, redirects, direct responses, retries,
//! timeouts, fault injection, mirroring and CORS.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::duration::Duration;
use super::shared_types::{Percent, PortSelector, StringMatch, is_false};

/// Istio `VirtualService`: routing rules for a set of hosts.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: ServiceEntry
/// metadata: {name: reviews}
/// spec: {hosts: [reviews, ratings], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
/// ---
/// apiVersion: networking.istio.io/v1
/// kind: VirtualService
/// metadata: {name: reviews}
/// spec:
///   hosts: [reviews]
///   http:
///   - name: beta
///     match: [{headers: {x-beta: {exact: "1"}}, uri: {prefix: /api/}}]
///     rewrite: {uri: /}
///     route:
///     - {destination: {host: reviews, port: {number: 80}}, weight: 75, headers: {request: {set: {x-lane: a}}}}
///     - {destination: {host: ratings}, weight: 25}
///     timeout: 3s
///     retries: {attempts: 2, perTryTimeout: 1s, retryOn: "5xx,reset"}
///     fault: {delay: {fixedDelay: 50ms, percentage: {value: 1}}, abort: {httpStatus: 503, percentage: {value: 0.5}}}
///     mirrors: [{destination: {host: ratings}, percentage: {value: 10}}]
///     headers: {response: {remove: [x-internal]}}
///   - route: [{destination: {host: reviews}}]
/// "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let vs = &config.virtual_services[0].spec;
/// assert_eq!(vs.hosts, ["reviews"]);
/// // Rules are tried in order: the named `beta` rule first, then the catch-all.
/// assert_eq!(vs.http.len(), 2);
/// assert_eq!(vs.http[0].name.as_deref(), Some("beta"));
/// assert!(vs.http[1].match_.is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualService {
    /// Hosts the rules apply to (short names resolve against the resource's namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Gateways and sidecars (`mesh`) the rules apply to; empty means `mesh`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Ordered HTTP routes; the first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpRoute>,
    /// Ordered routes for unterminated TLS, matched by SNI.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<TlsRoute>,
    /// Ordered routes for opaque TCP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp: Vec<TcpRoute>,
    /// Namespaces the VirtualService is visible to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
}

/// Istio `HTTPRoute`: match conditions and what to do with matching requests.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: reviews}
/// # spec: {hosts: [reviews, ratings], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: networking.istio.io/v1
/// # kind: VirtualService
/// # metadata: {name: reviews}
/// # spec:
/// #   hosts: [reviews]
/// #   http:
/// #   - name: beta
/// #     match: [{headers: {x-beta: {exact: "1"}}, uri: {prefix: /api/}}]
/// #     rewrite: {uri: /}
/// #     route:
/// #     - {destination: {host: reviews, port: {number: 80}}, weight: 75, headers: {request: {set: {x-lane: a}}}}
/// #     - {destination: {host: ratings}, weight: 25}
/// #     timeout: 3s
/// #     retries: {attempts: 2, perTryTimeout: 1s, retryOn: "5xx,reset"}
/// #     fault: {delay: {fixedDelay: 50ms, percentage: {value: 1}}, abort: {httpStatus: 503, percentage: {value: 0.5}}}
/// #     mirrors: [{destination: {host: ratings}, percentage: {value: 10}}]
/// #     headers: {response: {remove: [x-internal]}}
/// #   - route: [{destination: {host: reviews}}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let beta = &config.virtual_services[0].spec.http[0];
/// assert_eq!(beta.name.as_deref(), Some("beta"));
/// assert_eq!(beta.timeout.unwrap().get().as_secs(), 3);
/// assert_eq!(beta.route.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRoute {
    /// Route name, joined with the match name in access logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Match blocks, ORed; conditions inside one block are ANDed. Empty matches everything.
    #[serde(rename = "match", default, skip_serializing_if = "Vec::is_empty")]
    pub match_: Vec<HttpMatchRequest>,
    /// Weighted destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<HttpRouteDestination>,
    /// Answer with a redirect instead of forwarding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect: Option<HttpRedirect>,
    /// Answer directly instead of forwarding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<HttpDirectResponse>,
    /// Delegate to the routes of another VirtualService.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegate: Option<Delegate>,
    /// URI / authority rewrite before forwarding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpRewrite>,
    /// Overall request timeout (Istio default: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Retry policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
    /// Fault injection (delay / abort).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<HttpFaultInjection>,
    /// Mirror traffic to this destination too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Destination>,
    /// Several mirror targets, each with its own percentage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<HttpMirrorPolicy>,
    /// Percentage of traffic mirrored by `mirror` (absent = 100%).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror_percentage: Option<Percent>,
    /// Deprecated integer form of `mirrorPercentage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror_percent: Option<u32>,
    /// Cross-origin resource sharing policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors_policy: Option<CorsPolicy>,
    /// Header operations for every destination of this route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// Istio `HTTPMatchRequest`: conditions that must all hold.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: reviews}
/// # spec: {hosts: [reviews, ratings], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: networking.istio.io/v1
/// # kind: VirtualService
/// # metadata: {name: reviews}
/// # spec:
/// #   hosts: [reviews]
/// #   http:
/// #   - name: beta
/// #     match: [{headers: {x-beta: {exact: "1"}}, uri: {prefix: /api/}}]
/// #     rewrite: {uri: /}
/// #     route:
/// #     - {destination: {host: reviews, port: {number: 80}}, weight: 75, headers: {request: {set: {x-lane: a}}}}
/// #     - {destination: {host: ratings}, weight: 25}
/// #     timeout: 3s
/// #     retries: {attempts: 2, perTryTimeout: 1s, retryOn: "5xx,reset"}
/// #     fault: {delay: {fixedDelay: 50ms, percentage: {value: 1}}, abort: {httpStatus: 503, percentage: {value: 0.5}}}
/// #     mirrors: [{destination: {host: ratings}, percentage: {value: 10}}]
/// #     headers: {response: {remove: [x-internal]}}
/// #   - route: [{destination: {host: reviews}}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let beta = &config.virtual_services[0].spec.http[0];
/// let m = &beta.match_[0];
/// assert_eq!(m.headers["x-beta"].exact.as_deref(), Some("1"));
/// assert_eq!(m.uri.as_ref().unwrap().prefix.as_deref(), Some("/api/"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpMatchRequest {
    /// Match name, joined with the route name in access logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Path match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    /// `:scheme` match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<StringMatch>,
    /// `:method` match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// `:authority` match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<StringMatch>,
    /// Request header matches (lower-case names; an empty match means "present").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
    /// Port on the addressed host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Labels the calling workload must carry (config-time selector).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways this match applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Query parameter matches (an empty match means "present").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query_params: BTreeMap<String, StringMatch>,
    /// Case-insensitive `exact`/`prefix` URI matching.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ignore_uri_case: bool,
    /// Headers that must NOT match (a missing header satisfies the condition).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Namespace of the calling workload (config-time selector).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
    /// Envoy per-route stats prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stat_prefix: Option<String>,
}

/// Istio `HTTPRouteDestination`: a destination with its share of traffic.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: reviews}
/// # spec: {hosts: [reviews, ratings], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: networking.istio.io/v1
/// # kind: VirtualService
/// # metadata: {name: reviews}
/// # spec:
/// #   hosts: [reviews]
/// #   http:
/// #   - name: beta
/// #     match: [{headers: {x-beta: {exact: "1"}}, uri: {prefix: /api/}}]
/// #     rewrite: {uri: /}
/// #     route:
/// #     - {destination: {host: reviews, port: {number: 80}}, weight: 75, headers: {request: {set: {x-lane: a}}}}
/// #     - {destination: {host: ratings}, weight: 25}
/// #     timeout: 3s
/// #     retries: {attempts: 2, perTryTimeout: 1s, retryOn: "5xx,reset"}
/// #     fault: {delay: {fixedDelay: 50ms, percentage: {value: 1}}, abort: {httpStatus: 503, percentage: {value: 0.5}}}
/// #     mirrors: [{destination: {host: ratings}, percentage: {value: 10}}]
/// #     headers: {response: {remove: [x-internal]}}
/// #   - route: [{destination: {host: reviews}}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let beta = &config.virtual_services[0].spec.http[0];
/// let first = &beta.route[0];
/// assert_eq!(first.weight, Some(75));
/// assert_eq!(first.headers.as_ref().unwrap().request.as_ref().unwrap().set["x-lane"], "a");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteDestination {
    /// Where to send the request.
    pub destination: Destination,
    /// Relative weight (share = weight / sum of weights).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Header operations applied only when this destination is chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// Istio `RouteDestination` (TLS and TCP routes): a destination and its weight.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: ServiceEntry
/// metadata: {name: db}
/// spec: {hosts: [db.example.com], resolution: STATIC, ports: [{number: 5432, name: pg, protocol: TCP}, {number: 443, name: tls, protocol: TLS}], endpoints: [{address: 127.0.0.1}]}
/// ---
/// apiVersion: networking.istio.io/v1
/// kind: VirtualService
/// metadata: {name: db}
/// spec:
///   hosts: [db.example.com]
///   tcp:
///   - match: [{port: 5432}]
///     route: [{destination: {host: db.example.com, port: {number: 5432}}}]
///   tls:
///   - match: [{port: 443, sniHosts: [db.example.com]}]
///     route: [{destination: {host: db.example.com, port: {number: 443}}}]
/// "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let vs = &config.virtual_services[0].spec;
/// let route = &vs.tcp[0].route[0];
/// assert_eq!((route.destination.host.as_str(), route.weight), ("db.example.com", None));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteDestination {
    /// Where to send the connection.
    pub destination: Destination,
    /// Relative weight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
}

/// Istio `Destination`: a service (host), optionally a subset and a port.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: reviews}
/// # spec: {hosts: [reviews, ratings], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: networking.istio.io/v1
/// # kind: VirtualService
/// # metadata: {name: reviews}
/// # spec:
/// #   hosts: [reviews]
/// #   http:
/// #   - name: beta
/// #     match: [{headers: {x-beta: {exact: "1"}}, uri: {prefix: /api/}}]
/// #     rewrite: {uri: /}
/// #     route:
/// #     - {destination: {host: reviews, port: {number: 80}}, weight: 75, headers: {request: {set: {x-lane: a}}}}
/// #     - {destination: {host: ratings}, weight: 25}
/// #     timeout: 3s
/// #     retries: {attempts: 2, perTryTimeout: 1s, retryOn: "5xx,reset"}
/// #     fault: {delay: {fixedDelay: 50ms, percentage: {value: 1}}, abort: {httpStatus: 503, percentage: {value: 0.5}}}
/// #     mirrors: [{destination: {host: ratings}, percentage: {value: 10}}]
/// #     headers: {response: {remove: [x-internal]}}
/// #   - route: [{destination: {host: reviews}}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let beta = &config.virtual_services[0].spec.http[0];
/// let destination = &beta.route[0].destination;
/// assert_eq!((destination.host.as_str(), destination.subset.as_deref()), ("reviews", None));
/// assert_eq!(destination.port.unwrap().number, 80);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Destination {
    /// Service host from the registry (ServiceEntry hosts).
    pub host: String,
    /// Subset defined by a DestinationRule for the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// Port of the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

/// Istio `Headers`: operations on request and response headers.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: reviews}
/// # spec: {hosts: [reviews, ratings], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: networking.istio.io/v1
/// # kind: VirtualService
/// # metadata: {name: reviews}
/// # spec:
/// #   hosts: [reviews]
/// #   http:
/// #   - name: beta
/// #     match: [{headers: {x-beta: {exact: "1"}}, uri: {prefix: /api/}}]
/// #     rewrite: {uri: /}
/// #     route:
/// #     - {destination: {host: reviews, port: {number: 80}}, weight: 75, headers: {request: {set: {x-lane: a}}}}
/// #     - {destination: {host: ratings}, weight: 25}
/// #     timeout: 3s
/// #     retries: {attempts: 2, perTryTimeout: 1s, retryOn: "5xx,reset"}
/// #     fault: {delay: {fixedDelay: 50ms, percentage: {value: 1}}, abort: {httpStatus: 503, percentage: {value: 0.5}}}
/// #     mirrors: [{destination: {host: ratings}, percentage: {value: 10}}]
/// #     headers: {response: {remove: [x-internal]}}
/// #   - route: [{destination: {host: reviews}}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let beta = &config.virtual_services[0].spec.http[0];
/// let headers = beta.headers.as_ref().unwrap();
/// assert!(headers.request.is_none());
/// assert_eq!(headers.response.as_ref().unwrap().remove, ["x-internal"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Headers {
    /// Applied to the request before forwarding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<HeaderOperations>,
    /// Applied to the response before returning it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<HeaderOperations>,
}

/// Istio `Headers.HeaderOperations`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: reviews}
/// # spec: {hosts: [reviews, ratings], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: networking.istio.io/v1
/// # kind: VirtualService
/// # metadata: {name: reviews}
/// # spec:
/// #   hosts: [reviews]
/// #   http:
/// #   - name: beta
/// #     match: [{headers: {x-beta: {exact: "1"}}, uri: {prefix: /api/}}]
/// #     rewrite: {uri: /}
/// #     route:
/// #     - {destination: {host: reviews, port: {number: 80}}, weight: 75, headers: {request: {set: {x-lane: a}}}}
/// #     - {destination: {host: ratings}, weight: 25}
/// #     timeout: 3s
/// #     retries: {attempts: 2, perTryTimeout: 1s, retryOn: "5xx,reset"}
/// #     fault: {delay: {fixedDelay: 50ms, percentage: {value: 1}}, abort: {httpStatus: 503, percentage: {value: 0.5}}}
/// #     mirrors: [{destination: {host: ratings}, percentage: {value: 10}}]
/// #     headers: {response: {remove: [x-internal]}}
/// #   - route: [{destination: {host: reviews}}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let beta = &config.virtual_services[0].spec.http[0];
/// let ops = beta.route[0].headers.as_ref().unwrap().request.as_ref().unwrap();
/// assert_eq!(ops.set["x-lane"], "a");
/// assert!(ops.add.is_empty() && ops.remove.is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderOperations {
    /// Overwrite (or add) these headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Append these values (comma-joined with an existing value).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Remove these headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// Istio `HTTPRewrite`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: reviews}
/// # spec: {hosts: [reviews, ratings], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: networking.istio.io/v1
/// # kind: VirtualService
/// # metadata: {name: reviews}
/// # spec:
/// #   hosts: [reviews]
/// #   http:
/// #   - name: beta
/// #     match: [{headers: {x-beta: {exact: "1"}}, uri: {prefix: /api/}}]
/// #     rewrite: {uri: /}
/// #     route:
/// #     - {destination: {host: reviews, port: {number: 80}}, weight: 75, headers: {request: {set: {x-lane: a}}}}
/// #     - {destination: {host: ratings}, weight: 25}
/// #     timeout: 3s
/// #     retries: {attempts: 2, perTryTimeout: 1s, retryOn: "5xx,reset"}
/// #     fault: {delay: {fixedDelay: 50ms, percentage: {value: 1}}, abort: {httpStatus: 503, percentage: {value: 0.5}}}
/// #     mirrors: [{destination: {host: ratings}, percentage: {value: 10}}]
/// #     headers: {response: {remove: [x-internal]}}
/// #   - route: [{destination: {host: reviews}}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let beta = &config.virtual_services[0].spec.http[0];
/// assert_eq!(beta.rewrite.as_ref().unwrap().uri.as_deref(), Some("/"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRewrite {
    /// Replaces the matched prefix (or the whole path for an exact match).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Replaces the `Host`/`:authority`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Regex-based path rewrite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

/// Istio `RegexRewrite`: `match` (RE2) replaced by `rewrite` (may use `\1` groups).
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: VirtualService
/// metadata: {name: api}
/// spec:
///   hosts: [api.example.com]
///   http:
///   - rewrite: {uriRegexRewrite: {match: "^/v1/(.*)$", rewrite: "/\\1"}}
///     redirect: {authority: b.example.com}
/// "#;
/// // A rewrite and a redirect are exclusive: the loader says so.
/// let errors = Config::from_yaml_str(yaml).unwrap_err();
/// assert!(errors.iter().any(|d| d.field.as_deref().is_some_and(|f| f.starts_with("http[0]"))), "{errors:?}");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegexRewrite {
    /// The RE2 pattern.
    #[serde(rename = "match")]
    pub match_: String,
    /// The replacement.
    pub rewrite: String,
}

/// Istio `HTTPRedirect`.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: VirtualService
/// metadata: {name: legacy}
/// spec:
///   hosts: [old.example.com]
///   http:
///   - match: [{uri: {prefix: /v1/}}]
///     redirect: {authority: new.example.com, prefixRewrite: /v2/, redirectCode: 308, derivePort: FROM_PROTOCOL_DEFAULT}
///   - directResponse: {status: 410, body: {string: gone}}
/// "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let http = &config.virtual_services[0].spec.http;
/// let redirect = http[0].redirect.as_ref().unwrap();
/// assert_eq!((redirect.authority.as_deref(), redirect.redirect_code), (Some("new.example.com"), Some(308)));
/// assert_eq!(redirect.prefix_rewrite.as_deref(), Some("/v2/"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRedirect {
    /// Replaces the whole path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Replaces the authority.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Port of the redirect target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Derive the port from the protocol or the request instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub derive_port: Option<RedirectPortSelection>,
    /// Scheme of the redirect target (default: the request's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Status code (default 301).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_code: Option<u32>,
    /// Replaces only the matched prefix (requires prefix URI matches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_rewrite: Option<String>,
}

/// Istio `HTTPRedirect.RedirectPortSelection`.
///
/// ```
/// use mesh_route::config::{Config, RedirectPortSelection};
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: VirtualService
/// # metadata: {name: legacy}
/// # spec:
/// #   hosts: [old.example.com]
/// #   http:
/// #   - match: [{uri: {prefix: /v1/}}]
/// #     redirect: {authority: new.example.com, prefixRewrite: /v2/, redirectCode: 308, derivePort: FROM_PROTOCOL_DEFAULT}
/// #   - directResponse: {status: 410, body: {string: gone}}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let http = &config.virtual_services[0].spec.http;
/// assert_eq!(http[0].redirect.as_ref().unwrap().derive_port, Some(RedirectPortSelection::FromProtocolDefault));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RedirectPortSelection {
    /// 80 for http, 443 for https.
    FromProtocolDefault,
    /// The port of the request.
    FromRequestPort,
}

/// Istio `HTTPDirectResponse`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: VirtualService
/// # metadata: {name: legacy}
/// # spec:
/// #   hosts: [old.example.com]
/// #   http:
/// #   - match: [{uri: {prefix: /v1/}}]
/// #     redirect: {authority: new.example.com, prefixRewrite: /v2/, redirectCode: 308, derivePort: FROM_PROTOCOL_DEFAULT}
/// #   - directResponse: {status: 410, body: {string: gone}}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let http = &config.virtual_services[0].spec.http;
/// let direct = http[1].direct_response.as_ref().unwrap();
/// assert_eq!(direct.status, 410);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpDirectResponse {
    /// Status code (200–599).
    pub status: u32,
    /// Response body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<HttpBody>,
}

/// Istio `HTTPBody`: one of `string` or `bytes` (base64).
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: VirtualService
/// # metadata: {name: legacy}
/// # spec:
/// #   hosts: [old.example.com]
/// #   http:
/// #   - match: [{uri: {prefix: /v1/}}]
/// #     redirect: {authority: new.example.com, prefixRewrite: /v2/, redirectCode: 308, derivePort: FROM_PROTOCOL_DEFAULT}
/// #   - directResponse: {status: 410, body: {string: gone}}
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let http = &config.virtual_services[0].spec.http;
/// let body = http[1].direct_response.as_ref().unwrap().body.as_ref().unwrap();
/// assert_eq!((body.string.as_deref(), body.bytes.as_deref()), (Some("gone"), None));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpBody {
    /// Body text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub string: Option<String>,
    /// Body bytes, base64-encoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<String>,
}

/// Istio `Delegate`: another VirtualService holding the routes.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: root, namespace: shop}\nspec: {hosts: [shop.example.com], http: [{delegate: {name: child, namespace: shop}}]}\n";
/// let delegate = match Config::from_yaml_str(yaml) {
///     Ok(loaded) => loaded.config.virtual_services[0].spec.http[0].delegate.clone(),
///     Err(errors) => panic!("{errors:?}"),
/// };
/// assert_eq!(delegate.unwrap().name, "child");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Delegate {
    /// Name of the delegate VirtualService.
    #[serde(default)]
    pub name: String,
    /// Its namespace (default: the root VirtualService's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Istio `HTTPRetry`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: reviews}
/// # spec: {hosts: [reviews, ratings], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: networking.istio.io/v1
/// # kind: VirtualService
/// # metadata: {name: reviews}
/// # spec:
/// #   hosts: [reviews]
/// #   http:
/// #   - name: beta
/// #     match: [{headers: {x-beta: {exact: "1"}}, uri: {prefix: /api/}}]
/// #     rewrite: {uri: /}
/// #     route:
/// #     - {destination: {host: reviews, port: {number: 80}}, weight: 75, headers: {request: {set: {x-lane: a}}}}
/// #     - {destination: {host: ratings}, weight: 25}
/// #     timeout: 3s
/// #     retries: {attempts: 2, perTryTimeout: 1s, retryOn: "5xx,reset"}
/// #     fault: {delay: {fixedDelay: 50ms, percentage: {value: 1}}, abort: {httpStatus: 503, percentage: {value: 0.5}}}
/// #     mirrors: [{destination: {host: ratings}, percentage: {value: 10}}]
/// #     headers: {response: {remove: [x-internal]}}
/// #   - route: [{destination: {host: reviews}}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let beta = &config.virtual_services[0].spec.http[0];
/// let retries = beta.retries.as_ref().unwrap();
/// assert_eq!((retries.attempts, retries.retry_on.as_deref()), (Some(2), Some("5xx,reset")));
/// assert_eq!(retries.per_try_timeout.unwrap().get().as_secs(), 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRetry {
    /// Number of retries (0 disables retries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
    /// Timeout of each attempt (≥ 1ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<Duration>,
    /// Comma-separated retry conditions (`5xx`, `reset`, `503`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
    /// Retry in other localities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_remote_localities: Option<bool>,
    /// Avoid hosts already tried (Istio default: true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_ignore_previous_hosts: Option<bool>,
    /// Base back-off interval (default 25ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Duration>,
}

impl HttpRetry {
    /// The `retryOn` list, or `None` when it is unset or empty: Istio treats an empty
    /// `retryOn` as unset, so its default conditions apply.
    ///
    /// ```
    /// use mesh_route::config::HttpRetry;
    ///
    /// let retry_on = |list: &str| HttpRetry { retry_on: Some(list.into()), ..Default::default() };
    /// assert_eq!(retry_on("5xx,reset").retry_conditions(), Some("5xx,reset"));
    /// assert_eq!(retry_on("").retry_conditions(), None);
    /// assert_eq!(HttpRetry::default().retry_conditions(), None);
    /// ```
    pub fn retry_conditions(&self) -> Option<&str> {
        self.retry_on
            .as_deref()
            .filter(|list| !list.trim().is_empty())
    }
}

/// Istio `HTTPFaultInjection`: delays and aborts, independent of each other.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: reviews}
/// # spec: {hosts: [reviews, ratings], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: networking.istio.io/v1
/// # kind: VirtualService
/// # metadata: {name: reviews}
/// # spec:
/// #   hosts: [reviews]
/// #   http:
/// #   - name: beta
/// #     match: [{headers: {x-beta: {exact: "1"}}, uri: {prefix: /api/}}]
/// #     rewrite: {uri: /}
/// #     route:
/// #     - {destination: {host: reviews, port: {number: 80}}, weight: 75, headers: {request: {set: {x-lane: a}}}}
/// #     - {destination: {host: ratings}, weight: 25}
/// #     timeout: 3s
/// #     retries: {attempts: 2, perTryTimeout: 1s, retryOn: "5xx,reset"}
/// #     fault: {delay: {fixedDelay: 50ms, percentage: {value: 1}}, abort: {httpStatus: 503, percentage: {value: 0.5}}}
/// #     mirrors: [{destination: {host: ratings}, percentage: {value: 10}}]
/// #     headers: {response: {remove: [x-internal]}}
/// #   - route: [{destination: {host: reviews}}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let beta = &config.virtual_services[0].spec.http[0];
/// let fault = beta.fault.as_ref().unwrap();
/// assert!(fault.delay.is_some() && fault.abort.is_some());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpFaultInjection {
    /// Delay before forwarding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelay>,
    /// Abort with an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbort>,
}

/// Istio `HTTPFaultInjection.Delay`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: reviews}
/// # spec: {hosts: [reviews, ratings], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: networking.istio.io/v1
/// # kind: VirtualService
/// # metadata: {name: reviews}
/// # spec:
/// #   hosts: [reviews]
/// #   http:
/// #   - name: beta
/// #     match: [{headers: {x-beta: {exact: "1"}}, uri: {prefix: /api/}}]
/// #     rewrite: {uri: /}
/// #     route:
/// #     - {destination: {host: reviews, port: {number: 80}}, weight: 75, headers: {request: {set: {x-lane: a}}}}
/// #     - {destination: {host: ratings}, weight: 25}
/// #     timeout: 3s
/// #     retries: {attempts: 2, perTryTimeout: 1s, retryOn: "5xx,reset"}
/// #     fault: {delay: {fixedDelay: 50ms, percentage: {value: 1}}, abort: {httpStatus: 503, percentage: {value: 0.5}}}
/// #     mirrors: [{destination: {host: ratings}, percentage: {value: 10}}]
/// #     headers: {response: {remove: [x-internal]}}
/// #   - route: [{destination: {host: reviews}}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let beta = &config.virtual_services[0].spec.http[0];
/// let delay = beta.fault.as_ref().unwrap().delay.as_ref().unwrap();
/// assert_eq!(delay.fixed_delay.unwrap().get().as_millis(), 50);
/// assert_eq!(delay.percentage.unwrap().value, 1.0);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultDelay {
    /// Fixed delay (≥ 1ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_delay: Option<Duration>,
    /// Exponential delay (not supported by Istio either).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exponential_delay: Option<Duration>,
    /// Share of requests delayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
    /// Deprecated integer percentage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<i32>,
}

/// Istio `HTTPFaultInjection.Abort`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: reviews}
/// # spec: {hosts: [reviews, ratings], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: networking.istio.io/v1
/// # kind: VirtualService
/// # metadata: {name: reviews}
/// # spec:
/// #   hosts: [reviews]
/// #   http:
/// #   - name: beta
/// #     match: [{headers: {x-beta: {exact: "1"}}, uri: {prefix: /api/}}]
/// #     rewrite: {uri: /}
/// #     route:
/// #     - {destination: {host: reviews, port: {number: 80}}, weight: 75, headers: {request: {set: {x-lane: a}}}}
/// #     - {destination: {host: ratings}, weight: 25}
/// #     timeout: 3s
/// #     retries: {attempts: 2, perTryTimeout: 1s, retryOn: "5xx,reset"}
/// #     fault: {delay: {fixedDelay: 50ms, percentage: {value: 1}}, abort: {httpStatus: 503, percentage: {value: 0.5}}}
/// #     mirrors: [{destination: {host: ratings}, percentage: {value: 10}}]
/// #     headers: {response: {remove: [x-internal]}}
/// #   - route: [{destination: {host: reviews}}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let beta = &config.virtual_services[0].spec.http[0];
/// let abort = beta.fault.as_ref().unwrap().abort.as_ref().unwrap();
/// assert_eq!((abort.http_status, abort.grpc_status.as_deref()), (Some(503), None));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultAbort {
    /// HTTP status to answer with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i32>,
    /// gRPC status name (e.g. `UNAVAILABLE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<String>,
    /// HTTP/2 error (rejected by Istio's validation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http2_error: Option<String>,
    /// Share of requests aborted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// Istio `HTTPMirrorPolicy`: one of several mirror targets.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: reviews}
/// # spec: {hosts: [reviews, ratings], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: networking.istio.io/v1
/// # kind: VirtualService
/// # metadata: {name: reviews}
/// # spec:
/// #   hosts: [reviews]
/// #   http:
/// #   - name: beta
/// #     match: [{headers: {x-beta: {exact: "1"}}, uri: {prefix: /api/}}]
/// #     rewrite: {uri: /}
/// #     route:
/// #     - {destination: {host: reviews, port: {number: 80}}, weight: 75, headers: {request: {set: {x-lane: a}}}}
/// #     - {destination: {host: ratings}, weight: 25}
/// #     timeout: 3s
/// #     retries: {attempts: 2, perTryTimeout: 1s, retryOn: "5xx,reset"}
/// #     fault: {delay: {fixedDelay: 50ms, percentage: {value: 1}}, abort: {httpStatus: 503, percentage: {value: 0.5}}}
/// #     mirrors: [{destination: {host: ratings}, percentage: {value: 10}}]
/// #     headers: {response: {remove: [x-internal]}}
/// #   - route: [{destination: {host: reviews}}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let beta = &config.virtual_services[0].spec.http[0];
/// let mirror = &beta.mirrors[0];
/// assert_eq!(mirror.destination.host, "ratings");
/// assert_eq!(mirror.percentage.unwrap().value, 10.0);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpMirrorPolicy {
    /// Where to send the shadow copy.
    pub destination: Destination,
    /// Share of requests mirrored (absent = 100%).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// Istio `CorsPolicy`.
///
/// ```
/// use mesh_route::config::Config;
///
/// let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api}\nspec: {hosts: [api.example.com], http: [{corsPolicy: {allowOrigins: [{exact: https://shop.example.com}], allowMethods: [GET], maxAge: 24h}, directResponse: {status: 200}}]}\n";
/// let loaded = Config::from_yaml_str(yaml).unwrap();
/// let cors = loaded.config.virtual_services[0].spec.http[0].cors_policy.clone().unwrap();
/// assert_eq!(cors.allow_methods, ["GET"]);
/// assert_eq!(cors.max_age.unwrap().get().as_secs(), 86_400);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsPolicy {
    /// Deprecated exact-origin list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origin: Vec<String>,
    /// Allowed origins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<StringMatch>,
    /// `Access-Control-Allow-Methods`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// `Access-Control-Allow-Headers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// `Access-Control-Expose-Headers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// `Access-Control-Max-Age`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
    /// `Access-Control-Allow-Credentials`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// What to do with preflight requests whose origin does not match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unmatched_preflights: Option<UnmatchedPreflights>,
}

/// Istio `CorsPolicy.UnmatchedPreflights`.
///
/// ```
/// use mesh_route::config::{Config, UnmatchedPreflights};
///
/// let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api}\nspec: {hosts: [api.example.com], http: [{corsPolicy: {allowOrigins: [{prefix: https://}], unmatchedPreflights: IGNORE}, directResponse: {status: 200}}]}\n";
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let cors = config.virtual_services[0].spec.http[0].cors_policy.as_ref().unwrap();
/// assert_eq!(cors.unmatched_preflights, Some(UnmatchedPreflights::Ignore));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UnmatchedPreflights {
    /// Default (forward).
    Unspecified,
    /// Forward to the upstream.
    Forward,
    /// Answer locally without CORS headers.
    Ignore,
}

/// Istio `TLSRoute`: SNI-based routing of unterminated TLS.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: db}
/// # spec: {hosts: [db.example.com], resolution: STATIC, ports: [{number: 5432, name: pg, protocol: TCP}, {number: 443, name: tls, protocol: TLS}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: networking.istio.io/v1
/// # kind: VirtualService
/// # metadata: {name: db}
/// # spec:
/// #   hosts: [db.example.com]
/// #   tcp:
/// #   - match: [{port: 5432}]
/// #     route: [{destination: {host: db.example.com, port: {number: 5432}}}]
/// #   tls:
/// #   - match: [{port: 443, sniHosts: [db.example.com]}]
/// #     route: [{destination: {host: db.example.com, port: {number: 443}}}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let vs = &config.virtual_services[0].spec;
/// let tls = &vs.tls[0];
/// assert_eq!(tls.match_[0].sni_hosts, ["db.example.com"]);
/// assert_eq!(tls.route[0].destination.port.unwrap().number, 443);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsRoute {
    /// Match blocks (ORed).
    #[serde(rename = "match", default, skip_serializing_if = "Vec::is_empty")]
    pub match_: Vec<TlsMatchAttributes>,
    /// Weighted destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteDestination>,
}

/// Istio `TCPRoute`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: db}
/// # spec: {hosts: [db.example.com], resolution: STATIC, ports: [{number: 5432, name: pg, protocol: TCP}, {number: 443, name: tls, protocol: TLS}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: networking.istio.io/v1
/// # kind: VirtualService
/// # metadata: {name: db}
/// # spec:
/// #   hosts: [db.example.com]
/// #   tcp:
/// #   - match: [{port: 5432}]
/// #     route: [{destination: {host: db.example.com, port: {number: 5432}}}]
/// #   tls:
/// #   - match: [{port: 443, sniHosts: [db.example.com]}]
/// #     route: [{destination: {host: db.example.com, port: {number: 443}}}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let vs = &config.virtual_services[0].spec;
/// let tcp = &vs.tcp[0];
/// assert_eq!(tcp.match_[0].port, Some(5432));
/// assert_eq!(tcp.route.len(), 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpRoute {
    /// Match blocks (ORed).
    #[serde(rename = "match", default, skip_serializing_if = "Vec::is_empty")]
    pub match_: Vec<L4MatchAttributes>,
    /// Weighted destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteDestination>,
}

/// Istio `TLSMatchAttributes`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: db}
/// # spec: {hosts: [db.example.com], resolution: STATIC, ports: [{number: 5432, name: pg, protocol: TCP}, {number: 443, name: tls, protocol: TLS}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: networking.istio.io/v1
/// # kind: VirtualService
/// # metadata: {name: db}
/// # spec:
/// #   hosts: [db.example.com]
/// #   tcp:
/// #   - match: [{port: 5432}]
/// #     route: [{destination: {host: db.example.com, port: {number: 5432}}}]
/// #   tls:
/// #   - match: [{port: 443, sniHosts: [db.example.com]}]
/// #     route: [{destination: {host: db.example.com, port: {number: 443}}}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let vs = &config.virtual_services[0].spec;
/// let m = &vs.tls[0].match_[0];
/// assert_eq!((m.port, m.sni_hosts.len()), (Some(443), 1));
/// assert!(m.gateways.is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsMatchAttributes {
    /// SNI values to match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sni_hosts: Vec<String>,
    /// Destination IPs/subnets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_subnets: Vec<String>,
    /// Port on the addressed host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Labels of the calling workload.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways this match applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Namespace of the calling workload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
}

/// Istio `L4MatchAttributes`.
///
/// ```
/// use mesh_route::config::Config;
///
/// # let yaml = r#"
/// # apiVersion: networking.istio.io/v1
/// # kind: ServiceEntry
/// # metadata: {name: db}
/// # spec: {hosts: [db.example.com], resolution: STATIC, ports: [{number: 5432, name: pg, protocol: TCP}, {number: 443, name: tls, protocol: TLS}], endpoints: [{address: 127.0.0.1}]}
/// # ---
/// # apiVersion: networking.istio.io/v1
/// # kind: VirtualService
/// # metadata: {name: db}
/// # spec:
/// #   hosts: [db.example.com]
/// #   tcp:
/// #   - match: [{port: 5432}]
/// #     route: [{destination: {host: db.example.com, port: {number: 5432}}}]
/// #   tls:
/// #   - match: [{port: 443, sniHosts: [db.example.com]}]
/// #     route: [{destination: {host: db.example.com, port: {number: 443}}}]
/// # "#;
/// let config = Config::from_yaml_str(yaml).unwrap().config;
/// let vs = &config.virtual_services[0].spec;
/// let m = &vs.tcp[0].match_[0];
/// assert_eq!(m.port, Some(5432));
/// assert!(m.source_subnet.is_none());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct L4MatchAttributes {
    /// Destination IPs/subnets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_subnets: Vec<String>,
    /// Port on the addressed host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Source subnet (hidden in Istio's docs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_subnet: Option<String>,
    /// Labels of the calling workload.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways this match applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Namespace of the calling workload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
}
