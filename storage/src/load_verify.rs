//! The checks a tenant load makes inside its own transaction, for every
//! store: whether a load that may be skipped has already happened (every
//! digest matches), and whether what was loaded is what the bundle holds
//! before the commit. How a table's rows are counted or hashed is each
//! store's business ([`ReadBack`]); which tables to read and what counts as
//! a mismatch is one thing, here.

use ferry_workflows::ports::tenant_writer::{
    merged_counts, verify_failed, TableDigest, TableWrite, Verify,
};
use ferry_workflows::ports::PortError;

/// A table as the store holds it now, read in the load's transaction.
pub(crate) trait ReadBack {
    /// The table's row count.
    fn rows(&mut self, table: &str) -> Result<u64, PortError>;
    /// The table's row count and the blake3 of the `lite` NDJSON an export
    /// would write for it.
    fn digest(&mut self, table: &str) -> Result<(u64, String), PortError>;
}

/// `unless_verified` with digests to verify: true when every table already
/// holds what the load would write, so the load can be skipped.
pub(crate) fn already_loaded(
    read: &mut impl ReadBack,
    unless_verified: bool,
    verify: &Verify,
) -> Result<bool, PortError> {
    match verify {
        Verify::Digests(expected) if unless_verified => {
            Ok(digest_mismatches(read, expected)?.is_empty())
        }
        _ => Ok(false),
    }
}

/// Check the loaded tables against `verify` (a merge against the row
/// counts `before` it plus what it `written`); the `verify_failed` error
/// names the tables that differ.
pub(crate) fn check_loaded(
    read: &mut impl ReadBack,
    verify: &Verify,
    before: &[(String, u64)],
    written: &[TableWrite],
) -> Result<(), PortError> {
    let bad = match verify {
        Verify::Digests(expected) => digest_mismatches(read, expected)?,
        Verify::Counts(expected) => count_mismatches(read, expected)?,
        Verify::Merged => count_mismatches(read, &merged_counts(before, written))?,
    };
    if bad.is_empty() {
        Ok(())
    } else {
        Err(verify_failed(&bad))
    }
}

/// Tables whose rows or content digest differ from `expected`.
fn digest_mismatches(
    read: &mut impl ReadBack,
    expected: &[TableDigest],
) -> Result<Vec<String>, PortError> {
    let mut bad = Vec::new();
    for d in expected {
        let (rows, blake3) = read.digest(&d.table)?;
        if rows != d.rows || blake3 != d.blake3 {
            bad.push(d.table.clone());
        }
    }
    Ok(bad)
}

/// Tables whose row count differs from `expected`.
fn count_mismatches(
    read: &mut impl ReadBack,
    expected: &[(String, u64)],
) -> Result<Vec<String>, PortError> {
    let mut bad = Vec::new();
    for (name, rows) in expected {
        if read.rows(name)? != *rows {
            bad.push(name.clone());
        }
    }
    Ok(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Tables as (rows, digest), and how often each was read.
    #[derive(Default)]
    struct Held {
        tables: HashMap<String, (u64, String)>,
        reads: usize,
    }

    impl ReadBack for Held {
        fn rows(&mut self, table: &str) -> Result<u64, PortError> {
            self.reads += 1;
            Ok(self.tables.get(table).map_or(0, |t| t.0))
        }
        fn digest(&mut self, table: &str) -> Result<(u64, String), PortError> {
            self.reads += 1;
            Ok(self.tables.get(table).cloned().unwrap_or_default())
        }
    }

    fn held(tables: &[(&str, u64, &str)]) -> Held {
        Held {
            tables: tables
                .iter()
                .map(|(t, n, h)| ((*t).to_owned(), (*n, (*h).to_owned())))
                .collect(),
            reads: 0,
        }
    }

    fn digest(table: &str, rows: u64, blake3: &str) -> TableDigest {
        TableDigest {
            table: table.into(),
            rows,
            blake3: blake3.into(),
        }
    }

    #[test]
    fn a_load_is_skipped_only_when_asked_and_every_digest_matches() {
        let mut read = held(&[("a", 2, "x"), ("b", 1, "y")]);
        let same = Verify::Digests(vec![digest("a", 2, "x"), digest("b", 1, "y")]);
        let other = Verify::Digests(vec![digest("a", 2, "x"), digest("b", 1, "z")]);
        assert!(already_loaded(&mut read, true, &same).unwrap());
        assert!(!already_loaded(&mut read, true, &other).unwrap());
        let reads = read.reads;
        assert!(!already_loaded(&mut read, false, &same).unwrap());
        let counts = Verify::Counts(vec![("a".into(), 2)]);
        assert!(!already_loaded(&mut read, true, &counts).unwrap());
        assert_eq!(
            read.reads, reads,
            "nothing read when the load cannot be skipped"
        );
    }

    #[test]
    fn the_tables_that_differ_are_named() {
        let mut read = held(&[("a", 2, "x"), ("b", 1, "y"), ("c", 5, "w")]);
        let verify = Verify::Digests(vec![
            digest("a", 2, "x"),
            digest("b", 1, "other"),
            digest("c", 4, "w"),
        ]);
        let e = check_loaded(&mut read, &verify, &[], &[]).unwrap_err();
        assert_eq!(e, verify_failed(&["b".into(), "c".into()]));
        let verify = Verify::Counts(vec![("a".into(), 2), ("c".into(), 4)]);
        let e = check_loaded(&mut read, &verify, &[], &[]).unwrap_err();
        assert_eq!(e, verify_failed(&["c".into()]));
        let verify = Verify::Counts(vec![("a".into(), 2), ("b".into(), 1)]);
        check_loaded(&mut read, &verify, &[], &[]).unwrap();
    }

    #[test]
    fn a_merge_holds_the_rows_before_plus_those_inserted() {
        let mut read = held(&[("a", 5, ""), ("b", 3, "")]);
        let written = |a: u64| {
            vec![TableWrite {
                table: "a".into(),
                inserted: a,
                ..TableWrite::default()
            }]
        };
        let before = [("a".to_owned(), 2), ("b".to_owned(), 3)];
        check_loaded(&mut read, &Verify::Merged, &before, &written(3)).unwrap();
        let e = check_loaded(&mut read, &Verify::Merged, &before, &written(2)).unwrap_err();
        assert_eq!(e, verify_failed(&["a".into()]));
    }
}
