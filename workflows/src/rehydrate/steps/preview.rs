//! Step `preview`: what confirming would do, per table — rows that will be
//! deleted, inserted and updated, and merge conflicts — and to the
//! tenant's files (`rehydrate::assets`), computed without writing. The API
//! serves it at `GET /rehydrate/{id}/preview`; a dry run ends after it.
//! Merge conflicts are recorded, not raised here, so the operator can see
//! them; confirming such a preview is refused.
//!
//! Then, for bundles of at most `trial_rows_max` rows, the preview runs the
//! load itself as a **trial** (`load.rs`: the same transaction, every
//! constraint, trigger-free bulk checks and the verification, then rolled
//! back), so whatever the load would hit — a CHECK, domain, NOT NULL,
//! unique, exclusion or foreign-key violation, bytes that would not verify
//! — is reported before the confirmation, with nothing written: the step
//! fails with the load's own code and the report names it. The trial holds
//! the load's locks while it runs (in schema isolation the tenant's tables,
//! briefly); a larger bundle skips it (`trial` says so).

use super::validate::ValidateOutput;
use super::with_writer;
use crate::common::{output_of, to_output, StepOutput};
use crate::ports::tenant_writer::LoadWarning;
use crate::rehydrate::assets::{self, AssetCounts};
use crate::rehydrate::input::Mode;
use crate::rehydrate::{RehydrateInput, RehydrateStep, RehydrateWorkflow};
use ferry_engine::{StepContext, StepError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::BufReader;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TablePreview {
    pub table: String,
    pub rows_now: u64,
    pub will_delete: u64,
    pub will_insert: u64,
    pub will_update: u64,
    pub unchanged: u64,
    pub conflicts: u64,
}

/// The preview `GET /api/v1/tenant/rehydrate/{id}/preview` returns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewOutput {
    pub mode: String,
    pub tables: Vec<TablePreview>,
    pub will_delete: u64,
    pub will_insert: u64,
    pub will_update: u64,
    pub conflicts: u64,
    /// The trial load: `passed`, or `skipped` (too large, or merge
    /// conflicts already known); absent for previews made before trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<String>,
    /// What in the tenant's schema makes the load slow or risky (e.g. a
    /// shared table's foreign key without an index).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<LoadWarning>,
    /// The tenant's files to write and to delete (`rehydrate::assets`).
    #[serde(default)]
    pub assets: AssetCounts,
}

impl StepOutput for PreviewOutput {
    type Step = RehydrateStep;
    const STEP: RehydrateStep = RehydrateStep::Preview;
}

impl PreviewOutput {
    pub fn table(&self, name: &str) -> Option<&TablePreview> {
        self.tables.iter().find(|t| t.table == name)
    }
}

pub async fn run(
    wf: &RehydrateWorkflow,
    ctx: &mut StepContext,
    input: &RehydrateInput,
) -> Result<Value, StepError> {
    let v: ValidateOutput = output_of(ctx)?;
    super::require_validated(wf, ctx, &v).await?;
    let mode = input.mode;
    let merge_keys = input.merge_keys.clone();
    let v2 = v.clone();
    let tables = with_writer(wf, ctx, move |w| {
        let mut out = Vec::new();
        if let Some(native) = &v2.native {
            for (table, rows) in &native.row_counts {
                let now = w.count_rows(table)?;
                out.push(TablePreview {
                    table: table.clone(),
                    rows_now: now,
                    will_delete: now,
                    will_insert: *rows,
                    ..TablePreview::default()
                });
            }
            return Ok(out);
        }
        for t in &v2.tables {
            let now = w.count_rows(&t.table)?;
            let p = if mode == Mode::Merge {
                let key = merge_keys.get(&t.table).cloned().unwrap_or_default();
                let file = std::fs::File::open(&t.file).map_err(|e| {
                    crate::ports::PortError::permanent(
                        "work_file_missing",
                        format!("{}: {e}", t.table),
                    )
                })?;
                let m = w.preview_merge(&t.table, &key, &mut BufReader::new(file))?;
                TablePreview {
                    table: t.table.clone(),
                    rows_now: now,
                    will_delete: 0,
                    will_insert: m.will_insert,
                    will_update: m.will_update,
                    unchanged: m.unchanged,
                    conflicts: m.conflicts,
                }
            } else {
                TablePreview {
                    table: t.table.clone(),
                    rows_now: now,
                    will_delete: now,
                    will_insert: t.rows,
                    ..TablePreview::default()
                }
            };
            out.push(p);
        }
        Ok(out)
    })
    .await?;
    let sum = |f: fn(&TablePreview) -> u64| tables.iter().map(f).sum::<u64>();
    let mut out = PreviewOutput {
        mode: mode.as_str().to_owned(),
        will_delete: sum(|t| t.will_delete),
        will_insert: sum(|t| t.will_insert),
        will_update: sum(|t| t.will_update),
        conflicts: sum(|t| t.conflicts),
        tables,
        trial: None,
        warnings: Vec::new(),
        assets: assets::preview(wf, ctx, input, &v).await?,
    };
    let scope = super::load::scope_tables(&v);
    out.warnings = with_writer(wf, ctx, move |w| w.load_warnings(&scope)).await?;
    out.trial = Some(super::load::trial(wf, ctx, input, &v, out.conflicts > 0).await?);
    wf.audit(
        ctx,
        "REHYDRATE_PREVIEWED",
        json!({"mode": out.mode, "willDelete": out.will_delete, "willInsert": out.will_insert, "willUpdate": out.will_update, "assets": out.assets}),
    )
    .await?;
    // The wait for the confirmation is bounded: when the deadline passes
    // the durable timer cancels a rehydration still waiting (a dry run
    // waits for nothing). A repeated preview moves the deadline to its
    // own end, the moment the confirmation became possible.
    if !input.dry_run {
        let due = ctx.now() + crate::common::secs(wf.config.confirm_deadline);
        ctx.schedule_timer(super::super::CONFIRM_TIMER, due).await?;
    }
    to_output(&out)
}
