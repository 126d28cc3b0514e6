//! Ports: the traits export (and later rehydration) steps use to reach the
//! outside world. `ferry-storage` implements them for each backend; tests and
//! the binary pick implementations. Keeping them here, not in `storage`,
//! keeps the dependency direction `storage → workflows → engine`.

pub mod audit;
pub mod export_records;
pub mod mail;
pub mod merge_key;
pub mod objects;
pub mod tenant;
pub mod tenant_writer;

/// An adapter's failure, with a stable code and whether retrying may help.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct PortError {
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

impl PortError {
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        PortError {
            code: code.into(),
            message: message.into(),
            retryable: true,
        }
    }
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        PortError {
            code: code.into(),
            message: message.into(),
            retryable: false,
        }
    }
}

impl From<PortError> for ferry_engine::StepError {
    fn from(e: PortError) -> Self {
        ferry_engine::StepError {
            code: e.code,
            message: e.message,
            retryable: e.retryable,
            redo: Vec::new(),
        }
    }
}
