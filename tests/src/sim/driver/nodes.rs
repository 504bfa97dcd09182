//! The chunkservers' side: heartbeats (one in flight at a time, a full
//! report at registration and every few beats, deletes applied from the
//! answer), the master's calls (create, set version, replicate: the target
//! reads the source over the network, then swaps the copy in), the
//! scrubber, and restarts.

use std::time::Duration;

use dfs_master::chunks::engine::{Event, OpId};
use dfs_proto::wire::chunks::{BadReplica, Heartbeat, HeartbeatResponse};
use dfs_proto::{ChunkHandle, ChunkVersion};

use super::{invariants, Asker, Call, Ev, World, FETCH_TIMEOUT, HEARTBEAT, HEARTBEAT_TIMEOUT, REPORT_EVERY};
use crate::sim::disk::WriteId;
use crate::sim::network::End;
use crate::sim::world::Time;

impl World {
    pub(super) fn beat(&mut self, n: usize) {
        self.push(self.now + HEARTBEAT, Ev::Beat(n));
        if !self.nodes[n].up || self.beating[n] {
            return;
        }
        let hb = self.nodes[n].heartbeat(REPORT_EVERY);
        let (inc, had_report) = (self.nodes[n].incarnation, hb.report.is_some());
        self.beating[n] = true;
        match self.net.send(&mut self.rng, End::Node(n), End::Master, self.now) {
            Some(d) => self.push(self.now + d, Ev::HbAtMaster { node: n, inc, sent: self.now, hb: Box::new(hb) }),
            None => self.push(self.now + HEARTBEAT_TIMEOUT, Ev::HbBack { node: n, inc, had_report, answer: None, unseen: Vec::new() }),
        }
    }

    pub(super) fn heartbeat_at_master(&mut self, node: usize, inc: u64, sent: Time, hb: Box<Heartbeat>) {
        // The node may be live again: its replicas may be served again.
        let held: Vec<ChunkHandle> = self.nodes[node].disk.replicas.keys().copied().collect();
        self.touched.extend(held);
        let req = self.new_req(Asker::Node { node, inc, had_report: hb.report.is_some(), sent });
        self.step_engine(Event::Heartbeat { req, hb });
    }

    pub(super) fn heartbeat_back(&mut self, node: usize, inc: u64, had_report: bool, answer: Option<HeartbeatResponse>, unseen: Vec<ChunkHandle>) {
        if self.nodes[node].incarnation != inc {
            return; // the process that sent it is gone
        }
        self.beating[node] = false;
        let Some(answer) = answer else { return self.nodes[node].unanswered() };
        self.nodes[node].answered(had_report, answer.send_report);
        for d in answer.delete {
            let Some(removed) = self.nodes[node].delete(d.handle, d.max_version) else { continue };
            self.touch(d.handle);
            let address = self.nodes[node].address.clone();
            self.note(|| format!("{address} deleted chunk {} v{} ({} units)", d.handle, removed.version, removed.data.len()));
            if let Err(m) = invariants::deleted(d.handle, &removed, node, &self.nodes, &self.ns, &self.truth) {
                // A copy the decision counted on that a fault destroyed
                // unknown to the master (when it answered, or still): its
                // loss, not the engine's.
                match unseen.contains(&d.handle) || self.counts_unseen(d.handle) {
                    true => drop(self.destroyed.insert(d.handle)),
                    false => {
                        let view = invariants::describe(&self.engine, &self.nodes, &self.ns, d.handle, self.instant());
                        self.violate(format!("{m}; {view}"))
                    }
                }
            }
        }
    }

    pub(super) fn call_at_node(&mut self, op: OpId, node: usize, sent: Time, call: Call) {
        if !self.net.arrives(End::Node(node), self.now) {
            let failed = call.answer(op, Err(super::lost()));
            return self.push((sent + call.timeout()).max(self.now), Ev::Engine(failed));
        }
        let n = &mut self.nodes[node];
        let result = match &call {
            Call::Create { handle, version, .. } => n.create(*handle, *version).map(|_| None),
            Call::SetVersion { handle, version, .. } => n.set_version(*handle, *version).map(|_| None),
            Call::Replicate { handle, version, .. } => n.begin_copy(*handle, *version).map(|_| Some(())),
        };
        self.touch(call.handle());
        match (result, &call) {
            (Ok(Some(())), Call::Replicate { source, handle, version }) => {
                let inc = self.nodes[node].incarnation;
                let (source, handle, version) = (*source, *handle, *version);
                match self.net.send(&mut self.rng, End::Node(node), End::Node(source), self.now) {
                    Some(d) => self.push(self.now + d, Ev::CopyAtSource { op, target: node, inc, sent, source, handle, version }),
                    None => self.push(self.now + FETCH_TIMEOUT, Ev::CopyAtTarget { op, target: node, inc, sent, handle, version, data: None }),
                }
            }
            (Ok(_), _) => {
                let report = dfs_proto::wire::chunks::ReplicaReport { handle: call.handle(), version: ChunkVersion(0), length: 0, dirty: false };
                self.answer_call(op, node, sent, &call, Ok(report));
            }
            (Err(why), _) => self.answer_call(op, node, sent, &call, Err(super::refused(why))),
        }
    }

    #[allow(clippy::too_many_arguments, reason = "one event's fields")]
    pub(super) fn copy_at_source(&mut self, op: OpId, target: usize, inc: u64, sent: Time, source: usize, handle: ChunkHandle, version: ChunkVersion) {
        let read = match self.net.arrives(End::Node(source), self.now) {
            true => self.nodes[source].read_for_copy(handle, version).ok(),
            false => None,
        };
        let at = match self.net.send(&mut self.rng, End::Node(source), End::Node(target), self.now) {
            Some(d) if read.is_some() => self.now + d,
            _ => self.now + FETCH_TIMEOUT,
        };
        self.push(at, Ev::CopyAtTarget { op, target, inc, sent, handle, version, data: read });
    }

    #[allow(clippy::too_many_arguments, reason = "one event's fields")]
    pub(super) fn copy_at_target(
        &mut self,
        op: OpId,
        target: usize,
        inc: u64,
        sent: Time,
        handle: ChunkHandle,
        version: ChunkVersion,
        data: Option<Vec<WriteId>>,
    ) {
        let call = Call::Replicate { source: target, handle, version };
        if self.nodes[target].incarnation != inc {
            // The copy died with its process: the master's call times out.
            let failed = call.answer(op, Err(super::lost()));
            return self.push((sent + call.timeout()).max(self.now), Ev::Engine(failed));
        }
        let result = self.nodes[target].finish_copy(handle, version, data).map_err(super::refused);
        self.touch(handle);
        self.answer_call(op, target, sent, &call, result);
    }

    /// The scrubber reaches a replica with a flipped bit: set aside, reported.
    pub(super) fn scrub(&mut self, node: usize, handle: ChunkHandle) {
        if !self.nodes[node].up {
            return self.push(self.now + Duration::from_secs(2), Ev::Scrub { node, handle });
        }
        if !self.nodes[node].quarantine(handle) {
            return;
        }
        self.touch(handle);
        let bad = BadReplica { handle, node_id: Some(self.nodes[node].id), address: None, corrupt: true, reporter_version: None, token: None };
        if let Some(d) = self.net.send(&mut self.rng, End::Node(node), End::Master, self.now) {
            self.push(self.now + d, Ev::BadAtMaster { bad });
        }
    }

    pub(super) fn restart(&mut self, n: usize) {
        // Its heartbeat timer never stopped: the next beat registers it.
        self.nodes[n].restart();
    }
}
