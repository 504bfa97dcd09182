//! The client workload: writers that create files, write their chunks unit
//! by unit under leases, and delete some files when done. A writer sends
//! each write to every replica of its lease (primary and secondaries); a
//! write that asks for a sync and that every replica took and synced makes
//! every write of the session durable: they are acknowledged. A replica
//! that fails a write is reported bad (with the lease's version), and the
//! writes not yet acknowledged are written again under a new lease, at the
//! same offsets with the same ids.
//!
//! The writer decides; the driver carries its wishes out (`Want`) and hands
//! it the answers.

use std::collections::VecDeque;
use std::time::Duration;

use dfs_proto::wire::chunks::ReplicaAddr;
use dfs_proto::{ChunkHandle, ChunkVersion, ErrorKind, InodeId, NodeId};
use rand::rngs::StdRng;
use rand::Rng;

use super::disk::{WriteId, CHUNK_UNITS};
use super::world::Time;

/// A lease as the writer holds it.
#[derive(Clone, Debug)]
pub struct Lease {
    pub handle: ChunkHandle,
    pub version: ChunkVersion,
    /// Primary first.
    pub replicas: Vec<ReplicaAddr>,
    /// When the writer stops using it (measured from when it asked: the
    /// master's clock started later).
    pub expires: Time,
}

/// One unit written (or to write) at an offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unit {
    pub offset: u32,
    pub id: WriteId,
}

/// What a writer wants done next.
#[derive(Debug)]
pub enum Want {
    /// Nothing until then.
    Sleep(Duration),
    /// A new file.
    NewFile,
    /// A lease on chunk `index` of `inode`.
    Lease { inode: InodeId, index: u64 },
    /// A write to every replica of the lease.
    Write { lease: Lease, unit: Unit, sync: bool },
    /// Remove the file (its chunks are garbage).
    Delete { inode: InodeId },
    /// The writer is done.
    Stop,
}

/// What the writer learnt from a write's answers.
#[derive(Debug, Default)]
pub struct Outcome {
    pub handle: Option<ChunkHandle>,
    /// Acknowledged now (durable on every replica of the lease).
    pub acked: Vec<Unit>,
    /// Replicas to report bad, and the version the write was made at.
    pub bad: Vec<NodeId>,
    pub version: Option<ChunkVersion>,
}

#[derive(Default)]
pub struct Writer {
    inode: Option<InodeId>,
    chunks_in_file: u64,
    index: u64,
    lease: Option<Lease>,
    /// Units appended so far to the current chunk.
    appended: u32,
    /// Written but not acknowledged, in order.
    pending: Vec<Unit>,
    /// To write again under the next lease (after a failure).
    resend: VecDeque<Unit>,
    /// Stop at the next chance (the faults are over).
    pub stopping: bool,
    /// Names the call awaited: a late answer to an earlier one is ignored.
    pub call: u64,
    /// The write awaited, and its answers so far.
    inflight: Option<Inflight>,
}

struct Inflight {
    lease: Lease,
    sync: bool,
    waiting: Vec<NodeId>,
    failed: Vec<NodeId>,
}

/// Margin before a lease's end after which the writer asks again.
const LEASE_MARGIN: Duration = Duration::from_millis(500);

impl Writer {
    /// The next thing to do, at `now`; `next_id` hands out write ids.
    pub fn next(&mut self, now: Time, rng: &mut StdRng, next_id: &mut impl FnMut() -> WriteId) -> Want {
        let Some(inode) = self.inode else {
            return if self.stopping { Want::Stop } else { Want::NewFile };
        };
        if self.stopping && self.resend.is_empty() {
            return Want::Stop;
        }
        if self.appended == CHUNK_UNITS && self.pending.is_empty() {
            return self.next_chunk(inode, rng);
        }
        let Some(lease) = self.lease.clone().filter(|l| now + LEASE_MARGIN < l.expires) else {
            return Want::Lease { inode, index: self.index };
        };
        if let Some(unit) = self.resend.pop_front() {
            return self.write(lease, unit, self.resend.is_empty());
        }
        // Mostly appends; now and then an overwrite of a unit written before.
        let overwrite = self.appended == CHUNK_UNITS || (self.appended > 0 && rng.random_ratio(1, 10));
        let unit = match overwrite {
            true => Unit { offset: rng.random_range(0..self.appended), id: next_id() },
            false => {
                self.appended += 1;
                Unit { offset: self.appended - 1, id: next_id() }
            }
        };
        self.pending.push(unit);
        let sync = self.appended == CHUNK_UNITS || self.pending.len() >= 4 || rng.random_ratio(1, 3);
        self.write(lease, unit, sync)
    }

    fn write(&mut self, lease: Lease, unit: Unit, sync: bool) -> Want {
        self.call += 1;
        let waiting = lease.replicas.iter().map(|r| r.node_id).collect();
        self.inflight = Some(Inflight { lease: lease.clone(), sync, waiting, failed: Vec::new() });
        Want::Write { lease, unit, sync }
    }

    fn next_chunk(&mut self, inode: InodeId, rng: &mut StdRng) -> Want {
        self.index += 1;
        self.lease = None;
        self.appended = 0;
        if self.index < self.chunks_in_file {
            return Want::Sleep(Duration::from_millis(1));
        }
        self.inode = None;
        match rng.random_ratio(1, 3) {
            true => Want::Delete { inode },
            false => Want::Sleep(Duration::from_millis(rng.random_range(1..200))),
        }
    }

    /// The driver made the file.
    pub fn file_made(&mut self, inode: InodeId, chunks: u64) {
        *self = Writer { inode: Some(inode), chunks_in_file: chunks, stopping: self.stopping, call: self.call, ..Writer::default() };
    }

    /// The lease answer (None: no answer in time); how long to wait before
    /// the next step.
    pub fn leased(&mut self, answer: Option<Result<Lease, ErrorKind>>, rng: &mut StdRng) -> Duration {
        self.call += 1;
        match answer {
            Some(Ok(lease)) => {
                self.lease = Some(lease);
                Duration::ZERO
            }
            Some(Err(ErrorKind::ENOENT)) => {
                self.inode = None; // the file is gone
                Duration::ZERO
            }
            _ => Duration::from_millis(rng.random_range(100..1000)),
        }
    }

    /// One replica's answer to the write in flight (`ok` None: it timed
    /// out); the outcome once every replica answered.
    pub fn wrote(&mut self, node: NodeId, ok: bool) -> Option<Outcome> {
        let w = self.inflight.as_mut()?;
        let pos = w.waiting.iter().position(|n| *n == node)?;
        w.waiting.remove(pos);
        if !ok {
            w.failed.push(node);
        }
        if !w.waiting.is_empty() {
            return None;
        }
        Some(self.write_over())
    }

    /// The write timed out: the replicas that did not answer failed it.
    pub fn write_timed_out(&mut self) -> Option<Outcome> {
        let w = self.inflight.as_mut()?;
        let late = std::mem::take(&mut w.waiting);
        w.failed.extend(late);
        Some(self.write_over())
    }

    fn write_over(&mut self) -> Outcome {
        self.call += 1;
        let Some(w) = self.inflight.take() else { return Outcome::default() };
        let handle = Some(w.lease.handle);
        if w.failed.is_empty() {
            let acked = if w.sync { std::mem::take(&mut self.pending) } else { Vec::new() };
            return Outcome { handle, acked, ..Outcome::default() };
        }
        // Write everything not acknowledged again, under a new lease.
        self.resend = self.pending.iter().copied().collect();
        self.lease = None;
        Outcome { handle, acked: Vec::new(), bad: w.failed, version: Some(w.lease.version) }
    }

    /// The handle of the chunk being written, if a lease named it.
    pub fn handle(&self) -> Option<ChunkHandle> {
        self.lease.as_ref().map(|l| l.handle)
    }
}
