//! The rehydration request and its validation.
//!
//! A rehydration reads a bundle from one of two sources: an upload (the API
//! streams the body to a file under the uploads folder first, so the bundle
//! is never held in memory and the workflow only names the file) or a
//! finished export of the same tenant (`{"exportId"}`). Options: `mode`
//! (`replace`, the default; `merge`, upsert by primary key or a configured
//! natural key; `partial`, replace only the named tables), `tables`, `dryRun`
//! (stop after the preview) and `mergeKeys` (per table, the columns of a
//! unique key to merge by). Every failure is an [`InputError`] with a
//! stable code, before any workflow exists. The tenant never comes from the
//! request: the engine takes it from the token.

use crate::common::input::parse_tables;
pub use crate::common::input::{InputError, Requester};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Largest JSON request body, in bytes.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// Longest upload id (a UUID in practice).
pub const UPLOAD_ID_LEN_MAX: usize = 64;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every table of the tenant is emptied and loaded from the bundle.
    #[default]
    Replace,
    /// Rows are upserted by key; nothing is deleted.
    Merge,
    /// Only the named tables are emptied and loaded.
    Partial,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Replace => "replace",
            Mode::Merge => "merge",
            Mode::Partial => "partial",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "replace" => Some(Mode::Replace),
            "merge" => Some(Mode::Merge),
            "partial" => Some(Mode::Partial),
            _ => None,
        }
    }
}

/// Where the bundle comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    /// A bundle the API stored under the uploads folder, by its id.
    Upload {
        id: String,
        bytes: u64,
        blake3: String,
    },
    /// The bundle of a finished export of the same tenant, by the export's
    /// id and the key of its bundle in the exports area.
    Export { id: String, key: String },
}

/// The options of a rehydration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Options {
    pub mode: Mode,
    /// `None`: every table of the bundle.
    #[serde(default)]
    pub tables: Option<Vec<String>>,
    #[serde(default)]
    pub dry_run: bool,
    /// Per table, the columns to merge by (default: the primary key).
    #[serde(default)]
    pub merge_keys: BTreeMap<String, Vec<String>>,
}

/// The workflow's stored input. `dryRun` sits at the top level because the
/// engine skips the steps after the preview by it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RehydrateInput {
    pub source: Source,
    pub mode: Mode,
    #[serde(default)]
    pub tables: Option<Vec<String>>,
    pub dry_run: bool,
    #[serde(default)]
    pub merge_keys: BTreeMap<String, Vec<String>>,
    pub requested_by: Requester,
}

impl RehydrateInput {
    pub fn new(source: Source, options: Options, requested_by: Requester) -> Self {
        RehydrateInput {
            source,
            mode: options.mode,
            tables: options.tables,
            dry_run: options.dry_run,
            merge_keys: options.merge_keys,
            requested_by,
        }
    }

    /// The JSON to put in `SubmitRequest::input`.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("rehydrate input serializes")
    }

    pub fn from_value(v: &Value) -> Result<RehydrateInput, InputError> {
        serde_json::from_value(v.clone())
            .map_err(|e| InputError::new("invalid_input", e.to_string()))
    }

    /// The merge key of `table` (empty: the primary key).
    pub fn merge_key(&self, table: &str) -> Vec<String> {
        self.merge_keys.get(table).cloned().unwrap_or_default()
    }
}

const KNOWN_FIELDS: [&str; 5] = ["exportId", "mode", "tables", "dryRun", "mergeKeys"];

/// Parse a JSON body: `{"exportId", "mode", "tables", "dryRun", "mergeKeys"}`.
/// Returns the export id and the options.
pub fn parse_json_request(body: &[u8]) -> Result<(String, Options), InputError> {
    if body.len() > BODY_BYTES_MAX {
        return Err(InputError::new(
            "invalid_body",
            "the request body is too large",
        ));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| InputError::new("invalid_body", "the request body must be a JSON object"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| InputError::new("invalid_body", "the request body must be a JSON object"))?;
    if let Some(unknown) = obj.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
        return Err(InputError::new(
            "invalid_body",
            format!(
                "unknown field {unknown:?}; expected {}",
                KNOWN_FIELDS.join(", ")
            ),
        ));
    }
    let export_id = match obj.get("exportId") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => s.clone(),
        Some(_) => {
            return Err(InputError::new(
                "invalid_export_id",
                "exportId must be an export's id",
            ))
        }
        None => {
            return Err(InputError::new(
                "invalid_body",
                "exportId is required (or upload the bundle as application/zip)",
            ))
        }
    };
    Ok((export_id, options_from_json(obj)?))
}

fn options_from_json(obj: &Map<String, Value>) -> Result<Options, InputError> {
    let mode = match obj.get("mode") {
        None | Some(Value::Null) => Mode::default(),
        Some(Value::String(s)) => parse_mode(s)?,
        Some(_) => return Err(InputError::new("invalid_mode", "mode must be a string")),
    };
    let tables = match obj.get("tables") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(parse_tables(items)?),
        Some(_) => {
            return Err(InputError::new(
                "invalid_tables",
                "tables must be a list of table names",
            ))
        }
    };
    let dry_run = match obj.get("dryRun") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(InputError::new(
                "invalid_body",
                "dryRun must be true or false",
            ))
        }
    };
    let merge_keys = match obj.get("mergeKeys") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(keys)) => parse_merge_keys(keys)?,
        Some(_) => {
            return Err(InputError::new(
                "invalid_merge_keys",
                "mergeKeys must map table names to lists of columns",
            ))
        }
    };
    check_options(Options {
        mode,
        tables,
        dry_run,
        merge_keys,
    })
}

/// Options from the query string of an upload: `mode`, `tables` (comma
/// separated), `dryRun` (`true`/`false`), `mergeKey.<table>` (comma
/// separated columns).
pub fn parse_query_options(pairs: &[(String, String)]) -> Result<Options, InputError> {
    let mut obj = Map::new();
    let mut keys = Map::new();
    for (k, v) in pairs {
        let value = match k.as_str() {
            "mode" => Value::String(v.clone()),
            "tables" => Value::Array(
                v.split(',')
                    .map(|s| Value::String(s.trim().to_owned()))
                    .collect(),
            ),
            "dryRun" => match v.as_str() {
                "true" | "1" => Value::Bool(true),
                "false" | "0" => Value::Bool(false),
                _ => {
                    return Err(InputError::new(
                        "invalid_body",
                        "dryRun must be true or false",
                    ))
                }
            },
            other => match other.strip_prefix("mergeKey.") {
                Some(table) => {
                    keys.insert(
                        table.to_owned(),
                        Value::Array(
                            v.split(',')
                                .map(|s| Value::String(s.trim().to_owned()))
                                .collect(),
                        ),
                    );
                    continue;
                }
                None => {
                    return Err(InputError::new(
                        "invalid_body",
                        format!(
                        "unknown option {other:?}; expected mode, tables, dryRun, mergeKey.<table>"
                    ),
                    ))
                }
            },
        };
        if obj.insert(k.clone(), value).is_some() {
            return Err(InputError::new(
                "invalid_body",
                format!("option {k:?} is given twice"),
            ));
        }
    }
    if !keys.is_empty() {
        obj.insert("mergeKeys".into(), Value::Object(keys));
    }
    options_from_json(&obj)
}

fn parse_mode(s: &str) -> Result<Mode, InputError> {
    Mode::parse(s).ok_or_else(|| {
        InputError::new(
            "invalid_mode",
            "mode must be one of replace, merge, partial",
        )
    })
}

fn parse_merge_keys(
    keys: &Map<String, Value>,
) -> Result<BTreeMap<String, Vec<String>>, InputError> {
    let mut out = BTreeMap::new();
    for (table, cols) in keys {
        let cols = match cols {
            Value::Array(items) => parse_tables(items).map_err(|e| {
                InputError::new(
                    "invalid_merge_keys",
                    format!("mergeKeys.{table}: {}", e.message),
                )
            })?,
            _ => {
                return Err(InputError::new(
                    "invalid_merge_keys",
                    format!("mergeKeys.{table} must be a list of columns"),
                ))
            }
        };
        out.insert(table.clone(), cols);
    }
    Ok(out)
}

/// Rules across options.
fn check_options(o: Options) -> Result<Options, InputError> {
    if o.mode == Mode::Partial && o.tables.is_none() {
        return Err(InputError::new(
            "invalid_tables",
            "partial mode needs the tables to replace",
        ));
    }
    if o.mode == Mode::Replace && o.tables.is_some() {
        return Err(InputError::new(
            "invalid_tables",
            "replace mode restores every table; use mode partial to choose tables",
        ));
    }
    if o.mode != Mode::Merge && !o.merge_keys.is_empty() {
        return Err(InputError::new(
            "invalid_merge_keys",
            "mergeKeys apply only to mode merge",
        ));
    }
    Ok(o)
}

/// Check an upload id: what the API's upload store hands out.
pub fn valid_upload_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= UPLOAD_ID_LEN_MAX
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> &'static str {
        parse_json_request(body.as_bytes()).unwrap_err().code
    }

    #[test]
    fn good_requests_parse() {
        let (id, o) = parse_json_request(br#"{"exportId":"x"}"#).unwrap();
        assert_eq!(
            (id.as_str(), o.mode, o.dry_run),
            ("x", Mode::Replace, false)
        );
        let (_, o) = parse_json_request(
            br#"{"exportId":"x","mode":"merge","dryRun":true,"mergeKeys":{"accounts":["external_account_id"]}}"#,
        )
        .unwrap();
        assert_eq!(o.mode, Mode::Merge);
        assert!(o.dry_run);
        assert_eq!(o.merge_keys["accounts"], vec!["external_account_id"]);
        let (_, o) =
            parse_json_request(br#"{"exportId":"x","mode":"partial","tables":["kpis"]}"#).unwrap();
        assert_eq!(o.tables.unwrap(), vec!["kpis"]);
    }

    #[test]
    fn bad_requests_have_codes() {
        assert_eq!(code("[]"), "invalid_body");
        assert_eq!(code("{}"), "invalid_body");
        assert_eq!(code(r#"{"exportId":7}"#), "invalid_export_id");
        assert_eq!(code(r#"{"exportId":"x","mode":"wipe"}"#), "invalid_mode");
        assert_eq!(
            code(r#"{"exportId":"x","mode":"partial"}"#),
            "invalid_tables"
        );
        assert_eq!(code(r#"{"exportId":"x","tables":["a"]}"#), "invalid_tables");
        assert_eq!(code(r#"{"exportId":"x","dryRun":"yes"}"#), "invalid_body");
        assert_eq!(
            code(r#"{"exportId":"x","mergeKeys":{"a":["k"]}}"#),
            "invalid_merge_keys"
        );
        assert_eq!(code(r#"{"exportId":"x","other":1}"#), "invalid_body");
    }

    #[test]
    fn query_options_parse() {
        let q = |s: &[(&str, &str)]| {
            parse_query_options(
                &s.iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect::<Vec<_>>(),
            )
        };
        let o = q(&[
            ("mode", "partial"),
            ("tables", "kpis,orders"),
            ("dryRun", "true"),
        ])
        .unwrap();
        assert_eq!(o.tables.unwrap(), vec!["kpis", "orders"]);
        assert!(o.dry_run);
        let o = q(&[
            ("mode", "merge"),
            ("mergeKey.accounts", "external_account_id"),
        ])
        .unwrap();
        assert_eq!(o.merge_keys["accounts"], vec!["external_account_id"]);
        assert_eq!(q(&[("wipe", "1")]).unwrap_err().code, "invalid_body");
        assert_eq!(q(&[("dryRun", "maybe")]).unwrap_err().code, "invalid_body");
    }
}
