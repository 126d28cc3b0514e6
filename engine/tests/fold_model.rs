//! Property test of the fold (`WorkflowState::apply`) against a plain model.
//!
//! Random sequences of commands drive a deliberately simple model of a
//! workflow: a struct with a status, a phase flag, step outputs, failure
//! counts, timers and signals, and its own idea of which command is legal
//! when. Every legal command becomes one real `Event`, folded by the engine;
//! after each one the fold must agree with the model. At every point the test
//! also tries every status-changing event on a copy of the state: those the
//! transition table (`Status::can_transition_to`) forbids must panic in
//! `apply`, and those it allows must not.
//!
//! The model shares nothing with `state.rs` but the event and status types,
//! so a mistake in the fold cannot hide by being copied into its check.

use chrono::{DateTime, Duration, Utc};
use ferry_engine::{Event, Failure, Phase, Status, TenantId, WorkflowId, WorkflowState};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

const STEPS: [&str; 4] = ["plan", "snapshot", "upload", "delete"];
const SIGNALS: [&str; 2] = ["confirm", "approve"];
const TIMERS: [&str; 3] = ["expire", "reminder", "purge"];

#[derive(Clone, Debug)]
enum Cmd {
    Start,
    StepStart(usize),
    StepProgress,
    StepSucceed,
    StepFail { retry: bool },
    AwaitSignal(usize),
    Signal(usize),
    Pause,
    Resume,
    CancelRequest,
    Cancel,
    StartCompensation,
    StepCompensate(usize),
    Complete,
    Fail,
    RollBack,
    ScheduleTimer(usize, i64),
    FireTimer(usize),
}

/// Every command there is (timers with the due offset given), with how
/// often it is picked when legal. Dead ends (cancel, roll back) are rare so
/// most runs travel through many statuses before reaching one.
fn all_commands(due_s: i64) -> Vec<(u32, Cmd)> {
    let mut out = vec![
        (4, Cmd::Start),
        (2, Cmd::StepProgress),
        (8, Cmd::StepSucceed),
        (3, Cmd::StepFail { retry: true }),
        (2, Cmd::StepFail { retry: false }),
        (3, Cmd::Pause),
        (6, Cmd::Resume),
        (1, Cmd::CancelRequest),
        (1, Cmd::Cancel),
        (2, Cmd::StartCompensation),
        (4, Cmd::Complete),
        (3, Cmd::Fail),
        (1, Cmd::RollBack),
    ];
    for i in 0..STEPS.len() {
        out.push((3, Cmd::StepStart(i)));
        out.push((2, Cmd::StepCompensate(i)));
    }
    for i in 0..SIGNALS.len() {
        out.push((2, Cmd::AwaitSignal(i)));
        out.push((6, Cmd::Signal(i)));
    }
    for i in 0..TIMERS.len() {
        out.push((1, Cmd::ScheduleTimer(i, due_s)));
        out.push((2, Cmd::FireTimer(i)));
    }
    out
}

/// The model: what a workflow is, in the plainest terms.
#[derive(Clone, Debug)]
struct Model {
    status: Status,
    compensating: bool,
    outputs: BTreeMap<String, Value>,
    compensated: BTreeMap<String, Value>,
    failures: BTreeMap<String, u32>,
    /// name -> (due, fired)
    timers: BTreeMap<String, (DateTime<Utc>, bool)>,
    current_step: Option<String>,
    retry_at: Option<DateTime<Utc>>,
    cancel_requested: bool,
    awaiting: Option<String>,
    signals: BTreeMap<String, Value>,
    events: u64,
}

fn finished(s: Status) -> bool {
    matches!(
        s,
        Status::Completed | Status::Failed | Status::Cancelled | Status::RolledBack
    )
}

fn failure(code: &str) -> Failure {
    Failure {
        code: code.into(),
        message: format!("{code} (model test)"),
        retryable: code != "fatal",
    }
}

impl Model {
    fn new() -> Model {
        Model {
            status: Status::Pending,
            compensating: false,
            outputs: BTreeMap::new(),
            compensated: BTreeMap::new(),
            failures: BTreeMap::new(),
            timers: BTreeMap::new(),
            current_step: None,
            retry_at: None,
            cancel_requested: false,
            awaiting: None,
            signals: BTreeMap::new(),
            events: 1,
        }
    }

    fn forward_running(&self) -> bool {
        self.status == Status::Running && !self.compensating
    }

    fn clear_step(&mut self) {
        self.current_step = None;
        self.retry_at = None;
    }

    /// The event `cmd` produces now, if the model allows it, and the model
    /// after it. `None` leaves the model untouched.
    fn step(&mut self, cmd: &Cmd, now: DateTime<Utc>, n: u64) -> Option<Event> {
        use Status::*;
        let at = now;
        let event = match cmd {
            Cmd::Start if self.status == Pending => {
                self.status = Running;
                Event::Started { at }
            }
            Cmd::StepStart(i)
                if self.forward_running() || (self.status == Compensating && self.compensating) =>
            {
                self.current_step = Some(STEPS[*i].into());
                self.retry_at = None;
                Event::StepStarted {
                    step: STEPS[*i].into(),
                    attempt: 1 + self.failures.get(STEPS[*i]).copied().unwrap_or(0),
                    at,
                }
            }
            Cmd::StepProgress
                if self.current_step.is_some() && matches!(self.status, Running | Compensating) =>
            {
                Event::StepProgressed {
                    step: self.current_step.clone()?,
                    checkpoint: json!({"table": "orders", "last_key": n}),
                    progress: None,
                    at,
                }
            }
            Cmd::StepSucceed if self.forward_running() && self.current_step.is_some() => {
                let step = self.current_step.clone()?;
                let output = json!({"step": step, "n": n});
                self.outputs.insert(step.clone(), output.clone());
                self.clear_step();
                Event::StepSucceeded { step, output, at }
            }
            Cmd::StepFail { retry }
                if self.current_step.is_some() && matches!(self.status, Running | Compensating) =>
            {
                let step = self.current_step.clone()?;
                let attempt = {
                    let count = self.failures.entry(step.clone()).or_insert(0);
                    *count += 1;
                    *count
                };
                let retry_at = retry.then(|| now + Duration::seconds(5));
                self.retry_at = retry_at;
                Event::StepFailed {
                    step,
                    attempt,
                    error: failure(if *retry { "flaky" } else { "fatal" }),
                    retry_at,
                    at,
                }
            }
            Cmd::AwaitSignal(i) if self.forward_running() => {
                self.status = AwaitingConfirmation;
                self.awaiting = Some(SIGNALS[*i].into());
                Event::AwaitingSignal {
                    signal: SIGNALS[*i].into(),
                    at,
                }
            }
            // As the engine does: a signal is taken only by a workflow
            // waiting for exactly that signal.
            Cmd::Signal(i)
                if self.status == AwaitingConfirmation
                    && self.awaiting.as_deref() == Some(SIGNALS[*i]) =>
            {
                let payload = json!({"confirm": "DELETE", "n": n});
                self.signals.insert(SIGNALS[*i].into(), payload.clone());
                self.awaiting = None;
                self.status = Running;
                Event::SignalReceived {
                    name: SIGNALS[*i].into(),
                    payload,
                    at,
                }
            }
            Cmd::Pause if self.forward_running() => {
                self.status = Paused;
                Event::Paused {
                    reason: "operator".into(),
                    at,
                }
            }
            Cmd::Resume if matches!(self.status, Paused | Failed) => {
                self.status = if self.compensating {
                    Compensating
                } else {
                    Running
                };
                self.failures.clear();
                self.retry_at = None;
                Event::Resumed { at }
            }
            Cmd::CancelRequest if !finished(self.status) => {
                self.cancel_requested = true;
                Event::CancelRequested {
                    by: Some("admin".into()),
                    at,
                }
            }
            Cmd::Cancel
                if matches!(
                    self.status,
                    Pending | Running | AwaitingConfirmation | Paused | Failed
                ) =>
            {
                self.status = Cancelled;
                self.awaiting = None;
                self.clear_step();
                Event::Cancelled { at }
            }
            Cmd::StartCompensation
                if matches!(
                    self.status,
                    Running | AwaitingConfirmation | Paused | Failed | Completed
                ) =>
            {
                self.status = Compensating;
                self.compensating = true;
                self.awaiting = None;
                self.failures.clear();
                self.clear_step();
                Event::CompensationStarted {
                    reason: failure("rollback_requested"),
                    at,
                }
            }
            Cmd::StepCompensate(i) if self.status == Compensating => {
                let output = json!({"undone": STEPS[*i], "n": n});
                self.compensated.insert(STEPS[*i].into(), output.clone());
                self.clear_step();
                Event::StepCompensated {
                    step: STEPS[*i].into(),
                    output,
                    at,
                }
            }
            Cmd::Complete if self.forward_running() => {
                self.status = Completed;
                self.clear_step();
                Event::Completed { at }
            }
            // A failed workflow keeps its current step: resume retries it.
            Cmd::Fail if matches!(self.status, Running | Compensating) => {
                self.status = Failed;
                self.retry_at = None;
                Event::Failed {
                    error: failure("fatal"),
                    at,
                }
            }
            Cmd::RollBack if self.status == Compensating => {
                self.status = RolledBack;
                self.clear_step();
                Event::RolledBack { at }
            }
            // Timers may be set and fire in any status (an export's expiry
            // timer outlives the workflow's completion).
            Cmd::ScheduleTimer(i, due_s) => {
                let due_at = now + Duration::seconds(*due_s);
                self.timers.insert(TIMERS[*i].into(), (due_at, false));
                Event::TimerScheduled {
                    name: TIMERS[*i].into(),
                    due_at,
                    at,
                }
            }
            Cmd::FireTimer(i) if self.timers.get(TIMERS[*i]).is_some_and(|t| !t.1) => {
                if let Some(t) = self.timers.get_mut(TIMERS[*i]) {
                    t.1 = true;
                }
                Event::TimerFired {
                    name: TIMERS[*i].into(),
                    at,
                }
            }
            _ => return None,
        };
        self.events += 1;
        Some(event)
    }
}

thread_local! {
    /// Set while a panic is expected, so the hook keeps the output clean.
    static EXPECTING_PANIC: Cell<bool> = const { Cell::new(false) };
}

fn quiet_expected_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !EXPECTING_PANIC.with(Cell::get) {
                default(info);
            }
        }));
    });
}

/// Apply `event` to a copy of `state`; `None` if `apply` panicked.
fn try_apply(state: &WorkflowState, event: &Event) -> Option<WorkflowState> {
    quiet_expected_panics();
    EXPECTING_PANIC.with(|p| p.set(true));
    let mut copy = state.clone();
    let result = panic::catch_unwind(AssertUnwindSafe(move || {
        copy.apply(event);
        copy
    }));
    EXPECTING_PANIC.with(|p| p.set(false));
    result.ok()
}

/// Every event that moves the status, with the status it moves to from the
/// model's point of view.
fn status_changes(m: &Model, at: DateTime<Utc>) -> Vec<(Event, Status)> {
    let resumed_to = if m.compensating {
        Status::Compensating
    } else {
        Status::Running
    };
    let mut out = vec![
        (Event::Started { at }, Status::Running),
        (
            Event::AwaitingSignal {
                signal: "confirm".into(),
                at,
            },
            Status::AwaitingConfirmation,
        ),
        (
            Event::Paused {
                reason: "probe".into(),
                at,
            },
            Status::Paused,
        ),
        (Event::Resumed { at }, resumed_to),
        (
            Event::CompensationStarted {
                reason: failure("probe"),
                at,
            },
            Status::Compensating,
        ),
        (Event::Completed { at }, Status::Completed),
        (
            Event::Failed {
                error: failure("probe"),
                at,
            },
            Status::Failed,
        ),
        (Event::Cancelled { at }, Status::Cancelled),
        (Event::RolledBack { at }, Status::RolledBack),
    ];
    if let Some(signal) = &m.awaiting {
        out.push((
            Event::SignalReceived {
                name: signal.clone(),
                payload: Value::Null,
                at,
            },
            Status::Running,
        ));
    }
    out
}

fn check_agrees(state: &WorkflowState, m: &Model, last_at: DateTime<Utc>) {
    assert_eq!(state.status, m.status, "status");
    let phase = if m.compensating {
        Phase::Compensation
    } else {
        Phase::Forward
    };
    assert_eq!(state.phase, phase, "phase");
    assert_eq!(state.version, m.events, "version is the number of events");
    assert_eq!(
        state.updated_at, last_at,
        "updated_at is the last event's time"
    );
    assert_eq!(state.outputs, m.outputs, "outputs");
    assert_eq!(state.compensated, m.compensated, "compensated");
    assert_eq!(state.failures, m.failures, "failures");
    assert_eq!(state.current_step, m.current_step, "current step");
    assert_eq!(state.retry_at, m.retry_at, "retry_at");
    assert_eq!(
        state.cancel_requested, m.cancel_requested,
        "cancel requested"
    );
    assert_eq!(state.signals, m.signals, "signals");
    assert_eq!(
        state.finished_at.is_some(),
        finished(m.status),
        "finished_at is set exactly in finished statuses"
    );
    if m.status == Status::AwaitingConfirmation {
        assert_eq!(state.awaiting_signal, m.awaiting, "awaited signal");
    }
    let timers: BTreeMap<String, (DateTime<Utc>, bool)> = state
        .timers
        .iter()
        .map(|(name, t)| (name.clone(), (t.due_at, t.fired)))
        .collect();
    assert_eq!(timers, m.timers, "timers");

    let summary = state.summary();
    assert_eq!(summary.status, m.status);
    assert_eq!(summary.version, m.events);
    let unfired: Vec<(String, DateTime<Utc>)> = m
        .timers
        .iter()
        .filter(|(_, (_, fired))| !fired)
        .map(|(name, (due, _))| (name.clone(), *due))
        .collect();
    let listed: Vec<(String, DateTime<Utc>)> = summary
        .timers
        .iter()
        .map(|t| (t.name.clone(), t.due_at))
        .collect();
    assert_eq!(listed, unfired, "summary lists exactly the unfired timers");
}

/// The transition table, as `apply` must enforce it.
fn check_table_enforced(state: &WorkflowState, m: &Model, at: DateTime<Utc>) {
    for (event, to) in status_changes(m, at) {
        let allowed = m.status.can_transition_to(to);
        match try_apply(state, &event) {
            Some(next) => {
                assert!(
                    allowed,
                    "{} -> {} by {} is not in the table but apply accepted it",
                    m.status,
                    to,
                    event.tag()
                );
                assert_eq!(next.status, to, "{} lands in {to}", event.tag());
            }
            None => assert!(
                !allowed,
                "{} -> {} by {} is in the table but apply panicked",
                m.status,
                to,
                event.tag()
            ),
        }
    }
}

/// Drive the model and the fold with `choices` (a pick among the legal
/// commands, and a due offset in seconds should the pick schedule a timer).
fn run(choices: &[(u32, i64)]) {
    let t0 = DateTime::from_timestamp(1_767_225_600, 123_456_789).expect("valid time");
    let submitted = Event::Submitted {
        id: WorkflowId(uuid::Uuid::from_u128(7)),
        tenant: TenantId::parse("acme").expect("valid tenant"),
        kind: "rehydrate".into(),
        input: json!({"mode": "replace"}),
        idempotency_key: Some("k".into()),
        requested_by: None,
        at: t0,
    };
    let mut state = WorkflowState::from_submitted(&submitted);
    let mut events = vec![submitted];
    let mut model = Model::new();
    let mut last_at = t0;
    check_agrees(&state, &model, last_at);
    check_table_enforced(&state, &model, t0);
    for (n, (choice, due_s)) in choices.iter().enumerate() {
        let now = t0 + Duration::milliseconds(1_000 * (n as i64 + 1) + 7);
        // Pick among the commands the model allows now, so every choice
        // becomes an event (and shrinking keeps sequences legal).
        let legal: Vec<(u32, Cmd)> = all_commands(*due_s)
            .into_iter()
            .filter(|(_, c)| model.clone().step(c, now, n as u64).is_some())
            .collect();
        let total: u32 = legal.iter().map(|(w, _)| w).sum();
        if total == 0 {
            break;
        }
        let mut pick = choice % total;
        let cmd = legal
            .iter()
            .find(|(w, _)| {
                let hit = pick < *w;
                pick = pick.saturating_sub(*w);
                hit
            })
            .map(|(_, c)| c.clone())
            .expect("pick is below the total weight");
        let event = model
            .step(&cmd, now, n as u64)
            .expect("the command was legal a moment ago");
        state.apply(&event);
        last_at = now;
        // Stored events must come back as they were.
        assert_eq!(Event::decode(&event.encode()).expect("decodes"), event);
        events.push(event);
        check_agrees(&state, &model, last_at);
        check_table_enforced(&state, &model, now);
    }
    // Folding the stream from scratch gives the same state as applying it
    // event by event.
    assert_eq!(WorkflowState::fold(&events), Some(state));
}

/// Run an exact command sequence (each command must be legal in turn).
fn run_exact(cmds: &[Cmd]) {
    let choices: Vec<(u32, i64)> = {
        let mut model = Model::new();
        let t0 = DateTime::from_timestamp(0, 0).expect("valid time");
        cmds.iter()
            .enumerate()
            .map(|(n, cmd)| {
                let due_s = match cmd {
                    Cmd::ScheduleTimer(_, due_s) => *due_s,
                    _ => 0,
                };
                let legal: Vec<(u32, Cmd)> = all_commands(due_s)
                    .into_iter()
                    .filter(|(_, c)| model.clone().step(c, t0, n as u64).is_some())
                    .collect();
                let mut before = 0;
                for (w, c) in &legal {
                    if format!("{c:?}") == format!("{cmd:?}") {
                        model.step(cmd, t0, n as u64);
                        return (before, due_s);
                    }
                    before += w;
                }
                panic!("{cmd:?} is not legal at position {n}");
            })
            .collect()
    };
    run(&choices);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn fold_agrees_with_the_model(
        choices in prop::collection::vec((any::<u32>(), -100i64..100_000), 0..150)
    ) {
        run(&choices);
    }
}

#[test]
fn happy_path_with_confirmation_and_expiry() {
    use Cmd::*;
    run_exact(&[
        Start,
        StepStart(0),
        StepProgress,
        StepFail { retry: true },
        StepStart(0),
        StepSucceed,
        AwaitSignal(0),
        Signal(0),
        StepStart(1),
        StepSucceed,
        ScheduleTimer(0, 86_400),
        Complete,
        FireTimer(0),
    ]);
}

#[test]
fn failed_compensation_resumes_into_compensation() {
    use Cmd::*;
    run_exact(&[
        Start,
        StepStart(3),
        StepSucceed,
        StepStart(2),
        StepFail { retry: false },
        StartCompensation,
        StepStart(3),
        StepFail { retry: false },
        Fail,
        Resume,
        StepStart(3),
        StepCompensate(3),
        RollBack,
    ]);
}
