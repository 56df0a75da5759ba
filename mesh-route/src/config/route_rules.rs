//! Istio's admission rules for a single `VirtualService` (`pkg/config/validation`):
//! route/redirect/directResponse/delegate exclusivity, weights, rewrite and redirect
//! conflicts, mirror percentages, retry conditions, header-name case, `StringMatch` shape
//! and RE2 regexes compiled as Envoy would (whole-string match).

use std::collections::BTreeMap;

use super::checks::{at_least_1ms, not_negative};
use super::diagnostic::Reporter;
use super::shared_types::{Percent, StringMatch};
use super::suggest::did_you_mean;
use super::virtual_service::{HttpMatchRequest, HttpRoute, VirtualService};

/// `retryOn` tokens Istio accepts (besides integer status codes).
///
/// ```
/// use mesh_route::config::{Config, RETRY_ON_TOKENS};
///
/// assert!(RETRY_ON_TOKENS.contains(&"gateway-error"));
/// let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec: {hosts: [a], resolution: STATIC, ports: [{number: 80, name: http}], endpoints: [{address: 127.0.0.1}]}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec: {hosts: [a], http: [{route: [{destination: {host: a}}], retries: {attempts: 1, retryOn: gateway-eror}}]}\n";
/// let errors = Config::from_yaml_str(yaml).unwrap_err();
/// assert!(errors[0].message.starts_with("unknown retryOn condition \"gateway-eror\""), "{}", errors[0]);
/// ```
pub const RETRY_ON_TOKENS: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// Checks one VirtualService. `delegated_to` is true when another VirtualService
/// delegates to this one (a delegate has no hosts).
pub(crate) fn validate_virtual_service(
    vs: &VirtualService,
    delegated_to: bool,
    r: &mut Reporter<'_>,
) {
    if vs.hosts.is_empty() && !delegated_to {
        r.error("hosts", "at least one host is required");
    }
    let on_mesh = vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh");
    for (i, host) in vs.hosts.iter().enumerate() {
        if host.is_empty() {
            r.error(format!("hosts[{i}]"), "host must not be empty");
        } else if host == "*" && on_mesh {
            r.error(
                format!("hosts[{i}]"),
                "wildcard host \"*\" is not allowed for the mesh gateway (sidecars)",
            );
        }
    }
    for (i, route) in vs.http.iter().enumerate() {
        validate_http_route(route, &format!("http[{i}]"), r);
    }
    for (i, route) in vs.tls.iter().enumerate() {
        let weights = route.route.iter().map(|d| d.weight);
        validate_weights(weights, &format!("tls[{i}].route"), r);
    }
    for (i, route) in vs.tcp.iter().enumerate() {
        let weights = route.route.iter().map(|d| d.weight);
        validate_weights(weights, &format!("tcp[{i}].route"), r);
    }
}

fn validate_http_route(route: &HttpRoute, at: &str, r: &mut Reporter<'_>) {
    let actions: Vec<&str> = [
        (!route.route.is_empty(), "route"),
        (route.redirect.is_some(), "redirect"),
        (route.direct_response.is_some(), "directResponse"),
        (route.delegate.is_some(), "delegate"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect();
    match actions.as_slice() {
        [] => r.error(
            at,
            "one of route, redirect, directResponse or delegate is required",
        ),
        [_] => {}
        several => r.error(
            at,
            format!(
                "only one of route, redirect, directResponse or delegate may be set (found {})",
                several.join(" and ")
            ),
        ),
    }
    if route.rewrite.is_some() && route.redirect.is_some() {
        r.error(
            format!("{at}.rewrite"),
            "rewrite cannot be used together with redirect",
        );
    }
    if route.rewrite.is_some() && route.direct_response.is_some() {
        r.error(
            format!("{at}.rewrite"),
            "rewrite cannot be used together with directResponse",
        );
    }
    if route.fault.is_some() && (route.redirect.is_some() || route.direct_response.is_some()) {
        r.error(
            format!("{at}.fault"),
            "fault cannot be used together with redirect or directResponse",
        );
    }
    for (j, m) in route.match_.iter().enumerate() {
        validate_match(m, &format!("{at}.match[{j}]"), r);
    }
    validate_weights(
        route.route.iter().map(|d| d.weight),
        &format!("{at}.route"),
        r,
    );
    validate_redirect(route, at, r);
    validate_direct_response(route, at, r);
    validate_rewrite(route, at, r);
    validate_mirrors(route, at, r);
    validate_retries(route, at, r);
    validate_fault(route, at, r);
    if let Some(cors) = &route.cors_policy {
        for (k, origin) in cors.allow_origins.iter().enumerate() {
            let path = format!("{at}.corsPolicy.allowOrigins[{k}]");
            validate_string_match(origin, &path, StringMatchUse::Value, r);
        }
    }
}

fn validate_weights(weights: impl Iterator<Item = Option<i32>>, at: &str, r: &mut Reporter<'_>) {
    let weights: Vec<Option<i32>> = weights.collect();
    let mut total: i64 = 0;
    for (k, weight) in weights.iter().enumerate() {
        let weight = weight.unwrap_or(0);
        if weight < 0 {
            r.error(
                format!("{at}[{k}].weight"),
                format!("weight must not be negative, got {weight}"),
            );
        }
        total += i64::from(weight.max(0));
    }
    if weights.len() > 1 && total == 0 {
        r.error(at, "total destination weight = 0");
    }
    if total > i64::from(u32::MAX) {
        r.error(at, format!("total destination weight {total} is too large"));
    }
}

fn validate_redirect(route: &HttpRoute, at: &str, r: &mut Reporter<'_>) {
    let Some(redirect) = &route.redirect else {
        return;
    };
    let at = format!("{at}.redirect");
    if redirect.uri.is_some() && redirect.prefix_rewrite.is_some() {
        r.error(&at, "uri and prefixRewrite cannot both be set");
    }
    if redirect.prefix_rewrite.is_some() {
        let non_prefix = route
            .match_
            .iter()
            .any(|m| m.uri.as_ref().is_none_or(|uri| uri.prefix.is_none()));
        if non_prefix {
            r.error(
                format!("{at}.prefixRewrite"),
                "prefixRewrite requires every match to have a uri prefix match",
            );
        }
    }
    if redirect.port.is_some() && redirect.derive_port.is_some() {
        r.error(&at, "port and derivePort cannot both be set");
    }
    if let Some(port) = redirect.port
        && !(1..=65535).contains(&port)
    {
        r.error(
            format!("{at}.port"),
            format!("port {port} is not in 1-65535"),
        );
    }
    if let Some(code) = redirect.redirect_code
        && !(300..=399).contains(&code)
    {
        r.error(
            format!("{at}.redirectCode"),
            format!("redirect code {code} is not in 300-399"),
        );
    }
}

fn validate_direct_response(route: &HttpRoute, at: &str, r: &mut Reporter<'_>) {
    let Some(response) = &route.direct_response else {
        return;
    };
    if !(200..=599).contains(&response.status) {
        r.error(
            format!("{at}.directResponse.status"),
            format!("status {} is not in 200-599", response.status),
        );
    }
    if let Some(body) = &response.body
        && body.string.is_some()
        && body.bytes.is_some()
    {
        r.error(
            format!("{at}.directResponse.body"),
            "only one of string and bytes may be set",
        );
    }
}

fn validate_rewrite(route: &HttpRoute, at: &str, r: &mut Reporter<'_>) {
    let Some(rewrite) = &route.rewrite else {
        return;
    };
    let at = format!("{at}.rewrite");
    if rewrite.uri.is_some() && rewrite.uri_regex_rewrite.is_some() {
        r.error(&at, "uri and uriRegexRewrite cannot both be set");
    }
    if let Some(regex_rewrite) = &rewrite.uri_regex_rewrite {
        check_regex(
            &regex_rewrite.match_,
            &format!("{at}.uriRegexRewrite.match"),
            r,
        );
    }
}

fn validate_mirrors(route: &HttpRoute, at: &str, r: &mut Reporter<'_>) {
    if route.mirror.is_some() && !route.mirrors.is_empty() {
        r.error(
            format!("{at}.mirrors"),
            "mirror and mirrors cannot both be set",
        );
    }
    if let Some(percent) = &route.mirror_percentage {
        check_percent(percent, &format!("{at}.mirrorPercentage.value"), r);
    }
    if let Some(percent) = route.mirror_percent
        && percent > 100
    {
        r.error(
            format!("{at}.mirrorPercent"),
            format!("percentage {percent} is not in 0-100"),
        );
    }
    for (k, mirror) in route.mirrors.iter().enumerate() {
        if let Some(percent) = &mirror.percentage {
            check_percent(percent, &format!("{at}.mirrors[{k}].percentage.value"), r);
        }
    }
}

fn validate_retries(route: &HttpRoute, at: &str, r: &mut Reporter<'_>) {
    let Some(retries) = &route.retries else {
        return;
    };
    let at = format!("{at}.retries");
    not_negative(retries.attempts, &at, "attempts", r);
    at_least_1ms(retries.per_try_timeout, &at, "perTryTimeout", r);
    if let Some(retry_on) = retries.retry_conditions() {
        for token in retry_on.split(',').map(str::trim) {
            if !valid_retry_on(token) {
                r.error(
                    format!("{at}.retryOn"),
                    format!(
                        "unknown retryOn condition \"{token}\"{}",
                        did_you_mean(token, RETRY_ON_TOKENS.iter().copied())
                    ),
                );
            }
        }
    }
}

fn valid_retry_on(token: &str) -> bool {
    RETRY_ON_TOKENS.contains(&token)
        || token
            .parse::<u16>()
            .is_ok_and(|code| (100..=599).contains(&code))
}

fn validate_fault(route: &HttpRoute, at: &str, r: &mut Reporter<'_>) {
    let Some(fault) = &route.fault else {
        return;
    };
    if let Some(delay) = &fault.delay {
        let at = format!("{at}.fault.delay");
        if delay.fixed_delay.is_none() && delay.exponential_delay.is_none() {
            r.error(&at, "fixedDelay is required");
        }
        at_least_1ms(delay.fixed_delay, &at, "fixedDelay", r);
        if let Some(percent) = &delay.percentage {
            check_percent(percent, &format!("{at}.percentage.value"), r);
        }
        if let Some(percent) = delay.percent
            && !(0..=100).contains(&percent)
        {
            r.error(
                format!("{at}.percent"),
                format!("percentage {percent} is not in 0-100"),
            );
        }
    }
    if let Some(abort) = &fault.abort {
        let at = format!("{at}.fault.abort");
        let kinds = [
            abort.http_status.is_some(),
            abort.grpc_status.is_some(),
            abort.http2_error.is_some(),
        ];
        match kinds.iter().filter(|set| **set).count() {
            0 => r.error(&at, "one of httpStatus or grpcStatus is required"),
            1 => {}
            _ => r.error(
                &at,
                "only one of httpStatus, grpcStatus or http2Error may be set",
            ),
        }
        if let Some(status) = abort.http_status
            && !(200..=599).contains(&status)
        {
            r.error(
                format!("{at}.httpStatus"),
                format!("status {status} is not in 200-599"),
            );
        }
        if let Some(name) = &abort.grpc_status
            && mesh_core::policy::grpc_status_code(name).is_none()
        {
            let hint =
                match crate::config::suggest::closest(name, mesh_core::policy::GRPC_STATUS_NAMES) {
                    Some(best) => format!(" (did you mean \"{best}\"?)"),
                    None => String::new(),
                };
            r.error(
                format!("{at}.grpcStatus"),
                format!("unknown gRPC status \"{name}\"{hint}"),
            );
        }
        if abort.http2_error.is_some() {
            r.error(
                format!("{at}.http2Error"),
                "http2Error is not supported by Istio",
            );
        }
        if let Some(percent) = &abort.percentage {
            check_percent(percent, &format!("{at}.percentage.value"), r);
        }
    }
}

fn check_percent(percent: &Percent, at: &str, r: &mut Reporter<'_>) {
    if !(0.0..=100.0).contains(&percent.value) {
        r.error(at, format!("percentage {} is not in 0-100", percent.value));
    }
}

/// Where a `StringMatch` is used, which decides whether "present" (all unset) is valid.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StringMatchUse {
    /// `uri`, `scheme`, `method`, `authority`, CORS origins: something must be set.
    Value,
    /// `queryParams`: empty means "present".
    Presence,
    /// `headers`, `withoutHeaders`: empty means "present"; `regex: "*"` too (Istio quirk).
    Header,
}

fn validate_match(m: &HttpMatchRequest, at: &str, r: &mut Reporter<'_>) {
    let pseudo = [
        ("uri", &m.uri),
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ];
    for (name, value) in pseudo {
        if let Some(value) = value {
            validate_string_match(value, &format!("{at}.{name}"), StringMatchUse::Value, r);
        }
    }
    validate_header_matches(&m.headers, &format!("{at}.headers"), r);
    validate_header_matches(&m.without_headers, &format!("{at}.withoutHeaders"), r);
    for (name, value) in &m.query_params {
        validate_string_match(
            value,
            &format!("{at}.queryParams.{name}"),
            StringMatchUse::Presence,
            r,
        );
    }
}

fn validate_header_matches(
    headers: &BTreeMap<String, StringMatch>,
    at: &str,
    r: &mut Reporter<'_>,
) {
    for (name, value) in headers {
        let path = format!("{at}.{name}");
        if name.is_empty() {
            r.error(&path, "header name must not be empty");
        } else if name.chars().any(|c| c.is_ascii_uppercase()) {
            r.error(
                &path,
                format!(
                    "header name \"{name}\" must be lower-case (\"{}\")",
                    name.to_ascii_lowercase()
                ),
            );
        }
        validate_string_match(value, &path, StringMatchUse::Header, r);
    }
}

fn validate_string_match(m: &StringMatch, at: &str, usage: StringMatchUse, r: &mut Reporter<'_>) {
    match m.kinds_set() {
        0 if usage == StringMatchUse::Value => {
            r.error(at, "empty match: set one of exact, prefix or regex");
        }
        0 | 1 => {}
        _ => r.error(at, "only one of exact, prefix or regex may be set"),
    }
    if let Some(regex) = &m.regex {
        if usage == StringMatchUse::Header && regex == "*" {
            return;
        }
        check_regex(regex, &format!("{at}.regex"), r);
    }
}

/// Compiles `regex` the way it is matched (anchored to the whole value).
fn check_regex(regex: &str, at: &str, r: &mut Reporter<'_>) {
    if let Err(crate::matcher::MatchError::Regex { source, .. }) =
        crate::matcher::compile_regex(regex, at)
    {
        let reason = crate::matcher::regex_reason(&source);
        r.error(at, format!("invalid regex \"{regex}\": {reason}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::diagnostic::{Diagnostic, Origin};

    fn check(yaml: serde_json::Value) -> Vec<Diagnostic> {
        let vs: VirtualService = serde_json::from_value(yaml).unwrap_or_default();
        let origin = Origin::new("t.yaml", 0);
        let mut out = Vec::new();
        validate_virtual_service(
            &vs,
            false,
            &mut Reporter::new(&origin, "VirtualService t", &mut out),
        );
        out
    }

    fn fields(out: &[Diagnostic]) -> Vec<String> {
        out.iter().filter_map(|d| d.field.clone()).collect()
    }

    #[test]
    fn negative_weight_and_zero_total() {
        let out = check(serde_json::json!({"hosts": ["a"], "http": [{"route": [
            {"destination": {"host": "a"}, "weight": -1},
            {"destination": {"host": "b"}, "weight": 0},
        ]}]}));
        assert!(
            fields(&out).contains(&"http[0].route[0].weight".to_string()),
            "{out:?}"
        );
        assert!(
            out.iter()
                .any(|d| d.message == "total destination weight = 0"),
            "{out:?}"
        );
    }

    #[test]
    fn single_destination_weight_zero_is_fine() {
        let out = check(serde_json::json!({"hosts": ["a"], "http": [{"route": [
            {"destination": {"host": "a"}, "weight": 0},
        ]}]}));
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn actions_are_exclusive_and_required() {
        let out = check(serde_json::json!({"hosts": ["a"], "http": [
            {"route": [{"destination": {"host": "a"}}], "redirect": {"uri": "/x"}},
            {"match": [{"uri": {"prefix": "/"}}]},
        ]}));
        assert!(
            out.iter().any(|d| d.field.as_deref() == Some("http[0]")
                && d.message.contains("route and redirect")),
            "{out:?}"
        );
        assert!(
            out.iter()
                .any(|d| d.field.as_deref() == Some("http[1]") && d.message.contains("required")),
            "{out:?}"
        );
    }

    #[test]
    fn conflicting_rewrites_and_redirects() {
        let out = check(serde_json::json!({"hosts": ["a"], "http": [
            {"match": [{"uri": {"exact": "/a"}}],
             "redirect": {"uri": "/x", "prefixRewrite": "/y", "redirectCode": 200}, "rewrite": {"uri": "/z"}},
            {"route": [{"destination": {"host": "a"}}],
             "rewrite": {"uri": "/z", "uriRegexRewrite": {"match": "^/a", "rewrite": "/b"}}},
            {"directResponse": {"status": 700}, "fault": {"abort": {"httpStatus": 503}}},
        ]}));
        let f = fields(&out);
        for expected in [
            "http[0].rewrite",
            "http[0].redirect",
            "http[0].redirect.prefixRewrite",
            "http[0].redirect.redirectCode",
            "http[1].rewrite",
            "http[2].directResponse.status",
            "http[2].fault",
        ] {
            assert!(
                f.contains(&expected.to_string()),
                "missing {expected}: {out:?}"
            );
        }
    }

    #[test]
    fn mirrors_and_percentages() {
        let out = check(serde_json::json!({"hosts": ["a"], "http": [{
            "route": [{"destination": {"host": "a"}}],
            "mirror": {"host": "b"},
            "mirrors": [{"destination": {"host": "c"}, "percentage": {"value": 150.0}}],
            "mirrorPercentage": {"value": -1.0},
        }]}));
        let f = fields(&out);
        assert!(f.contains(&"http[0].mirrors".to_string()), "{out:?}");
        assert!(
            f.contains(&"http[0].mirrors[0].percentage.value".to_string()),
            "{out:?}"
        );
        assert!(
            f.contains(&"http[0].mirrorPercentage.value".to_string()),
            "{out:?}"
        );
    }

    #[test]
    fn retries() {
        let out = check(serde_json::json!({"hosts": ["a"], "http": [{
            "route": [{"destination": {"host": "a"}}],
            "retries": {"attempts": 3, "perTryTimeout": "0.5ms", "retryOn": "5xx,503,conect-failure"},
        }]}));
        assert!(
            out.iter()
                .any(|d| d.field.as_deref() == Some("http[0].retries.perTryTimeout")),
            "{out:?}"
        );
        let unknown: Vec<_> = out
            .iter()
            .filter(|d| d.message.contains("retryOn"))
            .collect();
        assert_eq!(unknown.len(), 1, "{out:?}");
        assert!(
            unknown[0]
                .message
                .contains("did you mean \"connect-failure\""),
            "{out:?}"
        );
    }

    #[test]
    fn empty_retry_on_is_unset() {
        let out = check(serde_json::json!({"hosts": ["a"], "http": [{
            "route": [{"destination": {"host": "a"}}],
            "retries": {"attempts": 3, "retryOn": ""},
        }]}));
        assert!(out.is_empty(), "{out:?}");
        // An empty token inside a list is still not a condition.
        let out = check(serde_json::json!({"hosts": ["a"], "http": [{
            "route": [{"destination": {"host": "a"}}],
            "retries": {"attempts": 3, "retryOn": "5xx,,bogus"},
        }]}));
        assert_eq!(fields(&out), vec!["http[0].retries.retryOn"; 2], "{out:?}");
    }

    #[test]
    fn string_matches() {
        let out = check(serde_json::json!({"hosts": ["a"], "http": [{
            "match": [{
                "uri": {},
                "method": {"exact": "GET", "prefix": "G"},
                "headers": {"X-User": {"exact": "a"}, "x-any": {}, "x-star": {"regex": "*"}},
                "queryParams": {"q": {}},
                "authority": {"regex": "a(b"},
            }],
            "route": [{"destination": {"host": "a"}}],
        }]}));
        let f = fields(&out);
        assert!(f.contains(&"http[0].match[0].uri".to_string()), "{out:?}");
        assert!(
            f.contains(&"http[0].match[0].method".to_string()),
            "{out:?}"
        );
        assert!(
            f.contains(&"http[0].match[0].headers.X-User".to_string()),
            "{out:?}"
        );
        assert!(
            f.contains(&"http[0].match[0].authority.regex".to_string()),
            "{out:?}"
        );
        assert_eq!(out.len(), 4, "{out:?}");
    }

    #[test]
    fn hosts() {
        let out = check(serde_json::json!({"http": [{"route": [{"destination": {"host": "a"}}]}]}));
        assert_eq!(fields(&out), vec!["hosts".to_string()]);
        let out = check(serde_json::json!({"hosts": ["*"], "gateways": ["mesh"],
            "http": [{"route": [{"destination": {"host": "a"}}]}]}));
        assert_eq!(fields(&out), vec!["hosts[0]".to_string()]);
        let out = check(serde_json::json!({"hosts": ["*"], "gateways": ["ingress"],
            "http": [{"route": [{"destination": {"host": "a"}}]}]}));
        assert!(out.is_empty(), "{out:?}");
    }
}
