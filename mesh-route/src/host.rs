//! Host names as Istio resolves them.
//!
//! A VirtualService, DestinationRule or ServiceEntry may name a service by its short name
//! (`catalog`), `name.namespace`, `name.namespace.svc` or the FQDN
//! `name.namespace.svc.cluster.local`. Short forms resolve against the namespace of the
//! resource that uses them (`metadata.namespace`). This module turns every form into one
//! canonical name so resources can be joined, and lists the aliases a request's
//! `Host`/`:authority` may use to reach a canonical name.

/// The cluster domain Istio assumes for Kubernetes-style service names.
///
/// ```
/// use mesh_route::host::{CLUSTER_DOMAIN, canonical_host};
///
/// assert_eq!(canonical_host("catalog", Some("shop")), format!("catalog.shop.{CLUSTER_DOMAIN}"));
/// ```
pub const CLUSTER_DOMAIN: &str = "svc.cluster.local";

/// Returns the canonical (lower-case, fully qualified where possible) form of `host`.
///
/// A name without dots is expanded to `name.namespace.svc.cluster.local` when `namespace` (the
/// resource's own) is known; `name.namespace` only when that second label is the resource's
/// namespace (`catalog.other` from namespace `shop` may be an external name, and stays as it
/// is); `name.namespace.svc` always, namespace known or not. Any other name (an external DNS
/// name such as `api.example.com`, or a wildcard) is only lower-cased.
///
/// ```
/// use mesh_route::host::canonical_host;
/// assert_eq!(canonical_host("catalog", Some("shop")), "catalog.shop.svc.cluster.local");
/// assert_eq!(canonical_host("catalog.shop.svc", Some("other")), "catalog.shop.svc.cluster.local");
/// assert_eq!(canonical_host("api.example.com", Some("shop")), "api.example.com");
/// assert_eq!(canonical_host("catalog", None), "catalog");
/// assert_eq!(canonical_host("catalog.shop", Some("shop")), "catalog.shop.svc.cluster.local");
/// assert_eq!(canonical_host("catalog.other", Some("shop")), "catalog.other");
/// assert_eq!(canonical_host("catalog.shop.svc", None), "catalog.shop.svc.cluster.local");
/// ```
pub fn canonical_host(host: &str, namespace: Option<&str>) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.starts_with('*') {
        return host;
    }
    let labels: Vec<&str> = host.split('.').collect();
    match (labels.as_slice(), namespace) {
        ([name], Some(ns)) => format!("{name}.{}.{CLUSTER_DOMAIN}", ns.to_ascii_lowercase()),
        ([name, ns], Some(own)) if ns.eq_ignore_ascii_case(own) => {
            format!("{name}.{ns}.{CLUSTER_DOMAIN}")
        }
        ([name, ns, "svc"], _) => format!("{name}.{ns}.{CLUSTER_DOMAIN}"),
        _ => host,
    }
}

/// Every name a client may put in `Host`/`:authority` to reach the canonical `host`.
///
/// For `name.namespace.svc.cluster.local` these are the short name, `name.namespace`,
/// `name.namespace.svc` and the FQDN itself; any other host has only itself.
///
/// ```
/// use mesh_route::host::host_aliases;
/// assert_eq!(
///     host_aliases("catalog.shop.svc.cluster.local"),
///     ["catalog", "catalog.shop", "catalog.shop.svc", "catalog.shop.svc.cluster.local"],
/// );
/// assert_eq!(host_aliases("api.example.com"), ["api.example.com"]);
/// ```
pub fn host_aliases(host: &str) -> Vec<String> {
    let Some(prefix) = host.strip_suffix(&format!(".{CLUSTER_DOMAIN}")) else {
        return vec![host.to_string()];
    };
    match prefix.split_once('.') {
        Some((name, ns)) if !name.is_empty() && !ns.is_empty() && !ns.contains('.') => vec![
            name.to_string(),
            format!("{name}.{ns}"),
            format!("{name}.{ns}.svc"),
            host.to_string(),
        ],
        _ => vec![host.to_string()],
    }
}

/// Whether `name` (a concrete host) is covered by `pattern`, which may be a
/// wildcard such as `*.example.com` (or `*`, which covers every host).
///
/// ```
/// use mesh_route::host::host_matches;
/// assert!(host_matches("*.example.com", "api.example.com"));
/// assert!(!host_matches("*.example.com", "example.com"));
/// assert!(host_matches("catalog", "catalog"));
/// ```
pub fn host_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some("") => true,
        Some(suffix) => name.len() > suffix.len() && ends_with_ignore_case(name, suffix),
        None => pattern.eq_ignore_ascii_case(name),
    }
}

fn ends_with_ignore_case(name: &str, suffix: &str) -> bool {
    name.len() >= suffix.len()
        && name.as_bytes()[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// Splits an authority (`host`, `host:port`, `[v6]:port`) into its lower-case host and
/// optional port. Returns `None` for an empty host.
///
/// ```
/// use mesh_route::host::split_authority;
/// assert_eq!(split_authority("Catalog:8080"), Some(("catalog".to_string(), Some(8080))));
/// assert_eq!(split_authority("[::1]:80"), Some(("[::1]".to_string(), Some(80))));
/// assert_eq!(split_authority("catalog"), Some(("catalog".to_string(), None)));
/// ```
pub fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => {
            let port = authority[i + 1..].parse::<u16>().ok()?;
            (&authority[..i], Some(port))
        }
        _ => (authority, None),
    };
    if host.is_empty() {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_agree() {
        let forms = [
            "catalog",
            "catalog.shop",
            "catalog.shop.svc",
            "catalog.shop.svc.cluster.local",
        ];
        for form in forms {
            assert_eq!(
                canonical_host(form, Some("shop")),
                "catalog.shop.svc.cluster.local",
                "{form}"
            );
        }
        // A two-label name in another namespace is an external DNS name, not a service.
        assert_eq!(canonical_host("example.com", Some("shop")), "example.com");
    }

    #[test]
    fn wildcard_stays_wildcard() {
        assert_eq!(canonical_host("*.Example.com", Some("x")), "*.example.com");
        assert!(host_matches("*", "anything"));
    }

    #[test]
    fn bad_authority() {
        assert_eq!(split_authority(":80"), None);
        assert_eq!(split_authority("host:notaport"), None);
    }
}
