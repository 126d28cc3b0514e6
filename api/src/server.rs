//! The HTTP server: routes, extractor error handlers, HTTP metrics, and
//! request ids (every request is handled inside an `http_request` span
//! carrying its id, and the id is returned in `X-Request-Id`).

use crate::app::AppState;
use crate::auth::JwtKeys;
use crate::error::{envelope_plain_errors, json_error, path_error, query_error, ApiError};
use crate::routes;
use crate::telemetry;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{web, App, HttpResponse, HttpServer};
use std::net::SocketAddr;
use std::time::Instant;
use tracing::Instrument;

/// Largest JSON body accepted by the API (requests are small).
pub const JSON_BODY_BYTES_MAX: usize = 64 * 1024;

fn configure(cfg: &mut web::ServiceConfig) {
    routes::ops::configure(cfg);
    routes::export::configure(cfg);
    routes::rehydrate::configure(cfg);
    // Before the workflow routes: `/workflows/stream` is not an id.
    routes::live::configure(cfg);
    routes::workflows::configure(cfg);
    routes::audit::configure(cfg);
    routes::cluster::configure(cfg);
    routes::download::configure(cfg);
    routes::tenant::configure(cfg);
    crate::console::configure(cfg);
}

/// The app of one worker.
pub fn app(
    state: web::Data<AppState>,
    jwt: web::Data<JwtKeys>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let http = state.http.clone();
    App::new()
        .app_data(state)
        .app_data(jwt)
        .app_data(
            web::JsonConfig::default()
                .limit(JSON_BODY_BYTES_MAX)
                .error_handler(json_error),
        )
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .configure(configure)
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::not_found("route"))
        }))
        // Errors actix answers itself (a body over a limit, a broken
        // upload) get the same JSON envelope as ferry's own.
        .wrap(actix_web::middleware::ErrorHandlers::new().default_handler(envelope_plain_errors))
        .wrap_fn(move |req, srv| {
            let started = Instant::now();
            let method = req.method().as_str().to_owned();
            let route = req
                .match_pattern()
                .unwrap_or_else(|| "unmatched".to_owned());
            let http = http.clone();
            let request_id = telemetry::request_id(req.headers());
            let span = tracing::info_span!(
                "http_request",
                request_id = request_id.to_str().unwrap_or("-"),
                method = %method,
                route = %route,
            );
            let fut = srv.call(req).instrument(span.clone());
            async move {
                let mut res = fut.await;
                let status = match &mut res {
                    Ok(r) => {
                        r.headers_mut()
                            .insert(telemetry::REQUEST_ID_HEADER, request_id);
                        r.status().as_u16()
                    }
                    Err(e) => e.as_response_error().status_code().as_u16(),
                };
                let elapsed_ms = started.elapsed().as_millis() as u64;
                // Scrapes and health checks come every few seconds: keep
                // them out of the default (info) log.
                if route == "/metrics" || route == "/healthz" {
                    tracing::debug!(parent: &span, status, elapsed_ms, "request");
                } else {
                    tracing::info!(parent: &span, status, elapsed_ms, "request");
                }
                http.requests
                    .with_label_values(&[&method, &route, &status.to_string()])
                    .inc();
                http.duration
                    .with_label_values(&[&method, &route])
                    .observe(started.elapsed().as_secs_f64());
                res
            }
        })
}

pub async fn run(
    state: web::Data<AppState>,
    jwt: web::Data<JwtKeys>,
    bind: SocketAddr,
) -> std::io::Result<()> {
    tracing::info!(%bind, "ferry listening");
    HttpServer::new(move || app(state.clone(), jwt.clone()))
        .bind(bind)?
        .run()
        .await
}
