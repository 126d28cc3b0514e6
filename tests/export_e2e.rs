//! The export workflow end to end through the real binary: every profile
//! completes, its bundle verifies and opens with standard unzip, every
//! manifest checksum matches, the emailed link serves the bundle without a
//! token and is audited, tampering is detected, limits and idempotency hold,
//! and the durable expiry timer deletes the bundle even across a restart.

mod support;

use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(120);

/// Unpack with the system's `unzip` and check every manifest entry's size
/// and blake3 against the files unzip produced.
fn unzip_and_check(bundle: &Path) -> Value {
    let test = Command::new("unzip")
        .arg("-tq")
        .arg(bundle)
        .output()
        .expect("unzip installed");
    assert!(
        test.status.success(),
        "unzip -t: {}",
        String::from_utf8_lossy(&test.stdout)
    );
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("unzip")
        .arg("-q")
        .arg(bundle)
        .arg("-d")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    assert!(dir.path().join("manifest.sig").exists());
    let entries = manifest["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    for e in entries {
        let path = dir.path().join(e["path"].as_str().unwrap());
        let bytes = std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        assert_eq!(
            bytes.len() as u64,
            e["bytes"].as_u64().unwrap(),
            "{}",
            e["path"]
        );
        assert_eq!(
            blake3::hash(&bytes).to_hex().as_str(),
            e["blake3"].as_str().unwrap(),
            "{}",
            e["path"]
        );
    }
    manifest
}

fn entry_names(manifest: &Value) -> Vec<String> {
    manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_profile_exports_a_verified_bundle_that_unzip_opens() {
    let mut f = Ferry::new();
    f.sample("acme", 1);
    f.start();
    let tok = f.token("acme", "tenant_admin");
    let lite = f.export(&tok, json!({"profile": "lite", "includeAssets": true}));
    let native = f.export(&tok, json!({"profile": "native"}));
    let analytics = f.export(
        &tok,
        json!({"profile": "analytics", "dateRange": {"from": "2000-01-01", "to": "2099-12-31"}}),
    );
    for id in [&lite, &native, &analytics] {
        let s = f.wait_export(&tok, id, "completed", WAIT);
        assert_eq!(s["progress"], 100, "{s}");
        assert!(s["sizeBytes"].as_u64().unwrap() > 0);
        assert_eq!(s["checksum"].as_str().unwrap().len(), 64);
        assert!(s["expiresAt"].is_string());
        let bundle = f.bundle_path("acme", id);
        let name = bundle.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("export_acme_") && name.ends_with(".zip"),
            "{name}"
        );
        let bytes = std::fs::read(&bundle).unwrap();
        assert_eq!(
            blake3::hash(&bytes).to_hex().as_str(),
            s["checksum"].as_str().unwrap()
        );
        let v = f.verify(&bundle);
        assert!(
            v.status.success(),
            "verify: {}",
            String::from_utf8_lossy(&v.stderr)
        );
        let manifest = unzip_and_check(&bundle);
        assert_eq!(manifest["tenantId"], "acme");
        assert_eq!(manifest["exportId"], id.as_str());
        assert!(manifest["database"]["schemaFingerprint"].is_string());
        assert!(entry_names(&manifest).contains(&"database/schema.json".to_owned()));
    }
    let lite_m = unzip_and_check(&f.bundle_path("acme", &lite));
    let names = entry_names(&lite_m);
    assert!(
        names.iter().any(|n| n == "database/accounts.ndjson"),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("assets/")),
        "assets included: {names:?}"
    );
    assert!(lite_m["database"]["rowCount"].as_u64().unwrap() > 100);
    let native_m = unzip_and_check(&f.bundle_path("acme", &native));
    // The database's own format: a SQLite file, a pg_dump archive, or (row
    // isolation) a psql COPY script.
    let native_entry = match backend().as_str() {
        "sqlite" => "database/tenant.sqlite",
        "pg-schema" | "pg-database" => "database/tenant.dump",
        _ => "database/tenant.sql",
    };
    assert!(
        entry_names(&native_m).contains(&native_entry.to_owned()),
        "{:?}",
        entry_names(&native_m)
    );
    let analytics_m = unzip_and_check(&f.bundle_path("acme", &analytics));
    assert!(entry_names(&analytics_m)
        .iter()
        .any(|n| n.ends_with(".csv")));

    // One email per export, each with a working link that needs no token.
    let mails = f.outbox();
    assert_eq!(mails.len(), 3, "one email per export");
    for id in [&lite, &native, &analytics] {
        let mail = mails
            .iter()
            .find(|m| m.contains(id.as_str()))
            .expect("email names the export");
        let link = link_in_email(mail).expect("email has a link");
        let r = f
            .client
            .get(f.url(&link))
            .header("User-Agent", "e2e-browser")
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{link}");
        let body = r.bytes().unwrap();
        assert_eq!(
            body.as_ref(),
            std::fs::read(f.bundle_path("acme", id)).unwrap().as_slice()
        );
    }
    let audit = f.get_json("/api/v1/audit?action=EXPORT_DOWNLOADED", &tok);
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{audit}");
    assert_eq!(entries[0]["userAgent"], "e2e-browser");
    assert!(entries[0]["ip"].as_str().unwrap().starts_with("127.0.0.1"));
    let verify = f.get_json("/api/v1/audit/verify", &tok);
    assert_eq!(verify["ok"], true, "{verify}");

    // Engine and export counters.
    let metrics = f.get("/metrics", None).text().unwrap();
    for needle in [
        r#"ferry_workflows_submitted_total{kind="export"} 3"#,
        r#"ferry_workflows_finished_total{kind="export",outcome="completed"} 3"#,
        r#"ferry_bundle_size_bytes_count{profile="lite"} 1"#,
        r#"ferry_bundle_downloads_total{via="link"} 3"#,
        "ferry_eventlog_commit_seconds_bucket",
        r#"ferry_step_duration_seconds_count{kind="export",outcome="ok",step="snapshot"} 3"#,
    ] {
        assert!(
            metrics.contains(needle),
            "metrics lack {needle}:\n{metrics}"
        );
    }
    let rows: f64 = metrics
        .lines()
        .find(|l| l.starts_with(r#"ferry_rows_exported_total{profile="lite"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .expect("rows counter");
    assert_eq!(
        rows as u64,
        lite_m["database"]["rowCount"].as_u64().unwrap()
    );

    // The authenticated download endpoint audits and redirects to a short link.
    let r = f.get(
        &format!("/api/v1/tenant/export/{lite}/download"),
        Some(&tok),
    );
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let r = f
        .client
        .get(if loc.starts_with("http") {
            loc.clone()
        } else {
            f.url(&loc)
        })
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Rewrite one entry of a zip with Python's zipfile (a standard tool).
fn rewrite_entry(src: &Path, dst: &Path, entry: &str, py_transform: &str) {
    let script = format!(
        r#"
import json, sys, zipfile
src, dst, name = sys.argv[1], sys.argv[2], sys.argv[3]
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
    for item in zin.infolist():
        data = zin.read(item.filename)
        if item.filename == name:
            data = {py_transform}
        zout.writestr(item, data)
"#
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(src)
        .arg(dst)
        .arg(entry)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_tampered_bundle_fails_verify() {
    let mut f = Ferry::new();
    f.sample("acme", 1);
    f.start();
    let tok = f.token("acme", "tenant_admin");
    let id = f.export(&tok, json!({"profile": "lite"}));
    f.wait_export(&tok, &id, "completed", WAIT);
    let bundle = f.bundle_path("acme", &id);
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "changed entry",
            "database/accounts.ndjson",
            "data.replace(b'acme', b'acmf', 1)",
        ),
        (
            "changed manifest",
            "manifest.json",
            "json.dumps(dict(json.loads(data), tenantId='evil')).encode()",
        ),
        (
            "bad signature",
            "manifest.sig",
            "data[:-12] + b'AAAAAAAA\"}\\n'[:len(data[-12:])]",
        ),
    ];
    for (what, entry, transform) in cases {
        let dst = dir.path().join(format!("{}.zip", what.replace(' ', "_")));
        rewrite_entry(&bundle, &dst, entry, transform);
        assert_ne!(
            std::fs::read(&dst).unwrap(),
            std::fs::read(&bundle).unwrap(),
            "{what}: the rewrite changed something"
        );
        let v = f.verify(&dst);
        assert!(!v.status.success(), "{what}: verify must fail");
        assert!(
            String::from_utf8_lossy(&v.stderr).contains("FAILED"),
            "{what}"
        );
    }
    // A flipped byte in the middle of the file (compressed data).
    let mut bytes = std::fs::read(&bundle).unwrap();
    let mid = bytes.len() / 3;
    bytes[mid] ^= 0x55;
    let flipped = dir.path().join("flipped.zip");
    std::fs::write(&flipped, &bytes).unwrap();
    assert!(!f.verify(&flipped).status.success());
    // The untouched bundle still verifies.
    assert!(f.verify(&bundle).status.success());
}

#[test]
fn daily_limit_survives_restart_and_idempotency_keys_return_the_same_job() {
    let mut f = Ferry::new().env("FERRY_EXPORTS_PER_DAY", "2");
    f.sample("acme", 1);
    f.start();
    let tok = f.token("acme", "tenant_admin");
    fn submit_keyed(f: &Ferry, tok: &str, key: &str) -> reqwest::blocking::Response {
        f.client
            .post(f.url("/api/v1/tenant/export"))
            .bearer_auth(tok)
            .header("Idempotency-Key", key)
            .json(&json!({"profile": "lite"}))
            .send()
            .unwrap()
    }
    let submit = |f: &Ferry, key: &str| submit_keyed(f, &tok, key);
    let a: Value = submit(&f, "k-1").json().unwrap();
    let a2: Value = submit(&f, "k-1").json().unwrap();
    assert_eq!(a["job"]["id"], a2["job"]["id"], "same key, same job");
    let b = submit(&f, "k-2");
    assert_eq!(b.status(), 202);
    let c = submit(&f, "k-3");
    assert_eq!(c.status(), 429);
    let err: Value = c.json().unwrap();
    assert_eq!(err["error"]["code"], "rate_limited");
    f.restart();
    let d = submit(&f, "k-4");
    assert_eq!(
        d.status(),
        429,
        "the count comes from the event log, so it survives a restart"
    );
    // A repeated key is still answered (it is not a new export).
    assert_eq!(submit(&f, "k-1").status(), 202);
}

#[test]
fn the_expiry_timer_deletes_the_bundle_even_across_a_restart() {
    // The default 24 h expiry; ferry is killed, and restarted with its
    // clock a day and an hour ahead (the tests' `clock.shift_s` point), as
    // if it had been down for a day: the timer is due at once.
    let mut f = Ferry::new();
    f.sample("acme", 1);
    f.start();
    let tok = f.token("acme", "tenant_admin");
    let id = f.export(&tok, json!({"profile": "lite"}));
    f.wait_export(&tok, &id, "completed", WAIT);
    let bundle = f.bundle_path("acme", &id);
    let link = link_in_email(&f.outbox()[0]).unwrap();
    f.kill();
    assert!(bundle.exists(), "nothing ran while ferry was down");
    let mut f = f.env("FERRY_FAILPOINTS", "clock.shift_s=90000");
    f.start();
    // The last thing the expiry does is its audit entry.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let expired = |f: &Ferry| {
        f.get_json("/api/v1/audit?action=EXPORT_EXPIRED", &tok)["entries"]
            .as_array()
            .map_or(0, Vec::len)
    };
    while expired(&f) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the expiry timer did not run"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!bundle.exists(), "the expiry deleted the bundle");
    assert_eq!(expired(&f), 1);
    let s = f.export_status(&tok, &id);
    assert_eq!(s["expired"], true, "{s}");
    let r = f.client.get(f.url(&link)).send().unwrap();
    assert!(r.status() == 410 || r.status() == 403, "{}", r.status());
}

#[test]
fn the_cli_demo_export_wait_and_audit_verify_work() {
    // `ferry demo` on an empty data folder, as a new user runs it.
    let f = Ferry::new();
    let out = f.cli(&["demo", "--tenant", "newcomer"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("entries verified").count(), 3, "{stdout}");
    let out = f.cli(&["audit-verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // `ferry export --wait` drives the API and follows progress to the end.
    let mut f = Ferry::new();
    f.sample("acme", 1);
    f.start();
    let out = f.cli(&[
        "export",
        "--tenant",
        "acme",
        "--profile",
        "analytics",
        "--from",
        "2000-01-01",
        "--to",
        "2099-12-31",
        "--wait",
        "--url",
        &f.url(""),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "export --wait failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"status\": \"completed\""), "{stdout}");
    // A refused request exits non-zero with the API's error.
    let out = f.cli(&[
        "export",
        "--tenant",
        "acme",
        "--profile",
        "excel",
        "--url",
        &f.url(""),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_profile"));
}

#[test]
fn an_export_holds_no_row_or_asset_of_another_tenant() {
    let mut f = Ferry::new();
    // `acme2` starts with `acme`: prefixes must not leak either way.
    for t in ["acme", "acme2", "globex"] {
        f.sample(t, 1);
    }
    f.start();
    let tok = f.token("acme", "tenant_admin");
    for body in [
        json!({"profile": "lite", "includeAssets": true}),
        json!({"profile": "native", "includeAssets": true}),
        json!({"profile": "analytics", "includeAssets": true, "dateRange": {"from": "2000-01-01", "to": "2099-12-31"}}),
    ] {
        let id = f.export(&tok, body.clone());
        f.wait_export(&tok, &id, "completed", WAIT);
        let bundle = f.bundle_path("acme", &id);
        let dir = tempfile::tempdir().unwrap();
        assert!(Command::new("unzip")
            .arg("-q")
            .arg(&bundle)
            .arg("-d")
            .arg(dir.path())
            .status()
            .unwrap()
            .success());
        let (mut own_marker_seen, mut own_marker_in_data) = (false, false);
        let mut stack = vec![dir.path().to_path_buf()];
        while let Some(p) = stack.pop() {
            if p.is_dir() {
                stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            // A custom-format dump is compressed: scan what pg_restore
            // reads out of it.
            let bytes = if p.extension().is_some_and(|e| e == "dump") {
                let out = Command::new("pg_restore")
                    .arg("--file=-")
                    .arg(&p)
                    .output()
                    .expect("pg_restore is installed");
                assert!(out.status.success(), "pg_restore -f - {}", p.display());
                out.stdout
            } else {
                std::fs::read(&p).unwrap()
            };
            let text = String::from_utf8_lossy(&bytes);
            for other in ["marker-acme2", "marker-globex"] {
                assert!(
                    !text.contains(other),
                    "{body}: {} holds {other}",
                    p.display()
                );
            }
            own_marker_seen |= text.contains("marker-acme");
            own_marker_in_data |=
                text.contains("marker-acme") && p.starts_with(dir.path().join("database"));
        }
        assert!(
            own_marker_seen && own_marker_in_data,
            "{body}: the scan found acme's own marker in its data, so it can see markers at all"
        );
    }
}
