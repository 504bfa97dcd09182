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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use dfs_common::ChunkHandle;

use super::aligned::DataFile;
use super::disk_layout::DiskLayout;
use super::error::ChunkError;
use super::meta::ChunkMeta;

/// A replica known to the store.
pub(crate) struct Replica {
    pub handle: ChunkHandle,
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
}

/// A replica's open data and metadata files.
pub(crate) struct ReplicaFiles {
    /// Writes (O_DIRECT where allowed) and the scrubber's reads (from disk).
    pub data: DataFile,
    /// Client reads, through the page cache so hot chunks are served from
    /// memory. Coherent with direct writes: a replica's reads and writes are
    /// serialized by its state lock, and a direct write drops cached pages.
    pub cached: DataFile,
    pub meta: File,
}

impl Replica {
    pub fn new(handle: ChunkHandle, meta: ChunkMeta) -> Replica {
        Replica { handle, state: RwLock::new(ReplicaState { meta, gone: false }), files: Mutex::new(None) }
    }
}

/// Keeps the files of at most `max_open` replicas open, closing the least
/// recently opened first, so that a server with many chunks stays under its
/// descriptor limit while busy chunks skip two opens per call. A handle in
/// use when evicted stays open until that call drops its `Arc`.
pub(crate) struct OpenFiles {
    max_open: usize,
    try_direct: AtomicBool,
    /// In opening order; an entry whose files were since closed is stale
    /// and simply dropped when it reaches the front.
    order: Mutex<VecDeque<(Weak<Replica>, Weak<ReplicaFiles>)>>,
}

impl OpenFiles {
    /// `max_open` must be at least 1.
    pub fn new(max_open: usize, direct_io: bool) -> OpenFiles {
        OpenFiles { max_open, try_direct: AtomicBool::new(direct_io), order: Mutex::new(VecDeque::new()) }
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
        let files = Arc::new(self.open(replica.handle, layout)?);
        *slot = Some(Arc::clone(&files));
        drop(slot);
        self.remember(replica, &files);
        Ok(files)
    }

    /// The replica's files if they are open already (opening may block).
    pub fn get_open(&self, replica: &Replica) -> Option<Arc<ReplicaFiles>> {
        lock(&replica.files).clone()
    }

    /// Forgets the replica's files (they close once no call uses them).
    pub fn close(&self, replica: &Replica) {
        lock(&replica.files).take();
    }

    fn open(&self, handle: ChunkHandle, layout: &DiskLayout) -> Result<ReplicaFiles, ChunkError> {
        let data_path = layout.data_path(handle);
        let data =
            DataFile::open(&data_path, false, self.direct_io()).map_err(|e| ChunkError::io("open", &data_path, e))?;
        if !data.is_direct() {
            self.try_direct.store(false, Ordering::Relaxed);
        }
        let cached = DataFile::open(&data_path, false, false).map_err(|e| ChunkError::io("open", &data_path, e))?;
        cached.advise_random();
        let meta_path = layout.meta_path(handle);
        let meta = open_meta(&meta_path).map_err(|e| ChunkError::io("open", &meta_path, e))?;
        Ok(ReplicaFiles { data, cached, meta })
    }

    fn remember(&self, replica: &Arc<Replica>, files: &Arc<ReplicaFiles>) {
        let mut order = lock(&self.order);
        order.push_back((Arc::downgrade(replica), Arc::downgrade(files)));
        while order.len() > self.max_open {
            let Some((old_replica, old_files)) = order.pop_front() else { break };
            if let Some(old_replica) = old_replica.upgrade() {
                let mut slot = lock(&old_replica.files);
                if slot.as_ref().is_some_and(|f| Arc::as_ptr(f) == old_files.as_ptr()) {
                    slot.take();
                }
            }
        }
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
