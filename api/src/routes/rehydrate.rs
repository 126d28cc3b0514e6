//! The rehydration endpoints of SPEC: create (an uploaded bundle, streamed
//! to disk and size-limited, or `{"exportId"}`), status, preview, the typed
//! confirmation, rollback of a finished rehydration, and the row-level
//! validation report.

use super::visible_workflow;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use ferry_engine::{SubmitRequest, TenantId};
use ferry_workflows::export::{self, artifact};
use ferry_workflows::rehydrate::input::{parse_json_request, parse_query_options, Requester};
use ferry_workflows::rehydrate::status::{can_confirm, can_roll_back, preview, ActionError};
use ferry_workflows::rehydrate::steps::preview::PreviewOutput;
use ferry_workflows::rehydrate::{
    self, Options, RehydrateInput, RehydrateStatusView, Source, CONFIRM_SIGNAL, CONFIRM_TEXT,
};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

/// `POST /api/v1/tenant/rehydrate` with `Content-Type: application/json`:
/// rehydrate from one of the tenant's own exports. (Any other content type
/// is a bundle upload, with the options in the query string.)
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct RehydrateRequestDoc {
    export_id: String,
    /// `replace` (default), `merge` or `partial`.
    mode: Option<String>,
    tables: Option<Vec<String>>,
    dry_run: Option<bool>,
    /// Merge only: per table, the columns of the natural key to upsert by
    /// (a unique index's columns; default the primary key).
    merge_keys: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

/// `202` of a create: the job, pending.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct RehydrateCreatedDoc {
    message: String,
    job: RehydrateJobDoc,
}

/// The job a create answers with.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct RehydrateJobDoc {
    #[schema(format = Uuid)]
    id: String,
    tenant_id: String,
    /// `replace`, `merge` or `partial`.
    mode: String,
    dry_run: bool,
    status: String,
    #[schema(format = DateTime)]
    requested_at: String,
}

/// The options of a bundle upload (any content type but JSON), in the
/// query string; a JSON request carries them in its body instead.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct UploadParams {
    /// `replace` (default), `merge` or `partial`.
    mode: Option<String>,
    /// Comma-separated tables to load (default: every table of the bundle).
    tables: Option<String>,
    /// `true`: validate and preview only, change nothing (does not count
    /// against the daily limit).
    dry_run: Option<bool>,
    /// Merge only, one per table: `mergeKey.<table>=col1,col2`, the columns
    /// of the natural key to upsert that table by (default its primary key).
    #[serde(rename = "mergeKey.<table>")]
    #[param(rename = "mergeKey.<table>")]
    merge_key: Option<String>,
}

/// `{"confirm": "DELETE"}`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ConfirmDoc {
    confirm: String,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(create, status, get_preview, confirm, rollback, report),
    components(schemas(
        RehydrateRequestDoc,
        ConfirmDoc,
        RehydrateCreatedDoc,
        RehydrateJobDoc,
        RehydrateStatusView,
        PreviewOutput
    ))
)]
pub struct Api;

fn action_error(e: ActionError) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, e.code(), e.to_string())
}

/// What a person whose confirmation was refused can do next: the
/// rehydration stays waiting (until its deadline), so it can still be
/// confirmed or cancelled, never stuck.
fn confirm_hint(wf: &ferry_engine::WorkflowState) -> String {
    let cancel = format!("POST /api/v1/workflows/{}/cancel", wf.id);
    let deadline = match wf.timers.get(rehydrate::CONFIRM_TIMER) {
        Some(t) if !t.fired => format!(
            "; if nothing is done it is cancelled at {}",
            t.due_at.to_rfc3339()
        ),
        _ => String::new(),
    };
    format!("to give up, cancel it ({cancel}){deadline}")
}

/// A refused confirmation, with what to do next.
fn confirm_refused(wf: &ferry_engine::WorkflowState, e: ActionError) -> ApiError {
    match e {
        ActionError::MergeConflicts => {
            let p = preview(wf);
            let n = p.as_ref().map_or(0, |p| p.conflicts);
            let tables: Vec<&str> = p
                .as_ref()
                .map(|p| {
                    p.tables
                        .iter()
                        .filter(|t| t.conflicts > 0)
                        .map(|t| t.table.as_str())
                        .collect()
                })
                .unwrap_or_default();
            ApiError::new(
                StatusCode::CONFLICT,
                e.code(),
                format!(
                    "the preview shows {n} merge conflict(s) (tables: {}); a merge with conflicts cannot be confirmed",
                    tables.join(", ")
                ),
            )
            .hint(format!(
                "resolve the {n} conflict(s): fix the bundle, or choose other merge keys (mergeKeys), \
                 and start a new rehydration (see GET /api/v1/tenant/rehydrate/{}/preview); {}",
                wf.id,
                confirm_hint(wf)
            ))
        }
        ActionError::NotAwaitingConfirmation => action_error(e).hint(format!(
            "the rehydration is {}; see GET /api/v1/tenant/rehydrate/{}/status",
            wf.status, wf.id
        )),
        other => action_error(other),
    }
}

/// Stream the request body into `<uploads>/<id>.zip`: hashed on the way,
/// refused past the size limit, fsynced and renamed only when complete.
async fn store_upload(
    state: &AppState,
    tenant: &TenantId,
    mut body: web::Payload,
) -> Result<(String, u64, String), ApiError> {
    let wf = &state.rehydrate;
    let max = wf.config().upload_bytes_max;
    let dir = &wf.config().uploads_dir;
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(ApiError::internal)?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let tmp = dir.join(format!(".{id}.part"));
    let mut file = tokio::fs::File::create(&tmp)
        .await
        .map_err(ApiError::internal)?;
    let mut hasher = blake3::Hasher::new();
    let mut total = 0u64;
    let outcome: Result<(), ApiError> = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::bad_request("upload_failed", format!("the upload broke off: {e}"))
            })?;
            total += chunk.len() as u64;
            if total > max {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "upload_too_large",
                    format!("bundles may be at most {max} bytes"),
                ));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(ApiError::internal)?;
        }
        if total == 0 {
            return Err(ApiError::bad_request(
                "empty_upload",
                "the request body is empty; send the bundle as application/zip",
            ));
        }
        file.sync_all().await.map_err(ApiError::internal)?;
        Ok(())
    }
    .await;
    drop(file);
    if let Err(e) = outcome {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    tokio::fs::rename(&tmp, wf.upload_path(&id))
        .await
        .map_err(ApiError::internal)?;
    // In a cluster another node may run the rehydration: it reads this copy.
    if wf.config().shared_uploads {
        let key = ferry_workflows::rehydrate::shared_upload_key(tenant, &id)
            .map_err(|e| ApiError::internal(e.message))?;
        state
            .objects
            .put_file(
                ferry_workflows::ports::objects::Area::Backups,
                &key,
                &wf.upload_path(&id),
            )
            .await
            .map_err(|e| ApiError::internal(e.message))?;
    }
    Ok((id, total, hasher.finalize().to_hex().to_string()))
}

/// The exports-area key of a finished export of the caller's tenant.
async fn export_source(state: &AppState, caller: &Caller, id: &str) -> Result<Source, ApiError> {
    let wf = visible_workflow(&state.engine, caller, id, Some(export::KIND))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "export_not_found",
                "no export with this id for this tenant",
            )
        })?;
    let art = artifact(&wf, state.engine.now()).map_err(|e| {
        ApiError::new(
            StatusCode::CONFLICT,
            "export_not_available",
            format!("the export's bundle cannot be used: {e}"),
        )
    })?;
    Ok(Source::Export {
        id: wf.id.to_string(),
        key: art.key.to_string(),
    })
}

/// Start a rehydration from an export (JSON body) or an uploaded bundle.
#[utoipa::path(
    tag = "rehydrate",
    params(UploadParams),
    request_body(content(
        (RehydrateRequestDoc = "application/json"),
        (Vec<u8> = "application/zip"),
    )),
    responses(
        (status = 202, description = "rehydration job created", body = RehydrateCreatedDoc, headers(("Location" = String, description = "the status URL of the workflow"))),
        (status = 409, description = "the export is not ready", body = crate::openapi::ErrorBody),
        (status = 410, description = "the export expired", body = crate::openapi::ErrorBody),
        (status = 413, description = "upload too large", body = crate::openapi::ErrorBody),
        (status = 429, description = "daily rehydration limit reached", body = crate::openapi::ErrorBody),
        crate::openapi::TenantErrors,
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/tenant/rehydrate")]
async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    query: web::Query<Vec<(String, String)>>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let json_body = req
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    super::check_daily_limit(
        &state.engine,
        &caller,
        rehydrate::KIND,
        "rehydration",
        state.config.rehydrations_per_day_max,
        // Dry runs and bundles refused by validation change nothing.
        Some(rehydrate::status::counts_against_daily_limit),
    )
    .await?;
    let (source, options): (Source, Options) = if json_body {
        let bytes = read_small_body(body).await?;
        let (export_id, options) =
            parse_json_request(&bytes).map_err(|e| ApiError::bad_request(e.code, e.message))?;
        check_merge_key_tables(&state, &caller, &options).await?;
        (export_source(&state, &caller, &export_id).await?, options)
    } else {
        let options =
            parse_query_options(&query).map_err(|e| ApiError::bad_request(e.code, e.message))?;
        check_merge_key_tables(&state, &caller, &options).await?;
        let (id, bytes, blake3) = store_upload(&state, &caller.tenant, body).await?;
        (Source::Upload { id, bytes, blake3 }, options)
    };
    let input = RehydrateInput::new(
        source,
        options,
        Requester {
            sub: caller.sub.clone(),
            email: caller.email.clone(),
        },
    );
    let submitted = state
        .engine
        .submit(SubmitRequest {
            tenant: caller.tenant.clone(),
            kind: rehydrate::KIND.to_owned(),
            input: input.to_value(),
            idempotency_key: None,
            requested_by: Some(caller.actor()),
        })
        .await?;
    let wf = submitted.state;
    state
        .audit_request(
            &req,
            &caller,
            "REHYDRATE_REQUESTED",
            &wf,
            json!({"mode": input.mode.as_str(), "dryRun": input.dry_run, "tables": input.tables}),
        )
        .await;
    Ok(super::accepted(&wf).json(json!({
        "message": "Rehydration job created successfully",
        "job": {
            "id": wf.id,
            "tenantId": wf.tenant,
            "mode": input.mode.as_str(),
            "dryRun": input.dry_run,
            "status": wf.status,
            "requestedAt": wf.created_at,
        }
    })))
}

/// Every table `mergeKeys` names must be one the rehydration loads: a
/// table of the tenant, and one of `tables` when only some are chosen.
/// (A key for any other table would be ignored without a word.)
async fn check_merge_key_tables(
    state: &AppState,
    caller: &Caller,
    options: &Options,
) -> Result<(), ApiError> {
    if options.merge_keys.is_empty() {
        return Ok(());
    }
    let needed = options.merge_keys.keys().map(String::as_str);
    let tables = super::tenant_tables_having(state, &caller.tenant, needed).await?;
    for table in options.merge_keys.keys() {
        let chosen = options.tables.as_ref().is_none_or(|t| t.contains(table));
        if !tables.contains(table) || !chosen {
            return Err(ApiError::bad_request(
                "invalid_merge_keys",
                format!("mergeKeys names table {table:?}, which this rehydration does not load"),
            ));
        }
    }
    Ok(())
}

async fn read_small_body(mut body: web::Payload) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| ApiError::bad_request("invalid_body", "unreadable body"))?;
        if out.len() + chunk.len() > rehydrate::input::BODY_BYTES_MAX {
            return Err(ApiError::payload_too_large(
                rehydrate::input::BODY_BYTES_MAX,
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A rehydration's status and progress.
#[utoipa::path(
    tag = "rehydrate",
    params(("id" = String, Path, description = "rehydration id")),
    responses(
        (status = 200, description = "status", body = RehydrateStatusView),
        crate::openapi::TenantErrors,
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/tenant/rehydrate/{id}/status")]
async fn status(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let wf = visible_workflow(&state.engine, &caller, &id, Some(rehydrate::KIND)).await?;
    let has_report = tokio::fs::metadata(state.rehydrate.report_path(wf.id))
        .await
        .is_ok_and(|m| m.len() > 0);
    Ok(HttpResponse::Ok().json(RehydrateStatusView::from_state(&wf, has_report)))
}

/// Per table: rows that would be deleted, inserted, updated; conflicts.
#[utoipa::path(
    tag = "rehydrate",
    params(("id" = String, Path, description = "rehydration id")),
    responses(
        (status = 200, description = "the preview", body = PreviewOutput),
        (status = 409, description = "not validated yet", body = crate::openapi::ErrorBody),
        crate::openapi::TenantErrors,
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/tenant/rehydrate/{id}/preview")]
async fn get_preview(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let wf = visible_workflow(&state.engine, &caller, &id, Some(rehydrate::KIND)).await?;
    let p = preview(&wf).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "preview_not_ready",
            "the bundle is not validated yet (or failed validation); see the status",
        )
    })?;
    Ok(HttpResponse::Ok().json(p))
}

/// The typed confirmation `{"confirm": "DELETE"}`: the destructive steps may start.
#[utoipa::path(
    tag = "rehydrate",
    params(("id" = String, Path, description = "rehydration id")),
    request_body = ConfirmDoc,
    responses(
        (status = 202, description = "confirmed", body = RehydrateStatusView, headers(("Location" = String, description = "the status URL of the workflow"))),
        (status = 409, description = "not awaiting confirmation", body = crate::openapi::ErrorBody),
        crate::openapi::TenantErrors,
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/tenant/rehydrate/{id}/confirm")]
async fn confirm(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let wf = visible_workflow(&state.engine, &caller, &id, Some(rehydrate::KIND)).await?;
    let waiting = can_confirm(&wf).map_err(|e| confirm_refused(&wf, e));
    let retype = || {
        format!(
            "to go on, send {{\"confirm\": \"DELETE\"}}; {}",
            confirm_hint(&wf)
        )
    };
    let v: Value = serde_json::from_slice(&body).map_err(|_| {
        let e = ApiError::bad_request("invalid_body", "send {\"confirm\": \"DELETE\"}");
        if waiting.is_ok() {
            e.hint(retype())
        } else {
            e
        }
    })?;
    if v.get("confirm").and_then(Value::as_str) != Some(CONFIRM_TEXT) {
        let e = ApiError::bad_request(
            "confirmation_mismatch",
            "the confirmation must be exactly {\"confirm\": \"DELETE\"}; the rehydration is still waiting for it",
        );
        return Err(if waiting.is_ok() { e.hint(retype()) } else { e });
    }
    waiting?;
    let payload = json!({"confirmedBy": caller.actor(), "at": state.engine.now()});
    let after = state
        .engine
        .signal(wf.id, CONFIRM_SIGNAL, payload)
        .await
        .map_err(|e| match e {
            ferry_engine::Error::Rejected(_) => {
                confirm_refused(&wf, ActionError::NotAwaitingConfirmation)
            }
            other => other.into(),
        })?;
    state
        .audit_request(&req, &caller, "REHYDRATE_CONFIRMED", &after, json!({}))
        .await;
    Ok(super::accepted(&after).json(RehydrateStatusView::from_state(&after, false)))
}

/// Undo a finished rehydration while its backup is kept.
#[utoipa::path(
    tag = "rehydrate",
    params(("id" = String, Path, description = "rehydration id")),
    responses(
        (status = 202, description = "rollback started", body = RehydrateStatusView, headers(("Location" = String, description = "the status URL of the workflow"))),
        (status = 409, description = "cannot be rolled back", body = crate::openapi::ErrorBody),
        crate::openapi::TenantErrors,
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/tenant/rehydrate/{id}/rollback")]
async fn rollback(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let wf = visible_workflow(&state.engine, &caller, &id, Some(rehydrate::KIND)).await?;
    can_roll_back(&wf).map_err(action_error)?;
    let after = state
        .engine
        .rollback(wf.id, &format!("rollback requested by {}", caller.actor()))
        .await
        .map_err(|e| match e {
            ferry_engine::Error::Rejected(_) => action_error(ActionError::NotCompleted),
            other => other.into(),
        })?;
    state
        .audit_request(
            &req,
            &caller,
            "REHYDRATE_ROLLBACK_REQUESTED",
            &after,
            json!({}),
        )
        .await;
    Ok(super::accepted(&after).json(RehydrateStatusView::from_state(&after, false)))
}

/// The row-level validation report (NDJSON).
#[utoipa::path(
    tag = "rehydrate",
    params(("id" = String, Path, description = "rehydration id")),
    responses(
        (status = 200, description = "the report", content_type = "application/x-ndjson", body = String),
        crate::openapi::TenantErrors,
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/tenant/rehydrate/{id}/report")]
async fn report(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let wf = visible_workflow(&state.engine, &caller, &id, Some(rehydrate::KIND)).await?;
    let path = state.rehydrate.report_path(wf.id);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "report_not_found",
                "this rehydration has no validation report",
            ))
        }
    };
    let stream = tokio_util::io::ReaderStream::new(file);
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(stream))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create)
        .service(status)
        .service(get_preview)
        .service(confirm)
        .service(rollback)
        .service(report);
}
