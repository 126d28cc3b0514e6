//! The audit log in the PostgreSQL platform database (through diesel).
//!
//! The schema comes from the platform migrations embedded from
//! `migrations/postgres/` ([`PG_PLATFORM_MIGRATIONS`], one set for every
//! platform table so their order is global), applied by [`PgAudit::connect`]
//! under the same advisory lock as every other platform adapter.
//!
//! Append-only in the database itself, whatever code connects (the
//! migration `2026-11-23-000002_audit` explains each layer):
//! - *privileges*: `UPDATE`, `DELETE` and `TRUNCATE` on `ferry_audit_log` are
//!   revoked from everyone, the owning role included, so any non-superuser
//!   is refused; an application role needs only `SELECT, INSERT` on the
//!   log and on the tenants' chains, `SELECT` on `ferry_audit_head` and
//!   `EXECUTE` on `ferry_audit_head_for_append()`, and connects with
//!   [`PgAudit::connect_without_migrating`];
//! - *triggers*: statement triggers (`ENABLE ALWAYS`) raise on `UPDATE`,
//!   `DELETE` and `TRUNCATE`, refusing superusers too; only DDL by the owner
//!   or a superuser can lift them, and ferry issues none;
//! - *the chain*: each entry's hash is the port's [`chain_hash`], so any
//!   change that gets past both is found by [`AuditLog::verify_chain`], here
//!   or by any other backend.
//!
//! Appends are serialized across processes by a one-row chain head,
//! `ferry_audit_head`: the append transaction locks it (`SELECT ... FOR
//! UPDATE`, through a `SECURITY DEFINER` function), hashes the entry onto
//! the head's hash, and inserts; an insert trigger checks that the entry
//! extends the head and advances it. So concurrent appends from many ferry
//! processes form one linear chain, enforced by the database, and the head
//! also reveals entries removed from the end of the log. A commit is
//! durable when it returns (PostgreSQL's `synchronous_commit`). One
//! process's appends that arrive together share one transaction (group
//! commit, `audit_queue`), each still chained under the head's lock; an
//! entry PostgreSQL cannot store is refused before it joins a batch, and a
//! batch whose COMMIT outcome is unknown fails every append in it.
//!
//! Each tenant entry is also a link of its tenant's own chain,
//! `ferry_audit_tenant_chain` (same `seq`), written in the append's
//! transaction under the head's lock; a tenant's listing and report are read
//! from it. Entries older than that table get their links when ferry
//! connects. Neither the head nor the triggers stop the owner or a
//! superuser, who can lift them and rewrite log and head alike: the chain's
//! end is vouched for by signed anchors kept outside the database
//! (`audit_anchor`).
//!
//! Error codes: `audit_unavailable` (connection refused or lost, server
//! restarting), `audit_busy` (lock timeout, serialization failure,
//! deadlock) and `audit_io` are retryable; `audit_auth`, `audit_config`,
//! `audit_db_missing`, `audit_schema_missing`, `audit_permission`,
//! `audit_error`, `invalid_audit_entry`, `audit_corrupt` and
//! `platform_migration_failed` are permanent. An operation that fails on a dead connection before it can
//! have written anything is run once more on a fresh connection, so a
//! PostgreSQL restart between two appends costs no error.

use crate::audit_queue::{self, AppendQueue, OnFailure};
use crate::tenant_pg::conn::{connect, db_error};
use crate::tenant_pg::registry::migrate_platform;
use async_trait::async_trait;
use diesel::data_types::PgTimestamp;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel::PgConnection;
use ferry_engine::{TenantId, Timestamp};
use ferry_workflows::ports::audit::{
    chain_hash, AuditEntry, AuditLog, AuditQuery, AuditRecord, ChainHead, ChainReport,
    ChainVerifier, Order, TenantChainVerifier, GENESIS_HASH,
};
use ferry_workflows::ports::PortError;
use parking_lot::Mutex;
use std::sync::Arc;

pub use crate::tenant_pg::registry::PG_PLATFORM_MIGRATIONS;

/// Rows read per page while verifying the chain.
const VERIFY_PAGE_ROWS: i64 = 1000;

/// Seconds to wait for PostgreSQL to accept a connection.
const CONNECT_TIMEOUT_S: u32 = 10;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// A timestamp as PostgreSQL stores it; `None` outside its range.
pub(crate) fn to_pg_timestamp(at: &Timestamp) -> Option<PgTimestamp> {
    at.timestamp_micros()
        .checked_sub(PG_EPOCH_OFFSET_US)
        .map(PgTimestamp)
}

/// A stored timestamp; `None` for `±infinity` and other values chrono
/// cannot hold.
pub(crate) fn from_pg_timestamp(at: PgTimestamp) -> Option<Timestamp> {
    at.0.checked_add(PG_EPOCH_OFFSET_US)
        .and_then(chrono::DateTime::from_timestamp_micros)
}

/// A failed attempt at an operation on the platform database.
#[derive(Debug)]
pub(crate) struct Failed {
    pub error: PortError,
    /// Whether a write may have reached the server; only an attempt that
    /// cannot have written anything is run again.
    pub maybe_written: bool,
}

impl Failed {
    /// A failure before anything was written.
    pub fn untouched(error: PortError) -> Failed {
        Failed {
            error,
            maybe_written: false,
        }
    }
}

/// One connection to the PostgreSQL platform database, shared by the
/// platform adapters in this crate (the audit log, export records): opened
/// and migrated at construction, reopened after it is lost, and used from
/// the blocking thread pool. Error codes carry the adapter's `prefix`
/// (`audit_unavailable`, `export_records_unavailable`, ...).
#[derive(Clone)]
pub(crate) struct PlatformDb(Arc<PlatformDbInner>);

struct PlatformDbInner {
    url: String,
    prefix: &'static str,
    conn: Mutex<Option<PgConnection>>,
}

impl PlatformDb {
    /// Connect to `url`. With `migrate`, apply the pending platform
    /// migrations; without, only check that `table` exists (a role that
    /// may not create tables connects this way, after the owner migrated).
    pub fn open(
        url: &str,
        prefix: &'static str,
        migrate: bool,
        table: &str,
    ) -> Result<PlatformDb, PortError> {
        let db = PlatformDb(Arc::new(PlatformDbInner {
            url: url.to_owned(),
            prefix,
            conn: Mutex::new(None),
        }));
        let mut conn = db.establish()?;
        if migrate {
            migrate_platform(&mut conn).map_err(|e| recode(prefix, e))?;
        } else {
            let found: bool = diesel::select(
                diesel::dsl::sql::<diesel::sql_types::Bool>("pg_catalog.to_regclass(")
                    .bind::<Text, _>(table)
                    .sql(") IS NOT NULL"),
            )
            .get_result(&mut conn)
            .map_err(|e| platform_db_error(prefix, "checking the platform schema", e))?;
            if !found {
                return Err(PortError::permanent(
                    format!("{prefix}_schema_missing"),
                    format!(
                        "the platform database has no {table} table: apply the platform \
                         migrations (as the owning role) first"
                    ),
                ));
            }
        }
        *db.0.conn.lock() = Some(conn);
        Ok(db)
    }

    fn establish(&self) -> Result<PgConnection, PortError> {
        let prefix = self.0.prefix;
        connect(
            &self.0.url,
            CONNECT_TIMEOUT_S,
            "the platform database",
            || {
                PortError::permanent(
                    format!("{prefix}_db_missing"),
                    "connecting to the platform database: the database does not exist",
                )
            },
        )
        .map_err(|e| recode(prefix, e))
    }

    /// Run `f` on the connection in the blocking pool. A lost connection is
    /// dropped (the next call reconnects); if `f` failed on it without
    /// having written, it runs once more on a fresh connection.
    pub async fn run<T, F>(&self, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: Fn(&mut PgConnection) -> Result<T, Failed> + Send + 'static,
    {
        let db = self.clone();
        let prefix = self.0.prefix;
        tokio::task::spawn_blocking(move || db.run_blocking(&f))
            .await
            .map_err(|e| PortError::retryable(format!("{prefix}_io"), e.to_string()))?
    }

    fn run_blocking<T>(
        &self,
        f: &dyn Fn(&mut PgConnection) -> Result<T, Failed>,
    ) -> Result<T, PortError> {
        let lost_code = format!("{}_unavailable", self.0.prefix);
        let mut slot = self.0.conn.lock();
        let mut fresh = false;
        loop {
            let conn = match slot.as_mut() {
                Some(conn) => conn,
                None => {
                    fresh = true;
                    slot.insert(self.establish()?)
                }
            };
            match f(conn) {
                Ok(value) => return Ok(value),
                Err(failed) => {
                    if failed.error.retryable {
                        // The connection may be dead or mid-transaction;
                        // a new one costs little next to the failure.
                        *slot = None;
                    }
                    let lost = failed.error.code == lost_code;
                    if lost && !failed.maybe_written && !fresh {
                        continue;
                    }
                    return Err(failed.error);
                }
            }
        }
    }
}

/// Map a diesel error to the codes of the adapter with `prefix`, with
/// `context` saying what we were doing (never the SQL text).
pub(crate) fn platform_db_error(
    prefix: &str,
    context: &str,
    e: diesel::result::Error,
) -> PortError {
    recode(prefix, db_error(context, e))
}

/// Give a shared PostgreSQL error (`tenant_db_*`, from `tenant_pg::conn`,
/// which classifies every server failure in one place) this adapter's code.
fn recode(prefix: &str, e: PortError) -> PortError {
    let suffix = match e.code.as_str() {
        "tenant_db_unavailable" => "unavailable",
        "tenant_db_busy" => "busy",
        "tenant_db_io" => "io",
        "tenant_db_auth" => "auth",
        "tenant_db_config" => "config",
        "tenant_db_permission" => "permission",
        "tenant_db_error" => "error",
        _ => return e,
    };
    PortError {
        code: format!("{prefix}_{suffix}"),
        ..e
    }
}

/// A stored row, as `SELECT_COLUMNS` reads it.
#[derive(QueryableByName, Debug)]
#[diesel(check_for_backend(diesel::pg::Pg))]
struct Row {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Timestamptz)]
    at: PgTimestamp,
    #[diesel(sql_type = Text)]
    actor: String,
    #[diesel(sql_type = Nullable<Text>)]
    tenant: Option<String>,
    #[diesel(sql_type = Text)]
    action: String,
    #[diesel(sql_type = Text)]
    entity: String,
    #[diesel(sql_type = Text)]
    entity_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    ip: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    user_agent: Option<String>,
    #[diesel(sql_type = Text)]
    details: String,
    #[diesel(sql_type = Text)]
    prev_hash: String,
    #[diesel(sql_type = Text)]
    hash: String,
}

/// The columns of [`Row`]; `details` as the exact text that was stored.
const SELECT_COLUMNS: &str = "seq, at, actor, tenant, action, entity, entity_id, ip, \
     user_agent, details::text AS details, prev_hash, hash";

/// A stored entry with its link in its tenant's chain, as
/// `TENANT_SELECT` reads it.
#[derive(QueryableByName, Debug)]
#[diesel(check_for_backend(diesel::pg::Pg))]
struct LinkedRow {
    #[diesel(embed)]
    stored: Row,
    #[diesel(sql_type = Text)]
    link_tenant: String,
    #[diesel(sql_type = BigInt)]
    tenant_seq: i64,
    #[diesel(sql_type = Text)]
    tenant_prev_hash: String,
    #[diesel(sql_type = Text)]
    tenant_hash: String,
}

/// A tenant's entries joined with their links; `$1` is the tenant.
const TENANT_SELECT: &str = "SELECT l.seq, l.at, l.actor, l.tenant, l.action, l.entity, \
     l.entity_id, l.ip, l.user_agent, l.details::text AS details, l.prev_hash, l.hash, \
     c.tenant AS link_tenant, c.tenant_seq, c.prev_hash AS tenant_prev_hash, \
     c.hash AS tenant_hash \
     FROM ferry_audit_tenant_chain c JOIN ferry_audit_log l ON l.seq = c.seq \
     WHERE c.tenant = $1";

impl LinkedRow {
    /// The entry as its tenant's chain shows it; `None` if it no longer
    /// decodes or its link names another tenant than the entry.
    fn decode(self) -> Option<AuditRecord> {
        if self.stored.tenant.as_deref() != Some(self.link_tenant.as_str()) {
            return None;
        }
        let record = self.stored.decode()?;
        Some(AuditRecord {
            seq: u64::try_from(self.tenant_seq).ok()?,
            entry: record.entry,
            prev_hash: self.tenant_prev_hash,
            hash: self.tenant_hash,
        })
    }
}

impl Row {
    /// Decode a stored row; `None` if a field no longer parses (tampering).
    fn decode(self) -> Option<AuditRecord> {
        let tenant = match self.tenant {
            Some(t) => Some(TenantId::parse(&t).ok()?),
            None => None,
        };
        Some(AuditRecord {
            seq: u64::try_from(self.seq).ok()?,
            entry: AuditEntry {
                at: from_pg_timestamp(self.at)?,
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

#[derive(QueryableByName, Debug)]
#[diesel(check_for_backend(diesel::pg::Pg))]
struct Head {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    hash: String,
}

/// The PostgreSQL `AuditLog`.
pub struct PgAudit {
    db: PlatformDb,
    /// Appends not yet written (group commit, `audit_queue`).
    queue: Arc<AppendQueue>,
    /// Held while the queue is written, so appends arriving meanwhile
    /// gather for the next transaction.
    writer: Arc<Mutex<()>>,
}

impl std::fmt::Debug for PgAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("PgAudit").finish_non_exhaustive()
    }
}

impl PgAudit {
    /// Connect to the platform database at `url` (e.g. `DATABASE_URL`) and
    /// apply the pending platform migrations (which needs a role that may
    /// create tables: the owner). Blocks while connecting; call it at
    /// start-up.
    pub fn connect(url: &str) -> Result<PgAudit, PortError> {
        PgAudit::new(PlatformDb::open(url, CODES, true, "ferry_audit_log")?).linked()
    }

    /// Connect without migrating, as an application role that holds only
    /// `SELECT, INSERT` on `ferry_audit_log` and `ferry_audit_tenant_chain`,
    /// `SELECT` on `ferry_audit_head` and `EXECUTE` on
    /// `ferry_audit_head_for_append()`; the owner applied the migrations.
    /// Fails with `audit_schema_missing` if they were not.
    pub fn connect_without_migrating(url: &str) -> Result<PgAudit, PortError> {
        PgAudit::new(PlatformDb::open(url, CODES, false, "ferry_audit_log")?).linked()
    }

    fn new(db: PlatformDb) -> PgAudit {
        PgAudit {
            db,
            queue: Arc::new(AppendQueue::default()),
            writer: Arc::new(Mutex::new(())),
        }
    }

    /// Give the tenant entries appended before `ferry_audit_tenant_chain`
    /// existed their links, in `seq` order (under the head's lock, so no
    /// append interleaves).
    fn linked(self) -> Result<PgAudit, PortError> {
        let mut slot = self.db.0.conn.lock();
        let conn = slot.as_mut().expect("an open connection");
        conn.transaction(|c| {
            diesel::sql_query("SELECT seq, hash FROM ferry_audit_head_for_append()").execute(c)?;
            let linked: Head = diesel::sql_query(
                "SELECT coalesce(max(seq), 0) AS seq, '' AS hash FROM ferry_audit_tenant_chain",
            )
            .get_result(c)?;
            let mut after = linked.seq;
            loop {
                let rows: Vec<Row> = diesel::sql_query(format!(
                    "SELECT {SELECT_COLUMNS} FROM ferry_audit_log \
                     WHERE seq > $1 AND tenant IS NOT NULL ORDER BY seq LIMIT $2"
                ))
                .bind::<BigInt, _>(after)
                .bind::<BigInt, _>(VERIFY_PAGE_ROWS)
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
        .map_err(|e| db_err("linking older entries to their tenants' chains", e))?;
        drop(slot);
        Ok(self)
    }
}

/// Append the entry at platform `seq` to its tenant's chain, inside the
/// caller's transaction (which holds the head's lock).
fn link_entry(
    c: &mut PgConnection,
    seq: i64,
    tenant: &str,
    entry: &AuditEntry,
) -> Result<(), diesel::result::Error> {
    let head: Option<Head> = diesel::sql_query(
        "SELECT tenant_seq AS seq, hash FROM ferry_audit_tenant_chain \
         WHERE tenant = $1 ORDER BY tenant_seq DESC LIMIT 1",
    )
    .bind::<Text, _>(tenant)
    .get_result(c)
    .optional()?;
    let (prev_seq, prev_hash) = head.map_or((0, GENESIS_HASH.to_owned()), |h| (h.seq, h.hash));
    let tenant_seq = prev_seq + 1;
    let hash = chain_hash(&prev_hash, tenant_seq as u64, entry);
    diesel::sql_query(
        "INSERT INTO ferry_audit_tenant_chain (seq, tenant, tenant_seq, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind::<BigInt, _>(seq)
    .bind::<Text, _>(tenant)
    .bind::<BigInt, _>(tenant_seq)
    .bind::<Text, _>(&prev_hash)
    .bind::<Text, _>(&hash)
    .execute(c)?;
    Ok(())
}

/// The prefix of this adapter's error codes.
const CODES: &str = "audit";

fn db_err(context: &str, e: diesel::result::Error) -> PortError {
    platform_db_error(CODES, context, e)
}

fn invalid(message: impl Into<String>) -> Failed {
    Failed::untouched(PortError::permanent("invalid_audit_entry", message))
}

/// Text fields PostgreSQL cannot store (a NUL byte) are refused up front,
/// with a clear code, rather than as a server error.
fn check_text(entry: &AuditEntry) -> Result<(), Failed> {
    let fields = [
        ("actor", Some(&entry.actor)),
        ("action", Some(&entry.action)),
        ("entity", Some(&entry.entity)),
        ("entityId", Some(&entry.entity_id)),
        ("ip", entry.ip.as_ref()),
        ("userAgent", entry.user_agent.as_ref()),
    ];
    for (name, value) in fields {
        if value.is_some_and(|v| v.contains('\0')) {
            return Err(invalid(format!("{name} contains a NUL character")));
        }
    }
    Ok(())
}

/// Append `entries` in order, in ONE transaction (each chained to the one
/// before it under the head's lock, as if appended one by one). They were
/// checked (`check_entry`) when queued.
fn append_all(conn: &mut PgConnection, entries: &[AuditEntry]) -> Result<Vec<AuditRecord>, Failed> {
    let mut rows = Vec::with_capacity(entries.len());
    for entry in entries {
        let details = serde_json::to_string(&entry.details).map_err(|e| invalid(e.to_string()))?;
        rows.push((entry, details, check_entry(entry)?));
    }
    // Only a failed COMMIT leaves it unknown whether the entries were
    // stored; a failure before it rolled everything back.
    let mut commit_sent = false;
    let result = conn.transaction(|c| {
        let mut records = Vec::with_capacity(rows.len());
        for (entry, details, at) in &rows {
            let head: Head =
                diesel::sql_query("SELECT seq, hash FROM ferry_audit_head_for_append()")
                    .get_result(c)?;
            let seq = head.seq as u64 + 1;
            let hash = chain_hash(&head.hash, seq, entry);
            diesel::sql_query(
                "INSERT INTO ferry_audit_log \
                 (seq, at, actor, tenant, action, entity, entity_id, ip, user_agent, details, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::json, $11, $12)",
            )
            .bind::<BigInt, _>(seq as i64)
            .bind::<Timestamptz, _>(at)
            .bind::<Text, _>(&entry.actor)
            .bind::<Nullable<Text>, _>(entry.tenant.as_ref().map(|t| t.as_str()))
            .bind::<Text, _>(&entry.action)
            .bind::<Text, _>(&entry.entity)
            .bind::<Text, _>(&entry.entity_id)
            .bind::<Nullable<Text>, _>(entry.ip.as_deref())
            .bind::<Nullable<Text>, _>(entry.user_agent.as_deref())
            .bind::<Text, _>(details)
            .bind::<Text, _>(&head.hash)
            .bind::<Text, _>(&hash)
            .execute(c)?;
            if let Some(tenant) = &entry.tenant {
                link_entry(c, seq as i64, tenant.as_str(), entry)?;
            }
            records.push(AuditRecord {
                seq,
                entry: (*entry).clone(),
                prev_hash: head.hash,
                hash,
            });
        }
        commit_sent = true;
        Ok(records)
    });
    result.map_err(|e| Failed {
        error: db_err("appending to the audit log", e),
        maybe_written: commit_sent,
    })
}

/// What PostgreSQL cannot store, refused before the entry is queued: a
/// NUL character in a text field, a timestamp outside its range. Returns
/// the timestamp as stored.
fn check_entry(entry: &AuditEntry) -> Result<PgTimestamp, Failed> {
    check_text(entry)?;
    to_pg_timestamp(&entry.at).ok_or_else(|| invalid("the timestamp is outside PostgreSQL's range"))
}

fn corrupt(seq: i64) -> Failed {
    Failed::untouched(PortError::permanent(
        "audit_corrupt",
        format!("audit entry {seq} cannot be decoded"),
    ))
}

fn list_blocking(conn: &mut PgConnection, q: &AuditQuery) -> Result<Vec<AuditRecord>, Failed> {
    if let Some(tenant) = &q.tenant {
        return list_tenant_blocking(conn, tenant, q);
    }
    // Absent filters are NULL parameters; PostgreSQL plans each call with
    // its values, so `$1 IS NULL OR ...` folds away and the indexes serve.
    let (cursor, order) = match q.order {
        Order::Asc => ("seq > $3", "ASC"),
        Order::Desc => ("seq < $3", "DESC"),
    };
    let sql = format!(
        "SELECT {SELECT_COLUMNS} FROM ferry_audit_log \
         WHERE ($1::text IS NULL OR action = $1) \
           AND ($2::text IS NULL OR entity_id = $2) \
           AND ($3::bigint IS NULL OR {cursor}) \
         ORDER BY seq {order} LIMIT $4"
    );
    let rows: Vec<Row> = diesel::sql_query(sql)
        .bind::<Nullable<Text>, _>(q.action.as_deref())
        .bind::<Nullable<Text>, _>(q.entity_id.as_deref())
        .bind::<Nullable<BigInt>, _>(q.after.map(|a| a.min(i64::MAX as u64) as i64))
        .bind::<BigInt, _>(q.effective_limit() as i64)
        .load(conn)
        .map_err(|e| Failed::untouched(db_err("listing the audit log", e)))?;
    rows.into_iter()
        .map(|r| {
            let seq = r.seq;
            r.decode().ok_or_else(|| corrupt(seq))
        })
        .collect()
}

/// A tenant's entries in its own chain's terms.
fn list_tenant_blocking(
    conn: &mut PgConnection,
    tenant: &TenantId,
    q: &AuditQuery,
) -> Result<Vec<AuditRecord>, Failed> {
    let (cursor, order) = match q.order {
        Order::Asc => ("c.tenant_seq > $4", "ASC"),
        Order::Desc => ("c.tenant_seq < $4", "DESC"),
    };
    let sql = format!(
        "{TENANT_SELECT} \
           AND ($2::text IS NULL OR l.action = $2) \
           AND ($3::text IS NULL OR l.entity_id = $3) \
           AND ($4::bigint IS NULL OR {cursor}) \
         ORDER BY c.tenant_seq {order} LIMIT $5"
    );
    let rows: Vec<LinkedRow> = diesel::sql_query(sql)
        .bind::<Text, _>(tenant.as_str())
        .bind::<Nullable<Text>, _>(q.action.as_deref())
        .bind::<Nullable<Text>, _>(q.entity_id.as_deref())
        .bind::<Nullable<BigInt>, _>(q.after.map(|a| a.min(i64::MAX as u64) as i64))
        .bind::<BigInt, _>(q.effective_limit() as i64)
        .load(conn)
        .map_err(|e| Failed::untouched(db_err("listing the audit log", e)))?;
    rows.into_iter()
        .map(|r| {
            let seq = r.tenant_seq;
            r.decode().ok_or_else(|| corrupt(seq))
        })
        .collect()
}

fn verify_blocking(
    conn: &mut PgConnection,
    anchor: Option<&ChainHead>,
) -> Result<ChainReport, Failed> {
    // One snapshot for the whole walk, so the head and the entries agree.
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run(|c| {
            let head: Head =
                diesel::sql_query("SELECT seq, hash FROM ferry_audit_head").get_result(c)?;
            let mut verifier = ChainVerifier::anchored(anchor.cloned());
            let mut last: Option<(i64, String)> = None;
            loop {
                let after = last.as_ref().map_or(0, |(seq, _)| *seq);
                let rows: Vec<Row> = diesel::sql_query(format!(
                    "SELECT {SELECT_COLUMNS} FROM ferry_audit_log \
                     WHERE seq > $1 ORDER BY seq LIMIT $2"
                ))
                .bind::<BigInt, _>(after)
                .bind::<BigInt, _>(VERIFY_PAGE_ROWS)
                .load(c)?;
                if rows.is_empty() {
                    break;
                }
                for row in rows {
                    let seq = row.seq;
                    last = Some((seq, row.hash.clone()));
                    match row.decode() {
                        Some(record) => verifier.push(&record),
                        None => verifier.push_unreadable(seq.max(0) as u64),
                    }
                }
            }
            let mut report = verifier.report();
            // Entries removed from the end leave a chain that is intact
            // as far as it goes; the head still says where it ended.
            let (last_seq, last_hash) = last.unwrap_or_else(|| (0, GENESIS_HASH.to_owned()));
            if report.ok && (last_seq, &last_hash) != (head.seq, &head.hash) {
                // Same length, other hash: the last entry was rewritten
                // (and rehashed); otherwise the first entry past the
                // shorter of log and head is missing.
                let broken = if last_seq == head.seq {
                    last_seq
                } else {
                    last_seq.min(head.seq) + 1
                };
                report.ok = false;
                report.first_broken_seq = Some(broken.max(1) as u64);
            }
            Ok(report)
        })
        .map_err(|e| Failed::untouched(db_err("verifying the audit log", e)))
}

fn verify_tenant_blocking(
    conn: &mut PgConnection,
    tenant: &TenantId,
    global: &ChainReport,
) -> Result<ChainReport, Failed> {
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run(|c| {
            let mut verifier = TenantChainVerifier::new(global);
            let mut after = 0i64;
            loop {
                let rows: Vec<LinkedRow> = diesel::sql_query(format!(
                    "{TENANT_SELECT} AND c.tenant_seq > $2 ORDER BY c.tenant_seq LIMIT $3"
                ))
                .bind::<Text, _>(tenant.as_str())
                .bind::<BigInt, _>(after)
                .bind::<BigInt, _>(VERIFY_PAGE_ROWS)
                .load(c)?;
                let Some(tail) = rows.last() else { break };
                after = tail.tenant_seq;
                for row in rows {
                    let platform_seq = row.stored.seq.max(0) as u64;
                    let seq = row.tenant_seq.max(0) as u64;
                    match row.decode() {
                        Some(record) => verifier.push(platform_seq, &record),
                        None => verifier.push_unreadable(platform_seq, seq),
                    }
                }
            }
            Ok(verifier.report())
        })
        .map_err(|e| Failed::untouched(db_err("verifying a tenant's audit chain", e)))
}

fn head_blocking(conn: &mut PgConnection, tenant: Option<&TenantId>) -> Result<ChainHead, Failed> {
    let head: Option<Head> = match tenant {
        None => {
            diesel::sql_query("SELECT seq, hash FROM ferry_audit_log ORDER BY seq DESC LIMIT 1")
                .get_result(conn)
                .optional()
        }
        Some(t) => diesel::sql_query(
            "SELECT tenant_seq AS seq, hash FROM ferry_audit_tenant_chain \
             WHERE tenant = $1 ORDER BY tenant_seq DESC LIMIT 1",
        )
        .bind::<Text, _>(t.as_str())
        .get_result(conn)
        .optional(),
    }
    .map_err(|e| Failed::untouched(db_err("reading the audit chain's head", e)))?;
    Ok(head.map_or_else(ChainHead::genesis, |h| ChainHead {
        seq: h.seq.max(0) as u64,
        hash: h.hash,
    }))
}

#[async_trait]
impl AuditLog for PgAudit {
    async fn append(&self, entry: AuditEntry) -> Result<AuditRecord, PortError> {
        let entry = entry.normalized();
        check_entry(&entry).map_err(|f| f.error)?;
        let answer = self.queue.push(entry);
        let (db, queue, writer) = (self.db.clone(), self.queue.clone(), self.writer.clone());
        tokio::task::spawn_blocking(move || {
            let _writing = writer.lock();
            // A lost connection is retried by `run_blocking` only when the
            // batch cannot have been written; an unknown COMMIT fails them all.
            queue.write_queued(
                |entries| db.run_blocking(&|c| append_all(c, entries)),
                OnFailure::FailAll,
            );
        })
        .await
        .map_err(|e| PortError::retryable(format!("{CODES}_io"), e.to_string()))?;
        audit_queue::answer(answer).await
    }

    async fn list(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, PortError> {
        let q = query.clone();
        self.db.run(move |c| list_blocking(c, &q)).await
    }

    async fn verify_against(&self, anchor: Option<&ChainHead>) -> Result<ChainReport, PortError> {
        let anchor = anchor.cloned();
        self.db
            .run(move |c| verify_blocking(c, anchor.as_ref()))
            .await
    }

    async fn verify_tenant_against(
        &self,
        tenant: &TenantId,
        global: &ChainReport,
    ) -> Result<ChainReport, PortError> {
        let (tenant, global) = (tenant.clone(), global.clone());
        self.db
            .run(move |c| verify_tenant_blocking(c, &tenant, &global))
            .await
    }

    async fn head(&self, tenant: Option<&TenantId>) -> Result<ChainHead, PortError> {
        let tenant = tenant.cloned();
        self.db
            .run(move |c| head_blocking(c, tenant.as_ref()))
            .await
    }
}
