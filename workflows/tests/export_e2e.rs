//! The export workflow end to end, through the real engine (actors, runner,
//! timers) on the in-memory reference log, with the real embedded adapters:
//! SQLite tenants made by the sample generator, the local object store, the
//! `.eml` outbox and the SQLite audit log. Nothing is mocked; the only
//! wrapper is a fault injector around the real tenant store.

use ferry_engine::testkit::MemoryLog;
use ferry_engine::{
    Clock, Engine, EngineConfig, ManualClock, RetryPolicy, Status, SubmitRequest, SystemClock,
    TenantId, UuidV7, WorkflowId, WorkflowState,
};
use ferry_storage::audit_sqlite::SqliteAudit;
use ferry_storage::mail_outbox::OutboxMailer;
use ferry_storage::objects_local::LocalObjects;
use ferry_storage::sample::create_sample_tenant;
use ferry_storage::tenant_sqlite::SqliteTenants;
use ferry_workflows::bundle::{verify_file, BundleSigner, Manifest};
use ferry_workflows::export::{
    artifact, validate_request, ExportConfig, ExportDeps, ExportInput, ExportStatusView,
    ExportWorkflow, Requester,
};
use ferry_workflows::links::LinkSigner;
use ferry_workflows::ports::audit::{AuditLog, AuditQuery};
use ferry_workflows::ports::objects::{Area, ObjectStore};
use ferry_workflows::ports::tenant::{
    NativeInfo, SchemaInfo, TableFormat, TableStats, TenantSnapshot, TenantStore,
};
use ferry_workflows::ports::PortError;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counts dumps per table and fails the first dump of one table once,
/// around the real store: a crash-like fault in the middle of `snapshot`.
struct FaultyTenants {
    inner: SqliteTenants,
    fail_once: Mutex<Option<String>>,
    dumps: Arc<Mutex<HashMap<String, usize>>>,
}

struct FaultySnapshot {
    inner: Box<dyn TenantSnapshot>,
    fail_once: Option<String>,
    dumps: Arc<Mutex<HashMap<String, usize>>>,
}

impl TenantStore for FaultyTenants {
    fn engine(&self) -> &'static str {
        self.inner.engine()
    }
    fn isolation(&self) -> &'static str {
        self.inner.isolation()
    }
    fn tenant_exists(&self, tenant: &TenantId) -> Result<bool, PortError> {
        self.inner.tenant_exists(tenant)
    }
    fn list_tables(&self, tenant: &TenantId) -> Result<Vec<String>, PortError> {
        self.inner.list_tables(tenant)
    }
    fn snapshot(
        &self,
        tenant: &TenantId,
        work_dir: &Path,
    ) -> Result<Box<dyn TenantSnapshot>, PortError> {
        Ok(Box::new(FaultySnapshot {
            inner: self.inner.snapshot(tenant, work_dir)?,
            fail_once: self.fail_once.lock().unwrap().clone(),
            dumps: self.dumps.clone(),
        }))
    }
}

impl FaultyTenants {
    fn new(inner: SqliteTenants, fail_table: Option<&str>) -> Self {
        FaultyTenants {
            inner,
            fail_once: Mutex::new(fail_table.map(str::to_owned)),
            dumps: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

impl TenantSnapshot for FaultySnapshot {
    fn schema(&mut self) -> Result<SchemaInfo, PortError> {
        self.inner.schema()
    }
    fn durable(&self) -> bool {
        self.inner.durable()
    }
    fn dump_table(
        &mut self,
        table: &str,
        format: &TableFormat,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<TableStats, PortError> {
        let n = {
            let mut d = self.dumps.lock().unwrap();
            let n = d.entry(table.to_owned()).or_insert(0);
            *n += 1;
            *n
        };
        if self.fail_once.as_deref() == Some(table) && n == 1 {
            // Half a table, then the "connection" drops.
            out.write_all(b"{\"partial\":")
                .map_err(|e| PortError::retryable("io", e.to_string()))?;
            return Err(PortError::retryable(
                "connection_lost",
                "the database went away",
            ));
        }
        self.inner.dump_table(table, format, out, progress)
    }
    fn dump_native(&mut self, out: &mut dyn Write) -> Result<NativeInfo, PortError> {
        self.inner.dump_native(out)
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    data: PathBuf,
    engine: Engine,
    /// The engine's clock.
    clock: Arc<dyn Clock>,
    objects: Arc<LocalObjects>,
    audit: Arc<SqliteAudit>,
    outbox: PathBuf,
    signer: Arc<BundleSigner>,
    links: LinkSigner,
    dumps: Arc<Mutex<HashMap<String, usize>>>,
    rows: HashMap<String, u64>,
    asset_files: Vec<String>,
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        attempts_max: 4,
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        multiplier: 2.0,
        jitter: 0.5,
    }
}

async fn harness(bundle_ttl: Duration, fail_table: Option<&str>) -> Harness {
    harness_on(Arc::new(SystemClock), bundle_ttl, fail_table).await
}

/// `harness` with an engine on `clock`.
async fn harness_on(
    clock: Arc<dyn Clock>,
    bundle_ttl: Duration,
    fail_table: Option<&str>,
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let tenants_dir = data.join("tenants");
    let objects = Arc::new(LocalObjects::new(data.join("objects")).unwrap());
    let assets_dir = objects.area_dir(Area::Assets);
    let summary = create_sample_tenant(
        &tenants_dir,
        &assets_dir,
        &TenantId::parse("acme").unwrap(),
        1,
        7,
    )
    .unwrap();
    // Neighbours whose data must never appear in acme's bundle.
    for other in ["acme2", "globex"] {
        create_sample_tenant(
            &tenants_dir,
            &assets_dir,
            &TenantId::parse(other).unwrap(),
            1,
            8,
        )
        .unwrap();
    }
    let tenants = FaultyTenants::new(SqliteTenants::new(tenants_dir), fail_table);
    let dumps = tenants.dumps.clone();
    let audit = Arc::new(SqliteAudit::open(data.join("platform.sqlite")).unwrap());
    let outbox = data.join("outbox");
    let mailer = Arc::new(OutboxMailer::new(&outbox, "ferry <noreply@ferry.local>").unwrap());
    let signer = Arc::new(BundleSigner::from_seed([5; 32]));
    let links = LinkSigner::new([6; 32]);
    let deps = ExportDeps {
        tenants: Arc::new(tenants),
        objects: objects.clone(),
        mailer,
        audit: audit.clone(),
        signer: signer.clone(),
        links: links.clone(),
    };
    let mut config = ExportConfig::new(data.join("work"), "http://127.0.0.1:8080");
    config.bundle_ttl = bundle_ttl;
    config.producer_version = "9.9.9".into();
    let mut wf = ExportWorkflow::new(deps, config);
    for step in [
        "plan", "snapshot", "assets", "bundle", "upload", "notify", "expire",
    ] {
        wf = wf.with_retry(step, fast());
    }
    let engine = Engine::new(
        Arc::new(MemoryLog::new()),
        clock.clone(),
        Arc::new(UuidV7),
        EngineConfig {
            timer_poll: Duration::from_millis(20),
            seed: Some(1),
            ..EngineConfig::default()
        },
        &prometheus::Registry::new(),
    )
    .unwrap();
    engine.register(Arc::new(wf));
    engine.start().await.unwrap();
    Harness {
        _dir: dir,
        data,
        engine,
        clock,
        objects,
        audit,
        outbox,
        signer,
        links,
        dumps,
        rows: summary.tables.clone().into_iter().collect(),
        asset_files: summary.asset_files.clone(),
    }
}

impl Harness {
    async fn submit(&self, tenant: &str, body: Value, email: Option<&str>) -> WorkflowId {
        let request = validate_request(&body).unwrap();
        let input = ExportInput::new(
            request,
            Requester {
                sub: "admin-1".into(),
                email: email.map(str::to_owned),
            },
        );
        self.engine
            .submit(SubmitRequest {
                tenant: TenantId::parse(tenant).unwrap(),
                kind: "export".into(),
                input: input.to_value(),
                idempotency_key: None,
                requested_by: Some("admin-1".into()),
            })
            .await
            .unwrap()
            .state
            .id
    }

    async fn wait(&self, id: WorkflowId, want: Status) -> WorkflowState {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.engine.get(id).await.unwrap().unwrap();
            if s.status == want {
                return s;
            }
            assert!(
                Instant::now() < deadline && !(s.status.is_final() && s.status != want),
                "export {id} is {} (step {:?}), wanted {want}; last error {:?}",
                s.status,
                s.current_step,
                s.last_error
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn actions(&self, id: WorkflowId) -> Vec<String> {
        let q = AuditQuery {
            entity_id: Some(id.to_string()),
            ..Default::default()
        };
        self.audit
            .list(&q)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.entry.action)
            .collect()
    }

    /// Copy the stored bundle out of the store (as a downloader would get it).
    async fn download(&self, state: &WorkflowState) -> PathBuf {
        let art = artifact(state, self.clock.now()).unwrap();
        let mut r = self
            .objects
            .open(Area::Exports, &art.key)
            .await
            .unwrap()
            .unwrap();
        let dest = self.data.join(format!("downloaded-{}", art.file_name));
        let mut f = tokio::fs::File::create(&dest).await.unwrap();
        tokio::io::copy(&mut r, &mut f).await.unwrap();
        dest
    }
}

/// All entries of a zip, by name (small test bundles only).
fn unzip_all(path: &Path) -> HashMap<String, Vec<u8>> {
    let py = r#"
import sys, zipfile, json, base64
z = zipfile.ZipFile(sys.argv[1])
print(json.dumps({n: base64.b64encode(z.read(n)).decode() for n in z.namelist()}))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(py)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: HashMap<String, String> = serde_json::from_slice(&out.stdout).unwrap();
    use base64::Engine as _;
    m.into_iter()
        .map(|(k, v)| {
            (
                k,
                base64::engine::general_purpose::STANDARD.decode(v).unwrap(),
            )
        })
        .collect()
}

/// The decoded plain-text body of an `.eml` file (as a mail client shows it).
fn mail_text(path: &Path) -> String {
    let py = r#"
import sys, email
from email import policy
msg = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=policy.default)
print(msg.get_body(('plain',)).get_content())
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(py)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[actix::test]
async fn lite_export_with_assets_runs_end_to_end_and_expires() {
    // The bundle lives a day; the test moves the engine's clock past it.
    let clock = ManualClock::new(SystemClock.now());
    let h = harness_on(
        Arc::new(clock.clone()),
        Duration::from_secs(24 * 3600),
        None,
    )
    .await;
    let id = h
        .submit(
            "acme",
            json!({"profile": "lite", "includeAssets": true}),
            Some("admin@acme.example"),
        )
        .await;
    let state = h.wait(id, Status::Completed).await;
    assert_eq!(state.tenant.as_str(), "acme");

    // Status view.
    let view = ExportStatusView::from_state(&state, h.clock.now())
        .with_download_url(|id| format!("/api/v1/tenant/export/{id}/download"));
    assert_eq!(view.progress, 100);
    assert_eq!(view.status, Status::Completed);
    assert_eq!(view.profile.as_deref(), Some("lite"));
    assert_eq!(view.rows_done, h.rows.values().sum::<u64>());
    assert!(view.size_bytes.unwrap() > 0);
    assert_eq!(view.checksum.as_ref().unwrap().len(), 64);
    assert!(view.expires_at.is_some() && !view.expired && view.error.is_none());
    assert_eq!(
        view.download_url,
        Some(format!("/api/v1/tenant/export/{id}/download"))
    );
    let json = serde_json::to_value(&view).unwrap();
    for field in [
        "id",
        "tenantId",
        "profile",
        "status",
        "progress",
        "currentStep",
        "rowsDone",
        "bytesDone",
        "sizeBytes",
        "checksum",
        "expiresAt",
        "error",
        "requestedAt",
        "completedAt",
        "downloadUrl",
    ] {
        assert!(
            json.get(field).is_some(),
            "status view lacks {field}: {json}"
        );
    }

    // The stored bundle: under the tenant, verifiable offline, complete.
    let art = artifact(&state, h.clock.now()).unwrap();
    assert!(art
        .key
        .as_str()
        .starts_with(&format!("acme/{id}/export_acme_")));
    assert!(art.file_name.ends_with(".zip"));
    let local = h.download(&state).await;
    let bytes = std::fs::read(&local).unwrap();
    assert_eq!(bytes.len() as u64, art.size_bytes);
    assert_eq!(blake3::hash(&bytes).to_hex().to_string(), art.checksum);
    let report = verify_file(&local, &h.signer.verifying_key())
        .await
        .unwrap();
    let m: &Manifest = &report.manifest;
    assert_eq!(m.tenant_id.as_str(), "acme");
    assert_eq!(m.export_id, id.to_string());
    assert_eq!(m.profile, "lite");
    assert_eq!(m.version, "1.0.0");
    assert_eq!(m.producer.name, "ferry");
    assert_eq!(m.producer.version, "9.9.9");
    assert_eq!(m.database.format, "ndjson");
    assert_eq!(m.database.engine, "sqlite");
    let mut tables = m.database.tables.clone();
    tables.sort();
    let mut expected: Vec<String> = h.rows.keys().cloned().collect();
    expected.sort();
    assert_eq!(tables, expected);
    assert_eq!(m.database.row_count, Some(h.rows.values().sum()));
    for e in m.entries.iter().filter(|e| e.table.is_some()) {
        assert_eq!(
            e.rows,
            h.rows.get(e.table.as_ref().unwrap()).copied(),
            "{}",
            e.path
        );
    }
    let mut assets = m.assets.files.clone();
    assets.sort();
    let mut want_assets = h.asset_files.clone();
    want_assets.sort();
    assert_eq!(assets, want_assets);
    assert!(m.entry("database/schema.json").is_some());

    // Standard tools open it, and no other tenant's data is inside.
    let out = std::process::Command::new("unzip")
        .arg("-t")
        .arg(&local)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let entries = unzip_all(&local);
    let all: Vec<u8> = entries.values().flatten().copied().collect();
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("marker-acme"));
    assert!(
        !text.contains("marker-acme2") && !text.contains("marker-globex"),
        "another tenant leaked in"
    );

    // The work directory is gone once uploaded.
    assert!(!h.data.join("work").join(id.to_string()).exists());

    // One email, with a link that verifies for this export only.
    let mails: Vec<_> = std::fs::read_dir(&h.outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].ends_with(format!("export-{id}.eml")));
    let eml = mail_text(&mails[0]);
    let start = eml
        .find("http://127.0.0.1:8080/dl/")
        .expect("the mail has the link");
    let link: String = eml[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<')
        .collect();
    let path_q = link
        .trim_start_matches("http://127.0.0.1:8080")
        .replace("&amp;", "&");
    let (path, query) = path_q.split_once('?').unwrap();
    let segs: Vec<&str> = path.split('/').collect();
    let q: HashMap<&str, &str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let ok = h
        .links
        .verify(segs[2], segs[3], q["exp"], q["sig"], h.clock.now())
        .unwrap();
    assert_eq!((ok.tenant.as_str(), ok.export_id), ("acme", id));
    assert!(eml.contains(&art.checksum), "the mail names the checksum");

    // Every step audited, in order, and the chain holds.
    let actions = h.actions(id).await;
    assert_eq!(
        actions,
        [
            "EXPORT_PLANNED",
            "EXPORT_SNAPSHOT_TAKEN",
            "EXPORT_ASSETS_COLLECTED",
            "EXPORT_BUNDLED",
            "EXPORT_UPLOADED",
            "EXPORT_NOTIFIED",
            "EXPORT_COMPLETED"
        ]
    );
    let completed = h
        .audit
        .list(&AuditQuery {
            action: Some("EXPORT_COMPLETED".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        completed[0].entry.details["sizeBytes"],
        json!(art.size_bytes)
    );
    assert_eq!(completed[0].entry.details["checksum"], json!(art.checksum));
    assert_eq!(
        completed[0].entry.details["workflowId"],
        json!(id.to_string())
    );
    assert!(h.audit.verify_chain().await.unwrap().ok);

    // The durable timer deletes the bundle after the TTL, a day later on
    // the engine's clock and milliseconds later in real time.
    assert!(h
        .objects
        .head(Area::Exports, &art.key)
        .await
        .unwrap()
        .is_some());
    clock.advance(chrono::Duration::hours(24) + chrono::Duration::seconds(1));
    let deadline = Instant::now() + Duration::from_secs(20);
    while h
        .objects
        .head(Area::Exports, &art.key)
        .await
        .unwrap()
        .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "the bundle was not deleted at expiry"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = h.engine.get(id).await.unwrap().unwrap();
        if s.timers.get("expire").is_some_and(|t| t.fired) {
            let view =
                ExportStatusView::from_state(&s, h.clock.now()).with_download_url(|_| "x".into());
            assert!(view.expired && view.download_url.is_none());
            assert_eq!(
                artifact(&s, h.clock.now()).unwrap_err().code(),
                "export_expired"
            );
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        h.actions(id).await.last().map(String::as_str),
        Some("EXPORT_EXPIRED")
    );
}

#[actix::test]
async fn analytics_export_filters_tables_and_dates() {
    let h = harness(Duration::from_secs(3600), None).await;
    let id = h
        .submit(
            "acme",
            json!({"profile": "analytics", "tables": ["orders", "products"],
                   "dateRange": {"from": "2000-01-01", "to": "2100-12-31"}}),
            None,
        )
        .await;
    let state = h.wait(id, Status::Completed).await;
    let local = h.download(&state).await;
    let report = verify_file(&local, &h.signer.verifying_key())
        .await
        .unwrap();
    let m = report.manifest;
    assert_eq!(m.database.format, "csv");
    let mut tables = m.database.tables.clone();
    tables.sort();
    assert_eq!(tables, vec!["orders", "products"]);
    let range = m.database.date_range.unwrap();
    assert_eq!(range.column, "created_at");
    let mut paths: Vec<_> = m.entries.iter().map(|e| e.path.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![
            "database/orders.csv",
            "database/products.csv",
            "database/schema.json"
        ]
    );
    assert!(m.assets.files.is_empty(), "assets were not asked for");
    // No recipient: nothing mailed, and that is recorded.
    assert!(std::fs::read_dir(&h.outbox).unwrap().next().is_none());
    assert_eq!(state.outputs["notify"]["outcome"], "no_recipient");
    assert!(h
        .actions(id)
        .await
        .contains(&"EXPORT_ASSETS_SKIPPED".to_string()));
}

#[actix::test]
async fn native_export_ships_a_sqlite_file() {
    let h = harness(Duration::from_secs(3600), None).await;
    let id = h.submit("acme", json!({"profile": "native"}), None).await;
    let state = h.wait(id, Status::Completed).await;
    let local = h.download(&state).await;
    let m = verify_file(&local, &h.signer.verifying_key())
        .await
        .unwrap()
        .manifest;
    assert_eq!(m.database.format, "sqlite3");
    assert_eq!(m.database.row_count, None);
    let entries = unzip_all(&local);
    assert!(entries["database/tenant.sqlite"].starts_with(b"SQLite format 3\0"));
}

#[actix::test]
async fn unknown_tables_and_tenants_fail_permanently_without_retries() {
    let h = harness(Duration::from_secs(3600), None).await;
    let id = h
        .submit(
            "acme",
            json!({"profile": "lite", "tables": ["orders", "nope"]}),
            None,
        )
        .await;
    let s = h.wait(id, Status::Failed).await;
    assert_eq!(s.last_error.as_ref().unwrap().code, "unknown_table");
    assert_eq!(s.failures_of("plan"), 1, "a permanent error is not retried");
    let view = ExportStatusView::from_state(&s, h.clock.now());
    assert_eq!(view.error.unwrap().code, "unknown_table");

    let id = h.submit("initech", json!({"profile": "lite"}), None).await;
    let s = h.wait(id, Status::Failed).await;
    assert_eq!(s.last_error.as_ref().unwrap().code, "tenant_not_found");
    assert!(h
        .actions(id)
        .await
        .contains(&"EXPORT_STEP_FAILED".to_string()));
}

#[actix::test]
async fn a_failed_table_resumes_from_the_checkpoint() {
    // orders is dumped after accounts/users/products; its first dump fails.
    let h = harness(Duration::from_secs(3600), Some("orders")).await;
    let id = h.submit("acme", json!({"profile": "lite"}), None).await;
    let state = h.wait(id, Status::Completed).await;
    assert_eq!(state.failures_of("snapshot"), 1);
    let dumps = h.dumps.lock().unwrap().clone();
    assert_eq!(dumps["orders"], 2, "the failed table is dumped again");
    let schema_order: Vec<String> = state.outputs["snapshot"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let orders_at = schema_order.iter().position(|t| t == "orders").unwrap();
    for (i, t) in schema_order.iter().enumerate() {
        let want = if i == orders_at { 2 } else { 1 };
        assert_eq!(
            dumps[t],
            want,
            "table {t} (before orders: {})",
            i < orders_at
        );
    }
    // The half-written attempt left nothing behind: the bundle verifies.
    let local = h.download(&state).await;
    verify_file(&local, &h.signer.verifying_key())
        .await
        .unwrap();
    let snapshot_audits = h
        .actions(id)
        .await
        .iter()
        .filter(|a| *a == "EXPORT_SNAPSHOT_TAKEN")
        .count();
    assert_eq!(snapshot_audits, 1);
}

#[actix::test]
async fn sweep_removes_work_dirs_of_closed_exports_only() {
    let h = harness(Duration::from_secs(3600), None).await;
    let work = h.data.join("work");
    let open: WorkflowId = "0190f5a0-0000-7000-8000-000000000001".parse().unwrap();
    let closed: WorkflowId = "0190f5a0-0000-7000-8000-000000000002".parse().unwrap();
    for id in [open, closed] {
        std::fs::create_dir_all(work.join(id.to_string()).join("files")).unwrap();
    }
    std::fs::create_dir_all(work.join("not-a-workflow")).unwrap();
    // The registered definition is type-erased; a sibling over the same
    // work root does the sweeping.
    let wf = ExportWorkflow::new(
        ExportDeps {
            tenants: Arc::new(SqliteTenants::new(h.data.join("tenants"))),
            objects: h.objects.clone(),
            mailer: Arc::new(OutboxMailer::new(&h.outbox, "ferry <noreply@ferry.local>").unwrap()),
            audit: h.audit.clone(),
            signer: h.signer.clone(),
            links: h.links.clone(),
        },
        ExportConfig::new(&work, "http://127.0.0.1:8080"),
    );
    let removed = wf
        .sweep_work_dirs(&[open].into_iter().collect())
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert!(work.join(open.to_string()).exists());
    assert!(!work.join(closed.to_string()).exists());
    assert!(work.join("not-a-workflow").exists());
}
