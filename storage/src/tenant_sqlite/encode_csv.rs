//! CSV encoding of rows (the `analytics` profile).
//!
//! RFC 4180: a header row with the column names, then one record per row,
//! fields separated by `,`, records ended by CRLF. A field is quoted with `"`
//! (embedded quotes doubled) when it contains `,`, `"`, CR or LF.
//!
//! CSV has no types, so values are written as text: INTEGER in decimal, REAL
//! in the same shortest round-trip form as NDJSON (`Infinity`/`-Infinity` for
//! the infinities), TEXT as is (also invalid UTF-8 bytes, verbatim), BLOB as
//! standard base64. NULL and the empty string are told apart the way
//! PostgreSQL's `COPY ... CSV` does: NULL is an empty unquoted field, the empty
//! string is `""`. Readers that do not care see both as empty.

use super::encode_json::real_text;
use super::value::SqlValue;
use crate::csv_record::write_field;
pub(crate) use crate::csv_record::write_header;
use base64::Engine as _;
use std::io::{self, Write};

/// Write one row as a record.
pub(crate) fn write_row(out: &mut impl Write, row: &[SqlValue]) -> io::Result<()> {
    for (i, value) in row.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        match value {
            SqlValue::Null => {}
            SqlValue::Integer(v) => write!(out, "{v}")?,
            SqlValue::Real(f) => out.write_all(real_text(*f).as_bytes())?,
            SqlValue::Text(s) => write_field(out, s.as_bytes())?,
            SqlValue::InvalidText(bytes) => write_field(out, bytes)?,
            SqlValue::Blob(bytes) => {
                // Base64 never needs quoting, but an empty blob must not read as NULL.
                let text = base64::engine::general_purpose::STANDARD.encode(bytes);
                write_field(out, text.as_bytes())?;
            }
        }
    }
    out.write_all(b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_follows_rfc_4180_and_null_differs_from_empty() {
        let mut out = Vec::new();
        write_header(&mut out, &["id".into(), "a \"b\"".into()]).unwrap();
        write_row(
            &mut out,
            &[SqlValue::Integer(1), SqlValue::Text("x,y\n\"z\"".into())],
        )
        .unwrap();
        write_row(&mut out, &[SqlValue::Null, SqlValue::Text(String::new())]).unwrap();
        write_row(&mut out, &[SqlValue::Real(0.1), SqlValue::Blob(vec![0, 1])]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "id,\"a \"\"b\"\"\"\r\n1,\"x,y\n\"\"z\"\"\"\r\n,\"\"\r\n0.1,AAE=\r\n"
        );
    }
}
