//! The rehydration workflow (kind `rehydrate`): load a tenant from a
//! bundle, and never leave it half-loaded.
//!
//! Steps, in order: `receive` (the bundle into the work directory) →
//! `validate` (everything checkable before anything is destroyed; see
//! [`validate`]) → `preview` (per table: rows to delete, insert, update;
//! conflicts; asset files to write and to delete) → `confirm` (waits for
//! the typed confirmation `DELETE`) → `quiesce` (maintenance flag on) →
//! `backup` (a full `lite` export of the current data and files, read back
//! and verified; then the bundle's files are staged for the switch) →
//! `load` (delete, load and verify in one database transaction, committed
//! only once the content hashes or row counts equal the bundle's) →
//! `assets` (the staged files switched into the tenant's prefix; see
//! [`assets`]) → `reactivate` (flag off, backup retention timer).
//! A dry run (`dryRun`) skips every step after `preview` but `reactivate`,
//! which then only drops the work files, and completes.
//!
//! Nothing is deleted before validation passed and the backup verified,
//! and then only inside the load's transaction: the tenant's rows change
//! in one atomic switch to the verified new rows, or not at all. The
//! tenant's files follow right after the commit, in a step that a crash
//! only interrupts: repeated after the restart, it finishes. `quiesce`
//! is the one compensable step and its compensation is the rollback
//! (`steps/restore.rs`): once the tenant is quiesced, any failure, a
//! cancel, or a rollback request after completion loads the backup through
//! the same atomic switch where the data differs from it, and makes the
//! tenant's files the backup's again where the forward run changes them.
//! So a rehydration ends either with the new data verified or with the old
//! data in place and verified. The backup stays in the private backups area for
//! `backup_retention`; the durable `backup_expire` timer then deletes it,
//! and a rollback is no longer possible.
//!
//! The tenant comes from the engine (`ctx.tenant`, i.e. the token), never
//! from the bundle: a bundle of another tenant is refused by `validate`.

pub mod assets;
pub mod groups;
pub mod input;
pub mod status;
pub mod steps;
pub mod validate;

use crate::bundle::BundleSigner;
use crate::ports::audit::{AuditEntry, AuditLog};
use crate::ports::objects::{Area, ObjectStore};
use crate::ports::tenant::TenantStore;
use async_trait::async_trait;
use ferry_engine::{
    RetryPolicy, StepContext, StepError, StepSpec, TimerContext, Workflow, WorkflowId,
};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use input::{Mode, Options, RehydrateInput, Source};
pub use status::RehydrateStatusView;

/// The kind name stored in events.
pub const KIND: &str = "rehydrate";
/// Entity name used in audit entries.
pub const AUDIT_ENTITY: &str = "rehydrate";
/// The signal `confirm` waits for.
pub const CONFIRM_SIGNAL: &str = "confirm";
/// The text the confirmation must carry.
pub const CONFIRM_TEXT: &str = "DELETE";
/// The durable timer that deletes the backup.
pub const BACKUP_TIMER: &str = "backup_expire";
/// The input field that makes a dry run.
pub const DRY_RUN_FIELD: &str = "dryRun";

/// The step names, in order.
pub const STEP_NAMES: [&str; 9] = [
    "receive",
    "validate",
    "preview",
    "confirm",
    "quiesce",
    "backup",
    "load",
    "assets",
    "reactivate",
];

/// The adapters the steps use.
#[derive(Clone)]
pub struct RehydrateDeps {
    pub tenants: Arc<dyn TenantStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub audit: Arc<dyn AuditLog>,
    /// Signs backups, and its public key verifies every bundle.
    pub signer: Arc<BundleSigner>,
}

/// Settings of the rehydration workflow.
#[derive(Clone, Debug)]
pub struct RehydrateConfig {
    /// Root of the per-rehydration work directories (`<data>/rehydrate`).
    pub work_dir: PathBuf,
    /// Where the API streams uploads (`<data>/uploads`).
    pub uploads_dir: PathBuf,
    /// Largest bundle accepted (upload or export).
    pub upload_bytes_max: u64,
    /// How long a backup is kept (and a finished rehydration can be undone).
    pub backup_retention: Duration,
    /// Largest bundle (in rows) the preview tries loading (and rolls back)
    /// to report what the load would hit; 0 turns the trial off.
    pub trial_rows_max: u64,
    pub limits: validate::Limits,
}

impl RehydrateConfig {
    /// Defaults: 10 GiB bundles, backups kept 7 days, trial loads of
    /// bundles up to 500,000 rows.
    pub fn new(work_dir: impl Into<PathBuf>, uploads_dir: impl Into<PathBuf>) -> Self {
        RehydrateConfig {
            work_dir: work_dir.into(),
            uploads_dir: uploads_dir.into(),
            upload_bytes_max: 10 * 1024 * 1024 * 1024,
            backup_retention: Duration::from_secs(7 * 24 * 3600),
            trial_rows_max: 500_000,
            limits: validate::Limits::default(),
        }
    }
}

/// The rehydration workflow definition; register it with the engine.
pub struct RehydrateWorkflow {
    pub(crate) deps: RehydrateDeps,
    pub(crate) config: RehydrateConfig,
    pub(crate) metrics: Option<crate::data_metrics::DataMetrics>,
    steps: Vec<StepSpec>,
}

fn policy(attempts_max: u32, initial: Duration, max: Duration) -> RetryPolicy {
    RetryPolicy {
        attempts_max,
        backoff_initial: initial,
        backoff_max: max,
        multiplier: 2.0,
        jitter: 0.5,
    }
}

fn step_specs() -> Vec<StepSpec> {
    let secs = Duration::from_secs;
    let long = secs(6 * 3600);
    let after_preview = |s: StepSpec| s.skip_if_input(DRY_RUN_FIELD);
    vec![
        StepSpec::new("receive")
            .retry(policy(6, secs(2), secs(300)))
            .timeout(long),
        // Rejections are permanent; only I/O retries.
        StepSpec::new("validate")
            .retry(policy(3, secs(2), secs(60)))
            .timeout(long),
        StepSpec::new("preview")
            .retry(policy(5, secs(2), secs(120)))
            .timeout(long),
        after_preview(StepSpec::new("confirm").awaits_signal(CONFIRM_SIGNAL)),
        after_preview(
            StepSpec::new("quiesce")
                .compensable()
                .retry(policy(10, secs(1), secs(120)))
                .timeout(secs(300)),
        ),
        after_preview(
            StepSpec::new("backup")
                .retry(policy(5, secs(2), secs(300)))
                .timeout(long),
        ),
        after_preview(
            StepSpec::new("load")
                .retry(policy(5, secs(2), secs(300)))
                .timeout(long),
        ),
        after_preview(
            StepSpec::new("assets")
                .retry(policy(5, secs(2), secs(300)))
                .timeout(long),
        ),
        // Runs in a dry run too, to drop the work files (see the step).
        StepSpec::new("reactivate")
            .retry(policy(10, secs(1), secs(120)))
            .timeout(secs(300)),
    ]
}

impl RehydrateWorkflow {
    pub fn new(deps: RehydrateDeps, config: RehydrateConfig) -> Self {
        RehydrateWorkflow {
            deps,
            config,
            metrics: None,
            steps: step_specs(),
        }
    }

    /// Count imported rows and bytes and expired backups in these metrics.
    pub fn with_metrics(mut self, metrics: crate::data_metrics::DataMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Replace one step's retry policy (tests shorten backoffs).
    pub fn with_retry(mut self, step: &str, retry: RetryPolicy) -> Self {
        if let Some(spec) = self.steps.iter_mut().find(|s| s.name == step) {
            spec.retry = retry;
        }
        self
    }

    pub fn config(&self) -> &RehydrateConfig {
        &self.config
    }

    /// The private work directory of one rehydration.
    pub fn work_dir_of(&self, id: WorkflowId) -> PathBuf {
        self.config.work_dir.join(id.to_string())
    }

    /// Where the API stores the upload with this id.
    pub fn upload_path(&self, upload_id: &str) -> PathBuf {
        self.config.uploads_dir.join(format!("{upload_id}.zip"))
    }

    /// Remove what no rehydration can use any more: work directories of
    /// rehydrations not in `keep` (open and failed ones stay: a failed one
    /// can be resumed and its report downloaded) and uploads no open
    /// rehydration names (a crash between storing an upload and submitting
    /// its workflow leaves one), including half-written ones. Call at start,
    /// before requests are served. Returns how many entries were removed.
    pub async fn sweep(
        &self,
        keep: &std::collections::HashSet<WorkflowId>,
        uploads_in_use: &std::collections::HashSet<String>,
    ) -> std::io::Result<usize> {
        let mut removed = 0;
        if let Ok(mut dir) = tokio::fs::read_dir(&self.config.work_dir).await {
            while let Some(entry) = dir.next_entry().await? {
                let name = entry.file_name();
                let Some(id) = name.to_str().and_then(|s| s.parse::<WorkflowId>().ok()) else {
                    continue;
                };
                if !keep.contains(&id) {
                    crate::export::remove_dir_all_idempotent(&entry.path()).await?;
                    removed += 1;
                }
            }
        }
        if let Ok(mut dir) = tokio::fs::read_dir(&self.config.uploads_dir).await {
            while let Some(entry) = dir.next_entry().await? {
                let name = entry.file_name().to_string_lossy().into_owned();
                let used = name
                    .strip_suffix(".zip")
                    .is_some_and(|id| uploads_in_use.contains(id));
                if !used {
                    tokio::fs::remove_file(entry.path()).await?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// The row-level validation report of a rehydration, if one was written.
    pub fn report_path(&self, id: WorkflowId) -> PathBuf {
        steps::WorkDirs::new(self, id).report()
    }

    /// Append an audit entry for a step of rehydration `ctx.workflow`.
    pub(crate) async fn audit(
        &self,
        ctx: &StepContext,
        action: &str,
        details: Value,
    ) -> Result<(), StepError> {
        let input = RehydrateInput::from_value(&ctx.input).ok();
        let common = json!({
            "requestedBy": input.as_ref().map(|i| i.requested_by.sub.clone()),
            "mode": input.as_ref().map(|i| i.mode.as_str()),
        });
        crate::step_audit::append(
            &*self.deps.audit,
            ctx,
            AUDIT_ENTITY,
            action,
            common,
            details,
        )
        .await
    }
}

#[async_trait]
impl Workflow for RehydrateWorkflow {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn steps(&self) -> &[StepSpec] {
        &self.steps
    }

    async fn run(&self, mut ctx: StepContext) -> Result<Value, StepError> {
        let result = match self.run_step(&mut ctx).await {
            Ok(v) => crate::failpoints::hit(&format!("rehydrate.{}.after", ctx.step))
                .await
                .map(|_| v),
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            let details = json!({"code": e.code, "message": e.message, "retryable": e.retryable});
            if let Err(audit_err) = self.audit(&ctx, "REHYDRATE_STEP_FAILED", details).await {
                tracing::warn!(workflow = %ctx.workflow, error = %audit_err, "could not audit a failed rehydration step");
            }
        }
        result
    }

    async fn compensate(&self, mut ctx: StepContext) -> Result<Value, StepError> {
        crate::failpoints::hit("rehydrate.rollback.before").await?;
        match ctx.step.as_str() {
            "quiesce" => steps::restore::compensate(self, &mut ctx).await,
            other => Err(StepError::permanent(
                "no_compensation",
                format!("step {other} has no compensation"),
            )),
        }
    }

    async fn on_timer(&self, ctx: TimerContext) -> Result<(), StepError> {
        if ctx.name != BACKUP_TIMER {
            return Ok(());
        }
        self.expire_backup(&ctx).await
    }
}

impl RehydrateWorkflow {
    async fn run_step(&self, ctx: &mut StepContext) -> Result<Value, StepError> {
        crate::failpoints::hit(&format!("rehydrate.{}.before", ctx.step)).await?;
        let ctx = &mut *ctx;
        match ctx.step.as_str() {
            "receive" => steps::receive::run(self, ctx).await,
            "validate" => steps::validate::run(self, ctx).await,
            "preview" => steps::preview::run(self, ctx).await,
            "quiesce" => steps::quiesce::run(self, ctx).await,
            "backup" => steps::backup::run(self, ctx).await,
            "load" => steps::load::run(self, ctx).await,
            "assets" => steps::assets::run(self, ctx).await,
            "reactivate" => steps::reactivate::run(self, ctx).await,
            other => Err(StepError::permanent(
                "unknown_step",
                format!("rehydrate has no step {other:?}"),
            )),
        }
    }

    /// The backup's retention timer fired: delete it (and any work files,
    /// and what a failed run left of its asset staging).
    async fn expire_backup(&self, ctx: &TimerContext) -> Result<(), StepError> {
        let key = steps::backup::backup_key(&ctx.tenant, ctx.workflow)?;
        self.deps.objects.delete(Area::Backups, &key).await?;
        assets::drop_staging(&*self.deps.objects, &ctx.tenant, ctx.workflow).await?;
        if let Some(m) = &self.metrics {
            m.bundles_expired.with_label_values(&[KIND]).inc();
        }
        crate::export::remove_dir_all_idempotent(&self.work_dir_of(ctx.workflow))
            .await
            .map_err(|e| StepError::retryable("work_dir_failed", e.to_string()))?;
        let entry = AuditEntry::new(
            ctx.now(),
            crate::export::AUDIT_ACTOR,
            Some(ctx.tenant.clone()),
            "REHYDRATE_BACKUP_EXPIRED",
            AUDIT_ENTITY,
            ctx.workflow.to_string(),
        )
        .details(json!({"workflowId": ctx.workflow.to_string(), "key": key.as_str()}));
        self.deps
            .audit
            .append(entry)
            .await
            .map(|_| ())
            .map_err(|e| StepError::retryable("audit_failed", e.message))
    }
}
