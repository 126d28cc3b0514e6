//! What the tenant writer tests of both stores share: feeding NDJSON text
//! to a writer's one atomic [`TenantWriter::load`], an observer that
//! records (or cancels) its progress, and the merge scenario every store
//! must pass.

use ferry_workflows::ports::tenant::{SchemaInfo, TableFormat, TenantSnapshot};
use ferry_workflows::ports::tenant_writer::{
    LoadObserver, LoadOutcome, LoadPlan, LoadSource, TableDigest, TableSource, TableWrite,
    TenantWriter, Verify, WriteMode, VERIFY_MISMATCH,
};
use ferry_workflows::ports::PortError;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Cursor};
use std::path::Path;

/// The code of the error [`Recorder`] ends a load with when told to.
pub const CANCELLED: &str = "cancelled";

pub fn reader(text: &str) -> BufReader<Cursor<Vec<u8>>> {
    BufReader::new(Cursor::new(text.as_bytes().to_vec()))
}

/// The rows an NDJSON text holds (its lines that are not blank).
pub fn lines(text: &[u8]) -> u64 {
    text.split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count() as u64
}

/// A [`LoadObserver`] that records the last progress of every table, and
/// can end the load like a cancel: when the `fail_at_table`-th table
/// (0-based, in the order they report) first reports progress, or just
/// before the commit.
#[derive(Debug, Default)]
pub struct Recorder {
    /// The last row count reported per table.
    pub last: BTreeMap<String, u64>,
    /// The tables in the order they first reported.
    pub order: Vec<String>,
    pub fail_at_table: Option<usize>,
    pub fail_before_commit: bool,
    /// `before_commit` was called (and did not fail).
    pub committing: bool,
}

impl Recorder {
    /// Cancels the load when the second table reports: after the first
    /// table was loaded.
    pub fn cancel_after_first_table() -> Self {
        Recorder {
            fail_at_table: Some(1),
            ..Recorder::default()
        }
    }

    /// Cancels the load when everything is loaded and verified.
    pub fn cancel_before_commit() -> Self {
        Recorder {
            fail_before_commit: true,
            ..Recorder::default()
        }
    }

    fn cancelled() -> PortError {
        PortError::permanent(CANCELLED, "the test cancelled the load")
    }
}

impl LoadObserver for Recorder {
    fn rows(&mut self, table: &str, rows: u64) -> Result<(), PortError> {
        if !self.last.contains_key(table) {
            self.order.push(table.to_owned());
            if self.fail_at_table == Some(self.order.len() - 1) {
                return Err(Self::cancelled());
            }
        }
        let last = self.last.entry(table.to_owned()).or_default();
        assert!(
            rows >= *last,
            "{table}: progress went back from {last} to {rows}"
        );
        *last = rows;
        Ok(())
    }

    fn before_commit(&mut self) -> Result<(), PortError> {
        if self.fail_before_commit {
            return Err(Self::cancelled());
        }
        self.committing = true;
        Ok(())
    }
}

/// One `lite` load of `tables` (name, mode, NDJSON), verified by `verify`.
pub fn load_lite(
    writer: &mut dyn TenantWriter,
    tables: &[(&str, WriteMode, &[u8])],
    verify: Verify,
    observer: &mut dyn LoadObserver,
) -> Result<LoadOutcome, PortError> {
    load_lite_with(writer, tables, verify, false, false, observer)
}

/// [`load_lite`] with `unless_verified` and `trial` as given.
pub fn load_lite_with(
    writer: &mut dyn TenantWriter,
    tables: &[(&str, WriteMode, &[u8])],
    verify: Verify,
    unless_verified: bool,
    trial: bool,
    observer: &mut dyn LoadObserver,
) -> Result<LoadOutcome, PortError> {
    let mut readers: Vec<BufReader<Cursor<Vec<u8>>>> = tables
        .iter()
        .map(|(_, _, text)| BufReader::new(Cursor::new(text.to_vec())))
        .collect();
    let sources = tables
        .iter()
        .zip(readers.iter_mut())
        .map(|((table, mode, _), rows)| TableSource {
            table: (*table).to_owned(),
            mode: mode.clone(),
            rows: rows as &mut dyn BufRead,
        })
        .collect();
    writer.load(
        LoadPlan {
            source: LoadSource::Lite(sources),
            verify,
            unless_verified,
            trial,
        },
        observer,
    )
}

/// Load `text` into `table` as a load of its own: a replace verified by
/// the table's row count (its lines), a merge by [`Verify::Merged`].
/// Checks the observer saw the table's rows; returns what was written.
pub fn import_one(
    writer: &mut dyn TenantWriter,
    table: &str,
    mode: WriteMode,
    text: &str,
) -> Result<TableWrite, PortError> {
    let verify = match mode {
        WriteMode::Replace => Verify::Counts(vec![(table.to_owned(), lines(text.as_bytes()))]),
        WriteMode::Merge { .. } => Verify::Merged,
    };
    let mut observer = Recorder::default();
    let mut outcome = load_lite(
        writer,
        &[(table, mode, text.as_bytes())],
        verify,
        &mut observer,
    )?;
    assert!(observer.committing, "before_commit was called");
    assert!(!outcome.unchanged);
    assert_eq!(outcome.tables.len(), 1, "{outcome:?}");
    let write = outcome.tables.remove(0);
    assert_eq!(write.table, table);
    assert_eq!(
        observer.last.get(table).copied(),
        Some(lines(text.as_bytes())),
        "the last progress is the rows read"
    );
    Ok(write)
}

/// The merge scenario on a table `people (id primary key, ext unique,
/// email unique, name, score)` holding a, b and c: `bundle` leaves a as it
/// is, changes b and c and adds d. The preview's counts are what the merge
/// then does; repeating the merge changes nothing; a new row taking a's
/// email is a conflict; the empty key is the primary key; a key without a
/// unique index is refused.
pub fn check_merge(writer: &mut dyn TenantWriter, bundle: &str) {
    let key = vec!["ext".to_owned()];
    let preview = writer
        .preview_merge("people", &key, &mut reader(bundle))
        .unwrap();
    assert_eq!(
        (
            preview.will_insert,
            preview.will_update,
            preview.unchanged,
            preview.conflicts
        ),
        (1, 2, 1, 0)
    );
    assert_eq!(
        writer.count_rows("people").unwrap(),
        3,
        "a preview writes nothing"
    );
    for expected in [(1, 2), (0, 0)] {
        let merge = WriteMode::Merge { key: key.clone() };
        let writes = import_one(writer, "people", merge, bundle).unwrap();
        assert_eq!((writes.inserted, writes.updated), expected);
    }
    let clash = r#"{"id":9,"ext":"e","email":"a@x","name":"Eve","score":null}"#;
    let preview = writer
        .preview_merge("people", &key, &mut reader(clash))
        .unwrap();
    assert_eq!((preview.will_insert, preview.conflicts), (1, 1));
    let preview = writer
        .preview_merge("people", &[], &mut reader(bundle))
        .unwrap();
    assert_eq!(
        (preview.will_insert, preview.will_update, preview.unchanged),
        (0, 0, 4)
    );
    for bad in ["name", "nope"] {
        let err = writer
            .preview_merge("people", &[bad.to_owned()], &mut reader(bundle))
            .unwrap_err();
        assert_eq!(
            (err.code.as_str(), err.retryable),
            ("merge_key_invalid", false)
        );
    }
}

/// What [`import_all`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Imported {
    /// Rows the load deleted from the replaced tables.
    pub deleted: u64,
    /// Rows it inserted.
    pub rows: u64,
}

/// Replace every table of an export with **one** load, verified by each
/// table's row count. Checks the progress and the rows of each table.
pub fn import_all(
    writer: &mut dyn TenantWriter,
    schema: &SchemaInfo,
    ndjson: &BTreeMap<String, Vec<u8>>,
) -> Imported {
    let tables: Vec<(&str, WriteMode, &[u8])> = schema
        .tables
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                WriteMode::Replace,
                ndjson[&t.name].as_slice(),
            )
        })
        .collect();
    let counts = tables
        .iter()
        .map(|(t, _, text)| ((*t).to_owned(), lines(text)))
        .collect();
    let mut observer = Recorder::default();
    let outcome = load_lite(writer, &tables, Verify::Counts(counts), &mut observer)
        .unwrap_or_else(|e| panic!("importing every table: {e}"));
    assert!(observer.committing, "before_commit was called");
    assert_eq!(outcome.tables.len(), tables.len(), "{outcome:?}");
    let mut rows = 0;
    for (table, _, text) in &tables {
        let write = outcome
            .tables
            .iter()
            .find(|w| w.table == *table)
            .unwrap_or_else(|| panic!("{table} is not in {outcome:?}"));
        assert_eq!(
            observer.last.get(*table).copied(),
            Some(write.inserted),
            "the last progress of {table} is its row count"
        );
        assert_eq!((write.inserted, write.updated), (lines(text), 0), "{table}");
        rows += write.inserted;
    }
    Imported {
        deleted: outcome.deleted,
        rows,
    }
}

/// Every table of an export as [`Verify::Digests`] expects it.
pub fn digests(
    ndjson: &BTreeMap<String, Vec<u8>>,
    blake3: &BTreeMap<String, String>,
) -> Vec<TableDigest> {
    ndjson
        .iter()
        .map(|(table, text)| TableDigest {
            table: table.clone(),
            rows: lines(text),
            blake3: blake3[table].clone(),
        })
        .collect()
}

/// One load of a native dump, verified as rehydration does: by the row
/// counts the dump itself holds.
pub fn restore_native(
    writer: &mut dyn TenantWriter,
    format: &str,
    dump: &Path,
) -> Result<LoadOutcome, PortError> {
    let counts = writer.native_row_counts(format, dump)?;
    let mut observer = Recorder::default();
    let outcome = load_native(writer, format, dump, Verify::Counts(counts), &mut observer)?;
    assert!(observer.committing, "before_commit was called");
    for write in &outcome.tables {
        assert_eq!(
            observer.last.get(&write.table).copied(),
            Some(write.inserted),
            "the last progress of {} is its row count",
            write.table
        );
    }
    Ok(outcome)
}

/// One load of a native dump, verified by `verify`.
pub fn load_native(
    writer: &mut dyn TenantWriter,
    format: &str,
    dump: &Path,
    verify: Verify,
    observer: &mut dyn LoadObserver,
) -> Result<LoadOutcome, PortError> {
    writer.load(
        LoadPlan {
            source: LoadSource::Native {
                format: format.to_owned(),
                dump,
            },
            verify,
            unless_verified: false,
            trial: false,
        },
        observer,
    )
}

/// The content hash of every table of `schema`.
pub fn hashes(writer: &mut dyn TenantWriter, schema: &SchemaInfo) -> BTreeMap<String, String> {
    schema
        .tables
        .iter()
        .map(|t| (t.name.clone(), writer.content_hash(&t.name).unwrap().blake3))
        .collect()
}

/// Load `text` into `table` and expect it refused with the permanent
/// `code`, the table left as it was. Returns the error.
pub fn assert_refused(
    writer: &mut dyn TenantWriter,
    table: &str,
    mode: WriteMode,
    text: &str,
    code: &str,
) -> PortError {
    let before = writer.content_hash(table).unwrap();
    let err = import_one(writer, table, mode, text).unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), (code, false), "{err}");
    assert_eq!(
        writer.content_hash(table).unwrap(),
        before,
        "{table} changed"
    );
    err
}

/// Every table of an export, to replace (name, mode, NDJSON).
fn replace_all<'a>(
    schema: &'a SchemaInfo,
    ndjson: &'a BTreeMap<String, Vec<u8>>,
) -> Vec<(&'a str, WriteMode, &'a [u8])> {
    schema
        .tables
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                WriteMode::Replace,
                ndjson[&t.name].as_slice(),
            )
        })
        .collect()
}

/// On a tenant that changed since its export (`ndjson`, `blake3`): a
/// replace of every table whose [`Verify::Digests`] expectation is wrong —
/// one table's hash, then one table's row count — loads everything, then
/// fails with the permanent `verify_mismatch` naming the table and commits
/// nothing: every table's content hash is what it was. With the right
/// digests a trial of the load passes and commits nothing either, the load
/// itself commits the export, and repeated with `unless_verified` it finds
/// them in place and writes nothing.
pub fn check_verify_mismatch_commits_nothing(
    writer: &mut dyn TenantWriter,
    schema: &SchemaInfo,
    ndjson: &BTreeMap<String, Vec<u8>>,
    blake3: &BTreeMap<String, String>,
    wrong_table: &str,
) {
    let before = hashes(writer, schema);
    assert_ne!(&before, blake3, "the tenant changed since its export");
    let tables = replace_all(schema, ndjson);
    let right = digests(ndjson, blake3);
    let wrong = |change: &dyn Fn(&mut TableDigest)| {
        let mut expected = right.clone();
        let digest = expected
            .iter_mut()
            .find(|d| d.table == wrong_table)
            .unwrap_or_else(|| panic!("{wrong_table} is not a table of the export"));
        change(digest);
        expected
    };
    let wrong_hash = wrong(&|d| d.blake3 = "0".repeat(64));
    let wrong_rows = wrong(&|d| d.rows += 1);
    for expected in [wrong_hash, wrong_rows] {
        let mut observer = Recorder::default();
        let err = load_lite(writer, &tables, Verify::Digests(expected), &mut observer).unwrap_err();
        assert_eq!(
            (err.code.as_str(), err.retryable),
            (VERIFY_MISMATCH, false),
            "{err}"
        );
        assert!(err.message.contains(wrong_table), "{}", err.message);
        assert_eq!(
            observer.order.len(),
            tables.len(),
            "every table was loaded before the verification"
        );
        assert!(
            !observer.committing,
            "no commit after a failed verification"
        );
        assert_eq!(hashes(writer, schema), before, "nothing was committed");
    }

    // The right digests: a trial passes and is rolled back; the load is
    // committed, and found in place the second time.
    let mut observer = Recorder::default();
    let tried = load_lite_with(
        writer,
        &tables,
        Verify::Digests(right.clone()),
        false,
        true,
        &mut observer,
    )
    .unwrap();
    assert!(!tried.unchanged && tried.deleted > 0, "{tried:?}");
    assert_eq!(observer.order.len(), tables.len());
    assert_eq!(hashes(writer, schema), before, "a trial commits nothing");
    let mut observer = Recorder::default();
    let outcome = load_lite(
        writer,
        &tables,
        Verify::Digests(right.clone()),
        &mut observer,
    )
    .unwrap();
    assert_eq!(outcome, tried, "the trial said what the load does");
    assert_eq!(&hashes(writer, schema), blake3);
    let mut observer = Recorder::default();
    let outcome = load_lite_with(
        writer,
        &tables,
        Verify::Digests(right),
        true,
        false,
        &mut observer,
    )
    .unwrap();
    assert_eq!(
        outcome,
        LoadOutcome {
            unchanged: true,
            ..LoadOutcome::default()
        }
    );
    assert!(observer.last.is_empty(), "nothing was loaded: {observer:?}");
    assert_eq!(&hashes(writer, schema), blake3);
}

/// On a tenant that changed since its export: a replace of every table
/// that its observer cancels once the first table is loaded, or just
/// before the commit, ends with the observer's error and leaves every
/// table exactly as before; the same writer then loads the export.
pub fn check_cancel_commits_nothing(
    writer: &mut dyn TenantWriter,
    schema: &SchemaInfo,
    ndjson: &BTreeMap<String, Vec<u8>>,
    blake3: &BTreeMap<String, String>,
) {
    let before = hashes(writer, schema);
    assert_ne!(&before, blake3, "the tenant changed since its export");
    let tables = replace_all(schema, ndjson);
    assert!(tables.len() > 1);
    let counts: Vec<(String, u64)> = tables
        .iter()
        .map(|(t, _, text)| ((*t).to_owned(), lines(text)))
        .collect();
    for (mut observer, tables_seen) in [
        (Recorder::cancel_after_first_table(), 2),
        (Recorder::cancel_before_commit(), tables.len()),
    ] {
        let err = load_lite(
            writer,
            &tables,
            Verify::Counts(counts.clone()),
            &mut observer,
        )
        .unwrap_err();
        assert_eq!(err.code, CANCELLED, "{err}");
        assert_eq!(observer.order.len(), tables_seen, "{observer:?}");
        assert_eq!(hashes(writer, schema), before, "nothing was committed");
    }
    import_all(writer, schema, ndjson);
    assert_eq!(&hashes(writer, schema), blake3);
}

/// A restore of a native dump into a tenant changed since the dump: one
/// that does not verify, or that its observer cancels half-way or just
/// before its commit, leaves every table as it was; then a restore that
/// verifies brings back the dump's tables (`blake3`).
pub fn check_native_restore_commits_nothing(
    writer: &mut dyn TenantWriter,
    schema: &SchemaInfo,
    format: &str,
    native: &Path,
    blake3: &BTreeMap<String, String>,
) {
    let scrambled = hashes(writer, schema);
    assert_ne!(&scrambled, blake3, "the tenant changed since its dump");
    let counts = writer.native_row_counts(format, native).unwrap();
    let mut wrong = counts.clone();
    wrong[0].1 += 1;
    let err = load_native(
        writer,
        format,
        native,
        Verify::Counts(wrong),
        &mut Recorder::default(),
    )
    .unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), (VERIFY_MISMATCH, false));
    assert_eq!(hashes(writer, schema), scrambled);
    for mut observer in [
        Recorder::cancel_after_first_table(),
        Recorder::cancel_before_commit(),
    ] {
        let err = load_native(
            writer,
            format,
            native,
            Verify::Counts(counts.clone()),
            &mut observer,
        )
        .unwrap_err();
        assert_eq!(err.code, CANCELLED, "{err}");
        assert_eq!(hashes(writer, schema), scrambled);
    }
    restore_native(writer, format, native).unwrap();
    assert_eq!(&hashes(writer, schema), blake3);
}

/// A native dump in a `format` the writer does not restore is refused,
/// permanently.
pub fn assert_native_format_refused(writer: &mut dyn TenantWriter, format: &str, dump: &Path) {
    let err = load_native(
        writer,
        format,
        dump,
        Verify::Counts(Vec::new()),
        &mut Recorder::default(),
    )
    .unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.retryable),
        ("native_format_unsupported", false)
    );
}

/// Each table of `schema` as an export writes it: its `lite` NDJSON, and
/// that text's blake3 (the manifest entry's).
pub fn lite_export(
    snap: &mut dyn TenantSnapshot,
    schema: &SchemaInfo,
) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, String>) {
    let mut ndjson = BTreeMap::new();
    let mut blake3 = BTreeMap::new();
    for table in &schema.tables {
        let mut out = Vec::new();
        snap.dump_table(&table.name, &TableFormat::Ndjson, &mut out, &mut |_| {})
            .unwrap();
        blake3.insert(table.name.clone(), blake3::hash(&out).to_hex().to_string());
        ndjson.insert(table.name.clone(), out);
    }
    (ndjson, blake3)
}
