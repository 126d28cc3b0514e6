//! ferry's edge: the actix-web HTTP API, the `ferry` command line, the
//! configuration and the wiring of real implementations into the engine and
//! workflows. This is the only crate that knows HTTP.

pub mod app;
pub mod auth;
pub mod backends;
pub mod cli;
pub mod config;
pub mod console;
pub mod error;
pub mod keys;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod table_cache;
pub mod telemetry;
