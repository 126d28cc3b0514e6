//! The SQLite inserter of the sample: one `INSERT ... VALUES (?, ...), ...`
//! per batch, every value bound. Table and column names are the
//! generator's own constants.

use super::model::{Column, Inserter, Types, Value};
use crate::tenant_sqlite::conn::quote_ident;
use diesel::sql_types::{BigInt, Binary, Double, Nullable, Text};
use diesel::sqlite::Sqlite;
use diesel::{QueryResult, RunQueryDsl, SqliteConnection};

/// SQLite before 3.32 allowed at most 999 bound parameters per statement.
const BIND_PARAMS_MAX: usize = 999;

pub(crate) struct SqliteInserter<'c> {
    pub conn: &'c mut SqliteConnection,
}

impl Inserter for SqliteInserter<'_> {
    fn types(&self) -> Types {
        Types::Plain
    }

    fn rows_per_statement(&self, width: usize) -> usize {
        BIND_PARAMS_MAX / width.max(1)
    }

    fn insert(
        &mut self,
        table: &'static str,
        columns: &[Column],
        rows: Vec<Vec<Value>>,
    ) -> QueryResult<u64> {
        let names = columns
            .iter()
            .map(|c| quote_ident(c.name))
            .collect::<Vec<_>>()
            .join(", ");
        let placeholders = format!("({})", vec!["?"; columns.len()].join(", "));
        let values = vec![placeholders; rows.len()].join(", ");
        let sql = format!(
            "INSERT INTO {} ({names}) VALUES {values}",
            quote_ident(table)
        );
        let mut query = diesel::sql_query(sql).into_boxed::<Sqlite>();
        for value in rows.into_iter().flatten() {
            query = match value {
                Value::Null => query.bind::<Nullable<Text>, _>(None::<String>),
                Value::Int(v) => query.bind::<BigInt, _>(v),
                Value::Bool(v) => query.bind::<BigInt, _>(i64::from(v)),
                Value::Real(v) => query.bind::<Double, _>(v),
                Value::Text(v) => query.bind::<Text, _>(v),
                Value::Bytes(v) => query.bind::<Binary, _>(v),
            };
        }
        Ok(query.execute(self.conn)? as u64)
    }
}
