//! Shared harness of the end-to-end tests: runs the real `ferry` binary as a
//! child process on a free port with its own data folder, talks to it over
//! HTTP, kills it with SIGKILL and restarts it.

#![allow(dead_code)]

pub mod cli;
pub mod prom;
pub mod service;
pub mod sse;
pub mod transfers;

use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ferry");

/// Variables that select real services; cleared for every child process.
const SERVICE_VARS: [&str; 9] = [
    "DATABASE_URL",
    "FERRY_TENANT_ISOLATION",
    "FERRY_TENANT_ROW_SECURITY",
    "MINIO_ENDPOINT",
    "MINIO_ACCESS_KEY",
    "MINIO_SECRET_KEY",
    "MINIO_REGION",
    "SMTP_URL",
    "FERRY_JWT_SECRET",
];

pub struct Ferry {
    pub data: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    pub client: Client,
    extra_env: Vec<(String, String)>,
    /// The PostgreSQL databases this instance owns (dropped with it).
    pg: Option<PgBackend>,
}

/// The tenant backend of the server under test, from `FERRY_E2E_BACKEND`:
/// `sqlite` (default), `pg-schema`, `pg-database`, `pg-row`, `pg-row-rls`.
/// The same tests run unchanged on each.
pub fn backend() -> String {
    std::env::var("FERRY_E2E_BACKEND").unwrap_or_else(|_| "sqlite".into())
}

/// A fresh platform database (and a name prefix for per-tenant databases)
/// on the PostgreSQL at `DATABASE_URL`, for one `Ferry` instance.
struct PgBackend {
    server: String,
    name: String,
}

/// Run one statement with `psql` on `url`; its unaligned output.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-Atqc", sql])
        .output()
        .expect("psql installed");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl PgBackend {
    fn create(env: &mut Vec<(String, String)>, mode: &str) -> PgBackend {
        let server = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("ferry_e2e_{:016x}", rand_u64());
        psql(&server, &format!("CREATE DATABASE {name}"));
        let base = server
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .unwrap_or(server.clone());
        env.push(("DATABASE_URL".into(), format!("{base}/{name}")));
        let (isolation, rls) = match mode {
            "pg-schema" => ("schema", "off"),
            "pg-database" => ("database", "off"),
            "pg-row" => ("row", "off"),
            "pg-row-rls" => ("row", "on"),
            other => panic!("unknown FERRY_E2E_BACKEND {other}"),
        };
        env.push(("FERRY_TENANT_ISOLATION".into(), isolation.into()));
        // `FERRY_E2E_EVENT_LOG=postgres` runs the same tests with the
        // event log in the platform database too.
        if let Ok(log) = std::env::var("FERRY_E2E_EVENT_LOG") {
            env.push(("FERRY_EVENT_LOG".into(), log));
        }
        env.push(("FERRY_TENANT_ROW_SECURITY".into(), rls.into()));
        // Per-tenant databases are server-wide names: keep them ours.
        env.push((
            "FERRY_TENANT_DATABASE_TEMPLATE".into(),
            format!("{name}_{{id}}"),
        ));
        PgBackend { server, name }
    }
}

impl Drop for PgBackend {
    fn drop(&mut self) {
        let dbs = psql(
            &self.server,
            &format!(
                "SELECT datname FROM pg_database WHERE datname LIKE '{}%'",
                self.name
            ),
        );
        for db in dbs.lines().filter(|l| !l.is_empty()) {
            let _ = Command::new("psql")
                .arg(&self.server)
                .args([
                    "-Atqc",
                    &format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"),
                ])
                .output();
        }
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Ferry {
    /// A data folder and a port, no server yet.
    pub fn new() -> Ferry {
        Ferry::on_backend(&backend())
    }

    /// As [`Ferry::new`], on the tenant backend `backend` whatever
    /// `FERRY_E2E_BACKEND` says (see [`backend`]).
    pub fn on_backend(backend: &str) -> Ferry {
        let mut extra_env = vec![];
        let pg = (backend != "sqlite").then(|| PgBackend::create(&mut extra_env, backend));
        Ferry {
            data: tempfile::tempdir().unwrap(),
            port: free_port(),
            child: None,
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            extra_env,
            pg,
        }
    }

    pub fn env(mut self, k: &str, v: &str) -> Ferry {
        self.extra_env.push((k.into(), v.into()));
        self
    }

    /// The platform database of a PostgreSQL backend.
    pub fn database_url(&self) -> Option<&str> {
        self.extra_env
            .iter()
            .find(|(k, _)| k == "DATABASE_URL")
            .map(|(_, v)| v.as_str())
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        // Only what this instance sets: the test command exports service
        // variables for the adapter tests, and a server under test must not
        // pick them up unless its backend asks for them.
        for var in SERVICE_VARS {
            c.env_remove(var);
        }
        c.env("FERRY_DATA_DIR", self.data.path())
            .env("FERRY_BIND", format!("127.0.0.1:{}", self.port))
            .env("FERRY_LOG", "warn");
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    /// Run a `ferry` subcommand with this instance's data folder.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ferry")
    }

    /// As [`Ferry::cli`], with `input` written to its stdin (then closed):
    /// for commands that prompt, e.g. `rehydrate`'s typed `DELETE`.
    pub fn cli_with_stdin(&self, args: &[&str], input: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ferry");
        // Small input fits the pipe's buffer: no need to read output first.
        // A child that exits without reading (refused arguments) breaks the
        // pipe; its output says why.
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(input.as_bytes());
        drop(stdin);
        child.wait_with_output().expect("run ferry")
    }

    pub fn sample(&self, tenant: &str, scale: u32) {
        let out = self.cli(&["sample", "--tenant", tenant, "--scale", &scale.to_string()]);
        assert!(
            out.status.success(),
            "sample failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn token(&self, tenant: &str, role: &str) -> String {
        let out = self.cli(&[
            "token",
            "--tenant",
            tenant,
            "--role",
            role,
            "--sub",
            &format!("{tenant}-admin"),
            "--email",
            &format!("admin@{tenant}.example"),
        ]);
        assert!(
            out.status.success(),
            "token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Start `ferry serve` and wait until it answers. The health check must
    /// come from our own child (by pid): while our server was down, another
    /// test's server may have taken the port. If the port is taken, move to
    /// a fresh one.
    pub fn start(&mut self) {
        const BIND_ATTEMPTS_MAX: usize = 5;
        for _ in 0..BIND_ATTEMPTS_MAX {
            match self.try_start() {
                Ok(()) => return,
                Err(log)
                    if log.contains("Address already in use") || log.contains("os error 98") =>
                {
                    self.port = free_port();
                }
                Err(log) => panic!("ferry serve failed; log:\n{log}"),
            }
        }
        panic!("no free port after {BIND_ATTEMPTS_MAX} attempts");
    }

    fn try_start(&mut self) -> Result<(), String> {
        assert!(self.child.is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.path().join("server.log"))
            .unwrap();
        let child = self
            .command()
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn ferry serve");
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.client.get(self.url("/healthz")).send() {
                let ours =
                    r.status().is_success() && r.json::<Value>().is_ok_and(|v| v["pid"] == pid);
                if ours {
                    return Ok(());
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!("exited with {status}\n{}", self.server_log()));
            }
            assert!(
                Instant::now() < deadline,
                "ferry serve did not come up; log:\n{}",
                self.server_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The running server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The variables this instance adds to its processes' environment
    /// (its backend's databases among them), for other nodes of a cluster.
    pub fn shared_env(&self) -> Vec<(String, String)> {
        self.extra_env.clone()
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Whether the server process is still running.
    pub fn alive(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// Drop the handle of a server that ended by itself (crashed).
    pub fn forget_child(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// This instance without an environment variable set by `env`.
    pub fn without_env(mut self, k: &str) -> Ferry {
        self.extra_env.retain(|(key, _)| key != k);
        self
    }

    pub fn restart(&mut self) {
        self.kill();
        self.start();
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        let mut r = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().unwrap()
    }

    pub fn post_raw(&self, path: &str, token: &str, body: &str) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
            .unwrap()
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut r = self.client.get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().unwrap()
    }

    /// GET a JSON document; `None` if the server does not answer (it may
    /// have just died) or answers with an error.
    pub fn try_get_json(&self, path: &str, token: &str) -> Option<Value> {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().ok()
    }

    /// POST JSON; `None` if the server does not answer.
    pub fn try_post_json(&self, path: &str, token: &str, body: &Value) -> Option<Response> {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .ok()
    }

    pub fn get_json(&self, path: &str, token: &str) -> Value {
        let r = self.get(path, Some(token));
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().unwrap()
    }

    /// Submit an export; returns its id.
    pub fn export(&self, token: &str, body: Value) -> String {
        let r = self.post("/api/v1/tenant/export", Some(token), &body);
        let status = r.status();
        let v: Value = r.json().unwrap();
        assert_eq!(status, 202, "{v}");
        v["job"]["id"].as_str().unwrap().to_owned()
    }

    pub fn export_status(&self, token: &str, id: &str) -> Value {
        self.get_json(&format!("/api/v1/tenant/export/{id}/status"), token)
    }

    /// Wait until the export has status `want` (panics on another final one).
    pub fn wait_export(&self, token: &str, id: &str, want: &str, within: Duration) -> Value {
        self.wait_status(
            token,
            &format!("/api/v1/tenant/export/{id}/status"),
            want,
            within,
        )
    }

    /// Poll a status endpoint until its `status` is `want` (panics on
    /// another final status or after `within`).
    pub fn wait_status(&self, token: &str, path: &str, want: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let s = self.get_json(path, token);
            let st = s["status"].as_str().unwrap().to_owned();
            if st == want {
                return s;
            }
            let final_ = ["completed", "failed", "cancelled", "rolled_back"].contains(&st.as_str());
            assert!(
                !final_,
                "{path} ended {st}, wanted {want}: {s}\nlog:\n{}",
                self.server_log()
            );
            assert!(
                Instant::now() < deadline,
                "{path} still {st} after {within:?}: {s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// POST raw bytes with a content type.
    pub fn post_bytes(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .unwrap()
    }

    /// Upload a bundle to `POST /api/v1/tenant/rehydrate` followed by
    /// `query` (`""` or e.g. `"?dryRun=true"`).
    pub fn upload_bundle(&self, token: &str, query: &str, bundle: Vec<u8>) -> Response {
        self.post_bytes(
            &format!("/api/v1/tenant/rehydrate{query}"),
            token,
            "application/zip",
            bundle,
        )
    }

    /// Replace the tenant with another sample (another seed): a backend-
    /// neutral way to change every table.
    pub fn resample(&self, tenant: &str, scale: u32, seed: u64) {
        let out = self.cli(&[
            "sample",
            "--tenant",
            tenant,
            "--scale",
            &scale.to_string(),
            "--seed",
            &seed.to_string(),
            "--overwrite",
        ]);
        assert!(
            out.status.success(),
            "sample failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The emails in the outbox, as text.
    pub fn outbox(&self) -> Vec<String> {
        let dir = self.data.path().join("outbox");
        let mut mails: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        mails.sort();
        mails
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    /// Path of an export's bundle in the local object store.
    pub fn bundle_path(&self, tenant: &str, id: &str) -> PathBuf {
        let dir = self
            .data
            .path()
            .join("objects")
            .join("exports")
            .join(tenant)
            .join(id);
        let entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "zip"))
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        entries[0].clone()
    }

    pub fn verify(&self, bundle: &Path) -> std::process::Output {
        self.cli(&["verify", bundle.to_str().unwrap()])
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        // The server first, then its databases.
        self.kill();
        self.pg.take();
    }
}

/// Run a command that must succeed; its stdout. The failure message holds
/// the command, its stdout and its stderr.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Undo quoted-printable soft breaks and find the first ferry download link.
pub fn link_in_email(mail: &str) -> Option<String> {
    let unfolded = mail
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let start = unfolded.find("/dl/")?;
    let rest = &unfolded[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
        .unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

pub fn lite_body() -> Value {
    json!({"profile": "lite", "includeAssets": true})
}

/// Table → content hash, from a bundle's manifest.
pub fn manifest_hashes(bundle: &Path) -> BTreeMap<String, String> {
    let out = Command::new("unzip")
        .args(["-p", bundle.to_str().unwrap(), "manifest.json"])
        .output()
        .expect("unzip");
    assert!(out.status.success());
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    m["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            Some((
                e["table"].as_str()?.to_owned(),
                e["blake3"].as_str().unwrap().to_owned(),
            ))
        })
        .collect()
}

/// A started server with the sample tenants `tenants` (scale 1) and a
/// tenant admin's token for the first.
pub fn started_with(tenants: &[&str]) -> (Ferry, String) {
    let mut f = Ferry::new();
    for tenant in tenants {
        f.sample(tenant, 1);
    }
    f.start();
    let token = f.token(tenants[0], "tenant_admin");
    (f, token)
}

/// Export `tenant` (lite, no assets) and return the export id and its
/// bundle's content hashes: the tenant's content right now.
pub fn content_of(f: &Ferry, token: &str, tenant: &str) -> (String, BTreeMap<String, String>) {
    let id = f.export(token, json!({"profile": "lite"}));
    f.wait_export(token, &id, "completed", Duration::from_secs(180));
    let hashes = manifest_hashes(&f.bundle_path(tenant, &id));
    assert!(!hashes.is_empty());
    (id, hashes)
}
