//! Driving `ferry`'s API-client commands in tests: one command's output
//! and exit code, its `--json` document, and a command left running with
//! a pipe to its stdin whose stderr is watched (for prompts and Ctrl-C).

use super::Ferry;
use serde_json::Value;
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A finished command: exit code, stdout, stderr.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn from(out: Output) -> Ran {
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panic with everything unless it exited 0.
    pub fn ok(self, what: &str) -> Ran {
        assert_eq!(self.code, 0, "{what}: {}", self.describe());
        self
    }

    /// stdout as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("stdout is not one JSON document ({e}): {}", self.describe())
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Ferry {
    /// `ferry ARGS --url <this server>` (the token comes from `--tenant` or
    /// `FERRY_TOKEN` in `args`).
    pub fn client(&self, args: &[&str]) -> Ran {
        let url = self.url("");
        let mut all = args.to_vec();
        all.extend_from_slice(&["--url", &url]);
        Ran::from(self.cli(&all))
    }

    /// `ferry ARGS` with the environment variable `k` set, no `--url`.
    pub fn cli_env(&self, args: &[&str], k: &str, v: &str) -> Ran {
        let out = self
            .command()
            .args(args)
            .env(k, v)
            .stdin(Stdio::null())
            .output()
            .expect("run ferry");
        Ran::from(out)
    }

    /// `ferry ARGS` running, with a pipe to its stdin and its stderr
    /// collected as it comes.
    pub fn spawn_cli(&self, args: &[&str]) -> Running {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ferry");
        let stdin = child.stdin.take();
        let err = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = err.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Running {
            child,
            stdin,
            stderr: err,
        }
    }
}

/// A `ferry` command still running.
pub struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Wait until stderr holds `text` (the n-th time), or panic after `within`.
    pub fn wait_stderr(&mut self, text: &str, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.stderr().matches(text).count() < n {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("exited {status} before {text:?}:\n{}", self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} after {within:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send SIGINT (Ctrl-C) to the command.
    pub fn interrupt(&self) {
        let ok = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -INT failed");
    }

    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Close stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Wait for the end (at most `within`): exit code, stdout, stderr.
    pub fn finish(mut self, within: Duration) -> Ran {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("still running after {within:?}:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            o.read_to_string(&mut stdout).unwrap();
        }
        // The reader thread sees the pipe close once the child is gone.
        let stderr_deadline = Instant::now() + Duration::from_secs(5);
        let mut stderr = self.stderr();
        while Arc::strong_count(&self.stderr) > 1 && Instant::now() < stderr_deadline {
            std::thread::sleep(Duration::from_millis(10));
            stderr = self.stderr();
        }
        Ran {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
        }
    }
}
