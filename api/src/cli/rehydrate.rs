//! `ferry rehydrate BUNDLE`: upload a bundle through the HTTP API, show the
//! preview, ask for the typed confirmation (`DELETE`), then follow the
//! rehydration with a progress bar until it ends — verified, or rolled back.
//! Answering anything but `DELETE` cancels the rehydration; nothing was
//! changed by then.

use super::client::{ApiClient, ClientArgs};
use anyhow::Context;
use serde_json::{json, Value};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct RehydrateArgs {
    /// The bundle (`export_<tenant>_<time>.zip`).
    bundle: PathBuf,
    /// replace (default) | merge | partial
    #[arg(long, default_value = "replace")]
    mode: String,
    /// The tables to replace (mode partial) or merge (comma-separated).
    #[arg(long, value_delimiter = ',')]
    tables: Vec<String>,
    /// Validate and preview only; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Give the confirmation without a prompt (it must be `DELETE`).
    #[arg(long)]
    confirm: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

/// Longest the command follows a rehydration.
const WAIT_MAX: Duration = Duration::from_secs(12 * 3600);

fn print_preview(p: &Value) {
    println!(
        "{:<32} {:>12} {:>12} {:>12} {:>10}",
        "table", "delete", "insert", "update", "conflicts"
    );
    for t in p["tables"].as_array().into_iter().flatten() {
        println!(
            "{:<32} {:>12} {:>12} {:>12} {:>10}",
            t["table"].as_str().unwrap_or("?"),
            t["willDelete"],
            t["willInsert"],
            t["willUpdate"],
            t["conflicts"]
        );
    }
    println!(
        "{:<32} {:>12} {:>12} {:>12} {:>10}",
        "total", p["willDelete"], p["willInsert"], p["willUpdate"], p["conflicts"]
    );
}

pub fn run(args: RehydrateArgs) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&args.client, Duration::from_secs(3600))?;
    let file = std::fs::File::open(&args.bundle)
        .with_context(|| format!("opening {}", args.bundle.display()))?;
    let mut query: Vec<(&str, String)> = vec![("mode", args.mode.clone())];
    if !args.tables.is_empty() {
        query.push(("tables", args.tables.join(",")));
    }
    if args.dry_run {
        query.push(("dryRun", "true".into()));
    }
    let resp = api
        .http
        .post(api.url("/api/v1/tenant/rehydrate"))
        .bearer_auth(&api.token)
        .query(&query)
        .header("Content-Type", "application/zip")
        .body(reqwest::blocking::Body::new(file))
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
