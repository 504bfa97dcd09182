//! Metadata backups: a consistent checkpoint of the running store
//! (`dfs admin backup`), and a store made from one (`dfs-master restore`).
//!
//! A checkpoint is taken with the metadata log locked, so no mutation is
//! applied meanwhile: the log's new records are synced, the memtables
//! flushed into the tables and the log started over (the store's own
//! checkpoint), then RocksDB links the tables into a new directory. The
//! backup is the namespace as of the last mutation applied before it;
//! mutations wait for the lock as long as the flush takes.
//!
//! A restored namespace is older than what chunkservers hold, and the
//! restore sees to three consequences. Ids handed out after the backup may
//! be held by chunkservers (replicas of files made later) and clients: the
//! allocators move [`RESTORE_ID_SKIP`] ahead, so no id is handed out
//! twice. Chunks written after the backup are at versions the namespace
//! never recorded: the store is marked restored, and until chunk
//! management first leaves safe mode (every reachable replica reported)
//! it adopts a newer reported version of a known chunk, however far ahead
//! (`chunk_map::versions`), instead of holding the replica as forged.
//! Chunks made after the backup are unknown, hence garbage.

use std::fs::File;
use std::path::{Path, PathBuf};

use dfs_proto::wire::backup::{checksum, BackupFile, Manifest, BACKUP_FORMAT, MANIFEST};
use dfs_proto::ErrorKind;
use rocksdb::WriteBatch;

use super::db::Store;
use super::error::{fail, NsError};
use super::keys::{CF_META, META_COUNTERS, META_RESTORED};
use super::records::FORMAT_VERSION;

/// Where checkpoints for backups are made: inside the data directory, on
/// its file system, so that the tables are linked, not copied. What a
/// crash left there is removed at the next open.
pub const CHECKPOINTS_DIR: &str = "backups.tmp";
/// How far a restore moves the inode and chunk allocators: more ids than a
/// cluster hands out between a backup and its restore (2^36 ≈ 69 billion),
/// and still room for 2^28 restores in 64 bits.
pub const RESTORE_ID_SKIP: u64 = 1 << 36;

/// A checkpoint of the store in a directory of its own, removed when
/// dropped.
pub struct Checkpoint {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Drop for Checkpoint {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "a backup's checkpoint was not removed");
        }
    }
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> NsError {
    move |e| NsError::new(ErrorKind::EIO, format!("{what}: {e}"))
}

/// Present in a data directory from the start of a restore until its
/// store is marked restored: a master does not start on a half-made one.
pub const RESTORING: &str = "RESTORING";

/// Refuses a data directory a restore did not finish, then removes
/// checkpoints a previous run left (it died while sending one): at start,
/// before the store opens.
pub fn clear_leftovers(data_dir: &Path) -> Result<(), NsError> {
    if data_dir.join(RESTORING).exists() {
        return fail(ErrorKind::EIO, unfinished(data_dir));
    }
    let dir = data_dir.join(CHECKPOINTS_DIR);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(format!("removing {}", dir.display()))(e)),
        _ => Ok(()),
    }
}

impl Store {
    /// A consistent checkpoint of the namespace (see the module doc), with
    /// its manifest (blocking: the flush and the checksums read the tables).
    pub fn checkpoint_for_backup(&self) -> Result<Checkpoint, NsError> {
        let parent = self.db.path().join(CHECKPOINTS_DIR);
        std::fs::create_dir_all(&parent).map_err(io(format!("making {}", parent.display())))?;
        let dir = parent.join(uuid::Uuid::new_v4().simple().to_string());
        {
            let mut log = self.log();
            log.sync().map_err(io("writing the metadata log".into()))?;
            self.checkpoint(&mut log)?;
            rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint(&dir)?;
        }
        let taken_at_ms = dfs_proto::auth::unix_ms();
        // Removed from here on if anything below fails.
        let mut checkpoint = Checkpoint {
            dir,
            manifest: Manifest { format: BACKUP_FORMAT, cluster_id: self.cluster_id()?, metadata_format: FORMAT_VERSION, taken_at_ms, files: Vec::new() },
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&checkpoint.dir).map_err(io(format!("listing {}", checkpoint.dir.display())))? {
            let entry = entry.map_err(io(format!("listing {}", checkpoint.dir.display())))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        for name in names {
            let path = checkpoint.dir.join(&name);
            let (bytes, crc32) = checksum(&path).map_err(io(format!("reading {}", path.display())))?;
            checkpoint.manifest.files.push(BackupFile { name, bytes, crc32 });
        }
        checkpoint.manifest.check().map_err(|m| NsError::new(ErrorKind::EIO, m))?;
        Ok(checkpoint)
    }

    /// Whether the namespace was restored from a backup and chunk
    /// management has not yet seen every replica since.
    pub fn restored(&self) -> Result<bool, NsError> {
        Ok(self.read(CF_META, META_RESTORED)?.is_some())
    }

    /// Marks a just restored store (see the module doc), durably.
    fn mark_restored(&self, taken_at_ms: u64) -> Result<(), NsError> {
        let mut counters = self.counters()?;
        counters.skip_ids(RESTORE_ID_SKIP);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META)?, META_COUNTERS, counters.encode());
        batch.put_cf(self.cf(CF_META)?, META_RESTORED, taken_at_ms.to_be_bytes());
        self.write(batch)?;
        self.sync()
    }
}

/// Reads and checks the backup in `from` (manifest, every file's length
/// and CRC32).
pub fn read_backup(from: &Path) -> Result<Manifest, NsError> {
    let path = from.join(MANIFEST);
    let text = std::fs::read(&path).map_err(io(format!("reading {}", path.display())))?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| NsError::new(ErrorKind::EINVAL, format!("{}: {e}", path.display())))?;
    restorable(&manifest)?;
    manifest.verify_dir(from).map_err(|m| NsError::new(ErrorKind::EINVAL, m))?;
    Ok(manifest)
}

/// Whether a manifest names a checkpoint this build can make a store of:
/// its metadata format, and only RocksDB's own files.
fn restorable(manifest: &Manifest) -> Result<(), NsError> {
    if manifest.metadata_format != FORMAT_VERSION {
        return fail(ErrorKind::EINVAL, format!("the checkpoint's metadata format is {}, this build reads {FORMAT_VERSION}", manifest.metadata_format));
    }
    match manifest.files.iter().find(|f| !rocksdb_file(&f.name)) {
        Some(f) => fail(ErrorKind::EINVAL, format!("the checkpoint holds {}, not a file of a RocksDB checkpoint", f.name)),
        None => Ok(()),
    }
}

fn unfinished(dir: &Path) -> String {
    format!("{} holds an unfinished restore ({RESTORING} is there): empty it, keeping the key files, and restore again", dir.display())
}

/// Whether `name` is one of the files a RocksDB checkpoint holds: a
/// restore writes nothing else into a data directory (not a key file, not
/// the lock).
fn rocksdb_file(name: &str) -> bool {
    let numbered = |ext: &str| name.strip_suffix(ext).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let suffixed = |prefix: &str| name.strip_prefix(prefix).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    name == "CURRENT" || name == "IDENTITY" || numbered(".sst") || numbered(".log") || suffixed("MANIFEST-") || suffixed("OPTIONS-")
}

/// Makes the store in `into` (which must hold none) from the backup in
/// `from`: checks the backup, copies its files (synced; CURRENT, which
/// makes them a database, last), opens the store and marks it restored.
/// [`RESTORING`] is there until the end: a master refuses to start on a
/// restore cut short, and so does another restore.
pub fn restore(from: &Path, into: &Path) -> Result<Manifest, NsError> {
    let manifest = read_backup(from)?;
    std::fs::create_dir_all(into).map_err(io(format!("making {}", into.display())))?;
    if into.join(RESTORING).exists() {
        return fail(ErrorKind::EEXIST, unfinished(into));
    }
    if into.join("CURRENT").exists() || into.join(super::metalog::LOG_FILE).exists() {
        return fail(ErrorKind::EEXIST, format!("{} already holds a namespace; restore into a directory that holds none", into.display()));
    }
    copy_checkpoint(from, &manifest, into, |store| {
        if store.cluster_id()? != manifest.cluster_id {
            return fail(ErrorKind::EIO, "the restored namespace names another cluster than its manifest");
        }
        store.mark_restored(manifest.taken_at_ms)
    })?;
    Ok(manifest)
}

/// Replaces the store in `into` (closed: no handle open) with the
/// checkpoint in `from`, whose files were checked against `manifest`
/// already (`unpack_tar`): a Raft snapshot installed on a master that fell
/// behind. The same steps as a restore, without its marks (the snapshot
/// is the group's present, not an old backup).
pub fn install_checkpoint(from: &Path, manifest: &Manifest, into: &Path) -> Result<Store, NsError> {
    restorable(manifest)?;
    copy_checkpoint(from, manifest, into, |_| Ok(()))?;
    Store::open(into)
}

/// Copies a checkpoint's files into `into` over the store there (whose
/// RocksDB files and metadata log go first), then opens it and lets `then`
/// finish it. [`RESTORING`] is there from before the first change until
/// `then` is done, each step synced, CURRENT (which makes the files a
/// database) copied last.
fn copy_checkpoint(from: &Path, manifest: &Manifest, into: &Path, then: impl FnOnce(&Store) -> Result<(), NsError>) -> Result<(), NsError> {
    let sync_dir = || File::open(into).and_then(|d| d.sync_all()).map_err(io(format!("syncing {}", into.display())));
    File::create(into.join(RESTORING)).and_then(|f| f.sync_all()).map_err(io(format!("making {}", into.join(RESTORING).display())))?;
    sync_dir()?;
    remove_store_files(into)?;
    sync_dir()?;
    let mut files: Vec<_> = manifest.files.iter().collect();
    files.sort_by_key(|f| f.name == "CURRENT");
    for f in files {
        let (src, dst) = (from.join(&f.name), into.join(&f.name));
        std::fs::copy(&src, &dst).map_err(io(format!("copying {} to {}", src.display(), dst.display())))?;
        File::open(&dst).and_then(|f| f.sync_all()).map_err(io(format!("syncing {}", dst.display())))?;
    }
    sync_dir()?;
    then(&Store::open(into)?)?;
    std::fs::remove_file(into.join(RESTORING)).map_err(io(format!("removing {}", into.join(RESTORING).display())))?;
    sync_dir()
}

/// Removes a closed store's files from `dir`: CURRENT first (what is left
/// is no database), then RocksDB's other files and the metadata log; key
/// files and anything else stay.
fn remove_store_files(dir: &Path) -> Result<(), NsError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(format!("listing {}", dir.display())))? {
        let name = entry.map_err(io(format!("listing {}", dir.display())))?.file_name().to_string_lossy().into_owned();
        if rocksdb_file(&name) || name == "LOCK" || name == "LOG" || name.starts_with("LOG.old.") || name == super::metalog::LOG_FILE {
            names.push(name);
        }
    }
    names.sort_by_key(|n| n != "CURRENT");
    for name in names {
        std::fs::remove_file(dir.join(&name)).map_err(io(format!("removing {}", dir.join(&name).display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rocksdb_files_are_restored() {
        for ok in ["CURRENT", "IDENTITY", "000012.sst", "000004.log", "MANIFEST-000005", "OPTIONS-000007"] {
            assert!(rocksdb_file(ok), "{ok}");
        }
        for bad in ["cluster.key", "admin.credentials", "lock", "LOCK", ".sst", "x.sst", "MANIFEST-", "dfs-metalog", "BACKUP.json"] {
            assert!(!rocksdb_file(bad), "{bad}");
        }
    }
}
