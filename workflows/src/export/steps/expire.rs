//! Step `expire` and the `expire` timer: the bundle lives for the bundle TTL
//! after the export completes, then a durable timer deletes it.
//!
//! The step fixes the expiry time on its first attempt (kept in its
//! checkpoint, so a repeat schedules the same time, which the engine treats
//! as a no-op), schedules the timer and records `EXPORT_COMPLETED`. The timer
//! survives restarts; its callback deletes the object (deleting a missing
//! object is fine, so a repeated callback is harmless) and records
//! `EXPORT_EXPIRED`. Expiry never depends on a bucket lifecycle rule.

use super::bundle::BundleOutput;
use super::upload::UploadOutput;
use crate::common::{output_of, recorded, secs, StepOutput, WorkflowStep};
use crate::export::records::RecordSource;
use crate::export::{
    ExportInput, ExportStep, ExportWorkflow, AUDIT_ACTOR, AUDIT_ENTITY, BUNDLE_AREA, EXPIRE_TIMER,
};
use crate::ports::audit::AuditEntry;
use crate::ports::objects::ObjectKey;
use ferry_engine::{Status, StepContext, StepError, TimerContext, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpireOutput {
    pub expires_at: Timestamp,
    /// When the export completed (this step's first attempt).
    #[serde(default)]
    pub completed_at: Option<Timestamp>,
    /// When it was requested, for the export record the timer rewrites.
    #[serde(default)]
    pub requested_at: Option<Timestamp>,
}

impl StepOutput for ExpireOutput {
    type Step = ExportStep;
    const STEP: ExportStep = ExportStep::Expire;
}

pub async fn run(
    wf: &ExportWorkflow,
    ctx: &mut StepContext,
    input: &ExportInput,
) -> Result<Value, StepError> {
    let upload: UploadOutput = output_of(ctx)?;
    let bundle: BundleOutput = output_of(ctx)?;
    let fixed = match ctx
        .checkpoint_value()
        .and_then(|v| serde_json::from_value::<ExpireOutput>(v.clone()).ok())
    {
        Some(cp) => cp,
        None => {
            let now = ctx.now();
            let cp = ExpireOutput {
                expires_at: now + secs(wf.config.bundle_ttl),
                completed_at: Some(now),
                requested_at: Some(ctx.created_at),
            };
            let v = serde_json::to_value(&cp)
                .map_err(|e| StepError::permanent("invalid_output", e.to_string()))?;
            ctx.checkpoint(v, None).await?;
            cp
        }
    };
    let expires_at = fixed.expires_at;
    ctx.schedule_timer(EXPIRE_TIMER, expires_at).await?;
    wf.audit(
        ctx,
        "EXPORT_COMPLETED",
        json!({
            "sizeBytes": upload.size_bytes,
            "checksum": upload.checksum,
            "fileName": upload.file_name,
            "entries": bundle.entries,
            "expiresAt": expires_at,
        }),
    )
    .await?;
    if let Some(m) = &wf.metrics {
        let snapshot: super::snapshot::SnapshotOutput = output_of(ctx)?;
        let profile = input.request.profile.as_str();
        m.rows
            .with_label_values(&[profile])
            .inc_by(snapshot.row_count.unwrap_or(0));
        m.bytes
            .with_label_values(&[profile])
            .inc_by(bundle.size_bytes);
        m.bundle_size
            .with_label_values(&[profile])
            .observe(bundle.size_bytes as f64);
    }
    serde_json::to_value(fixed).map_err(|e| StepError::permanent("invalid_output", e.to_string()))
}

/// The `expire` timer: delete the bundle, then audit.
pub async fn on_expire(wf: &ExportWorkflow, ctx: &TimerContext) -> Result<(), StepError> {
    let step = UploadOutput::STEP.name();
    let Some(upload) = ctx.outputs.get(step) else {
        // Nothing was ever uploaded: nothing to delete.
        return Ok(());
    };
    let upload: UploadOutput = serde_json::from_value(upload.clone())
        .map_err(|e| StepError::permanent("invalid_output", format!("output of {step}: {e}")))?;
    let key = ObjectKey::parse(&upload.key)
        .map_err(|e| StepError::permanent("invalid_object_key", e.to_string()))?;
    if !key.is_under(&ctx.tenant) {
        return Err(StepError::permanent(
            "invalid_object_key",
            "bundle key is outside the tenant",
        ));
    }
    let existed = wf.deps.objects.delete(BUNDLE_AREA, &key).await?;
    let entry = AuditEntry::new(
        ctx.now(),
        AUDIT_ACTOR,
        Some(ctx.tenant.clone()),
        "EXPORT_EXPIRED",
        AUDIT_ENTITY,
        ctx.workflow.to_string(),
    )
    .details(json!({
        "workflowId": ctx.workflow.to_string(),
        "timer": ctx.name,
        "key": upload.key,
        "deleted": existed,
        "dueAt": ctx.due_at,
    }));
    wf.deps
        .audit
        .append(entry)
        .await
        .map_err(|e| StepError::retryable("audit_failed", e.message))?;
    if let Some(m) = &wf.metrics {
        m.expired.inc();
    }
    // Exports that completed before records were kept have no request time.
    let expire: Option<ExpireOutput> = recorded(&ctx.outputs);
    if let Some(requested_at) = expire.and_then(|e| e.requested_at) {
        let source = RecordSource {
            workflow: ctx.workflow,
            tenant: &ctx.tenant,
            input: &ctx.input,
            outputs: &ctx.outputs,
            requested_at,
        };
        let mut record = source.record(Status::Completed)?;
        record.expired_at = Some(ctx.now());
        wf.write_record(record).await?;
    }
    Ok(())
}
