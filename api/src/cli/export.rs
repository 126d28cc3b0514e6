//! `ferry export`: submit an export through the HTTP API, like any client,
//! and with `--wait` follow it with a progress bar until it ends.

use crate::config::Config;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
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
    /// Base URL of the API (default: http://FERRY_BIND).
    #[arg(long, env = "FERRY_URL")]
    url: Option<String>,
    /// Bearer token (default: one minted locally for --tenant).
    #[arg(long, env = "FERRY_TOKEN")]
    token: Option<String>,
    /// Tenant to mint a local token for when no token is given.
    #[arg(long)]
    tenant: Option<String>,
    /// Idempotency key: the same key returns the same export.
    #[arg(long)]
    idempotency_key: Option<String>,
}

/// Longest a `--wait` follows an export.
const WAIT_MAX: Duration = Duration::from_secs(6 * 3600);

pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    let base = args
        .url
        .clone()
        .unwrap_or_else(|| config.public_url.clone());
    let token = match (&args.token, &args.tenant) {
        (Some(t), _) => t.clone(),
        (None, Some(tenant)) => {
            super::token::mint(&config, tenant, "tenant_admin", "cli", None, 1)?
        }
        (None, None) => {
            anyhow::bail!("give --token (or FERRY_TOKEN) or --tenant to mint a local token")
        }
    };
    let mut body = json!({"profile": args.profile, "includeAssets": args.include_assets});
    if args.from.is_some() || args.to.is_some() {
        body["dateRange"] = json!({"from": args.from, "to": args.to});
    }
    if !args.tables.is_empty() {
        body["tables"] = json!(args.tables);
    }
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut req = client
        .post(format!("{base}/api/v1/tenant/export"))
        .bearer_auth(&token)
        .json(&body);
    if let Some(key) = &args.idempotency_key {
        req = req.header("Idempotency-Key", key);
    }
    let resp = req
        .send()
        .with_context(|| format!("connecting to {base} (is `ferry serve` running?)"))?;
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
    let bar = ProgressBar::new(100);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {pos:>3}% {msg}")?.progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    loop {
        let s: Value = client
            .get(format!("{base}/api/v1/tenant/export/{id}/status"))
            .bearer_auth(&token)
            .send()?
            .json()?;
        bar.set_position(s["progress"].as_u64().unwrap_or(0));
        bar.set_message(format!(
            "{} {}",
            s["status"].as_str().unwrap_or("?"),
            s["currentStep"].as_str().unwrap_or("")
        ));
        match s["status"].as_str() {
            Some("completed") => {
                bar.finish_with_message("completed");
                println!("{}", serde_json::to_string_pretty(&s)?);
                return Ok(ExitCode::SUCCESS);
            }
            Some("failed" | "cancelled" | "rolled_back") => {
                bar.abandon_with_message(s["status"].as_str().unwrap_or("?").to_owned());
                println!("{}", serde_json::to_string_pretty(&s)?);
                return Ok(ExitCode::from(1));
            }
            _ => {}
        }
        if started.elapsed() > WAIT_MAX {
            anyhow::bail!("gave up waiting after {WAIT_MAX:?}; the export goes on");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}
