//! Which backend serves each port, chosen from the environment as SPEC's
//! "Embedded default and real services" table says: nothing set runs
//! everything embedded under the data folder; `DATABASE_URL` moves the
//! tenants' data and the platform tables (audit log) to PostgreSQL
//! (`FERRY_TENANT_ISOLATION` = schema | database | row); `MINIO_ENDPOINT`
//! moves objects to S3/MinIO; `SMTP_URL` sends mail through SMTP.

use crate::config::{env, Config};
use anyhow::Context;
use ferry_engine::{EventLog, TenantId};
use ferry_storage::audit_anchor::{AnchoredAudit, ANCHOR_FILE};
use ferry_storage::audit_pg::PgAudit;
use ferry_storage::audit_sqlite::SqliteAudit;
use ferry_storage::export_records::PgExportRecords;
use ferry_storage::mail_outbox::OutboxMailer;
use ferry_storage::mail_smtp::{SmtpConfig, SmtpMailer};
use ferry_storage::objects_local::LocalObjects;
use ferry_storage::objects_s3::{S3Config, S3Objects};
use ferry_storage::pg_log::PgLog;
use ferry_storage::sled_log::SledLog;
use ferry_storage::tenant_pg::{PgTenants, PgTenantsConfig};
use ferry_storage::tenant_sqlite::SqliteTenants;
use ferry_workflows::ports::audit::AuditLog;
use ferry_workflows::ports::export_records::{ExportRecords, NoExportRecords};
use ferry_workflows::ports::mail::Mailer;
use ferry_workflows::ports::objects::{Area, ObjectKey, ObjectStore};
use ferry_workflows::ports::tenant::TenantStore;
use std::path::Path;
use std::sync::Arc;

pub struct Backends {
    pub tenants: Arc<dyn TenantStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub mailer: Arc<dyn Mailer>,
    /// The audit log, anchored (`audit_anchors`).
    pub audit: Arc<dyn AuditLog>,
    /// The same log: its head checkpointed in `<data>/audit-anchor.json`.
    pub audit_anchors: Arc<AnchoredAudit>,
    /// Export records (`ferry_exports`): kept only in a PostgreSQL
    /// platform database.
    pub export_records: Arc<dyn ExportRecords>,
    /// Set when tenants live in PostgreSQL (for `ferry sample`).
    pub pg_tenants: Option<Arc<PgTenants>>,
    /// One line per port naming its backend, for the start-up log.
    pub described: Vec<String>,
    /// `s3` or `local`.
    pub object_store_kind: &'static str,
}

/// The workflow event log `FERRY_EVENT_LOG` names, its metrics registered
/// in `registry`, and a line naming it for the start-up log: `sled` (the
/// default) under the data folder, or `postgres` in the platform database
/// at `DATABASE_URL`, which nodes can share.
pub fn event_log(
    config: &Config,
    registry: &prometheus::Registry,
) -> anyhow::Result<(Arc<dyn EventLog>, String)> {
    match env("FERRY_EVENT_LOG").as_deref().unwrap_or("sled") {
        "sled" => {
            let log = SledLog::open(config.events_dir()).context("opening the event log")?;
            log.register_metrics(registry)?;
            let line = format!("event log: sled in {}", config.events_dir().display());
            Ok((Arc::new(log), line))
        }
        "postgres" => {
            let url = env("DATABASE_URL").context(
                "FERRY_EVENT_LOG=postgres keeps the event log in the platform database: \
                 set DATABASE_URL",
            )?;
            let node = config.cluster.as_ref().map(|c| c.node.as_str());
            let log =
                PgLog::open_node(&url, node).context("opening the event log in PostgreSQL")?;
            log.register_metrics(registry)?;
            Ok((Arc::new(log), "event log: postgresql".to_owned()))
        }
        other => anyhow::bail!("FERRY_EVENT_LOG={other:?} is not a valid value: sled or postgres"),
    }
}

/// Build every port's backend. `rt` runs the async connects (S3); it must
/// be a multi-threaded runtime's handle, since `Handle::block_on` cannot
/// drive IO on a current-thread runtime.
pub fn from_env(config: &Config, rt: &tokio::runtime::Handle) -> anyhow::Result<Backends> {
    let mut described = Vec::new();
    let mut export_records: Arc<dyn ExportRecords> = Arc::new(NoExportRecords);
    let (tenants, pg_tenants, audit): (Arc<dyn TenantStore>, _, Arc<dyn AuditLog>) =
        match env("DATABASE_URL") {
            Some(url) => {
                let cfg = PgTenantsConfig::from_lookup(url.clone(), env)?;
                let pg = Arc::new(PgTenants::new(cfg)?);
                pg.migrate().context("migrating the platform database")?;
                described.push(format!(
                    "tenants: postgresql ({} isolation)",
                    pg.isolation()
                ));
                let audit =
                    PgAudit::connect(&url).context("opening the audit log in PostgreSQL")?;
                described.push("audit log: postgresql".to_owned());
                export_records = Arc::new(
                    PgExportRecords::connect(&url)
                        .context("opening the export records in PostgreSQL")?,
                );
                described.push("export records: postgresql".to_owned());
                (pg.clone(), Some(pg), Arc::new(audit))
            }
            None => {
                described.push(format!(
                    "tenants: sqlite files in {}",
                    config.tenants_dir().display()
                ));
                described.push(format!(
                    "audit log: sqlite {}",
                    config.platform_db().display()
                ));
                let audit = SqliteAudit::open(config.platform_db())
                    .context("opening the platform database")?;
                (
                    Arc::new(SqliteTenants::new(config.tenants_dir())),
                    None,
                    Arc::new(audit),
                )
            }
        };
    let mut object_store_kind = "local";
    let objects: Arc<dyn ObjectStore> = match S3Config::from_lookup(env)? {
        Some(cfg) => {
            object_store_kind = "s3";
            described.push(format!("objects: s3 at {}", cfg.endpoint));
            Arc::new(
                rt.block_on(S3Objects::connect(cfg))
                    .context("connecting to S3")?,
            )
        }
        None => {
            described.push(format!(
                "objects: local files in {}",
                config.objects_dir().display()
            ));
            Arc::new(LocalObjects::new(config.objects_dir()).context("opening the object store")?)
        }
    };
    let mailer: Arc<dyn Mailer> =
        match SmtpConfig::from_lookup(env, config.data_dir.join("mail-sent"))? {
            Some(cfg) => {
                described.push("mail: smtp".to_owned());
                Arc::new(SmtpMailer::new(cfg)?)
            }
            None => {
                described.push(format!(
                    "mail: .eml files in {}",
                    config.outbox_dir().display()
                ));
                Arc::new(
                    OutboxMailer::new(config.outbox_dir(), &config.mail_from)
                        .context("opening the outbox")?,
                )
            }
        };
    let keys = crate::keys::Keys::load_or_create(&config.keys_dir(), config.jwt_secret.as_deref())?;
    let audit_anchors = Arc::new(AnchoredAudit::new(
        audit,
        config.data_dir.join(ANCHOR_FILE),
        ferry_workflows::bundle::sign::BundleSigner::new(keys.signing),
        config.clock(),
    ));
    Ok(Backends {
        tenants,
        objects,
        mailer,
        audit: audit_anchors.clone(),
        audit_anchors,
        export_records,
        pg_tenants,
        described,
        object_store_kind,
    })
}

/// Copy a tenant's local asset files into the object store's assets area
/// (so a sample tenant has its files wherever objects live).
pub async fn upload_assets(
    objects: &dyn ObjectStore,
    tenant: &TenantId,
    dir: &Path,
    files: &[String],
) -> anyhow::Result<()> {
    for rel in files {
        let key = ObjectKey::for_tenant(tenant, rel)?;
        objects.put_file(Area::Assets, &key, &dir.join(rel)).await?;
    }
    Ok(())
}
