//! Keys and indexes set aside while a bulk load runs, and put back (and so
//! checked) before the same transaction commits: what `pg_restore` does by
//! loading data before it builds indexes and adds constraints.
//!
//! A row-level foreign-key check costs a query and a row lock on the
//! referenced row for every row written, and every row written updates
//! every index; `ALTER TABLE ... ADD CONSTRAINT` checks a whole table with
//! one join, and an index built after the load is one sort. On the
//! benchmark tenant the per-row checks were half of the import's time, the
//! per-row index updates about a sixth of what was left
//! (`bench/results/rehydrate-vs-pg_restore-*.md`).
//!
//! Only in schema and database isolation, where every table is the
//! tenant's own: in row mode the tables are shared, and dropping a
//! constraint would lock every tenant out and re-check every tenant's rows.
//! Everything is read back from the catalog as PostgreSQL itself writes it
//! (`pg_get_constraintdef`, `pg_get_indexdef`: names, columns, actions,
//! deferrability, `NOT VALID`, storage parameters, predicates) and
//! re-created with the same names in the same transaction, so no other
//! session ever sees the tables without them, and a row that breaks one
//! fails the commit as the row-level check would have, with the load's own
//! codes (`import_copy::load_error`): `foreign_key_violation`, or
//! `row_invalid` for a duplicate key.
//!
//! Two levels, each behind its own savepoint:
//! - the foreign keys declared on the loaded tables (always, when the
//!   writer may);
//! - with `indexes`, also their primary-key and unique constraints, the
//!   foreign keys of other tables that depend on those, and their plain
//!   indexes. Not for a merge, whose `ON CONFLICT` needs the unique index.
//!   Indexes of partitioned tables and partitions, the replica-identity and
//!   clustered indexes stay, as does every exclusion constraint.
//!
//! Dropping needs the tables' ownership; a writer that lacks it keeps the
//! per-row work (the savepoint undoes the attempt), as does a key that
//! something outside the tenant depends on.

use super::conn::{db_error, qualified, quote_ident};
use super::import_copy::load_error;
use diesel::connection::SimpleConnection;
use diesel::result::Error as DieselError;
use diesel::sql_types::{Array, Text};
use diesel::{PgConnection, QueryableByName, RunQueryDsl};
use ferry_workflows::ports::PortError;

/// One constraint or index set aside.
#[derive(QueryableByName)]
struct Aside {
    #[diesel(sql_type = Text)]
    schema_name: String,
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    /// A constraint's definition, or a whole `CREATE INDEX` statement.
    #[diesel(sql_type = Text)]
    definition: String,
}

impl Aside {
    fn table(&self) -> String {
        qualified(&self.schema_name, &self.table_name)
    }
}

/// What was dropped in the current transaction, to be re-created by
/// [`KeysAside::restore`] before it commits.
#[must_use = "the keys must be restored before the transaction commits"]
pub(crate) struct KeysAside {
    foreign_keys: Vec<Aside>,
    unique_keys: Vec<Aside>,
    indexes: Vec<Aside>,
    triggers: Vec<Aside>,
    /// Every foreign key touching the loaded tables is aside (there may
    /// be none).
    all_foreign_keys: bool,
}

/// Constraints (schema, table, name, definition) that meet `condition`.
fn constraints_where(condition: &str) -> String {
    format!(
        "SELECT n.nspname::text AS schema_name, c.relname::text AS table_name, \
                con.conname::text AS name, pg_catalog.pg_get_constraintdef(con.oid) AS definition \
         FROM pg_catalog.pg_constraint con \
         JOIN pg_catalog.pg_class c ON c.oid = con.conrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE con.conparentid = 0 AND {condition} \
         ORDER BY 1, 2, 3"
    )
}

/// The tables `$2` of schema `$1` and all their partitions (at every
/// level). The tables themselves are listed on their own:
/// `pg_partition_tree` returns no rows for a table that is neither
/// partitioned nor a partition.
pub(crate) const LOADED: &str = "\
    SELECT c.oid FROM pg_catalog.pg_class c \
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    WHERE n.nspname = $1 AND c.relname = ANY($2) \
    UNION \
    SELECT t.relid::oid FROM pg_catalog.pg_class c \
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    CROSS JOIN LATERAL pg_catalog.pg_partition_tree(c.oid) t \
    WHERE n.nspname = $1 AND c.relname = ANY($2)";

/// Foreign keys declared on the loaded tables or their partitions, and
/// foreign keys of other tables that reference them: every check a row
/// written, or a row emptied, could trip.
fn foreign_keys_sql() -> String {
    constraints_where(&format!(
        "con.contype = 'f' AND (con.conrelid IN ({LOADED}) OR con.confrelid IN ({LOADED}))"
    ))
}

/// The tables `$2` of schema `$1` whose keys and indexes may be rebuilt:
/// ordinary tables, not partitions.
const REBUILDABLE: &str = "\
    SELECT c.oid FROM pg_catalog.pg_class c \
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    WHERE n.nspname = $1 AND c.relname = ANY($2) \
      AND c.relkind = 'r' AND NOT c.relispartition";

/// Primary-key and unique constraints of the rebuildable tables, but those
/// whose index is the replica identity or clustered.
fn unique_sql() -> String {
    constraints_where(&format!(
        "con.conrelid IN ({REBUILDABLE}) AND con.contype IN ('p', 'u') \
         AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indexrelid = con.conindid \
                     AND NOT i.indisreplident AND NOT i.indisclustered)"
    ))
}

/// The enabled user triggers of the loaded tables and their partitions;
/// `definition` is how each was enabled (`pg_trigger.tgenabled`). Triggers
/// a partition inherited come last, so restoring a parent's first cannot
/// undo a partition's own state.
fn triggers_sql() -> String {
    format!(
        "SELECT n.nspname::text AS schema_name, c.relname::text AS table_name, \
                t.tgname::text AS name, t.tgenabled::text AS definition \
         FROM pg_catalog.pg_trigger t \
         JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE NOT t.tgisinternal AND t.tgenabled <> 'D' AND t.tgrelid IN ({LOADED}) \
         ORDER BY t.tgparentid <> 0, 1, 2, 3"
    )
}

/// Plain indexes (no constraint behind them) of the rebuildable tables.
fn plain_index_sql() -> String {
    format!(
        "SELECT n.nspname::text AS schema_name, c.relname::text AS table_name, \
                ic.relname::text AS name, pg_catalog.pg_get_indexdef(i.indexrelid) AS definition \
         FROM pg_catalog.pg_index i \
         JOIN pg_catalog.pg_class c ON c.oid = i.indrelid \
         JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE i.indrelid IN ({REBUILDABLE}) AND i.indisvalid \
           AND NOT i.indisreplident AND NOT i.indisclustered \
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid) \
         ORDER BY 2, 3"
    )
}

fn load(
    conn: &mut PgConnection,
    sql: &str,
    schema: &str,
    tables: &[&str],
) -> Result<Vec<Aside>, PortError> {
    diesel::sql_query(sql)
        .bind::<Text, _>(schema)
        .bind::<Array<Text>, _>(tables)
        .load(conn)
        .map_err(|e| db_error("reading the tables' keys and indexes", e))
}

fn drop_constraints(conn: &mut PgConnection, all: &[Aside]) -> Result<(), DieselError> {
    if all.is_empty() {
        return Ok(());
    }
    let sql = all
        .iter()
        .map(|c| {
            format!(
                "ALTER TABLE {} DROP CONSTRAINT {};",
                c.table(),
                quote_ident(&c.name)
            )
        })
        .collect::<String>();
    conn.batch_execute(&sql)
}

fn disable_triggers(conn: &mut PgConnection, all: &[Aside]) -> Result<(), DieselError> {
    if all.is_empty() {
        return Ok(());
    }
    let sql = all
        .iter()
        .map(|t| {
            format!(
                "ALTER TABLE {} DISABLE TRIGGER {};",
                t.table(),
                quote_ident(&t.name)
            )
        })
        .collect::<String>();
    conn.batch_execute(&sql)
}

fn drop_indexes(conn: &mut PgConnection, all: &[Aside]) -> Result<(), DieselError> {
    if all.is_empty() {
        return Ok(());
    }
    let sql = all
        .iter()
        .map(|i| format!("DROP INDEX {};", qualified(&i.schema_name, &i.name)))
        .collect::<String>();
    conn.batch_execute(&sql)
}

/// Run `drop` behind a savepoint: `Ok(true)` when it worked, `Ok(false)`
/// when it was not allowed (undone), else the error.
fn behind_savepoint(
    conn: &mut PgConnection,
    name: &str,
    drop: impl FnOnce(&mut PgConnection) -> Result<(), DieselError>,
) -> Result<bool, PortError> {
    conn.batch_execute(&format!("SAVEPOINT {name}"))
        .map_err(|e| db_error("setting a savepoint", e))?;
    match drop(conn) {
        Ok(()) => {
            conn.batch_execute(&format!("RELEASE SAVEPOINT {name}"))
                .map_err(|e| db_error("releasing a savepoint", e))?;
            Ok(true)
        }
        Err(DieselError::DatabaseError(_, info)) if not_allowed(info.message()) => {
            conn.batch_execute(&format!("ROLLBACK TO SAVEPOINT {name}"))
                .map_err(|e| db_error("rolling back to a savepoint", e))?;
            tracing::debug!(
                reason = info.message(),
                "keys and indexes stay in place during the load"
            );
            Ok(false)
        }
        Err(e) => Err(db_error("setting keys and indexes aside", e)),
    }
}

/// Not the owner, or something else depends on the key.
fn not_allowed(message: &str) -> bool {
    message.contains("must be owner")
        || message.contains("permission denied")
        || message.contains("depend")
}

/// Set aside the user triggers of `tables` (and their partitions), every
/// foreign key that a row written into or emptied from them could trip,
/// and with `indexes` also their unique keys and indexes (see the module
/// doc). `None` when the tables are not ferry's to change (row mode).
pub(crate) fn set_aside(
    conn: &mut PgConnection,
    schema: &str,
    tables: &[&str],
    indexes: bool,
) -> Result<Option<KeysAside>, PortError> {
    if tables.is_empty() {
        return Ok(None);
    }
    let mut aside = KeysAside {
        foreign_keys: Vec::new(),
        unique_keys: Vec::new(),
        indexes: Vec::new(),
        triggers: load(conn, &triggers_sql(), schema, tables)?,
        all_foreign_keys: false,
    };
    let disabled = behind_savepoint(conn, "ferry_triggers_aside", |conn| {
        disable_triggers(conn, &aside.triggers)
    })?;
    if !disabled {
        aside.triggers.clear();
    }
    let foreign_keys = load(conn, &foreign_keys_sql(), schema, tables)?;
    let dropped = behind_savepoint(conn, "ferry_fk_aside", |conn| {
        drop_constraints(conn, &foreign_keys)
    })?;
    if !dropped {
        // Without the foreign keys aside, nothing else may go.
        return Ok((!aside.triggers.is_empty()).then_some(aside));
    }
    aside.foreign_keys = foreign_keys;
    aside.all_foreign_keys = true;
    if indexes {
        let unique = load(conn, &unique_sql(), schema, tables)?;
        let plain = load(conn, &plain_index_sql(), schema, tables)?;
        let dropped = behind_savepoint(conn, "ferry_index_aside", |conn| {
            drop_constraints(conn, &unique)?;
            drop_indexes(conn, &plain)
        })?;
        if dropped {
            aside.unique_keys = unique;
            aside.indexes = plain;
        }
    }
    Ok(Some(aside))
}

impl KeysAside {
    /// Re-create what was set aside: indexes and unique keys first (built
    /// from the rows now in the tables, refusing duplicates), then the
    /// foreign keys (each checked against those rows).
    pub(crate) fn restore(self, conn: &mut PgConnection) -> Result<(), PortError> {
        for i in &self.indexes {
            conn.batch_execute(&i.definition)
                .map_err(|e| load_error(&i.table_name, e))?;
        }
        for c in self.unique_keys.iter().chain(&self.foreign_keys) {
            let sql = format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {}",
                c.table(),
                quote_ident(&c.name),
                c.definition
            );
            conn.batch_execute(&sql)
                .map_err(|e| load_error(&c.table_name, e))?;
        }
        for t in &self.triggers {
            let how = match t.definition.as_str() {
                "A" => "ENABLE ALWAYS",
                "R" => "ENABLE REPLICA",
                _ => "ENABLE",
            };
            let sql = format!(
                "ALTER TABLE {} {how} TRIGGER {}",
                t.table(),
                quote_ident(&t.name)
            );
            conn.batch_execute(&sql)
                .map_err(|e| db_error("enabling the tables' triggers again", e))?;
        }
        Ok(())
    }

    /// Whether the foreign keys touching the loaded tables are aside (so
    /// the tables may be emptied and loaded in any order).
    pub(crate) fn foreign_keys_aside(&self) -> bool {
        self.all_foreign_keys
    }
}
