//! The export workflow (kind `export`): hand one tenant all of its data as a
//! signed, checksummed bundle, durably and resumably.
//!
//! Steps, in order: `plan` (resolve the tenant and its tables) → `snapshot`
//! (every table read in one consistent snapshot, streamed to files in the
//! workflow's work directory, checkpointed per table) → `assets` (the
//! tenant's files, only under its own prefix) → `bundle` (the ZIP, streamed,
//! with a signed manifest) → `upload` (into the private exports area, under
//! the tenant) → `notify` (email with a signed ferry link) → `expire` (a
//! durable timer deletes the bundle after its TTL). Each step is idempotent,
//! because a crash between doing a step and recording it repeats the step,
//! and each appends an audit entry naming the workflow and the step.
//!
//! The tenant always comes from the engine (`ctx.tenant`, i.e. the token),
//! never from the input. No step is compensable: a failed export stays
//! `failed` and can be resumed from the step that failed.

pub mod input;
pub mod metrics;
pub(crate) mod records;
pub mod status;
pub mod steps;

use crate::bundle::BundleSigner;
use crate::common::{policy, remove_dir_all_idempotent, WorkflowStep};
use crate::links::LinkSigner;
use crate::ports::audit::{AuditEntry, AuditLog};
use crate::ports::export_records::{ExportRecords, NoExportRecords};
use crate::ports::mail::Mailer;
use crate::ports::objects::{Area, ObjectKey, ObjectStore};
use crate::ports::tenant::TenantStore;
use async_trait::async_trait;
use ferry_engine::{
    RetryPolicy, Status, StepContext, StepError, StepSpec, TimerContext, Workflow, WorkflowId,
};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use input::{
    parse_request, validate_request, DateRange, ExportInput, ExportRequest, InputError, Profile,
    Requester,
};
pub use status::{artifact, ArtifactError, ExportArtifact, ExportStatusView, StatusError};

/// The kind name stored in events.
pub const KIND: &str = "export";
/// The durable timer that deletes the bundle.
pub const EXPIRE_TIMER: &str = "expire";
/// Entity name used in audit entries.
pub const AUDIT_ENTITY: &str = "export";
/// Actor of audit entries the engine writes itself.
pub const AUDIT_ACTOR: &str = crate::common::AUDIT_ACTOR;

/// The adapters the steps use.
#[derive(Clone)]
pub struct ExportDeps {
    pub tenants: Arc<dyn TenantStore>,
    pub objects: Arc<dyn ObjectStore>,
    pub mailer: Arc<dyn Mailer>,
    pub audit: Arc<dyn AuditLog>,
    pub signer: Arc<BundleSigner>,
    pub links: LinkSigner,
}

/// Settings of the export workflow.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// Root of the per-workflow work directories (`<data>/work`).
    pub work_dir: PathBuf,
    /// Prefix of the emailed links, e.g. `http://127.0.0.1:8080`.
    pub public_base_url: String,
    /// How long a bundle is kept after the export completes.
    pub bundle_ttl: Duration,
    /// How long an emailed link works.
    pub link_ttl: Duration,
    /// Largest bundle (compressed archive) allowed.
    pub max_bundle_bytes: u64,
    /// The column the analytics profile's date range filters on.
    pub analytics_timestamp_column: String,
    /// Written into the manifest's `producer.version`.
    pub producer_version: String,
    /// Deflate level (0–9) of the table files, compressed while they are
    /// dumped.
    pub deflate_level: u32,
}

impl ExportConfig {
    /// Defaults: 24 h bundle and link lives, 10 GiB bundles, `created_at`.
    pub fn new(work_dir: impl Into<PathBuf>, public_base_url: impl Into<String>) -> Self {
        ExportConfig {
            work_dir: work_dir.into(),
            public_base_url: public_base_url.into(),
            bundle_ttl: Duration::from_secs(24 * 3600),
            link_ttl: Duration::from_secs(24 * 3600),
            max_bundle_bytes: 10 * 1024 * 1024 * 1024,
            analytics_timestamp_column: "created_at".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            deflate_level: crate::bundle::writer::DEFLATE_LEVEL,
        }
    }
}

/// The export workflow definition; register it with the engine.
pub struct ExportWorkflow {
    pub(crate) deps: ExportDeps,
    pub(crate) config: ExportConfig,
    pub(crate) metrics: Option<metrics::ExportMetrics>,
    pub(crate) records: Arc<dyn ExportRecords>,
    steps: Vec<StepSpec>,
}

/// The export's steps, in order. The names are stored in events and stay
/// as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExportStep {
    Plan,
    Snapshot,
    Assets,
    Bundle,
    Upload,
    Notify,
    Expire,
}

impl WorkflowStep for ExportStep {
    const ALL: &'static [ExportStep] = &[
        ExportStep::Plan,
        ExportStep::Snapshot,
        ExportStep::Assets,
        ExportStep::Bundle,
        ExportStep::Upload,
        ExportStep::Notify,
        ExportStep::Expire,
    ];

    fn name(self) -> &'static str {
        match self {
            ExportStep::Plan => "plan",
            ExportStep::Snapshot => "snapshot",
            ExportStep::Assets => "assets",
            ExportStep::Bundle => "bundle",
            ExportStep::Upload => "upload",
            ExportStep::Notify => "notify",
            ExportStep::Expire => "expire",
        }
    }

    fn spec(self) -> StepSpec {
        let secs = Duration::from_secs;
        let spec = StepSpec::new(self.name());
        match self {
            // Unknown tenants and tables are permanent errors; only I/O retries.
            ExportStep::Plan => spec.retry(policy(5, secs(1), secs(60))).timeout(secs(300)),
            ExportStep::Snapshot => spec
                .retry(policy(5, secs(2), secs(300)))
                .timeout(secs(6 * 3600)),
            ExportStep::Assets => spec
                .retry(policy(6, secs(2), secs(300)))
                .timeout(secs(6 * 3600)),
            ExportStep::Bundle => spec
                .retry(policy(3, secs(2), secs(120)))
                .timeout(secs(6 * 3600)),
            ExportStep::Upload => spec
                .retry(policy(8, secs(2), secs(600)))
                .timeout(secs(4 * 3600)),
            // Mail servers go away for a while: many attempts, long backoff,
            // and a failed send never repeats the steps before it.
            ExportStep::Notify => spec
                .retry(policy(20, secs(10), secs(1800)))
                .timeout(secs(120)),
            ExportStep::Expire => spec.retry(policy(10, secs(1), secs(300))).timeout(secs(60)),
        }
    }

    /// Percent of the whole export (the weights sum to 100).
    fn weight(self) -> f64 {
        match self {
            ExportStep::Plan => 2.0,
            ExportStep::Snapshot => 50.0,
            ExportStep::Assets => 15.0,
            ExportStep::Bundle => 25.0,
            ExportStep::Upload => 5.0,
            ExportStep::Notify => 2.0,
            ExportStep::Expire => 1.0,
        }
    }
}

impl ExportStep {
    /// Run this step with the export's input, parsed once by
    /// [`ExportWorkflow::run`].
    async fn run(
        self,
        wf: &ExportWorkflow,
        ctx: &mut StepContext,
        input: &ExportInput,
    ) -> Result<Value, StepError> {
        match self {
            ExportStep::Plan => steps::plan::run(wf, ctx, input).await,
            ExportStep::Snapshot => steps::snapshot::run(wf, ctx, input).await,
            ExportStep::Assets => steps::assets::run(wf, ctx, input).await,
            ExportStep::Bundle => steps::bundle::run(wf, ctx, input).await,
            ExportStep::Upload => steps::upload::run(wf, ctx).await,
            ExportStep::Notify => steps::notify::run(wf, ctx, input).await,
            ExportStep::Expire => steps::expire::run(wf, ctx, input).await,
        }
    }
}

impl ExportWorkflow {
    pub fn new(deps: ExportDeps, config: ExportConfig) -> Self {
        ExportWorkflow {
            deps,
            config,
            metrics: None,
            records: Arc::new(NoExportRecords),
            steps: ExportStep::specs(),
        }
    }

    /// Count exports in these metrics.
    pub fn with_metrics(mut self, metrics: metrics::ExportMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Keep export records here (by default none are kept).
    pub fn with_records(mut self, records: Arc<dyn ExportRecords>) -> Self {
        self.records = records;
        self
    }

    /// Write the export's record after step `step` succeeded with
    /// `output`: created by `plan`, with the bundle's size, checksum and key
    /// after `upload`, completed with its expiry after `expire`.
    async fn record_step(
        &self,
        step: ExportStep,
        ctx: &StepContext,
        output: &Value,
    ) -> Result<(), StepError> {
        let status = match step {
            ExportStep::Plan | ExportStep::Upload => Status::Running,
            ExportStep::Expire => Status::Completed,
            _ => return Ok(()),
        };
        let mut outputs = (*ctx.outputs).clone();
        outputs.insert(step.name().to_owned(), output.clone());
        let record = records::RecordSource::of_step(ctx, &outputs).record(status)?;
        self.write_record(record).await
    }

    /// Replace one step's retry policy (operators tune them; tests shorten
    /// backoffs). Unknown step names are ignored.
    pub fn with_retry(mut self, step: &str, retry: RetryPolicy) -> Self {
        if let Some(spec) = self.steps.iter_mut().find(|s| s.name == step) {
            spec.retry = retry;
        }
        self
    }

    pub fn config(&self) -> &ExportConfig {
        &self.config
    }

    /// The private work directory of one export.
    pub fn work_dir_of(&self, id: WorkflowId) -> PathBuf {
        self.config.work_dir.join(id.to_string())
    }

    /// Remove work directories of exports that are no longer open (failed
    /// exports that were cancelled, crashed leftovers). Call at start-up with
    /// the ids of open export workflows. Returns how many were removed.
    pub async fn sweep_work_dirs(&self, open: &HashSet<WorkflowId>) -> std::io::Result<usize> {
        let mut removed = 0;
        let mut dir = match tokio::fs::read_dir(&self.config.work_dir).await {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        while let Some(entry) = dir.next_entry().await? {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|s| s.parse::<WorkflowId>().ok()) else {
                continue;
            };
            if !open.contains(&id) {
                remove_dir_all_idempotent(&entry.path()).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Append an audit entry for a step of export `id`, recognisable by the
    /// workflow id, the step and the attempt (a step may repeat).
    pub(crate) async fn audit(
        &self,
        ctx: &StepContext,
        action: &str,
        details: Value,
    ) -> Result<(), StepError> {
        let input = ExportInput::from_value(&ctx.input).ok();
        let common = json!({"requestedBy": input.as_ref().map(|i| i.requested_by.sub.clone())});
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
impl Workflow for ExportWorkflow {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn steps(&self) -> &[StepSpec] {
        &self.steps
    }

    async fn run(&self, mut ctx: StepContext) -> Result<Value, StepError> {
        let step = ExportStep::named(&ctx.step);
        let input = ExportInput::from_value(&ctx.input);
        let result = match (step, &input) {
            (None, _) => Err(StepError::permanent(
                "unknown_step",
                format!("export has no step {:?}", ctx.step),
            )),
            (Some(_), Err(e)) => Err(StepError::permanent(e.code, e.message.clone())),
            (Some(step), Ok(input)) => step.run(self, &mut ctx, input).await,
        };
        let result = match (result, step) {
            (Ok(output), Some(step)) => self.record_step(step, &ctx, &output).await.map(|_| output),
            (result, _) => result,
        };
        if let Err(e) = &result {
            // A failure the engine will not retry shows in the record too
            // (best effort: the event log has it either way).
            let status = match e.code.as_str() {
                "cancelled" => Some(Status::Cancelled),
                _ if !e.retryable => Some(Status::Failed),
                _ => None,
            };
            let source = records::RecordSource::of_step(&ctx, &ctx.outputs);
            if let Some(record) = status.and_then(|s| source.record(s).ok()) {
                if let Err(record_err) = self.write_record(record).await {
                    tracing::warn!(workflow = %ctx.workflow, error = %record_err.message, "could not record a failed export");
                }
            }
            if e.code == "cancelled" {
                // Cancelled exports never resume: their files can go now.
                let _ = remove_dir_all_idempotent(&self.work_dir_of(ctx.workflow)).await;
            }
            // Best effort: the failure itself is already in the event log.
            let details = json!({"code": e.code, "message": e.message, "retryable": e.retryable});
            if let Err(audit_err) = self.audit(&ctx, "EXPORT_STEP_FAILED", details).await {
                tracing::warn!(workflow = %ctx.workflow, error = %audit_err, "could not audit a failed export step");
            }
        }
        result
    }

    async fn on_timer(&self, ctx: TimerContext) -> Result<(), StepError> {
        if ctx.name != EXPIRE_TIMER {
            return Ok(());
        }
        steps::expire::on_expire(self, &ctx).await
    }
}

/// The exports-area key of a bundle: `<tenant>/<export-id>/<file name>`.
pub fn bundle_key(
    tenant: &ferry_engine::TenantId,
    id: WorkflowId,
    file_name: &str,
) -> Result<ObjectKey, StepError> {
    ObjectKey::for_tenant(tenant, &format!("{id}/{file_name}"))
        .map_err(|e| StepError::permanent("invalid_object_key", e.to_string()))
}

/// The audit entry the API appends before it serves a bundle (by a signed
/// link or the authenticated endpoint), so every download is recorded with
/// who, from where and what: action `EXPORT_DOWNLOADED`.
#[allow(clippy::too_many_arguments)]
pub fn download_audit_entry(
    at: ferry_engine::Timestamp,
    tenant: &ferry_engine::TenantId,
    export_id: WorkflowId,
    artifact: &ExportArtifact,
    actor: &str,
    via: &str,
    ip: Option<String>,
    user_agent: Option<String>,
) -> AuditEntry {
    let mut entry = AuditEntry::new(
        at,
        actor,
        Some(tenant.clone()),
        "EXPORT_DOWNLOADED",
        AUDIT_ENTITY,
        export_id.to_string(),
    )
    .details(json!({
        "workflowId": export_id.to_string(),
        "via": via,
        "key": artifact.key.as_str(),
        "fileName": artifact.file_name,
        "sizeBytes": artifact.size_bytes,
        "checksum": artifact.checksum,
    }));
    entry.ip = ip;
    entry.user_agent = user_agent;
    entry
}

/// Which area bundles live in.
pub const BUNDLE_AREA: Area = Area::Exports;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::{StepOutput, WorkflowStep};
    use std::collections::BTreeMap;

    #[test]
    fn the_steps_keep_the_names_stored_in_events_in_their_order() {
        let names: Vec<_> = ExportStep::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            ["plan", "snapshot", "assets", "bundle", "upload", "notify", "expire"]
        );
        for step in ExportStep::ALL {
            assert_eq!(ExportStep::named(step.name()), Some(*step));
            assert_eq!(step.spec().name, step.name());
        }
        assert_eq!(ExportStep::named("confirm"), None);
        let weights: f64 = ExportStep::ALL.iter().map(|s| s.weight()).sum();
        assert_eq!(weights, 100.0);
    }

    #[test]
    fn each_output_names_its_own_step() {
        use steps::*;
        assert_eq!(plan::PlanOutput::STEP, ExportStep::Plan);
        assert_eq!(snapshot::SnapshotOutput::STEP, ExportStep::Snapshot);
        assert_eq!(assets::AssetsOutput::STEP, ExportStep::Assets);
        assert_eq!(bundle::BundleOutput::STEP, ExportStep::Bundle);
        assert_eq!(upload::UploadOutput::STEP, ExportStep::Upload);
        assert_eq!(notify::NotifyOutput::STEP, ExportStep::Notify);
        assert_eq!(expire::ExpireOutput::STEP, ExportStep::Expire);
    }

    #[test]
    fn progress_counts_finished_steps_and_the_current_one() {
        let mut outputs = BTreeMap::new();
        assert_eq!(ExportStep::progress_percent(&outputs, None, None), 0);
        outputs.insert("plan".to_owned(), json!({}));
        outputs.insert("snapshot".to_owned(), json!({}));
        // 2 + 50 done, half of the assets' 15.
        assert_eq!(
            ExportStep::progress_percent(&outputs, Some("assets"), Some(0.5)),
            59
        );
        // A fraction out of range counts as its bound.
        assert_eq!(
            ExportStep::progress_percent(&outputs, Some("assets"), Some(7.0)),
            67
        );
        for step in ExportStep::ALL {
            outputs.insert(step.name().to_owned(), json!({}));
        }
        // 100 only once the workflow completed, which the caller knows.
        assert_eq!(ExportStep::progress_percent(&outputs, None, None), 99);
    }

    #[test]
    fn the_specs_are_the_enum_s() {
        let specs = ExportStep::specs();
        assert_eq!(specs.len(), ExportStep::ALL.len());
        assert_eq!(specs[5].name, "notify");
        assert_eq!(specs[5].retry.attempts_max, 20);
        assert_eq!(specs[0].timeout, Duration::from_secs(300));
    }
}
