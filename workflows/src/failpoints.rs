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
//! table"). Besides the steps' points, the S3 store has
//! `objects.s3.part.after`, passed after each part of a multipart upload.
//!
//! The points exist only in builds with the cargo feature `failpoints`,
//! which the `ferry` package turns on for its tests alone (a
//! dev-dependency feature: `cargo test` builds the binary with it, `cargo
//! build`/`cargo run` do not). In a build without it every point compiles
//! to nothing, and [`configure`] refuses a specification, so a production
//! binary can never be made to fail on purpose. The specification is read
//! with the rest of the configuration (`api/src/config.rs`) and handed to
//! [`configure`] once, before any workflow runs.

use ferry_engine::StepError;
#[cfg(feature = "failpoints")]
use std::collections::HashMap;
#[cfg(feature = "failpoints")]
use std::sync::OnceLock;

/// The environment variable naming the points.
pub const ENV: &str = "FERRY_FAILPOINTS";

/// The configured points, set once by [`configure`].
#[cfg(feature = "failpoints")]
static POINTS: OnceLock<HashMap<String, String>> = OnceLock::new();

/// Arm the points of `spec` (`point=action,…`), once per process. An empty
/// or absent specification arms none. A build without the `failpoints`
/// feature refuses any specification.
#[cfg(feature = "failpoints")]
pub fn configure(spec: Option<&str>) -> Result<(), String> {
    let points = spec
        .unwrap_or_default()
        .split(',')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    // A second call (a command that loads its configuration twice) keeps
    // the first: the points of a process never change.
    let _ = POINTS.set(points);
    Ok(())
}

/// Arm the points of `spec`: a build without the `failpoints` feature has
/// none, so any specification is refused.
#[cfg(not(feature = "failpoints"))]
pub fn configure(spec: Option<&str>) -> Result<(), String> {
    match spec.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(()),
        Some(_) => Err(format!(
            "{ENV} is set, but this build has no failpoints (only test builds have them)"
        )),
    }
}

#[cfg(feature = "failpoints")]
fn points() -> &'static HashMap<String, String> {
    POINTS.get_or_init(HashMap::new)
}

/// How many times `name` has been passed in this process, this one
/// included.
#[cfg(feature = "failpoints")]
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
    #[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
    Sleep(std::time::Duration),
    #[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
    Fail(StepError),
}

/// Without the feature, every point passes.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
fn action(_name: &str) -> Action {
    Action::Pass
}

/// The action of point `name` (aborting the process on the spot for
/// `abort`).
#[cfg(feature = "failpoints")]
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

/// The point that moves the server's clock: `clock.shift_s=90000` makes it
/// read a day and an hour ahead of the wall clock, so a test can restart
/// the real binary "tomorrow" and see what it makes of a 24 h timer.
pub const CLOCK_SHIFT: &str = "clock.shift_s";

/// How far [`CLOCK_SHIFT`] moves the clock (zero unless set; always zero in
/// a build without the feature).
pub fn clock_shift() -> chrono::Duration {
    #[cfg(feature = "failpoints")]
    if let Some(s) = points().get(CLOCK_SHIFT) {
        return chrono::Duration::seconds(s.parse().unwrap_or(0));
    }
    chrono::Duration::zero()
}
