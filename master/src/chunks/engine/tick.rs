//! The periodic pass: safe mode, garbage, the replication plan (copies and
//! deletions), drained nodes and healed corruption. Nothing is copied or
//! deleted while in safe mode.

use std::collections::HashMap;

use dfs_proto::{ChunkHandle, ChunkVersion, NodeId};

use super::ops::AfterBump;
use super::{Command, Engine};
use crate::chunks::chunk_map::Copy;
use crate::chunks::gc;
use crate::chunks::replication::{self, Action, ChunkView, Limits, NodeView};
use crate::store::Mutation;

/// Most removal records dropped by one store write.
const FORGET_BATCH: usize = 10_000;

impl Engine {
    pub(super) fn tick(&mut self) {
        let now = self.now;
        // Counted in safe mode too: the dashboard shows the reports arriving.
        self.summary.census = self.map.census(now, self.config.dead_after);
        if self.step_safe_mode() {
            return;
        }
        self.accept_lost_tails();
        self.collect_garbage();
        let rule = gc::OrphanRule { grace: self.config.gc_grace, started: self.started, startup_delay: self.config.startup_delete_delay };
        for (node, handle) in self.map.take_orphans(now, &rule) {
            tracing::info!(chunk = %handle, %node, "deleting a replica of an unknown chunk");
            self.map.queue_delete(node, handle, ChunkVersion(u64::MAX));
        }
        let (chunks, nodes) = (self.map.chunk_views(now), self.map.node_views(now, self.config.dead_after));
        self.settle(&chunks, &nodes);
        // The copies of one chunk share one fence, in the plan's order.
        let mut copies: Vec<(ChunkHandle, ChunkVersion, u64, Vec<Copy>)> = Vec::new();
        for action in replication::plan(&chunks, &nodes, Limits { copies_per_node: self.config.copies_per_node }) {
            match action {
                // Not while an operation on the chunk is under way: which of
                // its replicas end up current is not settled yet (a bump may
                // leave behind the very copies the plan keeps).
                Action::Delete { handle, .. } if self.busy.contains_key(&handle) => {}
                Action::Delete { node, handle, max_version } => {
                    tracing::info!(chunk = %handle, %node, "deleting a stale or surplus replica");
                    self.map.queue_delete(node, handle, max_version);
                }
                Action::Copy { handle, version, chunk_size, source, target } => match copies.last_mut() {
                    Some((h, _, _, list)) if *h == handle => list.push(Copy { source, target }),
                    _ => copies.push((handle, version, chunk_size, vec![Copy { source, target }])),
                },
            }
        }
        for (handle, version, chunk_size, list) in copies {
            self.fence_and_copy(handle, version, chunk_size, list);
        }
    }

    /// Steps safe mode; true while it is on.
    fn step_safe_mode(&mut self) -> bool {
        let (reported, total) = self.map.reported();
        let was_on = self.safe_mode.is_on();
        self.safe_mode = self.safe_mode.step(&self.config.safe_mode, self.now, reported, total);
        self.end_restore(reported, total);
        if was_on && !self.safe_mode.is_on() {
            tracing::info!(reported, total, "leaving safe mode");
            self.note("safe_mode_left", format!("left safe mode: {reported} of {total} chunks reported"));
        }
        self.safe_mode.is_on()
    }

    /// Chunks whose every live replica is damaged (short, or dirty after a
    /// crash) keep one of the longest (not in safe mode: whole replicas may
    /// not have reported yet).
    fn accept_lost_tails(&mut self) {
        for (handle, kept, committed) in self.map.accept_lost_tails(self.now, self.config.dead_after) {
            tracing::error!(chunk = %handle, kept, committed, "every replica lost committed bytes: serving the longest; reads past it fail");
            self.note("corrupt", format!("chunk {handle}: every replica lost bytes {kept}..{committed}"));
        }
    }

    /// Removed chunks past the grace: their replicas are queued for
    /// deletion, and their removal records dropped.
    fn collect_garbage(&mut self) {
        let mut due = std::mem::take(&mut self.unforgotten);
        while let Some((at, handle)) = self.garbage.front().copied() {
            if self.now.saturating_duration_since(at) < self.config.gc_grace {
                break;
            }
            self.garbage.pop_front();
            self.map.forget_chunk(handle);
            due.push(handle);
        }
        self.summary.garbage_chunks = self.garbage.len() as u64;
        if !due.is_empty() {
            tracing::info!(chunks = due.len(), "collecting removed chunks");
        }
        for handles in due.chunks(FORGET_BATCH) {
            let op = self.new_op(super::Op::Forget { handles: handles.to_vec() });
            self.out.push(Command::Store { op, mutation: Mutation::ForgetDeletedChunks(handles.to_vec()) });
        }
    }

    /// Bookkeeping after a scan: drained nodes, and corrupt marks of chunks
    /// that are whole again.
    fn settle(&mut self, chunks: &[ChunkView], nodes: &[NodeView]) {
        let view = |id: NodeId| nodes.iter().find(|n| n.node == id).copied();
        for node in self.map.draining() {
            let drained = replication::is_drained(node, chunks, view);
            self.map.set_drained(node, drained);
        }
        let by_handle: HashMap<ChunkHandle, &ChunkView> = chunks.iter().map(|c| (c.handle, c)).collect();
        for handle in self.map.corrupt_chunks() {
            let counted = |c: &&ChunkView| replication::standing(c, view).counted.len() >= c.want;
            if by_handle.get(&handle).is_none_or(counted) && self.map.tail_intact(handle) {
                self.map.clear_corrupt(handle);
            }
        }
    }

    /// Starts a planned copy: the chunk is fenced first (its current
    /// replicas move to the next version), so that a write still in flight
    /// under a lease that has run out (a slow client, a frozen primary, a
    /// lease granted before this master started) is refused by every
    /// replica, instead of landing on the source after the copy has read
    /// past it and leaving the copy different at the same version.
    ///
    /// A running lease is revoked by the same fence (a writer may keep a
    /// chunk leased for hours; its chunk must not stay under-replicated
    /// meanwhile): its next write names the old version, is refused, and its
    /// next lease waits for the copy (`may_grant`), then includes the copy.
    /// A chunk busy with another operation is left for the next pass.
    fn fence_and_copy(&mut self, handle: ChunkHandle, planned: ChunkVersion, chunk_size: u64, mut copies: Vec<Copy>) {
        let Some(meta) = self.map.chunk(handle).filter(|m| m.version == planned) else { return };
        copies.retain(|c| self.map.address(c.source).is_some() && self.map.address(c.target).is_some());
        if self.busy.contains_key(&handle) || copies.is_empty() {
            return;
        }
        for copy in &copies {
            self.map.start_copy(handle, *copy);
            self.map.reserve(copy.target, chunk_size);
        }
        if self.map.lease(handle).is_some_and(|l| l.expires > self.now) {
            tracing::info!(chunk = %handle, "revoking a lease to re-replicate the chunk");
            self.map.end_lease(handle);
        }
        let replicas = self.map.current_replicas(handle, self.now, self.config.dead_after);
        self.bump(handle, meta, replicas, AfterBump::Fence { copies, chunk_size });
    }
}
