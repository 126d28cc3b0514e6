//! What a workflow definition gives the engine: named steps with policies,
//! and the code that runs them.
//!
//! Steps must be idempotent: a crash between doing a step and recording its
//! success repeats it. A step's output is recorded in `StepSucceeded`, so a
//! finished step is never run again. Long steps call `StepContext::checkpoint`
//! and, when re-run, continue from `StepContext::checkpoint_value`.

use crate::clock::Clock;
use crate::error::Error;
use crate::event::{Progress, Timestamp};
use crate::ids::{TenantId, WorkflowId};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub use crate::step::{StepError, StepSpec};

/// What a running step may ask of the engine that runs it. The engine
/// implements it; this module does not depend on the engine.
#[async_trait]
pub(crate) trait StepHost: Send + Sync + 'static {
    fn now(&self) -> Timestamp;

    async fn record_checkpoint(
        &self,
        id: WorkflowId,
        step: &str,
        checkpoint: Value,
        progress: Option<Progress>,
    ) -> Result<(), Error>;

    async fn schedule_timer(
        &self,
        id: WorkflowId,
        name: &str,
        due_at: Timestamp,
    ) -> Result<(), Error>;
}

/// What a timer callback may ask of the engine. The engine implements it.
#[async_trait]
pub(crate) trait TimerHost: Send + Sync + 'static {
    async fn cancel_if_status(
        &self,
        id: WorkflowId,
        status: crate::status::Status,
        by: &str,
    ) -> Result<bool, Error>;
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
    host: Arc<dyn StepHost>,
}

impl StepContext {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        state: &crate::state::WorkflowState,
        step: &str,
        attempt: u32,
        cancel: CancellationToken,
        host: Arc<dyn StepHost>,
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
            host,
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
        self.host
            .record_checkpoint(self.workflow, &self.step, checkpoint.clone(), progress)
            .await
            .map_err(|e| StepError::retryable("checkpoint_failed", e.to_string()))?;
        self.checkpoint = Some(checkpoint);
        Ok(())
    }

    /// Schedule (or reschedule) a durable timer of this workflow; the engine
    /// calls `Workflow::on_timer` when it is due, after restarts too.
    pub async fn schedule_timer(&self, name: &str, due_at: Timestamp) -> Result<(), StepError> {
        self.host
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
        self.host.now()
    }
}

/// Context of a timer callback.
#[derive(Clone)]
pub struct TimerContext {
    pub workflow: WorkflowId,
    pub tenant: TenantId,
    pub name: String,
    pub due_at: Timestamp,
    pub input: Arc<Value>,
    pub outputs: Arc<BTreeMap<String, Value>>,
    clock: Arc<dyn Clock>,
    host: Arc<dyn TimerHost>,
}

impl TimerContext {
    pub(crate) fn new(
        state: &crate::state::WorkflowState,
        name: &str,
        due_at: Timestamp,
        clock: Arc<dyn Clock>,
        host: Arc<dyn TimerHost>,
    ) -> Self {
        TimerContext {
            workflow: state.id,
            tenant: state.tenant.clone(),
            name: name.to_owned(),
            due_at,
            input: Arc::new(state.input.clone()),
            outputs: Arc::new(state.outputs.clone()),
            clock,
            host,
        }
    }

    /// Cancel this workflow, as `Engine::cancel` does, if it is still in
    /// `status`: the check and the cancel are one transaction, so a command
    /// that moved it on first (a confirmation) wins, and the cancel then
    /// does nothing. True if this call cancelled it (or asked a running
    /// workflow to stop); false if it was in another status.
    pub async fn cancel_if_status(
        &self,
        status: crate::status::Status,
        by: &str,
    ) -> Result<bool, StepError> {
        self.host
            .cancel_if_status(self.workflow, status, by)
            .await
            .map_err(|e| StepError::retryable("cancel_failed", e.to_string()))
    }

    /// The engine's clock now (the time a callback records, e.g. in audit
    /// entries), so tests that drive time drive this too.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

impl std::fmt::Debug for TimerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerContext")
            .field("workflow", &self.workflow)
            .field("tenant", &self.tenant)
            .field("name", &self.name)
            .field("due_at", &self.due_at)
            .finish_non_exhaustive()
    }
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
