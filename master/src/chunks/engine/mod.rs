//! The chunk-management engine: a state machine without I/O. It takes
//! events (a heartbeat, a lease request, a bad-replica report, the answer
//! of a chunkserver call or of a store write, a timer tick, a namespace
//! change) with the current time, and returns commands (call this
//! chunkserver, store this record, answer this request, note this event).
//! It holds no lock, reads no clock and does no I/O: a driver
//! (`super::ChunkManager`, or the simulator of the tests crate) executes
//! the commands and feeds their outcomes back as events.
//!
//! Work on one chunk that must wait for chunkservers (placing it, moving
//! its replicas to a new version) is an operation ([`ops`]); while one runs,
//! later lease requests and bad-replica reports of that chunk queue behind
//! it, and every other chunk goes on. This per-chunk queue replaces the old
//! cluster-wide lock held across calls: a hung chunkserver delays only the
//! chunks it holds.
//!
//! Decisions stay the pure functions of the sibling modules (`lease`,
//! `placement`, `replication`, `safe_mode`, `gc`, `chunk_map::versions`);
//! the engine sequences them.

mod ops;
mod requests;
#[cfg(test)]
mod tests;
mod tick;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dfs_proto::wire::chunks::{BadReplica, Heartbeat, HeartbeatResponse, ReplicaAddr, ReplicaReport};
use dfs_proto::{ChunkHandle, ChunkVersion, InodeId, NodeId};

use super::chunk_map::{ChunkMap, FileMeta, HashMap};
use super::lease::Lease;
use super::monitor::PassSummary;
use super::safe_mode::SafeMode;
use super::{ChunkConfig, Stats};
use crate::store::{Mutation, NsError};
use dfs_server_kit::http::call::CallError;
use ops::AfterBump;
pub use ops::Op;

/// Names an operation in flight, so that its answers find it.
pub type OpId = u64;
/// Names a request waiting for an answer from the engine.
pub type ReqId = u64;

/// What the engine is told.
#[derive(Debug)]
pub enum Event {
    Heartbeat {
        req: ReqId,
        hb: Box<Heartbeat>,
    },
    /// A writer wants a lease on a chunk the namespace already holds
    /// (allocated by the driver if it was missing).
    Lease {
        req: ReqId,
        ask: LeaseAsk,
    },
    /// A chunkserver (signed) reports a replica bad.
    BadReplica {
        req: ReqId,
        bad: BadReplica,
    },
    /// A `Command::Create` ended.
    Created {
        op: OpId,
        node: NodeId,
        ok: bool,
    },
    /// A `Command::SetVersion` ended.
    VersionSet {
        op: OpId,
        node: NodeId,
        ok: bool,
    },
    /// A `Command::Replicate` ended.
    Copied {
        op: OpId,
        result: Result<ReplicaReport, CallError>,
    },
    /// A `Command::Store` ended (durable, or failed).
    Stored {
        op: OpId,
        result: Result<(), NsError>,
    },
    /// The periodic pass: safe mode, garbage, re-replication, trimming.
    Tick,
    /// The namespace removed these chunks (committed): they are garbage
    /// from then on; `age` is how long ago each was removed.
    ChunksRemoved {
        chunks: Vec<(ChunkHandle, Duration)>,
    },
    /// Commits raised these chunks' committed lengths.
    LengthsCommitted {
        ends: Vec<(ChunkHandle, u64)>,
    },
    /// The namespace moved these chunks to file `inode`, at these indexes
    /// (a concat, committed).
    ChunksMoved {
        inode: InodeId,
        file: FileMeta,
        moves: Vec<(ChunkHandle, u64)>,
    },
    /// A file's replication or chunk size changed.
    FileChanged {
        inode: InodeId,
        file: FileMeta,
    },
    /// A node's decommissioning was recorded (started or ended).
    Decommission {
        node: NodeId,
        on: bool,
    },
    /// An operator ends safe mode.
    LeaveSafeMode,
}

/// A lease request as the driver read it from the namespace.
#[derive(Clone, Debug)]
pub struct LeaseAsk {
    pub inode: InodeId,
    pub index: u64,
    pub handle: ChunkHandle,
    /// The recorded version and length (used if the map does not know the chunk yet).
    pub version: ChunkVersion,
    pub length: u64,
    pub file: FileMeta,
}

/// What the engine asks its driver to do.
#[derive(Debug)]
pub enum Command {
    /// Create an empty replica; answer with `Event::Created`.
    Create { op: OpId, node: NodeId, address: String, handle: ChunkHandle, version: ChunkVersion, chunk_size: u64 },
    /// Move a replica to `version`; answer with `Event::VersionSet`.
    SetVersion { op: OpId, node: NodeId, address: String, handle: ChunkHandle, version: ChunkVersion },
    /// Have `target` copy the chunk from `source`; answer with `Event::Copied`.
    Replicate { op: OpId, target: String, source: String, handle: ChunkHandle, version: ChunkVersion, chunk_size: u64 },
    /// Apply a namespace mutation durably; answer with `Event::Stored`.
    Store { op: OpId, mutation: Mutation },
    /// Answer a request.
    Reply { req: ReqId, answer: Answer },
    /// Something an operator should see on the dashboard (kind, message).
    Note { kind: &'static str, message: String },
}

/// The answer to a request.
#[derive(Debug)]
pub enum Answer {
    Heartbeat(Result<HeartbeatResponse, NsError>),
    Lease(Result<Granted, NsError>),
    Done(Result<(), NsError>),
}

/// A lease granted or kept: the driver adds the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Granted {
    pub handle: ChunkHandle,
    pub version: ChunkVersion,
    pub chunk_size: u64,
    pub primary: ReplicaAddr,
    pub secondaries: Vec<ReplicaAddr>,
    pub remaining: Duration,
}

/// A request waiting for the chunk's running operation to end.
#[derive(Debug)]
enum Queued {
    Lease { req: ReqId, ask: LeaseAsk },
    Bad { req: ReqId, bad: BadReplica },
}

pub struct Engine {
    map: ChunkMap,
    config: ChunkConfig,
    safe_mode: SafeMode,
    /// When this master started (the start-up deletion delay runs from it).
    started: Instant,
    /// The time of the event being handled.
    now: Instant,
    next_op: OpId,
    /// Operations in flight, by id.
    ops: HashMap<OpId, Op>,
    /// Chunks with a placement or version change in flight, and the requests
    /// queued behind it.
    busy: HashMap<ChunkHandle, VecDeque<Queued>>,
    /// Chunks of removed data waiting out the grace, oldest first.
    garbage: VecDeque<(Instant, ChunkHandle)>,
    /// Collected chunks whose removal records could not be dropped yet.
    unforgotten: Vec<ChunkHandle>,
    summary: PassSummary,
    stats: std::sync::Arc<Stats>,
    out: Vec<Command>,
}

fn err(kind: dfs_proto::ErrorKind, message: impl Into<String>) -> NsError {
    NsError::new(kind, message)
}

impl Engine {
    /// An engine over a map loaded from the namespace, starting at `now`.
    pub fn new(map: ChunkMap, config: ChunkConfig, now: Instant) -> Engine {
        Engine {
            map,
            config,
            safe_mode: SafeMode::start(now),
            started: now,
            now,
            next_op: 1,
            ops: HashMap::default(),
            busy: HashMap::default(),
            garbage: VecDeque::new(),
            unforgotten: Vec::new(),
            summary: PassSummary::default(),
            stats: Default::default(),
            out: Vec::new(),
        }
    }

    /// Handles one event at `now`; the commands it calls for.
    pub fn step(&mut self, now: Instant, event: Event) -> Vec<Command> {
        self.now = self.now.max(now);
        match event {
            Event::Heartbeat { req, hb } => {
                let answer = self.heartbeat(&hb);
                self.reply(req, Answer::Heartbeat(answer));
            }
            Event::Lease { req, ask } => self.lease(req, ask),
            Event::BadReplica { req, bad } => self.report_bad(req, bad),
            Event::Created { op, node, ok } => self.created(op, node, ok),
            Event::VersionSet { op, node, ok } => self.version_set(op, node, ok),
            Event::Copied { op, result } => self.copied(op, result),
            Event::Stored { op, result } => self.stored(op, result),
            Event::Tick => self.tick(),
            Event::ChunksRemoved { chunks } => self.chunks_removed(chunks),
            Event::LengthsCommitted { ends } => ends.iter().for_each(|(h, end)| self.map.raise_length(*h, *end)),
            Event::ChunksMoved { inode, file, moves } => self.map.move_chunks(inode, file, &moves),
            Event::FileChanged { inode, file } => {
                if self.map.file(inode).is_some() {
                    self.map.set_file(inode, file);
                }
            }
            Event::Decommission { node, on } => self.map.set_draining(node, on),
            Event::LeaveSafeMode => {
                self.safe_mode = SafeMode::Off;
                tracing::info!("safe mode ended by request");
                self.note("safe_mode_left", "safe mode ended by an operator");
            }
        }
        std::mem::take(&mut self.out)
    }

    /// After a restore, once every chunk has a replica reported (not when
    /// safe mode ends: its timeout or an operator may end it while a rack
    /// is still booting), newer versions are no longer adopted.
    fn end_restore(&mut self, reported: u64, total: u64) {
        if self.map.is_restored() && reported == total {
            self.map.set_restored(false);
            let op = self.new_op(Op::EndRestore);
            self.out.push(Command::Store { op, mutation: Mutation::EndRestore });
            self.note("restore_settled", format!("every chunk ({total}) was reported since the restore: newer chunk versions are no longer adopted"));
        }
    }

    /// The soft state, for queries (locations, health, views).
    pub fn map(&self) -> &ChunkMap {
        &self.map
    }

    pub fn config(&self) -> &ChunkConfig {
        &self.config
    }

    pub fn safe_mode_on(&self) -> bool {
        self.safe_mode.is_on()
    }

    /// What the last pass found.
    pub fn summary(&self) -> PassSummary {
        self.summary
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The counters, shared with readers that do not take the engine's lock.
    pub fn stats_handle(&self) -> std::sync::Arc<Stats> {
        self.stats.clone()
    }

    /// Chunks of removed data still waiting out the grace.
    pub fn garbage_waiting(&self) -> usize {
        self.garbage.len()
    }

    /// Operations in flight (for tests and the simulator's checks).
    pub fn ops(&self) -> impl Iterator<Item = &Op> {
        self.ops.values()
    }

    /// The running lease of a chunk, if any (expired ones included).
    pub fn lease_of(&self, handle: ChunkHandle) -> Option<Lease> {
        self.map.lease(handle)
    }

    fn reply(&mut self, req: ReqId, answer: Answer) {
        self.out.push(Command::Reply { req, answer });
    }

    fn note(&mut self, kind: &'static str, message: impl Into<String>) {
        self.out.push(Command::Note { kind, message: message.into() });
    }

    fn count(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn new_op(&mut self, op: Op) -> OpId {
        let id = self.next_op;
        self.next_op += 1;
        self.ops.insert(id, op);
        id
    }

    /// Takes in a heartbeat, unless its numbers are out of range (EINVAL)
    /// or it would move a live node's id or take a live node's address
    /// (EEXIST); refused, it changes nothing. Versions reported one step
    /// ahead that the previous master process handed out are recorded.
    fn heartbeat(&mut self, hb: &Heartbeat) -> Result<HeartbeatResponse, NsError> {
        use super::chunk_map::check_ranges;
        check_ranges(hb).map_err(|m| err(dfs_proto::ErrorKind::EINVAL, m))?;
        if let Err(refusal) = self.map.admit(hb, self.now, self.config.dead_after) {
            tracing::warn!(node = %hb.node_id, address = %hb.address, %refusal, "heartbeat refused");
            return Err(err(dfs_proto::ErrorKind::EEXIST, refusal.to_string()));
        }
        // A node silent for a while gets none of the deletions decided
        // before: the copies elsewhere they relied on may be gone since.
        let (now, dead_after) = (self.now, self.config.dead_after);
        if self.map.is_known(hb.node_id) && !self.map.is_live(hb.node_id, now, dead_after / 3) {
            self.map.cancel_deletes_of(hb.node_id);
        }
        let (response, newer) = self.map.heartbeat(hb, self.now);
        Self::count(&self.stats.deletes_sent, response.delete.len() as u64);
        for n in newer {
            // Who took it is not known: members stay unknown for this version.
            let m = Mutation::SetChunkVersion { inode: n.meta.inode, index: n.meta.index, version: n.reported, members: Vec::new() };
            self.map.adopting(n.handle, n.reported);
            let op = self.new_op(Op::Adopt { handle: n.handle, version: n.reported });
            self.out.push(Command::Store { op, mutation: m });
        }
        if hb.registering {
            self.leave_crashed_behind(hb);
        }
        Ok(response)
    }

    /// A member of a running lease came back from a crash and its replica
    /// is held back (it lost writes, or may have: see `chunk_map::damage`).
    /// The writer may still send it the lease's next writes, which it would
    /// take at the same version over the gap, and a later report would no
    /// longer hold it back. So the others move to the next version at once,
    /// as when a replica misses a write; a chunk busy with a bump is fenced
    /// by that bump already (it goes to the current replicas only).
    fn leave_crashed_behind(&mut self, hb: &Heartbeat) {
        for r in hb.report.iter().flatten() {
            let Some(meta) = self.map.chunk(r.handle) else { continue };
            let held = r.version == meta.version && self.map.replica_version(r.handle, hb.node_id) != Some(meta.version);
            let leased = self.map.lease(r.handle).is_some_and(|l| l.expires > self.now && l.members.contains(&hb.node_id));
            if !held || !leased || self.busy.contains_key(&r.handle) {
                continue;
            }
            let survivors = self.map.current_replicas(r.handle, self.now, self.config.dead_after);
            if !survivors.is_empty() {
                tracing::warn!(chunk = %r.handle, node = %hb.node_id, "a lease member lost writes in a crash: the others move on without it");
                self.bump(r.handle, meta, survivors, AfterBump::LeftBehind);
            }
        }
    }

    /// The removed chunks: no longer planned for or counted; their
    /// replicas are deleted once the grace has passed (see `tick`).
    fn chunks_removed(&mut self, chunks: Vec<(ChunkHandle, Duration)>) {
        for (handle, age) in chunks {
            self.map.retire_chunk(handle);
            // Older than this process can say: due now.
            let at = self.now.checked_sub(age).or(self.now.checked_sub(self.config.gc_grace)).unwrap_or(self.now);
            // Removals arrive in commit order; an old record found at start
            // goes to the front.
            let pos = self.garbage.partition_point(|(t, _)| *t <= at);
            self.garbage.insert(pos, (at, handle));
        }
    }

    /// Ends a chunk's operation and runs what queued behind it, in order,
    /// until one of them starts a new operation.
    fn release(&mut self, handle: ChunkHandle) {
        let Some(mut queue) = self.busy.remove(&handle) else { return };
        while let Some(next) = queue.pop_front() {
            match next {
                Queued::Lease { req, ask } => self.lease(req, ask),
                Queued::Bad { req, bad } => self.report_bad(req, bad),
            }
            if let Some(q) = self.busy.get_mut(&handle) {
                q.extend(queue);
                return;
            }
        }
    }
}
