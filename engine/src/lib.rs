//! ferry's generic durable workflow engine.
//!
//! A workflow is an append-only stream of [`Event`]s in an [`EventLog`]; its
//! state is the pure fold [`WorkflowState::apply`]. The engine drives each
//! workflow through the steps its [`Workflow`] definition names, recording
//! every transition durably before acting on it, so a crash at any point
//! resumes from the last recorded step. One actix actor per tenant enforces
//! per-tenant concurrency. The engine knows nothing of exports, HTTP or SQL.

pub mod actor;
pub mod clock;
pub mod engine;
pub mod error;
pub mod event;
pub mod ids;
pub mod log;
pub mod metrics;
pub mod ownership;
pub mod plan;
pub mod retry;
mod runner;
pub mod state;
pub mod status;
pub mod step;
mod submissions;
pub mod testkit;
pub mod timers;
pub mod workflow;

pub use clock::{Clock, IdGen, ManualClock, ShiftedClock, SystemClock, UuidV7};
pub use engine::{Engine, EngineConfig, RecoveryReport, SubmitRequest, Submitted};
pub use error::{Error, Rejection};
pub use event::{Event, Failure, Progress, Timestamp};
pub use ids::{InvalidTenantId, TenantId, WorkflowId};
pub use log::{
    AppendRejection, AppendRequest, DueTimer, EventLog, Fence, ListQuery, LogError, TimerEntry,
    WorkflowSummary,
};
pub use retry::RetryPolicy;
pub use state::{Phase, WorkflowState};
pub use status::Status;
pub use workflow::{StepContext, StepError, StepSpec, TimerContext, Workflow};
