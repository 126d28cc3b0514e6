//! The export bundle: a standard ZIP archive (`export_{tenant}_{timestamp}.zip`)
//! holding the tenant's data, a signed manifest of every entry's blake3, and
//! the signature.
//!
//! One concept per file: [`manifest`] is the table of contents and its
//! format version, [`writer`] streams entries into the archive while hashing
//! them, [`zip`] frames them, [`sign`] signs and checks `manifest.json`, and
//! [`verify`] checks a whole bundle offline. The bundle is self-describing
//! so it can be verified and re-imported anywhere with only the public key.

pub mod manifest;
pub mod sign;
pub mod verify;
pub mod writer;
pub mod zip;

pub use manifest::{
    AssetsSection, DatabaseSection, Manifest, ManifestDateRange, ManifestEntry, Producer,
    ASSETS_PREFIX, FORMAT_VERSION, MANIFEST_PATH, SIGNATURE_PATH,
};
pub use sign::{encode_public_key, key_id, parse_public_key, BundleSigner, SignatureFile};
pub use verify::{verify_file, VerifyError, VerifyReport};
pub use writer::{BundleWriter, CopiedData, FinishedBundle, PackMethod, Packed, WriteError};
