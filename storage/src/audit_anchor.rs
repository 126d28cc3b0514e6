//! Anchors of the audit chain: signed checkpoints of its head, kept outside
//! the audit tables, that verification checks the chain against.
//!
//! [`AnchoredAudit`] wraps either audit backend. After every append it
//! signs the new head with the server's ed25519 key (the one that signs
//! bundle manifests) and replaces `<data>/audit-anchor.json` atomically
//! (write a temporary file, fsync, rename, fsync the folder). An anchor
//! only moves forward along the chain it anchored
//! ([`AnchoredAudit::checkpoint`]): appends after a cut or a rewrite, even
//! by a restarted server, never anchor the forged chain. The period of the
//! checkpoints is one entry: an audit append is rare next to the work it
//! records (one fsynced file write more is cheap beside it), and any
//! longer period would leave the entries after the last checkpoint free to
//! be removed unnoticed. Appends that complete while an anchor is being
//! written share the next one (it anchors the latest of their heads), so
//! the anchor costs one write per burst, not one per entry. A crash between an append and its checkpoint
//! leaves the anchor one entry behind, which still verifies. Verification
//! ([`AuditLog::verify_chain`]) reads the latest anchor from the file,
//! checks its signature, and requires the chain to hold the anchored entry
//! with the anchored hash
//! ([`ferry_workflows::ports::audit::ChainVerifier::anchored`]). Each
//! bundle's manifest carries a signed anchor of its tenant's own chain
//! ([`AuditLog::anchor`]), a copy kept outside the server altogether.
//!
//! What this defends against: whoever can lift the append-only guards of
//! the audit tables — drop or disable the triggers as the database's owner
//! or a superuser, or write the SQLite file — and then deletes the last
//! entries (also rewinding PostgreSQL's `ferry_audit_head`) or rewrites the
//! whole chain and rehashes it consistently. Both left a chain that
//! verified; against the anchor the first is short of the anchored entry
//! and the second has another hash there. Such an attacker cannot write a
//! new anchor: that needs the signing key, which never enters the database.
//!
//! What it does not defend against: whoever can also write the data folder
//! (and so read `keys/signing.key`) can sign anything. Without the key, one
//! can still delete the anchor file — verification then fails with
//! `anchor_missing` while the chain holds entries, and the server only
//! re-anchors a chain without an anchor at start-up (the first use after an
//! upgrade; it logs a warning) — or put back an older anchor, which rewinds
//! what is vouched for to that older head; the tenants' bundles keep their
//! own copies of their heads.

use async_trait::async_trait;
use ferry_engine::{Clock, TenantId};
use ferry_workflows::bundle::sign::BundleSigner;
use ferry_workflows::ports::audit::{
    AuditAnchor, AuditEntry, AuditLog, AuditQuery, AuditRecord, ChainHead, ChainReport,
};
use ferry_workflows::ports::PortError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The anchor's file name in the data folder.
pub const ANCHOR_FILE: &str = "audit-anchor.json";

/// What [`AnchoredAudit`] found in the anchor file.
#[derive(Debug)]
enum Latest {
    Missing,
    Invalid(String),
    Anchor(AuditAnchor),
}

/// An audit log whose head is checkpointed into a signed anchor file.
pub struct AnchoredAudit {
    inner: Arc<dyn AuditLog>,
    path: PathBuf,
    signer: BundleSigner,
    clock: Arc<dyn Clock>,
    /// The latest anchored head (`None` inside: none yet), read from the
    /// file at the first checkpoint; held while writing, so anchors are
    /// written one at a time.
    anchored: tokio::sync::Mutex<Option<Option<ChainHead>>>,
    /// The latest head this process appended: a checkpoint anchors it, so
    /// appends that finish together share one anchor write.
    appended: parking_lot::Mutex<Option<ChainHead>>,
}

impl std::fmt::Debug for AnchoredAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AnchoredAudit({})", self.path.display())
    }
}

fn io_err(context: &str, e: std::io::Error) -> PortError {
    PortError::retryable("audit_anchor_io", format!("{context}: {e}"))
}

impl AnchoredAudit {
    /// Wrap `inner`, anchoring into `path` (e.g. `<data>/audit-anchor.json`)
    /// with `signer`. Writes nothing yet; see [`AnchoredAudit::anchor_if_missing`].
    pub fn new(
        inner: Arc<dyn AuditLog>,
        path: impl Into<PathBuf>,
        signer: BundleSigner,
        clock: Arc<dyn Clock>,
    ) -> AnchoredAudit {
        AnchoredAudit {
            inner,
            path: path.into(),
            signer,
            clock,
            anchored: tokio::sync::Mutex::new(None),
            appended: parking_lot::Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// At start-up: anchor the current head if there is no anchor file yet
    /// (a new data folder, or the first start after an upgrade). Returns
    /// whether it wrote one.
    pub async fn anchor_if_missing(&self) -> Result<bool, PortError> {
        if !matches!(self.read_latest().await?, Latest::Missing) {
            return Ok(false);
        }
        let head = self.inner.head(None).await?;
        if head.seq > 0 {
            tracing::warn!(
                seq = head.seq,
                path = %self.path.display(),
                "the audit log has no anchor: anchoring its current head"
            );
        }
        self.checkpoint(head).await?;
        Ok(true)
    }

    /// The latest anchor, as the file holds it.
    async fn read_latest(&self) -> Result<Latest, PortError> {
        let path = self.path.clone();
        let key = self.signer.verifying_key();
        tokio::task::spawn_blocking(move || match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Latest::Missing),
            Err(e) => Err(io_err("reading the audit anchor", e)),
            Ok(bytes) => Ok(match serde_json::from_slice::<AuditAnchor>(&bytes) {
                Err(e) => Latest::Invalid(format!("not an anchor: {e}")),
                Ok(a) if a.tenant.is_some() => {
                    Latest::Invalid("a tenant's anchor, not the platform's".into())
                }
                Ok(a) => match a.check(&key) {
                    Ok(()) => Latest::Anchor(a),
                    Err(e) => Latest::Invalid(e.to_string()),
                },
            }),
        })
        .await
        .map_err(|e| PortError::retryable("audit_anchor_io", e.to_string()))?
    }

    /// Sign `head` and make it the latest anchor. An anchor only moves
    /// forward along the chain it anchored: a head at or before it is left
    /// alone, and a later one is refused (`audit_anchor_diverged`) unless
    /// the chain still holds the anchored entry with the anchored hash, so
    /// appends after a cut or a rewrite never anchor the forged chain (nor
    /// replace a forged anchor file, `audit_anchor_invalid`).
    pub async fn checkpoint(&self, head: ChainHead) -> Result<(), PortError> {
        let mut anchored = self.anchored.lock().await;
        // Appends that finished while the previous anchor was written are
        // anchored together, by their latest head; the later callers then
        // find theirs anchored already.
        let head = match self.appended.lock().clone() {
            Some(latest) if latest.seq > head.seq => latest,
            _ => head,
        };
        let latest = match &*anchored {
            Some(latest) => latest.clone(),
            None => match self.read_latest().await? {
                Latest::Anchor(a) => Some(a.head()),
                Latest::Missing => None,
                Latest::Invalid(why) => {
                    return Err(PortError::permanent("audit_anchor_invalid", why))
                }
            },
        };
        *anchored = Some(latest.clone());
        if let Some(latest) = latest.filter(|l| l.seq > 0) {
            if latest.seq >= head.seq {
                return Ok(());
            }
            let there = self
                .inner
                .list(&AuditQuery {
                    after: Some(latest.seq - 1),
                    limit: 1,
                    ..AuditQuery::default()
                })
                .await?;
            if there.first().map(|r| (r.seq, r.hash.as_str()))
                != Some((latest.seq, latest.hash.as_str()))
            {
                return Err(PortError::permanent(
                    "audit_anchor_diverged",
                    format!(
                        "the audit chain no longer holds anchored entry {}: not anchoring past it",
                        latest.seq
                    ),
                ));
            }
        }
        let anchor = AuditAnchor::sign(&self.signer, None, &head, self.clock.now());
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &anchor))
            .await
            .map_err(|e| PortError::retryable("audit_anchor_io", e.to_string()))??;
        *anchored = Some(Some(head));
        Ok(())
    }
}

/// Replace `path` with the anchor: a temporary file written and synced,
/// renamed over it, and the folder synced so the rename is durable.
fn write_atomically(path: &Path, anchor: &AuditAnchor) -> Result<(), PortError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io_err("creating the anchor's folder", e))?;
    let mut bytes = serde_json::to_vec_pretty(anchor).expect("an anchor serializes");
    bytes.push(b'\n');
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp).map_err(|e| io_err("writing the anchor", e))?;
        f.write_all(&bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| io_err("writing the anchor", e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| io_err("replacing the anchor", e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("syncing the anchor's folder", e))
}

#[async_trait]
impl AuditLog for AnchoredAudit {
    async fn append(&self, entry: AuditEntry) -> Result<AuditRecord, PortError> {
        let record = self.inner.append(entry).await?;
        // The entry is stored whatever happens to its checkpoint; failing
        // here would have the caller append it again.
        let head = ChainHead {
            seq: record.seq,
            hash: record.hash.clone(),
        };
        {
            let mut appended = self.appended.lock();
            if appended.as_ref().is_none_or(|a| a.seq < head.seq) {
                *appended = Some(head.clone());
            }
        }
        if let Err(e) = self.checkpoint(head).await {
            tracing::error!(error = %e, seq = record.seq, "audit anchor not written");
        }
        Ok(record)
    }

    async fn list(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, PortError> {
        self.inner.list(query).await
    }

    /// The chain against the latest anchor.
    async fn verify_chain(&self) -> Result<ChainReport, PortError> {
        match self.read_latest().await? {
            Latest::Anchor(anchor) => self.inner.verify_against(Some(&anchor.head())).await,
            Latest::Missing => {
                let report = self.inner.verify_against(None).await?;
                Ok(if report.entries > 0 {
                    report.with_anchor_problem("anchor_missing")
                } else {
                    report
                })
            }
            Latest::Invalid(why) => {
                tracing::warn!(why, "the audit anchor is not valid");
                Ok(self
                    .inner
                    .verify_against(None)
                    .await?
                    .with_anchor_problem("anchor_invalid"))
            }
        }
    }

    async fn verify_against(&self, anchor: Option<&ChainHead>) -> Result<ChainReport, PortError> {
        self.inner.verify_against(anchor).await
    }

    async fn verify_tenant_against(
        &self,
        tenant: &TenantId,
        global: &ChainReport,
    ) -> Result<ChainReport, PortError> {
        self.inner.verify_tenant_against(tenant, global).await
    }

    async fn head(&self, tenant: Option<&TenantId>) -> Result<ChainHead, PortError> {
        self.inner.head(tenant).await
    }

    /// The current head of the platform's or a tenant's chain, signed now.
    async fn anchor(&self, tenant: Option<&TenantId>) -> Result<Option<AuditAnchor>, PortError> {
        let head = self.inner.head(tenant).await?;
        Ok(Some(AuditAnchor::sign(
            &self.signer,
            tenant,
            &head,
            self.clock.now(),
        )))
    }
}
