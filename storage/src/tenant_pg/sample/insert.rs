//! Batched multi-row `INSERT`s for the PostgreSQL sample generator.
//!
//! One `INSERT ... VALUES (..), (..)` per few hundred rows, every value a
//! bound parameter wrapped in `CAST($n AS <column type>)`, so values can be
//! bound as text (numeric, timestamptz, jsonb, uuid, inet, interval, enums,
//! arrays) and PostgreSQL parses them with the column's own input function.
//! Table names, column names and types are the generator's constants. In
//! row mode the tenant id is prepended to every row as another bound value.

use crate::tenant_pg::conn::quote_ident;
use diesel::pg::Pg;
use diesel::sql_types::{BigInt, Binary, Bool, Double, Nullable, Text};
use diesel::{PgConnection, QueryResult, RunQueryDsl};

/// PostgreSQL accepts at most 65535 bound parameters per statement; stay
/// well below so one statement's text and binds stay small.
const BIND_PARAMS_MAX: usize = 8_000;
/// Rows per statement, whatever the width.
const ROWS_PER_STATEMENT_MAX: usize = 500;

/// One value to bind.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Param {
    Null,
    Int(i64),
    Real(f64),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
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
impl From<bool> for Param {
    fn from(v: bool) -> Self {
        Param::Bool(v)
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
        Param::Bytes(v)
    }
}
impl<T: Into<Param>> From<Option<T>> for Param {
    fn from(v: Option<T>) -> Self {
        v.map_or(Param::Null, Into::into)
    }
}

/// A column the generator fills: its name and the type to cast to.
pub(crate) type Column = (&'static str, &'static str);

/// Rows waiting to be inserted into one table.
pub(crate) struct Batch {
    table: &'static str,
    /// Row mode: the tenant column and the tenant id, prepended to each row.
    tenant: Option<(String, String)>,
    columns: &'static [Column],
    pending: Vec<Vec<Param>>,
    rows_per_statement: usize,
    inserted: u64,
}

impl Batch {
    pub(crate) fn new(
        table: &'static str,
        columns: &'static [Column],
        tenant: Option<(String, String)>,
    ) -> Self {
        let width = columns.len() + usize::from(tenant.is_some());
        Batch {
            table,
            tenant,
            columns,
            pending: Vec::new(),
            rows_per_statement: (BIND_PARAMS_MAX / width.max(1)).clamp(1, ROWS_PER_STATEMENT_MAX),
            inserted: 0,
        }
    }

    /// Queue a row (values in `columns` order), inserting when the batch is full.
    pub(crate) fn push(&mut self, conn: &mut PgConnection, row: Vec<Param>) -> QueryResult<()> {
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
    pub(crate) fn finish(mut self, conn: &mut PgConnection) -> QueryResult<u64> {
        self.flush(conn)?;
        Ok(self.inserted)
    }

    /// Insert whatever is queued now (so rows referencing it can follow).
    pub(crate) fn flush_now(&mut self, conn: &mut PgConnection) -> QueryResult<()> {
        self.flush(conn)
    }

    fn flush(&mut self, conn: &mut PgConnection) -> QueryResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut names: Vec<String> = Vec::new();
        let mut types: Vec<&str> = Vec::new();
        if let Some((column, _)) = &self.tenant {
            names.push(quote_ident(column));
            types.push("text");
        }
        for (name, ty) in self.columns {
            names.push(quote_ident(name));
            types.push(ty);
        }
        let mut n = 0;
        let mut values = Vec::with_capacity(self.pending.len());
        for _ in 0..self.pending.len() {
            let row = types
                .iter()
                .map(|ty| {
                    n += 1;
                    format!("CAST(${n} AS {ty})")
                })
                .collect::<Vec<_>>()
                .join(", ");
            values.push(format!("({row})"));
        }
        let sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            quote_ident(self.table),
            names.join(", "),
            values.join(", ")
        );
        let mut query = diesel::sql_query(sql).into_boxed::<Pg>();
        for row in self.pending.drain(..) {
            if let Some((_, tenant)) = &self.tenant {
                query = query.bind::<Text, _>(tenant.clone());
            }
            for value in row {
                query = match value {
                    Param::Null => query.bind::<Nullable<Text>, _>(None::<String>),
                    Param::Int(v) => query.bind::<BigInt, _>(v),
                    Param::Real(v) => query.bind::<Double, _>(v),
                    Param::Bool(v) => query.bind::<Bool, _>(v),
                    Param::Text(v) => query.bind::<Text, _>(v),
                    Param::Bytes(v) => query.bind::<Binary, _>(v),
                };
            }
        }
        let n = query.execute(conn)?;
        self.inserted += n as u64;
        Ok(())
    }
}
