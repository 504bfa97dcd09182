//! Copies made beside a replica (re-replication). A copy is built as a
//! replica of a second store in `<dir>/copies/` (never listed, reported or
//! served), checked piece by piece against the source's CRCs as it is
//! written, synced, read back whole against its CRCs, and only then swapped
//! in for the replica of the chunk here, if any: a copy that fails or is cut
//! short (an unreachable or hostile source, a crash) never touches it.
//!
//! The swap, under the replica's write lock (two renames, each made durable
//! before the next; both directories are on one file system):
//!
//! 1. `copies/chunks/<h>.data` → `chunks/<h>.data`
//! 2. `copies/chunks/<h>.meta` → `chunks/<h>.meta`
//!
//! A crash leaves one of three states, told apart at the next open
//! (`finish_swaps`, before `chunks/` is loaded): both copy files still in
//! `copies/` (the old replica is whole: the copy is dropped), the copy's
//! metadata alone in `copies/` (step 1 done: step 2 is finished), or nothing
//! there (done). The copy's metadata is never alone otherwise: a replica's
//! data file is created before its metadata and removed after it.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use dfs_proto::{ChunkHandle, ChunkVersion};

use super::disk_layout::{data_name, file_role, meta_name, sync_dir, FileRole};
use super::replica::{write, Replica};
use super::{alive, chunk_info, ChunkError, ChunkInfo, ChunkStore};

/// The copies' store, under the store's directory.
pub(super) const COPIES_DIR: &str = "copies";

impl ChunkStore {
    fn copies(&self) -> Result<&ChunkStore, ChunkError> {
        self.copies.as_deref().ok_or_else(|| ChunkError::BadArgument("this store takes no copies".into()))
    }

    /// Starts a copy of `handle` at `version`, beside any replica of it here
    /// (left alone). A copy left by an earlier attempt is dropped first.
    pub fn begin_copy(&self, handle: ChunkHandle, version: ChunkVersion, chunk_size: u64) -> Result<(), ChunkError> {
        let copies = self.copies()?;
        match copies.delete(handle) {
            Ok(()) | Err(ChunkError::UnknownChunk(_)) => {}
            Err(e) => return Err(e),
        }
        copies.create(handle, version, chunk_size)
    }

    /// Writes a piece of the copy; `crcs` (one per 64 KiB of `data`) are
    /// checked before anything is written.
    pub fn write_copy(&self, handle: ChunkHandle, version: ChunkVersion, offset: u64, data: &[u8], crcs: &[u32]) -> Result<(), ChunkError> {
        self.copies()?.write(handle, version, offset, data, Some(crcs))
    }

    /// Makes the copy durable, reads it back whole against its CRCs, then
    /// swaps it in for the replica of the chunk here (if any, at `version`
    /// or older; a newer one is kept: `VersionConflict`). A crash leaves
    /// either the old replica or the copy, never a mix. Answers the replica
    /// now stored.
    pub fn finish_copy(&self, handle: ChunkHandle, version: ChunkVersion) -> Result<ChunkInfo, ChunkError> {
        let copies = self.copies()?;
        copies.sync(handle)?;
        copies.verify(handle)?;
        self.swap_in(copies, handle, version)
    }

    /// Drops the copy of `handle` (if any); the replica here is untouched.
    pub fn abort_copy(&self, handle: ChunkHandle) -> Result<(), ChunkError> {
        match self.copies()?.delete(handle) {
            Ok(()) | Err(ChunkError::UnknownChunk(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The length of the copy of `handle` written so far (for tests and logs).
    pub fn copy_info(&self, handle: ChunkHandle) -> Option<ChunkInfo> {
        self.copies.as_deref().and_then(|c| c.info(handle))
    }

    fn swap_in(&self, copies: &ChunkStore, handle: ChunkHandle, version: ChunkVersion) -> Result<ChunkInfo, ChunkError> {
        let copy = copies.replica(handle)?;
        let mut copy_st = alive(handle, write(&copy.state))?;
        if copy_st.meta.version != version || copy_st.meta.dirty {
            return Err(ChunkError::BadArgument(format!("the copy of chunk {handle} is not durable at version {version}")));
        }
        // Published locked: calls on the chunk wait until its files are in place.
        let fresh = Arc::new(Replica::new(handle, copy_st.meta.clone()));
        let mut fresh_st = write(&fresh.state);
        loop {
            if let Some(old) = self.lookup(handle) {
                let mut st = write(&old.state);
                if st.gone {
                    continue; // deleted meanwhile; it has left the map too
                }
                if st.meta.version > version {
                    return Err(ChunkError::VersionConflict { handle, have: st.meta.version, want: version });
                }
                match self.move_files_in(copies, handle) {
                    Ok(()) => {
                        // Its files were replaced: its descriptors point at the old ones.
                        self.files.close_discarding(&old);
                        self.used_bytes.fetch_sub(st.meta.length_bytes, Ordering::Relaxed);
                        st.gone = true;
                        write(&self.replicas).insert(handle, Arc::clone(&fresh));
                    }
                    Err(Swap::NothingMoved(e)) => return Err(e),
                    Err(Swap::HalfDone(e)) => {
                        drop(st);
                        self.set_aside_after_swap(&old, handle);
                        return Err(e);
                    }
                }
                break;
            }
            let mut map = write(&self.replicas);
            if map.contains_key(&handle) {
                continue; // created meanwhile: look again
            }
            map.insert(handle, Arc::clone(&fresh));
            drop(map);
            if let Err(Swap::NothingMoved(e) | Swap::HalfDone(e)) = self.move_files_in(copies, handle) {
                // A data file left alone in chunks/ is quarantined at the next open.
                fresh_st.gone = true;
                self.forget(&fresh);
                return Err(e);
            }
            break;
        }
        self.used_bytes.fetch_add(fresh_st.meta.length_bytes, Ordering::Relaxed);
        // The copy's files are the replica's now.
        copies.files.close_discarding(&copy);
        copies.retire(&copy, &mut copy_st);
        Ok(chunk_info(handle, &fresh_st.meta))
    }

    /// The two renames of the swap, each made durable before the next.
    fn move_files_in(&self, copies: &ChunkStore, handle: ChunkHandle) -> Result<(), Swap> {
        for (step, name) in [data_name(handle), meta_name(handle)].into_iter().enumerate() {
            let (from, to) = (copies.layout.chunks.join(&name), self.layout.chunks.join(&name));
            let failed = |e: ChunkError| if step == 0 { Swap::NothingMoved(e) } else { Swap::HalfDone(e) };
            fs::rename(&from, &to).map_err(|e| failed(ChunkError::io("rename into place", &from, e)))?;
            for dir in [&self.layout.chunks, &copies.layout.chunks] {
                let sync_failed = |e: ChunkError| ChunkError::SyncFailed { handle, source: std::io::Error::other(e.to_string()) };
                sync_dir(dir).map_err(|e| Swap::HalfDone(sync_failed(e)))?;
            }
        }
        Ok(())
    }

    /// A swap failed part way: what `chunks/` holds for the chunk may mix
    /// the old replica and the copy, so it is moved aside, never served.
    fn set_aside_after_swap(&self, old: &Arc<Replica>, handle: ChunkHandle) {
        tracing::error!(chunk = %handle, "swapping a finished copy in failed part way; the replica is set aside");
        if let Err(e) = self.move_aside(old, "a copy's swap failed part way") {
            tracing::error!(chunk = %handle, error = %e, "moving a half-swapped replica aside failed");
        }
    }
}

/// How a swap failed.
enum Swap {
    /// Before the first rename: the replica here is as it was.
    NothingMoved(ChunkError),
    /// After it: the replica's files may mix old and new.
    HalfDone(ChunkError),
}

/// Finishes or undoes the swaps a crash interrupted (see the module doc),
/// before `chunks/` is loaded; `copies/chunks/` is empty afterwards.
/// Returns one line per swap finished.
pub(super) fn finish_swaps(chunks: &Path, copies: &Path) -> Result<Vec<String>, ChunkError> {
    let copies_chunks = copies.join("chunks");
    let entries = match fs::read_dir(&copies_chunks) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ChunkError::io("list", &copies_chunks, e)),
    };
    let mut found: BTreeMap<ChunkHandle, (bool, bool)> = BTreeMap::new();
    let mut strays = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| ChunkError::io("list", &copies_chunks, e))?.file_name();
        match name.to_str().map(file_role).unwrap_or(FileRole::Stray) {
            FileRole::Data(h) => found.entry(h).or_default().0 = true,
            FileRole::Meta(h) => found.entry(h).or_default().1 = true,
            FileRole::Stray => strays.push(copies_chunks.join(name)),
        }
    }
    let mut finished = Vec::new();
    for (handle, (data, meta)) in found {
        let (data_path, meta_path) = (copies_chunks.join(data_name(handle)), copies_chunks.join(meta_name(handle)));
        if meta && !data {
            let to = chunks.join(meta_name(handle));
            fs::rename(&meta_path, &to).map_err(|e| ChunkError::io("rename into place", &meta_path, e))?;
            finished.push(format!("chunk {handle}: a copy's swap cut short by a crash was finished"));
            continue;
        }
        // Never swapped in: the replica in chunks/ (if any) is whole.
        strays.extend([meta_path, data_path].into_iter().filter(|p| p.exists()));
    }
    for path in strays {
        fs::remove_file(&path).map_err(|e| ChunkError::io("remove", &path, e))?;
    }
    sync_dir(&copies_chunks)?;
    sync_dir(chunks)?;
    Ok(finished)
}
