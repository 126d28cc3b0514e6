//! Test support shipped with the engine: the in-memory reference `EventLog`
//! and the conformance suite every `EventLog` implementation must pass.
//!
//! It lives in the library (not behind `cfg(test)`) because other crates need
//! it too: `ferry-storage` runs the same suite against its sled log, and the
//! engine's and workflows' tests run whole workflows on [`MemoryLog`]. Keeping
//! the reference implementation next to the trait means the contract, the
//! simplest implementation of it and the checks of it change together.

pub mod conformance;
mod memory;

pub use conformance::LogFactory;
pub use memory::{MemoryFactory, MemoryLog};
