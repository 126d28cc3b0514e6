//! The applier: checks a batch of appends one by one, exactly as if they
//! were applied in order, and writes the accepted ones as ONE sled batch.
//!
//! The log has a single writer (this), so it needs no transactions for
//! isolation: every check reads the tree as the previous batch left it, plus
//! an overlay of what earlier requests of the same batch wrote. sled 0.34's
//! `Tree::apply_batch` takes sled's global write lock (readers see all of a
//! batch or none of it) and makes the batch crash-atomic: `apply_batch_inner`
//! reserves a batch manifest in the log before the first write
//! (`pin_log`) and, after the last, seals into it the highest log sequence
//! number the batch used (`seal_batch` → `mark_writebatch`); recovery stops
//! before a manifest whose batch did not reach the disk whole (the "torn
//! batch" cut in `LogIter::next`). Multi-tree transactions end the same way;
//! what they add is a read cache, a write buffer and a read of the old value
//! on every insert, which cost more than the writes themselves.
//!
//! To check an append the applier needs the workflow's current version and
//! index rows. It keeps them in memory for recently written workflows
//! ([`RECENT_WORKFLOWS_MAX`]), so a workflow's next append usually costs no
//! read and no decode at all; on a miss it reads the stored summary.

use super::layout::{
    encode_chunk, encode_summary, events_key, id_from, idem_key, index_entries, Entry,
};
use super::{sled_err, Outcome};
use ferry_engine::{AppendRejection, AppendRequest, Event, LogError, WorkflowId};
use std::collections::HashMap;
use std::time::Instant;
use tokio::sync::oneshot;

/// Most workflows whose version and index rows the applier keeps in memory.
/// Under a kilobyte each; a workflow not among them costs one seek and
/// one decode of its summary on its next append.
pub const RECENT_WORKFLOWS_MAX: usize = 16_384;

/// An append, encoded by the caller's task so the applier only checks and
/// writes.
pub(super) struct Request {
    pub id: WorkflowId,
    pub expected_version: u64,
    pub new_version: u64,
    /// The append's summary and events, as stored (one chunk).
    pub chunk: Vec<u8>,
    /// The idempotency-index key of the summary's key, if it has one.
    pub idem_key: Option<Vec<u8>>,
    /// Every index row the new summary implies.
    pub entries: Vec<Entry>,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<Outcome>,
}

impl Request {
    /// Encode `req` (which the caller has checked is well formed).
    pub fn new(req: &AppendRequest, enqueued: Instant, reply: oneshot::Sender<Outcome>) -> Self {
        let events: Vec<Vec<u8>> = req.events.iter().map(Event::encode).collect();
        Request {
            id: req.id,
            expected_version: req.expected_version,
            new_version: req.summary.version,
            chunk: encode_chunk(&encode_summary(&req.summary), &events),
            idem_key: req
                .summary
                .idempotency_key
                .as_deref()
                .map(|k| idem_key(&req.summary.tenant, k)),
            entries: index_entries(&req.summary),
            enqueued,
            reply,
        }
    }
}

/// What the applier knows of a stored workflow: all it needs to check the
/// next append and to tell which index rows that append changes.
#[derive(Debug)]
struct Known {
    version: u64,
    entries: Vec<Entry>,
}

/// `Known` of recently written workflows, in two generations: when the young
/// one is full it becomes the old one and the old one is forgotten. Cheaper
/// than an LRU and as good here, where a workflow's appends come close
/// together.
#[derive(Default)]
struct Recent {
    young: HashMap<WorkflowId, Known>,
    old: HashMap<WorkflowId, Known>,
}

impl Recent {
    fn get(&self, id: &WorkflowId) -> Option<&Known> {
        // The young generation shadows a stale copy in the old one.
        self.young.get(id).or_else(|| self.old.get(id))
    }

    fn insert(&mut self, id: WorkflowId, known: Known) {
        if self.young.len() >= RECENT_WORKFLOWS_MAX / 2 && !self.young.contains_key(&id) {
            std::mem::swap(&mut self.young, &mut self.old);
            self.young.clear();
        }
        self.young.insert(id, known);
    }

    fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
    }
}

/// One batch being checked: the writes so far and what they change.
#[derive(Default)]
struct Staged {
    writes: sled::Batch,
    wrote: bool,
    /// Workflows written by earlier requests of the batch, as they now are.
    known: HashMap<WorkflowId, Known>,
    /// Idempotency keys earlier requests of the batch took (`Some`) or gave
    /// up (`None`).
    idem: HashMap<Vec<u8>, Option<WorkflowId>>,
}

pub(super) struct Applier {
    tree: sled::Tree,
    recent: Recent,
}

impl Applier {
    pub fn new(tree: sled::Tree) -> Applier {
        Applier {
            tree,
            recent: Recent::default(),
        }
    }

    /// Check every request in order and write the accepted ones as one
    /// atomic sled batch; one outcome per request. A rejected request writes
    /// nothing and later requests see exactly the earlier ones' writes. `Err`
    /// means the batch could not be written and what reached sled is
    /// unknown: the caller must stop writing.
    pub fn apply(&mut self, requests: &mut [Request]) -> Result<Vec<Outcome>, LogError> {
        let mut staged = Staged::default();
        let outcomes = requests
            .iter_mut()
            .map(|req| self.stage(&mut staged, req))
            .collect();
        if staged.wrote {
            if let Err(e) = self.tree.apply_batch(staged.writes) {
                // The memory may describe writes that never happened.
                self.recent.clear();
                return Err(sled_err(e));
            }
        }
        for (id, known) in staged.known {
            self.recent.insert(id, known);
        }
        Ok(outcomes)
    }

    /// Check one request against the tree and what `staged` already holds;
    /// if it is accepted, add its writes to `staged`.
    fn stage(&self, staged: &mut Staged, req: &mut Request) -> Outcome {
        let loaded;
        let prev = match staged.known.get(&req.id) {
            Some(known) => Some(known),
            None => match self.recent.get(&req.id) {
                Some(known) => Some(known),
                None => {
                    loaded = self.load(&req.id)?;
                    loaded.as_ref()
                }
            },
        };
        let current = prev.map_or(0, |k| k.version);
        if current != req.expected_version {
            return Ok(Err(AppendRejection::VersionConflict {
                expected: req.expected_version,
                current,
            }));
        }
        let id = req.id.as_bytes();
        let old: &[Entry] = prev.map_or(&[], |k| &k.entries);
        if let Some(key) = &req.idem_key {
            // A key the workflow already holds is its own: no read needed.
            let held = old.iter().any(|e| &e.key == key && e.value == id);
            if !held {
                let owner = match staged.idem.get(key) {
                    Some(owner) => *owner,
                    None => match self.tree.get(key).map_err(sled_err)? {
                        Some(raw) => Some(id_from(&raw)?),
                        None => None,
                    },
                };
                if let Some(existing) = owner.filter(|o| *o != req.id) {
                    return Ok(Err(AppendRejection::DuplicateIdempotencyKey { existing }));
                }
            }
        }

        let w = &mut staged.writes;
        w.insert(
            events_key(&req.id, req.expected_version + 1),
            std::mem::take(&mut req.chunk),
        );
        // Touch only the index rows that changed: fewer writes, and an
        // unchanged row is never briefly absent.
        for e in old {
            if !req.entries.iter().any(|n| n.key == e.key) {
                w.remove(e.key.as_slice());
                if e.is_idem() {
                    staged.idem.insert(e.key.clone(), None);
                }
            }
        }
        for e in &req.entries {
            if !old.contains(e) {
                w.insert(e.key.as_slice(), e.value.as_slice());
                if e.is_idem() {
                    staged.idem.insert(e.key.clone(), Some(req.id));
                }
            }
        }
        staged.wrote = true;
        staged.known.insert(
            req.id,
            Known {
                version: req.new_version,
                entries: std::mem::take(&mut req.entries),
            },
        );
        Ok(Ok(req.new_version))
    }

    /// What the tree says of `id`, from its stored summary.
    fn load(&self, id: &WorkflowId) -> Result<Option<Known>, LogError> {
        Ok(super::latest_summary(&self.tree, id)?.map(|summary| Known {
            version: summary.version,
            entries: index_entries(&summary),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_engine::testkit::conformance::{at, wid, Stream};

    fn request(req: &AppendRequest) -> Request {
        let (reply, _) = oneshot::channel();
        Request::new(req, Instant::now(), reply)
    }

    fn applier() -> Applier {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .expect("temporary sled");
        Applier::new(db.open_tree(super::super::layout::TREE).expect("tree"))
    }

    /// Apply `reqs` one batch each, then all as one batch on a fresh tree:
    /// the outcomes and the stored rows must be the same.
    fn same_as_sequential(reqs: &[AppendRequest]) -> Vec<Outcome> {
        let mut one_by_one = applier();
        let sequential: Vec<String> = reqs
            .iter()
            .map(|r| {
                let out = one_by_one.apply(&mut [request(r)]).expect("applies");
                format!("{:?}", out[0])
            })
            .collect();
        let mut batched = applier();
        let mut batch: Vec<Request> = reqs.iter().map(request).collect();
        let outcomes = batched.apply(&mut batch).expect("applies");
        let together: Vec<String> = outcomes.iter().map(|o| format!("{o:?}")).collect();
        assert_eq!(together, sequential);
        let rows = |a: &Applier| -> Vec<(sled::IVec, sled::IVec)> {
            a.tree.iter().collect::<Result<_, _>>().expect("rows")
        };
        assert_eq!(rows(&batched), rows(&one_by_one));
        // And what the applier remembers is what a fresh one would read.
        for r in reqs {
            let remembered = batched
                .recent
                .get(&r.id)
                .map(|k| (k.version, k.entries.clone()));
            let loaded = batched
                .load(&r.id)
                .expect("load")
                .map(|k| (k.version, k.entries));
            assert_eq!(remembered, loaded);
        }
        outcomes
    }

    #[test]
    fn a_batch_behaves_exactly_as_its_requests_one_by_one() {
        let (mut a, submit_a) = Stream::submit(1, "acme", "export", Some("nightly"), 0);
        let (_, submit_b) = Stream::submit(2, "acme", "export", Some("nightly"), 1);
        let (_, submit_c) = Stream::submit(3, "globex", "export", Some("nightly"), 2);
        a.accept(submit_a.clone());
        let start = a.request(vec![Event::Started { at: at(10) }]);
        a.accept(start.clone());
        // The same request again is a stale writer.
        let stale = start.clone();
        // Workflow 1 gives its key up; now workflow 4 may take it.
        let mut give_up = a.request(vec![Event::Completed { at: at(20) }]);
        give_up.summary.idempotency_key = None;
        let (_, submit_d) = Stream::submit(4, "acme", "export", Some("nightly"), 3);
        let outcomes = same_as_sequential(&[
            submit_a, submit_b, start, stale, submit_c, give_up, submit_d,
        ]);
        let summary: Vec<String> = outcomes
            .iter()
            .map(|o| match o {
                Ok(Ok(v)) => format!("ok {v}"),
                Ok(Err(AppendRejection::VersionConflict { current, .. })) => {
                    format!("conflict at {current}")
                }
                Ok(Err(AppendRejection::DuplicateIdempotencyKey { existing })) => {
                    format!("duplicate of {existing}")
                }
                Ok(Err(r)) => format!("{r}"),
                Err(e) => format!("error {e}"),
            })
            .collect();
        let one = wid(1);
        assert_eq!(
            summary,
            [
                "ok 1".to_string(),
                format!("duplicate of {one}"),
                "ok 2".into(),
                "conflict at 2".into(),
                "ok 1".into(),
                "ok 3".into(),
                "ok 1".into(),
            ]
        );
    }

    #[test]
    fn recent_is_bounded_and_the_young_generation_wins() {
        let mut recent = Recent::default();
        let id = |n: u128| WorkflowId::from_bytes(n.to_be_bytes());
        for n in 0..(RECENT_WORKFLOWS_MAX as u128 * 3) {
            recent.insert(
                id(n),
                Known {
                    version: 1,
                    entries: vec![],
                },
            );
            if n == 5 {
                recent.insert(
                    id(0),
                    Known {
                        version: 2,
                        entries: vec![],
                    },
                );
            }
            assert!(recent.young.len() + recent.old.len() <= RECENT_WORKFLOWS_MAX);
        }
        let last = RECENT_WORKFLOWS_MAX as u128 * 3 - 1;
        assert_eq!(recent.get(&id(last)).map(|k| k.version), Some(1));
        assert!(recent.get(&id(0)).is_none());
    }
}
