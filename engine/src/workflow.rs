//! What a workflow definition gives the engine: named steps with policies,
//! and the code that runs them.
//!
//! Steps must be idempotent: a crash between doing a step and recording its
//! success repeats it. A step's output is recorded in `StepSucceeded`, so a
//! finished step is never run again. Long steps call `StepContext::checkpoint`
//! and, when re-run, continue from `StepContext::checkpoint_value`.

use crate::engine::Engine;
use crate::event::{Failure, Progress, Timestamp};
use crate::ids::{TenantId, WorkflowId};
use crate::retry::RetryPolicy;
use async_trait::async_trait;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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
}

impl StepError {
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        StepError {
            code: code.into(),
            message: message.into(),
            retryable: true,
        }
    }
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        StepError {
            code: code.into(),
            message: message.into(),
            retryable: false,
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

/// Everything a running step may see and do.
#[derive(Clone)]
pub struct StepContext {
    pub workflow: WorkflowId,
    pub tenant: TenantId,
    pub step: String,
    /// 1-based attempt number (crashes do not consume attempts).
    pub attempt: u32,
    pub input: Arc<Value>,
    pub requested_by: Option<String>,
    pub created_at: Timestamp,
    /// Outputs of the steps that already succeeded.
    pub outputs: Arc<BTreeMap<String, Value>>,
    /// Signals received so far (e.g. a confirmation payload).
    pub signals: Arc<BTreeMap<String, Value>>,
    checkpoint: Option<Value>,
    cancel: CancellationToken,
    engine: Engine,
}

impl StepContext {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        state: &crate::state::WorkflowState,
        step: &str,
        attempt: u32,
        cancel: CancellationToken,
        engine: Engine,
    ) -> Self {
        StepContext {
            workflow: state.id,
            tenant: state.tenant.clone(),
            step: step.to_owned(),
            attempt,
            input: Arc::new(state.input.clone()),
            requested_by: state.requested_by.clone(),
            created_at: state.created_at,
            outputs: Arc::new(state.outputs.clone()),
            signals: Arc::new(state.signals.clone()),
            checkpoint: if state.current_step.as_deref() == Some(step) {
                state.checkpoint.clone()
            } else {
                None
            },
            cancel,
            engine,
        }
    }

    pub fn output(&self, step: &str) -> Option<&Value> {
        self.outputs.get(step)
    }

    /// The last checkpoint this step recorded before it was interrupted.
    pub fn checkpoint_value(&self) -> Option<&Value> {
        self.checkpoint.as_ref()
    }

    /// Record a durable checkpoint (and optional progress) for this step.
    pub async fn checkpoint(
        &mut self,
        checkpoint: Value,
        progress: Option<Progress>,
    ) -> Result<(), StepError> {
        self.check_cancelled()?;
        self.engine
            .record_checkpoint(self.workflow, &self.step, checkpoint.clone(), progress)
            .await
            .map_err(|e| StepError::retryable("checkpoint_failed", e.to_string()))?;
        self.checkpoint = Some(checkpoint);
        Ok(())
    }

    /// Schedule (or reschedule) a durable timer of this workflow; the engine
    /// calls `Workflow::on_timer` when it is due, after restarts too.
    pub async fn schedule_timer(&self, name: &str, due_at: Timestamp) -> Result<(), StepError> {
        self.engine
            .schedule_timer(self.workflow, name, due_at)
            .await
            .map_err(|e| StepError::retryable("timer_failed", e.to_string()))
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Whether the workflow was cancelled, asked from anywhere (a blocking
    /// thread doing the step's work checks it at its own safe points).
    pub fn cancel_flag(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let token = self.cancel.clone();
        move || token.is_cancelled()
    }

    /// A safe point: returns `Err` if the workflow was cancelled.
    pub fn check_cancelled(&self) -> Result<(), StepError> {
        if self.cancel.is_cancelled() {
            Err(StepError::cancelled())
        } else {
            Ok(())
        }
    }

    pub fn now(&self) -> Timestamp {
        self.engine.now()
    }
}

/// Context of a timer callback.
#[derive(Clone, Debug)]
pub struct TimerContext {
    pub workflow: WorkflowId,
    pub tenant: TenantId,
    pub name: String,
    pub due_at: Timestamp,
    pub input: Arc<Value>,
    pub outputs: Arc<BTreeMap<String, Value>>,
}

#[async_trait]
pub trait Workflow: Send + Sync + 'static {
    /// The stable kind name stored in events (e.g. `export`).
    fn kind(&self) -> &'static str;

    /// The ordered steps.
    fn steps(&self) -> &[StepSpec];

    /// Run one step; the output is recorded in `StepSucceeded`.
    async fn run(&self, ctx: StepContext) -> Result<Value, StepError>;

    /// Undo a succeeded compensable step.
    async fn compensate(&self, ctx: StepContext) -> Result<Value, StepError> {
        Err(StepError::permanent(
            "no_compensation",
            format!("step {} has no compensation", ctx.step),
        ))
    }

    /// A durable timer of this workflow is due. Must be idempotent.
    async fn on_timer(&self, ctx: TimerContext) -> Result<(), StepError> {
        let _ = ctx;
        Ok(())
    }
}
