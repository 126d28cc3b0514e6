//! The maintenance flag of an embedded (SQLite) tenant: a marker file next
//! to its database, `<tenant>.maintenance`.
//!
//! Rehydration sets it before it deletes anything and clears it once the
//! new data is verified; the platform (and the tenant's application)
//! checks it with [`super::SqliteTenants::in_maintenance`] to keep writers
//! away meanwhile. A file rather than a row in the platform database
//! because it belongs to the tenant's database the way a lock file does:
//! it lives in the same folder, survives restarts, is visible to any
//! process that can see the database, and is removed with it. Setting and
//! clearing are idempotent and durable (the file and its folder are synced).

use std::fs;
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};

/// Extension of the marker file, beside `<tenant>.sqlite`.
pub const MAINTENANCE_FILE_EXTENSION: &str = "maintenance";

/// The marker of the database at `db_path`.
pub(crate) fn marker_path(db_path: &Path) -> PathBuf {
    db_path.with_extension(MAINTENANCE_FILE_EXTENSION)
}

/// Whether the database at `db_path` is under maintenance.
pub(crate) fn is_set(db_path: &Path) -> io::Result<bool> {
    match fs::metadata(marker_path(db_path)) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Create (`on`) or remove the marker, durably.
pub(crate) fn set(db_path: &Path, on: bool) -> io::Result<()> {
    let marker = marker_path(db_path);
    if on {
        let mut file = fs::File::create(&marker)?;
        file.write_all(b"rehydration in progress\n")?;
        file.sync_all()?;
    } else {
        match fs::remove_file(&marker) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    if let Some(dir) = marker.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_is_a_file_beside_the_database_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("acme.sqlite");
        assert_eq!(marker_path(&db), dir.path().join("acme.maintenance"));
        assert!(!is_set(&db).unwrap());
        set(&db, true).unwrap();
        set(&db, true).unwrap();
        assert!(is_set(&db).unwrap());
        set(&db, false).unwrap();
        set(&db, false).unwrap();
        assert!(!is_set(&db).unwrap());
    }
}
