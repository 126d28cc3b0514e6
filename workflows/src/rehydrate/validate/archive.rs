//! The archive as its central directory describes it, checked before any
//! entry is read.
//!
//! async_zip trusts the end record's entry count (it reserves a vector of
//! that many entries) and reads as many directory records as it is told,
//! so the end records are parsed here first and the directory walked once
//! with every length bounded: a forged count or an oversized directory is
//! refused before async_zip allocates for it. Then every entry's name, type
//! (the Unix mode in the external attributes), uniqueness and declared
//! sizes are checked against [`Limits`].

use super::{Limits, Rejection};
use crate::bundle::manifest::entry_path_is_safe;
use crate::bundle::zip::{CENTRAL_SIG, END64_SIG, LOCATOR64_SIG};
use async_zip::tokio::read::fs::ZipFileReader;
use std::collections::HashMap;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

const END_SIG: [u8; 4] = [0x50, 0x4b, 0x05, 0x06];
const END_BYTES: u64 = 22;
const LOCATOR64_BYTES: u64 = 20;
const END64_BYTES: usize = 56;
const CENTRAL_BYTES: usize = 46;
/// The end record may be followed by a comment of up to 64 KiB.
const END_SEARCH_BYTES: u64 = END_BYTES + 4 + u16::MAX as u64;

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;
const S_IFLNK: u32 = 0o120000;

/// An opened archive whose entry table passed every check.
pub(super) struct Archive {
    pub reader: ZipFileReader,
    /// File entries (no directories) by name.
    pub index_of: HashMap<String, usize>,
    /// Size of the archive file.
    pub file_bytes: u64,
}

impl Archive {
    pub fn index(&self, name: &str) -> Option<usize> {
        self.index_of.get(name).copied()
    }

    /// The uncompressed size the central directory declares for `name`.
    pub fn declared_bytes(&self, name: &str) -> u64 {
        self.index(name)
            .map(|i| self.reader.file().entries()[i].uncompressed_size())
            .unwrap_or(0)
    }
}

fn not_zip(why: impl Into<String>) -> Rejection {
    Rejection::new("bundle_not_zip", why)
}

fn u16_at(b: &[u8], at: usize) -> u64 {
    u16::from_le_bytes([b[at], b[at + 1]]) as u64
}

fn u32_at(b: &[u8], at: usize) -> u64 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes")) as u64
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// What the end records say about the central directory.
struct Directory {
    entries: u64,
    offset: u64,
    bytes: u64,
}

/// Find and parse the end record (and the ZIP64 one, where present) the
/// way async_zip does: the last end signature in the file's tail.
fn end_records(f: &mut std::fs::File, len: u64) -> Result<Directory, Rejection> {
    let io = |e: io::Error| not_zip(format!("cannot read the end record: {e}"));
    let tail_start = len.saturating_sub(END_SEARCH_BYTES);
    let mut tail = Vec::new();
    f.seek(SeekFrom::Start(tail_start)).map_err(io)?;
    f.by_ref()
        .take(END_SEARCH_BYTES)
        .read_to_end(&mut tail)
        .map_err(io)?;
    let at = tail
        .windows(4)
        .rposition(|w| w == END_SIG)
        .ok_or_else(|| not_zip("no end of central directory record (truncated?)"))?;
    let end = &tail[at..];
    if (end.len() as u64) < END_BYTES {
        return Err(not_zip("the end record is cut short"));
    }
    let mut dir = Directory {
        entries: u16_at(end, 10),
        bytes: u32_at(end, 12),
        offset: u32_at(end, 16),
    };
    let (disk, cd_disk, on_disk) = (u16_at(end, 4), u16_at(end, 6), u16_at(end, 8));
    let mut split = disk != cd_disk || on_disk != dir.entries;
    let end_pos = tail_start + at as u64;
    if end_pos >= LOCATOR64_BYTES {
        let mut loc = [0u8; LOCATOR64_BYTES as usize];
        f.seek(SeekFrom::Start(end_pos - LOCATOR64_BYTES))
            .map_err(io)?;
        f.read_exact(&mut loc).map_err(io)?;
        if u32_at(&loc, 0) == LOCATOR64_SIG as u64 {
            let mut rec = [0u8; END64_BYTES];
            f.seek(SeekFrom::Start(u64_at(&loc, 8))).map_err(io)?;
            f.read_exact(&mut rec).map_err(io)?;
            if u32_at(&rec, 0) != END64_SIG as u64 {
                return Err(not_zip("the ZIP64 end record is missing"));
            }
            split |= u32_at(&rec, 16) != u32_at(&rec, 20) || u64_at(&rec, 24) != u64_at(&rec, 32);
            dir = Directory {
                entries: u64_at(&rec, 32),
                bytes: u64_at(&rec, 40),
                offset: u64_at(&rec, 48),
            };
        }
    }
    if split {
        return Err(Rejection::new(
            "zip_unsupported",
            "split or spanned archives are not supported",
        ));
    }
    Ok(dir)
}

/// Check the end records and walk the central directory, bounded.
fn preflight(path: &Path, limits: &Limits) -> Result<u64, Rejection> {
    let unreadable = |e: io::Error| Rejection::new("bundle_unreadable", e.to_string());
    let mut f = std::fs::File::open(path).map_err(unreadable)?;
    let meta = f.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(Rejection::new("bundle_unreadable", "not a regular file"));
    }
    let len = meta.len();
    let dir = end_records(&mut f, len)?;
    if dir.entries > limits.entries_max as u64 {
        return Err(Rejection::new(
            "too_many_entries",
            format!(
                "{} entries, at most {} allowed",
                dir.entries, limits.entries_max
            ),
        ));
    }
    if dir.bytes > limits.central_directory_bytes_max {
        return Err(Rejection::new(
            "central_directory_too_large",
            format!(
                "the central directory has {} bytes, at most {} allowed",
                dir.bytes, limits.central_directory_bytes_max
            ),
        ));
    }
    if dir
        .offset
        .checked_add(dir.bytes)
        .is_none_or(|end| end > len)
    {
        return Err(not_zip("the central directory lies outside the file"));
    }
    let io = |e: io::Error| not_zip(format!("cannot read the central directory: {e}"));
    f.seek(SeekFrom::Start(dir.offset)).map_err(io)?;
    let mut r = BufReader::new(f.take(dir.bytes));
    let mut header = [0u8; CENTRAL_BYTES];
    for _ in 0..dir.entries {
        r.read_exact(&mut header)
            .map_err(|_| not_zip("the central directory overruns its declared size"))?;
        if u32_at(&header, 0) != CENTRAL_SIG as u64 {
            return Err(not_zip("a central directory record is damaged"));
        }
        let rest = u16_at(&header, 28) + u16_at(&header, 30) + u16_at(&header, 32);
        if io::copy(&mut r.by_ref().take(rest), &mut io::sink()).map_err(io)? != rest {
            return Err(not_zip("the central directory overruns its declared size"));
        }
    }
    Ok(dir.entries)
}

/// Open the archive at `path` and check its entry table.
pub(super) async fn open(path: &Path, limits: &Limits) -> Result<Archive, Rejection> {
    let (p, l) = (path.to_owned(), limits.clone());
    let entries = tokio::task::spawn_blocking(move || preflight(&p, &l))
        .await
        .map_err(|e| Rejection::new("validate_io", format!("archive check panicked: {e}")))??;
    let file_bytes = tokio::fs::metadata(path)
        .await
        .map_err(|e| Rejection::new("bundle_unreadable", e.to_string()))?
        .len();
    let reader = ZipFileReader::new(path).await.map_err(|e| match e {
        async_zip::error::ZipError::UpstreamReadError(io) => {
            Rejection::new("bundle_unreadable", io.to_string())
        }
        other => not_zip(other.to_string()),
    })?;
    if reader.file().entries().len() as u64 != entries {
        return Err(not_zip("the central directory and the end record disagree"));
    }
    let index_of = check_entries(&reader, file_bytes, limits)?;
    Ok(Archive {
        reader,
        index_of,
        file_bytes,
    })
}

/// Names, types, uniqueness and declared sizes of every entry.
fn check_entries(
    reader: &ZipFileReader,
    file_bytes: u64,
    limits: &Limits,
) -> Result<HashMap<String, usize>, Rejection> {
    let stored = reader.file().entries();
    let mut index_of = HashMap::with_capacity(stored.len());
    let mut total = 0u64;
    for (i, e) in stored.iter().enumerate() {
        let name = e.filename().as_str().map_err(|_| {
            Rejection::new(
                "unsafe_path",
                format!(
                    "entry {:?} is not UTF-8",
                    String::from_utf8_lossy(e.filename().as_bytes())
                ),
            )
        })?;
        let is_dir = name.ends_with('/');
        if !entry_path_is_safe(name.trim_end_matches('/')) {
            return Err(Rejection::new(
                "unsafe_path",
                format!("entry {name:?} would be extracted outside the bundle"),
            ));
        }
        // async_zip reports the external attributes' high half as the mode;
        // archives made elsewhere than Unix leave it 0.
        let kind = e.unix_permissions().unwrap_or(0) as u32 & S_IFMT;
        let regular = matches!((is_dir, kind), (_, 0) | (false, S_IFREG) | (true, S_IFDIR));
        if !regular || (is_dir && e.uncompressed_size() != 0) {
            let what = match kind {
                S_IFLNK => "a symbolic link",
                _ if is_dir => "a directory with content",
                _ => "not a regular file",
            };
            return Err(Rejection::new(
                "entry_not_regular",
                format!("entry {name:?} is {what}"),
            ));
        }
        if is_dir {
            continue;
        }
        if index_of.insert(name.to_owned(), i).is_some() {
            return Err(Rejection::new(
                "duplicate_entry",
                format!("entry {name:?} appears twice"),
            ));
        }
        let (size, packed) = (e.uncompressed_size(), e.compressed_size());
        if packed > file_bytes {
            return Err(not_zip(format!(
                "entry {name:?} is larger than the archive"
            )));
        }
        if size > limits.entry_bytes_max {
            return Err(Rejection::new(
                "entry_too_large",
                format!(
                    "entry {name:?} has {size} bytes, at most {} allowed",
                    limits.entry_bytes_max
                ),
            ));
        }
        if ratio_exceeded(size, packed, limits) {
            return Err(Rejection::new(
                "entry_ratio_exceeded",
                format!("entry {name:?} inflates {packed} bytes to {size}"),
            ));
        }
        total = total.saturating_add(size);
        limit_total(total, file_bytes, limits)?;
    }
    Ok(index_of)
}

/// Whether `bytes` inflated from `packed` exceed the ratio limit.
pub(super) fn ratio_exceeded(bytes: u64, packed: u64, limits: &Limits) -> bool {
    bytes > limits.ratio_floor_bytes && bytes > packed.saturating_mul(limits.ratio_max)
}

/// The bounds on all entries together: `total` uncompressed bytes from an
/// archive of `file_bytes`.
pub(super) fn limit_total(total: u64, file_bytes: u64, limits: &Limits) -> Result<(), Rejection> {
    if total > limits.total_bytes_max {
        return Err(Rejection::new(
            "total_too_large",
            format!(
                "the entries hold more than {} bytes",
                limits.total_bytes_max
            ),
        ));
    }
    if ratio_exceeded(total, file_bytes, limits) {
        return Err(Rejection::new(
            "total_ratio_exceeded",
            format!("a {file_bytes}-byte archive inflates to more than {total} bytes"),
        ));
    }
    Ok(())
}
