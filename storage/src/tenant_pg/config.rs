//! Configuration of the PostgreSQL tenant store: which isolation mode the
//! platform uses and how a tenant id maps to a schema, a database or a
//! tenant column.
//!
//! Names derived from a tenant id come from templates (`tenant_{id}`) and are
//! checked here, once: tenant ids are already restricted to
//! `[a-z0-9_-]`, but a template is operator input and PostgreSQL silently
//! truncates identifiers longer than 63 bytes, which could make two tenants
//! share one schema. A name that would be truncated is refused instead.

use ferry_engine::TenantId;
use ferry_workflows::ports::PortError;
use std::path::PathBuf;

/// The placeholder a name template replaces with the tenant id.
pub const TENANT_ID_PLACEHOLDER: &str = "{id}";
/// Longest identifier PostgreSQL keeps (NAMEDATALEN - 1); longer ones are truncated.
pub const IDENTIFIER_BYTES_MAX: usize = 63;
/// Default template of a tenant's schema (schema mode) or database (database mode).
pub const DEFAULT_NAME_TEMPLATE: &str = "tenant_{id}";
/// Default tenant column of the shared tables (row mode).
pub const DEFAULT_TENANT_COLUMN: &str = "tenant_id";
/// Default schema of the shared tables (row mode) and of a tenant's tables
/// inside its own database (database mode).
pub const DEFAULT_SCHEMA: &str = "public";
/// Default for [`PgTenantsConfig::lock_timeout_ms`].
pub const DEFAULT_LOCK_TIMEOUT_MS: u64 = 5_000;
/// Default for [`PgTenantsConfig::connect_timeout_s`].
pub const DEFAULT_CONNECT_TIMEOUT_S: u32 = 10;
/// The session setting that carries the tenant id inside a snapshot
/// transaction (row mode); row-level security policies read it with
/// `current_setting('ferry.tenant', true)`.
pub const TENANT_SETTING: &str = "ferry.tenant";

/// How tenants are kept apart in PostgreSQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PgIsolation {
    /// One schema per tenant in the platform database, named by
    /// [`PgTenantsConfig::schema_template`].
    Schema,
    /// One database per tenant; its URL is in the tenant registry
    /// (`ferry_tenants`) of the platform database.
    Database,
    /// Shared tables in [`PgTenantsConfig::shared_schema`], one tenant column.
    Row {
        /// The shared tables have row-level security policies keyed on the
        /// `ferry.tenant` setting; the snapshot sets it (and, if configured,
        /// switches to [`PgTenantsConfig::row_security_role`] so the policies
        /// apply even to a privileged connection).
        row_security: bool,
    },
}

impl PgIsolation {
    /// The name `TenantStore::isolation` reports.
    pub fn name(&self) -> &'static str {
        match self {
            PgIsolation::Schema => "schema",
            PgIsolation::Database => "database",
            PgIsolation::Row { .. } => "row",
        }
    }

    /// Parse `schema`, `database` or `row` (as in `FERRY_TENANT_ISOLATION`).
    pub fn parse(name: &str, row_security: bool) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "schema" => Some(PgIsolation::Schema),
            "database" => Some(PgIsolation::Database),
            "row" => Some(PgIsolation::Row { row_security }),
            _ => None,
        }
    }
}

/// Everything [`super::PgTenants`] needs to find a tenant's data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgTenantsConfig {
    /// The platform database (`DATABASE_URL`): the tenant registry, and the
    /// tenants' data in schema and row mode.
    pub platform_url: String,
    pub isolation: PgIsolation,
    /// Schema mode: a tenant's schema name, e.g. `tenant_{id}`.
    pub schema_template: String,
    /// Database mode: the database name used when the registry has no URL
    /// for a tenant (and by the sample generator), e.g. `tenant_{id}`.
    pub database_template: String,
    /// Database mode: the schema that holds a tenant's tables inside its
    /// database, unless the registry names another.
    pub database_schema: String,
    /// Row mode: the schema of the shared tables.
    pub shared_schema: String,
    /// Row mode: the column naming a row's tenant. Tables without it are
    /// not tenant data and are never exported.
    pub tenant_column: String,
    /// Row mode with row-level security: the role the snapshot switches to
    /// (`SET LOCAL ROLE`) so the policies apply; `None` keeps the connecting
    /// role (whose policies apply unless it is a superuser or `BYPASSRLS`).
    pub row_security_role: Option<String>,
    /// How long the snapshot waits for a table lock held by a schema change
    /// before failing with the retryable `tenant_db_busy`.
    pub lock_timeout_ms: u64,
    /// Added to connection URLs that do not set `connect_timeout` themselves.
    pub connect_timeout_s: u32,
    /// The `pg_dump` executable (a name on `PATH` or a path); it should be of
    /// the server's major version or newer.
    pub pg_dump: PathBuf,
}

/// A configuration value that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ConfigError {
    pub name: String,
    pub message: String,
}

impl PgTenantsConfig {
    /// Defaults for `platform_url`: schema mode, `tenant_{id}`, `tenant_id`.
    pub fn new(platform_url: impl Into<String>) -> Self {
        PgTenantsConfig {
            platform_url: platform_url.into(),
            isolation: PgIsolation::Schema,
            schema_template: DEFAULT_NAME_TEMPLATE.to_owned(),
            database_template: DEFAULT_NAME_TEMPLATE.to_owned(),
            database_schema: DEFAULT_SCHEMA.to_owned(),
            shared_schema: DEFAULT_SCHEMA.to_owned(),
            tenant_column: DEFAULT_TENANT_COLUMN.to_owned(),
            row_security_role: None,
            lock_timeout_ms: DEFAULT_LOCK_TIMEOUT_MS,
            connect_timeout_s: DEFAULT_CONNECT_TIMEOUT_S,
            pg_dump: PathBuf::from("pg_dump"),
        }
    }

    pub fn with_isolation(mut self, isolation: PgIsolation) -> Self {
        self.isolation = isolation;
        self
    }

    /// Read the knobs from environment-style variables (`lookup` is
    /// `std::env::var(..).ok()` in the binary, a map in tests):
    ///
    /// | variable | field | default |
    /// |---|---|---|
    /// | `FERRY_TENANT_ISOLATION` | `schema`, `database`, `row` | `schema` |
    /// | `FERRY_TENANT_ROW_SECURITY` | row mode with RLS (`on`/`off`) | `off` |
    /// | `FERRY_TENANT_ROW_SECURITY_ROLE` | `row_security_role` | none |
    /// | `FERRY_TENANT_SCHEMA_TEMPLATE` | `schema_template` | `tenant_{id}` |
    /// | `FERRY_TENANT_DATABASE_TEMPLATE` | `database_template` | `tenant_{id}` |
    /// | `FERRY_TENANT_DATABASE_SCHEMA` | `database_schema` | `public` |
    /// | `FERRY_TENANT_SHARED_SCHEMA` | `shared_schema` | `public` |
    /// | `FERRY_TENANT_COLUMN` | `tenant_column` | `tenant_id` |
    /// | `FERRY_PG_LOCK_TIMEOUT_MS` | `lock_timeout_ms` | `5000` |
    /// | `FERRY_PG_CONNECT_TIMEOUT_S` | `connect_timeout_s` | `10` |
    /// | `FERRY_PG_DUMP` | `pg_dump` | `pg_dump` |
    pub fn from_lookup(
        platform_url: impl Into<String>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = PgTenantsConfig::new(platform_url);
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let row_security = match get("FERRY_TENANT_ROW_SECURITY") {
            None => false,
            Some(v) => parse_flag(&v).ok_or_else(|| ConfigError {
                name: "FERRY_TENANT_ROW_SECURITY".into(),
                message: format!("expected on or off, got {v:?}"),
            })?,
        };
        if let Some(v) = get("FERRY_TENANT_ISOLATION") {
            config.isolation = PgIsolation::parse(&v, row_security).ok_or_else(|| ConfigError {
                name: "FERRY_TENANT_ISOLATION".into(),
                message: format!("expected schema, database or row, got {v:?}"),
            })?;
        }
        let strings: [(&str, &mut String); 5] = [
            ("FERRY_TENANT_SCHEMA_TEMPLATE", &mut config.schema_template),
            (
                "FERRY_TENANT_DATABASE_TEMPLATE",
                &mut config.database_template,
            ),
            ("FERRY_TENANT_DATABASE_SCHEMA", &mut config.database_schema),
            ("FERRY_TENANT_SHARED_SCHEMA", &mut config.shared_schema),
            ("FERRY_TENANT_COLUMN", &mut config.tenant_column),
        ];
        for (name, slot) in strings {
            if let Some(v) = get(name) {
                *slot = v;
            }
        }
        if let Some(v) = get("FERRY_PG_DUMP") {
            config.pg_dump = PathBuf::from(v);
        }
        config.row_security_role = get("FERRY_TENANT_ROW_SECURITY_ROLE");
        if let Some(v) = get("FERRY_PG_LOCK_TIMEOUT_MS") {
            config.lock_timeout_ms = parse_number("FERRY_PG_LOCK_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = get("FERRY_PG_CONNECT_TIMEOUT_S") {
            config.connect_timeout_s = parse_number("FERRY_PG_CONNECT_TIMEOUT_S", &v)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Check the templates and names once, so that later failures are about
    /// data, not configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, template) in [
            ("schema_template", &self.schema_template),
            ("database_template", &self.database_template),
        ] {
            if !template.contains(TENANT_ID_PLACEHOLDER) {
                return Err(ConfigError {
                    name: name.into(),
                    message: format!("must contain {TENANT_ID_PLACEHOLDER}"),
                });
            }
            // Tenants whose rendered name would be too long are refused one
            // by one (`tenant_name_invalid`); the template itself must leave
            // room for at least a one-character id.
            let shortest = template.replace(TENANT_ID_PLACEHOLDER, "x");
            check_identifier(&shortest).map_err(|message| ConfigError {
                name: name.into(),
                message,
            })?;
        }
        for (name, value) in [
            ("database_schema", &self.database_schema),
            ("shared_schema", &self.shared_schema),
            ("tenant_column", &self.tenant_column),
        ] {
            check_identifier(value).map_err(|message| ConfigError {
                name: name.into(),
                message,
            })?;
        }
        if let Some(role) = &self.row_security_role {
            check_identifier(role).map_err(|message| ConfigError {
                name: "row_security_role".into(),
                message,
            })?;
        }
        Ok(())
    }

    /// Schema mode: the schema of `tenant`.
    pub fn tenant_schema(&self, tenant: &TenantId) -> Result<String, PortError> {
        render(&self.schema_template, tenant)
    }

    /// Database mode: the database name of `tenant` when the registry has none.
    pub fn tenant_database(&self, tenant: &TenantId) -> Result<String, PortError> {
        render(&self.database_template, tenant)
    }
}

/// Substitute the tenant id into a template, refusing names PostgreSQL
/// would truncate or that are empty.
fn render(template: &str, tenant: &TenantId) -> Result<String, PortError> {
    let name = template.replace(TENANT_ID_PLACEHOLDER, tenant.as_str());
    check_identifier(&name).map_err(|message| {
        PortError::permanent(
            "tenant_name_invalid",
            format!("the name for tenant {tenant}: {message}"),
        )
    })?;
    Ok(name)
}

/// An identifier we are willing to create or look up: not empty, no NUL,
/// not longer than PostgreSQL keeps.
fn check_identifier(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.contains('\0') {
        return Err("must not contain NUL".into());
    }
    if name.len() > IDENTIFIER_BYTES_MAX {
        return Err(format!(
            "{name:?} is longer than PostgreSQL's {IDENTIFIER_BYTES_MAX}-byte identifier limit"
        ));
    }
    Ok(())
}

fn parse_flag(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "on" | "true" | "yes" => Some(true),
        "0" | "off" | "false" | "no" => Some(false),
        _ => None,
    }
}

fn parse_number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError {
        name: name.into(),
        message: format!("expected a non-negative number, got {value:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).unwrap()
    }

    #[test]
    fn templates_render_and_overlong_names_are_refused() {
        let config = PgTenantsConfig::new("postgres://x/db");
        assert_eq!(
            config.tenant_schema(&tenant("acme-2")).unwrap(),
            "tenant_acme-2"
        );
        let long = "a".repeat(60);
        let err = config.tenant_schema(&tenant(&long)).unwrap_err();
        assert_eq!(
            (err.code.as_str(), err.retryable),
            ("tenant_name_invalid", false)
        );
    }

    #[test]
    fn knobs_are_read_from_the_environment() {
        let env: HashMap<&str, &str> = [
            ("FERRY_TENANT_ISOLATION", "row"),
            ("FERRY_TENANT_ROW_SECURITY", "on"),
            ("FERRY_TENANT_COLUMN", "org_id"),
            ("FERRY_PG_LOCK_TIMEOUT_MS", "250"),
        ]
        .into_iter()
        .collect();
        let config =
            PgTenantsConfig::from_lookup("postgres://x/db", |k| env.get(k).map(|v| v.to_string()))
                .unwrap();
        assert_eq!(config.isolation, PgIsolation::Row { row_security: true });
        assert_eq!(config.tenant_column, "org_id");
        assert_eq!(config.lock_timeout_ms, 250);
        let bad = PgTenantsConfig::from_lookup("postgres://x/db", |k| {
            (k == "FERRY_TENANT_ISOLATION").then(|| "shard".to_owned())
        });
        assert!(bad.is_err());
        let no_placeholder = PgTenantsConfig::from_lookup("postgres://x/db", |k| {
            (k == "FERRY_TENANT_SCHEMA_TEMPLATE").then(|| "tenant".to_owned())
        });
        assert!(no_placeholder.is_err());
    }
}
