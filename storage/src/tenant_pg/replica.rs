//! Triggers and foreign-key checks held off for one transaction where the
//! tables cannot be altered (row isolation's shared tables, or tables ferry
//! does not own): `SET LOCAL session_replication_role = replica`, what
//! logical replication and `pg_restore --disable-triggers` use.
//!
//! In that role PostgreSQL fires no ordinary trigger — neither the
//! tenant's own (which must not rewrite or duplicate restored rows) nor the
//! per-row foreign-key checks (which made a row-mode delete quadratic
//! where a composite key had no index). Only this session, only until the
//! transaction ends: other tenants writing meanwhile keep all their
//! triggers and checks. The foreign keys are then checked here, in bulk,
//! before the transaction commits: one anti-join per foreign key that
//! touches a loaded table, limited to the tenant's rows when the key
//! carries the tenant column (every row otherwise, since another tenant's
//! row could then point at a row this load replaced). `ON DELETE` actions
//! do not run, as with the keys set aside in schema isolation: a row left
//! pointing at a replaced row that the bundle does not bring back is a
//! `foreign_key_violation`, and nothing is committed.
//!
//! Setting the role needs superuser or (PostgreSQL 15+) `GRANT SET ON
//! PARAMETER session_replication_role`; without it the load keeps the
//! triggers and per-row checks, and a trigger that changes restored rows
//! makes the verification fail (nothing committed).

use super::conn::{db_error, qualified, quote_ident};
use super::introspect::tenant_filter_value;
use super::keys_aside::LOADED;
use diesel::connection::SimpleConnection;
use diesel::result::Error as DieselError;
use diesel::sql_types::{Array, BigInt, Text};
use diesel::{PgConnection, QueryableByName, RunQueryDsl};
use ferry_workflows::ports::PortError;

/// One foreign key to check.
#[derive(QueryableByName, Debug)]
struct ForeignKey {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    child_schema: String,
    #[diesel(sql_type = Text)]
    child_table: String,
    #[diesel(sql_type = Text)]
    parent_schema: String,
    #[diesel(sql_type = Text)]
    parent_table: String,
    #[diesel(sql_type = Array<Text>)]
    child_columns: Vec<String>,
    #[diesel(sql_type = Array<Text>)]
    parent_columns: Vec<String>,
    /// `format_type` of the child's tenant column, if the key carries it
    /// (to both sides' tenant column).
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    tenant_type: Option<String>,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The checks held off in the current transaction, to be run by
/// [`ChecksOff::check`] before it commits.
#[must_use = "the foreign keys must be checked before the transaction commits"]
pub(crate) struct ChecksOff {
    foreign_keys: Vec<ForeignKey>,
    /// Row mode's tenant column.
    tenant_column: Option<String>,
}

/// Every foreign key declared on, or referencing, the tables `$2` of
/// schema `$1` or their partitions (`$3`: row mode's tenant column).
fn foreign_keys_sql() -> String {
    format!(
        "WITH loaded AS ({LOADED}) \
         SELECT con.conname::text AS name, \
                cn.nspname::text AS child_schema, cc.relname::text AS child_table, \
                pn.nspname::text AS parent_schema, pc.relname::text AS parent_table, \
                ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(num, ord) \
                      JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num \
                      ORDER BY k.ord) AS child_columns, \
                ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY AS k(num, ord) \
                      JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num \
                      ORDER BY k.ord) AS parent_columns, \
                (SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) \
                 FROM unnest(con.conkey, con.confkey) AS k(c, p) \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.c \
                 JOIN pg_catalog.pg_attribute b ON b.attrelid = con.confrelid AND b.attnum = k.p \
                 WHERE a.attname = $3 AND b.attname = $3) AS tenant_type \
         FROM pg_catalog.pg_constraint con \
         JOIN pg_catalog.pg_class cc ON cc.oid = con.conrelid \
         JOIN pg_catalog.pg_namespace cn ON cn.oid = cc.relnamespace \
         JOIN pg_catalog.pg_class pc ON pc.oid = con.confrelid \
         JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace \
         WHERE con.contype = 'f' AND con.conparentid = 0 \
           AND (con.conrelid IN (SELECT oid FROM loaded) OR con.confrelid IN (SELECT oid FROM loaded)) \
         ORDER BY 2, 3, 1"
    )
}

/// Hold off triggers and foreign-key checks for the rest of the current
/// transaction, if this role may; `None` if it may not (nothing changed).
/// `tenant_column` is row mode's tenant column.
pub(crate) fn hold_off(
    conn: &mut PgConnection,
    schema: &str,
    tables: &[&str],
    tenant_column: Option<&str>,
) -> Result<Option<ChecksOff>, PortError> {
    let foreign_keys: Vec<ForeignKey> = diesel::sql_query(foreign_keys_sql())
        .bind::<Text, _>(schema)
        .bind::<Array<Text>, _>(tables)
        .bind::<Text, _>(tenant_column.unwrap_or(""))
        .load(conn)
        .map_err(|e| db_error("reading the tables' foreign keys", e))?;
    conn.batch_execute("SAVEPOINT ferry_replica")
        .map_err(|e| db_error("setting a savepoint", e))?;
    match conn.batch_execute("SET LOCAL session_replication_role = replica") {
        Ok(()) => {
            conn.batch_execute("RELEASE SAVEPOINT ferry_replica")
                .map_err(|e| db_error("releasing a savepoint", e))?;
            Ok(Some(ChecksOff {
                foreign_keys,
                tenant_column: tenant_column.map(str::to_owned),
            }))
        }
        Err(DieselError::DatabaseError(_, info))
            if info.message().contains("permission denied") =>
        {
            conn.batch_execute("ROLLBACK TO SAVEPOINT ferry_replica")
                .map_err(|e| db_error("rolling back to a savepoint", e))?;
            tracing::debug!(
                reason = info.message(),
                "triggers and per-row foreign-key checks stay on during the load"
            );
            Ok(None)
        }
        Err(e) => Err(db_error("holding off triggers", e)),
    }
}

impl ChecksOff {
    /// Back to the normal role, then every held-off foreign key checked in
    /// bulk (see the module doc); `tenant` is bound where a key carries
    /// the tenant column.
    pub(crate) fn check(self, conn: &mut PgConnection, tenant: &str) -> Result<(), PortError> {
        conn.batch_execute("SET LOCAL session_replication_role = origin")
            .map_err(|e| db_error("turning triggers back on", e))?;
        for fk in &self.foreign_keys {
            let not_null = fk
                .child_columns
                .iter()
                .map(|c| format!("c.{} IS NOT NULL", quote_ident(c)))
                .collect::<Vec<_>>()
                .join(" AND ");
            let matches = fk
                .child_columns
                .iter()
                .zip(&fk.parent_columns)
                .map(|(c, p)| format!("p.{} = c.{}", quote_ident(p), quote_ident(c)))
                .collect::<Vec<_>>()
                .join(" AND ");
            // The key carries the tenant column (to the same column of
            // the referenced table): only the tenant's rows can break it.
            let tenant_filter = match (&self.tenant_column, &fk.tenant_type) {
                (Some(column), Some(ty)) => format!(
                    " AND c.{} = {}",
                    quote_ident(column),
                    tenant_filter_value(ty, 1)
                ),
                _ => String::new(),
            };
            let sql = format!(
                "SELECT count(*)::int8 AS n FROM (SELECT 1 FROM {child} AS c \
                 WHERE {not_null}{tenant_filter} AND NOT EXISTS \
                 (SELECT 1 FROM {parent} AS p WHERE {matches}) LIMIT 1) AS x",
                child = qualified(&fk.child_schema, &fk.child_table),
                parent = qualified(&fk.parent_schema, &fk.parent_table),
            );
            let query = diesel::sql_query(sql).into_boxed();
            let query = if tenant_filter.is_empty() {
                query
            } else {
                query.bind::<Text, _>(tenant.to_owned())
            };
            let rows: Vec<CountRow> = query
                .load(conn)
                .map_err(|e| db_error("checking a foreign key", e))?;
            if rows.first().is_some_and(|r| r.n > 0) {
                return Err(PortError::permanent(
                    "foreign_key_violation",
                    format!(
                        "table {}: a row violates foreign key constraint {} (it points at a row of {} that the bundle does not hold)",
                        quote_ident(&fk.child_table),
                        quote_ident(&fk.name),
                        quote_ident(&fk.parent_table)
                    ),
                ));
            }
        }
        Ok(())
    }
}
