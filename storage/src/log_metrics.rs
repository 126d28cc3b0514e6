//! The event logs' metrics (`ferry_eventlog_*`): the same names, buckets and
//! labels whichever log runs (sled, PostgreSQL), so the dashboards and
//! alerts read one set.

use ferry_engine::{AppendRejection, LogError};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};
use std::time::Instant;

/// Buckets of `ferry_eventlog_commit_seconds`: 0.1 ms .. ~1 s.
const COMMIT_SECONDS_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.004, 0.006, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// What an append is answered.
pub(crate) type Outcome = Result<Result<u64, AppendRejection>, LogError>;

#[derive(Clone)]
pub(crate) struct LogMetrics {
    commit_seconds: Histogram,
    batch_size: Histogram,
    appends: IntCounterVec,
}

impl LogMetrics {
    /// The metrics of a log that commits at most `batch_max` appends at once.
    pub fn new(batch_max: usize) -> Result<LogMetrics, LogError> {
        let batch_buckets: Vec<f64> = (0..=batch_max.next_power_of_two().trailing_zeros())
            .map(|p| f64::from(1u32 << p))
            .collect();
        let made = || -> Result<LogMetrics, prometheus::Error> {
            Ok(LogMetrics {
                commit_seconds: Histogram::with_opts(
                    HistogramOpts::new(
                        "ferry_eventlog_commit_seconds",
                        "Time from an append's call to its durable acknowledgement.",
                    )
                    .buckets(COMMIT_SECONDS_BUCKETS.to_vec()),
                )?,
                batch_size: Histogram::with_opts(
                    HistogramOpts::new(
                        "ferry_eventlog_batch_size",
                        "Appends made durable by one group commit.",
                    )
                    .buckets(batch_buckets),
                )?,
                appends: IntCounterVec::new(
                    Opts::new(
                        "ferry_eventlog_appends_total",
                        "Appends answered, by outcome (ok, conflict, duplicate, error).",
                    ),
                    &["outcome"],
                )?,
            })
        };
        made().map_err(|e| LogError::Io(format!("metrics: {e}")))
    }

    /// One group commit made `appends` appends durable (or failed them).
    pub fn batch(&self, appends: usize) {
        self.batch_size.observe(appends as f64);
    }

    /// An append called at `enqueued` is answered `outcome`.
    pub fn answered(&self, outcome: &Outcome, enqueued: Instant) {
        let label = match outcome {
            Ok(Ok(_)) => "ok",
            Ok(Err(AppendRejection::VersionConflict { .. })) => "conflict",
            Ok(Err(AppendRejection::DuplicateIdempotencyKey { .. })) => "duplicate",
            Ok(Err(AppendRejection::Fenced { .. })) => "fenced",
            Err(_) => "error",
        };
        self.appends.with_label_values(&[label]).inc();
        self.commit_seconds
            .observe(enqueued.elapsed().as_secs_f64());
    }

    /// Register in `registry`, with `ferry_eventlog_size_bytes` measured by
    /// `size` when scraped (`None`: the log is gone or could not tell).
    pub fn register(
        &self,
        registry: &Registry,
        size: impl Fn() -> Option<u64> + Send + Sync + 'static,
    ) -> Result<(), prometheus::Error> {
        // Every outcome at 0, so "append errors" queries return 0, not nothing.
        for outcome in ["ok", "conflict", "duplicate", "fenced", "error"] {
            self.appends.with_label_values(&[outcome]);
        }
        registry.register(Box::new(self.commit_seconds.clone()))?;
        registry.register(Box::new(self.batch_size.clone()))?;
        registry.register(Box::new(self.appends.clone()))?;
        registry.register(Box::new(SizeCollector {
            size: Box::new(size),
            gauge: IntGauge::new(
                "ferry_eventlog_size_bytes",
                "Bytes the event log occupies on disk.",
            )?,
        }))
    }
}

/// `ferry_eventlog_size_bytes`, measured when scraped.
struct SizeCollector {
    size: Box<dyn Fn() -> Option<u64> + Send + Sync>,
    gauge: IntGauge,
}

impl Collector for SizeCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        if let Some(bytes) = (self.size)() {
            self.gauge.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        self.gauge.collect()
    }
}
