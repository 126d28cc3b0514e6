//! Security and bad input over HTTP: authentication, tenant isolation of
//! workflow ids, stable error codes for malformed requests, and download
//! links that refuse any change to path, signature or expiry.

#[path = "security/audit.rs"]
mod audit;
mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::*;

fn code(r: reqwest::blocking::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let v: Value = r.json().unwrap_or(Value::Null);
    (
        status,
        v["error"]["code"].as_str().unwrap_or("<none>").to_owned(),
    )
}

#[test]
fn authentication_and_roles() {
    let mut f = Ferry::new();
    f.start();
    assert_eq!(
        code(f.post("/api/v1/tenant/export", None, &json!({"profile": "lite"}))),
        (401, "unauthorized".into())
    );
    assert_eq!(
        code(f.get("/api/v1/workflows", None)),
        (401, "unauthorized".into())
    );
    assert_eq!(
        code(f.get("/api/v1/workflows", Some("not-a-jwt"))),
        (401, "unauthorized".into())
    );
    // A token signed with another key.
    let other = Ferry::new();
    let foreign = other.token("acme", "tenant_admin");
    assert_eq!(
        code(f.get("/api/v1/workflows", Some(&foreign))),
        (401, "unauthorized".into())
    );
    // A tenant admin may not name another tenant.
    let tok = f.token("acme", "tenant_admin");
    let r = f
        .client
        .get(f.url("/api/v1/workflows"))
        .bearer_auth(&tok)
        .header("X-Tenant-Id", "globex")
        .send()
        .unwrap();
    assert_eq!(code(r), (403, "forbidden".into()));
    // Health and metrics are open.
    assert_eq!(f.get("/healthz", None).status(), 200);
    assert_eq!(f.get("/metrics", None).status(), 200);
}

#[test]
fn one_tenant_cannot_see_download_or_cancel_another_tenants_export() {
    let mut f = Ferry::new();
    f.sample("acme", 1);
    f.sample("globex", 1);
    f.start();
    let acme = f.token("acme", "tenant_admin");
    let globex = f.token("globex", "tenant_admin");
    let id = f.export(&acme, json!({"profile": "lite"}));
    f.wait_export(&acme, &id, "completed", Duration::from_secs(120));
    for path in [
        format!("/api/v1/tenant/export/{id}/status"),
        format!("/api/v1/tenant/export/{id}/download"),
        format!("/api/v1/workflows/{id}"),
        format!("/api/v1/workflows/{id}/events"),
    ] {
        assert_eq!(
            code(f.get(&path, Some(&globex))),
            (404, "not_found".into()),
            "{path}"
        );
    }
    for path in [
        format!("/api/v1/workflows/{id}/cancel"),
        format!("/api/v1/workflows/{id}/resume"),
    ] {
        assert_eq!(
            code(f.post(&path, Some(&globex), &json!({}))),
            (404, "not_found".into()),
            "{path}"
        );
    }
    let list = f.get_json("/api/v1/workflows", &globex);
    assert_eq!(list["workflows"].as_array().unwrap().len(), 0);
    let audit = f.get_json("/api/v1/audit", &globex);
    assert_eq!(
        audit["entries"].as_array().unwrap().len(),
        0,
        "no audit entries of acme leak to globex"
    );
    // A platform admin may act on acme by naming it, and that is audited.
    let admin = f.token("ops", "platform_admin");
    let r = f
        .client
        .get(f.url(&format!("/api/v1/tenant/export/{id}/status")))
        .bearer_auth(&admin)
        .header("X-Tenant-Id", "acme")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // Unknown and malformed ids look the same as another tenant's.
    assert_eq!(
        code(f.get(
            "/api/v1/workflows/00000000-0000-7000-8000-000000000000",
            Some(&acme)
        )),
        (404, "not_found".into())
    );
    assert_eq!(
        code(f.get("/api/v1/workflows/not-a-uuid", Some(&acme))),
        (404, "not_found".into())
    );
}

#[test]
fn bad_requests_get_400_with_stable_codes_and_create_nothing() {
    let mut f = Ferry::new();
    f.sample("acme", 1);
    f.start();
    let tok = f.token("acme", "tenant_admin");
    let cases: Vec<(&str, &str)> = vec![
        ("{", "invalid_body"),
        ("[]", "invalid_body"),
        ("\"lite\"", "invalid_body"),
        (r#"{"profile": 7}"#, "invalid_profile"),
        (r#"{}"#, "invalid_profile"),
        (r#"{"profile": "excel"}"#, "invalid_profile"),
        (
            r#"{"profile": "lite", "includeAssets": "yes"}"#,
            "invalid_body",
        ),
        (
            r#"{"profile": "analytics", "dateRange": {"from": "2026-13-01", "to": "2026-01-31"}}"#,
            "invalid_date_range",
        ),
        (
            r#"{"profile": "analytics", "dateRange": {"from": "2026-02-01", "to": "2026-01-31"}}"#,
            "invalid_date_range",
        ),
        (
            r#"{"profile": "analytics", "dateRange": {"from": "yesterday", "to": "2026-01-31"}}"#,
            "invalid_date_range",
        ),
        (r#"{"profile": "lite", "tables": []}"#, "invalid_tables"),
        (
            r#"{"profile": "lite", "tables": ["no_such_table"]}"#,
            "unknown_table",
        ),
        (
            r#"{"profile": "lite", "tenantId": "globex"}"#,
            "invalid_body",
        ),
    ];
    for (body, want) in cases {
        let (status, got) = code(f.post_raw("/api/v1/tenant/export", &tok, body));
        assert_eq!((status, got.as_str()), (400, want), "body {body}");
    }
    let list = f.get_json("/api/v1/workflows", &tok);
    assert_eq!(
        list["workflows"].as_array().unwrap().len(),
        0,
        "no bad request created a workflow"
    );
    // Bad tenant ids: in a platform admin's X-Tenant-Id, and in a token.
    let admin = f.token("ops", "platform_admin");
    for bad in ["ACME", "../etc", "a b", "-x", &"a".repeat(64)] {
        let r = f
            .client
            .get(f.url("/api/v1/workflows"))
            .bearer_auth(&admin)
            .header("X-Tenant-Id", bad)
            .send()
            .unwrap();
        assert_eq!(code(r), (400, "invalid_tenant_id".into()), "{bad:?}");
    }
    let out = f.cli(&["token", "--tenant", "Bad Tenant", "--role", "tenant_admin"]);
    assert!(!out.status.success(), "ferry token refuses a bad tenant id");
    // A tenant with no data.
    let ghost = f.token("ghost", "tenant_admin");
    assert_eq!(
        code(f.post(
            "/api/v1/tenant/export",
            Some(&ghost),
            &json!({"profile": "lite"})
        )),
        (404, "tenant_not_found".into())
    );
    // Bad query parameters.
    assert_eq!(
        code(f.get("/api/v1/workflows?status=bogus", Some(&tok))),
        (400, "invalid_status".into())
    );
    assert_eq!(
        code(f.get("/api/v1/workflows?limit=0", Some(&tok))),
        (400, "invalid_limit".into())
    );
    assert_eq!(
        code(f.get("/api/v1/workflows?after=zzz", Some(&tok))),
        (400, "invalid_cursor".into())
    );
    // An oversize body.
    let big = format!(
        r#"{{"profile": "lite", "tables": ["{}"]}}"#,
        "x".repeat(200_000)
    );
    assert_eq!(code(f.post_raw("/api/v1/tenant/export", &tok, &big)).0, 413);
}

#[test]
fn download_links_refuse_any_change() {
    let mut f = Ferry::new();
    f.sample("acme", 1);
    f.sample("acme2", 1);
    f.start();
    let tok = f.token("acme", "tenant_admin");
    let id = f.export(&tok, json!({"profile": "lite"}));
    f.wait_export(&tok, &id, "completed", Duration::from_secs(120));
    let link = link_in_email(&f.outbox()[0]).unwrap();
    assert_eq!(f.client.get(f.url(&link)).send().unwrap().status(), 200);
    let (path, query) = link.split_once('?').unwrap();
    let exp: i64 = query
        .split('&')
        .find_map(|p| p.strip_prefix("exp="))
        .unwrap()
        .parse()
        .unwrap();
    let sig = query
        .split('&')
        .find_map(|p| p.strip_prefix("sig="))
        .unwrap()
        .to_owned();
    let mut flipped_sig = sig.clone().into_bytes();
    flipped_sig[0] = if flipped_sig[0] == b'0' { b'1' } else { b'0' };
    let flipped_sig = String::from_utf8(flipped_sig).unwrap();
    let other_id = "00000000-0000-7000-8000-000000000000";
    let tampered = [
        format!("{}?exp={exp}&sig={sig}", path.replace("/acme/", "/acme2/")),
        format!("{}?exp={exp}&sig={sig}", path.replace(&id, other_id)),
        format!("{path}?exp={}&sig={sig}", exp + 3600),
        format!("{path}?exp={}&sig={sig}", exp - 100_000),
        format!("{path}?exp={exp}&sig={flipped_sig}"),
        format!("{path}?exp={exp}"),
        format!("{path}?exp={exp}&sig="),
        path.to_owned(),
    ];
    for t in tampered {
        let r = f.client.get(f.url(&t)).send().unwrap();
        let status = r.status().as_u16();
        assert!(status == 403 || status == 400, "{t} -> {status}");
        let body = r.text().unwrap();
        assert!(!body.contains("PK"), "no bundle bytes for {t}");
    }
    let audit = f.get_json("/api/v1/audit?action=EXPORT_DOWNLOADED", &tok);
    assert_eq!(
        audit["entries"].as_array().unwrap().len(),
        1,
        "refused links serve and audit nothing as a download"
    );
}
