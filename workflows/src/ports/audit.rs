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

use super::PortError;
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
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
            entries: 0,
            first_broken_seq: None,
        }
    }
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self::default()
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

    pub fn report(&self) -> ChainReport {
        ChainReport {
            entries: self.entries,
            ok: self.first_broken_seq.is_none(),
            first_broken_seq: self.first_broken_seq,
        }
    }
}

/// Result of checking the whole chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChainReport {
    pub entries: u64,
    pub ok: bool,
    /// The first entry whose position, link or hash is wrong.
    pub first_broken_seq: Option<u64>,
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

    /// Recompute the whole chain.
    async fn verify_chain(&self) -> Result<ChainReport, PortError>;
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
                first_broken_seq: None
            }
        );

        let mut bad = r2.clone();
        bad.entry.actor = "mallory".into();
        let mut v = ChainVerifier::new();
        v.push(&r1);
        v.push(&bad);
        assert_eq!(v.report().first_broken_seq, Some(2));
    }
}
