//! Engine benchmark on a real event log — sled (group commit + fsync), or
//! with `--log postgres` the PostgreSQL log (group commit, acknowledged
//! after COMMIT) in scratch databases on the server at `DATABASE_URL`:
//!
//! 1. throughput: N workflows of 3 no-op steps over T tenants (SPEC's
//!    workload: 20,000 over 100), every transition durable before it is
//!    acknowledged; reports workflows/s and durable step transitions/s;
//! 2. single-step commit latency: p50/p99 of one append at a time;
//! 3. recovery: time for a fresh engine to replay R open workflows.
//!
//! Usage: engine-bench [--log sled|postgres] [--workflows N] [--tenants T]
//!        [--latency-samples S] [--recovery R]
//! Prints a JSON report on stdout.

use async_trait::async_trait;
use ferry_engine::{
    AppendRequest, Clock, Engine, EngineConfig, Event, EventLog, StepContext, StepError, StepSpec,
    SubmitRequest, SystemClock, TenantId, UuidV7, Workflow, WorkflowId, WorkflowState,
};
use ferry_storage::pg_log::PgLog;
use ferry_storage::sled_log::SledLog;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct NoOp {
    steps: Vec<StepSpec>,
}

#[async_trait]
impl Workflow for NoOp {
    fn kind(&self) -> &'static str {
        "noop"
    }
    fn steps(&self) -> &[StepSpec] {
        &self.steps
    }
    async fn run(&self, _ctx: StepContext) -> Result<Value, StepError> {
        Ok(Value::Null)
    }
}

/// Where the measured logs live: sled folders under a scratch folder, or
/// one scratch PostgreSQL database per measurement (dropped at the end).
enum Logs {
    Sled(std::path::PathBuf),
    Postgres { server: String, made: Vec<String> },
}

impl Logs {
    /// The log called `name`; opening a name again reopens the same log.
    fn open(&mut self, name: &str) -> anyhow::Result<Arc<dyn EventLog>> {
        match self {
            Logs::Sled(dir) => Ok(Arc::new(SledLog::open(dir.join(name))?)),
            Logs::Postgres { server, made } => {
                let db = format!("ferry_bench_{}_{name}", std::process::id());
                if !made.contains(&db) {
                    psql(server, &format!("CREATE DATABASE {db}"))?;
                    made.push(db.clone());
                }
                let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
                Ok(Arc::new(PgLog::open(&format!("{base}/{db}"))?))
            }
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Logs::Sled(_) => "sled",
            Logs::Postgres { .. } => "postgres",
        }
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        if let Logs::Postgres { server, made } = self {
            for db in made.drain(..) {
                let _ = psql(
                    server,
                    &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                );
            }
        }
    }
}

fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let out = std::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Steps run on their own multi-threaded runtime, as in `ferry serve`.
fn engine_on(
    log: Arc<dyn EventLog>,
    steps: &tokio::runtime::Runtime,
    registry: &prometheus::Registry,
) -> Engine {
    let engine = Engine::new(
        log,
        Arc::new(SystemClock),
        Arc::new(UuidV7),
        EngineConfig {
            runtime: Some(steps.handle().clone()),
            ..EngineConfig::default()
        },
        registry,
    )
    .expect("metrics register");
    engine.register(Arc::new(NoOp {
        steps: vec![
            StepSpec::new("one"),
            StepSpec::new("two"),
            StepSpec::new("three"),
        ],
    }));
    engine
}

/// Workflows that reached a final status, from the engine's metrics.
fn finished(registry: &prometheus::Registry) -> u64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.get_name() == "ferry_workflows_finished_total")
        .flat_map(|f| {
            f.get_metric()
                .iter()
                .map(|m| m.get_counter().get_value() as u64)
        })
        .sum()
}

fn tenant(i: usize) -> TenantId {
    TenantId::parse(&format!("tenant-{i}")).expect("valid id")
}

async fn throughput(
    logs: &mut Logs,
    steps: &tokio::runtime::Runtime,
    workflows: usize,
    tenants: usize,
) -> anyhow::Result<Value> {
    let log = logs.open("throughput")?;
    let registry = prometheus::Registry::new();
    let engine = engine_on(log.clone(), steps, &registry);
    engine.start().await?;
    let t0 = Instant::now();
    let mut ids = Vec::with_capacity(workflows);
    // Submit from many tasks at once, as HTTP clients would.
    let mut handles = Vec::new();
    let per_task = workflows.div_ceil(64);
    for task in 0..64 {
        let engine = engine.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in task * per_task..((task + 1) * per_task).min(workflows) {
                let s = engine
                    .submit(SubmitRequest {
                        tenant: tenant(i % tenants),
                        kind: "noop".into(),
                        input: json!({}),
                        idempotency_key: None,
                        requested_by: None,
                    })
                    .await
                    .expect("submit");
                mine.push(s.state.id);
            }
            mine
        }));
    }
    for h in handles {
        ids.extend(h.await?);
    }
    let submitted = t0.elapsed();
    // Wait for all to complete, watching the engine's own counter (cheap;
    // polling the open index would cost the engine CPU it is measured on).
    while finished(&registry) < workflows as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = t0.elapsed();
    let mut transitions = 0usize;
    for id in &ids {
        let events = log.read(*id)?;
        assert!(matches!(events.last(), Some(Event::Completed { .. })));
        transitions += events
            .iter()
            .filter(|e| matches!(e, Event::StepSucceeded { .. }))
            .count();
    }
    let secs = elapsed.as_secs_f64();
    Ok(json!({
        "workflows": workflows,
        "tenants": tenants,
        "stepsPerWorkflow": 3,
        "submitSeconds": submitted.as_secs_f64(),
        "totalSeconds": secs,
        "workflowsPerSecond": workflows as f64 / secs,
        "stepTransitionsPerSecond": transitions as f64 / secs,
        "eventsPerWorkflow": log.read(ids[0])?.len(),
    }))
}

fn new_id() -> WorkflowId {
    WorkflowId(uuid::Uuid::now_v7())
}

fn submitted(i: usize) -> (WorkflowId, Event, WorkflowState) {
    let id = new_id();
    let ev = Event::Submitted {
        id,
        tenant: tenant(i % 100),
        kind: "noop".into(),
        input: json!({}),
        idempotency_key: None,
        requested_by: None,
        at: SystemClock.now(),
    };
    let state = WorkflowState::from_submitted(&ev);
    (id, ev, state)
}

/// One append at a time: the latency a lone writer sees (no batching help).
async fn latency(logs: &mut Logs, samples: usize) -> anyhow::Result<Value> {
    let log = logs.open("latency")?;
    let mut lat = Vec::with_capacity(samples);
    for i in 0..samples {
        let (id, ev, state) = submitted(i);
        let t = Instant::now();
        log.append(AppendRequest {
            id,
            expected_version: 0,
            events: vec![ev],
            summary: state.summary(),
            fence: None,
        })
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        lat.push(t.elapsed());
    }
    lat.sort();
    let pct =
        |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1000.0;
    Ok(json!({"samples": samples, "p50Ms": pct(0.50), "p99Ms": pct(0.99), "maxMs": pct(1.0)}))
}

/// Write `open` running workflows, close the log, then time a fresh
/// engine's start: reopening the log and replaying (folding) every open
/// workflow and queueing it; then the time until all of them completed.
async fn recovery(
    logs: &mut Logs,
    steps: &tokio::runtime::Runtime,
    open: usize,
) -> anyhow::Result<Value> {
    {
        let log = logs.open("recovery")?;
        let mut handles = Vec::new();
        const WRITERS: usize = 64;
        for w in 0..WRITERS {
            let log = log.clone();
            handles.push(tokio::spawn(async move {
                for i in (w..open).step_by(WRITERS) {
                    let (id, ev, mut state) = submitted(i);
                    let now = SystemClock.now();
                    let more = vec![
                        Event::Started { at: now },
                        Event::StepStarted {
                            step: "one".into(),
                            attempt: 1,
                            at: now,
                        },
                    ];
                    for e in &more {
                        state.apply(e);
                    }
                    let mut events = vec![ev];
                    events.extend(more);
                    log.append(AppendRequest {
                        id,
                        expected_version: 0,
                        events,
                        summary: state.summary(),
                        fence: None,
                    })
                    .await
                    .expect("append")
                    .expect("fresh id");
                }
            }));
        }
        for h in handles {
            h.await?;
        }
    }
    let t0 = Instant::now();
    let log = logs.open("recovery")?;
    let reopen = t0.elapsed();
    let registry = prometheus::Registry::new();
    let engine = engine_on(log.clone(), steps, &registry);
    let report = engine.start().await?;
    let replayed = t0.elapsed();
    while finished(&registry) < open as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(log.open()?.is_empty());
    let finished = t0.elapsed();
    Ok(json!({
        "openWorkflows": report.open,
        "reopenLogSeconds": reopen.as_secs_f64(),
        "replaySeconds": report.elapsed.as_secs_f64(),
        "startToReplayedSeconds": replayed.as_secs_f64(),
        "startToAllCompletedSeconds": finished.as_secs_f64(),
    }))
}

fn main() -> anyhow::Result<()> {
    let workflows = arg("--workflows", 20_000);
    let tenants = arg("--tenants", 100);
    let samples = arg("--latency-samples", 2_000);
    let open = arg("--recovery", 10_000);
    let dir = tempfile::Builder::new()
        .prefix("ferry-engine-bench")
        .tempdir_in(std::env::var("FERRY_BENCH_DIR").unwrap_or_else(|_| ".".into()))?;
    let mut logs = match std::env::args()
        .skip_while(|a| a != "--log")
        .nth(1)
        .as_deref()
    {
        None | Some("sled") => Logs::Sled(dir.path().to_owned()),
        Some("postgres") => Logs::Postgres {
            server: std::env::var("DATABASE_URL")
                .map_err(|_| anyhow::anyhow!("--log postgres needs DATABASE_URL"))?,
            made: vec![],
        },
        Some(other) => anyhow::bail!("--log {other}: sled or postgres"),
    };
    let steps = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = actix::System::new().block_on(async {
        let t = throughput(&mut logs, &steps, workflows, tenants).await?;
        let l = latency(&mut logs, samples).await?;
        let r = recovery(&mut logs, &steps, open).await?;
        Ok::<Value, anyhow::Error>(
            json!({"log": logs.name(), "throughput": t, "singleCommitLatency": l, "recovery": r}),
        )
    })?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
