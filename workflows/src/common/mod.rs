//! What the export and the rehydration share, so that neither reaches into
//! the other: typed steps and outputs ([`steps`]), the parts of a request
//! both accept ([`input`]), the tenant's files as both read them
//! ([`tenant_files`]), what of a step output may be shown to a client
//! ([`public`]), and small helpers for steps: retry policies, work-file I/O,
//! step errors and outputs.

pub mod input;
pub mod public;
pub mod steps;
pub mod tenant_files;

use crate::bundle::writer::WriteError;
use ferry_engine::{RetryPolicy, StepError};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::Path;
use std::time::Duration;

pub use steps::{output_of, recorded, StepOutput, WorkflowStep};

/// Actor of audit entries the engine writes itself.
pub const AUDIT_ACTOR: &str = crate::step_audit::ACTOR;

/// A step's or workflow's error as the status views show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusError {
    pub code: String,
    pub message: String,
}

/// A retry policy: `attempts_max` attempts, backoff doubling from `initial`
/// up to `max`, with half of it jittered.
pub(crate) fn policy(attempts_max: u32, initial: Duration, max: Duration) -> RetryPolicy {
    RetryPolicy {
        attempts_max,
        backoff_initial: initial,
        backoff_max: max,
        multiplier: 2.0,
        jitter: 0.5,
    }
}

/// A retryable error from local I/O.
pub(crate) fn io_error(code: &str, e: io::Error) -> StepError {
    StepError::retryable(code, e.to_string())
}

/// Serialize a step output.
pub(crate) fn to_output<T: Serialize>(v: &T) -> Result<serde_json::Value, StepError> {
    serde_json::to_value(v).map_err(|e| StepError::permanent("invalid_output", e.to_string()))
}

/// A bundle writer's error as a step error (its code and retryability).
pub(crate) fn write_err(e: WriteError) -> StepError {
    StepError {
        code: e.code().to_owned(),
        message: e.to_string(),
        retryable: e.retryable(),
        redo: Vec::new(),
    }
}

/// A file an earlier step left in this node's work directory must be
/// here. If it is not — the step ran on another node, which no longer owns
/// the tenant (a takeover), or the file was removed — `steps` run again here
/// (`StepError::redo`). `what` names the file without its server path.
pub(crate) async fn require_work_file(
    path: &Path,
    what: &str,
    steps: &[&str],
) -> Result<(), StepError> {
    match tokio::fs::metadata(path).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(work_files_lost(what, steps)),
        Err(e) => Err(io_error("work_dir_failed", e)),
    }
}

/// `what`, written by `steps`, is not in this node's work directory: they
/// run again (see [`require_work_file`]).
pub(crate) fn work_files_lost(what: &str, steps: &[&str]) -> StepError {
    StepError::redo(
        steps,
        "work_files_lost",
        format!(
            "{what} is not in this node's work directory (written on another node, or removed); {} run again",
            steps.join(", ")
        ),
    )
}

/// Remove a directory tree; a missing one is fine.
pub(crate) async fn remove_dir_all_idempotent(path: &Path) -> io::Result<()> {
    match tokio::fs::remove_dir_all(path).await {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// fsync a directory (after a rename into it).
pub(crate) fn sync_dir_blocking(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Whole seconds, for timestamps recorded in outputs and links.
pub(crate) fn secs(d: Duration) -> chrono::Duration {
    chrono::Duration::seconds(d.as_secs().min(i64::MAX as u64) as i64)
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
