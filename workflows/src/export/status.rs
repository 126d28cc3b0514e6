//! The status of an export as the API shows it, derived from the workflow's
//! folded state (the event log is the only truth; nothing here is stored).
//!
//! Also the one place that decides whether an export's bundle may be
//! downloaded ([`artifact`]): only a completed export whose expiry has not
//! passed and whose expiry timer has not fired has one.

use super::input::ExportInput;
use super::steps::bundle::BundleOutput;
use super::steps::expire::ExpireOutput;
use super::steps::snapshot::SnapshotOutput;
use super::steps::upload::UploadOutput;
use super::{ExportStep, EXPIRE_TIMER, KIND};
use crate::common::{recorded, WorkflowStep};
use crate::ports::objects::ObjectKey;
use ferry_engine::{Status, Timestamp, WorkflowId, WorkflowState};
use serde::{Deserialize, Serialize};

pub use crate::common::StatusError;

/// What `GET /api/v1/tenant/export/{id}/status` returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportStatusView {
    #[schema(value_type = String, format = Uuid)]
    pub id: WorkflowId,
    pub tenant_id: String,
    /// `lite`, `native` or `analytics`.
    pub profile: Option<String>,
    pub include_assets: bool,
    /// e.g. `pending`, `running`, `completed`, `failed`.
    #[schema(value_type = String)]
    pub status: Status,
    /// 0–100.
    pub progress: u8,
    pub current_step: Option<String>,
    pub rows_done: u64,
    pub bytes_done: u64,
    pub size_bytes: Option<u64>,
    pub checksum: Option<String>,
    pub file_name: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// The bundle's expiry passed (or its timer deleted it).
    pub expired: bool,
    pub error: Option<StatusError>,
    #[schema(value_type = String, format = DateTime)]
    pub requested_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<Timestamp>,
    /// Set by the API, only while the bundle can be downloaded.
    pub download_url: Option<String>,
}

fn is_expired(state: &WorkflowState, expires_at: Option<Timestamp>, now: Timestamp) -> bool {
    state.timers.get(EXPIRE_TIMER).is_some_and(|t| t.fired)
        || expires_at.is_some_and(|at| now >= at)
}

impl ExportStatusView {
    /// The view of `state` at time `now` (for expiry), without a download URL.
    pub fn from_state(state: &WorkflowState, now: Timestamp) -> ExportStatusView {
        let input = ExportInput::from_value(&state.input).ok();
        let snapshot: Option<SnapshotOutput> = recorded(&state.outputs);
        let bundle: Option<BundleOutput> = recorded(&state.outputs);
        let upload: Option<UploadOutput> = recorded(&state.outputs);
        let expire: Option<ExpireOutput> = recorded(&state.outputs);

        let progress = if state.status == Status::Completed {
            100
        } else {
            ExportStep::progress_percent(
                &state.outputs,
                state.current_step.as_deref(),
                state.progress.as_ref().map(|p| p.fraction),
            )
        };

        let live = state.progress.as_ref();
        let in_snapshot =
            state.current_step.as_deref().and_then(ExportStep::named) == Some(ExportStep::Snapshot);
        let rows_done = match (&snapshot, in_snapshot, live) {
            (Some(s), _, _) => s.row_count.unwrap_or(0),
            (None, true, Some(p)) => p.rows,
            _ => 0,
        };
        let bytes_done = match (&bundle, live) {
            (Some(b), _) => b.size_bytes,
            (None, Some(p)) => p.bytes,
            (None, None) => snapshot.as_ref().map_or(0, |s| s.bytes),
        };
        let expires_at = expire.map(|e| e.expires_at);
        let error = if state.status == Status::Completed {
            None
        } else {
            state.last_error.as_ref().map(|f| StatusError {
                code: f.code.clone(),
                message: f.message.clone(),
            })
        };
        ExportStatusView {
            id: state.id,
            tenant_id: state.tenant.to_string(),
            profile: input
                .as_ref()
                .map(|i| i.request.profile.as_str().to_owned()),
            include_assets: input.as_ref().is_some_and(|i| i.request.include_assets),
            status: state.status,
            progress,
            current_step: state.current_step.clone(),
            rows_done,
            bytes_done,
            size_bytes: bundle.as_ref().map(|b| b.size_bytes),
            checksum: bundle.as_ref().map(|b| b.checksum.clone()),
            file_name: upload
                .as_ref()
                .map(|u| u.file_name.clone())
                .or(bundle.map(|b| b.file_name)),
            expires_at,
            expired: is_expired(state, expires_at, now),
            error,
            requested_at: state.created_at,
            started_at: state.started_at,
            completed_at: if state.status == Status::Completed {
                state.finished_at
            } else {
                None
            },
            download_url: None,
        }
    }

    /// Whether the bundle can be downloaded now.
    pub fn downloadable(&self) -> bool {
        self.status == Status::Completed && !self.expired
    }

    /// Set `download_url` (built by the API from the id) when downloadable.
    pub fn with_download_url(mut self, url: impl FnOnce(&WorkflowId) -> String) -> Self {
        self.download_url = self.downloadable().then(|| url(&self.id));
        self
    }
}

/// The stored bundle of a downloadable export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportArtifact {
    pub key: ObjectKey,
    pub file_name: String,
    pub size_bytes: u64,
    pub checksum: String,
    pub expires_at: Timestamp,
}

/// Why an export's bundle cannot be downloaded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    #[error("workflow is not an export")]
    NotAnExport,
    #[error("the export has not completed")]
    NotReady,
    #[error("the export has expired")]
    Expired,
}

impl ArtifactError {
    /// Stable code (`not_found`, `export_not_ready`, `export_expired`).
    pub fn code(&self) -> &'static str {
        match self {
            ArtifactError::NotAnExport => "not_found",
            ArtifactError::NotReady => "export_not_ready",
            ArtifactError::Expired => "export_expired",
        }
    }
}

/// The bundle to serve for `state` at `now`, if it may be served.
pub fn artifact(state: &WorkflowState, now: Timestamp) -> Result<ExportArtifact, ArtifactError> {
    if state.kind != KIND {
        return Err(ArtifactError::NotAnExport);
    }
    if state.status != Status::Completed {
        return Err(ArtifactError::NotReady);
    }
    let upload: UploadOutput = recorded(&state.outputs).ok_or(ArtifactError::NotReady)?;
    let expire: ExpireOutput = recorded(&state.outputs).ok_or(ArtifactError::NotReady)?;
    if is_expired(state, Some(expire.expires_at), now) {
        return Err(ArtifactError::Expired);
    }
    let key = ObjectKey::parse(&upload.key).map_err(|_| ArtifactError::NotReady)?;
    if !key.is_under(&state.tenant) {
        return Err(ArtifactError::NotReady);
    }
    Ok(ExportArtifact {
        key,
        file_name: upload.file_name,
        size_bytes: upload.size_bytes,
        checksum: upload.checksum,
        expires_at: expire.expires_at,
    })
}
