//! The real server with its real outside services: S3 (s3s-fs) for objects
//! and SMTP (aiosmtpd) for mail, both started by the project's scripts.
//! The emailed link, opened without a token, is audited and ends at the S3
//! server, which serves the bundle; a tampered ferry link is refused by
//! ferry and a tampered presigned URL by the S3 server; an SMTP outage
//! (with its backoff measured) and an S3 outage, before an upload and
//! between two parts of one, are retried until the service is back, and
//! nothing is lost or sent twice.

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::service::Service;
use support::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Messages the SMTP sink received, as text, in arrival order.
fn mails(smtp: &Service) -> Vec<String> {
    let dir = Path::new(smtp.var("FERRY_SMTP_SINK_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

fn ferry_with(services: &[&Service]) -> Ferry {
    let mut f = Ferry::new();
    for s in services {
        for (k, v) in &s.env {
            f = f.env(k, v);
        }
    }
    f
}

fn wait_for_mail(smtp: &Service, id: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Some(m) = mails(smtp).into_iter().find(|m| m.contains(id)) {
            return m;
        }
        assert!(Instant::now() < deadline, "no mail for {id}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Download the bundle from `presigned`: it has the export's checksum and
/// passes `ferry verify`. Returns its size.
fn served_bundle_verifies(f: &Ferry, presigned: &str, status: &Value) -> u64 {
    let bundle = f.client.get(presigned).send().unwrap();
    assert_eq!(bundle.status(), 200);
    let bytes = bundle.bytes().unwrap();
    assert_eq!(
        blake3::hash(&bytes).to_hex().as_str(),
        status["checksum"].as_str().unwrap()
    );
    let file = f.data_dir().join("downloaded.zip");
    std::fs::write(&file, &bytes).unwrap();
    assert!(f.verify(&file).status.success());
    bytes.len() as u64
}

#[test]
fn the_emailed_link_is_audited_and_served_by_s3_and_tampering_is_refused() {
    let s3 = Service::start("s3");
    let smtp = Service::start("smtp");
    let mut f = ferry_with(&[&s3, &smtp]);
    f.sample("acme", 1);
    f.start();
    let tok = f.token("acme", "tenant_admin");
    let id = f.export(&tok, json!({"profile": "lite", "includeAssets": true}));
    let status = f.wait_export(&tok, &id, "completed", Duration::from_secs(120));
    assert!(
        f.outbox().is_empty(),
        "mail went through SMTP, not the outbox"
    );
    let mail = wait_for_mail(&smtp, &id, Duration::from_secs(10));
    let link = link_in_email(&mail).expect("a ferry link in the mail");
    // Opened without a token: ferry audits it and redirects to S3.
    let r = f
        .client
        .get(f.url(&link))
        .header("User-Agent", "mail-client")
        .send()
        .unwrap();
    assert_eq!(r.status(), 302);
    let presigned = r.headers()["location"].to_str().unwrap().to_owned();
    let endpoint = s3.var("MINIO_ENDPOINT").to_owned();
    assert!(
        presigned.starts_with(&endpoint),
        "{presigned} is served by the S3 server {endpoint}"
    );
    assert!(presigned.contains("X-Amz-Signature="));
    served_bundle_verifies(&f, &presigned, &status);
    let audit = f.get_json("/api/v1/audit?action=EXPORT_DOWNLOADED", &tok);
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["userAgent"], "mail-client");
    // A tampered ferry link is refused by ferry; a tampered presigned URL by S3.
    let bad_link = link.replacen("sig=", "sig=0", 1);
    assert_eq!(f.client.get(f.url(&bad_link)).send().unwrap().status(), 403);
    let (head, sig) = presigned.split_once("X-Amz-Signature=").unwrap();
    let flipped: String = sig
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 {
                if c == 'a' {
                    'b'
                } else {
                    'a'
                }
            } else {
                c
            }
        })
        .collect();
    let r = f
        .client
        .get(format!("{head}X-Amz-Signature={flipped}"))
        .send()
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "the S3 server refuses a tampered presigned URL"
    );
    assert_eq!(
        f.get_json("/api/v1/audit?action=EXPORT_DOWNLOADED", &tok)["entries"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn smtp_and_s3_outages_are_retried_until_the_service_is_back() {
    let s3 = Service::start("s3");
    let smtp = Service::start("smtp");
    let mut f = ferry_with(&[&s3, &smtp]);
    f.sample("acme", 1);
    f.start();
    let tok = f.token("acme", "tenant_admin");

    // Mail server down: the data steps finish once, notify waits.
    smtp.stop();
    let id = f.export(&tok, json!({"profile": "lite"}));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = f.export_status(&tok, &id);
        if s["currentStep"] == "notify" && s["error"]["code"] == "smtp_unavailable" {
            break;
        }
        assert_ne!(s["status"], "failed", "{s}");
        assert!(
            Instant::now() < deadline,
            "never reached a failing notify: {s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Two failed sends, so the backoff between attempts can be measured.
    let deadline = Instant::now() + Duration::from_secs(60);
    while step_events(
        &f.get_json(&format!("/api/v1/workflows/{id}/events"), &tok),
        "step_failed.v1",
        "notify",
    )
    .len()
        < 2
    {
        assert!(Instant::now() < deadline, "no second failed send");
        std::thread::sleep(Duration::from_millis(200));
    }
    smtp.restart();
    f.wait_export(&tok, &id, "completed", Duration::from_secs(120));
    wait_for_mail(&smtp, &id, Duration::from_secs(10));
    let events = f.get_json(&format!("/api/v1/workflows/{id}/events"), &tok);
    let started = |step: &str| step_events(&events, "step_started.v1", step).len();
    assert_eq!(
        (started("snapshot"), started("bundle"), started("upload")),
        (1, 1, 1),
        "a mail outage never repeats the data steps"
    );
    // Retries back off: the notify policy waits 10 s × 2^(n−1) after the
    // n-th failure, half of it jittered, and the next attempt starts then.
    let failed = step_events(&events, "step_failed.v1", "notify");
    let attempts = step_events(&events, "step_started.v1", "notify");
    assert!(failed.len() >= 2, "{events}");
    assert_eq!(attempts.len(), failed.len() + 1, "{events}");
    for (n, failure) in failed.iter().enumerate() {
        let base = 10.0 * 2f64.powi(n as i32);
        let wait = seconds_between(&failure["at"], &failure["retryAt"]);
        assert!(
            (base / 2.0 - 0.01..=base + 0.01).contains(&wait),
            "failure {} waits {wait} s, not between {} and {base} s",
            n + 1,
            base / 2.0
        );
        let next = seconds_between(&failure["retryAt"], &attempts[n + 1]["at"]);
        assert!(
            (0.0..5.0).contains(&next),
            "attempt {} started {next} s after its retry time",
            n + 2
        );
    }

    // S3 down before an upload starts: it is retried and completes when S3
    // is back.
    s3.stop();
    let id2 = f.export(&tok, json!({"profile": "native"}));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = f.export_status(&tok, &id2);
        if s["currentStep"] == "upload" && s["error"]["code"] == "s3_unavailable" {
            break;
        }
        assert_ne!(s["status"], "failed", "{s}");
        assert!(
            Instant::now() < deadline,
            "never reached a failing upload: {s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    s3.restart();
    let done: Value = f.wait_export(&tok, &id2, "completed", Duration::from_secs(300));
    assert_eq!(done["progress"], 100);
    assert_eq!(mails(&smtp).iter().filter(|m| m.contains(&id2)).count(), 1);
    assert_eq!(
        mails(&smtp).iter().filter(|m| m.contains(&id)).count(),
        1,
        "no mail was sent twice"
    );
}

/// Seconds between two RFC 3339 timestamps of the event log.
fn seconds_between(from: &Value, to: &Value) -> f64 {
    let at = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("{v}")))
            .unwrap_or_else(|e| panic!("{v}: {e}"))
    };
    (at(to) - at(from)).num_milliseconds() as f64 / 1000.0
}

/// The export's events of `kind` for `step`, in order.
fn step_events<'a>(events: &'a Value, kind: &str, step: &str) -> Vec<&'a Value> {
    events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == kind && e["step"] == step)
        .collect()
}

/// Whether s3s-fs holds a part of a multipart upload in `data` (it keeps
/// part n as `.upload_id-<id>.part-<n>` in its data folder).
fn has_upload_part(data: &Path) -> bool {
    std::fs::read_dir(data).is_ok_and(|dir| {
        dir.filter_map(Result::ok).any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(".upload_id-") && name.contains(".part-")
        })
    })
}

/// A sample whose lite bundle is about 12.8 MB: three parts of 5 MiB.
const SCALE_FOR_PARTS: u32 = 100;

#[test]
fn an_s3_stop_between_two_parts_of_the_upload_is_retried_and_the_bundle_is_whole() {
    let s3 = Service::start("s3");
    let smtp = Service::start("smtp");
    // 5 MiB parts, and a pause after each part so the test can stop the
    // server between two of them.
    let mut f = ferry_with(&[&s3, &smtp])
        .env("MINIO_PART_SIZE_BYTES", "5242880")
        .env("FERRY_FAILPOINTS", "objects.s3.part.after=sleep:1500");
    f.sample("acme", SCALE_FOR_PARTS);
    f.start();
    let tok = f.token("acme", "tenant_admin");
    let id = f.export(&tok, json!({"profile": "lite"}));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = f.export_status(&tok, &id);
        if s["currentStep"] == "upload" {
            break;
        }
        assert_eq!(s["status"], "running", "{s}");
        assert!(Instant::now() < deadline, "never reached the upload: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Stop S3 once it holds the first part (s3s-fs writes a part's file
    // before it answers; ferry then pauses before the next part).
    let data = Path::new(s3.var("FERRY_S3_DATA_DIR"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !has_upload_part(data) {
        assert!(Instant::now() < deadline, "S3 never received a part");
        std::thread::sleep(Duration::from_millis(10));
    }
    s3.stop();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = f.export_status(&tok, &id);
        if s["error"]["code"] == "s3_unavailable" {
            break;
        }
        assert_ne!(s["status"], "failed", "{s}");
        assert!(Instant::now() < deadline, "the upload never failed: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    s3.restart();
    let status = f.wait_export(&tok, &id, "completed", Duration::from_secs(300));

    let events = f.get_json(&format!("/api/v1/workflows/{id}/events"), &tok);
    let failed = step_events(&events, "step_failed.v1", "upload");
    assert!(!failed.is_empty(), "{events}");
    let first = &failed[0]["error"];
    assert_eq!(first["code"], "s3_unavailable", "{first}");
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .starts_with("upload_part"),
        "the first failure was a later part of a started multipart upload: {first}"
    );
    let bundle_bytes = status["sizeBytes"].as_u64().expect("sizeBytes");
    assert!(
        bundle_bytes > 2 * 5_242_880,
        "the bundle needs at least three parts ({bundle_bytes} bytes)"
    );
    // The object S3 serves is the whole bundle, and it verifies.
    let mail = wait_for_mail(&smtp, &id, Duration::from_secs(30));
    let link = link_in_email(&mail).expect("a ferry link in the mail");
    let r = f.client.get(f.url(&link)).send().unwrap();
    assert_eq!(r.status(), 302);
    let presigned = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        served_bundle_verifies(&f, &presigned, &status),
        bundle_bytes
    );
    assert_eq!(mails(&smtp).iter().filter(|m| m.contains(&id)).count(), 1);
}

/// A private PostgreSQL cluster (never the shared one: this test restarts it).
struct PrivatePg {
    state: PathBuf,
    url: String,
}

impl PrivatePg {
    fn start() -> PrivatePg {
        // Under the system temp folder, not a 0700 tempdir: the cluster runs
        // as the `postgres` user, who must be able to reach its folder.
        let state = std::env::temp_dir().join(format!("ferry-pg-e2e-{}", std::process::id()));
        let mut pg = PrivatePg {
            state,
            url: String::new(),
        };
        let out = pg.run("start");
        pg.url = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("export DATABASE_URL="))
            .expect("a DATABASE_URL")
            .trim_matches('\'')
            .to_owned();
        pg
    }
    fn run(&self, cmd: &str) -> std::process::Output {
        let out = Command::new(root().join("scripts/services/postgres.sh"))
            .arg(cmd)
            .env("FERRY_PG_THROWAWAY", "1")
            .env("FERRY_PG_STATE_DIR", &self.state)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "postgres.sh {cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/services/postgres.sh"))
            .arg("stop")
            .env("FERRY_PG_STATE_DIR", &self.state)
            .output();
    }
}

#[test]
fn a_postgresql_restart_mid_export_is_retried_and_the_export_completes() {
    let pg = PrivatePg::start();
    let mut f = Ferry::new()
        .env("DATABASE_URL", &pg.url)
        .env("FERRY_TENANT_ISOLATION", "schema");
    f.sample("big", 40);
    f.start();
    let tok = f.token("big", "tenant_admin");
    let id = f.export(&tok, json!({"profile": "lite"}));
    let deadline = Instant::now() + Duration::from_secs(60);
    while f.export_status(&tok, &id)["currentStep"] != "snapshot" {
        assert!(
            Instant::now() < deadline,
            "the export never reached its snapshot"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Restart the database under the running snapshot.
    pg.run("restart");
    let done = f.wait_export(&tok, &id, "completed", Duration::from_secs(300));
    assert_eq!(done["progress"], 100);
    assert!(f.verify(&f.bundle_path("big", &id)).status.success());
    let events = f.get_json(&format!("/api/v1/workflows/{id}/events"), &tok);
    let failures: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "step_failed.v1")
        .collect();
    assert!(
        !failures.is_empty(),
        "the restart interrupted a step (else this test proved nothing): {events}"
    );
    assert!(
        failures.iter().all(|e| e["error"]["retryable"] == true),
        "{failures:?}"
    );
    let verify = f.get_json("/api/v1/audit/verify", &tok);
    assert_eq!(verify["ok"], true, "{verify}");
}
