//! The master's background chunk work, one pass per interval: safe mode,
//! garbage collection, the replication plan (copies and deletions), and
//! which decommissioning nodes are drained. Decisions are the pure functions
//! of `replication`, `safe_mode` and `gc`; this module performs them.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dfs_common::{ChunkHandle, ChunkVersion, NodeId};

use super::chunk_map::{Census, Copy};
use super::replication::{self, Action, ChunkView, Limits, NodeView};
use super::{gc, ChunkManager};
use crate::store::db::now_ns;
use crate::store::Mutation;

/// Removed chunks looked at per pass.
const GC_BATCH: usize = 100_000;

/// Runs the passes until the process ends.
pub async fn run(manager: Arc<ChunkManager>) {
    let mut ticker = tokio::time::interval(manager.config.monitor_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        manager.pass().await;
    }
}

/// What the last pass found, for the status endpoint, the dashboard and
/// `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PassSummary {
    pub census: Census,
    pub garbage_chunks: u64,
}

impl ChunkManager {
    /// One pass. Nothing is copied or deleted while in safe mode.
    pub async fn pass(self: &Arc<Self>) {
        let now = Instant::now();
        // Counted in safe mode too: the dashboard shows the reports arriving.
        let census = self.map().census(now, self.config.dead_after);
        self.summary.lock().unwrap_or_else(|p| p.into_inner()).census = census;
        if self.update_safe_mode(now) {
            return;
        }
        self.accept_lost_tails(now);
        let garbage = self.collect_garbage().await;
        self.summary.lock().unwrap_or_else(|p| p.into_inner()).garbage_chunks = garbage;
        let actions = {
            let mut map = self.map();
            let rule = gc::OrphanRule { grace: self.config.gc_grace, started: self.started, startup_delay: self.config.startup_delete_delay };
            for (node, handle) in map.take_orphans(now, &rule) {
                tracing::info!(chunk = %handle, %node, "deleting a replica of an unknown chunk");
                map.queue_delete(node, handle, ChunkVersion(u64::MAX));
            }
            let (chunks, nodes) = (map.chunk_views(now), map.node_views(now, self.config.dead_after));
            self.settle(&mut map, &chunks, &nodes);
            replication::plan(&chunks, &nodes, Limits { copies_per_node: self.config.copies_per_node })
        };
        for action in actions {
            match action {
                Action::Delete { node, handle, max_version } => {
                    tracing::info!(chunk = %handle, %node, "deleting a stale or surplus replica");
                    self.map().queue_delete(node, handle, max_version);
                }
                Action::Copy { handle, version, chunk_size, source, target } => self.spawn_copy(handle, version, chunk_size, Copy { source, target }),
            }
        }
    }

    /// Steps safe mode; true while it is on.
    fn update_safe_mode(&self, now: Instant) -> bool {
        let (reported, total) = self.map().reported();
        let mut safe = self.safe_mode.lock().unwrap_or_else(|p| p.into_inner());
        let was_on = safe.is_on();
        *safe = safe.step(&self.config.safe_mode, now, reported, total);
        if was_on && !safe.is_on() {
            tracing::info!(reported, total, "leaving safe mode");
            self.events.push("safe_mode_left", format!("left safe mode: {reported} of {total} chunks reported"));
        }
        safe.is_on()
    }

    /// Chunks of removed data: planning skips them at once; once past the
    /// grace period their replicas are queued for deletion and the record
    /// is dropped. Returns how many still wait.
    async fn collect_garbage(&self) -> u64 {
        let store = self.store.clone();
        let read = tokio::task::spawn_blocking(move || store.deleted_chunks(GC_BATCH)).await;
        let removed = match read.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
            Ok(r) => r,
            Err(error) => {
                tracing::warn!(%error, "reading removed chunks failed");
                return 0;
            }
        };
        let now_ns = now_ns();
        let (due, waiting): (Vec<_>, Vec<_>) = removed.into_iter().partition(|(_, at)| gc::removed_chunk_due(*at, now_ns, self.config.gc_grace));
        {
            let mut map = self.map();
            waiting.iter().for_each(|(h, _)| map.retire_chunk(*h));
            for (handle, _) in &due {
                map.forget_chunk(*handle);
            }
        }
        if !due.is_empty() {
            let handles: Vec<ChunkHandle> = due.iter().map(|(h, _)| *h).collect();
            tracing::info!(chunks = handles.len(), "collecting removed chunks");
            if let Err(e) = self.writer.submit(Mutation::ForgetDeletedChunks(handles)).await {
                tracing::warn!(error = %e, "forgetting collected chunks failed; they are collected again next pass");
            }
        }
        waiting.len() as u64
    }

    /// Bookkeeping after a scan: drained nodes, and corrupt marks of chunks
    /// that are whole again.
    fn settle(&self, map: &mut super::chunk_map::ChunkMap, chunks: &[ChunkView], nodes: &[NodeView]) {
        let view = |id: NodeId| nodes.iter().find(|n| n.node == id).copied();
        for node in map.draining() {
            let drained = replication::is_drained(node, chunks, view);
            map.set_drained(node, drained);
        }
        let by_handle: HashMap<ChunkHandle, &ChunkView> = chunks.iter().map(|c| (c.handle, c)).collect();
        for handle in map.corrupt_chunks() {
            let whole = by_handle.get(&handle).is_none_or(|c| replication::standing(c, view).counted.len() >= c.want) && map.tail_intact(handle);
            if whole {
                map.clear_corrupt(handle);
            }
        }
    }

    /// Chunks whose every live replica is damaged (short, or dirty after a
    /// crash) keep one of the longest (not in safe mode: whole replicas may
    /// not have reported yet).
    fn accept_lost_tails(&self, now: Instant) {
        for (handle, kept, committed) in self.map().accept_lost_tails(now, self.config.dead_after) {
            tracing::error!(chunk = %handle, kept, committed, "every replica lost committed bytes: serving the longest; reads past it fail");
            self.events.push("corrupt", format!("chunk {handle}: every replica lost bytes {kept}..{committed}"));
        }
    }

    /// Records durably that a finished copy on `node` holds `version`, so
    /// that a restarted master still counts it among the version's members.
    async fn record_member(&self, handle: ChunkHandle, version: ChunkVersion, node: NodeId) {
        let Some(meta) = self.map().chunk(handle) else { return };
        let m = Mutation::AddChunkMember { inode: meta.inode, index: meta.index, version, node };
        if let Err(e) = self.writer.submit(m).await {
            tracing::warn!(chunk = %handle, %node, error = %e, "recording a copy among the version's members failed");
        }
    }

    /// Asks `target` to copy the chunk from `source`; the replica counts once
    /// the target answers that the copy is durable.
    fn spawn_copy(self: &Arc<Self>, handle: ChunkHandle, version: ChunkVersion, chunk_size: u64, copy: Copy) {
        let (source, target) = {
            let mut map = self.map();
            let (Some(s), Some(t)) = (map.address(copy.source), map.address(copy.target)) else { return };
            map.start_copy(handle, copy);
            map.reserve(copy.target, chunk_size);
            (s.address, t.address)
        };
        tracing::info!(chunk = %handle, %source, %target, "copying a replica");
        // A weak reference: a copy in flight must not keep the manager (and
        // its Writer handle) alive past shutdown.
        let (me, cs) = (Arc::downgrade(self), self.cs.clone());
        tokio::spawn(async move {
            let Some(manager) = me.upgrade() else { return };
            let fenced = manager.fence_for_copy(handle, version).await;
            drop(manager);
            let result = match fenced {
                Ok(version) => cs.replicate(&target, handle, &source, version, chunk_size).await.map_err(|e| e.to_string()),
                Err(e) => Err(format!("fencing before the copy: {e}")),
            };
            let Some(me) = me.upgrade() else { return };
            if let Ok(report) = &result {
                me.record_member(handle, report.version, copy.target).await;
            }
            let mut map = me.map();
            map.end_copy(handle, copy);
            match result {
                Ok(report) if map.chunk(handle).is_some() => {
                    me.stats.copies_done.fetch_add(1, Ordering::Relaxed);
                    map.copy_done(handle, copy.target, report.version, report.length);
                    me.events.push("repaired", format!("chunk {handle} copied from {source} to {target}"));
                }
                Ok(_) => map.queue_delete(copy.target, handle, ChunkVersion(u64::MAX)), // removed meanwhile
                Err(e) => {
                    me.stats.copies_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(chunk = %handle, error = %e, "copying a replica failed");
                }
            }
        });
    }
}

/// How long the master waits for one copy: a chunk at a slow 4 MiB/s, plus
/// a margin.
pub fn copy_timeout(chunk_size: u64) -> Duration {
    Duration::from_secs(30u64.saturating_add(chunk_size / (4 << 20)))
}
