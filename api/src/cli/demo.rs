//! `ferry demo`: on the embedded default, the whole job in one command. It
//! creates a sample tenant, serves the engine and the HTTP API in-process on
//! a free local port, and then works as any client does, through the same
//! code as `ferry export`, `ferry download` and `ferry rehydrate`: it
//! exports the tenant in every profile, downloads each bundle and verifies
//! it offline, then rehydrates the tenant from its own `lite` export — a dry
//! run and its preview, a `replace` confirmed with `DELETE` given
//! non-interactively, its verification — and rolls that rehydration back.

use super::client::ApiClient;
use super::rehydrate::{self, Ending, RehydrateArgs};
use super::{download, export};
use crate::app;
use crate::config::Config;
use crate::keys::load_verifying_key;
use actix_web::{web, HttpServer};
use anyhow::Context;
use ferry_engine::TenantId;
use ferry_workflows::bundle::verify::verify_file;
use serde_json::json;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

/// Longest the demo waits for one request (a rollback's answer included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// The engine and the HTTP API, served in-process on `127.0.0.1:<free>`
/// until [`InProcess::stop`].
struct InProcess {
    base: String,
    handle: actix_web::dev::ServerHandle,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    fn start(config: Config) -> anyhow::Result<InProcess> {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding a local port")?;
        let base = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ferry-demo-server".into())
            .spawn(move || -> anyhow::Result<()> {
                let steps = super::serve::step_runtime(config.step_threads)?;
                let services = app::build(config, steps.handle().clone())?;
                actix_web::rt::System::new().block_on(async move {
                    if let Err(e) = app::start(&services).await {
                        let _ = tx.send(Err(e));
                        return Ok(());
                    }
                    let state = web::Data::new(services.state);
                    let jwt = web::Data::new(services.jwt);
                    let server =
                        HttpServer::new(move || crate::server::app(state.clone(), jwt.clone()))
                            .workers(2)
                            .disable_signals()
                            .listen(listener)?
                            .run();
                    let _ = tx.send(Ok(server.handle()));
                    server.await.context("HTTP server")
                })
            })?;
        let handle = rx
            .recv()
            .map_err(|_| anyhow::anyhow!("the in-process server did not start"))??;
        Ok(InProcess {
            base,
            handle,
            thread,
        })
    }

    fn stop(self) -> anyhow::Result<()> {
        actix_web::rt::System::new().block_on(self.handle.stop(true));
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the in-process server panicked"))?
    }
}

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
    let server = InProcess::start(config.clone())?;
    let token = super::token::mint(
        &config,
        tenant.as_str(),
        "tenant_admin",
        "demo",
        Some(format!("admin@{tenant}.example")),
        1,
    )?;
    let api = ApiClient::with_token(&server.base, token, REQUEST_TIMEOUT)?;
    println!("   serving the API in-process at {}", server.base);
    let result = stages(&config, &api);
    server.stop()?;
    let ok = result?;
    let tenant_name = tenant.to_string();
    println!(
        "9. emails (with 24 h download links): {}",
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
    println!("   serve the API: ferry serve   then   ferry workflows list --tenant {tenant_name}");
    // The last line: a one-time sign-in link to the console of `ferry serve`.
    let link = super::console_link::link(&config, &tenant_name, "tenant_admin", "demo", 15)?;
    println!("10. the web console (run `ferry serve`, then open within 15 min): {link}");
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The exports, downloads, verifications and the rehydration; whether
/// everything ended as it should.
fn stages(config: &Config, api: &ApiClient) -> anyhow::Result<bool> {
    let requests = [
        json!({"profile": "lite", "includeAssets": true}),
        json!({"profile": "native"}),
        json!({"profile": "analytics", "dateRange": {"from": "2000-01-01", "to": "2099-12-31"}}),
    ];
    let mut ids = vec![];
    for body in &requests {
        ids.push(export::submit(api, body, None)?);
    }
    println!(
        "2. submitted {} exports (one per profile) through the API; they run one at a time for this tenant",
        ids.len()
    );
    let key = load_verifying_key(&crate::keys::verifying_key_path(&config.keys_dir()))?;
    let downloads = config.data_dir.join("demo-downloads");
    std::fs::create_dir_all(&downloads)
        .with_context(|| format!("creating {}", downloads.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut all_ok = true;
    for id in &ids {
        let s = export::wait(api, id)?;
        let profile = s["profile"].as_str().unwrap_or("?").to_owned();
        if s["status"] != "completed" {
            println!("   {profile:<9} {id} ended {}: {}", s["status"], s["error"]);
            all_ok = false;
            continue;
        }
        let file = s["fileName"].as_str().unwrap_or("bundle.zip");
        let got = download::fetch(api, id, Some(&downloads.join(format!("{profile}_{file}"))))?;
        match rt.block_on(verify_file(&got.path, &key)) {
            Ok(report) => println!(
                "3. {profile:<9} {id}: {} rows, {} bytes, blake3 {}…, downloaded and checked, {} entries verified\n   bundle  {}",
                s["rowsDone"],
                got.size_bytes,
                &got.blake3[..16],
                report.entries,
                got.path.display()
            ),
            Err(e) => {
                println!("   {profile:<9} {id}: VERIFY FAILED [{}] {e}", e.code());
                all_ok = false;
            }
        }
    }
    if !all_ok {
        return Ok(false);
    }
    rehydration(api, &ids[0])
}

/// Rehydrate the tenant from its own `lite` export: dry run, `replace`
/// confirmed, verified, rolled back. Whether each stage ended as it should.
fn rehydration(api: &ApiClient, lite: &str) -> anyhow::Result<bool> {
    println!("4. rehydration from the lite export {lite}, dry run first (the preview):");
    let dry = RehydrateArgs::from_export(lite, "replace", true, None);
    let id = rehydrate::submit(api, &dry)?;
    let o = rehydrate::drive(api, &id, None)?;
    if !matches!(o.ending, Ending::DryRun) {
        println!("   dry run {id} ended {}", o.status["status"]);
        return Ok(false);
    }
    println!("   dry run {id}: nothing was changed");

    println!("5. replace, confirmed by typing DELETE (given non-interactively):");
    let real = RehydrateArgs::from_export(lite, "replace", false, Some("DELETE"));
    let id = rehydrate::submit(api, &real)?;
    let o = rehydrate::drive(api, &id, Some("DELETE"))?;
    let s = &o.status;
    if s["status"] != "completed" {
        println!("   replace {id} ended {}: {}", s["status"], s["error"]);
        return Ok(false);
    }
    println!(
        "   replace {id}: completed, {} rows imported",
        s["rowsImported"]
    );
    println!(
        "6. verified: the load read the {} rows back inside its transaction and matched the bundle's \
         content hashes before committing; the backup is kept ({} bytes, blake3 {}…)",
        s["rowsImported"],
        s["backup"]["sizeBytes"],
        s["backup"]["checksum"].as_str().unwrap_or("").get(..16).unwrap_or("")
    );

    let after = api.post_json(&format!("/api/v1/tenant/rehydrate/{id}/rollback"), None)?;
    println!(
        "7. rollback of {id} requested ({}); restoring the backup",
        after["status"]
    );
    // The rollback's answer already shows it compensating: follow it to its end.
    let s = api.follow(
        &format!("/api/v1/tenant/rehydrate/{id}/status"),
        &[],
        Duration::from_secs(3600),
    )?;
    if s["status"] != "rolled_back" {
        println!("   rollback of {id} ended {}: {}", s["status"], s["error"]);
        return Ok(false);
    }
    let how = if s["restored"] == true {
        "the backup's rows were loaded back"
    } else {
        "it already equalled the backup (the bundle was its own export), so nothing needed loading"
    };
    println!("8. rolled back {id}: the tenant's data is the backup's again; {how}");
    Ok(true)
}
