//! One actix actor per tenant owns that tenant's workflows: at most
//! `running_per_tenant_max` run at a time, the rest wait in FIFO order. The
//! actor never runs step code itself (each running workflow is its own task),
//! so it answers queue queries and cancels while steps run, and one tenant's
//! long step never delays another tenant.
//!
//! A `Registry` actor routes messages to tenant actors and starts them on
//! demand. Idle tenant actors stop: an actor idle for `actor_idle` reports how
//! many routed messages it has handled; the registry stops it only if that
//! equals what it routed, so no message can be lost to a stopping actor.
//!
//! A workflow enqueued while it runs (a signal, a resume or a timer arriving
//! just as its runner decides there is nothing left to do and stops) is
//! remembered and runs once more when that runner finishes, so such a
//! wake-up is never lost; a runner with nothing to do stops at once.

use crate::engine::Engine;
use crate::event::Timestamp;
use crate::ids::{TenantId, WorkflowId};
use actix::prelude::*;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, VecDeque};
use tokio_util::sync::CancellationToken;

/// Waiting workflows across all tenants, for the queue-age metric.
#[derive(Default)]
pub struct QueueStats {
    waiting: Mutex<BTreeMap<(Timestamp, WorkflowId), ()>>,
}

impl QueueStats {
    fn add(&self, since: Timestamp, id: WorkflowId) {
        self.waiting.lock().insert((since, id), ());
    }
    fn remove(&self, since: Timestamp, id: WorkflowId) {
        self.waiting.lock().remove(&(since, id));
    }
    /// When the oldest waiting workflow started waiting.
    pub fn oldest(&self) -> Option<Timestamp> {
        self.waiting.lock().keys().next().map(|(t, _)| *t)
    }
    pub fn depth(&self) -> usize {
        self.waiting.lock().len()
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Enqueue {
    pub tenant: TenantId,
    pub id: WorkflowId,
    pub since: Timestamp,
}

#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Interrupt {
    pub tenant: TenantId,
    pub id: WorkflowId,
}

/// A tenant's running and waiting workflows.
/// Cluster mode: this node lost (or handed over) the tenant's lease. Its
/// running workflows are stopped at once (their tasks aborted, so no step
/// code of this node goes on for the tenant) and its queue is emptied; the
/// new owner drives them from the log.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Release {
    pub tenant: TenantId,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, MessageResponse)]
pub struct TenantQueue {
    pub running: Vec<WorkflowId>,
    pub waiting: Vec<WorkflowId>,
}

#[derive(Message)]
#[rtype(result = "TenantQueue")]
pub(crate) struct QueueOf {
    pub tenant: TenantId,
}

#[derive(Message)]
#[rtype(result = "()")]
struct IdleReport {
    tenant: TenantId,
    handled: u64,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Shutdown;

#[derive(Message)]
#[rtype(result = "()")]
struct Finished {
    id: WorkflowId,
}

struct Entry {
    addr: Addr<TenantActor>,
    routed: u64,
}

pub struct Registry {
    engine: Engine,
    tenants: HashMap<TenantId, Entry>,
}

impl Registry {
    pub(crate) fn start_for(engine: Engine) -> Addr<Registry> {
        Registry {
            engine,
            tenants: HashMap::new(),
        }
        .start()
    }

    fn route<M>(&mut self, tenant: &TenantId, ctx: &mut Context<Self>, msg: M)
    where
        M: Message + Send + 'static,
        M::Result: Send,
        TenantActor: Handler<M>,
    {
        let entry = self.entry(tenant, ctx);
        entry.routed += 1;
        entry.addr.do_send(msg);
    }

    fn entry(&mut self, tenant: &TenantId, ctx: &mut Context<Self>) -> &mut Entry {
        let engine = self.engine.clone();
        let me = ctx.address();
        self.tenants.entry(tenant.clone()).or_insert_with(|| {
            engine.inner.metrics.active_tenants.inc();
            Entry {
                addr: TenantActor {
                    tenant: tenant.clone(),
                    engine,
                    registry: me,
                    waiting: VecDeque::new(),
                    running: HashMap::new(),
                    again: HashMap::new(),
                    handled: 0,
                    idle_check: None,
                }
                .start(),
                routed: 0,
            }
        })
    }
}

impl Actor for Registry {
    type Context = Context<Self>;
}

impl Handler<Enqueue> for Registry {
    type Result = ();
    fn handle(&mut self, msg: Enqueue, ctx: &mut Context<Self>) {
        let tenant = msg.tenant.clone();
        self.route(&tenant, ctx, msg);
    }
}

impl Handler<Interrupt> for Registry {
    type Result = ();
    fn handle(&mut self, msg: Interrupt, ctx: &mut Context<Self>) {
        // No actor means nothing runs for that tenant: nothing to interrupt.
        if self.tenants.contains_key(&msg.tenant) {
            let tenant = msg.tenant.clone();
            self.route(&tenant, ctx, msg);
        }
    }
}

impl Handler<Release> for Registry {
    type Result = ();
    fn handle(&mut self, msg: Release, ctx: &mut Context<Self>) {
        if self.tenants.contains_key(&msg.tenant) {
            let tenant = msg.tenant.clone();
            self.route(&tenant, ctx, msg);
        }
    }
}

impl Handler<QueueOf> for Registry {
    type Result = ResponseFuture<TenantQueue>;
    fn handle(&mut self, msg: QueueOf, ctx: &mut Context<Self>) -> Self::Result {
        if !self.tenants.contains_key(&msg.tenant) {
            return Box::pin(async { TenantQueue::default() });
        }
        let entry = self.entry(&msg.tenant, ctx);
        entry.routed += 1;
        let fut = entry.addr.send(msg);
        Box::pin(async move { fut.await.unwrap_or_default() })
    }
}

impl Handler<IdleReport> for Registry {
    type Result = ();
    fn handle(&mut self, msg: IdleReport, _ctx: &mut Context<Self>) {
        let stop = self
            .tenants
            .get(&msg.tenant)
            .is_some_and(|e| e.routed == msg.handled);
        if stop {
            if let Some(entry) = self.tenants.remove(&msg.tenant) {
                entry.addr.do_send(Shutdown);
                self.engine.inner.metrics.active_tenants.dec();
            }
        }
    }
}

/// A workflow's drive task: its cancel token (a cancel command) and the
/// handle that aborts it (a lost lease).
struct Running {
    cancel: CancellationToken,
    task: tokio::task::AbortHandle,
}

pub(crate) struct TenantActor {
    tenant: TenantId,
    engine: Engine,
    registry: Addr<Registry>,
    waiting: VecDeque<(WorkflowId, Timestamp)>,
    running: HashMap<WorkflowId, Running>,
    /// Running workflows enqueued again meanwhile, with the time they were
    /// (see the module doc).
    again: HashMap<WorkflowId, Timestamp>,
    /// Messages from the registry handled so far (see the module doc).
    handled: u64,
    idle_check: Option<SpawnHandle>,
}

impl TenantActor {
    /// Put `id` at the back of the queue.
    fn wait(&mut self, id: WorkflowId, since: Timestamp) {
        self.waiting.push_back((id, since));
        self.engine.inner.queue.add(since, id);
        self.engine.inner.metrics.queue_depth.inc();
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        let max = self.engine.inner.config.running_per_tenant_max.max(1);
        while self.running.len() < max {
            let Some((id, since)) = self.waiting.pop_front() else {
                break;
            };
            self.engine.inner.queue.remove(since, id);
            self.engine.inner.metrics.queue_depth.dec();
            let token = CancellationToken::new();
            self.engine.inner.metrics.running.inc();
            let engine = self.engine.clone();
            let me = ctx.address();
            let cancel = token.clone();
            let task = self.engine.runtime().spawn(async move {
                crate::runner::drive(engine, id, token).await;
                me.do_send(Finished { id });
            });
            self.running.insert(
                id,
                Running {
                    cancel,
                    task: task.abort_handle(),
                },
            );
        }
        self.schedule_idle_check(ctx);
    }

    fn schedule_idle_check(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.idle_check.take() {
            ctx.cancel_future(h);
        }
        if self.running.is_empty() && self.waiting.is_empty() {
            let after = self.engine.inner.config.actor_idle;
            self.idle_check = Some(ctx.run_later(after, |act, _ctx| {
                if act.running.is_empty() && act.waiting.is_empty() {
                    act.registry.do_send(IdleReport {
                        tenant: act.tenant.clone(),
                        handled: act.handled,
                    });
                }
            }));
        }
    }
}

impl Actor for TenantActor {
    type Context = Context<Self>;
}

impl Handler<Enqueue> for TenantActor {
    type Result = ();
    fn handle(&mut self, msg: Enqueue, ctx: &mut Context<Self>) {
        self.handled += 1;
        if self.running.contains_key(&msg.id) {
            self.again.entry(msg.id).or_insert(msg.since);
        } else if !self.waiting.iter().any(|(id, _)| *id == msg.id) {
            self.wait(msg.id, msg.since);
        }
        self.pump(ctx);
    }
}

impl Handler<Interrupt> for TenantActor {
    type Result = ();
    fn handle(&mut self, msg: Interrupt, _ctx: &mut Context<Self>) {
        self.handled += 1;
        if let Some(r) = self.running.get(&msg.id) {
            r.cancel.cancel();
        }
    }
}

impl Handler<Release> for TenantActor {
    type Result = ();
    fn handle(&mut self, _msg: Release, ctx: &mut Context<Self>) {
        self.handled += 1;
        for (_, r) in self.running.drain() {
            r.cancel.cancel();
            r.task.abort();
            self.engine.inner.metrics.running.dec();
        }
        for (id, since) in self.waiting.drain(..) {
            self.engine.inner.queue.remove(since, id);
            self.engine.inner.metrics.queue_depth.dec();
        }
        self.again.clear();
        self.schedule_idle_check(ctx);
    }
}

impl Handler<QueueOf> for TenantActor {
    type Result = TenantQueue;
    fn handle(&mut self, _msg: QueueOf, _ctx: &mut Context<Self>) -> TenantQueue {
        self.handled += 1;
        let mut running: Vec<_> = self.running.keys().copied().collect();
        running.sort();
        TenantQueue {
            running,
            waiting: self.waiting.iter().map(|(id, _)| *id).collect(),
        }
    }
}

impl Handler<Finished> for TenantActor {
    type Result = ();
    fn handle(&mut self, msg: Finished, ctx: &mut Context<Self>) {
        if self.running.remove(&msg.id).is_some() {
            self.engine.inner.metrics.running.dec();
        }
        if let Some(since) = self.again.remove(&msg.id) {
            self.wait(msg.id, since);
        }
        self.pump(ctx);
    }
}

impl Handler<Shutdown> for TenantActor {
    type Result = ();
    fn handle(&mut self, _msg: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
