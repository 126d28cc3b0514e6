//! The inverse of [`super::encode_json`]: one `lite` NDJSON value back into
//! the SQLite value it was written from, storage class included.
//!
//! | read | becomes |
//! |---|---|
//! | `null` | NULL |
//! | integer number (no `.` or exponent) | INTEGER (must fit 64 bits) |
//! | other number | REAL, parsed with Rust's correctly rounding parser |
//! | `{"$float": "Infinity"}`, `"-Infinity"`, `"NaN"` | REAL (SQLite stores NaN as NULL) |
//! | string | TEXT |
//! | `{"$textBase64": ...}` | TEXT with exactly those bytes |
//! | `{"$base64": ...}` | BLOB |
//! | `true` / `false` | INTEGER 1 / 0 (SQLite's booleans) |
//!
//! Arrays have no SQLite form and are refused. Because each value carries
//! its storage class, re-inserting it reproduces what was exported: the
//! column's affinity already applied when the value was first stored.

use super::value::SqlValue;
use crate::lite_read::LiteValue;

/// The SQLite value of one NDJSON value.
pub(crate) fn sql_value(value: LiteValue<'_>) -> Result<SqlValue, String> {
    Ok(match value {
        LiteValue::Null => SqlValue::Null,
        LiteValue::Bool(b) => SqlValue::Integer(i64::from(b)),
        LiteValue::Number(text) if LiteValue::is_integer_text(text) => SqlValue::Integer(
            text.parse()
                .map_err(|_| format!("integer {text} does not fit 64 bits"))?,
        ),
        LiteValue::Number(text) => SqlValue::Real(
            text.parse()
                .map_err(|_| format!("unreadable number {text}"))?,
        ),
        LiteValue::Float(name) => SqlValue::Real(match name.as_ref() {
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            other => return Err(format!("unknown $float {other:?}")),
        }),
        LiteValue::String(text) => SqlValue::Text(text.into_owned()),
        LiteValue::TextBytes(bytes) => match String::from_utf8(bytes) {
            Ok(text) => SqlValue::Text(text),
            Err(e) => SqlValue::InvalidText(e.into_bytes()),
        },
        LiteValue::Bytes(bytes) => SqlValue::Blob(bytes),
        LiteValue::Array(_) => return Err("an array, which SQLite cannot store".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::super::encode_json::write_row;
    use super::*;
    use crate::lite_read::parse_line;

    #[test]
    fn every_storage_class_round_trips() {
        let values = vec![
            SqlValue::Null,
            SqlValue::Integer(i64::MIN),
            SqlValue::Integer(i64::MAX),
            SqlValue::Real(0.1),
            SqlValue::Real(100.0),
            SqlValue::Real(5e-324),
            SqlValue::Real(-0.0),
            SqlValue::Real(f64::INFINITY),
            SqlValue::Real(f64::NEG_INFINITY),
            SqlValue::Text("نص 漢字 🚀 \"q\" {\"$base64\": \"AA==\"}".into()),
            SqlValue::Text(String::new()),
            SqlValue::Blob(vec![0, 255]),
            SqlValue::Blob(Vec::new()),
            SqlValue::InvalidText(vec![0xff, b'a']),
        ];
        let columns: Vec<String> = (0..values.len()).map(|i| format!("c{i}")).collect();
        let mut line = Vec::new();
        write_row(&mut line, &columns, &values).unwrap();
        let line = String::from_utf8(line).unwrap();
        let back: Vec<SqlValue> = parse_line(line.trim_end())
            .unwrap()
            .into_iter()
            .map(|(_, v)| sql_value(v).unwrap())
            .collect();
        assert_eq!(back.len(), values.len());
        for (got, want) in back.iter().zip(&values) {
            match (got, want) {
                (SqlValue::Real(a), SqlValue::Real(b)) => assert_eq!(a.to_bits(), b.to_bits()),
                _ => assert_eq!(got, want),
            }
        }
        assert!(sql_value(LiteValue::Number("99999999999999999999")).is_err());
        assert!(sql_value(LiteValue::Array(vec![])).is_err());
    }
}
