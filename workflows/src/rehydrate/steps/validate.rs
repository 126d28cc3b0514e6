//! Step `validate`: everything that can be checked before anything is
//! destroyed (see `rehydrate::validate` for the checks and their codes),
//! against the tenant's schema as it is now. Entries are extracted to
//! `bundle/` as they are checked; later steps read only those files.
//!
//! A rejection is permanent: the workflow fails here, nothing was written
//! to the tenant, and the row-level report stays downloadable. The refused
//! bundle is removed (failed rehydrations would otherwise keep every
//! refused upload on disk); repeated after that, the step refuses again
//! from the report's first line.
//! For a native bundle the tenant store also reads the dump's row counts
//! without restoring it; `verify` compares against them. The bundle's
//! asset files are listed for the later steps (`rehydrate::assets`).

use super::{with_writer, WorkDirs};
use crate::common::{remove_dir_all_idempotent, to_output, StepOutput};
use crate::rehydrate::assets::{self, BundleAssets};
use crate::rehydrate::input::Mode;
use crate::rehydrate::validate::{self, BundleData, Request};
use crate::rehydrate::{RehydrateInput, RehydrateStep, RehydrateWorkflow};
use ferry_engine::{StepContext, StepError, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::PathBuf;

/// One table file of a `lite` bundle, as recorded after checking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableFile {
    pub table: String,
    /// Path of the extracted file.
    pub file: String,
    pub rows: u64,
    pub blake3: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NativeFile {
    pub format: String,
    pub file: String,
    pub row_counts: Vec<(String, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidateOutput {
    pub export_id: String,
    pub exported_at: Timestamp,
    pub profile: String,
    pub engine: String,
    /// The tables this rehydration writes, in the bundle's order.
    pub scope: Vec<String>,
    /// `lite` table files of the tables in scope.
    pub tables: Vec<TableFile>,
    pub native: Option<NativeFile>,
    /// `database/schema.json` as extracted.
    pub schema_file: String,
    pub rows_checked: u64,
    /// The bundle's asset files (listed in the work directory's
    /// `assets.ndjson`); absent in rehydrations validated before assets
    /// were rehydrated, which leave them alone.
    #[serde(default)]
    pub assets: BundleAssets,
}

impl StepOutput for ValidateOutput {
    type Step = RehydrateStep;
    const STEP: RehydrateStep = RehydrateStep::Validate;
}

impl ValidateOutput {
    pub fn table(&self, name: &str) -> Option<&TableFile> {
        self.tables.iter().find(|t| t.table == name)
    }
}

pub async fn run(
    wf: &RehydrateWorkflow,
    ctx: &mut StepContext,
    input: &RehydrateInput,
) -> Result<Value, StepError> {
    let dirs = WorkDirs::new(wf, ctx.workflow);
    let target = with_writer(wf, ctx, |w| w.schema()).await?;
    let key = wf.deps.signer.verifying_key();
    let req = Request {
        tenant: &ctx.tenant,
        key: &key,
        target: &target,
        tables: input.tables.as_deref(),
        merge: input.mode == Mode::Merge,
        limits: &wf.config.limits,
    };
    if let Some(refused) = refused_before(&dirs).await {
        return Err(refused);
    }
    crate::common::require_work_file(&dirs.bundle(), "the received bundle", &["receive"]).await?;
    let validated = match validate::validate(&dirs.bundle(), &dirs.extracted(), &dirs.report(), req)
        .await
    {
        Ok(v) => v,
        Err(rejection) => {
            wf.audit(
                ctx,
                "REHYDRATE_REJECTED",
                json!({"code": rejection.code, "message": rejection.message, "reportRows": rejection.report_rows}),
            )
            .await?;
            drop_refused(&dirs, ctx).await;
            return Err(StepError::permanent(rejection.code, rejection.message));
        }
    };
    let manifest = &validated.manifest;
    let scope: Vec<String> = match &input.tables {
        Some(chosen) => manifest
            .database
            .tables
            .iter()
            .filter(|t| chosen.contains(t))
            .cloned()
            .collect(),
        None => manifest.database.tables.clone(),
    };
    let (tables, native) = match &validated.data {
        BundleData::Lite { tables } => (
            tables
                .iter()
                .filter(|t| scope.contains(&t.name))
                .map(|t| TableFile {
                    table: t.name.clone(),
                    file: t.path.to_string_lossy().into_owned(),
                    rows: t.rows,
                    blake3: t.blake3.clone(),
                })
                .collect(),
            None,
        ),
        BundleData::Native { format, file } => {
            if input.mode != Mode::Replace {
                return Err(StepError::permanent(
                    "native_mode_unsupported",
                    "a native bundle restores the whole tenant: use mode replace",
                ));
            }
            let (f, p) = (format.clone(), file.clone());
            let row_counts = with_writer(wf, ctx, move |w| w.native_row_counts(&f, &p)).await?;
            (
                Vec::new(),
                Some(NativeFile {
                    format: format.clone(),
                    file: file.to_string_lossy().into_owned(),
                    row_counts,
                }),
            )
        }
    };
    let out = ValidateOutput {
        export_id: manifest.export_id.clone(),
        exported_at: manifest.exported_at,
        profile: manifest.profile.clone(),
        engine: manifest.database.engine.clone(),
        scope,
        tables,
        native,
        schema_file: dirs
            .extracted()
            .join("database/schema.json")
            .to_string_lossy()
            .into_owned(),
        rows_checked: validated.rows_checked,
        assets: assets::record_bundle(&dirs, &validated).await?,
    };
    wf.audit(
        ctx,
        "REHYDRATE_VALIDATED",
        json!({"exportId": out.export_id, "profile": out.profile, "tables": out.scope.len(), "rowsChecked": out.rows_checked}),
    )
    .await?;
    to_output(&out)
}

/// The extracted schema of the bundle.
pub async fn bundle_schema(
    out: &ValidateOutput,
) -> Result<crate::ports::tenant::SchemaInfo, StepError> {
    let bytes = tokio::fs::read(PathBuf::from(&out.schema_file))
        .await
        .map_err(|e| StepError::permanent("work_file_missing", format!("schema.json: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| StepError::permanent("work_file_corrupt", format!("schema.json: {e}")))
}

/// The refusal of an earlier run of this step whose bundle is already
/// removed: the report's first line (every rejection writes one).
async fn refused_before(dirs: &WorkDirs) -> Option<StepError> {
    if tokio::fs::try_exists(dirs.bundle()).await.unwrap_or(true) {
        return None;
    }
    let report = tokio::fs::read_to_string(dirs.report()).await.ok()?;
    let first: Value = serde_json::from_str(report.lines().next()?).ok()?;
    Some(StepError::permanent(
        first["code"].as_str()?,
        first["message"]
            .as_str()
            .unwrap_or("the bundle was refused"),
    ))
}

/// Remove all but the report of a refused rehydration: the bundle last, as
/// its absence marks the refusal as recorded in the report.
async fn drop_refused(dirs: &WorkDirs, ctx: &StepContext) {
    for dir in [dirs.extracted(), dirs.writer_dir()] {
        if let Err(e) = remove_dir_all_idempotent(&dir).await {
            tracing::warn!(workflow = %ctx.workflow, error = %e, "could not remove {}", dir.display());
        }
    }
    if let Err(e) = tokio::fs::remove_file(dirs.bundle()).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(workflow = %ctx.workflow, error = %e, "could not remove a refused bundle");
        }
    }
}
