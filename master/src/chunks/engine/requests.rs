//! Requests the engine answers: lease requests and chunkservers' reports of
//! bad replicas. Each either answers at once, or starts an operation on the
//! chunk (placement, a version bump) and answers when it ends; while the
//! chunk is busy, it waits in the chunk's queue.

use dfs_proto::wire::chunks::{BadReplica, ReplicaAddr};
use dfs_proto::{ChunkHandle, ChunkVersion, ErrorKind, NodeId};

use super::ops::{AfterBump, Op};
use super::{err, Answer, Command, Engine, Granted, LeaseAsk, Queued, ReqId};
use crate::chunks::chunk_map::ChunkMeta;
use crate::chunks::lease::{decide, Lease, LeaseDecision};
use crate::chunks::placement;
use crate::store::NsError;

/// The version after `version`; none past `ChunkVersion::MAX_ISSUED` (a
/// version that high cannot have been reached one step at a time: refuse,
/// never wrap or panic).
pub fn next_version(handle: ChunkHandle, version: ChunkVersion) -> Result<ChunkVersion, NsError> {
    match version.0.checked_add(1).map(ChunkVersion).filter(|v| v.in_range()) {
        Some(v) => Ok(v),
        None => Err(err(ErrorKind::EIO, format!("chunk {handle} is at the last version ({version}); it cannot take another"))),
    }
}

impl Engine {
    /// A lease on the chunk (placed first if the map does not hold it).
    pub(super) fn lease(&mut self, req: ReqId, ask: LeaseAsk) {
        if let Some(queue) = self.busy.get_mut(&ask.handle) {
            queue.push_back(Queued::Lease { req, ask });
            return;
        }
        // The map's file, once known, is the newest: a replication change may
        // have reached the engine while this request was read or queued.
        if self.map.file(ask.inode).is_none() {
            self.map.set_file(ask.inode, ask.file);
        }
        let ask = LeaseAsk { file: self.map.file(ask.inode).unwrap_or(ask.file), ..ask };
        if self.map.chunk(ask.handle).is_none() || self.never_placed(ask.handle) {
            return self.place(req, ask);
        }
        let now = self.now;
        let current = self.map.lease(ask.handle);
        if current.as_ref().is_none_or(|l| l.expires <= now) {
            if let Err(e) = self.may_grant(ask.handle, ask.file.replication) {
                return self.reply(req, Answer::Lease(Err(e)));
            }
        }
        let (map, dead_after) = (&self.map, self.config.dead_after);
        let version = current.as_ref().map(|l| l.version).or(map.chunk(ask.handle).map(|m| m.version)).unwrap_or(ask.version);
        let usable = |n| map.holds(ask.handle, n, version, now, dead_after);
        match decide(current.as_ref(), usable, |n| map.is_live(n, now, dead_after), now) {
            LeaseDecision::Keep(l) => {
                let lease = Lease { expires: now + self.config.lease, ..l };
                self.lease_ready(req, ask.handle, lease, ask.file.chunk_size);
            }
            LeaseDecision::WaitUntil(t) => {
                let ms = t.saturating_duration_since(now).as_millis();
                let e = err(ErrorKind::EAGAIN, format!("the chunk's primary is unreachable; its lease ends in {ms} ms"));
                self.reply(req, Answer::Lease(Err(e)));
            }
            LeaseDecision::Grant { primary } => self.grant(req, ask.handle, primary, true, ask.file.chunk_size),
        }
    }

    /// A chunk recorded but never placed: a master died between allocating
    /// it and creating its replicas, and this process knows it from the
    /// namespace alone. Nothing of it was committed (length 0), safe mode
    /// is over (every node had its chance to report it), and no replica of
    /// it was reported in any state: it is placed as a new chunk. Else a
    /// lease would find no replica to move to a new version, for good (the
    /// soak, seed 10682083722766782814, a master killed three times).
    fn never_placed(&self, handle: ChunkHandle) -> bool {
        !self.safe_mode.is_on() && self.map.chunk(handle).is_some_and(|m| m.length == 0) && self.map.untouched(handle)
    }

    /// Whether a new lease may be granted on a chunk that has history: not
    /// while a copy of it is being made (the lease would bump the version
    /// under the copy, as a writer that keeps a chunk leased would forever),
    /// nor in safe mode before all its replicas have reported (the first to
    /// report may be one that lost its last writes, and a lease would make
    /// the others stale). Both are temporary: the client retries.
    fn may_grant(&self, handle: ChunkHandle, replication: u16) -> Result<(), NsError> {
        if self.map.is_copying(handle) {
            return Err(err(ErrorKind::EAGAIN, format!("chunk {handle} is being re-replicated")));
        }
        let reported = self.map.current_replicas(handle, self.now, self.config.dead_after).len();
        if self.safe_mode.is_on() && reported < replication as usize {
            return Err(err(ErrorKind::EAGAIN, format!("safe mode: {reported} of {replication} replicas of chunk {handle} reported")));
        }
        Ok(())
    }

    /// Places a chunk new to the map: recorded first, so that its new
    /// replicas, reported before the last create call returns, are never
    /// taken for garbage; taken back if no replica could be made, for the
    /// next request to retry.
    fn place(&mut self, req: ReqId, ask: LeaseAsk) {
        let (now, dead_after) = (self.now, self.config.dead_after);
        let candidates = self.map.candidates(now, dead_after);
        if candidates.is_empty() {
            // Temporary: chunkservers may be restarting; clients retry.
            return self.reply(req, Answer::Lease(Err(err(ErrorKind::EAGAIN, "no chunkserver is live"))));
        }
        let chosen = placement::choose(&candidates, ask.file.replication as usize, ask.file.chunk_size);
        if chosen.is_empty() {
            return self.reply(req, Answer::Lease(Err(err(ErrorKind::ENOSPC, "no live chunkserver has room for a new chunk"))));
        }
        chosen.iter().for_each(|n| self.map.reserve(*n, ask.file.chunk_size));
        let targets: Vec<ReplicaAddr> = chosen.into_iter().filter_map(|n| self.map.address(n)).collect();
        let meta = ChunkMeta { inode: ask.inode, index: ask.index, version: ask.version, length: ask.length };
        self.map.record_chunk(ask.handle, meta);
        self.busy.insert(ask.handle, Default::default());
        let (handle, version, chunk_size) = (ask.handle, ask.version, ask.file.chunk_size);
        let op = self.new_op(Op::Place { req, handle, chunk_size, waiting: targets.len(), placed: Vec::new(), all: true });
        for t in targets {
            self.out.push(Command::Create { op, node: t.node_id, address: t.address, handle, version, chunk_size });
        }
    }

    /// A new lease. With `bump`, the current replicas move to the next
    /// version first (those that fail to are stale from then on). A chunk
    /// just placed on every target keeps its first version, as it has no
    /// history; one whose placement missed a target is bumped too, since
    /// that target may still create its replica late, empty.
    pub(super) fn grant(&mut self, req: ReqId, handle: ChunkHandle, primary: Option<NodeId>, bump: bool, chunk_size: u64) {
        let Some(meta) = self.map.chunk(handle) else {
            return self.reply(req, Answer::Lease(Err(err(ErrorKind::EIO, format!("chunk {handle} is not in the map")))));
        };
        let replicas = self.map.current_replicas(handle, self.now, self.config.dead_after);
        match bump {
            true => self.bump(handle, meta, replicas, AfterBump::Lease { req, primary, chunk_size }),
            false => self.granted(req, handle, primary, meta.version, replicas, chunk_size),
        }
    }

    /// The lease, once its replicas hold `version`.
    pub(super) fn granted(
        &mut self,
        req: ReqId,
        handle: ChunkHandle,
        primary: Option<NodeId>,
        version: ChunkVersion,
        holders: Vec<ReplicaAddr>,
        chunk_size: u64,
    ) {
        if holders.is_empty() {
            return self.reply(req, Answer::Lease(Err(err(ErrorKind::EIO, format!("chunk {handle} has no live current replica")))));
        }
        let primary = primary.filter(|p| holders.iter().any(|h| h.node_id == *p)).unwrap_or(holders[0].node_id);
        let members = holders.iter().map(|h| h.node_id).collect();
        Self::count(&self.stats.leases_granted, 1);
        let lease = Lease { primary, version, expires: self.now + self.config.lease, members };
        self.lease_ready(req, handle, lease, chunk_size);
    }

    /// Records the lease and answers with it.
    fn lease_ready(&mut self, req: ReqId, handle: ChunkHandle, lease: Lease, chunk_size: u64) {
        self.map.set_lease(handle, lease.clone());
        // Exactly the lease's members, the replicas that took its version:
        // each is a member of that version, so each must get the writes (or
        // fail one and be left behind), one gone silent since included.
        let replicas: Vec<ReplicaAddr> = lease.members.iter().filter_map(|n| self.map.address(*n)).collect();
        let answer = match replicas.iter().find(|r| r.node_id == lease.primary).cloned() {
            None => Err(err(ErrorKind::EIO, "the lease's primary is gone")),
            Some(primary) => Ok(Granted {
                handle,
                version: lease.version,
                chunk_size,
                primary,
                secondaries: replicas.into_iter().filter(|r| r.node_id != lease.primary).collect(),
                remaining: lease.expires.saturating_duration_since(self.now),
            }),
        };
        self.reply(req, Answer::Lease(answer));
    }

    /// A replica failed (verification, or a write forwarded to it): it is
    /// no longer handed out. A replica that failed a write keeps its version
    /// but missed bytes, so the others move to the next version at once:
    /// it is stale from then on, even when its node reports it again.
    pub(super) fn report_bad(&mut self, req: ReqId, bad: BadReplica) {
        if let Some(queue) = self.busy.get_mut(&bad.handle) {
            queue.push_back(Queued::Bad { req, bad });
            return;
        }
        let survivors = match self.drop_bad(&bad) {
            Ok(s) => s,
            Err(e) => return self.reply(req, Answer::Done(Err(e))),
        };
        let Some(meta) = self.map.chunk(bad.handle).filter(|_| !survivors.is_empty()) else {
            return self.reply(req, Answer::Done(Ok(())));
        };
        self.bump(bad.handle, meta, survivors, AfterBump::LeaveBehind { req });
    }

    /// Drops the reported replica; the current replicas left to bump when
    /// the dropped one held the current version and is not corrupt (a
    /// corrupt replica is already moved aside by its node).
    fn drop_bad(&mut self, bad: &BadReplica) -> Result<Vec<ReplicaAddr>, NsError> {
        let node = match (bad.node_id, &bad.address) {
            (Some(n), None) => n,
            (None, Some(a)) => self.map.node_at(a).ok_or_else(|| err(ErrorKind::ENOENT, format!("no chunkserver at {a}")))?,
            _ => return Err(err(ErrorKind::EINVAL, "name the replica by \"node_id\" or by \"address\"")),
        };
        let current = self.map.chunk(bad.handle).map(|m| m.version);
        if let (Some(reporter), Some(current)) = (bad.reporter_version, current) {
            if reporter < current {
                tracing::info!(chunk = %bad.handle, %node, %reporter, %current, "ignoring a failed-replica report from a late write");
                return Ok(Vec::new());
            }
        }
        tracing::warn!(chunk = %bad.handle, %node, corrupt = bad.corrupt, "replica reported bad");
        let held_current = current.is_some_and(|v| self.map.replica_version(bad.handle, node) == Some(v));
        self.map.drop_replica(bad.handle, node);
        if held_current {
            // Copies queued for deletion may be the ones left now.
            self.map.cancel_deletes(bad.handle);
        }
        if bad.corrupt {
            self.map.mark_corrupt(bad.handle, node);
            Self::count(&self.stats.corrupt_reports, 1);
            let address = self.map.address(node).map_or_else(|| node.to_string(), |a| a.address);
            self.note("corrupt", format!("chunk {} on {address} failed verification", bad.handle));
        }
        Ok(match held_current && !bad.corrupt {
            true => self.map.current_replicas(bad.handle, self.now, self.config.dead_after),
            false => Vec::new(),
        })
    }
}
