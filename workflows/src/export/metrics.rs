//! Export counters for `/metrics`: rows and bytes exported, bundle sizes,
//! expiries and downloads, by profile (a bounded label), never by tenant.
//!
//! Counted once per export at its last step and once per fired expiry timer;
//! a crash between doing that step and recording it may count one export
//! twice, which is the usual at-least-once of counters after a restart.

use prometheus::{
    exponential_buckets, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};

#[derive(Clone)]
pub struct ExportMetrics {
    pub rows: IntCounterVec,
    pub bytes: IntCounterVec,
    pub bundle_size: HistogramVec,
    pub expired: IntCounter,
    pub downloads: IntCounterVec,
}

impl ExportMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = ExportMetrics {
            rows: IntCounterVec::new(
                Opts::new(
                    "ferry_export_rows_total",
                    "Rows exported by completed exports, by profile.",
                ),
                &["profile"],
            )?,
            bytes: IntCounterVec::new(
                Opts::new(
                    "ferry_export_bytes_total",
                    "Bundle bytes written by completed exports, by profile.",
                ),
                &["profile"],
            )?,
            bundle_size: HistogramVec::new(
                HistogramOpts::new(
                    "ferry_export_bundle_size_bytes",
                    "Size of finished bundles, by profile.",
                )
                .buckets(exponential_buckets(1024.0, 4.0, 13)?),
                &["profile"],
            )?,
            expired: IntCounter::new(
                "ferry_exports_expired_total",
                "Bundles deleted by their expiry timer.",
            )?,
            downloads: IntCounterVec::new(
                Opts::new(
                    "ferry_export_downloads_total",
                    "Bundle downloads served, by way (link, api).",
                ),
                &["via"],
            )?,
        };
        registry.register(Box::new(m.rows.clone()))?;
        registry.register(Box::new(m.bytes.clone()))?;
        registry.register(Box::new(m.bundle_size.clone()))?;
        registry.register(Box::new(m.expired.clone()))?;
        registry.register(Box::new(m.downloads.clone()))?;
        Ok(m)
    }
}
