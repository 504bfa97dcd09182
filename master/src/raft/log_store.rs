//! The Raft log on disk: entries, the vote and the committed log id, in a
//! RocksDB of their own with its write-ahead log on. The namespace store
//! keeps its own scheme (RocksDB's WAL off, the metadata log): the Raft log
//! is written by every master, the store only by applying committed entries.
//!
//! Durability, as Raft needs it: an entry counts for a quorum only once it is
//! on disk, and a vote is never forgotten (else a node can vote twice in one
//! term). So `save_vote` returns after a synced write, and `append` writes
//! its entries without a sync and hands its acknowledgement to the
//! [`Flusher`], one thread that syncs the WAL once for every acknowledgement
//! queued meanwhile and then acknowledges them in order: concurrent
//! proposals (openraft appends the leader's entries as they come) and the
//! batches a follower receives share one sync, the group commit the
//! metadata log did for a single master. RocksDB's WAL is one ordered file,
//! so a synced append also carries every truncation and purge written
//! before it.
//!
//! After a failed sync nothing is acknowledged again (the kernel may have
//! dropped the unsynced pages, and a later sync would not say so): the
//! store answers every write with an error, and openraft stops the node.
//!
//! Keys: the log column family maps an index (8 bytes, big-endian, so
//! RocksDB's order is the log's) to the entry; the meta column family holds
//! the vote, the committed log id and the last purged log id. Values are
//! JSON (serde), the vote and log ids as openraft defines them.
//!
//! Recovery mode: a torn last record (a crash during a write nobody was
//! acknowledged for) is dropped; damage before the tail stops the open
//! instead of silently cutting the log there, since the records after it
//! may have been acknowledged (RocksDB's `TolerateCorruptedTailRecords`).

#![allow(clippy::result_large_err, reason = "openraft's storage traits return its StorageError, and the helpers here return what they do")]

use std::fmt::Debug;
use std::io;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, LogId, OptionalSend, RaftLogReader, RaftTypeConfig, StorageError, StorageIOError, Vote};
use rocksdb::{ColumnFamilyDescriptor, DBRecoveryMode, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

const CF_LOG: &str = "raft-log";
const CF_META: &str = "raft-meta";
const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_PURGED: &[u8] = b"purged";

/// What a node id is among the masters.
pub type NodeId = u64;
type Error = StorageError<NodeId>;

/// Called once the entries of one append are on disk, or could not be.
pub type Acknowledge = Box<dyn FnOnce(io::Result<()>) + Send>;

/// The Raft log of one master. `C` is the group's type configuration; its
/// entries travel as JSON.
pub struct LogStore<C> {
    db: Arc<DB>,
    flusher: Flusher,
    _config: PhantomData<fn() -> C>,
}

/// A reader of the log for openraft's replication tasks; it shares the
/// store's RocksDB.
pub struct LogReader<C> {
    db: Arc<DB>,
    _config: PhantomData<fn() -> C>,
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig<NodeId = NodeId>,
    C::Entry: Serialize + DeserializeOwned,
{
    /// Opens (making, if needed) the log in `dir`.
    pub fn open(dir: &Path) -> Result<LogStore<C>, Error> {
        let db = Arc::new(open_db(dir).map_err(|e| StorageIOError::read_logs(&e))?);
        let flusher = Flusher::start(Arc::clone(&db)).map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(LogStore { db, flusher, _config: PhantomData })
    }

    /// Writes `entries` and calls `done` once they are on disk (after the
    /// sync that covers them; in the order of the calls). What
    /// [`RaftLogStorage::append`] does with openraft's callback.
    pub fn append_then<I>(&self, entries: I, done: Acknowledge) -> Result<(), Error>
    where
        I: IntoIterator<Item = C::Entry>,
    {
        self.flusher.check()?;
        let log = cf(&self.db, CF_LOG);
        let mut batch = WriteBatch::default();
        for entry in entries {
            let index = openraft::RaftLogId::get_log_id(&entry).index;
            let value = serde_json::to_vec(&entry).map_err(|e| StorageIOError::write_logs(&e))?;
            batch.put_cf(log, index.to_be_bytes(), value);
        }
        self.db.write_opt(batch, &unsynced()).map_err(|e| StorageIOError::write_logs(&e))?;
        self.flusher.enqueue(done)
    }

    /// How many syncs of the log acknowledged appends so far (fewer than
    /// the appends when they were grouped).
    pub fn syncs(&self) -> u64 {
        self.flusher.syncs.load(Ordering::Relaxed)
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, AnyError> {
        read_meta(&self.db, key)
    }

    fn write_meta<T: Serialize>(&self, key: &[u8], value: &T, sync: bool) -> Result<(), AnyError> {
        self.flusher.check().map_err(|e| AnyError::new(&e))?;
        let bytes = serde_json::to_vec(value).map_err(|e| AnyError::new(&e))?;
        let options = if sync { synced() } else { unsynced() };
        self.db.put_cf_opt(cf(&self.db, CF_META), key, bytes, &options).map_err(|e| AnyError::new(&e))
    }
}

impl<C> RaftLogReader<C> for LogStore<C>
where
    C: RaftTypeConfig<NodeId = NodeId>,
    C::Entry: Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(&mut self, range: RB) -> Result<Vec<C::Entry>, Error> {
        read_entries::<C, _>(&self.db, range)
    }
}

impl<C> RaftLogReader<C> for LogReader<C>
where
    C: RaftTypeConfig<NodeId = NodeId>,
    C::Entry: Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(&mut self, range: RB) -> Result<Vec<C::Entry>, Error> {
        read_entries::<C, _>(&self.db, range)
    }
}

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: RaftTypeConfig<NodeId = NodeId>,
    C::Entry: Serialize + DeserializeOwned,
{
    type LogReader = LogReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, Error> {
        let last_purged_log_id: Option<LogId<NodeId>> = self.read_meta(KEY_PURGED).map_err(StorageIOError::read_logs)?;
        let last = self.db.iterator_cf(cf(&self.db, CF_LOG), IteratorMode::End).next();
        let last_log_id = match last {
            Some(item) => {
                let (_, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
                let entry: C::Entry = serde_json::from_slice(&value).map_err(|e| StorageIOError::read_logs(&e))?;
                Some(*openraft::RaftLogId::get_log_id(&entry))
            }
            None => last_purged_log_id,
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> LogReader<C> {
        LogReader { db: Arc::clone(&self.db), _config: PhantomData }
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), Error> {
        Ok(self.write_meta(KEY_VOTE, vote, true).map_err(StorageIOError::write_vote)?)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, Error> {
        Ok(self.read_meta(KEY_VOTE).map_err(StorageIOError::read_vote)?)
    }

    /// Not synced: the committed id is a hint that lets a restarted node
    /// apply sooner; a lost one is learned again from the leader.
    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), Error> {
        Ok(self.write_meta(KEY_COMMITTED, &committed, false).map_err(StorageIOError::write)?)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, Error> {
        let committed: Option<Option<LogId<NodeId>>> = self.read_meta(KEY_COMMITTED).map_err(StorageIOError::read)?;
        Ok(committed.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<C>) -> Result<(), Error>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.append_then(entries, Box::new(move |synced| callback.log_io_completed(synced)))
    }

    /// Removes the entries from `log_id` on (a follower's conflicting,
    /// uncommitted tail), synced: it is rare, and entries must not come back
    /// after a crash to be taken for the new leader's.
    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), Error> {
        self.flusher.check()?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf(&self.db, CF_LOG), log_id.index.to_be_bytes(), u64::MAX.to_be_bytes());
        batch.delete_cf(cf(&self.db, CF_LOG), u64::MAX.to_be_bytes());
        self.db.write_opt(batch, &synced()).map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    /// Drops the entries up to `log_id` (in a snapshot now) and records it
    /// in the same batch; not synced (a crash brings back entries already
    /// applied, which is harmless; the next append's sync carries it).
    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), Error> {
        self.flusher.check()?;
        let mut batch = WriteBatch::default();
        let value = serde_json::to_vec(&log_id).map_err(|e| StorageIOError::write_logs(&e))?;
        batch.put_cf(cf(&self.db, CF_META), KEY_PURGED, value);
        let end = log_id.index.checked_add(1).ok_or_else(|| StorageIOError::write_logs(AnyError::error("purge beyond the last index")))?;
        batch.delete_range_cf(cf(&self.db, CF_LOG), 0u64.to_be_bytes(), end.to_be_bytes());
        self.db.write_opt(batch, &unsynced()).map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}

/// The thread that syncs the WAL for queued acknowledgements, and the
/// flag it raises when a sync fails.
struct Flusher {
    /// `None` once dropped: the thread then answers what is queued and ends.
    queue: Option<mpsc::Sender<Acknowledge>>,
    thread: Option<std::thread::JoinHandle<()>>,
    failed: Arc<AtomicBool>,
    syncs: Arc<AtomicU64>,
}

impl Flusher {
    fn start(db: Arc<DB>) -> io::Result<Flusher> {
        let (queue, waiting) = mpsc::channel::<Acknowledge>();
        let failed = Arc::new(AtomicBool::new(false));
        let syncs = Arc::new(AtomicU64::new(0));
        let (flag, count) = (Arc::clone(&failed), Arc::clone(&syncs));
        let thread = std::thread::Builder::new().name("raft-log-sync".into()).spawn(move || flush_loop(&db, &waiting, &flag, &count))?;
        Ok(Flusher { queue: Some(queue), thread: Some(thread), failed, syncs })
    }

    fn check(&self) -> Result<(), Error> {
        if self.failed.load(Ordering::Acquire) {
            return Err(StorageIOError::write_logs(AnyError::error("a sync of the Raft log failed before: nothing is acknowledged any more")).into());
        }
        Ok(())
    }

    fn enqueue(&self, done: Acknowledge) -> Result<(), Error> {
        let queue = self.queue.as_ref().expect("the queue is only taken by drop");
        queue.send(done).map_err(|_| StorageIOError::write_logs(AnyError::error("the Raft log's sync thread is gone")).into())
    }
}

/// Joined on drop, so that the store's RocksDB (and its lock) is closed
/// when the store is gone and the log's readers are.
impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the Raft log's sync thread panicked");
            }
        }
    }
}

/// Until the store is dropped: takes every acknowledgement queued, syncs
/// once, answers them in order.
fn flush_loop(db: &DB, waiting: &mpsc::Receiver<Acknowledge>, failed: &AtomicBool, syncs: &AtomicU64) {
    while let Ok(first) = waiting.recv() {
        let mut group = vec![first];
        group.extend(waiting.try_iter());
        let synced = if failed.load(Ordering::Acquire) {
            Err(io::Error::other("a sync of the Raft log failed before"))
        } else {
            syncs.fetch_add(1, Ordering::Relaxed);
            db.flush_wal(true).map_err(|e| io::Error::other(e.into_string()))
        };
        if let Err(e) = &synced {
            tracing::error!(error = %e, "the Raft log could not be synced: this master acknowledges no more writes");
            failed.store(true, Ordering::Release);
        }
        for done in group {
            done(synced.as_ref().map(|_| ()).map_err(|e| io::Error::new(e.kind(), e.to_string())));
        }
    }
}

fn open_db(dir: &Path) -> Result<DB, rocksdb::Error> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_wal_recovery_mode(DBRecoveryMode::TolerateCorruptedTailRecords);
    options.set_keep_log_file_num(4);
    let families = [CF_LOG, CF_META].map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
    DB::open_cf_descriptors(&options, dir, families)
}

fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name).expect("the Raft log's column families are made at open")
}

fn read_meta<T: DeserializeOwned>(db: &DB, key: &[u8]) -> Result<Option<T>, AnyError> {
    match db.get_cf(cf(db, CF_META), key).map_err(|e| AnyError::new(&e))? {
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| AnyError::new(&e)),
        None => Ok(None),
    }
}

/// The entries whose index lies in `range`, in order.
fn read_entries<C, RB>(db: &DB, range: RB) -> Result<Vec<C::Entry>, Error>
where
    C: RaftTypeConfig<NodeId = NodeId>,
    C::Entry: DeserializeOwned,
    RB: RangeBounds<u64>,
{
    let start = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => match i.checked_add(1) {
            Some(i) => i,
            None => return Ok(Vec::new()),
        },
        Bound::Unbounded => 0,
    };
    let mut entries = Vec::new();
    let from = start.to_be_bytes();
    for item in db.iterator_cf(cf(db, CF_LOG), IteratorMode::From(&from, Direction::Forward)) {
        let (key, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
        let index = u64::from_be_bytes(key.as_ref().try_into().map_err(|_| StorageIOError::read_logs(AnyError::error("a Raft log key is not 8 bytes")))?);
        if !range.contains(&index) {
            break;
        }
        entries.push(serde_json::from_slice(&value).map_err(|e| StorageIOError::read_log_at_index(index, &e))?);
    }
    Ok(entries)
}

fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

fn unsynced() -> WriteOptions {
    WriteOptions::default()
}

#[cfg(test)]
mod tests;
