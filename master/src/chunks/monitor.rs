//! The master's background chunk work, one pass per interval: safe mode,
//! garbage collection, the replication plan (copies and deletions), and
//! which decommissioning nodes are drained. Decisions are the pure functions
//! of `replication`, `safe_mode` and `gc`; this module performs them.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dfs_common::{ChunkHandle, ChunkVersion, NodeId};

use super::chunk_map::Copy;
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

/// What one pass found, for the status endpoint.
#[derive(Clone, Copy, Debug, Default)]
pub struct PassSummary {
    pub under_replicated: u64,
    pub missing: u64,
    pub over_replicated: u64,
    pub garbage_chunks: u64,
}

impl ChunkManager {
    /// One pass. Nothing is copied or deleted while in safe mode.
    pub async fn pass(self: &Arc<Self>) {
        let now = Instant::now();
        if self.update_safe_mode(now) {
            return;
        }
        let garbage = self.collect_garbage().await;
        let actions = {
            let mut map = self.map();
            for (node, handle) in map.take_orphans(now, self.config.gc_grace) {
                tracing::info!(chunk = %handle, %node, "deleting a replica of an unknown chunk");
                map.queue_delete(node, handle, ChunkVersion(u64::MAX));
            }
            let (chunks, nodes) = (map.chunk_views(now), map.node_views(now, self.config.dead_after));
            let summary = summarize(&chunks, &nodes, garbage);
            *self.summary.lock().unwrap_or_else(|p| p.into_inner()) = summary;
            self.settle(&mut map, &chunks, &nodes);
            replication::plan(&chunks, &nodes, Limits { copies_per_node: self.config.copies_per_node })
        };
        for action in actions {
            match action {
                Action::Delete { node, handle, max_version } => {
                    tracing::info!(chunk = %handle, %node, "deleting a stale or surplus replica");
                    self.map().queue_delete(node, handle, max_version);
                }
                Action::Copy { handle, version, chunk_size, source, target } => {
                    self.spawn_copy(handle, version, chunk_size, Copy { source, target })
                }
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
        let removed = match tokio::task::spawn_blocking(move || store.deleted_chunks(GC_BATCH)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return self.gc_failed(e.to_string()),
            Err(e) => return self.gc_failed(e.to_string()),
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

    fn gc_failed(&self, error: String) -> u64 {
        tracing::warn!(%error, "reading removed chunks failed");
        0
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
            let whole = by_handle.get(&handle).is_none_or(|c| replication::standing(c, view).counted.len() >= c.want);
            if whole {
                map.clear_corrupt(handle);
            }
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
            let result = cs.replicate(&target, handle, &source, version, chunk_size).await;
            let Some(me) = me.upgrade() else { return };
            let mut map = me.map();
            map.end_copy(handle, copy);
            match result {
                Ok(report) if map.chunk(handle).is_some() => {
                    me.stats.copies_done.fetch_add(1, Ordering::Relaxed);
                    map.add_replica(handle, copy.target, report.version);
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

fn summarize(chunks: &[ChunkView], nodes: &[NodeView], garbage: u64) -> PassSummary {
    let view = |id: NodeId| nodes.iter().find(|n| n.node == id).copied();
    let mut s = PassSummary { garbage_chunks: garbage, ..Default::default() };
    for c in chunks {
        let standing = replication::standing(c, view);
        s.missing += standing.sources.is_empty() as u64;
        s.under_replicated += (standing.counted.len() < c.want) as u64;
        s.over_replicated += (standing.counted.len() > c.want) as u64;
    }
    s
}

/// How long the master waits for one copy: a chunk at a slow 4 MiB/s, plus
/// a margin.
pub fn copy_timeout(chunk_size: u64) -> Duration {
    Duration::from_secs(30 + chunk_size / (4 << 20))
}
