//! The audit log's security findings, end to end on both audit backends
//! (the embedded SQLite platform database and PostgreSQL): an attacker who
//! lifts the append-only triggers and cuts or rewrites the chain is caught by
//! `ferry audit-verify` and `GET /api/v1/audit/verify` against the signed
//! anchor; a tenant's listing and report speak of its own chain only.

use crate::support::*;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use ferry_workflows::ports::audit::{
    chain_hash, AuditAnchor, AuditLog, AuditQuery, AuditRecord, GENESIS_HASH,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

const BACKENDS: [&str; 2] = ["sqlite", "pg-schema"];

/// The audit tables' names on `f`'s backend: (log, tenants' chains).
fn tables(f: &Ferry) -> (&'static str, &'static str) {
    match f.database_url() {
        None => ("audit_log", "audit_tenant_chain"),
        Some(_) => ("ferry_audit_log", "ferry_audit_tenant_chain"),
    }
}

/// Run `sql` on the platform database with every append-only guard lifted,
/// as its owner (PostgreSQL) or whoever can write its file (SQLite) can.
fn tamper(f: &Ferry, sql: &str) {
    match f.database_url() {
        None => {
            let path = f.data_dir().join("platform.sqlite");
            let mut c = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
            c.batch_execute(&format!(
                "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; \
                 DROP TRIGGER audit_tenant_chain_no_update; \
                 DROP TRIGGER audit_tenant_chain_no_delete; {sql}"
            ))
            .unwrap();
        }
        Some(url) => {
            let tables = [
                "ferry_audit_log",
                "ferry_audit_head",
                "ferry_audit_tenant_chain",
            ];
            let off: String = tables
                .iter()
                .map(|t| format!("ALTER TABLE {t} DISABLE TRIGGER USER; "))
                .collect();
            let on: String = tables
                .iter()
                .map(|t| format!("ALTER TABLE {t} ENABLE TRIGGER USER; "))
                .collect();
            psql(url, &format!("{off}{sql}; {on}"));
        }
    }
}

/// The platform's whole chain, read as an attacker with database access can.
fn platform_chain(f: &Ferry) -> Vec<AuditRecord> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let all = AuditQuery::default();
    match f.database_url() {
        None => {
            let path = f.data_dir().join("platform.sqlite");
            let audit = ferry_storage::audit_sqlite::SqliteAudit::open(path).unwrap();
            rt.block_on(audit.list(&all)).unwrap()
        }
        Some(url) => {
            let audit = ferry_storage::audit_pg::PgAudit::connect(url).unwrap();
            rt.block_on(audit.list(&all)).unwrap()
        }
    }
}

/// `ferry audit-verify`: whether it passed, and its report.
fn audit_verify(f: &Ferry) -> (bool, Value) {
    let out = f.cli(&["audit-verify"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "audit-verify printed no report ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

/// A server on `backend` with tenant `acme`, one finished export, stopped.
fn one_export(backend: &str) -> (Ferry, String) {
    let mut f = Ferry::on_backend(backend);
    f.sample("acme", 1);
    f.start();
    let acme = f.token("acme", "tenant_admin");
    let id = f.export(&acme, json!({"profile": "lite"}));
    f.wait_export(&acme, &id, "completed", Duration::from_secs(180));
    f.kill();
    let (ok, report) = audit_verify(&f);
    assert!(ok, "{backend}: {report}");
    assert!(report["anchoredSeq"].as_u64().unwrap() >= 7, "{report}");
    (f, acme)
}

#[test]
fn audit_truncation_after_dropping_triggers_fails_verify() {
    for backend in BACKENDS {
        let (mut f, acme) = one_export(backend);
        let (log, chain) = tables(&f);
        // The last two entries (the export's notification and completion).
        let mut sql = format!(
            "DELETE FROM {chain} WHERE seq > (SELECT max(seq) - 2 FROM {log}); \
             DELETE FROM {log} WHERE seq > (SELECT max(seq) - 2 FROM {log})"
        );
        if f.database_url().is_some() {
            sql.push_str(
                "; UPDATE ferry_audit_head SET seq = l.seq, hash = l.hash FROM \
                 (SELECT seq, hash FROM ferry_audit_log ORDER BY seq DESC LIMIT 1) l",
            );
        }
        let before = platform_chain(&f).len() as u64;
        tamper(&f, &sql);
        assert_eq!(platform_chain(&f).len() as u64, before - 2);

        let (ok, report) = audit_verify(&f);
        assert!(!ok, "{backend}: {report}");
        assert_eq!(report["ok"], json!(false), "{backend}: {report}");
        assert_eq!(report["firstBrokenSeq"], json!(before - 1), "{backend}");

        // The tenant is told too, in its own terms, after a restart (which
        // must not anchor the cut chain).
        f.start();
        let r = f.get_json("/api/v1/audit/verify", &acme);
        let own = f.get_json("/api/v1/audit", &acme)["entries"]
            .as_array()
            .unwrap()
            .len() as u64;
        assert_eq!(
            r,
            json!({"entries": own, "ok": false, "firstBrokenSeq": own + 1}),
            "{backend}"
        );
        f.kill();
        assert!(!audit_verify(&f).0, "{backend}");
    }
}

#[test]
fn audit_rewrite_of_whole_chain_fails_verify() {
    for backend in BACKENDS {
        let (f, _) = one_export(backend);
        let (log, chain) = tables(&f);
        // Every entry given another actor; the chain, the tenants' chains
        // (and PostgreSQL's head) rehashed consistently.
        let records = platform_chain(&f);
        let mut sql = String::new();
        let mut prev = GENESIS_HASH.to_owned();
        let mut tenants: HashMap<String, (u64, String)> = HashMap::new();
        for r in &records {
            let mut e = r.entry.clone();
            e.actor = "mallory".into();
            let hash = chain_hash(&prev, r.seq, &e);
            sql.push_str(&format!(
                "UPDATE {log} SET actor = 'mallory', prev_hash = '{prev}', hash = '{hash}' \
                 WHERE seq = {}; ",
                r.seq
            ));
            prev = hash;
            if let Some(t) = &e.tenant {
                let (n, p) = tenants
                    .get(t.as_str())
                    .cloned()
                    .unwrap_or((0, GENESIS_HASH.to_owned()));
                let th = chain_hash(&p, n + 1, &e);
                sql.push_str(&format!(
                    "UPDATE {chain} SET prev_hash = '{p}', hash = '{th}' WHERE seq = {}; ",
                    r.seq
                ));
                tenants.insert(t.to_string(), (n + 1, th));
            }
        }
        if f.database_url().is_some() {
            sql.push_str(&format!("UPDATE ferry_audit_head SET hash = '{prev}'"));
        }
        tamper(&f, &sql);
        assert!(platform_chain(&f)
            .iter()
            .all(|r| r.entry.actor == "mallory"));

        let (ok, report) = audit_verify(&f);
        assert!(!ok, "{backend}: {report}");
        assert_eq!(
            report["firstBrokenSeq"], report["anchoredSeq"],
            "{backend}: {report}"
        );
    }
}

#[test]
fn audit_verify_reveals_nothing_of_other_tenants() {
    for backend in BACKENDS {
        let mut f = Ferry::on_backend(backend);
        f.sample("acme", 1);
        f.sample("globex", 1);
        f.start();
        let acme = f.token("acme", "tenant_admin");
        let globex = f.token("globex", "tenant_admin");
        // Both at once, so their entries interleave in the platform chain.
        let g = f.export(&globex, json!({"profile": "lite"}));
        let a = f.export(&acme, json!({"profile": "lite"}));
        f.wait_export(&acme, &a, "completed", Duration::from_secs(180));
        f.wait_export(&globex, &g, "completed", Duration::from_secs(180));

        let listed = f.get_json("/api/v1/audit", &acme);
        let report = f.get_json("/api/v1/audit/verify", &acme);
        let entries = listed["entries"].as_array().unwrap().clone();
        let n = entries.len() as u64;
        assert!(n >= 7, "{backend}: {listed}");
        // Its own positions, without gaps, linked among its own entries.
        let mut prev = GENESIS_HASH.to_owned();
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e["seq"], json!(i as u64 + 1), "{backend}");
            assert_eq!(e["tenant"], json!("acme"), "{backend}");
            assert_eq!(e["prevHash"], json!(prev), "{backend}");
            prev = e["hash"].as_str().unwrap().to_owned();
        }
        // No hash of the platform's chain reaches the tenant.
        let platform: Vec<String> = platform_chain(&f)
            .into_iter()
            .flat_map(|r| [r.hash, r.prev_hash])
            .filter(|h| h != GENESIS_HASH)
            .collect();
        for e in &entries {
            for field in ["hash", "prevHash"] {
                let h = e[field].as_str().unwrap().to_owned();
                assert!(!platform.contains(&h), "{backend}: {field} {h}");
            }
        }
        // The report counts only its entries and names no platform position.
        assert_eq!(
            report,
            json!({"entries": n, "ok": true, "firstBrokenSeq": null}),
            "{backend}"
        );
        // Another tenant's activity changes nothing the tenant sees.
        let g2 = f.export(&globex, json!({"profile": "lite"}));
        f.wait_export(&globex, &g2, "completed", Duration::from_secs(180));
        assert_eq!(f.get_json("/api/v1/audit", &acme), listed, "{backend}");
        assert_eq!(
            f.get_json("/api/v1/audit/verify", &acme),
            report,
            "{backend}"
        );

        // The bundle's manifest carries a signed anchor of acme's own chain.
        let bundle = f.bundle_path("acme", &a);
        let out = Command::new("unzip")
            .args(["-p", bundle.to_str().unwrap(), "manifest.json"])
            .output()
            .expect("unzip");
        let manifest: Value = serde_json::from_slice(&out.stdout).unwrap();
        let anchor: AuditAnchor = serde_json::from_value(manifest["auditAnchor"].clone()).unwrap();
        assert_eq!(anchor.tenant.as_ref().map(|t| t.as_str()), Some("acme"));
        assert!(anchor.seq >= 1 && anchor.seq < n, "{backend}: {anchor:?}");
        assert_eq!(
            entries[anchor.seq as usize - 1]["hash"],
            json!(anchor.hash),
            "{backend}"
        );
        let key = std::fs::read_to_string(f.data_dir().join("keys/signing.pub")).unwrap();
        let key = ferry_workflows::bundle::sign::parse_public_key(&key).unwrap();
        anchor.check(&key).unwrap();
        assert!(f.verify(&bundle).status.success(), "{backend}");
    }
}
