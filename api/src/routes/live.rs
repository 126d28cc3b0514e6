//! Live Server-Sent Events: one workflow's events as they are appended
//! (`GET /api/v1/workflows/{id}/events/stream`) and the changes of a
//! tenant's workflows (`GET /api/v1/workflows/stream`).
//!
//! Both follow the engine's notice of every durable append
//! (`Engine::subscribe`), never a timer: a notice names the workflow and its
//! event count, and the handler reads what it has not sent through the
//! engine's read API. The notice is subscribed to before the log is read,
//! so an event appended in between is not lost; a subscriber that lags
//! reads the log again. A workflow's stream numbers each message with the
//! event's 1-based `seq` (the SSE `id`), so a client that reconnects with
//! `Last-Event-ID` (what browsers' `EventSource` sends) gets exactly the
//! events it has not seen, across server restarts too: the log is the
//! source. That stream ends after the workflow's last event once it is in a
//! final status. Both send a comment line every [`HEARTBEAT`] so proxies
//! keep the connection and a gone client is noticed.

use super::visible_workflow;
use super::workflows::{event_view, list_scope, parse_seq_cursor, summary_view};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use actix_web::web::Bytes;
use actix_web::{get, web, HttpRequest, HttpResponse};
use ferry_engine::{Engine, TenantId, WorkflowId, WorkflowState, WorkflowSummary};
use serde::Deserialize;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};

/// A comment line this often keeps idle connections open.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// How long a browser's `EventSource` waits before reconnecting (ms).
const RECONNECT_MS: u64 = 2000;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Only the events after this `seq`; the `Last-Event-ID` header, when
    /// sent, takes precedence.
    #[param(value_type = Option<u64>)]
    after: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListStreamParams {
    /// Platform admin without `X-Tenant-Id` only: this tenant's workflows
    /// (default: every tenant's).
    tenant: Option<String>,
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(events_stream, list_stream))]
pub struct Api;

fn sse_response(
    body: impl futures::Stream<Item = Result<Bytes, actix_web::Error>> + 'static,
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        // Reverse proxies (nginx) must not buffer the stream.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

/// One SSE message. `data` is one line of JSON (serde_json writes no raw
/// newlines), so it needs no splitting.
fn message(id: Option<u64>, event: &str, data: &serde_json::Value) -> Bytes {
    let mut out = String::new();
    if let Some(id) = id {
        out.push_str(&format!("id: {id}\n"));
    }
    out.push_str(&format!("event: {event}\ndata: {data}\n\n"));
    Bytes::from(out)
}

fn heartbeat_timer() -> tokio::time::Interval {
    let start = tokio::time::Instant::now() + HEARTBEAT;
    tokio::time::interval_at(start, HEARTBEAT)
}

/// The state of one workflow's stream between messages.
struct EventsFeed {
    engine: Engine,
    id: WorkflowId,
    /// The `seq` of the last event sent (or skipped by the cursor).
    sent: u64,
    changes: broadcast::Receiver<WorkflowSummary>,
    out: VecDeque<Bytes>,
    /// The log may hold events not sent yet.
    stale: bool,
    done: bool,
    heartbeat: tokio::time::Interval,
}

impl EventsFeed {
    /// Queue the events after `sent`; `done` once the workflow is final
    /// (its last event then queued).
    fn read_log(&mut self) {
        let events = match self.engine.events(self.id) {
            Ok(events) => events,
            Err(e) => {
                // The client reconnects with its Last-Event-ID.
                tracing::warn!(workflow = %self.id, error = %e, "event stream ended: the log cannot be read");
                self.done = true;
                return;
            }
        };
        let from = usize::try_from(self.sent).unwrap_or(usize::MAX);
        for (e, seq) in events.iter().zip(1u64..).skip(from) {
            let view = event_view(seq, e);
            let tag = view["type"].as_str().unwrap_or("event").to_owned();
            self.out.push_back(message(Some(seq), &tag, &view));
        }
        self.sent = self.sent.max(events.len() as u64);
        if WorkflowState::fold(&events).is_some_and(|s| s.status.is_final()) {
            self.done = true;
        }
    }

    async fn next(mut self) -> Option<(Result<Bytes, actix_web::Error>, Self)> {
        loop {
            if let Some(b) = self.out.pop_front() {
                return Some((Ok(b), self));
            }
            if self.done {
                return None;
            }
            if self.stale {
                self.stale = false;
                self.read_log();
                continue;
            }
            tokio::select! {
                notice = self.changes.recv() => match notice {
                    Ok(s) => self.stale = s.id == self.id && s.version > self.sent,
                    Err(RecvError::Lagged(_)) => self.stale = true,
                    Err(RecvError::Closed) => return None,
                },
                _ = self.heartbeat.tick() => self.out.push_back(Bytes::from_static(b": heartbeat\n\n")),
            }
        }
    }
}

/// A workflow's events as Server-Sent Events: the stored ones after the
/// cursor, then each new one as it is appended; the stream ends after the
/// last event of a workflow in a final status. Each message: `id` = the
/// event's `seq`, `event` = its type tag (e.g. `step_succeeded.v1`), `data`
/// = the object `GET /api/v1/workflows/{id}/events` shows for it.
#[utoipa::path(
    tag = "workflows",
    params(
        ("id" = String, Path, description = "workflow id"),
        ("Last-Event-ID" = Option<u64>, Header, description = "resume after this event seq"),
        StreamParams,
    ),
    responses(
        (status = 200, description = "the event stream", content_type = "text/event-stream", body = String),
        crate::openapi::TenantErrors,
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/workflows/{id}/events/stream")]
async fn events_stream(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    q: web::Query<StreamParams>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // A header that is not text is no seq either: `invalid_cursor`.
    let header = req
        .headers()
        .get("Last-Event-ID")
        .map(|v| v.to_str().unwrap_or("?"));
    let after = parse_seq_cursor(header.or(q.after.as_deref()))?;
    let wf = visible_workflow(&state.engine, &caller, &id, None).await?;
    let feed = EventsFeed {
        // Subscribe first: what is appended while the log is read is noticed.
        changes: state.engine.subscribe(),
        engine: state.engine.clone(),
        id: wf.id,
        sent: after,
        out: VecDeque::from([Bytes::from(format!("retry: {RECONNECT_MS}\n\n"))]),
        stale: true,
        done: false,
        heartbeat: heartbeat_timer(),
    };
    Ok(sse_response(futures::stream::unfold(
        feed,
        EventsFeed::next,
    )))
}

/// The state of a workflow-list stream between messages.
struct ListFeed {
    scope: Option<TenantId>,
    changes: broadcast::Receiver<WorkflowSummary>,
    out: VecDeque<Bytes>,
    heartbeat: tokio::time::Interval,
}

impl ListFeed {
    async fn next(mut self) -> Option<(Result<Bytes, actix_web::Error>, Self)> {
        loop {
            if let Some(b) = self.out.pop_front() {
                return Some((Ok(b), self));
            }
            tokio::select! {
                notice = self.changes.recv() => match notice {
                    Ok(s) if self.scope.as_ref().is_none_or(|t| *t == s.tenant) => {
                        let view = serde_json::to_value(summary_view(&s)).unwrap_or_default();
                        self.out.push_back(message(None, "workflow", &view));
                    }
                    Ok(_) => {}
                    // Notices were missed: the client lists again.
                    Err(RecvError::Lagged(missed)) => self.out.push_back(message(
                        None,
                        "resync",
                        &serde_json::json!({"missed": missed}),
                    )),
                    Err(RecvError::Closed) => return None,
                },
                _ = self.heartbeat.tick() => self.out.push_back(Bytes::from_static(b": heartbeat\n\n")),
            }
        }
    }
}

/// Changes of the caller's tenant's workflows (a platform admin without
/// `X-Tenant-Id`: every tenant's, or `tenant=`'s) as Server-Sent Events:
/// an `event: workflow` message, whose data is the summary the list shows,
/// each time a workflow is submitted, changes status or records progress.
/// An `event: resync` message says notices were missed (list again).
#[utoipa::path(
    tag = "workflows",
    params(ListStreamParams),
    responses(
        (status = 200, description = "the change stream", content_type = "text/event-stream", body = String),
        crate::openapi::TenantErrors,
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/workflows/stream")]
async fn list_stream(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<ListStreamParams>,
) -> Result<HttpResponse, ApiError> {
    let feed = ListFeed {
        scope: list_scope(&caller, q.tenant.as_deref())?,
        changes: state.engine.subscribe(),
        out: VecDeque::from([Bytes::from(format!("retry: {RECONNECT_MS}\n\n"))]),
        heartbeat: heartbeat_timer(),
    };
    Ok(sse_response(futures::stream::unfold(feed, ListFeed::next)))
}

/// Registered before the workflow routes: `/api/v1/workflows/stream` must
/// not be taken for the workflow id `stream`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_stream).service(events_stream);
}
