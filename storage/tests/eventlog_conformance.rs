//! The `EventLog` conformance suite, run against every implementation: the
//! sled log (in a temporary directory) and the in-memory reference log.
//! Below it, what only a disk log can be asked: that it survives being
//! closed and killed, that it reports corrupt storage as corruption, that it
//! refuses a folder in another format, that appends checked in one batch
//! behave exactly as one by one, and that group commit really shares syncs
//! (read from its own metrics).

use ferry_engine::testkit::conformance::{at, tenant_id, wid, Stream};
use ferry_engine::testkit::LogFactory;
use ferry_engine::{AppendRejection, Event, EventLog, ListQuery, LogError, WorkflowState};
use ferry_storage::sled_log::{layout, SledLog};
use parking_lot::Mutex;
use prometheus::Encoder;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;

/// Sled logs in temporary directories that live as long as the factory.
#[derive(Default)]
struct SledFactory {
    dirs: Mutex<Vec<TempDir>>,
}

impl LogFactory for SledFactory {
    type Log = SledLog;

    fn fresh(&self) -> Arc<SledLog> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = SledLog::open(dir.path().join("eventlog")).expect("open sled log");
        self.dirs.lock().push(dir);
        Arc::new(log)
    }

    fn reopen(&self, log: Arc<SledLog>) -> Arc<SledLog> {
        let path = log.path().to_path_buf();
        let log = Arc::into_inner(log).expect("the suite hands over the only reference");
        // Dropping closes sled (and its file lock) after a final sync.
        drop(log);
        Arc::new(SledLog::open(&path).expect("reopen sled log"))
    }
}

mod sled_log {
    ferry_engine::eventlog_conformance_tests!(super::SledFactory::default());
}

mod memory_log {
    ferry_engine::eventlog_conformance_tests!(ferry_engine::testkit::MemoryFactory);
}

/// Submit workflow `n` and append two more events; returns its stream.
async fn write_workflow(log: &SledLog, n: u128) -> Stream {
    let tenant = ["acme", "globex"][(n % 2) as usize];
    let (mut s, req) = Stream::submit(n, tenant, "export", Some(&format!("key-{n}")), n as i64);
    assert_eq!(log.append(req.clone()).await.expect("append"), Ok(1));
    s.accept(req);
    for events in [
        vec![Event::Started { at: at(1_000) }],
        vec![Event::TimerScheduled {
            name: "expire".into(),
            due_at: at(86_400_000 + n as i64),
            at: at(1_001),
        }],
    ] {
        let req = s.request(events);
        log.append(req.clone())
            .await
            .expect("append")
            .expect("accepted");
        s.accept(req);
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_drop_and_reopen() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("eventlog");
    let log = Arc::new(SledLog::open(&path).expect("open"));
    let tasks = (1..=50u128).map(|n| {
        let log = Arc::clone(&log);
        async move { write_workflow(&log, n).await }
    });
    let streams = futures::future::join_all(tasks).await;
    drop(log);

    let log = SledLog::open(&path).expect("reopen");
    for s in &streams {
        assert_eq!(log.read(s.id).expect("read"), s.events);
        assert_eq!(log.summary(s.id).expect("summary"), Some(s.summary()));
    }
    assert_eq!(log.open().expect("open").len(), 50);
    assert_eq!(
        log.due_timers(at(i64::from(i32::MAX)), 100)
            .expect("due")
            .len(),
        50
    );
    assert_eq!(
        log.find_idempotency(&tenant_id("globex"), "key-7")
            .expect("find"),
        Some(wid(7))
    );
    assert!(log.size_bytes() > 0);
}

/// Open sled directly, waiting for a lock the log just closed has not
/// released yet (as `SledLog::open` does).
fn open_sled(path: &Path) -> sled::Db {
    let deadline = std::time::Instant::now() + Duration::from_millis(2_000);
    loop {
        match sled::open(path) {
            Err(e) if e.to_string().contains("could not acquire lock") => {
                assert!(std::time::Instant::now() < deadline, "{e}");
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other.expect("open sled directly"),
        }
    }
}

/// Write raw bytes into the log's tree while it is closed.
fn poke(path: &Path, key: &[u8], value: &[u8]) {
    let db = open_sled(path);
    db.open_tree(layout::TREE)
        .expect("tree")
        .insert(key, value)
        .expect("insert");
    db.flush().expect("flush");
}

/// The chunk an append of `s.events[first - 1..last]` stored: the summary
/// after them, then those events, with `event` in place of the last.
fn chunk_with_last(s: &Stream, first: usize, last: usize, event: &[u8]) -> Vec<u8> {
    let summary = WorkflowState::fold(&s.events[..last])
        .expect("submitted")
        .summary();
    let mut events: Vec<Vec<u8>> = s.events[first - 1..last - 1]
        .iter()
        .map(Event::encode)
        .collect();
    events.push(event.to_vec());
    layout::encode_chunk(&layout::encode_summary(&summary), &events)
}

/// Why opening the log at `path` failed; panics if it opened.
fn open_error(path: &Path) -> LogError {
    match SledLog::open(path) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e,
    }
}

#[tokio::test]
async fn unknown_event_tag_in_storage_is_corruption() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("eventlog");
    let log = SledLog::open(&path).expect("open");
    let s = write_workflow(&log, 1).await;
    drop(log);

    // Event 2 of workflow 1 (appended alone), rewritten with a tag no
    // version of ferry knows.
    poke(
        &path,
        &layout::events_key(&s.id, 2),
        &chunk_with_last(
            &s,
            2,
            2,
            br#"{"t":"exploded.v9","at":"2026-01-01T00:00:00Z"}"#,
        ),
    );
    let log = SledLog::open(&path).expect("reopen");
    match log.read(s.id) {
        Err(LogError::Corruption(msg)) => assert!(msg.contains("event 2"), "{msg}"),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[tokio::test]
async fn a_gap_in_a_stream_is_corruption() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("eventlog");
    let log = SledLog::open(&path).expect("open");
    let s = write_workflow(&log, 1).await;
    drop(log);

    // A chunk at event 9 of a stream of 3, consistent in itself (its
    // summary claims version 9): only the gap before it is wrong.
    let mut completed = s.clone();
    completed.events.push(Event::Completed { at: at(5) });
    let mut summary = WorkflowState::fold(&completed.events)
        .expect("submitted")
        .summary();
    summary.version = 9;
    let events = [Event::Completed { at: at(5) }.encode()];
    let chunk = layout::encode_chunk(&layout::encode_summary(&summary), &events);
    poke(&path, &layout::events_key(&s.id, 9), &chunk);
    let log = SledLog::open(&path).expect("reopen");
    assert!(matches!(log.read(s.id), Err(LogError::Corruption(_))));
}

#[tokio::test]
async fn undecodable_summary_is_corruption() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("eventlog");
    let log = SledLog::open(&path).expect("open");
    let s = write_workflow(&log, 1).await;
    drop(log);

    // The newest chunk (event 3), its events intact, its summary not.
    let events = [s.events[2].encode()];
    poke(
        &path,
        &layout::events_key(&s.id, 3),
        &layout::encode_chunk(b"{\"id\": 42", &events),
    );
    let log = SledLog::open(&path).expect("reopen");
    assert!(matches!(log.summary(s.id), Err(LogError::Corruption(_))));
    assert!(matches!(
        log.list(&ListQuery::default()),
        Err(LogError::Corruption(_))
    ));
    // Appending on top of a corrupt summary must not guess.
    let req = s.request(vec![Event::Completed { at: at(2_000) }]);
    assert!(matches!(
        log.append(req).await,
        Err(LogError::Corruption(_))
    ));
}

#[tokio::test]
async fn a_truncated_event_is_corruption() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("eventlog");
    let log = SledLog::open(&path).expect("open");
    let s = write_workflow(&log, 1).await;
    drop(log);

    let mut chunk = chunk_with_last(&s, 3, 3, &s.events[2].encode());
    chunk.pop();
    poke(&path, &layout::events_key(&s.id, 3), &chunk);
    let log = SledLog::open(&path).expect("reopen");
    match log.read(s.id) {
        Err(LogError::Corruption(msg)) => assert!(msg.contains("event 3"), "{msg}"),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn a_folder_in_the_first_multi_tree_layout_is_refused() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("eventlog");
    {
        let db = open_sled(&path);
        db.open_tree("workflows")
            .expect("tree")
            .insert(wid(1).as_bytes(), br#"{"id":"x"}"#.as_slice())
            .expect("insert");
        db.flush().expect("flush");
    }
    match open_error(&path) {
        LogError::Corruption(msg) => assert!(msg.contains("multi-tree layout"), "{msg}"),
        other => panic!("expected corruption, got {other:?}"),
    }
    // Refusing changed nothing: it is refused again.
    assert!(matches!(open_error(&path), LogError::Corruption(_)));
}

#[test]
fn a_folder_in_an_unknown_format_is_refused() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("eventlog");
    drop(SledLog::open(&path).expect("open"));
    poke(&path, layout::FORMAT_KEY, b"ferry-eventlog/99");
    match open_error(&path) {
        LogError::Corruption(msg) => assert!(msg.contains("ferry-eventlog/99"), "{msg}"),
        other => panic!("expected corruption, got {other:?}"),
    }
}

/// Appends queued together are applied as one batch, checked against what
/// earlier requests of the same batch wrote: two appends to one workflow and
/// two submits with one idempotency key behave exactly as if sent one after
/// the other. `join!` polls the four appends once each, in order, so all of
/// them are queued before their answers are awaited; most rounds therefore
/// land in one batch (which is all that can be arranged from outside; the
/// applier's own unit test checks a batch directly), and every round must
/// give the sequential outcome either way.
#[tokio::test]
async fn appends_in_one_batch_behave_as_sequential_appends() {
    const ROUNDS: u128 = 20;
    let dir = tempfile::tempdir().expect("temporary directory");
    let log = SledLog::open(dir.path().join("eventlog")).expect("open");
    for round in 0..ROUNDS {
        let key = format!("nightly-{round}");
        let (mut a, submit_a) = Stream::submit(10 * round + 1, "acme", "export", Some(&key), 0);
        let (_, submit_b) = Stream::submit(10 * round + 2, "acme", "export", Some(&key), 1);
        a.accept(submit_a.clone());
        let start = a.request(vec![Event::Started { at: at(2) }]);
        // The same request again is a stale writer once `start` is in.
        let stale = start.clone();
        let (ra, rb, rs, rstale) = tokio::join!(
            log.append(submit_a),
            log.append(submit_b),
            log.append(start.clone()),
            log.append(stale),
        );
        assert_eq!(ra.expect("append"), Ok(1), "round {round}");
        assert_eq!(
            rb.expect("append"),
            Err(AppendRejection::DuplicateIdempotencyKey { existing: a.id }),
            "round {round}"
        );
        assert_eq!(rs.expect("append"), Ok(2), "round {round}");
        assert_eq!(
            rstale.expect("append"),
            Err(AppendRejection::VersionConflict {
                expected: 1,
                current: 2
            }),
            "round {round}"
        );
        a.accept(start);
        assert_eq!(log.read(a.id).expect("read"), a.events);
        assert_eq!(log.summary(a.id).expect("summary"), Some(a.summary()));
        assert_eq!(log.read(wid(10 * round + 2)).expect("read"), vec![]);
        assert_eq!(log.summary(wid(10 * round + 2)).expect("summary"), None);
        assert_eq!(
            log.find_idempotency(&tenant_id("acme"), &key)
                .expect("find"),
            Some(a.id)
        );
    }
}

/// Value of a sample in the registry's text exposition.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_group_commit_sharing_syncs() {
    const APPENDS: u128 = 200;
    let dir = tempfile::tempdir().expect("temporary directory");
    let log = Arc::new(SledLog::open(dir.path().join("eventlog")).expect("open"));
    let registry = prometheus::Registry::new();
    log.register_metrics(&registry).expect("register");

    let tasks = (1..=APPENDS).map(|n| {
        let log = Arc::clone(&log);
        async move {
            let (_, req) = Stream::submit(n, "acme", "export", None, 0);
            log.append(req).await.expect("append").expect("accepted")
        }
    });
    futures::future::join_all(tasks).await;
    // A duplicate submit is answered without a sync of its own.
    let (_, again) = Stream::submit(1, "acme", "export", None, 0);
    assert!(log.append(again).await.expect("append").is_err());

    let mut buf = vec![];
    prometheus::TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .expect("encode");
    let text = String::from_utf8(buf).expect("utf-8");
    let appended = APPENDS as f64;
    assert_eq!(
        sample(&text, "ferry_eventlog_appends_total{outcome=\"ok\"}"),
        appended
    );
    assert_eq!(
        sample(&text, "ferry_eventlog_appends_total{outcome=\"conflict\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "ferry_eventlog_commit_seconds_count"),
        appended + 1.0
    );
    assert_eq!(
        sample(&text, "ferry_eventlog_batch_size_sum"),
        appended + 1.0
    );
    let batches = sample(&text, "ferry_eventlog_batch_size_count");
    assert!(
        batches < appended / 4.0,
        "{APPENDS} concurrent appends took {batches} batches; group commit is not grouping"
    );
    assert!(sample(&text, "ferry_eventlog_size_bytes") > 0.0);
}

// ---------------------------------------------------------------------------
// Crash test, in sled's manner: the test binary re-runs itself as a writer,
// which prints every acknowledged append; the parent kills it with SIGKILL
// at a random moment, reopens the log and checks nothing acknowledged is
// missing.
// ---------------------------------------------------------------------------

const CRASH_CHILD_ENV: &str = "FERRY_EVENTLOG_CRASH_CHILD_DIR";
const CRASH_ROUND_ENV: &str = "FERRY_EVENTLOG_CRASH_ROUND";
const CRASH_ROUNDS: u32 = 3;
/// How long the child may take to acknowledge its first append.
const CHILD_START_TIMEOUT: Duration = Duration::from_secs(60);

/// The child's side: append forever, reporting each acknowledgement.
async fn crash_child(path: PathBuf, round: u128) {
    let log = Arc::new(SledLog::open(&path).expect("child opens log"));
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let writers = (0..8u128).map(|w| {
        let log = Arc::clone(&log);
        let out = Arc::clone(&out);
        tokio::spawn(async move {
            for i in 0.. {
                // Distinct ids per round and writer, so no append collides.
                let n = 1_000_000 * (round + 1) + w * 100_000 + i;
                let s = write_workflow(&log, n).await;
                let mut out = out.lock().expect("stdout lock");
                writeln!(out, "ack {} {}", n, s.events.len()).expect("stdout");
                out.flush().expect("stdout");
            }
        })
    });
    futures::future::join_all(writers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_acknowledged() {
    if let Ok(dir) = std::env::var(CRASH_CHILD_ENV) {
        let round = std::env::var(CRASH_ROUND_ENV)
            .ok()
            .and_then(|r| r.parse().ok())
            .expect("crash round");
        crash_child(PathBuf::from(dir), round).await;
        return;
    }
    let seed: u64 = std::env::var("FERRY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test seed {seed} (set FERRY_CRASH_SEED to repeat)");
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("eventlog");
    let mut acked: Vec<(u128, usize)> = vec![];
    for round in 0..CRASH_ROUNDS {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "sigkill_loses_nothing_acknowledged",
                "--nocapture",
            ])
            .env(CRASH_CHILD_ENV, &path)
            .env(CRASH_ROUND_ENV, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let (acks, acks_rx) = std::sync::mpsc::channel::<(u128, usize)>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let parsed = line.strip_prefix("ack ").and_then(|rest| {
                    let (n, len) = rest.split_once(' ')?;
                    Some((n.parse().ok()?, len.parse().ok()?))
                });
                if let Some(ack) = parsed {
                    if acks.send(ack).is_err() {
                        return;
                    }
                }
            }
        });
        // Kill at a random moment after the child is really writing, however
        // slowly this machine starts it.
        let first = acks_rx
            .recv_timeout(CHILD_START_TIMEOUT)
            .unwrap_or_else(|_| {
                panic!("round {round}: the child acknowledged nothing (seed {seed})")
            });
        let wait_ms = rand::Rng::gen_range(&mut rng, 0..800);
        std::thread::sleep(Duration::from_millis(wait_ms));
        child.kill().expect("SIGKILL the child");
        child.wait().expect("reap the child");
        reader.join().expect("reader thread");
        acked.push(first);
        acked.extend(acks_rx.try_iter());
        eprintln!(
            "round {round}: killed {wait_ms} ms after the first ack, {} workflows acknowledged so far",
            acked.len()
        );
        let log = SledLog::open(&path).expect("reopen after SIGKILL");
        // Every index row names a workflow with a summary (or these fail).
        let open: std::collections::HashSet<_> = log
            .open()
            .expect("open index")
            .into_iter()
            .map(|s| s.id)
            .collect();
        for (n, len) in &acked {
            let events = log.read(wid(*n)).expect("read");
            assert!(
                events.len() >= *len,
                "round {round}: workflow {n} had {len} events acknowledged, {} survived (seed {seed})",
                events.len()
            );
            // What survived is whole: the summary and the indexes describe
            // exactly the events that did.
            let summary = log.summary(wid(*n)).expect("summary");
            assert_eq!(
                summary.map(|s| s.version),
                Some(events.len() as u64),
                "round {round}: workflow {n} (seed {seed})"
            );
            let tenant = tenant_id(["acme", "globex"][(*n % 2) as usize]);
            assert_eq!(
                log.find_idempotency(&tenant, &format!("key-{n}"))
                    .expect("find"),
                Some(wid(*n)),
                "round {round}: workflow {n} (seed {seed})"
            );
            assert!(
                open.contains(&wid(*n)),
                "round {round}: workflow {n} (seed {seed})"
            );
        }
    }
}
