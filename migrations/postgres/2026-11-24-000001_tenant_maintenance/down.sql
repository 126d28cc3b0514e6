ALTER TABLE ferry_tenants
    DROP COLUMN IF EXISTS maintenance_since,
    DROP COLUMN IF EXISTS maintenance;
