use super::*;
use mesh_core::policy::RoutePolicy;
use mesh_core::{
    Destination,
    policy::{Fraction, MirrorTarget},
};
use std::{
    convert::Infallible,
    sync::Mutex,
    time::{Duration, Instant as StdInstant},
};
use tower::ServiceExt;

/// One shadow request as the shadow service saw it: headers, body, destination.
type SeenShadow = (http::HeaderMap, Bytes, Option<Destination>);

/// What the shadow service saw.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<SeenShadow>>>);

impl Seen {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// A shadow service that records each request (body included), then answers after `delay`
/// with `status` (or fails when `status` is 0).
fn shadow(seen: &Seen, delay: Duration, status: u16) -> ShadowService {
    let seen = seen.clone();
    ShadowService::new(tower::service_fn(move |request: Request<Body>| {
        let seen = seen.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await?.to_bytes();
            seen.0.lock().unwrap().push((
                parts.headers,
                body,
                parts.extensions.get::<Destination>().cloned(),
            ));
            tokio::time::sleep(delay).await;
            if status == 0 {
                return Err::<Response<Body>, BoxError>("shadow upstream down".into());
            }
            let mut response = Response::new(body::full("shadow"));
            *response.status_mut() = http::StatusCode::from_u16(status)?;
            Ok(response)
        }
    }))
}

/// The primary: reads the body, answers 200 with it.
fn primary()
-> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send> + Clone
{
    tower::service_fn(|request: Request<Body>| async move {
        let body = request.into_body().collect().await.unwrap().to_bytes();
        Ok::<_, Infallible>(Response::new(body::full(body)))
    })
}

fn v2() -> Destination {
    Destination {
        cluster: 1,
        host: Arc::from("catalog"),
        subset: Some(Arc::from("v2")),
        port: None,
    }
}

fn mirrored(body: Body, percent: f64) -> Request<Body> {
    let mut request = Request::post("http://catalog:80/items")
        .header("host", "catalog:80")
        .body(body)
        .unwrap();
    request.extensions_mut().insert(RoutePolicy {
        mirrors: Some(Arc::from([MirrorTarget {
            destination: v2(),
            fraction: Fraction::from_percent(percent),
        }])),
        ..Default::default()
    });
    request
}

/// Lets spawned shadow tasks run.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn primary_never_waits_for_or_sees_the_shadow() {
    for status in [200, 503, 0] {
        let seen = Seen::default();
        let layer = MirrorLayer::new(shadow(&seen, Duration::from_secs(2), status));
        let svc = layer.layer(primary());
        let start = tokio::time::Instant::now();
        let response = svc
            .oneshot(mirrored(body::full("order-1"), 100.0))
            .await
            .unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO, "no wait for a 2 s shadow");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "order-1"
        );
        settle().await;
        let shadows = seen.0.lock().unwrap().clone();
        assert_eq!(shadows.len(), 1);
        let (headers, body, destination) = &shadows[0];
        assert_eq!(headers["host"], "catalog-shadow:80");
        assert_eq!(body, "order-1", "the body is copied whole");
        assert_eq!(destination.as_ref(), Some(&v2()));
        tokio::time::sleep(Duration::from_secs(3)).await;
        let stats = layer.stats();
        assert_eq!(stats.sent.load(Relaxed), 1);
        assert_eq!(stats.failed.load(Relaxed), u64::from(status == 0));
    }
}

#[tokio::test]
async fn a_quarter_is_mirrored_at_25_percent() {
    let seen = Seen::default();
    let layer = MirrorLayer::new(shadow(&seen, Duration::ZERO, 200));
    let svc = layer.layer(primary());
    for _ in 0..2000 {
        svc.clone()
            .oneshot(mirrored(body::empty(), 25.0))
            .await
            .unwrap();
    }
    settle().await;
    let sent = layer.stats().sent.load(Relaxed);
    // 500 expected; ±5 standard deviations (σ ≈ 19.4).
    assert!((403..=597).contains(&sent), "{sent}");
    assert_eq!(seen.len() as u64, sent);
}

#[tokio::test(start_paused = true)]
async fn shadows_beyond_the_bound_are_dropped_not_queued() {
    let seen = Seen::default();
    let layer = MirrorLayer::new(shadow(&seen, Duration::from_secs(60), 200)).max_in_flight(2);
    let svc = layer.layer(primary());
    for _ in 0..5 {
        svc.clone()
            .oneshot(mirrored(body::empty(), 100.0))
            .await
            .unwrap();
    }
    settle().await;
    let stats = layer.stats();
    assert_eq!(stats.sent.load(Relaxed), 2);
    assert_eq!(stats.dropped_overflow.load(Relaxed), 3);
    assert_eq!(seen.len(), 2);
    // Once those finish, mirroring resumes.
    tokio::time::sleep(Duration::from_secs(61)).await;
    svc.oneshot(mirrored(body::empty(), 100.0)).await.unwrap();
    settle().await;
    assert_eq!(stats.sent.load(Relaxed), 3);
}

#[tokio::test]
async fn bodies_past_the_limit_are_not_mirrored_but_reach_the_primary() {
    let seen = Seen::default();
    let layer = MirrorLayer::new(shadow(&seen, Duration::ZERO, 200)).buffer_limit(4);
    let svc = layer.layer(primary());
    // Known to be too large (its size hint), and found too large while streaming.
    let streamed = tee::chunked(&["abc", "def"]);
    for body in [body::full("too long"), streamed] {
        let response = svc.clone().oneshot(mirrored(body, 100.0)).await.unwrap();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert!(bytes.len() > 4);
    }
    settle().await;
    assert_eq!(seen.len(), 0);
    assert_eq!(layer.stats().skipped_body_too_large.load(Relaxed), 2);
}

#[tokio::test]
async fn suffix_can_be_switched_off_and_requests_without_mirrors_pass() {
    let seen = Seen::default();
    let layer = MirrorLayer::new(shadow(&seen, Duration::ZERO, 200)).host_suffix(false);
    let svc = layer.layer(primary());
    svc.clone()
        .oneshot(mirrored(body::empty(), 100.0))
        .await
        .unwrap();
    let plain = Request::get("http://catalog/").body(body::empty()).unwrap();
    svc.oneshot(plain).await.unwrap();
    settle().await;
    let shadows = seen.0.lock().unwrap().clone();
    assert_eq!(shadows.len(), 1);
    assert_eq!(shadows[0].0["host"], "catalog:80");
}

#[tokio::test]
async fn mirroring_costs_the_primary_no_wall_time() {
    // With a real clock: a slow shadow must not hold the primary response.
    let seen = Seen::default();
    let layer = MirrorLayer::new(shadow(&seen, Duration::from_millis(500), 200));
    let svc = layer.layer(primary());
    let start = StdInstant::now();
    svc.oneshot(mirrored(body::full("x"), 100.0)).await.unwrap();
    assert!(start.elapsed() < Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn a_hung_shadow_is_given_up_at_its_deadline_and_frees_its_slot() {
    let seen = Seen::default();
    let layer = MirrorLayer::new(shadow(&seen, Duration::from_secs(3600), 200))
        .max_in_flight(1)
        .shadow_deadline(Duration::from_secs(1));
    let svc = layer.layer(primary());
    svc.clone()
        .oneshot(mirrored(body::empty(), 100.0))
        .await
        .unwrap();
    settle().await;
    tokio::time::sleep(Duration::from_millis(1001)).await;
    settle().await;
    svc.oneshot(mirrored(body::empty(), 100.0)).await.unwrap();
    settle().await;
    let stats = layer.stats();
    assert_eq!(stats.sent.load(Relaxed), 2, "the slot was freed");
    assert_eq!(stats.dropped_overflow.load(Relaxed), 0);
    assert_eq!(stats.failed.load(Relaxed), 1, "the hung shadow");
}
