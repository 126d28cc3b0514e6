//! Identifiers the engine hands out or accepts: workflow ids and tenant ids.
//!
//! Tenant ids are validated here, once, because they end up in file names,
//! object keys and SQL identifiers further down; nothing that fails
//! `^[a-z0-9][a-z0-9_-]{0,62}$` ever becomes a `TenantId`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A workflow instance id (a UUIDv7, so ids sort by creation time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkflowId(pub uuid::Uuid);

impl WorkflowId {
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
    pub fn from_bytes(b: [u8; 16]) -> Self {
        WorkflowId(uuid::Uuid::from_bytes(b))
    }
}

impl fmt::Display for WorkflowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for WorkflowId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(WorkflowId)
    }
}

/// A validated tenant id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

/// Why a string is not a tenant id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant id must match ^[a-z0-9][a-z0-9_-]{{0,62}}$")]
pub struct InvalidTenantId;

/// Longest tenant id accepted: it must fit a PostgreSQL identifier with a prefix.
pub const TENANT_ID_LEN_MAX: usize = 63;

impl TenantId {
    pub fn parse(s: &str) -> Result<Self, InvalidTenantId> {
        let bytes = s.as_bytes();
        let first_ok = bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest_ok = bytes
            .iter()
            .skip(1)
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-');
        if first_ok && rest_ok && bytes.len() <= TENANT_ID_LEN_MAX {
            Ok(TenantId(s.to_owned()))
        } else {
            Err(InvalidTenantId)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TenantId::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_follow_the_pattern() {
        for ok in ["a", "acme", "acme-2", "t_1", "0abc", &"a".repeat(63)] {
            assert!(TenantId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "A",
            "acme.",
            "ac me",
            "../x",
            "a/b",
            "é",
            &"a".repeat(64),
            "acme\0",
            "acme;drop",
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
