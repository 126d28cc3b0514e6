//! The sample tenant's schema: a small customer-success SaaS.
//!
//! It is written to exercise what an export must get right rather than to
//! be minimal: foreign keys several levels deep, AUTOINCREMENT and plain
//! `INTEGER PRIMARY KEY` tables (both kinds of sequence), text and composite
//! primary keys, a `WITHOUT ROWID` table, JSON held as TEXT, ISO-8601
//! `created_at` text on every table (the analytics date filter), money as
//! decimal TEXT, REAL measurements, BLOB avatars and NULLs. Every table has a
//! `marker` column holding `marker-<tenant>` so isolation tests can scan a
//! bundle for another tenant's marker.
//!
//! Money columns are declared `TEXT`, not `NUMERIC`: SQLite's NUMERIC
//! affinity would turn `'12.50'` into the REAL `12.5` and lose the scale.

pub(crate) const SCHEMA_SQL: &str = r#"
CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    email       TEXT,
    country     TEXT,
    plan        TEXT NOT NULL,
    mrr         TEXT NOT NULL,              -- decimal, 2 places
    settings    TEXT,                       -- JSON object
    created_at  TEXT NOT NULL,
    marker      TEXT NOT NULL
);

CREATE TABLE users (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id     INTEGER NOT NULL REFERENCES accounts(id),
    email          TEXT NOT NULL UNIQUE,
    display_name   TEXT NOT NULL,
    role           TEXT NOT NULL,
    avatar         BLOB,
    last_login_at  TEXT,
    created_at     TEXT NOT NULL,
    marker         TEXT NOT NULL
);

CREATE TABLE products (
    id           INTEGER PRIMARY KEY,
    sku          TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    description  TEXT,
    price        TEXT NOT NULL,             -- decimal, 2 places
    weight_kg    REAL,
    tags         TEXT,                      -- JSON array
    created_at   TEXT NOT NULL,
    marker       TEXT NOT NULL
);

CREATE TABLE orders (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    user_id     INTEGER REFERENCES users(id),
    status      TEXT NOT NULL,
    currency    TEXT NOT NULL,
    total       TEXT NOT NULL,              -- decimal, 2 places
    fx_rate     TEXT NOT NULL,              -- decimal, 6 places
    notes       TEXT,
    metadata    TEXT,                       -- JSON object
    created_at  TEXT NOT NULL,
    marker      TEXT NOT NULL
);
CREATE INDEX orders_created_at ON orders(created_at);

CREATE TABLE order_items (
    order_id       INTEGER NOT NULL REFERENCES orders(id),
    line_no        INTEGER NOT NULL,
    product_id     INTEGER NOT NULL REFERENCES products(id),
    quantity       INTEGER NOT NULL,
    unit_price     TEXT NOT NULL,           -- decimal, 2 places
    discount_rate  REAL,
    created_at     TEXT NOT NULL,
    marker         TEXT NOT NULL,
    PRIMARY KEY (order_id, line_no)
) WITHOUT ROWID;

CREATE TABLE kpis (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    unit           TEXT,
    direction      TEXT NOT NULL,
    owner_user_id  INTEGER REFERENCES users(id),
    config         TEXT NOT NULL,           -- JSON object
    created_at     TEXT NOT NULL,
    marker         TEXT NOT NULL
);

CREATE TABLE kpi_time_series (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kpi_id        TEXT NOT NULL REFERENCES kpis(id),
    recorded_at   TEXT NOT NULL,
    value         REAL,
    sample_count  INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    marker        TEXT NOT NULL
);

CREATE TABLE kpi_reference_ranges (
    id          INTEGER PRIMARY KEY,
    kpi_id      TEXT NOT NULL REFERENCES kpis(id),
    label       TEXT NOT NULL,
    low         REAL,
    high        REAL,
    valid_from  TEXT NOT NULL,
    valid_to    TEXT,
    created_at  TEXT NOT NULL,
    marker      TEXT NOT NULL
);

CREATE TABLE health_trends (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    score       REAL NOT NULL,
    trend       TEXT NOT NULL,
    details     TEXT,                       -- JSON object
    created_at  TEXT NOT NULL,
    marker      TEXT NOT NULL
);

CREATE TABLE playbooks (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT NOT NULL,
    owner_user_id  INTEGER REFERENCES users(id),
    enabled        INTEGER NOT NULL,
    triggers       TEXT NOT NULL,           -- JSON array
    executions     TEXT NOT NULL,           -- JSON array
    created_at     TEXT NOT NULL,
    marker         TEXT NOT NULL
);

CREATE TABLE customer_config (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,              -- JSON
    updated_at  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    marker      TEXT NOT NULL
);

CREATE TABLE feature_toggles (
    name             TEXT PRIMARY KEY,
    enabled          INTEGER NOT NULL,
    rollout_percent  REAL,
    rules            TEXT,                  -- JSON object
    created_at       TEXT NOT NULL,
    marker           TEXT NOT NULL
);
"#;
