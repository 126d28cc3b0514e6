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
//! entry survives a power cut.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use ferry_engine::TenantId;
use ferry_workflows::ports::audit::{
    chain_hash, format_at, AuditEntry, AuditLog, AuditQuery, AuditRecord, ChainReport,
    ChainVerifier, Order, GENESIS_HASH,
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
    Ok(conn)
}

/// The SQLite `AuditLog`.
#[derive(Clone)]
pub struct SqliteAudit {
    conn: Arc<Mutex<SqliteConnection>>,
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

fn append_blocking(
    conn: &mut SqliteConnection,
    entry: AuditEntry,
) -> Result<AuditRecord, PortError> {
    let details = serde_json::to_string(&entry.details)
        .map_err(|e| PortError::permanent("invalid_audit_entry", e.to_string()))?;
    conn.immediate_transaction(|c| {
        let head: Option<(i64, String)> = audit_log::table
            .select((audit_log::seq, audit_log::hash))
            .order(audit_log::seq.desc())
            .first(c)
            .optional()?;
        let (seq, prev_hash) = match head {
            Some((s, h)) => (s as u64 + 1, h),
            None => (1, GENESIS_HASH.to_owned()),
        };
        let hash = chain_hash(&prev_hash, seq, &entry);
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
            details: details.clone(),
            prev_hash: prev_hash.clone(),
            hash: hash.clone(),
        };
        diesel::insert_into(audit_log::table)
            .values(&row)
            .execute(c)?;
        Ok(AuditRecord {
            seq,
            entry: entry.clone(),
            prev_hash,
            hash,
        })
    })
    .map_err(db_err)
}

fn list_blocking(
    conn: &mut SqliteConnection,
    q: &AuditQuery,
) -> Result<Vec<AuditRecord>, PortError> {
    let mut query = audit_log::table.select(Row::as_select()).into_boxed();
    if let Some(t) = &q.tenant {
        query = query.filter(audit_log::tenant.eq(t.as_str().to_owned()));
    }
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
            r.decode().ok_or_else(|| {
                PortError::permanent(
                    "audit_corrupt",
                    format!("audit entry {seq} cannot be decoded"),
                )
            })
        })
        .collect()
}

fn verify_blocking(conn: &mut SqliteConnection) -> Result<ChainReport, PortError> {
    let mut verifier = ChainVerifier::new();
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

#[async_trait]
impl AuditLog for SqliteAudit {
    async fn append(&self, entry: AuditEntry) -> Result<AuditRecord, PortError> {
        let entry = entry.normalized();
        self.blocking(move |c| append_blocking(c, entry)).await
    }

    async fn list(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, PortError> {
        let q = query.clone();
        self.blocking(move |c| list_blocking(c, &q)).await
    }

    async fn verify_chain(&self) -> Result<ChainReport, PortError> {
        self.blocking(verify_blocking).await
    }
}
