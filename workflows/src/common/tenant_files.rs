//! The tenant's files as both workflows read them: one checked page of the
//! assets area under the tenant's prefix, and the copy of every file into a
//! work directory with its index (`assets.index.ndjson`), used by the
//! export's `assets` step and by a rehydration's backup.
//!
//! Only objects listed under the tenant's own prefix are read, and every
//! listed key is checked again to lie under it (a backend bug must not leak
//! another tenant's file into a bundle). Copies are idempotent: a file
//! already in the work directory with the object's size was completed by an
//! earlier attempt (files appear only by rename) and is re-hashed locally
//! instead of downloaded again.

use super::io_error;
use crate::bundle::manifest::{entry_path_is_safe, ASSETS_PREFIX};
use crate::bundle::writer::hash_file;
use crate::ports::objects::{Area, ObjectKey, ObjectMeta, ObjectPage, ObjectStore, LIST_LIMIT_MAX};
use ferry_engine::{Progress, StepContext, StepError, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How often progress is recorded.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);
/// Bytes per read while copying.
const CHUNK_BYTES: usize = 256 * 1024;

/// One line of `assets.index.ndjson`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetIndexLine {
    /// Entry path in the bundle (`assets/...`).
    pub path: String,
    /// The object key it came from.
    pub key: String,
    pub bytes: u64,
    pub blake3: String,
}

/// Copy one object to `dest` (via a temporary file), hashing it.
async fn copy_object(
    objects: &dyn ObjectStore,
    meta: &ObjectMeta,
    dest: &Path,
    tag: &str,
) -> Result<(String, u64), StepError> {
    let mut reader = objects
        .open(Area::Assets, &meta.key)
        .await?
        .ok_or_else(|| {
            StepError::retryable(
                "asset_vanished",
                format!("object {} disappeared while exporting", meta.key),
            )
        })?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dest.with_file_name(format!(".{name}.{tag}.tmp"));
    let result = async {
        let mut out = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| io_error("assets_io", e))?;
        let mut hasher = blake3::Hasher::new();
        let mut bytes = 0u64;
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            let n = reader
                .read(&mut buf)
                .await
                .map_err(|e| io_error("asset_read_failed", e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            bytes += n as u64;
            out.write_all(&buf[..n])
                .await
                .map_err(|e| io_error("assets_io", e))?;
        }
        out.flush().await.map_err(|e| io_error("assets_io", e))?;
        out.sync_all().await.map_err(|e| io_error("assets_io", e))?;
        if bytes != meta.size {
            return Err(StepError::retryable(
                "asset_changed",
                format!("object {} changed size while exporting", meta.key),
            ));
        }
        tokio::fs::rename(&tmp, dest)
            .await
            .map_err(|e| io_error("assets_io", e))?;
        Ok((hasher.finalize().to_hex().to_string(), bytes))
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

/// One page of the tenant's files (the assets area under `<tenant>/`)
/// after `after`, every key checked to lie under the tenant's prefix: a
/// store that listed another tenant's key is refused, never followed.
pub(crate) async fn tenant_files_page(
    objects: &dyn ObjectStore,
    tenant: &TenantId,
    after: Option<&ObjectKey>,
) -> Result<ObjectPage, StepError> {
    let page = objects
        .list(Area::Assets, tenant, after, LIST_LIMIT_MAX)
        .await?;
    if page.objects.iter().any(|meta| !meta.key.is_under(tenant)) {
        return Err(StepError::permanent(
            "asset_outside_tenant",
            "the object store listed a key outside the tenant's prefix",
        ));
    }
    Ok(page)
}

/// Copy every object under the tenant's prefix to `files/assets/<path
/// under the prefix>` and list them, in key order, in the index at `index`
/// (written under a temporary name and renamed). Fails with
/// `bundle_too_large` once the files exceed `bytes_max`. Returns the number
/// of files and their total size. Shared by the export and by a
/// rehydration's backup, which holds the tenant's files too.
pub(crate) async fn collect(
    objects: &dyn ObjectStore,
    ctx: &mut StepContext,
    files_dir: &Path,
    index_path: &Path,
    bytes_max: u64,
) -> Result<(u64, u64), StepError> {
    let assets_root = files_dir.join(ASSETS_PREFIX);
    tokio::fs::create_dir_all(&assets_root)
        .await
        .map_err(|e| io_error("assets_io", e))?;
    let tag = format!("{}-{}", ctx.attempt, uuid::Uuid::new_v4().simple());
    let index_tmp = index_path.with_file_name(format!(".assets.index.{tag}.tmp"));
    let mut index = tokio::io::BufWriter::new(
        tokio::fs::File::create(&index_tmp)
            .await
            .map_err(|e| io_error("assets_io", e))?,
    );

    let mut files = 0u64;
    let mut total_size = 0u64;
    let mut after = None;
    let mut last_progress = Instant::now();
    loop {
        let page = tenant_files_page(objects, &ctx.tenant, after.as_ref()).await?;
        for meta in &page.objects {
            ctx.check_cancelled()?;
            let entry_path = format!("{ASSETS_PREFIX}{}", meta.key.relative());
            if !entry_path_is_safe(&entry_path) {
                return Err(StepError::permanent(
                    "unsafe_asset_key",
                    format!("unsafe asset key {}", meta.key),
                ));
            }
            total_size += meta.size;
            if total_size > bytes_max {
                return Err(StepError::permanent(
                    "bundle_too_large",
                    format!("assets alone exceed the bundle limit of {bytes_max} bytes"),
                ));
            }
            let dest = files_dir.join(&entry_path);
            if let Some(parent) = dest.parent() {
                // A key that is both a file and a folder ("a" and "a/b")
                // cannot be laid out as files; retrying will not change that.
                tokio::fs::create_dir_all(parent).await.map_err(|e| {
                    StepError::permanent("asset_path_conflict", format!("{}: {e}", meta.key))
                })?;
            }
            let present = tokio::fs::metadata(&dest)
                .await
                .ok()
                .filter(|m| m.is_file() && m.len() == meta.size);
            let (hash, bytes) = if present.is_some() {
                hash_file(&dest)
                    .await
                    .map_err(|e| io_error("assets_io", e))?
            } else {
                copy_object(objects, meta, &dest, &tag).await?
            };
            let line = AssetIndexLine {
                path: entry_path,
                key: meta.key.to_string(),
                bytes,
                blake3: hash,
            };
            let mut text = serde_json::to_vec(&line)
                .map_err(|e| StepError::permanent("invalid_output", e.to_string()))?;
            text.push(b'\n');
            index
                .write_all(&text)
                .await
                .map_err(|e| io_error("assets_io", e))?;
            files += 1;
            if last_progress.elapsed() >= PROGRESS_INTERVAL {
                last_progress = Instant::now();
                let progress = Progress {
                    fraction: 0.0,
                    rows: 0,
                    bytes: total_size,
                };
                ctx.checkpoint(json!({"files": files, "lastKey": meta.key}), Some(progress))
                    .await?;
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    index.flush().await.map_err(|e| io_error("assets_io", e))?;
    index
        .get_ref()
        .sync_all()
        .await
        .map_err(|e| io_error("assets_io", e))?;
    drop(index);
    tokio::fs::rename(&index_tmp, index_path)
        .await
        .map_err(|e| io_error("assets_io", e))?;
    Ok((files, total_size))
}
