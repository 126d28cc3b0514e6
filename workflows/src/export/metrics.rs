//! The export workflow's view of the shared data metrics
//! (`crate::data_metrics`): rows and bytes exported, bundle sizes by profile,
//! expiries of export bundles and downloads. The handles share their series
//! with `DataMetrics`, so rehydration backups count into the same ones.

use crate::data_metrics::DataMetrics;
use prometheus::{HistogramVec, IntCounter, IntCounterVec};

#[derive(Clone)]
pub struct ExportMetrics {
    pub rows: IntCounterVec,
    pub bytes: IntCounterVec,
    pub bundle_size: HistogramVec,
    pub expired: IntCounter,
    pub downloads: IntCounterVec,
}

impl ExportMetrics {
    pub fn new(data: &DataMetrics) -> Self {
        ExportMetrics {
            rows: data.rows_exported.clone(),
            bytes: data.bytes_exported.clone(),
            bundle_size: data.bundle_size.clone(),
            expired: data
                .bundles_expired
                .with_label_values(&[crate::export::KIND]),
            downloads: data.downloads.clone(),
        }
    }
}
