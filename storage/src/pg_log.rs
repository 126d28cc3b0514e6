//! `PgLog`: the [`EventLog`] in the PostgreSQL platform database, chosen by
//! `FERRY_EVENT_LOG=postgres` so that ferry nodes can share one store (sled
//! stays the embedded default).
//!
//! Three tables (migration `2026-12-03-000002_event_log`): `ferry_log_events`
//! (one row per event, `Event::encode` bytes), `ferry_log_workflows` (one row
//! per workflow: its summary in the sled log's encoding, and the columns the
//! indexes need) and `ferry_log_timers` (one row per unfired timer). An
//! append writes all three in one transaction, so the indexes — by tenant,
//! by status, open workflows, due timers, idempotency keys, submissions —
//! can never disagree with the events, and an append is acknowledged only
//! after its COMMIT returned (with `synchronous_commit` at least `on`).
//!
//! Group commit: `append` queues its request for one writer thread, which
//! drains what is queued (up to [`BATCH_MAX`]) and applies the requests in
//! order, each in a savepoint of ONE transaction, then commits once and
//! answers them all. Each request is checked exactly as if it were alone:
//! later requests of a batch see earlier ones' writes, and a rejected one
//! rolls back to its savepoint, writing nothing.
//!
//! The checks hold against writers in other processes too, because the
//! database makes them: the stream's row is locked (`FOR UPDATE`) while its
//! version is compared, a new stream's primary key and the idempotency
//! index are unique, and a unique violation is reported as the rejection it
//! means (`VersionConflict`, `DuplicateIdempotencyKey`), after re-reading
//! what the other writer committed.
//!
//! Reads do not go through the writer: each is one statement on a pooled
//! connection, so it sees one committed snapshot, and a read that fails on
//! a pooled connection (say the server restarted) is repeated once on a new
//! one. A commit whose outcome is unknown (the connection broke during it)
//! is answered with `LogError::Io`: the caller re-reads, and the version
//! check makes a repeated append harmless.

use crate::log_metrics::{LogMetrics, Outcome};
use crate::sled_log::layout::{decode_summary, encode_summary};
use crate::tenant_pg::conn::connect;
use crate::tenant_pg::registry::migrate_platform;
use async_trait::async_trait;
use chrono::DateTime;
use diesel::connection::SimpleConnection;
use diesel::pg::Pg;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Array, BigInt, Binary, Bool, Nullable, Text};
use diesel::{Connection, OptionalExtension, PgConnection, QueryableByName, RunQueryDsl};
use ferry_engine::{
    AppendRejection, AppendRequest, DueTimer, Event, EventLog, Fence, ListQuery, LogError,
    TenantId, Timestamp, WorkflowId, WorkflowSummary,
};
use ferry_workflows::ports::PortError;
use parking_lot::Mutex;
use prometheus::Registry;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// The channel every append is announced on (see [`parse_notice`]).
pub const NOTIFY_CHANNEL: &str = "ferry_log";

/// An append's notice: the workflow, the node that appended (`-` for a
/// process that is not a cluster node) and the tenant.
pub fn parse_notice(payload: &str) -> Option<(WorkflowId, String, TenantId)> {
    let mut parts = payload.splitn(3, ' ');
    let id = uuid::Uuid::parse_str(parts.next()?).ok().map(WorkflowId)?;
    let node = parts.next()?.to_owned();
    let tenant = TenantId::parse(parts.next()?).ok()?;
    Some((id, node, tenant))
}

/// Most appends applied in one transaction: it bounds how long the first
/// request of a full batch waits for the last one's statements.
pub const BATCH_MAX: usize = 64;

/// Appends waiting for the writer before `append` itself waits.
const QUEUE_MAX: usize = 1024;

/// Idle read connections kept for reuse.
const IDLE_READERS_MAX: usize = 4;

const CONNECT_TIMEOUT_S: u32 = 10;

struct Pending {
    req: AppendRequest,
    enqueued: Instant,
    reply: oneshot::Sender<Outcome>,
}

/// The event log in PostgreSQL. Dropping it stops the writer thread after
/// the appends already queued.
pub struct PgLog {
    queue: Option<mpsc::Sender<Pending>>,
    writer: Option<JoinHandle<()>>,
    readers: Arc<Readers>,
    metrics: LogMetrics,
}

/// The read connections: made on demand, the idle ones kept for reuse.
struct Readers {
    url: String,
    idle: Mutex<Vec<PgConnection>>,
}

impl PgLog {
    /// Connect to the platform database at `url`, apply the pending
    /// platform migrations (the event log's tables among them) and start the
    /// writer thread.
    pub fn open(url: &str) -> Result<PgLog, LogError> {
        PgLog::open_node(url, None)
    }

    /// `open` for a node of a cluster: `node` is written beside every event
    /// it appends (the step journal) and in the notice of each append, so
    /// the node can tell its own appends from other nodes'.
    pub fn open_node(url: &str, node: Option<&str>) -> Result<PgLog, LogError> {
        let mut conn = establish_writer(url)?;
        migrate_platform(&mut conn).map_err(port_error)?;
        let metrics = LogMetrics::new(BATCH_MAX)?;
        let (queue, rx) = mpsc::channel(QUEUE_MAX);
        let writer = std::thread::Builder::new()
            .name("ferry-pg-log".into())
            .spawn({
                let url = url.to_owned();
                let metrics = metrics.clone();
                let node = node.unwrap_or("-").to_owned();
                move || write_loop(&url, &node, conn, rx, &metrics)
            })
            .map_err(|e| LogError::Io(format!("starting the event log writer: {e}")))?;
        Ok(PgLog {
            queue: Some(queue),
            writer: Some(writer),
            readers: Arc::new(Readers {
                url: url.to_owned(),
                idle: Mutex::new(Vec::new()),
            }),
            metrics,
        })
    }

    /// Register the log's metrics (`ferry_eventlog_*`) in `registry`.
    pub fn register_metrics(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        let readers = Arc::downgrade(&self.readers);
        self.metrics.register(registry, move || {
            readers.upgrade().and_then(|r| r.size().ok())
        })
    }

    fn read_with<T>(
        &self,
        what: &str,
        f: impl Fn(&mut PgConnection) -> Result<T, DieselError>,
    ) -> Result<T, LogError> {
        self.readers.read_with(what, f)
    }

    fn summaries(
        &self,
        what: &str,
        f: impl Fn(&mut PgConnection) -> Result<Vec<SummaryRow>, DieselError>,
    ) -> Result<Vec<WorkflowSummary>, LogError> {
        self.read_with(what, f)?
            .iter()
            .map(|row| decode_summary(&row.summary))
            .collect()
    }
}

impl Readers {
    /// Run one read on a pooled connection; once more on a new connection
    /// if it failed on a reused one (reads are safe to repeat).
    fn read_with<T>(
        &self,
        what: &str,
        f: impl Fn(&mut PgConnection) -> Result<T, DieselError>,
    ) -> Result<T, LogError> {
        let pooled = self.idle.lock().pop();
        let reused = pooled.is_some();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => establish(&self.url)?,
        };
        let result = match f(&mut conn) {
            Err(_) if reused => {
                conn = establish(&self.url)?;
                f(&mut conn)
            }
            other => other,
        };
        match result {
            Ok(value) => {
                let mut idle = self.idle.lock();
                if idle.len() < IDLE_READERS_MAX {
                    idle.push(conn);
                }
                Ok(value)
            }
            Err(e) => Err(db_error(what, e)),
        }
    }

    /// Bytes the log's tables and indexes occupy.
    fn size(&self) -> Result<u64, LogError> {
        let row: CountRow = self.read_with("measuring the event log", |c| {
            diesel::sql_query(
                "SELECT (pg_total_relation_size('ferry_log_workflows') \
                 + pg_total_relation_size('ferry_log_events') \
                 + pg_total_relation_size('ferry_log_timers'))::bigint AS n",
            )
            .get_result(c)
        })?;
        Ok(row.n.max(0) as u64)
    }
}

impl Drop for PgLog {
    fn drop(&mut self) {
        // Closing the queue ends the writer after what is queued.
        self.queue.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn establish(url: &str) -> Result<PgConnection, LogError> {
    connect(url, CONNECT_TIMEOUT_S, "the event log's database", || {
        PortError::permanent(
            "event_log_db_missing",
            "connecting to the event log: the database does not exist",
        )
    })
    .map_err(port_error)
}

fn port_error(e: PortError) -> LogError {
    LogError::Io(format!("{}: {}", e.code, e.message))
}

fn db_error(what: &str, e: DieselError) -> LogError {
    LogError::Io(format!("{what}: {e}"))
}

/// The writer's connection. An append is acknowledged after COMMIT, so
/// COMMIT must wait for the WAL flush even where the database's default
/// (`synchronous_commit = off`) says otherwise.
fn establish_writer(url: &str) -> Result<PgConnection, LogError> {
    let mut conn = establish(url)?;
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Text)]
        value: String,
    }
    let current: Setting =
        diesel::sql_query("SELECT current_setting('synchronous_commit') AS value")
            .get_result(&mut conn)
            .map_err(|e| db_error("reading synchronous_commit", e))?;
    if current.value == "off" {
        conn.batch_execute("SET synchronous_commit TO on")
            .map_err(|e| db_error("setting synchronous_commit", e))?;
    }
    Ok(conn)
}

/// Nanoseconds since the epoch, as stored. Timestamps beyond 1677–2262 do
/// not fit: an append carrying one is refused (no caller builds one).
fn to_ns(t: &Timestamp) -> Result<i64, String> {
    t.timestamp_nanos_opt()
        .ok_or_else(|| format!("timestamp {t} is out of the event log's range"))
}

/// A query bound: out-of-range bounds saturate (nothing stored lies beyond).
fn bound_ns(t: &Timestamp) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

fn from_ns(ns: i64) -> Timestamp {
    DateTime::from_timestamp_nanos(ns)
}

fn parse_id(s: &str) -> Result<WorkflowId, LogError> {
    uuid::Uuid::parse_str(s)
        .map(WorkflowId)
        .map_err(|e| LogError::Corruption(format!("workflow id {s:?}: {e}")))
}

#[derive(QueryableByName)]
struct SummaryRow {
    #[diesel(sql_type = Binary)]
    summary: Vec<u8>,
}

#[derive(QueryableByName)]
struct EventRow {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Binary)]
    body: Vec<u8>,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Text)]
    id: String,
}

#[derive(QueryableByName)]
struct TimerRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Binary)]
    name: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    due_ns: i64,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

// ---------------------------------------------------------------- writing

/// Why one request of a batch wrote nothing.
enum ApplyError {
    Rejected(AppendRejection),
    /// The request cannot be stored as it is (a timestamp out of range).
    Invalid(String),
    Db(DieselError),
}

impl From<DieselError> for ApplyError {
    fn from(e: DieselError) -> Self {
        ApplyError::Db(e)
    }
}

/// The writer thread: batches in, one transaction per batch, answers out.
/// `conn` is the connection `open` made; a broken one is replaced before
/// the next batch.
fn write_loop(
    url: &str,
    node: &str,
    conn: PgConnection,
    mut rx: mpsc::Receiver<Pending>,
    metrics: &LogMetrics,
) {
    let mut conn = Some(conn);
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let results = match conn.take().map_or_else(|| establish_writer(url), Ok) {
            Ok(mut c) => {
                let results = commit_batch(&mut c, node, &batch);
                // After an unknown outcome the connection may be broken or
                // mid-transaction: the next batch gets a new one.
                if results.iter().all(|r| r.is_ok()) {
                    conn = Some(c);
                }
                results
            }
            Err(e) => batch.iter().map(|_| Err(clone_error(&e))).collect(),
        };
        metrics.batch(batch.len());
        for (pending, result) in batch.into_iter().zip(results) {
            metrics.answered(&result, pending.enqueued);
            // A caller that went away does not need its answer.
            let _ = pending.reply.send(result);
        }
    }
}

fn clone_error(e: &LogError) -> LogError {
    match e {
        LogError::Io(m) => LogError::Io(m.clone()),
        LogError::Corruption(m) => LogError::Corruption(m.clone()),
        LogError::Closed => LogError::Closed,
    }
}

/// Apply `batch` in one transaction, each request in its own savepoint.
/// Every answer is final only after COMMIT: if the transaction fails, no
/// request of the batch is acknowledged.
fn commit_batch(conn: &mut PgConnection, node: &str, batch: &[Pending]) -> Vec<Outcome> {
    let committed = conn.transaction::<_, DieselError, _>(|c| {
        let mut answers = Vec::with_capacity(batch.len());
        for pending in batch {
            let req = &pending.req;
            let answer = match c.transaction::<u64, ApplyError, _>(|c| apply(c, node, req)) {
                Ok(version) => Ok(Ok(version)),
                Err(ApplyError::Rejected(r)) => Ok(Err(r)),
                Err(ApplyError::Invalid(why)) => Err(LogError::Io(why)),
                Err(ApplyError::Db(e)) if is_unique_violation(&e) => explain_conflict(c, req)?,
                Err(ApplyError::Db(e)) => Err(db_error("appending to the event log", e)),
            };
            answers.push(answer);
        }
        Ok(answers)
    });
    committed.unwrap_or_else(|e| {
        let e = db_error("committing to the event log", e);
        batch.iter().map(|_| Err(clone_error(&e))).collect()
    })
}

fn is_unique_violation(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}

/// A unique violation means another process committed first: read what
/// it committed and answer with the rejection it amounts to.
fn explain_conflict(c: &mut PgConnection, req: &AppendRequest) -> Result<Outcome, DieselError> {
    let current = current_version(c, &req.id, false)?;
    if current != req.expected_version {
        return Ok(Ok(Err(AppendRejection::VersionConflict {
            expected: req.expected_version,
            current,
        })));
    }
    if let Some(existing) = idempotency_holder(c, &req.summary)? {
        return Ok(Ok(Err(AppendRejection::DuplicateIdempotencyKey {
            existing,
        })));
    }
    Ok(Err(LogError::Io(format!(
        "appending to workflow {}: a unique constraint refused it and nothing conflicting is stored",
        req.id
    ))))
}

/// The stream's version (0 if it has none), locking its row when `lock`.
fn current_version(c: &mut PgConnection, id: &WorkflowId, lock: bool) -> Result<u64, DieselError> {
    #[derive(QueryableByName)]
    struct VersionRow {
        #[diesel(sql_type = BigInt)]
        version: i64,
    }
    let sql = if lock {
        "SELECT version FROM ferry_log_workflows WHERE id = $1::uuid FOR UPDATE"
    } else {
        "SELECT version FROM ferry_log_workflows WHERE id = $1::uuid"
    };
    let row: Option<VersionRow> = diesel::sql_query(sql)
        .bind::<Text, _>(id.to_string())
        .get_result(c)
        .optional()?;
    Ok(row.map_or(0, |r| r.version as u64))
}

/// Another workflow holding `summary`'s idempotency key, if any.
fn idempotency_holder(
    c: &mut PgConnection,
    summary: &WorkflowSummary,
) -> Result<Option<WorkflowId>, DieselError> {
    let Some(key) = &summary.idempotency_key else {
        return Ok(None);
    };
    let row: Option<IdRow> = diesel::sql_query(
        "SELECT id::text AS id FROM ferry_log_workflows \
         WHERE tenant_id = $1 AND idempotency_key = $2 AND id <> $3::uuid",
    )
    .bind::<Text, _>(summary.tenant.as_str())
    .bind::<Binary, _>(key.as_bytes())
    .bind::<Text, _>(summary.id.to_string())
    .get_result(c)
    .optional()?;
    // An id PostgreSQL printed is a valid uuid.
    Ok(row.and_then(|r| uuid::Uuid::parse_str(&r.id).ok().map(WorkflowId)))
}

/// Whether `fence` is the tenant's current lease, held by a live node. The
/// lease row stays share-locked until this transaction ends, so a takeover
/// (which updates that row) waits for the append to commit, and the new
/// owner reads it; once taken over, the old epoch never matches again.
fn lease_holds(
    c: &mut PgConnection,
    tenant: &TenantId,
    fence: &Fence,
) -> Result<bool, DieselError> {
    let row: Option<CountRow> = diesel::sql_query(
        "SELECT 1::bigint AS n FROM ferry_tenant_leases l          JOIN ferry_cluster_nodes n ON n.node_id = l.node_id          WHERE l.tenant_id = $1 AND l.node_id = $2 AND l.epoch = $3          AND n.expires_at > clock_timestamp() FOR SHARE OF l",
    )
    .bind::<Text, _>(tenant.as_str())
    .bind::<Text, _>(&fence.node)
    .bind::<BigInt, _>(fence.epoch)
    .get_result(c)
    .optional()?;
    Ok(row.is_some())
}

/// Check and write one request (inside its savepoint).
fn apply(c: &mut PgConnection, node: &str, req: &AppendRequest) -> Result<u64, ApplyError> {
    let s = &req.summary;
    let id = req.id.to_string();
    let current = current_version(c, &req.id, true)?;
    if current != req.expected_version {
        return Err(ApplyError::Rejected(AppendRejection::VersionConflict {
            expected: req.expected_version,
            current,
        }));
    }
    if let Some(fence) = &req.fence {
        if !lease_holds(c, &s.tenant, fence)? {
            return Err(ApplyError::Rejected(AppendRejection::Fenced {
                tenant: s.tenant.clone(),
                node: fence.node.clone(),
                epoch: fence.epoch,
            }));
        }
    }
    if let Some(existing) = idempotency_holder(c, s)? {
        return Err(ApplyError::Rejected(
            AppendRejection::DuplicateIdempotencyKey { existing },
        ));
    }
    let created_ns = to_ns(&s.created_at).map_err(ApplyError::Invalid)?;
    let timers: Vec<(Vec<u8>, i64)> = s
        .timers
        .iter()
        .map(|t| to_ns(&t.due_at).map(|due| (t.name.clone().into_bytes(), due)))
        .collect::<Result<_, _>>()
        .map_err(ApplyError::Invalid)?;
    let sql = if req.expected_version == 0 {
        // A plain INSERT: a concurrent creator's row makes it a unique
        // violation, never an overwrite.
        "INSERT INTO ferry_log_workflows \
         (id, tenant_id, kind, status, is_open, version, created_ns, idempotency_key, summary) \
         VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9)"
    } else {
        "UPDATE ferry_log_workflows SET tenant_id = $2, kind = $3, status = $4, is_open = $5, \
         version = $6, created_ns = $7, idempotency_key = $8, summary = $9 WHERE id = $1::uuid"
    };
    diesel::sql_query(sql)
        .bind::<Text, _>(&id)
        .bind::<Text, _>(s.tenant.as_str())
        .bind::<Binary, _>(s.kind.as_bytes())
        .bind::<Text, _>(s.status.as_str())
        .bind::<Bool, _>(s.status.is_open())
        .bind::<BigInt, _>(s.version as i64)
        .bind::<BigInt, _>(created_ns)
        .bind::<Nullable<Binary>, _>(s.idempotency_key.as_ref().map(String::as_bytes))
        .bind::<Binary, _>(encode_summary(s))
        .execute(c)?;
    let seqs: Vec<i64> = (1..=req.events.len() as i64)
        .map(|i| req.expected_version as i64 + i)
        .collect();
    let bodies: Vec<Vec<u8>> = req.events.iter().map(Event::encode).collect();
    let (by, epoch) = match &req.fence {
        Some(f) => (Some(f.node.as_str()), Some(f.epoch)),
        None => ((node != "-").then_some(node), None),
    };
    diesel::sql_query(
        "INSERT INTO ferry_log_events (workflow_id, seq, body, node_id, epoch) \
         SELECT $1::uuid, e.seq, e.body, $4, $5 \
         FROM unnest($2::bigint[], $3::bytea[]) AS e(seq, body)",
    )
    .bind::<Text, _>(&id)
    .bind::<Array<BigInt>, _>(seqs)
    .bind::<Array<Binary>, _>(bodies)
    .bind::<Nullable<Text>, _>(by)
    .bind::<Nullable<BigInt>, _>(epoch)
    .execute(c)?;
    // Delivered at COMMIT to every node listening (none if rolled back):
    // `<workflow> <node> <tenant>`. A process that is not a cluster node
    // has no one to tell.
    if node != "-" {
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<Text, _>(NOTIFY_CHANNEL)
            .bind::<Text, _>(format!("{id} {node} {}", s.tenant.as_str()))
            .execute(c)?;
    }
    diesel::sql_query("DELETE FROM ferry_log_timers WHERE workflow_id = $1::uuid")
        .bind::<Text, _>(&id)
        .execute(c)?;
    if !timers.is_empty() {
        let (names, dues): (Vec<Vec<u8>>, Vec<i64>) = timers.into_iter().unzip();
        diesel::sql_query(
            "INSERT INTO ferry_log_timers (workflow_id, name, due_ns) \
             SELECT $1::uuid, t.name, t.due FROM unnest($2::bytea[], $3::bigint[]) AS t(name, due)",
        )
        .bind::<Text, _>(&id)
        .bind::<Array<Binary>, _>(names)
        .bind::<Array<BigInt>, _>(dues)
        .execute(c)?;
    }
    Ok(s.version)
}

// ---------------------------------------------------------------- reading

#[async_trait]
impl EventLog for PgLog {
    async fn append(&self, req: AppendRequest) -> Outcome {
        req.assert_well_formed();
        let queue = self.queue.as_ref().ok_or(LogError::Closed)?;
        let (reply, answer) = oneshot::channel();
        let enqueued = Instant::now();
        queue
            .send(Pending {
                req,
                enqueued,
                reply,
            })
            .await
            .map_err(|_| LogError::Closed)?;
        answer.await.map_err(|_| LogError::Closed)?
    }

    fn read(&self, id: WorkflowId) -> Result<Vec<Event>, LogError> {
        let rows: Vec<EventRow> = self.read_with("reading a workflow's events", |c| {
            diesel::sql_query(
                "SELECT seq, body FROM ferry_log_events WHERE workflow_id = $1::uuid ORDER BY seq",
            )
            .bind::<Text, _>(id.to_string())
            .load(c)
        })?;
        rows.iter()
            .enumerate()
            .map(|(i, row)| {
                let corrupt = |why: String| LogError::Corruption(format!("workflow {id}: {why}"));
                if row.seq != i as i64 + 1 {
                    return Err(corrupt(format!(
                        "event {} stored after {i} events",
                        row.seq
                    )));
                }
                Event::decode(&row.body)
                    .map_err(|e| corrupt(format!("event {} does not decode: {e}", row.seq)))
            })
            .collect()
    }

    fn summary(&self, id: WorkflowId) -> Result<Option<WorkflowSummary>, LogError> {
        let row: Option<SummaryRow> = self.read_with("reading a workflow's summary", |c| {
            diesel::sql_query("SELECT summary FROM ferry_log_workflows WHERE id = $1::uuid")
                .bind::<Text, _>(id.to_string())
                .get_result(c)
                .optional()
        })?;
        row.map(|r| decode_summary(&r.summary)).transpose()
    }

    fn list(&self, q: &ListQuery) -> Result<Vec<WorkflowSummary>, LogError> {
        // Only the filters the query sets, so the planner picks the
        // narrowest index (tenant, status or the primary key).
        let mut clauses = vec![];
        let mut n = 0;
        let mut param = || {
            n += 1;
            format!("${n}")
        };
        if q.tenant.is_some() {
            clauses.push(format!("tenant_id = {}", param()));
        }
        if q.status.is_some() {
            clauses.push(format!("status = {}", param()));
        }
        if q.kind.is_some() {
            clauses.push(format!("kind = {}", param()));
        }
        let (cmp, order) = if q.newest_first {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        if q.after.is_some() {
            clauses.push(format!("id {cmp} {}::uuid", param()));
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT summary FROM ferry_log_workflows {filter} ORDER BY id {order} LIMIT {}",
            param()
        );
        self.summaries("listing workflows", |c| {
            let mut query = diesel::sql_query(&sql).into_boxed::<Pg>();
            if let Some(t) = &q.tenant {
                query = query.bind::<Text, _>(t.as_str().to_owned());
            }
            if let Some(s) = q.status {
                query = query.bind::<Text, _>(s.as_str());
            }
            if let Some(k) = &q.kind {
                query = query.bind::<Binary, _>(k.clone().into_bytes());
            }
            if let Some(after) = q.after {
                query = query.bind::<Text, _>(after.to_string());
            }
            query.bind::<BigInt, _>(q.effective_limit() as i64).load(c)
        })
    }

    fn open(&self) -> Result<Vec<WorkflowSummary>, LogError> {
        self.summaries("listing open workflows", |c| {
            diesel::sql_query("SELECT summary FROM ferry_log_workflows WHERE is_open ORDER BY id")
                .load(c)
        })
    }

    fn due_timers(&self, until: Timestamp, limit: usize) -> Result<Vec<DueTimer>, LogError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<TimerRow> = self.read_with("reading due timers", |c| {
            diesel::sql_query(
                "SELECT workflow_id::text AS id, name, due_ns FROM ferry_log_timers \
                 WHERE due_ns <= $1 ORDER BY due_ns, workflow_id, name LIMIT $2",
            )
            .bind::<BigInt, _>(bound_ns(&until))
            .bind::<BigInt, _>(limit)
            .load(c)
        })?;
        rows.into_iter().map(due_timer).collect()
    }

    fn next_timer(&self) -> Result<Option<DueTimer>, LogError> {
        let row: Option<TimerRow> = self.read_with("reading the next timer", |c| {
            diesel::sql_query(
                "SELECT workflow_id::text AS id, name, due_ns FROM ferry_log_timers \
                 ORDER BY due_ns, workflow_id, name LIMIT 1",
            )
            .get_result(c)
            .optional()
        })?;
        row.map(due_timer).transpose()
    }

    fn find_idempotency(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<WorkflowId>, LogError> {
        let row: Option<IdRow> = self.read_with("looking up an idempotency key", |c| {
            diesel::sql_query(
                "SELECT id::text AS id FROM ferry_log_workflows \
                 WHERE tenant_id = $1 AND idempotency_key = $2",
            )
            .bind::<Text, _>(tenant.as_str())
            .bind::<Binary, _>(key.as_bytes())
            .get_result(c)
            .optional()
        })?;
        row.map(|r| parse_id(&r.id)).transpose()
    }

    fn count_submitted_since(
        &self,
        tenant: &TenantId,
        kind: &str,
        since: Timestamp,
    ) -> Result<u64, LogError> {
        let row: CountRow = self.read_with("counting submissions", |c| {
            diesel::sql_query(
                "SELECT count(*) AS n FROM ferry_log_workflows \
                 WHERE tenant_id = $1 AND kind = $2 AND created_ns >= $3",
            )
            .bind::<Text, _>(tenant.as_str())
            .bind::<Binary, _>(kind.as_bytes())
            .bind::<BigInt, _>(bound_ns(&since))
            .get_result(c)
        })?;
        Ok(row.n as u64)
    }

    fn size_bytes(&self) -> u64 {
        self.readers.size().unwrap_or(0)
    }

    /// Every ferry node on the platform database may append.
    fn has_other_writers(&self) -> bool {
        true
    }
}

fn due_timer(row: TimerRow) -> Result<DueTimer, LogError> {
    let workflow = parse_id(&row.id)?;
    Ok(DueTimer {
        name: String::from_utf8(row.name).map_err(|_| {
            LogError::Corruption(format!("a timer name of workflow {workflow} is not UTF-8"))
        })?,
        workflow,
        due_at: from_ns(row.due_ns),
    })
}
