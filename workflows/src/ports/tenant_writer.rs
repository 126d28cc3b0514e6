//! Port: the writing side of a tenant's database, as rehydration sees it.
//!
//! Rehydration reads a bundle's table files (the `lite` NDJSON encoding the
//! export writes, documented in `ferry_storage::tenant_pg::encode_json` and
//! `tenant_sqlite::encode_json`) or its native dump, and writes them back
//! into the tenant through a [`TenantWriter`]. Every call is one database
//! transaction, so a crash inside a call leaves the tenant as it was before
//! the call, and every call is safe to repeat:
//!
//! - [`TenantWriter::delete_rows`] empties tables (children first);
//! - [`TenantWriter::import_group`] empties the group's tables and loads
//!   them in one transaction (a group is one table, or the tables of one
//!   foreign-key cycle), so a repeated group never duplicates rows;
//! - [`TenantWriter::restore_native`] replaces the tenant's rows from a
//!   native dump of the same engine in one transaction;
//! - [`TenantWriter::content_hash`] is the blake3 of the table's `lite`
//!   NDJSON in primary-key order — byte for byte what a `lite` export would
//!   write for it — so verification compares it with the manifest entry's
//!   `blake3`.
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

    /// Delete every row of `tables` in one transaction, referencing tables
    /// first. Returns the rows deleted. Safe to repeat.
    fn delete_rows(&mut self, tables: &[String]) -> Result<u64, PortError>;

    /// Load the tables of one group in one transaction (foreign keys checked
    /// at commit where the database can defer them). With
    /// [`WriteMode::Replace`] each table is emptied first inside the same
    /// transaction. `progress` gets the running row count of the group.
    fn import_group(
        &mut self,
        group: &mut [TableSource<'_>],
        progress: &mut dyn FnMut(u64),
    ) -> Result<Vec<TableWrite>, PortError>;

    /// What [`WriteMode::Merge`] by `key` would do to `table`, without writing.
    fn preview_merge(
        &mut self,
        table: &str,
        key: &[String],
        rows: &mut dyn BufRead,
    ) -> Result<MergePreview, PortError>;

    /// Move every sequence (identity, serial, AUTOINCREMENT) of the tenant
    /// past the largest value its column now holds. Safe to repeat.
    fn reset_sequences(&mut self) -> Result<(), PortError>;

    /// Replace every row of the tenant with the rows of a native dump made
    /// by this engine (`format` as in the manifest, e.g. `sqlite3` or
    /// `pg_dump-custom`), in one transaction, and reset sequences.
    fn restore_native(&mut self, format: &str, dump: &Path) -> Result<(), PortError>;

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
