-- The platform's audit log: append-only and hash-chained.
-- hash = blake3(prev_hash || canonical JSON of the entry); see
-- ferry_workflows::ports::audit. The triggers make the table append-only in
-- the database itself, whatever code connects to it.
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY NOT NULL,
    at         TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    tenant     TEXT,
    action     TEXT    NOT NULL,
    entity     TEXT    NOT NULL,
    entity_id  TEXT    NOT NULL,
    ip         TEXT,
    user_agent TEXT,
    details    TEXT    NOT NULL,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL UNIQUE
);

CREATE INDEX audit_log_tenant_seq ON audit_log (tenant, seq);
CREATE INDEX audit_log_action_seq ON audit_log (action, seq);
CREATE INDEX audit_log_entity_seq ON audit_log (entity_id, seq);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
