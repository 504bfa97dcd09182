//! One mutation's working set: reads go to RocksDB (through the inodes this
//! mutation already changed, and a Raft leader's pending writes), writes
//! collect in one batch that is applied atomically at the end (added to the
//! pending writes, on a Raft leader), or dropped if the mutation fails.

use std::collections::HashMap;

use dfs_proto::wire::namespace::{Attr, FileKind};
use dfs_proto::{ChunkHandle, ErrorKind, InodeId};
use rocksdb::WriteBatch;

use super::db::Store;
use super::error::{fail, NsError};
use super::held::Held;
use super::keys::*;
use super::pending::Pending;
use super::records::{ChunkRecord, Counters, EntryRecord, InodeRecord};

pub struct Txn<'s> {
    pub store: &'s Store,
    batch: WriteBatch,
    /// Inodes changed by this mutation; `None` marks a removed one.
    inodes: HashMap<InodeId, Option<InodeRecord>>,
    pub counters: Counters,
    /// The mutation's timestamp, in ns since the epoch.
    pub now_ns: i64,
    /// Chunks this mutation made garbage (handed to chunk management once
    /// the mutation is durable).
    dropped: Vec<ChunkHandle>,
    /// The files clients hold open (none known: nothing is kept as an orphan).
    held: Option<&'s Held>,
    /// Instead of `batch`, when the store has pending writes (a Raft
    /// leader's writer): what `commit` adds to them.
    writes: Option<Pending>,
}

impl<'s> Txn<'s> {
    pub fn new(store: &'s Store, counters: Counters, now_ns: i64) -> Self {
        let writes = store.has_pending().then(Pending::default);
        Txn { store, batch: WriteBatch::default(), inodes: HashMap::new(), counters, now_ns, dropped: Vec::new(), held: None, writes }
    }

    /// This transaction keeps files `held` says are open when their last
    /// name goes.
    pub fn keeping_open(mut self, held: &'s Held) -> Self {
        self.held = Some(held);
        self
    }

    /// The client session `key` holds `inode` open from now on.
    pub fn hold(&self, key: &super::held::SessionKey, inode: InodeId, seq: u64) -> Result<(), NsError> {
        match self.held {
            Some(h) => h.open(key, inode, seq, std::time::Instant::now()),
            None => Ok(()),
        }
    }

    /// Whether a client holds the file open.
    pub fn is_held(&self, inode: InodeId) -> bool {
        self.held.is_some_and(|h| h.holds(inode))
    }

    /// The inode as this mutation sees it, or ENOENT.
    pub fn inode(&self, id: InodeId) -> Result<InodeRecord, NsError> {
        match self.inodes.get(&id) {
            Some(Some(r)) => Ok(r.clone()),
            Some(None) => fail(ErrorKind::ENOENT, format!("no inode {id}")),
            None => self.store.inode(id),
        }
    }

    /// The directories this mutation changed, as they are after it.
    pub fn changed_dirs(&self) -> Vec<Attr> {
        self.inodes.values().flatten().filter(|r| r.attr.kind == FileKind::Dir).map(|r| r.attr.clone()).collect()
    }

    pub fn put_inode(&mut self, record: InodeRecord) {
        self.inodes.insert(record.attr.inode, Some(record));
    }

    /// Allocates an id and stores a new inode counted in the counters.
    pub fn add_inode(&mut self, mut record: InodeRecord) -> Attr {
        record.attr.inode = InodeId(self.counters.next_inode);
        self.counters.next_inode += 1;
        self.counters.count(&record.attr, 1);
        let attr = record.attr.clone();
        self.put_inode(record);
        attr
    }

    /// Removes an inode (and a file's chunk records, and its extended
    /// attributes) and uncounts it.
    pub fn remove_inode(&mut self, record: &InodeRecord) -> Result<(), NsError> {
        self.drop_chunks(record.attr.inode, 0)?;
        self.forget_inode(record)
    }

    /// Removes an inode whose chunks are gone already, or were moved to
    /// another file (a concat).
    pub fn forget_inode(&mut self, record: &InodeRecord) -> Result<(), NsError> {
        self.counters.count(&record.attr, -1);
        if record.attr.has_xattrs {
            for name in self.store.xattr_names(record.attr.inode)? {
                self.delete_xattr(record.attr.inode, &name)?;
            }
        }
        self.inodes.insert(record.attr.inode, None);
        Ok(())
    }

    /// Takes one name away from an inode: a directory goes, anything else
    /// with its last link; otherwise it has one link less and its ctime
    /// changes, as on Linux. A file some client holds open outlives its
    /// last name as an orphan (`nlink` 0, in the orphans family).
    pub fn drop_link(&mut self, record: &InodeRecord) -> Result<(), NsError> {
        let kept_open = record.attr.kind == FileKind::File && self.is_held(record.attr.inode);
        if record.is_dir() || (record.attr.nlink <= 1 && !kept_open) {
            return self.remove_inode(record);
        }
        let mut left = record.clone();
        left.attr.nlink = left.attr.nlink.saturating_sub(1);
        left.attr.ctime_ns = self.now_ns;
        if left.attr.nlink == 0 {
            self.put(CF_ORPHANS, &inode_key(left.attr.inode), &self.now_ns.to_be_bytes())?;
        }
        self.put_inode(left);
        Ok(())
    }

    /// Frees an orphan no one holds any more.
    pub fn free_orphan(&mut self, record: &InodeRecord) -> Result<(), NsError> {
        self.forget_orphan(record.attr.inode)?;
        self.remove_inode(record)
    }

    pub fn forget_orphan(&mut self, inode: InodeId) -> Result<(), NsError> {
        self.delete(CF_ORPHANS, &inode_key(inode))?;
        Ok(())
    }

    pub fn put_entry(&mut self, parent: InodeId, name: &str, child: &Attr) -> Result<(), NsError> {
        let value = EntryRecord { child: child.inode, kind: child.kind }.encode();
        self.put(CF_ENTRIES, &entry_key(parent, name), &value)?;
        Ok(())
    }

    pub fn delete_entry(&mut self, parent: InodeId, name: &str) -> Result<(), NsError> {
        self.delete(CF_ENTRIES, &entry_key(parent, name))?;
        Ok(())
    }

    pub fn add_pending_delete(&mut self, root: InodeId) -> Result<(), NsError> {
        self.put(CF_PENDING_DELETE, &inode_key(root), &[])?;
        self.counters.pending_delete += 1;
        Ok(())
    }

    pub fn remove_pending_delete(&mut self, root: InodeId) -> Result<(), NsError> {
        self.delete(CF_PENDING_DELETE, &inode_key(root))?;
        self.counters.pending_delete = self.counters.pending_delete.saturating_sub(1);
        Ok(())
    }

    /// Drops the chunk records of `inode` from chunk `first_index` on, and
    /// queues their handles for chunk garbage collection, with the time.
    pub fn drop_chunks(&mut self, inode: InodeId, first_index: u64) -> Result<(), NsError> {
        let start = chunk_key(inode, first_index);
        let prefix = inode_key(inode);
        let mut doomed = Vec::new();
        for item in self.store.scan(CF_CHUNKS, &start, None)? {
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            doomed.push((key, ChunkRecord::decode(&value)?.handle));
        }
        for (key, handle) in doomed {
            self.delete(CF_CHUNKS, &key)?;
            self.put(CF_DELETED_CHUNKS, &handle.0.to_be_bytes(), &self.now_ns.to_be_bytes())?;
            self.dropped.push(handle);
        }
        Ok(())
    }

    /// The chunks this mutation made garbage so far.
    pub fn take_dropped(&mut self) -> Vec<ChunkHandle> {
        std::mem::take(&mut self.dropped)
    }

    /// Forgets a garbage-collected chunk (its replicas are being deleted).
    pub fn forget_deleted_chunk(&mut self, handle: ChunkHandle) -> Result<(), NsError> {
        self.delete(CF_DELETED_CHUNKS, &handle.0.to_be_bytes())?;
        Ok(())
    }

    pub fn put_meta(&mut self, key: &[u8], value: &[u8]) -> Result<(), NsError> {
        self.put(CF_META, key, value)?;
        Ok(())
    }

    pub fn delete_meta(&mut self, key: &[u8]) -> Result<(), NsError> {
        self.delete(CF_META, key)?;
        Ok(())
    }

    pub fn put_retry(&mut self, key: &[u8], value: &[u8]) -> Result<(), NsError> {
        self.put(CF_RETRIES, key, value)?;
        Ok(())
    }

    pub fn put_user_value(&mut self, key: &[u8], value: &[u8]) -> Result<(), NsError> {
        self.put(CF_USERS, key, value)?;
        Ok(())
    }

    pub fn delete_user_value(&mut self, key: &[u8]) -> Result<(), NsError> {
        self.delete(CF_USERS, key)?;
        Ok(())
    }

    pub fn put_xattr(&mut self, inode: InodeId, name: &str, value: &[u8]) -> Result<(), NsError> {
        self.put(CF_XATTRS, &xattr_key(inode, name), value)?;
        Ok(())
    }

    pub fn delete_xattr(&mut self, inode: InodeId, name: &str) -> Result<(), NsError> {
        self.delete(CF_XATTRS, &xattr_key(inode, name))?;
        Ok(())
    }

    /// Moves a chunk record to another file's index (a concat): the chunk
    /// lives on, under a new key.
    pub fn move_chunk(&mut self, from: InodeId, from_index: u64, to: InodeId, to_index: u64, record: &ChunkRecord) -> Result<(), NsError> {
        self.delete(CF_CHUNKS, &chunk_key(from, from_index))?;
        self.put_chunk(to, to_index, record)
    }

    pub fn put_chunk(&mut self, inode: InodeId, index: u64, record: &ChunkRecord) -> Result<(), NsError> {
        self.put(CF_CHUNKS, &chunk_key(inode, index), &record.encode())?;
        Ok(())
    }

    /// Marks a directory's contents changed: mtime and ctime are now.
    pub fn touch_dir(&mut self, dir: &mut InodeRecord) {
        dir.attr.mtime_ns = self.now_ns;
        dir.attr.ctime_ns = self.now_ns;
    }

    /// Applies the batch (not yet synced: the writer syncs once per group).
    pub fn commit(mut self) -> Result<Counters, NsError> {
        for (id, record) in std::mem::take(&mut self.inodes) {
            match record {
                Some(r) => self.put(CF_INODES, &inode_key(id), &r.encode())?,
                None => self.delete(CF_INODES, &inode_key(id))?,
            }
        }
        self.put(CF_META, META_COUNTERS, &self.counters.encode())?;
        match self.writes {
            // A Raft leader's writer: on top of the writes before, for the
            // group's entry (`pending.rs`).
            Some(writes) => self.store.pending().ok_or_else(|| NsError::new(ErrorKind::EIO, "pending writes gone"))?.absorb(writes),
            None => self.store.write(self.batch)?,
        }
        Ok(self.counters)
    }

    fn put(&mut self, cf: &'static str, key: &[u8], value: &[u8]) -> Result<(), NsError> {
        match &mut self.writes {
            Some(writes) => writes.put(cf, key, value),
            None => self.batch.put_cf(self.store.cf(cf)?, key, value),
        }
        Ok(())
    }

    fn delete(&mut self, cf: &'static str, key: &[u8]) -> Result<(), NsError> {
        match &mut self.writes {
            Some(writes) => writes.delete(cf, key),
            None => self.batch.delete_cf(self.store.cf(cf)?, key),
        }
        Ok(())
    }
}
