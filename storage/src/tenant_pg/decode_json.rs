//! The inverse of [`super::encode_json`]: one `lite` NDJSON value back into
//! PostgreSQL's input text for its column, by the same type families
//! (`types.rs`) the encoder presents values by.
//!
//! | family | read | input text |
//! |---|---|---|
//! | any | `null` | NULL |
//! | integer | JSON integer | its digits |
//! | `real`, `double precision` | JSON number; `{"$float": ...}` | the number's exact text (the server's `strtod` rounds it to the same bits the encoder printed); `NaN`, `Infinity`, `-Infinity` |
//! | boolean | `true` / `false` | `t` / `f` |
//! | `bytea` | `{"$base64": ...}` | `\x<hex>` |
//! | timestamps, `timetz` | ISO-8601 string (or `infinity`, a BC date) | the string: PostgreSQL reads ISO-8601 with `T` and `Z` |
//! | arrays | JSON array | an array literal, every element quoted (`{"1",NULL,{"2"}}`), nested per dimension; a string (non-default bounds) is the literal itself |
//! | everything else (numeric, text, enums, domains, uuid, json, inet, interval, ranges, ...) | string | the string: it is the server's own text output, which its input function reads back |
//! | text-like | `{"$textBase64": ...}` | the bytes themselves (`SQL_ASCII` databases) |
//!
//! A number is also accepted where the family is text (a `numeric` column
//! whose bundle was written from a `double precision` one, say): its text is
//! exact either way. Anything else that does not fit the family (an array
//! for an integer, base64 for a `uuid`) is refused: it was not written by an
//! export of this column, and guessing would corrupt data.

use super::types::Family;
use crate::lite_read::LiteValue;
use std::io::Write;

/// Append the input text of `value` for a column of `family` to `out`;
/// `Ok(false)` (nothing appended) for NULL.
pub(crate) fn input_text(
    out: &mut Vec<u8>,
    family: &Family,
    value: &LiteValue<'_>,
) -> Result<bool, String> {
    let mismatch = |what: &str| Err(format!("{what} does not fit a column of family {family:?}"));
    match (value, family) {
        (LiteValue::Null, _) => return Ok(false),
        (LiteValue::Number(text), Family::Integer) if LiteValue::is_integer_text(text) => {
            out.extend_from_slice(text.as_bytes())
        }
        (LiteValue::Number(_), Family::Integer) => return mismatch("a fractional number"),
        (LiteValue::Number(text), Family::Float4 | Family::Float8 | Family::Text) => {
            out.extend_from_slice(text.as_bytes())
        }
        (LiteValue::Float(name), Family::Float4 | Family::Float8 | Family::Text) => {
            match name.as_ref() {
                "NaN" | "Infinity" | "-Infinity" => out.extend_from_slice(name.as_bytes()),
                other => return Err(format!("unknown $float {other:?}")),
            }
        }
        (LiteValue::Bool(b), Family::Bool) => out.push(if *b { b't' } else { b'f' }),
        (LiteValue::Bool(b), Family::Text) => {
            out.extend_from_slice(if *b { b"true" } else { b"false" })
        }
        (LiteValue::Bytes(bytes), Family::Bytea) => {
            out.extend_from_slice(b"\\x");
            out.extend_from_slice(hex::encode(bytes).as_bytes());
        }
        (
            LiteValue::String(text),
            Family::Text
            | Family::Timestamp
            | Family::TimestampTz
            | Family::TimeTz
            | Family::Array { .. },
        ) => out.extend_from_slice(text.as_bytes()),
        (LiteValue::TextBytes(bytes), Family::Text) => out.extend_from_slice(bytes),
        (LiteValue::Array(items), Family::Array { element, delimiter }) => {
            write_array(out, element, *delimiter, items)?
        }
        (LiteValue::Number(_), _) => return mismatch("a number"),
        (LiteValue::Float(_), _) => return mismatch("a $float"),
        (LiteValue::Bool(_), _) => return mismatch("a boolean"),
        (LiteValue::Bytes(_), _) => return mismatch("base64 bytes"),
        (LiteValue::TextBytes(_), _) => return mismatch("non-UTF-8 text"),
        (LiteValue::String(_), _) => return mismatch("a string"),
        (LiteValue::Array(_), _) => return mismatch("an array"),
    }
    Ok(true)
}

/// `{"a",NULL,{"b"}}`: every element quoted, so no element text needs
/// to be judged for specials; inside quotes only `"` and `\` are escaped.
fn write_array(
    out: &mut Vec<u8>,
    element: &Family,
    delimiter: u8,
    items: &[LiteValue<'_>],
) -> Result<(), String> {
    out.push(b'{');
    let mut text = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(delimiter);
        }
        match item {
            LiteValue::Array(inner) => write_array(out, element, delimiter, inner)?,
            _ => {
                text.clear();
                if input_text(&mut text, element, item)? {
                    out.push(b'"');
                    for &b in &text {
                        if b == b'"' || b == b'\\' {
                            out.push(b'\\');
                        }
                        out.push(b);
                    }
                    out.push(b'"');
                } else {
                    let _ = out.write_all(b"NULL");
                }
            }
        }
    }
    out.push(b'}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lite_read::parse_line;

    fn text(family: Family, json: &str) -> Result<Option<String>, String> {
        let line = format!("{{\"c\":{json}}}");
        let (_, value) = parse_line(&line).unwrap().remove(0);
        let mut out = Vec::new();
        Ok(input_text(&mut out, &family, &value)?.then(|| String::from_utf8(out).unwrap()))
    }

    #[test]
    fn each_family_reads_back_as_input_text() {
        let ints = Family::Array {
            element: Box::new(Family::Integer),
            delimiter: b',',
        };
        let blobs = Family::Array {
            element: Box::new(Family::Bytea),
            delimiter: b',',
        };
        let texts = Family::Array {
            element: Box::new(Family::Text),
            delimiter: b',',
        };
        let cases: Vec<(Family, &str, Option<&str>)> = vec![
            (
                Family::Integer,
                "-9223372036854775808",
                Some("-9223372036854775808"),
            ),
            (Family::Float8, "1e+100", Some("1e+100")),
            (
                Family::Float4,
                r#"{"$float":"-Infinity"}"#,
                Some("-Infinity"),
            ),
            (Family::Text, r#""12.50""#, Some("12.50")),
            (Family::Bool, "false", Some("f")),
            (Family::Bytea, r#"{"$base64":"AP8="}"#, Some("\\x00ff")),
            (
                Family::TimestampTz,
                r#""2025-01-01T00:00:00.5Z""#,
                Some("2025-01-01T00:00:00.5Z"),
            ),
            (
                ints.clone(),
                "[[1,null],[3,4]]",
                Some(r#"{{"1",NULL},{"3","4"}}"#),
            ),
            (ints, r#""[0:1]={7,8}""#, Some("[0:1]={7,8}")),
            (
                blobs,
                r#"[{"$base64":"AA=="},null]"#,
                Some(r#"{"\\x00",NULL}"#),
            ),
            (
                texts,
                r#"["a,b","c\"d\\","NULL",""]"#,
                Some(r#"{"a,b","c\"d\\","NULL",""}"#),
            ),
            (Family::Text, "null", None),
        ];
        for (family, json, want) in cases {
            assert_eq!(
                text(family.clone(), json).unwrap().as_deref(),
                want,
                "{family:?} {json}"
            );
        }
        assert!(text(Family::Integer, "1.5").is_err());
        assert!(text(Family::Integer, "[1]").is_err());
        assert!(text(Family::Text, r#"{"$base64":"AA=="}"#).is_err());
    }
}
