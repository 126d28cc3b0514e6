//! Step `assets`: right after the data commit, switch the files `backup`
//! staged into the tenant's prefix (deletes, then server-side copies) and
//! drop the staging (see `rehydrate::assets`). Safe to repeat: a crash
//! anywhere in it is finished by the step repeated after the restart. A
//! failure that does not pass ends in the rollback, which restores the
//! tenant's files with its data.

use super::backup::BackupOutput;
use crate::common::{output_of, to_output, StepOutput};
use crate::rehydrate::{assets, RehydrateStep, RehydrateWorkflow};
use ferry_engine::{StepContext, StepError};
use serde_json::{json, Value};

pub async fn run(wf: &RehydrateWorkflow, ctx: &mut StepContext) -> Result<Value, StepError> {
    let backup: BackupOutput = output_of(ctx)?;
    // A backup taken before files were staged: nothing to switch.
    let staged = backup.assets.unwrap_or_default();
    let done = assets::switch(wf, ctx, &staged).await?;
    wf.audit(ctx, "REHYDRATE_ASSETS_SWITCHED", json!(done))
        .await?;
    to_output(&done)
}

impl StepOutput for assets::AssetsChanged {
    type Step = RehydrateStep;
    const STEP: RehydrateStep = RehydrateStep::Assets;
}
