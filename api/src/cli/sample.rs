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

/// Create the sample in whichever backends the environment selects: rows in
/// SQLite or PostgreSQL, asset files in the local store or S3.
pub fn create(
    config: &Config,
    tenant: &TenantId,
    scale: u32,
    seed: u64,
    overwrite: bool,
) -> anyhow::Result<serde_json::Value> {
    use ferry_storage::sample::{create_sample, create_sample_assets, SampleOptions};
    let options = SampleOptions {
        scale,
        seed,
        overwrite,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let backends = crate::backends::from_env(config, rt.handle())?;
    let staging = tempfile::tempdir()?;
    let (mut summary, files) = match &backends.pg_tenants {
        Some(pg) => {
            let rows = ferry_storage::tenant_pg::sample::create_pg_sample(pg, tenant, &options)?;
            let products = rows.tables.get("products").copied().unwrap_or(0);
            let (files, _) = create_sample_assets(staging.path(), tenant, products)?;
            (serde_json::to_value(&rows)?, files)
        }
        None => {
            let s = create_sample(&config.tenants_dir(), staging.path(), tenant, &options)?;
            let files = s.asset_files.clone();
            (serde_json::to_value(&s)?, files)
        }
    };
    // The assets go wherever objects live (local folder or S3), under the
    // tenant's own prefix.
    let dir = staging.path().join(tenant.as_str());
    rt.block_on(crate::backends::upload_assets(
        &*backends.objects,
        tenant,
        &dir,
        &files,
    ))?;
    summary["assetFiles"] = serde_json::json!(files);
    Ok(summary)
}
