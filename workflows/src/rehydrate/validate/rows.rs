//! Every row of every lite table file: it parses, it fits, and its keys are
//! collected for the key checks.
//!
//! A row is one line: a JSON object with exactly the table's columns, each
//! once, each value of a kind its column's type accepts (`value_kind.rs`),
//! no `null` in a NOT NULL column (as either the bundle or the tenant
//! declares it), and the line written exactly as ferry's encoders write
//! it (`canonical.rs`: what the load's verification will hash), else
//! `row_not_canonical`. A line longer than [`Limits::line_bytes_max`] is refused
//! without being held. The row count must equal the manifest's. Each valid
//! row adds the print of its primary key, of each key its table is
//! referenced by, and of each foreign key it holds (unless a column of it
//! is null) to a sorter (`keys.rs`); `key_check.rs` then compares them.
//! The file is read once, streamed, whatever its size.

use super::canonical;
use super::key_check;
use super::keys::{KeyRecord, KeySorter, KeyStats, SortedKeys};
use super::report::{Line, Report};
use super::value_kind::{check, family_of, Family};
use super::{Limits, LiteTable, Rejection};
use crate::ports::tenant::SchemaInfo;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

const READ_BUFFER_BYTES: usize = 256 * 1024;

pub(super) struct ColumnPlan {
    pub name: String,
    /// The name as a JSON string, as the encoders write it.
    pub json_name: String,
    pub family: Family,
    pub not_null: bool,
}

/// A set of columns whose values are printed; `unique` for the primary key.
pub(super) struct KeySpec {
    pub columns: Vec<usize>,
    pub unique: bool,
}

pub(super) struct TablePlan {
    pub name: String,
    pub path: PathBuf,
    pub rows: u64,
    pub columns: Vec<ColumnPlan>,
    index: HashMap<String, usize>,
    pub primary_key: Vec<usize>,
    pub keys: Vec<KeySpec>,
}

/// A foreign key checked within the bundle.
pub(super) struct Edge {
    pub child: usize,
    pub columns: Vec<usize>,
    pub parent: usize,
    /// Index into the parent's `keys`.
    pub parent_key: usize,
}

/// What to check, derived from the schemas once.
pub(super) struct Plan {
    pub tables: Vec<TablePlan>,
    pub edges: Vec<Edge>,
}

impl Plan {
    /// Rows are checked against the tenant's column types (what the import
    /// writes into) and the stricter nullability of the two schemas; keys
    /// are the tenant's. Foreign keys are checked only where the parent is
    /// in scope too, and not at all in `merge` mode.
    pub fn new(
        bundle: &SchemaInfo,
        target: &SchemaInfo,
        tables: &[LiteTable],
        merge: bool,
    ) -> Plan {
        let mut plan = Plan {
            tables: Vec::new(),
            edges: Vec::new(),
        };
        for lt in tables {
            let Some(b) = bundle.table(&lt.name) else {
                continue;
            };
            let t = target.table(&lt.name).unwrap_or(b);
            let columns: Vec<ColumnPlan> = b
                .columns
                .iter()
                .map(|c| {
                    let now = t.columns.iter().find(|n| n.name == c.name).unwrap_or(c);
                    ColumnPlan {
                        name: c.name.clone(),
                        json_name: canonical::json_string(&c.name),
                        family: family_of(&target.engine, &now.data_type),
                        not_null: !c.nullable || !now.nullable,
                    }
                })
                .collect();
            let index: HashMap<String, usize> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name.clone(), i))
                .collect();
            let primary_key: Vec<usize> = t
                .primary_key
                .iter()
                .filter_map(|c| index.get(c).copied())
                .collect();
            let keys = if primary_key.is_empty() {
                Vec::new()
            } else {
                vec![KeySpec {
                    columns: primary_key.clone(),
                    unique: true,
                }]
            };
            plan.tables.push(TablePlan {
                name: lt.name.clone(),
                path: lt.path.clone(),
                rows: lt.rows,
                columns,
                index,
                primary_key,
                keys,
            });
        }
        if merge {
            return plan;
        }
        for child in 0..plan.tables.len() {
            let Some(t) = target.table(&plan.tables[child].name) else {
                continue;
            };
            for fk in &t.foreign_keys {
                let Some(parent) = plan.tables.iter().position(|p| p.name == fk.ref_table) else {
                    continue;
                };
                let cols = |tp: &TablePlan, names: &[String]| -> Option<Vec<usize>> {
                    names.iter().map(|n| tp.index.get(n).copied()).collect()
                };
                let (Some(columns), Some(ref_columns)) = (
                    cols(&plan.tables[child], &fk.columns),
                    cols(&plan.tables[parent], &fk.ref_columns),
                ) else {
                    continue;
                };
                let keys = &mut plan.tables[parent].keys;
                let parent_key = match keys.iter().position(|k| k.columns == ref_columns) {
                    Some(i) => i,
                    None => {
                        keys.push(KeySpec {
                            columns: ref_columns,
                            unique: false,
                        });
                        keys.len() - 1
                    }
                };
                plan.edges.push(Edge {
                    child,
                    columns,
                    parent,
                    parent_key,
                });
            }
        }
        plan
    }
}

/// Why the row stage failed.
pub(super) enum RowsFailed {
    /// ferry's own I/O; no report was put in place.
    Io(Rejection),
    /// Rows or keys are bad; the report is in place.
    Rejected(Rejection),
}

/// A row as written: its members in order, duplicates kept, each value
/// with its exact text.
struct RawRow<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for RawRow<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RowVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for RowVisitor<'a> {
            type Value = RawRow<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<RawRow<'a>, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = m.next_entry::<String, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(RawRow(members))
            }
        }
        d.deserialize_map(RowVisitor(std::marker::PhantomData))
    }
}

/// A row that does not fit: the column at fault (if one), why, and the
/// values read (when it was an object), to quote its key.
pub(super) struct Invalid {
    /// `row_invalid`, or `row_not_canonical` for a valid row that is not
    /// written as ferry writes it.
    pub code: &'static str,
    pub column: Option<String>,
    pub message: String,
    pub values: Option<Vec<Option<Value>>>,
}

/// Parse one line into its values by column, checking every rule.
pub(super) fn parse_row(table: &TablePlan, line: &[u8]) -> Result<Vec<Value>, Invalid> {
    let raw: RawRow = serde_json::from_slice(line).map_err(|e| {
        let message = format!("not a JSON object: {e}");
        Invalid {
            code: "row_invalid",
            column: None,
            message,
            values: None,
        }
    })?;
    let mut values: Vec<Option<Value>> = vec![None; table.columns.len()];
    let mut fault = None;
    let mut in_order = true;
    for (at, (name, raw_value)) in raw.0.iter().enumerate() {
        match table.index.get(name) {
            None => {
                fault.get_or_insert((name.clone(), "is not a column of the table".to_owned()));
            }
            Some(&i) if values[i].is_some() => {
                fault.get_or_insert((name.clone(), "appears twice".to_owned()));
            }
            Some(&i) => {
                in_order &= i == at;
                let value = serde_json::from_str(raw_value.get()).map_err(|e| Invalid {
                    code: "row_invalid",
                    column: Some(name.clone()),
                    message: format!("not a JSON value: {e}"),
                    values: None,
                })?;
                values[i] = Some(value);
            }
        }
    }
    for (c, v) in table.columns.iter().zip(&values) {
        if fault.is_some() {
            break;
        }
        let why = match v {
            None => Some("is missing".to_owned()),
            Some(Value::Null) if c.not_null => Some("is null in a NOT NULL column".to_owned()),
            Some(Value::Null) => None,
            Some(v) => check(c.family, v).err().map(|e| format!("value {v} {e}")),
        };
        if let Some(why) = why {
            fault = Some((c.name.clone(), why));
        }
    }
    if let Some((column, message)) = fault {
        return Err(Invalid {
            code: "row_invalid",
            column: Some(column),
            message,
            values: Some(values),
        });
    }
    if let Err((column, message)) = canonical_form(table, line, &raw, in_order) {
        return Err(Invalid {
            code: "row_not_canonical",
            column,
            message,
            values: Some(values),
        });
    }
    Ok(values
        .into_iter()
        .map(|v| v.unwrap_or(Value::Null))
        .collect())
}

/// Whether a row with exactly the table's columns is written byte for byte
/// as the encoders write it: its values first, then the line as a whole
/// (column order, no whitespace).
fn canonical_form(
    table: &TablePlan,
    line: &[u8],
    raw: &RawRow<'_>,
    in_order: bool,
) -> Result<(), (Option<String>, String)> {
    for (name, value) in &raw.0 {
        let family = table.columns[table.index[name]].family;
        if let Err(why) = canonical::check_value(family, value) {
            return Err((
                Some(name.clone()),
                format!(
                    "value {} {why}, so the load could not verify it",
                    value.get()
                ),
            ));
        }
    }
    if !in_order {
        return Err((
            None,
            "the columns are not in the table's order, as ferry writes them".to_owned(),
        ));
    }
    let mut expected = Vec::with_capacity(line.len());
    expected.push(b'{');
    for (i, (name, value)) in raw.0.iter().enumerate() {
        if i > 0 {
            expected.push(b',');
        }
        expected.extend_from_slice(table.columns[table.index[name]].json_name.as_bytes());
        expected.push(b':');
        expected.extend_from_slice(value.get().as_bytes());
    }
    expected.push(b'}');
    if expected != line {
        return Err((
            None,
            "the row is not written as ferry writes rows (whitespace, escapes or a trailing \\r)"
                .to_owned(),
        ));
    }
    Ok(())
}

/// The given columns of a row as a JSON object, if all are present.
pub(super) fn key_json(
    table: &TablePlan,
    columns: &[usize],
    values: &[Option<Value>],
) -> Option<Value> {
    let mut m = serde_json::Map::new();
    for &i in columns {
        m.insert(table.columns[i].name.clone(), values.get(i)?.clone()?);
    }
    (!m.is_empty()).then_some(Value::Object(m))
}

/// One line of a table file.
pub(super) enum ReadLine {
    Eof,
    /// A line (without its `\n`) of this many bytes in the file.
    Line(u64),
    /// A line longer than allowed, skipped; its bytes in the file.
    TooLong(u64),
}

/// Read one line into `buf`, holding at most `max` bytes of it.
pub(super) fn read_line(
    r: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<ReadLine> {
    buf.clear();
    let mut consumed = 0u64;
    let mut too_long = false;
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return Ok(match (consumed, too_long) {
                (0, _) => ReadLine::Eof,
                (n, true) => ReadLine::TooLong(n),
                (n, false) => ReadLine::Line(n),
            });
        }
        let (part, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (&avail[..i], Some(i + 1)),
            None => (avail, None),
        };
        if !too_long && buf.len() + part.len() <= max {
            buf.extend_from_slice(part);
        } else {
            too_long = true;
            buf.clear();
        }
        let used = done.unwrap_or(avail.len());
        r.consume(used);
        consumed += used as u64;
        if done.is_some() {
            return Ok(if too_long {
                ReadLine::TooLong(consumed)
            } else {
                ReadLine::Line(consumed)
            });
        }
    }
}

/// Removes the work directory of the key files, however the check ends.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The sorters of one table: its own keys, then its foreign keys.
struct TableSorters {
    keys: Vec<KeySorter>,
    edges: Vec<(usize, KeySorter)>,
}

/// Check every row and key of `plan`, writing failures to the report at
/// `report_path`. The rows checked and how the key sort went.
pub(super) fn check_all(
    plan: &Plan,
    work: &Path,
    report_path: &Path,
    limits: &Limits,
) -> Result<(u64, KeyStats), RowsFailed> {
    let io = |e: io::Error| RowsFailed::Io(Rejection::io(e));
    std::fs::create_dir_all(work).map_err(io)?;
    let _work = WorkDir(work.to_owned());
    let mut report = Report::create(report_path, limits.report_errors_max).map_err(io)?;
    let mut stats = KeyStats::default();
    let mut rows_checked = 0u64;
    let mut sorted: Vec<Vec<SortedKeys>> = Vec::new();
    let mut child_sorted: Vec<Option<SortedKeys>> = plan.edges.iter().map(|_| None).collect();
    for (ti, table) in plan.tables.iter().enumerate() {
        let edges: Vec<usize> = (0..plan.edges.len())
            .filter(|&e| plan.edges[e].child == ti)
            .collect();
        // One chunk budget per table, shared by all its sorters.
        let chunk = (limits.sort_chunk_records / (table.keys.len() + edges.len()).max(1)).max(1024);
        let mut sorters = TableSorters {
            keys: (0..table.keys.len())
                .map(|k| KeySorter::new(work, format!("t{ti}k{k}"), chunk))
                .collect(),
            edges: edges
                .iter()
                .map(|&e| (e, KeySorter::new(work, format!("e{e}"), chunk)))
                .collect(),
        };
        rows_checked +=
            scan_table(plan, table, &mut sorters, &mut report, &mut stats, limits).map_err(io)?;
        let mut done = Vec::new();
        for s in sorters.keys {
            done.push(s.finish(&mut stats).map_err(io)?);
        }
        for (e, s) in sorters.edges {
            child_sorted[e] = Some(s.finish(&mut stats).map_err(io)?);
        }
        sorted.push(done);
    }
    key_check::check_keys(plan, &sorted, &child_sorted, &mut report, limits).map_err(io)?;
    match report.finish().map_err(io)? {
        Some(r) => Err(RowsFailed::Rejected(r)),
        None => Ok((rows_checked, stats)),
    }
}

/// Stream one table file; the rows read.
fn scan_table(
    plan: &Plan,
    table: &TablePlan,
    sorters: &mut TableSorters,
    report: &mut Report,
    stats: &mut KeyStats,
    limits: &Limits,
) -> io::Result<u64> {
    let mut r = BufReader::with_capacity(READ_BUFFER_BYTES, std::fs::File::open(&table.path)?);
    let mut buf = Vec::new();
    let (mut line, mut offset) = (0u64, 0u64);
    let mut encoded: Vec<Vec<u8>> = Vec::new();
    loop {
        let at = offset;
        let read = read_line(&mut r, &mut buf, limits.line_bytes_max)?;
        let bytes = match read {
            ReadLine::Eof => break,
            ReadLine::Line(n) | ReadLine::TooLong(n) => n,
        };
        offset += bytes;
        line += 1;
        let row_line = |column: Option<&'static str>, key, message| Line {
            code: "row_invalid",
            table: Some(&table.name),
            line: Some(line),
            column,
            key,
            message,
        };
        if let ReadLine::TooLong(_) = read {
            let message = format!("the row is longer than {} bytes", limits.line_bytes_max);
            report.record(row_line(None, None, message))?;
            continue;
        }
        let values = match parse_row(table, &buf) {
            Ok(values) => values,
            Err(invalid) => {
                let key =
                    (invalid.values.as_ref()).and_then(|v| key_json(table, &table.primary_key, v));
                report.record(Line {
                    code: invalid.code,
                    column: invalid.column.as_deref(),
                    ..row_line(None, key, invalid.message)
                })?;
                continue;
            }
        };
        encoded.clear();
        for v in &values {
            encoded.push(serde_json::to_vec(v)?);
        }
        // Its own keys, then the foreign keys it holds; a key with a null
        // column has no print (SQL's MATCH SIMPLE).
        let own = table.keys.iter().map(|k| &k.columns).zip(&mut sorters.keys);
        let held = (sorters.edges.iter_mut()).map(|(e, s)| (&plan.edges[*e].columns, s));
        for (cols, sorter) in own.chain(held) {
            let parts: Option<Vec<&[u8]>> = cols
                .iter()
                .map(|&i| (!values[i].is_null()).then_some(encoded[i].as_slice()))
                .collect();
            if let Some(parts) = parts {
                let print = KeyRecord::print_of(&parts);
                sorter.push(
                    KeyRecord {
                        print,
                        line,
                        offset: at,
                    },
                    stats,
                )?;
            }
        }
    }
    if line != table.rows {
        report.record(Line {
            code: "row_count_mismatch",
            table: Some(&table.name),
            message: format!("{} rows, the manifest says {}", line, table.rows),
            ..Line::default()
        })?;
    }
    Ok(line)
}
