//! A writer that keeps moving money between two accounts of a tenant while
//! an export reads it, the total staying [`TOTAL`]: an export that reads
//! both tables from one snapshot always sees that total, whatever commits in
//! between. Shared by the adapter test (`storage/tests/tenant_pg.rs`, which
//! includes this file by path) and the end-to-end test over HTTP
//! (`tests/export_pg_e2e.rs`).

use anyhow::Result;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl};
use rand::Rng;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The sum of both balances at every commit.
pub const TOTAL: i64 = 1000;

/// Create `checking` and `savings` (one account each, half the total) in
/// `schema`, the tenant's schema.
pub fn create_accounts(conn: &mut PgConnection, schema: &str) -> Result<()> {
    let half = TOTAL / 2;
    conn.batch_execute(&format!(
        "CREATE TABLE \"{schema}\".checking (id integer PRIMARY KEY, balance bigint NOT NULL);
         CREATE TABLE \"{schema}\".savings (id integer PRIMARY KEY, balance bigint NOT NULL);
         INSERT INTO \"{schema}\".checking VALUES (1, {half});
         INSERT INTO \"{schema}\".savings VALUES (1, {half});"
    ))?;
    Ok(())
}

/// The running writer; [`Transfers::stop`] ends it.
pub struct Transfers {
    stop: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
    handle: Option<JoinHandle<Result<()>>>,
}

impl Transfers {
    /// Start moving random amounts from checking to savings (or back) in
    /// `schema` of the database at `url`, one transaction per transfer.
    pub fn start(url: &str, schema: &str) -> Transfers {
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(AtomicU64::new(0));
        let (url, schema) = (url.to_owned(), schema.to_owned());
        let handle = {
            let (stop, commits) = (stop.clone(), commits.clone());
            std::thread::spawn(move || -> Result<()> {
                let mut conn = PgConnection::establish(&url)?;
                let mut rng = rand::thread_rng();
                let debit = format!("UPDATE \"{schema}\".checking SET balance = balance - $1");
                let credit = format!("UPDATE \"{schema}\".savings SET balance = balance + $1");
                while !stop.load(Ordering::Relaxed) {
                    let amount: i64 = rng.gen_range(-50..=50);
                    conn.transaction(|conn| {
                        diesel::sql_query(&debit)
                            .bind::<diesel::sql_types::BigInt, _>(amount)
                            .execute(conn)?;
                        diesel::sql_query(&credit)
                            .bind::<diesel::sql_types::BigInt, _>(amount)
                            .execute(conn)?;
                        diesel::QueryResult::Ok(())
                    })?;
                    commits.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        };
        Transfers {
            stop,
            commits,
            handle: Some(handle),
        }
    }

    /// Transfers committed so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Wait until `n` more transfers have committed.
    pub fn wait_for_commits(&self, n: u64) {
        let target = self.commits() + n;
        while self.commits() < target {
            assert!(
                !self.handle.as_ref().is_some_and(|h| h.is_finished()),
                "the transfer writer stopped early"
            );
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Stop the writer; the number of transfers it committed.
    pub fn stop(mut self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().expect("transfer writer thread")?;
        }
        Ok(self.commits())
    }
}

impl Drop for Transfers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
