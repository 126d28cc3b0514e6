//! Step `assets`: copy the tenant's files (only if the request asked for
//! them) from the assets area into the work directory, hashed as they
//! stream.
//!
//! Only the tenant's own prefix is read (see
//! [`crate::common::tenant_files`], which a rehydration's backup uses too).
//! The collected entries go to `assets.index.ndjson`, streamed, so the
//! step's recorded output stays small however many files the tenant has.

use super::WorkDirs;
use crate::common::tenant_files::collect;
use crate::common::StepOutput;
use crate::export::{ExportInput, ExportStep, ExportWorkflow};
use ferry_engine::{StepContext, StepError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use crate::common::tenant_files::AssetIndexLine;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetsOutput {
    /// Whether the request asked for assets.
    pub included: bool,
    pub files: u64,
    pub total_size: u64,
}

impl StepOutput for AssetsOutput {
    type Step = ExportStep;
    const STEP: ExportStep = ExportStep::Assets;
}

pub async fn run(
    wf: &ExportWorkflow,
    ctx: &mut StepContext,
    input: &ExportInput,
) -> Result<Value, StepError> {
    let dirs = WorkDirs::new(wf, ctx.workflow);
    if !input.request.include_assets {
        let out = AssetsOutput {
            included: false,
            files: 0,
            total_size: 0,
        };
        wf.audit(ctx, "EXPORT_ASSETS_SKIPPED", json!({})).await?;
        return serde_json::to_value(&out)
            .map_err(|e| StepError::permanent("invalid_output", e.to_string()));
    }
    dirs.create().await?;
    let objects = wf.deps.objects.clone();
    let (files, total_size) = collect(
        &*objects,
        ctx,
        &dirs.files,
        &dirs.assets_index(),
        wf.config.max_bundle_bytes,
    )
    .await?;
    let out = AssetsOutput {
        included: true,
        files,
        total_size,
    };
    wf.audit(
        ctx,
        "EXPORT_ASSETS_COLLECTED",
        json!({"files": files, "totalSize": total_size}),
    )
    .await?;
    serde_json::to_value(&out).map_err(|e| StepError::permanent("invalid_output", e.to_string()))
}
