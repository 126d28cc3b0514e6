//! Where a command's output goes, and its exit code. With `--json` stdout
//! holds exactly one JSON document (or NDJSON in follow modes) and every
//! human line goes to stderr; without it the human result is on stdout.
//! Progress and prompts are always on stderr. Exit codes: 0 ok, 1 refused
//! by the server or failed, 2 usage, 3 server unreachable (130 when a
//! prompt is interrupted).

use serde_json::{json, Value};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static JSON: AtomicBool = AtomicBool::new(false);
/// Whether the command's JSON document is out (a failure after it adds none).
static DOCUMENT_PRINTED: AtomicBool = AtomicBool::new(false);

/// Exit code of a failure the server reported, or of a failed operation.
pub const EXIT_FAILED: u8 = 1;
/// Exit code of a usage error (clap's own is 2 too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the server cannot be reached.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit code after an interrupted prompt (Ctrl-C).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Switch this command to JSON output.
pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// Whether this command prints JSON.
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// The command's one JSON document (pretty) on stdout.
pub fn document(v: &Value) {
    DOCUMENT_PRINTED.store(true, Ordering::Relaxed);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_default()
    );
}

/// One NDJSON line on stdout (follow modes).
pub fn line(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// A human line: stdout, or stderr when stdout is for JSON.
pub fn say(text: impl AsRef<str>) {
    if json() {
        eprintln!("{}", text.as_ref());
    } else {
        println!("{}", text.as_ref());
    }
}

/// A failure the command ends with: why, with its stable code, and the exit
/// code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server answered with its error envelope (4xx/5xx).
    #[error("refused by the server (HTTP {status}): {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer: connection refused, DNS, timeout.
    #[error(
        "cannot reach the ferry server at {url}: {cause}. Is `ferry serve` running there? \
         Set FERRY_URL (or --url) to the server's base URL"
    )]
    Unreachable { url: String, cause: String },
    /// The command line asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),
    /// A local failure with a stable code (e.g. `checksum_mismatch`).
    #[error("{code}: {message}")]
    Failed { code: String, message: String },
}

impl CliError {
    pub fn failed(code: &str, message: impl Into<String>) -> CliError {
        CliError::Failed {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// A workflow that ended without success, from its status body: its
    /// error's code (else `fallback`), "`what` ended <status>`when`: <message>".
    pub fn ended(status: &Value, fallback: &str, what: &str, when: &str) -> CliError {
        let error = &status["error"];
        CliError::failed(
            error["code"].as_str().unwrap_or(fallback),
            format!(
                "{what} ended {}{when}: {}",
                status["status"].as_str().unwrap_or("?"),
                error["message"].as_str().unwrap_or("")
            ),
        )
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Refused { .. } | CliError::Failed { .. } => EXIT_FAILED,
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Unreachable { .. } => EXIT_UNREACHABLE,
        }
    }

    /// The error as the API's envelope.
    pub fn envelope(&self) -> Value {
        let (code, message) = match self {
            CliError::Refused { code, message, .. } | CliError::Failed { code, message } => {
                (code.as_str(), message.clone())
            }
            CliError::Unreachable { .. } => ("unreachable", self.to_string()),
            CliError::Usage(m) => ("usage", m.clone()),
        };
        json!({"error": {"code": code, "message": message}})
    }
}

/// Print a command's failure (stderr; with `--json` also its envelope on
/// stdout, unless the command's one document is already out) and give its
/// exit code.
pub fn report(e: &anyhow::Error) -> u8 {
    let envelope_too = json() && !DOCUMENT_PRINTED.load(Ordering::Relaxed);
    match e.downcast_ref::<CliError>() {
        Some(c) => {
            eprintln!("error: {c}");
            if envelope_too {
                document(&c.envelope());
            }
            c.exit_code()
        }
        None => {
            eprintln!("error: {e:#}");
            if envelope_too {
                document(&json!({"error": {"code": "failed", "message": format!("{e:#}")}}));
            }
            EXIT_FAILED
        }
    }
}

/// An aligned text table: columns padded to their widest cell, the columns
/// in `right` right-aligned (numbers).
pub fn table(headers: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let render = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut line = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if right.contains(&i) {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if i != last {
                    line.push_str(&" ".repeat(pad));
                }
            }
        }
        line
    };
    let mut text = render(headers.to_vec());
    for row in rows {
        text.push('\n');
        text.push_str(&render(row.iter().map(String::as_str).collect()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_text_left_and_numbers_right() {
        let rows = vec![
            vec!["accounts".to_owned(), "7".to_owned(), "x".to_owned()],
            vec!["a".to_owned(), "1234".to_owned(), "yy".to_owned()],
        ];
        let t = table(&["table", "rows", "note"], &rows, &[1]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "table     rows  note");
        assert_eq!(lines[1], "accounts     7  x");
        assert_eq!(lines[2], "a         1234  yy");
    }

    #[test]
    fn exit_codes_follow_the_kind_of_failure() {
        let refused = CliError::Refused {
            status: 404,
            code: "not_found".into(),
            message: "workflow not found".into(),
        };
        assert_eq!(refused.exit_code(), 1);
        assert_eq!(refused.envelope()["error"]["code"], "not_found");
        let down = CliError::Unreachable {
            url: "http://127.0.0.1:9".into(),
            cause: "connection refused".into(),
        };
        assert_eq!(down.exit_code(), 3);
        assert!(down.to_string().contains("FERRY_URL"));
        assert_eq!(CliError::Usage("x".into()).exit_code(), 2);
    }
}
