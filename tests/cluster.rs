//! Three `ferry serve` nodes on one PostgreSQL (event log, leases, tenants
//! in schemas) and one S3 server, under chaos: exports and rehydrations of
//! six tenants are submitted, watched and confirmed through random nodes
//! while nodes are SIGKILLed (and restarted) and SIGSTOPped long enough to
//! lose their leases (then SIGCONTed: a zombie that wakes up after its
//! tenants were taken over).
//!
//! Checked with oracles ferry does not compute:
//! - every workflow completes; the events seen of a workflow are always a
//!   prefix of the events seen later, whichever node answers (no
//!   acknowledged event is lost);
//! - every bundle verifies (`ferry verify`), and after each rehydration the
//!   tenant's tables hash (PostgreSQL's `md5` of their rows) as they did
//!   when the export was taken;
//! - the step journal (the node and lease epoch the log records beside
//!   every event): epochs only grow along a workflow, and every step outcome
//!   was recorded by the node, under the epoch, that recorded the start of
//!   that execution — no step of a workflow ran on two nodes at once;
//! - every durable timer that came due fired exactly once.
//!
//! The cluster dashboard's expressions and the cluster alert rules' return
//! data from a real Prometheus scraping the three nodes (every series carries
//! `node`); SIGTERM drains a node: it hands its leases over and leaves.
//!
//! Takeover times (from a pause to the moment every busy tenant of the
//! paused node has a live owner elsewhere) are measured and printed.
//! `FERRY_CLUSTER_SEED` replays a run.

mod support;

use rand::{Rng, SeedableRng};
use reqwest::blocking::Client;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use support::prom::{self, alert_expressions, dashboard_expressions, Prometheus};
use support::service::Service;
use support::*;

const NODES: usize = 3;
const LEASE_SECS: f64 = 2.0;
const TENANTS: [&str; 6] = ["c1", "c2", "c3", "c4", "c5", "c6"];
const WAIT: Duration = Duration::from_secs(300);

/// The ports of the nodes that take requests now (`None`: down or paused).
type Ports = Arc<RwLock<Vec<Option<u16>>>>;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A worker's view of the cluster: any node that is up answers.
struct Api {
    ports: Ports,
    client: Client,
    token: String,
    rng: Mutex<rand::rngs::StdRng>,
}

enum Outcome {
    Answer(u16, Value),
    /// The request may or may not have been handled (the node died).
    Unknown,
}

impl Api {
    fn port(&self) -> u16 {
        loop {
            let up: Vec<u16> = self
                .ports
                .read()
                .unwrap()
                .iter()
                .flatten()
                .copied()
                .collect();
            if !up.is_empty() {
                let i = self.rng.lock().unwrap().gen_range(0..up.len());
                return up[i];
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn send(&self, method: &str, path: &str, body: Option<&Value>, key: Option<&str>) -> Outcome {
        let port = self.port();
        let url = format!("http://127.0.0.1:{port}{path}");
        let mut r = match method {
            "GET" => self.client.get(&url),
            _ => self.client.post(&url).json(body.unwrap_or(&json!({}))),
        }
        .bearer_auth(&self.token);
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        match r.send() {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let v: Value = resp.json().unwrap_or(Value::Null);
                if status >= 500 {
                    Outcome::Unknown
                } else {
                    Outcome::Answer(status, v)
                }
            }
            Err(e) if e.is_connect() => Outcome::Answer(0, Value::Null),
            Err(_) => Outcome::Unknown,
        }
    }

    /// A read, from whichever node is up, until one answers 200.
    fn get(&self, path: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Outcome::Answer(200, v) = self.send("GET", path, None, None) {
                return v;
            }
            assert!(Instant::now() < deadline, "GET {path} never answered");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn bytes(&self, path: &str) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        loop {
            let url = format!("http://127.0.0.1:{}{path}", self.port());
            if let Ok(r) = self.client.get(&url).bearer_auth(&self.token).send() {
                if r.status().is_success() {
                    if let Ok(b) = r.bytes() {
                        return b.to_vec();
                    }
                }
            }
            assert!(Instant::now() < deadline, "GET {path} never answered");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Per tenant: what its events looked like last time (never lost later).
#[derive(Default)]
struct Seen(HashMap<String, Vec<Value>>);

impl Seen {
    fn check(&mut self, api: &Api, id: &str) -> Vec<Value> {
        let events = api.get(&format!("/api/v1/workflows/{id}/events"))["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(before) = self.0.get(id) {
            assert!(
                events.len() >= before.len() && events[..before.len()] == before[..],
                "acknowledged events of {id} changed: before {before:?}\nafter {events:?}"
            );
        }
        self.0.insert(id.to_owned(), events.clone());
        events
    }
}

/// Poll a workflow until `done` says so; fails on a final status it did
/// not expect. Confirms a rehydration waiting for it.
fn drive(api: &Api, seen: &mut Seen, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        seen.check(api, id);
        let w = api.get(&format!("/api/v1/workflows/{id}"));
        let status = w["status"].as_str().unwrap_or("").to_owned();
        if status == want {
            return w;
        }
        match status.as_str() {
            "awaiting_confirmation" if want == "completed" => {
                let _ = api.send(
                    "POST",
                    &format!("/api/v1/tenant/rehydrate/{id}/confirm"),
                    Some(&json!({"confirm": "DELETE"})),
                    None,
                );
            }
            "failed" | "cancelled" | "rolled_back" => panic!("{id} ended {status}: {w}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "{id} stuck: {w}");
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// PostgreSQL's own hash of every table of a tenant's schema: table →
/// `rows|md5` of its rows as text, in order.
fn pg_hash(url: &str, tenant: &str) -> BTreeMap<String, String> {
    let script = format!(
        "SELECT format('SELECT %L, count(*), md5(coalesce(string_agg(t::text, E''\\n'' ORDER BY t::text), '''')) FROM %I.%I t', \
         c.relname, n.nspname, c.relname) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'tenant_{tenant}' AND c.relkind IN ('r', 'p') ORDER BY c.relname \\gexec\n"
    );
    let mut child = Command::new("psql")
        .arg(url)
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-F", "|"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("psql");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let map: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(t, rest)| (t.to_owned(), rest.to_owned()))
        .collect();
    assert!(!map.is_empty(), "tenant {tenant} has no tables");
    map
}

/// One tenant's part: an export, its bundle verified, the tenant changed,
/// a rehydration from that export confirmed, the tenant equal to the
/// export again; a native export alongside the first.
fn tenant_run(api: &Api, node0: &Path, url: &str, tenant: &str, resample: &dyn Fn(u64)) {
    let mut seen = Seen::default();
    let export = |profile: &str, key: &str| -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            match api.send(
                "POST",
                "/api/v1/tenant/export",
                Some(&json!({"profile": profile})),
                Some(key),
            ) {
                Outcome::Answer(202, v) | Outcome::Answer(200, v) => {
                    return v["job"]["id"].as_str().unwrap().to_owned()
                }
                Outcome::Answer(0, _) | Outcome::Unknown => {}
                Outcome::Answer(s, v) => panic!("export of {tenant} refused: {s} {v}"),
            }
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let before = pg_hash(url, tenant);
    let lite = export("lite", &format!("{tenant}-lite"));
    let native = export("native", &format!("{tenant}-native"));
    drive(api, &mut seen, &lite, "completed");
    let bundle = api.bytes(&format!("/api/v1/tenant/export/{lite}/download"));
    let file = node0.join(format!("{tenant}-{lite}.zip"));
    std::fs::write(&file, &bundle).unwrap();
    let verified = Command::new(BIN)
        .arg("verify")
        .arg(&file)
        .env("FERRY_DATA_DIR", node0)
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "bundle of {tenant} does not verify: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
    // Change the tenant (nothing of it running: a resample's TRUNCATEs and
    // a dump's locks would deadlock), then rehydrate it from the export.
    drive(api, &mut seen, &native, "completed");
    resample(7);
    assert_ne!(
        pg_hash(url, tenant),
        before,
        "the resample changed {tenant}"
    );
    let known: Vec<String> = vec![lite.clone(), native.clone()];
    let rehydration = loop {
        match api.send(
            "POST",
            "/api/v1/tenant/rehydrate",
            Some(&json!({"exportId": lite})),
            None,
        ) {
            Outcome::Answer(202, v) => break v["job"]["id"].as_str().unwrap().to_owned(),
            Outcome::Answer(0, _) => {}
            Outcome::Unknown => {
                // It may have been recorded: the newest rehydration is it.
                let page = api.get("/api/v1/workflows?kind=rehydrate&order=desc&limit=1");
                if let Some(id) = page["workflows"][0]["id"].as_str() {
                    if !known.iter().any(|k| k == id) {
                        break id.to_owned();
                    }
                }
            }
            Outcome::Answer(s, v) => panic!("rehydration of {tenant} refused: {s} {v}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drive(api, &mut seen, &rehydration, "completed");
    assert_eq!(
        pg_hash(url, tenant),
        before,
        "{tenant} equals its export after the rehydration"
    );
}

#[derive(Debug)]
struct JournalRow {
    workflow: String,
    seq: i64,
    node: Option<String>,
    epoch: Option<i64>,
    tag: String,
    step: Option<String>,
    timer: Option<String>,
}

fn journal(url: &str) -> Vec<JournalRow> {
    let out = psql(
        url,
        "SELECT workflow_id, seq, coalesce(node_id, ''), coalesce(epoch::text, ''), \
         convert_from(body, 'UTF8')::json->>'t', coalesce(convert_from(body, 'UTF8')::json->>'step', ''), \
         coalesce(convert_from(body, 'UTF8')::json->>'name', '') \
         FROM ferry_log_events ORDER BY workflow_id, seq",
    );
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            JournalRow {
                workflow: f[0].to_owned(),
                seq: f[1].parse().unwrap(),
                node: opt(f[2]),
                epoch: opt(f[3]).map(|e| e.parse().unwrap()),
                tag: f[4].to_owned(),
                step: opt(f[5]),
                timer: opt(f[6]),
            }
        })
        .collect()
}

/// The step journal's proof (see the module doc).
fn check_journal(rows: &[JournalRow]) -> (usize, usize) {
    let mut by_wf: BTreeMap<&str, Vec<&JournalRow>> = BTreeMap::new();
    for r in rows {
        by_wf.entry(&r.workflow).or_default().push(r);
    }
    let mut handovers = 0;
    let mut fired = 0;
    for (wf, events) in by_wf {
        let mut last_epoch: Option<(i64, &str)> = None;
        let mut started: HashMap<&str, (&str, i64)> = HashMap::new();
        let mut timers: HashMap<&str, usize> = HashMap::new();
        for e in events {
            if let (Some(epoch), Some(node)) = (e.epoch, e.node.as_deref()) {
                if let Some((prev, prev_node)) = last_epoch {
                    assert!(
                        epoch >= prev,
                        "{wf}: epoch went back from {prev} to {epoch} at seq {}",
                        e.seq
                    );
                    if epoch > prev && node != prev_node {
                        handovers += 1;
                    }
                }
                last_epoch = Some((epoch, node));
                let step = e.step.as_deref().unwrap_or("");
                match e.tag.as_str() {
                    "step_started.v1" => {
                        started.insert(step, (node, epoch));
                    }
                    // A step that runs no code (a signal's, a skipped one)
                    // succeeds without having started.
                    "step_succeeded.v1" | "step_failed.v1" | "step_compensated.v1"
                        if started.contains_key(step) =>
                    {
                        let got = started.remove(step);
                        assert_eq!(
                            got,
                            Some((node, epoch)),
                            "{wf}: step {step}'s outcome (seq {}) was recorded by {node} epoch {epoch}, \
                             not by the node and epoch that started that execution",
                            e.seq
                        );
                    }
                    _ => {}
                }
            }
            if e.tag == "timer_fired.v1" {
                let n = timers.entry(e.timer.as_deref().unwrap_or("")).or_default();
                *n += 1;
                fired += 1;
                assert_eq!(*n, 1, "{wf}: timer {:?} fired twice", e.timer);
            }
        }
    }
    (handovers, fired)
}

#[test]
fn three_nodes_under_kills_and_pauses_finish_every_workflow_exactly_once() {
    let seed: u64 = env_or("FERRY_CLUSTER_SEED", rand::random());
    eprintln!("cluster test seed {seed} (FERRY_CLUSTER_SEED={seed} to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let s3 = Service::start("s3");
    let common: Vec<(String, String)> = {
        let mut v: Vec<(String, String)> =
            s3.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (k, val) in [
            ("FERRY_EVENT_LOG", "postgres"),
            ("FERRY_CLUSTER", "on"),
            ("FERRY_LEASE_SECS", "2"),
            ("FERRY_BUNDLE_TTL_SECS", "90"),
            ("FERRY_BACKUP_RETENTION_SECS", "12"),
            ("FERRY_CONFIRM_DEADLINE_SECS", "120"),
            ("FERRY_REHYDRATIONS_PER_DAY", "1000"),
            ("FERRY_EXPORTS_PER_DAY", "1000"),
        ] {
            v.push((k.into(), val.into()));
        }
        v
    };
    let mut first = Ferry::on_backend("pg-schema");
    for (k, v) in &common {
        first = first.env(k, v);
    }
    let shared = first.shared_env();
    let url = first.database_url().unwrap().to_owned();
    let mut nodes = vec![first.env("FERRY_NODE_ID", "node-1")];
    for i in 2..=NODES {
        let mut n = Ferry::on_backend("sqlite");
        for (k, v) in &shared {
            n = n.env(k, v);
        }
        nodes.push(n.env("FERRY_NODE_ID", &format!("node-{i}")));
    }
    for t in TENANTS {
        nodes[0].sample(t, 2);
    }
    // Every node signs and checks with the same keys (an operator copies
    // them, as for any secret).
    let token = nodes[0].token("c1", "platform_admin");
    let keys = nodes[0].data_dir().join("keys");
    for n in &nodes[1..] {
        let dst = n.data_dir().join("keys");
        std::fs::create_dir_all(&dst).unwrap();
        for f in std::fs::read_dir(&keys).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), dst.join(f.file_name())).unwrap();
        }
    }
    for n in &mut nodes {
        n.start();
    }
    let ports: Ports = Arc::new(RwLock::new(nodes.iter().map(|n| Some(n.port)).collect()));
    let node_ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    let prometheus = Prometheus::scraping(&node_ports);
    let prometheus_started = Instant::now();
    let cluster = nodes[0].get_json("/api/v1/cluster", &token);
    assert_eq!(cluster["clustered"], true, "{cluster}");

    let node0_dir = nodes[0].data_dir().to_owned();
    let sample_env: Vec<(String, String)> = nodes[0].shared_env();
    let workers: Vec<_> = TENANTS
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let tenant = (*t).to_owned();
            let tok = nodes[0].token(t, "tenant_admin");
            let api = Api {
                ports: ports.clone(),
                client: Client::builder()
                    .timeout(Duration::from_secs(20))
                    .build()
                    .unwrap(),
                token: tok,
                rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed ^ i as u64)),
            };
            let url = url.clone();
            let dir = node0_dir.clone();
            let env = sample_env.clone();
            std::thread::spawn(move || {
                let resample = |s: u64| {
                    // One at a time: `sample --overwrite` rewrites shared
                    // catalog entries and deadlocks with a twin.
                    static ONE: Mutex<()> = Mutex::new(());
                    let _one = ONE.lock().unwrap();
                    let mut c = Command::new(BIN);
                    for var in ["MINIO_ENDPOINT", "SMTP_URL"] {
                        c.env_remove(var);
                    }
                    c.env("FERRY_DATA_DIR", &dir).env("FERRY_LOG", "warn");
                    for (k, v) in &env {
                        c.env(k, v);
                    }
                    let out = c
                        .args([
                            "sample",
                            "--tenant",
                            &tenant,
                            "--scale",
                            "2",
                            "--seed",
                            &s.to_string(),
                            "--overwrite",
                        ])
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "resample: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                };
                tenant_run(&api, &dir, &url, &tenant, &resample);
            })
        })
        .collect();

    // Chaos until every worker is done: SIGKILL (and restart) a random
    // node, or SIGSTOP one that drives busy tenants, in turns; never more
    // than one down at a time.
    let mut kills = 0;
    let mut pauses = 0;
    let mut takeovers: Vec<f64> = vec![];
    let mut pause_next = rng.gen_bool(0.5);
    while !workers.iter().all(|w| w.is_finished()) {
        std::thread::sleep(Duration::from_millis(rng.gen_range(800..2500)));
        if workers.iter().all(|w| w.is_finished()) {
            break;
        }
        pause_next = !pause_next;
        let owners = psql(
            &url,
            "SELECT DISTINCT l.node_id FROM ferry_tenant_leases l JOIN ferry_log_workflows w              ON w.tenant_id = l.tenant_id AND w.is_open WHERE l.node_id IS NOT NULL ORDER BY 1",
        );
        let owners: Vec<usize> = owners
            .lines()
            .filter_map(|n| n.strip_prefix("node-")?.parse::<usize>().ok())
            .map(|n| n - 1)
            .collect();
        let victim = if pause_next && !owners.is_empty() {
            owners[rng.gen_range(0..owners.len())]
        } else {
            rng.gen_range(0..NODES)
        };
        let name = format!("node-{}", victim + 1);
        ports.write().unwrap()[victim] = None;
        if !pause_next {
            nodes[victim].kill();
            kills += 1;
            // Now and then the node comes back without its disk's work
            // files (a replaced machine): what its steps left is gone.
            if rng.gen_bool(0.5) {
                for dir in ["work", "rehydrate"] {
                    let _ = std::fs::remove_dir_all(nodes[victim].data_dir().join(dir));
                }
            }
            std::thread::sleep(Duration::from_millis(rng.gen_range(200..3000)));
            nodes[victim].start();
        } else {
            // Paused until its busy tenants are driven elsewhere: a zombie
            // that wakes up after losing its leases.
            let pid = nodes[victim].pid().unwrap().to_string();
            let busy = psql(
                &url,
                &format!(
                    "SELECT l.tenant_id FROM ferry_tenant_leases l WHERE l.node_id = '{name}' \
                     AND EXISTS (SELECT 1 FROM ferry_log_workflows w WHERE w.tenant_id = l.tenant_id AND w.is_open)"
                ),
            );
            let paused_at = Instant::now();
            run_ok(Command::new("kill").args(["-STOP", &pid]));
            pauses += 1;
            if !busy.trim().is_empty() {
                let deadline = paused_at + Duration::from_secs(30);
                loop {
                    let still = psql(
                        &url,
                        &format!(
                            "SELECT count(*) FROM ferry_tenant_leases WHERE node_id = '{name}' \
                             AND tenant_id IN ({})",
                            busy.lines()
                                .map(|t| format!("'{t}'"))
                                .collect::<Vec<_>>()
                                .join(",")
                        ),
                    );
                    if still.trim() == "0" {
                        takeovers.push(paused_at.elapsed().as_secs_f64());
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{name}'s tenants were not taken over within 30 s"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
            } else {
                std::thread::sleep(Duration::from_secs_f64(LEASE_SECS * 1.5));
            }
            run_ok(Command::new("kill").args(["-CONT", &pid]));
        }
        ports.write().unwrap()[victim] = Some(nodes[victim].port);
    }
    for w in workers {
        if let Err(e) = w.join() {
            for n in &nodes {
                eprintln!("---- {} log:\n{}", n.port, n.server_log());
            }
            std::panic::resume_unwind(e);
        }
    }
    // Every timer due within the backups' retention from now fires (the
    // backups' expiry, and whatever came due before).
    let horizon = psql(
        &url,
        "SELECT ((extract(epoch FROM clock_timestamp()) + 13) * 1e9)::bigint",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let due = psql(
            &url,
            &format!(
                "SELECT count(*) FROM ferry_log_timers WHERE due_ns < {}",
                horizon.trim()
            ),
        );
        if due.trim() == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "seed {seed}: {due} timers due did not fire"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let rows = journal(&url);
    let (handovers, fired) = check_journal(&rows);
    let redone = rows.iter().filter(|r| r.tag == "steps_redone.v1").count();
    let open = psql(
        &url,
        "SELECT count(*) FROM ferry_log_workflows WHERE is_open",
    );
    assert_eq!(open.trim(), "0", "every workflow finished");
    takeovers.sort_by(|a, b| a.partial_cmp(b).unwrap());
    eprintln!(
        "seed {seed}: {kills} kills, {pauses} pauses; {handovers} handovers of a workflow between nodes \
         in the journal; {redone} redos of steps whose files were on another node; {fired} timers fired once each; takeover seconds after a pause (lease {LEASE_SECS} s): {takeovers:?}"
    );
    assert!(kills + pauses >= 4, "seed {seed}: too little chaos");
    assert!(
        handovers > 0,
        "seed {seed}: no workflow moved between nodes: the chaos proved nothing"
    );
    let cluster = nodes[0].get_json("/api/v1/cluster", &token);
    assert_eq!(
        cluster["nodes"].as_array().unwrap().len(),
        NODES,
        "{cluster}"
    );
    // The cluster dashboard and alert rules, against a Prometheus that
    // scraped the three nodes through the chaos.
    let window = format!("{}s", prometheus_started.elapsed().as_secs() + 5);
    let dashboards = dashboard_expressions(|file| file == prom::CLUSTER_DASHBOARD);
    let alerts = alert_expressions(prom::CLUSTER_ALERTS);
    assert!(!dashboards.is_empty() && !alerts.is_empty());
    let failures = prometheus.check(&dashboards, &alerts, |e| {
        e.replace("$__rate_interval", &window)
            .replace("$__range", &window)
    });
    assert!(
        failures.is_empty(),
        "cluster dashboard and alerts:\n{}",
        failures.join("\n")
    );
    // A node restarted since its takeovers starts its counter again: the
    // most each series reached.
    let takeovers_seen = prometheus
        .value(&format!(
            "sum(max_over_time(ferry_cluster_takeovers_total[{window}]))"
        ))
        .unwrap_or(0.0);
    assert!(
        takeovers_seen > 0.0,
        "Prometheus saw no takeover: {takeovers_seen}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let rules = loop {
        let rules = prometheus.rules("ferry-cluster");
        if rules.iter().all(|r| r["health"] != "unknown") {
            break rules;
        }
        assert!(Instant::now() < deadline, "cluster rules never evaluated");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(rules.len(), alerts.len(), "{rules:?}");
    for r in &rules {
        assert_eq!(
            r["health"], "ok",
            "rule {} unhealthy: {}",
            r["name"], r["lastError"]
        );
    }
    // SIGTERM drains: the node hands its leases over and leaves.
    let pid = nodes[2].pid().unwrap().to_string();
    run_ok(Command::new("kill").args(["-TERM", &pid]));
    let deadline = Instant::now() + Duration::from_secs(30);
    while nodes[2].alive() {
        assert!(Instant::now() < deadline, "node-3 did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
    let left = psql(
        &url,
        "SELECT count(*) FROM ferry_cluster_nodes WHERE node_id = 'node-3'",
    );
    assert_eq!(left.trim(), "0", "a drained node leaves the cluster");
    let held = psql(
        &url,
        "SELECT count(*) FROM ferry_tenant_leases WHERE node_id = 'node-3'",
    );
    assert_eq!(held.trim(), "0", "a drained node holds no lease");
    drop(s3);
}
