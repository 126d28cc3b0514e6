//! The emailed download link, `/dl/{tenant}/{export}?exp=..&sig=..`. It works
//! without a bearer token (it lives in an email), so the signature is the
//! credential. Every successful use is audited (who, IP, user agent) before
//! any byte is served; in S3 mode the response is a redirect to a presigned
//! URL valid for minutes, so the link's life stays separate from the bundle's.

use crate::app::{request_entry, AppState, DOWNLOAD_TARGET_TTL};
use crate::error::ApiError;
use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::{get, web, HttpRequest, HttpResponse};
use ferry_workflows::export::{artifact, ArtifactError};
use ferry_workflows::links::LinkError;
use ferry_workflows::ports::objects::{Area, DownloadTarget};
use serde::Deserialize;
use serde_json::json;
use tokio_util::io::ReaderStream;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    exp: Option<String>,
    sig: Option<String>,
}

fn link_error(e: LinkError) -> ApiError {
    let status = match e {
        LinkError::Expired => StatusCode::GONE,
        LinkError::Invalid => StatusCode::FORBIDDEN,
    };
    ApiError::new(status, e.code(), e.to_string())
}

/// The emailed link: no token, the signature is the credential; audited.
#[utoipa::path(
    tag = "export",
    params(
        ("tenant" = String, Path, description = "tenant id"),
        ("export" = String, Path, description = "export id"),
        LinkQuery,
    ),
    responses(
        (status = 200, description = "the bundle", content_type = "application/zip", body = Vec<u8>),
        (status = 302, description = "redirect to a presigned URL", headers(("Location" = String))),
        (status = 400, description = "bad query", body = crate::openapi::ErrorBody),
        (status = 403, description = "link invalid", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such export", body = crate::openapi::ErrorBody),
        (status = 410, description = "link or export expired", body = crate::openapi::ErrorBody),
        (status = 500, description = "internal error", body = crate::openapi::ErrorBody),
    )
)]
#[get("/dl/{tenant}/{export}")]
async fn download(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    q: web::Query<LinkQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (tenant, export) = path.into_inner();
    let (Some(exp), Some(sig)) = (&q.exp, &q.sig) else {
        return Err(link_error(LinkError::Invalid));
    };
    let link = state
        .links
        .verify(&tenant, &export, exp, sig, state.engine.now())
        .map_err(link_error)?;
    let wf = state
        .engine
        .get(link.export_id)
        .await?
        .filter(|w| w.tenant == link.tenant)
        .ok_or_else(|| ApiError::not_found("export"))?;
    let art = artifact(&wf, state.engine.now()).map_err(|e| {
        let status = if e == ArtifactError::Expired {
            StatusCode::GONE
        } else {
            StatusCode::NOT_FOUND
        };
        ApiError::new(status, e.code(), e.to_string())
    })?;
    let target = state
        .objects
        .download_target(Area::Exports, &art.key, DOWNLOAD_TARGET_TTL)
        .await
        .map_err(ApiError::internal)?;
    // The download is audited before anything is served; if the audit log
    // cannot record it, nothing is served.
    let entry = request_entry(
        &req,
        "download-link",
        "EXPORT_DOWNLOADED",
        &wf,
        json!({"sizeBytes": art.size_bytes, "checksum": art.checksum, "linkExpiresAt": link.expires_at}),
        false,
    );
    state
        .audit
        .append(entry)
        .await
        .map_err(ApiError::internal)?;
    state
        .export_metrics
        .downloads
        .with_label_values(&["link"])
        .inc();
    match target {
        DownloadTarget::Redirect(url) => Ok(HttpResponse::Found()
            .insert_header(("Location", url))
            .finish()),
        DownloadTarget::LocalFile(file) => {
            let f = tokio::fs::File::open(&file).await.map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    ApiError::new(
                        StatusCode::GONE,
                        "export_expired",
                        "the bundle is no longer stored",
                    )
                } else {
                    ApiError::internal(e)
                }
            })?;
            Ok(HttpResponse::Ok()
                .content_type("application/zip")
                .insert_header((
                    "Content-Disposition",
                    format!("attachment; filename=\"{}\"", art.file_name),
                ))
                .insert_header(("X-Content-Checksum-Blake3", art.checksum.clone()))
                .body(SizedStream::new(art.size_bytes, ReaderStream::new(f))))
        }
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(download))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(download);
}
