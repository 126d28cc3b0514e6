ALTER TABLE ferry_log_events DROP COLUMN node_id, DROP COLUMN epoch;
DROP TABLE ferry_tenant_leases;
DROP TABLE ferry_cluster_nodes;
