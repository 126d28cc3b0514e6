//! [`Rejection`]: why a bundle was refused, with a stable code.
//!
//! The codes of the offline verifier (`bundle::verify`) are reused where the
//! check is the same, so `ferry verify` and a rehydration name one problem
//! alike.

use crate::bundle::verify::VerifyError;

/// A refused bundle: the code of the first failure (see the module docs for
/// the list), a message for people, and how many lines the report holds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    pub code: &'static str,
    pub message: String,
    /// Lines written to the report.
    pub report_rows: u64,
    /// Failures found, written or only counted.
    pub errors_total: u64,
}

impl Rejection {
    pub(super) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
            report_rows: 0,
            errors_total: 1,
        }
    }

    /// ferry's own I/O failed, not the bundle.
    pub(super) fn io(e: std::io::Error) -> Self {
        Rejection::new("validate_io", format!("I/O while validating: {e}"))
    }

    /// Whether trying again may help: only when ferry's own I/O failed.
    pub fn retryable(&self) -> bool {
        self.code == "validate_io"
    }
}

impl From<VerifyError> for Rejection {
    fn from(e: VerifyError) -> Self {
        Rejection::new(e.code(), e.to_string())
    }
}
