//! `ferry export`: submit an export through the HTTP API, like any client;
//! with `--wait` follow it with a progress bar until it ends, and with
//! `--output FILE` then download its bundle (as `ferry download`).

use super::client::{ApiClient, ClientArgs};
use super::download;
use super::out::{self, CliError};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The bundle's profile: lite | native | analytics.
    #[arg(long)]
    profile: String,
    /// Include the tenant's files (assets) in the bundle.
    #[arg(long)]
    include_assets: bool,
    /// Analytics date range start (YYYY-MM-DD).
    #[arg(long)]
    from: Option<String>,
    /// Analytics date range end (YYYY-MM-DD).
    #[arg(long)]
    to: Option<String>,
    /// Only these tables (comma-separated).
    #[arg(long, value_delimiter = ',')]
    tables: Vec<String>,
    /// Wait for the export to finish, showing progress.
    #[arg(long)]
    wait: bool,
    /// Wait for the export, then download its bundle to FILE (checked
    /// against the size and blake3 checksum the server states).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
    /// Idempotency key: the same key returns the same export.
    #[arg(long)]
    idempotency_key: Option<String>,
}

/// Longest a `--wait` follows an export.
const WAIT_MAX: Duration = Duration::from_secs(6 * 3600);

/// Submit an export; its id.
pub fn submit(
    api: &ApiClient,
    body: &Value,
    idempotency_key: Option<&str>,
) -> anyhow::Result<String> {
    let mut req = api.post("/api/v1/tenant/export").json(body);
    if let Some(key) = idempotency_key {
        req = req.header("Idempotency-Key", key);
    }
    api.create_job(req)
}

/// Follow an export to its end; its last status.
pub fn wait(api: &ApiClient, id: &str) -> anyhow::Result<Value> {
    api.follow(&format!("/api/v1/tenant/export/{id}/status"), &[], WAIT_MAX)
}

pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&args.client, Duration::from_secs(30))?;
    let mut body = json!({"profile": args.profile, "includeAssets": args.include_assets});
    if args.from.is_some() || args.to.is_some() {
        body["dateRange"] = json!({"from": args.from, "to": args.to});
    }
    if !args.tables.is_empty() {
        body["tables"] = json!(args.tables);
    }
    let id = submit(&api, &body, args.idempotency_key.as_deref())?;
    if !args.wait && args.output.is_none() {
        if out::json() {
            out::document(&json!({"id": id, "status": "pending"}));
        } else {
            println!("export {id} submitted");
        }
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("export {id} submitted");
    let mut s = wait(&api, &id)?;
    if s["status"] != "completed" {
        if out::json() {
            out::document(&s);
        } else {
            println!("{}", serde_json::to_string_pretty(&s)?);
        }
        return Err(CliError::ended(&s, "export_failed", &format!("export {id}"), "").into());
    }
    if let Some(file) = &args.output {
        let got = download::fetch(&api, &id, Some(file))?;
        s["download"] = got.to_json();
        out::say(format!(
            "downloaded {} ({} bytes, blake3 {})",
            got.path.display(),
            got.size_bytes,
            got.blake3
        ));
    }
    if out::json() {
        out::document(&s);
    } else {
        println!("{}", serde_json::to_string_pretty(&s)?);
    }
    Ok(ExitCode::SUCCESS)
}
