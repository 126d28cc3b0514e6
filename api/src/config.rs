//! Configuration from the environment, with embedded defaults: with no
//! variables set everything runs under `./ferry-data` with no services.
//!
//! This module is the one place that reads the process environment
//! ([`env`]); the adapters take their settings through lookups
//! (`from_lookup(config::env)`) and every variable is in the README's table
//! (both checked by `tests/tidy.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub bind: SocketAddr,
    /// Base of links in emails; defaults to `http://<bind>`.
    pub public_url: String,
    /// Token key; `None`: a random key kept in `<data>/keys/jwt.secret`.
    pub jwt_secret: Option<String>,
    pub exports_per_day_max: u64,
    pub rehydrations_per_day_max: u64,
    /// Largest bundle a rehydration accepts (upload or export).
    pub upload_bytes_max: u64,
    /// Most entries a rehydration bundle may hold (a zip-bomb bound).
    pub bundle_entries_max: usize,
    /// How long a rehydration's backup is kept (and it can be rolled back).
    pub backup_retention: std::time::Duration,
    /// How long a previewed rehydration waits for its confirmation before
    /// it is cancelled, nothing changed.
    pub confirm_deadline: std::time::Duration,
    /// Largest bundle (rows) a rehydration's preview loads as a trial.
    pub trial_rows_max: u64,
    pub bundle_bytes_max: u64,
    /// How long a bundle is kept before its durable timer deletes it.
    pub bundle_ttl: std::time::Duration,
    pub running_per_tenant_max: usize,
    pub analytics_timestamp_column: String,
    /// Deflate level (0–9) of bundle entries: faster against smaller.
    pub deflate_level: u32,
    /// Sender address of notification emails.
    pub mail_from: String,
    /// Worker threads running workflow steps.
    pub step_threads: usize,
    /// How long a tenant's table list is reused by the submit paths.
    pub tables_cache_ttl: std::time::Duration,
    /// Set when this process is one node of a cluster (`FERRY_CLUSTER=on`).
    pub cluster: Option<ClusterSettings>,
}

/// A cluster node's settings.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// `FERRY_NODE_ID`, default `<host>-<pid>`.
    pub node: String,
    /// `FERRY_LEASE_SECS`: a node unheard of for this long is dead and its
    /// tenants are taken over.
    pub lease: std::time::Duration,
}

impl ClusterSettings {
    fn from_env() -> anyhow::Result<Option<ClusterSettings>> {
        match env("FERRY_CLUSTER").as_deref().unwrap_or("off") {
            "off" => return Ok(None),
            "on" => {}
            other => anyhow::bail!("FERRY_CLUSTER={other:?} is not a valid value: on or off"),
        }
        if env("FERRY_EVENT_LOG").as_deref() != Some("postgres") {
            anyhow::bail!(
                "FERRY_CLUSTER=on needs the event log in the shared database: set FERRY_EVENT_LOG=postgres"
            );
        }
        let node = match env("FERRY_NODE_ID") {
            Some(n) => n,
            None => {
                let host = std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "node".to_owned());
                format!("{host}-{}", std::process::id())
            }
        };
        let valid = !node.is_empty()
            && node.len() <= 64
            && node
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !valid {
            anyhow::bail!(
                "FERRY_NODE_ID={node:?} is not a valid node id: 1-64 of A-Z a-z 0-9 . _ -"
            );
        }
        let lease: f64 = env_or("FERRY_LEASE_SECS", 3.0)?;
        if !(0.3..=600.0).contains(&lease) {
            anyhow::bail!("FERRY_LEASE_SECS={lease} is out of range (0.3 to 600)");
        }
        Ok(Some(ClusterSettings {
            node,
            lease: std::time::Duration::from_secs_f64(lease),
        }))
    }
}

/// The variable `name` of the process environment; unset and blank are
/// the same (`None`).
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match env(name) {
        Some(v) => v
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a valid value")),
        None => Ok(default),
    }
}

impl Config {
    pub fn from_env() -> anyhow::Result<Config> {
        let data_dir: PathBuf = env_or("FERRY_DATA_DIR", PathBuf::from("./ferry-data"))?;
        let bind: SocketAddr = env_or("FERRY_BIND", "127.0.0.1:8080".parse().expect("literal"))?;
        let public_url = env_or("FERRY_PUBLIC_URL", format!("http://{bind}"))?;
        // Tests only: a build without the feature refuses the variable.
        ferry_workflows::failpoints::configure(env(ferry_workflows::failpoints::ENV).as_deref())
            .map_err(anyhow::Error::msg)?;
        Ok(Config {
            data_dir,
            bind,
            public_url: public_url.trim_end_matches('/').to_owned(),
            jwt_secret: env("FERRY_JWT_SECRET"),
            exports_per_day_max: env_or("FERRY_EXPORTS_PER_DAY", 50)?,
            rehydrations_per_day_max: env_or("FERRY_REHYDRATIONS_PER_DAY", 20)?,
            upload_bytes_max: env_or("FERRY_UPLOAD_BYTES_MAX", 10 * 1024 * 1024 * 1024)?,
            bundle_entries_max: env_or(
                "FERRY_BUNDLE_ENTRIES_MAX",
                ferry_workflows::rehydrate::validate::Limits::default().entries_max,
            )?,
            backup_retention: std::time::Duration::from_secs(env_or(
                "FERRY_BACKUP_RETENTION_SECS",
                7 * 24 * 3600,
            )?),
            confirm_deadline: std::time::Duration::from_secs(env_or(
                "FERRY_CONFIRM_DEADLINE_SECS",
                24 * 3600,
            )?),
            trial_rows_max: env_or("FERRY_REHYDRATE_TRIAL_ROWS_MAX", 500_000)?,
            bundle_bytes_max: env_or("FERRY_BUNDLE_BYTES_MAX", 10 * 1024 * 1024 * 1024)?,
            bundle_ttl: std::time::Duration::from_secs(env_or("FERRY_BUNDLE_TTL_SECS", 24 * 3600)?),
            running_per_tenant_max: env_or("FERRY_RUNNING_PER_TENANT", 1)?,
            analytics_timestamp_column: env_or("FERRY_ANALYTICS_COLUMN", "created_at".to_owned())?,
            deflate_level: env_or(
                "FERRY_DEFLATE_LEVEL",
                ferry_workflows::bundle::writer::DEFLATE_LEVEL,
            )?
            .min(9),
            mail_from: env_or("FERRY_MAIL_FROM", "ferry <ferry@localhost>".to_owned())?,
            step_threads: env_or("FERRY_STEP_THREADS", 2)?,
            tables_cache_ttl: std::time::Duration::from_secs(env_or(
                "FERRY_TABLES_CACHE_SECS",
                10,
            )?),
            cluster: ClusterSettings::from_env()?,
        })
    }

    /// The server's clock: the wall clock, moved only by the tests'
    /// `clock.shift_s` failpoint (see `ferry_workflows::failpoints`).
    pub fn clock(&self) -> std::sync::Arc<dyn ferry_engine::Clock> {
        std::sync::Arc::new(ferry_engine::ShiftedClock::new(
            ferry_engine::SystemClock,
            ferry_workflows::failpoints::clock_shift(),
        ))
    }

    pub fn events_dir(&self) -> PathBuf {
        self.data_dir.join("events")
    }
    pub fn tenants_dir(&self) -> PathBuf {
        self.data_dir.join("tenants")
    }
    pub fn objects_dir(&self) -> PathBuf {
        self.data_dir.join("objects")
    }
    pub fn assets_dir(&self) -> PathBuf {
        self.objects_dir().join("assets")
    }
    pub fn work_dir(&self) -> PathBuf {
        self.data_dir.join("work")
    }
    /// Work directories of rehydrations.
    pub fn rehydrate_dir(&self) -> PathBuf {
        self.data_dir.join("rehydrate")
    }
    /// Uploaded bundles waiting for their rehydration to take them.
    pub fn uploads_dir(&self) -> PathBuf {
        self.data_dir.join("uploads")
    }
    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }
    pub fn keys_dir(&self) -> PathBuf {
        self.data_dir.join("keys")
    }
    pub fn platform_db(&self) -> PathBuf {
        self.data_dir.join("platform.sqlite")
    }
}
