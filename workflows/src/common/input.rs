//! What the two workflows' requests share: the validation error with its
//! stable code, who asked, and the list of table names a request may give.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;

/// Most tables a request may name.
pub const TABLES_MAX: usize = 1000;
/// Longest table name accepted.
pub const TABLE_NAME_LEN_MAX: usize = 128;

/// A validation failure: `{"error": {"code", "message"}}` in the API.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct InputError {
    /// e.g. `invalid_body`, `invalid_profile`, `invalid_tables`,
    /// `unknown_table`, `invalid_mode`.
    pub code: &'static str,
    pub message: String,
}

impl InputError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        InputError {
            code,
            message: message.into(),
        }
    }
}

/// Who asked for the workflow (from the token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requester {
    pub sub: String,
    #[serde(default)]
    pub email: Option<String>,
}

/// A request's `tables`: 1 to [`TABLES_MAX`] distinct, printable names.
pub(crate) fn parse_tables(items: &[Value]) -> Result<Vec<String>, InputError> {
    if items.is_empty() {
        return Err(InputError::new(
            "invalid_tables",
            "tables must not be empty; omit it for all tables",
        ));
    }
    if items.len() > TABLES_MAX {
        return Err(InputError::new(
            "invalid_tables",
            format!("at most {TABLES_MAX} tables"),
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let name = item.as_str().ok_or_else(|| {
            InputError::new("invalid_tables", "every table name must be a string")
        })?;
        if name.is_empty() || name.len() > TABLE_NAME_LEN_MAX || name.chars().any(char::is_control)
        {
            return Err(InputError::new(
                "invalid_tables",
                "table names must be 1 to 128 printable characters",
            ));
        }
        if !seen.insert(name) {
            return Err(InputError::new(
                "invalid_tables",
                format!("table {name:?} is named twice"),
            ));
        }
        out.push(name.to_owned());
    }
    Ok(out)
}
