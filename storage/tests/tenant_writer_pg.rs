//! The PostgreSQL tenant writer (rehydration's storage side) against a real
//! PostgreSQL server, in every isolation mode: a `lite` export imported back
//! after the tenant changed gives the exported content hashes, sequences
//! continue and foreign keys hold, and the other tenants (`acme2` beside
//! `acme` in row mode) are untouched; the native dump restores the same
//! way; every type of the fidelity table survives, on the COPY path and the
//! batched INSERT path; merge does what its preview said; a failing load
//! leaves its tables as they were, and so do a load whose verification
//! fails and one cancelled half-way; a foreign-key cycle loads in one load.

mod support;

use diesel::connection::SimpleConnection;
use diesel::sql_types::BigInt;
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use ferry_storage::tenant_pg::{LoadPath, PgIsolation, PgTenants};
use ferry_workflows::ports::tenant::{SchemaInfo, TenantStore};
use ferry_workflows::ports::tenant_writer::{LoadOutcome, TenantWriter, Verify, WriteMode};
use ferry_workflows::ports::PortError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support::pg::{sample, tenant, TestDb, TYPES_SQL};
use support::writer::{
    assert_native_format_refused, assert_refused, check_cancel_commits_nothing, check_merge,
    check_native_restore_commits_nothing, check_verify_mismatch_commits_nothing, hashes,
    import_all, import_one, lite_export, load_lite, reader, restore_native, Recorder,
};

/// What an export of a tenant holds: each table's `lite` NDJSON and its
/// blake3 (the manifest entry's), and the native dump.
struct Export {
    schema: SchemaInfo,
    ndjson: BTreeMap<String, Vec<u8>>,
    blake3: BTreeMap<String, String>,
    native: PathBuf,
    native_format: String,
    _dir: tempfile::TempDir,
}

fn export(store: &PgTenants, id: &str) -> Export {
    let dir = tempfile::tempdir().unwrap();
    let mut snap = store.snapshot(&tenant(id), dir.path()).expect("snapshot");
    let schema = snap.schema().unwrap();
    let (ndjson, blake3) = lite_export(snap.as_mut(), &schema);
    let native = dir.path().join("native");
    let mut file = std::fs::File::create(&native).unwrap();
    let info = snap.dump_native(&mut file).unwrap();
    Export {
        schema,
        ndjson,
        blake3,
        native,
        native_format: info.format,
        _dir: dir,
    }
}

fn rows_of(export: &Export, table: &str) -> u64 {
    export.ndjson[table].iter().filter(|b| **b == b'\n').count() as u64
}

fn text(export: &Export, table: &str) -> String {
    String::from_utf8(export.ndjson[table].clone()).unwrap()
}

/// A connection to where `id`'s tables are, with them on the search path.
fn tenant_conn(store: &PgTenants, id: &str) -> PgConnection {
    let location = store.locate(&tenant(id)).unwrap();
    let mut conn = PgConnection::establish(&location.url).unwrap();
    conn.batch_execute(&format!("SET search_path = \"{}\"", location.schema))
        .unwrap();
    conn
}

/// ` AND tenant_id = 'acme'` in row mode.
fn only(store: &PgTenants, id: &str) -> String {
    match store.isolation() {
        "row" => format!(" AND tenant_id = '{id}'"),
        _ => String::new(),
    }
}

/// Change `id` in every way a rehydration must undo.
fn scramble(store: &PgTenants, id: &str) {
    let mut conn = tenant_conn(store, id);
    let and = only(store, id);
    let (column, value) = match store.isolation() {
        "row" => ("tenant_id, ", format!("'{id}', ")),
        _ => ("", String::new()),
    };
    conn.batch_execute(&format!(
        "DELETE FROM order_items WHERE line_no = 1{and};
         UPDATE accounts SET name = 'changed', mrr = 0 WHERE id % 3 = 0{and};
         INSERT INTO accounts ({column}name, plan, mrr, created_at, marker)
              VALUES ({value}'new', 'free', 1, now(), 'marker-{id}');
         UPDATE products SET weight_kg = NULL WHERE true{and};
         DELETE FROM customer_config WHERE true{and};"
    ))
    .unwrap();
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn scalar(conn: &mut PgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).load::<N>(conn).unwrap()[0].n
}

/// The whole story in one isolation mode.
fn round_trip(db: &TestDb, store: &PgTenants) {
    sample(store, "acme");
    sample(store, "acme2");
    let before = export(store, "acme");
    let other = export(store, "acme2");
    let all: Vec<String> = before
        .schema
        .tables
        .iter()
        .map(|t| t.name.clone())
        .collect();

    // lite: one load empties every table, imports it and moves the
    // sequences.
    scramble(store, "acme");
    let mut writer = store.writer(&tenant("acme"), Path::new("/unused")).unwrap();
    assert_ne!(hashes(writer.as_mut(), &before.schema), before.blake3);
    let imported = import_all(writer.as_mut(), &before.schema, &before.ndjson);
    assert!(imported.deleted > 2_000, "{imported:?}");
    assert_eq!(hashes(writer.as_mut(), &before.schema), before.blake3);
    // Repeating the load (a resumed step) replaces rather than duplicates,
    // and so does repeating one table that no other table references.
    let again = import_all(writer.as_mut(), &before.schema, &before.ndjson);
    assert_eq!((again.deleted, again.rows), (imported.rows, imported.rows));
    let last = &before.schema.tables.last().unwrap().name;
    let again = import_one(
        writer.as_mut(),
        last,
        WriteMode::Replace,
        &text(&before, last),
    );
    assert_eq!(again.unwrap().inserted, rows_of(&before, last));
    assert_eq!(hashes(writer.as_mut(), &before.schema), before.blake3);
    let counted: u64 = all.iter().map(|t| writer.count_rows(t).unwrap()).sum();
    assert_eq!(counted, imported.rows);

    // Sequences continue past the largest key, and past the scrambled
    // insert's id, which is never handed out again.
    let mut conn = tenant_conn(store, "acme");
    let and = only(store, "acme");
    let max = scalar(
        &mut conn,
        &format!("SELECT max(id) AS n FROM accounts WHERE true{and}"),
    );
    let (column, value) = match store.isolation() {
        "row" => ("tenant_id, ", "'acme', "),
        _ => ("", ""),
    };
    let new_id = scalar(
        &mut conn,
        &format!(
            "INSERT INTO accounts ({column}name, plan, mrr, created_at, marker) \
             VALUES ({value}'after', 'free', 1, now(), 'marker-acme') RETURNING id AS n"
        ),
    );
    assert!(new_id > max + 1, "{new_id} continues past {max}");
    // The schema reads back as it was exported.
    assert_eq!(writer.schema().unwrap().tables, before.schema.tables);

    // Native: the dump restores over a changed tenant in one transaction.
    scramble(store, "acme");
    let counts = writer
        .native_row_counts(&before.native_format, &before.native)
        .unwrap();
    let mut counts: Vec<(String, u64)> = counts;
    counts.sort();
    let mut want: Vec<(String, u64)> = all
        .iter()
        .map(|t| (t.clone(), rows_of(&before, t)))
        .collect();
    want.sort();
    assert_eq!(counts, want);
    let first = restore_native(writer.as_mut(), &before.native_format, &before.native).unwrap();
    assert!(first.deleted > 2_000, "{first:?}");
    let again = restore_native(writer.as_mut(), &before.native_format, &before.native).unwrap();
    assert_eq!(again.deleted, imported.rows, "replaced, not duplicated");
    assert_eq!(hashes(writer.as_mut(), &before.schema), before.blake3);
    assert_native_format_refused(writer.as_mut(), "sqlite3", &before.native);

    // Maintenance: the registry's flag, for this tenant only.
    writer.set_maintenance(true).unwrap();
    writer.set_maintenance(true).unwrap();
    assert!(store.in_maintenance(&tenant("acme")).unwrap());
    assert!(!store.in_maintenance(&tenant("acme2")).unwrap());
    writer.set_maintenance(false).unwrap();
    assert!(!store.in_maintenance(&tenant("acme")).unwrap());

    // The other tenant was never touched.
    let mut theirs = store
        .writer(&tenant("acme2"), Path::new("/unused"))
        .unwrap();
    assert_eq!(hashes(theirs.as_mut(), &other.schema), other.blake3);
    let _ = db;
}

#[test]
fn schema_mode_round_trip() {
    let db = TestDb::new();
    round_trip(&db, &db.store(PgIsolation::Schema));
}

#[test]
fn database_mode_round_trip() {
    let db = TestDb::new();
    round_trip(&db, &db.store(PgIsolation::Database));
}

#[test]
fn row_mode_round_trip_keeps_acme2_apart() {
    let db = TestDb::new();
    let store = db.store(PgIsolation::Row {
        row_security: false,
    });
    round_trip(&db, &store);

    // A line naming another tenant is refused, not rewritten.
    let acme2 = export(&store, "acme2");
    let mut writer = store.writer(&tenant("acme"), Path::new("/unused")).unwrap();
    let config = text(&acme2, "customer_config");
    let err = assert_refused(
        writer.as_mut(),
        "customer_config",
        WriteMode::Replace,
        &config,
        "row_invalid",
    );
    assert!(err.message.contains("line 1"), "{}", err.message);
}

#[test]
fn row_mode_with_row_level_security_round_trip() {
    let db = TestDb::new();
    let mut config = db.config(PgIsolation::Row { row_security: true });
    config.row_security_role = Some(format!("{}_reader", db.prefix));
    round_trip(&db, &PgTenants::new(config).unwrap());
}

/// Import the types table on `path` over changed rows and compare.
fn types_round_trip(path: LoadPath) {
    let db = TestDb::new();
    let store = db.store(PgIsolation::Schema);
    let mut conn = db.conn();
    conn.batch_execute("CREATE SCHEMA tenant_types; SET search_path = tenant_types;")
        .unwrap();
    conn.batch_execute(TYPES_SQL).unwrap();
    let before = export(&store, "types");
    conn.batch_execute("UPDATE zoo SET t = 'changed', f8 = 1, jb = '{}', ia = '{9}'; DELETE FROM zoo WHERE id = 4;")
        .unwrap();
    let mut writer = store
        .open_writer(&tenant("types"))
        .unwrap()
        .with_load_path(path);
    assert_ne!(
        writer.content_hash("zoo").unwrap().blake3,
        before.blake3["zoo"]
    );
    let writes = import_one(
        &mut writer,
        "zoo",
        WriteMode::Replace,
        &text(&before, "zoo"),
    )
    .unwrap();
    assert_eq!(writes.inserted, 4);
    // The hash is over PostgreSQL's own text of every column: equal hashes
    // are equal values, NaN, -0, numeric scale, BC dates and all.
    assert_eq!(
        writer.content_hash("zoo").unwrap().blake3,
        before.blake3["zoo"]
    );
    let generated = scalar(
        &mut conn,
        "SELECT count(*) AS n FROM zoo WHERE gen = num_s * 2",
    );
    assert_eq!(
        generated, 3,
        "generated columns are recomputed, not inserted"
    );
}

#[test]
fn every_type_round_trips_exactly_with_copy() {
    types_round_trip(LoadPath::Copy);
}

#[test]
fn every_type_round_trips_exactly_with_batched_inserts() {
    types_round_trip(LoadPath::BatchedInsert);
}

#[test]
fn merge_does_what_its_preview_says() {
    let db = TestDb::new();
    let store = db.store(PgIsolation::Schema);
    let mut conn = db.conn();
    conn.batch_execute(
        "CREATE SCHEMA tenant_m; SET search_path = tenant_m;
         CREATE TABLE people (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             ext text NOT NULL UNIQUE, email text UNIQUE, name text, score numeric);
         INSERT INTO people (ext, email, name, score) VALUES
             ('a', 'a@x', 'Ann', 1.0), ('b', 'b@x', 'Bob', 2.0), ('c', 'c@x', 'Cy', 3.0);",
    )
    .unwrap();
    // By natural key: a unchanged, b renamed, c's score 3.0 -> 3.00 (the
    // same number, another text: an export would differ), d new.
    let bundle = concat!(
        r#"{"id":1,"ext":"a","email":"a@x","name":"Ann","score":"1.0"}"#,
        "\n",
        r#"{"id":2,"ext":"b","email":"b@x","name":"BOB","score":"2.0"}"#,
        "\n",
        r#"{"id":3,"ext":"c","email":"c@x","name":"Cy","score":"3.00"}"#,
        "\n",
        r#"{"id":4,"ext":"d","email":"d@x","name":"Di","score":null}"#,
        "\n",
    );
    let mut writer = store.writer(&tenant("m"), Path::new("/unused")).unwrap();
    check_merge(writer.as_mut(), bundle);
}

#[test]
fn row_mode_merges_by_a_natural_key_within_the_tenant() {
    let db = TestDb::new();
    let store = db.store(PgIsolation::Row {
        row_security: false,
    });
    sample(&store, "acme");
    sample(&store, "acme2");
    let users = export(&store, "acme");
    let theirs = export(&store, "acme2");
    let mut conn = tenant_conn(&store, "acme");
    conn.batch_execute(
        "UPDATE users SET display_name = 'renamed' WHERE id <= 3 AND tenant_id = 'acme'",
    )
    .unwrap();
    // The bundle also holds a user the tenant does not have (by email).
    let mut rows = text(&users, "users");
    let last = rows.lines().last().unwrap().to_owned();
    let id = last
        .split("\"id\":")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    let email = last
        .split("\"email\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    rows.push_str(
        &last
            .replacen(&format!("\"id\":{id},"), "\"id\":999999,", 1)
            .replacen(email, "new-user@example.com", 1),
    );
    rows.push('\n');
    let mut writer = store.writer(&tenant("acme"), Path::new("/unused")).unwrap();
    let key = vec!["email".to_owned()];
    let preview = writer
        .preview_merge("users", &key, &mut reader(&rows))
        .unwrap();
    assert_eq!(
        (preview.will_insert, preview.will_update, preview.conflicts),
        (1, 3, 0)
    );
    let writes = import_one(writer.as_mut(), "users", WriteMode::Merge { key }, &rows).unwrap();
    assert_eq!((writes.inserted, writes.updated), (1, 3));
    let hash = blake3::hash(rows.as_bytes()).to_hex().to_string();
    assert_eq!(writer.content_hash("users").unwrap().blake3, hash);
    let mut other = store
        .writer(&tenant("acme2"), Path::new("/unused"))
        .unwrap();
    assert_eq!(
        other.content_hash("users").unwrap().blake3,
        theirs.blake3["users"]
    );
}

#[test]
fn a_failing_group_leaves_its_tables_as_they_were() {
    let db = TestDb::new();
    let store = db.store(PgIsolation::Schema);
    sample(&store, "acme");
    let before = export(&store, "acme");
    let mut writer = store.writer(&tenant("acme"), Path::new("/unused")).unwrap();
    // kpi_time_series: a table nothing references, so Replace may empty it.
    let series = "kpi_time_series";
    let lines: Vec<String> = text(&before, series).lines().map(str::to_owned).collect();
    let replace = || WriteMode::Replace;

    // Line 3 is refused by the decoder (an array for a text column), after
    // lines 1 and 2 were already sent to COPY.
    let mut bad = lines.clone();
    bad[2] = bad[2].replacen("\"kpi_id\":", "\"kpi_id\":[1],\"x\":", 1);
    let body = bad.join("\n") + "\n";
    let err = assert_refused(writer.as_mut(), series, replace(), &body, "row_invalid");
    assert!(err.message.contains("line 3"), "{}", err.message);

    // A value only the server can judge (a malformed timestamp), and a
    // duplicate key.
    let first = lines[0].clone();
    let broken = first.replacen("\"created_at\":\"", "\"created_at\":\"not a time ", 1);
    for body in [format!("{broken}\n"), format!("{first}\n{first}\n")] {
        assert_refused(writer.as_mut(), series, replace(), &body, "row_invalid");
    }

    // Foreign keys: replacing a table that other tables' rows reference
    // without the rows they reference, or orphaning a child, is refused
    // and changes nothing.
    let fk = "foreign_key_violation";
    let order_items = writer.content_hash("order_items").unwrap();
    assert!(order_items.rows > 0);
    assert_refused(writer.as_mut(), "products", replace(), "", fk);
    assert_eq!(writer.content_hash("order_items").unwrap(), order_items);
    // With the same rows back (the keys are checked in bulk at the end of
    // the load, not when the table is emptied) the replace is accepted.
    let products = text(&before, "products");
    let writes = import_one(writer.as_mut(), "products", replace(), &products).unwrap();
    assert_eq!(writes.inserted, rows_of(&before, "products"));
    assert_eq!(hashes(writer.as_mut(), &before.schema), before.blake3);
    let orphan = first.replacen("\"kpi_id\":\"", "\"kpi_id\":\"missing-", 1);
    let merge = WriteMode::Merge { key: vec![] };
    assert_refused(writer.as_mut(), series, merge, &orphan, fk);
    let users = writer.content_hash("users").unwrap();
    assert_refused(writer.as_mut(), "accounts", replace(), "", fk);
    assert_eq!(writer.content_hash("users").unwrap(), users);

    let err = writer.content_hash("nope").unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), ("unknown_table", false));
}

/// Tenant `cyc`: two tables referencing each other, a unique key and a
/// partial index.
const CYCLE_SQL: &str = "CREATE SCHEMA tenant_cyc; SET search_path = tenant_cyc;
     CREATE TABLE a (id int PRIMARY KEY, b_id int NOT NULL);
     CREATE TABLE b (id int PRIMARY KEY, a_id int NOT NULL REFERENCES a (id),
                     code text UNIQUE DEFERRABLE);
     CREATE INDEX b_a_id ON b (a_id) WHERE a_id > 0;
     ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b (id) ON DELETE CASCADE;
     WITH wa AS (INSERT INTO a VALUES (1, 10), (2, 20))
     INSERT INTO b VALUES (10, 1), (20, 2);";

/// Replace `a` and `b` with `a` and `b` (NDJSON) in one load.
fn import_cycle(writer: &mut dyn TenantWriter, a: &str, b: &str) -> Result<LoadOutcome, PortError> {
    let counts = vec![
        ("a".to_owned(), support::writer::lines(a.as_bytes())),
        ("b".to_owned(), support::writer::lines(b.as_bytes())),
    ];
    load_lite(
        writer,
        &[
            ("a", WriteMode::Replace, a.as_bytes()),
            ("b", WriteMode::Replace, b.as_bytes()),
        ],
        Verify::Counts(counts),
        &mut Recorder::default(),
    )
}

/// Replacing `a` and `b` with an orphan in `b` is refused when the foreign
/// keys are checked, and both tables stay as they were.
fn refuse_an_orphan(writer: &mut dyn TenantWriter, before: &Export) {
    let held = hashes(writer, &before.schema);
    let orphan = text(before, "b").replacen("\"a_id\":1", "\"a_id\":99", 1);
    let err = import_cycle(writer, &text(before, "a"), &orphan).unwrap_err();
    assert_eq!(err.code, "foreign_key_violation", "{err:?}");
    assert_eq!(hashes(writer, &before.schema), held);
}

/// Load the exported `a` and `b` in one load over the 4 rows they hold:
/// the tables equal the export.
fn load_the_export(writer: &mut dyn TenantWriter, before: &Export) {
    let outcome = import_cycle(writer, &text(before, "a"), &text(before, "b")).unwrap();
    let writes = &outcome.tables;
    assert_eq!(outcome.deleted, 4);
    assert_eq!((writes[0].inserted, writes[1].inserted), (2, 2));
    assert_eq!(hashes(writer, &before.schema), before.blake3);
}

/// A writer that does not own the tables cannot set their keys aside: it
/// loads with the row-level checks, which still refuse an orphan.
#[test]
fn a_writer_that_does_not_own_the_tables_loads_with_row_level_checks() {
    let db = TestDb::new();
    let owner = db.store(PgIsolation::Schema);
    let mut conn = db.conn();
    conn.batch_execute(CYCLE_SQL).unwrap();
    let before = export(&owner, "cyc");
    let role = format!("{}_writer", db.prefix);
    conn.batch_execute(&format!(
        "CREATE ROLE \"{role}\" LOGIN;
         GRANT USAGE ON SCHEMA tenant_cyc TO \"{role}\";
         GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES
             ON ALL TABLES IN SCHEMA tenant_cyc TO \"{role}\";
         GRANT USAGE, CREATE ON SCHEMA public TO \"{role}\";
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{role}\";"
    ))
    .unwrap();
    let url = db.url.replacen("://postgres@", &format!("://{role}@"), 1);
    assert_ne!(url, db.url, "the test database URL names user postgres");
    let mut config = db.config(PgIsolation::Schema);
    config.platform_url = url;
    let store = PgTenants::new(config).unwrap();
    let mut writer = store.writer(&tenant("cyc"), Path::new("/unused")).unwrap();
    refuse_an_orphan(writer.as_mut(), &before);
    load_the_export(writer.as_mut(), &before);
}

#[test]
fn a_foreign_key_cycle_loads_as_one_group() {
    let db = TestDb::new();
    let store = db.store(PgIsolation::Schema);
    let mut conn = db.conn();
    conn.batch_execute(CYCLE_SQL).unwrap();
    let before = export(&store, "cyc");
    let constraints = |conn: &mut PgConnection| -> Vec<(String, String)> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            name: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            def: String,
        }
        diesel::sql_query(
            "SELECT conname::text AS name, pg_get_constraintdef(oid) AS def \
             FROM pg_constraint WHERE connamespace = 'tenant_cyc'::regnamespace \
             UNION ALL SELECT indexname::text, indexdef FROM pg_indexes \
             WHERE schemaname = 'tenant_cyc' ORDER BY 1, 2",
        )
        .load::<Row>(conn)
        .unwrap()
        .into_iter()
        .map(|r| (r.name, r.def))
        .collect()
    };
    let keys_before = constraints(&mut conn);
    let mut writer = store.writer(&tenant("cyc"), Path::new("/unused")).unwrap();
    // An orphan is refused when the foreign keys come back, and the
    // tables stay as they were (with their keys: checked below).
    refuse_an_orphan(writer.as_mut(), &before);
    assert_eq!(writer.count_rows("a").unwrap(), 2);
    assert_eq!(constraints(&mut conn), keys_before);
    load_the_export(writer.as_mut(), &before);
    // The keys and indexes set aside for the load are back, as they were:
    // 2 primary keys, 2 foreign keys, 1 unique key, their 3 indexes and 1
    // partial index.
    assert_eq!(constraints(&mut conn), keys_before);
    assert_eq!(keys_before.len(), 9, "{keys_before:?}");
}

/// Schema mode: a sample tenant `acme` changed since its export, beside
/// `acme2`.
fn changed_since_export(store: &PgTenants) -> (Export, Export) {
    sample(store, "acme");
    sample(store, "acme2");
    let before = export(store, "acme");
    let other = export(store, "acme2");
    scramble(store, "acme");
    (before, other)
}

#[test]
fn a_load_that_does_not_verify_commits_nothing() {
    let db = TestDb::new();
    let store = db.store(PgIsolation::Schema);
    let (before, other) = changed_since_export(&store);
    let mut writer = store.writer(&tenant("acme"), Path::new("/unused")).unwrap();
    check_verify_mismatch_commits_nothing(
        writer.as_mut(),
        &before.schema,
        &before.ndjson,
        &before.blake3,
        "accounts",
    );
    let mut theirs = store
        .writer(&tenant("acme2"), Path::new("/unused"))
        .unwrap();
    assert_eq!(hashes(theirs.as_mut(), &other.schema), other.blake3);
}

#[test]
fn a_load_cancelled_half_way_commits_nothing() {
    let db = TestDb::new();
    let store = db.store(PgIsolation::Schema);
    let (before, _) = changed_since_export(&store);
    let mut writer = store.writer(&tenant("acme"), Path::new("/unused")).unwrap();
    check_cancel_commits_nothing(
        writer.as_mut(),
        &before.schema,
        &before.ndjson,
        &before.blake3,
    );

    // A native restore that does not verify, or is cancelled half-way or
    // just before its commit, leaves every table as it was too.
    scramble(&store, "acme");
    check_native_restore_commits_nothing(
        writer.as_mut(),
        &before.schema,
        &before.native_format,
        &before.native,
        &before.blake3,
    );
}
