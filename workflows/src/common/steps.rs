//! Typed steps: each workflow lists its steps as one enum
//! ([`WorkflowStep`]) whose `match` gives every step its name, its spec and
//! its share of the progress bar, so a step is spelled in one place; each
//! step's recorded output type names its step ([`StepOutput`]), so reading
//! an earlier output ([`output_of`], [`recorded`]) cannot name the wrong
//! step.
//!
//! The names are stored in events: renaming one would leave existing logs
//! with steps no workflow knows. They stay as they are.

use ferry_engine::{StepContext, StepError, StepSpec};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The steps of one workflow, in order.
pub trait WorkflowStep: Copy + Eq + std::fmt::Debug + Send + Sync + 'static {
    /// Every step, in the order they run.
    const ALL: &'static [Self];

    /// The name stored in events (`plan`, `validate`, ...).
    fn name(self) -> &'static str;

    /// Its retry policy, timeout and flags.
    fn spec(self) -> StepSpec;

    /// Its share of the whole workflow in the progress bar (any unit; the
    /// progress divides by the sum over [`Self::ALL`]).
    fn weight(self) -> f64;

    /// The step named `name`, if the workflow has one.
    fn named(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.name() == name)
    }

    /// The specs of every step, in order (what `Workflow::steps` returns).
    fn specs() -> Vec<StepSpec> {
        Self::ALL.iter().map(|s| s.spec()).collect()
    }

    /// Progress in percent, 0–99 (100 only once the caller knows the
    /// workflow completed): the weights of the steps with recorded outputs,
    /// plus the current step's weight times its live fraction.
    fn progress_percent(
        outputs: &BTreeMap<String, Value>,
        current: Option<&str>,
        fraction: Option<f64>,
    ) -> u8 {
        let total: f64 = Self::ALL.iter().map(|s| s.weight()).sum();
        let mut done: f64 = Self::ALL
            .iter()
            .filter(|s| outputs.contains_key(s.name()))
            .map(|s| s.weight())
            .sum();
        if let (Some(step), Some(f)) = (current.and_then(Self::named), fraction) {
            done += step.weight() * f.clamp(0.0, 1.0);
        }
        (100.0 * done / total).clamp(0.0, 99.0) as u8
    }
}

/// The recorded output of one step: the type says which step records it.
pub trait StepOutput: Serialize + DeserializeOwned {
    type Step: WorkflowStep;
    /// The step whose output this is.
    const STEP: Self::Step;
}

/// The recorded output of an earlier step, for a step that needs it: a
/// missing or unreadable output is a permanent error.
pub fn output_of<T: StepOutput>(ctx: &StepContext) -> Result<T, StepError> {
    let step = T::STEP.name();
    let v = ctx.output(step).ok_or_else(|| {
        StepError::permanent(
            "missing_output",
            format!("step {step} has no recorded output"),
        )
    })?;
    serde_json::from_value(v.clone())
        .map_err(|e| StepError::permanent("invalid_output", format!("output of {step}: {e}")))
}

/// The recorded output among a workflow's `outputs`, if there is a readable
/// one (status views, timers).
pub fn recorded<T: StepOutput>(outputs: &BTreeMap<String, Value>) -> Option<T> {
    outputs
        .get(T::STEP.name())
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}
