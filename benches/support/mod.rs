//! Shared bench fixture: a synthetic mesh of `hosts` services with `rules` rules each.
//!
//! Rule `j` of service `i` matches `uri.prefix: /api/v{j}` and header `x-user: user-{j}`; the
//! last rule is a catch-all. Each service has subsets `v1`/`v2` and a ServiceEntry endpoint.

use std::fmt::Write;

/// Multi-document Istio YAML for the synthetic mesh.
pub fn synthetic_mesh(hosts: usize, rules: usize) -> String {
    let mut yaml = String::new();
    for i in 0..hosts {
        let _ = write!(
            yaml,
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: svc-{i}, namespace: bench}}\nspec:\n  hosts: [svc-{i}]\n  resolution: STATIC\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  endpoints:\n  - {{address: 127.0.0.1, labels: {{version: v1}}}}\n  - {{address: 127.0.0.2, labels: {{version: v2}}}}\n---\n\
             apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: svc-{i}, namespace: bench}}\nspec:\n  host: svc-{i}\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n  - {{name: v2, labels: {{version: v2}}}}\n---\n\
             apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: svc-{i}, namespace: bench}}\nspec:\n  hosts: [svc-{i}]\n  http:\n"
        );
        for j in 0..rules.saturating_sub(1) {
            let _ = write!(
                yaml,
                "  - match: [{{uri: {{prefix: /api/v{j}}}, headers: {{x-user: {{exact: user-{j}}}}}}}]\n    route: [{{destination: {{host: svc-{i}, subset: v2}}}}]\n"
            );
        }
        let _ = write!(
            yaml,
            "  - route:\n    - {{destination: {{host: svc-{i}, subset: v1}}, weight: 90}}\n    - {{destination: {{host: svc-{i}, subset: v2}}, weight: 10}}\n---\n"
        );
    }
    yaml
}
