//! Port: a tenant's database, as export (and later rehydration) sees it.
//!
//! Tables, columns, keys and foreign keys are discovered by introspection;
//! nothing here names a table. All reads of one export go through one
//! [`TenantSnapshot`], which is a single consistent view of the tenant.

use super::PortError;
use ferry_engine::TenantId;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ColumnInfo {
    pub name: String,
    /// The declared type as the database reports it (e.g. `INTEGER`, `numeric(12,2)`).
    pub data_type: String,
    pub nullable: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForeignKey {
    pub columns: Vec<String>,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableInfo {
    pub name: String,
    pub columns: Vec<ColumnInfo>,
    pub primary_key: Vec<String>,
    pub foreign_keys: Vec<ForeignKey>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SequenceInfo {
    pub table: String,
    pub column: String,
    /// The last value handed out (SQLite: `sqlite_sequence.seq`, or max rowid).
    pub last_value: i64,
}

/// What `database/schema.json` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaInfo {
    pub engine: String,
    pub isolation: String,
    /// In foreign-key order (referenced tables first) where there is no cycle.
    pub tables: Vec<TableInfo>,
    pub sequences: Vec<SequenceInfo>,
}

impl SchemaInfo {
    /// blake3 of the canonical JSON of the schema: equal schemas, equal prints.
    pub fn fingerprint(&self) -> String {
        let bytes = serde_json::to_vec(self).expect("schema serializes");
        blake3::hash(&bytes).to_hex().to_string()
    }

    pub fn table(&self, name: &str) -> Option<&TableInfo> {
        self.tables.iter().find(|t| t.name == name)
    }
}

/// Order tables so that every table comes after the tables it references —
/// the order `SchemaInfo::tables` promises, and the order an import needs.
/// Among tables that are ready, the smallest name goes first. When only
/// cycles remain, the table with the fewest unmet references (then the
/// smallest name) goes next; self-references and references to tables
/// outside the set never hold a table back. `case_insensitive` matches
/// references as SQLite does; PostgreSQL's names are exact.
pub fn foreign_key_order<T>(
    tables: Vec<T>,
    info: impl Fn(&T) -> &TableInfo,
    case_insensitive: bool,
) -> Vec<T> {
    use std::collections::{BTreeSet, HashMap};
    let fold = |name: &str| {
        if case_insensitive {
            name.to_lowercase()
        } else {
            name.to_owned()
        }
    };
    let index: HashMap<String, usize> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (fold(&info(t).name), i))
        .collect();
    let deps: Vec<BTreeSet<usize>> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            info(t)
                .foreign_keys
                .iter()
                .filter_map(|fk| index.get(&fold(&fk.ref_table)).copied())
                .filter(|&j| j != i)
                .collect()
        })
        .collect();
    let mut remaining: BTreeSet<(String, usize)> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (info(t).name.clone(), i))
        .collect();
    let mut placed = vec![false; tables.len()];
    let mut order = Vec::with_capacity(tables.len());
    while !remaining.is_empty() {
        let unmet = |i: usize| deps[i].iter().filter(|&&j| !placed[j]).count();
        // `remaining` is sorted by name, so the first ready table is the
        // alphabetically smallest; `min_by_key` keeps the first of equals.
        let next = remaining
            .iter()
            .find(|(_, i)| unmet(*i) == 0)
            .or_else(|| remaining.iter().min_by_key(|(_, i)| unmet(*i)))
            .cloned();
        let Some(next) = next else { break };
        remaining.remove(&next);
        placed[next.1] = true;
        order.push(next.1);
    }
    let mut slots: Vec<Option<T>> = tables.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Inclusive date range on one timestamp column (analytics profile).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateFilter {
    pub column: String,
    /// `YYYY-MM-DD`, inclusive.
    pub from: chrono::NaiveDate,
    /// `YYYY-MM-DD`, inclusive (the whole day).
    pub to: chrono::NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableFormat {
    /// One JSON object per line; types preserved exactly (see SPEC, profiles).
    Ndjson,
    /// RFC 4180 CSV with a header row, optionally filtered by date.
    Csv { date_filter: Option<DateFilter> },
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableStats {
    pub rows: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NativeInfo {
    /// e.g. `sqlite3` or `pg_dump-custom`.
    pub format: String,
    /// Entry name under `database/`, e.g. `tenant.sqlite`.
    pub file_name: String,
}

/// Tenant databases of one backend.
pub trait TenantStore: Send + Sync + 'static {
    /// e.g. `sqlite`, `postgresql`.
    fn engine(&self) -> &'static str;
    /// e.g. `database`, `schema`, `row`.
    fn isolation(&self) -> &'static str;
    fn tenant_exists(&self, tenant: &TenantId) -> Result<bool, PortError>;
    /// The tenant's table names as they are now, to refuse a request naming
    /// an unknown table before a workflow exists (the export checks again in
    /// its snapshot). `tenant_not_found` if the tenant has no data.
    fn list_tables(&self, tenant: &TenantId) -> Result<Vec<String>, PortError>;
    /// Open one consistent snapshot of the tenant. `work_dir` is private to
    /// the calling workflow; an implementation may keep files there (SQLite
    /// keeps a consistent copy, so a resumed step reads the same snapshot).
    /// Calling it again with the same `work_dir` must be safe.
    fn snapshot(
        &self,
        tenant: &TenantId,
        work_dir: &Path,
    ) -> Result<Box<dyn TenantSnapshot>, PortError>;
    /// Open the tenant's database for writing (rehydration). `work_dir` is
    /// private to the calling workflow, as for [`TenantStore::snapshot`].
    fn writer(
        &self,
        tenant: &TenantId,
        work_dir: &Path,
    ) -> Result<Box<dyn super::tenant_writer::TenantWriter>, PortError> {
        let _ = (tenant, work_dir);
        Err(PortError::permanent(
            "rehydrate_unsupported",
            format!("the {} tenant store cannot write yet", self.engine()),
        ))
    }
}

/// One consistent, read-only view of a tenant's data. Blocking: callers run it
/// on a blocking thread.
pub trait TenantSnapshot: Send {
    fn schema(&mut self) -> Result<SchemaInfo, PortError>;
    /// Whether this snapshot survives a process restart (then per-table
    /// checkpoints taken from it stay valid).
    fn durable(&self) -> bool;
    /// Stream one table to `out`, never holding it whole in memory.
    /// `progress` is called with the running row count every few thousand rows.
    fn dump_table(
        &mut self,
        table: &str,
        format: &TableFormat,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<TableStats, PortError>;
    /// Stream the database's own format of the whole tenant to `out`.
    fn dump_native(&mut self, out: &mut dyn Write) -> Result<NativeInfo, PortError>;
}
