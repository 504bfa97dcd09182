//! Read-only views of the chunk map for the dashboard and `/metrics`:
//! chunks counted by health, and each replica of a chunk with its state.

use std::time::{Duration, Instant};

pub use dfs_proto::wire::dashboard::{Census, ReplicaState};
use dfs_proto::{ChunkHandle, NodeId};

use super::ChunkMap;

impl ChunkMap {
    /// Every chunk of a known file classified: one scan of the map, taken
    /// by each monitor pass and read from there.
    pub fn census(&self, now: Instant, dead_after: Duration) -> Census {
        let mut c = Census::default();
        for (handle, meta) in &self.chunks {
            if self.removed.contains(handle) {
                continue;
            }
            let Some(file) = self.files.get(&meta.inode) else { continue };
            let (h, want) = (self.health(*handle, now, dead_after), file.replication);
            c.total += 1;
            c.missing += h.missing() as u64;
            c.under_replicated += h.under(want) as u64;
            c.over_replicated += h.over(want) as u64;
            c.stale += (h.stale > 0) as u64;
            c.corrupt += (h.corrupt > 0) as u64;
            c.healthy += h.healthy(want) as u64;
        }
        c
    }

    /// The replicas of a chunk, each with its state, ordered by address.
    pub fn replica_states(&self, handle: ChunkHandle, now: Instant, dead_after: Duration) -> Vec<ReplicaState> {
        let current = self.chunks.get(&handle).map(|m| m.version);
        let address = |n: NodeId| self.nodes.get(&n).map(|n| n.address.clone()).unwrap_or_default();
        let mut out: Vec<ReplicaState> = self
            .replicas
            .get(&handle)
            .into_iter()
            .flatten()
            .map(|(node, v)| {
                let copying = self.copies.get(&handle).is_some_and(|c| c.iter().any(|c| c.target == *node));
                let state = match () {
                    _ if !self.is_live(*node, now, dead_after) => "dead",
                    _ if copying => "copying",
                    _ if Some(*v) != current => "stale",
                    _ if self.draining.contains(node) => "draining",
                    _ => "current",
                };
                ReplicaState { node_id: *node, address: address(*node), version: Some(*v), state: state.into() }
            })
            .collect();
        for node in self.corrupt.get(&handle).into_iter().flatten() {
            out.push(ReplicaState { node_id: *node, address: address(*node), version: None, state: "corrupt".into() });
        }
        out.sort_by(|a, b| (&a.address, &a.state).cmp(&(&b.address, &b.state)));
        out
    }
}
