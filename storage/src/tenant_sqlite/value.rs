//! One SQLite value exactly as stored, whatever the column's declared type.
//!
//! SQLite types values, not columns (a column declared `NUMERIC` may hold
//! TEXT, a typeless column anything), so export reads each value's own
//! storage class through diesel-dynamic-schema's `Any` and keeps it. That is
//! what lets the encoders write `'12.50'` as a string and `12.5` as a
//! number, and an import put back exactly what was there.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::sqlite::{Sqlite, SqliteType};
use diesel_dynamic_schema::dynamic_value::Any;

/// A value with its SQLite storage class.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    /// TEXT that is valid UTF-8 (SQLite does not enforce it).
    Text(String),
    /// TEXT whose bytes are not valid UTF-8: kept as bytes rather than
    /// "repaired", so nothing is silently changed.
    InvalidText(Vec<u8>),
    Blob(Vec<u8>),
}

impl FromSql<Any, Sqlite> for SqlValue {
    fn from_sql(mut value: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        Ok(match value.value_type() {
            None => SqlValue::Null,
            Some(SqliteType::Long) => SqlValue::Integer(value.read_long()),
            Some(SqliteType::Double) => SqlValue::Real(value.read_double()),
            // Read text as bytes: diesel's `read_text` would replace invalid
            // UTF-8 with U+FFFD, which an export must not do behind our back.
            Some(SqliteType::Text) => match String::from_utf8(value.read_blob().to_vec()) {
                Ok(text) => SqlValue::Text(text),
                Err(e) => SqlValue::InvalidText(e.into_bytes()),
            },
            Some(SqliteType::Binary) => SqlValue::Blob(value.read_blob().to_vec()),
            Some(other) => {
                return Err(format!("unexpected SQLite storage class {other:?}").into());
            }
        })
    }

    fn from_nullable_sql(
        value: Option<<Sqlite as Backend>::RawValue<'_>>,
    ) -> deserialize::Result<Self> {
        match value {
            Some(value) => Self::from_sql(value),
            None => Ok(SqlValue::Null),
        }
    }
}
