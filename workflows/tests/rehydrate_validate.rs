//! Validation of rehydration bundles, on real files: good lite and native
//! bundles pass with what they hold; a corpus of bad bundles is refused,
//! each with its own code, leaving nothing extracted; key checks of a
//! million rows spill to sorted run files instead of memory.

mod validate_support;

use ed25519_dalek::VerifyingKey;
use ferry_engine::TenantId;
use ferry_workflows::bundle::BundleSigner;
use ferry_workflows::ports::tenant::SchemaInfo;
use ferry_workflows::rehydrate::validate::{
    validate, BundleData, Limits, Rejection, Request, Validated,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use validate_support::*;

struct Ctx {
    dir: tempfile::TempDir,
    signer: BundleSigner,
    key: VerifyingKey,
    target: SchemaInfo,
    tables: Option<Vec<String>>,
    merge: bool,
    limits: Limits,
}

impl Ctx {
    fn new() -> Ctx {
        let signer = BundleSigner::generate();
        Ctx {
            dir: tempfile::tempdir().unwrap(),
            key: signer.verifying_key(),
            signer,
            target: schema(),
            tables: None,
            merge: false,
            limits: Limits::default(),
        }
    }

    /// Where bundles are written: everything else in the root is validate's.
    fn input(&self) -> PathBuf {
        let p = self.dir.path().join("in");
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn report(&self) -> PathBuf {
        self.dir.path().join("report.ndjson")
    }

    async fn write(&self, f: &Fixture) -> PathBuf {
        f.write(&self.input(), &self.signer).await
    }

    async fn validate(&self, bundle: &Path) -> Result<Validated, Rejection> {
        let tenant = TenantId::parse("acme").unwrap();
        let req = Request {
            tenant: &tenant,
            key: &self.key,
            target: &self.target,
            tables: self.tables.as_deref(),
            merge: self.merge,
            limits: &self.limits,
        };
        validate(bundle, &self.out(), &self.report(), req).await
    }

    fn report_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.report())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Nothing but the input, the report and (empty) directories under
    /// `out`: no extracted file, no temporary file, nothing elsewhere.
    fn assert_nothing_extracted(&self) {
        let mut stack = vec![self.dir.path().to_owned()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let meta = std::fs::symlink_metadata(&p).unwrap();
                if meta.is_dir() {
                    if !p.starts_with(self.input()) {
                        stack.push(p);
                    }
                    continue;
                }
                assert!(
                    p == self.report() || p.starts_with(self.input()),
                    "{} was left behind",
                    p.display()
                );
            }
        }
    }

    /// The bundle is refused with `code`, nothing is left extracted, and
    /// the report's first line names the same code.
    async fn refused(&self, bundle: &Path, code: &str) -> Rejection {
        let r = match self.validate(bundle).await {
            Ok(v) => panic!("validated, but {code} was expected: {:?}", v.data),
            Err(r) => r,
        };
        assert_eq!(r.code, code, "{r}");
        assert!(!r.retryable());
        self.assert_nothing_extracted();
        let lines = self.report_lines();
        assert_eq!(lines.len() as u64, r.report_rows);
        assert_eq!(lines[0]["code"], code, "{lines:?}");
        r
    }
}

// ---------------------------------------------------------------- good ----

#[tokio::test]
async fn a_good_lite_bundle_passes_with_what_it_holds() {
    let ctx = Ctx::new();
    let bundle = ctx.write(&Fixture::lite()).await;
    let v = ctx.validate(&bundle).await.unwrap();
    assert_eq!(v.manifest.tenant_id.as_str(), "acme");
    assert_eq!(v.schema, schema());
    assert_eq!(v.rows_checked, 6);
    let BundleData::Lite { tables } = &v.data else {
        panic!("lite expected")
    };
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["users", "orders"], "parents first");
    assert_eq!(std::fs::read_to_string(&tables[0].path).unwrap(), USERS);
    assert_eq!(std::fs::read_to_string(&tables[1].path).unwrap(), ORDERS);
    assert!(tables[0].path.starts_with(ctx.out()));
    assert_eq!(tables[1].rows, 3);
    assert_eq!(
        tables[1].blake3,
        blake3::hash(ORDERS.as_bytes()).to_hex().to_string()
    );
    assert_eq!(v.assets.len(), 1);
    assert_eq!(
        std::fs::read(&v.assets[0].path).unwrap(),
        b"\x89PNG not really"
    );
    assert!(ctx.out().join("database/schema.json").is_file());
    // An empty report, and no key files left.
    assert!(ctx.report_lines().is_empty());
    assert!(v.keys.records >= 9, "{:?}", v.keys);
    let left: Vec<_> = std::fs::read_dir(ctx.out())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");

    // Validating again into the same directory gives the same result.
    let again = ctx.validate(&bundle).await.unwrap();
    assert_eq!(again.data, v.data);
}

#[tokio::test]
async fn a_good_native_bundle_passes_without_row_checks() {
    let mut ctx = Ctx::new();
    let f = Fixture::native_sqlite();
    ctx.target = f.schema.clone();
    let bundle = ctx.write(&f).await;
    let v = ctx.validate(&bundle).await.unwrap();
    match &v.data {
        BundleData::Native { format, file } => {
            assert_eq!(format, "sqlite3");
            assert_eq!(std::fs::read(file).unwrap(), f.files[0].data);
        }
        other => panic!("native expected, got {other:?}"),
    }
    assert_eq!(v.rows_checked, 0);
}

#[tokio::test]
async fn a_partial_set_keeps_only_its_tables_and_leaves_outside_parents_to_the_import() {
    let mut ctx = Ctx::new();
    // orders references users, which is not chosen: allowed, and its
    // foreign key is not checked against a bundle table left out.
    ctx.tables = Some(vec!["orders".into()]);
    let mut f = Fixture::lite();
    f.set_table("orders", "{\"id\":10,\"user_id\":999,\"note\":null}\n");
    let bundle = ctx.write(&f).await;
    let v = ctx.validate(&bundle).await.unwrap();
    let BundleData::Lite { tables } = &v.data else {
        panic!()
    };
    assert_eq!(tables.len(), 1);
    assert_eq!(tables[0].name, "orders");
    assert!(!ctx.out().join("database/users.ndjson").exists());
    assert_eq!(v.rows_checked, 1);
}

#[tokio::test]
async fn merge_leaves_foreign_keys_to_the_import() {
    let mut ctx = Ctx::new();
    ctx.merge = true;
    let mut f = Fixture::lite();
    f.set_table("orders", "{\"id\":10,\"user_id\":999,\"note\":null}\n");
    let bundle = ctx.write(&f).await;
    ctx.validate(&bundle).await.unwrap();
}

/// `schema()` as a tenant introspected today reports it: defaults, an
/// identity column, a unique set, an enum, a partitioned table.
fn schema_with_details() -> SchemaInfo {
    use ferry_workflows::ports::tenant::{Identity, PartitionInfo};
    let mut s = schema();
    let users = &mut s.tables[0];
    users.columns[0].identity = Some(Identity::ByDefault);
    users.columns[2].default = Some("true".into());
    users.unique = vec![vec!["email".into()]];
    let orders = &mut s.tables[1];
    orders.columns[2].default = Some("'none'::text".into());
    orders.partition_key = Some("RANGE (id)".into());
    orders.partitions = vec![PartitionInfo {
        name: "orders_default".into(),
        parent: "orders".into(),
        bound: "DEFAULT".into(),
        partition_key: None,
    }];
    s.enums
        .insert("mood".into(), vec!["sad".into(), "happy".into()]);
    s
}

#[tokio::test]
async fn a_bundle_from_before_the_schema_details_passes_against_a_tenant_read_today() {
    let mut ctx = Ctx::new();
    ctx.target = schema_with_details();
    let f = Fixture::lite();
    // What bundles held before: none of the newer keys.
    let old = serde_json::to_string(&f.schema).unwrap();
    for key in [
        "default",
        "identity",
        "generated",
        "unique",
        "partition",
        "enums",
    ] {
        assert!(!old.contains(key), "{key} in {old}");
    }
    let bundle = ctx.write(&f).await;
    let v = ctx.validate(&bundle).await.unwrap();
    assert_eq!(v.schema, schema());

    // And the details are never a reason to refuse: a bundle that has them
    // passes against a tenant whose details differ.
    let mut ctx = Ctx::new();
    let mut f = Fixture::lite();
    f.schema = schema_with_details();
    f.schema.tables[0].unique.clear();
    f.schema.tables[1].columns[2].default = Some("'other'::text".into());
    f.schema.enums.clear();
    let bundle = ctx.write(&f).await;
    let v = ctx.validate(&bundle).await.unwrap();
    assert_eq!(v.schema, f.schema);
    ctx.target = schema_with_details();
    ctx.validate(&bundle).await.unwrap();
}

// ------------------------------------------------- archive-level corpus ----

#[tokio::test]
async fn refuses_a_truncated_zip() {
    let ctx = Ctx::new();
    let good = ctx.write(&Fixture::lite()).await;
    let bytes = std::fs::read(&good).unwrap();
    let cut = ctx.input().join("cut.zip");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    ctx.refused(&cut, "bundle_not_zip").await;
}

#[tokio::test]
async fn refuses_a_zip_bomb_by_ratio() {
    let ctx = Ctx::new();
    let mut f = Fixture::lite();
    // Signed and otherwise good: 32 MiB of zeros inflate from a few KiB.
    f.files.push(File {
        path: "assets/zeros.bin".into(),
        data: vec![0u8; 32 << 20],
        table: None,
        rows: None,
    });
    let bundle = ctx.write(&f).await;
    ctx.refused(&bundle, "entry_ratio_exceeded").await;
}

#[tokio::test]
async fn refuses_many_small_entries_that_inflate_too_much_together() {
    let ctx = Ctx::new();
    let mut f = Fixture::lite();
    // Each below the ratio floor (1 MiB), together far above the ratio.
    for i in 0..40 {
        f.files.push(File {
            path: format!("assets/z{i}.bin"),
            data: vec![0u8; 1000 * 1024],
            table: None,
            rows: None,
        });
    }
    let bundle = ctx.write(&f).await;
    ctx.refused(&bundle, "total_ratio_exceeded").await;
}

#[tokio::test]
async fn refuses_a_zip_bomb_by_entry_count() {
    let mut ctx = Ctx::new();
    ctx.limits.entries_max = 1000;
    let entries: Vec<RawEntry> = (0..1001)
        .map(|i| RawEntry::file(&format!("assets/{i}"), b""))
        .collect();
    let many = ctx.input().join("many.zip");
    write_raw_zip(&many, &entries, None);
    ctx.refused(&many, "too_many_entries").await;
}

#[tokio::test]
async fn refuses_a_forged_entry_count_before_reading_the_directory() {
    let mut ctx = Ctx::new();
    ctx.limits.entries_max = 1000;
    let forged = ctx.input().join("forged.zip");
    write_raw_zip(&forged, &[RawEntry::file("a", b"x")], Some(u16::MAX));
    ctx.refused(&forged, "too_many_entries").await;
    // Within the limit, the directory cannot hold what the count claims.
    ctx.limits.entries_max = 100_000;
    ctx.refused(&forged, "bundle_not_zip").await;
}

#[tokio::test]
async fn refuses_dot_dot_paths() {
    let ctx = Ctx::new();
    let evil = ctx.input().join("evil.zip");
    write_raw_zip(
        &evil,
        &[RawEntry::file("database/../../escape.txt", b"x")],
        None,
    );
    ctx.refused(&evil, "unsafe_path").await;
    assert!(!ctx.dir.path().join("escape.txt").exists());
}

#[tokio::test]
async fn refuses_absolute_paths_backslashes_and_drive_letters() {
    let ctx = Ctx::new();
    for (i, name) in ["/etc/passwd", "database\\..\\x", "C:/windows/x", "a//b"]
        .iter()
        .enumerate()
    {
        let evil = ctx.input().join(format!("abs{i}.zip"));
        write_raw_zip(&evil, &[RawEntry::file(name, b"x")], None);
        ctx.refused(&evil, "unsafe_path").await;
    }
}

#[tokio::test]
async fn refuses_symlink_entries() {
    let ctx = Ctx::new();
    let link = ctx.input().join("link.zip");
    let mut e = RawEntry::file("database/users.ndjson", b"/etc/shadow");
    e.mode = 0o120777;
    write_raw_zip(&link, &[e], None);
    let r = ctx.refused(&link, "entry_not_regular").await;
    assert!(r.message.contains("symbolic link"), "{r}");
    // A FIFO is no better.
    let mut e = RawEntry::file("assets/fifo", b"");
    e.mode = 0o010644;
    write_raw_zip(&link, &[e], None);
    ctx.refused(&link, "entry_not_regular").await;
}

#[tokio::test]
async fn refuses_duplicate_entry_names() {
    let ctx = Ctx::new();
    let good = ctx.write(&Fixture::lite()).await;
    let dup = ctx.input().join("dup.zip");
    rewrite(&good, &dup, |es| {
        let mut twin = entry(es, "database/users.ndjson").clone();
        twin.data = b"{\"id\":666}\n".to_vec();
        es.push(twin);
    })
    .await;
    ctx.refused(&dup, "duplicate_entry").await;
}

#[tokio::test]
async fn refuses_an_oversize_entry() {
    let mut ctx = Ctx::new();
    ctx.limits.entry_bytes_max = 100;
    let bundle = ctx.write(&Fixture::lite()).await;
    ctx.refused(&bundle, "entry_too_large").await;
}

#[tokio::test]
async fn refuses_a_header_that_lies_about_the_size() {
    let ctx = Ctx::new();
    let bundle = ctx.write(&Fixture::lite()).await;
    // The central directory claims 10 bytes; the signed manifest says more.
    patch_central(&bundle, "database/users.ndjson", |rec| {
        rec[24..28].copy_from_slice(&10u32.to_le_bytes());
    });
    ctx.refused(&bundle, "entry_size_mismatch").await;
}

// ------------------------------------------------ manifest-level corpus ----

#[tokio::test]
async fn refuses_another_tenants_bundle() {
    let ctx = Ctx::new();
    let mut f = Fixture::lite();
    f.tenant = "globex".into();
    let bundle = ctx.write(&f).await;
    ctx.refused(&bundle, "tenant_mismatch").await;
}

#[tokio::test]
async fn refuses_a_changed_manifest() {
    let ctx = Ctx::new();
    let good = ctx.write(&Fixture::lite()).await;
    let forged = ctx.input().join("forged.zip");
    rewrite(&good, &forged, |es| {
        let m = entry(es, "manifest.json");
        m.data = String::from_utf8(m.data.clone())
            .unwrap()
            .replace("\"rowCount\": 6", "\"rowCount\": 7")
            .into_bytes();
    })
    .await;
    ctx.refused(&forged, "signature_invalid").await;
}

#[tokio::test]
async fn refuses_a_malformed_signature() {
    let ctx = Ctx::new();
    let good = ctx.write(&Fixture::lite()).await;
    let bad = ctx.input().join("badsig.zip");
    rewrite(&good, &bad, |es| {
        entry(es, "manifest.sig").data = b"not a signature".to_vec()
    })
    .await;
    ctx.refused(&bad, "signature_invalid").await;
}

#[tokio::test]
async fn refuses_a_bundle_signed_with_another_key() {
    let mut ctx = Ctx::new();
    let bundle = ctx.write(&Fixture::lite()).await;
    ctx.key = BundleSigner::generate().verifying_key();
    ctx.refused(&bundle, "signature_key_mismatch").await;
}

#[tokio::test]
async fn refuses_a_bundle_without_manifest() {
    let ctx = Ctx::new();
    let good = ctx.write(&Fixture::lite()).await;
    let bad = ctx.input().join("nomanifest.zip");
    rewrite(&good, &bad, |es| es.retain(|e| e.name != b"manifest.json")).await;
    ctx.refused(&bad, "manifest_missing").await;
}

#[tokio::test]
async fn refuses_an_unknown_format_version() {
    let ctx = Ctx::new();
    let mut f = Fixture::lite();
    f.version = "2.0.0".into();
    let bundle = ctx.write(&f).await;
    ctx.refused(&bundle, "unsupported_version").await;
}

#[tokio::test]
async fn refuses_an_analytics_bundle() {
    let ctx = Ctx::new();
    let mut f = Fixture::lite();
    f.profile = "analytics".into();
    f.format = "csv".into();
    let bundle = ctx.write(&f).await;
    ctx.refused(&bundle, "profile_not_restorable").await;
}

// --------------------------------------------------- entry-level corpus ----

#[tokio::test]
async fn refuses_a_changed_entry() {
    let ctx = Ctx::new();
    let good = ctx.write(&Fixture::lite()).await;
    let bad = ctx.input().join("changed.zip");
    rewrite(&good, &bad, |es| {
        entry(es, "database/orders.ndjson").data[8] ^= 1
    })
    .await;
    ctx.refused(&bad, "checksum_mismatch").await;
}

#[tokio::test]
async fn refuses_a_missing_or_an_added_entry() {
    let ctx = Ctx::new();
    let good = ctx.write(&Fixture::lite()).await;
    let bad = ctx.input().join("missing.zip");
    rewrite(&good, &bad, |es| {
        es.retain(|e| e.name != b"assets/logo.png")
    })
    .await;
    ctx.refused(&bad, "entry_missing").await;
    rewrite(&good, &bad, |es| {
        es.push(RawEntry::file("assets/extra.txt", b"x"))
    })
    .await;
    ctx.refused(&bad, "entry_unexpected").await;
}

// -------------------------------------------------- schema-level corpus ----

#[tokio::test]
async fn refuses_a_missing_table_file() {
    let ctx = Ctx::new();
    let mut f = Fixture::lite();
    f.files.retain(|f| f.table.as_deref() != Some("orders"));
    let bundle = ctx.write(&f).await;
    ctx.refused(&bundle, "table_file_missing").await;
}

#[tokio::test]
async fn refuses_an_extra_table_file() {
    let ctx = Ctx::new();
    let mut f = Fixture::lite();
    f.set_table("secrets", "{\"id\":1}\n");
    let bundle = ctx.write(&f).await;
    ctx.refused(&bundle, "table_file_extra").await;
}

#[tokio::test]
async fn refuses_a_table_the_tenant_has_and_the_bundle_lacks() {
    let mut ctx = Ctx::new();
    let mut invoices = ctx.target.tables[1].clone();
    invoices.name = "invoices".into();
    ctx.target.tables.push(invoices);
    let bundle = ctx.write(&Fixture::lite()).await;
    ctx.refused(&bundle, "schema_table_missing").await;
}

#[tokio::test]
async fn refuses_a_table_the_tenant_does_not_have() {
    let mut ctx = Ctx::new();
    ctx.target.tables.retain(|t| t.name != "orders");
    let bundle = ctx.write(&Fixture::lite()).await;
    ctx.refused(&bundle, "schema_table_extra").await;
}

#[tokio::test]
async fn refuses_a_missing_column() {
    let mut ctx = Ctx::new();
    ctx.target.tables[0]
        .columns
        .push(col("nickname", "text", true));
    let bundle = ctx.write(&Fixture::lite()).await;
    ctx.refused(&bundle, "schema_column_missing").await;
}

#[tokio::test]
async fn refuses_an_extra_column() {
    let mut ctx = Ctx::new();
    ctx.target.tables[0].columns.retain(|c| c.name != "score");
    let bundle = ctx.write(&Fixture::lite()).await;
    ctx.refused(&bundle, "schema_column_extra").await;
}

#[tokio::test]
async fn refuses_a_type_mismatch() {
    let mut ctx = Ctx::new();
    ctx.target.tables[0].columns[3].data_type = "text".into();
    let bundle = ctx.write(&Fixture::lite()).await;
    let r = ctx.refused(&bundle, "schema_type_mismatch").await;
    assert!(r.message.contains("users.balance"), "{r}");
}

#[tokio::test]
async fn refuses_a_native_dump_of_another_engine() {
    let ctx = Ctx::new();
    let bundle = ctx.write(&Fixture::native_sqlite()).await;
    ctx.refused(&bundle, "engine_mismatch").await;
}

#[tokio::test]
async fn refuses_a_partial_set_that_would_orphan_rows() {
    let mut ctx = Ctx::new();
    ctx.tables = Some(vec!["users".into()]);
    let bundle = ctx.write(&Fixture::lite()).await;
    ctx.refused(&bundle, "partial_fk_closure").await;
    ctx.tables = Some(vec!["payments".into()]);
    ctx.refused(&bundle, "partial_table_unknown").await;
}

// ----------------------------------------------------- row-level corpus ----

/// A lite bundle whose `table` file is `ndjson`, refused with `code`; the
/// report's first line.
async fn refused_rows(table: &str, ndjson: &str, code: &str) -> Value {
    let ctx = Ctx::new();
    let mut f = Fixture::lite();
    f.set_table(table, ndjson);
    let bundle = ctx.write(&f).await;
    ctx.refused(&bundle, code).await;
    ctx.report_lines().remove(0)
}

#[tokio::test]
async fn refuses_a_row_that_is_not_json() {
    let line = refused_rows(
        "orders",
        "{\"id\":10,\"user_id\":1,\"note\":null}\n{\"id\": 11, oops\n",
        "row_invalid",
    )
    .await;
    assert_eq!(line["table"], "orders");
    assert_eq!(line["line"], 2);
}

#[tokio::test]
async fn refuses_a_value_of_the_wrong_kind() {
    let line = refused_rows(
        "orders",
        "{\"id\":\"ten\",\"user_id\":1,\"note\":null}\n",
        "row_invalid",
    )
    .await;
    assert_eq!(line["column"], "id");
    assert_eq!(line["line"], 1);
}

#[tokio::test]
async fn refuses_null_in_a_not_null_column() {
    let line = refused_rows(
        "orders",
        "{\"id\":10,\"user_id\":null,\"note\":null}\n",
        "row_invalid",
    )
    .await;
    assert_eq!(line["column"], "user_id");
    assert_eq!(line["key"], serde_json::json!({"id": 10}));
}

#[tokio::test]
async fn refuses_rows_with_missing_extra_or_repeated_columns() {
    for (row, column) in [
        ("{\"id\":10,\"user_id\":1}\n", "note"),
        (
            "{\"id\":10,\"user_id\":1,\"note\":null,\"evil\":1}\n",
            "evil",
        ),
        ("{\"id\":10,\"user_id\":1,\"note\":null,\"id\":11}\n", "id"),
    ] {
        let line = refused_rows("orders", row, "row_invalid").await;
        assert_eq!(line["column"], column, "{row}");
    }
}

/// Validation must predict verification: rows that are valid JSON with the
/// right values but not written as ferry writes them would load and then
/// fail the content-hash verification, after the delete.
#[tokio::test]
async fn validation_refuses_a_row_not_in_canonical_form() {
    let canonical = ORDERS.lines().next().unwrap();
    assert_eq!(canonical, r#"{"id":10,"user_id":1,"note":"first"}"#);
    for (orders_line, column) in [
        (r#"{"user_id":1,"id":10,"note":"first"}"#, None),
        (r#"{"id": 10,"user_id":1,"note":"first"}"#, None),
        (r#"{"id":10,"user_id":1,"note":"first"} "#, None),
        (r#"{"id":10,"user_id":1,"note":"\u0066irst"}"#, Some("note")),
        (r#"{"id":10,"user_id":1,"note":"fir\/st"}"#, Some("note")),
    ] {
        let rows = ORDERS.replacen(canonical, orders_line, 1);
        let line = refused_rows("orders", &rows, "row_not_canonical").await;
        assert_eq!(line["line"], 1, "{orders_line}");
        assert_eq!(line["column"].as_str(), column, "{orders_line}");
    }
    let first_user = USERS.lines().next().unwrap();
    for (user_line, column) in [
        (
            first_user.replace("\"score\":0.5", "\"score\":0.50"),
            "score",
        ),
        (
            first_user.replace("\"score\":0.5", "\"score\":5e-1"),
            "score",
        ),
        (first_user.replace("\"12.50\"", "\"+12.50\""), "balance"),
        (first_user.replace("\"12.50\"", "12.50"), "balance"),
        (first_user.replace("\"AP8=\"}", "\"AP8=\" }"), "avatar"),
    ] {
        let rows = USERS.replacen(first_user, &user_line, 1);
        let line = refused_rows("users", &rows, "row_not_canonical").await;
        assert_eq!(line["column"], column, "{user_line}");
    }
}

/// The tables of the fixture on SQLite, typed by affinity.
fn sqlite_schema() -> SchemaInfo {
    let mut s = schema();
    s.engine = "sqlite".into();
    s.isolation = "database".into();
    for t in &mut s.tables {
        for c in &mut t.columns {
            c.data_type = match (t.name.as_str(), c.name.as_str()) {
                (_, "id") | (_, "user_id") => "INTEGER",
                (_, "score") => "REAL",
                (_, "avatar") => "BLOB",
                (_, "balance") | (_, "active") => "NUMERIC",
                _ => "TEXT",
            }
            .into();
        }
    }
    s
}

#[tokio::test]
async fn sqlite_validation_refuses_values_that_do_not_match_the_column_affinity() {
    let users = concat!(
        r#"{"id":1,"email":"a@x.example","active":1,"balance":"12.50","avatar":{"$base64":"AP8="},"score":0.5}"#,
        "\n",
        r#"{"id":3,"email":"b@x.example","active":null,"balance":7,"avatar":"text","score":100.0}"#,
        "\n",
    );
    let mut ctx = Ctx::new();
    ctx.target = sqlite_schema();
    let mut f = Fixture::lite();
    f.schema = sqlite_schema();
    f.set_table("users", users);
    let good = ctx.write(&f).await;
    ctx.validate(&good).await.expect("the control passes");
    for (table, rows, column, code) in [
        (
            "orders",
            ORDERS.replace("\"user_id\":1,", "\"user_id\":\"1\","),
            "user_id",
            "row_invalid",
        ),
        (
            "orders",
            ORDERS.replace("\"id\":10,", "\"id\":\"ten\","),
            "id",
            "row_invalid",
        ),
        (
            "orders",
            ORDERS.replace("\"id\":10,", "\"id\":{\"$base64\":\"AP8=\"},"),
            "id",
            "row_invalid",
        ),
        (
            "users",
            users.replace("\"score\":0.5", "\"score\":\"high\""),
            "score",
            "row_invalid",
        ),
        (
            "orders",
            ORDERS.replace("\"id\":10,", "\"id\":10.0,"),
            "id",
            "row_not_canonical",
        ),
        (
            "users",
            users.replace("\"score\":100.0", "\"score\":100"),
            "score",
            "row_not_canonical",
        ),
    ] {
        let mut ctx = Ctx::new();
        ctx.target = sqlite_schema();
        let mut bad = f.clone();
        bad.set_table(table, &rows);
        let bundle = ctx.write(&bad).await;
        ctx.refused(&bundle, code).await;
        assert_eq!(ctx.report_lines()[0]["column"], column, "{rows}");
    }
}

#[tokio::test]
async fn refuses_a_row_count_that_differs_from_the_manifest() {
    let ctx = Ctx::new();
    let mut f = Fixture::lite();
    f.file_mut("database/orders.ndjson").rows = Some(4);
    let bundle = ctx.write(&f).await;
    ctx.refused(&bundle, "row_count_mismatch").await;
}

#[tokio::test]
async fn refuses_duplicate_primary_keys() {
    let rows = "{\"id\":10,\"user_id\":1,\"note\":null}\n{\"id\":11,\"user_id\":1,\"note\":null}\n{\"id\":10,\"user_id\":2,\"note\":\"again\"}\n";
    let line = refused_rows("orders", rows, "duplicate_key").await;
    assert_eq!(line["line"], 3);
    assert_eq!(line["key"], serde_json::json!({"id": 10}));
    assert!(
        line["message"].as_str().unwrap().contains("line 1"),
        "{line}"
    );
}

#[tokio::test]
async fn refuses_a_dangling_foreign_key() {
    let rows =
        "{\"id\":10,\"user_id\":1,\"note\":null}\n{\"id\":11,\"user_id\":42,\"note\":null}\n";
    let line = refused_rows("orders", rows, "dangling_foreign_key").await;
    assert_eq!(line["line"], 2);
    assert_eq!(line["column"], "user_id");
    assert_eq!(line["key"], serde_json::json!({"user_id": 42}));
}

#[tokio::test]
async fn the_report_is_bounded_and_counts_the_rest() {
    let mut ctx = Ctx::new();
    ctx.limits.report_errors_max = 5;
    let mut f = Fixture::lite();
    let rows: String = (0..50)
        .map(|i| format!("{{\"id\":{i},\"user_id\":1,\"note\":7}}\n"))
        .collect();
    f.set_table("orders", &rows);
    let bundle = ctx.write(&f).await;
    let r = ctx.refused(&bundle, "row_invalid").await;
    assert_eq!(r.report_rows, 5);
    assert_eq!(r.errors_total, 50);
    assert!(r.message.contains("49 more"), "{r}");
}

// --------------------------------------------------------- large table ----

/// A million users and 200,000 orders: every key print goes through sorted
/// run files (the chunk holds 100,000), merged in passes, and the result
/// is still exact.
#[tokio::test]
async fn keys_of_a_million_rows_are_checked_through_run_files() {
    let mut ctx = Ctx::new();
    ctx.limits.sort_chunk_records = 100_000;
    let mut f = Fixture::lite();
    let n = 1_000_000u64;
    let mut users = String::with_capacity(90 * n as usize);
    for i in 0..n {
        // Keys out of order, so the sort has work to do.
        let id = (i * 7_919) % n;
        users.push_str(&format!(
            "{{\"id\":{id},\"email\":\"u{id}@x.example\",\"active\":null,\"balance\":null,\"avatar\":null,\"score\":null}}\n"
        ));
    }
    let orders: String = (0..200_000u64)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"user_id\":{},\"note\":null}}\n",
                (i * 31) % n
            )
        })
        .collect();
    f.set_table("users", &users);
    f.set_table("orders", &orders);
    drop(users);
    let bundle = ctx.write(&f).await;
    drop(f);
    let v = ctx.validate(&bundle).await.unwrap();
    assert_eq!(v.rows_checked, 1_200_000);
    // users: its key; orders: its key and its foreign key.
    assert_eq!(v.keys.records, 1_000_000 + 2 * 200_000);
    assert!(v.keys.runs_spilled >= 16, "{:?}", v.keys);
    assert!(v.keys.merges >= 1, "{:?}", v.keys);
    assert!(v.keys.spilled_bytes >= 32 * 1_400_000, "{:?}", v.keys);
    // The run files are gone.
    let left: Vec<_> = std::fs::read_dir(ctx.out())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
}
