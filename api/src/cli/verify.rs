//! `ferry verify BUNDLE` (signature and every checksum, offline) and
//! `ferry audit-verify` (the platform's whole audit chain, checked against
//! the latest signed anchor of its head: exit 1 when it is broken, cut
//! short of the anchor, rewritten up to it, or the anchor is missing or
//! forged).

use crate::config::Config;
use crate::keys::{load_verifying_key, verifying_key_path};
use ferry_workflows::bundle::verify::verify_file;
use std::path::Path;
use std::process::ExitCode;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}

pub fn run(bundle: &Path, public_key: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    let key_path = public_key
        .map(Path::to_path_buf)
        .unwrap_or_else(|| verifying_key_path(&config.keys_dir()));
    let key = load_verifying_key(&key_path)?;
    match runtime()?.block_on(verify_file(bundle, &key)) {
        Ok(report) => {
            println!(
                "OK {}: tenant {}, export {}, profile {}, {} entries, {} bytes checked, signed by key {}",
                bundle.display(),
                report.tenant_id,
                report.export_id,
                report.profile,
                report.entries,
                report.total_bytes,
                report.key_id
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("FAILED {} [{}]: {e}", bundle.display(), e.code());
            Ok(ExitCode::from(1))
        }
    }
}

pub fn audit() -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    let rt = runtime()?;
    let backends = crate::backends::from_env(&config, rt.handle())?;
    let report = rt.block_on(backends.audit.verify_chain())?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
