//! Opening tenant SQLite files and turning their failures into `PortError`s.
//!
//! Everything that touches a tenant database goes through here so that two
//! rules hold everywhere: identifiers are quoted by one function
//! ([`quote_ident`]), and every SQLite failure gets one stable code (busy is
//! retryable, a corrupt file is not) instead of each caller guessing.

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use ferry_workflows::ports::PortError;
use std::path::Path;

/// How long a reader waits by default for a writer's lock on the live
/// database before SQLite reports `SQLITE_BUSY` (which we then report as
/// retryable, so the step backs off and tries again).
pub const BUSY_TIMEOUT_MS: u32 = 5_000;

pub(crate) use crate::sql::quote_ident;

/// How a file is opened. SQLite's URI parameters carry the mode, because
/// diesel's `establish` always passes `SQLITE_OPEN_CREATE` and a plain path
/// would silently create a missing tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpenMode {
    /// Read and write an existing file; never create one. Waits this many
    /// milliseconds for another connection's lock.
    ReadWriteExisting { busy_timeout_ms: u32 },
    /// Read and write, creating the file if needed (sample data only).
    Create,
    /// Read-only on a file nobody will ever change again (our snapshot):
    /// `immutable=1` lets SQLite skip locking altogether.
    Immutable,
}

/// Open `path` with diesel in the given mode, mapping failures to `PortError`.
pub(crate) fn open(path: &Path, mode: OpenMode) -> Result<SqliteConnection, PortError> {
    establish(path, mode).map_err(|e| {
        let message = format!("opening {}: {e}", path.display());
        if path.exists() {
            classify(message)
        } else {
            PortError::permanent("tenant_not_found", message)
        }
    })
}

/// Open `path` with diesel in the given mode.
pub(crate) fn establish(
    path: &Path,
    mode: OpenMode,
) -> Result<SqliteConnection, diesel::ConnectionError> {
    let params = match mode {
        OpenMode::ReadWriteExisting { .. } => "mode=rw",
        OpenMode::Create => "mode=rwc",
        OpenMode::Immutable => "mode=ro&immutable=1",
    };
    let url = format!("file:{}?{params}", uri_path(path));
    let mut conn = SqliteConnection::establish(&url)?;
    let busy_timeout_ms = match mode {
        OpenMode::ReadWriteExisting { busy_timeout_ms } => busy_timeout_ms,
        OpenMode::Create => BUSY_TIMEOUT_MS,
        // Nobody else writes an immutable file, so there is no lock to wait for.
        OpenMode::Immutable => return Ok(conn),
    };
    // A tenant's application may be writing right now; wait for its lock
    // rather than failing at the first contended page.
    conn.batch_execute(&format!("PRAGMA busy_timeout = {busy_timeout_ms};"))
        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

/// Percent-encode a filesystem path for an SQLite `file:` URI: `?`, `#` and
/// `%` (and anything else outside the unreserved set) would otherwise be read
/// as URI syntax.
pub(crate) fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for &b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Map a diesel error to a `PortError`, with `context` saying what we were
/// doing (never the SQL text: errors reach API clients).
pub(crate) fn db_error(context: &str, e: diesel::result::Error) -> PortError {
    classify(format!("{context}: {e}"))
}

/// Pick the code from SQLite's message. SQLite reports busy/locked and
/// corruption only through its message text once diesel has wrapped it.
fn classify(message: String) -> PortError {
    let lower = message.to_ascii_lowercase();
    if lower.contains("locked") || lower.contains("busy") {
        PortError::retryable("tenant_db_busy", message)
    } else if lower.contains("malformed") || lower.contains("not a database") {
        PortError::permanent("tenant_db_corrupt", message)
    } else if lower.contains("disk i/o") || lower.contains("database or disk is full") {
        PortError::retryable("tenant_db_io", message)
    } else {
        PortError::permanent("tenant_db_error", message)
    }
}

/// Map a filesystem error (snapshot files, native copy). These are usually
/// transient (disk full, a slow NFS mount), so they are retryable.
pub(crate) fn io_error(context: &str, e: std::io::Error) -> PortError {
    PortError::retryable("tenant_io", format!("{context}: {e}"))
}

/// Map a failure to write to the caller's output (the bundle being built).
pub(crate) fn write_error(e: std::io::Error) -> PortError {
    PortError::retryable("output_write_failed", format!("writing table data: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_embedded_quotes_doubled() {
        assert_eq!(quote_ident("order"), r#""order""#);
        assert_eq!(quote_ident(r#"a "b" c"#), r#""a ""b"" c""#);
        assert_eq!(quote_ident(""), r#""""#);
    }

    #[test]
    fn uri_paths_escape_uri_syntax() {
        assert_eq!(
            uri_path(Path::new("/a b/c?d#e%f.sqlite")),
            "/a%20b/c%3Fd%23e%25f.sqlite"
        );
    }

    #[test]
    fn busy_is_retryable_and_corruption_is_not() {
        assert!(classify("x: database is locked".into()).retryable);
        let corrupt = classify("x: file is not a database".into());
        assert_eq!(
            (corrupt.code.as_str(), corrupt.retryable),
            ("tenant_db_corrupt", false)
        );
    }
}
