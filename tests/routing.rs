//! End-to-end routing through the sidecar over real sockets: the catalog release story,
//! both addressing modes, outbound traffic policies, local replies, and gRPC-style HTTP/2.

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use mesh::demo::{CatalogServer, Http1Client};
use support::{Catalog, sidecar};

async fn client(catalog: &Catalog) -> Http1Client {
    Http1Client::connect(catalog.proxy()).await.unwrap()
}

#[tokio::test]
async fn all_v1_sends_every_request_to_v1() {
    let catalog = Catalog::start("catalog/10-all-v1.yaml").await;
    let mut client = client(&catalog).await;
    for _ in 0..200 {
        let response = client.get("http://catalog/items", &[]).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.headers["x-catalog-version"], "v1");
    }
    assert_eq!((catalog.v1.hits(), catalog.v2.hits()), (200, 0));
}

#[tokio::test]
async fn dark_launch_routes_by_header() {
    let catalog = Catalog::start("catalog/20-dark-launch.yaml").await;
    let mut client = client(&catalog).await;
    for _ in 0..50 {
        let internal = client
            .get("http://catalog/items", &[("x-istio-cohort", "internal")])
            .await
            .unwrap();
        assert_eq!(internal.headers["x-catalog-version"], "v2");
        assert!(internal.text().contains("imageUrl"));
        let other = client
            .get("http://catalog/items", &[("x-istio-cohort", "external")])
            .await
            .unwrap();
        assert_eq!(other.headers["x-catalog-version"], "v1");
    }
    assert_eq!((catalog.v1.hits(), catalog.v2.hits()), (50, 50));
}

#[tokio::test]
async fn canary_90_10_is_within_four_sigma() {
    const N: u64 = 2000;
    let catalog = Catalog::start("catalog/30-canary-90-10.yaml").await;
    let mut client = client(&catalog).await;
    for _ in 0..N {
        let response = client.get("http://catalog/items", &[]).await.unwrap();
        assert_eq!(response.status, 200);
    }
    let (v1, v2) = (catalog.v1.hits(), catalog.v2.hits());
    assert_eq!(v1 + v2, N);
    let expected = N as f64 * 0.1;
    let sigma = (N as f64 * 0.1 * 0.9).sqrt();
    assert!(
        (v2 as f64 - expected).abs() <= 4.0 * sigma,
        "v2 got {v2} of {N}; expected {expected} ± {:.1}",
        4.0 * sigma
    );
}

#[tokio::test]
async fn absolute_form_and_host_based_addressing() {
    let catalog = Catalog::start("catalog/10-all-v1.yaml").await;
    let mut client = client(&catalog).await;
    // As an HTTP proxy: absolute-form request target.
    let proxied = client.get("http://catalog/items", &[]).await.unwrap();
    assert_eq!(proxied.status, 200);
    let seen = catalog.v1.last_request().unwrap();
    assert_eq!(seen.uri.path(), "/items");
    assert_eq!(seen.headers["host"], "catalog");
    // By Host header, in every form Istio accepts for a namespaced service.
    for host in [
        "catalog",
        "catalog:80",
        "catalog.istioinaction",
        "catalog.istioinaction.svc.cluster.local",
    ] {
        let response = client.get("/items", &[("host", host)]).await.unwrap();
        assert_eq!(response.status, 200, "host {host}");
        assert_eq!(response.headers["x-catalog-version"], "v1", "host {host}");
    }
    assert_eq!(catalog.v1.hits(), 5);
    // Proxy headers were added on the way.
    let seen = catalog.v1.last_request().unwrap();
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-request-id"].len(), 36);
}

#[tokio::test]
async fn registry_only_rejects_unknown_hosts() {
    let outside = CatalogServer::start("v1", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mesh_config = std::fs::read_to_string(support::example("registry-only.yaml")).unwrap();
    let catalog = Catalog::with_routes(&format!(
        "{mesh_config}\n---\n{}",
        std::fs::read_to_string(support::example("catalog/10-all-v1.yaml")).unwrap()
    ))
    .await;
    let mut client = client(&catalog).await;
    let blocked = client
        .get(&format!("http://{}/items", outside.addr()), &[])
        .await
        .unwrap();
    assert_eq!(blocked.status, 502);
    assert_eq!(outside.hits(), 0);
    // Registered hosts still work.
    let allowed = client.get("http://catalog/items", &[]).await.unwrap();
    assert_eq!(allowed.status, 200);
}

#[tokio::test]
async fn allow_any_passes_unknown_hosts_through() {
    let outside = CatalogServer::start("v2", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let sidecar = sidecar("").await;
    let mut client = Http1Client::connect(sidecar.addr("outbound").unwrap())
        .await
        .unwrap();
    let absolute = client
        .get(&format!("http://{}/items?x=1", outside.addr()), &[])
        .await
        .unwrap();
    assert_eq!(absolute.status, 200);
    assert_eq!(absolute.headers["x-catalog-version"], "v2");
    let host_based = client
        .get("/items", &[("host", &outside.addr().to_string())])
        .await
        .unwrap();
    assert_eq!(host_based.status, 200);
    assert_eq!(outside.hits(), 2);
    assert_eq!(outside.last_request().unwrap().uri.path(), "/items");
}

#[tokio::test]
async fn no_matching_rule_is_404_route_not_found() {
    let routes = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog, namespace: istioinaction}
spec:
  hosts: [catalog]
  http:
  - match:
    - headers: {x-istio-cohort: {exact: internal}}
    route:
    - destination: {host: catalog, subset: version-v2}
"#;
    let catalog = Catalog::with_routes(routes).await;
    let mut client = client(&catalog).await;
    let response = client.get("http://catalog/items", &[]).await.unwrap();
    assert_eq!(response.status, 404);
    assert_eq!(response.text(), "route not found");
    assert_eq!(catalog.v1.hits() + catalog.v2.hits(), 0);
}

#[tokio::test]
async fn subset_without_endpoints_is_503_no_healthy_upstream() {
    let routes = support::NO_ENDPOINT_ROUTES;
    let catalog = Catalog::with_routes(routes).await;
    let mut client = client(&catalog).await;
    let response = client.get("http://catalog/items", &[]).await.unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(response.text(), "no healthy upstream");
}

#[tokio::test]
async fn refused_connection_is_503_upstream_connect_failure() {
    // A port that was free a moment ago: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: gone}}
spec:
  hosts: [gone.example.com]
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {closed}}}}}]
"#
    );
    let sidecar = sidecar(&yaml).await;
    let mut client = Http1Client::connect(sidecar.addr("outbound").unwrap())
        .await
        .unwrap();
    let response = client.get("http://gone.example.com/", &[]).await.unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(
        response.text(),
        "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
    );
}

#[tokio::test]
async fn route_actions_rewrite_headers_redirect_and_direct_response() {
    let routes = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog, namespace: istioinaction}
spec:
  hosts: [catalog]
  http:
  - name: legacy
    match: [{uri: {prefix: /old/}}]
    redirect: {uri: /items, redirectCode: 308}
  - name: health
    match: [{uri: {exact: /healthz}}]
    directResponse: {status: 200, body: {string: ok}}
  - name: api
    match: [{uri: {prefix: /api/}}]
    rewrite: {uri: /}
    headers:
      request: {set: {x-route: api}, remove: [x-secret]}
      response: {add: {x-served-by: mesh}}
    route:
    - destination: {host: catalog, subset: version-v2}
"#;
    let catalog = Catalog::with_routes(routes).await;
    let mut client = client(&catalog).await;

    let redirect = client
        .get("http://catalog/old/thing?q=1", &[])
        .await
        .unwrap();
    assert_eq!(redirect.status, 308);
    assert_eq!(redirect.headers["location"], "http://catalog/items?q=1");

    let direct = client.get("http://catalog/healthz", &[]).await.unwrap();
    assert_eq!(
        (direct.status.as_u16(), direct.text().as_str()),
        (200, "ok")
    );
    assert_eq!(catalog.v1.hits() + catalog.v2.hits(), 0);

    let api = client
        .get("http://catalog/api/items?page=2", &[("x-secret", "s3cr3t")])
        .await
        .unwrap();
    assert_eq!(api.status, 200);
    assert_eq!(api.headers["x-served-by"], "mesh");
    let seen = catalog.v2.last_request().unwrap();
    assert_eq!(seen.uri.path_and_query().unwrap(), "/items?page=2");
    assert_eq!(seen.headers["x-route"], "api");
    assert_eq!(seen.headers["x-envoy-original-path"], "/api/items");
    assert!(seen.headers.get("x-secret").is_none());
}

/// A gRPC-style exchange: HTTP/2 prior knowledge from the client, an upstream whose port
/// protocol is GRPC, and trailers (`grpc-status`) that must reach the client intact.
#[tokio::test]
async fn http2_trailers_pass_through() {
    use hyper::body::Incoming;

    let upstream_port = support::h2_upstream(hyper::service::service_fn(
        |request: Request<Incoming>| async move {
            let te = request.headers().get("te").cloned();
            let authority = request.uri().authority().map(|a| a.to_string());
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", "0".parse().unwrap());
            trailers.insert("grpc-message", "echoed".parse().unwrap());
            let body = Full::new(body).with_trailers(async move { Some(Ok(trailers)) });
            let response = http::Response::builder()
                .header("content-type", "application/grpc")
                .header(
                    "x-saw-te",
                    te.map(|v| v.to_str().unwrap().to_string())
                        .unwrap_or_default(),
                )
                .header("x-saw-authority", authority.unwrap_or_default())
                .body(body)
                .unwrap();
            Ok::<_, std::convert::Infallible>(response)
        },
    ))
    .await;
    let yaml = format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo, namespace: grpc}}
spec:
  hosts: [echo]
  resolution: STATIC
  ports: [{{number: 50051, name: grpc, protocol: GRPC}}]
  endpoints: [{{address: 127.0.0.1, ports: {{grpc: {upstream_port}}}}}]
"#
    );
    let sidecar = sidecar(&yaml).await;
    let mut sender = support::h2_client(sidecar.addr("outbound").unwrap()).await;
    let payload = Bytes::from_static(b"\x00\x00\x00\x00\x05hello");
    let request = Request::post("http://echo:50051/echo.Echo/Say")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(payload.clone()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-saw-te"], "trailers");
    assert_eq!(response.headers()["x-saw-authority"], "echo:50051");
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected
        .trailers()
        .cloned()
        .expect("trailers reach the client");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "echoed");
    assert_eq!(collected.to_bytes(), payload);
}

#[tokio::test]
async fn dns_resolution_and_round_robin_from_the_destination_rule() {
    let a = CatalogServer::start("v1", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let b = CatalogServer::start("v2", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    // `localhost` is resolved through DNS at connect time; two endpoints, round robin.
    let yaml = format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: pair}}
spec:
  hosts: [pair.example.com]
  resolution: DNS
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints:
  - {{address: localhost, ports: {{http: {}}}}}
  - {{address: localhost, ports: {{http: {}}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: pair}}
spec:
  host: pair.example.com
  trafficPolicy:
    loadBalancer: {{simple: ROUND_ROBIN}}
"#,
        a.addr().port(),
        b.addr().port()
    );
    let sidecar = sidecar(&yaml).await;
    let mut client = Http1Client::connect(sidecar.addr("outbound").unwrap())
        .await
        .unwrap();
    let mut order = Vec::new();
    for _ in 0..10 {
        let response = client
            .get("http://pair.example.com/items", &[])
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        order.push(
            response.headers["x-catalog-version"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!((a.hits(), b.hits()), (5, 5));
    assert!(
        order.windows(2).all(|w| w[0] != w[1]),
        "round robin alternates: {order:?}"
    );
}
