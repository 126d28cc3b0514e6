//! The PostgreSQL audit log and export records against a real PostgreSQL
//! (`DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`,
//! a superuser). Each test creates its own database (and roles) and drops
//! them at the end. A server that cannot be reached fails the tests: they
//! never skip.

use chrono::{DateTime, Duration, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::PgConnection;
use ferry_engine::{Status, TenantId, WorkflowId};
use ferry_storage::audit_anchor::{AnchoredAudit, ANCHOR_FILE};
use ferry_storage::audit_pg::PgAudit;
use ferry_storage::export_records::{ExportRecord, PgExportRecords};
use ferry_storage::tenant_pg::with_database;
use ferry_workflows::bundle::sign::BundleSigner;
use ferry_workflows::export::Profile;
use ferry_workflows::ports::audit::{
    chain_hash, AuditEntry, AuditLog, AuditQuery, AuditRecord, ChainReport, ChainVerifier, Order,
    GENESIS_HASH,
};
use serde_json::json;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn connect(url: &str) -> PgConnection {
    PgConnection::establish(url).unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is unreachable at {url}: {e}. These tests need a running server \
             (set DATABASE_URL to a superuser's URL)."
        )
    })
}

/// A unique name for this process and call.
fn unique(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("ferry_audit_{tag}_{}_{n}", std::process::id())
}

/// The same URL with another user (no password: the test server trusts
/// local connections).
fn as_user(url: &str, user: &str) -> String {
    let scheme_end = url.find("://").expect("DATABASE_URL is a postgres:// URL") + 3;
    let rest = &url[scheme_end..];
    let host_start = rest.find('@').map_or(0, |at| at + 1);
    format!("{}{user}@{}", &url[..scheme_end], &rest[host_start..])
}

/// A fresh database, and the roles a test creates, dropped on drop.
struct TestDb {
    name: String,
    url: String,
    roles: Vec<String>,
}

impl TestDb {
    fn new(tag: &str) -> TestDb {
        let name = unique(tag);
        connect(&server_url())
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .expect("creating the test database");
        let url = with_database(&server_url(), &name).expect("DATABASE_URL is a URL");
        TestDb {
            name,
            url,
            roles: Vec::new(),
        }
    }

    /// A database owned by a new non-superuser role; returns its URL as
    /// that role.
    fn owned_by_new_role(tag: &str) -> (TestDb, String) {
        let owner = unique(&format!("{tag}_owner"));
        let mut admin = connect(&server_url());
        admin
            .batch_execute(&format!("CREATE ROLE \"{owner}\" LOGIN"))
            .expect("creating the owner role");
        let name = unique(tag);
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\" OWNER \"{owner}\""))
            .expect("creating the test database");
        let url = with_database(&server_url(), &name).expect("DATABASE_URL is a URL");
        let owner_url = as_user(&url, &owner);
        (
            TestDb {
                name,
                url,
                roles: vec![owner],
            },
            owner_url,
        )
    }

    /// A new LOGIN role without privileges; returns its name and URL.
    fn new_role(&mut self, tag: &str) -> (String, String) {
        let role = unique(tag);
        connect(&server_url())
            .batch_execute(&format!("CREATE ROLE \"{role}\" LOGIN"))
            .expect("creating a role");
        self.roles.push(role.clone());
        let url = as_user(&self.url, &role);
        (role, url)
    }

    /// A superuser connection to this database.
    fn admin(&self) -> PgConnection {
        connect(&self.url)
    }

    fn audit(&self) -> PgAudit {
        PgAudit::connect(&self.url).expect("connecting the audit log")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let mut admin = connect(&server_url());
        let _ = admin.batch_execute(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ));
        for role in &self.roles {
            let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS \"{role}\""));
        }
    }
}

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_763_900_000, 123_456_789).expect("a valid timestamp")
}

fn tenant(id: &str) -> Option<TenantId> {
    Some(TenantId::parse(id).expect("a valid tenant id"))
}

/// Entry `i` of a small mixed log: three tenants (one platform-wide),
/// two actions, varied details.
fn entry(i: u32) -> AuditEntry {
    let who = match i % 3 {
        0 => tenant("acme"),
        1 => tenant("globex"),
        _ => None,
    };
    let action = match i % 2 {
        0 => "EXPORT_REQUESTED",
        _ => "LINK_OPENED",
    };
    let mut e = AuditEntry::new(
        t0() + Duration::milliseconds(i as i64),
        format!("user-{i}"),
        who,
        action,
        "export",
        format!("e{}", i % 4),
    )
    .details(json!({
        "bytes": i * 1000,
        "ratio": 0.1 + i as f64,
        "name": "zürich \"quoted\" \u{1F980}",
        "nested": {"z": [1, null, true], "a": {"y": 2, "x": 3}},
    }));
    e.ip = Some(format!("10.0.0.{i}"));
    e.user_agent = (i % 2 == 1).then(|| "curl/8".to_owned());
    e
}

async fn append_n(audit: &PgAudit, n: u32) -> Vec<AuditRecord> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(audit.append(entry(i)).await.expect("append"));
    }
    out
}

fn seqs(records: &[AuditRecord]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

fn ok_report(entries: u64) -> ChainReport {
    ChainReport {
        entries,
        ok: true,
        first_broken_seq: None,
        anchored_seq: None,
        anchor_problem: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_list_filter_and_page() {
    let db = TestDb::new("list");
    let audit = db.audit();
    let appended = append_n(&audit, 25).await;

    assert_eq!(seqs(&appended), (1..=25).collect::<Vec<_>>());
    assert_eq!(appended[0].prev_hash, GENESIS_HASH);
    for pair in appended.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    for r in &appended {
        assert_eq!(r.hash, chain_hash(&r.prev_hash, r.seq, &r.entry));
    }
    // Timestamps are kept to the microsecond.
    assert_eq!(appended[0].entry.at.timestamp_subsec_nanos(), 123_456_000);

    // What is read back is exactly what was returned (and hashed).
    let all = audit.list(&AuditQuery::default()).await.expect("list");
    assert_eq!(all, appended);

    let acme = audit
        .list(&AuditQuery {
            tenant: tenant("acme"),
            ..Default::default()
        })
        .await
        .expect("list");
    // A tenant's entries are numbered and linked in its own chain.
    assert_eq!(seqs(&acme), (1..=9).collect::<Vec<_>>());
    assert_eq!(
        acme.iter()
            .map(|r| r.entry.actor.as_str())
            .collect::<Vec<_>>(),
        (0..25)
            .step_by(3)
            .map(|i| format!("user-{i}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(acme[0].prev_hash, GENESIS_HASH);
    for pair in acme.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }

    let opened = audit
        .list(&AuditQuery {
            tenant: tenant("globex"),
            action: Some("LINK_OPENED".into()),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(seqs(&opened), vec![1, 3, 5, 7]);
    let later = audit
        .list(&AuditQuery {
            tenant: tenant("globex"),
            after: Some(5),
            order: Order::Desc,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(seqs(&later), vec![4, 3, 2, 1]);

    let e3 = audit
        .list(&AuditQuery {
            entity_id: Some("e3".into()),
            order: Order::Desc,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(seqs(&e3), vec![24, 20, 16, 12, 8, 4]);

    // Keyset paging, both ways.
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = audit
            .list(&AuditQuery {
                after,
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("list");
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        pages.push(seqs(&page));
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![10, 10, 5]
    );
    assert_eq!(pages.concat(), (1..=25).collect::<Vec<_>>());

    let desc = audit
        .list(&AuditQuery {
            after: Some(6),
            order: Order::Desc,
            limit: 3,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(seqs(&desc), vec![5, 4, 3]);

    assert_eq!(audit.verify_chain().await.expect("verify"), ok_report(25));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_log_verifies() {
    let db = TestDb::new("empty");
    let audit = db.audit();
    assert_eq!(audit.verify_chain().await.expect("verify"), ok_report(0));
    assert!(audit
        .list(&AuditQuery::default())
        .await
        .expect("list")
        .is_empty());
}

/// Tamper with a log of six entries as a superuser who first disables the
/// append-only trigger; verification must name `broken_seq`.
async fn check_tampering(tamper: &str, broken_seq: u64) {
    let db = TestDb::new("tamper");
    let audit = db.audit();
    append_n(&audit, 6).await;
    assert_eq!(audit.verify_chain().await.expect("verify"), ok_report(6));

    db.admin()
        .batch_execute(&format!(
            "ALTER TABLE ferry_audit_log DISABLE TRIGGER ferry_audit_log_append_only; \
             {tamper}; \
             ALTER TABLE ferry_audit_log ENABLE ALWAYS TRIGGER ferry_audit_log_append_only;"
        ))
        .expect("tampering as a superuser");

    let report = audit.verify_chain().await.expect("verify");
    assert!(!report.ok, "{tamper}: {report:?}");
    assert_eq!(report.first_broken_seq, Some(broken_seq), "{tamper}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_is_detected_at_the_first_broken_entry() {
    let cases = [
        (
            "UPDATE ferry_audit_log SET actor = 'mallory' WHERE seq = 3",
            3,
        ),
        (
            "UPDATE ferry_audit_log SET details = '{\"bytes\": 1}' WHERE seq = 2",
            2,
        ),
        (
            "UPDATE ferry_audit_log SET at = at + interval '1 microsecond' WHERE seq = 1",
            1,
        ),
        // Not a tenant id any more: the row cannot even be decoded.
        (
            "UPDATE ferry_audit_log SET tenant = 'Not A Tenant' WHERE seq = 5",
            5,
        ),
        ("DELETE FROM ferry_audit_log WHERE seq = 4", 4),
        // The chain up to 5 is intact; the head still says 6.
        ("DELETE FROM ferry_audit_log WHERE seq = 6", 6),
        ("DELETE FROM ferry_audit_log WHERE seq >= 3", 3),
        ("TRUNCATE ferry_audit_log", 1),
    ];
    for (tamper, broken_seq) in cases {
        check_tampering(tamper, broken_seq).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rehashed_last_entry_is_detected_by_the_head() {
    let db = TestDb::new("rehash");
    let audit = db.audit();
    let records = append_n(&audit, 3).await;

    // Rewrite the last entry and give it a correct hash: the chain alone
    // cannot tell, the head can.
    let mut forged = records[2].clone();
    forged.entry.actor = "mallory".into();
    let hash = chain_hash(&forged.prev_hash, 3, &forged.entry);
    db.admin()
        .batch_execute(&format!(
            "ALTER TABLE ferry_audit_log DISABLE TRIGGER ferry_audit_log_append_only; \
             UPDATE ferry_audit_log SET actor = 'mallory', hash = '{hash}' WHERE seq = 3; \
             ALTER TABLE ferry_audit_log ENABLE ALWAYS TRIGGER ferry_audit_log_append_only;"
        ))
        .expect("tampering as a superuser");

    let report = audit.verify_chain().await.expect("verify");
    assert_eq!(report.first_broken_seq, Some(3), "{report:?}");
}

/// Runs `sql` and returns the server's error message; panics if it passes.
fn refused(conn: &mut PgConnection, sql: &str) -> String {
    match conn.batch_execute(sql) {
        Ok(()) => panic!("{sql} was allowed"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trigger_refuses_changes_even_for_a_superuser() {
    let db = TestDb::new("trigger");
    let audit = db.audit();
    let records = append_n(&audit, 3).await;

    let mut admin = db.admin();
    for sql in [
        "UPDATE ferry_audit_log SET actor = 'mallory' WHERE seq = 2",
        "UPDATE ferry_audit_log SET actor = actor WHERE false",
        "DELETE FROM ferry_audit_log WHERE seq = 3",
        "TRUNCATE ferry_audit_log",
        "TRUNCATE ferry_audit_log CASCADE",
        "DELETE FROM ferry_audit_head",
    ] {
        let message = refused(&mut admin, sql);
        assert!(message.contains("append-only"), "{sql}: {message}");
    }
    // Replica mode skips ordinary triggers, not ENABLE ALWAYS ones.
    admin
        .batch_execute("SET session_replication_role = replica")
        .expect("replica mode");
    let message = refused(&mut admin, "DELETE FROM ferry_audit_log");
    assert!(message.contains("append-only"), "{message}");

    // An entry that does not extend the head is refused too, even from a
    // client that skips the lock.
    let message = refused(
        &mut admin,
        &format!(
            "INSERT INTO ferry_audit_log (seq, at, actor, action, entity, entity_id, details, \
               prev_hash, hash) \
             VALUES (9, now(), 'x', 'X', 'x', 'x', '{{}}', '{GENESIS_HASH}', '{}')",
            "a".repeat(64)
        ),
    );
    assert!(
        message.contains("does not extend the chain head"),
        "{message}"
    );

    assert_eq!(
        audit.list(&AuditQuery::default()).await.expect("list"),
        records
    );
    assert_eq!(audit.verify_chain().await.expect("verify"), ok_report(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileges_refuse_changes_for_non_superuser_roles() {
    // The deployment this models: an owner role runs the migrations; ferry
    // either runs as that owner, or as an application role granted only
    // what appending needs.
    let (mut db, owner_url) = TestDb::owned_by_new_role("privs");
    let owner_audit = PgAudit::connect(&owner_url).expect("migrating as the owner");
    append_n(&owner_audit, 2).await;

    // The owner revoked its own UPDATE, DELETE and TRUNCATE.
    let mut owner = connect(&owner_url);
    for sql in [
        "UPDATE ferry_audit_log SET actor = 'mallory'",
        "DELETE FROM ferry_audit_log",
        "TRUNCATE ferry_audit_log",
    ] {
        let message = refused(&mut owner, sql);
        assert!(
            message.contains("permission denied for table ferry_audit_log"),
            "owner, {sql}: {message}"
        );
    }

    let (app, app_url) = db.new_role("privs_app");
    owner
        .batch_execute(&format!(
            "GRANT SELECT, INSERT ON ferry_audit_log TO \"{app}\"; \
             GRANT SELECT, INSERT ON ferry_audit_tenant_chain TO \"{app}\"; \
             GRANT SELECT ON ferry_audit_head TO \"{app}\"; \
             GRANT EXECUTE ON FUNCTION ferry_audit_head_for_append() TO \"{app}\";"
        ))
        .expect("granting the application role");

    // The application role appends through the head it cannot touch...
    let err = PgAudit::connect(&app_url).expect_err("the application role cannot migrate");
    assert!(!err.retryable, "{err:?}");
    let app_audit =
        PgAudit::connect_without_migrating(&app_url).expect("connecting as the application role");
    let record = app_audit.append(entry(7)).await.expect("append as app");
    assert_eq!(record.seq, 3);

    // ...and can change nothing else.
    let mut app_conn = connect(&app_url);
    for (sql, table) in [
        (
            "UPDATE ferry_audit_log SET actor = 'mallory' WHERE seq = 1",
            "ferry_audit_log",
        ),
        (
            "DELETE FROM ferry_audit_log WHERE seq = 1",
            "ferry_audit_log",
        ),
        ("TRUNCATE ferry_audit_log", "ferry_audit_log"),
        ("UPDATE ferry_audit_head SET seq = 0", "ferry_audit_head"),
        (
            "SELECT * FROM ferry_audit_head FOR UPDATE",
            "ferry_audit_head",
        ),
    ] {
        let message = refused(&mut app_conn, sql);
        assert!(
            message.contains(&format!("permission denied for table {table}")),
            "app, {sql}: {message}"
        );
    }
    let message = refused(
        &mut app_conn,
        "ALTER TABLE ferry_audit_log DISABLE TRIGGER ferry_audit_log_append_only",
    );
    assert!(message.contains("must be owner"), "{message}");

    assert_eq!(
        app_audit.verify_chain().await.expect("verify"),
        ok_report(3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_form_one_linear_chain() {
    const APPENDERS: u32 = 8;
    const APPENDS_EACH: u32 = 25;
    let db = TestDb::new("concurrent");

    // Eight logs, each on its own connection, all migrating the fresh
    // database at once: the migrations run exactly once.
    let mut connecting = Vec::new();
    for _ in 0..APPENDERS {
        let url = db.url.clone();
        connecting.push(tokio::task::spawn_blocking(move || PgAudit::connect(&url)));
    }
    let mut logs = Vec::new();
    for c in connecting {
        logs.push(Arc::new(c.await.expect("join").expect("connect")));
    }

    let mut appending = Vec::new();
    for (a, log) in logs.iter().enumerate() {
        let log = log.clone();
        appending.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..APPENDS_EACH {
                let e = entry(i).details(json!({"appender": a, "i": i}));
                seqs.push(log.append(e).await.expect("concurrent append").seq);
            }
            seqs
        }));
    }
    let mut all_seqs = Vec::new();
    for task in appending {
        let seqs = task.await.expect("join");
        // Each appender's entries are in the order it appended them.
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        all_seqs.extend(seqs);
    }
    all_seqs.sort_unstable();
    let total = (APPENDERS * APPENDS_EACH) as u64;
    assert_eq!(all_seqs, (1..=total).collect::<Vec<_>>());

    let stored = logs[0].list(&AuditQuery::default()).await.expect("list");
    assert_eq!(seqs(&stored), (1..=total).collect::<Vec<_>>());
    for pair in stored.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    assert_eq!(
        logs[7].verify_chain().await.expect("verify"),
        ok_report(total)
    );
}

/// One log's appends that arrive together are written in one transaction
/// (group commit): each gets exactly the record stored for it, chained in
/// order; an entry PostgreSQL cannot store is refused alone, before it
/// joins a batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_committed_together_get_their_own_records_in_chain_order() {
    let db = TestDb::new("group");
    let audit = Arc::new(db.audit());
    let tasks: Vec<_> = (0..200u32)
        .map(|i| {
            let audit = audit.clone();
            tokio::spawn(async move {
                let mut e = entry(i);
                if i == 77 {
                    e.actor = "nul\0actor".into();
                }
                (i, audit.append(e).await)
            })
        })
        .collect();
    let mut got = Vec::new();
    for task in tasks {
        let (i, appended) = task.await.expect("join");
        match appended {
            Ok(record) => got.push(record),
            Err(e) => assert_eq!((i, e.code.as_str()), (77, "invalid_audit_entry")),
        }
    }
    got.sort_by_key(|r| r.seq);
    assert_eq!(seqs(&got), (1..=199).collect::<Vec<_>>());
    for pair in got.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    let stored = audit
        .list(&AuditQuery {
            limit: 500,
            ..AuditQuery::default()
        })
        .await
        .expect("list");
    let key = |r: &AuditRecord| (r.seq, r.hash.clone(), r.entry.actor.clone());
    assert_eq!(
        stored.iter().map(key).collect::<Vec<_>>(),
        got.iter().map(key).collect::<Vec<_>>()
    );
    assert_eq!(audit.verify_chain().await.expect("verify"), ok_report(199));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_by_the_server_is_reopened() {
    let db = TestDb::new("reconnect");
    let audit = db.audit();
    append_n(&audit, 2).await;

    let killed: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
        "count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = '{}' AND pid <> pg_backend_pid()",
        db.name
    )))
    .get_result(&mut db.admin())
    .expect("terminating the audit log's connection");
    assert_eq!(killed, 1);

    // The dead connection is noticed before anything is written, so the
    // append runs again on a new one without an error.
    let record = audit.append(entry(2)).await.expect("append after the kill");
    assert_eq!(record.seq, 3);
    assert_eq!(audit.verify_chain().await.expect("verify"), ok_report(3));
}

#[test]
fn an_unreachable_server_is_retryable_and_a_missing_database_is_not() {
    let down = PgAudit::connect("postgres://postgres@127.0.0.1:1/postgres")
        .expect_err("nothing listens on port 1");
    assert_eq!(
        (down.code.as_str(), down.retryable),
        ("audit_unavailable", true),
        "{down:?}"
    );

    let url = with_database(&server_url(), &unique("missing")).expect("a URL");
    connect(&server_url());
    let missing = PgAudit::connect(&url).expect_err("the database does not exist");
    assert_eq!(
        (missing.code.as_str(), missing.retryable),
        ("audit_db_missing", false),
        "{missing:?}"
    );
    let missing = PgExportRecords::connect(&url).expect_err("the database does not exist");
    assert_eq!(missing.code, "export_records_db_missing", "{missing:?}");
}

#[test]
fn connecting_without_migrating_needs_the_schema() {
    let db = TestDb::new("unmigrated");
    let err = PgAudit::connect_without_migrating(&db.url).expect_err("no schema yet");
    assert_eq!(
        (err.code.as_str(), err.retryable),
        ("audit_schema_missing", false),
        "{err:?}"
    );
    db.audit();
    PgAudit::connect_without_migrating(&db.url).expect("the schema is there now");
    PgExportRecords::connect_without_migrating(&db.url).expect("the schema is there now");
}

fn export_id(n: u128) -> WorkflowId {
    // UUIDv7-shaped ids in creation order.
    WorkflowId(uuid::Uuid::from_u128(
        0x0190_0000_0000_7000_8000_0000_0000_0000 + n,
    ))
}

fn requested(n: u128, who: &str) -> ExportRecord {
    ExportRecord {
        export_id: export_id(n),
        tenant: TenantId::parse(who).expect("tenant"),
        profile: Profile::Lite,
        status: Status::Pending,
        requested_by: "user-1".into(),
        requested_at: t0() + Duration::seconds(n as i64),
        completed_at: None,
        size_bytes: None,
        checksum: None,
        object_key: None,
        expires_at: None,
        expired_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_records_upsert_get_and_list() {
    let db = TestDb::new("exports");
    let records = PgExportRecords::connect(&db.url).expect("connect");
    // The audit log shares the database and its migrations.
    let _audit = db.audit();

    for n in 1..=5 {
        records.upsert(&requested(n, "acme")).await.expect("upsert");
    }
    records
        .upsert(&requested(6, "acme2"))
        .await
        .expect("upsert");

    // The workflow moves on: the same id, every field replaced.
    let mut done = requested(2, "acme");
    done.profile = Profile::Native;
    done.status = Status::Completed;
    done.completed_at = Some(t0() + Duration::minutes(3));
    done.size_bytes = Some(5_000_000_000);
    done.checksum = Some("sha256:abc".into());
    done.object_key = Some("acme/exports/2.zip".into());
    done.expires_at = Some(t0() + Duration::days(7));
    records.upsert(&done).await.expect("upsert");
    records.upsert(&done).await.expect("upsert is idempotent");

    let got = records
        .get(export_id(2))
        .await
        .expect("get")
        .expect("the record");
    let mut expected = done.clone();
    // Stored to the microsecond.
    expected.requested_at =
        DateTime::from_timestamp_micros(done.requested_at.timestamp_micros()).expect("a timestamp");
    expected.completed_at = Some(
        DateTime::from_timestamp_micros(t0().timestamp_micros()).expect("a timestamp")
            + Duration::minutes(3),
    );
    expected.expires_at = Some(
        DateTime::from_timestamp_micros(t0().timestamp_micros()).expect("a timestamp")
            + Duration::days(7),
    );
    assert_eq!(got, expected);
    assert_eq!(records.get(export_id(99)).await.expect("get"), None);

    // Newest first, paged; `acme2` is another tenant, not a prefix match.
    let acme = TenantId::parse("acme").expect("tenant");
    let first = records.list_by_tenant(&acme, None, 3).await.expect("list");
    let ids = |rs: &[ExportRecord]| rs.iter().map(|r| r.export_id).collect::<Vec<_>>();
    assert_eq!(ids(&first), vec![export_id(5), export_id(4), export_id(3)]);
    let rest = records
        .list_by_tenant(&acme, Some(export_id(3)), 0)
        .await
        .expect("list");
    assert_eq!(ids(&rest), vec![export_id(2), export_id(1)]);
    assert_eq!(rest[0], expected);

    // An export never moves to another tenant.
    let err = records
        .upsert(&requested(2, "globex"))
        .await
        .expect_err("moving an export to another tenant");
    assert_eq!(
        (err.code.as_str(), err.retryable),
        ("export_record_conflict", false)
    );
    assert_eq!(
        records.get(export_id(2)).await.expect("get"),
        Some(expected)
    );

    // Operators query it with plain SQL.
    let completed: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "count(*) FROM ferry_exports WHERE tenant_id = 'acme' AND status = 'completed' \
         AND size_bytes > 4000000000",
    ))
    .get_result(&mut db.admin())
    .expect("query");
    assert_eq!(completed, 1);
}

/// The log as the server runs it: anchored in a data folder.
async fn anchored(db: &TestDb, dir: &tempfile::TempDir) -> AnchoredAudit {
    let audit = AnchoredAudit::new(
        Arc::new(db.audit()),
        dir.path().join(ANCHOR_FILE),
        BundleSigner::from_seed([9; 32]),
        Arc::new(ferry_engine::SystemClock),
    );
    audit.anchor_if_missing().await.expect("anchoring");
    audit
}

/// Six entries of `entry(0..6)` (acme, globex and platform-wide), anchored.
async fn filled_anchored(db: &TestDb, dir: &tempfile::TempDir) -> AnchoredAudit {
    let audit = anchored(db, dir).await;
    for i in 0..6 {
        audit.append(entry(i)).await.expect("append");
    }
    let report = audit.verify_chain().await.expect("verify");
    assert_eq!((report.ok, report.anchored_seq), (true, Some(6)));
    audit
}

/// Run `sql` as a superuser with every append-only trigger lifted.
fn without_triggers(db: &TestDb, sql: &str) {
    db.admin()
        .batch_execute(&format!(
            "ALTER TABLE ferry_audit_log DISABLE TRIGGER USER; \
             ALTER TABLE ferry_audit_head DISABLE TRIGGER USER; \
             ALTER TABLE ferry_audit_tenant_chain DISABLE TRIGGER USER; \
             {sql}; \
             ALTER TABLE ferry_audit_log ENABLE TRIGGER USER; \
             ALTER TABLE ferry_audit_head ENABLE TRIGGER USER; \
             ALTER TABLE ferry_audit_tenant_chain ENABLE TRIGGER USER;"
        ))
        .expect("tampering as a superuser");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_truncation_after_dropping_triggers_fails_verify() {
    let db = TestDb::new("truncate");
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = filled_anchored(&db, &dir).await;
    let records = audit.list(&AuditQuery::default()).await.expect("list");
    // The last two entries removed, and the head rewound to match.
    without_triggers(
        &db,
        &format!(
            "DELETE FROM ferry_audit_tenant_chain WHERE seq > 4; \
             DELETE FROM ferry_audit_log WHERE seq > 4; \
             UPDATE ferry_audit_head SET seq = 4, hash = '{}'",
            records[3].hash
        ),
    );
    assert_eq!(
        db.audit().verify_chain().await.expect("verify"),
        ok_report(4)
    );

    let report = audit.verify_chain().await.expect("verify");
    assert_eq!(
        (report.ok, report.first_broken_seq, report.entries),
        (false, Some(5), 4)
    );
    // globex's second entry (platform entry 5) is gone: the first of its
    // entries the log no longer vouches for is its second.
    let globex = TenantId::parse("globex").expect("tenant");
    let tenant = audit.verify_tenant(&globex).await.expect("verify");
    assert_eq!(
        (tenant.ok, tenant.first_broken_seq, tenant.entries),
        (false, Some(2), 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rewrite_of_whole_chain_fails_verify() {
    let db = TestDb::new("rewrite");
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = filled_anchored(&db, &dir).await;
    let records = audit.list(&AuditQuery::default()).await.expect("list");
    // Every entry given another actor, the whole chain, the tenants'
    // chains and the head rehashed consistently.
    let mut sql = String::new();
    let mut prev = GENESIS_HASH.to_owned();
    let mut tenants: std::collections::HashMap<String, (u64, String)> = Default::default();
    for r in &records {
        let mut e = r.entry.clone();
        e.actor = "mallory".into();
        let hash = chain_hash(&prev, r.seq, &e);
        sql.push_str(&format!(
            "UPDATE ferry_audit_log SET actor = 'mallory', prev_hash = '{prev}', \
             hash = '{hash}' WHERE seq = {};",
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
                "UPDATE ferry_audit_tenant_chain SET prev_hash = '{p}', hash = '{th}' \
                 WHERE seq = {};",
                r.seq
            ));
            tenants.insert(t.to_string(), (n + 1, th));
        }
    }
    sql.push_str(&format!("UPDATE ferry_audit_head SET hash = '{prev}'"));
    without_triggers(&db, &sql);

    let bare = db.audit();
    assert_eq!(bare.verify_chain().await.expect("verify"), ok_report(6));
    let acme = TenantId::parse("acme").expect("tenant");
    assert!(bare.verify_tenant(&acme).await.expect("verify").ok);

    let report = audit.verify_chain().await.expect("verify");
    assert_eq!((report.ok, report.first_broken_seq), (false, Some(6)));
    assert!(!audit.verify_tenant(&acme).await.expect("verify").ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_reveals_nothing_of_other_tenants() {
    let db = TestDb::new("scoped");
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = anchored(&db, &dir).await;
    let acme = TenantId::parse("acme").expect("tenant");
    let q = AuditQuery {
        tenant: Some(acme.clone()),
        ..Default::default()
    };
    // acme's entries are 3, 6 and 9, none the platform's first.
    for i in 1..10 {
        audit.append(entry(i)).await.expect("append");
    }
    let listed = audit.list(&q).await.expect("list");
    let report = audit.verify_tenant(&acme).await.expect("verify");

    // Other tenants' activity changes nothing acme sees.
    for i in [1, 2, 4, 5, 7, 8] {
        audit.append(entry(i)).await.expect("append");
    }
    assert_eq!(audit.list(&q).await.expect("list"), listed);
    assert_eq!(audit.verify_tenant(&acme).await.expect("verify"), report);
    assert_eq!(report, ok_report(3));

    assert_eq!(seqs(&listed), vec![1, 2, 3]);
    let mut own = ChainVerifier::new();
    listed.iter().for_each(|r| own.push(r));
    assert!(own.report().ok);
    let others: Vec<String> = audit
        .list(&AuditQuery::default())
        .await
        .expect("list")
        .into_iter()
        .flat_map(|r| [r.hash, r.prev_hash])
        .filter(|h| h != GENESIS_HASH)
        .collect();
    assert!(listed
        .iter()
        .all(|r| !others.contains(&r.hash) && !others.contains(&r.prev_hash)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_older_than_the_tenant_chains_are_linked_on_connect() {
    let db = TestDb::new("backfill");
    let audit = db.audit();
    append_n(&audit, 7).await;
    let q = AuditQuery {
        tenant: tenant("globex"),
        ..Default::default()
    };
    let before = audit.list(&q).await.expect("list");
    drop(audit);
    // As a database written before `ferry_audit_tenant_chain` existed.
    without_triggers(&db, "DELETE FROM ferry_audit_tenant_chain");
    let audit = db.audit();
    assert_eq!(audit.list(&q).await.expect("list"), before);
    assert!(
        audit
            .verify_tenant(&TenantId::parse("globex").expect("tenant"))
            .await
            .expect("verify")
            .ok
    );
}
