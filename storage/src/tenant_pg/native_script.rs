//! Reading the data of a native dump as a stream of `COPY` blocks, for
//! restoring it into a tenant inside ferry's own transaction and for
//! counting its rows without restoring it.
//!
//! Both native formats become the same text: the row-mode `tenant.sql`
//! (`native.rs`) already is a psql script of `COPY ... FROM stdin;` blocks,
//! and a `pg_dump --format=custom` file is turned into one by
//! `pg_restore --data-only --file=-`, streamed from the child's stdout. A
//! block is its `COPY "schema"."table" ("a", "b") FROM stdin;` line, one
//! line per row in COPY text format (newlines inside values are escaped),
//! and a `\.` line. Besides blocks only `SELECT pg_catalog.setval('<seq>',
//! <n>, <bool>);` lines are taken (the sequences' values at export time);
//! every other statement of the script is ignored, never executed, so a
//! dump can only ever contribute rows of tables the tenant has.

use ferry_workflows::ports::PortError;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

/// What one line of the script is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Statement {
    /// `COPY <table> (<columns>) FROM stdin;`: the table's unqualified name
    /// and the columns, unquoted. Its rows follow.
    Copy { table: String, columns: Vec<String> },
    /// `SELECT pg_catalog.setval('<sequence>', <value>, <is_called>);`
    SetVal {
        sequence: String,
        value: i64,
        is_called: bool,
    },
}

/// A script being read.
pub(crate) struct Script {
    reader: Box<dyn BufRead>,
    child: Option<Child>,
    line: String,
}

fn invalid(message: impl Into<String>) -> PortError {
    PortError::permanent("native_dump_invalid", message.into())
}

impl Script {
    /// The row-mode script file itself.
    pub(crate) fn open_file(path: &Path) -> Result<Script, PortError> {
        let file = std::fs::File::open(path).map_err(|e| {
            PortError::permanent(
                "native_dump_missing",
                format!("opening the native dump: {e}"),
            )
        })?;
        Ok(Script {
            reader: Box::new(BufReader::with_capacity(256 * 1024, file)),
            child: None,
            line: String::new(),
        })
    }

    /// A custom-format dump, through `pg_restore --data-only --file=-`.
    pub(crate) fn open_custom(pg_restore: &Path, path: &Path) -> Result<Script, PortError> {
        if !path.is_file() {
            return Err(PortError::permanent(
                "native_dump_missing",
                format!("no native dump at {}", path.display()),
            ));
        }
        let mut child = Command::new(pg_restore)
            .arg("--data-only")
            .arg("--file=-")
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                PortError::permanent(
                    "pg_restore_missing",
                    format!("starting {}: {e}", pg_restore.display()),
                )
            })?;
        let stdout: ChildStdout = child.stdout.take().expect("stdout is piped");
        Ok(Script {
            reader: Box::new(BufReader::with_capacity(256 * 1024, stdout)),
            child: Some(child),
            line: String::new(),
        })
    }

    fn read_line(&mut self) -> Result<bool, PortError> {
        self.line.clear();
        let n = self
            .reader
            .read_line(&mut self.line)
            .map_err(|e| invalid(format!("reading the native dump: {e}")))?;
        Ok(n > 0)
    }

    /// The next `COPY` or `setval` statement; `None` at the end.
    pub(crate) fn next_statement(&mut self) -> Result<Option<Statement>, PortError> {
        while self.read_line()? {
            let line = self.line.trim_end();
            if let Some(rest) = line.strip_prefix("COPY ") {
                return parse_copy(rest).map(Some);
            }
            if let Some(rest) = line.strip_prefix("SELECT pg_catalog.setval(") {
                if let Some(statement) = parse_setval(rest) {
                    return Ok(Some(statement));
                }
            }
        }
        self.finish()?;
        Ok(None)
    }

    /// The rows of the block just started, each handed to `row` with its
    /// newline; stops after the `\.` line. Returns the rows.
    pub(crate) fn rows(
        &mut self,
        mut row: impl FnMut(&[u8]) -> Result<(), PortError>,
    ) -> Result<u64, PortError> {
        let mut rows = 0;
        loop {
            if !self.read_line()? {
                return Err(invalid("the native dump ends inside a COPY block"));
            }
            if self.line.trim_end_matches(['\n', '\r']) == "\\." {
                return Ok(rows);
            }
            row(self.line.as_bytes())?;
            rows += 1;
        }
    }

    /// Wait for `pg_restore` and report its failure.
    fn finish(&mut self) -> Result<(), PortError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        let status = child.wait().map_err(|e| {
            PortError::retryable("pg_restore_failed", format!("waiting for pg_restore: {e}"))
        })?;
        if status.success() {
            Ok(())
        } else {
            let first = stderr
                .lines()
                .find(|l| l.contains("error"))
                .unwrap_or("no error output");
            Err(invalid(format!(
                "pg_restore could not read the dump: {}",
                first.trim()
            )))
        }
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        // A restore that stopped early: the child has nobody to write to.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `"schema"."table" ("a", "b") FROM stdin;` (schema optional).
fn parse_copy(rest: &str) -> Result<Statement, PortError> {
    let bad = || {
        invalid(format!(
            "unreadable COPY statement: COPY {}",
            rest.chars().take(80).collect::<String>()
        ))
    };
    let (names, tail) = identifiers(rest, '.').ok_or_else(bad)?;
    let table = names.last().cloned().ok_or_else(bad)?;
    let tail = tail.trim_start();
    let inner = tail.strip_prefix('(').ok_or_else(bad)?;
    let (columns, tail) = identifiers(inner, ',').ok_or_else(bad)?;
    let tail = tail.trim_start().strip_prefix(')').ok_or_else(bad)?;
    if tail.trim() != "FROM stdin;" {
        return Err(bad());
    }
    Ok(Statement::Copy { table, columns })
}

/// A list of identifiers separated by `sep` (quoted with `""` escaping, or
/// plain lowercase words), and what follows the list.
fn identifiers(mut text: &str, sep: char) -> Option<(Vec<String>, &str)> {
    let mut names = Vec::new();
    loop {
        text = text.trim_start();
        if let Some(quoted) = text.strip_prefix('"') {
            let mut name = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                if c == '"' {
                    if quoted[i + 1..].starts_with('"') {
                        name.push('"');
                        chars.next();
                    } else {
                        break i + 1;
                    }
                } else {
                    name.push(c);
                }
            };
            names.push(name);
            text = &quoted[end..];
        } else {
            let end = text
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
                .unwrap_or(text.len());
            if end == 0 {
                return None;
            }
            names.push(text[..end].to_owned());
            text = &text[end..];
        }
        match text.strip_prefix(sep) {
            Some(rest) => text = rest,
            None => return Some((names, text)),
        }
    }
}

/// `'<sequence>', <value>, <true|false>);`
fn parse_setval(rest: &str) -> Option<Statement> {
    let rest = rest.strip_prefix('\'')?;
    let end = rest.find('\'')?;
    let sequence = rest[..end].to_owned();
    let mut parts = rest[end + 1..].trim_start_matches(',').split(',');
    let value = parts.next()?.trim().parse().ok()?;
    let is_called = match parts
        .next()?
        .trim()
        .trim_end_matches(';')
        .trim_end_matches(')')
        .trim()
    {
        "true" => true,
        "false" => false,
        _ => return None,
    };
    Some(Statement::SetVal {
        sequence,
        value,
        is_called,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_and_setval_lines_are_read() {
        assert_eq!(
            parse_copy(r#""tenant_a"."od""d" ("id", line_no, "Mixed Case") FROM stdin;"#).unwrap(),
            Statement::Copy {
                table: "od\"d".into(),
                columns: vec!["id".into(), "line_no".into(), "Mixed Case".into()],
            }
        );
        assert_eq!(
            parse_copy("public.t (a) FROM stdin;").unwrap(),
            Statement::Copy {
                table: "t".into(),
                columns: vec!["a".into()]
            }
        );
        assert!(parse_copy("t (a) TO stdout;").is_err());
        assert_eq!(
            parse_setval("'tenant_acme.accounts_id_seq', 40, true);"),
            Some(Statement::SetVal {
                sequence: "tenant_acme.accounts_id_seq".into(),
                value: 40,
                is_called: true
            })
        );
    }
}
