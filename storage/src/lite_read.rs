//! Reading the `lite` NDJSON encoding back, for every tenant store.
//!
//! The encoders (`tenant_sqlite::encode_json`, `tenant_pg::encode_json`)
//! write one JSON object per line, keys in column order, with a handful of
//! tagged objects (`$float`, `$base64`, `$textBase64`). This module turns a
//! line back into those values without losing anything on the way: a number
//! keeps its exact text (a JSON parser would round a float or overflow an
//! integer before the database saw it), strings stay strings, tags are
//! recognised only in their exact one-key form. What a value means for a
//! column is each store's business (`decode_json.rs` of each).
//!
//! Lines are read one at a time into a reused buffer, so a table is never
//! held in memory. Line numbers count every line from 1, blank ones too,
//! so an error report points at the line an editor shows.

use ferry_workflows::ports::PortError;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::io::BufRead;

/// One value of a row, as the encoders write it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum LiteValue<'a> {
    Null,
    Bool(bool),
    /// A JSON number, exactly as written (`-9223372036854775808`, `0.1`, `1e+100`).
    Number(&'a str),
    String(Cow<'a, str>),
    /// `{"$float": "NaN" | "Infinity" | "-Infinity"}`.
    Float(Cow<'a, str>),
    /// `{"$base64": ...}`, decoded.
    Bytes(Vec<u8>),
    /// `{"$textBase64": ...}`, decoded: text whose bytes are not UTF-8.
    TextBytes(Vec<u8>),
    Array(Vec<LiteValue<'a>>),
}

impl LiteValue<'_> {
    /// Whether a number's text is an integer (no fraction, no exponent).
    pub(crate) fn is_integer_text(text: &str) -> bool {
        !text.contains(['.', 'e', 'E'])
    }
}

/// The permanent error for a row that does not fit its table.
pub(crate) fn row_invalid(table: &str, line: u64, message: impl fmt::Display) -> PortError {
    PortError::permanent(
        "row_invalid",
        format!("table {table:?}, line {line}: {message}"),
    )
}

/// The lines of one table's NDJSON.
pub(crate) struct LiteLines<'r> {
    table: String,
    rows: &'r mut dyn BufRead,
    line: u64,
    buf: String,
}

impl<'r> LiteLines<'r> {
    pub(crate) fn new(table: &str, rows: &'r mut dyn BufRead) -> Self {
        LiteLines {
            table: table.to_owned(),
            rows,
            line: 0,
            buf: String::new(),
        }
    }

    /// The next line that is not blank, with its number; `None` at the end.
    pub(crate) fn next_line(&mut self) -> Result<Option<(u64, &str)>, PortError> {
        loop {
            self.buf.clear();
            let read = self.rows.read_line(&mut self.buf).map_err(|e| {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    row_invalid(&self.table, self.line + 1, "the line is not UTF-8")
                } else {
                    PortError::retryable(
                        "input_read_failed",
                        format!("reading table {:?}: {e}", self.table),
                    )
                }
            })?;
            if read == 0 {
                return Ok(None);
            }
            self.line += 1;
            if !self.buf.trim().is_empty() {
                return Ok(Some((self.line, self.buf.trim_end_matches(['\n', '\r']))));
            }
        }
    }

    pub(crate) fn table(&self) -> &str {
        &self.table
    }
}

/// Parse one line into its keys and values, in the order written.
pub(crate) fn parse_line(line: &str) -> Result<Vec<(Cow<'_, str>, LiteValue<'_>)>, String> {
    let raw: RawObject<'_> =
        serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    raw.0
        .into_iter()
        .map(|(key, value)| Ok((key, value_of(value)?)))
        .collect()
}

/// The object's entries with their values still as JSON text.
struct RawObject<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(RawObject(entries))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

fn value_of(raw: &RawValue) -> Result<LiteValue<'_>, String> {
    let text = raw.get();
    let bad = |e: serde_json::Error| format!("unreadable value {}: {e}", shorten(text));
    Ok(match text.as_bytes().first() {
        Some(b'n') => LiteValue::Null,
        Some(b't') => LiteValue::Bool(true),
        Some(b'f') => LiteValue::Bool(false),
        Some(b'"') => LiteValue::String(serde_json::from_str::<Cow<'_, str>>(text).map_err(bad)?),
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(bad)?;
            LiteValue::Array(items.into_iter().map(value_of).collect::<Result<_, _>>()?)
        }
        Some(b'{') => {
            let RawObject(entries) = serde_json::from_str(text).map_err(bad)?;
            let [(tag, value)] = entries.as_slice() else {
                return Err(format!("an object that is not a tag: {}", shorten(text)));
            };
            let payload = serde_json::from_str::<Cow<'_, str>>(value.get()).map_err(bad)?;
            let base64 = |s: &str| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|e| format!("bad base64 in {tag}: {e}"))
            };
            match tag.as_ref() {
                "$float" => LiteValue::Float(payload),
                "$base64" => LiteValue::Bytes(base64(&payload)?),
                "$textBase64" => LiteValue::TextBytes(base64(&payload)?),
                other => return Err(format!("unknown tag {other:?}")),
            }
        }
        // serde_json has checked the grammar: anything else is a number.
        Some(_) => LiteValue::Number(text),
        None => return Err("an empty value".to_owned()),
    })
}

fn shorten(text: &str) -> String {
    let shown: String = text.chars().take(40).collect();
    if shown.len() < text.len() {
        format!("{shown}…")
    } else {
        shown
    }
}

/// Where each key of a table's lines goes: the bundle decides which
/// columns it carries (the first line's keys), the table decides which of
/// them are written. Keys naming generated columns are read and dropped
/// (the database computes them); a key the table does not have is an
/// error, as is a later line with another set of keys. Columns the bundle
/// does not carry get their defaults.
pub(crate) struct KeyMap {
    /// The bundle's keys in the first line's order.
    keys: Vec<String>,
    /// For each key: its position among `targets`, or `None` if dropped.
    slots: Vec<Option<usize>>,
    /// Names of the columns written, in the order of the values `arrange` returns.
    targets: Vec<String>,
    by_name: HashMap<String, usize>,
}

impl KeyMap {
    /// `columns` are the table's writable columns, `skipped` its generated ones.
    pub(crate) fn new(
        first: &[(Cow<'_, str>, LiteValue<'_>)],
        columns: &[&str],
        skipped: &[&str],
    ) -> Result<KeyMap, String> {
        let mut map = KeyMap {
            keys: Vec::with_capacity(first.len()),
            slots: Vec::with_capacity(first.len()),
            targets: Vec::new(),
            by_name: HashMap::new(),
        };
        for (i, (key, _)) in first.iter().enumerate() {
            if map.by_name.insert(key.to_string(), i).is_some() {
                return Err(format!("column {key:?} appears twice"));
            }
            map.keys.push(key.to_string());
            if columns.contains(&key.as_ref()) {
                map.slots.push(Some(map.targets.len()));
                map.targets.push(key.to_string());
            } else if skipped.contains(&key.as_ref()) {
                map.slots.push(None);
            } else {
                return Err(format!("the table has no column {key:?}"));
            }
        }
        Ok(map)
    }

    /// The columns written, in the order of [`KeyMap::arrange`]'s values.
    pub(crate) fn targets(&self) -> &[String] {
        &self.targets
    }

    /// The line's values in target order. Lines written by an export have
    /// their keys in one order, which is checked first; any other order is
    /// accepted if the keys are the same.
    pub(crate) fn arrange<'a>(
        &self,
        entries: Vec<(Cow<'a, str>, LiteValue<'a>)>,
    ) -> Result<Vec<LiteValue<'a>>, String> {
        if entries.len() != self.keys.len() {
            return Err(format!(
                "{} columns where the first line has {}",
                entries.len(),
                self.keys.len()
            ));
        }
        let mut out: Vec<Option<LiteValue<'a>>> = vec![None; self.targets.len()];
        for (i, (key, value)) in entries.into_iter().enumerate() {
            let index = if self.keys[i] == key {
                i
            } else {
                *self
                    .by_name
                    .get(key.as_ref())
                    .ok_or_else(|| format!("column {key:?} is not in the first line"))?
            };
            if let Some(slot) = self.slots[index] {
                if out[slot].replace(value).is_some() {
                    return Err(format!("column {key:?} appears twice"));
                }
            }
        }
        out.into_iter()
            .zip(&self.targets)
            .map(|(v, name)| v.ok_or_else(|| format!("column {name:?} is missing")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_encoding_reads_back() {
        let line = r#"{"a":null,"b":-9223372036854775808,"c":1e+100,"d":"x\"y","e":{"$float":"NaN"},"f":{"$base64":"AP8="},"g":{"$textBase64":"/w=="},"h":[[1,null],["s"]],"i":true,"j":{"$base64":"x","k":1}}"#;
        let err = parse_line(line).unwrap_err();
        assert!(err.contains("not a tag"), "{err}");
        let line = line.replace(r#","j":{"$base64":"x","k":1}"#, "");
        let row = parse_line(&line).unwrap();
        let values: Vec<LiteValue<'_>> = row.into_iter().map(|(_, v)| v).collect();
        assert_eq!(
            values,
            vec![
                LiteValue::Null,
                LiteValue::Number("-9223372036854775808"),
                LiteValue::Number("1e+100"),
                LiteValue::String("x\"y".into()),
                LiteValue::Float("NaN".into()),
                LiteValue::Bytes(vec![0, 255]),
                LiteValue::TextBytes(vec![255]),
                LiteValue::Array(vec![
                    LiteValue::Array(vec![LiteValue::Number("1"), LiteValue::Null]),
                    LiteValue::Array(vec![LiteValue::String("s".into())]),
                ]),
                LiteValue::Bool(true),
            ]
        );
        assert!(LiteValue::is_integer_text("-12"));
        assert!(!LiteValue::is_integer_text("1e5"));
    }

    #[test]
    fn keys_map_onto_columns_in_any_order() {
        let first = parse_line(r#"{"id":1,"gen":2,"name":"a"}"#).unwrap();
        let map = KeyMap::new(&first, &["id", "name", "extra"], &["gen"]).unwrap();
        assert_eq!(map.targets(), ["id", "name"]);
        let again = parse_line(r#"{"name":"b","gen":3,"id":2}"#).unwrap();
        assert_eq!(
            map.arrange(again).unwrap(),
            vec![LiteValue::Number("2"), LiteValue::String("b".into())]
        );
        let short = parse_line(r#"{"name":"b","id":2}"#).unwrap();
        assert!(map.arrange(short).is_err());
        let unknown = parse_line(r#"{"nope":1}"#).unwrap();
        assert!(KeyMap::new(&unknown, &["id"], &[]).is_err());
    }
}
