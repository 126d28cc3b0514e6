//! The durable-timer loop: fires due timers from the log's due-timers index,
//! so timers survive restarts. A timer's callback must be idempotent: a crash
//! after the callback and before `TimerFired` is recorded fires it again.
//! In a cluster each node fires the timers of the tenants it owns.

use crate::engine::Engine;
use crate::event::Timestamp;
use crate::ids::WorkflowId;
use crate::workflow::TimerContext;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tracing::Instrument;

/// Timers fired per look at the index.
const FIRE_BATCH_MAX: usize = 256;
/// Back-off after a timer callback failed (on the engine's clock).
const FAILED_TIMER_RETRY: chrono::Duration = chrono::Duration::seconds(10);

/// The loop sleeps on the engine's clock until the next timer is due (or a
/// failed one may be tried again), wakes early when a timer is scheduled,
/// and looks at the index at least every `timer_poll` of real time.
pub(crate) fn spawn_loop(engine: Engine) {
    engine.runtime().spawn(async move {
        let mut failed: HashMap<(WorkflowId, String), Timestamp> = HashMap::new();
        loop {
            update_queue_age(&engine);
            let poll = engine.inner.config.timer_poll;
            let now = engine.now();
            // Timers backing off after a failure are skipped; fetch past them
            // so they cannot starve the timers behind them.
            let mut fired_or_tried = 0;
            match engine.log().due_timers(now, FIRE_BATCH_MAX + failed.len()) {
                Ok(due) => {
                    let mut seen = HashSet::new();
                    for t in due {
                        let key = (t.workflow, t.name.clone());
                        seen.insert(key.clone());
                        if failed.get(&key).is_some_and(|until| *until > now) {
                            continue;
                        }
                        // A timer's lines carry the workflow's tenant and id,
                        // and the timer's name as the step, like every other
                        // line of a workflow (the tenant once it is read).
                        let span = tracing::info_span!(
                            "workflow",
                            tenant = tracing::field::Empty,
                            workflow = %t.workflow,
                            kind = tracing::field::Empty,
                            step = %format!("timer:{}", t.name),
                        );
                        let fired = fire(&engine, t.workflow, &t.name, t.due_at)
                            .instrument(span.clone())
                            .await;
                        match fired {
                            // Another node owns the tenant: its timer is theirs.
                            Ok(false) => {}
                            Ok(true) => {
                                fired_or_tried += 1;
                                failed.remove(&key);
                            }
                            Err(e) => {
                                fired_or_tried += 1;
                                tracing::warn!(parent: &span, error = %e, "timer callback failed; will retry");
                                failed.insert(key, engine.now() + FAILED_TIMER_RETRY);
                            }
                        }
                    }
                    // A failed timer no longer due (fired or gone) is forgotten.
                    failed.retain(|key, _| seen.contains(key));
                }
                Err(e) => tracing::error!(error = %e, "reading due timers failed"),
            }
            // Wake at the next timer, unless the only due ones are backing
            // off (then when the first back-off ends, not a busy loop).
            let next_due = match engine.log().next_timer() {
                Ok(Some(next)) if next.due_at > now || fired_or_tried > 0 => Some(next.due_at),
                _ => None,
            };
            let retry_due = failed.values().filter(|until| **until > now).min().copied();
            let wake = next_due.into_iter().chain(retry_due).min();
            let clock = engine.clock();
            let until_due = async {
                match wake {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = until_due => {}
                _ = engine.inner.timer_scheduled.notified() => {}
                _ = tokio::time::sleep(poll.max(Duration::from_millis(20))) => {}
            }
        }
    });
}

fn update_queue_age(engine: &Engine) {
    let m = &engine.inner.metrics;
    let age = engine
        .inner
        .queue
        .oldest()
        .and_then(|t| (engine.now() - t).to_std().ok())
        .unwrap_or_default();
    m.queue_oldest_wait.set(age.as_secs_f64());
}

async fn fire(
    engine: &Engine,
    id: WorkflowId,
    name: &str,
    due_at: Timestamp,
) -> Result<bool, String> {
    let state = engine
        .get(id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("workflow {id} not found"))?;
    // In a cluster only the tenant's owner fires its timers; its
    // `TimerFired` append is fenced, so a timer is recorded fired once.
    if !engine.owns(&state.tenant) {
        return Ok(false);
    }
    let def = engine.definition(&state.kind).map_err(|e| e.to_string())?;
    let ctx = TimerContext::new(
        &state,
        name,
        due_at,
        engine.clock(),
        std::sync::Arc::new(engine.clone()),
    );
    let span = tracing::Span::current();
    span.record("tenant", state.tenant.as_str());
    span.record("kind", state.kind.as_str());
    let outcome = def.on_timer(ctx).await;
    let label = if outcome.is_ok() { "ok" } else { "error" };
    tracing::info!(outcome = label, "timer fired");
    engine
        .inner
        .metrics
        .timers_fired
        .with_label_values(&[&state.kind, name, label])
        .inc();
    outcome.map_err(|e| e.to_string())?;
    engine
        .mark_timer_fired(id, name)
        .await
        .map_err(|e| e.to_string())?;
    Ok(true)
}
