//! [`Sampler`]: whether a request's trace is recorded, as Envoy decides it under Istio.
//!
//! In order:
//! 1. **Forced** (recorded whatever the percentage): `x-client-trace-id` or
//!    `x-envoy-force-trace` is present (any value), or the caller sampled or asked for debug —
//!    `x-b3-sampled: 1`/`true`, `x-b3-flags: 1`, `b3` with state `1` or `d`, or a `traceparent`
//!    with the sampled flag. A client's trace id is recorded in the request id as the client's
//!    reason (`b`), ahead of `x-envoy-force-trace`'s (`a`), as Envoy ranks them (Istio's
//!    `client_sampling` is 100 %).
//! 2. **Honoured**: the caller's explicit not-sampled decision (`x-b3-sampled: 0`, `b3` with
//!    state `0`, a `traceparent` without the sampled flag) is kept, so a trace is complete or
//!    absent — only `x-client-trace-id` and `x-envoy-force-trace` override it.
//! 3. **Random**: otherwise the configured percentage, Istio's `randomSamplingPercentage`
//!    (default 1 %, Istio's `PILOT_TRACE_SAMPLING`), unless the request's `x-request-id`
//!    already records a reason to trace ([`trace_reason`](crate::trace_reason)): the draw
//!    is taken from the request id, so every proxy on the path draws alike. An id that
//!    records a forced trace (`x-envoy-force-trace` or the client's, upstream) forces it here
//!    too.
//!
//! Envoy honours `x-envoy-force-trace` only from internal callers; this library cannot tell
//! them apart, so place the layer where callers are trusted or strip the header before it.
//! Which of B3 or W3C supplies the caller's decision follows [`extract`](crate::extract).

use crate::{
    X_REQUEST_ID,
    context::Extracted,
    trace_reason::{RequestIdTrace, TraceReason},
};
use http::{HeaderMap, HeaderName};
use mesh_core::policy::Fraction;

/// Forces tracing of a request (Envoy; any value).
///
/// ```
/// use mesh_trace::{Propagation, Sampler, X_ENVOY_FORCE_TRACE, propagate};
/// let mut headers = http::HeaderMap::new();
/// headers.insert(X_ENVOY_FORCE_TRACE, "".parse().unwrap());
/// let context = propagate(&mut headers, &Sampler::from_percent(0.0), Propagation::default());
/// assert_eq!(context.sampled, Some(true));
/// assert_eq!(headers["x-b3-sampled"], "1");
/// ```
pub const X_ENVOY_FORCE_TRACE: HeaderName = HeaderName::from_static("x-envoy-force-trace");

/// A trace id an external client chose (Envoy; any value): the request is traced, its request
/// id records the client's reason, and its spans carry the value as `guid:x-client-trace-id`.
///
/// ```
/// use mesh_trace::{Propagation, Sampler, X_CLIENT_TRACE_ID, propagate};
/// let mut headers = http::HeaderMap::new();
/// headers.insert(X_CLIENT_TRACE_ID, "checkout-42".parse().unwrap());
/// let context = propagate(&mut headers, &Sampler::from_percent(0.0), Propagation::default());
/// assert_eq!(context.sampled, Some(true));
/// assert_eq!(headers["x-b3-sampled"], "1");
/// ```
pub const X_CLIENT_TRACE_ID: HeaderName = HeaderName::from_static("x-client-trace-id");

/// Decides which requests are traced; see the [module docs](self).
///
/// ```
/// use mesh_trace::{Sampler, context::extract};
/// let mut headers = http::HeaderMap::new();
/// headers.insert("x-b3-sampled", "0".parse().unwrap());
/// let decision = Sampler::from_percent(100.0).decide(&extract(&headers), &headers);
/// assert!(!decision.sampled);
/// headers.insert("x-envoy-force-trace", "".parse().unwrap());
/// let decision = Sampler::from_percent(0.0).decide(&extract(&headers), &headers);
/// assert!(decision.sampled && decision.forced);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampler {
    random: Fraction,
}

impl Default for Sampler {
    /// Istio's default: 1 % of the requests that carry no decision.
    fn default() -> Self {
        Sampler::from_percent(1.0)
    }
}

impl Sampler {
    /// Samples this fraction of the requests that carry no decision.
    ///
    /// ```
    /// use mesh_core::policy::Fraction;
    /// use mesh_trace::{Sampler, context::extract};
    /// let headers = http::HeaderMap::new();
    /// let decision = Sampler::new(Fraction::ALL).decide(&extract(&headers), &headers);
    /// assert!(decision.sampled && !decision.forced);
    /// let decision = Sampler::new(Fraction::default()).decide(&extract(&headers), &headers);
    /// assert!(!decision.sampled);
    /// ```
    pub fn new(random: Fraction) -> Self {
        Sampler { random }
    }

    /// Samples `percent` (0–100, clamped; 0.0001 resolution) of the requests that carry no
    /// decision.
    ///
    /// ```
    /// use mesh_core::policy::Fraction;
    /// use mesh_trace::Sampler;
    /// assert_eq!(Sampler::from_percent(12.5).random_fraction().per_million(), 125_000);
    /// assert_eq!(Sampler::from_percent(250.0).random_fraction(), Fraction::ALL);
    /// assert_eq!(Sampler::from_percent(-1.0).random_fraction().per_million(), 0);
    /// ```
    pub fn from_percent(percent: f64) -> Self {
        Sampler::new(Fraction::from_percent(percent))
    }

    /// The random sampling fraction.
    ///
    /// ```
    /// use mesh_trace::Sampler;
    /// // Istio's default: 1 %.
    /// assert_eq!(Sampler::default().random_fraction().per_million(), 10_000);
    /// ```
    pub fn random_fraction(&self) -> Fraction {
        self.random
    }

    /// Decides for a request with these headers, from which `extracted` was read.
    ///
    /// ```
    /// use mesh_trace::{Decision, Sampler, context::extract};
    /// let mut headers = http::HeaderMap::new();
    /// let sampler = Sampler::from_percent(100.0);
    /// let decision = sampler.decide(&extract(&headers), &headers);
    /// assert_eq!(decision, Decision { sampled: true, forced: false, debug: false });
    /// headers.insert("b3", "d".parse().unwrap()); // the caller asks for debug
    /// let decision = Sampler::from_percent(0.0).decide(&extract(&headers), &headers);
    /// assert_eq!(decision, Decision { sampled: true, forced: true, debug: true });
    /// ```
    pub fn decide(&self, extracted: &Extracted, headers: &HeaderMap) -> Decision {
        let request_id = headers
            .get(X_REQUEST_ID)
            .map(|id| RequestIdTrace::of(id.as_bytes()));
        let forcing = Forcing {
            client: headers.contains_key(X_CLIENT_TRACE_ID),
            service: headers.contains_key(X_ENVOY_FORCE_TRACE),
        };
        self.decide_with(extracted, forcing, request_id).0
    }

    /// [`decide`](Self::decide) once the forcing headers and the request id have been read;
    /// also returns the trace reason the request id is to record, which Envoy works out from
    /// the id, `x-client-trace-id`, `x-envoy-force-trace` and random sampling alone (a
    /// caller's B3 or W3C decision then wins over it, as Envoy's Zipkin tracer lets it).
    pub(crate) fn decide_with(
        &self,
        extracted: &Extracted,
        forcing: Forcing,
        request_id: Option<RequestIdTrace>,
    ) -> (Decision, TraceReason) {
        let recorded = request_id.map_or(TraceReason::NotTraceable, |id| id.reason);
        let reason = match recorded {
            TraceReason::NotTraceable if forcing.client => TraceReason::ClientForced,
            TraceReason::NotTraceable if forcing.service => TraceReason::ServiceForced,
            TraceReason::NotTraceable if self.draw(request_id.and_then(|id| id.point)) => {
                TraceReason::Sampling
            }
            reason => reason,
        };
        let debug = extracted.debug();
        let incoming = extracted.sampled();
        let forced_before = matches!(
            recorded,
            TraceReason::ServiceForced | TraceReason::ClientForced
        );
        if forcing.client || forcing.service || debug || incoming == Some(true) || forced_before {
            let forced = Decision {
                sampled: true,
                forced: true,
                debug,
            };
            return (forced, reason);
        }
        let decision = Decision {
            sampled: incoming.unwrap_or(reason.traced()),
            forced: false,
            debug: false,
        };
        (decision, reason)
    }

    /// The random draw: from the request id's point when it has one, so that every proxy on
    /// the path draws alike, else from the random number generator.
    fn draw(&self, point: Option<u16>) -> bool {
        match point {
            Some(point) => u32::from(point) * 100 < self.random.per_million(),
            None => self.random.sample(),
        }
    }
}

/// The headers that force a trace: `x-client-trace-id` (`client`) and `x-envoy-force-trace`
/// (`service`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Forcing {
    pub client: bool,
    pub service: bool,
}

/// A sampling decision.
///
/// ```
/// use mesh_trace::Decision;
/// // The default: not sampled.
/// assert_eq!(Decision::default(), Decision { sampled: false, forced: false, debug: false });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// The trace is recorded.
    pub sampled: bool,
    /// Sampled whatever the percentage: forced by a header or the caller's decision.
    pub forced: bool,
    /// The caller asked for debug (B3); propagated as `x-b3-flags: 1` / `b3: …-d`.
    pub debug: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::extract;
    use http::HeaderValue;

    const TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const SPAN: &str = "e457b5a2e4d86bd1";

    fn decide(sampler: Sampler, pairs: &[(&'static str, &str)]) -> Decision {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).unwrap());
        }
        sampler.decide(&extract(&headers), &headers)
    }

    const FORCED: Decision = Decision {
        sampled: true,
        forced: true,
        debug: false,
    };
    const NOT_SAMPLED: Decision = Decision {
        sampled: false,
        forced: false,
        debug: false,
    };

    #[test]
    fn a_request_id_that_records_a_reason_decides_at_any_percentage() {
        let never = Sampler::from_percent(0.0);
        let id = |reason: char| format!("0000270f-5634-{reason}ba8-a4fe-8b2a57d3eff7");
        // Forced upstream (by `x-envoy-force-trace` or the client): forced here too.
        for reason in ['a', 'b'] {
            assert_eq!(
                decide(never, &[("x-request-id", &id(reason))]),
                FORCED,
                "{reason}"
            );
        }
        // Sampled upstream: sampled, not forced (a caller's not-sampled decision wins).
        let sampled = Decision {
            sampled: true,
            ..NOT_SAMPLED
        };
        assert_eq!(decide(never, &[("x-request-id", &id('9'))]), sampled);
        let sampled_id = id('9');
        let refused = [("x-request-id", sampled_id.as_str()), ("x-b3-sampled", "0")];
        assert_eq!(decide(never, &refused), NOT_SAMPLED);
        // Not traced upstream: the draw is the id's (point 9 999: in only at 100 %).
        assert_eq!(decide(never, &[("x-request-id", &id('4'))]), NOT_SAMPLED);
        let almost = Sampler::from_percent(99.99);
        assert_eq!(decide(almost, &[("x-request-id", &id('4'))]), NOT_SAMPLED);
        let always = Sampler::from_percent(100.0);
        assert_eq!(decide(always, &[("x-request-id", &id('4'))]), sampled);
    }

    #[test]
    fn default_is_one_percent() {
        assert_eq!(Sampler::default().random_fraction().per_million(), 10_000);
    }

    #[test]
    fn forced_by_headers_at_zero_percent() {
        let never = Sampler::from_percent(0.0);
        let traceparent = format!("00-{TRACE}-{SPAN}-01");
        let b3_single = format!("{TRACE}-{SPAN}-1");
        for pairs in [
            &[("x-envoy-force-trace", "")][..],
            &[("x-envoy-force-trace", "false")],
            &[("x-client-trace-id", "c-1")],
            &[("x-b3-sampled", "1")],
            &[("x-b3-sampled", "true")],
            &[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", "1"),
            ],
            &[("b3", "1")],
            &[("b3", &b3_single)],
            &[("traceparent", &traceparent)],
        ] {
            assert_eq!(decide(never, pairs), FORCED, "{pairs:?}");
        }
        let debug = Decision {
            debug: true,
            ..FORCED
        };
        assert_eq!(decide(never, &[("x-b3-flags", "1")]), debug);
        assert_eq!(decide(never, &[("b3", "d")]), debug);
        assert_eq!(
            decide(never, &[("b3", &format!("{TRACE}-{SPAN}-d"))]),
            debug
        );
    }

    #[test]
    fn explicit_not_sampled_is_honoured_unless_forced() {
        let always = Sampler::from_percent(100.0);
        let traceparent = format!("00-{TRACE}-{SPAN}-00");
        for pairs in [
            &[("x-b3-sampled", "0")][..],
            &[("x-b3-sampled", "false")],
            &[("b3", "0")],
            &[("b3", &format!("{TRACE}-{SPAN}-0"))],
            &[("traceparent", &traceparent)],
            // B3 wins over the traceparent's flag.
            &[
                ("b3", "0"),
                ("traceparent", &format!("00-{TRACE}-{SPAN}-01")),
            ],
        ] {
            assert_eq!(decide(always, pairs), NOT_SAMPLED, "{pairs:?}");
        }
        assert_eq!(
            decide(
                always,
                &[("x-b3-sampled", "0"), ("x-envoy-force-trace", "1")]
            ),
            FORCED
        );
        assert_eq!(
            decide(always, &[("x-b3-sampled", "0"), ("x-client-trace-id", "c")]),
            FORCED
        );
    }

    #[test]
    fn random_at_zero_and_hundred_percent() {
        let deferred: &[(&str, &str)] = &[("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN)];
        for pairs in [&[][..], deferred, &[("x-b3-sampled", "maybe")]] {
            for _ in 0..100 {
                assert_eq!(decide(Sampler::from_percent(0.0), pairs), NOT_SAMPLED);
                assert_eq!(
                    decide(Sampler::from_percent(100.0), pairs),
                    Decision {
                        sampled: true,
                        forced: false,
                        debug: false
                    }
                );
            }
        }
    }

    #[test]
    fn random_share_is_roughly_the_percentage() {
        let sampler = Sampler::from_percent(50.0);
        let sampled = (0..10_000).filter(|_| decide(sampler, &[]).sampled).count();
        assert!((4_000..6_000).contains(&sampled), "{sampled}");
    }
}
