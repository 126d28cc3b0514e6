//! Validation of a rehydration bundle: everything that can be checked
//! before anything is destroyed, in an order where nothing is believed
//! before it is checked.
//!
//! [`validate`] takes an uploaded bundle, a directory private to this
//! validation (`extract_dir`), the path of the row-level report and a
//! [`Request`] (the caller's tenant, the signing key, the tenant's schema as
//! it is now, the partial table set, merge or replace). It either returns a
//! [`Validated`] bundle, whose entries now lie checked under `extract_dir`,
//! or a [`Rejection`] with a stable code. The checks, in order:
//!
//! 1. **The archive** (`archive.rs`), from the central directory, before
//!    any entry is read: the end records are parsed by hand first, so the
//!    entry count and the central directory's size are bounded before
//!    async_zip allocates anything for them; then every entry must have a
//!    safe relative name, be a regular file or an empty directory (the Unix
//!    mode in the external attributes), appear once, and declare sizes and
//!    a compression ratio within [`Limits`], per entry and overall.
//! 2. **The signature** over the raw bytes of `manifest.json`
//!    (`bundle::sign`), then the manifest itself; its tenant id must equal
//!    the caller's; its format version must be supported; its profile must
//!    be restorable (`analytics` CSV is not).
//! 3. **The entry set** equals the manifest's (`bundle::verify`), and each
//!    entry's declared size equals the manifest's.
//! 4. **Every entry is streamed** (`extract.rs`) to `extract_dir` under a
//!    temporary name, fsynced and renamed, with its blake3 and size checked.
//!    The actual decompressed bytes are bounded while streaming (the
//!    signed size, the declared size, the size limit, the per-entry and the
//!    overall ratio), so a lying header cannot make ferry inflate a bomb.
//!    Table files outside a partial set are checked but not written.
//! 5. **`database/schema.json`** is parsed and must agree with the manifest;
//!    each table has its one table file (lite) or the dump exists and looks
//!    like its format (native).
//! 6. **The schema is compatible with the target** (`schema_check.rs`).
//! 7. **Every row of every lite table parses** (`rows.rs`, `value_kind.rs`)
//!    and its row count equals the manifest's.
//! 8. **Keys** (`keys.rs`, `key_check.rs`): primary keys are unique per
//!    table and every foreign key resolves within the bundle, in bounded
//!    memory: 16-byte blake3 prints of key values are sorted externally in
//!    chunks and merge-joined. Foreign keys are not checked in `merge` mode,
//!    nor when the parent table is outside a partial set: there the parent
//!    row may already exist in the tenant, and the import's own constraints
//!    decide. Two different keys share a print with probability about
//!    n²/2¹²⁹, which is accepted.
//!
//! Row-level failures go to the report (`report.rs`): NDJSON lines
//! `{"code","table","line","column","key","message"}`, at most
//! [`Limits::report_errors_max`], later ones only counted. A bundle-level
//! rejection writes its one line too, so the report always says why. The
//! [`Rejection`] carries the code of the first failure.
//!
//! Nothing is written outside `extract_dir` but the report; on rejection the
//! files this call extracted are removed again. `extract_dir` may be reused
//! by a repeated attempt: every file is written under a temporary name and
//! renamed, so a crash leaves at most a stale temporary file.
//!
//! # Codes
//!
//! | code | meaning |
//! |---|---|
//! | `bundle_unreadable` | the bundle file cannot be read or is not a regular file |
//! | `bundle_not_zip` | no valid ZIP end record or central directory (also a truncated archive) |
//! | `zip_unsupported` | a split/spanned archive |
//! | `too_many_entries` | more entries than [`Limits::entries_max`] |
//! | `central_directory_too_large` | the central directory is larger than [`Limits::central_directory_bytes_max`] |
//! | `unsafe_path` | an absolute path, `..`, a backslash, a drive letter, an empty segment or a non-UTF-8 name |
//! | `entry_not_regular` | a symbolic link, device, FIFO or socket entry, or a directory with content |
//! | `duplicate_entry` | one name twice |
//! | `entry_too_large` | an entry declares or inflates to more than [`Limits::entry_bytes_max`] |
//! | `total_too_large` | all entries together more than [`Limits::total_bytes_max`] |
//! | `entry_ratio_exceeded` | an entry inflates more than [`Limits::ratio_max`] times its compressed size |
//! | `total_ratio_exceeded` | all entries inflate more than [`Limits::ratio_max`] times the archive's size |
//! | `manifest_missing`, `signature_missing` | `manifest.json` / `manifest.sig` absent |
//! | `manifest_too_large` | `manifest.json` or `manifest.sig` larger than allowed |
//! | `signature_invalid` | the signature is malformed or does not match `manifest.json` |
//! | `signature_key_mismatch` | signed with another key than the server's |
//! | `manifest_invalid` | `manifest.json` does not parse, or lists a bad or repeated path |
//! | `tenant_mismatch` | the bundle belongs to another tenant |
//! | `unsupported_version` | the bundle format's major version is not supported |
//! | `profile_not_restorable` | an `analytics` (CSV) or unknown profile |
//! | `entry_missing`, `entry_unexpected` | the archive's entries differ from the manifest's |
//! | `entry_size_mismatch` | an entry's size differs from the manifest's or its ZIP header's |
//! | `checksum_mismatch` | an entry's blake3 differs from the manifest's |
//! | `entry_corrupt` | an entry cannot be decompressed |
//! | `schema_missing`, `schema_invalid` | `database/schema.json` absent, too large or not a schema |
//! | `schema_manifest_mismatch` | the schema's tables or engine differ from the manifest's |
//! | `table_file_missing`, `table_file_extra` | a table without its file, or a file for no (or an already served) table |
//! | `native_dump_missing` | a native bundle without its one dump file |
//! | `native_format_unsupported`, `native_dump_invalid` | an unknown native format, or a dump that does not start like one |
//! | `engine_mismatch` | a native bundle of another database engine |
//! | `schema_table_missing`, `schema_table_extra` | a table of the target is not in the bundle / a table of the bundle is not in the target |
//! | `schema_column_missing`, `schema_column_extra` | the same for columns |
//! | `schema_type_mismatch` | a column's type differs |
//! | `schema_key_mismatch` | a table's primary key differs |
//! | `partial_table_unknown` | a requested table is not in the bundle |
//! | `partial_fk_closure` | replacing the chosen tables would orphan rows of a table not chosen |
//! | `row_invalid` | a row is not a JSON object of exactly the table's columns with fitting values (on SQLite: matching the column's type affinity) |
//! | `row_not_canonical` | a valid row not written as ferry's encoders write it (`canonical.rs`), which the load's verification would refuse |
//! | `row_count_mismatch` | a table file's row count differs from the manifest's |
//! | `duplicate_key` | two rows of a table share a primary key |
//! | `dangling_foreign_key` | a row references a parent row that is not in the bundle |
//! | `validate_io` | ferry's own I/O failed (disk full, ...); the only retryable code |

mod archive;
mod canonical;
mod extract;
mod key_check;
mod keys;
mod rejection;
mod report;
mod rows;
mod schema_check;
mod value_kind;

pub use keys::KeyStats;
pub use rejection::Rejection;
pub use report::write_load_failure as write_load_report;

use crate::bundle::manifest::{
    Manifest, ManifestEntry, ASSETS_PREFIX, MANIFEST_PATH, SIGNATURE_PATH,
};
use crate::bundle::sign::verify_signature;
use crate::bundle::verify::{
    check_entry_set, read_small, VerifyError, MANIFEST_BYTES_MAX, SIGNATURE_BYTES_MAX,
};
use crate::ports::tenant::{foreign_key_order, SchemaInfo, TableInfo};
use ed25519_dalek::VerifyingKey;
use ferry_engine::TenantId;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

/// Where a lite bundle keeps its schema.
pub const SCHEMA_PATH: &str = "database/schema.json";

/// Bounds of everything a bundle can make validation read, write or hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Entries in the archive, manifest, signature and directories included.
    pub entries_max: usize,
    /// Bytes of the central directory (held in memory while reading).
    pub central_directory_bytes_max: u64,
    /// Uncompressed bytes of one entry.
    pub entry_bytes_max: u64,
    /// Uncompressed bytes of all entries.
    pub total_bytes_max: u64,
    /// Most uncompressed bytes per compressed byte, per entry and for the
    /// whole archive (against the archive's file size).
    pub ratio_max: u64,
    /// Entries (and totals) smaller than this are not ratio-checked: a
    /// small repetitive file legitimately compresses far better than 100:1.
    pub ratio_floor_bytes: u64,
    /// Lines written to the report; later failures are only counted.
    pub report_errors_max: u64,
    /// Bytes of one NDJSON row.
    pub line_bytes_max: usize,
    /// Bytes of `database/schema.json`.
    pub schema_bytes_max: u64,
    /// Key prints sorted in memory at once (32 bytes each); more spill to
    /// sorted run files that are merged.
    pub sort_chunk_records: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            entries_max: 100_000,
            central_directory_bytes_max: 64 * 1024 * 1024,
            entry_bytes_max: 64 << 30,
            total_bytes_max: 256 << 30,
            ratio_max: 100,
            ratio_floor_bytes: 1 << 20,
            report_errors_max: 1000,
            line_bytes_max: 64 << 20,
            schema_bytes_max: 64 << 20,
            sort_chunk_records: 512 * 1024,
        }
    }
}

/// What to validate against.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The caller's tenant (from the token, never from the bundle).
    pub tenant: &'a TenantId,
    /// The server's public signing key.
    pub key: &'a VerifyingKey,
    /// The tenant's schema as it is now.
    pub target: &'a SchemaInfo,
    /// A partial rehydration: only these tables.
    pub tables: Option<&'a [String]>,
    /// Merge (upsert) instead of replace: foreign keys are left to the import.
    pub merge: bool,
    pub limits: &'a Limits,
}

/// One checked table file of a lite bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiteTable {
    pub name: String,
    /// The extracted file.
    pub path: PathBuf,
    pub rows: u64,
    pub bytes: u64,
    pub blake3: String,
}

/// The data of a checked bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleData {
    /// The tables in scope, in foreign-key order (parents first).
    Lite { tables: Vec<LiteTable> },
    /// The dump (row-level checks are the tenant store's).
    Native { format: String, file: PathBuf },
}

/// One extracted asset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtractedAsset {
    /// The entry path, `assets/...`.
    pub entry: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub blake3: String,
}

/// A bundle that passed every check.
#[derive(Clone, Debug, PartialEq)]
pub struct Validated {
    pub manifest: Manifest,
    /// `database/schema.json`.
    pub schema: SchemaInfo,
    pub data: BundleData,
    pub assets: Vec<ExtractedAsset>,
    /// Rows parsed and checked (lite; 0 for native).
    pub rows_checked: u64,
    /// How the key checks used memory and disk.
    pub keys: KeyStats,
}

/// Validate the bundle at `bundle`; see the module docs for the order of the
/// checks and the codes.
pub async fn validate(
    bundle: &Path,
    extract_dir: &Path,
    report_path: &Path,
    req: Request<'_>,
) -> Result<Validated, Rejection> {
    let mut written = extract::Written::default();
    let result = checked(bundle, extract_dir, report_path, &req, &mut written).await;
    match result {
        Ok(v) => Ok(v),
        Err(Failure::Bundle(r)) => {
            written.remove_all().await;
            Err(report::write_single(report_path, r).await)
        }
        Err(Failure::Rows(r)) => {
            written.remove_all().await;
            Err(r)
        }
    }
}

/// A failure before the row stage (one report line to write) or after it
/// (the report is written already).
enum Failure {
    Bundle(Rejection),
    Rows(Rejection),
}

impl From<Rejection> for Failure {
    fn from(r: Rejection) -> Self {
        Failure::Bundle(r)
    }
}

impl From<VerifyError> for Failure {
    fn from(e: VerifyError) -> Self {
        Failure::Bundle(e.into())
    }
}

async fn checked(
    bundle: &Path,
    extract_dir: &Path,
    report_path: &Path,
    req: &Request<'_>,
    written: &mut extract::Written,
) -> Result<Validated, Failure> {
    let limits = req.limits;
    // 1. The archive, from its central directory.
    let archive = archive::open(bundle, limits).await?;

    // 2. Signature, manifest, tenant, version, profile.
    let manifest_index = archive
        .index(MANIFEST_PATH)
        .ok_or(VerifyError::ManifestMissing)?;
    let sig_index = archive
        .index(SIGNATURE_PATH)
        .ok_or(VerifyError::SignatureMissing)?;
    let manifest_bytes = read_small(
        &archive.reader,
        manifest_index,
        MANIFEST_PATH,
        MANIFEST_BYTES_MAX,
    )
    .await?;
    let sig_bytes = read_small(
        &archive.reader,
        sig_index,
        SIGNATURE_PATH,
        SIGNATURE_BYTES_MAX,
    )
    .await?;
    verify_signature(req.key, &manifest_bytes, &sig_bytes).map_err(VerifyError::Signature)?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| VerifyError::ManifestInvalid(e.to_string()))?;
    if &manifest.tenant_id != req.tenant {
        return Err(Rejection::new(
            "tenant_mismatch",
            format!(
                "the bundle belongs to tenant {:?}, not to {:?}",
                manifest.tenant_id.as_str(),
                req.tenant.as_str()
            ),
        )
        .into());
    }
    if !manifest.version_supported() {
        return Err(VerifyError::UnsupportedVersion(manifest.version.clone()).into());
    }
    let native = match manifest.profile.as_str() {
        "lite" => false,
        "native" => true,
        other => {
            return Err(Rejection::new(
                "profile_not_restorable",
                format!("a {other:?} bundle cannot be restored; use a lite or native export"),
            )
            .into())
        }
    };

    // 3. The entry set, and each entry's declared size.
    check_entry_set(&manifest, &archive.index_of)?;
    for e in &manifest.entries {
        let declared = archive.declared_bytes(&e.path);
        if declared != e.bytes {
            return Err(VerifyError::SizeMismatch {
                path: e.path.clone(),
                expected: e.bytes,
                actual: declared,
            }
            .into());
        }
    }

    // 4. Stream every entry out, checked. Table files outside a partial
    //    set are checked but not kept.
    if let Some(chosen) = req.tables {
        for t in chosen {
            if !manifest.database.tables.contains(t) {
                return Err(Rejection::new(
                    "partial_table_unknown",
                    format!("table {t:?} is not in the bundle"),
                )
                .into());
            }
        }
    }
    let keep = |e: &ManifestEntry| match (&e.table, req.tables) {
        (Some(t), Some(chosen)) => chosen.contains(t),
        _ => true,
    };
    let mut ex = extract::Extractor::new(&archive, extract_dir, limits, written).await?;
    for e in &manifest.entries {
        ex.entry(e, keep(e)).await?;
    }
    ex.finish().await?;

    // 5. The schema, and the data files it implies.
    let schema = read_schema(&manifest, extract_dir, limits).await?;
    let data = bundle_data(&manifest, &schema, extract_dir, native, req.tables).await?;
    let assets = manifest
        .entries
        .iter()
        .filter(|e| e.path.starts_with(ASSETS_PREFIX))
        .map(|e| ExtractedAsset {
            entry: e.path.clone(),
            path: extract_dir.join(&e.path),
            bytes: e.bytes,
            blake3: e.blake3.clone(),
        })
        .collect();

    // 6. Compatible with the tenant as it is now.
    schema_check::compatible(&schema, req.target, req.tables, req.merge, native)?;

    // 7–8. Rows and keys (lite), on a blocking thread.
    let (rows_checked, keys) = match &data {
        BundleData::Native { .. } => (0, KeyStats::default()),
        BundleData::Lite { tables } => {
            let plan = rows::Plan::new(&schema, req.target, tables, req.merge);
            let work =
                extract_dir.join(format!(".ferry-validate-{}", uuid::Uuid::new_v4().simple()));
            let report_path = report_path.to_owned();
            let limits = limits.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                rows::check_all(&plan, &work, &report_path, &limits)
            })
            .await
            .map_err(|e| Rejection::new("validate_io", format!("row check panicked: {e}")))?;
            match outcome {
                Ok(done) => done,
                Err(rows::RowsFailed::Io(r)) => return Err(Failure::Bundle(r)),
                Err(rows::RowsFailed::Rejected(r)) => return Err(Failure::Rows(r)),
            }
        }
    };
    Ok(Validated {
        manifest,
        schema,
        data,
        assets,
        rows_checked,
        keys,
    })
}

async fn read_schema(
    manifest: &Manifest,
    extract_dir: &Path,
    limits: &Limits,
) -> Result<SchemaInfo, Rejection> {
    let entry = manifest.entry(SCHEMA_PATH).ok_or_else(|| {
        Rejection::new("schema_missing", "the bundle has no database/schema.json")
    })?;
    if entry.bytes > limits.schema_bytes_max {
        return Err(Rejection::new(
            "schema_invalid",
            format!(
                "database/schema.json is larger than {} bytes",
                limits.schema_bytes_max
            ),
        ));
    }
    let bytes = tokio::fs::read(extract_dir.join(SCHEMA_PATH))
        .await
        .map_err(Rejection::io)?;
    let schema: SchemaInfo = serde_json::from_slice(&bytes)
        .map_err(|e| Rejection::new("schema_invalid", format!("database/schema.json: {e}")))?;
    let listed: BTreeSet<&str> = manifest
        .database
        .tables
        .iter()
        .map(String::as_str)
        .collect();
    let mut described = BTreeSet::new();
    for t in &schema.tables {
        if !described.insert(t.name.as_str()) {
            return Err(Rejection::new(
                "schema_invalid",
                format!("table {:?} is described twice", t.name),
            ));
        }
    }
    if listed != described || schema.engine != manifest.database.engine {
        return Err(Rejection::new(
            "schema_manifest_mismatch",
            "database/schema.json describes other tables or another engine than manifest.json",
        ));
    }
    Ok(schema)
}

/// The native dump formats ferry writes: format, engine, how the file starts.
const NATIVE_FORMATS: &[(&str, &str, &[u8])] = &[
    ("sqlite3", "sqlite", b"SQLite format 3\0"),
    ("pg_dump-custom", "postgresql", b"PGDMP"),
    ("pg-copy-script", "postgresql", b""),
];

async fn bundle_data(
    manifest: &Manifest,
    schema: &SchemaInfo,
    extract_dir: &Path,
    native: bool,
    chosen: Option<&[String]>,
) -> Result<BundleData, Rejection> {
    let data_entries: Vec<&ManifestEntry> = manifest
        .entries
        .iter()
        .filter(|e| e.path.starts_with("database/") && e.path != SCHEMA_PATH)
        .collect();
    if native {
        let format = manifest.database.format.clone();
        let Some(&(_, engine, magic)) = NATIVE_FORMATS.iter().find(|(f, _, _)| *f == format) else {
            return Err(Rejection::new(
                "native_format_unsupported",
                format!("native format {format:?} is not known"),
            ));
        };
        let [dump] = data_entries.as_slice() else {
            return Err(Rejection::new(
                "native_dump_missing",
                format!(
                    "a native bundle holds one dump, this one {}",
                    data_entries.len()
                ),
            ));
        };
        let file = extract_dir.join(&dump.path);
        let head = extract::read_head(&file, magic.len())
            .await
            .map_err(Rejection::io)?;
        if engine != schema.engine || head != magic {
            return Err(Rejection::new(
                "native_dump_invalid",
                format!("{} is not a {format} dump of {}", dump.path, schema.engine),
            ));
        }
        return Ok(BundleData::Native { format, file });
    }
    if manifest.database.format != "ndjson" {
        return Err(Rejection::new(
            "profile_not_restorable",
            format!(
                "lite table files must be ndjson, not {:?}",
                manifest.database.format
            ),
        ));
    }
    let mut served = HashSet::new();
    for e in &data_entries {
        let known = e.table.as_deref().and_then(|t| schema.table(t));
        match known {
            Some(t) if e.path.ends_with(".ndjson") && served.insert(t.name.as_str()) => {}
            _ => {
                return Err(Rejection::new(
                    "table_file_extra",
                    format!("{} is not the file of a table of the schema", e.path),
                ))
            }
        }
    }
    let in_scope = |t: &TableInfo| chosen.is_none_or(|c| c.contains(&t.name));
    let ordered = foreign_key_order(schema.tables.iter().collect(), |t| t, false);
    let mut tables = Vec::new();
    for t in ordered {
        let entry = data_entries
            .iter()
            .find(|e| e.table.as_deref() == Some(t.name.as_str()))
            .ok_or_else(|| {
                Rejection::new(
                    "table_file_missing",
                    format!("table {:?} has no file in the bundle", t.name),
                )
            })?;
        let rows = entry.rows.ok_or_else(|| {
            Rejection::new(
                "manifest_invalid",
                format!("{} has no row count in the manifest", entry.path),
            )
        })?;
        if !in_scope(t) {
            continue;
        }
        tables.push(LiteTable {
            name: t.name.clone(),
            path: extract_dir.join(&entry.path),
            rows,
            bytes: entry.bytes,
            blake3: entry.blake3.clone(),
        });
    }
    Ok(BundleData::Lite { tables })
}
