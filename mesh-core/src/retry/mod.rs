//! Retries as Envoy and Istio do them (VirtualService `retries`): [`RetryLayer`].
//!
//! - [`RetryPolicy`] — attempts, per-try timeout, `retryOn` and back-off base of a route;
//! - [`RetryOn`] — the parsed `retryOn` list and which outcomes it retries;
//! - [`Backoff`] — Envoy's jittered exponential back-off;
//! - [`RetryBudget`] — a cap on retries relative to traffic, shared by a layer's requests;
//! - [`ReplayBuffer`] / [`ReplayBody`] — streaming a request body while keeping it, bounded,
//!   for the retries;
//! - [`RetryOverride`](request_override::RetryOverride) — what a request's `x-envoy-retry-on`,
//!   `x-envoy-retry-grpc-on` and `x-envoy-max-retries` change in its route's policy;
//! - [`RetryContext`] — what a request's attempts share with the layers below;
//! - [`LentExtensions`] — a request's extensions, lent back to the retry layer by the service
//!   that sends it;
//! - [`RetryLayer`] — the tower layer tying these together.
//!
//! Place the layer inside the route timeout ([`TimeoutLayer`](crate::timeout::TimeoutLayer))
//! so that the timeout covers every attempt and back-off, and outside the load balancer so
//! each retry may pick another host ([`RetryContext`]).

pub mod backoff;
pub mod budget;
pub mod condition;
pub mod context;
mod head;
pub mod layer;
pub mod lent;
pub mod policy;
pub mod replay;
pub mod request_override;

pub use backoff::Backoff;
pub use budget::{RetryBudget, RetryBudgetError};
pub use condition::{InvalidRetryOn, RETRY_ON_TOKENS, RetryCondition, RetryHeaders, RetryOn};
pub use context::{Attempt, ClusterRecord, RetryContext};
pub use layer::{ATTEMPT_COUNT, DEFAULT_BUFFER_LIMIT, Retry, RetryFuture, RetryLayer};
pub use lent::LentExtensions;
pub use policy::{RetryPolicy, effective_per_try_timeout};
pub use replay::{ReplayBody, ReplayBuffer, ReplayError};
