//! Step `verify`: the tenant now holds exactly what the bundle says.
//!
//! `replace`/`partial` from `lite`: every table's content hash (blake3 of
//! its `lite` NDJSON in primary-key order) and row count equal the
//! manifest's entry. `merge`: every table holds its rows from before plus
//! the inserted ones. `native`: every table's row count equals the dump's.
//! A mismatch is permanent, which makes the engine roll back.

use super::delete::DeleteOutput;
use super::import::ImportOutput;
use super::validate::ValidateOutput;
use super::{input_of, output_of, to_output, with_writer};
use crate::rehydrate::input::Mode;
use crate::rehydrate::RehydrateWorkflow;
use ferry_engine::{StepContext, StepError};
use serde_json::{json, Value};

/// Tables whose content hash or rows differ from `(table, rows, blake3)`.
pub(crate) async fn hash_mismatches(
    wf: &RehydrateWorkflow,
    ctx: &StepContext,
    expected: Vec<(String, u64, String)>,
) -> Result<Vec<String>, StepError> {
    with_writer(wf, ctx, move |w| {
        let mut bad = Vec::new();
        for (table, rows, blake3) in &expected {
            let d = w.content_hash(table)?;
            if d.rows != *rows || &d.blake3 != blake3 {
                bad.push(table.clone());
            }
        }
        Ok(bad)
    })
    .await
}

/// Tables whose row count differs from `(table, rows)`.
async fn count_mismatches(
    wf: &RehydrateWorkflow,
    ctx: &StepContext,
    expected: Vec<(String, u64)>,
) -> Result<Vec<String>, StepError> {
    with_writer(wf, ctx, move |w| {
        let mut bad = Vec::new();
        for (t, n) in &expected {
            if w.count_rows(t)? != *n {
                bad.push(t.clone());
            }
        }
        Ok(bad)
    })
    .await
}

pub async fn run(wf: &RehydrateWorkflow, ctx: &mut StepContext) -> Result<Value, StepError> {
    let input = input_of(ctx)?;
    let v: ValidateOutput = output_of(ctx, "validate")?;
    let bad: Vec<String> = if let Some(native) = &v.native {
        count_mismatches(wf, ctx, native.row_counts.clone()).await?
    } else if input.mode == Mode::Merge {
        let before: DeleteOutput = output_of(ctx, "delete")?;
        let import: ImportOutput = output_of(ctx, "import")?;
        let expected: Vec<(String, u64)> = v
            .tables
            .iter()
            .map(|t| {
                let b = before.rows_before.get(&t.table).copied().unwrap_or(0);
                let ins = import.table(&t.table).map(|w| w.inserted).unwrap_or(0);
                (t.table.clone(), b + ins)
            })
            .collect();
        count_mismatches(wf, ctx, expected).await?
    } else {
        let expected = v
            .tables
            .iter()
            .map(|t| (t.table.clone(), t.rows, t.blake3.clone()))
            .collect();
        hash_mismatches(wf, ctx, expected).await?
    };
    if !bad.is_empty() {
        return Err(StepError::permanent(
            "verify_mismatch",
            format!(
                "after import these tables differ from the bundle: {}",
                bad.join(", ")
            ),
        ));
    }
    wf.audit(ctx, "REHYDRATE_VERIFIED", json!({"tables": v.scope.len()}))
        .await?;
    if let Some(m) = &wf.metrics {
        let import: ImportOutput = output_of(ctx, "import")?;
        let received: super::receive::ReceiveOutput = output_of(ctx, "receive")?;
        let mode = input.mode.as_str();
        m.rows_imported
            .with_label_values(&[mode])
            .inc_by(import.rows);
        m.bytes_imported
            .with_label_values(&[mode])
            .inc_by(received.bytes);
    }
    to_output(&json!({"verified": true}))
}
