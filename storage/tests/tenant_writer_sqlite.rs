//! The SQLite tenant writer (rehydration's storage side) against real
//! SQLite files: a `lite` export of the sample tenant imported back after
//! the tenant changed gives the exported content hashes, sequences continue
//! and foreign keys hold; every storage class survives; merge does what its
//! preview said; a failing load leaves its tables as they were, and so does
//! one whose verification fails; a native dump restores; another tenant is
//! never touched.

mod support;

use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};
use ferry_engine::TenantId;
use ferry_storage::sample;
use ferry_storage::tenant_sqlite::{SqliteTenants, NATIVE_FORMAT};
use ferry_workflows::ports::tenant::{SchemaInfo, TenantStore};
use ferry_workflows::ports::tenant_writer::{TenantWriter, WriteMode};
use ferry_workflows::ports::PortError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support::writer::{
    assert_native_format_refused, assert_refused, check_cancel_commits_nothing, check_merge,
    check_native_restore_commits_nothing, check_verify_mismatch_commits_nothing, hashes,
    import_all, import_one, lite_export, restore_native,
};

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).expect("valid tenant id")
}

struct Fixture {
    root: tempfile::TempDir,
    store: SqliteTenants,
}

/// What a `lite` export of a tenant holds: each table's NDJSON and its
/// blake3 (the manifest entry's), plus the native copy.
struct Export {
    schema: SchemaInfo,
    ndjson: BTreeMap<String, Vec<u8>>,
    blake3: BTreeMap<String, String>,
    native: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        let store = SqliteTenants::new(root.path().join("tenants"));
        Fixture { root, store }
    }

    fn sample(&self, id: &str) {
        sample::create_sample_tenant(
            self.store.dir(),
            &self.root.path().join("assets"),
            &tenant(id),
            1,
            7,
        )
        .expect("sample tenant");
    }

    fn create(&self, id: &str, ddl: &str) {
        std::fs::create_dir_all(self.store.dir()).unwrap();
        self.live(id).batch_execute(ddl).expect("ddl");
    }

    fn live(&self, id: &str) -> SqliteConnection {
        let path = self.store.db_path(&tenant(id));
        SqliteConnection::establish(path.to_str().unwrap()).expect("open live db")
    }

    fn writer(&self, id: &str) -> Box<dyn TenantWriter> {
        self.store
            .writer(&tenant(id), &self.root.path().join("work"))
            .expect("writer")
    }

    fn export(&self, id: &str, work: &str) -> Export {
        let work = self.root.path().join("exports").join(work);
        let mut snap = self.store.snapshot(&tenant(id), &work).expect("snapshot");
        let schema = snap.schema().unwrap();
        let (ndjson, blake3) = lite_export(snap.as_mut(), &schema);
        let native = work.join("tenant.sqlite");
        let mut file = std::fs::File::create(&native).unwrap();
        snap.dump_native(&mut file).unwrap();
        Export {
            schema,
            ndjson,
            blake3,
            native,
        }
    }
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn scalar(conn: &mut SqliteConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).load::<N>(conn).unwrap()[0].n
}

/// Change the tenant in every way a rehydration must undo.
fn scramble(conn: &mut SqliteConnection) {
    conn.batch_execute(
        "DELETE FROM order_items WHERE line_no = 1;
         UPDATE accounts SET name = 'changed', mrr = '0.00' WHERE id % 3 = 0;
         INSERT INTO accounts (name, plan, mrr, created_at, marker)
              VALUES ('new', 'free', '1.00', '2026-01-01T00:00:00Z', 'marker-acme');
         UPDATE products SET weight_kg = NULL;
         DELETE FROM customer_config;",
    )
    .unwrap();
}

/// Sample `acme` and `acme2`, export both, then change `acme`.
fn acme_changed_since_export(fx: &Fixture) -> (Export, Export) {
    fx.sample("acme");
    fx.sample("acme2");
    let export = fx.export("acme", "acme");
    let other = fx.export("acme2", "acme2");
    scramble(&mut fx.live("acme"));
    (export, other)
}

#[test]
fn lite_round_trip_restores_every_content_hash_and_leaves_others_alone() {
    let fx = Fixture::new();
    let (export, other) = acme_changed_since_export(&fx);
    let mut writer = fx.writer("acme");
    assert_ne!(hashes(writer.as_mut(), &export.schema), export.blake3);

    // One load empties every table, imports it and moves the sequences.
    let imported = import_all(writer.as_mut(), &export.schema, &export.ndjson);
    assert!(imported.deleted > 2_000, "{imported:?}");
    let imported = imported.rows;

    assert_eq!(hashes(writer.as_mut(), &export.schema), export.blake3);
    let digest = writer.content_hash("accounts").unwrap();
    assert_eq!(digest.rows, writer.count_rows("accounts").unwrap());
    let rows: u64 = export
        .schema
        .tables
        .iter()
        .map(|t| writer.count_rows(&t.name).unwrap())
        .sum();
    assert_eq!(rows, imported);

    // Loading again replaces the rows rather than duplicating them.
    let again = import_all(writer.as_mut(), &export.schema, &export.ndjson);
    assert_eq!(
        (again.deleted, again.rows),
        (imported, imported),
        "safe to repeat"
    );
    assert_eq!(hashes(writer.as_mut(), &export.schema), export.blake3);

    // Sequences continue past the largest key (the scrambled insert used
    // one more id, which is never handed out again either), foreign keys hold.
    let mut live = fx.live("acme");
    let max = scalar(&mut live, "SELECT max(id) AS n FROM accounts");
    live.batch_execute(
        "INSERT INTO accounts (name, plan, mrr, created_at, marker)
         VALUES ('after', 'free', '1.00', '2026-01-02T00:00:00Z', 'marker-acme')",
    )
    .unwrap();
    let new_id = scalar(&mut live, "SELECT max(id) AS n FROM accounts");
    assert!(
        new_id > max + 1,
        "{new_id} continues past {max} and the scrambled insert"
    );
    let violations = scalar(
        &mut live,
        "SELECT count(*) AS n FROM pragma_foreign_key_check",
    );
    assert_eq!(violations, 0);

    // The other tenant was never touched.
    let mut other_writer = fx.writer("acme2");
    assert_eq!(hashes(other_writer.as_mut(), &other.schema), other.blake3);
}

#[test]
fn every_storage_class_round_trips_exactly() {
    let fx = Fixture::new();
    fx.create(
        "types",
        "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, anything, num NUMERIC, r REAL, txt TEXT, b BLOB);
         INSERT INTO t (anything, num, r, txt, b) VALUES
           (-9223372036854775808, '12.50', 0.1, 'نص 漢字 🚀 \"q\"', x'00ff'),
           (9223372036854775807, 'not a number', 1e300, '', x''),
           (5e-324, 1e-300, -0.0, '{\"$base64\": \"AA==\"}', NULL),
           (CAST(x'ff61' AS TEXT), NULL, 9e999, 'line1\nline2', x'89504e47'),
           (NULL, 100, -9e999, NULL, NULL);",
    );
    let export = fx.export("types", "e");
    let text = String::from_utf8(export.ndjson["t"].clone()).unwrap();
    assert!(
        text.contains(r#"{"$float":"Infinity"}"#) && text.contains(r#"{"$textBase64":"/2E="}"#)
    );

    fx.live("types")
        .batch_execute("UPDATE t SET anything = 1, r = 2, txt = 'x', b = x'01'")
        .unwrap();
    let mut writer = fx.writer("types");
    let text = String::from_utf8(export.ndjson["t"].clone()).unwrap();
    import_one(writer.as_mut(), "t", WriteMode::Replace, &text).unwrap();
    assert_eq!(writer.content_hash("t").unwrap().blake3, export.blake3["t"]);
    #[derive(QueryableByName)]
    struct Kind {
        #[diesel(sql_type = Text)]
        kind: String,
    }
    let kinds: Vec<Kind> = diesel::sql_query(
        "SELECT group_concat(typeof(anything) || '/' || typeof(num) || '/' || typeof(r), ',') AS kind FROM (SELECT * FROM t ORDER BY id)",
    )
    .load(&mut fx.live("types"))
    .unwrap();
    assert_eq!(
        kinds[0].kind,
        // NUMERIC affinity had already made `'12.50'` the REAL 12.5 on the first insert.
        "integer/real/real,integer/text/real,real/real/real,text/null/real,null/integer/real"
    );
}

#[test]
fn merge_does_what_its_preview_says() {
    let fx = Fixture::new();
    fx.create(
        "m",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, ext TEXT NOT NULL UNIQUE, email TEXT UNIQUE, name TEXT COLLATE NOCASE, score REAL);
         INSERT INTO people VALUES (1, 'a', 'a@x', 'Ann', 1.0), (2, 'b', 'b@x', 'Bob', 2.0), (3, 'c', 'c@x', 'Cy', 3.0);",
    );
    // By natural key: a unchanged, b renamed (only the case: NOCASE must not
    // hide it), c's score now an integer-valued REAL with another bit
    // pattern, d new, e new but takes a's email (a conflict).
    let bundle = concat!(
        r#"{"id":1,"ext":"a","email":"a@x","name":"Ann","score":1.0}"#,
        "\n",
        r#"{"id":2,"ext":"b","email":"b@x","name":"BOB","score":2.0}"#,
        "\n",
        r#"{"id":3,"ext":"c","email":"c@x","name":"Cy","score":3.5}"#,
        "\n",
        r#"{"id":4,"ext":"d","email":"d@x","name":"Di","score":null}"#,
        "\n",
    );
    let mut writer = fx.writer("m");
    check_merge(writer.as_mut(), bundle);
}

#[test]
fn a_failing_group_leaves_its_tables_as_they_were() {
    let fx = Fixture::new();
    fx.sample("acme");
    let export = fx.export("acme", "e");
    let mut writer = fx.writer("acme");
    let products = String::from_utf8(export.ndjson["products"].clone()).unwrap();
    let lines: Vec<&str> = products.lines().collect();
    let replace = || WriteMode::Replace;

    // Line 3 has a value of the wrong shape; lines 1-2 were already inserted.
    let mut bad: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    bad[2] = bad[2].replacen("\"sku\":", "\"sku\":[1],\"x\":", 1);
    let body = bad.join("\n") + "\n";
    let err = assert_refused(writer.as_mut(), "products", replace(), &body, "row_invalid");
    assert!(err.message.contains("line 3"), "{}", err.message);

    // A duplicate key on line 2: the database refuses it, with the line.
    let body = format!("{0}\n{0}\n", lines[0]);
    let err = assert_refused(writer.as_mut(), "products", replace(), &body, "row_invalid");
    assert!(err.message.contains("line 2"), "{}", err.message);
    // A column the table does not have.
    let body = r#"{"nope":1}"#;
    assert_refused(writer.as_mut(), "products", replace(), body, "row_invalid");

    // Emptying accounts alone would orphan users: refused, nothing deleted.
    let fk = "foreign_key_violation";
    let users = writer.content_hash("users").unwrap();
    assert_refused(writer.as_mut(), "accounts", replace(), "", fk);
    assert_eq!(writer.content_hash("users").unwrap(), users);
    // So would orders pointing at accounts that are not there.
    let orphan = concat!(
        r#"{"id":999999,"account_id":424242,"user_id":null,"status":"paid","#,
        r#""currency":"EUR","total":"1.00","fx_rate":"1.000000","notes":null,"#,
        r#""metadata":null,"created_at":"2026-01-01T00:00:00Z","marker":"marker-acme"}"#
    );
    let merge = WriteMode::Merge { key: vec![] };
    assert_refused(writer.as_mut(), "orders", merge, orphan, fk);

    let err = writer.content_hash("nope").unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), ("unknown_table", false));
}

#[test]
fn a_load_that_does_not_verify_commits_nothing() {
    let fx = Fixture::new();
    let (export, other) = acme_changed_since_export(&fx);
    let mut writer = fx.writer("acme");
    check_verify_mismatch_commits_nothing(
        writer.as_mut(),
        &export.schema,
        &export.ndjson,
        &export.blake3,
        "accounts",
    );
    let mut other_writer = fx.writer("acme2");
    assert_eq!(hashes(other_writer.as_mut(), &other.schema), other.blake3);
}

#[test]
fn a_load_cancelled_half_way_commits_nothing() {
    let fx = Fixture::new();
    let (export, _) = acme_changed_since_export(&fx);
    let mut writer = fx.writer("acme");
    check_cancel_commits_nothing(
        writer.as_mut(),
        &export.schema,
        &export.ndjson,
        &export.blake3,
    );
}

#[test]
fn native_dump_restores_in_one_transaction() {
    let fx = Fixture::new();
    let (export, other) = acme_changed_since_export(&fx);
    let mut writer = fx.writer("acme");

    let counts = writer
        .native_row_counts(NATIVE_FORMAT, &export.native)
        .unwrap();
    let want: Vec<(String, u64)> = export
        .schema
        .tables
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                export.ndjson[&t.name]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count() as u64,
            )
        })
        .collect();
    assert_eq!(counts, want);

    let first = restore_native(writer.as_mut(), NATIVE_FORMAT, &export.native).unwrap();
    assert!(first.deleted > 2_000, "{first:?}");
    assert_eq!(hashes(writer.as_mut(), &export.schema), export.blake3);
    let again = restore_native(writer.as_mut(), NATIVE_FORMAT, &export.native).unwrap();
    let rows: u64 = want.iter().map(|(_, n)| n).sum();
    assert_eq!(again.deleted, rows, "replaced, not duplicated");
    assert_eq!(
        hashes(writer.as_mut(), &export.schema),
        export.blake3,
        "safe to repeat"
    );
    let mut other_writer = fx.writer("acme2");
    assert_eq!(hashes(other_writer.as_mut(), &other.schema), other.blake3);

    assert_native_format_refused(writer.as_mut(), "pg_dump-custom", &export.native);
    // A dump of another schema is refused before anything is deleted.
    fx.create("tiny", "CREATE TABLE t (id INTEGER PRIMARY KEY);");
    let tiny = fx.export("tiny", "t");
    let err = restore_native(writer.as_mut(), NATIVE_FORMAT, &tiny.native).unwrap_err();
    assert_eq!(err.code, "native_schema_mismatch");
    assert_eq!(hashes(writer.as_mut(), &export.schema), export.blake3);

    // A restore that does not verify, or is cancelled half-way or just
    // before its commit, leaves every table as it was.
    scramble(&mut fx.live("acme"));
    check_native_restore_commits_nothing(
        writer.as_mut(),
        &export.schema,
        NATIVE_FORMAT,
        &export.native,
        &export.blake3,
    );
}

#[test]
fn maintenance_is_a_marker_beside_the_database() {
    let fx = Fixture::new();
    fx.sample("acme");
    let mut writer = fx.writer("acme");
    assert!(!fx.store.in_maintenance(&tenant("acme")).unwrap());
    writer.set_maintenance(true).unwrap();
    writer.set_maintenance(true).unwrap();
    assert!(fx.store.in_maintenance(&tenant("acme")).unwrap());
    assert!(!fx.store.in_maintenance(&tenant("acme2")).unwrap());
    writer.set_maintenance(false).unwrap();
    assert!(!fx.store.in_maintenance(&tenant("acme")).unwrap());

    let missing: PortError = fx
        .store
        .writer(&tenant("nobody"), Path::new("/nonexistent"))
        .err()
        .unwrap();
    assert_eq!(missing.code, "tenant_not_found");
}
