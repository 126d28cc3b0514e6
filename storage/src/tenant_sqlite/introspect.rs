//! Schema discovery for a tenant's SQLite database.
//!
//! Nothing about the tenant's application is hard-coded: tables come from
//! `sqlite_master`, columns, their defaults and primary keys from
//! `pragma_table_info`, foreign keys from `pragma_foreign_key_list`, unique
//! column sets from the unique indexes of `pragma_index_list` (not the
//! primary key's, not partial ones, no expressions), sequences from
//! `sqlite_sequence` (AUTOINCREMENT) or, for other `INTEGER PRIMARY KEY`
//! tables, the largest key. Tables are returned in foreign-key order
//! (referenced first) so an import can insert them in sequence; ties and
//! cycles are broken by name so the order, and so the schema fingerprint, is
//! the same on every run.
//!
//! The table name is always a bound parameter of the pragma functions;
//! the one query that needs it as an identifier quotes it.

use super::conn::{db_error, quote_ident};
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel::{QueryableByName, RunQueryDsl, SqliteConnection};
use ferry_workflows::ports::tenant::{
    foreign_key_order, ColumnInfo, ForeignKey, SequenceInfo, TableInfo,
};
use ferry_workflows::ports::PortError;
use std::collections::HashMap;

/// Everything introspection learns; `tables` is in foreign-key order.
pub(crate) struct Introspected {
    pub tables: Vec<TableInfo>,
    pub sequences: Vec<SequenceInfo>,
    /// Per table (same order as `tables`), the column to order a dump by
    /// when the table has no primary key: the rowid under a name no user
    /// column hides. `None` when the table has a primary key (dump orders by
    /// it) or when every rowid alias is shadowed.
    pub rowid_names: Vec<Option<&'static str>>,
}

#[derive(QueryableByName)]
struct NameRow {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    decl_type: String,
    #[diesel(sql_type = Integer)]
    not_null: i32,
    #[diesel(sql_type = Integer)]
    pk: i32,
    /// The default as declared (`'B'`, `0`, `CURRENT_TIMESTAMP`).
    #[diesel(sql_type = Nullable<Text>)]
    dflt_value: Option<String>,
}

#[derive(QueryableByName)]
struct UniqueRow {
    #[diesel(sql_type = Text)]
    index_name: String,
    /// NULL for an expression (or the rowid) in the index.
    #[diesel(sql_type = Nullable<Text>)]
    column_name: Option<String>,
}

#[derive(QueryableByName)]
struct ForeignKeyRow {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Text)]
    ref_table: String,
    #[diesel(sql_type = Text)]
    from_col: String,
    /// NULL when the constraint names only the table: it then references
    /// that table's primary key.
    #[diesel(sql_type = Nullable<Text>)]
    to_col: Option<String>,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct SequenceRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    seq: Option<i64>,
}

#[derive(QueryableByName)]
struct MaxRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    max: Option<i64>,
}

/// A table as read, before ordering.
struct RawTable {
    info: TableInfo,
    /// Name of the `INTEGER PRIMARY KEY` column when it aliases the rowid.
    rowid_alias: Option<String>,
}

/// Read the whole schema.
pub(crate) fn introspect(conn: &mut SqliteConnection) -> Result<Introspected, PortError> {
    // Virtual tables are left out: reading them needs their module (FTS5,
    // R*Tree) and their data lives in ordinary shadow tables, which are
    // exported like any other table.
    let names: Vec<NameRow> = diesel::sql_query(
        "SELECT name FROM sqlite_master \
         WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' \
         ORDER BY name",
    )
    .load(conn)
    .map_err(|e| db_error("listing tables", e))?;

    let mut raw = Vec::with_capacity(names.len());
    for NameRow { name } in names {
        raw.push(read_table(conn, name)?);
    }
    resolve_implicit_references(&mut raw);

    let sequences_by_table = read_sqlite_sequence(conn)?;
    let ordered = foreign_key_order(raw, |t: &RawTable| &t.info, true);
    let mut sequences = Vec::new();
    for table in &ordered {
        let Some(column) = &table.rowid_alias else {
            continue;
        };
        let last_value = match sequences_by_table.get(&table.info.name) {
            Some(seq) => *seq,
            None => max_key(conn, &table.info.name, column)?,
        };
        sequences.push(SequenceInfo {
            table: table.info.name.clone(),
            column: column.clone(),
            last_value,
        });
    }
    let rowid_names = ordered
        .iter()
        .map(|t| {
            if !t.info.primary_key.is_empty() {
                return None;
            }
            ["rowid", "_rowid_", "oid"].into_iter().find(|alias| {
                !t.info
                    .columns
                    .iter()
                    .any(|c| c.name.eq_ignore_ascii_case(alias))
            })
        })
        .collect();
    Ok(Introspected {
        tables: ordered.into_iter().map(|t| t.info).collect(),
        sequences,
        rowid_names,
    })
}

fn read_table(conn: &mut SqliteConnection, name: String) -> Result<RawTable, PortError> {
    let context = || format!("reading the schema of table {}", quote_ident(&name));
    // `pragma_table_info` leaves out generated columns, which an import
    // could not insert into anyway (and which the dump, the rehydration and
    // its schema comparison have never seen): they stay out.
    let columns: Vec<ColumnRow> = diesel::sql_query(
        "SELECT name, type AS decl_type, \"notnull\" AS not_null, pk, dflt_value \
         FROM pragma_table_info(?1) ORDER BY cid",
    )
    .bind::<Text, _>(&name)
    .load(conn)
    .map_err(|e| db_error(&context(), e))?;

    let mut pk: Vec<(i32, String)> = columns
        .iter()
        .filter(|c| c.pk > 0)
        .map(|c| (c.pk, c.name.clone()))
        .collect();
    pk.sort();
    let primary_key: Vec<String> = pk.into_iter().map(|(_, n)| n).collect();

    // An `INTEGER PRIMARY KEY` aliases the rowid only in a rowid table and
    // only when spelled exactly `INTEGER`; in every other case SQLite builds
    // a separate primary-key index, which `pragma_index_list` reports with
    // origin `pk`.
    let rowid_alias = match (primary_key.as_slice(), columns.iter().find(|c| c.pk == 1)) {
        ([only], Some(col)) if col.decl_type.eq_ignore_ascii_case("INTEGER") => {
            let pk_indexes: Vec<CountRow> = diesel::sql_query(
                "SELECT count(*) AS n FROM pragma_index_list(?1) WHERE origin = 'pk'",
            )
            .bind::<Text, _>(&name)
            .load(conn)
            .map_err(|e| db_error(&context(), e))?;
            let has_pk_index = pk_indexes.first().is_some_and(|r| r.n > 0);
            (!has_pk_index).then(|| only.clone())
        }
        _ => None,
    };

    let fk_rows: Vec<ForeignKeyRow> = diesel::sql_query(
        "SELECT id, \"table\" AS ref_table, \"from\" AS from_col, \"to\" AS to_col \
         FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
    )
    .bind::<Text, _>(&name)
    .load(conn)
    .map_err(|e| db_error(&context(), e))?;
    let mut foreign_keys: Vec<ForeignKey> = Vec::new();
    let mut last_id = None;
    for row in fk_rows {
        if last_id != Some(row.id) {
            last_id = Some(row.id);
            foreign_keys.push(ForeignKey {
                columns: Vec::new(),
                ref_table: row.ref_table.clone(),
                ref_columns: Vec::new(),
            });
        }
        if let Some(fk) = foreign_keys.last_mut() {
            fk.columns.push(row.from_col);
            // Empty marks "the referenced primary key", filled in later.
            fk.ref_columns.extend(row.to_col);
        }
    }

    let unique = unique_sets(conn, &name, &primary_key).map_err(|e| db_error(&context(), e))?;

    let info = TableInfo {
        columns: columns
            .iter()
            .map(|c| ColumnInfo {
                name: c.name.clone(),
                data_type: c.decl_type.clone(),
                // SQLite tolerates NULL in some primary keys for historical
                // reasons; no sane schema relies on it, and an importer is
                // better served by "keys are never null".
                nullable: c.not_null == 0 && c.pk == 0,
                default: c.dflt_value.clone(),
                ..Default::default()
            })
            .collect(),
        name,
        primary_key,
        foreign_keys,
        unique,
        ..Default::default()
    };
    Ok(RawTable { info, rowid_alias })
}

/// The column sets of `table`'s unique indexes (`UNIQUE` constraints and
/// `CREATE UNIQUE INDEX`), in index order, ordered by index name: not the
/// primary key's, not partial ones, none over an expression.
fn unique_sets(
    conn: &mut SqliteConnection,
    table: &str,
    primary_key: &[String],
) -> Result<Vec<Vec<String>>, diesel::result::Error> {
    let rows: Vec<UniqueRow> = diesel::sql_query(
        "SELECT il.name AS index_name, ii.name AS column_name \
         FROM pragma_index_list(?1) AS il, pragma_index_info(il.name) AS ii \
         WHERE il.\"unique\" = 1 AND il.partial = 0 AND il.origin <> 'pk' \
         ORDER BY il.name, ii.seqno",
    )
    .bind::<Text, _>(table)
    .load(conn)?;
    let mut sets: Vec<(String, Option<Vec<String>>)> = Vec::new();
    for row in rows {
        if sets.last().is_none_or(|(name, _)| *name != row.index_name) {
            sets.push((row.index_name.clone(), Some(Vec::new())));
        }
        if let Some((_, set)) = sets.last_mut() {
            // One expression makes the whole index no column set.
            *set = match (set.take(), row.column_name) {
                (Some(mut columns), Some(column)) => {
                    columns.push(column);
                    Some(columns)
                }
                _ => None,
            };
        }
    }
    let mut out: Vec<Vec<String>> = Vec::new();
    for set in sets.into_iter().filter_map(|(_, set)| set) {
        if set != primary_key && !out.contains(&set) {
            out.push(set);
        }
    }
    Ok(out)
}

/// Make every foreign key name its referenced table as that table is
/// actually spelled (SQLite compares names case-insensitively) and fill in
/// the referenced columns of `REFERENCES t` without a column list.
fn resolve_implicit_references(tables: &mut [RawTable]) {
    let by_lower: HashMap<String, (String, Vec<String>)> = tables
        .iter()
        .map(|t| {
            (
                t.info.name.to_lowercase(),
                (t.info.name.clone(), t.info.primary_key.clone()),
            )
        })
        .collect();
    for table in tables.iter_mut() {
        for fk in &mut table.info.foreign_keys {
            let Some((name, pk)) = by_lower.get(&fk.ref_table.to_lowercase()) else {
                // A dangling reference (SQLite allows it): keep it as declared.
                continue;
            };
            fk.ref_table = name.clone();
            if fk.ref_columns.is_empty() {
                fk.ref_columns = pk.clone();
            }
        }
    }
}

fn read_sqlite_sequence(conn: &mut SqliteConnection) -> Result<HashMap<String, i64>, PortError> {
    let exists: Vec<CountRow> = diesel::sql_query(
        "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'",
    )
    .load(conn)
    .map_err(|e| db_error("reading sequences", e))?;
    // The table appears with the first AUTOINCREMENT table.
    let has_sequences = exists.first().is_some_and(|r| r.n > 0);
    if !has_sequences {
        return Ok(HashMap::new());
    }
    let rows: Vec<SequenceRow> = diesel::sql_query("SELECT name, seq FROM sqlite_sequence")
        .load(conn)
        .map_err(|e| db_error("reading sequences", e))?;
    Ok(rows
        .into_iter()
        .map(|r| (r.name, r.seq.unwrap_or(0)))
        .collect())
}

fn max_key(conn: &mut SqliteConnection, table: &str, column: &str) -> Result<i64, PortError> {
    let sql = format!(
        "SELECT max({}) AS max FROM {}",
        quote_ident(column),
        quote_ident(table)
    );
    let rows: Vec<MaxRow> = diesel::sql_query(sql).load(conn).map_err(|e| {
        db_error(
            &format!("reading the largest key of {}", quote_ident(table)),
            e,
        )
    })?;
    Ok(rows.first().and_then(|r| r.max).unwrap_or(0))
}
