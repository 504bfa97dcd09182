//! The writers' side: their wishes carried out (files made and removed,
//! lease requests, writes to every replica of a lease, bad-replica reports)
//! and their answers handed back. Acknowledged writes are recorded in the
//! truth, then their committed length reaches the namespace and the engine.

use std::time::Duration;

use dfs_master::chunks::chunk_map::FileMeta;
use dfs_master::chunks::engine::Granted;
use dfs_master::store::NsError;
use dfs_proto::wire::chunks::BadReplica;
use dfs_proto::{ChunkHandle, ChunkVersion, InodeId, NodeId};
use rand::Rng;

use super::{Ev, World, CLIENT_TIMEOUT, WRITE_TIMEOUT};
use crate::sim::client::{Lease, Outcome, Unit, Want};
use crate::sim::disk::{CHUNK_BYTES, UNIT_BYTES};
use crate::sim::network::End;
use crate::sim::world::Time;

impl World {
    pub(super) fn wake(&mut self, client: usize, call: u64) {
        if self.writers[client].call != call {
            return;
        }
        let (writers, rng, next) = (&mut self.writers, &mut self.rng, &mut self.next_write);
        let want = writers[client].next(self.now, rng, &mut || {
            *next += 1;
            *next
        });
        match want {
            Want::Sleep(d) => self.sleep(client, d),
            Want::NewFile => {
                let replication = [3, 3, 3, 3, 3, 3, 2, 2, 1][self.rng.random_range(0..9)];
                let inode = self.ns.create_file(FileMeta { replication, chunk_size: CHUNK_BYTES });
                let chunks = self.rng.random_range(1..=3);
                self.writers[client].file_made(inode, chunks);
                self.sleep(client, Duration::from_millis(1));
            }
            Want::Lease { inode, index } => self.ask_lease(client, inode, index),
            Want::Write { lease, unit, sync } => self.send_write(client, lease, unit, sync),
            Want::Delete { inode } => {
                let handles = self.ns.delete_file(inode);
                let at = self.now + self.rng.random_range(Duration::from_millis(1)..Duration::from_millis(10));
                self.push(at, Ev::Removed { handles });
                self.sleep(client, Duration::from_millis(1));
            }
            Want::Stop => {}
        }
    }

    fn sleep(&mut self, client: usize, d: Duration) {
        self.writers[client].call += 1;
        let call = self.writers[client].call;
        self.push(self.now + d, Ev::Wake { client, call });
    }

    fn ask_lease(&mut self, client: usize, inode: InodeId, index: u64) {
        self.writers[client].call += 1;
        let (call, sent) = (self.writers[client].call, self.now);
        if let Some(d) = self.net.send(&mut self.rng, End::Client(client), End::Master, self.now) {
            self.push(self.now + d, Ev::LeaseAtMaster { client, call, sent, inode, index });
        }
        self.push(self.now + CLIENT_TIMEOUT, Ev::LeaseBack { client, call, sent, answer: None });
    }

    pub(super) fn lease_back(&mut self, client: usize, call: u64, sent: Time, answer: Option<Result<Granted, NsError>>) {
        if self.writers[client].call != call {
            return;
        }
        let answer = answer.map(|r| match r {
            Ok(g) => {
                let replicas = std::iter::once(g.primary).chain(g.secondaries).collect();
                Ok(Lease { handle: g.handle, version: g.version, replicas, expires: sent + g.remaining })
            }
            Err(e) => Err(e.kind),
        });
        let wait = self.writers[client].leased(answer, &mut self.rng);
        let call = self.writers[client].call;
        self.push(self.now + wait, Ev::Wake { client, call });
    }

    fn send_write(&mut self, client: usize, lease: Lease, unit: Unit, sync: bool) {
        let call = self.writers[client].call;
        self.truth.issue(lease.handle, unit.offset, unit.id);
        for r in &lease.replicas {
            let Some(node) = self.slot(&r.address) else { continue };
            // A write the writer gave up on is cut with its connection: one
            // landing later, after the writer wrote that unit again, would
            // undo an acknowledged overwrite (at the same version, nothing
            // on a chunkserver orders a client's writes; not the engine's
            // concern, so not simulated).
            let arrives = self.net.send(&mut self.rng, End::Client(client), End::Node(node), self.now).filter(|d| *d < WRITE_TIMEOUT);
            if let Some(d) = arrives {
                let (handle, version, node_id) = (lease.handle, lease.version, r.node_id);
                self.push(self.now + d, Ev::WriteAtNode { client, call, node, node_id, handle, version, unit, sync });
            }
        }
        self.push(self.now + WRITE_TIMEOUT, Ev::WriteTimeout { client, call });
    }

    #[allow(clippy::too_many_arguments, reason = "one event's fields")]
    pub(super) fn write_at_node(
        &mut self,
        client: usize,
        call: u64,
        node: usize,
        node_id: NodeId,
        handle: ChunkHandle,
        version: ChunkVersion,
        unit: Unit,
        sync: bool,
    ) {
        if !self.net.arrives(End::Node(node), self.now) {
            return; // the writer times out
        }
        let ok = self.nodes[node].write(handle, version, unit.offset, unit.id, sync).is_ok();
        self.touch(handle);
        if let Some(d) = self.net.send(&mut self.rng, End::Node(node), End::Client(client), self.now) {
            self.push(self.now + d, Ev::WriteBack { client, call, node_id, ok });
        }
    }

    pub(super) fn write_back(&mut self, client: usize, call: u64, node_id: NodeId, ok: bool) {
        if self.writers[client].call != call {
            return;
        }
        if let Some(outcome) = self.writers[client].wrote(node_id, ok) {
            self.write_over(client, outcome);
        }
    }

    pub(super) fn write_timeout(&mut self, client: usize, call: u64) {
        if self.writers[client].call != call {
            return;
        }
        if let Some(outcome) = self.writers[client].write_timed_out() {
            self.write_over(client, outcome);
        }
    }

    /// A write is over: acknowledged units recorded and committed, failed
    /// replicas reported; the writer goes on.
    fn write_over(&mut self, client: usize, o: Outcome) {
        let call = self.writers[client].call;
        let wait = if o.bad.is_empty() { Duration::ZERO } else { Duration::from_millis(50) };
        self.push(self.now + wait, Ev::Wake { client, call });
        let Some(handle) = o.handle else { return };
        for u in &o.acked {
            self.truth.ack(handle, u.offset, u.id);
            self.acked += 1;
        }
        if !o.acked.is_empty() {
            self.touch(handle);
            let end = self.truth.acked_units(handle) as u64 * UNIT_BYTES;
            let at = self.now + self.rng.random_range(Duration::from_millis(1)..Duration::from_millis(10));
            self.push(at, Ev::Committed { handle, end });
        }
        for node in &o.bad {
            let bad = BadReplica { handle, node_id: Some(*node), address: None, corrupt: false, reporter_version: o.version, token: None };
            if let Some(d) = self.net.send(&mut self.rng, End::Client(client), End::Master, self.now) {
                self.push(self.now + d, Ev::BadAtMaster { bad });
            }
        }
    }
}
