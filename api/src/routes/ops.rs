//! Operational endpoints: `/healthz`, `/metrics` (Prometheus text) and
//! `/openapi.json` (the API's OpenAPI document, see `crate::openapi`).

use crate::app::AppState;
use actix_web::{get, web, HttpResponse};
use prometheus::{Encoder, TextEncoder};
use serde_json::json;

/// `/healthz`'s body.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct HealthDoc {
    /// `ok`, or `unavailable` (with 503).
    status: String,
    /// Only when ok.
    version: Option<String>,
    /// The answering process, only when ok.
    pid: Option<u32>,
}

/// An OpenAPI 3.1 document.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct OpenApiDoc {
    openapi: String,
    #[schema(value_type = Object)]
    info: (),
    #[schema(value_type = Object)]
    paths: (),
}

/// Health: the event log answers.
#[utoipa::path(
    tag = "ops",
    responses(
        (status = 200, description = "ferry is up", body = HealthDoc),
        (status = 503, description = "the event log is unreadable", body = HealthDoc),
    )
)]
#[get("/healthz")]
async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    // The event log answering a read is what "healthy" means for ferry.
    match state.engine.next_timer() {
        // The pid lets a supervisor (or a test) tell which process answered.
        Ok(_) => HttpResponse::Ok().json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "pid": std::process::id()})),
        Err(e) => {
            tracing::error!(error = %e, "health check: event log unreadable");
            HttpResponse::ServiceUnavailable().json(json!({"status": "unavailable"}))
        }
    }
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(
    tag = "ops",
    responses(
        (status = 200, description = "metrics", content_type = "text/plain", body = String),
        (status = 500, description = "metrics could not be encoded"),
    )
)]
#[get("/metrics")]
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut buf = Vec::new();
    let families = state.registry.gather();
    if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
        tracing::error!(error = %e, "encoding metrics");
        return HttpResponse::InternalServerError().finish();
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(buf)
}

/// This document.
#[utoipa::path(
    tag = "ops",
    responses((status = 200, description = "the OpenAPI document", body = OpenApiDoc))
)]
#[get("/openapi.json")]
async fn openapi_json() -> HttpResponse {
    // The document is fixed at build time: render it once.
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = DOCUMENT.get_or_init(|| {
        serde_json::to_string(&crate::openapi::document()).expect("the document serializes")
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.as_str())
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(healthz, metrics, openapi_json),
    components(schemas(HealthDoc, OpenApiDoc))
)]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(metrics).service(openapi_json);
}
