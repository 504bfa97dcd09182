//! What a master of a Raft group (#23) needs of the store: applying the
//! write batches another master made, as they are, and knowing which
//! entry of the group's log the store holds up to.
//!
//! A leader decides a group of changes as a single master does, with the
//! ids, times and versions it chose, but into pending writes (`pending.rs`)
//! rather than RocksDB; their batch is what the group replicates, and
//! every master, the leader too, writes it when the entry commits:
//! applying it gives every master the same keys, with nothing computed
//! again. Each applied entry writes the
//! group's state it brings the store to ([`META_RAFT_STATE`], opaque here:
//! `raft::machine` encodes it) in the same atomic batch, so the store never
//! holds an entry without knowing it does, through crashes (the metadata
//! log replays both) and in a checkpoint taken for a snapshot.

use std::path::Path;

use rocksdb::{Options, WriteBatch, DB};

use super::db::Store;
use super::error::NsError;
use super::keys::{ALL_CFS, CF_META, META_RAFT_STATE};

impl Store {
    /// Applies an entry's `batch` (a leader's pending writes; none for an
    /// entry of the group's own) with the group's new `state`, in one
    /// atomic write (not yet durable: see `sync`).
    pub fn apply_replicated(&self, batch: Option<&[u8]>, state: &[u8]) -> Result<(), NsError> {
        let mut batch = batch.map(WriteBatch::from_data).unwrap_or_default();
        batch.put_cf(self.cf(CF_META)?, META_RAFT_STATE, state);
        self.write(batch)
    }

    /// The group's state last applied, if the store has applied any.
    pub fn replicated_state(&self) -> Result<Option<Vec<u8>>, NsError> {
        Ok(self.db.get_cf(self.cf(CF_META)?, META_RAFT_STATE)?)
    }
}

/// The group's state a checkpoint of the store (in `dir`) holds.
pub fn replicated_state_in(dir: &Path) -> Result<Option<Vec<u8>>, NsError> {
    let db = DB::open_cf_for_read_only(&Options::default(), dir, ALL_CFS, false)?;
    let meta = db.cf_handle(CF_META).ok_or_else(|| NsError::new(dfs_proto::ErrorKind::EIO, "a checkpoint without its meta column family"))?;
    Ok(db.get_cf(meta, META_RAFT_STATE)?)
}
