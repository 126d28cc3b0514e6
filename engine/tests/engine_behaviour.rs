//! Whole workflows run through the real engine (actors, runner, timers) on
//! the in-memory reference log: retries, permanent failures and resume,
//! cancel, compensation, timers, idempotency, per-tenant concurrency and
//! recovery after a "crash" (a second engine over the same log), a bad
//! stream quarantined at recovery, and timers and backoff on a manual clock.

use async_trait::async_trait;
use ferry_engine::testkit::MemoryLog;
use ferry_engine::{
    AppendRejection, AppendRequest, Clock, DueTimer, Engine, EngineConfig, Event, EventLog,
    ListQuery, LogError, ManualClock, RetryPolicy, Status, StepContext, StepError, StepSpec,
    SubmitRequest, SystemClock, TenantId, TimerContext, UuidV7, Workflow, WorkflowId,
    WorkflowSummary,
};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Behaviour = Arc<dyn Fn(&StepContext) -> Result<Value, StepError> + Send + Sync>;

/// A workflow whose steps do what the test says, and which records what ran.
struct TestFlow {
    kind: &'static str,
    steps: Vec<StepSpec>,
    behaviour: Mutex<HashMap<&'static str, Behaviour>>,
    /// Per step: how long it sleeps (cancellable) before answering.
    delay: Mutex<HashMap<&'static str, Duration>>,
    /// Per tenant and step: a gate the step waits at until the test opens it.
    gates: Mutex<HashMap<(String, &'static str), Arc<tokio::sync::Semaphore>>>,
    ran: Mutex<Vec<String>>,
    compensated: Mutex<Vec<String>>,
    timers: Mutex<Vec<String>>,
    concurrent: AtomicUsize,
    concurrent_max_by_tenant: Mutex<HashMap<String, usize>>,
    in_flight_by_tenant: Mutex<HashMap<String, usize>>,
}

impl TestFlow {
    fn new(kind: &'static str, steps: Vec<StepSpec>) -> Arc<Self> {
        Arc::new(TestFlow {
            kind,
            steps,
            behaviour: Mutex::new(HashMap::new()),
            delay: Mutex::new(HashMap::new()),
            gates: Mutex::new(HashMap::new()),
            ran: Mutex::new(vec![]),
            compensated: Mutex::new(vec![]),
            timers: Mutex::new(vec![]),
            concurrent: AtomicUsize::new(0),
            concurrent_max_by_tenant: Mutex::new(HashMap::new()),
            in_flight_by_tenant: Mutex::new(HashMap::new()),
        })
    }
    fn on(
        &self,
        step: &'static str,
        f: impl Fn(&StepContext) -> Result<Value, StepError> + Send + Sync + 'static,
    ) {
        self.behaviour.lock().insert(step, Arc::new(f));
    }
    fn slow(&self, step: &'static str, d: Duration) {
        self.delay.lock().insert(step, d);
    }
    /// Hold `tenant`'s runs of `step` until the returned gate is opened
    /// (`open`).
    fn hold(&self, tenant: &str, step: &'static str) -> Arc<tokio::sync::Semaphore> {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        self.gates
            .lock()
            .insert((tenant.to_owned(), step), gate.clone());
        gate
    }
}

fn open(gate: &tokio::sync::Semaphore) {
    gate.add_permits(1 << 20);
}

#[async_trait]
impl Workflow for TestFlow {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn steps(&self) -> &[StepSpec] {
        &self.steps
    }
    async fn run(&self, ctx: StepContext) -> Result<Value, StepError> {
        let tenant = ctx.tenant.to_string();
        {
            let mut f = self.in_flight_by_tenant.lock();
            let n = f.entry(tenant.clone()).or_insert(0);
            *n += 1;
            let mut m = self.concurrent_max_by_tenant.lock();
            let max = m.entry(tenant.clone()).or_insert(0);
            *max = (*max).max(*n);
        }
        self.concurrent.fetch_add(1, Ordering::SeqCst);
        self.ran
            .lock()
            .push(format!("{}:{}", ctx.step, ctx.attempt));
        let gate = self
            .gates
            .lock()
            .get(&(tenant.clone(), ctx.step.as_str()))
            .cloned();
        if let Some(gate) = gate {
            let _passed = gate.acquire().await.unwrap();
        }
        let delay = self.delay.lock().get(ctx.step.as_str()).copied();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let f = self.behaviour.lock().get(ctx.step.as_str()).cloned();
        let out = match f {
            Some(f) => f(&ctx),
            None => Ok(json!({"step": ctx.step})),
        };
        self.concurrent.fetch_sub(1, Ordering::SeqCst);
        *self.in_flight_by_tenant.lock().get_mut(&tenant).unwrap() -= 1;
        out
    }
    async fn compensate(&self, ctx: StepContext) -> Result<Value, StepError> {
        self.compensated.lock().push(ctx.step.clone());
        Ok(json!("undone"))
    }
    async fn on_timer(&self, ctx: TimerContext) -> Result<(), StepError> {
        self.timers.lock().push(ctx.name.clone());
        Ok(())
    }
}

fn fast_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts_max: attempts,
        backoff_initial: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        multiplier: 2.0,
        jitter: 0.5,
    }
}

fn three_steps() -> Vec<StepSpec> {
    vec![
        StepSpec::new("a").retry(fast_retry(3)),
        StepSpec::new("b").retry(fast_retry(3)).compensable(),
        StepSpec::new("c").retry(fast_retry(3)),
    ]
}

async fn engine_with(log: Arc<dyn EventLog>, flow: Arc<TestFlow>) -> Engine {
    engine_with_config(log, flow, EngineConfig::default()).await
}

/// `engine_with`, from `config` with the tests' fast timers and seed.
async fn engine_with_config(
    log: Arc<dyn EventLog>,
    flow: Arc<TestFlow>,
    config: EngineConfig,
) -> Engine {
    engine_with_clock(log, flow, config, Arc::new(SystemClock)).await
}

/// `engine_with_config` on `clock`.
async fn engine_with_clock(
    log: Arc<dyn EventLog>,
    flow: Arc<dyn Workflow>,
    config: EngineConfig,
    clock: Arc<dyn Clock>,
) -> Engine {
    let engine = Engine::new(
        log,
        clock,
        Arc::new(UuidV7),
        EngineConfig {
            timer_poll: Duration::from_millis(20),
            actor_idle: Duration::from_millis(200),
            seed: Some(42),
            ..config
        },
        &prometheus::Registry::new(),
    )
    .unwrap();
    engine.register(flow);
    engine.start().await.unwrap();
    engine
}

fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

async fn submit(engine: &Engine, t: &str, key: Option<&str>) -> WorkflowId {
    engine
        .submit(SubmitRequest {
            tenant: tenant(t),
            kind: "test".into(),
            input: json!({"n": 1}),
            idempotency_key: key.map(str::to_owned),
            requested_by: Some("tester".into()),
        })
        .await
        .unwrap()
        .state
        .id
}

async fn wait_for(engine: &Engine, id: WorkflowId, want: Status) -> ferry_engine::WorkflowState {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = engine.get(id).await.unwrap().unwrap();
        if s.status == want {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "workflow {id} is {} not {want}; error {:?}",
            s.status,
            s.last_error
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[actix::test]
async fn three_steps_complete_with_one_commit_per_transition() {
    let flow = TestFlow::new("test", three_steps());
    let log = MemoryLog::shared();
    let engine = engine_with(log.clone(), flow.clone()).await;
    let id = submit(&engine, "acme", None).await;
    let s = wait_for(&engine, id, Status::Completed).await;
    assert_eq!(s.outputs.len(), 3);
    let tags: Vec<_> = log.read(id).unwrap().iter().map(|e| e.tag()).collect();
    assert_eq!(
        tags,
        [
            "submitted.v1",
            "started.v1",
            "step_started.v1",
            "step_succeeded.v1",
            "step_started.v1",
            "step_succeeded.v1",
            "step_started.v1",
            "step_succeeded.v1",
            "completed.v1"
        ]
    );
    assert_eq!(*flow.ran.lock(), ["a:1", "b:1", "c:1"]);
}

#[actix::test]
async fn a_retryable_failure_is_retried_with_backoff() {
    let flow = TestFlow::new("test", three_steps());
    flow.on("a", |ctx| {
        if ctx.attempt < 3 {
            Err(StepError::retryable("flaky", "try again"))
        } else {
            Ok(json!("ok"))
        }
    });
    let engine = engine_with(MemoryLog::shared(), flow.clone()).await;
    let id = submit(&engine, "acme", None).await;
    wait_for(&engine, id, Status::Completed).await;
    assert_eq!(&flow.ran.lock()[..3], ["a:1", "a:2", "a:3"]);
    let failed = engine
        .events(id)
        .unwrap()
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::StepFailed {
                    retry_at: Some(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(failed, 2);
}

#[actix::test]
async fn a_permanent_failure_fails_and_resume_continues_from_the_failed_step() {
    let flow = TestFlow::new(
        "test",
        vec![
            StepSpec::new("a"),
            StepSpec::new("b").retry(fast_retry(2)),
            StepSpec::new("c"),
        ],
    );
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let b2 = broken.clone();
    flow.on("b", move |_| {
        if b2.load(Ordering::SeqCst) {
            Err(StepError::permanent("bad_input", "no"))
        } else {
            Ok(json!("fixed"))
        }
    });
    let engine = engine_with(MemoryLog::shared(), flow.clone()).await;
    let id = submit(&engine, "acme", None).await;
    let s = wait_for(&engine, id, Status::Failed).await;
    assert_eq!(s.last_error.unwrap().code, "bad_input");
    assert_eq!(
        *flow.ran.lock(),
        ["a:1", "b:1"],
        "a permanent error is not retried"
    );
    broken.store(false, Ordering::SeqCst);
    engine.resume(id).await.unwrap();
    wait_for(&engine, id, Status::Completed).await;
    assert_eq!(
        *flow.ran.lock(),
        ["a:1", "b:1", "b:1", "c:1"],
        "a is not run again"
    );
    let err = engine.resume(id).await.unwrap_err();
    assert!(matches!(
        err,
        ferry_engine::Error::Rejected(ferry_engine::Rejection::NotResumable(Status::Completed))
    ));
}

#[actix::test]
async fn exhausted_retries_after_a_compensable_step_roll_back() {
    let flow = TestFlow::new("test", three_steps());
    flow.on("c", |_| Err(StepError::retryable("down", "still down")));
    let engine = engine_with(MemoryLog::shared(), flow.clone()).await;
    let id = submit(&engine, "acme", None).await;
    let s = wait_for(&engine, id, Status::RolledBack).await;
    assert_eq!(s.last_error.unwrap().code, "down");
    assert_eq!(*flow.compensated.lock(), ["b"]);
    assert_eq!(
        flow.ran
            .lock()
            .iter()
            .filter(|r| r.starts_with("c:"))
            .count(),
        3
    );
}

#[actix::test]
async fn cancel_pending_and_running() {
    let flow = TestFlow::new("test", three_steps());
    flow.slow("a", Duration::from_secs(30));
    let engine = engine_with(MemoryLog::shared(), flow.clone()).await;
    let running = submit(&engine, "acme", None).await;
    let queued = submit(&engine, "acme", None).await;
    wait_for(&engine, running, Status::Running).await;
    // The second waits behind the first (one per tenant) and is still pending.
    assert_eq!(
        engine.get(queued).await.unwrap().unwrap().status,
        Status::Pending
    );
    let q = engine.tenant_queue(&tenant("acme")).await.unwrap();
    assert_eq!(q.running, vec![running]);
    assert_eq!(q.waiting, vec![queued]);
    let s = engine.cancel(queued, Some("op".into())).await.unwrap();
    assert_eq!(s.status, Status::Cancelled);
    let t0 = Instant::now();
    engine.cancel(running, Some("op".into())).await.unwrap();
    wait_for(&engine, running, Status::Cancelled).await;
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "a running step is interrupted, not waited for"
    );
    assert!(
        flow.compensated.lock().is_empty(),
        "nothing compensable ran"
    );
    let err = engine.cancel(running, None).await.unwrap_err();
    assert!(matches!(
        err,
        ferry_engine::Error::Rejected(ferry_engine::Rejection::NotCancellable(Status::Cancelled))
    ));
}

#[actix::test]
async fn cancel_after_a_compensable_step_compensates() {
    let flow = TestFlow::new("test", three_steps());
    flow.slow("c", Duration::from_secs(30));
    let engine = engine_with(MemoryLog::shared(), flow.clone()).await;
    let id = submit(&engine, "acme", None).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine
        .get(id)
        .await
        .unwrap()
        .unwrap()
        .current_step
        .as_deref()
        != Some("c")
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    engine.cancel(id, None).await.unwrap();
    wait_for(&engine, id, Status::RolledBack).await;
    assert_eq!(*flow.compensated.lock(), ["b"]);
}

#[actix::test]
async fn one_tenant_runs_one_at_a_time_and_does_not_delay_another() {
    let flow = TestFlow::new("test", three_steps());
    // Tenant slow-a's first workflow is held inside step b until the test
    // has seen tenant b finish.
    let gate = flow.hold("slow-a", "b");
    let engine = engine_with(MemoryLog::shared(), flow.clone()).await;
    let a1 = submit(&engine, "slow-a", None).await;
    let a2 = submit(&engine, "slow-a", None).await;
    let a3 = submit(&engine, "slow-a", None).await;
    // Tenant b runs the same steps but must not wait for slow-a's queue.
    let b1 = submit(&engine, "b", None).await;
    let sb = wait_for(&engine, b1, Status::Completed).await;
    assert!(sb.outputs.len() == 3);
    let s1 = engine.get(a1).await.unwrap().unwrap();
    assert_eq!(
        (s1.status, s1.current_step.as_deref()),
        (Status::Running, Some("b"))
    );
    for id in [a2, a3] {
        assert_eq!(
            engine.get(id).await.unwrap().unwrap().status,
            Status::Pending,
            "a2 and a3 wait behind a1 while b completes"
        );
    }
    open(&gate);
    for id in [a1, a2, a3] {
        wait_for(&engine, id, Status::Completed).await;
    }
    let s1 = engine.get(a1).await.unwrap().unwrap();
    let s2 = engine.get(a2).await.unwrap().unwrap();
    let s3 = engine.get(a3).await.unwrap().unwrap();
    // FIFO and never overlapping.
    assert!(s1.finished_at.unwrap() <= s2.started_at.unwrap());
    assert!(s2.finished_at.unwrap() <= s3.started_at.unwrap());
    assert_eq!(flow.concurrent_max_by_tenant.lock()["slow-a"], 1);
}

#[actix::test]
async fn idempotency_key_returns_the_same_workflow() {
    let flow = TestFlow::new("test", three_steps());
    let engine = engine_with(MemoryLog::shared(), flow.clone()).await;
    let a = submit(&engine, "acme", Some("k1")).await;
    let b = submit(&engine, "acme", Some("k1")).await;
    let c = submit(&engine, "other", Some("k1")).await;
    assert_eq!(a, b);
    assert_ne!(a, c);
}

/// A workflow that schedules a timer in its last step, `due_in` after the
/// step ran.
struct TimerFlow {
    steps: Vec<StepSpec>,
    due_in: chrono::Duration,
    fired: Mutex<Vec<(String, ferry_engine::Timestamp)>>,
}

impl TimerFlow {
    fn new(due_in: chrono::Duration) -> Arc<Self> {
        Arc::new(TimerFlow {
            steps: vec![StepSpec::new("expire")],
            due_in,
            fired: Mutex::new(vec![]),
        })
    }
    fn fired_names(&self) -> Vec<String> {
        self.fired.lock().iter().map(|(n, _)| n.clone()).collect()
    }
}

#[async_trait]
impl Workflow for TimerFlow {
    fn kind(&self) -> &'static str {
        "test"
    }
    fn steps(&self) -> &[StepSpec] {
        &self.steps
    }
    async fn run(&self, ctx: StepContext) -> Result<Value, StepError> {
        let due = ctx.now() + self.due_in;
        ctx.schedule_timer("expire", due).await?;
        Ok(json!({"expiresAt": due}))
    }
    async fn on_timer(&self, ctx: TimerContext) -> Result<(), StepError> {
        self.fired.lock().push((ctx.name.clone(), ctx.now()));
        Ok(())
    }
}

#[actix::test]
async fn durable_timers_fire_after_completion_and_survive_a_restart() {
    let log = MemoryLog::shared();
    let flow = TimerFlow::new(chrono::Duration::milliseconds(150));
    let id = {
        // This engine's clock stands still, so its timers never come due:
        // as if it had crashed before firing them.
        let stopped = ManualClock::new(SystemClock.now());
        let engine = Engine::new(
            log.clone(),
            Arc::new(stopped),
            Arc::new(UuidV7),
            EngineConfig {
                timer_poll: Duration::from_secs(3600),
                ..Default::default()
            },
            &prometheus::Registry::new(),
        )
        .unwrap();
        engine.register(flow.clone());
        engine.start().await.unwrap();
        let id = submit(&engine, "acme", None).await;
        wait_for(&engine, id, Status::Completed).await;
        id
    };
    assert!(log.next_timer().unwrap().is_some());
    let flow2 = TimerFlow::new(chrono::Duration::milliseconds(150));
    let engine2 = Engine::new(
        log.clone(),
        Arc::new(SystemClock),
        Arc::new(UuidV7),
        EngineConfig {
            timer_poll: Duration::from_millis(20),
            ..Default::default()
        },
        &prometheus::Registry::new(),
    )
    .unwrap();
    engine2.register(flow2.clone());
    engine2.start().await.unwrap();
    // Fired once recorded: from then on the timer is out of the index, so
    // it can never fire again.
    let s = wait_for_timer_fired(&engine2, id, "expire").await;
    assert!(s.timers["expire"].fired);
    assert_eq!(flow2.fired_names(), ["expire"]);
    assert!(
        log.next_timer().unwrap().is_none(),
        "fired timers leave the index"
    );
}

/// Polls until the timer `name` of `id` is recorded as fired.
async fn wait_for_timer_fired(
    engine: &Engine,
    id: WorkflowId,
    name: &str,
) -> ferry_engine::WorkflowState {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = engine.get(id).await.unwrap().unwrap();
        if s.timers.get(name).is_some_and(|t| t.fired) {
            return s;
        }
        assert!(Instant::now() < deadline, "timer {name} never fired");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn manual_clock() -> ManualClock {
    ManualClock::new(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap())
}

/// A 24 h durable timer fires when the engine's clock reaches it, in
/// milliseconds of real time, and not an hour before.
#[actix::test]
async fn a_24_hour_timer_fires_in_milliseconds_on_a_manual_clock() {
    let clock = manual_clock();
    let t0 = clock.now();
    let flow = TimerFlow::new(chrono::Duration::hours(24));
    let engine = engine_with_clock(
        MemoryLog::shared(),
        flow.clone(),
        EngineConfig {
            // Only the clock (or a scheduling) may wake the timer loop.
            timer_poll: Duration::from_secs(3600),
            ..EngineConfig::default()
        },
        Arc::new(clock.clone()),
    )
    .await;
    let real = Instant::now();
    let id = submit(&engine, "acme", None).await;
    wait_for(&engine, id, Status::Completed).await;
    let next = engine.next_timer().unwrap().unwrap();
    assert_eq!(
        (next.workflow, next.due_at),
        (id, t0 + chrono::Duration::hours(24))
    );
    clock.advance(chrono::Duration::hours(23));
    // A step of the same engine schedules and completes at once; the loop
    // had its chance to look at the index after the clock moved.
    let other = submit(&engine, "acme", None).await;
    wait_for(&engine, other, Status::Completed).await;
    assert!(flow.fired.lock().is_empty(), "fired an hour early");
    clock.advance(chrono::Duration::hours(1));
    let s = wait_for_timer_fired(&engine, id, "expire").await;
    assert!(s.timers["expire"].fired);
    assert_eq!(
        flow.fired.lock()[0],
        ("expire".to_owned(), t0 + chrono::Duration::hours(24)),
        "the callback sees the engine's clock"
    );
    assert!(
        real.elapsed() < Duration::from_secs(5),
        "took {:?}",
        real.elapsed()
    );
}

/// A retry's backoff waits on the engine's clock: an hour-long backoff is
/// over when the clock is advanced an hour, not before.
#[actix::test]
async fn retry_backoff_sleeps_on_the_engine_clock() {
    let clock = manual_clock();
    let hour = RetryPolicy {
        attempts_max: 2,
        backoff_initial: Duration::from_secs(3600),
        backoff_max: Duration::from_secs(3600),
        multiplier: 1.0,
        jitter: 0.0,
    };
    let flow = TestFlow::new("test", vec![StepSpec::new("a").retry(hour)]);
    flow.on("a", |ctx| {
        if ctx.attempt < 2 {
            Err(StepError::retryable("flaky", "try again"))
        } else {
            Ok(json!("ok"))
        }
    });
    let engine = engine_with_clock(
        MemoryLog::shared(),
        flow.clone(),
        EngineConfig::default(),
        Arc::new(clock.clone()),
    )
    .await;
    let real = Instant::now();
    let id = submit(&engine, "acme", None).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let retry_at = loop {
        let s = engine.get(id).await.unwrap().unwrap();
        if let Some(at) = s.retry_at {
            break at;
        }
        assert!(Instant::now() < deadline, "never backed off: {s:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(retry_at, clock.now() + chrono::Duration::hours(1));
    clock.advance(chrono::Duration::minutes(59));
    tokio::task::yield_now().await;
    assert_eq!(
        *flow.ran.lock(),
        ["a:1"],
        "retried before the backoff ended"
    );
    clock.advance(chrono::Duration::minutes(1));
    wait_for(&engine, id, Status::Completed).await;
    assert_eq!(*flow.ran.lock(), ["a:1", "a:2"]);
    assert!(real.elapsed() < Duration::from_secs(5));
}

/// An event log whose stream of one workflow cannot be read.
struct UnreadableStream {
    log: Arc<MemoryLog>,
    bad: WorkflowId,
}

#[async_trait]
impl EventLog for UnreadableStream {
    async fn append(&self, req: AppendRequest) -> Result<Result<u64, AppendRejection>, LogError> {
        self.log.append(req).await
    }
    fn read(&self, id: WorkflowId) -> Result<Vec<Event>, LogError> {
        if id == self.bad {
            return Err(LogError::Corruption(format!("event 3 of {id} is garbage")));
        }
        self.log.read(id)
    }
    fn summary(&self, id: WorkflowId) -> Result<Option<WorkflowSummary>, LogError> {
        self.log.summary(id)
    }
    fn list(&self, q: &ListQuery) -> Result<Vec<WorkflowSummary>, LogError> {
        self.log.list(q)
    }
    fn open(&self) -> Result<Vec<WorkflowSummary>, LogError> {
        self.log.open()
    }
    fn due_timers(
        &self,
        until: ferry_engine::Timestamp,
        limit: usize,
    ) -> Result<Vec<DueTimer>, LogError> {
        self.log.due_timers(until, limit)
    }
    fn next_timer(&self) -> Result<Option<DueTimer>, LogError> {
        self.log.next_timer()
    }
    fn find_idempotency(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<WorkflowId>, LogError> {
        self.log.find_idempotency(tenant, key)
    }
    fn count_submitted_since(
        &self,
        tenant: &TenantId,
        kind: &str,
        since: ferry_engine::Timestamp,
    ) -> Result<u64, LogError> {
        self.log.count_submitted_since(tenant, kind, since)
    }
    fn size_bytes(&self) -> u64 {
        0
    }
}

/// One open workflow whose events cannot be read is quarantined at start
/// (reported and counted); the other open workflows recover and finish.
#[actix::test]
async fn recovery_quarantines_an_unreadable_stream_and_recovers_the_others() {
    let log = MemoryLog::shared();
    let flow = TestFlow::new("test", three_steps());
    let _held = [flow.hold("acme", "a"), flow.hold("zeta", "a")];
    let engine = engine_with(log.clone(), flow.clone()).await;
    let ids = [
        submit(&engine, "acme", None).await,
        submit(&engine, "acme", None).await,
        submit(&engine, "zeta", None).await,
    ];
    wait_for(&engine, ids[0], Status::Running).await;
    wait_for(&engine, ids[2], Status::Running).await;
    // "Crash" with acme's first workflow and zeta's inside a, acme's second
    // pending; the second's stream is unreadable to the next engine.
    let bad = ids[1];
    let broken: Arc<dyn EventLog> = Arc::new(UnreadableStream {
        log: log.clone(),
        bad,
    });
    let flow2 = TestFlow::new("test", three_steps());
    let registry = prometheus::Registry::new();
    let engine2 = Engine::new(
        broken,
        Arc::new(SystemClock),
        Arc::new(UuidV7),
        EngineConfig {
            timer_poll: Duration::from_millis(20),
            seed: Some(42),
            ..EngineConfig::default()
        },
        &registry,
    )
    .unwrap();
    engine2.register(flow2.clone());
    let report = engine2
        .start()
        .await
        .expect("recovery goes past a bad stream");
    assert_eq!(report.quarantined, [bad]);
    assert_eq!(report.open, 3);
    for id in [ids[0], ids[2]] {
        let s = wait_for(&engine2, id, Status::Completed).await;
        assert_eq!(s.outputs.len(), 3);
    }
    let quarantined = registry
        .gather()
        .into_iter()
        .find(|f| f.get_name() == "ferry_workflows_quarantined_total")
        .expect("the counter is exported");
    let test_kind = quarantined
        .get_metric()
        .iter()
        .find(|m| m.get_label().iter().any(|l| l.get_value() == "test"))
        .unwrap();
    assert_eq!(test_kind.get_counter().get_value(), 1.0);
    // The quarantined stream is left as it was in the log.
    assert_eq!(log.summary(bad).unwrap().unwrap().status, Status::Pending);
}

/// A stream whose events break the status table (its fold panics) is
/// quarantined at start too, and the engine goes on.
#[actix::test]
async fn recovery_quarantines_a_stream_that_does_not_fold() {
    let log = MemoryLog::shared();
    let id = WorkflowId(uuid::Uuid::now_v7());
    let submitted = Event::Submitted {
        id,
        tenant: tenant("acme"),
        kind: "test".into(),
        input: json!({}),
        idempotency_key: None,
        requested_by: None,
        at: SystemClock.now(),
    };
    // Its index entry says pending (open); its events jump to completed.
    let summary = ferry_engine::WorkflowState::from_submitted(&submitted).summary();
    log.append(AppendRequest {
        id,
        expected_version: 0,
        events: vec![submitted.clone()],
        summary: summary.clone(),
        fence: None,
    })
    .await
    .unwrap()
    .unwrap();
    log.append(AppendRequest {
        id,
        expected_version: 1,
        events: vec![Event::Completed {
            at: SystemClock.now(),
        }],
        summary: WorkflowSummary {
            version: 2,
            ..summary
        },
        fence: None,
    })
    .await
    .unwrap()
    .unwrap();
    let flow = TestFlow::new("test", three_steps());
    let engine = Engine::new(
        log.clone(),
        Arc::new(SystemClock),
        Arc::new(UuidV7),
        EngineConfig::default(),
        &prometheus::Registry::new(),
    )
    .unwrap();
    engine.register(flow.clone());
    let report = engine.start().await.expect("recovery goes past it");
    assert_eq!(report.quarantined, [id]);
    let other = submit(&engine, "acme", None).await;
    wait_for(&engine, other, Status::Completed).await;
}

#[actix::test]
async fn a_second_engine_over_the_same_log_finishes_open_workflows() {
    let log = MemoryLog::shared();
    let flow = TestFlow::new("test", three_steps());
    flow.slow("b", Duration::from_secs(3600));
    let engine = engine_with(log.clone(), flow.clone()).await;
    let ids = [
        submit(&engine, "acme", None).await,
        submit(&engine, "acme", None).await,
        submit(&engine, "zeta", None).await,
    ];
    let deadline = Instant::now() + Duration::from_secs(5);
    while engine
        .get(ids[0])
        .await
        .unwrap()
        .unwrap()
        .current_step
        .as_deref()
        != Some("b")
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // "Crash": the first engine's step hangs forever; a new engine takes over.
    let flow2 = TestFlow::new("test", three_steps());
    let engine2 = engine_with(log.clone(), flow2.clone()).await;
    for id in ids {
        let s = wait_for(&engine2, id, Status::Completed).await;
        assert_eq!(s.outputs.len(), 3);
    }
    // Two workflows were inside b when the first engine stopped; the third
    // had not started. Finished steps are never run again.
    let ran = flow2.ran.lock().clone();
    let count = |s: &str| ran.iter().filter(|r| *r == s).count();
    assert_eq!(
        (count("a:1"), count("b:1"), count("c:1")),
        (1, 3, 3),
        "{ran:?}"
    );
}

#[actix::test]
async fn a_step_past_its_timeout_is_retried_then_fails_with_step_timeout() {
    let flow = TestFlow::new(
        "test",
        vec![StepSpec::new("a")
            .retry(fast_retry(2))
            .timeout(Duration::from_millis(50))],
    );
    flow.slow("a", Duration::from_secs(30));
    let engine = engine_with(MemoryLog::shared(), flow.clone()).await;
    let id = submit(&engine, "acme", None).await;
    let s = wait_for(&engine, id, Status::Failed).await;
    assert_eq!(s.last_error.unwrap().code, "step_timeout");
    assert_eq!(
        *flow.ran.lock(),
        ["a:1", "a:2"],
        "two attempts, both cut off"
    );
}

#[actix::test]
async fn idle_tenant_actors_stop_and_come_back_on_demand() {
    let flow = TestFlow::new("test", three_steps());
    let registry = prometheus::Registry::new();
    let engine = Engine::new(
        MemoryLog::shared(),
        Arc::new(SystemClock),
        Arc::new(UuidV7),
        EngineConfig {
            actor_idle: Duration::from_millis(100),
            timer_poll: Duration::from_millis(20),
            ..EngineConfig::default()
        },
        &registry,
    )
    .unwrap();
    engine.register(flow.clone());
    engine.start().await.unwrap();
    let active = || {
        registry
            .gather()
            .iter()
            .find(|f| f.get_name() == "ferry_active_tenants")
            .map(|f| f.get_metric()[0].get_gauge().get_value())
            .unwrap_or(0.0)
    };
    let a = submit(&engine, "acme", None).await;
    let b = submit(&engine, "globex", None).await;
    wait_for(&engine, a, Status::Completed).await;
    wait_for(&engine, b, Status::Completed).await;
    assert_eq!(active(), 2.0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while active() > 0.0 {
        assert!(Instant::now() < deadline, "idle actors never stopped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A stopped tenant's actor is started again by the next submission.
    let c = submit(&engine, "acme", None).await;
    wait_for(&engine, c, Status::Completed).await;
}

/// A signal that arrives while the runner that recorded `AwaitingSignal` is
/// still finishing is not lost: the workflow goes on once that runner
/// stops. Runners run on a runtime of their own here, so they finish in
/// parallel with the test's signal, which comes the moment the status
/// shows, round after round.
#[actix::test]
async fn a_signal_arriving_as_the_runner_stops_is_never_lost() {
    let flow = TestFlow::new(
        "test",
        vec![
            StepSpec::new("a"),
            StepSpec::new("confirm").awaits_signal("go"),
            StepSpec::new("b"),
        ],
    );
    let runners = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let engine = engine_with_config(
        MemoryLog::shared(),
        flow.clone(),
        EngineConfig {
            runtime: Some(runners.handle().clone()),
            ..EngineConfig::default()
        },
    )
    .await;
    const ROUNDS: usize = 300;
    for round in 0..ROUNDS {
        let id = submit(&engine, "acme", None).await;
        loop {
            let s = engine.get(id).await.unwrap().unwrap();
            if s.status == Status::AwaitingConfirmation {
                break;
            }
            tokio::task::yield_now().await;
        }
        engine
            .signal(id, "go", json!({ "round": round }))
            .await
            .unwrap();
        wait_for(&engine, id, Status::Completed).await;
    }
    assert_eq!(
        flow.ran
            .lock()
            .iter()
            .filter(|r| r.starts_with("b:"))
            .count(),
        ROUNDS
    );
    runners.shutdown_background();
}

/// Cluster mode, in the engine alone: a node drives only the tenants it was
/// given (`adopt`), with every driving append fenced by the lease's epoch;
/// a released tenant's running step is stopped at once (its task aborted:
/// the step never answers), and the node that adopts the tenant next runs
/// the step again, recorded as started by it.
#[actix::test]
async fn a_node_drives_only_adopted_tenants_and_stops_at_once_on_release() {
    let flow = TestFlow::new("test", three_steps());
    let gate = flow.hold("acme", "b");
    let log = MemoryLog::shared();
    let node = |name: &str| EngineConfig {
        node: Some(name.into()),
        ..EngineConfig::default()
    };
    let a = engine_with_config(log.clone(), flow.clone(), node("node-a")).await;
    let id = submit(&a, "acme", None).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        a.get(id).await.unwrap().unwrap().status,
        Status::Pending,
        "not driven before the lease"
    );
    a.adopt(&tenant("acme"), 1).await.unwrap();
    assert_eq!(a.leases(), vec![(tenant("acme"), 1)]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.get(id).await.unwrap().unwrap().current_step.as_deref() != Some("b") {
        assert!(Instant::now() < deadline, "never reached step b");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The lease is lost while b waits at its gate: the drive is aborted, so
    // b never records an outcome from this node, even once the gate opens.
    a.release(&tenant("acme"));
    assert!(a.leases().is_empty());
    tokio::time::sleep(Duration::from_millis(50)).await;
    open(&gate);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let s = a.get(id).await.unwrap().unwrap();
    assert_eq!(s.status, Status::Running);
    assert!(!s.outputs.contains_key("b"), "a released node recorded b");
    // Another node adopts the tenant (the next epoch) and finishes it.
    let b = engine_with_config(log.clone(), flow.clone(), node("node-b")).await;
    b.adopt(&tenant("acme"), 2).await.unwrap();
    wait_for(&b, id, Status::Completed).await;
    let events = b.events(id).unwrap();
    let started_b = events
        .iter()
        .filter(|e| matches!(e, Event::StepStarted { step, .. } if step == "b"))
        .count();
    assert_eq!(started_b, 2, "b was started again by the adopting node");
}

/// A step whose inputs are gone (`StepError::redo`) makes the engine forget
/// the named earlier steps' outputs: they run again, then the step, and the
/// workflow completes; a step that keeps asking is failed after the budget.
#[actix::test]
async fn a_step_whose_inputs_are_gone_redoes_the_steps_that_made_them() {
    let flow = TestFlow::new("test", three_steps());
    let asked = Arc::new(AtomicUsize::new(0));
    let n = asked.clone();
    flow.on("c", move |_| {
        if n.fetch_add(1, Ordering::SeqCst) == 0 {
            Err(StepError::redo(
                &["a"],
                "work_files_lost",
                "a's files are gone",
            ))
        } else {
            Ok(json!("c done"))
        }
    });
    let engine = engine_with(MemoryLog::shared(), flow.clone()).await;
    let id = submit(&engine, "acme", None).await;
    wait_for(&engine, id, Status::Completed).await;
    assert_eq!(
        *flow.ran.lock(),
        ["a:1", "b:1", "c:1", "a:1", "c:1"],
        "a ran again, b kept its output, then c"
    );
    let events = engine.events(id).unwrap();
    assert!(events.iter().any(
        |e| matches!(e, Event::StepsRedone { steps, reason, .. } if steps == &["a"] && reason.code == "work_files_lost")
    ));

    let forever = TestFlow::new("test", three_steps());
    forever.on("c", |_| {
        Err(StepError::redo(&["a"], "work_files_lost", "gone again"))
    });
    let engine = engine_with(MemoryLog::shared(), forever.clone()).await;
    let id = submit(&engine, "acme", None).await;
    let s = wait_for(&engine, id, Status::RolledBack).await;
    assert_eq!(s.redos, ferry_engine::plan::REDOS_MAX);
    assert_eq!(s.last_error.unwrap().code, "work_files_lost");
}
