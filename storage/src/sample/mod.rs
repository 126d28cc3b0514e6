//! `ferry sample`: a realistic tenant to export, demo and test against.
//!
//! Creates `<tenants_dir>/<tenant>.sqlite` in the layout [`crate::tenant_sqlite`]
//! reads, plus a few files under `<assets_dir>/<tenant>/`. The data is
//! deterministic for a seed, scales linearly with `scale` (scale 1 is about
//! 3,000 rows; `customer_config` and `feature_toggles` have a fixed size) and carries `marker-<tenant>` in every row ([`marker`]), so tests
//! can prove an export of one tenant holds nothing of another.
//!
//! The rows come from one database-neutral model that the PostgreSQL sample
//! ([`crate::tenant_pg::sample`]) shares: `model.rs` (tables, values,
//! batches, the [`model::Inserter`] each database implements) and `rows.rs`
//! (the deterministic generation); `insert.rs` is SQLite's inserter and
//! `schema.rs` its tables' DDL.
//!
//! The database is built under a temporary name in one transaction and
//! renamed into place last, so a tenant either exists whole or not at all;
//! an existing tenant is replaced only when asked to (`overwrite`), and
//! should not be in use by anything while that happens.

mod assets;
mod insert;
pub(crate) mod model;
pub(crate) mod rows;
mod schema;

use crate::tenant_sqlite::conn::{establish, OpenMode};
use crate::tenant_sqlite::tenant_db_path;
use diesel::connection::SimpleConnection;
use diesel::sql_types::BigInt;
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};
use ferry_engine::TenantId;
use insert::SqliteInserter;
use model::Types;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

pub use model::TABLES;

/// Replace `<assets_dir>/<tenant>/` with the sample's asset files (a logo,
/// a theme, notes for up to `products` products); returns their paths
/// relative to the tenant's folder and their total size. Shared by every
/// backend's sample, so tenants look alike whatever stores their rows.
pub fn create_sample_assets(
    assets_dir: &Path,
    tenant: &TenantId,
    products: u64,
) -> Result<(Vec<String>, u64), SampleError> {
    let tenant_assets = assets_dir.join(tenant.as_str());
    match fs::remove_dir_all(&tenant_assets) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("clearing the tenant's assets")(e)),
    }
    fs::create_dir_all(&tenant_assets).map_err(io_err("creating the tenant's assets directory"))?;
    assets::write_assets(&tenant_assets, tenant.as_str(), &marker(tenant), products)
        .map_err(io_err("writing the tenant's assets"))
}

/// How to build the sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleOptions {
    /// Row counts are proportional to this (0 leaves the scaled tables empty).
    pub scale: u32,
    /// Same seed, same data.
    pub seed: u64,
    /// Replace an existing tenant of that id instead of failing.
    pub overwrite: bool,
}

/// What was created, for the CLI to print and tests to check against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SampleSummary {
    pub tenant: TenantId,
    /// The tenant's database file.
    pub database: PathBuf,
    /// The text every row carries (see [`marker`]).
    pub marker: String,
    /// Rows per table, by table name.
    pub tables: BTreeMap<String, u64>,
    pub total_rows: u64,
    /// `<assets_dir>/<tenant>`.
    pub assets_dir: PathBuf,
    /// Paths relative to `assets_dir`, with `/` separators.
    pub asset_files: Vec<String>,
    pub asset_bytes: u64,
}

/// Why a sample could not be created.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("tenant {0} already exists (use overwrite to replace it)")]
    TenantExists(TenantId),
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{context}: {source}")]
    Db {
        context: &'static str,
        #[source]
        source: diesel::result::Error,
    },
    #[error("opening the sample database: {0}")]
    Open(#[from] diesel::ConnectionError),
}

impl SampleError {
    /// A stable code for the CLI and API.
    pub fn code(&self) -> &'static str {
        match self {
            SampleError::TenantExists(_) => "tenant_exists",
            SampleError::Io { .. } => "sample_io",
            SampleError::Db { .. } | SampleError::Open(_) => "sample_db",
        }
    }
}

fn io_err(context: &'static str) -> impl FnOnce(io::Error) -> SampleError {
    move |source| SampleError::Io { context, source }
}

fn db_err(context: &'static str) -> impl FnOnce(diesel::result::Error) -> SampleError {
    move |source| SampleError::Db { context, source }
}

/// The text that marks every row and file of `tenant`'s sample.
pub fn marker(tenant: &TenantId) -> String {
    format!("marker-{tenant}")
}

/// Create the sample tenant; fails with `tenant_exists` if it exists.
pub fn create_sample_tenant(
    tenants_dir: &Path,
    assets_dir: &Path,
    tenant: &TenantId,
    scale: u32,
    seed: u64,
) -> Result<SampleSummary, SampleError> {
    create_sample(
        tenants_dir,
        assets_dir,
        tenant,
        &SampleOptions {
            scale,
            seed,
            overwrite: false,
        },
    )
}

/// Create (or, with `overwrite`, replace) the sample tenant.
pub fn create_sample(
    tenants_dir: &Path,
    assets_dir: &Path,
    tenant: &TenantId,
    options: &SampleOptions,
) -> Result<SampleSummary, SampleError> {
    let database = tenant_db_path(tenants_dir, tenant);
    if database.exists() && !options.overwrite {
        return Err(SampleError::TenantExists(tenant.clone()));
    }
    fs::create_dir_all(tenants_dir).map_err(io_err("creating the tenants directory"))?;

    // A dot name that does not end in `.sqlite`, so nothing mistakes a
    // half-built file for a tenant.
    let tmp = tenants_dir.join(format!(".{tenant}.sqlite.sample-tmp"));
    remove_file_if_exists(&tmp)?;
    remove_file_if_exists(&with_suffix(&tmp, "-journal"))?;
    let marker = marker(tenant);
    let tables = build_database(&tmp, tenant, &marker, options)?;

    let products = tables.get("products").copied().unwrap_or(0);
    let (asset_files, asset_bytes) = create_sample_assets(assets_dir, tenant, products)?;

    // A WAL or rollback journal left by the replaced database would be
    // applied to the new file on its next open and corrupt it.
    for suffix in ["-wal", "-shm", "-journal"] {
        remove_file_if_exists(&with_suffix(&database, suffix))?;
    }
    fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_err("syncing the sample database"))?;
    fs::rename(&tmp, &database).map_err(io_err("publishing the sample database"))?;
    if cfg!(unix) {
        fs::File::open(tenants_dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("syncing the tenants directory"))?;
    }

    Ok(SampleSummary {
        tenant: tenant.clone(),
        database,
        marker,
        total_rows: tables.values().sum(),
        tables,
        assets_dir: assets_dir.join(tenant.as_str()),
        asset_files,
        asset_bytes,
    })
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Create the schema and fill it in one transaction; return rows per table.
fn build_database(
    path: &Path,
    tenant: &TenantId,
    marker: &str,
    options: &SampleOptions,
) -> Result<BTreeMap<String, u64>, SampleError> {
    let mut conn = establish(path, OpenMode::Create)?;
    // Enforce foreign keys so a generator bug fails here, not in an import;
    // the pragma must be set outside a transaction to take effect.
    conn.batch_execute("PRAGMA foreign_keys = ON;")
        .map_err(db_err("enabling foreign keys"))?;
    conn.transaction(|conn: &mut SqliteConnection| {
        conn.batch_execute(schema::SCHEMA_SQL)?;
        // Checking foreign keys at commit still checks everything, and
        // leaves the generator free to order its batches.
        conn.batch_execute("PRAGMA defer_foreign_keys = ON;")?;
        let rng = ChaCha8Rng::seed_from_u64(options.seed);
        rows::Generator::new(
            rng,
            tenant.as_str(),
            marker.to_owned(),
            options.scale,
            Types::Plain,
        )
        .fill(&mut SqliteInserter { conn: &mut *conn })?;
        diesel::sql_query(
            "DELETE FROM health_trends WHERE id > (SELECT max(id) - ?1 FROM health_trends)",
        )
        .bind::<BigInt, _>(rows::TRENDS_DELETED)
        .execute(conn)?;
        Ok(())
    })
    .map_err(db_err("filling the sample database"))?;

    let mut counts = BTreeMap::new();
    for table in TABLES {
        let sql = format!(
            "SELECT count(*) AS n FROM {}",
            crate::tenant_sqlite::conn::quote_ident(table)
        );
        let rows: Vec<CountRow> = diesel::sql_query(sql)
            .load(&mut conn)
            .map_err(db_err("counting sample rows"))?;
        let n = rows.first().map_or(0, |r| r.n.max(0) as u64);
        counts.insert((*table).to_owned(), n);
    }
    Ok(counts)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_file_if_exists(path: &Path) -> Result<(), SampleError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("removing a stale file")(e)),
    }
}
