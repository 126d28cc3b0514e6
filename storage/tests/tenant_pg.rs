//! The PostgreSQL tenant store against a real PostgreSQL server.
//!
//! `DATABASE_URL` names a server where the user may create databases and
//! roles (default `postgres://postgres@127.0.0.1:5432/postgres`). Each test
//! works in a database of its own (`ferry_t_<random>`, plus tenant and
//! scratch databases with that prefix), all dropped at the end. A server
//! that cannot be reached fails the tests: they are never skipped. The
//! `pg_dump`, `pg_restore` and `psql` client programs must be on `PATH`.

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use diesel::connection::SimpleConnection;
use diesel::sql_types::{Bool, Integer, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use ferry_storage::sample::{SampleOptions, TABLES};
use ferry_storage::tenant_pg::sample::create_pg_sample;
use ferry_storage::tenant_pg::{with_database, PgIsolation, PgTenants, PgTenantsConfig};
use ferry_workflows::ports::tenant::{
    DateFilter, SchemaInfo, TableFormat, TenantSnapshot, TenantStore,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;

#[path = "../../tests/support/transfers.rs"]
mod transfers;

mod support;

use support::pg::{sample, tenant, TestDb, SEED, TYPES_SQL};

/// Everything one export of a tenant produces.
struct Export {
    schema: SchemaInfo,
    ndjson: BTreeMap<String, Vec<u8>>,
    csv: BTreeMap<String, Vec<u8>>,
    rows: BTreeMap<String, u64>,
    native: Vec<u8>,
    native_format: String,
}

fn export(store: &PgTenants, id: &str) -> Result<Export> {
    let dir = tempfile::tempdir()?;
    let mut snap = store.snapshot(&tenant(id), dir.path())?;
    export_snapshot(snap.as_mut())
}

fn export_snapshot(snap: &mut dyn TenantSnapshot) -> Result<Export> {
    let schema = snap.schema()?;
    assert!(
        !snap.durable(),
        "a PostgreSQL snapshot dies with its connection"
    );
    let mut ndjson = BTreeMap::new();
    let mut csv = BTreeMap::new();
    let mut rows = BTreeMap::new();
    for table in &schema.tables {
        let mut out = Vec::new();
        let mut last = 0;
        let stats = snap.dump_table(&table.name, &TableFormat::Ndjson, &mut out, &mut |n| {
            last = n
        })?;
        assert_eq!(
            last, stats.rows,
            "the last progress report is the row count"
        );
        assert_eq!(
            out.iter().filter(|b| **b == b'\n').count() as u64,
            stats.rows
        );
        rows.insert(table.name.clone(), stats.rows);
        ndjson.insert(table.name.clone(), out);
        let mut out = Vec::new();
        let stats_csv = snap.dump_table(
            &table.name,
            &TableFormat::Csv { date_filter: None },
            &mut out,
            &mut |_| {},
        )?;
        assert_eq!(stats_csv.rows, stats.rows);
        csv.insert(table.name.clone(), out);
    }
    let mut native = Vec::new();
    let info = snap.dump_native(&mut native)?;
    Ok(Export {
        schema,
        ndjson,
        csv,
        rows,
        native,
        native_format: info.format,
    })
}

/// The native dump as text: a custom-format dump through `pg_restore -f -`.
fn native_text(export: &Export) -> Result<String> {
    if export.native_format != "pg_dump-custom" {
        return Ok(String::from_utf8(export.native.clone())?);
    }
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("tenant.dump");
    std::fs::write(&file, &export.native)?;
    let out = Command::new("pg_restore")
        .arg("--file=-")
        .arg(&file)
        .output()?;
    if !out.status.success() {
        bail!("pg_restore -f -: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// `marker` occurs as a whole token (so `marker-acme` is not found inside
/// `marker-acme2`).
fn contains_token(haystack: &[u8], marker: &str) -> bool {
    let needle = marker.as_bytes();
    haystack.windows(needle.len()).enumerate().any(|(i, w)| {
        w == needle
            && haystack
                .get(i + needle.len())
                .is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-'))
            && (i == 0 || {
                let b = haystack[i - 1];
                !(b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            })
    })
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program).args(args).output()?;
    if !out.status.success() {
        bail!(
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Restore a custom-format dump into a new scratch database with
/// `pg_restore`, stopping at the first error when `strict`; the scratch
/// database's URL.
fn pg_restore(db: &TestDb, native: &[u8], strict: bool) -> Result<String> {
    let scratch = db.scratch("restore");
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("tenant.dump");
    std::fs::write(&file, native)?;
    let dbname = format!("--dbname={scratch}");
    let mut args = vec!["--no-owner"];
    if strict {
        args.push("--exit-on-error");
    }
    args.extend([dbname.as_str(), file.to_str().unwrap()]);
    run("pg_restore", &args)?;
    Ok(scratch)
}

/// Sample three tenants, export each fully, and check isolation, counts,
/// schema discovery and the native dump.
fn three_tenants(db: &TestDb, store: &PgTenants) -> Result<BTreeMap<String, Export>> {
    let ids = ["acme", "acme2", "globex"];
    let mut summaries = BTreeMap::new();
    for id in ids {
        summaries.insert(id, sample(store, id));
    }
    for id in ids {
        assert!(store.tenant_exists(&tenant(id))?, "{id} exists");
    }
    assert!(!store.tenant_exists(&tenant("nobody"))?);
    let mut exports = BTreeMap::new();
    for id in ids {
        let export = export(store, id).with_context(|| format!("exporting {id}"))?;
        let summary = &summaries[id];
        // Discovery: every sample table, in foreign-key order, nothing else.
        let names: Vec<&str> = export
            .schema
            .tables
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        let mut expected: Vec<&str> = TABLES.to_vec();
        expected.sort();
        assert_eq!(sorted, expected, "{id}: tables");
        let pos = |t: &str| names.iter().position(|n| *n == t).unwrap();
        assert!(pos("accounts") < pos("users") && pos("users") < pos("orders"));
        assert!(pos("orders") < pos("order_items") && pos("products") < pos("order_items"));
        let mut listed = store.list_tables(&tenant(id))?;
        listed.sort();
        assert_eq!(listed, expected, "{id}: list_tables");
        assert_eq!(&export.rows, &summary.tables, "{id}: row counts");
        assert!(summary.total_rows > 2_000, "{id}: a realistic sample");

        // Keys and types were discovered from the catalogs.
        let items = export.schema.table("order_items").unwrap();
        let key_start = items.primary_key.len() - 2;
        assert_eq!(items.primary_key[key_start..], ["order_id", "line_no"]);
        assert!(items
            .foreign_keys
            .iter()
            .any(|fk| fk.ref_table == "orders" && fk.columns.last().unwrap() == "order_id"));
        let line_total = items
            .columns
            .iter()
            .find(|c| c.name == "line_total")
            .unwrap();
        assert!(
            line_total
                .data_type
                .starts_with("numeric(14,2) GENERATED ALWAYS AS"),
            "{}",
            line_total.data_type
        );
        let accounts = export.schema.table("accounts").unwrap();
        let ty = |name: &str| {
            accounts
                .columns
                .iter()
                .find(|c| c.name == name)
                .unwrap()
                .data_type
                .clone()
        };
        assert_eq!(ty("plan"), "plan_tier");
        assert_eq!(ty("email"), "email_address");
        assert_eq!(ty("mrr"), "numeric(12,2)");
        assert_eq!(ty("created_at"), "timestamp with time zone");
        assert!(ty("id").starts_with("bigint GENERATED BY DEFAULT AS IDENTITY"));
        let seq = |t: &str| {
            export
                .schema
                .sequences
                .iter()
                .find(|s| s.table == t)
                .unwrap()
                .last_value
        };
        assert_eq!(seq("accounts"), 40);
        assert_eq!(seq("products"), 80, "bigserial sequences are found too");
        if store.isolation() == "row" {
            // A shared sequence is reported as the tenant's largest key.
            assert_eq!(seq("health_trends"), export.rows["health_trends"] as i64);
        } else {
            assert_eq!(
                seq("health_trends"),
                export.rows["health_trends"] as i64 + 2,
                "a sequence may run ahead of its table"
            );
        }

        // Isolation: the tenant's marker everywhere, no other tenant's anywhere.
        let marker = format!("marker-{id}");
        let native = native_text(&export)?;
        for (table, bytes) in export.ndjson.iter().chain(&export.csv) {
            if !bytes.is_empty() {
                assert!(
                    contains_token(bytes, &marker),
                    "{id}: {table} lacks its marker"
                );
            }
        }
        assert!(
            contains_token(native.as_bytes(), &marker),
            "{id}: native lacks its marker"
        );
        for other in ids.iter().filter(|o| **o != id) {
            let theirs = format!("marker-{other}");
            for (table, bytes) in export.ndjson.iter().chain(&export.csv) {
                assert!(
                    !contains_token(bytes, &theirs),
                    "{id}'s {table} holds {theirs}"
                );
            }
            assert!(
                !contains_token(native.as_bytes(), &theirs),
                "{id}'s native dump holds {theirs}"
            );
        }
        exports.insert(id.to_owned(), export);
    }
    let _ = db;
    Ok(exports)
}

/// Export the same tenant from another store and compare the data files.
fn assert_same_data(original: &Export, restored: &Export, what: &str) {
    assert_eq!(original.rows, restored.rows, "{what}: row counts");
    for (table, bytes) in &original.ndjson {
        assert!(
            restored.ndjson[table] == *bytes,
            "{what}: {table}.ndjson differs after the round trip"
        );
    }
}

#[test]
fn schema_mode_exports_three_tenants_in_isolation_and_pg_restore_reads_the_dump() -> Result<()> {
    let db = TestDb::new();
    let store = db.store(PgIsolation::Schema);
    let exports = three_tenants(&db, &store)?;
    let acme = &exports["acme"];
    assert_eq!(acme.native_format, "pg_dump-custom");
    assert_eq!(&acme.native[..5], b"PGDMP", "a custom-format dump");

    // The dump restores with pg_restore, and re-exports to the same bytes.
    let scratch = pg_restore(&db, &acme.native, true)?;
    let restored_store =
        PgTenants::new(PgTenantsConfig::new(scratch.clone()).with_isolation(PgIsolation::Schema))?;
    let restored = export(&restored_store, "acme")?;
    assert_same_data(acme, &restored, "pg_restore of the schema dump");
    assert!(
        !restored_store.tenant_exists(&tenant("acme2"))?,
        "only acme's schema was dumped"
    );
    Ok(())
}

#[test]
fn database_mode_finds_tenants_through_the_registry() -> Result<()> {
    let db = TestDb::new();
    let store = db.store(PgIsolation::Database);
    let exports = three_tenants(&db, &store)?;
    let entry = store.registry_entry(&tenant("acme"))?.expect("registered");
    assert!(entry
        .database_url
        .as_deref()
        .unwrap()
        .contains(&format!("{}_acme", db.prefix)));

    // The whole-database dump restores into a scratch database, which the
    // registry can then point a tenant at.
    let acme = &exports["acme"];
    let scratch = pg_restore(&db, &acme.native, false)?;
    store.register(&tenant("restored"), Some(&scratch), Some("public"))?;
    let restored = export(&store, "restored")?;
    assert_same_data(acme, &restored, "pg_restore of the database dump");

    // A registered tenant whose database is gone is not found, not retried.
    store.register(
        &tenant("ghost"),
        Some(&with_database(&db.url, &format!("{}_ghost", db.prefix))?),
        None,
    )?;
    let err = store
        .snapshot(&tenant("ghost"), Path::new("/nonexistent"))
        .err()
        .unwrap();
    assert_eq!(
        (err.code.as_str(), err.retryable),
        ("tenant_not_found", false)
    );
    Ok(())
}

/// Row mode: restore the tenant's script into a copy of the shared schema
/// and check the tenant's rows come back byte for byte.
fn row_mode(row_security: bool) -> Result<()> {
    let db = TestDb::new();
    let mut config = db.config(PgIsolation::Row { row_security });
    if row_security {
        config.row_security_role = Some(format!("{}_reader", db.prefix));
    }
    let store = PgTenants::new(config.clone())?;
    let exports = three_tenants(&db, &store)?;
    let acme = &exports["acme"];
    assert_eq!(acme.native_format, "pg-copy-script");
    // The platform's own tables share the schema but are never tenant data.
    let mut conn = db.conn();
    #[derive(QueryableByName)]
    struct Exists {
        #[diesel(sql_type = Bool)]
        found: bool,
    }
    let registry: Vec<Exists> = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM ferry_tenants WHERE tenant_id = 'acme') AS found",
    )
    .load(&mut conn)?;
    assert!(registry[0].found, "the registry lives in the same schema");
    assert!(acme.schema.table("ferry_tenants").is_none());

    let scratch = db.scratch("restore");
    let dir = tempfile::tempdir()?;
    let schema_sql = dir.path().join("schema.sql");
    run(
        "pg_dump",
        &[
            "--schema-only",
            "--no-owner",
            &format!("--file={}", schema_sql.display()),
            &db.url,
        ],
    )?;
    run(
        "psql",
        &[
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &scratch,
            "-f",
            schema_sql.to_str().unwrap(),
        ],
    )?;
    let script = dir.path().join("tenant.sql");
    std::fs::write(&script, &acme.native)?;
    run(
        "psql",
        &[
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &scratch,
            "-f",
            script.to_str().unwrap(),
        ],
    )?;
    let mut restored_config = config;
    restored_config.platform_url = scratch;
    let restored_store = PgTenants::new(restored_config)?;
    let restored = export(&restored_store, "acme")?;
    assert_same_data(acme, &restored, "psql of the row-mode script");
    assert!(!restored_store.tenant_exists(&tenant("acme2"))?);

    if row_security {
        // The policies themselves keep tenants apart for the reader role.
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = Integer)]
            n: i32,
        }
        let count = |conn: &mut PgConnection, tenant: Option<&str>| -> Result<i32> {
            conn.batch_execute("BEGIN")?;
            conn.batch_execute(&format!("SET LOCAL ROLE \"{}_reader\"", db.prefix))?;
            if let Some(t) = tenant {
                diesel::sql_query("SELECT set_config('ferry.tenant', $1, true)")
                    .bind::<Text, _>(t)
                    .execute(conn)?;
            }
            let rows: Vec<Count> =
                diesel::sql_query("SELECT count(*)::int4 AS n FROM accounts").load(conn)?;
            conn.batch_execute("ROLLBACK")?;
            Ok(rows[0].n)
        };
        assert_eq!(count(&mut conn, Some("acme"))?, 40);
        assert_eq!(count(&mut conn, None)?, 0, "no tenant set, no rows");
    }
    Ok(())
}

#[test]
fn row_mode_exports_only_the_tenants_rows_and_psql_restores_them() -> Result<()> {
    row_mode(false)
}

#[test]
fn row_mode_with_row_level_security() -> Result<()> {
    row_mode(true)
}

/// The raw text of a top-level JSON number in an NDJSON line (so floats are
/// read with Rust's correctly rounding parser, not serde_json's).
fn raw_number<'a>(line: &'a str, column: &str) -> Option<&'a str> {
    let key = format!("\"{column}\":");
    let start = line.find(&key)? + key.len();
    let rest = &line[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || "-+.eE".contains(c)))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// The PostgreSQL input text for a decoded NDJSON value (`None` for NULL).
fn pg_input(value: &Value) -> Result<Option<String>> {
    Ok(match value {
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Object(map) => {
            let (tag, text) = map.iter().next().ok_or_else(|| anyhow!("empty object"))?;
            let text = text.as_str().ok_or_else(|| anyhow!("tag value"))?;
            match tag.as_str() {
                "$float" => Some(text.to_owned()),
                "$base64" => Some(format!(
                    "\\x{}",
                    hex::encode(base64::engine::general_purpose::STANDARD.decode(text)?)
                )),
                other => bail!("unknown tag {other}"),
            }
        }
        Value::Array(items) => {
            let mut parts = Vec::new();
            for item in items {
                parts.push(match item {
                    Value::Array(_) => pg_input(item)?.unwrap_or_default(),
                    _ => match pg_input(item)? {
                        None => "NULL".to_owned(),
                        Some(text) => {
                            format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
                        }
                    },
                });
            }
            Some(format!("{{{}}}", parts.join(",")))
        }
    })
}

#[derive(QueryableByName)]
struct TextOut {
    #[diesel(sql_type = Bool)]
    is_null: bool,
    #[diesel(sql_type = Text)]
    text: String,
}

#[test]
fn every_type_survives_exactly() -> Result<()> {
    let db = TestDb::new();
    let store = db.store(PgIsolation::Schema);
    let mut conn = db.conn();
    conn.batch_execute("CREATE SCHEMA tenant_types; SET search_path = tenant_types;")?;
    conn.batch_execute(TYPES_SQL)?;
    let export = export(&store, "types")?;
    let zoo = export.schema.table("zoo").unwrap();
    let gen = zoo.columns.iter().find(|c| c.name == "gen").unwrap();
    assert_eq!(
        gen.data_type,
        "numeric GENERATED ALWAYS AS ((num_s * (2)::numeric)) STORED"
    );
    let domain = zoo.columns.iter().find(|c| c.name == "dom").unwrap();
    assert_eq!(domain.data_type, "positive_amount");

    let lines: Vec<&str> = std::str::from_utf8(&export.ndjson["zoo"])?
        .lines()
        .collect();
    assert_eq!(lines.len(), 4);
    let mut checked = 0;
    for line in &lines {
        let row: serde_json::Map<String, Value> = serde_json::from_str(line)?;
        let id = row["id"].as_i64().unwrap();
        for column in &zoo.columns {
            let value = &row[&column.name];
            let input = match (value, column.data_type.as_str()) {
                (Value::Number(_), "real" | "double precision") => {
                    Some(raw_number(line, &column.name).unwrap().to_owned())
                }
                _ => pg_input(value)?,
            };
            let ty = column.data_type.split(" GENERATED").next().unwrap();
            let original: Vec<TextOut> = diesel::sql_query(format!(
                "SELECT \"{0}\" IS NULL AS is_null, coalesce(format('%s', \"{0}\"), '') AS text \
                 FROM zoo WHERE id = $1",
                column.name
            ))
            .bind::<Integer, _>(id as i32)
            .load(&mut conn)?;
            let again: Vec<TextOut> = diesel::sql_query(format!(
                "SELECT v IS NULL AS is_null, coalesce(format('%s', v), '') AS text \
                 FROM (SELECT CAST($1 AS {ty}) AS v) AS x"
            ))
            .bind::<diesel::sql_types::Nullable<Text>, _>(input.clone())
            .load(&mut conn)?;
            assert_eq!(
                (original[0].is_null, &original[0].text),
                (again[0].is_null, &again[0].text),
                "row {id}, column {} ({ty}): exported {value} read back as {input:?}",
                column.name
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 4 * zoo.columns.len());

    // The encodings themselves, where they matter to a reader.
    let row1: Value = serde_json::from_str(lines[0])?;
    let row2: Value = serde_json::from_str(lines[1])?;
    let row3: Value = serde_json::from_str(lines[2])?;
    assert_eq!(
        row2["i8"],
        serde_json::json!(i64::MIN),
        "integers are numbers"
    );
    assert_eq!(
        row2["num"], "123456789012345678901234567890.123456789012345678901234567890",
        "numerics are strings with every digit"
    );
    assert_eq!(row1["num"], "12.50", "numerics keep their scale");
    assert_eq!(row2["f8"], serde_json::json!({"$float": "NaN"}));
    assert_eq!(row2["f4"], serde_json::json!({"$float": "Infinity"}));
    assert!(raw_number(lines[2], "f8") == Some("-0.0"));
    assert_eq!(
        row1["f4"],
        serde_json::json!(0.1),
        "a real prints as its f32"
    );
    assert_eq!(row1["bin"], serde_json::json!({"$base64": "AP8A"}));
    assert_eq!(
        row1["tstz"], "2025-06-01T10:00:00.5Z",
        "timestamptz is ISO-8601 in UTC"
    );
    assert_eq!(row1["ts"], "2025-12-31T23:59:59.999999");
    assert_eq!(row1["tmtz"], "12:34:56+05:30");
    assert_eq!(row2["tmtz"], "00:00:00-08:00");
    assert_eq!(
        row1["iv"], "P1Y2M3DT4H5M6.789S",
        "intervals are ISO-8601 durations"
    );
    assert_eq!(
        row1["j"], "{\"a\" : 1,\n \"a\": [1, 2.50]}",
        "json keeps its exact text"
    );
    assert_eq!(row2["jb"], "null", "a JSON null is not SQL NULL");
    assert_eq!(row3["jb"], Value::Null);
    assert_eq!(
        row1["ia"],
        serde_json::json!([1, null, 3]),
        "arrays are JSON arrays"
    );
    assert_eq!(row1["ia2"], serde_json::json!([[1, 2], [3, 4]]));
    assert_eq!(row1["na"], serde_json::json!(["1.10", "NaN"]));
    assert_eq!(row1["ba"], serde_json::json!([{"$base64": "AP8="}, null]));
    assert_eq!(
        row2["ia"], "[0:1]={7,8}",
        "non-default bounds keep the literal"
    );
    assert_eq!(row1["ch"], "ab   ", "char(n) keeps its padding");
    assert_eq!(row1["b"], true);
    assert_eq!(row1["ip"], "10.0.0.1");
    assert_eq!(row1["e"], "it's \"quoted\"");
    assert_eq!(
        row1["gen"], "3.0000000000",
        "generated columns are exported"
    );
    assert_eq!(row3["d"], "0044-03-15 BC");

    // CSV agrees: NULL is empty, the empty string quoted, specials spelled out.
    let csv_text = String::from_utf8(export.csv["zoo"].clone())?;
    let mut reader = csv::ReaderBuilder::new().from_reader(csv_text.as_bytes());
    let headers = reader.headers()?.clone();
    let records: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>()?;
    let field = |row: usize, name: &str| {
        let i = headers.iter().position(|h| h == name).unwrap();
        records[row][i].to_owned()
    };
    assert_eq!(field(1, "f8"), "NaN");
    assert_eq!(field(0, "bin"), "AP8A");
    assert_eq!(field(0, "tstz"), "2025-06-01T10:00:00.5Z");
    assert_eq!(
        field(1, "t"),
        "line1\nline2\ttab\\back \"q\" ☺ نص 漢字 \r end"
    );
    assert!(
        csv_text.contains(",\"\","),
        "the empty varchar is a quoted empty field"
    );
    Ok(())
}

#[derive(QueryableByName)]
struct Balance {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    balance: i64,
}

#[test]
fn one_snapshot_holds_while_a_writer_moves_money() -> Result<()> {
    let db = TestDb::new();
    let store = db.store(PgIsolation::Schema);
    sample(&store, "acme");
    transfers::create_accounts(&mut db.conn(), "tenant_acme")?;
    let writer = transfers::Transfers::start(&db.url, "tenant_acme");
    let wait_for_commits = |n: u64| writer.wait_for_commits(n);
    wait_for_commits(5);

    let dir = tempfile::tempdir()?;
    let mut snap = store.snapshot(&tenant("acme"), dir.path())?;
    let read_balance = |bytes: &[u8]| -> Result<i64> {
        let row: Value = serde_json::from_slice(bytes)?;
        row["balance"].as_i64().ok_or_else(|| anyhow!("balance"))
    };
    let mut checking = Vec::new();
    snap.dump_table("checking", &TableFormat::Ndjson, &mut checking, &mut |_| {})?;
    // Transfers commit between the two reads, and during the rest of the export.
    wait_for_commits(20);
    let mut savings = Vec::new();
    snap.dump_table("savings", &TableFormat::Ndjson, &mut savings, &mut |_| {})?;
    for table in ["orders", "order_items", "users"] {
        snap.dump_table(
            table,
            &TableFormat::Ndjson,
            &mut std::io::sink(),
            &mut |_| {},
        )?;
    }
    wait_for_commits(20);
    let mut native = Vec::new();
    snap.dump_native(&mut native)?;
    let during = writer.stop()?;
    assert!(during > 45, "the writer kept committing ({during})");

    let (c, s) = (read_balance(&checking)?, read_balance(&savings)?);
    assert_eq!(
        c + s,
        transfers::TOTAL,
        "checking {c} + savings {s} must be the invariant"
    );

    // pg_dump read the very same instant.
    let scratch = pg_restore(&db, &native, true)?;
    let mut restored = PgConnection::establish(&scratch)?;
    let get = |conn: &mut PgConnection, table: &str| -> Result<i64> {
        let rows: Vec<Balance> =
            diesel::sql_query(format!("SELECT balance FROM tenant_acme.{table}")).load(conn)?;
        Ok(rows[0].balance)
    };
    assert_eq!(
        get(&mut restored, "checking")?,
        c,
        "pg_dump saw the snapshot's checking"
    );
    assert_eq!(
        get(&mut restored, "savings")?,
        s,
        "pg_dump saw the snapshot's savings"
    );
    Ok(())
}

#[test]
fn errors_have_stable_codes() -> Result<()> {
    let db = TestDb::new();
    let store = db.store(PgIsolation::Schema);
    sample(&store, "acme");
    let dir = tempfile::tempdir()?;

    // Unknown tenants and tables.
    let err = store.snapshot(&tenant("nobody"), dir.path()).err().unwrap();
    assert_eq!(
        (err.code.as_str(), err.retryable),
        ("tenant_not_found", false)
    );
    let err = store.list_tables(&tenant("nobody")).unwrap_err();
    assert_eq!(err.code, "tenant_not_found");
    let mut snap = store.snapshot(&tenant("acme"), dir.path())?;
    let err = snap
        .dump_table(
            "accounts\"; DROP TABLE users; --",
            &TableFormat::Ndjson,
            &mut Vec::new(),
            &mut |_| {},
        )
        .unwrap_err();
    assert_eq!((err.code.as_str(), err.retryable), ("unknown_table", false));

    // A failing output stops the dump; the snapshot stays usable.
    struct Broken(usize);
    impl Write for Broken {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.0 < buf.len() {
                return Err(std::io::Error::other("disk full"));
            }
            self.0 -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let err = snap
        .dump_table(
            "orders",
            &TableFormat::Ndjson,
            &mut Broken(100_000),
            &mut |_| {},
        )
        .unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.retryable),
        ("output_write_failed", true)
    );
    let err = snap.dump_native(&mut Broken(10_000)).unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.retryable),
        ("output_write_failed", true)
    );
    let stats = dump_to_nowhere(&mut *snap, "orders")?;
    assert_eq!(stats.rows, 400);
    drop(snap);

    // A schema change holding a lock: busy, retryable, bounded by lock_timeout.
    let mut config = db.config(PgIsolation::Schema);
    config.lock_timeout_ms = 200;
    let impatient = PgTenants::new(config)?;
    let mut blocker = db.conn();
    blocker.batch_execute("BEGIN; LOCK TABLE tenant_acme.orders IN ACCESS EXCLUSIVE MODE;")?;
    let started = std::time::Instant::now();
    let err = impatient
        .snapshot(&tenant("acme"), dir.path())
        .err()
        .unwrap();
    assert_eq!(
        (err.code.as_str(), err.retryable),
        ("tenant_db_busy", true),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    blocker.batch_execute("ROLLBACK")?;
    assert!(impatient.snapshot(&tenant("acme"), dir.path()).is_ok());

    // No server: retryable.
    let mut config = PgTenantsConfig::new("postgres://postgres@127.0.0.1:1/postgres");
    config.connect_timeout_s = 2;
    let nowhere = PgTenants::new(config)?;
    let err = nowhere.snapshot(&tenant("acme"), dir.path()).err().unwrap();
    assert_eq!(
        (err.code.as_str(), err.retryable),
        ("tenant_db_unavailable", true)
    );
    let err = nowhere.tenant_exists(&tenant("acme")).unwrap_err();
    assert!(err.retryable);

    // The server ends the snapshot's connection: retryable, and the
    // snapshot refuses to continue from another instant.
    let mut snap = store.snapshot(&tenant("acme"), dir.path())?;
    conn_terminate_others(&db)?;
    let err = dump_to_nowhere(&mut *snap, "orders").unwrap_err();
    assert!(err.retryable, "{err}");
    let err = dump_to_nowhere(&mut *snap, "users").unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.retryable),
        ("tenant_snapshot_lost", true)
    );
    Ok(())
}

/// A table is read by one `COPY ... TO STDOUT`. If the server stops that
/// COPY part-way with an error (here a cancel, sent after the first rows
/// arrived, while most of the table is still to come), the dump fails,
/// retryably, instead of ending early with a short table; the snapshot
/// refuses to go on. The same dump without the cancel reads every row.
#[test]
fn a_copy_the_server_stops_part_way_fails_the_dump_rather_than_shortening_it() -> Result<()> {
    const ROWS: u64 = 300_000;
    let db = TestDb::new();
    let store = db.store(PgIsolation::Schema);
    sample(&store, "acme");
    db.conn().batch_execute(&format!(
        "CREATE TABLE tenant_acme.wide AS \
         SELECT g AS id, repeat(md5(g::text), 6) AS pad FROM generate_series(1, {ROWS}) AS g"
    ))?;
    let dir = tempfile::tempdir()?;

    let mut snap = store.snapshot(&tenant("acme"), dir.path())?;
    let mut admin = PgConnection::establish(&db.admin_url)?;
    let mut cancelled = 0;
    let mut seen = 0;
    let err = snap
        .dump_table(
            "wide",
            &TableFormat::Ndjson,
            &mut std::io::sink(),
            &mut |rows| {
                seen = rows;
                if cancelled == 0 {
                    // The client's COPY, not the parallel workers of its sort.
                    let row: CountRow = diesel::sql_query(
                        "SELECT count(pg_cancel_backend(pid))::int4 AS n FROM pg_stat_activity \
                         WHERE datname = $1 AND pid <> pg_backend_pid() AND query LIKE 'COPY %' \
                           AND backend_type = 'client backend'",
                    )
                    .bind::<Text, _>(&db.prefix)
                    .get_result(&mut admin)
                    .expect("cancel the COPY");
                    cancelled = row.n;
                }
            },
        )
        .unwrap_err();
    assert_eq!(cancelled, 1, "exactly one COPY was running");
    assert!(seen < ROWS, "the cancel landed part-way ({seen} rows seen)");
    assert_eq!(
        (err.code.as_str(), err.retryable),
        ("tenant_snapshot_lost", true),
        "{err}"
    );
    let err = dump_to_nowhere(&mut *snap, "users").unwrap_err();
    assert_eq!(err.code, "tenant_snapshot_lost");
    drop(snap);

    let mut snap = store.snapshot(&tenant("acme"), dir.path())?;
    let stats = dump_to_nowhere(&mut *snap, "wide")?;
    assert_eq!(stats.rows, ROWS);
    Ok(())
}

/// Dump `table` as NDJSON into nothing.
fn dump_to_nowhere(
    snap: &mut dyn TenantSnapshot,
    table: &str,
) -> Result<ferry_workflows::ports::tenant::TableStats, ferry_workflows::ports::PortError> {
    snap.dump_table(
        table,
        &TableFormat::Ndjson,
        &mut std::io::sink(),
        &mut |_| {},
    )
}

/// Terminate every other connection to the test database.
fn conn_terminate_others(db: &TestDb) -> Result<()> {
    let mut admin = PgConnection::establish(&db.admin_url)?;
    diesel::sql_query(
        "SELECT count(pg_terminate_backend(pid))::int4 AS n FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind::<Text, _>(&db.prefix)
    .execute(&mut admin)?;
    Ok(())
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = Integer)]
    n: i32,
}

#[test]
fn analytics_csv_filters_by_day_and_samples_are_deterministic() -> Result<()> {
    let db = TestDb::new();
    let store = db.store(PgIsolation::Schema);
    sample(&store, "acme");
    let dir = tempfile::tempdir()?;
    let mut snap = store.snapshot(&tenant("acme"), dir.path())?;
    let filter = DateFilter {
        column: "created_at".into(),
        from: chrono::NaiveDate::from_ymd_opt(2025, 3, 1).unwrap(),
        to: chrono::NaiveDate::from_ymd_opt(2025, 3, 31).unwrap(),
    };
    let mut out = Vec::new();
    let stats = snap.dump_table(
        "orders",
        &TableFormat::Csv {
            date_filter: Some(filter.clone()),
        },
        &mut out,
        &mut |_| {},
    )?;
    let mut conn = db.conn();
    let expected: Vec<CountRow> = diesel::sql_query(
        "SELECT count(*)::int4 AS n FROM tenant_acme.orders \
         WHERE created_at >= '2025-03-01T00:00:00Z' AND created_at < '2025-04-01T00:00:00Z'",
    )
    .load(&mut conn)?;
    assert_eq!(stats.rows, expected[0].n as u64);
    assert!(stats.rows > 0 && stats.rows < 400);
    let text = String::from_utf8(out)?;
    assert!(text.starts_with("id,account_id,user_id,status,"));
    // A table without the column is dumped whole.
    let mut customer = Vec::new();
    let all = snap.dump_table(
        "feature_toggles",
        &TableFormat::Csv {
            date_filter: Some(DateFilter {
                column: "no_such_column".into(),
                ..filter
            }),
        },
        &mut customer,
        &mut |_| {},
    )?;
    assert_eq!(all.rows, 10);
    let first = export_snapshot(snap.as_mut())?;
    drop(snap);

    // Same seed, same data.
    let again = create_pg_sample(
        &store,
        &tenant("acme"),
        &SampleOptions {
            scale: 1,
            seed: SEED,
            overwrite: true,
        },
    )?;
    assert_eq!(again.total_rows, first.rows.values().sum::<u64>());
    let second = export(&store, "acme")?;
    assert_same_data(&first, &second, "a sample made twice from one seed");
    let exists = create_pg_sample(
        &store,
        &tenant("acme"),
        &SampleOptions {
            scale: 1,
            seed: SEED,
            overwrite: false,
        },
    );
    assert_eq!(exists.unwrap_err().code(), "tenant_exists");
    Ok(())
}

/// Run a file of the torture fixture (`tests/fixtures/torture`) with psql
/// into the test database, the tenant's schema named `schema`.
fn torture_script(db: &TestDb, file: &str, schema: &str) -> Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/torture")
        .join(file);
    run(
        "psql",
        &[
            &db.url,
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            &format!("schema={schema}"),
            "-f",
            path.to_str().unwrap(),
        ],
    )
}

#[test]
fn the_schema_carries_defaults_identity_generated_unique_sets_partitions_and_enums() -> Result<()> {
    use ferry_workflows::ports::tenant::{Identity, PartitionInfo, TableInfo};
    let db = TestDb::new();
    torture_script(&db, "schema.sql", "tenant_torture")?;
    torture_script(&db, "data.sql", "tenant_torture")?;
    let store = db.store(PgIsolation::Schema);
    let dir = tempfile::tempdir()?;
    let mut snap = store.snapshot(&tenant("torture"), dir.path())?;
    let schema = snap.schema()?;
    drop(snap);
    let table =
        |name: &str| -> &TableInfo { schema.table(name).unwrap_or_else(|| panic!("table {name}")) };
    let column = |t: &str, c: &str| {
        table(t)
            .columns
            .iter()
            .find(|col| col.name == c)
            .unwrap_or_else(|| panic!("column {t}.{c}"))
            .clone()
    };

    // Enums: every label, in sort order, for the enum the columns use.
    assert_eq!(
        schema.enums.get("order_status").map(Vec::as_slice),
        Some(
            &[
                "draft",
                "placed",
                "paid",
                "shipped",
                "cancelled",
                "refunded"
            ]
            .map(String::from)[..]
        ),
        "{:?}",
        schema.enums
    );
    assert_eq!(schema.enums.len(), 1, "{:?}", schema.enums);

    // Identity columns: apart, and still in dataType as before.
    let id = column("customers", "customer_id");
    assert_eq!(id.identity, Some(Identity::Always));
    assert_eq!(id.data_type, "bigint GENERATED ALWAYS AS IDENTITY");
    assert_eq!((id.default, id.generated), (None, None));
    let id = column("addresses", "address_id");
    assert_eq!(id.identity, Some(Identity::ByDefault));
    assert_eq!(id.data_type, "integer GENERATED BY DEFAULT AS IDENTITY");
    assert_eq!(column("user", "user_id").identity, Some(Identity::Always));

    // Generated columns: the expression apart, dataType unchanged.
    let tax = column("products", "price_with_tax");
    assert_eq!(tax.generated.as_deref(), Some("round((price * 1.2), 2)"));
    assert_eq!(
        tax.data_type,
        "numeric GENERATED ALWAYS AS (round((price * 1.2), 2)) STORED"
    );
    assert_eq!((tax.default, tax.identity), (None, None));
    let total = column("Order Items", "line_total");
    assert_eq!(
        total.generated.as_deref(),
        Some("((\"Quantity\")::numeric * unit_price)"),
        "{total:?}"
    );

    // Defaults, as the server prints them.
    let default = |t: &str, c: &str| column(t, c).default;
    assert_eq!(default("customers", "tier").as_deref(), Some("'B'::bpchar"));
    assert_eq!(default("customers", "is_active").as_deref(), Some("true"));
    assert_eq!(
        default("orders", "status").as_deref(),
        Some("'draft'::order_status")
    );
    assert_eq!(
        default("orders", "order_id").as_deref(),
        Some("nextval('orders_order_id_seq'::regclass)")
    );
    assert_eq!(
        default("invoices", "invoice_no").as_deref(),
        Some("nextval('document_number_seq'::regclass)")
    );
    assert_eq!(default("customers", "name"), None);
    assert!(table("orders")
        .columns
        .iter()
        .all(|c| c.generated.is_none() && c.identity.is_none()));

    // Unique sets: constraints and plain unique indexes; not the primary
    // key, not a partial index, not an expression index.
    let unique = |t: &str| table(t).unique.clone();
    let set = |cols: &[&str]| cols.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    assert_eq!(unique("customers"), [set(&["email"])]);
    assert_eq!(unique("categories"), [set(&["slug"])]);
    assert_eq!(unique("credit_notes"), [set(&["credit_note_no"])]);
    assert_eq!(unique("invoices"), [set(&["region", "invoice_no"])]);
    assert!(unique("user").is_empty(), "lower(email) is an expression");
    assert!(unique("addresses").is_empty(), "a partial index");
    assert!(unique("page_views").is_empty());

    // Partitions: the key, and the whole tree with bounds.
    let part = |name: &str, parent: &str, bound: &str, key: Option<&str>| PartitionInfo {
        name: name.into(),
        parent: parent.into(),
        bound: bound.into(),
        partition_key: key.map(String::from),
    };
    let orders = table("orders");
    assert_eq!(orders.partition_key.as_deref(), Some("RANGE (ordered_at)"));
    assert_eq!(
        orders.partitions,
        [
            part(
                "orders_2023",
                "orders",
                "FOR VALUES FROM ('2023-01-01 00:00:00+00') TO ('2024-01-01 00:00:00+00')",
                None
            ),
            part(
                "orders_2024",
                "orders",
                "FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2025-01-01 00:00:00+00')",
                None
            ),
            part("orders_default", "orders", "DEFAULT", None),
        ]
    );
    let invoices = table("invoices");
    assert_eq!(invoices.partition_key.as_deref(), Some("LIST (region)"));
    assert_eq!(
        invoices.partitions,
        [
            part(
                "invoices_apac",
                "invoices",
                "FOR VALUES IN ('apac', 'anz')",
                None
            ),
            part("invoices_eu", "invoices", "FOR VALUES IN ('eu')", None),
            part("invoices_us", "invoices", "FOR VALUES IN ('us')", None),
        ]
    );
    let usage = table("usage_records");
    assert_eq!(usage.partition_key.as_deref(), Some("RANGE (recorded_on)"));
    let h = |half: &str, from: &str, to: &str| {
        let name = format!("usage_2024_{half}");
        vec![
            part(
                &name,
                "usage_records",
                &format!("FOR VALUES FROM ('{from}') TO ('{to}')"),
                Some("LIST (metric)"),
            ),
            part(
                &format!("{name}_api"),
                &name,
                "FOR VALUES IN ('api_calls')",
                None,
            ),
            part(&format!("{name}_other"), &name, "DEFAULT", None),
            part(
                &format!("{name}_storage"),
                &name,
                "FOR VALUES IN ('storage_gb')",
                None,
            ),
        ]
    };
    let mut expected = h("h1", "2024-01-01", "2024-07-01");
    expected.extend(h("h2", "2024-07-01", "2025-01-01"));
    expected.push(part("usage_default", "usage_records", "DEFAULT", None));
    assert_eq!(usage.partitions, expected);
    // Partitions are described under their table, never as tables.
    assert!(schema.table("orders_2023").is_none());
    assert!(schema.table("usage_2024_h1_api").is_none());
    let products = table("products");
    assert!(products.partition_key.is_none() && products.partitions.is_empty());

    // In the JSON: camelCase, empty fields left out, and it reads back.
    let json = serde_json::to_value(&schema)?;
    let orders_json = json["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "orders")
        .unwrap();
    assert_eq!(orders_json["partitionKey"], "RANGE (ordered_at)");
    assert_eq!(orders_json["partitions"][2]["bound"], "DEFAULT");
    assert!(orders_json.get("unique").is_none());
    assert!(orders_json["columns"][0].get("identity").is_none());
    eprintln!("{}", serde_json::to_string_pretty(orders_json)?);
    let back: SchemaInfo = serde_json::from_value(json)?;
    assert_eq!(back, schema);
    Ok(())
}

/// The sample is generated by one model for every database; a change to
/// it, or to PostgreSQL's share of it, that alters a single value shows
/// here, in schema and row isolation. (Tests, benchmarks and the end-to-end
/// suites all stand on this data.)
#[test]
fn the_sample_data_stays_what_it_was() -> Result<()> {
    for (isolation, expected) in [
        (PgIsolation::Schema, PG_SAMPLE_DIGESTS),
        (
            PgIsolation::Row {
                row_security: false,
            },
            PG_ROW_SAMPLE_DIGESTS,
        ),
    ] {
        let db = TestDb::new();
        let store = db.store(isolation);
        sample(&store, "acme");
        let export = export(&store, "acme")?;
        let digests = TABLES
            .iter()
            .map(|table| format!("{table} {}", blake3::hash(&export.ndjson[*table]).to_hex()))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(digests, expected, "{}", store.isolation());
    }
    Ok(())
}

/// Schema isolation.
const PG_SAMPLE_DIGESTS: &str = "\
accounts 402fe4fcec8b488dd502cb905a8fada97b85010a31f9bcdb8bb4870d7bb20269\n\
users f4ba6ad3eda274ad583af90ed32671d48d31ffd71d2443581ce6c1a449164497\n\
products 6d414d9cbfda0e98dcb39abee64744586f470998ecfde3c3f077bb4a3a91fa2d\n\
orders f1494af3d3fa5c4821bed811457d194237960ab0c2525024428f4e00c40f2517\n\
order_items 58c4f3d172f89b1a36056fa9157e33a63aa5e9654890700368960f7fdd0155c0\n\
kpis ad9370d9846c91c37c74228b3107209adc1bcf039ebddb0e864e4277bdb403a0\n\
kpi_time_series aae4fa9622fb4fdbe07aeaaf7c8f85fbfa7c837cd06a0a2cc82b0bc18ea03787\n\
kpi_reference_ranges 5ad3f424dbef14f6d6a869394a20351e684d69a566cff54bf90df4ac7e10b25e\n\
health_trends 0356aa5fbfdfa0a78cbc1076043fd49864271c99fb5f868908228f6870a319b5\n\
playbooks 83e9215f9801db1af39acd5219d2139d81915230fb1437d7097243d39dc3c2c2\n\
customer_config 577fea394f16c5e0dc0a8b08c8d6af97f6540b4bd712d4336cd3541042970761\n\
feature_toggles a1c3610068145fceb2b175c0584dbf79b99258ef27c0607a3243bb51492daa80";

/// Row mode: the same rows, each with the tenant column.
const PG_ROW_SAMPLE_DIGESTS: &str = "\
accounts 87975f87860d0f27f4f8f4d263210b270d6c877558ad1c35647cca43c23cd868\n\
users d245e46b940645843032c6398529f74909bcb9baca1b2bc231213e9ada03df08\n\
products d032b497ab5c40e3e7d61f518729af501020b824f8023b7de22ab8016528cc2e\n\
orders 747e935cb1fb5e8d802a689c99f2231ead089edee7f359bc214e5a779cf1db33\n\
order_items 74ecdf21cd8c0fa8bf142563d8b94a586b07df7050731fea6ebe685ae8ab4565\n\
kpis 247c5fec58eb04c6593a5d6452261afab57e19e7ad75a7e59d442743b5128124\n\
kpi_time_series c718d8ab9bbb4cb4fcc32f9c4aed43d49a899739bf1e77bfcdde44f2111317db\n\
kpi_reference_ranges 3132cafb5e4a9c917813a958f3c8f1c1190a10ee1853a89740a8d345534e50d6\n\
health_trends 309abad47a71cc459f6da861f9184e401afdb1e715c1a046286c310033d140a6\n\
playbooks 710abce2f0e48b1e311e1931a4e2896a880e2dd01c6f0b3ce1fdf743464707f7\n\
customer_config 4c492f08e5737ddcc8c0f52b9bca19296c069fa89472b540976e0c280ffe4d65\n\
feature_toggles 5c26171842633c5f0a2b768709d9bb3a5c35a5a516e2862e623a6eae69e3e9ad";
