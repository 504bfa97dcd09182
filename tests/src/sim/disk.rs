//! A chunkserver's disk as the simulator sees it: each replica is a list of
//! write ids (one per unit of the chunk; 0 is a gap, read as zeros), what of
//! it is durable, whether it was written since its last sync, and whether a
//! bit flipped in it. A crash keeps what was synced and, of what was not,
//! some prefix of the appends (the last of them possibly torn, which
//! recovery cuts off); unsynced overwrites of synced units are lost.

use std::collections::BTreeMap;

use dfs_proto::{ChunkHandle, ChunkVersion};
use rand::rngs::StdRng;
use rand::Rng;

/// One write of one unit: unique over the run (0: zeros, never written).
pub type WriteId = u64;

/// Bytes of one unit (one write).
pub const UNIT_BYTES: u64 = 1 << 20;
/// Units in a chunk.
pub const CHUNK_UNITS: u32 = 16;
/// A chunk's size in bytes.
pub const CHUNK_BYTES: u64 = CHUNK_UNITS as u64 * UNIT_BYTES;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    pub version: ChunkVersion,
    /// What a read returns now (the page cache included).
    pub data: Vec<WriteId>,
    /// What survives a crash (synced).
    pub durable: Vec<WriteId>,
    /// Written since the last sync; survives a crash (it is on disk before
    /// the first write after a sync) until the next sync.
    pub dirty: bool,
    /// A bit flipped in it: reads and copies of it fail their checksums.
    pub corrupt: bool,
    /// Came back from a crash dirty: takes no write (or sync) at this
    /// version, as the real store (`ReplicaState::lost_writes`).
    pub lost_writes: bool,
}

impl Replica {
    /// An empty replica, durable (creates, copies and version changes are
    /// synced before they answer).
    pub fn new(version: ChunkVersion) -> Replica {
        Replica { version, data: Vec::new(), durable: Vec::new(), dirty: false, corrupt: false, lost_writes: false }
    }

    /// A finished copy: durable, at `version`.
    pub fn copied(version: ChunkVersion, data: Vec<WriteId>) -> Replica {
        Replica { version, durable: data.clone(), data, dirty: false, corrupt: false, lost_writes: false }
    }

    pub fn length_bytes(&self) -> u64 {
        self.data.len() as u64 * UNIT_BYTES
    }

    /// Writes unit `offset` (a gap before it reads as zeros).
    pub fn write(&mut self, offset: u32, id: WriteId) {
        let offset = offset as usize;
        if self.data.len() <= offset {
            self.data.resize(offset + 1, 0);
        }
        self.data[offset] = id;
        self.dirty = true;
    }

    pub fn sync(&mut self) {
        self.durable = self.data.clone();
        self.dirty = false;
    }

    /// A crash: the synced units stay, each unsynced append past them stays
    /// up to some point (the last one kept may be torn, and recovery cuts a
    /// torn unit off), unsynced overwrites are lost. It stays dirty if it was.
    pub fn crash(&mut self, rng: &mut StdRng) {
        self.lost_writes = self.dirty;
        if !self.dirty {
            self.data = self.durable.clone();
            return;
        }
        let synced = self.durable.len();
        let written = self.data.len().max(synced);
        let kept = rng.random_range(synced..=written);
        let mut after: Vec<WriteId> = self.durable.clone();
        after.extend(self.data.get(synced..kept).unwrap_or_default());
        self.data = after.clone();
        self.durable = after;
    }
}

/// The replicas on one disk, and whether it is full.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub replicas: BTreeMap<ChunkHandle, Replica>,
    /// No room left: creates, copies and appends fail.
    pub full: bool,
}

impl Disk {
    pub fn used_bytes(&self) -> u64 {
        self.replicas.len() as u64 * CHUNK_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_crash_keeps_synced_units_and_a_prefix_of_the_appends_after_them() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            let mut r = Replica::new(ChunkVersion(1));
            r.write(0, 10);
            r.write(1, 11);
            r.sync();
            r.write(1, 21); // an overwrite, lost in any crash
            r.write(2, 12);
            r.write(3, 13);
            r.crash(&mut rng);
            assert_eq!(&r.data[..2], &[10, 11]);
            assert!(r.data.len() <= 4);
            assert_eq!(&r.data[2..], &[12, 13][..r.data.len() - 2]);
            assert!(r.dirty, "dirty until the next sync");
            assert_eq!(r.data, r.durable);
        }
    }
}
