//! Step `snapshot`: read every selected table from ONE consistent snapshot
//! of the tenant and stream it to a file in the work directory.
//!
//! Dumps are blocking (database drivers), so they run on
//! `spawn_blocking`, writing through a [`PackingWriter`]: while the dump
//! thread reads and encodes rows, a second thread hashes and deflates what
//! it wrote, so each file's blake3, size and ZIP encoding are known the
//! moment it is complete, and the `bundle` step only copies. After
//! each table the step records a checkpoint listing the finished files; a
//! resumed step skips them, provided the snapshot is durable (the same
//! snapshot survives the restart) and the files are still there. A
//! non-durable snapshot starts over, because tables read from two snapshots
//! would not be consistent with each other. Between tables (and, through the
//! writer, within one) the step stops at once when the workflow is cancelled.

use super::pack::{PackedFile, PackingWriter};
use super::plan::{manifest_date_range, select_schema, table_format};
use super::{CancelOnDrop, Live, WorkDirs};
use crate::bundle::{ManifestDateRange, ManifestEntry, Packed};
use crate::common::{io_error, sync_dir_blocking, table_file_stem, StepOutput};
use crate::export::input::{ExportInput, Profile};
use crate::export::{ExportStep, ExportWorkflow};
use crate::ports::tenant::{SchemaInfo, TableFormat, TenantSnapshot};
use crate::ports::PortError;
use ferry_engine::{Progress, StepContext, StepError, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How often progress of a long table is recorded.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotOutput {
    pub taken_at: Timestamp,
    /// `ndjson`, `csv` or the native format.
    pub format: String,
    pub engine: String,
    pub isolation: String,
    pub tables: Vec<String>,
    pub row_count: Option<u64>,
    pub schema_fingerprint: String,
    pub date_range: Option<ManifestDateRange>,
    /// The files written, paths relative to `packed/` (or, for exports
    /// snapshotted before files were packed, to `files/`).
    pub entries: Vec<ManifestEntry>,
    pub bytes: u64,
    /// How each entry's work file is encoded, by entry path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub packed: BTreeMap<String, Packed>,
}

impl StepOutput for SnapshotOutput {
    type Step = ExportStep;
    const STEP: ExportStep = ExportStep::Snapshot;
}

/// What a resumed attempt continues from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotCheckpoint {
    taken_at: Option<Timestamp>,
    done: Vec<ManifestEntry>,
    #[serde(default)]
    packed: BTreeMap<String, Packed>,
}

type Snap = Box<dyn TenantSnapshot>;

fn port(e: PortError) -> StepError {
    e.into()
}

/// Write one file atomically on the blocking pool: `produce` streams into a
/// packing writer; the file appears under `final_path` only when complete.
fn write_file_blocking<T>(
    final_path: &Path,
    tmp_tag: &str,
    live: &Arc<Live>,
    level: u32,
    produce: impl FnOnce(&mut PackingWriter) -> Result<T, PortError>,
) -> Result<(T, PackedFile), StepError> {
    let dir = final_path.parent().unwrap_or(Path::new("."));
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{tmp_tag}.tmp"));
    let result = (|| {
        let mut w = PackingWriter::create(&tmp, level, live.clone())
            .map_err(|e| io_error("snapshot_io", e))?;
        let value = produce(&mut w).map_err(port)?;
        let packed = w.finish().map_err(|e| io_error("snapshot_io", e))?;
        std::fs::rename(&tmp, final_path).map_err(|e| io_error("snapshot_io", e))?;
        sync_dir_blocking(dir).map_err(|e| io_error("snapshot_io", e))?;
        Ok((value, packed))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        if live.cancel.load(Ordering::SeqCst) {
            return Err(StepError::permanent(
                "cancelled",
                "the workflow was cancelled",
            ));
        }
    }
    result
}

/// Await a blocking task, recording progress every few seconds and raising
/// the cancel flag as soon as the workflow is cancelled.
async fn await_blocking<T: Send + 'static>(
    ctx: &mut StepContext,
    handle: tokio::task::JoinHandle<T>,
    live: &Arc<Live>,
    checkpoint: &Value,
    fraction: f64,
) -> Result<T, StepError> {
    let mut handle = handle;
    let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
    tick.tick().await;
    loop {
        tokio::select! {
            joined = &mut handle => {
                return joined.map_err(|e| StepError::retryable("snapshot_panicked", e.to_string()));
            }
            _ = tick.tick() => {
                if ctx.is_cancelled() {
                    live.cancel.store(true, Ordering::SeqCst);
                }
                let progress = Progress {
                    fraction,
                    rows: live.rows.load(Ordering::Relaxed),
                    bytes: live.bytes.load(Ordering::Relaxed),
                };
                ctx.checkpoint(checkpoint.clone(), Some(progress)).await?;
            }
        }
    }
}

/// Open the snapshot and read its schema, on the blocking pool.
async fn open_snapshot(
    wf: &ExportWorkflow,
    ctx: &StepContext,
    dir: PathBuf,
) -> Result<(Snap, SchemaInfo), StepError> {
    let tenants = wf.deps.tenants.clone();
    let tenant = ctx.tenant.clone();
    tokio::task::spawn_blocking(move || -> Result<(Snap, SchemaInfo), PortError> {
        let mut snap = tenants.snapshot(&tenant, &dir)?;
        let schema = snap.schema()?;
        Ok((snap, schema))
    })
    .await
    .map_err(|e| StepError::retryable("snapshot_panicked", e.to_string()))?
    .map_err(port)
}

/// Finished entries of an earlier attempt whose packed files are still
/// intact.
async fn still_present(
    packed_dir: &Path,
    done: Vec<ManifestEntry>,
    packed: &BTreeMap<String, Packed>,
) -> Vec<ManifestEntry> {
    let mut kept = Vec::with_capacity(done.len());
    for e in done {
        let Some(p) = packed.get(&e.path) else {
            continue;
        };
        match tokio::fs::metadata(packed_dir.join(&e.path)).await {
            Ok(m) if m.is_file() && m.len() == p.bytes => kept.push(e),
            _ => {}
        }
    }
    kept
}

/// The manifest entry of a packed work file.
fn entry_of(
    path: String,
    file: &PackedFile,
    rows: Option<u64>,
    table: Option<String>,
) -> ManifestEntry {
    ManifestEntry {
        path,
        bytes: file.bytes,
        rows,
        table,
        blake3: file.blake3.clone(),
    }
}

pub async fn run(
    wf: &ExportWorkflow,
    ctx: &mut StepContext,
    input: &ExportInput,
) -> Result<Value, StepError> {
    let request = input.request.clone();
    let dirs = WorkDirs::new(wf, ctx.workflow);
    dirs.create().await?;
    let db_dir = dirs.packed.join("database");
    let level = wf.config.deflate_level;

    let (snap, full_schema) = open_snapshot(wf, ctx, dirs.snapshot.clone()).await?;
    let schema = select_schema(&full_schema, &request)?;
    let previous: SnapshotCheckpoint = ctx
        .checkpoint_value()
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let (taken_at, mut done) = if snap.durable() {
        let kept = still_present(&dirs.packed, previous.done, &previous.packed).await;
        (previous.taken_at.unwrap_or_else(|| ctx.now()), kept)
    } else {
        (ctx.now(), Vec::new())
    };
    let mut packed: BTreeMap<String, Packed> = previous
        .packed
        .into_iter()
        .filter(|(path, _)| done.iter().any(|e| &e.path == path))
        .collect();
    let live = Arc::new(Live::default());
    let _stop_on_drop = CancelOnDrop(live.clone());
    let tag = format!("{}-{}", ctx.attempt, uuid::Uuid::new_v4().simple());

    // database/schema.json, from the snapshot actually read.
    let schema_entry = {
        let bytes = serde_json::to_vec_pretty(&schema)
            .map_err(|e| StepError::permanent("invalid_schema", e.to_string()))?;
        let path = db_dir.join("schema.json");
        let live2 = live.clone();
        let tag2 = tag.clone();
        let (_, file) = tokio::task::spawn_blocking(move || {
            write_file_blocking(&path, &tag2, &live2, level, |w| {
                std::io::Write::write_all(w, &bytes)
                    .map_err(|e| PortError::retryable("snapshot_io", e.to_string()))
            })
        })
        .await
        .map_err(|e| StepError::retryable("snapshot_panicked", e.to_string()))??;
        let path = "database/schema.json".to_owned();
        packed.insert(path.clone(), file.packed.clone());
        entry_of(path, &file, None, None)
    };

    let column = wf.config.analytics_timestamp_column.clone();
    let mut snap = Some(snap);
    let format_name;
    let mut table_entries: Vec<ManifestEntry> = Vec::new();
    match request.profile {
        Profile::Native => {
            ctx.check_cancelled()?;
            let checkpoint = json!(SnapshotCheckpoint {
                taken_at: Some(taken_at),
                ..SnapshotCheckpoint::default()
            });
            let mut s = snap
                .take()
                .ok_or_else(|| StepError::retryable("snapshot_lost", "snapshot unavailable"))?;
            let tmp_final = db_dir.join(format!(".native.{tag}"));
            let live2 = live.clone();
            let tag2 = tag.clone();
            let handle = tokio::task::spawn_blocking(move || {
                let r = write_file_blocking(&tmp_final, &tag2, &live2, level, |w| s.dump_native(w));
                (s, r, tmp_final)
            });
            let (_s, r, staged) = await_blocking(ctx, handle, &live, &checkpoint, 0.0).await?;
            let (info, file) = r?;
            if !crate::bundle::manifest::entry_path_is_safe(&info.file_name)
                || info.file_name.contains('/')
            {
                return Err(StepError::permanent(
                    "invalid_native_name",
                    format!("unsafe native file name {:?}", info.file_name),
                ));
            }
            let final_path = db_dir.join(&info.file_name);
            tokio::fs::rename(&staged, &final_path)
                .await
                .map_err(|e| io_error("snapshot_io", e))?;
            format_name = info.format;
            let path = format!("database/{}", info.file_name);
            packed.insert(path.clone(), file.packed.clone());
            table_entries.push(entry_of(path, &file, None, None));
        }
        Profile::Lite | Profile::Analytics => {
            let ext = if request.profile == Profile::Lite {
                "ndjson"
            } else {
                "csv"
            };
            format_name = ext.to_owned();
            let total = schema.tables.len().max(1) as f64;
            for (i, table) in schema.tables.iter().enumerate() {
                let path = format!("database/{}.{ext}", table_file_stem(&table.name));
                if let Some(e) = done
                    .iter()
                    .find(|e| e.table.as_deref() == Some(table.name.as_str()) && e.path == path)
                {
                    table_entries.push(e.clone());
                    continue;
                }
                ctx.check_cancelled()?;
                let checkpoint = json!(SnapshotCheckpoint {
                    taken_at: Some(taken_at),
                    done: done.clone(),
                    packed: packed.clone(),
                });
                let format: TableFormat = table_format(&request, table, &column);
                let mut s = snap
                    .take()
                    .ok_or_else(|| StepError::retryable("snapshot_lost", "snapshot unavailable"))?;
                let final_path = dirs.packed.join(&path);
                let name = table.name.clone();
                let live2 = live.clone();
                let tag2 = tag.clone();
                let rows_before = done.iter().filter_map(|e| e.rows).sum::<u64>();
                let handle = tokio::task::spawn_blocking(move || {
                    let live3 = live2.clone();
                    let r = write_file_blocking(&final_path, &tag2, &live2, level, |w| {
                        s.dump_table(&name, &format, w, &mut |rows| {
                            live3.rows.store(rows_before + rows, Ordering::Relaxed);
                        })
                    });
                    (s, r)
                });
                let (s, r) =
                    await_blocking(ctx, handle, &live, &checkpoint, i as f64 / total).await?;
                snap = Some(s);
                let (stats, file) = r?;
                packed.insert(path.clone(), file.packed.clone());
                let entry = entry_of(path, &file, Some(stats.rows), Some(table.name.clone()));
                done.push(entry.clone());
                table_entries.push(entry);
                live.rows
                    .store(done.iter().filter_map(|e| e.rows).sum(), Ordering::Relaxed);
                let progress = Progress {
                    fraction: (i + 1) as f64 / total,
                    rows: live.rows.load(Ordering::Relaxed),
                    bytes: live.bytes.load(Ordering::Relaxed),
                };
                ctx.checkpoint(
                    json!(SnapshotCheckpoint {
                        taken_at: Some(taken_at),
                        done: done.clone(),
                        packed: packed.clone(),
                    }),
                    Some(progress),
                )
                .await?;
            }
        }
    }

    let row_count = match request.profile {
        Profile::Native => None,
        _ => Some(table_entries.iter().filter_map(|e| e.rows).sum()),
    };
    let mut entries = vec![schema_entry];
    entries.extend(table_entries);
    let out = SnapshotOutput {
        taken_at,
        format: format_name,
        engine: wf.deps.tenants.engine().to_owned(),
        isolation: wf.deps.tenants.isolation().to_owned(),
        tables: schema.tables.iter().map(|t| t.name.clone()).collect(),
        row_count,
        schema_fingerprint: schema.fingerprint(),
        date_range: manifest_date_range(&request, &column),
        bytes: entries.iter().map(|e| e.bytes).sum(),
        entries,
        packed,
    };
    wf.audit(
        ctx,
        "EXPORT_SNAPSHOT_TAKEN",
        json!({
            "takenAt": out.taken_at,
            "format": out.format,
            "tables": out.tables.len(),
            "rowCount": out.row_count,
            "bytes": out.bytes,
            "schemaFingerprint": out.schema_fingerprint,
        }),
    )
    .await?;
    serde_json::to_value(&out).map_err(|e| StepError::permanent("invalid_output", e.to_string()))
}
