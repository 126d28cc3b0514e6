//! Key uniqueness and foreign keys, by merging sorted key prints.
//!
//! Equal primary keys are neighbours in a table's sorted prints, so one
//! pass finds every duplicate. A foreign key resolves when its print is
//! among the parent's prints for the referenced columns; both sides are
//! sorted, so one merge-join finds every dangling reference. Memory is two
//! read buffers whatever the table sizes. For the report, the row at fault
//! is read again at its recorded offset to quote its key values, but only
//! while the report has room for another line.

use super::keys::{KeyRecord, SortedKeys};
use super::report::{Line, Report};
use super::rows::{key_json, parse_row, read_line, Plan, ReadLine, TablePlan};
use super::Limits;
use serde_json::Value;
use std::io::{self, BufReader, Seek, SeekFrom};

/// The values of `columns` of the row at `offset` of the table's file.
fn quote(
    table: &TablePlan,
    offset: u64,
    columns: &[usize],
    limits: &Limits,
) -> io::Result<Option<Value>> {
    let mut f = std::fs::File::open(&table.path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut r = BufReader::new(f);
    let mut buf = Vec::new();
    if !matches!(
        read_line(&mut r, &mut buf, limits.line_bytes_max)?,
        ReadLine::Line(_)
    ) {
        return Ok(None);
    }
    Ok(parse_row(table, &buf).ok().and_then(|values| {
        key_json(
            table,
            columns,
            &values.into_iter().map(Some).collect::<Vec<_>>(),
        )
    }))
}

fn column_names(table: &TablePlan, columns: &[usize]) -> String {
    columns
        .iter()
        .map(|&i| table.columns[i].name.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Report every duplicate primary key and dangling foreign key.
/// `sorted[t][k]` are the prints of key `k` of table `t`; `child[e]` those
/// of foreign key `e`.
pub(super) fn check_keys(
    plan: &Plan,
    sorted: &[Vec<SortedKeys>],
    child: &[Option<SortedKeys>],
    report: &mut Report,
    limits: &Limits,
) -> io::Result<()> {
    for (table, keys) in plan.tables.iter().zip(sorted) {
        for (spec, prints) in table.keys.iter().zip(keys).filter(|(s, _)| s.unique) {
            let columns = column_names(table, &spec.columns);
            let mut first: Option<KeyRecord> = None;
            for rec in prints.iter()? {
                let rec = rec?;
                match first {
                    Some(f) if f.print == rec.print => {
                        let key = match report.has_room() {
                            true => quote(table, rec.offset, &spec.columns, limits)?,
                            false => None,
                        };
                        report.record(Line {
                            code: "duplicate_key",
                            table: Some(&table.name),
                            line: Some(rec.line),
                            column: Some(columns.as_str()),
                            key,
                            message: format!("the same primary key as line {}", f.line),
                        })?;
                    }
                    _ => first = Some(rec),
                }
            }
        }
    }
    for (edge, prints) in plan.edges.iter().zip(child) {
        let Some(prints) = prints else { continue };
        let table = &plan.tables[edge.child];
        let parent = &plan.tables[edge.parent];
        let columns = column_names(table, &edge.columns);
        let parent_columns = column_names(parent, &parent.keys[edge.parent_key].columns);
        let mut parents = sorted[edge.parent][edge.parent_key].iter()?.peekable();
        for rec in prints.iter()? {
            let rec = rec?;
            let mut found = false;
            while let Some(p) = parents.peek() {
                match p {
                    Ok(p) if p.print < rec.print => {
                        parents.next();
                    }
                    Ok(p) => {
                        found = p.print == rec.print;
                        break;
                    }
                    Err(_) => return Err(parents.next().expect("peeked").expect_err("an error")),
                }
            }
            if found {
                continue;
            }
            let key = match report.has_room() {
                true => quote(table, rec.offset, &edge.columns, limits)?,
                false => None,
            };
            report.record(Line {
                code: "dangling_foreign_key",
                table: Some(&table.name),
                line: Some(rec.line),
                column: Some(columns.as_str()),
                key,
                message: format!(
                    "references {}({parent_columns}), which has no such row in the bundle",
                    parent.name
                ),
            })?;
        }
    }
    Ok(())
}
