//! Taking the consistent copy of a tenant's live database that one export
//! reads from.
//!
//! `VACUUM INTO` writes a transactionally consistent copy while the tenant's
//! application keeps writing. It goes to a temporary name and is renamed into
//! place only once complete and synced, so `snapshot.sqlite` either does not
//! exist or is whole. If it already exists the step is being resumed and the
//! existing copy is reused: every table of one export must come from the same
//! instant, even across a crash.

use super::conn::{db_error, io_error, open, OpenMode};
use diesel::connection::SimpleConnection;
use diesel::sql_types::Text;
use diesel::RunQueryDsl;
use ferry_workflows::ports::PortError;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The snapshot's file name inside the workflow's work directory.
pub const SNAPSHOT_FILE: &str = "snapshot.sqlite";
/// Where `VACUUM INTO` writes before the rename.
const SNAPSHOT_TMP_FILE: &str = "snapshot.sqlite.tmp";

/// Return the path of the snapshot in `work_dir`, taking it from `live` first
/// if there is none yet. `tenant_missing` builds the error for a live file
/// that does not exist.
pub(crate) fn ensure_snapshot(
    live: &Path,
    work_dir: &Path,
    busy_timeout_ms: u32,
    tenant_missing: impl Fn() -> PortError,
) -> Result<PathBuf, PortError> {
    let path = work_dir.join(SNAPSHOT_FILE);
    if path.is_file() {
        return Ok(path);
    }
    if !live.is_file() {
        return Err(tenant_missing());
    }
    fs::create_dir_all(work_dir).map_err(|e| io_error("creating the work directory", e))?;

    // A crash during an earlier VACUUM INTO leaves a partial file behind, and
    // VACUUM INTO refuses to write over a non-empty file.
    let tmp = work_dir.join(SNAPSHOT_TMP_FILE);
    remove_if_exists(&tmp)?;
    let tmp_name = sqlite_file_name(&tmp)?;
    {
        let mut conn =
            open(live, OpenMode::ReadWriteExisting { busy_timeout_ms }).map_err(|e| {
                if e.code == "tenant_not_found" {
                    tenant_missing()
                } else {
                    e
                }
            })?;
        // The target is a bound value, not spliced: VACUUM INTO takes any
        // expression.
        diesel::sql_query("VACUUM INTO ?1")
            .bind::<Text, _>(&tmp_name)
            .execute(&mut conn)
            .map_err(|e| db_error("copying the tenant database", e))?;
    }
    {
        // The copy keeps the source's journal mode. A WAL-mode file could not
        // be opened read-only and immutable, so make it a plain file.
        let mut conn = open(&tmp, OpenMode::ReadWriteExisting { busy_timeout_ms })?;
        conn.batch_execute("PRAGMA journal_mode = DELETE;")
            .map_err(|e| db_error("preparing the snapshot", e))?;
    }
    // `durable()` promises the snapshot survives a restart, so it must be on
    // disk before its name is.
    sync_file(&tmp)?;
    fs::rename(&tmp, &path).map_err(|e| io_error("publishing the snapshot", e))?;
    sync_dir(work_dir)?;
    Ok(path)
}

/// The path as SQLite should read it in `VACUUM INTO`: UTF-8, and never
/// mistaken for a `file:` URI.
fn sqlite_file_name(path: &Path) -> Result<String, PortError> {
    let text = path.to_str().ok_or_else(|| {
        PortError::permanent(
            "work_dir_invalid",
            format!("work directory path is not UTF-8: {}", path.display()),
        )
    })?;
    Ok(if path.is_absolute() {
        text.to_owned()
    } else {
        format!("./{text}")
    })
}

fn remove_if_exists(path: &Path) -> Result<(), PortError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("removing a stale snapshot", e)),
    }
}

fn sync_file(path: &Path) -> Result<(), PortError> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_error("syncing the snapshot", e))
}

fn sync_dir(dir: &Path) -> Result<(), PortError> {
    // Directories can be fsynced on Unix; elsewhere opening one fails and
    // the rename's durability is up to the platform.
    if cfg!(unix) {
        fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_error("syncing the work directory", e))?;
    }
    Ok(())
}
