//! The PostgreSQL inserter of the sample: one `INSERT ... VALUES (..), (..)`
//! per batch, every value a bound parameter wrapped in
//! `CAST($n AS <column type>)`, so values can be bound as text (numeric,
//! timestamptz, jsonb, uuid, inet, interval, enums, arrays) and PostgreSQL
//! parses them with the column's own input function. Table names, column
//! names and types are the generator's constants. In row mode the tenant id
//! is prepended to every row as another bound value.

use crate::sample::model::{Column, Inserter, Types, Value};
use crate::tenant_pg::conn::quote_ident;
use diesel::pg::Pg;
use diesel::sql_types::{BigInt, Binary, Bool, Double, Nullable, Text};
use diesel::{PgConnection, QueryResult, RunQueryDsl};

/// PostgreSQL accepts at most 65535 bound parameters per statement; stay
/// well below so one statement's text and binds stay small.
const BIND_PARAMS_MAX: usize = 8_000;
/// Rows per statement, whatever the width.
const ROWS_PER_STATEMENT_MAX: usize = 500;

pub(crate) struct PgInserter<'c> {
    pub conn: &'c mut PgConnection,
    /// Row mode: the tenant column and the tenant id, prepended to each row.
    pub tenant: Option<(String, String)>,
}

impl Inserter for PgInserter<'_> {
    fn types(&self) -> Types {
        Types::Typed
    }

    fn rows_per_statement(&self, width: usize) -> usize {
        let width = width + usize::from(self.tenant.is_some());
        (BIND_PARAMS_MAX / width.max(1)).clamp(1, ROWS_PER_STATEMENT_MAX)
    }

    fn insert(
        &mut self,
        table: &'static str,
        columns: &[Column],
        rows: Vec<Vec<Value>>,
    ) -> QueryResult<u64> {
        let mut names: Vec<String> = Vec::new();
        let mut types: Vec<&str> = Vec::new();
        if let Some((column, _)) = &self.tenant {
            names.push(quote_ident(column));
            types.push("text");
        }
        for column in columns {
            names.push(quote_ident(column.name));
            types.push(column.cast);
        }
        let mut n = 0;
        let mut values = Vec::with_capacity(rows.len());
        for _ in 0..rows.len() {
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
            quote_ident(table),
            names.join(", "),
            values.join(", ")
        );
        let mut query = diesel::sql_query(sql).into_boxed::<Pg>();
        for row in rows {
            if let Some((_, tenant)) = &self.tenant {
                query = query.bind::<Text, _>(tenant.clone());
            }
            for value in row {
                query = match value {
                    Value::Null => query.bind::<Nullable<Text>, _>(None::<String>),
                    Value::Int(v) => query.bind::<BigInt, _>(v),
                    Value::Real(v) => query.bind::<Double, _>(v),
                    Value::Bool(v) => query.bind::<Bool, _>(v),
                    Value::Text(v) => query.bind::<Text, _>(v),
                    Value::Bytes(v) => query.bind::<Binary, _>(v),
                };
            }
        }
        Ok(query.execute(self.conn)? as u64)
    }
}
