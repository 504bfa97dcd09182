//! One replica in memory (its metadata behind a lock) and the bounded cache
//! of open file handles.
//!
//! Lock order, to rule out deadlock: a replica's `state`, then the store's
//! replica map; `OpenFiles::order`, then a replica's `files` slot. A `files`
//! slot is a leaf: nothing else is acquired while it is held. `create` takes
//! the map while holding the state lock of a replica no one else can see yet.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use dfs_proto::ChunkHandle;

use super::aligned::DataFile;
use super::disk_layout::DiskLayout;
use super::error::ChunkError;
use super::meta::ChunkMeta;

/// A replica known to the store.
pub(crate) struct Replica {
    pub handle: ChunkHandle,
    /// Set when syncing its files failed where the error could not be
    /// returned (files closed with writes not yet synced): the store sets
    /// the replica aside at its next call (`ChunkStore::replica`).
    pub damaged: Arc<AtomicBool>,
    /// Readers share it; writes, version changes and removal hold it alone,
    /// so one chunk's writes are serialized while other chunks proceed.
    pub state: RwLock<ReplicaState>,
    /// The open files, if cached (see `OpenFiles`).
    files: Mutex<Option<Arc<ReplicaFiles>>>,
}

pub(crate) struct ReplicaState {
    /// The authoritative copy of the metadata file's contents.
    pub meta: ChunkMeta,
    /// Set, under the write lock, once the replica is deleted or quarantined
    /// (or its creation failed): a caller that found it in the map just
    /// before then must treat it as unknown.
    pub gone: bool,
    /// Loaded dirty: the process before crashed with writes to it not yet
    /// synced, which a power cut may have dropped though they were
    /// acknowledged. It takes no write and no sync at this version (a sync
    /// would hide the loss from a writer that goes on); a version change,
    /// which the master makes only once it judged the replica, clears it.
    pub lost_writes: bool,
}

/// A replica's open data and metadata files.
///
/// Writes and the sync that makes them durable go through the same
/// descriptors: a writeback error is reported to the descriptors open when
/// it happened, and a sync through a descriptor opened later may never see
/// it (the "fsyncgate" lesson). So files with unsynced writes are synced
/// before they are closed (`Drop`), and a failure there marks the replica
/// damaged instead of vanishing.
pub(crate) struct ReplicaFiles {
    /// Writes (O_DIRECT where allowed) and the scrubber's reads (from disk).
    pub data: DataFile,
    /// Client reads, through the page cache so hot chunks are served from
    /// memory. Coherent with direct writes: a replica's reads and writes are
    /// serialized by its state lock, and a direct write drops cached pages.
    pub cached: DataFile,
    pub meta: File,
    /// Written through these descriptors since their last sync.
    unsynced: AtomicBool,
    /// The replica's `damaged` flag.
    damaged: Arc<AtomicBool>,
    /// Test seam: every sync fails with EIO while set.
    fail_syncs: Arc<AtomicBool>,
}

impl ReplicaFiles {
    /// To be called before a write through these files.
    pub fn will_write(&self) {
        self.unsynced.store(true, Ordering::Release);
    }

    /// Writes the metadata file's header in place and makes it durable:
    /// the dirty flag, before the first write after a sync is taken.
    pub fn record_header(&self, header: &[u8]) -> io::Result<()> {
        self.check_fault()?;
        self.meta.write_all_at(header, 0)?;
        self.meta.sync_data()
    }

    /// fdatasync of the data file alone (its metadata file is replaced
    /// whole next, which makes any unsynced slot writes moot).
    pub fn sync_data_file(&self) -> io::Result<()> {
        self.check_fault()?;
        self.data.sync_data()
    }

    /// Makes every write through these files durable: fdatasync of the
    /// data file, then `before_meta` (given the metadata file), then
    /// fdatasync of the metadata file.
    pub fn sync(&self, before_meta: impl FnOnce(&File) -> io::Result<()>) -> io::Result<()> {
        // Cleared first: a write racing the sync sets it again.
        self.unsynced.store(false, Ordering::Release);
        let synced = self.check_fault().and_then(|()| self.data.sync_data()).and_then(|()| before_meta(&self.meta)).and_then(|()| self.meta.sync_data());
        if synced.is_err() {
            self.unsynced.store(true, Ordering::Release);
        }
        synced
    }

    /// The files are dropped with the replica (deleted, set aside, or its
    /// metadata replaced): their unsynced writes no longer matter.
    pub fn discard(&self) {
        self.unsynced.store(false, Ordering::Release);
    }

    fn check_fault(&self) -> io::Result<()> {
        if self.fail_syncs.load(Ordering::Relaxed) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(())
    }
}

impl Drop for ReplicaFiles {
    fn drop(&mut self) {
        if !self.unsynced.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = self.sync(|_| Ok(())) {
            tracing::error!(error = %e, "syncing a replica's files before closing them failed; the replica is damaged");
            self.damaged.store(true, Ordering::Release);
        }
    }
}

impl Replica {
    pub fn new(handle: ChunkHandle, meta: ChunkMeta) -> Replica {
        Replica {
            handle,
            damaged: Arc::new(AtomicBool::new(false)),
            state: RwLock::new(ReplicaState { lost_writes: meta.dirty, meta, gone: false }),
            files: Mutex::new(None),
        }
    }
}

/// Keeps the files of at most `max_open` replicas open, closing the least
/// recently opened first, so that a server with many chunks stays under its
/// descriptor limit while busy chunks skip two opens per call. A handle in
/// use when evicted stays open until that call drops its `Arc`.
pub(crate) struct OpenFiles {
    max_open: usize,
    try_direct: AtomicBool,
    /// Test seam: makes every replica's syncs fail (see `ReplicaFiles`).
    pub fail_syncs: Arc<AtomicBool>,
    /// In opening order; an entry whose files were since closed is stale
    /// and simply dropped when it reaches the front.
    order: Mutex<VecDeque<(Weak<Replica>, Weak<ReplicaFiles>)>>,
}

impl OpenFiles {
    /// `max_open` must be at least 1.
    pub fn new(max_open: usize, direct_io: bool) -> OpenFiles {
        OpenFiles { max_open, try_direct: AtomicBool::new(direct_io), fail_syncs: Arc::new(AtomicBool::new(false)), order: Mutex::new(VecDeque::new()) }
    }

    /// Whether data files are opened with O_DIRECT (false once a file
    /// system refused it).
    pub fn direct_io(&self) -> bool {
        self.try_direct.load(Ordering::Relaxed)
    }

    /// The replica's open files, opening them if needed.
    pub fn get(&self, replica: &Arc<Replica>, layout: &DiskLayout) -> Result<Arc<ReplicaFiles>, ChunkError> {
        let mut slot = lock(&replica.files);
        if let Some(files) = slot.as_ref() {
            return Ok(Arc::clone(files));
        }
        let files = Arc::new(self.open(replica, layout)?);
        *slot = Some(Arc::clone(&files));
        drop(slot);
        self.remember(replica, &files);
        Ok(files)
    }

    /// The replica's files if they are open already (opening may block).
    pub fn get_open(&self, replica: &Replica) -> Option<Arc<ReplicaFiles>> {
        lock(&replica.files).clone()
    }

    /// Forgets the files of a replica whose files are going away (deleted,
    /// set aside, metadata replaced after the data was synced): they close
    /// once no call uses them, without a sync.
    pub fn close_discarding(&self, replica: &Replica) {
        if let Some(files) = lock(&replica.files).take() {
            files.discard();
        }
    }

    fn open(&self, replica: &Replica, layout: &DiskLayout) -> Result<ReplicaFiles, ChunkError> {
        let handle = replica.handle;
        let data_path = layout.data_path(handle);
        let data = DataFile::open(&data_path, false, self.direct_io()).map_err(|e| ChunkError::io("open", &data_path, e))?;
        if !data.is_direct() {
            self.try_direct.store(false, Ordering::Relaxed);
        }
        let cached = DataFile::open(&data_path, false, false).map_err(|e| ChunkError::io("open", &data_path, e))?;
        cached.advise_random();
        let meta_path = layout.meta_path(handle);
        let meta = open_meta(&meta_path).map_err(|e| ChunkError::io("open", &meta_path, e))?;
        Ok(ReplicaFiles {
            data,
            cached,
            meta,
            unsynced: AtomicBool::new(false),
            damaged: Arc::clone(&replica.damaged),
            fail_syncs: Arc::clone(&self.fail_syncs),
        })
    }

    fn remember(&self, replica: &Arc<Replica>, files: &Arc<ReplicaFiles>) {
        // Closed after the locks are released: closing may sync.
        let mut evicted = Vec::new();
        let mut order = lock(&self.order);
        order.push_back((Arc::downgrade(replica), Arc::downgrade(files)));
        while order.len() > self.max_open {
            let Some((old_replica, old_files)) = order.pop_front() else { break };
            if let Some(old_replica) = old_replica.upgrade() {
                let mut slot = lock(&old_replica.files);
                if slot.as_ref().is_some_and(|f| Arc::as_ptr(f) == old_files.as_ptr()) {
                    evicted.extend(slot.take());
                }
            }
        }
        drop(order);
        drop(evicted);
    }
}

fn open_meta(path: &std::path::Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

// A panic while a lock is held cannot leave a half-updated `ChunkMeta` (it is
// changed only after the I/O it describes, in steps that do not panic), so
// poisoned locks are used as they are rather than failing every later call.

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}
