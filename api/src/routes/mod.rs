//! HTTP routes, one file per resource. Handlers convert wire types to
//! engine/workflow types and back; they hold no business logic.

pub mod audit;
pub mod cluster;
pub mod download;
pub mod export;
pub mod live;
pub mod ops;
pub mod rehydrate;
pub mod tenant;
pub mod workflows;

use crate::error::ApiError;
use actix_web::http::StatusCode;
use ferry_engine::{TenantId, WorkflowId, WorkflowState};
use std::sync::Arc;

/// `202 Accepted` with `Location` set to the status URL of workflow `wf`:
/// the kind's own status endpoint (export, rehydrate), else the generic
/// workflow view. Every 202 of the API is built here.
pub fn accepted(wf: &WorkflowState) -> actix_web::HttpResponseBuilder {
    let location = match wf.kind.as_str() {
        ferry_workflows::export::KIND => format!("/api/v1/tenant/export/{}/status", wf.id),
        ferry_workflows::rehydrate::KIND => format!("/api/v1/tenant/rehydrate/{}/status", wf.id),
        _ => format!("/api/v1/workflows/{}", wf.id),
    };
    let mut res = actix_web::HttpResponse::Accepted();
    res.insert_header((actix_web::http::header::LOCATION, location));
    res
}

/// Load a workflow the caller may see. Another tenant's id is "not found",
/// exactly like an unknown one, so ids cannot be probed.
pub async fn visible_workflow(
    engine: &ferry_engine::Engine,
    caller: &crate::auth::Caller,
    id: &str,
    kind: Option<&str>,
) -> Result<WorkflowState, ApiError> {
    let id: WorkflowId = id.parse().map_err(|_| ApiError::not_found("workflow"))?;
    let state = engine
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found("workflow"))?;
    if state.tenant != caller.tenant || kind.is_some_and(|k| k != state.kind) {
        return Err(ApiError::not_found("workflow"));
    }
    Ok(state)
}

/// The per-tenant daily limit of workflows of `kind` (counted from the event
/// log, so it survives restarts): `rate_limited` (429) once `max` workflows
/// that `counts` accepts were submitted since UTC midnight, naming when the
/// limit resets (also in `Retry-After`, in seconds). Every workflow counts
/// unless `counts` says otherwise (e.g. a rehydration's dry run).
pub async fn check_daily_limit(
    engine: &ferry_engine::Engine,
    caller: &crate::auth::Caller,
    kind: &str,
    what: &str,
    max: u64,
    counts: Option<fn(&WorkflowState) -> bool>,
) -> Result<(), ApiError> {
    use chrono::{Duration, TimeZone, Utc};
    let now = engine.now();
    let midnight =
        Utc.from_utc_datetime(&now.date_naive().and_hms_opt(0, 0, 0).expect("valid time"));
    let submitted = engine.count_submitted_since(&caller.tenant, kind, midnight)?;
    let today = match counts {
        // Fewer submitted than the limit: fewer counted, too.
        Some(counts) if submitted >= max => {
            counted_since(engine, &caller.tenant, kind, midnight, counts).await?
        }
        _ => submitted,
    };
    if today >= max {
        let reset = midnight + Duration::days(1);
        return Err(ApiError::new(
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "daily {what} limit of {max} reached; it resets at {}",
                reset.to_rfc3339()
            ),
        )
        .retry_after((reset - now).num_seconds().max(1) as u64));
    }
    Ok(())
}

/// The tenant's workflows of `kind` created at or after `since` that
/// `counts` accepts. It walks the tenant's workflows of that kind newest
/// first and stops at the first one older than `since` (ids sort by
/// creation time); it is asked only when the plain count reached the limit.
async fn counted_since(
    engine: &ferry_engine::Engine,
    tenant: &TenantId,
    kind: &str,
    since: ferry_engine::Timestamp,
    counts: fn(&WorkflowState) -> bool,
) -> Result<u64, ApiError> {
    let limit = ferry_engine::log::LIST_LIMIT_MAX;
    let mut after = None;
    let mut counted = 0;
    loop {
        let page = engine.list(&ferry_engine::ListQuery {
            tenant: Some(tenant.clone()),
            kind: Some(kind.to_owned()),
            status: None,
            after,
            limit,
            newest_first: true,
        })?;
        for s in &page {
            if s.created_at < since {
                return Ok(counted);
            }
            if engine.get(s.id).await?.is_some_and(|state| counts(&state)) {
                counted += 1;
            }
        }
        if page.len() < limit {
            return Ok(counted);
        }
        after = page.last().map(|s| s.id);
    }
}

/// The tables of `tenant`'s database, as a submit checks a request
/// naming `needed`: the list read less than `FERRY_TABLES_CACHE_SECS` ago
/// when it holds them all, else read afresh (see `table_cache`).
pub async fn tenant_tables_having<'a>(
    state: &crate::app::AppState,
    tenant: &TenantId,
    needed: impl IntoIterator<Item = &'a str>,
) -> Result<Arc<Vec<String>>, ApiError> {
    match state.tables.get(tenant, needed) {
        Some(tables) => Ok(tables),
        None => tenant_tables(state, tenant).await,
    }
}

/// The tables of `tenant`'s database, read now (and kept for the submit
/// paths): `tenant_not_found` (404) when it has none, `tenant_unavailable`
/// (503) when it cannot be read now (locked, corrupt), without paths or
/// driver text.
pub async fn tenant_tables(
    state: &crate::app::AppState,
    tenant: &TenantId,
) -> Result<Arc<Vec<String>>, ApiError> {
    let tenants = state.tenants.clone();
    let t = tenant.clone();
    let tables = actix_web::web::block(move || tenants.list_tables(&t))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| match e.code.as_str() {
            "tenant_not_found" => ApiError::new(
                StatusCode::NOT_FOUND,
                "tenant_not_found",
                format!("tenant {tenant} has no data"),
            ),
            code => {
                tracing::warn!(%tenant, code, error = %e.message, "tenant database unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "tenant_unavailable",
                    format!("the tenant's database cannot be read now ({code})"),
                )
            }
        })?;
    Ok(state.tables.put(tenant, tables))
}
