-- Each tenant's own chain over its audit entries, so a tenant is shown its
-- own positions and links only (never the platform's sequence, its gaps or
-- other tenants' hashes). A row per tenant entry of audit_log (same seq):
-- tenant_seq is 1, 2, 3, ... per tenant, and
-- hash = blake3(prev_hash || canonical JSON of the entry at tenant_seq),
-- the function of the platform chain (ferry_workflows::ports::audit).
-- Rows of entries written before this table existed are added by ferry when
-- it opens the database. Append-only like audit_log.
CREATE TABLE audit_tenant_chain (
    seq        INTEGER PRIMARY KEY NOT NULL,
    tenant     TEXT    NOT NULL,
    tenant_seq INTEGER NOT NULL CHECK (tenant_seq > 0),
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL,
    UNIQUE (tenant, tenant_seq)
);

CREATE TRIGGER audit_tenant_chain_no_update BEFORE UPDATE ON audit_tenant_chain
BEGIN
    SELECT RAISE(ABORT, 'audit_tenant_chain is append-only');
END;

CREATE TRIGGER audit_tenant_chain_no_delete BEFORE DELETE ON audit_tenant_chain
BEGIN
    SELECT RAISE(ABORT, 'audit_tenant_chain is append-only');
END;
