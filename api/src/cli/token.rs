//! `ferry token`: mint a bearer token with the server's key.

use crate::auth::{Claims, JwtKeys, Role};
use crate::config::Config;
use crate::keys::Keys;
use ferry_engine::{Clock, SystemClock, TenantId};
use std::process::ExitCode;

pub fn mint(
    config: &Config,
    tenant: &str,
    role: &str,
    sub: &str,
    email: Option<String>,
    ttl_hours: u64,
) -> anyhow::Result<String> {
    let claims = claims(tenant, role, sub, email, ttl_hours * 3600)?;
    sign(config, &claims)
}

/// Checked claims of a token for `tenant` and `role` that lives `ttl_secs`.
pub fn claims(
    tenant: &str,
    role: &str,
    sub: &str,
    email: Option<String>,
    ttl_secs: u64,
) -> anyhow::Result<Claims> {
    TenantId::parse(tenant).map_err(|e| anyhow::anyhow!("tenant {tenant:?}: {e}"))?;
    if Role::parse(role).is_none() {
        anyhow::bail!("role must be tenant_admin or platform_admin, not {role:?}");
    }
    Ok(Claims {
        sub: sub.to_owned(),
        tenant: tenant.to_owned(),
        role: role.to_owned(),
        email,
        exp: SystemClock.now().timestamp() as u64 + ttl_secs,
        purpose: None,
        jti: None,
    })
}

/// Sign `claims` with the server's token secret.
pub fn sign(config: &Config, claims: &Claims) -> anyhow::Result<String> {
    let keys = Keys::load_or_create(&config.keys_dir(), config.jwt_secret.as_deref())?;
    Ok(JwtKeys::new(&keys.jwt_secret).mint(claims)?)
}

pub fn run(
    tenant: &str,
    role: &str,
    sub: &str,
    email: Option<String>,
    ttl_hours: u64,
) -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    println!("{}", mint(&config, tenant, role, sub, email, ttl_hours)?);
    Ok(ExitCode::SUCCESS)
}
