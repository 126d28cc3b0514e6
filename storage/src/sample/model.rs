//! The sample's database-neutral model: values, columns, and the batches
//! rows are queued in until an [`Inserter`] writes them.
//!
//! The generator (`rows.rs`) writes every table through [`Batch`]es; each
//! database has one thin inserter that turns a batch of rows into one
//! multi-row `INSERT` with every value bound (`sample/insert.rs` for SQLite,
//! `tenant_pg/sample/insert.rs` for PostgreSQL). One statement per row would
//! spend most of its time preparing statements; one per few hundred values
//! is fast and stays under each database's bound-parameter limit.

use diesel::QueryResult;

/// Table names in the order they are filled (referenced tables first).
pub const TABLES: &[&str] = &[
    "accounts",
    "users",
    "products",
    "orders",
    "order_items",
    "kpis",
    "kpi_time_series",
    "kpi_reference_ranges",
    "health_trends",
    "playbooks",
    "customer_config",
    "feature_toggles",
];

/// Which column types the database has, and so which values the sample
/// holds: the same tables, rows and keys either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Types {
    /// SQLite's storage classes: text, integers, doubles and blobs; times
    /// as ISO-8601 text to the millisecond, booleans as 0 and 1.
    Plain,
    /// PostgreSQL's types, and the values that test an export of them:
    /// microsecond timestamps, dates, `real`, NaN and ±Infinity, arrays,
    /// uuids, networks, intervals, plain `json` kept as written, and the
    /// columns only such types give (see [`Column::typed_only`]).
    Typed,
}

/// One value to bind.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Real(f64),
    /// SQLite stores it as the integer 0 or 1.
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A column the generator fills.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Column {
    pub name: &'static str,
    /// The PostgreSQL type its bound value is cast to (SQLite binds it as
    /// it is, and the column's affinity applies).
    pub cast: &'static str,
    /// Only [`Types::Typed`] databases have the column (a uuid, a network,
    /// an interval...); the plain sample leaves it out.
    pub typed_only: bool,
}

/// A column both databases have.
pub(crate) const fn col(name: &'static str, cast: &'static str) -> Column {
    Column {
        name,
        cast,
        typed_only: false,
    }
}

/// A column only [`Types::Typed`] databases have.
pub(crate) const fn typed(name: &'static str, cast: &'static str) -> Column {
    Column {
        name,
        cast,
        typed_only: true,
    }
}

/// Writes rows into one database.
pub(crate) trait Inserter {
    /// The database's column types.
    fn types(&self) -> Types;
    /// How many rows of `width` values one statement may carry.
    fn rows_per_statement(&self, width: usize) -> usize;
    /// Insert `rows` (values in `columns` order) into `table` with one
    /// statement; returns the rows inserted.
    fn insert(
        &mut self,
        table: &'static str,
        columns: &[Column],
        rows: Vec<Vec<Value>>,
    ) -> QueryResult<u64>;
}

/// Rows waiting to be inserted into one table.
pub(crate) struct Batch {
    table: &'static str,
    /// The columns the database has.
    columns: Vec<Column>,
    /// Per generated value: whether the database has its column.
    kept: Vec<bool>,
    pending: Vec<Vec<Value>>,
    rows_per_statement: usize,
}

impl Batch {
    pub(crate) fn new(ins: &dyn Inserter, table: &'static str, columns: &[Column]) -> Self {
        let typed = ins.types() == Types::Typed;
        let kept: Vec<bool> = columns.iter().map(|c| typed || !c.typed_only).collect();
        let columns: Vec<Column> = columns
            .iter()
            .zip(&kept)
            .filter(|(_, kept)| **kept)
            .map(|(c, _)| *c)
            .collect();
        Batch {
            table,
            rows_per_statement: ins.rows_per_statement(columns.len()).max(1),
            columns,
            kept,
            pending: Vec::new(),
        }
    }

    /// Queue a row (a value for every generated column, in order),
    /// inserting the queue when full.
    pub(crate) fn push(&mut self, ins: &mut dyn Inserter, row: Vec<Value>) -> QueryResult<()> {
        assert_eq!(
            row.len(),
            self.kept.len(),
            "sample row for {} has the wrong width",
            self.table
        );
        let row = row
            .into_iter()
            .zip(&self.kept)
            .filter_map(|(value, kept)| kept.then_some(value))
            .collect();
        self.pending.push(row);
        if self.pending.len() >= self.rows_per_statement {
            self.flush(ins)?;
        }
        Ok(())
    }

    /// Insert whatever is queued now (so rows referencing it can follow).
    pub(crate) fn flush(&mut self, ins: &mut dyn Inserter) -> QueryResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.pending);
        ins.insert(self.table, &self.columns, rows)?;
        Ok(())
    }
}
