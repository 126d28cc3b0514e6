//! The server's secrets, kept under `<data>/keys/` and created on first use:
//! the ed25519 key that signs bundle manifests (its public half is written
//! beside it so `ferry verify` works offline), the secret of download links,
//! and the token secret unless `FERRY_JWT_SECRET` is set.

use anyhow::Context;
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::RngCore;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Keys {
    pub signing: SigningKey,
    pub link_secret: [u8; 32],
    pub jwt_secret: Vec<u8>,
}

pub const SIGNING_KEY_FILE: &str = "signing.key";
pub const VERIFYING_KEY_FILE: &str = "signing.pub";

/// Read a 32-byte hex secret, or create it atomically (0600) if missing.
fn secret_32(dir: &Path, name: &str) -> anyhow::Result<[u8; 32]> {
    let path = dir.join(name);
    if let Ok(text) = fs::read_to_string(&path) {
        let bytes =
            hex::decode(text.trim()).with_context(|| format!("{} is not hex", path.display()))?;
        return bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} must hold 32 bytes", path.display()));
    }
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    write_private(&path, hex::encode(secret).as_bytes())?;
    // Another process may have won the race: whatever is on disk is the key.
    secret_32(dir, name).or(Ok(secret))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    if path.exists() {
        fs::remove_file(&tmp)?;
    } else {
        fs::rename(&tmp, path)?;
    }
    Ok(())
}

impl Keys {
    pub fn load_or_create(keys_dir: &Path, jwt_secret: Option<&str>) -> anyhow::Result<Keys> {
        fs::create_dir_all(keys_dir).with_context(|| format!("creating {}", keys_dir.display()))?;
        let seed = secret_32(keys_dir, SIGNING_KEY_FILE)?;
        let signing = SigningKey::from_bytes(&seed);
        let pub_path = keys_dir.join(VERIFYING_KEY_FILE);
        if !pub_path.exists() {
            fs::write(
                &pub_path,
                ferry_workflows::bundle::sign::encode_public_key(&signing.verifying_key()),
            )?;
        }
        let link_secret = secret_32(keys_dir, "link.secret")?;
        let jwt_secret = match jwt_secret {
            Some(s) => s.as_bytes().to_vec(),
            None => secret_32(keys_dir, "jwt.secret")?.to_vec(),
        };
        Ok(Keys {
            signing,
            link_secret,
            jwt_secret,
        })
    }
}

/// The public key `ferry verify` checks signatures with.
pub fn load_verifying_key(path: &Path) -> anyhow::Result<VerifyingKey> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading public key {}", path.display()))?;
    ferry_workflows::bundle::sign::parse_public_key(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub fn verifying_key_path(keys_dir: &Path) -> PathBuf {
    keys_dir.join(VERIFYING_KEY_FILE)
}
