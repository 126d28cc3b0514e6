//! The web console, end to end: a real Chromium (Debian's, driven by
//! playwright-core from `tests/console/console.mjs`) against the real
//! `ferry serve`. The browser signs in with a one-time link, exports and
//! downloads, uploads that bundle, reads the preview, types DELETE, watches
//! the load complete and rolls it back, cancels a running workflow, tries
//! another tenant's workflow and a POST without the CSRF token, and takes
//! a screenshot of every page into `docs/console/`. This side checks what
//! the browser reports against ferry's own data: the downloaded file byte
//! for byte against the stored bundle and its checksum, the cookie's flags.
//!
//! The session and CSRF rules are also checked here without a browser, so
//! a failure names the rule rather than a page.

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::Ferry;

const WAIT: Duration = Duration::from_secs(60);

/// `scripts/lib/browser.sh` installs Chromium and playwright-core once and
/// prints playwright-core's entry module.
fn playwright() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .arg(root.join("scripts/lib/browser.sh"))
        .output()
        .expect("run scripts/lib/browser.sh");
    assert!(
        out.status.success(),
        "installing the browser failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn console_link(f: &Ferry, tenant: &str, role: &str) -> String {
    let out = f.cli(&["console-link", "--tenant", tenant, "--role", role]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn shots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn an_operator_runs_the_whole_job_in_a_real_browser() {
    let entry = playwright();
    let mut f = Ferry::new();
    f.sample("acme", 1);
    f.sample("globex", 1);
    f.start();
    let globex = f.token("globex", "tenant_admin");
    let other = f.export(&globex, json!({"profile": "lite"}));
    f.wait_export(&globex, &other, "completed", WAIT);
    let platform = f.token("acme", "platform_admin");

    // A second server whose validation holds for a minute: a workflow
    // that is running when the browser cancels it.
    let mut slow = Ferry::new().env("FERRY_FAILPOINTS", "rehydrate.validate.before=sleep:60000");
    slow.sample("acme", 1);
    slow.start();
    let slow_token = slow.token("acme", "tenant_admin");
    let slow_export = slow.export(&slow_token, json!({"profile": "lite"}));
    slow.wait_export(&slow_token, &slow_export, "completed", WAIT);
    let r = slow
        .client
        .post(slow.url("/api/v1/tenant/rehydrate"))
        .bearer_auth(&slow_token)
        .json(&json!({"exportId": slow_export, "dryRun": true}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let slow_id = r.json::<Value>().unwrap()["job"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let downloads = tempfile::tempdir().unwrap();
    let out = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/console/console.mjs"))
        .env("PLAYWRIGHT_CORE", &entry)
        .env("CHROMIUM", "/usr/bin/chromium")
        .env("FERRY_URL", f.url(""))
        .env("CONSOLE_LINK", console_link(&f, "acme", "tenant_admin"))
        .env("PLATFORM_TOKEN", &platform)
        .env("OTHER_TENANT_WORKFLOW", &other)
        .env("SLOW_URL", slow.url(""))
        .env("SLOW_TOKEN", &slow_token)
        .env("SLOW_WORKFLOW", &slow_id)
        .env("SHOTS_DIR", shots_dir())
        .env("DOWNLOAD_DIR", downloads.path())
        .output()
        .expect("run node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let seen: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("the browser test printed no JSON ({e}):\n{stderr}"));
    assert!(out.status.success(), "{stderr}\nseen: {seen:#}");

    // The session cookie: HttpOnly, SameSite=Strict, not Secure over http.
    assert_eq!(seen["cookie"]["httpOnly"], true, "{seen}");
    assert_eq!(seen["cookie"]["sameSite"], "Strict", "{seen}");
    assert_eq!(seen["cookie"]["secure"], false, "{seen}");
    assert!(
        seen["secondUse"].as_str().unwrap().contains("ticket_spent"),
        "{seen}"
    );

    // The export form offered the tenant's own tables.
    let tables = f.get_json("/api/v1/tenant/tables", &f.token("acme", "tenant_admin"));
    assert_eq!(seen["exportTables"], tables["tables"]);

    // The download: the proper file name, and the stored bundle byte for
    // byte, whose blake3 the page showed.
    let export_id = seen["exportId"].as_str().unwrap();
    let name = seen["downloadName"].as_str().unwrap();
    let pattern = regex::Regex::new(r"^export_acme_[0-9TZ:-]+\.zip$").unwrap();
    assert!(pattern.is_match(name), "file name {name}");
    assert_eq!(seen["exportFileName"], name);
    let downloaded = std::fs::read(seen["downloadPath"].as_str().unwrap()).unwrap();
    let stored = std::fs::read(f.bundle_path("acme", export_id)).unwrap();
    assert!(downloaded == stored, "the download is the stored bundle");
    assert_eq!(
        seen["exportChecksum"],
        blake3::hash(&downloaded).to_hex().as_str()
    );
    assert_eq!(
        seen["firstListed"], export_id,
        "the newest export listed first"
    );

    // The rehydration ran through the browser and was rolled back.
    let token = f.token("acme", "tenant_admin");
    let id = seen["rehydrateId"].as_str().unwrap();
    let s = f.get_json(&format!("/api/v1/tenant/rehydrate/{id}/status"), &token);
    assert_eq!(s["status"], "rolled_back", "{s}");
    assert_eq!(s["mode"], "replace", "{s}");
    assert!(!seen["previewTables"].as_array().unwrap().is_empty());

    // Another tenant's id is not found; no CSRF token, no state change.
    assert!(seen["otherTenant"].as_str().unwrap().contains("not_found"));
    assert_eq!(seen["noCsrf"]["status"], 403, "{seen}");
    assert_eq!(
        seen["noCsrf"]["body"]["error"]["code"],
        "csrf_token_missing"
    );
    assert_eq!(seen["badCsrf"]["status"], 403, "{seen}");
    assert_eq!(
        seen["badCsrf"]["body"]["error"]["code"],
        "csrf_token_invalid"
    );
    let e = f.get_json(&format!("/api/v1/workflows/{export_id}"), &token);
    assert!(!e["cancelRequested"].as_bool().unwrap_or(false), "{e}");

    // Signed out: the cookie no longer authenticates.
    assert_eq!(seen["afterSignout"], 401, "{seen}");
    assert!(seen["auditState"]
        .as_str()
        .unwrap()
        .contains("chain verified"));
    // Keyboard use: Tab reaches a control, and its focus ring shows.
    assert!(
        !seen["firstTab"]["text"].as_str().unwrap_or("").is_empty(),
        "{seen}"
    );
    assert_ne!(seen["firstTab"]["outline"], "none", "{seen}");

    // The running workflow was cancelled from the browser.
    assert_eq!(seen["cancelled"], true);
    let s = slow.get_json(&format!("/api/v1/workflows/{slow_id}"), &slow_token);
    assert_eq!(s["status"], "cancelled", "{s}");

    // A screenshot of every page.
    for page in [
        "signin",
        "export",
        "export-completed",
        "workflows",
        "rehydrate",
        "rehydrate-preview",
        "rehydrate-confirm",
        "rehydrate-completed",
        "rehydrate-rolled-back",
        "platform-workflows",
        "platform-tenants",
        "platform-audit",
        "workflow-running",
    ] {
        let shot = shots_dir().join(format!("{page}.png"));
        let bytes = std::fs::read(&shot).unwrap_or_default();
        assert!(
            bytes.starts_with(b"\x89PNG"),
            "no screenshot {}",
            shot.display()
        );
    }
}

/// The session rules, without a browser: a pasted token becomes an
/// HttpOnly, SameSite=Strict cookie; the cookie authenticates reads; a
/// state change needs the session's CSRF token; a ticket is not a token
/// and signs in once.
#[test]
fn console_sessions_need_the_csrf_token_to_change_state_and_tickets_sign_in_once() {
    let mut f = Ferry::new();
    f.sample("acme", 1);
    f.start();
    let token = f.token("acme", "tenant_admin");
    let id = f.export(&token, json!({"profile": "lite"}));
    f.wait_export(&token, &id, "completed", WAIT);

    // The console's page itself, and `/` leading to it.
    let r = f.client.get(f.url("/")).send().unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/");
    let r = f.client.get(f.url("/console/")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    assert!(r.text().unwrap().contains("/console/app.js"));
    let r = f.client.get(f.url("/console/nope.js")).send().unwrap();
    assert_eq!(r.status(), 404);

    let signin = |body: Value| {
        f.client
            .post(f.url("/console/signin"))
            .json(&body)
            .send()
            .unwrap()
    };
    let r = signin(json!({"token": token}));
    assert_eq!(r.status(), 200);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(flag), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "{set_cookie}");
    let session: Value = r.json().unwrap();
    let csrf = session["csrfToken"].as_str().unwrap().to_owned();
    assert_eq!(session["tenant"], "acme");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    // Reads with the cookie work; state changes need the CSRF header.
    let r = f
        .client
        .get(f.url(&format!("/api/v1/workflows/{id}")))
        .header("Cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let post = |path: &str, csrf: Option<&str>| {
        let mut req = f.client.post(f.url(path)).header("Cookie", &cookie);
        if let Some(c) = csrf {
            req = req.header("X-CSRF-Token", c);
        }
        req.send().unwrap()
    };
    let code = |r: reqwest::blocking::Response| -> (u16, String) {
        let status = r.status().as_u16();
        let body: Value = r.json().unwrap_or(Value::Null);
        (
            status,
            body["error"]["code"].as_str().unwrap_or("").to_owned(),
        )
    };
    let resume = format!("/api/v1/workflows/{id}/resume");
    assert_eq!(
        code(post(&resume, None)),
        (403, "csrf_token_missing".into())
    );
    assert_eq!(
        code(post(&resume, Some("not-hex"))),
        (403, "csrf_token_invalid".into())
    );
    // With the token the request reaches the handler (a completed export
    // is not resumable: 409, not 403).
    assert_eq!(code(post(&resume, Some(&csrf))).0, 409);
    // A bearer token needs no CSRF token (no browser sends it by itself).
    let r = f
        .client
        .post(f.url(&resume))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 409);

    // A one-time link: not a bearer token, signs in exactly once.
    let link = console_link(&f, "acme", "tenant_admin");
    let ticket = link.split("ticket=").nth(1).unwrap().to_owned();
    assert!(
        link.starts_with(&f.url("/console/#/signin?ticket=")),
        "{link}"
    );
    let r = f
        .client
        .get(f.url("/api/v1/workflows"))
        .bearer_auth(&ticket)
        .send()
        .unwrap();
    assert_eq!(r.status(), 401, "a ticket is not a token");
    let r = signin(json!({"token": ticket}));
    assert_eq!(r.status(), 401, "nor is it a pasted token");
    let r = signin(json!({"ticket": ticket}));
    assert_eq!(r.status(), 200);
    let r = signin(json!({"ticket": ticket}));
    assert_eq!(code(r), (401, "ticket_spent".into()));
    // A token is no ticket, and garbage is refused with the envelope.
    assert_eq!(code(signin(json!({"ticket": token}))).0, 401);
    assert_eq!(
        code(signin(json!({"token": "x", "ticket": "y"}))),
        (400, "invalid_body".into())
    );
    assert_eq!(code(signin(json!({"token": "garbage"}))).0, 401);
    let out = f.cli(&["console-link", "--tenant", "acme", "--ttl-minutes", "0"]);
    assert!(!out.status.success());

    // Sign-out needs the CSRF token too, and clears the cookie.
    assert_eq!(code(post("/console/signout", None)).0, 403);
    let r = post("/console/signout", Some(&csrf));
    assert_eq!(r.status(), 204);
    let gone = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(gone.contains("Max-Age=0"), "{gone}");
}
