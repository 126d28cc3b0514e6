//! What the PostgreSQL store's test files share: a throwaway database per
//! test (dropped with everything sharing its prefix), tenants, the sample.
//!
//! `DATABASE_URL` names a server where the user may create databases and
//! roles (default `postgres://postgres@127.0.0.1:5432/postgres`). A server
//! that cannot be reached fails the tests: they are never skipped.

use diesel::connection::SimpleConnection;
use diesel::sql_types::Text;
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use ferry_engine::TenantId;
use ferry_storage::sample::SampleOptions;
use ferry_storage::tenant_pg::sample::{create_pg_sample, PgSampleSummary};
use ferry_storage::tenant_pg::{with_database, PgIsolation, PgTenants, PgTenantsConfig};
use rand::Rng;

/// The type-fidelity table `zoo` and its types (run with `search_path` set
/// to the schema to create them in).
pub const TYPES_SQL: &str = include_str!("pg_types.sql");

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const SEED: u64 = 7;

pub fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

pub fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).expect("valid tenant id")
}

/// A database of this test's own, dropped (with every database and role
/// sharing its prefix) when the test ends.
pub struct TestDb {
    pub prefix: String,
    pub url: String,
    pub admin_url: String,
}

impl TestDb {
    pub fn new() -> TestDb {
        let admin_url = admin_url();
        let prefix = format!("ferry_t_{:08x}", rand::thread_rng().gen::<u32>());
        let mut admin = PgConnection::establish(&admin_url).unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at DATABASE_URL={admin_url}: {e}. \
                 These tests need a real server (the test script starts one)."
            )
        });
        admin
            .batch_execute(&format!("CREATE DATABASE \"{prefix}\""))
            .expect("create the test database");
        let url = with_database(&admin_url, &prefix).expect("derive the test database URL");
        TestDb {
            prefix,
            url,
            admin_url,
        }
    }

    /// A further empty database with the test's prefix.
    pub fn scratch(&self, suffix: &str) -> String {
        let name = format!("{}_{suffix}", self.prefix);
        let mut admin = PgConnection::establish(&self.admin_url).expect("connect as admin");
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .expect("create a scratch database");
        with_database(&self.admin_url, &name).expect("scratch URL")
    }

    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.url).expect("connect to the test database")
    }

    pub fn config(&self, isolation: PgIsolation) -> PgTenantsConfig {
        let mut config = PgTenantsConfig::new(self.url.clone()).with_isolation(isolation);
        config.database_template = format!("{}_{{id}}", self.prefix);
        config
    }

    pub fn store(&self, isolation: PgIsolation) -> PgTenants {
        PgTenants::new(self.config(isolation)).expect("valid configuration")
    }
}

#[derive(QueryableByName)]
struct NameRow {
    #[diesel(sql_type = Text)]
    name: String,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Ok(mut admin) = PgConnection::establish(&self.admin_url) else {
            return;
        };
        let like = format!("{}%", self.prefix);
        let dbs: Vec<NameRow> = diesel::sql_query(
            "SELECT datname::text AS name FROM pg_database WHERE datname LIKE $1",
        )
        .bind::<Text, _>(&like)
        .load(&mut admin)
        .unwrap_or_default();
        for db in dbs {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                db.name
            ));
        }
        let roles: Vec<NameRow> =
            diesel::sql_query("SELECT rolname::text AS name FROM pg_roles WHERE rolname LIKE $1")
                .bind::<Text, _>(&like)
                .load(&mut admin)
                .unwrap_or_default();
        for role in roles {
            let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS \"{}\"", role.name));
        }
    }
}

pub fn sample(store: &PgTenants, id: &str) -> PgSampleSummary {
    create_pg_sample(
        store,
        &tenant(id),
        &SampleOptions {
            scale: 1,
            seed: SEED,
            overwrite: false,
        },
    )
    .unwrap_or_else(|e| panic!("sample {id}: {e}"))
}
