//! The SMTP mailer (lettre's async transport on tokio), used when
//! `SMTP_URL` is set, e.g. `smtp://127.0.0.1:2525`, `smtp://host:587?tls=required`
//! (STARTTLS) or `smtps://user:pass@host:465`.
//!
//! Messages are the same `multipart/alternative` text+HTML bytes the outbox
//! writes ([`build_message`]), with `Message-ID: <{id}@ferry.local>`.
//!
//! Idempotency, as far as SMTP allows: SMTP has no "send once" — a server's
//! `250 OK` is the only proof, and a crash between that reply and any record
//! of it cannot be closed. So the mailer keeps a *sent marker* per message id
//! (`<sent_dir>/<id>.sent`, written atomically after the server accepted the
//! message) and answers `AlreadySent` when one exists; within one process,
//! concurrent sends of one id are serialised, so they send once. What is
//! left is at-least-once across a crash in that window; the stable
//! `Message-ID` lets the receiving side drop the duplicate.
//!
//! Errors: a connection failure, timeout, TLS failure or 4xx reply is
//! retryable (`smtp_unavailable`) — a mail outage must only delay the
//! notify step; a 5xx reply is permanent (`smtp_rejected`), and a malformed
//! address never reaches the server (`invalid_address`).

use crate::error_text::error_chain;
use crate::mail_outbox::{build_message, MESSAGE_ID_DOMAIN};
use async_trait::async_trait;
use ferry_engine::{Clock, SystemClock};
use ferry_workflows::ports::mail::{Email, Mailer, SendOutcome};
use ferry_workflows::ports::PortError;
use lettre::message::Mailbox;
use lettre::transport::smtp::Error as SmtpError;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The sender when `SMTP_FROM` is unset.
pub const FROM_DEFAULT: &str = "ferry <noreply@ferry.local>";
/// How long one SMTP command may take before the send counts as failed.
pub const COMMAND_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// How to reach the SMTP server and where to keep sent markers.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    /// lettre connection URL (`smtp://`, `smtps://`, `?tls=required`).
    pub url: String,
    /// `Name <address>` or a bare address.
    pub from: String,
    /// Folder of `<message-id>.sent` markers.
    pub sent_dir: PathBuf,
    pub command_timeout_ms: u64,
}

/// The URL with any password replaced, for logs and errors.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!(
                "{}{}:<redacted>{}",
                &url[..scheme_end + 3],
                user,
                &url[at..]
            )
        }
        _ => url.to_owned(),
    }
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("url", &redact_url(&self.url))
            .field("from", &self.from)
            .field("sent_dir", &self.sent_dir)
            .field("command_timeout_ms", &self.command_timeout_ms)
            .finish()
    }
}

impl SmtpConfig {
    pub fn new(url: impl Into<String>, sent_dir: impl Into<PathBuf>) -> SmtpConfig {
        SmtpConfig {
            url: url.into(),
            from: FROM_DEFAULT.to_owned(),
            sent_dir: sent_dir.into(),
            command_timeout_ms: COMMAND_TIMEOUT_MS_DEFAULT,
        }
    }

    /// From variables looked up by `get` (the binary passes its
    /// environment); `Ok(None)` when `SMTP_URL` is unset (embedded mode: the
    /// outbox). `SMTP_FROM` optionally sets the sender. `sent_dir` is where
    /// markers go, e.g. `<data>/mail-sent`.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        sent_dir: impl Into<PathBuf>,
    ) -> Result<Option<SmtpConfig>, PortError> {
        let Some(url) = get("SMTP_URL").filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        let mut cfg = SmtpConfig::new(url.trim(), sent_dir);
        if let Some(from) = get("SMTP_FROM").filter(|v| !v.trim().is_empty()) {
            cfg.from = from;
        }
        Ok(Some(cfg))
    }
}

/// Map a lettre SMTP error to a port error with a stable code.
fn smtp_err(e: &SmtpError) -> PortError {
    let detail = error_chain(e);
    if e.is_permanent() {
        PortError::permanent("smtp_rejected", detail)
    } else if e.is_client() {
        // The client refused before talking (e.g. no usable auth
        // mechanism): configuration, not an outage.
        PortError::permanent("smtp_config", detail)
    } else {
        // Connection refused or reset, timeouts, TLS, 4xx replies, garbled
        // responses: the server may be back later.
        PortError::retryable("smtp_unavailable", detail)
    }
}

fn io_err(e: io::Error) -> PortError {
    PortError::retryable("smtp_marker_io", e.to_string())
}

/// The SMTP `Mailer`.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    cfg: SmtpConfig,
    /// One lock per message id being sent, so concurrent sends of one id in
    /// this process send once.
    in_flight: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// The time written in sent markers.
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl SmtpMailer {
    /// A mailer for `cfg`; creates the marker folder. Does not connect:
    /// the server may be down now and up when the first mail is due.
    pub fn new(cfg: SmtpConfig) -> Result<SmtpMailer, PortError> {
        let from: Mailbox = cfg.from.parse().map_err(|_| {
            PortError::permanent("invalid_address", "the sender address is not valid")
        })?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&cfg.url)
            .map_err(|e| {
                PortError::permanent(
                    "smtp_config",
                    format!("SMTP_URL {} is not usable: {e}", redact_url(&cfg.url)),
                )
            })?
            .timeout(Some(Duration::from_millis(cfg.command_timeout_ms)))
            .build();
        std::fs::create_dir_all(&cfg.sent_dir).map_err(io_err)?;
        Ok(SmtpMailer {
            transport,
            from,
            cfg,
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            clock: Arc::new(SystemClock),
        })
    }

    /// Take the time of sent markers from `clock` (the engine's).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> SmtpMailer {
        self.clock = clock;
        self
    }

    pub fn config(&self) -> &SmtpConfig {
        &self.cfg
    }

    /// The marker file of a message id (ids are validated tokens).
    pub fn marker_path(&self, message_id: &str) -> PathBuf {
        self.cfg.sent_dir.join(format!("{message_id}.sent"))
    }

    /// Ask the server for a NOOP: `Ok(true)` when it answers.
    pub async fn check_connection(&self) -> Result<bool, PortError> {
        self.transport
            .test_connection()
            .await
            .map_err(|e| smtp_err(&e))
    }

    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.in_flight
            .lock()
            .entry(id.to_owned())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone()
    }

    fn release(&self, id: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut map = self.in_flight.lock();
        // Only the map and this caller hold it: nobody is waiting.
        if Arc::strong_count(&lock) == 2 {
            map.remove(id);
        }
    }

    async fn send_locked(&self, email: &Email) -> Result<SendOutcome, PortError> {
        let marker = self.marker_path(&email.message_id);
        if tokio::fs::try_exists(&marker).await.map_err(io_err)? {
            return Ok(SendOutcome::AlreadySent);
        }
        let message = build_message(&self.from, email, MESSAGE_ID_DOMAIN)?;
        let response = self
            .transport
            .send(message)
            .await
            .map_err(|e| smtp_err(&e))?;
        // The server has the message. Failing to record that must not turn
        // into an error, or the step's retry would send it a second time.
        let note = format!("{} {}\n", self.clock.now().to_rfc3339(), response.code());
        if let Err(e) = write_marker(&self.cfg.sent_dir, &marker, note.as_bytes()).await {
            tracing::warn!(
                message_id = %email.message_id,
                error = %e,
                "mail sent but its sent marker could not be written; a retry may send it again"
            );
        }
        Ok(SendOutcome::Sent)
    }
}

/// Write `bytes` to `path` atomically (temporary file, fsync, rename).
async fn write_marker(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = async {
        let mut f = tokio::fs::File::create(&tmp).await?;
        f.write_all(bytes).await?;
        f.sync_all().await?;
        drop(f);
        tokio::fs::rename(&tmp, path).await?;
        tokio::fs::File::open(dir).await?.sync_all().await
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    written
}

#[async_trait]
impl Mailer for SmtpMailer {
    fn backend(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, email: &Email) -> Result<SendOutcome, PortError> {
        // Validate before touching any file named after the id.
        email.validate()?;
        let lock = self.lock_for(&email.message_id);
        let result = {
            let _guard = lock.lock().await;
            self.send_locked(email).await
        };
        self.release(&email.message_id, lock);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_env_and_redaction() {
        assert_eq!(SmtpConfig::from_lookup(|_| None, "/tmp/x").unwrap(), None);
        let cfg = SmtpConfig::from_lookup(
            |n| (n == "SMTP_URL").then(|| "smtps://bob:hunter2@mail.example:465".to_owned()),
            "/tmp/x",
        )
        .unwrap()
        .unwrap();
        assert_eq!(cfg.from, FROM_DEFAULT);
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("bob:<redacted>@mail.example"), "{shown}");
        assert_eq!(redact_url("smtp://127.0.0.1:2525"), "smtp://127.0.0.1:2525");
    }

    #[test]
    fn a_bad_url_or_sender_is_a_configuration_error() {
        let dir = std::env::temp_dir().join(format!("ferry-smtp-{}", uuid::Uuid::new_v4()));
        let err = SmtpMailer::new(SmtpConfig::new("gopher://x", &dir)).unwrap_err();
        assert_eq!(err.code, "smtp_config");
        let mut cfg = SmtpConfig::new("smtp://127.0.0.1:2525", &dir);
        cfg.from = "not an address".into();
        assert_eq!(SmtpMailer::new(cfg).unwrap_err().code, "invalid_address");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
