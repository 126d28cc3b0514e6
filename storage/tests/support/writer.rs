//! What the tenant writer tests of both stores share: feeding NDJSON text
//! to a writer, and the merge scenario every store must pass.

use ferry_workflows::ports::tenant::SchemaInfo;
use ferry_workflows::ports::tenant_writer::{TableSource, TableWrite, TenantWriter, WriteMode};
use ferry_workflows::ports::PortError;
use std::collections::BTreeMap;
use std::io::{BufReader, Cursor};

pub fn reader(text: &str) -> BufReader<Cursor<Vec<u8>>> {
    BufReader::new(Cursor::new(text.as_bytes().to_vec()))
}

/// Import `text` into `table` as a group of its own.
pub fn import_one(
    writer: &mut dyn TenantWriter,
    table: &str,
    mode: WriteMode,
    text: &str,
) -> Result<TableWrite, PortError> {
    let mut rows = reader(text);
    let mut group = [TableSource {
        table: table.into(),
        mode,
        rows: &mut rows,
    }];
    Ok(writer.import_group(&mut group, &mut |_| {})?.remove(0))
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

/// Import every table of an export (Replace), one group per table, in the
/// schema's foreign-key order; returns the rows. Checks the progress and
/// the row count of each table.
pub fn import_all(
    writer: &mut dyn TenantWriter,
    schema: &SchemaInfo,
    ndjson: &BTreeMap<String, Vec<u8>>,
) -> u64 {
    let mut rows = 0;
    for table in &schema.tables {
        let bytes = &ndjson[&table.name];
        let mut source = BufReader::new(Cursor::new(bytes.clone()));
        let mut group = [TableSource {
            table: table.name.clone(),
            mode: WriteMode::Replace,
            rows: &mut source,
        }];
        let mut last = 0;
        let writes = writer
            .import_group(&mut group, &mut |n| last = n)
            .unwrap_or_else(|e| panic!("importing {}: {e}", table.name));
        assert_eq!(
            writes[0].inserted, last,
            "the last progress is the row count"
        );
        let lines = bytes.iter().filter(|b| **b == b'\n').count() as u64;
        assert_eq!(writes[0].inserted, lines, "{}", table.name);
        rows += writes[0].inserted;
    }
    rows
}

/// The content hash of every table of `schema`.
pub fn hashes(writer: &mut dyn TenantWriter, schema: &SchemaInfo) -> BTreeMap<String, String> {
    schema
        .tables
        .iter()
        .map(|t| (t.name.clone(), writer.content_hash(&t.name).unwrap().blake3))
        .collect()
}

/// Import `text` into `table` and expect it refused with the permanent
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
