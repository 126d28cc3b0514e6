//! Named fault-injection points, for tests that drive the real binary.
//!
//! `FERRY_FAILPOINTS="rehydrate.load.inside=error,rehydrate.backup.after=abort"`
//! makes the named points fail: `error` returns a permanent step error with
//! code `injected_fault` (the workflow then fails, or rolls back), `abort`
//! ends the process on the spot with `SIGABRT`, like a crash, so a test can
//! stop ferry at an exact place (before, inside or after a step) and check
//! what a restart makes of it, and `sleep:<ms>` holds the step there (to
//! cancel it, or to show that another workflow waits), and `error@<n>`
//! fails only the n-th time the point is passed in this process (inside a
//! load, whose point is passed after every table: "fail after the n-th
//! table"). Besides the steps'
//! points, the S3 store has `objects.s3.part.after`, passed after each
//! part of a multipart upload. Unset (always, in production) every point is
//! a no-op; the variable is read once.

use ferry_engine::StepError;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The environment variable naming the points.
pub const ENV: &str = "FERRY_FAILPOINTS";

fn points() -> &'static HashMap<String, String> {
    static POINTS: OnceLock<HashMap<String, String>> = OnceLock::new();
    POINTS.get_or_init(|| {
        std::env::var(ENV)
            .unwrap_or_default()
            .split(',')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect()
    })
}

/// How many times `name` has been passed in this process, this one
/// included.
fn passes(name: &str) -> u64 {
    static PASSES: OnceLock<std::sync::Mutex<HashMap<String, u64>>> = OnceLock::new();
    let mut passes = PASSES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let n = passes.entry(name.to_owned()).or_default();
    *n += 1;
    *n
}

/// What a point does when passed.
enum Action {
    Pass,
    Sleep(std::time::Duration),
    Fail(StepError),
}

/// The action of point `name` (aborting the process on the spot for
/// `abort`).
fn action(name: &str) -> Action {
    match points().get(name).map(String::as_str) {
        None => Action::Pass,
        Some(action) if action.starts_with("sleep:") => {
            let ms: u64 = action["sleep:".len()..].parse().unwrap_or(0);
            Action::Sleep(std::time::Duration::from_millis(ms))
        }
        Some(action) if action.starts_with("error@") => {
            let n: u64 = action["error@".len()..].parse().unwrap_or(1);
            if passes(name) == n {
                Action::Fail(StepError::permanent(
                    "injected_fault",
                    format!("failpoint {name} is set to fail on pass {n}"),
                ))
            } else {
                Action::Pass
            }
        }
        Some("abort") => {
            tracing::error!(failpoint = name, "failpoint: aborting the process");
            std::process::abort()
        }
        Some(_) => Action::Fail(StepError::permanent(
            "injected_fault",
            format!("failpoint {name} is set to fail"),
        )),
    }
}

/// Pass the point `name`: `Err` or an abort if it is configured to fail.
pub async fn hit(name: &str) -> Result<(), StepError> {
    match action(name) {
        Action::Pass => Ok(()),
        Action::Sleep(d) => {
            tokio::time::sleep(d).await;
            Ok(())
        }
        Action::Fail(e) => Err(e),
    }
}

/// [`hit`] on a blocking thread (inside a database transaction).
pub fn hit_blocking(name: &str) -> Result<(), StepError> {
    match action(name) {
        Action::Pass => Ok(()),
        Action::Sleep(d) => {
            std::thread::sleep(d);
            Ok(())
        }
        Action::Fail(e) => Err(e),
    }
}
