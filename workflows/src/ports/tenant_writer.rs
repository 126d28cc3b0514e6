//! Port: the writing side of a tenant's database, as rehydration sees it.
//!
//! Rehydration reads a bundle's table files (the `lite` NDJSON encoding the
//! export writes, documented in `ferry_storage::tenant_pg::encode_json` and
//! `tenant_sqlite::encode_json`) or its native dump, and puts them in place
//! of the tenant's rows with **one** call, [`TenantWriter::load`]: one
//! database transaction that empties the replaced tables, loads every
//! table, re-checks every constraint in bulk, verifies the result against
//! the bundle ([`Verify`]) and commits only when the verification passed.
//! Whatever goes wrong before the commit — a row that does not fit, a
//! foreign key, a failed verification, a cancel, a lost connection, the
//! process killed — leaves exactly the old rows: the database guarantees
//! it, no compensation has to. The call is safe to repeat: a replace loads
//! the same rows again, a merge upserts the same rows again.
//!
//! The other calls read: [`TenantWriter::content_hash`] is the blake3 of
//! the table's `lite` NDJSON in primary-key order — byte for byte what a
//! `lite` export would write for it — so verification compares it with the
//! manifest entry's `blake3`.
//!
//! Nothing here names a table: names come from the tenant's own schema,
//! and an implementation refuses a table the tenant does not have
//! (`unknown_table`) and a row that does not fit its table
//! (`row_invalid`, with the line number).

use super::tenant::SchemaInfo;
use super::PortError;
use serde::{Deserialize, Serialize};
use std::io::BufRead;
use std::path::Path;

/// The permanent error of a load whose result differs from what it was
/// to verify (nothing was committed).
pub const VERIFY_MISMATCH: &str = "verify_mismatch";

/// How rows are written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "mode")]
pub enum WriteMode {
    /// The group's tables are emptied, then every row is inserted.
    Replace,
    /// Rows are upserted by `key` (the primary key, or a configured natural
    /// key such as `external_account_id` that has a unique index); nothing
    /// is deleted. An empty `key` means the table's primary key.
    Merge { key: Vec<String> },
}

/// One table's rows to load: `lite` NDJSON, one JSON object per line.
pub struct TableSource<'a> {
    pub table: String,
    pub mode: WriteMode,
    pub rows: &'a mut dyn BufRead,
}

/// What loading one table did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableWrite {
    pub table: String,
    pub inserted: u64,
    pub updated: u64,
}

/// What a merge would do to one table, computed without writing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MergePreview {
    /// Rows in the bundle whose key is not in the table.
    pub will_insert: u64,
    /// Rows in the bundle whose key is in the table with other values.
    pub will_update: u64,
    /// Rows whose key is in the table with the same values.
    pub unchanged: u64,
    /// Rows that would violate another unique constraint of the table.
    pub conflicts: u64,
}

/// What one [`TenantWriter::load`] puts in place.
pub enum LoadSource<'a> {
    /// `lite` table files, each written with its mode. Tables not listed
    /// are not touched.
    Lite(Vec<TableSource<'a>>),
    /// A native dump made by this engine (`format` as in the manifest,
    /// e.g. `sqlite3` or `pg_dump-custom`): every table of the tenant is
    /// replaced by the dump's rows.
    Native { format: String, dump: &'a Path },
}

/// What the tenant must hold before a load commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Each listed table's rows and content hash (a replace from `lite`,
    /// a backup's restore).
    Digests(Vec<TableDigest>),
    /// Each listed table's row count (a native dump's).
    Counts(Vec<(String, u64)>),
    /// Each merged table holds its rows from before the load plus the
    /// rows the load inserted.
    Merged,
}

/// The row counts a merge must end with: each table's rows before the
/// load plus the rows the load inserted.
pub fn merged_counts(before: &[(String, u64)], written: &[TableWrite]) -> Vec<(String, u64)> {
    before
        .iter()
        .map(|(table, rows)| {
            let inserted = written
                .iter()
                .find(|w| &w.table == table)
                .map_or(0, |w| w.inserted);
            (table.clone(), rows + inserted)
        })
        .collect()
}

/// The error of a load whose result differs from what it was to verify
/// in `tables` (its transaction is rolled back).
pub fn verify_failed(tables: &[String]) -> PortError {
    PortError::permanent(
        VERIFY_MISMATCH,
        format!(
            "after loading, these tables differ from the bundle (nothing was committed): {}",
            tables.join(", ")
        ),
    )
}

/// One atomic load.
pub struct LoadPlan<'a> {
    pub source: LoadSource<'a>,
    pub verify: Verify,
    /// With [`Verify::Digests`]: when the tenant already holds exactly
    /// those digests, write nothing (a rollback that finds the old data in
    /// place). Checked inside the load's transaction, after any other load
    /// of the tenant ended.
    pub unless_verified: bool,
    /// A trial: everything is done and verified, then rolled back, so the
    /// outcome (or the error) says what the load would do. It holds the
    /// same locks as a load while it runs.
    pub trial: bool,
}

/// What a load did, once committed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadOutcome {
    /// Rows deleted from the replaced tables.
    pub deleted: u64,
    pub tables: Vec<TableWrite>,
    /// `unless_verified` found the data in place: nothing was written.
    pub unchanged: bool,
}

/// Told about a load's progress from inside its transaction. An error
/// returned here ends the load and rolls it back (a cancel, a test's
/// injected fault).
pub trait LoadObserver {
    /// `rows` of `table` are written so far (called every few thousand
    /// rows and when the table is done).
    fn rows(&mut self, table: &str, rows: u64) -> Result<(), PortError>;
    /// Everything is loaded and verified; the commit is next.
    fn before_commit(&mut self) -> Result<(), PortError>;
}

/// Something about the tenant's schema that makes a load slow or risky,
/// shown in the preview (it does not stop the rehydration).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadWarning {
    /// Stable code, e.g. `unindexed_foreign_key`.
    pub code: String,
    pub table: String,
    pub message: String,
}

/// A table's rows and content hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableDigest {
    pub table: String,
    pub rows: u64,
    /// blake3 (lowercase hex) of the table's `lite` NDJSON in primary-key order.
    pub blake3: String,
}

/// A tenant's database opened for writing. Blocking: callers run it on a
/// blocking thread.
pub trait TenantWriter: Send {
    /// The tenant's schema as it is now (the target of compatibility checks).
    fn schema(&mut self) -> Result<SchemaInfo, PortError>;

    /// Rows in `table` now.
    fn count_rows(&mut self, table: &str) -> Result<u64, PortError>;

    /// Rows and content hash of `table` now.
    fn content_hash(&mut self, table: &str) -> Result<TableDigest, PortError>;

    /// Put `plan.source` in place of the tenant's rows, atomically (see
    /// the module doc): one transaction, committed only after `plan.verify`
    /// passed, sequences moved past the loaded keys and derived data
    /// (materialized views) refreshed. Only one load of a tenant runs at a
    /// time; another waits for it. A verification that fails is the
    /// permanent [`VERIFY_MISMATCH`].
    fn load(
        &mut self,
        plan: LoadPlan<'_>,
        observer: &mut dyn LoadObserver,
    ) -> Result<LoadOutcome, PortError>;

    /// What in the schema of `tables` makes their load slow or risky (see
    /// [`LoadWarning`]); none by default.
    fn load_warnings(&mut self, tables: &[String]) -> Result<Vec<LoadWarning>, PortError> {
        let _ = tables;
        Ok(Vec::new())
    }

    /// What [`WriteMode::Merge`] by `key` would do to `table`, without writing.
    fn preview_merge(
        &mut self,
        table: &str,
        key: &[String],
        rows: &mut dyn BufRead,
    ) -> Result<MergePreview, PortError>;

    /// Rows per table in a native dump made by this engine, read without
    /// restoring it (validation checks them, verification compares them).
    fn native_row_counts(
        &mut self,
        format: &str,
        dump: &Path,
    ) -> Result<Vec<(String, u64)>, PortError>;

    /// Mark the tenant as under maintenance (`true`) or active again, where
    /// the backend keeps such a flag (the tenant registry). Safe to repeat.
    fn set_maintenance(&mut self, on: bool) -> Result<(), PortError>;
}
