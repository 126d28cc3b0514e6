//! The audit log in the embedded platform database (SQLite, through diesel).
//!
//! The schema comes from the platform migrations embedded from
//! `migrations/sqlite/` ([`PLATFORM_MIGRATIONS`]), run when the database is
//! opened. Appends are serialized twice over — a process-wide mutex around
//! the one connection, and an `IMMEDIATE` transaction that takes SQLite's
//! write lock before reading the chain's head — so the chain stays linear
//! even with another process writing. Each entry's hash is computed by the
//! port's [`chain_hash`], so any backend can verify any log. The table is
//! append-only in the database itself: triggers abort every `UPDATE` and
//! `DELETE`. Commits use WAL with `synchronous=FULL`, so an acknowledged
//! entry survives a power cut. Concurrent appends share a commit: each
//! queues its entry, and whoever holds the connection next writes the whole
//! queue in one transaction, chained in queue order (group commit), so a
//! burst of requests waits for one sync, not for one each.
//!
//! Each tenant entry is also a link of its tenant's own chain,
//! `audit_tenant_chain` (same `seq`), written in the append's transaction;
//! a tenant's listing and report are read from it. Entries older than that
//! table get their links when the database is opened. The triggers are no
//! defence against whoever can write the database file: the chain's end
//! is vouched for by signed anchors kept outside it (`audit_anchor`).

use crate::audit_queue::{self, AppendQueue, OnFailure};
use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use ferry_engine::TenantId;
use ferry_workflows::ports::audit::{
    chain_hash, format_at, AuditEntry, AuditLog, AuditQuery, AuditRecord, ChainHead, ChainReport,
    ChainVerifier, Order, TenantChainVerifier, GENESIS_HASH,
};
use ferry_workflows::ports::PortError;
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The platform database's migrations (all of them; the audit log is one).
pub const PLATFORM_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");

/// Rows read per page while verifying the chain.
const VERIFY_PAGE_ROWS: i64 = 1000;

diesel::table! {
    audit_log (seq) {
        seq -> BigInt,
        at -> Text,
        actor -> Text,
        tenant -> Nullable<Text>,
        action -> Text,
        entity -> Text,
        entity_id -> Text,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        details -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    audit_tenant_chain (seq) {
        seq -> BigInt,
        tenant -> Text,
        tenant_seq -> BigInt,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::joinable!(audit_tenant_chain -> audit_log (seq));
diesel::allow_tables_to_appear_in_same_query!(audit_log, audit_tenant_chain);

/// A row of a tenant's own chain.
#[derive(Queryable, Insertable, Selectable, Clone, Debug)]
#[diesel(table_name = audit_tenant_chain)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite))]
struct Link {
    seq: i64,
    tenant: String,
    tenant_seq: i64,
    prev_hash: String,
    hash: String,
}

#[derive(Queryable, Insertable, Selectable, Clone, Debug)]
#[diesel(table_name = audit_log)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite))]
struct Row {
    seq: i64,
    at: String,
    actor: String,
    tenant: Option<String>,
    action: String,
    entity: String,
    entity_id: String,
    ip: Option<String>,
    user_agent: Option<String>,
    details: String,
    prev_hash: String,
    hash: String,
}

impl Row {
    /// Decode a stored row; `None` if a field no longer parses (tampering).
    fn decode(self) -> Option<AuditRecord> {
        let at = chrono::DateTime::parse_from_rfc3339(&self.at)
            .ok()?
            .with_timezone(&chrono::Utc);
        let tenant = match self.tenant {
            Some(t) => Some(TenantId::parse(&t).ok()?),
            None => None,
        };
        Some(AuditRecord {
            seq: u64::try_from(self.seq).ok()?,
            entry: AuditEntry {
                at,
                actor: self.actor,
                tenant,
                action: self.action,
                entity: self.entity,
                entity_id: self.entity_id,
                ip: self.ip,
                user_agent: self.user_agent,
                details: serde_json::from_str(&self.details).ok()?,
            },
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }

    /// The entry as its tenant's chain shows it.
    fn decode_as(self, link: Link) -> Option<AuditRecord> {
        let record = self.decode()?;
        Some(AuditRecord {
            seq: u64::try_from(link.tenant_seq).ok()?,
            entry: record.entry,
            prev_hash: link.prev_hash,
            hash: link.hash,
        })
    }
}

fn db_err(e: diesel::result::Error) -> PortError {
    PortError::retryable("audit_io", e.to_string())
}

fn join_err(e: tokio::task::JoinError) -> PortError {
    PortError::retryable("audit_io", e.to_string())
}

/// Open (creating if needed) a platform SQLite database, set it up for
/// durable concurrent use, and run the platform migrations.
pub fn open_platform_db(path: &Path) -> Result<SqliteConnection, PortError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| PortError::permanent("audit_open_failed", e.to_string()))?;
    }
    let url = path
        .to_str()
        .ok_or_else(|| PortError::permanent("audit_open_failed", "database path is not UTF-8"))?;
    let mut conn = SqliteConnection::establish(url)
        .map_err(|e| PortError::permanent("audit_open_failed", e.to_string()))?;
    for pragma in [
        "PRAGMA busy_timeout = 10000",
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = FULL",
        "PRAGMA foreign_keys = ON",
    ] {
        diesel::sql_query(pragma)
            .execute(&mut conn)
            .map_err(|e| PortError::permanent("audit_open_failed", e.to_string()))?;
    }
    conn.run_pending_migrations(PLATFORM_MIGRATIONS)
        .map_err(|e| PortError::permanent("audit_migration_failed", e.to_string()))?;
    link_older_entries(&mut conn)?;
    Ok(conn)
}

/// Give the tenant entries appended before `audit_tenant_chain` existed
/// (or by a binary that did not write it) their links, in `seq` order.
fn link_older_entries(conn: &mut SqliteConnection) -> Result<(), PortError> {
    conn.immediate_transaction(|c| {
        let linked: Option<i64> = audit_tenant_chain::table
            .select(diesel::dsl::max(audit_tenant_chain::seq))
            .first(c)?;
        let mut after = linked.unwrap_or(0);
        loop {
            let rows: Vec<Row> = audit_log::table
                .select(Row::as_select())
                .filter(audit_log::seq.gt(after))
                .filter(audit_log::tenant.is_not_null())
                .order(audit_log::seq.asc())
                .limit(VERIFY_PAGE_ROWS)
                .load(c)?;
            let Some(tail) = rows.last() else { break };
            after = tail.seq;
            for row in rows {
                let (seq, tenant) = (row.seq, row.tenant.clone().unwrap_or_default());
                // An entry that no longer decodes gets no link; the
                // platform chain reports it.
                if let Some(record) = row.decode() {
                    link_entry(c, seq, &tenant, &record.entry)?;
                }
            }
        }
        Ok(())
    })
    .map_err(|e: diesel::result::Error| PortError::permanent("audit_open_failed", e.to_string()))
}

/// Append the entry at platform `seq` to its tenant's chain (inside the
/// caller's write transaction).
fn link_entry(
    c: &mut SqliteConnection,
    seq: i64,
    tenant: &str,
    entry: &AuditEntry,
) -> Result<(), diesel::result::Error> {
    let head: Option<(i64, String)> = audit_tenant_chain::table
        .select((audit_tenant_chain::tenant_seq, audit_tenant_chain::hash))
        .filter(audit_tenant_chain::tenant.eq(tenant))
        .order(audit_tenant_chain::tenant_seq.desc())
        .first(c)
        .optional()?;
    let (tenant_seq, prev_hash) = head.unwrap_or((0, GENESIS_HASH.to_owned()));
    let tenant_seq = tenant_seq + 1;
    let hash = chain_hash(&prev_hash, tenant_seq as u64, entry);
    diesel::insert_into(audit_tenant_chain::table)
        .values(&Link {
            seq,
            tenant: tenant.to_owned(),
            tenant_seq,
            prev_hash,
            hash,
        })
        .execute(c)?;
    Ok(())
}

/// The SQLite `AuditLog`.
#[derive(Clone)]
pub struct SqliteAudit {
    conn: Arc<Mutex<SqliteConnection>>,
    /// Appends not yet written: whoever holds the connection next writes
    /// them all in one transaction, so concurrent appends share one sync
    /// instead of each waiting in line for its own.
    queue: Arc<AppendQueue>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteAudit({})", self.path.display())
    }
}

impl SqliteAudit {
    /// Open the platform database at `path` (e.g. `<data>/platform.sqlite`).
    pub fn open(path: impl Into<PathBuf>) -> Result<SqliteAudit, PortError> {
        let path = path.into();
        let conn = open_platform_db(&path)?;
        Ok(SqliteAudit {
            conn: Arc::new(Mutex::new(conn)),
            queue: Arc::new(AppendQueue::default()),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut SqliteConnection) -> Result<T, PortError> + Send + 'static,
    ) -> Result<T, PortError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&mut conn.lock()))
            .await
            .map_err(join_err)?
    }
}

/// Append `entries` in order, in ONE transaction: each is chained to the
/// one before it, so the batch is exactly the entries appended one by one,
/// with one commit (one sync) for all of them.
fn append_all(
    conn: &mut SqliteConnection,
    entries: &[AuditEntry],
) -> Result<Vec<AuditRecord>, PortError> {
    let details: Vec<String> = entries
        .iter()
        .map(|e| serde_json::to_string(&e.details))
        .collect::<Result<_, _>>()
        .map_err(|e| PortError::permanent("invalid_audit_entry", e.to_string()))?;
    conn.immediate_transaction(|c| {
        let head: Option<(i64, String)> = audit_log::table
            .select((audit_log::seq, audit_log::hash))
            .order(audit_log::seq.desc())
            .first(c)
            .optional()?;
        let (mut seq, mut prev_hash) = match head {
            Some((s, h)) => (s as u64, h),
            None => (0, GENESIS_HASH.to_owned()),
        };
        let mut records = Vec::with_capacity(entries.len());
        for (entry, details) in entries.iter().zip(details) {
            seq += 1;
            let hash = chain_hash(&prev_hash, seq, entry);
            let row = Row {
                seq: seq as i64,
                at: format_at(&entry.at),
                actor: entry.actor.clone(),
                tenant: entry.tenant.as_ref().map(|t| t.as_str().to_owned()),
                action: entry.action.clone(),
                entity: entry.entity.clone(),
                entity_id: entry.entity_id.clone(),
                ip: entry.ip.clone(),
                user_agent: entry.user_agent.clone(),
                details,
                prev_hash: prev_hash.clone(),
                hash: hash.clone(),
            };
            diesel::insert_into(audit_log::table)
                .values(&row)
                .execute(c)?;
            if let Some(tenant) = &entry.tenant {
                link_entry(c, seq as i64, tenant.as_str(), entry)?;
            }
            records.push(AuditRecord {
                seq,
                entry: entry.clone(),
                prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
                hash,
            });
        }
        Ok(records)
    })
    .map_err(db_err)
}

fn corrupt(seq: i64) -> PortError {
    PortError::permanent(
        "audit_corrupt",
        format!("audit entry {seq} cannot be decoded"),
    )
}

fn list_blocking(
    conn: &mut SqliteConnection,
    q: &AuditQuery,
) -> Result<Vec<AuditRecord>, PortError> {
    if let Some(tenant) = &q.tenant {
        return list_tenant_blocking(conn, tenant, q);
    }
    let mut query = audit_log::table.select(Row::as_select()).into_boxed();
    if let Some(a) = &q.action {
        query = query.filter(audit_log::action.eq(a.clone()));
    }
    if let Some(id) = &q.entity_id {
        query = query.filter(audit_log::entity_id.eq(id.clone()));
    }
    let after = q.after.map(|a| a.min(i64::MAX as u64) as i64);
    query = match q.order {
        Order::Asc => {
            if let Some(a) = after {
                query = query.filter(audit_log::seq.gt(a));
            }
            query.order(audit_log::seq.asc())
        }
        Order::Desc => {
            if let Some(a) = after {
                query = query.filter(audit_log::seq.lt(a));
            }
            query.order(audit_log::seq.desc())
        }
    };
    let rows: Vec<Row> = query
        .limit(q.effective_limit() as i64)
        .load(conn)
        .map_err(db_err)?;
    rows.into_iter()
        .map(|r| {
            let seq = r.seq;
            r.decode().ok_or_else(|| corrupt(seq))
        })
        .collect()
}

/// A tenant's entries in its own chain's terms.
fn list_tenant_blocking(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    q: &AuditQuery,
) -> Result<Vec<AuditRecord>, PortError> {
    let mut query = audit_tenant_chain::table
        .inner_join(audit_log::table)
        .select((Link::as_select(), Row::as_select()))
        .filter(audit_tenant_chain::tenant.eq(tenant.as_str().to_owned()))
        .into_boxed();
    if let Some(a) = &q.action {
        query = query.filter(audit_log::action.eq(a.clone()));
    }
    if let Some(id) = &q.entity_id {
        query = query.filter(audit_log::entity_id.eq(id.clone()));
    }
    let after = q.after.map(|a| a.min(i64::MAX as u64) as i64);
    query = match q.order {
        Order::Asc => {
            if let Some(a) = after {
                query = query.filter(audit_tenant_chain::tenant_seq.gt(a));
            }
            query.order(audit_tenant_chain::tenant_seq.asc())
        }
        Order::Desc => {
            if let Some(a) = after {
                query = query.filter(audit_tenant_chain::tenant_seq.lt(a));
            }
            query.order(audit_tenant_chain::tenant_seq.desc())
        }
    };
    let rows: Vec<(Link, Row)> = query
        .limit(q.effective_limit() as i64)
        .load(conn)
        .map_err(db_err)?;
    rows.into_iter()
        .map(|(link, row)| {
            let seq = link.tenant_seq;
            row.decode_as(link).ok_or_else(|| corrupt(seq))
        })
        .collect()
}

fn verify_blocking(
    conn: &mut SqliteConnection,
    anchor: Option<ChainHead>,
) -> Result<ChainReport, PortError> {
    let mut verifier = ChainVerifier::anchored(anchor);
    let mut last = 0i64;
    loop {
        let rows: Vec<Row> = audit_log::table
            .select(Row::as_select())
            .filter(audit_log::seq.gt(last))
            .order(audit_log::seq.asc())
            .limit(VERIFY_PAGE_ROWS)
            .load(conn)
            .map_err(db_err)?;
        let Some(tail) = rows.last() else { break };
        last = tail.seq;
        for row in rows {
            let seq = row.seq.max(0) as u64;
            match row.decode() {
                Some(record) => verifier.push(&record),
                None => verifier.push_unreadable(seq),
            }
        }
    }
    Ok(verifier.report())
}

fn verify_tenant_blocking(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    global: &ChainReport,
) -> Result<ChainReport, PortError> {
    let mut verifier = TenantChainVerifier::new(global);
    let mut last = 0i64;
    loop {
        let rows: Vec<(Link, Row)> = audit_tenant_chain::table
            .inner_join(audit_log::table)
            .select((Link::as_select(), Row::as_select()))
            .filter(audit_tenant_chain::tenant.eq(tenant.as_str().to_owned()))
            .filter(audit_tenant_chain::tenant_seq.gt(last))
            .order(audit_tenant_chain::tenant_seq.asc())
            .limit(VERIFY_PAGE_ROWS)
            .load(conn)
            .map_err(db_err)?;
        let Some((tail, _)) = rows.last() else { break };
        last = tail.tenant_seq;
        for (link, row) in rows {
            let (platform_seq, seq) = (row.seq.max(0) as u64, link.tenant_seq.max(0) as u64);
            // The link must be of this entry's tenant.
            let same_tenant = row.tenant.as_deref() == Some(link.tenant.as_str());
            match row.decode_as(link).filter(|_| same_tenant) {
                Some(record) => verifier.push(platform_seq, &record),
                None => verifier.push_unreadable(platform_seq, seq),
            }
        }
    }
    Ok(verifier.report())
}

fn head_blocking(
    conn: &mut SqliteConnection,
    tenant: Option<&TenantId>,
) -> Result<ChainHead, PortError> {
    let head: Option<(i64, String)> = match tenant {
        None => audit_log::table
            .select((audit_log::seq, audit_log::hash))
            .order(audit_log::seq.desc())
            .first(conn)
            .optional(),
        Some(t) => audit_tenant_chain::table
            .select((audit_tenant_chain::tenant_seq, audit_tenant_chain::hash))
            .filter(audit_tenant_chain::tenant.eq(t.as_str().to_owned()))
            .order(audit_tenant_chain::tenant_seq.desc())
            .first(conn)
            .optional(),
    }
    .map_err(db_err)?;
    Ok(
        head.map_or_else(ChainHead::genesis, |(seq, hash)| ChainHead {
            seq: seq.max(0) as u64,
            hash,
        }),
    )
}

#[async_trait]
impl AuditLog for SqliteAudit {
    async fn append(&self, entry: AuditEntry) -> Result<AuditRecord, PortError> {
        let answer = self.queue.push(entry.normalized());
        let queue = self.queue.clone();
        self.blocking(move |c| {
            // A failed SQLite transaction wrote nothing.
            queue.write_queued(|entries| append_all(c, entries), OnFailure::EachAlone);
            Ok(())
        })
        .await?;
        audit_queue::answer(answer).await
    }

    async fn list(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, PortError> {
        let q = query.clone();
        self.blocking(move |c| list_blocking(c, &q)).await
    }

    async fn verify_against(&self, anchor: Option<&ChainHead>) -> Result<ChainReport, PortError> {
        let anchor = anchor.cloned();
        self.blocking(move |c| verify_blocking(c, anchor)).await
    }

    async fn verify_tenant_against(
        &self,
        tenant: &TenantId,
        global: &ChainReport,
    ) -> Result<ChainReport, PortError> {
        let (tenant, global) = (tenant.clone(), global.clone());
        self.blocking(move |c| verify_tenant_blocking(c, &tenant, &global))
            .await
    }

    async fn head(&self, tenant: Option<&TenantId>) -> Result<ChainHead, PortError> {
        let tenant = tenant.cloned();
        self.blocking(move |c| head_blocking(c, tenant.as_ref()))
            .await
    }
}
