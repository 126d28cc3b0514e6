//! Bearer JWT authentication: `sub`, `tenant`, `role`. A `tenant_admin` acts
//! on its own tenant; a `platform_admin` may act on any tenant by naming it
//! in `X-Tenant-Id` (such requests are audited by the handlers).

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
}

/// The secret that signs and checks tokens (HS256).
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
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

fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    let keys = req
        .app_data::<web::Data<JwtKeys>>()
        .ok_or_else(|| ApiError::internal("JwtKeys not configured"))?;
    let header = req
        .headers()
        .get("Authorization")
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
    let token = header
        .strip_prefix("Bearer ")
        .ok_or_else(|| ApiError::unauthorized("expected 'Authorization: Bearer <token>'"))?;
    let claims = keys
        .check(token.trim())
        .map_err(|_| ApiError::unauthorized("invalid or expired token"))?;
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
