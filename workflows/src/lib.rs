//! The workflow definitions of ferry (export, rehydrate; what they share is
//! in `common`) and the ports (traits) through which their steps reach
//! tenant databases, object stores, mail and the audit log. Implementations live in `ferry-storage`; the
//! binary wires them in.

pub mod bundle;
pub mod common;
pub mod data_metrics;
pub mod export;
pub mod failpoints;
pub mod links;
pub mod ports;
pub mod rehydrate;
pub mod step_audit;
