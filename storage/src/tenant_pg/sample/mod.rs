//! `ferry sample` for PostgreSQL: the sample tenant in whichever isolation
//! mode the store is configured for.
//!
//! The tables, rows and their deterministic generation are the
//! database-neutral model of `crate::sample` (`model.rs`, `rows.rs`), with
//! the values PostgreSQL's types hold; here are only the DDL (`schema.rs`),
//! the inserter (`insert.rs`) and the isolation modes. Every row carries
//! `marker-<tenant>` ([`crate::sample::marker`]), so tests can prove an
//! export of one tenant holds nothing of another.
//!
//! - **schema**: `CREATE SCHEMA "tenant_<id>"` and everything in it in one
//!   transaction, so the tenant exists whole or not at all.
//! - **database**: `CREATE DATABASE` (which cannot run in a transaction),
//!   then the schema and rows in one transaction, and only then the
//!   registry row that makes the tenant visible; a failed fill drops the
//!   new database again.
//! - **row**: the shared tables are created on first use (under an advisory
//!   lock, so concurrent samples do not race), with row-level security
//!   policies when configured, then the tenant's rows are added in one
//!   transaction with `ferry.tenant` set, as the application would.
//!
//! An existing tenant is replaced only with `overwrite`. Every sample
//! tenant is recorded in the registry (`ferry_tenants`).

mod insert;
mod schema;

use super::config::{PgIsolation, TENANT_SETTING};
use super::conn::{qualified, quote_ident, with_database};
use super::introspect;
use super::PgTenants;
use crate::sample::model::Types;
use crate::sample::rows::{self, Generator};
use crate::sample::{marker, SampleOptions, TABLES};
use diesel::connection::SimpleConnection;
use diesel::pg::Pg;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use ferry_engine::TenantId;
use ferry_workflows::ports::PortError;
use insert::PgInserter;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;

/// Tables whose `id` is owned by a sequence (identity or `bigserial`).
const SEQUENCED_TABLES: &[&str] = &[
    "accounts",
    "users",
    "products",
    "orders",
    "kpi_time_series",
    "health_trends",
    "playbooks",
];
/// Advisory lock key serializing the creation of the shared tables ("ferrysmp").
const SHARED_DDL_LOCK_KEY: i64 = 0x6665_7272_7973_6d70;

/// What was created, for the CLI to print and tests to check against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PgSampleSummary {
    pub tenant: TenantId,
    /// `schema`, `database` or `row`.
    pub isolation: String,
    /// The database holding the tenant's rows.
    pub database: String,
    /// The schema holding them.
    pub schema: String,
    /// The text every row carries.
    pub marker: String,
    /// The tenant's rows per table.
    pub tables: BTreeMap<String, u64>,
    pub total_rows: u64,
}

/// Why a sample could not be created.
#[derive(Debug, thiserror::Error)]
pub enum PgSampleError {
    #[error("tenant {0} already exists (use overwrite to replace it)")]
    TenantExists(TenantId),
    #[error("{context}: {source}")]
    Db {
        context: &'static str,
        #[source]
        source: diesel::result::Error,
    },
    #[error(transparent)]
    Port(#[from] PortError),
}

impl PgSampleError {
    /// A stable code for the CLI and API.
    pub fn code(&self) -> &str {
        match self {
            PgSampleError::TenantExists(_) => "tenant_exists",
            PgSampleError::Db { .. } => "sample_db",
            PgSampleError::Port(e) => &e.code,
        }
    }
}

impl From<diesel::result::Error> for PgSampleError {
    fn from(source: diesel::result::Error) -> Self {
        PgSampleError::Db {
            context: "filling the sample tenant",
            source,
        }
    }
}

fn db_err(context: &'static str) -> impl FnOnce(diesel::result::Error) -> PgSampleError {
    move |source| PgSampleError::Db { context, source }
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct ExistsRow {
    #[diesel(sql_type = Bool)]
    found: bool,
}

/// Create (or, with `overwrite`, replace) the sample tenant in the store's
/// isolation mode.
pub fn create_pg_sample(
    tenants: &PgTenants,
    tenant: &TenantId,
    options: &SampleOptions,
) -> Result<PgSampleSummary, PgSampleError> {
    tenants.migrate()?;
    let config = tenants.config();
    let marker = marker(tenant);
    let (database_url, schema, tenant_column) = match &config.isolation {
        PgIsolation::Schema => {
            let schema = config.tenant_schema(tenant)?;
            build_schema_tenant(tenants, tenant, &schema, &marker, options)?;
            (config.platform_url.clone(), schema, None)
        }
        PgIsolation::Database => {
            let url = build_database_tenant(tenants, tenant, &marker, options)?;
            (url, config.database_schema.clone(), None)
        }
        PgIsolation::Row { row_security } => {
            build_row_tenant(tenants, tenant, *row_security, &marker, options)?;
            (
                config.platform_url.clone(),
                config.shared_schema.clone(),
                Some(config.tenant_column.clone()),
            )
        }
    };

    let mut conn = tenants.connect(&database_url, "the tenant's database", || {
        super::tenant_not_found(tenant)
    })?;
    let mut tables = BTreeMap::new();
    for table in TABLES {
        let mut sql = format!("SELECT count(*) AS n FROM {}", qualified(&schema, table));
        if let Some(column) = &tenant_column {
            sql.push_str(&format!(" WHERE {} = $1", quote_ident(column)));
        }
        let mut query = diesel::sql_query(sql).into_boxed::<Pg>();
        if tenant_column.is_some() {
            query = query.bind::<Text, _>(tenant.as_str());
        }
        let rows: Vec<CountRow> = query
            .load(&mut conn)
            .map_err(db_err("counting sample rows"))?;
        tables.insert(
            (*table).to_owned(),
            rows.first().map_or(0, |r| r.n.max(0) as u64),
        );
    }
    Ok(PgSampleSummary {
        tenant: tenant.clone(),
        isolation: config.isolation.name().to_owned(),
        database: super::database_of(&database_url).unwrap_or_default(),
        schema,
        marker,
        total_rows: tables.values().sum(),
        tables,
    })
}

fn build_schema_tenant(
    tenants: &PgTenants,
    tenant: &TenantId,
    schema: &str,
    marker: &str,
    options: &SampleOptions,
) -> Result<(), PgSampleError> {
    let config = tenants.config();
    let mut conn = tenants.connect(&config.platform_url, "the platform database", || {
        PortError::permanent("tenant_db_config", "the platform database does not exist")
    })?;
    if introspect::schema_exists(&mut conn, schema)? && !options.overwrite {
        return Err(PgSampleError::TenantExists(tenant.clone()));
    }
    conn.transaction(|conn| -> Result<(), PgSampleError> {
        let quoted = quote_ident(schema);
        conn.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {quoted} CASCADE; CREATE SCHEMA {quoted};"
        ))?;
        set_local(conn, "search_path", &quoted)?;
        conn.batch_execute(&schema::schema_sql(None))?;
        fill(conn, tenant, marker, options, schema, None)
    })?;
    tenants.register(tenant, None, Some(schema))?;
    Ok(())
}

/// Returns the tenant database's URL.
fn build_database_tenant(
    tenants: &PgTenants,
    tenant: &TenantId,
    marker: &str,
    options: &SampleOptions,
) -> Result<String, PgSampleError> {
    let config = tenants.config();
    let name = config.tenant_database(tenant)?;
    let url = with_database(&config.platform_url, &name)?;
    let mut platform = tenants.connect(&config.platform_url, "the platform database", || {
        PortError::permanent("tenant_db_config", "the platform database does not exist")
    })?;
    let rows: Vec<ExistsRow> = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1) AS found",
    )
    .bind::<Text, _>(&name)
    .load(&mut platform)
    .map_err(db_err("looking up the tenant's database"))?;
    let exists = rows.first().is_some_and(|r| r.found) || tenants.registry_entry(tenant)?.is_some();
    if exists && !options.overwrite {
        return Err(PgSampleError::TenantExists(tenant.clone()));
    }
    tenants.unregister(tenant)?;
    let quoted = quote_ident(&name);
    platform
        .batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        .map_err(db_err("dropping the old tenant database"))?;
    platform
        .batch_execute(&format!("CREATE DATABASE {quoted}"))
        .map_err(db_err("creating the tenant database"))?;

    let filled = (|| -> Result<(), PgSampleError> {
        let mut conn = tenants.connect(&url, "the tenant's database", || {
            super::tenant_not_found(tenant)
        })?;
        let schema = config.database_schema.clone();
        conn.transaction(|conn| -> Result<(), PgSampleError> {
            let quoted_schema = quote_ident(&schema);
            conn.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {quoted_schema}"))?;
            set_local(conn, "search_path", &quoted_schema)?;
            conn.batch_execute(&schema::schema_sql(None))?;
            fill(conn, tenant, marker, options, &schema, None)
        })
    })();
    if let Err(e) = filled {
        // Leave no half-built tenant database behind (best effort: the
        // original error is what matters).
        let _ = platform.batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"));
        return Err(e);
    }
    tenants.register(tenant, Some(&url), Some(&config.database_schema))?;
    Ok(url)
}

fn build_row_tenant(
    tenants: &PgTenants,
    tenant: &TenantId,
    row_security: bool,
    marker: &str,
    options: &SampleOptions,
) -> Result<(), PgSampleError> {
    let config = tenants.config();
    let schema = config.shared_schema.clone();
    let column = config.tenant_column.clone();
    let mut conn = tenants.connect(&config.platform_url, "the platform database", || {
        PortError::permanent("tenant_db_config", "the platform database does not exist")
    })?;
    conn.transaction(|conn| -> Result<(), PgSampleError> {
        diesel::sql_query("SELECT pg_catalog.pg_advisory_xact_lock($1)")
            .bind::<BigInt, _>(SHARED_DDL_LOCK_KEY)
            .execute(conn)?;
        let quoted_schema = quote_ident(&schema);
        conn.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {quoted_schema}"))?;
        set_local(conn, "search_path", &quoted_schema)?;
        let existing = introspect::list_tables(conn, &schema, Some(&column))?;
        if !existing.iter().any(|t| t.name == "accounts") {
            conn.batch_execute(&schema::schema_sql(Some(&column)))?;
        }
        if row_security {
            conn.batch_execute(&schema::row_security_sql(&column, TENANT_SETTING))?;
            if let Some(role) = &config.row_security_role {
                ensure_reader_role(conn, role, &schema)?;
            }
        }
        set_local(conn, TENANT_SETTING, tenant.as_str())?;
        let tables = introspect::list_tables(conn, &schema, Some(&column))?;
        let has_rows =
            introspect::tenant_has_rows(conn, &schema, &tables, &column, tenant.as_str())?;
        if has_rows && !options.overwrite {
            return Err(PgSampleError::TenantExists(tenant.clone()));
        }
        // Children first, so foreign keys hold at every statement.
        for table in TABLES.iter().rev() {
            diesel::sql_query(format!(
                "DELETE FROM {} WHERE {} = $1",
                quote_ident(table),
                quote_ident(&column)
            ))
            .bind::<Text, _>(tenant.as_str())
            .execute(conn)?;
        }
        fill(conn, tenant, marker, options, &schema, Some(&column))
    })?;
    tenants.register(tenant, None, Some(&schema))?;
    Ok(())
}

/// Create `role` if missing (cluster-wide, without login), let the
/// connecting user switch to it (`SET ROLE`), and let it read the shared
/// tables; the policies decide which rows it sees.
fn ensure_reader_role(
    conn: &mut PgConnection,
    role: &str,
    schema: &str,
) -> Result<(), PgSampleError> {
    if role.contains('$') {
        return Err(PortError::permanent(
            "tenant_db_config",
            "the row-level security role name must not contain '$'",
        )
        .into());
    }
    let role = quote_ident(role);
    let schema = quote_ident(schema);
    conn.batch_execute(&format!(
        "DO $ferry$ BEGIN CREATE ROLE {role} NOLOGIN; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $ferry$;\n\
         GRANT {role} TO CURRENT_USER;\n\
         GRANT USAGE ON SCHEMA {schema} TO {role};\n\
         GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role};"
    ))?;
    Ok(())
}

fn set_local(
    conn: &mut PgConnection,
    name: &str,
    value: &str,
) -> Result<(), diesel::result::Error> {
    diesel::sql_query("SELECT pg_catalog.set_config($1, $2, true)")
        .bind::<Text, _>(name)
        .bind::<Text, _>(value)
        .execute(conn)
        .map(|_| ())
}

/// Insert the rows, move the sequences past them, and delete a few health
/// trends so a sequence runs ahead of its table (as the SQLite sample).
fn fill(
    conn: &mut PgConnection,
    tenant: &TenantId,
    marker: &str,
    options: &SampleOptions,
    schema: &str,
    tenant_column: Option<&str>,
) -> Result<(), PgSampleError> {
    let rng = ChaCha8Rng::seed_from_u64(options.seed);
    Generator::new(
        rng,
        tenant.as_str(),
        marker.to_owned(),
        options.scale,
        Types::Typed,
    )
    .fill(&mut PgInserter {
        conn: &mut *conn,
        tenant: tenant_column.map(|c| (c.to_owned(), tenant.as_str().to_owned())),
    })?;
    for table in SEQUENCED_TABLES {
        // Never move a (possibly shared) sequence backwards.
        diesel::sql_query(format!(
            "SELECT pg_catalog.setval(s.seq, GREATEST(s.m, pg_catalog.nextval(s.seq) - 1), true) \
             FROM (SELECT pg_catalog.pg_get_serial_sequence($1, 'id') AS seq, \
                          (SELECT max(id) FROM {table}) AS m) AS s \
             WHERE s.m IS NOT NULL",
            table = quote_ident(table)
        ))
        .bind::<Text, _>(qualified(schema, table))
        .execute(conn)?;
    }
    let (filter, bind) = match tenant_column {
        Some(column) => (format!("{} = $1 AND", quote_ident(column)), true),
        None => (String::new(), false),
    };
    let inner_filter = match tenant_column {
        Some(column) => format!("WHERE {} = $1", quote_ident(column)),
        None => String::new(),
    };
    let mut delete = diesel::sql_query(format!(
        "DELETE FROM health_trends WHERE {filter} id > \
         (SELECT max(id) - {deleted} FROM health_trends {inner_filter})",
        deleted = rows::TRENDS_DELETED
    ))
    .into_boxed::<Pg>();
    if bind {
        delete = delete.bind::<Text, _>(tenant.as_str());
    }
    delete.execute(conn)?;
    Ok(())
}
