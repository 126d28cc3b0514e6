//! Port: the append-only, hash-chained audit log.
//!
//! Every entry is chained to the one before it: `hash = blake3(prev_hash ‖
//! canonical JSON of the entry)`, where the first entry's `prev_hash` is
//! [`GENESIS_HASH`]. Changing, removing or reordering any stored entry breaks
//! the chain at that entry, which [`AuditLog::verify_chain`] reports. The
//! canonical form is defined here, once, so every backend (SQLite,
//! PostgreSQL) computes identical hashes and a log can be checked by any of
//! them.
//!
//! Contract: `append` is durable when it returns, appends are serialized (the
//! chain is linear: `seq` is 1, 2, 3, ... without gaps), and nothing ever
//! updates or deletes a stored entry.
//!
//! **Per-tenant chains.** Each entry of a tenant is also a link of that
//! tenant's own chain, hashed the same way ([`chain_hash`] over its
//! position in the tenant's chain and the previous hash of that chain). A
//! tenant is only ever shown its own chain ([`AuditLog::list`] with a
//! tenant, [`AuditLog::verify_tenant`]): positions 1, 2, 3, ... and links
//! to its own entries, so neither the platform's sequence numbers, nor
//! their gaps, nor other tenants' hashes reach it. A tenant's report
//! depends on the whole log only through one bit: when the platform chain
//! is broken (by anyone's entry), no tenant's entries are vouched for past
//! the break, since a removal at the end cannot be attributed to a tenant.
//!
//! **Anchors.** Whoever can lift the database's append-only guards (drop
//! the triggers) can delete the last entries or rewrite the whole chain and
//! rehash it consistently: the chain alone proves nothing about its own
//! end. An [`AuditAnchor`] is a checkpoint of a chain head signed with the
//! server's ed25519 key and kept outside the audit tables (the storage
//! adapter says where); [`ChainVerifier::anchored`] then requires the chain
//! to still hold the anchored entry with the anchored hash, which fails on
//! a truncation below the anchor and on any rewrite of an entry up to it.

use super::PortError;
use crate::bundle::sign::{verify_signature, BundleSigner, SignatureError, SignatureFile};
use async_trait::async_trait;
use chrono::{SecondsFormat, Timelike};
use ferry_engine::{TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Most records one `list` call returns.
pub const AUDIT_LIST_LIMIT_MAX: usize = 1000;

/// What happened, as the caller describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub at: Timestamp,
    /// Who: a user id (`sub`), or `ferry` for the engine itself.
    pub actor: String,
    /// Whose data; `None` for platform-wide actions.
    pub tenant: Option<TenantId>,
    /// Stable upper-case verb, e.g. `EXPORT_COMPLETED`.
    pub action: String,
    /// Kind of thing acted on, e.g. `export`.
    pub entity: String,
    pub entity_id: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Sizes, checksums, step names, ... (a JSON object).
    pub details: Value,
}

impl AuditEntry {
    /// An entry with no IP/user agent and empty details.
    pub fn new(
        at: Timestamp,
        actor: impl Into<String>,
        tenant: Option<TenantId>,
        action: impl Into<String>,
        entity: impl Into<String>,
        entity_id: impl Into<String>,
    ) -> Self {
        AuditEntry {
            at,
            actor: actor.into(),
            tenant,
            action: action.into(),
            entity: entity.into(),
            entity_id: entity_id.into(),
            ip: None,
            user_agent: None,
            details: Value::Object(Default::default()),
        }
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// Stored timestamps keep microseconds; truncate so what is hashed equals
    /// what is read back.
    pub fn normalized(mut self) -> Self {
        let micros = self.at.nanosecond() / 1_000 * 1_000;
        self.at = self.at.with_nanosecond(micros).unwrap_or(self.at);
        self
    }
}

/// An entry as stored, with its place in the chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub seq: u64,
    #[serde(flatten)]
    pub entry: AuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

/// The timestamp form used in the canonical JSON and in storage.
pub fn format_at(at: &Timestamp) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The canonical JSON of an entry at position `seq`: a fixed field order,
/// object keys of `details` sorted recursively, no insignificant whitespace.
pub fn canonical_json(seq: u64, entry: &AuditEntry) -> String {
    let obj = serde_json::json!({
        "seq": seq,
        "at": format_at(&entry.at),
        "actor": entry.actor,
        "tenant": entry.tenant.as_ref().map(|t| t.as_str()),
        "action": entry.action,
        "entity": entry.entity,
        "entityId": entry.entity_id,
        "ip": entry.ip,
        "userAgent": entry.user_agent,
        "details": entry.details,
    });
    let mut out = String::new();
    write_canonical(&obj, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// `blake3(prev_hash ‖ canonical_json(seq, entry))`, hex.
pub fn chain_hash(prev_hash: &str, seq: u64, entry: &AuditEntry) -> String {
    let mut h = blake3::Hasher::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical_json(seq, entry).as_bytes());
    h.finalize().to_hex().to_string()
}

/// Checks records in `seq` order, one at a time, so a backend can verify a
/// log of any length while holding one page in memory.
#[derive(Clone, Debug)]
pub struct ChainVerifier {
    expected_seq: u64,
    prev_hash: String,
    entries: u64,
    first_broken_seq: Option<u64>,
    anchor: Option<ChainHead>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
            entries: 0,
            first_broken_seq: None,
            anchor: None,
        }
    }
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// A verifier that also requires the chain to hold `anchor`: an entry
    /// at `anchor.seq` whose hash is `anchor.hash`. A chain that ends
    /// before it is broken at its first missing entry; one whose entry
    /// there has another hash (rewritten and rehashed anywhere up to it) is
    /// broken at the anchored entry.
    pub fn anchored(anchor: Option<ChainHead>) -> Self {
        ChainVerifier {
            anchor: anchor.filter(|a| a.seq > 0),
            ..Self::default()
        }
    }

    /// Feed the next record in ascending `seq` order.
    pub fn push(&mut self, r: &AuditRecord) {
        self.entries += 1;
        if self.first_broken_seq.is_some() {
            return;
        }
        let ok = r.seq == self.expected_seq
            && r.prev_hash == self.prev_hash
            && r.hash == chain_hash(&r.prev_hash, r.seq, &r.entry);
        if !ok {
            self.first_broken_seq = Some(r.seq.min(self.expected_seq));
        } else if let Some(anchor) = &self.anchor {
            if anchor.seq == r.seq && anchor.hash != r.hash {
                self.first_broken_seq = Some(r.seq);
            }
        }
        self.expected_seq = r.seq + 1;
        self.prev_hash = r.hash.clone();
    }

    /// Feed a stored row that could not even be decoded (e.g. a timestamp
    /// or JSON edited by hand): the chain is broken there.
    pub fn push_unreadable(&mut self, seq: u64) {
        self.entries += 1;
        if self.first_broken_seq.is_none() {
            self.first_broken_seq = Some(seq.min(self.expected_seq));
        }
        self.expected_seq = seq + 1;
    }

    /// The head of the records pushed so far (an intact prefix or not).
    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.expected_seq - 1,
            hash: self.prev_hash.clone(),
        }
    }

    pub fn report(&self) -> ChainReport {
        let mut first_broken_seq = self.first_broken_seq;
        if let Some(anchor) = &self.anchor {
            // Entries removed from the end, down to below the anchor.
            if first_broken_seq.is_none() && self.expected_seq <= anchor.seq {
                first_broken_seq = Some(self.expected_seq);
            }
        }
        ChainReport {
            entries: self.entries,
            ok: first_broken_seq.is_none(),
            first_broken_seq,
            anchored_seq: self.anchor.as_ref().map(|a| a.seq),
            anchor_problem: None,
        }
    }
}

/// Checks one tenant's own chain (records in the tenant's view: `seq`,
/// `prev_hash` and `hash` of the tenant's chain) given the report on the
/// whole log, and reports in the tenant's terms only.
#[derive(Clone, Debug)]
pub struct TenantChainVerifier {
    chain: ChainVerifier,
    /// Where the whole log is broken (platform `seq`); `Some(1)` when
    /// nothing vouches for it (its anchor is missing or forged).
    global_break: Option<u64>,
    /// The tenant's first entry at or after `global_break`.
    first_after_break: Option<u64>,
}

impl TenantChainVerifier {
    pub fn new(global: &ChainReport) -> Self {
        TenantChainVerifier {
            chain: ChainVerifier::new(),
            global_break: (!global.ok).then(|| global.first_broken_seq.unwrap_or(1)),
            first_after_break: None,
        }
    }

    /// Feed the tenant's next record (tenant view) and its platform `seq`.
    pub fn push(&mut self, platform_seq: u64, r: &AuditRecord) {
        if self
            .global_break
            .is_some_and(|g| platform_seq >= g && self.first_after_break.is_none())
        {
            self.first_after_break = Some(r.seq);
        }
        self.chain.push(r);
    }

    /// Feed a stored row that could not be decoded, at tenant position `seq`.
    pub fn push_unreadable(&mut self, platform_seq: u64, seq: u64) {
        if self
            .global_break
            .is_some_and(|g| platform_seq >= g && self.first_after_break.is_none())
        {
            self.first_after_break = Some(seq);
        }
        self.chain.push_unreadable(seq);
    }

    /// The tenant's report: its own entries, and the first of them that
    /// neither its chain nor the log vouches for (one past its last entry
    /// when the log is broken after all of them: entries removed from the
    /// end cannot be told apart by tenant).
    pub fn report(&self) -> ChainReport {
        let own = self.chain.report();
        let mut first_broken_seq = own.first_broken_seq;
        if self.global_break.is_some() {
            let at = self.first_after_break.unwrap_or(self.chain.head().seq + 1);
            first_broken_seq = Some(first_broken_seq.map_or(at, |s| s.min(at)));
        }
        ChainReport {
            entries: own.entries,
            ok: first_broken_seq.is_none(),
            first_broken_seq,
            anchored_seq: None,
            anchor_problem: None,
        }
    }
}

/// Result of checking a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChainReport {
    pub entries: u64,
    pub ok: bool,
    /// The first entry whose position, link or hash is wrong, that is
    /// missing below the anchor, or whose hash is not the anchored one.
    pub first_broken_seq: Option<u64>,
    /// The anchored head the chain was checked against (platform reports
    /// only; a tenant's report never carries platform positions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchored_seq: Option<u64>,
    /// Why the anchor could not be used (`anchor_missing`,
    /// `anchor_invalid`): then nothing vouches for the chain's end and the
    /// report is not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor_problem: Option<String>,
}

impl ChainReport {
    /// A report that fails for want of a usable anchor.
    pub fn with_anchor_problem(mut self, problem: impl Into<String>) -> Self {
        self.ok = false;
        self.anchor_problem = Some(problem.into());
        self
    }
}

/// The end of a chain: its last entry's position and hash (`0` and
/// [`GENESIS_HASH`] for an empty chain).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainHead {
    pub seq: u64,
    pub hash: String,
}

impl ChainHead {
    pub fn genesis() -> Self {
        ChainHead {
            seq: 0,
            hash: GENESIS_HASH.to_owned(),
        }
    }
}

/// A checkpoint of a chain head, signed with the server's ed25519 key (the
/// bundle signing key). `tenant` `None` anchors the platform's whole chain;
/// `Some` anchors that tenant's own chain (what a bundle's manifest
/// carries, so it reveals nothing of other tenants).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditAnchor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantId>,
    pub seq: u64,
    pub hash: String,
    /// When the checkpoint was taken.
    pub at: Timestamp,
    /// ed25519 over [`AuditAnchor::signed_bytes`].
    pub signature: SignatureFile,
}

impl AuditAnchor {
    /// The exact bytes signed: a fixed text naming what is anchored, so a
    /// tenant's anchor cannot stand for the platform's or another tenant's.
    pub fn signed_bytes(tenant: Option<&TenantId>, head: &ChainHead, at: &Timestamp) -> Vec<u8> {
        format!(
            "ferry audit anchor v1\nchain={}\nseq={}\nhash={}\nat={}\n",
            tenant.map_or("platform", |t| t.as_str()),
            head.seq,
            head.hash,
            format_at(at)
        )
        .into_bytes()
    }

    /// Sign `head` as of `at` (truncated to microseconds, as stored).
    pub fn sign(
        signer: &BundleSigner,
        tenant: Option<&TenantId>,
        head: &ChainHead,
        at: Timestamp,
    ) -> AuditAnchor {
        let micros = at.nanosecond() / 1_000 * 1_000;
        let at = at.with_nanosecond(micros).unwrap_or(at);
        AuditAnchor {
            tenant: tenant.cloned(),
            seq: head.seq,
            hash: head.hash.clone(),
            at,
            signature: signer.sign(&Self::signed_bytes(tenant, head, &at)),
        }
    }

    /// Check the signature with the server's public key.
    pub fn check(&self, key: &ed25519_dalek::VerifyingKey) -> Result<(), SignatureError> {
        let bytes = Self::signed_bytes(self.tenant.as_ref(), &self.head(), &self.at);
        verify_signature(key, &bytes, &self.signature.to_bytes()).map(|_| ())
    }

    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

/// Filters and keyset paging for `list`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditQuery {
    /// Only this tenant's entries, in the tenant's own chain: `seq`,
    /// `prev_hash` and `hash` are their positions and links in that chain,
    /// and `after` is such a position. `None`: the platform's whole chain.
    pub tenant: Option<TenantId>,
    pub action: Option<String>,
    pub entity_id: Option<String>,
    /// Exclusive cursor: `seq > after` when ascending, `seq < after` when descending.
    pub after: Option<u64>,
    pub order: Order,
    /// Capped at [`AUDIT_LIST_LIMIT_MAX`]; 0 means the maximum.
    pub limit: usize,
}

impl AuditQuery {
    pub fn effective_limit(&self) -> usize {
        if self.limit == 0 {
            AUDIT_LIST_LIMIT_MAX
        } else {
            self.limit.min(AUDIT_LIST_LIMIT_MAX)
        }
    }
}

#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Append one entry (its `at` truncated to microseconds), durably, at the
    /// end of the chain; returns the stored record.
    async fn append(&self, entry: AuditEntry) -> Result<AuditRecord, PortError>;

    /// Records matching `query`.
    async fn list(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, PortError>;

    /// Recompute the whole chain, against the latest anchor where the
    /// log keeps anchors.
    async fn verify_chain(&self) -> Result<ChainReport, PortError> {
        self.verify_against(None).await
    }

    /// Recompute the whole chain; with `anchor`, also require it to hold
    /// that head ([`ChainVerifier::anchored`]).
    async fn verify_against(&self, anchor: Option<&ChainHead>) -> Result<ChainReport, PortError>;

    /// Check `tenant`'s own chain, reported in its own terms only.
    async fn verify_tenant(&self, tenant: &TenantId) -> Result<ChainReport, PortError> {
        let global = self.verify_chain().await?;
        self.verify_tenant_against(tenant, &global).await
    }

    /// Check `tenant`'s own chain given the report on the whole log
    /// ([`TenantChainVerifier`]).
    async fn verify_tenant_against(
        &self,
        tenant: &TenantId,
        global: &ChainReport,
    ) -> Result<ChainReport, PortError>;

    /// The head of the platform's chain (`None`) or of a tenant's.
    async fn head(&self, tenant: Option<&TenantId>) -> Result<ChainHead, PortError>;

    /// A signed checkpoint of that head, where the log keeps anchors;
    /// `None` where it does not.
    async fn anchor(&self, tenant: Option<&TenantId>) -> Result<Option<AuditAnchor>, PortError> {
        let _ = tenant;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> AuditEntry {
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        AuditEntry::new(at, "u1", TenantId::parse("acme").ok(), "X", "export", "e1")
            .details(serde_json::json!({"b": 1, "a": {"z": [1, {"y": 2, "x": 3}]}}))
            .normalized()
    }

    #[test]
    fn canonical_json_is_sorted_and_compact() {
        let s = canonical_json(7, &entry());
        assert!(
            s.starts_with(r#"{"action":"X","actor":"u1","at":"2023-11-14T22:13:20.123456Z""#),
            "{s}"
        );
        assert!(
            s.contains(r#""details":{"a":{"z":[1,{"x":3,"y":2}]},"b":1}"#),
            "{s}"
        );
    }

    #[test]
    fn verifier_finds_the_first_broken_entry() {
        let e = entry();
        let h1 = chain_hash(GENESIS_HASH, 1, &e);
        let r1 = AuditRecord {
            seq: 1,
            entry: e.clone(),
            prev_hash: GENESIS_HASH.into(),
            hash: h1.clone(),
        };
        let h2 = chain_hash(&h1, 2, &e);
        let r2 = AuditRecord {
            seq: 2,
            entry: e.clone(),
            prev_hash: h1,
            hash: h2,
        };
        let mut v = ChainVerifier::new();
        v.push(&r1);
        v.push(&r2);
        assert_eq!(
            v.report(),
            ChainReport {
                entries: 2,
                ok: true,
                first_broken_seq: None,
                anchored_seq: None,
                anchor_problem: None,
            }
        );

        let mut bad = r2.clone();
        bad.entry.actor = "mallory".into();
        let mut v = ChainVerifier::new();
        v.push(&r1);
        v.push(&bad);
        assert_eq!(v.report().first_broken_seq, Some(2));
    }

    fn chain(n: u64, actor: &str) -> Vec<AuditRecord> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let mut e = entry();
                e.actor = actor.into();
                let hash = chain_hash(&prev, seq, &e);
                AuditRecord {
                    seq,
                    entry: e,
                    prev_hash: std::mem::replace(&mut prev, hash.clone()),
                    hash,
                }
            })
            .collect()
    }

    fn verify(records: &[AuditRecord], anchor: Option<ChainHead>) -> ChainReport {
        let mut v = ChainVerifier::anchored(anchor);
        records.iter().for_each(|r| v.push(r));
        v.report()
    }

    #[test]
    fn an_anchor_catches_truncation_and_a_rewritten_chain() {
        let records = chain(5, "u1");
        let anchor = ChainHead {
            seq: 4,
            hash: records[3].hash.clone(),
        };
        assert!(verify(&records, Some(anchor.clone())).ok);
        // Two entries removed from the end: intact as far as it goes.
        assert!(verify(&records[..3], None).ok);
        let report = verify(&records[..3], Some(anchor.clone()));
        assert_eq!((report.ok, report.first_broken_seq), (false, Some(4)));
        assert_eq!(report.anchored_seq, Some(4));
        // The whole chain rewritten and rehashed: consistent, but not the
        // anchored one.
        let forged = chain(5, "mallory");
        assert!(verify(&forged, None).ok);
        let report = verify(&forged, Some(anchor));
        assert_eq!((report.ok, report.first_broken_seq), (false, Some(4)));
    }

    #[test]
    fn an_anchor_is_signed_for_its_chain_only() {
        let signer = BundleSigner::from_seed([3; 32]);
        let head = ChainHead {
            seq: 9,
            hash: "ab".repeat(32),
        };
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 5_000).unwrap();
        let anchor = AuditAnchor::sign(&signer, None, &head, at);
        anchor.check(&signer.verifying_key()).unwrap();
        let mut moved = anchor.clone();
        moved.seq = 8;
        assert!(moved.check(&signer.verifying_key()).is_err());
        let mut retargeted = anchor.clone();
        retargeted.tenant = TenantId::parse("acme").ok();
        assert!(retargeted.check(&signer.verifying_key()).is_err());
        let other = BundleSigner::from_seed([4; 32]);
        assert!(anchor.check(&other.verifying_key()).is_err());
        let json = serde_json::to_string(&anchor).unwrap();
        assert_eq!(serde_json::from_str::<AuditAnchor>(&json).unwrap(), anchor);
    }

    #[test]
    fn a_tenant_report_speaks_of_its_own_entries_only() {
        let own = chain(3, "u1");
        let global_ok = ChainReport {
            entries: 40,
            ok: true,
            first_broken_seq: None,
            anchored_seq: Some(40),
            anchor_problem: None,
        };
        let mut v = TenantChainVerifier::new(&global_ok);
        for (r, platform_seq) in own.iter().zip([7, 19, 33]) {
            v.push(platform_seq, r);
        }
        let report = v.report();
        assert_eq!(
            (report.entries, report.ok, report.anchored_seq),
            (3, true, None)
        );

        // The log broken at platform entry 20: the tenant's entries from
        // its third on are no longer vouched for.
        let broken = ChainReport {
            ok: false,
            first_broken_seq: Some(20),
            ..global_ok.clone()
        };
        let mut v = TenantChainVerifier::new(&broken);
        for (r, platform_seq) in own.iter().zip([7, 19, 33]) {
            v.push(platform_seq, r);
        }
        assert_eq!(v.report().first_broken_seq, Some(3));
        // Broken after all of them (entries removed from the end).
        let mut v = TenantChainVerifier::new(&ChainReport {
            first_broken_seq: Some(41),
            ..broken
        });
        for (r, platform_seq) in own.iter().zip([7, 19, 33]) {
            v.push(platform_seq, r);
        }
        assert_eq!(v.report().first_broken_seq, Some(4));
    }
}
