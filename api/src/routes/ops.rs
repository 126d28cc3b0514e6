//! Operational endpoints: `/healthz` and `/metrics` (Prometheus text).

use crate::app::AppState;
use actix_web::{get, web, HttpResponse};
use prometheus::{Encoder, TextEncoder};
use serde_json::json;

#[get("/healthz")]
async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    // The event log answering a read is what "healthy" means for ferry.
    match state.engine.log().next_timer() {
        // The pid lets a supervisor (or a test) tell which process answered.
        Ok(_) => HttpResponse::Ok().json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "pid": std::process::id()})),
        Err(e) => {
            tracing::error!(error = %e, "health check: event log unreadable");
            HttpResponse::ServiceUnavailable().json(json!({"status": "unavailable"}))
        }
    }
}

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

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(metrics);
}
