//! What a master of a Raft group (#23) needs of the store: applying the
//! write batches another master made, as they are, and knowing which
//! entry of the group's log the store holds up to.
//!
//! A leader makes each change as a single master does (`Txn::commit`: a
//! RocksDB write batch, with the ids, times and versions it chose), and the
//! batch is what the group replicates: applying it gives every master the
//! same keys, with nothing computed again. Each applied entry writes the
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
    /// Applies an entry's `batches` (a leader's write batches, in order),
    /// the group's new `state` in the same write as the last (not yet
    /// durable: see `sync`). Each batch sets keys to values, so one applied
    /// again after a crash between these writes ends the same.
    pub fn apply_replicated<'a>(&self, batches: impl IntoIterator<Item = &'a [u8]>, state: &[u8]) -> Result<(), NsError> {
        let mut last: Option<WriteBatch> = None;
        for batch in batches {
            if let Some(before) = last.replace(WriteBatch::from_data(batch)) {
                self.write_tapped(before, false)?;
            }
        }
        let mut last = last.unwrap_or_default();
        last.put_cf(self.cf(CF_META)?, META_RAFT_STATE, state);
        self.write_tapped(last, false)
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
