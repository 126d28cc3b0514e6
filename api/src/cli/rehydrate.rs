//! `ferry rehydrate BUNDLE` (or `--export-id ID`, or `--attach ID` for one
//! already submitted): upload a bundle through the HTTP API — or name one
//! of the tenant's stored exports — show the preview, ask for the typed
//! confirmation (`DELETE`), then follow the rehydration with a progress bar
//! until it ends — verified, or rolled back. Answering anything but
//! `DELETE` cancels the rehydration; nothing was changed by then. Ctrl-C at
//! the prompt asks whether to cancel it; a second Ctrl-C, or the end of
//! input, leaves it waiting and says how to come back to it.

use super::client::{ApiClient, ClientArgs};
use super::out::{self, CliError, EXIT_FAILED, EXIT_INTERRUPTED};
use super::prompt::{Answer, Prompter};
use anyhow::Context;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["bundle", "export_id", "attach"])))]
pub struct RehydrateArgs {
    /// The bundle (`export_<tenant>_<time>.zip`); or give --export-id.
    pub bundle: Option<PathBuf>,
    /// Rehydrate from this stored export of the tenant instead of a bundle file.
    #[arg(long, value_name = "ID")]
    pub export_id: Option<String>,
    /// Come back to a rehydration already submitted (e.g. one left
    /// awaiting confirmation): its preview, the confirmation, its progress.
    #[arg(long, value_name = "ID", conflicts_with_all = ["mode", "tables", "merge_key", "dry_run"])]
    pub attach: Option<String>,
    /// How to write the bundle: replace (default) | merge | partial.
    #[arg(long, default_value = "replace")]
    pub mode: String,
    /// The tables to replace (mode partial) or merge (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    /// Mode merge: merge TABLE by these columns (a unique key) instead of
    /// its primary key. Repeat for more tables.
    #[arg(long, value_name = "TABLE=COL1,COL2", value_parser = parse_merge_key)]
    merge_key: Vec<MergeKey>,
    /// Validate and preview only; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Give the confirmation without a prompt (it must be `DELETE`).
    #[arg(long, value_name = "WORD")]
    pub confirm: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// One `--merge-key TABLE=COL1,COL2`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct MergeKey {
    table: String,
    columns: Vec<String>,
}

/// Parse `TABLE=COL1,COL2`: a table, `=`, one or more columns; no part empty.
fn parse_merge_key(s: &str) -> Result<MergeKey, String> {
    let (table, columns) = s.split_once('=').ok_or_else(|| {
        format!("expected TABLE=COL1,COL2 (e.g. accounts=external_account_id), got {s:?}")
    })?;
    let table = table.trim();
    if table.is_empty() {
        return Err(format!("the table name before '=' is empty in {s:?}"));
    }
    let columns: Vec<String> = columns.split(',').map(|c| c.trim().to_owned()).collect();
    if columns.iter().any(String::is_empty) {
        return Err(format!(
            "every column after '=' must be named (comma-separated, none empty) in {s:?}"
        ));
    }
    Ok(MergeKey {
        table: table.to_owned(),
        columns,
    })
}

/// The merge keys by table; `--merge-key` only with `--mode merge`, and each
/// table at most once (the upload's `mergeKey.<table>` holds one key).
fn merge_keys(args: &RehydrateArgs) -> Result<BTreeMap<String, Vec<String>>, CliError> {
    if !args.merge_key.is_empty() && args.mode != "merge" {
        return Err(CliError::Usage(
            "--merge-key applies only to --mode merge".into(),
        ));
    }
    let mut keys = BTreeMap::new();
    for k in &args.merge_key {
        if keys.insert(k.table.clone(), k.columns.clone()).is_some() {
            let table = &k.table;
            return Err(CliError::Usage(format!(
                "--merge-key names table {table:?} twice; give it once, {table}=COL1,COL2"
            )));
        }
    }
    Ok(keys)
}

impl RehydrateArgs {
    /// A rehydration from one of the tenant's exports, as the demo asks.
    pub fn from_export(export_id: &str, mode: &str, dry_run: bool, confirm: Option<&str>) -> Self {
        RehydrateArgs {
            bundle: None,
            export_id: Some(export_id.to_owned()),
            attach: None,
            mode: mode.to_owned(),
            tables: vec![],
            merge_key: vec![],
            dry_run,
            confirm: confirm.map(str::to_owned),
            client: ClientArgs::default(),
        }
    }
}

/// The creating request: a JSON body naming the export, or the bundle
/// streamed as the body with the options in the query string (`tables` and
/// each `mergeKey.<table>` comma-separated, as the API parses them).
fn create_request(
    api: &ApiClient,
    args: &RehydrateArgs,
    merge_keys: &BTreeMap<String, Vec<String>>,
) -> anyhow::Result<reqwest::blocking::RequestBuilder> {
    let req = api
        .http
        .post(api.url("/api/v1/tenant/rehydrate"))
        .bearer_auth(&api.token);
    if let Some(export_id) = &args.export_id {
        let mut body = json!({"exportId": export_id, "mode": args.mode});
        if !args.tables.is_empty() {
            body["tables"] = json!(args.tables);
        }
        if args.dry_run {
            body["dryRun"] = json!(true);
        }
        if !merge_keys.is_empty() {
            body["mergeKeys"] = json!(merge_keys);
        }
        return Ok(req.json(&body));
    }
    let bundle = args.bundle.as_ref().context("no bundle given")?;
    let file =
        std::fs::File::open(bundle).with_context(|| format!("opening {}", bundle.display()))?;
    let mut query: Vec<(String, String)> = vec![("mode".into(), args.mode.clone())];
    if !args.tables.is_empty() {
        query.push(("tables".into(), args.tables.join(",")));
    }
    if args.dry_run {
        query.push(("dryRun".into(), "true".into()));
    }
    for (table, columns) in merge_keys {
        query.push((format!("mergeKey.{table}"), columns.join(",")));
    }
    Ok(req
        .query(&query)
        .header("Content-Type", "application/zip")
        .body(reqwest::blocking::Body::new(file)))
}

/// Longest the command follows a rehydration.
const WAIT_MAX: Duration = Duration::from_secs(12 * 3600);

/// The preview as an aligned table: the names padded, the counts
/// right-aligned, a `total` line, and the tenant's files when any change.
pub fn preview_table(p: &Value) -> String {
    let count = |v: &Value, k: &str| v[k].as_u64().map_or("-".into(), |n| n.to_string());
    let row = |name: &str, v: &Value| {
        vec![
            name.to_owned(),
            count(v, "willDelete"),
            count(v, "willInsert"),
            count(v, "willUpdate"),
            count(v, "conflicts"),
        ]
    };
    let mut rows: Vec<Vec<String>> = p["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| row(t["table"].as_str().unwrap_or("?"), t))
        .collect();
    rows.push(row("total", p));
    let mut text = out::table(
        &["table", "delete", "insert", "update", "conflicts"],
        &rows,
        &[1, 2, 3, 4],
    );
    let a = &p["assets"];
    if a.is_object() {
        text.push_str(&format!(
            "\nfiles: {} to write ({} bytes), {} to delete ({} bytes), {} unchanged",
            count(a, "willWrite"),
            count(a, "willWriteBytes"),
            count(a, "willDelete"),
            count(a, "willDeleteBytes"),
            count(a, "unchanged"),
        ));
    }
    text
}

/// How a rehydration the command drove ended.
pub enum Ending {
    /// It ran to a final status (`status` says which).
    Finished,
    /// A dry run: the preview, nothing changed.
    DryRun,
    /// Not confirmed: cancelled, nothing changed.
    Cancelled,
    /// Left awaiting confirmation.
    LeftWaiting,
}

/// What [`drive`] saw.
pub struct Outcome {
    pub status: Value,
    pub preview: Option<Value>,
    pub ending: Ending,
    /// Ctrl-C ended the prompt.
    pub interrupted: bool,
}

impl Outcome {
    /// The command's one JSON document: the last status, with the preview.
    pub fn document(&self) -> Value {
        let mut doc = self.status.clone();
        if let Some(obj) = doc.as_object_mut() {
            obj.insert(
                "preview".into(),
                self.preview.clone().unwrap_or(Value::Null),
            );
        }
        doc
    }
}

/// Submit the rehydration `args` describe; its id.
pub fn submit(api: &ApiClient, args: &RehydrateArgs) -> anyhow::Result<String> {
    let merge_keys = merge_keys(args)?;
    api.create_job(create_request(api, args, &merge_keys)?)
}

/// The question the prompt asks, worded for the mode.
fn question(mode: &str) -> String {
    let what = match mode {
        "merge" => "merge the bundle into the tenant's data",
        "partial" => "replace these tables of the tenant",
        _ => "replace the tenant's data",
    };
    format!("Type DELETE to {what} as shown above: ")
}

fn left_waiting(id: &str) -> String {
    format!(
        "rehydration {id} is left awaiting confirmation; nothing was changed. \
         Confirm it later with `ferry rehydrate --attach {id}`, \
         or cancel it with `ferry workflows cancel {id}`"
    )
}

/// Follow rehydration `id` to its preview, print it, get the confirmation
/// (`confirm`, or the prompt), confirm and follow it to its end.
pub fn drive(api: &ApiClient, id: &str, confirm: Option<&str>) -> anyhow::Result<Outcome> {
    let status_path = format!("/api/v1/tenant/rehydrate/{id}/status");
    let s = api.follow(&status_path, &["awaiting_confirmation"], WAIT_MAX)?;
    if s["status"] == "failed" || s["status"] == "cancelled" {
        if s["reportAvailable"] == true {
            eprintln!(
                "row-level report: {}",
                api.url(&format!("/api/v1/tenant/rehydrate/{id}/report"))
            );
        }
        return Err(CliError::ended(
            &s,
            "rehydration_failed",
            &format!("rehydration {id}"),
            " before its confirmation",
        )
        .into());
    }
    let preview = api.get_json(&format!("/api/v1/tenant/rehydrate/{id}/preview"))?;
    out::say(preview_table(&preview));
    let outcome = |status: Value, ending: Ending, interrupted: bool| Outcome {
        status,
        preview: Some(preview.clone()),
        ending,
        interrupted,
    };
    if s["dryRun"] == true || s["status"] == "completed" {
        out::say("dry run: nothing was changed");
        return Ok(outcome(s, Ending::DryRun, false));
    }
    let mode = s["mode"].as_str().unwrap_or("replace").to_owned();
    let cancel = || -> anyhow::Result<Value> {
        api.post_json(&format!("/api/v1/workflows/{id}/cancel"), None)
    };
    match confirm {
        Some("DELETE") => {}
        Some(_) => {
            let after = cancel()?;
            out::say(format!(
                "not confirmed; rehydration {id} cancelled, nothing was changed"
            ));
            return Ok(outcome(after, Ending::Cancelled, false));
        }
        None => {
            let prompter = Prompter::new()?;
            prompter.on_interrupt(format!(
                "stopped following rehydration {id}; it goes on: `ferry workflows show {id}`"
            ));
            loop {
                match prompter.ask(&question(&mode)) {
                    Answer::Line(a) if a == "DELETE" => break,
                    Answer::Line(_) => {
                        let after = cancel()?;
                        out::say(format!(
                            "not confirmed; rehydration {id} cancelled, nothing was changed"
                        ));
                        return Ok(outcome(after, Ending::Cancelled, false));
                    }
                    Answer::Eof => {
                        out::say(format!("no answer (end of input): {}", left_waiting(id)));
                        return Ok(outcome(s, Ending::LeftWaiting, false));
                    }
                    Answer::Interrupted => match prompter.ask("cancel the rehydration? [y/N] ") {
                        Answer::Line(a) if matches!(a.as_str(), "y" | "Y" | "yes") => {
                            let after = cancel()?;
                            out::say(format!("rehydration {id} cancelled; nothing was changed"));
                            return Ok(outcome(after, Ending::Cancelled, true));
                        }
                        Answer::Line(_) => continue,
                        Answer::Eof | Answer::Interrupted => {
                            out::say(left_waiting(id));
                            return Ok(outcome(s, Ending::LeftWaiting, true));
                        }
                    },
                }
            }
        }
    }
    api.post_json(
        &format!("/api/v1/tenant/rehydrate/{id}/confirm"),
        Some(&json!({"confirm": "DELETE"})),
    )?;
    let s = api.follow(&status_path, &[], WAIT_MAX)?;
    Ok(outcome(s, Ending::Finished, false))
}

pub fn run(args: RehydrateArgs) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&args.client, Duration::from_secs(3600))?;
    let id = match &args.attach {
        Some(id) => id.clone(),
        None => {
            let id = submit(&api, &args)?;
            eprintln!("rehydration {id} submitted; validating");
            id
        }
    };
    let o = drive(&api, &id, args.confirm.as_deref())?;
    if out::json() {
        out::document(&o.document());
    } else if matches!(o.ending, Ending::Finished) {
        println!("{}", serde_json::to_string_pretty(&o.status)?);
    }
    let code = match o.ending {
        Ending::DryRun => 0,
        Ending::Finished if o.status["status"] == "completed" => 0,
        _ if o.interrupted => EXIT_INTERRUPTED,
        _ => EXIT_FAILED,
    };
    Ok(ExitCode::from(code))
}
