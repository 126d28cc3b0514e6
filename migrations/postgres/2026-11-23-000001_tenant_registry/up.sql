-- The tenant registry: where each tenant's data lives.
-- database_url is set for database-per-tenant isolation (the tenant's own
-- database); schema_name is the schema holding its tables (schema mode: the
-- tenant's schema; database mode: the schema inside its database; row mode:
-- the shared schema). The id follows the platform's tenant id rule.
CREATE TABLE IF NOT EXISTS ferry_tenants (
    tenant_id    text        PRIMARY KEY
                 CHECK (tenant_id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    database_url text,
    schema_name  text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
