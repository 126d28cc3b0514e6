DROP TABLE IF EXISTS ferry_tenants;
