//! Tenant databases in PostgreSQL, read with diesel, in each isolation mode
//! of a multi-tenant SaaS: one schema per tenant, one database per tenant
//! (found through the `ferry_tenants` registry), or shared tables with a
//! tenant column, with or without row-level security ([`PgIsolation`]).
//!
//! An export reads through a [`PgSnapshot`] (`snapshot.rs`): one `REPEATABLE
//! READ, READ ONLY` transaction whose snapshot is exported so `pg_dump` reads
//! the same instant. The schema is discovered from the catalogs
//! (`introspect.rs`), tables stream through `COPY (...) TO STDOUT`
//! (`copy_out.rs`, read back by `decode_copy.rs`), and every value is read
//! as PostgreSQL's own text output and written as NDJSON ([`encode_json`], which documents the lossless
//! encoding per type) or CSV ([`encode_csv`]). The `native` profile is
//! `pg_dump --format=custom` of the tenant's schema or database, or, in row
//! mode, a `psql` script of `COPY` sections holding only the tenant's rows
//! ([`native`] documents both and how to restore them). `ferry sample` for
//! PostgreSQL is [`sample::create_pg_sample`].
//!
//! Rehydration writes through a [`PgWriter`] (`writer.rs`): one transaction
//! per call, `lite` rows read back by `decode_json.rs` and loaded with
//! `COPY FROM STDIN` (`import_copy.rs`), native dumps restored from their
//! `COPY` blocks (`native_script.rs`), the maintenance flag in the registry.
//!
//! In row mode the tenant id is always in the filter on the tenant column
//! (a bound parameter, or a quoted literal in the `COPY` reads, which take
//! no parameters), and is also set as `ferry.tenant` for the snapshot's
//! transaction for row-level security policies. Tables without the tenant
//! column, and the platform's own tables (`ferry_*`), are not tenant data.
//!
//! Error codes: `tenant_not_found`, `unknown_table`, `tenant_name_invalid`,
//! `tenant_db_config`, `tenant_db_auth`, `tenant_db_permission`,
//! `tenant_db_error`, `tenant_value_unreadable`, `pg_dump_missing`,
//! `pg_dump_version`, `platform_migration_failed`, `row_invalid`,
//! `merge_key_invalid`, `foreign_key_violation`, `native_format_unsupported`,
//! `native_dump_missing`, `native_dump_invalid`, `native_schema_mismatch`
//! and `pg_restore_missing` are permanent; `input_read_failed` and
//! `pg_restore_failed` are retryable, as are `tenant_db_unavailable`
//! (connection refused or lost, server restarting, too many clients),
//! `tenant_db_busy` (lock timeout, serialization or deadlock),
//! `tenant_db_io`, `tenant_snapshot_lost`, `pg_dump_failed` and
//! `output_write_failed`.

mod array;
pub mod config;
pub(crate) mod conn;
mod copy_out;
mod copy_target;
mod decode_copy;
mod decode_json;
pub mod encode_copy;
pub mod encode_csv;
pub mod encode_json;
mod import_copy;
mod introspect;
mod keys_aside;
pub mod native;
mod native_script;
pub mod registry;
mod replica;
pub mod sample;
mod snapshot;
mod types;
mod value;
mod writer;

use diesel::PgConnection;
use ferry_engine::TenantId;
use ferry_workflows::ports::tenant::{TenantSnapshot, TenantStore};
use ferry_workflows::ports::tenant_writer::TenantWriter;
use ferry_workflows::ports::PortError;
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

pub use config::{ConfigError, PgIsolation, PgTenantsConfig};
pub use conn::{database_of, with_database};
pub use import_copy::INSERT_BATCH_ROWS;
pub use registry::{migrate_platform, RegistryEntry, PG_PLATFORM_MIGRATIONS};
pub use snapshot::{PgSnapshot, PROGRESS_EVERY_ROWS};
pub use writer::{LoadPath, PgWriter};

/// `engine()` of this store.
pub const ENGINE: &str = "postgresql";

/// Where one tenant's tables are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Connection URL of the database holding them.
    pub url: String,
    /// The schema holding them.
    pub schema: String,
}

/// Tenant data in PostgreSQL, in one isolation mode.
pub struct PgTenants {
    config: PgTenantsConfig,
    /// A reused connection to the platform database (registry lookups,
    /// existence checks); snapshots always get a connection of their own.
    platform: Mutex<Option<PgConnection>>,
    migrated: AtomicBool,
}

impl std::fmt::Debug for PgTenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("PgTenants")
            .field("isolation", &self.config.isolation)
            .finish_non_exhaustive()
    }
}

impl PgTenants {
    /// A store for `config`. Nothing connects yet; the platform migrations
    /// (the registry) run on first use, or now with [`PgTenants::migrate`].
    pub fn new(config: PgTenantsConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(PgTenants {
            config,
            platform: Mutex::new(None),
            migrated: AtomicBool::new(false),
        })
    }

    pub fn config(&self) -> &PgTenantsConfig {
        &self.config
    }

    /// Apply the platform's PostgreSQL migrations (creates `ferry_tenants`).
    pub fn migrate(&self) -> Result<(), PortError> {
        self.with_platform(migrate_platform)?;
        self.migrated.store(true, Ordering::Release);
        Ok(())
    }

    fn ensure_migrated(&self) -> Result<(), PortError> {
        if self.migrated.load(Ordering::Acquire) {
            return Ok(());
        }
        self.migrate()
    }

    /// Run `f` on the shared platform connection, opening it if needed and
    /// dropping it after a connection failure so the next call reconnects.
    pub(crate) fn with_platform<T>(
        &self,
        f: impl FnOnce(&mut PgConnection) -> Result<T, PortError>,
    ) -> Result<T, PortError> {
        let mut slot = self.platform.lock();
        let mut conn = match slot.take() {
            Some(conn) => conn,
            None => self.connect(&self.config.platform_url, "the platform database", || {
                PortError::permanent("tenant_db_config", "the platform database does not exist")
            })?,
        };
        let result = f(&mut conn);
        let broken = matches!(&result, Err(e) if e.code == "tenant_db_unavailable");
        if !broken {
            *slot = Some(conn);
        }
        result
    }

    pub(crate) fn connect(
        &self,
        url: &str,
        what: &str,
        missing: impl FnOnce() -> PortError,
    ) -> Result<PgConnection, PortError> {
        conn::connect(url, self.config.connect_timeout_s, what, missing)
    }

    /// Record where `tenant` lives in the registry (database mode needs it;
    /// the other modes record it for the platform's benefit).
    pub fn register(
        &self,
        tenant: &TenantId,
        database_url: Option<&str>,
        schema: Option<&str>,
    ) -> Result<(), PortError> {
        self.ensure_migrated()?;
        self.with_platform(|conn| registry::register(conn, tenant, database_url, schema))
    }

    /// Remove `tenant` from the registry (its data is left alone).
    pub fn unregister(&self, tenant: &TenantId) -> Result<bool, PortError> {
        self.ensure_migrated()?;
        self.with_platform(|conn| registry::unregister(conn, tenant))
    }

    /// The registry row of `tenant`, if any.
    pub fn registry_entry(&self, tenant: &TenantId) -> Result<Option<RegistryEntry>, PortError> {
        self.ensure_migrated()?;
        self.with_platform(|conn| registry::lookup(conn, tenant))
    }

    /// Where `tenant`'s tables are. Database mode reads the registry
    /// (`tenant_not_found` if the tenant is not in it); the other modes
    /// derive the location from the configuration.
    pub fn locate(&self, tenant: &TenantId) -> Result<Location, PortError> {
        match &self.config.isolation {
            PgIsolation::Schema => Ok(Location {
                url: self.config.platform_url.clone(),
                schema: self.config.tenant_schema(tenant)?,
            }),
            PgIsolation::Row { .. } => Ok(Location {
                url: self.config.platform_url.clone(),
                schema: self.config.shared_schema.clone(),
            }),
            PgIsolation::Database => {
                let entry = self
                    .registry_entry(tenant)?
                    .ok_or_else(|| tenant_not_found(tenant))?;
                let url = match entry.database_url {
                    Some(url) => url,
                    None => with_database(
                        &self.config.platform_url,
                        &self.config.tenant_database(tenant)?,
                    )?,
                };
                Ok(Location {
                    url,
                    schema: entry
                        .schema_name
                        .unwrap_or_else(|| self.config.database_schema.clone()),
                })
            }
        }
    }

    /// Whether a rehydration has put `tenant` under maintenance (the
    /// registry's flag): its application should not write meanwhile.
    pub fn in_maintenance(&self, tenant: &TenantId) -> Result<bool, PortError> {
        self.ensure_migrated()?;
        self.with_platform(|conn| registry::in_maintenance(conn, tenant))
    }

    /// The writer of `tenant` as its concrete type (the benchmark picks its
    /// load path); [`TenantStore::writer`] is the same, boxed. Schema and
    /// database mode need the tenant to exist; row mode needs only the
    /// shared tables, since a tenant being rehydrated may have no rows.
    pub fn open_writer(&self, tenant: &TenantId) -> Result<PgWriter, PortError> {
        self.ensure_migrated()?;
        if !matches!(self.config.isolation, PgIsolation::Row { .. })
            && !self.tenant_exists(tenant)?
        {
            return Err(tenant_not_found(tenant));
        }
        let location = self.locate(tenant)?;
        let target = writer::WriterTarget {
            snapshot: self.snapshot_target(location),
            isolation: self.config.isolation.clone(),
            platform_url: self.config.platform_url.clone(),
            connect_timeout_s: self.config.connect_timeout_s,
            pg_restore: pg_restore_beside(&self.config.pg_dump),
        };
        Ok(PgWriter::new(tenant.clone(), target))
    }

    fn snapshot_target(&self, location: Location) -> snapshot::Target {
        let role = match &self.config.isolation {
            PgIsolation::Row { row_security: true } => self.config.row_security_role.clone(),
            _ => None,
        };
        snapshot::Target {
            isolation: self.config.isolation.name(),
            url: location.url,
            schema: location.schema,
            tenant_column: self.tenant_column().map(str::to_owned),
            role,
            lock_timeout_ms: self.config.lock_timeout_ms,
            pg_dump: self.config.pg_dump.clone(),
        }
    }

    fn tenant_column(&self) -> Option<&str> {
        matches!(self.config.isolation, PgIsolation::Row { .. })
            .then_some(self.config.tenant_column.as_str())
    }

    /// Run `f` on a connection to the database of `location`: the shared
    /// platform connection where that is the one, a new one otherwise.
    fn with_location<T>(
        &self,
        tenant: &TenantId,
        location: &Location,
        f: impl FnOnce(&mut PgConnection) -> Result<T, PortError>,
    ) -> Result<T, PortError> {
        if location.url == self.config.platform_url {
            self.with_platform(f)
        } else {
            let mut conn = self.connect(&location.url, "the tenant's database", || {
                tenant_not_found(tenant)
            })?;
            f(&mut conn)
        }
    }
}

pub(crate) fn tenant_not_found(tenant: &TenantId) -> PortError {
    PortError::permanent("tenant_not_found", format!("tenant {tenant} has no data"))
}

impl TenantStore for PgTenants {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn isolation(&self) -> &'static str {
        self.config.isolation.name()
    }

    fn tenant_exists(&self, tenant: &TenantId) -> Result<bool, PortError> {
        match &self.config.isolation {
            PgIsolation::Database => Ok(self.registry_entry(tenant)?.is_some()),
            PgIsolation::Schema => {
                let schema = self.config.tenant_schema(tenant)?;
                self.with_platform(|conn| introspect::schema_exists(conn, &schema))
            }
            // Row mode: a tenant exists while it has rows, and while the
            // registry knows it (a rehydration registers the tenant when it
            // quiesces it, and between its delete and import the tenant
            // has no rows at all).
            PgIsolation::Row { .. } => {
                let schema = self.config.shared_schema.clone();
                let column = self.config.tenant_column.clone();
                let has_rows = self.with_platform(|conn| {
                    let tables = introspect::list_tables(conn, &schema, Some(&column))?;
                    introspect::tenant_has_rows(conn, &schema, &tables, &column, tenant.as_str())
                })?;
                if has_rows {
                    return Ok(true);
                }
                // Not migrated yet (no registry): not registered either.
                Ok(self
                    .with_platform(|conn| registry::lookup(conn, tenant))
                    .is_ok_and(|entry| entry.is_some()))
            }
        }
    }

    fn list_tables(&self, tenant: &TenantId) -> Result<Vec<String>, PortError> {
        if !self.tenant_exists(tenant)? {
            return Err(tenant_not_found(tenant));
        }
        let location = self.locate(tenant)?;
        let column = self.tenant_column().map(str::to_owned);
        self.with_location(tenant, &location, |conn| {
            if !introspect::schema_exists(conn, &location.schema)? {
                return Err(tenant_not_found(tenant));
            }
            let tables = introspect::list_tables(conn, &location.schema, column.as_deref())?;
            Ok(tables.into_iter().map(|t| t.name).collect())
        })
    }

    /// Opens a new snapshot on every call (`work_dir` is not used: a
    /// PostgreSQL snapshot cannot outlive its connection).
    fn snapshot(
        &self,
        tenant: &TenantId,
        _work_dir: &Path,
    ) -> Result<Box<dyn TenantSnapshot>, PortError> {
        let location = self.locate(tenant)?;
        let conn = self.connect(&location.url, "the tenant's database", || {
            tenant_not_found(tenant)
        })?;
        let target = self.snapshot_target(location);
        let snapshot = PgSnapshot::open(conn, tenant, target, || tenant_not_found(tenant))?;
        Ok(Box::new(snapshot))
    }

    fn writer(
        &self,
        tenant: &TenantId,
        _work_dir: &Path,
    ) -> Result<Box<dyn TenantWriter>, PortError> {
        Ok(Box::new(self.open_writer(tenant)?))
    }
}

/// `pg_restore` from the same installation as the configured `pg_dump`.
fn pg_restore_beside(pg_dump: &Path) -> PathBuf {
    match pg_dump.file_name() {
        Some(name) if name == "pg_dump" => pg_dump.with_file_name("pg_restore"),
        _ => PathBuf::from("pg_restore"),
    }
}
