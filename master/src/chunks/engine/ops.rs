//! Operations in flight: work that waits for chunkservers or the store.
//! Placement and version bumps hold their chunk busy (requests of that
//! chunk queue behind them); the others only wait for their answer.

use dfs_proto::wire::chunks::{ReplicaAddr, ReplicaReport};
use dfs_proto::{ChunkHandle, ChunkVersion, ErrorKind, NodeId};

use super::requests::next_version;
use super::{err, Answer, Command, Engine, OpId, ReqId};
use crate::chunks::chunk_map::{ChunkMeta, Copy};
use crate::store::{Mutation, NsError};
use dfs_server_kit::http::call::CallError;

/// What a version bump is for, and what follows once it is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterBump {
    /// A new lease (`primary`: the node that must stay primary).
    Lease { req: ReqId, primary: Option<NodeId>, chunk_size: u64 },
    /// A replica missed a write: the others moved on without it.
    LeaveBehind { req: ReqId },
    /// A member of the running lease came back from a crash having lost
    /// writes: the others moved on without it (nobody to answer).
    LeftBehind,
    /// A fence before copies: then the copies.
    Fence { copies: Vec<Copy>, chunk_size: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Creating a new chunk's replicas.
    Place { req: ReqId, handle: ChunkHandle, chunk_size: u64, waiting: usize, placed: Vec<NodeId>, all: bool },
    /// Moving replicas to `version`: the calls (`waiting` > 0), then the record.
    Bump { handle: ChunkHandle, meta: ChunkMeta, version: ChunkVersion, targets: Vec<ReplicaAddr>, waiting: usize, holders: Vec<ReplicaAddr>, then: AfterBump },
    /// Recording a version reported one step ahead (the previous process's).
    Adopt { handle: ChunkHandle, version: ChunkVersion },
    /// A copy being made.
    Copy { handle: ChunkHandle, copy: Copy, source: String, target: String },
    /// Recording a finished copy among the version's members.
    Member { handle: ChunkHandle, copy: Copy, report: ReplicaReport, source: String, target: String },
    /// Dropping the removal records of collected chunks.
    Forget { handles: Vec<ChunkHandle> },
    /// Recording that every replica was seen since a restore.
    EndRestore,
}

impl Op {
    /// The chunk this operation holds busy, if it does.
    pub fn holds(&self) -> Option<ChunkHandle> {
        match self {
            Op::Place { handle, .. } | Op::Bump { handle, .. } => Some(*handle),
            _ => None,
        }
    }
}

impl Engine {
    /// Moves `replicas` of a chunk to the next version, then records it
    /// (durably), then goes on with `then`. The replicas that fail the call
    /// are stale from then on.
    pub(super) fn bump(&mut self, handle: ChunkHandle, meta: ChunkMeta, replicas: Vec<ReplicaAddr>, then: AfterBump) {
        let version = match (replicas.is_empty(), next_version(handle, meta.version)) {
            (true, _) => Err(err(ErrorKind::EIO, format!("chunk {handle} has no live current replica"))),
            (false, v) => v,
        };
        let version = match version {
            Ok(v) => v,
            Err(e) => return self.bump_failed(handle, then, e),
        };
        // Reports of the new version from these nodes are expected until it
        // is recorded; from any other node it was never issued.
        self.map.start_bump(handle, version, replicas.iter().map(|r| r.node_id).collect());
        self.busy.entry(handle).or_default();
        let calls: Vec<ReplicaAddr> = replicas.clone();
        let op = self.new_op(Op::Bump { handle, meta, version, targets: replicas, waiting: calls.len(), holders: Vec::new(), then });
        for r in calls {
            self.out.push(Command::SetVersion { op, node: r.node_id, address: r.address, handle, version });
        }
    }

    pub(super) fn created(&mut self, op: super::OpId, node: NodeId, ok: bool) {
        let Some(Op::Place { req, handle, chunk_size, waiting, placed, all }) = self.ops.get_mut(&op) else { return };
        *waiting = waiting.saturating_sub(1);
        match ok {
            true => placed.push(node),
            false => *all = false,
        }
        if *waiting > 0 {
            return;
        }
        let (req, handle, chunk_size, placed, all) = (*req, *handle, *chunk_size, std::mem::take(placed), *all);
        self.ops.remove(&op);
        let Some(meta) = self.map.chunk(handle) else { return self.release(handle) };
        placed.iter().for_each(|n| self.map.add_replica(handle, *n, meta.version));
        if placed.is_empty() {
            self.map.unrecord_unplaced(handle);
            let e = err(ErrorKind::EIO, format!("no chunkserver could create chunk {handle}"));
            self.reply(req, Answer::Lease(Err(e)));
            return self.release(handle);
        }
        // The lease is granted at this version only when every target created
        // its replica and is live now (the lease names live replicas only: a
        // target silent meanwhile would miss the writes, then come back
        // current). Then its members are recorded. Otherwise the grant bumps
        // first, and members stay unknown at this version: a create whose
        // answer was lost may still have made a replica, as empty as a
        // member's since no lease is granted at this version; recording
        // members would disown it for good, and strand the chunk if the
        // members' disks fail before a bump succeeds.
        let (now, dead_after) = (self.now, self.config.dead_after);
        let whole = all && placed.iter().all(|n| self.map.is_live(*n, now, dead_after));
        if whole {
            self.map.set_members(handle, meta.version, placed.iter().copied());
        }
        // Still busy: the grant (and a bump, if a target missed) follows.
        self.grant(req, handle, None, !whole, chunk_size);
        if !self.op_holds(handle) {
            self.release(handle);
        }
    }

    /// Whether an operation in flight holds the chunk busy.
    fn op_holds(&self, handle: ChunkHandle) -> bool {
        self.ops.values().any(|o| o.holds() == Some(handle))
    }

    pub(super) fn version_set(&mut self, op: OpId, node: NodeId, ok: bool) {
        let Some(Op::Bump { targets, waiting, holders, .. }) = self.ops.get_mut(&op) else { return };
        *waiting = waiting.saturating_sub(1);
        // A failed call is logged by the driver, with its error.
        if let (true, Some(t)) = (ok, targets.iter().find(|t| t.node_id == node)) {
            holders.push(t.clone());
        }
        if *waiting > 0 {
            return;
        }
        let Some(Op::Bump { handle, meta, version, mut holders, then, .. }) = self.ops.remove(&op) else { return };
        if holders.is_empty() {
            self.map.end_bump(handle, false);
            return self.bump_failed(handle, then, err(ErrorKind::EIO, format!("no replica of chunk {handle} took version {version}")));
        }
        holders.sort_by_key(|h| h.node_id);
        let members = holders.iter().map(|h| h.node_id).collect();
        let mutation = Mutation::SetChunkVersion { inode: meta.inode, index: meta.index, version, members };
        let op = self.new_op(Op::Bump { handle, meta, version, targets: Vec::new(), waiting: 0, holders, then });
        self.out.push(Command::Store { op, mutation });
    }

    /// The bump's record is durable (or failed): its purpose goes on.
    fn bump_stored(&mut self, handle: ChunkHandle, version: ChunkVersion, holders: Vec<ReplicaAddr>, then: AfterBump, result: Result<(), NsError>) {
        if let Err(e) = result {
            self.map.end_bump(handle, false);
            return self.bump_failed(handle, then, e);
        }
        self.map.set_version(handle, version);
        holders.iter().for_each(|h| self.map.add_replica(handle, h.node_id, version));
        self.map.set_members(handle, version, holders.iter().map(|h| h.node_id));
        self.map.drop_non_members(handle, version);
        self.map.end_bump(handle, true);
        match then {
            AfterBump::Lease { req, primary, chunk_size } => self.granted(req, handle, primary, version, holders, chunk_size),
            AfterBump::LeaveBehind { req } => {
                self.lease_moves_on(handle, version, &holders);
                self.reply(req, Answer::Done(Ok(())));
            }
            AfterBump::LeftBehind => self.lease_moves_on(handle, version, &holders),
            AfterBump::Fence { copies, chunk_size } => copies.into_iter().for_each(|c| self.start_copy(handle, version, c, chunk_size)),
        }
        self.release(handle);
    }

    /// The running lease, if its primary is among the holders, goes on at
    /// the new version; otherwise it ends.
    fn lease_moves_on(&mut self, handle: ChunkHandle, version: ChunkVersion, holders: &[ReplicaAddr]) {
        let Some(mut lease) = self.map.lease(handle) else { return };
        let members: Vec<NodeId> = holders.iter().map(|h| h.node_id).collect();
        match members.contains(&lease.primary) {
            true => {
                lease.version = version;
                lease.members = members;
                self.map.set_lease(handle, lease);
            }
            false => self.map.end_lease(handle),
        }
    }

    /// A bump could not be made or recorded: its purpose fails.
    fn bump_failed(&mut self, handle: ChunkHandle, then: AfterBump, e: NsError) {
        match then {
            AfterBump::Lease { req, .. } => self.reply(req, Answer::Lease(Err(e))),
            AfterBump::LeaveBehind { req } => self.reply(req, Answer::Done(Err(e))),
            AfterBump::LeftBehind => tracing::warn!(chunk = %handle, error = %e, "leaving a crashed replica behind failed"),
            AfterBump::Fence { copies, .. } => {
                copies.into_iter().for_each(|c| self.map.end_copy(handle, c));
                Self::count(&self.stats.copies_failed, 1);
                tracing::warn!(chunk = %handle, error = %e, "fencing before a copy failed");
            }
        }
        self.release(handle);
    }

    pub(super) fn stored(&mut self, op: OpId, result: Result<(), NsError>) {
        let Some(done) = self.ops.remove(&op) else { return };
        match done {
            Op::Bump { handle, version, holders, then, .. } => self.bump_stored(handle, version, holders, then, result),
            Op::Adopt { handle, version } => match result {
                Ok(()) => self.map.adopt_version(handle, version),
                Err(e) => {
                    tracing::warn!(chunk = %handle, error = %e, "recording a reported newer version failed");
                    self.map.adoption_failed(handle);
                }
            },
            Op::Member { handle, copy, report, source, target } => {
                if let Err(e) = result {
                    tracing::warn!(chunk = %handle, node = %copy.target, error = %e, "recording a copy among the version's members failed");
                }
                self.copy_over(handle, copy, Ok(report), &source, &target);
            }
            Op::Forget { handles } => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "forgetting collected chunks failed; tried again next pass");
                    self.unforgotten.extend(handles);
                }
            }
            Op::EndRestore => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "recording the end of a restore failed; newer versions are adopted again after a restart");
                    self.map.set_restored(true);
                }
            }
            Op::Place { .. } | Op::Copy { .. } => {}
        }
    }

    /// Has the copy made, now that the chunk is fenced at `version`.
    fn start_copy(&mut self, handle: ChunkHandle, version: ChunkVersion, copy: Copy, chunk_size: u64) {
        let (Some(s), Some(t)) = (self.map.address(copy.source), self.map.address(copy.target)) else {
            self.map.end_copy(handle, copy);
            return;
        };
        let (source, target) = (s.address, t.address);
        let op = self.new_op(Op::Copy { handle, copy, source: source.clone(), target: target.clone() });
        tracing::info!(chunk = %handle, %source, %target, "copying a replica");
        self.out.push(Command::Replicate { op, target, source, handle, version, chunk_size });
    }

    /// A copy ended: a durable copy is recorded among the version's members
    /// first (so that a restarted master still counts it), then counted.
    pub(super) fn copied(&mut self, op: OpId, result: Result<ReplicaReport, CallError>) {
        let Some(Op::Copy { handle, copy, source, target }) = self.ops.remove(&op) else { return };
        match (result, self.map.chunk(handle)) {
            (Ok(report), Some(meta)) => {
                let m = Mutation::AddChunkMember { inode: meta.inode, index: meta.index, version: report.version, node: copy.target };
                let op = self.new_op(Op::Member { handle, copy, report, source, target });
                self.out.push(Command::Store { op, mutation: m });
            }
            (result, _) => self.copy_over(handle, copy, result, &source, &target),
        }
    }

    fn copy_over(&mut self, handle: ChunkHandle, copy: Copy, result: Result<ReplicaReport, CallError>, source: &str, target: &str) {
        self.map.end_copy(handle, copy);
        match result {
            Ok(report) if self.map.chunk(handle).is_some() => {
                Self::count(&self.stats.copies_done, 1);
                self.map.copy_done(handle, copy.target, report.version, report.length);
                self.note("repaired", format!("chunk {handle} copied from {source} to {target}"));
            }
            // Removed meanwhile.
            Ok(_) => self.map.queue_delete(copy.target, handle, ChunkVersion(u64::MAX)),
            Err(e) => {
                Self::count(&self.stats.copies_failed, 1);
                tracing::warn!(chunk = %handle, error = %e, "copying a replica failed");
            }
        }
    }
}
