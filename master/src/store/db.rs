//! Opening the RocksDB database and bootstrapping a new namespace; the
//! metadata log's replay, syncs and checkpoints.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use dfs_proto::wire::namespace::{Attr, FileKind};
use dfs_proto::{ErrorKind, InodeId};
use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DBPinnableSlice, Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions, DB};

use super::error::{fail, NsError};
use super::keys::*;
use super::metalog::{self, Damage, Loss, MetaLog, CAPACITY, LOG_FILE};
use super::pending::{KeyValue, Merged, Pending};
use super::records::{Counters, InodeRecord, FORMAT_VERSION};

/// Each column family's memtable size. RocksDB flushes a full memtable on
/// its own, and with its WAL off such a flush could put into the tables a
/// record the log does not hold yet (applied, not yet synced); replaying
/// the log over it after a crash would then set some of its keys back. So
/// the memtables are made larger than the log can fill: a record costs a
/// memtable less than three times its size in the log (a skiplist node
/// and an 8-byte sequence number per key, against the batch's few bytes),
/// and the log starts over, after a checkpoint, at [`CAPACITY`].
const MEMTABLE_BYTES: usize = 256 << 20;
const _: () = assert!(MEMTABLE_BYTES as u64 >= 4 * CAPACITY);

/// The open metadata database. Cheap to clone; safe to share between threads.
#[derive(Clone)]
pub struct Store {
    pub(crate) db: Arc<DB>,
    /// Written by the writer's leader only (`Txn::commit`, `sync`).
    log: Arc<Mutex<MetaLog>>,
    /// Called at each step of a checkpoint (tests take crash images there).
    #[cfg(test)]
    probe: Option<Probe>,
    /// Checkpoints when the last handle goes.
    _close: Arc<CheckpointOnClose>,
    /// A Raft leader writer's handle: its reads see these writes, and its
    /// transactions add to them instead of writing RocksDB (`pending.rs`).
    pending: Option<Arc<Mutex<Pending>>>,
}

/// A value read: pinned in RocksDB, or copied from the pending writes.
pub enum Value<'a> {
    Stored(DBPinnableSlice<'a>),
    Pending(Vec<u8>),
}

impl std::ops::Deref for Value<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Value::Stored(v) => v,
            Value::Pending(v) => v,
        }
    }
}

/// A clean stop ends with a checkpoint, so that the log then holds nothing:
/// RocksDB flushes its memtables into its tables when it closes, and a log
/// replayed (or truncated by `recover-log`) over tables newer than its
/// records would set keys back.
struct CheckpointOnClose {
    db: Arc<DB>,
    log: Arc<Mutex<MetaLog>>,
    /// Set once `open` has replayed the log and checkpointed: a store whose
    /// open failed before that (a replay cut short, a format this build
    /// does not read) is left as it was, its log to be replayed again,
    /// instead of a new epoch abandoning the records not yet replayed.
    armed: AtomicBool,
}

impl Drop for CheckpointOnClose {
    fn drop(&mut self) {
        if !self.armed.load(Ordering::Acquire) {
            return;
        }
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        match start_new_epoch(&self.db, &mut log, &mut |_| {}) {
            Ok(epoch) => tracing::info!(epoch, "metadata log checkpointed at close"),
            Err(e) => tracing::warn!(error = %e, "no checkpoint at close; the log is replayed at the next start"),
        }
    }
}

#[cfg(test)]
pub(crate) type Probe = Arc<Mutex<dyn FnMut(&'static str) + Send>>;
#[cfg(test)]
type ProbeArg = Probe;
#[cfg(not(test))]
type ProbeArg = std::convert::Infallible;

/// What opening does with a metadata log damaged in the middle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogRecovery {
    /// Refuse to open: acknowledged records would be dropped.
    #[default]
    Refuse,
    /// Truncate the log at the damaged record: replay the records before
    /// it, drop it and every record after it (`dfs-master recover-log --yes`).
    Truncate,
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Bytes of records the metadata log holds before it starts over.
    pub log_capacity: u64,
    pub recovery: LogRecovery,
    /// A new store's cluster id, when the masters of a Raft group each
    /// make their store before they have talked (else a random one). The
    /// root's times are then 0 as well, so that every new store is the same.
    pub cluster_id: Option<String>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { log_capacity: CAPACITY, recovery: LogRecovery::Refuse, cluster_id: None }
    }
}

/// Nanoseconds since the Unix epoch, now (defined beside the retry
/// cache's expiry, which db.rs imports and which must not import db.rs).
pub use super::expiry::now_ns;

impl Store {
    /// Opens (creating if needed) the namespace under `dir`. A new store gets
    /// a root directory, a fresh cluster id and the current format version; an
    /// existing one must have a format this build can read, and a metadata
    /// log that is not damaged in the middle.
    pub fn open(dir: &Path) -> Result<Store, NsError> {
        Store::open_with(dir, StoreOptions::default())
    }

    pub fn open_with(dir: &Path, options: StoreOptions) -> Result<Store, NsError> {
        Store::open_probed(dir, options, None)
    }

    pub(crate) fn open_probed(dir: &Path, options: StoreOptions, probe: Option<ProbeArg>) -> Result<Store, NsError> {
        std::fs::create_dir_all(dir).map_err(|e| NsError::new(ErrorKind::EIO, format!("cannot create {}: {e}", dir.display())))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_keep_log_file_num(4);
        let cfs = ALL_CFS.iter().map(|n| ColumnFamilyDescriptor::new(*n, cf_options(n, probe.is_some())));
        let db = DB::open_cf_descriptors(&opts, dir, cfs)?;
        let epoch = log_epoch(&db)?;
        let (log, scan) = MetaLog::open(dir, epoch, options.log_capacity).map_err(|e| io_error("open the metadata log", e))?;
        check_damage(dir, epoch, scan.damage, options.recovery)?;
        let (db, log) = (Arc::new(db), Arc::new(Mutex::new(log)));
        let store = Store {
            _close: Arc::new(CheckpointOnClose { db: db.clone(), log: log.clone(), armed: AtomicBool::new(false) }),
            db,
            log,
            #[cfg(test)]
            probe,
            pending: None,
        };
        for record in scan.payloads() {
            store.db.write_opt(WriteBatch::from_data(record), &no_wal())?;
        }
        tracing::info!(records = scan.len(), epoch, "metadata log replayed");
        if matches!(scan.damage, Damage::Middle(_)) {
            store.skip_lost_ids(scan.file_len())?;
        }
        drop(scan);
        store.bootstrap(options.cluster_id)?;
        // Everything replayed goes to RocksDB's tables, and the log starts
        // over: what a crash left half written can never be read as new.
        store.checkpoint(&mut store.log())?;
        store._close.armed.store(true, Ordering::Release);
        Ok(store)
    }

    /// Moves the inode and chunk allocators past every id that records
    /// dropped by a truncation may have handed out: clients and chunkservers
    /// may hold them (a replica of a lost file's chunk must stay unknown,
    /// to be collected, not become part of a new file). Each id a record
    /// allocates is written in a key of at least 8 bytes, so the log's
    /// records, `log_bytes` at most, allocated fewer than `log_bytes` ids.
    fn skip_lost_ids(&self, log_bytes: u64) -> Result<(), NsError> {
        let mut counters = self.counters()?;
        counters.skip_ids(log_bytes);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META)?, META_COUNTERS, counters.encode());
        self.db.write_opt(batch, &no_wal())?;
        tracing::warn!(next_inode = counters.next_inode, next_chunk = counters.next_chunk, "ids of the dropped records skipped");
        Ok(())
    }

    /// The metadata log; a poisoned lock is taken anyway (the log's state
    /// is only what was appended).
    pub(crate) fn log(&self) -> MutexGuard<'_, MetaLog> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a batch to RocksDB and appends it to the metadata log (not
    /// yet durable: see `sync`). When the record would not fit, the log
    /// starts over first: the records before it are written, the tables
    /// take them (checkpoint), and only then is the batch applied. So the
    /// tables never hold a batch the log does not (a crash between the
    /// flush and the new epoch replays the whole log over tables that are
    /// no newer than it, which ends where the log ends).
    pub(crate) fn write(&self, batch: WriteBatch) -> Result<(), NsError> {
        let record = batch.data().to_vec();
        let mut log = self.log();
        if !log.fits(record.len()) {
            log.sync().map_err(|e| io_error("write the metadata log", e))?;
            self.probe("synced");
            self.checkpoint(&mut log)?;
        }
        self.db.write_opt(batch, &no_wal())?;
        log.append(&record);
        Ok(())
    }

    /// Whether this is the only handle of the store (nothing else would
    /// notice it closed).
    pub fn only_handle(&self) -> bool {
        Arc::strong_count(&self._close) == 1
    }

    /// Flushes RocksDB's memtables to its tables, records a new epoch and
    /// starts the log over (when a record would not fit, and at every open).
    pub(super) fn checkpoint(&self, log: &mut MetaLog) -> Result<(), NsError> {
        let epoch = start_new_epoch(&self.db, log, &mut |step| self.probe(step))?;
        tracing::debug!(epoch, "metadata log started over");
        Ok(())
    }

    /// Tells a test's probe which step of a checkpoint was just done.
    fn probe(&self, #[cfg_attr(not(test), expect(unused_variables, reason = "only tests have a probe to tell"))] step: &'static str) {
        #[cfg(test)]
        if let Some(p) = &self.probe {
            (p.lock().unwrap_or_else(|e| e.into_inner()))(step);
        }
    }

    pub(crate) fn cf(&self, name: &str) -> Result<&ColumnFamily, NsError> {
        cf(&self.db, name)
    }

    fn bootstrap(&self, cluster_id: Option<String>) -> Result<(), NsError> {
        let meta = self.cf(CF_META)?;
        if let Some(v) = self.db.get_cf(meta, META_FORMAT_VERSION)? {
            let found = <[u8; 4]>::try_from(v.as_slice()).map(u32::from_be_bytes).unwrap_or(0);
            if found != FORMAT_VERSION {
                return fail(ErrorKind::EIO, format!("metadata format {found}, this build reads {FORMAT_VERSION}"));
            }
            return Ok(());
        }
        let now = if cluster_id.is_some() { 0 } else { now_ns() };
        let root = InodeRecord {
            attr: Attr {
                inode: InodeId::ROOT,
                kind: FileKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                size: 0,
                atime_ns: now,
                mtime_ns: now,
                ctime_ns: now,
                nlink: 2,
                replication: 0,
                chunk_size_bytes: 0,
                parent: InodeId::ROOT,
                rdev: 0,
                has_xattrs: false,
            },
            symlink_target: String::new(),
        };
        let counters = Counters { directories: 1, next_inode: InodeId::ROOT.0 + 1, next_chunk: 1, ..Default::default() };
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_INODES)?, inode_key(InodeId::ROOT), root.encode());
        batch.put_cf(meta, META_CLUSTER_ID, cluster_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()));
        batch.put_cf(meta, META_COUNTERS, counters.encode());
        batch.put_cf(meta, META_FORMAT_VERSION, FORMAT_VERSION.to_be_bytes());
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.db.write_opt(batch, &sync)?;
        Ok(())
    }

    pub fn cluster_id(&self) -> Result<String, NsError> {
        match self.read(CF_META, META_CLUSTER_ID)? {
            Some(v) => String::from_utf8(v.to_vec()).map_err(|_| NsError::new(ErrorKind::EIO, "corrupt cluster id")),
            None => fail(ErrorKind::EIO, "cluster id missing"),
        }
    }

    pub fn counters(&self) -> Result<Counters, NsError> {
        match self.read(CF_META, META_COUNTERS)? {
            Some(v) => Counters::decode(&v),
            None => fail(ErrorKind::EIO, "counters missing"),
        }
    }

    /// A handle of this store for a Raft leader's writer: it reads through
    /// `pending`, and its transactions add their writes there instead of
    /// writing RocksDB (see `pending.rs`).
    pub fn with_pending(&self, pending: Arc<Mutex<Pending>>) -> Store {
        Store { pending: Some(pending), ..self.clone() }
    }

    /// Every pending write as one batch, and the pending writes emptied:
    /// what a group's Raft entry carries, written to RocksDB by every
    /// master (this one too) when the entry commits.
    pub fn take_pending(&self) -> Result<WriteBatch, NsError> {
        let Some(mut pending) = self.pending() else { return fail(ErrorKind::EIO, "this store handle has no pending writes") };
        let mut batch = WriteBatch::default();
        for (cf, key, value) in pending.writes() {
            match value {
                Some(v) => batch.put_cf(self.cf(cf)?, key, v),
                None => batch.delete_cf(self.cf(cf)?, key),
            }
        }
        *pending = Pending::default();
        Ok(batch)
    }

    /// Whether this handle reads through (and writes to) pending writes.
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// The pending writes this handle reads through and writes to, if any.
    pub(crate) fn pending(&self) -> Option<MutexGuard<'_, Pending>> {
        self.pending.as_ref().map(|p| p.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// `key`'s value in `cf`, through this handle's pending writes.
    pub(crate) fn read(&self, cf: &'static str, key: &[u8]) -> Result<Option<Value<'_>>, NsError> {
        if let Some(written) = self.pending().and_then(|p| p.get(cf, key).map(|v| v.map(<[u8]>::to_vec))) {
            return Ok(written.map(Value::Pending));
        }
        Ok(self.db.get_pinned_cf(self.cf(cf)?, key)?.map(Value::Stored))
    }

    /// `cf` from `from` on, in key order, through this handle's pending
    /// writes; with `below`, RocksDB stops before that key (callers stop
    /// at the end of their prefix anyway: this spares it the scan past).
    pub(crate) fn scan(
        &self,
        cf: &'static str,
        from: &[u8],
        below: Option<Vec<u8>>,
    ) -> Result<impl Iterator<Item = Result<KeyValue, rocksdb::Error>> + '_, NsError> {
        let written = self.pending().map(|p| p.from(cf, from)).unwrap_or_default();
        let mut options = ReadOptions::default();
        if let Some(below) = below {
            options.set_iterate_upper_bound(below);
        }
        let stored = self.db.iterator_cf_opt(self.cf(cf)?, options, IteratorMode::From(from, Direction::Forward));
        Ok(Merged::new(stored, written))
    }

    /// Makes every write so far durable: one synchronous write of the log's
    /// new records (which fit: `write` saw to it).
    pub fn sync(&self) -> Result<(), NsError> {
        self.log().sync().map_err(|e| io_error("write the metadata log", e))
    }
}

fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a ColumnFamily, NsError> {
    match db.cf_handle(name) {
        Some(cf) => Ok(cf),
        None => fail(ErrorKind::EIO, format!("column family {name} missing")),
    }
}

/// The checkpoint: flushes every memtable into RocksDB's tables, records
/// the next epoch (synced) and starts the log over; returns the epoch.
/// `step` hears of each step done.
fn start_new_epoch(db: &DB, log: &mut MetaLog, step: &mut dyn FnMut(&'static str)) -> Result<u64, NsError> {
    for name in ALL_CFS {
        db.flush_cf(cf(db, name)?)?;
    }
    step("flushed");
    let epoch = log_epoch(db)? + 1;
    let mut batch = WriteBatch::default();
    batch.put_cf(cf(db, CF_META)?, META_LOG_EPOCH, epoch.to_be_bytes());
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    db.write_opt(batch, &sync)?;
    step("epoch recorded");
    log.start_over(epoch);
    Ok(epoch)
}

fn no_wal() -> WriteOptions {
    let mut o = WriteOptions::default();
    o.disable_wal(true);
    o
}

fn io_error(what: &str, e: std::io::Error) -> NsError {
    NsError::new(ErrorKind::EIO, format!("cannot {what}: {e}"))
}

/// The metadata log's epoch as recorded in RocksDB (1 before any).
fn log_epoch(db: &DB) -> Result<u64, NsError> {
    let Some(meta) = db.cf_handle(CF_META) else { return fail(ErrorKind::EIO, "column family meta missing") };
    Ok(match db.get_cf(meta, META_LOG_EPOCH)? {
        Some(v) => <[u8; 8]>::try_from(v.as_slice()).map(u64::from_be_bytes).map_err(|_| NsError::new(ErrorKind::EIO, "corrupt log epoch"))?,
        None => 1,
    })
}

/// Options of each column family (`tests` stops compactions, so that a
/// copy of the directory taken while the store is open is one RocksDB can
/// open, as after a SIGKILL).
fn cf_options(name: &str, #[cfg_attr(not(test), expect(unused_variables, reason = "only tests take crash images"))] for_crash_images: bool) -> Options {
    let mut o = Options::default();
    o.set_write_buffer_size(MEMTABLE_BYTES);
    if name == CF_RETRIES {
        o.set_compaction_filter("dfs-retry-expiry", super::expiry::drop_expired);
        // Almost every lookup misses (a call's first try): a bloom filter
        // spares each table flushed at a checkpoint a probe.
        let mut tables = rocksdb::BlockBasedOptions::default();
        tables.set_bloom_filter(10.0, false);
        o.set_block_based_table_factory(&tables);
    }
    #[cfg(test)]
    o.set_disable_auto_compactions(for_crash_images);
    o
}

/// Goes on past a torn last group (with a warning), refuses damage in the
/// middle unless told to truncate there.
fn check_damage(dir: &Path, epoch: u64, damage: Damage, recovery: LogRecovery) -> Result<(), NsError> {
    let file = dir.join(LOG_FILE);
    let file = file.display();
    match damage {
        Damage::None => Ok(()),
        Damage::TornTail(l) => {
            tracing::warn!(%file, epoch, offset = l.offset, records = l.records(), bytes = l.bytes,
                "metadata log: dropped a torn last group (a crash during its write; none of it was acknowledged)");
            Ok(())
        }
        Damage::Middle(l) if recovery == LogRecovery::Truncate => {
            tracing::warn!(%file, epoch, offset = l.offset, records = l.records(), readable = l.readable, bytes = l.bytes,
                first_seq = l.first_seq, last_seq = l.last_seq, "metadata log: truncated at a damaged record, as asked");
            Ok(())
        }
        Damage::Middle(l) => fail(ErrorKind::EIO, damaged_in_the_middle(dir, &l)),
    }
}

/// The one line a master refusing to start prints.
pub fn damaged_in_the_middle(dir: &Path, l: &Loss) -> String {
    format!(
        "metadata log {} is damaged at offset {}: record {} does not check out and {} valid records written after it follow; \
         refusing to start rather than drop them; `dfs-master --data-dir {} recover-log` shows what truncating the log there would lose",
        dir.join(LOG_FILE).display(),
        l.offset,
        l.first_seq,
        l.readable,
        dir.display()
    )
}

/// The metadata log's epoch and what lies past its readable records, read
/// without changing anything (RocksDB opened read-only).
pub fn inspect_log(dir: &Path) -> Result<(u64, usize, Damage), NsError> {
    // Only the families there are: a store an older build made lacks the newer ones.
    let present = DB::list_cf(&Options::default(), dir)?;
    let db = DB::open_cf_for_read_only(&Options::default(), dir, present, false)?;
    let epoch = log_epoch(&db)?;
    let scan = metalog::inspect(dir, epoch).map_err(|e| io_error("read the metadata log", e))?;
    Ok((epoch, scan.len(), scan.damage))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use dfs_proto::wire::namespace::{CreateRequest, EntryRef, MkdirRequest};

    use super::*;
    use crate::store::perms::Who;
    use crate::store::{Mutation, Writer, WriterConfig};

    /// A copy of the data directory as a SIGKILL at this moment would leave
    /// it: RocksDB's files (its memtables are not on disk) and the log.
    fn crash_image(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            // A file RocksDB removed meanwhile was obsolete.
            let _ = std::fs::copy(entry.path(), to.join(entry.file_name()));
        }
    }

    /// The path of the `i`th mutation of the workload: every fifth a
    /// directory, the others files in the last directory made.
    fn path_of(i: usize) -> String {
        let dir = format!("/d{}", i / 5);
        if i.is_multiple_of(5) {
            dir
        } else {
            format!("{dir}/f{i}")
        }
    }

    fn mutation(i: usize) -> Mutation {
        let at = EntryRef::path(path_of(i));
        match i % 5 {
            0 => Mutation::Mkdir(MkdirRequest { at, ..Default::default() }),
            _ => Mutation::Create(CreateRequest { at, exclusive: true, ..Default::default() }),
        }
    }

    /// Fills a small log several times over, taking a crash image at every
    /// step of every checkpoint (those that run when a record does not fit,
    /// and those at open: the second round opens a crash image of the first,
    /// with records to replay); each image must open to a consistent
    /// namespace that holds every mutation acknowledged before it was taken.
    #[tokio::test]
    async fn a_crash_at_any_step_of_a_checkpoint_loses_nothing_acknowledged() {
        let images = tempfile::tempdir().unwrap();
        let live = Arc::new(Mutex::new(images.path().join("live")));
        let acked = Arc::new(AtomicUsize::new(0));
        // Each image: where, after which step, with how many acknowledged.
        type Images = Vec<(PathBuf, &'static str, usize)>;
        let taken: Arc<Mutex<Images>> = Arc::default();
        let take = {
            let (live, to, acked, taken) = (live.clone(), images.path().to_path_buf(), acked.clone(), taken.clone());
            move |step: &'static str| {
                let mut taken = taken.lock().unwrap();
                let image = to.join(taken.len().to_string());
                crash_image(&live.lock().unwrap(), &image);
                taken.push((image.clone(), step, acked.load(Ordering::SeqCst)));
                image
            }
        };
        let probe: Probe = {
            let take = take.clone();
            Arc::new(Mutex::new(move |step| drop(take(step))))
        };
        let options = StoreOptions { log_capacity: 16 << 10, ..Default::default() };
        const N: usize = 400;
        for round in 0..2 {
            let dir = live.lock().unwrap().clone();
            let store = Store::open_probed(&dir, options.clone(), Some(probe.clone())).unwrap();
            let config = WriterConfig::for_tests();
            let writer = Writer::start(store, config).unwrap();
            for i in round * N / 2..(round + 1) * N / 2 {
                writer.submit(mutation(i)).await.unwrap_or_else(|e| panic!("{}: {e}", path_of(i)));
                acked.store(i + 1, Ordering::SeqCst);
            }
            // The next round starts where a SIGKILL now would leave it.
            *live.lock().unwrap() = take("killed");
            writer.close();
        }
        let taken = std::mem::take(&mut *taken.lock().unwrap());
        let full = taken.iter().filter(|(_, step, n)| *step == "synced" && *n > 0 && *n < N).count();
        assert!(full >= 5, "the log started over {full} times while mutations went on");
        for (image, step, acked) in taken {
            let store = Store::open(&image).unwrap_or_else(|e| panic!("image after {step} with {acked} acknowledged: {e}"));
            let report = store.check().unwrap();
            assert!(report.ok, "image after {step} with {acked} acknowledged: {:?}", report.problems);
            for i in 0..acked {
                assert!(store.resolve_path(&path_of(i), &Who::root()).is_ok(), "image after {step}: {} acknowledged, missing", path_of(i));
            }
        }
    }

    /// RocksDB flushes its memtables when it closes: a log left with
    /// records would later be replayed (or truncated) over newer tables.
    #[tokio::test]
    async fn a_clean_close_leaves_nothing_to_replay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let config = WriterConfig::for_tests();
        let writer = Writer::start(store.clone(), config).unwrap();
        for i in 0..10 {
            writer.submit(mutation(i)).await.unwrap();
        }
        writer.close();
        drop((writer, store));
        let (_, records, damage) = inspect_log(dir.path()).unwrap();
        assert_eq!((records, damage), (0, Damage::None));
        let store = Store::open(dir.path()).unwrap();
        assert!(store.resolve_path(&path_of(9), &Who::root()).is_ok());
    }

    /// The log's epoch as recorded in RocksDB, read with the store closed.
    fn epoch_on_disk(dir: &Path) -> u64 {
        let db = DB::open_cf_for_read_only(&Options::default(), dir, ALL_CFS, false).unwrap();
        log_epoch(&db).unwrap()
    }

    /// An open that fails (here: a format this build does not read) leaves
    /// the store as it found it: no checkpoint at close records a new epoch.
    #[test]
    fn a_failed_open_does_not_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        {
            let db = DB::open_cf(&Options::default(), dir.path(), ALL_CFS).unwrap();
            let mut sync = WriteOptions::default();
            sync.set_sync(true);
            db.put_cf_opt(cf(&db, CF_META).unwrap(), META_FORMAT_VERSION, (FORMAT_VERSION + 1).to_be_bytes(), &sync).unwrap();
        }
        let before = epoch_on_disk(dir.path());
        assert!(Store::open(dir.path()).is_err(), "a format this build does not read");
        assert_eq!(epoch_on_disk(dir.path()), before, "the failed open recorded a new epoch");
    }
}
