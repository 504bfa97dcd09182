//! Open files of the mount. Each inode open here has one writer, shared by
//! all its handles, so writes through different descriptors land in the
//! order they were made; each handle has its own reader (read-ahead is per
//! stream). A read first commits what this mount wrote to the inode, so a
//! process reads its own writes; a close commits too (close-to-open), and
//! the close of a handle that wrote first makes the chunks written since
//! the last sync durable on every replica (unless `-o nosync_close`).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use dfs_client::{Client, ClientError, FileReader, FileWriter};
use dfs_proto::wire::namespace::Attr;
use dfs_proto::InodeId;
use tokio::sync::Mutex as AsyncMutex;

use crate::cached::CachedPages;

/// Largest read served on a FUSE thread: random reads of pages and
/// records. Larger ones are the kernel's read-ahead of a stream (which may
/// arrive out of order on several threads); they are left to the reader's
/// read-ahead rather than risk its being dropped.
const SMALL_READ: u64 = 128 << 10;

/// One `open` of a file.
pub struct OpenFile {
    pub inode: InodeId,
    /// The reader, made at the first read, with the inode's write generation
    /// it was made at (a newer generation means it must be remade).
    reader: AsyncMutex<Option<(FileReader, u64)>>,
    /// Attributes at open (the file's chunk size and inode).
    attr: Attr,
    /// Written through this handle: its close makes the inode's writes
    /// durable (a close of a handle only read never waits for a sync).
    wrote: AtomicBool,
    /// A write through this handle has had the master take what a write
    /// takes away (setuid/setgid, capabilities).
    privileges_dropped: AtomicBool,
}

impl OpenFile {
    /// Whether this write must first have the master drop the file's
    /// privileges: the kernel asks for it (`kill_suidgid`: setuid/setgid
    /// and a writer without `CAP_FSETID`), or the file has extended
    /// attributes (a `security.capability` goes at any write). Once per
    /// handle; later writes are covered by the lease and the commit, which
    /// drop them again.
    pub fn first_write_drops_privileges(&self, kill_suidgid: bool) -> bool {
        (kill_suidgid || self.attr.has_xattrs) && !self.privileges_dropped.swap(true, Ordering::Relaxed)
    }
}

/// How much a commit of an inode's writes promises.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Commit {
    /// The length is committed: other clients see the bytes.
    Visible,
    /// And the chunks written since the last sync are on disk on every
    /// replica first (a close).
    Durable,
    /// And every chunk of the file is synced (fsync(2)).
    Fsync,
}

/// What the mount holds for an inode that is open here.
#[derive(Default)]
struct Inode {
    handles: u32,
    writer: Option<Arc<AsyncMutex<FileWriter>>>,
    /// End of bytes written here and not yet committed: `getattr` reports
    /// at least this size, as the kernel already does.
    pending_end: Option<u64>,
    /// Written here since the last sync (a commit for a read does not sync).
    unsynced: bool,
    /// Bumped by every write and truncate made here.
    generation: u64,
}

/// The open files and inodes of the mount.
pub struct OpenFiles {
    client: Client,
    next_fh: AtomicU64,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    inodes: Mutex<HashMap<InodeId, Inode>>,
    /// What the kernel's pages of each file hold.
    pub cached: CachedPages,
    /// This mount's session at the master, which holds its open files
    /// (a file unlinked while open lives on until its last close).
    session: String,
    /// The number of the session's last open (and create) sent.
    seq: AtomicU64,
    /// The numbers of opens sent whose file is not in `inodes` yet.
    in_flight: Arc<Mutex<BTreeSet<u64>>>,
}

/// An open (or create) under way: its number in the session, until the
/// file is registered here (or the open failed) and the ticket dropped.
pub struct OpenTicket {
    pub seq: u64,
    in_flight: Arc<Mutex<BTreeSet<u64>>>,
}

impl Drop for OpenTicket {
    fn drop(&mut self) {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.seq);
    }
}

impl OpenFiles {
    pub fn new(client: Client) -> Self {
        OpenFiles {
            client,
            next_fh: AtomicU64::new(1),
            files: Mutex::default(),
            inodes: Mutex::default(),
            cached: CachedPages::default(),
            session: uuid::Uuid::new_v4().to_string(),
            seq: AtomicU64::new(0),
            in_flight: Arc::default(),
        }
    }

    fn inodes(&self) -> MutexGuard<'_, HashMap<InodeId, Inode>> {
        self.inodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn files(&self) -> MutexGuard<'_, HashMap<u64, Arc<OpenFile>>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn session(&self) -> &str {
        &self.session
    }

    /// Numbers an open (or create) about to be sent to the master.
    pub fn begin_open(&self) -> OpenTicket {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        in_flight.insert(seq);
        OpenTicket { seq, in_flight: self.in_flight.clone() }
    }

    /// The files open here for the master (see `held.rs` there), as they
    /// stand after the open numbered with the second value: every open up
    /// to it has its file registered here already (or failed).
    pub fn open_inodes(&self) -> (Vec<InodeId>, u64) {
        let upto = {
            let in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            in_flight.first().map_or(self.seq.load(Ordering::SeqCst), |first| first - 1)
        };
        (self.inodes().keys().copied().collect(), upto)
    }

    /// Registers an open of the file with these (fresh) attributes.
    pub fn open(&self, attr: Attr) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.inodes().entry(attr.inode).or_default().handles += 1;
        let file =
            OpenFile { inode: attr.inode, reader: AsyncMutex::new(None), attr, wrote: AtomicBool::new(false), privileges_dropped: AtomicBool::new(false) };
        self.files().insert(fh, Arc::new(file));
        fh
    }

    pub fn get(&self, fh: u64) -> Option<Arc<OpenFile>> {
        self.files().get(&fh).cloned()
    }

    /// The size `getattr` reports, given the master's: never less than
    /// what this mount has written.
    pub fn visible_size(&self, inode: InodeId, master_size: u64) -> u64 {
        let pending = self.inodes().get(&inode).and_then(|i| i.pending_end);
        pending.map_or(master_size, |p| p.max(master_size))
    }

    /// Buffers a write; it is sent in the background and committed by the
    /// next flush (errors surface there or at a later write).
    pub async fn write(&self, file: &OpenFile, offset: u64, data: &[u8]) -> Result<(), ClientError> {
        let writer = {
            let mut inodes = self.inodes();
            let ino = inodes.entry(file.inode).or_default();
            ino.generation += 1;
            ino.unsynced = true;
            file.wrote.store(true, Ordering::Relaxed);
            let end = offset + data.len() as u64;
            ino.pending_end = Some(ino.pending_end.map_or(end, |p| p.max(end)));
            ino.writer.get_or_insert_with(|| Arc::new(AsyncMutex::new(self.client.writer(file.attr.clone(), 0)))).clone()
        };
        let mut w = writer.lock().await;
        w.seek(offset).await?;
        w.write(data).await
    }

    /// Commits what this mount wrote to the inode; returns the attributes
    /// after the commit when there was something to commit.
    pub async fn flush_inode(&self, inode: InodeId) -> Result<Option<Attr>, ClientError> {
        self.commit_inode(inode, Commit::Visible).await
    }

    /// Commits the inode's writes as `how` asks; `None` when this mount
    /// held nothing that needed it.
    async fn commit_inode(&self, inode: InodeId, how: Commit) -> Result<Option<Attr>, ClientError> {
        let (writer, generation) = match self.inodes().get(&inode) {
            Some(i) if needs_commit(how, i.pending_end.is_some(), i.unsynced) => (i.writer.clone(), i.generation),
            _ => return Ok(None),
        };
        let Some(writer) = writer else { return Ok(None) };
        let attr = {
            let mut w = writer.lock().await;
            match how {
                Commit::Visible => w.flush().await?,
                Commit::Durable => w.flush_durable().await?,
                Commit::Fsync => w.fsync().await?,
            }
            w.attr().clone()
        };
        self.cached.committed(inode, (attr.size, attr.mtime_ns));
        if let Some(i) = self.inodes().get_mut(&inode) {
            // A write that came in during the commit keeps its end pending
            // and its chunks unsynced.
            if i.generation == generation {
                i.pending_end = None;
                i.unsynced &= how == Commit::Visible;
            }
        }
        Ok(Some(attr))
    }

    /// Whether the close of this handle has work to do: writes to commit,
    /// or (when closes are durable) writes through it not yet synced. A
    /// close with nothing written is answered at once.
    pub fn close_needs_commit(&self, file: &OpenFile) -> bool {
        let durable = self.durable_close() && file.wrote.load(Ordering::Relaxed);
        self.inodes().get(&file.inode).is_some_and(|i| needs_commit(close_commit(durable), i.pending_end.is_some(), i.unsynced))
    }

    /// A close's flush: commits this mount's writes to the inode, durably
    /// when this handle wrote and closes are durable. Several flushes
    /// (dup'ed descriptors) sync only what was written since.
    pub async fn close_flush(&self, file: &OpenFile) -> Result<(), ClientError> {
        let durable = self.durable_close() && file.wrote.load(Ordering::Relaxed);
        self.commit_inode(file.inode, close_commit(durable)).await.map(|_| ())
    }

    fn durable_close(&self) -> bool {
        self.client.config().sync_on_close
    }

    /// Commits and makes every replica of the file sync to disk.
    pub async fn fsync(&self, file: &OpenFile) -> Result<(), ClientError> {
        if self.commit_inode(file.inode, Commit::Fsync).await?.is_some() {
            return Ok(());
        }
        // Nothing new written here: sync the file as the master has it now.
        let attr = self.client.master().stat_inode(file.inode).await?;
        self.client.fsync(&attr).await
    }

    /// Reads through this handle's reader, after committing this mount's
    /// writes to the inode; the reader is remade when they changed it.
    pub async fn read(&self, file: &OpenFile, offset: u64, len: u64) -> Result<Bytes, ClientError> {
        self.flush_inode(file.inode).await?;
        let generation = self.inodes().get(&file.inode).map_or(0, |i| i.generation);
        let mut slot = file.reader.lock().await;
        let stale = slot.as_ref().is_none_or(|(_, g)| *g != generation);
        if stale {
            // Attributes at open are current unless this mount wrote since.
            let attr = if generation == 0 { file.attr.clone() } else { self.client.master().stat_inode(file.inode).await? };
            *slot = Some((self.client.reader(attr), generation));
        }
        let Some((reader, _)) = slot.as_mut() else { return Ok(Bytes::new()) };
        reader.read_at(offset, len).await
    }

    /// Serves a small random read on the calling FUSE thread when nothing
    /// stands in the way: this mount has no writes pending on the inode, the
    /// handle's reader is current and idle, and the read is one the client
    /// can serve at once (`Client::read_now`). `None` means: use `read`.
    pub fn read_now(&self, file: &OpenFile, offset: u64, len: u64) -> Option<Bytes> {
        if len > SMALL_READ {
            return None;
        }
        let generation = match self.inodes().get(&file.inode) {
            Some(i) if i.pending_end.is_some() => return None,
            i => i.map_or(0, |i| i.generation),
        };
        let mut slot = file.reader.try_lock().ok()?;
        match slot.as_mut() {
            Some((reader, g)) if *g == generation => reader.read_now(offset, len),
            _ => None,
        }
    }

    /// Sets the file's length, after committing this mount's writes to it.
    pub async fn truncate(&self, inode: InodeId, size: u64) -> Result<Attr, ClientError> {
        self.flush_inode(inode).await?;
        let attr = self.client.master().stat_inode(inode).await?;
        let attr = self.client.truncate(&attr, size).await?;
        if let Some(i) = self.inodes().get_mut(&inode) {
            i.generation += 1;
            i.pending_end = None;
        }
        Ok(attr)
    }

    /// Commits every inode's pending writes (durably when closes are), at
    /// unmount.
    pub async fn flush_all(&self) {
        let how = close_commit(self.durable_close());
        let pending: Vec<InodeId> = self.inodes().iter().filter(|(_, i)| needs_commit(how, i.pending_end.is_some(), i.unsynced)).map(|(k, _)| *k).collect();
        for inode in pending {
            if let Err(e) = self.commit_inode(inode, how).await {
                tracing::error!(inode = %inode, error = %e, "writes lost at unmount");
            }
        }
    }

    /// Closes a handle; the last one of an inode commits its writes
    /// (durably when closes are: writes may come after the last flush,
    /// from a shared mapping, and the writer is dropped here).
    pub async fn release(&self, fh: u64) -> Result<(), ClientError> {
        let Some(file) = self.get(fh) else { return Ok(()) };
        let result = self.commit_inode(file.inode, close_commit(self.durable_close())).await;
        self.close(fh);
        result.map(|_| ())
    }

    /// Whether this mount holds writes to the inode not yet committed, or
    /// (when closes are durable) not yet synced: the last close's release
    /// has work to do.
    pub fn release_needs_commit(&self, inode: InodeId) -> bool {
        let how = close_commit(self.durable_close());
        self.inodes().get(&inode).is_some_and(|i| needs_commit(how, i.pending_end.is_some(), i.unsynced))
    }

    /// Forgets a handle without committing anything (`release` commits
    /// first). At the inode's last handle the inode is forgotten too (the
    /// master learns it at the next keepalive).
    pub fn close(&self, fh: u64) {
        let Some(file) = self.files().remove(&fh) else { return };
        let mut inodes = self.inodes();
        let Some(i) = inodes.get_mut(&file.inode) else { return };
        i.handles = i.handles.saturating_sub(1);
        if i.handles == 0 {
            inodes.remove(&file.inode);
        }
    }
}

/// What a close commits: durably, or only visibly.
fn close_commit(durable: bool) -> Commit {
    if durable {
        Commit::Durable
    } else {
        Commit::Visible
    }
}

/// Whether a commit of kind `how` has work for the writer, given whether
/// writes are uncommitted and whether writes are unsynced.
fn needs_commit(how: Commit, uncommitted: bool, unsynced: bool) -> bool {
    match how {
        Commit::Visible => uncommitted,
        Commit::Durable | Commit::Fsync => uncommitted || unsynced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_commits_what_is_pending_and_syncs_what_is_unsynced_only_when_durable() {
        // A read committed the writes (visible), the close must still sync.
        assert!(needs_commit(Commit::Durable, false, true));
        assert!(!needs_commit(Commit::Visible, false, true));
        // Nothing written (or all synced by an earlier flush): the fast path.
        assert!(!needs_commit(close_commit(true), false, false));
        assert!(!needs_commit(close_commit(false), false, false));
        assert!(needs_commit(close_commit(false), true, false));
        // An fsync with nothing new here syncs the file without the writer.
        assert!(!needs_commit(Commit::Fsync, false, false));
        assert!(needs_commit(Commit::Fsync, false, true));
    }
}
