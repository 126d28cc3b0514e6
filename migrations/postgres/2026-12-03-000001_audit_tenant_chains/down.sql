-- For development databases only: this destroys the tenants' chains.
DROP TABLE ferry_audit_tenant_chain;
