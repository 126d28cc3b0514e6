//! What the API-client subcommands share: the base URL, the bearer token
//! (given, or minted locally for a tenant), `--json`, and a blocking HTTP
//! client whose failures become [`CliError`]s — the server's envelope
//! (exit 1) or no answer at all (exit 3) — plus following a workflow's
//! status to its end.

use super::out::{self, CliError};
use crate::config::Config;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::blocking::{RequestBuilder, Response};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Where the API is and who we are.
#[derive(clap::Args, Clone, Default)]
pub struct ClientArgs {
    /// Base URL of the API (default: http://FERRY_BIND).
    #[arg(long, env = "FERRY_URL")]
    pub url: Option<String>,
    /// Bearer token (default: one minted locally for --tenant).
    #[arg(long, env = "FERRY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Tenant to mint a local token for when no token is given.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Print machine-readable JSON on stdout (one document; NDJSON when
    /// following); human text goes to stderr.
    #[arg(long)]
    pub json: bool,
}

/// Statuses after which a workflow does nothing more by itself.
pub const FINAL: [&str; 4] = ["completed", "failed", "cancelled", "rolled_back"];

pub struct ApiClient {
    pub http: reqwest::blocking::Client,
    pub base: String,
    pub token: String,
}

impl ApiClient {
    /// The client `args` describe; also switches the output to JSON when
    /// `--json` is given.
    pub fn new(args: &ClientArgs, timeout: Duration) -> anyhow::Result<ApiClient> {
        out::set_json(args.json);
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
                return Err(CliError::Usage(
                    "give --token (or FERRY_TOKEN) or --tenant to mint a local token".into(),
                )
                .into())
            }
        };
        ApiClient::with_token(&base, token, timeout)
    }

    /// A client of the API at `base` with a bearer token.
    pub fn with_token(base: &str, token: String, timeout: Duration) -> anyhow::Result<ApiClient> {
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(ApiClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(&self.token)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(&self.token)
    }

    /// Send `req`; a response with an error status becomes
    /// [`CliError::Refused`], no answer [`CliError::Unreachable`].
    pub fn send(&self, req: RequestBuilder) -> anyhow::Result<Response> {
        let resp = req.send().map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        Err(refused(resp).into())
    }

    /// Send a request that creates a job (an export, a rehydration); the
    /// created job's id.
    pub fn create_job(&self, req: RequestBuilder) -> anyhow::Result<String> {
        let created: Value = self
            .send(req)?
            .json()
            .context("reading the server's answer")?;
        Ok(created["job"]["id"]
            .as_str()
            .context("the answer has no job id")?
            .to_owned())
    }

    /// A request error as the CLI reports it: no connection or no answer in
    /// time is "unreachable" (exit 3).
    pub fn transport_error(&self, e: reqwest::Error) -> anyhow::Error {
        if e.is_connect() || e.is_timeout() || e.is_request() {
            let mut cause = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                cause = s.to_string();
                source = s.source();
            }
            CliError::Unreachable {
                url: self.base.clone(),
                cause,
            }
            .into()
        } else {
            anyhow::Error::new(e).context("talking to the ferry server")
        }
    }

    /// GET a JSON document.
    pub fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        self.json_of(self.get(path))
    }

    /// POST (with a JSON body, if any); the JSON answer.
    pub fn post_json(&self, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let mut req = self.post(path);
        if let Some(b) = body {
            req = req.json(b);
        }
        self.json_of(req)
    }

    fn json_of(&self, req: RequestBuilder) -> anyhow::Result<Value> {
        let resp = self.send(req)?;
        resp.json()
            .map_err(|e| anyhow::anyhow!("reading the server's answer: {e}"))
    }

    /// Follow `status_path` with a progress bar (stderr) until the status is
    /// one of `stop_at` or final; the last status seen.
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
            let done = FINAL.contains(&status.as_str());
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

/// The error envelope of a refused request, as a [`CliError::Refused`].
fn refused(resp: Response) -> CliError {
    let status = resp.status();
    let text = resp.text().unwrap_or_default();
    let envelope: Value = serde_json::from_str(&text).unwrap_or_default();
    let err = &envelope["error"];
    match (err["code"].as_str(), err["message"].as_str()) {
        (Some(code), Some(message)) => CliError::Refused {
            status: status.as_u16(),
            code: code.to_owned(),
            message: message.to_owned(),
        },
        _ => CliError::Refused {
            status: status.as_u16(),
            code: status
                .canonical_reason()
                .unwrap_or("error")
                .to_lowercase()
                .replace(' ', "_"),
            message: text.chars().take(200).collect(),
        },
    }
}
