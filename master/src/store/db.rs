//! Opening the RocksDB database and bootstrapping a new namespace.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use dfs_common::wire::namespace::{Attr, FileKind};
use dfs_common::{ErrorKind, InodeId};
use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

use super::error::{fail, NsError};
use super::keys::*;
use super::metalog::MetaLog;
use super::records::{Counters, InodeRecord, FORMAT_VERSION};

/// The open metadata database. Cheap to clone; safe to share between threads.
#[derive(Clone)]
pub struct Store {
    pub(crate) db: Arc<DB>,
    /// Written by the writer's leader only (`Txn::commit`, `sync`).
    log: Arc<Mutex<MetaLog>>,
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) the namespace under `dir`. A new store gets
    /// a root directory, a fresh cluster id and the current format version; an
    /// existing one must have a format this build can read.
    pub fn open(dir: &Path) -> Result<Store, NsError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| NsError::new(ErrorKind::EIO, format!("cannot create {}: {e}", dir.display())))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_keep_log_file_num(4);
        let cfs = ALL_CFS.iter().map(|n| ColumnFamilyDescriptor::new(*n, Options::default()));
        let db = DB::open_cf_descriptors(&opts, dir, cfs)?;
        let epoch = log_epoch(&db)?;
        let (log, records) = MetaLog::open(dir, epoch).map_err(|e| io_error("open the metadata log", e))?;
        let store = Store { db: Arc::new(db), log: Arc::new(Mutex::new(log)) };
        for record in &records {
            store.db.write_opt(WriteBatch::from_data(record), &no_wal())?;
        }
        tracing::info!(records = records.len(), epoch, "metadata log replayed");
        store.bootstrap()?;
        // Everything replayed goes to RocksDB's tables, and the log starts
        // over: what a crash left half written can never be read as new.
        store.checkpoint(&mut store.log())?;
        Ok(store)
    }

    /// The metadata log; a poisoned lock is taken anyway (the log's state
    /// is only what was appended).
    pub(crate) fn log(&self) -> MutexGuard<'_, MetaLog> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a batch to RocksDB and appends it to the metadata log (not
    /// yet durable: see `sync`).
    pub(crate) fn write(&self, batch: WriteBatch) -> Result<(), NsError> {
        let record = batch.data().to_vec();
        self.db.write_opt(batch, &no_wal())?;
        self.log().append(&record);
        Ok(())
    }

    /// Flushes RocksDB's memtables to its tables, records a new epoch and
    /// starts the log over (when it is full, and at every open).
    fn checkpoint(&self, log: &mut MetaLog) -> Result<(), NsError> {
        for name in ALL_CFS {
            self.db.flush_cf(self.cf(name)?)?;
        }
        let epoch = log_epoch(&self.db)? + 1;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META)?, META_LOG_EPOCH, epoch.to_be_bytes());
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.db.write_opt(batch, &sync)?;
        log.start_over(epoch);
        tracing::debug!(epoch, "metadata log started over");
        Ok(())
    }

    pub(crate) fn cf(&self, name: &str) -> Result<&ColumnFamily, NsError> {
        match self.db.cf_handle(name) {
            Some(cf) => Ok(cf),
            None => fail(ErrorKind::EIO, format!("column family {name} missing")),
        }
    }

    fn bootstrap(&self) -> Result<(), NsError> {
        let meta = self.cf(CF_META)?;
        if let Some(v) = self.db.get_cf(meta, META_FORMAT_VERSION)? {
            let found = <[u8; 4]>::try_from(v.as_slice()).map(u32::from_be_bytes).unwrap_or(0);
            if found != FORMAT_VERSION {
                return fail(ErrorKind::EIO, format!("metadata format {found}, this build reads {FORMAT_VERSION}"));
            }
            return Ok(());
        }
        let now = now_ns();
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
            },
            symlink_target: String::new(),
        };
        let counters = Counters { directories: 1, next_inode: InodeId::ROOT.0 + 1, next_chunk: 1, ..Default::default() };
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_INODES)?, inode_key(InodeId::ROOT), root.encode());
        batch.put_cf(meta, META_CLUSTER_ID, uuid::Uuid::new_v4().to_string());
        batch.put_cf(meta, META_COUNTERS, counters.encode());
        batch.put_cf(meta, META_FORMAT_VERSION, FORMAT_VERSION.to_be_bytes());
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.db.write_opt(batch, &sync)?;
        Ok(())
    }

    pub fn cluster_id(&self) -> Result<String, NsError> {
        match self.db.get_cf(self.cf(CF_META)?, META_CLUSTER_ID)? {
            Some(v) => String::from_utf8(v).map_err(|_| NsError::new(ErrorKind::EIO, "corrupt cluster id")),
            None => fail(ErrorKind::EIO, "cluster id missing"),
        }
    }

    pub fn counters(&self) -> Result<Counters, NsError> {
        match self.db.get_cf(self.cf(CF_META)?, META_COUNTERS)? {
            Some(v) => Counters::decode(&v),
            None => fail(ErrorKind::EIO, "counters missing"),
        }
    }

    /// Makes every write so far durable: one synchronous write of the log's
    /// new records, or a checkpoint when they would not fit.
    pub fn sync(&self) -> Result<(), NsError> {
        let mut log = self.log();
        if log.is_full() {
            return self.checkpoint(&mut log);
        }
        log.sync().map_err(|e| io_error("write the metadata log", e))
    }
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
