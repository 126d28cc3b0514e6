//! Adapters that implement the traits `ferry-engine` and `ferry-workflows`
//! define: the event logs (sled; PostgreSQL), tenant databases (diesel), the object store,
//! mail and the audit log. Nothing here decides *what* to do; it only knows
//! *how* to talk to one backend.

pub mod audit_anchor;
pub mod audit_pg;
mod audit_queue;
pub mod audit_sqlite;
pub mod cluster;
mod csv_record;
mod error_text;
pub mod export_records;
mod hash_sink;
mod lite_read;
mod lite_write;
mod load_verify;
mod log_metrics;
pub mod mail_outbox;
pub mod mail_smtp;
pub mod objects_local;
pub mod objects_s3;
pub mod pg_log;
pub mod sample;
pub mod sled_log;
mod sql;
pub mod tenant_pg;
pub mod tenant_sqlite;
mod transaction;
