//! Step `upload`: put the bundle into the private exports area at
//! `<tenant>/<export-id>/<file name>`, then remove the work directory.
//!
//! Idempotent: putting the same file again replaces the object with the same
//! bytes, and if an earlier attempt already removed the work directory (a
//! crash after removing it, before recording success), the object must be
//! there with the recorded size, which is then accepted as the upload.

use super::bundle::BundleOutput;
use crate::common::{output_of, remove_dir_all_idempotent, StepOutput};
use crate::export::{bundle_key, ExportStep, ExportWorkflow, BUNDLE_AREA};
use ferry_engine::{StepContext, StepError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadOutput {
    /// Key in the exports area.
    pub key: String,
    pub file_name: String,
    pub size_bytes: u64,
    pub checksum: String,
}

impl StepOutput for UploadOutput {
    type Step = ExportStep;
    const STEP: ExportStep = ExportStep::Upload;
}

pub async fn run(wf: &ExportWorkflow, ctx: &mut StepContext) -> Result<Value, StepError> {
    let bundle: BundleOutput = output_of(ctx)?;
    let key = bundle_key(&ctx.tenant, ctx.workflow, &bundle.file_name)?;
    let local = Path::new(&bundle.bundle_path);
    ctx.check_cancelled()?;
    // Only a bundle in this node's work directory: one built by another
    // node is not this node's to read.
    let local_ok = local.starts_with(wf.work_dir_of(ctx.workflow))
        && tokio::fs::metadata(local)
            .await
            .is_ok_and(|m| m.is_file() && m.len() == bundle.size_bytes);
    if local_ok {
        let meta = wf.deps.objects.put_file(BUNDLE_AREA, &key, local).await?;
        if meta.size != bundle.size_bytes {
            return Err(StepError::retryable(
                "upload_size_mismatch",
                format!(
                    "stored {} bytes, the bundle has {}",
                    meta.size, bundle.size_bytes
                ),
            ));
        }
    } else {
        match wf.deps.objects.head(BUNDLE_AREA, &key).await? {
            Some(meta) if meta.size == bundle.size_bytes => {}
            // Built on a node that lost the tenant (or removed): build it
            // again here.
            _ => {
                return Err(StepError::redo(
                    &["bundle"],
                    "bundle_lost",
                    "the bundle is neither in this node's work directory nor in the object store; it is built again",
                ))
            }
        }
    }
    // The bundle is safe in the store: the work files (a full copy of the
    // tenant's data) must not linger.
    if let Err(e) = remove_dir_all_idempotent(&wf.work_dir_of(ctx.workflow)).await {
        tracing::warn!(workflow = %ctx.workflow, error = %e, "could not remove the export work directory");
    }
    let out = UploadOutput {
        key: key.to_string(),
        file_name: bundle.file_name,
        size_bytes: bundle.size_bytes,
        checksum: bundle.checksum,
    };
    wf.audit(
        ctx,
        "EXPORT_UPLOADED",
        json!({"key": out.key, "area": BUNDLE_AREA.as_str(), "sizeBytes": out.size_bytes, "checksum": out.checksum}),
    )
    .await?;
    serde_json::to_value(&out).map_err(|e| StepError::permanent("invalid_output", e.to_string()))
}
