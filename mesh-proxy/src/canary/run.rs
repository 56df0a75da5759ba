//! [`CanaryRun`]: one Canary's analysis as a state machine, Flagger's control loop without the
//! clock and the metrics: each [`pass`](CanaryRun::pass) takes the checks' results (when the
//! pass needs them) and says where the traffic goes next.
//!
//! One pass per `interval`, as in Flagger's scheduler:
//! 1. `Initialized` → `Progressing`: the analysis starts; no checks yet, as nothing reached the
//!    canary; the first step is taken (weight `stepWeight`, or the matched requests for A/B
//!    testing, or a mirrored step first when `mirror` is on).
//! 2. `Progressing`: the checks run; any failed check counts, and when the failed checks reach
//!    `threshold` the canary is rolled back (`Failed`, everything to the primary) in that same
//!    pass (Flagger notices at the start of the next one, an interval later). Otherwise the
//!    next step is taken, until the canary weight reaches `maxWeight` (or the iterations are
//!    done) and it turns `Promoting`.
//! 3. `Promoting`: the traffic moves to the promoted version, at once or by
//!    `stepWeightPromotion` per pass, then `Finalising`, then `Succeeded`.
//!
//! Promotion differs from Flagger in one way: Flagger copies the canary's spec into the
//! primary's deployment and sends traffic back to the primary; with no deployments to copy, a
//! promoted Canary sends everything to its canary destination, which then serves alone.

use mesh_route::config::{
    CanaryRouting,
    canary::{Canary, Strategy},
};
use serde::Serialize;

/// Flagger's canary phases (those that apply without Kubernetes).
///
/// ```
/// use mesh_proxy::canary::{CanaryRun, Phase};
/// use mesh_route::config::canary::Canary;
/// let mut run = CanaryRun::new("catalog.shop".into());
/// assert_eq!(run.phase, Phase::Initialized);
/// run.pass(&Canary::default(), Vec::new());
/// assert_eq!(run.phase, Phase::Progressing);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Phase {
    /// Loaded; the analysis starts at the next pass.
    Initialized,
    /// Traffic moves step by step while the checks pass.
    Progressing,
    /// The checks passed; traffic moves to the promoted version.
    Promoting,
    /// Traffic has moved; the next pass ends the analysis.
    Finalising,
    /// Promoted: everything goes to the canary destination.
    Succeeded,
    /// Rolled back: everything goes to the primary.
    Failed,
}

impl Phase {
    /// Whether the analysis is over (no more passes until the Canary changes).
    ///
    /// ```
    /// use mesh_proxy::canary::Phase;
    /// assert!(Phase::Succeeded.is_final() && Phase::Failed.is_final());
    /// assert!(!Phase::Promoting.is_final() && !Phase::Finalising.is_final());
    /// ```
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

/// One check's outcome in a pass.
///
/// ```
/// use mesh_proxy::canary::{CanaryRun, CheckResult};
/// use mesh_route::config::canary::{Canary, CanaryAnalysis};
/// let spec = Canary { analysis: CanaryAnalysis { threshold: Some(2), ..CanaryAnalysis::default() }, ..Canary::default() };
/// let mut run = CanaryRun::new("catalog.shop".into());
/// run.pass(&spec, Vec::new()); // starts
/// let failed = CheckResult { name: "request-success-rate".into(), value: Some(91.0), passed: false, reason: Some("91 < 99".into()) };
/// let outcome = run.pass(&spec, vec![failed]);
/// assert_eq!(run.failed_checks, 1);
/// assert_eq!(outcome.events[0].message, "Halt advancement catalog.shop: request-success-rate 91 < 99");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// The metric (`request-success-rate`, `request-duration`).
    pub name: String,
    /// Its value over its window; `None` when there was no data or the query failed.
    pub value: Option<f64>,
    /// Whether it passed.
    pub passed: bool,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a pass did: where traffic goes now (when it moved) and the events to log.
///
/// ```
/// use mesh_proxy::canary::CanaryRun;
/// use mesh_route::config::canary::{Canary, CanaryAnalysis};
/// let spec = Canary { analysis: CanaryAnalysis { step_weight: Some(20), ..CanaryAnalysis::default() }, ..Canary::default() };
/// let mut run = CanaryRun::new("catalog.shop".into());
/// let outcome = run.pass(&spec, Vec::new());
/// assert_eq!(outcome.routing.unwrap().canary_weight, 20);
/// assert_eq!(outcome.events[0].message, "Starting canary analysis for catalog.shop");
/// ```
#[derive(Debug, Default, PartialEq)]
pub struct PassOutcome {
    /// The routing to put in force, when it changed.
    pub routing: Option<CanaryRouting>,
    /// Flagger-style event messages, in order.
    pub events: Vec<Event>,
}

/// An event of the analysis, logged and shown at `/canaries`.
///
/// ```
/// use mesh_proxy::canary::CanaryRun;
/// let mut run = CanaryRun::new("catalog.shop".into());
/// let events = run.abort().events;
/// assert_eq!((events[0].kind, events[0].message.as_str()), ("Warning", "Canary catalog.shop aborted"));
/// assert_eq!(serde_json::to_value(&events[0]).unwrap()["type"], "Warning");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// `Normal` or `Warning`, as Kubernetes events.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// What happened.
    pub message: String,
}

impl Event {
    pub(crate) fn normal(message: String) -> Self {
        Event {
            kind: "Normal",
            message,
        }
    }

    pub(crate) fn warning(message: String) -> Self {
        Event {
            kind: "Warning",
            message,
        }
    }
}

/// One Canary's analysis; see the [module docs](self).
///
/// A canary whose checks pass moves step by step to `maxWeight`, then is promoted:
///
/// ```
/// use mesh_proxy::canary::{CanaryRun, Phase};
/// use mesh_route::config::{CanaryRouting, canary::{Canary, CanaryAnalysis}};
/// let analysis = CanaryAnalysis { step_weight: Some(25), max_weight: Some(50), ..CanaryAnalysis::default() };
/// let spec = Canary { analysis, ..Canary::default() };
/// let mut run = CanaryRun::new("catalog.shop".into());
/// let weights: Vec<u32> = (0..3).map(|_| { run.pass(&spec, Vec::new()); run.routing.canary_weight }).collect();
/// assert_eq!((weights, run.phase), (vec![25, 50, 50], Phase::Promoting));
/// run.pass(&spec, Vec::new());
/// assert_eq!(run.routing, CanaryRouting::PROMOTED);
/// run.pass(&spec, Vec::new());
/// assert_eq!(run.phase, Phase::Succeeded);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CanaryRun {
    /// `name.namespace`, as Flagger names canaries in its events.
    label: String,
    /// The phase.
    pub phase: Phase,
    /// The traffic split in force.
    pub routing: CanaryRouting,
    /// Checks failed so far.
    pub failed_checks: u32,
    /// Passes of A/B testing or Blue/Green so far.
    pub iterations: u32,
    /// The last pass's checks.
    pub checks: Vec<CheckResult>,
}

impl CanaryRun {
    /// A run of a Canary just loaded, named `name.namespace` in events.
    ///
    /// ```
    /// use mesh_proxy::canary::{CanaryRun, Phase};
    /// use mesh_route::config::CanaryRouting;
    /// let run = CanaryRun::new("catalog.shop".into());
    /// assert_eq!((run.phase, run.routing), (Phase::Initialized, CanaryRouting::default()));
    /// assert_eq!(run.failed_checks, 0);
    /// ```
    pub fn new(label: String) -> Self {
        CanaryRun {
            label,
            phase: Phase::Initialized,
            routing: CanaryRouting::default(),
            failed_checks: 0,
            iterations: 0,
            checks: Vec::new(),
        }
    }

    /// Whether the next pass runs the checks (and so needs their results): while progressing,
    /// once anything has reached the canary.
    ///
    /// ```
    /// use mesh_proxy::canary::CanaryRun;
    /// use mesh_route::config::canary::Canary;
    /// let spec = Canary::default();
    /// let mut run = CanaryRun::new("catalog.shop".into());
    /// assert!(!run.needs_checks(&spec), "nothing reached the canary yet");
    /// run.pass(&spec, Vec::new());
    /// assert!(run.needs_checks(&spec));
    /// ```
    pub fn needs_checks(&self, spec: &Canary) -> bool {
        self.phase == Phase::Progressing
            && !spec.skip_analysis
            && (self.routing != CanaryRouting::default() || self.iterations > 0)
    }

    /// One pass, with `checks` the results of the checks when [`needs_checks`] said so.
    ///
    /// [`needs_checks`]: Self::needs_checks
    ///
    /// ```
    /// use mesh_proxy::canary::{CanaryRun, CheckResult, Phase};
    /// use mesh_route::config::{CanaryRouting, canary::{Canary, CanaryAnalysis}};
    /// let spec = Canary { analysis: CanaryAnalysis { threshold: Some(1), ..CanaryAnalysis::default() }, ..Canary::default() };
    /// let mut run = CanaryRun::new("catalog.shop".into());
    /// run.pass(&spec, Vec::new());
    /// let slow = CheckResult { name: "request-duration".into(), value: Some(900.0), passed: false, reason: None };
    /// let outcome = run.pass(&spec, vec![slow]);
    /// // The threshold is reached: rolled back in the same pass.
    /// assert_eq!(run.phase, Phase::Failed);
    /// assert_eq!(outcome.routing, Some(CanaryRouting::default()));
    /// ```
    pub fn pass(&mut self, spec: &Canary, checks: Vec<CheckResult>) -> PassOutcome {
        let mut outcome = PassOutcome::default();
        match self.phase {
            Phase::Initialized => {
                self.phase = Phase::Progressing;
                outcome.events.push(Event::normal(format!(
                    "Starting canary analysis for {}",
                    self.label
                )));
                if spec.skip_analysis {
                    outcome.events.push(Event::normal(format!(
                        "Skipping analysis for {}: promoting",
                        self.label
                    )));
                    self.phase = Phase::Promoting;
                    return outcome;
                }
                self.advance(spec, &mut outcome);
            }
            Phase::Progressing => {
                if spec.skip_analysis {
                    self.phase = Phase::Promoting;
                    return outcome;
                }
                let failed: Vec<&CheckResult> = checks.iter().filter(|c| !c.passed).collect();
                for check in &failed {
                    outcome.events.push(Event::warning(format!(
                        "Halt advancement {}: {} {}",
                        self.label,
                        check.name,
                        check.reason.as_deref().unwrap_or("failed")
                    )));
                }
                let any_failed = !failed.is_empty();
                self.checks = checks;
                if any_failed {
                    self.failed_checks += 1;
                    if self.failed_checks >= spec.threshold() {
                        outcome.events.push(Event::warning(format!(
                            "Rolling back {} failed checks threshold reached {}",
                            self.label, self.failed_checks
                        )));
                        self.roll_back(&mut outcome);
                    }
                    return outcome;
                }
                self.advance(spec, &mut outcome);
            }
            Phase::Promoting => {
                let step = spec.analysis.step_weight_promotion.unwrap_or(0);
                let weight = if step == 0 {
                    100
                } else {
                    (self.routing.canary_weight + step).min(100)
                };
                let routing = if weight == 100 {
                    CanaryRouting::PROMOTED
                } else {
                    CanaryRouting {
                        canary_weight: weight,
                        matched_to_canary: true,
                        mirror: false,
                    }
                };
                self.route(routing, &mut outcome);
                outcome.events.push(Event::normal(format!(
                    "Promoting {}: canary weight {weight}",
                    self.label
                )));
                if weight == 100 {
                    self.phase = Phase::Finalising;
                }
            }
            Phase::Finalising => {
                self.phase = Phase::Succeeded;
                outcome.events.push(Event::normal(format!(
                    "Promotion completed! {} serves all traffic from the canary",
                    self.label
                )));
            }
            Phase::Succeeded | Phase::Failed => {}
        }
        outcome
    }

    /// Promotes now, whatever the checks say (the admin's `promote`).
    ///
    /// ```
    /// use mesh_proxy::canary::{CanaryRun, Phase};
    /// use mesh_route::config::canary::Canary;
    /// let mut run = CanaryRun::new("catalog.shop".into());
    /// run.pass(&Canary::default(), Vec::new());
    /// let outcome = run.promote();
    /// assert_eq!(run.phase, Phase::Promoting);
    /// assert_eq!(outcome.events[0].message, "Promotion of catalog.shop requested");
    /// ```
    pub fn promote(&mut self) -> PassOutcome {
        let mut outcome = PassOutcome::default();
        if !self.phase.is_final() && self.phase != Phase::Finalising {
            self.phase = Phase::Promoting;
            outcome.events.push(Event::normal(format!(
                "Promotion of {} requested",
                self.label
            )));
        }
        outcome
    }

    /// Rolls back now (the admin's `abort`).
    ///
    /// ```
    /// use mesh_proxy::canary::{CanaryRun, Phase};
    /// use mesh_route::config::canary::Canary;
    /// let mut run = CanaryRun::new("catalog.shop".into());
    /// run.pass(&Canary::default(), Vec::new());
    /// assert!(run.abort().routing.is_some(), "traffic goes back to the primary");
    /// assert_eq!(run.phase, Phase::Failed);
    /// assert!(run.abort().events.is_empty(), "a final phase stays");
    /// ```
    pub fn abort(&mut self) -> PassOutcome {
        let mut outcome = PassOutcome::default();
        if !self.phase.is_final() {
            outcome
                .events
                .push(Event::warning(format!("Canary {} aborted", self.label)));
            self.roll_back(&mut outcome);
        }
        outcome
    }

    /// Takes the next step towards promotion, or turns `Promoting` when there is none.
    fn advance(&mut self, spec: &Canary, outcome: &mut PassOutcome) {
        let analysis = &spec.analysis;
        match spec.strategy() {
            Strategy::Canary => {
                let weight = self.routing.canary_weight;
                if weight >= spec.max_weight() {
                    self.start_promotion(outcome);
                    return;
                }
                let routing = if analysis.mirror && weight == 0 && !self.routing.mirror {
                    outcome.events.push(Event::normal(format!(
                        "Starting mirroring to {} canary",
                        self.label
                    )));
                    CanaryRouting {
                        mirror: true,
                        ..CanaryRouting::default()
                    }
                } else {
                    let next = spec.next_weight(weight);
                    outcome.events.push(Event::normal(format!(
                        "Advance {} canary weight {next}",
                        self.label
                    )));
                    CanaryRouting {
                        canary_weight: next,
                        ..CanaryRouting::default()
                    }
                };
                self.route(routing, outcome);
            }
            Strategy::AbTesting | Strategy::BlueGreen => {
                let wanted = analysis.iterations.unwrap_or(0);
                if self.iterations >= wanted {
                    self.start_promotion(outcome);
                    return;
                }
                self.iterations += 1;
                outcome.events.push(Event::normal(format!(
                    "Advance {} canary iteration {}/{wanted}",
                    self.label, self.iterations
                )));
                let routing = match spec.strategy() {
                    Strategy::AbTesting => CanaryRouting {
                        matched_to_canary: true,
                        ..CanaryRouting::default()
                    },
                    _ => CanaryRouting {
                        mirror: analysis.mirror,
                        ..CanaryRouting::default()
                    },
                };
                self.route(routing, outcome);
            }
        }
    }

    fn start_promotion(&mut self, outcome: &mut PassOutcome) {
        self.phase = Phase::Promoting;
        outcome.events.push(Event::normal(format!(
            "Canary analysis of {} completed successfully, promotion started",
            self.label
        )));
    }

    fn roll_back(&mut self, outcome: &mut PassOutcome) {
        self.phase = Phase::Failed;
        self.route(CanaryRouting::default(), outcome);
        outcome.events.push(Event::warning(format!(
            "Canary failed! {} serves all traffic from the primary",
            self.label
        )));
    }

    fn route(&mut self, routing: CanaryRouting, outcome: &mut PassOutcome) {
        if routing != self.routing {
            self.routing = routing;
            outcome.routing = Some(routing);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(analysis: serde_json::Value) -> Canary {
        serde_json::from_value(serde_json::json!({
            "targetRef": {"name": "catalog"},
            "service": {"port": 80},
            "analysis": analysis,
        }))
        .unwrap()
    }

    fn passing() -> Vec<CheckResult> {
        vec![CheckResult {
            name: "request-success-rate".into(),
            value: Some(100.0),
            passed: true,
            reason: None,
        }]
    }

    fn failing() -> Vec<CheckResult> {
        vec![CheckResult {
            name: "request-success-rate".into(),
            value: None,
            passed: false,
            reason: Some("no values found".into()),
        }]
    }

    #[test]
    fn weights_step_up_then_promotion_moves_everything_to_the_canary() {
        let spec = spec(serde_json::json!({"stepWeight": 20, "maxWeight": 50}));
        let mut run = CanaryRun::new("catalog.shop".into());
        assert!(!run.needs_checks(&spec));
        let mut weights = Vec::new();
        for _ in 0..4 {
            let checks = if run.needs_checks(&spec) {
                passing()
            } else {
                vec![]
            };
            if let Some(routing) = run.pass(&spec, checks).routing {
                weights.push(routing.canary_weight);
            }
        }
        // 20 → 40 → 60 (Flagger overshoots maxWeight on the last step), then promotion.
        assert_eq!(weights, [20, 40, 60]);
        assert_eq!(run.phase, Phase::Promoting);
        assert_eq!(
            run.pass(&spec, vec![]).routing,
            Some(CanaryRouting::PROMOTED)
        );
        assert_eq!(run.phase, Phase::Finalising);
        run.pass(&spec, vec![]);
        assert_eq!(run.phase, Phase::Succeeded);
    }

    #[test]
    fn failed_checks_halt_then_roll_back_at_the_threshold() {
        let spec = spec(serde_json::json!({"stepWeight": 10, "threshold": 2}));
        let mut run = CanaryRun::new("catalog.shop".into());
        run.pass(&spec, vec![]);
        assert_eq!(run.routing.canary_weight, 10);
        let first = run.pass(&spec, failing());
        assert_eq!(first.routing, None, "a failed check halts advancement");
        assert_eq!((run.phase, run.failed_checks), (Phase::Progressing, 1));
        let second = run.pass(&spec, failing());
        assert_eq!(second.routing, Some(CanaryRouting::default()));
        assert_eq!(run.phase, Phase::Failed);
        assert!(
            second
                .events
                .iter()
                .any(|e| e.message.contains("threshold reached 2"))
        );
    }

    #[test]
    fn ab_testing_sends_matched_requests_for_the_iterations() {
        let spec = spec(serde_json::json!({
            "iterations": 2, "match": [{"headers": {"x-canary": {"exact": "1"}}}]
        }));
        let mut run = CanaryRun::new("catalog.shop".into());
        let first = run.pass(&spec, vec![]);
        assert!(first.routing.unwrap().matched_to_canary);
        assert!(run.needs_checks(&spec));
        run.pass(&spec, passing());
        assert_eq!(run.iterations, 2);
        run.pass(&spec, passing());
        assert_eq!(run.phase, Phase::Promoting);
    }

    #[test]
    fn mirror_mode_mirrors_one_pass_before_shifting() {
        let spec = spec(serde_json::json!({"stepWeight": 10, "mirror": true}));
        let mut run = CanaryRun::new("catalog.shop".into());
        let mirrored = run.pass(&spec, vec![]).routing.unwrap();
        assert!(mirrored.mirror && mirrored.canary_weight == 0);
        assert!(run.needs_checks(&spec), "mirrored traffic is judged");
        let shifted = run.pass(&spec, passing()).routing.unwrap();
        assert!(!shifted.mirror && shifted.canary_weight == 10);
    }

    #[test]
    fn admin_actions_promote_and_abort() {
        let spec = spec(serde_json::json!({"stepWeight": 10}));
        let mut run = CanaryRun::new("catalog.shop".into());
        run.pass(&spec, vec![]);
        run.promote();
        assert_eq!(run.phase, Phase::Promoting);
        let mut other = CanaryRun::new("catalog.shop".into());
        other.pass(&spec, vec![]);
        assert_eq!(other.abort().routing, Some(CanaryRouting::default()));
        assert_eq!(other.phase, Phase::Failed);
        assert!(other.abort().events.is_empty(), "nothing left to abort");
    }

    #[test]
    fn skip_analysis_promotes_without_checks() {
        let mut spec = spec(serde_json::json!({"stepWeight": 10}));
        spec.skip_analysis = true;
        let mut run = CanaryRun::new("catalog.shop".into());
        run.pass(&spec, vec![]);
        assert_eq!(run.phase, Phase::Promoting);
        assert!(!run.needs_checks(&spec));
    }
}
