//! The `EventLog` conformance suite: one set of checks of the contract in
//! [`crate::log`], run against every implementation (restate's loglet tests
//! are the model).
//!
//! Each case is a public async function taking a [`LogFactory`], so an
//! implementation's crate can run them all with [`run_all`] or, better, get
//! one `#[tokio::test]` per case from [`eventlog_conformance_tests!`] and see
//! exactly which guarantee broke. Cases build real events and derive summaries
//! with `WorkflowState::fold(..).summary()`, exactly as the engine does, so the
//! suite exercises the data a log really stores. Timestamps carry sub-millisecond
//! parts on purpose: a log that rounds them changes timer order and rate-limit
//! counts.
//!
//! [`eventlog_conformance_tests!`]: crate::eventlog_conformance_tests

use crate::event::{Event, Failure, Progress, Timestamp};
use crate::ids::{TenantId, WorkflowId};
use crate::log::{
    AppendRejection, AppendRequest, DueTimer, EventLog, ListQuery, TimerEntry, WorkflowSummary,
    LIST_LIMIT_MAX,
};
use crate::state::WorkflowState;
use crate::status::Status;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How the suite gets logs to test.
pub trait LogFactory: Send + Sync + 'static {
    type Log: EventLog;

    /// A new, empty log.
    fn fresh(&self) -> Arc<Self::Log>;

    /// Close `log` and open the same storage again, as a restarted process
    /// would. The suite hands over the only reference, so a disk log can
    /// really close (and unlock) its files first. A memory log returns `log`.
    fn reopen(&self, log: Arc<Self::Log>) -> Arc<Self::Log>;
}

/// A workflow's stream as the test has seen it acknowledged; builds the next
/// `AppendRequest` the way the engine does (fold, then summarise).
#[derive(Clone, Debug)]
pub struct Stream {
    pub id: WorkflowId,
    /// Acknowledged events, in order.
    pub events: Vec<Event>,
}

impl Stream {
    /// A workflow not yet appended, and the request that submits it.
    pub fn submit(
        n: u128,
        tenant: &str,
        kind: &str,
        key: Option<&str>,
        at_ms: i64,
    ) -> (Stream, AppendRequest) {
        let id = wid(n);
        let stream = Stream { id, events: vec![] };
        let req = stream.request(vec![Event::Submitted {
            id,
            tenant: tenant_id(tenant),
            kind: kind.into(),
            input: json!({"profile": "lite", "tables": ["orders", "línea"], "n": n as u64}),
            idempotency_key: key.map(str::to_owned),
            requested_by: Some("admin@example.com".into()),
            at: at(at_ms),
        }]);
        (stream, req)
    }

    /// The request appending `events` after everything acknowledged so far.
    pub fn request(&self, events: Vec<Event>) -> AppendRequest {
        let state = WorkflowState::fold(self.events.iter().chain(events.iter()))
            .expect("a request appends at least one event");
        AppendRequest {
            id: self.id,
            expected_version: self.events.len() as u64,
            events,
            summary: state.summary(),
            fence: None,
        }
    }

    /// Record `req` as acknowledged.
    pub fn accept(&mut self, req: AppendRequest) {
        assert_eq!(req.expected_version, self.events.len() as u64);
        self.events.extend(req.events);
    }

    pub fn state(&self) -> WorkflowState {
        WorkflowState::fold(&self.events).expect("stream was submitted")
    }

    pub fn summary(&self) -> WorkflowSummary {
        self.state().summary()
    }
}

/// Workflow id `n` (ids sort by `n`).
pub fn wid(n: u128) -> WorkflowId {
    WorkflowId(uuid::Uuid::from_u128(n))
}

pub fn tenant_id(s: &str) -> TenantId {
    TenantId::parse(s).expect("test tenant ids are valid")
}

/// `ms` milliseconds after 2026-01-01T00:00:00Z, plus 123 456 ns so that a
/// log which keeps only milliseconds is caught.
pub fn at(ms: i64) -> Timestamp {
    let base = chrono::DateTime::from_timestamp(1_767_225_600, 123_456).expect("valid base time");
    base + chrono::Duration::milliseconds(ms)
}

fn failure(code: &str, retryable: bool) -> Failure {
    Failure {
        code: code.into(),
        message: format!("{code} happened"),
        retryable,
    }
}

fn started(ms: i64) -> Event {
    Event::Started { at: at(ms) }
}

fn step_started(step: &str, attempt: u32, ms: i64) -> Event {
    Event::StepStarted {
        step: step.into(),
        attempt,
        at: at(ms),
    }
}

fn step_succeeded(step: &str, ms: i64) -> Event {
    Event::StepSucceeded {
        step: step.into(),
        output: json!({"step": step, "rows": 42, "bytes": 1u64 << 40}),
        at: at(ms),
    }
}

fn completed(ms: i64) -> Event {
    Event::Completed { at: at(ms) }
}

fn failed(ms: i64) -> Event {
    Event::Failed {
        error: failure("step_timeout", false),
        at: at(ms),
    }
}

fn timer(name: &str, due_ms: i64, ms: i64) -> Event {
    Event::TimerScheduled {
        name: name.into(),
        due_at: at(due_ms),
        at: at(ms),
    }
}

fn fired(name: &str, ms: i64) -> Event {
    Event::TimerFired {
        name: name.into(),
        at: at(ms),
    }
}

/// Append and insist on success; returns the new version.
async fn ok<L: EventLog + ?Sized>(log: &L, stream: &mut Stream, events: Vec<Event>) -> u64 {
    let req = stream.request(events);
    let version = req.summary.version;
    let got = log
        .append(req.clone())
        .await
        .unwrap_or_else(|e| panic!("append to {} failed: {e}", stream.id))
        .unwrap_or_else(|r| panic!("append to {} rejected: {r}", stream.id));
    assert_eq!(got, version, "append returns the stream's new version");
    stream.accept(req);
    version
}

/// Submit and insist on success.
async fn submit<L: EventLog + ?Sized>(
    log: &L,
    n: u128,
    tenant: &str,
    kind: &str,
    key: Option<&str>,
    at_ms: i64,
) -> Stream {
    let (mut stream, req) = Stream::submit(n, tenant, kind, key, at_ms);
    let got = log.append(req.clone()).await.expect("log error");
    assert_eq!(got, Ok(1), "submitting {}", stream.id);
    stream.accept(req);
    stream
}

/// Everything the log says about one workflow equals what was acknowledged.
fn assert_stream<L: EventLog + ?Sized>(log: &L, stream: &Stream) {
    let read = log.read(stream.id).expect("read");
    assert_eq!(
        read, stream.events,
        "stream {} reads back as appended",
        stream.id
    );
    let summary = log.summary(stream.id).expect("summary");
    assert_eq!(summary, Some(stream.summary()), "summary of {}", stream.id);
}

/// Every page of `q`, following the `after` cursor.
fn list_all<L: EventLog + ?Sized>(log: &L, q: &ListQuery) -> Vec<WorkflowSummary> {
    let mut out: Vec<WorkflowSummary> = vec![];
    let mut q = q.clone();
    // A bound on pages so a log that ignores the cursor fails instead of looping.
    for _ in 0..10_000 {
        let page = log.list(&q).expect("list");
        assert!(
            page.len() <= q.effective_limit(),
            "page longer than the limit"
        );
        let Some(last) = page.last() else {
            return out;
        };
        q.after = Some(last.id);
        let short = q.limit != 0 && page.len() < q.limit;
        out.extend(page);
        if short {
            return out;
        }
    }
    panic!("listing never ended; is the `after` cursor ignored?");
}

fn ids(summaries: &[WorkflowSummary]) -> Vec<WorkflowId> {
    summaries.iter().map(|s| s.id).collect()
}

/// Append to many workflows at once (one task per workflow, each in order),
/// as the engine does; every append must be acknowledged.
async fn drive<L: EventLog>(log: &Arc<L>, plans: Vec<(Stream, Vec<Vec<Event>>)>) -> Vec<Stream> {
    let tasks = plans.into_iter().map(|(mut stream, batches)| {
        let log = Arc::clone(log);
        async move {
            for events in batches {
                ok(&*log, &mut stream, events).await;
            }
            stream
        }
    });
    futures::future::join_all(tasks).await
}

// ---------------------------------------------------------------------------
// The cases.
// ---------------------------------------------------------------------------

/// Appends of one, several and many events read back in order, exactly.
pub async fn append_then_read_returns_events_in_order<F: LogFactory>(f: &F) {
    let log = f.fresh();
    let mut s = submit(&*log, 1, "acme", "export", Some("req-1"), 0).await;
    assert_stream(&*log, &s);
    ok(&*log, &mut s, vec![started(1), step_started("plan", 1, 2)]).await;
    assert_stream(&*log, &s);
    ok(
        &*log,
        &mut s,
        vec![
            Event::StepProgressed {
                step: "plan".into(),
                checkpoint: json!({"table": "orders", "last_key": [1, "a"]}),
                progress: Some(Progress {
                    fraction: 0.25,
                    rows: 10,
                    bytes: 1 << 33,
                }),
                at: at(3),
            },
            Event::StepFailed {
                step: "plan".into(),
                attempt: 1,
                error: failure("db_unavailable", true),
                retry_at: Some(at(500)),
                at: at(4),
            },
            step_started("plan", 2, 500),
        ],
    )
    .await;
    assert_stream(&*log, &s);
    // One append of many events is one atomic write too.
    let mut many = vec![step_succeeded("plan", 600)];
    for i in 0..40 {
        many.push(Event::SignalReceived {
            name: format!("note-{i}"),
            payload: json!({"i": i, "text": "ünïcödé ✓"}),
            at: at(601 + i),
        });
    }
    many.push(completed(700));
    let version = ok(&*log, &mut s, many).await;
    assert_eq!(version, s.events.len() as u64);
    assert_stream(&*log, &s);
}

/// An unknown workflow reads as empty and has no summary.
pub async fn unknown_workflow_reads_empty<F: LogFactory>(f: &F) {
    let log = f.fresh();
    submit(&*log, 1, "acme", "export", None, 0).await;
    assert!(log.read(wid(2)).expect("read").is_empty());
    assert_eq!(log.summary(wid(2)).expect("summary"), None);
    assert_eq!(
        log.find_idempotency(&tenant_id("acme"), "nope")
            .expect("find"),
        None
    );
}

/// A new stream is created only by a writer expecting version 0.
pub async fn new_stream_must_expect_version_zero<F: LogFactory>(f: &F) {
    let log = f.fresh();
    let (_, submitted) = Stream::submit(1, "acme", "export", Some("k"), 0);
    // A writer that wrongly believes the Submitted event is already stored.
    let believed = Stream {
        id: submitted.id,
        events: submitted.events.clone(),
    };
    let req = believed.request(vec![started(1)]);
    assert_eq!(req.expected_version, 1);
    let got = log.append(req).await.expect("log error");
    assert_eq!(
        got,
        Err(AppendRejection::VersionConflict {
            expected: 1,
            current: 0
        })
    );
    assert!(log.read(wid(1)).expect("read").is_empty());
    assert_eq!(log.summary(wid(1)).expect("summary"), None);
    assert!(log.open().expect("open").is_empty());
    assert!(list_all(&*log, &ListQuery::default()).is_empty());
    assert_eq!(
        log.find_idempotency(&tenant_id("acme"), "k").expect("find"),
        None
    );
    assert_eq!(
        log.count_submitted_since(&tenant_id("acme"), "export", at(-1000))
            .expect("count"),
        0
    );
    // The correct writer still succeeds afterwards.
    let s = submit(&*log, 1, "acme", "export", Some("k"), 0).await;
    assert_stream(&*log, &s);
}

/// A stale (or too new) writer gets `VersionConflict` and nothing it carried
/// is written: not its events, not its summary, not its index entries.
pub async fn stale_writer_gets_conflict_and_writes_nothing<F: LogFactory>(f: &F) {
    let log = f.fresh();
    let mut s = submit(&*log, 1, "acme", "export", None, 0).await;
    let stale = s.clone();
    ok(&*log, &mut s, vec![started(1)]).await;

    let req = stale.request(vec![Event::Cancelled { at: at(2) }, timer("expire", 10, 2)]);
    let got = log.append(req).await.expect("log error");
    assert_eq!(
        got,
        Err(AppendRejection::VersionConflict {
            expected: 1,
            current: 2
        })
    );
    let mut ahead = s.clone();
    ahead.events.push(step_started("plan", 1, 2));
    ahead.events.push(step_succeeded("plan", 3));
    let req = ahead.request(vec![completed(4)]);
    assert_eq!(
        log.append(req).await.expect("log error"),
        Err(AppendRejection::VersionConflict {
            expected: 4,
            current: 2
        })
    );

    assert_stream(&*log, &s);
    assert_eq!(ids(&log.open().expect("open")), vec![s.id]);
    let cancelled = ListQuery {
        status: Some(Status::Cancelled),
        ..ListQuery::default()
    };
    assert!(list_all(&*log, &cancelled).is_empty());
    let completed_q = ListQuery {
        status: Some(Status::Completed),
        ..ListQuery::default()
    };
    assert!(list_all(&*log, &completed_q).is_empty());
    assert_eq!(log.due_timers(at(1_000_000), 10).expect("timers"), vec![]);
    assert_eq!(log.next_timer().expect("next timer"), None);
}

/// A second workflow with a used idempotency key is rejected, naming the
/// first, and leaves no trace; the owner keeps using its key.
pub async fn duplicate_idempotency_key_is_rejected_atomically<F: LogFactory>(f: &F) {
    let log = f.fresh();
    let acme = tenant_id("acme");
    let mut first = submit(&*log, 1, "acme", "export", Some("nightly-2026-01-01"), 0).await;

    let (_, dup) = Stream::submit(2, "acme", "export", Some("nightly-2026-01-01"), 5);
    assert_eq!(
        log.append(dup).await.expect("log error"),
        Err(AppendRejection::DuplicateIdempotencyKey { existing: first.id })
    );
    assert!(log.read(wid(2)).expect("read").is_empty());
    assert_eq!(log.summary(wid(2)).expect("summary"), None);
    assert_eq!(ids(&log.open().expect("open")), vec![first.id]);
    assert_eq!(ids(&list_all(&*log, &ListQuery::default())), vec![first.id]);
    assert_eq!(
        log.count_submitted_since(&acme, "export", at(-1))
            .expect("count"),
        1
    );
    assert_eq!(
        log.find_idempotency(&acme, "nightly-2026-01-01")
            .expect("find"),
        Some(first.id)
    );

    // Every later summary of the owner carries the key again; that is no duplicate.
    ok(&*log, &mut first, vec![started(6), timer("expire", 100, 6)]).await;
    ok(&*log, &mut first, vec![completed(7)]).await;
    assert_stream(&*log, &first);
    assert_eq!(
        log.find_idempotency(&acme, "nightly-2026-01-01")
            .expect("find"),
        Some(first.id)
    );
    // A finished workflow still owns its key.
    let (_, dup) = Stream::submit(3, "acme", "export", Some("nightly-2026-01-01"), 8);
    assert_eq!(
        log.append(dup).await.expect("log error"),
        Err(AppendRejection::DuplicateIdempotencyKey { existing: first.id })
    );
    // Another key is fine.
    let other = submit(&*log, 4, "acme", "export", Some("nightly-2026-01-02"), 9).await;
    assert_eq!(
        log.find_idempotency(&acme, "nightly-2026-01-02")
            .expect("find"),
        Some(other.id)
    );
}

/// The same key in two tenants names two workflows; tenants whose names
/// share a prefix do not see each other's keys.
pub async fn idempotency_keys_are_per_tenant<F: LogFactory>(f: &F) {
    let log = f.fresh();
    let a = submit(&*log, 1, "acme", "export", Some("k1"), 0).await;
    let b = submit(&*log, 2, "acme-eu", "export", Some("k1"), 1).await;
    let c = submit(&*log, 3, "globex", "rehydrate", Some("k1"), 2).await;
    let find = |t: &str, k: &str| log.find_idempotency(&tenant_id(t), k).expect("find");
    assert_eq!(find("acme", "k1"), Some(a.id));
    assert_eq!(find("acme-eu", "k1"), Some(b.id));
    assert_eq!(find("globex", "k1"), Some(c.id));
    assert_eq!(find("acme", "k2"), None);
    assert_eq!(find("acm", "ek1"), None);
    assert_eq!(find("initech", "k1"), None);
    // Keys are opaque strings: separators and unicode are not special.
    let d = submit(&*log, 4, "acme", "export", Some("a\0b/ü:1"), 3).await;
    assert_eq!(find("acme", "a\0b/ü:1"), Some(d.id));
    assert_eq!(find("acme", "a"), None);
}

fn status_of(n: u128) -> Status {
    match n % 5 {
        0 => Status::Pending,
        1 => Status::Running,
        2 => Status::Completed,
        3 => Status::Failed,
        _ => Status::AwaitingConfirmation,
    }
}

/// Events that take a fresh workflow to `status` (one append per inner vec).
fn path_to(status: Status, ms: i64) -> Vec<Vec<Event>> {
    match status {
        Status::Pending => vec![],
        Status::Running => vec![vec![started(ms), step_started("plan", 1, ms)]],
        Status::Completed => vec![
            vec![started(ms)],
            vec![step_started("plan", 1, ms), step_succeeded("plan", ms + 1)],
            vec![completed(ms + 2)],
        ],
        Status::Failed => vec![vec![started(ms)], vec![failed(ms + 1)]],
        Status::AwaitingConfirmation => vec![
            vec![started(ms)],
            vec![Event::AwaitingSignal {
                signal: "confirm".into(),
                at: at(ms + 1),
            }],
        ],
        other => panic!("no test path to {other}"),
    }
}

const TENANTS: [&str; 3] = ["acme", "acme-eu", "globex"];
const KINDS: [&str; 2] = ["export", "rehydrate"];

/// Listing filters by tenant, status and kind (alone and combined), orders by
/// id whatever the creation times, and pages with the `after` cursor without
/// losing or repeating rows.
pub async fn list_filters_and_paginates<F: LogFactory>(f: &F) {
    let log = f.fresh();
    // Created in an order unrelated to id order, with creation times that
    // run backwards, so only an id-ordered listing passes.
    let mut plans = vec![];
    for n in [
        7u128, 3, 30, 1, 12, 25, 2, 18, 9, 21, 14, 5, 27, 11, 16, 23, 4, 29, 8, 20,
    ] {
        let tenant = TENANTS[(n % 3) as usize];
        let kind = KINDS[(n % 2) as usize];
        let (stream, req) = Stream::submit(n, tenant, kind, None, 10_000 - n as i64 * 10);
        let mut batches = vec![req.events];
        batches.extend(path_to(status_of(n), 20_000 + n as i64));
        plans.push((stream, batches));
    }
    let streams = drive(&log, plans).await;
    let mut expected: Vec<WorkflowSummary> = streams.iter().map(Stream::summary).collect();
    expected.sort_by_key(|s| s.id);

    let mut queries = vec![ListQuery::default()];
    for t in TENANTS {
        queries.push(ListQuery {
            tenant: Some(tenant_id(t)),
            ..ListQuery::default()
        });
    }
    for st in Status::ALL {
        queries.push(ListQuery {
            status: Some(st),
            ..ListQuery::default()
        });
        queries.push(ListQuery {
            tenant: Some(tenant_id("acme")),
            status: Some(st),
            ..ListQuery::default()
        });
    }
    for k in KINDS {
        queries.push(ListQuery {
            kind: Some(k.into()),
            ..ListQuery::default()
        });
        queries.push(ListQuery {
            tenant: Some(tenant_id("globex")),
            status: Some(Status::Completed),
            kind: Some(k.into()),
            ..ListQuery::default()
        });
        queries.push(ListQuery {
            status: Some(Status::Failed),
            kind: Some(k.into()),
            ..ListQuery::default()
        });
    }
    queries.push(ListQuery {
        tenant: Some(tenant_id("initech")),
        ..ListQuery::default()
    });
    queries.push(ListQuery {
        kind: Some("unknown".into()),
        ..ListQuery::default()
    });

    for base in &queries {
        let want: Vec<WorkflowSummary> = expected
            .iter()
            .filter(|s| base.tenant.as_ref().is_none_or(|t| &s.tenant == t))
            .filter(|s| base.status.is_none_or(|st| s.status == st))
            .filter(|s| base.kind.as_ref().is_none_or(|k| &s.kind == k))
            .cloned()
            .collect();
        for limit in [1usize, 3, 7, 100] {
            let q = ListQuery {
                limit,
                ..base.clone()
            };
            let first = log.list(&q).expect("list");
            assert_eq!(
                first,
                want.iter().take(limit).cloned().collect::<Vec<_>>(),
                "{q:?}"
            );
            assert_eq!(list_all(&*log, &q), want, "all pages of {q:?}");
        }
        // A cursor in the middle, even one that names no workflow.
        let q = ListQuery {
            after: Some(wid(15)),
            limit: 100,
            ..base.clone()
        };
        let tail: Vec<WorkflowSummary> = want.iter().filter(|s| s.id > wid(15)).cloned().collect();
        assert_eq!(log.list(&q).expect("list"), tail, "{q:?}");

        // Newest first: the same rows backwards, the cursor walking back.
        let newest: Vec<WorkflowSummary> = want.iter().rev().cloned().collect();
        for limit in [1usize, 3, 7, 100] {
            let q = ListQuery {
                limit,
                newest_first: true,
                ..base.clone()
            };
            let first = log.list(&q).expect("list");
            assert_eq!(
                first,
                newest.iter().take(limit).cloned().collect::<Vec<_>>(),
                "{q:?}"
            );
            assert_eq!(list_all(&*log, &q), newest, "all pages of {q:?}");
        }
        let q = ListQuery {
            after: Some(wid(15)),
            limit: 100,
            newest_first: true,
            ..base.clone()
        };
        let older: Vec<WorkflowSummary> =
            newest.iter().filter(|s| s.id < wid(15)).cloned().collect();
        assert_eq!(log.list(&q).expect("list"), older, "{q:?}");
    }
}

/// A limit of 0 means "as many as allowed"; no limit returns more than
/// `LIST_LIMIT_MAX` rows.
pub async fn list_limit_is_capped<F: LogFactory>(f: &F) {
    let log = f.fresh();
    let total = LIST_LIMIT_MAX as u128 + 7;
    let plans = (1..=total)
        .map(|n| {
            let (s, req) = Stream::submit(n, "acme", "export", None, n as i64);
            (s, vec![req.events])
        })
        .collect();
    drive(&log, plans).await;
    for limit in [0, LIST_LIMIT_MAX + 1, 1_000_000] {
        let q = ListQuery {
            limit,
            ..ListQuery::default()
        };
        let page = log.list(&q).expect("list");
        assert_eq!(page.len(), LIST_LIMIT_MAX, "limit {limit}");
        assert_eq!(page.first().map(|s| s.id), Some(wid(1)));
    }
    let q = ListQuery {
        limit: 0,
        after: Some(wid(LIST_LIMIT_MAX as u128)),
        ..ListQuery::default()
    };
    assert_eq!(log.list(&q).expect("list").len(), 7);
    assert_eq!(log.open().expect("open").len(), total as usize);
}

/// `open()` lists exactly the workflows whose status is open, with current
/// summaries, and follows every status change in both directions.
pub async fn open_index_follows_status<F: LogFactory>(f: &F) {
    let log = f.fresh();
    let check = |streams: &[&Stream]| {
        let want: Vec<WorkflowSummary> = streams
            .iter()
            .map(|s| s.summary())
            .filter(|s| s.status.is_open())
            .collect();
        assert_eq!(log.open().expect("open"), want);
        for s in streams {
            let q = ListQuery {
                status: Some(s.summary().status),
                ..ListQuery::default()
            };
            assert!(ids(&list_all(&*log, &q)).contains(&s.id), "{q:?}");
        }
    };
    let mut a = submit(&*log, 1, "acme", "export", None, 0).await;
    let mut b = submit(&*log, 2, "acme", "export", None, 1).await;
    let mut c = submit(&*log, 3, "globex", "rehydrate", None, 2).await;
    let mut d = submit(&*log, 4, "globex", "rehydrate", None, 3).await;
    check(&[&a, &b, &c, &d]);

    ok(&*log, &mut a, vec![started(10)]).await;
    ok(
        &*log,
        &mut b,
        vec![started(10), step_started("plan", 1, 10)],
    )
    .await;
    ok(&*log, &mut c, vec![started(10)]).await;
    ok(&*log, &mut d, vec![Event::Cancelled { at: at(10) }]).await;
    check(&[&a, &b, &c, &d]);

    ok(
        &*log,
        &mut b,
        vec![step_succeeded("plan", 11), completed(12)],
    )
    .await;
    ok(&*log, &mut c, vec![failed(11)]).await;
    check(&[&a, &b, &c, &d]);
    let running = ListQuery {
        status: Some(Status::Running),
        ..ListQuery::default()
    };
    assert_eq!(ids(&list_all(&*log, &running)), vec![a.id]);

    // A failed workflow resumed is open again; a finished one rolled back too.
    ok(&*log, &mut c, vec![Event::Resumed { at: at(20) }]).await;
    ok(
        &*log,
        &mut b,
        vec![Event::CompensationStarted {
            reason: failure("rollback_requested", false),
            at: at(21),
        }],
    )
    .await;
    check(&[&a, &b, &c, &d]);
    let failed_q = ListQuery {
        status: Some(Status::Failed),
        ..ListQuery::default()
    };
    assert!(list_all(&*log, &failed_q).is_empty());
    ok(
        &*log,
        &mut a,
        vec![Event::Paused {
            reason: "operator".into(),
            at: at(30),
        }],
    )
    .await;
    ok(&*log, &mut b, vec![Event::RolledBack { at: at(31) }]).await;
    ok(&*log, &mut c, vec![completed(32)]).await;
    check(&[&a, &b, &c, &d]);
    assert_eq!(ids(&log.open().expect("open")), vec![a.id]);
}

/// The timer index: scheduled timers come out of `due_timers`/`next_timer`
/// earliest first with exact due times, leave when fired, and move when
/// rescheduled; a finished workflow's timers stay due.
pub async fn timers_index_tracks_schedule_fire_and_reschedule<F: LogFactory>(f: &F) {
    let log = f.fresh();
    let mut w1 = submit(&*log, 1, "acme", "export", None, 0).await;
    let mut w2 = submit(&*log, 2, "acme", "export", None, 0).await;
    let mut w3 = submit(&*log, 3, "globex", "export", None, 0).await;
    assert_eq!(log.next_timer().expect("next"), None);

    ok(
        &*log,
        &mut w1,
        vec![
            started(1),
            timer("expire", 5_000, 1),
            timer("reminder", 1_000, 1),
        ],
    )
    .await;
    ok(&*log, &mut w2, vec![timer("expire", 3_000, 1)]).await;
    ok(&*log, &mut w3, vec![timer("expire", 1_000, 1)]).await;
    let due = |w: &Stream, name: &str, ms: i64| DueTimer {
        workflow: w.id,
        name: name.into(),
        due_at: at(ms),
    };
    assert_eq!(
        log.next_timer().expect("next"),
        Some(due(&w1, "reminder", 1_000))
    );
    // Exactly at the due instant it is due; a nanosecond before it is not.
    let just_before = at(1_000) - chrono::Duration::nanoseconds(1);
    assert_eq!(log.due_timers(just_before, 10).expect("due"), vec![]);
    assert_eq!(
        log.due_timers(at(1_000), 10).expect("due"),
        vec![due(&w1, "reminder", 1_000), due(&w3, "expire", 1_000)]
    );
    assert_eq!(
        log.due_timers(at(10_000), 2).expect("due"),
        vec![due(&w1, "reminder", 1_000), due(&w3, "expire", 1_000)]
    );
    assert_eq!(
        log.due_timers(at(10_000), 10).expect("due"),
        vec![
            due(&w1, "reminder", 1_000),
            due(&w3, "expire", 1_000),
            due(&w2, "expire", 3_000),
            due(&w1, "expire", 5_000),
        ]
    );
    assert_eq!(
        log.summary(w1.id).expect("summary").map(|s| s.timers),
        Some(vec![
            TimerEntry {
                name: "expire".into(),
                due_at: at(5_000)
            },
            TimerEntry {
                name: "reminder".into(),
                due_at: at(1_000)
            },
        ])
    );

    // Fired: gone from the index and from the summary.
    ok(&*log, &mut w1, vec![fired("reminder", 1_001)]).await;
    assert_eq!(
        log.due_timers(at(10_000), 10).expect("due"),
        vec![
            due(&w3, "expire", 1_000),
            due(&w2, "expire", 3_000),
            due(&w1, "expire", 5_000),
        ]
    );
    assert_eq!(
        log.next_timer().expect("next"),
        Some(due(&w3, "expire", 1_000))
    );
    assert_stream(&*log, &w1);

    // Rescheduled: moves, and is listed once.
    ok(&*log, &mut w2, vec![timer("expire", 500, 1_002)]).await;
    assert_eq!(
        log.next_timer().expect("next"),
        Some(due(&w2, "expire", 500))
    );
    assert_eq!(
        log.due_timers(at(10_000), 10).expect("due"),
        vec![
            due(&w2, "expire", 500),
            due(&w3, "expire", 1_000),
            due(&w1, "expire", 5_000),
        ]
    );
    ok(&*log, &mut w2, vec![timer("expire", 9_000, 1_003)]).await;
    assert_eq!(
        log.next_timer().expect("next"),
        Some(due(&w3, "expire", 1_000))
    );

    // A finished workflow's timer (e.g. "delete the export in 24 h") stays due.
    ok(
        &*log,
        &mut w1,
        vec![
            step_started("plan", 1, 1_004),
            step_succeeded("plan", 1_005),
            completed(1_006),
        ],
    )
    .await;
    assert!(log
        .due_timers(at(10_000), 10)
        .expect("due")
        .contains(&due(&w1, "expire", 5_000)));

    for (w, ms) in [(&mut w1, 5_001), (&mut w2, 9_001), (&mut w3, 1_001)] {
        ok(&*log, w, vec![fired("expire", ms)]).await;
    }
    assert_eq!(log.next_timer().expect("next"), None);
    assert_eq!(log.due_timers(at(1_000_000), 10).expect("due"), vec![]);
    for w in [&w1, &w2, &w3] {
        assert_stream(&*log, w);
    }
}

/// Submissions are counted by tenant, kind and creation time (inclusive),
/// whatever became of them since.
pub async fn count_submitted_since_by_tenant_kind_and_time<F: LogFactory>(f: &F) {
    let log = f.fresh();
    let mut a = submit(&*log, 1, "acme", "export", None, 0).await;
    submit(&*log, 2, "acme", "export", None, 10).await;
    submit(&*log, 3, "acme", "export", Some("k"), 20).await;
    submit(&*log, 4, "acme", "rehydrate", None, 15).await;
    submit(&*log, 5, "acme-eu", "export", None, 30).await;
    submit(&*log, 6, "globex", "export", None, 5).await;
    // Rejected submissions are not submissions.
    let (_, dup) = Stream::submit(7, "acme", "export", Some("k"), 25);
    assert!(log.append(dup).await.expect("log error").is_err());
    ok(&*log, &mut a, vec![Event::Cancelled { at: at(40) }]).await;

    let count = |t: &str, k: &str, since: Timestamp| {
        log.count_submitted_since(&tenant_id(t), k, since)
            .expect("count")
    };
    assert_eq!(count("acme", "export", at(-1_000)), 3);
    assert_eq!(count("acme", "export", at(0)), 3);
    assert_eq!(count("acme", "export", at(10)), 2);
    assert_eq!(
        count("acme", "export", at(10) + chrono::Duration::nanoseconds(1)),
        1
    );
    assert_eq!(count("acme", "export", at(21)), 0);
    assert_eq!(count("acme", "rehydrate", at(0)), 1);
    assert_eq!(count("acme", "rehydrate", at(16)), 0);
    assert_eq!(count("acme-eu", "export", at(0)), 1);
    assert_eq!(count("globex", "export", at(5)), 1);
    assert_eq!(count("globex", "export", at(6)), 0);
    assert_eq!(count("initech", "export", at(-1_000)), 0);
    assert_eq!(count("acme", "unknown", at(-1_000)), 0);
}

/// Many tasks appending to many workflows at once: every append is
/// acknowledged and everything reads back.
pub async fn concurrent_appends_to_many_workflows_are_all_acknowledged<F: LogFactory>(f: &F) {
    const TASKS: u128 = 16;
    const PER_TASK: u128 = 20;
    let log = f.fresh();
    let handles: Vec<_> = (0..TASKS)
        .map(|t| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut streams = vec![];
                for i in 0..PER_TASK {
                    let n = 1 + t * PER_TASK + i;
                    let tenant = TENANTS[(n % 3) as usize];
                    let mut s = submit(&*log, n, tenant, "export", None, n as i64).await;
                    let ms = 1_000 + n as i64;
                    ok(
                        &*log,
                        &mut s,
                        vec![started(ms), step_started("plan", 1, ms)],
                    )
                    .await;
                    ok(&*log, &mut s, vec![step_succeeded("plan", ms + 1)]).await;
                    ok(&*log, &mut s, vec![completed(ms + 2)]).await;
                    streams.push(s);
                }
                streams
            })
        })
        .collect();
    let mut streams = vec![];
    for h in handles {
        streams.extend(h.await.expect("task panicked"));
    }
    assert_eq!(streams.len() as u128, TASKS * PER_TASK);
    for s in &streams {
        assert_stream(&*log, s);
    }
    let all = list_all(
        &*log,
        &ListQuery {
            limit: 50,
            ..ListQuery::default()
        },
    );
    assert_eq!(all.len() as u128, TASKS * PER_TASK);
    assert!(all.iter().all(|s| s.status == Status::Completed));
    assert!(log.open().expect("open").is_empty());
}

/// Writers racing on one workflow: for each version exactly one wins, the
/// others get `VersionConflict` naming the winner's version.
pub async fn concurrent_writers_to_one_workflow_one_wins_per_version<F: LogFactory>(f: &F) {
    const WRITERS: u32 = 8;
    let log = f.fresh();
    let mut s = submit(&*log, 1, "acme", "export", None, 0).await;
    ok(&*log, &mut s, vec![started(1)]).await;
    for round in 0..3i64 {
        let base = s.clone();
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let log = Arc::clone(&log);
                let req = base.request(vec![step_started("plan", w + 1, 10 * round + 2)]);
                tokio::spawn(async move { (req.clone(), log.append(req).await) })
            })
            .collect();
        let mut winners = vec![];
        for h in handles {
            let (req, got) = h.await.expect("task panicked");
            match got.expect("log error") {
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
        assert_stream(&*log, &s);
    }
}

/// Everything acknowledged survives closing and reopening the log, and the
/// reopened log carries on from where it was.
pub async fn reopen_keeps_everything<F: LogFactory>(f: &F) {
    let log = f.fresh();
    let mut plans = vec![];
    for n in 1..=12u128 {
        let key = (n % 4 == 0).then(|| format!("key-{n}"));
        let (stream, req) = Stream::submit(
            n,
            TENANTS[(n % 3) as usize],
            KINDS[(n % 2) as usize],
            key.as_deref(),
            n as i64 * 7,
        );
        let mut batches = vec![req.events];
        batches.extend(path_to(status_of(n), 100 + n as i64));
        if n % 3 == 0 {
            batches.push(vec![timer("expire", 10_000 + n as i64, 200)]);
        }
        plans.push((stream, batches));
    }
    let mut streams = drive(&log, plans).await;

    type Snapshot = (
        Vec<WorkflowSummary>,
        Vec<WorkflowSummary>,
        Vec<DueTimer>,
        Option<DueTimer>,
        BTreeMap<String, Option<WorkflowId>>,
        Vec<u64>,
    );
    let snapshot = |log: &F::Log| -> Snapshot {
        let keys = (1..=12)
            .map(|n| {
                let t = tenant_id(TENANTS[(n % 3) as usize]);
                let k = format!("key-{n}");
                let found = log.find_idempotency(&t, &k).expect("find");
                (k, found)
            })
            .collect();
        let counts = TENANTS
            .iter()
            .flat_map(|t| KINDS.iter().map(move |k| (t, k)))
            .map(|(t, k)| {
                log.count_submitted_since(&tenant_id(t), k, at(0))
                    .expect("count")
            })
            .collect();
        (
            list_all(
                log,
                &ListQuery {
                    limit: 5,
                    ..ListQuery::default()
                },
            ),
            log.open().expect("open"),
            log.due_timers(at(1_000_000), 100).expect("due"),
            log.next_timer().expect("next"),
            keys,
            counts,
        )
    };
    let before = snapshot(&log);
    assert_eq!(before.0.len(), 12);
    assert_eq!(before.2.len(), 4);

    let log = f.reopen(log);
    for s in &streams {
        assert_stream(&*log, s);
    }
    assert_eq!(snapshot(&log), before);

    // The reopened log keeps going: versions continue, checks still hold.
    let s = &mut streams[0];
    assert_eq!(s.summary().status, Status::Running);
    ok(&*log, s, vec![step_succeeded("plan", 300), completed(301)]).await;
    let stale = Stream {
        id: s.id,
        events: s.events[..2].to_vec(),
    };
    assert!(matches!(
        log.append(stale.request(vec![failed(302)]))
            .await
            .expect("log error"),
        Err(AppendRejection::VersionConflict { .. })
    ));
    let (_, dup) = Stream::submit(99, "acme", "export", Some("key-12"), 400);
    assert_eq!(
        log.append(dup).await.expect("log error"),
        Err(AppendRejection::DuplicateIdempotencyKey { existing: wid(12) })
    );

    let log = f.reopen(log);
    for s in &streams {
        assert_stream(&*log, s);
    }
}

/// Big values (a large workflow input) are stored and read back whole,
/// across a reopen. A disk log may store them out of line (sled's blobs).
pub async fn large_values_round_trip<F: LogFactory>(f: &F) {
    let log = f.fresh();
    let id = wid(1);
    let mut s = Stream { id, events: vec![] };
    let big: String = (0..300_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let req = s.request(vec![Event::Submitted {
        id,
        tenant: tenant_id("acme"),
        kind: "rehydrate".into(),
        input: json!({"inline_manifest": big, "tables": ["orders"]}),
        idempotency_key: None,
        requested_by: None,
        at: at(0),
    }]);
    assert_eq!(log.append(req.clone()).await.expect("log error"), Ok(1));
    s.accept(req);
    ok(&*log, &mut s, vec![started(1)]).await;
    assert_stream(&*log, &s);
    let log = f.reopen(log);
    assert_stream(&*log, &s);
}

macro_rules! declare_cases {
    ($($case:ident),* $(,)?) => {
        /// Names of all cases, in the order [`run_all`] runs them.
        pub const CASES: &[&str] = &[$(stringify!($case)),*];

        /// Run every case in turn against `factory`, naming each on stderr so
        /// a failure says which guarantee broke. Needs a Tokio runtime (some
        /// cases spawn tasks); a multi-threaded one exercises more races.
        pub async fn run_all<F: LogFactory>(factory: &F) {
            $(
                eprintln!("eventlog conformance: {}", stringify!($case));
                $case(factory).await;
            )*
        }
    };
}

declare_cases!(
    append_then_read_returns_events_in_order,
    unknown_workflow_reads_empty,
    new_stream_must_expect_version_zero,
    stale_writer_gets_conflict_and_writes_nothing,
    duplicate_idempotency_key_is_rejected_atomically,
    idempotency_keys_are_per_tenant,
    list_filters_and_paginates,
    list_limit_is_capped,
    open_index_follows_status,
    timers_index_tracks_schedule_fire_and_reschedule,
    count_submitted_since_by_tenant_kind_and_time,
    concurrent_appends_to_many_workflows_are_all_acknowledged,
    concurrent_writers_to_one_workflow_one_wins_per_version,
    reopen_keeps_everything,
    large_values_round_trip,
);

/// One `#[tokio::test]` per conformance case, for the factory expression
/// given (evaluated afresh in each test):
///
/// ```text
/// mod memory {
///     ferry_engine::eventlog_conformance_tests!(ferry_engine::testkit::MemoryFactory);
/// }
/// ```
///
/// It also emits a test that its list of cases equals `conformance::CASES`,
/// so a case added to the suite but not here fails loudly.
#[macro_export]
macro_rules! eventlog_conformance_tests {
    ($factory:expr) => {
        $crate::eventlog_conformance_tests!(@cases $factory;
            append_then_read_returns_events_in_order,
            unknown_workflow_reads_empty,
            new_stream_must_expect_version_zero,
            stale_writer_gets_conflict_and_writes_nothing,
            duplicate_idempotency_key_is_rejected_atomically,
            idempotency_keys_are_per_tenant,
            list_filters_and_paginates,
            list_limit_is_capped,
            open_index_follows_status,
            timers_index_tracks_schedule_fire_and_reschedule,
            count_submitted_since_by_tenant_kind_and_time,
            concurrent_appends_to_many_workflows_are_all_acknowledged,
            concurrent_writers_to_one_workflow_one_wins_per_version,
            reopen_keeps_everything,
            large_values_round_trip,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::testkit::conformance::$case(&$factory).await;
            }
        )*

        #[test]
        fn conformance_macro_names_every_case() {
            let listed: &[&str] = &[$(stringify!($case)),*];
            assert_eq!(listed, $crate::testkit::conformance::CASES);
        }
    };
}
