//! Decide what a workflow does next: a pure function of its state, its step
//! list and the time. The runner carries decisions out; nothing here does I/O.
//!
//! `advance` chains decisions that need no step code to run (start, complete,
//! the next step's `StepStarted`) onto one append, so a step's success and the
//! start of the next step share one durable commit.

use crate::event::{Event, Failure, Timestamp};
use crate::state::{Phase, WorkflowState};
use crate::status::Status;
use crate::step::{StepError, StepSpec};
use std::time::Duration;

/// The next thing to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// Nothing until a command or signal arrives (or the workflow is final).
    Idle,
    /// Record these events, then decide again.
    Append(Vec<Event>),
    /// Retry backoff: decide again at this time.
    WaitUntil(Timestamp),
    /// Run step code (forward step or its compensation).
    Run(RunOrder),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOrder {
    pub step: String,
    pub attempt: u32,
    pub phase: Phase,
}

fn cancellation() -> Failure {
    Failure {
        code: "cancelled".into(),
        message: "the workflow was cancelled".into(),
        retryable: false,
    }
}

/// Compensable steps that were attempted and are not yet compensated, last first.
fn to_compensate<'a>(state: &WorkflowState, steps: &'a [StepSpec]) -> Option<&'a StepSpec> {
    steps.iter().rev().find(|s| {
        s.compensable && state.attempted.contains(s.name) && !state.compensated.contains_key(s.name)
    })
}

pub fn needs_compensation(state: &WorkflowState, steps: &[StepSpec]) -> bool {
    to_compensate(state, steps).is_some()
}

/// What to do next in the current state.
pub fn next(state: &WorkflowState, steps: &[StepSpec], now: Timestamp) -> Next {
    match state.status {
        Status::Pending if state.cancel_requested => {
            Next::Append(vec![Event::Cancelled { at: now }])
        }
        Status::Pending => Next::Append(vec![Event::Started { at: now }]),
        Status::Running => forward(state, steps, now),
        Status::Compensating => backward(state, steps, now),
        _ => Next::Idle,
    }
}

fn forward(state: &WorkflowState, steps: &[StepSpec], now: Timestamp) -> Next {
    if state.cancel_requested {
        let ev = if needs_compensation(state, steps) {
            Event::CompensationStarted {
                reason: cancellation(),
                at: now,
            }
        } else {
            Event::Cancelled { at: now }
        };
        return Next::Append(vec![ev]);
    }
    let Some(spec) = steps.iter().find(|s| !state.outputs.contains_key(s.name)) else {
        return Next::Append(vec![Event::Completed { at: now }]);
    };
    if spec.skipped_for(&state.input) {
        return Next::Append(vec![Event::StepSucceeded {
            step: spec.name.into(),
            output: serde_json::json!({"skipped": true}),
            at: now,
        }]);
    }
    if let Some(signal) = spec.awaits_signal {
        return match state.signals.get(signal) {
            Some(payload) => Next::Append(vec![Event::StepSucceeded {
                step: spec.name.into(),
                output: payload.clone(),
                at: now,
            }]),
            None => Next::Append(vec![Event::AwaitingSignal {
                signal: signal.into(),
                at: now,
            }]),
        };
    }
    run_or_wait(state, spec, Phase::Forward, now)
}

fn backward(state: &WorkflowState, steps: &[StepSpec], now: Timestamp) -> Next {
    match to_compensate(state, steps) {
        None => Next::Append(vec![Event::RolledBack { at: now }]),
        Some(spec) => run_or_wait(state, spec, Phase::Compensation, now),
    }
}

fn run_or_wait(state: &WorkflowState, spec: &StepSpec, phase: Phase, now: Timestamp) -> Next {
    if state.current_step.as_deref() == Some(spec.name) {
        if let Some(t) = state.retry_at {
            if t > now {
                return Next::WaitUntil(t);
            }
        }
    }
    Next::Run(RunOrder {
        step: spec.name.into(),
        attempt: state.failures_of(spec.name) + 1,
        phase,
    })
}

/// Upper bound on decisions chained into one append.
const ADVANCE_CHAIN_MAX: usize = 64;

/// Chain every decision that needs no step code into one list of events,
/// ending with the `StepStarted` of the next step to run if there is one.
/// Returns the events (possibly empty) and what to do after appending them.
pub fn advance(state: &WorkflowState, steps: &[StepSpec], now: Timestamp) -> (Vec<Event>, Next) {
    let mut scratch = state.clone();
    let mut events = Vec::new();
    for _ in 0..ADVANCE_CHAIN_MAX {
        match next(&scratch, steps, now) {
            Next::Append(evs) => {
                for e in evs {
                    scratch.apply(&e);
                    events.push(e);
                }
            }
            Next::Run(order) => {
                let already_started = scratch.current_step.as_deref() == Some(order.step.as_str())
                    && scratch.current_attempt == Some(order.attempt);
                if !already_started {
                    let e = Event::StepStarted {
                        step: order.step.clone(),
                        attempt: order.attempt,
                        at: now,
                    };
                    scratch.apply(&e);
                    events.push(e);
                }
                return (events, Next::Run(order));
            }
            other => return (events, other),
        }
    }
    panic!(
        "workflow {} did not settle after {ADVANCE_CHAIN_MAX} decisions",
        state.id
    );
}

/// Events recording a step's failure: a retry, or the end of the road
/// (compensation if anything needs undoing, else failed).
pub fn after_failure(
    state: &WorkflowState,
    steps: &[StepSpec],
    spec: &StepSpec,
    order: &RunOrder,
    error: StepError,
    retry_delay: impl FnOnce(u32) -> Duration,
    now: Timestamp,
) -> Vec<Event> {
    let failures = state.failures_of(&order.step) + 1;
    let failure = error.clone().into_failure();
    if let Some(events) = redo(state, steps, order, &error, &failure, now) {
        return events;
    }
    if error.retryable && spec.retry.allows_retry(failures) {
        let delay = chrono::Duration::from_std(retry_delay(failures))
            .unwrap_or(chrono::Duration::seconds(1));
        return vec![Event::StepFailed {
            step: order.step.clone(),
            attempt: order.attempt,
            error: failure,
            retry_at: Some(now + delay),
            at: now,
        }];
    }
    let mut events = vec![Event::StepFailed {
        step: order.step.clone(),
        attempt: order.attempt,
        error: failure.clone(),
        retry_at: None,
        at: now,
    }];
    let compensate = order.phase == Phase::Forward && needs_compensation(state, steps);
    events.push(if compensate {
        Event::CompensationStarted {
            reason: failure,
            at: now,
        }
    } else {
        Event::Failed {
            error: failure,
            at: now,
        }
    });
    events
}

/// Upper bound on `StepsRedone` in one workflow: results that keep
/// vanishing are a fault to report, not to loop on.
pub const REDOS_MAX: u32 = 8;

/// A forward step whose inputs are gone (`StepError::redo`): forget the
/// outputs of the steps it names (earlier ones that succeeded; steps that
/// wait for a signal keep it), so they run again before it. `None` when the
/// error asks for nothing or the budget is spent (the error then fails the
/// step as usual).
fn redo(
    state: &WorkflowState,
    steps: &[StepSpec],
    order: &RunOrder,
    error: &StepError,
    failure: &Failure,
    now: Timestamp,
) -> Option<Vec<Event>> {
    if error.redo.is_empty() || order.phase != Phase::Forward || state.redos >= REDOS_MAX {
        return None;
    }
    let current = steps.iter().position(|s| s.name == order.step)?;
    let forget = steps[..current]
        .iter()
        .filter(|s| error.redo.iter().any(|r| r == s.name))
        .filter(|s| s.awaits_signal.is_none() && state.outputs.contains_key(s.name))
        .map(|s| s.name.to_owned())
        .collect();
    Some(vec![Event::StepsRedone {
        steps: forget,
        reason: failure.clone(),
        at: now,
    }])
}

/// The event recording a step's success.
pub fn after_success(order: &RunOrder, output: serde_json::Value, now: Timestamp) -> Event {
    match order.phase {
        Phase::Forward => Event::StepSucceeded {
            step: order.step.clone(),
            output,
            at: now,
        },
        Phase::Compensation => Event::StepCompensated {
            step: order.step.clone(),
            output,
            at: now,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{TenantId, WorkflowId};
    use crate::retry::RetryPolicy;
    use serde_json::json;

    fn t(s: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn submitted() -> WorkflowState {
        WorkflowState::from_submitted(&Event::Submitted {
            id: WorkflowId(uuid::Uuid::from_u128(1)),
            tenant: TenantId::parse("acme").unwrap(),
            kind: "test".into(),
            input: json!({}),
            idempotency_key: None,
            requested_by: None,
            at: t(0),
        })
    }

    fn steps() -> Vec<StepSpec> {
        vec![
            StepSpec::new("a"),
            StepSpec::new("b").compensable(),
            StepSpec::new("c").retry(RetryPolicy {
                attempts_max: 2,
                ..RetryPolicy::default()
            }),
        ]
    }

    fn apply_all(s: &mut WorkflowState, evs: &[Event]) {
        for e in evs {
            s.apply(e);
        }
    }

    #[test]
    fn a_step_success_and_the_next_start_share_one_append() {
        let steps = steps();
        let mut s = submitted();
        let (evs, next) = advance(&s, &steps, t(1));
        assert_eq!(evs.len(), 2, "{evs:?}");
        assert!(matches!(next, Next::Run(ref o) if o.step == "a" && o.attempt == 1));
        apply_all(&mut s, &evs);
        let Next::Run(order) = next else {
            unreachable!()
        };
        s.apply(&after_success(&order, json!(1), t(2)));
        let (evs, next) = advance(&s, &steps, t(2));
        assert_eq!(evs.len(), 1);
        assert!(matches!(next, Next::Run(ref o) if o.step == "b"));
    }

    #[test]
    fn steps_skipped_by_the_input_complete_without_running() {
        let steps = vec![
            StepSpec::new("a"),
            StepSpec::new("b")
                .awaits_signal("go")
                .skip_if_input("dryRun"),
            StepSpec::new("c").skip_if_input("dryRun"),
        ];
        let mut s = submitted();
        s.input = json!({"dryRun": true});
        let (evs, next) = advance(&s, &steps, t(1));
        apply_all(&mut s, &evs);
        let Next::Run(order) = next else { panic!() };
        s.apply(&after_success(&order, json!(1), t(2)));
        let (evs, next) = advance(&s, &steps, t(2));
        apply_all(&mut s, &evs);
        assert_eq!(next, Next::Idle);
        assert_eq!(s.status, Status::Completed);
        assert_eq!(s.outputs["b"], json!({"skipped": true}));
        assert_eq!(s.outputs["c"], json!({"skipped": true}));
        // Without the flag the signal step waits.
        let mut s = submitted();
        s.input = json!({"dryRun": false});
        let (evs, next) = advance(&s, &steps, t(1));
        apply_all(&mut s, &evs);
        let Next::Run(order) = next else { panic!() };
        s.apply(&after_success(&order, json!(1), t(2)));
        let (evs, _) = advance(&s, &steps, t(2));
        apply_all(&mut s, &evs);
        assert_eq!(s.status, Status::AwaitingConfirmation);
    }

    #[test]
    fn exhausted_retries_after_a_compensable_step_start_compensation() {
        let steps = steps();
        let mut s = submitted();
        for step in ["a", "b"] {
            let (evs, next) = advance(&s, &steps, t(1));
            apply_all(&mut s, &evs);
            let Next::Run(order) = next else { panic!() };
            assert_eq!(order.step, step);
            s.apply(&after_success(&order, json!(null), t(1)));
        }
        let (evs, next) = advance(&s, &steps, t(2));
        apply_all(&mut s, &evs);
        let Next::Run(order) = next else { panic!() };
        let spec = &steps[2];
        let err = StepError::retryable("boom", "x");
        let evs = after_failure(
            &s,
            &steps,
            spec,
            &order,
            err.clone(),
            |_| Duration::from_secs(5),
            t(3),
        );
        assert_eq!(evs.len(), 1);
        apply_all(&mut s, &evs);
        assert_eq!(next_of(&s, &steps, t(4)), Next::WaitUntil(t(8)));
        let Next::Run(order) = next_of(&s, &steps, t(9)) else {
            panic!()
        };
        assert_eq!(order.attempt, 2);
        let evs = after_failure(
            &s,
            &steps,
            spec,
            &order,
            err,
            |_| Duration::from_secs(5),
            t(9),
        );
        apply_all(&mut s, &evs);
        assert_eq!(s.status, Status::Compensating);
        let (evs, next) = advance(&s, &steps, t(10));
        apply_all(&mut s, &evs);
        assert!(
            matches!(next, Next::Run(ref o) if o.step == "b" && o.phase == Phase::Compensation)
        );
    }

    fn next_of(s: &WorkflowState, steps: &[StepSpec], now: Timestamp) -> Next {
        next(s, steps, now)
    }

    #[test]
    fn cancel_before_anything_destructive_just_cancels() {
        let steps = steps();
        let mut s = submitted();
        let (evs, _) = advance(&s, &steps, t(1));
        apply_all(&mut s, &evs);
        s.apply(&Event::CancelRequested { by: None, at: t(2) });
        let (evs, next) = advance(&s, &steps, t(2));
        apply_all(&mut s, &evs);
        assert_eq!(next, Next::Idle);
        assert_eq!(s.status, Status::Cancelled);
    }
}
