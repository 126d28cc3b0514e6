//! HTTP routes, one file per resource. Handlers convert wire types to
//! engine/workflow types and back; they hold no business logic.

pub mod audit;
pub mod download;
pub mod export;
pub mod ops;
pub mod workflows;

use crate::error::ApiError;
use ferry_engine::{WorkflowId, WorkflowState};

/// Load a workflow the caller may see. Another tenant's id is "not found",
/// exactly like an unknown one, so ids cannot be probed.
pub async fn visible_workflow(
    engine: &ferry_engine::Engine,
    caller: &crate::auth::Caller,
    id: &str,
    kind: Option<&str>,
) -> Result<WorkflowState, ApiError> {
    let id: WorkflowId = id.parse().map_err(|_| ApiError::not_found("workflow"))?;
    let state = engine
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found("workflow"))?;
    if state.tenant != caller.tenant || kind.is_some_and(|k| k != state.kind) {
        return Err(ApiError::not_found("workflow"));
    }
    Ok(state)
}
