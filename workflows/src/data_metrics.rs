//! Data metrics shared by every workflow that moves tenant data: rows and
//! bytes exported and imported, bundle sizes, bundles deleted by their
//! expiry timers, and downloads. Export and rehydrate count into the same
//! series (a rehydration's backup is an export of the current data), so
//! dashboards show both without a query per workflow kind.
//!
//! Labels are bounded: profile, import mode, workflow kind, download way;
//! never a tenant. Every known label value is created at 0 when the metrics
//! are registered, so dashboards and alerts have data before the first
//! export or rehydration.
//!
//! Counted once per workflow at its last data step; a crash between doing
//! that step and recording it may count one workflow twice, the usual
//! at-least-once of counters after a restart.
//!
//! For the rehydrate workflow: after its import step verified, call
//! `data.rows_imported.with_label_values(&[mode]).inc_by(rows)` and the same
//! on `bytes_imported`; when its backup is dropped by its retention timer,
//! `data.bundles_expired.with_label_values(&["rehydrate"]).inc()`.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Export profiles (the `profile` label).
pub const PROFILES: [&str; 3] = ["lite", "native", "analytics"];
/// Rehydration modes (the `mode` label).
pub const IMPORT_MODES: [&str; 3] = ["replace", "merge", "partial"];
/// Workflow kinds whose bundles expire (the `kind` label).
pub const BUNDLE_KINDS: [&str; 2] = ["export", "rehydrate"];
/// Ways a bundle is downloaded (the `via` label).
pub const DOWNLOAD_WAYS: [&str; 2] = ["link", "api"];

/// Buckets of `ferry_bundle_size_bytes`: 1 KiB .. 64 GiB, ×4.
fn bundle_size_buckets() -> prometheus::Result<Vec<f64>> {
    prometheus::exponential_buckets(1024.0, 4.0, 14)
}

#[derive(Clone)]
pub struct DataMetrics {
    pub rows_exported: IntCounterVec,
    pub bytes_exported: IntCounterVec,
    pub bundle_size: HistogramVec,
    pub rows_imported: IntCounterVec,
    pub bytes_imported: IntCounterVec,
    pub bundles_expired: IntCounterVec,
    pub downloads: IntCounterVec,
}

fn counter(
    name: &str,
    help: &str,
    label: &str,
    values: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), &[label])?;
    for v in values {
        c.with_label_values(&[v]);
    }
    Ok(c)
}

impl DataMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let bundle_size = HistogramVec::new(
            HistogramOpts::new(
                "ferry_bundle_size_bytes",
                "Size of finished bundles (exports and rehydration backups), by profile.",
            )
            .buckets(bundle_size_buckets()?),
            &["profile"],
        )?;
        for p in PROFILES {
            bundle_size.with_label_values(&[p]);
        }
        let m = DataMetrics {
            rows_exported: counter(
                "ferry_rows_exported_total",
                "Rows exported by finished exports and rehydration backups, by profile.",
                "profile",
                &PROFILES,
            )?,
            bytes_exported: counter(
                "ferry_bytes_exported_total",
                "Bundle bytes written by finished exports and rehydration backups, by profile.",
                "profile",
                &PROFILES,
            )?,
            bundle_size,
            rows_imported: counter(
                "ferry_rows_imported_total",
                "Rows imported by verified rehydrations, by mode.",
                "mode",
                &IMPORT_MODES,
            )?,
            bytes_imported: counter(
                "ferry_bytes_imported_total",
                "Bundle bytes imported by verified rehydrations, by mode.",
                "mode",
                &IMPORT_MODES,
            )?,
            bundles_expired: counter(
                "ferry_bundles_expired_total",
                "Bundles and backups deleted by their expiry timer, by workflow kind.",
                "kind",
                &BUNDLE_KINDS,
            )?,
            downloads: counter(
                "ferry_bundle_downloads_total",
                "Bundle downloads served, by way (link: the emailed link; api: the download endpoint).",
                "via",
                &DOWNLOAD_WAYS,
            )?,
        };
        registry.register(Box::new(m.rows_exported.clone()))?;
        registry.register(Box::new(m.bytes_exported.clone()))?;
        registry.register(Box::new(m.bundle_size.clone()))?;
        registry.register(Box::new(m.rows_imported.clone()))?;
        registry.register(Box::new(m.bytes_imported.clone()))?;
        registry.register(Box::new(m.bundles_expired.clone()))?;
        registry.register(Box::new(m.downloads.clone()))?;
        Ok(m)
    }
}
