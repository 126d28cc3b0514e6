-- The platform's audit log: append-only and hash-chained.
--
-- hash = blake3(prev_hash || canonical JSON of the entry), computed by ferry
-- (ferry_workflows::ports::audit), identical to the SQLite log's.
--
-- Append-only in the database itself, in three layers:
--
-- 1. Privileges. UPDATE, DELETE and TRUNCATE on ferry_audit_log are revoked
--    from PUBLIC, from every role that holds them (for example through
--    ALTER DEFAULT PRIVILEGES), and from the owner itself -- the role that ran
--    this migration, which is ferry's own role in a one-role deployment. Any
--    non-superuser is refused by the privilege system. An application role
--    needs only:
--        GRANT SELECT, INSERT ON ferry_audit_log TO app;
--        GRANT SELECT ON ferry_audit_head TO app;   -- for verification
--        GRANT EXECUTE ON FUNCTION ferry_audit_head_for_append() TO app;
-- 2. Triggers. Statement triggers raise on every UPDATE, DELETE and TRUNCATE,
--    so even a superuser (who bypasses privileges) is refused. They are
--    ENABLE ALWAYS, so session_replication_role = replica does not skip them.
--    Only DDL by the owner or a superuser (ALTER TABLE ... DISABLE TRIGGER)
--    lifts them; ferry never issues it.
-- 3. The chain. Whatever is changed after that is found by verification.
--
-- Linear chain. ferry_audit_head holds the chain's last (seq, hash). An
-- append first calls ferry_audit_head_for_append(), which locks that one row
-- (SELECT ... FOR UPDATE) until the transaction ends, so appends from any
-- number of ferry processes take turns. A BEFORE INSERT trigger then checks
-- that the new entry extends the head (seq = head + 1, prev_hash = head hash)
-- and advances it, so the database itself keeps seq gap-free and every link
-- pointing at its predecessor, even for a client that skips the lock. Both
-- functions are SECURITY DEFINER, so the application role can lock and
-- advance the head without being able to write it (it may only read it).

CREATE TABLE ferry_audit_log (
    seq        bigint      PRIMARY KEY CHECK (seq > 0),
    at         timestamptz NOT NULL,
    actor      text        NOT NULL,
    tenant     text,
    action     text        NOT NULL,
    entity     text        NOT NULL,
    entity_id  text        NOT NULL,
    ip         text,
    user_agent text,
    -- json (not jsonb) keeps the text exactly as written, so what is read
    -- back parses to the value that was hashed.
    details    json        NOT NULL,
    prev_hash  text        NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    hash       text        NOT NULL UNIQUE CHECK (hash ~ '^[0-9a-f]{64}$')
);

CREATE INDEX ferry_audit_log_tenant_seq ON ferry_audit_log (tenant, seq);
CREATE INDEX ferry_audit_log_action_seq ON ferry_audit_log (action, seq);
CREATE INDEX ferry_audit_log_entity_seq ON ferry_audit_log (entity_id, seq);

CREATE TABLE ferry_audit_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq       bigint  NOT NULL CHECK (seq >= 0),
    hash      text    NOT NULL
);

INSERT INTO ferry_audit_head (singleton, seq, hash)
VALUES (true, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE FUNCTION ferry_audit_refuse() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING HINT = 'The audit log is hash-chained; entries are never changed or removed.';
END;
$$;

CREATE TRIGGER ferry_audit_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON ferry_audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION ferry_audit_refuse();
ALTER TABLE ferry_audit_log ENABLE ALWAYS TRIGGER ferry_audit_log_append_only;

-- The head only ever moves forward, through the insert trigger below.
CREATE TRIGGER ferry_audit_head_keep
    BEFORE DELETE OR TRUNCATE ON ferry_audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION ferry_audit_refuse();
ALTER TABLE ferry_audit_head ENABLE ALWAYS TRIGGER ferry_audit_head_keep;

CREATE FUNCTION ferry_audit_head_for_append(OUT seq bigint, OUT hash text)
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT h.seq, h.hash FROM ferry_audit_head h WHERE h.singleton FOR UPDATE;
$$;

CREATE FUNCTION ferry_audit_extend_head() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    head_seq  bigint;
    head_hash text;
BEGIN
    SELECT h.seq, h.hash INTO head_seq, head_hash
        FROM ferry_audit_head h WHERE h.singleton FOR UPDATE;
    IF NEW.seq IS DISTINCT FROM head_seq + 1 OR NEW.prev_hash IS DISTINCT FROM head_hash THEN
        RAISE EXCEPTION 'audit entry % does not extend the chain head %', NEW.seq, head_seq
            USING ERRCODE = 'serialization_failure';
    END IF;
    UPDATE ferry_audit_head SET seq = NEW.seq, hash = NEW.hash WHERE singleton;
    RETURN NEW;
END;
$$;

CREATE TRIGGER ferry_audit_log_extend_head
    BEFORE INSERT ON ferry_audit_log
    FOR EACH ROW EXECUTE FUNCTION ferry_audit_extend_head();
ALTER TABLE ferry_audit_log ENABLE ALWAYS TRIGGER ferry_audit_log_extend_head;

-- A SECURITY DEFINER function must not find its tables through a search
-- path the caller controls: pin it to this schema (pg_catalog is searched
-- first anyway, pg_temp last).
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION ferry_audit_head_for_append() SET search_path = %I, pg_temp',
                   current_schema());
    EXECUTE format('ALTER FUNCTION ferry_audit_extend_head() SET search_path = %I, pg_temp',
                   current_schema());
END;
$$;

-- Privileges (layer 1).
REVOKE ALL ON ferry_audit_head FROM PUBLIC;
REVOKE UPDATE, DELETE, TRUNCATE ON ferry_audit_log FROM PUBLIC;
DO $$
DECLARE
    grantee_role text;
BEGIN
    FOR grantee_role IN
        SELECT DISTINCT a.grantee::regrole::text
        FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.oid = 'ferry_audit_log'::regclass
          AND a.grantee <> 0
          AND a.privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE')
    LOOP
        EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON ferry_audit_log FROM %s', grantee_role);
    END LOOP;
END;
$$;
REVOKE UPDATE, DELETE, TRUNCATE ON ferry_audit_log FROM CURRENT_USER;
REVOKE EXECUTE ON FUNCTION ferry_audit_head_for_append() FROM PUBLIC;
