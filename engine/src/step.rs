//! Step specifications and step errors: what a workflow definition declares
//! about each step, and how a step reports failure. Pure data: no engine, no
//! I/O, so the planner (`plan.rs`) and the fold (`state.rs`) depend on this
//! module and never on the engine that runs steps.

use crate::event::Failure;
use crate::retry::RetryPolicy;
use serde_json::Value;
use std::time::Duration;

/// How a step is run.
#[derive(Clone, Debug)]
pub struct StepSpec {
    pub name: &'static str,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    /// Whether this step has a compensation (`Workflow::compensate`), run in
    /// reverse order when a later step fails for good or the workflow is
    /// cancelled after this step succeeded.
    pub compensable: bool,
    /// A step that waits for the named signal (e.g. a typed confirmation)
    /// instead of running code; its output is the signal's payload.
    pub awaits_signal: Option<&'static str>,
    /// Skip this step (recording `{"skipped": true}` as its output) when the
    /// workflow's input has this boolean field set to `true` — e.g. every
    /// step after a dry run's preview. Decided from the input alone, so the
    /// decision is the same on every replay.
    pub skip_if_input: Option<&'static str>,
}

impl StepSpec {
    pub fn new(name: &'static str) -> Self {
        StepSpec {
            name,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(3600),
            compensable: false,
            awaits_signal: None,
            skip_if_input: None,
        }
    }
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    pub fn compensable(mut self) -> Self {
        self.compensable = true;
        self
    }
    pub fn awaits_signal(mut self, signal: &'static str) -> Self {
        self.awaits_signal = Some(signal);
        self
    }
    pub fn skip_if_input(mut self, field: &'static str) -> Self {
        self.skip_if_input = Some(field);
        self
    }
    /// Whether the workflow with this input skips the step.
    pub fn skipped_for(&self, input: &Value) -> bool {
        self.skip_if_input
            .is_some_and(|field| input.get(field) == Some(&Value::Bool(true)))
    }
}

/// A step's error. `retryable: false` fails the step at once.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct StepError {
    pub code: String,
    pub message: String,
    pub retryable: bool,
    /// The step's inputs are gone and the steps named here (earlier ones,
    /// or this one) must run again first: e.g. node-local files written by
    /// earlier steps on a node that is no longer there. Empty: no redo.
    pub redo: Vec<String>,
}

impl StepError {
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        StepError {
            code: code.into(),
            message: message.into(),
            retryable: true,
            redo: Vec::new(),
        }
    }
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        StepError {
            code: code.into(),
            message: message.into(),
            retryable: false,
            redo: Vec::new(),
        }
    }
    /// The step cannot run because what `steps` produced is gone: the
    /// engine forgets their outputs, so they run again before this one.
    pub fn redo(steps: &[&str], code: impl Into<String>, message: impl Into<String>) -> Self {
        StepError {
            redo: steps.iter().map(|s| (*s).to_owned()).collect(),
            ..StepError::retryable(code, message)
        }
    }
    pub(crate) fn cancelled() -> Self {
        StepError::permanent("cancelled", "the workflow was cancelled")
    }
    pub fn into_failure(self) -> Failure {
        Failure {
            code: self.code,
            message: self.message,
            retryable: self.retryable,
        }
    }
}
