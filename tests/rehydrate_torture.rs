//! Rehydration of tenants that use every PostgreSQL feature real tenants
//! use (`tests/fixtures/torture`: partitions with keys on the partitions,
//! sub-partitions, a foreign-key cycle, generated and identity columns,
//! shared sequences, enums, domains, composite and range types, arrays,
//! numeric NaN and infinities, triggers that rewrite rows or write audit
//! rows, row-level security, views and materialized views, a table without
//! a primary key, inheritance, unlogged and TOASTed tables, awkward names),
//! through the real binary, lite and native, in schema, database and row
//! isolation.
//!
//! The oracle is PostgreSQL's, not ferry's: the fixture's `hash.sql`
//! prints, per relation (every partition leaf, inheritance parent and child
//! apart, the materialized view), the row count and the md5 of its rows'
//! text, computed by the server. A rehydration must bring every line back
//! exactly (so generated columns are equal, no trigger fired on a restored
//! row, the materialized view was refreshed); sequences must not move
//! back. A rehydration that fails in the middle of its load must leave
//! every line exactly as it was before it started.
//!
//! These tests choose their PostgreSQL isolation mode themselves, so they
//! run in the main test run whatever `FERRY_E2E_BACKEND` says.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use support::{psql, Ferry};

const WAIT: Duration = Duration::from_secs(300);
const TENANT: &str = "torture";
const OTHER: &str = "bystander";

fn fixture(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/torture")
        .join(file)
}

/// Run a fixture script with psql variables.
fn run_script(url: &str, file: &str, vars: &[(&str, &str)]) -> String {
    let mut cmd = Command::new("psql");
    cmd.arg(url).args(["-X", "-q", "-v", "ON_ERROR_STOP=1"]);
    for (k, v) in vars {
        cmd.args(["-v", &format!("{k}={v}")]);
    }
    let out = cmd.arg("-f").arg(fixture(file)).output().expect("psql");
    assert!(
        out.status.success(),
        "psql -f {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The oracle's lines: relation → (rows, md5); sequence → last value.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Content {
    relations: BTreeMap<String, String>,
    sequences: BTreeMap<String, i64>,
}

fn parse(out: &str) -> Content {
    let mut c = Content {
        relations: BTreeMap::new(),
        sequences: BTreeMap::new(),
    };
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let (name, rest) = line.split_once('|').expect("name|...");
        if let Some(seq) = name.strip_prefix("seq:") {
            let value = rest.split('|').next().unwrap().parse().unwrap();
            c.sequences.insert(seq.to_owned(), value);
        } else {
            c.relations.insert(name.to_owned(), rest.to_owned());
        }
    }
    assert!(!c.relations.is_empty(), "hash.sql printed nothing: {out}");
    c
}

/// One isolation mode's way of laying out a tenant with the fixture.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Schema,
    /// One database per tenant (the fixture's schema inside it, found
    /// through the tenant registry).
    Database,
    Row,
}

impl Mode {
    fn backend(self) -> &'static str {
        match self {
            Mode::Schema => "pg-schema",
            Mode::Database => "pg-database",
            Mode::Row => "pg-row",
        }
    }

    fn dir(self) -> &'static str {
        match self {
            Mode::Schema | Mode::Database => "",
            Mode::Row => "row/",
        }
    }

    fn vars(self, tenant: &str) -> Vec<(&'static str, String)> {
        match self {
            Mode::Schema | Mode::Database => vec![("schema", format!("tenant_{tenant}"))],
            Mode::Row => vec![
                ("schema", "public".to_owned()),
                ("tenant", tenant.to_owned()),
            ],
        }
    }
}

struct Torture {
    f: Ferry,
    mode: Mode,
    url: String,
    token: String,
}

impl Torture {
    /// A server on `mode` with two tenants laid out by the fixture.
    fn new(mode: Mode, env: &[(&str, &str)]) -> Torture {
        let mut f = Ferry::on_backend(mode.backend());
        for (k, v) in env {
            f = f.env(k, v);
        }
        let url = f.database_url().expect("a PostgreSQL backend").to_owned();
        let mut t = Torture {
            f,
            mode,
            url,
            token: String::new(),
        };
        if mode == Mode::Database {
            // The registry is the platform's: it exists once ferry started.
            t.f.start();
            for tenant in [TENANT, OTHER] {
                let db = t.tenant_url(tenant);
                let name = db.rsplit('/').next().unwrap().to_owned();
                psql(&t.url, &format!("CREATE DATABASE {name}"));
                psql(
                    &t.url,
                    &format!(
                        "INSERT INTO ferry_tenants (tenant_id, database_url, schema_name) \
                         VALUES ('{tenant}', '{db}', 'tenant_{tenant}')"
                    ),
                );
            }
        }
        if mode == Mode::Row {
            t.script("schema.sql", TENANT, true);
        }
        for tenant in [TENANT, OTHER] {
            if mode != Mode::Row {
                t.script("schema.sql", tenant, true);
            }
            t.script("data.sql", tenant, true);
        }
        if mode != Mode::Database {
            t.f.start();
        }
        t.token = t.f.token(TENANT, "tenant_admin");
        t
    }

    /// The database holding `tenant`'s tables.
    fn tenant_url(&self, tenant: &str) -> String {
        match self.mode {
            Mode::Database => format!("{}_{tenant}", self.url),
            Mode::Schema | Mode::Row => self.url.clone(),
        }
    }

    fn script(&self, file: &str, tenant: &str, quiet: bool) -> String {
        let vars = self.mode.vars(tenant);
        let vars: Vec<(&str, &str)> = vars
            .iter()
            .filter(|(k, _)| !(file == "schema.sql" && self.mode == Mode::Row && *k == "tenant"))
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        let out = run_script(
            &self.tenant_url(tenant),
            &format!("{}{file}", self.mode.dir()),
            &vars,
        );
        if quiet {
            String::new()
        } else {
            out
        }
    }

    fn content(&self, tenant: &str) -> Content {
        parse(&self.script("hash.sql", tenant, false))
    }

    fn mutate(&self) {
        self.script("mutate.sql", TENANT, true);
    }

    fn export(&self, profile: &str) -> String {
        let id = self.f.export(&self.token, json!({"profile": profile}));
        self.f.wait_export(&self.token, &id, "completed", WAIT);
        id
    }

    fn status_path(id: &str) -> String {
        format!("/api/v1/tenant/rehydrate/{id}/status")
    }

    /// Submit a rehydration; its id.
    fn submit(&self, body: &Value) -> String {
        let r = self
            .f
            .post("/api/v1/tenant/rehydrate", Some(&self.token), body);
        let status = r.status();
        let v: Value = r.json().unwrap();
        assert_eq!(status, 202, "{v}");
        v["job"]["id"].as_str().unwrap().to_owned()
    }

    /// Wait for the preview of rehydration `id`, then confirm it; the preview.
    fn confirm(&self, id: &str) -> Value {
        let s = self.f.wait_status(
            &self.token,
            &Self::status_path(id),
            "awaiting_confirmation",
            WAIT,
        );
        assert_eq!(s["previewReady"], true, "{s}");
        let preview = self.f.get_json(
            &format!("/api/v1/tenant/rehydrate/{id}/preview"),
            &self.token,
        );
        let r = self.f.post(
            &format!("/api/v1/tenant/rehydrate/{id}/confirm"),
            Some(&self.token),
            &json!({"confirm": "DELETE"}),
        );
        assert_eq!(r.status(), 202, "{}", r.text().unwrap());
        preview
    }

    /// Submit a rehydration, confirm it, and wait for `end`; its status,
    /// with its `id` and `preview`.
    fn rehydrate(&self, body: Value, end: &str) -> Value {
        let id = self.submit(&body);
        let preview = self.confirm(&id);
        let mut s = self
            .f
            .wait_status(&self.token, &Self::status_path(&id), end, WAIT);
        s["id"] = json!(id);
        s["preview"] = preview;
        s
    }
}

/// Every relation's line equal; no sequence moved back.
fn assert_restored(after: &Content, expected: &Content, what: &str) {
    for (name, line) in &expected.relations {
        assert_eq!(
            after.relations.get(name),
            Some(line),
            "{what}: relation {name} differs"
        );
    }
    assert_eq!(
        after.relations.len(),
        expected.relations.len(),
        "{what}: relations {:?} vs {:?}",
        after.relations.keys().collect::<Vec<_>>(),
        expected.relations.keys().collect::<Vec<_>>()
    );
    for (seq, value) in &expected.sequences {
        let now = after.sequences.get(seq).copied().unwrap_or(i64::MIN);
        assert!(
            now >= *value,
            "{what}: sequence {seq} went back: {now} < {value}"
        );
    }
}

/// Nothing of a failed load was committed: every relation as it was.
/// (Sequences are not transactional; they may have moved on, never back.)
fn assert_unchanged(after: &Content, before: &Content) {
    assert_eq!(
        after.relations, before.relations,
        "nothing of the load was committed"
    );
    for (seq, value) in &before.sequences {
        assert!(
            after.sequences.get(seq).copied().unwrap_or(i64::MIN) >= *value,
            "{seq} went back"
        );
    }
}

fn round_trip(mode: Mode, profile: &str) {
    let t = Torture::new(mode, &[]);
    let exported = t.content(TENANT);
    let bystander = t.content(OTHER);
    let export_id = t.export(profile);
    t.mutate();
    let mutated = t.content(TENANT);
    assert_ne!(
        mutated.relations, exported.relations,
        "mutate.sql changed the tenant"
    );

    let s = t.rehydrate(json!({"exportId": export_id}), "completed");
    assert_eq!(s["status"], "completed", "{s}");
    assert_eq!(s["preview"]["trial"], "passed", "{s}");
    // The shared tables' foreign keys without an index are named (the
    // fixture's tickets.project_id has none); a tenant's own schema gets
    // no such warning.
    let warned: Vec<&str> = s["preview"]["warnings"]
        .as_array()
        .map(|w| w.iter().filter_map(|w| w["table"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(warned.contains(&"tickets"), mode == Mode::Row, "{warned:?}");
    assert_restored(
        &t.content(TENANT),
        &exported,
        &format!("{mode:?} {profile}"),
    );
    assert_eq!(t.content(OTHER), bystander, "the other tenant is untouched");

    // New rows after the rehydration get keys past the restored ones.
    let id = s["id"].as_str().unwrap();
    let r = t.f.post(
        &format!("/api/v1/tenant/rehydrate/{id}/rollback"),
        Some(&t.token),
        &json!({}),
    );
    assert_eq!(r.status(), 202, "{}", r.text().unwrap());
    let s =
        t.f.wait_status(&t.token, &Torture::status_path(id), "rolled_back", WAIT);
    assert_eq!(s["restored"], true, "{s}");
    assert_restored(
        &t.content(TENANT),
        &mutated,
        &format!("{mode:?} {profile} rollback"),
    );
    assert_eq!(t.content(OTHER), bystander, "the other tenant is untouched");
}

#[test]
fn schema_mode_lite_round_trip_restores_every_relation() {
    round_trip(Mode::Schema, "lite");
}

#[test]
fn schema_mode_native_round_trip_restores_every_relation() {
    round_trip(Mode::Schema, "native");
}

#[test]
fn database_mode_lite_round_trip_restores_every_relation() {
    round_trip(Mode::Database, "lite");
}

#[test]
fn database_mode_native_round_trip_restores_every_relation() {
    round_trip(Mode::Database, "native");
}

#[test]
fn row_mode_lite_round_trip_restores_every_relation() {
    round_trip(Mode::Row, "lite");
}

#[test]
fn row_mode_native_round_trip_restores_every_relation() {
    round_trip(Mode::Row, "native");
}

/// A shared table without a primary key, large enough that PostgreSQL
/// reads one tenant's rows with parallel workers (in no fixed order), and
/// with free space left by another tenant's deleted rows: its rows must
/// still export, load and verify to the same content.
#[test]
fn a_large_shared_table_without_a_key_round_trips() {
    let t = Torture::new(Mode::Row, &[]);
    psql(
        &t.url,
        "INSERT INTO activity_log (tenant_id, at, actor, action, took) \
         SELECT CASE WHEN g % 2 = 0 THEN 'torture' ELSE 'bystander' END, \
                timestamp '2024-01-01' + (g % 5000) * interval '1 minute', \
                'actor ' || (g % 97), 'bulk', (g % 13) * interval '1 second' \
         FROM generate_series(1, 400000) AS g",
    );
    psql(
        &t.url,
        "DELETE FROM activity_log WHERE tenant_id = 'bystander' AND action = 'bulk'",
    );
    psql(&t.url, "VACUUM ANALYZE activity_log");
    let exported = t.content(TENANT);
    let export_id = t.export("lite");
    t.mutate();
    let s = t.rehydrate(json!({"exportId": export_id}), "completed");
    assert_eq!(s["status"], "completed", "{s}");
    assert_restored(&t.content(TENANT), &exported, "a large table without a key");
}

/// Faults in the middle of the load: the tenant's content, by
/// PostgreSQL's hash, is exactly what it was before the rehydration.
#[test]
fn a_load_failing_anywhere_leaves_the_old_rows_exactly() {
    // An error injected at the first progress report inside the load.
    let t = Torture::new(
        Mode::Schema,
        &[("FERRY_FAILPOINTS", "rehydrate.load.inside=error")],
    );
    let export_id = t.export("lite");
    t.mutate();
    let before = t.content(TENANT);
    let s = t.rehydrate(json!({"exportId": export_id}), "rolled_back");
    assert_eq!(s["error"]["code"], "injected_fault", "{s}");
    assert_eq!(s["restored"], false, "{s}");
    assert_unchanged(&t.content(TENANT), &before);

    // A constraint the bundle's rows break, added after the export, with
    // the preview's trial off: the load itself fails on it and nothing is
    // committed.
    let t = Torture::new(Mode::Schema, &[("FERRY_REHYDRATE_TRIAL_ROWS_MAX", "0")]);
    let export_id = t.export("lite");
    t.mutate();
    psql(&t.url, BREAK_PAGE_VIEWS);
    let before = t.content(TENANT);
    let s = t.rehydrate(json!({"exportId": export_id}), "rolled_back");
    assert_eq!(s["error"]["code"], "row_invalid", "{s}");
    assert_eq!(s["restored"], false, "{s}");
    assert_unchanged(&t.content(TENANT), &before);
}

/// An error after the n-th table of the load (or n-th progress report),
/// for replace at several depths and for merge and partial: every time,
/// nothing of the load is committed.
#[test]
fn an_error_after_any_table_commits_nothing_in_any_mode() {
    const POINT: &str = "FERRY_FAILPOINTS";
    let mut t = Torture::new(Mode::Schema, &[]);
    let export_id = t.export("lite");
    t.mutate();
    let before = t.content(TENANT);
    let cases = [
        (1, json!({"exportId": export_id})),
        (4, json!({"exportId": export_id})),
        (9, json!({"exportId": export_id})),
        (17, json!({"exportId": export_id})),
        (
            2,
            json!({"exportId": export_id, "mode": "partial",
                   "tables": ["page_views", "cache_entries", "api_clients"]}),
        ),
        (
            2,
            json!({"exportId": export_id, "mode": "merge",
                   "tables": ["categories", "departments", "employees"]}),
        ),
    ];
    for (n, body) in cases {
        t.f.kill();
        let f = std::mem::replace(&mut t.f, Ferry::on_backend("sqlite"));
        let mut f = f
            .without_env(POINT)
            .env(POINT, &format!("rehydrate.load.inside=error@{n}"));
        f.start();
        t.f = f;
        let s = t.rehydrate(body.clone(), "rolled_back");
        assert_eq!(s["error"]["code"], "injected_fault", "{body}: {s}");
        assert_eq!(s["restored"], false, "{body}: {s}");
        assert_unchanged(&t.content(TENANT), &before);
    }
}

/// A CHECK the bundle's rows break, added after the export.
const BREAK_PAGE_VIEWS: &str = "ALTER TABLE tenant_torture.page_views \
     ADD CONSTRAINT no_old_views CHECK (false) NOT VALID";

/// The preview's trial load finds what the load would hit before the
/// confirmation: the rehydration fails at the preview with the load's
/// code, the report names the constraint, and nothing changed.
#[test]
fn the_preview_trial_reports_what_the_load_would_hit() {
    let t = Torture::new(Mode::Schema, &[]);
    let export_id = t.export("lite");
    t.mutate();
    psql(&t.url, BREAK_PAGE_VIEWS);
    let before = t.content(TENANT);
    let id = t.submit(&json!({"exportId": export_id}));
    let s =
        t.f.wait_status(&t.token, &Torture::status_path(&id), "failed", WAIT);
    assert_eq!(s["error"]["code"], "row_invalid", "{s}");
    assert_eq!(s["previewReady"], false, "{s}");
    assert_eq!(s["reportAvailable"], true, "{s}");
    let report =
        t.f.get(
            &format!("/api/v1/tenant/rehydrate/{id}/report"),
            Some(&t.token),
        )
        .text()
        .unwrap();
    assert!(report.contains("no_old_views"), "{report}");
    assert_unchanged(&t.content(TENANT), &before);

    // Without the broken constraint the trial passes and says so.
    psql(
        &t.url,
        "ALTER TABLE tenant_torture.page_views DROP CONSTRAINT no_old_views",
    );
    let id = t.submit(&json!({"exportId": export_id, "dryRun": true}));
    t.f.wait_status(&t.token, &Torture::status_path(&id), "completed", WAIT);
    let preview =
        t.f.get_json(&format!("/api/v1/tenant/rehydrate/{id}/preview"), &t.token);
    assert_eq!(preview["trial"], "passed", "{preview}");
    assert_unchanged(&t.content(TENANT), &before);
}

/// A rollback of a finished rehydration that fails in the middle of its
/// load leaves the rehydrated rows exactly (by PostgreSQL's hash), and
/// resumed after a restart restores the rows from before exactly.
#[test]
fn a_rollback_failing_midway_leaves_the_rehydrated_rows_and_resumes() {
    let mut t = Torture::new(
        Mode::Schema,
        &[("FERRY_FAILPOINTS", "rehydrate.rollback.inside=error@3")],
    );
    let exported = t.content(TENANT);
    let export_id = t.export("lite");
    t.mutate();
    let mutated = t.content(TENANT);
    let s = t.rehydrate(json!({"exportId": export_id}), "completed");
    let id = s["id"].as_str().unwrap().to_owned();
    assert_restored(&t.content(TENANT), &exported, "rehydrated");
    let rehydrated = t.content(TENANT);
    let r = t.f.post(
        &format!("/api/v1/tenant/rehydrate/{id}/rollback"),
        Some(&t.token),
        &json!({}),
    );
    assert_eq!(r.status(), 202, "{}", r.text().unwrap());
    let path = Torture::status_path(&id);
    let s = t.f.wait_status(&t.token, &path, "failed", WAIT);
    assert_eq!(s["phase"], "compensation", "{s}");
    assert_eq!(s["error"]["code"], "injected_fault", "{s}");
    assert_unchanged(&t.content(TENANT), &rehydrated);

    t.f.kill();
    let f = std::mem::replace(&mut t.f, Ferry::on_backend("sqlite"));
    let mut f = f.without_env("FERRY_FAILPOINTS");
    f.start();
    t.f = f;
    let r = t.f.post(
        &format!("/api/v1/workflows/{id}/resume"),
        Some(&t.token),
        &json!({}),
    );
    assert!(r.status().is_success(), "{}", r.text().unwrap());
    let s = t.f.wait_status(&t.token, &path, "rolled_back", WAIT);
    assert_eq!(s["restored"], true, "{s}");
    assert_restored(&t.content(TENANT), &mutated, "rolled back after a resume");
}

/// The loading connection is terminated by the server in the middle of the
/// load: nothing is committed, the step is retried from the start of its
/// transaction and completes.
#[test]
fn a_terminated_loading_connection_retries_to_completion() {
    let t = Torture::new(
        Mode::Schema,
        &[("FERRY_FAILPOINTS", "rehydrate.load.inside=sleep:300")],
    );
    let exported = t.content(TENANT);
    let export_id = t.export("lite");
    t.mutate();
    let id = t.submit(&json!({"exportId": export_id}));
    let path = Torture::status_path(&id);
    t.confirm(&id);
    // Terminate the backend that holds the tenant's load lock (in this
    // test's own database: other tests run beside it), once it is in the
    // middle of the load.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let killed = psql(
            &t.url,
            "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l \
             JOIN pg_database d ON d.oid = l.database AND d.datname = current_database() \
             WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid()",
        );
        if killed.trim() != "0" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the load never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = t.f.wait_status(&t.token, &path, "completed", WAIT);
    assert_eq!(s["status"], "completed");
    assert_restored(
        &t.content(TENANT),
        &exported,
        "after a terminated connection",
    );
}

/// ferry is SIGKILLed in the middle of the load: the server rolls the
/// open transaction back (the old rows stay), and after a restart the
/// rehydration completes.
#[test]
fn ferry_killed_during_the_load_completes_after_restart() {
    let mut t = Torture::new(
        Mode::Schema,
        &[("FERRY_FAILPOINTS", "rehydrate.load.inside=sleep:400")],
    );
    let exported = t.content(TENANT);
    let export_id = t.export("lite");
    t.mutate();
    let mutated = t.content(TENANT);
    let id = t.submit(&json!({"exportId": export_id}));
    let path = Torture::status_path(&id);
    t.confirm(&id);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let s = t.f.get_json(&path, &t.token);
        if s["currentStep"] == "load" && s["progress"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the load never started: {s}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(600));
    t.f.kill();
    // The server saw the connection close and rolled the load back.
    std::thread::sleep(Duration::from_millis(500));
    assert_unchanged(&t.content(TENANT), &mutated);
    let mut f = std::mem::replace(&mut t.f, Ferry::on_backend("sqlite"));
    f = f.without_env("FERRY_FAILPOINTS");
    f.start();
    t.f = f;
    let s = t.f.wait_status(&t.token, &path, "completed", WAIT);
    assert_eq!(s["status"], "completed");
    assert_restored(&t.content(TENANT), &exported, "after a SIGKILL");
}

/// Large objects live outside the tables and are in no bundle: a tenant
/// with a large-object column is refused at validate, before anything
/// changed, with its own code.
#[test]
fn large_object_columns_are_refused_at_validate() {
    let t = Torture::new(Mode::Schema, &[]);
    psql(
        &t.url,
        "CREATE TABLE tenant_torture.scans (id integer PRIMARY KEY, body oid); \
         INSERT INTO tenant_torture.scans VALUES (1, lo_from_bytea(0, 'scan'))",
    );
    let export_id = t.export("lite");
    let before = t.content(TENANT);
    let id = t.submit(&json!({"exportId": export_id}));
    let s =
        t.f.wait_status(&t.token, &Torture::status_path(&id), "failed", WAIT);
    assert_eq!(s["error"]["code"], "large_objects_unsupported", "{s}");
    assert!(
        s["error"]["message"]
            .as_str()
            .unwrap()
            .contains("scans.body"),
        "{s}"
    );
    assert_unchanged(&t.content(TENANT), &before);
}
