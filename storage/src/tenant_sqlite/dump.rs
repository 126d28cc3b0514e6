//! Streaming one table of the snapshot out as NDJSON or CSV.
//!
//! Rows are read with diesel's `load_iter`, which steps the SQLite statement
//! one row at a time, and each row is encoded and written before the next is
//! read, so memory stays flat whatever the table's size. Rows come in
//! primary-key order (rowid order for tables without one): the same snapshot
//! always dumps to the same bytes, which keeps checksums and content hashes
//! stable.
//!
//! The analytics date filter keeps rows whose timestamp falls on a day in
//! `[from, to]`, in UTC. The column's values are normalised with SQLite's
//! `datetime()` first, so ISO-8601 text with a `T` or a space, with or
//! without fractional seconds, `Z` or a `±HH:MM` offset, compares correctly,
//! and numbers are read as Unix seconds (`'auto'`). Values that are NULL or
//! not a timestamp match no date and are left out. A table without the
//! configured column is dumped whole: the filter applies to tables that have
//! it (reference tables such as products stay complete).

use super::conn::{db_error, quote_ident, write_error};
use super::introspect::Introspected;
use super::value::SqlValue;
use super::{encode_csv, encode_json};
use diesel::connection::DefaultLoadingMode;
use diesel::sql_types::Text;
use diesel::sqlite::Sqlite;
use diesel::{RunQueryDsl, SqliteConnection};
use diesel_dynamic_schema::dynamic_value::DynamicRow;
use ferry_workflows::ports::tenant::{DateFilter, TableFormat, TableStats};
use ferry_workflows::ports::PortError;
use std::io::{BufWriter, Write};

/// How often `progress` hears the running row count.
pub const PROGRESS_EVERY_ROWS: u64 = 5_000;

/// Output buffer: large enough that writes to a zip entry are not per row.
const OUTPUT_BUFFER_BYTES: usize = 64 * 1024;

pub(crate) fn dump_table(
    conn: &mut SqliteConnection,
    schema: &Introspected,
    table: &str,
    format: &TableFormat,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> Result<TableStats, PortError> {
    // Only a name that introspection found can reach the SQL below.
    let Some(index) = schema.tables.iter().position(|t| t.name == table) else {
        return Err(PortError::permanent(
            "unknown_table",
            format!("the tenant has no table {}", quote_ident(table)),
        ));
    };
    let info = &schema.tables[index];
    let columns: Vec<String> = info.columns.iter().map(|c| c.name.clone()).collect();

    let select_list = columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = format!("SELECT {select_list} FROM {}", quote_ident(&info.name));
    let mut binds: Vec<String> = Vec::new();
    if let TableFormat::Csv {
        date_filter: Some(filter),
    } = format
    {
        // SQLite column names are case-insensitive, so is the match.
        if let Some(column) = columns
            .iter()
            .find(|c| c.eq_ignore_ascii_case(&filter.column))
        {
            let (clause, values) = date_clause(column, filter);
            sql.push_str(&clause);
            binds = values;
        }
    }
    if !info.primary_key.is_empty() {
        let keys = info
            .primary_key
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>();
        sql.push_str(&format!(" ORDER BY {}", keys.join(", ")));
    } else if let Some(rowid) = schema.rowid_names[index] {
        sql.push_str(&format!(" ORDER BY {rowid}"));
    }

    let context = || format!("reading table {}", quote_ident(&info.name));
    let mut query = diesel::sql_query(sql).into_boxed::<Sqlite>();
    for value in binds {
        query = query.bind::<Text, _>(value);
    }
    let rows = query
        .load_iter::<DynamicRow<SqlValue>, DefaultLoadingMode>(conn)
        .map_err(|e| db_error(&context(), e))?;

    let mut out = BufWriter::with_capacity(OUTPUT_BUFFER_BYTES, out);
    let csv = matches!(format, TableFormat::Csv { .. });
    if csv {
        encode_csv::write_header(&mut out, &columns).map_err(write_error)?;
    }
    let mut count: u64 = 0;
    let mut reported: u64 = 0;
    for row in rows {
        let row: Vec<SqlValue> = row
            .map_err(|e| db_error(&context(), e))?
            .into_iter()
            .collect();
        if csv {
            encode_csv::write_row(&mut out, &row)
        } else {
            encode_json::write_row(&mut out, &columns, &row)
        }
        .map_err(write_error)?;
        count += 1;
        if count - reported == PROGRESS_EVERY_ROWS {
            progress(count);
            reported = count;
        }
    }
    out.flush().map_err(write_error)?;
    // The final count, unless it was just reported (or is zero).
    if count != reported {
        progress(count);
    }
    Ok(TableStats { rows: count })
}

/// ` WHERE ...` for the date filter on `column` and the values to bind:
/// from the start of `from` (inclusive) to the start of the day after `to`
/// (exclusive), as `datetime()` prints UTC times.
fn date_clause(column: &str, filter: &DateFilter) -> (String, Vec<String>) {
    let normalised = format!("datetime({}, 'auto')", quote_ident(column));
    let mut clause = format!(" WHERE {normalised} >= ?1");
    let mut values = vec![format!("{} 00:00:00", filter.from.format("%Y-%m-%d"))];
    // The last representable date has no next day; then there is no upper bound.
    if let Some(after) = filter.to.succ_opt() {
        clause.push_str(&format!(" AND {normalised} < ?2"));
        values.push(format!("{} 00:00:00", after.format("%Y-%m-%d")));
    }
    (clause, values)
}
