//! `SledLog`: the durable [`EventLog`] on sled 0.34, with group commit.
//!
//! Everything is kept in one sled tree, in key spaces told apart by a tag
//! byte: each append as one value holding its events and the workflow's new
//! summary, and each index ([`layout`] has the table and the encodings).
//! One tree, because sled 0.34 makes a batch of writes crash-atomic only
//! within one tree (`Tree::apply_batch`), and its multi-tree transactions
//! cost more CPU than the writes themselves.
//!
//! One applier thread does all writes. It drains every queued append (up to
//! [`BATCH_MAX`]) and checks them one by one, in order: `expected_version`
//! against the workflow's current version, the idempotency key against its
//! index, exactly as if each were applied alone (later requests see the
//! earlier ones' writes through an in-memory overlay; see [`applier`]). The
//! accepted ones become ONE `apply_batch` of their chunks (events and
//! summary) and exactly the index rows that changed; a rejected append
//! writes nothing. The applier hands the batch to a syncer thread and goes
//! on with the next one; the syncer makes every batch handed to it so far
//! durable with one sync and only then answers their callers. Many workflows thus share one
//! sync (group commit), applying overlaps syncing, a crash recovers a batch
//! whole or not at all, and the version check never races because one
//! thread does all writes.
//!
//! Durability: sled 0.34's `flush` ends in `sync_file_range`, which writes
//! the pages but neither flushes the drive's cache nor commits the file's
//! metadata (its size, as the log grows). So after `flush` the syncer
//! calls `fdatasync` on its own handle of sled's `db` file, `fsync`s blob
//! files sled wrote since the last batch and `fsync`s a directory whose
//! entries changed (see [`syncer`]). A failed sync, or a batch sled failed
//! to write, poisons the log: after it nothing is acknowledged any more,
//! because what reached the disk is unknown (the "fsyncgate" lesson:
//! retrying fsync proves nothing).
//!
//! Readers do not go through these threads. `apply_batch` writes under
//! sled's global write lock, so a single read sees all of an append or none
//! of it; a reader may see an append a few milliseconds before it is durable
//! and acknowledged (as with any group-committing database).
//!
//! The folder is refused, never misread, if it holds another format: the
//! first, multi-tree layout of this log or a future one.

mod applier;
pub mod layout;
mod syncer;

pub use applier::RECENT_WORKFLOWS_MAX;

use crate::log_metrics::{LogMetrics, Outcome};
use applier::{Applier, Request};
use ferry_engine::{
    AppendRejection, AppendRequest, DueTimer, Event, EventLog, ListQuery, LogError, TenantId,
    Timestamp, WorkflowId, WorkflowSummary,
};
use layout::{
    decode_summary, decode_timer, events_end, events_key_parts, events_prefix, id_from, idem_key,
    prefix_end, split_chunk, status_prefix, tenant_prefix, ts_key, unframe_events, BY_TENANT,
    EVENTS, FORMAT, FORMAT_KEY, LEGACY_TREES, OPEN, TENANT_IDS, TIMERS, TREE,
};
use prometheus::Registry;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use syncer::Syncer;
use tokio::sync::{mpsc, oneshot};

/// Most append requests checked and written as one sled batch. It bounds
/// how long the first request of a full batch waits for the last one's
/// writes and how long sled's write lock blocks readers.
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

/// How long `open` waits for the lock of a folder that sled is still
/// closing. sled releases its file lock only when its background I/O tasks
/// let go of the file, a moment after the last handle is dropped (sled's own
/// tests block on the lock for this reason), so reopening in the same
/// process right after closing would otherwise fail now and then. A folder
/// really held by another process still fails, after this long.
pub const OPEN_LOCK_WAIT_MAX_MS: u64 = 2_000;

/// How often `open` tries the lock again while it waits.
const OPEN_LOCK_RETRY_MS: u64 = 10;

/// The durable event log. Cheap to share behind an `Arc`; dropping the last
/// handle finishes queued appends, syncs, and stops the log's threads.
pub struct SledLog {
    path: PathBuf,
    shared: Arc<Shared>,
    sender: Option<mpsc::Sender<Request>>,
    /// The applier, then the syncer: the order they must stop in.
    threads: Vec<JoinHandle<()>>,
    metrics: LogMetrics,
}

/// What the log's threads, the readers and the size collector share.
struct Shared {
    db: sled::Db,
    tree: sled::Tree,
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

/// Decode the summary stored under `id`'s key; one naming another workflow
/// is as corrupt as one that does not decode.
fn decode_summary_of(id: &WorkflowId, raw: &[u8]) -> Result<WorkflowSummary, LogError> {
    let summary = decode_summary(raw).map_err(|e| match e {
        LogError::Corruption(why) => LogError::Corruption(format!("workflow {id}: {why}")),
        other => other,
    })?;
    if summary.id != *id {
        return Err(LogError::Corruption(format!(
            "the summary stored for workflow {id} describes workflow {}",
            summary.id
        )));
    }
    Ok(summary)
}

/// The summary in the chunk stored under `key`, checked against the events
/// beside it: it must be `id`'s and have the version they end at.
fn summary_in_chunk(
    id: &WorkflowId,
    key: &[u8],
    chunk: &[u8],
) -> Result<WorkflowSummary, LogError> {
    let (_, first) = events_key_parts(key)?;
    let corrupt = |why: String| LogError::Corruption(format!("workflow {id}: {why}"));
    let (raw, frames) = split_chunk(chunk)
        .ok_or_else(|| corrupt(format!("chunk at event {first} is truncated")))?;
    let summary = decode_summary_of(id, raw)?;
    let mut count = 0u64;
    for frame in unframe_events(frames) {
        frame.map_err(|_| corrupt(format!("event {} is truncated", first + count)))?;
        count += 1;
    }
    if count == 0 || summary.version != first + count - 1 {
        return Err(corrupt(format!(
            "the summary of version {} is stored with {count} events from event {first}",
            summary.version
        )));
    }
    Ok(summary)
}

/// `id`'s summary: the one in its newest chunk, which sorts first.
fn latest_summary(tree: &sled::Tree, id: &WorkflowId) -> Result<Option<WorkflowSummary>, LogError> {
    match tree.scan_prefix(events_prefix(id)).next() {
        None => Ok(None),
        Some(item) => {
            let (key, chunk) = item.map_err(sled_err)?;
            summary_in_chunk(id, &key, &chunk).map(Some)
        }
    }
}

/// Open sled in `path`, waiting up to [`OPEN_LOCK_WAIT_MAX_MS`] for a lock
/// that a just-closed instance has not released yet.
fn open_db(path: &Path) -> Result<sled::Db, LogError> {
    let config = sled::Config::new()
        .path(path)
        .cache_capacity(CACHE_CAPACITY_BYTES)
        // The syncer flushes every batch itself; sled's own timed flush
        // would only compete with it for the log's I/O.
        .flush_every_ms(None);
    let deadline = Instant::now() + Duration::from_millis(OPEN_LOCK_WAIT_MAX_MS);
    loop {
        match config.open() {
            // sled 0.34 reports a held lock only by this message.
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(OPEN_LOCK_RETRY_MS));
            }
            other => return other.map_err(sled_err),
        }
    }
}

/// Open the log's tree in `db`, refusing a folder in another format.
fn open_tree(db: &sled::Db, path: &Path) -> Result<sled::Tree, LogError> {
    let names = db.tree_names();
    if let Some(old) = LEGACY_TREES
        .iter()
        .find(|legacy| names.iter().any(|n| n.as_ref() == legacy.as_bytes()))
    {
        return Err(LogError::Corruption(format!(
            "{} holds an event log in the first, multi-tree layout (it has a tree `{old}`), \
             which this version cannot read; there is no migration: move the folder away to \
             start an empty log",
            path.display()
        )));
    }
    let tree = db.open_tree(TREE).map_err(sled_err)?;
    match tree.get(FORMAT_KEY).map_err(sled_err)? {
        Some(format) if format.as_ref() == FORMAT => Ok(tree),
        Some(format) => Err(LogError::Corruption(format!(
            "{} holds event-log format {:?}; this version reads only {:?}",
            path.display(),
            String::from_utf8_lossy(&format),
            String::from_utf8_lossy(FORMAT)
        ))),
        None if tree.is_empty() => {
            tree.insert(FORMAT_KEY, FORMAT).map_err(sled_err)?;
            Ok(tree)
        }
        None => Err(LogError::Corruption(format!(
            "{}: the event log has data but no format marker",
            path.display()
        ))),
    }
}

// ---------------------------------------------------------------------------
// Opening and closing.
// ---------------------------------------------------------------------------

impl SledLog {
    /// Open (or create) the log in the directory `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<SledLog, LogError> {
        let path = path.as_ref().to_path_buf();
        let db = open_db(&path)?;
        let tree = open_tree(&db, &path)?;
        // Creating the tree and its format marker are writes too; make them
        // and sled's files durable before anything is acknowledged.
        db.flush().map_err(sled_err)?;
        let syncer = Syncer::open(&path)?;
        let shared = Arc::new(Shared {
            db,
            tree: tree.clone(),
        });
        let metrics = LogMetrics::new(BATCH_MAX)?;
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
            let applier = Applier::new(tree);
            spawn(
                "ferry-eventlog-apply",
                Box::new(move || apply_loop(applier, receiver, to_syncer, &poisoned)),
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
        let shared = Arc::downgrade(&self.shared);
        self.metrics.register(registry, move || {
            shared.upgrade().and_then(|s| s.db.size_on_disk().ok())
        })
    }

    fn tree(&self) -> &sled::Tree {
        &self.shared.tree
    }

    fn summary_of(&self, id: &WorkflowId) -> Result<Option<WorkflowSummary>, LogError> {
        latest_summary(self.tree(), id)
    }

    /// Walk an id-keyed index (`key = prefix ++ id`) from the cursor on,
    /// keeping the summaries `keep` accepts, up to `limit`.
    fn collect_by_index(
        &self,
        prefix: &[u8],
        after: Option<WorkflowId>,
        limit: usize,
        newest_first: bool,
        keep: impl Fn(&WorkflowSummary) -> bool,
    ) -> Result<Vec<WorkflowSummary>, LogError> {
        let cursor = after.map(|after| {
            let mut k = prefix.to_vec();
            k.extend_from_slice(after.as_bytes());
            Bound::Excluded(k)
        });
        let (start, end) = if newest_first {
            (
                Bound::Included(prefix.to_vec()),
                cursor.unwrap_or_else(|| Bound::Excluded(prefix_end(prefix))),
            )
        } else {
            (
                cursor.unwrap_or_else(|| Bound::Included(prefix.to_vec())),
                Bound::Excluded(prefix_end(prefix)),
            )
        };
        let range = self.tree().range::<Vec<u8>, _>((start, end));
        let rows: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if newest_first
        {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        let mut out = vec![];
        for item in rows {
            if out.len() >= limit {
                break;
            }
            let (key, _) = item.map_err(sled_err)?;
            let id = key
                .get(prefix.len()..)
                .ok_or_else(|| LogError::Corruption(format!("short index key {key:?}")))
                .and_then(id_from)?;
            let Some(summary) = self.summary_of(&id)? else {
                return Err(LogError::Corruption(format!(
                    "index names workflow {id} without a summary"
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
    mut applier: Applier,
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
        let fail_all = |n: usize, why: &str| -> Vec<Outcome> {
            (0..n).map(|_| Err(LogError::Io(why.to_owned()))).collect()
        };
        let why = poisoned.lock().clone();
        let outcomes = match why {
            Some(why) => fail_all(requests.len(), &why),
            None => match applier.apply(&mut requests) {
                Ok(outcomes) => outcomes,
                Err(e) => {
                    let why =
                        format!("writing a batch failed, log is read-only until restart: {e}");
                    tracing::error!("{why}");
                    *poisoned.lock() = Some(why.clone());
                    fail_all(requests.len(), &why)
                }
            },
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
    metrics: &LogMetrics,
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
        metrics.batch(answered);
        for applied in pending.drain(..) {
            for (req, mut outcome) in applied.requests.into_iter().zip(applied.outcomes) {
                if let Some(why) = &why {
                    // Nothing here is known to be durable, and a rejection
                    // may rest on a write that was lost: fail them all.
                    outcome = Err(LogError::Io(why.clone()));
                }
                metrics.answered(&outcome, req.enqueued);
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

// ---------------------------------------------------------------------------
// The trait.
// ---------------------------------------------------------------------------

#[async_trait::async_trait]
impl EventLog for SledLog {
    async fn append(&self, req: AppendRequest) -> Result<Result<u64, AppendRejection>, LogError> {
        let enqueued = Instant::now();
        // A malformed request is a bug in the caller, never a storage state.
        req.assert_well_formed();
        let (reply, answer) = oneshot::channel();
        let request = Request::new(&req, enqueued, reply);
        let sender = self.sender.as_ref().ok_or(LogError::Closed)?;
        sender.send(request).await.map_err(|_| LogError::Closed)?;
        answer.await.map_err(|_| LogError::Closed)?
    }

    fn read(&self, id: WorkflowId) -> Result<Vec<Event>, LogError> {
        // Newest chunk first in the tree; the stream is oldest first.
        let chunks: Vec<(sled::IVec, sled::IVec)> = self
            .tree()
            .scan_prefix(events_prefix(&id))
            .collect::<Result<_, _>>()
            .map_err(sled_err)?;
        let corrupt = |why: String| LogError::Corruption(format!("workflow {id}: {why}"));
        let mut out = vec![];
        for (key, chunk) in chunks.iter().rev() {
            let (_, first) = events_key_parts(key)?;
            if first != out.len() as u64 + 1 {
                return Err(corrupt(format!(
                    "event {first} stored after {} events",
                    out.len()
                )));
            }
            let (_, frames) = split_chunk(chunk)
                .ok_or_else(|| corrupt(format!("chunk at event {first} is truncated")))?;
            if frames.is_empty() {
                return Err(corrupt(format!("no events stored at event {first}")));
            }
            for (i, frame) in unframe_events(frames).enumerate() {
                let seq = first + i as u64;
                let bytes = frame.map_err(|_| corrupt(format!("event {seq} is truncated")))?;
                let event = Event::decode(bytes)
                    .map_err(|e| corrupt(format!("event {seq} does not decode: {e}")))?;
                out.push(event);
            }
        }
        Ok(out)
    }

    fn summary(&self, id: WorkflowId) -> Result<Option<WorkflowSummary>, LogError> {
        self.summary_of(&id)
    }

    fn list(&self, q: &ListQuery) -> Result<Vec<WorkflowSummary>, LogError> {
        let limit = q.effective_limit();
        let keep = |s: &WorkflowSummary| {
            q.tenant.as_ref().is_none_or(|t| &s.tenant == t)
                && q.status.is_none_or(|st| s.status == st)
                && q.kind.as_ref().is_none_or(|k| &s.kind == k)
        };
        // Walk the narrowest index the query allows; every index is in id
        // order, so pages follow the `after` cursor directly.
        if let Some(tenant) = &q.tenant {
            let prefix = tenant_prefix(TENANT_IDS, tenant);
            return self.collect_by_index(&prefix, q.after, limit, q.newest_first, keep);
        }
        if let Some(status) = q.status {
            return self.collect_by_index(
                &status_prefix(status),
                q.after,
                limit,
                q.newest_first,
                keep,
            );
        }
        if q.newest_first {
            // Backwards: the last key before the cursor's stream belongs to
            // the previous workflow; its summary is read by id, and the next
            // seek ends before that workflow's first chunk.
            let mut end = match q.after {
                Some(after) => Bound::Excluded(events_prefix(&after)),
                None => Bound::Excluded(vec![EVENTS + 1]),
            };
            let mut out = vec![];
            while out.len() < limit {
                let range = (Bound::Included(vec![EVENTS]), end);
                let Some(item) = self.tree().range::<Vec<u8>, _>(range).next_back() else {
                    break;
                };
                let (key, _) = item.map_err(sled_err)?;
                let (id, _) = events_key_parts(&key)?;
                let summary = self.summary_of(&id)?.ok_or_else(|| {
                    LogError::Corruption(format!("stream {id} without a summary"))
                })?;
                if keep(&summary) {
                    out.push(summary);
                }
                end = Bound::Excluded(events_prefix(&id));
            }
            return Ok(out);
        }
        // Every workflow, by id: the first chunk of each stream is its
        // newest, so one seek per workflow finds its summary, and the next
        // seek starts after the rest of its stream.
        let mut from = match q.after {
            Some(after) => Bound::Excluded(events_end(&after)),
            None => Bound::Included(vec![EVENTS]),
        };
        let end = Bound::Excluded(vec![EVENTS + 1]);
        let mut out = vec![];
        while out.len() < limit {
            let Some(item) = self.tree().range::<Vec<u8>, _>((from, end.clone())).next() else {
                break;
            };
            let (key, chunk) = item.map_err(sled_err)?;
            let (id, _) = events_key_parts(&key)?;
            let summary = summary_in_chunk(&id, &key, &chunk)?;
            if keep(&summary) {
                out.push(summary);
            }
            from = Bound::Excluded(events_end(&id));
        }
        Ok(out)
    }

    fn open(&self) -> Result<Vec<WorkflowSummary>, LogError> {
        self.collect_by_index(&[OPEN], None, usize::MAX, false, |s| s.status.is_open())
    }

    fn due_timers(&self, until: Timestamp, limit: usize) -> Result<Vec<DueTimer>, LogError> {
        let mut out = vec![];
        if limit == 0 {
            return Ok(out);
        }
        for item in self.tree().scan_prefix([TIMERS]) {
            let (key, _) = item.map_err(sled_err)?;
            let timer = decode_timer(&key[1..])?;
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
        match self.tree().scan_prefix([TIMERS]).next() {
            Some(item) => {
                let (key, _) = item.map_err(sled_err)?;
                decode_timer(&key[1..]).map(Some)
            }
            None => Ok(None),
        }
    }

    fn find_idempotency(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<WorkflowId>, LogError> {
        match self.tree().get(idem_key(tenant, key)).map_err(sled_err)? {
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
        let prefix = tenant_prefix(BY_TENANT, tenant);
        let mut start = prefix.clone();
        start.extend_from_slice(&ts_key(&since));
        let mut count = 0;
        for item in self.tree().range(start..prefix_end(&prefix)) {
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
