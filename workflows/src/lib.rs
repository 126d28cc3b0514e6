//! The workflow definitions of ferry (export; rehydrate later) and the ports
//! (traits) through which their steps reach tenant databases, object stores,
//! mail and the audit log. Implementations live in `ferry-storage`; the
//! binary wires them in.

pub mod bundle;
pub mod export;
pub mod links;
pub mod ports;
