//! A test Zipkin collector (`POST /api/v2/spans` → 202, keeping every span) and a checker of
//! spans against Zipkin's published v2 API schema (`tests/data/zipkin2-api.yaml`, the
//! OpenZipkin spec as published, Apache-2.0): the JSON-Schema subset that spec uses — `type`,
//! `required`, `properties`, `additionalProperties`, `items`, `$ref`, `enum`, `pattern`,
//! `minLength`/`maxLength`, `minimum`, `format: ipv4/ipv6`.

#![allow(dead_code)]

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

/// A collector listening on loopback.
pub struct Collector {
    pub addr: SocketAddr,
    spans: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = spans.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let kept = kept.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: http::Request<hyper::body::Incoming>| {
                            let kept = kept.clone();
                            async move {
                                let path_ok = request.uri().path() == "/api/v2/spans"
                                    && request.method() == http::Method::POST;
                                let body: Bytes = request.into_body().collect().await?.to_bytes();
                                let parsed: Option<Vec<Value>> = serde_json::from_slice(&body).ok();
                                let status = match parsed {
                                    Some(list) if path_ok => {
                                        kept.lock().unwrap().extend(list);
                                        StatusCode::ACCEPTED
                                    }
                                    _ => StatusCode::BAD_REQUEST,
                                };
                                let mut response = Response::new(Full::new(Bytes::new()));
                                *response.status_mut() = status;
                                Ok::<_, hyper::Error>(response)
                            }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Collector { addr, spans, task }
    }

    /// The spans received so far.
    pub fn spans(&self) -> Vec<Value> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits (at most 10 s) until at least `n` spans have arrived; returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<Value> {
        for _ in 0..500 {
            if self.spans.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.spans()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Zipkin's v2 API definitions, from the published spec.
pub fn zipkin_definitions() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/zipkin2-api.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let spec: Value = serde_saphyr::from_str(&text).unwrap();
    spec["definitions"].clone()
}

/// The ways `value` breaks definition `name` (empty when it conforms).
pub fn violations(definitions: &Value, name: &str, value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    check(
        definitions,
        &definitions[name],
        value,
        name.to_owned(),
        &mut found,
    );
    found
}

fn check(definitions: &Value, schema: &Value, value: &Value, at: String, found: &mut Vec<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/definitions/");
        return check(definitions, &definitions[name], value, at, found);
    }
    let mut fail = |message: String| found.push(format!("{at}: {message}"));
    match schema.get("type").and_then(Value::as_str) {
        Some("object") if !value.is_object() => return fail(format!("not an object: {value}")),
        Some("array") if !value.is_array() => return fail(format!("not an array: {value}")),
        Some("string") if !value.is_string() => return fail(format!("not a string: {value}")),
        Some("integer") if !(value.is_i64() || value.is_u64()) => {
            return fail(format!("not an integer: {value}"));
        }
        Some("boolean") if !value.is_boolean() => return fail(format!("not a boolean: {value}")),
        _ => {}
    }
    if let Some(text) = value.as_str() {
        let length = text.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && length < min
        {
            fail(format!("{text:?} shorter than {min}"));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && length > max
        {
            fail(format!("{text:?} longer than {max}"));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            let anchored = regex::Regex::new(&format!("^(?:{pattern})$")).unwrap();
            if !anchored.is_match(text) {
                fail(format!("{text:?} does not match {pattern}"));
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.iter().any(|a| a.as_str() == Some(text))
        {
            fail(format!("{text:?} not one of {allowed:?}"));
        }
        match schema.get("format").and_then(Value::as_str) {
            Some("ipv4") if text.parse::<std::net::Ipv4Addr>().is_err() => {
                fail(format!("{text:?} is not an IPv4 address"));
            }
            Some("ipv6") if text.parse::<std::net::Ipv6Addr>().is_err() => {
                fail(format!("{text:?} is not an IPv6 address"));
            }
            _ => {}
        }
    }
    if let (Some(min), Some(number)) = (
        schema.get("minimum").and_then(Value::as_i64),
        value.as_i64(),
    ) && number < min
    {
        fail(format!("{number} below the minimum {min}"));
    }
    if let Some(object) = value.as_object() {
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(required) {
                found.push(format!("{at}: missing required {required}"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (key, field) in object {
            let at = format!("{at}.{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(property) => check(definitions, property, field, at, found),
                None => match schema.get("additionalProperties") {
                    Some(additional) if additional.is_object() => {
                        check(definitions, additional, field, at, found)
                    }
                    _ if properties.is_some() => found.push(format!("{at}: not in the schema")),
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            check(definitions, items, item, format!("{at}[{i}]"), found);
        }
    }
}

#[test]
fn the_checker_rejects_what_the_schema_rejects() {
    let definitions = zipkin_definitions();
    let good = serde_json::json!({
        "traceId": "5af7183fb1d4cf5f5af7183fb1d4cf5f", "id": "352bff9a74ca9ad2",
        "kind": "CLIENT", "timestamp": 1, "duration": 1,
        "localEndpoint": {"serviceName": "a", "ipv4": "10.0.0.1", "port": 80},
        "tags": {"a": "b"}
    });
    assert_eq!(
        violations(&definitions, "Span", &good),
        Vec::<String>::new()
    );
    for (field, bad) in [
        ("traceId", serde_json::json!("XYZ")),
        ("id", serde_json::json!("352bff9a74ca9ad")),
        ("kind", serde_json::json!("CLIENTS")),
        ("duration", serde_json::json!(0)),
        ("tags", serde_json::json!({"a": 1})),
        ("localEndpoint", serde_json::json!({"ipv4": "not-an-ip"})),
        ("unknown", serde_json::json!(1)),
    ] {
        let mut span = good.clone();
        span[field] = bad;
        assert!(
            !violations(&definitions, "Span", &span).is_empty(),
            "{field} should be rejected"
        );
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("traceId");
    assert!(!violations(&definitions, "Span", &missing).is_empty());
}
