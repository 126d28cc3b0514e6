//! Signed download links, the ones emailed to the requester.
//!
//! A link lives in an email, so it must work without a bearer token; what
//! protects it is a keyed blake3 MAC over `tenant|export_id|exp` under a
//! server-held secret. The link is `/dl/{tenant}/{export_id}?exp=<unix
//! seconds>&sig=<hex>`: changing the tenant, the export id, the expiry or the
//! signature makes it invalid, and a valid one stops working at `exp`. The
//! link's life is separate from the bundle's: the API still checks the
//! export exists (and records the download in the audit log) before serving.

use chrono::DateTime;
use ferry_engine::{TenantId, Timestamp, WorkflowId};

/// Why a link was refused. Codes are stable (`link_expired`, `link_invalid`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the download link has expired")]
    Expired,
    #[error("the download link is not valid")]
    Invalid,
}

impl LinkError {
    pub fn code(&self) -> &'static str {
        match self {
            LinkError::Expired => "link_expired",
            LinkError::Invalid => "link_invalid",
        }
    }
}

/// A link that passed verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedLink {
    pub tenant: TenantId,
    pub export_id: WorkflowId,
    pub expires_at: Timestamp,
}

/// Signs and verifies download links with one 32-byte secret.
#[derive(Clone)]
pub struct LinkSigner {
    secret: [u8; 32],
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.write_str("LinkSigner(..)")
    }
}

impl LinkSigner {
    pub fn new(secret: [u8; 32]) -> Self {
        LinkSigner { secret }
    }

    /// Derive the link secret from a longer-lived master secret (e.g. the JWT
    /// key), so one configured secret does not serve two purposes directly.
    pub fn derive(master: &[u8]) -> Self {
        LinkSigner::new(blake3::derive_key("ferry 2026 download links v1", master))
    }

    fn mac(&self, tenant: &str, export_id: &str, exp: i64) -> blake3::Hash {
        let msg = format!("{tenant}|{export_id}|{exp}");
        blake3::keyed_hash(&self.secret, msg.as_bytes())
    }

    /// The path and query of a link valid until `expires_at` (whole seconds).
    pub fn sign(&self, export_id: &WorkflowId, tenant: &TenantId, expires_at: Timestamp) -> String {
        let exp = expires_at.timestamp();
        let sig = self.mac(tenant.as_str(), &export_id.to_string(), exp);
        format!(
            "/dl/{}/{}?exp={}&sig={}",
            tenant.as_str(),
            export_id,
            exp,
            sig.to_hex()
        )
    }

    /// Check a link's parts exactly as they arrived (path segments and query
    /// values, unparsed). The MAC is checked first, in constant time, so an
    /// altered link is `Invalid` even when its expiry has passed.
    pub fn verify(
        &self,
        path_tenant: &str,
        path_export: &str,
        exp: &str,
        sig: &str,
        now: Timestamp,
    ) -> Result<VerifiedLink, LinkError> {
        let exp_secs: i64 = exp.parse().map_err(|_| LinkError::Invalid)?;
        // Only the canonical decimal form was signed: "+5" or "05" is refused.
        if exp_secs.to_string() != exp {
            return Err(LinkError::Invalid);
        }
        let given = blake3::Hash::from_hex(sig).map_err(|_| LinkError::Invalid)?;
        let expected = self.mac(path_tenant, path_export, exp_secs);
        // `blake3::Hash`'s equality is constant-time.
        if given != expected {
            return Err(LinkError::Invalid);
        }
        let tenant = TenantId::parse(path_tenant).map_err(|_| LinkError::Invalid)?;
        let export_id: WorkflowId = path_export.parse().map_err(|_| LinkError::Invalid)?;
        if export_id.to_string() != path_export {
            return Err(LinkError::Invalid);
        }
        let expires_at = DateTime::from_timestamp(exp_secs, 0).ok_or(LinkError::Invalid)?;
        if now >= expires_at {
            return Err(LinkError::Expired);
        }
        Ok(VerifiedLink {
            tenant,
            export_id,
            expires_at,
        })
    }
}
