//! Compiling an `HTTPRoute`'s resilience settings into the [`RoutePolicy`] the layers below
//! enforce: `timeout` and `fault` (delay `fixedDelay` with its share; abort `httpStatus` or
//! `grpcStatus` with its share). Without a percentage, Istio delays or aborts no request.

use crate::config::{FaultAbort as FaultAbortSpec, FaultDelay, HttpRoute, Percent};
use http::StatusCode;
use mesh_core::policy::{FaultAbort, FaultPolicy, Fraction, RoutePolicy, grpc_status_code};
use std::sync::Arc;

/// The policy of `route`, or `None` when it configures none (so nothing is attached).
pub fn compile(route: &HttpRoute, field: &str) -> Result<Option<RoutePolicy>, String> {
    let timeout = route.timeout.map(|t| t.get()).filter(|t| !t.is_zero());
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
    Ok((timeout.is_some() || fault.is_some()).then_some(RoutePolicy { timeout, fault }))
}

/// The share of a fault: `percentage.value`, else the deprecated integer `percent`, else none.
fn share(percentage: Option<&Percent>, percent: Option<i32>) -> Fraction {
    match (percentage, percent) {
        (Some(p), _) => Fraction::from_percent(p.value),
        (None, Some(p)) => Fraction::from_percent(f64::from(p)),
        (None, None) => Fraction::default(),
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
