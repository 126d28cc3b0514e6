//! Step `import`: load the bundle into the tenant.
//!
//! `lite` bundles load group by group in foreign-key order (`groups.rs`:
//! one table, or the tables of one cycle), each group in one transaction
//! that first empties its tables (replace) or upserts by key (merge), so a
//! group interrupted by a crash is simply loaded again. After each group
//! the step records a checkpoint naming the finished tables; a resumed step
//! skips them. Sequences are then moved past the largest imported values.
//! `native` bundles are restored by the tenant store in one transaction.
//! The same loader restores a backup during rollback (`restore.rs`).

use super::validate::{bundle_schema, TableFile, ValidateOutput};
use super::{input_of, output_of, to_output, with_writer};
use crate::ports::tenant::SchemaInfo;
use crate::ports::tenant_writer::{TableSource, TableWrite, WriteMode};
use crate::ports::PortError;
use crate::rehydrate::groups::import_groups;
use crate::rehydrate::input::Mode;
use crate::rehydrate::RehydrateWorkflow;
use ferry_engine::{Progress, StepContext, StepError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::BufReader;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportOutput {
    pub tables: Vec<TableWrite>,
    pub rows: u64,
}

impl ImportOutput {
    pub fn table(&self, name: &str) -> Option<&TableWrite> {
        self.tables.iter().find(|t| t.table == name)
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    done: Vec<TableWrite>,
}

/// Load `files` group by group, checkpointing after each group, then reset
/// sequences. With `resume`, groups a checkpoint of an interrupted attempt
/// names as done are skipped; without it everything loads again.
pub(crate) async fn load_lite(
    wf: &RehydrateWorkflow,
    ctx: &mut StepContext,
    schema: &SchemaInfo,
    files: &[TableFile],
    resume: bool,
    mode_of: impl Fn(&str) -> WriteMode,
) -> Result<Vec<TableWrite>, StepError> {
    let in_scope: Vec<_> = schema
        .tables
        .iter()
        .filter(|t| files.iter().any(|f| f.table == t.name))
        .cloned()
        .collect();
    let groups = import_groups(&in_scope, schema.engine == "sqlite");
    let mut cp: Checkpoint = ctx
        .checkpoint_value()
        .filter(|_| resume)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let total_rows: u64 = files.iter().map(|f| f.rows).sum::<u64>().max(1);
    for group in groups {
        if group.iter().all(|t| cp.done.iter().any(|d| &d.table == t)) {
            continue;
        }
        ctx.check_cancelled()?;
        let members: Vec<(TableFile, WriteMode)> = group
            .iter()
            .filter_map(|t| files.iter().find(|f| &f.table == t))
            .map(|f| (f.clone(), mode_of(&f.table)))
            .collect();
        let written = with_writer(wf, ctx, move |w| {
            let mut readers = Vec::with_capacity(members.len());
            for (f, _) in &members {
                let file = std::fs::File::open(&f.file).map_err(|e| {
                    PortError::permanent("work_file_missing", format!("{}: {e}", f.table))
                })?;
                readers.push(BufReader::with_capacity(256 * 1024, file));
            }
            let mut sources: Vec<TableSource<'_>> = members
                .iter()
                .zip(readers.iter_mut())
                .map(|((f, mode), r)| TableSource {
                    table: f.table.clone(),
                    mode: mode.clone(),
                    rows: r,
                })
                .collect();
            w.import_group(&mut sources, &mut |_| {})
        })
        .await?;
        cp.done.extend(written);
        let done_rows: u64 = cp.done.iter().map(|t| t.inserted + t.updated).sum();
        let progress = Progress {
            fraction: (done_rows as f64 / total_rows as f64).min(1.0),
            rows: done_rows,
            bytes: 0,
        };
        ctx.checkpoint(
            serde_json::to_value(&cp).expect("checkpoint"),
            Some(progress),
        )
        .await?;
        // Between two groups: some tables loaded, others not yet.
        crate::failpoints::hit(if resume {
            "rehydrate.import.inside"
        } else {
            "rehydrate.rollback.inside"
        })
        .await?;
    }
    with_writer(wf, ctx, |w| w.reset_sequences()).await?;
    Ok(cp.done)
}

pub async fn run(wf: &RehydrateWorkflow, ctx: &mut StepContext) -> Result<Value, StepError> {
    let input = input_of(ctx)?;
    let v: ValidateOutput = output_of(ctx, "validate")?;
    let tables = match &v.native {
        Some(native) => {
            let (format, file) = (native.format.clone(), native.file.clone());
            with_writer(wf, ctx, move |w| {
                w.restore_native(&format, std::path::Path::new(&file))
            })
            .await?;
            native
                .row_counts
                .iter()
                .map(|(t, n)| TableWrite {
                    table: t.clone(),
                    inserted: *n,
                    updated: 0,
                })
                .collect()
        }
        None => {
            let schema = bundle_schema(&v).await?;
            let merge = input.mode == Mode::Merge;
            load_lite(wf, ctx, &schema, &v.tables, true, |t| {
                if merge {
                    WriteMode::Merge {
                        key: input.merge_key(t),
                    }
                } else {
                    WriteMode::Replace
                }
            })
            .await?
        }
    };
    let out = ImportOutput {
        rows: tables.iter().map(|t| t.inserted + t.updated).sum(),
        tables,
    };
    wf.audit(
        ctx,
        "REHYDRATE_IMPORTED",
        json!({"rows": out.rows, "tables": out.tables.len()}),
    )
    .await?;
    to_output(&out)
}
