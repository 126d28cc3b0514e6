//! Helpers shared by the storage tests. Each test binary uses some of
//! them, so the rest would warn as unused there.
#![allow(dead_code)]

pub mod pg;
pub mod writer;
