//! The engine's Prometheus metrics. Tenant ids never appear as labels here,
//! so the number of series is bounded by kinds × steps × outcomes.

use prometheus::{
    exponential_buckets, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts,
    Registry,
};

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
    pub timers_fired: IntCounterVec,
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
                .buckets(exponential_buckets(0.01, 2.5, 14)?),
                &["kind", "outcome"],
            )?,
            step_duration: HistogramVec::new(
                HistogramOpts::new(
                    "ferry_step_duration_seconds",
                    "Duration of one step attempt, by kind, step and outcome.",
                )
                .buckets(exponential_buckets(0.001, 3.0, 14)?),
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
            timers_fired: IntCounterVec::new(
                Opts::new(
                    "ferry_timers_fired_total",
                    "Durable timers fired, by kind, timer and outcome.",
                ),
                &["kind", "timer", "outcome"],
            )?,
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
        registry.register(Box::new(m.timers_fired.clone()))?;
        Ok(m)
    }
}
