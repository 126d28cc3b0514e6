//! `ferry workflows list|show|events|cancel|resume`: the tenant's
//! workflows through the HTTP API — newest first, one workflow's state and
//! its event timeline (`--follow` polls until it ends), and the two
//! actions an operator takes. `--json` prints the API's own documents.

use super::client::{ApiClient, ClientArgs, FINAL};
use super::out;
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum WorkflowsCommand {
    /// List the tenant's workflows, newest first.
    List(ListArgs),
    /// Show one workflow: state, current step, progress, timestamps, error.
    Show(IdArgs),
    /// Show a workflow's event timeline (time, type, step, attempt, error,
    /// next retry).
    Events(EventsArgs),
    /// Cancel a workflow: at once if it waits, at the next safe point if it
    /// runs.
    Cancel(IdArgs),
    /// Resume a failed workflow from its failed step.
    Resume(IdArgs),
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// Only workflows of this kind (export | rehydrate).
    #[arg(long)]
    kind: Option<String>,
    /// Only workflows in this status (e.g. running, failed, completed).
    #[arg(long)]
    status: Option<String>,
    /// At most this many workflows (1..=1000; the server's default is 50).
    #[arg(long)]
    limit: Option<u32>,
    /// Continue after this cursor (the previous page's next cursor).
    #[arg(long, value_name = "CURSOR")]
    after: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Args)]
pub struct IdArgs {
    /// The workflow's id.
    id: String,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Args)]
pub struct EventsArgs {
    /// The workflow's id.
    id: String,
    /// Keep polling and print new events until the workflow ends (NDJSON
    /// with --json).
    #[arg(long, short = 'f')]
    follow: bool,
    #[command(flatten)]
    client: ClientArgs,
}

const TIMEOUT: Duration = Duration::from_secs(30);
/// How often `events --follow` asks for new events.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

pub fn run(cmd: WorkflowsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        WorkflowsCommand::List(a) => list(a),
        WorkflowsCommand::Show(a) => show(a),
        WorkflowsCommand::Events(a) => events(a),
        WorkflowsCommand::Cancel(a) => action(a, "cancel"),
        WorkflowsCommand::Resume(a) => action(a, "resume"),
    }
}

/// A timestamp as a human reads it: `2025-01-02 03:04:05Z`.
fn time(v: &Value) -> String {
    match v.as_str() {
        Some(t) => {
            let t = t.replacen('T', " ", 1);
            // Drop sub-second digits: `...:05.123456Z` → `...:05Z`.
            match (t.find('.'), t.ends_with('Z')) {
                (Some(dot), true) => format!("{}Z", &t[..dot]),
                _ => t,
            }
        }
        None => "-".into(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&a.client, TIMEOUT)?;
    let mut query: Vec<(&str, String)> = vec![];
    if let Some(k) = &a.kind {
        query.push(("kind", k.clone()));
    }
    if let Some(s) = &a.status {
        query.push(("status", s.clone()));
    }
    if let Some(l) = a.limit {
        query.push(("limit", l.to_string()));
    }
    if let Some(c) = &a.after {
        query.push(("after", c.clone()));
    }
    query.push(("order", "desc".into()));
    let page = api
        .send(api.get("/api/v1/workflows").query(&query))?
        .json::<Value>()?;
    if out::json() {
        out::document(&page);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = page["workflows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            vec![
                text(&w["id"]),
                text(&w["kind"]),
                text(&w["status"]),
                time(&w["createdAt"]),
                time(&w["updatedAt"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        eprintln!("no workflows");
    } else {
        println!(
            "{}",
            out::table(&["ID", "KIND", "STATUS", "CREATED", "UPDATED"], &rows, &[])
        );
    }
    if let Some(next) = page["nextCursor"].as_str() {
        eprintln!("more: ferry workflows list --after {next}");
    }
    Ok(ExitCode::SUCCESS)
}

fn show(a: IdArgs) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&a.client, TIMEOUT)?;
    let w = api.get_json(&format!("/api/v1/workflows/{}", a.id))?;
    if out::json() {
        out::document(&w);
    } else {
        print!("{}", describe(&w));
    }
    Ok(ExitCode::SUCCESS)
}

/// A workflow view as `key: value` lines.
fn describe(w: &Value) -> String {
    let mut lines: Vec<(&str, String)> = vec![
        ("id", text(&w["id"])),
        ("tenant", text(&w["tenantId"])),
        ("kind", text(&w["kind"])),
        ("status", text(&w["status"])),
        ("phase", text(&w["phase"])),
    ];
    let step = match (w["currentStep"].as_str(), w["attempt"].as_u64()) {
        (Some(s), Some(n)) => format!("{s} (attempt {n})"),
        (Some(s), None) => s.to_owned(),
        _ => "-".into(),
    };
    lines.push(("current step", step));
    let p = &w["progress"];
    if p.is_object() {
        let pct = p["fraction"].as_f64().unwrap_or(0.0) * 100.0;
        lines.push((
            "progress",
            format!(
                "{pct:.0}% of the step, {} rows, {} bytes",
                p["rows"].as_u64().unwrap_or(0),
                p["bytes"].as_u64().unwrap_or(0)
            ),
        ));
    }
    let done: Vec<String> = w["completedSteps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    lines.push((
        "completed steps",
        if done.is_empty() {
            "-".into()
        } else {
            done.join(", ")
        },
    ));
    if w["retryAt"].is_string() {
        lines.push(("next retry", time(&w["retryAt"])));
    }
    if w["awaitingSignal"].is_string() {
        lines.push(("awaiting", text(&w["awaitingSignal"])));
    }
    if w["cancelRequested"] == true {
        lines.push(("cancel", "requested".into()));
    }
    for (label, key) in [
        ("created", "createdAt"),
        ("started", "startedAt"),
        ("finished", "finishedAt"),
        ("updated", "updatedAt"),
    ] {
        lines.push((label, time(&w[key])));
    }
    lines.push(("requested by", text(&w["requestedBy"])));
    if w["error"].is_object() {
        lines.push((
            "error",
            format!(
                "{}: {}",
                text(&w["error"]["code"]),
                text(&w["error"]["message"])
            ),
        ));
    }
    let width = lines.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    lines
        .iter()
        .map(|(k, v)| format!("{:<width$}  {v}\n", format!("{k}:")))
        .collect()
}

/// The columns of one event in the timeline.
fn event_row(e: &Value) -> Vec<String> {
    let kind = e["type"].as_str().unwrap_or("?");
    let kind = kind.strip_suffix(".v1").unwrap_or(kind);
    let step = ["step", "name", "signal"]
        .iter()
        .find_map(|k| e[*k].as_str())
        .unwrap_or("-");
    let error = ["error", "reason"]
        .iter()
        .find(|k| e[**k].is_object())
        .map(|k| format!("{}: {}", text(&e[*k]["code"]), text(&e[*k]["message"])))
        .unwrap_or_else(|| "-".into());
    let retry = if e["retry_at"].is_string() {
        &e["retry_at"]
    } else {
        &e["retryAt"]
    };
    vec![
        text(&e["seq"]),
        time(&e["at"]),
        kind.to_owned(),
        step.to_owned(),
        e["attempt"].as_u64().map_or("-".into(), |n| n.to_string()),
        error,
        if retry.is_string() {
            time(retry)
        } else {
            "-".into()
        },
    ]
}

const EVENT_HEADERS: [&str; 7] = [
    "SEQ",
    "TIME",
    "TYPE",
    "STEP",
    "ATTEMPT",
    "ERROR",
    "NEXT RETRY",
];

fn events(a: EventsArgs) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&a.client, TIMEOUT)?;
    let path = format!("/api/v1/workflows/{}/events", a.id);
    if !a.follow {
        let page = api.get_json(&path)?;
        if out::json() {
            out::document(&page);
        } else {
            let rows: Vec<Vec<String>> = page["events"]
                .as_array()
                .into_iter()
                .flatten()
                .map(event_row)
                .collect();
            println!("{}", out::table(&EVENT_HEADERS, &rows, &[0, 4]));
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Follow: print each event once, in order. The status is read before
    // the events, so once it is final the events read after it hold the end.
    if !out::json() {
        println!("{}", EVENT_HEADERS.join("  "));
    }
    let mut seen = 0u64;
    loop {
        let w = api.get_json(&format!("/api/v1/workflows/{}", a.id))?;
        let page = api.get_json(&path)?;
        for e in page["events"].as_array().into_iter().flatten() {
            let seq = e["seq"].as_u64().unwrap_or(0);
            if seq <= seen {
                continue;
            }
            seen = seq;
            if out::json() {
                out::line(e);
            } else {
                println!("{}", event_row(e).join("  "));
            }
        }
        let status = w["status"].as_str().unwrap_or("");
        if FINAL.contains(&status) {
            eprintln!("workflow {} ended {status}", a.id);
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(FOLLOW_EVERY);
    }
}

fn action(a: IdArgs, what: &str) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&a.client, TIMEOUT)?;
    let w = api.post_json(&format!("/api/v1/workflows/{}/{what}", a.id), None)?;
    if out::json() {
        out::document(&w);
        return Ok(ExitCode::SUCCESS);
    }
    let status = text(&w["status"]);
    let line = match what {
        "cancel" if w["cancelRequested"] == true && !FINAL.contains(&status.as_str()) => {
            format!(
                "workflow {} {status}: cancel requested; it stops at its next safe point",
                a.id
            )
        }
        _ => format!("workflow {} {status}", a.id),
    };
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}
