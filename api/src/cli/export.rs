//! `ferry export`: submit an export through the HTTP API, like any client,
//! and with `--wait` follow it with a progress bar until it ends.

use super::client::{ApiClient, ClientArgs};
use anyhow::Context;
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ExportArgs {
    /// lite | native | analytics
    #[arg(long)]
    profile: String,
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
    #[command(flatten)]
    client: ClientArgs,
    /// Idempotency key: the same key returns the same export.
    #[arg(long)]
    idempotency_key: Option<String>,
}

/// Longest a `--wait` follows an export.
const WAIT_MAX: Duration = Duration::from_secs(6 * 3600);

pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&args.client, Duration::from_secs(30))?;
    let mut body = json!({"profile": args.profile, "includeAssets": args.include_assets});
    if args.from.is_some() || args.to.is_some() {
        body["dateRange"] = json!({"from": args.from, "to": args.to});
    }
    if !args.tables.is_empty() {
        body["tables"] = json!(args.tables);
    }
    let mut req = api
        .http
        .post(api.url("/api/v1/tenant/export"))
        .bearer_auth(&api.token)
        .json(&body);
    if let Some(key) = &args.idempotency_key {
        req = req.header("Idempotency-Key", key);
    }
    let resp = req
        .send()
        .with_context(|| format!("connecting to {} (is `ferry serve` running?)", api.base))?;
    let status = resp.status();
    let created: Value = resp.json().context("reading the response")?;
    if !status.is_success() {
        eprintln!("export refused ({status}): {}", created["error"]);
        return Ok(ExitCode::from(1));
    }
    let id = created["job"]["id"]
        .as_str()
        .context("response has no job id")?
        .to_owned();
    println!("export {id} submitted");
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let s = api.follow(&format!("/api/v1/tenant/export/{id}/status"), &[], WAIT_MAX)?;
    println!("{}", serde_json::to_string_pretty(&s)?);
    Ok(if s["status"] == "completed" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
