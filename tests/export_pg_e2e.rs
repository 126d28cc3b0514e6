//! Exports from PostgreSQL (schema mode) through the real server, whatever
//! `FERRY_E2E_BACKEND` says: one snapshot while a writer moves money
//! between accounts during an export requested over HTTP, and the export
//! records (`ferry_exports`) the workflow keeps in the platform database.

mod support;

use diesel::{Connection, PgConnection};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};
use support::transfers::{self, Transfers};
use support::{psql, Ferry};

const WITHIN: Duration = Duration::from_secs(300);

/// One entry of a bundle, through Info-ZIP's `unzip`.
fn unzip_entry(bundle: &std::path::Path, entry: &str) -> String {
    let out = Command::new("unzip")
        .arg("-p")
        .arg(bundle)
        .arg(entry)
        .output()
        .expect("unzip is installed");
    assert!(out.status.success(), "unzip -p {entry}");
    String::from_utf8(out.stdout).unwrap()
}

fn balance(ndjson: &str) -> i64 {
    let rows: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{ndjson}");
    rows[0]["balance"].as_i64().unwrap()
}

#[test]
fn an_export_over_http_reads_one_snapshot_while_money_moves() {
    let mut f = Ferry::on_backend("pg-schema");
    f.sample("acme", 2);
    let url = f.database_url().unwrap().to_owned();
    let mut conn = PgConnection::establish(&url).unwrap();
    transfers::create_accounts(&mut conn, "tenant_acme").unwrap();
    f.start();
    let token = f.token("acme", "tenant_admin");

    let writer = Transfers::start(&url, "tenant_acme");
    writer.wait_for_commits(5);
    let before = writer.commits();
    let id = f.export(&token, json!({"profile": "lite", "includeAssets": false}));
    f.wait_export(&token, &id, "completed", WITHIN);
    let during = writer.commits() - before;
    // The writer was still committing after the export, too.
    writer.wait_for_commits(5);
    writer.stop().unwrap();
    eprintln!("{during} transfers committed while the export ran");
    // Otherwise the invariant below would hold for any export.
    assert!(
        during >= 5,
        "only {during} transfers committed while the export ran"
    );

    let bundle = f.bundle_path("acme", &id);
    let out = f.verify(&bundle);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checking = balance(&unzip_entry(&bundle, "database/checking.ndjson"));
    let savings = balance(&unzip_entry(&bundle, "database/savings.ndjson"));
    assert_eq!(
        checking + savings,
        transfers::TOTAL,
        "checking {checking} + savings {savings} must be the invariant"
    );
}

#[test]
fn export_records_follow_the_workflow_in_postgresql() {
    let mut f = Ferry::on_backend("pg-schema").env("FERRY_BUNDLE_TTL_SECS", "2");
    f.sample("acme", 1);
    f.start();
    let token = f.token("acme", "tenant_admin");
    let id = f.export(
        &token,
        json!({"profile": "analytics", "includeAssets": true}),
    );
    let status = f.wait_export(&token, &id, "completed", WITHIN);

    let url = f.database_url().unwrap().to_owned();
    let record = |columns: &str| {
        psql(
            &url,
            &format!("SELECT {columns} FROM ferry_exports WHERE export_id = '{id}'"),
        )
        .trim()
        .to_owned()
    };
    // (The expiry timer may already have run: only what it leaves alone.)
    assert_eq!(
        record(
            "tenant_id, profile, status, requested_by, size_bytes, checksum, \
             object_key LIKE 'acme/' || export_id || '/export_acme_%.zip', \
             completed_at >= requested_at AND expires_at > completed_at"
        ),
        format!(
            "acme|analytics|completed|acme-admin|{}|blake3:{}|t|t",
            status["sizeBytes"],
            status["checksum"].as_str().unwrap(),
        )
    );

    // The expiry timer deletes the bundle and records when.
    let deadline = Instant::now() + WITHIN;
    while record("expired_at IS NOT NULL") != "t" {
        assert!(
            Instant::now() < deadline,
            "the record never showed the expiry"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(record("status, expired_at >= expires_at"), "completed|t");
}
