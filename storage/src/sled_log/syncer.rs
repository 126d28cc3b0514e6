//! The syncer's half of durability: after sled's `flush` (which on Linux
//! ends in `sync_file_range`, neither flushing the drive's cache nor
//! committing the file's size), `fdatasync` sled's `db` file through a handle
//! of our own (durability is per inode, so a second descriptor is as good as
//! sled's), `fsync` the blob files sled wrote since the last sync (sled
//! writes them without any sync) and `fsync` a directory whose entries
//! changed.

use super::io_err;
use ferry_engine::LogError;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Makes what sled flushed really durable (see the module docs).
pub(super) struct Syncer {
    pub(super) dir: PathBuf,
    db_file: File,
    dir_handle: File,
    blobs_handle: File,
    /// Entries of the directory and of `blobs/` as of the last sync.
    dir_entries: BTreeSet<OsString>,
    blob_entries: BTreeSet<OsString>,
}

fn list_dir(dir: &Path) -> io::Result<BTreeSet<OsString>> {
    std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect()
}

/// fsync a file, tolerating one that sled removed meanwhile (a blob it
/// garbage-collected, an old snapshot).
fn sync_path(path: &Path) -> io::Result<()> {
    match File::open(path) {
        Ok(f) => {
            if f.metadata()?.is_file() {
                f.sync_all()?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl Syncer {
    pub(super) fn open(dir: &Path) -> Result<Syncer, LogError> {
        let ctx = |what: &str| format!("{what} in {}", dir.display());
        let open = |p: PathBuf| File::open(&p).map_err(|e| io_err(&ctx("opening"), e));
        let mut syncer = Syncer {
            dir: dir.to_path_buf(),
            db_file: open(dir.join("db"))?,
            dir_handle: open(dir.to_path_buf())?,
            blobs_handle: open(dir.join("blobs"))?,
            dir_entries: BTreeSet::new(),
            blob_entries: BTreeSet::new(),
        };
        // Whatever sled created or recovered before we watched is synced
        // once, including the directory's own entry in its parent.
        syncer.sync()?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(parent)
                .and_then(|f| f.sync_all())
                .map_err(|e| io_err(&ctx("syncing the parent directory"), e))?;
        }
        Ok(syncer)
    }

    /// fdatasync the log file; fsync new files and changed directories.
    pub(super) fn sync(&mut self) -> Result<(), LogError> {
        let ctx = |what: &str| format!("{what} in {}", self.dir.display());
        self.db_file
            .sync_data()
            .map_err(|e| io_err(&ctx("fdatasync of db"), e))?;
        let blobs_dir = self.dir.join("blobs");
        let blobs = list_dir(&blobs_dir).map_err(|e| io_err(&ctx("listing blobs"), e))?;
        if blobs != self.blob_entries {
            for name in blobs.difference(&self.blob_entries) {
                sync_path(&blobs_dir.join(name)).map_err(|e| io_err(&ctx("fsync of a blob"), e))?;
            }
            self.blobs_handle
                .sync_all()
                .map_err(|e| io_err(&ctx("fsync of blobs/"), e))?;
            self.blob_entries = blobs;
        }
        let entries = list_dir(&self.dir).map_err(|e| io_err(&ctx("listing"), e))?;
        if entries != self.dir_entries {
            for name in entries.difference(&self.dir_entries) {
                sync_path(&self.dir.join(name)).map_err(|e| io_err(&ctx("fsync of a file"), e))?;
            }
            self.dir_handle
                .sync_all()
                .map_err(|e| io_err(&ctx("fsync of the directory"), e))?;
            self.dir_entries = entries;
        }
        Ok(())
    }
}
