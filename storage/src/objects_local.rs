//! The local-filesystem object store of the embedded mode, rooted at
//! `<data>/objects/` with one folder per area (`assets/`, `exports/`).
//!
//! A key `<tenant>/a/b` is the file `<root>/<area>/<tenant>/a/b`. Keys are
//! validated by `ObjectKey` (no `..`, no absolute paths, no empty segments),
//! and every resolved path is checked again to lie inside its area without
//! passing through a symbolic link, so a key can never reach outside the
//! store. Listing walks only `<area>/<tenant>/`, so `acme` can never see
//! `acme2/...`. Writes go to a temporary file under `<root>/tmp/`, are
//! fsynced, then renamed into place (and the folder fsynced): readers see
//! the old object or the whole new one; a `copy` is a `put_file` of the
//! source's file, so it is atomic the same way. Downloads are served by
//! ferry itself
//! (`DownloadTarget::LocalFile`), since there is no server to redirect to.

use async_trait::async_trait;
use ferry_engine::TenantId;
use ferry_workflows::ports::objects::{
    check_same_tenant, object_not_found, Area, DownloadTarget, ObjectKey, ObjectMeta, ObjectPage,
    ObjectReader, ObjectStore, LIST_LIMIT_MAX,
};
use ferry_workflows::ports::PortError;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Bytes per read while copying a file into the store.
const COPY_CHUNK_BYTES: usize = 256 * 1024;

/// The local-filesystem `ObjectStore`.
#[derive(Clone, Debug)]
pub struct LocalObjects {
    root: PathBuf,
}

fn io_err(code: &str, e: io::Error) -> PortError {
    PortError::retryable(code, e.to_string())
}

fn modified(meta: &std::fs::Metadata) -> Option<ferry_engine::Timestamp> {
    meta.modified()
        .ok()
        .map(chrono::DateTime::<chrono::Utc>::from)
}

impl LocalObjects {
    /// A store rooted at `root` (usually `<data>/objects`); creates the area
    /// and temporary folders.
    pub fn new(root: impl Into<PathBuf>) -> io::Result<LocalObjects> {
        let root = root.into();
        for area in Area::ALL {
            std::fs::create_dir_all(root.join(area.as_str()))?;
        }
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(LocalObjects { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of an area.
    pub fn area_dir(&self, area: Area) -> PathBuf {
        self.root.join(area.as_str())
    }

    /// The file a key maps to (it may not exist).
    pub fn path_of(&self, area: Area, key: &ObjectKey) -> PathBuf {
        let mut p = self.area_dir(area);
        for seg in key.segments() {
            p.push(seg);
        }
        p
    }

    /// Refuse a path whose folders (below the area) include a symbolic link:
    /// following one could leave the store.
    async fn check_no_links(&self, area: Area, key: &ObjectKey) -> Result<(), PortError> {
        let mut p = self.area_dir(area);
        for seg in key.segments() {
            p.push(seg);
            match tokio::fs::symlink_metadata(&p).await {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(PortError::permanent(
                        "invalid_object_key",
                        "the key passes through a link",
                    ))
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_err("object_io", e)),
            }
        }
        Ok(())
    }

    async fn meta_of(
        &self,
        area: Area,
        key: &ObjectKey,
    ) -> Result<Option<(PathBuf, std::fs::Metadata)>, PortError> {
        self.check_no_links(area, key).await?;
        let path = self.path_of(area, key);
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some((path, m))),
            Ok(_) => Ok(None),
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::NotADirectory =>
            {
                Ok(None)
            }
            Err(e) => Err(io_err("object_io", e)),
        }
    }
}

async fn sync_dir(dir: &Path) -> io::Result<()> {
    tokio::fs::File::open(dir).await?.sync_all().await
}

/// Every file under `dir`, as key suffixes relative to `dir`, sorted.
/// Symbolic links and non-UTF-8 names are skipped: they cannot be keys.
fn walk_sorted(dir: &Path) -> io::Result<Vec<(String, std::fs::Metadata)>> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, prefix)) = stack.pop() {
        let entries = match std::fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let meta = entry.metadata()?;
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let ft = entry.file_type()?;
            if ft.is_symlink() {
                continue;
            } else if ft.is_dir() {
                stack.push((entry.path(), rel));
            } else if ft.is_file() {
                out.push((rel, meta));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[async_trait]
impl ObjectStore for LocalObjects {
    fn backend(&self) -> &'static str {
        "local"
    }

    async fn put_file(
        &self,
        area: Area,
        key: &ObjectKey,
        path: &Path,
    ) -> Result<ObjectMeta, PortError> {
        self.check_no_links(area, key).await?;
        let dest = self.path_of(area, key);
        let parent = dest
            .parent()
            .ok_or_else(|| PortError::permanent("invalid_object_key", "key has no parent"))?
            .to_path_buf();
        tokio::fs::create_dir_all(&parent).await.map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists || e.kind() == io::ErrorKind::NotADirectory
            {
                PortError::permanent(
                    "object_path_conflict",
                    format!("a parent of {key} is a file"),
                )
            } else {
                io_err("object_io", e)
            }
        })?;
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
        let result = async {
            let mut src = tokio::fs::File::open(path).await.map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    PortError::permanent(
                        "source_missing",
                        format!("{} does not exist", path.display()),
                    )
                } else {
                    io_err("object_io", e)
                }
            })?;
            let mut out = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| io_err("object_io", e))?;
            let mut buf = vec![0u8; COPY_CHUNK_BYTES];
            let mut size = 0u64;
            loop {
                let n = tokio::io::AsyncReadExt::read(&mut src, &mut buf)
                    .await
                    .map_err(|e| io_err("object_io", e))?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n])
                    .await
                    .map_err(|e| io_err("object_io", e))?;
                size += n as u64;
            }
            out.flush().await.map_err(|e| io_err("object_io", e))?;
            out.sync_all().await.map_err(|e| io_err("object_io", e))?;
            drop(out);
            tokio::fs::rename(&tmp, &dest)
                .await
                .map_err(|e| io_err("object_io", e))?;
            sync_dir(&parent)
                .await
                .map_err(|e| io_err("object_io", e))?;
            Ok::<u64, PortError>(size)
        }
        .await;
        let size = match result {
            Ok(size) => size,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        let modified = tokio::fs::metadata(&dest)
            .await
            .ok()
            .as_ref()
            .and_then(modified);
        Ok(ObjectMeta {
            key: key.clone(),
            size,
            modified,
        })
    }

    async fn open(&self, area: Area, key: &ObjectKey) -> Result<Option<ObjectReader>, PortError> {
        let Some((path, _)) = self.meta_of(area, key).await? else {
            return Ok(None);
        };
        match tokio::fs::File::open(&path).await {
            Ok(f) => Ok(Some(Box::pin(tokio::io::BufReader::with_capacity(
                COPY_CHUNK_BYTES,
                f,
            )))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("object_io", e)),
        }
    }

    async fn head(&self, area: Area, key: &ObjectKey) -> Result<Option<ObjectMeta>, PortError> {
        Ok(self.meta_of(area, key).await?.map(|(_, m)| ObjectMeta {
            key: key.clone(),
            size: m.len(),
            modified: modified(&m),
        }))
    }

    async fn delete(&self, area: Area, key: &ObjectKey) -> Result<bool, PortError> {
        let Some((path, _)) = self.meta_of(area, key).await? else {
            return Ok(false);
        };
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err("object_io", e)),
        }
        if let Some(parent) = path.parent() {
            sync_dir(parent).await.map_err(|e| io_err("object_io", e))?;
            // Tidy empty folders up to the tenant folder; a concurrent
            // writer may refill one, so failures here are not errors.
            let stop = self.area_dir(area).join(key.tenant());
            let mut dir = parent.to_path_buf();
            while dir.starts_with(&stop) && dir != stop {
                if tokio::fs::remove_dir(&dir).await.is_err() {
                    break;
                }
                match dir.parent() {
                    Some(p) => dir = p.to_path_buf(),
                    None => break,
                }
            }
        }
        Ok(true)
    }

    async fn copy(
        &self,
        from_area: Area,
        from: &ObjectKey,
        to_area: Area,
        to: &ObjectKey,
    ) -> Result<Option<ObjectMeta>, PortError> {
        check_same_tenant(from, to)?;
        let Some((source, _)) = self.meta_of(from_area, from).await? else {
            return Ok(None);
        };
        match self.put_file(to_area, to, &source).await {
            Ok(meta) => Ok(Some(meta)),
            // Deleted between the look and the copy.
            Err(e) if e.code == "source_missing" => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list(
        &self,
        area: Area,
        tenant: &TenantId,
        start_after: Option<&ObjectKey>,
        limit: usize,
    ) -> Result<ObjectPage, PortError> {
        let limit = limit.clamp(1, LIST_LIMIT_MAX);
        let tenant_dir = self.area_dir(area).join(tenant.as_str());
        if tokio::fs::symlink_metadata(&tenant_dir)
            .await
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(PortError::permanent(
                "invalid_object_key",
                "the tenant folder is a link",
            ));
        }
        let files = tokio::task::spawn_blocking(move || walk_sorted(&tenant_dir))
            .await
            .map_err(|e| PortError::retryable("object_io", e.to_string()))?
            .map_err(|e| io_err("object_io", e))?;
        let prefix = format!("{}/", tenant.as_str());
        let mut objects = Vec::new();
        let mut more = false;
        for (rel, meta) in files {
            let full = format!("{prefix}{rel}");
            if start_after.is_some_and(|after| full.as_str() <= after.as_str()) {
                continue;
            }
            // Files whose names are not valid keys cannot have been stored
            // through this port; they are not objects.
            let Ok(key) = ObjectKey::parse(&full) else {
                continue;
            };
            if objects.len() == limit {
                more = true;
                break;
            }
            objects.push(ObjectMeta {
                key,
                size: meta.len(),
                modified: modified(&meta),
            });
        }
        Ok(ObjectPage::new(objects, more))
    }

    async fn download_target(
        &self,
        area: Area,
        key: &ObjectKey,
        _ttl: Duration,
    ) -> Result<DownloadTarget, PortError> {
        match self.meta_of(area, key).await? {
            Some((path, _)) => Ok(DownloadTarget::LocalFile(path)),
            None => Err(object_not_found(key)),
        }
    }
}
