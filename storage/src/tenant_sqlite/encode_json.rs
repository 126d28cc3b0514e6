//! NDJSON encoding of rows (the `lite` profile), lossless by construction.
//!
//! One JSON object per line, keys in the table's column order. Each value is
//! written from its SQLite storage class (see `value.rs`), so an import
//! can restore it exactly:
//!
//! | stored as | written as | read back by |
//! |---|---|---|
//! | NULL | `null` | |
//! | INTEGER | JSON integer, e.g. `-9223372036854775808` (no `.` or exponent) | parse as `i64` |
//! | REAL (finite) | shortest round-trip decimal (ryu via serde_json), always with `.` or an exponent: `0.1`, `100.0`, `1e-300` | parse as `f64` with a correctly rounding parser (Rust's `str::parse`, serde_json with `float_roundtrip`) |
//! | REAL (±infinity; SQLite has no NaN) | `{"$float": "Infinity"}` / `{"$float": "-Infinity"}` | |
//! | TEXT | JSON string, Unicode unescaped; `NUMERIC`/`DECIMAL` columns holding text (e.g. `"12345678901234567890.123456789"`) stay strings, never numbers | |
//! | TEXT that is not valid UTF-8 | `{"$textBase64": "<standard base64>"}` | |
//! | BLOB | `{"$base64": "<standard base64 with padding>"}` | |
//!
//! Objects appear only for these tagged cases, so a TEXT value that happens
//! to look like `{"$base64": ...}` is still a string and cannot be confused.
//!
//! What is written is what SQLite stored. SQLite's NUMERIC affinity already
//! turns well-formed numeric text (`'12.50'`) into INTEGER or REAL on insert,
//! before any export sees it; applications that need exact decimals keep
//! them in TEXT columns (as the sample tenant does), and those stay strings.

use super::value::SqlValue;
use crate::lite_write::{self, tagged, tagged_base64, write_string};
use std::io::{self, Write};

/// Write one row as a JSON object and a `\n`.
pub(crate) fn write_row(
    out: &mut impl Write,
    columns: &[String],
    row: &[SqlValue],
) -> io::Result<()> {
    lite_write::write_row(out, columns, row, write_value)
}

fn write_value(out: &mut impl Write, value: &SqlValue) -> io::Result<()> {
    match value {
        SqlValue::Null => out.write_all(b"null"),
        SqlValue::Integer(i) => write!(out, "{i}"),
        SqlValue::Real(f) if f.is_finite() => {
            // serde_json prints finite floats with ryu: the shortest text that
            // parses back to the same bits, always marked as a float.
            serde_json::to_writer(&mut *out, f).map_err(io::Error::from)
        }
        SqlValue::Real(f) => {
            let text = if *f > 0.0 { "Infinity" } else { "-Infinity" };
            tagged(out, "$float", text)
        }
        SqlValue::Text(s) => write_string(out, s),
        SqlValue::InvalidText(bytes) => tagged_base64(out, "$textBase64", bytes),
        SqlValue::Blob(bytes) => tagged_base64(out, "$base64", bytes),
    }
}

/// Text of a REAL shared with the CSV encoder, so both formats agree.
pub(crate) fn real_text(f: f64) -> String {
    if f.is_finite() {
        // Same ryu output as the NDJSON number above.
        serde_json::to_string(&f).unwrap_or_else(|_| f.to_string())
    } else if f > 0.0 {
        "Infinity".to_owned()
    } else {
        "-Infinity".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(values: Vec<SqlValue>) -> String {
        let columns: Vec<String> = (0..values.len()).map(|i| format!("c{i}")).collect();
        let mut out = Vec::new();
        write_row(&mut out, &columns, &values).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn each_storage_class_has_one_encoding() {
        let got = line(vec![
            SqlValue::Null,
            SqlValue::Integer(i64::MIN),
            SqlValue::Real(0.1),
            SqlValue::Real(100.0),
            SqlValue::Real(f64::INFINITY),
            SqlValue::Text("نص 漢字 🚀 \"q\"".into()),
            SqlValue::Blob(vec![0, 255]),
            SqlValue::InvalidText(vec![0xff]),
        ]);
        assert_eq!(
            got,
            concat!(
                r#"{"c0":null,"c1":-9223372036854775808,"c2":0.1,"c3":100.0,"#,
                r#""c4":{"$float":"Infinity"},"c5":"نص 漢字 🚀 \"q\"","#,
                r#""c6":{"$base64":"AP8="},"c7":{"$textBase64":"/w=="}}"#,
                "\n"
            )
        );
    }

    #[test]
    fn real_text_round_trips() {
        for f in [0.1, 1e-300, f64::MAX, f64::MIN_POSITIVE, 5e-324, -2.5] {
            assert_eq!(real_text(f).parse::<f64>().unwrap().to_bits(), f.to_bits());
        }
    }
}
