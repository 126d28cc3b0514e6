//! Offline verification of a bundle: `ferry verify BUNDLE`, and the first
//! check of a rehydration.
//!
//! Order matters: the signature is checked over the raw bytes of
//! `manifest.json` before anything in the manifest is believed; then the set
//! of entries in the archive must equal the set the manifest lists (nothing
//! missing, nothing added); then every entry is streamed and its blake3 and
//! size compared. Reading an entry stops one byte past the size the signed
//! manifest gives, so a forged or bomb-like entry cannot make verification
//! read more than the manifest promised. Every failure is a [`VerifyError`]
//! with a stable code; success is a [`VerifyReport`].

use super::manifest::{entry_path_is_safe, Manifest, MANIFEST_PATH, SIGNATURE_PATH};
use super::sign::{verify_signature, SignatureError};
use super::writer::{CHUNK_BYTES, ENTRIES_MAX};
use async_zip::tokio::read::fs::ZipFileReader;
use ed25519_dalek::VerifyingKey;
use ferry_engine::{TenantId, Timestamp};
use futures::io::AsyncReadExt as _;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// Largest `manifest.json` accepted.
pub const MANIFEST_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Largest `manifest.sig` accepted.
pub const SIGNATURE_BYTES_MAX: u64 = 4096;

/// Why a bundle failed verification.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read the bundle: {0}")]
    Unreadable(String),
    #[error("not a valid zip archive: {0}")]
    NotZip(String),
    #[error("unsafe entry {path:?}: {reason}")]
    UnsafeEntry { path: String, reason: &'static str },
    #[error("entry {0:?} appears twice")]
    DuplicateEntry(String),
    #[error("too many entries (at most {ENTRIES_MAX})")]
    TooManyEntries,
    #[error("manifest.json is missing")]
    ManifestMissing,
    #[error("manifest.sig is missing")]
    SignatureMissing,
    #[error("{0} is larger than allowed")]
    TooLarge(&'static str),
    #[error("signature check failed: {0}")]
    Signature(SignatureError),
    #[error("manifest.json is not a valid manifest: {0}")]
    ManifestInvalid(String),
    #[error("unsupported bundle format version {0:?}")]
    UnsupportedVersion(String),
    #[error("entry {0:?} is listed in the manifest but not in the bundle")]
    EntryMissing(String),
    #[error("entry {0:?} is in the bundle but not in the manifest")]
    EntryUnexpected(String),
    #[error("entry {path:?} has {actual} bytes, the manifest says {expected}")]
    SizeMismatch {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error("entry {path:?} does not match its blake3 checksum")]
    ChecksumMismatch { path: String },
    #[error("entry {path:?} cannot be decompressed: {reason}")]
    EntryCorrupt { path: String, reason: String },
}

impl VerifyError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Unreadable(_) => "bundle_unreadable",
            VerifyError::NotZip(_) => "bundle_not_zip",
            VerifyError::UnsafeEntry { .. } => "unsafe_entry",
            VerifyError::DuplicateEntry(_) => "duplicate_entry",
            VerifyError::TooManyEntries => "too_many_entries",
            VerifyError::ManifestMissing => "manifest_missing",
            VerifyError::SignatureMissing => "signature_missing",
            VerifyError::TooLarge(_) => "manifest_too_large",
            VerifyError::Signature(SignatureError::WrongKey { .. }) => "signature_key_mismatch",
            VerifyError::Signature(_) => "signature_invalid",
            VerifyError::ManifestInvalid(_) => "manifest_invalid",
            VerifyError::UnsupportedVersion(_) => "unsupported_version",
            VerifyError::EntryMissing(_) => "entry_missing",
            VerifyError::EntryUnexpected(_) => "entry_unexpected",
            VerifyError::SizeMismatch { .. } => "entry_size_mismatch",
            VerifyError::ChecksumMismatch { .. } => "checksum_mismatch",
            VerifyError::EntryCorrupt { .. } => "entry_corrupt",
        }
    }
}

/// What a successful verification established.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub tenant_id: TenantId,
    pub export_id: String,
    pub profile: String,
    pub version: String,
    pub exported_at: Timestamp,
    pub key_id: String,
    /// Entries checked (manifest and signature not counted).
    pub entries: usize,
    /// Uncompressed bytes checked.
    pub total_bytes: u64,
    #[serde(skip)]
    pub manifest: Manifest,
}

/// Read one entry whole, refusing more than `max` bytes.
pub(crate) async fn read_small(
    reader: &ZipFileReader,
    index: usize,
    name: &'static str,
    max: u64,
) -> Result<Vec<u8>, VerifyError> {
    let entry = reader
        .reader_without_entry(index)
        .await
        .map_err(|e| VerifyError::NotZip(e.to_string()))?;
    let mut out = Vec::new();
    let mut limited = entry.take(max + 1);
    limited
        .read_to_end(&mut out)
        .await
        .map_err(|e| VerifyError::EntryCorrupt {
            path: name.to_owned(),
            reason: e.to_string(),
        })?;
    if out.len() as u64 > max {
        return Err(VerifyError::TooLarge(name));
    }
    Ok(out)
}

/// The archive's entries (`index_of`: name to index, directories left out)
/// must be exactly the manifest's entries plus `manifest.json` and
/// `manifest.sig`: nothing missing, nothing added, no entry listed twice or
/// under an unsafe or reserved path. Shared with rehydration's validation.
pub(crate) fn check_entry_set(
    manifest: &Manifest,
    index_of: &HashMap<String, usize>,
) -> Result<(), VerifyError> {
    let mut listed = BTreeSet::new();
    for e in &manifest.entries {
        if !entry_path_is_safe(&e.path) || e.path == MANIFEST_PATH || e.path == SIGNATURE_PATH {
            return Err(VerifyError::ManifestInvalid(format!(
                "bad entry path {:?}",
                e.path
            )));
        }
        if !listed.insert(e.path.as_str()) {
            return Err(VerifyError::ManifestInvalid(format!(
                "entry {:?} listed twice",
                e.path
            )));
        }
    }
    for e in &manifest.entries {
        if !index_of.contains_key(&e.path) {
            return Err(VerifyError::EntryMissing(e.path.clone()));
        }
    }
    let mut present: Vec<&String> = index_of.keys().collect();
    present.sort();
    for name in present {
        if name != MANIFEST_PATH && name != SIGNATURE_PATH && !listed.contains(name.as_str()) {
            return Err(VerifyError::EntryUnexpected(name.clone()));
        }
    }
    Ok(())
}

/// Verify the bundle at `path` against the public key `key`.
pub async fn verify_file(path: &Path, key: &VerifyingKey) -> Result<VerifyReport, VerifyError> {
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| VerifyError::Unreadable(e.to_string()))?;
    if !meta.is_file() {
        return Err(VerifyError::Unreadable("not a regular file".into()));
    }
    let reader = ZipFileReader::new(path).await.map_err(|e| match e {
        async_zip::error::ZipError::UpstreamReadError(io) => {
            VerifyError::Unreadable(io.to_string())
        }
        other => VerifyError::NotZip(other.to_string()),
    })?;

    // 1. The archive's entry table: safe names, no duplicates, no links.
    let stored = reader.file().entries();
    if stored.len() > ENTRIES_MAX + 2 {
        return Err(VerifyError::TooManyEntries);
    }
    let mut index_of: HashMap<String, usize> = HashMap::with_capacity(stored.len());
    for (i, e) in stored.iter().enumerate() {
        let name = e
            .filename()
            .as_str()
            .map_err(|_| VerifyError::UnsafeEntry {
                path: String::from_utf8_lossy(e.filename().as_bytes()).into_owned(),
                reason: "name is not UTF-8",
            })?
            .to_owned();
        let is_dir = name.ends_with('/');
        let bare = name.trim_end_matches('/');
        if !entry_path_is_safe(bare) {
            return Err(VerifyError::UnsafeEntry {
                path: name,
                reason: "path escapes the bundle",
            });
        }
        if let Some(mode) = e.unix_permissions() {
            if mode & 0o170000 == 0o120000 {
                return Err(VerifyError::UnsafeEntry {
                    path: name,
                    reason: "symbolic link",
                });
            }
        }
        if is_dir {
            // Directory entries carry no content; tools add them when repacking.
            if e.uncompressed_size() != 0 {
                return Err(VerifyError::UnsafeEntry {
                    path: name,
                    reason: "directory with content",
                });
            }
            continue;
        }
        if index_of.insert(name.clone(), i).is_some() {
            return Err(VerifyError::DuplicateEntry(name));
        }
    }

    // 2. Signature over the raw manifest bytes, then the manifest itself.
    let manifest_index = *index_of
        .get(MANIFEST_PATH)
        .ok_or(VerifyError::ManifestMissing)?;
    let sig_index = *index_of
        .get(SIGNATURE_PATH)
        .ok_or(VerifyError::SignatureMissing)?;
    let manifest_bytes =
        read_small(&reader, manifest_index, MANIFEST_PATH, MANIFEST_BYTES_MAX).await?;
    let sig_bytes = read_small(&reader, sig_index, SIGNATURE_PATH, SIGNATURE_BYTES_MAX).await?;
    let sig = verify_signature(key, &manifest_bytes, &sig_bytes).map_err(VerifyError::Signature)?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| VerifyError::ManifestInvalid(e.to_string()))?;
    if !manifest.version_supported() {
        return Err(VerifyError::UnsupportedVersion(manifest.version.clone()));
    }

    // 3. The entry sets must be equal.
    check_entry_set(&manifest, &index_of)?;

    // 4. Every entry's size and blake3, streamed and bounded.
    let mut total_bytes = 0u64;
    let mut buf = vec![0u8; CHUNK_BYTES];
    for e in &manifest.entries {
        let index = index_of[&e.path];
        let entry =
            reader
                .reader_without_entry(index)
                .await
                .map_err(|err| VerifyError::EntryCorrupt {
                    path: e.path.clone(),
                    reason: err.to_string(),
                })?;
        let mut limited = entry.take(e.bytes.saturating_add(1));
        let mut hasher = blake3::Hasher::new();
        let mut actual = 0u64;
        loop {
            let n = limited
                .read(&mut buf)
                .await
                .map_err(|err| VerifyError::EntryCorrupt {
                    path: e.path.clone(),
                    reason: err.to_string(),
                })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            actual += n as u64;
        }
        if actual != e.bytes {
            return Err(VerifyError::SizeMismatch {
                path: e.path.clone(),
                expected: e.bytes,
                actual,
            });
        }
        let expected = blake3::Hash::from_hex(&e.blake3)
            .map_err(|_| VerifyError::ManifestInvalid(format!("bad blake3 for {:?}", e.path)))?;
        if hasher.finalize() != expected {
            return Err(VerifyError::ChecksumMismatch {
                path: e.path.clone(),
            });
        }
        total_bytes += actual;
    }

    Ok(VerifyReport {
        tenant_id: manifest.tenant_id.clone(),
        export_id: manifest.export_id.clone(),
        profile: manifest.profile.clone(),
        version: manifest.version.clone(),
        exported_at: manifest.exported_at,
        key_id: sig.key_id,
        entries: manifest.entries.len(),
        total_bytes,
        manifest,
    })
}
