//! Step `delete`: empty the tables this rehydration replaces, in one
//! transaction (referencing tables first). Only reached after validation
//! passed and the backup verified. `merge` deletes nothing; it records each
//! table's row count instead, which `verify` checks the merge against.
//! Safe to repeat: emptying empty tables changes nothing.

use super::validate::ValidateOutput;
use super::{input_of, output_of, to_output, with_writer};
use crate::rehydrate::input::Mode;
use crate::rehydrate::RehydrateWorkflow;
use ferry_engine::{StepContext, StepError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOutput {
    pub deleted: u64,
    /// Row counts before a merge.
    pub rows_before: BTreeMap<String, u64>,
}

/// The tables a rehydration writes.
pub(crate) fn scope_tables(v: &ValidateOutput) -> Vec<String> {
    match &v.native {
        Some(n) => n.row_counts.iter().map(|(t, _)| t.clone()).collect(),
        None => v.scope.clone(),
    }
}

pub async fn run(wf: &RehydrateWorkflow, ctx: &mut StepContext) -> Result<Value, StepError> {
    let input = input_of(ctx)?;
    let v: ValidateOutput = output_of(ctx, "validate")?;
    let tables = scope_tables(&v);
    let out = if input.mode == Mode::Merge {
        let rows_before = with_writer(wf, ctx, move |w| {
            let mut m = BTreeMap::new();
            for t in &tables {
                m.insert(t.clone(), w.count_rows(t)?);
            }
            Ok(m)
        })
        .await?;
        DeleteOutput {
            deleted: 0,
            rows_before,
        }
    } else {
        let deleted = with_writer(wf, ctx, move |w| w.delete_rows(&tables)).await?;
        DeleteOutput {
            deleted,
            rows_before: BTreeMap::new(),
        }
    };
    wf.audit(ctx, "REHYDRATE_DELETED", json!({"rows": out.deleted}))
        .await?;
    to_output(&out)
}
