//! OutboxMailer: real multipart messages on disk, one file per message id.

use ferry_storage::mail_outbox::OutboxMailer;
use ferry_workflows::ports::mail::{Email, Mailer, SendOutcome};

fn email(id: &str) -> Email {
    Email {
        message_id: id.into(),
        to: "admin@acme.example".into(),
        subject: "Your data export for acme is ready".into(),
        text: "Download: http://127.0.0.1:8080/dl/acme/x?exp=1&sig=ab\n".into(),
        html: "<p><a href=\"http://127.0.0.1:8080/dl/acme/x?exp=1&amp;sig=ab\">Download</a></p>"
            .into(),
    }
}

#[tokio::test]
async fn same_message_id_twice_gives_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let m = OutboxMailer::new(dir.path().join("outbox"), "ferry <noreply@ferry.local>").unwrap();
    assert_eq!(m.send(&email("export-1")).await.unwrap(), SendOutcome::Sent);
    let first = std::fs::read(m.path_of("export-1")).unwrap();
    assert_eq!(
        m.send(&email("export-1")).await.unwrap(),
        SendOutcome::AlreadySent
    );
    assert_eq!(
        std::fs::read(m.path_of("export-1")).unwrap(),
        first,
        "not rewritten"
    );
    let files: Vec<_> = std::fs::read_dir(m.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");

    assert_eq!(m.send(&email("export-2")).await.unwrap(), SendOutcome::Sent);
    assert_eq!(std::fs::read_dir(m.dir()).unwrap().count(), 2);
}

#[tokio::test]
async fn concurrent_sends_of_one_id_send_once() {
    let dir = tempfile::tempdir().unwrap();
    let m = OutboxMailer::new(dir.path(), "ferry <noreply@ferry.local>").unwrap();
    let e = email("export-race");
    let results = futures::future::join_all((0..8).map(|_| m.send(&e))).await;
    let sent = results
        .iter()
        .filter(|r| matches!(r, Ok(SendOutcome::Sent)))
        .count();
    assert_eq!(sent, 1, "{results:?}");
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn the_file_is_a_multipart_message_python_can_parse() {
    let dir = tempfile::tempdir().unwrap();
    let m = OutboxMailer::new(dir.path(), "ferry <noreply@ferry.local>").unwrap();
    m.send(&email("export-3")).await.unwrap();
    let text = std::fs::read_to_string(m.path_of("export-3")).unwrap();
    assert!(
        text.contains("Message-ID: <export-3@ferry.local>"),
        "{text}"
    );
    assert!(text.contains("multipart/alternative"));
    let py = r#"
import sys, email
from email import policy
msg = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=policy.default)
assert msg['To'] == 'admin@acme.example', msg['To']
assert msg.is_multipart()
kinds = [p.get_content_type() for p in msg.iter_parts()]
assert kinds == ['text/plain', 'text/html'], kinds
assert 'Download:' in msg.get_body(('plain',)).get_content()
assert '<a href=' in msg.get_body(('html',)).get_content()
print('ok')
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(py)
        .arg(m.path_of("export-3"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn bad_ids_and_addresses_are_permanent_errors() {
    let dir = tempfile::tempdir().unwrap();
    let m = OutboxMailer::new(dir.path(), "ferry <noreply@ferry.local>").unwrap();
    for bad in ["../escape", "a/b", "", ".hidden", "a b"] {
        let err = m.send(&email(bad)).await.unwrap_err();
        assert_eq!(err.code, "invalid_message_id", "{bad:?}");
        assert!(!err.retryable);
    }
    let mut e = email("export-4");
    e.to = "not an address".into();
    assert_eq!(m.send(&e).await.unwrap_err().code, "invalid_address");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
