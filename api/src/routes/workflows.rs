//! Generic workflow endpoints: list, get, events, resume, cancel. Scoped to
//! the caller's tenant.

use super::visible_workflow;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use ferry_engine::{ListQuery, Status, WorkflowId, WorkflowState, WorkflowSummary};
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
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list, get_one, events, resume, cancel))]
pub struct Api;

pub const PAGE_DEFAULT: usize = 50;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SummaryView<'a> {
    id: WorkflowId,
    tenant_id: &'a str,
    kind: &'a str,
    status: Status,
    created_at: ferry_engine::Timestamp,
    updated_at: ferry_engine::Timestamp,
}

fn summary_view(s: &WorkflowSummary) -> SummaryView<'_> {
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
pub fn workflow_view(s: &WorkflowState) -> Value {
    json!({
        "id": s.id,
        "tenantId": s.tenant,
        "kind": s.kind,
        "status": s.status,
        "phase": s.phase,
        "currentStep": s.current_step,
        "attempt": s.current_attempt,
        "progress": s.progress,
        "retryAt": s.retry_at,
        "cancelRequested": s.cancel_requested,
        "awaitingSignal": s.awaiting_signal,
        "completedSteps": s.outputs.keys().collect::<Vec<_>>(),
        "outputs": s.outputs,
        "timers": s.timers,
        "error": s.last_error.as_ref().map(|e| json!({"code": e.code, "message": e.message})),
        "requestedBy": s.requested_by,
        "createdAt": s.created_at,
        "startedAt": s.started_at,
        "finishedAt": s.finished_at,
        "updatedAt": s.updated_at,
        "version": s.version,
    })
}

/// The caller's tenant's workflows, newest last, paginated by `nextCursor`.
#[utoipa::path(
    tag = "workflows",
    params(ListParams),
    responses(
        (status = 200, description = "one page", body = serde_json::Value),
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
    let page = state.engine.list(&ListQuery {
        tenant: Some(caller.tenant.clone()),
        status,
        kind: q.kind.clone(),
        after,
        limit,
    })?;
    let next = if page.len() == limit {
        page.last().map(|s| s.id)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(json!({
        "workflows": page.iter().map(summary_view).collect::<Vec<_>>(),
        "nextCursor": next,
    })))
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
        (status = 200, description = "the workflow", body = serde_json::Value),
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

/// A workflow's event stream.
#[utoipa::path(
    tag = "workflows",
    params(("id" = String, Path, description = "workflow id")),
    responses(
        (status = 200, description = "its events", body = serde_json::Value),
        crate::openapi::TenantErrors,
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/workflows/{id}/events")]
async fn events(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let wf = visible_workflow(&state.engine, &caller, &id, None).await?;
    let events = state.engine.events(wf.id)?;
    let items: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
            if let Some(obj) = v.as_object_mut() {
                let tag = obj.remove("t").unwrap_or(Value::Null);
                obj.insert("seq".into(), json!(i + 1));
                obj.insert("type".into(), tag);
            }
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"workflowId": wf.id, "events": items})))
}

/// Resume a failed workflow from the failed step.
#[utoipa::path(
    tag = "workflows",
    params(("id" = String, Path, description = "workflow id")),
    responses(
        (status = 202, description = "resumed", body = serde_json::Value),
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
    Ok(HttpResponse::Accepted().json(workflow_view(&after)))
}

/// Cancel: pending at once, running at the next safe point.
#[utoipa::path(
    tag = "workflows",
    params(("id" = String, Path, description = "workflow id")),
    responses(
        (status = 202, description = "cancelled or cancel requested", body = serde_json::Value),
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
    Ok(HttpResponse::Accepted().json(workflow_view(&after)))
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
