//! The one event enum of a workflow's append-only stream.
//!
//! Each variant has a fixed serialized tag (`"t"`) that is never reused or
//! renamed; a stream with an unknown tag fails to decode, loudly, rather than
//! being half-understood. Events record facts in the past tense.

use crate::ids::{TenantId, WorkflowId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub type Timestamp = DateTime<Utc>;

/// A step's failure, as recorded and as shown to operators.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Stable machine-readable code (e.g. `tenant_not_found`, `step_timeout`).
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

/// Progress inside a step, shown by status endpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// 0.0 ..= 1.0 of the current step.
    pub fraction: f64,
    #[serde(default)]
    pub rows: u64,
    #[serde(default)]
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t")]
pub enum Event {
    #[serde(rename = "submitted.v1")]
    Submitted {
        id: WorkflowId,
        tenant: TenantId,
        kind: String,
        input: Value,
        #[serde(default)]
        idempotency_key: Option<String>,
        #[serde(default)]
        requested_by: Option<String>,
        at: Timestamp,
    },
    #[serde(rename = "started.v1")]
    Started { at: Timestamp },
    #[serde(rename = "step_started.v1")]
    StepStarted {
        step: String,
        attempt: u32,
        at: Timestamp,
    },
    #[serde(rename = "step_progressed.v1")]
    StepProgressed {
        step: String,
        checkpoint: Value,
        #[serde(default)]
        progress: Option<Progress>,
        at: Timestamp,
    },
    #[serde(rename = "step_succeeded.v1")]
    StepSucceeded {
        step: String,
        output: Value,
        at: Timestamp,
    },
    #[serde(rename = "step_failed.v1")]
    StepFailed {
        step: String,
        attempt: u32,
        error: Failure,
        /// Set when the runner will try again at that time.
        #[serde(default)]
        retry_at: Option<Timestamp>,
        at: Timestamp,
    },
    #[serde(rename = "awaiting_signal.v1")]
    AwaitingSignal { signal: String, at: Timestamp },
    #[serde(rename = "signal_received.v1")]
    SignalReceived {
        name: String,
        payload: Value,
        at: Timestamp,
    },
    #[serde(rename = "paused.v1")]
    Paused { reason: String, at: Timestamp },
    #[serde(rename = "resumed.v1")]
    Resumed { at: Timestamp },
    #[serde(rename = "cancel_requested.v1")]
    CancelRequested {
        #[serde(default)]
        by: Option<String>,
        at: Timestamp,
    },
    #[serde(rename = "compensation_started.v1")]
    CompensationStarted { reason: Failure, at: Timestamp },
    #[serde(rename = "step_compensated.v1")]
    StepCompensated {
        step: String,
        output: Value,
        at: Timestamp,
    },
    #[serde(rename = "completed.v1")]
    Completed { at: Timestamp },
    #[serde(rename = "failed.v1")]
    Failed { error: Failure, at: Timestamp },
    #[serde(rename = "cancelled.v1")]
    Cancelled { at: Timestamp },
    #[serde(rename = "rolled_back.v1")]
    RolledBack { at: Timestamp },
    #[serde(rename = "timer_scheduled.v1")]
    TimerScheduled {
        name: String,
        due_at: Timestamp,
        at: Timestamp,
    },
    #[serde(rename = "timer_fired.v1")]
    TimerFired { name: String, at: Timestamp },
    /// Steps whose results are gone (node-local files on a node that is no
    /// more) run again: their outputs are forgotten, so the workflow goes on
    /// from the first of them. `reason` is the failure that found it out.
    #[serde(rename = "steps_redone.v1")]
    StepsRedone {
        steps: Vec<String>,
        reason: Failure,
        at: Timestamp,
    },
}

impl Event {
    pub fn at(&self) -> Timestamp {
        match self {
            Event::Submitted { at, .. }
            | Event::Started { at }
            | Event::StepStarted { at, .. }
            | Event::StepProgressed { at, .. }
            | Event::StepSucceeded { at, .. }
            | Event::StepFailed { at, .. }
            | Event::AwaitingSignal { at, .. }
            | Event::SignalReceived { at, .. }
            | Event::Paused { at, .. }
            | Event::Resumed { at }
            | Event::CancelRequested { at, .. }
            | Event::CompensationStarted { at, .. }
            | Event::StepCompensated { at, .. }
            | Event::Completed { at }
            | Event::Failed { at, .. }
            | Event::Cancelled { at }
            | Event::RolledBack { at }
            | Event::TimerScheduled { at, .. }
            | Event::TimerFired { at, .. }
            | Event::StepsRedone { at, .. } => *at,
        }
    }

    /// The stable tag, as stored.
    pub fn tag(&self) -> &'static str {
        match self {
            Event::Submitted { .. } => "submitted.v1",
            Event::Started { .. } => "started.v1",
            Event::StepStarted { .. } => "step_started.v1",
            Event::StepProgressed { .. } => "step_progressed.v1",
            Event::StepSucceeded { .. } => "step_succeeded.v1",
            Event::StepFailed { .. } => "step_failed.v1",
            Event::AwaitingSignal { .. } => "awaiting_signal.v1",
            Event::SignalReceived { .. } => "signal_received.v1",
            Event::Paused { .. } => "paused.v1",
            Event::Resumed { .. } => "resumed.v1",
            Event::CancelRequested { .. } => "cancel_requested.v1",
            Event::CompensationStarted { .. } => "compensation_started.v1",
            Event::StepCompensated { .. } => "step_compensated.v1",
            Event::Completed { .. } => "completed.v1",
            Event::Failed { .. } => "failed.v1",
            Event::Cancelled { .. } => "cancelled.v1",
            Event::RolledBack { .. } => "rolled_back.v1",
            Event::TimerScheduled { .. } => "timer_scheduled.v1",
            Event::TimerFired { .. } => "timer_fired.v1",
            Event::StepsRedone { .. } => "steps_redone.v1",
        }
    }

    /// Encode for storage.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("events always serialize")
    }

    /// Decode from storage; an unknown tag or shape is an error, never skipped.
    pub fn decode(bytes: &[u8]) -> Result<Event, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_stable_and_match_serialization() {
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let ev = Event::Completed { at };
        let json = String::from_utf8(ev.encode()).unwrap();
        assert_eq!(json, r#"{"t":"completed.v1","at":"2023-11-14T22:13:20Z"}"#);
        assert_eq!(ev.tag(), "completed.v1");
    }

    #[test]
    fn unknown_tags_fail_loudly() {
        let err = Event::decode(br#"{"t":"exploded.v9","at":"2023-11-14T22:13:20Z"}"#);
        assert!(err.is_err());
    }
}
