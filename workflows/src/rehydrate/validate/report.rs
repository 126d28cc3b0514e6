//! The row-level report: one NDJSON line per failure,
//! `{"code","table","line","column","key","message"}`, that an operator can
//! download to fix the bundle.
//!
//! At most [`super::Limits::report_errors_max`] lines are written; later
//! failures are only counted, so a bundle of a billion bad rows cannot fill
//! the disk. The file is written under a temporary name and renamed when
//! complete, so a repeated attempt never shows a half report.

use super::Rejection;
use serde::Serialize;
use serde_json::Value;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// One line of the report.
#[derive(Clone, Debug, Default, Serialize)]
pub(super) struct Line<'a> {
    pub code: &'static str,
    pub table: Option<&'a str>,
    /// 1-based line of the table file.
    pub line: Option<u64>,
    pub column: Option<&'a str>,
    /// The row's key columns and values, where known.
    pub key: Option<Value>,
    pub message: String,
}

pub(super) struct Report {
    out: BufWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    max: u64,
    written: u64,
    total: u64,
    first: Option<(&'static str, String)>,
}

impl Report {
    pub fn create(path: &Path, max: u64) -> io::Result<Report> {
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
        let tmp = path.with_file_name(tmp_name);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Report {
            out: BufWriter::new(File::create(&tmp)?),
            tmp,
            path: path.to_owned(),
            max,
            written: 0,
            total: 0,
            first: None,
        })
    }

    /// Whether another line would be written (not only counted).
    pub fn has_room(&self) -> bool {
        self.written < self.max
    }

    pub fn record(&mut self, line: Line<'_>) -> io::Result<()> {
        self.total += 1;
        if self.written < self.max {
            serde_json::to_writer(&mut self.out, &line)?;
            self.out.write_all(b"\n")?;
            self.written += 1;
        }
        if self.first.is_none() {
            self.first = Some((line.code, line.message));
        }
        Ok(())
    }

    /// Put the report in place; the rejection of its first failure, if any.
    pub fn finish(self) -> io::Result<Option<Rejection>> {
        let Report {
            out,
            tmp,
            path,
            written,
            total,
            first,
            ..
        } = self;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &path)?;
        Ok(first.map(|(code, message)| {
            let more = match total {
                1 => String::new(),
                n => format!(" (and {} more; see the report)", n - 1),
            };
            Rejection {
                code,
                message: format!("{message}{more}"),
                report_rows: written,
                errors_total: total,
            }
        }))
    }
}

/// Write the report of a bundle-level rejection: its one line. If even
/// that fails, the rejection is returned unchanged (with no report lines).
pub(super) async fn write_single(path: &Path, rejection: Rejection) -> Rejection {
    let path = path.to_owned();
    let r = rejection.clone();
    let written = tokio::task::spawn_blocking(move || {
        let mut report = Report::create(&path, 1)?;
        report.record(Line {
            code: r.code,
            message: r.message,
            ..Line::default()
        })?;
        report.finish()
    })
    .await;
    match written {
        Ok(Ok(Some(r))) => r,
        _ => rejection,
    }
}

/// Write the report of a load that its trial found would fail (see the
/// preview step): one line with the load's code and message (which names
/// the table and the offending value or key). Atomic like every report.
pub fn write_load_failure(path: &Path, code: &str, message: &str) -> io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".trial.tmp");
    let tmp = path.with_file_name(tmp_name);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut out = BufWriter::new(File::create(&tmp)?);
    let line = serde_json::json!({"code": code, "table": null, "line": null, "column": null,
        "key": null, "message": message, "stage": "trial_load"});
    serde_json::to_writer(&mut out, &line)?;
    out.write_all(b"\n")?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}
