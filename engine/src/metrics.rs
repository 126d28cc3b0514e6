//! The engine's Prometheus metrics, generic by workflow kind: every kind the
//! engine runs (export, rehydrate, ...) is covered without code of its own.
//!
//! Series are bounded: labels are kinds × steps × outcomes, never raw ids.
//! The only tenant-labelled series (`ferry_tenant_*`) name tenants an
//! operator opted in (`opt_in_tenants`); every other tenant is counted under
//! `tenant="other"`, so their number is fixed by configuration, not by
//! traffic.
//!
//! Bucket bounds follow measured latencies (bench/results): a step takes from
//! about 1 ms (notify, expire) to tens of seconds for a 1 GB snapshot, so
//! step buckets span 1 ms .. 1 h; whole workflows span 50 ms .. 4 h
//! (rehydrations wait for a human confirmation).

use crate::clock::Clock;
use crate::log::EventLog;
use crate::status::Status;
use parking_lot::RwLock;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

/// Buckets of `ferry_step_duration_seconds`.
pub const STEP_SECONDS_BUCKETS: [f64; 20] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0,
    150.0, 300.0, 900.0, 1800.0, 3600.0,
];

/// Buckets of `ferry_workflow_duration_seconds`.
pub const WORKFLOW_SECONDS_BUCKETS: [f64; 17] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 150.0, 300.0, 600.0, 1800.0, 3600.0,
    7200.0, 14400.0,
];

/// The outcome label of a step attempt.
pub const STEP_OUTCOMES: [&str; 4] = ["ok", "retryable_error", "error", "cancelled"];

/// Final statuses, the outcome label of finished workflows.
pub const FINAL_OUTCOMES: [Status; 4] = [
    Status::Completed,
    Status::Failed,
    Status::Cancelled,
    Status::RolledBack,
];

/// The label of every tenant that was not opted in.
pub const OTHER_TENANT: &str = "other";

#[derive(Clone)]
pub struct EngineMetrics {
    pub submitted: IntCounterVec,
    pub finished: IntCounterVec,
    pub workflow_duration: HistogramVec,
    pub step_duration: HistogramVec,
    pub step_retries: IntCounterVec,
    pub queue_depth: IntGauge,
    pub queue_oldest_wait: Gauge,
    pub running: IntGauge,
    pub active_tenants: IntGauge,
    pub recovery_seconds: Gauge,
    pub recovered: IntGauge,
    pub quarantined: IntCounterVec,
    pub timers_fired: IntCounterVec,
    pub tenant_submitted: IntCounterVec,
    pub tenant_finished: IntCounterVec,
    tenants: Arc<RwLock<HashSet<String>>>,
    kinds: Arc<RwLock<Vec<String>>>,
}

impl EngineMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = EngineMetrics {
            submitted: IntCounterVec::new(
                Opts::new(
                    "ferry_workflows_submitted_total",
                    "Workflows submitted, by kind.",
                ),
                &["kind"],
            )?,
            finished: IntCounterVec::new(
                Opts::new(
                    "ferry_workflows_finished_total",
                    "Workflows that reached a final status, by kind and outcome (= status).",
                ),
                &["kind", "outcome"],
            )?,
            workflow_duration: HistogramVec::new(
                HistogramOpts::new(
                    "ferry_workflow_duration_seconds",
                    "Time from submission to a final status, by kind and outcome.",
                )
                .buckets(WORKFLOW_SECONDS_BUCKETS.to_vec()),
                &["kind", "outcome"],
            )?,
            step_duration: HistogramVec::new(
                HistogramOpts::new(
                    "ferry_step_duration_seconds",
                    "Duration of one step attempt, by kind, step and outcome.",
                )
                .buckets(STEP_SECONDS_BUCKETS.to_vec()),
                &["kind", "step", "outcome"],
            )?,
            step_retries: IntCounterVec::new(
                Opts::new(
                    "ferry_step_retries_total",
                    "Step attempts that failed and were scheduled again.",
                ),
                &["kind", "step"],
            )?,
            queue_depth: IntGauge::new(
                "ferry_queue_depth",
                "Workflows waiting for their tenant's slot.",
            )?,
            queue_oldest_wait: Gauge::new(
                "ferry_queue_oldest_wait_seconds",
                "How long the oldest waiting workflow has waited.",
            )?,
            running: IntGauge::new(
                "ferry_workflows_running",
                "Workflows whose steps are running now.",
            )?,
            active_tenants: IntGauge::new(
                "ferry_active_tenants",
                "Tenants with a live actor (work queued or running, or recently so).",
            )?,
            recovery_seconds: Gauge::new(
                "ferry_recovery_seconds",
                "Time the last start spent replaying open workflows.",
            )?,
            recovered: IntGauge::new(
                "ferry_recovered_workflows",
                "Open workflows found at the last start.",
            )?,
            quarantined: IntCounterVec::new(
                Opts::new(
                    "ferry_workflows_quarantined_total",
                    "Open workflows left unresumed at start because their events could not be read, by kind.",
                ),
                &["kind"],
            )?,
            timers_fired: IntCounterVec::new(
                Opts::new(
                    "ferry_timers_fired_total",
                    "Durable timers fired, by kind, timer and outcome.",
                ),
                &["kind", "timer", "outcome"],
            )?,
            tenant_submitted: IntCounterVec::new(
                Opts::new(
                    "ferry_tenant_workflows_submitted_total",
                    "Workflows submitted, by opted-in tenant (others: tenant=\"other\") and kind.",
                ),
                &["tenant", "kind"],
            )?,
            tenant_finished: IntCounterVec::new(
                Opts::new(
                    "ferry_tenant_workflows_finished_total",
                    "Workflows finished, by opted-in tenant (others: tenant=\"other\"), kind and outcome.",
                ),
                &["tenant", "kind", "outcome"],
            )?,
            tenants: Arc::default(),
            kinds: Arc::default(),
        };
        registry.register(Box::new(m.submitted.clone()))?;
        registry.register(Box::new(m.finished.clone()))?;
        registry.register(Box::new(m.workflow_duration.clone()))?;
        registry.register(Box::new(m.step_duration.clone()))?;
        registry.register(Box::new(m.step_retries.clone()))?;
        registry.register(Box::new(m.queue_depth.clone()))?;
        registry.register(Box::new(m.queue_oldest_wait.clone()))?;
        registry.register(Box::new(m.running.clone()))?;
        registry.register(Box::new(m.active_tenants.clone()))?;
        registry.register(Box::new(m.recovery_seconds.clone()))?;
        registry.register(Box::new(m.recovered.clone()))?;
        registry.register(Box::new(m.quarantined.clone()))?;
        registry.register(Box::new(m.timers_fired.clone()))?;
        registry.register(Box::new(m.tenant_submitted.clone()))?;
        registry.register(Box::new(m.tenant_finished.clone()))?;
        Ok(m)
    }

    /// Give these tenants series of their own in `ferry_tenant_*`.
    pub fn opt_in_tenants<I: IntoIterator<Item = String>>(&self, tenants: I) {
        self.tenants.write().extend(tenants);
    }

    /// The tenant label of `tenant`: itself if opted in, else `other`.
    pub fn tenant_label<'a>(&self, tenant: &'a str) -> &'a str {
        if self.tenants.read().contains(tenant) {
            tenant
        } else {
            OTHER_TENANT
        }
    }

    /// Create a kind's series at zero, so dashboards and alerts have data for
    /// every registered kind before its first workflow (and rates of a kind
    /// that never failed are 0, not "no data").
    pub fn init_kind(&self, kind: &str, steps: &[&str]) {
        {
            let mut kinds = self.kinds.write();
            if !kinds.iter().any(|k| k == kind) {
                kinds.push(kind.to_owned());
            }
        }
        self.submitted.with_label_values(&[kind]);
        self.quarantined.with_label_values(&[kind]);
        let tenants: Vec<String> = self
            .tenants
            .read()
            .iter()
            .cloned()
            .chain([OTHER_TENANT.to_owned()])
            .collect();
        for tenant in &tenants {
            self.tenant_submitted.with_label_values(&[tenant, kind]);
        }
        for outcome in FINAL_OUTCOMES {
            self.finished.with_label_values(&[kind, outcome.as_str()]);
            for tenant in &tenants {
                self.tenant_finished
                    .with_label_values(&[tenant, kind, outcome.as_str()]);
            }
        }
        for step in steps {
            self.step_retries.with_label_values(&[kind, step]);
        }
    }
}

/// Gauges computed from the event log when Prometheus scrapes, so they are
/// right even when the loops that would update them are stuck (which is
/// what the alerts on them are for):
///
/// - `ferry_workflow_progress_age_seconds{kind}`: time since the running
///   workflow of that kind with the oldest last event recorded anything (a
///   step start, checkpoint, retry or success); 0 when none runs.
/// - `ferry_timer_overdue_seconds`: how far past its due time the oldest
///   unfired durable timer is; 0 when none is due.
/// - `ferry_workflows_open{kind,status}`: workflows not in a final status.
///
/// They see the engine only through what they read: the log (weakly, so a
/// registry outliving the engine does not keep its log open), the clock and
/// the kinds registered so far.
pub(crate) struct LogGauges {
    log: Weak<dyn EventLog>,
    clock: Arc<dyn Clock>,
    kinds: Arc<RwLock<Vec<String>>>,
    progress_age: GaugeVec,
    timer_overdue: Gauge,
    open: prometheus::IntGaugeVec,
}

impl LogGauges {
    pub(crate) fn register(
        metrics: &EngineMetrics,
        log: &Arc<dyn EventLog>,
        clock: Arc<dyn Clock>,
        registry: &Registry,
    ) -> prometheus::Result<()> {
        let gauges = LogGauges {
            log: Arc::downgrade(log),
            clock,
            kinds: metrics.kinds.clone(),
            progress_age: GaugeVec::new(
                Opts::new(
                    "ferry_workflow_progress_age_seconds",
                    "Time since the least recently progressed running workflow of a kind recorded an event (0: none runs).",
                ),
                &["kind"],
            )?,
            timer_overdue: Gauge::new(
                "ferry_timer_overdue_seconds",
                "How far past its due time the oldest unfired durable timer is (0: none is due).",
            )?,
            open: prometheus::IntGaugeVec::new(
                Opts::new(
                    "ferry_workflows_open",
                    "Workflows not in a final status, by kind and status.",
                ),
                &["kind", "status"],
            )?,
        };
        registry.register(Box::new(gauges))
    }

    fn update(&self, log: &dyn EventLog) {
        let now = self.clock.now();
        let age = |t: crate::Timestamp| (now - t).to_std().unwrap_or_default().as_secs_f64();
        let kinds = self.kinds.read().clone();
        let mut progress: HashMap<String, f64> = kinds.iter().map(|k| (k.clone(), 0.0)).collect();
        let mut open: HashMap<(String, Status), i64> = HashMap::new();
        match log.open() {
            Ok(summaries) => {
                for s in summaries {
                    if s.status == Status::Running {
                        let a = progress.entry(s.kind.clone()).or_default();
                        *a = a.max(age(s.updated_at));
                    }
                    *open.entry((s.kind, s.status)).or_default() += 1;
                }
            }
            Err(e) => tracing::warn!(error = %e, "metrics: listing open workflows failed"),
        }
        for (kind, secs) in progress {
            self.progress_age.with_label_values(&[&kind]).set(secs);
        }
        self.open.reset();
        for kind in &kinds {
            self.open
                .with_label_values(&[kind, Status::Running.as_str()]);
            self.open
                .with_label_values(&[kind, Status::Pending.as_str()]);
        }
        for ((kind, status), n) in open {
            self.open
                .with_label_values(&[&kind, status.as_str()])
                .set(n);
        }
        match log.next_timer() {
            Ok(next) => self.timer_overdue.set(
                next.filter(|t| t.due_at < now)
                    .map_or(0.0, |t| age(t.due_at)),
            ),
            Err(e) => tracing::warn!(error = %e, "metrics: reading the next timer failed"),
        }
    }
}

impl Collector for LogGauges {
    fn desc(&self) -> Vec<&Desc> {
        let mut d = self.progress_age.desc();
        d.extend(self.timer_overdue.desc());
        d.extend(self.open.desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        if let Some(log) = self.log.upgrade() {
            self.update(&*log);
        }
        let mut families = self.progress_age.collect();
        families.extend(self.timer_overdue.collect());
        families.extend(self.open.collect());
        families
    }
}
