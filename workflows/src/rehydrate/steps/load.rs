//! Step `load`: the atomic switch. Delete, load and verify run in **one**
//! transaction of the tenant's database ([`TenantWriter::load`]), which
//! commits only after every table was verified against the bundle:
//!
//! - `replace`/`partial` from `lite`: every table's rows and content hash
//!   (blake3 of its `lite` NDJSON in primary-key order) equal the
//!   manifest's entry;
//! - `merge`: every table holds its rows from before plus the inserted ones;
//! - `native`: every table's row count equals the dump's.
//!
//! So the tenant holds either its old rows or the verified new ones, never
//! anything in between: a failure, a cancel, a lost connection or the
//! process killed before the commit leave the old rows, with nothing to
//! undo. The step is safe to repeat from the start: a crash after the
//! commit, before the step's success was recorded, loads the same rows
//! again. A verification that fails is permanent, which ends the
//! workflow (the rollback then finds the old data in place).
//!
//! The rollback after success (`restore.rs`) loads the backup through the
//! same [`atomic_load`].

use super::validate::{TableFile, ValidateOutput};
use super::WorkDirs;
use crate::common::{output_of, to_output, StepOutput};
use crate::ports::tenant_writer::{
    LoadObserver, LoadOutcome, LoadPlan, LoadSource, TableDigest, TableSource, TableWrite,
    TenantWriter, Verify, WriteMode,
};
use crate::ports::PortError;
use crate::rehydrate::input::{Mode, RehydrateInput};
use crate::rehydrate::{RehydrateStep, RehydrateWorkflow};
use ferry_engine::{Progress, StepContext, StepError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::BufReader;
use std::path::PathBuf;
use std::time::Duration;

/// How often a running load's progress is recorded.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadOutput {
    /// Rows the load deleted from the replaced tables.
    pub deleted: u64,
    pub tables: Vec<TableWrite>,
    /// Rows inserted and updated.
    pub rows: u64,
}

impl StepOutput for LoadOutput {
    type Step = RehydrateStep;
    const STEP: RehydrateStep = RehydrateStep::Load;
}

/// The files a load reads, in the work directory.
pub(crate) enum LoadFiles {
    /// `lite` table files, each with its write mode.
    Lite(Vec<(TableFile, WriteMode)>),
    /// A native dump.
    Native { format: String, file: String },
}

impl LoadFiles {
    fn rows(&self) -> u64 {
        match self {
            LoadFiles::Lite(files) => files.iter().map(|(f, _)| f.rows).sum(),
            LoadFiles::Native { .. } => 0,
        }
    }
}

/// The expected content of `lite` files: their manifest entries.
pub(crate) fn digests_of(files: &[TableFile]) -> Vec<TableDigest> {
    files
        .iter()
        .map(|f| TableDigest {
            table: f.table.clone(),
            rows: f.rows,
            blake3: f.blake3.clone(),
        })
        .collect()
}

/// Hears the load from inside its transaction: stops it when the workflow
/// is cancelled, passes the failpoints `<point>.inside` (at every progress
/// report) and `<point>.commit` (before the commit), and publishes the
/// running row count.
struct StepObserver {
    cancelled: Box<dyn Fn() -> bool + Send>,
    point: &'static str,
    progress: tokio::sync::watch::Sender<u64>,
    table: String,
    finished: u64,
}

impl StepObserver {
    fn check(&self, point: &str) -> Result<(), PortError> {
        if (self.cancelled)() {
            return Err(PortError::permanent(
                "cancelled",
                "the workflow was cancelled; nothing was committed",
            ));
        }
        crate::failpoints::hit_blocking(point).map_err(|e| PortError {
            code: e.code,
            message: e.message,
            retryable: e.retryable,
        })
    }
}

impl LoadObserver for StepObserver {
    fn rows(&mut self, table: &str, rows: u64) -> Result<(), PortError> {
        if table != self.table {
            self.table = table.to_owned();
            self.finished = *self.progress.borrow();
        }
        self.progress.send_replace(self.finished + rows);
        self.check(&format!("{}.inside", self.point))
    }

    fn before_commit(&mut self) -> Result<(), PortError> {
        self.check(&format!("{}.commit", self.point))
    }
}

/// One atomic load to run (see [`TenantWriter::load`]).
pub(crate) struct LoadRequest {
    pub files: LoadFiles,
    pub verify: Verify,
    pub unless_verified: bool,
    /// Roll back instead of committing (the preview's trial).
    pub trial: bool,
    /// Names the failpoints (`rehydrate.load`, `rehydrate.rollback`,
    /// `rehydrate.trial`).
    pub point: &'static str,
}

/// Run one atomic load on a blocking thread, recording its progress every
/// few seconds.
pub(crate) async fn atomic_load(
    wf: &RehydrateWorkflow,
    ctx: &mut StepContext,
    request: LoadRequest,
) -> Result<LoadOutcome, StepError> {
    let total = request.files.rows().max(1);
    let (progress, mut heard) = tokio::sync::watch::channel(0u64);
    let observer = StepObserver {
        cancelled: Box::new(ctx.cancel_flag()),
        point: request.point,
        progress,
        table: String::new(),
        finished: 0,
    };
    let task = super::spawn_writer(wf, ctx, move |w| run_load(w, request, observer));
    tokio::pin!(task);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            done = &mut task => return done,
            _ = tick.tick() => {
                if !heard.has_changed().unwrap_or(false) {
                    continue;
                }
                let rows = *heard.borrow_and_update();
                let progress = Progress {
                    fraction: (rows as f64 / total as f64).min(1.0),
                    rows,
                    bytes: 0,
                };
                // Progress is only shown; a failure to record it (a cancel)
                // does not stop the load, whose observer sees the cancel.
                if let Err(e) = ctx.checkpoint(json!({"rows": rows}), Some(progress)).await {
                    tracing::debug!(workflow = %ctx.workflow, error = %e.message, "load progress not recorded");
                }
            }
        }
    }
}

/// The blocking part: open the files, then one [`TenantWriter::load`].
fn run_load(
    w: &mut dyn TenantWriter,
    request: LoadRequest,
    mut observer: StepObserver,
) -> Result<LoadOutcome, PortError> {
    let LoadRequest {
        files,
        verify,
        unless_verified,
        trial,
        ..
    } = request;
    match files {
        LoadFiles::Native { format, file } => {
            let dump = PathBuf::from(file);
            let plan = LoadPlan {
                source: LoadSource::Native {
                    format,
                    dump: &dump,
                },
                verify,
                unless_verified,
                trial,
            };
            w.load(plan, &mut observer)
        }
        LoadFiles::Lite(files) => {
            let mut readers = Vec::with_capacity(files.len());
            for (f, _) in &files {
                let file = std::fs::File::open(&f.file).map_err(|e| {
                    PortError::permanent("work_file_missing", format!("{}: {e}", f.table))
                })?;
                readers.push(BufReader::with_capacity(256 * 1024, file));
            }
            let sources: Vec<TableSource<'_>> = files
                .iter()
                .zip(readers.iter_mut())
                .map(|((f, mode), r)| TableSource {
                    table: f.table.clone(),
                    mode: mode.clone(),
                    rows: r,
                })
                .collect();
            let plan = LoadPlan {
                source: LoadSource::Lite(sources),
                verify,
                unless_verified,
                trial,
            };
            w.load(plan, &mut observer)
        }
    }
}

/// What the forward load of this rehydration writes and verifies.
pub(crate) fn forward_load(input: &RehydrateInput, v: &ValidateOutput) -> (LoadFiles, Verify) {
    match &v.native {
        Some(native) => (
            LoadFiles::Native {
                format: native.format.clone(),
                file: native.file.clone(),
            },
            Verify::Counts(native.row_counts.clone()),
        ),
        None if input.mode == Mode::Merge => (
            LoadFiles::Lite(
                v.tables
                    .iter()
                    .map(|t| {
                        let key = input.merge_key(&t.table);
                        (t.clone(), WriteMode::Merge { key })
                    })
                    .collect(),
            ),
            Verify::Merged,
        ),
        None => (
            LoadFiles::Lite(
                v.tables
                    .iter()
                    .map(|t| (t.clone(), WriteMode::Replace))
                    .collect(),
            ),
            Verify::Digests(digests_of(&v.tables)),
        ),
    }
}

/// The tables a rehydration writes.
pub(crate) fn scope_tables(v: &ValidateOutput) -> Vec<String> {
    match &v.native {
        Some(n) => n.row_counts.iter().map(|(t, _)| t.clone()).collect(),
        None => v.scope.clone(),
    }
}

/// The preview's trial of the forward load (see `preview.rs`): `passed`,
/// or `skipped` when the bundle holds more than `trial_rows_max` rows or
/// `known_conflicts` already refuse the confirmation. A load that would
/// fail fails the preview with its code, reported in the row-level report.
pub(crate) async fn trial(
    wf: &RehydrateWorkflow,
    ctx: &mut StepContext,
    input: &RehydrateInput,
    v: &ValidateOutput,
    known_conflicts: bool,
) -> Result<String, StepError> {
    let rows: u64 = match &v.native {
        Some(native) => native.row_counts.iter().map(|(_, n)| n).sum(),
        None => v.tables.iter().map(|t| t.rows).sum(),
    };
    if known_conflicts || rows > wf.config.trial_rows_max {
        return Ok("skipped".to_owned());
    }
    let (files, verify) = forward_load(input, v);
    let request = LoadRequest {
        files,
        verify,
        unless_verified: false,
        trial: true,
        point: "rehydrate.trial",
    };
    match atomic_load(wf, ctx, request).await {
        Ok(_) => Ok("passed".to_owned()),
        Err(e) if !e.retryable && e.code != "cancelled" => {
            let report = WorkDirs::new(wf, ctx.workflow).report();
            crate::rehydrate::validate::write_load_report(&report, &e.code, &e.message)
                .map_err(|io| super::io_error("report_write_failed", io))?;
            Err(StepError::permanent(
                e.code,
                format!(
                    "a trial of the load failed, nothing was written: {}",
                    e.message
                ),
            ))
        }
        Err(e) => Err(e),
    }
}

pub async fn run(
    wf: &RehydrateWorkflow,
    ctx: &mut StepContext,
    input: &RehydrateInput,
) -> Result<Value, StepError> {
    let v: ValidateOutput = output_of(ctx)?;
    super::require_validated(wf, ctx, &v).await?;
    let (files, verify) = forward_load(input, &v);
    WorkDirs::new(wf, ctx.workflow).create().await?;
    let request = LoadRequest {
        files,
        verify,
        unless_verified: false,
        trial: false,
        point: "rehydrate.load",
    };
    let outcome = atomic_load(wf, ctx, request).await?;
    let out = LoadOutput {
        deleted: outcome.deleted,
        rows: outcome.tables.iter().map(|t| t.inserted + t.updated).sum(),
        tables: outcome.tables,
    };
    wf.audit(
        ctx,
        "REHYDRATE_LOADED",
        json!({"deleted": out.deleted, "rows": out.rows, "tables": out.tables.len(), "verified": true}),
    )
    .await?;
    if let Some(m) = &wf.metrics {
        let received: super::receive::ReceiveOutput = output_of(ctx)?;
        let mode = input.mode.as_str();
        m.rows_imported.with_label_values(&[mode]).inc_by(out.rows);
        m.bytes_imported
            .with_label_values(&[mode])
            .inc_by(received.bytes);
    }
    to_output(&out)
}
