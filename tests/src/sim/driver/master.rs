//! The master's side: stepping the engine and carrying out its commands, as
//! `ChunkManager::execute` does: calls go to chunkservers over the network
//! and every one of them is answered (a lost one fails at its timeout),
//! store writes are applied to the namespace after a delay (rarely failing),
//! replies travel back to whoever asked.

use std::hash::Hash;
use std::time::Duration;

use dfs_master::chunks::engine::{Answer, Command, Event, LeaseAsk, OpId, ReqId};
use dfs_master::store::{Mutation, NsError};
use dfs_proto::wire::chunks::BadReplica;
use dfs_proto::{ChunkHandle, ErrorKind, InodeId};
use rand::Rng;

use super::{Asker, Call, Ev, World, CLIENT_TIMEOUT, HEARTBEAT_TIMEOUT};
use crate::sim::network::End;
use crate::sim::world::Time;

impl World {
    /// The engine takes one event; its commands are carried out.
    pub(super) fn step_engine(&mut self, event: Event) {
        self.touch_event(&event);
        let commands = self.engine.step(self.instant(), event);
        for c in commands {
            format!("{c:?}").hash(&mut self.digest);
            self.note(|| format!("{c:?}"));
            self.execute(c);
        }
    }

    fn touch_event(&mut self, event: &Event) {
        match event {
            Event::Heartbeat { hb, .. } => self.touched.extend(hb.report.iter().flatten().map(|r| r.handle)),
            Event::Lease { ask, .. } => self.touch(ask.handle),
            Event::BadReplica { bad, .. } => self.touch(bad.handle),
            Event::Created { op, .. } | Event::VersionSet { op, .. } | Event::Copied { op, .. } | Event::Stored { op, .. } => {
                let handles = self.op_handles.remove(op).unwrap_or_default();
                self.touched.extend(handles);
            }
            Event::LengthsCommitted { ends } => self.touched.extend(ends.iter().map(|(h, _)| *h)),
            _ => self.touch_all = true,
        }
    }

    fn execute(&mut self, command: Command) {
        match command {
            Command::Create { op, node, address, handle, version, .. } => self.call(op, &address, Call::Create { node, handle, version }),
            Command::SetVersion { op, node, address, handle, version } => self.call(op, &address, Call::SetVersion { node, handle, version }),
            Command::Replicate { op, target, source, handle, version, .. } => match self.slot(&source) {
                Some(source) => self.call(op, &target, Call::Replicate { source, handle, version }),
                None => self.violate(format!("a copy of chunk {handle} from {source}, which is no chunkserver")),
            },
            Command::Store { op, mutation } => {
                let handles = self.mutation_handles(&mutation);
                self.op_handles.insert(op, handles);
                let at = self.now + self.rng.random_range(Duration::from_millis(1)..Duration::from_millis(10));
                self.push(at, Ev::Stored { op, mutation });
            }
            Command::Reply { req, answer } => self.reply(req, answer),
            Command::Note { .. } => {}
        }
    }

    fn mutation_handles(&self, m: &Mutation) -> Vec<ChunkHandle> {
        let at = |inode: &InodeId, index: &u64| self.ns.files.get(inode).and_then(|f| f.chunks.get(index)).map(|r| r.handle);
        match m {
            Mutation::SetChunkVersion { inode, index, .. } | Mutation::AddChunkMember { inode, index, .. } => at(inode, index).into_iter().collect(),
            Mutation::ForgetDeletedChunks(handles) => handles.clone(),
            _ => Vec::new(),
        }
    }

    /// A call from the master to the chunkserver at `address`.
    fn call(&mut self, op: OpId, address: &str, call: Call) {
        self.op_handles.insert(op, vec![call.handle()]);
        let Some(node) = self.slot(address) else {
            return self.violate(format!("a call to {address}, which is no chunkserver"));
        };
        match self.net.send(&mut self.rng, End::Master, End::Node(node), self.now) {
            Some(d) => self.push(self.now + d, Ev::CallAtNode { op, node, sent: self.now, call }),
            None => {
                let failed = call.answer(op, Err(super::lost()));
                self.push(self.now + call.timeout(), Ev::Engine(failed));
            }
        }
    }

    /// A chunkserver answers a call: back at the master unless lost or late.
    pub(super) fn answer_call(
        &mut self,
        op: OpId,
        node: usize,
        sent: Time,
        call: &Call,
        result: Result<dfs_proto::wire::chunks::ReplicaReport, dfs_server_kit::http::call::CallError>,
    ) {
        let deadline = sent + call.timeout();
        match self.net.send(&mut self.rng, End::Node(node), End::Master, self.now) {
            Some(d) if self.now + d <= deadline => self.push(self.now + d, Ev::Engine(call.answer(op, result))),
            _ => self.push(deadline.max(self.now), Ev::Engine(call.answer(op, Err(super::lost())))),
        }
    }

    pub(super) fn stored(&mut self, op: OpId, mutation: Mutation) {
        let result = match self.rng.random_range(0..1_000_000) < self.store_fail_ppm {
            true => Err(NsError::new(ErrorKind::EIO, "the store failed (simulated)")),
            false => self.ns.apply(&mutation),
        };
        if let (Mutation::SetChunkVersion { inode, index, version, .. }, Err(e)) = (&mutation, &result) {
            if e.kind == ErrorKind::EINVAL {
                self.violate(format!("the engine recorded chunk {index} of {inode} at version {version}, below the store's: {e}"));
            }
        }
        self.step_engine(Event::Stored { op, result });
    }

    fn reply(&mut self, req: ReqId, answer: Answer) {
        let Some(asker) = self.asks.remove(&req) else {
            return self.violate(format!("a reply to request {req}, which nobody asked or was answered before"));
        };
        match (asker, answer) {
            (Asker::Node { node, inc, had_report, sent }, Answer::Heartbeat(r)) => {
                let deadline = sent + HEARTBEAT_TIMEOUT;
                match self.net.send(&mut self.rng, End::Master, End::Node(node), self.now) {
                    Some(d) if self.now + d <= deadline => {
                        let unseen = r.iter().flat_map(|a| &a.delete).map(|d| d.handle).filter(|h| self.counts_unseen(*h)).collect();
                        self.push(self.now + d, Ev::HbBack { node, inc, had_report, answer: r.ok(), unseen })
                    }
                    _ => self.push(deadline.max(self.now), Ev::HbBack { node, inc, had_report, answer: None, unseen: Vec::new() }),
                }
            }
            (Asker::Client { client, call, sent }, Answer::Lease(r)) => {
                if let Ok(g) = &r {
                    self.lease_granted(g);
                }
                if let Some(d) = self.net.send(&mut self.rng, End::Master, End::Client(client), self.now) {
                    if self.now + d <= sent + CLIENT_TIMEOUT {
                        self.push(self.now + d, Ev::LeaseBack { client, call, sent, answer: Some(r) });
                    }
                }
            }
            (Asker::Nobody, Answer::Done(_)) => {}
            (asker, answer) => self.violate(format!("request {req} of {asker:?} got {answer:?}")),
        }
    }

    /// Whether the engine still counts a copy of `handle` a fault destroyed.
    pub(super) fn counts_unseen(&self, handle: ChunkHandle) -> bool {
        let map = self.engine.map();
        self.unseen.iter().any(|(h, id)| *h == handle && map.replica_version(*h, *id).is_some())
    }

    /// A grant the master replied with: checked against the others running.
    fn lease_granted(&mut self, g: &dfs_master::chunks::engine::Granted) {
        if let Err(m) = self.grants.granted(g, self.now) {
            return self.violate(m);
        }
        let recorded = self.engine.map().chunk(g.handle).map(|m| m.version);
        if recorded != Some(g.version) {
            self.violate(format!("chunk {} leased at version {} while the engine records {recorded:?}", g.handle, g.version));
        }
    }

    /// A writer's lease request reaches the master: the chunk is read (and
    /// allocated if missing) from the namespace, then asked of the engine.
    pub(super) fn lease_at_master(&mut self, client: usize, call: u64, sent: Time, inode: InodeId, index: u64) {
        let req = self.new_req(Asker::Client { client, call, sent });
        match self.ns.chunk_for_write(inode, index) {
            Err(e) => self.reply(req, Answer::Lease(Err(e))),
            Ok((record, file)) => {
                let ask = LeaseAsk { inode, index, handle: record.handle, version: record.version, length: record.length, file };
                self.step_engine(Event::Lease { req, ask });
            }
        }
    }

    pub(super) fn bad_at_master(&mut self, bad: BadReplica) {
        let req = self.new_req(Asker::Nobody);
        self.step_engine(Event::BadReplica { req, bad });
    }
}
