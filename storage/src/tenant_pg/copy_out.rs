//! Streaming a query's rows with `COPY (<select>) TO STDOUT`, one line at a
//! time, inside the caller's transaction.
//!
//! A dump must never hold a table in memory and must read inside the
//! snapshot's transaction. `COPY ... TO STDOUT` in text format does both, as
//! it does for `pg_dump`: the server writes every value with its type's
//! output function (PostgreSQL's own text form, escaped as
//! `decode_copy.rs` reads it back) and sends one message per row; libpq
//! hands them over one at a time. It costs the server and the client less
//! per row than `FETCH` from a cursor (no per-value result set, no batches),
//! which is what made the `lite` export faster than `pg_dump`
//! (`bench/results/`).
//!
//! COPY takes no bound parameters, so the query carries its values as
//! literals (`snapshot::select_sql`).
//!
//! diesel's `copy_to` returns the data as a reader but never collects the
//! command's final result, and its next prepared statement would fail with
//! "another command is already in progress". [`finish`] collects it with a
//! simple query, which libpq starts by discarding results left unread. That
//! would also discard a COPY that failed on the server part-way, so the
//! query runs inside the caller's transaction, which such a failure has
//! aborted: the simple query then fails, and the stream is reported as
//! failed rather than short. Every caller streams inside a transaction
//! (`PgSnapshot` holds one open for the whole export).

use super::conn::db_error;
use super::copy_target::{self, DynamicTarget};
use diesel::connection::SimpleConnection;
use diesel::pg::CopyFormat;
use diesel::result::Error as DieselError;
use diesel::PgConnection;
use ferry_workflows::ports::PortError;
use std::io::BufRead;

/// Why a stream stopped early.
#[derive(Debug)]
pub(crate) enum Interrupted {
    /// The database failed: the transaction is no longer usable.
    Database(PortError),
    /// The line callback failed (writing the output); the rest of the COPY
    /// was read and dropped, so the transaction is usable.
    Row(PortError),
}

/// Run `COPY (<select>) TO STDOUT` and feed every row's line (COPY text
/// format, without its newline) to `on_line`. Must run inside a
/// transaction; see the module documentation. Returns the number of rows.
pub(crate) fn lines(
    conn: &mut PgConnection,
    select: &str,
    context: &str,
    mut on_line: impl FnMut(&[u8]) -> Result<(), PortError>,
) -> Result<u64, Interrupted> {
    let database = |e: DieselError| Interrupted::Database(db_error(context, e));
    let lost = |e: std::io::Error| database(DieselError::DeserializationError(Box::new(e)));
    let mut rows: u64 = 0;
    let mut failed: Option<PortError> = None;
    {
        copy_target::aim(&format!("({select})"));
        let mut out = diesel::copy_to(DynamicTarget)
            .with_format(CopyFormat::Text)
            .load_raw(conn)
            .map_err(database)?;
        // A line split across reads (libpq hands out whole rows, but the
        // reader does not promise it).
        let mut partial: Vec<u8> = Vec::new();
        loop {
            let data = out.fill_buf().map_err(lost)?;
            if data.is_empty() {
                break;
            }
            let Some(end) = memchr::memchr(b'\n', data) else {
                partial.extend_from_slice(data);
                let used = data.len();
                out.consume(used);
                continue;
            };
            if failed.is_none() {
                let line = if partial.is_empty() {
                    &data[..end]
                } else {
                    partial.extend_from_slice(&data[..end]);
                    &partial[..]
                };
                match on_line(line) {
                    Ok(()) => rows += 1,
                    Err(e) => failed = Some(e),
                }
            }
            partial.clear();
            out.consume(end + 1);
        }
        if !partial.is_empty() {
            return Err(Interrupted::Database(PortError::retryable(
                "tenant_db_unavailable",
                format!("{context}: the COPY output ended inside a row"),
            )));
        }
    }
    finish(conn).map_err(|e| Interrupted::Database(finish_error(context, e)))?;
    match failed {
        Some(e) => Err(Interrupted::Row(e)),
        None => Ok(rows),
    }
}

/// Collect the finished COPY's result so the connection takes the next
/// statement, and fail if the transaction did not survive the COPY.
fn finish(conn: &mut PgConnection) -> Result<(), DieselError> {
    conn.batch_execute("SELECT 1")
}

/// The error of [`finish`]. An aborted transaction means the server ended
/// the COPY with an error that libpq has discarded (a cancel, a value it
/// could not print, ...): the rows read are not the whole table and the
/// snapshot is gone; a new one may well succeed, so it is retryable.
fn finish_error(context: &str, e: DieselError) -> PortError {
    let aborted = matches!(&e, DieselError::DatabaseError(_, info)
        if info.message().contains("current transaction is aborted"));
    if aborted {
        PortError::retryable(
            "tenant_snapshot_lost",
            format!(
                "{context}: the server stopped the COPY part-way with an error, \
                 which ended the snapshot's transaction"
            ),
        )
    } else {
        db_error(context, e)
    }
}
