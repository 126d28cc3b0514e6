DROP TRIGGER IF EXISTS audit_tenant_chain_no_delete;
DROP TRIGGER IF EXISTS audit_tenant_chain_no_update;
DROP TABLE IF EXISTS audit_tenant_chain;
