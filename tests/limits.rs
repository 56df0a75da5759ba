//! Limits against abusive clients on the sidecar's listeners: too many or too large request
//! headers get 431, a body announced over the limit 413, a slow-loris client is cut off at the
//! header-read timeout while a normal client is served meanwhile.

mod support;

use mesh::proxy::{limits::ListenerLimits, sidecar::SidecarSettings};
use std::time::{Duration, Instant};
use support::Catalog;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn limited(limits: ListenerLimits) -> Catalog {
    let settings = SidecarSettings {
        limits,
        ..support::quiet()
    };
    let routes = std::fs::read_to_string(support::example("catalog/10-all-v1.yaml")).unwrap();
    Catalog::with_routes_and_settings(&routes, settings).await
}

/// Sends `raw` on a new connection and returns the status line of the answer ("" when the
/// connection closed without one).
async fn raw_status(catalog: &Catalog, raw: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(catalog.proxy())
        .await
        .unwrap();
    stream.write_all(raw).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn oversized_header_blocks_get_431_and_oversized_bodies_413() {
    let catalog = limited(ListenerLimits {
        max_request_headers: 20,
        max_request_headers_bytes: 16 * 1024,
        max_request_body_bytes: Some(1024),
        ..ListenerLimits::default()
    })
    .await;
    let ok = raw_status(
        &catalog,
        b"GET /items HTTP/1.1\r\nhost: catalog\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(ok, "HTTP/1.1 200 OK");

    let many: String = (0..30).map(|i| format!("x-h{i}: v\r\n")).collect();
    let request =
        format!("GET /items HTTP/1.1\r\nhost: catalog\r\n{many}connection: close\r\n\r\n");
    let status = raw_status(&catalog, request.as_bytes()).await;
    assert!(
        status.starts_with("HTTP/1.1 431"),
        "too many headers: {status}"
    );

    let big = "a".repeat(32 * 1024);
    let request = format!(
        "GET /items HTTP/1.1\r\nhost: catalog\r\nx-big: {big}\r\nconnection: close\r\n\r\n"
    );
    let status = raw_status(&catalog, request.as_bytes()).await;
    assert!(
        status.starts_with("HTTP/1.1 431"),
        "headers too large: {status}"
    );

    let request = "POST /items HTTP/1.1\r\nhost: catalog\r\ncontent-length: 4096\r\nconnection: close\r\n\r\n";
    let status = raw_status(&catalog, request.as_bytes()).await;
    assert!(
        status.starts_with("HTTP/1.1 413"),
        "body too large: {status}"
    );
    assert_eq!(
        catalog.v1.hits(),
        1,
        "only the request within the limits went upstream"
    );
}

#[tokio::test]
async fn a_slow_loris_client_is_cut_off_while_others_are_served() {
    let catalog = limited(ListenerLimits {
        header_read_timeout: Some(Duration::from_millis(500)),
        ..ListenerLimits::default()
    })
    .await;
    let mut loris = tokio::net::TcpStream::connect(catalog.proxy())
        .await
        .unwrap();
    let started = Instant::now();
    loris
        .write_all(b"GET /items HTTP/1.1\r\nhost: catalog\r\n")
        .await
        .unwrap();
    // One header byte every 100 ms: never a whole request head.
    let trickle = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if loris.write_all(b"x").await.is_err() {
                return started.elapsed();
            }
            let mut byte = [0u8; 1];
            if let Ok(Ok(0)) =
                tokio::time::timeout(Duration::from_millis(1), loris.read(&mut byte)).await
            {
                return started.elapsed();
            }
        }
    };
    let normal = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut client = mesh::demo::Http1Client::connect(catalog.proxy())
            .await
            .unwrap();
        client
            .get("/items", &[("host", "catalog")])
            .await
            .unwrap()
            .status
    };
    let (cut_after, status) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(5), trickle),
        normal
    );
    let cut_after = cut_after.expect("the slow client is cut off");
    assert!(
        cut_after < Duration::from_secs(2),
        "cut after {cut_after:?}"
    );
    assert_eq!(status, 200, "a normal client is served meanwhile");
}
