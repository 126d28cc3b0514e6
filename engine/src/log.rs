//! The `EventLog` trait: the engine's only source of truth.
//!
//! Contract every implementation keeps (checked by `testkit::conformance`):
//! - `append` is atomic: all of a request's events and the index updates they
//!   imply become visible together, or none do.
//! - `append` is durable before it returns `Ok(Ok(_))`: an acknowledged event
//!   survives a crash of the process (and, for a disk log, of the machine).
//! - Appends to one workflow are checked against `expected_version`; a stale
//!   writer gets `VersionConflict` and nothing is written.
//! - A stream is read back in append order, exactly as appended.
//! - Index queries (`list`, `open`, `due_timers`, `find_idempotency`,
//!   `count_submitted_since`) reflect every acknowledged append, never a stale
//!   one, because indexes are written atomically with the events.
//! - `append` returns the stream's new version (its event count).
//! - `ListQuery::limit` of 0 means `LIST_LIMIT_MAX`; larger limits are capped.
//! - A malformed request (no events, a summary of another workflow, or a
//!   summary version other than `expected_version + events.len()`) is a bug
//!   of the caller and panics.

use crate::event::{Event, Timestamp};
use crate::ids::{TenantId, WorkflowId};
use crate::status::Status;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// The per-workflow row the indexes are built from. The engine derives it
/// from the folded state and hands it to `append`, so a log never needs to
/// understand events to maintain its indexes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowSummary {
    pub id: WorkflowId,
    pub tenant: TenantId,
    pub kind: String,
    pub status: Status,
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub idempotency_key: Option<String>,
    /// Timers scheduled and not yet fired.
    pub timers: Vec<TimerEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerEntry {
    pub name: String,
    pub due_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueTimer {
    pub workflow: WorkflowId,
    pub name: String,
    pub due_at: Timestamp,
}

/// One atomic append.
#[derive(Clone, Debug)]
pub struct AppendRequest {
    pub id: WorkflowId,
    /// Number of events the writer has seen (0 for a new workflow).
    pub expected_version: u64,
    pub events: Vec<Event>,
    /// The summary after these events are applied.
    pub summary: WorkflowSummary,
    /// The tenant lease the appending node must still hold when the append
    /// commits (cluster mode, appends that drive a workflow); `None` for a
    /// single node and for commands, which any node may record.
    pub fence: Option<Fence>,
}

/// A node's claim on one tenant: the lease's epoch (the fencing token) the
/// node was granted. A log shared by several nodes refuses an append whose
/// fence is no longer the tenant's current, unexpired lease
/// (`AppendRejection::Fenced`); a log of one process has no leases and
/// ignores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub node: String,
    pub epoch: i64,
}

impl AppendRequest {
    /// Panics on a request no correct caller builds: the summary must
    /// describe the same workflow after exactly these events. Every log
    /// calls this first, so a malformed request fails the same way anywhere.
    pub fn assert_well_formed(&self) {
        assert!(
            !self.events.is_empty(),
            "append of no events to {}",
            self.id
        );
        assert_eq!(self.summary.id, self.id, "summary of another workflow");
        assert_eq!(
            self.summary.version,
            self.expected_version + self.events.len() as u64,
            "summary version does not match expected_version + events in {}",
            self.id
        );
    }
}

/// Expected outcomes of an append that wrote nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AppendRejection {
    #[error("version conflict: expected {expected}, stream is at {current}")]
    VersionConflict { expected: u64, current: u64 },
    #[error("idempotency key already used by workflow {existing}")]
    DuplicateIdempotencyKey { existing: WorkflowId },
    /// The fence's lease was taken over or expired: this node no longer
    /// drives the tenant and records nothing for it.
    #[error("the lease of tenant {tenant} (epoch {epoch}) is no longer held by node {node}")]
    Fenced {
        tenant: TenantId,
        node: String,
        epoch: i64,
    },
}

/// Failures of the log itself.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("event log I/O: {0}")]
    Io(String),
    #[error("event log corruption: {0}")]
    Corruption(String),
    #[error("event log closed")]
    Closed,
}

/// Listing filter; `after` is the cursor (the last id of the previous page).
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub tenant: Option<TenantId>,
    pub status: Option<Status>,
    pub kind: Option<String>,
    /// The cursor: the last id of the previous page (exclusive).
    pub after: Option<WorkflowId>,
    pub limit: usize,
    /// Newest first (descending ids; ids sort by creation time), the
    /// cursor then walking towards older workflows.
    pub newest_first: bool,
}

/// Upper bound on `ListQuery::limit`.
pub const LIST_LIMIT_MAX: usize = 500;

impl ListQuery {
    /// `limit` as every implementation reads it: 0 means "as many as
    /// allowed", and no page is longer than `LIST_LIMIT_MAX`.
    pub fn effective_limit(&self) -> usize {
        if self.limit == 0 {
            LIST_LIMIT_MAX
        } else {
            self.limit.min(LIST_LIMIT_MAX)
        }
    }
}

#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Append atomically and durably (see the module contract).
    async fn append(&self, req: AppendRequest) -> Result<Result<u64, AppendRejection>, LogError>;

    /// The whole stream of one workflow, in order; empty if unknown.
    fn read(&self, id: WorkflowId) -> Result<Vec<Event>, LogError>;

    fn summary(&self, id: WorkflowId) -> Result<Option<WorkflowSummary>, LogError>;

    /// Workflows matching the query, ordered by id (= creation time).
    fn list(&self, q: &ListQuery) -> Result<Vec<WorkflowSummary>, LogError>;

    /// All workflows whose status is open, ordered by id.
    fn open(&self) -> Result<Vec<WorkflowSummary>, LogError>;

    /// Unfired timers due at or before `until`, earliest first.
    fn due_timers(&self, until: Timestamp, limit: usize) -> Result<Vec<DueTimer>, LogError>;

    /// The earliest unfired timer, if any.
    fn next_timer(&self) -> Result<Option<DueTimer>, LogError>;

    fn find_idempotency(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<WorkflowId>, LogError>;

    /// Workflows of `kind` submitted by `tenant` at or after `since`.
    fn count_submitted_since(
        &self,
        tenant: &TenantId,
        kind: &str,
        since: Timestamp,
    ) -> Result<u64, LogError>;

    /// Bytes the log occupies on disk (0 for memory).
    fn size_bytes(&self) -> u64;

    /// Whether other processes may append to this log (it lives in a
    /// database they share), so that what one process keeps in memory about
    /// it can be stale. The engine then asks the log instead.
    fn has_other_writers(&self) -> bool {
        false
    }
}
