//! Port: outgoing mail (export notifications).
//!
//! A step that sends mail may be repeated after a crash, so every message
//! carries a caller-given id, and a mailer never delivers the same id twice
//! where its backend can tell (the outbox can; SMTP can only try: it sends,
//! then records). The id is also the `Message-ID` local part, so a receiving
//! system can deduplicate too.

use super::PortError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Longest message id accepted.
pub const MESSAGE_ID_LEN_MAX: usize = 128;

/// One email with a plain-text and an HTML body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    /// Idempotency key and `Message-ID` local part: `[A-Za-z0-9._-]{1,128}`.
    pub message_id: String,
    /// One recipient address (`user@example.com`).
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Email {
    /// Check the message id is a safe token (it names files and headers).
    pub fn validate(&self) -> Result<(), PortError> {
        let id = &self.message_id;
        let ok = !id.is_empty()
            && id.len() <= MESSAGE_ID_LEN_MAX
            && !id.starts_with('.')
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(())
        } else {
            Err(PortError::permanent(
                "invalid_message_id",
                "message id must match [A-Za-z0-9._-]{1,128} and not start with a dot",
            ))
        }
    }
}

/// What a send did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendOutcome {
    Sent,
    /// A message with this id was already sent; nothing was sent again.
    AlreadySent,
}

#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// e.g. `outbox`, `smtp`.
    fn backend(&self) -> &'static str;

    /// Send `email`; idempotent by `email.message_id`. Transport failures are
    /// retryable; a malformed address is permanent (`invalid_address`).
    async fn send(&self, email: &Email) -> Result<SendOutcome, PortError>;
}
