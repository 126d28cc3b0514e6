//! The `EventLog` conformance suite, run against every implementation: the
//! sled log (in a temporary directory) and the in-memory reference log.
//! Below it, what only a disk log can be asked: that it survives being
//! closed and killed, that it reports corrupt storage as corruption, and that
//! group commit really shares syncs (read from its own metrics).

use ferry_engine::testkit::conformance::{at, tenant_id, wid, Stream};
use ferry_engine::testkit::LogFactory;
use ferry_engine::{Event, EventLog, ListQuery, LogError};
use ferry_storage::sled_log::{SledLog, TREE_EVENTS, TREE_WORKFLOWS};
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

/// Write raw bytes into one of the log's trees while it is closed.
fn poke(path: &Path, tree: &str, key: &[u8], value: &[u8]) {
    let db = sled::open(path).expect("open sled directly");
    db.open_tree(tree)
        .expect("tree")
        .insert(key, value)
        .expect("insert");
    db.flush().expect("flush");
}

#[tokio::test]
async fn unknown_event_tag_in_storage_is_corruption() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("eventlog");
    let log = SledLog::open(&path).expect("open");
    let s = write_workflow(&log, 1).await;
    drop(log);

    // Event 2 of workflow 1, rewritten with a tag no version of ferry knows.
    let mut key = s.id.as_bytes().to_vec();
    key.extend_from_slice(&2u64.to_be_bytes());
    poke(
        &path,
        TREE_EVENTS,
        &key,
        br#"{"t":"exploded.v9","at":"2026-01-01T00:00:00Z"}"#,
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

    let mut key = s.id.as_bytes().to_vec();
    key.extend_from_slice(&9u64.to_be_bytes());
    poke(
        &path,
        TREE_EVENTS,
        &key,
        &Event::Completed { at: at(5) }.encode(),
    );
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

    poke(&path, TREE_WORKFLOWS, s.id.as_bytes(), b"{\"id\": 42");
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
        for (n, len) in &acked {
            let events = log.read(wid(*n)).expect("read");
            assert!(
                events.len() >= *len,
                "round {round}: workflow {n} had {len} events acknowledged, {} survived (seed {seed})",
                events.len()
            );
        }
    }
}
