//! The export request and its validation.
//!
//! The API turns the HTTP body into an [`ExportRequest`] here, before
//! anything is submitted, so a bad request never becomes a workflow; every
//! failure is an [`InputError`] with a stable code. The workflow's stored
//! input is the validated request plus who asked ([`ExportInput`]). The
//! tenant is never part of it: it comes from the token, through the engine.
//! Whether the named tables exist can only be known against the tenant's
//! schema, so the `plan` step checks that ([`ExportRequest::check_tables`]).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashSet;

use crate::common::input::parse_tables;
pub use crate::common::input::{InputError, Requester, TABLES_MAX, TABLE_NAME_LEN_MAX};

/// Largest request body, in bytes.
pub const BODY_BYTES_MAX: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// One NDJSON file per table, types preserved exactly.
    Lite,
    /// The database's own dump format.
    Native,
    /// One CSV per table, optionally filtered by date.
    Analytics,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Lite => "lite",
            Profile::Native => "native",
            Profile::Analytics => "analytics",
        }
    }

    pub fn parse(s: &str) -> Option<Profile> {
        match s {
            "lite" => Some(Profile::Lite),
            "native" => Some(Profile::Native),
            "analytics" => Some(Profile::Analytics),
            _ => None,
        }
    }
}

/// Inclusive range of whole days.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// A validated export request (the HTTP body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportRequest {
    pub profile: Profile,
    #[serde(default)]
    pub include_assets: bool,
    #[serde(default)]
    pub date_range: Option<DateRange>,
    /// `None`: every table.
    #[serde(default)]
    pub tables: Option<Vec<String>>,
}

/// The workflow's stored input: the request and its requester.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportInput {
    #[serde(flatten)]
    pub request: ExportRequest,
    pub requested_by: Requester,
}

impl ExportInput {
    pub fn new(request: ExportRequest, requested_by: Requester) -> Self {
        ExportInput {
            request,
            requested_by,
        }
    }

    /// The JSON to put in `SubmitRequest::input`.
    pub fn to_value(&self) -> Value {
        // Strings, bools and dates only: serializing cannot fail.
        serde_json::to_value(self).expect("export input serializes")
    }

    pub fn from_value(v: &Value) -> Result<ExportInput, InputError> {
        serde_json::from_value(v.clone())
            .map_err(|e| InputError::new("invalid_input", e.to_string()))
    }
}

const KNOWN_FIELDS: [&str; 4] = ["profile", "includeAssets", "dateRange", "tables"];

/// Parse and validate a raw request body.
pub fn parse_request(body: &[u8]) -> Result<ExportRequest, InputError> {
    if body.len() > BODY_BYTES_MAX {
        return Err(InputError::new(
            "invalid_body",
            "the request body is too large",
        ));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| InputError::new("invalid_body", "the request body must be a JSON object"))?;
    validate_request(&v)
}

/// Validate a request already parsed as JSON.
pub fn validate_request(v: &Value) -> Result<ExportRequest, InputError> {
    let obj = v
        .as_object()
        .ok_or_else(|| InputError::new("invalid_body", "the request body must be a JSON object"))?;
    if let Some(unknown) = obj.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
        return Err(InputError::new(
            "invalid_body",
            format!(
                "unknown field {unknown:?}; expected profile, includeAssets, dateRange, tables"
            ),
        ));
    }
    let profile = match obj.get("profile") {
        Some(Value::String(s)) => Profile::parse(s).ok_or_else(|| {
            InputError::new(
                "invalid_profile",
                "profile must be one of lite, native, analytics",
            )
        })?,
        Some(_) => {
            return Err(InputError::new(
                "invalid_profile",
                "profile must be a string",
            ))
        }
        None => return Err(InputError::new("invalid_profile", "profile is required")),
    };
    let include_assets = match obj.get("includeAssets") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(InputError::new(
                "invalid_body",
                "includeAssets must be true or false",
            ))
        }
    };
    let date_range = match obj.get("dateRange") {
        None | Some(Value::Null) => None,
        Some(Value::Object(range)) => Some(parse_range(range)?),
        Some(_) => {
            return Err(InputError::new(
                "invalid_date_range",
                "dateRange must be {\"from\", \"to\"}",
            ))
        }
    };
    if date_range.is_some() && profile != Profile::Analytics {
        return Err(InputError::new(
            "invalid_date_range",
            "dateRange applies only to the analytics profile",
        ));
    }
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
    if tables.is_some() && profile == Profile::Native {
        return Err(InputError::new(
            "invalid_tables",
            "the native profile dumps the whole tenant; tables cannot be chosen",
        ));
    }
    Ok(ExportRequest {
        profile,
        include_assets,
        date_range,
        tables,
    })
}

fn parse_date(v: Option<&Value>, field: &str) -> Result<NaiveDate, InputError> {
    let s = v.and_then(Value::as_str).ok_or_else(|| {
        InputError::new(
            "invalid_date_range",
            format!("dateRange.{field} must be a YYYY-MM-DD string"),
        )
    })?;
    let well_formed = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    let date = well_formed
        .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| {
            InputError::new(
                "invalid_date_range",
                format!("dateRange.{field} is not a valid YYYY-MM-DD date"),
            )
        })?;
    Ok(date)
}

fn parse_range(range: &Map<String, Value>) -> Result<DateRange, InputError> {
    if let Some(k) = range.keys().find(|k| *k != "from" && *k != "to") {
        return Err(InputError::new(
            "invalid_date_range",
            format!("unknown dateRange field {k:?}"),
        ));
    }
    let from = parse_date(range.get("from"), "from")?;
    let to = parse_date(range.get("to"), "to")?;
    if from > to {
        return Err(InputError::new(
            "invalid_date_range",
            "dateRange.from must not be after dateRange.to",
        ));
    }
    Ok(DateRange { from, to })
}

impl ExportRequest {
    /// Check the requested tables exist among `existing` (the tenant's
    /// introspected tables); `unknown_table` names the first that does not.
    pub fn check_tables<'a>(
        &self,
        existing: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), InputError> {
        let Some(wanted) = &self.tables else {
            return Ok(());
        };
        let existing: HashSet<&str> = existing.into_iter().collect();
        match wanted.iter().find(|t| !existing.contains(t.as_str())) {
            Some(t) => Err(InputError::new(
                "unknown_table",
                format!("table {t:?} does not exist"),
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(v: Value) -> &'static str {
        validate_request(&v).unwrap_err().code
    }

    #[test]
    fn valid_requests() {
        let r = validate_request(&json!({"profile": "lite"})).unwrap();
        assert_eq!(
            r,
            ExportRequest {
                profile: Profile::Lite,
                include_assets: false,
                date_range: None,
                tables: None
            }
        );
        let r = validate_request(&json!({
            "profile": "analytics", "includeAssets": true,
            "dateRange": {"from": "2026-01-01", "to": "2026-01-31"}, "tables": ["orders"]
        }))
        .unwrap();
        assert!(r.include_assets);
        assert_eq!(
            r.date_range.unwrap().to,
            NaiveDate::from_ymd_opt(2026, 1, 31).unwrap()
        );
        assert_eq!(r.tables.unwrap(), vec!["orders".to_string()]);
    }

    #[test]
    fn every_failure_has_a_stable_code() {
        assert_eq!(parse_request(b"not json").unwrap_err().code, "invalid_body");
        assert_eq!(code(json!([1])), "invalid_body");
        assert_eq!(
            code(json!({"profile": "lite", "tenant": "other"})),
            "invalid_body"
        );
        assert_eq!(
            code(json!({"profile": "lite", "includeAssets": "yes"})),
            "invalid_body"
        );
        assert_eq!(code(json!({})), "invalid_profile");
        assert_eq!(code(json!({"profile": "full"})), "invalid_profile");
        assert_eq!(code(json!({"profile": 1})), "invalid_profile");
        let range =
            |f: &str, t: &str| json!({"profile": "analytics", "dateRange": {"from": f, "to": t}});
        assert_eq!(
            code(range("2026-02-01", "2026-01-01")),
            "invalid_date_range"
        );
        assert_eq!(
            code(range("2026-02-30", "2026-03-01")),
            "invalid_date_range"
        );
        assert_eq!(code(range("2026-1-1", "2026-03-01")), "invalid_date_range");
        assert_eq!(
            code(range("2026-01-01T00:00:00Z", "2026-03-01")),
            "invalid_date_range"
        );
        assert_eq!(
            code(json!({"profile": "analytics", "dateRange": "2026"})),
            "invalid_date_range"
        );
        assert_eq!(
            code(
                json!({"profile": "lite", "dateRange": {"from": "2026-01-01", "to": "2026-01-02"}})
            ),
            "invalid_date_range"
        );
        assert_eq!(
            code(json!({"profile": "lite", "tables": []})),
            "invalid_tables"
        );
        assert_eq!(
            code(json!({"profile": "lite", "tables": ["a", "a"]})),
            "invalid_tables"
        );
        assert_eq!(
            code(json!({"profile": "lite", "tables": [1]})),
            "invalid_tables"
        );
        assert_eq!(
            code(json!({"profile": "lite", "tables": "orders"})),
            "invalid_tables"
        );
        assert_eq!(
            code(json!({"profile": "native", "tables": ["orders"]})),
            "invalid_tables"
        );
        let r =
            validate_request(&json!({"profile": "lite", "tables": ["orders", "nope"]})).unwrap();
        assert_eq!(
            r.check_tables(["orders", "users"]).unwrap_err().code,
            "unknown_table"
        );
        assert!(r.check_tables(["orders", "nope"]).is_ok());
    }

    #[test]
    fn input_round_trips_with_requester() {
        let req = validate_request(&json!({"profile": "lite"})).unwrap();
        let input = ExportInput::new(
            req,
            Requester {
                sub: "u1".into(),
                email: Some("a@example.com".into()),
            },
        );
        let v = input.to_value();
        assert_eq!(v["profile"], "lite");
        assert_eq!(v["requestedBy"]["sub"], "u1");
        assert_eq!(ExportInput::from_value(&v).unwrap(), input);
    }
}
