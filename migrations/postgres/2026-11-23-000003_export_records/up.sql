-- Export records: a queryable projection of export workflows for operators
-- and other services. The workflow's event log stays the source of truth;
-- ferry upserts a row by export id as the workflow moves on.
CREATE TABLE ferry_exports (
    export_id    uuid        PRIMARY KEY,
    tenant_id    text        NOT NULL
                 CHECK (tenant_id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    profile      text        NOT NULL,
    status       text        NOT NULL,
    requested_by text        NOT NULL,
    requested_at timestamptz NOT NULL,
    completed_at timestamptz,
    size_bytes   bigint      CHECK (size_bytes >= 0),
    checksum     text,
    object_key   text,
    expires_at   timestamptz,
    expired_at   timestamptz
);

-- Listing a tenant's exports, newest first (export ids are UUIDv7, so they
-- sort by creation time).
CREATE INDEX ferry_exports_tenant_id ON ferry_exports (tenant_id, export_id);
-- Finding exports whose bundle is due to expire.
CREATE INDEX ferry_exports_expiring ON ferry_exports (expires_at) WHERE expired_at IS NULL;
