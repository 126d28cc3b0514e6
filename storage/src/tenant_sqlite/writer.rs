//! Writing a tenant's SQLite database back (rehydration): the
//! [`TenantWriter`] of the embedded store.
//!
//! Every method is one transaction on the live file (`BEGIN IMMEDIATE`, so
//! the tenant application's writers wait for us or we wait for them, up to
//! the busy timeout, which is the retryable `tenant_db_busy`), rolled back
//! on any error, so a crash or a failure leaves the tenant as it was.
//!
//! **Foreign keys.** The writer's connection runs with `foreign_keys` off
//! and checks the constraints itself before committing, with
//! `PRAGMA foreign_key_check` on every table written and every table that
//! references one. That is "deferred to commit" without SQLite's actions:
//! with enforcement on, emptying a parent table would run `ON DELETE
//! CASCADE` and silently empty child tables outside the group. A violation
//! is the permanent `foreign_key_violation` and nothing is committed.
//! (Triggers of the tenant's schema do fire on our inserts: SQLite cannot
//! switch them off.)
//!
//! **Rows** are read line by line (`lite_read`), decoded to SQLite values
//! with their storage class (`decode_json`) and inserted one statement per
//! row (prepared once, SQLite inserts are cheap inside one transaction). A
//! row that does not fit (a bad value, a duplicate key, a NULL in a NOT
//! NULL column) is the permanent `row_invalid` with its table and line.
//!
//! **Merge** upserts by the key with `ON CONFLICT (key) DO UPDATE ...
//! WHERE <something changed>`, so an unchanged row is not written and the
//! counts are exact; [`preview_merge`](TenantWriter::preview_merge) loads
//! the rows into a temporary table of the same column types inside a
//! transaction it rolls back, and counts with the same comparisons.
//!
//! **Native restore** attaches the bundle's `tenant.sqlite` (a `VACUUM
//! INTO` copy) read-only and replaces every table's rows with `INSERT ...
//! SELECT` in foreign-key order, in one transaction: the live file is never
//! swapped under a running application.
//!
//! **Maintenance** is a marker file next to the database
//! (`<tenant>.sqlite.maintenance`, see `maintenance.rs`).

use super::conn::{db_error, io_error, open, quote_ident, uri_path, OpenMode};
use super::decode_json::sql_value;
use super::dump::{dump_table, PROGRESS_EVERY_ROWS};
use super::introspect::{introspect, Introspected};
use super::maintenance;
use super::value::SqlValue;
use super::{ENGINE, ISOLATION};
use crate::hash_sink::HashSink;
use crate::lite_read::{parse_line, row_invalid, KeyMap, LiteLines};
use crate::load_verify::{already_loaded, check_loaded, ReadBack};
use crate::sql::{clashes, equal_on};
use crate::transaction;
use diesel::connection::SimpleConnection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Binary, Double, Integer, Nullable, Text};
use diesel::sqlite::Sqlite;
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};
use ferry_workflows::ports::merge_key::{check_merge_key, Identifiers, MergeKey};
use ferry_workflows::ports::tenant::{foreign_key_order, SchemaInfo, TableFormat, TableInfo};
use ferry_workflows::ports::tenant_writer::{
    LoadObserver, LoadOutcome, LoadPlan, LoadSource, MergePreview, TableDigest, TableSource,
    TableWrite, TenantWriter, Verify, WriteMode,
};
use ferry_workflows::ports::PortError;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// `format` of a native SQLite dump (`VACUUM INTO` copy).
pub const NATIVE_FORMAT: &str = "sqlite3";
/// Schema name the native dump is attached under during a restore.
const BUNDLE_SCHEMA: &str = "ferry_bundle";
/// Name of the temporary table a merge preview loads rows into.
const PREVIEW_TABLE: &str = "ferry_merge_preview";

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct ViolationRow {
    #[diesel(sql_type = Text)]
    child: String,
    #[diesel(sql_type = Text)]
    parent: String,
}

#[derive(QueryableByName)]
struct AutoincrementRow {
    #[diesel(sql_type = Integer)]
    is_auto: i32,
}

/// One tenant's live SQLite database, open for writing.
pub struct SqliteWriter {
    path: PathBuf,
    busy_timeout_ms: u32,
    conn: SqliteConnection,
}

impl SqliteWriter {
    /// Open the tenant database at `path` (which must exist).
    pub(crate) fn open(path: PathBuf, busy_timeout_ms: u32) -> Result<Self, PortError> {
        let conn = open_for_writing(&path, busy_timeout_ms)?;
        Ok(SqliteWriter {
            path,
            busy_timeout_ms,
            conn,
        })
    }

    /// Run `f` in one transaction: committed if it succeeds, rolled back
    /// if it (or the commit) fails.
    fn transaction<T>(
        &mut self,
        begin: Begin,
        f: impl FnOnce(&mut SqliteConnection) -> Result<T, PortError>,
    ) -> Result<T, PortError> {
        self.run(begin, true, f)
    }

    /// Run `f` in a transaction that is always rolled back.
    fn rolled_back<T>(
        &mut self,
        f: impl FnOnce(&mut SqliteConnection) -> Result<T, PortError>,
    ) -> Result<T, PortError> {
        self.run(Begin::Deferred, false, f)
    }

    fn run<T>(
        &mut self,
        begin: Begin,
        commit: bool,
        f: impl FnOnce(&mut SqliteConnection) -> Result<T, PortError>,
    ) -> Result<T, PortError> {
        let outcome = transaction::run(
            &mut self.conn,
            commit,
            |conn, body| match begin {
                Begin::Immediate => conn.immediate_transaction(|conn| body(conn)),
                Begin::Deferred => conn.transaction(|conn| body(conn)),
            },
            f,
        );
        let broken = outcome.broken;
        let result = outcome.result(
            commit,
            |e| db_error("starting a transaction", e),
            |e| db_error("committing", e),
        );
        if broken {
            // A rollback failed: diesel will not use the connection again,
            // and closing it ends whatever transaction is left.
            match open_for_writing(&self.path, self.busy_timeout_ms) {
                Ok(conn) => self.conn = conn,
                Err(e) => return result.and(Err(e)),
            }
        }
        result
    }
}

/// How a writer's transaction begins.
#[derive(Clone, Copy, Debug)]
enum Begin {
    /// `BEGIN IMMEDIATE`: the write lock first.
    Immediate,
    /// `BEGIN`: a lock when the first statement needs one.
    Deferred,
}

/// The live database, with SQLite's own foreign-key enforcement off (see
/// the module documentation: constraints are checked by hand).
fn open_for_writing(path: &Path, busy_timeout_ms: u32) -> Result<SqliteConnection, PortError> {
    let mut conn = open(path, OpenMode::ReadWriteExisting { busy_timeout_ms })?;
    conn.batch_execute("PRAGMA foreign_keys = OFF;")
        .map_err(|e| db_error("configuring the tenant database", e))?;
    Ok(conn)
}

/// The table `name` of `schema`, or `unknown_table`.
fn table<'a>(schema: &'a Introspected, name: &str) -> Result<&'a TableInfo, PortError> {
    schema
        .tables
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| {
            PortError::permanent(
                "unknown_table",
                format!("the tenant has no table {}", quote_ident(name)),
            )
        })
}

fn count(conn: &mut SqliteConnection, sql: &str, context: &str) -> Result<u64, PortError> {
    let rows: Vec<CountRow> = diesel::sql_query(sql)
        .load(conn)
        .map_err(|e| db_error(context, e))?;
    Ok(rows.first().map_or(0, |r| r.n.max(0) as u64))
}

fn count_table(conn: &mut SqliteConnection, schema: &str, table: &str) -> Result<u64, PortError> {
    count(
        conn,
        &format!(
            "SELECT count(*) AS n FROM {}.{}",
            quote_ident(schema),
            quote_ident(table)
        ),
        &format!("counting the rows of {}", quote_ident(table)),
    )
}

/// Empty `tables` (children first); returns the rows deleted.
fn delete_tables(conn: &mut SqliteConnection, tables: &[&TableInfo]) -> Result<u64, PortError> {
    let mut deleted = 0;
    for info in foreign_key_order(tables.to_vec(), |t| t, true)
        .into_iter()
        .rev()
    {
        deleted += diesel::sql_query(format!("DELETE FROM main.{}", quote_ident(&info.name)))
            .execute(conn)
            .map_err(|e| db_error(&format!("emptying {}", quote_ident(&info.name)), e))?
            as u64;
    }
    Ok(deleted)
}

/// Check the foreign keys of every table in `written` and of every table
/// referencing one of them (whose rows may now point at deleted rows).
fn check_foreign_keys(
    conn: &mut SqliteConnection,
    schema: &Introspected,
    written: &BTreeSet<String>,
) -> Result<(), PortError> {
    let lower: BTreeSet<String> = written.iter().map(|t| t.to_lowercase()).collect();
    for info in &schema.tables {
        let references_written = info
            .foreign_keys
            .iter()
            .any(|fk| lower.contains(&fk.ref_table.to_lowercase()));
        if !(lower.contains(&info.name.to_lowercase()) || references_written) {
            continue;
        }
        if info.foreign_keys.is_empty() {
            continue;
        }
        let found: Vec<ViolationRow> = diesel::sql_query(
            "SELECT \"table\" AS child, parent FROM pragma_foreign_key_check(?1) LIMIT 1",
        )
        .bind::<Text, _>(&info.name)
        .load(conn)
        .map_err(|e| db_error("checking foreign keys", e))?;
        if let Some(v) = found.first() {
            return Err(PortError::permanent(
                "foreign_key_violation",
                format!(
                    "a row of {} references a row of {} that does not exist",
                    quote_ident(&v.child),
                    quote_ident(&v.parent)
                ),
            ));
        }
    }
    Ok(())
}

/// A row error from the database while inserting line `line`: a
/// constraint the row breaks is the row's fault; anything else is not.
fn insert_error(table: &str, line: u64, e: DieselError) -> PortError {
    match &e {
        DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation
            | DatabaseErrorKind::NotNullViolation
            | DatabaseErrorKind::CheckViolation
            | DatabaseErrorKind::ForeignKeyViolation,
            info,
        ) => row_invalid(table, line, info.message()),
        DieselError::DatabaseError(_, info)
            if info.message().contains("datatype mismatch")
                || info.message().contains("constraint failed") =>
        {
            row_invalid(table, line, info.message())
        }
        _ => db_error(&format!("writing table {}", quote_ident(table)), e),
    }
}

/// SQLite's identifiers: ASCII letters compare case-insensitively.
struct SqliteNames;

impl Identifiers for SqliteNames {
    fn same_name(&self, a: &str, b: &str) -> bool {
        a.eq_ignore_ascii_case(b)
    }
    fn quote(&self, name: &str) -> String {
        quote_ident(name)
    }
}

/// The merge key of `info` (`key`, or the primary key when empty), checked
/// against its unique indexes; also returns the other unique sets.
fn merge_key(info: &TableInfo, key: &[String]) -> Result<MergeKey, PortError> {
    let columns = info.columns.iter().map(|c| c.name.as_str());
    check_merge_key(&SqliteNames, info, columns, key, None)
}

/// True when any of `columns` differs between `a` and `b` in storage class
/// or in bytes (never by a column's collation, which could call `'A'` and
/// `'a'` equal).
fn differs(a: &str, b: &str, columns: &[String]) -> String {
    if columns.is_empty() {
        return "0".to_owned();
    }
    columns
        .iter()
        .map(|c| {
            let q = quote_ident(c);
            format!(
                "(typeof({a}.{q}) IS NOT typeof({b}.{q}) OR {a}.{q} IS NOT {b}.{q} COLLATE BINARY)"
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// Inserts rows into one table, one statement per row.
struct RowInserter {
    table: String,
    /// `INSERT ... VALUES (?1, ...)`, with an `ON CONFLICT` clause in merge mode.
    head: String,
    tail: String,
    columns: usize,
}

impl RowInserter {
    fn new(
        target: &str,
        info: &TableInfo,
        columns: &[String],
        mode: &WriteMode,
        key: &[String],
    ) -> Self {
        let names = columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let head = format!("INSERT INTO {target} ({names}) VALUES (");
        let tail = match mode {
            WriteMode::Replace => ")".to_owned(),
            WriteMode::Merge { .. } => {
                let rest: Vec<String> = columns
                    .iter()
                    .filter(|c| !key.iter().any(|k| k.eq_ignore_ascii_case(c)))
                    .cloned()
                    .collect();
                let conflict = key
                    .iter()
                    .map(|c| quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", ");
                if rest.is_empty() {
                    format!(") ON CONFLICT ({conflict}) DO NOTHING")
                } else {
                    let set = rest
                        .iter()
                        .map(|c| format!("{q} = excluded.{q}", q = quote_ident(c)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    format!(
                        ") ON CONFLICT ({conflict}) DO UPDATE SET {set} WHERE {}",
                        differs(&quote_ident(&info.name), "excluded", &rest)
                    )
                }
            }
        };
        RowInserter {
            table: info.name.clone(),
            head,
            tail,
            columns: columns.len(),
        }
    }

    /// Insert one row; returns the rows changed (0 for an unchanged merge).
    fn insert(
        &self,
        conn: &mut SqliteConnection,
        line: u64,
        row: Vec<SqlValue>,
    ) -> Result<usize, PortError> {
        debug_assert_eq!(row.len(), self.columns);
        // TEXT that is not UTF-8 can only be bound as a BLOB and cast back.
        let placeholders = row
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                SqlValue::InvalidText(_) => format!("CAST(?{} AS TEXT)", i + 1),
                _ => format!("?{}", i + 1),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut query = diesel::sql_query(format!("{}{placeholders}{}", self.head, self.tail))
            .into_boxed::<Sqlite>();
        for value in row {
            query = match value {
                SqlValue::Null => query.bind::<Nullable<Text>, _>(None::<String>),
                SqlValue::Integer(i) => query.bind::<BigInt, _>(i),
                SqlValue::Real(f) => query.bind::<Double, _>(f),
                SqlValue::Text(s) => query.bind::<Text, _>(s),
                SqlValue::InvalidText(b) | SqlValue::Blob(b) => query.bind::<Binary, _>(b),
            };
        }
        query
            .execute(conn)
            .map_err(|e| insert_error(&self.table, line, e))
    }
}

/// Load one source's lines into `target` (a table of the tenant, or the
/// preview's temporary copy of it). Returns (rows read, rows changed).
fn load_rows(
    conn: &mut SqliteConnection,
    target: &str,
    info: &TableInfo,
    source: &mut LiteLines<'_>,
    mode: &WriteMode,
    key: &[String],
    mut on_row: impl FnMut() -> Result<(), PortError>,
) -> Result<(u64, u64), PortError> {
    let columns: Vec<&str> = info.columns.iter().map(|c| c.name.as_str()).collect();
    let mut layout: Option<(KeyMap, RowInserter)> = None;
    let (mut rows, mut changed) = (0u64, 0u64);
    let table = source.table().to_owned();
    while let Some((line, text)) = source.next_line()? {
        let entries = parse_line(text).map_err(|m| row_invalid(&table, line, m))?;
        if layout.is_none() {
            let map =
                KeyMap::new(&entries, &columns, &[]).map_err(|m| row_invalid(&table, line, m))?;
            let inserter = RowInserter::new(target, info, map.targets(), mode, key);
            layout = Some((map, inserter));
        }
        let Some((map, inserter)) = &layout else {
            unreachable!("set above");
        };
        let values = map
            .arrange(entries)
            .map_err(|m| row_invalid(&table, line, m))?;
        let row = values
            .into_iter()
            .map(sql_value)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| row_invalid(&table, line, m))?;
        changed += inserter.insert(conn, line, row)? as u64;
        rows += 1;
        on_row()?;
    }
    Ok((rows, changed))
}

/// Raise the `sqlite_sequence` entry of every AUTOINCREMENT table to the
/// largest key it holds (never lower it).
fn reset_sequences(conn: &mut SqliteConnection, schema: &Introspected) -> Result<(), PortError> {
    for seq in &schema.sequences {
        let auto: Vec<AutoincrementRow> = diesel::sql_query(
            "SELECT (sql LIKE '%AUTOINCREMENT%') AS is_auto FROM sqlite_master \
             WHERE type = 'table' AND name = ?1",
        )
        .bind::<Text, _>(&seq.table)
        .load(conn)
        .map_err(|e| db_error("reading the table definitions", e))?;
        if auto.first().is_none_or(|r| r.is_auto == 0) {
            // Plain rowid tables always continue past their largest key.
            continue;
        }
        let max = count(
            conn,
            &format!(
                "SELECT coalesce(max({}), 0) AS n FROM main.{}",
                quote_ident(&seq.column),
                quote_ident(&seq.table)
            ),
            "reading the largest key",
        )? as i64;
        let context = "moving the sequence";
        let updated =
            diesel::sql_query("UPDATE sqlite_sequence SET seq = max(seq, ?1) WHERE name = ?2")
                .bind::<BigInt, _>(max)
                .bind::<Text, _>(&seq.table)
                .execute(conn)
                .map_err(|e| db_error(context, e))?;
        if updated == 0 && max > 0 {
            diesel::sql_query("INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)")
                .bind::<Text, _>(&seq.table)
                .bind::<BigInt, _>(max)
                .execute(conn)
                .map_err(|e| db_error(context, e))?;
        }
    }
    Ok(())
}

fn native_unsupported(format: &str) -> PortError {
    PortError::permanent(
        "native_format_unsupported",
        format!("the SQLite store restores {NATIVE_FORMAT:?} dumps, not {format:?}"),
    )
}

/// Open a native dump read-only and read its schema.
fn open_dump(dump: &Path) -> Result<(SqliteConnection, Introspected), PortError> {
    if !dump.is_file() {
        return Err(PortError::permanent(
            "native_dump_missing",
            format!("no native dump at {}", dump.display()),
        ));
    }
    let mut conn = open(dump, OpenMode::Immutable).map_err(|e| {
        PortError::permanent(
            "native_dump_invalid",
            format!("the native dump: {}", e.message),
        )
    })?;
    let schema = introspect(&mut conn).map_err(|e| {
        PortError::permanent(
            "native_dump_invalid",
            format!("the native dump: {}", e.message),
        )
    })?;
    Ok((conn, schema))
}

/// The tenant's tables as they are in the current transaction.
struct SqliteReadBack<'a> {
    conn: &'a mut SqliteConnection,
    schema: &'a Introspected,
}

impl ReadBack for SqliteReadBack<'_> {
    fn rows(&mut self, name: &str) -> Result<u64, PortError> {
        let info = table(self.schema, name)?;
        count_table(self.conn, "main", &info.name)
    }

    /// The export's own dump code, into a hashing sink.
    fn digest(&mut self, name: &str) -> Result<(u64, String), PortError> {
        let mut sink = HashSink::default();
        let stats = dump_table(
            self.conn,
            self.schema,
            name,
            &TableFormat::Ndjson,
            &mut sink,
            &mut |_| {},
        )?;
        Ok((stats.rows, sink.hex()))
    }
}

#[derive(QueryableByName)]
struct TriggerRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    sql: String,
}

/// Drop the triggers of `tables` for the load (they would fire on the
/// restored rows, which are final as they are) and return their
/// definitions; [`put_triggers_back`] re-creates them in the same
/// transaction (DDL is transactional in SQLite).
fn set_triggers_aside(
    conn: &mut SqliteConnection,
    tables: &[&str],
) -> Result<Vec<TriggerRow>, PortError> {
    let mut aside = Vec::new();
    for t in tables {
        let rows: Vec<TriggerRow> = diesel::sql_query(
            "SELECT name, sql FROM main.sqlite_master \
             WHERE type = 'trigger' AND tbl_name = ?1 COLLATE NOCASE AND sql IS NOT NULL ORDER BY name",
        )
        .bind::<Text, _>(*t)
        .load(conn)
        .map_err(|e| db_error("reading the tables' triggers", e))?;
        aside.extend(rows);
    }
    for t in &aside {
        conn.batch_execute(&format!("DROP TRIGGER main.{}", quote_ident(&t.name)))
            .map_err(|e| db_error("setting the tables' triggers aside", e))?;
    }
    Ok(aside)
}

fn put_triggers_back(conn: &mut SqliteConnection, aside: &[TriggerRow]) -> Result<(), PortError> {
    for t in aside {
        conn.batch_execute(&t.sql)
            .map_err(|e| db_error("re-creating the tables' triggers", e))?;
    }
    Ok(())
}

/// Every table of `schema` that references one of `written` and is not
/// one of them: its rows may now point at rows that are gone.
fn referencing(schema: &Introspected, written: &BTreeSet<String>) -> BTreeSet<String> {
    let lower: BTreeSet<String> = written.iter().map(|t| t.to_lowercase()).collect();
    schema
        .tables
        .iter()
        .filter(|t| !lower.contains(&t.name.to_lowercase()))
        .filter(|t| {
            t.foreign_keys
                .iter()
                .any(|fk| lower.contains(&fk.ref_table.to_lowercase()))
        })
        .map(|t| t.name.clone())
        .collect()
}

/// Load `lite` sources in the current transaction: triggers aside, the
/// replaced tables emptied, every row written (foreign keys are not
/// enforced on the writer's connection, so any order loads), then every
/// foreign key of the written tables and of the tables referencing them
/// checked, and the triggers put back.
fn load_lite(
    conn: &mut SqliteConnection,
    schema: &Introspected,
    sources: &mut [TableSource<'_>],
    observer: &mut dyn LoadObserver,
) -> Result<LoadOutcome, PortError> {
    let mut keys = Vec::with_capacity(sources.len());
    for source in sources.iter() {
        let info = table(schema, &source.table)?;
        keys.push(match &source.mode {
            WriteMode::Replace => Vec::new(),
            WriteMode::Merge { key } => merge_key(info, key)?.key,
        });
    }
    let names: Vec<&str> = sources
        .iter()
        .map(|s| table(schema, &s.table).map(|t| t.name.as_str()))
        .collect::<Result<_, _>>()?;
    let triggers = set_triggers_aside(conn, &names)?;
    let replaced: Vec<&TableInfo> = sources
        .iter()
        .filter(|s| s.mode == WriteMode::Replace)
        .map(|s| table(schema, &s.table))
        .collect::<Result<_, _>>()?;
    let deleted = delete_tables(conn, &replaced)?;
    let mut writes = Vec::with_capacity(sources.len());
    for (source, key) in sources.iter_mut().zip(&keys) {
        let info = table(schema, &source.table)?;
        let before = match source.mode {
            WriteMode::Replace => 0,
            WriteMode::Merge { .. } => count_table(conn, "main", &info.name)?,
        };
        let mut lines = LiteLines::new(&info.name, &mut *source.rows);
        let target = format!("main.{}", quote_ident(&info.name));
        let mut rows = 0u64;
        let (_, changed) = load_rows(conn, &target, info, &mut lines, &source.mode, key, || {
            rows += 1;
            if rows.is_multiple_of(PROGRESS_EVERY_ROWS) {
                observer.rows(&info.name, rows)?;
            }
            Ok(())
        })?;
        observer.rows(&info.name, rows)?;
        writes.push(match source.mode {
            WriteMode::Replace => TableWrite {
                table: info.name.clone(),
                inserted: changed,
                updated: 0,
            },
            WriteMode::Merge { .. } => {
                let inserted = count_table(conn, "main", &info.name)?.saturating_sub(before);
                TableWrite {
                    table: info.name.clone(),
                    inserted,
                    updated: changed.saturating_sub(inserted),
                }
            }
        });
    }
    let mut checked: BTreeSet<String> = writes.iter().map(|w| w.table.clone()).collect();
    checked.extend(referencing(schema, &checked));
    check_foreign_keys(conn, schema, &checked)?;
    put_triggers_back(conn, &triggers)?;
    Ok(LoadOutcome {
        deleted,
        tables: writes,
        unchanged: false,
    })
}

/// Replace every table's rows with the attached native dump's, in the
/// current transaction. The dump must hold every table of the tenant with
/// every column (extra ones in the dump are ignored), and nothing else.
fn load_native(
    conn: &mut SqliteConnection,
    schema: &Introspected,
    dump_schema: &Introspected,
    observer: &mut dyn LoadObserver,
) -> Result<LoadOutcome, PortError> {
    for theirs in &dump_schema.tables {
        if !schema.tables.iter().any(|t| t.name == theirs.name) {
            return Err(PortError::permanent(
                "native_schema_mismatch",
                format!(
                    "the dump has table {} the tenant does not",
                    quote_ident(&theirs.name)
                ),
            ));
        }
    }
    for ours in &schema.tables {
        let Some(theirs) = dump_schema.tables.iter().find(|t| t.name == ours.name) else {
            return Err(PortError::permanent(
                "native_schema_mismatch",
                format!("the dump lacks table {}", quote_ident(&ours.name)),
            ));
        };
        if let Some(c) = ours
            .columns
            .iter()
            .find(|c| !theirs.columns.iter().any(|d| d.name == c.name))
        {
            return Err(PortError::permanent(
                "native_schema_mismatch",
                format!(
                    "the dump's table {} lacks column {}",
                    quote_ident(&ours.name),
                    quote_ident(&c.name)
                ),
            ));
        }
    }
    let names: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
    let triggers = set_triggers_aside(conn, &names)?;
    let all: Vec<&TableInfo> = schema.tables.iter().collect();
    let deleted = delete_tables(conn, &all)?;
    let mut writes = Vec::with_capacity(schema.tables.len());
    for info in &schema.tables {
        let columns = info
            .columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ");
        let inserted = diesel::sql_query(format!(
            "INSERT INTO main.{t} ({columns}) SELECT {columns} FROM {BUNDLE_SCHEMA}.{t}",
            t = quote_ident(&info.name)
        ))
        .execute(conn)
        .map_err(|e| match e {
            DieselError::DatabaseError(_, ref info_) if info_.message().contains("constraint") => {
                PortError::permanent(
                    "native_dump_invalid",
                    format!("restoring {}: {}", quote_ident(&info.name), info_.message()),
                )
            }
            e => db_error(&format!("restoring {}", quote_ident(&info.name)), e),
        })? as u64;
        observer.rows(&info.name, inserted)?;
        writes.push(TableWrite {
            table: info.name.clone(),
            inserted,
            updated: 0,
        });
    }
    let written: BTreeSet<String> = schema.tables.iter().map(|t| t.name.clone()).collect();
    check_foreign_keys(conn, schema, &written)?;
    put_triggers_back(conn, &triggers)?;
    Ok(LoadOutcome {
        deleted,
        tables: writes,
        unchanged: false,
    })
}

impl TenantWriter for SqliteWriter {
    fn schema(&mut self) -> Result<SchemaInfo, PortError> {
        let schema = introspect(&mut self.conn)?;
        Ok(SchemaInfo {
            engine: ENGINE.to_owned(),
            isolation: ISOLATION.to_owned(),
            tables: schema.tables,
            sequences: schema.sequences,
            ..Default::default()
        })
    }

    fn count_rows(&mut self, name: &str) -> Result<u64, PortError> {
        let schema = introspect(&mut self.conn)?;
        let info = table(&schema, name)?;
        count_table(&mut self.conn, "main", &info.name)
    }

    fn content_hash(&mut self, name: &str) -> Result<TableDigest, PortError> {
        // Inside one read transaction, so the rows are of one instant.
        self.transaction(Begin::Deferred, |conn| {
            let schema = introspect(conn)?;
            let (rows, blake3) = SqliteReadBack {
                conn,
                schema: &schema,
            }
            .digest(name)?;
            Ok(TableDigest {
                table: name.to_owned(),
                rows,
                blake3,
            })
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
        let dump = match &source {
            LoadSource::Native { format, dump } => {
                if format != NATIVE_FORMAT {
                    return Err(native_unsupported(format));
                }
                let (dump_conn, dump_schema) = open_dump(dump)?;
                drop(dump_conn);
                diesel::sql_query(format!("ATTACH DATABASE ?1 AS {BUNDLE_SCHEMA}"))
                    .bind::<Text, _>(format!("file:{}?mode=ro&immutable=1", uri_path(dump)))
                    .execute(&mut self.conn)
                    .map_err(|e| db_error("attaching the native dump", e))?;
                Some(dump_schema)
            }
            LoadSource::Lite(_) => None,
        };
        // BEGIN IMMEDIATE: the write lock first, so another load of the
        // tenant (one abandoned by a cancel, say) ends before this starts.
        let result = self.run(Begin::Immediate, !trial, |conn| {
            let schema = introspect(conn)?;
            let mut read = SqliteReadBack {
                conn,
                schema: &schema,
            };
            if already_loaded(&mut read, unless_verified, &verify)? {
                return Ok(LoadOutcome {
                    unchanged: true,
                    ..LoadOutcome::default()
                });
            }
            let before = match (&verify, &source) {
                (Verify::Merged, LoadSource::Lite(sources)) => sources
                    .iter()
                    .map(|s| {
                        let info = table(&schema, &s.table)?;
                        Ok((info.name.clone(), count_table(conn, "main", &info.name)?))
                    })
                    .collect::<Result<Vec<_>, PortError>>()?,
                _ => Vec::new(),
            };
            let outcome = match (source, &dump) {
                (LoadSource::Lite(mut sources), _) => {
                    load_lite(conn, &schema, &mut sources, observer)?
                }
                (LoadSource::Native { .. }, Some(dump_schema)) => {
                    load_native(conn, &schema, dump_schema, observer)?
                }
                (LoadSource::Native { .. }, None) => unreachable!("attached above"),
            };
            reset_sequences(conn, &schema)?;
            let mut read = SqliteReadBack {
                conn,
                schema: &schema,
            };
            check_loaded(&mut read, &verify, &before, &outcome.tables)?;
            observer.before_commit()?;
            Ok(outcome)
        });
        if dump.is_some() {
            let detached = self
                .conn
                .batch_execute(&format!("DETACH DATABASE {BUNDLE_SCHEMA}"))
                .map_err(|e| db_error("detaching the native dump", e));
            let outcome = result?;
            detached?;
            return Ok(outcome);
        }
        result
    }

    fn preview_merge(
        &mut self,
        name: &str,
        key: &[String],
        rows: &mut dyn std::io::BufRead,
    ) -> Result<MergePreview, PortError> {
        // Everything happens in a transaction that is always rolled back.
        self.rolled_back(|conn| {
            let schema = introspect(conn)?;
            let info = table(&schema, name)?;
            let MergeKey { key, others } = merge_key(info, key)?;
            // Same declared types, so the same affinity applies as in the table.
            let definition = info
                .columns
                .iter()
                .map(|c| format!("{} {}", quote_ident(&c.name), c.data_type))
                .collect::<Vec<_>>()
                .join(", ");
            conn.batch_execute(&format!("CREATE TEMP TABLE {PREVIEW_TABLE} ({definition})"))
                .map_err(|e| db_error("preparing the merge preview", e))?;
            let mut lines = LiteLines::new(&info.name, rows);
            let target = format!("temp.{PREVIEW_TABLE}");
            let (total, _) = load_rows(
                conn,
                &target,
                info,
                &mut lines,
                &WriteMode::Replace,
                &[],
                || Ok(()),
            )?;

            let t = format!("main.{}", quote_ident(&info.name));
            let p = PREVIEW_TABLE;
            let rest: Vec<String> = info
                .columns
                .iter()
                .map(|c| c.name.clone())
                .filter(|c| !key.iter().any(|k| k.eq_ignore_ascii_case(c)))
                .collect();
            let matched = format!("SELECT 1 FROM {t} AS t WHERE {}", equal_on("t", p, &key));
            let context = "computing the merge preview";
            let will_insert = count(
                conn,
                &format!("SELECT count(*) AS n FROM temp.{p} WHERE NOT EXISTS ({matched})"),
                context,
            )?;
            let will_update = count(
                conn,
                &format!(
                    "SELECT count(*) AS n FROM temp.{p} WHERE EXISTS ({matched} AND ({}))",
                    differs("t", p, &rest)
                ),
                context,
            )?;
            let conflicts = if others.is_empty() {
                0
            } else {
                let any = clashes(&t, p, &key, &others, "IS");
                count(
                    conn,
                    &format!("SELECT count(*) AS n FROM temp.{p} WHERE {any}"),
                    context,
                )?
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
        if format != NATIVE_FORMAT {
            return Err(native_unsupported(format));
        }
        let (mut conn, schema) = open_dump(dump)?;
        schema
            .tables
            .iter()
            .map(|t| Ok((t.name.clone(), count_table(&mut conn, "main", &t.name)?)))
            .collect()
    }

    fn set_maintenance(&mut self, on: bool) -> Result<(), PortError> {
        maintenance::set(&self.path, on).map_err(|e| io_error("setting the maintenance flag", e))
    }
}
