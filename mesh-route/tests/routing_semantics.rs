//! Istio matching semantics of the route table, driven through the real `RouteLayer`: first
//! match wins, match blocks OR-ed, conditions inside one AND-ed, headers / withoutHeaders /
//! queryParams / method / authority / ignoreUriCase, host forms and wildcards, and weights.

use http::{Request, Response};
use mesh_core::{Body, body, destination};
use mesh_route::{RouteLayer, config::Config};
use std::convert::Infallible;
use tower::{Layer, ServiceExt, service_fn};

const REGISTRY: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: catalog, namespace: shop}
spec:
  hosts: [catalog]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, labels: {version: v1}}
  - {address: 127.0.0.2, labels: {version: v2}}
  - {address: 127.0.0.3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: shop}
spec:
  hosts: ["*.wild.example.com"]
  resolution: NONE
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: catalog, namespace: shop}
spec:
  host: catalog
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
"#;

fn layer(routes: &str) -> RouteLayer {
    let yaml = format!("{REGISTRY}\n---\n{routes}");
    let config = match Config::from_yaml_str(&yaml) {
        Ok(loaded) => loaded.config,
        Err(problems) => panic!("{problems:#?}"),
    };
    RouteLayer::from_config(&config).unwrap()
}

/// Where a request lands: the subset (`all` for no subset), `pass` for an unknown host, or
/// the status of a local reply.
async fn land(layer: &RouteLayer, request: Request<()>) -> String {
    let inner = service_fn(|request: Request<Body>| async move {
        let landed = match destination(request.extensions()) {
            Some(d) => d.subset.as_deref().unwrap_or("all").to_string(),
            None => "pass".to_string(),
        };
        let mut response = Response::new(body::empty());
        response
            .headers_mut()
            .insert("x-landed", landed.parse().unwrap());
        Ok::<_, Infallible>(response)
    });
    let response = layer
        .layer(inner)
        .oneshot(request.map(|()| body::empty()))
        .await
        .unwrap();
    match response.headers().get("x-landed") {
        Some(landed) => landed.to_str().unwrap().to_string(),
        None => response.status().as_str().to_string(),
    }
}

fn get(uri: &str) -> http::request::Builder {
    Request::get(uri)
}

#[tokio::test]
async fn first_match_wins_blocks_or_conditions_and() {
    let layer = layer(
        r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog, namespace: shop}
spec:
  hosts: [catalog]
  http:
  - match:
    - {uri: {prefix: /a}, headers: {x-user: {exact: alice}}}
    - {uri: {exact: /b}}
    route: [{destination: {host: catalog, subset: v3}}]
  - match: [{uri: {prefix: /a}}]
    route: [{destination: {host: catalog, subset: v2}}]
  - route: [{destination: {host: catalog, subset: v1}}]
"#,
    );
    let with_user = |uri| get(uri).header("x-user", "alice").body(()).unwrap();
    assert_eq!(
        land(&layer, with_user("http://catalog/a/1")).await,
        "v3",
        "both conditions hold"
    );
    assert_eq!(
        land(&layer, get("http://catalog/a/1").body(()).unwrap()).await,
        "v2",
        "header missing: AND fails"
    );
    assert_eq!(
        land(&layer, get("http://catalog/b").body(()).unwrap()).await,
        "v3",
        "second block OR-ed"
    );
    assert_eq!(
        land(&layer, get("http://catalog/b/c").body(()).unwrap()).await,
        "v1",
        "exact is exact"
    );
    assert_eq!(
        land(&layer, get("http://other.example/").body(()).unwrap()).await,
        "pass"
    );
}

#[tokio::test]
async fn header_query_method_authority_and_case() {
    let layer = layer(
        r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog, namespace: shop}
spec:
  hosts: [catalog]
  http:
  - match: [{headers: {x-beta: {}}}]
    route: [{destination: {host: catalog, subset: v3}}]
  - match: [{queryParams: {version: {regex: "\\d+"}}, method: {exact: GET}}]
    route: [{destination: {host: catalog, subset: v2}}]
  - match: [{uri: {prefix: /Items}, ignoreUriCase: true, withoutHeaders: {x-legacy: {exact: "1"}}}]
    route: [{destination: {host: catalog, subset: v2}}]
  - match: [{authority: {prefix: catalog.shop}}]
    route: [{destination: {host: catalog, subset: v3}}]
  - route: [{destination: {host: catalog, subset: v1}}]
"#,
    );
    let req = |method: &str, uri: &str, headers: &[(&str, &str)]| {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    };
    // Presence: an empty match means "header present", whatever its value.
    assert_eq!(
        land(&layer, req("GET", "http://catalog/", &[("x-beta", "")])).await,
        "v3"
    );
    // Query regex is anchored: 123 matches, a123 does not; method must be GET.
    assert_eq!(
        land(&layer, req("GET", "http://catalog/x?version=123", &[])).await,
        "v2"
    );
    assert_eq!(
        land(&layer, req("GET", "http://catalog/x?version=a123", &[])).await,
        "v1"
    );
    assert_eq!(
        land(&layer, req("POST", "http://catalog/x?version=123", &[])).await,
        "v1"
    );
    // ignoreUriCase; withoutHeaders is satisfied by a missing header, fails on a matching one.
    assert_eq!(
        land(&layer, req("GET", "http://catalog/ITEMS/1", &[])).await,
        "v2"
    );
    assert_eq!(
        land(
            &layer,
            req("GET", "http://catalog/items/1", &[("x-legacy", "1")])
        )
        .await,
        "v1"
    );
    assert_eq!(
        land(
            &layer,
            req("GET", "http://catalog/items/1", &[("x-legacy", "2")])
        )
        .await,
        "v2"
    );
    // Authority match sees the name the client used.
    assert_eq!(
        land(
            &layer,
            req("GET", "http://catalog.shop.svc.cluster.local/", &[])
        )
        .await,
        "v3"
    );
    assert_eq!(land(&layer, req("GET", "http://catalog/", &[])).await, "v1");
}

#[tokio::test]
async fn hosts_without_virtual_service_get_the_default_route() {
    let layer = layer("");
    assert_eq!(
        land(&layer, get("http://catalog.shop/").body(()).unwrap()).await,
        "all"
    );
    assert_eq!(
        land(
            &layer,
            get("http://api.wild.example.com/").body(()).unwrap()
        )
        .await,
        "all"
    );
    assert_eq!(
        land(&layer, get("http://wild.example.com/").body(()).unwrap()).await,
        "pass"
    );
    // Host header addressing, with a port and mixed case.
    let by_host = Request::get("/")
        .header("host", "Catalog:80")
        .body(())
        .unwrap();
    assert_eq!(land(&layer, by_host).await, "all");
}

#[tokio::test]
async fn weights_are_normalised_and_zero_weights_dropped() {
    let layer = layer(
        r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog, namespace: shop}
spec:
  hosts: [catalog]
  http:
  - route:
    - {destination: {host: catalog, subset: v1}, weight: 3}
    - {destination: {host: catalog, subset: v2}, weight: 1}
    - {destination: {host: catalog, subset: v3}, weight: 0}
"#,
    );
    const N: usize = 4000;
    let mut counts = std::collections::HashMap::new();
    for _ in 0..N {
        let landed = land(&layer, get("http://catalog/").body(()).unwrap()).await;
        *counts.entry(landed).or_insert(0usize) += 1;
    }
    assert_eq!(counts.get("v3"), None, "weight 0 never chosen");
    let v2 = counts["v2"] as f64;
    let (p, n) = (0.25, N as f64);
    assert!(
        (v2 - n * p).abs() <= 4.0 * (n * p * (1.0 - p)).sqrt(),
        "{counts:?}"
    );
}

#[tokio::test]
async fn no_rule_matching_is_a_local_404() {
    let layer = layer(
        r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog, namespace: shop}
spec:
  hosts: [catalog]
  http:
  - name: only-post
    match: [{method: {exact: POST}, name: writes}]
    route: [{destination: {host: catalog, subset: v1}}]
"#,
    );
    assert_eq!(
        land(&layer, get("http://catalog/").body(()).unwrap()).await,
        "404"
    );
}
