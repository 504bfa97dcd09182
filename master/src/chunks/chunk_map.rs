//! The master's soft state, rebuilt after a restart from the namespace and
//! chunkserver reports: known chunkservers, which replica each holds at which
//! version, and running leases. Nothing here is persisted.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use dfs_common::wire::chunks::{ChunkserverInfo, Heartbeat, HeartbeatResponse, ReplicaAddr};
use dfs_common::{ChunkHandle, ChunkVersion, InodeId, NodeId};

use super::lease::Lease;
use super::liveness::{liveness, Liveness};
use super::placement::Candidate;

/// A chunkserver as last heard from.
#[derive(Clone, Debug)]
pub struct Node {
    pub address: String,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub chunk_count: u64,
    pub load: u32,
    pub last_heartbeat: Instant,
    /// Space promised to chunks placed here since the last heartbeat.
    pub reserved_bytes: u64,
}

/// A chunk as the namespace records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkMeta {
    pub inode: InodeId,
    pub index: u64,
    pub version: ChunkVersion,
}

#[derive(Default)]
pub struct ChunkMap {
    nodes: HashMap<NodeId, Node>,
    chunks: HashMap<ChunkHandle, ChunkMeta>,
    /// handle → node → the version that node holds.
    replicas: HashMap<ChunkHandle, HashMap<NodeId, ChunkVersion>>,
    /// node → handles it reported, to replace them on the next full report.
    held: HashMap<NodeId, HashSet<ChunkHandle>>,
    leases: HashMap<ChunkHandle, Lease>,
    /// handle → nodes whose replica failed checksum verification, until the
    /// chunk is whole again (re-replicated) or forgotten.
    corrupt: HashMap<ChunkHandle, HashSet<NodeId>>,
}

/// How many replicas of a chunk are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaCounts {
    pub live: u32,
    pub stale: u32,
    pub corrupt: u32,
}

/// A reported replica newer than the namespace's version: the master died
/// between telling replicas a new version and recording it. The newer
/// version wins and must be recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewerVersion {
    pub handle: ChunkHandle,
    pub meta: ChunkMeta,
    pub reported: ChunkVersion,
}

impl ChunkMap {
    pub fn record_chunk(&mut self, handle: ChunkHandle, meta: ChunkMeta) {
        self.chunks.insert(handle, meta);
    }

    pub fn chunk(&self, handle: ChunkHandle) -> Option<ChunkMeta> {
        self.chunks.get(&handle).copied()
    }

    /// Takes in a heartbeat; with a full report, replaces what the node holds.
    pub fn heartbeat(&mut self, hb: &Heartbeat, now: Instant) -> (HeartbeatResponse, Vec<NewerVersion>) {
        let known = self.nodes.contains_key(&hb.node_id);
        self.nodes.insert(
            hb.node_id,
            Node {
                address: hb.address.clone(),
                capacity_bytes: hb.capacity_bytes,
                used_bytes: hb.used_bytes,
                chunk_count: hb.chunk_count,
                load: hb.load,
                last_heartbeat: now,
                reserved_bytes: 0,
            },
        );
        let Some(report) = &hb.report else {
            return (HeartbeatResponse { send_report: !known }, Vec::new());
        };
        // What the node held before, to replace it; a report built before a
        // version bump the node took part in must not lower its version
        // (replicas never go down, so the higher one is the truth).
        let mut before = HashMap::new();
        for handle in self.held.remove(&hb.node_id).unwrap_or_default() {
            if let Some(v) = self.replicas.get_mut(&handle).and_then(|r| r.remove(&hb.node_id)) {
                before.insert(handle, v);
            }
        }
        let mut newer = Vec::new();
        for r in report {
            let Some(meta) = self.chunks.get(&r.handle).copied() else { continue };
            if r.version > meta.version {
                newer.push(NewerVersion { handle: r.handle, meta, reported: r.version });
            }
            let version = before.get(&r.handle).map_or(r.version, |v| r.version.max(*v));
            self.add_replica(r.handle, hb.node_id, version);
        }
        (HeartbeatResponse { send_report: false }, newer)
    }

    pub fn add_replica(&mut self, handle: ChunkHandle, node: NodeId, version: ChunkVersion) {
        self.replicas.entry(handle).or_default().insert(node, version);
        self.held.entry(node).or_default().insert(handle);
    }

    /// Forgets one replica (it failed verification or a version change).
    pub fn drop_replica(&mut self, handle: ChunkHandle, node: NodeId) {
        if let Some(r) = self.replicas.get_mut(&handle) {
            r.remove(&node);
        }
        if let Some(h) = self.held.get_mut(&node) {
            h.remove(&handle);
        }
    }

    /// Remembers that `node`'s replica of `handle` was corrupt (for fsck).
    pub fn mark_corrupt(&mut self, handle: ChunkHandle, node: NodeId) {
        self.corrupt.entry(handle).or_default().insert(node);
    }

    /// The replicas of a chunk counted by state: live at the current
    /// version, live at an older one (stale), and reported corrupt.
    pub fn health(&self, handle: ChunkHandle, now: Instant, dead_after: Duration) -> ReplicaCounts {
        let version = self.chunks.get(&handle).map(|m| m.version);
        let mut counts = ReplicaCounts::default();
        for (node, v) in self.replicas.get(&handle).into_iter().flatten() {
            if !self.is_live(*node, now, dead_after) {
                continue;
            }
            match Some(*v) == version {
                true => counts.live += 1,
                false => counts.stale += 1,
            }
        }
        counts.corrupt = self.corrupt.get(&handle).map_or(0, |c| c.len() as u32);
        counts
    }

    pub fn set_version(&mut self, handle: ChunkHandle, version: ChunkVersion) {
        if let Some(meta) = self.chunks.get_mut(&handle) {
            meta.version = meta.version.max(version);
        }
    }

    pub fn is_live(&self, node: NodeId, now: Instant, dead_after: Duration) -> bool {
        self.nodes.get(&node).is_some_and(|n| liveness(n.last_heartbeat, now, dead_after) == Liveness::Live)
    }

    fn addr(&self, node: NodeId) -> Option<ReplicaAddr> {
        self.nodes.get(&node).map(|n| ReplicaAddr { node_id: node, address: n.address.clone() })
    }

    /// Live replicas at the chunk's current version; stale ones never appear.
    pub fn current_replicas(&self, handle: ChunkHandle, now: Instant, dead_after: Duration) -> Vec<ReplicaAddr> {
        let (Some(meta), Some(replicas)) = (self.chunks.get(&handle), self.replicas.get(&handle)) else {
            return Vec::new();
        };
        let mut out: Vec<ReplicaAddr> = replicas
            .iter()
            .filter(|(node, v)| **v == meta.version && self.is_live(**node, now, dead_after))
            .filter_map(|(node, _)| self.addr(*node))
            .collect();
        out.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        out
    }

    /// Live chunkservers, for placement.
    pub fn candidates(&self, now: Instant, dead_after: Duration) -> Vec<Candidate> {
        self.nodes
            .iter()
            .filter(|(_, n)| liveness(n.last_heartbeat, now, dead_after) == Liveness::Live)
            .map(|(id, n)| Candidate {
                node: *id,
                capacity_bytes: n.capacity_bytes,
                used_bytes: n.used_bytes + n.reserved_bytes,
                load: n.load,
            })
            .collect()
    }

    pub fn reserve(&mut self, node: NodeId, bytes: u64) {
        if let Some(n) = self.nodes.get_mut(&node) {
            n.reserved_bytes += bytes;
        }
    }

    /// The node last heard from at `address`.
    pub fn node_at(&self, address: &str) -> Option<NodeId> {
        self.nodes.iter().filter(|(_, n)| n.address == address).max_by_key(|(_, n)| n.last_heartbeat).map(|(id, _)| *id)
    }

    pub fn address(&self, node: NodeId) -> Option<ReplicaAddr> {
        self.addr(node)
    }

    pub fn lease(&self, handle: ChunkHandle) -> Option<Lease> {
        self.leases.get(&handle).cloned()
    }

    pub fn set_lease(&mut self, handle: ChunkHandle, lease: Lease) {
        self.leases.insert(handle, lease);
    }

    /// True when `node` is live and holds `handle` at `version`.
    pub fn holds(&self, handle: ChunkHandle, node: NodeId, version: ChunkVersion, now: Instant, dead_after: Duration) -> bool {
        self.is_live(node, now, dead_after)
            && self.replicas.get(&handle).and_then(|r| r.get(&node)) == Some(&version)
    }

    pub fn chunkservers(&self, now: Instant, dead_after: Duration) -> Vec<ChunkserverInfo> {
        let mut out: Vec<ChunkserverInfo> = self
            .nodes
            .iter()
            .map(|(id, n)| ChunkserverInfo {
                node_id: *id,
                address: n.address.clone(),
                state: liveness(n.last_heartbeat, now, dead_after).as_str().into(),
                capacity_bytes: n.capacity_bytes,
                used_bytes: n.used_bytes,
                chunk_count: n.chunk_count,
                load: n.load,
                last_heartbeat_age_ms: now.saturating_duration_since(n.last_heartbeat).as_millis() as u64,
            })
            .collect();
        out.sort_by(|a, b| a.address.cmp(&b.address));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_common::wire::chunks::ReplicaReport;

    fn hb(n: u128, report: Option<Vec<ReplicaReport>>) -> Heartbeat {
        Heartbeat {
            node_id: NodeId(uuid::Uuid::from_u128(n)),
            address: format!("http://127.0.0.1:{n}"),
            capacity_bytes: 1 << 40,
            used_bytes: 0,
            chunk_count: 0,
            load: 0,
            report,
        }
    }

    fn rep(h: u64, v: u64) -> ReplicaReport {
        ReplicaReport { handle: ChunkHandle(h), version: ChunkVersion(v), length: 0 }
    }

    #[test]
    fn stale_and_dead_replicas_are_never_current() {
        let dead_after = Duration::from_secs(30);
        let t0 = Instant::now();
        let mut m = ChunkMap::default();
        m.record_chunk(ChunkHandle(7), ChunkMeta { inode: InodeId(2), index: 0, version: ChunkVersion(3) });
        m.heartbeat(&hb(1, Some(vec![rep(7, 3)])), t0);
        m.heartbeat(&hb(2, Some(vec![rep(7, 2)])), t0); // stale
        m.heartbeat(&hb(3, Some(vec![rep(7, 3), rep(99, 1)])), t0 - Duration::from_secs(40)); // dead
        let current = m.current_replicas(ChunkHandle(7), t0, dead_after);
        assert_eq!(m.health(ChunkHandle(7), t0, dead_after), ReplicaCounts { live: 1, stale: 1, corrupt: 0 });
        m.mark_corrupt(ChunkHandle(7), NodeId(uuid::Uuid::from_u128(9)));
        assert_eq!(m.health(ChunkHandle(7), t0, dead_after).corrupt, 1);
        assert_eq!(current.iter().map(|r| r.address.as_str()).collect::<Vec<_>>(), ["http://127.0.0.1:1"]);
        // A full report replaces what the node held before.
        m.heartbeat(&hb(1, Some(vec![])), t0);
        assert!(m.current_replicas(ChunkHandle(7), t0, dead_after).is_empty());
    }

    #[test]
    fn unknown_nodes_are_asked_for_a_report_and_newer_versions_surface() {
        let t0 = Instant::now();
        let mut m = ChunkMap::default();
        assert!(m.heartbeat(&hb(1, None), t0).0.send_report);
        assert!(!m.heartbeat(&hb(1, None), t0).0.send_report);
        m.record_chunk(ChunkHandle(5), ChunkMeta { inode: InodeId(2), index: 1, version: ChunkVersion(1) });
        let (_, newer) = m.heartbeat(&hb(1, Some(vec![rep(5, 2)])), t0);
        assert_eq!(newer.len(), 1);
        assert_eq!(newer[0].reported, ChunkVersion(2));
    }
}
