//! Which reported versions the master believes. Versions are handed out by
//! the master alone (placement, lease grants, fences, bad-replica bumps),
//! one step at a time, and each is recorded once the replicas took it. So a
//! chunkserver's report can be ahead of the recorded version by one step
//! only, and only in three ways: a bump of this process is under way (the
//! replica took it before the master recorded it: counted once recorded);
//! a bump of this process failed (no target answered in time, or recording
//! failed) and a target took it late (adopted); or the previous master
//! process died between handing a bump out and recording it (adopted, at
//! most once per chunk per process: after that, every next version is this
//! process's own; and only from a node that held the recorded version, a
//! member of it when members are known). Anything else was never issued: a
//! forged or broken report. It is not adopted (the recorded version never moves
//! for it), never served and never a copy source; it is held as damaged,
//! and deleted only once the chunk has enough good replicas.

use std::time::{Duration, Instant};

use dfs_proto::{ChunkHandle, ChunkVersion, NodeId};

use super::{ChunkMap, Damage};

/// How a reported version of a known chunk stands against what was issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportedVersion {
    /// Below the recorded version.
    Stale,
    /// The recorded version.
    Current,
    /// The version a bump of this process is handing this node right now:
    /// held at it, counted once the bump records it.
    InFlight,
    /// One past the recorded version, from a node that held the recorded
    /// one, with no bump under way here: the previous master process handed
    /// it out and died before recording it. Adopted (recorded).
    Unrecorded,
    /// Never issued: not adopted, not served, not a copy source.
    Unissued,
}

/// The last version bump this process handed out for a chunk and has not
/// recorded yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bump {
    pub version: ChunkVersion,
    /// The nodes it was handed to.
    pub targets: Vec<NodeId>,
    /// Still under way (else it failed, and a target may take it late).
    pub running: bool,
}

/// What the master knows when it judges one reported version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Issued<'a> {
    /// The recorded (durable) version of the chunk.
    pub recorded: ChunkVersion,
    /// This process's last bump of the chunk not recorded yet.
    pub bump: Option<&'a Bump>,
    /// Whether the reporting node is among the recorded version's members,
    /// when they are known.
    pub member: Option<bool>,
    /// This process already adopted a version of the chunk from a report
    /// (the previous process's last bump: there was at most one).
    pub adopted_here: bool,
    /// The namespace was restored from a backup and chunk management has
    /// not seen every replica since: versions were handed out after the
    /// backup, any number of steps each.
    pub restored: bool,
    /// The version being recorded, adopted from another report (after a
    /// restore).
    pub adopting: Option<ChunkVersion>,
}

/// Judges `reported` from `node` (pure: see the module doc).
pub fn judge_version(issued: Issued<'_>, node: NodeId, reported: ChunkVersion) -> ReportedVersion {
    use std::cmp::Ordering::*;
    match reported.cmp(&issued.recorded) {
        Less => return ReportedVersion::Stale,
        Equal => return ReportedVersion::Current,
        Greater => {}
    }
    // After a restore, the first newer version reported is the one written
    // after the backup (a bump of this process itself is judged as usual);
    // others holding it while it is recorded are expected.
    if issued.restored && issued.bump.is_none() {
        if issued.adopting == Some(reported) {
            return ReportedVersion::InFlight;
        }
        if !issued.adopted_here {
            return ReportedVersion::Unrecorded;
        }
    }
    // u64::MAX has no next version: anything above it was never issued.
    let next = issued.recorded.0.checked_add(1).map(ChunkVersion);
    if next != Some(reported) {
        return ReportedVersion::Unissued;
    }
    match issued.bump {
        // This process handed the next version to its targets only.
        Some(b) if b.version == reported && !b.targets.contains(&node) => ReportedVersion::Unissued,
        Some(b) if b.version == reported && b.running => ReportedVersion::InFlight,
        Some(b) if b.version == reported => ReportedVersion::Unrecorded,
        Some(b) if b.running => ReportedVersion::Unissued,
        // Not this process's: the previous one's last bump, from a holder.
        _ if issued.adopted_here || issued.member == Some(false) => ReportedVersion::Unissued,
        _ => ReportedVersion::Unrecorded,
    }
}

impl ChunkMap {
    /// What is known of the versions of `handle` issued, for `node`.
    pub(super) fn issued(&self, handle: ChunkHandle, recorded: ChunkVersion, node: NodeId) -> Issued<'_> {
        let bump = self.bumping.get(&handle);
        let member = self.members.get(&handle).filter(|(v, _)| *v == recorded).map(|(_, m)| m.contains(&node));
        Issued { recorded, bump, member, adopted_here: self.adopted.contains(&handle), restored: self.restored, adopting: self.adopting.get(&handle).copied() }
    }

    /// Holds back a replica reported at a version never issued.
    pub(super) fn hold_unissued(&mut self, handle: ChunkHandle, node: NodeId, version: ChunkVersion) {
        self.damaged.entry(handle).or_default().insert(node, Damage::Unissued { version });
    }

    /// A bump of `handle` to `version` is being handed to `targets`. An
    /// earlier failed bump to the same version (nothing recorded since)
    /// keeps its targets: any of them may still take it late, and was
    /// handed it by this process (simulator seed 10404 at 120 s of faults:
    /// a second try on other nodes made the first try's late taker, the
    /// last holder of the data, look like a forger).
    pub fn start_bump(&mut self, handle: ChunkHandle, version: ChunkVersion, mut targets: Vec<NodeId>) {
        if let Some(earlier) = self.bumping.get(&handle).filter(|b| b.version == version) {
            targets.extend(earlier.targets.iter().filter(|t| !targets.contains(t)).copied().collect::<Vec<_>>());
        }
        self.bumping.insert(handle, Bump { version, targets, running: true });
    }

    /// The bump of `handle` is over: recorded (forgotten), or failed (kept:
    /// a target may still take it late, and its report is then believed).
    pub fn end_bump(&mut self, handle: ChunkHandle, recorded: bool) {
        match recorded {
            true => {
                self.bumping.remove(&handle);
            }
            false => {
                if let Some(b) = self.bumping.get_mut(&handle) {
                    b.running = false;
                }
            }
        }
    }

    /// Marks the namespace restored (or, once every replica was seen, no
    /// longer): see `restored` in the module doc's terms.
    pub fn set_restored(&mut self, on: bool) {
        self.restored = on;
    }

    pub fn is_restored(&self) -> bool {
        self.restored
    }

    /// `version` of `handle` is being recorded, adopted from a report:
    /// after a restore, no second version is adopted meanwhile (two could
    /// be recorded in either order), and other holders of this one are
    /// expected.
    pub fn adopting(&mut self, handle: ChunkHandle, version: ChunkVersion) {
        if self.restored {
            self.adopted.insert(handle);
            self.adopting.insert(handle, version);
        }
    }

    /// Recording an adopted version failed: after a restore, a later
    /// report may be adopted (else the chunk's newer replicas would stay
    /// held for good).
    pub fn adoption_failed(&mut self, handle: ChunkHandle) {
        if self.adopting.remove(&handle).is_some() {
            self.adopted.remove(&handle);
        }
    }

    /// Records a version adopted from a report (see the module doc).
    pub fn adopt_version(&mut self, handle: ChunkHandle, version: ChunkVersion) {
        self.set_version(handle, version);
        self.adopted.insert(handle);
        self.adopting.remove(&handle);
    }

    /// After a bump recorded `version` with its members: a target that took
    /// it without answering in time (and reported it meanwhile) is not a
    /// member, so it is held back like any replica that took a version late.
    pub fn drop_non_members(&mut self, handle: ChunkHandle, version: ChunkVersion) {
        let Some((v, members)) = self.members.get(&handle) else { return };
        if *v != version {
            return;
        }
        let late: Vec<NodeId> =
            self.replicas.get(&handle).into_iter().flatten().filter(|(n, rv)| **rv == version && !members.contains(n)).map(|(n, _)| *n).collect();
        for node in late {
            self.drop_replica(handle, node);
            self.damaged.entry(handle).or_default().insert(node, Damage::NotMember { version });
        }
    }

    /// Live replicas of `handle` held back as reported at a version never issued.
    pub(super) fn unissued(&self, handle: ChunkHandle, now: Instant, dead_after: Duration) -> u32 {
        let held = self.damaged.get(&handle).into_iter().flatten();
        held.filter(|(n, d)| matches!(d, Damage::Unissued { .. }) && self.is_live(**n, now, dead_after)).count() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::super::ChunkMeta;
    use super::*;
    use dfs_proto::wire::chunks::Heartbeat;
    use dfs_proto::InodeId;

    const DEAD_AFTER: Duration = Duration::from_secs(30);

    fn report(m: &mut ChunkMap, node: u128, replicas: &[(u64, u64)], now: Instant) -> Vec<super::super::NewerVersion> {
        let report = replicas.iter().map(|(h, v)| fixtures::replica(*h, *v)).collect();
        let hb = Heartbeat { chunk_count: replicas.len() as u64, report: Some(report), ..fixtures::heartbeat(node) };
        m.heartbeat(&hb, now).1
    }

    /// Chunks 1..=`count` at version 5, held by nodes 1, 2 and 3 (members known or not).
    fn cluster(count: u64, members_known: bool, now: Instant) -> ChunkMap {
        let mut m = ChunkMap::default();
        m.set_file(InodeId(2), super::super::FileMeta { replication: 3, chunk_size: 1 << 20 });
        for h in 1..=count {
            m.record_chunk(ChunkHandle(h), ChunkMeta { inode: InodeId(2), index: h, version: V5, length: 0 });
            if members_known {
                m.set_members(ChunkHandle(h), V5, [n(1), n(2), n(3)]);
            }
        }
        let all: Vec<(u64, u64)> = (1..=count).map(|h| (h, 5)).collect();
        for node in 1..=3 {
            report(&mut m, node, &all, now);
        }
        m
    }

    #[test]
    fn a_forged_report_of_every_chunk_at_a_high_version_changes_nothing_served() {
        let now = Instant::now();
        for members_known in [true, false] {
            let mut m = cluster(50, members_known, now);
            let forged: Vec<(u64, u64)> = (1..=50).map(|h| (h, 1_000 + h)).chain([(51, u64::MAX)]).collect();
            let newer = report(&mut m, 66, &forged, now);
            assert!(newer.is_empty(), "nothing adopted");
            for h in 1..=50 {
                let handle = ChunkHandle(h);
                assert_eq!(m.chunk(handle).map(|c| c.version), Some(V5), "the recorded version never moves");
                let current: Vec<NodeId> = m.current_replicas(handle, now, DEAD_AFTER).into_iter().map(|r| r.node_id).collect();
                assert_eq!(current, [n(1), n(2), n(3)], "the real replicas stay current, the forged one is not served");
                assert_eq!(m.health(handle, now, DEAD_AFTER).live, 3);
            }
            // The forged replicas are held as damaged: deleted only under the
            // replication plan's rule (enough good copies), never a source.
            let views = m.chunk_views(now);
            let view = views.iter().find(|c| c.handle == ChunkHandle(7)).unwrap();
            assert_eq!(view.damaged, vec![(n(66), ChunkVersion(1_007))]);
            assert!(!view.replicas.iter().any(|(node, _)| *node == n(66)));
            assert_eq!(m.reported(), (50, 50));
        }
    }

    #[test]
    fn one_step_ahead_from_a_stranger_is_refused_where_the_members_are_known() {
        let now = Instant::now();
        let mut m = cluster(3, true, now);
        assert!(report(&mut m, 66, &[(1, 6), (2, 6)], now).is_empty());
        assert_eq!(m.chunk(ChunkHandle(1)).map(|c| c.version), Some(V5));
        // A member one step ahead, with no bump here: the previous process
        // handed the version out and died before recording it.
        let newer = report(&mut m, 1, &[(1, 6), (2, 5), (3, 5)], now);
        assert_eq!(newer.iter().map(|v| (v.handle, v.reported)).collect::<Vec<_>>(), [(ChunkHandle(1), V6)]);
        m.adopt_version(ChunkHandle(1), V6);
        // Members of the adopted version are not known: a report climbing on
        // from there, even from a holder, was never issued.
        assert!(report(&mut m, 1, &[(1, 7), (2, 5), (3, 5)], now).is_empty());
        assert_eq!(m.chunk(ChunkHandle(1)).map(|c| c.version), Some(V6));
        assert!(m.damaged_nodes(ChunkHandle(1)).contains(&(n(1), ChunkVersion(7))));
        assert_eq!(m.current_replicas(ChunkHandle(1), now, DEAD_AFTER).len(), 0, "node 1's replica is held back");
    }

    #[test]
    fn a_target_that_takes_a_failed_bump_late_is_believed() {
        let now = Instant::now();
        let mut m = cluster(1, true, now);
        let h = ChunkHandle(1);
        m.start_bump(h, V6, vec![n(1), n(2)]);
        m.end_bump(h, false); // no target answered in time
        assert!(report(&mut m, 3, &[(1, 6)], now).is_empty(), "not a target");
        let newer = report(&mut m, 2, &[(1, 6)], now);
        assert_eq!(newer.iter().map(|v| v.reported).collect::<Vec<_>>(), [V6]);
    }

    #[test]
    fn every_target_of_failed_bumps_to_one_version_is_believed_until_one_is_recorded() {
        let now = Instant::now();
        let mut m = cluster(1, true, now);
        let h = ChunkHandle(1);
        m.start_bump(h, V6, vec![n(1)]);
        m.end_bump(h, false);
        // A second try of the same version, on another node: node 1 may
        // still take the first one late.
        m.start_bump(h, V6, vec![n(2)]);
        m.end_bump(h, false);
        assert_eq!(report(&mut m, 1, &[(1, 6)], now).iter().map(|v| v.reported).collect::<Vec<_>>(), [V6]);
        assert!(m.damaged_nodes(h).is_empty(), "{:?}", m.damaged_nodes(h));
        assert!(report(&mut m, 3, &[(1, 6)], now).is_empty(), "never a target");
        assert_eq!(m.damaged_nodes(h), vec![(n(3), V6)]);
    }

    #[test]
    fn a_bump_in_flight_is_expected_from_its_targets_only_and_late_takers_are_not_members() {
        let now = Instant::now();
        let mut m = cluster(1, true, now);
        let h = ChunkHandle(1);
        m.start_bump(h, V6, vec![n(1), n(2), n(3)]);
        assert!(report(&mut m, 1, &[(1, 6)], now).is_empty(), "not adopted from a report: the bump records it");
        assert!(report(&mut m, 3, &[(1, 6)], now).is_empty());
        assert!(report(&mut m, 66, &[(1, 6)], now).is_empty());
        assert_eq!(m.damaged_nodes(h), vec![(n(66), V6)], "a stranger's report of the bump's version was never issued");
        // The bump records V6 with the nodes that answered in time (1 and 2):
        // node 3 took it without answering, so it is held back.
        m.set_version(h, V6);
        m.add_replica(h, n(1), V6);
        m.add_replica(h, n(2), V6);
        m.set_members(h, V6, [n(1), n(2)]);
        m.drop_non_members(h, V6);
        m.end_bump(h, true);
        let current: Vec<NodeId> = m.current_replicas(h, now, DEAD_AFTER).into_iter().map(|r| r.node_id).collect();
        assert_eq!(current, [n(1), n(2)]);
        assert!(m.damaged_nodes(h).contains(&(n(3), V6)));
    }

    use crate::chunks::fixtures::{self, node as n};

    const V5: ChunkVersion = ChunkVersion(5);
    const V6: ChunkVersion = ChunkVersion(6);

    fn issued(bump: Option<&Bump>, member: Option<bool>) -> Issued<'_> {
        Issued { recorded: V5, bump, member, adopted_here: false, restored: false, adopting: None }
    }

    fn bump(targets: &[NodeId], running: bool) -> Bump {
        Bump { version: V6, targets: targets.to_vec(), running }
    }

    #[test]
    fn at_or_below_the_recorded_version_is_current_or_stale() {
        assert_eq!(judge_version(issued(None, None), n(1), V5), ReportedVersion::Current);
        assert_eq!(judge_version(issued(None, Some(false)), n(1), ChunkVersion(4)), ReportedVersion::Stale);
        assert_eq!(judge_version(issued(None, None), n(1), ChunkVersion(0)), ReportedVersion::Stale);
    }

    #[test]
    fn more_than_one_step_ahead_was_never_issued() {
        for far in [7, 1000, u64::MAX - 1, u64::MAX] {
            assert_eq!(judge_version(issued(None, None), n(1), ChunkVersion(far)), ReportedVersion::Unissued, "{far}");
            assert_eq!(judge_version(issued(Some(&bump(&[n(1)], true)), Some(true)), n(1), ChunkVersion(far)), ReportedVersion::Unissued);
        }
        // The recorded version at the top of the range has no next one.
        let top = Issued { recorded: ChunkVersion(u64::MAX), bump: None, member: None, adopted_here: false, restored: false, adopting: None };
        assert_eq!(judge_version(top, n(1), ChunkVersion(u64::MAX)), ReportedVersion::Current);
    }

    #[test]
    fn after_a_restore_the_first_newer_version_from_anyone_is_adopted_once() {
        let restored = Issued { restored: true, ..issued(None, Some(false)) };
        for far in [6, 7, 1000, u64::MAX] {
            assert_eq!(judge_version(restored, n(1), ChunkVersion(far)), ReportedVersion::Unrecorded, "{far}");
        }
        assert_eq!(judge_version(restored, n(1), V5), ReportedVersion::Current);
        assert_eq!(judge_version(restored, n(1), ChunkVersion(4)), ReportedVersion::Stale);
        // Once per chunk: another newer version meanwhile is not believed;
        // the one being recorded, from another holder, is expected.
        let adopted = Issued { adopted_here: true, adopting: Some(ChunkVersion(9)), ..restored };
        assert_eq!(judge_version(adopted, n(2), ChunkVersion(9)), ReportedVersion::InFlight);
        assert_eq!(judge_version(adopted, n(2), ChunkVersion(8)), ReportedVersion::Unissued);
        // This process's own bump is judged as ever.
        let running = bump(&[n(1)], true);
        let bumping = Issued { bump: Some(&running), ..restored };
        assert_eq!(judge_version(bumping, n(3), ChunkVersion(9)), ReportedVersion::Unissued);
    }

    #[test]
    fn one_step_ahead_is_a_bump_of_this_process_to_its_targets_only() {
        let running = bump(&[n(1), n(2)], true);
        assert_eq!(judge_version(issued(Some(&running), Some(true)), n(1), V6), ReportedVersion::InFlight);
        assert_eq!(judge_version(issued(Some(&running), None), n(3), V6), ReportedVersion::Unissued);
        // A bump that failed here: a target that took it late is believed.
        let failed = bump(&[n(1), n(2)], false);
        assert_eq!(judge_version(issued(Some(&failed), Some(true)), n(2), V6), ReportedVersion::Unrecorded);
        assert_eq!(judge_version(issued(Some(&failed), None), n(3), V6), ReportedVersion::Unissued);
    }

    #[test]
    fn one_step_ahead_without_a_bump_here_is_adopted_once_and_only_from_a_holder_of_the_recorded_version() {
        assert_eq!(judge_version(issued(None, Some(true)), n(1), V6), ReportedVersion::Unrecorded);
        assert_eq!(judge_version(issued(None, None), n(1), V6), ReportedVersion::Unrecorded, "members unknown");
        assert_eq!(judge_version(issued(None, Some(false)), n(9), V6), ReportedVersion::Unissued);
        // The previous process left at most one bump unrecorded: once one was
        // adopted, a report climbing further was never issued.
        let adopted = Issued { adopted_here: true, ..issued(None, None) };
        assert_eq!(judge_version(adopted, n(1), V6), ReportedVersion::Unissued);
    }
}
