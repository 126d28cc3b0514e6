//! CSV encoding of PostgreSQL rows (the `analytics` profile).
//!
//! The same dialect as the SQLite store (`tenant_sqlite::encode_csv`):
//! RFC 4180, a header row, CRLF, fields quoted when they hold `,`, `"`, CR
//! or LF, NULL an empty unquoted field and the empty string `""` (as
//! PostgreSQL's `COPY ... CSV` tells them apart).
//!
//! Values are PostgreSQL's text output, presented as in NDJSON where a
//! spreadsheet or a data-frame reader benefits: booleans `true`/`false`,
//! timestamps ISO-8601 (`2025-01-01T09:30:00Z`), floats in the shortest
//! round-trip form (`NaN`, `Infinity`, `-Infinity` spelled out), `bytea` as
//! standard base64. Arrays keep PostgreSQL's literal (`{1,2,3}`), numerics
//! their full text, and everything else its text as is.

use super::encode_json::unreadable;
use super::types::Family;
use super::value::{bytea_from_hex, float_text, iso_timestamp, iso_timetz, FloatText};
use crate::csv_record::write_field;
pub(crate) use crate::csv_record::write_header;
use base64::Engine as _;
use std::borrow::Cow;
use std::io::{self, Write};

/// Write one row (column texts, `None` for NULL) as a record.
pub(crate) fn write_row(
    out: &mut impl Write,
    families: &[Family],
    row: &[Option<impl AsRef<[u8]>>],
) -> io::Result<()> {
    for (i, (family, value)) in families.iter().zip(row).enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        let Some(bytes) = value.as_ref().map(AsRef::as_ref) else {
            continue;
        };
        let Ok(text) = std::str::from_utf8(bytes) else {
            // Not UTF-8 (SQL_ASCII databases only): the bytes, verbatim.
            write_field(out, bytes)?;
            continue;
        };
        let shown: Cow<'_, str> = match family {
            Family::Float4 | Family::Float8 => {
                match float_text(text, matches!(family, Family::Float4)) {
                    Some(FloatText::Finite(number)) => Cow::Owned(number),
                    Some(FloatText::Special(name)) => Cow::Borrowed(name),
                    None => return Err(unreadable("float", text)),
                }
            }
            Family::Bool => Cow::Borrowed(match text {
                "t" => "true",
                "f" => "false",
                other => other,
            }),
            Family::Bytea => {
                let bytes = bytea_from_hex(text).ok_or_else(|| unreadable("bytea", text))?;
                Cow::Owned(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            Family::Timestamp => iso_timestamp(text, false),
            Family::TimestampTz => iso_timestamp(text, true),
            Family::TimeTz => iso_timetz(text),
            Family::Integer | Family::Array { .. } | Family::Text => Cow::Borrowed(text),
        };
        write_field(out, shown.as_bytes())?;
    }
    out.write_all(b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_presented_and_quoted() {
        let mut out = Vec::new();
        write_header(&mut out, &["id".into(), "a \"b\"".into()]).unwrap();
        let families = [
            Family::Integer,
            Family::Text,
            Family::Bool,
            Family::Bytea,
            Family::TimestampTz,
            Family::Float8,
            Family::Text,
        ];
        let row: Vec<Option<Vec<u8>>> = [
            Some("1"),
            Some("x,y\n\"z\""),
            Some("f"),
            Some("\\x0001"),
            Some("2025-01-01 00:00:00+00"),
            Some("Infinity"),
            Some(""),
        ]
        .into_iter()
        .map(|v| v.map(|s: &str| s.as_bytes().to_vec()))
        .collect();
        write_row(&mut out, &families, &row).unwrap();
        write_row(&mut out, &families[..1], &[None::<&[u8]>]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "id,\"a \"\"b\"\"\"\r\n1,\"x,y\n\"\"z\"\"\",false,AAE=,2025-01-01T00:00:00Z,Infinity,\"\"\r\n\r\n"
        );
    }
}
