//! The chunkserver's local chunk store: one data file and one metadata file
//! per replica under `<dir>/chunks/` (layout in `disk_layout`, metadata format
//! in `meta`), a CRC32 per 64 KiB block, every read verified.
//!
//! The API is blocking (the server calls it from `spawn_blocking`). The store
//! is `Send + Sync`: calls on different chunks run in parallel; one chunk's
//! writes (and version changes, deletion) are serialized, its reads shared.
//!
//! Durability: `create`, `set_version`, `delete` and `quarantine` are durable
//! when they return. `write` returns once data and metadata are with the OS;
//! `sync` makes them durable, and records the synced length. A crash between
//! the two can damage the blocks being written; at the next open a replica
//! whose last blocks were torn is cut back to its sound part (`recover`),
//! other damage is a CRC mismatch, reported and never served. A failed
//! fsync sets the replica aside (`ChunkError::SyncFailed`): what it wrote may
//! be lost, and the kernel may not say so twice.
//!
//! Module map: `replica` (in-memory state, locks, open-file cache), `write`
//! and `read` (the byte paths), `aligned` (O_DIRECT buffers and file),
//! `checksum` (CRC arithmetic), `load` (startup scan), `recover` (torn
//! tails at startup), `staging` (copies built beside a replica and swapped
//! in once durable), `error`.

mod aligned;
mod body;
mod checksum;
mod disk_layout;
mod error;
mod load;
mod meta;
mod read;
mod recover;
mod replica;
mod staging;
mod write;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use dfs_proto::local_reads::ReplicaSnapshot;
use dfs_proto::{ChunkHandle, ChunkVersion};

use aligned::{BufferPool, DataFile};
use disk_layout::{sync_dir, DiskLayout};
use meta::ChunkMeta;
use replica::{lock, read, write, OpenFiles, Replica, ReplicaState};

pub use body::Body;
pub use error::ChunkError;
pub use meta::{check_chunk_size, MAX_CHUNK_BYTES};

/// The checksum granularity: one CRC32 per block of this many bytes.
pub const BLOCK_BYTES: u64 = 64 * 1024;
/// Blocks per pread/pwrite, and so the size of the pooled I/O buffers.
const SEGMENT_BLOCKS: u64 = 16;
const SEGMENT_BYTES: usize = (SEGMENT_BLOCKS * BLOCK_BYTES) as usize;
/// Idle I/O buffers kept for reuse (one per concurrent call is enough).
const MAX_IDLE_BUFFERS: usize = 8;

const _: () = assert!(aligned::PAGE_BYTES.is_power_of_two() && BLOCK_BYTES.is_power_of_two());
const _: () = assert!(aligned::is_multiple(BLOCK_BYTES, aligned::PAGE_BYTES), "blocks must be whole pages");
const _: () = assert!(aligned::is_multiple(MAX_CHUNK_BYTES, BLOCK_BYTES));
const _: () = assert!(BLOCK_BYTES == dfs_proto::wire::chunks::BLOCK_BYTES, "the wire's CRC pieces are our blocks");

const _: () = {
    const fn shared_across_threads<T: Send + Sync>() {}
    shared_across_threads::<ChunkStore>();
};

/// What the store reports about one replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkInfo {
    pub handle: ChunkHandle,
    pub version: ChunkVersion,
    /// Bytes written so far (the highest written offset + 1).
    pub length: u64,
    pub chunk_size: u64,
    /// Written since its last sync: after a crash, writes acknowledged
    /// since may be gone.
    pub dirty: bool,
}

/// Tuning of a store; `Default` is what a server should use.
#[derive(Clone, Debug)]
pub struct ChunkStoreOptions {
    /// Open data files with O_DIRECT (falls back to buffered I/O by itself
    /// where the file system refuses it).
    pub direct_io: bool,
    /// Replicas whose files stay open between calls (two descriptors each).
    pub max_open_replicas: usize,
}

impl Default for ChunkStoreOptions {
    fn default() -> Self {
        ChunkStoreOptions { direct_io: true, max_open_replicas: 256 }
    }
}

/// The replicas stored in one directory.
pub struct ChunkStore {
    layout: DiskLayout,
    replicas: RwLock<HashMap<ChunkHandle, Arc<Replica>>>,
    files: OpenFiles,
    buffers: BufferPool,
    /// Sum of the replicas' lengths.
    used_bytes: AtomicU64,
    /// One line per file set moved to quarantine since open.
    quarantined: Mutex<Vec<String>>,
    /// Where copies from other chunkservers are built before they replace
    /// a replica here (`staging`); none in that store itself.
    copies: Option<Box<ChunkStore>>,
}

impl ChunkStore {
    /// Opens (creating if needed) the store in `dir` with default options.
    pub fn open(dir: &Path) -> Result<ChunkStore, ChunkError> {
        Self::open_with(dir, ChunkStoreOptions::default())
    }

    /// Opens the store, loading every replica's metadata; damaged or stray
    /// files are moved to `dir/quarantine/` and listed by `quarantined()`.
    pub fn open_with(dir: &Path, options: ChunkStoreOptions) -> Result<ChunkStore, ChunkError> {
        let copies_dir = dir.join(staging::COPIES_DIR);
        let layout = DiskLayout::create(dir)?;
        // Before the replicas are loaded: a swap cut short is finished first.
        for line in staging::finish_swaps(&layout.chunks, &copies_dir)? {
            tracing::warn!("{line}");
        }
        let copies = Self::open_in(&copies_dir, options.clone(), None)?;
        Self::open_in(dir, options, Some(Box::new(copies)))
    }

    fn open_in(dir: &Path, options: ChunkStoreOptions, copies: Option<Box<ChunkStore>>) -> Result<ChunkStore, ChunkError> {
        if options.max_open_replicas == 0 {
            return Err(ChunkError::BadArgument("max_open_replicas must be at least 1".into()));
        }
        let layout = DiskLayout::create(dir)?;
        let loaded = load::load_replicas(&layout)?;
        let used: u64 = loaded.replicas.iter().map(|(_, m)| m.length_bytes).sum();
        let replicas = loaded.replicas.into_iter().map(|(h, meta)| (h, Arc::new(Replica::new(h, meta)))).collect();
        Ok(ChunkStore {
            layout,
            replicas: RwLock::new(replicas),
            files: OpenFiles::new(options.max_open_replicas, options.direct_io),
            buffers: BufferPool::new(SEGMENT_BYTES, MAX_IDLE_BUFFERS),
            used_bytes: AtomicU64::new(used),
            quarantined: Mutex::new(loaded.quarantined),
            copies,
        })
    }

    /// What was moved to quarantine (at open, or by `quarantine`), one line
    /// per move: the files, their new suffix and the reason.
    pub fn quarantined(&self) -> Vec<String> {
        lock(&self.quarantined).clone()
    }

    /// Whether data files are opened with O_DIRECT (false if disabled or
    /// refused by the file system).
    pub fn direct_io(&self) -> bool {
        self.files.direct_io()
    }

    /// Creates an empty replica, durably. Creating an existing replica again
    /// with the same version and size is a no-op; with another version it is
    /// a `VersionConflict`, with another size `Exists`.
    pub fn create(&self, handle: ChunkHandle, version: ChunkVersion, chunk_size: u64) -> Result<(), ChunkError> {
        check_chunk_size(chunk_size).map_err(ChunkError::BadArgument)?;
        loop {
            if let Some(existing) = self.lookup(handle) {
                let st = read(&existing.state);
                if st.gone {
                    continue; // deleted meanwhile; it has left the map too
                }
                if st.meta.version != version {
                    return Err(ChunkError::VersionConflict { handle, have: st.meta.version, want: version });
                }
                if st.meta.chunk_size_bytes != chunk_size {
                    return Err(ChunkError::Exists);
                }
                return Ok(());
            }
            // Publish the new replica locked, so that calls on it wait until
            // its files exist.
            let replica = Arc::new(Replica::new(handle, ChunkMeta::new(version, chunk_size)));
            let mut st = write(&replica.state);
            {
                let mut map = write(&self.replicas);
                if map.contains_key(&handle) {
                    continue; // created by another call meanwhile: look again
                }
                map.insert(handle, Arc::clone(&replica));
            }
            let created = self.create_files(handle, &st.meta);
            if created.is_err() {
                st.gone = true;
                self.forget(&replica);
            }
            return created;
        }
    }

    fn create_files(&self, handle: ChunkHandle, meta: &ChunkMeta) -> Result<(), ChunkError> {
        // The data file first: the metadata's rename is the commit point (a
        // lone data file left by a crash is quarantined at the next open).
        let data_path = self.layout.data_path(handle);
        DataFile::open(&data_path, true, false).map_err(|e| ChunkError::io("create", &data_path, e))?;
        let replaced = self.layout.replace_meta(handle, &meta.encode(handle));
        if let Err(ChunkError::SyncFailed { source, .. }) = &replaced {
            // Whether the new files persist is unknown: move them aside.
            let names = [disk_layout::meta_name(handle).into(), disk_layout::data_name(handle).into()];
            match self.layout.quarantine(&names, &format!("fsync failed at creation: {source}")) {
                Ok(line) => lock(&self.quarantined).push(line),
                Err(e) => tracing::error!(chunk = %handle, error = %e, "moving a damaged replica aside failed"),
            }
        }
        replaced
    }

    /// Raises the replica's version, durably (the data is synced first, so a
    /// durable new version never describes bytes that were lost). Equal is a
    /// no-op; lower is a `VersionConflict`: versions never go down.
    pub fn set_version(&self, handle: ChunkHandle, version: ChunkVersion) -> Result<(), ChunkError> {
        let replica = self.replica(handle)?;
        let mut st = alive(handle, write(&replica.state))?;
        let have = st.meta.version;
        if version < have {
            return Err(ChunkError::VersionConflict { handle, have, want: version });
        }
        if version == have {
            return Ok(());
        }
        let files = self.files.get(&replica, &self.layout)?;
        if let Err(e) = files.sync_data_file() {
            drop(st);
            return Err(self.set_aside(&replica, e));
        }
        let mut meta = st.meta.clone();
        meta.version = version;
        // The data is durable, and the new file describes it whole.
        meta.mark_synced();
        match self.layout.replace_meta(handle, &meta.encode(handle)) {
            Ok(()) => {}
            Err(ChunkError::SyncFailed { source, .. }) => {
                drop(st);
                return Err(self.set_aside(&replica, source));
            }
            Err(e) => return Err(e),
        }
        // The open metadata handle points at the replaced file, whose
        // unsynced slot writes the new file supersedes.
        self.files.close_discarding(&replica);
        st.meta = meta;
        st.lost_writes = false;
        Ok(())
    }

    /// Writes `data` at `offset`. `version` must be the replica's. With
    /// `body_crcs` (CRC32 of each 64 KiB piece of `data`), the body is
    /// checked before anything is written. Returns once the bytes are with
    /// the OS; see `sync`.
    pub fn write(&self, handle: ChunkHandle, version: ChunkVersion, offset: u64, data: &[u8], body_crcs: Option<&[u32]>) -> Result<(), ChunkError> {
        self.write_body(handle, version, offset, Body::new(&[data]), body_crcs)
    }

    /// As `write`, with the bytes in several pieces (a body's frames).
    pub fn write_body(&self, handle: ChunkHandle, version: ChunkVersion, offset: u64, data: Body<'_>, body_crcs: Option<&[u32]>) -> Result<(), ChunkError> {
        if let Some(crcs) = body_crcs {
            checksum::check_body(data, crcs)?;
        }
        let replica = self.replica(handle)?;
        let mut st = alive(handle, write(&replica.state))?;
        check_version(handle, &st.meta, version)?;
        if st.lost_writes {
            return Err(ChunkError::LostWrites { handle, version });
        }
        let len = data.len() as u64;
        if offset.checked_add(len).is_none_or(|end| end > st.meta.chunk_size_bytes) {
            return Err(out_of_range(handle, &st.meta, offset, len));
        }
        if data.is_empty() {
            return Ok(());
        }
        let files = self.files.get(&replica, &self.layout)?;
        if !st.meta.dirty {
            let mut meta = st.meta.clone();
            meta.dirty = true;
            if let Err(e) = files.record_header(&meta.encode_header(handle)) {
                drop(st);
                return Err(self.set_aside(&replica, e));
            }
            st.meta.dirty = true;
        }
        files.will_write();
        let old_len = st.meta.length_bytes;
        let req = write::WriteRequest { offset, data, body_crcs };
        write::write_range(handle, &files, &mut st.meta, &req, &mut self.buffers.get())?;
        self.used_bytes.fetch_add(st.meta.length_bytes - old_len, Ordering::Relaxed);
        Ok(())
    }

    /// Reads up to `len` bytes at `offset`, clipped at the replica's length
    /// (empty at or past it). Every block touched is checked against its CRC;
    /// a mismatch is `Corrupt` and no bytes are returned.
    pub fn read(&self, handle: ChunkHandle, version: ChunkVersion, offset: u64, len: u64) -> Result<Vec<u8>, ChunkError> {
        let replica = self.replica(handle)?;
        let st = alive(handle, read(&replica.state))?;
        let Some(range) = read_span(handle, &st.meta, version, offset, len)? else { return Ok(Vec::new()) };
        let files = self.files.get(&replica, &self.layout)?;
        if range.1 - range.0 > SEGMENT_BYTES as u64 {
            files.cached.will_need(range.0, range.1 - range.0);
        }
        let data = read::read_range(handle, &files.cached, &st.meta, range, &mut self.buffers.get(), false)?;
        data.ok_or_else(|| ChunkError::Io(std::io::Error::other("a blocking read came back incomplete")))
    }

    /// `read`, answered only when that needs neither the disk nor a wait
    /// (for a lock held by a write, or to open files): then it may run on
    /// the async runtime, saving a trip through the blocking pool. `None`
    /// means: call `read` from the blocking pool instead.
    pub fn read_cached(&self, handle: ChunkHandle, version: ChunkVersion, offset: u64, len: u64) -> Option<Result<Vec<u8>, ChunkError>> {
        let attempt = || -> Result<Option<Vec<u8>>, ChunkError> {
            let replica = self.replica(handle)?;
            let Ok(st) = replica.state.try_read() else { return Ok(None) };
            let st = alive(handle, st)?;
            let Some(range) = read_span(handle, &st.meta, version, offset, len)? else { return Ok(Some(Vec::new())) };
            let Some(files) = self.files.get_open(&replica) else { return Ok(None) };
            read::read_range(handle, &files.cached, &st.meta, range, &mut self.buffers.get(), true)
        };
        attempt().transpose()
    }

    /// A read-only descriptor of the replica's data file with its length and
    /// CRCs, taken together under the replica's lock, for a short-circuit
    /// reader on this host (`local_reads`). The reader checks every block it
    /// reads against these CRCs, so later writes are caught, not served.
    pub fn open_for_local_read(&self, handle: ChunkHandle, version: ChunkVersion) -> Result<(std::fs::File, ReplicaSnapshot), ChunkError> {
        let replica = self.replica(handle)?;
        let st = alive(handle, read(&replica.state))?;
        check_version(handle, &st.meta, version)?;
        let path = self.layout.data_path(handle);
        let file = aligned::open_read_only(&path).map_err(|e| ChunkError::io("open", &path, e))?;
        Ok((file, ReplicaSnapshot { length_bytes: st.meta.length_bytes, crcs: st.meta.crcs.clone() }))
    }

    /// Checks every block of the replica against its CRC (for a scrubber).
    pub fn verify(&self, handle: ChunkHandle) -> Result<(), ChunkError> {
        let replica = self.replica(handle)?;
        let st = alive(handle, read(&replica.state))?;
        if st.meta.length_bytes == 0 {
            return Ok(());
        }
        let files = self.files.get(&replica, &self.layout)?;
        let whole = (0, st.meta.length_bytes);
        read::scan_verified(handle, &files.data, &st.meta, whole, &mut self.buffers.get(), false, |_, _| {}).map(|_| ())
    }

    /// Makes every completed write to the replica durable (fdatasync of the
    /// data and the metadata file) and records the synced length in the
    /// header (see `meta`). A failure sets the replica aside: `SyncFailed`.
    ///
    /// Holds the replica's write lock (reads of this replica wait for the
    /// sync): the synced length written must be exactly what was synced.
    pub fn sync(&self, handle: ChunkHandle) -> Result<(), ChunkError> {
        let replica = self.replica(handle)?;
        let mut st = alive(handle, write(&replica.state))?;
        if st.lost_writes {
            return Err(ChunkError::LostWrites { handle, version: st.meta.version });
        }
        if !st.meta.dirty {
            // Every write marks the replica dirty first, and every completed
            // sync clears it: nothing was written since the last one.
            return Ok(());
        }
        let files = self.files.get(&replica, &self.layout)?;
        let mut meta = st.meta.clone();
        meta.mark_synced();
        // The header goes out after the data is durable and with the slots'
        // sync. (A power cut inside this call may keep the new header
        // without some slots of a long chunk; such a replica reads as
        // damaged, as before, and this sync never returned.)
        let header = meta.encode_header(handle);
        let synced = files.sync(|meta_file| meta_file.write_all_at(&header, 0));
        if let Err(e) = synced {
            drop(st);
            return Err(self.set_aside(&replica, e));
        }
        st.meta = meta;
        Ok(())
    }

    /// Syncs every replica written since its last sync (a clean stop);
    /// how many. One that fails is set aside, as any failed sync.
    pub fn sync_dirty(&self) -> usize {
        let dirty: Vec<ChunkHandle> = self.list().into_iter().filter(|i| i.dirty).map(|i| i.handle).collect();
        dirty.into_iter().filter(|h| self.sync(*h).is_ok()).count()
    }

    /// Removes the replica, durably.
    pub fn delete(&self, handle: ChunkHandle) -> Result<(), ChunkError> {
        self.delete_up_to(handle, ChunkVersion(u64::MAX)).map(|_| ())
    }

    /// Removes the replica, durably, if its version is at most `max_version`,
    /// and returns the version removed. The version is checked under the
    /// replica's lock, so one raised meanwhile is kept: a newer replica is a
    /// `VersionConflict` and stays.
    pub fn delete_up_to(&self, handle: ChunkHandle, max_version: ChunkVersion) -> Result<ChunkVersion, ChunkError> {
        let replica = self.replica(handle)?;
        let mut st = alive(handle, write(&replica.state))?;
        let have = st.meta.version;
        if have > max_version {
            return Err(ChunkError::VersionConflict { handle, have, want: max_version });
        }
        self.files.close_discarding(&replica);
        // The metadata first: without it the replica no longer exists.
        for path in [self.layout.meta_path(handle), self.layout.data_path(handle)] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ChunkError::io("remove", &path, e)),
            }
        }
        sync_dir(&self.layout.chunks)?;
        self.retire(&replica, &mut st);
        Ok(have)
    }

    /// Moves the replica's files to `quarantine/`, durably: it is never
    /// served again (and is unknown to the store from now on).
    pub fn quarantine(&self, handle: ChunkHandle) -> Result<(), ChunkError> {
        let replica = self.replica(handle)?;
        self.move_aside(&replica, "quarantined on request")
    }

    fn move_aside(&self, replica: &Arc<Replica>, reason: &str) -> Result<(), ChunkError> {
        let handle = replica.handle;
        let mut st = alive(handle, write(&replica.state))?;
        self.files.close_discarding(replica);
        let names = [disk_layout::meta_name(handle).into(), disk_layout::data_name(handle).into()];
        let moved = self.layout.quarantine(&names, reason);
        // Never served again by this process, even if the move failed.
        self.retire(replica, &mut st);
        lock(&self.quarantined).push(moved?);
        Ok(())
    }

    /// A replica whose sync failed: moved aside like a corrupt one (its
    /// writes may be lost without another error ever saying so).
    fn set_aside(&self, replica: &Arc<Replica>, source: std::io::Error) -> ChunkError {
        let handle = replica.handle;
        tracing::error!(chunk = %handle, error = %source, "fsync failed; the replica is damaged and set aside");
        if let Err(e) = self.move_aside(replica, &format!("fsync failed: {source}")) {
            tracing::error!(chunk = %handle, error = %e, "moving a damaged replica aside failed");
        }
        ChunkError::SyncFailed { handle, source }
    }

    /// Test seam: every sync of every replica fails with EIO while `on`.
    #[cfg(test)]
    pub(crate) fn fail_syncs(&self, on: bool) {
        self.files.fail_syncs.store(on, Ordering::Relaxed);
    }

    /// The replica's version and sizes, if it is stored here (and not
    /// found damaged).
    pub fn info(&self, handle: ChunkHandle) -> Option<ChunkInfo> {
        let replica = self.lookup(handle)?;
        let st = read(&replica.state);
        (!st.gone && !replica.damaged.load(Ordering::Acquire)).then(|| chunk_info(handle, &st.meta))
    }

    /// Every replica, by handle.
    pub fn list(&self) -> Vec<ChunkInfo> {
        let replicas: Vec<Arc<Replica>> = read(&self.replicas).values().cloned().collect();
        let mut infos: Vec<ChunkInfo> = replicas
            .iter()
            .filter_map(|r| {
                let st = read(&r.state);
                // A damaged replica is set aside at its next call; until
                // then it is not reported either.
                (!st.gone && !r.damaged.load(Ordering::Acquire)).then(|| chunk_info(r.handle, &st.meta))
            })
            .collect();
        infos.sort_by_key(|i| i.handle);
        infos
    }

    /// The sum of the replicas' lengths.
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes.load(Ordering::Relaxed)
    }

    fn lookup(&self, handle: ChunkHandle) -> Option<Arc<Replica>> {
        read(&self.replicas).get(&handle).cloned()
    }

    /// The replica, unless it is unknown or was found damaged since the
    /// last call (then it is set aside now).
    fn replica(&self, handle: ChunkHandle) -> Result<Arc<Replica>, ChunkError> {
        let replica = self.lookup(handle).ok_or(ChunkError::UnknownChunk(handle))?;
        if replica.damaged.load(Ordering::Acquire) {
            let e = std::io::Error::other("a sync before closing its files failed");
            return Err(self.set_aside(&replica, e));
        }
        Ok(replica)
    }

    /// Marks a removed replica gone and drops it from the map; the caller
    /// holds its state lock.
    fn retire(&self, replica: &Arc<Replica>, st: &mut ReplicaState) {
        st.gone = true;
        self.used_bytes.fetch_sub(st.meta.length_bytes, Ordering::Relaxed);
        self.forget(replica);
    }

    fn forget(&self, replica: &Arc<Replica>) {
        let mut map = write(&self.replicas);
        if map.get(&replica.handle).is_some_and(|r| Arc::ptr_eq(r, replica)) {
            map.remove(&replica.handle);
        }
    }
}

/// The bytes of the replica a read of `len` at `offset` covers, after the
/// version and range checks; `None` when it covers none.
fn read_span(handle: ChunkHandle, meta: &ChunkMeta, version: ChunkVersion, offset: u64, len: u64) -> Result<Option<(u64, u64)>, ChunkError> {
    check_version(handle, meta, version)?;
    if offset > meta.chunk_size_bytes {
        return Err(out_of_range(handle, meta, offset, len));
    }
    let end = offset.saturating_add(len).min(meta.length_bytes);
    Ok((end > offset).then_some((offset, end)))
}

/// Passes a replica's state guard on unless the replica was removed.
fn alive<G: std::ops::Deref<Target = ReplicaState>>(handle: ChunkHandle, st: G) -> Result<G, ChunkError> {
    if st.gone {
        return Err(ChunkError::UnknownChunk(handle));
    }
    Ok(st)
}

fn check_version(handle: ChunkHandle, meta: &ChunkMeta, want: ChunkVersion) -> Result<(), ChunkError> {
    if meta.version != want {
        return Err(ChunkError::VersionConflict { handle, have: meta.version, want });
    }
    Ok(())
}

fn out_of_range(handle: ChunkHandle, meta: &ChunkMeta, offset: u64, len: u64) -> ChunkError {
    ChunkError::OutOfRange { handle, offset_bytes: offset, len_bytes: len, chunk_size_bytes: meta.chunk_size_bytes }
}

fn chunk_info(handle: ChunkHandle, meta: &ChunkMeta) -> ChunkInfo {
    ChunkInfo { handle, version: meta.version, length: meta.length_bytes, chunk_size: meta.chunk_size_bytes, dirty: meta.dirty }
}
