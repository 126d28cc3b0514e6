//! Audit endpoints: the caller's tenant's entries, and a verification of
//! its chain. Both speak of the tenant's own chain only
//! ([`ferry_workflows::ports::audit`]): `seq`, `prevHash` and `hash` are its
//! entries' positions and links in that chain, so neither the platform's
//! sequence, nor its gaps, nor another tenant's hash reach the caller. The
//! platform's whole chain is checked by `ferry audit-verify`.

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use actix_web::{get, web, HttpResponse};
use ferry_workflows::ports::audit::{AuditQuery, ChainReport, Order, AUDIT_LIST_LIMIT_MAX};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    action: Option<String>,
    #[serde(rename = "entityId")]
    entity_id: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
    /// `asc` (default) or `desc`.
    order: Option<String>,
}

/// One page of the audit log.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct AuditPageDoc {
    /// Entries with their `seq`, `prevHash` and `hash`.
    #[schema(value_type = Vec<Object>)]
    entries: Vec<serde_json::Value>,
    /// Pass as `after` for the next page; null on the last one.
    next_cursor: Option<u64>,
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list, verify), components(schemas(AuditPageDoc, ChainReport)))]
pub struct Api;

/// The caller's tenant's audit entries, in its own chain (`seq` 1, 2, 3, ...;
/// `after` and `nextCursor` are such positions).
#[utoipa::path(
    tag = "audit",
    params(AuditParams),
    responses(
        (status = 200, description = "one page", body = AuditPageDoc),
        crate::openapi::TenantErrors,
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/audit")]
async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<AuditParams>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > AUDIT_LIST_LIMIT_MAX {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be 1..={AUDIT_LIST_LIMIT_MAX}"),
        ));
    }
    let order = match q.order.as_deref() {
        None | Some("asc") => Order::Asc,
        Some("desc") => Order::Desc,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_order",
                format!("order must be asc or desc, not {other:?}"),
            ))
        }
    };
    let records = state
        .audit
        .list(&AuditQuery {
            tenant: Some(caller.tenant.clone()),
            action: q.action.clone(),
            entity_id: q.entity_id.clone(),
            after: q.after,
            order,
            limit,
        })
        .await
        .map_err(ApiError::internal)?;
    let next = if records.len() == limit {
        records.last().map(|r| r.seq)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(json!({"entries": records, "nextCursor": next})))
}

/// Recompute the caller's tenant's chain: `entries` is the number of its
/// entries, `firstBrokenSeq` the first of them (in its own chain) that the
/// log no longer vouches for; `ok` is false too when the log is broken
/// after all of them or its anchor is missing or forged.
#[utoipa::path(
    tag = "audit",
    responses(
        (status = 200, description = "the verification report", body = ChainReport),
        crate::openapi::TenantErrors,
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/audit/verify")]
async fn verify(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let report = state
        .audit
        .verify_tenant(&caller.tenant)
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(report))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(verify).service(list);
}
