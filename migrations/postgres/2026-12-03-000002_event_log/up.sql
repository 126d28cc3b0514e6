-- The workflow event log in the platform database (FERRY_EVENT_LOG=postgres;
-- storage/src/pg_log.rs). sled stays the embedded default; these tables are
-- created either way and stay empty then.
--
-- Three tables, always written in one transaction: the events, one row per
-- workflow carrying its summary and the columns the indexes need, and the
-- workflow's unfired timers. So an index never disagrees with the events.
-- Strings that callers choose (kinds, idempotency keys, timer names) are
-- opaque: stored as their UTF-8 bytes (bytea), so any string fits (NUL
-- included) and they order by bytes, as in sled.

CREATE TABLE ferry_log_workflows (
    id              uuid PRIMARY KEY,
    tenant_id       text COLLATE "C" NOT NULL,
    kind            bytea NOT NULL,
    status          text COLLATE "C" NOT NULL,
    is_open         boolean NOT NULL,
    -- The number of events in the stream: the optimistic-concurrency check.
    version         bigint NOT NULL CHECK (version > 0),
    -- Nanoseconds since the Unix epoch.
    created_ns      bigint NOT NULL,
    idempotency_key bytea,
    -- The whole summary, in the encoding the sled log uses for it.
    summary         bytea NOT NULL
);

-- One workflow per (tenant, idempotency key), enforced by the database
-- for every writer, whichever node it runs on.
CREATE UNIQUE INDEX ferry_log_workflows_idempotency
    ON ferry_log_workflows (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX ferry_log_workflows_tenant ON ferry_log_workflows (tenant_id, id);
CREATE INDEX ferry_log_workflows_status ON ferry_log_workflows (status, id);
CREATE INDEX ferry_log_workflows_open ON ferry_log_workflows (id) WHERE is_open;
CREATE INDEX ferry_log_workflows_submitted
    ON ferry_log_workflows (tenant_id, kind, created_ns);

CREATE TABLE ferry_log_events (
    workflow_id uuid NOT NULL,
    -- 1 for the first event of a stream.
    seq         bigint NOT NULL CHECK (seq > 0),
    -- serde JSON of the event (Event::encode), byte for byte.
    body        bytea NOT NULL,
    PRIMARY KEY (workflow_id, seq)
);

CREATE TABLE ferry_log_timers (
    workflow_id uuid NOT NULL,
    name        bytea NOT NULL,
    due_ns      bigint NOT NULL,
    PRIMARY KEY (workflow_id, name)
);
CREATE INDEX ferry_log_timers_due ON ferry_log_timers (due_ns, workflow_id, name);
