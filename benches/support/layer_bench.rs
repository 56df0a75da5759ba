//! Shared bench fixture: timing a tower layer over a no-op service with requests built as
//! hyper builds them ([`WireBuffer`]), every variant in one criterion group, so that a layer's
//! cost is its difference from `noop()` alone in the same run.

use super::wire_request::WireBuffer;
use mesh::core::{Body, body, policy::RoutePolicy};
use std::{
    convert::Infallible,
    future::{Ready, ready},
    hint::black_box,
    task::{Context, Poll},
    time::{Duration, Instant},
};
use tower::{Service, ServiceExt};

/// A boxed inner service, for benches whose inner service is a closure.
#[allow(dead_code)] // not every bench boxes its inner service
pub type Inner =
    tower::util::BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Infallible>;

/// The inner service every variant wraps: it answers 200 with an empty body at once, and is
/// free to clone, like the proxy's own (`Arc`-backed) services, so that a layer which clones
/// its inner service is not charged for a boxed clone the proxy never makes.
#[derive(Clone, Copy, Debug)]
pub struct Noop;

impl Service<http::Request<Body>> for Noop {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: http::Request<Body>) -> Self::Future {
        ready(Ok(http::Response::new(body::empty())))
    }
}

/// The no-op inner service.
#[allow(dead_code)] // a bench whose inner service answers otherwise does not use it
pub fn noop() -> Noop {
    Noop
}

/// Benches `service` as `name`: one request per iteration, built inside the loop (the same
/// cost for every variant) with the headers a client sends, so no layer is charged for the
/// header map's first allocation.
#[allow(dead_code)] // benches whose requests carry a route policy use `bench_routed`
pub fn bench<S>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    service: S,
) where
    S: Service<http::Request<Body>> + Clone,
{
    bench_routed(group, runtime, name, None, service)
}

/// [`bench`] with each request carrying `policy` as its route's policy, as requests leave the
/// route layer in the sidecar (so the request's extension map already exists, as it does there).
pub fn bench_routed<S>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    policy: Option<&RoutePolicy>,
    service: S,
) where
    S: Service<http::Request<Body>> + Clone,
{
    let wire = WireBuffer::new();
    group.bench_function(name, |b| {
        b.to_async(runtime).iter(|| {
            let service = service.clone();
            let request = routed_request(&wire, policy);
            async move { black_box(service.oneshot(request).await.is_ok()) }
        })
    });
}

/// A request from `wire`, carrying `policy` as its route's policy if there is one.
fn routed_request(wire: &WireBuffer, policy: Option<&RoutePolicy>) -> http::Request<Body> {
    let mut request = wire.request();
    if let Some(policy) = policy {
        request.extensions_mut().insert(policy.clone());
    }
    request
}

/// `LAYER_BENCH_ROUNDS`, when set to a number: [`Variants::run`] then runs its variants
/// interleaved, and a bench's other groups may stand aside.
#[allow(dead_code)] // not every bench has other groups
pub fn interleaved_rounds() -> Option<usize> {
    std::env::var("LAYER_BENCH_ROUNDS").ok()?.parse().ok()
}

/// A variant run on its own for `requests` requests: the mean time of one.
type Interleaved = Box<dyn Fn(&tokio::runtime::Runtime, &WireBuffer, u32) -> Duration>;

/// A variant benched by criterion in a group.
type CriterionBench = Box<
    dyn for<'a> FnOnce(
        &mut criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>,
        &tokio::runtime::Runtime,
    ),
>;

/// Variants of one group, each a service of its own type (called directly, not through a
/// box, so none pays for one) and the route policy its requests carry.
///
/// [`run`](Self::run) benches them with criterion; with `LAYER_BENCH_ROUNDS=N` in the
/// environment it instead runs them interleaved — every variant in turn, N rounds of a
/// fixed number of requests, each run paired with a run of the first variant right before or
/// after it — and prints each variant's median time over the rounds and the median of its
/// paired differences from the first variant. On a shared machine whose speed drifts during a
/// run, paired differences compare variants better than criterion's back-to-back runs.
#[allow(dead_code)] // not every bench uses it
#[derive(Default)]
pub struct Variants {
    list: Vec<(String, Interleaved, CriterionBench)>,
}

#[allow(dead_code)]
impl Variants {
    /// Adds `service` as `name`, its requests carrying `policy`; a failed call panics.
    pub fn add<S>(&mut self, name: &str, policy: Option<&RoutePolicy>, service: S)
    where
        S: Service<http::Request<Body>> + Clone + 'static,
        S::Error: std::fmt::Debug,
    {
        // Captures nothing, so cloning the service per request clones no more than before.
        let service =
            tower::ServiceExt::map_err(service, |error| panic!("bench service failed: {error:?}"));
        let policy = policy.cloned();
        let (each, each_policy) = (service.clone(), policy.clone());
        let interleaved: Interleaved = Box::new(move |runtime, wire, requests| {
            let started = Instant::now();
            runtime.block_on(async {
                for _ in 0..requests {
                    let request = routed_request(wire, each_policy.as_ref());
                    black_box(each.clone().oneshot(request).await.is_ok());
                }
            });
            started.elapsed() / requests
        });
        let bench_name = name.to_owned();
        let criterion: CriterionBench = Box::new(move |group, runtime| {
            bench_routed(group, runtime, &bench_name, policy.as_ref(), service)
        });
        self.list.push((name.to_owned(), interleaved, criterion));
    }

    /// Benches every variant; see the [type docs](Self).
    pub fn run(self, c: &mut criterion::Criterion, group: &str, runtime: &tokio::runtime::Runtime) {
        if let Some(rounds) = interleaved_rounds() {
            return self.interleaved(group, runtime, rounds);
        }
        let mut criterion_group = c.benchmark_group(group);
        for (_, _, bench) in self.list {
            bench(&mut criterion_group, runtime);
        }
        criterion_group.finish();
    }

    fn interleaved(self, group: &str, runtime: &tokio::runtime::Runtime, rounds: usize) {
        const REQUESTS: u32 = 5_000;
        let wire = WireBuffer::new();
        let Some(((_, base, _), _)) = self.list.split_first() else {
            return;
        };
        let run = |variant: &Interleaved| variant(runtime, &wire, REQUESTS).as_nanos() as i128;
        // Per variant: its time in each round, and its difference from the first variant run
        // right next to it (before it in even rounds, after it in odd ones), so that a slow
        // spell of the machine weighs on both sides of each difference alike.
        let mut times: Vec<Vec<i128>> = vec![Vec::new(); self.list.len()];
        let mut deltas: Vec<Vec<i128>> = vec![Vec::new(); self.list.len()];
        for round in 0..=rounds {
            for (i, (_, variant, _)) in self.list.iter().enumerate() {
                let (time, next_to) = if round % 2 == 0 {
                    let next_to = run(base);
                    (run(variant), next_to)
                } else {
                    let time = run(variant);
                    (time, run(base))
                };
                // Round 0 warms up.
                if round > 0 {
                    times[i].push(time);
                    deltas[i].push(time - next_to);
                }
            }
        }
        let median = |values: &mut Vec<i128>| {
            values.sort_unstable();
            values[values.len() / 2]
        };
        println!(
            "{group}: medians of {rounds} interleaved rounds of {REQUESTS} requests, and of \
             the differences from the first variant run next to each"
        );
        for (((name, _, _), times), deltas) in self.list.iter().zip(&mut times).zip(&mut deltas) {
            println!(
                "  {name:40} {:>8} ns  {:+6} ns",
                median(times),
                median(deltas)
            );
        }
    }
}
