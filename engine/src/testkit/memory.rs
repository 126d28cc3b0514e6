//! `MemoryLog`: the in-memory reference implementation of [`EventLog`].
//!
//! Everything sits behind one mutex, so every append is trivially atomic and
//! every query sees a consistent snapshot; that is what makes it the
//! reference the conformance suite is written against, and a safe log for the
//! engine's own tests. "Durable" here means "kept for the life of the value":
//! reopening a `MemoryLog` returns the same instance.
//!
//! For tests of the engine's error handling it can inject faults: make the
//! next appends fail before writing anything (a crashed disk), or after
//! writing (a lost acknowledgement, the ambiguous case a real log produces
//! when the process dies between the sync and the reply).

use crate::event::{Event, Timestamp};
use crate::ids::{TenantId, WorkflowId};
use crate::log::{
    AppendRejection, AppendRequest, DueTimer, EventLog, ListQuery, LogError, WorkflowSummary,
};
use crate::testkit::conformance::LogFactory;
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// An [`EventLog`] kept in memory. Cheap to create; one per test.
#[derive(Default)]
pub struct MemoryLog {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    streams: HashMap<WorkflowId, Vec<Event>>,
    summaries: BTreeMap<WorkflowId, WorkflowSummary>,
    /// (tenant, key) -> workflow, for `find_idempotency` and the duplicate check.
    idempotency: BTreeMap<(TenantId, String), WorkflowId>,
    open: BTreeSet<WorkflowId>,
    /// Unfired timers in due order; the id and name break ties.
    timers: BTreeSet<(Timestamp, WorkflowId, String)>,
    /// Submissions per tenant in creation order, for `count_submitted_since`.
    submitted: BTreeSet<(TenantId, Timestamp, WorkflowId)>,
    faults: Faults,
}

#[derive(Default)]
struct Faults {
    /// Appends still to fail without writing anything.
    fail_before_write: usize,
    /// Appends still to be written but answered with an error.
    fail_after_write: usize,
}

impl MemoryLog {
    pub fn new() -> Self {
        MemoryLog::default()
    }

    /// A fresh log behind the `Arc` the engine takes.
    pub fn shared() -> Arc<MemoryLog> {
        Arc::new(MemoryLog::new())
    }

    /// The next `n` appends fail with `LogError::Io` and write nothing.
    pub fn fail_next_appends(&self, n: usize) {
        self.inner.lock().faults.fail_before_write = n;
    }

    /// The next `n` appends are written (and visible) but answered with
    /// `LogError::Io`, as when an acknowledgement is lost.
    pub fn fail_next_acks(&self, n: usize) {
        self.inner.lock().faults.fail_after_write = n;
    }

    /// Number of workflows ever appended to.
    pub fn workflow_count(&self) -> usize {
        self.inner.lock().summaries.len()
    }
}

impl Inner {
    fn index(&mut self, s: &WorkflowSummary) {
        if let Some(key) = &s.idempotency_key {
            self.idempotency
                .insert((s.tenant.clone(), key.clone()), s.id);
        }
        if s.status.is_open() {
            self.open.insert(s.id);
        }
        for t in &s.timers {
            self.timers.insert((t.due_at, s.id, t.name.clone()));
        }
        self.submitted
            .insert((s.tenant.clone(), s.created_at, s.id));
    }

    fn unindex(&mut self, s: &WorkflowSummary) {
        if let Some(key) = &s.idempotency_key {
            self.idempotency.remove(&(s.tenant.clone(), key.clone()));
        }
        self.open.remove(&s.id);
        for t in &s.timers {
            self.timers.remove(&(t.due_at, s.id, t.name.clone()));
        }
        self.submitted
            .remove(&(s.tenant.clone(), s.created_at, s.id));
    }
}

fn injected() -> LogError {
    LogError::Io("injected fault".into())
}

#[async_trait]
impl EventLog for MemoryLog {
    async fn append(&self, req: AppendRequest) -> Result<Result<u64, AppendRejection>, LogError> {
        req.assert_well_formed();
        let mut g = self.inner.lock();
        if g.faults.fail_before_write > 0 {
            g.faults.fail_before_write -= 1;
            return Err(injected());
        }
        let prev = g.summaries.get(&req.id).cloned();
        let current = prev.as_ref().map_or(0, |s| s.version);
        if current != req.expected_version {
            return Ok(Err(AppendRejection::VersionConflict {
                expected: req.expected_version,
                current,
            }));
        }
        if let Some(key) = &req.summary.idempotency_key {
            let slot = (req.summary.tenant.clone(), key.clone());
            if let Some(existing) = g.idempotency.get(&slot) {
                if *existing != req.id {
                    return Ok(Err(AppendRejection::DuplicateIdempotencyKey {
                        existing: *existing,
                    }));
                }
            }
        }
        if let Some(prev) = &prev {
            g.unindex(prev);
        }
        g.index(&req.summary);
        g.streams.entry(req.id).or_default().extend(req.events);
        let version = req.summary.version;
        g.summaries.insert(req.id, req.summary);
        if g.faults.fail_after_write > 0 {
            g.faults.fail_after_write -= 1;
            return Err(injected());
        }
        Ok(Ok(version))
    }

    fn read(&self, id: WorkflowId) -> Result<Vec<Event>, LogError> {
        Ok(self
            .inner
            .lock()
            .streams
            .get(&id)
            .cloned()
            .unwrap_or_default())
    }

    fn summary(&self, id: WorkflowId) -> Result<Option<WorkflowSummary>, LogError> {
        Ok(self.inner.lock().summaries.get(&id).cloned())
    }

    fn list(&self, q: &ListQuery) -> Result<Vec<WorkflowSummary>, LogError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let g = self.inner.lock();
        let from = q.after.map_or(Unbounded, Excluded);
        let page: Box<dyn Iterator<Item = (&WorkflowId, &WorkflowSummary)>> = if q.newest_first {
            Box::new(g.summaries.range((Unbounded, from)).rev())
        } else {
            Box::new(g.summaries.range((from, Unbounded)))
        };
        Ok(page
            .map(|(_, s)| s)
            .filter(|s| q.tenant.as_ref().is_none_or(|t| &s.tenant == t))
            .filter(|s| q.status.is_none_or(|st| s.status == st))
            .filter(|s| q.kind.as_ref().is_none_or(|k| &s.kind == k))
            .take(q.effective_limit())
            .cloned()
            .collect())
    }

    fn open(&self) -> Result<Vec<WorkflowSummary>, LogError> {
        let g = self.inner.lock();
        Ok(g.open.iter().map(|id| g.summaries[id].clone()).collect())
    }

    fn due_timers(&self, until: Timestamp, limit: usize) -> Result<Vec<DueTimer>, LogError> {
        let g = self.inner.lock();
        Ok(g.timers
            .iter()
            .take_while(|(due, _, _)| *due <= until)
            .take(limit)
            .map(|(due, id, name)| DueTimer {
                workflow: *id,
                name: name.clone(),
                due_at: *due,
            })
            .collect())
    }

    fn next_timer(&self) -> Result<Option<DueTimer>, LogError> {
        let g = self.inner.lock();
        Ok(g.timers.first().map(|(due, id, name)| DueTimer {
            workflow: *id,
            name: name.clone(),
            due_at: *due,
        }))
    }

    fn find_idempotency(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<WorkflowId>, LogError> {
        let g = self.inner.lock();
        Ok(g.idempotency
            .get(&(tenant.clone(), key.to_owned()))
            .copied())
    }

    fn count_submitted_since(
        &self,
        tenant: &TenantId,
        kind: &str,
        since: Timestamp,
    ) -> Result<u64, LogError> {
        use std::ops::Bound::{Included, Unbounded};
        let g = self.inner.lock();
        // The smallest id sorts first, so (tenant, since, nil) starts the range
        // at the first submission at or after `since`.
        let from = (tenant.clone(), since, WorkflowId(uuid::Uuid::nil()));
        Ok(g.submitted
            .range((Included(from), Unbounded))
            .take_while(|(t, _, _)| t == tenant)
            .filter(|(_, _, id)| g.summaries[id].kind == kind)
            .count() as u64)
    }

    fn size_bytes(&self) -> u64 {
        0
    }
}

/// [`LogFactory`] for [`MemoryLog`]: reopening returns the same instance,
/// which is exactly as durable as a memory log gets.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryFactory;

impl LogFactory for MemoryFactory {
    type Log = MemoryLog;

    fn fresh(&self) -> Arc<MemoryLog> {
        MemoryLog::shared()
    }

    fn reopen(&self, log: Arc<MemoryLog>) -> Arc<MemoryLog> {
        log
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::conformance::Stream;

    crate::eventlog_conformance_tests!(crate::testkit::MemoryFactory);

    #[tokio::test]
    async fn injected_faults_before_write_leave_nothing_behind() {
        let log = MemoryLog::new();
        let (_, req) = Stream::submit(1, "acme", "export", None, 0);
        log.fail_next_appends(1);
        assert!(matches!(
            log.append(req.clone()).await,
            Err(LogError::Io(_))
        ));
        assert!(log.read(req.id).unwrap().is_empty());
        assert_eq!(log.append(req).await.unwrap(), Ok(1));
    }

    #[tokio::test]
    async fn injected_lost_acks_still_write() {
        let log = MemoryLog::new();
        let (_, req) = Stream::submit(1, "acme", "export", None, 0);
        log.fail_next_acks(1);
        assert!(matches!(
            log.append(req.clone()).await,
            Err(LogError::Io(_))
        ));
        assert_eq!(log.read(req.id).unwrap().len(), 1);
        // The retry of a lost ack is what the version check exists for.
        assert!(matches!(
            log.append(req).await.unwrap(),
            Err(AppendRejection::VersionConflict {
                expected: 0,
                current: 1
            })
        ));
    }
}
