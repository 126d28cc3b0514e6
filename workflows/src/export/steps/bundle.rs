//! Step `bundle`: stream the work directory's files into
//! `export_{tenant}_{timestamp}.zip`, with the signed manifest.
//!
//! Only the files the earlier steps recorded go in (never whatever happens
//! to lie in the directory). The snapshot's files were compressed while
//! they were dumped and are copied in as they are; assets are deflated here.
//! Either way each file is hashed again on the way through, and that hash
//! must equal the one recorded when the file was written: a work file
//! damaged between steps fails the export rather than ship silently. The file name and every timestamp inside derive from the
//! workflow's recorded times, so a repeated attempt writes the same bytes.

use super::assets::{AssetIndexLine, AssetsOutput};
use super::snapshot::SnapshotOutput;
use super::WorkDirs;
use crate::bundle::{
    AssetsSection, BundleWriter, DatabaseSection, Manifest, ManifestEntry, Packed, Producer,
    ASSETS_PREFIX, FORMAT_VERSION,
};
use crate::common::{io_error, output_of, require_work_file, write_err, StepOutput};
use crate::export::{ExportInput, ExportStep, ExportWorkflow};
use ferry_engine::{Progress, StepContext, StepError, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

/// How often progress is recorded.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleOutput {
    pub file_name: String,
    /// Local path of the archive (until `upload` removes the work directory).
    pub bundle_path: String,
    pub size_bytes: u64,
    /// blake3 of the whole archive, hex.
    pub checksum: String,
    pub entries: usize,
    pub exported_at: Timestamp,
}

impl StepOutput for BundleOutput {
    type Step = ExportStep;
    const STEP: ExportStep = ExportStep::Bundle;
}

/// `export_{tenant}_{yyyymmddThhmmssZ}.zip`, from the workflow's creation time.
pub fn bundle_file_name(tenant: &str, created_at: &Timestamp) -> String {
    format!(
        "export_{tenant}_{}.zip",
        created_at.format("%Y%m%dT%H%M%SZ")
    )
}

fn work_file_corrupt(path: &str) -> StepError {
    StepError::permanent(
        "work_file_corrupt",
        format!("{path} changed after it was written; start a new export"),
    )
}

/// Copy one packed snapshot file and check it still has the recorded hash.
async fn add_packed_checked(
    w: &mut BundleWriter,
    packed_dir: &std::path::Path,
    recorded: &ManifestEntry,
    packed: &Packed,
) -> Result<(), StepError> {
    let got = w
        .add_packed(
            &recorded.path,
            &packed_dir.join(&recorded.path),
            packed,
            recorded.bytes,
            &recorded.blake3,
            recorded.rows,
            recorded.table.clone(),
        )
        .await
        .map_err(write_err)?;
    if got.blake3 != packed.blake3 || got.bytes != packed.bytes {
        return Err(work_file_corrupt(&recorded.path));
    }
    Ok(())
}

/// Add one recorded file and check it still has the recorded hash.
async fn add_checked(
    w: &mut BundleWriter,
    files: &std::path::Path,
    recorded: &ManifestEntry,
) -> Result<(), StepError> {
    let got = w
        .add_file(
            &recorded.path,
            &files.join(&recorded.path),
            recorded.rows,
            recorded.table.clone(),
        )
        .await
        .map_err(write_err)?;
    if got.blake3 != recorded.blake3 || got.bytes != recorded.bytes {
        return Err(work_file_corrupt(&recorded.path));
    }
    Ok(())
}

/// Record progress at most every `PROGRESS_INTERVAL` (each is a durable append).
async fn report_progress(
    ctx: &mut StepContext,
    last: &mut Instant,
    done_bytes: u64,
    total: f64,
) -> Result<(), StepError> {
    if last.elapsed() < PROGRESS_INTERVAL {
        return Ok(());
    }
    *last = Instant::now();
    let p = Progress {
        fraction: done_bytes as f64 / total,
        rows: 0,
        bytes: done_bytes,
    };
    ctx.checkpoint(json!({}), Some(p)).await
}

async fn write_bundle(
    ctx: &mut StepContext,
    w: &mut BundleWriter,
    dirs: &WorkDirs,
    snap: &SnapshotOutput,
    assets: &AssetsOutput,
) -> Result<AssetsSection, StepError> {
    let total = (snap.bytes + assets.total_size).max(1) as f64;
    let mut done_bytes = 0u64;
    let mut last_progress = Instant::now();
    for e in &snap.entries {
        ctx.check_cancelled()?;
        match snap.packed.get(&e.path) {
            Some(p) => add_packed_checked(w, &dirs.packed, e, p).await?,
            // Snapshotted before files were packed: plain files to deflate.
            None => add_checked(w, &dirs.files, e).await?,
        }
        done_bytes += e.bytes;
        report_progress(ctx, &mut last_progress, done_bytes, total).await?;
    }
    let mut section = AssetsSection {
        included: Some(assets.included),
        ..AssetsSection::default()
    };
    if assets.included {
        let index = tokio::fs::File::open(dirs.assets_index())
            .await
            .map_err(|e| io_error("bundle_io", e))?;
        let mut lines = tokio::io::BufReader::new(index).lines();
        while let Some(line) = lines
            .next_line()
            .await
            .map_err(|e| io_error("bundle_io", e))?
        {
            ctx.check_cancelled()?;
            let a: AssetIndexLine = serde_json::from_str(&line).map_err(|e| {
                StepError::permanent("work_file_corrupt", format!("assets index: {e}"))
            })?;
            let recorded = ManifestEntry {
                path: a.path.clone(),
                bytes: a.bytes,
                rows: None,
                table: None,
                blake3: a.blake3,
            };
            add_checked(w, &dirs.files, &recorded).await?;
            section
                .files
                .push(a.path.trim_start_matches(ASSETS_PREFIX).to_owned());
            section.total_size += a.bytes;
            done_bytes += a.bytes;
            report_progress(ctx, &mut last_progress, done_bytes, total).await?;
        }
    }
    Ok(section)
}

/// The files `snapshot` and `assets` recorded are on this node; where a
/// step's are not (it ran on a node that lost the tenant), it runs again.
async fn require_inputs(
    dirs: &WorkDirs,
    snap: &SnapshotOutput,
    assets: &AssetsOutput,
) -> Result<(), StepError> {
    for e in &snap.entries {
        let dir = match snap.packed.get(&e.path) {
            Some(_) => &dirs.packed,
            None => &dirs.files,
        };
        let what = format!("the snapshot's {}", e.path);
        require_work_file(&dir.join(&e.path), &what, &["snapshot"]).await?;
    }
    if assets.included {
        require_work_file(&dirs.assets_index(), "the assets index", &["assets"]).await?;
    }
    Ok(())
}

pub async fn run(
    wf: &ExportWorkflow,
    ctx: &mut StepContext,
    input: &ExportInput,
) -> Result<Value, StepError> {
    let snap: SnapshotOutput = output_of(ctx)?;
    let assets: AssetsOutput = output_of(ctx)?;
    let dirs = WorkDirs::new(wf, ctx.workflow);
    require_inputs(&dirs, &snap, &assets).await?;
    dirs.create().await?;
    let file_name = bundle_file_name(ctx.tenant.as_str(), &ctx.created_at);
    let path = dirs.out.join(&file_name);

    let mut w = BundleWriter::create(&path, snap.taken_at, wf.config.max_bundle_bytes)
        .await
        .map_err(write_err)?;
    let assets_section = match write_bundle(ctx, &mut w, &dirs, &snap, &assets).await {
        Ok(s) => s,
        Err(e) => {
            w.abort().await;
            return Err(e);
        }
    };
    let manifest = Manifest {
        tenant_id: ctx.tenant.clone(),
        export_id: ctx.workflow.to_string(),
        exported_at: snap.taken_at,
        profile: input.request.profile.as_str().to_owned(),
        version: FORMAT_VERSION.to_owned(),
        database: DatabaseSection {
            tables: snap.tables.clone(),
            row_count: snap.row_count,
            format: snap.format.clone(),
            engine: snap.engine.clone(),
            isolation: snap.isolation.clone(),
            schema_fingerprint: snap.schema_fingerprint.clone(),
            date_range: snap.date_range.clone(),
        },
        assets: assets_section,
        entries: vec![],
        producer: Producer {
            name: "ferry".into(),
            version: wf.config.producer_version.clone(),
        },
        audit_anchor: wf.deps.audit.anchor(Some(&ctx.tenant)).await.ok().flatten(),
    };
    let (done, manifest) = w
        .finish_signed(manifest, &wf.deps.signer)
        .await
        .map_err(write_err)?;
    let out = BundleOutput {
        file_name,
        bundle_path: done.path.to_string_lossy().into_owned(),
        size_bytes: done.size_bytes,
        checksum: done.checksum,
        entries: manifest.entries.len(),
        exported_at: manifest.exported_at,
    };
    wf.audit(
        ctx,
        "EXPORT_BUNDLED",
        json!({"fileName": out.file_name, "sizeBytes": out.size_bytes, "checksum": out.checksum, "entries": out.entries}),
    )
    .await?;
    serde_json::to_value(&out).map_err(|e| StepError::permanent("invalid_output", e.to_string()))
}
