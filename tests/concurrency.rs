//! Per-tenant concurrency, cancel and resume over HTTP, on the real binary.

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::*;

const WAIT: Duration = Duration::from_secs(300);

fn times(f: &Ferry, tok: &str, id: &str) -> (String, String) {
    let w = f.get_json(&format!("/api/v1/workflows/{id}"), tok);
    (
        w["startedAt"].as_str().unwrap().to_owned(),
        w["finishedAt"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn one_tenant_never_overlaps_and_a_slow_tenant_does_not_delay_another() {
    let mut f = Ferry::new();
    f.sample("big", 40);
    f.sample("small", 1);
    f.start();
    let big = f.token("big", "tenant_admin");
    let small = f.token("small", "tenant_admin");
    let b1 = f.export(&big, json!({"profile": "lite"}));
    let b2 = f.export(&big, json!({"profile": "lite"}));
    let s1 = f.export(&small, json!({"profile": "lite"}));
    // Watch until small is done: whenever b1 has not finished, b2 has not
    // started (b2 is read first, so a b2 seen running is never blamed on a
    // b1 that finished between the two reads).
    let deadline = Instant::now() + WAIT;
    loop {
        let b2_status = f.export_status(&big, &b2)["status"].clone();
        let b1_status = f.export_status(&big, &b1)["status"].clone();
        if b1_status != "completed" {
            assert_eq!(b2_status, "pending", "b2 waits for b1 (b1 is {b1_status})");
        }
        let s = f.export_status(&small, &s1);
        if s["status"] == "completed" {
            break;
        }
        assert_ne!(s["status"], "failed", "{s}");
        assert!(Instant::now() < deadline, "small never completed: {s}");
        std::thread::sleep(Duration::from_millis(20));
    }
    f.wait_export(&big, &b1, "completed", WAIT);
    f.wait_export(&big, &b2, "completed", WAIT);
    let (b1_start, b1_end) = times(&f, &big, &b1);
    let (b2_start, _) = times(&f, &big, &b2);
    let (s1_start, s1_end) = times(&f, &small, &s1);
    // RFC 3339 UTC strings of one format compare in time order.
    assert!(
        b1_end <= b2_start,
        "exports of one tenant never overlap: {b1_end} > {b2_start}"
    );
    assert!(s1_start < b1_end && s1_end < b1_end, "small ran while big's first export ran: small {s1_start}..{s1_end}, big {b1_start}..{b1_end}");
}

#[test]
fn cancel_pending_and_running_exports() {
    let mut f = Ferry::new();
    f.sample("big", 40);
    f.start();
    let tok = f.token("big", "tenant_admin");
    let running = f.export(&tok, json!({"profile": "lite"}));
    let pending = f.export(&tok, json!({"profile": "lite"}));
    f.wait_export(&tok, &running, "running", WAIT);
    let r = f.post(
        &format!("/api/v1/workflows/{pending}/cancel"),
        Some(&tok),
        &json!({}),
    );
    assert_eq!(r.status(), 202);
    assert_eq!(f.export_status(&tok, &pending)["status"], "cancelled");
    let r = f.post(
        &format!("/api/v1/workflows/{running}/cancel"),
        Some(&tok),
        &json!({}),
    );
    assert_eq!(r.status(), 202);
    f.wait_export(&tok, &running, "cancelled", Duration::from_secs(30));
    // Cancelling again is refused with a stable code.
    let r = f.post(
        &format!("/api/v1/workflows/{running}/cancel"),
        Some(&tok),
        &json!({}),
    );
    assert_eq!(r.status(), 409);
    let v: Value = r.json().unwrap();
    assert_eq!(v["error"]["code"], "not_cancellable");
    // Nothing was published for either.
    let dir = f.data_dir().join("objects/exports/big");
    let published = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(published, 0, "a cancelled export leaves no bundle");
    assert!(f.outbox().is_empty());
    // The tenant is free again: a new export runs to completion.
    let next = f.export(&tok, json!({"profile": "native"}));
    f.wait_export(&tok, &next, "completed", WAIT);
}

#[test]
fn resume_continues_a_failed_export_from_the_failed_step() {
    let mut f = Ferry::new();
    f.sample("acme", 1);
    f.start();
    let tok = f.token("acme", "tenant_admin");
    // Break the tenant's assets folder (a file where the folder should be):
    // the request is valid, plan and snapshot succeed, the assets step fails.
    let assets = f.data_dir().join("objects/assets/acme");
    let saved = f.data_dir().join("assets.saved");
    std::fs::rename(&assets, &saved).unwrap();
    std::fs::write(&assets, b"not a folder").unwrap();
    let id = f.export(&tok, json!({"profile": "lite", "includeAssets": true}));
    let deadline = std::time::Instant::now() + WAIT;
    let failed = loop {
        let s = f.export_status(&tok, &id);
        if s["status"] == "failed" {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "never failed: {s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(failed["error"]["code"].is_string(), "{failed}");
    assert_eq!(failed["currentStep"], "assets", "{failed}");
    // Repair, then resume: it continues from the assets step.
    std::fs::remove_file(&assets).unwrap();
    std::fs::rename(&saved, &assets).unwrap();
    let r = f.post(
        &format!("/api/v1/workflows/{id}/resume"),
        Some(&tok),
        &json!({}),
    );
    assert_eq!(r.status(), 202);
    let done = f.wait_export(&tok, &id, "completed", WAIT);
    assert_eq!(done["progress"], 100);
    assert!(f.verify(&f.bundle_path("acme", &id)).status.success());
    let events = f.get_json(&format!("/api/v1/workflows/{id}/events"), &tok);
    let types: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"failed.v1") && types.contains(&"resumed.v1"),
        "{types:?}"
    );
    // plan and snapshot ran once: resume started from the failed step.
    let started = |step: &str| {
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "step_started.v1" && e["step"] == step)
            .count()
    };
    assert_eq!((started("plan"), started("snapshot")), (1, 1), "{types:?}");
    // Resuming a completed workflow is refused.
    let r = f.post(
        &format!("/api/v1/workflows/{id}/resume"),
        Some(&tok),
        &json!({}),
    );
    assert_eq!(r.status(), 409);
}
