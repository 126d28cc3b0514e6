//! The API's shapes end to end: a `Location` on every 202, a platform
//! admin's listing of every tenant, and what counts against the daily
//! rehydration limit.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::Ferry;

const WAIT: Duration = Duration::from_secs(60);

fn location(r: &reqwest::blocking::Response) -> String {
    r.headers()
        .get("Location")
        .unwrap_or_else(|| panic!("no Location on {}", r.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// POST; the answer must be 202 with `Location` naming `want`, which answers.
fn accepted_at(f: &Ferry, token: &str, path: &str, body: &Value, want: &str) -> Value {
    let r = f.post(path, Some(token), body);
    assert_eq!(r.status(), 202, "POST {path}");
    assert_eq!(location(&r), want, "POST {path}");
    let v = r.json().unwrap();
    f.get_json(want, token);
    v
}

#[test]
fn every_202_carries_a_location_header_naming_the_workflows_status() {
    let mut f = Ferry::new();
    f.sample("acme", 1);
    f.start();
    let token = f.token("acme", "tenant_admin");
    let r = f.post("/api/v1/tenant/export", Some(&token), &support::lite_body());
    assert_eq!(r.status(), 202);
    let loc = location(&r);
    let export = r.json::<Value>().unwrap()["job"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(loc, format!("/api/v1/tenant/export/{export}/status"));
    f.wait_export(&token, &export, "completed", WAIT);

    let v: Value = f
        .post(
            "/api/v1/tenant/rehydrate",
            Some(&token),
            &json!({"exportId": export}),
        )
        .json()
        .unwrap();
    let id = v["job"]["id"].as_str().unwrap().to_owned();
    let status = format!("/api/v1/tenant/rehydrate/{id}/status");
    f.wait_status(&token, &status, "awaiting_confirmation", WAIT);
    accepted_at(
        &f,
        &token,
        &format!("/api/v1/tenant/rehydrate/{id}/confirm"),
        &json!({"confirm": "DELETE"}),
        &status,
    );
    f.wait_status(&token, &status, "completed", WAIT);
    accepted_at(
        &f,
        &token,
        &format!("/api/v1/tenant/rehydrate/{id}/rollback"),
        &json!({}),
        &status,
    );
    f.wait_status(&token, &status, "rolled_back", WAIT);

    // The generic routes point at the kind's own status too.
    let r = f.post(
        "/api/v1/tenant/rehydrate",
        Some(&token),
        &json!({"exportId": export}),
    );
    assert_eq!(
        location(&r),
        format!(
            "/api/v1/tenant/rehydrate/{}/status",
            r.json::<Value>().unwrap()["job"]["id"].as_str().unwrap()
        )
    );
    let v: Value = f
        .post(
            "/api/v1/tenant/rehydrate",
            Some(&token),
            &json!({"exportId": export}),
        )
        .json()
        .unwrap();
    let other = v["job"]["id"].as_str().unwrap();
    accepted_at(
        &f,
        &token,
        &format!("/api/v1/workflows/{other}/cancel"),
        &json!({}),
        &format!("/api/v1/tenant/rehydrate/{other}/status"),
    );
}

fn listed_tenants(f: &Ferry, token: &str, query: &str, header: Option<&str>) -> Vec<String> {
    let mut r = f
        .client
        .get(f.url(&format!("/api/v1/workflows{query}")))
        .bearer_auth(token);
    if let Some(t) = header {
        r = r.header("X-Tenant-Id", t);
    }
    let r = r.send().unwrap();
    assert_eq!(r.status(), 200, "{query}");
    let v: Value = r.json().unwrap();
    let mut tenants: Vec<String> = v["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["tenantId"].as_str().unwrap().to_owned())
        .collect();
    tenants.sort();
    tenants.dedup();
    tenants
}

#[test]
fn a_platform_admin_without_a_tenant_header_lists_every_tenants_workflows() {
    let mut f = Ferry::new();
    f.sample("acme", 1);
    f.sample("globex", 1);
    f.start();
    let acme = f.token("acme", "tenant_admin");
    let globex = f.token("globex", "tenant_admin");
    let admin = f.token("ops", "platform_admin");
    f.export(&acme, support::lite_body());
    f.export(&globex, support::lite_body());

    assert_eq!(listed_tenants(&f, &admin, "", None), ["acme", "globex"]);
    assert_eq!(
        listed_tenants(&f, &admin, "?tenant=globex", None),
        ["globex"]
    );
    // Acting as one tenant, scoped as before.
    assert_eq!(listed_tenants(&f, &admin, "", Some("acme")), ["acme"]);
    // Tenant admins never see other tenants.
    assert_eq!(listed_tenants(&f, &acme, "", None), ["acme"]);
    assert_eq!(listed_tenants(&f, &acme, "?tenant=acme", None), ["acme"]);
    let r = f.get("/api/v1/workflows?tenant=globex", Some(&acme));
    assert_eq!(r.status(), 403);
    let r = f.get("/api/v1/workflows?tenant=Not%20a%20tenant", Some(&admin));
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().unwrap()["error"]["code"],
        "invalid_tenant"
    );
}

#[test]
fn dry_runs_and_refused_uploads_do_not_count_against_the_daily_rehydration_limit() {
    let mut f = Ferry::new().env("FERRY_REHYDRATIONS_PER_DAY", "1");
    f.sample("acme", 1);
    f.start();
    let token = f.token("acme", "tenant_admin");
    let export = f.export(&token, support::lite_body());
    f.wait_export(&token, &export, "completed", WAIT);
    let rehydrate = |body: Value| f.post("/api/v1/tenant/rehydrate", Some(&token), &body);
    let status_of = |r: reqwest::blocking::Response| location(&r);

    // Two dry runs, both completed.
    for _ in 0..2 {
        let r = rehydrate(json!({"exportId": export, "dryRun": true}));
        assert_eq!(r.status(), 202);
        f.wait_status(&token, &status_of(r), "completed", WAIT);
    }
    // Two uploads validation refuses.
    for _ in 0..2 {
        let r = f.upload_bundle(&token, "", b"not a bundle".to_vec());
        assert_eq!(r.status(), 202);
        f.wait_status(&token, &status_of(r), "failed", WAIT);
    }
    // The one real rehydration of the day is still allowed...
    let r = rehydrate(json!({"exportId": export}));
    assert_eq!(r.status(), 202);
    f.wait_status(&token, &status_of(r), "awaiting_confirmation", WAIT);
    // ...and it counts.
    let r = rehydrate(json!({"exportId": export}));
    assert_eq!(r.status(), 429);
    assert_eq!(r.json::<Value>().unwrap()["error"]["code"], "rate_limited");
}
