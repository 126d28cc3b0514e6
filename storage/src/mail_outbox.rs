//! The embedded mailer: each message is written as `<outbox>/<message-id>.eml`
//! instead of being sent, so a local install needs no mail server and an
//! operator (or a test) can open exactly what would have been sent.
//!
//! The message is built with lettre as a real `multipart/alternative`
//! message (text and HTML), the same bytes an SMTP transport would send
//! ([`build_message`] is shared with it). Idempotency is by file name: the
//! file is written to a temporary name, fsynced and renamed, so after a crash
//! either the whole message exists or none does, and a repeated send of the
//! same id finds the file and reports `AlreadySent` without writing again.

use async_trait::async_trait;
use ferry_workflows::ports::mail::{Email, Mailer, SendOutcome};
use ferry_workflows::ports::PortError;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use std::io;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// The domain part of generated `Message-ID`s.
pub const MESSAGE_ID_DOMAIN: &str = "ferry.local";

/// Build the RFC 5322 message for `email` from `from`, with
/// `Message-ID: <{email.message_id}@{domain}>`.
pub fn build_message(from: &Mailbox, email: &Email, domain: &str) -> Result<Message, PortError> {
    email.validate()?;
    let to: Mailbox = email.to.parse().map_err(|_| {
        PortError::permanent("invalid_address", "the recipient address is not valid")
    })?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.clone())
        .message_id(Some(format!("<{}@{}>", email.message_id, domain)))
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(email.text.clone()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(email.html.clone()),
                ),
        )
        .map_err(|e| PortError::permanent("invalid_message", e.to_string()))
}

/// A mailer that writes `.eml` files to a folder.
#[derive(Clone, Debug)]
pub struct OutboxMailer {
    dir: PathBuf,
    from: Mailbox,
}

fn io_err(e: io::Error) -> PortError {
    PortError::retryable("outbox_io", e.to_string())
}

impl OutboxMailer {
    /// A mailer writing into `dir` (created if missing), sending as `from`
    /// (e.g. `ferry <noreply@ferry.local>`).
    pub fn new(dir: impl Into<PathBuf>, from: &str) -> Result<OutboxMailer, PortError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(io_err)?;
        let from: Mailbox = from.parse().map_err(|_| {
            PortError::permanent("invalid_address", "the sender address is not valid")
        })?;
        Ok(OutboxMailer { dir, from })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a message id is written to.
    pub fn path_of(&self, message_id: &str) -> PathBuf {
        self.dir.join(format!("{message_id}.eml"))
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    fn backend(&self) -> &'static str {
        "outbox"
    }

    async fn send(&self, email: &Email) -> Result<SendOutcome, PortError> {
        let message = build_message(&self.from, email, MESSAGE_ID_DOMAIN)?;
        let path = self.path_of(&email.message_id);
        if tokio::fs::try_exists(&path).await.map_err(io_err)? {
            return Ok(SendOutcome::AlreadySent);
        }
        let tmp = self.dir.join(format!(
            ".{}.{}.tmp",
            email.message_id,
            uuid::Uuid::new_v4().simple()
        ));
        let bytes = message.formatted();
        let written = async {
            let mut f = tokio::fs::File::create(&tmp).await?;
            f.write_all(&bytes).await?;
            f.flush().await?;
            f.sync_all().await?;
            drop(f);
            // `hard_link` fails if the target exists, so two concurrent
            // sends of one id cannot both claim to have sent it.
            let linked = tokio::fs::hard_link(&tmp, &path).await;
            let _ = tokio::fs::remove_file(&tmp).await;
            match linked {
                Ok(()) => {
                    tokio::fs::File::open(&self.dir).await?.sync_all().await?;
                    Ok(SendOutcome::Sent)
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(SendOutcome::AlreadySent),
                Err(e) => Err(e),
            }
        }
        .await;
        if written.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        written.map_err(io_err)
    }
}
