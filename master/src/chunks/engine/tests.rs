//! The engine's sequencing on a fake clock: events in, commands out, no
//! I/O. Each test plays the driver by hand.

use std::time::{Duration, Instant};

use dfs_proto::wire::chunks::{BadReplica, Heartbeat, ReplicaReport};
use dfs_proto::{ChunkHandle, ChunkVersion, ErrorKind, InodeId, NodeId};

use super::*;
use crate::chunks::chunk_map::{ChunkMap, FileMeta};
use crate::chunks::safe_mode;

const LEASE: Duration = Duration::from_secs(60);
const DEAD_AFTER: Duration = Duration::from_secs(30);
const GRACE: Duration = Duration::from_secs(100);

use crate::chunks::fixtures::{heartbeat, node as n, replica};

fn config(safe: bool) -> ChunkConfig {
    let timeout = if safe { Duration::from_secs(3600) } else { Duration::ZERO };
    ChunkConfig {
        lease: LEASE,
        dead_after: DEAD_AFTER,
        monitor_interval: Duration::from_secs(1),
        copies_per_node: 2,
        gc_grace: GRACE,
        startup_delete_delay: Duration::ZERO,
        safe_mode: safe_mode::Rule { threshold: 1.0, extension: Duration::ZERO, timeout },
    }
}

struct Harness {
    e: Engine,
    now: Instant,
    next_req: ReqId,
}

impl Harness {
    fn new(nodes: u128) -> Harness {
        let t0 = Instant::now();
        let mut h = Harness { e: Engine::new(ChunkMap::default(), config(false), t0), now: t0, next_req: 1 };
        for i in 1..=nodes {
            h.heartbeat(i, Some(vec![]));
        }
        h.step(Event::Tick); // leaves safe mode (no chunks)
        h
    }

    fn step(&mut self, event: Event) -> Vec<Command> {
        self.e.step(self.now, event)
    }

    fn later(&mut self, d: Duration) {
        self.now += d;
    }

    fn heartbeat(&mut self, i: u128, report: Option<Vec<ReplicaReport>>) -> Vec<Command> {
        let hb = Heartbeat { report, registering: false, ..heartbeat(i) };
        let req = self.req();
        self.step(Event::Heartbeat { req, hb: Box::new(hb) })
    }

    fn req(&mut self) -> ReqId {
        self.next_req += 1;
        self.next_req
    }

    fn lease(&mut self, handle: u64) -> (ReqId, Vec<Command>) {
        let req = self.req();
        let file = FileMeta { replication: 3, chunk_size: 64 << 20 };
        let ask = LeaseAsk { inode: InodeId(2), index: handle, handle: ChunkHandle(handle), version: ChunkVersion(1), length: 0, file };
        (req, self.step(Event::Lease { req, ask }))
    }

    /// Answers every call and store write in `commands` (ok unless `fails`
    /// names the node), and what they lead to, until only replies are left.
    fn settle(&mut self, mut commands: Vec<Command>, fails: &[u128]) -> Vec<Command> {
        let mut replies = Vec::new();
        while let Some(c) = commands.pop() {
            let ok = |node: NodeId| !fails.iter().any(|f| n(*f) == node);
            let next = match c {
                Command::Create { op, node, .. } => self.step(Event::Created { op, node, ok: ok(node) }),
                Command::SetVersion { op, node, .. } => self.step(Event::VersionSet { op, node, ok: ok(node) }),
                Command::Store { op, .. } => self.step(Event::Stored { op, result: Ok(()) }),
                Command::Replicate { op, handle, version, .. } => {
                    // A whole copy: the chunk's committed bytes.
                    let length = self.e.map().chunk(handle).map_or(0, |m| m.length);
                    let report = ReplicaReport { handle, version, length, dirty: false };
                    self.step(Event::Copied { op, result: Ok(report) })
                }
                other => {
                    replies.push(other);
                    Vec::new()
                }
            };
            commands.extend(next);
        }
        replies
    }
}

fn lease_reply(commands: &[Command], want: ReqId) -> Option<&Result<Granted, NsError>> {
    commands.iter().find_map(|c| match c {
        Command::Reply { req, answer: Answer::Lease(r) } if *req == want => Some(r),
        _ => None,
    })
}

fn calls(commands: &[Command]) -> Vec<String> {
    let mut out: Vec<String> = commands
        .iter()
        .filter_map(|c| match c {
            Command::Create { node, .. } => Some(format!("create {node}")),
            Command::SetVersion { node, version, .. } => Some(format!("version {version} {node}")),
            Command::Replicate { target, .. } => Some(format!("replicate to {target}")),
            Command::Store { mutation, .. } => Some(format!("store {}", mutation_name(mutation))),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

fn mutation_name(m: &Mutation) -> &'static str {
    match m {
        Mutation::SetChunkVersion { .. } => "version",
        Mutation::AddChunkMember { .. } => "member",
        Mutation::ForgetDeletedChunks(_) => "forget",
        Mutation::EndRestore => "end restore",
        _ => "other",
    }
}

#[test]
fn a_new_chunk_is_placed_and_leased_at_its_first_version() {
    let mut h = Harness::new(3);
    let (req, out) = h.lease(7);
    assert_eq!(calls(&out).len(), 3, "one create per target: {:?}", calls(&out));
    assert!(lease_reply(&out, req).is_none(), "no answer before the replicas exist");
    let replies = h.settle(out, &[]);
    let g = lease_reply(&replies, req).unwrap().as_ref().unwrap();
    assert_eq!((g.version, g.secondaries.len(), g.remaining), (ChunkVersion(1), 2, LEASE));
}

#[test]
fn a_placement_that_missed_a_target_is_bumped_before_the_lease() {
    let mut h = Harness::new(3);
    let (req, out) = h.lease(7);
    let replies = h.settle(out, &[3]);
    let g = lease_reply(&replies, req).unwrap().as_ref().unwrap();
    assert_eq!(g.version, ChunkVersion(2), "the missed target may create its replica late, empty");
    assert_eq!(1 + g.secondaries.len(), 2);
    assert_eq!(h.e.map().chunk(ChunkHandle(7)).unwrap().version, ChunkVersion(2));
}

#[test]
fn a_running_lease_is_kept_and_an_expired_one_bumps_the_version() {
    let mut h = Harness::new(3);
    let (req, out) = h.lease(7);
    let first = lease_reply(&h.settle(out, &[]), req).unwrap().clone().unwrap();
    h.later(Duration::from_secs(10));
    let (req, out) = h.lease(7);
    assert!(calls(&out).is_empty(), "kept: no call");
    assert_eq!(lease_reply(&out, req).unwrap().as_ref().unwrap().primary, first.primary);
    h.later(LEASE + Duration::from_secs(1));
    for i in 1..=3 {
        h.heartbeat(i, None);
    }
    let (req, out) = h.lease(7);
    assert_eq!(calls(&out).iter().filter(|c| c.starts_with("version 2")).count(), 3);
    let g = lease_reply(&h.settle(out, &[]), req).unwrap().clone().unwrap();
    assert_eq!(g.version, ChunkVersion(2));
}

#[test]
fn no_second_primary_while_the_first_ones_lease_runs() {
    let mut h = Harness::new(3);
    let (req, out) = h.lease(7);
    let first = lease_reply(&h.settle(out, &[]), req).unwrap().clone().unwrap();
    // The primary goes silent; the others keep heartbeating.
    h.later(DEAD_AFTER + Duration::from_secs(1));
    let primary = (1..=3u128).find(|i| n(*i) == first.primary.node_id).unwrap();
    (1..=3).filter(|i| *i != primary).for_each(|i| drop(h.heartbeat(i, None)));
    let (req, out) = h.lease(7);
    let e = lease_reply(&out, req).unwrap().as_ref().unwrap_err();
    assert_eq!(e.kind, ErrorKind::EAGAIN, "{e}");
    h.later(LEASE);
    (1..=3).filter(|i| *i != primary).for_each(|i| drop(h.heartbeat(i, None)));
    let (req, out) = h.lease(7);
    let g = lease_reply(&h.settle(out, &[]), req).unwrap().clone().unwrap();
    assert_ne!(g.primary.node_id, first.primary.node_id);
    assert_eq!(g.version, ChunkVersion(2));
}

/// The old master held one lock across every grant's calls: one hung
/// chunkserver stalled every lease. Now a chunk waits only for its own.
#[test]
fn a_hung_chunkserver_delays_only_the_chunks_it_holds() {
    let mut h = Harness::new(4);
    // Chunk 7 on nodes 1-3 (equal free space: ties break by id).
    let (req, out) = h.lease(7);
    lease_reply(&h.settle(out, &[]), req).unwrap().as_ref().unwrap();
    h.later(LEASE + Duration::from_secs(1));
    (1..=4).for_each(|i| drop(h.heartbeat(i, None)));
    // Chunk 7's bump waits on its three nodes; say node 3 hangs.
    let (req7, out7) = h.lease(7);
    let hung: Vec<Command> = out7.into_iter().collect();
    assert_eq!(calls(&hung).len(), 3);
    // A second writer of chunk 7 queues behind the bump...
    let (req7b, out) = h.lease(7);
    assert!(out.is_empty(), "queued: {:?}", calls(&out));
    // ...while a new chunk is placed and leased at once.
    let (req9, out) = h.lease(9);
    let replies = h.settle(out, &[]);
    assert!(lease_reply(&replies, req9).unwrap().is_ok());
    // Node 3's call fails at last: chunk 7 goes on without it, and the
    // queued request gets the same lease.
    let replies = h.settle(hung, &[3]);
    let a = lease_reply(&replies, req7).unwrap().clone().unwrap();
    let b = lease_reply(&replies, req7b).unwrap().clone().unwrap();
    assert_eq!((a.version, a.primary.node_id), (b.version, b.primary.node_id));
    assert_eq!(a.secondaries.len(), 1, "node 3 missed the bump: stale");
}

#[test]
fn a_new_chunk_is_not_placed_on_a_node_that_missed_heartbeats_while_others_can_take_it() {
    let mut h = Harness::new(4);
    // Node 1 (first by id among equals) goes quiet: more than a third of
    // the dead interval without a heartbeat, not yet dead.
    h.later(DEAD_AFTER / 2);
    (2..=4).for_each(|i| drop(h.heartbeat(i, None)));
    let (_, out) = h.lease(7);
    let targets: Vec<String> = calls(&out);
    assert_eq!(targets.len(), 3);
    assert!(out.iter().all(|c| !matches!(c, Command::Create { node, .. } if *node == n(1))), "{targets:?}");
    // Node 4 goes quiet too: three targets need one of the quiet nodes.
    h.later(DEAD_AFTER / 3 + Duration::from_millis(1));
    (2..=3).for_each(|i| drop(h.heartbeat(i, None)));
    let (_, out) = h.lease(8);
    let nodes: Vec<NodeId> = out.iter().filter_map(|c| if let Command::Create { node, .. } = c { Some(*node) } else { None }).collect();
    assert_eq!(nodes.len(), 3, "{:?}", calls(&out));
    assert!(nodes.contains(&n(2)) && nodes.contains(&n(3)), "the fresh nodes first: {:?}", calls(&out));
}

#[test]
fn a_replica_that_missed_a_write_is_left_behind_and_the_lease_goes_on() {
    let mut h = Harness::new(3);
    let (req, out) = h.lease(7);
    let g = lease_reply(&h.settle(out, &[]), req).unwrap().clone().unwrap();
    let victim = g.secondaries[0].node_id;
    let bad = BadReplica { handle: ChunkHandle(7), node_id: Some(victim), address: None, corrupt: false, reporter_version: Some(g.version), token: None };
    let req = h.req();
    let out = h.step(Event::BadReplica { req, bad });
    assert_eq!(calls(&out).len(), 2, "the two others move to version 2: {:?}", calls(&out));
    let replies = h.settle(out, &[]);
    assert!(matches!(replies.as_slice(), [Command::Reply { answer: Answer::Done(Ok(())), .. }]));
    let lease = h.e.lease_of(ChunkHandle(7)).unwrap();
    assert_eq!((lease.version, lease.primary), (ChunkVersion(2), g.primary.node_id));
    assert!(!lease.members.contains(&victim));
    // Reported again at version 1, the victim is stale.
    h.heartbeat(victim.0.as_u128(), Some(vec![ReplicaReport { handle: ChunkHandle(7), version: ChunkVersion(1), length: 0, dirty: false }]));
    let counts = h.e.map().health(ChunkHandle(7), h.now, DEAD_AFTER);
    assert_eq!((counts.live, counts.stale), (2, 1));
}

#[test]
fn a_lost_node_is_replaced_by_a_fenced_copy_that_counts_once_recorded() {
    let mut h = Harness::new(4);
    let (req, out) = h.lease(7);
    lease_reply(&h.settle(out, &[]), req).unwrap().as_ref().unwrap();
    let holders: Vec<u128> = (1..=4).filter(|i| h.e.map().replica_version(ChunkHandle(7), n(*i)).is_some()).collect();
    let spare = (1..=4).find(|i| !holders.contains(i)).unwrap();
    h.later(DEAD_AFTER + Duration::from_secs(1));
    // The first holder dies: the others and the spare heartbeat on.
    holders[1..].iter().chain([&spare]).for_each(|i| drop(h.heartbeat(*i, None)));
    let out = h.step(Event::Tick);
    assert_eq!(calls(&out), vec!["version 2 ".to_string() + &n(holders[1]).to_string(), "version 2 ".to_string() + &n(holders[2]).to_string()]);
    assert!(h.e.lease_of(ChunkHandle(7)).is_none(), "the fence revokes the lease");
    let (req, queued) = h.lease(7);
    assert!(queued.is_empty(), "the writer waits for the fence");
    let replies = h.settle(out, &[]);
    let e = lease_reply(&replies, req).unwrap().as_ref().unwrap_err();
    assert_eq!(e.kind, ErrorKind::EAGAIN, "no lease while the copy runs: {e}");
    assert_eq!(h.e.map().health(ChunkHandle(7), h.now, DEAD_AFTER).live, 3, "the copy counts");
    assert_eq!(h.e.stats().copies_done.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn removed_chunks_are_deleted_after_the_grace_and_their_records_dropped() {
    let mut h = Harness::new(3);
    let (req, out) = h.lease(7);
    lease_reply(&h.settle(out, &[]), req).unwrap().as_ref().unwrap();
    h.step(Event::ChunksRemoved { chunks: vec![(ChunkHandle(7), Duration::ZERO)] });
    assert!(calls(&h.step(Event::Tick)).is_empty());
    assert_eq!(h.e.summary().garbage_chunks, 1);
    h.later(GRACE);
    (1..=3).for_each(|i| drop(h.heartbeat(i, None)));
    assert_eq!(calls(&h.step(Event::Tick)), vec!["store forget"]);
    let deletes: usize = (1..=3)
        .flat_map(|i| h.heartbeat(i, None))
        .map(|c| match c {
            Command::Reply { answer: Answer::Heartbeat(Ok(r)), .. } => r.delete.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(deletes, 3);
}

#[test]
fn safe_mode_holds_copies_and_leases_until_the_replicas_report() {
    let t0 = Instant::now();
    let mut map = ChunkMap::default();
    map.set_file(InodeId(2), FileMeta { replication: 3, chunk_size: 64 << 20 });
    map.record_chunk(ChunkHandle(7), crate::chunks::chunk_map::ChunkMeta { inode: InodeId(2), index: 0, version: ChunkVersion(4), length: 4096 });
    let mut h = Harness { e: Engine::new(map, config(true), t0), now: t0, next_req: 1 };
    let rep = |v| Some(vec![ReplicaReport { handle: ChunkHandle(7), version: ChunkVersion(v), length: 4096, dirty: false }]);
    (1..=3).for_each(|i| drop(h.heartbeat(i, Some(vec![]))));
    assert!(calls(&h.step(Event::Tick)).is_empty(), "nothing copied in safe mode");
    assert!(h.e.safe_mode_on());
    let (req, out) = h.lease(7);
    assert_eq!(lease_reply(&out, req).unwrap().as_ref().unwrap_err().kind, ErrorKind::EAGAIN, "no replica reported yet");
    h.heartbeat(1, rep(4));
    let out = h.step(Event::Tick);
    assert!(!h.e.safe_mode_on(), "every chunk reported");
    assert_eq!(calls(&out), vec![format!("version 5 {}", n(1))], "then the copies start, behind one fence");
    h.settle(out, &[]);
    assert_eq!(h.e.map().health(ChunkHandle(7), h.now, DEAD_AFTER).live, 3, "both copies made in one pass");
    assert!(!h.e.safe_mode_on());
}

/// The soak, seed 10682083722766782814: a master was killed after it had
/// allocated a chunk (recorded in the namespace) and before any create
/// reached a chunkserver. The next process knew the chunk from the
/// namespace alone, no node ever reported it, and every lease failed with
/// "no live current replica" for good. Once safe mode is over it is placed
/// as a new chunk; one with committed bytes is not (they are lost, and a
/// holder may still come back).
#[test]
fn a_chunk_allocated_but_never_placed_is_placed_after_safe_mode() {
    let t0 = Instant::now();
    let mut map = ChunkMap::default();
    map.set_file(InodeId(2), FileMeta { replication: 3, chunk_size: 64 << 20 });
    for (handle, length) in [(7, 0), (8, 4096)] {
        map.record_chunk(ChunkHandle(handle), crate::chunks::chunk_map::ChunkMeta { inode: InodeId(2), index: handle, version: ChunkVersion(1), length });
    }
    let mut h = Harness { e: Engine::new(map, config(true), t0), now: t0, next_req: 1 };
    (1..=3).for_each(|i| drop(h.heartbeat(i, Some(vec![]))));
    let (req, out) = h.lease(7);
    assert_eq!(lease_reply(&out, req).unwrap().as_ref().unwrap_err().kind, ErrorKind::EAGAIN, "in safe mode, its holders may not have reported yet");
    h.step(Event::LeaveSafeMode);
    let (req, out) = h.lease(7);
    assert_eq!(calls(&out).len(), 3, "placed on three targets: {:?}", calls(&out));
    let g = lease_reply(&h.settle(out, &[]), req).unwrap().clone().unwrap();
    assert_eq!((g.version, g.secondaries.len()), (ChunkVersion(1), 2));
    assert_eq!(h.e.map().health(ChunkHandle(7), h.now, DEAD_AFTER).live, 3);
    let (req, out) = h.lease(8);
    assert!(calls(&out).is_empty(), "committed bytes are not placed anew: {:?}", calls(&out));
    assert_eq!(lease_reply(&out, req).unwrap().as_ref().unwrap_err().kind, ErrorKind::EIO);
}

/// Safe mode waits for the chunks holding committed bytes only: one a dead
/// master allocated but never placed (length 0) has nothing to report,
/// and would hold safe mode until its timeout (a failover's new leader
/// then refused leases on every chunk for a minute).
#[test]
fn safe_mode_waits_only_for_chunks_with_committed_bytes() {
    let t0 = Instant::now();
    let mut map = ChunkMap::default();
    map.set_file(InodeId(2), FileMeta { replication: 1, chunk_size: 64 << 20 });
    for (handle, length) in [(7, 0), (8, 4096)] {
        map.record_chunk(ChunkHandle(handle), crate::chunks::chunk_map::ChunkMeta { inode: InodeId(2), index: handle, version: ChunkVersion(1), length });
    }
    let mut h = Harness { e: Engine::new(map, config(true), t0), now: t0, next_req: 1 };
    assert_eq!(h.e.map().reported(), (0, 1));
    h.heartbeat(1, Some(vec![replica(8, 1)]));
    assert_eq!(h.e.map().reported(), (1, 1), "chunk 7 is not waited for");
}

/// An engine in safe mode over a restored namespace: chunks 7 and 8 of
/// one file, recorded at version 4.
fn restored() -> Harness {
    let t0 = Instant::now();
    let mut map = ChunkMap::default();
    map.set_file(InodeId(2), FileMeta { replication: 3, chunk_size: 64 << 20 });
    for handle in [7, 8] {
        map.record_chunk(
            ChunkHandle(handle),
            crate::chunks::chunk_map::ChunkMeta { inode: InodeId(2), index: handle, version: ChunkVersion(4), length: 1 << 20 },
        );
    }
    map.set_restored(true);
    Harness { e: Engine::new(map, config(true), t0), now: t0, next_req: 1 }
}

#[test]
fn a_restore_outlives_safe_mode_until_every_chunk_is_reported() {
    let mut h = restored();
    h.heartbeat(1, Some(vec![replica(7, 4)]));
    // An operator ends safe mode while chunk 8's holder still boots.
    let out = h.step(Event::LeaveSafeMode);
    assert!(!calls(&out).contains(&"store end restore".to_string()));
    assert!(calls(&h.step(Event::Tick)).iter().all(|c| c != "store end restore"));
    // It comes, written three times since the backup: still adopted.
    let out = h.heartbeat(2, Some(vec![replica(8, 7)]));
    assert_eq!(calls(&out), vec!["store version"]);
    h.settle(out, &[]);
    assert_eq!(h.e.map().chunk(ChunkHandle(8)).unwrap().version, ChunkVersion(7));
    assert!(calls(&h.step(Event::Tick)).contains(&"store end restore".to_string()));
}

#[test]
fn after_a_restore_a_version_written_since_is_adopted_until_safe_mode_ends() {
    let mut h = restored();
    // Chunk 7 was written three times after the backup; node 2 missed the
    // last write.
    let out = h.heartbeat(1, Some(vec![replica(7, 7), replica(8, 4)]));
    assert_eq!(calls(&out), vec!["store version"], "three steps ahead: adopted");
    h.settle(out, &[]);
    assert_eq!(h.e.map().chunk(ChunkHandle(7)).unwrap().version, ChunkVersion(7));
    let out = h.heartbeat(2, Some(vec![replica(7, 6), replica(8, 4)]));
    assert!(calls(&out).is_empty(), "an older one is stale, not adopted");
    let current: Vec<NodeId> = h.e.map().current_replicas(ChunkHandle(7), h.now, DEAD_AFTER).iter().map(|r| r.node_id).collect();
    assert_eq!(current, vec![n(1)]);
    // Every chunk reported: safe mode ends, and so does the restore.
    let out = h.step(Event::Tick);
    assert!(!h.e.safe_mode_on());
    assert!(calls(&out).contains(&"store end restore".to_string()), "{:?}", calls(&out));
    assert!(!h.e.map().is_restored());
    h.settle(out, &[]);
    let out = h.heartbeat(3, Some(vec![replica(8, 9)]));
    assert!(calls(&out).is_empty(), "after it, far ahead is never issued");
    assert_eq!(h.e.map().chunk(ChunkHandle(8)).unwrap().version, ChunkVersion(4));
}

/// The heartbeat answers' deletions for `nodes`, as (node, handle).
fn deletions(h: &mut Harness, nodes: impl IntoIterator<Item = u128>) -> Vec<(u128, u64)> {
    let mut out = Vec::new();
    for i in nodes {
        for c in h.heartbeat(i, None) {
            if let Command::Reply { answer: Answer::Heartbeat(Ok(r)), .. } = c {
                out.extend(r.delete.iter().map(|d| (i, d.handle.0)));
            }
        }
    }
    out
}

#[test]
fn a_draining_node_is_copied_off_then_drained_and_a_surplus_replica_is_trimmed() {
    let mut h = Harness::new(4);
    let (req, out) = h.lease(7);
    lease_reply(&h.settle(out, &[]), req).unwrap().as_ref().unwrap();
    h.later(LEASE + Duration::from_secs(1));
    deletions(&mut h, 1..=4);
    // Node 1 holds a replica and is decommissioned: the chunk is copied to node 4.
    h.step(Event::Decommission { node: n(1), on: true });
    let out = h.step(Event::Tick);
    assert!(calls(&out).iter().all(|c| c.starts_with("version 2")), "{:?}", calls(&out));
    h.settle(out, &[]);
    assert_eq!(h.e.map().replica_version(ChunkHandle(7), n(4)), Some(ChunkVersion(2)));
    h.step(Event::Tick);
    let state = |h: &Harness| h.e.map().chunkservers(h.now, DEAD_AFTER).into_iter().find(|c| c.node_id == n(1)).unwrap().state;
    assert_eq!(state(&h), "decommissioned", "drained: safe to remove");
    // Recommissioned, node 1 counts again: four replicas of three wanted.
    h.step(Event::Decommission { node: n(1), on: false });
    h.heartbeat(1, Some(vec![replica(7, 2)]));
    h.step(Event::Tick);
    assert_eq!(deletions(&mut h, 1..=4).len(), 1, "one surplus replica trimmed");
    assert_eq!(h.e.map().health(ChunkHandle(7), h.now, DEAD_AFTER).live, 3);
}

#[test]
fn a_report_at_a_version_never_issued_is_held_and_never_served() {
    let mut h = Harness::new(3);
    let (req, out) = h.lease(7);
    lease_reply(&h.settle(out, &[]), req).unwrap().as_ref().unwrap();
    // A forged (or broken) report of node 3 at version 9.
    let out = h.heartbeat(3, Some(vec![replica(7, 9)]));
    assert!(calls(&out).is_empty(), "never adopted (no store write)");
    assert_eq!(h.e.map().chunk(ChunkHandle(7)).unwrap().version, ChunkVersion(1));
    let current: Vec<NodeId> = h.e.map().current_replicas(ChunkHandle(7), h.now, DEAD_AFTER).iter().map(|r| r.node_id).collect();
    assert_eq!(current, vec![n(1), n(2)], "node 3 is not served");
    // One step ahead from a holder, with no bump here: the previous
    // master's last bump, adopted once and recorded.
    let out = h.heartbeat(1, Some(vec![replica(7, 2)]));
    assert_eq!(calls(&out), vec!["store version"]);
    h.settle(out, &[]);
    assert_eq!(h.e.map().chunk(ChunkHandle(7)).unwrap().version, ChunkVersion(2));
}

#[test]
fn replicas_of_unknown_chunks_wait_for_the_grace_and_the_startup_delay() {
    let t0 = Instant::now();
    let delay = Duration::from_secs(3600);
    let mut h = Harness { e: Engine::new(ChunkMap::default(), ChunkConfig { startup_delete_delay: delay, ..config(false) }, t0), now: t0, next_req: 1 };
    h.heartbeat(1, Some(vec![replica(40, 3)]));
    h.step(Event::Tick);
    h.later(GRACE);
    h.step(Event::Tick);
    assert!(deletions(&mut h, [1]).is_empty(), "not before the start-up delay");
    h.later(delay);
    h.step(Event::Tick);
    assert_eq!(deletions(&mut h, [1]), vec![(1, 40)]);
}

/// Simulator seed 1 (and 132): a replica on a node gone silent (its disk
/// replaced, not yet dead to the master) counted toward trimming, and the
/// replica on a node still heartbeating was deleted: the last real copy.
#[test]
fn no_replica_is_trimmed_for_one_on_a_node_gone_silent() {
    let mut h = Harness::new(3);
    let (req, out) = h.lease(7);
    lease_reply(&h.settle(out, &[]), req).unwrap().as_ref().unwrap();
    h.step(Event::FileChanged { inode: InodeId(2), file: FileMeta { replication: 1, chunk_size: 64 << 20 } });
    h.later(LEASE + Duration::from_secs(1));
    (1..=3).for_each(|i| drop(h.heartbeat(i, None)));
    // Nodes 2 and 3 go silent (still live for DEAD_AFTER); node 1 beats on.
    h.later(DEAD_AFTER / 2);
    h.heartbeat(1, None);
    h.step(Event::Tick);
    assert!(deletions(&mut h, [1]).is_empty(), "node 1 holds the only replica known to exist");
    // Heard from again, the surplus is trimmed down to one.
    (2..=3).for_each(|i| drop(h.heartbeat(i, None)));
    h.step(Event::Tick);
    assert_eq!(deletions(&mut h, 1..=3).len(), 2);
    assert_eq!(h.e.map().health(ChunkHandle(7), h.now, DEAD_AFTER).live, 1);
}

/// Simulator seed 80: a lease request queued behind a version bump carried
/// the file as it was read before a replication change; when it ran, it
/// put the old replication back, and the chunk kept a surplus replica.
#[test]
fn a_queued_lease_request_does_not_undo_a_replication_change() {
    let mut h = Harness::new(3);
    let (req, out) = h.lease(7);
    lease_reply(&h.settle(out, &[]), req).unwrap().as_ref().unwrap();
    h.later(LEASE + Duration::from_secs(1));
    (1..=3).for_each(|i| drop(h.heartbeat(i, None)));
    let (_, bump) = h.lease(7);
    let (queued, out) = h.lease(7);
    assert!(out.is_empty(), "queued behind the bump");
    h.step(Event::FileChanged { inode: InodeId(2), file: FileMeta { replication: 1, chunk_size: 64 << 20 } });
    let replies = h.settle(bump, &[]);
    assert!(lease_reply(&replies, queued).unwrap().is_ok());
    assert_eq!(h.e.map().file(InodeId(2)).map(|f| f.replication), Some(1), "the change stands");
}

/// Simulator seed 137: every create of a new chunk answered too late, but
/// one had made its replica, which reported. The placement recorded no
/// member for the version, so that replica was disowned at its next report
/// and the chunk could never be leased again.
#[test]
fn a_replica_whose_create_answer_was_lost_is_not_disowned() {
    let mut h = Harness::new(3);
    let (req, out) = h.lease(7);
    h.heartbeat(1, Some(vec![replica(7, 1)])); // made, before its answer was lost
    let replies = h.settle(out, &[1, 2, 3]);
    assert_eq!(lease_reply(&replies, req).unwrap().as_ref().unwrap_err().kind, ErrorKind::EIO);
    h.heartbeat(1, Some(vec![replica(7, 1)]));
    let (req, out) = h.lease(7);
    let g = lease_reply(&h.settle(out, &[]), req).unwrap().clone().unwrap();
    assert_eq!((g.primary.node_id, g.version), (n(1), ChunkVersion(2)));
}

/// Simulator seed 264: a placement missed one target (its create's answer
/// was lost, but it made the replica) and the bump before the lease failed.
/// The placed replicas were then lost; the one left was disowned as not a
/// member of the first version, though no lease was ever granted at it.
#[test]
fn a_late_created_replica_of_a_placement_that_missed_it_is_not_disowned() {
    let mut h = Harness::new(3);
    let (req, out) = h.lease(7);
    h.heartbeat(3, Some(vec![replica(7, 1)]));
    let mut next = Vec::new();
    for c in out {
        if let Command::Create { op, node, .. } = c {
            next.extend(h.step(Event::Created { op, node, ok: node != n(3) }));
        }
    }
    let replies = h.settle(next, &[1, 2, 3]); // the bump to version 2 fails
    assert_eq!(lease_reply(&replies, req).unwrap().as_ref().unwrap_err().kind, ErrorKind::EIO);
    // Nodes 1 and 2 lose their disks; node 3 reports its replica again.
    h.heartbeat(1, Some(vec![]));
    h.heartbeat(2, Some(vec![]));
    h.heartbeat(3, Some(vec![replica(7, 1)]));
    let (req, out) = h.lease(7);
    let g = lease_reply(&h.settle(out, &[]), req).unwrap().clone().unwrap();
    assert_eq!((g.primary.node_id, g.version), (n(3), ChunkVersion(2)));
}

/// Simulator seed 285: every target of a new chunk created its replica, but
/// one went silent past the dead interval before the last create answered.
/// The lease (at the first version, no bump) named only the live ones, the
/// writes went to them, and the silent one, back, was current at the same
/// version without any of them.
#[test]
fn a_target_silent_when_its_placement_ends_does_not_stay_at_the_leased_version() {
    let mut h = Harness::new(3);
    let (req, out) = h.lease(7);
    h.later(DEAD_AFTER + Duration::from_secs(1));
    (1..=2).for_each(|i| drop(h.heartbeat(i, None)));
    let g = lease_reply(&h.settle(out, &[]), req).unwrap().clone().unwrap();
    assert_eq!(g.version, ChunkVersion(2), "bumped past the silent target");
    h.heartbeat(3, Some(vec![replica(7, 1)]));
    let current: Vec<NodeId> = h.e.map().current_replicas(ChunkHandle(7), h.now, DEAD_AFTER).into_iter().map(|r| r.node_id).collect();
    assert_eq!(current, vec![n(1), n(2)], "node 3 missed the lease's writes: stale");
}

/// Simulator seed 37: a surplus replica was queued for deletion while the
/// other one was believed good; that one was then reported corrupt, and the
/// queued deletion still went out with the next heartbeat: the last copy.
#[test]
fn a_queued_surplus_deletion_is_taken_back_when_the_copy_kept_turns_out_corrupt() {
    let mut h = Harness::new(3);
    let (req, out) = h.lease(7);
    lease_reply(&h.settle(out, &[]), req).unwrap().as_ref().unwrap();
    h.step(Event::FileChanged { inode: InodeId(2), file: FileMeta { replication: 1, chunk_size: 64 << 20 } });
    h.later(LEASE + Duration::from_secs(1));
    (1..=3).for_each(|i| drop(h.heartbeat(i, None)));
    h.step(Event::Tick); // two of three queued for deletion: nodes 1 and 2
    let bad = BadReplica { handle: ChunkHandle(7), node_id: Some(n(3)), address: None, corrupt: true, reporter_version: None, token: None };
    let req = h.req();
    let out = h.step(Event::BadReplica { req, bad });
    h.settle(out, &[]);
    assert!(deletions(&mut h, 1..=2).is_empty(), "the copies left are kept");
    (1..=2).for_each(|i| drop(h.heartbeat(i, Some(vec![replica(7, 1)]))));
    assert_eq!(h.e.map().health(ChunkHandle(7), h.now, DEAD_AFTER).live, 2);
}

/// Simulator seed 633: a member of a running lease crashed with a write not
/// synced, came back and was held back (dirty), then took the lease's next
/// writes at the same version over the gap; its next, ordinary report no
/// longer held it back, and it was served without the lost write.
#[test]
fn a_lease_member_back_from_a_crash_with_lost_writes_is_left_behind() {
    let mut h = Harness::new(3);
    let (req, out) = h.lease(7);
    let g = lease_reply(&h.settle(out, &[]), req).unwrap().clone().unwrap();
    let crashed = g.secondaries[0].node_id;
    let report = vec![ReplicaReport { dirty: true, ..replica(7, 1) }];
    let hb = Heartbeat { chunk_count: 1, report: Some(report), address: g.secondaries[0].address.clone(), ..heartbeat(crashed.0.as_u128()) };
    let req = h.req();
    let out = h.step(Event::Heartbeat { req, hb: Box::new(hb) });
    assert_eq!(calls(&out).iter().filter(|c| c.starts_with("version 2")).count(), 2, "the two others move on: {:?}", calls(&out));
    h.settle(out, &[]);
    let lease = h.e.lease_of(ChunkHandle(7)).unwrap();
    assert_eq!(lease.version, ChunkVersion(2), "the writer's next write at version 1 is refused by all");
    assert!(!lease.members.contains(&crashed));
    // Its next ordinary report finds it stale.
    h.heartbeat(crashed.0.as_u128(), Some(vec![replica(7, 1)]));
    assert_eq!(h.e.map().health(ChunkHandle(7), h.now, DEAD_AFTER).stale, 1);
}

/// Simulator seed 1462: a stale replica was queued for deletion
/// while enough current ones existed; one of those was then reported
/// corrupt, and the stale one (holding every acknowledged write, as no write
/// came after the bump) was still deleted.
#[test]
fn a_queued_stale_deletion_is_taken_back_when_a_current_replica_is_lost() {
    let mut h = Harness::new(3);
    let (req, out) = h.lease(7);
    let g = lease_reply(&h.settle(out, &[]), req).unwrap().clone().unwrap();
    let behind = g.secondaries[1].node_id;
    let bad = BadReplica { handle: ChunkHandle(7), node_id: Some(behind), address: None, corrupt: false, reporter_version: Some(g.version), token: None };
    let req = h.req();
    let out = h.step(Event::BadReplica { req, bad });
    h.settle(out, &[]); // the two others move to version 2
    h.step(Event::FileChanged { inode: InodeId(2), file: FileMeta { replication: 2, chunk_size: 64 << 20 } });
    h.later(LEASE + Duration::from_secs(1));
    (1..=3).filter(|i| n(*i) != behind).for_each(|i| drop(h.heartbeat(i, None)));
    h.heartbeat(behind.0.as_u128(), Some(vec![replica(7, 1)]));
    h.step(Event::Tick); // the stale replica is queued for deletion
    let kept = g.primary.node_id;
    let bad = BadReplica { handle: ChunkHandle(7), node_id: Some(kept), address: None, corrupt: true, reporter_version: None, token: None };
    let req = h.req();
    let out = h.step(Event::BadReplica { req, bad });
    h.settle(out, &[]);
    assert!(deletions(&mut h, [behind.0.as_u128()]).is_empty(), "one current replica left: the stale one stays");
}

/// Simulator seed 1316: a surplus replica was queued for deletion
/// while another node held the copy to keep; the node to delete from went
/// silent, the other lost its disk meanwhile (not yet dead to the master),
/// and the stale order went out when the silent node came back.
#[test]
fn a_node_back_from_silence_gets_no_deletion_decided_before() {
    let mut h = Harness::new(3);
    let (req, out) = h.lease(7);
    lease_reply(&h.settle(out, &[]), req).unwrap().as_ref().unwrap();
    h.step(Event::FileChanged { inode: InodeId(2), file: FileMeta { replication: 1, chunk_size: 64 << 20 } });
    h.later(LEASE + Duration::from_secs(1));
    (1..=3).for_each(|i| drop(h.heartbeat(i, None)));
    h.step(Event::Tick); // nodes 1 and 2 are to delete theirs, node 3 keeps it
    h.later(DEAD_AFTER / 2);
    h.heartbeat(3, None);
    assert!(deletions(&mut h, [1, 2]).is_empty(), "silent meanwhile: the orders are taken back");
    (1..=2).for_each(|i| drop(h.heartbeat(i, Some(vec![replica(7, 1)]))));
    assert_eq!(h.e.map().health(ChunkHandle(7), h.now, DEAD_AFTER).live, 3, "judged again from their reports");
}

/// Simulator seed 350: a version bump was under way on one replica (the
/// other's node had been silent when it started) and the pass trimmed the
/// other one as surplus; the bumped one turned out corrupt (its report
/// queued behind the bump), and no copy was left.
#[test]
fn no_replica_is_deleted_while_an_operation_on_its_chunk_is_under_way() {
    let mut h = Harness::new(3);
    let (req, out) = h.lease(7);
    lease_reply(&h.settle(out, &[]), req).unwrap().as_ref().unwrap();
    h.step(Event::FileChanged { inode: InodeId(2), file: FileMeta { replication: 1, chunk_size: 64 << 20 } });
    h.later(LEASE + Duration::from_secs(1));
    (1..=3).for_each(|i| drop(h.heartbeat(i, None)));
    let (req, bump) = h.lease(7); // its calls are under way
    h.step(Event::Tick);
    assert!(deletions(&mut h, 1..=3).is_empty(), "nothing trimmed under the bump");
    let g = lease_reply(&h.settle(bump, &[]), req).unwrap().clone().unwrap();
    assert_eq!(g.version, ChunkVersion(2));
}

/// Simulator seed 2795: a target of a lease's version bump answered it,
/// then went silent past the dead interval before the lease was answered.
/// The lease named only the live replicas, the writes went to them, and the
/// silent one, a member of the new version, was current when it came back.
#[test]
fn a_lease_names_every_replica_that_took_its_version() {
    let mut h = Harness::new(3);
    let (req, out) = h.lease(7);
    lease_reply(&h.settle(out, &[]), req).unwrap().as_ref().unwrap();
    h.later(LEASE + Duration::from_secs(1));
    (1..=3).for_each(|i| drop(h.heartbeat(i, None)));
    h.later(DEAD_AFTER - Duration::from_secs(1));
    (1..=2).for_each(|i| drop(h.heartbeat(i, None)));
    let (req, bump) = h.lease(7); // node 3 still live: a target
    assert_eq!(calls(&bump).len(), 3);
    h.later(Duration::from_secs(2)); // node 3 is dead by the time the lease is answered
    let g = lease_reply(&h.settle(bump, &[]), req).unwrap().clone().unwrap();
    assert_eq!(g.version, ChunkVersion(2));
    let named: Vec<NodeId> = std::iter::once(&g.primary).chain(&g.secondaries).map(|r| r.node_id).collect();
    assert!(named.contains(&n(3)), "node 3 took version 2: the writes must reach it: {named:?}");
}

/// Simulator seed 4795: a copy's target reported the copy (at the fenced
/// version, not yet among its members) before the copy's call answered; the
/// pass deleted it as damaged, the copy then counted, and trimming to the
/// file's one replica deleted the other two: no copy was left.
#[test]
fn a_copy_target_reporting_the_copy_early_is_not_deleted_as_damaged() {
    let mut h = Harness::new(4);
    let (req, out) = h.lease(7);
    lease_reply(&h.settle(out, &[]), req).unwrap().as_ref().unwrap();
    h.later(DEAD_AFTER + Duration::from_secs(1));
    (2..=4).for_each(|i| drop(h.heartbeat(i, None))); // node 1 is lost
    let mut pending = h.step(Event::Tick);
    let mut copy = None;
    while let Some(c) = pending.pop() {
        let next = match c {
            Command::SetVersion { op, node, .. } => h.step(Event::VersionSet { op, node, ok: true }),
            Command::Store { op, .. } => h.step(Event::Stored { op, result: Ok(()) }),
            Command::Replicate { op, handle, version, .. } => {
                copy = Some((op, handle, version));
                Vec::new()
            }
            _ => Vec::new(),
        };
        pending.extend(next);
    }
    let (op, handle, version) = copy.expect("a copy to node 4");
    // The copy is whole and reported before its call answers; the file
    // now wants two replicas, which the chunk has without it.
    h.heartbeat(4, Some(vec![replica(7, version.0)]));
    h.step(Event::FileChanged { inode: InodeId(2), file: FileMeta { replication: 2, chunk_size: 64 << 20 } });
    h.step(Event::Tick);
    assert!(deletions(&mut h, [4]).is_empty(), "the copy is not deleted");
    let out = h.step(Event::Copied { op, result: Ok(ReplicaReport { handle, version, length: 0, dirty: false }) });
    h.settle(out, &[]);
    assert_eq!(h.e.map().health(ChunkHandle(7), h.now, DEAD_AFTER).live, 3, "the copy counts");
}

/// A heartbeat of node `i` with a full report, as a process's first.
fn registering(h: &mut Harness, i: u128, report: Vec<ReplicaReport>) -> Vec<Command> {
    let hb = Heartbeat { chunk_count: report.len() as u64, report: Some(report), ..heartbeat(i) };
    let req = h.req();
    h.step(Event::Heartbeat { req, hb: Box::new(hb) })
}

/// Simulator seed 25372: every replica came back from a crash short, the
/// longest was served; it then took the writes that made it whole again,
/// and its next report demoted it as one of the short ones served
/// meanwhile, while it stayed counted: the pass deleted it as damaged, the
/// chunk's only copy.
#[test]
fn a_short_replica_served_meanwhile_that_grew_whole_is_not_demoted() {
    let mut h = Harness::new(3);
    let (req, out) = h.lease(7);
    lease_reply(&h.settle(out, &[]), req).unwrap().as_ref().unwrap();
    h.step(Event::LengthsCommitted { ends: vec![(ChunkHandle(7), 1000)] });
    h.later(LEASE + Duration::from_secs(1)); // no lease runs when they come back
    let short = |len| vec![ReplicaReport { handle: ChunkHandle(7), version: ChunkVersion(1), length: len, dirty: false }];
    for (i, len) in [(1, 300), (2, 700), (3, 700)] {
        registering(&mut h, i, short(len));
    }
    h.step(Event::FileChanged { inode: InodeId(2), file: FileMeta { replication: 1, chunk_size: 64 << 20 } });
    h.step(Event::Tick); // node 2's is served, short
    h.heartbeat(2, Some(short(1000))); // grown whole since
    h.step(Event::Tick);
    assert!(deletions(&mut h, [2]).is_empty(), "the whole replica is kept");
    let current: Vec<NodeId> = h.e.map().current_replicas(ChunkHandle(7), h.now, DEAD_AFTER).into_iter().map(|r| r.node_id).collect();
    assert_eq!(current, vec![n(2)]);
}

/// Simulator seed 3657 (under 120 s of faults): surplus replicas were
/// queued for deletion while the one kept had a flipped bit; its node set it
/// aside, its report of that was lost, and its next full report no longer
/// listed it; the queued deletions still went out: no copy was left.
#[test]
fn a_current_replica_missing_from_a_full_report_takes_back_the_chunks_deletions() {
    let mut h = Harness::new(3);
    let (req, out) = h.lease(7);
    lease_reply(&h.settle(out, &[]), req).unwrap().as_ref().unwrap();
    h.step(Event::FileChanged { inode: InodeId(2), file: FileMeta { replication: 1, chunk_size: 64 << 20 } });
    h.later(LEASE + Duration::from_secs(1));
    (1..=3).for_each(|i| drop(h.heartbeat(i, None)));
    h.step(Event::Tick); // nodes 1 and 2 are to delete theirs, node 3 keeps it
    h.heartbeat(3, Some(vec![])); // it is gone
    assert!(deletions(&mut h, [1, 2]).is_empty(), "the copies left are kept");
}
