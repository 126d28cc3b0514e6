//! One consistent, read-only view of a tenant: a `REPEATABLE READ, READ
//! ONLY` transaction held open for the whole export.
//!
//! Opening it: `BEGIN`, fix the session settings that shape text output (so
//! the encoders see one format: UTC, ISO dates, ISO-8601 intervals, hex
//! bytea, shortest-exact floats) and the ones that must not end the
//! transaction early (no statement or idle timeouts), then — in schema and
//! database mode — `pg_export_snapshot()`, so `pg_dump` reads the very same
//! snapshot. The tables are introspected inside the transaction and locked
//! `ACCESS SHARE` (what `pg_dump` takes), so a concurrent `DROP` or `ALTER`
//! waits for the export instead of breaking it; waiting for a lock held by
//! someone else's schema change is bounded by `lock_timeout` and reported
//! as the retryable `tenant_db_busy`.
//!
//! In row mode every read filters on the tenant column with the tenant id
//! (a quoted literal in the tables' `COPY` reads, which take no
//! parameters; a bound parameter elsewhere), and the id is also set as
//! `ferry.tenant` for the transaction (`set_config(..., true)`), which is what row-level security
//! policies read; with a configured role the transaction runs as that role
//! so the policies apply even if ferry connects as the tables' owner.
//!
//! The snapshot lives as long as its connection, so it is not durable: a
//! restarted step takes a new one. If the connection fails mid-export the
//! snapshot is marked lost and every later call fails with the retryable
//! `tenant_snapshot_lost` rather than reading from a different instant.

use super::config::TENANT_SETTING;
use super::conn::{db_error, qualified, quote_ident, quote_literal, write_error};
use super::copy_out::{self, Interrupted};
use super::decode_copy::Fields;
use super::introspect::{self, Introspected, PgTable};
use super::{encode_csv, encode_json, native};
use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel::{PgConnection, QueryableByName, RunQueryDsl};
use ferry_engine::TenantId;
use ferry_workflows::ports::tenant::{
    DateFilter, NativeInfo, SchemaInfo, SequenceInfo, TableFormat, TableStats, TenantSnapshot,
};
use ferry_workflows::ports::PortError;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

/// How often `progress` hears the running row count (as the SQLite store).
pub use crate::tenant_sqlite::PROGRESS_EVERY_ROWS;

/// Output buffer: large enough that writes to a zip entry are not per row.
const OUTPUT_BUFFER_BYTES: usize = 64 * 1024;

/// Where the snapshot reads and how it is isolated.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// `schema`, `database` or `row`.
    pub isolation: &'static str,
    /// The connection URL (platform or tenant database).
    pub url: String,
    /// The schema holding the tenant's tables.
    pub schema: String,
    /// Row mode: the tenant column.
    pub tenant_column: Option<String>,
    /// Row mode with row-level security: the role to run as.
    pub role: Option<String>,
    pub lock_timeout_ms: u64,
    pub pg_dump: PathBuf,
}

#[derive(QueryableByName)]
struct SnapshotIdRow {
    #[diesel(sql_type = Text)]
    id: String,
}

#[derive(QueryableByName)]
struct SequenceStateRow {
    #[diesel(sql_type = BigInt)]
    last_value: i64,
    #[diesel(sql_type = Bool)]
    is_called: bool,
    #[diesel(sql_type = BigInt)]
    increment: i64,
}

#[derive(QueryableByName)]
struct MaxRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    max: Option<i64>,
}

/// A tenant's data as of one instant; see the module documentation.
pub struct PgSnapshot {
    conn: PgConnection,
    tenant: TenantId,
    target: Target,
    /// `pg_export_snapshot()`'s id (schema and database mode).
    snapshot_id: Option<String>,
    schema: Introspected,
    sequences: Vec<SequenceInfo>,
    /// Set once the transaction is unusable; returned by every later call.
    lost: Option<PortError>,
}

impl PgSnapshot {
    /// Begin the transaction on `conn` and read the schema. `tenant_missing`
    /// builds the error for a tenant that, inside the snapshot, has no
    /// schema (or, in row mode, no rows).
    pub(crate) fn open(
        conn: PgConnection,
        tenant: &TenantId,
        target: Target,
        tenant_missing: impl Fn() -> PortError,
    ) -> Result<Self, PortError> {
        Self::open_with(conn, tenant, target, tenant_missing, true)
    }

    /// [`PgSnapshot::open`], where in row mode a tenant without rows is an
    /// empty tenant rather than a missing one when `require_rows` is false
    /// (a rehydration reads its tenant back after emptying it).
    pub(crate) fn open_with(
        mut conn: PgConnection,
        tenant: &TenantId,
        target: Target,
        tenant_missing: impl Fn() -> PortError,
        require_rows: bool,
    ) -> Result<Self, PortError> {
        conn.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .map_err(|e| db_error("starting the snapshot", e))?;
        configure(&mut conn, tenant, &target)?;

        let schema_found = introspect::schema_exists(&mut conn, &target.schema)?;
        if !schema_found {
            return Err(tenant_missing());
        }
        if let Some(column) = target.tenant_column.as_ref().filter(|_| require_rows) {
            let tables = introspect::list_tables(&mut conn, &target.schema, Some(column))?;
            if !introspect::tenant_has_rows(
                &mut conn,
                &target.schema,
                &tables,
                column,
                tenant.as_str(),
            )? {
                return Err(tenant_missing());
            }
        }

        let snapshot_id = if target.tenant_column.is_none() {
            let rows: Vec<SnapshotIdRow> =
                diesel::sql_query("SELECT pg_catalog.pg_export_snapshot() AS id")
                    .load(&mut conn)
                    .map_err(|e| db_error("exporting the snapshot", e))?;
            rows.into_iter().next().map(|r| r.id)
        } else {
            None
        };

        let schema =
            introspect::introspect(&mut conn, &target.schema, target.tenant_column.as_deref())?;
        if !schema.tables.is_empty() {
            let names = schema
                .tables
                .iter()
                .map(|t| qualified(&target.schema, &t.info.name))
                .collect::<Vec<_>>()
                .join(", ");
            conn.batch_execute(&format!("LOCK TABLE {names} IN ACCESS SHARE MODE"))
                .map_err(|e| db_error("locking the tenant's tables", e))?;
        }

        let mut snapshot = PgSnapshot {
            conn,
            tenant: tenant.clone(),
            target,
            snapshot_id,
            schema,
            sequences: Vec::new(),
            lost: None,
        };
        snapshot.sequences = snapshot.read_sequences()?;
        Ok(snapshot)
    }

    /// `pg_export_snapshot()`'s id, for tools that want to read the same
    /// instant (`pg_dump --snapshot`). `None` in row mode.
    pub fn snapshot_id(&self) -> Option<&str> {
        self.snapshot_id.as_deref()
    }

    /// Sequences owned by the tenant's columns, with the last value handed
    /// out. Sequences are not transactional, so schema and database mode
    /// report the value at snapshot time (at least the largest key the
    /// snapshot holds). In row mode a sequence is shared by all tenants and
    /// its value would hint at the others' activity, so the largest key of
    /// the tenant's own rows is reported instead.
    fn read_sequences(&mut self) -> Result<Vec<SequenceInfo>, PortError> {
        let mut out = Vec::with_capacity(self.schema.sequences.len());
        let sequences = self.schema.sequences.clone();
        for seq in sequences {
            let last_value = match (&self.target.tenant_column, self.schema.table(&seq.table)) {
                (Some(column), Some(table)) => {
                    let tenant_type = table.tenant_type.clone().unwrap_or_else(|| "text".into());
                    let sql = format!(
                        "SELECT max({})::int8 AS max FROM {} WHERE {} = {}",
                        quote_ident(&seq.column),
                        qualified(&self.target.schema, &seq.table),
                        quote_ident(column),
                        introspect::tenant_filter_value(&tenant_type, 1)
                    );
                    let rows: Vec<MaxRow> = diesel::sql_query(sql)
                        .bind::<Text, _>(self.tenant.as_str())
                        .load(&mut self.conn)
                        .map_err(|e| db_error("reading the tenant's largest keys", e))?;
                    rows.first().and_then(|r| r.max).unwrap_or(0)
                }
                _ => {
                    let sql = format!(
                        "SELECT s.last_value::int8 AS last_value, s.is_called, \
                                p.seqincrement::int8 AS increment \
                         FROM {} AS s, pg_catalog.pg_sequence AS p \
                         WHERE p.seqrelid = CAST($1 AS pg_catalog.oid)",
                        seq.qualified_name
                    );
                    let rows: Vec<SequenceStateRow> = diesel::sql_query(sql)
                        .bind::<BigInt, _>(seq.oid)
                        .load(&mut self.conn)
                        .map_err(|e| db_error("reading the tenant's sequences", e))?;
                    match rows.first() {
                        Some(r) if r.is_called => r.last_value,
                        // Nothing handed out yet: one step before the start.
                        Some(r) => r.last_value.saturating_sub(r.increment),
                        None => 0,
                    }
                }
            };
            out.push(SequenceInfo {
                table: seq.table,
                column: seq.column,
                last_value,
            });
        }
        Ok(out)
    }

    fn check_alive(&self) -> Result<(), PortError> {
        match &self.lost {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Remember that the transaction is unusable. This call reports the
    /// cause (`e`, with its own code); every later call reports the
    /// retryable `tenant_snapshot_lost`, because a new snapshot will do.
    fn lose(&mut self, e: PortError) -> PortError {
        self.lost = Some(PortError::retryable(
            "tenant_snapshot_lost",
            format!("the snapshot's transaction ended: {}", e.message),
        ));
        e
    }

    /// Stream `select`'s rows, each as its line of COPY text format, into
    /// `on_line`.
    pub(crate) fn stream_lines(
        &mut self,
        select: &str,
        context: &str,
        on_line: impl FnMut(&[u8]) -> Result<(), PortError>,
    ) -> Result<u64, PortError> {
        self.check_alive()?;
        match copy_out::lines(&mut self.conn, select, context, on_line) {
            Ok(rows) => Ok(rows),
            Err(Interrupted::Row(e)) => Err(e),
            Err(Interrupted::Database(e)) => Err(self.lose(e)),
        }
    }

    /// Stream `select`'s rows of `columns` values into `on_row`: each
    /// value's text, `None` for NULL.
    pub(crate) fn stream(
        &mut self,
        select: &str,
        columns: usize,
        context: &str,
        mut on_row: impl FnMut(&[Option<&[u8]>]) -> Result<(), PortError>,
    ) -> Result<u64, PortError> {
        let mut fields = Fields::default();
        self.stream_lines(select, context, |line| {
            on_row(&fields.split(line, columns)?)
        })
    }

    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    pub(crate) fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    pub(crate) fn introspected(&self) -> &Introspected {
        &self.schema
    }

    pub(crate) fn sequences(&self) -> &[SequenceInfo] {
        &self.sequences
    }
}

/// Fix, for the current transaction, the session settings that shape
/// values' text (so the encoders see one format, and the decoders'
/// text reads back the same way), the timeouts, the search path, and in
/// row mode the tenant (`ferry.tenant`) and the role the policies apply to.
pub(crate) fn configure(
    conn: &mut PgConnection,
    tenant: &TenantId,
    target: &Target,
) -> Result<(), PortError> {
    let lock_timeout = format!("{}ms", target.lock_timeout_ms);
    let search_path = quote_ident(&target.schema);
    let mut settings: Vec<(&str, &str)> = vec![
        ("TimeZone", "UTC"),
        ("DateStyle", "ISO, YMD"),
        ("IntervalStyle", "iso_8601"),
        ("bytea_output", "hex"),
        ("extra_float_digits", "1"),
        ("lock_timeout", &lock_timeout),
        ("statement_timeout", "0"),
        ("idle_in_transaction_session_timeout", "0"),
        // Rows of a table without a primary key come in physical order;
        // a synchronized scan could start mid-table and reorder them.
        ("synchronize_seqscans", "off"),
        // COPY takes no parameters, so reads carry literals: a quote
        // doubled is then the whole escaping rule.
        ("standard_conforming_strings", "on"),
        // Type names print unqualified (`plan_tier`, not
        // `tenant_acme.plan_tier`), so equal schemas print equal.
        ("search_path", &search_path),
    ];
    if target.tenant_column.is_some() {
        settings.push((TENANT_SETTING, tenant.as_str()));
    }
    if let Some(role) = &target.role {
        settings.push(("role", role));
    }
    for (name, value) in settings {
        diesel::sql_query("SELECT pg_catalog.set_config($1, $2, true)")
            .bind::<Text, _>(name)
            .bind::<Text, _>(value)
            .execute(conn)
            .map_err(|e| db_error("configuring the session", e))?;
    }
    Ok(())
}

/// `SELECT <columns> FROM <table> [WHERE <tenant> [AND <dates>]] [ORDER BY
/// <primary key, or the row's text>]`, for `COPY (...) TO STDOUT`, which prints each value
/// with its type's output function and takes no parameters: the tenant id
/// and the dates are quoted literals (standard strings are on for the
/// snapshot, `configure`). Also returns the number of columns selected.
pub(crate) fn select_sql(
    target: &Target,
    tenant: &TenantId,
    table: &PgTable,
    include_generated: bool,
    date_filter: Option<&DateFilter>,
) -> (String, usize) {
    let selected: Vec<String> = table
        .columns
        .iter()
        .filter(|c| include_generated || !c.generated)
        .map(|c| quote_ident(&c.name))
        .collect();
    let mut sql = format!(
        "SELECT {} FROM {}",
        selected.join(", "),
        table.rows_of(&target.schema)
    );
    let mut conditions: Vec<String> = Vec::new();
    if let (Some(column), Some(tenant_type)) = (&target.tenant_column, &table.tenant_type) {
        conditions.push(format!(
            "{} = CAST({} AS {tenant_type})",
            quote_ident(column),
            quote_literal(tenant.as_str())
        ));
    }
    if let Some(filter) = date_filter {
        // Exact name first, then case-insensitively (as the SQLite store).
        let column = table
            .columns
            .iter()
            .find(|c| c.name == filter.column)
            .or_else(|| {
                table
                    .columns
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(&filter.column))
            });
        // Only a date or timestamp column can be compared with days; a
        // table whose column is something else is dumped whole, like a
        // table without the column.
        if let Some(column) = column.filter(|c| c.temporal) {
            let day = |d: chrono::NaiveDate| {
                format!(
                    "CAST({} AS pg_catalog.timestamptz)",
                    quote_literal(&format!("{} 00:00:00+00", d.format("%Y-%m-%d")))
                )
            };
            conditions.push(format!(
                "{} >= {}",
                quote_ident(&column.name),
                day(filter.from)
            ));
            if let Some(after) = filter.to.succ_opt() {
                conditions.push(format!("{} < {}", quote_ident(&column.name), day(after)));
            }
        }
    }
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    if !table.info.primary_key.is_empty() {
        let keys = table
            .info
            .primary_key
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        sql.push_str(&format!(" ORDER BY {keys}"));
    } else if !selected.is_empty() {
        // No key to order by: the rows' own text, byte-wise. Physical
        // order is no order — a parallel scan (the tenant filter of row
        // mode invites one) interleaves workers, and a load fills free
        // space wherever it is — and the content hash must not depend on
        // it. Duplicate rows sort together, which is all they need.
        sql.push_str(&format!(
            " ORDER BY ROW({})::text COLLATE \"C\"",
            selected.join(", ")
        ));
    }
    (sql, selected.len())
}

/// The `lite` content digest of `table` (rows, blake3 of its NDJSON),
/// read on `conn` inside its current transaction (configured by
/// [`configure`]): the same query and encoder as an export's
/// [`TenantSnapshot::dump_table`], so the bytes hashed are the bytes an
/// export writes. A rehydration's load verifies its own uncommitted rows
/// with it.
pub(crate) fn table_digest(
    conn: &mut PgConnection,
    target: &Target,
    tenant: &TenantId,
    table: &PgTable,
) -> Result<(u64, String), PortError> {
    let (sql, width) = select_sql(target, tenant, table, true, None);
    let columns: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let families: Vec<_> = table.columns.iter().map(|c| c.family.clone()).collect();
    let mut sink =
        BufWriter::with_capacity(OUTPUT_BUFFER_BYTES, crate::hash_sink::HashSink::default());
    let mut fields = Fields::default();
    let context = format!("verifying table {}", quote_ident(&table.info.name));
    let rows = copy_out::lines(conn, &sql, &context, |line| {
        let row = fields.split(line, width)?;
        encode_json::write_row(&mut sink, &columns, &families, &row).map_err(encode_error)
    })
    .map_err(|e| match e {
        Interrupted::Row(e) | Interrupted::Database(e) => e,
    })?;
    let sink = sink.into_inner().map_err(|e| write_error(e.into_error()))?;
    Ok((rows, sink.hex()))
}

/// Map an encoder failure: a value that does not read as its type is a
/// permanent problem of the data; anything else is the output failing.
pub(crate) fn encode_error(e: io::Error) -> PortError {
    if e.kind() == io::ErrorKind::InvalidData {
        PortError::permanent("tenant_value_unreadable", format!("encoding a value: {e}"))
    } else {
        write_error(e)
    }
}

impl TenantSnapshot for PgSnapshot {
    fn schema(&mut self) -> Result<SchemaInfo, PortError> {
        self.check_alive()?;
        Ok(SchemaInfo {
            engine: super::ENGINE.to_owned(),
            isolation: self.target.isolation.to_owned(),
            tables: self.schema.tables.iter().map(|t| t.info.clone()).collect(),
            sequences: self.sequences.clone(),
            enums: self.schema.enums.clone(),
        })
    }

    fn durable(&self) -> bool {
        // The snapshot dies with the connection; a resumed step re-snapshots.
        false
    }

    fn dump_table(
        &mut self,
        table: &str,
        format: &TableFormat,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<TableStats, PortError> {
        self.check_alive()?;
        // Only a name that introspection found can reach the SQL below.
        let Some(info) = self.schema.table(table).cloned() else {
            return Err(PortError::permanent(
                "unknown_table",
                format!("the tenant has no table {}", quote_ident(table)),
            ));
        };
        let date_filter = match format {
            TableFormat::Csv { date_filter } => date_filter.as_ref(),
            TableFormat::Ndjson => None,
        };
        let (sql, width) = select_sql(&self.target, &self.tenant, &info, true, date_filter);
        let columns: Vec<String> = info.columns.iter().map(|c| c.name.clone()).collect();
        let families: Vec<_> = info.columns.iter().map(|c| c.family.clone()).collect();
        let csv = matches!(format, TableFormat::Csv { .. });

        let mut out = BufWriter::with_capacity(OUTPUT_BUFFER_BYTES, out);
        if csv {
            encode_csv::write_header(&mut out, &columns).map_err(write_error)?;
        }
        let mut count: u64 = 0;
        let mut reported: u64 = 0;
        let context = format!("reading table {}", quote_ident(&info.info.name));
        self.stream(&sql, width, &context, |row| {
            if csv {
                encode_csv::write_row(&mut out, &families, row)
            } else {
                encode_json::write_row(&mut out, &columns, &families, row)
            }
            .map_err(encode_error)?;
            count += 1;
            if count - reported == PROGRESS_EVERY_ROWS {
                progress(count);
                reported = count;
            }
            Ok(())
        })?;
        out.flush().map_err(write_error)?;
        if count != reported {
            progress(count);
        }
        Ok(TableStats { rows: count })
    }

    fn dump_native(&mut self, out: &mut dyn Write) -> Result<NativeInfo, PortError> {
        self.check_alive()?;
        match (&self.target.tenant_column, self.snapshot_id.clone()) {
            (Some(_), _) => native::row_script(self, out),
            (None, Some(id)) => {
                let schema =
                    (self.target.isolation == "schema").then(|| self.target.schema.clone());
                native::pg_dump(
                    &self.target.pg_dump,
                    &self.target.url,
                    &id,
                    schema.as_deref(),
                    out,
                )
            }
            (None, None) => Err(PortError::retryable(
                "tenant_snapshot_lost",
                "the snapshot was not exported",
            )),
        }
    }
}

impl Drop for PgSnapshot {
    fn drop(&mut self) {
        // Closing the connection ends the transaction anyway; saying so is
        // tidier in the server's log. Nothing to do if it fails.
        let _ = self.conn.batch_execute("ROLLBACK");
    }
}
