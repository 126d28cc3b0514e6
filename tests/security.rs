//! Security and bad input over HTTP: authentication, tenant isolation of
//! workflow ids, stable error codes for malformed requests (always the JSON
//! envelope), idempotency keys bound to their request, download links that
//! refuse any change to path, signature or expiry and never outlive the
//! bundle, and bundles re-signed with non-canonical rows refused before
//! anything is deleted.

#[path = "security/audit.rs"]
mod audit;
mod support;
#[path = "../workflows/tests/validate_support/mod.rs"]
mod validate_support;

use ferry_workflows::bundle::BundleSigner;
use serde_json::{json, Value};
use std::time::Duration;
use support::*;
use validate_support::Fixture;

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
        code(f.get("/api/v1/workflows?kind=bogus", Some(&tok))),
        (400, "invalid_kind".into())
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

/// The error body of a response: its status, code and message, and whether
/// it came as JSON.
fn envelope(r: reqwest::blocking::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let json = r
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let text = r.text().unwrap();
    assert!(json, "{status} is not JSON: {text:?}");
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let code = v["error"]["code"].as_str().unwrap_or("<none>").to_owned();
    let message = v["error"]["message"].as_str().unwrap_or("").to_owned();
    assert!(!message.is_empty(), "{status} {code} without a message");
    (status, code, message)
}

#[test]
fn idempotency_key_reused_with_another_body_is_refused() {
    let mut f = Ferry::new();
    f.sample("acme", 1);
    f.start();
    let tok = f.token("acme", "tenant_admin");
    let send = |body: &Value| {
        f.client
            .post(f.url("/api/v1/tenant/export"))
            .bearer_auth(&tok)
            .header("Idempotency-Key", "monthly-2026-12")
            .json(body)
            .send()
            .unwrap()
    };
    let first = send(&json!({"profile": "lite"}));
    assert_eq!(first.status(), 202);
    let first: Value = first.json().unwrap();
    // The same body: the stored job exactly.
    let again = send(&json!({"profile": "lite"}));
    assert_eq!(again.status(), 202);
    let again: Value = again.json().unwrap();
    assert_eq!(again["job"]["id"], first["job"]["id"]);
    assert_eq!(again["job"]["profile"], "lite");
    assert_eq!(again["job"]["requestedAt"], first["job"]["requestedAt"]);
    // Another body: refused, not answered with the first job.
    let (status, code, _) = envelope(send(&json!({"profile": "native"})));
    assert_eq!((status, code.as_str()), (409, "idempotency_key_reused"));
    let (status, code, _) = envelope(send(&json!({"profile": "lite", "includeAssets": true})));
    assert_eq!((status, code.as_str()), (409, "idempotency_key_reused"));
    // The same request written differently (the default spelled out) is
    // the same request.
    let same = send(&json!({"profile": "lite", "includeAssets": false}));
    assert_eq!(same.status(), 202);
    assert_eq!(
        same.json::<Value>().unwrap()["job"]["id"],
        first["job"]["id"]
    );
    let list = f.get_json("/api/v1/workflows", &tok);
    assert_eq!(list["workflows"].as_array().unwrap().len(), 1);
}

#[test]
fn error_envelopes_are_json_with_documented_codes() {
    let mut f = Ferry::new()
        .env("FERRY_EXPORTS_PER_DAY", "1")
        .env("FERRY_REHYDRATIONS_PER_DAY", "5");
    f.sample("acme", 1);
    f.start();
    let tok = f.token("acme", "tenant_admin");
    // An export body over 64 KiB.
    let big = format!(
        r#"{{"profile": "lite", "tables": ["{}"]}}"#,
        "x".repeat(70_000)
    );
    let (status, code, _) = envelope(f.post_raw("/api/v1/tenant/export", &tok, &big));
    assert_eq!((status, code.as_str()), (413, "payload_too_large"));
    // A rehydration JSON body over its limit.
    let huge = format!(
        r#"{{"exportId": "x", "tables": ["{}"]}}"#,
        "x".repeat(100_000)
    );
    let (status, code, _) = envelope(f.post_raw("/api/v1/tenant/rehydrate", &tok, &huge));
    assert_eq!((status, code.as_str()), (413, "payload_too_large"));
    // Query strings: a code per parameter, no parser text.
    for (path, want) in [
        ("/api/v1/workflows?limit=-1", "invalid_limit"),
        ("/api/v1/workflows?limit=ten", "invalid_limit"),
        ("/api/v1/workflows?after=garbage", "invalid_cursor"),
        ("/api/v1/workflows?kind=bogus", "invalid_kind"),
        ("/api/v1/workflows?bogus=1", "invalid_query"),
        ("/api/v1/audit?after=garbage", "invalid_query"),
        ("/api/v1/audit?limit=-1", "invalid_query"),
    ] {
        let (status, code, message) = envelope(f.get(path, Some(&tok)));
        assert_eq!((status, code.as_str()), (400, want), "{path}");
        for internal in ["invalid digit", "expected", "usize", "u64", "deserialize"] {
            assert!(!message.contains(internal), "{path}: {message}");
        }
    }
    // A refused method and a confirmation body over actix's own limit.
    let (status, code, _) = envelope(
        f.client
            .delete(f.url("/api/v1/tenant/export"))
            .bearer_auth(&tok)
            .send()
            .unwrap(),
    );
    assert!(status == 404 || status == 405, "{status}");
    assert!(
        code == "not_found" || code == "method_not_allowed",
        "{code}"
    );
    let id = "00000000-0000-7000-8000-000000000000";
    let (status, code, _) = envelope(f.post_raw(
        &format!("/api/v1/tenant/rehydrate/{id}/confirm"),
        &tok,
        &"x".repeat(300_000),
    ));
    assert!(
        (status, code.as_str()) == (413, "payload_too_large")
            || (status, code.as_str()) == (404, "not_found"),
        "{status} {code}"
    );
    // 429 says when to retry.
    f.export(&tok, json!({"profile": "lite"}));
    let r = f.post(
        "/api/v1/tenant/export",
        Some(&tok),
        &json!({"profile": "lite"}),
    );
    let retry: u64 = r
        .headers()
        .get("Retry-After")
        .expect("Retry-After on 429")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    let (status, code, _) = envelope(r);
    assert_eq!((status, code.as_str()), (429, "rate_limited"));
}

#[test]
fn merge_key_for_a_table_the_rehydration_does_not_load_is_refused() {
    let mut f = Ferry::new();
    f.sample("acme", 1);
    f.start();
    let tok = f.token("acme", "tenant_admin");
    let id = f.export(&tok, json!({"profile": "lite"}));
    f.wait_export(&tok, &id, "completed", Duration::from_secs(120));
    let body = json!({"exportId": id, "mode": "merge", "dryRun": true,
        "mergeKeys": {"no_such_table": ["id"]}});
    let (status, code, message) = envelope(f.post("/api/v1/tenant/rehydrate", Some(&tok), &body));
    assert_eq!((status, code.as_str()), (400, "invalid_merge_keys"));
    assert!(message.contains("no_such_table"), "{message}");
    // In the query string of an upload, too, before the upload is kept.
    let bundle = std::fs::read(f.bundle_path("acme", &id)).unwrap();
    let (status, code, _) = envelope(f.upload_bundle(
        &tok,
        "?mode=merge&dryRun=true&mergeKey.no_such_table=id",
        bundle,
    ));
    assert_eq!((status, code.as_str()), (400, "invalid_merge_keys"));
    let list = f.get_json("/api/v1/workflows?kind=rehydrate", &tok);
    assert_eq!(list["workflows"].as_array().unwrap().len(), 0);
}

#[test]
fn notification_states_the_real_link_expiry_when_the_bundle_ttl_is_shorter() {
    let mut f = Ferry::new().env("FERRY_BUNDLE_TTL_SECS", "3600");
    f.sample("acme", 1);
    f.start();
    let tok = f.token("acme", "tenant_admin");
    let id = f.export(&tok, json!({"profile": "lite"}));
    let status = f.wait_export(&tok, &id, "completed", Duration::from_secs(120));
    let mail = f.outbox().remove(0).replace("=\r\n", "").replace("=\n", "");
    let link = link_in_email(&mail).unwrap();
    let exp: i64 = link
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("exp="))
        .unwrap()
        .parse()
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        exp <= now + 3600,
        "the link outlives the bundle: {exp} vs {now}"
    );
    assert!(exp > now + 3000, "{exp} vs {now}");
    let until = chrono::DateTime::from_timestamp(exp, 0)
        .unwrap()
        .format("%Y-%m-%d %H:%M UTC")
        .to_string();
    assert!(mail.contains(&until), "the mail names {until}: {mail}");
    let expires_at = chrono::DateTime::parse_from_rfc3339(status["expiresAt"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert!(exp <= expires_at, "{exp} after the bundle's {expires_at}");
}

/// Re-sign `bundle` with the server's key after `edit` changed its first
/// table with rows; the new bundle's bytes.
fn resigned(f: &Ferry, bundle: &std::path::Path, edit: impl Fn(&str) -> String) -> Vec<u8> {
    let hex_seed = std::fs::read_to_string(f.data_dir().join("keys/signing.key")).unwrap();
    let seed: [u8; 32] = hex::decode(hex_seed.trim()).unwrap().try_into().unwrap();
    let signer = BundleSigner::from_seed(seed);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut fixture = rt.block_on(Fixture::from_bundle(bundle));
    let file = fixture
        .files
        .iter_mut()
        .find(|f| f.table.is_some() && f.rows.unwrap_or(0) > 0)
        .expect("a table with rows");
    let text = String::from_utf8(file.data.clone()).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    let changed = edit(first);
    let a: Value = serde_json::from_str(first).unwrap();
    let b: Value = serde_json::from_str(&changed).unwrap();
    assert_eq!(a, b, "the same row, written differently");
    file.data = format!("{changed}\n{rest}").into_bytes();
    let dir = tempfile::tempdir().unwrap();
    let out = rt.block_on(fixture.write(dir.path(), &signer));
    std::fs::read(out).unwrap()
}

/// A rewrite of one NDJSON line.
type Edit = fn(&str) -> String;

/// `{"a":"xyz"}` → `{"a":"\u0078yz"}`: the first string value that starts
/// with an ASCII letter, its first letter escaped.
fn escape_first_letter(line: &str) -> String {
    let at = line
        .match_indices(":\"")
        .map(|(i, _)| i + 2)
        .find(|&i| line.as_bytes().get(i).is_some_and(u8::is_ascii_alphabetic))
        .expect("a string value");
    let c = line.as_bytes()[at];
    format!("{}\\u{:04x}{}", &line[..at], c, &line[at + 1..])
}

#[test]
fn validation_refuses_a_re_signed_bundle_with_non_canonical_rows() {
    let mut f = Ferry::new().env("FERRY_REHYDRATIONS_PER_DAY", "100");
    f.sample("acme", 1);
    f.start();
    let tok = f.token("acme", "tenant_admin");
    let (id, before) = content_of(&f, &tok, "acme");
    let bundle = f.bundle_path("acme", &id);
    let status_of = |id: &str| format!("/api/v1/tenant/rehydrate/{id}/status");
    let upload = |query: &str, body: Vec<u8>| -> String {
        let r = f.upload_bundle(&tok, query, body);
        assert_eq!(r.status(), 202);
        let v: Value = r.json().unwrap();
        v["job"]["id"].as_str().unwrap().to_owned()
    };
    // The control: re-signed unchanged, it validates.
    let control = upload("?dryRun=true", resigned(&f, &bundle, str::to_owned));
    f.wait_status(
        &tok,
        &status_of(&control),
        "completed",
        Duration::from_secs(120),
    );
    let cases: [(&str, Edit); 2] = [
        ("whitespace", |l| l.replacen("\":", "\": ", 1)),
        ("escaped unicode", escape_first_letter),
    ];
    for (what, edit) in cases {
        let body = resigned(&f, &bundle, |l| {
            let changed = edit(l);
            assert_ne!(changed, l, "{what}");
            changed
        });
        // Not a dry run: refused at validate, before any confirmation.
        let id = upload("", body);
        let s = f.wait_status(&tok, &status_of(&id), "failed", Duration::from_secs(120));
        assert_eq!(s["error"]["code"], "row_not_canonical", "{what}: {s}");
        let events = f.get_json(&format!("/api/v1/workflows/{id}/events"), &tok);
        let steps: Vec<&str> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["step"].as_str())
            .collect();
        for destructive in ["quiesce", "backup", "load"] {
            assert!(!steps.contains(&destructive), "{what}: {destructive} ran");
        }
    }
    assert_eq!(
        content_of(&f, &tok, "acme").1,
        before,
        "the tenant is unchanged"
    );
}

/// Every response body about workflows (the workflow, its status, its
/// events, resume and cancel) and the keys that held server paths in step
/// outputs.
fn assert_no_server_path(f: &Ferry, what: &str, body: &Value) {
    let text = body.to_string();
    let data_dir = f.data_dir().to_string_lossy().into_owned();
    assert!(
        !text.contains(&data_dir),
        "{what} shows the server's data directory {data_dir}: {text}"
    );
    fn keys(v: &Value, found: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if ["bundlePath", "schemaFile", "file"].contains(&k.as_str()) {
                        found.push(k.clone());
                    }
                    keys(v, found);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| keys(v, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    keys(body, &mut found);
    assert!(
        found.is_empty(),
        "{what} has server path keys {found:?}: {text}"
    );
}

#[test]
fn server_file_system_paths_appear_in_no_workflow_or_event_body() {
    let mut f = Ferry::new();
    f.sample("acme", 1);
    f.start();
    let token = f.token("acme", "tenant_admin");
    let export = f.export(&token, json!({"profile": "lite"}));
    f.wait_export(&token, &export, "completed", Duration::from_secs(60));
    // A rehydration of that export, confirmed and completed: its outputs
    // named the extracted files.
    let r = f.post(
        "/api/v1/tenant/rehydrate",
        Some(&token),
        &json!({"exportId": export}),
    );
    assert_eq!(r.status(), 202);
    let v: Value = r.json().unwrap();
    let rehydrate = v["job"]["id"].as_str().unwrap().to_owned();
    let status = format!("/api/v1/tenant/rehydrate/{rehydrate}/status");
    f.wait_status(
        &token,
        &status,
        "awaiting_confirmation",
        Duration::from_secs(60),
    );
    let r = f.post(
        &format!("/api/v1/tenant/rehydrate/{rehydrate}/confirm"),
        Some(&token),
        &json!({"confirm": "DELETE"}),
    );
    assert!(r.status().is_success(), "{}", r.text().unwrap());
    f.wait_status(&token, &status, "completed", Duration::from_secs(60));

    let mut paths = vec![
        "/api/v1/workflows".to_owned(),
        format!("/api/v1/tenant/export/{export}/status"),
        status.clone(),
        format!("/api/v1/tenant/rehydrate/{rehydrate}/preview"),
        "/api/v1/audit?limit=1000".to_owned(),
    ];
    for id in [&export, &rehydrate] {
        paths.push(format!("/api/v1/workflows/{id}"));
        paths.push(format!("/api/v1/workflows/{id}/events"));
    }
    for path in &paths {
        let body = f.get_json(path, &token);
        assert_no_server_path(&f, path, &body);
    }
    // The events did hold the outputs (the check above is not vacuous).
    let events = f.get_json(&format!("/api/v1/workflows/{rehydrate}/events"), &token);
    assert!(
        events.to_string().contains("rowsChecked"),
        "no validate output in {events}"
    );
    // Resume and cancel answer with the workflow too.
    let r = f.post(
        &format!("/api/v1/workflows/{export}/cancel"),
        Some(&token),
        &json!({}),
    );
    let body: Value = r.json().unwrap_or(Value::Null);
    assert_no_server_path(&f, "cancel", &body);
}
