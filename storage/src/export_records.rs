//! Export records in the PostgreSQL platform database: one row per export in
//! `ferry_exports`, for operators and other services to query with plain
//! SQL (which exports a tenant ran, how big, where the bundle is, when it
//! expires).
//!
//! A record is a projection, not a source of truth: the export workflow's
//! event log is the truth, and the workflow upserts the record by export id
//! through the [`ExportRecords`] port as it moves on, so writing the same record twice is harmless and a
//! lost write is repaired by the next one. An export never changes tenant:
//! an upsert that would move an existing record to another tenant is
//! refused (`export_record_conflict`).
//!
//! The table comes from the platform migrations ([`PgExportRecords::connect`]
//! applies them). Error codes: `export_records_unavailable`,
//! `export_records_busy` and `export_records_io` are retryable;
//! `export_record_conflict`, `invalid_export_record`, `export_record_corrupt`
//! and the other `export_records_*` codes are permanent.

use crate::audit_pg::{from_pg_timestamp, platform_db_error, to_pg_timestamp, Failed, PlatformDb};
use diesel::data_types::PgTimestamp;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel::PgConnection;
use ferry_engine::{Status, TenantId, Timestamp, WorkflowId};
use ferry_workflows::export::Profile;
pub use ferry_workflows::ports::export_records::ExportRecord;
use ferry_workflows::ports::export_records::ExportRecords;
use ferry_workflows::ports::PortError;

/// Most records one `list_by_tenant` call returns.
pub const EXPORT_LIST_LIMIT_MAX: usize = 1000;

/// The prefix of this adapter's error codes.
const CODES: &str = "export_records";

/// Stored timestamps keep microseconds; truncate so what is stored equals
/// what is read back.
fn normalized(mut r: ExportRecord) -> ExportRecord {
    fn micros(t: Timestamp) -> Timestamp {
        chrono::DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
    }
    r.requested_at = micros(r.requested_at);
    r.completed_at = r.completed_at.map(micros);
    r.expires_at = r.expires_at.map(micros);
    r.expired_at = r.expired_at.map(micros);
    r
}

/// `ferry_exports` in PostgreSQL.
pub struct PgExportRecords {
    db: PlatformDb,
}

impl std::fmt::Debug for PgExportRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("PgExportRecords").finish_non_exhaustive()
    }
}

#[derive(QueryableByName, Debug)]
#[diesel(check_for_backend(diesel::pg::Pg))]
struct Row {
    #[diesel(sql_type = Text)]
    export_id: String,
    #[diesel(sql_type = Text)]
    tenant_id: String,
    #[diesel(sql_type = Text)]
    profile: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Text)]
    requested_by: String,
    #[diesel(sql_type = Timestamptz)]
    requested_at: PgTimestamp,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    completed_at: Option<PgTimestamp>,
    #[diesel(sql_type = Nullable<BigInt>)]
    size_bytes: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    checksum: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    object_key: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    expires_at: Option<PgTimestamp>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    expired_at: Option<PgTimestamp>,
}

/// The columns of [`Row`].
const SELECT_COLUMNS: &str = "export_id::text AS export_id, tenant_id, profile, status, \
     requested_by, requested_at, completed_at, size_bytes, checksum, object_key, expires_at, \
     expired_at";

impl Row {
    fn decode(self) -> Result<ExportRecord, Failed> {
        let id = self.export_id.clone();
        let corrupt = |what: &str| {
            Failed::untouched(PortError::permanent(
                "export_record_corrupt",
                format!("export record {id}: {what} cannot be decoded"),
            ))
        };
        let time = |t: Option<PgTimestamp>, what: &str| match t {
            Some(t) => from_pg_timestamp(t).map(Some).ok_or_else(|| corrupt(what)),
            None => Ok(None),
        };
        Ok(ExportRecord {
            export_id: self.export_id.parse().map_err(|_| corrupt("export_id"))?,
            tenant: TenantId::parse(&self.tenant_id).map_err(|_| corrupt("tenant_id"))?,
            profile: Profile::parse(&self.profile).ok_or_else(|| corrupt("profile"))?,
            status: Status::parse(&self.status).ok_or_else(|| corrupt("status"))?,
            requested_by: self.requested_by,
            requested_at: from_pg_timestamp(self.requested_at)
                .ok_or_else(|| corrupt("requested_at"))?,
            completed_at: time(self.completed_at, "completed_at")?,
            size_bytes: self
                .size_bytes
                .map(u64::try_from)
                .transpose()
                .map_err(|_| corrupt("size_bytes"))?,
            checksum: self.checksum,
            object_key: self.object_key,
            expires_at: time(self.expires_at, "expires_at")?,
            expired_at: time(self.expired_at, "expired_at")?,
        })
    }
}

fn invalid(message: impl Into<String>) -> Failed {
    Failed::untouched(PortError::permanent("invalid_export_record", message))
}

fn pg_time(t: Option<&Timestamp>, what: &str) -> Result<Option<PgTimestamp>, Failed> {
    t.map(|t| {
        to_pg_timestamp(t).ok_or_else(|| invalid(format!("{what} is outside PostgreSQL's range")))
    })
    .transpose()
}

fn upsert_blocking(conn: &mut PgConnection, r: &ExportRecord) -> Result<(), Failed> {
    let texts = [
        ("requested_by", Some(&r.requested_by)),
        ("checksum", r.checksum.as_ref()),
        ("object_key", r.object_key.as_ref()),
    ];
    for (name, value) in texts {
        if value.is_some_and(|v| v.contains('\0')) {
            return Err(invalid(format!("{name} contains a NUL character")));
        }
    }
    let size_bytes = r
        .size_bytes
        .map(i64::try_from)
        .transpose()
        .map_err(|_| invalid("size_bytes is too large"))?;
    let requested_at = pg_time(Some(&r.requested_at), "requested_at")?
        .ok_or_else(|| invalid("requested_at is missing"))?;
    // The tenant of an existing record never changes: the `WHERE` turns
    // such an upsert into a no-op, reported as a conflict below.
    let written = diesel::sql_query(
        "INSERT INTO ferry_exports (export_id, tenant_id, profile, status, requested_by, \
           requested_at, completed_at, size_bytes, checksum, object_key, expires_at, expired_at) \
         VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (export_id) DO UPDATE SET \
           profile = EXCLUDED.profile, status = EXCLUDED.status, \
           requested_by = EXCLUDED.requested_by, requested_at = EXCLUDED.requested_at, \
           completed_at = EXCLUDED.completed_at, size_bytes = EXCLUDED.size_bytes, \
           checksum = EXCLUDED.checksum, object_key = EXCLUDED.object_key, \
           expires_at = EXCLUDED.expires_at, expired_at = EXCLUDED.expired_at \
         WHERE ferry_exports.tenant_id = EXCLUDED.tenant_id",
    )
    .bind::<Text, _>(r.export_id.to_string())
    .bind::<Text, _>(r.tenant.as_str())
    .bind::<Text, _>(r.profile.as_str())
    .bind::<Text, _>(r.status.as_str())
    .bind::<Text, _>(&r.requested_by)
    .bind::<Timestamptz, _>(requested_at)
    .bind::<Nullable<Timestamptz>, _>(pg_time(r.completed_at.as_ref(), "completed_at")?)
    .bind::<Nullable<BigInt>, _>(size_bytes)
    .bind::<Nullable<Text>, _>(r.checksum.as_deref())
    .bind::<Nullable<Text>, _>(r.object_key.as_deref())
    .bind::<Nullable<Timestamptz>, _>(pg_time(r.expires_at.as_ref(), "expires_at")?)
    .bind::<Nullable<Timestamptz>, _>(pg_time(r.expired_at.as_ref(), "expired_at")?)
    .execute(conn)
    .map_err(|e| Failed {
        error: platform_db_error(CODES, "writing the export record", e),
        // An upsert of the whole record is idempotent: running it again
        // is safe even if the first attempt was applied.
        maybe_written: false,
    })?;
    if written == 0 {
        return Err(Failed::untouched(PortError::permanent(
            "export_record_conflict",
            format!(
                "export {} belongs to another tenant than {}",
                r.export_id,
                r.tenant.as_str()
            ),
        )));
    }
    Ok(())
}

fn get_blocking(conn: &mut PgConnection, id: WorkflowId) -> Result<Option<ExportRecord>, Failed> {
    let row: Option<Row> = diesel::sql_query(format!(
        "SELECT {SELECT_COLUMNS} FROM ferry_exports WHERE export_id = $1::uuid"
    ))
    .bind::<Text, _>(id.to_string())
    .get_result(conn)
    .optional()
    .map_err(|e| Failed::untouched(platform_db_error(CODES, "reading the export record", e)))?;
    row.map(Row::decode).transpose()
}

fn list_blocking(
    conn: &mut PgConnection,
    tenant: &TenantId,
    before: Option<WorkflowId>,
    limit: usize,
) -> Result<Vec<ExportRecord>, Failed> {
    let rows: Vec<Row> = diesel::sql_query(format!(
        "SELECT {SELECT_COLUMNS} FROM ferry_exports \
         WHERE tenant_id = $1 AND ($2::uuid IS NULL OR export_id < $2::uuid) \
         ORDER BY export_id DESC LIMIT $3"
    ))
    .bind::<Text, _>(tenant.as_str())
    .bind::<Nullable<Text>, _>(before.map(|b| b.to_string()))
    .bind::<BigInt, _>(limit as i64)
    .load(conn)
    .map_err(|e| Failed::untouched(platform_db_error(CODES, "listing export records", e)))?;
    rows.into_iter().map(Row::decode).collect()
}

impl PgExportRecords {
    /// Connect to the platform database at `url` (e.g. `DATABASE_URL`) and
    /// apply the pending platform migrations. Blocks while connecting; call
    /// it at start-up.
    pub fn connect(url: &str) -> Result<PgExportRecords, PortError> {
        Ok(PgExportRecords {
            db: PlatformDb::open(url, CODES, true, "ferry_exports")?,
        })
    }

    /// Connect without migrating, as a role that holds `SELECT, INSERT,
    /// UPDATE` on `ferry_exports`; the owner applied the migrations. Fails
    /// with `export_records_schema_missing` if they were not.
    pub fn connect_without_migrating(url: &str) -> Result<PgExportRecords, PortError> {
        Ok(PgExportRecords {
            db: PlatformDb::open(url, CODES, false, "ferry_exports")?,
        })
    }

    /// Insert the record, or replace every field of the existing record
    /// with the same export id (which must belong to the same tenant).
    /// Timestamps are stored to the microsecond.
    pub async fn upsert(&self, record: &ExportRecord) -> Result<(), PortError> {
        let record = normalized(record.clone());
        self.db.run(move |c| upsert_blocking(c, &record)).await
    }

    /// The record of export `id`, if there is one.
    pub async fn get(&self, id: WorkflowId) -> Result<Option<ExportRecord>, PortError> {
        self.db.run(move |c| get_blocking(c, id)).await
    }

    /// `tenant`'s records, newest first (export ids are UUIDv7). `before` is
    /// an exclusive cursor: the last id of the previous page. `limit` is
    /// capped at [`EXPORT_LIST_LIMIT_MAX`]; 0 means the maximum.
    pub async fn list_by_tenant(
        &self,
        tenant: &TenantId,
        before: Option<WorkflowId>,
        limit: usize,
    ) -> Result<Vec<ExportRecord>, PortError> {
        let tenant = tenant.clone();
        let limit = match limit {
            0 => EXPORT_LIST_LIMIT_MAX,
            n => n.min(EXPORT_LIST_LIMIT_MAX),
        };
        self.db
            .run(move |c| list_blocking(c, &tenant, before, limit))
            .await
    }
}

#[async_trait::async_trait]
impl ExportRecords for PgExportRecords {
    async fn upsert(&self, record: &ExportRecord) -> Result<(), PortError> {
        PgExportRecords::upsert(self, record).await
    }
}
