//! The operator console: a small single-page app (`api/console/`), embedded
//! into the binary at build time and served by `ferry serve` at `/console/`
//! (`/` redirects there), plus the console's session endpoints.
//!
//! The page is only another client of the JSON API: every list, action and
//! live stream it shows goes through the same routes, the same `Caller`
//! extractor and the same tenant checks as `curl` does, so the console can
//! never see or do more than the API allows. What is the console's own is
//! how a browser holds its identity (see `crate::auth`):
//!
//! - `POST /console/signin` takes a bearer token pasted once, or a one-time
//!   ticket printed by `ferry console-link` (opened as
//!   `/console/#/signin?ticket=…`: a URL fragment never reaches a server
//!   log), and answers with the HttpOnly, SameSite=Strict session cookie
//!   (Secure when ferry is reached over https). A ticket is spent by
//!   creating its id's file with `create_new` under `<data>/console-tickets`:
//!   a second use finds the file and is refused, also across restarts.
//! - `GET /console/session` tells the page who is signed in and its CSRF
//!   token, which every state-changing request then carries.
//! - `POST /console/signout` clears the cookie.

use crate::app::AppState;
use crate::auth::{claims_of, Claims, JwtKeys, Role, SESSION_COOKIE, TICKET_PURPOSE};
use crate::error::ApiError;
use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::http::header;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use std::io::ErrorKind;

/// The console's files, embedded at build time: (path under `/console/`,
/// content type, bytes).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_str!("../console/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../console/app.css"),
    ),
];

/// Only ferry's own files run in the page; nothing is framed or fetched
/// from elsewhere.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'self'";

/// How long a console session lasts (a ticket's session; a pasted token
/// keeps its own expiry).
const SESSION_SECS: i64 = 12 * 3600;

/// The longest a sign-in ticket may live.
pub const TICKET_SECS_MAX: u64 = 3600;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(root)
        .service(signin)
        .service(current_session)
        .service(signout)
        .service(asset);
}

#[get("/")]
async fn root() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/console/"))
        .finish()
}

#[get("/console/{file:.*}")]
async fn asset(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(path, _, _)| *path == file.as_str())
        .ok_or_else(|| ApiError::not_found("console file"))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, *content_type))
        .insert_header(("Content-Security-Policy", CSP))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(*body))
}

/// What `POST /console/signin` takes: exactly one of the two.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    token: Option<String>,
    ticket: Option<String>,
}

/// Who is signed in, and the CSRF token the page sends back.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionView {
    sub: String,
    tenant: String,
    role: String,
    email: Option<String>,
    csrf_token: String,
    expires_at: u64,
}

fn session_view(keys: &JwtKeys, claims: &Claims, session: &str) -> SessionView {
    SessionView {
        sub: claims.sub.clone(),
        tenant: claims.tenant.clone(),
        role: claims.role.clone(),
        email: claims.email.clone(),
        csrf_token: keys.csrf_token(session),
        expires_at: claims.exp,
    }
}

fn keys(req: &HttpRequest) -> Result<&JwtKeys, ApiError> {
    req.app_data::<web::Data<JwtKeys>>()
        .map(|k| k.get_ref())
        .ok_or_else(|| ApiError::internal("JwtKeys not configured"))
}

/// The session cookie holding `value`; Secure when the browser reached
/// ferry over https (directly, or as the public URL says).
fn cookie<'a>(req: &HttpRequest, state: &AppState, value: &'a str) -> Cookie<'a> {
    let https = req.connection_info().scheme() == "https"
        || state.config.public_url.starts_with("https://");
    Cookie::build(SESSION_COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(https)
        .finish()
}

#[post("/console/signin")]
async fn signin(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<SignIn>,
) -> Result<HttpResponse, ApiError> {
    let keys = keys(&req)?;
    let bad = |m: &str| ApiError::unauthorized(m.to_owned());
    let (claims, session) = match (&body.token, &body.ticket) {
        (Some(token), None) => {
            let claims = keys
                .check(token.trim())
                .map_err(|_| bad("invalid or expired token"))?;
            if claims.purpose.is_some() {
                return Err(bad("this is a sign-in ticket: open its link instead"));
            }
            (claims, token.trim().to_owned())
        }
        (None, Some(ticket)) => {
            let ticket = keys
                .check(ticket.trim())
                .map_err(|_| bad("invalid or expired sign-in link"))?;
            let jti = match (&ticket.purpose, &ticket.jti) {
                (Some(p), Some(jti)) if p == TICKET_PURPOSE => jti.clone(),
                _ => return Err(bad("not a sign-in link")),
            };
            spend_ticket(&state, &jti).await?;
            let now = state.engine.now().timestamp();
            let claims = Claims {
                exp: (now + SESSION_SECS).max(0) as u64,
                purpose: None,
                jti: None,
                ..ticket
            };
            let session = keys.mint(&claims).map_err(ApiError::internal)?;
            (claims, session)
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "send either {\"token\": …} or {\"ticket\": …}",
            ))
        }
    };
    if Role::parse(&claims.role).is_none() {
        return Err(ApiError::forbidden(format!(
            "role {:?} may not use the console",
            claims.role
        )));
    }
    let view = session_view(keys, &claims, &session);
    Ok(HttpResponse::Ok()
        .cookie(cookie(&req, &state, &session))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(view))
}

/// Spend a ticket: its file is created exactly once.
async fn spend_ticket(state: &AppState, jti: &str) -> Result<(), ApiError> {
    if jti.is_empty() || !jti.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(ApiError::unauthorized("not a sign-in link"));
    }
    let dir = state.config.data_dir.join("console-tickets");
    let path = dir.join(jti);
    let spent = web::block(move || -> std::io::Result<bool> {
        std::fs::create_dir_all(&dir)?;
        prune_tickets(&dir);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => {
                f.sync_all()?;
                std::fs::File::open(&dir)?.sync_all()?;
                Ok(false)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(true),
            Err(e) => Err(e),
        }
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    if spent {
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "ticket_spent",
            "this sign-in link was already used: ask for a new one (ferry console-link)",
        ));
    }
    Ok(())
}

/// Forget tickets older than any ticket can live: they are expired anyway.
fn prune_tickets(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let max_age = std::time::Duration::from_secs(2 * TICKET_SECS_MAX);
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > max_age);
        if old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[get("/console/session")]
async fn current_session(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let keys = keys(&req)?;
    let claims = claims_of(&req)?;
    let token = req
        .cookie(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .ok_or_else(|| ApiError::unauthorized("not signed in"))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(session_view(keys, &claims, &token)))
}

#[post("/console/signout")]
async fn signout(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // The CSRF check: another site cannot sign the operator out either.
    claims_of(&req)?;
    let mut gone = cookie(&req, &state, "");
    gone.set_max_age(time::Duration::ZERO);
    gone.set_expires(time::OffsetDateTime::UNIX_EPOCH);
    Ok(HttpResponse::NoContent().cookie(gone).finish())
}
