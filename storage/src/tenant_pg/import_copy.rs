//! Loading `lite` NDJSON rows into a table: the fast path, `COPY <table>
//! (<columns>) FROM STDIN` in text format, streamed; and batched multi-row
//! `INSERT`s, the slower path it is measured against
//! (`bench/results/import-copy-vs-insert-*.md`).
//!
//! Each line is parsed (`lite_read`), its values turned into PostgreSQL's
//! input text by their column's family (`decode_json.rs`) and escaped for
//! COPY's text format (`encode_copy.rs`, the escaping the row-mode native
//! dump writes with). Rows go to the server through a 64 KiB buffer as they
//! are read; nothing holds the table.
//!
//! The column list is the bundle's (its first line's keys) minus generated
//! columns; columns the bundle does not carry take their defaults. In row
//! mode the tenant column is always written, with the writer's tenant id: a
//! line that names another tenant is refused rather than rewritten. The
//! statement's target is set through `copy_target.rs`.

use super::conn::{db_error, quote_ident};
use super::copy_target::{self, DynamicTarget};
use super::decode_json::input_text;
use super::encode_copy::write_escaped;
use super::types::Family;
use crate::lite_read::{parse_line, row_invalid, KeyMap, LiteLines, LiteValue};
use diesel::pg::{CopyFormat, Pg};
use diesel::prelude::ExecuteCopyFromDsl;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::Text;
use diesel::{PgConnection, RunQueryDsl};
use ferry_workflows::ports::PortError;
use std::cell::RefCell;
use std::fmt;
use std::io::{BufWriter, Write};

/// Buffer between the row encoder and libpq.
const COPY_BUFFER_BYTES: usize = 64 * 1024;
/// Rows of one `INSERT` on the batched path (fewer for wide tables, so a
/// statement stays under PostgreSQL's 65,535 parameters).
pub const INSERT_BATCH_ROWS: usize = 1_000;

/// Why a COPY stopped: the database, or the rows we were sending.
#[derive(Debug)]
enum CopyError {
    Database(DieselError),
    Rows(PortError),
}

impl fmt::Display for CopyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CopyError::Database(e) => write!(f, "{e}"),
            CopyError::Rows(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CopyError {}

impl From<DieselError> for CopyError {
    fn from(e: DieselError) -> Self {
        CopyError::Database(e)
    }
}

/// How one table's lines become rows: which columns, of which families,
/// and (row mode) where the tenant id goes.
pub(crate) struct RowLayout {
    table: String,
    map: KeyMap,
    /// Families of `map.targets()`, in order.
    families: Vec<Family>,
    /// Row mode: the tenant column, the tenant id, and the column's
    /// position among the targets if the bundle carries it (else it is
    /// appended).
    tenant: Option<(String, String, Option<usize>)>,
    /// Reused per value.
    scratch: Vec<u8>,
}

impl RowLayout {
    /// The layout of a table whose first line is `first`. `columns` are
    /// the table's columns with their families and whether generated.
    pub(crate) fn new(
        table: &str,
        line: u64,
        first: &[(std::borrow::Cow<'_, str>, LiteValue<'_>)],
        columns: &[(&str, &Family, bool)],
        tenant: Option<(&str, &str)>,
    ) -> Result<RowLayout, PortError> {
        let writable: Vec<&str> = columns.iter().filter(|c| !c.2).map(|c| c.0).collect();
        let generated: Vec<&str> = columns.iter().filter(|c| c.2).map(|c| c.0).collect();
        let map =
            KeyMap::new(first, &writable, &generated).map_err(|m| row_invalid(table, line, m))?;
        let families = map
            .targets()
            .iter()
            .map(|name| {
                columns
                    .iter()
                    .find(|c| c.0 == name)
                    .map(|c| c.1.clone())
                    .unwrap_or(Family::Text)
            })
            .collect();
        let tenant = tenant.map(|(column, id)| {
            let at = map.targets().iter().position(|t| t == column);
            (column.to_owned(), id.to_owned(), at)
        });
        Ok(RowLayout {
            table: table.to_owned(),
            map,
            families,
            tenant,
            scratch: Vec::new(),
        })
    }

    /// The columns written, in row order.
    pub(crate) fn columns(&self) -> Vec<String> {
        let mut columns = self.map.targets().to_vec();
        if let Some((column, _, None)) = &self.tenant {
            columns.push(column.clone());
        }
        columns
    }

    /// `"a", "b"`.
    pub(crate) fn column_list(&self) -> String {
        self.columns()
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Each value's input text (`None` for NULL), in [`RowLayout::columns`] order.
    fn values(
        &mut self,
        line: u64,
        text: &str,
        mut each: impl FnMut(Option<&[u8]>),
    ) -> Result<(), PortError> {
        let table = &self.table;
        let entries = parse_line(text).map_err(|m| row_invalid(table, line, m))?;
        let values = self
            .map
            .arrange(entries)
            .map_err(|m| row_invalid(table, line, m))?;
        for (i, (value, family)) in values.iter().zip(&self.families).enumerate() {
            self.scratch.clear();
            let present = input_text(&mut self.scratch, family, value).map_err(|m| {
                row_invalid(
                    table,
                    line,
                    format!("column {:?}: {m}", self.map.targets()[i]),
                )
            })?;
            if let Some((column, id, Some(at))) = &self.tenant {
                if *at == i && (!present || self.scratch != id.as_bytes()) {
                    return Err(row_invalid(
                        table,
                        line,
                        format!("the row's {column:?} is not this tenant ({id:?})"),
                    ));
                }
            }
            each(present.then_some(self.scratch.as_slice()));
        }
        if let Some((_, id, None)) = &self.tenant {
            each(Some(id.as_bytes()));
        }
        Ok(())
    }

    /// One row in COPY text format.
    fn write_copy_row(
        &mut self,
        out: &mut dyn Write,
        line: u64,
        text: &str,
    ) -> Result<(), PortError> {
        let mut first = true;
        let mut failed = None;
        self.values(line, text, |value| {
            if failed.is_some() {
                return;
            }
            let sep: &[u8] = if first { b"" } else { b"\t" };
            first = false;
            let written = out.write_all(sep).and_then(|_| match value {
                None => out.write_all(b"\\N"),
                Some(bytes) => write_escaped(out, bytes),
            });
            if let Err(e) = written {
                failed = Some(e);
            }
        })?;
        match failed {
            Some(e) => Err(copy_write_error(e)),
            None => out.write_all(b"\n").map_err(copy_write_error),
        }
    }
}

fn copy_write_error(e: std::io::Error) -> PortError {
    PortError::retryable(
        "tenant_db_unavailable",
        format!("sending rows to the database: {e}"),
    )
}

/// Read the first line of `lines` and build its layout; `None` for a table
/// without rows.
pub(crate) fn first_line(
    lines: &mut LiteLines<'_>,
    columns: &[(&str, &Family, bool)],
    tenant: Option<(&str, &str)>,
) -> Result<Option<(RowLayout, u64, String)>, PortError> {
    let table = lines.table().to_owned();
    let Some((line, text)) = lines.next_line()? else {
        return Ok(None);
    };
    let text = text.to_owned();
    let entries = parse_line(&text).map_err(|m| row_invalid(&table, line, m))?;
    let layout = RowLayout::new(&table, line, &entries, columns, tenant)?;
    Ok(Some((layout, line, text)))
}

/// A database error while loading `table`: a value or row the server
/// refuses is the row's fault (COPY does not say which line, the message
/// names the value); anything else keeps its usual code.
pub(crate) fn load_error(table: &str, e: DieselError) -> PortError {
    if let DieselError::DatabaseError(kind, info) = &e {
        let message = info.message();
        let lower = message.to_ascii_lowercase();
        let row_fault = matches!(
            kind,
            DatabaseErrorKind::UniqueViolation
                | DatabaseErrorKind::NotNullViolation
                | DatabaseErrorKind::CheckViolation
        ) || [
            "invalid input",
            "out of range",
            "malformed",
            "value too long",
            "invalid byte sequence",
            "extra data after last expected column",
            "missing data for column",
        ]
        .iter()
        .any(|n| lower.contains(n));
        if row_fault {
            return PortError::permanent("row_invalid", format!("table {table:?}: {message}"));
        }
        if matches!(kind, DatabaseErrorKind::ForeignKeyViolation) {
            return PortError::permanent(
                "foreign_key_violation",
                format!("table {table:?}: {message}"),
            );
        }
    }
    db_error(&format!("writing table {}", quote_ident(table)), e)
}

/// `COPY <target> FROM STDIN` in text format, its data written by `write`
/// (through a buffer). `target` is the table with its column list. Returns
/// the rows copied; `table` names the table in errors.
pub(crate) fn copy_in(
    conn: &mut PgConnection,
    table: &str,
    target: &str,
    write: &mut dyn FnMut(&mut dyn Write) -> Result<(), PortError>,
) -> Result<u64, PortError> {
    let write = RefCell::new(write);
    // diesel reports the server's reaction to an aborted COPY ("COPY from
    // stdin failed") before the callback's own error, so the callback's
    // error is also kept here, and wins.
    let failed: RefCell<Option<PortError>> = RefCell::new(None);
    copy_target::aim(target);
    let result = diesel::copy_from(copy_target::anchor)
        .from_raw_data(
            DynamicTarget,
            |sink: &mut dyn Write| -> Result<(), CopyError> {
                let mut out = BufWriter::with_capacity(COPY_BUFFER_BYTES, sink);
                let written = (write.borrow_mut())(&mut out)
                    .and_then(|()| out.flush().map_err(copy_write_error));
                written.map_err(|e| {
                    *failed.borrow_mut() = Some(e.clone());
                    CopyError::Rows(e)
                })
            },
        )
        .with_format(CopyFormat::Text)
        .execute(conn);
    if let Some(e) = failed.into_inner() {
        return Err(e);
    }
    match result {
        Ok(rows) => Ok(rows as u64),
        Err(CopyError::Rows(e)) => Err(e),
        Err(CopyError::Database(e)) => Err(load_error(table, e)),
    }
}

/// `COPY <target> (<layout's columns>) FROM STDIN`: the first line (already
/// read) and every further line of `lines`. `on_row` hears each row sent.
/// Returns the rows copied.
pub(crate) fn copy_rows(
    conn: &mut PgConnection,
    target: &str,
    layout: &mut RowLayout,
    first: (u64, &str),
    lines: &mut LiteLines<'_>,
    on_row: &mut dyn FnMut() -> Result<(), PortError>,
) -> Result<u64, PortError> {
    let table = lines.table().to_owned();
    let target = format!("{target} ({})", layout.column_list());
    copy_in(conn, &table, &target, &mut |out| {
        layout.write_copy_row(out, first.0, first.1)?;
        on_row()?;
        while let Some((line, text)) = lines.next_line()? {
            layout.write_copy_row(out, line, text)?;
            on_row()?;
        }
        Ok(())
    })
}

/// The slower path: the same rows as multi-row `INSERT ... VALUES`
/// statements of [`INSERT_BATCH_ROWS`] rows, every value a bound text cast
/// to its column's type (`types[i]` for column `i`). `prefix` is `INSERT
/// INTO <target>` plus anything before the column list.
pub(crate) fn insert_rows(
    conn: &mut PgConnection,
    target: &str,
    layout: &mut RowLayout,
    types: &[String],
    first: (u64, &str),
    lines: &mut LiteLines<'_>,
    on_row: &mut dyn FnMut() -> Result<(), PortError>,
) -> Result<u64, PortError> {
    let table = lines.table().to_owned();
    let columns = layout.columns();
    let per_row = columns.len().max(1);
    let batch_rows = INSERT_BATCH_ROWS.min(65_535 / per_row).max(1);
    let head = format!(
        "INSERT INTO {target} ({}) OVERRIDING SYSTEM VALUE VALUES ",
        layout.column_list()
    );
    let mut batch: Vec<Option<String>> = Vec::with_capacity(batch_rows * per_row);
    let mut rows: u64 = 0;
    let flush =
        |conn: &mut PgConnection, batch: &mut Vec<Option<String>>| -> Result<(), PortError> {
            if batch.is_empty() {
                return Ok(());
            }
            let mut sql = head.clone();
            for r in 0..batch.len() / per_row {
                sql.push_str(if r == 0 { "(" } else { ", (" });
                for (c, ty) in types.iter().enumerate() {
                    if c > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("CAST(${} AS {ty})", r * per_row + c + 1));
                }
                sql.push(')');
            }
            let mut query = diesel::sql_query(sql).into_boxed::<Pg>();
            for value in batch.drain(..) {
                query = query.bind::<diesel::sql_types::Nullable<Text>, _>(value);
            }
            query
                .execute(conn)
                .map(|_| ())
                .map_err(|e| load_error(&table, e))
        };
    let push = |layout: &mut RowLayout, line: u64, text: &str, batch: &mut Vec<Option<String>>| {
        layout.values(line, text, |v| {
            batch.push(v.map(|b| String::from_utf8_lossy(b).into_owned()));
        })
    };
    push(layout, first.0, first.1, &mut batch)?;
    rows += 1;
    on_row()?;
    while let Some((line, text)) = lines.next_line()? {
        push(layout, line, text, &mut batch)?;
        rows += 1;
        on_row()?;
        if batch.len() >= batch_rows * per_row {
            flush(conn, &mut batch)?;
        }
    }
    flush(conn, &mut batch)?;
    Ok(rows)
}
