//! The status of a rehydration as the API shows it, derived from the
//! workflow's folded state (nothing here is stored), and the rules for
//! what may be done to it next: confirm only while awaiting confirmation
//! with a conflict-free preview; roll back only a completed rehydration
//! whose backup is still kept.

use super::assets::AssetsChanged;
use super::input::RehydrateInput;
use super::steps::backup::BackupOutput;
use super::steps::load::LoadOutput;
use super::steps::preview::PreviewOutput;
use super::steps::restore::RestoreOutput;
use super::steps::validate::ValidateOutput;
use super::{RehydrateStep, BACKUP_TIMER, CONFIRMATION_EXPIRED, CONFIRM_SIGNAL, CONFIRM_TIMER};
use crate::common::{recorded, StatusError, StepOutput, WorkflowStep};
use ferry_engine::{Phase, Status, Timestamp, WorkflowId, WorkflowState};
use serde::{Deserialize, Serialize};

/// What `GET /api/v1/tenant/rehydrate/{id}/status` returns.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RehydrateStatusView {
    #[schema(value_type = String, format = Uuid)]
    pub id: WorkflowId,
    pub tenant_id: String,
    /// e.g. `awaiting_confirmation`, `running`, `completed`, `rolled_back`.
    #[schema(value_type = String)]
    pub status: Status,
    /// `replace`, `merge` or `partial`.
    pub mode: Option<String>,
    pub dry_run: bool,
    pub tables: Option<Vec<String>>,
    /// 0–100 over the steps that run.
    pub progress: u8,
    pub current_step: Option<String>,
    /// `forward`, or `compensation` while rolling back.
    #[schema(value_type = String)]
    pub phase: Phase,
    pub source: Option<String>,
    pub export_id: Option<String>,
    pub rows_checked: Option<u64>,
    pub rows_imported: Option<u64>,
    pub preview_ready: bool,
    pub awaiting_confirmation: bool,
    pub backup: Option<BackupView>,
    /// Whether the rollback restored the backup (after a rollback).
    pub restored: Option<bool>,
    /// What the step `assets` did to the tenant's files, once it ran.
    pub assets: Option<AssetsChanged>,
    /// What the rollback did to them, when the forward run changes them.
    pub assets_restored: Option<AssetsChanged>,
    /// A row-level validation report can be downloaded.
    pub report_available: bool,
    pub error: Option<StatusError>,
    #[schema(value_type = String, format = DateTime)]
    pub requested_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupView {
    pub size_bytes: u64,
    pub checksum: String,
    #[schema(value_type = String, format = DateTime)]
    pub taken_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub retained_until: Option<Timestamp>,
    /// Its retention timer fired: the backup is gone.
    pub expired: bool,
}

/// The preview, once the `preview` step recorded it.
pub fn preview(state: &WorkflowState) -> Option<PreviewOutput> {
    recorded(&state.outputs)
}

/// Why a rehydration cannot be confirmed or rolled back now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("the rehydration is not waiting for a confirmation")]
    NotAwaitingConfirmation,
    #[error("the preview shows merge conflicts; fix the bundle or the merge keys")]
    MergeConflicts,
    #[error("only a completed rehydration can be rolled back")]
    NotCompleted,
    #[error("a dry run changed nothing; there is nothing to roll back")]
    DryRun,
    #[error("the backup is no longer kept; the rehydration cannot be rolled back")]
    BackupExpired,
}

impl ActionError {
    pub fn code(self) -> &'static str {
        match self {
            ActionError::NotAwaitingConfirmation => "not_awaiting_confirmation",
            ActionError::MergeConflicts => "merge_conflicts",
            ActionError::NotCompleted => "not_rollbackable",
            ActionError::DryRun => "dry_run",
            ActionError::BackupExpired => "backup_expired",
        }
    }
}

/// Whether `state` can take the typed confirmation now.
pub fn can_confirm(state: &WorkflowState) -> Result<(), ActionError> {
    if state.status != Status::AwaitingConfirmation {
        return Err(ActionError::NotAwaitingConfirmation);
    }
    if preview(state).is_some_and(|p| p.conflicts > 0) {
        return Err(ActionError::MergeConflicts);
    }
    Ok(())
}

/// Whether the confirmation deadline cancelled this rehydration: cancelled,
/// never confirmed, and ended at or after the deadline (derived from the
/// events, so it holds however the cancel and its timer were recorded).
pub fn confirmation_expired(state: &WorkflowState) -> bool {
    state.status == Status::Cancelled
        && !state.signals.contains_key(CONFIRM_SIGNAL)
        && state
            .timers
            .get(CONFIRM_TIMER)
            .zip(state.finished_at)
            .is_some_and(|(t, finished)| finished >= t.due_at)
}

/// Whether a rehydration counts against its tenant's daily limit: a dry
/// run does not, nor one that ended before its bundle was accepted (refused
/// by `receive` or `validate`, or cancelled before). One still on its way
/// to validation counts, so a burst of requests cannot pass the limit.
pub fn counts_against_daily_limit(state: &WorkflowState) -> bool {
    if RehydrateInput::from_value(&state.input).is_ok_and(|i| i.dry_run) {
        return false;
    }
    let accepted = state.outputs.contains_key(ValidateOutput::STEP.name());
    accepted || !matches!(state.status, Status::Failed | Status::Cancelled)
}

/// Whether `state` can be rolled back now.
pub fn can_roll_back(state: &WorkflowState) -> Result<(), ActionError> {
    if state.status != Status::Completed {
        return Err(ActionError::NotCompleted);
    }
    if RehydrateInput::from_value(&state.input).is_ok_and(|i| i.dry_run) {
        return Err(ActionError::DryRun);
    }
    if state.timers.get(BACKUP_TIMER).is_some_and(|t| t.fired) {
        return Err(ActionError::BackupExpired);
    }
    Ok(())
}

impl RehydrateStatusView {
    pub fn from_state(state: &WorkflowState, report_available: bool) -> RehydrateStatusView {
        let input = RehydrateInput::from_value(&state.input).ok();
        let validate: Option<ValidateOutput> = recorded(&state.outputs);
        let import: Option<LoadOutput> = recorded(&state.outputs);
        let backup: Option<BackupOutput> = recorded(&state.outputs);
        let rollback = RestoreOutput::recorded(&state.compensated);
        let progress = if state.status == Status::Completed {
            100
        } else {
            RehydrateStep::progress_percent(
                &state.outputs,
                state.current_step.as_deref(),
                state.progress.as_ref().map(|p| p.fraction),
            )
        };
        let timer = state.timers.get(BACKUP_TIMER);
        let error = match state.status {
            Status::Completed => None,
            _ if confirmation_expired(state) => Some(StatusError {
                code: CONFIRMATION_EXPIRED.to_owned(),
                message: "the confirmation deadline passed before the rehydration was confirmed; \
                    it was cancelled and nothing was changed; start a new rehydration to try again"
                    .to_owned(),
            }),
            _ => state.last_error.as_ref().map(|f| StatusError {
                code: f.code.clone(),
                message: f.message.clone(),
            }),
        };
        RehydrateStatusView {
            id: state.id,
            tenant_id: state.tenant.to_string(),
            status: state.status,
            mode: input.as_ref().map(|i| i.mode.as_str().to_owned()),
            dry_run: input.as_ref().is_some_and(|i| i.dry_run),
            tables: input.as_ref().and_then(|i| i.tables.clone()),
            progress,
            current_step: state.current_step.clone(),
            phase: state.phase,
            source: input.as_ref().map(|i| match &i.source {
                super::Source::Upload { .. } => "upload".to_owned(),
                super::Source::Export { .. } => "export".to_owned(),
            }),
            export_id: validate.as_ref().map(|v| v.export_id.clone()),
            rows_checked: validate.as_ref().map(|v| v.rows_checked),
            rows_imported: import.as_ref().map(|i| i.rows),
            preview_ready: state.outputs.contains_key(PreviewOutput::STEP.name()),
            awaiting_confirmation: state.status == Status::AwaitingConfirmation,
            backup: backup.map(|b| BackupView {
                size_bytes: b.size_bytes,
                checksum: b.checksum,
                taken_at: b.taken_at,
                retained_until: timer.map(|t| t.due_at),
                expired: timer.is_some_and(|t| t.fired),
            }),
            restored: rollback.as_ref().map(|r| r.restored),
            assets: recorded::<AssetsChanged>(&state.outputs),
            assets_restored: rollback.and_then(|r| r.assets),
            report_available,
            error,
            requested_at: state.created_at,
            completed_at: state.finished_at,
        }
    }
}
