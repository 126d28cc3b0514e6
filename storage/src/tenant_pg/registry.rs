//! The tenant registry in the platform database, and the platform's
//! PostgreSQL migrations that create it.
//!
//! `ferry_tenants` says where each tenant's data lives: in database mode the
//! URL of the tenant's own database (the only way to find it), in every
//! mode the schema holding its tables; and whether a rehydration has put the
//! tenant under maintenance. The table comes from the diesel
//! migrations under `migrations/postgres/` ([`PG_PLATFORM_MIGRATIONS`]),
//! which are the platform database's schema as a whole; they run under a
//! PostgreSQL advisory lock, so several ferry processes (or adapters of one
//! process) starting at once apply each migration exactly once.

use super::conn::db_error;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::PgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use ferry_engine::TenantId;
use ferry_workflows::ports::PortError;

/// The platform database's PostgreSQL migrations (all of them; the tenant
/// registry is one).
pub const PG_PLATFORM_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// Advisory lock key serializing migration runs ("ferrymig" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x6665_7272_796d_6967;

diesel::table! {
    ferry_tenants (tenant_id) {
        tenant_id -> Text,
        database_url -> Nullable<Text>,
        schema_name -> Nullable<Text>,
        maintenance -> Bool,
        maintenance_since -> Nullable<Timestamptz>,
    }
}

/// One tenant's row of the registry.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = ferry_tenants)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct RegistryEntry {
    pub tenant_id: String,
    /// The tenant's own database (database mode).
    pub database_url: Option<String>,
    /// The schema holding the tenant's tables.
    pub schema_name: Option<String>,
}

/// Apply the pending platform migrations (idempotent).
pub fn migrate_platform(conn: &mut PgConnection) -> Result<(), PortError> {
    diesel::sql_query("SELECT pg_catalog.pg_advisory_lock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(conn)
        .map_err(|e| db_error("waiting for the platform migration lock", e))?;
    let applied = conn
        .run_pending_migrations(PG_PLATFORM_MIGRATIONS)
        .map(|_| ())
        .map_err(|e| {
            PortError::permanent(
                "platform_migration_failed",
                format!("migrating the platform database: {e}"),
            )
        });
    let unlocked = diesel::sql_query("SELECT pg_catalog.pg_advisory_unlock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(conn)
        .map_err(|e| db_error("releasing the platform migration lock", e));
    applied?;
    unlocked.map(|_| ())
}

/// The registry row of `tenant`, if any.
pub fn lookup(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<Option<RegistryEntry>, PortError> {
    ferry_tenants::table
        .filter(ferry_tenants::tenant_id.eq(tenant.as_str()))
        .select(RegistryEntry::as_select())
        .first(conn)
        .optional()
        .map_err(|e| db_error("looking up the tenant registry", e))
}

/// Insert or replace `tenant`'s row.
pub fn register(
    conn: &mut PgConnection,
    tenant: &TenantId,
    database_url: Option<&str>,
    schema_name: Option<&str>,
) -> Result<(), PortError> {
    let entry = RegistryEntry {
        tenant_id: tenant.as_str().to_owned(),
        database_url: database_url.map(str::to_owned),
        schema_name: schema_name.map(str::to_owned),
    };
    diesel::insert_into(ferry_tenants::table)
        .values(&entry)
        .on_conflict(ferry_tenants::tenant_id)
        .do_update()
        .set((
            ferry_tenants::database_url.eq(&entry.database_url),
            ferry_tenants::schema_name.eq(&entry.schema_name),
        ))
        .execute(conn)
        .map(|_| ())
        .map_err(|e| db_error("registering the tenant", e))
}

/// Set or clear `tenant`'s maintenance flag (idempotent). Setting it
/// records a tenant that has no registry row yet (schema and row mode do
/// not need one), keeping `maintenance_since` from the first time it was
/// set; clearing it never creates a row.
pub fn set_maintenance(
    conn: &mut PgConnection,
    tenant: &TenantId,
    on: bool,
) -> Result<(), PortError> {
    let result = if on {
        diesel::sql_query(
            "INSERT INTO ferry_tenants (tenant_id, maintenance, maintenance_since) \
             VALUES ($1, true, now()) \
             ON CONFLICT (tenant_id) DO UPDATE SET maintenance = true, \
               maintenance_since = coalesce(ferry_tenants.maintenance_since, now())",
        )
        .bind::<diesel::sql_types::Text, _>(tenant.as_str())
        .execute(conn)
    } else {
        diesel::sql_query(
            "UPDATE ferry_tenants SET maintenance = false, maintenance_since = NULL \
             WHERE tenant_id = $1",
        )
        .bind::<diesel::sql_types::Text, _>(tenant.as_str())
        .execute(conn)
    };
    result
        .map(|_| ())
        .map_err(|e| db_error("setting the tenant's maintenance flag", e))
}

/// Whether `tenant` is under maintenance (`false` without a registry row).
pub fn in_maintenance(conn: &mut PgConnection, tenant: &TenantId) -> Result<bool, PortError> {
    ferry_tenants::table
        .filter(ferry_tenants::tenant_id.eq(tenant.as_str()))
        .select(ferry_tenants::maintenance)
        .first::<bool>(conn)
        .optional()
        .map(|flag| flag.unwrap_or(false))
        .map_err(|e| db_error("reading the tenant's maintenance flag", e))
}

/// Remove `tenant`'s row; returns whether there was one.
pub fn unregister(conn: &mut PgConnection, tenant: &TenantId) -> Result<bool, PortError> {
    diesel::delete(ferry_tenants::table.filter(ferry_tenants::tenant_id.eq(tenant.as_str())))
        .execute(conn)
        .map(|n| n > 0)
        .map_err(|e| db_error("unregistering the tenant", e))
}
