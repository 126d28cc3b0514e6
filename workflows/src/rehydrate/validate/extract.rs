//! Streaming every entry out of the archive, checked.
//!
//! Each entry is inflated in fixed-size chunks, hashed and counted on the
//! way, and written under a temporary name next to its final place in
//! `extract_dir`; only an entry whose size and blake3 equal the signed
//! manifest's is fsynced and renamed into place. The inflated bytes are
//! bounded while they stream — by the signed size (which equals the
//! declared size, see `mod.rs`), and by the per-entry and overall ratio and
//! total — so a lying header cannot make ferry inflate more than the limits
//! allow. Entry paths were checked safe (`archive.rs`), so joining them to
//! `extract_dir` never leaves it.

use super::archive::{limit_total, ratio_exceeded, Archive};
use super::{Limits, Rejection};
use crate::bundle::manifest::ManifestEntry;
use crate::bundle::verify::VerifyError;
use crate::bundle::writer::CHUNK_BYTES;
use futures::io::AsyncReadExt as _;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt as _;

/// Files this validation put in place, removed again if it rejects.
#[derive(Default)]
pub(super) struct Written {
    files: Vec<PathBuf>,
}

impl Written {
    pub async fn remove_all(&mut self) {
        for f in self.files.drain(..) {
            // Best effort: a leftover file is overwritten by the next attempt.
            let _ = tokio::fs::remove_file(f).await;
        }
    }
}

pub(super) struct Extractor<'a> {
    archive: &'a Archive,
    dir: &'a Path,
    limits: &'a Limits,
    written: &'a mut Written,
    /// Bytes inflated so far, over all entries.
    total: u64,
    /// Directories that received a rename, synced at the end.
    synced: BTreeSet<PathBuf>,
    /// Distinguishes this attempt's temporary files.
    tag: String,
    buf: Vec<u8>,
}

impl<'a> Extractor<'a> {
    pub async fn new(
        archive: &'a Archive,
        dir: &'a Path,
        limits: &'a Limits,
        written: &'a mut Written,
    ) -> Result<Extractor<'a>, Rejection> {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(Rejection::io)?;
        Ok(Extractor {
            archive,
            dir,
            limits,
            written,
            total: 0,
            synced: BTreeSet::new(),
            tag: uuid::Uuid::new_v4().simple().to_string(),
            buf: vec![0u8; CHUNK_BYTES],
        })
    }

    /// Check entry `e`; with `keep`, also put it in place under `extract_dir`.
    pub async fn entry(&mut self, e: &ManifestEntry, keep: bool) -> Result<(), Rejection> {
        let expected = blake3::Hash::from_hex(&e.blake3)
            .map_err(|_| VerifyError::ManifestInvalid(format!("bad blake3 for {:?}", e.path)))?;
        let final_path = self.dir.join(&e.path);
        let parent = final_path.parent().unwrap_or(self.dir).to_owned();
        let file_name = final_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = parent.join(format!(".{file_name}.{}.tmp", self.tag));
        let mut out = None;
        if keep {
            tokio::fs::create_dir_all(&parent)
                .await
                .map_err(Rejection::io)?;
            out = Some(tokio::fs::File::create(&tmp).await.map_err(Rejection::io)?);
        }
        let result = self.stream(e, out.as_mut()).await;
        let result = match (result, out) {
            (Ok(hash), _) if hash != expected => Err(VerifyError::ChecksumMismatch {
                path: e.path.clone(),
            }
            .into()),
            (Ok(_), Some(mut f)) => async {
                f.flush().await?;
                f.sync_all().await?;
                drop(f);
                tokio::fs::rename(&tmp, &final_path).await
            }
            .await
            .map_err(Rejection::io),
            (other, _) => other.map(|_| ()),
        };
        match result {
            Ok(()) if keep => {
                self.written.files.push(final_path);
                self.synced.insert(parent);
                Ok(())
            }
            Ok(()) => Ok(()),
            Err(r) => {
                if keep {
                    let _ = tokio::fs::remove_file(&tmp).await;
                }
                Err(r)
            }
        }
    }

    /// Inflate entry `e` into `out` (if any), bounded; its blake3.
    async fn stream(
        &mut self,
        e: &ManifestEntry,
        mut out: Option<&mut tokio::fs::File>,
    ) -> Result<blake3::Hash, Rejection> {
        let corrupt = |reason: String| VerifyError::EntryCorrupt {
            path: e.path.clone(),
            reason,
        };
        let index = self
            .archive
            .index(&e.path)
            .ok_or_else(|| VerifyError::EntryMissing(e.path.clone()))?;
        let packed = self.archive.reader.file().entries()[index].compressed_size();
        let mut reader = self
            .archive
            .reader
            .reader_without_entry(index)
            .await
            .map_err(|err| corrupt(err.to_string()))?;
        let mut hasher = blake3::Hasher::new();
        let mut bytes = 0u64;
        loop {
            let n = reader
                .read(&mut self.buf)
                .await
                .map_err(|err| corrupt(err.to_string()))?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
            self.total += n as u64;
            if bytes > e.bytes {
                return Err(VerifyError::SizeMismatch {
                    path: e.path.clone(),
                    expected: e.bytes,
                    actual: bytes,
                }
                .into());
            }
            if ratio_exceeded(bytes, packed, self.limits) {
                return Err(Rejection::new(
                    "entry_ratio_exceeded",
                    format!(
                        "entry {:?} inflates {packed} bytes to more than {bytes}",
                        e.path
                    ),
                ));
            }
            limit_total(self.total, self.archive.file_bytes, self.limits)?;
            hasher.update(&self.buf[..n]);
            if let Some(f) = out.as_mut() {
                f.write_all(&self.buf[..n]).await.map_err(Rejection::io)?;
            }
        }
        if bytes != e.bytes {
            return Err(VerifyError::SizeMismatch {
                path: e.path.clone(),
                expected: e.bytes,
                actual: bytes,
            }
            .into());
        }
        Ok(hasher.finalize())
    }

    /// Make every rename durable.
    pub async fn finish(self) -> Result<(), Rejection> {
        for dir in &self.synced {
            let d = tokio::fs::File::open(dir).await.map_err(Rejection::io)?;
            d.sync_all().await.map_err(Rejection::io)?;
        }
        Ok(())
    }
}

/// The first `n` bytes of a file (fewer if it is shorter).
pub(super) async fn read_head(path: &Path, n: usize) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt as _;
    let f = tokio::fs::File::open(path).await?;
    let mut head = Vec::with_capacity(n);
    f.take(n as u64).read_to_end(&mut head).await?;
    Ok(head)
}
