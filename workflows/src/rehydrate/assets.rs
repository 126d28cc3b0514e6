//! The tenant's files (assets) in a rehydration: what it does to them, and
//! how it switches them without ever leaving them half-switched for good.
//!
//! **What** ([`AssetPolicy`], from the mode and the bundle):
//! - `replace` with a bundle that carries the tenant's asset set makes the
//!   tenant's prefix exactly the bundle's files: changed files are
//!   overwritten, missing ones added, the others deleted;
//! - `merge` with such a bundle writes its new and changed files and keeps
//!   the others;
//! - `partial`, and any bundle exported without assets, leave the tenant's
//!   files alone.
//!
//! Whether a bundle carries the asset set is the manifest's
//! `assets.included` ([`Manifest::carries_assets`]): an export with
//! `includeAssets: false` (or a tenant without files) has no `assets/`
//! entry either way, and only a bundle that says it holds the set may
//! delete files. A file is unchanged when its size and blake3 equal the
//! bundle's; unchanged files are not written.
//!
//! **How**, step by step:
//! 1. `validate` records the bundle's files (path, size, blake3) in the
//!    work directory, `assets.ndjson` ([`record_bundle`]).
//! 2. `preview` counts files and bytes to write and to delete against the
//!    tenant's files as they are ([`preview`]; a tenant file is read, to
//!    hash it, only when the bundle has one of the same path and size).
//! 3. `backup` puts the tenant's files into the backup bundle, then
//!    **stages** ([`stage`]): the plan (deletes, then writes), computed
//!    against the backup's own list (hashed while the tenant is quiesced,
//!    so nothing is read twice), is stored with every file it writes in
//!    the backups area under the rehydration's own prefix,
//!    `<tenant>/<rehydration-id>/staging/` (`plan.ndjson`, `files/<path>`).
//!    Everything that moves bytes into the store, and so nearly everything
//!    that can fail, happens here, before the data commit: a failure
//!    leaves the tenant's rows and files as they were.
//! 4. `load` commits the data.
//! 5. `assets` **switches** ([`switch`]): it replays the staged plan —
//!    deletes, then server-side copies of the staged files into the
//!    tenant's prefix — records the checkpoint `switched`, and drops the
//!    staging. Every action is idempotent (a copy replaces its target
//!    whole, deleting a missing file is nothing), so a crash anywhere
//!    between the data commit and the end of the switch is finished by
//!    the step repeated after the restart; the checkpoint only tells a
//!    repeat that the plan was carried out whole and its staged files may
//!    be gone already. The switch reads nothing from the node's disk.
//! 6. The rollback ([`restore`], from `steps/restore.rs`) makes the
//!    prefix exactly the backup's files, comparing first (only files whose
//!    size or hash differ are written, extra ones deleted), so it is
//!    idempotent and changes nothing when the forward run failed before
//!    its switch changed anything. When the forward policy was `leave` it
//!    does not even look.
//!
//! Staging lives in the backups area rather than under the tenant's asset
//! prefix: the tenant's listing (its application, its exports, a replace)
//! never sees staged files, and the keys still start with the tenant id,
//! so no other tenant's prefix is ever touched. What is left of a staging
//! (a failed run) is dropped by the rollback and by the backup's expiry.
//! Lists of file *metadata* (never contents) are held in memory, like the
//! manifest itself; contents always stream.

use super::input::{Mode, RehydrateInput};
use super::steps::validate::ValidateOutput;
use super::steps::WorkDirs;
use super::validate::Validated;
use super::RehydrateWorkflow;
use crate::bundle::manifest::{Manifest, ASSETS_PREFIX};
use crate::bundle::writer::hash_reader;
use crate::common::io_error;
use crate::common::tenant_files::tenant_files_page;
use crate::ports::objects::{Area, ObjectKey, ObjectStore, LIST_LIMIT_MAX};
use crate::ports::PortError;
use ferry_engine::{StepContext, StepError, TenantId, WorkflowId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// What a rehydration does to the tenant's files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssetPolicy {
    /// The files stay as they are: a `partial` rehydration, or a bundle
    /// that does not carry the tenant's asset set.
    #[default]
    Leave,
    /// The bundle's new and changed files are written; the others stay.
    Merge,
    /// The tenant's prefix becomes exactly the bundle's files.
    Replace,
}

impl AssetPolicy {
    /// The policy of a rehydration in `mode` from a bundle that does (or
    /// does not) carry the tenant's asset set.
    pub fn of(mode: Mode, carried: bool) -> AssetPolicy {
        match (mode, carried) {
            (_, false) | (Mode::Partial, _) => AssetPolicy::Leave,
            (Mode::Merge, true) => AssetPolicy::Merge,
            (Mode::Replace, true) => AssetPolicy::Replace,
        }
    }
}

/// The bundle's files as `validate` found them; their list is in the work
/// directory (`assets.ndjson`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleAssets {
    /// Whether the bundle carries the tenant's asset set.
    pub carried: bool,
    pub files: u64,
    pub bytes: u64,
}

/// One file under a tenant's prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetFile {
    /// The key without `<tenant>/`; in a bundle, the entry without
    /// `assets/`.
    pub path: String,
    pub bytes: u64,
    /// blake3, lowercase hex; empty for a tenant's file that was not read
    /// because no bundle file of its path and size exists.
    pub blake3: String,
}

/// What a rehydration will do to the tenant's files: the preview's
/// numbers, and the plan `backup` staged for the switch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssetCounts {
    pub policy: AssetPolicy,
    /// Files to write (new or changed) and their bytes.
    pub will_write: u64,
    pub will_write_bytes: u64,
    /// Files to delete (only `replace`) and their bytes.
    pub will_delete: u64,
    pub will_delete_bytes: u64,
    /// Files of the bundle the tenant already holds byte for byte.
    pub unchanged: u64,
}

/// What a switch or a rollback did to the tenant's files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssetsChanged {
    pub policy: AssetPolicy,
    pub written: u64,
    pub written_bytes: u64,
    pub deleted: u64,
    pub deleted_bytes: u64,
}

impl AssetCounts {
    /// The counts once carried out.
    pub fn done(&self) -> AssetsChanged {
        AssetsChanged {
            policy: self.policy,
            written: self.will_write,
            written_bytes: self.will_write_bytes,
            deleted: self.will_delete,
            deleted_bytes: self.will_delete_bytes,
        }
    }
}

/// One action of a plan; a line of the staged `plan.ndjson`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Action {
    Delete(AssetFile),
    Write(AssetFile),
}

/// The actions that give the tenant's files (`current`) what `policy`
/// wants of the bundle's (`wanted`): deletes first (a `replace` may turn a
/// file into a folder), then writes, each in the order given.
struct Plan {
    policy: AssetPolicy,
    actions: Vec<Action>,
    unchanged: u64,
}

impl Plan {
    fn new(policy: AssetPolicy, wanted: &[AssetFile], current: &[AssetFile]) -> Plan {
        let mut plan = Plan {
            policy,
            actions: Vec::new(),
            unchanged: 0,
        };
        if policy == AssetPolicy::Leave {
            return plan;
        }
        if policy == AssetPolicy::Replace {
            let keep: HashSet<&str> = wanted.iter().map(|f| f.path.as_str()).collect();
            plan.actions.extend(
                current
                    .iter()
                    .filter(|f| !keep.contains(f.path.as_str()))
                    .map(|f| Action::Delete(f.clone())),
            );
        }
        let now: HashMap<&str, &AssetFile> = current.iter().map(|f| (f.path.as_str(), f)).collect();
        for f in wanted {
            match now.get(f.path.as_str()) {
                Some(c) if c.bytes == f.bytes && c.blake3 == f.blake3 => plan.unchanged += 1,
                _ => plan.actions.push(Action::Write(f.clone())),
            }
        }
        plan
    }

    fn counts(&self) -> AssetCounts {
        let mut c = AssetCounts {
            policy: self.policy,
            unchanged: self.unchanged,
            ..AssetCounts::default()
        };
        for a in &self.actions {
            match a {
                Action::Delete(f) => {
                    c.will_delete += 1;
                    c.will_delete_bytes += f.bytes;
                }
                Action::Write(f) => {
                    c.will_write += 1;
                    c.will_write_bytes += f.bytes;
                }
            }
        }
        c
    }
}

/// The keys of one rehydration's staging in the backups area:
/// `<tenant>/<rehydration-id>/staging/plan.ndjson` and
/// `<tenant>/<rehydration-id>/staging/files/<path>`.
struct Staging<'a> {
    tenant: &'a TenantId,
    base: String,
}

impl<'a> Staging<'a> {
    fn new(tenant: &'a TenantId, id: WorkflowId) -> Self {
        Staging {
            tenant,
            base: format!("{id}/staging"),
        }
    }

    fn key(&self, rest: &str) -> Result<ObjectKey, StepError> {
        tenant_key(self.tenant, &format!("{}/{rest}", self.base))
    }

    fn plan(&self) -> Result<ObjectKey, StepError> {
        self.key("plan.ndjson")
    }

    fn file(&self, f: &AssetFile) -> Result<ObjectKey, StepError> {
        self.key(&format!("files/{}", f.path))
    }
}

/// `<tenant>/<rest>`; a path that makes no valid key is permanent.
fn tenant_key(tenant: &TenantId, rest: &str) -> Result<ObjectKey, StepError> {
    ObjectKey::for_tenant(tenant, rest).map_err(|e| PortError::from(e).into())
}

/// Where the file of `f` lies in a folder a bundle was extracted to.
fn local_file(extracted: &Path, f: &AssetFile) -> PathBuf {
    extracted.join(ASSETS_PREFIX).join(&f.path)
}

/// The asset files a bundle's manifest lists, in path order.
pub(crate) fn files_of(manifest: &Manifest) -> Vec<AssetFile> {
    let mut files: Vec<AssetFile> = manifest
        .entries
        .iter()
        .filter_map(|e| {
            Some(AssetFile {
                path: e.path.strip_prefix(ASSETS_PREFIX)?.to_owned(),
                bytes: e.bytes,
                blake3: e.blake3.clone(),
            })
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// Write `items` as NDJSON to `path`, under a temporary name, synced and
/// renamed.
async fn write_lines<T: Serialize>(path: &Path, items: &[T]) -> Result<(), StepError> {
    let io = |e| io_error("assets_io", e);
    let tmp = path.with_extension("tmp");
    let mut out = tokio::io::BufWriter::new(tokio::fs::File::create(&tmp).await.map_err(io)?);
    for item in items {
        let mut line = serde_json::to_vec(item)
            .map_err(|e| StepError::permanent("invalid_output", e.to_string()))?;
        line.push(b'\n');
        out.write_all(&line).await.map_err(io)?;
    }
    out.flush().await.map_err(io)?;
    out.get_ref().sync_all().await.map_err(io)?;
    drop(out);
    tokio::fs::rename(&tmp, path).await.map_err(io)
}

/// Parse one NDJSON line this module wrote.
fn parse_line<T: DeserializeOwned>(line: &str, what: &str) -> Result<T, StepError> {
    serde_json::from_str(line)
        .map_err(|e| StepError::permanent("work_file_corrupt", format!("{what}: {e}")))
}

/// The bundle's files recorded by [`record_bundle`].
async fn read_bundle_files(dirs: &WorkDirs) -> Result<Vec<AssetFile>, StepError> {
    let file = tokio::fs::File::open(dirs.assets_index())
        .await
        .map_err(|e| StepError::permanent("work_file_missing", format!("assets.ndjson: {e}")))?;
    let mut lines = tokio::io::BufReader::new(file).lines();
    let mut files = Vec::new();
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| io_error("assets_io", e))?
    {
        files.push(parse_line(&line, "assets.ndjson")?);
    }
    Ok(files)
}

/// The tenant's files now: every key under `<tenant>/` in the assets area,
/// read (hashed, streamed) only where `wanted` has a file of the same path
/// and size, the only files whose content decides anything.
async fn current_files(
    objects: &dyn ObjectStore,
    tenant: &TenantId,
    wanted: &[AssetFile],
) -> Result<Vec<AssetFile>, StepError> {
    let sizes: HashMap<&str, u64> = wanted.iter().map(|f| (f.path.as_str(), f.bytes)).collect();
    let mut files = Vec::new();
    let mut after = None;
    loop {
        let page = tenant_files_page(objects, tenant, after.as_ref()).await?;
        for meta in page.objects {
            let path = meta.key.relative().to_owned();
            let (blake3, bytes) = if sizes.get(path.as_str()) == Some(&meta.size) {
                // Deleted since the listing: not one of the tenant's files.
                let Some(reader) = objects.open(Area::Assets, &meta.key).await? else {
                    continue;
                };
                hash_reader(reader)
                    .await
                    .map_err(|e| io_error("asset_read_failed", e))?
            } else {
                (String::new(), meta.size)
            };
            files.push(AssetFile {
                path,
                bytes,
                blake3,
            });
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(files)
}

/// Where a plan's files come from.
enum Source<'a> {
    /// Staged in the backups area (the forward switch).
    Staged(&'a Staging<'a>),
    /// Extracted under this folder (a rollback, from the backup).
    Extracted(&'a Path),
}

/// Carry out one action on the tenant's prefix. Idempotent.
async fn apply(
    objects: &dyn ObjectStore,
    tenant: &TenantId,
    action: &Action,
    source: &Source<'_>,
) -> Result<(), StepError> {
    match action {
        Action::Delete(f) => {
            objects
                .delete(Area::Assets, &tenant_key(tenant, &f.path)?)
                .await?;
        }
        Action::Write(f) => {
            let target = tenant_key(tenant, &f.path)?;
            match source {
                Source::Staged(staging) => {
                    objects
                        .copy(Area::Backups, &staging.file(f)?, Area::Assets, &target)
                        .await?
                        .ok_or_else(|| {
                            StepError::permanent(
                                "asset_staging_missing",
                                format!("the staged copy of {} is gone", f.path),
                            )
                        })?;
                }
                Source::Extracted(root) => {
                    objects
                        .put_file(Area::Assets, &target, &local_file(root, f))
                        .await?;
                }
            }
        }
    }
    Ok(())
}

/// Step `validate`: record the checked bundle's files for the later steps
/// (their list in `assets.ndjson`, the summary in the step's output).
pub(crate) async fn record_bundle(
    dirs: &WorkDirs,
    validated: &Validated,
) -> Result<BundleAssets, StepError> {
    let files = files_of(&validated.manifest);
    write_lines(&dirs.assets_index(), &files).await?;
    Ok(BundleAssets {
        carried: validated.manifest.carries_assets(),
        files: files.len() as u64,
        bytes: files.iter().map(|f| f.bytes).sum(),
    })
}

/// The policy of this rehydration.
fn policy_of(input: &RehydrateInput, v: &ValidateOutput) -> AssetPolicy {
    AssetPolicy::of(input.mode, v.assets.carried)
}

/// Step `preview`: what the switch would do to the tenant's files as they
/// are now.
pub(crate) async fn preview(
    wf: &RehydrateWorkflow,
    ctx: &StepContext,
    input: &RehydrateInput,
    v: &ValidateOutput,
) -> Result<AssetCounts, StepError> {
    let policy = policy_of(input, v);
    if policy == AssetPolicy::Leave {
        return Ok(AssetCounts::default());
    }
    let wanted = read_bundle_files(&WorkDirs::new(wf, ctx.workflow)).await?;
    let current = current_files(&*wf.deps.objects, &ctx.tenant, &wanted).await?;
    Ok(Plan::new(policy, &wanted, &current).counts())
}

/// Step `backup`, once the backup holds the tenant's files (`current`, with
/// their hashes): stage the switch — the plan, and every file it writes,
/// under the rehydration's staging prefix. Repeatable: a staged file of
/// the right size is this bundle's file, put whole by an earlier attempt.
pub(crate) async fn stage(
    wf: &RehydrateWorkflow,
    ctx: &StepContext,
    input: &RehydrateInput,
    v: &ValidateOutput,
    current: &[AssetFile],
) -> Result<AssetCounts, StepError> {
    let policy = policy_of(input, v);
    if policy == AssetPolicy::Leave {
        return Ok(AssetCounts::default());
    }
    let objects = &*wf.deps.objects;
    let dirs = WorkDirs::new(wf, ctx.workflow);
    let wanted = read_bundle_files(&dirs).await?;
    let plan = Plan::new(policy, &wanted, current);
    let staging = Staging::new(&ctx.tenant, ctx.workflow);
    for action in &plan.actions {
        let Action::Write(f) = action else { continue };
        ctx.check_cancelled()?;
        let key = staging.file(f)?;
        let staged = objects.head(Area::Backups, &key).await?;
        if staged.is_none_or(|m| m.size != f.bytes) {
            objects
                .put_file(Area::Backups, &key, &local_file(&dirs.extracted(), f))
                .await?;
        }
    }
    write_lines(&dirs.assets_plan(), &plan.actions).await?;
    objects
        .put_file(Area::Backups, &staging.plan()?, &dirs.assets_plan())
        .await?;
    Ok(plan.counts())
}

/// Step `assets`: carry out the plan `staged` (after the data commit),
/// then drop the staging; see the module docs for why repeating it after
/// a crash finishes it. Passes the failpoint `rehydrate.assets.inside`
/// after every action.
pub(crate) async fn switch(
    wf: &RehydrateWorkflow,
    ctx: &mut StepContext,
    staged: &AssetCounts,
) -> Result<AssetsChanged, StepError> {
    let objects = wf.deps.objects.clone();
    let tenant = ctx.tenant.clone();
    let staging = Staging::new(&tenant, ctx.workflow);
    let switched = ctx
        .checkpoint_value()
        .is_some_and(|c| c["switched"] == json!(true));
    if staged.policy != AssetPolicy::Leave && !switched {
        let plan = objects
            .open(Area::Backups, &staging.plan()?)
            .await?
            .ok_or_else(|| {
                StepError::permanent(
                    "asset_staging_missing",
                    "the staged plan of the asset switch is gone",
                )
            })?;
        let mut lines = tokio::io::BufReader::new(plan).lines();
        while let Some(line) = lines
            .next_line()
            .await
            .map_err(|e| io_error("asset_read_failed", e))?
        {
            ctx.check_cancelled()?;
            let action: Action = parse_line(&line, "plan.ndjson")?;
            apply(&*objects, &tenant, &action, &Source::Staged(&staging)).await?;
            crate::failpoints::hit("rehydrate.assets.inside").await?;
        }
        ctx.checkpoint(json!({"switched": true}), None).await?;
    }
    drop_staging(&*objects, &tenant, ctx.workflow).await?;
    Ok(staged.done())
}

/// The rollback (`steps/restore.rs`): make the tenant's files exactly the
/// backup's (`backup`, extracted under `extracted`), writing only what
/// differs. `None`, touching nothing, when the forward run never changes
/// files (the policy it staged, `staged`, is `leave`; no policy: its backup
/// predates staging) or the backup does not hold them.
pub(crate) async fn restore(
    wf: &RehydrateWorkflow,
    ctx: &StepContext,
    staged: Option<&AssetCounts>,
    backup: &Validated,
    extracted: &Path,
) -> Result<Option<AssetsChanged>, StepError> {
    let forward = staged.map_or(AssetPolicy::Leave, |s| s.policy);
    if forward == AssetPolicy::Leave || !backup.manifest.carries_assets() {
        return Ok(None);
    }
    let objects = &*wf.deps.objects;
    let wanted = files_of(&backup.manifest);
    let current = current_files(objects, &ctx.tenant, &wanted).await?;
    let plan = Plan::new(AssetPolicy::Replace, &wanted, &current);
    for action in &plan.actions {
        apply(objects, &ctx.tenant, action, &Source::Extracted(extracted)).await?;
    }
    Ok(Some(plan.counts().done()))
}

/// Delete what is left of a rehydration's staging: after its switch, by
/// its rollback, and when its backup expires. Idempotent.
pub(crate) async fn drop_staging(
    objects: &dyn ObjectStore,
    tenant: &TenantId,
    id: WorkflowId,
) -> Result<(), StepError> {
    let staging = Staging::new(tenant, id);
    // Keys sort after `<base>` and then, past `<base>/...`, end the range.
    let base = tenant_key(tenant, &staging.base)?;
    let prefix = format!("{base}/");
    let mut after = base;
    loop {
        let page = objects
            .list(Area::Backups, tenant, Some(&after), LIST_LIMIT_MAX)
            .await?;
        for meta in &page.objects {
            if meta.key.as_str().starts_with(&prefix) {
                objects.delete(Area::Backups, &meta.key).await?;
            } else if meta.key.as_str() > prefix.as_str() {
                return Ok(());
            }
        }
        match page.next {
            Some(next) => after = next,
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, bytes: u64, blake3: &str) -> AssetFile {
        AssetFile {
            path: path.into(),
            bytes,
            blake3: blake3.into(),
        }
    }

    #[test]
    fn the_policy_follows_the_mode_and_whether_the_bundle_carries_assets() {
        assert_eq!(AssetPolicy::of(Mode::Replace, true), AssetPolicy::Replace);
        assert_eq!(AssetPolicy::of(Mode::Merge, true), AssetPolicy::Merge);
        assert_eq!(AssetPolicy::of(Mode::Partial, true), AssetPolicy::Leave);
        for mode in [Mode::Replace, Mode::Merge, Mode::Partial] {
            assert_eq!(AssetPolicy::of(mode, false), AssetPolicy::Leave);
        }
    }

    #[test]
    fn plans_write_what_differs_and_replace_deletes_the_rest() {
        let wanted = [
            file("a.txt", 1, "ha"),
            file("b.txt", 2, "hb"),
            file("new.txt", 3, "hn"),
        ];
        let current = [
            file("a.txt", 1, "ha"),
            file("b.txt", 2, "old"),
            file("extra.txt", 9, ""),
        ];
        let replace = Plan::new(AssetPolicy::Replace, &wanted, &current);
        assert_eq!(
            replace.actions,
            vec![
                Action::Delete(current[2].clone()),
                Action::Write(wanted[1].clone()),
                Action::Write(wanted[2].clone()),
            ]
        );
        let c = replace.counts();
        assert_eq!(
            (
                c.will_write,
                c.will_write_bytes,
                c.will_delete,
                c.will_delete_bytes,
                c.unchanged
            ),
            (2, 5, 1, 9, 1)
        );
        let merge = Plan::new(AssetPolicy::Merge, &wanted, &current);
        assert_eq!(merge.counts().will_delete, 0);
        assert_eq!(merge.counts().will_write, 2);
        let leave = Plan::new(AssetPolicy::Leave, &wanted, &current);
        assert!(leave.actions.is_empty());
        // An empty asset set replaces everything with nothing.
        let empty = Plan::new(AssetPolicy::Replace, &[], &current);
        assert_eq!(empty.counts().will_delete, 3);
    }

    #[test]
    fn plan_lines_name_their_action() {
        let line = serde_json::to_value(Action::Write(file("x/y.png", 4, "h"))).unwrap();
        assert_eq!(
            line,
            json!({"op": "write", "path": "x/y.png", "bytes": 4, "blake3": "h"})
        );
        assert_eq!(
            serde_json::from_value::<Action>(line).unwrap(),
            Action::Write(file("x/y.png", 4, "h"))
        );
    }
}
