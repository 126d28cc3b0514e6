//! Export records: a queryable projection of exports (which exports a
//! tenant ran, their status, size, checksum, where the bundle is, when it
//! expires) kept in the platform database for operators and other services.
//!
//! A record is never the source of truth — the workflow's event log is.
//! The export workflow writes the whole record of an export as it moves on
//! (planned, uploaded, completed, expired, failed), so every write is an
//! idempotent replace by export id: a repeated step rewrites the same
//! record, and a lost write is repaired by the next one.

use super::PortError;
use crate::export::Profile;
use async_trait::async_trait;
use ferry_engine::{Status, TenantId, Timestamp, WorkflowId};

/// One export as operators see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportRecord {
    /// The export workflow's id.
    pub export_id: WorkflowId,
    pub tenant: TenantId,
    pub profile: Profile,
    pub status: Status,
    /// The requesting user's id (`sub`).
    pub requested_by: String,
    pub requested_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub size_bytes: Option<u64>,
    /// The bundle's checksum, e.g. `blake3:...`.
    pub checksum: Option<String>,
    /// Where the bundle is in the object store.
    pub object_key: Option<String>,
    /// When the bundle is due to be deleted.
    pub expires_at: Option<Timestamp>,
    /// When it was deleted.
    pub expired_at: Option<Timestamp>,
}

/// Where export records are kept.
///
/// Guarantees: `upsert` inserts the record or replaces every field of the
/// record with the same export id, so calling it again with the same record
/// is harmless; a record never moves to another tenant (such an upsert
/// fails with the permanent `export_record_conflict`). Failures that may
/// pass (the database unreachable) are retryable.
#[async_trait]
pub trait ExportRecords: Send + Sync + 'static {
    async fn upsert(&self, record: &ExportRecord) -> Result<(), PortError>;
}

/// No records: the platform database has no export records table (the
/// embedded SQLite default), so exports are known only from the event log.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoExportRecords;

#[async_trait]
impl ExportRecords for NoExportRecords {
    async fn upsert(&self, _record: &ExportRecord) -> Result<(), PortError> {
        Ok(())
    }
}
