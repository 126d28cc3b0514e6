//! The export's steps, one per file, and what they share: the layout of a
//! workflow's work directory and the live
//! counters and cancel flag of the blocking tasks that dump tables (which
//! write through [`pack::PackingWriter`]).
//!
//! Layout of `<work>/<workflow-id>/`:
//! - `snapshot/` — private to the `TenantStore` (e.g. SQLite's consistent copy);
//! - `packed/` — the snapshot's entries (`database/...`), already encoded as
//!   they go into the archive (see [`pack`]);
//! - `files/` — the assets' future entries (`assets/...`), as they are;
//! - `assets.index.ndjson` — the asset entries the `assets` step collected;
//! - `out/` — the finished archive.
//!
//! Every file is written under a temporary name unique to the attempt, then
//! fsynced and renamed, so a repeated or overlapping attempt never sees a
//! half-written file under a final name.

pub mod assets;
pub mod bundle;
pub mod expire;
pub mod notify;
pub mod pack;
pub mod plan;
pub mod snapshot;
pub mod upload;

use super::ExportWorkflow;
use crate::common::io_error;
use ferry_engine::{StepError, WorkflowId};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// The directories of one export.
#[derive(Clone, Debug)]
pub struct WorkDirs {
    pub root: PathBuf,
    pub snapshot: PathBuf,
    pub packed: PathBuf,
    pub files: PathBuf,
    pub out: PathBuf,
}

impl WorkDirs {
    pub fn new(wf: &ExportWorkflow, id: WorkflowId) -> Self {
        let root = wf.work_dir_of(id);
        WorkDirs {
            snapshot: root.join("snapshot"),
            packed: root.join("packed"),
            files: root.join("files"),
            out: root.join("out"),
            root,
        }
    }

    pub fn assets_index(&self) -> PathBuf {
        self.root.join("assets.index.ndjson")
    }

    pub async fn create(&self) -> Result<(), StepError> {
        let database = self.packed.join("database");
        for d in [&self.snapshot, &database, &self.files, &self.out] {
            tokio::fs::create_dir_all(d)
                .await
                .map_err(|e| io_error("work_dir_failed", e))?;
        }
        Ok(())
    }
}

/// State shared between a step and the blocking task doing its I/O: live
/// counters for progress, and a flag that stops the task at its next write.
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub rows: AtomicU64,
    pub bytes: AtomicU64,
    pub cancel: AtomicBool,
}

/// Sets the cancel flag when dropped: the engine drops a step's future on
/// cancel or timeout, and the blocking task it started must stop too.
pub(crate) struct CancelOnDrop(pub Arc<Live>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel.store(true, Ordering::SeqCst);
    }
}

pub use crate::common::table_file_stem;
