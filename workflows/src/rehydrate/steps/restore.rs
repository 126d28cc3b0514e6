//! Compensation of `quiesce`: the rollback. It runs when a step after
//! `quiesce` fails for good, when the workflow is cancelled after it, and
//! when a finished rehydration is rolled back while its backup is kept.
//!
//! If a backup was taken, it is fetched (the local copy, else the backups
//! area), validated like any bundle (signature, checksums, rows, schema),
//! and loaded through the same atomic switch as the forward load
//! (`load.rs`): one transaction that first waits for any other load of the
//! tenant to end, then — unless every table already equals the backup's
//! content hash, the usual case after a failed load, which committed
//! nothing — replaces every table with the backup's rows and commits only
//! once every content hash equals the backup's. A restore that cannot
//! verify is an error, retried, never reported as done, and it never
//! leaves anything half-restored. Then, where the forward run changes the
//! tenant's files, the prefix is made exactly the backup's files again,
//! writing only what differs (`rehydrate::assets`), so files the forward
//! run never reached stay as they are. Then the tenant is reactivated and
//! what is left of the asset staging dropped. With no backup nothing was
//! loaded or switched (both run only after the backup verified), so only
//! the flag is lifted. Safe to repeat.

use super::backup::{download_stored, BackupOutput};
use super::load::{atomic_load, LoadFiles, LoadRequest};
use super::validate::TableFile;
use super::{with_writer, WorkDirs};
use crate::common::{
    recorded, remove_dir_all_idempotent, secs, to_output, StepOutput, WorkflowStep,
};
use crate::ports::tenant_writer::{TableDigest, Verify, WriteMode, VERIFY_MISMATCH};
use crate::rehydrate::assets::{self, AssetsChanged};
use crate::rehydrate::validate::{self, BundleData, Request};
use crate::rehydrate::{RehydrateStep, RehydrateWorkflow};
use ferry_engine::{StepContext, StepError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Put the backup at `dirs.backup()` unless a copy with its checksum is there.
async fn fetch_backup(
    wf: &RehydrateWorkflow,
    ctx: &StepContext,
    dirs: &WorkDirs,
    b: &BackupOutput,
) -> Result<(), StepError> {
    let local = dirs.backup();
    // Hashed as it streams: a backup is a whole tenant.
    if crate::bundle::writer::hash_file(&local)
        .await
        .is_ok_and(|(hex, _)| hex == b.checksum)
    {
        return Ok(());
    }
    if download_stored(wf, ctx, dirs).await? {
        Ok(())
    } else {
        Err(StepError::permanent(
            "backup_gone",
            "the backup is no longer kept; the rehydration cannot be rolled back",
        ))
    }
}

/// What a rollback restored.
struct Restored {
    /// The backup's rows were loaded (the tenant's differed from them).
    rows: bool,
    /// What was done to the tenant's files, if the forward run changes
    /// them.
    assets: Option<AssetsChanged>,
}

/// Load the backup unless the tenant already equals it, and make the
/// tenant's files the backup's where the forward run changes them.
async fn restore(
    wf: &RehydrateWorkflow,
    ctx: &mut StepContext,
    b: &BackupOutput,
) -> Result<Restored, StepError> {
    let dirs = WorkDirs::new(wf, ctx.workflow);
    dirs.create().await?;
    fetch_backup(wf, ctx, &dirs, b).await?;
    let target = with_writer(wf, ctx, |w| w.schema()).await?;
    let key = wf.deps.signer.verifying_key();
    let restore_dir = dirs.restore_dir();
    let _ = tokio::fs::remove_dir_all(&restore_dir).await;
    // A backup holds the tenant's files as they were, and files may deflate
    // far more than the ratio an upload may (a zip-bomb guard): a backup is
    // ferry's own bundle, whose entries inflate only once its signature
    // checked and never past their signed sizes.
    let limits = validate::Limits {
        ratio_max: u64::MAX,
        ..wf.config.limits.clone()
    };
    let validated = validate::validate(
        &dirs.backup(),
        &restore_dir,
        &dirs.root.join("restore-report.ndjson"),
        Request {
            tenant: &ctx.tenant,
            key: &key,
            target: &target,
            tables: None,
            merge: false,
            limits: &limits,
        },
    )
    .await
    .map_err(|r| {
        StepError::retryable(
            r.code,
            format!("the backup does not validate: {}", r.message),
        )
    })?;
    let BundleData::Lite { tables } = &validated.data else {
        return Err(StepError::permanent(
            "backup_invalid",
            "a backup is always lite",
        ));
    };
    let files: Vec<TableFile> = tables
        .iter()
        .map(|t| TableFile {
            table: t.name.clone(),
            file: t.path.to_string_lossy().into_owned(),
            rows: t.rows,
            blake3: t.blake3.clone(),
        })
        .collect();
    // What the backup recorded when it was taken and verified.
    let expected = Verify::Digests(
        b.tables
            .iter()
            .map(|t| TableDigest {
                table: t.table.clone(),
                rows: t.rows,
                blake3: t.blake3.clone(),
            })
            .collect(),
    );
    let lite = LoadFiles::Lite(files.into_iter().map(|f| (f, WriteMode::Replace)).collect());
    let request = LoadRequest {
        files: lite,
        verify: expected,
        unless_verified: true,
        trial: false,
        point: "rehydrate.rollback",
    };
    let restored = match atomic_load(wf, ctx, request).await {
        Ok(outcome) => assets::restore(wf, ctx, b.assets.as_ref(), &validated, &restore_dir)
            .await
            .map(|assets| Restored {
                rows: !outcome.unchanged,
                assets,
            }),
        Err(e) => Err(e),
    };
    let _ = tokio::fs::remove_dir_all(&restore_dir).await;
    restored
}

/// What the rollback (the compensation of `quiesce`) records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RestoreOutput {
    /// Whether the backup's rows were loaded (the data differed from it).
    pub restored: bool,
    /// What was done to the tenant's files, when the forward run changes them.
    #[serde(default)]
    pub assets: Option<AssetsChanged>,
}

impl RestoreOutput {
    /// The rollback's record among a workflow's compensation outputs.
    pub fn recorded(compensated: &BTreeMap<String, Value>) -> Option<RestoreOutput> {
        compensated
            .get(RehydrateStep::Quiesce.name())
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

pub async fn compensate(wf: &RehydrateWorkflow, ctx: &mut StepContext) -> Result<Value, StepError> {
    let backup: Option<BackupOutput> = recorded(&ctx.outputs);
    let mut restored = Restored {
        rows: false,
        assets: None,
    };
    if let Some(b) = backup {
        with_writer(wf, ctx, |w| w.set_maintenance(true)).await?;
        restored = restore(wf, ctx, &b).await.map_err(|e| {
            if e.code == VERIFY_MISMATCH {
                StepError::retryable("restore_unverified", e.message)
            } else {
                e
            }
        })?;
    }
    with_writer(wf, ctx, |w| w.set_maintenance(false)).await?;
    assets::drop_staging(&*wf.deps.objects, &ctx.tenant, ctx.workflow).await?;
    if ctx.outputs.contains_key(BackupOutput::STEP.name()) {
        // Keep the backup for its retention after a rollback too, then let
        // the timer delete it.
        let until = ctx.now() + secs(wf.config.backup_retention);
        ctx.schedule_timer(crate::rehydrate::BACKUP_TIMER, until)
            .await?;
    }
    let root = WorkDirs::new(wf, ctx.workflow).root;
    let _ = remove_dir_all_idempotent(&root.join("bundle")).await;
    let out = to_output(&RestoreOutput {
        restored: restored.rows,
        assets: restored.assets,
    })?;
    wf.audit(ctx, "REHYDRATE_ROLLED_BACK", out.clone()).await?;
    Ok(out)
}
