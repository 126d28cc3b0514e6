//! Whether a value of a lite row fits its column: the JSON kinds the lite
//! encoding (`storage::tenant_pg::encode_json`,
//! `storage::tenant_sqlite::encode_json`) writes for each type family.
//!
//! Every value must be a valid encoding: `null`, a boolean, a number, a
//! string, an array of valid values, or one of the tagged objects
//! `{"$base64": …}`, `{"$textBase64": …}` (valid standard base64) and
//! `{"$float": "NaN" | "Infinity" | "-Infinity"}`. Beyond that the column's
//! declared type narrows the kinds: on PostgreSQL integers are JSON
//! integers, floats numbers or `$float`, `numeric` a numeric string (or a
//! number), `boolean` a boolean, `bytea` `$base64`, `json`/`jsonb` a string
//! holding a JSON document, arrays an array (or the literal's string), and
//! text-like types strings. On SQLite a value must match its column's
//! declared type affinity (https://sqlite.org/datatype3.html, 3.1):
//! INTEGER and REAL columns hold numbers (or `$float` infinities), a TEXT
//! column never a number, NUMERIC and BLOB columns anything but booleans
//! and arrays (which never occur). Types not known here accept any valid
//! value. How exactly each value must be written is `canonical.rs`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::Value;

/// The kinds a column accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Family {
    Integer,
    /// `double precision`.
    Float,
    /// `real`: written as the shortest `f32` text.
    Float4,
    Numeric,
    Bool,
    Bytes,
    Json,
    Array,
    Text,
    /// SQLite, TEXT affinity.
    SqliteText,
    /// SQLite, INTEGER affinity.
    SqliteInteger,
    /// SQLite, REAL affinity.
    SqliteReal,
    /// SQLite, NUMERIC affinity.
    SqliteNumeric,
    /// SQLite, BLOB affinity (no declared type).
    SqliteBlob,
    Any,
}

/// The family of a column of `engine` declared as `data_type`.
pub(super) fn family_of(engine: &str, data_type: &str) -> Family {
    let t = data_type.to_ascii_lowercase();
    // Identity and generation clauses (PostgreSQL introspection) follow the type.
    let t = t.split(" generated ").next().unwrap_or("").trim();
    match engine {
        "postgresql" => postgres_family(t),
        "sqlite" => {
            // SQLite's affinity rules (https://sqlite.org/datatype3.html, 3.1).
            if t.contains("int") {
                Family::SqliteInteger
            } else if t.contains("char") || t.contains("clob") || t.contains("text") {
                Family::SqliteText
            } else if t.contains("blob") || t.is_empty() {
                Family::SqliteBlob
            } else if t.contains("real") || t.contains("floa") || t.contains("doub") {
                Family::SqliteReal
            } else {
                Family::SqliteNumeric
            }
        }
        _ => Family::Any,
    }
}

fn postgres_family(t: &str) -> Family {
    if t.ends_with("[]") {
        return Family::Array;
    }
    let base = t.split('(').next().unwrap_or("").trim();
    match base {
        "smallint" | "integer" | "bigint" | "int2" | "int4" | "int8" | "oid" => Family::Integer,
        "double precision" | "float8" => Family::Float,
        "real" | "float4" => Family::Float4,
        "numeric" | "decimal" => Family::Numeric,
        "boolean" | "bool" => Family::Bool,
        "bytea" => Family::Bytes,
        "json" | "jsonb" => Family::Json,
        "text" | "character varying" | "varchar" | "character" | "char" | "uuid" | "date"
        | "interval" | "inet" | "cidr" | "macaddr" | "name" | "citext" => Family::Text,
        _ if base.starts_with("timestamp") || base.starts_with("time") => Family::Text,
        _ => Family::Any,
    }
}

/// A tagged object's tag and text, if `v` is one.
fn tagged(v: &Value) -> Option<(&str, &Value)> {
    match v {
        Value::Object(m) if m.len() == 1 => m.iter().next().map(|(k, v)| (k.as_str(), v)),
        _ => None,
    }
}

fn is_float_tag(v: &Value) -> bool {
    matches!(tagged(v), Some(("$float", Value::String(s))) if matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity"))
}

fn is_base64_tag(v: &Value, tag: &str) -> bool {
    matches!(tagged(v), Some((t, Value::String(s))) if t == tag && BASE64.decode(s).is_ok())
}

/// Whether `v` is any valid lite encoding.
fn valid(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => true,
        Value::Array(items) => items.iter().all(valid),
        Value::Object(_) => {
            is_float_tag(v) || is_base64_tag(v, "$base64") || is_base64_tag(v, "$textBase64")
        }
    }
}

/// A decimal as PostgreSQL prints `numeric`: `-12.50`, `1e5`, `NaN`, `Infinity`.
fn numeric_text(s: &str) -> bool {
    if matches!(s, "NaN" | "Infinity" | "-Infinity") {
        return true;
    }
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    !(int.is_empty() && frac.is_empty()) && digits(int) && digits(frac) && exponent_ok
}

/// Check a non-null value against its column's family; why it does not fit.
pub(super) fn check(family: Family, v: &Value) -> Result<(), &'static str> {
    if !valid(v) {
        return Err("is not a valid lite value (unknown tagged object or bad base64)");
    }
    let text_tag = is_base64_tag(v, "$textBase64");
    let fits = match family {
        Family::Any => true,
        Family::Integer => v.is_i64() || v.is_u64(),
        Family::Float | Family::Float4 => v.is_number() || is_float_tag(v),
        Family::Numeric => v.is_number() || v.as_str().is_some_and(numeric_text),
        Family::Bool => v.is_boolean(),
        Family::Bytes => is_base64_tag(v, "$base64"),
        Family::Json => v
            .as_str()
            .is_some_and(|s| serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok()),
        Family::Array => v.is_array() || v.is_string(),
        Family::Text => v.is_string() || text_tag,
        Family::SqliteText => v.is_string() || text_tag || is_base64_tag(v, "$base64"),
        Family::SqliteInteger | Family::SqliteReal => v.is_number() || is_float_tag(v),
        Family::SqliteNumeric | Family::SqliteBlob => !v.is_boolean() && !v.is_array(),
    };
    if fits {
        Ok(())
    } else {
        Err(match family {
            Family::Integer => "is not an integer",
            Family::Float | Family::Float4 => "is not a number",
            Family::Numeric => "is not a numeric string",
            Family::Bool => "is not a boolean",
            Family::Bytes => "is not {\"$base64\": …}",
            Family::Json => "is not a string holding a JSON document",
            Family::Array => "is not an array",
            Family::Text | Family::SqliteText => "is not a string",
            Family::SqliteInteger => "is not a number (the column has INTEGER affinity)",
            Family::SqliteReal => "is not a number (the column has REAL affinity)",
            Family::SqliteNumeric | Family::SqliteBlob | Family::Any => {
                "cannot occur in a SQLite column"
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_fit_their_families() {
        let pg = |t| family_of("postgresql", t);
        assert_eq!(pg("bigint GENERATED ALWAYS AS IDENTITY"), Family::Integer);
        assert_eq!(pg("numeric(12,2)"), Family::Numeric);
        assert_eq!(pg("timestamp with time zone"), Family::Text);
        assert_eq!(pg("text[]"), Family::Array);
        assert_eq!(pg("mood"), Family::Any);
        assert!(check(Family::Integer, &json!(-9223372036854775808i64)).is_ok());
        assert!(check(Family::Integer, &json!(1.5)).is_err());
        assert!(check(Family::Integer, &json!("1")).is_err());
        assert!(check(Family::Float, &json!({"$float": "NaN"})).is_ok());
        assert!(check(Family::Float, &json!({"$float": "nan"})).is_err());
        assert!(check(Family::Numeric, &json!("-12.50")).is_ok());
        assert!(check(Family::Numeric, &json!("1e-5")).is_ok());
        assert!(check(Family::Numeric, &json!("12.x")).is_err());
        assert!(check(Family::Bytes, &json!({"$base64": "AP8="})).is_ok());
        assert!(check(Family::Bytes, &json!({"$base64": "!!"})).is_err());
        assert!(check(Family::Json, &json!("{\"a\": 1}")).is_ok());
        assert!(check(Family::Json, &json!("{a")).is_err());
        assert!(check(Family::Text, &json!({"$textBase64": "/w=="})).is_ok());
        assert!(check(Family::Any, &json!({"other": 1})).is_err());
        assert!(check(Family::Bool, &json!(true)).is_ok());
        let lite = |t| family_of("sqlite", t);
        assert!(check(lite("INTEGER"), &json!("text in an integer column")).is_err());
        assert!(check(lite("INTEGER"), &json!({"$base64": "AP8="})).is_err());
        assert!(check(lite("BIGINT"), &json!(7)).is_ok());
        assert!(check(lite("DOUBLE"), &json!("1.5")).is_err());
        assert!(check(lite("DATETIME"), &json!("2026-01-01")).is_ok());
        assert!(check(lite(""), &json!("any")).is_ok());
        assert!(check(lite("TEXT"), &json!(5)).is_err());
        assert!(check(lite("REAL"), &json!(true)).is_err());
    }
}
