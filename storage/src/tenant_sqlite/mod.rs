//! The embedded default tenant store: one SQLite file per tenant
//! (database-per-tenant isolation), read with diesel.
//!
//! Tenant `acme` lives in `<dir>/acme.sqlite`. An export reads it through a
//! [`SqliteSnapshot`]: a consistent copy taken with `VACUUM INTO` into the
//! workflow's work directory, so every table comes from the same instant
//! while the tenant keeps writing, and a resumed step reads exactly the copy
//! the earlier attempt read (`snapshot.rs`). The schema is discovered by
//! introspection (`introspect.rs`); tables are streamed row by row
//! (`dump.rs`, which also defines the analytics date filter) as NDJSON
//! ([`encode_json`], which documents the lossless value encoding an import
//! relies on) or CSV ([`encode_csv`]). Rehydration writes through a
//! [`SqliteWriter`] (`writer.rs`: transactions, foreign-key checks, merge,
//! native restore), reading the NDJSON back with `decode_json.rs`; the
//! maintenance flag is a marker file (`maintenance.rs`).
//!
//! Error codes: `tenant_not_found`, `unknown_table`, `row_invalid`,
//! `merge_key_invalid`, `foreign_key_violation`, `native_format_unsupported`,
//! `native_dump_missing`, `native_dump_invalid` and `native_schema_mismatch`
//! are permanent; `input_read_failed` is retryable;
//! `tenant_db_busy` (the live file is locked longer than the busy timeout),
//! `tenant_db_io`, `tenant_io` and `output_write_failed` are retryable;
//! `tenant_db_corrupt` and `tenant_db_error` are permanent.

pub(crate) mod conn;
mod decode_json;
mod dump;
pub mod encode_csv;
pub mod encode_json;
mod introspect;
mod maintenance;
mod snapshot;
mod value;
mod writer;

use conn::{io_error, open, OpenMode};
use diesel::SqliteConnection;
use ferry_engine::TenantId;
use ferry_workflows::ports::tenant::{
    NativeInfo, SchemaInfo, TableFormat, TableStats, TenantSnapshot, TenantStore,
};
use ferry_workflows::ports::tenant_writer::TenantWriter;
use ferry_workflows::ports::PortError;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

pub use conn::BUSY_TIMEOUT_MS;
pub use dump::PROGRESS_EVERY_ROWS;
pub use maintenance::MAINTENANCE_FILE_EXTENSION;
pub use snapshot::SNAPSHOT_FILE;
pub use writer::{SqliteWriter, NATIVE_FORMAT};

/// `engine()` of this store.
pub const ENGINE: &str = "sqlite";
/// `isolation()` of this store: each tenant has its own database file.
pub const ISOLATION: &str = "database";
/// Extension of a tenant's database file in the tenants directory.
pub const TENANT_FILE_EXTENSION: &str = "sqlite";

/// Tenant databases as SQLite files in one directory.
#[derive(Clone, Debug)]
pub struct SqliteTenants {
    dir: PathBuf,
    busy_timeout_ms: u32,
}

impl SqliteTenants {
    /// Tenants live in `dir` (e.g. `./ferry-data/tenants`). The directory
    /// need not exist yet: a missing directory has no tenants.
    pub fn new(dir: PathBuf) -> Self {
        SqliteTenants {
            dir,
            busy_timeout_ms: BUSY_TIMEOUT_MS,
        }
    }

    /// How long taking a snapshot waits for the tenant application's write
    /// lock before failing with the retryable `tenant_db_busy`.
    pub fn with_busy_timeout_ms(mut self, busy_timeout_ms: u32) -> Self {
        self.busy_timeout_ms = busy_timeout_ms;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The live database file of `tenant`, whether or not it exists. Tenant
    /// ids are validated (`[a-z0-9_-]`), so the name cannot escape `dir`.
    pub fn db_path(&self, tenant: &TenantId) -> PathBuf {
        tenant_db_path(&self.dir, tenant)
    }

    /// Whether a rehydration has put `tenant` under maintenance
    /// (`maintenance.rs`): its application should not write meanwhile.
    pub fn in_maintenance(&self, tenant: &TenantId) -> Result<bool, PortError> {
        maintenance::is_set(&self.db_path(tenant))
            .map_err(|e| io_error("reading the maintenance flag", e))
    }
}

/// `<dir>/<tenant>.sqlite`: the one place that spells the file layout.
pub fn tenant_db_path(dir: &Path, tenant: &TenantId) -> PathBuf {
    dir.join(format!("{}.{TENANT_FILE_EXTENSION}", tenant.as_str()))
}

fn tenant_not_found(tenant: &TenantId) -> PortError {
    PortError::permanent(
        "tenant_not_found",
        format!("tenant {tenant} has no database"),
    )
}

impl TenantStore for SqliteTenants {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn isolation(&self) -> &'static str {
        ISOLATION
    }

    fn tenant_exists(&self, tenant: &TenantId) -> Result<bool, PortError> {
        match std::fs::metadata(self.db_path(tenant)) {
            Ok(meta) => Ok(meta.is_file()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error("looking up the tenant database", e)),
        }
    }

    fn list_tables(&self, tenant: &TenantId) -> Result<Vec<String>, PortError> {
        let path = self.db_path(tenant);
        if !self.tenant_exists(tenant)? {
            return Err(tenant_not_found(tenant));
        }
        let mut conn = open(
            &path,
            OpenMode::ReadWriteExisting {
                busy_timeout_ms: self.busy_timeout_ms,
            },
        )?;
        let schema = introspect::introspect(&mut conn)?;
        Ok(schema.tables.iter().map(|t| t.name.clone()).collect())
    }

    /// Takes the copy on the first call for `work_dir` and reuses it on every
    /// later call, even if the live database changed or was removed since.
    fn snapshot(
        &self,
        tenant: &TenantId,
        work_dir: &Path,
    ) -> Result<Box<dyn TenantSnapshot>, PortError> {
        let path = snapshot::ensure_snapshot(
            &self.db_path(tenant),
            work_dir,
            self.busy_timeout_ms,
            || tenant_not_found(tenant),
        )?;
        Ok(Box::new(SqliteSnapshot::open(path)?))
    }

    /// Opens the live database (`work_dir` is not needed: every call of the
    /// writer is a transaction of its own on the live file).
    fn writer(
        &self,
        tenant: &TenantId,
        _work_dir: &Path,
    ) -> Result<Box<dyn TenantWriter>, PortError> {
        if !self.tenant_exists(tenant)? {
            return Err(tenant_not_found(tenant));
        }
        Ok(Box::new(SqliteWriter::open(
            self.db_path(tenant),
            self.busy_timeout_ms,
        )?))
    }
}

/// A read-only, immutable copy of one tenant's database.
pub struct SqliteSnapshot {
    path: PathBuf,
    conn: SqliteConnection,
    /// Introspected once: the file never changes, so neither does its schema.
    schema: Option<introspect::Introspected>,
}

impl SqliteSnapshot {
    /// Open an existing snapshot file (as written by [`TenantStore::snapshot`]).
    pub fn open(path: PathBuf) -> Result<Self, PortError> {
        let conn = open(&path, OpenMode::Immutable)?;
        Ok(SqliteSnapshot {
            path,
            conn,
            schema: None,
        })
    }

    /// The snapshot file itself.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The snapshot's schema, introspected on first use and kept.
fn cached_schema<'a>(
    conn: &mut SqliteConnection,
    slot: &'a mut Option<introspect::Introspected>,
) -> Result<&'a introspect::Introspected, PortError> {
    let schema = match slot.take() {
        Some(schema) => schema,
        None => introspect::introspect(conn)?,
    };
    Ok(slot.insert(schema))
}

impl TenantSnapshot for SqliteSnapshot {
    fn schema(&mut self) -> Result<SchemaInfo, PortError> {
        let schema = cached_schema(&mut self.conn, &mut self.schema)?;
        Ok(SchemaInfo {
            engine: ENGINE.to_owned(),
            isolation: ISOLATION.to_owned(),
            tables: schema.tables.clone(),
            sequences: schema.sequences.clone(),
            ..Default::default()
        })
    }

    fn durable(&self) -> bool {
        // The copy is a synced file in the work directory (see `snapshot`).
        true
    }

    fn dump_table(
        &mut self,
        table: &str,
        format: &TableFormat,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<TableStats, PortError> {
        let schema = cached_schema(&mut self.conn, &mut self.schema)?;
        dump::dump_table(&mut self.conn, schema, table, format, out, progress)
    }

    fn dump_native(&mut self, out: &mut dyn Write) -> Result<NativeInfo, PortError> {
        // The file is immutable and complete, so its bytes are the dump.
        let file =
            std::fs::File::open(&self.path).map_err(|e| io_error("opening the snapshot", e))?;
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        std::io::copy(&mut reader, out).map_err(conn::write_error)?;
        out.flush().map_err(conn::write_error)?;
        Ok(NativeInfo {
            format: "sqlite3".to_owned(),
            file_name: "tenant.sqlite".to_owned(),
        })
    }
}
