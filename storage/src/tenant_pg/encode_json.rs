//! NDJSON encoding of PostgreSQL rows (the `lite` profile), lossless by
//! construction.
//!
//! One JSON object per line, keys in the table's column order (generated
//! columns included; `database/schema.json` flags them). Every value starts
//! as PostgreSQL's own text output and is written by its column's type
//! family (`types.rs`). The conventions are the SQLite store's
//! (`tenant_sqlite::encode_json`) wherever the types overlap, so one reader
//! handles both:
//!
//! | PostgreSQL type | written as | example |
//! |---|---|---|
//! | NULL (any type) | `null` | |
//! | `smallint`, `integer`, `bigint`, `oid` | JSON integer | `-9223372036854775808` |
//! | `real`, `double precision` (finite) | shortest round-trip number, always with `.` or an exponent; a `real` reads back as the same `f32` | `0.1`, `100.0`, `1e+100`, `-0.0` |
//! | `real`, `double precision` (non-finite) | `{"$float": "NaN"}`, `{"$float": "Infinity"}`, `{"$float": "-Infinity"}` | |
//! | `numeric` | string, every digit and the scale kept; also `"NaN"`, `"Infinity"` | `"12345678901234567890.1230"` |
//! | `boolean` | `true` / `false` | |
//! | `bytea` | `{"$base64": "<standard base64 with padding>"}` | `{"$base64":"AP8="}` |
//! | `timestamptz` | ISO-8601 string in UTC with `Z`, microseconds as stored | `"2025-01-01T09:30:00.123456Z"` |
//! | `timestamp` | ISO-8601 string without zone | `"2025-01-01T09:30:00"` |
//! | `date`, `time` | string as PostgreSQL prints it (ISO) | `"2025-01-01"`, `"09:30:00.5"` |
//! | `timetz` | string with a `±HH:MM` offset | `"09:30:00+05:30"` |
//! | `interval` | ISO-8601 duration string | `"P1Y2M3DT4H5M6.5S"` |
//! | `json`, `jsonb` | string holding the document's text (`json` keeps its exact input text, `jsonb` its canonical text) | `"{\"a\": 1}"` |
//! | arrays | JSON array (nested per dimension), elements encoded by their own type | `[1,null,3]`, `[["a","b"]]` |
//! | arrays whose lower bound is not 1 | string of the array literal | `"[0:1]={7,8}"` |
//! | text types, enums, `uuid`, `inet`/`cidr`, ranges, domains over these, everything else | string of PostgreSQL's text output | `"10.0.0.0/8"` |
//! | text that is not valid UTF-8 (only in `SQL_ASCII` databases) | `{"$textBase64": "<standard base64>"}` | |
//! | `infinity` / BC timestamps | string as PostgreSQL prints it | `"infinity"`, `"0044-03-15 12:00:00+00 BC"` |
//!
//! Domains are written as their base type. Objects appear only for the
//! tagged cases, so a `text` or `jsonb` value that looks like
//! `{"$base64": ...}` is still a string and cannot be confused with a tag.
//!
//! `json`/`jsonb` are strings, not embedded JSON values, on purpose: an
//! embedded value could not tell SQL `NULL` from the JSON document `null`,
//! `json` keeps whitespace (newlines would break the one-line-per-row rule),
//! duplicate keys and key order that a JSON value cannot carry, and a
//! document could look like a tag. The SQLite sample keeps JSON in TEXT
//! columns, which export as strings too, so both engines read the same way.

use super::array::{self, Node};
use super::types::Family;
use super::value::{bytea_from_hex, float_text, iso_timestamp, iso_timetz, FloatText};
use crate::lite_write::{self, tagged, tagged_base64, write_string};
use std::io::{self, Write};

/// Write one row as a JSON object and a `\n`. `row[i]` is column `i`'s text,
/// `None` for NULL.
pub(crate) fn write_row(
    out: &mut impl Write,
    columns: &[String],
    families: &[Family],
    row: &[Option<impl AsRef<[u8]>>],
) -> io::Result<()> {
    lite_write::write_row(
        out,
        columns,
        families.iter().zip(row),
        |out, (family, value)| match value {
            None => out.write_all(b"null"),
            Some(bytes) => match std::str::from_utf8(bytes.as_ref()) {
                Ok(text) => write_value(out, family, text),
                Err(_) => tagged_base64(out, "$textBase64", bytes.as_ref()),
            },
        },
    )
}

/// Write one non-NULL value given as its text.
fn write_value(out: &mut impl Write, family: &Family, text: &str) -> io::Result<()> {
    match family {
        Family::Integer => {
            if !is_integer(text) {
                return Err(unreadable("integer", text));
            }
            out.write_all(text.as_bytes())
        }
        Family::Float4 | Family::Float8 => {
            match float_text(text, matches!(family, Family::Float4)) {
                Some(FloatText::Finite(number)) => out.write_all(number.as_bytes()),
                Some(FloatText::Special(name)) => tagged(out, "$float", name),
                None => Err(unreadable("float", text)),
            }
        }
        Family::Bool => match text {
            "t" | "true" => out.write_all(b"true"),
            "f" | "false" => out.write_all(b"false"),
            _ => Err(unreadable("boolean", text)),
        },
        Family::Bytea => {
            let bytes = bytea_from_hex(text).ok_or_else(|| unreadable("bytea", text))?;
            tagged_base64(out, "$base64", &bytes)
        }
        Family::Timestamp => write_string(out, &iso_timestamp(text, false)),
        Family::TimestampTz => write_string(out, &iso_timestamp(text, true)),
        Family::TimeTz => write_string(out, &iso_timetz(text)),
        Family::Array { element, delimiter } => match array::parse(text, *delimiter) {
            Some(node) => write_node(out, element, &node),
            // Non-default bounds: the literal itself, still exact.
            None => write_string(out, text),
        },
        Family::Text => write_string(out, text),
    }
}

fn write_node(out: &mut impl Write, element: &Family, node: &Node<'_>) -> io::Result<()> {
    match node {
        Node::Null => out.write_all(b"null"),
        Node::Value(text) => write_value(out, element, text),
        Node::List(items) => {
            out.write_all(b"[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                write_node(out, element, item)?;
            }
            out.write_all(b"]")
        }
    }
}

/// `-?[0-9]+`: what integer output functions print, checked because the
/// text is written into the JSON unquoted.
fn is_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A value whose text does not match its type (a bug or a server we do not
/// understand); dumping it as something else would be silent corruption.
pub(crate) fn unreadable(kind: &str, text: &str) -> io::Error {
    let shown: String = text.chars().take(40).collect();
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected {kind} text {shown:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(families: Vec<Family>, values: Vec<Option<&str>>) -> String {
        let columns: Vec<String> = (0..values.len()).map(|i| format!("c{i}")).collect();
        let row: Vec<Option<Vec<u8>>> = values
            .into_iter()
            .map(|v| v.map(|s| s.as_bytes().to_vec()))
            .collect();
        let mut out = Vec::new();
        write_row(&mut out, &columns, &families, &row).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn each_family_has_one_encoding() {
        let int_array = Family::Array {
            element: Box::new(Family::Integer),
            delimiter: b',',
        };
        let bytea_array = Family::Array {
            element: Box::new(Family::Bytea),
            delimiter: b',',
        };
        let got = line(
            vec![
                Family::Integer,
                Family::Float8,
                Family::Float4,
                Family::Text,
                Family::Bool,
                Family::Bytea,
                Family::TimestampTz,
                int_array.clone(),
                bytea_array,
                int_array,
                Family::Text,
            ],
            vec![
                Some("-9223372036854775808"),
                Some("NaN"),
                Some("0.1"),
                Some("12.50"),
                Some("t"),
                Some("\\x00ff"),
                Some("2025-01-01 00:00:00.5+00"),
                Some("{{1,NULL},{3,4}}"),
                Some(r#"{"\\x00",NULL}"#),
                Some("[0:1]={7,8}"),
                None,
            ],
        );
        assert_eq!(
            got,
            concat!(
                r#"{"c0":-9223372036854775808,"c1":{"$float":"NaN"},"c2":0.1,"c3":"12.50","#,
                r#""c4":true,"c5":{"$base64":"AP8="},"c6":"2025-01-01T00:00:00.5Z","#,
                r#""c7":[[1,null],[3,4]],"c8":[{"$base64":"AA=="},null],"c9":"[0:1]={7,8}","c10":null}"#,
                "\n"
            )
        );
    }

    #[test]
    fn text_that_does_not_match_its_type_is_an_error() {
        let columns = vec!["c".to_owned()];
        let mut out = Vec::new();
        let err = write_row(
            &mut out,
            &columns,
            &[Family::Integer],
            &[Some(b"1,2".to_vec())],
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
