//! SmtpMailer against a real SMTP server: aiosmtpd (started through
//! `scripts/services/smtp.sh`, one per test with its own state folder) saves
//! every message it accepts as a file, and the tests read what arrived.
//! A server that cannot be started fails the test: nothing is skipped.

use ferry_storage::mail_smtp::{SmtpConfig, SmtpMailer};
use ferry_workflows::ports::mail::{Email, Mailer, SendOutcome};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../../tests/support/service.rs"]
mod service;

use service::Service;

/// One aiosmtpd sink started by the script, stopped on drop.
struct Sink(Service);

impl Sink {
    fn start() -> Sink {
        let svc = Service::start("smtp");
        svc.var("SMTP_URL");
        Sink(svc)
    }

    fn stop(&self) {
        self.0.stop();
    }

    fn restart(&self) {
        self.0.restart();
    }

    fn mail_dir(&self) -> PathBuf {
        PathBuf::from(self.0.var("FERRY_SMTP_SINK_DIR"))
    }

    /// The `.eml` files received so far, in arrival order.
    fn received(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.mail_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        files
    }

    /// Wait until `n` messages arrived (the sink saves a message before it
    /// answers, so after a send returned this does not wait).
    fn wait_for(&self, n: usize) -> Vec<PathBuf> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn mailer(&self, sent_dir: &Path) -> SmtpMailer {
        let cfg = SmtpConfig::from_lookup(|k| self.0.env.get(k).cloned(), sent_dir)
            .unwrap()
            .expect("SMTP_URL is set");
        SmtpMailer::new(cfg).unwrap()
    }
}

const LINK: &str = "http://127.0.0.1:8080/api/v1/download/acme/0190a1b2?exp=1767225600&sig=3f9a0c";
const CHECKSUM: &str = "blake3:9f64a747e1b97f131fabb6b447296c9b6f0201e79fb3c5356e6c77e89b6a806a";

fn export_email(id: &str) -> Email {
    Email {
        message_id: id.into(),
        to: "admin@acme.example".into(),
        subject: "Your data export for acme is ready".into(),
        text: format!(
            "Your export is ready.\n\nDownload: {LINK}\nSize: 12.3 MiB (12897484 bytes)\n\
             Checksum: {CHECKSUM}\nThe link expires at 2026-01-01T00:00:00Z.\n"
        ),
        html: format!(
            "<p>Your export is ready.</p><p><a href=\"{}\">Download</a></p>\
             <p>Size: 12.3 MiB (12897484 bytes)</p><p>Checksum: <code>{CHECKSUM}</code></p>\
             <p>The link expires at 2026-01-01T00:00:00Z.</p>",
            LINK.replace('&', "&amp;")
        ),
    }
}

#[tokio::test]
async fn a_real_smtp_server_receives_text_and_html_with_link_size_and_checksum() {
    let sink = Sink::start();
    let sent = tempfile::tempdir().unwrap();
    let m = sink.mailer(sent.path());
    assert_eq!(m.backend(), "smtp");
    assert!(m.check_connection().await.unwrap());
    assert_eq!(
        m.send(&export_email("export-0190a1b2")).await.unwrap(),
        SendOutcome::Sent
    );
    let files = sink.wait_for(1);
    assert_eq!(files.len(), 1, "{files:?}");
    let envelope = std::fs::read_to_string(files[0].with_extension("json")).unwrap();
    assert!(envelope.contains("\"admin@acme.example\""), "{envelope}");
    assert!(envelope.contains("noreply@ferry.local"), "{envelope}");

    // Parse what arrived with Python's own email package: the message must
    // be standard MIME, whatever transfer encoding lettre chose.
    let py = r#"
import sys, email
from email import policy
msg = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=policy.default)
link, checksum = sys.argv[2], sys.argv[3]
assert msg['To'] == 'admin@acme.example', msg['To']
assert msg['Message-ID'] == '<export-0190a1b2@ferry.local>', msg['Message-ID']
assert msg['Subject'] == 'Your data export for acme is ready', msg['Subject']
assert msg.get_content_type() == 'multipart/alternative', msg.get_content_type()
kinds = [p.get_content_type() for p in msg.iter_parts()]
assert kinds == ['text/plain', 'text/html'], kinds
text = msg.get_body(('plain',)).get_content()
html = msg.get_body(('html',)).get_content()
for needle in (link, checksum, '12897484 bytes', '2026-01-01T00:00:00Z'):
    assert needle in text, (needle, text)
assert link.replace('&', '&amp;') in html, html
assert checksum in html and '12897484 bytes' in html, html
print('ok')
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(py)
        .arg(&files[0])
        .arg(LINK)
        .arg(CHECKSUM)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn one_message_id_is_sent_once_even_concurrently() {
    let sink = Sink::start();
    let sent = tempfile::tempdir().unwrap();
    let m = sink.mailer(sent.path());
    let e = export_email("export-once");
    assert_eq!(m.send(&e).await.unwrap(), SendOutcome::Sent);
    assert_eq!(m.send(&e).await.unwrap(), SendOutcome::AlreadySent);
    assert!(m.marker_path("export-once").exists());

    let race = export_email("export-race");
    let results = futures::future::join_all((0..6).map(|_| m.send(&race))).await;
    let sent_count = results
        .iter()
        .filter(|r| matches!(r, Ok(SendOutcome::Sent)))
        .count();
    assert_eq!(sent_count, 1, "{results:?}");
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");

    // A second mailer on the same marker folder (a restarted ferry) knows too.
    let again = sink.mailer(sent.path());
    assert_eq!(again.send(&e).await.unwrap(), SendOutcome::AlreadySent);

    // The sink writes a message before it answers 250, so once every send
    // returned, all it accepted is on disk: nothing more can arrive.
    let files = sink.received();
    assert_eq!(files.len(), 2, "{files:?}");
}

#[tokio::test]
async fn server_down_is_retryable_and_the_mail_is_delivered_when_it_is_back() {
    let sink = Sink::start();
    let sent = tempfile::tempdir().unwrap();
    let m = sink.mailer(sent.path());
    sink.stop();

    let e = export_email("export-outage");
    for _ in 0..2 {
        let err = m.send(&e).await.unwrap_err();
        assert_eq!(err.code, "smtp_unavailable", "{err:?}");
        assert!(err.retryable);
    }
    assert!(
        !m.marker_path("export-outage").exists(),
        "not marked as sent"
    );

    sink.restart();
    assert_eq!(m.send(&e).await.unwrap(), SendOutcome::Sent);
    let files = sink.wait_for(1);
    assert_eq!(files.len(), 1);
    let raw = std::fs::read_to_string(&files[0]).unwrap();
    assert!(raw.contains("<export-outage@ferry.local>"), "{raw}");
}

#[tokio::test]
async fn bad_addresses_are_permanent_errors() {
    let sink = Sink::start();
    let sent = tempfile::tempdir().unwrap();
    let m = sink.mailer(sent.path());

    let mut malformed = export_email("export-bad-1");
    malformed.to = "not an address".into();
    let err = m.send(&malformed).await.unwrap_err();
    assert_eq!(err.code, "invalid_address");
    assert!(!err.retryable);

    // The real server refuses this recipient with a 550.
    let mut refused = export_email("export-bad-2");
    refused.to = "nobody@reject.invalid".into();
    let err = m.send(&refused).await.unwrap_err();
    assert_eq!(err.code, "smtp_rejected", "{err:?}");
    assert!(!err.retryable);
    assert!(!m.marker_path("export-bad-2").exists());

    let err = m.send(&export_email("../escape")).await.unwrap_err();
    assert_eq!(err.code, "invalid_message_id");
    assert!(sink.received().is_empty());
}
