//! The engine: commands (submit, cancel, resume, signal, rollback), the one
//! place where a workflow's events are decided and appended (`transact`),
//! read-only queries of the log, and start-up recovery.
//!
//! Every change to a workflow, its creation by `submit` included, goes
//! through `transact`: under the workflow's lock, fold the current state,
//! decide the events, append them durably, and only then update the cached
//! state. A crash anywhere leaves the log as the whole truth; the cache is
//! only a shortcut. Nothing outside this module sees the log: callers ask
//! the queries (`get`, `events`, `list`, `open_workflows`, `next_timer`,
//! `find_idempotency`, `count_submitted_since`) and may `subscribe` to a
//! notice of every durable append (the live event streams of the api).

use crate::actor::{self, Registry};
use crate::clock::{Clock, IdGen};
use crate::error::{Error, Rejection};
use crate::event::{Event, Failure, Progress, Timestamp};
use crate::ids::{TenantId, WorkflowId};
use crate::log::{
    AppendRejection, AppendRequest, DueTimer, EventLog, Fence, ListQuery, WorkflowSummary,
};
use crate::metrics::EngineMetrics;
use crate::ownership::Ownership;
use crate::plan::{self, Next, RunOrder};
use crate::state::{Phase, WorkflowState};
use crate::status::Status;
use crate::step::StepError;
use crate::submissions::RecentSubmissions;
use crate::workflow::{StepHost, TimerHost, Workflow};
use actix::Addr;
use parking_lot::{Mutex, RwLock};
use rand::{rngs::StdRng, SeedableRng};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, Mutex as AsyncMutex, Notify};

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Workflows of one tenant that may run at the same time.
    pub running_per_tenant_max: usize,
    /// An idle tenant actor stops after this long.
    pub actor_idle: Duration,
    /// Longest sleep of the timer loop between looks at the due-timers index.
    pub timer_poll: Duration,
    /// Where workflow steps run. `None`: the runtime `start` is called on.
    pub runtime: Option<tokio::runtime::Handle>,
    /// Seed of the retry-jitter RNG (`None`: from entropy).
    pub seed: Option<u64>,
    /// Cluster mode: this node's id. The engine then drives only the
    /// tenants it was given a lease on (`adopt`), fences those appends with
    /// the lease's epoch, and recovers nothing at start on its own.
    pub node: Option<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            running_per_tenant_max: 1,
            actor_idle: Duration::from_secs(30),
            timer_poll: Duration::from_millis(500),
            runtime: None,
            seed: None,
            node: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct SubmitRequest {
    pub tenant: TenantId,
    pub kind: String,
    pub input: Value,
    pub idempotency_key: Option<String>,
    pub requested_by: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Submitted {
    pub state: WorkflowState,
    /// False when an idempotency key matched an existing workflow.
    pub created: bool,
}

/// What `start` found and replayed.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    pub open: usize,
    pub resumed: usize,
    /// Open workflows whose stream could not be read or folded: left as
    /// they are in the log, not driven, so the others recover.
    pub quarantined: Vec<WorkflowId>,
    pub elapsed: Duration,
}

type Slot = Arc<AsyncMutex<Option<WorkflowState>>>;

/// Upper bound on re-deciding after a concurrent writer changed the stream.
const TRANSACT_RETRIES_MAX: usize = 8;

/// Append notices buffered per subscriber; a slower one gets `Lagged` and
/// reads the log again.
const CHANGES_BUFFER_MAX: usize = 1024;

pub(crate) struct Inner {
    log: Arc<dyn EventLog>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGen>,
    pub(crate) config: EngineConfig,
    definitions: RwLock<HashMap<String, Arc<dyn Workflow>>>,
    slots: Mutex<HashMap<WorkflowId, Slot>>,
    registry: OnceLock<Addr<Registry>>,
    runtime: OnceLock<tokio::runtime::Handle>,
    pub(crate) metrics: EngineMetrics,
    pub(crate) queue: actor::QueueStats,
    rng: Mutex<StdRng>,
    /// Wakes the timer loop when a timer is scheduled.
    pub(crate) timer_scheduled: Notify,
    /// The summary after every durable append (see [`Engine::subscribe`]).
    changes: broadcast::Sender<WorkflowSummary>,
    /// Recent submissions, for `count_submitted_since`.
    submissions: RecentSubmissions,
    /// Cluster mode: the tenants this node owns.
    ownership: Option<Ownership>,
}

/// A cheap handle to the engine.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl Engine {
    pub fn new(
        log: Arc<dyn EventLog>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGen>,
        config: EngineConfig,
        registry: &prometheus::Registry,
    ) -> Result<Engine, prometheus::Error> {
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_entropy(),
        };
        let metrics = EngineMetrics::new(registry)?;
        let ownership = config.node.as_deref().map(Ownership::new);
        crate::metrics::LogGauges::register(&metrics, &log, clock.clone(), registry)?;
        let engine = Engine {
            inner: Arc::new(Inner {
                log,
                clock,
                ids,
                config,
                definitions: RwLock::new(HashMap::new()),
                slots: Mutex::new(HashMap::new()),
                registry: OnceLock::new(),
                runtime: OnceLock::new(),
                metrics,
                queue: actor::QueueStats::default(),
                rng: Mutex::new(rng),
                timer_scheduled: Notify::new(),
                changes: broadcast::channel(CHANGES_BUFFER_MAX).0,
                submissions: RecentSubmissions::default(),
                ownership,
            }),
        };
        Ok(engine)
    }

    /// The engine's metrics (e.g. to opt tenants in to tenant-labelled series).
    pub fn metrics(&self) -> &EngineMetrics {
        &self.inner.metrics
    }

    /// Make a workflow kind known. Call before `start`.
    pub fn register(&self, workflow: Arc<dyn Workflow>) {
        let steps: Vec<&str> = workflow.steps().iter().map(|s| s.name).collect();
        self.inner.metrics.init_kind(workflow.kind(), &steps);
        self.inner
            .definitions
            .write()
            .insert(workflow.kind().to_owned(), workflow);
    }

    pub fn definition(&self, kind: &str) -> Result<Arc<dyn Workflow>, Error> {
        self.inner
            .definitions
            .read()
            .get(kind)
            .cloned()
            .ok_or_else(|| Error::UnknownKind(kind.to_owned()))
    }

    pub(crate) fn log(&self) -> &dyn EventLog {
        &*self.inner.log
    }

    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// The engine's clock (for code that needs time outside a step).
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    /// Wait until the engine's clock reaches `at`.
    pub(crate) async fn sleep_until(&self, at: Timestamp) {
        self.inner.clock.sleep_until(at).await
    }

    /// The runtime workflow steps run on.
    pub fn runtime(&self) -> tokio::runtime::Handle {
        self.inner
            .runtime
            .get()
            .cloned()
            .unwrap_or_else(tokio::runtime::Handle::current)
    }

    pub(crate) fn retry_delay(&self, policy: &crate::RetryPolicy, failures: u32) -> Duration {
        policy.delay(failures, &mut *self.inner.rng.lock())
    }

    /// Start the tenant actors, replay open workflows and start the timer
    /// loop. Must run inside an actix `System`.
    pub async fn start(&self) -> Result<RecoveryReport, Error> {
        let runtime = self
            .inner
            .config
            .runtime
            .clone()
            .unwrap_or_else(tokio::runtime::Handle::current);
        let _ = self.inner.runtime.set(runtime);
        let addr = Registry::start_for(self.clone());
        let _ = self.inner.registry.set(addr);
        // In a cluster a node drives only the tenants it is given (`adopt`).
        let report = match self.inner.ownership {
            None => self.recover(None).await?,
            Some(_) => RecoveryReport::default(),
        };
        crate::timers::spawn_loop(self.clone());
        Ok(report)
    }

    /// Fold and drive the open workflows (of one tenant, or all).
    async fn recover(&self, tenant: Option<&TenantId>) -> Result<RecoveryReport, Error> {
        let t0 = Instant::now();
        let mut open = self.inner.log.open()?;
        if let Some(tenant) = tenant {
            open.retain(|s| &s.tenant == tenant);
        }
        let mut states = Vec::with_capacity(open.len());
        let mut quarantined = Vec::new();
        for summary in &open {
            match self.load_for_recovery(summary.id) {
                Ok(state) => states.push(state),
                Err(reason) => {
                    tracing::error!(
                        workflow = %summary.id,
                        tenant = %summary.tenant,
                        kind = %summary.kind,
                        error = %reason,
                        "quarantined a workflow whose events cannot be read; it is not resumed, the others are"
                    );
                    self.inner
                        .metrics
                        .quarantined
                        .with_label_values(&[&summary.kind])
                        .inc();
                    quarantined.push(summary.id);
                }
            }
        }
        // Running ones first (they held their tenant's slot), then FIFO.
        states.sort_by_key(|s| (s.status == Status::Pending, s.id));
        let mut resumed = 0;
        for state in states {
            let drive = state.status.needs_driving();
            let (id, tenant, created_at) = (state.id, state.tenant.clone(), state.created_at);
            self.inner
                .slots
                .lock()
                .insert(id, Arc::new(AsyncMutex::new(Some(state))));
            if drive {
                self.enqueue(&tenant, id, created_at);
                resumed += 1;
            }
        }
        let report = RecoveryReport {
            open: open.len(),
            resumed,
            quarantined,
            elapsed: t0.elapsed(),
        };
        self.inner
            .metrics
            .recovery_seconds
            .set(report.elapsed.as_secs_f64());
        self.inner.metrics.recovered.set(report.open as i64);
        tracing::info!(
            open = report.open,
            resumed,
            quarantined = report.quarantined.len(),
            elapsed_ms = report.elapsed.as_millis() as u64,
            "recovered open workflows"
        );
        Ok(report)
    }

    pub(crate) fn enqueue(&self, tenant: &TenantId, id: WorkflowId, since: Timestamp) {
        if !self.owns(tenant) {
            // The tenant's owner hears of it from the shared log.
            return;
        }
        if let Some(reg) = self.inner.registry.get() {
            reg.do_send(actor::Enqueue {
                tenant: tenant.clone(),
                id,
                since,
            });
        }
    }

    fn interrupt(&self, tenant: &TenantId, id: WorkflowId) {
        if let Some(reg) = self.inner.registry.get() {
            reg.do_send(actor::Interrupt {
                tenant: tenant.clone(),
                id,
            });
        }
    }

    /// Submit a new workflow (or find the one an idempotency key names).
    pub async fn submit(&self, req: SubmitRequest) -> Result<Submitted, Error> {
        self.definition(&req.kind)?;
        if let Some(key) = &req.idempotency_key {
            if let Some(existing) = self.inner.log.find_idempotency(&req.tenant, key)? {
                return self.existing(existing).await;
            }
        }
        let id = self.inner.ids.workflow_id();
        let event = Event::Submitted {
            id,
            tenant: req.tenant.clone(),
            kind: req.kind.clone(),
            input: req.input,
            idempotency_key: req.idempotency_key,
            requested_by: req.requested_by,
            at: self.now(),
        };
        let committed = self
            .transact_stream(Writer::Command, id, |s| match s {
                None => Ok((vec![event.clone()], ())),
                // A fresh id names no stream; a clash is not ours to resolve.
                Some(_) => Err(Rejection::Conflict.into()),
            })
            .await?;
        let state = match committed {
            Ok((state, ())) => state,
            Err(existing) => return self.existing(existing).await,
        };
        self.inner
            .metrics
            .submitted
            .with_label_values(&[&req.kind])
            .inc();
        let m = &self.inner.metrics;
        m.tenant_submitted
            .with_label_values(&[m.tenant_label(req.tenant.as_str()), &req.kind])
            .inc();
        self.inner
            .submissions
            .record(&state.tenant, &state.kind, state.created_at, id);
        self.enqueue(&state.tenant, id, state.created_at);
        Ok(Submitted {
            state,
            created: true,
        })
    }

    async fn existing(&self, id: WorkflowId) -> Result<Submitted, Error> {
        let state = self.get(id).await?.ok_or(Error::NotFound(id))?;
        Ok(Submitted {
            state,
            created: false,
        })
    }

    /// The current state, or `None` for an unknown id. In a cluster other
    /// nodes append too, so it is read from the log, not from memory.
    pub async fn get(&self, id: WorkflowId) -> Result<Option<WorkflowState>, Error> {
        let slot = match self.inner.ownership {
            None => self.inner.slots.lock().get(&id).cloned(),
            Some(_) => None,
        };
        if let Some(slot) = slot {
            if let Some(state) = slot.lock().await.as_ref() {
                return Ok(Some(state.clone()));
            }
        }
        let events = self.inner.log.read(id)?;
        Ok(WorkflowState::fold(&events))
    }

    pub fn events(&self, id: WorkflowId) -> Result<Vec<Event>, Error> {
        Ok(self.inner.log.read(id)?)
    }

    pub fn list(&self, q: &ListQuery) -> Result<Vec<WorkflowSummary>, Error> {
        Ok(self.inner.log.list(q)?)
    }

    /// A notice of every append from now on, sent after it is durable: the
    /// workflow's summary (tenant, kind, status, version = its number of
    /// events) after it. Notices of one workflow arrive in append order. A
    /// subscriber that falls more than a buffer behind gets
    /// `RecvError::Lagged` and must read what it missed from the queries
    /// (`events`, `list`); subscribe before reading, so nothing falls between.
    pub fn subscribe(&self) -> broadcast::Receiver<WorkflowSummary> {
        self.inner.changes.subscribe()
    }

    /// Every workflow not in a final status, ordered by id.
    pub fn open_workflows(&self) -> Result<Vec<WorkflowSummary>, Error> {
        Ok(self.inner.log.open()?)
    }

    /// The earliest unfired durable timer, if any.
    pub fn next_timer(&self) -> Result<Option<DueTimer>, Error> {
        Ok(self.inner.log.next_timer()?)
    }

    /// The workflow a tenant's idempotency key already names, if any.
    pub fn find_idempotency(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<WorkflowId>, Error> {
        Ok(self.inner.log.find_idempotency(tenant, key)?)
    }

    /// Workflows of `kind` that `tenant` submitted at or after `since`:
    /// from memory (`submissions`) unless other processes write the log.
    pub fn count_submitted_since(
        &self,
        tenant: &TenantId,
        kind: &str,
        since: Timestamp,
    ) -> Result<u64, Error> {
        let log = &*self.inner.log;
        if log.has_other_writers() {
            return Ok(log.count_submitted_since(tenant, kind, since)?);
        }
        Ok(self
            .inner
            .submissions
            .count_since(log, tenant, kind, since, self.now())?)
    }

    /// The folded state of a stream; `None` if it has no events.
    fn load(&self, id: WorkflowId) -> Result<Option<WorkflowState>, Error> {
        let events = self.inner.log.read(id)?;
        Ok(WorkflowState::fold(&events))
    }

    /// Read and fold an open workflow at start, catching a stream that
    /// cannot be read, is empty, or breaks the status table (whose fold
    /// panics), so one bad stream does not stop the recovery of the others.
    fn load_for_recovery(&self, id: WorkflowId) -> Result<WorkflowState, String> {
        let events = self.inner.log.read(id).map_err(|e| e.to_string())?;
        let folded = std::panic::catch_unwind(|| WorkflowState::fold(&events)).map_err(|p| {
            let why = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("the fold panicked");
            format!("events do not fold: {why}")
        })?;
        let state = folded.ok_or_else(|| "the stream has no events".to_owned())?;
        if state.id != id {
            return Err(format!("the stream holds workflow {}", state.id));
        }
        Ok(state)
    }

    fn slot(&self, id: WorkflowId) -> Slot {
        self.inner
            .slots
            .lock()
            .entry(id)
            .or_insert_with(|| Arc::new(AsyncMutex::new(None)))
            .clone()
    }

    /// Decide and append under the workflow's lock. `decide` sees the
    /// current state and returns the events to append (maybe none) and a
    /// value for the caller. On a concurrent write it is asked again.
    pub(crate) async fn transact<T>(
        &self,
        id: WorkflowId,
        decide: impl FnMut(&WorkflowState) -> Result<(Vec<Event>, T), Rejection>,
    ) -> Result<(WorkflowState, T), Error> {
        self.transact_as(Writer::Command, id, decide).await
    }

    /// `transact` for the appends that drive a workflow (its steps, their
    /// outcomes, its timers): in a cluster only the tenant's owner makes
    /// them, fenced by its lease.
    pub(crate) async fn transact_driving<T>(
        &self,
        id: WorkflowId,
        decide: impl FnMut(&WorkflowState) -> Result<(Vec<Event>, T), Rejection>,
    ) -> Result<(WorkflowState, T), Error> {
        self.transact_as(Writer::Driver, id, decide).await
    }

    async fn transact_as<T>(
        &self,
        writer: Writer,
        id: WorkflowId,
        mut decide: impl FnMut(&WorkflowState) -> Result<(Vec<Event>, T), Rejection>,
    ) -> Result<(WorkflowState, T), Error> {
        let committed = self
            .transact_stream(writer, id, |s| match s {
                Some(s) => Ok(decide(s)?),
                None => Err(Error::NotFound(id)),
            })
            .await?;
        // An idempotency key is only ever in a workflow's first event.
        committed.map_err(|_| Rejection::Conflict.into())
    }

    /// `transact` for a stream that may not exist yet (`decide` sees `None`):
    /// the one place events are appended. `Ok(Err(existing))` when the
    /// events carried an idempotency key another workflow already holds.
    async fn transact_stream<T>(
        &self,
        writer: Writer,
        id: WorkflowId,
        mut decide: impl FnMut(Option<&WorkflowState>) -> Result<(Vec<Event>, T), Error>,
    ) -> Result<Result<(WorkflowState, T), WorkflowId>, Error> {
        let slot = self.slot(id);
        let mut guard = slot.lock().await;
        for _ in 0..TRANSACT_RETRIES_MAX {
            if guard.is_none() {
                *guard = self.load(id)?;
            }
            let before = guard.as_ref();
            let (events, value) = decide(before)?;
            if events.is_empty() {
                return match before {
                    Some(state) => Ok(Ok((state.clone(), value))),
                    None => Err(Error::NotFound(id)),
                };
            }
            let next = match before {
                Some(state) => {
                    let mut next = state.clone();
                    for e in &events {
                        next.apply(e);
                    }
                    next
                }
                None => WorkflowState::fold(&events).expect("a new stream starts with Submitted"),
            };
            let fence = self.fence_for(writer, &next.tenant)?;
            let appended = self
                .inner
                .log
                .append(AppendRequest {
                    id,
                    expected_version: before.map_or(0, |s| s.version),
                    events,
                    summary: next.summary(),
                    fence,
                })
                .await?;
            match appended {
                Ok(_) => {
                    if let Some(before) = before {
                        self.observe_transition(before, &next);
                    }
                    let final_now = next.status.is_final() && next.timers.values().all(|t| t.fired);
                    // No subscriber is not an error.
                    let _ = self.inner.changes.send(next.summary());
                    *guard = Some(next.clone());
                    drop(guard);
                    if final_now {
                        self.inner.slots.lock().remove(&id);
                    }
                    return Ok(Ok((next, value)));
                }
                Err(AppendRejection::VersionConflict { .. }) => *guard = None,
                Err(AppendRejection::Fenced { tenant, .. }) => {
                    *guard = None;
                    drop(guard);
                    tracing::warn!(%tenant, workflow = %id, "the tenant's lease was lost: this node stops driving it");
                    self.release(&tenant);
                    return Err(Error::NotOwner(tenant));
                }
                Err(AppendRejection::DuplicateIdempotencyKey { existing }) => {
                    return Ok(Err(existing))
                }
            }
        }
        Err(Rejection::Conflict.into())
    }

    fn observe_transition(&self, before: &WorkflowState, after: &WorkflowState) {
        if after.status.is_final() && before.status != after.status {
            let m = &self.inner.metrics;
            let labels = [after.kind.as_str(), after.status.as_str()];
            m.finished.with_label_values(&labels).inc();
            m.tenant_finished
                .with_label_values(&[m.tenant_label(after.tenant.as_str()), labels[0], labels[1]])
                .inc();
            let secs = (after.updated_at - after.created_at)
                .to_std()
                .unwrap_or_default()
                .as_secs_f64();
            m.workflow_duration.with_label_values(&labels).observe(secs);
        }
    }

    /// Cancel: a pending workflow is cancelled at once; a running one at its
    /// next safe point; one that already did compensable work compensates.
    pub async fn cancel(&self, id: WorkflowId, by: Option<String>) -> Result<WorkflowState, Error> {
        Ok(self.cancel_in(Writer::Command, id, by, None).await?.0)
    }

    /// `cancel`, only while the workflow is in `only_in` when given (checked
    /// in the same transaction): otherwise nothing is appended and the
    /// answer is `false`.
    async fn cancel_in(
        &self,
        writer: Writer,
        id: WorkflowId,
        by: Option<String>,
        only_in: Option<Status>,
    ) -> Result<(WorkflowState, bool), Error> {
        let def = self.definition_of(id).await?;
        let now = self.now();
        let (state, cancelled) = self
            .transact_as(writer, id, |s| {
                if only_in.is_some_and(|want| want != s.status) {
                    return Ok((vec![], false));
                }
                let events = match s.status {
                    Status::Pending => vec![Event::Cancelled { at: now }],
                    Status::Running if s.cancel_requested => vec![],
                    Status::Running => vec![Event::CancelRequested {
                        by: by.clone(),
                        at: now,
                    }],
                    Status::AwaitingConfirmation | Status::Paused | Status::Failed
                        if s.phase == Phase::Forward =>
                    {
                        if plan::needs_compensation(s, def.steps()) {
                            vec![Event::CompensationStarted {
                                reason: Failure {
                                    code: "cancelled".into(),
                                    message: "the workflow was cancelled".into(),
                                    retryable: false,
                                },
                                at: now,
                            }]
                        } else {
                            vec![Event::Cancelled { at: now }]
                        }
                    }
                    other => return Err(Rejection::NotCancellable(other)),
                };
                Ok((events, true))
            })
            .await?;
        if cancelled {
            match state.status {
                Status::Running => self.interrupt(&state.tenant, id),
                Status::Compensating => self.enqueue(&state.tenant, id, now),
                _ => {}
            }
        }
        Ok((state, cancelled))
    }

    /// Resume a failed or paused workflow from the step that stopped it.
    pub async fn resume(&self, id: WorkflowId) -> Result<WorkflowState, Error> {
        let now = self.now();
        let (state, ()) = self
            .transact(id, |s| match s.status {
                Status::Failed | Status::Paused => Ok((vec![Event::Resumed { at: now }], ())),
                other => Err(Rejection::NotResumable(other)),
            })
            .await?;
        self.enqueue(&state.tenant, id, now);
        Ok(state)
    }

    /// Pause a running workflow at its next step boundary is not offered; a
    /// workflow waiting for a signal or failed may be parked explicitly.
    pub async fn pause(&self, id: WorkflowId, reason: &str) -> Result<WorkflowState, Error> {
        let now = self.now();
        let (state, ()) = self
            .transact(id, |s| match s.status {
                Status::AwaitingConfirmation => Ok((
                    vec![Event::Paused {
                        reason: reason.to_owned(),
                        at: now,
                    }],
                    (),
                )),
                other => Err(Rejection::NotPausable(other)),
            })
            .await?;
        Ok(state)
    }

    /// Deliver a signal the workflow is waiting for (e.g. a confirmation).
    pub async fn signal(
        &self,
        id: WorkflowId,
        name: &str,
        payload: Value,
    ) -> Result<WorkflowState, Error> {
        let now = self.now();
        let (state, ()) = self
            .transact(id, |s| {
                if s.status == Status::AwaitingConfirmation
                    && s.awaiting_signal.as_deref() == Some(name)
                {
                    Ok((
                        vec![Event::SignalReceived {
                            name: name.to_owned(),
                            payload: payload.clone(),
                            at: now,
                        }],
                        (),
                    ))
                } else {
                    Err(Rejection::NotAwaitingSignal(name.to_owned()))
                }
            })
            .await?;
        self.enqueue(&state.tenant, id, now);
        Ok(state)
    }

    /// Undo a completed workflow through its compensations.
    pub async fn rollback(&self, id: WorkflowId, reason: &str) -> Result<WorkflowState, Error> {
        let def = self.definition_of(id).await?;
        let now = self.now();
        let (state, ()) = self
            .transact(id, |s| {
                if s.status == Status::Completed && plan::needs_compensation(s, def.steps()) {
                    Ok((
                        vec![Event::CompensationStarted {
                            reason: Failure {
                                code: "rollback_requested".into(),
                                message: reason.to_owned(),
                                retryable: false,
                            },
                            at: now,
                        }],
                        (),
                    ))
                } else {
                    Err(Rejection::NotRollbackable(s.status))
                }
            })
            .await?;
        self.enqueue(&state.tenant, id, now);
        Ok(state)
    }

    async fn definition_of(&self, id: WorkflowId) -> Result<Arc<dyn Workflow>, Error> {
        let state = self.get(id).await?.ok_or(Error::NotFound(id))?;
        self.definition(&state.kind)
    }

    /// Record the next decisions that need no step code; what to do next.
    pub(crate) async fn advance(
        &self,
        id: WorkflowId,
        def: &dyn Workflow,
    ) -> Result<(WorkflowState, Next), Error> {
        let now = self.now();
        self.transact_driving(id, |s| Ok(plan::advance(s, def.steps(), now)))
            .await
    }

    /// `advance` at the start of a drive. In a cluster, a step that was
    /// started before (by this node before a restart, or by the node this
    /// one took the tenant over from) is recorded as started again, under
    /// this node's lease: the log then shows which node ran each execution
    /// of a step under which epoch (the step journal).
    pub(crate) async fn advance_first(
        &self,
        id: WorkflowId,
        def: &dyn Workflow,
    ) -> Result<(WorkflowState, Next), Error> {
        if self.inner.ownership.is_none() {
            return self.advance(id, def).await;
        }
        let now = self.now();
        self.transact_driving(id, |s| {
            let (mut events, next) = plan::advance(s, def.steps(), now);
            if let Next::Run(order) = &next {
                if events.is_empty() && s.current_step.as_deref() == Some(order.step.as_str()) {
                    events.push(Event::StepStarted {
                        step: order.step.clone(),
                        attempt: order.attempt,
                        at: now,
                    });
                }
            }
            Ok((events, next))
        })
        .await
    }

    /// Record a step's outcome (and the decisions that follow it).
    pub(crate) async fn record_outcome(
        &self,
        id: WorkflowId,
        def: &dyn Workflow,
        order: &RunOrder,
        outcome: Result<Value, StepError>,
        interrupted: bool,
    ) -> Result<(WorkflowState, Next), Error> {
        let now = self.now();
        self.transact_driving(id, |s| {
            let expected_status = match order.phase {
                Phase::Forward => Status::Running,
                Phase::Compensation => Status::Compensating,
            };
            if s.current_step.as_deref() != Some(order.step.as_str()) || s.status != expected_status
            {
                return Err(Rejection::StepNotCurrent(order.step.clone()));
            }
            let mut events = match (&outcome, interrupted) {
                (Ok(output), _) => vec![plan::after_success(order, output.clone(), now)],
                // Interrupted by cancel: nothing failed; the cancel decides.
                (Err(_), true) => vec![],
                (Err(error), false) => {
                    let spec = def
                        .steps()
                        .iter()
                        .find(|sp| sp.name == order.step)
                        .expect("order names a step of the definition");
                    plan::after_failure(
                        s,
                        def.steps(),
                        spec,
                        order,
                        error.clone(),
                        |f| self.retry_delay(&spec.retry, f),
                        now,
                    )
                }
            };
            let mut scratch = s.clone();
            for e in &events {
                scratch.apply(e);
            }
            let (more, next) = plan::advance(&scratch, def.steps(), now);
            events.extend(more);
            Ok((events, next))
        })
        .await
    }

    pub(crate) async fn record_checkpoint(
        &self,
        id: WorkflowId,
        step: &str,
        checkpoint: Value,
        progress: Option<Progress>,
    ) -> Result<(), Error> {
        let now = self.now();
        self.transact_driving(id, |s| {
            if s.current_step.as_deref() == Some(step)
                && matches!(s.status, Status::Running | Status::Compensating)
            {
                Ok((
                    vec![Event::StepProgressed {
                        step: step.to_owned(),
                        checkpoint: checkpoint.clone(),
                        progress: progress.clone(),
                        at: now,
                    }],
                    (),
                ))
            } else {
                Err(Rejection::StepNotCurrent(step.to_owned()))
            }
        })
        .await?;
        Ok(())
    }

    pub(crate) async fn schedule_timer(
        &self,
        id: WorkflowId,
        name: &str,
        due_at: Timestamp,
    ) -> Result<(), Error> {
        let now = self.now();
        self.transact_driving(id, |s| {
            let same = s.timers.get(name).is_some_and(|t| t.due_at == due_at);
            let events = if same {
                vec![]
            } else {
                vec![Event::TimerScheduled {
                    name: name.to_owned(),
                    due_at,
                    at: now,
                }]
            };
            Ok((events, ()))
        })
        .await?;
        self.inner.timer_scheduled.notify_one();
        Ok(())
    }

    pub(crate) async fn mark_timer_fired(&self, id: WorkflowId, name: &str) -> Result<(), Error> {
        let now = self.now();
        self.transact_driving(id, |s| {
            let pending = s.timers.get(name).is_some_and(|t| !t.fired);
            let events = if pending {
                vec![Event::TimerFired {
                    name: name.to_owned(),
                    at: now,
                }]
            } else {
                vec![]
            };
            Ok((events, ()))
        })
        .await?;
        Ok(())
    }

    /// The queue of one tenant, answered by its actor even while steps run.
    pub async fn tenant_queue(&self, tenant: &TenantId) -> Result<actor::TenantQueue, Error> {
        let reg = self.inner.registry.get().ok_or(Error::NotStarted)?;
        reg.send(actor::QueueOf {
            tenant: tenant.clone(),
        })
        .await
        .map_err(|_| Error::NotStarted)
    }
}

/// Who appends: a command (any node may record one) or the driver of the
/// workflow (in a cluster, only the tenant's owner, fenced by its lease).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Writer {
    Command,
    Driver,
}

/// Cluster mode: what the lease manager tells the engine, and what the
/// engine tells about ownership.
impl Engine {
    /// This node's id in a cluster; `None` for a single node.
    pub fn node(&self) -> Option<&str> {
        self.inner.ownership.as_ref().map(Ownership::node)
    }

    /// Whether this node drives the tenant's workflows (always, alone).
    pub fn owns(&self, tenant: &TenantId) -> bool {
        self.inner.ownership.as_ref().is_none_or(|o| o.owns(tenant))
    }

    /// The leases this node holds (empty for a single node).
    pub fn leases(&self) -> Vec<(TenantId, i64)> {
        self.inner
            .ownership
            .as_ref()
            .map(Ownership::held)
            .unwrap_or_default()
    }

    fn fence_for(&self, writer: Writer, tenant: &TenantId) -> Result<Option<Fence>, Error> {
        match (&self.inner.ownership, writer) {
            (None, _) | (Some(_), Writer::Command) => Ok(None),
            (Some(o), Writer::Driver) => o
                .fence(tenant)
                .map(Some)
                .ok_or_else(|| Error::NotOwner(tenant.clone())),
        }
    }

    /// The lease manager granted this node the tenant's lease at `epoch`:
    /// fold the tenant's open workflows from the log and drive them, from
    /// the last step each recorded (a takeover resumes where the previous
    /// owner stopped).
    pub async fn adopt(&self, tenant: &TenantId, epoch: i64) -> Result<RecoveryReport, Error> {
        let Some(o) = &self.inner.ownership else {
            return Ok(RecoveryReport::default());
        };
        if !o.insert(tenant, epoch) {
            return Ok(RecoveryReport::default());
        }
        self.forget_cached(tenant);
        self.recover(Some(tenant)).await
    }

    /// Look at every open workflow of an owned tenant again (after notices
    /// of other nodes' appends may have been missed).
    pub async fn redrive(&self, tenant: &TenantId) -> Result<RecoveryReport, Error> {
        if self.inner.ownership.is_none() || !self.owns(tenant) {
            return Ok(RecoveryReport::default());
        }
        self.forget_cached(tenant);
        self.recover(Some(tenant)).await
    }

    /// The tenant's lease is gone (taken over, expired, or handed back):
    /// stop its running workflows at once and drive nothing more of it.
    pub fn release(&self, tenant: &TenantId) {
        let Some(o) = &self.inner.ownership else {
            return;
        };
        if o.remove(tenant) {
            if let Some(reg) = self.inner.registry.get() {
                reg.do_send(actor::Release {
                    tenant: tenant.clone(),
                });
            }
            self.forget_cached(tenant);
        }
    }

    /// Another node appended to one of `tenant`'s workflows (heard from the
    /// shared log): the owner looks at it again (a command may need it to
    /// act), and every node tells its live streams.
    pub fn appended_elsewhere(&self, tenant: &TenantId, id: WorkflowId) {
        let Ok(Some(summary)) = self.inner.log.summary(id) else {
            return;
        };
        let since = summary.created_at;
        let _ = self.inner.changes.send(summary);
        if !self.owns(tenant) {
            return;
        }
        // A cancel recorded elsewhere interrupts the step running here.
        if let Ok(Some(state)) = self.load(id) {
            if state.status == Status::Running && state.cancel_requested {
                self.interrupt(tenant, id);
            }
        }
        self.enqueue(tenant, id, since);
    }

    /// Drop the cached states of a tenant's workflows: another node may
    /// have appended to them since.
    fn forget_cached(&self, tenant: &TenantId) {
        let slots: Vec<Slot> = self.inner.slots.lock().values().cloned().collect();
        for slot in slots {
            if let Ok(mut guard) = slot.try_lock() {
                if guard.as_ref().is_some_and(|s| &s.tenant == tenant) {
                    *guard = None;
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl TimerHost for Engine {
    async fn cancel_if_status(
        &self,
        id: WorkflowId,
        status: Status,
        by: &str,
    ) -> Result<bool, Error> {
        Ok(self
            .cancel_in(Writer::Driver, id, Some(by.to_owned()), Some(status))
            .await?
            .1)
    }
}

#[async_trait::async_trait]
impl StepHost for Engine {
    fn now(&self) -> Timestamp {
        Engine::now(self)
    }

    async fn record_checkpoint(
        &self,
        id: WorkflowId,
        step: &str,
        checkpoint: Value,
        progress: Option<Progress>,
    ) -> Result<(), Error> {
        Engine::record_checkpoint(self, id, step, checkpoint, progress).await
    }

    async fn schedule_timer(
        &self,
        id: WorkflowId,
        name: &str,
        due_at: Timestamp,
    ) -> Result<(), Error> {
        Engine::schedule_timer(self, id, name, due_at).await
    }
}
