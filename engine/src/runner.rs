//! Drives one workflow: asks the planner what is next, runs step code with
//! its timeout and the cancel token, and records the outcome. Runs as one
//! task per running workflow, started by the tenant's actor.

use crate::engine::Engine;
use crate::error::{Error, Rejection};
use crate::ids::WorkflowId;
use crate::plan::{Next, RunOrder};
use crate::state::{Phase, WorkflowState};
use crate::workflow::{StepContext, StepError, Workflow};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Drive until the workflow needs nothing more from us (final, waiting for a
/// signal, or failed). Errors of the log end the drive; the workflow stays
/// open and is picked up again at the next start or command.
///
/// Everything logged while driving, step code included, is inside one
/// `workflow` span carrying the tenant, the workflow id, its kind and the
/// current step and attempt, so every log line of a workflow names them.
pub(crate) async fn drive(engine: Engine, id: WorkflowId, cancel: CancellationToken) {
    let span = match engine.get(id).await {
        Ok(Some(s)) => tracing::info_span!(
            "workflow",
            tenant = %s.tenant,
            workflow = %id,
            kind = %s.kind,
            step = s.current_step.as_deref().unwrap_or("-"),
            attempt = s.current_attempt.unwrap_or(0),
        ),
        Ok(None) => tracing::info_span!("workflow", workflow = %id, step = "-"),
        Err(e) => {
            tracing::error!(workflow = %id, step = "-", error = %e, "workflow drive stopped; it stays open and resumes at the next start or command");
            return;
        }
    };
    match drive_steps(engine, id, cancel)
        .instrument(span.clone())
        .await
    {
        Ok(()) => {}
        Err(Error::NotOwner(tenant)) => {
            tracing::info!(parent: &span, %tenant, "this node no longer owns the tenant; its owner drives the workflow");
        }
        Err(e) => {
            tracing::error!(parent: &span, error = %e, "workflow drive stopped; it stays open and resumes at the next start or command");
        }
    }
}

async fn drive_steps(
    engine: Engine,
    id: WorkflowId,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let kind = match engine.get(id).await? {
        Some(s) => s.kind,
        None => return Err(Error::NotFound(id)),
    };
    let def = engine.definition(&kind)?;
    let (mut state, mut next) = engine.advance_first(id, &*def).await?;
    loop {
        match next {
            Next::Idle => return Ok(()),
            Next::Append(_) => {
                // `advance` only returns Append if it hit its chain limit.
                (state, next) = engine.advance(id, &*def).await?;
            }
            Next::WaitUntil(at) => {
                // The backoff waits on the engine's clock. A cancel cuts a
                // forward backoff short; a compensation's backoff is not
                // interrupted (the token stays cancelled, so waiting on it
                // would spin).
                if state.phase == Phase::Forward {
                    tokio::select! {
                        _ = engine.sleep_until(at) => {}
                        _ = cancel.cancelled() => {}
                    }
                } else {
                    engine.sleep_until(at).await;
                }
                (state, next) = engine.advance(id, &*def).await?;
            }
            Next::Run(order) => {
                let (outcome, interrupted) =
                    run_step(&engine, &*def, &state, &order, &cancel).await;
                match engine
                    .record_outcome(id, &*def, &order, outcome, interrupted)
                    .await
                {
                    Ok(r) => (state, next) = r,
                    // Someone else (a cancel) moved the workflow: decide again.
                    Err(Error::Rejected(Rejection::StepNotCurrent(_))) => {
                        (state, next) = engine.advance(id, &*def).await?
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

async fn run_step(
    engine: &Engine,
    def: &dyn Workflow,
    state: &WorkflowState,
    order: &RunOrder,
    cancel: &CancellationToken,
) -> (Result<serde_json::Value, StepError>, bool) {
    let Some(spec) = def.steps().iter().find(|s| s.name == order.step).cloned() else {
        return (
            Err(StepError::permanent("unknown_step", order.step.clone())),
            false,
        );
    };
    // A compensation is what a cancel asks for: it must run to its end, so
    // it never sees the cancel token that interrupted the forward step (the
    // same drive goes on to compensate with it still cancelled).
    let never_cancelled = CancellationToken::new();
    let cancel = match order.phase {
        Phase::Forward => cancel,
        Phase::Compensation => &never_cancelled,
    };
    let ctx = StepContext::new(
        state,
        &order.step,
        order.attempt,
        cancel.clone(),
        Arc::new(engine.clone()),
    );
    let started = Instant::now();
    let fut = async {
        match order.phase {
            Phase::Forward => def.run(ctx).await,
            Phase::Compensation => def.compensate(ctx).await,
        }
    };
    let span = tracing::Span::current();
    span.record("step", order.step.as_str());
    span.record("attempt", order.attempt);
    let outcome = tokio::select! {
        r = tokio::time::timeout(spec.timeout, fut.instrument(span.clone())) => match r {
            Ok(r) => r,
            Err(_) => Err(StepError::retryable("step_timeout", format!("step {} exceeded {:?}", order.step, spec.timeout))),
        },
        _ = cancel.cancelled() => Err(StepError::permanent("cancelled", "the workflow was cancelled")),
    };
    let interrupted = outcome.is_err() && cancel.is_cancelled();
    let label = match (&outcome, interrupted) {
        (Ok(_), _) => "ok",
        (Err(_), true) => "cancelled",
        (Err(e), false) if e.retryable => "retryable_error",
        (Err(_), false) => "error",
    };
    let m = &engine.inner.metrics;
    m.step_duration
        .with_label_values(&[&state.kind, &order.step, label])
        .observe(started.elapsed().as_secs_f64());
    if label == "retryable_error" {
        m.step_retries
            .with_label_values(&[&state.kind, &order.step])
            .inc();
    }
    match &outcome {
        Ok(_) => {
            tracing::info!(parent: &span, elapsed_ms = started.elapsed().as_millis() as u64, "step succeeded")
        }
        Err(e) => {
            tracing::warn!(parent: &span, code = %e.code, error = %e.message, interrupted, "step failed")
        }
    }
    (outcome, interrupted)
}
