//! The master's soft state, rebuilt after a restart from the namespace and
//! chunkserver reports: known chunkservers, which replica each holds at which
//! version, running leases and copies, replicas reported for chunks the
//! master does not know, and deletions waiting for a node's next heartbeat.
//! Nothing here is persisted except what `ChunkManager` loads at start
//! (chunks, their files' replication, decommissioned nodes).

use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;

/// Maps and sets with a fixed hasher: iteration order depends only on what
/// was inserted, so the engine decides the same way on every run of the
/// same events (the simulator replays a seed exactly). Keys are handles the
/// master chose and ids of authenticated chunkservers.
pub type HashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<DefaultHasher>>;
pub type HashSet<K> = std::collections::HashSet<K, BuildHasherDefault<DefaultHasher>>;
use std::time::{Duration, Instant};

use dfs_proto::wire::chunks::{ChunkserverInfo, DeleteReplica, Heartbeat, HeartbeatResponse, ReplicaAddr};
use dfs_proto::{ChunkHandle, ChunkVersion, InodeId, NodeId};

use super::lease::Lease;
use super::liveness::{liveness, Liveness};
use super::placement::{self, Candidate};
use super::replication::{ChunkView, NodeView};

mod admission;
mod census;
mod damage;
mod versions;
pub use admission::{check_ranges, Refusal};
pub use census::{Census, ReplicaState};
pub use damage::Damage;
pub use versions::{judge_version, ReportedVersion};

/// Most deletions one heartbeat reply carries.
const DELETES_PER_HEARTBEAT: usize = 256;

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
    /// Bytes committed as written from the chunk's start: a current replica
    /// shorter than this is damaged.
    pub length: u64,
}

/// What chunk management needs of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMeta {
    pub replication: u16,
    pub chunk_size: u64,
}

/// A copy being made from `source` to `target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Copy {
    pub source: NodeId,
    pub target: NodeId,
}

#[derive(Default)]
pub struct ChunkMap {
    files: HashMap<InodeId, FileMeta>,
    /// How many chunks of each file the map holds (a file is forgotten with
    /// its last chunk, without a scan of every chunk).
    file_chunks: HashMap<InodeId, u64>,
    /// Chunkservers being decommissioned, and those of them now drained.
    draining: HashSet<NodeId>,
    /// Chunks of removed data waiting out the garbage-collection grace.
    removed: HashSet<ChunkHandle>,
    drained: HashSet<NodeId>,
    copies: HashMap<ChunkHandle, Vec<Copy>>,
    /// node → replicas to delete at its next heartbeat (handle → max version).
    deletes: HashMap<NodeId, HashMap<ChunkHandle, ChunkVersion>>,
    /// Replicas reported of chunks the master does not know:
    /// handle → node → (version, first reported).
    unknown: HashMap<ChunkHandle, HashMap<NodeId, (ChunkVersion, Instant)>>,
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
    /// Replicas at the current version that must not be served: short or
    /// dirty after a crash, or not among the nodes that took that version. Deleted once
    /// the chunk has a good copy elsewhere.
    damaged: HashMap<ChunkHandle, HashMap<NodeId, Damage>>,
    /// The nodes that took each chunk's current version (placement, a
    /// version bump, a finished copy): a replica reporting that version from
    /// elsewhere took a bump late, after writes it missed.
    members: HashMap<ChunkHandle, (ChunkVersion, HashSet<NodeId>)>,
    /// Chunks whose every replica lost committed bytes (a correlated power
    /// loss): the longest are served up to the length kept here (and the
    /// nodes promoted so), reads past it fail, and fsck shows the chunk
    /// corrupt.
    lost_tail: HashMap<ChunkHandle, (u64, Vec<NodeId>)>,
    /// Version bumps of this process not recorded yet (under way, or
    /// failed): handle → the version handed out and its targets. See
    /// `versions`.
    bumping: HashMap<ChunkHandle, versions::Bump>,
    /// Chunks whose version this process adopted from a report (the
    /// previous process's last bump, left unrecorded). See `versions`.
    adopted: HashSet<ChunkHandle>,
    /// The namespace was restored from a backup and not every replica was
    /// seen since: a newer version of a chunk, however far ahead, is the
    /// one written after the backup, and adopted (`store::backup`).
    restored: bool,
    /// After a restore: the version being recorded for a chunk adopted
    /// from a report (other holders reporting it are not forgers).
    adopting: HashMap<ChunkHandle, ChunkVersion>,
}

/// How many replicas of a chunk are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaCounts {
    /// Current replicas that count: live nodes, not being decommissioned.
    pub live: u32,
    /// Current replicas on live nodes being decommissioned (readable, not counted).
    pub draining: u32,
    pub stale: u32,
    pub corrupt: u32,
}

impl ReplicaCounts {
    /// No current replica on any live node.
    pub fn missing(&self) -> bool {
        self.live + self.draining == 0
    }

    pub fn under(&self, want: u16) -> bool {
        self.live < want as u32
    }

    pub fn over(&self, want: u16) -> bool {
        self.live > want as u32
    }

    pub fn healthy(&self, want: u16) -> bool {
        self.live == want as u32 && self.stale == 0 && self.corrupt == 0
    }
}

/// A reported replica one version past the namespace's, from a node that
/// held the recorded one: the master died between telling replicas a new
/// version and recording it. The newer version wins and must be recorded.
/// (Any other version above the recorded one was never issued and is not
/// believed: see `versions`.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewerVersion {
    pub handle: ChunkHandle,
    pub meta: ChunkMeta,
    pub reported: ChunkVersion,
}

impl ChunkMap {
    pub fn record_chunk(&mut self, handle: ChunkHandle, meta: ChunkMeta) {
        if let Some(before) = self.chunks.insert(handle, meta) {
            self.uncount(before.inode);
        }
        *self.file_chunks.entry(meta.inode).or_default() += 1;
        self.unknown.remove(&handle);
    }

    /// One chunk of `inode` less in the map; its file is forgotten with its last.
    fn uncount(&mut self, inode: InodeId) {
        let Some(n) = self.file_chunks.get_mut(&inode) else { return };
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.file_chunks.remove(&inode);
            self.files.remove(&inode);
        }
    }

    /// Chunks that now belong to file `inode`, at new indexes (a concat);
    /// a chunk the map does not hold yet is recorded from the namespace at
    /// its first lease or report, as any other.
    pub fn move_chunks(&mut self, inode: InodeId, file: FileMeta, moves: &[(ChunkHandle, u64)]) {
        for &(handle, index) in moves {
            if let Some(meta) = self.chunks.get(&handle).copied() {
                self.record_chunk(handle, ChunkMeta { inode, index, ..meta });
            }
        }
        if self.file_chunks.contains_key(&inode) {
            self.files.insert(inode, file);
        }
    }

    /// Records (or updates) a file's replication and chunk size.
    pub fn set_file(&mut self, inode: InodeId, file: FileMeta) {
        self.files.insert(inode, file);
    }

    pub fn file(&self, inode: InodeId) -> Option<FileMeta> {
        self.files.get(&inode).copied()
    }

    /// Marks a chunk of removed data: it is no longer planned for or
    /// counted, and waits for `forget_chunk`.
    pub fn retire_chunk(&mut self, handle: ChunkHandle) {
        if self.chunks.contains_key(&handle) {
            self.removed.insert(handle);
        }
    }

    /// Forgets a removed chunk; its replicas are queued for deletion.
    pub fn forget_chunk(&mut self, handle: ChunkHandle) {
        self.removed.remove(&handle);
        let Some(meta) = self.chunks.remove(&handle) else { return };
        for node in self.replicas.get(&handle).map(|r| r.keys().copied().collect::<Vec<_>>()).unwrap_or_default() {
            self.queue_delete(node, handle, ChunkVersion(u64::MAX));
        }
        self.replicas.remove(&handle);
        self.leases.remove(&handle);
        self.corrupt.remove(&handle);
        self.bumping.remove(&handle);
        self.adopted.remove(&handle);
        self.adopting.remove(&handle);
        self.forget_damage(handle);
        self.uncount(meta.inode);
    }

    /// Queues the deletion of `node`'s replica (if at most `max_version`)
    /// for its next heartbeat; it stops counting at once.
    pub fn queue_delete(&mut self, node: NodeId, handle: ChunkHandle, max_version: ChunkVersion) {
        self.drop_replica(handle, node);
        self.deletes.entry(node).or_default().insert(handle, max_version);
    }

    /// Takes back the deletions queued for a live chunk (surplus, stale or
    /// damaged copies, ordered while enough current ones existed): one of
    /// those was just lost, and they may be all that is left. The nodes keep
    /// their replicas, judged again from their next full report.
    pub fn cancel_deletes(&mut self, handle: ChunkHandle) {
        for queue in self.deletes.values_mut() {
            queue.remove(&handle);
        }
        self.deletes.retain(|_, q| !q.is_empty());
    }

    /// Takes back the deletions queued for `node` of chunks still live
    /// (surplus, stale or damaged copies): they were decided before it went
    /// silent, on copies elsewhere that may be gone since. Garbage stays
    /// queued. The node's replicas are judged again from its next report.
    pub fn cancel_deletes_of(&mut self, node: NodeId) {
        let Some(queue) = self.deletes.get_mut(&node) else { return };
        let chunks = &self.chunks;
        queue.retain(|handle, _| !chunks.contains_key(handle));
        if queue.is_empty() {
            self.deletes.remove(&node);
        }
    }

    /// Deletions waiting, over all nodes (garbage-collection backlog).
    pub fn deletes_waiting(&self) -> usize {
        self.deletes.values().map(|d| d.len()).sum()
    }

    fn take_deletes(&mut self, node: NodeId) -> Vec<DeleteReplica> {
        let Some(queue) = self.deletes.get_mut(&node) else { return Vec::new() };
        let handles: Vec<ChunkHandle> = queue.keys().take(DELETES_PER_HEARTBEAT).copied().collect();
        let out = handles.iter().filter_map(|h| queue.remove(h).map(|v| DeleteReplica { handle: *h, max_version: v })).collect();
        if queue.is_empty() {
            self.deletes.remove(&node);
        }
        out
    }

    /// Replicas of unknown chunks due for deletion under `rule` (reported
    /// for the grace, past the start-up delay): they are dropped from the
    /// list and returned, to be deleted.
    pub fn take_orphans(&mut self, now: Instant, rule: &super::gc::OrphanRule) -> Vec<(NodeId, ChunkHandle)> {
        let mut due = Vec::new();
        for (handle, nodes) in self.unknown.iter_mut() {
            nodes.retain(|node, (_, first)| {
                let ripe = super::gc::orphan_due(*first, now, rule);
                if ripe {
                    due.push((*node, *handle));
                }
                !ripe
            });
        }
        self.unknown.retain(|_, nodes| !nodes.is_empty());
        due
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
        let delete = self.take_deletes(hb.node_id);
        let Some(report) = &hb.report else {
            return (HeartbeatResponse { send_report: !known, delete, ..Default::default() }, Vec::new());
        };
        // The report replaces what the node held, unknown chunks included;
        // those still reported keep their first sighting (the grace runs on).
        let mut seen_before = HashMap::default();
        for (handle, nodes) in self.unknown.iter_mut() {
            if let Some((_, first)) = nodes.remove(&hb.node_id) {
                seen_before.insert(*handle, first);
            }
        }
        self.unknown.retain(|_, nodes| !nodes.is_empty());
        // What the node held before, to replace it; a report built before a
        // version bump the node took part in must not lower its version
        // (replicas never go down, so the higher one is the truth).
        let mut before = HashMap::default();
        self.forget_damage_of(hb.node_id, hb.registering, report);
        for handle in self.held.remove(&hb.node_id).unwrap_or_default() {
            if let Some(v) = self.replicas.get_mut(&handle).and_then(|r| r.remove(&hb.node_id)) {
                before.insert(handle, v);
            }
        }
        let mut newer = Vec::new();
        let mut unissued: Vec<(ChunkHandle, ChunkVersion, ChunkVersion)> = Vec::new();
        for r in report {
            if delete.iter().any(|d| d.handle == r.handle) {
                continue; // being deleted by this very reply
            }
            let Some(meta) = self.chunks.get(&r.handle).copied() else {
                let first = seen_before.get(&r.handle).copied().unwrap_or(now);
                self.unknown.entry(r.handle).or_default().insert(hb.node_id, (r.version, first));
                continue;
            };
            let version = before.get(&r.handle).map_or(r.version, |v| r.version.max(*v));
            match judge_version(self.issued(r.handle, meta.version, hb.node_id), hb.node_id, version) {
                ReportedVersion::Unissued => {
                    // Never adopted, never served: held until enough good copies exist.
                    unissued.push((r.handle, version, meta.version));
                    self.hold_unissued(r.handle, hb.node_id, version);
                    continue;
                }
                ReportedVersion::Unrecorded => newer.push(NewerVersion { handle: r.handle, meta, reported: version }),
                ReportedVersion::Stale | ReportedVersion::Current | ReportedVersion::InFlight => {}
            }
            if version == meta.version && self.judge_report(r, hb.node_id, hb.registering) {
                continue; // held back: short or not a member of the version
            }
            self.add_replica(r.handle, hb.node_id, version);
        }
        // A current replica the node no longer holds (set aside by its
        // scrubber, its report of it lost): deletions decided while it
        // counted may now remove the last copies.
        for (handle, v) in before {
            let current = self.chunks.get(&handle).is_some_and(|m| m.version == v);
            if current && self.replicas.get(&handle).is_none_or(|r| !r.contains_key(&hb.node_id)) && !delete.iter().any(|d| d.handle == handle) {
                self.cancel_deletes(handle);
            }
        }
        if let Some((handle, reported, recorded)) = unissued.first() {
            // One line per report: a forged report may name every chunk.
            let (node, address, count) = (hb.node_id, &hb.address, unissued.len());
            tracing::warn!(%node, address, count, chunk = %handle, %reported, %recorded, "replicas reported at versions never issued: not believed, not served");
        }
        (HeartbeatResponse { send_report: false, delete, ..Default::default() }, newer)
    }

    /// Forgets a chunk whose placement failed, unless a replica exists.
    pub fn unrecord_unplaced(&mut self, handle: ChunkHandle) {
        if self.replicas.get(&handle).is_none_or(|r| r.is_empty()) {
            if let Some(meta) = self.chunks.remove(&handle) {
                self.uncount(meta.inode);
            }
        }
    }

    /// No replica of the chunk was reported to this process, in any state
    /// (a dead node's last report counts), and nothing is under way on it.
    pub fn untouched(&self, handle: ChunkHandle) -> bool {
        self.replicas.get(&handle).is_none_or(|r| r.is_empty())
            && !self.damaged.contains_key(&handle)
            && !self.corrupt.contains_key(&handle)
            && !self.lost_tail.contains_key(&handle)
            && !self.bumping.contains_key(&handle)
            && !self.copies.contains_key(&handle)
            && !self.leases.contains_key(&handle)
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
            if self.copies.get(&handle).is_some_and(|c| c.iter().any(|c| c.target == *node)) {
                continue; // a copy being made: neither current nor stale yet
            }
            match (Some(*v) == version, self.draining.contains(node)) {
                (true, false) => counts.live += 1,
                (true, true) => counts.draining += 1,
                (false, _) => counts.stale += 1,
            }
        }
        counts.corrupt = self.corrupt.get(&handle).map_or(0, |c| c.len() as u32);
        counts.stale += self.not_members(handle, now, dead_after) + self.unissued(handle, now, dead_after);
        counts.corrupt = counts.corrupt.max(self.lost_tail.contains_key(&handle) as u32);
        counts
    }

    pub fn set_version(&mut self, handle: ChunkHandle, version: ChunkVersion) {
        if let Some(meta) = self.chunks.get_mut(&handle) {
            meta.version = meta.version.max(version);
        }
        // A bump left unrecorded is moot once its version is recorded.
        if self.bumping.get(&handle).is_some_and(|b| !b.running && b.version <= version) {
            self.bumping.remove(&handle);
        }
    }

    /// A commit says the chunk holds at least `end` bytes on every replica.
    pub fn raise_length(&mut self, handle: ChunkHandle, end: u64) {
        if let Some(meta) = self.chunks.get_mut(&handle) {
            meta.length = meta.length.max(end);
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
        let mut out: Vec<ReplicaAddr> =
            replicas.iter().filter(|(node, v)| **v == meta.version && self.is_live(**node, now, dead_after)).filter_map(|(node, _)| self.addr(*node)).collect();
        out.sort_by_key(|a| a.node_id);
        out
    }

    /// Live chunkservers, for placement.
    pub fn candidates(&self, now: Instant, dead_after: Duration) -> Vec<Candidate> {
        self.nodes
            .iter()
            .filter(|(id, n)| liveness(n.last_heartbeat, now, dead_after) == Liveness::Live && !self.draining.contains(id))
            .map(|(id, n)| Candidate {
                node: *id,
                capacity_bytes: n.capacity_bytes,
                used_bytes: n.used_bytes.saturating_add(n.reserved_bytes),
                load: n.load,
                quiet: now.saturating_duration_since(n.last_heartbeat) > placement::quiet_after(dead_after),
            })
            .collect()
    }

    pub fn reserve(&mut self, node: NodeId, bytes: u64) {
        if let Some(n) = self.nodes.get_mut(&node) {
            n.reserved_bytes = n.reserved_bytes.saturating_add(bytes);
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

    pub fn end_lease(&mut self, handle: ChunkHandle) {
        self.leases.remove(&handle);
    }

    /// The version `node` is known to hold `handle` at, if any.
    pub fn replica_version(&self, handle: ChunkHandle, node: NodeId) -> Option<ChunkVersion> {
        self.replicas.get(&handle).and_then(|r| r.get(&node)).copied()
    }

    /// True when `node` is live and holds `handle` at `version`.
    pub fn holds(&self, handle: ChunkHandle, node: NodeId, version: ChunkVersion, now: Instant, dead_after: Duration) -> bool {
        self.is_live(node, now, dead_after) && self.replicas.get(&handle).and_then(|r| r.get(&node)) == Some(&version)
    }

    fn state(&self, node: NodeId, live: Liveness) -> &'static str {
        match (live, self.draining.contains(&node), self.drained.contains(&node)) {
            (_, true, true) => "decommissioned",
            (Liveness::Live, true, false) => "decommissioning",
            (l, _, _) => l.as_str(),
        }
    }

    /// Starts or ends draining a node.
    pub fn set_draining(&mut self, node: NodeId, on: bool) {
        if on {
            self.draining.insert(node);
        } else {
            self.draining.remove(&node);
            self.drained.remove(&node);
        }
    }

    pub fn draining(&self) -> Vec<NodeId> {
        self.draining.iter().copied().collect()
    }

    pub fn set_drained(&mut self, node: NodeId, drained: bool) {
        if drained {
            self.drained.insert(node);
        } else {
            self.drained.remove(&node);
        }
    }

    pub fn is_known(&self, node: NodeId) -> bool {
        self.nodes.contains_key(&node)
    }

    /// Every node as the replication plan sees it.
    pub fn node_views(&self, now: Instant, dead_after: Duration) -> Vec<NodeView> {
        let mut copies: HashMap<NodeId, usize> = HashMap::default();
        for c in self.copies.values().flatten() {
            *copies.entry(c.source).or_default() += 1;
            *copies.entry(c.target).or_default() += 1;
        }
        self.nodes
            .iter()
            .map(|(id, n)| NodeView {
                node: *id,
                live: liveness(n.last_heartbeat, now, dead_after) == Liveness::Live,
                draining: self.draining.contains(id),
                free_bytes: n.capacity_bytes.saturating_sub(n.used_bytes.saturating_add(n.reserved_bytes)),
                copies: copies.get(id).copied().unwrap_or(0),
                silent: now.saturating_duration_since(n.last_heartbeat) > dead_after / 3,
            })
            .collect()
    }

    /// Every chunk of a known file as the replication plan sees it.
    pub fn chunk_views(&self, now: Instant) -> Vec<ChunkView> {
        self.chunks
            .iter()
            .filter(|(handle, _)| !self.removed.contains(handle))
            .filter_map(|(handle, meta)| {
                let file = self.files.get(&meta.inode)?;
                Some(ChunkView {
                    handle: *handle,
                    version: meta.version,
                    want: file.replication as usize,
                    chunk_size: file.chunk_size,
                    replicas: self.replicas.get(handle).map(|r| r.iter().map(|(n, v)| (*n, *v)).collect()).unwrap_or_default(),
                    leased: self.leases.get(handle).is_some_and(|l| l.expires > now),
                    copying_to: self.copies.get(handle).map(|c| c.iter().map(|c| c.target).collect()).unwrap_or_default(),
                    damaged: self.damaged_nodes(*handle),
                })
            })
            .collect()
    }

    /// How many chunks have a replica at (or just above, a bump in flight)
    /// their version reported, of how many (those with committed bytes or
    /// reported in any state): what safe mode waits for. A replica at a
    /// version never issued does not count.
    pub fn reported(&self) -> (u64, u64) {
        let judged = |h: &ChunkHandle| self.damaged.get(h).is_some_and(|d| d.values().any(|d| !matches!(d, Damage::Unissued { .. })));
        // Not a chunk nothing was committed to that no node has reported in
        // any state (allocated by a master that died before placing it):
        // there is nothing to wait for, and waiting would hold safe mode to
        // its timeout. HDFS's safe mode likewise counts complete blocks only.
        let holding = self.chunks.iter().filter(|(h, m)| m.length > 0 || !self.untouched(**h));
        let seen = |(h, m): &(&ChunkHandle, &ChunkMeta)| self.replicas.get(h).is_some_and(|r| r.values().any(|v| *v >= m.version)) || judged(h);
        holding.fold((0, 0), |(reported, total), c| (reported + seen(&c) as u64, total + 1))
    }

    pub fn start_copy(&mut self, handle: ChunkHandle, copy: Copy) {
        self.copies.entry(handle).or_default().push(copy);
    }

    pub fn end_copy(&mut self, handle: ChunkHandle, copy: Copy) {
        if let Some(c) = self.copies.get_mut(&handle) {
            c.retain(|x| *x != copy);
            if c.is_empty() {
                self.copies.remove(&handle);
            }
        }
    }

    /// A copy of `handle` is being made.
    pub fn is_copying(&self, handle: ChunkHandle) -> bool {
        self.copies.contains_key(&handle)
    }

    pub fn copies_running(&self) -> usize {
        self.copies.values().map(|c| c.len()).sum()
    }

    /// Chunks remembered as corrupt somewhere.
    pub fn corrupt_chunks(&self) -> Vec<ChunkHandle> {
        self.corrupt.keys().copied().collect()
    }

    /// Forgets the corrupt marks of a chunk that is whole again.
    pub fn clear_corrupt(&mut self, handle: ChunkHandle) {
        self.corrupt.remove(&handle);
    }

    pub fn chunkservers(&self, now: Instant, dead_after: Duration) -> Vec<ChunkserverInfo> {
        let mut out: Vec<ChunkserverInfo> = self
            .nodes
            .iter()
            .map(|(id, n)| ChunkserverInfo {
                node_id: *id,
                address: n.address.clone(),
                state: self.state(*id, liveness(n.last_heartbeat, now, dead_after)).into(),
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
    use dfs_proto::wire::chunks::ReplicaReport;

    use crate::chunks::fixtures::{self, replica as rep};

    fn hb(n: u128, report: Option<Vec<ReplicaReport>>) -> Heartbeat {
        Heartbeat { report, ..fixtures::heartbeat(n) }
    }

    /// A concat's chunks belong to their new file and index; the old file
    /// is forgotten with its last chunk, the new one known with its first.
    #[test]
    fn moved_chunks_belong_to_their_new_file() {
        let mut m = ChunkMap::default();
        let meta = |inode, index| ChunkMeta { inode: InodeId(inode), index, version: ChunkVersion(2), length: 9 };
        m.set_file(InodeId(3), FileMeta { replication: 2, chunk_size: 1 << 20 });
        m.record_chunk(ChunkHandle(1), meta(3, 0));
        m.record_chunk(ChunkHandle(2), meta(3, 1));
        let target = FileMeta { replication: 3, chunk_size: 1 << 20 };
        m.move_chunks(InodeId(4), target, &[(ChunkHandle(1), 5), (ChunkHandle(2), 6), (ChunkHandle(99), 7)]);
        assert_eq!(m.chunk(ChunkHandle(1)), Some(meta(4, 5)));
        assert_eq!(m.chunk(ChunkHandle(2)), Some(meta(4, 6)));
        assert_eq!(m.chunk(ChunkHandle(99)), None, "a chunk the map did not hold is not made up");
        assert_eq!((m.file(InodeId(4)), m.file(InodeId(3))), (Some(target), None));
    }

    #[test]
    fn stale_and_dead_replicas_are_never_current() {
        let dead_after = Duration::from_secs(30);
        let t0 = Instant::now();
        let mut m = ChunkMap::default();
        m.record_chunk(ChunkHandle(7), ChunkMeta { inode: InodeId(2), index: 0, version: ChunkVersion(3), length: 0 });
        m.heartbeat(&hb(1, Some(vec![rep(7, 3)])), t0);
        m.heartbeat(&hb(2, Some(vec![rep(7, 2)])), t0); // stale
        m.heartbeat(&hb(3, Some(vec![rep(7, 3), rep(99, 1)])), t0 - Duration::from_secs(40)); // dead
        let current = m.current_replicas(ChunkHandle(7), t0, dead_after);
        assert_eq!(m.health(ChunkHandle(7), t0, dead_after), ReplicaCounts { live: 1, draining: 0, stale: 1, corrupt: 0 });
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
        m.record_chunk(ChunkHandle(5), ChunkMeta { inode: InodeId(2), index: 1, version: ChunkVersion(1), length: 0 });
        let (_, newer) = m.heartbeat(&hb(1, Some(vec![rep(5, 2)])), t0);
        assert_eq!(newer.len(), 1);
        assert_eq!(newer[0].reported, ChunkVersion(2));
    }

    #[test]
    fn deletions_ride_the_next_heartbeat_and_are_not_re_added_by_its_report() {
        let t0 = Instant::now();
        let mut m = ChunkMap::default();
        m.record_chunk(ChunkHandle(7), ChunkMeta { inode: InodeId(2), index: 0, version: ChunkVersion(3), length: 0 });
        m.heartbeat(&hb(1, Some(vec![rep(7, 3)])), t0);
        m.queue_delete(NodeId(uuid::Uuid::from_u128(1)), ChunkHandle(7), ChunkVersion(3));
        assert_eq!(m.deletes_waiting(), 1);
        let (reply, _) = m.heartbeat(&hb(1, Some(vec![rep(7, 3)])), t0);
        assert_eq!(reply.delete, vec![DeleteReplica { handle: ChunkHandle(7), max_version: ChunkVersion(3) }]);
        assert_eq!(m.deletes_waiting(), 0);
        assert!(m.current_replicas(ChunkHandle(7), t0, Duration::from_secs(30)).is_empty());
    }

    #[test]
    fn unknown_replicas_become_orphans_after_the_grace_unless_the_chunk_appears() {
        let grace = Duration::from_secs(10);
        let t0 = Instant::now();
        let rule = crate::chunks::gc::OrphanRule { grace, started: t0, startup_delay: Duration::ZERO };
        let mut m = ChunkMap::default();
        m.heartbeat(&hb(1, Some(vec![rep(40, 1), rep(41, 1)])), t0);
        // A later report keeps the first sighting: the grace runs on.
        m.heartbeat(&hb(1, Some(vec![rep(40, 1), rep(41, 1)])), t0 + Duration::from_secs(5));
        assert!(m.take_orphans(t0 + Duration::from_secs(9), &rule).is_empty());
        m.record_chunk(ChunkHandle(41), ChunkMeta { inode: InodeId(2), index: 0, version: ChunkVersion(1), length: 0 });
        let late = crate::chunks::gc::OrphanRule { startup_delay: Duration::from_secs(20), ..rule };
        assert!(m.take_orphans(t0 + grace, &late).is_empty(), "not before the start-up delay");
        let due = m.take_orphans(t0 + grace, &rule);
        assert_eq!(due, vec![(NodeId(uuid::Uuid::from_u128(1)), ChunkHandle(40))]);
        assert!(m.take_orphans(t0 + grace, &rule).is_empty(), "handed out once");
    }
}
