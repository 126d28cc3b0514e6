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
use crate::common::{policy, remove_dir_all_idempotent, WorkflowStep, AUDIT_ACTOR};
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
/// The durable timer that cancels a rehydration still waiting for its
/// confirmation when the confirmation deadline passes.
pub const CONFIRM_TIMER: &str = "confirm_deadline";
/// The error code a status shows for a rehydration the deadline cancelled.
pub const CONFIRMATION_EXPIRED: &str = "confirmation_expired";
/// The input field that makes a dry run.
pub const DRY_RUN_FIELD: &str = "dryRun";

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
    /// How long a preview waits for its confirmation before the rehydration
    /// is cancelled, nothing changed (the `confirm_deadline` timer).
    pub confirm_deadline: Duration,
    /// Largest bundle (in rows) the preview tries loading (and rolls back)
    /// to report what the load would hit; 0 turns the trial off.
    pub trial_rows_max: u64,
    pub limits: validate::Limits,
    /// Uploads are also stored in the object store (a cluster: the node
    /// that received an upload may not be the one that runs the
    /// rehydration), at [`shared_upload_key`].
    pub shared_uploads: bool,
}

/// Where an upload is kept in the backups area when uploads are shared:
/// `<tenant>/uploads/<upload-id>.zip`, until the rehydration's backup
/// expires.
pub fn shared_upload_key(
    tenant: &ferry_engine::TenantId,
    upload_id: &str,
) -> Result<crate::ports::objects::ObjectKey, StepError> {
    crate::ports::objects::ObjectKey::for_tenant(tenant, &format!("uploads/{upload_id}.zip"))
        .map_err(|e| StepError::permanent("invalid_object_key", e.to_string()))
}

impl RehydrateConfig {
    /// Defaults: 10 GiB bundles, backups kept 7 days, 24 h to confirm, trial loads of
    /// bundles up to 500,000 rows.
    pub fn new(work_dir: impl Into<PathBuf>, uploads_dir: impl Into<PathBuf>) -> Self {
        RehydrateConfig {
            work_dir: work_dir.into(),
            uploads_dir: uploads_dir.into(),
            upload_bytes_max: 10 * 1024 * 1024 * 1024,
            backup_retention: Duration::from_secs(7 * 24 * 3600),
            confirm_deadline: Duration::from_secs(24 * 3600),
            trial_rows_max: 500_000,
            limits: validate::Limits::default(),
            shared_uploads: false,
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

/// The rehydration's steps, in order. The names are stored in events and
/// stay as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RehydrateStep {
    Receive,
    Validate,
    Preview,
    /// Waits for the typed confirmation; it runs nothing.
    Confirm,
    Quiesce,
    Backup,
    Load,
    Assets,
    Reactivate,
}

impl WorkflowStep for RehydrateStep {
    const ALL: &'static [RehydrateStep] = &[
        RehydrateStep::Receive,
        RehydrateStep::Validate,
        RehydrateStep::Preview,
        RehydrateStep::Confirm,
        RehydrateStep::Quiesce,
        RehydrateStep::Backup,
        RehydrateStep::Load,
        RehydrateStep::Assets,
        RehydrateStep::Reactivate,
    ];

    fn name(self) -> &'static str {
        match self {
            RehydrateStep::Receive => "receive",
            RehydrateStep::Validate => "validate",
            RehydrateStep::Preview => "preview",
            RehydrateStep::Confirm => "confirm",
            RehydrateStep::Quiesce => "quiesce",
            RehydrateStep::Backup => "backup",
            RehydrateStep::Load => "load",
            RehydrateStep::Assets => "assets",
            RehydrateStep::Reactivate => "reactivate",
        }
    }

    fn spec(self) -> StepSpec {
        let secs = Duration::from_secs;
        let long = secs(6 * 3600);
        let spec = StepSpec::new(self.name());
        // A dry run skips every step after the preview but `reactivate`.
        let after_preview = |s: StepSpec| s.skip_if_input(DRY_RUN_FIELD);
        match self {
            RehydrateStep::Receive => spec.retry(policy(6, secs(2), secs(300))).timeout(long),
            // Rejections are permanent; only I/O retries.
            RehydrateStep::Validate => spec.retry(policy(3, secs(2), secs(60))).timeout(long),
            RehydrateStep::Preview => spec.retry(policy(5, secs(2), secs(120))).timeout(long),
            RehydrateStep::Confirm => after_preview(spec.awaits_signal(CONFIRM_SIGNAL)),
            RehydrateStep::Quiesce => after_preview(
                spec.compensable()
                    .retry(policy(10, secs(1), secs(120)))
                    .timeout(secs(300)),
            ),
            RehydrateStep::Backup => {
                after_preview(spec.retry(policy(5, secs(2), secs(300))).timeout(long))
            }
            RehydrateStep::Load => {
                after_preview(spec.retry(policy(5, secs(2), secs(300))).timeout(long))
            }
            RehydrateStep::Assets => {
                after_preview(spec.retry(policy(5, secs(2), secs(300))).timeout(long))
            }
            // Runs in a dry run too, to drop the work files (see the step).
            RehydrateStep::Reactivate => spec
                .retry(policy(10, secs(1), secs(120)))
                .timeout(secs(300)),
        }
    }

    /// Every step counts the same.
    fn weight(self) -> f64 {
        1.0
    }
}

impl RehydrateStep {
    /// Run this step with the rehydration's input, parsed once by
    /// [`RehydrateWorkflow::run`].
    async fn run(
        self,
        wf: &RehydrateWorkflow,
        ctx: &mut StepContext,
        input: &RehydrateInput,
    ) -> Result<Value, StepError> {
        match self {
            RehydrateStep::Receive => steps::receive::run(wf, ctx, input).await,
            RehydrateStep::Validate => steps::validate::run(wf, ctx, input).await,
            RehydrateStep::Preview => steps::preview::run(wf, ctx, input).await,
            RehydrateStep::Quiesce => steps::quiesce::run(wf, ctx).await,
            RehydrateStep::Backup => steps::backup::run(wf, ctx, input).await,
            RehydrateStep::Load => steps::load::run(wf, ctx, input).await,
            RehydrateStep::Assets => steps::assets::run(wf, ctx).await,
            RehydrateStep::Reactivate => steps::reactivate::run(wf, ctx, input).await,
            RehydrateStep::Confirm => Err(unknown_step(self.name())),
        }
    }
}

fn unknown_step(name: &str) -> StepError {
    StepError::permanent("unknown_step", format!("rehydrate has no step {name:?}"))
}

impl RehydrateWorkflow {
    pub fn new(deps: RehydrateDeps, config: RehydrateConfig) -> Self {
        RehydrateWorkflow {
            deps,
            config,
            metrics: None,
            steps: RehydrateStep::specs(),
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
                    remove_dir_all_idempotent(&entry.path()).await?;
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
        match RehydrateStep::named(&ctx.step) {
            Some(RehydrateStep::Quiesce) => steps::restore::compensate(self, &mut ctx).await,
            _ => Err(StepError::permanent(
                "no_compensation",
                format!("step {} has no compensation", ctx.step),
            )),
        }
    }

    async fn on_timer(&self, ctx: TimerContext) -> Result<(), StepError> {
        match ctx.name.as_str() {
            BACKUP_TIMER => self.expire_backup(&ctx).await,
            CONFIRM_TIMER => self.confirmation_expired(&ctx).await,
            _ => Ok(()),
        }
    }
}

impl RehydrateWorkflow {
    async fn run_step(&self, ctx: &mut StepContext) -> Result<Value, StepError> {
        crate::failpoints::hit(&format!("rehydrate.{}.before", ctx.step)).await?;
        let Some(step) = RehydrateStep::named(&ctx.step) else {
            return Err(unknown_step(&ctx.step));
        };
        let input = RehydrateInput::from_value(&ctx.input)
            .map_err(|e| StepError::permanent(e.code, e.message))?;
        step.run(self, ctx, &input).await
    }

    /// The confirmation deadline passed: a rehydration still waiting for its
    /// confirmation is cancelled (nothing was changed yet: `quiesce` comes
    /// after the confirmation) and the audit log says why. One that was
    /// confirmed, or cancelled, in the meantime is left alone: the status
    /// check and the cancel are one engine transaction. (A crash between the
    /// cancel and the audit entry loses the entry; the status still says
    /// why, see `status::confirmation_expired`.)
    async fn confirmation_expired(&self, ctx: &TimerContext) -> Result<(), StepError> {
        let cancelled = ctx
            .cancel_if_status(
                ferry_engine::Status::AwaitingConfirmation,
                "the confirmation deadline",
            )
            .await?;
        if !cancelled {
            return Ok(());
        }
        self.audit_timer(
            ctx,
            "REHYDRATE_CONFIRMATION_EXPIRED",
            json!({
                "workflowId": ctx.workflow.to_string(),
                "code": CONFIRMATION_EXPIRED,
                "deadline": ctx.due_at,
            }),
        )
        .await
    }

    /// Record in the audit log what a timer of `ctx`'s workflow did.
    async fn audit_timer(
        &self,
        ctx: &TimerContext,
        action: &str,
        details: serde_json::Value,
    ) -> Result<(), StepError> {
        let entry = AuditEntry::new(
            ctx.now(),
            AUDIT_ACTOR,
            Some(ctx.tenant.clone()),
            action,
            AUDIT_ENTITY,
            ctx.workflow.to_string(),
        )
        .details(details);
        self.deps
            .audit
            .append(entry)
            .await
            .map(|_| ())
            .map_err(|e| StepError::retryable("audit_failed", e.message))
    }

    /// The backup's retention timer fired: delete it (and any work files,
    /// and what a failed run left of its asset staging).
    async fn expire_backup(&self, ctx: &TimerContext) -> Result<(), StepError> {
        let key = steps::backup::backup_key(&ctx.tenant, ctx.workflow)?;
        self.deps.objects.delete(Area::Backups, &key).await?;
        if let Ok(RehydrateInput {
            source: Source::Upload { id, .. },
            ..
        }) = RehydrateInput::from_value(&ctx.input)
        {
            if input::valid_upload_id(&id) {
                let shared = shared_upload_key(&ctx.tenant, &id)?;
                self.deps.objects.delete(Area::Backups, &shared).await?;
            }
        }
        assets::drop_staging(&*self.deps.objects, &ctx.tenant, ctx.workflow).await?;
        if let Some(m) = &self.metrics {
            m.bundles_expired.with_label_values(&[KIND]).inc();
        }
        remove_dir_all_idempotent(&self.work_dir_of(ctx.workflow))
            .await
            .map_err(|e| StepError::retryable("work_dir_failed", e.to_string()))?;
        self.audit_timer(
            ctx,
            "REHYDRATE_BACKUP_EXPIRED",
            json!({"workflowId": ctx.workflow.to_string(), "key": key.as_str()}),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::StepOutput;
    use std::collections::BTreeMap;

    #[test]
    fn the_steps_keep_the_names_stored_in_events_in_their_order() {
        let names: Vec<_> = RehydrateStep::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "receive",
                "validate",
                "preview",
                "confirm",
                "quiesce",
                "backup",
                "load",
                "assets",
                "reactivate"
            ]
        );
        for step in RehydrateStep::ALL {
            assert_eq!(RehydrateStep::named(step.name()), Some(*step));
            assert_eq!(step.spec().name, step.name());
        }
    }

    #[test]
    fn the_specs_keep_their_flags() {
        let spec = |s: RehydrateStep| s.spec();
        assert_eq!(
            spec(RehydrateStep::Confirm).awaits_signal,
            Some(CONFIRM_SIGNAL)
        );
        assert!(spec(RehydrateStep::Quiesce).compensable);
        let compensable = RehydrateStep::ALL
            .iter()
            .filter(|s| s.spec().compensable)
            .count();
        assert_eq!(compensable, 1);
        // A dry run skips everything after the preview but reactivate.
        let dry = json!({ DRY_RUN_FIELD: true });
        let skipped: Vec<_> = RehydrateStep::ALL
            .iter()
            .filter(|s| s.spec().skipped_for(&dry))
            .map(|s| s.name())
            .collect();
        assert_eq!(skipped, ["confirm", "quiesce", "backup", "load", "assets"]);
    }

    #[test]
    fn each_output_names_its_own_step() {
        use steps::*;
        assert_eq!(receive::ReceiveOutput::STEP, RehydrateStep::Receive);
        assert_eq!(validate::ValidateOutput::STEP, RehydrateStep::Validate);
        assert_eq!(preview::PreviewOutput::STEP, RehydrateStep::Preview);
        assert_eq!(backup::BackupOutput::STEP, RehydrateStep::Backup);
        assert_eq!(load::LoadOutput::STEP, RehydrateStep::Load);
        assert_eq!(
            crate::rehydrate::assets::AssetsChanged::STEP,
            RehydrateStep::Assets
        );
    }

    #[test]
    fn progress_is_the_share_of_steps_done() {
        let mut outputs = BTreeMap::new();
        outputs.insert("receive".to_owned(), json!({}));
        outputs.insert("validate".to_owned(), json!({}));
        outputs.insert("preview".to_owned(), json!({}));
        // 3 of 9 steps, and half of the fourth: 100 * 3.5 / 9.
        assert_eq!(
            RehydrateStep::progress_percent(&outputs, Some("confirm"), Some(0.5)),
            38
        );
        assert_eq!(RehydrateStep::progress_percent(&outputs, None, None), 33);
    }
}
