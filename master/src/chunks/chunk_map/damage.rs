//! Replicas that report the chunk's current version but must not be served:
//! those shorter than the chunk's committed length (a disk that lost its
//! last writes in a power cut comes back at the current version with an old
//! length, every CRC matching), and those that took the current version
//! late, without being among the nodes that took it (a version bump that
//! timed out, then completed, after writes the replica missed).
//!
//! Lengths are judged from the first report of a chunkserver process only:
//! it served no write before the master took that report (see
//! `Node::serving`), so its lengths are what its disk kept, while a later
//! report may lag a write that landed as it was built.
//!
//! A replica its node reports *dirty* in the first report of a new process
//! crashed with writes not yet synced: a power cut may have dropped some
//! (an overwrite leaves the length as it was). It is held back as well when
//! a copy that never crashed exists; when none does, one of the longest is
//! kept and the others are copied from it, so the replicas agree.

use std::time::{Duration, Instant};

use dfs_proto::wire::chunks::ReplicaReport;
use dfs_proto::{ChunkHandle, ChunkVersion, NodeId};

use super::ChunkMap;

/// Why a replica at the current version is not served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// It holds fewer bytes than were committed.
    Short { version: ChunkVersion, length: u64 },
    /// It was not among the nodes that took this version.
    NotMember { version: ChunkVersion },
    /// Its node's process crashed with writes to it not yet synced.
    Unsynced { version: ChunkVersion, length: u64 },
    /// It was reported at a version the master never issued (see `versions`).
    Unissued { version: ChunkVersion },
}

impl Damage {
    fn version(&self) -> ChunkVersion {
        match self {
            Damage::Short { version, .. } | Damage::NotMember { version } | Damage::Unsynced { version, .. } | Damage::Unissued { version } => *version,
        }
    }
}

impl ChunkMap {
    /// The length a current replica of `handle` must have: the committed
    /// length, or what is left after every replica lost the tail.
    pub fn required_length(&self, handle: ChunkHandle) -> u64 {
        let committed = self.chunks.get(&handle).map_or(0, |m| m.length);
        self.lost_tail.get(&handle).map_or(committed, |(kept, _)| *kept)
    }

    /// Judges a replica reported at the chunk's current version; true when
    /// it is held back (not a member of the version, dirty or short after a
    /// crash). Dirt and length count in a process's first report only
    /// (`fresh`, see the module doc).
    pub(super) fn judge_report(&mut self, r: &ReplicaReport, node: NodeId, fresh: bool) -> bool {
        let (handle, length) = (r.handle, r.length);
        let Some(meta) = self.chunks.get(&handle).copied() else { return false };
        if !fresh && self.judged_at_start(handle, node, meta.version) {
            return true; // still the replica its process started with
        }
        if self.members.get(&handle).is_some_and(|(v, m)| *v == meta.version && !m.contains(&node)) {
            tracing::warn!(chunk = %handle, %node, version = %meta.version, "a replica took the current version without being among its members: stale");
            self.damaged.entry(handle).or_default().insert(node, Damage::NotMember { version: meta.version });
            return true;
        }
        if fresh && r.dirty {
            tracing::warn!(chunk = %handle, %node, length, "a replica comes back from a crash with writes it had not synced: held back");
            self.damaged.entry(handle).or_default().insert(node, Damage::Unsynced { version: meta.version, length });
            return true;
        }
        if length >= meta.length {
            self.whole_again(handle, meta.version, node);
            return false;
        }
        if !fresh {
            return false;
        }
        if length >= self.required_length(handle) {
            self.served_short(handle, node); // the best left after a loss
            return false;
        }
        tracing::warn!(chunk = %handle, %node, length, committed = meta.length, "a replica comes back shorter than its committed length: damaged");
        self.damaged.entry(handle).or_default().insert(node, Damage::Short { version: meta.version, length });
        self.mark_corrupt(handle, node);
        true
    }

    /// A replica holding every committed byte is back (`whole`'s): the
    /// short ones served meanwhile are damaged again (a lease must never take
    /// them), unless it is one of them, grown whole since.
    fn whole_again(&mut self, handle: ChunkHandle, version: ChunkVersion, whole: NodeId) {
        let Some((kept, promoted)) = self.lost_tail.remove(&handle) else { return };
        for node in promoted.into_iter().filter(|n| *n != whole) {
            self.drop_replica(handle, node);
            self.damaged.entry(handle).or_default().insert(node, Damage::Short { version, length: kept });
        }
    }

    /// Notes a replica served though short, while every copy is: demoted
    /// when a whole one comes back.
    fn served_short(&mut self, handle: ChunkHandle, node: NodeId) {
        if let Some((_, served)) = self.lost_tail.get_mut(&handle) {
            if !served.contains(&node) {
                served.push(node);
            }
        }
    }

    /// Whether `node`'s replica of `handle` was found short or unsynced at
    /// `version` when its process started: a later report cannot clear
    /// that (it judges no length and no dirt, see the module doc); only a
    /// copy over it, a new process's report, or a new version does.
    fn judged_at_start(&self, handle: ChunkHandle, node: NodeId, version: ChunkVersion) -> bool {
        let damage = self.damaged.get(&handle).and_then(|m| m.get(&node));
        matches!(damage, Some(Damage::Short { version: v, .. } | Damage::Unsynced { version: v, .. }) if *v == version)
    }

    /// A full report from `node` replaces what was judged of its replicas,
    /// except, when the report is not its process's first (`fresh`), what
    /// was judged at the process's start of replicas it still reports at
    /// the version they were judged at, still the chunk's. Looks up each
    /// reported replica (no copy of a report that may name millions).
    pub(super) fn forget_damage_of(&mut self, node: NodeId, fresh: bool, report: &[ReplicaReport]) {
        let kept: Vec<ChunkHandle> = match fresh {
            true => Vec::new(),
            false => report
                .iter()
                .filter(|r| self.judged_at_start(r.handle, node, r.version) && self.chunks.get(&r.handle).is_some_and(|c| c.version == r.version))
                .map(|r| r.handle)
                .collect(),
        };
        for (handle, m) in self.damaged.iter_mut() {
            if !kept.contains(handle) {
                m.remove(&node);
            }
        }
        self.damaged.retain(|_, m| !m.is_empty());
    }

    pub(super) fn forget_damage(&mut self, handle: ChunkHandle) {
        self.damaged.remove(&handle);
        self.members.remove(&handle);
        self.lost_tail.remove(&handle);
    }

    /// Live replicas held back as not members of the current version.
    pub(super) fn not_members(&self, handle: ChunkHandle, now: Instant, dead_after: Duration) -> u32 {
        let held = self.damaged.get(&handle).into_iter().flatten();
        let stale = |d: &Damage| matches!(d, Damage::NotMember { .. } | Damage::Unsynced { .. });
        held.filter(|(n, d)| stale(d) && self.is_live(**n, now, dead_after)).count() as u32
    }

    /// Nodes holding a damaged replica of `handle`, with its version.
    pub fn damaged_nodes(&self, handle: ChunkHandle) -> Vec<(NodeId, ChunkVersion)> {
        self.damaged.get(&handle).into_iter().flatten().map(|(n, d)| (*n, d.version())).collect()
    }

    /// Records the nodes that took `version` of `handle` (placement, a bump).
    pub fn set_members(&mut self, handle: ChunkHandle, version: ChunkVersion, nodes: impl IntoIterator<Item = NodeId>) {
        self.members.insert(handle, (version, nodes.into_iter().collect()));
    }

    /// A finished copy joined `version`'s members (when they are known: a
    /// set made of the copy alone would disown every other replica).
    pub fn add_member(&mut self, handle: ChunkHandle, version: ChunkVersion, node: NodeId) {
        if let Some((v, m)) = self.members.get_mut(&handle) {
            if *v == version {
                m.insert(node);
            }
        }
    }

    /// A copy to `node` finished at `version` with `length` bytes: it joins
    /// the version's members, and is current unless short.
    pub fn copy_done(&mut self, handle: ChunkHandle, node: NodeId, version: ChunkVersion, length: u64) {
        // The copy replaced whatever the node held (a stale or damaged replica).
        if let Some(d) = self.damaged.get_mut(&handle) {
            d.remove(&node);
        }
        self.add_member(handle, version, node);
        let meta = self.chunks.get(&handle).copied();
        let current = meta.is_some_and(|m| m.version == version);
        if current && length < self.required_length(handle) {
            tracing::warn!(chunk = %handle, %node, length, "a finished copy is shorter than the committed length");
            self.damaged.entry(handle).or_default().insert(node, Damage::Short { version, length });
            return;
        }
        if meta.is_some_and(|m| length < m.length) {
            self.served_short(handle, node);
        }
        self.add_replica(handle, node, version);
    }

    /// Chunks with no live replica but damaged ones at the current version,
    /// short or back from a crash unsynced: one of the longest is
    /// served from now on, and the others are copied from it. If even it
    /// lacks committed bytes, reads past its length fail (never read as
    /// zeros) and the chunk stays corrupt in fsck. Returns (chunk, bytes
    /// kept, bytes committed).
    pub fn accept_lost_tails(&mut self, now: Instant, dead_after: Duration) -> Vec<(ChunkHandle, u64, u64)> {
        let mut out = Vec::new();
        let handles: Vec<ChunkHandle> = self.damaged.keys().copied().collect();
        for handle in handles {
            let Some(meta) = self.chunks.get(&handle).copied() else { continue };
            if !self.current_replicas(handle, now, dead_after).is_empty() {
                continue;
            }
            let short: Vec<(NodeId, u64)> = self.damaged[&handle]
                .iter()
                .filter(|(n, _)| self.is_live(**n, now, dead_after))
                .filter_map(|(n, d)| match d {
                    Damage::Short { version, length } | Damage::Unsynced { version, length } if *version == meta.version => Some((*n, *length)),
                    _ => None,
                })
                .collect();
            let Some((node, best)) = longest(&short) else { continue };
            self.damaged.get_mut(&handle).map(|d| d.remove(&node));
            self.add_replica(handle, node, meta.version);
            // A lease from before the loss would let its writers go on at
            // this version, and the replica refuses them (its node lost
            // writes it had acknowledged) until a bump: the next writer is
            // granted anew, at the next version.
            self.leases.remove(&handle);
            if best < meta.length {
                self.lost_tail.insert(handle, (best, vec![node]));
            }
            out.push((handle, best, meta.length));
        }
        out
    }

    /// True when a chunk is whole: nothing lost off its tail.
    pub fn tail_intact(&self, handle: ChunkHandle) -> bool {
        !self.lost_tail.contains_key(&handle)
    }
}

/// One of the longest replicas (the lowest node id among them): a single
/// one, since replicas of equal length may still differ where writes were
/// lost.
fn longest(short: &[(NodeId, u64)]) -> Option<(NodeId, u64)> {
    short.iter().copied().max_by(|(na, la), (nb, lb)| la.cmp(lb).then(nb.cmp(na)))
}

#[cfg(test)]
mod tests {
    use super::super::ChunkMeta;
    use super::*;
    use dfs_proto::wire::chunks::Heartbeat;
    use dfs_proto::InodeId;

    const H: ChunkHandle = ChunkHandle(7);
    const DEAD_AFTER: Duration = Duration::from_secs(30);

    use crate::chunks::fixtures::{self, node};

    fn report(m: &mut ChunkMap, n: u128, version: u64, length: u64, now: Instant) {
        report_as(m, n, version, length, now, true, false);
    }

    fn report_as(m: &mut ChunkMap, n: u128, version: u64, length: u64, now: Instant, registering: bool, dirty: bool) {
        let report = vec![ReplicaReport { handle: H, version: ChunkVersion(version), length, dirty }];
        let hb = Heartbeat { chunk_count: 1, report: Some(report), registering, ..fixtures::heartbeat(n) };
        m.heartbeat(&hb, now);
    }

    fn map(length: u64) -> ChunkMap {
        let mut m = ChunkMap::default();
        m.record_chunk(H, ChunkMeta { inode: InodeId(2), index: 0, version: ChunkVersion(3), length });
        m
    }

    fn current(m: &ChunkMap, now: Instant) -> Vec<String> {
        m.current_replicas(H, now, DEAD_AFTER).into_iter().map(|r| r.address).collect()
    }

    #[test]
    fn a_short_replica_back_from_a_crash_is_damaged() {
        let now = Instant::now();
        let mut m = map(1000);
        report(&mut m, 1, 3, 1000, now);
        report(&mut m, 2, 3, 400, now); // lost its last writes
        assert_eq!(current(&m, now), ["http://127.0.0.1:1"]);
        // Damaged, corrupt in fsck, to be deleted.
        assert_eq!(m.health(H, now, DEAD_AFTER).corrupt, 1);
        assert_eq!(m.damaged_nodes(H), vec![(node(2), ChunkVersion(3))]);
    }

    #[test]
    fn only_a_processs_first_report_is_judged_by_length() {
        let now = Instant::now();
        let mut m = map(1000);
        // A running process's report may lag a write that landed as it was
        // built; its replica cannot have lost writes without a restart.
        report_as(&mut m, 1, 3, 600, now, false, false);
        assert_eq!(current(&m, now), ["http://127.0.0.1:1"]);
        report_as(&mut m, 1, 3, 600, now, true, false);
        assert!(current(&m, now).is_empty());
    }

    #[test]
    fn when_every_replica_lost_the_tail_the_longest_are_served_and_the_chunk_stays_corrupt() {
        let now = Instant::now();
        let mut m = map(1000);
        for (n, len) in [(1, 300), (2, 700), (3, 700)] {
            report(&mut m, n, 3, len, now);
        }
        assert!(current(&m, now).is_empty());
        assert_eq!(m.accept_lost_tails(now, DEAD_AFTER), vec![(H, 700, 1000)]);
        // One of the longest (equal lengths may still differ in content).
        assert_eq!(current(&m, now), ["http://127.0.0.1:2"]);
        assert!(!m.tail_intact(H));
        assert!(m.health(H, now, DEAD_AFTER).corrupt > 0);
        // A copy of it (onto a node with a stale replica) is as good as it
        // gets now.
        report(&mut m, 4, 2, 0, now);
        m.copy_done(H, node(4), ChunkVersion(3), 700);
        assert_eq!(current(&m, now).len(), 2);
        // A whole replica coming back ends it, and every short one served
        // meanwhile is damaged again at once.
        report(&mut m, 5, 3, 1000, now);
        assert!(m.tail_intact(H));
        assert_eq!(current(&m, now), ["http://127.0.0.1:5"]);
    }

    #[test]
    fn a_replica_back_from_a_crash_with_unsynced_writes_gives_way_to_one_that_never_crashed() {
        let now = Instant::now();
        let mut m = map(1000);
        report_as(&mut m, 1, 3, 1000, now, false, true); // running: its cache has everything
        report_as(&mut m, 2, 3, 1000, now, true, true); // restarted: may have lost an overwrite
        assert_eq!(current(&m, now), ["http://127.0.0.1:1"]);
        assert_eq!(m.health(H, now, DEAD_AFTER).stale, 1);
        assert_eq!(m.damaged_nodes(H), vec![(node(2), ChunkVersion(3))]);
        assert!(m.accept_lost_tails(now, DEAD_AFTER).is_empty(), "a good copy exists");
    }

    #[test]
    fn a_replica_held_back_at_its_process_start_stays_held_back_through_later_reports() {
        let now = Instant::now();
        let mut m = map(1000);
        report_as(&mut m, 1, 3, 1000, now, true, false);
        report_as(&mut m, 2, 3, 800, now, true, true); // back from a power cut, unsynced
        report_as(&mut m, 3, 3, 400, now, true, false); // back short
        assert_eq!(current(&m, now), ["http://127.0.0.1:1"]);
        // The same processes' next full reports (no longer dirty: synced
        // since) must not make either current: what they lost is lost.
        report_as(&mut m, 2, 3, 800, now, false, false);
        report_as(&mut m, 3, 3, 400, now, false, false);
        assert_eq!(current(&m, now), ["http://127.0.0.1:1"], "a later report re-admitted a damaged replica");
        assert_eq!(m.damaged_nodes(H).len(), 2);
        // A copy over one of them clears it.
        m.copy_done(H, node(2), ChunkVersion(3), 1000);
        report_as(&mut m, 2, 3, 1000, now, false, false);
        assert_eq!(current(&m, now).len(), 2);
    }

    #[test]
    fn when_every_replica_crashed_unsynced_one_is_kept_and_the_rest_copied_from_it() {
        let now = Instant::now();
        let mut m = map(1000);
        for n in [3, 1, 2] {
            report_as(&mut m, n, 3, 1000, now, true, true);
        }
        assert!(current(&m, now).is_empty());
        assert_eq!(m.accept_lost_tails(now, DEAD_AFTER), vec![(H, 1000, 1000)]);
        assert_eq!(current(&m, now), ["http://127.0.0.1:1"]);
        assert!(m.tail_intact(H), "nothing committed is missing");
        assert_eq!(m.damaged_nodes(H).len(), 2, "the others go once copies of the kept one exist");
    }

    #[test]
    fn a_replica_that_took_the_version_without_being_a_member_is_stale() {
        let now = Instant::now();
        let mut m = map(0);
        m.set_members(H, ChunkVersion(3), [node(1), node(2)]);
        report(&mut m, 1, 3, 0, now);
        report(&mut m, 3, 3, 0, now); // its bump timed out, then completed
        assert_eq!(current(&m, now), ["http://127.0.0.1:1"]);
        assert_eq!(m.health(H, now, DEAD_AFTER).stale, 1);
        assert_eq!(m.damaged_nodes(H), vec![(node(3), ChunkVersion(3))]);
        // A finished copy joins the members.
        m.add_member(H, ChunkVersion(3), node(4));
        report(&mut m, 4, 3, 0, now);
        assert_eq!(current(&m, now).len(), 2);
    }
}
