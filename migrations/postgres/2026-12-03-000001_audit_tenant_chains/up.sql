-- Each tenant's own chain over its audit entries, so a tenant is shown its
-- own positions and links only (never the platform's sequence, its gaps or
-- other tenants' hashes). A row per tenant entry of ferry_audit_log (same
-- seq): tenant_seq is 1, 2, 3, ... per tenant, and
-- hash = blake3(prev_hash || canonical JSON of the entry at tenant_seq),
-- the function of the platform chain (ferry_workflows::ports::audit).
-- Rows are written in the append's transaction, which holds the lock of the
-- platform head, so each tenant's chain is linear too. Rows of entries
-- written before this table existed are added by ferry when it connects.
--
-- Append-only like ferry_audit_log: triggers (ENABLE ALWAYS) refuse UPDATE,
-- DELETE and TRUNCATE, and those privileges are revoked. An application
-- role needs, besides the grants of the audit migration:
--     GRANT SELECT, INSERT ON ferry_audit_tenant_chain TO app;

CREATE TABLE ferry_audit_tenant_chain (
    seq        bigint PRIMARY KEY,
    tenant     text   NOT NULL,
    tenant_seq bigint NOT NULL CHECK (tenant_seq > 0),
    prev_hash  text   NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    hash       text   NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    UNIQUE (tenant, tenant_seq)
);

CREATE TRIGGER ferry_audit_tenant_chain_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON ferry_audit_tenant_chain
    FOR EACH STATEMENT EXECUTE FUNCTION ferry_audit_refuse();
ALTER TABLE ferry_audit_tenant_chain ENABLE ALWAYS TRIGGER ferry_audit_tenant_chain_append_only;

REVOKE UPDATE, DELETE, TRUNCATE ON ferry_audit_tenant_chain FROM PUBLIC;
REVOKE UPDATE, DELETE, TRUNCATE ON ferry_audit_tenant_chain FROM CURRENT_USER;
