//! Step `quiesce`: mark the tenant as under maintenance, so the platform
//! stops writing to it before the backup is taken and until `reactivate`.
//!
//! This step comes before `backup` (not after, as a first reading of the
//! step list might suggest) so that no write can land between the backup
//! and the delete: the backup is then exactly the data the delete removes.
//! It is the workflow's one compensable step, and its compensation is the
//! rollback (`restore.rs`): whenever a later step fails for good, the
//! workflow is cancelled, or a finished rehydration is rolled back, the
//! engine compensates `quiesce`, which restores the backup where the data
//! differs from it, verifies, and reactivates the tenant.

use super::with_writer;
use crate::common::to_output;
use crate::rehydrate::RehydrateWorkflow;
use ferry_engine::{StepContext, StepError};
use serde_json::{json, Value};

pub async fn run(wf: &RehydrateWorkflow, ctx: &mut StepContext) -> Result<Value, StepError> {
    with_writer(wf, ctx, |w| w.set_maintenance(true)).await?;
    wf.audit(ctx, "REHYDRATE_QUIESCED", json!({})).await?;
    to_output(&json!({"maintenance": true, "at": ctx.now()}))
}
