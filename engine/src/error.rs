//! Engine errors. Expected refusals (cancel a finished workflow, resume a
//! running one) are `Rejection`s with stable codes; `Error` is for the rest.

use crate::ids::WorkflowId;
use crate::log::LogError;
use crate::status::Status;

/// A command that is not allowed in the workflow's current state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("workflow is {0} and cannot be cancelled")]
    NotCancellable(Status),
    #[error("workflow is {0}; only failed or paused workflows can be resumed")]
    NotResumable(Status),
    #[error("workflow is {0} and cannot be paused")]
    NotPausable(Status),
    #[error("workflow is not waiting for signal {0}")]
    NotAwaitingSignal(String),
    #[error("workflow is {0} and has nothing to roll back")]
    NotRollbackable(Status),
    #[error("step {0} is no longer running")]
    StepNotCurrent(String),
    #[error("the stream changed concurrently")]
    Conflict,
}

impl Rejection {
    /// Stable code for APIs.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::NotCancellable(_) => "not_cancellable",
            Rejection::NotResumable(_) => "not_resumable",
            Rejection::NotPausable(_) => "not_pausable",
            Rejection::NotAwaitingSignal(_) => "not_awaiting_signal",
            Rejection::NotRollbackable(_) => "not_rollbackable",
            Rejection::StepNotCurrent(_) => "step_not_current",
            Rejection::Conflict => "conflict",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("workflow {0} not found")]
    NotFound(WorkflowId),
    #[error("unknown workflow kind {0:?}")]
    UnknownKind(String),
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("engine is not started")]
    NotStarted,
    /// Cluster mode: this node does not hold the tenant's lease (any more),
    /// so it does not drive the tenant's workflows; the owner does.
    #[error("this node does not own tenant {0}")]
    NotOwner(crate::ids::TenantId),
}
