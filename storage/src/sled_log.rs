//! `SledLog`: the durable [`EventLog`] on sled 0.34, with group commit.
//!
//! Layout (one sled tree each; `ts` is a timestamp as 8 bytes of seconds with
//! the sign bit flipped, then 4 bytes of nanoseconds, all big-endian, so byte
//! order is time order down to the nanosecond and the `due_at` a timer was
//! scheduled with comes back exactly):
//!
//! | tree         | key                              | value                |
//! |--------------|----------------------------------|----------------------|
//! | `events`     | id (16) ++ seq u64 BE            | `Event::encode()`    |
//! | `workflows`  | id                               | summary JSON         |
//! | `by_tenant`  | tenant ++ 0x00 ++ ts(created) ++ id | kind              |
//! | `tenant_ids` | tenant ++ 0x00 ++ id             | empty                |
//! | `by_status`  | status ++ 0x00 ++ id             | empty                |
//! | `open`       | id                               | empty                |
//! | `timers`     | ts(due) ++ id ++ name            | empty                |
//! | `idem`       | tenant ++ 0x00 ++ key            | id                   |
//!
//! `by_tenant` is in creation order for `count_submitted_since`; `tenant_ids`
//! is in id order because listings page by id. Tenant ids never contain 0x00,
//! so the separator keeps `acme` and `acme-eu` apart.
//!
//! One applier thread does all writes. It drains every queued append (up to
//! [`BATCH_MAX`]) and applies the batch as ONE sled transaction over all
//! trees: per append, in order, it checks `expected_version` against the
//! stored summary and the idempotency key against `idem`, then writes the
//! events, the summary and exactly the index rows that changed (a rejected
//! append writes nothing). It hands the applied batch to a syncer thread and
//! goes on with the next batch; the syncer makes every batch handed to it so
//! far durable with one sync and only then answers their callers. Many
//! workflows thus share one sync (group commit), applying overlaps syncing,
//! a crash recovers a batch whole or not at all, and the version check never
//! races because one thread does all writes.
//!
//! Durability: sled 0.34's `flush` ends in `sync_file_range`, which writes
//! the pages but neither flushes the drive's cache nor commits the file's
//! metadata (its size, as the log grows). So after `flush` the syncer
//! calls `fdatasync` on its own handle of sled's `db` file (durability is per
//! inode, so a second descriptor is as good as sled's), `fsync`s blob files
//! sled wrote since the last batch (sled writes them without any sync), and
//! `fsync`s a directory whose entries changed. A failed sync poisons the log:
//! after it nothing is acknowledged any more, because what reached the disk
//! is unknown (the "fsyncgate" lesson: retrying fsync proves nothing).
//!
//! Readers do not go through these threads. A sled transaction commits under
//! sled's global write lock, so a single read sees all of an append or none
//! of it; a reader may see an append a few milliseconds before it is durable
//! and acknowledged (as with any group-committing database).

use ferry_engine::log::LIST_LIMIT_MAX;
use ferry_engine::{
    AppendRejection, AppendRequest, DueTimer, Event, EventLog, ListQuery, LogError, TenantId,
    Timestamp, WorkflowId, WorkflowSummary,
};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::Transactional;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

pub const TREE_EVENTS: &str = "events";
pub const TREE_WORKFLOWS: &str = "workflows";
pub const TREE_BY_TENANT: &str = "by_tenant";
pub const TREE_TENANT_IDS: &str = "tenant_ids";
pub const TREE_BY_STATUS: &str = "by_status";
pub const TREE_OPEN: &str = "open";
pub const TREE_TIMERS: &str = "timers";
pub const TREE_IDEM: &str = "idem";

/// Most append requests applied in one transaction. It bounds how long the
/// first request of a full batch waits for the last one's writes (about
/// 30 µs each) and how long sled's write lock blocks readers.
pub const BATCH_MAX: usize = 256;

/// Most applied batches waiting for the syncer. While one sync runs, the
/// applier goes on applying the next batches (CPU work overlaps I/O); beyond
/// this many it waits, so memory stays bounded when the disk is slow.
pub const PIPELINE_BATCHES_MAX: usize = 8;

/// Most append requests waiting for the applier; beyond it `append` waits
/// (asynchronously) for room, which is the log's back-pressure.
pub const QUEUE_MAX: usize = 4096;

/// sled's page cache. The log's hot set is the open workflows' summaries and
/// streams; the cold history stays on disk.
pub const CACHE_CAPACITY_BYTES: u64 = 128 * 1024 * 1024;

/// Buckets of `ferry_eventlog_commit_seconds`: 0.1 ms .. ~1 s.
const COMMIT_SECONDS_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.004, 0.006, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

type Outcome = Result<Result<u64, AppendRejection>, LogError>;

/// The durable event log. Cheap to share behind an `Arc`; dropping the last
/// handle finishes queued appends, syncs, and stops the log's threads.
pub struct SledLog {
    path: PathBuf,
    shared: Arc<Shared>,
    sender: Option<mpsc::Sender<Request>>,
    /// The applier, then the syncer: the order they must stop in.
    threads: Vec<JoinHandle<()>>,
    metrics: Metrics,
}

/// What the log's threads, the readers and the size collector share.
struct Shared {
    db: sled::Db,
    trees: Trees,
}

struct Trees {
    events: sled::Tree,
    workflows: sled::Tree,
    by_tenant: sled::Tree,
    tenant_ids: sled::Tree,
    by_status: sled::Tree,
    open: sled::Tree,
    timers: sled::Tree,
    idem: sled::Tree,
}

/// The index trees, as positions in the array `apply_batch` hands to `apply_one`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Index {
    ByTenant = 0,
    TenantIds = 1,
    ByStatus = 2,
    Open = 3,
    Timers = 4,
    Idem = 5,
}

/// One index row a summary implies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    index: Index,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// An append, encoded by the caller's task so the applier only writes.
struct Request {
    id: WorkflowId,
    expected_version: u64,
    new_version: u64,
    events: Vec<Vec<u8>>,
    summary_json: Vec<u8>,
    idem_key: Option<Vec<u8>>,
    entries: Vec<Entry>,
    enqueued: Instant,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Clone)]
struct Metrics {
    commit_seconds: Histogram,
    batch_size: Histogram,
    appends: IntCounterVec,
}

impl Metrics {
    fn new() -> Result<Metrics, prometheus::Error> {
        let batch_buckets: Vec<f64> = (0..=BATCH_MAX.trailing_zeros())
            .map(|p| f64::from(1u32 << p))
            .collect();
        Ok(Metrics {
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "ferry_eventlog_commit_seconds",
                    "Time from an append's call to its durable acknowledgement.",
                )
                .buckets(COMMIT_SECONDS_BUCKETS.to_vec()),
            )?,
            batch_size: Histogram::with_opts(
                HistogramOpts::new(
                    "ferry_eventlog_batch_size",
                    "Appends made durable by one group-commit sync.",
                )
                .buckets(batch_buckets),
            )?,
            appends: IntCounterVec::new(
                Opts::new(
                    "ferry_eventlog_appends_total",
                    "Appends answered, by outcome (ok, conflict, duplicate, error).",
                ),
                &["outcome"],
            )?,
        })
    }
}

/// `ferry_eventlog_size_bytes`, measured when scraped. It holds the database
/// weakly so a registry never keeps a closed log's files open.
struct SizeCollector {
    shared: Weak<Shared>,
    gauge: IntGauge,
}

impl Collector for SizeCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        if let Some(shared) = self.shared.upgrade() {
            if let Ok(bytes) = shared.db.size_on_disk() {
                self.gauge.set(i64::try_from(bytes).unwrap_or(i64::MAX));
            }
        }
        self.gauge.collect()
    }
}

fn sled_err(e: sled::Error) -> LogError {
    match e {
        sled::Error::Corruption { at, .. } => {
            LogError::Corruption(format!("sled detected corruption at {at:?}"))
        }
        other => LogError::Io(other.to_string()),
    }
}

fn io_err(context: &str, e: io::Error) -> LogError {
    LogError::Io(format!("{context}: {e}"))
}

// ---------------------------------------------------------------------------
// Key encoding.
// ---------------------------------------------------------------------------

const TS_LEN: usize = 12;
const ID_LEN: usize = 16;

fn ts_key(t: &Timestamp) -> [u8; TS_LEN] {
    let mut out = [0u8; TS_LEN];
    // Flipping the sign bit makes two's-complement seconds sort as unsigned.
    let secs = (t.timestamp() as u64) ^ (1 << 63);
    out[..8].copy_from_slice(&secs.to_be_bytes());
    out[8..].copy_from_slice(&t.timestamp_subsec_nanos().to_be_bytes());
    out
}

fn ts_from_key(b: &[u8]) -> Result<Timestamp, LogError> {
    let bad = || LogError::Corruption(format!("bad timestamp key {b:?}"));
    let secs: [u8; 8] = b.get(..8).and_then(|s| s.try_into().ok()).ok_or_else(bad)?;
    let nanos: [u8; 4] = b
        .get(8..TS_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(bad)?;
    let secs = (u64::from_be_bytes(secs) ^ (1 << 63)) as i64;
    chrono::DateTime::from_timestamp(secs, u32::from_be_bytes(nanos)).ok_or_else(bad)
}

fn id_from(b: &[u8]) -> Result<WorkflowId, LogError> {
    let bytes: [u8; ID_LEN] = b
        .try_into()
        .map_err(|_| LogError::Corruption(format!("bad workflow id of {} bytes", b.len())))?;
    Ok(WorkflowId::from_bytes(bytes))
}

fn event_key(id: &WorkflowId, seq: u64) -> [u8; ID_LEN + 8] {
    let mut k = [0u8; ID_LEN + 8];
    k[..ID_LEN].copy_from_slice(id.as_bytes());
    k[ID_LEN..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// `tenant ++ 0x00`: the prefix of a tenant's rows in tenant-keyed trees.
fn tenant_prefix(tenant: &TenantId) -> Vec<u8> {
    let mut k = Vec::with_capacity(tenant.as_str().len() + 1 + TS_LEN + ID_LEN);
    k.extend_from_slice(tenant.as_str().as_bytes());
    k.push(0);
    k
}

/// The first key after every key starting with `prefix` (which ends in 0x00).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

fn idem_key(tenant: &TenantId, key: &str) -> Vec<u8> {
    let mut k = tenant_prefix(tenant);
    k.extend_from_slice(key.as_bytes());
    k
}

/// Every index row `s` implies.
fn index_entries(s: &WorkflowSummary) -> Vec<Entry> {
    let id = s.id.as_bytes();
    let mut out = Vec::with_capacity(5 + s.timers.len());
    let mut by_tenant = tenant_prefix(&s.tenant);
    by_tenant.extend_from_slice(&ts_key(&s.created_at));
    by_tenant.extend_from_slice(id);
    out.push(Entry {
        index: Index::ByTenant,
        key: by_tenant,
        value: s.kind.as_bytes().to_vec(),
    });
    let mut tenant_ids = tenant_prefix(&s.tenant);
    tenant_ids.extend_from_slice(id);
    out.push(Entry {
        index: Index::TenantIds,
        key: tenant_ids,
        value: vec![],
    });
    let mut by_status = s.status.as_str().as_bytes().to_vec();
    by_status.push(0);
    by_status.extend_from_slice(id);
    out.push(Entry {
        index: Index::ByStatus,
        key: by_status,
        value: vec![],
    });
    if s.status.is_open() {
        out.push(Entry {
            index: Index::Open,
            key: id.to_vec(),
            value: vec![],
        });
    }
    for t in &s.timers {
        let mut k = ts_key(&t.due_at).to_vec();
        k.extend_from_slice(id);
        k.extend_from_slice(t.name.as_bytes());
        out.push(Entry {
            index: Index::Timers,
            key: k,
            value: vec![],
        });
    }
    if let Some(key) = &s.idempotency_key {
        out.push(Entry {
            index: Index::Idem,
            key: idem_key(&s.tenant, key),
            value: id.to_vec(),
        });
    }
    out
}

fn decode_summary(raw: &[u8]) -> Result<WorkflowSummary, LogError> {
    serde_json::from_slice(raw)
        .map_err(|e| LogError::Corruption(format!("undecodable workflow summary: {e}")))
}

fn decode_timer(key: &[u8]) -> Result<DueTimer, LogError> {
    if key.len() < TS_LEN + ID_LEN {
        return Err(LogError::Corruption(format!("short timer key {key:?}")));
    }
    let name = std::str::from_utf8(&key[TS_LEN + ID_LEN..])
        .map_err(|_| LogError::Corruption(format!("timer name is not UTF-8 in {key:?}")))?;
    Ok(DueTimer {
        workflow: id_from(&key[TS_LEN..TS_LEN + ID_LEN])?,
        name: name.to_owned(),
        due_at: ts_from_key(&key[..TS_LEN])?,
    })
}

/// `ListQuery::limit` as every implementation reads it: 0 means "as many as
/// allowed", and no page is longer than `LIST_LIMIT_MAX`.
fn effective_limit(limit: usize) -> usize {
    if limit == 0 {
        LIST_LIMIT_MAX
    } else {
        limit.min(LIST_LIMIT_MAX)
    }
}

// ---------------------------------------------------------------------------
// Opening and closing.
// ---------------------------------------------------------------------------

impl SledLog {
    /// Open (or create) the log in the directory `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<SledLog, LogError> {
        let path = path.as_ref().to_path_buf();
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(CACHE_CAPACITY_BYTES)
            // The syncer flushes every batch itself; sled's own timed
            // flush would only compete with it for the log's I/O.
            .flush_every_ms(None)
            .open()
            .map_err(sled_err)?;
        let tree = |name: &str| db.open_tree(name).map_err(sled_err);
        let trees = Trees {
            events: tree(TREE_EVENTS)?,
            workflows: tree(TREE_WORKFLOWS)?,
            by_tenant: tree(TREE_BY_TENANT)?,
            tenant_ids: tree(TREE_TENANT_IDS)?,
            by_status: tree(TREE_BY_STATUS)?,
            open: tree(TREE_OPEN)?,
            timers: tree(TREE_TIMERS)?,
            idem: tree(TREE_IDEM)?,
        };
        // Creating trees is a write too; make it and sled's files durable
        // before anything is acknowledged.
        db.flush().map_err(sled_err)?;
        let syncer = Syncer::open(&path)?;
        let shared = Arc::new(Shared { db, trees });
        let metrics = Metrics::new().map_err(|e| LogError::Io(format!("metrics: {e}")))?;
        let (sender, receiver) = mpsc::channel(QUEUE_MAX);
        let (to_syncer, from_applier) = std::sync::mpsc::sync_channel(PIPELINE_BATCHES_MAX);
        let poisoned = Arc::new(parking_lot::Mutex::new(None));
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|e| io_err("spawning an event-log thread", e))
        };
        let syncer_thread = {
            let (shared, poisoned, metrics) =
                (Arc::clone(&shared), Arc::clone(&poisoned), metrics.clone());
            spawn(
                "ferry-eventlog-sync",
                Box::new(move || sync_loop(&shared, syncer, from_applier, &poisoned, &metrics)),
            )?
        };
        let applier_thread = {
            let shared = Arc::clone(&shared);
            spawn(
                "ferry-eventlog-apply",
                Box::new(move || apply_loop(&shared, receiver, to_syncer, &poisoned)),
            )?
        };
        Ok(SledLog {
            path,
            shared,
            sender: Some(sender),
            threads: vec![applier_thread, syncer_thread],
            metrics,
        })
    }

    /// The directory the log lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Register the log's metrics (`ferry_eventlog_*`) in `registry`.
    pub fn register_metrics(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.metrics.commit_seconds.clone()))?;
        registry.register(Box::new(self.metrics.batch_size.clone()))?;
        registry.register(Box::new(self.metrics.appends.clone()))?;
        registry.register(Box::new(SizeCollector {
            shared: Arc::downgrade(&self.shared),
            gauge: IntGauge::new(
                "ferry_eventlog_size_bytes",
                "Bytes the event log occupies on disk.",
            )?,
        }))?;
        Ok(())
    }

    fn trees(&self) -> &Trees {
        &self.shared.trees
    }

    fn summary_of(&self, id: &[u8]) -> Result<Option<WorkflowSummary>, LogError> {
        match self.trees().workflows.get(id).map_err(sled_err)? {
            Some(raw) => decode_summary(&raw).map(Some),
            None => Ok(None),
        }
    }

    /// Walk an id-keyed index (`key = prefix ++ id`) from the cursor on,
    /// keeping the summaries `keep` accepts, up to `limit`.
    fn collect_by_index(
        &self,
        tree: &sled::Tree,
        prefix: &[u8],
        after: Option<WorkflowId>,
        limit: usize,
        keep: impl Fn(&WorkflowSummary) -> bool,
    ) -> Result<Vec<WorkflowSummary>, LogError> {
        let start = match after {
            Some(after) => {
                let mut k = prefix.to_vec();
                k.extend_from_slice(after.as_bytes());
                Bound::Excluded(k)
            }
            None => Bound::Included(prefix.to_vec()),
        };
        let end = if prefix.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(prefix_end(prefix))
        };
        let mut out = vec![];
        for item in tree.range::<Vec<u8>, _>((start, end)) {
            if out.len() >= limit {
                break;
            }
            let (key, _) = item.map_err(sled_err)?;
            let id = key
                .get(prefix.len()..)
                .ok_or_else(|| LogError::Corruption(format!("short index key {key:?}")))?;
            let Some(summary) = self.summary_of(id)? else {
                return Err(LogError::Corruption(format!(
                    "index names workflow {} without a summary",
                    id_from(id)?
                )));
            };
            // The index row and the summary are two reads; an append may
            // land between them, so the summary has the last word.
            if keep(&summary) {
                out.push(summary);
            }
        }
        Ok(out)
    }
}

impl Drop for SledLog {
    fn drop(&mut self) {
        // Closing the channel lets the applier finish what is queued; then
        // the syncer syncs once more and answers; then both return.
        drop(self.sender.take());
        for handle in self.threads.drain(..) {
            if handle.join().is_err() {
                tracing::error!(path = %self.path.display(), "an event-log thread panicked");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The committer: an applier thread and a syncer thread.
// ---------------------------------------------------------------------------

/// A batch the applier has written (in memory) and the syncer must make
/// durable before answering.
struct Applied {
    requests: Vec<Request>,
    outcomes: Vec<Outcome>,
}

/// Applies queued appends in batches and hands each batch to the syncer.
fn apply_loop(
    shared: &Shared,
    mut receiver: mpsc::Receiver<Request>,
    to_syncer: std::sync::mpsc::SyncSender<Applied>,
    poisoned: &parking_lot::Mutex<Option<String>>,
) {
    while let Some(first) = receiver.blocking_recv() {
        let mut requests = Vec::with_capacity(BATCH_MAX.min(receiver.len() + 1));
        requests.push(first);
        while requests.len() < BATCH_MAX {
            match receiver.try_recv() {
                Ok(req) => requests.push(req),
                Err(_) => break,
            }
        }
        let why = poisoned.lock().clone();
        let outcomes = match why {
            Some(why) => requests
                .iter()
                .map(|_| Err(LogError::Io(why.clone())))
                .collect(),
            None => apply_batch(&shared.trees, &requests),
        };
        if to_syncer.send(Applied { requests, outcomes }).is_err() {
            // The syncer is gone (it only stops when we do, or by panicking);
            // dropped reply channels answer the callers with `Closed`.
            return;
        }
    }
}

/// Makes applied batches durable, many at a time, then answers them.
fn sync_loop(
    shared: &Shared,
    mut syncer: Syncer,
    from_applier: std::sync::mpsc::Receiver<Applied>,
    poisoned: &parking_lot::Mutex<Option<String>>,
    metrics: &Metrics,
) {
    let mut pending: Vec<Applied> = Vec::with_capacity(PIPELINE_BATCHES_MAX);
    while let Ok(first) = from_applier.recv() {
        pending.push(first);
        pending.extend(from_applier.try_iter());
        let wrote = pending
            .iter()
            .flat_map(|a| &a.outcomes)
            .any(|o| matches!(o, Ok(Ok(_))));
        if wrote && poisoned.lock().is_none() {
            // sled's flush covers everything applied so far, which includes
            // every batch in `pending`: the applier applies before it sends.
            let synced = shared
                .db
                .flush()
                .map_err(sled_err)
                .and_then(|_| syncer.sync());
            if let Err(e) = synced {
                let why = format!("event log sync failed, log is read-only until restart: {e}");
                tracing::error!(path = %syncer.dir.display(), "{why}");
                *poisoned.lock() = Some(why);
            }
        }
        let why = poisoned.lock().clone();
        let answered: usize = pending.iter().map(|a| a.requests.len()).sum();
        metrics.batch_size.observe(answered as f64);
        for applied in pending.drain(..) {
            for (req, mut outcome) in applied.requests.into_iter().zip(applied.outcomes) {
                if let Some(why) = &why {
                    // Nothing here is known to be durable, and a rejection
                    // may rest on a write that was lost: fail them all.
                    outcome = Err(LogError::Io(why.clone()));
                }
                let label = match &outcome {
                    Ok(Ok(_)) => "ok",
                    Ok(Err(AppendRejection::VersionConflict { .. })) => "conflict",
                    Ok(Err(AppendRejection::DuplicateIdempotencyKey { .. })) => "duplicate",
                    Err(_) => "error",
                };
                metrics.appends.with_label_values(&[label]).inc();
                metrics
                    .commit_seconds
                    .observe(req.enqueued.elapsed().as_secs_f64());
                // A caller that gave up waiting is no reason to stop.
                let _ = req.reply.send(outcome);
            }
        }
    }
    // The applier is gone, so every handle is: leave the files synced for
    // the next open.
    if poisoned.lock().is_none() {
        if let Err(e) = shared
            .db
            .flush()
            .map_err(sled_err)
            .and_then(|_| syncer.sync())
        {
            tracing::error!(path = %syncer.dir.display(), "final event-log sync failed: {e}");
        }
    }
}

/// Apply a whole batch as ONE transaction over every tree.
///
/// One transaction per batch rather than per append, because sled 0.34 ends
/// every transaction by writing out its I/O buffer (a `pwrite` and a
/// `sync_file_range` before and after the commit); per append that costs
/// more than the shared sync saves. Atomicity is kept where it matters: a
/// crash recovers all of a batch or none of it, and a batch is acknowledged
/// only after its sync. Rejected requests simply write nothing; later
/// requests of the batch see the earlier ones' writes (a transaction reads
/// its own writes), so their checks are exactly as if applied one by one.
fn apply_batch(t: &Trees, batch: &[Request]) -> Vec<Outcome> {
    let result = (
        &t.events,
        &t.workflows,
        &t.by_tenant,
        &t.tenant_ids,
        &t.by_status,
        &t.open,
        &t.timers,
        &t.idem,
    )
        .transaction(
            |(events, workflows, by_tenant, tenant_ids, by_status, open, timers, idem)| {
                let indexes: [&TransactionalTree; 6] =
                    [by_tenant, tenant_ids, by_status, open, timers, idem];
                let mut outcomes = Vec::with_capacity(batch.len());
                for req in batch {
                    outcomes.push(apply_one(events, workflows, &indexes, req)?);
                }
                Ok::<_, ConflictableTransactionError<()>>(outcomes)
            },
        );
    match result {
        Ok(outcomes) => outcomes,
        Err(e) => {
            let why = match e {
                TransactionError::Storage(e) => sled_err(e),
                TransactionError::Abort(()) => LogError::Io("batch transaction aborted".into()),
            };
            batch.iter().map(|_| Err(clone_err(&why))).collect()
        }
    }
}

fn clone_err(e: &LogError) -> LogError {
    match e {
        LogError::Io(m) => LogError::Io(m.clone()),
        LogError::Corruption(m) => LogError::Corruption(m.clone()),
        LogError::Closed => LogError::Closed,
    }
}

/// One append inside the batch transaction: check, then write events,
/// summary and exactly the index rows that changed.
fn apply_one(
    events: &TransactionalTree,
    workflows: &TransactionalTree,
    indexes: &[&TransactionalTree; 6],
    req: &Request,
) -> Result<Outcome, UnabortableTransactionError> {
    let id = req.id.as_bytes();
    let prev = match workflows.get(id)? {
        Some(raw) => match decode_summary(&raw) {
            Ok(s) => Some(s),
            Err(e) => {
                return Ok(Err(LogError::Corruption(format!(
                    "workflow {}: {e}",
                    req.id
                ))))
            }
        },
        None => None,
    };
    let current = prev.as_ref().map_or(0, |s| s.version);
    if current != req.expected_version {
        return Ok(Ok(Err(AppendRejection::VersionConflict {
            expected: req.expected_version,
            current,
        })));
    }
    if let Some(key) = &req.idem_key {
        if let Some(owner) = indexes[Index::Idem as usize].get(key)? {
            if owner.as_ref() != id {
                return Ok(match id_from(&owner) {
                    Ok(existing) => Ok(Err(AppendRejection::DuplicateIdempotencyKey { existing })),
                    Err(e) => Err(e),
                });
            }
        }
    }
    for (i, event) in req.events.iter().enumerate() {
        let seq = req.expected_version + 1 + i as u64;
        events.insert(&event_key(&req.id, seq)[..], event.as_slice())?;
    }
    workflows.insert(id, req.summary_json.as_slice())?;
    // Touch only the index rows that changed: fewer writes, and an unchanged
    // row is never briefly absent.
    let old = prev.as_ref().map(index_entries).unwrap_or_default();
    for e in &old {
        if !req
            .entries
            .iter()
            .any(|n| n.index == e.index && n.key == e.key)
        {
            indexes[e.index as usize].remove(e.key.as_slice())?;
        }
    }
    for e in &req.entries {
        if !old.contains(e) {
            indexes[e.index as usize].insert(e.key.as_slice(), e.value.as_slice())?;
        }
    }
    Ok(Ok(Ok(req.new_version)))
}

/// Makes what sled flushed really durable (see the module docs).
struct Syncer {
    dir: PathBuf,
    db_file: File,
    dir_handle: File,
    blobs_handle: File,
    /// Entries of the directory and of `blobs/` as of the last sync.
    dir_entries: BTreeSet<OsString>,
    blob_entries: BTreeSet<OsString>,
}

fn list_dir(dir: &Path) -> io::Result<BTreeSet<OsString>> {
    std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect()
}

/// fsync a file, tolerating one that sled removed meanwhile (a blob it
/// garbage-collected, an old snapshot).
fn sync_path(path: &Path) -> io::Result<()> {
    match File::open(path) {
        Ok(f) => {
            if f.metadata()?.is_file() {
                f.sync_all()?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl Syncer {
    fn open(dir: &Path) -> Result<Syncer, LogError> {
        let ctx = |what: &str| format!("{what} in {}", dir.display());
        let open = |p: PathBuf| File::open(&p).map_err(|e| io_err(&ctx("opening"), e));
        let mut syncer = Syncer {
            dir: dir.to_path_buf(),
            db_file: open(dir.join("db"))?,
            dir_handle: open(dir.to_path_buf())?,
            blobs_handle: open(dir.join("blobs"))?,
            dir_entries: BTreeSet::new(),
            blob_entries: BTreeSet::new(),
        };
        // Whatever sled created or recovered before we watched is synced
        // once, including the directory's own entry in its parent.
        syncer.sync()?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(parent)
                .and_then(|f| f.sync_all())
                .map_err(|e| io_err(&ctx("syncing the parent directory"), e))?;
        }
        Ok(syncer)
    }

    /// fdatasync the log file; fsync new files and changed directories.
    fn sync(&mut self) -> Result<(), LogError> {
        let ctx = |what: &str| format!("{what} in {}", self.dir.display());
        self.db_file
            .sync_data()
            .map_err(|e| io_err(&ctx("fdatasync of db"), e))?;
        let blobs_dir = self.dir.join("blobs");
        let blobs = list_dir(&blobs_dir).map_err(|e| io_err(&ctx("listing blobs"), e))?;
        if blobs != self.blob_entries {
            for name in blobs.difference(&self.blob_entries) {
                sync_path(&blobs_dir.join(name)).map_err(|e| io_err(&ctx("fsync of a blob"), e))?;
            }
            self.blobs_handle
                .sync_all()
                .map_err(|e| io_err(&ctx("fsync of blobs/"), e))?;
            self.blob_entries = blobs;
        }
        let entries = list_dir(&self.dir).map_err(|e| io_err(&ctx("listing"), e))?;
        if entries != self.dir_entries {
            for name in entries.difference(&self.dir_entries) {
                sync_path(&self.dir.join(name)).map_err(|e| io_err(&ctx("fsync of a file"), e))?;
            }
            self.dir_handle
                .sync_all()
                .map_err(|e| io_err(&ctx("fsync of the directory"), e))?;
            self.dir_entries = entries;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The trait.
// ---------------------------------------------------------------------------

#[async_trait::async_trait]
impl EventLog for SledLog {
    async fn append(&self, req: AppendRequest) -> Result<Result<u64, AppendRejection>, LogError> {
        let enqueued = Instant::now();
        // A malformed request is a bug in the caller, never a storage state.
        req.assert_well_formed();
        let summary_json = serde_json::to_vec(&req.summary)
            .map_err(|e| LogError::Io(format!("encoding summary of {}: {e}", req.id)))?;
        let (reply, answer) = oneshot::channel();
        let request = Request {
            id: req.id,
            expected_version: req.expected_version,
            new_version: req.summary.version,
            events: req.events.iter().map(Event::encode).collect(),
            summary_json,
            idem_key: req
                .summary
                .idempotency_key
                .as_deref()
                .map(|k| idem_key(&req.summary.tenant, k)),
            entries: index_entries(&req.summary),
            enqueued,
            reply,
        };
        let sender = self.sender.as_ref().ok_or(LogError::Closed)?;
        sender.send(request).await.map_err(|_| LogError::Closed)?;
        answer.await.map_err(|_| LogError::Closed)?
    }

    fn read(&self, id: WorkflowId) -> Result<Vec<Event>, LogError> {
        let mut out = vec![];
        for item in self.trees().events.scan_prefix(id.as_bytes()) {
            let (key, value) = item.map_err(sled_err)?;
            let seq = key
                .get(ID_LEN..)
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| LogError::Corruption(format!("bad event key {key:?}")))?;
            if seq != out.len() as u64 + 1 {
                return Err(LogError::Corruption(format!(
                    "workflow {id}: event {seq} stored after {} events",
                    out.len()
                )));
            }
            let event = Event::decode(&value).map_err(|e| {
                LogError::Corruption(format!("workflow {id}: event {seq} does not decode: {e}"))
            })?;
            out.push(event);
        }
        Ok(out)
    }

    fn summary(&self, id: WorkflowId) -> Result<Option<WorkflowSummary>, LogError> {
        self.summary_of(id.as_bytes())
    }

    fn list(&self, q: &ListQuery) -> Result<Vec<WorkflowSummary>, LogError> {
        let limit = effective_limit(q.limit);
        let keep = |s: &WorkflowSummary| {
            q.tenant.as_ref().is_none_or(|t| &s.tenant == t)
                && q.status.is_none_or(|st| s.status == st)
                && q.kind.as_ref().is_none_or(|k| &s.kind == k)
        };
        // Walk the narrowest index the query allows; every index is in id
        // order, so pages follow the `after` cursor directly.
        if let Some(tenant) = &q.tenant {
            let prefix = tenant_prefix(tenant);
            return self.collect_by_index(&self.trees().tenant_ids, &prefix, q.after, limit, keep);
        }
        if let Some(status) = q.status {
            let mut prefix = status.as_str().as_bytes().to_vec();
            prefix.push(0);
            return self.collect_by_index(&self.trees().by_status, &prefix, q.after, limit, keep);
        }
        let start = match q.after {
            Some(after) => Bound::Excluded(after.as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        let mut out = vec![];
        for item in self
            .trees()
            .workflows
            .range::<Vec<u8>, _>((start, Bound::Unbounded))
        {
            if out.len() >= limit {
                break;
            }
            let (_, raw) = item.map_err(sled_err)?;
            let summary = decode_summary(&raw)?;
            if keep(&summary) {
                out.push(summary);
            }
        }
        Ok(out)
    }

    fn open(&self) -> Result<Vec<WorkflowSummary>, LogError> {
        self.collect_by_index(&self.trees().open, &[], None, usize::MAX, |s| {
            s.status.is_open()
        })
    }

    fn due_timers(&self, until: Timestamp, limit: usize) -> Result<Vec<DueTimer>, LogError> {
        let mut out = vec![];
        if limit == 0 {
            return Ok(out);
        }
        for item in self.trees().timers.iter() {
            let (key, _) = item.map_err(sled_err)?;
            let timer = decode_timer(&key)?;
            if timer.due_at > until {
                break;
            }
            out.push(timer);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn next_timer(&self) -> Result<Option<DueTimer>, LogError> {
        match self.trees().timers.first().map_err(sled_err)? {
            Some((key, _)) => decode_timer(&key).map(Some),
            None => Ok(None),
        }
    }

    fn find_idempotency(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<WorkflowId>, LogError> {
        match self
            .trees()
            .idem
            .get(idem_key(tenant, key))
            .map_err(sled_err)?
        {
            Some(raw) => id_from(&raw).map(Some),
            None => Ok(None),
        }
    }

    fn count_submitted_since(
        &self,
        tenant: &TenantId,
        kind: &str,
        since: Timestamp,
    ) -> Result<u64, LogError> {
        let prefix = tenant_prefix(tenant);
        let mut start = prefix.clone();
        start.extend_from_slice(&ts_key(&since));
        let mut count = 0;
        for item in self.trees().by_tenant.range(start..prefix_end(&prefix)) {
            let (_, value) = item.map_err(sled_err)?;
            if value.as_ref() == kind.as_bytes() {
                count += 1;
            }
        }
        Ok(count)
    }

    fn size_bytes(&self) -> u64 {
        self.shared.db.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_engine::Status;

    #[test]
    fn timestamp_keys_sort_like_timestamps_and_round_trip() {
        let times = [
            chrono::DateTime::from_timestamp(-86_400, 5).expect("valid"),
            chrono::DateTime::from_timestamp(-1, 999_999_999).expect("valid"),
            chrono::DateTime::from_timestamp(0, 0).expect("valid"),
            chrono::DateTime::from_timestamp(0, 1).expect("valid"),
            chrono::DateTime::from_timestamp(1_767_225_600, 123_456).expect("valid"),
            chrono::DateTime::from_timestamp(1_767_225_600, 123_457).expect("valid"),
            chrono::DateTime::from_timestamp(1_767_225_601, 0).expect("valid"),
        ];
        for pair in times.windows(2) {
            assert!(ts_key(&pair[0]) < ts_key(&pair[1]), "{pair:?}");
        }
        for t in times {
            assert_eq!(ts_from_key(&ts_key(&t)).expect("decodes"), t);
        }
    }

    #[test]
    fn tenant_prefixes_do_not_overlap() {
        let a = tenant_prefix(&TenantId::parse("acme").expect("valid"));
        let b = tenant_prefix(&TenantId::parse("acme-eu").expect("valid"));
        assert!(!b.starts_with(&a));
        assert!(b.as_slice() < a.as_slice() || b.as_slice() >= prefix_end(&a).as_slice());
    }

    #[test]
    fn status_enum_fits_the_index_table() {
        // `index_entries` keys `by_status` by the status name; no name may
        // contain the separator.
        for s in Status::ALL {
            assert!(!s.as_str().as_bytes().contains(&0));
        }
    }
}
