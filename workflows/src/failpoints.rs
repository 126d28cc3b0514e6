//! Named fault-injection points, for tests that drive the real binary.
//!
//! `FERRY_FAILPOINTS="rehydrate.import.inside=error,rehydrate.delete.after=abort"`
//! makes the named points fail: `error` returns a permanent step error with
//! code `injected_fault` (the workflow then fails, or rolls back), `abort`
//! ends the process on the spot with `SIGABRT`, like a crash, so a test can
//! stop ferry at an exact place (before, inside or after a step) and check
//! what a restart makes of it, and `sleep:<ms>` holds the step there (to
//! cancel it, or to show that another workflow waits). Besides the steps'
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

/// Pass the point `name`: `Err` or an abort if it is configured to fail.
pub async fn hit(name: &str) -> Result<(), StepError> {
    match points().get(name).map(String::as_str) {
        None => Ok(()),
        Some(action) if action.starts_with("sleep:") => {
            let ms: u64 = action["sleep:".len()..].parse().unwrap_or(0);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            Ok(())
        }
        Some("abort") => {
            tracing::error!(failpoint = name, "failpoint: aborting the process");
            std::process::abort()
        }
        Some(_) => Err(StepError::permanent(
            "injected_fault",
            format!("failpoint {name} is set to fail"),
        )),
    }
}
