//! The caller's tenant itself: `GET /api/v1/tenant/tables`, the tables an
//! export or a partial rehydration can choose from (the console's forms
//! list them).

use super::tenant_tables;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use actix_web::{get, web, HttpResponse};

/// The tenant's tables.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TablesView {
    /// Table names, in the tenant store's order.
    tables: Vec<String>,
}

/// The tables of the caller's tenant.
#[utoipa::path(
    tag = "tenant",
    responses(
        (status = 200, description = "the tenant's tables", body = TablesView),
        crate::openapi::TenantErrors,
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/tenant/tables")]
async fn tables(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let tables = tenant_tables(&state, &caller.tenant).await?;
    Ok(HttpResponse::Ok().json(TablesView {
        tables: tables.to_vec(),
    }))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(tables))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(tables);
}
