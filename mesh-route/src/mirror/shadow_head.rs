//! The head of a shadow request: the original's, pointed at the mirror destination, with
//! `-shadow` appended to its host and its trace context kept but marked not sampled.

use http::{HeaderMap, HeaderValue, Uri, header::HOST, request::Parts, uri::Authority};
use mesh_core::{Destination, Routed, trace_reason::TraceReason};

/// The request id, whose trace reason a shadow must not carry.
const X_REQUEST_ID: &str = "x-request-id";

/// Builds the shadow copy of `original` for `destination`.
pub(crate) fn shadow_head(original: &Parts, destination: &Destination, host_suffix: bool) -> Parts {
    let mut head = original.clone();
    // Routing's decision sent the original elsewhere: the shadow keeps its route's policy (the
    // route timeout applies to it) and goes to the mirror destination.
    if let Some(routed) = head.extensions.remove::<Routed>()
        && let Some(policy) = &routed.policy
    {
        head.extensions.insert(policy.clone());
    }
    head.extensions.insert(destination.clone());
    // The retry layer consumes these on the primary's path; the shadow's has no retry layer.
    for control in CONSUMED_BY_RETRIES {
        head.headers.remove(control);
    }
    if host_suffix {
        append_shadow_suffix(&mut head);
    }
    mark_not_sampled(&mut head.headers);
    head
}

/// Request headers the retry layer reads and removes (or, for the attempt count, replaces)
/// before a request goes upstream.
const CONSUMED_BY_RETRIES: [&str; 7] = [
    "x-envoy-attempt-count",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-max-retries",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
];

/// `catalog:80` → `catalog-shadow:80`, `catalog` → `catalog-shadow`: on `Host` and on the URI's
/// authority (absolute form), as Envoy's shadow writer does.
fn append_shadow_suffix(head: &mut Parts) {
    if let Some(host) = head.headers.get(HOST).and_then(|v| v.to_str().ok())
        && let Ok(value) = HeaderValue::from_str(&shadow_host(host))
    {
        head.headers.insert(HOST, value);
    }
    if let Some(authority) = head.uri.authority()
        && let Ok(shadow) = shadow_host(authority.as_str()).parse::<Authority>()
    {
        let mut parts = head.uri.clone().into_parts();
        parts.authority = Some(shadow);
        if let Ok(uri) = Uri::from_parts(parts) {
            head.uri = uri;
        }
    }
}

/// Appends `-shadow` to the host part of `authority`, before any port.
///
/// ```text
/// catalog:80 → catalog-shadow:80    catalog → catalog-shadow    [::1]:80 → [::1]-shadow:80
/// ```
pub(crate) fn shadow_host(authority: &str) -> String {
    let port_at = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => i,
        _ => authority.len(),
    };
    let (host, port) = authority.split_at(port_at);
    format!("{host}-shadow{port}")
}

/// Keeps the trace ids but turns sampling off: a mirrored request is not a trace of its own
/// (Istio sets `trace_sampled: false` on mirror policies).
fn mark_not_sampled(headers: &mut HeaderMap) {
    const SAMPLED: &str = "x-b3-sampled";
    if headers.contains_key(SAMPLED) || headers.contains_key("x-b3-traceid") {
        headers.insert(SAMPLED, HeaderValue::from_static("0"));
    }
    headers.remove("x-b3-flags");
    // Both force a trace at the next hop, over the not-sampled flag; so does the reason the
    // request id records for a forced trace, cleared as it is kept.
    headers.remove("x-envoy-force-trace");
    headers.remove("x-client-trace-id");
    if let Some(id) = headers.get(X_REQUEST_ID)
        && let Some(untraced) = TraceReason::NotTraceable.marked(id)
    {
        headers.insert(X_REQUEST_ID, untraced);
    }
    if let Some(b3) = headers.get("b3").and_then(|v| v.to_str().ok()) {
        let mut fields: Vec<&str> = b3.split('-').collect();
        match fields.len() {
            1 => fields[0] = "0",
            2 => fields.push("0"),
            _ => fields[2] = "0",
        }
        if let Ok(value) = HeaderValue::from_str(&fields.join("-")) {
            headers.insert("b3", value);
        }
    }
    if let Some(traceparent) = headers.get("traceparent").and_then(|v| v.to_str().ok())
        && let Some((rest, flags)) = traceparent.rsplit_once('-')
        && let Ok(flags) = u8::from_str_radix(flags, 16)
        && let Ok(value) = HeaderValue::from_str(&format!("{rest}-{:02x}", flags & !1))
    {
        headers.insert("traceparent", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn shadows_lose_the_retry_layers_control_headers() {
        let consumed = [
            "x-envoy-attempt-count",
            "x-envoy-retry-on",
            "x-envoy-retry-grpc-on",
            "x-envoy-max-retries",
            "x-envoy-upstream-rq-per-try-timeout-ms",
            "x-envoy-retriable-status-codes",
            "x-envoy-retriable-header-names",
        ];
        let mut request = http::Request::get("http://catalog/items").body(()).unwrap();
        for name in consumed {
            request
                .headers_mut()
                .insert(name, HeaderValue::from_static("1"));
        }
        request
            .headers_mut()
            .insert("x-kept", HeaderValue::from_static("1"));
        let (parts, ()) = request.into_parts();
        let shadow = shadow_head(&parts, &destination(), false);
        for name in consumed {
            assert!(!shadow.headers.contains_key(name), "{name} kept");
        }
        assert!(shadow.headers.contains_key("x-kept"));
    }

    fn destination() -> Destination {
        Destination {
            cluster: 7,
            host: Arc::from("catalog.shop.svc.cluster.local"),
            subset: Some(Arc::from("v2")),
            port: None,
        }
    }

    #[test]
    fn the_shadow_keeps_its_routes_policy_and_goes_to_the_mirror_not_where_routing_sent_it() {
        use mesh_core::{
            RouteInfo, destination as destination_of,
            policy::{RoutePolicy, route_policy},
        };
        let policy = RoutePolicy {
            timeout: Some(std::time::Duration::from_secs(3)),
            ..Default::default()
        };
        let primary = Destination {
            cluster: 1,
            subset: Some(Arc::from("v1")),
            ..destination()
        };
        let route = RouteInfo {
            name: "r".into(),
            virtual_service: "vs".into(),
        };
        let (mut original, ()) = http::Request::get("http://catalog/")
            .body(())
            .unwrap()
            .into_parts();
        original.extensions.insert(Routed::with_policy(
            route,
            Some(primary),
            Some(policy.clone()),
        ));
        let head = shadow_head(&original, &destination(), false);
        assert_eq!(destination_of(&head.extensions), Some(&destination()));
        assert_eq!(
            route_policy(&head.extensions),
            Some(&policy),
            "its route timeout applies"
        );
        assert!(head.extensions.get::<Routed>().is_none());
    }

    #[test]
    fn suffix_goes_before_the_port() {
        assert_eq!(shadow_host("catalog:80"), "catalog-shadow:80");
        assert_eq!(shadow_host("catalog"), "catalog-shadow");
        assert_eq!(shadow_host("catalog.shop.svc"), "catalog.shop.svc-shadow");
        assert_eq!(shadow_host("[::1]:80"), "[::1]-shadow:80");
    }

    #[test]
    fn head_is_pointed_at_the_mirror_with_suffix_and_unsampled_trace() {
        let (original, ()) = http::Request::get("http://catalog:80/items?a=1")
            .header("host", "catalog:80")
            .header("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7")
            .header("x-b3-spanid", "e457b5a2e4d86bd1")
            .header("x-b3-sampled", "1")
            .header("x-b3-flags", "1")
            .header("x-envoy-force-trace", "1")
            .header("x-client-trace-id", "checkout-42")
            .header("x-request-id", "80f198ee-5634-aba8-a4fe-8b2a57d3eff7")
            .header("x-envoy-retriable-status-codes", "409")
            .header("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")
            .header(
                "traceparent",
                "00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01",
            )
            .body(())
            .unwrap()
            .into_parts();
        let head = shadow_head(&original, &destination(), true);
        assert_eq!(head.headers["host"], "catalog-shadow:80");
        assert_eq!(head.uri, "http://catalog-shadow:80/items?a=1");
        assert_eq!(head.extensions.get::<Destination>(), Some(&destination()));
        assert_eq!(
            head.headers["x-b3-traceid"],
            "80f198ee56343ba864fe8b2a57d3eff7"
        );
        assert_eq!(head.headers["x-b3-sampled"], "0");
        assert!(!head.headers.contains_key("x-b3-flags"));
        assert!(!head.headers.contains_key("x-envoy-force-trace"));
        assert!(!head.headers.contains_key("x-client-trace-id"));
        // Forced (`a`) no longer: the id is kept, with its reason cleared.
        assert_eq!(
            head.headers["x-request-id"],
            "80f198ee-5634-4ba8-a4fe-8b2a57d3eff7"
        );
        assert!(!head.headers.contains_key("x-envoy-retriable-status-codes"));
        assert_eq!(
            head.headers["b3"],
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0"
        );
        assert_eq!(
            head.headers["traceparent"],
            "00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-00"
        );
        // The original is untouched.
        assert_eq!(original.headers["host"], "catalog:80");

        let plain = shadow_head(&original, &destination(), false);
        assert_eq!(plain.headers["host"], "catalog:80");
    }
}
