//! Connecting to PostgreSQL and turning its failures into `PortError`s.
//!
//! As in the SQLite store, two rules hold everywhere because everything goes
//! through here: identifiers are quoted by one function ([`quote_ident`]),
//! and every failure gets one stable code. Connection trouble (refused,
//! reset, server restarting, too many clients) is retryable
//! `tenant_db_unavailable`; a lock or serialization conflict is retryable
//! `tenant_db_busy`; bad credentials are permanent `tenant_db_auth`;
//! anything else is permanent `tenant_db_error`. Messages say what we were
//! doing and what the server said, never the SQL text or a connection URL
//! (URLs may hold passwords, and messages reach API clients).

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::{Connection, ConnectionError, PgConnection};
use ferry_workflows::ports::PortError;

pub(crate) use crate::sql::quote_ident;

/// `"schema"."name"`.
pub(crate) fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// Quote a string literal where there is no bind protocol: a generated SQL
/// *script* (the row-mode native dump) and the tables' `COPY (...) TO
/// STDOUT` reads. Standard-conforming strings are switched on for both (at
/// the top of the script; for the snapshot, `snapshot::configure`), so
/// doubling `'` is the whole rule.
pub(crate) fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Open a connection, adding `connect_timeout` when the URL has none.
/// `missing` is the error for a database that does not exist (the tenant's,
/// or the platform's).
pub(crate) fn connect(
    url: &str,
    connect_timeout_s: u32,
    what: &str,
    missing: impl FnOnce() -> PortError,
) -> Result<PgConnection, PortError> {
    let url = with_connect_timeout(url, connect_timeout_s);
    PgConnection::establish(&url).map_err(|e| connect_error(what, e, missing))
}

fn connect_error(what: &str, e: ConnectionError, missing: impl FnOnce() -> PortError) -> PortError {
    match e {
        ConnectionError::BadConnection(message) => {
            let lower = message.to_ascii_lowercase();
            if lower.contains("database") && lower.contains("does not exist") {
                missing()
            } else if lower.contains("password authentication failed")
                || lower.contains("no pg_hba.conf entry")
                || (lower.contains("role") && lower.contains("does not exist"))
                || lower.contains("permission denied")
            {
                PortError::permanent(
                    "tenant_db_auth",
                    format!("connecting to {what}: {}", message.trim()),
                )
            } else {
                PortError::retryable(
                    "tenant_db_unavailable",
                    format!("connecting to {what}: {}", message.trim()),
                )
            }
        }
        ConnectionError::InvalidConnectionUrl(_) | ConnectionError::InvalidCString(_) => {
            PortError::permanent(
                "tenant_db_config",
                format!("connecting to {what}: the connection URL is invalid"),
            )
        }
        ConnectionError::CouldntSetupConfiguration(e) => {
            db_error(&format!("connecting to {what}"), e)
        }
        other => PortError::retryable(
            "tenant_db_unavailable",
            format!("connecting to {what}: {other}"),
        ),
    }
}

/// Map a diesel error to a `PortError`, with `context` saying what we were
/// doing (never the SQL text).
pub(crate) fn db_error(context: &str, e: DieselError) -> PortError {
    match e {
        DieselError::DatabaseError(kind, info) => {
            let message = format!("{context}: {}", info.message().trim());
            match kind {
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
                    PortError::retryable("tenant_db_unavailable", message)
                }
                DatabaseErrorKind::SerializationFailure => {
                    PortError::retryable("tenant_db_busy", message)
                }
                _ => classify(message),
            }
        }
        other => classify(format!("{context}: {other}")),
    }
}

/// Pick the code from the server's message where diesel has no error kind
/// for it (lock timeouts, administrator shutdowns, out of disk).
fn classify(message: String) -> PortError {
    let lower = message.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    if any(&[
        "lock timeout",
        "deadlock detected",
        "could not obtain lock",
        "could not serialize",
    ]) {
        PortError::retryable("tenant_db_busy", message)
    } else if any(&[
        "terminating connection",
        "server closed the connection",
        "no connection to the server",
        "connection to server",
        "could not receive data",
        "could not send data",
        "the database system is",
        "too many clients",
        "too many connections",
        "connection reset",
        "broken pipe",
        "ssl syscall error",
    ]) {
        PortError::retryable("tenant_db_unavailable", message)
    } else if any(&[
        "no space left",
        "could not write",
        "could not extend",
        "out of memory",
    ]) {
        PortError::retryable("tenant_db_io", message)
    } else if any(&["permission denied"]) {
        PortError::permanent("tenant_db_permission", message)
    } else {
        PortError::permanent("tenant_db_error", message)
    }
}

/// Map a failure to write to the caller's output (the bundle being built).
pub(crate) fn write_error(e: std::io::Error) -> PortError {
    PortError::retryable("output_write_failed", format!("writing table data: {e}"))
}

/// Append `connect_timeout` to a URL that does not set it. Key/value
/// connection strings (`host=... dbname=...`) get it as another pair.
pub(crate) fn with_connect_timeout(url: &str, seconds: u32) -> String {
    if url.contains("connect_timeout") || seconds == 0 {
        return url.to_owned();
    }
    if is_url(url) {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}connect_timeout={seconds}")
    } else {
        format!("{url} connect_timeout={seconds}")
    }
}

fn is_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The URL split into `scheme://authority`, the database path and `?query`.
fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    if !is_url(url) {
        return None;
    }
    let after_scheme = url.find("://")? + 3;
    let rest = &url[after_scheme..];
    let authority_len = rest.find(['/', '?']).unwrap_or(rest.len());
    let base = &url[..after_scheme + authority_len];
    let tail = &rest[authority_len..];
    let (path, query) = match tail.find('?') {
        Some(q) => (&tail[..q], &tail[q..]),
        None => (tail, ""),
    };
    Some((base, path, query))
}

/// The same server and options, another database. Only URLs
/// (`postgres://...`) can be rewritten.
pub fn with_database(url: &str, database: &str) -> Result<String, PortError> {
    let (base, _, query) = split_url(url).ok_or_else(|| {
        PortError::permanent(
            "tenant_db_config",
            "the platform database must be given as a postgres:// URL to derive tenant database URLs",
        )
    })?;
    Ok(format!("{base}/{}{query}", percent_encode(database)))
}

/// The database a URL names, if it names one.
pub fn database_of(url: &str) -> Option<String> {
    let (_, path, _) = split_url(url)?;
    let name = path.strip_prefix('/')?;
    (!name.is_empty()).then(|| percent_decode(name))
}

/// Take the password out of a URL's user info, so a child process gets it
/// through `PGPASSWORD` rather than on its command line (which other local
/// users can read).
pub(crate) fn split_password(url: &str) -> (String, Option<String>) {
    let Some((base, path, query)) = split_url(url) else {
        return (url.to_owned(), None);
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let authority = &base[after_scheme..];
    let Some(at) = authority.rfind('@') else {
        return (url.to_owned(), None);
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return (url.to_owned(), None);
    };
    let password = percent_decode(&userinfo[colon + 1..]);
    let stripped = format!(
        "{}{}{}{path}{query}",
        &base[..after_scheme],
        &userinfo[..colon],
        &authority[at..]
    );
    (stripped, Some(password))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            if let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("order"), r#""order""#);
        assert_eq!(quote_ident(r#"a "b""#), r#""a ""b""""#);
        assert_eq!(qualified("tenant_acme", "t"), r#""tenant_acme"."t""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn urls_are_rewritten_without_losing_options() {
        let url = "postgres://u:p%40ss@db.example:5433/platform?sslmode=require";
        assert_eq!(
            with_database(url, "tenant_acme-2").unwrap(),
            "postgres://u:p%40ss@db.example:5433/tenant_acme-2?sslmode=require"
        );
        assert_eq!(database_of(url).as_deref(), Some("platform"));
        assert_eq!(
            with_database("postgres://h", "x y").unwrap(),
            "postgres://h/x%20y"
        );
        let (stripped, password) = split_password(url);
        assert_eq!(
            stripped,
            "postgres://u@db.example:5433/platform?sslmode=require"
        );
        assert_eq!(password.as_deref(), Some("p@ss"));
        assert_eq!(split_password("postgres://u@h/d").1, None);
        assert_eq!(
            with_connect_timeout("postgres://h/d?a=b", 5),
            "postgres://h/d?a=b&connect_timeout=5"
        );
        assert_eq!(
            with_connect_timeout("host=h dbname=d", 5),
            "host=h dbname=d connect_timeout=5"
        );
    }

    #[test]
    fn lock_timeouts_are_busy_and_shutdowns_unavailable() {
        let busy = classify("locking: canceling statement due to lock timeout".into());
        assert_eq!(
            (busy.code.as_str(), busy.retryable),
            ("tenant_db_busy", true)
        );
        let down = classify("x: terminating connection due to administrator command".into());
        assert_eq!(
            (down.code.as_str(), down.retryable),
            ("tenant_db_unavailable", true)
        );
        let other = classify("x: syntax error".into());
        assert!(!other.retryable);
    }
}
