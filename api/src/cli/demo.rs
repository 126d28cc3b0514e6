//! `ferry demo`: on the embedded default, create a sample tenant, export it
//! in every profile through the engine, verify every bundle offline, and
//! print where everything is.

use crate::app;
use crate::config::Config;
use ferry_engine::{Status, SubmitRequest, TenantId};
use ferry_workflows::bundle::verify::verify_file;
use ferry_workflows::export::{
    self, artifact, validate_request, ExportInput, ExportStatusView, Requester,
};
use serde_json::json;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Longest the demo waits for one export.
const EXPORT_WAIT_MAX: Duration = Duration::from_secs(600);

pub fn run(tenant: &str, scale: u32) -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    let tenant = TenantId::parse(tenant).map_err(|e| anyhow::anyhow!("tenant {tenant:?}: {e}"))?;
    println!("ferry demo — data folder {}", config.data_dir.display());
    let summary = super::sample::create(&config, &tenant, scale, 1, true)?;
    println!(
        "1. sample tenant {tenant}: {} rows in {} tables, {} asset files",
        summary["totalRows"],
        summary["tables"].as_object().map_or(0, |t| t.len()),
        summary["assetFiles"].as_array().map_or(0, |a| a.len())
    );
    let steps = super::serve::step_runtime(config.step_threads)?;
    let services = app::build(config.clone(), steps.handle().clone())?;
    let verifying_key = services.keys.signing.verifying_key();
    let engine = services.state.engine.clone();
    let services_ref = &services;
    let objects_dir = config.objects_dir();
    let tenant_name = tenant.to_string();
    let requests = [
        json!({"profile": "lite", "includeAssets": true}),
        json!({"profile": "native"}),
        json!({"profile": "analytics", "dateRange": {"from": "2000-01-01", "to": "2099-12-31"}}),
    ];
    let ok = actix_web::rt::System::new().block_on(async move {
        app::start(services_ref).await?;
        let mut ids = vec![];
        for body in &requests {
            let request = validate_request(body).map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?;
            let input = ExportInput::new(request, Requester { sub: "demo".into(), email: Some(format!("admin@{tenant}.example")) });
            let sub = engine
                .submit(SubmitRequest {
                    tenant: tenant.clone(),
                    kind: export::KIND.into(),
                    input: input.to_value(),
                    idempotency_key: None,
                    requested_by: Some("demo".into()),
                })
                .await?;
            ids.push(sub.state.id);
        }
        println!("2. submitted {} exports (one per profile); they run one at a time for this tenant", ids.len());
        let mut all_ok = true;
        for id in ids {
            let started = Instant::now();
            let state = loop {
                let s = engine.get(id).await?.ok_or_else(|| anyhow::anyhow!("export {id} vanished"))?;
                if s.status.is_final() {
                    break s;
                }
                anyhow::ensure!(started.elapsed() < EXPORT_WAIT_MAX, "export {id} still {} after {EXPORT_WAIT_MAX:?}", s.status);
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            let view = ExportStatusView::from_state(&state, engine.now());
            let profile = view.profile.clone().unwrap_or_default();
            if state.status != Status::Completed {
                println!("   {profile:<9} {id} ended {}: {:?}", state.status, view.error);
                all_ok = false;
                continue;
            }
            let art = artifact(&state, engine.now()).map_err(|e| anyhow::anyhow!("{e}"))?;
            let path = objects_dir.join("exports").join(art.key.as_str());
            match verify_file(&path, &verifying_key).await {
                Ok(report) => println!(
                    "3. {profile:<9} {id}: {} rows, {} bytes, blake3 {}…, {} entries verified\n   bundle  {}",
                    view.rows_done,
                    art.size_bytes,
                    &art.checksum[..16],
                    report.entries,
                    path.display()
                ),
                Err(e) => {
                    println!("   {profile:<9} {id}: VERIFY FAILED [{}] {e}", e.code());
                    all_ok = false;
                }
            }
        }
        Ok::<bool, anyhow::Error>(all_ok)
    })?;
    println!(
        "4. emails (with 24 h download links): {}",
        config.outbox_dir().display()
    );
    println!(
        "   audit log: {} (check it with `ferry audit-verify`)",
        config.platform_db().display()
    );
    println!("   event log: {}", config.events_dir().display());
    println!(
        "   verify a bundle offline: ferry verify <bundle>   (public key {})",
        crate::keys::verifying_key_path(&config.keys_dir()).display()
    );
    println!("   serve the API: ferry serve   then   curl -H \"Authorization: Bearer $(ferry token --tenant {tenant_name})\" ...");
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
