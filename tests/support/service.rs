//! A real server for tests (S3 via s3s-fs, SMTP via aiosmtpd), started by
//! `scripts/services/<name>.sh` in its own state folder and stopped on drop.
//! Shared by the storage adapters' tests and the end-to-end tests, so every
//! test starts services the way an operator would, through the same scripts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Service {
    script: PathBuf,
    pub state: tempfile::TempDir,
    /// The `export NAME=value` lines `start` printed.
    pub env: HashMap<String, String>,
    /// Variables the script is run with (its own settings).
    vars: Vec<(String, String)>,
}

impl Service {
    pub fn start(name: &str) -> Service {
        Service::start_with(name, &[])
    }

    /// `start` with variables for the script (e.g. what Prometheus scrapes).
    pub fn start_with(name: &str, vars: &[(&str, &str)]) -> Service {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../scripts/services/{name}.sh"));
        let state = tempfile::tempdir().unwrap();
        let mut s = Service {
            script,
            state,
            env: HashMap::new(),
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        s.env = s.run("start");
        s
    }

    /// Stop the server; its port and data stay for `restart`.
    pub fn stop(&self) {
        self.run("stop");
    }

    /// Start again on the same port and data folder.
    pub fn restart(&self) {
        self.run("start");
    }

    pub fn var(&self, name: &str) -> &str {
        self.env.get(name).unwrap_or_else(|| {
            panic!(
                "{} printed no {name}: {:?}",
                self.script.display(),
                self.env
            )
        })
    }

    fn run(&self, cmd: &str) -> HashMap<String, String> {
        let out = Command::new("bash")
            .arg(&self.script)
            .arg(cmd)
            .arg("--state")
            .arg(self.state.path())
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.script.display()));
        assert!(
            out.status.success(),
            "{} {cmd} failed ({}):\n{}\n{}",
            self.script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    v.trim_matches(|c| c == '\'' || c == '"').to_owned(),
                )
            })
            .collect()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .arg("--state")
            .arg(self.state.path())
            .output();
    }
}
