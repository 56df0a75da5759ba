//! Compiling an `HTTPRoute`'s resilience settings into the [`RoutePolicy`] the layers below
//! enforce: `timeout`, `retries` and `fault` (delay `fixedDelay` with its share; abort
//! `httpStatus` or `grpcStatus` with its share — without a percentage, Istio delays or aborts no
//! request). A route without `retries` gets the mesh's `defaultHttpRetryPolicy`, else Istio's
//! built-in default (2 retries on connect-failure, refused-stream, unavailable, cancelled,
//! retriable-status-codes), and so does the default route of a host without VirtualService
//! ([`default_route`]); `attempts: 0` (or unset) disables retries.

use crate::config::{FaultAbort as FaultAbortSpec, FaultDelay, HttpRetry, HttpRoute, Percent};
use http::StatusCode;
use mesh_core::{
    policy::{FaultAbort, FaultPolicy, Fraction, RoutePolicy, grpc_status_code},
    retry::{RetryOn, RetryPolicy},
};
use std::sync::Arc;

/// The policy of `route`, or `None` when it configures none (so nothing is attached).
/// `mesh_default` is the mesh's `defaultHttpRetryPolicy`, if any.
///
/// ```
/// use mesh_route::{config::{Duration, HttpRetry, HttpRoute}, policy::compile};
///
/// let route = HttpRoute { timeout: Some(Duration::parse("2s").unwrap()), ..Default::default() };
/// let policy = compile(&route, "http[0]", None).unwrap().unwrap();
/// assert_eq!(policy.timeout, Some(std::time::Duration::from_secs(2)));
/// assert!(policy.retry.is_some()); // Istio's default retries
/// // `attempts: 0` disables retries; with nothing else set, there is no policy.
/// let no_retries = HttpRoute { retries: Some(HttpRetry { attempts: Some(0), ..Default::default() }), ..Default::default() };
/// assert!(compile(&no_retries, "http[0]", None).unwrap().is_none());
/// ```
pub fn compile(
    route: &HttpRoute,
    field: &str,
    mesh_default: Option<&HttpRetry>,
) -> Result<Option<RoutePolicy>, String> {
    let timeout = route.timeout.map(|t| t.get()).filter(|t| !t.is_zero());
    let retry = match (&route.retries, mesh_default) {
        (Some(retries), _) => compile_retry(retries, &format!("{field}.retries"))?,
        (None, Some(default)) => compile_retry(default, "defaultHttpRetryPolicy")?,
        (None, None) => Some(Arc::new(RetryPolicy::istio_default())),
    };
    let fault = match &route.fault {
        Some(fault) => {
            let delay = fault.delay.as_ref().and_then(compile_delay);
            let abort = match &fault.abort {
                Some(abort) => compile_abort(abort, &format!("{field}.fault.abort"))?,
                None => None,
            };
            (delay.is_some() || abort.is_some()).then(|| Arc::new(FaultPolicy { delay, abort }))
        }
        None => None,
    };
    Ok(
        (timeout.is_some() || fault.is_some() || retry.is_some()).then_some(RoutePolicy {
            timeout,
            fault,
            retry,
            mirrors: None,
        }),
    )
}

/// The policy of the route generated for a registry host no VirtualService claims: the one a
/// VirtualService route configuring nothing gets, so the mesh's `defaultHttpRetryPolicy`, else
/// Istio's default retries (mesh-semantics §1.10).
///
/// ```
/// use mesh_route::{config::HttpRetry, policy::default_route};
/// use mesh_core::retry::RetryPolicy;
///
/// let policy = default_route(None).unwrap().unwrap();
/// assert_eq!(policy.retry.as_deref(), Some(&RetryPolicy::istio_default()));
/// assert_eq!((policy.timeout, policy.fault), (None, None));
/// // The mesh's default replaces Istio's; with `attempts: 0` there is nothing to attach.
/// let off = HttpRetry { attempts: Some(0), ..Default::default() };
/// assert!(default_route(Some(&off)).unwrap().is_none());
/// ```
pub fn default_route(mesh_default: Option<&HttpRetry>) -> Result<Option<RoutePolicy>, String> {
    compile(&HttpRoute::default(), "default", mesh_default)
}

/// An `HTTPRetry`: `attempts` retries on `retryOn` (Istio's default conditions when unset or
/// empty), each bounded by `perTryTimeout`, backing off from `backoff` (25 ms by default).
fn compile_retry(retries: &HttpRetry, field: &str) -> Result<Option<Arc<RetryPolicy>>, String> {
    let attempts = retries.attempts.unwrap_or(0);
    if attempts <= 0 {
        return Ok(None);
    }
    let mut policy = RetryPolicy::istio_default();
    policy.attempts = attempts as u32;
    if let Some(retry_on) = retries.retry_conditions() {
        policy.retry_on = RetryOn::parse(retry_on).map_err(|e| format!("{field}.retryOn: {e}"))?;
    }
    policy.per_try_timeout = retries
        .per_try_timeout
        .map(|t| t.get())
        .filter(|t| !t.is_zero());
    if let Some(backoff) = retries.backoff {
        policy.backoff_base = backoff.get().max(std::time::Duration::from_millis(1));
    }
    Ok(Some(Arc::new(policy)))
}

/// The share of a fault: `percentage.value`, else the deprecated integer `percent`, else none.
fn share(percentage: Option<&Percent>, percent: Option<i32>) -> Fraction {
    match (percentage, percent) {
        (Some(p), _) => Fraction::from_percent(p.value),
        (None, Some(p)) => Fraction::from_percent(f64::from(p)),
        (None, None) => Fraction::default(),
    }
}

/// A `mirrorPercentage` (or the deprecated integer `mirrorPercent`): all requests when unset.
pub(crate) fn mirror_share(percentage: Option<&Percent>, percent: Option<u32>) -> Fraction {
    match (percentage, percent) {
        (None, None) => Fraction::ALL,
        (percentage, percent) => share(percentage, percent.map(|p| p.min(100) as i32)),
    }
}

fn compile_delay(delay: &FaultDelay) -> Option<(std::time::Duration, Fraction)> {
    let fixed = delay.fixed_delay?.get();
    Some((fixed, share(delay.percentage.as_ref(), delay.percent)))
}

fn compile_abort(
    abort: &FaultAbortSpec,
    field: &str,
) -> Result<Option<(FaultAbort, Fraction)>, String> {
    let share = share(abort.percentage.as_ref(), None);
    let kind = match (&abort.http_status, &abort.grpc_status) {
        (Some(status), _) => {
            let status = u16::try_from(*status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .ok_or_else(|| format!("{field}.httpStatus: {status} is not an HTTP status"))?;
            FaultAbort::Http(status)
        }
        (None, Some(name)) => FaultAbort::Grpc(
            grpc_status_code(name)
                .ok_or_else(|| format!("{field}.grpcStatus: unknown gRPC status {name:?}"))?,
        ),
        (None, None) => return Ok(None),
    };
    Ok(Some((kind, share)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn first_route(yaml_http: &str, mesh: &str) -> Option<RoutePolicy> {
        let yaml = format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: s}}\nspec: {{hosts: [s], resolution: STATIC, ports: [{{number: 80, name: http}}], endpoints: [{{address: 127.0.0.1}}]}}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: s}}\nspec:\n  hosts: [s]\n  http:\n{yaml_http}\n{mesh}"
        );
        let config = match Config::from_yaml_str(&yaml) {
            Ok(loaded) => loaded.config,
            Err(problems) => panic!("{problems:#?}"),
        };
        let route = &config.virtual_services[0].spec.http[0];
        compile(
            route,
            "http[0]",
            config.mesh.default_http_retry_policy.as_ref(),
        )
        .unwrap()
    }

    #[test]
    fn routes_without_retries_get_istio_default() {
        let policy = first_route("  - route: [{destination: {host: s}}]", "").unwrap();
        assert_eq!(policy.retry.as_deref(), Some(&RetryPolicy::istio_default()));
        assert_eq!(policy.timeout, None);
    }

    #[test]
    fn zero_attempts_disable_and_fields_carry_over() {
        let none = first_route(
            "  - route: [{destination: {host: s}}]\n    retries: {attempts: 0}",
            "",
        );
        assert!(none.is_none_or(|p| p.retry.is_none()));
        let policy = first_route(
            "  - route: [{destination: {host: s}}]\n    retries: {attempts: 4, perTryTimeout: 2s, retryOn: \"reset,503\", backoff: 10ms}",
            "",
        )
        .unwrap();
        let retry = policy.retry.unwrap();
        assert_eq!(retry.attempts, 4);
        assert_eq!(
            retry.per_try_timeout,
            Some(std::time::Duration::from_secs(2))
        );
        assert_eq!(retry.backoff_base, std::time::Duration::from_millis(10));
        assert_eq!(retry.retry_on, RetryOn::parse("reset,503").unwrap());
    }

    #[test]
    fn empty_retry_on_means_the_default_conditions() {
        let policy = first_route(
            "  - route: [{destination: {host: s}}]\n    retries: {attempts: 3, retryOn: \"\"}",
            "",
        )
        .unwrap();
        let retry = policy.retry.unwrap();
        assert_eq!(retry.attempts, 3);
        assert_eq!(retry.retry_on, RetryPolicy::istio_default().retry_on);
    }

    #[test]
    fn mesh_default_retry_policy_replaces_istio_default() {
        let mesh = "---\napiVersion: mesh/v1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  defaultHttpRetryPolicy: {attempts: 1, retryOn: gateway-error}\n";
        let policy = first_route("  - route: [{destination: {host: s}}]", mesh).unwrap();
        let retry = policy.retry.unwrap();
        assert_eq!(retry.attempts, 1);
        assert_eq!(retry.retry_on, RetryOn::parse("gateway-error").unwrap());
    }
}
