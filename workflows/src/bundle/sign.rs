//! `manifest.sig`: an ed25519 signature over the exact bytes of
//! `manifest.json`.
//!
//! The server holds the signing key; anyone with the public key can check a
//! bundle offline (`ferry verify`). The signature file is JSON,
//! `{"alg":"ed25519","keyId":"<16 hex>","signature":"<base64>"}`, where the
//! key id is a short blake3 print of the public key, so a verifier holding
//! several keys (after a rotation) knows which one to use and can say "wrong
//! key" rather than "tampered".

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

pub const SIGNATURE_ALG: &str = "ed25519";

/// Contents of `manifest.sig`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureFile {
    pub alg: String,
    pub key_id: String,
    /// Base64 (standard alphabet, padded) of the 64-byte signature.
    pub signature: String,
}

impl SignatureFile {
    pub fn to_bytes(&self) -> Vec<u8> {
        // Three strings: serializing cannot fail.
        let mut v = serde_json::to_vec(self).expect("signature file serializes");
        v.push(b'\n');
        v
    }
}

/// Why a signature does not check out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("manifest.sig is not a valid signature file: {0}")]
    Malformed(String),
    #[error("unsupported signature algorithm {0:?}")]
    UnsupportedAlg(String),
    #[error("signed with key {found}, not with the given key {expected}")]
    WrongKey { expected: String, found: String },
    #[error("the signature does not match manifest.json")]
    Mismatch,
}

/// The key id of a public key: the first 16 hex digits of its blake3.
pub fn key_id(key: &VerifyingKey) -> String {
    blake3::hash(key.as_bytes()).to_hex()[..16].to_string()
}

/// Lowercase hex of a public key (64 digits), as printed for operators.
pub fn encode_public_key(key: &VerifyingKey) -> String {
    hex::encode(key.as_bytes())
}

/// Parse a public key from hex (64 digits) or base64 (of 32 bytes).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, SignatureError> {
    let text = text.trim();
    let bytes = hex::decode(text)
        .or_else(|_| BASE64.decode(text))
        .map_err(|_| SignatureError::Malformed("public key is neither hex nor base64".into()))?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| SignatureError::Malformed("public key must be 32 bytes".into()))?;
    VerifyingKey::from_bytes(&arr)
        .map_err(|_| SignatureError::Malformed("not an ed25519 public key".into()))
}

/// Signs manifests with the server's key.
#[derive(Clone)]
pub struct BundleSigner {
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for BundleSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        write!(f, "BundleSigner(keyId={})", self.key_id)
    }
}

impl BundleSigner {
    pub fn new(key: SigningKey) -> Self {
        let key_id = key_id(&key.verifying_key());
        BundleSigner { key, key_id }
    }

    /// From the 32-byte secret seed (as kept in the server's key file).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        BundleSigner::new(SigningKey::from_bytes(&seed))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        BundleSigner::new(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Sign the exact bytes of `manifest.json`. Deterministic (ed25519).
    pub fn sign(&self, manifest_bytes: &[u8]) -> SignatureFile {
        let sig = self.key.sign(manifest_bytes);
        SignatureFile {
            alg: SIGNATURE_ALG.to_owned(),
            key_id: self.key_id.clone(),
            signature: BASE64.encode(sig.to_bytes()),
        }
    }
}

/// Check `manifest.sig` (raw bytes) against `manifest.json` (raw bytes).
pub fn verify_signature(
    key: &VerifyingKey,
    manifest_bytes: &[u8],
    signature_file: &[u8],
) -> Result<SignatureFile, SignatureError> {
    let file: SignatureFile = serde_json::from_slice(signature_file)
        .map_err(|e| SignatureError::Malformed(e.to_string()))?;
    if file.alg != SIGNATURE_ALG {
        return Err(SignatureError::UnsupportedAlg(file.alg));
    }
    let expected = key_id(key);
    if file.key_id != expected {
        return Err(SignatureError::WrongKey {
            expected,
            found: file.key_id,
        });
    }
    let raw = BASE64
        .decode(file.signature.as_bytes())
        .map_err(|_| SignatureError::Malformed("signature is not base64".into()))?;
    let raw: [u8; 64] = raw
        .try_into()
        .map_err(|_| SignatureError::Malformed("signature must be 64 bytes".into()))?;
    let sig = Signature::from_bytes(&raw);
    // `verify_strict` refuses malleable (non-canonical) signatures and weak keys.
    key.verify_strict(manifest_bytes, &sig)
        .map_err(|_| SignatureError::Mismatch)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify_and_refuse_changes() {
        let s = BundleSigner::from_seed([7; 32]);
        let sig = s.sign(b"hello");
        let bytes = sig.to_bytes();
        assert!(verify_signature(&s.verifying_key(), b"hello", &bytes).is_ok());
        assert_eq!(
            verify_signature(&s.verifying_key(), b"hellO", &bytes),
            Err(SignatureError::Mismatch)
        );
        let other = BundleSigner::from_seed([8; 32]);
        assert!(matches!(
            verify_signature(&other.verifying_key(), b"hello", &bytes),
            Err(SignatureError::WrongKey { .. })
        ));
        let pk = encode_public_key(&s.verifying_key());
        assert_eq!(parse_public_key(&pk).unwrap(), s.verifying_key());
    }
}
