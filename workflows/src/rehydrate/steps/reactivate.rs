//! Step `reactivate`: the new data is verified; lift the maintenance flag,
//! start the backup's retention timer (a finished rehydration can be
//! rolled back until it fires) and drop the work files (the extracted
//! bundle is a full copy of tenant data and must not linger; the backup
//! stays in the backups area).
//!
//! In a dry run nothing was quiesced or backed up: the step only drops the
//! work files (the extracted bundle of a preview is tenant data too).

use super::{with_writer, WorkDirs};
use crate::common::{remove_dir_all_idempotent, secs, to_output};
use crate::rehydrate::{RehydrateInput, RehydrateWorkflow, BACKUP_TIMER};
use ferry_engine::{StepContext, StepError};
use serde_json::{json, Value};

pub async fn run(
    wf: &RehydrateWorkflow,
    ctx: &mut StepContext,
    input: &RehydrateInput,
) -> Result<Value, StepError> {
    if input.dry_run {
        drop_work_files(wf, ctx).await;
        return to_output(&json!({"dryRun": true}));
    }
    with_writer(wf, ctx, |w| w.set_maintenance(false)).await?;
    let until = ctx.created_at.max(ctx.now()) + secs(wf.config.backup_retention);
    ctx.schedule_timer(BACKUP_TIMER, until).await?;
    drop_work_files(wf, ctx).await;
    wf.audit(
        ctx,
        "REHYDRATE_COMPLETED",
        json!({"backupRetainedUntil": until}),
    )
    .await?;
    to_output(&json!({"backupRetainedUntil": until}))
}

/// Remove the work directory; a failure is logged (the start-up sweep
/// removes what is left of finished rehydrations).
async fn drop_work_files(wf: &RehydrateWorkflow, ctx: &StepContext) {
    let root = WorkDirs::new(wf, ctx.workflow).root;
    if let Err(e) = remove_dir_all_idempotent(&root).await {
        tracing::warn!(workflow = %ctx.workflow, error = %e, "could not remove the rehydration work directory");
    }
}
