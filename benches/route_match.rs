//! Route lookup on a 100-host × 10-rule table (target: ≤ 200 ns per lookup).
//!
//! `first_rule`: the request matches rule 0; `last_rule`: it falls through nine header+prefix
//! rules to the catch-all; `unknown_host`: the host is not in the table.

use criterion::{Criterion, criterion_group, criterion_main};
use mesh::route::{RouteTable, config::Config, table::Decision};
use std::hint::black_box;

mod support;

fn route_match(c: &mut Criterion) {
    let config = Config::from_yaml_str(&support::synthetic_mesh(100, 10))
        .expect("synthetic mesh is valid")
        .config;
    let table = RouteTable::compile(&config).expect("compiles");
    let request = |uri: &str, user: &str| {
        http::Request::get(uri)
            .header("x-user", user)
            .header("user-agent", "bench")
            .body(())
            .expect("request")
    };
    let first = request("http://svc-57/api/v0/items", "user-0");
    let last = request("http://svc-57/other", "nobody");
    let unknown = request("http://elsewhere.example.com/", "nobody");
    assert!(matches!(table.route(&first), Decision::Matched { .. }));
    assert!(matches!(table.route(&unknown), Decision::UnknownHost));

    let mut group = c.benchmark_group("route_match_100x10");
    group.bench_function("first_rule", |b| {
        b.iter(|| black_box(table.route(black_box(&first))).is_matched())
    });
    group.bench_function("last_rule", |b| {
        b.iter(|| black_box(table.route(black_box(&last))).is_matched())
    });
    group.bench_function("unknown_host", |b| {
        b.iter(|| black_box(table.route(black_box(&unknown))).is_matched())
    });
    group.finish();
}

trait IsMatched {
    fn is_matched(&self) -> bool;
}

impl IsMatched for Decision<'_> {
    fn is_matched(&self) -> bool {
        matches!(self, Decision::Matched { .. })
    }
}

criterion_group!(benches, route_match);
criterion_main!(benches);
