//! Wiring: builds the embedded default services from the configuration,
//! the engine with its workflows, and the shared state handlers use.

use crate::auth::{Caller, JwtKeys};
use crate::config::Config;
use crate::keys::Keys;
use actix_web::HttpRequest;
use anyhow::Context;
use ferry_engine::{
    Clock, Engine, EngineConfig, ListQuery, Status, SystemClock, UuidV7, WorkflowId, WorkflowState,
};
use ferry_storage::cluster::{Cluster, ClusterConfig};
use ferry_workflows::bundle::BundleSigner;
use ferry_workflows::data_metrics::DataMetrics;
use ferry_workflows::export::metrics::ExportMetrics;
use ferry_workflows::export::{ExportConfig, ExportDeps, ExportWorkflow};
use ferry_workflows::links::LinkSigner;
use ferry_workflows::ports::audit::{AuditEntry, AuditLog};
use ferry_workflows::ports::objects::ObjectStore;
use ferry_workflows::ports::tenant::TenantStore;
use ferry_workflows::rehydrate::{RehydrateConfig, RehydrateDeps, RehydrateWorkflow};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// HTTP metrics, labelled by route pattern (bounded), never by raw path.
#[derive(Clone)]
pub struct HttpMetrics {
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
}

impl HttpMetrics {
    fn new(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                "ferry_http_requests_total",
                "HTTP requests by method, route and status.",
            ),
            &["method", "route", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "ferry_http_request_duration_seconds",
                "HTTP request latency by method and route.",
            )
            // Submits answer in about a millisecond (target p99 <= 5 ms);
            // downloads stream whole bundles, so the top buckets are long.
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
            &["method", "route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(HttpMetrics { requests, duration })
    }
}

/// What every handler can reach.
pub struct AppState {
    pub engine: Engine,
    pub config: Config,
    pub audit: Arc<dyn AuditLog>,
    pub objects: Arc<dyn ObjectStore>,
    pub tenants: Arc<dyn TenantStore>,
    pub links: LinkSigner,
    pub registry: Registry,
    pub http: HttpMetrics,
    pub export_metrics: ExportMetrics,
    /// Rows/bytes exported and imported, bundle sizes, expiries (shared by
    /// every workflow kind that moves data).
    pub data_metrics: DataMetrics,
    pub rehydrate: Arc<RehydrateWorkflow>,
    /// The tenants' table lists, as the submit paths check requests.
    pub tables: Arc<crate::table_cache::TableCache>,
    /// This node's cluster membership, once joined (`FERRY_CLUSTER=on`).
    pub cluster: std::sync::OnceLock<Arc<Cluster>>,
    /// `s3` or `local`: which object store `objects` is.
    pub object_store_kind: &'static str,
}

/// Built services, before the engine starts.
pub struct Services {
    pub state: AppState,
    pub export: Arc<ExportWorkflow>,
    pub jwt: JwtKeys,
    pub keys: Keys,
}

impl AppState {
    /// Record an audit entry for an HTTP request (who, IP, user agent).
    pub async fn audit_request(
        &self,
        req: &HttpRequest,
        caller: &Caller,
        action: &str,
        wf: &WorkflowState,
        details: Value,
    ) {
        let entry = request_entry(
            req,
            &caller.actor(),
            action,
            wf,
            details,
            caller.impersonating,
        );
        if let Err(e) = self.audit.append(entry).await {
            tracing::error!(error = %e, action, "audit append failed");
        }
    }
}

pub fn request_entry(
    req: &HttpRequest,
    actor: &str,
    action: &str,
    wf: &WorkflowState,
    mut details: Value,
    impersonating: bool,
) -> AuditEntry {
    if impersonating {
        if let Some(obj) = details.as_object_mut() {
            obj.insert("platformAdminActingOnTenant".into(), Value::Bool(true));
        }
    }
    // The engine's clock, like every time ferry records.
    let at = req
        .app_data::<actix_web::web::Data<AppState>>()
        .map_or_else(|| SystemClock.now(), |s| s.engine.now());
    let mut entry = AuditEntry::new(
        at,
        actor,
        Some(wf.tenant.clone()),
        action,
        wf.kind.as_str(),
        wf.id.to_string(),
    )
    .details(details);
    entry.ip = req
        .connection_info()
        .realip_remote_addr()
        .map(str::to_owned);
    entry.user_agent = req
        .headers()
        .get("User-Agent")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect());
    entry
}

/// Build the embedded-default services. `step_runtime` runs workflow steps.
pub fn build(config: Config, step_runtime: tokio::runtime::Handle) -> anyhow::Result<Services> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data folder {}", config.data_dir.display()))?;
    let keys = Keys::load_or_create(&config.keys_dir(), config.jwt_secret.as_deref())?;
    // In a cluster every series carries the node it comes from.
    let registry = match &config.cluster {
        Some(c) => Registry::new_custom(
            None,
            Some(std::iter::once(("node".to_owned(), c.node.clone())).collect()),
        )?,
        None => Registry::new(),
    };
    let (log, described) = crate::backends::event_log(&config, &registry)?;
    tracing::info!("{described}");
    let backends = crate::backends::from_env(&config, &step_runtime)?;
    step_runtime
        .block_on(backends.audit_anchors.anchor_if_missing())
        .context("anchoring the audit log")?;
    for line in &backends.described {
        tracing::info!("{line}");
    }
    let (tenants, objects, mail, audit) = (
        backends.tenants,
        backends.objects,
        backends.mailer,
        backends.audit,
    );
    let links = LinkSigner::new(keys.link_secret);
    let signer = Arc::new(BundleSigner::new(keys.signing.clone()));
    let mut rehydrate_config = RehydrateConfig::new(config.rehydrate_dir(), config.uploads_dir());
    rehydrate_config.upload_bytes_max = config.upload_bytes_max;
    rehydrate_config.backup_retention = config.backup_retention;
    rehydrate_config.confirm_deadline = config.confirm_deadline;
    rehydrate_config.trial_rows_max = config.trial_rows_max;
    rehydrate_config.shared_uploads = config.cluster.is_some();
    rehydrate_config.limits.entries_max = config.bundle_entries_max;
    let rehydrate = RehydrateWorkflow::new(
        RehydrateDeps {
            tenants: tenants.clone(),
            objects: objects.clone(),
            audit: audit.clone(),
            signer: signer.clone(),
        },
        rehydrate_config,
    );
    let mut export_config = ExportConfig::new(config.work_dir(), config.public_url.clone());
    export_config.bundle_ttl = config.bundle_ttl;
    export_config.max_bundle_bytes = config.bundle_bytes_max;
    export_config.analytics_timestamp_column = config.analytics_timestamp_column.clone();
    export_config.deflate_level = config.deflate_level;
    let export = ExportWorkflow::new(
        ExportDeps {
            tenants: tenants.clone(),
            objects: objects.clone(),
            mailer: mail,
            audit: audit.clone(),
            signer,
            links: links.clone(),
        },
        export_config,
    )
    .with_records(backends.export_records);
    let engine = Engine::new(
        log,
        config.clock(),
        Arc::new(UuidV7),
        EngineConfig {
            running_per_tenant_max: config.running_per_tenant_max,
            runtime: Some(step_runtime),
            node: config.cluster.as_ref().map(|c| c.node.clone()),
            ..EngineConfig::default()
        },
        &registry,
    )?;
    crate::telemetry::register_build_info(&registry)?;
    engine
        .metrics()
        .opt_in_tenants(crate::telemetry::metrics_tenants());
    let data_metrics = DataMetrics::new(&registry)?;
    let export_metrics = ExportMetrics::new(&data_metrics);
    let export = Arc::new(export.with_metrics(export_metrics.clone()));
    engine.register(export.clone());
    let rehydrate = Arc::new(rehydrate.with_metrics(data_metrics.clone()));
    engine.register(rehydrate.clone());
    let http = HttpMetrics::new(&registry)?;
    let jwt = JwtKeys::new(&keys.jwt_secret);
    let tables = Arc::new(crate::table_cache::TableCache::new(config.tables_cache_ttl));
    Ok(Services {
        state: AppState {
            engine,
            config,
            audit,
            objects,
            tenants,
            links,
            registry,
            http,
            export_metrics,
            data_metrics,
            rehydrate,
            tables,
            cluster: std::sync::OnceLock::new(),
            object_store_kind: backends.object_store_kind,
        },
        export,
        jwt,
        keys,
    })
}

/// Start the engine (recovery included), then remove the work folders of
/// exports that can never continue (completed, cancelled): a cancel drops a
/// running step, so its clean-up never ran. Folders of open and of failed
/// exports stay: a resumed export's later steps read its earlier steps' files.
pub async fn start(services: &Services) -> anyhow::Result<ferry_engine::engine::RecoveryReport> {
    let engine = &services.state.engine;
    let report = engine.start().await?;
    join_cluster(&services.state)?;
    let mut keep: HashSet<WorkflowId> = engine
        .open_workflows()?
        .into_iter()
        .filter(|s| s.kind == ferry_workflows::export::KIND)
        .map(|s| s.id)
        .collect();
    keep.extend(failed_ids(engine, ferry_workflows::export::KIND)?);
    let removed = services.export.sweep_work_dirs(&keep).await?;
    if removed > 0 {
        tracing::info!(removed, "removed work folders of finished exports");
    }
    sweep_rehydrations(services).await?;
    Ok(report)
}

/// Join the cluster when this process is a node of one: from then on its
/// heartbeat takes tenants' leases and the engine drives those tenants.
fn join_cluster(state: &AppState) -> anyhow::Result<()> {
    let Some(settings) = &state.config.cluster else {
        return Ok(());
    };
    let url = crate::config::env("DATABASE_URL")
        .context("FERRY_CLUSTER=on needs the shared platform database: set DATABASE_URL")?;
    let engine = &state.engine;
    let runtime = engine.runtime();
    let cluster = Cluster::join(
        ClusterConfig {
            url,
            node: settings.node.clone(),
            lease: settings.lease,
            object_store: state.object_store_kind,
        },
        engine.clone(),
        runtime,
        &state.registry,
    )
    .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?;
    tracing::info!(node = %settings.node, lease_s = settings.lease.as_secs_f64(), "joined the cluster");
    let _ = state.cluster.set(Arc::new(cluster));
    Ok(())
}

/// Hand this node's leases over before it exits (SIGTERM, SIGINT).
pub fn leave_cluster(state: &AppState) {
    if let Some(cluster) = state.cluster.get() {
        match cluster.drain() {
            Ok(n) => tracing::info!(leases = n, "left the cluster; leases handed over"),
            Err(e) => {
                tracing::error!(code = %e.code, error = %e.message, "draining failed; the other nodes take over after the lease")
            }
        }
    }
}

/// Ids of the failed workflows of `kind` (they may be resumed).
fn failed_ids(engine: &Engine, kind: &str) -> anyhow::Result<Vec<WorkflowId>> {
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let page = engine.list(&ListQuery {
            status: Some(Status::Failed),
            kind: Some(kind.to_owned()),
            after,
            limit: ferry_engine::log::LIST_LIMIT_MAX,
            ..ListQuery::default()
        })?;
        ids.extend(page.iter().map(|s| s.id));
        match page.last() {
            Some(last) if page.len() == ferry_engine::log::LIST_LIMIT_MAX => after = Some(last.id),
            _ => break,
        }
    }
    Ok(ids)
}

/// Remove rehydration work folders and uploads nothing can use any more
/// (see `RehydrateWorkflow::sweep`): open and failed rehydrations keep theirs.
async fn sweep_rehydrations(services: &Services) -> anyhow::Result<()> {
    use ferry_workflows::rehydrate::{RehydrateInput, Source, KIND};
    let engine = &services.state.engine;
    let mut keep = HashSet::new();
    let mut uploads = HashSet::new();
    for s in engine.open_workflows()? {
        if s.kind != KIND {
            continue;
        }
        keep.insert(s.id);
        if let Some(state) = engine.get(s.id).await? {
            if let Ok(RehydrateInput {
                source: Source::Upload { id, .. },
                ..
            }) = RehydrateInput::from_value(&state.input)
            {
                uploads.insert(id);
            }
        }
    }
    keep.extend(failed_ids(engine, KIND)?);
    let removed = services.state.rehydrate.sweep(&keep, &uploads).await?;
    if removed > 0 {
        tracing::info!(
            removed,
            "removed rehydration work folders and uploads nothing uses"
        );
    }
    Ok(())
}

/// How long a presigned/served download target stays valid after a click.
pub const DOWNLOAD_TARGET_TTL: Duration = Duration::from_secs(300);
