//! The rehydration's steps, one per file, and what they share: the layout of
//! a rehydration's work directory and running blocking tenant-database
//! work so that a cancel stops it.
//!
//! Layout of `<rehydrate work>/<workflow-id>/`:
//! - `bundle.zip` — the bundle as received;
//! - `bundle/` — its entries, extracted and checksum-verified by `validate`;
//! - `assets.ndjson` — the bundle's asset files (path, size, blake3), and
//!   `assets-plan.ndjson` — the asset switch `backup` staged (see
//!   `rehydrate::assets`);
//! - `report.ndjson` — the row-level validation report, if any;
//! - `backup/` — the backup of the tenant's current data (`backup.zip`,
//!   plus the snapshot files it was built from);
//! - `restore/` — the backup, extracted again, while `rollback` restores it.

pub mod assets;
pub mod backup;
pub mod load;
pub mod preview;
pub mod quiesce;
pub mod reactivate;
pub mod receive;
pub mod restore;
pub mod validate;

use super::RehydrateWorkflow;
use crate::common::io_error;
use crate::ports::tenant_writer::TenantWriter;
use crate::ports::PortError;
use ferry_engine::{StepContext, StepError, WorkflowId};
use std::path::PathBuf;

/// The directories and files of one rehydration.
#[derive(Clone, Debug)]
pub struct WorkDirs {
    pub root: PathBuf,
}

impl WorkDirs {
    pub fn new(wf: &RehydrateWorkflow, id: WorkflowId) -> Self {
        WorkDirs {
            root: wf.work_dir_of(id),
        }
    }
    pub fn bundle(&self) -> PathBuf {
        self.root.join("bundle.zip")
    }
    pub fn extracted(&self) -> PathBuf {
        self.root.join("bundle")
    }
    pub fn assets_index(&self) -> PathBuf {
        self.root.join("assets.ndjson")
    }
    pub fn assets_plan(&self) -> PathBuf {
        self.root.join("assets-plan.ndjson")
    }
    pub fn report(&self) -> PathBuf {
        self.root.join("report.ndjson")
    }
    pub fn backup_dir(&self) -> PathBuf {
        self.root.join("backup")
    }
    pub fn backup(&self) -> PathBuf {
        self.backup_dir().join("backup.zip")
    }
    pub fn restore_dir(&self) -> PathBuf {
        self.root.join("restore")
    }
    pub fn writer_dir(&self) -> PathBuf {
        self.root.join("writer")
    }
    pub async fn create(&self) -> Result<(), StepError> {
        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(|e| io_error("work_dir_failed", e))
    }
}

/// `validate`'s files (the extracted bundle, whose paths its output
/// records) are in this node's work directory. If not — validate ran on a
/// node that no longer owns the tenant — `receive` and `validate` run again
/// here; the bundle they get is the same (its blake3 is checked against the
/// input's or the export's), so their new output describes the same data.
pub(crate) async fn require_validated(
    wf: &RehydrateWorkflow,
    ctx: &StepContext,
    v: &validate::ValidateOutput,
) -> Result<(), StepError> {
    const WHAT: &str = "the validated bundle";
    const STEPS: [&str; 2] = ["receive", "validate"];
    let schema = std::path::Path::new(&v.schema_file);
    // Recorded by another node: as good as missing here.
    if !schema.starts_with(wf.work_dir_of(ctx.workflow)) {
        return Err(crate::common::work_files_lost(WHAT, &STEPS));
    }
    crate::common::require_work_file(schema, WHAT, &STEPS).await
}

/// Run blocking work against the tenant's database on the blocking pool.
/// The closure gets a fresh [`TenantWriter`]; each of its calls is one
/// transaction. A step dropped while the work runs (cancel, timeout) does
/// not stop the thread: a load checks the cancel itself, and the next load
/// of the tenant waits for it to end (see `TenantWriter::load`).
pub(crate) async fn with_writer<T: Send + 'static>(
    wf: &RehydrateWorkflow,
    ctx: &StepContext,
    f: impl FnOnce(&mut dyn TenantWriter) -> Result<T, PortError> + Send + 'static,
) -> Result<T, StepError> {
    spawn_writer(wf, ctx, f).await
}

/// [`with_writer`] started now, as a future that borrows nothing (so the
/// step can record progress while it runs).
pub(crate) fn spawn_writer<T: Send + 'static>(
    wf: &RehydrateWorkflow,
    ctx: &StepContext,
    f: impl FnOnce(&mut dyn TenantWriter) -> Result<T, PortError> + Send + 'static,
) -> impl std::future::Future<Output = Result<T, StepError>> + Send + 'static {
    let tenants = wf.deps.tenants.clone();
    let tenant = ctx.tenant.clone();
    let dir = WorkDirs::new(wf, ctx.workflow).writer_dir();
    let task = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)
            .map_err(|e| PortError::retryable("work_dir_failed", e.to_string()))?;
        let mut w = tenants.writer(&tenant, &dir)?;
        f(w.as_mut())
    });
    async move {
        task.await
            .map_err(|e| StepError::retryable("step_panicked", e.to_string()))?
            .map_err(StepError::from)
    }
}
