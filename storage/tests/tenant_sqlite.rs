//! The embedded SQLite tenant store against real SQLite files: the sample
//! tenant end to end (snapshot, schema, every table as NDJSON and CSV), exact
//! encodings of tricky values, quoting of hostile names, the analytics date
//! filter's boundaries, error codes, and snapshot reuse and consistency
//! while the live database keeps changing.

use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Binary, Double, Nullable, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};
use ferry_engine::TenantId;
use ferry_storage::sample::{self, SampleOptions, SampleSummary};
use ferry_storage::tenant_sqlite::{SqliteTenants, PROGRESS_EVERY_ROWS, SNAPSHOT_FILE};
use ferry_workflows::ports::tenant::{
    DateFilter, SchemaInfo, TableFormat, TenantSnapshot, TenantStore,
};
use ferry_workflows::ports::PortError;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).expect("valid tenant id")
}

fn date(s: &str) -> chrono::NaiveDate {
    s.parse().expect("valid date")
}

/// A tenants directory, an assets directory and work directories, all in
/// one temporary folder.
struct Fixture {
    root: tempfile::TempDir,
    store: SqliteTenants,
}

impl Fixture {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        let store = SqliteTenants::new(root.path().join("tenants"));
        Fixture { root, store }
    }

    fn assets(&self) -> PathBuf {
        self.root.path().join("assets")
    }

    fn work(&self, name: &str) -> PathBuf {
        self.root.path().join("work").join(name)
    }

    fn sample(&self, id: &str, scale: u32, seed: u64) -> SampleSummary {
        sample::create_sample_tenant(self.store.dir(), &self.assets(), &tenant(id), scale, seed)
            .expect("sample tenant")
    }

    /// A tenant database made by hand from `ddl`.
    fn create(&self, id: &str, ddl: &str) -> SqliteConnection {
        std::fs::create_dir_all(self.store.dir()).expect("tenants dir");
        let path = self.store.db_path(&tenant(id));
        let mut conn = live(&path);
        conn.batch_execute(ddl).expect("ddl");
        conn
    }

    fn snapshot(&self, id: &str, work: &str) -> Box<dyn TenantSnapshot> {
        self.store
            .snapshot(&tenant(id), &self.work(work))
            .expect("snapshot")
    }
}

fn live(path: &Path) -> SqliteConnection {
    SqliteConnection::establish(path.to_str().expect("utf-8 path")).expect("open live db")
}

fn dump(snap: &mut dyn TenantSnapshot, table: &str, format: &TableFormat) -> (String, u64) {
    let mut out = Vec::new();
    let stats = snap
        .dump_table(table, format, &mut out, &mut |_| {})
        .expect("dump");
    (String::from_utf8(out).expect("utf-8 dump"), stats.rows)
}

fn ndjson(snap: &mut dyn TenantSnapshot, table: &str) -> String {
    dump(snap, table, &TableFormat::Ndjson).0
}

fn csv(snap: &mut dyn TenantSnapshot, table: &str) -> String {
    dump(snap, table, &TableFormat::Csv { date_filter: None }).0
}

fn dump_err(snap: &mut dyn TenantSnapshot, table: &str) -> PortError {
    let mut out = Vec::new();
    snap.dump_table(table, &TableFormat::Ndjson, &mut out, &mut |_| {})
        .expect_err("dump should fail")
}

fn names(schema: &SchemaInfo) -> Vec<&str> {
    schema.tables.iter().map(|t| t.name.as_str()).collect()
}

#[test]
fn sample_tenant_exports_every_table_in_both_formats() {
    let fx = Fixture::new();
    let summary = fx.sample("acme", 1, 7);
    assert_eq!(summary.tables.len(), sample::TABLES.len());
    assert!(
        summary.total_rows > 2_000,
        "scale 1 is a few thousand rows: {summary:?}"
    );
    assert!(fx.store.tenant_exists(&tenant("acme")).unwrap());

    let mut snap = fx.snapshot("acme", "w1");
    assert!(snap.durable());
    let schema = snap.schema().unwrap();
    assert_eq!(
        (schema.engine.as_str(), schema.isolation.as_str()),
        ("sqlite", "database")
    );
    let got: BTreeSet<&str> = names(&schema).into_iter().collect();
    let want: BTreeSet<&str> = sample::TABLES.iter().copied().collect();
    assert_eq!(got, want);

    // Foreign-key order: every referenced table comes earlier.
    let order = names(&schema);
    for table in &schema.tables {
        let at = order.iter().position(|n| *n == table.name).unwrap();
        for fk in &table.foreign_keys {
            let before = order.iter().position(|n| *n == fk.ref_table).unwrap();
            assert!(
                before < at,
                "{} must come after {}: {order:?}",
                table.name,
                fk.ref_table
            );
        }
    }
    let items = schema.table("order_items").unwrap();
    assert_eq!(items.primary_key, ["order_id", "line_no"]);
    assert_eq!(items.foreign_keys.len(), 2);
    assert_eq!(schema.table("kpis").unwrap().primary_key, ["id"]);
    let users = schema.table("users").unwrap();
    let avatar = users.columns.iter().find(|c| c.name == "avatar").unwrap();
    assert_eq!((avatar.data_type.as_str(), avatar.nullable), ("BLOB", true));

    // Sequences: AUTOINCREMENT tables from sqlite_sequence, plain INTEGER
    // PRIMARY KEY tables from their largest key, none for text, composite
    // or WITHOUT ROWID keys.
    let seq = |t: &str| {
        schema
            .sequences
            .iter()
            .find(|s| s.table == t)
            .map(|s| s.last_value)
    };
    assert_eq!(seq("accounts"), Some(summary.tables["accounts"] as i64));
    assert_eq!(seq("products"), Some(summary.tables["products"] as i64));
    assert_eq!(
        seq("kpi_time_series"),
        Some(summary.tables["kpi_time_series"] as i64)
    );
    // Two health trends were deleted after insertion: the sequence runs ahead.
    assert_eq!(
        seq("health_trends"),
        Some(summary.tables["health_trends"] as i64 + 2)
    );
    assert_eq!(seq("kpis"), None);
    assert_eq!(seq("order_items"), None);
    assert_eq!(seq("customer_config"), None);
    assert!(schema.sequences.iter().all(|s| s.column == "id"));

    for table in &schema.tables {
        let rows = summary.tables[&table.name];
        let columns: BTreeSet<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();

        let (text, dumped) = dump(snap.as_mut(), &table.name, &TableFormat::Ndjson);
        assert_eq!(dumped, rows, "{}", table.name);
        assert_eq!(text.lines().count() as u64, rows, "{}", table.name);
        for line in text.lines() {
            let value: serde_json::Value = serde_json::from_str(line).expect("valid JSON line");
            let object = value.as_object().expect("one object per line");
            assert_eq!(
                object.keys().map(String::as_str).collect::<BTreeSet<_>>(),
                columns
            );
            assert_eq!(object["marker"], summary.marker.as_str(), "{}", table.name);
        }

        let (text, dumped) = dump(
            snap.as_mut(),
            &table.name,
            &TableFormat::Csv { date_filter: None },
        );
        assert_eq!(dumped, rows, "{}", table.name);
        let mut reader = ::csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        let want: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
        assert_eq!(header, want);
        let records: Vec<::csv::StringRecord> = reader
            .records()
            .collect::<Result<_, _>>()
            .expect("valid CSV records");
        assert_eq!(records.len() as u64, rows, "{}", table.name);
    }

    // Types survive: decimals stay text, blobs are tagged, floats are numbers.
    for line in ndjson(snap.as_mut(), "orders").lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let total = row["total"].as_str().expect("decimal total stays a string");
        assert!(
            total
                .split_once('.')
                .is_some_and(|(_, frac)| frac.len() == 2),
            "{total}"
        );
        assert!(row["fx_rate"]
            .as_str()
            .is_some_and(|r| r.split_once('.').unwrap().1.len() == 6));
    }
    let users = ndjson(snap.as_mut(), "users");
    assert!(
        users.contains(r#""avatar":{"$base64":"iVBORw0KGgoA"#),
        "PNG-signature avatars"
    );
    assert!(users.contains(r#""avatar":null"#));
    let products = ndjson(snap.as_mut(), "products");
    assert!(products.lines().any(|l| l.contains(r#""weight_kg":null"#)));
    assert!(products.lines().any(|l| {
        let row: serde_json::Value = serde_json::from_str(l).unwrap();
        row["weight_kg"].is_f64()
    }));
    // Unicode is written as is, not escaped.
    let accounts = ndjson(snap.as_mut(), "accounts");
    assert!(["شركة النور", "東京商事", "🚀 Rocket"]
        .iter()
        .all(|s| accounts.contains(s)));

    // The same snapshot dumps to the same bytes every time.
    assert_eq!(
        ndjson(snap.as_mut(), "order_items"),
        ndjson(snap.as_mut(), "order_items")
    );
}

#[test]
fn sample_is_deterministic_for_a_seed_and_marks_its_tenant() {
    let a = Fixture::new();
    let b = Fixture::new();
    let sa = a.sample("acme", 1, 42);
    let sb = b.sample("acme", 1, 42);
    assert_eq!(sa.tables, sb.tables);
    assert_eq!(sa.asset_files, sb.asset_files);
    let mut x = a.snapshot("acme", "w");
    let mut y = b.snapshot("acme", "w");
    assert_eq!(
        x.schema().unwrap().fingerprint(),
        y.schema().unwrap().fingerprint()
    );
    for table in sample::TABLES {
        assert_eq!(
            ndjson(x.as_mut(), table),
            ndjson(y.as_mut(), table),
            "{table}"
        );
    }

    // Another seed, other data; another tenant, other markers.
    let other = a.sample("globex", 1, 43);
    let mut z = a.snapshot("globex", "wz");
    assert_ne!(ndjson(x.as_mut(), "orders"), ndjson(z.as_mut(), "orders"));
    for table in sample::TABLES {
        let text = ndjson(z.as_mut(), table);
        assert!(
            !text.contains(&sa.marker),
            "{table} of globex mentions acme's marker"
        );
        assert!(text.lines().all(|l| l.contains(&other.marker)), "{table}");
    }

    // Scale is linear in the scaled tables.
    let double = b.sample("big", 2, 42);
    assert_eq!(double.tables["accounts"], 2 * sa.tables["accounts"]);
    assert_eq!(
        double.tables["kpi_time_series"],
        2 * sa.tables["kpi_time_series"]
    );
}

#[test]
fn sample_writes_assets_and_refuses_to_overwrite_unless_asked() {
    let fx = Fixture::new();
    let first = fx.sample("acme", 1, 1);
    let logo = std::fs::read(first.assets_dir.join("logo.png")).unwrap();
    assert!(logo.starts_with(b"\x89PNG\r\n\x1a\n") && logo.ends_with(b"IEND\xaeB`\x82"));
    let note = std::fs::read_to_string(first.assets_dir.join("products/1.txt")).unwrap();
    assert!(note.contains(&first.marker));
    assert!(first
        .asset_files
        .contains(&"branding/theme.json".to_owned()));
    let on_disk: u64 = first
        .asset_files
        .iter()
        .map(|f| std::fs::metadata(first.assets_dir.join(f)).unwrap().len())
        .sum();
    assert_eq!(on_disk, first.asset_bytes);
    assert_eq!(first.assets_dir, fx.assets().join("acme"));

    let err = sample::create_sample_tenant(fx.store.dir(), &fx.assets(), &tenant("acme"), 1, 2)
        .expect_err("the tenant exists");
    assert_eq!(err.code(), "tenant_exists");

    let options = SampleOptions {
        scale: 2,
        seed: 2,
        overwrite: true,
    };
    let second = sample::create_sample(fx.store.dir(), &fx.assets(), &tenant("acme"), &options)
        .expect("overwrite");
    let mut snap = fx.snapshot("acme", "w");
    assert_eq!(
        dump(snap.as_mut(), "accounts", &TableFormat::Ndjson).1,
        second.tables["accounts"]
    );
    assert_eq!(second.tables["accounts"], 2 * first.tables["accounts"]);
}

/// One table of awkward values; each row is one case. The expected lines
/// are the exact bytes an import will read.
const TRICKY_DDL: &str = r#"
CREATE TABLE tricky (
    id INTEGER PRIMARY KEY,
    i INTEGER, r REAL, t TEXT, b BLOB, n NUMERIC, d DECIMAL(30,9), free
);
"#;

fn insert_tricky(conn: &mut SqliteConnection) {
    type Row = (
        i64,
        Option<i64>,
        Option<f64>,
        Option<&'static str>,
        Option<Vec<u8>>,
    );
    let rows: [Row; 4] = [
        (1, Some(i64::MIN), Some(0.1), Some(""), Some(vec![])),
        (
            2,
            Some(i64::MAX),
            Some(1e-300),
            None,
            Some(vec![0x00, 0x01, 0x00, 0xff]),
        ),
        (
            3,
            Some(0),
            Some(-2.5),
            Some("مرحبا 世界 🚀 \"quoted\", comma\nnewline"),
            None,
        ),
        (
            4,
            Some(-1),
            Some(f64::INFINITY),
            Some("\u{0}nul inside"),
            None,
        ),
    ];
    for (id, i, r, t, b) in rows {
        diesel::sql_query("INSERT INTO tricky (id, i, r, t, b) VALUES (?1, ?2, ?3, ?4, ?5)")
            .bind::<BigInt, _>(id)
            .bind::<Nullable<BigInt>, _>(i)
            .bind::<Nullable<Double>, _>(r)
            .bind::<Nullable<Text>, _>(t)
            .bind::<Nullable<Binary>, _>(b)
            .execute(conn)
            .unwrap();
    }
    // NUMERIC affinity keeps text that is not a number ('12,50') as text and
    // turns numbers into numbers; a column without a type keeps exactly what
    // it is given, so there the long decimal stays text.
    conn.batch_execute(
        r#"
        UPDATE tricky SET n = '12,50', d = 12.5,
            free = '12345678901234567890.123456789' WHERE id = 1;
        UPDATE tricky SET n = 42, free = x'00' WHERE id = 3;
        UPDATE tricky SET free = 5e-324 WHERE id = 4;
        "#,
    )
    .unwrap();
}

#[test]
fn tricky_values_are_encoded_exactly() {
    let fx = Fixture::new();
    let mut conn = fx.create("tricky", TRICKY_DDL);
    insert_tricky(&mut conn);
    drop(conn);
    let mut snap = fx.snapshot("tricky", "w");

    let expected_ndjson = [
        r#"{"id":1,"i":-9223372036854775808,"r":0.1,"t":"","b":{"$base64":""},"n":"12,50","d":12.5,"free":"12345678901234567890.123456789"}"#,
        r#"{"id":2,"i":9223372036854775807,"r":1e-300,"t":null,"b":{"$base64":"AAEA/w=="},"n":null,"d":null,"free":null}"#,
        r#"{"id":3,"i":0,"r":-2.5,"t":"مرحبا 世界 🚀 \"quoted\", comma\nnewline","b":null,"n":42,"d":null,"free":{"$base64":"AA=="}}"#,
        r#"{"id":4,"i":-1,"r":{"$float":"Infinity"},"t":"\u0000nul inside","b":null,"n":null,"d":null,"free":5e-324}"#,
    ];
    let got = ndjson(snap.as_mut(), "tricky");
    assert_eq!(got.lines().collect::<Vec<_>>(), expected_ndjson);
    assert!(got.ends_with('\n'));

    // The printed floats parse back to the very same bits, and the integer
    // extremes parse back as i64 (serde_json keeps them exact).
    for (text, value) in [
        ("0.1", 0.1),
        ("1e-300", 1e-300),
        ("-2.5", -2.5),
        ("5e-324", 5e-324),
    ] {
        assert_eq!(text.parse::<f64>().unwrap().to_bits(), f64::to_bits(value));
    }
    let first: serde_json::Value = serde_json::from_str(expected_ndjson[0]).unwrap();
    assert_eq!(first["i"].as_i64(), Some(i64::MIN));
    let second: serde_json::Value = serde_json::from_str(expected_ndjson[1]).unwrap();
    assert_eq!(second["i"].as_i64(), Some(i64::MAX));

    let expected_csv = concat!(
        "id,i,r,t,b,n,d,free\r\n",
        "1,-9223372036854775808,0.1,\"\",\"\",\"12,50\",12.5,12345678901234567890.123456789\r\n",
        "2,9223372036854775807,1e-300,,AAEA/w==,,,\r\n",
        "3,0,-2.5,\"مرحبا 世界 🚀 \"\"quoted\"\", comma\nnewline\",,42,,AA==\r\n",
        "4,-1,Infinity,\u{0}nul inside,,,,5e-324\r\n",
    );
    assert_eq!(csv(snap.as_mut(), "tricky"), expected_csv);
    // An independent RFC 4180 reader sees the same fields.
    let mut reader = ::csv::Reader::from_reader(expected_csv.as_bytes());
    let third = reader.records().nth(2).unwrap().unwrap();
    assert_eq!(&third[3], "مرحبا 世界 🚀 \"quoted\", comma\nnewline");
}

#[test]
fn hostile_table_and_column_names_are_quoted() {
    let fx = Fixture::new();
    let conn = fx.create(
        "odd",
        r#"
        CREATE TABLE "order" (id INTEGER PRIMARY KEY, "unit ""price"" x" TEXT, created_at TEXT);
        CREATE TABLE "line""; DROP TABLE ""order""; --" (
            "order id" INTEGER REFERENCES "order", note TEXT);
        CREATE TABLE wr (id INTEGER PRIMARY KEY, v TEXT) WITHOUT ROWID;
        INSERT INTO "order" VALUES (1, '9.99', '2026-01-02T10:00:00Z'), (2, NULL, '2026-03-01');
        INSERT INTO "line""; DROP TABLE ""order""; --" VALUES (1, 'a'), (2, 'b');
        INSERT INTO wr VALUES (5, 'x');
        "#,
    );
    drop(conn);
    let mut snap = fx.snapshot("odd", "w");
    let schema = snap.schema().unwrap();
    let evil = "line\"; DROP TABLE \"order\"; --";
    assert_eq!(names(&schema), ["order", evil, "wr"]);
    let line = schema.table(evil).unwrap();
    assert_eq!(line.foreign_keys[0].columns, ["order id"]);
    // `REFERENCES "order"` without columns means its primary key.
    assert_eq!(line.foreign_keys[0].ref_columns, ["id"]);
    assert_eq!(
        schema.sequences.len(),
        1,
        "WITHOUT ROWID keys are not sequences"
    );
    assert_eq!(
        (
            schema.sequences[0].table.as_str(),
            schema.sequences[0].last_value
        ),
        ("order", 2)
    );

    assert_eq!(
        ndjson(snap.as_mut(), "order"),
        concat!(
            r#"{"id":1,"unit \"price\" x":"9.99","created_at":"2026-01-02T10:00:00Z"}"#,
            "\n",
            r#"{"id":2,"unit \"price\" x":null,"created_at":"2026-03-01"}"#,
            "\n"
        )
    );
    let filter = DateFilter {
        column: "created_at".into(),
        from: date("2026-01-01"),
        to: date("2026-01-31"),
    };
    let (text, rows) = dump(
        snap.as_mut(),
        "order",
        &TableFormat::Csv {
            date_filter: Some(filter),
        },
    );
    assert_eq!(
        text,
        "id,\"unit \"\"price\"\" x\",created_at\r\n1,9.99,2026-01-02T10:00:00Z\r\n"
    );
    assert_eq!(rows, 1);
    assert_eq!(ndjson(snap.as_mut(), evil).lines().count(), 2);
    assert_eq!(csv(snap.as_mut(), evil), "order id,note\r\n1,a\r\n2,b\r\n");

    // The live database still has every table: nothing was executed as SQL.
    let mut check = live(&fx.store.db_path(&tenant("odd")));
    check.batch_execute(r#"SELECT * FROM "order""#).unwrap();
}

#[test]
fn date_filter_keeps_whole_days_from_and_to_in_utc() {
    let fx = Fixture::new();
    let conn = fx.create(
        "dates",
        r#"
        CREATE TABLE events (id INTEGER PRIMARY KEY, created_at, note TEXT);
        CREATE TABLE plain (id INTEGER PRIMARY KEY, name TEXT);
        INSERT INTO events VALUES
            (1, '2025-12-31T23:59:59.999Z', 'last instant before: out'),
            (2, '2026-01-01T00:00:00Z', 'first instant of from: in'),
            (3, '2026-01-01', 'bare from date: in'),
            (4, '2026-01-15 12:00:00', 'space separator: in'),
            (5, '2026-01-31T23:59:59.999Z', 'last instant of to: in'),
            (6, '2026-02-01T00:00:00.000Z', 'day after to: out'),
            (7, '2026-02-01T03:00:00+05:00', 'offset, 22:00Z on the 31st: in'),
            (8, '2026-01-31T22:00:00-05:00', 'offset, 03:00Z on the 1st: out'),
            (9, NULL, 'no timestamp: out'),
            (10, 'not a date', 'unparseable: out'),
            (11, 1767225600, 'unix seconds for 2026-01-01T00:00Z: in'),
            (12, '2026-02-01', 'bare day after: out');
        INSERT INTO plain VALUES (1, 'kept'), (2, 'kept too');
        "#,
    );
    drop(conn);
    let mut snap = fx.snapshot("dates", "w");
    let filtered = |snap: &mut dyn TenantSnapshot, table: &str, column: &str| {
        let filter = DateFilter {
            column: column.into(),
            from: date("2026-01-01"),
            to: date("2026-01-31"),
        };
        dump(
            snap,
            table,
            &TableFormat::Csv {
                date_filter: Some(filter),
            },
        )
    };

    let (text, rows) = filtered(snap.as_mut(), "events", "created_at");
    let ids: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(ids, ["2", "3", "4", "5", "7", "11"], "{text}");
    assert_eq!(rows, 6);
    // Column names match as SQLite matches them: case-insensitively.
    assert_eq!(filtered(snap.as_mut(), "events", "CREATED_AT").1, 6);
    // A table without the column is exported whole.
    assert_eq!(
        filtered(snap.as_mut(), "plain", "created_at"),
        (csv(snap.as_mut(), "plain"), 2)
    );
    // A single day is a whole day.
    let one_day = DateFilter {
        column: "created_at".into(),
        from: date("2026-01-31"),
        to: date("2026-01-31"),
    };
    let (_, rows) = dump(
        snap.as_mut(),
        "events",
        &TableFormat::Csv {
            date_filter: Some(one_day),
        },
    );
    assert_eq!(rows, 2, "rows 5 and 7");
}

#[test]
fn errors_have_stable_codes() {
    let fx = Fixture::new();
    assert!(!fx.store.tenant_exists(&tenant("ghost")).unwrap());
    let err = fx
        .store
        .snapshot(&tenant("ghost"), &fx.work("w"))
        .err()
        .expect("no tenant");
    assert_eq!(
        (err.code.as_str(), err.retryable),
        ("tenant_not_found", false)
    );
    assert!(!fx.work("w").join(SNAPSHOT_FILE).exists());

    fx.sample("acme", 1, 1);
    let mut snap = fx.snapshot("acme", "w2");
    for table in ["nope", "ORDERS", "sqlite_sequence", "orders; --"] {
        let err = dump_err(snap.as_mut(), table);
        assert_eq!(
            (err.code.as_str(), err.retryable),
            ("unknown_table", false),
            "{table}"
        );
    }
}

#[test]
fn a_locked_live_database_is_a_retryable_error() {
    let fx = Fixture::new();
    let mut holder = fx.create("busy", "CREATE TABLE t (id INTEGER PRIMARY KEY);");
    // An exclusive lock in rollback-journal mode shuts out readers too.
    holder
        .batch_execute("BEGIN EXCLUSIVE; INSERT INTO t VALUES (1);")
        .unwrap();
    let store = SqliteTenants::new(fx.store.dir().to_owned()).with_busy_timeout_ms(50);
    let err = store
        .snapshot(&tenant("busy"), &fx.work("w"))
        .err()
        .expect("locked");
    assert_eq!(
        (err.code.as_str(), err.retryable),
        ("tenant_db_busy", true),
        "{err}"
    );

    // Once the lock is gone, the retry succeeds and sees the committed row.
    holder.batch_execute("COMMIT;").unwrap();
    let mut snap = store.snapshot(&tenant("busy"), &fx.work("w")).unwrap();
    assert_eq!(dump(snap.as_mut(), "t", &TableFormat::Ndjson).1, 1);
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[test]
fn snapshot_is_reused_and_ignores_later_writes() {
    let fx = Fixture::new();
    let summary = fx.sample("acme", 1, 3);
    let mut first = fx.snapshot("acme", "w");
    let orders_before = ndjson(first.as_mut(), "orders");
    let native_before = {
        let mut out = Vec::new();
        let info = first.dump_native(&mut out).unwrap();
        assert_eq!(
            (info.format.as_str(), info.file_name.as_str()),
            ("sqlite3", "tenant.sqlite")
        );
        out
    };
    assert!(native_before.starts_with(b"SQLite format 3\0"));
    assert_eq!(
        native_before,
        std::fs::read(fx.work("w").join(SNAPSHOT_FILE)).unwrap()
    );

    // The tenant keeps working after the snapshot.
    let mut conn = live(&summary.database);
    conn.batch_execute(
        r#"
        INSERT INTO orders (account_id, status, currency, total, fx_rate, created_at, marker)
            VALUES (1, 'paid', 'EUR', '1.00', '1.000000', '2026-01-01T00:00:00Z', 'late');
        UPDATE orders SET status = 'changed' WHERE id = 1;
        DELETE FROM order_items WHERE order_id = 2;
        "#,
    )
    .unwrap();

    // The open snapshot, and a resumed step's new one, see the old data.
    assert_eq!(ndjson(first.as_mut(), "orders"), orders_before);
    let mut resumed = fx.snapshot("acme", "w");
    assert_eq!(ndjson(resumed.as_mut(), "orders"), orders_before);
    let mut out = Vec::new();
    resumed.dump_native(&mut out).unwrap();
    assert_eq!(out, native_before);
    assert!(!fx.work("w").join("snapshot.sqlite.tmp").exists());

    // Even with the live database gone, the step can finish.
    drop(conn);
    std::fs::remove_file(&summary.database).unwrap();
    assert!(fx.store.snapshot(&tenant("acme"), &fx.work("w")).is_ok());

    // A new export (another work dir) needs the tenant.
    let err = fx
        .store
        .snapshot(&tenant("acme"), &fx.work("w3"))
        .err()
        .unwrap();
    assert_eq!(err.code, "tenant_not_found");
}

#[test]
fn a_new_snapshot_sees_the_changes_and_the_native_copy_opens() {
    let fx = Fixture::new();
    let summary = fx.sample("acme", 1, 3);
    let mut conn = live(&summary.database);
    conn.batch_execute(
        "INSERT INTO orders (account_id, status, currency, total, fx_rate, created_at, marker)
            VALUES (1, 'paid', 'EUR', '1.00', '1.000000', '2026-01-01T00:00:00Z', 'late');",
    )
    .unwrap();
    let mut snap = fx.snapshot("acme", "w2");
    assert_eq!(
        dump(snap.as_mut(), "orders", &TableFormat::Ndjson).1,
        summary.tables["orders"] + 1
    );

    let copy = fx.root.path().join("copy.sqlite");
    let mut file = std::fs::File::create(&copy).unwrap();
    snap.dump_native(&mut file).unwrap();
    drop(file);
    let mut restored = live(&copy);
    let n: Vec<Count> = diesel::sql_query("SELECT count(*) AS n FROM orders")
        .load(&mut restored)
        .unwrap();
    assert_eq!(n[0].n as u64, summary.tables["orders"] + 1);
}

#[test]
fn snapshot_is_consistent_while_the_tenant_writes() {
    let fx = Fixture::new();
    let mut conn = fx.create(
        "busy",
        r#"
        PRAGMA journal_mode = WAL;
        PRAGMA busy_timeout = 5000;
        CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT);
        CREATE TABLE items (order_id INTEGER REFERENCES orders(id), n INTEGER);
        "#,
    );
    const ITEMS_PER_ORDER: u64 = 3;
    // Bounded even if the snapshots below were somehow never taken.
    const ORDERS_MAX: u64 = 20_000;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut written = 0;
            while written < ORDERS_MAX && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                conn.batch_execute(
                    "BEGIN IMMEDIATE;
                     INSERT INTO orders (created_at) VALUES ('2026-01-01');
                     INSERT INTO items SELECT max(id), 1 FROM orders;
                     INSERT INTO items SELECT max(id), 2 FROM orders;
                     INSERT INTO items SELECT max(id), 3 FROM orders;
                     COMMIT;",
                )
                .unwrap();
                written += 1;
            }
            written
        }
    });
    // Snapshots taken while the writer runs each see whole transactions.
    let mut sizes = Vec::new();
    for i in 0..5 {
        let mut snap = fx.snapshot("busy", &format!("w{i}"));
        let (_, orders) = dump(snap.as_mut(), "orders", &TableFormat::Ndjson);
        let (_, items) = dump(snap.as_mut(), "items", &TableFormat::Ndjson);
        assert_eq!(items, orders * ITEMS_PER_ORDER, "torn snapshot");
        sizes.push(orders);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    let mut last = fx.snapshot("busy", "final");
    assert_eq!(
        dump(last.as_mut(), "orders", &TableFormat::Ndjson).1,
        written
    );
    assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{sizes:?}");
    eprintln!("snapshot sizes while writing: {sizes:?} of {written}");
}

#[test]
fn progress_is_reported_every_few_thousand_rows() {
    let fx = Fixture::new();
    let conn = fx.create(
        "big",
        "CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 12001)
         INSERT INTO big SELECT x, 'row ' || x FROM c;",
    );
    drop(conn);
    let mut snap = fx.snapshot("big", "w");
    let mut calls = Vec::new();
    let mut out = std::io::sink();
    let stats = snap
        .dump_table("big", &TableFormat::Ndjson, &mut out, &mut |n| {
            calls.push(n)
        })
        .unwrap();
    assert_eq!(stats.rows, 12_001);
    assert_eq!(
        calls,
        [PROGRESS_EVERY_ROWS, 2 * PROGRESS_EVERY_ROWS, 12_001]
    );
}

#[test]
fn the_schema_carries_defaults_and_unique_sets_and_leaves_generated_columns_out() {
    let f = Fixture::new();
    let conn = f.create(
        "acme",
        "CREATE TABLE items (
             id INTEGER PRIMARY KEY,
             sku TEXT NOT NULL UNIQUE,
             region TEXT NOT NULL DEFAULT 'eu',
             code TEXT NOT NULL,
             qty INTEGER NOT NULL DEFAULT 0,
             price REAL,
             created_at TEXT DEFAULT CURRENT_TIMESTAMP,
             total REAL GENERATED ALWAYS AS (qty * price) STORED,
             label TEXT AS (upper(sku)) VIRTUAL,
             UNIQUE (region, code)
         );
         CREATE UNIQUE INDEX items_lower_code ON items (lower(code));
         CREATE UNIQUE INDEX items_live_code ON items (code) WHERE qty > 0;
         CREATE UNIQUE INDEX items_price_id ON items (price, id);
         CREATE INDEX items_qty ON items (qty);
         CREATE TABLE pairs (a TEXT, b TEXT, PRIMARY KEY (a, b), UNIQUE (a, b)) WITHOUT ROWID;
         INSERT INTO items (sku, code, qty, price, created_at)
             VALUES ('a-1', 'x', 2, 1.5, '2025-01-01');",
    );
    drop(conn);
    let mut snap = f.snapshot("acme", "w");
    let schema = snap.schema().expect("schema");
    let items = schema.table("items").expect("items");

    // Generated columns stay out, as they always have: the dump, the
    // rehydration and its schema comparison never see them.
    let names: Vec<&str> = items.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["id", "sku", "region", "code", "qty", "price", "created_at"]
    );
    let default = |name: &str| {
        items
            .columns
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .default
            .clone()
    };
    assert_eq!(default("region").as_deref(), Some("'eu'"));
    assert_eq!(default("qty").as_deref(), Some("0"));
    assert_eq!(default("created_at").as_deref(), Some("CURRENT_TIMESTAMP"));
    assert_eq!(default("sku"), None);
    assert_eq!(default("id"), None);
    assert!(items
        .columns
        .iter()
        .all(|c| c.generated.is_none() && c.identity.is_none()));
    assert_eq!(items.columns[1].data_type, "TEXT", "dataType is unchanged");

    // Unique sets by index name; not partial, expression or plain indexes.
    let set = |cols: &[&str]| cols.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    assert_eq!(
        items.unique,
        [
            set(&["price", "id"]),
            set(&["sku"]),
            set(&["region", "code"])
        ]
    );
    // A unique constraint that repeats the primary key adds nothing.
    let pairs = schema.table("pairs").expect("pairs");
    assert_eq!(pairs.primary_key, ["a", "b"]);
    assert!(pairs.unique.is_empty(), "{:?}", pairs.unique);
    assert!(pairs.partitions.is_empty() && pairs.partition_key.is_none());
    assert!(schema.enums.is_empty());

    // The JSON leaves empty details out, and the dump is what it was.
    let json = serde_json::to_value(&schema).expect("json");
    let cols = &json["tables"][0]["columns"];
    assert_eq!(cols[2]["default"], "'eu'");
    assert!(cols[1].get("default").is_none());
    assert!(json.get("enums").is_none());
    assert!(json["tables"][1].get("unique").is_none());
    let (text, rows) = dump(snap.as_mut(), "items", &TableFormat::Ndjson);
    assert_eq!(rows, 1);
    assert_eq!(
        text,
        "{\"id\":1,\"sku\":\"a-1\",\"region\":\"eu\",\"code\":\"x\",\"qty\":2,\"price\":1.5,\"created_at\":\"2025-01-01\"}\n"
    );
}

/// Each table of the sample `acme` (seed 42, scale 1) as `table blake3`
/// lines of its NDJSON export.
fn sample_digests(fx: &Fixture) -> String {
    fx.sample("acme", 1, 42);
    let mut snap = fx.snapshot("acme", "digests");
    sample::TABLES
        .iter()
        .map(|table| {
            let text = ndjson(snap.as_mut(), table);
            format!("{table} {}", blake3::hash(text.as_bytes()).to_hex())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The sample is generated by one model for every database; a change to
/// it, or to SQLite's share of it, that alters a single value shows here.
/// (Tests, benchmarks and the end-to-end suites all stand on this data.)
#[test]
fn the_sample_data_stays_what_it_was() {
    let fx = Fixture::new();
    assert_eq!(sample_digests(&fx), SQLITE_SAMPLE_DIGESTS);
}

const SQLITE_SAMPLE_DIGESTS: &str = "\
accounts 05770f2fce20728e9d61098763c34c236a52392c938df3cd60ed66a5e74c2d80\n\
users c4154c711fc92e0f6fc95bfc21b9bffef628a2301566b649d4a768f87db81c9b\n\
products efba04a7f129836255785c55d3788ba6447b758bdf435feca7faf6618fcbc303\n\
orders a9eeb95f44b2cf941a38d5b56be9e5c9ff689c18caa1e7beb1e302a7a051648c\n\
order_items 5938c1ee72a9612b757727e9221806c7089c0aaff2bf99a018be1ff09bfda656\n\
kpis 0d8810b95c6964cd328321956c41f560950054f5b3c3d7833235d87a7d626b93\n\
kpi_time_series 0d6015de20e7abea8635d3432e05805caed60b2442bf04331a299146a684a701\n\
kpi_reference_ranges c5398cc6d3b41a1d41be0766c2063b1bbcc49310a0ad54bacd1311959cddfd28\n\
health_trends 30f3f356f81c281c7b71ee8a56c437b828576fd57e9536a8e04357c47e84e99e\n\
playbooks f53a5ccfdaf75716443f2901859e97d7ea9ef567d88ba336ceab4875f556536e\n\
customer_config c5a856d12eb6fcb69a7485768f603b1bc5889fa9e906bc8d9b5400b2ab8eb6f3\n\
feature_toggles 09cbc59a09bc4c5d7b0c97e9d5a6152cd8259f359cb97f96d64e9bb88e04fd2a";
