//! A workflow's state: a pure fold of its events.
//!
//! `apply` does no I/O, reads no clock and returns no error. An event that
//! breaks the status table is a bug in whoever decided to append it, so it
//! panics; the decision functions in `plan` check the table before appending.

use crate::event::{Event, Failure, Progress, Timestamp};
use crate::ids::{TenantId, WorkflowId};
use crate::log::{TimerEntry, WorkflowSummary};
use crate::status::Status;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Which way a workflow is moving: through its steps, or back through their
/// compensations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Forward,
    Compensation,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimerState {
    pub due_at: Timestamp,
    pub fired: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowState {
    pub id: WorkflowId,
    pub tenant: TenantId,
    pub kind: String,
    pub input: Value,
    pub idempotency_key: Option<String>,
    pub requested_by: Option<String>,
    pub status: Status,
    pub phase: Phase,
    /// Number of events folded so far; the optimistic-concurrency version.
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Outputs of succeeded steps, by step name.
    pub outputs: BTreeMap<String, Value>,
    /// Steps whose compensation has run, with its output.
    pub compensated: BTreeMap<String, Value>,
    /// The step currently being attempted (forward or compensation).
    pub current_step: Option<String>,
    pub current_attempt: Option<u32>,
    /// Forward steps that were ever started: the candidates for compensation,
    /// since a step that failed halfway may have done part of its work.
    pub attempted: BTreeSet<String>,
    /// Failures of each step since the last resume (the retry budget in use).
    pub failures: BTreeMap<String, u32>,
    /// Last checkpoint recorded by the current step, to resume from.
    pub checkpoint: Option<Value>,
    pub progress: Option<Progress>,
    /// When the runner will retry the current step.
    pub retry_at: Option<Timestamp>,
    pub last_error: Option<Failure>,
    pub cancel_requested: bool,
    pub awaiting_signal: Option<String>,
    pub signals: BTreeMap<String, Value>,
    pub timers: BTreeMap<String, TimerState>,
    /// How often steps were redone because their results were gone
    /// (`StepsRedone`).
    #[serde(skip_serializing_if = "is_zero")]
    pub redos: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl WorkflowState {
    /// The state created by a `Submitted` event.
    pub fn from_submitted(event: &Event) -> WorkflowState {
        let Event::Submitted {
            id,
            tenant,
            kind,
            input,
            idempotency_key,
            requested_by,
            at,
        } = event
        else {
            panic!(
                "a workflow stream must start with Submitted, got {}",
                event.tag()
            );
        };
        WorkflowState {
            id: *id,
            tenant: tenant.clone(),
            kind: kind.clone(),
            input: input.clone(),
            idempotency_key: idempotency_key.clone(),
            requested_by: requested_by.clone(),
            status: Status::Pending,
            phase: Phase::Forward,
            version: 1,
            created_at: *at,
            updated_at: *at,
            started_at: None,
            finished_at: None,
            outputs: BTreeMap::new(),
            compensated: BTreeMap::new(),
            current_step: None,
            current_attempt: None,
            attempted: BTreeSet::new(),
            failures: BTreeMap::new(),
            checkpoint: None,
            progress: None,
            retry_at: None,
            last_error: None,
            cancel_requested: false,
            awaiting_signal: None,
            signals: BTreeMap::new(),
            timers: BTreeMap::new(),
            redos: 0,
        }
    }

    /// Fold a whole stream. `None` for an empty stream.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> Option<WorkflowState> {
        let mut it = events.into_iter();
        let mut state = WorkflowState::from_submitted(it.next()?);
        for e in it {
            state.apply(e);
        }
        Some(state)
    }

    fn set_status(&mut self, to: Status, event: &Event) {
        assert!(
            self.status.can_transition_to(to),
            "illegal transition {} -> {} by {} in workflow {}",
            self.status,
            to,
            event.tag(),
            self.id
        );
        if self.status == Status::AwaitingConfirmation && to != Status::AwaitingConfirmation {
            // Whatever the way out, the workflow no longer waits for it.
            self.awaiting_signal = None;
        }
        self.status = to;
    }

    fn clear_step(&mut self) {
        self.current_step = None;
        self.current_attempt = None;
        self.checkpoint = None;
        self.progress = None;
        self.retry_at = None;
    }

    /// Apply one event. Pure; panics on an event that breaks an invariant.
    pub fn apply(&mut self, event: &Event) {
        self.version += 1;
        self.updated_at = event.at();
        match event {
            Event::Submitted { .. } => panic!("Submitted may only start a stream ({})", self.id),
            Event::Started { at } => {
                self.set_status(Status::Running, event);
                self.started_at = Some(*at);
            }
            Event::StepStarted { step, attempt, .. } => {
                assert!(
                    matches!(self.status, Status::Running | Status::Compensating),
                    "step started while {}",
                    self.status
                );
                if self.current_step.as_deref() != Some(step) {
                    self.checkpoint = None;
                    self.progress = None;
                }
                self.current_step = Some(step.clone());
                self.current_attempt = Some(*attempt);
                self.retry_at = None;
                if self.phase == Phase::Forward {
                    self.attempted.insert(step.clone());
                }
            }
            Event::StepProgressed {
                step,
                checkpoint,
                progress,
                ..
            } => {
                assert_eq!(self.current_step.as_deref(), Some(step.as_str()));
                self.checkpoint = Some(checkpoint.clone());
                if progress.is_some() {
                    self.progress = progress.clone();
                }
            }
            Event::StepSucceeded { step, output, .. } => {
                assert_eq!(self.phase, Phase::Forward, "forward step in compensation");
                self.outputs.insert(step.clone(), output.clone());
                self.last_error = None;
                self.clear_step();
            }
            Event::StepFailed {
                step,
                error,
                retry_at,
                ..
            } => {
                *self.failures.entry(step.clone()).or_insert(0) += 1;
                self.last_error = Some(error.clone());
                self.retry_at = *retry_at;
            }
            Event::AwaitingSignal { signal, .. } => {
                self.set_status(Status::AwaitingConfirmation, event);
                self.awaiting_signal = Some(signal.clone());
            }
            Event::SignalReceived { name, payload, .. } => {
                self.signals.insert(name.clone(), payload.clone());
                if self.awaiting_signal.as_deref() == Some(name) {
                    self.awaiting_signal = None;
                    self.set_status(Status::Running, event);
                }
            }
            Event::Paused { .. } => self.set_status(Status::Paused, event),
            Event::Resumed { .. } => {
                let to = match self.phase {
                    Phase::Forward => Status::Running,
                    Phase::Compensation => Status::Compensating,
                };
                self.set_status(to, event);
                self.failures.clear();
                self.retry_at = None;
                self.finished_at = None;
            }
            Event::CancelRequested { .. } => self.cancel_requested = true,
            Event::CompensationStarted { reason, .. } => {
                self.set_status(Status::Compensating, event);
                self.phase = Phase::Compensation;
                self.last_error = Some(reason.clone());
                self.failures.clear();
                self.clear_step();
                self.finished_at = None;
            }
            Event::StepCompensated { step, output, .. } => {
                assert_eq!(self.phase, Phase::Compensation);
                self.compensated.insert(step.clone(), output.clone());
                self.clear_step();
            }
            Event::Completed { at } => {
                self.set_status(Status::Completed, event);
                self.finished_at = Some(*at);
                self.clear_step();
            }
            Event::Failed { error, at } => {
                self.set_status(Status::Failed, event);
                self.last_error = Some(error.clone());
                self.finished_at = Some(*at);
                self.retry_at = None;
            }
            Event::Cancelled { at } => {
                self.set_status(Status::Cancelled, event);
                self.finished_at = Some(*at);
                self.clear_step();
            }
            Event::RolledBack { at } => {
                self.set_status(Status::RolledBack, event);
                self.finished_at = Some(*at);
                self.clear_step();
            }
            Event::TimerScheduled { name, due_at, .. } => {
                self.timers.insert(
                    name.clone(),
                    TimerState {
                        due_at: *due_at,
                        fired: false,
                    },
                );
            }
            Event::TimerFired { name, .. } => {
                let t = self
                    .timers
                    .get_mut(name)
                    .unwrap_or_else(|| panic!("timer {name} fired but never scheduled"));
                t.fired = true;
            }
            Event::StepsRedone { steps, reason, .. } => {
                assert!(
                    self.status == Status::Running && self.phase == Phase::Forward,
                    "steps redone while {}",
                    self.status
                );
                for step in steps {
                    self.outputs.remove(step);
                }
                self.redos += 1;
                self.last_error = Some(reason.clone());
                self.clear_step();
            }
        }
    }

    /// What the index trees need to know, derived from the state.
    pub fn summary(&self) -> WorkflowSummary {
        WorkflowSummary {
            id: self.id,
            tenant: self.tenant.clone(),
            kind: self.kind.clone(),
            status: self.status,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            idempotency_key: self.idempotency_key.clone(),
            timers: self
                .timers
                .iter()
                .filter(|(_, t)| !t.fired)
                .map(|(name, t)| TimerEntry {
                    name: name.clone(),
                    due_at: t.due_at,
                })
                .collect(),
        }
    }

    pub fn failures_of(&self, step: &str) -> u32 {
        self.failures.get(step).copied().unwrap_or(0)
    }
}
