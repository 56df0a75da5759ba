//! End-to-end access logging through the sidecar: `accessLogFile` and `accessLogEncoding` from
//! the mesh config, one line per request written off the request path, parsed back for both
//! encodings with the response flags, upstream cluster and route name Istio's format carries.

mod support;

use mesh::demo::Http1Client;
use mesh::proxy::sidecar::SidecarSettings;
use regex::Regex;
use std::time::Duration;
use support::{
    Catalog,
    log_file::{LogFile, logging_to},
};

/// Routes `/items` to v1 (named route), aborts `/broken` with 503 FI; anything else matches no
/// rule (404 NR).
const ROUTES: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog, namespace: istioinaction}
spec:
  hosts: [catalog]
  http:
  - name: items
    match: [{uri: {prefix: /items}}]
    route: [{destination: {host: catalog, subset: version-v1}}]
  - name: broken
    match: [{uri: {prefix: /broken}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    route: [{destination: {host: catalog, subset: version-v1}}]
"#;

/// Starts the catalog with access logs to `file` in `encoding`, and sends three requests: a
/// 200, a fault abort and a route miss.
async fn three_requests(file: &LogFile, encoding: &str) -> Catalog {
    let mesh = logging_to(file, encoding);
    let settings = SidecarSettings::default();
    let catalog = Catalog::with_routes_and_settings(&format!("{mesh}{ROUTES}"), settings).await;
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    let headers = [
        ("host", "catalog"),
        ("user-agent", "access-log-test"),
        ("x-request-id", "req-1"),
    ];
    assert_eq!(client.get("/items", &headers).await.unwrap().status, 200);
    assert_eq!(client.get("/broken", &headers).await.unwrap().status, 503);
    assert_eq!(client.get("/nowhere", &headers).await.unwrap().status, 404);
    catalog
}

#[tokio::test]
async fn text_lines_follow_istios_default_format() {
    let file = LogFile::new("text");
    let catalog = three_requests(&file, "TEXT").await;
    let lines = file.lines(3).await;
    assert_eq!(lines.len(), 3, "{lines:#?}");
    // Istio's EnvoyTextLogFormat, field by field.
    let format = Regex::new(concat!(
        r#"^\[(?P<start>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\] "(?P<method>\S+) (?P<path>\S+) (?P<protocol>\S+)" "#,
        r#"(?P<code>\d+) (?P<flags>\S+) (?P<details>\S+) (?P<termination>\S+) "(?P<failure>[^"]*)" "#,
        r#"(?P<received>\d+) (?P<sent>\d+) (?P<duration>\d+) (?P<service_time>\S+) "#,
        r#""(?P<xff>[^"]*)" "(?P<agent>[^"]*)" "(?P<id>[^"]*)" "(?P<authority>[^"]*)" "(?P<upstream>[^"]*)" "#,
        r#"(?P<cluster>\S+) (?P<upstream_local>\S+) (?P<local>\S+) (?P<remote>\S+) (?P<sni>\S+) (?P<route>\S+)$"#,
    ))
    .unwrap();
    let parsed: Vec<_> = lines
        .iter()
        .map(|line| {
            format
                .captures(line)
                .unwrap_or_else(|| panic!("not Istio's format: {line}"))
        })
        .collect();
    let ok = &parsed[0];
    assert_eq!(&ok["method"], "GET");
    assert_eq!(&ok["path"], "/items");
    assert_eq!(&ok["protocol"], "HTTP/1.1");
    assert_eq!(&ok["code"], "200");
    assert_eq!(&ok["flags"], "-");
    assert_eq!(&ok["details"], "via_upstream");
    assert_eq!(&ok["agent"], "access-log-test");
    assert_eq!(&ok["id"], "req-1");
    assert_eq!(&ok["authority"], "catalog");
    assert_eq!(&ok["upstream"], catalog.v1.addr().to_string());
    assert_eq!(
        &ok["cluster"],
        "outbound|80|version-v1|catalog.istioinaction.svc.cluster.local"
    );
    assert_eq!(&ok["route"], "items");
    assert_eq!(&ok["local"], catalog.proxy().to_string());
    assert!(
        ok["service_time"].parse::<u64>().is_ok(),
        "{}",
        &ok["service_time"]
    );
    assert!(ok["sent"].parse::<u64>().unwrap() > 0);

    let fault = &parsed[1];
    assert_eq!((&fault["code"], &fault["flags"]), ("503", "FI"));
    assert_eq!(&fault["details"], "fault_filter_abort");
    assert_eq!(&fault["upstream"], "-");
    assert_eq!(&fault["route"], "broken");

    let miss = &parsed[2];
    assert_eq!((&miss["code"], &miss["flags"]), ("404", "NR"));
    assert_eq!(&miss["details"], "route_not_found");
    assert_eq!(&miss["cluster"], "-");
    assert_eq!(catalog.v1.hits(), 1, "only the first request reached v1");
}

#[tokio::test]
async fn json_lines_carry_istios_keys() {
    let file = LogFile::new("json");
    let catalog = three_requests(&file, "JSON").await;
    let lines = file.lines(3).await;
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let ok = &parsed[0];
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["path"], "/items");
    assert_eq!(ok["response_code"], 200);
    assert_eq!(ok["response_flags"], "-");
    assert_eq!(ok["request_id"], "req-1");
    assert_eq!(ok["upstream_host"], catalog.v1.addr().to_string());
    assert_eq!(
        ok["upstream_cluster"],
        "outbound|80|version-v1|catalog.istioinaction.svc.cluster.local"
    );
    assert_eq!(ok["route_name"], "items");
    assert!(ok["duration"].is_u64() && ok["bytes_sent"].as_u64().unwrap() > 0);
    assert_eq!(parsed[1]["response_code"], 503);
    assert_eq!(parsed[1]["response_flags"], "FI");
    assert_eq!(parsed[2]["response_code"], 404);
    assert_eq!(parsed[2]["response_flags"], "NR");
    assert!(parsed[2]["upstream_cluster"].is_null());
}

#[tokio::test]
async fn a_request_refused_before_any_endpoint_is_logged_with_its_cluster() {
    let file = LogFile::new("refused");
    // Subset v9 selects no endpoint: every request to it is 503 UH, at its cluster.
    let yaml = format!(
        r#"{}
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: empty}}
spec:
  hosts: [empty.example.com]
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: 9}}, labels: {{version: v1}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: empty}}
spec:
  host: empty.example.com
  subsets: [{{name: v9, labels: {{version: v9}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: empty}}
spec:
  hosts: [empty.example.com]
  http: [{{route: [{{destination: {{host: empty.example.com, subset: v9}}}}]}}]
"#,
        logging_to(&file, "JSON")
    );
    let sidecar = support::sidecar_with(&yaml, SidecarSettings::default()).await;
    let mut client = Http1Client::connect(sidecar.addr("outbound").unwrap())
        .await
        .unwrap();
    let response = client.get("http://empty.example.com/", &[]).await.unwrap();
    assert_eq!(response.status, 503);
    let line = file.first_json_line().await;
    assert_eq!(line["response_flags"], "UH");
    assert_eq!(line["response_code_details"], "no_healthy_upstream");
    assert_eq!(line["upstream_cluster"], "outbound|80|v9|empty.example.com");
    assert!(line["upstream_host"].is_null(), "no endpoint was tried");
}

#[tokio::test]
async fn an_inbound_request_is_logged_in_its_inbound_cluster_at_the_app() {
    let file = LogFile::new("inbound");
    let app = mesh::demo::CatalogServer::start("v1", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let yaml = format!(
        "{}apiVersion: networking.istio.io/v1\nkind: Sidecar\n\
         metadata: {{name: default, namespace: shop}}\n\
         spec:\n  ingress:\n  - port: {{number: 3000, protocol: HTTP, name: http}}\n    \
         defaultEndpoint: 127.0.0.1:{}\n",
        logging_to(&file, "JSON"),
        app.addr().port()
    );
    let sidecar = support::sidecar_with(&yaml, SidecarSettings::default()).await;
    let mut client = Http1Client::connect(sidecar.addr("inbound").unwrap())
        .await
        .unwrap();
    let headers = [("host", "catalog.shop.svc.cluster.local:3000")];
    assert_eq!(client.get("/items", &headers).await.unwrap().status, 200);
    let line = file.first_json_line().await;
    // As Istio's sidecar logs an inbound request: the ingress port's cluster, the app's address.
    assert_eq!(line["upstream_cluster"], "inbound|3000||", "{line}");
    assert_eq!(line["upstream_host"], app.addr().to_string(), "{line}");
    assert_eq!(line["response_code"], 200, "{line}");
}

#[tokio::test]
async fn a_chunked_request_body_is_counted_in_bytes_received() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let file = LogFile::new("chunked");
    let mesh = logging_to(&file, "JSON");
    let catalog =
        Catalog::with_routes_and_settings(&format!("{mesh}{ROUTES}"), SidecarSettings::default())
            .await;
    // A body of unannounced size: 5 + 6 bytes in two chunks, then the last chunk.
    let mut stream = tokio::net::TcpStream::connect(catalog.proxy())
        .await
        .unwrap();
    stream
        .write_all(
            b"POST /items HTTP/1.1\r\nhost: catalog\r\nconnection: close\r\n\
              transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    assert!(response.starts_with(b"HTTP/1.1 200"), "{response:?}");
    assert_eq!(catalog.v1.last_request().unwrap().body, "hello world");
    let line = file.first_json_line().await;
    assert_eq!(line["method"], "POST");
    assert_eq!(line["bytes_received"], 11);
}

#[tokio::test]
async fn a_route_timeout_is_logged_with_the_upstream_it_waited_on() {
    let file = LogFile::new("timeout");
    let mesh = logging_to(&file, "JSON");
    let routes = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog, namespace: istioinaction}
spec:
  hosts: [catalog]
  http:
  - route: [{destination: {host: catalog, subset: version-v1}}]
    timeout: 200ms
"#;
    let catalog =
        Catalog::with_routes_and_settings(&format!("{mesh}{routes}"), SidecarSettings::default())
            .await;
    let mut client = Http1Client::connect(catalog.proxy()).await.unwrap();
    let response = client
        .get("/items?delay_ms=3000", &[("host", "catalog")])
        .await
        .unwrap();
    assert_eq!(response.status, 504);
    let line = file.first_json_line().await;
    assert_eq!(line["response_flags"], "UT");
    assert_eq!(line["response_code_details"], "upstream_response_timeout");
    let cluster = line["upstream_cluster"].as_str().unwrap_or_default();
    assert!(
        cluster.starts_with("outbound|") && cluster.contains("|version-v1|catalog"),
        "{line}"
    );
    assert_eq!(
        line["upstream_host"],
        catalog.v1.addr().to_string().as_str()
    );
}

#[tokio::test]
async fn a_pass_through_timeout_is_logged_with_the_passthrough_cluster() {
    let file = LogFile::new("passthrough-timeout");
    let sidecar =
        support::sidecar_with(&logging_to(&file, "JSON"), SidecarSettings::default()).await;
    let upstream = mesh::demo::CatalogServer::start("v1", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut client = Http1Client::connect(sidecar.addr("outbound").unwrap())
        .await
        .unwrap();
    // No route: ALLOW_ANY passes it through; the caller asks for a 200 ms timeout.
    let url = format!("http://{}/items?delay_ms=3000", upstream.addr());
    let response = client
        .get(&url, &[("x-envoy-upstream-rq-timeout-ms", "200")])
        .await
        .unwrap();
    assert_eq!(response.status, 504);
    let line = file.first_json_line().await;
    assert_eq!(line["response_flags"], "UT");
    assert_eq!(line["upstream_cluster"], "PassthroughCluster", "{line}");
    assert_eq!(line["upstream_host"], upstream.addr().to_string().as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_in_the_connection_pool_queue_is_logged_with_its_cluster() {
    let file = LogFile::new("queued-timeout");
    let upstream = mesh::demo::CatalogServer::start("v1", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let yaml = format!(
        "{}apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: pool}}\n\
         spec:\n  hosts: [pool.example.com]\n  resolution: STATIC\n  \
         ports: [{{number: 80, name: http, protocol: HTTP}}]\n  \
         endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]\n---\n\
         apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: pool}}\n\
         spec:\n  host: pool.example.com\n  trafficPolicy:\n    \
         connectionPool: {{tcp: {{maxConnections: 1}}, http: {{http1MaxPendingRequests: 5}}}}\n",
        logging_to(&file, "JSON"),
        upstream.addr().port()
    );
    let sidecar = support::sidecar_with(&yaml, SidecarSettings::default()).await;
    let proxy = sidecar.addr("outbound").unwrap();
    // The one connection is held for 1.5 s; a second request queues for it, for 300 ms.
    let holder = tokio::spawn(async move {
        let mut client = Http1Client::connect(proxy).await.unwrap();
        client
            .get("http://pool.example.com/items?delay_ms=1500", &[])
            .await
            .unwrap()
            .status
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut client = Http1Client::connect(proxy).await.unwrap();
    let queued = client
        .get(
            "http://pool.example.com/items",
            &[("x-envoy-upstream-rq-timeout-ms", "300")],
        )
        .await
        .unwrap();
    assert_eq!(queued.status, 504);
    let line = file.first_json_line().await;
    assert_eq!(line["response_flags"], "UT");
    assert_eq!(
        line["upstream_cluster"], "outbound|80||pool.example.com",
        "{line}"
    );
    assert!(line["upstream_host"].is_null(), "no endpoint yet: {line}");
    assert_eq!(holder.await.unwrap(), 200);
}
