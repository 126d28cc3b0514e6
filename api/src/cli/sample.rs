//! `ferry sample`: a realistic sample tenant in the embedded tenant store.

use crate::config::Config;
use ferry_engine::TenantId;
use std::process::ExitCode;

pub fn run(tenant: &str, scale: u32, seed: u64, overwrite: bool) -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    let tenant = TenantId::parse(tenant).map_err(|e| anyhow::anyhow!("tenant {tenant:?}: {e}"))?;
    let summary = create(&config, &tenant, scale, seed, overwrite)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(ExitCode::SUCCESS)
}

pub fn create(
    config: &Config,
    tenant: &TenantId,
    scale: u32,
    seed: u64,
    overwrite: bool,
) -> anyhow::Result<ferry_storage::sample::SampleSummary> {
    let options = ferry_storage::sample::SampleOptions { scale, seed, overwrite };
    Ok(ferry_storage::sample::create_sample(
        &config.tenants_dir(),
        &config.assets_dir(),
        tenant,
        &options,
    )?)
}
