//! Whether a lite row is written exactly as ferry's encoders write it.
//!
//! The load verifies each table by re-encoding the loaded rows and hashing
//! them (`lite` entry hashes), so a row that is valid JSON but not in the
//! encoders' one form (`tenant_sqlite::encode_json`,
//! `tenant_pg::encode_json`) would load and then fail that verification,
//! after the old rows were deleted. Validation refuses it before: the line
//! must be one object with the columns in the table's order, no whitespace,
//! strings escaped as serde_json escapes them (Unicode unescaped), tagged
//! objects in their one-key form, and every number in the text the
//! database gives back for its column: integers as `-?(0|[1-9][0-9]*)`
//! within 64 bits, floats as the shortest round-trip text with a `.` or an
//! exponent (`f32` for `real`), and on SQLite no float that an INTEGER or
//! NUMERIC column would store as an integer and no integer that a REAL
//! column would store as a float, nor a NaN (which SQLite stores as NULL).
//! PostgreSQL `numeric` is a string without
//! a `+`, leading zeros, an exponent or a negative zero.
//!
//! What a database does to a value's text within a string (a timestamp's
//! form, `jsonb`'s key order) is the verification's to find.

use super::value_kind::Family;
use serde_json::value::RawValue;

/// Why a value is not in its canonical form.
pub(super) type NotCanonical = &'static str;

/// Check one value's exact text against its column's family.
pub(super) fn check_value(family: Family, raw: &RawValue) -> Result<(), NotCanonical> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'n') | Some(b't') | Some(b'f') => Ok(()),
        Some(b'"') => string(text, family),
        Some(b'[') => {
            let items: Vec<&RawValue> =
                serde_json::from_str(text).map_err(|_| "is not a JSON array")?;
            let mut expected = String::with_capacity(text.len());
            expected.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    expected.push(',');
                }
                check_value(element_family(family), item)?;
                expected.push_str(item.get());
            }
            expected.push(']');
            same(&expected, text, "has whitespace inside the array")
        }
        Some(b'{') => {
            let members: Vec<(String, &RawValue)> =
                serde_json::from_str::<std::collections::BTreeMap<String, &RawValue>>(text)
                    .map_err(|_| "is not a tagged object")?
                    .into_iter()
                    .collect();
            let [(tag, inner)] = members.as_slice() else {
                return Err("is not a one-key tagged object");
            };
            let inner_text: String =
                serde_json::from_str(inner.get()).map_err(|_| "is not a tagged object")?;
            let sqlite = matches!(
                family,
                Family::SqliteInteger
                    | Family::SqliteReal
                    | Family::SqliteNumeric
                    | Family::SqliteBlob
                    | Family::SqliteText
            );
            if sqlite && tag == "$float" && inner_text == "NaN" {
                return Err("is NaN, which SQLite stores as NULL");
            }
            let expected = format!("{{{}:{}}}", json_string(tag), json_string(&inner_text));
            same(
                &expected,
                text,
                "is not written as ferry writes tagged objects",
            )
        }
        Some(_) => number(text, family),
        None => Err("is empty"),
    }
}

/// The text of a column name or string as the encoders write it.
pub(super) fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

fn same(expected: &str, text: &str, why: NotCanonical) -> Result<(), NotCanonical> {
    if expected == text {
        Ok(())
    } else {
        Err(why)
    }
}

fn element_family(family: Family) -> Family {
    match family {
        Family::Array => Family::Any,
        other => other,
    }
}

fn string(text: &str, family: Family) -> Result<(), NotCanonical> {
    // Without a backslash the text is the string itself (the parser
    // refused raw control characters), which is how serde_json writes it.
    let s: std::borrow::Cow<'_, str> = if text.contains('\\') {
        let s: String = serde_json::from_str(text).map_err(|_| "is not a JSON string")?;
        same(
            &json_string(&s),
            text,
            "is a string not escaped as ferry escapes strings (e.g. \\u escapes of printable characters)",
        )?;
        s.into()
    } else {
        text[1..text.len() - 1].into()
    };
    if family == Family::Numeric && !numeric_text(&s) {
        return Err(
            "is not a numeric in PostgreSQL's own text (no +, leading zeros, exponent or -0)",
        );
    }
    Ok(())
}

/// `numeric` as PostgreSQL prints it.
fn numeric_text(s: &str) -> bool {
    if matches!(s, "NaN" | "Infinity" | "-Infinity") {
        return true;
    }
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    let well_formed =
        digits(int) && (int == "0" || !int.starts_with('0')) && frac.is_none_or(digits);
    let negative_zero = s.starts_with('-') && unsigned.bytes().all(|b| b == b'0' || b == b'.');
    well_formed && !negative_zero
}

/// An integer as the encoders print one: `-?(0|[1-9][0-9]*)` within i64.
fn integer_text(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0"
        && text.parse::<i64>().is_ok()
}

/// A finite float as the encoders print one (serde_json's ryu): the
/// shortest text that reads back to the same bits, with `.` or exponent.
fn float_text(text: &str, single: bool) -> Option<f64> {
    if single {
        let f: f32 = text.parse().ok()?;
        (f.is_finite() && serde_json::to_string(&f).ok()? == text).then_some(f as f64)
    } else {
        let f: f64 = text.parse().ok()?;
        (f.is_finite() && serde_json::to_string(&f).ok()? == text).then_some(f)
    }
}

/// A float SQLite's INTEGER or NUMERIC affinity stores as an integer.
fn integral(f: f64) -> bool {
    const I64_BOUND: f64 = 9_223_372_036_854_775_808.0;
    f.fract() == 0.0 && f > -I64_BOUND && f < I64_BOUND
}

fn number(text: &str, family: Family) -> Result<(), NotCanonical> {
    let int = integer_text(text);
    let ok = match family {
        Family::Integer => int,
        Family::Float => float_text(text, false).is_some(),
        Family::Float4 => float_text(text, true).is_some(),
        // PostgreSQL `numeric` is written as a string.
        Family::Numeric => false,
        Family::SqliteInteger | Family::SqliteNumeric => {
            int || float_text(text, false).is_some_and(|f| !integral(f))
        }
        Family::SqliteReal => float_text(text, false).is_some(),
        _ => int || float_text(text, false).is_some() || float_text(text, true).is_some(),
    };
    if ok {
        Ok(())
    } else {
        Err(match family {
            Family::Integer => "is not an integer as ferry writes it (-?[1-9][0-9]*, within 64 bits)",
            Family::Numeric => "is a number where ferry writes numeric as a string",
            Family::SqliteInteger | Family::SqliteNumeric => {
                "is not a number as the column would store it (an integral float becomes an integer)"
            }
            Family::SqliteReal => {
                "is not a float as the column would store it (shortest round-trip text with . or exponent)"
            }
            _ => "is not a number as ferry writes it (shortest round-trip text)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(family: Family, text: &str) -> bool {
        let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
        check_value(family, &raw).is_ok()
    }

    #[test]
    fn one_form_per_value() {
        assert!(ok(Family::Integer, "-9223372036854775808"));
        assert!(!ok(Family::Integer, "1.0"));
        assert!(!ok(Family::Integer, "-0"));
        assert!(!ok(Family::Integer, "1e2"));
        assert!(ok(Family::Float, "0.1"));
        assert!(ok(Family::Float, "100.0"));
        assert!(ok(Family::Float, "1e-300"));
        assert!(!ok(Family::Float, "1"));
        assert!(!ok(Family::Float, "0.10"));
        assert!(!ok(Family::Float, "1E-300"));
        assert!(ok(Family::Float4, "0.1"));
        assert!(!ok(Family::Float4, "0.10000000149011612"));
        assert!(ok(Family::Numeric, "\"-12.50\""));
        assert!(!ok(Family::Numeric, "\"+12.50\""));
        assert!(!ok(Family::Numeric, "\"1e5\""));
        assert!(!ok(Family::Numeric, "\"-0.0\""));
        assert!(!ok(Family::Numeric, "12.5"));
        assert!(ok(Family::SqliteInteger, "7"));
        assert!(ok(Family::SqliteInteger, "7.5"));
        assert!(!ok(Family::SqliteInteger, "7.0"));
        assert!(ok(Family::SqliteReal, "7.0"));
        assert!(!ok(Family::SqliteReal, "{\"$float\":\"NaN\"}"));
        assert!(ok(Family::SqliteReal, "{\"$float\":\"-Infinity\"}"));
        assert!(!ok(Family::SqliteReal, "7"));
        assert!(ok(Family::Text, "\"é \\\"q\\\" \\n\""));
        assert!(!ok(Family::Text, "\"\\u00e9\""));
        assert!(!ok(Family::Text, "\"\\/\""));
        assert!(ok(Family::Bytes, "{\"$base64\":\"AP8=\"}"));
        assert!(!ok(Family::Bytes, "{\"$base64\": \"AP8=\"}"));
        assert!(ok(Family::Array, "[1,null,[2.5]]"));
        assert!(!ok(Family::Array, "[1, 2]"));
    }
}
