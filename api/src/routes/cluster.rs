//! `GET /api/v1/cluster` (platform admins): the nodes of the cluster, their
//! heartbeats and the tenants each drives (see `ferry_storage::cluster`).
//! A single node answers `clustered: false` and no nodes.

use crate::app::AppState;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use actix_web::{get, web, HttpResponse};
use serde_json::json;

/// The cluster as the answering node sees it.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct ClusterDoc {
    clustered: bool,
    /// The node that answered (absent on a single node).
    node: Option<String>,
    /// Seconds after a node's last heartbeat before its tenants are taken over.
    lease_seconds: Option<f64>,
    /// Each node: `nodeId`, `startedAt`, `heartbeatAt`, `expiresAt`, `live`,
    /// `draining`, `objectStore`, and `tenants` (tenant → lease epoch).
    #[schema(value_type = Vec<Object>)]
    nodes: Vec<()>,
}

#[utoipa::path(
    tag = "ops",
    responses(
        (status = 200, description = "the cluster's nodes and leases", body = ClusterDoc),
        crate::openapi::TenantErrors,
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/cluster")]
async fn cluster(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    if caller.role != Role::PlatformAdmin || caller.impersonating {
        return Err(ApiError::forbidden(
            "only a platform_admin may see the cluster",
        ));
    }
    let Some(cluster) = state.cluster.get().cloned() else {
        return Ok(HttpResponse::Ok().json(json!({"clustered": false, "node": null, "nodes": []})));
    };
    let view = web::block(move || cluster.view())
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(format!("{}: {}", e.code, e.message)))?;
    Ok(HttpResponse::Ok().json(json!({
        "clustered": true,
        "node": view.node,
        "leaseSeconds": view.lease_seconds,
        "nodes": view.nodes,
    })))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(cluster), components(schemas(ClusterDoc)))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(cluster);
}
