//! Port: the object store holding tenants' files and export bundles.
//!
//! Three logical areas exist: [`Area::Assets`], the tenants' own files that an
//! export reads and a rehydration replaces, [`Area::Exports`], the private
//! area where finished bundles live until their expiry timer deletes them,
//! and [`Area::Backups`], the private area of rehydrations (backups, and the
//! assets they stage before switching them into place). Every key
//! starts with the tenant id as its first path segment (`<tenant>/...`), and
//! listing is always by tenant, so a tenant's listing can never include
//! another tenant's objects (`acme` never sees `acme2/...`). Keys are
//! validated once, in [`ObjectKey`], so every backend refuses the same
//! traversal tricks.
//!
//! Contract every implementation keeps:
//! - `put_file` is atomic: readers see the old object, or the whole new one,
//!   never a partial one; it is durable when it returns, and repeating it
//!   with the same file is harmless.
//! - `delete` is idempotent: deleting a missing object is `Ok(false)`.
//! - `copy` is atomic like `put_file`, server-side where the backend can
//!   (no bytes through ferry), never crosses tenants, and repeating it is
//!   harmless.
//! - `list` returns keys in ascending byte order, only under `<tenant>/`.
//! - Reads stream: nothing holds a whole object in memory.

use super::PortError;
use async_trait::async_trait;
use ferry_engine::{TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;
use tokio::io::AsyncRead;

/// Longest key accepted, in bytes (S3's own limit is 1024).
pub const OBJECT_KEY_LEN_MAX: usize = 1024;

/// Most objects one `list` call returns.
pub const LIST_LIMIT_MAX: usize = 1000;

/// A logical bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    /// Tenants' own files; read by exports, replaced by rehydrations.
    Assets,
    /// Private export bundles.
    Exports,
    /// Private backups taken before a rehydration deletes anything, and
    /// the assets a rehydration stages before its switch.
    Backups,
}

impl Area {
    pub const ALL: [Area; 3] = [Area::Assets, Area::Exports, Area::Backups];

    pub fn as_str(self) -> &'static str {
        match self {
            Area::Assets => "assets",
            Area::Exports => "exports",
            Area::Backups => "backups",
        }
    }
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not an object key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid object key: {reason}")]
pub struct InvalidObjectKey {
    pub reason: &'static str,
}

impl From<InvalidObjectKey> for PortError {
    fn from(e: InvalidObjectKey) -> Self {
        PortError::permanent("invalid_object_key", e.to_string())
    }
}

/// A validated object key: `<tenant>/<segment>/...`, relative, with no empty,
/// `.` or `..` segments, no backslashes and no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Validate a full key; its first segment must be a valid tenant id.
    pub fn parse(s: &str) -> Result<ObjectKey, InvalidObjectKey> {
        if s.is_empty() {
            return Err(InvalidObjectKey { reason: "empty" });
        }
        if s.len() > OBJECT_KEY_LEN_MAX {
            return Err(InvalidObjectKey { reason: "too long" });
        }
        if s.starts_with('/') {
            return Err(InvalidObjectKey { reason: "absolute" });
        }
        if s.contains('\\') {
            return Err(InvalidObjectKey {
                reason: "backslash",
            });
        }
        if s.chars().any(|c| c.is_control()) {
            return Err(InvalidObjectKey {
                reason: "control character",
            });
        }
        let mut segments = s.split('/');
        let first = segments.next().unwrap_or_default();
        if TenantId::parse(first).is_err() {
            return Err(InvalidObjectKey {
                reason: "first segment is not a tenant id",
            });
        }
        let mut rest = 0;
        for seg in segments {
            match seg {
                "" => {
                    return Err(InvalidObjectKey {
                        reason: "empty segment",
                    })
                }
                "." | ".." => {
                    return Err(InvalidObjectKey {
                        reason: "dot segment",
                    })
                }
                _ => rest += 1,
            }
        }
        if rest == 0 {
            return Err(InvalidObjectKey {
                reason: "no name below the tenant prefix",
            });
        }
        Ok(ObjectKey(s.to_owned()))
    }

    /// `<tenant>/<rest>`, validated.
    pub fn for_tenant(tenant: &TenantId, rest: &str) -> Result<ObjectKey, InvalidObjectKey> {
        ObjectKey::parse(&format!("{}/{}", tenant.as_str(), rest))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tenant segment.
    pub fn tenant(&self) -> &str {
        self.0.split('/').next().unwrap_or_default()
    }

    /// Whether the key lies under `<tenant>/` (segment-wise, so `acme2/x` is
    /// not under `acme`).
    pub fn is_under(&self, tenant: &TenantId) -> bool {
        self.tenant() == tenant.as_str()
    }

    /// The part after `<tenant>/`.
    pub fn relative(&self) -> &str {
        match self.0.split_once('/') {
            Some((_, rest)) => rest,
            None => "",
        }
    }

    /// The key's segments, for backends that map keys to paths.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

/// Refuse a copy between two tenants' prefixes (see [`ObjectStore::copy`]);
/// every backend calls it first.
pub fn check_same_tenant(from: &ObjectKey, to: &ObjectKey) -> Result<(), PortError> {
    if from.tenant() == to.tenant() {
        Ok(())
    } else {
        Err(PortError::permanent(
            "invalid_object_key",
            format!("a copy stays within one tenant: {from} -> {to}"),
        ))
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ObjectKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ObjectKey::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// What a store knows about one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub key: ObjectKey,
    pub size: u64,
    #[serde(default)]
    pub modified: Option<Timestamp>,
}

/// One page of a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectPage {
    pub objects: Vec<ObjectMeta>,
    /// Pass as `start_after` to get the next page; `None` at the end.
    pub next: Option<ObjectKey>,
}

impl ObjectPage {
    /// A page of `objects` in key order; `more` when the listing stopped at
    /// its limit, so the next page starts after the last key here.
    pub fn new(objects: Vec<ObjectMeta>, more: bool) -> Self {
        let next = if more {
            objects.last().map(|o| o.key.clone())
        } else {
            None
        };
        ObjectPage { objects, next }
    }
}

/// The permanent `object_not_found` of an operation that needs `key` to exist.
pub fn object_not_found(key: &ObjectKey) -> PortError {
    PortError::permanent("object_not_found", format!("{key} does not exist"))
}

/// How the API hands a stored object to a downloader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownloadTarget {
    /// ferry streams this local file itself (embedded mode).
    LocalFile(PathBuf),
    /// Redirect the client to this short-lived URL (e.g. S3 presigned).
    Redirect(String),
}

/// A streaming reader of one object.
pub type ObjectReader = Pin<Box<dyn AsyncRead + Send>>;

#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// e.g. `local`, `s3`.
    fn backend(&self) -> &'static str;

    /// Store the local file at `path` as `key`, streaming; atomic and durable.
    async fn put_file(
        &self,
        area: Area,
        key: &ObjectKey,
        path: &Path,
    ) -> Result<ObjectMeta, PortError>;

    /// Open an object for streaming; `Ok(None)` when it does not exist.
    async fn open(&self, area: Area, key: &ObjectKey) -> Result<Option<ObjectReader>, PortError>;

    /// Size and time of an object; `Ok(None)` when it does not exist.
    async fn head(&self, area: Area, key: &ObjectKey) -> Result<Option<ObjectMeta>, PortError>;

    /// Delete an object; `Ok(true)` if it existed. Idempotent.
    async fn delete(&self, area: Area, key: &ObjectKey) -> Result<bool, PortError>;

    /// Copy `from` (in `from_area`) to `to` (in `to_area`), replacing `to`
    /// atomically like [`put_file`](ObjectStore::put_file), server-side
    /// where the backend can. Both keys must lie under the same tenant (a
    /// permanent `invalid_object_key` otherwise: a copy never moves a file
    /// between tenants). `Ok(None)` when `from` does not exist, and then
    /// `to` is left as it was.
    async fn copy(
        &self,
        from_area: Area,
        from: &ObjectKey,
        to_area: Area,
        to: &ObjectKey,
    ) -> Result<Option<ObjectMeta>, PortError>;

    /// Objects under `<tenant>/` in ascending key order, after `start_after`
    /// (exclusive), at most `limit` (capped at [`LIST_LIMIT_MAX`]).
    async fn list(
        &self,
        area: Area,
        tenant: &TenantId,
        start_after: Option<&ObjectKey>,
        limit: usize,
    ) -> Result<ObjectPage, PortError>;

    /// How to serve `key` to a downloader; a redirect URL lives at most `ttl`.
    async fn download_target(
        &self,
        area: Area,
        key: &ObjectKey,
        ttl: Duration,
    ) -> Result<DownloadTarget, PortError>;
}

/// The conformance suite every `ObjectStore` must pass (the same checks for
/// the local store and S3), shipped in the library so `ferry-storage` can
/// run it against each backend. Each check panics with a message on failure.
pub mod conformance {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn key(s: &str) -> ObjectKey {
        ObjectKey::parse(s).expect("test keys are valid")
    }

    async fn read_all(store: &dyn ObjectStore, area: Area, k: &ObjectKey) -> Option<Vec<u8>> {
        let mut r = store.open(area, k).await.expect("open")?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.expect("read");
        Some(out)
    }

    async fn keys(store: &dyn ObjectStore, area: Area, tenant: &str) -> Vec<String> {
        let tenant = TenantId::parse(tenant).expect("test tenant");
        let mut out = Vec::new();
        let mut after: Option<ObjectKey> = None;
        loop {
            let page = store
                .list(area, &tenant, after.as_ref(), 2)
                .await
                .expect("list");
            assert!(page.objects.len() <= 2, "list returned more than the limit");
            out.extend(page.objects.iter().map(|o| o.key.to_string()));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        out
    }

    /// Run every check. `scratch` is an empty folder for source files.
    pub async fn run_all(store: &dyn ObjectStore, scratch: &Path) {
        put_read_head_delete(store, scratch).await;
        tenant_prefixes_are_isolated(store, scratch).await;
        areas_are_separate(store, scratch).await;
        copies_within_a_tenant(store, scratch).await;
    }

    async fn write_src(scratch: &Path, name: &str, data: &[u8]) -> PathBuf {
        let p = scratch.join(name);
        tokio::fs::write(&p, data).await.expect("write source");
        p
    }

    pub async fn put_read_head_delete(store: &dyn ObjectStore, scratch: &Path) {
        let k = key("conf-a/dir/obj.bin");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let src = write_src(scratch, "a.bin", &data).await;
        let meta = store.put_file(Area::Exports, &k, &src).await.expect("put");
        assert_eq!(meta.size, data.len() as u64);
        assert_eq!(
            read_all(store, Area::Exports, &k).await.as_deref(),
            Some(&data[..])
        );
        assert_eq!(
            store
                .head(Area::Exports, &k)
                .await
                .expect("head")
                .map(|m| m.size),
            Some(data.len() as u64)
        );
        // Putting again replaces the object whole.
        let src2 = write_src(scratch, "a2.bin", b"replaced").await;
        store
            .put_file(Area::Exports, &k, &src2)
            .await
            .expect("put again");
        assert_eq!(
            read_all(store, Area::Exports, &k).await.as_deref(),
            Some(&b"replaced"[..])
        );
        assert!(store
            .download_target(Area::Exports, &k, Duration::from_secs(60))
            .await
            .is_ok());
        assert!(store.delete(Area::Exports, &k).await.expect("delete"));
        assert!(!store
            .delete(Area::Exports, &k)
            .await
            .expect("delete is idempotent"));
        assert!(store.head(Area::Exports, &k).await.expect("head").is_none());
        assert!(read_all(store, Area::Exports, &k).await.is_none());
    }

    pub async fn tenant_prefixes_are_isolated(store: &dyn ObjectStore, scratch: &Path) {
        let src = write_src(scratch, "p.bin", b"x").await;
        for k in [
            "acme/a.png",
            "acme/img/b.png",
            "acme/img/c.png",
            "acme2/secret.png",
            "acme-x/other.png",
            "acm/z.png",
        ] {
            store
                .put_file(Area::Assets, &key(k), &src)
                .await
                .expect("put");
        }
        assert_eq!(
            keys(store, Area::Assets, "acme").await,
            vec!["acme/a.png", "acme/img/b.png", "acme/img/c.png"]
        );
        assert_eq!(
            keys(store, Area::Assets, "acme2").await,
            vec!["acme2/secret.png"]
        );
        assert_eq!(keys(store, Area::Assets, "acm").await, vec!["acm/z.png"]);
        assert!(keys(store, Area::Assets, "nobody").await.is_empty());
    }

    pub async fn areas_are_separate(store: &dyn ObjectStore, scratch: &Path) {
        let src = write_src(scratch, "s.bin", b"y").await;
        let k = key("conf-b/only-in-assets");
        store.put_file(Area::Assets, &k, &src).await.expect("put");
        assert!(store.head(Area::Exports, &k).await.expect("head").is_none());
        assert!(keys(store, Area::Exports, "conf-b").await.is_empty());
        assert!(store.delete(Area::Assets, &k).await.expect("delete"));
    }

    /// `copy`: across areas and within one, replacing the target whole,
    /// keeping the source; a missing source is `None` and changes nothing;
    /// another tenant's prefix is refused.
    pub async fn copies_within_a_tenant(store: &dyn ObjectStore, scratch: &Path) {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
        let src = write_src(scratch, "c.bin", &data).await;
        let from = key("conf-c/staged/c.bin");
        let to = key("conf-c/dir/c.bin");
        store
            .put_file(Area::Exports, &from, &src)
            .await
            .expect("put");
        let old = write_src(scratch, "c-old.bin", b"old").await;
        store.put_file(Area::Assets, &to, &old).await.expect("put");
        let meta = store
            .copy(Area::Exports, &from, Area::Assets, &to)
            .await
            .expect("copy")
            .expect("the source exists");
        assert_eq!(
            (meta.key.clone(), meta.size),
            (to.clone(), data.len() as u64)
        );
        assert_eq!(
            read_all(store, Area::Assets, &to).await.as_deref(),
            Some(&data[..])
        );
        assert_eq!(
            read_all(store, Area::Exports, &from).await.as_deref(),
            Some(&data[..]),
            "the source stays"
        );
        // Repeating it is harmless; within one area it works too.
        store
            .copy(Area::Exports, &from, Area::Assets, &to)
            .await
            .expect("copy again");
        let twin = key("conf-c/twin.bin");
        store
            .copy(Area::Assets, &to, Area::Assets, &twin)
            .await
            .expect("copy within an area");
        assert_eq!(
            read_all(store, Area::Assets, &twin).await.as_deref(),
            Some(&data[..])
        );
        // A missing source: nothing, and the target is left as it was.
        let missing = key("conf-c/staged/missing.bin");
        assert!(store
            .copy(Area::Exports, &missing, Area::Assets, &to)
            .await
            .expect("copy of a missing source")
            .is_none());
        assert_eq!(
            read_all(store, Area::Assets, &to).await.as_deref(),
            Some(&data[..])
        );
        // Never into (or out of) another tenant's prefix.
        let foreign = key("conf-c2/c.bin");
        let e = store
            .copy(Area::Exports, &from, Area::Assets, &foreign)
            .await
            .expect_err("a copy to another tenant");
        assert_eq!(e.code, "invalid_object_key");
        assert!(store
            .head(Area::Assets, &foreign)
            .await
            .expect("head")
            .is_none());
        assert!(keys(store, Area::Assets, "conf-c2").await.is_empty());
        for (area, k) in [
            (Area::Exports, &from),
            (Area::Assets, &to),
            (Area::Assets, &twin),
        ] {
            assert!(store.delete(area, k).await.expect("delete"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_refuse_traversal_and_oddities() {
        for ok in ["acme/a", "acme/a/b.png", "acme/.well-known/x", "t_1/a b"] {
            assert!(ObjectKey::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/acme/a",
            "acme",
            "acme/",
            "acme//a",
            "acme/../x",
            "acme/./x",
            "../acme/x",
            "acme/a\\b",
            "acme/a\0",
            "Acme/a",
            "acme/a/..",
        ] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tenant_prefix_is_segment_wise() {
        let acme = TenantId::parse("acme").unwrap();
        let k = ObjectKey::parse("acme2/logo.png").unwrap();
        assert!(!k.is_under(&acme));
        let k = ObjectKey::parse("acme/img/logo.png").unwrap();
        assert!(k.is_under(&acme));
        assert_eq!(k.relative(), "img/logo.png");
    }
}
