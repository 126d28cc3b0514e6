//! Step `plan`: check the tenant exists, introspect its schema, and resolve
//! the tables to export (all, or the request's `tables`, which must exist).
//!
//! Unknown tenants and tables are permanent errors: retrying cannot create
//! them. The schema is read through the same snapshot directory the
//! `snapshot` step uses, so a store that keeps a consistent copy there makes
//! it once. The output is informational and an early check; `snapshot`
//! resolves the tables again against the snapshot it actually reads.

use super::WorkDirs;
use crate::bundle::ManifestDateRange;
use crate::common::StepOutput;
use crate::export::input::{ExportInput, ExportRequest, Profile};
use crate::export::{ExportStep, ExportWorkflow};
use crate::ports::tenant::{DateFilter, SchemaInfo, TableFormat, TableInfo};
use crate::ports::PortError;
use ferry_engine::{StepContext, StepError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanOutput {
    pub profile: Profile,
    pub engine: String,
    pub isolation: String,
    pub tables: Vec<String>,
    pub schema_fingerprint: String,
    pub include_assets: bool,
    pub date_range: Option<ManifestDateRange>,
    /// The schema of the selected tables (what `database/schema.json` holds).
    pub schema: SchemaInfo,
}

impl StepOutput for PlanOutput {
    type Step = ExportStep;
    const STEP: ExportStep = ExportStep::Plan;
}

/// The part of `schema` the request selects, in the schema's (foreign-key)
/// order; `unknown_table` if a requested table does not exist.
pub(crate) fn select_schema(
    schema: &SchemaInfo,
    request: &ExportRequest,
) -> Result<SchemaInfo, StepError> {
    request
        .check_tables(schema.tables.iter().map(|t| t.name.as_str()))
        .map_err(|e| StepError::permanent(e.code, e.message))?;
    let keep = |name: &str| {
        request
            .tables
            .as_ref()
            .is_none_or(|want| want.iter().any(|w| w == name))
    };
    Ok(SchemaInfo {
        engine: schema.engine.clone(),
        isolation: schema.isolation.clone(),
        tables: schema
            .tables
            .iter()
            .filter(|t| keep(&t.name))
            .cloned()
            .collect(),
        sequences: schema
            .sequences
            .iter()
            .filter(|s| keep(&s.table))
            .cloned()
            .collect(),
        // Type information, not data: kept whole whatever the selection.
        enums: schema.enums.clone(),
    })
}

/// The format each table is dumped in.
pub(crate) fn table_format(
    request: &ExportRequest,
    table: &TableInfo,
    column: &str,
) -> TableFormat {
    match request.profile {
        Profile::Analytics => TableFormat::Csv {
            date_filter: request.date_range.and_then(|r| {
                // Tables without the timestamp column (e.g. lookup tables)
                // are exported whole: a BI user needs them to join.
                table
                    .columns
                    .iter()
                    .any(|c| c.name == column)
                    .then(|| DateFilter {
                        column: column.to_owned(),
                        from: r.from,
                        to: r.to,
                    })
            }),
        },
        Profile::Lite | Profile::Native => TableFormat::Ndjson,
    }
}

pub(crate) fn manifest_date_range(
    request: &ExportRequest,
    column: &str,
) -> Option<ManifestDateRange> {
    request.date_range.map(|r| ManifestDateRange {
        from: r.from,
        to: r.to,
        column: column.to_owned(),
    })
}

fn not_found(tenant: &str) -> StepError {
    StepError::permanent(
        "tenant_not_found",
        format!("tenant {tenant} does not exist"),
    )
}

pub async fn run(
    wf: &ExportWorkflow,
    ctx: &mut StepContext,
    input: &ExportInput,
) -> Result<Value, StepError> {
    let dirs = WorkDirs::new(wf, ctx.workflow);
    dirs.create().await?;
    let tenants = wf.deps.tenants.clone();
    let tenant = ctx.tenant.clone();
    let snapshot_dir = dirs.snapshot.clone();
    let schema = tokio::task::spawn_blocking(move || -> Result<Option<SchemaInfo>, PortError> {
        if !tenants.tenant_exists(&tenant)? {
            return Ok(None);
        }
        let mut snap = tenants.snapshot(&tenant, &snapshot_dir)?;
        snap.schema().map(Some)
    })
    .await
    .map_err(|e| StepError::retryable("plan_panicked", e.to_string()))??
    .ok_or_else(|| not_found(ctx.tenant.as_str()))?;

    let selected = select_schema(&schema, &input.request)?;
    let column = &wf.config.analytics_timestamp_column;
    let out = PlanOutput {
        profile: input.request.profile,
        engine: wf.deps.tenants.engine().to_owned(),
        isolation: wf.deps.tenants.isolation().to_owned(),
        tables: selected.tables.iter().map(|t| t.name.clone()).collect(),
        schema_fingerprint: selected.fingerprint(),
        include_assets: input.request.include_assets,
        date_range: manifest_date_range(&input.request, column),
        schema: selected,
    };
    wf.audit(
        ctx,
        "EXPORT_PLANNED",
        json!({
            "profile": out.profile.as_str(),
            "tables": out.tables,
            "includeAssets": out.include_assets,
            "schemaFingerprint": out.schema_fingerprint,
        }),
    )
    .await?;
    serde_json::to_value(&out).map_err(|e| StepError::permanent("invalid_output", e.to_string()))
}
