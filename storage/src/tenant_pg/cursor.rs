//! Streaming a query's rows through a server-side cursor, a batch at a time.
//!
//! A dump must never hold a table in memory, and must read inside the
//! snapshot's transaction. A `NO SCROLL` cursor declared in that transaction
//! and read with `FETCH FORWARD n` does both: the server keeps the position,
//! the client holds one batch. The batch size adapts to the rows' width so a
//! batch stays near [`BATCH_BYTES_TARGET`] whether rows are 50 bytes or 5 MB.
//!
//! (`COPY ... TO STDOUT` would be the other way to stream, but diesel 2.3's
//! `copy_to` never collects the command's final result, which leaves the
//! connection unusable for the next statement — and a snapshot needs many.)
//!
//! Every value is read as text: the query selects each column through its
//! type's output function, so what arrives is PostgreSQL's own text form.

use super::conn::{db_error, quote_ident};
use diesel::connection::DefaultLoadingMode;
use diesel::deserialize::{self, QueryableByName};
use diesel::pg::Pg;
use diesel::row::{Field, NamedRow, Row};
use diesel::sql_types::Text;
use diesel::{PgConnection, RunQueryDsl};
use ferry_workflows::ports::PortError;

/// Rows asked for in the first `FETCH`.
pub const FETCH_ROWS_FIRST: i64 = 1_000;
/// Bounds of the adaptive `FETCH` size.
pub const FETCH_ROWS_MIN: i64 = 1;
pub const FETCH_ROWS_MAX: i64 = 20_000;
/// The bytes of value text one batch aims for.
pub const BATCH_BYTES_TARGET: usize = 4 * 1024 * 1024;

/// One row: each column's text, `None` for NULL.
pub(crate) struct TextRow(pub Vec<Option<Vec<u8>>>);

impl QueryableByName<Pg> for TextRow {
    fn build<'a>(row: &impl NamedRow<'a, Pg>) -> deserialize::Result<Self> {
        let count = row.field_count();
        let mut values = Vec::with_capacity(count);
        for i in 0..count {
            let field = Row::get(row, i).ok_or("a column went missing from the row")?;
            // Text arrives as its UTF-8 bytes (binary format of `text`).
            values.push(field.value().map(|v| v.as_bytes().to_vec()));
        }
        Ok(TextRow(values))
    }
}

/// Why a stream stopped early.
#[derive(Debug)]
pub(crate) enum Interrupted {
    /// The database failed: the transaction is no longer usable.
    Database(PortError),
    /// The row callback failed (writing the output); the transaction is
    /// fine and the cursor has been closed.
    Row(PortError),
}

/// Declare cursor `name` for `select` (with `binds` as `$1..`), feed every
/// row to `on_row`, close the cursor. Returns the number of rows.
pub(crate) fn stream(
    conn: &mut PgConnection,
    name: &str,
    select: &str,
    binds: &[String],
    context: &str,
    mut on_row: impl FnMut(&[Option<Vec<u8>>]) -> Result<(), PortError>,
) -> Result<u64, Interrupted> {
    let cursor = quote_ident(name);
    let mut declare = diesel::sql_query(format!("DECLARE {cursor} NO SCROLL CURSOR FOR {select}"))
        .into_boxed::<Pg>();
    for value in binds {
        declare = declare.bind::<Text, _>(value.clone());
    }
    declare
        .execute(conn)
        .map_err(|e| Interrupted::Database(db_error(context, e)))?;

    let mut rows: u64 = 0;
    let mut fetch = FETCH_ROWS_FIRST;
    loop {
        let mut batch_rows: i64 = 0;
        let mut batch_bytes: usize = 0;
        let mut failed: Option<PortError> = None;
        {
            let iter = diesel::sql_query(format!("FETCH FORWARD {fetch} FROM {cursor}"))
                .load_iter::<TextRow, DefaultLoadingMode>(conn)
                .map_err(|e| Interrupted::Database(db_error(context, e)))?;
            for row in iter {
                let TextRow(values) =
                    row.map_err(|e| Interrupted::Database(db_error(context, e)))?;
                batch_rows += 1;
                batch_bytes += values
                    .iter()
                    .map(|v| v.as_ref().map_or(1, Vec::len))
                    .sum::<usize>();
                if let Err(e) = on_row(&values) {
                    // Keep draining this batch's result (already in memory)
                    // so the connection is idle again, then stop.
                    failed = Some(e);
                    break;
                }
                rows += 1;
            }
        }
        if let Some(e) = failed {
            close(conn, &cursor, context).map_err(Interrupted::Database)?;
            return Err(Interrupted::Row(e));
        }
        if batch_rows < fetch {
            break;
        }
        let per_row = (batch_bytes / batch_rows.max(1) as usize).max(1);
        fetch = ((BATCH_BYTES_TARGET / per_row) as i64).clamp(FETCH_ROWS_MIN, FETCH_ROWS_MAX);
    }
    close(conn, &cursor, context).map_err(Interrupted::Database)?;
    Ok(rows)
}

fn close(conn: &mut PgConnection, cursor: &str, context: &str) -> Result<(), PortError> {
    diesel::sql_query(format!("CLOSE {cursor}"))
        .execute(conn)
        .map(|_| ())
        .map_err(|e| db_error(context, e))
}
