-- Several ferry nodes on one platform database (FERRY_CLUSTER=on;
-- storage/src/cluster.rs). Created either way; empty on a single node.
--
-- A node is live while its heartbeat keeps `expires_at` in the future (the
-- database's clock decides, never a node's). Each tenant with work is driven
-- by one node: the holder of its lease. A lease is valid while its node is
-- live; taking one over from a dead (or draining) node bumps its epoch, the
-- fencing token that every append driving the tenant's workflows carries
-- and that the append's own transaction checks (ferry_log's FOR SHARE on
-- the lease row), so a node that lost a lease can record nothing more.

CREATE TABLE ferry_cluster_nodes (
    node_id      text COLLATE "C" PRIMARY KEY,
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    -- Handing its leases over before it exits (SIGTERM): takes no new ones.
    draining     boolean NOT NULL DEFAULT false,
    -- `s3` or `local`: a local object store serves one node only.
    object_store text NOT NULL
);

CREATE TABLE ferry_tenant_leases (
    tenant_id   text COLLATE "C" PRIMARY KEY,
    -- NULL once handed back (drain); the epoch stays, so it only grows.
    node_id     text COLLATE "C",
    epoch       bigint NOT NULL CHECK (epoch > 0),
    acquired_at timestamptz NOT NULL
);
CREATE INDEX ferry_tenant_leases_node ON ferry_tenant_leases (node_id);

-- The step journal: which node, under which lease epoch, recorded each
-- event (NULL epoch: a command, which any node may record).
ALTER TABLE ferry_log_events ADD COLUMN node_id text, ADD COLUMN epoch bigint;
