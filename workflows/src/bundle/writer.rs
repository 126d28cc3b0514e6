//! The streaming bundle writer.
//!
//! A bundle can be far larger than memory, so every entry is streamed from
//! its source file into a deflated ZIP entry (async_zip's stream writer) in
//! fixed-size chunks, and the blake3 of the uncompressed bytes is computed on
//! the way through. The whole archive's bytes are hashed and counted as they
//! reach the disk, so the final checksum and size cost no second read, and a
//! bundle growing past its size limit is stopped at once. The archive is
//! written to a temporary name, fsynced and renamed, so a crash never leaves
//! a half-written file under the final name. With the same inputs and the
//! same timestamp the output is byte-for-byte identical, so a repeated step
//! reproduces the same checksum.

use super::manifest::{entry_path_is_safe, Manifest, ManifestEntry, MANIFEST_PATH, SIGNATURE_PATH};
use super::sign::BundleSigner;
use async_zip::tokio::write::ZipFileWriter;
use async_zip::{
    AttributeCompatibility, Compression, ZipDateTime, ZipDateTimeBuilder, ZipEntryBuilder,
};
use chrono::{Datelike, Timelike};
use ferry_engine::Timestamp;
use futures::io::AsyncWriteExt as _;
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt as _, BufWriter};

/// Bytes read from a source file per chunk.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// Most entries one bundle may hold (bounded for readers too).
pub const ENTRIES_MAX: usize = 1_000_000;

/// What can go wrong while writing a bundle.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("I/O while writing the bundle: {0}")]
    Io(#[from] io::Error),
    #[error("zip encoding: {0}")]
    Zip(String),
    #[error("the bundle would exceed its size limit of {limit_bytes} bytes")]
    TooLarge { limit_bytes: u64 },
    #[error("unsafe or reserved entry path {0:?}")]
    BadPath(String),
    #[error("duplicate entry path {0:?}")]
    Duplicate(String),
    #[error("too many entries (at most {ENTRIES_MAX})")]
    TooManyEntries,
}

impl WriteError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            WriteError::Io(_) | WriteError::Zip(_) => "bundle_write_failed",
            WriteError::TooLarge { .. } => "bundle_too_large",
            WriteError::BadPath(_) => "unsafe_entry_path",
            WriteError::Duplicate(_) => "duplicate_entry",
            WriteError::TooManyEntries => "too_many_entries",
        }
    }

    /// Whether trying again may help (I/O may; a too-large bundle will not).
    pub fn retryable(&self) -> bool {
        matches!(self, WriteError::Io(_) | WriteError::Zip(_))
    }
}

/// Hashes and counts every byte written through it and refuses to grow past
/// a limit. The limit flag tells a real I/O error from the limit being hit.
struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
    bytes: u64,
    limit_bytes: u64,
    over_limit: Arc<AtomicBool>,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for HashingWriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.bytes + buf.len() as u64 > self.limit_bytes {
            self.over_limit.store(true, Ordering::SeqCst);
            return Poll::Ready(Err(io::Error::other("bundle size limit reached")));
        }
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.hasher.update(&buf[..n]);
                this.bytes += n as u64;
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A finished bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedBundle {
    pub path: PathBuf,
    pub size_bytes: u64,
    /// blake3 of the whole archive, hex.
    pub checksum: String,
}

/// Writes one bundle, entry by entry.
pub struct BundleWriter {
    zip: ZipFileWriter<HashingWriter<BufWriter<File>>>,
    tmp_path: PathBuf,
    final_path: PathBuf,
    names: HashSet<String>,
    entries: Vec<ManifestEntry>,
    modified: ZipDateTime,
    limit_bytes: u64,
    over_limit: Arc<AtomicBool>,
}

fn zip_time(at: &Timestamp) -> ZipDateTime {
    // ZIP (DOS) time cannot hold years before 1980; clamp rather than fail.
    let year = at.year().clamp(1980, 2107);
    ZipDateTimeBuilder::new()
        .year(year)
        .month(at.month())
        .day(at.day())
        .hour(at.hour())
        .minute(at.minute())
        .second(at.second())
        .build()
}

impl BundleWriter {
    /// Start writing the archive that will end up at `path`. Entries carry
    /// `modified` as their time, so equal inputs give equal archives.
    pub async fn create(
        path: &Path,
        modified: Timestamp,
        limit_bytes: u64,
    ) -> Result<Self, WriteError> {
        let file_name = path
            .file_name()
            .ok_or_else(|| WriteError::BadPath(path.display().to_string()))?;
        let mut tmp_name = file_name.to_os_string();
        tmp_name.push(".tmp");
        let tmp_path = path.with_file_name(tmp_name);
        let file = File::create(&tmp_path).await?;
        let over_limit = Arc::new(AtomicBool::new(false));
        let out = HashingWriter {
            inner: BufWriter::with_capacity(CHUNK_BYTES, file),
            hasher: blake3::Hasher::new(),
            bytes: 0,
            limit_bytes,
            over_limit: over_limit.clone(),
        };
        Ok(BundleWriter {
            zip: ZipFileWriter::with_tokio(out),
            tmp_path,
            final_path: path.to_owned(),
            names: HashSet::new(),
            entries: Vec::new(),
            modified: zip_time(&modified),
            limit_bytes,
            over_limit,
        })
    }

    fn zip_err(&self, e: async_zip::error::ZipError) -> WriteError {
        if self.over_limit.load(Ordering::SeqCst) {
            WriteError::TooLarge {
                limit_bytes: self.limit_bytes,
            }
        } else {
            WriteError::Zip(e.to_string())
        }
    }

    fn claim(&mut self, path: &str, reserved_ok: bool) -> Result<(), WriteError> {
        let reserved = path == MANIFEST_PATH || path == SIGNATURE_PATH;
        if !entry_path_is_safe(path) || (reserved && !reserved_ok) {
            return Err(WriteError::BadPath(path.to_owned()));
        }
        if self.names.len() >= ENTRIES_MAX {
            return Err(WriteError::TooManyEntries);
        }
        if !self.names.insert(path.to_owned()) {
            return Err(WriteError::Duplicate(path.to_owned()));
        }
        Ok(())
    }

    fn entry_builder(&self, path: &str) -> ZipEntryBuilder {
        ZipEntryBuilder::new(path.to_owned().into(), Compression::Deflate)
            .last_modification_date(self.modified)
            .attribute_compatibility(AttributeCompatibility::Unix)
            // A regular file, rw-r--r--.
            .unix_permissions(0o100644)
    }

    /// Stream the file at `source` into a new entry `path`, hashing it.
    /// `rows`/`table` are carried into the manifest entry.
    pub async fn add_file(
        &mut self,
        path: &str,
        source: &Path,
        rows: Option<u64>,
        table: Option<String>,
    ) -> Result<ManifestEntry, WriteError> {
        self.claim(path, false)?;
        let mut src = File::open(source).await?;
        let builder = self.entry_builder(path);
        let mut hasher = blake3::Hasher::new();
        let mut bytes = 0u64;
        let mut buf = vec![0u8; CHUNK_BYTES];
        let over_limit = self.over_limit.clone();
        let limit_bytes = self.limit_bytes;
        let map_io = |e: io::Error| {
            if over_limit.load(Ordering::SeqCst) {
                WriteError::TooLarge { limit_bytes }
            } else {
                WriteError::Io(e)
            }
        };
        let mut w = match self.zip.write_entry_stream(builder).await {
            Ok(w) => w,
            Err(e) => {
                return Err(if over_limit.load(Ordering::SeqCst) {
                    WriteError::TooLarge { limit_bytes }
                } else {
                    WriteError::Zip(e.to_string())
                })
            }
        };
        loop {
            let n = src.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            bytes += n as u64;
            w.write_all(&buf[..n]).await.map_err(map_io)?;
        }
        if let Err(e) = w.close().await {
            return Err(if over_limit.load(Ordering::SeqCst) {
                WriteError::TooLarge { limit_bytes }
            } else {
                WriteError::Zip(e.to_string())
            });
        }
        let entry = ManifestEntry {
            path: path.to_owned(),
            bytes,
            rows,
            table,
            blake3: hasher.finalize().to_hex().to_string(),
        };
        self.entries.push(entry.clone());
        Ok(entry)
    }

    /// Add a small in-memory entry (the manifest and its signature). These
    /// are the only entries not listed in the manifest.
    pub async fn add_bytes(&mut self, path: &str, data: &[u8]) -> Result<(), WriteError> {
        self.claim(path, true)?;
        let builder = self.entry_builder(path);
        if let Err(e) = self.zip.write_entry_whole(builder, data).await {
            return Err(self.zip_err(e));
        }
        Ok(())
    }

    /// The manifest entries of the files added so far, in order.
    pub fn entries(&self) -> &[ManifestEntry] {
        &self.entries
    }

    /// Complete `manifest` with the entries written so far, sign it, add
    /// `manifest.json` and `manifest.sig`, and finish the archive.
    pub async fn finish_signed(
        mut self,
        mut manifest: Manifest,
        signer: &BundleSigner,
    ) -> Result<(FinishedBundle, Manifest), WriteError> {
        manifest.entries = self.entries.clone();
        let bytes = manifest.to_bytes();
        let sig = signer.sign(&bytes);
        self.add_bytes(MANIFEST_PATH, &bytes).await?;
        self.add_bytes(SIGNATURE_PATH, &sig.to_bytes()).await?;
        let done = self.finish().await?;
        Ok((done, manifest))
    }

    /// Finish the archive, fsync it and move it to its final name.
    pub async fn finish(self) -> Result<FinishedBundle, WriteError> {
        let over_limit = self.over_limit.clone();
        let limit_bytes = self.limit_bytes;
        let compat = match self.zip.close().await {
            Ok(c) => c,
            Err(e) => {
                return Err(if over_limit.load(Ordering::SeqCst) {
                    WriteError::TooLarge { limit_bytes }
                } else {
                    WriteError::Zip(e.to_string())
                })
            }
        };
        let mut out = compat.into_inner();
        out.inner.flush().await?;
        out.inner.get_mut().sync_all().await?;
        let checksum = out.hasher.finalize().to_hex().to_string();
        let size_bytes = out.bytes;
        drop(out);
        tokio::fs::rename(&self.tmp_path, &self.final_path).await?;
        sync_parent(&self.final_path).await?;
        Ok(FinishedBundle {
            path: self.final_path,
            size_bytes,
            checksum,
        })
    }

    /// Give up: remove the temporary file.
    pub async fn abort(self) {
        let tmp = self.tmp_path.clone();
        drop(self);
        // Best effort: a leftover temporary file is overwritten next time.
        let _ = tokio::fs::remove_file(tmp).await;
    }
}

/// fsync a file's directory, so a rename into it is durable.
pub async fn sync_parent(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        File::open(dir).await?.sync_all().await?;
    }
    Ok(())
}

/// blake3 and size of a file, streamed.
pub async fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    let mut f = File::open(path).await?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((hasher.finalize().to_hex().to_string(), bytes))
}
