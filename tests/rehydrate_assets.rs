//! Rehydration of a tenant's files (assets), end to end through the real
//! binary, on the embedded object store (files under
//! `<data>/objects/assets/<tenant>/`), whatever tenant backend
//! `FERRY_E2E_BACKEND` selects, and once on a real S3 server (s3s-fs,
//! which keeps each object as a file under its data folder).
//!
//! The tenant's files are compared byte for byte: with the `assets/`
//! entries of the export's bundle (read with `unzip`), or with a snapshot
//! of the folder taken before a change. Every test changes one file,
//! deletes one and adds one before rehydrating, so "equal to the bundle"
//! needs a write, a delete-restore and a delete.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::service::Service;
use support::{content_of, manifest_hashes, started_with, Ferry};

const WAIT: Duration = Duration::from_secs(180);
const TENANT: &str = "acme";
/// A sample file the tests overwrite.
const CHANGED: &str = "logo.png";
/// A sample file the tests delete.
const DELETED: &str = "branding/theme.json";
/// A file the tests add: 4 MiB of zeros, which deflate far more than the
/// 100:1 an uploaded bundle may, as a tenant's files may (a backup holding
/// it must still restore).
const ADDED: &str = "uploads/2026/added.bin";

/// Relative path → content.
type Files = BTreeMap<String, Vec<u8>>;

fn status_path(id: &str) -> String {
    format!("/api/v1/tenant/rehydrate/{id}/status")
}

fn assets_dir(f: &Ferry, tenant: &str) -> PathBuf {
    f.data_dir().join("objects").join("assets").join(tenant)
}

/// Every file under `dir`, by its path relative to `dir`.
fn files_under(dir: &Path) -> Files {
    let mut out = Files::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The tenant's files now.
fn tenant_files(f: &Ferry, tenant: &str) -> Files {
    files_under(&assets_dir(f, tenant))
}

/// The `assets/` entries of a bundle, by their path under `assets/`.
fn bundle_files(bundle: &Path) -> Files {
    let unzip = |args: &[&str]| {
        let out = Command::new("unzip").args(args).output().expect("unzip");
        assert!(out.status.success(), "unzip {args:?}");
        out.stdout
    };
    let bundle = bundle.to_str().unwrap();
    let names = String::from_utf8(unzip(&["-Z1", bundle])).unwrap();
    names
        .lines()
        .filter_map(|n| n.strip_prefix("assets/"))
        .filter(|n| !n.is_empty() && !n.ends_with('/'))
        .map(|n| (n.to_owned(), unzip(&["-p", bundle, &format!("assets/{n}")])))
        .collect()
}

/// Export the tenant with its files: the export id, the bundle's files and
/// its tables' content hashes.
fn export_with_assets(f: &Ferry, token: &str) -> (String, Files, BTreeMap<String, String>) {
    let id = f.export(token, json!({"profile": "lite", "includeAssets": true}));
    f.wait_export(token, &id, "completed", WAIT);
    let bundle = f.bundle_path(TENANT, &id);
    (id, bundle_files(&bundle), manifest_hashes(&bundle))
}

/// Overwrite [`CHANGED`], delete [`DELETED`], add [`ADDED`] in the
/// tenant's folder; the tenant's files afterwards.
fn change_files(f: &Ferry) -> Files {
    change_files_in(&assets_dir(f, TENANT))
}

/// [`change_files`] in the folder `dir` of the tenant's files.
fn change_files_in(dir: &Path) -> Files {
    std::fs::write(dir.join(CHANGED), b"not the logo any more").unwrap();
    std::fs::remove_file(dir.join(DELETED)).unwrap();
    std::fs::create_dir_all(dir.join(ADDED).parent().unwrap()).unwrap();
    std::fs::write(dir.join(ADDED), vec![0u8; 4 << 20]).unwrap();
    files_under(dir)
}

/// Submit a rehydration from an export and wait for its preview; its id
/// and the preview.
fn previewed(f: &Ferry, token: &str, body: Value) -> (String, Value) {
    let r = f.post("/api/v1/tenant/rehydrate", Some(token), &body);
    let status = r.status();
    let v: Value = r.json().unwrap();
    assert_eq!(status, 202, "{v}");
    let id = v["job"]["id"].as_str().unwrap().to_owned();
    f.wait_status(token, &status_path(&id), "awaiting_confirmation", WAIT);
    let preview = f.get_json(&format!("/api/v1/tenant/rehydrate/{id}/preview"), token);
    (id, preview)
}

fn confirm(f: &Ferry, token: &str, id: &str) {
    let r = f.post(
        &format!("/api/v1/tenant/rehydrate/{id}/confirm"),
        Some(token),
        &json!({"confirm": "DELETE"}),
    );
    assert_eq!(r.status(), 202, "{}", r.text().unwrap());
}

fn size(files: &Files, path: &str) -> u64 {
    files[path].len() as u64
}

/// The staged files of every rehydration of the tenant are gone (only
/// backups stay in the backups area).
fn assert_no_staging(f: &Ferry) {
    let backups = files_under(&f.data_dir().join("objects").join("backups").join(TENANT));
    let staged: Vec<_> = backups.keys().filter(|k| k.contains("staging")).collect();
    assert!(staged.is_empty(), "staging left: {staged:?}");
}

/// A started ferry with the sample tenant and a second one, `acme2`.
fn started() -> (Ferry, String) {
    started_with(&[TENANT, "acme2"])
}

/// Replace: the preview counts what the switch then does, the tenant's
/// files end byte-identical to the bundle's, another tenant's files are
/// untouched, the backup holds the files as they were, nothing staged is
/// left; the rollback brings the changed, deleted and added files back
/// exactly.
#[test]
fn replace_makes_the_files_the_bundles_and_rollback_restores_them() {
    let (f, token) = started();
    let other_before = tenant_files(&f, "acme2");
    assert!(!other_before.is_empty());
    let (export_id, exported, _) = export_with_assets(&f, &token);
    assert_eq!(
        exported,
        tenant_files(&f, TENANT),
        "the bundle holds the files"
    );
    assert!(exported.contains_key(CHANGED) && exported.contains_key(DELETED));
    let changed = change_files(&f);

    let (id, preview) = previewed(&f, &token, json!({"exportId": export_id}));
    let want_preview = json!({
        "policy": "replace",
        "willWrite": 2,
        "willWriteBytes": size(&exported, CHANGED) + size(&exported, DELETED),
        "willDelete": 1,
        "willDeleteBytes": size(&changed, ADDED),
        "unchanged": exported.len() - 2,
    });
    assert_eq!(preview["assets"], want_preview, "{preview}");
    assert_eq!(
        tenant_files(&f, TENANT),
        changed,
        "a preview writes nothing"
    );

    confirm(&f, &token, &id);
    let s = f.wait_status(&token, &status_path(&id), "completed", WAIT);
    assert_eq!(
        tenant_files(&f, TENANT),
        exported,
        "the files are the bundle's"
    );
    assert_eq!(tenant_files(&f, "acme2"), other_before, "acme2 untouched");
    assert_eq!(
        s["assets"],
        json!({
            "policy": "replace",
            "written": want_preview["willWrite"],
            "writtenBytes": want_preview["willWriteBytes"],
            "deleted": want_preview["willDelete"],
            "deletedBytes": want_preview["willDeleteBytes"],
        }),
        "the switch did what the preview said: {s}"
    );
    assert_no_staging(&f);
    let backup = f
        .data_dir()
        .join("objects/backups")
        .join(TENANT)
        .join(&id)
        .join("backup.zip");
    assert_eq!(bundle_files(&backup), changed, "the backup holds the files");

    let r = f.post(
        &format!("/api/v1/tenant/rehydrate/{id}/rollback"),
        Some(&token),
        &json!({}),
    );
    assert_eq!(r.status(), 202, "{}", r.text().unwrap());
    let s = f.wait_status(&token, &status_path(&id), "rolled_back", WAIT);
    assert_eq!(
        tenant_files(&f, TENANT),
        changed,
        "the rollback restored them"
    );
    assert_eq!(tenant_files(&f, "acme2"), other_before, "acme2 untouched");
    assert_eq!(s["assetsRestored"]["written"], 2, "{s}");
    assert_eq!(s["assetsRestored"]["deleted"], 1, "{s}");
}

/// Merge writes the bundle's files and keeps the others; partial and a
/// bundle exported without files (even in replace mode) leave them alone.
#[test]
fn merge_keeps_other_files_partial_and_bundles_without_files_leave_them() {
    let (f, token) = started();
    let (export_id, exported, _) = export_with_assets(&f, &token);
    let changed = change_files(&f);

    let (id, preview) = previewed(&f, &token, json!({"exportId": export_id, "mode": "merge"}));
    assert_eq!(preview["assets"]["policy"], "merge", "{preview}");
    assert_eq!(preview["assets"]["willWrite"], 2, "{preview}");
    assert_eq!(preview["assets"]["willDelete"], 0, "{preview}");
    confirm(&f, &token, &id);
    let s = f.wait_status(&token, &status_path(&id), "completed", WAIT);
    let mut merged = exported.clone();
    merged.insert(ADDED.to_owned(), changed[ADDED].clone());
    assert_eq!(
        tenant_files(&f, TENANT),
        merged,
        "the bundle's and the added file"
    );
    assert_eq!(s["assets"]["written"], 2, "{s}");
    assert_no_staging(&f);

    // From here on, the files must not change.
    let changed = change_files(&f);
    let (id, preview) = previewed(
        &f,
        &token,
        json!({"exportId": export_id, "mode": "partial", "tables": ["order_items"]}),
    );
    assert_eq!(preview["assets"]["policy"], "leave", "{preview}");
    assert_eq!(preview["assets"]["willWrite"], 0, "{preview}");
    assert_eq!(preview["assets"]["willDelete"], 0, "{preview}");
    confirm(&f, &token, &id);
    f.wait_status(&token, &status_path(&id), "completed", WAIT);
    assert_eq!(
        tenant_files(&f, TENANT),
        changed,
        "partial leaves the files"
    );

    let (no_files_id, _) = content_of(&f, &token, TENANT);
    assert!(bundle_files(&f.bundle_path(TENANT, &no_files_id)).is_empty());
    let (id, preview) = previewed(&f, &token, json!({"exportId": no_files_id}));
    assert_eq!(preview["assets"]["policy"], "leave", "{preview}");
    confirm(&f, &token, &id);
    f.wait_status(&token, &status_path(&id), "completed", WAIT);
    assert_eq!(
        tenant_files(&f, TENANT),
        changed,
        "a bundle without files deletes none"
    );
}

/// The process dies (SIGABRT) after the data commit: before the switch,
/// inside it (after its first action: the added file is deleted, nothing
/// written yet) and after it. After a restart without the failpoint the
/// rehydration completes with the rows and the files of the bundle.
#[test]
fn killed_during_the_switch_the_rehydration_completes_after_restart() {
    for point in [
        "rehydrate.assets.before",
        "rehydrate.assets.inside",
        "rehydrate.assets.after",
    ] {
        let (mut f, token) = started();
        let (export_id, exported, tables) = export_with_assets(&f, &token);
        f.resample(TENANT, 1, 21);
        let changed = change_files(&f);
        assert_ne!(content_of(&f, &token, TENANT).1, tables);
        f.kill();
        let mut f = f.env("FERRY_FAILPOINTS", &format!("{point}=abort"));
        f.start();
        let (id, _) = previewed(&f, &token, json!({"exportId": export_id}));
        let _ = f.try_post_json(
            &format!("/api/v1/tenant/rehydrate/{id}/confirm"),
            &token,
            &json!({"confirm": "DELETE"}),
        );
        let deadline = std::time::Instant::now() + WAIT;
        while f.alive() {
            assert!(
                std::time::Instant::now() < deadline,
                "{point}: ferry did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            f.server_log().contains(point),
            "{point}: it died elsewhere:\n{}",
            f.server_log()
        );
        let now = tenant_files(&f, TENANT);
        match point {
            "rehydrate.assets.before" => assert_eq!(now, changed, "{point}"),
            "rehydrate.assets.inside" => {
                assert!(!now.contains_key(ADDED), "{point}: the first action ran");
                assert_eq!(now[CHANGED], changed[CHANGED], "{point}: no write yet");
            }
            _ => assert_eq!(now, exported, "{point}"),
        }
        f.forget_child();
        let mut f = f.without_env("FERRY_FAILPOINTS");
        f.start();
        let s = f.wait_status(&token, &status_path(&id), "completed", WAIT);
        assert_eq!(s["assets"]["written"], 2, "{point}: {s}");
        assert_eq!(
            tenant_files(&f, TENANT),
            exported,
            "{point}: the files are the bundle's"
        );
        assert_eq!(
            content_of(&f, &token, TENANT).1,
            tables,
            "{point}: the rows are the bundle's"
        );
        assert_no_staging(&f);
    }
}

/// A switch that fails for good half-way rolls back: the rows and the
/// files are the tenant's own again. A failure before the switch leaves
/// the files as they are: the rollback compares and writes nothing.
#[test]
fn a_failed_rehydration_ends_with_the_tenants_own_files() {
    for (point, written, deleted) in [
        ("rehydrate.assets.inside=error@2", 1, 1),
        ("rehydrate.load.inside=error", 0, 0),
    ] {
        let mut f = Ferry::new().env("FERRY_FAILPOINTS", point);
        f.sample(TENANT, 1);
        f.start();
        let token = f.token(TENANT, "tenant_admin");
        let (export_id, _, tables) = export_with_assets(&f, &token);
        f.resample(TENANT, 1, 23);
        let own_tables = content_of(&f, &token, TENANT).1;
        assert_ne!(own_tables, tables);
        let changed = change_files(&f);
        let (id, _) = previewed(&f, &token, json!({"exportId": export_id}));
        confirm(&f, &token, &id);
        let s = f.wait_status(&token, &status_path(&id), "rolled_back", WAIT);
        assert_eq!(s["error"]["code"], "injected_fault", "{point}: {s}");
        assert_eq!(tenant_files(&f, TENANT), changed, "{point}: the own files");
        assert_eq!(content_of(&f, &token, TENANT).1, own_tables, "{point}");
        assert_eq!(s["assetsRestored"]["written"], written, "{point}: {s}");
        assert_eq!(s["assetsRestored"]["deleted"], deleted, "{point}: {s}");
        assert_no_staging(&f);
    }
}

/// The same replace and rollback on a real S3 server: the files are
/// staged in the backups bucket, switched by server-side copies, and end
/// byte-identical to the bundle's; another tenant's objects are untouched;
/// nothing staged is left; the rollback restores the changed, deleted and
/// added objects.
#[test]
fn replace_and_rollback_switch_the_files_on_s3() {
    let s3 = Service::start("s3");
    let mut f = Ferry::new();
    for (k, v) in &s3.env {
        f = f.env(k, v);
    }
    f.sample(TENANT, 1);
    f.sample("acme2", 1);
    f.start();
    let token = f.token(TENANT, "tenant_admin");
    let data = Path::new(s3.var("FERRY_S3_DATA_DIR"));
    let objects = |bucket: &str, tenant: &str| files_under(&data.join(bucket).join(tenant));
    let other_before = objects("ferry-assets", "acme2");
    assert!(
        !other_before.is_empty(),
        "the sample wrote acme2's files to S3"
    );
    let export_id = f.export(&token, json!({"profile": "lite", "includeAssets": true}));
    f.wait_export(&token, &export_id, "completed", WAIT);
    // The bundle is an object of the exports bucket.
    let bundles = data.join("ferry-exports").join(TENANT).join(&export_id);
    let bundle = std::fs::read_dir(&bundles)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "zip"))
        .expect("the bundle in the exports bucket");
    let exported = bundle_files(&bundle);
    assert_eq!(
        exported,
        objects("ferry-assets", TENANT),
        "the bundle holds the files"
    );
    let changed = change_files_in(&data.join("ferry-assets").join(TENANT));

    let (id, preview) = previewed(&f, &token, json!({"exportId": export_id}));
    assert_eq!(preview["assets"]["willWrite"], 2, "{preview}");
    assert_eq!(preview["assets"]["willDelete"], 1, "{preview}");
    confirm(&f, &token, &id);
    f.wait_status(&token, &status_path(&id), "completed", WAIT);
    assert_eq!(
        objects("ferry-assets", TENANT),
        exported,
        "the files are the bundle's"
    );
    assert_eq!(
        objects("ferry-assets", "acme2"),
        other_before,
        "acme2 untouched"
    );
    let staged: Vec<String> = objects("ferry-backups", TENANT)
        .into_keys()
        .filter(|k| k.contains("staging"))
        .collect();
    assert!(staged.is_empty(), "staging left: {staged:?}");

    let r = f.post(
        &format!("/api/v1/tenant/rehydrate/{id}/rollback"),
        Some(&token),
        &json!({}),
    );
    assert_eq!(r.status(), 202, "{}", r.text().unwrap());
    f.wait_status(&token, &status_path(&id), "rolled_back", WAIT);
    assert_eq!(
        objects("ferry-assets", TENANT),
        changed,
        "the rollback restored them"
    );
    assert_eq!(
        objects("ferry-assets", "acme2"),
        other_before,
        "acme2 untouched"
    );
}
