//! What the API-client subcommands (`export`, `rehydrate`) share: the base
//! URL, the bearer token (given, or minted locally for a tenant) and a
//! blocking HTTP client, plus following a workflow's status to its end.

use crate::config::Config;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Where the API is and who we are.
#[derive(clap::Args, Clone)]
pub struct ClientArgs {
    /// Base URL of the API (default: http://FERRY_BIND).
    #[arg(long, env = "FERRY_URL")]
    pub url: Option<String>,
    /// Bearer token (default: one minted locally for --tenant).
    #[arg(long, env = "FERRY_TOKEN")]
    pub token: Option<String>,
    /// Tenant to mint a local token for when no token is given.
    #[arg(long)]
    pub tenant: Option<String>,
}

pub struct ApiClient {
    pub http: reqwest::blocking::Client,
    pub base: String,
    pub token: String,
}

impl ApiClient {
    pub fn new(args: &ClientArgs, timeout: Duration) -> anyhow::Result<ApiClient> {
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
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .build()?;
        Ok(ApiClient { http, base, token })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .with_context(|| format!("connecting to {} (is `ferry serve` running?)", self.base))?
            .json()?)
    }

    /// Follow `status_path` with a progress bar until the status is one of
    /// `stop_at` or final; the last status seen.
    pub fn follow(
        &self,
        status_path: &str,
        stop_at: &[&str],
        wait_max: Duration,
    ) -> anyhow::Result<Value> {
        let bar = ProgressBar::new(100);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:40}] {pos:>3}% {msg}")?
                .progress_chars("=> "),
        );
        let started = Instant::now();
        loop {
            let s = self.get_json(status_path)?;
            bar.set_position(s["progress"].as_u64().unwrap_or(0));
            let status = s["status"].as_str().unwrap_or("?").to_owned();
            bar.set_message(format!(
                "{status} {}",
                s["currentStep"].as_str().unwrap_or("")
            ));
            let done = matches!(
                status.as_str(),
                "completed" | "failed" | "cancelled" | "rolled_back"
            );
            if done || stop_at.contains(&status.as_str()) {
                if status == "completed" {
                    bar.finish_with_message(status);
                } else {
                    bar.abandon_with_message(status);
                }
                return Ok(s);
            }
            if started.elapsed() > wait_max {
                anyhow::bail!("gave up waiting after {wait_max:?}; the workflow goes on");
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}
