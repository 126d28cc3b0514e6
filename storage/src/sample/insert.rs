//! Batched multi-row `INSERT`s for the sample generator.
//!
//! One statement per row would spend most of its time preparing statements;
//! one `INSERT ... VALUES (..), (..), ...` per few hundred bound values is
//! fast while staying under SQLite's smallest bound-parameter limit. Table
//! and column names here are the generator's own constants; every value is
//! bound.

use crate::tenant_sqlite::conn::quote_ident;
use diesel::sql_types::{BigInt, Binary, Double, Nullable, Text};
use diesel::sqlite::Sqlite;
use diesel::{QueryResult, RunQueryDsl, SqliteConnection};

/// SQLite before 3.32 allowed at most 999 bound parameters per statement.
const BIND_PARAMS_MAX: usize = 999;

/// One value to bind.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Param {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}

impl From<f64> for Param {
    fn from(v: f64) -> Self {
        Param::Real(v)
    }
}

impl From<String> for Param {
    fn from(v: String) -> Self {
        Param::Text(v)
    }
}

impl From<&str> for Param {
    fn from(v: &str) -> Self {
        Param::Text(v.to_owned())
    }
}

impl From<Vec<u8>> for Param {
    fn from(v: Vec<u8>) -> Self {
        Param::Blob(v)
    }
}

impl<T: Into<Param>> From<Option<T>> for Param {
    fn from(v: Option<T>) -> Self {
        v.map_or(Param::Null, Into::into)
    }
}

/// Rows waiting to be inserted into one table.
pub(crate) struct Batch {
    table: &'static str,
    columns: &'static [&'static str],
    pending: Vec<Vec<Param>>,
    rows_per_statement: usize,
    inserted: u64,
}

impl Batch {
    pub(crate) fn new(table: &'static str, columns: &'static [&'static str]) -> Self {
        Batch {
            table,
            columns,
            pending: Vec::new(),
            rows_per_statement: (BIND_PARAMS_MAX / columns.len().max(1)).max(1),
            inserted: 0,
        }
    }

    /// Queue a row (values in `columns` order), inserting the queue when full.
    pub(crate) fn push(&mut self, conn: &mut SqliteConnection, row: Vec<Param>) -> QueryResult<()> {
        assert_eq!(
            row.len(),
            self.columns.len(),
            "sample row for {} has the wrong width",
            self.table
        );
        self.pending.push(row);
        if self.pending.len() >= self.rows_per_statement {
            self.flush(conn)?;
        }
        Ok(())
    }

    /// Insert whatever is queued; returns the rows inserted over the batch's life.
    pub(crate) fn finish(mut self, conn: &mut SqliteConnection) -> QueryResult<u64> {
        self.flush(conn)?;
        Ok(self.inserted)
    }

    fn flush(&mut self, conn: &mut SqliteConnection) -> QueryResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let columns = self
            .columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let placeholders = format!("({})", vec!["?"; self.columns.len()].join(", "));
        let values = vec![placeholders; self.pending.len()].join(", ");
        let sql = format!(
            "INSERT INTO {} ({columns}) VALUES {values}",
            quote_ident(self.table)
        );
        let mut query = diesel::sql_query(sql).into_boxed::<Sqlite>();
        for value in self.pending.drain(..).flatten() {
            query = match value {
                Param::Null => query.bind::<Nullable<Text>, _>(None::<String>),
                Param::Int(v) => query.bind::<BigInt, _>(v),
                Param::Real(v) => query.bind::<Double, _>(v),
                Param::Text(v) => query.bind::<Text, _>(v),
                Param::Blob(v) => query.bind::<Binary, _>(v),
            };
        }
        let n = query.execute(conn)?;
        self.inserted += n as u64;
        Ok(())
    }
}
