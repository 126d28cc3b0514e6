//! `ferry rehydrate BUNDLE` (or `--export-id ID`): upload a bundle through
//! the HTTP API — or name one of the tenant's stored exports — show the
//! preview, ask for the typed confirmation (`DELETE`), then follow the
//! rehydration with a progress bar until it ends — verified, or rolled back.
//! Answering anything but `DELETE` cancels the rehydration; nothing was
//! changed by then.

use super::client::{ApiClient, ClientArgs};
use anyhow::Context;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["bundle", "export_id"])))]
pub struct RehydrateArgs {
    /// The bundle (`export_<tenant>_<time>.zip`); or give --export-id.
    bundle: Option<PathBuf>,
    /// Rehydrate from this stored export of the tenant instead of a bundle file.
    #[arg(long, value_name = "ID")]
    export_id: Option<String>,
    /// replace (default) | merge | partial
    #[arg(long, default_value = "replace")]
    mode: String,
    /// The tables to replace (mode partial) or merge (comma-separated).
    #[arg(long, value_delimiter = ',')]
    tables: Vec<String>,
    /// Mode merge: merge TABLE by these columns (a unique key) instead of
    /// its primary key. Repeat for more tables.
    #[arg(long, value_name = "TABLE=COL1,COL2", value_parser = parse_merge_key)]
    merge_key: Vec<MergeKey>,
    /// Validate and preview only; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Give the confirmation without a prompt (it must be `DELETE`).
    #[arg(long)]
    confirm: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
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
fn merge_keys(args: &RehydrateArgs) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    if !args.merge_key.is_empty() && args.mode != "merge" {
        anyhow::bail!("--merge-key applies only to --mode merge");
    }
    let mut keys = BTreeMap::new();
    for k in &args.merge_key {
        if keys.insert(k.table.clone(), k.columns.clone()).is_some() {
            let table = &k.table;
            anyhow::bail!(
                "--merge-key names table {table:?} twice; give it once, {table}=COL1,COL2"
            );
        }
    }
    Ok(keys)
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

fn print_preview(p: &Value) {
    // A `Value` ignores widths when displayed: the counts become strings first.
    let row = |name: &str, v: &Value| {
        let n = |k: &str| v[k].to_string();
        println!(
            "{:<32} {:>12} {:>12} {:>12} {:>10}",
            name,
            n("willDelete"),
            n("willInsert"),
            n("willUpdate"),
            n("conflicts")
        );
    };
    println!(
        "{:<32} {:>12} {:>12} {:>12} {:>10}",
        "table", "delete", "insert", "update", "conflicts"
    );
    for t in p["tables"].as_array().into_iter().flatten() {
        row(t["table"].as_str().unwrap_or("?"), t);
    }
    row("total", p);
}

pub fn run(args: RehydrateArgs) -> anyhow::Result<ExitCode> {
    let merge_keys = merge_keys(&args)?;
    let api = ApiClient::new(&args.client, Duration::from_secs(3600))?;
    let resp = create_request(&api, &args, &merge_keys)?
        .send()
        .with_context(|| format!("connecting to {} (is `ferry serve` running?)", api.base))?;
    let status = resp.status();
    let created: Value = resp.json().context("reading the response")?;
    if !status.is_success() {
        eprintln!("rehydration refused ({status}): {}", created["error"]);
        return Ok(ExitCode::from(1));
    }
    let id = created["job"]["id"]
        .as_str()
        .context("no job id")?
        .to_owned();
    println!("rehydration {id} submitted; validating");
    let status_path = format!("/api/v1/tenant/rehydrate/{id}/status");
    let s = api.follow(&status_path, &["awaiting_confirmation"], WAIT_MAX)?;
    if s["status"] == "failed" {
        eprintln!("the bundle was refused: {}", s["error"]);
        if s["reportAvailable"] == true {
            eprintln!(
                "row-level report: {}",
                api.url(&format!("/api/v1/tenant/rehydrate/{id}/report"))
            );
        }
        return Ok(ExitCode::from(1));
    }
    let preview = api.get_json(&format!("/api/v1/tenant/rehydrate/{id}/preview"))?;
    print_preview(&preview);
    if args.dry_run || s["status"] == "completed" {
        println!("dry run: nothing was changed");
        return Ok(ExitCode::SUCCESS);
    }
    let answer = match &args.confirm {
        Some(a) => a.clone(),
        None => {
            print!("Type DELETE to replace the tenant's data as shown above: ");
            std::io::stdout().flush()?;
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim().to_owned()
        }
    };
    if answer != "DELETE" {
        api.http
            .post(api.url(&format!("/api/v1/workflows/{id}/cancel")))
            .bearer_auth(&api.token)
            .send()?;
        println!("not confirmed; rehydration {id} cancelled, nothing was changed");
        return Ok(ExitCode::from(1));
    }
    let resp = api
        .http
        .post(api.url(&format!("/api/v1/tenant/rehydrate/{id}/confirm")))
        .bearer_auth(&api.token)
        .json(&json!({"confirm": "DELETE"}))
        .send()?;
    if !resp.status().is_success() {
        let body: Value = resp.json().unwrap_or_default();
        eprintln!("confirmation refused: {}", body["error"]);
        return Ok(ExitCode::from(1));
    }
    let s = api.follow(&status_path, &[], WAIT_MAX)?;
    println!("{}", serde_json::to_string_pretty(&s)?);
    Ok(if s["status"] == "completed" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
