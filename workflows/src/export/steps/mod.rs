//! The export's steps, one per file, and what they share: the layout of a
//! workflow's work directory, reading earlier steps' outputs, and the live
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

use super::input::ExportInput;
use super::ExportWorkflow;
use ferry_engine::{StepContext, StepError, WorkflowId};
use serde::de::DeserializeOwned;
use std::io;
use std::path::{Path, PathBuf};
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

/// A retryable error from local I/O.
pub(crate) fn io_error(code: &str, e: io::Error) -> StepError {
    StepError::retryable(code, e.to_string())
}

/// The workflow's validated input.
pub(crate) fn input_of(ctx: &StepContext) -> Result<ExportInput, StepError> {
    ExportInput::from_value(&ctx.input).map_err(|e| StepError::permanent(e.code, e.message))
}

/// The recorded output of an earlier step.
pub(crate) fn output_of<T: DeserializeOwned>(
    ctx: &StepContext,
    step: &str,
) -> Result<T, StepError> {
    let v = ctx.output(step).ok_or_else(|| {
        StepError::permanent(
            "missing_output",
            format!("step {step} has no recorded output"),
        )
    })?;
    serde_json::from_value(v.clone())
        .map_err(|e| StepError::permanent("invalid_output", format!("output of {step}: {e}")))
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

/// fsync a directory (after a rename into it).
pub(crate) fn sync_dir_blocking(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The file stem used for a table: the name itself when it is a plain
/// identifier, otherwise a stable hash of it (table names come from the
/// database and may hold characters that are unsafe in file names).
pub fn table_file_stem(table: &str) -> String {
    let plain = !table.is_empty()
        && table.len() <= 100
        && !table.starts_with('.')
        && table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if plain {
        table.to_owned()
    } else {
        format!("t_{}", &blake3::hash(table.as_bytes()).to_hex()[..16])
    }
}

/// Whole seconds, for timestamps recorded in outputs and links.
pub(crate) fn secs(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::seconds(d.as_secs().min(i64::MAX as u64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_stems_are_safe() {
        assert_eq!(table_file_stem("orders"), "orders");
        assert_eq!(table_file_stem("order_items-2"), "order_items-2");
        for odd in ["../x", "a/b", "", ".hidden", "naïve", "a b"] {
            let s = table_file_stem(odd);
            assert!(s.starts_with("t_") && s.len() == 18, "{odd:?} -> {s}");
        }
    }
}
