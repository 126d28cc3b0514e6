//! Step `backup`: a full `lite` export of the tenant's current data and
//! files, taken after the tenant is quiesced and before anything is
//! deleted, then read back and checked (signature and every blake3) before
//! it counts. The files are collected as an export collects them
//! (streamed to the work directory, then into the bundle) and the manifest
//! says the backup carries the tenant's asset set, so a rollback makes the
//! tenant's prefix exactly the backup's files. Once the backup counts, the
//! bundle's files are staged for the step `assets`, against the backup's
//! list of the tenant's files (see `rehydrate::assets`).
//!
//! Every table is read from one consistent snapshot and written as the
//! `lite` NDJSON an export writes (primary-key order), so each table
//! entry's blake3 is also the table's content hash: `rollback` compares the
//! tenant's content hashes with them to know whether a restore is needed
//! and, after restoring, that it worked. The bundle is kept in the private
//! backups area at `<tenant>/<rehydration-id>/backup.zip` until its
//! retention timer deletes it; the local copy serves a rollback during the
//! same run. A repeated attempt reuses a complete local backup that still
//! verifies, and otherwise takes it again.

use super::validate::ValidateOutput;
use super::WorkDirs;
use crate::bundle::{
    verify_file, AssetsSection, BundleWriter, DatabaseSection, Manifest, Producer, ASSETS_PREFIX,
    FORMAT_VERSION,
};
use crate::common::tenant_files::{collect, AssetIndexLine};
use crate::common::{io_error, output_of, table_file_stem, to_output, write_err, StepOutput};
use crate::ports::objects::{Area, ObjectKey};
use crate::ports::tenant::{SchemaInfo, TableFormat};
use crate::ports::PortError;
use crate::rehydrate::assets::{self, AssetCounts, AssetFile};
use crate::rehydrate::{RehydrateInput, RehydrateStep, RehydrateWorkflow};
use ferry_engine::{StepContext, StepError, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// One table of the backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupTable {
    pub table: String,
    pub rows: u64,
    /// The table's content hash (blake3 of its `lite` NDJSON).
    pub blake3: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupOutput {
    /// Key in the backups area.
    pub key: String,
    pub size_bytes: u64,
    pub checksum: String,
    pub taken_at: Timestamp,
    pub tables: Vec<BackupTable>,
    /// The asset switch staged for step `assets`; absent in backups taken
    /// before files were staged (their rehydration leaves files alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assets: Option<AssetCounts>,
}

impl StepOutput for BackupOutput {
    type Step = RehydrateStep;
    const STEP: RehydrateStep = RehydrateStep::Backup;
}

/// The backups-area key of a rehydration's backup.
pub fn backup_key(
    tenant: &ferry_engine::TenantId,
    id: ferry_engine::WorkflowId,
) -> Result<ObjectKey, StepError> {
    ObjectKey::for_tenant(tenant, &format!("{id}/backup.zip"))
        .map_err(|e| StepError::permanent("invalid_object_key", e.to_string()))
}

struct Dumped {
    schema: SchemaInfo,
    /// (entry path, local file, rows, table)
    files: Vec<(String, PathBuf, u64, String)>,
}

/// Dump every table of one snapshot into `dir` (blocking).
fn dump_all(
    wf_tenants: Arc<dyn crate::ports::tenant::TenantStore>,
    tenant: ferry_engine::TenantId,
    dir: PathBuf,
) -> Result<Dumped, PortError> {
    let io = |e: std::io::Error| PortError::retryable("backup_io", e.to_string());
    let snap_dir = dir.join("snapshot");
    let files_dir = dir.join("files");
    std::fs::create_dir_all(&snap_dir).map_err(io)?;
    std::fs::create_dir_all(&files_dir).map_err(io)?;
    let mut snap = wf_tenants.snapshot(&tenant, &snap_dir)?;
    let schema = snap.schema()?;
    let schema_path = files_dir.join("schema.json");
    std::fs::write(
        &schema_path,
        serde_json::to_vec_pretty(&schema).expect("schema serializes"),
    )
    .map_err(io)?;
    let mut files = vec![(
        "database/schema.json".to_owned(),
        schema_path,
        0,
        String::new(),
    )];
    for t in &schema.tables {
        let stem = table_file_stem(&t.name);
        let path = files_dir.join(format!("{stem}.ndjson"));
        let file = std::fs::File::create(&path).map_err(io)?;
        let mut w = std::io::BufWriter::with_capacity(256 * 1024, file);
        let stats = snap.dump_table(&t.name, &TableFormat::Ndjson, &mut w, &mut |_| {})?;
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        files.push((
            format!("database/{stem}.ndjson"),
            path,
            stats.rows,
            t.name.clone(),
        ));
    }
    Ok(Dumped { schema, files })
}

/// Add the tenant's files, collected under `files_dir` and listed in
/// `index`, to the backup; the manifest's section for them.
async fn add_assets(
    w: &mut BundleWriter,
    files_dir: &Path,
    index: &Path,
) -> Result<AssetsSection, StepError> {
    let mut section = AssetsSection {
        included: Some(true),
        ..AssetsSection::default()
    };
    let file = tokio::fs::File::open(index)
        .await
        .map_err(|e| io_error("backup_io", e))?;
    let mut lines = tokio::io::BufReader::new(file).lines();
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| io_error("backup_io", e))?
    {
        let a: AssetIndexLine = serde_json::from_str(&line)
            .map_err(|e| StepError::permanent("work_file_corrupt", format!("assets index: {e}")))?;
        w.add_file(&a.path, &files_dir.join(&a.path), None, None)
            .await
            .map_err(write_err)?;
        section
            .files
            .push(a.path.trim_start_matches(ASSETS_PREFIX).to_owned());
        section.total_size += a.bytes;
    }
    Ok(section)
}

/// Build, sign and verify the backup bundle at `dirs.backup()`.
async fn build(
    wf: &RehydrateWorkflow,
    ctx: &mut StepContext,
    dirs: &WorkDirs,
) -> Result<(), StepError> {
    let build_dir = dirs.backup_dir().join(format!("attempt-{}", ctx.attempt));
    let _ = tokio::fs::remove_dir_all(&build_dir).await;
    let (tenants, tenant, d) = (
        wf.deps.tenants.clone(),
        ctx.tenant.clone(),
        build_dir.clone(),
    );
    let taken_at = ctx.now();
    let dumped = tokio::task::spawn_blocking(move || dump_all(tenants, tenant, d))
        .await
        .map_err(|e| StepError::retryable("step_panicked", e.to_string()))??;
    let files_dir = build_dir.join("files");
    let assets_index = build_dir.join("assets.index.ndjson");
    let objects = wf.deps.objects.clone();
    collect(&*objects, ctx, &files_dir, &assets_index, u64::MAX).await?;
    crate::failpoints::hit("rehydrate.backup.inside").await?;
    ctx.check_cancelled()?;
    let mut w = BundleWriter::create(&dirs.backup(), taken_at, u64::MAX)
        .await
        .map_err(write_err)?;
    let added = async {
        let mut rows = 0u64;
        for (entry, file, n, table) in &dumped.files {
            let t = (!table.is_empty()).then(|| table.clone());
            let r = t.is_some().then_some(*n);
            rows += n;
            w.add_file(entry, file, r, t).await.map_err(write_err)?;
        }
        let assets = add_assets(&mut w, &files_dir, &assets_index).await?;
        Ok::<_, StepError>((rows, assets))
    }
    .await;
    let (rows, assets) = match added {
        Ok(v) => v,
        Err(e) => {
            w.abort().await;
            return Err(e);
        }
    };
    let manifest = Manifest {
        tenant_id: ctx.tenant.clone(),
        export_id: format!("backup-{}", ctx.workflow),
        exported_at: taken_at,
        profile: "lite".into(),
        version: FORMAT_VERSION.to_owned(),
        database: DatabaseSection {
            tables: dumped
                .schema
                .tables
                .iter()
                .map(|t| t.name.clone())
                .collect(),
            row_count: Some(rows),
            format: "ndjson".into(),
            engine: dumped.schema.engine.clone(),
            isolation: dumped.schema.isolation.clone(),
            schema_fingerprint: dumped.schema.fingerprint(),
            date_range: None,
        },
        assets,
        entries: vec![],
        producer: Producer {
            name: "ferry-backup".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        audit_anchor: None,
    };
    w.finish_signed(manifest, &wf.deps.signer)
        .await
        .map_err(write_err)?;
    let _ = tokio::fs::remove_dir_all(&build_dir).await;
    Ok(())
}

/// A backup read back and checked.
struct Checked {
    tables: Vec<BackupTable>,
    taken_at: Timestamp,
    /// The tenant's files it holds, with their hashes.
    files: Vec<AssetFile>,
}

/// Read the backup back: signature and every checksum.
async fn verify_backup(wf: &RehydrateWorkflow, path: &Path) -> Result<Checked, StepError> {
    let report = verify_file(path, &wf.deps.signer.verifying_key())
        .await
        .map_err(|e| StepError::retryable("backup_unverified", format!("{}: {e}", e.code())))?;
    let tables = report
        .manifest
        .entries
        .iter()
        .filter_map(|e| {
            e.table.as_ref().map(|t| BackupTable {
                table: t.clone(),
                rows: e.rows.unwrap_or(0),
                blake3: e.blake3.clone(),
            })
        })
        .collect();
    Ok(Checked {
        tables,
        taken_at: report.manifest.exported_at,
        files: assets::files_of(&report.manifest),
    })
}

/// Stream the backup an earlier attempt stored in the backups area to
/// `dirs.backup()`; `false` if none is stored.
pub(crate) async fn download_stored(
    wf: &RehydrateWorkflow,
    ctx: &StepContext,
    dirs: &WorkDirs,
) -> Result<bool, StepError> {
    let key = backup_key(&ctx.tenant, ctx.workflow)?;
    let Some(mut reader) = wf.deps.objects.open(Area::Backups, &key).await? else {
        return Ok(false);
    };
    tokio::fs::create_dir_all(dirs.backup_dir())
        .await
        .map_err(|e| io_error("work_dir_failed", e))?;
    let tmp = dirs
        .backup_dir()
        .join(format!(".backup.{}.tmp", ctx.attempt));
    let mut out = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| io_error("backup_io", e))?;
    tokio::io::copy(&mut reader, &mut out)
        .await
        .map_err(|e| StepError::retryable("object_read_failed", e.to_string()))?;
    out.flush().await.map_err(|e| io_error("backup_io", e))?;
    out.sync_all().await.map_err(|e| io_error("backup_io", e))?;
    drop(out);
    tokio::fs::rename(&tmp, dirs.backup())
        .await
        .map_err(|e| io_error("backup_io", e))?;
    Ok(true)
}

pub async fn run(
    wf: &RehydrateWorkflow,
    ctx: &mut StepContext,
    input: &RehydrateInput,
) -> Result<Value, StepError> {
    let dirs = WorkDirs::new(wf, ctx.workflow);
    let v: ValidateOutput = output_of(ctx)?;
    super::require_validated(wf, ctx, &v).await?;
    tokio::fs::create_dir_all(dirs.backup_dir())
        .await
        .map_err(|e| io_error("work_dir_failed", e))?;
    let mut reusable = match tokio::fs::metadata(dirs.backup()).await {
        Ok(_) => verify_backup(wf, &dirs.backup()).await.ok(),
        Err(_) => None,
    };
    // A backup stored by an earlier attempt (on another node, say) was
    // verified before it was stored, and stored before any load could
    // start: it holds the tenant's data from before this rehydration. It is
    // never taken again, as the tenant may already hold the bundle's data.
    if reusable.is_none() && download_stored(wf, ctx, &dirs).await? {
        reusable = Some(verify_backup(wf, &dirs.backup()).await.map_err(|e| {
            StepError::permanent(
                "backup_corrupt",
                format!("the stored backup no longer verifies: {}", e.message),
            )
        })?);
    }
    let checked = match reusable {
        Some(v) => v,
        None => {
            build(wf, ctx, &dirs).await?;
            verify_backup(wf, &dirs.backup()).await?
        }
    };
    let key = backup_key(&ctx.tenant, ctx.workflow)?;
    let meta = wf
        .deps
        .objects
        .put_file(Area::Backups, &key, &dirs.backup())
        .await?;
    let checksum = {
        let p = dirs.backup();
        tokio::task::spawn_blocking(move || -> std::io::Result<String> {
            let mut h = blake3::Hasher::new();
            h.update_reader(std::fs::File::open(p)?)?;
            Ok(h.finalize().to_hex().to_string())
        })
        .await
        .map_err(|e| StepError::retryable("step_panicked", e.to_string()))?
        .map_err(|e| io_error("backup_io", e))?
    };
    let staged = assets::stage(wf, ctx, input, &v, &checked.files).await?;
    let out = BackupOutput {
        key: key.to_string(),
        size_bytes: meta.size,
        checksum,
        taken_at: checked.taken_at,
        tables: checked.tables,
        assets: Some(staged),
    };
    wf.audit(
        ctx,
        "REHYDRATE_BACKED_UP",
        json!({"key": out.key, "sizeBytes": out.size_bytes, "checksum": out.checksum, "tables": out.tables.len(), "assetFiles": checked.files.len(), "assetsStaged": out.assets}),
    )
    .await?;
    to_output(&out)
}
