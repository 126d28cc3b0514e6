//! Step `receive`: bring the bundle into the work directory as
//! `bundle.zip`.
//!
//! An upload was already streamed to `<uploads>/<id>.zip` by the API (size
//! limited, hashed on the way); it is moved here with one rename. An
//! export's bundle is streamed from the private exports area, hashed and
//! size-limited, under a temporary name, then fsynced and renamed. Either
//! way a repeated attempt finds `bundle.zip` complete and keeps it.

use super::WorkDirs;
use crate::common::{io_error, to_output, StepOutput};
use crate::ports::objects::{Area, ObjectKey};
use crate::rehydrate::input::{valid_upload_id, Source};
use crate::rehydrate::{shared_upload_key, RehydrateInput, RehydrateStep, RehydrateWorkflow};
use ferry_engine::{StepContext, StepError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiveOutput {
    pub bytes: u64,
    pub blake3: String,
    /// `upload` or `export`.
    pub source: String,
}

impl StepOutput for ReceiveOutput {
    type Step = RehydrateStep;
    const STEP: RehydrateStep = RehydrateStep::Receive;
}

async fn sync_dir(dir: &std::path::Path) -> Result<(), StepError> {
    let d = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(&d)?.sync_all())
        .await
        .map_err(|e| StepError::retryable("step_panicked", e.to_string()))?
        .map_err(|e| io_error("receive_io", e))
}

/// Stream a bundle out of the object store into `bundle.zip` (an
/// export's, or an upload another node stored); `gone` is the error when
/// it is not stored.
async fn fetch_stored(
    wf: &RehydrateWorkflow,
    area: Area,
    key: &ObjectKey,
    dirs: &WorkDirs,
    attempt: u32,
    gone: fn() -> StepError,
) -> Result<(u64, String), StepError> {
    let mut reader = wf.deps.objects.open(area, key).await?.ok_or_else(gone)?;
    let tmp = dirs.root.join(format!(".bundle.zip.{attempt}.tmp"));
    let mut out = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| io_error("receive_io", e))?;
    let mut hasher = blake3::Hasher::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|e| StepError::retryable("object_read_failed", e.to_string()))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > wf.config.upload_bytes_max {
            drop(out);
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(StepError::permanent(
                "bundle_too_large",
                format!(
                    "the bundle is larger than {} bytes",
                    wf.config.upload_bytes_max
                ),
            ));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .await
            .map_err(|e| io_error("receive_io", e))?;
    }
    out.sync_all()
        .await
        .map_err(|e| io_error("receive_io", e))?;
    drop(out);
    tokio::fs::rename(&tmp, dirs.bundle())
        .await
        .map_err(|e| io_error("receive_io", e))?;
    sync_dir(&dirs.root).await?;
    Ok((total, hasher.finalize().to_hex().to_string()))
}

fn upload_missing() -> StepError {
    StepError::permanent(
        "upload_missing",
        "the uploaded bundle is no longer stored; upload it again",
    )
}

fn export_gone() -> StepError {
    StepError::permanent(
        "export_bundle_gone",
        "the export's bundle is no longer stored (expired or deleted)",
    )
}

pub async fn run(
    wf: &RehydrateWorkflow,
    ctx: &mut StepContext,
    input: &RehydrateInput,
) -> Result<Value, StepError> {
    let dirs = WorkDirs::new(wf, ctx.workflow);
    dirs.create().await?;
    let out = match &input.source {
        Source::Upload { id, bytes, blake3 } => {
            if !valid_upload_id(id) {
                return Err(StepError::permanent("invalid_upload", "bad upload id"));
            }
            let here = tokio::fs::metadata(dirs.bundle()).await.ok();
            if !here.is_some_and(|m| m.is_file() && m.len() == *bytes) {
                let src = wf.upload_path(id);
                match tokio::fs::rename(&src, dirs.bundle()).await {
                    Ok(()) => sync_dir(&dirs.root).await?,
                    // Received by another node of the cluster: its copy
                    // in the object store, checked against the upload's hash.
                    Err(e)
                        if e.kind() == std::io::ErrorKind::NotFound && wf.config.shared_uploads =>
                    {
                        let key = shared_upload_key(&ctx.tenant, id)?;
                        let (_, got) = fetch_stored(
                            wf,
                            Area::Backups,
                            &key,
                            &dirs,
                            ctx.attempt,
                            upload_missing,
                        )
                        .await?;
                        if &got != blake3 {
                            let _ = tokio::fs::remove_file(dirs.bundle()).await;
                            return Err(StepError::permanent(
                                "upload_corrupt",
                                "the stored upload is not the bundle that was uploaded",
                            ));
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(upload_missing())
                    }
                    Err(e) => return Err(io_error("receive_io", e)),
                }
            }
            ReceiveOutput {
                bytes: *bytes,
                blake3: blake3.clone(),
                source: "upload".into(),
            }
        }
        Source::Export { id: _, key } => {
            let key = ObjectKey::parse(key)
                .ok()
                .filter(|k| k.is_under(&ctx.tenant))
                .ok_or_else(|| {
                    StepError::permanent("invalid_export_id", "the export is not this tenant's")
                })?;
            let (bytes, blake3) =
                fetch_stored(wf, Area::Exports, &key, &dirs, ctx.attempt, export_gone).await?;
            ReceiveOutput {
                bytes,
                blake3,
                source: "export".into(),
            }
        }
    };
    wf.audit(
        ctx,
        "REHYDRATE_RECEIVED",
        json!({"source": out.source, "sizeBytes": out.bytes, "checksum": out.blake3}),
    )
    .await?;
    to_output(&out)
}
