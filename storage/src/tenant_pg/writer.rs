//! Writing a tenant's PostgreSQL data back (rehydration): the
//! [`TenantWriter`] of the PostgreSQL store, in every isolation mode.
//!
//! Every method is one transaction on a connection of the writer's own,
//! configured like a snapshot (`snapshot::configure`: UTC, ISO dates,
//! ISO-8601 intervals, the tenant's schema on the search path, `lock_timeout`,
//! and in row mode `ferry.tenant`, which row-level security policies check
//! on insert too). A failure rolls the transaction back, so a crash or an
//! error leaves the tenant as it was; every call is safe to repeat. In row
//! mode every statement is limited to the tenant's rows by the tenant
//! column (a bound parameter), and every row written carries the tenant's
//! id; the configured row-security role (a reader) is not used for writing.
//!
//! **Loading rows.** A group of one table in `Replace` mode is emptied and
//! loaded with `COPY ... FROM STDIN` straight into the table
//! (`import_copy.rs`, the fast path). Every other case — merge, groups of
//! several tables (a foreign-key cycle), and tables where row-level
//! security applies to the connecting role (PostgreSQL refuses `COPY FROM`
//! there) — is copied into temporary staging tables first and moved with
//! **one** statement of data-modifying CTEs (`WITH w0 AS (INSERT ...), w1
//! AS (INSERT ...)`).
//!
//! **Foreign keys.** In schema and database isolation the foreign keys of
//! the tables being loaded (and, when rows are copied straight in, their
//! unique keys and indexes) are set aside for the load and re-created (so
//! checked and built in bulk) before the transaction commits
//! (`keys_aside.rs`); a group of several tables (a cycle) and a native
//! dump are then copied straight into their tables too. Otherwise (row
//! mode, or a writer that does not own the tables) the checks run per
//! row: `SET CONSTRAINTS ALL DEFERRED` defers what is
//! deferrable to the commit. Constraints that are `NOT DEFERRABLE` (the
//! default) are checked at the end of each statement, which is why a
//! cycle's tables are inserted by one statement: its rows all exist when the
//! statement's checks run, whatever the order. A violation is the permanent
//! `foreign_key_violation`. Emptying tables is one statement for the same
//! reason (`TRUNCATE a, b` in schema and database mode when no other table
//! references them, else `WITH d0 AS (DELETE ...), ...`); `ON DELETE
//! CASCADE` of the tenant's own schema applies, as it would for any delete.
//! Triggers of the tenant's tables fire on the rows written.
//!
//! **Merge** is `INSERT ... ON CONFLICT (key) DO UPDATE SET ... WHERE
//! <the row's text differs>`, so unchanged rows are not written; `RETURNING
//! (xmax = 0)` tells inserts from updates. The preview loads the rows into
//! a staging table in a transaction that is rolled back, and counts with
//! the same key match and the same comparison (values' text, so `1.0` and
//! `1.00` differ, as their exports do). The key must be exactly the
//! columns of a unique index without a predicate (row mode adds the tenant
//! column); otherwise `merge_key_invalid`.
//!
//! **Native restore** reads the dump as `COPY` blocks (`native_script.rs`:
//! the row-mode script as is, a custom-format dump through `pg_restore
//! --data-only --file=-`), stages every block and inserts them with one
//! statement after emptying the tenant's tables, all in ferry's one
//! transaction — so unlike `pg_restore --single-transaction` after a
//! separate delete, a failed restore leaves the old data. Only `COPY`
//! blocks for the tenant's tables and `setval`s of its own sequences are
//! taken from the dump; nothing in it is executed.
//!
//! **Maintenance** is the `maintenance` column of the tenant registry
//! (`ferry_tenants`, migration `…_tenant_maintenance`).

use super::config::PgIsolation;
use super::conn::{connect, db_error, qualified, quote_ident};
use super::import_copy::{copy_in, copy_rows, first_line, insert_rows, load_error};
use super::introspect::{introspect, tenant_filter_value, Introspected, PgTable};
use super::keys_aside;
use super::native::{PG_DUMP_FORMAT, ROW_SCRIPT_FORMAT};
use super::native_script::{Script, Statement};
use super::registry;
use super::replica;
use super::snapshot::{configure, table_digest, PgSnapshot, Target, PROGRESS_EVERY_ROWS};
use super::tenant_not_found;
use crate::hash_sink::HashSink;
use crate::lite_read::LiteLines;
use crate::load_verify::{already_loaded, check_loaded, ReadBack};
use crate::sql::{clashes, equal_on};
use crate::transaction;
use diesel::connection::SimpleConnection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Array, BigInt, Bool, Integer, Text};
use diesel::{PgConnection, QueryableByName, RunQueryDsl};
use ferry_engine::TenantId;
use ferry_workflows::ports::merge_key::{check_merge_key, Identifiers, MergeKey};
use ferry_workflows::ports::tenant::{SchemaInfo, TableFormat, TenantSnapshot};
use ferry_workflows::ports::tenant_writer::{
    LoadObserver, LoadOutcome, LoadPlan, LoadSource, LoadWarning, MergePreview, TableDigest,
    TableSource, TableWrite, TenantWriter, Verify, WriteMode,
};
use ferry_workflows::ports::PortError;
use ferry_workflows::rehydrate::groups::import_groups;
use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// How rows reach a table on the fast path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoadPath {
    /// `COPY ... FROM STDIN` (the default).
    #[default]
    Copy,
    /// Multi-row `INSERT ... VALUES` batches (kept to measure COPY against).
    BatchedInsert,
}

/// Where and as whom the writer works.
pub(crate) struct WriterTarget {
    /// Reads (content hashes, the schema) go through a snapshot of this.
    pub snapshot: Target,
    pub isolation: PgIsolation,
    pub platform_url: String,
    pub connect_timeout_s: u32,
    pub pg_restore: PathBuf,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct FlagRow {
    #[diesel(sql_type = Bool)]
    flag: bool,
}

#[derive(QueryableByName)]
struct MovedRow {
    #[diesel(sql_type = Integer)]
    i: i32,
    #[diesel(sql_type = BigInt)]
    inserted: i64,
    #[diesel(sql_type = BigInt)]
    updated: i64,
}

#[derive(QueryableByName)]
struct OidRow {
    #[diesel(sql_type = BigInt)]
    oid: i64,
}

/// One tenant's PostgreSQL data, open for writing.
pub struct PgWriter {
    tenant: TenantId,
    target: WriterTarget,
    load_path: LoadPath,
    /// Opened on first use, dropped after a connection failure.
    conn: Option<PgConnection>,
}

/// One table being written in a group.
struct Planned<'t> {
    table: &'t PgTable,
    merge: Option<MergeKey>,
}

impl PgWriter {
    pub(crate) fn new(tenant: TenantId, target: WriterTarget) -> Self {
        PgWriter {
            tenant,
            target,
            load_path: LoadPath::Copy,
            conn: None,
        }
    }

    /// Load rows with `path` instead of COPY (to measure one against the other).
    pub fn with_load_path(mut self, path: LoadPath) -> Self {
        self.load_path = path;
        self
    }

    fn missing(&self) -> PortError {
        tenant_not_found(&self.tenant)
    }

    /// The snapshot target without the reader role: writes run as the
    /// connecting role, with `ferry.tenant` set for the policies.
    fn write_target(&self) -> Target {
        Target {
            role: None,
            ..self.target.snapshot.clone()
        }
    }

    fn tenant_column(&self) -> Option<&str> {
        self.target.snapshot.tenant_column.as_deref()
    }

    /// Run `f` in one transaction with the schema introspected in it;
    /// committed when `commit` and `f` succeeds, else rolled back.
    fn run<T>(
        &mut self,
        commit: bool,
        f: impl FnOnce(&mut PgConnection, &Introspected, &Ctx) -> Result<T, PortError>,
    ) -> Result<T, PortError> {
        let target = self.write_target();
        let ctx = Ctx {
            tenant: self.tenant.as_str().to_owned(),
            schema: target.schema.clone(),
            tenant_column: target.tenant_column.clone(),
            load_path: self.load_path,
            target: target.clone(),
        };
        if self.conn.is_none() {
            let missing = self.missing();
            self.conn = Some(connect(
                &target.url,
                self.target.connect_timeout_s,
                "the tenant's database",
                || missing,
            )?);
        }
        let tenant = self.tenant.clone();
        let conn = self.conn.as_mut().expect("connected above");
        let outcome = transaction::run(
            conn,
            commit,
            |conn, body| conn.build_transaction().run(|conn| body(conn)),
            |conn| {
                configure(conn, &tenant, &target)?;
                if !super::introspect::schema_exists(conn, &target.schema)? {
                    return Err(tenant_not_found(&tenant));
                }
                let schema = introspect(conn, &target.schema, target.tenant_column.as_deref())?;
                f(conn, &schema, &ctx)
            },
        );
        let broken = outcome.broken;
        let result = outcome.result(
            commit,
            |e| db_error("starting a transaction", e),
            commit_error,
        );
        // A connection that failed, or whose rollback failed, is not used
        // again; the next call connects anew.
        if broken || matches!(&result, Err(e) if e.code == "tenant_db_unavailable") {
            self.conn = None;
        }
        result
    }

    /// A read-only snapshot of the tenant now (content hashes, schema).
    fn snapshot(&self) -> Result<PgSnapshot, PortError> {
        let missing = self.missing();
        let conn = connect(
            &self.target.snapshot.url,
            self.target.connect_timeout_s,
            "the tenant's database",
            || missing,
        )?;
        PgSnapshot::open_with(
            conn,
            &self.tenant,
            self.target.snapshot.clone(),
            || self.missing(),
            false,
        )
    }
}

/// What every statement of one transaction needs to know.
struct Ctx {
    tenant: String,
    schema: String,
    tenant_column: Option<String>,
    load_path: LoadPath,
    /// The transaction's target (the connecting role, no reader role).
    target: Target,
}

impl Ctx {
    fn qualified(&self, table: &PgTable) -> String {
        qualified(&self.schema, &table.info.name)
    }

    /// ` WHERE "tenant_id" = CAST($1 AS text)` in row mode, else nothing.
    fn tenant_filter(&self, table: &PgTable) -> String {
        match (&self.tenant_column, &table.tenant_type) {
            (Some(column), Some(ty)) => {
                format!(
                    " WHERE {} = {}",
                    quote_ident(column),
                    tenant_filter_value(ty, 1)
                )
            }
            _ => String::new(),
        }
    }

    /// The tenant id to bind as `$1` when the filter is used.
    fn binds_tenant(&self) -> bool {
        self.tenant_column.is_some()
    }
}

fn commit_error(e: DieselError) -> PortError {
    match &e {
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info) => {
            PortError::permanent("foreign_key_violation", info.message().to_owned())
        }
        _ => db_error("committing", e),
    }
}

fn table<'a>(schema: &'a Introspected, name: &str) -> Result<&'a PgTable, PortError> {
    schema.table(name).ok_or_else(|| {
        PortError::permanent(
            "unknown_table",
            format!("the tenant has no table {}", quote_ident(name)),
        )
    })
}

/// Run a `SELECT ... AS n` with the tenant bound as `$1` when `bind`.
fn count(
    conn: &mut PgConnection,
    sql: String,
    bind: Option<&str>,
    context: &str,
) -> Result<u64, PortError> {
    let query = diesel::sql_query(sql).into_boxed();
    let query = match bind {
        Some(tenant) => query.bind::<Text, _>(tenant.to_owned()),
        None => query,
    };
    let rows: Vec<CountRow> = query.load(conn).map_err(|e| db_error(context, e))?;
    Ok(rows.first().map_or(0, |r| r.n.max(0) as u64))
}

fn tenant_bind(ctx: &Ctx) -> Option<&str> {
    ctx.binds_tenant().then_some(ctx.tenant.as_str())
}

/// Empty `tables` in one statement; returns the rows deleted. With
/// `any_order` (every foreign key touching them is set aside) a `TRUNCATE`
/// of them all; otherwise, in row mode or when a table outside them
/// references one, a `DELETE` of the tenant's rows from each in one
/// statement of CTEs, with `ON DELETE` actions and deferred checks. An
/// ordinary table is emptied `ONLY`: a table inheriting from it keeps its
/// rows.
fn empty_tables(
    conn: &mut PgConnection,
    schema: &Introspected,
    ctx: &Ctx,
    tables: &[&PgTable],
    any_order: bool,
) -> Result<u64, PortError> {
    if tables.is_empty() {
        return Ok(0);
    }
    let names: BTreeSet<&str> = tables.iter().map(|t| t.info.name.as_str()).collect();
    let referenced_from_outside = schema.tables.iter().any(|t| {
        !names.contains(t.info.name.as_str())
            && t.info
                .foreign_keys
                .iter()
                .any(|fk| names.contains(fk.ref_table.as_str()))
    });
    let context = "emptying the tenant's tables";
    if ctx.tenant_column.is_none() && (any_order || !referenced_from_outside) {
        // TRUNCATE is transactional, and one statement naming every table
        // needs no order; the rows are counted first for the caller.
        let sum = tables
            .iter()
            .map(|t| format!("(SELECT count(*) FROM {})", t.rows_of(&ctx.schema)))
            .collect::<Vec<_>>()
            .join(" + ");
        let deleted = count(conn, format!("SELECT ({sum})::int8 AS n"), None, context)?;
        let list = tables
            .iter()
            .map(|t| t.rows_of(&ctx.schema).replacen("ONLY ", "", 1))
            .collect::<Vec<_>>();
        let only: Vec<&str> = tables
            .iter()
            .zip(&list)
            .filter(|(t, _)| !t.partitioned)
            .map(|(_, n)| n.as_str())
            .collect();
        let whole: Vec<&str> = tables
            .iter()
            .zip(&list)
            .filter(|(t, _)| t.partitioned)
            .map(|(_, n)| n.as_str())
            .collect();
        for (prefix, names) in [("TRUNCATE ONLY", only), ("TRUNCATE", whole)] {
            if !names.is_empty() {
                conn.batch_execute(&format!("{prefix} {}", names.join(", ")))
                    .map_err(|e| delete_error(e, context))?;
            }
        }
        return Ok(deleted);
    }
    let ctes = tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "d{i} AS (DELETE FROM {}{} RETURNING 1)",
                t.rows_of(&ctx.schema),
                ctx.tenant_filter(t)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sum = (0..tables.len())
        .map(|i| format!("(SELECT count(*) FROM d{i})"))
        .collect::<Vec<_>>()
        .join(" + ");
    let query = diesel::sql_query(format!("WITH {ctes} SELECT ({sum})::int8 AS n")).into_boxed();
    let query = match tenant_bind(ctx) {
        Some(tenant) => query.bind::<Text, _>(tenant.to_owned()),
        None => query,
    };
    let rows: Vec<CountRow> = query.load(conn).map_err(|e| delete_error(e, context))?;
    Ok(rows.first().map_or(0, |r| r.n.max(0) as u64))
}

/// Wait until no other load of this tenant runs, and keep others waiting
/// until this transaction ends: a load abandoned by a cancel or a timeout
/// may still be rolling back when the next attempt, or the rollback,
/// starts.
fn lock_tenant(conn: &mut PgConnection, ctx: &Ctx) -> Result<(), PortError> {
    diesel::sql_query(
        "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended($1, 0)) IS NULL AS flag",
    )
    .bind::<Text, _>(format!("ferry.load:{}:{}", ctx.schema, ctx.tenant))
    .load::<FlagRow>(conn)
    .map_err(|e| db_error("waiting for the tenant's other loads", e))?;
    Ok(())
}

/// Rows of `name` now, in the current transaction.
fn count_table(
    conn: &mut PgConnection,
    schema: &Introspected,
    ctx: &Ctx,
    name: &str,
) -> Result<u64, PortError> {
    // A native dump counts a partition's rows on their own.
    let (t, from) = match schema.table(name) {
        Some(t) => (t, t.rows_of(&ctx.schema)),
        None => match dump_target(conn, schema, ctx, name)? {
            Some(root) => (root, qualified(&ctx.schema, name)),
            None => (table(schema, name)?, String::new()),
        },
    };
    count(
        conn,
        format!(
            "SELECT count(*)::int8 AS n FROM {from}{}",
            ctx.tenant_filter(t)
        ),
        tenant_bind(ctx),
        "counting the table's rows",
    )
}

/// The tenant's tables as they are in the current transaction.
struct PgReadBack<'a> {
    conn: &'a mut PgConnection,
    schema: &'a Introspected,
    ctx: &'a Ctx,
    tenant: &'a TenantId,
}

impl ReadBack for PgReadBack<'_> {
    fn rows(&mut self, table: &str) -> Result<u64, PortError> {
        count_table(self.conn, self.schema, self.ctx, table)
    }

    fn digest(&mut self, name: &str) -> Result<(u64, String), PortError> {
        let t = table(self.schema, name)?;
        table_digest(self.conn, &self.ctx.target, self.tenant, t)
    }
}

/// Refresh the populated materialized views of the tenant's schema (in
/// row mode, of the shared schema), so derived data matches the rows just
/// loaded. Transactional like the rest of the load.
fn refresh_materialized_views(conn: &mut PgConnection, ctx: &Ctx) -> Result<(), PortError> {
    #[derive(QueryableByName)]
    struct ViewRow {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let views: Vec<ViewRow> = diesel::sql_query(
        "SELECT c.relname::text AS name FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind = 'm' AND c.relispopulated ORDER BY 1",
    )
    .bind::<Text, _>(&ctx.schema)
    .load(conn)
    .map_err(|e| db_error("listing the materialized views", e))?;
    for v in views {
        conn.batch_execute(&format!(
            "REFRESH MATERIALIZED VIEW {}",
            qualified(&ctx.schema, &v.name)
        ))
        .map_err(|e| db_error("refreshing a materialized view", e))?;
    }
    Ok(())
}

/// Set the keys (and with `indexes` the indexes) of `tables` aside for a
/// bulk load (`keys_aside.rs`); never in row mode, whose tables are shared.
fn set_aside(
    conn: &mut PgConnection,
    ctx: &Ctx,
    tables: &[&PgTable],
    indexes: bool,
) -> Result<Option<keys_aside::KeysAside>, PortError> {
    if ctx.tenant_column.is_some() {
        return Ok(None);
    }
    let names: Vec<&str> = tables.iter().map(|t| t.info.name.as_str()).collect();
    keys_aside::set_aside(conn, &ctx.schema, &names, indexes)
}

/// What a load holds aside: in schema and database isolation, when ferry
/// owns the tables, their triggers, keys and indexes (`keys_aside.rs`);
/// otherwise (row mode's shared tables, or tables ferry does not own) the
/// session's triggers and per-row foreign-key checks, where the role may
/// (`replica.rs`).
fn set_aside_or_hold_off(
    conn: &mut PgConnection,
    ctx: &Ctx,
    tables: &[&PgTable],
    indexes: bool,
) -> Result<(Option<keys_aside::KeysAside>, Option<replica::ChecksOff>), PortError> {
    let aside = set_aside(conn, ctx, tables, indexes)?;
    if aside.as_ref().is_some_and(|a| a.foreign_keys_aside()) {
        return Ok((aside, None));
    }
    let names: Vec<&str> = tables.iter().map(|t| t.info.name.as_str()).collect();
    let held = replica::hold_off(conn, &ctx.schema, &names, ctx.tenant_column.as_deref())?;
    Ok((aside, held))
}

/// Undo [`set_aside_or_hold_off`], checking every key in bulk.
fn put_back(
    conn: &mut PgConnection,
    ctx: &Ctx,
    aside: Option<keys_aside::KeysAside>,
    held: Option<replica::ChecksOff>,
) -> Result<(), PortError> {
    if let Some(aside) = aside {
        aside.restore(conn)?;
    }
    if let Some(held) = held {
        held.check(conn, &ctx.tenant)?;
    }
    Ok(())
}

fn delete_error(e: DieselError, context: &str) -> PortError {
    match &e {
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info) => {
            PortError::permanent("foreign_key_violation", info.message().to_owned())
        }
        _ => db_error(context, e),
    }
}

/// PostgreSQL's identifiers: stored names compare exactly.
struct PgNames;

impl Identifiers for PgNames {
    fn same_name(&self, a: &str, b: &str) -> bool {
        a == b
    }
    fn quote(&self, name: &str) -> String {
        quote_ident(name)
    }
}

/// Check a merge key (empty: the primary key; row mode: the tenant column
/// is added) against the table's unique indexes.
fn merge_key(ctx: &Ctx, table: &PgTable, key: &[String]) -> Result<MergeKey, PortError> {
    let columns = table.columns.iter().map(|c| c.name.as_str());
    check_merge_key(
        &PgNames,
        &table.info,
        columns,
        key,
        ctx.tenant_column.as_deref(),
    )
}

/// Whether row-level security applies to the connecting role on `table`
/// (then PostgreSQL refuses `COPY FROM` into it).
fn row_security_active(
    conn: &mut PgConnection,
    ctx: &Ctx,
    table: &PgTable,
) -> Result<bool, PortError> {
    let rows: Vec<FlagRow> = diesel::sql_query(
        "SELECT pg_catalog.row_security_active(CAST($1 AS pg_catalog.regclass)) AS flag",
    )
    .bind::<Text, _>(ctx.qualified(table))
    .load(conn)
    .map_err(|e| db_error("checking row-level security", e))?;
    Ok(rows.first().is_some_and(|r| r.flag))
}

/// The columns of `table` as [`RowLayout`] wants them.
fn layout_columns(table: &PgTable) -> Vec<(&str, &super::types::Family, bool)> {
    table
        .columns
        .iter()
        .map(|c| (c.name.as_str(), &c.family, c.generated))
        .collect()
}

/// Whether `column` of `table` is `GENERATED ALWAYS AS IDENTITY` (an
/// upsert may not set it).
fn identity_always(table: &PgTable, column: &str) -> bool {
    table
        .info
        .columns
        .iter()
        .any(|c| c.name == column && c.data_type.ends_with("GENERATED ALWAYS AS IDENTITY"))
}

/// The declared type of `column` (without generation clauses), for casts.
fn column_type(table: &PgTable, column: &str) -> String {
    table
        .info
        .columns
        .iter()
        .find(|c| c.name == column)
        .map(|c| {
            c.data_type
                .split(" GENERATED")
                .next()
                .unwrap_or(&c.data_type)
                .to_owned()
        })
        .unwrap_or_else(|| "text".to_owned())
}

/// A staging table for `columns` of `table`: same types, no constraints,
/// dropped with the transaction.
fn create_staging(
    conn: &mut PgConnection,
    ctx: &Ctx,
    table: &PgTable,
    name: &str,
    columns: &str,
) -> Result<(), PortError> {
    conn.batch_execute(&format!(
        "CREATE TEMP TABLE {name} ON COMMIT DROP AS SELECT {columns} FROM {} WITH NO DATA",
        ctx.qualified(table)
    ))
    .map_err(|e| db_error("creating a staging table", e))
}

/// `ROW(a.c::text, ...) IS DISTINCT FROM ROW(b.c::text, ...)`: the values'
/// text, which is what an export compares.
fn differs(a: &str, b: &str, columns: &[String]) -> String {
    if columns.is_empty() {
        return "false".to_owned();
    }
    let side = |alias: &str| {
        columns
            .iter()
            .map(|c| format!("{alias}.{}::text", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("ROW({}) IS DISTINCT FROM ROW({})", side(a), side(b))
}

/// One staged table to move: `INSERT ... SELECT` from its staging table.
struct Move {
    index: usize,
    table: String,
    staging: String,
    columns: Vec<String>,
    merge: Option<Vec<String>>,
    /// Columns a merge may update.
    settable: Vec<String>,
}

/// Move every staged table into its table with one statement; returns
/// (inserted, updated) per move, in `moves` order.
fn move_staged(
    conn: &mut PgConnection,
    moves: &[Move],
    names: &[String],
) -> Result<Vec<(u64, u64)>, PortError> {
    if moves.is_empty() {
        return Ok(Vec::new());
    }
    let mut ctes = Vec::new();
    let mut counts = Vec::new();
    for (i, m) in moves.iter().enumerate() {
        let list = m
            .columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let conflict = match &m.merge {
            None => String::new(),
            Some(key) => {
                let key_list = key
                    .iter()
                    .map(|c| quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", ");
                if m.settable.is_empty() {
                    format!(" ON CONFLICT ({key_list}) DO NOTHING")
                } else {
                    let set = m
                        .settable
                        .iter()
                        .map(|c| format!("{q} = EXCLUDED.{q}", q = quote_ident(c)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    format!(
                        " ON CONFLICT ({key_list}) DO UPDATE SET {set} WHERE {}",
                        differs("t", "EXCLUDED", &m.settable)
                    )
                }
            }
        };
        ctes.push(format!(
            "w{i} AS (INSERT INTO {table} AS t ({list}) OVERRIDING SYSTEM VALUE \
             SELECT {list} FROM {staging}{where_}{conflict} RETURNING {inserted} AS inserted)",
            table = m.table,
            staging = m.staging,
            // `INSERT ... SELECT ... ON CONFLICT` needs the SELECT to end
            // unambiguously before `ON`.
            where_ = if m.merge.is_some() { " WHERE true" } else { "" },
            // Only an upsert can update; a plain insert (into a
            // partitioned table too, which has no `xmax` to return) inserts.
            inserted = if m.merge.is_some() {
                "(t.xmax = 0)"
            } else {
                "true"
            },
        ));
        counts.push(format!(
            "SELECT {index} AS i, count(*) FILTER (WHERE inserted) AS inserted, \
             count(*) FILTER (WHERE NOT inserted) AS updated FROM w{i}",
            index = m.index
        ));
    }
    let sql = format!(
        "WITH {} {} ORDER BY i",
        ctes.join(", "),
        counts.join(" UNION ALL ")
    );
    let rows: Vec<MovedRow> = diesel::sql_query(sql)
        .load(conn)
        .map_err(|e| load_error(&names.join(", "), e))?;
    Ok(moves
        .iter()
        .map(|m| {
            rows.iter()
                .find(|r| r.i as usize == m.index)
                .map_or((0, 0), |r| {
                    (r.inserted.max(0) as u64, r.updated.max(0) as u64)
                })
        })
        .collect())
}

/// Counts one table's rows as they are written and tells the observer
/// every [`PROGRESS_EVERY_ROWS`] rows; its error (a cancel, an injected
/// fault) ends the COPY and so the load.
struct RowCounter<'o> {
    table: String,
    rows: u64,
    observer: &'o mut dyn LoadObserver,
}

impl<'o> RowCounter<'o> {
    fn new(table: &str, observer: &'o mut dyn LoadObserver) -> Self {
        RowCounter {
            table: table.to_owned(),
            rows: 0,
            observer,
        }
    }

    fn row(&mut self) -> Result<(), PortError> {
        self.rows += 1;
        if self.rows.is_multiple_of(PROGRESS_EVERY_ROWS) {
            self.observer.rows(&self.table, self.rows)?;
        }
        Ok(())
    }

    fn done(self) -> Result<u64, PortError> {
        self.observer.rows(&self.table, self.rows)?;
        Ok(self.rows)
    }
}

/// Load `lite` sources in the current transaction (see
/// [`TenantWriter::load`]): set aside what would make the order matter
/// (`keys_aside.rs`: triggers, foreign keys, and for a pure replace the
/// unique keys and indexes), empty the replaced tables, write every table,
/// then put everything back, which checks every row in bulk.
///
/// With the foreign keys aside every table is copied straight in, in any
/// order. Otherwise (row mode, or the writer does not own the tables) the
/// tables load in foreign-key order, each cycle's tables staged and moved
/// by one statement, so that the per-row checks at its end see every row;
/// a merge and a table under row-level security are always staged.
fn load_lite(
    conn: &mut PgConnection,
    schema: &Introspected,
    ctx: &Ctx,
    sources: &mut [TableSource<'_>],
    observer: &mut dyn LoadObserver,
) -> Result<LoadOutcome, PortError> {
    let mut planned = Vec::with_capacity(sources.len());
    for source in sources.iter() {
        let t = table(schema, &source.table)?;
        let merge = match &source.mode {
            WriteMode::Replace => None,
            WriteMode::Merge { key } => Some(merge_key(ctx, t, key)?),
        };
        planned.push(Planned { table: t, merge });
    }
    let mut copyable = planned.iter().all(|p| p.merge.is_none());
    for p in &planned {
        copyable = copyable && !row_security_active(conn, ctx, p.table)?;
    }
    let tables: Vec<&PgTable> = planned.iter().map(|p| p.table).collect();
    let (aside, held) = set_aside_or_hold_off(conn, ctx, &tables, copyable)?;
    let keys_aside = aside.as_ref().is_some_and(|a| a.foreign_keys_aside());
    let any_order = keys_aside || held.is_some();
    let replaced: Vec<&PgTable> = planned
        .iter()
        .filter(|p| p.merge.is_none())
        .map(|p| p.table)
        .collect();
    let deleted = empty_tables(conn, schema, ctx, &replaced, keys_aside)?;
    let groups: Vec<Vec<usize>> = if any_order {
        (0..planned.len()).map(|i| vec![i]).collect()
    } else {
        let infos: Vec<_> = tables.iter().map(|t| t.info.clone()).collect();
        import_groups(&infos, false)
            .into_iter()
            .map(|group| {
                group
                    .iter()
                    .filter_map(|name| tables.iter().position(|t| &t.info.name == name))
                    .collect()
            })
            .collect()
    };
    let tenant = ctx
        .tenant_column
        .as_deref()
        .map(|c| (c, ctx.tenant.as_str()));
    let mut writes: Vec<TableWrite> = planned
        .iter()
        .map(|p| TableWrite {
            table: p.table.info.name.clone(),
            inserted: 0,
            updated: 0,
        })
        .collect();
    for group in groups {
        let direct = copyable && (group.len() == 1 || any_order);
        let mut moves = Vec::new();
        for &i in &group {
            let (t, plan) = (planned[i].table, &planned[i]);
            let mut lines = LiteLines::new(&t.info.name, &mut *sources[i].rows);
            let columns = layout_columns(t);
            let mut counter = RowCounter::new(&t.info.name, observer);
            let Some((mut layout, line, text)) = first_line(&mut lines, &columns, tenant)? else {
                counter.done()?;
                continue;
            };
            let mut on_row = || counter.row();
            if direct {
                let target = ctx.qualified(t);
                writes[i].inserted = match ctx.load_path {
                    LoadPath::Copy => copy_rows(
                        conn,
                        &target,
                        &mut layout,
                        (line, &text),
                        &mut lines,
                        &mut on_row,
                    )?,
                    LoadPath::BatchedInsert => {
                        let types: Vec<String> = layout
                            .columns()
                            .iter()
                            .map(|c| {
                                if Some(c.as_str()) == ctx.tenant_column.as_deref() {
                                    t.tenant_type.clone().unwrap_or_else(|| "text".into())
                                } else {
                                    column_type(t, c)
                                }
                            })
                            .collect();
                        insert_rows(
                            conn,
                            &target,
                            &mut layout,
                            &types,
                            (line, &text),
                            &mut lines,
                            &mut on_row,
                        )?
                    }
                };
                counter.done()?;
                continue;
            }
            let staging = format!("ferry_stage_{i}");
            create_staging(conn, ctx, t, &staging, &layout.column_list())?;
            copy_rows(
                conn,
                &staging,
                &mut layout,
                (line, &text),
                &mut lines,
                &mut on_row,
            )?;
            counter.done()?;
            let key = plan.merge.as_ref().map(|m| m.key.clone());
            let settable = layout
                .columns()
                .into_iter()
                .filter(|c| !key.as_ref().is_some_and(|k| k.contains(c)))
                .filter(|c| Some(c.as_str()) != ctx.tenant_column.as_deref())
                .filter(|c| !identity_always(t, c))
                .collect();
            moves.push(Move {
                index: i,
                table: ctx.qualified(t),
                staging,
                columns: layout.columns(),
                merge: key,
                settable,
            });
        }
        let names: Vec<String> = group
            .iter()
            .map(|&i| planned[i].table.info.name.clone())
            .collect();
        for (m, (inserted, updated)) in moves.iter().zip(move_staged(conn, &moves, &names)?) {
            writes[m.index].inserted = inserted;
            writes[m.index].updated = updated;
        }
    }
    put_back(conn, ctx, aside, held)?;
    Ok(LoadOutcome {
        deleted,
        tables: writes,
        unchanged: false,
    })
}

/// The table of the tenant that a native dump's `COPY` target `name` is:
/// the table itself, or for a partition (which `pg_dump` copies on its
/// own) the partitioned table it belongs to.
fn dump_target<'s>(
    conn: &mut PgConnection,
    schema: &'s Introspected,
    ctx: &Ctx,
    name: &str,
) -> Result<Option<&'s PgTable>, PortError> {
    if let Some(t) = schema.table(name) {
        return Ok(Some(t));
    }
    #[derive(QueryableByName)]
    struct RootRow {
        #[diesel(sql_type = Text)]
        root: String,
    }
    let roots: Vec<RootRow> = diesel::sql_query(
        "SELECT r.relname::text AS root FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.pg_class r ON r.oid = pg_catalog.pg_partition_root(c.oid) \
         WHERE n.nspname = $1 AND c.relname = $2 AND c.relispartition",
    )
    .bind::<Text, _>(&ctx.schema)
    .bind::<Text, _>(name)
    .load(conn)
    .map_err(|e| db_error("reading the tenant's partitions", e))?;
    Ok(roots.first().and_then(|r| schema.table(&r.root)))
}

/// Load a native dump in the current transaction: every table of the
/// tenant emptied, each `COPY` block of the dump loaded (straight into its
/// table or partition with the keys aside, else staged and moved by one
/// statement), then the dump's sequence values (never lowering one).
/// Nothing in the dump is executed: only `COPY` blocks for the tenant's
/// tables and `setval`s of its own sequences are taken.
fn load_native(
    conn: &mut PgConnection,
    schema: &Introspected,
    ctx: &Ctx,
    script: &mut Script,
    observer: &mut dyn LoadObserver,
) -> Result<LoadOutcome, PortError> {
    let all: Vec<&PgTable> = schema.tables.iter().collect();
    let (aside, held) = set_aside_or_hold_off(conn, ctx, &all, true)?;
    let keys_aside = aside.as_ref().is_some_and(|a| a.foreign_keys_aside());
    let any_order = keys_aside || held.is_some();
    let deleted = empty_tables(conn, schema, ctx, &all, keys_aside)?;
    let mut moves = Vec::new();
    let mut setvals = Vec::new();
    let mut seen = BTreeSet::new();
    let mut writes: Vec<TableWrite> = Vec::new();
    while let Some(statement) = script.next_statement()? {
        let (name, columns) = match statement {
            Statement::SetVal {
                sequence,
                value,
                is_called,
            } => {
                setvals.push((sequence, value, is_called));
                continue;
            }
            Statement::Copy { table, columns } => (table, columns),
        };
        let t = dump_target(conn, schema, ctx, &name)?.ok_or_else(|| {
            PortError::permanent(
                "native_schema_mismatch",
                format!(
                    "the dump has table {} the tenant does not",
                    quote_ident(&name)
                ),
            )
        })?;
        if !seen.insert(name.clone()) {
            return Err(PortError::permanent(
                "native_dump_invalid",
                format!("the dump holds table {} twice", quote_ident(&name)),
            ));
        }
        if let Some(c) = columns
            .iter()
            .find(|c| !t.columns.iter().any(|d| &d.name == *c && !d.generated))
        {
            return Err(PortError::permanent(
                "native_schema_mismatch",
                format!(
                    "table {} has no writable column {}",
                    quote_ident(&name),
                    quote_ident(c)
                ),
            ));
        }
        let list = columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let staging = format!("ferry_native_{}", moves.len());
        // Row mode stages every block: its rows must be checked to be the
        // tenant's before they reach the shared table.
        let direct = any_order && ctx.tenant_column.is_none();
        let into = if direct {
            qualified(&ctx.schema, &name)
        } else {
            create_staging(conn, ctx, t, &staging, &list)?;
            staging.clone()
        };
        let mut counter = RowCounter::new(&name, observer);
        let copied = copy_in(conn, &name, &format!("{into} ({list})"), &mut |out| {
            script
                .rows(|row| {
                    out.write_all(row).map_err(|e| {
                        PortError::retryable("tenant_db_unavailable", format!("sending rows: {e}"))
                    })?;
                    counter.row()
                })
                .map(|_| ())
        })?;
        counter.done()?;
        writes.push(TableWrite {
            table: name.clone(),
            inserted: copied,
            updated: 0,
        });
        if direct {
            continue;
        }
        if let (Some(column), Some(ty)) = (&ctx.tenant_column, &t.tenant_type) {
            // Every row must be this tenant's: the script is data, not trusted.
            let foreign = count(
                conn,
                format!(
                    "SELECT count(*)::int8 AS n FROM {staging} WHERE {} IS DISTINCT FROM {}",
                    quote_ident(column),
                    tenant_filter_value(ty, 1)
                ),
                Some(&ctx.tenant),
                "checking the dump's tenant",
            )?;
            if foreign > 0 || !columns.contains(column) {
                return Err(PortError::permanent(
                    "native_dump_invalid",
                    format!(
                        "table {} of the dump holds rows of another tenant",
                        quote_ident(&name)
                    ),
                ));
            }
        }
        moves.push(Move {
            index: moves.len(),
            table: ctx.qualified(t),
            staging,
            columns,
            merge: None,
            settable: Vec::new(),
        });
    }
    let names: Vec<String> = seen.into_iter().collect();
    move_staged(conn, &moves, &names)?;
    put_back(conn, ctx, aside, held)?;
    for (sequence, value, is_called) in setvals {
        let found: Vec<OidRow> =
            diesel::sql_query("SELECT coalesce(pg_catalog.to_regclass($1)::oid::int8, 0) AS oid")
                .bind::<Text, _>(&sequence)
                .load(conn)
                .map_err(|e| db_error("reading the dump's sequences", e))?;
        let Some(seq) = schema
            .sequences
            .iter()
            .find(|s| found.first().is_some_and(|f| f.oid == s.oid))
        else {
            continue;
        };
        diesel::sql_query(format!(
            "SELECT pg_catalog.setval(CAST($1 AS pg_catalog.regclass), $2, $3) FROM {seq} AS s \
             WHERE $2 > s.last_value OR (NOT s.is_called AND $2 >= s.last_value)",
            seq = seq.qualified_name
        ))
        .bind::<Text, _>(&seq.qualified_name)
        .bind::<BigInt, _>(value)
        .bind::<Bool, _>(is_called)
        .execute(conn)
        .map_err(|e| db_error("restoring the dump's sequences", e))?;
    }
    Ok(LoadOutcome {
        deleted,
        tables: writes,
        unchanged: false,
    })
}

/// Raise every sequence of the tenant past the largest value its column
/// holds; never lower one.
fn reset_sequences(
    conn: &mut PgConnection,
    schema: &Introspected,
    ctx: &Ctx,
) -> Result<(), PortError> {
    for seq in &schema.sequences {
        let Some(table) = schema.table(&seq.table) else {
            continue;
        };
        diesel::sql_query(format!(
            "SELECT pg_catalog.setval(CAST($1 AS pg_catalog.regclass), m, true) \
             FROM (SELECT max({col})::int8 AS m FROM {table}) AS x, {seq} AS s \
             WHERE m IS NOT NULL AND (m > s.last_value OR (NOT s.is_called AND m >= s.last_value))",
            col = quote_ident(&seq.column),
            table = ctx.qualified(table),
            seq = seq.qualified_name,
        ))
        .bind::<Text, _>(&seq.qualified_name)
        .execute(conn)
        .map_err(|e| db_error("moving the tenant's sequences", e))?;
    }
    Ok(())
}

impl PgWriter {
    fn native_script(&self, format: &str, dump: &Path) -> Result<Script, PortError> {
        let row_mode = self.tenant_column().is_some();
        match format {
            PG_DUMP_FORMAT if !row_mode => Script::open_custom(&self.target.pg_restore, dump),
            ROW_SCRIPT_FORMAT if row_mode => Script::open_file(dump),
            other => Err(PortError::permanent(
                "native_format_unsupported",
                format!(
                    "a {} tenant store restores {:?} dumps, not {other:?}",
                    self.target.isolation.name(),
                    if row_mode {
                        ROW_SCRIPT_FORMAT
                    } else {
                        PG_DUMP_FORMAT
                    }
                ),
            )),
        }
    }
}

impl TenantWriter for PgWriter {
    fn schema(&mut self) -> Result<SchemaInfo, PortError> {
        self.snapshot()?.schema()
    }

    fn count_rows(&mut self, name: &str) -> Result<u64, PortError> {
        self.run(false, |conn, schema, ctx| {
            count_table(conn, schema, ctx, name)
        })
    }

    fn content_hash(&mut self, name: &str) -> Result<TableDigest, PortError> {
        // The export's own dump, into a hashing sink.
        let mut snapshot = self.snapshot()?;
        let mut sink = HashSink::default();
        let stats = snapshot.dump_table(name, &TableFormat::Ndjson, &mut sink, &mut |_| {})?;
        Ok(TableDigest {
            table: name.to_owned(),
            rows: stats.rows,
            blake3: sink.hex(),
        })
    }

    fn load(
        &mut self,
        plan: LoadPlan<'_>,
        observer: &mut dyn LoadObserver,
    ) -> Result<LoadOutcome, PortError> {
        let LoadPlan {
            source,
            verify,
            unless_verified,
            trial,
        } = plan;
        let mut native = match &source {
            LoadSource::Native { format, dump } => Some(self.native_script(format, dump)?),
            LoadSource::Lite(_) => None,
        };
        let tenant = self.tenant.clone();
        self.run(!trial, move |conn, schema, ctx| {
            lock_tenant(conn, ctx)?;
            let mut read = PgReadBack {
                conn,
                schema,
                ctx,
                tenant: &tenant,
            };
            if already_loaded(&mut read, unless_verified, &verify)? {
                return Ok(LoadOutcome {
                    unchanged: true,
                    ..LoadOutcome::default()
                });
            }
            conn.batch_execute("SET CONSTRAINTS ALL DEFERRED")
                .map_err(|e| db_error("deferring constraints", e))?;
            let before = match (&verify, &source) {
                (Verify::Merged, LoadSource::Lite(sources)) => sources
                    .iter()
                    .map(|s| Ok((s.table.clone(), count_table(conn, schema, ctx, &s.table)?)))
                    .collect::<Result<Vec<_>, PortError>>()?,
                _ => Vec::new(),
            };
            let outcome = match (source, native.as_mut()) {
                (LoadSource::Lite(mut sources), _) => {
                    load_lite(conn, schema, ctx, &mut sources, observer)?
                }
                (LoadSource::Native { .. }, Some(script)) => {
                    load_native(conn, schema, ctx, script, observer)?
                }
                (LoadSource::Native { .. }, None) => unreachable!("opened above"),
            };
            reset_sequences(conn, schema, ctx)?;
            refresh_materialized_views(conn, ctx)?;
            let mut read = PgReadBack {
                conn,
                schema,
                ctx,
                tenant: &tenant,
            };
            check_loaded(&mut read, &verify, &before, &outcome.tables)?;
            observer.before_commit()?;
            Ok(outcome)
        })
    }

    /// Row mode: foreign keys of the shared tables with no index leading
    /// with their columns. Where the load cannot hold off the per-row
    /// checks (`replica.rs`), and for the application's own deletes, every
    /// row deleted from the referenced table scans the referencing one.
    fn load_warnings(&mut self, tables: &[String]) -> Result<Vec<LoadWarning>, PortError> {
        if self.tenant_column().is_none() {
            return Ok(Vec::new());
        }
        #[derive(QueryableByName)]
        struct Unindexed {
            #[diesel(sql_type = Text)]
            table_name: String,
            #[diesel(sql_type = Text)]
            name: String,
            #[diesel(sql_type = Text)]
            columns: String,
        }
        let tables = tables.to_vec();
        self.run(false, move |conn, _, ctx| {
            let rows: Vec<Unindexed> = diesel::sql_query(
                "SELECT c.relname::text AS table_name, con.conname::text AS name, \
                        (SELECT string_agg(a.attname::text, ', ' ORDER BY k.ord) \
                         FROM unnest(con.conkey) WITH ORDINALITY AS k(num, ord) \
                         JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num) AS columns \
                 FROM pg_catalog.pg_constraint con \
                 JOIN pg_catalog.pg_class c ON c.oid = con.conrelid \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND con.contype = 'f' AND con.conparentid = 0 \
                   AND (c.relname = ANY($2) OR con.confrelid IN ( \
                        SELECT r.oid FROM pg_catalog.pg_class r WHERE r.relnamespace = n.oid AND r.relname = ANY($2))) \
                   AND NOT EXISTS ( \
                     SELECT 1 FROM pg_catalog.pg_index i \
                     WHERE i.indrelid = con.conrelid AND i.indpred IS NULL \
                       AND (i.indkey::int2[])[0:cardinality(con.conkey) - 1] @> con.conkey \
                       AND (i.indkey::int2[])[0:cardinality(con.conkey) - 1] <@ con.conkey) \
                 ORDER BY 1, 2",
            )
            .bind::<Text, _>(&ctx.schema)
            .bind::<Array<Text>, _>(&tables)
            .load(conn)
            .map_err(|e| db_error("reading the tables' foreign keys", e))?;
            Ok(rows
                .into_iter()
                .map(|r| LoadWarning {
                    code: "unindexed_foreign_key".to_owned(),
                    message: format!(
                        "foreign key {} of table {} ({}) has no index leading with its columns: \
                         every row deleted from the table it references scans this shared table; \
                         create one, e.g. CREATE INDEX ON {} ({})",
                        quote_ident(&r.name),
                        quote_ident(&r.table_name),
                        r.columns,
                        quote_ident(&r.table_name),
                        r.columns
                    ),
                    table: r.table_name,
                })
                .collect())
        })
    }

    fn preview_merge(
        &mut self,
        name: &str,
        key: &[String],
        rows: &mut dyn BufRead,
    ) -> Result<MergePreview, PortError> {
        self.run(false, |conn, schema, ctx| {
            let t = table(schema, name)?;
            let merge = merge_key(ctx, t, key)?;
            let mut lines = LiteLines::new(&t.info.name, rows);
            let columns = layout_columns(t);
            let tenant = ctx.tenant_column.as_deref().map(|c| (c, ctx.tenant.as_str()));
            let Some((mut layout, line, text)) = first_line(&mut lines, &columns, tenant)? else {
                return Ok(MergePreview::default());
            };
            let staging = "ferry_preview";
            create_staging(conn, ctx, t, staging, &layout.column_list())?;
            let total = copy_rows(conn, staging, &mut layout, (line, &text), &mut lines, &mut || Ok(()))?;
            let settable: Vec<String> = layout
                .columns()
                .into_iter()
                .filter(|c| !merge.key.contains(c) && Some(c.as_str()) != ctx.tenant_column.as_deref())
                .filter(|c| !identity_always(t, c))
                .collect();
            let target = ctx.qualified(t);
            let matched = format!("SELECT 1 FROM {target} AS t WHERE {}", equal_on("t", "s", &merge.key));
            let context = "computing the merge preview";
            let will_insert = count(
                conn,
                format!("SELECT count(*)::int8 AS n FROM {staging} AS s WHERE NOT EXISTS ({matched})"),
                None,
                context,
            )?;
            let will_update = count(
                conn,
                format!(
                    "SELECT count(*)::int8 AS n FROM {staging} AS s WHERE EXISTS ({matched} AND {})",
                    differs("t", "s", &settable)
                ),
                None,
                context,
            )?;
            // Only unique sets whose columns the bundle carries can clash.
            let carried = layout.columns();
            let others: Vec<&Vec<String>> =
                merge.others.iter().filter(|set| set.iter().all(|c| carried.contains(c))).collect();
            let conflicts = if others.is_empty() {
                0
            } else {
                let any = clashes(&target, "s", &merge.key, &others, "IS NOT DISTINCT FROM");
                count(conn, format!("SELECT count(*)::int8 AS n FROM {staging} AS s WHERE {any}"), None, context)?
            };
            Ok(MergePreview {
                will_insert,
                will_update,
                unchanged: total.saturating_sub(will_insert + will_update),
                conflicts,
            })
        })
    }

    fn native_row_counts(
        &mut self,
        format: &str,
        dump: &Path,
    ) -> Result<Vec<(String, u64)>, PortError> {
        let mut script = self.native_script(format, dump)?;
        let mut counts = Vec::new();
        while let Some(statement) = script.next_statement()? {
            if let Statement::Copy { table, .. } = statement {
                counts.push((table, script.rows(|_| Ok(()))?));
            }
        }
        Ok(counts)
    }

    fn set_maintenance(&mut self, on: bool) -> Result<(), PortError> {
        let mut conn = connect(
            &self.target.platform_url,
            self.target.connect_timeout_s,
            "the platform database",
            || PortError::permanent("tenant_db_config", "the platform database does not exist"),
        )?;
        registry::set_maintenance(&mut conn, &self.tenant, on)
    }
}
