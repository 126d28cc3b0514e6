//! The seed's export endpoints, with exactly the request and response shapes
//! of SPEC: create (202 + job), status, and download (audited, then a
//! redirect to a short-lived link).

use super::visible_workflow;
use crate::app::{AppState, DOWNLOAD_TARGET_TTL};
use crate::auth::Caller;
use crate::error::ApiError;
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::Duration as ChronoDuration;
use ferry_engine::SubmitRequest;
use ferry_workflows::export::{
    self, artifact, parse_request, ArtifactError, ExportInput, ExportStatusView, Requester,
};
use ferry_workflows::ports::objects::{Area, DownloadTarget};
use serde_json::json;

/// `POST /api/v1/tenant/export`'s body (the tenant comes from the token).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ExportRequestDoc {
    /// `lite` (NDJSON), `native` (the database's own format) or `analytics` (CSV).
    #[schema(pattern = "^(lite|native|analytics)$")]
    profile: String,
    include_assets: Option<bool>,
    /// Inclusive days, `analytics` only.
    date_range: Option<DateRangeDoc>,
    /// Only these tables (default: all).
    tables: Option<Vec<String>>,
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct DateRangeDoc {
    #[schema(format = Date)]
    from: String,
    #[schema(format = Date)]
    to: String,
}

/// `202` of a create: the job, pending.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ExportCreatedDoc {
    message: String,
    job: ExportJobDoc,
}

/// The job a create answers with.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ExportJobDoc {
    #[schema(format = Uuid)]
    id: String,
    tenant_id: String,
    profile: String,
    status: String,
    #[schema(format = DateTime)]
    requested_at: String,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(create, status, download),
    components(schemas(
        ExportRequestDoc,
        DateRangeDoc,
        ExportCreatedDoc,
        ExportJobDoc,
        ExportStatusView
    ))
)]
pub struct Api;

/// Longest accepted `Idempotency-Key`.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 128;

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let s = v.to_str().map_err(|_| {
        ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be printable ASCII",
        )
    })?;
    if s.is_empty() || s.len() > IDEMPOTENCY_KEY_LEN_MAX || !s.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            format!("Idempotency-Key must be 1..={IDEMPOTENCY_KEY_LEN_MAX} printable characters"),
        ));
    }
    Ok(Some(s.to_owned()))
}

fn artifact_error(e: ArtifactError) -> ApiError {
    let http_status = match e {
        ArtifactError::NotAnExport => StatusCode::NOT_FOUND,
        ArtifactError::NotReady => StatusCode::CONFLICT,
        ArtifactError::Expired => StatusCode::GONE,
    };
    ApiError::new(http_status, e.code(), e.to_string())
}

/// Start an export of the caller's tenant.
#[utoipa::path(
    tag = "export",
    request_body = ExportRequestDoc,
    params(("Idempotency-Key" = Option<String>, Header, description = "the same key and body return the same job; the same key with another body is 409")),
    responses(
        (status = 202, description = "export job created (or found by its idempotency key)", body = ExportCreatedDoc, headers(("Location" = String, description = "the status URL of the workflow"))),
        (status = 409, description = "conflict, e.g. an Idempotency-Key reused with another body", body = crate::openapi::ErrorBody),
        (status = 413, description = "body too large", body = crate::openapi::ErrorBody),
        (status = 429, description = "daily export limit reached", body = crate::openapi::ErrorBody, headers(("Retry-After" = u64, description = "seconds until the limit resets"))),
        (status = 503, description = "the tenant's database cannot be read now", body = crate::openapi::ErrorBody),
        crate::openapi::TenantErrors,
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/tenant/export")]
async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request = parse_request(&body).map_err(|e| ApiError::bad_request(e.code, e.message))?;
    let needed = request.tables.iter().flatten().map(String::as_str);
    let tables = super::tenant_tables_having(&state, &caller.tenant, needed).await?;
    request
        .check_tables(tables.iter().map(String::as_str))
        .map_err(|e| ApiError::bad_request(e.code, e.message))?;
    let key = idempotency_key(&req)?;
    let known = match &key {
        Some(k) => state
            .engine
            .find_idempotency(&caller.tenant, k)
            .map_err(ApiError::internal)?
            .is_some(),
        None => false,
    };
    if !known {
        super::check_daily_limit(
            &state.engine,
            &caller,
            export::KIND,
            "export",
            state.config.exports_per_day_max,
            None,
        )
        .await?;
    }
    let input = ExportInput::new(
        request,
        Requester {
            sub: caller.sub.clone(),
            email: caller.email.clone(),
        },
    );
    let submitted = state
        .engine
        .submit(SubmitRequest {
            tenant: caller.tenant.clone(),
            kind: export::KIND.to_owned(),
            input: input.to_value(),
            idempotency_key: key,
            requested_by: Some(caller.actor()),
        })
        .await?;
    let wf = submitted.state;
    // A key names one request: the same body gets the stored job exactly,
    // another body is refused rather than answered with the first job.
    let input = if submitted.created {
        input
    } else {
        let stored = Some(&wf)
            .filter(|wf| wf.kind == export::KIND)
            .and_then(|wf| ExportInput::from_value(&wf.input).ok())
            .filter(|stored| stored.request == input.request);
        stored.ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                "this Idempotency-Key was used with another request body; use a new key",
            )
        })?
    };
    if submitted.created {
        state
            .audit_request(&req, &caller, "EXPORT_REQUESTED", &wf, json!({"profile": input.request.profile.as_str(), "includeAssets": input.request.include_assets}))
            .await;
    }
    Ok(super::accepted(&wf).json(json!({
        "message": "Export job created successfully",
        "job": {
            "id": wf.id,
            "tenantId": wf.tenant,
            "profile": input.request.profile.as_str(),
            "status": wf.status,
            "requestedAt": wf.created_at,
        }
    })))
}

/// An export's status, progress and (when ready) download URL.
#[utoipa::path(
    tag = "export",
    params(("id" = String, Path, description = "export id")),
    responses(
        (status = 200, description = "status", body = ExportStatusView),
        crate::openapi::TenantErrors,
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/tenant/export/{id}/status")]
async fn status(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let wf = visible_workflow(&state.engine, &caller, &id, Some(export::KIND)).await?;
    let view = ExportStatusView::from_state(&wf, state.engine.now()).with_download_url(|id| {
        format!(
            "{}/api/v1/tenant/export/{id}/download",
            state.config.public_url
        )
    });
    Ok(HttpResponse::Ok().json(view))
}

/// Download a finished export: audited, then a redirect to a short-lived link.
#[utoipa::path(
    tag = "export",
    params(("id" = String, Path, description = "export id")),
    responses(
        (status = 302, description = "redirect to the bundle", headers(("Location" = String))),
        (status = 409, description = "export not ready", body = crate::openapi::ErrorBody),
        (status = 410, description = "export expired", body = crate::openapi::ErrorBody),
        crate::openapi::TenantErrors,
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/tenant/export/{id}/download")]
async fn download(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let wf = visible_workflow(&state.engine, &caller, &id, Some(export::KIND)).await?;
    let art = artifact(&wf, state.engine.now()).map_err(artifact_error)?;
    let target = state
        .objects
        .download_target(Area::Exports, &art.key, DOWNLOAD_TARGET_TTL)
        .await
        .map_err(ApiError::internal)?;
    let location = match target {
        DownloadTarget::Redirect(url) => url,
        // Local store: ferry serves the file itself through a short link.
        DownloadTarget::LocalFile(_) => {
            let exp = state.engine.now()
                + ChronoDuration::from_std(DOWNLOAD_TARGET_TTL).expect("small duration");
            state
                .links
                .sign(&wf.id, &wf.tenant, exp.min(art.expires_at))
        }
    };
    state
        .audit_request(
            &req,
            &caller,
            "EXPORT_DOWNLOAD_REQUESTED",
            &wf,
            json!({"sizeBytes": art.size_bytes, "checksum": art.checksum}),
        )
        .await;
    state
        .data_metrics
        .downloads
        .with_label_values(&["api"])
        .inc();
    Ok(HttpResponse::Found()
        .insert_header(("Location", location))
        .finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(crate::server::JSON_BODY_BYTES_MAX))
        .service(create)
        .service(status)
        .service(download);
}
