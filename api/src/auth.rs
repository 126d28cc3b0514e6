//! Bearer JWT authentication: `sub`, `tenant`, `role`. A `tenant_admin` acts
//! on its own tenant; a `platform_admin` may act on any tenant by naming it
//! in `X-Tenant-Id` (such requests are audited by the handlers).
//!
//! The web console sends the same token in the HttpOnly session cookie
//! [`SESSION_COOKIE`] instead of the `Authorization` header, so the console
//! is authorized exactly as the API is. A request authenticated by the
//! cookie that changes state (any method but GET, HEAD, OPTIONS) must also
//! carry [`CSRF_HEADER`], a keyed hash of the session that only a page of
//! ferry's own origin can have read (`GET /console/session`): another site
//! can make the browser send the cookie, not the header. A one-time
//! sign-in ticket (`purpose` set) is never accepted as a session or bearer
//! token; only `POST /console/signin` exchanges it, once.

use crate::error::ApiError;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use ferry_engine::TenantId;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::future::{ready, Ready};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    TenantAdmin,
    PlatformAdmin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "tenant_admin" => Some(Role::TenantAdmin),
            "platform_admin" => Some(Role::PlatformAdmin),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tenant: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub exp: u64,
    /// Set only on one-time console sign-in tickets (`console_signin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// A ticket's unique id (spent once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// The console's session cookie: the caller's token, HttpOnly.
pub const SESSION_COOKIE: &str = "ferry_session";
/// The header a cookie-authenticated state change must carry.
pub const CSRF_HEADER: &str = "X-CSRF-Token";
/// The `purpose` of a one-time console sign-in ticket.
pub const TICKET_PURPOSE: &str = "console_signin";

/// The secret that signs and checks tokens (HS256).
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Keys the console's CSRF tokens (derived from the token secret).
    csrf: [u8; 32],
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            csrf: blake3::derive_key("ferry console csrf token v1", secret),
        }
    }

    /// The CSRF token of a console session (the session cookie's value).
    pub fn csrf_token(&self, session: &str) -> String {
        blake3::keyed_hash(&self.csrf, session.as_bytes())
            .to_hex()
            .to_string()
    }

    fn csrf_ok(&self, session: &str, presented: &str) -> bool {
        // blake3::Hash compares in constant time.
        blake3::Hash::from_hex(presented)
            .is_ok_and(|h| h == blake3::keyed_hash(&self.csrf, session.as_bytes()))
    }

    pub fn mint(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    pub fn check(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_required_spec_claims(&["exp", "sub"]);
        // A token is not valid before its `nbf` (beyond the usual leeway).
        v.validate_nbf = true;
        decode::<Claims>(token, &self.decoding, &v).map(|d| d.claims)
    }
}

/// An authenticated caller and the tenant the request acts on.
#[derive(Clone, Debug)]
pub struct Caller {
    pub sub: String,
    pub email: Option<String>,
    pub role: Role,
    pub tenant: TenantId,
    /// True when a platform admin acts on another tenant via `X-Tenant-Id`.
    pub impersonating: bool,
}

impl Caller {
    pub fn actor(&self) -> String {
        match self.role {
            Role::TenantAdmin => self.sub.clone(),
            Role::PlatformAdmin => format!("{} (platform_admin)", self.sub),
        }
    }
}

/// Where a request's token came from.
enum Credential {
    Bearer(String),
    Cookie(String),
}

fn credential(req: &HttpRequest) -> Result<Credential, ApiError> {
    if let Some(header) = req.headers().get("Authorization") {
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::unauthorized("expected 'Authorization: Bearer <token>'"))?;
        return Ok(Credential::Bearer(token.trim().to_owned()));
    }
    match req.cookie(SESSION_COOKIE) {
        Some(c) if !c.value().is_empty() => Ok(Credential::Cookie(c.value().to_owned())),
        _ => Err(ApiError::unauthorized("missing bearer token")),
    }
}

/// The claims of the request's token (bearer or session cookie), with the
/// CSRF check of cookie-authenticated state changes.
pub fn claims_of(req: &HttpRequest) -> Result<Claims, ApiError> {
    let keys = req
        .app_data::<web::Data<JwtKeys>>()
        .ok_or_else(|| ApiError::internal("JwtKeys not configured"))?;
    let token = match credential(req)? {
        Credential::Bearer(token) => token,
        Credential::Cookie(session) => {
            let safe = matches!(req.method().as_str(), "GET" | "HEAD" | "OPTIONS");
            if !safe {
                let presented = req
                    .headers()
                    .get(CSRF_HEADER)
                    .and_then(|h| h.to_str().ok())
                    .ok_or_else(|| {
                        ApiError::new(
                            actix_web::http::StatusCode::FORBIDDEN,
                            "csrf_token_missing",
                            format!(
                                "a console request that changes state must carry {CSRF_HEADER}"
                            ),
                        )
                    })?;
                if !keys.csrf_ok(&session, presented) {
                    return Err(ApiError::new(
                        actix_web::http::StatusCode::FORBIDDEN,
                        "csrf_token_invalid",
                        format!("{CSRF_HEADER} does not match the session"),
                    ));
                }
            }
            session
        }
    };
    let claims = keys
        .check(&token)
        .map_err(|_| ApiError::unauthorized("invalid or expired token"))?;
    if claims.purpose.is_some() {
        return Err(ApiError::unauthorized(
            "a sign-in ticket is not a token: open it in a browser",
        ));
    }
    Ok(claims)
}

fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    let claims = claims_of(req)?;
    let role = Role::parse(&claims.role).ok_or_else(|| {
        ApiError::forbidden(format!("role {:?} may not use this API", claims.role))
    })?;
    let named = req
        .headers()
        .get("X-Tenant-Id")
        .map(|h| h.to_str().unwrap_or("\u{0}").to_owned());
    let (tenant_str, impersonating) = match (role, named) {
        (Role::PlatformAdmin, Some(t)) => {
            let other = t != claims.tenant;
            (t, other)
        }
        (Role::TenantAdmin, Some(t)) if t != claims.tenant => {
            return Err(ApiError::forbidden(
                "only a platform_admin may act on another tenant",
            ))
        }
        (_, _) => (claims.tenant.clone(), false),
    };
    let tenant = TenantId::parse(&tenant_str)
        .map_err(|e| ApiError::bad_request("invalid_tenant_id", e.to_string()))?;
    Ok(Caller {
        sub: claims.sub,
        email: claims.email,
        role,
        tenant,
        impersonating,
    })
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn token(keys: &JwtKeys, nbf: Option<u64>) -> String {
        let mut claims = serde_json::json!({
            "sub": "u", "tenant": "acme", "role": "tenant_admin", "exp": now() + 3600,
        });
        if let Some(nbf) = nbf {
            claims["nbf"] = nbf.into();
        }
        encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap()
    }

    #[test]
    fn jwt_with_nbf_in_the_future_is_refused() {
        let keys = JwtKeys::new(b"secret");
        assert!(keys.check(&token(&keys, Some(now() + 3600))).is_err());
        assert!(keys.check(&token(&keys, Some(now() - 10))).is_ok());
        assert!(keys.check(&token(&keys, None)).is_ok());
    }
}
