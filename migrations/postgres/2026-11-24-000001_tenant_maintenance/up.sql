-- The maintenance flag of a tenant: set while a rehydration replaces the
-- tenant's data (from before the first delete until the new data is
-- verified), so the platform can keep the tenant's application from
-- writing meanwhile. maintenance_since says when it was set.
ALTER TABLE ferry_tenants
    ADD COLUMN IF NOT EXISTS maintenance boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS maintenance_since timestamptz;
