//! What the dashboard and `/metrics` read from chunk management: short
//! snapshots under the chunk-map lock, never held across I/O.

use std::time::Instant;

use dfs_proto::InodeId;

use super::chunk_map::Census;
use super::{ChunkManager, Stats};
use crate::store::NsError;

pub use dfs_proto::wire::dashboard::ChunkReplicas;

impl ChunkManager {
    /// Chunks counted by health, as of the last monitor pass.
    pub fn census(&self) -> Census {
        self.engine().summary().census
    }

    /// Counters of the chunk work since the start (or since this master
    /// last took over as the masters' leader).
    pub fn stats(&self) -> std::sync::Arc<Stats> {
        self.engine().stats_handle()
    }

    /// Chunks `first..first+count` of a file with their replicas (blocking:
    /// reads the store, then takes the map lock once).
    pub fn file_chunks(&self, inode: InodeId, replication: u16, first: u64, count: usize) -> Result<Vec<ChunkReplicas>, NsError> {
        let records = self.store.chunks_of(inode, first, count)?;
        let (now, map) = (Instant::now(), self.map());
        let dead_after = self.config.dead_after;
        Ok(records
            .into_iter()
            .map(|(index, r)| {
                let h = map.health(r.handle, now, dead_after);
                let health = match () {
                    _ if h.missing() => "missing",
                    _ if h.corrupt > 0 => "corrupt",
                    _ if h.under(replication) => "under-replicated",
                    _ if h.stale > 0 => "stale",
                    _ if h.over(replication) => "over-replicated",
                    _ => "healthy",
                };
                let replicas = map.replica_states(r.handle, now, dead_after);
                ChunkReplicas { index, handle: r.handle, version: r.version, length: r.length, health: health.into(), replicas }
            })
            .collect())
    }
}
