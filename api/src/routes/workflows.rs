//! Generic workflow endpoints: list, get, events, resume, cancel. Scoped to
//! the caller's tenant; a platform admin without `X-Tenant-Id` lists every
//! tenant's workflows (optionally one, `tenant=`).

use super::visible_workflow;
use crate::app::AppState;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use ferry_engine::{
    Event, ListQuery, Status, TenantId, WorkflowId, WorkflowState, WorkflowSummary,
};
use ferry_workflows::common::public::without_server_paths;
use ferry_workflows::ports::audit::AuditEntry;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// A status, e.g. `running`, `completed`.
    status: Option<String>,
    /// A workflow kind, e.g. `export`.
    kind: Option<String>,
    /// 1..=1000 (default 50).
    #[param(value_type = Option<usize>)]
    limit: Option<String>,
    /// The previous page's `nextCursor`.
    after: Option<String>,
    /// `desc` (default: newest first) or `asc` (oldest first); the cursor
    /// keeps walking the same way.
    order: Option<String>,
    /// Platform admin without `X-Tenant-Id` only: list this tenant's
    /// workflows (default: every tenant's). Anyone else may name only their
    /// own tenant.
    tenant: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// Only the events after this `seq` (default 0: all of them).
    #[param(value_type = Option<u64>)]
    after: Option<String>,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, get_one, events, resume, cancel),
    components(schemas(SummaryPage, SummaryView, WorkflowView, ErrorView, EventsPage))
)]
pub struct Api;

pub const PAGE_DEFAULT: usize = 50;

/// One workflow in a listing.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SummaryView<'a> {
    #[schema(value_type = String, format = Uuid)]
    id: WorkflowId,
    tenant_id: &'a str,
    /// `export` or `rehydrate`.
    kind: &'a str,
    #[schema(value_type = String)]
    status: Status,
    #[schema(value_type = String, format = DateTime)]
    created_at: ferry_engine::Timestamp,
    #[schema(value_type = String, format = DateTime)]
    updated_at: ferry_engine::Timestamp,
}

/// One page of `GET /api/v1/workflows`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SummaryPage<'a> {
    workflows: Vec<SummaryView<'a>>,
    /// Pass as `after` for the next page; null on the last one.
    #[schema(value_type = Option<String>, format = Uuid)]
    next_cursor: Option<WorkflowId>,
}

/// A failure as the workflow view shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorView {
    code: String,
    message: String,
}

/// The generic view of one workflow. Step outputs are shown without the
/// server's file-system paths (`ferry_workflows::common::public`).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowView {
    #[schema(value_type = String, format = Uuid)]
    id: WorkflowId,
    #[schema(value_type = String)]
    tenant_id: ferry_engine::TenantId,
    kind: String,
    #[schema(value_type = String)]
    status: Status,
    /// `forward`, or `compensation` while rolling back.
    #[schema(value_type = String)]
    phase: ferry_engine::Phase,
    current_step: Option<String>,
    attempt: Option<u32>,
    /// The current step's `fraction` (0–1), `rows` and `bytes`.
    #[schema(value_type = Option<Object>)]
    progress: Option<ferry_engine::Progress>,
    #[schema(value_type = Option<String>, format = DateTime)]
    retry_at: Option<ferry_engine::Timestamp>,
    cancel_requested: bool,
    awaiting_signal: Option<String>,
    completed_steps: Vec<String>,
    /// Each finished step's output, by step name.
    #[schema(value_type = Object)]
    outputs: Value,
    /// Durable timers by name: `dueAt` and `fired`.
    #[schema(value_type = Object)]
    timers: Value,
    error: Option<ErrorView>,
    requested_by: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    created_at: ferry_engine::Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    started_at: Option<ferry_engine::Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    finished_at: Option<ferry_engine::Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    updated_at: ferry_engine::Timestamp,
    version: u64,
}

/// `GET /api/v1/workflows/{id}/events`: the events in order, numbered from
/// 1 (`seq`), each with its `type` tag; outputs without server paths.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventsPage {
    #[schema(value_type = String, format = Uuid)]
    workflow_id: WorkflowId,
    #[schema(value_type = Vec<Object>)]
    events: Vec<Value>,
}

/// A summary as the listing (and the list's live stream) shows it.
pub fn summary_view(s: &WorkflowSummary) -> SummaryView<'_> {
    SummaryView {
        id: s.id,
        tenant_id: s.tenant.as_str(),
        kind: &s.kind,
        status: s.status,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

/// The generic view of one workflow.
pub fn workflow_view(s: &WorkflowState) -> WorkflowView {
    WorkflowView {
        id: s.id,
        tenant_id: s.tenant.clone(),
        kind: s.kind.clone(),
        status: s.status,
        phase: s.phase,
        current_step: s.current_step.clone(),
        attempt: s.current_attempt,
        progress: s.progress.clone(),
        retry_at: s.retry_at,
        cancel_requested: s.cancel_requested,
        awaiting_signal: s.awaiting_signal.clone(),
        completed_steps: s.outputs.keys().cloned().collect(),
        outputs: without_server_paths(json!(s.outputs)),
        timers: s
            .timers
            .iter()
            .map(|(name, t)| (name.clone(), json!({"dueAt": t.due_at, "fired": t.fired})))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        error: s.last_error.as_ref().map(|e| ErrorView {
            code: e.code.clone(),
            message: e.message.clone(),
        }),
        requested_by: s.requested_by.clone(),
        created_at: s.created_at,
        started_at: s.started_at,
        finished_at: s.finished_at,
        updated_at: s.updated_at,
        version: s.version,
    }
}

/// The tenants a listing covers: `None` for every tenant (a platform admin
/// not acting on one tenant), else the one tenant. `tenant=` narrows a
/// platform admin's listing; anyone else may name only their own tenant.
pub fn list_scope(caller: &Caller, tenant: Option<&str>) -> Result<Option<TenantId>, ApiError> {
    let all_tenants = caller.role == Role::PlatformAdmin && !caller.impersonating;
    let named = match tenant {
        Some(t) => Some(
            TenantId::parse(t)
                .map_err(|e| ApiError::bad_request("invalid_tenant", format!("tenant: {e}")))?,
        ),
        None => None,
    };
    match named {
        Some(t) if all_tenants || t == caller.tenant => Ok(Some(t)),
        Some(_) => Err(ApiError::forbidden(
            "only a platform_admin may list another tenant's workflows",
        )),
        None if all_tenants => Ok(None),
        None => Ok(Some(caller.tenant.clone())),
    }
}

/// The caller's tenant's workflows (a platform admin's: every tenant's),
/// newest last, paginated by `nextCursor`.
#[utoipa::path(
    tag = "workflows",
    params(ListParams),
    responses(
        (status = 200, description = "one page", body = SummaryPage),
        crate::openapi::TenantErrors,
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/workflows")]
async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let status = match &q.status {
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ApiError::bad_request("invalid_status", format!("unknown status {s:?}"))
        })?),
        None => None,
    };
    let after =
        match &q.after {
            Some(a) => Some(a.parse::<WorkflowId>().map_err(|_| {
                ApiError::bad_request("invalid_cursor", "after must be a workflow id")
            })?),
            None => None,
        };
    if let Some(kind) = &q.kind {
        state.engine.definition(kind).map_err(|_| {
            ApiError::bad_request("invalid_kind", format!("unknown workflow kind {kind:?}"))
        })?;
    }
    let limit = parse_limit(q.limit.as_deref())?;
    let newest_first = match q.order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_order",
                format!("order must be asc or desc, not {other:?}"),
            ))
        }
    };
    let page = state.engine.list(&ListQuery {
        tenant: list_scope(&caller, q.tenant.as_deref())?,
        status,
        kind: q.kind.clone(),
        after,
        limit,
        newest_first,
    })?;
    let next = if page.len() == limit {
        page.last().map(|s| s.id)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(SummaryPage {
        workflows: page.iter().map(summary_view).collect(),
        next_cursor: next,
    }))
}

/// `limit`: 1..=`LIST_LIMIT_MAX`, default [`PAGE_DEFAULT`]; anything else
/// (`0`, `-1`, `ten`) is `invalid_limit`.
fn parse_limit(raw: Option<&str>) -> Result<usize, ApiError> {
    let max = ferry_engine::log::LIST_LIMIT_MAX;
    match raw {
        None => Ok(PAGE_DEFAULT),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request("invalid_limit", format!("limit must be 1..={max}"))
            }),
    }
}

/// One workflow.
#[utoipa::path(
    tag = "workflows",
    params(("id" = String, Path, description = "workflow id")),
    responses(
        (status = 200, description = "the workflow", body = WorkflowView),
        crate::openapi::TenantErrors,
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/workflows/{id}")]
async fn get_one(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let wf = visible_workflow(&state.engine, &caller, &id, None).await?;
    Ok(HttpResponse::Ok().json(workflow_view(&wf)))
}

/// An event as the API shows it: its fields, its 1-based `seq` and its
/// `type` tag, without server paths. The JSON events endpoint and the live
/// stream (`live.rs`) show the same objects.
pub fn event_view(seq: u64, e: &Event) -> Value {
    let v = without_server_paths(serde_json::to_value(e).unwrap_or(Value::Null));
    let Value::Object(stored) = v else {
        return v;
    };
    // The stored format keeps its snake_case field names (it is versioned
    // on its own); the API shows them in camelCase like every other body.
    // The payloads inside (input, output) are camelCase already.
    let mut out = serde_json::Map::new();
    for (key, value) in stored {
        match key.as_str() {
            "t" => {
                out.insert("type".into(), value);
            }
            _ => {
                out.insert(camel_case(&key), value);
            }
        }
    }
    out.insert("seq".into(), json!(seq));
    Value::Object(out)
}

/// `retry_at` → `retryAt`.
fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// An event cursor (`after=`, `Last-Event-ID`): a `seq`, 0 for "from the
/// start"; anything else is `invalid_cursor`.
pub fn parse_seq_cursor(raw: Option<&str>) -> Result<u64, ApiError> {
    match raw {
        None => Ok(0),
        Some(s) => s.trim().parse::<u64>().map_err(|_| {
            ApiError::bad_request(
                "invalid_cursor",
                "the event cursor must be an event seq (a whole number, 0 or more)",
            )
        }),
    }
}

/// A workflow's events in order (those after `after`, if given).
#[utoipa::path(
    tag = "workflows",
    params(("id" = String, Path, description = "workflow id"), EventsParams),
    responses(
        (status = 200, description = "its events", body = EventsPage),
        crate::openapi::TenantErrors,
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/workflows/{id}/events")]
async fn events(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    q: web::Query<EventsParams>,
) -> Result<HttpResponse, ApiError> {
    let after = parse_seq_cursor(q.after.as_deref())?;
    let wf = visible_workflow(&state.engine, &caller, &id, None).await?;
    let events = state.engine.events(wf.id)?;
    let items: Vec<Value> = events
        .iter()
        .zip(1u64..)
        .skip(usize::try_from(after).unwrap_or(usize::MAX))
        .map(|(e, seq)| event_view(seq, e))
        .collect();
    Ok(HttpResponse::Ok().json(EventsPage {
        workflow_id: wf.id,
        events: items,
    }))
}

/// Resume a failed workflow from the failed step.
#[utoipa::path(
    tag = "workflows",
    params(("id" = String, Path, description = "workflow id")),
    responses(
        (status = 202, description = "resumed", body = WorkflowView, headers(("Location" = String, description = "the status URL of the workflow"))),
        (status = 409, description = "not resumable", body = crate::openapi::ErrorBody),
        crate::openapi::TenantErrors,
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/workflows/{id}/resume")]
async fn resume(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let wf = visible_workflow(&state.engine, &caller, &id, None).await?;
    let after = state.engine.resume(wf.id).await?;
    state
        .audit_request(
            &req,
            &caller,
            "WORKFLOW_RESUMED",
            &after,
            json!({"kind": after.kind}),
        )
        .await;
    Ok(super::accepted(&after).json(workflow_view(&after)))
}

/// Cancel: pending at once, running at the next safe point.
#[utoipa::path(
    tag = "workflows",
    params(("id" = String, Path, description = "workflow id")),
    responses(
        (status = 202, description = "cancelled or cancel requested", body = WorkflowView, headers(("Location" = String, description = "the status URL of the workflow"))),
        (status = 409, description = "not cancellable", body = crate::openapi::ErrorBody),
        crate::openapi::TenantErrors,
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/workflows/{id}/cancel")]
async fn cancel(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let wf = visible_workflow(&state.engine, &caller, &id, None).await?;
    let after = state.engine.cancel(wf.id, Some(caller.actor())).await?;
    state
        .audit_request(
            &req,
            &caller,
            "WORKFLOW_CANCEL_REQUESTED",
            &after,
            json!({"kind": after.kind, "status": after.status}),
        )
        .await;
    Ok(super::accepted(&after).json(workflow_view(&after)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(get_one)
        .service(events)
        .service(resume)
        .service(cancel);
}

/// Keep the audit entry type in one import for handlers.
pub type Entry = AuditEntry;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_fields_are_shown_in_camel_case() {
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let e = Event::TimerScheduled {
            name: "expire".into(),
            due_at: at,
            at,
        };
        let v = event_view(7, &e);
        assert_eq!(v["type"], "timer_scheduled.v1");
        assert_eq!(v["seq"], 7);
        assert!(v.get("dueAt").is_some() && v.get("due_at").is_none(), "{v}");
        assert!(v.get("t").is_none());
        assert_eq!(camel_case("idempotency_key"), "idempotencyKey");
        assert_eq!(camel_case("at"), "at");
    }

    #[test]
    fn workflows_limit_minus_one_is_invalid_limit_without_parser_text() {
        assert_eq!(parse_limit(None).unwrap(), PAGE_DEFAULT);
        assert_eq!(parse_limit(Some("7")).unwrap(), 7);
        for bad in ["-1", "0", "ten", "", "1001"] {
            let e = parse_limit(Some(bad)).unwrap_err();
            assert_eq!(e.code, "invalid_limit", "{bad:?}");
            assert!(!e.message.contains("digit"), "{}", e.message);
        }
    }
}
