//! The `EventLog` conformance suite on the PostgreSQL log (a database of
//! its own per log, on the server at `DATABASE_URL`), and below it what only
//! a shared log can be asked: two `PgLog`s on one database — two ferry
//! processes — racing on one workflow and on one idempotency key get the
//! same answers as writers inside one process, because the database makes
//! the checks; and a log that loses its connections reconnects.

mod support;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use ferry_engine::testkit::conformance::{at, Stream};
use ferry_engine::testkit::LogFactory;
use ferry_engine::{AppendRejection, Event, EventLog, ListQuery};
use ferry_storage::pg_log::PgLog;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::pg::TestDb;

/// PostgreSQL logs, each in a scratch database of one test database's
/// prefix (all dropped with the factory).
struct PgFactory {
    db: TestDb,
    next: AtomicUsize,
    urls: Mutex<Vec<(usize, String)>>,
}

impl PgFactory {
    fn new() -> PgFactory {
        PgFactory {
            db: TestDb::new(),
            next: AtomicUsize::new(0),
            urls: Mutex::new(vec![]),
        }
    }

    fn fresh_url(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        self.db.scratch(&format!("log{n}"))
    }
}

impl LogFactory for PgFactory {
    type Log = PgLog;

    fn fresh(&self) -> Arc<PgLog> {
        let url = self.fresh_url();
        let log = Arc::new(PgLog::open(&url).expect("open the PostgreSQL log"));
        self.urls.lock().push((Arc::as_ptr(&log) as usize, url));
        log
    }

    fn reopen(&self, log: Arc<PgLog>) -> Arc<PgLog> {
        let key = Arc::as_ptr(&log) as usize;
        let url = self
            .urls
            .lock()
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, u)| u.clone())
            .expect("a log this factory opened");
        let log = Arc::into_inner(log).expect("the suite hands over the only reference");
        // Dropping ends the writer thread after what is queued.
        drop(log);
        let log = Arc::new(PgLog::open(&url).expect("reopen the PostgreSQL log"));
        self.urls.lock().push((Arc::as_ptr(&log) as usize, url));
        log
    }
}

mod pg_log {
    ferry_engine::eventlog_conformance_tests!(super::PgFactory::new());
}

/// Two logs on one database, as two ferry processes would have.
fn two_logs() -> (TestDb, Arc<PgLog>, Arc<PgLog>) {
    let db = TestDb::new();
    let a = Arc::new(PgLog::open(&db.url).expect("open log a"));
    let b = Arc::new(PgLog::open(&db.url).expect("open log b"));
    (db, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_racing_on_one_workflow_one_wins_per_version() {
    let (_db, a, b) = two_logs();
    let (mut s, req) = Stream::submit(1, "acme", "export", None, 0);
    assert_eq!(a.append(req.clone()).await.unwrap(), Ok(1));
    s.accept(req);
    let req = s.request(vec![Event::Started { at: at(1) }]);
    assert_eq!(b.append(req.clone()).await.unwrap(), Ok(2));
    s.accept(req);
    for round in 0..5i64 {
        let base = s.clone();
        let handles: Vec<_> = (0..8u32)
            .map(|w| {
                let log = if w % 2 == 0 { a.clone() } else { b.clone() };
                let req = base.request(vec![Event::StepStarted {
                    step: "plan".into(),
                    attempt: w + 1,
                    at: at(10 * round + 1),
                }]);
                tokio::spawn(async move { (req.clone(), log.append(req).await) })
            })
            .collect();
        let mut winners = vec![];
        for h in handles {
            let (req, got) = h.await.expect("task");
            match got.expect("no log error") {
                Ok(v) => {
                    assert_eq!(v, base.events.len() as u64 + 1);
                    winners.push(req);
                }
                Err(rej) => assert_eq!(
                    rej,
                    AppendRejection::VersionConflict {
                        expected: base.events.len() as u64,
                        current: base.events.len() as u64 + 1,
                    }
                ),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one writer wins round {round}");
        s.accept(winners.remove(0));
        // Both processes read the same stream.
        assert_eq!(a.read(s.id).unwrap(), s.events);
        assert_eq!(b.read(s.id).unwrap(), s.events);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_creating_one_workflow_or_one_key_one_wins() {
    let (_db, a, b) = two_logs();
    // The same new workflow from both: the primary key decides.
    for n in 1..=20u128 {
        let (_, req) = Stream::submit(n, "acme", "export", None, n as i64);
        let (ra, rb) = tokio::join!(a.append(req.clone()), b.append(req.clone()));
        let mut answers = [ra.unwrap(), rb.unwrap()];
        answers.sort_by_key(|r| r.is_err());
        assert_eq!(answers[0], Ok(1), "workflow {n}");
        assert_eq!(
            answers[1],
            Err(AppendRejection::VersionConflict {
                expected: 0,
                current: 1
            }),
            "workflow {n}"
        );
    }
    // Two new workflows with one idempotency key: the unique index decides.
    for n in 100..120u128 {
        let key = format!("key-{n}");
        let (_, first) = Stream::submit(n, "acme", "export", Some(&key), 0);
        let (_, second) = Stream::submit(n + 1000, "acme", "export", Some(&key), 0);
        let (ra, rb) = tokio::join!(a.append(first.clone()), b.append(second.clone()));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let winner = match (&ra, &rb) {
            (Ok(1), Err(_)) => first.id,
            (Err(_), Ok(1)) => second.id,
            other => panic!("key {key}: {other:?}"),
        };
        for r in [ra, rb].into_iter().filter(|r| r.is_err()) {
            assert_eq!(
                r,
                Err(AppendRejection::DuplicateIdempotencyKey { existing: winner })
            );
        }
        let tenant = ferry_engine::testkit::conformance::tenant_id("acme");
        assert_eq!(a.find_idempotency(&tenant, &key).unwrap(), Some(winner));
        assert_eq!(b.find_idempotency(&tenant, &key).unwrap(), Some(winner));
    }
    // What one process committed the other lists.
    let listed = b
        .list(&ListQuery {
            limit: 500,
            ..ListQuery::default()
        })
        .unwrap();
    assert_eq!(listed.len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_whose_connections_are_terminated_reconnects() {
    let db = TestDb::new();
    let log = PgLog::open(&db.url).expect("open");
    let (mut s, req) = Stream::submit(1, "acme", "export", None, 0);
    assert_eq!(log.append(req.clone()).await.unwrap(), Ok(1));
    s.accept(req);
    assert_eq!(log.read(s.id).unwrap(), s.events);
    // Every connection of the log's database is cut, as a server restart or
    // a failover would.
    let terminate = |db: &TestDb| {
        let mut admin = PgConnection::establish(&db.admin_url).expect("admin");
        let name = db.url.rsplit('/').next().unwrap().to_owned();
        admin
            .batch_execute(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            ))
            .expect("terminate");
    };
    terminate(&db);
    // Reads repeat once on a new connection.
    assert_eq!(log.read(s.id).unwrap(), s.events);
    // The writer's connection is gone too: the first append after the cut
    // may fail (its outcome would be unknown), nothing after it does.
    let req = s.request(vec![Event::Started { at: at(5) }]);
    match log.append(req.clone()).await {
        Ok(Ok(2)) => s.accept(req),
        Err(_) => match log.append(req.clone()).await.unwrap() {
            Ok(2) => s.accept(req),
            Err(AppendRejection::VersionConflict { current: 2, .. }) => s.accept(req),
            other => panic!("retry after a cut: {other:?}"),
        },
        other => panic!("append after a cut: {other:?}"),
    }
    let req = s.request(vec![Event::Completed { at: at(9) }]);
    assert_eq!(log.append(req.clone()).await.unwrap(), Ok(3));
    s.accept(req);
    assert_eq!(log.read(s.id).unwrap(), s.events);
    assert!(log.open().unwrap().is_empty());
}

/// The fence, directly: leases as the cluster writes them (nodes, tenant
/// leases with epochs), then a zombie — a node whose lease was taken over —
/// appends with its old epoch and is refused, writing nothing; the new
/// owner's append passes; a command (no fence) passes from anyone; and a
/// node whose own heartbeat lapsed is refused even before a takeover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_append_after_losing_its_lease_is_refused() {
    use ferry_engine::Fence;
    let db = TestDb::new();
    let a = Arc::new(PgLog::open_node(&db.url, Some("node-a")).expect("open log a"));
    let b = Arc::new(PgLog::open_node(&db.url, Some("node-b")).expect("open log b"));
    let mut sql = PgConnection::establish(&db.url).expect("connect");
    sql.batch_execute(
        "INSERT INTO ferry_cluster_nodes (node_id, started_at, heartbeat_at, expires_at, object_store) VALUES \
           ('node-a', now(), now(), now() + interval '1 hour', 's3'), \
           ('node-b', now(), now(), now() + interval '1 hour', 's3'); \
         INSERT INTO ferry_tenant_leases (tenant_id, node_id, epoch, acquired_at) \
           VALUES ('acme', 'node-a', 1, now());",
    )
    .expect("seed nodes and the lease");
    let fence = |node: &str, epoch| {
        Some(Fence {
            node: node.into(),
            epoch,
        })
    };
    let (mut s, req) = Stream::submit(1, "acme", "export", None, 0);
    assert_eq!(a.append(req.clone()).await.unwrap(), Ok(1), "a command");
    s.accept(req);
    let mut req = s.request(vec![Event::Started { at: at(1) }]);
    req.fence = fence("node-a", 1);
    assert_eq!(a.append(req.clone()).await.unwrap(), Ok(2), "the owner");
    s.accept(req);

    // node-a stops heartbeating; node-b takes the lease over (epoch 2).
    sql.batch_execute(
        "UPDATE ferry_cluster_nodes SET expires_at = now() - interval '1 second' WHERE node_id = 'node-a'; \
         UPDATE ferry_tenant_leases SET node_id = 'node-b', epoch = epoch + 1 WHERE tenant_id = 'acme';",
    )
    .expect("take over");
    let mut zombie = s.request(vec![Event::StepStarted {
        step: "plan".into(),
        attempt: 1,
        at: at(2),
    }]);
    zombie.fence = fence("node-a", 1);
    assert_eq!(
        a.append(zombie.clone()).await.unwrap(),
        Err(AppendRejection::Fenced {
            tenant: ferry_engine::TenantId::parse("acme").unwrap(),
            node: "node-a".into(),
            epoch: 1,
        })
    );
    // Even should node-a come back to life, epoch 1 is gone for good.
    sql.batch_execute(
        "UPDATE ferry_cluster_nodes SET expires_at = now() + interval '1 hour' WHERE node_id = 'node-a'",
    )
    .expect("revive node-a");
    assert!(matches!(
        a.append(zombie.clone()).await.unwrap(),
        Err(AppendRejection::Fenced { .. })
    ));
    assert_eq!(a.read(s.id).unwrap().len(), 2, "the zombie wrote nothing");
    let mut owner = zombie.clone();
    owner.fence = fence("node-b", 2);
    assert_eq!(
        b.append(owner.clone()).await.unwrap(),
        Ok(3),
        "the new owner"
    );
    s.accept(owner);

    // A live lease whose node's own heartbeat lapsed no longer fences in.
    sql.batch_execute(
        "UPDATE ferry_cluster_nodes SET expires_at = now() - interval '1 second' WHERE node_id = 'node-b'",
    )
    .expect("node-b lapses");
    let mut lapsed = s.request(vec![Event::StepProgressed {
        step: "plan".into(),
        checkpoint: serde_json::json!({}),
        progress: None,
        at: at(3),
    }]);
    lapsed.fence = fence("node-b", 2);
    assert!(matches!(
        b.append(lapsed.clone()).await.unwrap(),
        Err(AppendRejection::Fenced { .. })
    ));
    // A command needs no lease.
    lapsed.fence = None;
    assert_eq!(a.append(lapsed).await.unwrap(), Ok(4));

    // The step journal: who recorded each event, under which epoch.
    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        seq: i64,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        node_id: Option<String>,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
        epoch: Option<i64>,
    }
    use diesel::RunQueryDsl;
    let rows: Vec<Row> =
        diesel::sql_query("SELECT seq, node_id, epoch FROM ferry_log_events ORDER BY seq")
            .load(&mut sql)
            .unwrap();
    let got: Vec<_> = rows
        .into_iter()
        .map(|r| (r.seq, r.node_id, r.epoch))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, Some("node-a".into()), None),
            (2, Some("node-a".into()), Some(1)),
            (3, Some("node-b".into()), Some(2)),
            (4, Some("node-a".into()), None),
        ]
    );
}
