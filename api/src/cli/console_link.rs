//! `ferry console-link`: print a one-time sign-in link to the web console
//! (as Jupyter prints its login URL). The link carries a short-lived ticket,
//! signed with the server's token secret, in the URL fragment (which no
//! server or proxy logs); the console exchanges it once for a session
//! cookie (see `crate::console`).

use super::token;
use crate::auth::TICKET_PURPOSE;
use crate::config::Config;
use crate::console::TICKET_SECS_MAX;
use std::process::ExitCode;

/// The link for `tenant`/`role`, valid `ttl_minutes` and once.
pub fn link(
    config: &Config,
    tenant: &str,
    role: &str,
    sub: &str,
    ttl_minutes: u64,
) -> anyhow::Result<String> {
    let ttl = ttl_minutes * 60;
    if ttl == 0 || ttl > TICKET_SECS_MAX {
        anyhow::bail!("--ttl-minutes must be 1..={}", TICKET_SECS_MAX / 60);
    }
    let mut claims = token::claims(tenant, role, sub, None, ttl)?;
    claims.purpose = Some(TICKET_PURPOSE.to_owned());
    claims.jti = Some(uuid::Uuid::new_v4().to_string());
    let ticket = token::sign(config, &claims)?;
    Ok(format!(
        "{}/console/#/signin?ticket={ticket}",
        config.public_url
    ))
}

pub fn run(tenant: &str, role: &str, sub: &str, ttl_minutes: u64) -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    println!("{}", link(&config, tenant, role, sub, ttl_minutes)?);
    eprintln!("open it in a browser within {ttl_minutes} min; it signs in once");
    Ok(ExitCode::SUCCESS)
}
