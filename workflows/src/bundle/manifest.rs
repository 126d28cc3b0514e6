//! `manifest.json`: what a bundle contains and the checksum of every entry.
//!
//! The manifest is the bundle's table of contents and its integrity root: it
//! lists every other entry with its size and blake3, and `manifest.sig`
//! signs its exact bytes. A reader that trusts the signature can therefore
//! trust every entry it checks against the manifest. Field names follow the
//! original export design (`tenantId`, `exportedAt`, `database`, `assets`,
//! `version`), extended with per-entry checksums and a producer.

use crate::ports::audit::AuditAnchor;
use ferry_engine::{TenantId, Timestamp};
use serde::{Deserialize, Serialize};

/// The bundle format version this code writes.
pub const FORMAT_VERSION: &str = "1.0.0";
/// Major versions this code can read.
pub const SUPPORTED_MAJOR: u64 = 1;

pub const MANIFEST_PATH: &str = "manifest.json";
pub const SIGNATURE_PATH: &str = "manifest.sig";
/// Where the tenant's files lie in a bundle: `assets/<path under the
/// tenant's prefix>`.
pub const ASSETS_PREFIX: &str = "assets/";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub tenant_id: TenantId,
    pub export_id: String,
    pub exported_at: Timestamp,
    /// `lite`, `native` or `analytics`.
    pub profile: String,
    /// Bundle format version ([`FORMAT_VERSION`]), not the producer's.
    pub version: String,
    pub database: DatabaseSection,
    pub assets: AssetsSection,
    pub entries: Vec<ManifestEntry>,
    pub producer: Producer,
    /// The head of the tenant's own audit chain when the bundle was
    /// written, signed with the server's key (an [`AuditAnchor`] of the
    /// tenant): a copy of the anchor kept outside the server. Bundles
    /// written before it, and backups, omit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_anchor: Option<AuditAnchor>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSection {
    pub tables: Vec<String>,
    /// Rows over all table files; `None` for a native dump, whose rows are
    /// not counted while dumping.
    pub row_count: Option<u64>,
    /// `ndjson`, `csv`, or the native format (e.g. `sqlite3`).
    pub format: String,
    /// e.g. `sqlite`, `postgresql`.
    pub engine: String,
    /// e.g. `database`, `schema`, `row`.
    pub isolation: String,
    pub schema_fingerprint: String,
    pub date_range: Option<ManifestDateRange>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestDateRange {
    /// `YYYY-MM-DD`, inclusive.
    pub from: chrono::NaiveDate,
    /// `YYYY-MM-DD`, inclusive.
    pub to: chrono::NaiveDate,
    /// The timestamp column filtered on.
    pub column: String,
}

/// The tenant's files in the bundle.
///
/// `included` says whether the bundle carries the tenant's asset set at
/// all (the export asked for assets, or it is a rehydration's backup), as
/// opposed to a bundle exported without them: both may hold no file, and
/// only the first may make a `replace` rehydration delete the tenant's
/// files. Bundles written before the field existed omit it; see
/// [`Manifest::carries_assets`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetsSection {
    /// Paths of the asset files, relative to `assets/`.
    pub files: Vec<String>,
    pub total_size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included: Option<bool>,
}

/// One file of the bundle other than the manifest and its signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestEntry {
    pub path: String,
    /// Uncompressed size.
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// The table this file holds, for table files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// blake3 of the uncompressed content, lowercase hex.
    pub blake3: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Producer {
    pub name: String,
    pub version: String,
}

impl Manifest {
    /// The bytes stored as `manifest.json` (and signed).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Strings, numbers and dates only: serializing cannot fail.
        let mut v = serde_json::to_vec_pretty(self).expect("manifest serializes");
        v.push(b'\n');
        v
    }

    /// Whether the bundle carries the tenant's whole asset set (its
    /// `assets/` entries): what `assets.included` says, and for a bundle
    /// without the field, whether it holds any asset entry (an older
    /// bundle without one may have been exported without assets, so it
    /// never counts as an empty set).
    pub fn carries_assets(&self) -> bool {
        self.assets.included.unwrap_or_else(|| {
            self.entries
                .iter()
                .any(|e| e.path.starts_with(ASSETS_PREFIX))
        })
    }

    pub fn entry(&self, path: &str) -> Option<&ManifestEntry> {
        self.entries.iter().find(|e| e.path == path)
    }

    /// Whether this code can read the manifest's format version.
    pub fn version_supported(&self) -> bool {
        self.version
            .split('.')
            .next()
            .and_then(|m| m.parse::<u64>().ok())
            .is_some_and(|m| m == SUPPORTED_MAJOR)
    }
}

/// Whether an entry path is safe to extract anywhere: relative, `/`
/// separated, no empty, `.` or `..` segments, no backslashes or control
/// characters, and not one of the two reserved names.
pub fn entry_path_is_safe(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 1024
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.chars().any(|c| c.is_control())
        && path
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
        && !(path.len() >= 2 && path.as_bytes()[1] == b':')
}
