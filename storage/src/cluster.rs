//! Several ferry nodes on one platform database (`FERRY_CLUSTER=on`, with
//! the event log in PostgreSQL): node heartbeats, one lease per tenant with
//! an epoch (the fencing token), takeover of a dead node's tenants, the
//! notices that carry every append to the other nodes, and draining.
//!
//! Tables (migration `2026-12-03-000003_cluster`): `ferry_cluster_nodes`
//! (a node is live while its heartbeat keeps `expires_at`, set by the
//! database's clock, in the future) and `ferry_tenant_leases` (tenant, node,
//! epoch). A lease is valid while its node is live. Every append that drives
//! a workflow carries its lease's fence, checked in the append's own
//! transaction (`pg_log`), so a node that lost a lease records nothing more,
//! whatever it still believes.
//!
//! Three threads per node:
//! - the **heartbeat** (every lease/3): renews the node's liveness; takes
//!   the leases of tenants with work whose lease is free or whose node is
//!   dead, each tenant by the live node that rendezvous hashing prefers
//!   (bumping the epoch); then makes the engine's view equal the table's —
//!   adopting (folding and driving the tenant's open workflows from their
//!   last recorded step) and releasing (aborting what runs);
//! - the **watchdog**: if the last successful heartbeat is older than the
//!   lease (a partition, a pause), the node releases every tenant itself,
//!   without waiting for the database to say so;
//! - the **listener**: `LISTEN ferry_log`; each notice of another node's
//!   append reaches the engine (the owner looks at the workflow again — a
//!   cancel, confirm or resume recorded elsewhere — and every node tells
//!   its live streams). Notices are polled every [`NOTICE_POLL`]; after a
//!   reconnect every owned tenant is looked at again, as notices may have
//!   been missed.
//!
//! Takeover takes at most lease + lease/3 after a node's last heartbeat.

use crate::pg_log::{parse_notice, NOTIFY_CHANNEL};
use crate::tenant_pg::conn::connect;
use crate::tenant_pg::registry::migrate_platform;
use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel::{OptionalExtension, PgConnection, QueryableByName, RunQueryDsl};
use ferry_engine::{Engine, TenantId};
use ferry_workflows::ports::PortError;
use parking_lot::Mutex;
use prometheus::{IntCounter, IntGauge, Registry};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the listener looks for notices (libpq is polled; diesel
/// gives no socket to wait on): the bound on how late a command recorded
/// on another node reaches the owner.
pub const NOTICE_POLL: Duration = Duration::from_millis(25);

const CONNECT_TIMEOUT_S: u32 = 5;

#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub url: String,
    pub node: String,
    /// A node unheard of for this long is dead; its tenants are taken over.
    pub lease: Duration,
    /// `s3` or `local`: the cluster refuses a local object store beside
    /// another live node (its bundles would be on one node's disk only).
    pub object_store: &'static str,
}

/// One node of the cluster, as `GET /api/v1/cluster` shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    pub node_id: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub live: bool,
    pub draining: bool,
    pub object_store: String,
    /// Tenants whose lease the node holds, with the lease's epoch.
    pub tenants: BTreeMap<String, i64>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// The node that answered.
    pub node: String,
    pub lease_seconds: f64,
    pub nodes: Vec<NodeView>,
}

struct Metrics {
    leases: IntGauge,
    nodes_live: IntGauge,
    takeovers: IntCounter,
}

struct Shared {
    cfg: ClusterConfig,
    engine: Engine,
    runtime: tokio::runtime::Handle,
    stop: AtomicBool,
    draining: AtomicBool,
    /// Until when this node may act as live: the last successful
    /// heartbeat's start plus the lease.
    live_until: Mutex<Option<Instant>>,
    metrics: Metrics,
}

/// A running cluster membership. `drain` hands the leases over; dropping
/// stops the threads without handing over (as a crash would).
pub struct Cluster {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn db(what: &str, e: diesel::result::Error) -> PortError {
    PortError::retryable("cluster_db_failed", format!("{what}: {e}"))
}

fn establish(url: &str) -> Result<PgConnection, PortError> {
    connect(url, CONNECT_TIMEOUT_S, "the cluster's database", || {
        PortError::permanent(
            "cluster_db_missing",
            "connecting to the cluster's database: the database does not exist",
        )
    })
}

fn lease_interval(lease: Duration) -> String {
    format!("{} milliseconds", lease.as_millis())
}

#[derive(QueryableByName)]
struct LeaseRow {
    #[diesel(sql_type = Text)]
    tenant_id: String,
    #[diesel(sql_type = BigInt)]
    epoch: i64,
}

#[derive(QueryableByName)]
struct NameRow {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct FlagRow {
    #[diesel(sql_type = Bool)]
    flag: bool,
}

impl Cluster {
    /// Register this node and start its threads. Refuses a local object
    /// store beside another live node (or this node on S3 beside a live node
    /// on a local store). A node id reused after a crash invalidates the
    /// leases of the previous process under that id (their epochs are
    /// bumped), so it cannot record anything should it still be running.
    pub fn join(
        cfg: ClusterConfig,
        engine: Engine,
        runtime: tokio::runtime::Handle,
        registry: &Registry,
    ) -> Result<Cluster, PortError> {
        let mut conn = establish(&cfg.url)?;
        migrate_platform(&mut conn)?;
        register(&mut conn, &cfg)?;
        let metrics = Metrics {
            leases: IntGauge::new(
                "ferry_cluster_leases",
                "Tenant leases this node holds (it drives their workflows).",
            )
            .map_err(metric_error)?,
            nodes_live: IntGauge::new(
                "ferry_cluster_nodes_live",
                "Live nodes in the cluster, as this node's last heartbeat saw them.",
            )
            .map_err(metric_error)?,
            takeovers: IntCounter::new(
                "ferry_cluster_takeovers_total",
                "Tenant leases this node took over from a dead or draining node.",
            )
            .map_err(metric_error)?,
        };
        registry
            .register(Box::new(metrics.leases.clone()))
            .map_err(metric_error)?;
        registry
            .register(Box::new(metrics.nodes_live.clone()))
            .map_err(metric_error)?;
        registry
            .register(Box::new(metrics.takeovers.clone()))
            .map_err(metric_error)?;
        let shared = Arc::new(Shared {
            cfg,
            engine,
            runtime,
            stop: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            live_until: Mutex::new(None),
            metrics,
        });
        let mut threads = Vec::new();
        for (name, body) in [
            (
                "ferry-heartbeat",
                heartbeat_loop as fn(&Shared, PgConnection),
            ),
            ("ferry-listener", listen_loop),
        ] {
            let conn = establish(&shared.cfg.url)?;
            let s = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(name.into())
                    .spawn(move || body(&s, conn))
                    .map_err(|e| PortError::permanent("cluster_thread", e.to_string()))?,
            );
        }
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("ferry-watchdog".into())
                .spawn(move || watchdog_loop(&s))
                .map_err(|e| PortError::permanent("cluster_thread", e.to_string()))?,
        );
        Ok(Cluster {
            shared,
            threads: Mutex::new(threads),
        })
    }

    pub fn node(&self) -> &str {
        &self.shared.cfg.node
    }

    /// Every node the table knows, with the leases each holds.
    pub fn view(&self) -> Result<ClusterView, PortError> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            node_id: String,
            #[diesel(sql_type = BigInt)]
            started_ms: i64,
            #[diesel(sql_type = BigInt)]
            heartbeat_ms: i64,
            #[diesel(sql_type = BigInt)]
            expires_ms: i64,
            #[diesel(sql_type = Bool)]
            live: bool,
            #[diesel(sql_type = Bool)]
            draining: bool,
            #[diesel(sql_type = Text)]
            object_store: String,
        }
        #[derive(QueryableByName)]
        struct Held {
            #[diesel(sql_type = Text)]
            node_id: String,
            #[diesel(sql_type = Text)]
            tenant_id: String,
            #[diesel(sql_type = BigInt)]
            epoch: i64,
        }
        let mut c = establish(&self.shared.cfg.url)?;
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT node_id, (extract(epoch FROM started_at) * 1000)::bigint AS started_ms, \
             (extract(epoch FROM heartbeat_at) * 1000)::bigint AS heartbeat_ms, \
             (extract(epoch FROM expires_at) * 1000)::bigint AS expires_ms, \
             expires_at > clock_timestamp() AS live, draining, object_store \
             FROM ferry_cluster_nodes ORDER BY node_id",
        )
        .load(&mut c)
        .map_err(|e| db("reading the cluster's nodes", e))?;
        let held: Vec<Held> = diesel::sql_query(
            "SELECT node_id, tenant_id, epoch FROM ferry_tenant_leases \
             WHERE node_id IS NOT NULL ORDER BY tenant_id",
        )
        .load(&mut c)
        .map_err(|e| db("reading the cluster's leases", e))?;
        let mut by_node: HashMap<String, BTreeMap<String, i64>> = HashMap::new();
        for h in held {
            by_node
                .entry(h.node_id)
                .or_default()
                .insert(h.tenant_id, h.epoch);
        }
        Ok(ClusterView {
            node: self.shared.cfg.node.clone(),
            lease_seconds: self.shared.cfg.lease.as_secs_f64(),
            nodes: rows
                .into_iter()
                .map(|r| NodeView {
                    tenants: by_node.remove(&r.node_id).unwrap_or_default(),
                    node_id: r.node_id,
                    started_at: from_ms(r.started_ms),
                    heartbeat_at: from_ms(r.heartbeat_ms),
                    expires_at: from_ms(r.expires_ms),
                    live: r.live,
                    draining: r.draining,
                    object_store: r.object_store,
                })
                .collect(),
        })
    }

    /// Hand every lease over and leave (SIGTERM): take no new tenants, stop
    /// driving the held ones, give their leases back (the other nodes take
    /// them at their next heartbeat, epoch bumped), and remove this node.
    pub fn drain(&self) -> Result<usize, PortError> {
        self.shared.draining.store(true, Ordering::SeqCst);
        let held = self.shared.engine.leases();
        for (tenant, _) in &held {
            self.shared.engine.release(tenant);
        }
        let mut c = establish(&self.shared.cfg.url)?;
        let node = &self.shared.cfg.node;
        c.batch_execute("BEGIN")
            .map_err(|e| db("handing leases over", e))?;
        let handed =
            diesel::sql_query("UPDATE ferry_tenant_leases SET node_id = NULL WHERE node_id = $1")
                .bind::<Text, _>(node)
                .execute(&mut c)
                .map_err(|e| db("handing leases over", e))?;
        diesel::sql_query("DELETE FROM ferry_cluster_nodes WHERE node_id = $1")
            .bind::<Text, _>(node)
            .execute(&mut c)
            .map_err(|e| db("leaving the cluster", e))?;
        c.batch_execute("COMMIT")
            .map_err(|e| db("handing leases over", e))?;
        self.stop_threads();
        tracing::info!(node = %node, leases = handed, "drained: leases handed over");
        Ok(handed)
    }

    fn stop_threads(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let threads: Vec<_> = self.threads.lock().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn metric_error(e: prometheus::Error) -> PortError {
    PortError::permanent("metrics", e.to_string())
}

/// Insert or refresh this node's row, checking the object-store rule, and
/// invalidate leases a previous process under this id held.
fn register(c: &mut PgConnection, cfg: &ClusterConfig) -> Result<(), PortError> {
    let others: Vec<NameRow> = diesel::sql_query(
        "SELECT object_store AS name FROM ferry_cluster_nodes \
         WHERE node_id <> $1 AND expires_at > clock_timestamp()",
    )
    .bind::<Text, _>(&cfg.node)
    .load(c)
    .map_err(|e| db("reading the cluster's nodes", e))?;
    if !others.is_empty()
        && (cfg.object_store == "local" || others.iter().any(|o| o.name == "local"))
    {
        return Err(PortError::permanent(
            "cluster_needs_shared_object_store",
            "a cluster of more than one node needs a shared object store (S3/MinIO: set MINIO_*); \
             a local object store keeps bundles and backups on one node's disk",
        ));
    }
    diesel::sql_query(
        "INSERT INTO ferry_cluster_nodes \
         (node_id, started_at, heartbeat_at, expires_at, draining, object_store) \
         VALUES ($1, clock_timestamp(), clock_timestamp(), clock_timestamp() + $2::interval, false, $3) \
         ON CONFLICT (node_id) DO UPDATE SET started_at = EXCLUDED.started_at, \
         heartbeat_at = EXCLUDED.heartbeat_at, expires_at = EXCLUDED.expires_at, \
         draining = false, object_store = EXCLUDED.object_store",
    )
    .bind::<Text, _>(&cfg.node)
    .bind::<Text, _>(lease_interval(cfg.lease))
    .bind::<Text, _>(cfg.object_store)
    .execute(c)
    .map_err(|e| db("registering the node", e))?;
    diesel::sql_query("UPDATE ferry_tenant_leases SET epoch = epoch + 1 WHERE node_id = $1")
        .bind::<Text, _>(&cfg.node)
        .execute(c)
        .map_err(|e| db("invalidating a previous process's leases", e))?;
    Ok(())
}

/// Sleep up to `d`, waking early to stop.
fn nap(s: &Shared, d: Duration) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if s.stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
    }
    !s.stop.load(Ordering::SeqCst)
}

fn heartbeat_loop(s: &Shared, conn: PgConnection) {
    let mut conn = Some(conn);
    let every = s.cfg.lease / 3;
    loop {
        let c = match conn.take().map_or_else(|| establish(&s.cfg.url), Ok) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e.message, "cluster heartbeat: cannot connect");
                if !nap(s, every) {
                    return;
                }
                continue;
            }
        };
        let mut c = c;
        match beat(s, &mut c) {
            Ok(()) => conn = Some(c),
            Err(e) => tracing::warn!(error = %e.message, "cluster heartbeat failed"),
        }
        if !nap(s, every) {
            return;
        }
    }
}

/// One heartbeat: renew, take what is free, sync the engine.
fn beat(s: &Shared, c: &mut PgConnection) -> Result<(), PortError> {
    let node = &s.cfg.node;
    let started = Instant::now();
    let renewed: Option<FlagRow> = diesel::sql_query(
        "UPDATE ferry_cluster_nodes SET heartbeat_at = clock_timestamp(), \
         expires_at = clock_timestamp() + $2::interval WHERE node_id = $1 RETURNING draining AS flag",
    )
    .bind::<Text, _>(node)
    .bind::<Text, _>(lease_interval(s.cfg.lease))
    .get_result(c)
    .optional()
    .map_err(|e| db("renewing the node's heartbeat", e))?;
    // Marked draining in the table (by an operator): take no tenants, and
    // let the others take this node's (as from a draining node); unmarked,
    // it takes tenants again.
    let marked = match renewed {
        Some(r) => r.flag,
        // Removed (a drain of another process under this id, or by hand).
        None => {
            register(c, &s.cfg)?;
            false
        }
    };
    let draining = marked || s.draining.load(Ordering::SeqCst);
    *s.live_until.lock() = Some(started + s.cfg.lease);
    let live: Vec<NameRow> = diesel::sql_query(
        "SELECT node_id AS name FROM ferry_cluster_nodes \
         WHERE expires_at > clock_timestamp() AND NOT draining",
    )
    .load(c)
    .map_err(|e| db("reading live nodes", e))?;
    s.metrics.nodes_live.set(live.len() as i64);
    if !draining {
        acquire(s, c, &live)?;
    }
    sync_engine(s, c, draining)
}

/// Rendezvous hashing: the live node a tenant prefers.
fn preferred<'a>(tenant: &str, live: &'a [NameRow]) -> Option<&'a str> {
    live.iter()
        .map(|n| {
            let h = blake3::hash(format!("{}\0{tenant}", n.name).as_bytes());
            let score = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
            (score, n.name.as_str())
        })
        .max()
        .map(|(_, n)| n)
}

/// Take the leases of tenants that have work (open workflows or unfired
/// timers) and no live owner, where this node is the one they prefer.
fn acquire(s: &Shared, c: &mut PgConnection, live: &[NameRow]) -> Result<(), PortError> {
    let free: Vec<NameRow> = diesel::sql_query(
        "WITH busy AS ( \
           SELECT tenant_id FROM ferry_log_workflows WHERE is_open \
           UNION SELECT w.tenant_id FROM ferry_log_timers t \
             JOIN ferry_log_workflows w ON w.id = t.workflow_id) \
         SELECT b.tenant_id AS name FROM busy b \
         LEFT JOIN ferry_tenant_leases l ON l.tenant_id = b.tenant_id \
         LEFT JOIN ferry_cluster_nodes n ON n.node_id = l.node_id \
           AND n.expires_at > clock_timestamp() AND NOT n.draining \
         WHERE n.node_id IS NULL",
    )
    .load(c)
    .map_err(|e| db("finding tenants without an owner", e))?;
    for t in free {
        if preferred(&t.name, live) != Some(s.cfg.node.as_str()) {
            continue;
        }
        #[derive(QueryableByName)]
        struct Taken {
            #[diesel(sql_type = BigInt)]
            epoch: i64,
            #[diesel(sql_type = Bool)]
            takeover: bool,
        }
        // The row lock serializes this with the old owner's appends (which
        // share-lock it): the takeover commits after them, or they fail.
        let taken: Option<Taken> = diesel::sql_query(
            "INSERT INTO ferry_tenant_leases AS l (tenant_id, node_id, epoch, acquired_at) \
             VALUES ($1, $2, 1, clock_timestamp()) \
             ON CONFLICT (tenant_id) DO UPDATE SET node_id = $2, epoch = l.epoch + 1, \
               acquired_at = clock_timestamp() \
             WHERE l.node_id IS NULL OR NOT EXISTS ( \
               SELECT 1 FROM ferry_cluster_nodes n WHERE n.node_id = l.node_id \
               AND n.expires_at > clock_timestamp() AND NOT n.draining) \
             RETURNING epoch, epoch > 1 AS takeover",
        )
        .bind::<Text, _>(&t.name)
        .bind::<Text, _>(&s.cfg.node)
        .get_result(c)
        .optional()
        .map_err(|e| db("taking a tenant's lease", e))?;
        if let Some(taken) = taken {
            if taken.takeover {
                s.metrics.takeovers.inc();
            }
            tracing::info!(tenant = %t.name, epoch = taken.epoch, takeover = taken.takeover, "took the tenant's lease");
        }
    }
    Ok(())
}

/// Make the engine drive exactly the tenants whose lease this node holds.
fn sync_engine(s: &Shared, c: &mut PgConnection, draining: bool) -> Result<(), PortError> {
    let rows: Vec<LeaseRow> =
        diesel::sql_query("SELECT tenant_id, epoch FROM ferry_tenant_leases WHERE node_id = $1")
            .bind::<Text, _>(&s.cfg.node)
            .load(c)
            .map_err(|e| db("reading the node's leases", e))?;
    let held: HashMap<TenantId, i64> = rows
        .into_iter()
        .filter_map(|r| TenantId::parse(&r.tenant_id).ok().map(|t| (t, r.epoch)))
        .collect();
    let engine = &s.engine;
    for (tenant, epoch) in engine.leases() {
        if held.get(&tenant) != Some(&epoch) {
            engine.release(&tenant);
        }
    }
    if draining {
        return Ok(());
    }
    for (tenant, epoch) in &held {
        if let Err(e) = s.runtime.block_on(engine.adopt(tenant, *epoch)) {
            tracing::warn!(%tenant, error = %e, "adopting a tenant failed; retried at the next heartbeat");
            engine.release(tenant);
        }
    }
    s.metrics.leases.set(engine.leases().len() as i64);
    Ok(())
}

/// Release everything once the node can no longer be sure it is live.
fn watchdog_loop(s: &Shared) {
    while nap(s, Duration::from_millis(100)) {
        let expired = s.live_until.lock().is_some_and(|t| Instant::now() >= t);
        if expired {
            let held = s.engine.leases();
            if !held.is_empty() {
                tracing::warn!(
                    leases = held.len(),
                    "no successful heartbeat for a lease period: this node stops driving every tenant"
                );
                for (tenant, _) in held {
                    s.engine.release(&tenant);
                }
                s.metrics.leases.set(0);
            }
        }
    }
}

fn listen_loop(s: &Shared, conn: PgConnection) {
    let mut conn = Some(conn);
    let mut missed = false;
    while !s.stop.load(Ordering::SeqCst) {
        let mut c = match conn.take().map_or_else(|| establish(&s.cfg.url), Ok) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e.message, "cluster listener: cannot connect");
                missed = true;
                if !nap(s, Duration::from_secs(1)) {
                    return;
                }
                continue;
            }
        };
        if let Err(e) = c.batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}")) {
            tracing::warn!(error = %e, "cluster listener: LISTEN failed");
            missed = true;
            if !nap(s, Duration::from_secs(1)) {
                return;
            }
            continue;
        }
        if std::mem::take(&mut missed) {
            // Notices sent while not listening are lost: look again.
            for (tenant, _) in s.engine.leases() {
                let _ = s.runtime.block_on(s.engine.redrive(&tenant));
            }
        }
        let mut polls = 0u32;
        loop {
            polls = polls.wrapping_add(1);
            let mut broken = false;
            let notices: Vec<_> = c
                .notifications_iter()
                .filter_map(|n| match n {
                    Ok(n) => Some(n.payload),
                    Err(_) => {
                        broken = true;
                        None
                    }
                })
                .collect();
            for payload in notices {
                if let Some((id, node, tenant)) = parse_notice(&payload) {
                    if node != s.cfg.node {
                        s.engine.appended_elsewhere(&tenant, id);
                    }
                }
            }
            // A lost connection shows as an error above, or at the latest
            // in a probe about once a second.
            if broken || (polls.is_multiple_of(40) && c.batch_execute("SELECT 1").is_err()) {
                tracing::warn!("cluster listener: connection lost; reconnecting");
                missed = true;
                break;
            }
            if !nap(s, NOTICE_POLL) {
                return;
            }
        }
    }
}
