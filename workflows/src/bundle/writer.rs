//! The streaming bundle writer.
//!
//! A bundle can be far larger than memory, so every entry is streamed in
//! fixed-size chunks. An entry comes in one of two ways: [`BundleWriter::add_file`]
//! deflates a plain file on the way through (assets, small files), while
//! [`BundleWriter::add_packed`] copies data that the producer already
//! compressed or chose to store ([`Packed`]): the export compresses each
//! table file on a second core while the next rows stream, so bundling is
//! only a copy. The blake3 of every entry's uncompressed bytes goes into the
//! manifest; the whole archive's bytes are hashed and counted as they reach
//! the disk, so the final checksum and size cost no second read, and a
//! bundle growing past its size limit is stopped at once. The ZIP framing
//! comes from [`super::zip`]. The archive is written to a temporary name,
//! fsynced and renamed, so a crash never leaves a half-written file under
//! the final name. With the same inputs and the same timestamp the output
//! is byte-for-byte identical, so a repeated step reproduces the same
//! checksum.

use super::manifest::{entry_path_is_safe, Manifest, ManifestEntry, MANIFEST_PATH, SIGNATURE_PATH};
use super::sign::BundleSigner;
use super::zip::{self, METHOD_DEFLATE, METHOD_STORED};
use chrono::{Datelike, Timelike};
use ferry_engine::Timestamp;
use flate2::write::DeflateEncoder;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::{self, Write as _};
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
/// The deflate level of bundle entries (0–9). Level 1 was chosen by
/// measurement (bench/results/compression-levels-*.md): on table dumps it
/// compresses several times faster than the zlib default 6 for an archive
/// about a fifth larger, and the export's wall time is bound by CPU.
pub const DEFLATE_LEVEL: u32 = 1;

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

/// How a packed entry's data is encoded in the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackMethod {
    /// As is (data that is compressed already).
    Stored,
    /// A raw deflate stream (RFC 1951).
    Deflate,
}

impl PackMethod {
    fn zip_method(self) -> u16 {
        match self {
            PackMethod::Stored => METHOD_STORED,
            PackMethod::Deflate => METHOD_DEFLATE,
        }
    }
}

/// An entry's data as its producer encoded it, ready to be copied into
/// the archive: the method, the CRC-32 of the uncompressed bytes (what ZIP
/// readers check), and the size and blake3 of the encoded bytes (what the
/// bundle step checks before it trusts the work file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Packed {
    pub method: PackMethod,
    pub crc32: u32,
    pub bytes: u64,
    pub blake3: String,
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

/// The blake3 (hex) and size of the bytes a packed entry was copied from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopiedData {
    pub blake3: String,
    pub bytes: u64,
}

/// Writes one bundle, entry by entry.
pub struct BundleWriter {
    out: HashingWriter<BufWriter<File>>,
    tmp_path: PathBuf,
    final_path: PathBuf,
    names: HashSet<String>,
    entries: Vec<ManifestEntry>,
    directory: Vec<zip::Entry>,
    /// MS-DOS time and date of every entry.
    modified: (u16, u16),
    limit_bytes: u64,
    over_limit: Arc<AtomicBool>,
}

/// MS-DOS time and date. DOS time cannot hold years before 1980 or after
/// 2107; clamp rather than fail.
fn dos_time(at: &Timestamp) -> (u16, u16) {
    let year = at.year().clamp(1980, 2107) as u16;
    let time = ((at.hour() as u16) << 11) | ((at.minute() as u16) << 5) | (at.second() as u16 / 2);
    let date = ((year - 1980) << 9) | ((at.month() as u16) << 5) | at.day() as u16;
    (time, date)
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
            out,
            tmp_path,
            final_path: path.to_owned(),
            names: HashSet::new(),
            entries: Vec::new(),
            directory: Vec::new(),
            modified: dos_time(&modified),
            limit_bytes,
            over_limit,
        })
    }

    /// Write archive bytes; hitting the size limit is `TooLarge`.
    async fn write(&mut self, data: &[u8]) -> Result<(), WriteError> {
        match self.out.write_all(data).await {
            Ok(()) => Ok(()),
            Err(_) if self.over_limit.load(Ordering::SeqCst) => Err(WriteError::TooLarge {
                limit_bytes: self.limit_bytes,
            }),
            Err(e) => Err(WriteError::Io(e)),
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

    /// Stream the file at `source` into a new deflated entry `path`,
    /// hashing it. `rows`/`table` are carried into the manifest entry.
    pub async fn add_file(
        &mut self,
        path: &str,
        source: &Path,
        rows: Option<u64>,
        table: Option<String>,
    ) -> Result<ManifestEntry, WriteError> {
        self.claim(path, false)?;
        let mut src = File::open(source).await?;
        let source_bytes = src.metadata().await?.len();
        let mut entry = zip::Entry::streamed(path, self.modified, source_bytes, self.out.bytes);
        self.write(&zip::local_header(&entry)).await?;
        let mut hasher = blake3::Hasher::new();
        let mut crc = crc32fast::Hasher::new();
        let mut bytes = 0u64;
        let mut compressed = 0u64;
        let mut buf = vec![0u8; CHUNK_BYTES];
        let mut encoder = DeflateEncoder::new(
            Vec::with_capacity(CHUNK_BYTES),
            flate2::Compression::new(DEFLATE_LEVEL),
        );
        loop {
            let n = src.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            crc.update(&buf[..n]);
            bytes += n as u64;
            encoder.write_all(&buf[..n])?;
            let out = std::mem::take(encoder.get_mut());
            compressed += out.len() as u64;
            self.write(&out).await?;
            *encoder.get_mut() = reuse(out);
        }
        let tail = encoder.finish()?;
        compressed += tail.len() as u64;
        self.write(&tail).await?;
        entry
            .streamed_done(crc.finalize(), compressed, bytes)
            .map_err(WriteError::Zip)?;
        self.write(&zip::data_descriptor(&entry)).await?;
        self.directory.push(entry);
        let blake3 = hasher.finalize().to_hex().to_string();
        Ok(self.record(path, bytes, rows, table, blake3))
    }

    /// Copy `packed`, the encoded data of entry `path` held in file
    /// `source`, into the archive as it is. `bytes` and `blake3` describe
    /// the uncompressed data (for the manifest), `rows`/`table` are carried
    /// into it. Returns the blake3 and size of what was copied, which the
    /// caller compares with what it recorded when it wrote the file.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_packed(
        &mut self,
        path: &str,
        source: &Path,
        packed: &Packed,
        bytes: u64,
        blake3: &str,
        rows: Option<u64>,
        table: Option<String>,
    ) -> Result<CopiedData, WriteError> {
        self.claim(path, false)?;
        let mut src = File::open(source).await?;
        let entry = zip::Entry::known(
            path,
            packed.method.zip_method(),
            self.modified,
            packed.crc32,
            packed.bytes,
            bytes,
            self.out.bytes,
        );
        self.write(&zip::local_header(&entry)).await?;
        let mut hasher = blake3::Hasher::new();
        let mut copied = 0u64;
        let mut buf = vec![0u8; CHUNK_BYTES];
        // Never copy more than the header announced, whatever the file holds.
        while copied < packed.bytes {
            let want = (packed.bytes - copied).min(CHUNK_BYTES as u64) as usize;
            let n = src.read(&mut buf[..want]).await?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            copied += n as u64;
            self.write(&buf[..n]).await?;
        }
        self.directory.push(entry);
        self.record(path, bytes, rows, table, blake3.to_owned());
        Ok(CopiedData {
            blake3: hasher.finalize().to_hex().to_string(),
            bytes: copied,
        })
    }

    /// Add the manifest entry of the entry just written.
    fn record(
        &mut self,
        path: &str,
        bytes: u64,
        rows: Option<u64>,
        table: Option<String>,
        blake3: String,
    ) -> ManifestEntry {
        let entry = ManifestEntry {
            path: path.to_owned(),
            bytes,
            rows,
            table,
            blake3,
        };
        self.entries.push(entry.clone());
        entry
    }

    /// Add a small in-memory entry (the manifest and its signature). These
    /// are the only entries not listed in the manifest.
    pub async fn add_bytes(&mut self, path: &str, data: &[u8]) -> Result<(), WriteError> {
        self.claim(path, true)?;
        let mut encoder = DeflateEncoder::new(
            Vec::with_capacity(data.len() / 2),
            flate2::Compression::new(DEFLATE_LEVEL),
        );
        encoder.write_all(data)?;
        let compressed = encoder.finish()?;
        let entry = zip::Entry::known(
            path,
            METHOD_DEFLATE,
            self.modified,
            crc32fast::hash(data),
            compressed.len() as u64,
            data.len() as u64,
            self.out.bytes,
        );
        self.write(&zip::local_header(&entry)).await?;
        self.write(&compressed).await?;
        self.directory.push(entry);
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

    /// Write the central directory, fsync the archive and move it to its
    /// final name.
    pub async fn finish(mut self) -> Result<FinishedBundle, WriteError> {
        let directory_offset = self.out.bytes;
        let mut records = Vec::with_capacity(CHUNK_BYTES);
        for e in std::mem::take(&mut self.directory).iter() {
            records.extend_from_slice(&zip::central_record(e));
            if records.len() >= CHUNK_BYTES {
                self.write(&records).await?;
                records.clear();
            }
        }
        self.write(&records).await?;
        let end_offset = self.out.bytes;
        let count = self.names.len() as u64;
        let end = zip::end_records(
            count,
            directory_offset,
            end_offset - directory_offset,
            end_offset,
        );
        self.write(&end).await?;
        self.out.inner.flush().await?;
        self.out.inner.get_mut().sync_all().await?;
        let checksum = self.out.hasher.finalize().to_hex().to_string();
        let size_bytes = self.out.bytes;
        drop(self.out);
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

/// An emptied buffer to compress into again (keeps its allocation).
fn reuse(mut v: Vec<u8>) -> Vec<u8> {
    v.clear();
    v
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
    hash_reader(File::open(path).await?).await
}

/// blake3 and size of everything `f` yields (a file, an object), streamed.
pub async fn hash_reader(mut f: impl tokio::io::AsyncRead + Unpin) -> io::Result<(String, u64)> {
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
