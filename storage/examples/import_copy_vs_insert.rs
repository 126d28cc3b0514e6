//! Side-by-side measurement of the PostgreSQL writer's two load paths on
//! the same rows: `COPY ... FROM STDIN` (the fast path rehydration uses)
//! against batched multi-row `INSERT`s. Not a test: it prints a Markdown
//! table for `bench/results/import-copy-vs-insert-*.md`.
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo run --release -p ferry-storage --example import_copy_vs_insert -- 1000000
//! ```
//!
//! It creates a throwaway database, a schema-mode tenant `bench` with one
//! table of mixed types filled by `generate_series`, exports the table's
//! `lite` NDJSON to a file through a snapshot (as an export would), then
//! for each path replaces the table's rows with the file in one
//! [`TenantWriter::load`] (one transaction: empty the table, load it, move
//! the sequences, verify the row count, commit), checking that the content
//! hash equals the export's each time. The time measured is the whole load.

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use ferry_engine::TenantId;
use ferry_storage::tenant_pg::{with_database, LoadPath, PgIsolation, PgTenants, PgTenantsConfig};
use ferry_workflows::ports::tenant::{TableFormat, TenantStore};
use ferry_workflows::ports::tenant_writer::{
    LoadObserver, LoadPlan, LoadSource, TableSource, TenantWriter, Verify, WriteMode,
};
use ferry_workflows::ports::PortError;
use std::io::{BufReader, BufWriter};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let rows: u64 = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |a| a.parse())?;
    let admin = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("ferry_import_bench_{}", std::process::id());
    PgConnection::establish(&admin)?.batch_execute(&format!("CREATE DATABASE \"{name}\""))?;
    let result = run(&with_database(&admin, &name)?, rows);
    PgConnection::establish(&admin)?
        .batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))?;
    result
}

fn run(url: &str, rows: u64) -> anyhow::Result<()> {
    let mut conn = PgConnection::establish(url)?;
    conn.batch_execute(&format!(
        "CREATE SCHEMA tenant_bench;
         CREATE TABLE tenant_bench.events (
             id bigint PRIMARY KEY, account_id integer NOT NULL, kind text NOT NULL,
             amount numeric(14,2), ratio double precision, at timestamptz NOT NULL,
             payload jsonb, tags text[]);
         INSERT INTO tenant_bench.events
         SELECT g, g % 1000, 'kind-' || (g % 17), (g % 100000) / 100.0, g / 7.0,
                timestamptz '2026-01-01' + g * interval '1 second',
                jsonb_build_object('n', g, 's', 'value ' || g),
                ARRAY['a' || (g % 5), 'b']
         FROM generate_series(1, {rows}) AS g;"
    ))?;
    conn.batch_execute("VACUUM ANALYZE tenant_bench.events")?;
    let store =
        PgTenants::new(PgTenantsConfig::new(url.to_owned()).with_isolation(PgIsolation::Schema))?;
    let tenant = TenantId::parse("bench")?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("events.ndjson");
    let mut snap = store.snapshot(&tenant, dir.path())?;
    let mut out = BufWriter::new(std::fs::File::create(&file)?);
    let started = Instant::now();
    snap.dump_table("events", &TableFormat::Ndjson, &mut out, &mut |_| {})?;
    drop(out);
    drop(snap);
    let export_s = started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&file)?.len();
    let exported = blake3::hash(&std::fs::read(&file)?).to_hex().to_string();

    println!("| path | rows | NDJSON MB | import s | rows/s | MB/s | hash equal |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    println!(
        "| (export of the same table, for scale) | {rows} | {:.1} | {export_s:.2} | {:.0} | {:.1} | — |",
        bytes as f64 / 1e6,
        rows as f64 / export_s,
        bytes as f64 / 1e6 / export_s
    );
    for path in [LoadPath::Copy, LoadPath::BatchedInsert, LoadPath::Copy] {
        let mut writer = store.open_writer(&tenant)?.with_load_path(path);
        conn.batch_execute("CHECKPOINT")?;
        let mut source = BufReader::with_capacity(256 * 1024, std::fs::File::open(&file)?);
        let plan = LoadPlan {
            source: LoadSource::Lite(vec![TableSource {
                table: "events".into(),
                mode: WriteMode::Replace,
                rows: &mut source,
            }]),
            verify: Verify::Counts(vec![("events".to_owned(), rows)]),
            unless_verified: false,
            trial: false,
        };
        let started = Instant::now();
        let outcome = writer.load(plan, &mut Quiet)?;
        let seconds = started.elapsed().as_secs_f64();
        let inserted = outcome.tables[0].inserted;
        let hash = writer.content_hash("events")?.blake3;
        println!(
            "| {path:?} | {inserted} | {:.1} | {seconds:.2} | {:.0} | {:.1} | {} |",
            bytes as f64 / 1e6,
            inserted as f64 / seconds,
            bytes as f64 / 1e6 / seconds,
            hash == exported
        );
    }
    Ok(())
}

/// Progress is not reported.
struct Quiet;

impl LoadObserver for Quiet {
    fn rows(&mut self, _table: &str, _rows: u64) -> Result<(), PortError> {
        Ok(())
    }

    fn before_commit(&mut self) -> Result<(), PortError> {
        Ok(())
    }
}
