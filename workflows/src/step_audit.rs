//! The audit entry every workflow step appends: who acted (ferry itself),
//! on which tenant and workflow, in which step and attempt (a step may
//! repeat after a crash, so entries are recognisable per attempt), merged
//! with the step's own details. One place for export and rehydrate.

use crate::ports::audit::{AuditEntry, AuditLog};
use ferry_engine::{StepContext, StepError};
use serde_json::{json, Value};

/// Actor of audit entries the engine writes itself.
pub const ACTOR: &str = "ferry";

/// Append `action` for `ctx`'s workflow under `entity`; `common` (e.g. the
/// requester) and `details` are merged into the entry's details.
pub(crate) async fn append(
    audit: &dyn AuditLog,
    ctx: &StepContext,
    entity: &str,
    action: &str,
    common: Value,
    details: Value,
) -> Result<(), StepError> {
    let mut d = json!({
        "workflowId": ctx.workflow.to_string(),
        "step": ctx.step,
        "attempt": ctx.attempt,
    });
    if let Some(obj) = d.as_object_mut() {
        for extra in [common, details] {
            if let Value::Object(extra) = extra {
                obj.extend(extra);
            }
        }
    }
    let entry = AuditEntry::new(
        ctx.now(),
        ACTOR,
        Some(ctx.tenant.clone()),
        action,
        entity,
        ctx.workflow.to_string(),
    )
    .details(d);
    audit
        .append(entry)
        .await
        .map(|_| ())
        .map_err(|e| StepError::retryable("audit_failed", e.message))
}
