//! Rehydration end to end, through the real binary and its HTTP API, on the
//! backend `FERRY_E2E_BACKEND` selects (SQLite by default, each PostgreSQL
//! mode in the test command's later runs).
//!
//! A tenant's content is compared by its content hashes: the blake3 of each
//! table's `lite` NDJSON, which is exactly what a `lite` export's manifest
//! lists per table entry. So "equal to the bundle" and "equal to the
//! original" are checked by exporting again and comparing manifests.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use support::{content_of, lite_body, manifest_hashes, started_with, Ferry};

const WAIT: Duration = Duration::from_secs(180);
const TENANT: &str = "acme";

/// Export the tenant (lite, no assets) and return the export id and its
/// bundle's content hashes: the tenant's content right now.
fn content(f: &Ferry, token: &str) -> (String, BTreeMap<String, String>) {
    content_of(f, token, TENANT)
}

fn status_path(id: &str) -> String {
    format!("/api/v1/tenant/rehydrate/{id}/status")
}

/// Submit a rehydration from an export; its id.
fn rehydrate_export(f: &Ferry, token: &str, body: Value) -> String {
    let r = f.post("/api/v1/tenant/rehydrate", Some(token), &body);
    let status = r.status();
    let v: Value = r.json().unwrap();
    assert_eq!(status, 202, "{v}");
    v["job"]["id"].as_str().unwrap().to_owned()
}

fn confirm(f: &Ferry, token: &str, id: &str) {
    let r = f.post(
        &format!("/api/v1/tenant/rehydrate/{id}/confirm"),
        Some(token),
        &json!({"confirm": "DELETE"}),
    );
    assert_eq!(r.status(), 202, "{}", r.text().unwrap());
}

/// The common start: a tenant exported (lite), then changed (another
/// sample), with its content hashes before and after.
struct Scene {
    f: Ferry,
    token: String,
    export_id: String,
    exported: BTreeMap<String, String>,
    changed: BTreeMap<String, String>,
}

fn scene(env: &[(&str, &str)], seed: u64) -> Scene {
    let mut f = Ferry::new();
    for (k, v) in env {
        f = f.env(k, v);
    }
    f.sample(TENANT, 1);
    f.start();
    let token = f.token(TENANT, "tenant_admin");
    let (export_id, exported) = content(&f, &token);
    f.resample(TENANT, 1, seed);
    let (_, changed) = content(&f, &token);
    assert_ne!(changed, exported, "the new sample changed the tenant");
    Scene {
        f,
        token,
        export_id,
        exported,
        changed,
    }
}

/// Submit a rehydration and wait for its preview; its id.
fn awaiting(f: &Ferry, token: &str, body: Value) -> String {
    let id = rehydrate_export(f, token, body);
    f.wait_status(token, &status_path(&id), "awaiting_confirmation", WAIT);
    id
}

fn started() -> (Ferry, String) {
    started_with(&[TENANT])
}

#[test]
fn replace_round_trip_restores_every_table_and_rollback_undoes_it() {
    let (f, token) = started();
    // Another tenant (in row mode: the same tables) must never be touched.
    f.sample("acme2", 1);
    let other = f.token("acme2", "tenant_admin");
    let (_, other_before) = content_of(&f, &other, "acme2");
    let (export_id, exported) = content(&f, &token);
    // Change every table: another sample of the same schema.
    f.resample(TENANT, 1, 7);
    let (_, changed) = content(&f, &token);
    assert_ne!(changed, exported);

    let id = rehydrate_export(&f, &token, json!({"exportId": export_id}));
    let s = f.wait_status(&token, &status_path(&id), "awaiting_confirmation", WAIT);
    assert_eq!(s["previewReady"], true);
    let preview = f.get_json(&format!("/api/v1/tenant/rehydrate/{id}/preview"), &token);
    assert_eq!(preview["mode"], "replace");
    assert_eq!(preview["tables"].as_array().unwrap().len(), exported.len());
    // Nothing changed while waiting.
    assert_eq!(content(&f, &token).1, changed);

    // A wrong confirmation is refused and changes nothing.
    let r = f.post(
        &format!("/api/v1/tenant/rehydrate/{id}/confirm"),
        Some(&token),
        &json!({"confirm": "delete"}),
    );
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().unwrap()["error"]["code"],
        "confirmation_mismatch"
    );

    confirm(&f, &token, &id);
    let s = f.wait_status(&token, &status_path(&id), "completed", WAIT);
    assert_eq!(s["progress"], 100);
    assert!(s["backup"]["sizeBytes"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(
        content(&f, &token).1,
        exported,
        "the tenant equals the bundle"
    );
    let metrics = f.get("/metrics", None).text().unwrap();
    let imported: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ferry_rows_imported_total{mode=\"replace\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rows_imported in\n{metrics}"));
    assert_eq!(Some(imported), s["rowsImported"].as_u64(), "{s}");

    // Roll the finished rehydration back: the pre-rehydration content returns.
    let r = f.post(
        &format!("/api/v1/tenant/rehydrate/{id}/rollback"),
        Some(&token),
        &json!({}),
    );
    assert_eq!(r.status(), 202, "{}", r.text().unwrap());
    let s = f.wait_status(&token, &status_path(&id), "rolled_back", WAIT);
    assert_eq!(s["restored"], true, "{s}");
    assert_eq!(
        content(&f, &token).1,
        changed,
        "rollback restored the backup"
    );
    assert_eq!(
        content_of(&f, &other, "acme2").1,
        other_before,
        "acme2 untouched"
    );
    // Rolled back once: not again.
    let r = f.post(
        &format!("/api/v1/tenant/rehydrate/{id}/rollback"),
        Some(&token),
        &json!({}),
    );
    assert_eq!(r.status(), 409);
}

#[test]
fn uploaded_bundle_dry_run_previews_and_changes_nothing() {
    let Scene {
        f,
        token,
        export_id,
        exported,
        changed,
    } = scene(&[], 9);
    let bytes = std::fs::read(f.bundle_path(TENANT, &export_id)).unwrap();
    let r = f.upload_bundle(&token, "?dryRun=true", bytes);
    let v: Value = r.json().unwrap();
    assert_eq!(v["job"]["dryRun"], true, "{v}");
    let id = v["job"]["id"].as_str().unwrap();
    let s = f.wait_status(&token, &status_path(id), "completed", WAIT);
    assert_eq!(s["dryRun"], true);
    let preview = f.get_json(&format!("/api/v1/tenant/rehydrate/{id}/preview"), &token);
    let inserts: u64 = preview["willInsert"].as_u64().unwrap();
    assert!(inserts > 0, "{preview}");
    assert_eq!(content(&f, &token).1, changed);
    assert_ne!(changed, exported);
    // A dry run has nothing to roll back.
    let r = f.post(
        &format!("/api/v1/tenant/rehydrate/{id}/rollback"),
        Some(&token),
        &json!({}),
    );
    assert_eq!(r.status(), 409);
}

#[test]
fn bad_uploads_are_refused_before_anything_is_changed() {
    let mut f = Ferry::new().env("FERRY_UPLOAD_BYTES_MAX", "200000");
    f.sample(TENANT, 1);
    f.sample("globex", 1);
    f.start();
    let token = f.token(TENANT, "tenant_admin");
    let other = f.token("globex", "tenant_admin");
    let (_, before) = content(&f, &token);

    // Empty body.
    let r = f.upload_bundle(&token, "", vec![]);
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["error"]["code"], "empty_upload");
    // Oversize upload.
    let r = f.upload_bundle(&token, "", vec![b'x'; 300_000]);
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().unwrap()["error"]["code"],
        "upload_too_large"
    );
    // Bad options.
    let r = f.upload_bundle(&token, "?mode=wipe", b"PK".to_vec());
    assert_eq!(r.json::<Value>().unwrap()["error"]["code"], "invalid_mode");
    // Another tenant's export id is not found.
    let theirs = f.export(&other, json!({"profile": "lite"}));
    f.wait_export(&other, &theirs, "completed", WAIT);
    let r = f.post(
        "/api/v1/tenant/rehydrate",
        Some(&token),
        &json!({"exportId": theirs}),
    );
    assert_eq!(r.status(), 404);

    // Another tenant's bundle, uploaded: the workflow fails in validate.
    let bundle = std::fs::read(f.bundle_path("globex", &theirs)).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("tenant_mismatch", bundle.clone()),
        (
            "bundle_not_zip",
            b"this is not a zip archive at all".to_vec(),
        ),
        ("bundle_not_zip", bundle[..bundle.len() / 2].to_vec()),
    ];
    for (code, body) in cases {
        let r = f.upload_bundle(&token, "", body);
        let v: Value = r.json().unwrap();
        let id = v["job"]["id"].as_str().unwrap_or_else(|| panic!("{v}"));
        let s = f.wait_status(&token, &status_path(id), "failed", WAIT);
        assert_eq!(s["error"]["code"], code, "{s}");
        assert_eq!(s["reportAvailable"], true, "{s}");
        let report = f.get(
            &format!("/api/v1/tenant/rehydrate/{id}/report"),
            Some(&token),
        );
        assert_eq!(report.status(), 200);
        assert!(report.text().unwrap().contains(code));
        assert!(s["backup"].is_null(), "nothing was backed up: {s}");
    }
    assert_eq!(content(&f, &token).1, before, "the tenant is untouched");
    let _ = lite_body();
}

#[test]
fn cancel_while_awaiting_confirmation_changes_nothing() {
    let Scene {
        f,
        token,
        export_id,
        changed,
        ..
    } = scene(&[], 3);
    let id = awaiting(&f, &token, json!({"exportId": export_id}));
    let r = f.post(
        &format!("/api/v1/workflows/{id}/cancel"),
        Some(&token),
        &json!({}),
    );
    assert!(r.status().is_success());
    f.wait_status(&token, &status_path(&id), "cancelled", WAIT);
    assert_eq!(content(&f, &token).1, changed);
    // A cancelled rehydration cannot be confirmed.
    let r = f.post(
        &format!("/api/v1/tenant/rehydrate/{id}/confirm"),
        Some(&token),
        &json!({"confirm": "DELETE"}),
    );
    assert_eq!(r.status(), 409);
}

/// An error injected before, inside or after each step. Before `quiesce`
/// the rehydration fails and nothing was touched; from `quiesce` on it rolls
/// back: the tenant ends with its original content — untouched when the
/// error came before the load committed (inside the load, even just before
/// its commit, nothing is committed), restored from the backup
/// (`restored`) when it came after.
#[test]
fn injected_faults_end_rehydrated_or_restored() {
    let points = [
        ("rehydrate.receive.before", "failed", None),
        ("rehydrate.validate.before", "failed", None),
        ("rehydrate.validate.after", "failed", None),
        ("rehydrate.preview.after", "failed", None),
        ("rehydrate.quiesce.before", "rolled_back", Some(false)),
        ("rehydrate.quiesce.after", "rolled_back", Some(false)),
        ("rehydrate.backup.inside", "rolled_back", Some(false)),
        ("rehydrate.backup.after", "rolled_back", Some(false)),
        ("rehydrate.load.before", "rolled_back", Some(false)),
        ("rehydrate.load.inside", "rolled_back", Some(false)),
        ("rehydrate.load.commit", "rolled_back", Some(false)),
        ("rehydrate.load.after", "rolled_back", Some(true)),
        ("rehydrate.reactivate.before", "rolled_back", Some(true)),
        ("rehydrate.reactivate.after", "rolled_back", Some(true)),
    ];
    for (point, end, restored) in points {
        let Scene {
            f,
            token,
            export_id,
            changed,
            ..
        } = scene(&[("FERRY_FAILPOINTS", &format!("{point}=error"))], 5);
        let id = rehydrate_export(&f, &token, json!({"exportId": export_id}));
        let s = if end == "failed" {
            f.wait_status(&token, &status_path(&id), "failed", WAIT)
        } else {
            f.wait_status(&token, &status_path(&id), "awaiting_confirmation", WAIT);
            confirm(&f, &token, &id);
            f.wait_status(&token, &status_path(&id), end, WAIT)
        };
        assert_eq!(s["error"]["code"], "injected_fault", "{point}: {s}");
        assert_eq!(s["restored"], json!(restored), "{point}: {s}");
        assert_eq!(
            content(&f, &token).1,
            changed,
            "{point}: the tenant holds its original content"
        );
    }
}

/// A rollback of a finished rehydration that itself fails leaves the
/// workflow failed in its compensation (loudly, never "done") and the
/// tenant as it was before the rollback (the restore is one transaction);
/// resuming it finishes the restore.
#[test]
fn a_failed_rollback_is_resumed_until_the_tenant_is_restored() {
    let Scene {
        mut f,
        token,
        export_id,
        exported,
        changed,
    } = scene(
        &[("FERRY_FAILPOINTS", "rehydrate.rollback.inside=error")],
        29,
    );
    let id = awaiting(&f, &token, json!({"exportId": export_id}));
    confirm(&f, &token, &id);
    f.wait_status(&token, &status_path(&id), "completed", WAIT);
    let r = f.post(
        &format!("/api/v1/tenant/rehydrate/{id}/rollback"),
        Some(&token),
        &json!({}),
    );
    assert_eq!(r.status(), 202, "{}", r.text().unwrap());
    let s = f.wait_status(&token, &status_path(&id), "failed", WAIT);
    assert_eq!(s["phase"], "compensation", "{s}");
    assert_eq!(s["error"]["code"], "injected_fault", "{s}");
    assert_eq!(
        content(&f, &token).1,
        exported,
        "a failed restore leaves the rehydrated data whole"
    );
    f.kill();
    let mut f = f.without_env("FERRY_FAILPOINTS");
    f.start();
    let r = f.post(
        &format!("/api/v1/workflows/{id}/resume"),
        Some(&token),
        &json!({}),
    );
    assert!(r.status().is_success(), "{}", r.text().unwrap());
    let s = f.wait_status(&token, &status_path(&id), "rolled_back", WAIT);
    assert_eq!(s["restored"], true, "{s}");
    assert_eq!(content(&f, &token).1, changed);
}

/// The process dies (SIGABRT, no clean-up) before, inside and after every
/// step: after a restart (without the failpoint) the rehydration completes
/// and the tenant equals the bundle.
#[test]
fn killed_anywhere_the_rehydration_completes_after_restart() {
    let points = [
        "rehydrate.receive.after",
        "rehydrate.validate.after",
        "rehydrate.preview.after",
        "rehydrate.quiesce.before",
        "rehydrate.quiesce.after",
        "rehydrate.backup.before",
        "rehydrate.backup.inside",
        "rehydrate.backup.after",
        "rehydrate.load.before",
        "rehydrate.load.inside",
        "rehydrate.load.commit",
        "rehydrate.load.after",
        "rehydrate.reactivate.before",
        "rehydrate.reactivate.after",
    ];
    for point in points {
        let mut f = Ferry::new();
        f.sample(TENANT, 1);
        f.start();
        let token = f.token(TENANT, "tenant_admin");
        let (export_id, exported) = content(&f, &token);
        f.resample(TENANT, 1, 11);
        f.kill();
        let mut f = f.env("FERRY_FAILPOINTS", &format!("{point}=abort"));
        f.start();
        let id = rehydrate_export(&f, &token, json!({"exportId": export_id}));
        // The process aborts at the point, before or after the confirmation.
        let deadline = std::time::Instant::now() + WAIT;
        let mut confirmed = false;
        while f.alive() {
            assert!(
                std::time::Instant::now() < deadline,
                "{point}: ferry did not stop"
            );
            let awaiting = f
                .try_get_json(&status_path(&id), &token)
                .is_some_and(|s| s["status"] == "awaiting_confirmation");
            if awaiting && !confirmed {
                // The server may die while answering: whether the
                // confirmation was recorded is read after the restart.
                let _ = f.try_post_json(
                    &format!("/api/v1/tenant/rehydrate/{id}/confirm"),
                    &token,
                    &json!({"confirm": "DELETE"}),
                );
                confirmed = true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        f.forget_child();
        let mut f = f.without_env("FERRY_FAILPOINTS");
        f.start();
        let s = f.get_json(&status_path(&id), &token);
        if !confirmed || s["status"] == "awaiting_confirmation" {
            f.wait_status(&token, &status_path(&id), "awaiting_confirmation", WAIT);
            confirm(&f, &token, &id);
        }
        let s = f.wait_status(&token, &status_path(&id), "completed", WAIT);
        assert_eq!(s["status"], "completed", "{point}");
        assert_eq!(
            content(&f, &token).1,
            exported,
            "{point}: the tenant equals the bundle"
        );
    }
}

/// Merge upserts by key and partial replaces only the chosen tables; both
/// do exactly what their preview said.
#[test]
fn merge_and_partial_do_what_the_preview_said() {
    let (f, token) = started();
    let (export_id, exported) = content(&f, &token);
    f.resample(TENANT, 1, 13);
    let (_, changed) = content(&f, &token);

    // Partial: only order_items (nothing references it) comes back.
    let id = rehydrate_export(
        &f,
        &token,
        json!({"exportId": export_id, "mode": "partial", "tables": ["order_items"]}),
    );
    f.wait_status(&token, &status_path(&id), "awaiting_confirmation", WAIT);
    let preview = f.get_json(&format!("/api/v1/tenant/rehydrate/{id}/preview"), &token);
    assert_eq!(preview["tables"].as_array().unwrap().len(), 1, "{preview}");
    confirm(&f, &token, &id);
    let s = f.wait_status(&token, &status_path(&id), "completed", WAIT);
    assert_eq!(s["rowsImported"], preview["willInsert"], "{s}\n{preview}");
    let now = content(&f, &token).1;
    for (table, hash) in &now {
        let want = if table == "order_items" {
            &exported[table]
        } else {
            &changed[table]
        };
        assert_eq!(hash, want, "{table}");
    }

    // Merge everything back by primary key.
    let id = awaiting(&f, &token, json!({"exportId": export_id, "mode": "merge"}));
    let preview = f.get_json(&format!("/api/v1/tenant/rehydrate/{id}/preview"), &token);
    assert_eq!(preview["conflicts"], 0, "{preview}");
    assert_eq!(preview["willDelete"], 0, "{preview}");
    confirm(&f, &token, &id);
    let s = f.wait_status(&token, &status_path(&id), "completed", WAIT);
    let want = preview["willInsert"].as_u64().unwrap() + preview["willUpdate"].as_u64().unwrap();
    assert_eq!(s["rowsImported"].as_u64().unwrap(), want, "{s}\n{preview}");
}

/// Poll the status until the rehydration is running `step`.
fn wait_step(f: &Ferry, token: &str, id: &str, step: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let s = f.get_json(&status_path(id), token);
        if s["currentStep"] == step && s["status"] == "running" {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never reached {step}: {s}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A cancel while the load runs ends its transaction uncommitted: the
/// tenant keeps its content, with nothing to restore.
#[test]
fn cancel_during_load_keeps_the_old_data() {
    let Scene {
        f,
        token,
        export_id,
        changed,
        ..
    } = scene(
        &[("FERRY_FAILPOINTS", "rehydrate.load.inside=sleep:500")],
        17,
    );
    let id = awaiting(&f, &token, json!({"exportId": export_id}));
    confirm(&f, &token, &id);
    wait_step(&f, &token, &id, "load");
    let r = f.post(
        &format!("/api/v1/workflows/{id}/cancel"),
        Some(&token),
        &json!({}),
    );
    assert!(r.status().is_success(), "{}", r.text().unwrap());
    let s = f.wait_status(&token, &status_path(&id), "rolled_back", WAIT);
    assert_eq!(s["restored"], false, "{s}");
    assert_eq!(
        content(&f, &token).1,
        changed,
        "the original content stayed"
    );
}

#[test]
fn an_export_waits_for_a_running_rehydration_of_its_tenant() {
    let mut f = Ferry::new().env("FERRY_FAILPOINTS", "rehydrate.load.inside=sleep:150");
    f.sample(TENANT, 1);
    f.start();
    let token = f.token(TENANT, "tenant_admin");
    let (export_id, exported) = content(&f, &token);
    f.resample(TENANT, 1, 19);
    let id = awaiting(&f, &token, json!({"exportId": export_id}));
    confirm(&f, &token, &id);
    wait_step(&f, &token, &id, "load");
    let export = f.export(&token, json!({"profile": "lite"}));
    assert_eq!(f.export_status(&token, &export)["status"], "pending");
    let e = f.wait_export(&token, &export, "completed", WAIT);
    let r = f.get_json(&status_path(&id), &token);
    assert_eq!(r["status"], "completed");
    let rehydrated_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(r["completedAt"].clone()).unwrap();
    let export_started: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(e["startedAt"].clone()).unwrap();
    assert!(
        export_started >= rehydrated_at,
        "{export_started} < {rehydrated_at}"
    );
    // And it exported the rehydrated data.
    assert_eq!(manifest_hashes(&f.bundle_path(TENANT, &export)), exported);
}

#[test]
fn rollback_is_refused_once_the_backup_expired() {
    let mut f = Ferry::new().env("FERRY_BACKUP_RETENTION_SECS", "1");
    f.sample(TENANT, 1);
    f.start();
    let token = f.token(TENANT, "tenant_admin");
    let (export_id, _) = content(&f, &token);
    let id = awaiting(&f, &token, json!({"exportId": export_id}));
    confirm(&f, &token, &id);
    f.wait_status(&token, &status_path(&id), "completed", WAIT);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let s = f.get_json(&status_path(&id), &token);
        if s["backup"]["expired"] == true {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "backup never expired: {s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let backups = f.data_dir().join("objects/backups").join(TENANT);
    let left: Vec<_> = walk(&backups);
    assert!(left.is_empty(), "the backup object is deleted: {left:?}");
    let r = f.post(
        &format!("/api/v1/tenant/rehydrate/{id}/rollback"),
        Some(&token),
        &json!({}),
    );
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().unwrap()["error"]["code"],
        "backup_expired"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn native_bundle_round_trip() {
    let (f, token) = started();
    let (_, exported) = content(&f, &token);
    let native = f.export(&token, json!({"profile": "native"}));
    f.wait_export(&token, &native, "completed", WAIT);
    f.resample(TENANT, 1, 23);
    assert_ne!(content(&f, &token).1, exported);
    let id = awaiting(&f, &token, json!({"exportId": native}));
    let preview = f.get_json(&format!("/api/v1/tenant/rehydrate/{id}/preview"), &token);
    assert!(preview["willInsert"].as_u64().unwrap() > 0, "{preview}");
    confirm(&f, &token, &id);
    f.wait_status(&token, &status_path(&id), "completed", WAIT);
    assert_eq!(
        content(&f, &token).1,
        exported,
        "the tenant equals the native dump"
    );
}

#[test]
fn uploads_nothing_uses_are_removed_at_start() {
    let mut f = Ferry::new();
    f.sample(TENANT, 1);
    let uploads = f.data_dir().join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    std::fs::write(uploads.join("0123abcd.zip"), b"orphan").unwrap();
    std::fs::write(uploads.join(".4567.part"), b"half").unwrap();
    let work = f
        .data_dir()
        .join("rehydrate/01a20000-0000-7000-8000-000000000000");
    std::fs::create_dir_all(&work).unwrap();
    f.start();
    assert!(walk(&uploads).is_empty(), "{:?}", walk(&uploads));
    assert!(!work.exists());
}
