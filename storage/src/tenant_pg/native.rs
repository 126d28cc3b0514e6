//! The `native` profile: the tenant in PostgreSQL's own formats.
//!
//! **Schema and database mode** run `pg_dump --format=custom` on the
//! snapshot's own instant (`--snapshot=<pg_export_snapshot() id>`), limited
//! to the tenant's schema (`--schema`) or covering the tenant's database.
//! The child's stdout is copied straight into the caller's writer through a
//! fixed buffer, never collected; stderr is kept (bounded) for the error
//! message. The password, if the URL has one, reaches the child through
//! `PGPASSWORD`, not its command line. Restore with
//! `pg_restore --dbname=<db> tenant.dump` (`--no-owner` to a different role).
//!
//! **Row mode** has no `pg_dump` equivalent: `pg_dump` cannot filter rows,
//! and dumping the shared tables would leak every other tenant. The native
//! file is therefore a plain SQL script, `tenant.sql` (format
//! `pg-copy-script`), that `psql` restores:
//!
//! ```text
//! SET client_encoding = 'UTF8'; SET standard_conforming_strings = on; ...
//! SET row_security = off;
//! BEGIN;
//! SELECT pg_catalog.set_config('ferry.tenant', 'acme', true);
//! SET CONSTRAINTS ALL DEFERRED;
//! COPY "public"."accounts" ("tenant_id", "id", ...) FROM stdin;
//! acme\t1\t...                       (tab-separated, as COPY writes it)
//! \.
//! ...                                  (every table, in foreign-key order)
//! SELECT pg_catalog.setval(...);       (sequences never move backwards)
//! COMMIT;
//! ```
//!
//! It holds data only — the tenant's rows of every shared table, read from
//! the snapshot with the same bound tenant filter as the other profiles, in
//! COPY text format (PostgreSQL's own text of each value, so it restores
//! exactly). Generated columns are left out (the server recomputes them).
//! Restore into a database that has the shared tables and none of the
//! tenant's rows, as a role that may bypass row-level security (the script
//! turns `row_security` off so a role that may not fails loudly instead of
//! silently skipping rows): `psql -v ON_ERROR_STOP=1 -d <db> -f tenant.sql`.
//! The script is one transaction, so a failed restore leaves nothing behind.

use super::conn::{qualified, quote_ident, quote_literal, split_password, write_error};
use super::snapshot::{select_sql, PgSnapshot};
use ferry_workflows::ports::tenant::NativeInfo;
use ferry_workflows::ports::PortError;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// Bytes of `pg_dump`'s stderr kept for the error message.
const STDERR_BYTES_MAX: usize = 64 * 1024;
/// Copy buffer between `pg_dump` and the output.
const COPY_BUFFER_BYTES: usize = 256 * 1024;

/// `format` of a `pg_dump --format=custom` file.
pub const PG_DUMP_FORMAT: &str = "pg_dump-custom";
/// Entry name of the custom-format dump.
pub const PG_DUMP_FILE: &str = "tenant.dump";
/// `format` of the row-mode script.
pub const ROW_SCRIPT_FORMAT: &str = "pg-copy-script";
/// Entry name of the row-mode script.
pub const ROW_SCRIPT_FILE: &str = "tenant.sql";

/// Run `pg_dump` on the exported snapshot `snapshot_id` of the database at
/// `url`, limited to `schema` if given, streaming its output to `out`.
pub(crate) fn pg_dump(
    program: &Path,
    url: &str,
    snapshot_id: &str,
    schema: Option<&str>,
    out: &mut dyn Write,
) -> Result<NativeInfo, PortError> {
    let (url, password) = split_password(url);
    let mut command = Command::new(program);
    command
        .arg("--format=custom")
        .arg("--no-password")
        .arg(format!("--snapshot={snapshot_id}"));
    if let Some(schema) = schema {
        // `--schema` takes a pattern; inside double quotes every character
        // is literal, which is exactly an SQL quoted identifier.
        command.arg(format!("--schema={}", quote_ident(schema)));
    }
    command
        .arg(format!("--dbname={url}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    let mut child = command.spawn().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            PortError::permanent(
                "pg_dump_missing",
                format!(
                    "{} was not found (install the PostgreSQL client tools)",
                    program.display()
                ),
            )
        } else {
            PortError::retryable("pg_dump_failed", format!("starting pg_dump: {e}"))
        }
    })?;

    // Drain stderr on its own thread: a child blocked on a full stderr pipe
    // would never finish stdout.
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let room = STDERR_BYTES_MAX.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
            }
            kept
        })
    });

    let copied = match child.stdout.take() {
        Some(mut stdout) => copy(&mut stdout, out),
        None => Err(Copy::Read(io::Error::other("pg_dump has no stdout"))),
    };
    if copied.is_err() {
        // We started it, and nothing will read its output any more.
        let _ = child.kill();
    }
    let status = child.wait();
    let stderr = stderr
        .and_then(|h| h.join().ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();

    match copied {
        Err(Copy::Write(e)) => return Err(write_error(e)),
        Err(Copy::Read(e)) => {
            return Err(PortError::retryable(
                "pg_dump_failed",
                format!("reading pg_dump's output: {e}"),
            ))
        }
        Ok(()) => {}
    }
    let status = status
        .map_err(|e| PortError::retryable("pg_dump_failed", format!("waiting for pg_dump: {e}")))?;
    if !status.success() {
        return Err(pg_dump_error(&stderr, status.code()));
    }
    out.flush().map_err(write_error)?;
    Ok(NativeInfo {
        format: PG_DUMP_FORMAT.to_owned(),
        file_name: PG_DUMP_FILE.to_owned(),
    })
}

enum Copy {
    Read(io::Error),
    Write(io::Error),
}

fn copy(from: &mut impl Read, to: &mut dyn Write) -> Result<(), Copy> {
    let mut buf = vec![0u8; COPY_BUFFER_BYTES];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Copy::Read(e)),
        };
        to.write_all(&buf[..n]).map_err(Copy::Write)?;
    }
}

/// The code and message for a failed `pg_dump`: its first error line, with
/// any echoed SQL (`Query was: ...`) left out, since messages reach clients.
fn pg_dump_error(stderr: &str, code: Option<i32>) -> PortError {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("Query was"))
        .collect();
    let first = lines
        .iter()
        .find(|l| l.contains("error:"))
        .or(lines.first())
        .copied()
        .unwrap_or("no error output");
    let message = format!(
        "pg_dump exited with {}: {first}",
        code.map_or("a signal".to_owned(), |c| c.to_string())
    );
    let lower = stderr.to_ascii_lowercase();
    if lower.contains("server version mismatch")
        || lower.contains("aborting because of server version")
    {
        PortError::permanent("pg_dump_version", message)
    } else if lower.contains("password authentication failed")
        || lower.contains("no pg_hba.conf entry")
    {
        PortError::permanent("tenant_db_auth", message)
    } else if lower.contains("lock timeout") || lower.contains("could not obtain lock") {
        PortError::retryable("tenant_db_busy", message)
    } else if lower.contains("snapshot") {
        // The exporting transaction is gone: a new snapshot will do.
        PortError::retryable("tenant_snapshot_lost", message)
    } else if lower.contains("connection") || lower.contains("could not connect") {
        PortError::retryable("tenant_db_unavailable", message)
    } else {
        PortError::retryable("pg_dump_failed", message)
    }
}

/// Write the row-mode script (see the module documentation).
pub(crate) fn row_script(
    snapshot: &mut PgSnapshot,
    out: &mut dyn Write,
) -> Result<NativeInfo, PortError> {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let target = snapshot.target().clone();
    let tenant = snapshot.tenant().clone();
    let column = target.tenant_column.clone().unwrap_or_default();
    let tables = snapshot.introspected().tables.clone();
    let sequences = snapshot.introspected().sequences.clone();
    let last_values = snapshot.sequences().to_vec();

    let header = format!(
        "-- ferry native dump of tenant {tenant} (row isolation)\n\
         -- Shared schema {schema}, tenant column {column}: data only, tables in\n\
         -- foreign-key order. Restore into a database that has the tables and\n\
         -- none of the tenant's rows, as a role that bypasses row-level security:\n\
         --   psql -v ON_ERROR_STOP=1 -d <database> -f tenant.sql\n\
         SET client_encoding = 'UTF8';\n\
         SET standard_conforming_strings = on;\n\
         SET DateStyle = 'ISO, YMD';\n\
         SET IntervalStyle = 'iso_8601';\n\
         SET TimeZone = 'UTC';\n\
         SET extra_float_digits = 1;\n\
         SET row_security = off;\n\
         BEGIN;\n\
         SELECT pg_catalog.set_config({setting}, {tenant_literal}, true);\n\
         SET CONSTRAINTS ALL DEFERRED;\n\n",
        schema = quote_ident(&target.schema),
        column = quote_ident(&column),
        setting = quote_literal(super::config::TENANT_SETTING),
        tenant_literal = quote_literal(tenant.as_str()),
    );
    out.write_all(header.as_bytes()).map_err(write_error)?;

    for table in &tables {
        let names = table
            .columns
            .iter()
            .filter(|c| !c.generated)
            .map(|c| quote_ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(
            out,
            "COPY {} ({names}) FROM stdin;",
            qualified(&target.schema, &table.info.name)
        )
        .map_err(write_error)?;
        let (sql, _) = select_sql(&target, &tenant, table, false, None);
        let context = format!("reading table {}", quote_ident(&table.info.name));
        // The server's COPY text is what `COPY ... FROM stdin` reads: each
        // line goes into the script as it is.
        snapshot.stream_lines(&sql, &context, |line| {
            out.write_all(line)
                .and_then(|()| out.write_all(b"\n"))
                .map_err(write_error)
        })?;
        out.write_all(b"\\.\n\n").map_err(write_error)?;
    }

    for (seq, state) in sequences.iter().zip(&last_values) {
        if state.last_value <= 0 {
            continue;
        }
        // Raise the shared sequence to the tenant's largest key, never lower
        // it below what other tenants were handed.
        writeln!(
            out,
            "SELECT pg_catalog.setval({name}::pg_catalog.regclass, GREATEST({value}, (SELECT last_value FROM {seq})), true);",
            name = quote_literal(&seq.qualified_name),
            value = state.last_value,
            seq = seq.qualified_name,
        )
        .map_err(write_error)?;
    }
    out.write_all(b"COMMIT;\n").map_err(write_error)?;
    out.flush().map_err(write_error)?;
    Ok(NativeInfo {
        format: ROW_SCRIPT_FORMAT.to_owned(),
        file_name: ROW_SCRIPT_FILE.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_dump_errors_hide_sql_and_pick_codes() {
        let e = pg_dump_error(
            "pg_dump: error: query failed: ERROR:  invalid snapshot identifier: \"0-1\"\npg_dump: detail: Query was: SET TRANSACTION SNAPSHOT '0-1'\n",
            Some(1),
        );
        assert_eq!(
            (e.code.as_str(), e.retryable),
            ("tenant_snapshot_lost", true)
        );
        assert!(!e.message.contains("SET TRANSACTION"), "{}", e.message);
        let e = pg_dump_error(
            "pg_dump: error: aborting because of server version mismatch",
            Some(1),
        );
        assert_eq!((e.code.as_str(), e.retryable), ("pg_dump_version", false));
    }
}
